//! A client written by others: the official TypeScript MCP client SDK (pinned in
//! tests/typescript/package-lock.json, installed by the README's test command) lists and
//! calls the weather tool, in its default (2025-11-25) negotiation and in the mode that
//! probes for 2026-07-28.

mod common;

use common::{
    API_KEY, ENV_SECRETS, Host, Upstream, assert_sdk_saw_weather, sdk_client_output,
    weather_config, workspace_root,
};
use serde_json::Value;
use std::process::Command;

fn run_sdk(url: &str, mode: &str, city: &str) -> Value {
    let folder = workspace_root().join("tests/typescript");
    assert!(
        folder
            .join("node_modules/@modelcontextprotocol/client")
            .exists(),
        "the TypeScript SDK is missing: run the README's test command (scripts/test.sh), \
         which installs it with `npm ci` in {}",
        folder.display()
    );
    let mut command = Command::new("node");
    command
        .current_dir(&folder)
        .args(["sdk_client.mjs", url, city, mode]);
    sdk_client_output(command, &format!("typescript sdk client ({mode})"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typescript_sdk_lists_and_calls() {
    let upstream = Upstream::start().await;
    let config = weather_config(&upstream.base_url(), &upstream.base_url(), ENV_SECRETS);
    let host = Host::start(&config, &[("MCP_SECRET_WEATHER_API_KEY", API_KEY)]);
    let url = host.mcp_url();
    for (mode, version, city) in [
        ("legacy", "2025-11-25", "Oslo"),
        ("auto", "2026-07-28", "Zürich"),
    ] {
        let url = url.clone();
        let seen = tokio::task::spawn_blocking(move || run_sdk(&url, mode, city))
            .await
            .unwrap();
        assert_sdk_saw_weather(&seen, mode, version, city);
    }
    let cities: Vec<_> = upstream
        .requests()
        .iter()
        .map(|r| r.params["q"].clone())
        .collect();
    assert_eq!(cities, ["Oslo", "Zürich"]);
}
