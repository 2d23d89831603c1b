//! Budgets in Redis, for several replicas spending one allowance: `[rate_limits] store
//! = "redis://..."`. Each budget check is one atomic Lua script (GCRA) on one key, timed
//! by the Redis server's own clock (`TIME`), so replicas whose clocks disagree still
//! agree on every budget; one key per script keeps each check in one cluster slot. A key
//! expires when its budget is full again, so idle users cost nothing. When Redis cannot
//! answer, `on_store_error` decides: refuse the call (`deny`, the default) or serve it
//! unlimited (`allow`); either way it is logged and counted.

use super::Rate;
use crate::domain::redact_url;
use crate::telemetry;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use serde::{Deserialize, Deserializer};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::OnceCell;

/// How long one check may wait for Redis before it counts as a store error.
const CHECK_TIMEOUT: Duration = Duration::from_millis(500);
/// At most one warning per this long while Redis keeps failing.
const WARN_EVERY: Duration = Duration::from_secs(10);
/// Every key this host writes starts with this.
const KEY_PREFIX: &str = "mcp-wasm-host:rate:";

/// GCRA on the server's clock. KEYS[1]: the budget. ARGV[1]: the emission interval and
/// ARGV[2] the burst tolerance, both in microseconds. Returns 0 when the call is
/// allowed (and spent), else the microseconds until it would be.
const GCRA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]))
if not tat or tat < now then tat = now end
local early = tat - now - tolerance
if early > 0 then return math.ceil(early) end
local next_tat = tat + interval
local ttl = math.ceil((next_tat - now) / 1000)
if ttl < 1 then ttl = 1 end
redis.call('SET', KEYS[1], string.format('%.0f', next_tat), 'PX', ttl)
return 0
";

/// `[rate_limits] store`: where the budgets are kept.
#[derive(Debug, Clone, Default)]
pub enum LimitStore {
    /// In this process (one replica).
    #[default]
    InProcess,
    /// In Redis (`redis://`), shared by every replica pointed at it.
    Redis(RedisStore),
}

/// A Redis server to keep budgets in.
#[derive(Clone)]
pub struct RedisStore {
    client: redis::Client,
    /// The URL without its password, for logs.
    shown: String,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RedisStore({})", self.shown)
    }
}

impl LimitStore {
    /// Reads `store = "..."`: `"memory"`, or a `redis://` URL.
    pub fn parse(text: &str) -> Result<Self, String> {
        let shown = redact_url(text);
        if text == "memory" {
            return Ok(Self::InProcess);
        }
        if text.starts_with("rediss://") {
            return Err(format!(
                "`{shown}`: TLS to Redis (rediss://) is not built yet; reach Redis over a \
                 private network with redis://"
            ));
        }
        if !text.starts_with("redis://") {
            return Err(format!(
                "`{shown}` is not a rate-limit store; use \"memory\" or a redis:// URL"
            ));
        }
        let client = redis::Client::open(text)
            .map_err(|e| format!("`{shown}` is not a usable Redis URL: {e}"))?;
        Ok(Self::Redis(RedisStore { client, shown }))
    }
}

impl<'de> Deserialize<'de> for LimitStore {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        LimitStore::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// `[rate_limits] on_store_error`: what a call gets when its budgets cannot be read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnStoreError {
    /// Refuse it: no call runs unmetered (the default).
    #[default]
    Deny,
    /// Serve it without limits until the store answers again.
    Allow,
}

impl OnStoreError {
    fn as_str(self) -> &'static str {
        match self {
            OnStoreError::Deny => "deny",
            OnStoreError::Allow => "allow",
        }
    }
}

/// One budget a request spends: which, at what rate, whose.
pub struct Spend<'a> {
    /// The budget's name (`per_user`, `authorization_server`...): the key's first part.
    pub budget: &'static str,
    /// Its rate.
    pub rate: Rate,
    /// Whose (the parts after the budget's name in the key).
    pub key: &'a [&'a str],
}

/// The budgets of every replica that shares one Redis.
pub struct SharedBudgets {
    store: RedisStore,
    on_error: OnStoreError,
    connection: OnceCell<ConnectionManager>,
    script: redis::Script,
    /// When the last warning was logged (ms since `started`), for [`WARN_EVERY`].
    warned_at: AtomicU64,
    started: Instant,
}

impl SharedBudgets {
    /// Budgets in `store`; connects on first use (a host starts while Redis is down).
    pub fn new(store: RedisStore, on_error: OnStoreError) -> Self {
        Self {
            store,
            on_error,
            connection: OnceCell::new(),
            script: redis::Script::new(GCRA),
            warned_at: AtomicU64::new(u64::MAX),
            started: Instant::now(),
        }
    }

