//! `plugin new`: the crate it writes passes its own unit test, builds for
//! `wasm32-wasip2` as a plugin author would build it, and the config table it prints
//! serves its tool.

use crate::common::{Host, run_host, stateless_result};
use std::process::Command;

/// Runs `cargo ARGS` in `dir`, as an author would in a shell; panics with its output.
fn cargo(dir: &std::path::Path, args: &[&str]) {
    let output = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(args)
        .current_dir(dir)
        // Not the test's own build settings: the author's shell has none of them.
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .output()
        .expect("cargo runs");
    assert!(
        output.status.success(),
        "cargo {args:?} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_plugin_builds_loads_and_answers() {
    let dir = tempfile::tempdir().unwrap();
    let parent = dir.path().to_str().unwrap();
    let (status, stdout, stderr) = run_host(&["plugin", "new", "hello-tool", "--dir", parent]);
    assert!(status.success(), "{stderr}");
    assert!(stdout.contains("[plugins.hello-tool]"), "{stdout}");
    let crate_dir = dir.path().join("hello-tool");

    cargo(&crate_dir, &["test", "--quiet"]);
    cargo(
        &crate_dir,
        &["build", "--release", "--target", "wasm32-wasip2"],
    );

    // The table the command printed, as the operator would paste it.
    let table = stdout
        .split_once("[plugins.hello-tool]")
        .map(|(_, rest)| format!("[plugins.hello-tool]{rest}"))
        .unwrap();
    let host = Host::start(&format!("[server]\nlisten = \"127.0.0.1:0\"\n{table}"), &[]);
    let greeted =
        stateless_result(&host.mcp_url(), "greet", serde_json::json!({"name": "Ada"})).await;
    assert_eq!(greeted["content"][0]["text"], "Hello, Ada!", "{greeted}");
    // The schema the SDK derived is enforced by the host.
    let refused = stateless_result(
        &host.mcp_url(),
        "greet",
        serde_json::json!({"name": "Ada", "age": 3}),
    )
    .await;
    assert_eq!(refused["isError"], true, "{refused}");

    // A second `plugin new` with the same name changes nothing.
    let (status, _, stderr) = run_host(&["plugin", "new", "hello-tool", "--dir", parent]);
    assert!(!status.success());
    assert!(stderr.contains("already exists"), "{stderr}");
}
