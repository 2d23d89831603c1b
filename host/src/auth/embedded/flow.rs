//! What each endpoint of the authorization server checks and does, apart from HTTP:
//! metadata (RFC 8414), registration (RFC 7591), the authorization request (OAuth 2.1
//! §4.1 with PKCE S256, RFC 8707 `resource`, RFC 9207 `iss` in the response), login,
//! and the token endpoint (code exchange, refresh rotation).

use super::client_metadata::{ClientMetadata, is_document_url};
use super::config::EmbeddedConfig;
use super::signing::{KeyRing, random_token};
use super::store::{ClientRecord, CodeGrant, Refresh, RefreshGrant, Store, UserRecord};
use crate::auth::token::canonical;
use crate::domain::Scope;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::time::Duration;
use thiserror::Error;

/// How long an authorization code lives.
pub const CODE_TTL: Duration = Duration::from_secs(60);
/// How long the first-user setup code printed at start lives.
pub const SETUP_CODE_TTL: Duration = Duration::from_secs(24 * 3600);
/// Redirect URIs one client may register.
const MAX_REDIRECT_URIS: usize = 10;
/// Longest redirect URI, client name, `state`.
const MAX_URI: usize = 512;
const MAX_NAME: usize = 128;
const MAX_STATE: usize = 512;

/// Seconds since the epoch.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// An OAuth error answered as JSON (`error`, `error_description`) with a status.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[error("{error}: {description}")]
pub struct OAuthError {
    /// The HTTP status.
    pub status: u16,
    /// The RFC's error code.
    pub error: &'static str,
    /// What was wrong, for a person.
    pub description: String,
}

impl OAuthError {
    fn new(status: u16, error: &'static str, description: impl Into<String>) -> Self {
        Self {
            status,
            error,
            description: description.into(),
        }
    }

    /// The JSON body.
    pub fn body(&self) -> Value {
        json!({"error": self.error, "error_description": self.description})
    }
}

/// Why an authorization request was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthorizeError {
    /// The client or redirect URI cannot be trusted: shown on a page, never redirected.
    Show(String),
    /// Sent back to the client's (trusted) redirect URI, with `error`, `state`, `iss`.
    Redirect(String),
}

/// The parameters of an authorization request.
#[derive(Debug, Clone, Default)]
pub struct AuthorizeParams {
    /// `response_type`.
    pub response_type: Option<String>,
    /// `client_id`.
    pub client_id: Option<String>,
    /// `redirect_uri`.
    pub redirect_uri: Option<String>,
    /// `code_challenge`.
    pub code_challenge: Option<String>,
    /// `code_challenge_method`.
    pub code_challenge_method: Option<String>,
    /// `state`.
    pub state: Option<String>,
    /// `resource`.
    pub resource: Option<String>,
    /// `scope`.
    pub scope: Option<String>,
}

impl AuthorizeParams {
    /// The parameters from a query string's or form's pairs.
    pub fn from_pairs(pairs: &HashMap<String, String>) -> Self {
        let get = |k: &str| pairs.get(k).cloned();
        Self {
            response_type: get("response_type"),
            client_id: get("client_id"),
            redirect_uri: get("redirect_uri"),
            code_challenge: get("code_challenge"),
            code_challenge_method: get("code_challenge_method"),
            state: get("state"),
            resource: get("resource"),
            scope: get("scope"),
        }
    }

    /// The parameters as pairs (for the form's hidden fields).
    pub fn pairs(&self) -> Vec<(&'static str, &str)> {
        [
            ("response_type", &self.response_type),
            ("client_id", &self.client_id),
            ("redirect_uri", &self.redirect_uri),
            ("code_challenge", &self.code_challenge),
            ("code_challenge_method", &self.code_challenge_method),
            ("state", &self.state),
            ("resource", &self.resource),
            ("scope", &self.scope),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.as_deref().map(|v| (k, v)))
        .collect()
    }
}

/// A checked authorization request: what the user is asked to approve.
#[derive(Debug, Clone)]
pub struct Authorization {
    /// The client.
    pub client: ClientRecord,
    /// The redirect URI, as the client sent it (registered).
    pub redirect_uri: String,
    /// The PKCE challenge.
    pub code_challenge: String,
    /// `state`, passed back.
    pub state: Option<String>,
    /// The resource the token will be for.
    pub resource: String,
    /// The scopes asked for that this server issues.
    pub scopes: Vec<Scope>,
}

