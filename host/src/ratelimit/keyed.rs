//! A keyed rate limiter whose memory is bounded: governor's GCRA over a state store
//! that holds at most `max_keys` keys. Keys come from outside (token subjects, client
//! addresses), so a flood of new ones must not grow memory without limit.
//!
//! When the store is full, keys whose state is indistinguishable from a fresh one (their
//! allowance has refilled) are dropped first; if that frees too little, the half of the
//! keys closest to a full allowance is dropped too. Those keys start afresh: under a
//! flood of distinct keys a few callers may get a fresh budget early, but memory stays
//! bounded and the callers spending fastest keep their state.

use governor::Quota;
use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::keyed::ShrinkableKeyedStateStore;
use governor::state::{RateLimiter, StateStore};
use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hash};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Shards of the state store: calls for different keys rarely wait on each other.
const SHARDS: usize = 16;

/// Per-key limiter; `check` answers how long to wait when a key is over its rate.
pub struct KeyedLimiter<K: Hash + Eq + Clone, C: Clock = DefaultClock> {
    limiter: RateLimiter<K, BoundedStore<K>, C, NoOpMiddleware<C::Instant>>,
    /// The same store the limiter holds, for making room.
    store: BoundedStore<K>,
    max_keys: usize,
    /// Held while one caller makes room, so concurrent callers don't all scan.
    pruning: Mutex<()>,
}

impl<K: Hash + Eq + Clone> KeyedLimiter<K> {
    /// A limiter allowing `quota` per key, remembering at most `max_keys` keys.
    pub fn new(quota: Quota, max_keys: usize) -> Self {
        Self::with_clock(quota, max_keys, DefaultClock::default())
    }
}

impl<K: Hash + Eq + Clone, C: Clock> KeyedLimiter<K, C> {
    /// A limiter reading time from `clock`.
    pub fn with_clock(quota: Quota, max_keys: usize, clock: C) -> Self {
        let store = BoundedStore::default();
        Self {
            limiter: RateLimiter::new(quota, store.clone(), clock),
            store,
            max_keys: max_keys.max(2),
            pruning: Mutex::new(()),
        }
    }

    /// Spends one call of `key`'s allowance, or says how long until one is available.
    pub fn check(&self, key: &K) -> Result<(), Duration> {
        if self.limiter.len() >= self.max_keys {
            self.make_room();
        }
        self.limiter
            .check_key(key)
            .map_err(|not_until| not_until.wait_time_from(self.limiter.clock().now()))
    }

    /// How many keys the limiter holds state for.
    pub fn len(&self) -> usize {
        self.limiter.len()
    }

    /// Whether the limiter holds no state.
    pub fn is_empty(&self) -> bool {
        self.limiter.is_empty()
    }

    /// Drops the keys whose allowance has refilled; used on a timer, and when full.
    pub fn prune(&self) {
        self.limiter.retain_recent();
    }

    fn make_room(&self) {
        let Ok(_one_at_a_time) = self.pruning.try_lock() else {
            return;
        };
        self.prune();
        if self.limiter.len() >= self.max_keys * 9 / 10 {
            // Keys the caller cannot tell from fresh ones are gone; what is left was
            // all used within one period. Keep the half furthest in debt.
            self.store.keep_furthest_half();
        }
    }
}

/// The state store: each key's theoretical arrival time (GCRA's one number), in
/// shards. Clones share the shards.
pub struct BoundedStore<K>(Arc<Shards<K>>);

struct Shards<K> {
    shards: Vec<Mutex<HashMap<K, u64>>>,
    hasher: RandomState,
}

impl<K> Clone for BoundedStore<K> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<K> Default for BoundedStore<K> {
    fn default() -> Self {
        Self(Arc::new(Shards {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: RandomState::new(),
        }))
    }
}

impl<K: Hash + Eq> BoundedStore<K> {
    fn shard(&self, key: &K) -> &Mutex<HashMap<K, u64>> {
        let index = self.0.hasher.hash_one(key) as usize % SHARDS;
        &self.0.shards[index]
    }

