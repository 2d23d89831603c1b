//! Per-plugin resource limits: `limits = { memory, timeout, max_concurrency,
//! max_output }` parsed at load, enforced on every call (a memory limiter in the store,
//! an epoch deadline plus an async timeout, a semaphore, a result-size cap), and the
//! per-call caps on what a call holds in the host (`max_open_files`,
//! `max_connections`, `max_listings`, `max_handles`), which a plugin that needs more
//! may raise.

pub mod fairness;

use crate::domain::{ByteSize, HumanDuration, MIB};
use serde::Deserialize;
use std::time::{Duration, Instant};

/// Default memory cap: enough for a typical Rust or JS plugin with room to spare.
pub const DEFAULT_MEMORY: u64 = 64 * MIB;
/// Default deadline for one call, including time blocked on the network.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default time one call may wait, in all, for the client to answer its sampling and
/// elicitation requests (a person may be answering).
pub const DEFAULT_CLIENT_WAIT: Duration = Duration::from_secs(300);
/// Default number of calls of one plugin running at once.
pub const DEFAULT_MAX_CONCURRENCY: u32 = 16;
/// Default cap on the size of one call's result.
pub const DEFAULT_MAX_OUTPUT: u64 = MIB;

/// Default files and directories one call may hold open at once (besides its
/// preopens): each holds one of the host's file descriptors.
pub const DEFAULT_MAX_OPEN_FILES: u32 = 256;
/// Default outgoing connections one call may have open at once (each holds a file
/// descriptor of the host).
pub const DEFAULT_MAX_CONNECTIONS: u32 = 16;
/// Default directory listings one call may hold at once.
pub const DEFAULT_MAX_LISTINGS: u32 = 16;
/// Default host-side objects (handles, streams, requests) one call may hold: they live
/// outside the plugin's memory limit.
pub const DEFAULT_MAX_HANDLES: u32 = 2_000;

/// The highest each per-call cap may be raised to: `(key, highest)`.
const CAP_CEILINGS: [(&str, u32); 4] = [
    ("max_open_files", 16_384),
    ("max_connections", 1_024),
    ("max_listings", 1_024),
    ("max_handles", 1_000_000),
];

/// Upper bounds an operator may configure; the pooling allocator reserves slots sized
/// for the largest memory, so this also bounds the host's address-space use.
pub const MAX_MEMORY: u64 = 4 * 1024 * MIB;
const MIN_MEMORY: u64 = MIB;
const MAX_TIMEOUT: Duration = Duration::from_secs(3600);
const MIN_TIMEOUT: Duration = Duration::from_millis(10);
const MAX_CLIENT_WAIT: Duration = Duration::from_secs(24 * 3600);
const MIN_CLIENT_WAIT: Duration = Duration::from_secs(1);
/// Most calls of one plugin an operator may let run at once.
pub const MAX_CONCURRENCY: u32 = 1000;
const MAX_OUTPUT: u64 = 64 * MIB;
const MIN_OUTPUT: u64 = 1024;

/// How often the engine's epoch advances: the granularity of CPU deadlines, and how
/// often a busy plugin yields its worker thread to other calls.
pub const EPOCH_TICK: Duration = Duration::from_millis(1);

/// A plugin's limits, with every field defaulted.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "RawLimits")]
pub struct Limits {
    /// Largest linear memory, in bytes.
    pub memory: u64,
    /// Deadline for one call, CPU and waiting together.
    pub timeout: Duration,
    /// Calls of this plugin running at once; more wait briefly, then get "busy".
    pub max_concurrency: u32,
    /// Largest result (content and structured content), in bytes.
    pub max_output: u64,
    /// Files and directories one call may hold open (besides its preopens).
    pub max_open_files: u32,
    /// Outgoing connections one call may have open at once.
    pub max_connections: u32,
    /// Directory listings one call may hold at once.
    pub max_listings: u32,
    /// Host-side handles (streams, requests, descriptors) one call may hold.
    pub max_handles: u32,
    /// How long one call may wait, in all, for the client to answer its sampling and
    /// elicitation requests; the call's own clock (`timeout`) stops meanwhile.
    pub client_wait: Duration,
}

impl Limits {
    /// The host file descriptors one call may hold: its open files and connections
    /// (its granted directories are counted by the pool).
    pub fn fds_per_call(&self) -> u64 {
        u64::from(self.max_open_files) + u64::from(self.max_connections)
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            memory: DEFAULT_MEMORY,
            timeout: DEFAULT_TIMEOUT,
            max_concurrency: DEFAULT_MAX_CONCURRENCY,
            max_output: DEFAULT_MAX_OUTPUT,
            max_open_files: DEFAULT_MAX_OPEN_FILES,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_listings: DEFAULT_MAX_LISTINGS,
            max_handles: DEFAULT_MAX_HANDLES,
            client_wait: DEFAULT_CLIENT_WAIT,
        }
    }
}

