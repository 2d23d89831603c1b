//! CPU fairness between calls. Every call yields its worker thread at each epoch tick;
//! a call still computing after [`LONG_CALL`] also steps aside for [`BACKOFF`] at each
//! tick while other tool calls keep arriving, so an endless loop cannot starve honest
//! calls (it still ends at its deadline). With no other traffic, a long call runs at
//! full speed.
//!
//! "Other calls keep arriving" is judged by the start time of the newest call: the
//! time honest calls spend in the pipeline is microseconds, far too short for a count
//! of calls in flight to see them.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Run time after which a call counts as long.
pub const LONG_CALL: Duration = Duration::from_millis(10);
/// How long a long call pauses at each tick while other calls arrive: with a 1 ms
/// tick it gets at most a fifth of a core.
pub const BACKOFF: Duration = Duration::from_millis(4);
/// A call started this recently means there is other traffic to make room for.
const RECENT: Duration = Duration::from_millis(50);

/// When the newest tool call started.
#[derive(Debug)]
pub struct Load {
    origin: Instant,
    /// Nanoseconds after `origin` at which the newest call started.
    newest_start: AtomicU64,
}

impl Default for Load {
    fn default() -> Self {
        Self {
            origin: Instant::now(),
            newest_start: AtomicU64::new(0),
        }
    }
}

impl Load {
    fn nanos(&self, at: Instant) -> u64 {
        u64::try_from(at.duration_since(self.origin).as_nanos()).unwrap_or(u64::MAX)
    }

    /// Notes that a tool call started now; returns its ticket.
    pub fn ticket(self: &Arc<Self>) -> Ticket {
        self.ticket_at(Instant::now())
    }

    fn ticket_at(self: &Arc<Self>, started: Instant) -> Ticket {
        self.newest_start
            .fetch_max(self.nanos(started), Ordering::Relaxed);
        Ticket {
            load: self.clone(),
            started,
        }
    }
}

/// One call's view of the [`Load`].
#[derive(Debug)]
pub struct Ticket {
    load: Arc<Load>,
    started: Instant,
}

impl Ticket {
    /// At an epoch tick: `None` to just yield, or how long to step aside.
    pub fn on_tick(&self) -> Option<Duration> {
        self.on_tick_at(Instant::now())
    }

    fn on_tick_at(&self, now: Instant) -> Option<Duration> {
        if now.duration_since(self.started) < LONG_CALL {
            return None;
        }
        let newest = self.load.newest_start.load(Ordering::Relaxed);
        let others_arriving = newest > self.load.nanos(self.started)
            && self.load.nanos(now).saturating_sub(newest) < RECENT.as_nanos() as u64;
        others_arriving.then_some(BACKOFF)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_calls_back_off_only_while_other_calls_arrive() {
        let load = Arc::new(Load::default());
        let t0 = load.origin + Duration::from_secs(1);
        let long = load.ticket_at(t0);
        let running = t0 + LONG_CALL;
        // Alone: full speed.
        assert_eq!(long.on_tick_at(running), None);
        // Another call starts: the long one steps aside...
        let _newcomer = load.ticket_at(running);
        assert_eq!(long.on_tick_at(running), Some(BACKOFF));
        assert_eq!(long.on_tick_at(running + RECENT / 2), Some(BACKOFF));
        // ...until the newest arrival is old news.
        assert_eq!(long.on_tick_at(running + RECENT), None);
    }

    #[test]
    fn short_calls_never_back_off() {
        let load = Arc::new(Load::default());
        let t0 = load.origin + Duration::from_secs(1);
        let short = load.ticket_at(t0);
        let _other = load.ticket_at(t0 + Duration::from_millis(1));
        assert_eq!(short.on_tick_at(t0 + Duration::from_millis(2)), None);
        // The same call, once it has run long enough, does.
        assert_eq!(short.on_tick_at(t0 + LONG_CALL), Some(BACKOFF));
    }
}
