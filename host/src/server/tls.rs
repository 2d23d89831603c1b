//! TLS on the listener: `[server] tls = { cert, key }` loaded with rustls, reloaded when
//! the files change (a renewed certificate needs no restart), and a listener that does
//! each handshake in a task of its own, so a slow or silent client holds up no one.

use crate::domain::HumanDuration;
use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_util::sync::CancellationToken;

/// How long a client may take to finish its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Handshakes in progress at once; past it, accepting waits.
const MAX_HANDSHAKES: usize = 1024;

/// `[server] tls`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// The certificate chain (PEM), leaf first.
    pub cert: PathBuf,
    /// The private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// How often the two files are checked for a new certificate.
    #[serde(default = "default_reload_interval")]
    pub reload_interval: HumanDuration,
}

fn default_reload_interval() -> HumanDuration {
    HumanDuration(Duration::from_secs(60))
}

impl TlsConfig {
    /// Resolves relative paths against the config's folder and checks the interval.
    pub fn resolve(&mut self, base: &Path) -> Result<(), String> {
        self.cert = base.join(&self.cert);
        self.key = base.join(&self.key);
        let interval = self.reload_interval;
        if interval.0 < Duration::from_secs(1) || interval.0 > Duration::from_secs(86_400) {
            return Err(format!(
                "[server] tls.reload_interval = \"{interval}\": from 1s to 24h"
            ));
        }
        Ok(())
    }
}

/// Why the certificate or key cannot be used. Never holds key material.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file cannot be read.
    #[error("[server] tls.{what} = \"{}\": cannot read it: {source}", path.display())]
    Read {
        /// `cert` or `key`.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The certificate file is not a PEM certificate chain.
    #[error(
        "[server] tls.cert = \"{}\": {problem} (expected a PEM chain, \
         -----BEGIN CERTIFICATE-----, leaf first)", path.display()
    )]
    Certificate {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// The key file holds no private key we can use.
    #[error(
        "[server] tls.key = \"{}\": {problem} (expected a PEM private key: PKCS#8, \
         PKCS#1 RSA or SEC1 EC)", path.display()
    )]
    Key {
        /// The file.
        path: PathBuf,
        /// What is wrong (never the key's content).
        problem: &'static str,
    },
    /// The key is not the certificate's.
    #[error(
        "[server] tls.key = \"{}\" is not the private key of the certificate in \"{}\"",
        key.display(), cert.display()
    )]
    Mismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
    },
}

/// The certificate and key, as loaded, with a digest of the two files' bytes (to notice
/// a change without parsing).
struct Loaded {
    key: Arc<CertifiedKey>,
    digest: [u8; 32],
}

/// Reads and checks the certificate and key at `config`'s paths.
fn load(config: &TlsConfig, provider: &CryptoProvider) -> Result<Loaded, TlsError> {
    let read = |what, path: &Path| {
        std::fs::read(path).map_err(|source| TlsError::Read {
            what,
            path: path.to_owned(),
            source,
        })
    };
    let cert_pem = read("cert", &config.cert)?;
    let key_pem = zeroize::Zeroizing::new(read("key", &config.key)?);
    let digest = files_digest(&cert_pem, &key_pem);
    let key = certified_key(config, &cert_pem, &key_pem, provider)?;
    Ok(Loaded { key, digest })
}

fn files_digest(cert: &[u8], key: &[u8]) -> [u8; 32] {
    let mut hash = Sha256::new();
    hash.update((cert.len() as u64).to_be_bytes());
    hash.update(cert);
    hash.update(key);
    hash.finalize().into()
}

/// Parses the PEM chain and key and checks that they belong together.
fn certified_key(
    config: &TlsConfig,
    cert_pem: &[u8],
    key_pem: &[u8],
    provider: &CryptoProvider,
) -> Result<Arc<CertifiedKey>, TlsError> {
    let certificate = |problem: String| TlsError::Certificate {
        path: config.cert.clone(),
        problem,
    };
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| certificate(format!("not valid PEM: {e}")))?;
    if chain.is_empty() {
        return Err(certificate("no certificate in the file".into()));
    }
    let key_error = |problem| TlsError::Key {
        path: config.key.clone(),
        problem,
    };
    // The PEM parser's own messages may quote the file: they are not passed on.
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => key_error("no private key in the file"),
        _ => key_error("not valid PEM"),
    })?;
    let signing = provider
        .key_provider
        .load_private_key(key)
        .map_err(|_| key_error("a key of a kind or size TLS cannot use"))?;
    let certified = CertifiedKey::new(chain, signing);
    match certified.keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {
            Ok(Arc::new(certified))
        }
        Err(rustls::Error::InconsistentKeys(_)) => Err(TlsError::Mismatch {
            cert: config.cert.clone(),
            key: config.key.clone(),
        }),
        Err(e) => Err(certificate(format!(
            "the first certificate is unusable: {e}"
        ))),
    }
}

