//! The credential store through the real binary: `keygen`, `secrets set/list/rm/
//! rotate-kek`, the host refusing to start on a missing, undecryptable or tampered
//! secret, and a full run whose every output is searched for the secret value.

use crate::common::{
    API_KEY, Host, Secrets, Upstream, connect, run_host, start_refused, weather_config,
};
use rmcp::model::CallToolRequestParams;
use serde_json::json;
use std::time::Duration;

#[test]
fn keygen_prints_a_fresh_32_byte_key() {
    use base64::Engine as _;
    let (status, first, _) = run_host(&["keygen"]);
    assert!(status.success());
    let (_, second, _) = run_host(&["keygen"]);
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(first.trim())
        .unwrap();
    assert_eq!(bytes.len(), 32);
    assert_ne!(first, second);
}

#[test]
fn set_list_rm() {
    let secrets = Secrets::new(&[]);
    secrets.set("alpha", "value-alpha-1").unwrap();
    secrets.set("beta", "value-beta-2").unwrap();
    let (status, stdout, stderr) = secrets.cli(&["list"], "");
    assert!(status.success(), "{stderr}");
    let names: Vec<&str> = stdout
        .lines()
        .map(|l| l.split('\t').next().unwrap())
        .collect();
    assert_eq!(names, ["alpha", "beta"]);
    assert!(stdout.contains("created 20"), "{stdout}");
    assert!(!stdout.contains("value-"), "list shows a value: {stdout}");

    let (status, _, stderr) = secrets.cli(&["rm", "alpha"], "");
    assert!(status.success(), "{stderr}");
    let (_, stdout, _) = secrets.cli(&["list"], "");
    assert!(
        !stdout.contains("alpha") && stdout.contains("beta"),
        "{stdout}"
    );
    let (status, _, stderr) = secrets.cli(&["rm", "alpha"], "");
    assert!(!status.success());
    assert!(stderr.contains("no secret `alpha`"), "{stderr}");

    let store = std::fs::read_to_string(secrets.store_path()).unwrap();
    assert!(
        !store.contains("value-beta-2"),
        "plaintext in the store file"
    );
}

#[test]
fn bad_input_is_refused_and_nothing_stored_is_lost() {
    let secrets = Secrets::new(&[("keep", "kept-value")]);
    let err = secrets.set("bad name", "x").unwrap_err();
    assert!(err.contains("credential name"), "{err}");
    let err = secrets.set("empty", "").unwrap_err();
    assert!(err.contains("empty"), "{err}");
    let err = secrets.set("huge", &"x".repeat(70_000)).unwrap_err();
    assert!(err.contains("longer than"), "{err}");
    // The value can only come from stdin: an extra argument is a usage error.
    let (status, _, stderr) = secrets.cli(&["set", "name", "value-on-argv"], "");
    assert!(!status.success());
    assert!(stderr.contains("unexpected argument"), "{stderr}");
    // Without the KEK nothing is written.
    let (status, _, stderr) = run_host(&[
        "secrets",
        "set",
        "other",
        "--config",
        secrets.config_path().to_str().unwrap(),
    ]);
    assert!(!status.success());
    assert!(stderr.contains("MCP_HOST_KEK"), "{stderr}");
    let (_, stdout, _) = secrets.cli(&["list"], "");
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(stdout.starts_with("keep\t"), "{stdout}");
}

#[test]
fn concurrent_writers_keep_every_update() {
    let secrets = Secrets::new(&[]);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let secrets = &secrets;
                scope.spawn(move || secrets.set(&format!("name-{i}"), &format!("value-{i}")))
            })
            .collect();
        for handle in handles {
            handle.join().unwrap().unwrap();
        }
    });
    let (_, stdout, _) = secrets.cli(&["list"], "");
    let names: Vec<&str> = stdout
        .lines()
        .map(|l| l.split('\t').next().unwrap())
        .collect();
    assert_eq!(
        names,
        (0..8).map(|i| format!("name-{i}")).collect::<Vec<_>>(),
        "{stdout}"
    );
}