/// `limits` as written: sizes like `"64MiB"`, durations like `"5s"`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    memory: Option<String>,
    timeout: Option<String>,
    max_concurrency: Option<u32>,
    max_output: Option<String>,
    max_open_files: Option<u32>,
    max_connections: Option<u32>,
    max_listings: Option<u32>,
    max_handles: Option<u32>,
    client_wait: Option<String>,
}

impl TryFrom<RawLimits> for Limits {
    type Error = String;
    fn try_from(raw: RawLimits) -> Result<Self, String> {
        let defaults = Limits::default();
        let memory = match raw.memory {
            Some(text) => {
                ByteSize::parse(&text)
                    .map_err(|e| format!("limits.memory: {e}"))?
                    .0
            }
            None => defaults.memory,
        };
        if !(MIN_MEMORY..=MAX_MEMORY).contains(&memory) {
            return Err(format!(
                "limits.memory must be from 1MiB to 4GiB, got {memory} bytes"
            ));
        }
        let timeout = match raw.timeout {
            Some(text) => {
                HumanDuration::parse(&text)
                    .map_err(|e| format!("limits.timeout {e}"))?
                    .0
            }
            None => defaults.timeout,
        };
        if !(MIN_TIMEOUT..=MAX_TIMEOUT).contains(&timeout) {
            return Err(format!(
                "limits.timeout must be from 10ms to 1h, got {}",
                humantime::format_duration(timeout)
            ));
        }
        let client_wait = match raw.client_wait {
            Some(text) => {
                HumanDuration::parse(&text)
                    .map_err(|e| format!("limits.client_wait {e}"))?
                    .0
            }
            None => defaults.client_wait,
        };
        if !(MIN_CLIENT_WAIT..=MAX_CLIENT_WAIT).contains(&client_wait) {
            return Err(format!(
                "limits.client_wait must be from 1s to 24h, got {}",
                humantime::format_duration(client_wait)
            ));
        }
        let max_concurrency = raw.max_concurrency.unwrap_or(defaults.max_concurrency);
        if !(1..=MAX_CONCURRENCY).contains(&max_concurrency) {
            return Err(format!(
                "limits.max_concurrency must be from 1 to {MAX_CONCURRENCY}, got {max_concurrency}"
            ));
        }
        let max_output = match raw.max_output {
            Some(text) => {
                ByteSize::parse(&text)
                    .map_err(|e| format!("limits.max_output: {e}"))?
                    .0
            }
            None => defaults.max_output,
        };
        if !(MIN_OUTPUT..=MAX_OUTPUT).contains(&max_output) {
            return Err(format!(
                "limits.max_output must be from 1KiB to 64MiB, got {max_output} bytes"
            ));
        }
        let cap = |key: &str, value: Option<u32>, default: u32| -> Result<u32, String> {
            let highest = CAP_CEILINGS
                .iter()
                .find(|(name, _)| *name == key)
                .map_or(u32::MAX, |(_, highest)| *highest);
            match value {
                None => Ok(default),
                Some(n) if (1..=highest).contains(&n) => Ok(n),
                Some(n) => Err(format!("limits.{key} must be from 1 to {highest}, got {n}")),
            }
        };
        Ok(Self {
            memory,
            timeout,
            max_concurrency,
            max_output,
            max_open_files: cap(
                "max_open_files",
                raw.max_open_files,
                defaults.max_open_files,
            )?,
            max_connections: cap(
                "max_connections",
                raw.max_connections,
                defaults.max_connections,
            )?,
            max_listings: cap("max_listings", raw.max_listings, defaults.max_listings)?,
            max_handles: cap("max_handles", raw.max_handles, defaults.max_handles)?,
            client_wait,
        })
    }
}

/// Why a call was stopped by a limit: carried as the error of the trap it raises, so
/// the caller can tell the client which limit it hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LimitHit {
    /// The call's deadline passed.
    #[error("timed out after {}", humantime::format_duration(*.0))]
    Timeout(Duration),
    /// The plugin asked for more memory than its limit.
    #[error("ran out of memory (limit {} MiB)", .0 / MIB)]
    Memory(u64),
}

/// The store's resource limiter: refuses memory growth past the plugin's cap with a
/// trap (a plugin that cannot allocate cannot make progress anyway).
pub struct CallLimiter {
    /// Largest linear memory, in bytes.
    pub memory: u64,
    /// When the call's time is up.
    pub clock: CallClock,
    /// The call's time limit (for the error message).
    pub timeout: Duration,
}

/// A call's time limit, which stops while the call waits for the client to answer it
/// (a person may be answering) and runs again, with what was left, when it resumes.
/// Shared by the epoch callback (which traps a running plugin past it) and the task
/// that awaits the call ([`CallClock::expired`]).
#[derive(Debug, Clone)]
pub struct CallClock {
    /// When the time is up; `None` while the clock is stopped.
    deadline: std::sync::Arc<tokio::sync::watch::Sender<Option<Instant>>>,
}

