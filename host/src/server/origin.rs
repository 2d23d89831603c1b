//! The `Host` and `Origin` check on `/mcp` (DNS rebinding and cross-site requests): a
//! request must name one of our host names, and a browser page may call only from an
//! origin the operator allowed (or from our own origin). Runs before authentication, so
//! a page on another site learns nothing, not even whether a token would be needed.
//!
//! The predicate is a pure function ([`OriginPolicy::check`]) with a table of cases;
//! the tower layer only reads the headers and answers 403. (rmcp has its own check;
//! it is switched off because it runs after our authentication and silently skips
//! allowlist entries it cannot parse, where ours are refused at load, naming the line.)

use axum::extract::Request;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use std::ops::ControlFlow;

/// One `allowed_origins` entry: `scheme://host[:port]`, or `scheme://host:*` for any
/// port. Without a port the scheme's default port (80, 443) is meant (RFC 6454).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct AllowedOrigin {
    scheme: String,
    host: String,
    /// `None`: any port.
    port: Option<u16>,
}

impl TryFrom<String> for AllowedOrigin {
    type Error = String;
    fn try_from(entry: String) -> Result<Self, String> {
        let (base, any_port) = match entry.strip_suffix(":*") {
            Some(base) => (base, true),
            None => (entry.as_str(), false),
        };
        let origin = Origin::parse(base).ok_or_else(|| {
            format!(
                "allowed_origins entry `{entry}` must be scheme://host[:port] or \
                 scheme://host:* (no path)"
            )
        })?;
        if any_port && origin.port.is_some() {
            return Err(format!(
                "allowed_origins entry `{entry}`: give a port or `:*`, not both"
            ));
        }
        Ok(Self {
            port: if any_port {
                None
            } else {
                Some(origin.port_or_default())
            },
            scheme: origin.scheme,
            host: origin.host,
        })
    }
}

/// A parsed `Origin` header (or allowlist entry): scheme, lower-case host, port.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Origin {
    scheme: String,
    host: String,
    port: Option<u16>,
}

impl Origin {
    fn parse(text: &str) -> Option<Self> {
        let (scheme, authority) = text.trim().split_once("://")?;
        let scheme = scheme.to_ascii_lowercase();
        if !matches!(scheme.as_str(), "http" | "https")
            || authority.is_empty()
            || authority.contains(['/', '?', '#', '@'])
        {
            return None;
        }
        let (host, port) = split_authority(authority)?;
        Some(Self { scheme, host, port })
    }

    fn port_or_default(&self) -> u16 {
        self.port
            .unwrap_or(if self.scheme == "https" { 443 } else { 80 })
    }
}

/// `host[:port]` -> lower-case host without brackets, and the port.
fn split_authority(authority: &str) -> Option<(String, Option<u16>)> {
    let parsed: http::uri::Authority = authority.parse().ok()?;
    let host = parsed
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    if host.is_empty() {
        return None;
    }
    Some((host, parsed.port_u16()))
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// No usable `Host` header.
    MissingHost,
    /// A `Host` that is not one of ours (DNS rebinding).
    Host(String),
    /// An `Origin` that is neither allowed nor ours.
    Origin(String),
}

impl Refused {
    fn message(&self) -> &'static str {
        match self {
            Refused::MissingHost => "Forbidden: the Host header is missing or malformed",
            Refused::Host(_) => "Forbidden: Host header is not allowed",
            Refused::Origin(_) => "Forbidden: Origin header is not allowed",
        }
    }
}

/// The host names and browser origins `/mcp` accepts.
#[derive(Debug, Clone)]
pub struct OriginPolicy {
    /// Lower-case host names, any port.
    hosts: Vec<String>,
    origins: Vec<AllowedOrigin>,
}

/// Names a loopback listener answers to.
const LOOPBACK_HOSTS: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

impl OriginPolicy {
    /// Loopback names, the host of `public_url`, and `allowed_origins`.
    pub fn new(public_url: Option<&url::Url>, origins: &[AllowedOrigin]) -> Self {
        let mut hosts: Vec<String> = LOOPBACK_HOSTS.iter().map(|h| (*h).to_owned()).collect();
        if let Some(host) = public_url.and_then(|u| u.host_str()) {
            hosts.push(
                host.trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_ascii_lowercase(),
            );
        }
        Self {
            hosts,
            origins: origins.to_vec(),
        }
    }

    /// Whether `origin` is one of the configured `allowed_origins` (the browser
    /// origins CORS answers for).
    pub fn allows_origin(&self, origin: &str) -> bool {
        Origin::parse(origin).is_some_and(|origin| {
            let port = origin.port_or_default();
            self.origins.iter().any(|a| {
                a.scheme == origin.scheme
                    && a.host == origin.host
                    && a.port.is_none_or(|p| p == port)
            })
        })
    }

