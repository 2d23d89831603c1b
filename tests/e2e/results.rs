//! How a plugin's answers reach the client: content kinds, structured content checked
//! against the output schema, plugin errors, and a crashing plugin that does not take
//! the host (or the next call) with it.

use crate::common::{Host, connect, plugin, toml_path, toml_str};
use rmcp::model::{CallToolRequestParams, CallToolResult, ContentBlock};
use serde_json::{Value, json};

fn fixture_host() -> Host {
    let tools = json!([
        {
            "name": "fixture",
            "input_schema": {"type": "object"},
            "annotations": {"read_only": true, "open_world": false}
        },
        {
            "name": "typed",
            "input_schema": {"type": "object"},
            "output_schema": {
                "type": "object",
                "properties": {"n": {"type": "integer"}},
                "required": ["n"]
            }
        }
    ]);
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n[plugins.fix]\npath = {}\nenv = {{ FIXTURE_TOOLS = {} }}\n",
        toml_path(&plugin("fixture")),
        toml_str(&tools.to_string()),
    );
    Host::start(&config, &[])
}

async fn call(
    client: &rmcp::service::RunningService<rmcp::RoleClient, ()>,
    tool: &'static str,
    arguments: Value,
) -> CallToolResult {
    client
        .call_tool(
            CallToolRequestParams::new(tool).with_arguments(arguments.as_object().unwrap().clone()),
        )
        .await
        .expect("tools/call answers")
}

fn only_text(result: &CallToolResult) -> String {
    match &result.content[..] {
        [content] => content.as_text().expect("text content").text.clone(),
        other => panic!("expected one text content, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_kinds_are_mapped() {
    let host = fixture_host();
    let client = connect(&host.mcp_url()).await;
    let result = call(
        &client,
        "fixture",
        json!({
            "text": "hello", "image": true, "audio": true, "resource_text": "inside",
            "resource_blob": true, "link": "https://example.com/report"
        }),
    )
    .await;
    assert_eq!(result.is_error, Some(false));
    // As the client's SDK reads them, and as MCP's JSON puts them.
    assert_eq!(result.content[0].as_text().unwrap().text, "hello");
    match &result.content[1] {
        ContentBlock::Image(image) => {
            assert_eq!(image.data, "AQID");
            assert_eq!(image.mime_type, "image/png");
        }
        other => panic!("expected an image, got {other:?}"),
    }
    let json = serde_json::to_value(&result.content).unwrap();
    assert_eq!(
        json.as_array().unwrap()[2..],
        [
            json!({"type": "audio", "data": "BAUG", "mimeType": "audio/wav"}),
            json!({"type": "resource", "resource": {
                "uri": "fixture://r", "mimeType": "text/plain", "text": "inside"
            }}),
            json!({"type": "resource", "resource": {
                "uri": "fixture://r", "mimeType": "text/plain", "blob": "BwgJ"
            }}),
            json!({"type": "resource_link", "uri": "https://example.com/report", "name": "linked"}),
        ]
    );
    // The plugin's tool annotations reach tools/list.
    let tools = client.list_all_tools().await.unwrap();
    let annotations = tools[0].annotations.clone().expect("annotations");
    assert_eq!(annotations.read_only_hint, Some(true));
    assert_eq!(annotations.open_world_hint, Some(false));
    assert_eq!(annotations.destructive_hint, None);
    assert!(tools[1].annotations.is_none(), "{:?}", tools[1]);
    client.cancel().await.ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn structured_content_is_parsed_and_checked() {
    let host = fixture_host();
    let client = connect(&host.mcp_url()).await;

    let result = call(&client, "fixture", json!({"structured": {"a": [1, 2]}})).await;
    assert_eq!(result.is_error, Some(false));
    assert_eq!(result.structured_content, Some(json!({"a": [1, 2]})));

    let result = call(&client, "typed", json!({"structured": {"n": 7}})).await;
    assert_eq!(result.is_error, Some(false));
    assert_eq!(result.structured_content, Some(json!({"n": 7})));
    // With no content of its own, the result carries its JSON as text for older clients.
    assert_eq!(only_text(&result), r#"{"n":7}"#);

    let result = call(&client, "fixture", json!({"raw_structured": "{oops"})).await;
    assert_eq!(result.is_error, Some(true));
    assert!(only_text(&result).contains("structured content that is not JSON"));

    let result = call(&client, "typed", json!({"structured": {"n": "seven"}})).await;
    assert_eq!(result.is_error, Some(true));
    let text = only_text(&result);
    assert!(text.contains("does not match its output schema"), "{text}");
    assert!(text.contains("/n"), "{text}");

    let result = call(&client, "typed", json!({"text": "no structure"})).await;
    assert_eq!(result.is_error, Some(true));
    assert!(only_text(&result).contains("returned no structured content"));
    client.cancel().await.ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_errors_are_readable_tool_errors() {
    let host = fixture_host();
    let client = connect(&host.mcp_url()).await;

    let result = call(
        &client,
        "fixture",
        json!({"text": "nope", "is_error": true}),
    )
    .await;
    assert_eq!(result.is_error, Some(true));
    assert_eq!(only_text(&result), "nope");

    let result = call(&client, "fixture", json!({"error": "disk on fire"})).await;
    assert_eq!(result.is_error, Some(true));
    assert_eq!(only_text(&result), "The tool failed: disk on fire");
    client.cancel().await.ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashing_plugin_does_not_take_the_next_call_with_it() {
    let host = fixture_host();
    let client = connect(&host.mcp_url()).await;
    let result = call(&client, "fixture", json!({"panic": true})).await;
    assert_eq!(result.is_error, Some(true));
    let text = only_text(&result);
    assert_eq!(text, "The tool `fixture` failed: the plugin crashed");
    let log = host.wait_for_log("tool call failed", std::time::Duration::from_secs(5));
    let line = log
        .lines()
        .find(|l| l.contains("tool call failed"))
        .unwrap_or_else(|| panic!("no failure line in\n{log}"));
    assert!(
        line.contains("plugin=fix") && line.contains("error=the plugin crashed"),
        "{line}"
    );

    let result = call(&client, "fixture", json!({"text": "still here"})).await;
    assert_eq!(result.is_error, Some(false));
    assert_eq!(only_text(&result), "still here");
    client.cancel().await.ok();
}
