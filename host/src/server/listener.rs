//! The TCP listener: binds, sets TCP_NODELAY on every accepted socket, speaks TLS when
//! configured ([`super::tls`]), records each client's address for the requests it
//! sends, and drains in-flight requests on shutdown.
//!
//! Latency trap: rmcp's default (SSE responses) with axum's default listener (Nagle
//! on) holds each response ~40 ms. We answer plain request/response calls with JSON
//! and set TCP_NODELAY on every accepted socket for the SSE cases.

use super::tls::{Tls, TlsListener};
use axum::Router;
use axum::serve::ListenerExt;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Binds `addr`; returns the listener and the address actually bound (port 0 picks one).
pub async fn bind(addr: SocketAddr) -> std::io::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    Ok((listener, local))
}

/// Serves `app` (over TLS when `tls` is given) until `shutdown` is cancelled, then lets
/// in-flight requests finish.
pub async fn serve(
    listener: TcpListener,
    tls: Option<Tls>,
    app: Router,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let app = app.into_make_service_with_connect_info::<SocketAddr>();
    let stop = shutdown.clone();
    let stopped = async move { stop.cancelled().await };
    match tls {
        Some(tls) => {
            // The accept task sets TCP_NODELAY before the handshake; `tap_io` is
            // what lets axum hand the peer's address to the requests.
            let listener = TlsListener::new(listener, tls, shutdown)?.tap_io(|_| {});
            axum::serve(listener, app)
                .with_graceful_shutdown(stopped)
                .await
        }
        None => {
            let listener = listener.tap_io(|tcp| {
                if let Err(e) = tcp.set_nodelay(true) {
                    tracing::warn!(error = %e, "could not set TCP_NODELAY");
                }
            });
            axum::serve(listener, app)
                .with_graceful_shutdown(stopped)
                .await
        }
    }
}

/// After a failed `accept`: a connection that died before we took it is nothing; any
/// other error (out of file descriptors, say) is logged and accepting pauses a moment
/// rather than spinning.
pub async fn pause_after_accept_error(error: std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        error.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        return;
    }
    tracing::error!(%error, "accepting a connection failed");
    tokio::time::sleep(Duration::from_secs(1)).await;
}
