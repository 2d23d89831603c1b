//! The TCP listener: binds, sets TCP_NODELAY on every accepted socket, records each
//! client's address for the requests it sends, and drains in-flight requests on
//! shutdown.
//!
//! Latency trap: rmcp's default (SSE responses) with axum's default listener (Nagle
//! on) holds each response ~40 ms. We answer plain request/response calls with JSON
//! and set TCP_NODELAY on every accepted socket for the SSE cases.

use axum::Router;
use axum::serve::ListenerExt;
use std::net::SocketAddr;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

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
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move { shutdown.cancelled().await })
    .await
}
