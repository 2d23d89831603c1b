//! Authentication and authorization at the HTTP edge, as tower layers around rmcp: who
//! is calling (a verified bearer token, else 401 with a challenge saying where to get
//! one) and whether their token may make this `tools/call` (else 403 naming the scope
//! it needs). Every refusal leaves a record. Also the protected resource metadata
//! document clients discover the authorization server from.

use super::jsonrpc::Peeked;
use super::limits::Ask;
use crate::auth::{Auth, Refusal};
use crate::mcp::context::http_context;
use crate::pipeline::Pipeline;
use crate::pipeline::context::Caller;
use crate::pipeline::outcome::{Outcome, Refused, record_refused};
use crate::ratelimit::AddressLimits;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::ops::ControlFlow;
use std::sync::Arc;

/// What the edge's auth layers need.
pub struct EdgeAuth {
    /// How tokens are checked.
    pub auth: Arc<Auth>,
    /// Which scope each tool needs.
    pub pipeline: Arc<Pipeline>,
    /// How often one address may fail authentication.
    pub limits: Arc<AddressLimits>,
}

/// Step 11, authentication: puts the request's [`Caller`] in its extensions, or
/// answers 401 (400 for a token in the query string); an address that keeps failing
/// is answered 429 instead.
pub async fn authenticate(edge: &EdgeAuth, mut request: Request) -> ControlFlow<Response, Request> {
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    match edge
        .auth
        .authenticate(authorization, request.uri().query())
        .await
    {
        Ok(caller) => {
            request.extensions_mut().insert(caller);
            ControlFlow::Continue(request)
        }
        Err(refusal) => {
            let limiter = edge.limits.failed_authentication.as_ref();
            if let Some(too_many) = Ask::of(&request).over(limiter).await {
                return ControlFlow::Break(too_many.answer(edge.pipeline.audit()).await);
            }
            let refused = refused(&request, "authenticate", Outcome::Unauthenticated, &refusal);
            ControlFlow::Break(answer(edge, refused, &refusal).await)
        }
    }
}

/// Step 12, authorization: a `tools/call` whose token lacks the tool's scope is
/// answered 403 with every scope the call needs.
pub async fn authorize(edge: &EdgeAuth, request: Request) -> ControlFlow<Response, Request> {
    let needed = request
        .extensions()
        .get::<Peeked>()
        .filter(|p| p.method.as_deref() == Some("tools/call"))
        .and_then(|p| p.tool.as_deref())
        .and_then(|tool| edge.pipeline.required_scope(tool));
    let caller = request.extensions().get::<Caller>();
    match needed {
        Some(scope) if caller.is_some_and(|c| !c.may(Some(&scope))) => {
            let refusal = Refusal::InsufficientScope(vec![scope]);
            let refused = refused(&request, "authorize", Outcome::Forbidden, &refusal);
            ControlFlow::Break(answer(edge, refused, &refusal).await)
        }
        _ => ControlFlow::Continue(request),
    }
}

/// What the record of a refused request says.
fn refused(request: &Request, step: &'static str, outcome: Outcome, refusal: &Refusal) -> Refused {
    let peeked = request.extensions().get::<Peeked>();
    Refused {
        ctx: http_context(request.headers(), request.extensions()),
        method: peeked.and_then(|p| p.method.clone()),
        tool: peeked.and_then(|p| p.tool.clone()),
        step,
        outcome,
        reason: refusal.reason(),
    }
}

/// Records a refused request and answers it: the status, the challenge, the reason.
async fn answer(edge: &EdgeAuth, refused: Refused, refusal: &Refusal) -> Response {
    record_refused(edge.pipeline.audit(), refused).await;
    let mut response = (refusal.status(), format!("{}\n", refusal.reason())).into_response();
    if let Ok(challenge) = HeaderValue::from_str(&edge.auth.challenge(refusal)) {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, challenge);
    }
    response
}

/// `GET /.well-known/oauth-protected-resource[/mcp]`: the protected resource metadata
/// (RFC 9728), served directly; 404 while authentication is off.
pub async fn resource_metadata(State(auth): State<Arc<Auth>>) -> Response {
    match auth.metadata() {
        None => StatusCode::NOT_FOUND.into_response(),
        Some(metadata) => (
            [
                // Public metadata: browser-based clients fetch it from other origins.
                (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
                (header::CACHE_CONTROL, "max-age=3600"),
            ],
            axum::Json(metadata),
        )
            .into_response(),
    }
}
