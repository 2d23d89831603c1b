//! Who is calling, from where, over what: the context a request carries from the edge
//! (HTTP or stdio) through every step of the pipeline to the call's outcome record.

use crate::domain::Scope;
use crate::sandbox::client::Client;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// One request's context.
#[derive(Clone)]
pub struct CallContext {
    /// The request id: the `x-request-id` the HTTP edge set (and returned to the
    /// client), or a fresh one per request on stdio. Log lines of the call carry it.
    pub request_id: String,
    /// Who is calling.
    pub caller: Caller,
    /// The client's address (HTTP only).
    pub peer: Option<SocketAddr>,
    /// How the request arrived.
    pub transport: Transport,
    /// The MCP client, as the plugin may reach it (log, progress, sampling,
    /// elicitation); `None` when the request cannot be answered but once.
    pub client: Option<Arc<dyn Client>>,
    /// Cancelled when the client cancels the request: the call stops.
    pub cancelled: CancellationToken,
    /// Cancelled when the plugin needs an answer from the client that only a retry of
    /// the request can bring (2026-07-28): the call stops, to run again.
    pub needs_input: CancellationToken,
}

impl std::fmt::Debug for CallContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallContext")
            .field("request_id", &self.request_id)
            .field("caller", &self.caller)
            .field("peer", &self.peer)
            .field("transport", &self.transport)
            .field("client", &self.client.is_some())
            .field("cancelled", &self.cancelled.is_cancelled())
            .finish()
    }
}

impl CallContext {
    /// A request over stdio: the local user, a fresh request id.
    pub fn stdio() -> Self {
        Self {
            request_id: new_request_id(),
            caller: Caller::Local,
            peer: None,
            transport: Transport::Stdio,
            client: None,
            cancelled: CancellationToken::new(),
            needs_input: CancellationToken::new(),
        }
    }
}

/// The name of the HTTP edge's span around each request; its `request_id` field is
/// the id of the call the request makes.
pub const REQUEST_SPAN: &str = "request";

/// The span that names a call in what the sandbox logs for it: the request's span
/// when the call runs inside it, else a `call` span of its own.
pub fn call_span(request_id: &str) -> tracing::Span {
    let current = tracing::Span::current();
    match current.metadata() {
        Some(span) if span.name() == REQUEST_SPAN => tracing::Span::none(),
        _ => tracing::info_span!("call", call_id = %request_id),
    }
}

/// A fresh, unique request id.
pub fn new_request_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Who a request comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// The local user of a stdio server (the boundary is the local machine).
    Local,
    /// An HTTP client while authentication is off (the listener is loopback only).
    Anonymous,
    /// The holder of a verified access token.
    User(TokenClaims),
}

impl Caller {
    /// The subject written in records: the token's subject, or `local` / `anonymous`.
    pub fn subject(&self) -> &str {
        match self {
            Caller::Local => "local",
            Caller::Anonymous => "anonymous",
            Caller::User(claims) => &claims.subject,
        }
    }

    /// Whether the caller may do what `needed` allows (anything, when nothing is
    /// needed). Local and anonymous callers may do everything: there is no token to
    /// limit them.
    pub fn may(&self, needed: Option<&Scope>) -> bool {
        match (self, needed) {
            (_, None) | (Caller::Local | Caller::Anonymous, _) => true,
            (Caller::User(claims), Some(needed)) => {
                claims.scopes.iter().any(|held| held.covers(needed))
            }
        }
    }

    /// The OAuth client the token was issued to, if any.
    pub fn client_id(&self) -> Option<&str> {
        match self {
            Caller::User(claims) => claims.client_id.as_deref(),
            Caller::Local | Caller::Anonymous => None,
        }
    }
}

/// What a verified access token says about its holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenClaims {
    /// `sub`: the user.
    pub subject: String,
    /// `client_id`: the client the token was issued to.
    pub client_id: Option<String>,
    /// `scope`: what the token may do.
    pub scopes: Vec<Scope>,
}

/// How a request reached the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// MCP Streamable HTTP at `/mcp`.
    Http,
    /// MCP over standard input and output (`serve --stdio`).
    Stdio,
}

impl Transport {
    /// The transport as records write it.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Http => "http",
            Transport::Stdio => "stdio",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_is_named_by_the_request_span_it_runs_in_or_by_its_own() {
        let subscriber = tracing_subscriber::registry();
        tracing::subscriber::with_default(subscriber, || {
            let own = call_span("call-1");
            assert_eq!(own.metadata().map(|m| m.name()), Some("call"));
            let request = tracing::info_span!(REQUEST_SPAN, request_id = "call-2");
            request.in_scope(|| assert!(call_span("call-2").is_none()));
            let other = tracing::info_span!("serve_inner");
            other.in_scope(|| {
                let span = call_span("call-3");
                assert_eq!(span.metadata().map(|m| m.name()), Some("call"));
            });
        });
    }
}
