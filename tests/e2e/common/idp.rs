//! A minimal identity provider on 127.0.0.1 for `[auth] mode = "external"`: RFC 8414
//! metadata, a JWKS, and tokens it signs (Ed25519) with whatever claims a test wants.
//! It counts how often its keys were fetched.

use axum::extract::State;
use axum::response::IntoResponse;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair as _};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// One signing key: its id, private key and public JWK.
pub struct SigningKey {
    pub kid: String,
    encoding: EncodingKey,
    pub jwk: Value,
}

impl SigningKey {
    /// A fresh Ed25519 key called `kid`.
    pub fn ed25519(kid: &str) -> Self {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        Self {
            kid: kid.to_owned(),
            encoding: EncodingKey::from_ed_der(pkcs8.as_ref()),
            jwk: json!({
                "kty": "OKP", "crv": "Ed25519", "use": "sig", "alg": "EdDSA", "kid": kid,
                "x": B64.encode(pair.public_key().as_ref()),
            }),
        }
    }

    /// A JWT with `claims`, signed with this key.
    pub fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).unwrap()
    }
}

struct Shared {
    issuer: String,
    jwks: Value,
    jwks_fetches: AtomicUsize,
}

/// The running provider.
pub struct Idp {
    pub addr: SocketAddr,
    /// The key its JWKS publishes.
    pub key: SigningKey,
    shared: Arc<Shared>,
}

impl Idp {
    /// Starts a provider whose JWKS publishes one fresh key.
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let issuer = format!("http://{addr}");
        let key = SigningKey::ed25519("idp-key-1");
        let shared = Arc::new(Shared {
            issuer: issuer.clone(),
            jwks: json!({"keys": [key.jwk.clone()]}),
            jwks_fetches: AtomicUsize::new(0),
        });
        let app = axum::Router::new()
            .route(
                "/.well-known/oauth-authorization-server",
                axum::routing::get(metadata),
            )
            .route("/jwks", axum::routing::get(jwks))
            .with_state(shared.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { addr, key, shared }
    }

    /// The issuer identifier (`iss`).
    pub fn issuer(&self) -> String {
        self.shared.issuer.clone()
    }

    /// How often the JWKS was fetched.
    pub fn jwks_fetches(&self) -> usize {
        self.shared.jwks_fetches.load(Ordering::SeqCst)
    }

    /// The `[auth]` section of a host trusting this provider.
    pub fn auth_section(&self) -> String {
        format!(
            "[auth]\nmode = \"external\"\nissuer = \"{}\"\n",
            self.issuer()
        )
    }

    /// Claims of a good token for `resource` with `scope`, valid for 10 minutes.
    pub fn claims(&self, resource: &str, scope: &str) -> Value {
        let now = now();
        json!({
            "iss": self.issuer(), "sub": "alice", "aud": resource, "scope": scope,
            "client_id": "test-client", "iat": now, "exp": now + 600,
        })
    }

    /// A good token for `resource` with `scope`.
    pub fn token(&self, resource: &str, scope: &str) -> String {
        self.key.sign(&self.claims(resource, scope))
    }
}

/// Seconds since the epoch.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

async fn metadata(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    axum::Json(json!({
        "issuer": shared.issuer,
        "jwks_uri": format!("{}/jwks", shared.issuer),
        "authorization_endpoint": format!("{}/authorize", shared.issuer),
        "token_endpoint": format!("{}/token", shared.issuer),
        "response_types_supported": ["code"],
        "code_challenge_methods_supported": ["S256"],
    }))
}

async fn jwks(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    shared.jwks_fetches.fetch_add(1, Ordering::SeqCst);
    axum::Json(shared.jwks.clone())
}
