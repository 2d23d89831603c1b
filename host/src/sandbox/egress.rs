//! Outgoing HTTP: the typed allowlist (`allowed_outbound_hosts`) and the wasi:http hook
//! that enforces it. Deny by default; a request whose scheme, host and port do not
//! match an entry never leaves the host.

use super::denials::Denials;
use super::dialer::{self, Reach};
use super::state::Grants;
use http_body_util::BodyExt;
use serde::Deserialize;
use std::sync::Arc;
use tracing::Instrument;
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks};

/// One `allowed_outbound_hosts` entry: `scheme://host[:port]`.
///
/// `host` is an exact name or IP literal, or `*.example.com` for any subdomain of
/// `example.com` (not `example.com` itself). Without a port, only the scheme's default
/// port (80 or 443) is allowed.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct AllowedHost {
    scheme: Scheme,
    host: HostPattern,
    port: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    Http,
    Https,
}

impl Scheme {
    fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    /// This name (lower-case, no trailing dot) or IP literal only.
    Exact(String),
    /// Any name ending in `.` + this suffix.
    Subdomains(String),
}

impl TryFrom<String> for AllowedHost {
    type Error = String;
    fn try_from(entry: String) -> Result<Self, String> {
        Self::parse(&entry).map_err(|why| format!("allowed_outbound_hosts entry `{entry}`: {why}"))
    }
}

impl AllowedHost {
    /// Parses `scheme://host[:port]`.
    pub fn parse(entry: &str) -> Result<Self, String> {
        let (scheme, rest) = entry
            .split_once("://")
            .ok_or("must start with http:// or https://")?;
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "http" => Scheme::Http,
            "https" => Scheme::Https,
            other => return Err(format!("scheme `{other}` is not http or https")),
        };
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.contains(['/', '?', '#', '@', ' ']) {
            return Err("must be only scheme://host[:port] (no path, query or user)".into());
        }
        let (host, port) = split_port(authority)?;
        let port = port.unwrap_or(scheme.default_port());
        let host = host.to_ascii_lowercase();
        let host = host.strip_suffix('.').unwrap_or(&host).to_owned();
        if host == "*" {
            return Err("`*` would allow every host; list the hosts the plugin needs".into());
        }
        let pattern = if let Some(suffix) = host.strip_prefix("*.") {
            check_dns_name(suffix)?;
            if !suffix.contains('.') {
                return Err(format!(
                    "`*.{suffix}` covers a whole top-level domain; name a registered domain"
                ));
            }
            HostPattern::Subdomains(suffix.to_owned())
        } else if host.starts_with('[') {
            let inner = host
                .strip_prefix('[')
                .and_then(|h| h.strip_suffix(']'))
                .ok_or("unbalanced `[` in IPv6 address")?;
            let ip: std::net::Ipv6Addr = inner
                .parse()
                .map_err(|_| format!("`{inner}` is not an IPv6 address"))?;
            HostPattern::Exact(format!("[{ip}]"))
        } else {
            check_dns_name(&host)?;
            HostPattern::Exact(host)
        };
        Ok(Self {
            scheme,
            host: pattern,
            port,
        })
    }

    /// Which special addresses a request matching this entry may reach after DNS:
    /// a literal IP names exactly itself, `localhost` allows loopback, anything else
    /// only public addresses.
    pub fn reach(&self) -> Reach {
        match &self.host {
            HostPattern::Exact(name) if name == "localhost" => Reach::Loopback,
            HostPattern::Exact(name) => name
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse()
                .map_or(Reach::Public, Reach::Literal),
            HostPattern::Subdomains(_) => Reach::Public,
        }
    }

    /// Whether a request to `uri` matches this entry. A URI without a scheme or host
    /// never matches.
    pub fn allows(&self, uri: &http::Uri) -> bool {
        let scheme = match uri.scheme_str().map(str::to_ascii_lowercase).as_deref() {
            Some("http") => Scheme::Http,
            Some("https") => Scheme::Https,
            _ => return false,
        };
        let Some(host) = uri.host() else {
            return false;
        };
        let host = host.to_ascii_lowercase();
        let host = host.strip_suffix('.').unwrap_or(&host);
        let port = uri.port_u16().unwrap_or(scheme.default_port());
        let host_ok = match &self.host {
            HostPattern::Exact(name) => host == name,
            HostPattern::Subdomains(suffix) => host
                .strip_suffix(suffix.as_str())
                .and_then(|label| label.strip_suffix('.'))
                .is_some_and(|label| !label.is_empty()),
        };
        scheme == self.scheme && host_ok && port == self.port
    }
}

