//! The HTTP edge: the `[server]` config, the axum router (`/mcp`, `/healthz`) with its
//! tower layers in one documented order, and the listener ([`listener`]).
//!
//! Every request passes, outermost first:
//!
//! 1. request id: a fresh `x-request-id` (any the client sent is replaced: ids in our
//!    logs are ours), returned on the response;
//! 2. the client's address: the connection's, or, from a `trusted_proxies` address,
//!    the one its `X-Forwarded-For` names ([`proxy`]);
//! 3. `Authorization`, `Cookie` and `Set-Cookie` marked sensitive (never logged);
//! 4. trace: a `request` span with method, path (never the query) and request id; the
//!    headers (sensitive ones redacted) and each response at debug level;
//! 5. security headers on every response: `X-Content-Type-Options: nosniff`,
//!    `X-Frame-Options: DENY`, `Referrer-Policy: no-referrer`, and
//!    `Strict-Transport-Security` when clients reach us over HTTPS (`tls`, or an
//!    https `public_url` behind a proxy);
//! 6. load shedding: past `max_concurrent_requests` requests in flight, a request is
//!    answered 503 with `Retry-After` at once rather than queued without bound;
//! 7. request timeout: a POST that takes longer than `request_timeout` (by default
//!    the longest plugin timeout plus 30 s) is answered 503 ([`time_limit`]);
//! 8. body limit: a body is cut off past [`MAX_REQUEST_BODY_BYTES`], and the layer
//!    that reads it answers 413 (on `/mcp`, the JSON-RPC peek). The body is read up to
//!    the limit even when its `Content-Length` is larger, so the client is still
//!    sending when the answer comes and reads a 413, not a reset connection.
//!
//! `/mcp` then passes ([`endpoint`], one service):
//!
//! 9. the `Host` and `Origin` check ([`origin`]), answered 403; then CORS for the
//!    configured `allowed_origins` only (preflights are answered here);
//! 10. the JSON-RPC peek ([`jsonrpc`]): method and tool name, for the layers after it;
//! 11. authentication ([`authn`]): the bearer token becomes the request's caller, or
//!     401 with a challenge (400 for a token in the query string); an address failing
//!     more often than `[rate_limits.per_address] failed_authentication` gets 429
//!     ([`limits`]);
//! 12. authorization ([`authn`]): a `tools/call` whose token lacks the tool's scope is
//!     answered 403 `insufficient_scope`;
//! 13. malformed `tools/call` arguments answered as a tool error ([`jsonrpc`]);
//! 14. the direct path: a stateless (2026-07-28) `tools/call` it can vouch for is
//!     answered here ([`crate::mcp::direct`]);
//! 15. rmcp's Streamable HTTP service, handing requests to [`McpHandler`].
//!
//! `/.well-known/oauth-protected-resource[/mcp]` serves the protected resource
//! metadata; in embedded mode the authorization server's endpoints ([`oauth`]) are at
//! `/.well-known/oauth-authorization-server` and `/oauth/*`, behind a per-address limit
//! ([`limits`]); `/healthz` answers `ok`; `/readyz` checks the audit log, the auth
//! database and the rate-limit store ([`ready`]); `/metrics` serves Prometheus metrics
//! ([`metrics`]) unless `metrics_listen` gives them a listener of their own.
//! None of these passes the Host check or authentication.

pub mod authn;
pub mod endpoint;
pub mod jsonrpc;
pub mod limits;
pub mod listener;
pub mod metrics;
pub mod oauth;
pub mod origin;
pub mod proxy;
pub mod ready;
pub mod time_limit;
pub mod tls;

