//! Test certificates (a CA the test makes with rcgen, and leaf certificates for
//! 127.0.0.1 it signs), and an https server on 127.0.0.1 serving JSON documents the test
//! puts there (client metadata documents), counting requests per path.

use axum::extract::{Path, State};
use axum::response::IntoResponse;
use hyper_util::rt::TokioIo;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType, IsCa, KeyPair,
};
use serde_json::Value;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

#[derive(Default)]
struct Documents {
    /// path -> (document, Cache-Control)
    served: HashMap<String, (Value, String)>,
    hits: HashMap<String, usize>,
}

/// A certificate authority made for one test.
pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A leaf certificate for 127.0.0.1 signed by a [`TestCa`].
pub struct Leaf {
    /// The chain (leaf, then the CA), PEM.
    pub chain_pem: String,
    /// The leaf's private key, PEM (PKCS#8).
    pub key_pem: String,
    /// The leaf certificate, DER: what a client sees first in the handshake.
    pub der: Vec<u8>,
    chain_der: Vec<rustls::pki_types::CertificateDer<'static>>,
    key_der: Vec<u8>,
}

impl TestCa {
    pub fn new() -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        // Names of their own: a leaf whose issuer reads like its subject looks
        // self-signed to OpenSSL.
        params
            .distinguished_name
            .push(DnType::CommonName, "mcp-wasm-host test CA");
        Self {
            issuer: CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap(),
        }
    }

    /// The CA certificate, PEM: what a client trusts.
    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A new leaf for 127.0.0.1 with a key of its own.
    pub fn leaf(&self) -> Leaf {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, "127.0.0.1");
        let leaf = params.signed_by(&key, &self.issuer).unwrap();
        Leaf {
            chain_pem: format!("{}{}", leaf.pem(), self.issuer.pem()),
            key_pem: key.serialize_pem(),
            der: leaf.der().to_vec(),
            chain_der: vec![leaf.der().clone(), self.issuer.der().clone()],
            key_der: key.serialize_der(),
        }
    }

    /// A rustls client config that trusts this CA only.
    pub fn client_config(&self) -> rustls::ClientConfig {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.issuer.der().clone()).unwrap();
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth()
    }
}

/// The running server.
pub struct TlsServer {
    pub addr: SocketAddr,
    /// The CA certificate (PEM) that signed the server's certificate.
    pub ca_pem: String,
    documents: Arc<Mutex<Documents>>,
}

impl TlsServer {
    pub async fn start() -> Self {
        let ca = TestCa::new();
        let leaf = ca.leaf();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            leaf.chain_der,
            rustls::pki_types::PrivateKeyDer::Pkcs8(leaf.key_der.into()),
        )
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let documents = Arc::new(Mutex::new(Documents::default()));
        let app = axum::Router::new()
            .route("/{*path}", axum::routing::get(document))
            .with_state(documents.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let (acceptor, app) = (acceptor.clone(), app.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = hyper_util::service::TowerToHyperService::new(app);
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        Self {
            addr,
            ca_pem: ca.pem(),
            documents,
        }
    }

    /// `https://127.0.0.1:PORT/{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("https://{}/{path}", self.addr)
    }

    /// Serves `document` at `path` with `cache_control`.
    pub fn serve(&self, path: &str, document: Value, cache_control: &str) {
        self.documents
            .lock()
            .unwrap()
            .served
            .insert(path.to_owned(), (document, cache_control.to_owned()));
    }

    /// How many requests `path` got.
    pub fn hits(&self, path: &str) -> usize {
        self.documents
            .lock()
            .unwrap()
            .hits
            .get(path)
            .copied()
            .unwrap_or(0)
    }
}

async fn document(
    State(documents): State<Arc<Mutex<Documents>>>,
    Path(path): Path<String>,
) -> axum::response::Response {
    let mut documents = documents.lock().unwrap();
    *documents.hits.entry(path.clone()).or_default() += 1;
    match documents.served.get(&path) {
        Some((document, cache)) => (
            [(axum::http::header::CACHE_CONTROL, cache.clone())],
            axum::Json(document.clone()),
        )
            .into_response(),
        None => axum::http::StatusCode::NOT_FOUND.into_response(),
    }
}