    /// Spends one call of each budget in `spends`, in order, stopping at the first
    /// that is spent; or, if Redis fails, does what `on_store_error` says.
    pub async fn check(&self, spends: &[Spend<'_>]) -> Result<(), SharedRefusal> {
        for (index, spend) in spends.iter().enumerate() {
            match tokio::time::timeout(CHECK_TIMEOUT, self.spend(spend)).await {
                Ok(Ok(None)) => {}
                Ok(Ok(Some(retry_after))) => {
                    return Err(SharedRefusal::Spent { index, retry_after });
                }
                Ok(Err(error)) => return self.failed(&error.to_string()),
                Err(_) => return self.failed("no answer within 500 ms"),
            }
        }
        Ok(())
    }

    /// Whether Redis answers a `PING`, for the readiness check.
    pub async fn ping(&self) -> Result<(), String> {
        let attempt = async {
            let mut connection = self.connection().await?;
            redis::cmd("PING")
                .query_async::<String>(&mut connection)
                .await
        };
        match tokio::time::timeout(CHECK_TIMEOUT, attempt).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(error)) => Err(format!("redis {}: {error}", self.store.shown)),
            Err(_) => Err(format!(
                "redis {}: no answer within 500 ms",
                self.store.shown
            )),
        }
    }

    /// One budget: `None` when spent now, else how long until it allows a call.
    async fn spend(&self, spend: &Spend<'_>) -> redis::RedisResult<Option<Duration>> {
        let mut connection = self.connection().await?;
        let interval = spend.rate.interval();
        let tolerance = interval * (spend.rate.burst.get() - 1);
        let mut key = format!("{KEY_PREFIX}{}", spend.budget);
        for part in spend.key {
            key.push(':');
            key.push_str(part);
        }
        let early: u64 = self
            .script
            .key(key)
            .arg(micros(interval).max(1))
            .arg(micros(tolerance))
            .invoke_async(&mut connection)
            .await?;
        Ok((early > 0).then(|| Duration::from_micros(early)))
    }

    async fn connection(&self) -> redis::RedisResult<ConnectionManager> {
        self.connection
            .get_or_try_init(|| async {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(CHECK_TIMEOUT))
                    .set_response_timeout(Some(CHECK_TIMEOUT))
                    .set_number_of_retries(1)
                    .set_max_delay(Duration::from_millis(200));
                ConnectionManager::new_lazy_with_config(self.store.client.clone(), config)
            })
            .await
            .cloned()
    }

    /// Redis failed: counted, logged (at most every [`WARN_EVERY`]), then denied or
    /// allowed as configured.
    fn failed(&self, error: &str) -> Result<(), SharedRefusal> {
        telemetry::limit_store_error(self.on_error.as_str());
        let now = self.started.elapsed().as_millis() as u64;
        let last = self.warned_at.load(Ordering::Relaxed);
        if (last == u64::MAX || now.saturating_sub(last) >= WARN_EVERY.as_millis() as u64)
            && self
                .warned_at
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(
                store = %self.store.shown,
                on_store_error = self.on_error.as_str(),
                %error,
                "rate-limit store unavailable"
            );
        }
        match self.on_error {
            OnStoreError::Deny => Err(SharedRefusal::StoreDown),
            OnStoreError::Allow => Ok(()),
        }
    }
}

/// Why [`SharedBudgets::check`] refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SharedRefusal {
    /// The budget `spends[index]` is spent; it allows a request after `retry_after`.
    Spent {
        /// Which of the spends.
        index: usize,
        /// When it allows one again.
        retry_after: Duration,
    },
    /// Redis did not answer and the config says deny.
    StoreDown,
}

fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stores_parse_and_hide_passwords() {
        assert!(matches!(
            LimitStore::parse("memory").unwrap(),
            LimitStore::InProcess
        ));
        let LimitStore::Redis(store) =
            LimitStore::parse("redis://:s3cret@10.0.0.5:6379/2").unwrap()
        else {
            panic!("not redis");
        };
        assert!(!format!("{store:?}").contains("s3cret"), "{store:?}");
        assert!(format!("{store:?}").contains("10.0.0.5"), "{store:?}");
        let err = LimitStore::parse("memcached://x").unwrap_err();
        assert!(
            err.contains("memcached://x") && err.contains("redis://"),
            "{err}"
        );
        let err = LimitStore::parse("rediss://10.0.0.5").unwrap_err();
        assert!(err.contains("not built yet"), "{err}");
        let err = LimitStore::parse("redis://:pw@").unwrap_err();
        assert!(!err.contains("pw@"), "{err}");
    }
}