use crate::auth::Auth;
use crate::domain::HumanDuration;
use crate::mcp::McpHandler;
use crate::pipeline::Pipeline;
use crate::ratelimit::AddressLimits;
use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::http::{HeaderName, HeaderValue, Method, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use origin::{AllowedOrigin, OriginPolicy};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use serde::Deserialize;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tower::ServiceBuilder;
use tower::limit::ConcurrencyLimitLayer;
use tower::load_shed::LoadShedLayer;
use tower::util::MapRequestLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::map_request_body::MapRequestBodyLayer;
use tower_http::request_id::PropagateRequestIdLayer;
use tower_http::sensitive_headers::SetSensitiveHeadersLayer;
use tower_http::set_header::{SetRequestHeaderLayer, SetResponseHeaderLayer};
use tower_http::trace::TraceLayer;

/// Largest JSON-RPC request body: tool arguments are small; this bounds memory per
/// request long before a schema sees it.
pub const MAX_REQUEST_BODY_BYTES: usize = 4 * 1024 * 1024;

/// The request id header.
const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// `[server]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Where to listen. Port 0 picks a free port; the bound address is printed.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Canonical base URL clients use; its host is accepted in the `Host` header.
    #[serde(default)]
    pub public_url: Option<url::Url>,
    /// Browser origins allowed to call `/mcp` (e.g. `https://app.example.com`,
    /// `http://localhost:*`).
    #[serde(default)]
    pub allowed_origins: Vec<AllowedOrigin>,
    /// Requests in flight at once; past it, requests are answered 503 at once.
    #[serde(default = "default_max_concurrent_requests")]
    pub max_concurrent_requests: usize,
    /// Longest a POST may take before it is answered 503 (none: the longest plugin
    /// timeout plus 30 s).
    #[serde(default)]
    pub request_timeout: Option<HumanDuration>,
    /// Serve `/metrics` here instead of on the main listener (over TLS when `tls` is
    /// set).
    #[serde(default)]
    pub metrics_listen: Option<SocketAddr>,
    /// Serve HTTPS with this certificate and key, reloaded when they change.
    #[serde(default)]
    pub tls: Option<tls::TlsConfig>,
    /// Allow plain HTTP off loopback: only behind a proxy that terminates TLS.
    #[serde(default)]
    pub allow_insecure_http: bool,
    /// Proxies in front of the host whose `X-Forwarded-For` names the client.
    #[serde(default)]
    pub trusted_proxies: Vec<proxy::ProxyNet>,
}

/// Default for `max_concurrent_requests`: far above what the plugins' concurrency
/// limits let run, far below what exhausts memory.
fn default_max_concurrent_requests() -> usize {
    1024
}

/// How much longer than the longest plugin timeout a request may take by default
/// (waiting for a slot, checking arguments, writing the record).
pub const REQUEST_TIMEOUT_MARGIN: Duration = Duration::from_secs(30);

/// The base URL clients reach this server at (scheme, host, port; no path):
/// `public_url` when set, else the address the listener bound.
pub fn public_base(config: &ServerConfig, bound: SocketAddr) -> url::Url {
    match &config.public_url {
        Some(url) => {
            let mut base = url.clone();
            base.set_path("");
            base.set_query(None);
            base.set_fragment(None);
            base
        }
        None => {
            let scheme = if config.tls.is_some() {
                "https"
            } else {
                "http"
            };
            url::Url::parse(&format!("{scheme}://{bound}"))
                .expect("a socket address makes a valid URL")
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            public_url: None,
            allowed_origins: Vec::new(),
            max_concurrent_requests: default_max_concurrent_requests(),
            request_timeout: None,
            metrics_listen: None,
            tls: None,
            allow_insecure_http: false,
            trusted_proxies: Vec::new(),
        }
    }
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}

impl ServerConfig {
    /// Resolves the TLS files against the config's folder.
    pub fn resolve(&mut self, base: &std::path::Path) -> Result<(), String> {
        match &mut self.tls {
            Some(tls) => tls.resolve(base),
            None => Ok(()),
        }
    }

