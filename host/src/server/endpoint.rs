//! `/mcp` as one service: steps 9 to 15 (see [`super`]) as plain calls, in order, each
//! answering the request or handing it on. One service, cloned per request as one
//! `Arc`, costs less than a tower layer per step: a boxed future, a copy of the whole
//! stack below and the moves of ever larger futures, per step and request. CORS (a
//! tower layer) is passed only by requests a browser sends (an `Origin` header, or a
//! preflight); any other response gets the same `Vary` header it would have added.

use super::authn::{self, EdgeAuth};
use super::jsonrpc;
use super::origin::{self, OriginPolicy};
use crate::mcp::{McpHandler, direct};
use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, Method, header};
use axum::response::Response;
use rmcp::transport::streamable_http_server::StreamableHttpService;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use std::convert::Infallible;
use std::future::Future;
use std::ops::ControlFlow;
use std::sync::Arc;
use tower::util::BoxCloneSyncService;
use tower::{Layer, Service, ServiceExt, service_fn};
use tower_http::cors::CorsLayer;

/// The `Vary` header CORS puts on every response.
const VARY: HeaderValue = HeaderValue::from_static(
    "origin, access-control-request-method, access-control-request-headers",
);

/// The `/mcp` service, from what its steps need.
pub fn service(
    policy: Arc<OriginPolicy>,
    cors: CorsLayer,
    edge: Arc<EdgeAuth>,
    handler: McpHandler,
    rmcp: StreamableHttpService<McpHandler, LocalSessionManager>,
) -> impl Service<Request, Response = Response, Error = Infallible, Future: Send>
+ Clone
+ Send
+ Sync
+ 'static {
    let steps = Arc::new(Steps {
        edge,
        handler,
        rmcp,
    });
    let endpoint = Arc::new(Endpoint {
        policy,
        browser: BoxCloneSyncService::new(cors.layer(serving(steps.clone(), Steps::serve))),
        steps,
    });
    serving(endpoint, Endpoint::serve)
}

/// A service answering each request with `serve(shared, request)`.
fn serving<T, F, Fut>(
    shared: Arc<T>,
    serve: F,
) -> impl Service<Request, Response = Response, Error = Infallible, Future: Send>
+ Clone
+ Send
+ Sync
+ 'static
where
    T: Send + Sync + 'static,
    F: Fn(Arc<T>, Request) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response> + Send + 'static,
{
    service_fn(move |request| {
        let answer = serve(shared.clone(), request);
        async move { Ok::<_, Infallible>(answer.await) }
    })
}

struct Endpoint {
    /// Step 9: which hosts and origins may reach `/mcp`.
    policy: Arc<OriginPolicy>,
    /// Steps 10 to 15 behind CORS, for a browser's requests.
    browser: BoxCloneSyncService<Request, Response, Infallible>,
    /// Steps 10 to 15.
    steps: Arc<Steps>,
}

/// Steps 10 to 15.
struct Steps {
    /// Authentication and authorization (and their per-address limit).
    edge: Arc<EdgeAuth>,
    /// The direct path's handler.
    handler: McpHandler,
    /// rmcp's Streamable HTTP service.
    rmcp: StreamableHttpService<McpHandler, LocalSessionManager>,
}

impl Endpoint {
    async fn serve(self: Arc<Self>, request: Request) -> Response {
        // 9. Host and Origin
        if let ControlFlow::Break(answer) = origin::check_request(&self.policy, &request) {
            return answer;
        }
        // CORS, for a browser's requests only
        let browser =
            request.headers().contains_key(header::ORIGIN) || request.method() == Method::OPTIONS;
        if browser {
            return match self.browser.clone().oneshot(request).await {
                Ok(response) => response,
                Err(never) => match never {},
            };
        }
        let mut response = self.steps.clone().serve(request).await;
        response.headers_mut().append(header::VARY, VARY);
        response
    }
}

impl Steps {
    /// Steps 10 to 15.
    async fn serve(self: Arc<Self>, request: Request) -> Response {
        match self.answer(request).await {
            ControlFlow::Break(answer) => answer,
            // 15. rmcp
            ControlFlow::Continue(request) => match self.rmcp.clone().oneshot(request).await {
                Ok(response) => response.map(Body::new),
                Err(never) => match never {},
            },
        }
    }

    /// The answer of steps 10 to 14, or the request for rmcp.
    async fn answer(&self, request: Request) -> ControlFlow<Response, Request> {
        // 10. the JSON-RPC peek
        let request = jsonrpc::peek_request(request).await?;
        // 11. authentication
        let request = authn::authenticate(&self.edge, request).await?;
        // 12. authorization
        let request = authn::authorize(&self.edge, request).await?;
        // 13. malformed arguments
        let request = jsonrpc::answer_malformed_arguments(request)?;
        // 14. the direct path
        direct::try_serve(&self.handler, request).await
    }
}
