//! Tokens already verified, remembered briefly so a client's every request does not pay
//! for a signature check again. Keyed by the SHA-256 of the token (the cache holds no
//! token), bounded in entries, and an entry is never used at or past the token's `exp`
//! nor longer than [`MAX_AGE`] after it was verified: a key the issuer retires stops
//! verifying its tokens within that time. Only accepted tokens are kept.

use crate::pipeline::context::TokenClaims;
use sha2::{Digest, Sha256};
use std::time::{Duration, SystemTime};

/// Longest a verification is reused.
pub const MAX_AGE: Duration = Duration::from_secs(60);

/// Tokens remembered at most (a few hundred bytes each).
pub const CAPACITY: usize = 10_000;

/// A verified token's claims and until when they may be reused.
#[derive(Clone)]
struct Verified {
    claims: TokenClaims,
    until: SystemTime,
}

/// Verified tokens by the SHA-256 of their text.
pub struct TokenCache {
    entries: quick_cache::sync::Cache<[u8; 32], Verified>,
}

impl Default for TokenCache {
    fn default() -> Self {
        Self::new(CAPACITY)
    }
}

impl TokenCache {
    /// A cache of at most `capacity` tokens.
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: quick_cache::sync::Cache::new(capacity.max(1)),
        }
    }

    /// What `token` was verified to say, if it was within [`MAX_AGE`] and is not
    /// expired at `now`.
    pub fn get(&self, token: &str, now: SystemTime) -> Option<TokenClaims> {
        let key = key(token);
        let verified = self.entries.get(&key)?;
        if now < verified.until {
            return Some(verified.claims);
        }
        self.entries.remove(&key);
        None
    }

    /// Remembers that `token`, which expires at `exp` (seconds since the epoch), was
    /// verified at `now` to say `claims`.
    pub fn insert(&self, token: &str, claims: &TokenClaims, exp: u64, now: SystemTime) {
        let expires = SystemTime::UNIX_EPOCH + Duration::from_secs(exp);
        let until = expires.min(now + MAX_AGE);
        if until <= now {
            return;
        }
        self.entries.insert(
            key(token),
            Verified {
                claims: claims.clone(),
                until,
            },
        );
    }

    /// Tokens remembered now.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether none is remembered.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

fn key(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(subject: &str) -> TokenClaims {
        TokenClaims {
            subject: subject.into(),
            client_id: None,
            scopes: Vec::new(),
        }
    }

    fn epoch(seconds: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(seconds)
    }

    #[test]
    fn a_token_is_reused_until_its_exp_and_never_after() {
        let cache = TokenCache::default();
        cache.insert("t", &claims("ada"), 1_000, epoch(990));
        assert_eq!(cache.get("t", epoch(999)).unwrap().subject, "ada");
        assert!(cache.get("t", epoch(1_000)).is_none());
        // The expired entry is gone, not just skipped.
        assert!(cache.is_empty());
    }

    #[test]
    fn a_long_lived_token_is_verified_again_after_max_age() {
        let cache = TokenCache::default();
        let now = epoch(10_000);
        cache.insert("t", &claims("ada"), 100_000, now);
        assert!(
            cache
                .get("t", now + MAX_AGE - Duration::from_secs(1))
                .is_some()
        );
        assert!(cache.get("t", now + MAX_AGE).is_none());
    }

    #[test]
    fn other_tokens_miss_and_expired_ones_are_not_kept() {
        let cache = TokenCache::default();
        cache.insert("t", &claims("ada"), 1_000, epoch(990));
        assert!(cache.get("u", epoch(990)).is_none());
        assert!(cache.get("t ", epoch(990)).is_none());
        cache.insert("old", &claims("bob"), 500, epoch(990));
        assert!(cache.get("old", epoch(400)).is_none());
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn the_cache_stays_within_its_capacity() {
        let cache = TokenCache::new(100);
        for i in 0..1_000 {
            cache.insert(&format!("token-{i}"), &claims("ada"), 10_000, epoch(1));
        }
        assert!(cache.len() <= 100, "{} entries", cache.len());
    }
}
