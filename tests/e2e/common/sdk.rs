//! Clients written by others (the Python and TypeScript SDKs) run as scripts against a
//! weather host.

use super::config::{ENV_SECRETS, weather_config};
use super::host::Host;
use super::plugins::workspace_root;
use super::upstream::{API_KEY, Upstream};
use std::process::Command;

/// The Python of the test venv, where the README's test command installs the Python MCP
/// SDK.
pub fn python() -> std::path::PathBuf {
    let venv = workspace_root().join("target/test-venv/bin/python");
    assert!(
        venv.exists(),
        "{} is missing: run the README's test command (scripts/test.sh), which installs \
         the Python MCP SDK there",
        venv.display()
    );
    venv
}

/// Runs an SDK client script (`command`) that prints one JSON line of what it saw.
pub fn sdk_client_output(mut command: Command, label: &str) -> serde_json::Value {
    let output = command.output().expect("the SDK client runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{label} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(stdout.trim()).expect("the script prints JSON")
}

/// Runs an SDK client (`run(url, mode, city)`) against a weather host for each
/// `(mode, negotiated version, city)` and checks what it saw (see
/// [`assert_sdk_saw_weather`]), and that the upstream got exactly those cities.
pub async fn check_sdk_client(
    run: fn(&str, &str, &str) -> serde_json::Value,
    cases: &[(&'static str, &'static str, &'static str)],
) {
    let upstream = Upstream::start().await;
    let config = weather_config(&upstream.base_url(), &upstream.base_url(), ENV_SECRETS);
    let host = Host::start(&config, &[("MCP_SECRET_WEATHER_API_KEY", API_KEY)]);
    for &(mode, version, city) in cases {
        let url = host.mcp_url();
        let seen = tokio::task::spawn_blocking(move || run(&url, mode, city))
            .await
            .unwrap();
        assert_sdk_saw_weather(&seen, mode, version, city);
    }
    let cities: Vec<_> = upstream
        .requests()
        .iter()
        .map(|r| r.params["q"].clone())
        .collect();
    let expected: Vec<_> = cases.iter().map(|(_, _, city)| city.to_string()).collect();
    assert_eq!(cities, expected);
}

/// What an SDK client script saw (tests/python, tests/typescript) in `mode`: the
/// negotiated `version`, the weather tool listed with its schema, a report for `city`
/// from the fake upstream, and an over-long city refused by the schema.
pub fn assert_sdk_saw_weather(seen: &serde_json::Value, mode: &str, version: &str, city: &str) {
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
    assert_eq!(seen["structured"]["temperature"], serde_json::json!(21.5));
    assert_eq!(seen["invalid_is_error"], true, "{mode}: {seen}");
    assert!(
        seen["invalid_text"][0]
            .as_str()
            .unwrap()
            .contains("longer than 100"),
        "{seen}"
    );
}
