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
    let Some(parts) = request.extensions.get::<http::request::Parts>() else {
        return CallContext::stdio();
    };
    let request_id = parts
        .headers
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .map_or_else(new_request_id, ToOwned::to_owned);
    CallContext {
        request_id,
        // Set by the authentication layer when it verified a token.
        caller: parts
            .extensions
            .get::<Caller>()
            .cloned()
            .unwrap_or(Caller::Anonymous),
        peer: parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| *addr),
        transport: Transport::Http,
    }
}
