//! One `tools/call`, top to bottom. Every call goes through [`Pipeline::call`], whose
//! body is the list of steps in DESIGN.md, in order.

use crate::registry::{RegisteredTool, Registry};
use crate::sandbox::Sandbox;
use crate::sandbox::bindings::exports::mcp::tools::tools::{CallError, CallResult};
use crate::sandbox::bindings::mcp::tools::types::Content;
use crate::sandbox::credentials::CredentialUse;
use base64::Engine as _;
use rmcp::model::{CallToolResult, ContentBlock, JsonObject, Resource};
use serde_json::Value;
use std::sync::Arc;
use std::time::Instant;
use thiserror::Error;
use tracing::Instrument;

/// A `tools/call` request as the pipeline sees it.
#[derive(Debug)]
pub struct ToolCall {
    pub tool: String,
    /// `None` when the client sent no arguments (treated as `{}`).
    pub arguments: Option<JsonObject>,
}

/// A call refused before it reached a tool: a protocol error, not a tool result.
#[derive(Debug, Error)]
pub enum Refusal {
    #[error("unknown tool `{0}`; tools/list shows the tools this server offers")]
    UnknownTool(String),
}

/// Runs tool calls against the loaded plugins.
pub struct Pipeline {
    registry: Arc<Registry>,
    sandbox: Arc<Sandbox>,
}

impl Pipeline {
    pub fn new(registry: Arc<Registry>, sandbox: Arc<Sandbox>) -> Self {
        Self { registry, sandbox }
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// One tool call, step by step. Tool failures come back as `isError` results the
    /// model can read; only requests for tools that do not exist are refused.
    pub async fn call(&self, call: ToolCall) -> Result<CallToolResult, Refusal> {
        let started = Instant::now();
        // 1. authenticate: the bearer token is checked by the HTTP layer (auth issue).
        // 2. authorize: the tool's required scope (auth issue).
        // 3. rate limit: per user, per tool, per user x tool (rate-limit issue).
        let tool = self
            .registry
            .tool(&call.tool)
            .ok_or_else(|| Refusal::UnknownTool(call.tool.chars().take(128).collect()))?;
        // 4. validate the arguments against the tool's JSON Schema.
        let arguments = Value::Object(call.arguments.unwrap_or_default());
        if let Err(problems) = tool.input.check(&arguments) {
            return Ok(tool_error(format!(
                "Invalid arguments for `{}`: {problems}",
                call.tool
            )));
        }
        // 5. invoke in a fresh, capability-scoped instance, within the plugin's limits.
        let call_id = uuid::Uuid::new_v4();
        let (result, credential_uses) = self.invoke(tool, &call.tool, &arguments, call_id).await;
        // 6. audit (audit issue); for now the outcome goes to the host log.
        tracing::info!(
            %call_id,
            plugin = %tool.plugin.name,
            tool = %call.tool,
            is_error = result.is_error.unwrap_or(false),
            credentials = ?credential_uses
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
            duration_us = started.elapsed().as_micros() as u64,
            "tool call"
        );
        Ok(result)
    }

    /// Runs the plugin and maps whatever happens to a `CallToolResult`.
    ///
    /// A plugin whose calls keep crashing makes new calls wait first (see
    /// [`crate::cooldown`]). The call takes one of the plugin's concurrency permits
    /// (waiting at most [`BUSY_WAIT`]) and runs as a task of its own: a panic anywhere
    /// in it ends that call only, and the permit is held until the task ends even if
    /// the client leaves.
    async fn invoke(
        &self,
        tool: &Arc<RegisteredTool>,
        name: &str,
        arguments: &Value,
        call_id: uuid::Uuid,
    ) -> (CallToolResult, Vec<CredentialUse>) {
        let plugin = &tool.plugin;
        let cooldown = plugin.cooldown.wait();
        if !cooldown.is_zero() {
            tokio::time::sleep(cooldown).await;
        }
        let permit = match tokio::time::timeout(BUSY_WAIT, plugin.slots.clone().acquire_owned())
            .await
        {
            Ok(Ok(permit)) => permit,
            _ => {
                tracing::warn!(%call_id, plugin = %plugin.name, tool = name, "busy: concurrency limit reached");
                let limit = plugin.prepared.grants().limits.max_concurrency;
                return (
                    tool_error(format!(
                        "The tool `{name}` is busy: its plugin runs at most {limit} calls at \
                         once. Try again shortly."
                    )),
                    Vec::new(),
                );
            }
        };
        let task = {
            let (sandbox, tool, name) = (self.sandbox.clone(), tool.clone(), name.to_owned());
            let arguments = arguments.to_string();
            // Everything the sandbox logs for this call (refusals, what the plugin
            // printed) carries its call id.
            let span = tracing::info_span!("call", %call_id);
            tokio::spawn(
                async move {
                    let invocation = sandbox
                        .call_tool(&tool.plugin.prepared, &name, &arguments)
                        .await;
                    drop(permit);
                    invocation
                }
                .instrument(span),
            )
        };
        let invocation = match task.await {
            Ok(invocation) => invocation,
            Err(error) => {
                tracing::error!(%call_id, plugin = %plugin.name, tool = name, %error, "tool call panicked in the host");
                return (
                    tool_error(format!("The tool `{name}` failed: the plugin crashed")),
                    Vec::new(),
                );
            }
        };
        plugin.cooldown.record(invocation.outcome.is_err());
        let result = match invocation.outcome {
            Ok(Ok(result)) => map_result(tool, result),
            Ok(Err(error)) => map_call_error(error),
            Err(error) => {
                tracing::warn!(%call_id, plugin = %plugin.name, tool = name, %error, "tool call failed");
                tool_error(format!("The tool `{name}` failed: {}", error.short()))
            }
        };
        (result, invocation.credential_uses)
    }
}

/// How long a call waits for one of its plugin's concurrency permits before it is
/// answered "busy".
const BUSY_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

fn tool_error(message: String) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(message)])
}

