//! Load time: plugins the host must refuse (each with a message naming the plugin, the
//! tool and the reason), the sha256 pin, config errors, and `plugin inspect`.

use crate::common::{Host, plugin, run_host, start_refused, toml_path, toml_str};
use serde_json::json;
use sha2::{Digest, Sha256};

fn fixture_config(name: &str, tools: serde_json::Value) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n\n[plugins.{name}]\npath = {}\nenv = {{ FIXTURE_TOOLS = {} }}\n",
        toml_path(&plugin("fixture")),
        toml_str(&tools.to_string()),
    )
}

fn assert_refused(config: &str, needles: &[&str]) {
    let (status, stderr) = start_refused(config, &[]);
    assert!(!status.success(), "host started:\n{stderr}");
    for needle in needles {
        assert!(stderr.contains(needle), "missing {needle:?} in:\n{stderr}");
    }
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn missing_plugin_file_is_refused() {
    let config =
        "[server]\nlisten = \"127.0.0.1:0\"\n[plugins.ghost]\npath = \"/nonexistent/ghost.wasm\"\n";
    assert_refused(
        config,
        &["plugin `ghost`", "/nonexistent/ghost.wasm", "No such file"],
    );
}

#[test]
fn file_that_is_not_a_component_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("junk.wasm");
    std::fs::write(&path, b"this is not wasm").unwrap();
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n[plugins.junk]\npath = {}\n",
        toml_path(&path)
    );
    assert_refused(
        &config,
        &["plugin `junk`", "not a valid WebAssembly component"],
    );
}

#[test]
fn sha256_pin_is_enforced() {
    let weather = plugin("weather");
    let digest = hex::encode(Sha256::digest(std::fs::read(&weather).unwrap()));
    let pinned = |pin: &str| {
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n[plugins.weather]\npath = {}\nsha256 = \"{pin}\"\n",
            toml_path(&weather)
        )
    };
    let wrong = "0".repeat(64);
    assert_refused(
        &pinned(&wrong),
        &["plugin `weather`", &wrong, &digest, "refusing to load"],
    );
    // The right pin loads (and upper-case hex is the same digest).
    let host = Host::start(&pinned(&digest.to_uppercase()), &[]);
    let log = host.wait_for_log("plugin loaded", std::time::Duration::from_secs(5));
    let line = log
        .lines()
        .find(|l| l.contains("plugin loaded"))
        .unwrap_or_else(|| panic!("no load line in\n{log}"));
    assert!(
        line.contains("plugin=weather") && line.contains("get_weather"),
        "{line}"
    );
}

#[test]
fn invalid_input_schema_is_refused() {
    let cases = [
        (
            json!([{"name": "typo", "input_schema": {"type": "object", "properties": {"a": {"type": "strin"}}}}]),
            "not a valid JSON Schema",
        ),
        (
            json!([{"name": "not_object", "input_schema": {"type": "string"}}]),
            "\"type\": \"object\"",
        ),
        (
            json!([{"name": "garbage", "input_schema": "{not json"}]),
            "schema is not JSON",
        ),
    ];
    for (tools, reason) in cases {
        let name = tools[0]["name"].as_str().unwrap().to_owned();
        assert_refused(
            &fixture_config("fix", tools),
            &[
                "plugin `fix`",
                &format!("tool `{name}`"),
                "input-schema",
                reason,
            ],
        );
    }
}

#[test]
fn invalid_output_schema_is_refused() {
    let tools = json!([{
        "name": "out",
        "input_schema": {"type": "object"},
        "output_schema": {"type": "object", "required": "city"},
    }]);
    assert_refused(
        &fixture_config("fix", tools),
        &[
            "plugin `fix`",
            "tool `out`",
            "output-schema",
            "not a valid JSON Schema",
        ],
    );
}

#[test]
fn invalid_tool_names_are_refused() {
    for name in ["", "has space", "semi;colon", &"x".repeat(129)] {
        let tools = json!([{"name": name, "input_schema": {"type": "object"}}]);
        assert_refused(
            &fixture_config("fix", tools),
            &["plugin `fix`", "name must be 1-128 characters"],
        );
    }
}

#[test]
fn duplicate_tool_names_are_refused() {
    // Within one plugin.
    let tools = json!([
        {"name": "twin", "input_schema": {"type": "object"}},
        {"name": "twin", "input_schema": {"type": "object"}},
    ]);
    assert_refused(
        &fixture_config("fix", tools),
        &["plugin `fix`: tool `twin` is already provided by plugin `fix`"],
    );
    // Across two plugins: the second in name order is refused, naming the first.
    let echo = toml_path(&plugin("echo"));
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n[plugins.alpha]\npath = {echo}\n[plugins.beta]\npath = {echo}\n"
    );
    assert_refused(
        &config,
        &["plugin `beta`: tool `echo` is already provided by plugin `alpha`"],
    );
}

#[test]
fn config_errors_name_the_key_and_line() {
    assert_refused(
        "[server]\nlisten = \"127.0.0.1:0\"\nport = 8080\n",
        &["unknown field `port`", "line 3"],
    );
    let config = format!(
        "[plugins.weather]\npath = {}\nallowed_outbound_hosts = [\"https://*\"]\n",
        toml_path(&plugin("weather"))
    );
    assert_refused(&config, &["line 3", "https://*", "every host"]);
    let (status, _, stderr) = run_host(&["serve", "--config", "/nonexistent/host.toml"]);
    assert!(!status.success());
    assert!(
        stderr.contains("cannot read config /nonexistent/host.toml"),
        "{stderr}"
    );
}

#[test]
fn inspect_shows_tools_schemas_and_imports() {
    let weather = plugin("weather");
    let (status, stdout, stderr) = run_host(&["plugin", "inspect", weather.to_str().unwrap()]);
    assert!(status.success(), "{stderr}");
    let digest = hex::encode(Sha256::digest(std::fs::read(&weather).unwrap()));
    assert!(stdout.contains(&format!("sha256: {digest}")), "{stdout}");
    assert!(stdout.contains("get_weather"), "{stdout}");
    assert!(stdout.contains("\"maxLength\": 100"), "{stdout}");
    assert!(stdout.contains("output-schema:"), "{stdout}");
    assert!(
        stdout.contains("annotations: read-only, open-world"),
        "{stdout}"
    );
    for import in [
        "mcp:tools/credentials@0.2.0",
        "wasi:http/outgoing-handler@0.2",
    ] {
        assert!(stdout.contains(import), "{import} missing:\n{stdout}");
    }
    assert!(stdout.contains("only `allowed_outbound_hosts`"), "{stdout}");

    let (status, _, stderr) = run_host(&["plugin", "inspect", "/nonexistent.wasm"]);
    assert!(!status.success());
    assert!(stderr.contains("cannot read /nonexistent.wasm"), "{stderr}");
}

#[test]
fn a_low_open_file_limit_is_reported_at_start() {
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n[plugins.weather]\npath = {}\n",
        toml_path(&plugin("weather"))
    );
    // 16 calls (and the pool's spares) of up to 272 descriptors each do not fit in 512.
    let host = Host::start_with_fd_limit(&config, &[], 512);
    let warning = "the open-file limit is below what the plugins may hold";
    let log = host.wait_for_log(warning, std::time::Duration::from_secs(5));
    let line = log
        .lines()
        .find(|l| l.contains(warning))
        .unwrap_or_else(|| panic!("no warning in\n{log}"));
    assert!(line.contains("limit=512"), "{line}");
    // It still serves (Host::start waited for it to listen), and says what it needs.
    assert!(line.contains("needed="), "{line}");
}