impl Authorization {
    /// Whether every redirect URI of the client is on a loopback address (any local
    /// program could register such a client: the user is warned).
    pub fn loopback_only(&self) -> bool {
        self.client
            .redirect_uris
            .iter()
            .all(|u| url::Url::parse(u).is_ok_and(|u| is_loopback_uri(&u)))
    }

    /// The host the code will be sent to.
    pub fn redirect_host(&self) -> String {
        url::Url::parse(&self.redirect_uri)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_default()
    }
}

/// Why a login failed.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum LoginError {
    /// Unknown user or wrong password (the page never says which).
    #[error("wrong user name or password")]
    Wrong,
    /// The setup code for the first user is wrong or used up.
    #[error("the setup code is wrong or has been used")]
    SetupCode,
    /// A name or password that cannot be used for a new user.
    #[error("{0}")]
    Invalid(String),
    /// The database failed.
    #[error("the login could not be checked; try again")]
    Unavailable,
}

/// The embedded authorization server.
pub struct AuthorizationServer {
    issuer: String,
    resource: String,
    store: Store,
    keys: KeyRing,
    access_ttl: Duration,
    refresh_ttl: Duration,
    /// The scopes this server issues (every scope some tool needs).
    scopes: Vec<Scope>,
    /// Clients known by their metadata document.
    documents: ClientMetadata,
}

impl AuthorizationServer {
    /// Whether its database answers (for the readiness check).
    pub async fn ping(&self) -> Result<(), super::store::StoreError> {
        self.store.ping().await
    }

    /// The server for `issuer` issuing tokens for `resource` with `scopes`, over
    /// `store` and `keys`; registers the configured clients.
    pub async fn new(
        config: &EmbeddedConfig,
        issuer: String,
        resource: String,
        store: Store,
        keys: KeyRing,
        scopes: Vec<Scope>,
        documents: ClientMetadata,
    ) -> Result<Self, super::store::StoreError> {
        let now = now();
        for client in &config.clients {
            let record = ClientRecord {
                client_id: client.client_id.clone(),
                client_name: client.name.clone(),
                redirect_uris: client.redirect_uris.clone(),
                source: "configured".into(),
            };
            store.put_client(&record, now).await?;
        }
        let purged = store.purge(now).await?;
        if purged > 0 {
            tracing::info!(purged, "purged expired codes, tokens and keys");
        }
        Ok(Self {
            issuer,
            resource,
            store,
            keys,
            access_ttl: config.access_ttl(),
            refresh_ttl: config.refresh_ttl(),
            scopes,
            documents,
        })
    }

