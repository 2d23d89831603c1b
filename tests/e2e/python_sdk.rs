//! A client written by others: the official Python MCP SDK (pinned in
//! tests/python/requirements.txt, installed by the README's test command) lists and
//! calls the weather tool, in its default 2026-07-28 mode and in legacy mode.

use crate::common::{check_sdk_client, python, sdk_client_output, workspace_root};
use serde_json::Value;
use std::process::Command;

fn run_sdk(url: &str, mode: &str, city: &str) -> Value {
    let mut command = Command::new(python());
    command
        .arg(workspace_root().join("tests/python/sdk_client.py"))
        .args([url, mode, city]);
    sdk_client_output(command, &format!("python sdk client ({mode})"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_lists_and_calls_in_both_modes() {
    check_sdk_client(
        run_sdk,
        &[
            ("auto", "2026-07-28", "Zürich"),
            ("legacy", "2025-11-25", "Oslo"),
        ],
    )
    .await;
}
