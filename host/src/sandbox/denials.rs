//! Host-side log lines for what a plugin reached for and was refused (plugin,
//! capability, target): the first [`MAX_LOGGED_PER_CAPABILITY`] of each capability in a
//! call, then only counted, so a plugin that loops on one refusal can neither flood
//! the log nor hide a later refusal of another kind behind it.

use crate::domain::PluginName;
use std::fmt::Display;
use std::sync::{Arc, Mutex};

/// Refusals of one capability in one call written to the log; the rest are counted.
pub const MAX_LOGGED_PER_CAPABILITY: u64 = 8;

/// Characters of a plugin-chosen target (a path, a host name) kept in the log: the
/// first and last half of this, so neither a long prefix nor a long tail hides the rest.
const MAX_TARGET_CHARS: usize = 256;

/// The refusals of one call. Cheap to clone: the wasi:http hook and the dialer hold
/// copies.
#[derive(Clone)]
pub struct Denials(Arc<Inner>);

struct Inner {
    plugin: PluginName,
    /// Refusals so far, by capability (a handful of kinds: a short list).
    counts: Mutex<Vec<(&'static str, u64)>>,
}

impl Denials {
    /// The refusals of a new call of `plugin`.
    pub fn new(plugin: PluginName) -> Self {
        Self(Arc::new(Inner {
            plugin,
            counts: Mutex::new(Vec::new()),
        }))
    }

    /// Logs that the plugin was refused `capability` on `target`; `what` says what was
    /// refused and why ("outgoing request: not in allowed_outbound_hosts"). `target`
    /// is chosen by the plugin: it is shortened, and quoted and escaped in the log.
    pub fn refuse(&self, capability: &'static str, target: impl Display, what: &str) {
        let seen = {
            let mut counts = self.0.counts.lock().unwrap_or_else(|e| e.into_inner());
            match counts.iter_mut().find(|(c, _)| *c == capability) {
                Some((_, count)) => {
                    *count = count.saturating_add(1);
                    *count
                }
                None => {
                    counts.push((capability, 1));
                    1
                }
            }
        };
        if seen > MAX_LOGGED_PER_CAPABILITY {
            return;
        }
        tracing::warn!(
            plugin = %self.0.plugin,
            capability = %capability,
            target = ?shortened(&target.to_string()),
            "denied {what}"
        );
    }

    /// Refusals so far in this call, of every capability.
    pub fn count(&self) -> u64 {
        let counts = self.0.counts.lock().unwrap_or_else(|e| e.into_inner());
        counts.iter().map(|(_, n)| n).sum()
    }

    /// Logs, per capability, how many refusals were counted but not logged; called
    /// when the call ends.
    pub fn finish(&self) {
        let counts = self.0.counts.lock().unwrap_or_else(|e| e.into_inner());
        for &(capability, count) in counts.iter() {
            if count > MAX_LOGGED_PER_CAPABILITY {
                tracing::warn!(
                    plugin = %self.0.plugin,
                    capability = %capability,
                    refused = count,
                    "denied {} more {capability} requests in this call (not logged one by one)",
                    count - MAX_LOGGED_PER_CAPABILITY
                );
            }
        }
    }
}

/// A plugin-chosen string cut to [`MAX_TARGET_CHARS`]: its start and its end.
fn shortened(target: &str) -> String {
    let count = target.chars().count();
    if count <= MAX_TARGET_CHARS {
        return target.to_owned();
    }
    let half = MAX_TARGET_CHARS / 2;
    let head: String = target.chars().take(half).collect();
    let tail: String = target.chars().skip(count - half).collect();
    format!("{head}...{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_targets_keep_their_start_and_end() {
        assert_eq!(shortened("/ro/../etc"), "/ro/../etc");
        let long = format!("/ro/{}/../../etc/passwd", "a/".repeat(500));
        let cut = shortened(&long);
        assert_eq!(cut.chars().count(), MAX_TARGET_CHARS + 3);
        assert!(cut.starts_with("/ro/a/a/"), "{cut}");
        assert!(cut.ends_with("/../../etc/passwd"), "{cut}");
    }

    #[test]
    fn every_refusal_is_counted_even_past_the_log_cap() {
        let denials = Denials::new(PluginName::try_from("p".to_owned()).unwrap());
        let copy = denials.clone();
        for _ in 0..MAX_LOGGED_PER_CAPABILITY + 5 {
            copy.refuse("file", "/x", "file access");
        }
        denials.refuse("dns", "example.org", "name lookup");
        assert_eq!(denials.count(), MAX_LOGGED_PER_CAPABILITY + 6);
    }
}
