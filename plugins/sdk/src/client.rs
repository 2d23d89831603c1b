//! The MCP client whose request the call serves, through the `client` import: log
//! messages ([`log`], [`info`]...), progress ([`progress`]), completions from the
//! client's model ([`sample`], [`sample_with`]) and input from its user ([`elicit`],
//! [`elicit_with`]).
//!
//! Logging and progress always work (they go nowhere when the client did not ask for
//! them). Sampling and elicitation need the operator's grant (`client_features =
//! ["sampling", "elicitation"]`) and a client that supports them; otherwise they
//! return an error saying which, never hang. Waiting for the answer does not count
//! against the call's time limit.
//!
//! ```no_run
//! use mcp_wasm_sdk::client::{self, Elicitation};
//! use mcp_wasm_sdk::{Error, JsonSchema};
//! use serde::Deserialize;
//!
//! /// What the tool asks the user.
//! #[derive(Deserialize, JsonSchema)]
//! struct Confirm {
//!     /// Type the repository name to confirm.
//!     repository: String,
//! }
//!
//! fn delete(repository: &str) -> Result<String, Error> {
//!     client::info(format!("asking before deleting {repository}"));
//!     match client::elicit::<Confirm>("Delete this repository?")? {
//!         Elicitation::Accepted(c) if c.repository == repository => Ok("deleted".into()),
//!         _ => Err(Error::Tool("The user did not confirm; nothing was deleted.".into())),
//!     }
//! }
//! ```

use crate::Error;
use crate::bindings::mcp::tools::client as wit;
pub use crate::bindings::mcp::tools::client::{
    ElicitationAnswer, Error as ClientError, LogLevel, Role, SamplingContent, SamplingMessage,
    SamplingRequest, SamplingResponse,
};
use schemars::JsonSchema;
use serde::de::DeserializeOwned;

/// Sends a log message to the client at `level` (when its chosen level admits it).
pub fn log(level: LogLevel, message: impl AsRef<str>) {
    wit::log(level, message.as_ref());
}

/// A `debug` log message.
pub fn debug(message: impl AsRef<str>) {
    log(LogLevel::Debug, message);
}

/// An `info` log message.
pub fn info(message: impl AsRef<str>) {
    log(LogLevel::Info, message);
}

/// A `warning` log message.
pub fn warning(message: impl AsRef<str>) {
    log(LogLevel::Warning, message);
}

/// An `error` log message.
pub fn error(message: impl AsRef<str>) {
    log(LogLevel::Error, message);
}

/// Reports progress: `done` of `total` (when known), with an optional message. Sent
/// only when the client asked for progress.
pub fn progress(done: f64, total: Option<f64>, message: Option<&str>) {
    wit::progress(done, total, message);
}

/// Asks the client's model to answer `prompt` (one user message) in at most
/// `max_tokens` tokens; returns its text.
pub fn sample(prompt: impl Into<String>, max_tokens: u32) -> Result<String, Error> {
    let response = sample_with(&SamplingRequest {
        messages: vec![SamplingMessage {
            role: Role::User,
            content: SamplingContent::Text(prompt.into()),
        }],
        system_prompt: None,
        max_tokens,
        temperature: None,
        stop_sequences: Vec::new(),
        model_hints: Vec::new(),
    })?;
    match response.content {
        SamplingContent::Text(text) => Ok(text),
        SamplingContent::Image(_) | SamplingContent::Audio(_) => Err(Error::Upstream(
            "the client's model answered with media, not text".into(),
        )),
    }
}

/// Asks the client's model for a completion of the whole `request`.
pub fn sample_with(request: &SamplingRequest) -> Result<SamplingResponse, Error> {
    wit::sample(request).map_err(|e| from_client("sampling", e))
}

/// What the user did with an elicitation.
#[derive(Debug, Clone, PartialEq)]
pub enum Elicitation<T> {
    /// Submitted this answer.
    Accepted(T),
    /// Refused to answer.
    Declined,
    /// Dismissed the question.
    Cancelled,
}

/// Asks the user for a `T`, whose fields become the form (flat fields of strings,
/// numbers, booleans and unit enums; `Option` fields are optional; doc comments become
/// their descriptions).
pub fn elicit<T: DeserializeOwned + JsonSchema>(
    message: impl AsRef<str>,
) -> Result<Elicitation<T>, Error> {
    match elicit_with(message, &form_schema::<T>())? {
        Elicitation::Accepted(answer) => serde_json::from_value(answer)
            .map(Elicitation::Accepted)
            .map_err(|e| Error::Upstream(format!("the user's answer does not fit: {e}"))),
        Elicitation::Declined => Ok(Elicitation::Declined),
        Elicitation::Cancelled => Ok(Elicitation::Cancelled),
    }
}

