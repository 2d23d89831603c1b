//! An https server on 127.0.0.1 whose CA the test makes (rcgen), serving JSON documents
//! the test puts there (client metadata documents) and counting requests per path.

use axum::extract::{Path, State};
use axum::response::IntoResponse;
use hyper_util::rt::TokioIo;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
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

/// The running server.
pub struct TlsServer {
    pub addr: SocketAddr,
    /// The CA certificate (PEM) that signed the server's certificate.
    pub ca_pem: String,
    documents: Arc<Mutex<Documents>>,
}

impl TlsServer {
    pub async fn start() -> Self {
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
        let leaf_key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(vec!["127.0.0.1".to_owned()])
            .unwrap()
            .signed_by(&leaf_key, &ca)
            .unwrap();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone(), ca.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
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
