//! A hostile plugin on the real host, reaching for what it was not granted: the
//! network outside its allowlist, cloud metadata, a granted name that resolves inside,
//! raw sockets, DNS, credentials, the host's environment. Each attempt fails with the
//! right error, the host log names it where the host saw it, and an honest call on the
//! same host answers right after.

use crate::common::{
    Host, Upstream, call_fixture, connect, first_text, plugin, toml_path, toml_str,
};
use serde_json::json;
use std::time::Duration;

/// Set in the host's environment: a plugin must never see it.
const HOST_ONLY: (&str, &str) = ("HOST_ONLY_SENTINEL", "c0ffee-91b2");

struct Setup {
    host: Host,
    upstream: Upstream,
    internal_url: String,
    _dir: tempfile::TempDir,
}

async fn setup() -> Setup {
    setup_with("").await
}

/// [`setup`], with `extra` lines in the plugin's section.
async fn setup_with(extra: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let upstream = Upstream::start().await;
    let internal = crate::common::internal_host_name();
    let internal_url = format!("http://{internal}:{}", upstream.addr.port());
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n[secrets]\nsource = \"env\"\n\
         [plugins.fix]\npath = {}\nenv = {{ GIVEN = \"yes\" }}\n\
         allowed_outbound_hosts = [{}, {}]\n\
         files = [{{ host = {}, guest = \"/data\", mode = \"ro\" }}]\n{extra}\n",
        toml_path(&plugin("fixture")),
        toml_str(&upstream.base_url()),
        toml_str(&internal_url),
        toml_path(dir.path()),
    );
    let host = Host::start(&config, &[HOST_ONLY]);
    Setup {
        host,
        upstream,
        internal_url,
        _dir: dir,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_reach_beyond_the_grants_fails() {
    let s = setup().await;
    let client = connect(&s.host.mcp_url()).await;
    let granted = format!(
        "{}/data/2.5/weather?q=Oslo&appid={}",
        s.upstream.base_url(),
        crate::common::API_KEY
    );
    // (attempt, what the plugin sees, what the host log says)
    let attempts = [
        (
            json!({"http_get": "http://not-allowed.example/"}),
            "HttpRequestDenied",
            "denied outgoing request: not in allowed_outbound_hosts",
        ),
        (
            json!({"http_get": "http://169.254.169.254/latest/meta-data/"}),
            "HttpRequestDenied",
            r#"target="http://169.254.169.254""#,
        ),
        (
            json!({"http_get": format!("{}/data/2.5/weather", s.internal_url)}),
            "DestinationIpProhibited",
            "resolves to a blocked address",
        ),
        (
            json!({"tcp_connect": s.upstream.addr.to_string()}),
            ": Permission denied (os error 2)",
            r#"denied raw TCP socket: plugins reach the network only through HTTP plugin=fix capability=tcp target="ipv4 socket""#,
        ),
        (
            json!({"udp_bind": "0.0.0.0:0"}),
            "udp bind 0.0.0.0:0: Permission denied",
            "denied raw UDP socket: plugins reach the network only through HTTP plugin=fix capability=udp",
        ),
        (
            json!({"lookup": "example.org"}),
            "lookup example.org: Permission denied",
            r#"capability=dns target="example.org""#,
        ),
        (
            json!({"credential": "weather-api-key"}),
            "NotGranted",
            "denied credential: not granted to this plugin",
        ),
    ];
    let attempts_made = attempts.len();
    // The first refusal's line carries the call id of its `tool call` line.
    let first_denial = Some(attempts[0].2);
    for (attempt, seen, logged) in attempts {
        let mark = s.host.log_mark();
        let result = call_fixture(&client, attempt.clone()).await;
        let answer = first_text(&result);
        assert_eq!(result.is_error, Some(true), "{attempt} succeeded: {answer}");
        assert!(answer.contains(seen), "{attempt}: {answer}");
        let log = s
            .host
            .wait_for_log_since(mark, logged, Duration::from_secs(5));
        assert!(log.contains(logged), "{attempt}: {logged} not in\n{log}");
        if first_denial == Some(logged) {
            assert_same_call(&s.host, mark, logged);
        }
        // The honest path on the same host still works.
        let result = call_fixture(&client, json!({"http_get": granted})).await;
        assert_eq!(first_text(&result), "HTTP 200", "after {attempt}");
    }
    // Only the honest requests reached the upstream.
    let seen = s.upstream.requests();
    assert_eq!(seen.len(), attempts_made, "{seen:?}");
    client.cancel().await.ok();
}

/// The line holding `denied` (logged after `mark`) sits in a span naming the call: a
/// `call{call_id=ID}` span, or over HTTP, the `request{.. request_id=ID}` span whose id
/// is the call's. The call's `tool call` line names the same ID.
fn assert_same_call(host: &Host, mark: usize, denied: &str) {
    let log = host.wait_for_log_since(mark, denied, Duration::from_secs(5));
    let line = log.lines().find(|l| l.contains(denied)).unwrap();
    let id = ["call{call_id=", " request_id="]
        .iter()
        .find_map(|key| line.split(key).nth(1))
        .and_then(|rest| rest.split(['}', ' ']).next())
        .unwrap_or_else(|| panic!("no span naming the call on: {line}"));
    let tool_call = format!("tool call call_id={id} ");
    let log = host.wait_for_log_since(mark, &tool_call, Duration::from_secs(5));
    assert!(
        log.contains(&tool_call),
        "no tool call line for {id} in\n{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_are_not_followed() {
    let s = setup().await;
    let elsewhere = Upstream::start().await;
    let client = connect(&s.host.mcp_url()).await;
    let url = format!(
        "{}/redirect?to={}/data/2.5/weather",
        s.upstream.base_url(),
        elsewhere.base_url()
    );
    let result = call_fixture(&client, json!({"http_get": url})).await;
    // The plugin sees the redirect itself; the host does not go there.
    assert_eq!(first_text(&result), "HTTP 302");
    assert!(elsewhere.requests().is_empty());
    client.cancel().await.ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_environment_is_only_what_the_config_gives() {
    let s = setup().await;
    let client = connect(&s.host.mcp_url()).await;
    let result = call_fixture(&client, json!({"env_dump": true})).await;
    assert_eq!(result.is_error, Some(false));
    assert_eq!(first_text(&result), "GIVEN=yes");
    assert!(!first_text(&result).contains(HOST_ONLY.1));
    client.cancel().await.ok();
}

/// Makes each `(attempt, the answer, the line in the log)` call and checks both.
async fn assert_each_answered_and_logged(
    host: &Host,
    client: &crate::common::Client,
    attempts: &[(serde_json::Value, &str, &str)],
) {
    for (attempt, answer, logged) in attempts {
        let mark = host.log_mark();
        let result = call_fixture(client, attempt.clone()).await;
        assert_eq!(first_text(&result), *answer, "{attempt}");
        let log = host.wait_for_log_since(mark, logged, Duration::from_secs(5));
        assert!(log.contains(logged), "{attempt}: {logged} not in\n{log}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_that_needs_more_may_be_granted_more() {
    let s =
        setup_with("limits = { max_open_files = 300, max_listings = 20, max_connections = 20 }")
            .await;
    let client = connect(&s.host.mcp_url()).await;
    let authority = s.upstream.addr.to_string();
    let attempts = [
        (
            json!({"hold_open": 5000}),
            "held 300 then: insufficient-memory",
            "more than 300 files open in one call (limits.max_open_files)",
        ),
        (
            json!({"hold_listings": 100}),
            "held 20 then: insufficient-memory",
            "more than 20 listings open in one call (limits.max_listings)",
        ),
        (
            json!({"http_burst": [authority, "/endless", 40]}),
            "answered 20, failed: ErrorCode::ConnectionLimitReached",
            "more than 20 connections open in one call (limits.max_connections)",
        ),
    ];
    assert_each_answered_and_logged(&s.host, &client, &attempts).await;
    client.cancel().await.ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_cannot_hoard_the_hosts_descriptors_or_memory() {
    let s = setup().await;
    std::fs::write(s._dir.path().join("f.txt"), "x").unwrap();
    let client = connect(&s.host.mcp_url()).await;
    // Warm up (the host opens what it needs for calls), then count.
    let result = call_fixture(&client, json!({"hold_open": 1})).await;
    assert_eq!(first_text(&result), "held 1");
    #[cfg(target_os = "linux")]
    let fds_before = s.host.open_fds();
    // (attempt, the answer, the refusal in the log)
    let authority = s.upstream.addr.to_string();
    let attempts = [
        // Each open file is a host file descriptor...
        (
            json!({"hold_open": 5000}),
            "held 256 then: insufficient-memory",
            "denied file access: open: more than 256 files open in one call",
        ),
        // ...also when only a stream still holds it.
        (
            json!({"hold_streams": 5000, "file": "f.txt"}),
            "held 256 then: insufficient-memory",
            "denied file access: open: more than 256 files open in one call",
        ),
        // Each listing sits in host memory.
        (
            json!({"hold_listings": 100}),
            "held 16 then: insufficient-memory",
            "more than 16 listings open in one call",
        ),
        // Each open connection is a descriptor too.
        (
            json!({"http_burst": [authority, "/endless", 40]}),
            "answered 16, failed: ErrorCode::ConnectionLimitReached",
            "more than 16 connections open in one call",
        ),
    ];
    assert_each_answered_and_logged(&s.host, &client, &attempts).await;
    // Any other host object (here: handles to its directories) is capped too; the
    // plugin that goes past the cap is stopped, and the next call works.
    let result = call_fixture(&client, json!({"hold_handles": 100_000})).await;
    assert_eq!(result.is_error, Some(true), "{}", first_text(&result));
    assert!(
        first_text(&result).contains("crashed"),
        "{}",
        first_text(&result)
    );
    let result = call_fixture(&client, json!({"hold_open": 1})).await;
    assert_eq!(first_text(&result), "held 1");
    // Everything was given back when those calls ended: every file, and every
    // connection (the client may have opened a connection or two of its own).
    #[cfg(target_os = "linux")]
    {
        let (sockets_before, files_before) = fds_before;
        let given_back = |(sockets, files): (usize, usize)| {
            files <= files_before && sockets <= sockets_before + 2
        };
        // Connections close as their tasks end: on a loaded machine that can take a
        // while. What is asserted is the last count seen, as seen.
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        let mut open = s.host.open_fds();
        while !given_back(open) && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
            open = s.host.open_fds();
        }
        assert!(
            given_back(open),
            "(sockets, files) open: {open:?}, before: {fds_before:?}"
        );
    }
    client.cancel().await.ok();
}
