//! MCP over standard input and output. rmcp runs the session: the handshake, every
//! method, the host's requests to the client, cancellations. The common request, a
//! `tools/call`, is taken by [`direct`] as it arrives ([`input`] routes each line) and
//! answered without passing through rmcp's serve loop. Both write to stdout through
//! [`output`], a whole line at a time. [`pipes`] provides the byte streams.

pub mod direct;
pub mod input;
pub mod output;
pub mod pipes;
#[cfg(test)]
mod tests;

use super::McpHandler;
use direct::Direct;
use pipes::{Input, Output};
use rmcp::RoleServer;
use rmcp::service::{RunningService, ServerInitializeError, ServiceExt};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::DuplexStream;
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;

/// Bytes in flight between the line router and rmcp.
const TO_RMCP: usize = 256 * 1024;
/// How long calls still running when stdin closes may take to answer (rmcp's own
/// grace for its requests), and when the host is asked to stop.
const GRACE_AT_END: Duration = Duration::from_secs(5);
const GRACE_AT_STOP: Duration = Duration::from_secs(2);
/// How long cancelled calls may take to end, and stdout to take the last lines.
const LAST_WAIT: Duration = Duration::from_secs(5);

/// A session over stdio whose handshake is done.
pub struct Session {
    service: RunningService<RoleServer, McpHandler>,
    direct: Arc<Direct>,
    router: JoinHandle<(JoinSet<()>, DuplexStream)>,
    stop_routing: CancellationToken,
    writer: JoinHandle<()>,
}

impl Session {
    /// Serves `handler` over stdin and stdout (as pipes when they are).
    pub async fn start(handler: McpHandler) -> Result<Self, ServerInitializeError> {
        let (input, output) = pipes::streams();
        Self::over(handler, input, output).await
    }

    /// Serves `handler` over `input` and `output`, once the client's handshake is done.
    pub async fn over(
        handler: McpHandler,
        input: Input,
        output: Output,
    ) -> Result<Self, ServerInitializeError> {
        let (lines, writer) = output::start(output);
        let (to_rmcp, rmcp_input) = tokio::io::duplex(TO_RMCP);
        let direct = Arc::new(Direct::new(handler.clone(), lines.clone()));
        let stop_routing = CancellationToken::new();
        let router = tokio::spawn(input::route(
            input,
            to_rmcp,
            direct.clone(),
            stop_routing.clone(),
        ));
        let service = match handler
            .serve((rmcp_input, output::RmcpOutput::new(lines)))
            .await
        {
            Ok(service) => service,
            Err(error) => {
                stop_routing.cancel();
                router.abort();
                return Err(error);
            }
        };
        direct.open(service.peer().clone());
        Ok(Self {
            service,
            direct,
            router,
            stop_routing,
            writer,
        })
    }

    /// Serves until stdin closes or `shutdown` is cancelled. Calls still running are
    /// given a grace period to answer, then cancelled; the answers written, it returns.
    pub async fn run(self, shutdown: CancellationToken) {
        let Self {
            service,
            direct,
            mut router,
            stop_routing,
            writer,
        } = self;
        let rmcp_stop = service.cancellation_token();
        let (calls, grace) = tokio::select! {
            calls = &mut router => (calls, GRACE_AT_END),
            () = shutdown.cancelled() => {
                stop_routing.cancel();
                direct.cancel_all();
                rmcp_stop.cancel();
                ((&mut router).await, GRACE_AT_STOP)
            }
        };
        let (mut calls, rmcp_input) = match calls {
            Ok((calls, rmcp_input)) => (calls, Some(rmcp_input)),
            Err(error) => {
                tracing::error!(%error, "the stdin reader failed");
                (JoinSet::new(), None)
            }
        };
        if tokio::time::timeout(grace, drain(&mut calls))
            .await
            .is_err()
        {
            direct.cancel_all();
            if tokio::time::timeout(LAST_WAIT, drain(&mut calls))
                .await
                .is_err()
            {
                tracing::warn!(calls = calls.len(), "calls did not end when cancelled");
                calls.abort_all();
            }
        }
        // Now rmcp sees the end of its input (unless it was cancelled): it answers what
        // it has, then drops its writer.
        drop(rmcp_input);
        if let Err(error) = service.waiting().await {
            tracing::error!(%error, "the MCP session ended abnormally");
        }
        drop(direct);
        if tokio::time::timeout(LAST_WAIT, writer).await.is_err() {
            tracing::warn!("stdout did not take the last messages");
        }
    }
}

/// Waits for every call in `calls` to end.
async fn drain(calls: &mut JoinSet<()>) {
    while calls.join_next().await.is_some() {}
}
