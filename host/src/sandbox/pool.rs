//! How big the sandbox is: the pooling allocator's slots (every plugin's concurrency,
//! the largest memory) and the process's open-file limit, raised at start to what the
//! plugins may hold at once (each call's open files and connections, at full
//! concurrency), with a warning when the system's hard limit is lower.

use super::fs::MAX_GRANTS;
use super::fs::host::MAX_OPEN_FILES;
use super::http::hooks::MAX_CONNECTIONS;
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
    /// The most directories any one plugin is granted (each held open per call).
    pub max_grants: usize,
}

impl PoolSize {
    /// Slots for `concurrency` calls at once, of at most `max_memory` bytes each.
    pub fn new(concurrency: u32, max_memory: u64) -> Self {
        Self {
            instances: concurrency.saturating_add(SPARE_INSTANCES),
            max_memory: max_memory.max(limits::DEFAULT_MEMORY),
            max_grants: 0,
        }
    }

    /// The pool for these plugins: `(limits, directories granted)` of each.
    pub fn for_plugins<'a>(plugins: impl IntoIterator<Item = (&'a Limits, usize)>) -> Self {
        let (mut concurrency, mut memory, mut grants) = (0u32, 0u64, 0usize);
        for (limits, granted_dirs) in plugins {
            concurrency = concurrency.saturating_add(limits.max_concurrency);
            memory = memory.max(limits.memory);
            grants = grants.max(granted_dirs);
        }
        Self {
            max_grants: grants,
            ..Self::new(concurrency, memory)
        }
    }

    /// File descriptors the host may need with every instance of the pool busy, each
    /// holding all it may (open files, connections, its granted directories).
    pub fn fds_needed(&self) -> u64 {
        let per_call = (MAX_OPEN_FILES + MAX_CONNECTIONS + self.max_grants.min(MAX_GRANTS)) as u64;
        u64::from(self.instances)
            .saturating_mul(per_call)
            .saturating_add(RESERVED_FDS)
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
