//! The router's layers, one request each through `oneshot` (no socket): request id,
//! sensitive headers, body limit, Host/Origin, the JSON-RPC peek, and rmcp behind them.

use super::*;
use crate::pipeline::testing::{plugin_pipeline, sandbox};
use crate::registry::Registry;
use axum::body::Body;
use axum::http::{Response, StatusCode};
use std::sync::Mutex;
use tower::ServiceExt;

fn app() -> Router {
    let config = ServerConfig {
        public_url: Some("https://tools.example.com".parse().unwrap()),
        allowed_origins: vec![
            AllowedOrigin::try_from("https://app.example.com".to_owned()).unwrap(),
        ],
        ..ServerConfig::default()
    };
    let pipeline = Arc::new(Pipeline::new(
        Registry::default(),
        sandbox(),
        Arc::new(crate::ratelimit::ToolLimiter::unlimited()),
        Arc::new(crate::audit::Audit::off()),
    ));
    let base = public_base(&config, "127.0.0.1:8080".parse().unwrap());
    router(
        pipeline,
        Arc::new(Auth::off(&base)),
        Arc::new(crate::ratelimit::AddressLimits::none()),
        &config,
        std::time::Duration::from_secs(60),
        None,
        CancellationToken::new(),
    )
}

const INITIALIZE: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"oneshot","version":"1"}}}"#;

/// A POST to `/mcp` as a client sends it, with `extra` headers.
fn post(body: impl Into<Body>, extra: &[(&str, &str)]) -> Request<Body> {
    let mut request = Request::post("/mcp")
        .header(header::HOST, "localhost")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::ACCEPT, "application/json, text/event-stream");
    for (name, value) in extra {
        request = request.header(*name, *value);
    }
    request.body(body.into()).unwrap()
}

async fn send(request: Request<Body>) -> (StatusCode, Response<Body>, String) {
    let response = app().oneshot(request).await.unwrap();
    let status = response.status();
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    (
        status,
        Response::from_parts(parts, Body::empty()),
        String::from_utf8_lossy(&bytes).into_owned(),
    )
}

#[tokio::test]
async fn every_response_carries_a_request_id_of_ours() {
    let (status, response, body) =
        send(Request::get("/healthz").body(Body::empty()).unwrap()).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "ok\n"));
    let id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(uuid::Uuid::parse_str(&id).is_ok(), "{id}");
    // A client's own id is replaced: ids in our records are ours and unique.
    let (_, response, _) = send(post(INITIALIZE, &[("x-request-id", "forged} id")])).await;
    let id = response.headers()["x-request-id"].to_str().unwrap();
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
}

#[tokio::test]
async fn rmcp_answers_behind_the_layers() {
    let (status, response, body) = send(post(INITIALIZE, &[])).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        response.headers().contains_key("mcp-session-id"),
        "{response:?}"
    );
    assert!(
        body.contains("\"protocolVersion\":\"2025-11-25\""),
        "{body}"
    );
    assert!(body.contains("\"name\":\"mcp-wasm-host\""), "{body}");
}

#[tokio::test]
async fn host_and_origin_are_checked_before_the_request_is_read() {
    for (extra, expected) in [
        (&[("origin", "https://app.example.com")][..], StatusCode::OK),
        (
            &[("origin", "https://evil.example")][..],
            StatusCode::FORBIDDEN,
        ),
        (&[("host", "evil.example")][..], StatusCode::FORBIDDEN),
        (&[("host", "tools.example.com")][..], StatusCode::OK),
    ] {
        let mut request = post(INITIALIZE, &[]);
        for (name, value) in extra {
            request.headers_mut().insert(
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        }
        let (status, _, body) = send(request).await;
        assert_eq!(status, expected, "{extra:?}: {body}");
        if expected == StatusCode::FORBIDDEN {
            assert!(body.starts_with("Forbidden:"), "{body}");
        }
    }
    // Host/Origin comes before the JSON-RPC peek: a page elsewhere gets 403, not a
    // tool error for its malformed call.
    let bad_call =
        r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"t","arguments":"x"}}"#;
    let (status, _, _) = send(post(bad_call, &[("origin", "https://evil.example")])).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // /healthz is not behind the Host check: load balancers probe it by address.
    let probe = Request::get("/healthz")
        .header(header::HOST, "10.1.2.3:8080")
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(probe).await.0, StatusCode::OK);
}

