//! One `tools/call`, top to bottom. Every call goes through [`Pipeline::call`]: the
//! steps of DESIGN.md in order, each returning its value or a typed [`CallError`]
//! naming what refused the call, and one exit that writes the call's record
//! ([`outcome::record`]) however the call ended.
//!
//! The pipeline knows nothing of MCP's wire types: the MCP layer turns its answer
//! ([`ToolOutput`] or [`CallError`]) into a result or a protocol error.

pub mod admission;
pub mod context;
pub mod cooldown;
pub mod outcome;
pub mod output;
#[cfg(test)]
pub mod testing;

use crate::audit::{self, Audit};
use crate::domain::Scope;
use crate::ratelimit::{RateLimited, Refusal, ToolLimiter};
use crate::registry::{RegisteredTool, Registry};
use crate::sandbox::bindings::exports::mcp::tools::tools::CallError as PluginError;
use crate::sandbox::bindings::mcp::tools::types::Content;
use crate::sandbox::state::CallUses;
use crate::sandbox::{Sandbox, SandboxError, Spent};
use admission::{Admission, Busy};
use arc_swap::ArcSwap;
use context::CallContext;
use outcome::Trace;
use output::OutputError;
use serde_json::Value;
use std::sync::Arc;
use std::time::Instant;
use thiserror::Error;
use tracing::Instrument;

/// A `tools/call` request as the pipeline sees it.
#[derive(Debug)]
pub struct ToolCall {
    /// The tool's name, as the client sent it.
    pub tool: String,
    /// The arguments, a JSON object (`{}` when the client sent none). Every step
    /// borrows them; none copies them.
    pub arguments: Value,
}

/// A tool's checked answer: what reaches the client.
#[derive(Debug, Clone)]
pub struct ToolOutput {
    /// Text, images, links.
    pub content: Vec<Content>,
    /// Structured content (checked against the output schema, if the tool has one).
    pub structured: Option<Value>,
    /// An error the model should read (the tool ran; the answer is a failure).
    pub is_error: bool,
}

/// Why a call produced no [`ToolOutput`]; each names the step that stopped it. The
/// messages are written for the model and the client: no host internals.
#[derive(Debug, Error)]
pub enum CallError {
    /// No plugin offers the tool (a protocol error, not a tool result).
    #[error("unknown tool `{0}`; tools/list shows the tools this server offers")]
    UnknownTool(String),
    /// The caller's token lacks the scope the tool needs. Over HTTP the edge answers
    /// this with a 403 before the pipeline; this is the pipeline's own check.
    #[error("The tool `{tool}` needs the scope `{scope}`, which the caller's token lacks")]
    Forbidden {
        /// The tool.
        tool: String,
        /// The scope it needs.
        scope: Scope,
    },
    /// One of the caller's budgets for the tool is spent.
    #[error(
        "Rate limited: {}. Try again in {} s.",
        spent(.tool, .limit), .limit.retry_after_seconds()
    )]
    RateLimited {
        /// The tool.
        tool: String,
        /// Which budget, its rate and when it allows a call again.
        limit: RateLimited,
    },
    /// The shared rate-limit store cannot be read, and the operator chose to refuse
    /// calls then (`on_store_error = "deny"`).
    #[error(
        "The server cannot check the rate limits for `{tool}` right now, so it does not run \
         it. Try again shortly."
    )]
    LimitsUnavailable {
        /// The tool.
        tool: String,
    },
    /// The arguments do not match the tool's input schema.
    #[error("Invalid arguments for `{tool}`: {problems}")]
    InvalidArguments {
        /// The tool.
        tool: String,
        /// Which fields are wrong, and why.
        problems: String,
    },
    /// Every concurrency slot of the plugin stayed taken.
    #[error(
        "The tool `{tool}` is busy: its plugin runs at most {limit} calls at once. Try again \
         shortly."
    )]
    Busy {
        /// The tool.
        tool: String,
        /// The plugin's `max_concurrency`.
        limit: u32,
    },
    /// The plugin could not complete the call (a limit, a trap).
    #[error("The tool `{tool}` failed: {}", .error.short())]
    Sandbox {
        /// The tool.
        tool: String,
        /// What happened (the full error is in the host log only).
        error: SandboxError,
    },
    /// The host task running the call panicked.
    #[error("The tool `{tool}` failed: the plugin crashed")]
    Panicked {
        /// The tool.
        tool: String,
    },
    /// The plugin returned a `call-error`.
    #[error("{}", plugin_error_message(.0))]
    Plugin(PluginError),
    /// The plugin's answer was refused.
    #[error(transparent)]
    Output(#[from] OutputError),
    /// The call was cancelled (the client sent `notifications/cancelled`, or its
    /// connection or session ended first); its plugin was stopped. (No one waits for
    /// this answer; it is for the record.)
    #[error("The call to `{tool}` was cancelled by the client")]
    Cancelled {
        /// The tool.
        tool: String,
    },
    /// The plugin needs an answer from the client that only a retry of the request
    /// brings (2026-07-28); the MCP layer answers with an input-required result.
    #[error("The tool `{tool}` needs input from the client")]
    InputRequired {
        /// The tool.
        tool: String,
    },
    /// The audit log cannot be written: no call runs (or is answered) unaudited.
    #[error("The server cannot record tool calls right now, so it runs none. Try again later.")]
    AuditUnavailable(String),
}