impl CallClock {
    /// A running clock with `limit` left.
    pub fn start(limit: Duration) -> Self {
        let (deadline, _) = tokio::sync::watch::channel(Some(Instant::now() + limit));
        Self {
            deadline: std::sync::Arc::new(deadline),
        }
    }

    /// Whether the time is up (never while stopped).
    pub fn is_up(&self) -> bool {
        matches!(*self.deadline.borrow(), Some(deadline) if Instant::now() >= deadline)
    }

    /// Stops the clock; returns the time that was left.
    pub fn stop(&self) -> Duration {
        let now = Instant::now();
        let mut left = Duration::ZERO;
        self.deadline.send_modify(|deadline| {
            if let Some(at) = deadline.take() {
                left = at.saturating_duration_since(now);
            }
        });
        left
    }

    /// Runs the clock again with `left` to go.
    pub fn resume(&self, left: Duration) {
        self.deadline.send_replace(Some(Instant::now() + left));
    }

    /// Resolves when the time is up; waits while the clock is stopped.
    pub async fn expired(&self) {
        let mut deadline = self.deadline.subscribe();
        loop {
            let at = *deadline.borrow_and_update();
            match at {
                Some(at) if Instant::now() >= at => return,
                Some(at) => {
                    tokio::select! {
                        () = tokio::time::sleep_until(at.into()) => {}
                        _ = deadline.changed() => {}
                    }
                }
                // The sender lives as long as `self`: `changed` fails only after.
                None => {
                    if deadline.changed().await.is_err() {
                        return std::future::pending().await;
                    }
                }
            }
        }
    }
}

impl wasmtime::ResourceLimiter for CallLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired as u64 > self.memory {
            return Err(wasmtime::Error::new(LimitHit::Memory(self.memory)));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // Tables hold function references; a million entries is far past any real use.
        Ok(desired <= 1_000_000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Limits, String> {
        #[derive(Deserialize)]
        struct Wrapper {
            limits: Limits,
        }
        toml::from_str::<Wrapper>(text)
            .map(|w| w.limits)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_fill_what_is_missing() {
        let limits = parse("limits = { timeout = \"5s\" }").unwrap();
        assert_eq!(limits.timeout, Duration::from_secs(5));
        assert_eq!(limits.memory, DEFAULT_MEMORY);
        assert_eq!(limits.max_concurrency, DEFAULT_MAX_CONCURRENCY);
        assert_eq!(limits.max_output, DEFAULT_MAX_OUTPUT);
        let limits = parse(
            "limits = { memory = \"32MiB\", timeout = \"250ms\", max_concurrency = 2, max_output = \"8KiB\" }",
        )
        .unwrap();
        assert_eq!(
            limits,
            Limits {
                memory: 32 * MIB,
                timeout: Duration::from_millis(250),
                max_concurrency: 2,
                max_output: 8 * 1024,
                ..Limits::default()
            }
        );
        let raised = parse(
            "limits = { max_open_files = 1024, max_connections = 64, max_listings = 32, max_handles = 10000 }",
        )
        .unwrap();
        assert_eq!(
            (
                raised.max_open_files,
                raised.max_connections,
                raised.max_listings,
                raised.max_handles
            ),
            (1024, 64, 32, 10_000)
        );
        assert_eq!(raised.fds_per_call(), 1024 + 64);
        assert_eq!(Limits::default().fds_per_call(), 256 + 16);
    }

    #[test]
    fn bad_limits_are_refused_with_a_reason() {
        for (text, needle) in [
            ("limits = { memory = \"512KiB\" }", "from 1MiB"),
            ("limits = { memory = \"8GiB\" }", "to 4GiB"),
            ("limits = { memory = \"64MB\" }", "unknown unit"),
            ("limits = { timeout = \"soon\" }", "limits.timeout"),
            ("limits = { timeout = \"2h\" }", "to 1h"),
            ("limits = { max_concurrency = 0 }", "from 1 to"),
            ("limits = { max_output = \"1B\" }", "from 1KiB"),
            ("limits = { cpu = 1 }", "unknown field `cpu`"),
            (
                "limits = { max_open_files = 0 }",
                "limits.max_open_files must be from 1 to 16384",
            ),
            (
                "limits = { max_connections = 5000 }",
                "limits.max_connections must be from 1 to 1024",
            ),
            ("limits = { max_listings = 2000 }", "limits.max_listings"),
            ("limits = { max_handles = 2000000 }", "limits.max_handles"),
        ] {
            let err = parse(text).unwrap_err();
            assert!(err.contains(needle), "{text}: {err}");
        }
    }

    #[test]
    fn limit_messages() {
        assert_eq!(
            LimitHit::Timeout(Duration::from_secs(5)).to_string(),
            "timed out after 5s"
        );
        assert_eq!(
            LimitHit::Memory(64 * MIB).to_string(),
            "ran out of memory (limit 64 MiB)"
        );
    }
}
