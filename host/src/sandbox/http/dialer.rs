//! Outgoing connections, for plugins (wasi:http) and for the host's own fetches
//! ([`super::fetch`]): resolve the host ourselves, check every address it resolves to,
//! connect to a checked address (never resolving twice, so DNS rebinding cannot swap
//! the address after the check), speak TLS for https (SNI and certificate checked
//! against the host name), then HTTP/1.1. Redirects are never followed: the plugin sees
//! them and any new request goes through the allowlist.

use crate::sandbox::denials::Denials;
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody};

/// Connect (and TLS handshake) time when the plugin sets none.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Time to resolve a host name.
const DNS_TIMEOUT: Duration = Duration::from_secs(5);

/// Which special addresses a request may reach, from the allowlist entry it matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reach {
    /// Public addresses only.
    Public,
    /// The entry is `localhost`: loopback addresses too.
    Loopback,
    /// The entry names this IP literally: exactly it, whatever its class.
    Literal(IpAddr),
    /// Public addresses, and these (which the operator named) whatever their class.
    Also(Arc<[IpAddr]>),
    /// Any address: a URL the operator configured (an identity provider on the
    /// internal network, say), not one a plugin or a client chose.
    Anywhere,
}

/// Why an address is not reachable for plugins by default, if it is not.
pub fn special(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => special_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return special_v4(v4);
            }
            let first = v6.segments()[0];
            if v6.is_loopback() {
                Some("loopback")
            } else if v6.is_unspecified() {
                Some("unspecified")
            } else if v6.is_multicast() {
                Some("multicast")
            } else if first & 0xffc0 == 0xfe80 {
                Some("link-local")
            } else if first & 0xfe00 == 0xfc00 {
                Some("private (unique local)")
            } else if first & 0xffc0 == 0xfec0 {
                Some("private (site-local)")
            } else {
                None
            }
        }
    }
}

fn special_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, ..] = ip.octets();
    if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_private() {
        Some("private")
    } else if ip.is_link_local() {
        Some("link-local (cloud metadata lives here)")
    } else if ip.is_unspecified() || a == 0 {
        Some("unspecified")
    } else if ip.is_multicast() || ip.is_broadcast() {
        Some("multicast or broadcast")
    } else if a == 100 && (64..128).contains(&b) {
        Some("shared address space (carrier NAT)")
    } else {
        None
    }
}

/// Checks the addresses `host` resolved to: every one must be reachable under
/// `reach`, or the request is refused (a name that resolves to a blocked address is
/// blocked, whatever else it resolves to).
pub fn check_addresses(reach: &Reach, addrs: &[IpAddr]) -> Result<(), (IpAddr, &'static str)> {
    for &ip in addrs {
        let allowed = match (reach, special(ip)) {
            (_, None) | (Reach::Anywhere, _) => true,
            (Reach::Literal(named), Some(_)) => canonical(*named) == canonical(ip),
            (Reach::Also(named), Some(_)) => named.iter().any(|n| canonical(*n) == canonical(ip)),
            (Reach::Loopback, Some("loopback")) => true,
            _ => false,
        };
        if !allowed {
            return Err((ip, special(ip).unwrap_or("not the address named")));
        }
    }
    Ok(())
}

/// IPv4-mapped IPv6 addresses compare as their IPv4 form.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// A byte stream a connection runs on.
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// TLS for outgoing connections: the web PKI roots.
pub fn tls_config() -> Arc<rustls::ClientConfig> {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let roots = rustls::RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.into(),
            };
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map(|builder| builder.with_root_certificates(roots).with_no_client_auth());
            match config {
                Ok(config) => Arc::new(config),
                // The ring provider supports the default versions; keep a config that
                // fails every handshake rather than panic if that ever changes.
                Err(_) => Arc::new(
                    rustls::ClientConfig::builder_with_provider(Arc::new(
                        rustls::crypto::ring::default_provider(),
                    ))
                    .with_protocol_versions(&[])
                    .expect("an empty version list is accepted")
                    .with_root_certificates(rustls::RootCertStore::empty())
                    .with_no_client_auth(),
                ),
            }
        })
        .clone()
}

