//! A client written by others: the official Python MCP SDK (pinned in
//! tests/python/requirements.txt, installed by the README's test command) lists and
//! calls the weather tool, in its default 2026-07-28 mode and in legacy mode.

mod common;

use common::{check_sdk_client, sdk_client_output, workspace_root};
use serde_json::Value;
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
