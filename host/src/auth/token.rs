//! Access token verification (jsonwebtoken does the JWT work): the algorithm must be one
//! we accept (never `none`, never HMAC), the signature must verify against the issuer's
//! key, `iss` must be the issuer, `aud` must name this resource (scheme and host
//! compared case-insensitively), and `exp`/`nbf` must hold within the leeway. What the
//! token says about its holder becomes the caller's [`TokenClaims`]. An accepted token
//! is remembered for a short while ([`TokenCache`]) so the next request with it skips
//! the signature check.

use super::cache::TokenCache;
use super::keys::{ACCEPTED_ALGORITHMS, KeyError, KeySet};
use crate::domain::Scope;
use crate::pipeline::context::TokenClaims;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use serde::Deserialize;
use std::collections::HashSet;
use std::time::{Duration, SystemTime};
use thiserror::Error;

/// Longest token we look at: real access tokens are a few KiB.
const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// Why a token was refused. The message goes to the client (`error_description`): it
/// names what was wrong, never the token or a key.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum TokenError {
    /// Not a JWT.
    #[error("the token is not a well-formed JWT")]
    Malformed,
    /// A signature algorithm we do not accept.
    #[error("the token's algorithm is not accepted (only EdDSA, ES256, RS256)")]
    Algorithm,
    /// No key to check it with.
    #[error("{0}")]
    Key(#[from] KeyError),
    /// The signature does not verify.
    #[error("the token's signature does not verify")]
    Signature,
    /// Past `exp`.
    #[error("the token has expired")]
    Expired,
    /// Before `nbf`.
    #[error("the token is not valid yet")]
    NotYetValid,
    /// Another issuer.
    #[error("the token was issued by another issuer")]
    Issuer,
    /// Another audience.
    #[error("the token was issued for another resource")]
    Audience,
    /// A required claim is missing or of the wrong type.
    #[error("the token lacks a required claim ({0})")]
    Claims(String),
}

/// The claims we read.
#[derive(Deserialize)]
struct Claims {
    /// Seconds since the epoch (some issuers write a fraction); jsonwebtoken checks it
    /// is there and not past.
    exp: Option<f64>,
    sub: Option<String>,
    aud: Option<Audience>,
    /// Space-separated scopes (RFC 8693 / OAuth).
    scope: Option<String>,
    /// Scopes as an array (some providers).
    scp: Option<Scopes>,
    client_id: Option<String>,
    azp: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Scopes {
    Many(Vec<String>),
    Spaced(String),
}

/// Checks tokens for one issuer and one audience.
pub struct Verifier {
    issuer: String,
    /// The audience, canonical (scheme and host lower-case).
    audience: String,
    leeway: Duration,
    keys: KeySet,
    verified: TokenCache,
}

impl Verifier {
    /// A verifier for tokens `issuer` issued for `audience`, signed by `keys`.
    pub fn new(issuer: String, audience: &str, leeway: Duration, keys: KeySet) -> Self {
        Self {
            issuer,
            audience: canonical(audience),
            leeway,
            keys,
            verified: TokenCache::default(),
        }
    }

    /// The audience tokens must carry.
    pub fn audience(&self) -> &str {
        &self.audience
    }

    /// Verifies `token` (or finds it verified moments ago) and returns what it says
    /// about its holder.
    pub async fn verify(&self, token: &str) -> Result<TokenClaims, TokenError> {
        let now = SystemTime::now();
        if let Some(claims) = self.verified.get(token, now) {
            return Ok(claims);
        }
        let (claims, exp) = self.check(token).await?;
        self.verified.insert(token, &claims, exp, now);
        Ok(claims)
    }

