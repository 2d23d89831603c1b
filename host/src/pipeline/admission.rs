//! Admission: whether a validated call may start now. A caller whose calls of a plugin
//! keep crashing waits first ([`super::cooldown`]); then the call takes one of the
//! plugin's concurrency slots (`limits.max_concurrency`), waiting at most
//! [`BUSY_WAIT`] before it is answered "busy".

use super::cooldown::{Cooldowns, Key};
use crate::domain::PluginName;
use crate::telemetry;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How long a call waits for one of its plugin's concurrency slots before it is
/// answered "busy".
pub const BUSY_WAIT: Duration = Duration::from_secs(2);

/// One plugin's slots.
struct Gate {
    slots: Arc<Semaphore>,
    /// The plugin's `mcp_instances_in_use` gauge.
    instances: metrics::Gauge,
    /// The `max_concurrency` the slots were made for.
    limit: u32,
}

/// The gates of every plugin, made on a plugin's first call (and again when a
/// reloaded plugin's concurrency limit differs).
#[derive(Default)]
pub struct Admission {
    gates: RwLock<HashMap<PluginName, Arc<Gate>>>,
    cooldowns: Arc<Cooldowns>,
}

/// A call refused admission: every slot stayed taken for [`BUSY_WAIT`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Busy {
    /// The plugin's `max_concurrency`.
    pub limit: u32,
}

/// A call's place: its slot is held until this is dropped. Dropped without
/// [`Admitted::finish`] (the call's task panicked) it counts as a crash.
pub struct Admitted {
    cooldowns: Arc<Cooldowns>,
    key: Key,
    slot: Option<Slot>,
}

/// A concurrency slot, given back when dropped (with the instance it ran: the pool
/// has an instance for every slot).
pub struct Slot {
    _permit: OwnedSemaphorePermit,
    instances: metrics::Gauge,
}

impl Admitted {
    /// Records how the call ended (for the cool-down); the slot is given back when the
    /// returned [`Slot`] is dropped.
    pub fn finish(mut self, crashed: bool) -> Slot {
        self.cooldowns.record(&self.key, crashed);
        self.slot.take().expect("a call is finished once")
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        if self.slot.is_some() {
            self.cooldowns.record(&self.key, true);
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.instances.decrement(1.0);
    }
}

impl Admission {
    /// Waits out `caller`'s cool-down for `plugin`, then for one of the plugin's
    /// `limit` slots (at most [`BUSY_WAIT`]).
    pub async fn admit(
        &self,
        caller: &str,
        plugin: &PluginName,
        limit: u32,
    ) -> Result<Admitted, Busy> {
        let key = (caller.to_owned(), plugin.clone());
        let cooldown = self.cooldowns.wait(&key);
        if !cooldown.is_zero() {
            tokio::time::sleep(cooldown).await;
        }
        let gate = self.gate(plugin, limit);
        match tokio::time::timeout(BUSY_WAIT, gate.slots.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok({
                gate.instances.increment(1.0);
                Admitted {
                    cooldowns: self.cooldowns.clone(),
                    key,
                    slot: Some(Slot {
                        _permit: permit,
                        instances: gate.instances.clone(),
                    }),
                }
            }),
            // The semaphore is never closed; a timeout is the only way here.
            _ => Err(Busy { limit: gate.limit }),
        }
    }

    fn gate(&self, plugin: &PluginName, limit: u32) -> Arc<Gate> {
        {
            let gates = self.gates.read().unwrap_or_else(|e| e.into_inner());
            if let Some(gate) = gates.get(plugin).filter(|g| g.limit == limit) {
                return gate.clone();
            }
        }
        let mut gates = self.gates.write().unwrap_or_else(|e| e.into_inner());
        let gate = gates
            .entry(plugin.clone())
            .and_modify(|g| {
                if g.limit != limit {
                    *g = Arc::new(Gate::new(plugin, limit));
                }
            })
            .or_insert_with(|| Arc::new(Gate::new(plugin, limit)));
        gate.clone()
    }
}

impl Gate {
    fn new(plugin: &PluginName, limit: u32) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(limit as usize)),
            instances: telemetry::instances(plugin.as_str()),
            limit,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(text: &str) -> PluginName {
        PluginName::try_from(text.to_owned()).unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_plugin_answers_busy_and_a_freed_slot_admits() {
        let admission = Admission::default();
        let (p, q) = (name("p"), name("q"));
        let first = admission.admit("u", &p, 1).await.unwrap();
        // Every slot taken for BUSY_WAIT (virtual time): busy, naming the limit.
        assert_eq!(
            admission.admit("u", &p, 1).await.err(),
            Some(Busy { limit: 1 })
        );
        // Another plugin has slots of its own.
        let other = admission.admit("u", &q, 1).await.unwrap();
        first.finish(false);
        let again = admission.admit("u", &p, 1).await.unwrap();
        again.finish(false);
        other.finish(false);
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_dropped_unfinished_counts_as_a_crash() {
        let admission = Admission::default();
        let p = name("p");
        let key = ("u".to_owned(), p.clone());
        drop(admission.admit("u", &p, 2).await.unwrap());
        assert!(!admission.cooldowns.wait(&key).is_zero());
        admission.admit("u", &p, 2).await.unwrap().finish(false);
        assert!(admission.cooldowns.wait(&key).is_zero());
    }

    #[tokio::test(start_paused = true)]
    async fn a_changed_limit_gets_new_slots() {
        let admission = Admission::default();
        let p = name("p");
        let held = admission.admit("u", &p, 1).await.unwrap();
        // A reload raised the limit: the new gate has room at once.
        admission.admit("u", &p, 2).await.unwrap().finish(false);
        held.finish(false);
    }
}
