//! The connected MCP client as a plugin reaches it ([`Client`] for rmcp's peer): log
//! messages at the level the client chose, progress when its request carried a token,
//! and sampling and elicitation requests when it declared them and its protocol
//! version lets a server ask (2025-11-25 sessions; 2026-07-28 forbids server
//! requests). Plugins speak the WIT types; this is where they meet MCP's.
#![allow(
    deprecated,
    reason = "rmcp marks logging and sampling deprecated for the 2026-07-28 draft; \
              2025-11-25 clients use them"
)]

use crate::sandbox::bindings::mcp::tools::client::{
    ElicitationAnswer, Error as ClientError, LogLevel, Role, SamplingContent, SamplingRequest,
    SamplingResponse,
};
use crate::sandbox::bindings::mcp::tools::types::{Audio, Image};
use crate::sandbox::client::Client;
use base64::Engine as _;
use futures::FutureExt as _;
use futures::future::BoxFuture;
use rmcp::model::{
    CancelledNotificationParam, ClientCapabilities, ClientResult, CreateMessageRequest,
    CreateMessageRequestParams, ElicitRequest, ElicitRequestParams, ElicitationAction,
    ElicitationSchema, LoggingLevel, LoggingMessageNotificationParam, ProgressNotificationParam,
    ProgressToken, ProtocolVersion, ServerRequest,
};
use rmcp::service::{PeerRequestOptions, RequestContext, ServiceError};
use rmcp::{Peer, RoleServer};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

/// The log level a session's client chose with `logging/setLevel` (`info` until it
/// does): messages below it are not sent.
#[derive(Debug)]
pub struct SessionLevel(AtomicU8);

impl Default for SessionLevel {
    fn default() -> Self {
        Self(AtomicU8::new(rank(LoggingLevel::Info)))
    }
}

impl SessionLevel {
    /// Sets the level.
    pub fn set(&self, level: LoggingLevel) {
        self.0.store(rank(level), Ordering::Relaxed);
    }

    /// The least severe level sent.
    fn get(&self) -> u8 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A level's place in severity order (debug lowest).
fn rank(level: LoggingLevel) -> u8 {
    match level {
        LoggingLevel::Debug => 0,
        LoggingLevel::Info => 1,
        LoggingLevel::Notice => 2,
        LoggingLevel::Warning => 3,
        LoggingLevel::Error => 4,
        LoggingLevel::Critical => 5,
        LoggingLevel::Alert => 6,
        LoggingLevel::Emergency => 7,
    }
}

/// The MCP level of a plugin's level.
fn mcp_level(level: LogLevel) -> LoggingLevel {
    match level {
        LogLevel::Debug => LoggingLevel::Debug,
        LogLevel::Info => LoggingLevel::Info,
        LogLevel::Notice => LoggingLevel::Notice,
        LogLevel::Warning => LoggingLevel::Warning,
        LogLevel::Error => LoggingLevel::Error,
        LogLevel::Critical => LoggingLevel::Critical,
        LogLevel::Alert => LoggingLevel::Alert,
        LogLevel::Emergency => LoggingLevel::Emergency,
    }
}

/// The client of one request.
pub struct PeerClient {
    peer: Peer<RoleServer>,
    /// Where progress goes (`None`: the client did not ask for it).
    progress: Option<ProgressToken>,
    /// The least severe level sent (`None`: no log messages).
    min_level: Option<u8>,
    /// What the client declared it can do.
    capabilities: ClientCapabilities,
    /// The protocol version of the request.
    version: Option<ProtocolVersion>,
}

impl PeerClient {
    /// The client of `request`, in a session whose level is `level`. A 2026-07-28
    /// request names its own level in `_meta` (none: no log messages).
    pub fn of(request: &RequestContext<RoleServer>, level: &SessionLevel) -> Arc<dyn Client> {
        let version = request.protocol_version();
        let stateless = version
            .as_ref()
            .is_some_and(|v| *v >= ProtocolVersion::V_2026_07_28);
        let min_level = match request.meta.log_level() {
            Some(level) => Some(rank(level)),
            None if stateless => None,
            None => Some(level.get()),
        };
        Arc::new(Self {
            peer: request.peer.clone(),
            progress: request.meta.get_progress_token(),
            min_level,
            capabilities: request.client_capabilities().unwrap_or_default(),
            version,
        })
    }

