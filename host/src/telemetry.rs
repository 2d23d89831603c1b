//! Metrics in Prometheus text format: the recorder (installed once per process), the
//! names and labels of every metric the host exports, and the functions the layers
//! call to record them. Labels hold only names the operator configured (tools,
//! plugins, steps, outcomes), never what a client sent, so their number is bounded.

use metrics::{Counter, Gauge, Histogram, counter, gauge, histogram};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::sync::{OnceLock, RwLock};
use std::time::Duration;

/// Tool calls by tool, plugin and outcome.
pub const CALLS: &str = "mcp_tool_calls_total";
/// Tool call latency, seconds, by tool.
pub const CALL_SECONDS: &str = "mcp_tool_call_duration_seconds";
/// Requests and calls refused, by the step that refused them.
pub const DENIALS: &str = "mcp_denials_total";
/// Calls refused by a rate limit, by budget.
pub const RATE_LIMITED: &str = "mcp_rate_limited_total";
/// Rate-limit checks the shared store (Redis) could not answer, by what the call got
/// (`deny` or `allow`, as `on_store_error` says).
pub const LIMIT_STORE_ERRORS: &str = "mcp_rate_limit_store_errors_total";
/// Plugin instances running a call now, by plugin.
pub const INSTANCES: &str = "mcp_instances_in_use";
/// Audit records waiting for the writer.
pub const AUDIT_QUEUE: &str = "mcp_audit_queue_depth";
/// Time to write (and sync) one batch of audit records, seconds.
pub const AUDIT_WRITE_SECONDS: &str = "mcp_audit_write_duration_seconds";

/// Latency buckets, seconds: from a fast native-speed call to a slow upstream.
const BUCKETS: [f64; 14] = [
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0, 30.0,
];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process's recorder (once; later calls return the same handle).
/// `None` if another recorder was installed first.
pub fn install() -> Option<PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new().set_buckets(&BUCKETS).ok()?;
            match builder.install_recorder() {
                Ok(handle) => {
                    describe();
                    Some(handle)
                }
                Err(error) => {
                    tracing::warn!(%error, "metrics are off: cannot install the recorder");
                    None
                }
            }
        })
        .clone()
}

fn describe() {
    metrics::describe_counter!(CALLS, "Tool calls, by tool, plugin and outcome.");
    metrics::describe_histogram!(
        CALL_SECONDS,
        metrics::Unit::Seconds,
        "Tool call latency, from the pipeline's first step to its record."
    );
    metrics::describe_counter!(DENIALS, "Requests and calls refused, by step.");
    metrics::describe_counter!(RATE_LIMITED, "Calls refused by a rate limit, by budget.");
    metrics::describe_counter!(
        LIMIT_STORE_ERRORS,
        "Rate-limit checks the shared store could not answer, by decision."
    );
    metrics::describe_gauge!(INSTANCES, "Plugin instances running a call, by plugin.");
    metrics::describe_gauge!(AUDIT_QUEUE, "Audit records waiting for the writer.");
    metrics::describe_histogram!(
        AUDIT_WRITE_SECONDS,
        metrics::Unit::Seconds,
        "Time to write (and sync) one batch of audit records."
    );
}

/// A call ended: `tool` is `-` when no plugin offers the name the client sent.
pub fn call_finished(tool: &str, plugin: &str, outcome: &str, duration: Duration) {
    calls(tool, plugin, outcome).increment(1);
    call_seconds(tool).record(duration.as_secs_f64());
}

/// The `mcp_tool_calls_total` counter of one tool, plugin and outcome.
fn calls(tool: &str, plugin: &str, outcome: &str) -> Counter {
    counter!(CALLS, "tool" => tool.to_owned(), "plugin" => plugin.to_owned(), "outcome" => outcome.to_owned())
}

/// The `mcp_tool_call_duration_seconds` histogram of one tool.
fn call_seconds(tool: &str) -> Histogram {
    histogram!(CALL_SECONDS, "tool" => tool.to_owned())
}

/// One plugin's call metrics, with their handles kept after a tool's first call: a
/// call then updates them without building and looking up its label set (which
/// allocated each label and cost more than the rate-limit check).
pub struct PluginMetrics {
    plugin: String,
    /// Each called tool's handles (a plugin has a few tools: a scan beats a hash).
    tools: RwLock<Vec<ToolHandles>>,
}

/// One tool's handles.
struct ToolHandles {
    tool: String,
    seconds: Histogram,
    /// By outcome, as each first happens.
    calls: Vec<(&'static str, Counter)>,
}

impl PluginMetrics {
    /// Handles for `plugin`'s metrics, made as each is first needed (after the
    /// recorder is installed).
    pub fn new(plugin: &str) -> Self {
        Self {
            plugin: plugin.to_owned(),
            tools: RwLock::new(Vec::new()),
        }
    }

    /// [`call_finished`] for one of this plugin's tools.
    pub fn call_finished(&self, tool: &str, outcome: &'static str, duration: Duration) {
        {
            let tools = self.tools.read().unwrap_or_else(|e| e.into_inner());
            if let Some(handles) = tools.iter().find(|h| h.tool == tool)
                && let Some((_, calls)) = handles.calls.iter().find(|(o, _)| *o == outcome)
            {
                calls.increment(1);
                handles.seconds.record(duration.as_secs_f64());
                return;
            }
        }
        self.make_handles(tool, outcome);
        self.call_finished(tool, outcome, duration);
    }

    /// Makes the handles of `tool` and `outcome` the first time they are needed.
    fn make_handles(&self, tool: &str, outcome: &'static str) {
        let mut tools = self.tools.write().unwrap_or_else(|e| e.into_inner());
        let at = match tools.iter().position(|h| h.tool == tool) {
            Some(at) => at,
            None => {
                tools.push(ToolHandles {
                    tool: tool.to_owned(),
                    seconds: call_seconds(tool),
                    calls: Vec::new(),
                });
                tools.len() - 1
            }
        };
        let handles = &mut tools[at];
        if !handles.calls.iter().any(|(o, _)| *o == outcome) {
            handles
                .calls
                .push((outcome, calls(tool, &self.plugin, outcome)));
        }
    }
}

/// A request or call was refused at `step`.
pub fn denied(step: &'static str) {
    counter!(DENIALS, "step" => step).increment(1);
}

/// A call was over its `budget`.
pub fn rate_limited(budget: &'static str) {
    counter!(RATE_LIMITED, "budget" => budget).increment(1);
}

/// The shared rate-limit store failed a check; the call was `decision` (`deny`,
/// `allow`).
pub fn limit_store_error(decision: &'static str) {
    counter!(LIMIT_STORE_ERRORS, "decision" => decision).increment(1);
}

/// The gauge of `plugin`'s calls running now: `+1` as one starts, `-1` as it ends.
pub fn instances(plugin: &str) -> Gauge {
    gauge!(INSTANCES, "plugin" => plugin.to_owned())
}

/// A batch of audit records was written in `took`.
pub fn audit_written(took: Duration) {
    histogram!(AUDIT_WRITE_SECONDS).record(took.as_secs_f64());
}

/// `depth` audit records are waiting.
pub fn audit_queue(depth: u64) {
    gauge!(AUDIT_QUEUE).set(depth as f64);
}
