//! The direct path over stdio: a `tools/call` in a session that began with `initialize`
//! is handed to the handler here just as rmcp's serve loop hands it (the same request,
//! the same context, rmcp's own request handling), without the loop's parse of every
//! message into rmcp's nested enums, its channels and its hops between tasks, which
//! cost more than the plugin's sandbox. rmcp's request handling also checks a call
//! that names its own protocol version in `_meta` (2026-07-28); what the serve loop
//! adds for one (refusing requests to the client from it) the host's client refuses
//! too ([`crate::mcp::client`]). Every other message goes to rmcp. The client's
//! cancellation of a call taken here cancels it, and its answer is not sent, as with
//! rmcp. A test sends the same lines both ways and compares the answers.

use super::output::Lines;
use crate::mcp::McpHandler;
use rmcp::model::{
    CallToolRequest, CallToolRequestParams, ClientRequest, ErrorData, JsonRpcVersion2_0, RequestId,
    ServerJsonRpcMessage,
};
use rmcp::service::{RequestContext, Service};
use rmcp::{Peer, RoleServer};
use serde::Deserialize;
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// The direct path of one stdio session.
pub struct Direct {
    handler: McpHandler,
    /// The session's peer, once rmcp has completed the handshake: until then every
    /// line goes to rmcp.
    peer: OnceLock<Peer<RoleServer>>,
    lines: Lines,
    /// The calls running here, by JSON-RPC id, and how to cancel each.
    running: Mutex<HashMap<RequestId, CancellationToken>>,
    /// Parent of every call's token: cancels them all when the session ends.
    ending: CancellationToken,
    /// Calls taken here so far.
    taken: AtomicU64,
}

/// A JSON-RPC request with nothing in it this path does not know.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CallLine<'a> {
    #[allow(dead_code, reason = "read to check it says 2.0")]
    jsonrpc: JsonRpcVersion2_0,
    id: RequestId,
    #[serde(borrow)]
    method: Cow<'a, str>,
    params: CallToolRequestParams,
}

/// A cancellation, read only as far as the request it names.
#[derive(Deserialize)]
struct CancelLine<'a> {
    #[serde(borrow)]
    method: Cow<'a, str>,
    params: CancelParams,
}

#[derive(Deserialize)]
struct CancelParams {
    #[serde(rename = "requestId")]
    request_id: RequestId,
}

impl Direct {
    /// The direct path for `handler`'s session, answering on `lines`.
    pub fn new(handler: McpHandler, lines: Lines) -> Self {
        Self {
            handler,
            peer: OnceLock::new(),
            lines,
            running: Mutex::default(),
            ending: CancellationToken::new(),
            taken: AtomicU64::new(0),
        }
    }

    /// From now on, calls in the session of `peer` are taken here.
    pub fn open(&self, peer: Peer<RoleServer>) {
        let _ = self.peer.set(peer);
    }

    /// How many calls were taken here.
    pub fn taken(&self) -> u64 {
        self.taken.load(Ordering::Relaxed)
    }

    /// Cancels every call still running here.
    pub fn cancel_all(&self) {
        self.ending.cancel();
    }

    fn running(&self) -> MutexGuard<'_, HashMap<RequestId, CancellationToken>> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes `line` if it is a call this path serves, running it on `calls`.
    pub fn take(self: &Arc<Self>, line: &[u8], calls: &mut JoinSet<()>) -> bool {
        let Some(peer) = self.peer.get() else {
            return false;
        };
        let Ok(call) = serde_json::from_slice::<CallLine>(line) else {
            return false;
        };
        if call.method != "tools/call" {
            return false;
        }
        let cancelled = self.ending.child_token();
        {
            let mut running = self.running();
            // An id already in use here: rmcp decides what a duplicate means.
            if running.contains_key(&call.id) {
                return false;
            }
            running.insert(call.id.clone(), cancelled.clone());
        }
        self.taken.fetch_add(1, Ordering::Relaxed);
        let this = self.clone();
        let peer = peer.clone();
        calls.spawn(async move { this.answer(peer, call.id, call.params, cancelled).await });
        true
    }

    /// Runs one call as rmcp would and writes its answer, unless the client cancelled it.
    async fn answer(
        &self,
        peer: Peer<RoleServer>,
        id: RequestId,
        mut params: CallToolRequestParams,
        cancelled: CancellationToken,
    ) {
        let mut context = RequestContext::new(id.clone(), peer);
        // As rmcp reads a request: its `_meta` is the request's, not the params'; and
        // as its serve loop hands it over: the request's `_meta` is the context's.
        context.meta = params.meta.take().unwrap_or_default();
        context.ct = cancelled;
        let request = ClientRequest::CallToolRequest(CallToolRequest::new(params));
        let result = self.handler.handle_request(request, context).await;
        if self.running().remove(&id).is_none() {
            tracing::debug!(%id, "the client cancelled the call; its answer is not sent");
            return;
        }
        let message = match result {
            Ok(result) => ServerJsonRpcMessage::response(result, id.clone()),
            Err(error) => ServerJsonRpcMessage::error(error, Some(id.clone())),
        };
        let line = serde_json::to_vec(&message).or_else(|error| {
            tracing::error!(%id, %error, "a tool result could not be serialized");
            serde_json::to_vec(&ServerJsonRpcMessage::error(
                ErrorData::internal_error("the tool's result could not be serialized", None),
                Some(id),
            ))
        });
        if let Ok(mut line) = line {
            line.push(b'\n');
            self.lines.send(line).await;
        }
    }

    /// If `line` cancels a call running here, cancels it (its answer will not be sent).
    pub fn note_cancellation(&self, line: &[u8]) {
        if self.running().is_empty() {
            return;
        }
        let Ok(cancel) = serde_json::from_slice::<CancelLine>(line) else {
            return;
        };
        if cancel.method != "notifications/cancelled" {
            return;
        }
        if let Some(token) = self.running().remove(&cancel.params.request_id) {
            tracing::debug!(id = %cancel.params.request_id, "the client cancelled a call");
            token.cancel();
        }
    }
}
