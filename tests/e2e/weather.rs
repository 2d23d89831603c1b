//! End to end: the real host process serves the weather plugin; the rmcp client lists
//! and calls it; a real HTTP upstream answers (and records what it was asked).

use crate::common::{
    API_KEY, ENV_SECRETS, Host, Secrets, Upstream, connect, plugin, start_refused, toml_path,
    weather_config, workspace_root,
};
use rmcp::model::{CallToolRequestParams, CallToolResult, JsonObject};
use serde_json::{Value, json};
use std::time::Duration;

fn args(value: Value) -> JsonObject {
    value.as_object().expect("an object").clone()
}

fn text_of(result: &CallToolResult) -> String {
    result
        .content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect::<Vec<_>>()
        .join("\n")
}

async fn call(
    client: &rmcp::service::RunningService<rmcp::RoleClient, ()>,
    arguments: Value,
) -> CallToolResult {
    client
        .call_tool(CallToolRequestParams::new("get_weather").with_arguments(args(arguments)))
        .await
        .expect("tools/call answers")
}

/// Calls `get_weather` and checks the plugin could not reach the upstream, which saw
/// nothing, and that the host logged `why`; returns the host log.
async fn assert_never_reached(
    client: &crate::common::Client,
    host: &Host,
    upstream: &Upstream,
    why: &str,
) -> String {
    let result = call(client, json!({"city": "Oslo"})).await;
    let text = text_of(&result);
    assert_eq!(result.is_error, Some(true), "{text}");
    assert!(
        text.contains("could not reach the weather service"),
        "{text}"
    );
    assert!(upstream.requests().is_empty(), "{:?}", upstream.requests());
    let log = host.wait_for_log(why, Duration::from_secs(5));
    assert!(log.contains(why), "{log}");
    log
}

