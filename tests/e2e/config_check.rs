//! `config check`: a config and its plugins loaded without serving, the production
//! checklist graded item by item, and configs that cannot be served named precisely.

use crate::common::tls::TestCa;
use crate::common::{plugin, run_host, toml_path, toml_str};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Writes `config` into `dir` and runs `config check` on it.
fn check(dir: &Path, config: &str) -> (bool, String, String) {
    let path = dir.join("host.toml");
    std::fs::write(&path, config).unwrap();
    let (status, stdout, stderr) =
        run_host(&["config", "check", "--config", path.to_str().unwrap()]);
    assert!(!stderr.contains("panicked"), "{stderr}");
    (status.success(), stdout, stderr)
}

/// The checklist line for `topic` and the line after it (its fix, if any).
fn item<'a>(stdout: &'a str, grade: &str, topic: &str) -> (&'a str, &'a str) {
    let lines: Vec<&str> = stdout.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.trim_start().starts_with(&format!("{grade}  {topic} ")))
        .unwrap_or_else(|| panic!("no `{grade}  {topic}` item in:\n{stdout}"));
    (lines[at], lines.get(at + 1).copied().unwrap_or(""))
}

fn fixture_section(name: &str, extra: &str) -> String {
    format!(
        "[plugins.{name}]\npath = {}\nenv = {{ FIXTURE_TOOLS = {} }}\n{extra}",
        toml_path(&plugin("fixture")),
        toml_str(r#"[{"name":"open","input_schema":{"type":"object"}}]"#),
    )
}

#[test]
fn a_risky_deployment_fails_the_checklist_with_a_fix_for_each_item() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:8080\"\n[auth]\nmode = \"off\"\n{}",
        fixture_section(
            "fix",
            &format!(
                "allowed_outbound_hosts = [\"https://*.example.com\", \"http://api.example.org\"]\n\
                 files = [{{ host = {}, guest = \"/data\", mode = \"rw\" }}]\n",
                toml_path(&data)
            ),
        ),
    );
    let (ok, stdout, stderr) = check(dir.path(), &config);
    assert!(!ok, "a failing checklist exits non-zero:\n{stdout}");
    assert!(stdout.contains("config ok"), "{stdout}");
    assert!(stdout.contains("plugin fix loads: open"), "{stdout}");
    let (auth, fix) = item(&stdout, "FAIL", "auth");
    assert!(auth.contains("authentication is off"), "{auth}");
    assert!(fix.contains("fix: set [auth] mode = \"embedded\""), "{fix}");
    let (audit, fix) = item(&stdout, "FAIL", "audit");
    assert!(audit.contains("no audit log"), "{audit}");
    assert!(fix.contains("[audit] path"), "{fix}");
    let (grants, fix) = item(&stdout, "WARN", "plugin fix");
    for wide in [
        "reaches every host under https://*.example.com",
        "sends unencrypted requests to http://api.example.org",
        "writes ",
    ] {
        assert!(grants.contains(wide), "{wide:?} not in {grants}");
    }
    assert!(fix.contains("fix: grant `ro`"), "{fix}");
    let (limits, _) = item(&stdout, "WARN", "limits fix");
    assert!(
        limits.contains("every limit at the host's default"),
        "{limits}"
    );
    let (rates, _) = item(&stdout, "WARN", "rate limits");
    assert!(rates.contains("no budgets"), "{rates}");
    item(&stdout, "WARN", "tls");
    assert!(stdout.contains("0 pass, 4 warn, 2 fail"), "{stdout}");
    assert!(
        stderr.contains("2 items of the production checklist fail"),
        "{stderr}"
    );
}

