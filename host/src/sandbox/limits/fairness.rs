//! CPU fairness between calls. Every call yields its worker thread at each epoch tick;
//! a call still computing after [`LONG_CALL`] also steps aside for [`BACKOFF`] at each
//! tick while other tool calls keep arriving, so an endless loop cannot starve honest
//! calls (it still ends at its deadline). With no other traffic, a long call runs at
//! full speed.
//!
//! "Other calls keep arriving" is judged by the start time of the newest call: the
//! time honest calls spend in the pipeline is microseconds, far too short for a count
//! of calls in flight to see them.
//!
//! The [`Load`] also counts the calls running, for the epoch ticker (the `wasm-epoch`
//! thread the sandbox starts), which sleeps while there are none and is woken by the
//! next.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// Run time after which a call counts as long.
pub const LONG_CALL: Duration = Duration::from_millis(10);
/// How long a long call pauses at each tick while other calls arrive: with a 1 ms
/// tick it gets at most a fifth of a core.
pub const BACKOFF: Duration = Duration::from_millis(4);
/// A call started this recently means there is other traffic to make room for.
const RECENT: Duration = Duration::from_millis(50);

/// When the newest tool call started, and how many are running.
#[derive(Debug)]
pub struct Load {
    origin: Instant,
    /// Nanoseconds after `origin` at which the newest call started.
    newest_start: AtomicU64,
    /// Calls (instances) alive now.
    running: AtomicUsize,
    /// The epoch ticker's thread, and whether it sleeps (the next call wakes it).
    ticker: OnceLock<std::thread::Thread>,
    ticker_asleep: AtomicBool,
}

impl Default for Load {
    fn default() -> Self {
        Self {
            origin: Instant::now(),
            newest_start: AtomicU64::new(0),
            running: AtomicUsize::new(0),
            ticker: OnceLock::new(),
            ticker_asleep: AtomicBool::new(false),
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
        // Sequentially consistent with the ticker's own steps (see `sleep_while_idle`):
        // either it sees this call running, or this call sees it asleep and wakes it.
        self.running.fetch_add(1, Ordering::SeqCst);
        if self.ticker_asleep.load(Ordering::SeqCst)
            && let Some(ticker) = self.ticker.get()
        {
            ticker.unpark();
        }
        Ticket {
            load: self.clone(),
            started,
        }
    }

    /// Calls running now.
    pub fn running(&self) -> usize {
        self.running.load(Ordering::SeqCst)
    }

    /// On the ticker's thread: sleeps until a call starts (or `at_most` passes) if none
    /// is running. Returns whether it slept.
    pub fn sleep_while_idle(&self, at_most: Duration) -> bool {
        let _ = self.ticker.set(std::thread::current());
        self.ticker_asleep.store(true, Ordering::SeqCst);
        let idle = self.running() == 0;
        if idle {
            std::thread::park_timeout(at_most);
        }
        self.ticker_asleep.store(false, Ordering::SeqCst);
        idle
    }
}

/// One call's view of the [`Load`]; the call counts as running until it is dropped.
#[derive(Debug)]
pub struct Ticket {
    load: Arc<Load>,
    started: Instant,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.load.running.fetch_sub(1, Ordering::SeqCst);
    }
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
    fn tickets_count_the_calls_running() {
        let load = Arc::new(Load::default());
        let first = load.ticket();
        let second = load.ticket();
        assert_eq!(load.running(), 2);
        drop(first);
        assert_eq!(load.running(), 1);
        // Not idle: the ticker does not sleep.
        assert!(!load.sleep_while_idle(Duration::from_secs(60)));
        drop(second);
        assert_eq!(load.running(), 0);
    }

    /// A sleeping ticker is woken by the next call, long before its timeout (were it
    /// not, the thread would sleep the whole minute).
    #[test]
    fn the_next_call_wakes_the_idle_ticker() {
        let load = Arc::new(Load::default());
        let ticker = {
            let load = load.clone();
            std::thread::spawn(move || {
                let started = Instant::now();
                load.sleep_while_idle(Duration::from_secs(60));
                started.elapsed()
            })
        };
        while !load.ticker_asleep.load(Ordering::SeqCst) {
            std::thread::yield_now();
        }
        let _call = load.ticket();
        let slept = ticker.join().unwrap();
        assert!(slept < Duration::from_secs(30), "slept {slept:?}");
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
