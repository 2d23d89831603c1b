//! `notifications/tools/list_changed` for connected clients when a reload changes the
//! tools: to every session that initialized (protocol versions up to 2025-11-25), and
//! on every 2026-07-28 `subscriptions/listen` stream that asked for it.

use crate::pipeline::Pipeline;
use rmcp::RoleServer;
use rmcp::model::SubscriptionFilter;
use rmcp::service::{Peer, SubscriptionContext};
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

/// How long one session may take to accept a notification.
const TELL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// The sessions to tell, kept while their transport is open.
#[derive(Default)]
pub struct Sessions {
    peers: Mutex<Vec<Peer<RoleServer>>>,
}

impl Sessions {
    /// Sessions told of `pipeline`'s tool list changes, by a task that lives as long
    /// as the pipeline. Must be called within a Tokio runtime.
    pub fn watching(pipeline: &Pipeline) -> Arc<Self> {
        let sessions = Arc::new(Self::default());
        let mut changes = pipeline.tool_list_changes();
        let told = Arc::downgrade(&sessions);
        tokio::spawn(async move {
            while changes.changed().await.is_ok() {
                let Some(sessions) = told.upgrade() else {
                    return;
                };
                sessions.tell_all().await;
            }
        });
        sessions
    }

    /// Adds a session that completed `initialize`; sessions whose transport closed are
    /// forgotten on the way, so the list holds open sessions only.
    pub fn add(&self, peer: Peer<RoleServer>) {
        let mut peers = self.peers.lock().unwrap_or_else(|e| e.into_inner());
        peers.retain(|peer| !peer.is_transport_closed());
        peers.push(peer);
    }

    async fn tell_all(&self) {
        let peers: Vec<Peer<RoleServer>> = {
            let mut peers = self.peers.lock().unwrap_or_else(|e| e.into_inner());
            peers.retain(|peer| !peer.is_transport_closed());
            peers.clone()
        };
        tracing::debug!(
            sessions = peers.len(),
            "telling sessions the tool list changed"
        );
        // All at once, each bounded: a client that stopped reading delays no one else.
        let told = peers.iter().map(|peer| async move {
            match tokio::time::timeout(TELL_TIMEOUT, peer.notify_tool_list_changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => {
                    tracing::debug!(%error, "a session could not be told the tool list changed");
                }
                Err(_) => tracing::debug!("a session was not told the tool list changed in time"),
            }
        });
        futures::future::join_all(told).await;
    }
}

/// What a `subscriptions/listen` request may subscribe to here: tool list changes.
pub fn accepted_filter() -> SubscriptionFilter {
    SubscriptionFilter::builder().tools_list_changed().build()
}

/// Runs one `subscriptions/listen` stream: a notification each time the tool list
/// changes, until the client cancels or the stream closes.
pub async fn listen(subscription: SubscriptionContext, mut changes: watch::Receiver<u64>) {
    if subscription.accepted().tools_list_changed != Some(true) {
        subscription.cancelled().await;
        return;
    }
    loop {
        tokio::select! {
            () = subscription.cancelled() => return,
            changed = changes.changed() => {
                if changed.is_err() {
                    return;
                }
                if let Err(error) = subscription.sink().notify_tool_list_changed().await {
                    tracing::debug!(%error, "a subscription could not be told the tool list changed");
                    return;
                }
            }
        }
    }
}
