//! The HTTP transport on the real host: `/healthz`, and the checks every `/mcp` request
//! passes before any tool runs: the `Host` header (DNS rebinding), `Origin` against
//! `allowed_origins`, and the request body's size.

use crate::common::{Host, plugin, toml_path};
use reqwest::StatusCode;
use reqwest::header::{ACCEPT, CONTENT_TYPE, HOST, ORIGIN};

/// A host serving the fixture plugin, with `public_url` and one allowed origin.
fn host() -> Host {
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\npublic_url = \"https://tools.example.com/mcp\"\n\
         allowed_origins = [\"https://app.example.com\"]\n\
         [plugins.fix]\npath = {}\n",
        toml_path(&plugin("fixture")),
    );
    Host::start(&config, &[])
}

const INITIALIZE: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"transport-test","version":"1"}}}"#;

/// POSTs `body` to `/mcp` with the headers a client sends, plus `extra`.
async fn post(
    host: &Host,
    body: String,
    extra: &[(reqwest::header::HeaderName, &str)],
) -> (StatusCode, String) {
    let mut request = reqwest::Client::new()
        .post(host.mcp_url())
        .header(CONTENT_TYPE, "application/json")
        .header(ACCEPT, "application/json, text/event-stream")
        .body(body);
    for (name, value) in extra {
        request = request.header(name, *value);
    }
    let response = request.send().await.expect("the host answers");
    let status = response.status();
    (status, response.text().await.unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_answers() {
    let host = host();
    let response = reqwest::get(format!("http://{}/healthz", host.addr))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.text().await.unwrap(), "ok\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_pass_only_with_a_known_host_and_origin() {
    let host = host();
    // (extra headers, accepted?)
    let cases: [(&[(reqwest::header::HeaderName, &str)], bool); 6] = [
        (&[], true),
        (&[(HOST, "localhost")], true),
        (&[(HOST, "tools.example.com")], true),
        (&[(ORIGIN, "https://app.example.com")], true),
        // A page on another site, or a DNS name rebound to this machine.
        (&[(ORIGIN, "https://evil.example")], false),
        (&[(HOST, "evil.example")], false),
    ];
    for (extra, accepted) in cases {
        let (status, body) = post(&host, INITIALIZE.to_owned(), extra).await;
        if accepted {
            assert_eq!(status, StatusCode::OK, "{extra:?}: {body}");
            assert!(
                body.contains("\"protocolVersion\":\"2025-11-25\""),
                "{extra:?}: {body}"
            );
        } else {
            assert_eq!(status, StatusCode::FORBIDDEN, "{extra:?}: {body}");
            assert!(!body.contains("protocolVersion"), "{extra:?}: {body}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_body_is_refused_before_it_is_parsed() {
    let host = host();
    let padding = "x".repeat(5 * 1024 * 1024);
    let body = INITIALIZE.replace("\"transport-test\"", &format!("\"{padding}\""));
    let (status, _) = post(&host, body, &[]).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    // Just under the limit is fine.
    let padding = "x".repeat(1024 * 1024);
    let body = INITIALIZE.replace("\"transport-test\"", &format!("\"{padding}\""));
    let (status, body) = post(&host, body, &[]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}
