//! The host as an OAuth 2.1 protected resource: who may call `/mcp`. A request carries
//! `Authorization: Bearer <JWT>`; [`Auth::authenticate`] verifies it ([`token`])
//! against the issuer's keys ([`keys`]) and turns it into the request's
//! [`Caller`]; a refusal says what the client must do ([`challenge`]). The protected
//! resource metadata (RFC 9728) tells clients where to get a token.
//!
//! The resource URI (the audience tokens must carry) is `public_url` + `/mcp`, or the
//! listener's own address when no `public_url` is set.

pub mod cache;
pub mod challenge;
pub mod config;
pub mod embedded;
pub mod keys;
pub mod token;

use crate::domain::Scope;
use crate::pipeline::context::Caller;
use crate::sandbox::http::dialer::{self, Reach};
use crate::sandbox::http::fetch::{Fetcher, tls_with_extra_roots};
use crate::secrets::kek::{Kek, KekError};
use config::{AuthConfig, AuthMode, is_loopback};
use embedded::AuthorizationServer;
use embedded::signing::KeyRing;
use embedded::store::Store;
use keys::{KeySet, KeySource};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;
use token::{TokenError, Verifier};

/// How long a fetch from the identity provider may take.
const IDP_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest metadata document or key set read from the identity provider.
const IDP_MAX_BYTES: usize = 256 * 1024;

/// Why authentication could not be set up.
#[derive(Debug, Error)]
pub enum AuthError {
    /// `trusted_ca` could not be read or holds no certificate.
    #[error("[auth] trusted_ca {path}: {reason}")]
    TrustedCa {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// The embedded server needs the KEK to seal its signing keys.
    #[error(
        "[auth] mode = \"embedded\" keeps its signing key sealed under the KEK, which is \
         not available: {0} (or set [auth] mode = \"external\" or \"off\")"
    )]
    Kek(KekError),
    /// The embedded server's database failed.
    #[error("[auth.embedded] {0}")]
    Store(#[from] embedded::store::StoreError),
    /// The client metadata settings cannot be used.
    #[error("[auth.embedded.client_metadata] {0}")]
    ClientMetadata(String),
    /// The embedded server's keys could not be made or read.
    #[error("[auth.embedded] {0}")]
    Keys(#[from] embedded::signing::KeyError),
    /// The issuer's metadata could not be found or does not name the issuer.
    #[error(
        "[auth] cannot discover the identity provider's keys from {issuer}: {reason}; set \
         jwks_url to name them directly"
    )]
    Discovery {
        /// The configured issuer.
        issuer: String,
        /// What went wrong at each address tried.
        reason: String,
    },
}

/// Why a request was refused before it reached the MCP layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No `Authorization` header (HTTP 401, no error code: the client should get a
    /// token).
    NoToken,
    /// A token in the query string (HTTP 400): refused, never read.
    TokenInQuery,
    /// An `Authorization` header that is not `Bearer <token>` (HTTP 401).
    NotBearer,
    /// A bearer token that does not verify (HTTP 401).
    Invalid(TokenError),
    /// A valid token without the scopes the operation needs (HTTP 403).
    InsufficientScope(Vec<Scope>),
}

impl Refusal {
    /// The HTTP status of the answer.
    pub fn status(&self) -> http::StatusCode {
        match self {
            Refusal::TokenInQuery => http::StatusCode::BAD_REQUEST,
            Refusal::InsufficientScope(_) => http::StatusCode::FORBIDDEN,
            Refusal::NoToken | Refusal::NotBearer | Refusal::Invalid(_) => {
                http::StatusCode::UNAUTHORIZED
            }
        }
    }

    /// What was wrong, for the record and the answer's body.
    pub fn reason(&self) -> String {
        match self {
            Refusal::NoToken => "no access token".to_owned(),
            Refusal::TokenInQuery => {
                "access tokens are accepted only in the Authorization header, never in the \
                 query string"
                    .to_owned()
            }
            Refusal::NotBearer => "the Authorization header is not `Bearer <token>`".to_owned(),
            Refusal::Invalid(error) => error.to_string(),
            Refusal::InsufficientScope(needed) => format!(
                "the token lacks the scope this operation needs ({})",
                needed
                    .iter()
                    .map(Scope::as_str)
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
        }
    }
}

/// Authentication of `/mcp` requests, as configured.
pub struct Auth {
    mode: AuthMode,
    /// The resource URI: the audience tokens must carry.
    resource: String,
    /// Where the protected resource metadata is served.
    metadata_url: String,
    /// Issuers whose tokens we accept (the first is the one we name).
    authorization_servers: Vec<String>,
    /// What the metadata and 401 challenges advertise.
    scopes_supported: Vec<Scope>,
    verifier: Option<Verifier>,
    /// The embedded authorization server, in `embedded` mode.
    server: Option<Arc<AuthorizationServer>>,
    /// A one-time code for creating the first user, when there is none.
    setup_code: Option<String>,
}

/// The embedded server's keys, as the verifier reads them.
struct EmbeddedKeys(Arc<AuthorizationServer>);

impl keys::KeyLoader for EmbeddedKeys {
    fn load(&self) -> futures::future::BoxFuture<'_, Result<Vec<jsonwebtoken::jwk::Jwk>, String>> {
        Box::pin(self.0.published_keys())
    }
}

