//! A stdio session over in-memory pipes, against rmcp serving the same handler alone:
//! the same lines in, the same answers out. The direct path takes the calls it should,
//! a plugin's notifications come before the answer to its call, a plugin can ask the
//! client (sampling), a cancelled call gets no answer, and a call still running when
//! stdin closes is answered.

use super::Session;
use crate::mcp::McpHandler;
use crate::pipeline::testing::plugin_pipeline;
use rmcp::ServiceExt;
use serde_json::{Value, json};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio_util::sync::CancellationToken;

const INITIALIZE: &str = r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{"sampling":{}},"clientInfo":{"name":"differential","version":"1"}}}"#;
const INITIALIZED: &str = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;

fn call(id: Value, name: &str, arguments: Option<Value>, meta: Option<Value>) -> String {
    let mut params = json!({"name": name});
    if let Some(arguments) = arguments {
        params["arguments"] = arguments;
    }
    if let Some(meta) = meta {
        params["_meta"] = meta;
    }
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": params}).to_string()
}

/// The lines sent after the handshake, and how many of them the direct path takes.
fn lines() -> (Vec<String>, u64) {
    let taken = vec![
        call(json!(1), "echo", Some(json!({"message": "hi"})), None),
        call(
            json!("abc"),
            "echo",
            Some(json!({"message": "x".repeat(5000)})),
            None,
        ),
        call(json!(2), "echo", Some(json!({"message": 5})), None),
        call(json!(3), "echo", None, None),
        call(json!(4), "echo", Some(Value::Null), None),
        call(
            json!(5),
            "fixture",
            Some(
                json!({"text": "t", "image": true, "link": "https://example.com/r", "structured": {"n": 1}}),
            ),
            None,
        ),
        call(
            json!(6),
            "fixture",
            Some(json!({"text": "bad", "is_error": true})),
            None,
        ),
        call(json!(7), "nope", Some(json!({})), None),
        call(
            json!(8),
            "fixture",
            Some(json!({"progress": true, "text": "p"})),
            Some(json!({"progressToken": "tok-8"})),
        ),
        call(json!(9), "fixture", Some(json!({"log": "hello", "text": "l"})), None),
        call(json!(10), "fixture", Some(json!({"sleep_ms": 5000})), None),
        json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 10, "reason": "changed my mind"}}).to_string(),
        call(json!(11), "fixture", Some(json!({"sleep_ms": 300, "text": "late"})), None),
        call(json!(12), "fixture", Some(json!({"sample": "hi"})), None),
        call(
            json!(13),
            "echo",
            Some(json!({"message": "v"})),
            Some(json!({"io.modelcontextprotocol/protocolVersion": "2025-11-25"})),
        ),
        call(
            json!(14),
            "fixture",
            Some(json!({"sample": "hi", "log": "modern"})),
            Some(json!({
                "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                "io.modelcontextprotocol/clientCapabilities": {"sampling": {}},
                "io.modelcontextprotocol/clientInfo": {"name": "differential", "version": "1"},
            })),
        ),
        call(
            json!(15),
            "echo",
            Some(json!({"message": "old"})),
            Some(json!({"io.modelcontextprotocol/protocolVersion": "1999-01-01"})),
        ),
        call(
            json!(16),
            "echo",
            Some(json!({"message": "partial"})),
            Some(json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28"})),
        ),
    ];
    let count = taken.len() as u64 - 1; // every line but the cancellation
    let passed = vec![
        r#"{"jsonrpc":"2.0","id":21,"method":"tools/list"}"#.to_owned(),
        r#"{"jsonrpc":"2.0","id":22,"method":"tools/call","params":{"name":"echo","arguments":{"message":"e"}},"extra":1}"#.to_owned(),
        r#"{"jsonrpc":"2.0","id":23,"method":"tools/call","params":{"arguments":{}}}"#.to_owned(),
        r#"{"jsonrpc":"1.0","id":24,"method":"tools/call","params":{"name":"echo"}}"#.to_owned(),
        r#"{"jsonrpc":"2.0","id":25,"method":"ping"}"#.to_owned(),
        "{not json".to_owned(),
        String::new(),
        r#"{"jsonrpc":"2.0","id":26,"method":"tools/call","params":{"name":"echo","arguments":[1]}}"#.to_owned(),
    ];
    // Taken and passed lines interleaved, as a client sends them.
    let mut all = Vec::new();
    let mut passed = passed.into_iter();
    for line in taken {
        all.push(line);
        if let Some(other) = passed.next() {
            all.push(other);
        }
    }
    all.extend(passed);
    (all, count)
}

