//! A hostile plugin on the real host, reaching for what it was not granted: the
//! network outside its allowlist, cloud metadata, a granted name that resolves inside,
//! raw sockets, DNS, credentials, the host's environment. Each attempt fails with the
//! right error, the host log names it where the host saw it, and an honest call on the
//! same host answers right after.

mod common;

use common::{Host, Upstream, call_fixture, connect, first_text, plugin, toml_path, toml_str};
use serde_json::json;
use std::time::Duration;

/// Set in the host's environment: a plugin must never see it.
const HOST_ONLY: (&str, &str) = ("HOST_ONLY_SENTINEL", "c0ffee-91b2");

struct Setup {
    host: Host,
    upstream: Upstream,
    internal_url: String,
}

async fn setup() -> Setup {
    let upstream = Upstream::start().await;
    let internal = common::internal_host_name();
    let internal_url = format!("http://{internal}:{}", upstream.addr.port());
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n[secrets]\nsource = \"env\"\n\
         [plugins.fix]\npath = {}\nenv = {{ GIVEN = \"yes\" }}\n\
         allowed_outbound_hosts = [{}, {}]\n",
        toml_path(&plugin("fixture")),
        toml_str(&upstream.base_url()),
        toml_str(&internal_url),
    );
    let host = Host::start(&config, &[HOST_ONLY]);
    Setup {
        host,
        upstream,
        internal_url,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_reach_beyond_the_grants_fails() {
    let s = setup().await;
    let client = connect(&s.host.mcp_url()).await;
    let granted = format!(
        "{}/data/2.5/weather?q=Oslo&appid={}",
        s.upstream.base_url(),
        common::API_KEY
    );
    // (attempt, what the plugin sees, what the host log says, if the host saw it)
    let attempts = [
        (
            json!({"http_get": "http://not-allowed.example/"}),
            "HttpRequestDenied",
            Some("denied outgoing request: not in allowed_outbound_hosts"),
        ),
        (
            json!({"http_get": "http://169.254.169.254/latest/meta-data/"}),
            "HttpRequestDenied",
            Some("target=http://169.254.169.254"),
        ),
        (
            json!({"http_get": format!("{}/data/2.5/weather", s.internal_url)}),
            "DestinationIpProhibited",
            Some("resolves to a blocked address"),
        ),
        (
            json!({"tcp_connect": s.upstream.addr.to_string()}),
            "connect",
            None,
        ),
        (json!({"lookup": "localhost"}), "lookup localhost", None),
        (
            json!({"credential": "weather-api-key"}),
            "NotGranted",
            Some("denied credential: not granted to this plugin"),
        ),
    ];
    for (attempt, seen, logged) in attempts {
        let result = call_fixture(&client, attempt.clone()).await;
        let answer = first_text(&result);
        assert_eq!(result.is_error, Some(true), "{attempt} succeeded: {answer}");
        assert!(answer.contains(seen), "{attempt}: {answer}");
        if let Some(logged) = logged {
            let log = s.host.wait_for_log(logged, Duration::from_secs(5));
            assert!(log.contains(logged), "{attempt}: {log}");
        }
        // The honest path on the same host still works.
        let result = call_fixture(&client, json!({"http_get": granted})).await;
        assert_eq!(first_text(&result), "HTTP 200", "after {attempt}");
    }
    // Only the honest requests reached the upstream.
    let seen = s.upstream.requests();
    assert_eq!(seen.len(), 6, "{seen:?}");
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
