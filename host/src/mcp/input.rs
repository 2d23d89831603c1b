//! Sampling and elicitation for 2026-07-28 clients, which servers may not send
//! requests: the call ends with an input-required result naming what the plugin asked
//! (`InputRequiredResult`), the client answers and retries the call with
//! `inputResponses`, and the plugin runs again from the start in a fresh instance,
//! getting the recorded answers to the requests it made before. Requests are keyed by
//! kind and order (`sampling-0`, `elicitation-1`...), so a plugin that asks the same
//! things in the same order replays to where it stopped. `requestState` carries the
//! earlier answers, bound to the tool and its arguments.

use super::client::{form_schema, sampling_params, sampling_response, takes_forms, undeclared};
use crate::sandbox::bindings::mcp::tools::client::{
    ElicitationAnswer, Error as ClientError, LogLevel, SamplingRequest, SamplingResponse,
};
use crate::sandbox::client::Client;
use base64::Engine as _;
use futures::FutureExt as _;
use futures::future::BoxFuture;
use rmcp::ErrorData as McpError;
use rmcp::model::{CallToolRequestParams, ClientCapabilities, InputRequest, InputRequiredResult};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use tokio_util::sync::CancellationToken;

/// What `requestState` holds between rounds (base64url JSON).
#[derive(Serialize, Deserialize)]
struct State {
    /// The tool called.
    tool: String,
    /// SHA-256 of its arguments, as sent.
    arguments: String,
    /// Every answer so far, by key.
    answers: BTreeMap<String, Value>,
}

/// One round of a 2026-07-28 call: the answers it has, and the request it stopped at.
pub struct InputRound {
    tool: String,
    answers: BTreeMap<String, Value>,
    /// Requests made so far in this run (the next key's number).
    asked: AtomicU32,
    /// The request the plugin stopped at, if it did.
    needed: Mutex<Option<(String, InputRequest)>>,
    /// Cancelled when the plugin needs an answer it does not have: the call stops.
    stop: CancellationToken,
    /// What the client declared it can answer.
    capabilities: ClientCapabilities,
    /// Where log messages and progress go.
    notifications: Arc<dyn Client>,
}

impl InputRound {
    /// The round of `params`: its answers from `inputResponses` and `requestState`
    /// (which must belong to this tool and these arguments), with `notifications` for
    /// log messages and progress. `stop` ends the call when an answer is missing.
    pub fn start(
        params: &mut CallToolRequestParams,
        capabilities: ClientCapabilities,
        notifications: Arc<dyn Client>,
        stop: CancellationToken,
    ) -> Result<Arc<Self>, McpError> {
        let tool = params.name.to_string();
        let mut answers = BTreeMap::new();
        if let Some(state) = params.request_state.take() {
            let state = decode(&state).ok_or_else(|| {
                McpError::invalid_params("requestState is not one this server issued", None)
            })?;
            let arguments = match params.arguments.as_ref() {
                Some(arguments) => digest(arguments),
                None => digest(&serde_json::Map::new()),
            };
            if state.tool != tool || state.arguments != arguments {
                return Err(McpError::invalid_params(
                    "requestState belongs to another tool call (its tool or arguments differ)",
                    None,
                ));
            }
            answers = state.answers;
        }
        answers.extend(params.input_responses.take().unwrap_or_default());
        Ok(Arc::new(Self {
            tool,
            answers,
            asked: AtomicU32::new(0),
            needed: Mutex::new(None),
            stop,
            capabilities,
            notifications,
        }))
    }

    /// The input-required result, if the plugin stopped for an answer, its
    /// `requestState` bound to the call's `arguments` (hashed only now: most calls
    /// never need it).
    pub fn input_required(&self, arguments: &Value) -> Option<InputRequiredResult> {
        let (key, request) = self
            .needed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()?;
        let state = State {
            tool: self.tool.clone(),
            arguments: digest(arguments),
            answers: self.answers.clone(),
        };
        let state = serde_json::to_vec(&state).ok()?;
        Some(InputRequiredResult::new(
            Some(BTreeMap::from([(key, request)])),
            Some(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(state)),
        ))
    }

    /// The key of the next request of `kind`, and its answer if the client gave one.
    fn next(&self, kind: &str) -> (String, Option<&Value>) {
        let key = format!("{kind}-{}", self.asked.fetch_add(1, Ordering::Relaxed));
        let answer = self.answers.get(&key);
        (key, answer)
    }

    /// Stops the call for `request`, to be answered by the client under `key`.
    async fn ask<T>(&self, key: String, request: Value) -> Result<T, ClientError> {
        let request: InputRequest = serde_json::from_value(request)
            .map_err(|e| ClientError::InvalidRequest(format!("the request: {e}")))?;
        *self.needed.lock().unwrap_or_else(|e| e.into_inner()) = Some((key, request));
        self.stop.cancel();
        // The call is dropped (and this with it) once the pipeline sees the stop.
        std::future::pending().await
    }
}

/// SHA-256 of the arguments' JSON (an object, `{}` when none were sent), hex. The map
/// and the `Value` holding it serialize to the same bytes.
fn digest(arguments: &impl Serialize) -> String {
    // Hashed as it is serialized: no copy of the arguments, no text of them.
    let mut hasher = Sha256::new();
    serde_json::to_writer(&mut hasher, arguments)
        .expect("JSON arguments serialize, and hashing cannot fail");
    hex::encode(hasher.finalize())
}

/// A `requestState` this server issued, read back.
fn decode(state: &str) -> Option<State> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(state)
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

