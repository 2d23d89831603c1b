//! A client written by others: the official TypeScript MCP client SDK (pinned in
//! tests/typescript/package-lock.json, installed by the README's test command) lists and
//! calls the weather tool, in its default (2025-11-25) negotiation and in the mode that
//! probes for 2026-07-28.

use crate::common::{check_sdk_client, sdk_client_output, workspace_root};
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
    check_sdk_client(
        run_sdk,
        &[
            ("legacy", "2025-11-25", "Oslo"),
            ("auto", "2026-07-28", "Zürich"),
        ],
    )
    .await;
}