impl Auth {
    /// Sets authentication up for a server reachable at `base` (scheme, host and port,
    /// no path): `tool_scopes` are every scope a tool needs; `kek` loads the key the
    /// embedded server seals its signing keys with.
    pub async fn build(
        config: &AuthConfig,
        base: &url::Url,
        tool_scopes: Vec<Scope>,
        kek: impl FnOnce() -> Result<Kek, KekError>,
    ) -> Result<Self, AuthError> {
        let scopes = config
            .scopes_supported
            .clone()
            .unwrap_or_else(|| tool_scopes.clone());
        match config.mode {
            AuthMode::Off => Ok(Self::off(base)),
            AuthMode::Embedded => {
                let kek = kek().map_err(AuthError::Kek)?;
                let issuer = base.as_str().trim_end_matches('/').to_owned();
                let resource = resource_of(base);
                let store = Store::open(&config.embedded.database).await?;
                let keys = KeyRing::open(store.clone(), kek, embedded::flow::now()).await?;
                let documents = embedded::client_metadata::ClientMetadata::new(
                    config.embedded.client_metadata.clone(),
                )
                .map_err(AuthError::ClientMetadata)?;
                let server = Arc::new(
                    AuthorizationServer::new(
                        &config.embedded,
                        issuer.clone(),
                        resource.clone(),
                        store,
                        keys,
                        tool_scopes,
                        documents,
                    )
                    .await?,
                );
                let setup_code = if server.needs_setup().await {
                    Some(server.new_setup_code().await?)
                } else {
                    None
                };
                let key_set =
                    KeySet::new(KeySource::Loader(Arc::new(EmbeddedKeys(server.clone()))));
                let _ = key_set.refetch().await;
                let verifier = Verifier::new(issuer.clone(), &resource, config.leeway(), key_set);
                let mut auth = Self::checking(AuthMode::Embedded, base, verifier, issuer, scopes);
                auth.server = Some(server);
                auth.setup_code = setup_code;
                Ok(auth)
            }
            AuthMode::External => {
                let issuer = config.issuer.clone().unwrap_or_default();
                let fetcher = idp_fetcher(config)?;
                let jwks_url = match &config.jwks_url {
                    Some(url) => url.clone(),
                    None => discover_jwks(&fetcher, &issuer).await?,
                };
                let keys = KeySet::new(KeySource::Remote {
                    url: jwks_url,
                    fetcher,
                });
                // Fetch now, so a wrong URL shows at start (a failure is logged and
                // the fetch is tried again when a token needs it).
                let _ = keys.refetch().await;
                let resource = resource_of(base);
                let audience = config.audience.clone().unwrap_or(resource);
                Ok(Self::checking(
                    AuthMode::External,
                    base,
                    Verifier::new(issuer.clone(), &audience, config.leeway(), keys),
                    issuer,
                    scopes,
                ))
            }
        }
    }

    /// No authentication, for a server at `base`.
    pub fn off(base: &url::Url) -> Self {
        Self {
            mode: AuthMode::Off,
            resource: resource_of(base),
            metadata_url: metadata_url_of(base),
            authorization_servers: Vec::new(),
            scopes_supported: Vec::new(),
            verifier: None,
            server: None,
            setup_code: None,
        }
    }

    /// Tokens from `issuer` checked by `verifier`, for a server at `base` that
    /// advertises `scopes`.
    pub fn checking(
        mode: AuthMode,
        base: &url::Url,
        verifier: Verifier,
        issuer: String,
        scopes: Vec<Scope>,
    ) -> Self {
        Self {
            mode,
            resource: resource_of(base),
            metadata_url: metadata_url_of(base),
            authorization_servers: vec![issuer],
            scopes_supported: scopes,
            verifier: Some(verifier),
            server: None,
            setup_code: None,
        }
    }

    /// The embedded authorization server, in `embedded` mode.
    pub fn authorization_server(&self) -> Option<&Arc<AuthorizationServer>> {
        self.server.as_ref()
    }

    /// The one-time code for creating the first user, when no user exists yet.
    pub fn setup_code(&self) -> Option<&str> {
        self.setup_code.as_deref()
    }

    /// Whether requests are let through unauthenticated.
    pub fn is_off(&self) -> bool {
        self.mode == AuthMode::Off
    }

    /// The resource URI tokens must name.
    pub fn resource(&self) -> &str {
        &self.resource
    }

    /// Who sent a request with this `Authorization` header and query string.
    pub async fn authenticate(
        &self,
        authorization: Option<&str>,
        query: Option<&str>,
    ) -> Result<Caller, Refusal> {
        let Some(verifier) = &self.verifier else {
            return Ok(Caller::Anonymous);
        };
        if query.is_some_and(carries_token) {
            return Err(Refusal::TokenInQuery);
        }
        let header = authorization.ok_or(Refusal::NoToken)?;
        let token = bearer_token(header).ok_or(Refusal::NotBearer)?;
        verifier
            .verify(token)
            .await
            .map(Caller::User)
            .map_err(Refusal::Invalid)
    }

