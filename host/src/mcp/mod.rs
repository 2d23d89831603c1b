//! The MCP face of the host: an rmcp `ServerHandler` whose tools are the loaded
//! plugins' tools, the same over Streamable HTTP and stdio. Each request's
//! [`CallContext`](crate::pipeline::context::CallContext) is built from what rmcp hands
//! over ([`context`]); `tools/call` goes to the [`Pipeline`] and its answer comes back
//! through [`result`]. Over stdio, [`stdio`] runs the session: rmcp serves it, and
//! `tools/call` is handed to the handler as it arrives, past rmcp's serve loop. Over
//! HTTP, [`direct`] answers the common request (a stateless `tools/call`) without
//! building an rmcp service for it. [`changes`] tells connected clients when a reload changes
//! the tools. [`client`] is how a plugin reaches the client whose request it serves;
//! [`input`] asks a 2026-07-28 client for sampling and elicitation answers.

pub mod changes;
pub mod client;
pub mod context;
pub mod direct;
pub mod input;
pub mod result;
pub mod stdio;

use crate::pipeline::context::CallContext;
use crate::pipeline::{CallError, Pipeline, ToolCall};
use changes::Sessions;
use client::{PeerClient, SessionLevel};
#[allow(deprecated, reason = "2025-11-25 clients set their level with it")]
use rmcp::model::SetLevelRequestParams;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, ClientCapabilities, Implementation, ListToolsResult,
    PaginatedRequestParams, ProtocolVersion, ServerCapabilities, ServerConfig, SubscriptionFilter,
    Tool,
};
use rmcp::service::{NotificationContext, RequestContext, SubscriptionContext};
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler};
use std::sync::Arc;

/// What clients are told about this server in `initialize` / `server/discover`.
const INSTRUCTIONS: &str = "Each tool runs in its own WebAssembly sandbox with only the \
                            access its operator granted.";

/// One handler per MCP session (or per stateless request); all share the pipeline.
#[derive(Clone)]
pub struct McpHandler {
    pipeline: Arc<Pipeline>,
    /// The sessions told when the tool list changes.
    sessions: Arc<Sessions>,
    /// The log level this session's client chose (one per session).
    level: Arc<SessionLevel>,
}

impl McpHandler {
    /// A handler calling tools through `pipeline`. Must be called within a Tokio
    /// runtime (a task tells open sessions of tool list changes).
    pub fn new(pipeline: Arc<Pipeline>) -> Self {
        let sessions = Sessions::watching(&pipeline);
        Self {
            pipeline,
            sessions,
            level: Arc::default(),
        }
    }

    /// The handler of a new session: the same pipeline and sessions, its own log level.
    pub fn for_session(&self) -> Self {
        Self {
            level: Arc::default(),
            ..self.clone()
        }
    }

    /// A `tools/call` in `ctx`, through the pipeline, answered in MCP's terms. A
    /// 2026-07-28 call (`modern`: what its client declared it can do) may end asking
    /// the client for input instead, to be retried with it ([`input`]).
    pub async fn call(
        &self,
        mut ctx: CallContext,
        mut params: CallToolRequestParams,
        modern: Option<ClientCapabilities>,
    ) -> Result<CallToolResponse, McpError> {
        let round = match modern {
            Some(capabilities) => {
                let notifications = ctx.client.clone().unwrap_or_else(client::Stateless::shared);
                let round = input::InputRound::start(
                    &mut params,
                    capabilities,
                    notifications,
                    ctx.needs_input.clone(),
                )?;
                ctx.client = Some(round.clone());
                Some(round)
            }
            None => None,
        };
        let call = ToolCall {
            tool: params.name.into_owned(),
            arguments: serde_json::Value::Object(params.arguments.unwrap_or_default()),
        };
        let result = self.pipeline.call(&ctx, &call).await;
        if let Err(CallError::InputRequired { .. }) = &result
            && let Some(needed) = round
                .as_ref()
                .and_then(|r| r.input_required(&call.arguments))
        {
            return Ok(needed.into());
        }
        result::to_mcp(result).map(Into::into)
    }

    /// The pipeline calls go through.
    pub fn pipeline(&self) -> &Pipeline {
        &self.pipeline
    }
}

impl ServerHandler for McpHandler {
    #[allow(deprecated, reason = "2025-11-25 clients use logging")]
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_tool_list_changed()
                .enable_logging()
                .build(),
        )
        .with_server_info(Implementation::new(
            "mcp-wasm-host",
            env!("CARGO_PKG_VERSION"),
        ))
        .with_instructions(INSTRUCTIONS)
    }

    async fn on_initialized(&self, context: NotificationContext<RoleServer>) {
        self.sessions.add(context.peer);
    }

    fn accepted_subscription_filter(
        &self,
        _requested: &SubscriptionFilter,
    ) -> Option<SubscriptionFilter> {
        Some(changes::accepted_filter())
    }

    async fn listen(&self, subscription: SubscriptionContext) -> Result<(), McpError> {
        changes::listen(subscription, self.pipeline.tool_list_changes()).await;
        Ok(())
    }

    /// `logging/setLevel`: plugins' log messages below `level` are not sent to this
    /// session's client.
    #[allow(deprecated, reason = "2025-11-25 clients set their level this way")]
    async fn set_level(
        &self,
        request: SetLevelRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        self.level.set(request.level);
        Ok(())
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        request: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        let ctx = context::call_context(&request);
        Ok(ListToolsResult::with_all_items(
            self.pipeline.list_tools(&ctx),
        ))
    }

    /// rmcp asks this (with no request at hand) to check `Mcp-Param-*` headers
    /// against a tool's schema; the call itself is checked by the pipeline.
    fn get_tool(&self, name: &str) -> Option<Tool> {
        self.pipeline.tool_descriptor(name)
    }

    async fn call_tool(
        &self,
        params: CallToolRequestParams,
        request: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let mut ctx = context::call_context(&request);
        ctx.client = Some(PeerClient::of(&request, &self.level));
        ctx.cancelled = request.ct.clone();
        let modern = request
            .protocol_version()
            .is_some_and(|v| v >= ProtocolVersion::V_2026_07_28)
            .then(|| request.client_capabilities().unwrap_or_default());
        self.call(ctx, params, modern).await
    }
}
