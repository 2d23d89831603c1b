//! How a call ended, and the one place its record is written: every `tools/call`,
//! refused or run, leaves exactly one `tool call` line in the host log (the audit log
//! and the metrics attach here too).

use super::context::CallContext;
use super::{CallError, ToolOutput};
use crate::registry::LoadedPlugin;
use crate::sandbox::SandboxError;
use crate::sandbox::credentials::CredentialUse;
use crate::sandbox::limits::LimitHit;
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
}

impl Outcome {
    /// The outcome as records write it.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::ToolError => "tool_error",
            Outcome::RateLimited => "rate_limited",
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
                CallError::InvalidArguments { .. } => Outcome::InvalidArguments,
                CallError::Busy { .. } => Outcome::Busy,
                CallError::Plugin(_) => Outcome::ToolError,
                CallError::Panicked { .. } => Outcome::Crashed,
                CallError::Output(_) => Outcome::OutputRejected,
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
}

/// Writes the record of one call. The only place a `tool call` line is written.
pub fn record(
    ctx: &CallContext,
    tool: &str,
    trace: &Trace,
    result: &Result<ToolOutput, CallError>,
    duration: Duration,
) {
    let outcome = Outcome::of(result);
    let plugin = trace.plugin.as_deref();
    // The tool name is the client's when no plugin offers it: cut and quoted.
    let tool: String = tool.chars().take(128).collect();
    tracing::info!(
        call_id = %ctx.request_id,
        outcome = %outcome.as_str(),
        plugin = %plugin.map_or("-", |p| p.name.as_str()),
        tool = ?tool,
        subject = ?ctx.caller.subject(),
        client_id = ?ctx.caller.client_id().unwrap_or("-"),
        transport = %ctx.transport.as_str(),
        peer = %ctx.peer.map_or_else(|| "-".to_owned(), |p| p.to_string()),
        credentials = ?trace
            .credentials
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        duration_us = duration.as_micros() as u64,
        "tool call"
    );
}

/// Writes the record of a request refused at the HTTP edge, before the pipeline: a
/// `tool call` record for a `tools/call` (its tool named), a `request refused` record
/// for anything else. `step` is what refused it (`authenticate`, `authorize`).
pub fn record_refused(
    ctx: &CallContext,
    method: Option<&str>,
    tool: Option<&str>,
    step: &str,
    outcome: Outcome,
    reason: &str,
) {
    let method: String = method.unwrap_or("-").chars().take(64).collect();
    let tool: String = tool.unwrap_or("-").chars().take(128).collect();
    let peer = ctx.peer.map_or_else(|| "-".to_owned(), |p| p.to_string());
    if method == "tools/call" {
        tracing::info!(
            call_id = %ctx.request_id,
            outcome = %outcome.as_str(),
            plugin = "-",
            tool = ?tool,
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
}