    /// Sends `request` and waits for the answer. If the wait is given up (the call
    /// timed out, was cancelled, or its wait for the client ran out), the client is
    /// told with `notifications/cancelled`, so it stops asking its user.
    async fn ask(&self, request: ServerRequest) -> Result<ClientResult, ClientError> {
        let handle = self
            .peer
            .send_cancellable_request(request, PeerRequestOptions::no_options())
            .await
            .map_err(service_error)?;
        let mut abandoned = CancelOnDrop {
            peer: Some(self.peer.clone()),
            id: handle.id.clone(),
        };
        let answer = handle.await_response().await;
        abandoned.peer = None;
        answer.map_err(service_error)
    }

    /// Why this client cannot be asked `what` (a capability it must have declared),
    /// if it cannot.
    fn cannot_ask(&self, what: &str, declared: bool) -> Option<ClientError> {
        if let Some(version) = &self.version
            && *version >= ProtocolVersion::V_2026_07_28
        {
            return Some(no_server_requests(version, what));
        }
        undeclared(what, declared).err()
    }
}

/// `Err(unsupported)` when the client did not declare the capability `what`.
pub(super) fn undeclared(what: &str, declared: bool) -> Result<(), ClientError> {
    if declared {
        Ok(())
    } else {
        Err(ClientError::Unsupported(format!(
            "the client did not declare the `{what}` capability"
        )))
    }
}

/// Whether `capabilities` take a form elicitation: declared as such, or implied by an
/// elicitation capability naming no mode.
pub(super) fn takes_forms(capabilities: &ClientCapabilities) -> bool {
    capabilities
        .elicitation
        .as_ref()
        .is_some_and(|e| e.form.is_some() || e.url.is_none())
}

/// The plugin's `requested-schema`, read as a schema MCP lets an elicitation show.
pub(super) fn form_schema(schema: &str) -> Result<ElicitationSchema, ClientError> {
    serde_json::from_str(schema)
        .map_err(|e| ClientError::InvalidRequest(format!("requested-schema: {e}")))
}

impl Client for PeerClient {
    fn log(&self, level: LogLevel, logger: &str, message: String) -> BoxFuture<'_, ()> {
        let level = mcp_level(level);
        if self.min_level.is_none_or(|min| rank(level) < min) {
            return futures::future::ready(()).boxed();
        }
        let param =
            LoggingMessageNotificationParam::new(level, Value::String(message)).with_logger(logger);
        async move {
            if let Err(error) = self.peer.notify_logging_message(param).await {
                tracing::debug!(%error, "a plugin's log message did not reach the client");
            }
        }
        .boxed()
    }

    fn progress(
        &self,
        done: f64,
        total: Option<f64>,
        message: Option<String>,
    ) -> BoxFuture<'_, ()> {
        let Some(token) = self.progress.clone() else {
            return futures::future::ready(()).boxed();
        };
        let mut param = ProgressNotificationParam::new(token, done);
        param.total = total;
        param.message = message;
        async move {
            if let Err(error) = self.peer.notify_progress(param).await {
                tracing::debug!(%error, "a plugin's progress did not reach the client");
            }
        }
        .boxed()
    }

    fn sample(
        &self,
        request: SamplingRequest,
    ) -> BoxFuture<'_, Result<SamplingResponse, ClientError>> {
        async move {
            if let Some(error) = self.cannot_ask("sampling", self.capabilities.sampling.is_some()) {
                return Err(error);
            }
            let params = sampling_params(request)?;
            params
                .validate()
                .map_err(|e| ClientError::InvalidRequest(format!("sampling request: {e}")))?;
            let request = ServerRequest::CreateMessageRequest(CreateMessageRequest::new(params));
            let result = match self.ask(request).await? {
                ClientResult::CreateMessageResult(result) => serde_json::to_value(result)
                    .map_err(|e| ClientError::Failed(format!("the client's answer: {e}")))?,
                _ => {
                    return Err(ClientError::Failed(
                        "the client answered something else".into(),
                    ));
                }
            };
            sampling_response(&result)
        }
        .boxed()
    }

    fn elicit(
        &self,
        message: String,
        schema: String,
    ) -> BoxFuture<'_, Result<ElicitationAnswer, ClientError>> {
        async move {
            if let Some(error) = self.cannot_ask("elicitation", takes_forms(&self.capabilities)) {
                return Err(error);
            }
            let requested_schema = form_schema(&schema)?;
            let request = ServerRequest::ElicitRequest(ElicitRequest::new(
                ElicitRequestParams::FormElicitationParams {
                    meta: None,
                    message,
                    requested_schema,
                },
            ));
            let result = match self.ask(request).await? {
                ClientResult::ElicitResult(result) => result,
                _ => {
                    return Err(ClientError::Failed(
                        "the client answered something else".into(),
                    ));
                }
            };
            Ok(match result.action {
                ElicitationAction::Accept => ElicitationAnswer::Accept(
                    result
                        .content
                        .unwrap_or_else(|| Value::Object(Default::default()))
                        .to_string(),
                ),
                ElicitationAction::Decline => ElicitationAnswer::Decline,
                // A dismissal, or an action newer than this host: not an answer.
                _ => ElicitationAnswer::Cancel,
            })
        }
        .boxed()
    }
}