#[test]
fn a_production_deployment_passes_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let leaf = TestCa::new().leaf();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, &leaf.chain_pem).unwrap();
    std::fs::write(&key, &leaf.key_pem).unwrap();
    let keys = dir.path().join("keys");
    std::fs::create_dir(&keys).unwrap();
    let kek = keys.join("kek");
    let (status, generated, _) = run_host(&["keygen"]);
    assert!(status.success());
    std::fs::write(&kek, generated.trim()).unwrap();
    std::fs::set_permissions(&kek, std::fs::Permissions::from_mode(0o600)).unwrap();
    let audit = dir.path().join("audit").join("audit.jsonl");
    std::fs::create_dir(audit.parent().unwrap()).unwrap();
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\npublic_url = \"https://mcp.example.com\"\n\
         tls = {{ cert = {}, key = {} }}\n\
         [secrets]\nkek_file = {}\n\
         [rate_limits]\nper_user = \"120/min\"\n\
         [audit]\npath = {}\nfsync = \"always\"\n{}",
        toml_path(&cert),
        toml_path(&key),
        toml_path(&kek),
        toml_path(&audit),
        fixture_section("fix", "limits = { memory = \"16MiB\", timeout = \"2s\" }\n"),
    );
    let (ok, stdout, stderr) = check(dir.path(), &config);
    assert!(ok, "{stdout}\n{stderr}");
    for topic in [
        "tls",
        "auth",
        "kek",
        "plugin fix",
        "limits fix",
        "rate limits",
        "audit",
    ] {
        item(&stdout, "pass", topic);
    }
    assert!(stdout.contains("7 pass, 0 warn, 0 fail"), "{stdout}");
    // Checked, not started: no audit log, no auth database.
    assert!(!audit.exists());
    let mut left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    left.sort();
    assert_eq!(left, ["audit", "cert.pem", "host.toml", "key.pem", "keys"]);

    // A granted credential the store does not hold fails, named.
    let granted = config.replace(
        "limits = {",
        "credentials = [\"weather-api-key\"]\nlimits = {",
    );
    let (ok, stdout, _) = check(dir.path(), &granted);
    assert!(!ok);
    let (line, fix) = item(&stdout, "FAIL", "credentials");
    assert!(
        line.contains("weather-api-key") || line.contains("secrets"),
        "{line}"
    );
    assert!(fix.contains("secrets set"), "{fix}");

    // The same KEK readable by others fails, with the command that fixes it.
    std::fs::set_permissions(&kek, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (ok, stdout, _) = check(dir.path(), &config);
    assert!(!ok);
    let (line, fix) = item(&stdout, "FAIL", "kek");
    assert!(line.contains("mode 644"), "{line}");
    assert!(fix.contains("chmod 600"), "{fix}");
}

#[test]
fn a_config_that_cannot_be_served_is_named_precisely() {
    let dir = tempfile::tempdir().unwrap();
    // An unknown key: its name and line.
    let (ok, stdout, stderr) = check(
        dir.path(),
        "[server]\nlisten = \"127.0.0.1:0\"\nlsiten = 1\n",
    );
    assert!(!ok);
    assert!(stdout.is_empty(), "{stdout}");
    assert!(
        stderr.contains("lsiten") && stderr.contains("line 3"),
        "{stderr}"
    );
    // A plugin that is not a component: the plugin and its file.
    let junk = dir.path().join("junk.wasm");
    std::fs::write(&junk, b"not wasm").unwrap();
    let config = format!("[plugins.junk]\npath = {}\n", toml_path(&junk));
    let (ok, _, stderr) = check(dir.path(), &config);
    assert!(!ok);
    assert!(
        stderr.contains("plugin `junk`") && stderr.contains("junk.wasm"),
        "{stderr}"
    );
    // A certificate file that holds no certificate: the section and the file.
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, "not a certificate\n").unwrap();
    std::fs::write(&key, TestCa::new().leaf().key_pem).unwrap();
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\ntls = {{ cert = {}, key = {} }}\n",
        toml_path(&cert),
        toml_path(&key)
    );
    let (ok, _, stderr) = check(dir.path(), &config);
    assert!(!ok);
    assert!(
        stderr.contains("[server] tls") && stderr.contains("cert.pem"),
        "{stderr}"
    );
    // A rate limit for a tool no plugin offers.
    let config = format!(
        "{}[rate_limits.tools.nope]\nper_tool = \"1/s\"\n",
        fixture_section("fix", "")
    );
    let (ok, _, stderr) = check(dir.path(), &config);
    assert!(!ok);
    assert!(stderr.contains("nope"), "{stderr}");
}