#[tokio::test]
async fn bodies_over_the_limit_are_refused_whether_sized_or_streamed() {
    let big = format!("{{\"pad\":\"{}\"}}", "x".repeat(MAX_REQUEST_BODY_BYTES));
    // With a Content-Length over the limit.
    let (status, _, _) = send(post(
        big.clone(),
        &[("content-length", &big.len().to_string())],
    ))
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    // Streamed without a length, cut off when it passes the limit.
    let chunks: Vec<Result<String, std::io::Error>> = big
        .as_bytes()
        .chunks(64 * 1024)
        .map(|c| Ok(String::from_utf8(c.to_vec()).unwrap()))
        .collect();
    let streamed = Body::from_stream(futures::stream::iter(chunks));
    let (status, _, body) = send(post(streamed, &[])).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    // Just under the limit reaches rmcp.
    let padding = "x".repeat(1024 * 1024);
    let (status, _, body) = send(post(INITIALIZE.replace("oneshot", &padding), &[])).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn malformed_tool_arguments_are_answered_by_the_peek() {
    let call = r#"{"jsonrpc":"2.0","id":"abc","method":"tools/call","params":{"name":"get_weather","arguments":[1]}}"#;
    let (status, _, body) = send(post(call, &[])).await;
    assert_eq!(status, StatusCode::OK);
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["id"], "abc");
    assert_eq!(answer["result"]["isError"], true);
    assert_eq!(
        answer["result"]["content"][0]["text"],
        "Invalid arguments for `get_weather`: arguments must be a JSON object, got an array"
    );
}

/// A `tracing` writer into a shared buffer.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn credentials_in_headers_never_reach_the_log() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _default = tracing::subscriber::set_default(subscriber);
    let request = post(
        INITIALIZE,
        &[
            ("authorization", "Bearer token-SECRET-1"),
            ("cookie", "session=cookie-SECRET-2"),
        ],
    );
    let (status, _, _) = send(request).await;
    assert_eq!(status, StatusCode::OK);
    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    // The request was logged, headers and all, at debug level...
    assert!(
        log.contains("request{method=POST path=/mcp request_id="),
        "{log}"
    );
    assert!(
        log.contains("\"content-type\": \"application/json\""),
        "{log}"
    );
    assert!(log.contains("\"authorization\": Sensitive"), "{log}");
    // ...but no credential.
    assert!(!log.contains("SECRET"), "{log}");
}

/// A stateless 2026-07-28 `tools/call` as a client sends it, its headers derived
/// from the body; `changes` then sets headers (an empty value removes one).
fn stateless_call(body: &serde_json::Value, changes: &[(&str, &str)]) -> Request<Body> {
    let mut headers = axum::http::HeaderMap::new();
    let mut set = |name: &'static str, value: &str| {
        headers.insert(name, HeaderValue::from_str(value).unwrap());
    };
    set("host", "localhost");
    set("content-type", "application/json");
    set("accept", "application/json, text/event-stream");
    set("mcp-protocol-version", "2026-07-28");
    set(
        "mcp-method",
        body["method"].as_str().unwrap_or("tools/call"),
    );
    set("mcp-name", body["params"]["name"].as_str().unwrap_or(""));
    for (name, value) in changes {
        let name = HeaderName::from_bytes(name.as_bytes()).unwrap();
        headers.remove(&name);
        if !value.is_empty() {
            for value in value.split('\n') {
                headers.append(name.clone(), HeaderValue::from_str(value).unwrap());
            }
        }
    }
    let mut request = Request::post("/mcp")
        .body(Body::from(body.to_string()))
        .unwrap();
    *request.headers_mut() = headers;
    request
}

/// A `tools/call` body with the `_meta` 2026-07-28 asks for, `meta` merged into it.
fn call_body(
    id: serde_json::Value,
    tool: &str,
    arguments: Option<serde_json::Value>,
    meta: serde_json::Value,
) -> serde_json::Value {
    let mut full = serde_json::json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "differential", "version": "1"},
    });
    for (key, value) in meta.as_object().unwrap() {
        if value.is_null() {
            full.as_object_mut().unwrap().remove(key);
        } else {
            full[key] = value.clone();
        }
    }
    let mut params = serde_json::json!({"name": tool, "_meta": full});
    if let Some(arguments) = arguments {
        params["arguments"] = arguments;
    }
    serde_json::json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": params})
}