    /// Purges expired codes, tokens and keys every `interval`, for as long as the
    /// server lives (a task of its own).
    pub fn purge_every(self: &std::sync::Arc<Self>, interval: Duration) {
        let server = std::sync::Arc::downgrade(self);
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(interval);
            ticks.tick().await;
            loop {
                ticks.tick().await;
                let Some(server) = server.upgrade() else {
                    return;
                };
                match server.store.purge(now()).await {
                    Ok(0) => {}
                    Ok(purged) => tracing::info!(purged, "purged expired codes, tokens and keys"),
                    Err(error) => tracing::warn!(%error, "cannot purge the auth database"),
                }
            }
        });
    }

    /// The issuer identifier.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The database.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The authorization server metadata (RFC 8414).
    pub fn metadata(&self) -> Value {
        let at = |path: &str| format!("{}{path}", self.issuer);
        json!({
            "issuer": self.issuer,
            "authorization_endpoint": at("/oauth/authorize"),
            "token_endpoint": at("/oauth/token"),
            "registration_endpoint": at("/oauth/register"),
            "jwks_uri": at("/oauth/jwks.json"),
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["none"],
            "scopes_supported": self.scopes,
            "client_id_metadata_document_supported": self.documents.enabled(),
            "authorization_response_iss_parameter_supported": true,
        })
    }

    /// The published keys.
    pub async fn jwks(&self) -> Result<Value, OAuthError> {
        let keys = self.keys.published(now()).await.map_err(|e| {
            tracing::error!(error = %e, "cannot read the signing keys");
            OAuthError::new(500, "server_error", "the keys cannot be read")
        })?;
        Ok(json!({ "keys": keys }))
    }

    /// Dynamic client registration (RFC 7591): every client is public (PKCE, no
    /// secret), whatever it asked for.
    pub async fn register(&self, request: &Value) -> Result<Value, OAuthError> {
        let bad = |why: String| OAuthError::new(400, "invalid_client_metadata", why);
        let uris = request["redirect_uris"]
            .as_array()
            .filter(|a| !a.is_empty())
            .ok_or_else(|| {
                OAuthError::new(400, "invalid_redirect_uri", "redirect_uris is required")
            })?;
        if uris.len() > MAX_REDIRECT_URIS {
            return Err(bad(format!("at most {MAX_REDIRECT_URIS} redirect_uris")));
        }
        let mut redirect_uris = Vec::new();
        for uri in uris {
            let uri = uri
                .as_str()
                .ok_or_else(|| bad("redirect_uris must be strings".into()))?;
            check_redirect_uri(uri).map_err(|why| {
                OAuthError::new(400, "invalid_redirect_uri", format!("`{uri}`: {why}"))
            })?;
            redirect_uris.push(uri.to_owned());
        }
        for grant in request["grant_types"].as_array().into_iter().flatten() {
            if !matches!(grant.as_str(), Some("authorization_code" | "refresh_token")) {
                return Err(bad(format!(
                    "grant type {grant} is not offered: only authorization_code and refresh_token"
                )));
            }
        }
        for response in request["response_types"].as_array().into_iter().flatten() {
            if response.as_str() != Some("code") {
                return Err(bad(format!(
                    "response type {response} is not offered: only code"
                )));
            }
        }
        let client_name = request["client_name"]
            .as_str()
            .map(clean_name)
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "unnamed client".to_owned());
        let record = ClientRecord {
            client_id: format!("c-{}", &random_token()[..22]),
            client_name,
            redirect_uris,
            source: "registered".into(),
        };
        let now = now();
        self.store
            .put_client(&record, now)
            .await
            .map_err(server_error)?;
        tracing::info!(client_id = %record.client_id, client_name = ?record.client_name, "client registered");
        Ok(json!({
            "client_id": record.client_id,
            "client_id_issued_at": now,
            "client_name": record.client_name,
            "redirect_uris": record.redirect_uris,
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
        }))
    }

    /// Checks an authorization request. Until the client and its redirect URI are
    /// known good, errors are shown, not redirected.
    pub async fn check_authorize(
        &self,
        params: &AuthorizeParams,
    ) -> Result<Authorization, AuthorizeError> {
        let client_id = params.client_id.as_deref().ok_or_else(|| {
            AuthorizeError::Show("The request names no client (client_id).".into())
        })?;
        let shown: String = client_id.chars().take(200).collect();
        let client = if is_document_url(client_id) && self.documents.enabled() {
            self.documents.client(client_id).await.map_err(|why| {
                tracing::warn!(client_id = %shown, %why, "client metadata document refused");
                AuthorizeError::Show(format!("The client `{shown}` cannot be used: {why}."))
            })?
        } else {
            self.store
                .client(client_id)
                .await
                .map_err(|e| {
                    tracing::error!(error = %e, "cannot read clients");
                    AuthorizeError::Show(
                        "The authorization server cannot read its clients; try again.".into(),
                    )
                })?
                .ok_or_else(|| {
                    AuthorizeError::Show(format!("The client `{shown}` is not registered here."))
                })?
        };
        let redirect_uri = params
            .redirect_uri
            .clone()
            .ok_or_else(|| AuthorizeError::Show("The request names no redirect_uri.".into()))?;
        if !client
            .redirect_uris
            .iter()
            .any(|r| redirect_matches(r, &redirect_uri))
        {
            return Err(AuthorizeError::Show(format!(
                "The redirect URI `{}` is not one the client `{}` registered.",
                redirect_uri.chars().take(200).collect::<String>(),
                client.client_name
            )));
        }
        // From here on the redirect URI is trusted: errors go back to the client.
        let state = params.state.clone().filter(|s| s.len() <= MAX_STATE);
        let back = |error: &str, description: &str| {
            AuthorizeError::Redirect(self.redirect_url(
                &redirect_uri,
                &[("error", error), ("error_description", description)],
                state.as_deref(),
            ))
        };
        if params.response_type.as_deref() != Some("code") {
            return Err(back(
                "unsupported_response_type",
                "response_type must be code",
            ));
        }
        let code_challenge = params
            .code_challenge
            .clone()
            .filter(|c| (43..=128).contains(&c.len()))
            .ok_or_else(|| {
                back(
                    "invalid_request",
                    "a PKCE code_challenge (S256) is required",
                )
            })?;
        if params.code_challenge_method.as_deref() != Some("S256") {
            return Err(back(
                "invalid_request",
                "code_challenge_method must be S256",
            ));
        }
        let resource = match &params.resource {
            None => self.resource.clone(),
            Some(resource) if canonical(resource) == canonical(&self.resource) => {
                self.resource.clone()
            }
            Some(_) => {
                return Err(back(
                    "invalid_target",
                    "this server issues tokens only for its own resource",
                ));
            }
        };
        let scopes = self.grantable(params.scope.as_deref());
        Ok(Authorization {
            client,
            redirect_uri,
            code_challenge,
            state,
            resource,
            scopes,
        })
    }

    /// The scopes asked for that this server issues (all of them when none are asked
    /// for); others are dropped.
    fn grantable(&self, asked: Option<&str>) -> Vec<Scope> {
        match asked {
            None => self.scopes.clone(),
            Some(asked) => asked
                .split(' ')
                .filter_map(|s| Scope::try_from(s.to_owned()).ok())
                .filter(|s| self.scopes.iter().any(|ours| s.covers(ours) || ours == s))
                .collect(),
        }
    }

    /// Checks a user's password (argon2id, on a blocking thread).
    pub async fn login(&self, name: &str, password: &str) -> Result<UserRecord, LoginError> {
        let user = self
            .store
            .user(name)
            .await
            .map_err(|_| LoginError::Unavailable)?;
        let (hash, found) = match &user {
            Some(user) => (user.password_hash.clone(), true),
            // Hash anyway, so an unknown name takes as long as a wrong password.
            None => (DUMMY_HASH.to_owned(), false),
        };
        let password = zeroize::Zeroizing::new(password.to_owned());
        let ok = tokio::task::spawn_blocking(move || verify_password(&password, &hash))
            .await
            .unwrap_or(false);
        match user {
            Some(user) if ok && found => Ok(user),
            _ => Err(LoginError::Wrong),
        }
    }

    /// Whether no user exists yet (the login page then offers the first-user setup).
    pub async fn needs_setup(&self) -> bool {
        self.store.users().await.is_ok_and(|users| users.is_empty())
    }

    /// Makes a one-time code that lets the first user be created; printed at start.
    pub async fn new_setup_code(&self) -> Result<String, super::store::StoreError> {
        let code = random_token()[..12].to_owned();
        self.store
            .put_setup_code(&code, now() + SETUP_CODE_TTL.as_secs() as i64)
            .await?;
        Ok(code)
    }

    /// Creates the first user with the printed setup code.
    pub async fn create_first_user(
        &self,
        setup_code: &str,
        name: &str,
        password: &str,
    ) -> Result<UserRecord, LoginError> {
        if !self.needs_setup().await {
            return Err(LoginError::SetupCode);
        }
        let user = new_user(name, password, None).map_err(LoginError::Invalid)?;
        if !self
            .store
            .use_setup_code(setup_code.trim(), now())
            .await
            .map_err(|_| LoginError::Unavailable)?
        {
            return Err(LoginError::SetupCode);
        }
        self.store
            .add_user(&user, now())
            .await
            .map_err(|_| LoginError::Unavailable)?;
        tracing::info!(user = %user.name, "created the first user");
        Ok(user)
    }

    /// The user approved: a code for the client, as the redirect URL to send them to.
    pub async fn approve(
        &self,
        authorization: &Authorization,
        user: &UserRecord,
    ) -> Result<String, OAuthError> {
        let scopes: Vec<Scope> = authorization
            .scopes
            .iter()
            .filter(|s| user_may(user, s))
            .cloned()
            .collect();
        let code = random_token();
        let grant = CodeGrant {
            client_id: authorization.client.client_id.clone(),
            redirect_uri: authorization.redirect_uri.clone(),
            code_challenge: authorization.code_challenge.clone(),
            resource: authorization.resource.clone(),
            scope: Scope::join(&scopes),
            subject: user.name.clone(),
            family: random_token(),
        };
        self.store
            .put_code(&code, &grant, now() + CODE_TTL.as_secs() as i64)
            .await
            .map_err(server_error)?;
        tracing::info!(client_id = %grant.client_id, subject = %grant.subject, scope = %grant.scope, "authorization approved");
        Ok(self.redirect_url(
            &authorization.redirect_uri,
            &[("code", &code)],
            authorization.state.as_deref(),
        ))
    }

    /// The user refused.
    pub fn deny(&self, authorization: &Authorization) -> String {
        self.redirect_url(
            &authorization.redirect_uri,
            &[
                ("error", "access_denied"),
                ("error_description", "the user refused"),
            ],
            authorization.state.as_deref(),
        )
    }

    /// `redirect_uri` with `pairs`, `state` and `iss` (RFC 9207) added to its query.
    fn redirect_url(
        &self,
        redirect_uri: &str,
        pairs: &[(&str, &str)],
        state: Option<&str>,
    ) -> String {
        let Ok(mut url) = url::Url::parse(redirect_uri) else {
            return redirect_uri.to_owned();
        };
        {
            let mut query = url.query_pairs_mut();
            for (k, v) in pairs {
                query.append_pair(k, v);
            }
            if let Some(state) = state {
                query.append_pair("state", state);
            }
            query.append_pair("iss", &self.issuer);
        }
        url.to_string()
    }

    /// The token endpoint (form parameters).
    pub async fn token(&self, form: &HashMap<String, String>) -> Result<Value, OAuthError> {
        let get = |k: &str| form.get(k).map(String::as_str).filter(|v| !v.is_empty());
        let invalid_request =
            |what: &str| OAuthError::new(400, "invalid_request", format!("{what} is required"));
        match get("grant_type") {
            Some("authorization_code") => {
                let code = get("code").ok_or_else(|| invalid_request("code"))?;
                let verifier =
                    get("code_verifier").ok_or_else(|| invalid_request("code_verifier"))?;
                let client_id = get("client_id").ok_or_else(|| invalid_request("client_id"))?;
                let redirect_uri =
                    get("redirect_uri").ok_or_else(|| invalid_request("redirect_uri"))?;
                let grant = self
                    .store
                    .redeem_code(code, now())
                    .await
                    .map_err(server_error)?
                    .ok_or_else(|| invalid_grant("the code is unknown, expired or already used"))?;
                if grant.client_id != client_id {
                    self.store
                        .revoke_family(&grant.family)
                        .await
                        .map_err(server_error)?;
                    return Err(invalid_grant("the code was issued to another client"));
                }
                if grant.redirect_uri != redirect_uri {
                    return Err(invalid_grant(
                        "redirect_uri differs from the authorization request's",
                    ));
                }
                if !pkce_matches(verifier, &grant.code_challenge) {
                    return Err(invalid_grant(
                        "the code_verifier does not match the code_challenge",
                    ));
                }
                self.check_resource(get("resource"), &grant.resource)?;
                let refresh = RefreshGrant {
                    family: grant.family,
                    client_id: grant.client_id,
                    subject: grant.subject,
                    scope: grant.scope,
                    resource: grant.resource,
                };
                self.issue(&refresh).await
            }
            Some("refresh_token") => {
                let token = get("refresh_token").ok_or_else(|| invalid_request("refresh_token"))?;
                let client_id = get("client_id").ok_or_else(|| invalid_request("client_id"))?;
                let grant = match self
                    .store
                    .use_refresh(token, now())
                    .await
                    .map_err(server_error)?
                {
                    Refresh::Rotated(grant) => grant,
                    Refresh::Reused => {
                        tracing::warn!(
                            "a refresh token was used twice; its whole family is revoked"
                        );
                        return Err(invalid_grant(
                            "the refresh token was already used; every token of this grant is revoked",
                        ));
                    }
                    Refresh::Invalid => {
                        return Err(invalid_grant(
                            "the refresh token is unknown, expired or revoked",
                        ));
                    }
                };
                if grant.client_id != client_id {
                    self.store
                        .revoke_family(&grant.family)
                        .await
                        .map_err(server_error)?;
                    return Err(invalid_grant(
                        "the refresh token was issued to another client",
                    ));
                }
                self.check_resource(get("resource"), &grant.resource)?;
                // A refresh may narrow the scope, never widen it.
                let scope = match get("scope") {
                    None => grant.scope.clone(),
                    Some(asked) => {
                        let held: Vec<&str> = grant.scope.split(' ').collect();
                        let narrowed: Vec<&str> =
                            asked.split(' ').filter(|s| held.contains(s)).collect();
                        narrowed.join(" ")
                    }
                };
                self.issue(&RefreshGrant { scope, ..grant }).await
            }
            Some(other) => Err(OAuthError::new(
                400,
                "unsupported_grant_type",
                format!(
                    "grant_type `{}` is not offered",
                    other.chars().take(40).collect::<String>()
                ),
            )),
            None => Err(invalid_request("grant_type")),
        }
    }

    fn check_resource(&self, asked: Option<&str>, granted: &str) -> Result<(), OAuthError> {
        match asked {
            Some(resource) if canonical(resource) != canonical(granted) => Err(OAuthError::new(
                400,
                "invalid_target",
                "the resource differs from the one the grant is for",
            )),
            _ => Ok(()),
        }
    }

    /// An access token and the next refresh token of `grant`'s family.
    async fn issue(&self, grant: &RefreshGrant) -> Result<Value, OAuthError> {
        let now = now();
        let scopes: Vec<Scope> = grant
            .scope
            .split(' ')
            .filter_map(|s| Scope::try_from(s.to_owned()).ok())
            .collect();
        let access = self
            .keys
            .sign_access_token(
                &self.issuer,
                &grant.subject,
                &grant.resource,
                &scopes,
                &grant.client_id,
                now,
                self.access_ttl,
            )
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "cannot sign an access token");
                OAuthError::new(500, "server_error", "the token could not be signed")
            })?;
        let refresh = random_token();
        self.store
            .put_refresh(&refresh, grant, now + self.refresh_ttl.as_secs() as i64)
            .await
            .map_err(server_error)?;
        Ok(json!({
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": self.access_ttl.as_secs(),
            "refresh_token": refresh,
            "scope": grant.scope,
        }))
    }

    /// The keys tokens from this server verify against.
    pub async fn published_keys(&self) -> Result<Vec<jsonwebtoken::jwk::Jwk>, String> {
        self.keys.published(now()).await.map_err(|e| e.to_string())
    }
}