/// A plugin's `call-error` as a result the model can read.
fn map_call_error(error: CallError) -> CallToolResult {
    tool_error(match error {
        CallError::InvalidArguments(m) => format!("Invalid arguments: {m}"),
        CallError::UnknownTool(m) => format!("The plugin does not know the tool `{m}`"),
        CallError::Upstream(m) => format!("Upstream service error: {m}"),
        CallError::Internal(m) => format!("The tool failed: {m}"),
    })
}

/// A plugin's `call-result` as MCP content, checking structured content against the
/// tool's output schema.
fn map_result(tool: &RegisteredTool, result: CallResult) -> CallToolResult {
    let size = result_size(&result);
    let cap = tool.plugin.prepared.grants().limits.max_output;
    if size > cap {
        return tool_error(format!(
            "The tool's result is {size} bytes, more than the {cap} bytes its plugin may return"
        ));
    }
    let content = result.content.into_iter().map(map_content).collect();
    let structured = match result
        .structured
        .as_deref()
        .map(serde_json::from_str::<Value>)
    {
        None => None,
        Some(Ok(value)) => Some(value),
        Some(Err(e)) => {
            return tool_error(format!(
                "The tool returned structured content that is not JSON: {e}"
            ));
        }
    };
    if !result.is_error {
        match (&tool.output, &structured) {
            (Some(schema), Some(value)) => {
                if let Err(problems) = schema.check(value) {
                    return tool_error(format!(
                        "The tool returned structured content that does not match its \
                         output schema: {problems}"
                    ));
                }
            }
            (Some(_), None) => {
                return tool_error(
                    "The tool declares an output schema but returned no structured content".into(),
                );
            }
            _ => {}
        }
    }
    let mut mapped = if result.is_error {
        CallToolResult::error(content)
    } else {
        CallToolResult::success(content)
    };
    mapped.structured_content = structured;
    mapped
}

/// Bytes a result carries: its content and its structured content.
fn result_size(result: &CallResult) -> u64 {
    let content: usize = result
        .content
        .iter()
        .map(|c| match c {
            Content::Text(text) | Content::ResourceLink(text) => text.len(),
            Content::Image(image) => image.data.len() + image.mime_type.len(),
        })
        .sum();
    (content + result.structured.as_ref().map_or(0, String::len)) as u64
}

fn map_content(content: Content) -> ContentBlock {
    match content {
        Content::Text(text) => ContentBlock::text(text),
        Content::Image(image) => ContentBlock::image(
            base64::engine::general_purpose::STANDARD.encode(&image.data),
            image.mime_type,
        ),
        Content::ResourceLink(uri) => ContentBlock::resource_link(Resource::new(uri.clone(), uri)),
    }
}
