//! MCP clients as the tests use them: rmcp over Streamable HTTP, and the fixture
//! plugin's tool.

/// An rmcp client connected to `url` over Streamable HTTP.
pub async fn connect(url: &str) -> rmcp::service::RunningService<rmcp::RoleClient, ()> {
    use rmcp::ServiceExt;
    let transport = rmcp::transport::StreamableHttpClientTransport::from_uri(url.to_owned());
    ().serve(transport).await.expect("the MCP client connects")
}

/// An rmcp client connected to `url`, sending `token` as its bearer token.
pub async fn connect_with_token(url: &str, token: &str) -> Client {
    use rmcp::ServiceExt;
    use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
    let config = StreamableHttpClientTransportConfig::with_uri(url.to_owned()).auth_header(token);
    ().serve(rmcp::transport::StreamableHttpClientTransport::from_config(
        config,
    ))
    .await
    .expect("the client connects with the token")
}

/// The names `tools/list` shows `client`, in order.
pub async fn tool_names(client: &rmcp::Peer<rmcp::RoleClient>) -> Vec<String> {
    client
        .list_all_tools()
        .await
        .expect("tools/list answers")
        .iter()
        .map(|t| t.name.to_string())
        .collect()
}

/// This machine's host name, which resolves (through /etc/hosts) to a loopback or
/// private address: a name the allowlist grants that leads somewhere internal.
pub fn internal_host_name() -> String {
    use std::net::ToSocketAddrs;
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .expect("the host name is readable")
        .trim()
        .to_owned();
    let addrs: Vec<_> = (name.as_str(), 80)
        .to_socket_addrs()
        .unwrap_or_else(|e| panic!("host name {name} does not resolve: {e}"))
        .collect();
    assert!(
        addrs.iter().all(|a| {
            let ip = a.ip();
            ip.is_loopback() || matches!(ip, std::net::IpAddr::V4(v4) if v4.is_private())
        }),
        "host name {name} resolves to {addrs:?}, not an internal address: the test needs one"
    );
    name
}

/// A connected rmcp client, as the tests use it.
pub type Client = rmcp::service::RunningService<rmcp::RoleClient, ()>;

/// Calls the fixture plugin's `fixture` tool with `arguments` (a JSON object).
pub async fn call_fixture(
    client: &Client,
    arguments: serde_json::Value,
) -> rmcp::model::CallToolResult {
    client
        .call_tool(
            rmcp::model::CallToolRequestParams::new("fixture")
                .with_arguments(arguments.as_object().expect("an object").clone()),
        )
        .await
        .expect("tools/call answers")
}

/// The text of a result's first content block.
pub fn first_text(result: &rmcp::model::CallToolResult) -> String {
    result.content[0]
        .as_text()
        .expect("text content")
        .text
        .clone()
}

/// A stateless 2026-07-28 `tools/call` of `tool` with `arguments` to `url`, as a client
/// sends it (with the `Mcp-*` headers); send it as is, or add headers first.
pub fn stateless_call(
    http: &reqwest::Client,
    url: &str,
    tool: &str,
    arguments: serde_json::Value,
) -> reqwest::RequestBuilder {
    let body = serde_json::json!({
        "jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {
            "name": tool, "arguments": arguments,
            "_meta": {
                "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                "io.modelcontextprotocol/clientCapabilities": {}
            }
        }
    });
    http.post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tools/call")
        .header("mcp-name", tool)
        .body(body.to_string())
}

/// Sends a [`stateless_call`] and returns the `result` of its JSON answer.
pub async fn stateless_result(
    url: &str,
    tool: &str,
    arguments: serde_json::Value,
) -> serde_json::Value {
    let answer: serde_json::Value = stateless_call(&reqwest::Client::new(), url, tool, arguments)
        .send()
        .await
        .expect("the host answers")
        .json()
        .await
        .expect("a JSON answer");
    answer["result"].clone()
}
