//! The issuer's public keys (a JWKS): fetched from the identity provider and cached,
//! fetched again when a token names a key we do not have, at most once a minute (a
//! flood of made-up key ids cannot turn into a flood of fetches). Only asymmetric keys
//! of the algorithms we accept are kept: a symmetric (`oct`) key is never used, so a
//! token "signed" with a public key as an HMAC secret has nothing to verify against.

use crate::sandbox::http::fetch::{FetchError, Fetcher};
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use thiserror::Error;

/// Signature algorithms a token may use.
pub const ACCEPTED_ALGORITHMS: [Algorithm; 3] =
    [Algorithm::EdDSA, Algorithm::ES256, Algorithm::RS256];

/// Least time between two fetches of the key set.
pub const REFETCH_INTERVAL: Duration = Duration::from_secs(60);

/// One usable key.
#[derive(Clone)]
struct Key {
    kid: Option<String>,
    algorithm: Algorithm,
    key: DecodingKey,
}

/// Why no key verifies a token.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum KeyError {
    /// No key with this id (after a fetch, when one was allowed).
    #[error("no key `{0}` in the issuer's key set")]
    UnknownKid(String),
    /// The token names no key and the set has none or several for its algorithm.
    #[error("the token names no key, and the issuer's key set has no single {0:?} key")]
    NoKeyFor(Algorithm),
    /// The key the token names is for another algorithm.
    #[error("key `{0}` is not a {1:?} key")]
    WrongAlgorithm(String, Algorithm),
    /// The key set could not be fetched or read.
    #[error("the issuer's keys are unavailable: {0}")]
    Unavailable(String),
}

/// Reads a key set from somewhere of the host's own (the embedded authorization
/// server's database).
pub trait KeyLoader: Send + Sync {
    /// The keys as they are now.
    fn load(&self) -> futures::future::BoxFuture<'_, Result<Vec<Jwk>, String>>;
}

/// Where the keys come from.
pub enum KeySource {
    /// Fixed keys.
    Fixed(Vec<Jwk>),
    /// Keys the host reads itself (the embedded authorization server's).
    Loader(std::sync::Arc<dyn KeyLoader>),
    /// An identity provider's JWKS URL.
    Remote {
        /// The JWKS URL.
        url: String,
        /// The client that fetches it.
        fetcher: Fetcher,
    },
}

/// The keys tokens are checked against.
pub struct KeySet {
    source: KeySource,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    keys: Vec<Key>,
    fetched_at: Option<Instant>,
}

impl KeySet {
    /// A key set read from `source` (remote sets are fetched on first use).
    pub fn new(source: KeySource) -> Self {
        let keys = match &source {
            KeySource::Fixed(jwks) => usable(jwks),
            KeySource::Remote { .. } | KeySource::Loader(_) => Vec::new(),
        };
        Self {
            source,
            state: Mutex::new(State {
                keys,
                fetched_at: None,
            }),
        }
    }

    /// The key to check a token with header `kid` and `algorithm` against.
    pub async fn key_for(
        &self,
        kid: Option<&str>,
        algorithm: Algorithm,
    ) -> Result<DecodingKey, KeyError> {
        match self.find(kid, algorithm) {
            Err(KeyError::UnknownKid(_) | KeyError::NoKeyFor(_)) if self.may_refetch() => {
                self.refetch().await?;
                self.find(kid, algorithm)
            }
            found => found,
        }
    }

    fn find(&self, kid: Option<&str>, algorithm: Algorithm) -> Result<DecodingKey, KeyError> {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match kid {
            Some(kid) => {
                let key = state
                    .keys
                    .iter()
                    .find(|k| k.kid.as_deref() == Some(kid))
                    .ok_or_else(|| KeyError::UnknownKid(kid.chars().take(64).collect()))?;
                if key.algorithm != algorithm {
                    return Err(KeyError::WrongAlgorithm(
                        kid.chars().take(64).collect(),
                        algorithm,
                    ));
                }
                Ok(key.key.clone())
            }
            None => {
                let mut matching = state.keys.iter().filter(|k| k.algorithm == algorithm);
                match (matching.next(), matching.next()) {
                    (Some(key), None) => Ok(key.key.clone()),
                    _ => Err(KeyError::NoKeyFor(algorithm)),
                }
            }
        }
    }