/// The server's side: through [`Session`] (`direct`) or rmcp alone. Returns the
/// client's ends of stdin and stdout, and the server task (its result: the calls the
/// direct path took), once the handshake is done.
async fn start(
    direct: bool,
) -> (
    tokio::io::DuplexStream,
    tokio::io::Lines<BufReader<tokio::io::DuplexStream>>,
    tokio::task::JoinHandle<u64>,
) {
    let handler = McpHandler::new(plugin_pipeline().await);
    let (mut client_out, server_in) = tokio::io::duplex(1 << 20);
    let (server_out, client_in) = tokio::io::duplex(1 << 20);
    let (ready, is_ready) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        if direct {
            let session = Session::over(handler, Box::new(server_in), Box::new(server_out))
                .await
                .unwrap();
            let direct = session.direct.clone();
            ready.send(()).unwrap();
            session.run(CancellationToken::new()).await;
            direct.taken()
        } else {
            let service = handler.serve((server_in, server_out)).await.unwrap();
            ready.send(()).unwrap();
            service.waiting().await.unwrap();
            0
        }
    });
    let mut client_in = BufReader::new(client_in).lines();
    client_out
        .write_all(format!("{INITIALIZE}\n{INITIALIZED}\n").as_bytes())
        .await
        .unwrap();
    let first = client_in.next_line().await.unwrap().unwrap();
    assert!(first.contains(r#""id":0"#), "{first}");
    is_ready.await.unwrap();
    (client_out, client_in, server)
}

/// The next line the server writes, as JSON (`None` at the end of its output).
async fn next(
    client_in: &mut tokio::io::Lines<BufReader<tokio::io::DuplexStream>>,
) -> Option<Value> {
    let line = tokio::time::timeout(Duration::from_secs(30), client_in.next_line())
        .await
        .expect("the server writes or ends within 30 s")
        .unwrap()?;
    Some(serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}")))
}

/// Everything the server wrote once [`lines`] were sent after the handshake, the
/// answers awaited (`answers` of them), and stdin closed; and the calls the direct
/// path took.
async fn session(direct: bool, answers: usize) -> (Vec<Value>, u64) {
    let (mut client_out, mut client_in, server) = start(direct).await;
    let (lines, _) = lines();
    let mut text = lines.join("\n");
    text.push('\n');
    client_out.write_all(text.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    while out.iter().filter(|m| is_answer(m)).count() < answers {
        let message = next(&mut client_in).await.expect("more answers");
        if message["method"] == "sampling/createMessage" {
            let answer = json!({"jsonrpc": "2.0", "id": message["id"], "result": {
                "role": "assistant",
                "content": {"type": "text", "text": "an answer"},
                "model": "test-model",
            }});
            client_out
                .write_all(format!("{answer}\n").as_bytes())
                .await
                .unwrap();
        }
        out.push(message);
    }
    drop(client_out);
    while let Some(message) = next(&mut client_in).await {
        out.push(message);
    }
    (out, server.await.unwrap())
}

/// Whether `message` answers a request of the client (rather than being a request or a
/// notification of the server's).
fn is_answer(message: &Value) -> bool {
    message.get("id").is_some() && message.get("method").is_none()
}

/// The answers by id (an id answered twice keeps both, in order).
fn answers(out: &[Value]) -> Vec<(String, Value)> {
    let mut answers: Vec<(String, Value)> = out
        .iter()
        .filter(|m| is_answer(m))
        .map(|m| (m["id"].to_string(), m.clone()))
        .collect();
    answers.sort_by(|a, b| a.0.cmp(&b.0));
    answers
}

/// The notifications, sorted.
fn notifications(out: &[Value]) -> Vec<String> {
    let mut notes: Vec<String> = out
        .iter()
        .filter(|m| m.get("id").is_none())
        .map(ToString::to_string)
        .collect();
    notes.sort();
    notes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_direct_path_answers_as_rmcp_does() {
    // Every id but the cancelled call's and the one that says JSON-RPC 1.0.
    const ANSWERS: usize = 21;
    let (expected, _) = session(false, ANSWERS).await;
    let (got, taken) = session(true, ANSWERS).await;
    let (_, should_take) = lines();
    assert_eq!(taken, should_take, "calls taken by the direct path");
    assert_eq!(answers(&got), answers(&expected));
    assert_eq!(notifications(&got), notifications(&expected));
    // Spot checks that the comparison is of real answers.
    let by_id = answers(&got);
    let text_of = |id: &str| -> Vec<&Value> {
        by_id
            .iter()
            .filter(|(i, _)| i == id)
            .map(|(_, m)| &m["result"]["content"][0]["text"])
            .collect()
    };
    assert_eq!(text_of("1"), [&json!("hi")]);
    assert_eq!(text_of("11"), [&json!("late")]);
    // The plugin asked the client through rmcp's peer; the answer came back through it.
    assert_eq!(text_of("12"), [&json!("sampled by test-model: an answer")]);
    // A 2026-07-28 call is checked by rmcp's own request handling on this path too.
    let answer = |id: i64| got.iter().find(|m| m["id"] == id).unwrap();
    assert!(answer(14)["result"]["inputRequests"].is_object(), "{got:?}");
    assert_eq!(
        answer(15)["error"]["message"],
        "Unsupported protocol version"
    );
    assert_eq!(answer(16)["error"]["code"], -32602);
    let asked: Vec<&Value> = got
        .iter()
        .filter(|m| m["method"] == "sampling/createMessage")
        .collect();
    assert_eq!(asked.len(), 1, "{got:?}");
    assert!(text_of("10").is_empty(), "the cancelled call was answered");
    assert!(
        by_id
            .iter()
            .any(|(id, m)| id == "21" && m["result"]["tools"].is_array())
    );
    // A notification of a call comes before its answer.
    let position = |pred: &dyn Fn(&Value) -> bool| got.iter().position(pred).unwrap();
    let progress = position(&|m| m["method"] == "notifications/progress");
    let answered_8 = position(&|m| m["id"] == 8);
    assert!(progress < answered_8, "{got:?}");
    let log = position(&|m| m["method"] == "notifications/message");
    let answered_9 = position(&|m| m["id"] == 9);
    assert!(log < answered_9, "{got:?}");
}

/// Calls still running when stdin closes are answered, the ones that notify the client
/// too, before the session ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_running_when_stdin_closes_are_answered() {
    let (mut client_out, mut client_in, server) = start(true).await;
    let text = [
        call(
            json!(1),
            "fixture",
            Some(json!({"sleep_ms": 300, "text": "late"})),
            None,
        ),
        call(
            json!(2),
            "fixture",
            Some(json!({"progress": true, "log": "bye", "sleep_ms": 100, "text": "noted"})),
            Some(json!({"progressToken": 2})),
        ),
    ]
    .join("\n");
    client_out
        .write_all(format!("{text}\n").as_bytes())
        .await
        .unwrap();
    drop(client_out);
    let mut out = Vec::new();
    while let Some(message) = next(&mut client_in).await {
        out.push(message);
    }
    assert_eq!(
        server.await.unwrap(),
        2,
        "both calls taken by the direct path"
    );
    let texts: Vec<Value> = answers(&out)
        .into_iter()
        .map(|(_, m)| m["result"]["content"][0]["text"].clone())
        .collect();
    assert_eq!(texts, [json!("late"), json!("noted")], "{out:?}");
    assert_eq!(notifications(&out).len(), 2, "{out:?}");
}
