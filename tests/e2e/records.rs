//! Every `tools/call` leaves exactly one `tool call` record in the host log, with how
//! it ended (`outcome`), whether it ran or was refused before any plugin ran: unknown
//! tools and invalid arguments included. The record carries the request id the client
//! got back in `x-request-id`.

use crate::common::{Host, call_fixture, connect, plugin, toml_path, toml_str};
use serde_json::json;
use std::time::Duration;

/// A fixture host whose `strict` tool takes only `{"n": integer}`, with tight limits.
fn host() -> Host {
    let tools = json!([
        {"name": "fixture", "input_schema": {"type": "object"}},
        {
            "name": "strict",
            "input_schema": {
                "type": "object",
                "properties": {"n": {"type": "integer"}},
                "required": ["n"],
                "additionalProperties": false
            }
        },
        {
            "name": "typed",
            "input_schema": {"type": "object"},
            "output_schema": {"type": "object", "required": ["n"]}
        }
    ]);
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n[plugins.fix]\npath = {}\n\
         env = {{ FIXTURE_TOOLS = {} }}\n\
         limits = {{ memory = \"16MiB\", timeout = \"500ms\", max_concurrency = 1 }}\n",
        toml_path(&plugin("fixture")),
        toml_str(&tools.to_string()),
    );
    Host::start(&config, &[])
}

/// The `tool call` records written after `mark`, waiting up to 5 s for `count` of them
/// (not at all for 0).
fn records_since(host: &Host, mark: usize, count: usize) -> Vec<String> {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let records: Vec<String> = host.log()[mark..]
            .lines()
            .filter(|l| l.contains(" tool call call_id="))
            .map(str::to_owned)
            .collect();
        if records.len() >= count || std::time::Instant::now() > deadline {
            return records;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_call_has_one_record_naming_its_outcome() {
    let host = host();
    let client = connect(&host.mcp_url()).await;
    let call = |tool: &'static str, arguments: serde_json::Value| {
        rmcp::model::CallToolRequestParams::new(tool)
            .with_arguments(arguments.as_object().unwrap().clone())
    };
    // (tool, arguments, outcome, plugin in the record)
    let cases = [
        ("fixture", json!({"text": "fine"}), "ok", "fix"),
        ("fixture", json!({"is_error": true}), "tool_error", "fix"),
        ("fixture", json!({"error": "broken"}), "tool_error", "fix"),
        ("strict", json!({"n": "seven"}), "invalid_arguments", "fix"),
        ("no_such_tool", json!({}), "unknown_tool", "-"),
        ("fixture", json!({"spin": true}), "timeout", "fix"),
        ("fixture", json!({"hog": true}), "out_of_memory", "fix"),
        ("fixture", json!({"panic": true}), "crashed", "fix"),
        (
            "typed",
            json!({"text": "no structured"}),
            "output_rejected",
            "fix",
        ),
    ];
    for (tool, arguments, outcome, plugin) in cases {
        let mark = host.log_mark();
        // An unknown tool is a protocol error; everything else is a result.
        let _ = client.call_tool(call(tool, arguments.clone())).await;
        records_since(&host, mark, 1);
        // Give a stray second record the chance to appear before counting.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let records = records_since(&host, mark, 0);
        assert_eq!(records.len(), 1, "{tool} {arguments}: {records:#?}");
        let record = &records[0];
        assert!(
            record.contains(&format!("outcome={outcome} ")),
            "{tool} {arguments}: {record}"
        );
        assert!(record.contains(&format!("plugin={plugin} ")), "{record}");
        assert!(record.contains(&format!("tool=\"{tool}\"")), "{record}");
        assert!(
            record.contains("subject=\"anonymous\" client_id=\"-\" transport=http "),
            "{record}"
        );
        assert!(record.contains("peer=127.0.0.1:"), "{record}");
    }
    client.cancel().await.ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_call_is_recorded_busy() {
    // The first call holds the plugin's only slot for 5 s; the second gives up after 2.
    let (_upstream, host, held, second) = crate::limits::one_slot_held_for(5_000).await;
    let mark = host.log_mark();
    let busy = call_fixture(&second, json!({"text": "hi"})).await;
    assert_eq!(busy.is_error, Some(true), "{busy:?}");
    let records = records_since(&host, mark, 1);
    assert_eq!(records.len(), 1, "{records:#?}");
    assert!(records[0].contains("outcome=busy "), "{}", records[0]);
    held.await.unwrap();
    second.cancel().await.ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_record_carries_the_request_id_the_client_got() {
    let host = host();
    // A stateless 2026-07-28 request, as a client sends it.
    let body = json!({
        "jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {
            "name": "strict",
            "arguments": {"n": "x"},
            "_meta": {
                "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                "io.modelcontextprotocol/clientCapabilities": {}
            }
        }
    });
    let mark = host.log_mark();
    let response = reqwest::Client::new()
        .post(host.mcp_url())
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tools/call")
        .header("mcp-name", "strict")
        .header("x-request-id", "client-chosen")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_ne!(id, "client-chosen");
    let text = response.text().await.unwrap();
    assert!(text.contains("Invalid arguments for `strict`"), "{text}");
    let records = records_since(&host, mark, 1);
    assert_eq!(records.len(), 1, "{records:#?}");
    assert!(
        records[0].contains(&format!(
            "tool call call_id={id} outcome=invalid_arguments "
        )),
        "{}",
        records[0]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_lines_are_json_objects_on_request() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("host.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n[auth]\nmode = \"off\"\n[plugins.fix]\npath = {}\n",
            toml_path(&plugin("fixture"))
        ),
    )
    .unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_mcp-wasm-host"))
        .args(["--log-format", "json", "serve", "--config"])
        .arg(&config)
        .env_clear()
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
    let url = line
        .trim()
        .strip_prefix("mcp-wasm-host listening on ")
        .unwrap_or_else(|| panic!("{line}"))
        .to_owned();
    let client = connect(&url).await;
    call_fixture(&client, json!({"text": "hi"})).await;
    client.cancel().await.ok();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let _ = child.kill();
    let output = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let record = lines
        .iter()
        .find(|l| l["fields"]["message"] == "tool call")
        .unwrap_or_else(|| panic!("no tool call record in {log}"));
    assert_eq!(record["level"], "INFO");
    assert_eq!(record["fields"]["outcome"], "ok");
    assert_eq!(record["fields"]["tool"], "\"fixture\"");
    assert!(record["timestamp"].is_string(), "{record}");
}
