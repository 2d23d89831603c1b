//! The `client` import: what a plugin asks of the MCP client whose request its call
//! serves (log messages, progress, sampling, elicitation), passed on through
//! [`Client`], which the MCP layer implements for a connected client. Sampling and
//! elicitation need the operator's grant ([`ClientFeature`]); while the client
//! answers one, the call's clock is stopped and a budget of its own
//! (`limits.client_wait`, for all of the call's requests together) runs instead. What the call asked is recorded by feature and
//! outcome ([`ClientUse`]) for its audit record; never the prompts or answers.

use super::bindings::mcp::tools::client::{
    ElicitationAnswer, Error as ClientError, Host, LogLevel, SamplingRequest, SamplingResponse,
};
use super::state::CallState;
use futures::future::BoxFuture;
use serde::Deserialize;

/// The most log and progress messages one call may send; later ones are dropped.
pub const MAX_MESSAGES_PER_CALL: u32 = 1_000;

/// The most sampling and elicitation requests one call may make.
pub const MAX_REQUESTS_PER_CALL: usize = 32;

/// Longest log or progress message sent, in bytes; longer ones are cut.
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024;

/// The MCP client a call serves, as far as its plugin may reach it.
pub trait Client: Send + Sync {
    /// Sends a log message, if the level the client chose admits `level`.
    fn log(&self, level: LogLevel, logger: &str, message: String) -> BoxFuture<'_, ()>;

    /// Sends a progress report, if the client asked for progress.
    fn progress(&self, done: f64, total: Option<f64>, message: Option<String>)
    -> BoxFuture<'_, ()>;

    /// Asks the client's model for a completion.
    fn sample(
        &self,
        request: SamplingRequest,
    ) -> BoxFuture<'_, Result<SamplingResponse, ClientError>>;

    /// Asks the client's user for input matching `schema` (JSON text).
    fn elicit(
        &self,
        message: String,
        schema: String,
    ) -> BoxFuture<'_, Result<ElicitationAnswer, ClientError>>;
}

/// A request to the client that needs the operator's grant: `client_features` in the
/// plugin's table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientFeature {
    /// `sampling/createMessage`: the client's model writes a completion.
    Sampling,
    /// `elicitation/create`: the client's user is asked for input.
    Elicitation,
}

impl ClientFeature {
    /// The feature as the config and records name it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sampling => "sampling",
            Self::Elicitation => "elicitation",
        }
    }
}

/// Requests of a call with the same feature and outcome, and how many.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientUse {
    /// What was asked.
    pub feature: ClientFeature,
    /// How it ended: `answered`, `accepted`, `declined`, `cancelled`, or the error.
    pub outcome: &'static str,
    /// How many requests had this feature and outcome.
    pub count: u32,
}

impl std::fmt::Display for ClientUse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.feature.as_str(), self.outcome)?;
        if self.count > 1 {
            write!(f, "*{}", self.count)?;
        }
        Ok(())
    }
}

/// The name of an error's case, as records write it.
fn error_name(error: &ClientError) -> &'static str {
    match error {
        ClientError::NotGranted => "not-granted",
        ClientError::Unsupported(_) => "unsupported",
        ClientError::InvalidRequest(_) => "invalid-request",
        ClientError::TimedOut => "timed-out",
        ClientError::Failed(_) => "failed",
    }
}

