//! `[rate_limits]` on the real host: each budget trips at its configured count with the
//! right retry hint, as a structured tool error, without running the plugin; users have
//! their own budgets and a tool's budget spans them; overrides win; clients that hammer
//! the authorization server or keep failing authentication get 429 with `Retry-After`;
//! over stdio the local user is one caller.

use crate::common::idp::Idp;
use crate::common::{Host, plugin, start_refused, toml_path, toml_str};
use reqwest::StatusCode;
use rmcp::model::{CallToolRequestParams, CallToolResult};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

/// The fixture plugin offering `open` and `other`, no scopes.
fn plugin_section() -> String {
    let tools = json!([
        {"name": "open", "input_schema": {"type": "object"}},
        {"name": "other", "input_schema": {"type": "object"}},
    ]);
    format!(
        "[plugins.fix]\npath = {}\nenv = {{ FIXTURE_TOOLS = {} }}\n",
        toml_path(&plugin("fixture")),
        toml_str(&tools.to_string()),
    )
}

/// A host trusting `idp`, with `limits` as its `[rate_limits]` section.
fn host(idp: &Idp, limits: &str) -> Host {
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n{}\n{}\n{limits}\n",
        idp.auth_section(),
        plugin_section(),
    );
    Host::start(&config, &[])
}

/// A token for `subject`.
fn token(idp: &Idp, host: &Host, subject: &str) -> String {
    let mut claims = idp.claims(&host.mcp_url(), "");
    claims["sub"] = json!(subject);
    idp.key.sign(&claims)
}

async fn client(host: &Host, token: &str) -> crate::common::Client {
    crate::common::connect_with_token(&host.mcp_url(), token).await
}

async fn call(
    client: &rmcp::service::RunningService<rmcp::RoleClient, ()>,
    tool: &str,
) -> CallToolResult {
    client
        .call_tool(
            CallToolRequestParams::new(tool.to_owned()).with_arguments(
                json!({"text": "hi", "print": "fixture called"})
                    .as_object()
                    .unwrap()
                    .clone(),
            ),
        )
        .await
        .expect("tools/call answers")
}

/// Asserts `result` is the structured rate-limit error, its hint within `hint`, and its
/// text naming `says`.
fn assert_limited(result: &CallToolResult, hint: std::ops::RangeInclusive<u64>, says: &str) {
    assert_eq!(result.is_error, Some(true), "{result:?}");
    let error = &result.structured_content.as_ref().expect("structured")["error"];
    assert_eq!(error["code"], "RATE_LIMITED", "{result:?}");
    assert_eq!(error["retryable"], true);
    let seconds = error["retry_after_seconds"].as_u64().expect("a number");
    assert!(
        hint.contains(&seconds),
        "retry after {seconds}, not in {hint:?}"
    );
    let text = &result.content[0].as_text().unwrap().text;
    assert!(text.contains(says), "{text}");
    assert!(
        text.contains(&format!("Try again in {seconds} s")),
        "{text}"
    );
}

fn assert_ok(result: &CallToolResult) {
    assert_eq!(result.is_error, Some(false), "{result:?}");
}