/// Which budget a rate-limited call spent, as the model reads it.
fn spent(tool: &str, limit: &RateLimited) -> String {
    let (count, per) = (limit.rate.count, limit.rate.per());
    match limit.budget {
        crate::ratelimit::Budget::User => {
            format!("you may make {count} tool calls per {per}, counting every tool")
        }
        crate::ratelimit::Budget::UserTool => {
            format!("you may call `{tool}` {count} times per {per}")
        }
        crate::ratelimit::Budget::Tool => {
            format!("`{tool}` may be called {count} times per {per} by all callers together")
        }
    }
}

/// A plugin's `call-error` as the model reads it.
fn plugin_error_message(error: &PluginError) -> String {
    match error {
        PluginError::InvalidArguments(m) => format!("Invalid arguments: {m}"),
        PluginError::UnknownTool(m) => format!("The plugin does not know the tool `{m}`"),
        PluginError::Upstream(m) => format!("Upstream service error: {m}"),
        PluginError::Internal(m) => format!("The tool failed: {m}"),
    }
}

/// Runs tool calls against the loaded plugins.
pub struct Pipeline {
    /// The plugins being served; swapped whole when they are reloaded.
    registry: ArcSwap<Registry>,
    /// A counter bumped whenever a reload changes the tools `tools/list` shows.
    tool_list: tokio::sync::watch::Sender<u64>,
    limiter: Arc<ToolLimiter>,
    admission: Admission,
    sandbox: Arc<Sandbox>,
    audit: Arc<Audit>,
}

impl Pipeline {
    /// A pipeline serving `registry`'s tools in `sandbox`, within `limiter`'s rates,
    /// recording to `audit`.
    pub fn new(
        registry: Registry,
        sandbox: Arc<Sandbox>,
        limiter: Arc<ToolLimiter>,
        audit: Arc<Audit>,
    ) -> Self {
        Self {
            registry: ArcSwap::from_pointee(registry),
            tool_list: tokio::sync::watch::Sender::new(0),
            limiter,
            admission: Admission::default(),
            sandbox,
            audit,
        }
    }

    /// The audit log the pipeline records to (the HTTP edge records its refusals there).
    pub fn audit(&self) -> &Arc<Audit> {
        &self.audit
    }

    /// The plugins being served now.
    pub fn registry(&self) -> Arc<Registry> {
        self.registry.load_full()
    }

    /// Serves `registry` from the next call on; calls in flight finish on the plugins
    /// they started with. Returns whether the tools `tools/list` shows changed (the
    /// watchers of [`Pipeline::tool_list_changes`] are then told).
    pub fn replace_registry(&self, registry: Registry) -> bool {
        let listed = |registry: &Registry| {
            registry
                .tools()
                .map(|tool| (tool.descriptor.clone(), tool.scope.clone()))
                .collect::<Vec<_>>()
        };
        let changed = listed(&self.registry.load()) != listed(&registry);
        self.registry.store(Arc::new(registry));
        if changed {
            self.tool_list.send_modify(|generation| *generation += 1);
        }
        changed
    }