/// Asks the user for input matching `schema` (a JSON Schema object of flat primitive
/// properties, as MCP's elicitation allows); the answer is a JSON object.
pub fn elicit_with(
    message: impl AsRef<str>,
    schema: &serde_json::Value,
) -> Result<Elicitation<serde_json::Value>, Error> {
    let answer = wit::elicit(message.as_ref(), &schema.to_string())
        .map_err(|e| from_client("elicitation", e))?;
    Ok(match answer {
        ElicitationAnswer::Accept(json) => Elicitation::Accepted(
            serde_json::from_str(&json)
                .map_err(|e| Error::Upstream(format!("the user's answer is not JSON: {e}")))?,
        ),
        ElicitationAnswer::Decline => Elicitation::Declined,
        ElicitationAnswer::Cancel => Elicitation::Cancelled,
    })
}

/// `T`'s schema as an elicitation form takes it: one flat object, every field's
/// schema inline (no `$ref`), an `Option` field as its plain type (left out of
/// `required`, it is already optional), and no dialect or extra keywords.
fn form_schema<T: JsonSchema>() -> serde_json::Value {
    let mut settings = schemars::generate::SchemaSettings::draft2020_12();
    settings.inline_subschemas = true;
    let schema = settings.into_generator().into_root_schema_for::<T>();
    let mut schema = serde_json::to_value(schema).unwrap_or_default();
    if let Some(object) = schema.as_object_mut() {
        for key in [
            "$schema",
            "$defs",
            "additionalProperties",
            "title",
            "description",
        ] {
            object.remove(key);
        }
        if let Some(serde_json::Value::Object(fields)) = object.get_mut("properties") {
            fields.values_mut().for_each(not_nullable);
        }
    }
    schema
}

/// A field's schema without its `null` alternative: `"type": ["string", "null"]`
/// becomes `"type": "string"`, `null` leaves an `enum`, and `anyOf: [S, {"type":
/// "null"}]` becomes `S` (keeping the field's description). Rust's number formats go.
fn not_nullable(field: &mut serde_json::Value) {
    let null = serde_json::json!("null");
    if let Some(serde_json::Value::Array(types)) = field.get("type") {
        let kept: Vec<_> = types.iter().filter(|t| **t != null).cloned().collect();
        if let [only] = &kept[..] {
            field["type"] = only.clone();
        }
    }
    if let Some(serde_json::Value::Array(values)) = field.get_mut("enum") {
        values.retain(|v| !v.is_null());
    }
    // Number formats (`uint32`...) are Rust's, not a form's.
    if (field["type"] == "integer" || field["type"] == "number")
        && let Some(object) = field.as_object_mut()
    {
        object.remove("format");
    }
    if let Some(serde_json::Value::Array(choices)) = field.get("anyOf").cloned() {
        let kept: Vec<_> = choices
            .into_iter()
            .filter(|choice| choice.get("type") != Some(&null))
            .collect();
        if let [only] = &kept[..] {
            let description = field.get("description").cloned();
            *field = only.clone();
            if let Some(description) = description {
                field["description"] = description;
            }
        }
    }
}

/// A refused or failed request as the SDK's error: what was asked and why it failed.
fn from_client(what: &str, error: ClientError) -> Error {
    match error {
        ClientError::NotGranted => Error::Internal(format!(
            "{what} is not granted to this plugin; the operator must add \"{what}\" to its \
             client_features"
        )),
        ClientError::Unsupported(why) => Error::Tool(format!("{what} is not available: {why}")),
        ClientError::InvalidRequest(why) => {
            Error::Internal(format!("the {what} request is not valid: {why}"))
        }
        ClientError::TimedOut => Error::Tool(format!("the {what} request got no answer in time")),
        ClientError::Failed(why) => Error::Upstream(format!("{what} failed: {why}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::json;

    #[derive(Deserialize, JsonSchema)]
    #[serde(rename_all = "lowercase")]
    #[allow(dead_code, reason = "the variants exist for the schema")]
    enum Size {
        Small,
        Large,
    }

    #[derive(Deserialize, JsonSchema)]
    #[allow(dead_code, reason = "the fields exist for the schema")]
    struct Order {
        /// Who orders.
        name: String,
        /// How many.
        count: Option<u32>,
        /// Which size.
        size: Size,
        /// Which size, if any.
        other_size: Option<Size>,
        gift: bool,
    }

    #[test]
    fn a_form_schema_is_flat_and_inline() {
        let schema = form_schema::<Order>();
        let text = schema.to_string();
        assert!(!text.contains("$ref") && !text.contains("$defs"), "{text}");
        assert!(!text.contains("null"), "{text}");
        assert_eq!(schema["type"], "object");
        let fields = &schema["properties"];
        assert_eq!(fields["name"]["type"], "string");
        assert_eq!(fields["name"]["description"], "Who orders.");
        assert_eq!(fields["count"]["type"], "integer");
        assert!(fields["count"].get("format").is_none(), "{text}");
        assert_eq!(fields["size"]["enum"], json!(["small", "large"]));
        assert_eq!(fields["other_size"]["enum"], json!(["small", "large"]));
        assert_eq!(fields["other_size"]["description"], "Which size, if any.");
        assert_eq!(fields["gift"]["type"], "boolean");
        let required = schema["required"].as_array().unwrap();
        assert!(required.contains(&json!("name")) && !required.contains(&json!("count")));
    }
}