/// A host whose weather plugin gets `key` from the encrypted store.
fn start_weather_host(upstream: &Upstream, key: &str) -> (Host, Secrets) {
    let secrets = Secrets::new(&[("weather-api-key", key)]);
    let config = weather_config(
        &upstream.base_url(),
        &upstream.base_url(),
        &secrets.section(),
    );
    (Host::start(&config, &secrets.env()), secrets)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_and_calls_get_weather() {
    let upstream = Upstream::start().await;
    let (host, _secrets) = start_weather_host(&upstream, API_KEY);
    let client = connect(&host.mcp_url()).await;

    let tools = client.list_all_tools().await.unwrap();
    assert_eq!(tools.len(), 1, "{tools:?}");
    let tool = &tools[0];
    assert_eq!(tool.name, "get_weather");
    let schema = Value::Object((*tool.input_schema).clone());
    assert_eq!(schema["type"], "object");
    assert_eq!(schema["properties"]["city"]["maxLength"], 100);
    assert_eq!(schema["required"], json!(["city"]));
    assert_eq!(schema["additionalProperties"], false);
    assert!(tool.output_schema.is_some());

    let result = call(&client, json!({"city": "São Paulo"})).await;
    assert_eq!(result.is_error, Some(false), "{result:?}");
    assert_eq!(
        text_of(&result),
        "São Paulo: 21.5°C, clear sky, humidity 40%, wind 3.5 m/s"
    );
    assert_eq!(
        result.structured_content,
        Some(json!({
            "city": "São Paulo", "temperature": 21.5, "units": "metric",
            "description": "clear sky", "humidity": 40.0, "wind_speed": 3.5,
        }))
    );

    let seen = upstream.requests();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].path, "/data/2.5/weather");
    assert_eq!(seen[0].params["appid"], API_KEY);
    assert_eq!(seen[0].params["q"], "São Paulo");
    assert_eq!(seen[0].params["units"], "metric");
    assert!(
        seen[0].raw_query.contains("q=S%C3%A3o%20Paulo"),
        "{}",
        seen[0].raw_query
    );

    let result = call(&client, json!({"city": "St. John's", "units": "imperial"})).await;
    assert_eq!(result.is_error, Some(false), "{result:?}");
    assert_eq!(
        text_of(&result),
        "St. John's: 70.7°F, clear sky, humidity 40%, wind 7.8 mph"
    );
    let seen = upstream.requests();
    assert_eq!(seen[1].params["units"], "imperial");
    assert!(
        seen[1].raw_query.contains("q=St.%20John%27s"),
        "{}",
        seen[1].raw_query
    );
    client.cancel().await.ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_arguments_are_tool_errors_and_never_reach_upstream() {
    let upstream = Upstream::start().await;
    let (host, _secrets) = start_weather_host(&upstream, API_KEY);
    let client = connect(&host.mcp_url()).await;

    let cases = [
        (json!({"city": "x".repeat(101)}), "/city", "longer than 100"),
        (json!({"city": ""}), "/city", "shorter than 1"),
        (
            json!({"city": "'; DROP TABLE users; --"}),
            "/city",
            "does not match",
        ),
        (
            json!({"city": "../../etc/passwd"}),
            "/city",
            "does not match",
        ),
        (json!({"city": 42}), "/city", "not of type \"string\""),
        (json!({}), "(root)", "\"city\" is a required property"),
        (json!({"city": "Oslo", "extra": 1}), "(root)", "'extra'"),
        (
            json!({"city": "Oslo", "units": "kelvin"}),
            "/units",
            "kelvin",
        ),
    ];
    for (arguments, field, reason) in cases {
        let result = call(&client, arguments.clone()).await;
        let text = text_of(&result);
        assert_eq!(result.is_error, Some(true), "{arguments}: {text}");
        assert!(
            text.starts_with("Invalid arguments for `get_weather`"),
            "{arguments}: {text}"
        );
        assert!(text.contains(field), "{arguments}: {text}");
        assert!(text.contains(reason), "{arguments}: {text}");
    }

    // No arguments at all is the empty object: `city` is missing.
    let result = client
        .call_tool(CallToolRequestParams::new("get_weather"))
        .await
        .unwrap();
    assert_eq!(result.is_error, Some(true));
    assert!(text_of(&result).contains("\"city\" is a required property"));

    assert!(upstream.requests().is_empty(), "{:?}", upstream.requests());
    client.cancel().await.ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_tool_is_a_clear_protocol_error() {
    let upstream = Upstream::start().await;
    let (host, _secrets) = start_weather_host(&upstream, API_KEY);
    let client = connect(&host.mcp_url()).await;
    let err = client
        .call_tool(CallToolRequestParams::new("get_wether"))
        .await
        .unwrap_err();
    let message = err.to_string();
    assert!(message.contains("unknown tool `get_wether`"), "{message}");
    assert!(upstream.requests().is_empty());
    client.cancel().await.ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_failures_become_readable_tool_errors() {
    let upstream = Upstream::start().await;
    let (host, _secrets) = start_weather_host(&upstream, API_KEY);
    let client = connect(&host.mcp_url()).await;
    for (city, expected) in [
        ("Atlantis", "No weather found for city \"Atlantis\""),
        ("Ratelimit", "HTTP 429"),
        ("Meltdown", "unavailable (HTTP 503)"),
        ("Garbled", "could not read"),
        ("Partial", "could not read"),
    ] {
        let result = call(&client, json!({"city": city})).await;
        let text = text_of(&result);
        assert_eq!(result.is_error, Some(true), "{city}: {text}");
        assert!(text.contains(expected), "{city}: {text}");
    }
    assert_eq!(upstream.requests().len(), 5);
    // After all those failures the plugin still answers.
    let result = call(&client, json!({"city": "Oslo"})).await;
    assert_eq!(result.is_error, Some(false), "{}", text_of(&result));
    client.cancel().await.ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_key_is_reported_without_leaking_it() {
    let upstream = Upstream::start().await;
    let wrong_key = "wrong-key-8d1e0b";
    let (host, _secrets) = start_weather_host(&upstream, wrong_key);
    let client = connect(&host.mcp_url()).await;
    let result = call(&client, json!({"city": "Oslo"})).await;
    let text = text_of(&result);
    assert_eq!(result.is_error, Some(true), "{text}");
    assert!(text.contains("rejected the API key (HTTP 401)"), "{text}");
    assert!(!text.contains(wrong_key), "{text}");
    assert_eq!(upstream.requests()[0].params["appid"], wrong_key);
    let log = host.wait_for_log("weather-api-key:granted", Duration::from_secs(5));
    assert!(
        log.contains("credentials=[\"weather-api-key:granted\"]"),
        "{log}"
    );
    assert!(!log.contains(wrong_key), "the key is in the host log");
    client.cancel().await.ok();
}

#[test]
fn a_missing_key_stops_the_host_at_start() {
    let secrets = Secrets::new(&[]);
    let config = weather_config(
        "http://127.0.0.1:9",
        "http://127.0.0.1:9",
        &secrets.section(),
    );
    let (status, stderr) = start_refused(&config, &secrets.env());
    assert!(!status.success());
    assert!(
        stderr.contains(
            "plugin `weather`: credential `weather-api-key`: it is not in the secret store"
        ),
        "{stderr}"
    );
    // The environment source checks at start too, when told to refuse.
    let strict_env = format!("{ENV_SECRETS}missing = \"refuse\"\n");
    let config = weather_config("http://127.0.0.1:9", "http://127.0.0.1:9", &strict_env);
    let (status, stderr) = start_refused(&config, &[]);
    assert!(!status.success());
    assert!(
        stderr.contains("the environment variable MCP_SECRET_WEATHER_API_KEY is not set"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_outside_the_allowlist_is_never_contacted() {
    let upstream = Upstream::start().await;
    // The allowlist names another port on the same address: not the upstream.
    let other = format!(
        "http://127.0.0.1:{}",
        upstream.addr.port().wrapping_add(1).max(1)
    );
    // This host takes its key from the environment, the simplest credential source.
    let config = weather_config(&upstream.base_url(), &other, ENV_SECRETS);
    let host = Host::start(&config, &[("MCP_SECRET_WEATHER_API_KEY", API_KEY)]);
    let client = connect(&host.mcp_url()).await;
    let log = assert_never_reached(&client, &host, &upstream, "denied outgoing request").await;
    assert!(log.contains("plugin=weather"), "{log}");
    assert!(
        log.contains(&format!(
            "target=\"http://127.0.0.1:{}\"",
            upstream.addr.port()
        )),
        "{log}"
    );
    assert!(!log.contains(API_KEY), "the key is in the host log");
    client.cancel().await.ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arguments_that_are_not_an_object_are_a_tool_error() {
    let upstream = Upstream::start().await;
    let (host, _secrets) = start_weather_host(&upstream, API_KEY);
    let http = reqwest::Client::new();
    for (arguments, found) in [
        ("\"London\"", "a string"),
        ("[\"London\"]", "an array"),
        ("7", "a number"),
    ] {
        let body = format!(
            r#"{{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{{"name":"get_weather",
            "arguments":{arguments},"_meta":{{"io.modelcontextprotocol/protocolVersion":"2026-07-28",
            "io.modelcontextprotocol/clientCapabilities":{{}}}}}}}}"#
        );
        let response = http
            .post(host.mcp_url())
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2026-07-28")
            .header("mcp-method", "tools/call")
            .header("mcp-name", "get_weather")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let answer: Value = serde_json::from_str(&response.text().await.unwrap()).unwrap();
        assert_eq!(answer["id"], 9, "{answer}");
        assert_eq!(answer["result"]["isError"], true, "{answer}");
        let text = answer["result"]["content"][0]["text"].as_str().unwrap();
        assert_eq!(
            text,
            format!(
                "Invalid arguments for `get_weather`: arguments must be a JSON object, got {found}"
            )
        );
    }
    assert!(upstream.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn localhost_granted_by_name_is_reachable() {
    let upstream = Upstream::start().await;
    let base = format!("http://localhost:{}", upstream.addr.port());
    let config = weather_config(&base, &base, ENV_SECRETS);
    let host = Host::start(&config, &[("MCP_SECRET_WEATHER_API_KEY", API_KEY)]);
    let client = connect(&host.mcp_url()).await;
    let result = call(&client, json!({"city": "Oslo"})).await;
    assert_eq!(result.is_error, Some(false), "{}", text_of(&result));
    assert_eq!(upstream.requests().len(), 1);
    client.cancel().await.ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_granted_name_that_resolves_inside_is_blocked() {
    let upstream = Upstream::start().await;
    let name = crate::common::internal_host_name();
    let base = format!("http://{name}:{}", upstream.addr.port());
    let config = weather_config(&base, &base, ENV_SECRETS);
    let host = Host::start(&config, &[("MCP_SECRET_WEATHER_API_KEY", API_KEY)]);
    let client = connect(&host.mcp_url()).await;
    let log =
        assert_never_reached(&client, &host, &upstream, "resolves to a blocked address").await;
    assert!(log.contains(&format!("target=http://{name}:")), "{log}");
    client.cancel().await.ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_config_serves_with_nothing_set() {
    // examples/host.toml as the README's run command serves it, with only the plugin's
    // path, the port, the database and the audit log changed: no key anywhere in the
    // environment.
    let example = std::fs::read_to_string(workspace_root().join("examples/host.toml")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let notes = dir.path().join("notes");
    std::fs::create_dir(&notes).unwrap();
    let config = example
        .replace("listen = \"127.0.0.1:8080\"", "listen = \"127.0.0.1:0\"")
        .replace(
            "path = \"../target/wasm32-wasip2/release/weather.wasm\"",
            &format!("path = {}", toml_path(&plugin("weather"))),
        )
        .replace(
            "path = \"../target/wasm32-wasip2/release/notes.wasm\"",
            &format!("path = {}", toml_path(&plugin("notes"))),
        )
        .replace(
            "host = \"../target/quickstart/notes\"",
            &format!("host = {}", toml_path(&notes)),
        )
        .replace(
            "database = \"../target/quickstart/auth.sqlite\"",
            &format!("database = {}", toml_path(&dir.path().join("auth.sqlite"))),
        )
        .replace(
            "path = \"../target/quickstart/audit.jsonl\"",
            &format!("path = {}", toml_path(&dir.path().join("audit.jsonl"))),
        );
    for old in [
        "127.0.0.1:8080",
        "../target/wasm32-wasip2",
        "../target/quickstart",
    ] {
        assert!(
            example.contains(old) && !config.contains(old),
            "the example's `{old}` was replaced"
        );
    }
    // scripts/run.sh makes a KEK when none is set; nothing else is in the environment.
    let (_, kek, _) = crate::common::run_host(&["keygen"]);
    let host = Host::start(&config, &[("MCP_HOST_KEK", kek.trim())]);
    let log = host.wait_for_log("credential has no value", Duration::from_secs(5));
    assert!(
        log.contains("MCP_SECRET_WEATHER_API_KEY is not set"),
        "no warning at start:\n{log}"
    );
    // The first start says how the first user comes to exist...
    assert!(log.contains("No user can log in yet"), "{log}");
    // ...and with that setup code a client gets a token (the login page creates the user).
    let token = crate::oauth::token_for(&host, "demo-user").await;
    let client = crate::oauth::client_with(&host, &token).await;
    let result = call(&client, json!({"city": "Lisbon"})).await;
    assert_eq!(result.is_error, Some(true));
    assert_eq!(
        text_of(&result),
        "The tool failed: the credential `weather-api-key` has no value on the host; the \
         operator must configure it"
    );
    // The notes tools answer with nothing set, into the folder the example grants.
    let saved = client
        .call_tool(
            CallToolRequestParams::new("add_note")
                .with_arguments(args(json!({"title": "First", "text": "it works"}))),
        )
        .await
        .unwrap();
    assert_eq!(text_of(&saved), "Saved note 1: First");
    assert!(notes.join("note-000001.json").is_file());
    client.cancel().await.ok();
    // The setup code worked once: the next client logs in with the password.
    let token = crate::oauth::token_for_existing(&host, "demo-user").await;
    assert!(!token.is_empty());
    // The example keeps an audit log: the call is in it, and the chain verifies.
    let audit = std::fs::read_to_string(dir.path().join("audit.jsonl")).unwrap();
    assert!(
        audit
            .lines()
            .any(|l| l.contains("\"tool\":\"get_weather\"")
                && l.contains("\"subject\":\"demo-user\"")),
        "{audit}"
    );
    let audit_path = dir.path().join("audit.jsonl").display().to_string();
    let (status, said, _) = crate::common::run_host(&["audit", "verify", &audit_path]);
    assert!(status.success(), "{said}");
}