/// A request to the client that, if dropped while still armed (holding the peer),
/// tells the client it is no longer wanted.
struct CancelOnDrop {
    peer: Option<Peer<RoleServer>>,
    id: rmcp::model::RequestId,
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        let Some(peer) = self.peer.take() else {
            return;
        };
        let Ok(param) = serde_json::from_value::<CancelledNotificationParam>(json!({
            "requestId": self.id,
            "reason": "the tool call no longer needs the answer",
        })) else {
            return;
        };
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Err(error) = peer.notify_cancelled(param).await {
                    tracing::debug!(%error, "the client was not told a request is abandoned");
                }
            });
        }
    }
}

/// The error for `what` asked of a client whose protocol `version` forbids server
/// requests.
fn no_server_requests(version: &ProtocolVersion, what: &str) -> ClientError {
    ClientError::Unsupported(format!(
        "the client speaks MCP {version}, where servers do not send it requests; {what} \
         needs a 2025-11-25 session"
    ))
}

/// The client of a 2026-07-28 request answered with one JSON response (no stream):
/// nothing can reach it before the answer, and it cannot be asked anything.
pub struct Stateless;

impl Stateless {
    /// The one instance, shared by every such request.
    pub fn shared() -> Arc<dyn Client> {
        static SHARED: std::sync::LazyLock<Arc<dyn Client>> =
            std::sync::LazyLock::new(|| Arc::new(Stateless));
        SHARED.clone()
    }
}

impl Client for Stateless {
    fn log(&self, _level: LogLevel, _logger: &str, _message: String) -> BoxFuture<'_, ()> {
        futures::future::ready(()).boxed()
    }

    fn progress(&self, _: f64, _: Option<f64>, _: Option<String>) -> BoxFuture<'_, ()> {
        futures::future::ready(()).boxed()
    }

    fn sample(&self, _: SamplingRequest) -> BoxFuture<'_, Result<SamplingResponse, ClientError>> {
        let error = no_server_requests(&ProtocolVersion::V_2026_07_28, "sampling");
        futures::future::ready(Err(error)).boxed()
    }

    fn elicit(
        &self,
        _: String,
        _: String,
    ) -> BoxFuture<'_, Result<ElicitationAnswer, ClientError>> {
        let error = no_server_requests(&ProtocolVersion::V_2026_07_28, "elicitation");
        futures::future::ready(Err(error)).boxed()
    }
}

/// An rmcp error as the plugin reads it.
fn service_error(error: ServiceError) -> ClientError {
    match error {
        ServiceError::McpError(error) => ClientError::Failed(format!(
            "the client answered with an error: {}",
            error.message
        )),
        ServiceError::Timeout { .. } => ClientError::TimedOut,
        ServiceError::TransportClosed => {
            ClientError::Failed("the client's connection closed".into())
        }
        other => ClientError::Failed(other.to_string()),
    }
}

/// `sampling/createMessage` parameters from the plugin's request.
pub(super) fn sampling_params(
    request: SamplingRequest,
) -> Result<CreateMessageRequestParams, ClientError> {
    let base64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    let content = |content: SamplingContent| match content {
        SamplingContent::Text(text) => json!({"type": "text", "text": text}),
        SamplingContent::Image(Image { mime_type, data }) => {
            json!({"type": "image", "data": base64(&data), "mimeType": mime_type})
        }
        SamplingContent::Audio(Audio { mime_type, data }) => {
            json!({"type": "audio", "data": base64(&data), "mimeType": mime_type})
        }
    };
    if request.messages.is_empty() {
        return Err(ClientError::InvalidRequest(
            "a sampling request needs at least one message".into(),
        ));
    }
    let messages: Vec<Value> = request
        .messages
        .into_iter()
        .map(|m| {
            json!({
                "role": match m.role { Role::User => "user", Role::Assistant => "assistant" },
                "content": content(m.content),
            })
        })
        .collect();
    let mut params = json!({"messages": messages, "maxTokens": request.max_tokens});
    if let Some(prompt) = request.system_prompt {
        params["systemPrompt"] = json!(prompt);
    }
    if let Some(temperature) = request.temperature {
        params["temperature"] = json!(temperature);
    }
    if !request.stop_sequences.is_empty() {
        params["stopSequences"] = json!(request.stop_sequences);
    }
    if !request.model_hints.is_empty() {
        let hints: Vec<Value> = request
            .model_hints
            .into_iter()
            .map(|name| json!({"name": name}))
            .collect();
        params["modelPreferences"] = json!({"hints": hints});
    }
    serde_json::from_value(params)
        .map_err(|e| ClientError::InvalidRequest(format!("sampling request: {e}")))
}

