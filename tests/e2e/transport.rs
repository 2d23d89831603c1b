//! The HTTP transport on the real host: `/healthz`, and the checks every `/mcp` request
//! passes before any tool runs: the `Host` header (DNS rebinding), `Origin` against
//! `allowed_origins`, CORS, the request body's size, the security headers, load
//! shedding and the request timeout.

use crate::common::{Host, plugin, stateless_call, toml_path};
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_response_carries_the_security_headers() {
    let host = host();
    let health = reqwest::get(format!("http://{}/healthz", host.addr))
        .await
        .unwrap();
    let (_, _) = post(&host, INITIALIZE.to_owned(), &[]).await;
    let refused = reqwest::Client::new()
        .post(host.mcp_url())
        .header(HOST, "evil.example")
        .body(INITIALIZE)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    for response in [&health, &refused] {
        let headers = response.headers();
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert_eq!(headers["x-frame-options"], "DENY");
        assert_eq!(headers["referrer-policy"], "no-referrer");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_answers_only_the_allowed_origins() {
    let host = host();
    let preflight = |origin: &'static str| {
        reqwest::Client::new()
            .request(reqwest::Method::OPTIONS, host.mcp_url())
            .header(ORIGIN, origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "content-type,authorization,mcp-protocol-version",
            )
            .send()
    };
    let allowed = preflight("https://app.example.com").await.unwrap();
    assert!(allowed.status().is_success(), "{}", allowed.status());
    let headers = allowed.headers();
    assert_eq!(
        headers["access-control-allow-origin"],
        "https://app.example.com"
    );
    let methods = headers["access-control-allow-methods"].to_str().unwrap();
    assert!(methods.contains("POST"), "{methods}");
    let allowed_headers = headers["access-control-allow-headers"].to_str().unwrap();
    assert!(
        allowed_headers.contains("authorization")
            && allowed_headers.contains("mcp-protocol-version"),
        "{allowed_headers}"
    );
    // Another site gets no CORS answer at all: 403 from the Origin check.
    let foreign = preflight("https://evil.example").await.unwrap();
    assert_eq!(foreign.status(), StatusCode::FORBIDDEN);
    assert!(
        foreign
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
    // The real request from the allowed origin may read the answer and its headers.
    let response = reqwest::Client::new()
        .post(host.mcp_url())
        .header(CONTENT_TYPE, "application/json")
        .header(ACCEPT, "application/json, text/event-stream")
        .header(ORIGIN, "https://app.example.com")
        .body(INITIALIZE)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    let exposed = response.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap();
    assert!(exposed.contains("mcp-session-id"), "{exposed}");
    // A stateless call (the direct path) from the allowed origin is answered through
    // CORS too; the same call without an Origin gets no CORS answer, only the `Vary`
    // that tells caches the answer depends on the origin.
    let http = reqwest::Client::new();
    let fixture = serde_json::json!({"text": "hi"});
    let browser = stateless_call(&http, &host.mcp_url(), "fixture", fixture.clone())
        .header(ORIGIN, "https://app.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(browser.status(), StatusCode::OK);
    assert_eq!(
        browser.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    let answer: serde_json::Value = browser.json().await.unwrap();
    assert_eq!(answer["result"]["isError"], false, "{answer}");
    let plain = stateless_call(&http, &host.mcp_url(), "fixture", fixture)
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), StatusCode::OK);
    assert!(plain.headers().get("access-control-allow-origin").is_none());
    let vary = plain.headers()["vary"].to_str().unwrap();
    assert!(vary.contains("origin"), "{vary}");
    let answer: serde_json::Value = plain.json().await.unwrap();
    assert_eq!(answer["result"]["isError"], false, "{answer}");
}

/// A stateless `tools/call` of the fixture's `fixture` tool with `arguments`.
async fn call(url: &str, arguments: serde_json::Value) -> reqwest::Response {
    stateless_call(&reqwest::Client::new(), url, "fixture", arguments)
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_past_the_concurrency_limit_gets_503_and_the_host_keeps_serving() {
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nmax_concurrent_requests = 2\n\
         [plugins.fix]\npath = {}\n",
        toml_path(&plugin("fixture")),
    );
    let host = Host::start(&config, &[]);
    let url = host.mcp_url();
    // Two slow calls fill the host...
    let slow: Vec<_> = (0..2)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move {
                call(&url, serde_json::json!({"sleep_ms": 1500, "text": "slow"}))
                    .await
                    .status()
            })
        })
        .collect();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    // ...so a flood is answered 503 (had it been queued, it would have been answered
    // 200 once the slow calls ended).
    let flood: Vec<_> = (0..8)
        .map(|_| call(&url, serde_json::json!({"text": "x"})))
        .collect();
    for response in futures::future::join_all(flood).await {
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()["retry-after"], "1");
        let text = response.text().await.unwrap();
        assert!(text.contains("limit of 2 requests"), "{text}");
    }
    for slow in slow {
        assert_eq!(slow.await.unwrap(), StatusCode::OK);
    }
    // The host keeps serving.
    let after = call(&url, serde_json::json!({"text": "after"})).await;
    assert_eq!(after.status(), StatusCode::OK);
    assert!(after.text().await.unwrap().contains("after"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_past_its_timeout_gets_503() {
    // One slot; the second call waits for it, then runs: longer than the 1 s timeout.
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nrequest_timeout = \"1s\"\n\
         [plugins.fix]\npath = {}\nlimits = {{ max_concurrency = 1, timeout = \"950ms\" }}\n",
        toml_path(&plugin("fixture")),
    );
    let host = Host::start(&config, &[]);
    let url = host.mcp_url();
    let first = {
        let url = url.clone();
        tokio::spawn(async move {
            call(&url, serde_json::json!({"sleep_ms": 800, "text": "a"}))
                .await
                .status()
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let second = call(&url, serde_json::json!({"sleep_ms": 800, "text": "b"})).await;
    assert_eq!(second.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(second.text().await.unwrap().contains("longer than 1s"));
    assert_eq!(first.await.unwrap(), StatusCode::OK);
    // A timeout that would cut the plugin's own calls off is refused at start.
    let (status, log) = crate::common::start_refused(
        &format!(
            "[server]\nrequest_timeout = \"5s\"\n[plugins.fix]\npath = {}\nlimits = {{ timeout = \"10s\" }}\n",
            toml_path(&plugin("fixture")),
        ),
        &[],
    );
    assert!(!status.success());
    assert!(
        log.contains(
            "request_timeout = \"5s\" is not longer than [plugins.fix] limits.timeout = \"10s\""
        ),
        "{log}"
    );
}

/// The samples of a `/metrics` answer, parsed as Prometheus parses them.
async fn scrape(url: &str) -> prometheus_parse::Scrape {
    let response = reqwest::get(url).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let kind = response.headers()[CONTENT_TYPE]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(kind.starts_with("text/plain; version=0.0.4"), "{kind}");
    let text = response.text().await.unwrap();
    prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned())))
        .unwrap_or_else(|e| panic!("{e}:\n{text}"))
}

/// The value of the sample of `metric` whose labels include `labels`.
fn value(scrape: &prometheus_parse::Scrape, metric: &str, labels: &[(&str, &str)]) -> Option<f64> {
    scrape
        .samples
        .iter()
        .find(|s| s.metric == metric && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match &s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => *v,
            prometheus_parse::Value::Histogram(buckets) => buckets.last().map_or(0.0, |b| b.count),
            prometheus_parse::Value::Summary(_) => f64::NAN,
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_calls_by_outcome_and_denials_by_step() {
    let host = host();
    let url = host.mcp_url();
    for _ in 0..3 {
        assert_eq!(
            call(&url, serde_json::json!({"text": "ok"})).await.status(),
            StatusCode::OK
        );
    }
    call(&url, serde_json::json!({"error": "no"})).await;
    // Names a client made up never become labels.
    stateless_call(
        &reqwest::Client::new(),
        &url,
        "made-up-by-a-client",
        serde_json::json!({}),
    )
    .send()
    .await
    .unwrap();
    let metrics = scrape(&format!("http://{}/metrics", host.addr)).await;
    let calls = |outcome: &str| {
        value(
            &metrics,
            "mcp_tool_calls_total",
            &[("tool", "fixture"), ("plugin", "fix"), ("outcome", outcome)],
        )
    };
    assert_eq!(calls("ok"), Some(3.0));
    assert_eq!(calls("tool_error"), Some(1.0));
    assert_eq!(
        value(
            &metrics,
            "mcp_tool_calls_total",
            &[("tool", "-"), ("outcome", "unknown_tool")]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(&metrics, "mcp_denials_total", &[("step", "lookup")]),
        Some(1.0)
    );
    assert!(
        !metrics
            .samples
            .iter()
            .any(|s| s.labels.values().any(|v| v.contains("made-up"))),
        "a client's name became a label"
    );
    // Latency is a histogram with buckets; no instance is busy now.
    assert_eq!(
        value(
            &metrics,
            "mcp_tool_call_duration_seconds",
            &[("tool", "fixture")]
        ),
        Some(4.0)
    );
    // Instances are freed just after their answers are sent: the gauge falls to 0.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let mut in_use = value(&metrics, "mcp_instances_in_use", &[("plugin", "fix")]);
    while in_use != Some(0.0) && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        let metrics = scrape(&format!("http://{}/metrics", host.addr)).await;
        in_use = value(&metrics, "mcp_instances_in_use", &[("plugin", "fix")]);
    }
    assert_eq!(in_use, Some(0.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_may_have_a_listener_of_their_own() {
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nmetrics_listen = \"127.0.0.1:0\"\n\
         [audit]\npath = {}\n[plugins.fix]\npath = {}\n",
        toml_path(&dir.path().join("audit.jsonl")),
        toml_path(&plugin("fixture")),
    );
    let host = Host::start(&config, &[]);
    call(&host.mcp_url(), serde_json::json!({"text": "ok"})).await;
    let log = host.wait_for_log("serving /metrics", std::time::Duration::from_secs(5));
    let line = log
        .lines()
        .find(|l| l.contains("serving /metrics"))
        .unwrap();
    let address = line
        .split("address=")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap();
    let metrics = scrape(&format!("http://{address}/metrics")).await;
    assert_eq!(
        value(&metrics, "mcp_tool_calls_total", &[("outcome", "ok")]),
        Some(1.0)
    );
    // The audit writer's figures are there too.
    assert!(value(&metrics, "mcp_audit_queue_depth", &[]).is_some());
    assert!(value(&metrics, "mcp_audit_write_duration_seconds", &[]).unwrap() >= 1.0);
    // Not on the main listener.
    let main = reqwest::get(format!("http://{}/metrics", host.addr))
        .await
        .unwrap();
    assert_eq!(main.status(), StatusCode::NOT_FOUND);
}