/// What the wasi:http hook returns: the response and the connection's I/O task.
pub type Sent = (
    http::Response<WasiBody>,
    Box<dyn Future<Output = Result<(), HttpError>> + Send>,
);

/// An open connection, plain or TLS.
pub type Connection = Box<dyn Io>;

/// Why a connection was not made.
#[derive(Debug)]
pub enum DialError {
    /// The host resolved to an address `reach` does not allow.
    Blocked {
        /// The address.
        ip: IpAddr,
        /// Its class ("private", "loopback", ...).
        why: &'static str,
    },
    /// Anything else, as wasi:http names it.
    Http(HttpError),
}

impl From<HttpError> for DialError {
    fn from(error: HttpError) -> Self {
        DialError::Http(error)
    }
}

/// Resolves `uri`'s host, checks every address against `reach`, connects to a checked
/// one and, for https, speaks TLS with `tls`.
pub async fn dial(
    uri: &http::Uri,
    reach: &Reach,
    connect_timeout: Duration,
    tls: Arc<rustls::ClientConfig>,
) -> Result<Connection, DialError> {
    let https = uri.scheme_str() == Some("https");
    let host = uri.host().ok_or(HttpError::HttpRequestUriInvalid)?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    let addrs = resolve(host, port).await?;
    let ips: Vec<IpAddr> = addrs.iter().map(SocketAddr::ip).collect();
    if let Err((ip, why)) = check_addresses(reach, &ips) {
        return Err(DialError::Blocked { ip, why });
    }
    let stream = connect(&addrs, connect_timeout).await?;
    if !https {
        return Ok(Box::new(stream));
    }
    let name = rustls::pki_types::ServerName::try_from(host.to_owned())
        .map_err(|_| HttpError::HttpRequestUriInvalid)?;
    let tls = tokio_rustls::TlsConnector::from(tls);
    let stream = tokio::time::timeout(connect_timeout, tls.connect(name, stream))
        .await
        .map_err(|_| HttpError::ConnectionTimeout)?
        .map_err(HttpError::Tls)?;
    Ok(Box::new(stream))
}

/// Sends `request` (already matched against the allowlist with `reach`) on a
/// connection of its own, which holds `permit` while it is open.
pub async fn send(
    mut request: http::Request<WasiBody>,
    options: Option<RequestOptions>,
    reach: Reach,
    denials: &Denials,
    permit: tokio::sync::OwnedSemaphorePermit,
) -> Result<Sent, HttpError> {
    let uri = request.uri().clone();
    let connect_timeout = options
        .and_then(|o| o.connect_timeout)
        .unwrap_or(DEFAULT_CONNECT_TIMEOUT);
    let io = match dial(&uri, &reach, connect_timeout, tls_config()).await {
        Ok(io) => io,
        Err(DialError::Blocked { ip, why }) => {
            let https = uri.scheme_str() == Some("https");
            let host = uri.host().unwrap_or("?");
            let host = host.trim_start_matches('[').trim_end_matches(']');
            let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
            denials.refuse(
                "http",
                format_args!("{}://{host}:{port}", uri.scheme_str().unwrap_or("?")),
                &format!("outgoing request: the host resolves to a blocked address ({ip}, {why})"),
            );
            return Err(HttpError::DestinationIpProhibited);
        }
        Err(DialError::Http(error)) => return Err(error),
    };
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(HttpError::Hyper)?;
    // The permit (one of the call's connections) is returned when the connection ends.
    let connection = tokio::spawn(async move {
        let _permit = permit;
        connection.await
    });

    // On the wire the request line carries the path only (origin form).
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    *request.uri_mut() = path.parse().map_err(|_| HttpError::HttpRequestUriInvalid)?;
    let response = sender
        .send_request(request)
        .await
        .map_err(HttpError::Hyper)?;
    let response = response.map(|body| body.map_err(HttpError::Hyper).boxed_unsync());
    let io = async move {
        match connection.await {
            Ok(result) => result.map_err(HttpError::Hyper),
            Err(_) => Err(HttpError::ConnectionTerminated),
        }
    };
    Ok((response, Box::new(io)))
}

