//! Per-address limits at the HTTP edge: requests to the authorization server's
//! endpoints, and requests that fail authentication, are counted per client address;
//! past the rate they are answered 429 with `Retry-After`, and recorded.

use super::authn::EdgeAuth;
use super::jsonrpc::Peeked;
use crate::audit::Audit;
use crate::mcp::context::http_context;
use crate::pipeline::outcome::{Outcome, Refused, record_refused};
use crate::ratelimit::{AddressLimiter, whole_seconds};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::net::SocketAddr;
use std::sync::Arc;

/// The layer in front of the authorization server's endpoints.
pub async fn authorization_server(
    State(edge): State<Arc<EdgeAuth>>,
    request: Request,
    next: Next,
) -> Response {
    let limiter = edge.limits.authorization_server.as_ref();
    match over(limiter, &request) {
        Some(too_many) => too_many.answer(edge.pipeline.audit()).await,
        None => next.run(request).await,
    }
}

/// A request over its address's rate.
pub struct TooMany {
    refused: Refused,
    seconds: u64,
}

/// Whether `request`'s address is over `limiter`'s rate.
pub fn over(limiter: Option<&AddressLimiter>, request: &Request) -> Option<TooMany> {
    let limiter = limiter?;
    let ConnectInfo(peer) = request.extensions().get::<ConnectInfo<SocketAddr>>()?;
    let wait = limiter.check(peer.ip()).err()?;
    let seconds = whole_seconds(wait);
    // On `/mcp` the JSON-RPC method and tool are known; elsewhere the path says it.
    let peeked = request.extensions().get::<Peeked>();
    let refused = Refused {
        ctx: http_context(request.headers(), request.extensions()),
        method: Some(
            peeked
                .and_then(|p| p.method.clone())
                .unwrap_or_else(|| request.uri().path().to_owned()),
        ),
        tool: peeked.and_then(|p| p.tool.clone()),
        step: "rate_limit",
        outcome: Outcome::RateLimited,
        reason: format!("too many requests from this address; retry after {seconds} s"),
    };
    Some(TooMany { refused, seconds })
}

impl TooMany {
    /// Records the refusal and answers 429 with `Retry-After`.
    pub async fn answer(self, audit: &Audit) -> Response {
        let body = format!("{}\n", self.refused.reason);
        record_refused(audit, self.refused).await;
        let mut response = (StatusCode::TOO_MANY_REQUESTS, body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::RETRY_AFTER, HeaderValue::from(self.seconds));
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }
}
