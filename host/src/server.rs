//! The HTTP server: the axum router (`/mcp`, `/healthz`), the transport settings of
//! the MCP service, and the listener.
//!
//! Latency trap: rmcp's default (SSE responses) with axum's default listener (Nagle
//! on) holds each response ~40 ms. We answer plain request/response calls with JSON
//! and set TCP_NODELAY on every accepted socket for the SSE cases.

use crate::config::ServerConfig;
use crate::guard;
use crate::mcp::McpHandler;
use crate::pipeline::Pipeline;
use axum::Router;
use axum::routing::get;
use axum::serve::ListenerExt;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Largest JSON-RPC request body: tool arguments are small; this bounds memory per
/// request long before a schema sees it.
pub const MAX_REQUEST_BODY_BYTES: usize = 4 * 1024 * 1024;

/// The router: `/mcp` (MCP Streamable HTTP) and `/healthz`.
pub fn app(pipeline: Arc<Pipeline>, config: &ServerConfig, shutdown: CancellationToken) -> Router {
    let mut allowed_hosts = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
        "[::1]".to_owned(),
    ];
    if let Some(host) = config.public_url.as_ref().and_then(|u| u.host_str()) {
        allowed_hosts.push(host.to_owned());
    }
    let transport = StreamableHttpServerConfig::default()
        .with_json_response(true)
        .with_allowed_hosts(allowed_hosts)
        .with_allowed_origins(config.allowed_origins.iter().cloned())
        .with_max_request_body_bytes(MAX_REQUEST_BODY_BYTES)
        .with_cancellation_token(shutdown);
    let handler = McpHandler::new(pipeline);
    let mcp = StreamableHttpService::new(
        move || Ok(handler.clone()),
        Arc::new(LocalSessionManager::default()),
        transport,
    );
    let mcp = Router::new()
        .fallback_service(mcp)
        .layer(axum::middleware::from_fn(guard::check_tool_call_shape));
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .nest("/mcp", mcp)
}

/// Binds `addr`; returns the listener and the address actually bound (port 0 picks one).
pub async fn bind(addr: SocketAddr) -> std::io::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    Ok((listener, local))
}

/// Serves `app` until `shutdown` is cancelled, then lets in-flight requests finish.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::warn!(error = %e, "could not set TCP_NODELAY");
        }
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}
