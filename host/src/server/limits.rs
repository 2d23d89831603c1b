//! Per-address limits at the HTTP edge: requests to the authorization server's
//! endpoints, and requests that fail authentication, are counted per client address;
//! past the rate they are answered 429 with `Retry-After`, and recorded.

use super::authn::EdgeAuth;
use super::jsonrpc::Peeked;
use crate::audit::Audit;
use crate::mcp::context::http_context;
use crate::pipeline::outcome::{Outcome, Refused, record_refused};
use crate::ratelimit::{AddressLimiter, AddressRefusal, whole_seconds};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// The layer in front of the authorization server's endpoints.
pub async fn authorization_server(
    State(edge): State<Arc<EdgeAuth>>,
    request: Request,
    next: Next,
) -> Response {
    let limiter = edge.limits.authorization_server.as_ref();
    match Ask::of(&request).over(limiter).await {
        Some(too_many) => too_many.answer(edge.pipeline.audit()).await,
        None => next.run(request).await,
    }
}

/// A request over its address's rate (or whose rate could not be checked).
pub struct TooMany {
    refused: Refused,
    seconds: u64,
    status: StatusCode,
}

/// What a per-address check needs of a request, taken before the check awaits the
/// limiter (a request's body cannot be shared across threads, so the request is not
/// held while waiting).
pub struct Ask {
    /// `None`: the connection's address is unknown (no check applies).
    address: Option<IpAddr>,
    ctx: crate::pipeline::context::CallContext,
    method: String,
    tool: Option<String>,
}

impl Ask {
    /// The request's address and what its record names.
    pub fn of(request: &Request) -> Self {
        let address = request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(peer)| peer.ip());
        // On `/mcp` the JSON-RPC method and tool are known; elsewhere the path says it.
        let peeked = request.extensions().get::<Peeked>();
        Self {
            address,
            ctx: http_context(request.headers(), request.extensions()),
            method: peeked
                .and_then(|p| p.method.clone())
                .unwrap_or_else(|| request.uri().path().to_owned()),
            tool: peeked.and_then(|p| p.tool.clone()),
        }
    }

    /// Whether the address is over `limiter`'s rate: 429, or 503 when the shared
    /// store cannot say and the operator chose to deny then.
    pub async fn over(self, limiter: Option<&AddressLimiter>) -> Option<TooMany> {
        let address = self.address?;
        let (seconds, status, reason, outcome) = match limiter?.check(address).await.err()? {
            AddressRefusal::Over(wait) => {
                let seconds = whole_seconds(wait);
                (
                    seconds,
                    StatusCode::TOO_MANY_REQUESTS,
                    format!("too many requests from this address; retry after {seconds} s"),
                    Outcome::RateLimited,
                )
            }
            AddressRefusal::StoreDown => (
                1,
                StatusCode::SERVICE_UNAVAILABLE,
                "the server cannot check its rate limits right now; retry shortly".to_owned(),
                Outcome::LimitsUnavailable,
            ),
        };
        let refused = Refused {
            ctx: self.ctx,
            method: Some(self.method),
            tool: self.tool,
            step: "rate_limit",
            outcome,
            reason,
        };
        Some(TooMany {
            refused,
            seconds,
            status,
        })
    }
}

impl TooMany {
    /// Records the refusal and answers 429 (or 503) with `Retry-After`.
    pub async fn answer(self, audit: &Audit) -> Response {
        let body = format!("{}\n", self.refused.reason);
        record_refused(audit, self.refused).await;
        let mut response = (self.status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::RETRY_AFTER, HeaderValue::from(self.seconds));
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }
}
