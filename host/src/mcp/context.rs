//! The [`CallContext`] of an MCP request, from what rmcp hands the handler: over
//! Streamable HTTP its extensions carry the HTTP request's parts (the request id the
//! edge set, the caller the authentication layer verified, the peer address); over
//! stdio there are none, and the caller is the local user.

use crate::pipeline::context::{CallContext, Caller, Transport, new_request_id};
use axum::extract::ConnectInfo;
use rmcp::RoleServer;
use rmcp::service::RequestContext;
use std::net::SocketAddr;

/// The request id header the HTTP edge sets on every request.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// Builds the context of one request.
pub fn call_context(request: &RequestContext<RoleServer>) -> CallContext {
    match request.extensions.get::<http::request::Parts>() {
        Some(parts) => http_context(&parts.headers, &parts.extensions),
        None => CallContext::stdio(),
    }
}

/// The context of an HTTP request, from its headers and extensions.
pub fn http_context(headers: &http::HeaderMap, extensions: &http::Extensions) -> CallContext {
    let request_id = headers
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .map_or_else(new_request_id, ToOwned::to_owned);
    CallContext {
        request_id,
        // Set by the authentication layer when it verified a token.
        caller: extensions
            .get::<Caller>()
            .cloned()
            .unwrap_or(Caller::Anonymous),
        peer: extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| *addr),
        transport: Transport::Http,
        client: None,
        cancelled: tokio_util::sync::CancellationToken::new(),
        needs_input: tokio_util::sync::CancellationToken::new(),
    }
}