/// The plugin's view of a `sampling/createMessage` result (as JSON).
pub(super) fn sampling_response(result: &Value) -> Result<SamplingResponse, ClientError> {
    let unusable = |what: &str| ClientError::Failed(format!("the client's answer {what}"));
    let role = match result["role"].as_str() {
        Some("assistant") => Role::Assistant,
        Some("user") => Role::User,
        _ => return Err(unusable("has no role")),
    };
    // One content block, or a list of them: the first the plugin contract carries.
    let blocks = match &result["content"] {
        Value::Array(blocks) => blocks.iter().collect::<Vec<_>>(),
        block => vec![block],
    };
    let decode = |block: &Value| {
        let data = block["data"].as_str().unwrap_or_default();
        base64::engine::general_purpose::STANDARD
            .decode(data)
            .map_err(|_| unusable("has content that is not base64"))
            .map(|data| {
                (
                    block["mimeType"].as_str().unwrap_or_default().to_owned(),
                    data,
                )
            })
    };
    let content = blocks
        .into_iter()
        .find_map(|block| match block["type"].as_str() {
            Some("text") => Some(Ok(SamplingContent::Text(
                block["text"].as_str().unwrap_or_default().to_owned(),
            ))),
            Some("image") => Some(
                decode(block)
                    .map(|(mime_type, data)| SamplingContent::Image(Image { mime_type, data })),
            ),
            Some("audio") => Some(
                decode(block)
                    .map(|(mime_type, data)| SamplingContent::Audio(Audio { mime_type, data })),
            ),
            _ => None,
        })
        .unwrap_or_else(|| Err(unusable("has no text, image or audio content")))?;
    Ok(SamplingResponse {
        role,
        content,
        model: result["model"].as_str().unwrap_or_default().to_owned(),
        stop_reason: result["stopReason"].as_str().map(ToOwned::to_owned),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sampling_answer_keeps_its_first_usable_block() {
        let answer = json!({
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "1", "name": "x", "input": {}},
                        {"type": "text", "text": "hello"}],
            "model": "m",
            "stopReason": "endTurn",
        });
        let response = sampling_response(&answer).unwrap();
        assert!(matches!(&response.content, SamplingContent::Text(t) if t == "hello"));
        assert_eq!(response.model, "m");
        assert_eq!(response.stop_reason.as_deref(), Some("endTurn"));
    }

    #[test]
    fn an_unusable_sampling_answer_is_an_error_naming_what_is_wrong() {
        let no_role = json!({"content": {"type": "text", "text": "x"}, "model": "m"});
        let ClientError::Failed(message) = sampling_response(&no_role).unwrap_err() else {
            panic!("not a failure");
        };
        assert!(message.contains("no role"), "{message}");
        let bad_image = json!({"role": "assistant", "model": "m",
                               "content": {"type": "image", "data": "%%", "mimeType": "image/png"}});
        let ClientError::Failed(message) = sampling_response(&bad_image).unwrap_err() else {
            panic!("not a failure");
        };
        assert!(message.contains("base64"), "{message}");
    }

    #[test]
    fn a_sampling_request_without_messages_is_refused() {
        let request = SamplingRequest {
            messages: vec![],
            system_prompt: None,
            max_tokens: 10,
            temperature: None,
            stop_sequences: vec![],
            model_hints: vec![],
        };
        assert!(matches!(
            sampling_params(request),
            Err(ClientError::InvalidRequest(_))
        ));
    }

    #[test]
    fn log_levels_rank_by_severity() {
        let levels = [
            LogLevel::Debug,
            LogLevel::Info,
            LogLevel::Notice,
            LogLevel::Warning,
            LogLevel::Error,
            LogLevel::Critical,
            LogLevel::Alert,
            LogLevel::Emergency,
        ];
        let ranks: Vec<u8> = levels.into_iter().map(|l| rank(mcp_level(l))).collect();
        assert_eq!(ranks, (0..8).collect::<Vec<u8>>());
    }
}
