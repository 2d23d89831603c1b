//! How big the sandbox is: the pooling allocator's slots (every plugin's concurrency,
//! the largest memory) and the process's open-file limit, raised at start to what the
//! plugins may hold at once (each call's open files and connections, at full
//! concurrency), with a warning when the system's hard limit is lower.

use super::fs::MAX_GRANTS;
use super::limits::{self, Limits};

/// Instances kept for calls outside the plugins' concurrency limits (`list-tools` at
/// load, `plugin inspect`).
const SPARE_INSTANCES: u32 = 8;

/// Descriptors kept for the host itself: clients, the listener, logs, the store.
const RESERVED_FDS: u64 = 1024;

/// How the pooling allocator is sized: from the plugins' limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolSize {
    /// Component instances alive at once (the sum of `max_concurrency`, plus spares).
    pub instances: u32,
    /// The largest `limits.memory` of any plugin.
    pub max_memory: u64,
    /// File descriptors the calls may hold with every instance busy: each plugin's
    /// open files, connections and granted directories at its full concurrency.
    pub call_fds: u64,
}

impl PoolSize {
    /// Slots for `concurrency` calls at once, of at most `max_memory` bytes each.
    pub fn new(concurrency: u32, max_memory: u64) -> Self {
        let instances = concurrency.saturating_add(SPARE_INSTANCES);
        Self {
            instances,
            max_memory: max_memory.max(limits::DEFAULT_MEMORY),
            call_fds: u64::from(instances).saturating_mul(Limits::default().fds_per_call()),
        }
    }

    /// The pool for these plugins: `(limits, directories granted)` of each.
    pub fn for_plugins<'a>(plugins: impl IntoIterator<Item = (&'a Limits, usize)>) -> Self {
        let (mut concurrency, mut memory) = (0u32, 0u64);
        let (mut call_fds, mut largest_call) = (0u64, Limits::default().fds_per_call());
        for (limits, granted_dirs) in plugins {
            concurrency = concurrency.saturating_add(limits.max_concurrency);
            memory = memory.max(limits.memory);
            let per_call = limits
                .fds_per_call()
                .saturating_add(granted_dirs.min(MAX_GRANTS) as u64);
            call_fds =
                call_fds.saturating_add(u64::from(limits.max_concurrency).saturating_mul(per_call));
            largest_call = largest_call.max(per_call);
        }
        Self {
            // The spare instances may run a call of any plugin.
            call_fds: call_fds
                .saturating_add(u64::from(SPARE_INSTANCES).saturating_mul(largest_call)),
            ..Self::new(concurrency, memory)
        }
    }

    /// File descriptors the host may need with every instance of the pool busy, each
    /// holding all it may (open files, connections, its granted directories).
    pub fn fds_needed(&self) -> u64 {
        self.call_fds.saturating_add(RESERVED_FDS)
    }
}

impl Default for PoolSize {
    fn default() -> Self {
        Self::new(limits::DEFAULT_MAX_CONCURRENCY, limits::DEFAULT_MEMORY)
    }
}

/// What [`raise`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The limit was already high enough.
    Enough(u64),
    /// The soft limit was raised to this.
    Raised(u64),
    /// The hard limit is below the need: the soft limit is as high as it goes.
    Short {
        /// The soft limit now.
        limit: u64,
        /// What the plugins may need.
        needed: u64,
    },
}

/// Raises the soft open-file limit towards `needed` (never above the hard limit).
#[cfg(unix)]
pub fn raise(needed: u64) -> std::io::Result<Outcome> {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    let unlimited = u64::MAX;
    let (soft, hard) = (
        limit.current.unwrap_or(unlimited),
        limit.maximum.unwrap_or(unlimited),
    );
    if soft >= needed {
        return Ok(Outcome::Enough(soft));
    }
    let target = needed.min(hard);
    if target > soft {
        limit.current = Some(target);
        setrlimit(Resource::Nofile, limit)?;
    }
    if target < needed {
        return Ok(Outcome::Short {
            limit: target.max(soft),
            needed,
        });
    }
    Ok(Outcome::Raised(target))
}

#[cfg(not(unix))]
pub fn raise(needed: u64) -> std::io::Result<Outcome> {
    Ok(Outcome::Enough(needed))
}

/// Raises the open-file limit for `pool` and logs what happened.
pub fn raise_fd_limit(pool: &PoolSize) {
    match raise(pool.fds_needed()) {
        Ok(Outcome::Enough(_)) => {}
        Ok(Outcome::Raised(limit)) => tracing::debug!(limit, "raised the open-file limit"),
        Ok(Outcome::Short { limit, needed }) => tracing::warn!(
            limit,
            needed,
            "the open-file limit is below what the plugins may hold at full concurrency; \
             raise it (ulimit -n) or lower max_concurrency"
        ),
        Err(error) => tracing::warn!(%error, "cannot raise the open-file limit"),
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn the_fds_needed_follow_each_plugins_caps_and_concurrency() {
        let small = Limits {
            max_concurrency: 2,
            ..Limits::default()
        };
        let raised = Limits {
            max_concurrency: 4,
            max_open_files: 1000,
            max_connections: 100,
            ..Limits::default()
        };
        let pool = PoolSize::for_plugins([(&small, 1), (&raised, 3)]);
        assert_eq!(pool.instances, 2 + 4 + SPARE_INSTANCES);
        let expected = 2 * (256 + 16 + 1) + 4 * (1000 + 100 + 3) + 8 * (1000 + 100 + 3);
        assert_eq!(pool.fds_needed(), expected + RESERVED_FDS);
    }

    #[test]
    fn the_soft_limit_is_raised_no_further_than_needed_or_the_hard_limit() {
        let before = rustix::process::getrlimit(rustix::process::Resource::Nofile);
        let soft = before.current.unwrap_or(u64::MAX);
        // Already enough: nothing changes.
        assert_eq!(raise(soft.min(64)).unwrap(), Outcome::Enough(soft));
        // More than the hard limit allows: as high as it goes, and reported short.
        if let Some(hard) = before.maximum {
            assert_eq!(
                raise(hard + 1).unwrap(),
                Outcome::Short {
                    limit: hard,
                    needed: hard + 1
                }
            );
            let after = rustix::process::getrlimit(rustix::process::Resource::Nofile);
            assert_eq!(after.current, Some(hard));
        }
    }
}
