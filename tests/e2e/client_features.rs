//! Plugins reaching the client whose request they serve (the `client` import): the
//! official Python SDK answering sampling and elicitation and hearing log messages and
//! progress; sampling a plugin was not granted; elicitation's own wait, which the
//! call's time limit does not count; and a call the client cancels.

#![allow(
    deprecated,
    reason = "rmcp marks sampling deprecated for the 2026-07-28 draft; 2025-11-25 clients use it"
)]
use crate::common::{Host, call_fixture, first_text, plugin, python, toml_path, workspace_root};
use rmcp::model::{
    CallToolRequestParams, ClientRequest, CreateMessageRequestParams, CreateMessageResult,
    ElicitRequestParams, ElicitResult, ProtocolVersion,
};
use rmcp::service::{PeerRequestOptions, RequestContext};
use rmcp::{ClientHandler, ErrorData as McpError, RoleClient, ServiceExt};
use serde_json::{Value, json};
use std::process::Command;
use std::time::{Duration, Instant};

/// A fixture plugin table with `extra` lines.
fn fixture_config(extra: &str) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n[plugins.fixture]\npath = {}\n{extra}\n",
        toml_path(&plugin("fixture"))
    )
}

#[test]
fn the_python_sdk_answers_sampling_and_elicitation_and_hears_logs_and_progress() {
    let host = Host::start(
        &format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n[plugins.conformance]\npath = {}\n\
             client_features = [\"sampling\", \"elicitation\"]\n",
            toml_path(&plugin("conformance"))
        ),
        &[],
    );
    let run = Command::new(python())
        .arg(workspace_root().join("tests/python/client_features.py"))
        .arg(host.mcp_url())
        .output()
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "the python client failed: {}\n{stdout}\n{}\n--- host log ---\n{}",
        run.status,
        String::from_utf8_lossy(&run.stderr),
        host.log()
    );
    let seen: Value = serde_json::from_str(stdout.trim()).expect("the client prints JSON");
    let legacy = &seen["legacy"];
    assert_eq!(legacy["protocol_version"], "2025-11-25");

    // Logging: the tool sends one debug and three info messages. By default the
    // session hears the info ones; at `warning` none; at `debug` all four.
    let data = |logs: &Value| -> Vec<String> {
        logs.as_array()
            .unwrap()
            .iter()
            .map(|l| {
                format!(
                    "{}: {}",
                    l["level"].as_str().unwrap(),
                    l["data"].as_str().unwrap()
                )
            })
            .collect()
    };
    let info = [
        "info: Tool execution started",
        "info: Tool processing data",
        "info: Tool execution completed",
    ];
    assert_eq!(data(&legacy["logs_by_default"]), info);
    assert_eq!(legacy["quiet_is_error"], false);
    assert_eq!(legacy["logs_when_warning"], 0, "{legacy}");
    let mut all = vec!["debug: Tool debug detail"];
    all.extend(info);
    assert_eq!(data(&legacy["logs"]), all);
    assert!(
        legacy["logs"]
            .as_array()
            .unwrap()
            .iter()
            .all(|l| l["logger"] == "conformance"),
        "{legacy}"
    );

    // Progress: 0, 50, 100 of 100.
    assert_eq!(
        legacy["progress"],
        json!([
            [0.0, 100.0, null],
            [50.0, 100.0, null],
            [100.0, 100.0, null]
        ])
    );

    // Sampling: the prompt reached the callback; its answer reached the tool.
    assert_eq!(
        legacy["sampled"],
        json!([{"messages": ["Capital of France?"], "max_tokens": 100}])
    );
    assert_eq!(legacy["sample_is_error"], false);
    assert_eq!(legacy["sample"], json!(["LLM response: Paris, of course."]));

    // Elicitation: the schema arrived as written; accepted and declined answers return.
    let elicited = legacy["elicited"].as_array().unwrap();
    assert_eq!(
        elicited[0]["schema"]["required"],
        json!(["username", "email"])
    );
    let accepted = legacy["accepted"][0].as_str().unwrap();
    assert!(
        accepted.starts_with("User response: action=accept")
            && accepted.contains("\"username\":\"ada\""),
        "{accepted}"
    );
    assert_eq!(legacy["declined"], json!(["User response: action=decline"]));
    // The SDK's typed form: an enum, an optional number and a boolean, inline.
    assert_eq!(elicited.len(), 3);
    let form = &elicited[2]["schema"];
    assert_eq!(
        form["properties"]["size"]["enum"],
        json!(["small", "large"])
    );
    assert_eq!(form["properties"]["sugar"]["type"], "integer");
    assert_eq!(form["required"], json!(["size", "oat_milk"]));
    assert_eq!(
        legacy["coffee"],
        json!(["Ordered: large coffee, 0 sugar, oat milk"])
    );

    // 2026-07-28 forbids server requests: the host answers with input-required
    // results, the SDK asks the same callbacks and retries, and the plugin runs again
    // with the answers.
    let modern = &seen["modern"];
    assert_eq!(modern["protocol_version"], "2026-07-28");
    assert_eq!(
        modern["asked"],
        json!([
            "sampling: Capital of Italy?",
            "elicitation: How would you like your coffee?"
        ])
    );
    assert_eq!(modern["is_error"], false, "{modern}");
    assert_eq!(modern["text"], json!(["LLM response: Rome."]));
    assert_eq!(
        modern["coffee"],
        json!(["Ordered: small coffee, 2 sugar, cow's milk"])
    );
    // Log messages go only to a request that names its level in `_meta`, at or above it.
    assert_eq!(modern["logs_unasked"], 0);
    assert_eq!(modern["logs_at_notice"], 0);
    assert_eq!(
        modern["logs"],
        json!([
            "Tool execution started",
            "Tool processing data",
            "Tool execution completed"
        ])
    );
}