    /// Drops the half of the keys closest to a full allowance (the earliest arrival
    /// times), keeping the ones furthest in debt.
    fn keep_furthest_half(&self) {
        let mut arrivals: Vec<u64> = Vec::new();
        for shard in &self.0.shards {
            arrivals.extend(lock(shard).values().copied());
        }
        if arrivals.is_empty() {
            return;
        }
        let middle = arrivals.len() / 2;
        let (_, median, _) = arrivals.select_nth_unstable(middle);
        let median = *median;
        for shard in &self.0.shards {
            lock(shard).retain(|_, arrival| *arrival > median);
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl<K: Hash + Eq + Clone> StateStore for BoundedStore<K> {
    type Key = K;

    fn measure_and_replace<T, F, E>(&self, key: &K, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        let mut shard = lock(self.shard(key));
        let previous = shard.get(key).copied().map(Nanos::from);
        let (answer, next) = f(previous)?;
        match shard.get_mut(key) {
            Some(arrival) => *arrival = next.as_u64(),
            None => {
                shard.insert(key.clone(), next.as_u64());
            }
        }
        Ok(answer)
    }
}

impl<K: Hash + Eq + Clone> ShrinkableKeyedStateStore<K> for BoundedStore<K> {
    fn retain_recent(&self, drop_below: Nanos) {
        let drop_below = drop_below.as_u64();
        for shard in &self.0.shards {
            let mut shard = lock(shard);
            shard.retain(|_, arrival| *arrival > drop_below);
            if shard.capacity() > 4 * shard.len().max(64) {
                shard.shrink_to_fit();
            }
        }
    }

    fn len(&self) -> usize {
        self.0.shards.iter().map(|s| lock(s).len()).sum()
    }

    fn is_empty(&self) -> bool {
        self.0.shards.iter().all(|s| lock(s).is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ratelimit::rate::Rate;
    use governor::clock::FakeRelativeClock;

    fn limiter(
        rate: &str,
        max_keys: usize,
    ) -> (KeyedLimiter<String, FakeRelativeClock>, FakeRelativeClock) {
        let clock = FakeRelativeClock::default();
        let quota = Rate::parse(rate).unwrap().quota();
        (
            KeyedLimiter::with_clock(quota, max_keys, clock.clone()),
            clock,
        )
    }

    #[test]
    fn a_key_trips_at_its_count_and_the_wait_is_exact() {
        let (limiter, clock) = limiter("3/min", 100);
        let alice = "alice".to_owned();
        for _ in 0..3 {
            limiter.check(&alice).unwrap();
        }
        // One call refills every 20 s.
        assert_eq!(limiter.check(&alice), Err(Duration::from_secs(20)));
        clock.advance(Duration::from_secs(5));
        assert_eq!(limiter.check(&alice), Err(Duration::from_secs(15)));
        // Another key has its own allowance.
        limiter.check(&"bob".to_owned()).unwrap();
        clock.advance(Duration::from_secs(15));
        limiter.check(&alice).unwrap();
        assert!(limiter.check(&alice).is_err());
    }

    #[test]
    fn refilled_keys_are_pruned() {
        let (limiter, clock) = limiter("2/s", 100);
        for n in 0..10 {
            limiter.check(&format!("k{n}")).unwrap();
        }
        assert_eq!(limiter.len(), 10);
        clock.advance(Duration::from_secs(2));
        limiter.prune();
        assert!(limiter.is_empty());
    }

    #[test]
    fn a_hundred_thousand_subjects_stay_within_the_bound() {
        let max_keys = 10_000;
        let (limiter, clock) = limiter("60/min", max_keys);
        // A steady spender, in debt the whole time.
        let spender = "steady".to_owned();
        for n in 0..100_000u32 {
            limiter.check(&format!("subject-{n}")).unwrap();
            if n % 1000 == 0 {
                let _ = limiter.check(&spender);
                clock.advance(Duration::from_millis(1));
            }
            assert!(
                limiter.len() <= max_keys,
                "{} keys after {n}",
                limiter.len()
            );
        }
        // Whatever was dropped, the spender's debt was kept: it is still limited.
        for _ in 0..60 {
            let _ = limiter.check(&spender);
        }
        assert!(limiter.check(&spender).is_err());
    }
}
