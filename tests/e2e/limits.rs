//! Per-plugin limits on the real host: CPU and wall-clock deadlines, memory, stack,
//! result size and concurrency. Each stopped call gives the client a short reason, the
//! host log names it, and an honest call right after still works.

use crate::common::{
    Host, Upstream, call_fixture, connect, first_text, plugin, toml_path, toml_str,
};
use serde_json::json;
use std::time::Duration;

fn limited_host(limits: &str) -> Host {
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n[plugins.fix]\npath = {}\nlimits = {limits}\n",
        toml_path(&plugin("fixture")),
    );
    Host::start(&config, &[])
}

async fn assert_still_answers(client: &crate::common::Client) {
    let result = call_fixture(client, json!({"text": "still here"})).await;
    assert_eq!(result.is_error, Some(false), "{result:?}");
    assert_eq!(first_text(&result), "still here");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_stop_hostile_calls_with_a_reason() {
    let host = limited_host("{ memory = \"16MiB\", timeout = \"700ms\", max_output = \"64KiB\" }");
    let client = connect(&host.mcp_url()).await;
    // (arguments, what the client reads, what the host logs)
    for (arguments, expected, logged) in [
        (
            json!({"spin": true}),
            "The tool `fixture` failed: the plugin timed out after 700ms",
            Some("error=the plugin timed out after 700ms"),
        ),
        (
            json!({"sleep_ms": 60_000}),
            "The tool `fixture` failed: the plugin timed out after 700ms",
            Some("error=the plugin timed out after 700ms"),
        ),
        (
            json!({"hog": true}),
            "The tool `fixture` failed: the plugin ran out of memory (limit 16 MiB)",
            Some("error=the plugin ran out of memory (limit 16 MiB)"),
        ),
        (
            json!({"recurse_native": true}),
            "The tool `fixture` failed: the plugin overflowed its stack",
            Some("error=the plugin overflowed its stack"),
        ),
        (
            json!({"recurse": true}),
            "The tool `fixture` failed: the plugin crashed: out-of-bounds memory access (often a stack overflow)",
            Some("error=the plugin accessed memory out of bounds"),
        ),
        (
            json!({"big_output": 100_000}),
            "The tool's result is 100000 bytes, more than the 65536 bytes its plugin may return",
            None,
        ),
    ] {
        let mark = host.log_mark();
        let result = call_fixture(&client, arguments.clone()).await;
        assert_eq!(result.is_error, Some(true), "{arguments}: {result:?}");
        assert_eq!(first_text(&result), expected, "{arguments}");
        if let Some(logged) = logged {
            let log = host.wait_for_log_since(mark, logged, Duration::from_secs(5));
            let line = log
                .lines()
                .find(|l| l.contains("tool call failed"))
                .unwrap_or_else(|| panic!("{arguments}: no failure line in\n{log}"));
            assert!(
                line.contains("plugin=fix") && line.contains(logged),
                "{arguments}: {line}"
            );
        }
        assert_still_answers(&client).await;
    }
    // A result just under the cap passes.
    let result = call_fixture(&client, json!({"big_output": 60_000})).await;
    assert_eq!(result.is_error, Some(false));
    client.cancel().await.ok();
}

/// A host whose fixture plugin may reach `upstream`, with these limits.
fn host_with_upstream(upstream: &Upstream, limits: &str) -> Host {
    Host::start(
        &format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n[plugins.fix]\npath = {}\n\
             allowed_outbound_hosts = [{}]\nlimits = {limits}\n",
            toml_path(&plugin("fixture")),
            toml_str(&upstream.base_url()),
        ),
        &[],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_spent_waiting_on_the_network_counts_against_the_timeout() {
    let upstream = Upstream::start().await;
    let host = host_with_upstream(&upstream, "{ timeout = \"700ms\" }");
    let client = connect(&host.mcp_url()).await;
    let url = format!("{}/slow?ms=60000", upstream.base_url());
    let result = call_fixture(&client, json!({"http_get": url})).await;
    assert_eq!(
        first_text(&result),
        "The tool `fixture` failed: the plugin timed out after 700ms"
    );
    // It was waiting on the upstream, not computing.
    assert_eq!(upstream.requests().len(), 1);
    assert_still_answers(&client).await;
    client.cancel().await.ok();
}

/// A host whose fixture plugin runs one call at once, a client whose call holds that
/// slot while the upstream takes `hold_ms` (running once this returns), and a second
/// client; the held call's result comes from the returned task.
pub(crate) async fn one_slot_held_for(
    hold_ms: u64,
) -> (
    Upstream,
    Host,
    tokio::task::JoinHandle<rmcp::model::CallToolResult>,
    crate::common::Client,
) {
    let upstream = Upstream::start().await;
    let host = host_with_upstream(&upstream, "{ max_concurrency = 1, timeout = \"20s\" }");
    let first = connect(&host.mcp_url()).await;
    let second = connect(&host.mcp_url()).await;
    let slow_url = format!("{}/slow?ms={hold_ms}", upstream.base_url());
    let held = tokio::spawn(async move {
        let result = call_fixture(&first, json!({"http_get": slow_url})).await;
        first.cancel().await.ok();
        result
    });
    // The upstream has the request: the first call is running.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while upstream.requests().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the first call never started"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (upstream, host, held, second)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_over_the_concurrency_limit_are_told_busy() {
    // The first call holds the only slot for 5 s; the second waits 2 s, then gives up.
    let (_upstream, _host, held, second) = one_slot_held_for(5_000).await;
    let busy = call_fixture(&second, json!({"text": "hi"})).await;
    assert_eq!(busy.is_error, Some(true), "{busy:?}");
    assert_eq!(
        first_text(&busy),
        "The tool `fixture` is busy: its plugin runs at most 1 calls at once. Try again shortly."
    );
    let held = held.await.unwrap();
    assert_eq!(held.is_error, Some(false), "{held:?}");
    assert_eq!(first_text(&held), "HTTP 200");
    // With the slot free again, calls go through.
    assert_still_answers(&second).await;
    second.cancel().await.ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_that_waits_for_a_slot_runs_when_one_frees_in_time() {
    // The first call holds the only slot for 500 ms, well within the 2 s a call waits.
    let (_upstream, _host, held, second) = one_slot_held_for(500).await;
    let waited = call_fixture(&second, json!({"text": "after you"})).await;
    assert_eq!(waited.is_error, Some(false), "{waited:?}");
    assert_eq!(first_text(&waited), "after you");
    assert_eq!(first_text(&held.await.unwrap()), "HTTP 200");
    second.cancel().await.ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_output_goes_to_the_host_log_only() {
    let host = limited_host("{}");
    let client = connect(&host.mcp_url()).await;
    let result = call_fixture(&client, json!({"print": "diagnostic 7f3a", "text": "done"})).await;
    assert_eq!(first_text(&result), "done");
    assert_eq!(result.content.len(), 1);
    let log = host.wait_for_log("stream=\"stderr\"", Duration::from_secs(5));
    for stream in ["stdout", "stderr"] {
        let line = log
            .lines()
            .find(|l| l.contains("plugin output") && l.contains(&format!("stream=\"{stream}\"")))
            .unwrap_or_else(|| panic!("no {stream} line in:\n{log}"));
        assert!(
            line.contains("plugin=\"fix\"") || line.contains("plugin=fix"),
            "{line}"
        );
        assert!(line.contains("diagnostic 7f3a"), "{line}");
    }
    // Output past 16 KiB per stream is counted, not kept.
    let long = "y".repeat(20_000);
    let mark = host.log_mark();
    call_fixture(&client, json!({"print": long, "text": "done"})).await;
    let log = host.wait_for_log_since(mark, "stream=\"stderr\"", Duration::from_secs(5));
    let line = log
        .lines()
        .find(|l| l.contains("plugin output") && l.contains("stream=\"stdout\""))
        .unwrap_or_else(|| panic!("no stdout line in:\n{log}"));
    // 20,000 characters and a newline, of which 16,384 bytes are kept.
    assert!(line.contains("dropped_bytes=3617"), "{}", &line[..200]);
    assert!(line.contains(&"y".repeat(16_384)) && !line.contains(&"y".repeat(16_385)));
    // A panic message is captured too; the client only hears that it crashed.
    let result = call_fixture(&client, json!({"panic": true})).await;
    assert_eq!(result.is_error, Some(true));
    assert_eq!(
        first_text(&result),
        "The tool `fixture` failed: the plugin crashed"
    );
    let log = host.wait_for_log("fixture asked to panic", Duration::from_secs(5));
    assert!(log.contains("fixture asked to panic"), "{log}");
    client.cancel().await.ok();
}

#[test]
fn bad_limits_stop_the_host_at_start() {
    let config = format!(
        "[plugins.fix]\npath = {}\nlimits = {{ memory = \"64MB\" }}\n",
        toml_path(&plugin("fixture")),
    );
    let (status, stderr) = crate::common::start_refused(&config, &[]);
    assert!(!status.success());
    assert!(
        stderr.contains("limits.memory") && stderr.contains("unknown unit `MB`"),
        "{stderr}"
    );
    assert!(stderr.contains("line 3"), "{stderr}");
}
