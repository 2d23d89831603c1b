//! The process's open-file limit: raised at start to what the plugins may hold at once
//! (each call's open files and connections, at full concurrency), with a warning when
//! the system's hard limit is lower.

use crate::config::Config;
use crate::sandbox::egress::MAX_CONNECTIONS;
use crate::sandbox::fs_audit::MAX_OPEN_FILES;

/// Descriptors kept for the host itself: clients, the listener, logs, the store.
const RESERVED: u64 = 1024;

/// File descriptors the host may need with every instance of the pool busy (every
/// plugin at its `max_concurrency`, plus the spares), each holding all it may.
pub fn needed(config: &Config) -> u64 {
    let grants = config.plugins.values().map(|p| p.file_grants.len());
    let per_call = (MAX_OPEN_FILES + MAX_CONNECTIONS + grants.max().unwrap_or(0)) as u64;
    u64::from(config.pool_size().instances)
        .saturating_mul(per_call)
        .saturating_add(RESERVED)
}

/// What [`raise`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The limit was already high enough.
    Enough(u64),
    /// The soft limit was raised to this.
    Raised(u64),
    /// The hard limit is below the need: the soft limit is as high as it goes.
    Short { limit: u64, needed: u64 },
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

/// Raises the limit for `config` and logs what happened.
pub fn prepare(config: &Config) {
    match raise(needed(config)) {
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