/// Header changes for [`stateless_call`].
type Changes = Vec<(&'static str, &'static str)>;

async fn answer_of(service: Router, request: Request<Body>) -> (StatusCode, String, String) {
    let response = service.oneshot(request).await.unwrap();
    let status = response.status();
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (
        status,
        content_type,
        String::from_utf8_lossy(&bytes).into_owned(),
    )
}

/// The direct path answers exactly what rmcp answers for every request it takes, and
/// passes every other request on untouched: behind it here is a fallback that says
/// it was reached, beside it rmcp alone.
#[tokio::test]
async fn the_direct_path_answers_as_rmcp_does_and_passes_on_the_rest() {
    use serde_json::{Value, json};
    let handler = McpHandler::new(plugin_pipeline().await);
    let rmcp_only =
        Router::new().fallback_service(mcp_service(handler.clone(), CancellationToken::new()));
    let direct_only = Router::new()
        .fallback(|| async { (StatusCode::IM_A_TEAPOT, "passed on") })
        .layer(axum::middleware::from_fn_with_state(
            handler,
            |axum::extract::State(handler): axum::extract::State<McpHandler>,
             request: Request<Body>,
             next: axum::middleware::Next| async move {
                match crate::mcp::direct::try_serve(&handler, request).await {
                    std::ops::ControlFlow::Break(answer) => answer,
                    std::ops::ControlFlow::Continue(request) => next.run(request).await,
                }
            },
        ));
    let none = json!({});
    let served: Vec<(&str, Request<Body>, Request<Body>)> = {
        let cases: Vec<(&str, Value, Changes)> = vec![
            (
                "echo",
                call_body(
                    json!(1),
                    "echo",
                    Some(json!({"message": "hi"})),
                    none.clone(),
                ),
                vec![],
            ),
            (
                "string id, long text",
                call_body(
                    json!("abc"),
                    "echo",
                    Some(json!({"message": "x".repeat(5000)})),
                    none.clone(),
                ),
                vec![],
            ),
            (
                "arguments the schema refuses",
                call_body(json!(2), "echo", Some(json!({"message": 5})), none.clone()),
                vec![],
            ),
            (
                "no arguments",
                call_body(json!(3), "echo", None, none.clone()),
                vec![],
            ),
            (
                "null arguments",
                call_body(json!(3), "echo", Some(Value::Null), none.clone()),
                vec![],
            ),
            (
                "content of every kind",
                call_body(
                    json!(4),
                    "fixture",
                    Some(
                        json!({"text": "t", "image": true, "link": "https://example.com/r", "structured": {"n": 1}}),
                    ),
                    none.clone(),
                ),
                vec![],
            ),
            (
                "a tool error",
                call_body(
                    json!(5),
                    "fixture",
                    Some(json!({"text": "bad", "is_error": true})),
                    none.clone(),
                ),
                vec![],
            ),
            (
                "a failed call",
                call_body(
                    json!(6),
                    "fixture",
                    Some(json!({"error": "broken"})),
                    none.clone(),
                ),
                vec![],
            ),
            (
                "content type with a charset",
                call_body(
                    json!(7),
                    "echo",
                    Some(json!({"message": "hi"})),
                    none.clone(),
                ),
                vec![("content-type", "application/json; charset=utf-8")],
            ),
            (
                "accept in another order",
                call_body(
                    json!(8),
                    "echo",
                    Some(json!({"message": "hi"})),
                    none.clone(),
                ),
                vec![("accept", "text/event-stream, application/json")],
            ),
            (
                "extra meta keys",
                call_body(
                    json!(9),
                    "echo",
                    Some(json!({"message": "hi"})),
                    json!({"vendor/x": 1}),
                ),
                vec![],
            ),
        ];
        cases
            .into_iter()
            .map(|(what, body, changes)| {
                (
                    what,
                    stateless_call(&body, &changes),
                    stateless_call(&body, &changes),
                )
            })
            .collect()
    };
    for (what, direct, reference) in served {
        let ours = answer_of(direct_only.clone(), direct).await;
        assert_ne!(
            ours.0,
            StatusCode::IM_A_TEAPOT,
            "{what}: not served directly"
        );
        let theirs = answer_of(rmcp_only.clone(), reference).await;
        assert_eq!(ours.0, theirs.0, "{what}: status; rmcp said {}", theirs.2);
        assert_eq!(ours.1, theirs.1, "{what}: content type");
        let ours_json: Value = serde_json::from_str(&ours.2).unwrap();
        let theirs_json: Value = serde_json::from_str(&theirs.2).unwrap();
        assert_eq!(ours_json, theirs_json, "{what}");
        assert!(ours_json["result"].is_object(), "{what}: {ours_json}");
    }

    let hi = || Some(json!({"message": "hi"}));
    let echo = || call_body(json!(1), "echo", hi(), json!({}));
    let mut old = echo();
    old["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"] = json!("2025-11-25");
    let mut listing = echo();
    listing["method"] = json!("tools/list");
    let mut retry = echo();
    retry["params"]["requestState"] = json!("opaque");
    let mut extended = echo();
    extended["vendor"] = json!("x");
    let passed_on: Vec<(&str, Request<Body>)> = vec![
        (
            "an older version",
            stateless_call(&old, &[("mcp-protocol-version", "2025-11-25")]),
        ),
        ("header and meta disagree", stateless_call(&old, &[])),
        (
            "no Mcp-Method",
            stateless_call(&echo(), &[("mcp-method", "")]),
        ),
        (
            "Mcp-Method disagrees",
            stateless_call(&echo(), &[("mcp-method", "tools/list")]),
        ),
        (
            "not a tools/call",
            stateless_call(
                &listing,
                &[("mcp-method", "tools/call"), ("mcp-name", "echo")],
            ),
        ),
        (
            "Mcp-Name disagrees",
            stateless_call(&echo(), &[("mcp-name", "weather")]),
        ),
        (
            "two Mcp-Names",
            stateless_call(&echo(), &[("mcp-name", "echo\necho")]),
        ),
        (
            "a Base64 Mcp-Name",
            stateless_call(&echo(), &[("mcp-name", "=?base64?ZWNobw==?=")]),
        ),
        (
            "an unknown tool",
            stateless_call(&call_body(json!(1), "nope", hi(), json!({})), &[]),
        ),
        (
            "a tool with Mcp-Param headers",
            stateless_call(
                &call_body(json!(1), "routed", Some(json!({"region": "eu"})), json!({})),
                &[("mcp-param-region", "eu")],
            ),
        ),
        (
            "no client capabilities",
            stateless_call(
                &call_body(
                    json!(1),
                    "echo",
                    hi(),
                    json!({"io.modelcontextprotocol/clientCapabilities": null}),
                ),
                &[],
            ),
        ),
        (
            "a progress token",
            stateless_call(
                &call_body(json!(1), "echo", hi(), json!({"progressToken": "p1"})),
                &[],
            ),
        ),
        (
            "a log level (its messages need a stream)",
            stateless_call(
                &call_body(
                    json!(1),
                    "echo",
                    hi(),
                    json!({"io.modelcontextprotocol/logLevel": "debug"}),
                ),
                &[],
            ),
        ),
        ("a retry's request state", stateless_call(&retry, &[])),
        ("a field JSON-RPC lacks", stateless_call(&extended, &[])),
        (
            "a weighted Accept",
            stateless_call(
                &echo(),
                &[("accept", "application/json;q=0, text/event-stream")],
            ),
        ),
        (
            "an Accept without SSE",
            stateless_call(&echo(), &[("accept", "application/json")]),
        ),
        (
            "another content type",
            stateless_call(&echo(), &[("content-type", "text/plain")]),
        ),
        (
            "two protocol versions",
            stateless_call(
                &echo(),
                &[("mcp-protocol-version", "2026-07-28\n2026-07-28")],
            ),
        ),
        ("a body that is not JSON", {
            let mut request = stateless_call(&echo(), &[]);
            *request.body_mut() = Body::from("{not json");
            request
        }),
        ("a GET", {
            let mut request = stateless_call(&echo(), &[]);
            *request.method_mut() = Method::GET;
            request
        }),
    ];
    for (what, request) in passed_on {
        let (status, _, body) = answer_of(direct_only.clone(), request).await;
        assert_eq!(
            (status, body.as_str()),
            (StatusCode::IM_A_TEAPOT, "passed on"),
            "{what}"
        );
    }
}
