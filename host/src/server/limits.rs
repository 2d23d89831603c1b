//! Per-address limits at the HTTP edge: requests to the authorization server's
//! endpoints, and requests that fail authentication, are counted per client address;
//! past the rate they are answered 429 with `Retry-After`, and recorded.

use super::jsonrpc::Peeked;
use crate::mcp::context::http_context;
use crate::pipeline::outcome::{Outcome, record_refused};
use crate::ratelimit::{AddressLimiter, AddressLimits, whole_seconds};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::net::SocketAddr;
use std::sync::Arc;

/// The layer in front of the authorization server's endpoints.
pub async fn authorization_server(
    State(limits): State<Arc<AddressLimits>>,
    request: Request,
    next: Next,
) -> Response {
    match over(limits.authorization_server.as_ref(), &request) {
        Some(refused) => refused,
        None => next.run(request).await,
    }
}

/// Whether `request`'s address is over `limiter`'s rate: if so, the recorded 429.
pub fn over(limiter: Option<&AddressLimiter>, request: &Request) -> Option<Response> {
    let limiter = limiter?;
    let ConnectInfo(peer) = request.extensions().get::<ConnectInfo<SocketAddr>>()?;
    let wait = limiter.check(peer.ip()).err()?;
    let seconds = whole_seconds(wait);
    let ctx = http_context(request.headers(), request.extensions());
    let reason = format!("too many requests from this address; retry after {seconds} s");
    // On `/mcp` the JSON-RPC method and tool are known; elsewhere the path says it.
    let peeked = request.extensions().get::<Peeked>();
    record_refused(
        &ctx,
        peeked
            .and_then(|p| p.method.as_deref())
            .or(Some(request.uri().path())),
        peeked.and_then(|p| p.tool.as_deref()),
        "rate_limit",
        Outcome::RateLimited,
        &reason,
    );
    let mut response = (StatusCode::TOO_MANY_REQUESTS, format!("{reason}\n")).into_response();
    let headers = response.headers_mut();
    headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Some(response)
}