/// Asserts the host log holds `expected` `tool call` lines with `outcome`, waiting a
/// little for the last: the test reads the log through a pipe, and an answer can reach
/// the client before the line written just before it reaches the test.
fn expect_records(host: &Host, outcome: &str, expected: usize) {
    let count = || {
        host.log()
            .lines()
            .filter(|l| l.contains("tool call ") && l.contains(&format!("outcome={outcome} ")))
            .count()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while count() < expected && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(count(), expected, "outcome={outcome}: {}", host.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_have_their_own_budgets_and_a_tools_budget_spans_them() {
    let idp = Idp::start().await;
    let host = host(
        &idp,
        "[rate_limits]\nper_user_tool = \"3/min\"\nper_tool = \"5/min\"\n",
    );
    let alice = client(&host, &token(&idp, &host, "alice")).await;
    let bob = client(&host, &token(&idp, &host, "bob")).await;
    for _ in 0..3 {
        assert_ok(&call(&alice, "open").await);
    }
    // Alice's fourth call: her own budget for `open` (3/min: one call per 20 s).
    assert_limited(
        &call(&alice, "open").await,
        19..=20,
        "you may call `open` 3 times per minute",
    );
    // Bob has his own budget, but `open` has only two calls left for everyone.
    assert_ok(&call(&bob, "open").await);
    assert_ok(&call(&bob, "open").await);
    assert_limited(
        &call(&bob, "open").await,
        11..=12,
        "`open` may be called 5 times per minute by all callers together",
    );
    // Another tool's budgets are its own.
    assert_ok(&call(&alice, "other").await);
    // One record per call, refused ones named; the plugin ran only for the others.
    expect_records(&host, "rate_limited", 2);
    expect_records(&host, "ok", 6);
    let log = host.log();
    let refused: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("outcome=rate_limited"))
        .collect();
    assert!(refused[0].contains("subject=\"alice\""), "{}", refused[0]);
    assert!(refused[1].contains("subject=\"bob\""), "{}", refused[1]);
    let ran = log
        .lines()
        .filter(|l| l.contains("plugin output") && l.contains("stream=\"stdout\""))
        .count();
    assert_eq!(ran, 6, "the plugin ran for a refused call:\n{log}");
    alice.cancel().await.ok();
    bob.cancel().await.ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_users_budget_spans_tools_and_overrides_win() {
    let idp = Idp::start().await;
    let host = host(
        &idp,
        "[rate_limits]\nper_user = \"4/min\"\nper_user_tool = \"100/min\"\n\
         [rate_limits.plugins.fix]\nper_user_tool = \"50/min\"\n\
         [rate_limits.tools.other]\nper_user_tool = { rate = \"60/min\", burst = 1 }\n",
    );
    let alice = client(&host, &token(&idp, &host, "alice")).await;
    // `other` allows one call at once (a burst of 1, then one a second).
    assert_ok(&call(&alice, "other").await);
    assert_limited(
        &call(&alice, "other").await,
        1..=1,
        "you may call `other` 60 times per minute",
    );
    // Alice's budget across tools: 4 a minute, one spent on `other` (the refused call
    // did not reach it).
    for _ in 0..3 {
        assert_ok(&call(&alice, "open").await);
    }
    assert_limited(
        &call(&alice, "open").await,
        14..=15,
        "you may make 4 tool calls per minute, counting every tool",
    );
    // Another user is not held back by alice.
    let carol = client(&host, &token(&idp, &host, "carol")).await;
    assert_ok(&call(&carol, "open").await);
    alice.cancel().await.ok();
    carol.cancel().await.ok();
}

#[test]
fn overrides_must_name_a_plugin_or_tool_that_exists() {
    let (status, log) = start_refused(
        &format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n{}\n[rate_limits.plugins.nope]\nper_tool = \"1/s\"\n",
            plugin_section()
        ),
        &[],
    );
    assert!(!status.success());
    assert!(
        log.contains("[rate_limits.plugins.nope] names no configured plugin"),
        "{log}"
    );
    let (status, log) = start_refused(
        &format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n{}\n[rate_limits.tools.nope]\nper_tool = \"1/s\"\n",
            plugin_section()
        ),
        &[],
    );
    assert!(!status.success());
    assert!(
        log.contains("[rate_limits.tools.nope] names no tool a loaded plugin offers"),
        "{log}"
    );
    let (status, log) = start_refused(
        &format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n{}\n[rate_limits]\nper_user = \"often\"\n",
            plugin_section()
        ),
        &[],
    );
    assert!(!status.success());
    assert!(log.contains("`often` is not a rate"), "{log}");
    assert!(log.contains("line"), "{log}");
}

const INITIALIZE: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"limits","version":"1"}}}"#;

/// POSTs an initialize to `/mcp` with `authorization`: (status, `Retry-After`).
async fn initialize(host: &Host, authorization: &str) -> (StatusCode, Option<String>) {
    initialize_forwarded(host, authorization, None).await
}