/// A PHC string no password matches quickly: hashed against for unknown users.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$2b1S5a5P3n5oY2mI9I6aHn2r7x0G0x0mQ5Bq2Y3QW2Y";

fn verify_password(password: &str, hash: &str) -> bool {
    use argon2::password_hash::PasswordVerifier;
    use argon2::password_hash::phc::PasswordHash;
    PasswordHash::new(hash).is_ok_and(|parsed| {
        argon2::Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

/// A new user record: the password hashed with argon2id (a random salt).
pub fn new_user(
    name: &str,
    password: &str,
    scopes: Option<Vec<String>>,
) -> Result<UserRecord, String> {
    use argon2::password_hash::PasswordHasher;
    let ok_name = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'@'));
    if !ok_name {
        return Err("the user name must be 1-64 of A-Z a-z 0-9 _ - . @".into());
    }
    if password.chars().count() < 8 {
        return Err("the password must have at least 8 characters".into());
    }
    if password.len() > 1024 {
        return Err("the password is longer than 1024 bytes".into());
    }
    let hash = argon2::Argon2::default()
        .hash_password(password.as_bytes())
        .map_err(|e| format!("cannot hash the password: {e}"))?
        .to_string();
    Ok(UserRecord {
        name: name.to_owned(),
        password_hash: hash,
        scopes,
    })
}

fn user_may(user: &UserRecord, scope: &Scope) -> bool {
    match &user.scopes {
        None => true,
        Some(allowed) => allowed
            .iter()
            .filter_map(|a| Scope::try_from(a.clone()).ok())
            .any(|a| a.covers(scope)),
    }
}

fn invalid_grant(why: &str) -> OAuthError {
    OAuthError::new(400, "invalid_grant", why)
}

fn server_error(error: super::store::StoreError) -> OAuthError {
    tracing::error!(%error, "auth database error");
    OAuthError::new(
        500,
        "server_error",
        "the authorization server's database failed",
    )
}

/// Whether `verifier` is the PKCE verifier of `challenge` (S256).
pub fn pkce_matches(verifier: &str, challenge: &str) -> bool {
    let well_formed = (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
    well_formed && B64.encode(Sha256::digest(verifier.as_bytes())) == challenge
}

/// A redirect URI a client may register: https, or http on a loopback address (RFC
/// 8252), absolute, without a fragment.
pub fn check_redirect_uri(uri: &str) -> Result<(), String> {
    if uri.len() > MAX_URI {
        return Err(format!("longer than {MAX_URI} characters"));
    }
    let url = url::Url::parse(uri).map_err(|e| format!("not an absolute URI ({e})"))?;
    if url.fragment().is_some() {
        return Err("must not have a fragment".into());
    }
    match url.scheme() {
        "https" => Ok(()),
        "http" if is_loopback_uri(&url) => Ok(()),
        "http" => Err("plain http only on a loopback address (127.0.0.1, [::1], localhost)".into()),
        // Private-use schemes (com.example.app:/cb) for native apps.
        scheme if scheme.contains('.') => Ok(()),
        _ => Err("must be https, loopback http, or a private-use scheme".into()),
    }
}

fn is_loopback_uri(url: &url::Url) -> bool {
    crate::auth::config::is_loopback(url)
}

/// Whether the `asked` redirect URI matches `registered`: exactly, or, for a loopback
/// IP literal, with any port (RFC 8252 §7.3: native apps pick a free port).
fn redirect_matches(registered: &str, asked: &str) -> bool {
    if registered == asked {
        return true;
    }
    let (Ok(mut registered), Ok(mut asked)) = (url::Url::parse(registered), url::Url::parse(asked))
    else {
        return false;
    };
    let ip_literal = matches!(registered.host(), Some(url::Host::Ipv4(ip)) if ip.is_loopback())
        || matches!(registered.host(), Some(url::Host::Ipv6(ip)) if ip.is_loopback());
    if !ip_literal || registered.scheme() != "http" {
        return false;
    }
    let _ = registered.set_port(None);
    let _ = asked.set_port(None);
    registered == asked
}

/// A client name as shown: control characters dropped, at most 128 characters.
fn clean_name(name: &str) -> String {
    name.chars()
        .filter(|c| !c.is_control())
        .take(MAX_NAME)
        .collect::<String>()
        .trim()
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce() {
        // RFC 7636 Appendix B.
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert!(pkce_matches(verifier, challenge));
        assert!(!pkce_matches(
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXj",
            challenge
        ));
        assert!(!pkce_matches("short", challenge));
        assert!(
            !pkce_matches(challenge, challenge),
            "plain: the challenge itself"
        );
    }

    #[test]
    fn redirect_uris() {
        for ok in [
            "https://app.example.com/callback",
            "http://127.0.0.1:3000/callback",
            "http://localhost:8765/cb",
            "http://[::1]:9/cb",
            "com.example.app:/oauth",
        ] {
            assert!(check_redirect_uri(ok).is_ok(), "{ok}");
        }
        for (bad, why) in [
            ("http://app.example.com/cb", "loopback"),
            ("https://app.example.com/cb#x", "fragment"),
            ("/relative", "absolute"),
            ("javascript:alert(1)", "private-use"),
        ] {
            let err = check_redirect_uri(bad).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
        assert!(redirect_matches(
            "http://127.0.0.1:3000/cb",
            "http://127.0.0.1:3000/cb"
        ));
        assert!(redirect_matches(
            "http://127.0.0.1:3000/cb",
            "http://127.0.0.1:51234/cb"
        ));
        assert!(!redirect_matches(
            "http://127.0.0.1:3000/cb",
            "http://127.0.0.1:3000/other"
        ));
        assert!(!redirect_matches(
            "https://app.example.com/cb",
            "https://app.example.com:8443/cb"
        ));
        assert!(!redirect_matches(
            "http://localhost:3000/cb",
            "http://localhost:4000/cb"
        ));
    }

    #[test]
    fn users() {
        let user = new_user("alice", "correct horse", Some(vec!["notes".into()])).unwrap();
        assert!(user.password_hash.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &user.password_hash));
        assert!(!verify_password("wrong horse", &user.password_hash));
        assert!(!verify_password("x", DUMMY_HASH));
        assert!(
            new_user("a b", "correct horse", None)
                .unwrap_err()
                .contains("user name")
        );
        assert!(
            new_user("bob", "short", None)
                .unwrap_err()
                .contains("8 characters")
        );
        let scope = |s: &str| Scope::try_from(s.to_owned()).unwrap();
        assert!(user_may(&user, &scope("notes:write")));
        assert!(!user_may(&user, &scope("weather:read")));
    }
}
