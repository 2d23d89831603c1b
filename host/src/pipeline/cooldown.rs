//! Cool-down for callers whose calls of a plugin keep crashing: after consecutive calls
//! that ended in a trap (a limit hit, a crash), that caller's next calls of the plugin
//! wait before they start, a little longer each time, so a stream of endless loops or
//! memory bombs cannot eat the CPU that other calls need. One call that completes
//! resets it. It is kept per caller x plugin: one caller's crashing inputs do not slow
//! anyone else's calls.

use crate::domain::PluginName;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Most caller x plugin pairs in cool-down at once; past it the pairs whose wait is
/// over are forgotten first, then the rest (memory stays bounded under a flood).
const MAX_TRACKED: usize = 10_000;

/// Who is cooling down from what.
pub type Key = (String, PluginName);

/// Every caller x plugin in cool-down. Pairs whose last call completed are not kept.
#[derive(Debug, Default)]
pub struct Cooldowns(Mutex<HashMap<Key, Cooldown>>);

impl Cooldowns {
    /// How long `key`'s call starting now must wait.
    pub fn wait(&self, key: &Key) -> Duration {
        let map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.get(key).map_or(Duration::ZERO, Cooldown::wait)
    }

    /// Records how `key`'s call ended.
    pub fn record(&self, key: &Key, crashed: bool) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if !crashed {
            map.remove(key);
            return;
        }
        if !map.contains_key(key) && map.len() >= MAX_TRACKED {
            let now = Instant::now();
            map.retain(|_, c| !c.wait_at(now).is_zero());
            if map.len() >= MAX_TRACKED {
                map.clear();
            }
        }
        map.entry(key.clone()).or_default().record(true);
    }

    /// How many pairs are in cool-down.
    pub fn len(&self) -> usize {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether no pair is in cool-down.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Wait after the first crash; it doubles with each further crash in a row.
const FIRST_WAIT: Duration = Duration::from_millis(20);
/// The longest wait, however many crashes in a row.
const MAX_WAIT: Duration = Duration::from_secs(1);

#[derive(Debug, Default)]
struct State {
    crashes_in_a_row: u32,
    not_before: Option<Instant>,
}

/// One caller x plugin's cool-down state.
#[derive(Debug, Default)]
pub struct Cooldown(Mutex<State>);

impl Cooldown {
    /// How long a call starting now must wait (zero when the plugin is healthy).
    pub fn wait(&self) -> Duration {
        self.wait_at(Instant::now())
    }

    fn wait_at(&self, now: Instant) -> Duration {
        let state = self.0.lock().unwrap_or_else(|p| p.into_inner());
        state
            .not_before
            .map_or(Duration::ZERO, |t| t.saturating_duration_since(now))
    }

    /// Records how a call ended.
    pub fn record(&self, crashed: bool) {
        self.record_at(crashed, Instant::now());
    }

    fn record_at(&self, crashed: bool, now: Instant) {
        let mut state = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if !crashed {
            *state = State::default();
            return;
        }
        state.crashes_in_a_row = state.crashes_in_a_row.saturating_add(1);
        let wait = backoff(state.crashes_in_a_row);
        state.not_before = Some(now + wait);
    }
}

/// The wait after `crashes` crashes in a row: 20 ms, 40 ms, 80 ms, ... up to 1 s.
fn backoff(crashes: u32) -> Duration {
    let doublings = crashes.saturating_sub(1).min(16);
    FIRST_WAIT.saturating_mul(1 << doublings).min(MAX_WAIT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_grow_with_crashes_in_a_row_and_reset_on_success() {
        assert_eq!(backoff(1), Duration::from_millis(20));
        assert_eq!(backoff(2), Duration::from_millis(40));
        assert_eq!(backoff(5), Duration::from_millis(320));
        assert_eq!(backoff(50), MAX_WAIT);
        let cooldown = Cooldown::default();
        let t0 = Instant::now();
        assert_eq!(cooldown.wait_at(t0), Duration::ZERO);
        cooldown.record_at(true, t0);
        cooldown.record_at(true, t0);
        assert_eq!(cooldown.wait_at(t0), Duration::from_millis(40));
        let later = t0 + Duration::from_millis(30);
        assert_eq!(cooldown.wait_at(later), Duration::from_millis(10));
        assert_eq!(cooldown.wait_at(t0 + MAX_WAIT), Duration::ZERO);
        cooldown.record_at(false, later);
        assert_eq!(cooldown.wait_at(later), Duration::ZERO);
    }

    #[test]
    fn one_callers_crashes_do_not_slow_another() {
        let cooldowns = Cooldowns::default();
        let plugin = PluginName::try_from("p".to_owned()).unwrap();
        let (mallory, alice) = (
            ("mallory".to_owned(), plugin.clone()),
            ("alice".to_owned(), plugin),
        );
        cooldowns.record(&mallory, true);
        assert!(!cooldowns.wait(&mallory).is_zero());
        assert_eq!(cooldowns.wait(&alice), Duration::ZERO);
        cooldowns.record(&alice, false);
        assert_eq!(cooldowns.len(), 1);
        cooldowns.record(&mallory, false);
        assert!(cooldowns.is_empty());
    }

    #[test]
    fn the_pairs_in_cool_down_stay_bounded() {
        let cooldowns = Cooldowns::default();
        let plugin = PluginName::try_from("p".to_owned()).unwrap();
        for n in 0..(MAX_TRACKED + 500) {
            cooldowns.record(&(format!("caller-{n}"), plugin.clone()), true);
            assert!(cooldowns.len() <= MAX_TRACKED);
        }
    }
}
