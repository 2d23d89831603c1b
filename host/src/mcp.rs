//! The MCP face of the host: an rmcp `ServerHandler` whose tools are the loaded
//! plugins' tools. `tools/call` hands over to the [`Pipeline`].

use crate::pipeline::{Pipeline, Refusal, ToolCall};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, Implementation, ListToolsResult,
    PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler};
use std::sync::Arc;

/// What clients are told about this server in `initialize` / `server/discover`.
const INSTRUCTIONS: &str = "Each tool runs in its own WebAssembly sandbox with only the \
                            access its operator granted.";

/// One handler per MCP session (or per stateless request); all share the pipeline.
#[derive(Clone)]
pub struct McpHandler {
    pipeline: Arc<Pipeline>,
}

impl McpHandler {
    pub fn new(pipeline: Arc<Pipeline>) -> Self {
        Self { pipeline }
    }
}

impl ServerHandler for McpHandler {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new(
                "mcp-wasm-host",
                env!("CARGO_PKG_VERSION"),
            ))
            .with_instructions(INSTRUCTIONS)
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        let tools = self
            .pipeline
            .registry()
            .tools()
            .map(|tool| tool.descriptor.clone())
            .collect();
        Ok(ListToolsResult::with_all_items(tools))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        self.pipeline
            .registry()
            .tool(name)
            .map(|tool| tool.descriptor.clone())
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let call = ToolCall {
            tool: request.name.into_owned(),
            arguments: request.arguments,
        };
        match self.pipeline.call(call).await {
            Ok(result) => Ok(result.into()),
            Err(refusal @ Refusal::UnknownTool(_)) => {
                Err(McpError::invalid_params(refusal.to_string(), None))
            }
        }
    }
}