    /// Checks what serde cannot. Off loopback, a listener needs TLS (or a proxy that
    /// terminates it: `allow_insecure_http`), authentication (`authenticated`: `[auth]`
    /// is not off) and the public URL clients use (tokens are issued for it).
    pub fn check(&self, authenticated: bool) -> Result<(), String> {
        let listen = self.listen;
        let tls = self.tls.is_some();
        if tls && self.allow_insecure_http {
            return Err("[server] allow_insecure_http = true and tls are both set: \
                 allow_insecure_http is for plain HTTP behind a proxy that terminates TLS; \
                 remove one"
                .into());
        }
        if !listen.ip().is_loopback() {
            let reachable =
                format!("[server] listen = \"{listen}\" is reachable from other machines");
            if !authenticated {
                return Err(format!(
                    "{reachable}, and with [auth] mode = \"off\" anyone there could call \
                     every tool: listen on 127.0.0.1 or [::1], or set [auth] mode = \
                     \"embedded\" or \"external\""
                ));
            }
            if !tls && !self.allow_insecure_http {
                return Err(format!(
                    "{reachable}: set [server] tls = {{ cert = \"...\", key = \"...\" }}, \
                     or allow_insecure_http = true if a proxy in front terminates TLS"
                ));
            }
            if self.public_url.is_none() {
                return Err(format!(
                    "{reachable}: set [server] public_url to the https:// URL clients use \
                     (tokens are issued for it)"
                ));
            }
        }
        if let Some(metrics) = self.metrics_listen
            && !metrics.ip().is_loopback()
            && !tls
            && !self.allow_insecure_http
        {
            return Err(format!(
                "[server] metrics_listen = \"{metrics}\" is reachable from other machines: \
                 set [server] tls (it serves HTTPS too), or allow_insecure_http = true behind \
                 a proxy that terminates TLS"
            ));
        }
        if let Some(url) = &self.public_url
            && tls
            && url.scheme() == "http"
        {
            return Err(format!(
                "[server] public_url = \"{url}\" is http:// but the listener speaks TLS: \
                 use https://"
            ));
        }
        if !(1..=100_000).contains(&self.max_concurrent_requests) {
            return Err(format!(
                "[server] max_concurrent_requests = {}: from 1 to 100000",
                self.max_concurrent_requests
            ));
        }
        if let Some(timeout) = self.request_timeout
            && timeout.0 < Duration::from_secs(1)
        {
            return Err(format!(
                "[server] request_timeout = \"{timeout}\": at least 1s"
            ));
        }
        if let Some(url) = &self.public_url
            && (!matches!(url.scheme(), "http" | "https") || url.host_str().is_none())
        {
            return Err(format!(
                "[server] public_url = \"{url}\" must be an http:// or https:// URL with a host"
            ));
        }
        Ok(())
    }
}