    /// Whether a request with these `Host` and `Origin` values may reach `/mcp`.
    pub fn check(&self, host: Option<&str>, origin: Option<&str>) -> Result<(), Refused> {
        let (host, host_port) = host.and_then(split_authority).ok_or(Refused::MissingHost)?;
        if !self.hosts.contains(&host) {
            return Err(Refused::Host(host));
        }
        let Some(origin_text) = origin else {
            return Ok(());
        };
        let refused = || Refused::Origin(origin_text.chars().take(256).collect());
        let origin = Origin::parse(origin_text).ok_or_else(refused)?;
        let port = origin.port_or_default();
        let allowed = self.allows_origin(origin_text);
        // A page served from this very host and port is ours.
        let default_port = if origin.scheme == "https" { 443 } else { 80 };
        let same_origin = origin.host == host && port == host_port.unwrap_or(default_port);
        if allowed || same_origin {
            Ok(())
        } else {
            Err(refused())
        }
    }
}

fn header(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Step 9: a request whose `Host` or `Origin` is not allowed is answered 403.
pub fn check_request(policy: &OriginPolicy, request: &Request) -> ControlFlow<Response> {
    let headers = request.headers();
    // HTTP/2 carries the host in `:authority`, not a Host header.
    let host =
        header(headers, header::HOST).or_else(|| request.uri().authority().map(|a| a.as_str()));
    match policy.check(host, header(headers, header::ORIGIN)) {
        Ok(()) => ControlFlow::Continue(()),
        Err(refused) => {
            tracing::warn!(
                ?refused,
                "refused a request to /mcp (Host or Origin not allowed)"
            );
            ControlFlow::Break((StatusCode::FORBIDDEN, refused.message()).into_response())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(entry: &str) -> AllowedOrigin {
        AllowedOrigin::try_from(entry.to_owned()).unwrap()
    }

    #[test]
    fn host_and_origin_cases() {
        let public: url::Url = "https://tools.example.com/mcp".parse().unwrap();
        let policy = OriginPolicy::new(
            Some(&public),
            &[
                origin("https://app.example.com"),
                origin("http://localhost:*"),
                origin("http://127.0.0.1:6274"),
            ],
        );
        let host_refused = |h: &str| Err(Refused::Host(h.to_owned()));
        let origin_refused = |o: &str| Err(Refused::Origin(o.to_owned()));
        for (host, origin, expected) in [
            // Our names, any port; no Origin (not a browser).
            (Some("localhost"), None, Ok(())),
            (Some("127.0.0.1:8080"), None, Ok(())),
            (Some("[::1]:8080"), None, Ok(())),
            (Some("LOCALHOST:1"), None, Ok(())),
            (Some("tools.example.com"), None, Ok(())),
            // DNS rebinding: a name of the attacker's, pointed at this machine.
            (Some("evil.example"), None, host_refused("evil.example")),
            (
                Some("localhost.evil.example"),
                None,
                host_refused("localhost.evil.example"),
            ),
            (
                Some("tools.example.com.evil.example"),
                None,
                host_refused("tools.example.com.evil.example"),
            ),
            (None, None, Err(Refused::MissingHost)),
            (Some("bad host"), None, Err(Refused::MissingHost)),
            // Allowed origins: default port when none is written, `:*` for any.
            (Some("localhost"), Some("https://app.example.com"), Ok(())),
            (
                Some("localhost"),
                Some("https://app.example.com:443"),
                Ok(()),
            ),
            (Some("localhost"), Some("https://APP.example.com"), Ok(())),
            (
                Some("localhost"),
                Some("https://app.example.com:8443"),
                origin_refused("https://app.example.com:8443"),
            ),
            (
                Some("localhost"),
                Some("http://app.example.com"),
                origin_refused("http://app.example.com"),
            ),
            (Some("localhost"), Some("http://localhost:6274"), Ok(())),
            (Some("localhost"), Some("http://127.0.0.1:6274"), Ok(())),
            (
                Some("localhost"),
                Some("http://127.0.0.1:6275"),
                origin_refused("http://127.0.0.1:6275"),
            ),
            // Pages elsewhere, lookalikes, opaque origins.
            (
                Some("localhost"),
                Some("https://evil.example"),
                origin_refused("https://evil.example"),
            ),
            (
                Some("localhost"),
                Some("https://app.example.com.evil.example"),
                origin_refused("https://app.example.com.evil.example"),
            ),
            (Some("localhost"), Some("null"), origin_refused("null")),
            (
                Some("localhost"),
                Some("file://"),
                origin_refused("file://"),
            ),
            // Our own origin: same host and port as the request.
            (
                Some("127.0.0.1:8080"),
                Some("http://127.0.0.1:8080"),
                Ok(()),
            ),
            (
                Some("127.0.0.1:8080"),
                Some("http://127.0.0.1:9090"),
                origin_refused("http://127.0.0.1:9090"),
            ),
            (
                Some("tools.example.com"),
                Some("https://tools.example.com"),
                Ok(()),
            ),
        ] {
            assert_eq!(
                policy.check(host, origin),
                expected,
                "Host {host:?}, Origin {origin:?}"
            );
        }
    }

    #[test]
    fn bad_allowlist_entries_are_refused_with_a_reason() {
        for entry in [
            "app.example.com",
            "ftp://app.example.com",
            "https://app.example.com/path",
            "https://user@app.example.com",
            "https://app.example.com:443:*",
            "https://",
        ] {
            let err = AllowedOrigin::try_from(entry.to_owned()).unwrap_err();
            assert!(err.contains(entry), "{entry}: {err}");
        }
    }
}