impl Client for InputRound {
    fn log(&self, level: LogLevel, logger: &str, message: String) -> BoxFuture<'_, ()> {
        self.notifications.log(level, logger, message)
    }

    fn progress(
        &self,
        done: f64,
        total: Option<f64>,
        message: Option<String>,
    ) -> BoxFuture<'_, ()> {
        self.notifications.progress(done, total, message)
    }

    fn sample(
        &self,
        request: SamplingRequest,
    ) -> BoxFuture<'_, Result<SamplingResponse, ClientError>> {
        async move {
            undeclared("sampling", self.capabilities.sampling.is_some())?;
            let params = sampling_params(request)?;
            let (key, answer) = self.next("sampling");
            match answer {
                Some(answer) => sampling_response(answer),
                None => {
                    let request = json!({"method": "sampling/createMessage", "params": params});
                    self.ask(key, request).await
                }
            }
        }
        .boxed()
    }

    fn elicit(
        &self,
        message: String,
        schema: String,
    ) -> BoxFuture<'_, Result<ElicitationAnswer, ClientError>> {
        async move {
            undeclared("elicitation", takes_forms(&self.capabilities))?;
            let schema = form_schema(&schema)?;
            let (key, answer) = self.next("elicitation");
            match answer {
                Some(answer) => elicitation_answer(answer),
                None => {
                    let request = json!({
                        "method": "elicitation/create",
                        "params": {"mode": "form", "message": message, "requestedSchema": schema},
                    });
                    self.ask(key, request).await
                }
            }
        }
        .boxed()
    }
}

/// The plugin's view of an `elicitation/create` result (as JSON).
fn elicitation_answer(answer: &Value) -> Result<ElicitationAnswer, ClientError> {
    match answer["action"].as_str() {
        Some("accept") => Ok(ElicitationAnswer::Accept(
            answer
                .get("content")
                .cloned()
                .unwrap_or_else(|| json!({}))
                .to_string(),
        )),
        Some("decline") => Ok(ElicitationAnswer::Decline),
        Some("cancel") => Ok(ElicitationAnswer::Cancel),
        _ => Err(ClientError::Failed(
            "the client's elicitation answer has no known action".into(),
        )),
    }
}

/// Input responses as rmcp types them (for tests).
#[cfg(test)]
fn responses(pairs: &[(&str, Value)]) -> rmcp::model::InputResponses {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(arguments: Value) -> CallToolRequestParams {
        CallToolRequestParams::new("tool").with_arguments(arguments.as_object().unwrap().clone())
    }

    fn round(params: &mut CallToolRequestParams) -> Result<Arc<InputRound>, McpError> {
        InputRound::start(
            params,
            ClientCapabilities::default(),
            super::super::client::Stateless::shared(),
            CancellationToken::new(),
        )
    }

    #[test]
    fn the_state_carries_answers_to_the_next_round_of_the_same_call_only() {
        let mut first = params(json!({"a": 1}));
        first.input_responses = Some(responses(&[(
            "elicitation-0",
            json!({"action": "decline"}),
        )]));
        let round1 = round(&mut first).unwrap();
        *round1.needed.lock().unwrap() = Some((
            "elicitation-1".into(),
            serde_json::from_value(json!({"method": "elicitation/create", "params": {"mode": "form", "message": "m", "requestedSchema": {"type": "object", "properties": {}}}})).unwrap(),
        ));
        let result = round1.input_required(&json!({"a": 1})).unwrap();
        let state = result.request_state.unwrap();

        let mut retry = params(json!({"a": 1}));
        retry.request_state = Some(state.clone());
        retry.input_responses = Some(responses(&[("elicitation-1", json!({"action": "cancel"}))]));
        let round2 = round(&mut retry).unwrap();
        assert_eq!(round2.answers.len(), 2);

        let mut other = params(json!({"a": 2}));
        other.request_state = Some(state);
        let error = round(&mut other).err().unwrap();
        assert!(
            error.message.contains("another tool call"),
            "{}",
            error.message
        );

        let mut forged = params(json!({"a": 1}));
        forged.request_state = Some("not base64!".into());
        assert!(round(&mut forged).is_err());

        // A call sent without arguments is a call with `{}` (as the pipeline runs it):
        // the state issued for it binds to `{}`, and a retry without them is the same
        // call; one with arguments is not.
        let mut bare = CallToolRequestParams::new("tool");
        let round1 = round(&mut bare).unwrap();
        *round1.needed.lock().unwrap() = Some((
            "elicitation-0".into(),
            serde_json::from_value(json!({"method": "elicitation/create", "params": {"mode": "form", "message": "m", "requestedSchema": {"type": "object", "properties": {}}}})).unwrap(),
        ));
        let state = round1
            .input_required(&json!({}))
            .unwrap()
            .request_state
            .unwrap();
        let mut retry = CallToolRequestParams::new("tool");
        retry.request_state = Some(state.clone());
        assert!(round(&mut retry).is_ok());
        let mut with_arguments = params(json!({"a": 1}));
        with_arguments.request_state = Some(state);
        assert!(round(&mut with_arguments).is_err());
    }

    #[test]
    fn elicitation_answers_are_read_by_action() {
        assert!(matches!(
            elicitation_answer(&json!({"action": "accept", "content": {"x": 1}})),
            Ok(ElicitationAnswer::Accept(text)) if text == r#"{"x":1}"#
        ));
        assert!(matches!(
            elicitation_answer(&json!({"action": "decline"})),
            Ok(ElicitationAnswer::Decline)
        ));
        assert!(elicitation_answer(&json!({"action": "maybe"})).is_err());
    }
}