/// [`initialize`] as a proxy would send it for the client `forwarded_for`.
async fn initialize_forwarded(
    host: &Host,
    authorization: &str,
    forwarded_for: Option<&str>,
) -> (StatusCode, Option<String>) {
    let mut request = reqwest::Client::new()
        .post(host.mcp_url())
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("authorization", authorization);
    if let Some(client) = forwarded_for {
        request = request.header("x-forwarded-for", client);
    }
    let response = request.body(INITIALIZE).send().await.unwrap();
    let retry = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    (response.status(), retry)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_that_keeps_failing_authentication_gets_429() {
    let idp = Idp::start().await;
    let host = host(
        &idp,
        "[rate_limits.per_address]\nfailed_authentication = \"3/min\"\n",
    );
    for _ in 0..3 {
        let (status, retry) = initialize(&host, "Bearer not-a-token").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(retry, None);
    }
    let (status, retry) = initialize(&host, "Bearer not-a-token").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = retry.expect("Retry-After").parse().unwrap();
    assert!((19..=20).contains(&retry), "{retry}");
    // A good token from the same address still works: only failures are counted.
    let good = format!("Bearer {}", token(&idp, &host, "alice"));
    assert_eq!(initialize(&host, &good).await.0, StatusCode::OK);
    let refused = |l: &str| {
        l.contains("outcome=rate_limited")
            && l.contains("step=\"rate_limit\"")
            && l.contains("method=\"initialize\"")
    };
    let log = host.wait_for_line(refused, Duration::from_secs(5));
    assert!(log.lines().any(refused), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_trusted_proxy_each_client_address_has_its_own_budget() {
    let idp = Idp::start().await;
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\ntrusted_proxies = [\"127.0.0.1\"]\n{}\n{}\n\
         [rate_limits.per_address]\nfailed_authentication = \"2/min\"\n",
        idp.auth_section(),
        plugin_section(),
    );
    let host = Host::start(&config, &[]);
    let bad = "Bearer not-a-token";
    for _ in 0..2 {
        let (status, _) = initialize_forwarded(&host, bad, Some("203.0.113.1")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let (status, _) = initialize_forwarded(&host, bad, Some("203.0.113.1")).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    // Another client behind the same proxy, and the proxy itself, are not held up.
    let (status, _) = initialize_forwarded(&host, bad, Some("203.0.113.2")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(initialize(&host, bad).await.0, StatusCode::UNAUTHORIZED);
    // A made-up hop left of the proxy's entry changes nothing.
    let (status, _) = initialize_forwarded(&host, bad, Some("198.51.100.1, 203.0.113.1")).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    let refused = |l: &str| l.contains("outcome=rate_limited") && l.contains("203.0.113.1");
    let log = host.wait_for_line(refused, Duration::from_secs(5));
    assert!(log.lines().any(refused), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_hammering_the_authorization_server_gets_429() {
    let state = crate::oauth::State::new();
    let config = state.config("").replace(
        "[auth]",
        "[rate_limits.per_address]\nauthorization_server = \"5/min\"\n[auth]",
    );
    let host = Host::start(&config, &[("MCP_HOST_KEK", &state.kek)]);
    let url = format!(
        "http://{}/.well-known/oauth-authorization-server",
        host.addr
    );
    let http = reqwest::Client::new();
    for _ in 0..5 {
        assert_eq!(
            http.get(&url).send().await.unwrap().status(),
            StatusCode::OK
        );
    }
    let refused = http
        .post(format!("http://{}/oauth/token", host.addr))
        .form(&[("grant_type", "authorization_code"), ("code", "guess")])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((11..=12).contains(&retry), "{retry}");
    // The MCP endpoint is not the authorization server: not counted there.
    assert_eq!(
        http.get(format!("http://{}/healthz", host.addr))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
}

#[test]
fn over_stdio_the_local_user_is_one_caller() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("host.toml");
    std::fs::write(
        &config,
        format!(
            "{}\n[auth]\nmode = \"off\"\n[rate_limits]\nper_user = \"2/min\"\n",
            plugin_section()
        ),
    )
    .unwrap();
    let mut host = Command::new(env!("CARGO_BIN_EXE_mcp-wasm-host"))
        .args(["serve", "--stdio", "--config"])
        .arg(&config)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = host.stdin.take().unwrap();
    let mut stdout = BufReader::new(host.stdout.take().unwrap());
    let mut answer = |line: &str, answered: bool| -> Value {
        writeln!(stdin, "{line}").unwrap();
        if !answered {
            return Value::Null;
        }
        let mut read = String::new();
        stdout.read_line(&mut read).unwrap();
        serde_json::from_str(&read).unwrap_or_else(|e| panic!("{e}: {read:?}"))
    };
    assert_eq!(answer(INITIALIZE, true)["id"], 1);
    answer(
        r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
        false,
    );
    let mut results = Vec::new();
    for id in 2..5 {
        // Two tools: the one local user's budget spans both.
        let tool = if id == 3 { "other" } else { "open" };
        let request = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
            "params": {"name": tool, "arguments": {}}});
        results.push(answer(&request.to_string(), true)["result"].clone());
    }
    let _ = host.kill();
    let _ = host.wait();
    assert_eq!(results[0]["isError"], false, "{results:?}");
    assert_eq!(results[1]["isError"], false, "{results:?}");
    assert_eq!(results[2]["isError"], true, "{results:?}");
    assert_eq!(
        results[2]["structuredContent"]["error"]["code"], "RATE_LIMITED",
        "{results:?}"
    );
}