/// A 2025-11-25 client that answers sampling at once and elicitation after `delay`,
/// and counts the requests the host tells it it no longer needs.
#[derive(Clone)]
struct Answering {
    delay: Duration,
    cancels: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl ClientHandler for Answering {
    fn get_info(&self) -> rmcp::model::ClientConfig {
        let capabilities = serde_json::from_value(json!({"sampling": {}, "elicitation": {}}))
            .expect("capabilities");
        let mut info = rmcp::model::ClientConfig::default()
            .with_protocol_version(ProtocolVersion::V_2025_11_25);
        info.capabilities = capabilities;
        info
    }

    async fn create_message(
        &self,
        _params: CreateMessageRequestParams,
        _context: RequestContext<RoleClient>,
    ) -> Result<CreateMessageResult, McpError> {
        Ok(serde_json::from_value(json!({
            "role": "assistant",
            "content": {"type": "text", "text": "sampled"},
            "model": "rust-test-model",
        }))
        .expect("a sampling result"))
    }

    async fn on_cancelled(
        &self,
        _params: rmcp::model::CancelledNotificationParam,
        _context: rmcp::service::NotificationContext<RoleClient>,
    ) {
        self.cancels
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }

    async fn create_elicitation(
        &self,
        _request: ElicitRequestParams,
        _context: RequestContext<RoleClient>,
    ) -> Result<ElicitResult, McpError> {
        tokio::time::sleep(self.delay).await;
        Ok(
            serde_json::from_value(json!({"action": "accept", "content": {"answer": "42"}}))
                .expect("an elicitation result"),
        )
    }
}

async fn session(
    host: &Host,
    delay: Duration,
) -> rmcp::service::RunningService<RoleClient, Answering> {
    Answering {
        delay,
        cancels: Default::default(),
    }
    .serve(rmcp::transport::StreamableHttpClientTransport::from_uri(
        host.mcp_url(),
    ))
    .await
    .expect("a 2025-11-25 session opens")
}

async fn call(
    client: &rmcp::service::RunningService<RoleClient, Answering>,
    arguments: Value,
) -> String {
    let result = client
        .call_tool(
            CallToolRequestParams::new("fixture")
                .with_arguments(arguments.as_object().expect("an object").clone()),
        )
        .await
        .expect("tools/call answers");
    first_text(&result)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_without_the_grant_cannot_sample_or_elicit() {
    let host = Host::start(&fixture_config("client_features = [\"elicitation\"]"), &[]);
    let client = session(&host, Duration::ZERO).await;
    assert_eq!(
        call(&client, json!({"sample": "hi"})).await,
        "sample failed: Error::NotGranted"
    );
    // The granted feature works in the same plugin.
    assert_eq!(
        call(&client, json!({"elicit": "answer?"})).await,
        "elicited: {\"answer\":\"42\"}"
    );
    // An elicitation schema MCP does not allow is refused before the client sees it.
    let bad = call(
        &client,
        json!({"elicit": "nested?", "elicit_schema": "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"object\"}}}"}),
    )
    .await;
    assert!(
        bad.starts_with("elicit failed: Error::InvalidRequest(\"requested-schema"),
        "{bad}"
    );
    let log = host.wait_for_log("sampling:not-granted", Duration::from_secs(5));
    assert!(
        log.contains("client: not granted to this plugin"),
        "the refusal is logged:\n{log}"
    );
    client.cancel().await.ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_for_the_user_does_not_count_against_the_time_limit() {
    // The call may compute for 1 s; the user takes 2 s to answer, within the 3 s wait.
    let host = Host::start(
        &fixture_config(
            "client_features = [\"sampling\", \"elicitation\"]\n\
             limits = { timeout = \"1s\", client_wait = \"3s\" }",
        ),
        &[],
    );
    let client = session(&host, Duration::from_secs(2)).await;
    let started = Instant::now();
    assert_eq!(
        call(&client, json!({"elicit": "answer?"})).await,
        "elicited: {\"answer\":\"42\"}"
    );
    assert!(started.elapsed() >= Duration::from_secs(2));
    // Sampling with no user wait in between works too, and is recorded.
    assert_eq!(
        call(&client, json!({"sample": "hi"})).await,
        "sampled by rust-test-model: sampled"
    );
    host.wait_for_log("sampling:answered", Duration::from_secs(5));
    // A call that times out after its user answered still records the answer.
    let result = client
        .call_tool(
            CallToolRequestParams::new("fixture").with_arguments(
                json!({"elicit": "answer?", "spin_after": true})
                    .as_object()
                    .unwrap()
                    .clone(),
            ),
        )
        .await
        .expect("tools/call answers");
    assert_eq!(result.is_error, Some(true));
    host.wait_for_line(
        |line| line.contains("outcome=timeout") && line.contains("elicitation:accepted"),
        Duration::from_secs(10),
    );
    client.cancel().await.ok();

    // A user slower than `client_wait` ends the wait, not the call: the plugin hears
    // that it timed out.
    let slow = session(&host, Duration::from_secs(5)).await;
    assert_eq!(
        call(&slow, json!({"elicit": "answer?"})).await,
        "elicit failed: Error::TimedOut"
    );
    host.wait_for_log("elicitation:timed-out", Duration::from_secs(5));
    // The client is told the question is no longer wanted (so it can close the form).
    let told = Instant::now();
    while slow
        .service()
        .cancels
        .load(std::sync::atomic::Ordering::SeqCst)
        == 0
    {
        assert!(
            told.elapsed() < Duration::from_secs(5),
            "the abandoned elicitation was not cancelled"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    slow.cancel().await.ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_call_stops_its_plugin_and_is_recorded() {
    // One call at a time: if the cancelled call's instance lived on, the next would be
    // refused as busy.
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    let host = Host::start(
        &format!(
            "{}[audit]\npath = {}\n",
            fixture_config("limits = { timeout = \"60s\", max_concurrency = 1 }"),
            toml_path(&audit)
        ),
        &[],
    );
    let client = crate::common::connect(&host.mcp_url()).await;
    let request = ClientRequest::CallToolRequest(rmcp::model::CallToolRequest::new(
        CallToolRequestParams::new("fixture")
            .with_arguments(json!({"spin": true}).as_object().unwrap().clone()),
    ));
    let handle = client
        .peer()
        .send_cancellable_request(request, PeerRequestOptions::no_options())
        .await
        .expect("the call is sent");
    // Let the plugin start spinning, then cancel.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let cancelled = Instant::now();
    handle
        .cancel(Some("the user changed their mind".into()))
        .await
        .expect("the cancel is sent");
    let line = host.wait_for_line(
        |line| line.contains("tool call") && line.contains("outcome=cancelled"),
        Duration::from_secs(10),
    );
    assert!(
        cancelled.elapsed() < Duration::from_secs(10),
        "the call ended on the cancel, not at its 60 s limit: {line}"
    );
    // The next call runs: the slot was freed with the instance.
    let next = call_fixture(&client, json!({"text": "after"})).await;
    assert_eq!(first_text(&next), "after");
    let records = std::fs::read_to_string(&audit).expect("the audit log exists");
    let outcomes: Vec<String> = records
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|r| r["event"] == "tool_call")
        .map(|r| r["outcome"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(outcomes, ["cancelled", "ok"], "{records}");
    client.cancel().await.ok();
}