    /// Remote sets only, and not within [`REFETCH_INTERVAL`] of the last fetch.
    fn may_refetch(&self) -> bool {
        if matches!(self.source, KeySource::Fixed(_)) {
            return false;
        }
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state
            .fetched_at
            .is_none_or(|at| at.elapsed() >= REFETCH_INTERVAL)
    }

    /// Reads the set again; on failure the keys held so far stay.
    pub async fn refetch(&self) -> Result<(), KeyError> {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .fetched_at = Some(Instant::now());
        let jwks = match &self.source {
            KeySource::Fixed(_) => return Ok(()),
            KeySource::Remote { url, fetcher } => {
                let jwks = fetch_jwks(fetcher, url).await.map_err(|e| {
                    tracing::warn!(%url, error = %e, "cannot fetch the identity provider's keys");
                    KeyError::Unavailable(e)
                })?;
                tracing::info!(%url, keys = jwks.len(), "fetched the identity provider's keys");
                jwks
            }
            KeySource::Loader(loader) => loader.load().await.map_err(|e| {
                tracing::warn!(error = %e, "cannot read the signing keys");
                KeyError::Unavailable(e)
            })?,
        };
        self.state.lock().unwrap_or_else(|e| e.into_inner()).keys = usable(&jwks);
        Ok(())
    }
}

/// GETs and parses a JWKS; keys that do not parse are skipped, not fatal.
async fn fetch_jwks(fetcher: &Fetcher, url: &str) -> Result<Vec<Jwk>, String> {
    let fetched = fetcher
        .get(url, "application/json")
        .await
        .map_err(|e: FetchError| e.to_string())?;
    if !fetched.status.is_success() {
        return Err(format!("{url} answered {}", fetched.status));
    }
    #[derive(serde::Deserialize)]
    struct Set {
        keys: Vec<serde_json::Value>,
    }
    let set: Set =
        serde_json::from_slice(&fetched.body).map_err(|e| format!("{url} is not a JWKS: {e}"))?;
    Ok(set
        .keys
        .into_iter()
        .filter_map(|key| serde_json::from_value(key).ok())
        .collect())
}

/// The keys we can use: asymmetric, of an accepted algorithm, for signatures.
fn usable(jwks: &[Jwk]) -> Vec<Key> {
    jwks.iter()
        .filter_map(|jwk| {
            let algorithm = algorithm_of(jwk)?;
            let key = DecodingKey::from_jwk(jwk).ok()?;
            Some(Key {
                kid: jwk.common.key_id.clone(),
                algorithm,
                key,
            })
        })
        .collect()
}

/// The one accepted algorithm a JWK can verify, from its type and curve (and its
/// `alg`, which must agree when present).
fn algorithm_of(jwk: &Jwk) -> Option<Algorithm> {
    if let Some(jsonwebtoken::jwk::PublicKeyUse::Encryption) = jwk.common.public_key_use {
        return None;
    }
    let by_type = match &jwk.algorithm {
        AlgorithmParameters::OctetKeyPair(okp) if okp.curve == EllipticCurve::Ed25519 => {
            Algorithm::EdDSA
        }
        AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P256 => {
            Algorithm::ES256
        }
        AlgorithmParameters::RSA(_) => Algorithm::RS256,
        // Symmetric keys, other curves: never.
        _ => return None,
    };
    let declared = match jwk.common.key_algorithm {
        None => return Some(by_type),
        Some(KeyAlgorithm::EdDSA) => Algorithm::EdDSA,
        Some(KeyAlgorithm::ES256) => Algorithm::ES256,
        Some(KeyAlgorithm::RS256) => Algorithm::RS256,
        Some(_) => return None,
    };
    (declared == by_type).then_some(by_type)
}
