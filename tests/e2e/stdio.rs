//! `serve --stdio`: MCP over stdin and stdout through the same pipeline as HTTP. The
//! official Python SDK starts the host as a desktop client would; stdout carries only
//! MCP messages (the SDK would fail on anything else) and the log goes to stderr.

use crate::common::{
    API_KEY, ENV_SECRETS, Upstream, assert_sdk_saw_weather, python, weather_config, workspace_root,
};
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_lists_and_calls_over_stdio() {
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("host.toml");
    let text = weather_config(&upstream.base_url(), &upstream.base_url(), ENV_SECRETS);
    std::fs::write(&config, text).unwrap();
    let cases = [
        ("legacy", "2025-11-25", "Oslo"),
        ("auto", "2026-07-28", "Zürich"),
    ];
    for (mode, version, city) in cases {
        let config = config.clone();
        let output = tokio::task::spawn_blocking(move || {
            Command::new(python())
                .arg(workspace_root().join("tests/python/sdk_client.py"))
                .arg("stdio")
                .arg(env!("CARGO_BIN_EXE_mcp-wasm-host"))
                .arg(&config)
                .args([mode, city])
                .env("MCP_SECRET_WEATHER_API_KEY", API_KEY)
                .env("RUST_LOG", "info")
                .output()
                .expect("the Python SDK client runs")
        })
        .await
        .unwrap();
        let (stdout, log) = (
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
        );
        assert!(output.status.success(), "{mode}:\n{stdout}\n{log}");
        let seen: serde_json::Value = serde_json::from_str(stdout.trim()).expect("JSON");
        assert_sdk_saw_weather(&seen, mode, version, city);
        // The host's log reached stderr: one record per call, local caller, stdio.
        let records: Vec<&str> = log.lines().filter(|l| l.contains("tool call ")).collect();
        assert_eq!(records.len(), 2, "{mode}:\n{log}");
        for (record, outcome) in records.iter().zip(["ok", "invalid_arguments"]) {
            assert!(record.contains(&format!("outcome={outcome} ")), "{record}");
            assert!(record.contains("subject=\"local\""), "{record}");
            assert!(record.contains("transport=stdio"), "{record}");
        }
        assert!(!log.contains(API_KEY), "the key is in the host log");
    }
    let cities: Vec<_> = upstream
        .requests()
        .iter()
        .map(|r| r.params["q"].clone())
        .collect();
    assert_eq!(cities, ["Oslo", "Zürich"]);
}

#[test]
fn stdout_carries_only_mcp_and_the_host_ends_with_its_input() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("host.toml");
    let text = weather_config("http://127.0.0.1:9", "http://127.0.0.1:9", ENV_SECRETS);
    std::fs::write(&config, text).unwrap();
    let mut host = Command::new(env!("CARGO_BIN_EXE_mcp-wasm-host"))
        .args(["serve", "--stdio", "--config"])
        .arg(&config)
        .env_clear()
        .env("RUST_LOG", "info")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Read the log as it comes, so the host never blocks on a full pipe.
    let mut stderr = host.stderr.take().unwrap();
    let log = std::thread::spawn(move || {
        let mut log = String::new();
        std::io::Read::read_to_string(&mut stderr, &mut log).unwrap();
        log
    });
    let mut host = KillOnDrop(host);
    let mut stdin = host.0.stdin.take().unwrap();
    writeln!(
        stdin,
        r#"{{"jsonrpc":"2.0","id":1,"method":"initialize","params":{{"protocolVersion":"2025-11-25","capabilities":{{}},"clientInfo":{{"name":"raw","version":"1"}}}}}}"#
    )
    .unwrap();
    let mut stdout = BufReader::new(host.0.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let answer: serde_json::Value = serde_json::from_str(&line).expect("a JSON-RPC line");
    assert_eq!(answer["id"], 1, "{answer}");
    assert_eq!(answer["result"]["serverInfo"]["name"], "mcp-wasm-host");
    // Closing stdin ends the server, cleanly, with nothing more on stdout.
    drop(stdin);
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = host.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the host did not exit after stdin closed"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status}");
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    assert_eq!(rest, "", "stdout after the answer");
    let log = log.join().unwrap();
    assert!(log.contains("serving MCP on stdio"), "{log}");
}

/// A child process killed when the test ends, however it ends.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