    /// Sees a new value each time the tool list changes.
    pub fn tool_list_changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.tool_list.subscribe()
    }

    /// The tools `ctx`'s caller may call, in load order.
    pub fn list_tools(&self, ctx: &CallContext) -> Vec<rmcp::model::Tool> {
        self.registry
            .load()
            .tools()
            .filter(|tool| ctx.caller.may(tool.scope.as_ref()))
            .map(|tool| tool.descriptor.clone())
            .collect()
    }

    /// The scope a token needs to call tool `name` (`None`: no such tool, or it needs
    /// none).
    pub fn required_scope(&self, name: &str) -> Option<Scope> {
        self.registry
            .load()
            .tool(name)
            .and_then(|t| t.scope.clone())
    }

    /// Every scope some tool needs.
    pub fn scopes(&self) -> Vec<Scope> {
        self.registry.load().scopes()
    }

    /// The descriptor of tool `name`, for protocol checks made on no caller's behalf
    /// (rmcp checks `Mcp-Param-*` headers against the input schema with it).
    pub fn tool_descriptor(&self, name: &str) -> Option<rmcp::model::Tool> {
        self.registry
            .load()
            .tool(name)
            .map(|tool| tool.descriptor.clone())
    }

    /// Whether the tool `name` marks arguments that clients mirror in `Mcp-Param-*`
    /// headers (`None`: no such tool).
    pub fn mirrors_params_in_headers(&self, name: &str) -> Option<bool> {
        self.registry
            .load()
            .tool(name)
            .map(|tool| tool.mirrors_params_in_headers)
    }

    /// Whether the pipeline can run calls: the audit log is writable and the shared
    /// rate-limit store (if any) answers. The error says which is not.
    pub async fn ready(&self) -> Result<(), String> {
        if !self.audit.healthy() {
            return Err("the audit log cannot be written".into());
        }
        self.limiter.ready().await
    }

    /// One tool call, step by step, and its record. Tool failures come back as
    /// [`CallError`]s the MCP layer turns into `isError` results the model can read;
    /// only a tool that does not exist is a protocol error.
    pub async fn call(&self, ctx: &CallContext, call: &ToolCall) -> Result<ToolOutput, CallError> {
        let started = Instant::now();
        let mut trace = Trace::default();
        let result = self.steps(ctx, call, &mut trace).await;
        let recorded = outcome::record(
            &self.audit,
            ctx,
            &call.tool,
            &trace,
            &result,
            started.elapsed(),
        )
        .await;
        match recorded {
            Ok(()) => result,
            // The call ran but its record is not on disk: its answer is withheld.
            Err(error) => {
                tracing::error!(call_id = %ctx.request_id, %error, "tool call not recorded; answer withheld");
                Err(CallError::AuditUnavailable(error.to_string()))
            }
        }
    }

    async fn steps(
        &self,
        ctx: &CallContext,
        call: &ToolCall,
        trace: &mut Trace,
    ) -> Result<ToolOutput, CallError> {
        // 0. audit: no call runs while its record cannot be written.
        if !self.audit.healthy() {
            return Err(CallError::AuditUnavailable(
                "the audit log cannot be written".into(),
            ));
        }
        let arguments = &call.arguments;
        if self.audit.is_on() {
            trace.arguments = audit::record::arguments(self.audit.record_arguments(), arguments);
        }
        // 1. authenticate: done at the edge; `ctx.caller` is who is calling.
        let tool = self
            .registry
            .load()
            .tool(&call.tool)
            .cloned()
            .ok_or_else(|| CallError::UnknownTool(call.tool.chars().take(128).collect()))?;
        trace.plugin = Some(tool.plugin.clone());
        // 2. authorize: the caller's token holds the scope the tool needs.
        if !ctx.caller.may(tool.scope.as_ref())
            && let Some(scope) = tool.scope.clone()
        {
            return Err(CallError::Forbidden {
                tool: call.tool.clone(),
                scope,
            });
        }
        // 3. rate limit: the caller's budgets for this tool (per user x tool, per
        //    user, per tool); the plugin is not invoked over any of them.
        self.limiter
            .check(ctx.caller.subject(), &tool.plugin.name, &call.tool)
            .await
            .map_err(|refusal| match refusal {
                Refusal::Limited(limit) => CallError::RateLimited {
                    tool: call.tool.clone(),
                    limit,
                },
                Refusal::StoreDown => CallError::LimitsUnavailable {
                    tool: call.tool.clone(),
                },
            })?;
        // 4. validate the arguments against the tool's JSON Schema.
        tool.input
            .check(arguments)
            .map_err(|problems| CallError::InvalidArguments {
                tool: call.tool.clone(),
                problems,
            })?;
        // 5. admit: the plugin's cool-down and a concurrency slot.
        let plugin = &tool.plugin;
        let limit = plugin.prepared.grants().limits.max_concurrency;
        let admitted = self
            .admission
            .admit(ctx.caller.subject(), &plugin.name, limit)
            .await
            .map_err(|Busy { limit }| {
                tracing::warn!(call_id = %ctx.request_id, plugin = %plugin.name, tool = call.tool, "busy: concurrency limit reached");
                CallError::Busy {
                    tool: call.tool.clone(),
                    limit,
                }
            })?;
        // 6. invoke in a fresh, capability-scoped instance, within the plugin's limits.
        let answer = self
            .invoke(ctx, &tool, &call.tool, arguments, admitted, trace)
            .await?;
        // 7. check the answer against the plugin's output cap and the output schema.
        Ok(output::check(&tool, answer)?)
    }

    /// Runs the plugin on the caller's task (no hand-off to another thread): a panic
    /// anywhere in it ends that call only, and if the caller goes away the instance is
    /// dropped, which stops the plugin and frees its slot.
    async fn invoke(
        &self,
        ctx: &CallContext,
        tool: &Arc<RegisteredTool>,
        name: &str,
        arguments: &Value,
        admitted: admission::Admitted,
        trace: &mut Trace,
    ) -> Result<crate::sandbox::bindings::exports::mcp::tools::tools::CallResult, CallError> {
        use futures::FutureExt as _;
        let arguments = arguments.to_string();
        // Everything the sandbox logs for this call (refusals, what the plugin printed)
        // carries its call id.
        let span = context::call_span(&ctx.request_id);
        // What the call asks for is recorded however it ends (even cancelled midway).
        let uses = CallUses::shared();
        let task = std::panic::AssertUnwindSafe(
            self.sandbox
                .call_tool(
                    &tool.plugin.prepared,
                    name,
                    &arguments,
                    ctx.client.clone(),
                    uses.clone(),
                )
                .instrument(span.clone()),
        )
        .catch_unwind();
        let record_uses = |trace: &mut Trace| {
            let mut uses = uses.lock().unwrap_or_else(|e| e.into_inner());
            trace.credentials = std::mem::take(&mut uses.credentials);
            trace.client = std::mem::take(&mut uses.client);
        };
        let plugin = &tool.plugin.name;
        // A cancel drops the task: the instance goes with it, and its slot is freed
        // (a cancel is not the plugin's failure: no cool-down).
        let task = tokio::select! {
            finished = task => finished,
            () = ctx.needs_input.cancelled() => {
                drop(admitted.finish(false));
                record_uses(trace);
                return Err(CallError::InputRequired { tool: name.to_owned() });
            }
            () = ctx.cancelled.cancelled() => {
                drop(admitted.finish(false));
                record_uses(trace);
                tracing::info!(call_id = %ctx.request_id, %plugin, tool = name, "tool call cancelled: the client cancelled it or went away");
                return Err(CallError::Cancelled { tool: name.to_owned() });
            }
        };
        record_uses(trace);
        // A panic counts as a crash (the unfinished admission's drop records it).
        let (outcome, spent) = task.map_err(|panic| {
            let error = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            tracing::error!(call_id = %ctx.request_id, %plugin, tool = name, %error, "tool call panicked in the host");
            CallError::Panicked {
                tool: name.to_owned(),
            }
        })?;
        free_later(spent, admitted.finish(outcome.is_err()), span);
        match outcome {
            Ok(Ok(result)) => Ok(result),
            Ok(Err(error)) => Err(CallError::Plugin(error)),
            Err(error) => {
                tracing::warn!(call_id = %ctx.request_id, %plugin, tool = name, %error, "tool call failed");
                Err(CallError::Sandbox {
                    tool: name.to_owned(),
                    error,
                })
            }
        }
    }
}

/// Frees a returned call's instance, then gives its slot back, on a task of its own:
/// resetting the instance's memory takes several microseconds the client need not
/// wait for, so the answer goes first. (The slot waits for the instance, so the pool
/// never holds more instances than there are slots.)
fn free_later(spent: Option<Spent>, slot: admission::Slot, span: tracing::Span) {
    match spent {
        None => drop(slot),
        Some(spent) => {
            tokio::spawn(async move {
                span.in_scope(|| drop(spent));
                drop(slot);
            });
        }
    }
}
