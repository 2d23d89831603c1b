//! How a call ended, and the one place its record is written: every `tools/call`,
//! refused or run, leaves exactly one `tool call` line in the host log (the audit log
//! and the metrics attach here too).

use super::context::CallContext;
use super::{CallError, ToolOutput};
use crate::audit::{Audit, AuditError, Record};
use crate::registry::LoadedPlugin;
use crate::sandbox::SandboxError;
use crate::sandbox::client::ClientUse;
use crate::sandbox::credentials::CredentialUse;
use crate::sandbox::limits::LimitHit;
use crate::telemetry;
use std::sync::Arc;
use std::time::Duration;

/// How a call ended, as its record names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The tool answered.
    Ok,
    /// The tool answered with an error the model can read (`is-error`, or a
    /// `call-error`).
    ToolError,
    /// One of the caller's budgets for the tool was spent.
    RateLimited,
    /// The shared rate-limit store could not be read, and calls are refused then.
    LimitsUnavailable,
    /// The arguments did not match the tool's input schema.
    InvalidArguments,
    /// No plugin offers the tool.
    UnknownTool,
    /// No valid access token (refused at the HTTP edge).
    Unauthenticated,
    /// The token lacks the scope the tool needs.
    Forbidden,
    /// Every concurrency slot of the plugin stayed taken.
    Busy,
    /// The call ran out of time.
    Timeout,
    /// The call ran out of memory.
    OutOfMemory,
    /// The plugin trapped (or the host task running it panicked).
    Crashed,
    /// The plugin could not be started for this call.
    Unavailable,
    /// The plugin's answer was refused: too large, or not matching its output schema.
    OutputRejected,
    /// The audit log could not be written, so the call was refused (or its answer
    /// withheld).
    AuditUnavailable,
    /// The client cancelled the call (`notifications/cancelled`) before it ended.
    Cancelled,
    /// The plugin needs the client's input: the client retries with it (2026-07-28).
    InputRequired,
}

impl Outcome {
    /// The outcome as records write it.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::ToolError => "tool_error",
            Outcome::RateLimited => "rate_limited",
            Outcome::LimitsUnavailable => "limits_unavailable",
            Outcome::InvalidArguments => "invalid_arguments",
            Outcome::UnknownTool => "unknown_tool",
            Outcome::Unauthenticated => "unauthenticated",
            Outcome::Forbidden => "forbidden",
            Outcome::Busy => "busy",
            Outcome::Timeout => "timeout",
            Outcome::OutOfMemory => "out_of_memory",
            Outcome::Crashed => "crashed",
            Outcome::Unavailable => "unavailable",
            Outcome::OutputRejected => "output_rejected",
            Outcome::AuditUnavailable => "audit_unavailable",
            Outcome::Cancelled => "cancelled",
            Outcome::InputRequired => "input_required",
        }
    }

    /// The pipeline step that refused a call with this outcome (`None`: it ran).
    pub fn refused_at(self) -> Option<&'static str> {
        match self {
            Outcome::UnknownTool => Some("lookup"),
            Outcome::Unauthenticated => Some("authenticate"),
            Outcome::Forbidden => Some("authorize"),
            Outcome::RateLimited | Outcome::LimitsUnavailable => Some("rate_limit"),
            Outcome::InvalidArguments => Some("validate"),
            Outcome::Busy => Some("admit"),
            Outcome::AuditUnavailable => Some("audit"),
            Outcome::Ok
            | Outcome::ToolError
            | Outcome::Timeout
            | Outcome::OutOfMemory
            | Outcome::Crashed
            | Outcome::Unavailable
            | Outcome::OutputRejected
            | Outcome::Cancelled
            | Outcome::InputRequired => None,
        }
    }

    /// The outcome of a call that ended with `result`.
    pub fn of(result: &Result<ToolOutput, CallError>) -> Self {
        match result {
            Ok(output) if output.is_error => Outcome::ToolError,
            Ok(_) => Outcome::Ok,
            Err(error) => match error {
                CallError::UnknownTool(_) => Outcome::UnknownTool,
                CallError::Forbidden { .. } => Outcome::Forbidden,
                CallError::RateLimited { .. } => Outcome::RateLimited,
                CallError::LimitsUnavailable { .. } => Outcome::LimitsUnavailable,
                CallError::InvalidArguments { .. } => Outcome::InvalidArguments,
                CallError::Busy { .. } => Outcome::Busy,
                CallError::Plugin(_) => Outcome::ToolError,
                CallError::Panicked { .. } => Outcome::Crashed,
                CallError::Output(_) => Outcome::OutputRejected,
                CallError::AuditUnavailable(_) => Outcome::AuditUnavailable,
                CallError::Cancelled { .. } => Outcome::Cancelled,
                CallError::InputRequired { .. } => Outcome::InputRequired,
                CallError::Sandbox { error, .. } => match error {
                    SandboxError::Limit(LimitHit::Timeout(_)) => Outcome::Timeout,
                    SandboxError::Limit(LimitHit::Memory(_)) => Outcome::OutOfMemory,
                    SandboxError::Trap(_)
                    | SandboxError::StackOverflow
                    | SandboxError::MemoryFault => Outcome::Crashed,
                    SandboxError::Engine(_)
                    | SandboxError::Compile(_)
                    | SandboxError::Link(_)
                    | SandboxError::Files(_)
                    | SandboxError::Instantiate(_) => Outcome::Unavailable,
                },
            },
        }
    }
}

/// What the steps learned about a call on the way, for its record.
#[derive(Default)]
pub struct Trace {
    /// The plugin that offers the tool, once it is known.
    pub plugin: Option<Arc<LoadedPlugin>>,
    /// The credentials the plugin asked for, once it ran.
    pub credentials: Vec<CredentialUse>,
    /// What the plugin asked of the client (sampling, elicitation), once it ran.
    pub client: Vec<ClientUse>,
    /// The arguments as the audit log records them, once they were read.
    pub arguments: Option<serde_json::Value>,
}