    /// Verifies `token` from scratch (signature, claims), without the cache: what
    /// [`Verifier::verify`] does on a miss. Returns the claims and the token's `exp`.
    pub async fn check(&self, token: &str) -> Result<(TokenClaims, u64), TokenError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::Malformed);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| {
            // A header naming an algorithm jsonwebtoken does not even know (`none`)
            // is an algorithm we refuse, not noise.
            if declared_algorithm(token).is_some() {
                TokenError::Algorithm
            } else {
                TokenError::Malformed
            }
        })?;
        if !ACCEPTED_ALGORITHMS.contains(&header.alg) {
            return Err(TokenError::Algorithm);
        }
        let key = self.keys.key_for(header.kid.as_deref(), header.alg).await?;
        let mut validation = Validation::new(header.alg);
        validation.leeway = self.leeway.as_secs();
        validation.validate_nbf = true;
        validation.set_issuer(&[&self.issuer]);
        // The audience is compared here, after canonicalizing both sides.
        validation.validate_aud = false;
        validation.required_spec_claims = ["exp", "iss", "aud", "sub"]
            .into_iter()
            .map(str::to_owned)
            .collect::<HashSet<_>>();
        let data = jsonwebtoken::decode::<Claims>(token, &key, &validation).map_err(|e| match e
            .kind()
        {
            ErrorKind::ExpiredSignature => TokenError::Expired,
            ErrorKind::ImmatureSignature => TokenError::NotYetValid,
            ErrorKind::InvalidIssuer => TokenError::Issuer,
            ErrorKind::InvalidSignature => TokenError::Signature,
            ErrorKind::InvalidAlgorithm => TokenError::Algorithm,
            ErrorKind::MissingRequiredClaim(claim) => TokenError::Claims(claim.clone()),
            ErrorKind::Json(_) => TokenError::Claims("a claim has the wrong type".into()),
            _ => TokenError::Malformed,
        })?;
        let claims = data.claims;
        let audiences = match claims.aud {
            Some(Audience::One(aud)) => vec![aud],
            Some(Audience::Many(auds)) => auds,
            None => Vec::new(),
        };
        if !audiences.iter().any(|aud| canonical(aud) == self.audience) {
            return Err(TokenError::Audience);
        }
        let subject = claims
            .sub
            .filter(|s| !s.is_empty())
            .ok_or_else(|| TokenError::Claims("sub".into()))?;
        let scopes = match (claims.scope, claims.scp) {
            (Some(spaced), _) | (None, Some(Scopes::Spaced(spaced))) => {
                spaced.split(' ').map(str::to_owned).collect()
            }
            (None, Some(Scopes::Many(many))) => many,
            (None, None) => Vec::new(),
        };
        let holder = TokenClaims {
            subject: subject.chars().take(256).collect(),
            client_id: claims
                .client_id
                .or(claims.azp)
                .map(|c| c.chars().take(256).collect()),
            scopes: scopes
                .into_iter()
                .filter_map(|s| Scope::try_from(s).ok())
                .collect(),
        };
        let exp = claims.exp.ok_or_else(|| TokenError::Claims("exp".into()))?;
        // Saturating: a negative or absurd `exp` is never cached past now.
        Ok((holder, exp as u64))
    }
}

/// The `alg` a token's header declares, whatever it is.
fn declared_algorithm(token: &str) -> Option<String> {
    use base64::Engine as _;
    let header = token.split('.').next()?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header.trim_end_matches('='))
        .ok()?;
    let header: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    header["alg"].as_str().map(str::to_owned)
}

/// `uri` with its scheme and host lower-cased and a default port dropped (as a URL
/// parser writes it), so `HTTPS://MCP.Example.com/mcp` names the same resource as
/// `https://mcp.example.com/mcp`. Text that is not a URL is kept as it is.
pub fn canonical(uri: &str) -> String {
    url::Url::parse(uri).map_or_else(|_| uri.to_owned(), |u| u.to_string())
}

/// The signature algorithms a token may be signed with, for metadata.
pub fn algorithm_names() -> Vec<&'static str> {
    ACCEPTED_ALGORITHMS
        .iter()
        .map(|a| match a {
            Algorithm::EdDSA => "EdDSA",
            Algorithm::ES256 => "ES256",
            _ => "RS256",
        })
        .collect()
}
