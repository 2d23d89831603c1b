//! A client written by others: the official Python MCP SDK (pinned in
//! tests/python/requirements.txt, installed by the README's test command) lists and
//! calls the weather tool, in its default 2026-07-28 mode and in legacy mode.

mod common;

use common::{API_KEY, ENV_SECRETS, Host, Upstream, weather_config, workspace_root};
use serde_json::{Value, json};
use std::process::Command;

fn python() -> std::path::PathBuf {
    let venv = workspace_root().join("target/test-venv/bin/python");
    assert!(
        venv.exists(),
        "{} is missing: run the README's test command (scripts/test.sh), which installs \
         the Python MCP SDK there",
        venv.display()
    );
    venv
}

fn run_sdk(url: &str, mode: &str, city: &str) -> Value {
    let script = workspace_root().join("tests/python/sdk_client.py");
    let output = Command::new(python())
        .arg(script)
        .args([url, mode, city])
        .output()
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "sdk client ({mode}) failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(stdout.trim()).expect("the script prints JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_lists_and_calls_in_both_modes() {
    let upstream = Upstream::start().await;
    let config = weather_config(&upstream.base_url(), &upstream.base_url(), ENV_SECRETS);
    let host = Host::start(&config, &[("MCP_SECRET_WEATHER_API_KEY", API_KEY)]);
    let url = host.mcp_url();

    for (mode, version, city) in [
        ("auto", "2026-07-28", "Zürich"),
        ("legacy", "2025-11-25", "Oslo"),
    ] {
        let url = url.clone();
        let seen = tokio::task::spawn_blocking(move || run_sdk(&url, mode, city))
            .await
            .unwrap();
        assert_eq!(seen["protocol_version"], version, "{mode}: {seen}");
        assert_eq!(seen["tools"][0]["name"], "get_weather", "{mode}: {seen}");
        assert_eq!(
            seen["tools"][0]["input_schema"]["properties"]["city"]["maxLength"],
            100
        );
        assert_eq!(seen["is_error"], false, "{mode}: {seen}");
        assert_eq!(
            seen["text"][0],
            format!("{city}: 21.5°C, clear sky, humidity 40%, wind 3.5 m/s")
        );
        assert_eq!(seen["structured"]["city"], city);
        assert_eq!(seen["structured"]["temperature"], json!(21.5));
        assert_eq!(seen["invalid_is_error"], true, "{mode}: {seen}");
        assert!(
            seen["invalid_text"][0]
                .as_str()
                .unwrap()
                .contains("longer than 100"),
            "{seen}"
        );
    }
    let cities: Vec<_> = upstream
        .requests()
        .iter()
        .map(|r| r.params["q"].clone())
        .collect();
    assert_eq!(cities, ["Zürich", "Oslo"]);
}
