//! Host-side log lines for what a plugin reached for and was refused (plugin,
//! capability, target), at most [`MAX_LOGGED`] per call: a plugin that loops on a
//! refused request cannot flood the host's log.

use crate::config::PluginName;
use std::fmt::Display;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

/// Refusals of one call written to the log; the rest are only counted.
pub const MAX_LOGGED: u32 = 16;

/// Characters of a plugin-chosen target (a path, a host name) kept in the log.
const MAX_TARGET_CHARS: usize = 256;

/// The refusals of one call. Cheap to clone: the wasi:http hook and the dialer hold
/// copies.
#[derive(Clone)]
pub struct Denials(Arc<Inner>);

struct Inner {
    plugin: PluginName,
    count: AtomicU32,
}

impl Denials {
    pub fn new(plugin: PluginName) -> Self {
        Self(Arc::new(Inner {
            plugin,
            count: AtomicU32::new(0),
        }))
    }

    /// Logs that the plugin was refused `capability` on `target`; `what` says what was
    /// refused and why ("outgoing request: not in allowed_outbound_hosts"). `target`
    /// is chosen by the plugin: it is cut short and escaped.
    pub fn refuse(&self, capability: &'static str, target: impl Display, what: &str) {
        let seen = self.0.count.fetch_add(1, Ordering::Relaxed);
        if seen >= MAX_LOGGED {
            return;
        }
        tracing::warn!(
            plugin = %self.0.plugin,
            capability = %capability,
            target = %shown(&target.to_string()),
            "denied {what}"
        );
    }

    /// Refusals so far in this call.
    pub fn count(&self) -> u32 {
        self.0.count.load(Ordering::Relaxed)
    }

    /// Logs how many refusals were counted but not logged; called when the call ends.
    pub fn finish(&self) {
        let count = self.count();
        if count > MAX_LOGGED {
            tracing::warn!(
                plugin = %self.0.plugin,
                refused = count,
                "denied {} more requests in this call (not logged one by one)",
                count - MAX_LOGGED
            );
        }
    }
}

/// A plugin-chosen string as it is logged: control characters escaped, at most
/// [`MAX_TARGET_CHARS`] characters.
fn shown(target: &str) -> String {
    let mut out: String = target
        .chars()
        .take(MAX_TARGET_CHARS)
        .flat_map(char::escape_debug)
        .collect();
    if target.chars().nth(MAX_TARGET_CHARS).is_some() {
        out.push_str("...");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_escaped_and_cut_short() {
        assert_eq!(shown("a\nb\u{1b}[31m"), "a\\nb\\u{1b}[31m");
        let long = "x".repeat(MAX_TARGET_CHARS + 10);
        let cut = shown(&long);
        assert_eq!(cut.len(), MAX_TARGET_CHARS + 3);
        assert!(cut.ends_with("..."));
        assert_eq!(shown("/ro/../etc"), "/ro/../etc");
    }

    #[test]
    fn every_refusal_is_counted_even_past_the_log_cap() {
        let denials = Denials::new(PluginName::try_from("p".to_owned()).unwrap());
        let copy = denials.clone();
        for _ in 0..MAX_LOGGED + 5 {
            copy.refuse("file", "/x", "file access");
        }
        assert_eq!(denials.count(), MAX_LOGGED + 5);
    }
}