fn split_port(authority: &str) -> Result<(&str, Option<u16>), String> {
    let colon = if authority.starts_with('[') {
        authority
            .find(']')
            .and_then(|end| authority[end + 1..].starts_with(':').then_some(end + 1))
    } else {
        authority.rfind(':')
    };
    match colon {
        None => Ok((authority, None)),
        Some(at) => {
            let port = &authority[at + 1..];
            let port: u16 = port
                .parse()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| format!("port `{port}` is not a number from 1 to 65535"))?;
            Ok((&authority[..at], Some(port)))
        }
    }
}

fn check_dns_name(host: &str) -> Result<(), String> {
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if host.is_empty() || host.len() > 253 || !host.split('.').all(label_ok) {
        return Err(format!("`{host}` is not a valid host name"));
    }
    Ok(())
}

/// The per-call wasi:http hook: checks each outgoing request against the plugin's
/// allowlist before anything is sent.
pub struct EgressPolicy {
    grants: Arc<Grants>,
    denials: Denials,
    /// One permit per connection this call has open.
    connections: Arc<tokio::sync::Semaphore>,
}

/// Outgoing connections one call may have open at once: each holds a file descriptor
/// of the host.
pub const MAX_CONNECTIONS: usize = 16;

impl EgressPolicy {
    pub fn new(grants: Arc<Grants>, denials: Denials) -> Self {
        Self {
            grants,
            denials,
            connections: Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS)),
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
                    "outgoing request: more than {MAX_CONNECTIONS} connections open in one call"
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

#[cfg(test)]
mod tests {
    use super::*;

    fn allows(entry: &str, uri: &str) -> bool {
        AllowedHost::parse(entry)
            .unwrap()
            .allows(&uri.parse().unwrap())
    }

    #[test]
    fn exact_host_matches_scheme_host_and_default_port() {
        assert!(allows(
            "https://api.example.com",
            "https://api.example.com/x?q=1"
        ));
        assert!(allows(
            "https://api.example.com",
            "https://API.example.com./x"
        ));
        assert!(allows(
            "https://api.example.com",
            "https://api.example.com:443/"
        ));
        assert!(!allows(
            "https://api.example.com",
            "http://api.example.com/"
        ));
        assert!(!allows(
            "https://api.example.com",
            "https://api.example.com:8443/"
        ));
        assert!(!allows("https://api.example.com", "https://example.com/"));
    }

    #[test]
    fn explicit_port_must_match() {
        assert!(allows("http://127.0.0.1:8080", "http://127.0.0.1:8080/a"));
        assert!(!allows("http://127.0.0.1:8080", "http://127.0.0.1:8081/a"));
        assert!(!allows("http://127.0.0.1:8080", "http://127.0.0.1/a"));
    }

    #[test]
    fn wildcard_matches_subdomains_only_and_not_lookalikes() {
        let entry = "https://*.example.com";
        assert!(allows(entry, "https://a.example.com/"));
        assert!(allows(entry, "https://a.b.example.com/"));
        assert!(!allows(entry, "https://example.com/"));
        assert!(!allows(entry, "https://evilexample.com/"));
        assert!(!allows(entry, "https://example.com.evil.net/"));
        assert!(!allows(entry, "https://.example.com/"));
    }

    #[test]
    fn userinfo_does_not_fool_the_host_check() {
        assert!(!allows(
            "https://example.com",
            "https://example.com@evil.net/"
        ));
        assert!(!allows(
            "https://example.com",
            "https://evil.net/?example.com"
        ));
    }

    #[test]
    fn ipv6_literals() {
        assert!(allows("http://[::1]:9000", "http://[::1]:9000/"));
        assert!(!allows("http://[::1]:9000", "http://[::2]:9000/"));
    }

    #[test]
    fn bad_entries_are_refused_with_a_reason() {
        for (entry, needle) in [
            ("*", "http:// or https://"),
            ("https://*", "every host"),
            ("https://*.com", "top-level"),
            ("ftp://example.com", "scheme"),
            ("example.com", "http:// or https://"),
            ("https://example.com/path", "no path"),
            ("https://user@example.com", "no path"),
            ("https://example.com:0", "port"),
            ("https://example.com:99999", "port"),
            ("https://exa_mple.com", "valid host"),
            ("https://", "valid host"),
            ("https://[::1", "IPv6"),
        ] {
            let err = AllowedHost::parse(entry).unwrap_err();
            assert!(err.contains(needle), "{entry}: {err}");
        }
    }
}
