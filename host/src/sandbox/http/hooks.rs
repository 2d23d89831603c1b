//! The per-call wasi:http hook: every outgoing request is matched against the plugin's
//! allowlist before anything is sent, and sent through our own dialer (which checks the
//! addresses the host resolves to). Refusals are named in the host log.

use super::allowlist::AllowedHost;
use super::dialer;
use crate::sandbox::denials::Denials;
use crate::sandbox::state::Grants;
use http_body_util::BodyExt;
use std::sync::Arc;
use tracing::Instrument;
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks};

/// The per-call wasi:http hook: checks each outgoing request against the plugin's
/// allowlist before anything is sent.
pub struct EgressPolicy {
    grants: Arc<Grants>,
    denials: Denials,
    /// One permit per connection this call has open.
    connections: Arc<tokio::sync::Semaphore>,
}

impl EgressPolicy {
    /// The hook of one call of a plugin with `grants`; refusals go to `denials`.
    pub fn new(grants: Arc<Grants>, denials: Denials) -> Self {
        Self {
            denials,
            connections: Arc::new(tokio::sync::Semaphore::new(
                grants.limits.max_connections as usize,
            )),
            grants,
        }
    }

    /// The allowlist entry `uri` matches, if any.
    fn matching(&self, uri: &http::Uri) -> Option<&AllowedHost> {
        self.grants.outbound.iter().find(|entry| entry.allows(uri))
    }
}

/// What the hook hands back to wasi:http: the response and the connection's I/O task.
type SendFuture = Box<
    dyn Future<
            Output = Result<
                (
                    http::Response<WasiBody>,
                    Box<dyn Future<Output = Result<(), HttpError>> + Send>,
                ),
                HttpError,
            >,
        > + Send,
>;

/// Bytes of a request body the host buffers per write: with one chunk queued, an
/// unsent body holds at most two of these in host memory.
pub const BODY_CHUNK: usize = 64 * 1024;

impl WasiHttpHooks for EgressPolicy {
    fn p2_outgoing_body_chunk_size(&mut self) -> usize {
        BODY_CHUNK
    }

    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ) -> SendFuture {
        let Some(entry) = self.matching(request.uri()) else {
            self.denials.refuse(
                "http",
                redacted_target(request.uri()),
                "outgoing request: not in allowed_outbound_hosts",
            );
            // Let the guest finish writing its body, so it sees the denial rather than
            // a broken body stream.
            drain(request.into_body());
            return Box::new(async { Err(HttpError::HttpRequestDenied) });
        };
        let Ok(connection) = self.connections.clone().try_acquire_owned() else {
            self.denials.refuse(
                "http",
                redacted_target(request.uri()),
                &format!(
                    "outgoing request: more than {} connections open in one call \
                     (limits.max_connections)",
                    self.grants.limits.max_connections
                ),
            );
            drain(request.into_body());
            return Box::new(async { Err(HttpError::ConnectionLimitReached) });
        };
        let reach = entry.reach();
        let request = detach_bodiless(request);
        let plugin = self.grants.plugin.clone();
        let target = redacted_target(request.uri());
        let denials = self.denials.clone();
        // wasi:http polls this apart from the call's task: keep the call's span.
        let span = tracing::Span::current();
        Box::new(
            async move {
                dialer::send(request, options, reach, &denials, connection)
                    .await
                    .inspect_err(|error| {
                        tracing::warn!(%plugin, %target, ?error, "outgoing request failed");
                    })
            }
            .instrument(span),
        )
    }
}

/// A GET or HEAD without a body is sent with an empty body of the host's own, and the
/// guest's body stream is drained in the background until the guest finishes it.
///
/// Why: a guest (wstd, for one) starts the request, then writes and finishes its empty
/// body. A fast upstream can answer and the connection close before the guest gets to
/// that, and hyper then drops the body: the guest's write fails ("connection reset")
/// although the request succeeded. Seen here against a loopback upstream.
fn detach_bodiless(request: http::Request<WasiBody>) -> http::Request<WasiBody> {
    let bodiless_method = matches!(*request.method(), http::Method::GET | http::Method::HEAD);
    let declared_length = request
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .map(|v| v.as_bytes() != b"0");
    if !bodiless_method || declared_length == Some(true) {
        return request;
    }
    let (parts, guest_body) = request.into_parts();
    drain(guest_body);
    let empty = http_body_util::Empty::new()
        .map_err(|never| match never {})
        .boxed_unsync();
    http::Request::from_parts(parts, empty)
}

/// Reads and discards a guest's request body in the background; ends when the guest
/// finishes the body or its store is dropped.
fn drain(mut guest_body: WasiBody) {
    tokio::spawn(async move { while let Some(Ok(_)) = guest_body.frame().await {} });
}

/// `scheme://host:port` of a request, for logs: never the path or query, which may
/// carry a credential.
fn redacted_target(uri: &http::Uri) -> String {
    format!(
        "{}://{}{}",
        uri.scheme_str().unwrap_or("?"),
        uri.host().unwrap_or("?"),
        uri.port_u16().map(|p| format!(":{p}")).unwrap_or_default()
    )
}