/// The addresses of `host` (an IP literal resolves to itself).
async fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>, HttpError> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let dns_error = |rcode: &str| HttpError::DnsError {
        rcode: Some(rcode.to_owned()),
        info_code: None,
    };
    let addrs: Vec<SocketAddr> =
        tokio::time::timeout(DNS_TIMEOUT, tokio::net::lookup_host((host, port)))
            .await
            .map_err(|_| HttpError::DnsTimeout)?
            .map_err(|_| dns_error("name not resolved"))?
            .collect();
    if addrs.is_empty() {
        return Err(dns_error("no addresses"));
    }
    Ok(addrs)
}

/// Connects to the first address that answers.
async fn connect(addrs: &[SocketAddr], timeout: Duration) -> Result<TcpStream, HttpError> {
    let mut last = HttpError::ConnectionRefused;
    for addr in addrs {
        match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => {
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Ok(Err(e)) => last = HttpError::Connect(e),
            Err(_) => last = HttpError::ConnectionTimeout,
        }
    }
    Err(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn special_addresses() {
        for (addr, class) in [
            ("127.0.0.1", Some("loopback")),
            ("127.8.9.10", Some("loopback")),
            ("10.1.2.3", Some("private")),
            ("172.16.0.1", Some("private")),
            ("172.31.255.255", Some("private")),
            ("192.168.1.1", Some("private")),
            (
                "169.254.169.254",
                Some("link-local (cloud metadata lives here)"),
            ),
            ("0.0.0.0", Some("unspecified")),
            ("0.1.2.3", Some("unspecified")),
            ("224.0.0.1", Some("multicast or broadcast")),
            ("255.255.255.255", Some("multicast or broadcast")),
            ("100.64.0.1", Some("shared address space (carrier NAT)")),
            ("::1", Some("loopback")),
            ("::", Some("unspecified")),
            ("fe80::1", Some("link-local")),
            ("fd00::1", Some("private (unique local)")),
            ("ff02::1", Some("multicast")),
            ("::ffff:127.0.0.1", Some("loopback")),
            (
                "::ffff:169.254.169.254",
                Some("link-local (cloud metadata lives here)"),
            ),
            ("::ffff:10.0.0.1", Some("private")),
            ("172.32.0.1", None),
            ("100.128.0.1", None),
            ("8.8.8.8", None),
            ("::ffff:8.8.8.8", None),
            ("2001:4860:4860::8888", None),
        ] {
            assert_eq!(special(ip(addr)), class, "{addr}");
        }
    }

    #[test]
    fn resolved_addresses_are_checked_against_the_grant() {
        let public = [ip("93.184.216.34")];
        assert!(check_addresses(&Reach::Public, &public).is_ok());
        // A name that resolves to loopback or metadata is blocked (DNS rebinding)...
        assert_eq!(
            check_addresses(&Reach::Public, &[ip("127.0.0.1")]),
            Err((ip("127.0.0.1"), "loopback"))
        );
        assert!(
            check_addresses(
                &Reach::Public,
                &[ip("93.184.216.34"), ip("169.254.169.254")]
            )
            .is_err()
        );
        assert!(check_addresses(&Reach::Public, &[ip("::ffff:127.0.0.1")]).is_err());
        // ...unless the entry is `localhost` (loopback only) or names the IP.
        assert!(check_addresses(&Reach::Loopback, &[ip("127.0.0.1"), ip("::1")]).is_ok());
        assert!(check_addresses(&Reach::Loopback, &[ip("10.0.0.1")]).is_err());
        let literal = Reach::Literal(ip("169.254.169.254"));
        assert!(check_addresses(&literal, &[ip("169.254.169.254")]).is_ok());
        assert!(check_addresses(&literal, &[ip("::ffff:169.254.169.254")]).is_ok());
        assert!(check_addresses(&literal, &[ip("169.254.169.253")]).is_err());
        // Named by the operator: public, plus exactly the addresses listed.
        let also = Reach::Also(vec![ip("127.0.0.1")].into());
        assert!(check_addresses(&also, &[ip("127.0.0.1"), ip("93.184.216.34")]).is_ok());
        assert!(check_addresses(&also, &[ip("127.0.0.2")]).is_err());
        assert!(check_addresses(&also, &[ip("169.254.169.254")]).is_err());
        assert!(check_addresses(&Reach::Anywhere, &[ip("10.0.0.1"), ip("::1")]).is_ok());
    }
}
