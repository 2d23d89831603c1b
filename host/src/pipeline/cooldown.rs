//! Cool-down for plugins that keep crashing: after consecutive calls that ended in a
//! trap (a limit hit, a crash), the plugin's next calls wait before they start, a
//! little longer each time, so a stream of endless loops or memory bombs cannot eat the
//! CPU that other plugins' calls need. One call that completes resets it.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Wait after the first crash; it doubles with each further crash in a row.
const FIRST_WAIT: Duration = Duration::from_millis(20);
/// The longest wait, however many crashes in a row.
const MAX_WAIT: Duration = Duration::from_secs(1);

#[derive(Debug, Default)]
struct State {
    crashes_in_a_row: u32,
    not_before: Option<Instant>,
}

/// One plugin's cool-down state.
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
}
