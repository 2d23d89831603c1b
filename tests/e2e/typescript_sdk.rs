//! A client written by others: the official TypeScript MCP client SDK (pinned in
//! tests/typescript/package-lock.json, installed by the README's test command) lists and
//! calls the weather tool, in its default (2025-11-25) negotiation and in the mode that
//! probes for 2026-07-28.

use crate::common::{check_sdk_client, sdk_client_output, workspace_root};
use serde_json::Value;
use std::process::Command;
use std::time::Duration;

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
    check_sdk_client(
        run_sdk,
        &[
            ("legacy", "2025-11-25", "Oslo"),
            ("auto", "2026-07-28", "Zürich"),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typescript_sdk_walks_the_oauth_flow() {
    let state = crate::oauth::State::new();
    state.add_user("alice", "alice-password-1", &[]);
    let host = state.start("scopes_supported = [\"fix:read\"]\n");
    let url = host.mcp_url();
    let seen = tokio::task::spawn_blocking(move || {
        let mut command = Command::new("node");
        command
            .current_dir(workspace_root().join("tests/typescript"))
            .args([
                "oauth_client.mjs",
                url.as_str(),
                "alice",
                "alice-password-1",
            ]);
        sdk_client_output(command, "typescript oauth client")
    })
    .await
    .unwrap();
    assert_eq!(seen["first_scope"], "fix:read", "{seen}");
    assert_eq!(seen["tools"], serde_json::json!(["open", "read"]), "{seen}");
    assert_eq!(seen["read"], serde_json::json!(["first"]), "{seen}");
    // The 403 for fix:admin led to a second authorization asking for both scopes.
    assert_eq!(seen["admin"], serde_json::json!(["stepped up"]), "{seen}");
    let second = seen["authorizations"][1].as_str().unwrap_or_default();
    assert!(second.contains("fix:admin"), "{seen}");
    // The spoiled token led to a refresh, not a third login.
    assert_eq!(
        seen["refreshed"],
        serde_json::json!(["after refresh"]),
        "{seen}"
    );
    assert_eq!(
        seen["authorizations"].as_array().unwrap().len(),
        seen["logins_before_refresh"].as_u64().unwrap() as usize,
        "{seen}"
    );
    assert_eq!(seen["access_tokens"], 3, "{seen}");
    let client_id = seen["client_id"].as_str().unwrap();
    let named = format!("client_id=\"{client_id}\"");
    assert!(
        host.wait_for_log(&named, Duration::from_secs(5))
            .contains(&named)
    );
}