/// The current certificate, swapped whole when the files change.
#[derive(Debug)]
struct CurrentCertificate(ArcSwap<CertifiedKey>);

impl ResolvesServerCert for CurrentCertificate {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.load_full())
    }
}

/// The TLS side of the listener: the acceptor and what keeps its certificate fresh.
#[derive(Clone)]
pub struct Tls {
    acceptor: TlsAcceptor,
}

impl Tls {
    /// Loads the certificate and key (an error names the file and what is wrong) and
    /// checks the files every `reload_interval` until `shutdown`: a changed pair that
    /// loads replaces the old one for new connections; one that does not is logged
    /// (once per content) and the old one stays.
    pub fn start(config: &TlsConfig, shutdown: CancellationToken) -> Result<Self, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let loaded = load(config, &provider)?;
        let current = Arc::new(CurrentCertificate(ArcSwap::new(loaded.key)));
        let mut server = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions")
            .with_no_client_auth()
            .with_cert_resolver(current.clone());
        server.alpn_protocols = vec![b"http/1.1".to_vec()];
        tokio::spawn(watch(
            config.clone(),
            provider,
            current,
            loaded.digest,
            shutdown,
        ));
        Ok(Self {
            acceptor: TlsAcceptor::from(Arc::new(server)),
        })
    }
}

/// Loads the certificate and key once, as [`Tls::start`] would, and keeps nothing:
/// `config check` uses it to find a bad pair before a start does.
pub fn check(config: &TlsConfig) -> Result<(), TlsError> {
    load(config, &rustls::crypto::ring::default_provider()).map(drop)
}

/// Checks the certificate files every `reload_interval`.
async fn watch(
    config: TlsConfig,
    provider: Arc<CryptoProvider>,
    current: Arc<CurrentCertificate>,
    mut loaded: [u8; 32],
    shutdown: CancellationToken,
) {
    let mut refused = None;
    loop {
        tokio::select! {
            () = tokio::time::sleep(config.reload_interval.0) => {}
            () = shutdown.cancelled() => return,
        }
        let (cert, key) = match (
            tokio::fs::read(&config.cert).await,
            tokio::fs::read(&config.key).await,
        ) {
            (Ok(cert), Ok(key)) => (cert, zeroize::Zeroizing::new(key)),
            (Err(error), _) | (_, Err(error)) => {
                let digest = Some([0; 32]);
                if refused != digest {
                    tracing::warn!(%error, "cannot read the TLS certificate or key; keeping the current certificate");
                    refused = digest;
                }
                continue;
            }
        };
        let digest = files_digest(&cert, &key);
        if digest == loaded || Some(digest) == refused {
            continue;
        }
        match certified_key(&config, &cert, &key, &provider) {
            Ok(key) => {
                let leaf = hex::encode(Sha256::digest(key.cert[0].as_ref()));
                current.0.store(key);
                loaded = digest;
                refused = None;
                tracing::info!(cert = %config.cert.display(), sha256 = %leaf, "TLS certificate reloaded");
            }
            Err(error) => {
                refused = Some(digest);
                tracing::warn!(%error, "the changed TLS certificate or key was not loaded; keeping the current certificate");
            }
        }
    }
}