#[cfg(unix)]
#[test]
fn kek_file_readable_by_others_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    std::fs::create_dir(&keys).unwrap();
    let kek_file = keys.join("kek");
    let (_, kek, _) = run_host(&["keygen"]);
    std::fs::write(&kek_file, kek).unwrap();
    std::fs::set_permissions(&kek_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let config = dir.path().join("host.toml");
    std::fs::write(
        &config,
        format!(
            "[secrets]\nstore = \"data/secrets.json\"\nkek_file = {}\n",
            crate::common::toml_path(&kek_file)
        ),
    )
    .unwrap();
    let (status, _, stderr) = run_host(&["secrets", "list", "--config", config.to_str().unwrap()]);
    assert!(!status.success());
    assert!(stderr.contains("chmod 600"), "{stderr}");
    std::fs::set_permissions(&kek_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let (status, _, stderr) = run_host(&["secrets", "list", "--config", config.to_str().unwrap()]);
    assert!(status.success(), "{stderr}");
}

fn refused_with(secrets: &Secrets, kek: &str, needles: &[&str]) {
    let config = weather_config(
        "http://127.0.0.1:9",
        "http://127.0.0.1:9",
        &secrets.section(),
    );
    let (status, stderr) = start_refused(&config, &[("MCP_HOST_KEK", kek)]);
    assert!(!status.success(), "{stderr}");
    for needle in needles {
        assert!(stderr.contains(needle), "missing {needle:?}:\n{stderr}");
    }
}

#[test]
fn host_refuses_to_start_on_unusable_secrets() {
    let secrets = Secrets::new(&[("weather-api-key", "the-real-key-41")]);
    // Wrong KEK.
    let (_, other_kek, _) = run_host(&["keygen"]);
    refused_with(
        &secrets,
        other_kek.trim(),
        &[
            "plugin `weather`",
            "credential `weather-api-key`",
            "configured KEK",
        ],
    );
    // Tampered ciphertext.
    let store = secrets.store_path();
    let mut json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&store).unwrap()).unwrap();
    let sealed = &mut json["secrets"]["weather-api-key"]["sealed"];
    let ciphertext = sealed["ciphertext"].as_str().unwrap();
    let flipped = if ciphertext.starts_with('A') {
        "B"
    } else {
        "A"
    };
    sealed["ciphertext"] = format!("{flipped}{}", &ciphertext[1..]).into();
    std::fs::write(&store, serde_json::to_vec(&json).unwrap()).unwrap();
    refused_with(
        &secrets,
        &secrets.kek,
        &[
            "plugin `weather`",
            "credential `weather-api-key`",
            "does not decrypt",
        ],
    );
    // Not a store at all.
    std::fs::write(&store, b"garbage").unwrap();
    refused_with(&secrets, &secrets.kek, &["not a valid store file"]);
}

