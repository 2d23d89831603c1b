//! The router's layers, one request each through `oneshot` (no socket): request id,
//! sensitive headers, body limit, Host/Origin, the JSON-RPC peek, and rmcp behind them.

use super::*;
use crate::registry::Registry;
use crate::sandbox::Sandbox;
use crate::sandbox::pool::PoolSize;
use crate::secrets::sources::NoCredentials;
use axum::body::Body;
use axum::http::{Response, StatusCode};
use std::sync::{Mutex, OnceLock};
use tower::ServiceExt;

/// One sandbox for every test here: an engine and its pool are costly to make.
fn sandbox() -> Arc<Sandbox> {
    static SANDBOX: OnceLock<Arc<Sandbox>> = OnceLock::new();
    SANDBOX
        .get_or_init(|| {
            Arc::new(Sandbox::new(Arc::new(NoCredentials), PoolSize::default()).unwrap())
        })
        .clone()
}

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