/// A listener whose connections have finished their TLS handshake. An accept task
/// takes TCP connections and hands each to a handshake task; finished ones queue here.
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    /// Starts accepting on `tcp` until `shutdown`.
    pub fn new(tcp: TcpListener, tls: Tls, shutdown: CancellationToken) -> std::io::Result<Self> {
        let local = tcp.local_addr()?;
        let (ready_tx, ready) = mpsc::channel(64);
        tokio::spawn(accept(tcp, tls.acceptor, ready_tx, shutdown));
        Ok(Self { ready, local })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(connection) => connection,
            // The accept task ended (shutdown): nothing more will come.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

/// Accepts TCP connections and handshakes each in its own task.
async fn accept(
    tcp: TcpListener,
    acceptor: TlsAcceptor,
    ready: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
    shutdown: CancellationToken,
) {
    let handshakes = Arc::new(Semaphore::new(MAX_HANDSHAKES));
    loop {
        let permit = tokio::select! {
            permit = handshakes.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
            () = shutdown.cancelled() => return,
        };
        let (stream, peer) = tokio::select! {
            accepted = tcp.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    super::listener::pause_after_accept_error(error).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => return,
            () = ready.closed() => return,
        };
        if let Err(error) = stream.set_nodelay(true) {
            tracing::warn!(%error, "could not set TCP_NODELAY");
        }
        let (acceptor, ready) = (acceptor.clone(), ready.clone());
        tokio::spawn(async move {
            let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await;
            drop(permit);
            match handshake {
                Ok(Ok(tls)) => {
                    let _ = ready.send((tls, peer)).await;
                }
                // Scanners and clients that distrust the certificate end here: not
                // worth a warning each.
                Ok(Err(error)) => tracing::debug!(%peer, %error, "TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, KeyPair};

    fn pair() -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec!["127.0.0.1".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        (cert.pem(), key.serialize_pem())
    }

    fn config(dir: &Path, cert: &str, key: &str) -> TlsConfig {
        std::fs::write(dir.join("cert.pem"), cert).unwrap();
        std::fs::write(dir.join("key.pem"), key).unwrap();
        TlsConfig {
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
            reload_interval: default_reload_interval(),
        }
    }

    fn provider() -> CryptoProvider {
        rustls::crypto::ring::default_provider()
    }

    #[test]
    fn a_matching_pair_loads() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = pair();
        let loaded = load(&config(dir.path(), &cert, &key), &provider()).unwrap();
        assert_eq!(loaded.key.cert.len(), 1);
    }

    #[test]
    fn bad_files_are_named_with_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = pair();
        let (other_cert, other_key) = pair();
        let cases = [
            (
                cert.as_str(),
                other_key.as_str(),
                "is not the private key of the certificate",
            ),
            (
                "",
                key.as_str(),
                "tls.cert = \"{dir}/cert.pem\": no certificate in the file",
            ),
            (key.as_str(), key.as_str(), "no certificate in the file"),
            (
                "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n",
                key.as_str(),
                "tls.cert = \"{dir}/cert.pem\": not valid PEM",
            ),
            (
                cert.as_str(),
                "",
                "tls.key = \"{dir}/key.pem\": no private key in the file",
            ),
            (
                cert.as_str(),
                other_cert.as_str(),
                "no private key in the file",
            ),
            (
                cert.as_str(),
                "-----BEGIN PRIVATE KEY-----\nMAA=\n-----END PRIVATE KEY-----\n",
                "a key of a kind or size TLS cannot use",
            ),
        ];
        for (cert, key, expected) in cases {
            let expected = expected.replace("{dir}", &dir.path().display().to_string());
            let error = load(&config(dir.path(), cert, key), &provider())
                .err()
                .unwrap_or_else(|| panic!("{expected}: loaded"))
                .to_string();
            assert!(error.contains(&expected), "{error}\nwanted: {expected}");
            assert!(!error.contains("PRIVATE KEY-"), "{error}");
        }
        let missing = TlsConfig {
            cert: dir.path().join("absent.pem"),
            ..config(dir.path(), &cert, &key)
        };
        let error = load(&missing, &provider()).err().unwrap().to_string();
        assert!(error.contains("absent.pem\": cannot read it"), "{error}");
    }

    #[test]
    fn the_reload_interval_is_bounded() {
        let mut config = TlsConfig {
            cert: "c.pem".into(),
            key: "k.pem".into(),
            reload_interval: HumanDuration(Duration::from_millis(10)),
        };
        let error = config.resolve(Path::new("/etc/host")).unwrap_err();
        assert!(error.contains("tls.reload_interval = \"10ms\""), "{error}");
        assert_eq!(config.cert, Path::new("/etc/host/c.pem"));
    }
}
