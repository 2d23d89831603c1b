//! The authorization server's signing keys: Ed25519, made on first start, kept in the
//! database with the private half sealed under the credential store's KEK (envelope
//! encryption, the key id bound in), published as a JWKS. The newest key that is not
//! retired signs; a rotation makes a new one and keeps the old ones published until
//! the last token they signed has expired. Access tokens are JWTs signed here.

use super::store::{KeyRecord, Store, StoreError};
use crate::domain::Scope;
use crate::secrets::envelope::{self, Sealed};
use crate::secrets::kek::Kek;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair as _};
use serde::Serialize;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use thiserror::Error;
use zeroize::Zeroizing;

/// How often the signer looks for a newer key (one rotated by another process).
const RELOAD_INTERVAL: Duration = Duration::from_secs(60);

/// Why a key could not be made, read or used.
#[derive(Debug, Error)]
pub enum KeyError {
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A private key does not open with this KEK.
    #[error(
        "the signing key `{kid}` does not open with this KEK ({reason}); the auth database \
         belongs to another KEK"
    )]
    Sealed {
        /// The key.
        kid: String,
        /// Why.
        reason: String,
    },
    /// Key generation or signing failed.
    #[error("signing: {0}")]
    Crypto(String),
}

/// The signing key in use.
struct Current {
    kid: String,
    key: EncodingKey,
    loaded_at: Instant,
}

/// The keys of one authorization server.
pub struct KeyRing {
    store: Store,
    kek: Kek,
    current: Mutex<Current>,
}

/// The claims of an access token we issue.
#[derive(Serialize)]
struct AccessClaims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    scope: &'a str,
    client_id: &'a str,
    iat: i64,
    exp: i64,
    jti: String,
}

impl KeyRing {
    /// Opens the key ring, making the first key if the database has none (one key
    /// however many replicas start together on one database).
    pub async fn open(store: Store, kek: Kek, now: i64) -> Result<Self, KeyError> {
        let current = match newest_active(&store, now).await? {
            Some(record) => unseal(&kek, &record)?,
            None => {
                let (record, made) = generate(&kek, now)?;
                let (record, stored) = store.signing_key_or(now, record).await?;
                if stored {
                    tracing::info!(kid = %record.kid, "made the authorization server's signing key");
                    made
                } else {
                    unseal(&kek, &record)?
                }
            }
        };
        Ok(Self {
            store,
            kek,
            current: Mutex::new(current),
        })
    }

    /// Makes a new signing key and retires the others; they stay published for
    /// `token_lifetime` more (their last tokens' lifetime). Returns the new key's id.
    pub async fn rotate(
        store: &Store,
        kek: &Kek,
        now: i64,
        token_lifetime: Duration,
    ) -> Result<String, KeyError> {
        let (record, _) = generate(kek, now)?;
        store.put_key(&record).await?;
        let until = now + token_lifetime.as_secs() as i64 + 60;
        store.retire_keys_except(&record.kid, now, until).await?;
        Ok(record.kid)
    }

    /// The published keys (JWKS entries), newest first.
    pub async fn published(&self, now: i64) -> Result<Vec<Jwk>, KeyError> {
        Ok(self
            .store
            .keys(now)
            .await?
            .iter()
            .filter_map(|k| serde_json::from_str(&k.public_jwk).ok())
            .collect())
    }

    /// Signs an access token.
    #[allow(clippy::too_many_arguments)]
    pub async fn sign_access_token(
        &self,
        issuer: &str,
        subject: &str,
        audience: &str,
        scopes: &[Scope],
        client_id: &str,
        now: i64,
        lifetime: Duration,
    ) -> Result<String, KeyError> {
        self.reload_if_due(now).await?;
        let scope = scopes
            .iter()
            .map(Scope::as_str)
            .collect::<Vec<_>>()
            .join(" ");
        let claims = AccessClaims {
            iss: issuer,
            sub: subject,
            aud: audience,
            scope: &scope,
            client_id,
            iat: now,
            exp: now + lifetime.as_secs() as i64,
            jti: random_token(),
        };
        let current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(current.kid.clone());
        jsonwebtoken::encode(&header, &claims, &current.key)
            .map_err(|e| KeyError::Crypto(e.to_string()))
    }

    /// Switches to a newer key another process made, at most once a minute.
    async fn reload_if_due(&self, now: i64) -> Result<(), KeyError> {
        let due = {
            let current = self.current.lock().unwrap_or_else(|e| e.into_inner());
            current.loaded_at.elapsed() >= RELOAD_INTERVAL
        };
        if !due {
            return Ok(());
        }
        let newest = newest_active(&self.store, now).await?;
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        match newest {
            Some(record) if record.kid != current.kid => *current = unseal(&self.kek, &record)?,
            _ => current.loaded_at = Instant::now(),
        }
        Ok(())
    }
}

/// The newest key that still signs.
async fn newest_active(store: &Store, now: i64) -> Result<Option<KeyRecord>, KeyError> {
    Ok(store
        .keys(now)
        .await?
        .into_iter()
        .find(|k| k.retired_at.is_none()))
}

/// The sealing name of key `kid` (bound into its envelope).
fn sealing_name(kid: &str) -> String {
    format!("auth-signing-key/{kid}")
}

/// A new Ed25519 key: its record (private half sealed) and its signer.
fn generate(kek: &Kek, now: i64) -> Result<(KeyRecord, Current), KeyError> {
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
        .map_err(|_| KeyError::Crypto("cannot generate a key".into()))?;
    let pkcs8 = Zeroizing::new(pkcs8.as_ref().to_vec());
    let pair = Ed25519KeyPair::from_pkcs8(&pkcs8)
        .map_err(|_| KeyError::Crypto("cannot read the new key".into()))?;
    let kid = format!("ed-{}", &random_token()[..16]);
    let jwk = serde_json::json!({
        "kty": "OKP", "crv": "Ed25519", "use": "sig", "alg": "EdDSA", "kid": kid,
        "x": B64.encode(pair.public_key().as_ref()),
    });
    let sealed = envelope::seal(kek, &sealing_name(&kid), &pkcs8);
    let record = KeyRecord {
        kid: kid.clone(),
        public_jwk: jwk.to_string(),
        private_sealed: serde_json::to_string(&sealed)
            .map_err(|e| KeyError::Crypto(e.to_string()))?,
        created_at: now,
        retired_at: None,
        publish_until: None,
    };
    let current = Current {
        kid,
        key: EncodingKey::from_ed_der(&pkcs8),
        loaded_at: Instant::now(),
    };
    Ok((record, current))
}

/// Opens a stored key's private half.
fn unseal(kek: &Kek, record: &KeyRecord) -> Result<Current, KeyError> {
    let refuse = |reason: String| KeyError::Sealed {
        kid: record.kid.clone(),
        reason,
    };
    let sealed: Sealed =
        serde_json::from_str(&record.private_sealed).map_err(|e| refuse(e.to_string()))?;
    let pkcs8 = envelope::open(kek, &sealing_name(&record.kid), &sealed)
        .map_err(|e| refuse(e.to_string()))?;
    Ok(Current {
        kid: record.kid.clone(),
        key: EncodingKey::from_ed_der(&pkcs8),
        loaded_at: Instant::now(),
    })
}

/// 32 random bytes, base64url: codes, refresh tokens, CSRF tokens, ids.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the OS random number generator is available");
    B64.encode(bytes)
}