/// A weather host whose key comes from `secrets`, opened with the KEK in `env`, and a
/// client connected to it.
async fn serve_weather(
    upstream: &Upstream,
    secrets: &Secrets,
    env: &[(&str, &str)],
) -> (Host, crate::common::Client) {
    let config = weather_config(
        &upstream.base_url(),
        &upstream.base_url(),
        &secrets.section(),
    );
    let host = Host::start(&config, env);
    let client = connect(&host.mcp_url()).await;
    (host, client)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_through_the_cli() {
    let upstream = Upstream::start().await;
    let secrets = Secrets::new(&[("weather-api-key", API_KEY)]);
    let (_, new_kek, _) = run_host(&["keygen"]);
    let new_kek = new_kek.trim().to_owned();

    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_mcp-wasm-host"));
    let output = command
        .args([
            "secrets",
            "rotate-kek",
            "--new-kek-env",
            "NEW_KEK",
            "--config",
        ])
        .arg(secrets.config_path())
        .env_clear()
        .envs(secrets.env())
        .env("NEW_KEK", &new_kek)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("re-wrapped 1 secret(s)"), "{stderr}");

    // The old KEK no longer opens the store; the new one does, end to end.
    refused_with(&secrets, &secrets.kek, &["configured KEK"]);
    let (_host, client) = serve_weather(&upstream, &secrets, &[("MCP_HOST_KEK", &new_kek)]).await;
    let result = client
        .call_tool(
            CallToolRequestParams::new("get_weather")
                .with_arguments(json!({"city": "Oslo"}).as_object().unwrap().clone()),
        )
        .await
        .unwrap();
    assert_eq!(result.is_error, Some(false), "{result:?}");
    assert_eq!(upstream.requests()[0].params["appid"], API_KEY);
    client.cancel().await.ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_output_anywhere_contains_the_secret() {
    let upstream = Upstream::start().await;
    let secret = "sk-live-0b5e2f8d9c41a7";
    let secrets = Secrets::new(&[("weather-api-key", secret)]);
    let (host, client) = serve_weather(&upstream, &secrets, &secrets.env()).await;
    let mut responses = Vec::new();
    for arguments in [
        json!({"city": "Oslo"}),
        json!({"city": "Atlantis"}),
        json!({"city": "Meltdown"}),
        json!({"city": "Garbled"}),
        json!({"city": 1}),
    ] {
        let result = client
            .call_tool(
                CallToolRequestParams::new("get_weather")
                    .with_arguments(arguments.as_object().unwrap().clone()),
            )
            .await
            .unwrap();
        responses.push(serde_json::to_string(&result).unwrap());
    }
    let tools = client.list_all_tools().await.unwrap();
    responses.push(serde_json::to_string(&tools).unwrap());
    client.cancel().await.ok();
    // The key did reach the upstream: the search below is not vacuous.
    assert_eq!(upstream.requests()[0].params["appid"], secret);

    let (_, listed, list_err) = secrets.cli(&["list"], "");
    let mut outputs = vec![
        ("host log", {
            // Five calls, four of which reached the plugin (the fifth was refused by the
            // schema): wait until the log has all five records.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
            let mut log = host.log();
            while log.matches("tool call").count() < 5 && std::time::Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_millis(20));
                log = host.log();
            }
            assert_eq!(log.matches("tool call").count(), 5, "{log}");
            assert_eq!(log.matches("weather-api-key:granted").count(), 4, "{log}");
            log
        }),
        ("secrets list", format!("{listed}{list_err}")),
        (
            "store file",
            std::fs::read_to_string(secrets.store_path()).unwrap(),
        ),
    ];
    for (i, response) in responses.into_iter().enumerate() {
        outputs.push(if i == 0 {
            ("first response", response)
        } else {
            ("a response", response)
        });
    }
    for (what, text) in &outputs {
        assert!(!text.is_empty() || *what != "host log", "empty {what}");
        assert!(
            !text.contains(secret),
            "the secret is in the {what}:\n{text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_changed_while_serving_is_used_by_the_next_call() {
    let upstream = Upstream::start().await;
    let secrets = Secrets::new(&[("weather-api-key", "stale-key")]);
    let (host, client) = serve_weather(&upstream, &secrets, &secrets.env()).await;
    let oslo = || {
        CallToolRequestParams::new("get_weather")
            .with_arguments(json!({"city": "Oslo"}).as_object().unwrap().clone())
    };
    let result = client.call_tool(oslo()).await.unwrap();
    assert_eq!(
        result.is_error,
        Some(true),
        "the stale key worked: {result:?}"
    );

    // The operator fixes the key with the CLI; no restart.
    secrets.set("weather-api-key", API_KEY).unwrap();
    let result = client.call_tool(oslo()).await.unwrap();
    assert_eq!(result.is_error, Some(false), "{result:?}");
    assert_eq!(upstream.requests().last().unwrap().params["appid"], API_KEY);
    let log = host.wait_for_log("secret store reloaded", Duration::from_secs(5));
    assert!(log.contains("secret store reloaded"), "{log}");

    // A broken store file does not take the loaded keys away.
    std::fs::write(secrets.store_path(), "{ not json").unwrap();
    let result = client.call_tool(oslo()).await.unwrap();
    assert_eq!(result.is_error, Some(false), "{result:?}");
    let log = host.wait_for_log("not a valid store file", Duration::from_secs(5));
    assert!(
        log.contains("keeping the credentials loaded before")
            && log.contains("not a valid store file"),
        "{log}"
    );
    assert!(!log.contains(API_KEY), "the key is in the log");
    client.cancel().await.ok();
}