/// The router: `/mcp` (MCP Streamable HTTP), the protected resource metadata and
/// `/healthz`, behind the layers listed in this module's documentation, in that order.
/// `request_timeout` is the configured one or the default derived from the plugins.
pub fn router(
    pipeline: Arc<Pipeline>,
    auth: Arc<Auth>,
    limits: Arc<AddressLimits>,
    config: &ServerConfig,
    request_timeout: Duration,
    metrics: Option<Arc<metrics::Scrape>>,
    shutdown: CancellationToken,
) -> Router {
    let policy = Arc::new(OriginPolicy::new(
        config.public_url.as_ref(),
        &config.allowed_origins,
    ));
    let audit = pipeline.audit().clone();
    let cors_policy = policy.clone();
    let cors = CorsLayer::new()
        .allow_origin(AllowOrigin::predicate(move |origin, _| {
            origin
                .to_str()
                .is_ok_and(|origin| cors_policy.allows_origin(origin))
        }))
        .allow_methods([Method::GET, Method::POST, Method::DELETE])
        .allow_headers(MCP_REQUEST_HEADERS.map(HeaderName::from_static))
        .expose_headers(MCP_RESPONSE_HEADERS.map(HeaderName::from_static))
        .max_age(Duration::from_secs(600));
    let edge = Arc::new(authn::EdgeAuth {
        auth: auth.clone(),
        pipeline: pipeline.clone(),
        limits,
    });
    let pipeline_for_ready = pipeline.clone();
    let handler = McpHandler::new(pipeline);
    let mcp = endpoint::service(
        policy,
        cors,
        edge.clone(),
        handler.clone(),
        mcp_service(handler, shutdown),
    );
    let max_in_flight = config.max_concurrent_requests;
    let https = config.tls.is_some()
        || config
            .public_url
            .as_ref()
            .is_some_and(|url| url.scheme() == "https");
    let authorization_server = auth.authorization_server().cloned();
    let readiness = ready::Readiness {
        pipeline: pipeline_for_ready,
        auth: auth.clone(),
    };
    let metadata = Router::new()
        .route(
            "/.well-known/oauth-protected-resource",
            get(authn::resource_metadata),
        )
        .route(
            "/.well-known/oauth-protected-resource/mcp",
            get(authn::resource_metadata),
        )
        .with_state(auth);
    let mut router = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready::readyz).with_state(readiness))
        .merge(metadata)
        .route_service("/mcp", mcp);
    if let Some(scrape) = metrics {
        router = router.merge(metrics::routes(scrape));
    }
    if let Some(server) = authorization_server {
        let secure = server.issuer().starts_with("https://");
        router = router.merge(oauth::routes(server, audit, secure).layer(
            axum::middleware::from_fn_with_state(edge, limits::authorization_server),
        ));
    }
    router.layer(
        ServiceBuilder::new()
            .layer(SetRequestHeaderLayer::overriding(
                X_REQUEST_ID,
                |_: &Request<_>| {
                    HeaderValue::from_str(&crate::pipeline::context::new_request_id()).ok()
                },
            ))
            .layer(PropagateRequestIdLayer::new(X_REQUEST_ID))
            .layer(MapRequestLayer::new({
                let proxies = Arc::new(proxy::TrustedProxies::new(&config.trusted_proxies));
                move |request| proxy::resolve_client(&proxies, request)
            }))
            .layer(SetSensitiveHeadersLayer::new([
                header::AUTHORIZATION,
                header::COOKIE,
                header::SET_COOKIE,
            ]))
            .layer(
                TraceLayer::new_for_http()
                    .make_span_with(|request: &Request<_>| {
                        let id = request
                            .headers()
                            .get(&X_REQUEST_ID)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("-");
                        tracing::info_span!(
                            crate::pipeline::context::REQUEST_SPAN,
                            method = %request.method(),
                            path = %request.uri().path(),
                            request_id = %id,
                        )
                    })
                    .on_request(|request: &Request<_>, _: &tracing::Span| {
                        tracing::debug!(headers = ?request.headers(), "request");
                    }),
            )
            .layer(SetResponseHeaderLayer::if_not_present(
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ))
            .layer(SetResponseHeaderLayer::if_not_present(
                header::X_FRAME_OPTIONS,
                HeaderValue::from_static("DENY"),
            ))
            .layer(SetResponseHeaderLayer::if_not_present(
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            ))
            .option_layer(https.then(|| {
                SetResponseHeaderLayer::if_not_present(
                    header::STRICT_TRANSPORT_SECURITY,
                    HeaderValue::from_static("max-age=31536000"),
                )
            }))
            .layer(HandleErrorLayer::new(
                move |_: tower::BoxError| async move { overloaded(max_in_flight) },
            ))
            .layer(LoadShedLayer::new())
            .layer(ConcurrencyLimitLayer::new(max_in_flight))
            .layer(time_limit::TimeLimitLayer::new(request_timeout))
            .layer(MapRequestBodyLayer::new(|body| {
                axum::body::Body::new(http_body_util::Limited::new(body, MAX_REQUEST_BODY_BYTES))
            })),
    )
}

/// Request headers a browser client of `/mcp` sends.
const MCP_REQUEST_HEADERS: [&str; 9] = [
    "content-type",
    "accept",
    "authorization",
    "mcp-protocol-version",
    "mcp-session-id",
    "mcp-method",
    "mcp-name",
    "last-event-id",
    "x-request-id",
];

/// Response headers a browser client of `/mcp` may read.
const MCP_RESPONSE_HEADERS: [&str; 3] = ["mcp-session-id", "www-authenticate", "x-request-id"];

/// The answer when `max_concurrent_requests` are in flight.
fn overloaded(limit: usize) -> Response {
    let mut response = (
        StatusCode::SERVICE_UNAVAILABLE,
        format!("the server is handling its limit of {limit} requests; try again shortly\n"),
    )
        .into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

/// rmcp's Streamable HTTP service: JSON answers to plain requests (SSE only when a
/// call streams), sessions (2025-11-25) and stateless requests (2026-07-28). Its own
/// Host/Origin check and body limit are off: the layers above do both, once.
fn mcp_service(
    handler: McpHandler,
    shutdown: CancellationToken,
) -> StreamableHttpService<McpHandler, LocalSessionManager> {
    let transport = StreamableHttpServerConfig::default()
        .with_json_response(true)
        .disable_allowed_hosts()
        .disable_allowed_origins()
        .with_max_request_body_bytes(usize::MAX)
        .with_cancellation_token(shutdown);
    StreamableHttpService::new(
        move || Ok(handler.for_session()),
        Arc::new(LocalSessionManager::default()),
        transport,
    )
}

#[cfg(test)]
mod tests;