/// Writes the record of one call: its `tool call` line in the host log and its audit
/// record. The only place either is written for a call that reached the pipeline.
pub async fn record(
    audit: &Audit,
    ctx: &CallContext,
    tool: &str,
    trace: &Trace,
    result: &Result<ToolOutput, CallError>,
    duration: Duration,
) -> Result<(), AuditError> {
    let outcome = Outcome::of(result);
    let plugin = trace.plugin.as_deref();
    // The tool name is the client's when no plugin offers it: cut and quoted.
    let tool: String = tool.chars().take(128).collect();
    // Metrics label only names a plugin offers: a client cannot add labels.
    match plugin {
        Some(p) => p.metrics.call_finished(&tool, outcome.as_str(), duration),
        None => telemetry::call_finished("-", "-", outcome.as_str(), duration),
    }
    if let Some(step) = outcome.refused_at() {
        telemetry::denied(step);
    }
    if let Err(CallError::RateLimited { limit, .. }) = result {
        telemetry::rate_limited(limit.budget.as_str());
    }
    let credentials: Vec<String> = trace.credentials.iter().map(ToString::to_string).collect();
    let client: Vec<String> = trace.client.iter().map(ToString::to_string).collect();
    tracing::info!(
        call_id = %ctx.request_id,
        outcome = %outcome.as_str(),
        plugin = %plugin.map_or("-", |p| p.name.as_str()),
        tool = ?tool,
        subject = ?ctx.caller.subject(),
        client_id = ?ctx.caller.client_id().unwrap_or("-"),
        transport = %ctx.transport.as_str(),
        peer = %ctx.peer.map_or_else(|| "-".to_owned(), |p| p.to_string()),
        credentials = ?credentials,
        client = ?client,
        duration_us = duration.as_micros() as u64,
        "tool call"
    );
    if !audit.is_on() {
        return Ok(());
    }
    let mut record = context_record("tool_call", ctx);
    record.tool = Some(tool);
    record.plugin = plugin.map(|p| p.name.to_string());
    record.plugin_sha256 = plugin.map(|p| p.sha256_hex.clone());
    record.outcome = Some(outcome.as_str().to_owned());
    record.reason = result.as_ref().err().map(ToString::to_string);
    record.duration_us = Some(duration.as_micros() as u64);
    record.credentials = Some(credentials).filter(|c| !c.is_empty());
    record.client_requests = Some(client).filter(|c| !c.is_empty());
    record.arguments = trace.arguments.clone();
    audit.write(record).await
}

/// An audit record of `event` for the request `ctx` describes.
fn context_record(event: &str, ctx: &CallContext) -> Record {
    let mut record = Record::now(event);
    record.request_id = Some(ctx.request_id.clone());
    record.subject = Some(ctx.caller.subject().to_owned());
    record.client_id = ctx.caller.client_id().map(ToOwned::to_owned);
    record.peer = ctx.peer.map(|p| p.to_string());
    record.transport = Some(ctx.transport.as_str().to_owned());
    record
}

/// A request refused before it reached the pipeline (no token, a token without the
/// tool's scope, too many requests).
#[derive(Debug, Clone)]
pub struct Refused {
    /// The request.
    pub ctx: CallContext,
    /// Its JSON-RPC method (or HTTP path), if known.
    pub method: Option<String>,
    /// The tool it called, if any.
    pub tool: Option<String>,
    /// The step that refused it.
    pub step: &'static str,
    /// The outcome.
    pub outcome: Outcome,
    /// Why, as the client is told.
    pub reason: String,
}

/// Writes the record of a refused request: a `tool call` line for a `tools/call`, a
/// `request refused` line for anything else, and an audit record.
pub async fn record_refused(audit: &Audit, refused: Refused) {
    let Refused {
        ctx,
        method,
        tool,
        step,
        outcome,
        reason,
    } = refused;
    let ctx = &ctx;
    let reason = reason.as_str();
    telemetry::denied(step);
    let method: String = method.as_deref().unwrap_or("-").chars().take(64).collect();
    let tool: Option<String> = tool.map(|t| t.chars().take(128).collect());
    let peer = ctx.peer.map_or_else(|| "-".to_owned(), |p| p.to_string());
    if method == "tools/call" {
        tracing::info!(
            call_id = %ctx.request_id,
            outcome = %outcome.as_str(),
            plugin = "-",
            tool = ?tool.as_deref().unwrap_or("-"),
            subject = ?ctx.caller.subject(),
            client_id = ?ctx.caller.client_id().unwrap_or("-"),
            transport = %ctx.transport.as_str(),
            %peer,
            step,
            reason,
            "tool call"
        );
    } else {
        tracing::info!(
            call_id = %ctx.request_id,
            outcome = %outcome.as_str(),
            method = ?method,
            subject = ?ctx.caller.subject(),
            client_id = ?ctx.caller.client_id().unwrap_or("-"),
            transport = %ctx.transport.as_str(),
            %peer,
            step,
            reason,
            "request refused"
        );
    }
    if !audit.is_on() {
        return;
    }
    let event = if method == "tools/call" {
        "tool_call"
    } else {
        "request_refused"
    };
    let mut record = context_record(event, ctx);
    record.method = Some(method);
    record.tool = tool;
    record.outcome = Some(outcome.as_str().to_owned());
    record.step = Some(step.to_owned());
    record.reason = Some(reason.to_owned());
    // The request is refused either way; a record that cannot be written is logged.
    if let Err(error) = audit.write(record).await {
        tracing::warn!(%error, "a refused request's audit record was not written");
    }
}