    /// The `WWW-Authenticate` value for `refusal`.
    pub fn challenge(&self, refusal: &Refusal) -> String {
        match refusal {
            Refusal::NoToken => {
                challenge::unauthorized(&self.metadata_url, &self.scopes_supported, None)
            }
            Refusal::TokenInQuery | Refusal::NotBearer => challenge::unauthorized(
                &self.metadata_url,
                &self.scopes_supported,
                Some(("invalid_request", &refusal.reason())),
            ),
            Refusal::Invalid(error) => challenge::unauthorized(
                &self.metadata_url,
                &self.scopes_supported,
                Some(("invalid_token", &error.to_string())),
            ),
            Refusal::InsufficientScope(needed) => {
                challenge::insufficient_scope(&self.metadata_url, needed)
            }
        }
    }

    /// The protected resource metadata (RFC 9728), `None` when authentication is off.
    pub fn metadata(&self) -> Option<serde_json::Value> {
        if self.is_off() {
            return None;
        }
        Some(json!({
            "resource": self.resource,
            "authorization_servers": self.authorization_servers,
            "scopes_supported": self.scopes_supported,
            "bearer_methods_supported": ["header"],
            "resource_name": "mcp-wasm-host",
        }))
    }
}

/// The resource URI of a server at `base`: the audience its tokens carry.
pub fn resource_of(base: &url::Url) -> String {
    format!("{}/mcp", base.as_str().trim_end_matches('/'))
}

/// Where a server at `base` serves its protected resource metadata.
fn metadata_url_of(base: &url::Url) -> String {
    format!(
        "{}/.well-known/oauth-protected-resource/mcp",
        base.as_str().trim_end_matches('/')
    )
}

/// `Bearer <token>` (the scheme is case-insensitive); `None` for anything else.
fn bearer_token(header: &str) -> Option<&str> {
    let (scheme, token) = header.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty() && !token.contains(' '))
        .then_some(token)
}

/// Whether a query string carries an access token (RFC 6750 §2.3's `access_token`).
fn carries_token(query: &str) -> bool {
    query
        .split('&')
        .any(|pair| pair.split('=').next() == Some("access_token"))
}

/// The client for the identity provider: any address (the operator named it), its CA
/// if one is configured, plain http only for a loopback issuer.
fn idp_fetcher(config: &AuthConfig) -> Result<Fetcher, AuthError> {
    let tls = match &config.trusted_ca {
        None => dialer::tls_config(),
        Some(path) => {
            let shown = path.display().to_string();
            let pem = std::fs::read(path).map_err(|e| AuthError::TrustedCa {
                path: shown.clone(),
                reason: e.to_string(),
            })?;
            tls_with_extra_roots(&pem).map_err(|reason| AuthError::TrustedCa {
                path: shown,
                reason,
            })?
        }
    };
    let fetcher = Fetcher::new(Reach::Anywhere, tls, IDP_TIMEOUT, IDP_MAX_BYTES);
    let loopback = config
        .issuer
        .as_deref()
        .and_then(|i| url::Url::parse(i).ok())
        .is_some_and(|u| is_loopback(&u));
    Ok(if loopback {
        fetcher.allow_http()
    } else {
        fetcher
    })
}

/// The `jwks_uri` of `issuer`'s metadata, tried at RFC 8414's address, then OpenID
/// Connect's (path inserted, then appended). The metadata must name `issuer` exactly.
async fn discover_jwks(fetcher: &Fetcher, issuer: &str) -> Result<String, AuthError> {
    let failed = |reason: String| AuthError::Discovery {
        issuer: issuer.to_owned(),
        reason,
    };
    let url = url::Url::parse(issuer).map_err(|e| failed(e.to_string()))?;
    let origin = url.origin().ascii_serialization();
    let path = url.path().trim_end_matches('/');
    let candidates = [
        format!("{origin}/.well-known/oauth-authorization-server{path}"),
        format!("{origin}/.well-known/openid-configuration{path}"),
        format!("{origin}{path}/.well-known/openid-configuration"),
    ];
    let mut tried = Vec::new();
    for candidate in candidates {
        let fetched = match fetcher.get(&candidate, "application/json").await {
            Ok(fetched) if fetched.status.is_success() => fetched,
            Ok(fetched) => {
                tried.push(format!("{candidate}: {}", fetched.status));
                continue;
            }
            Err(error) => {
                tried.push(error.to_string());
                continue;
            }
        };
        let metadata: serde_json::Value = match serde_json::from_slice(&fetched.body) {
            Ok(metadata) => metadata,
            Err(e) => {
                tried.push(format!("{candidate}: not JSON ({e})"));
                continue;
            }
        };
        if metadata["issuer"].as_str() != Some(issuer) {
            return Err(failed(format!(
                "{candidate} names issuer {}, not {issuer}",
                metadata["issuer"]
            )));
        }
        return metadata["jwks_uri"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| failed(format!("{candidate} has no jwks_uri")));
    }
    Err(failed(tried.join("; ")))
}

#[cfg(test)]
mod tests;