/// `text` cut to at most [`MAX_MESSAGE_BYTES`], on a character boundary.
fn bounded(mut text: String) -> String {
    if text.len() > MAX_MESSAGE_BYTES {
        let mut end = MAX_MESSAGE_BYTES;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    text
}

impl CallState {
    /// Counts one more log or progress message; false once the call has sent its
    /// share (the first one over is noted in the host log).
    fn may_send_message(&mut self) -> bool {
        self.client_messages = self.client_messages.saturating_add(1);
        if self.client_messages == MAX_MESSAGES_PER_CALL + 1 {
            tracing::warn!(
                plugin = %self.grants.plugin,
                limit = MAX_MESSAGES_PER_CALL,
                "the plugin sent more log and progress messages than one call may; dropping the rest"
            );
        }
        self.client_messages <= MAX_MESSAGES_PER_CALL
    }

    /// Adds one request to the call's record.
    fn record_use(&mut self, feature: ClientFeature, outcome: &'static str) {
        let mut uses = self.uses.lock().unwrap_or_else(|e| e.into_inner());
        match uses
            .client
            .iter_mut()
            .find(|u| u.feature == feature && u.outcome == outcome)
        {
            Some(known) => known.count = known.count.saturating_add(1),
            None => uses.client.push(ClientUse {
                feature,
                outcome,
                count: 1,
            }),
        }
    }

    /// The client, when the plugin may ask it for `feature`; else why not (recorded).
    fn client_for(
        &mut self,
        feature: ClientFeature,
    ) -> Result<std::sync::Arc<dyn Client>, ClientError> {
        let asked: u32 = {
            let uses = self.uses.lock().unwrap_or_else(|e| e.into_inner());
            uses.client.iter().map(|u| u.count).sum()
        };
        let refused = if !self.grants.client_features.contains(&feature) {
            self.denials.refuse(
                "client",
                feature.as_str(),
                "client: not granted to this plugin (client_features)",
            );
            ClientError::NotGranted
        } else if asked as usize >= MAX_REQUESTS_PER_CALL {
            ClientError::Failed(format!(
                "one call may make at most {MAX_REQUESTS_PER_CALL} sampling and elicitation \
                 requests"
            ))
        } else if let Some(client) = &self.client {
            return Ok(client.clone());
        } else {
            ClientError::Unsupported(
                "this call was not made by an MCP client that can be asked anything".into(),
            )
        };
        self.record_use(feature, error_name(&refused));
        Err(refused)
    }

    /// Waits for the client's answer with the call's clock stopped, for at most what is
    /// left of the call's `limits.client_wait`; records how it ended with `outcome`.
    async fn wait_for_client<T>(
        &mut self,
        feature: ClientFeature,
        answer: impl Future<Output = Result<T, ClientError>>,
        outcome: impl Fn(&T) -> &'static str,
    ) -> Result<T, ClientError> {
        let left = self.limiter.clock.stop();
        let waited = std::time::Instant::now();
        let answer = tokio::time::timeout(self.client_wait_left, answer)
            .await
            .unwrap_or(Err(ClientError::TimedOut));
        self.client_wait_left = self.client_wait_left.saturating_sub(waited.elapsed());
        self.limiter.clock.resume(left);
        let name = match &answer {
            Ok(value) => outcome(value),
            Err(error) => error_name(error),
        };
        self.record_use(feature, name);
        answer
    }
}

impl Host for CallState {
    async fn log(&mut self, level: LogLevel, message: String) {
        if !self.may_send_message() {
            return;
        }
        if let Some(client) = self.client.clone() {
            let logger = self.grants.plugin.clone();
            client.log(level, logger.as_str(), bounded(message)).await;
        }
    }

    async fn progress(&mut self, done: f64, total: Option<f64>, message: Option<String>) {
        // MCP's progress only grows: a report that does not is dropped.
        let grows = self.last_progress.is_none_or(|last| done > last);
        if !done.is_finite()
            || total.is_some_and(|t| !t.is_finite())
            || !grows
            || !self.may_send_message()
        {
            return;
        }
        self.last_progress = Some(done);
        if let Some(client) = self.client.clone() {
            client.progress(done, total, message.map(bounded)).await;
        }
    }

    async fn sample(&mut self, request: SamplingRequest) -> Result<SamplingResponse, ClientError> {
        let client = self.client_for(ClientFeature::Sampling)?;
        self.wait_for_client(
            ClientFeature::Sampling,
            client.sample(request),
            |_| "answered",
        )
        .await
    }

    async fn elicit(
        &mut self,
        message: String,
        requested_schema: String,
    ) -> Result<ElicitationAnswer, ClientError> {
        let client = self.client_for(ClientFeature::Elicitation)?;
        self.wait_for_client(
            ClientFeature::Elicitation,
            client.elicit(message, requested_schema),
            |answer| match answer {
                ElicitationAnswer::Accept(_) => "accepted",
                ElicitationAnswer::Decline => "declined",
                ElicitationAnswer::Cancel => "cancelled",
            },
        )
        .await
    }
}
