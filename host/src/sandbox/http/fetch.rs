//! GETs the host makes for itself (an identity provider's keys and metadata, a client's
//! metadata document), through the same dialer plugins use: the addresses a name
//! resolves to are checked against a [`Reach`], the connection goes to a checked one,
//! and https is verified. Each fetch has a deadline and a size cap; redirects are not
//! followed.

use super::dialer::{self, DialError, Reach};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::rt::TokioIo;
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;

/// How a [`Fetcher`] reaches out.
#[derive(Clone)]
pub struct Fetcher {
    reach: Reach,
    tls: Arc<rustls::ClientConfig>,
    timeout: Duration,
    max_bytes: usize,
    /// Whether plain `http://` is allowed (only for operator-configured loopback URLs).
    allow_http: bool,
}

/// What a GET brought back.
#[derive(Debug)]
pub struct Fetched {
    /// The status code.
    pub status: http::StatusCode,
    /// The response headers.
    pub headers: http::HeaderMap,
    /// The body (at most the fetcher's cap).
    pub body: Bytes,
}

/// Why a GET failed.
#[derive(Debug, Error)]
pub enum FetchError {
    /// Not an absolute http(s) URL, or `http` where only https is allowed.
    #[error("`{0}` is not an https URL")]
    Url(String),
    /// The name resolves to an address the fetcher may not reach.
    #[error("{url} resolves to a blocked address ({ip}, {why})")]
    Blocked {
        /// The URL.
        url: String,
        /// The address.
        ip: std::net::IpAddr,
        /// Its class.
        why: &'static str,
    },
    /// Connecting, TLS or HTTP failed.
    #[error("{url}: {reason}")]
    Transport {
        /// The URL.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// The whole exchange took longer than the fetcher's deadline.
    #[error("{0}: no answer within the deadline")]
    Timeout(String),
    /// The body is larger than the cap.
    #[error("{url}: the response is larger than {cap} bytes")]
    TooLarge {
        /// The URL.
        url: String,
        /// The cap.
        cap: usize,
    },
}

impl Fetcher {
    /// A fetcher reaching `reach`, trusting `tls`'s roots, giving up after `timeout`
    /// and reading at most `max_bytes` of a body. Only https unless [`Self::allow_http`].
    pub fn new(
        reach: Reach,
        tls: Arc<rustls::ClientConfig>,
        timeout: Duration,
        max_bytes: usize,
    ) -> Self {
        Self {
            reach,
            tls,
            timeout,
            max_bytes,
            allow_http: false,
        }
    }

    /// Also allows plain `http://` URLs.
    pub fn allow_http(mut self) -> Self {
        self.allow_http = true;
        self
    }

    /// GETs `url`, with `accept` as the Accept header.
    pub async fn get(&self, url: &str, accept: &str) -> Result<Fetched, FetchError> {
        tokio::time::timeout(self.timeout, self.get_inner(url, accept))
            .await
            .unwrap_or_else(|_| Err(FetchError::Timeout(url.to_owned())))
    }

    async fn get_inner(&self, url: &str, accept: &str) -> Result<Fetched, FetchError> {
        let uri: http::Uri = url.parse().map_err(|_| FetchError::Url(url.to_owned()))?;
        let scheme_ok = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => self.allow_http,
            _ => false,
        };
        if !scheme_ok || uri.host().is_none() {
            return Err(FetchError::Url(url.to_owned()));
        }
        let transport = |reason: String| FetchError::Transport {
            url: url.to_owned(),
            reason,
        };
        let io = dialer::dial(&uri, &self.reach, self.timeout, self.tls.clone())
            .await
            .map_err(|error| match error {
                DialError::Blocked { ip, why } => FetchError::Blocked {
                    url: url.to_owned(),
                    ip,
                    why,
                },
                DialError::Http(error) => transport(format!("{error:?}")),
            })?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
            .await
            .map_err(|e| transport(e.to_string()))?;
        tokio::spawn(connection);
        let authority = uri.authority().map(|a| a.as_str().to_owned());
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        let request = http::Request::get(path)
            .header(http::header::HOST, authority.unwrap_or_default())
            .header(http::header::ACCEPT, accept)
            .header(
                http::header::USER_AGENT,
                concat!("mcp-wasm-host/", env!("CARGO_PKG_VERSION")),
            )
            .body(Empty::<Bytes>::new())
            .map_err(|e| transport(e.to_string()))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| transport(e.to_string()))?;
        let (parts, body) = response.into_parts();
        let body = Limited::new(body, self.max_bytes)
            .collect()
            .await
            .map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    FetchError::TooLarge {
                        url: url.to_owned(),
                        cap: self.max_bytes,
                    }
                } else {
                    transport(e.to_string())
                }
            })?
            .to_bytes();
        Ok(Fetched {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }
}

/// TLS roots for the host's own fetches: the web PKI, plus the certificates in
/// `extra_pem` (a CA the operator trusts explicitly, e.g. an internal one).
pub fn tls_with_extra_roots(extra_pem: &[u8]) -> Result<Arc<rustls::ClientConfig>, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.into(),
    };
    let mut added = 0;
    for cert in CertificateDer::pem_slice_iter(extra_pem) {
        let cert = cert.map_err(|e| format!("not a PEM certificate: {e}"))?;
        roots
            .add(cert)
            .map_err(|e| format!("not a usable CA certificate: {e}"))?;
        added += 1;
    }
    if added == 0 {
        return Err("no PEM certificate in it".to_owned());
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}
