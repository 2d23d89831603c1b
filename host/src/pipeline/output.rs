//! The last step before an answer reaches the client: a plugin's `call-result` is
//! checked against its plugin's output cap, its structured content must be JSON and,
//! when the tool declares an output schema, match it.

use super::ToolOutput;
use crate::registry::RegisteredTool;
use crate::sandbox::bindings::exports::mcp::tools::tools::CallResult;
use crate::sandbox::bindings::mcp::tools::types::{Content, ResourceBody};
use serde_json::Value;
use thiserror::Error;

/// Why a plugin's answer was refused.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum OutputError {
    /// Content and structured content together exceed `limits.max_output`.
    #[error("The tool's result is {size} bytes, more than the {cap} bytes its plugin may return")]
    TooLarge {
        /// Bytes the result carries.
        size: u64,
        /// The plugin's `limits.max_output`.
        cap: u64,
    },
    /// `structured` is not JSON.
    #[error("The tool returned structured content that is not JSON: {0}")]
    NotJson(String),
    /// `structured` does not match the tool's output schema.
    #[error("The tool returned structured content that does not match its output schema: {0}")]
    Schema(String),
    /// The tool declares an output schema but sent no structured content.
    #[error("The tool declares an output schema but returned no structured content")]
    MissingStructured,
}

/// Checks `result` as `tool` answered it.
pub fn check(tool: &RegisteredTool, result: CallResult) -> Result<ToolOutput, OutputError> {
    // A structured result with no content is also sent as text (below): counted twice.
    let mirrored = if result.content.is_empty() {
        result.structured.as_ref().map_or(0, String::len) as u64
    } else {
        0
    };
    let size = result_size(&result) + mirrored;
    let cap = tool.plugin.prepared.grants().limits.max_output;
    if size > cap {
        return Err(OutputError::TooLarge { size, cap });
    }
    let structured = match result
        .structured
        .as_deref()
        .map(serde_json::from_str::<Value>)
    {
        None => None,
        Some(Ok(value)) => Some(value),
        Some(Err(e)) => return Err(OutputError::NotJson(e.to_string())),
    };
    if !result.is_error {
        match (&tool.output, &structured) {
            (Some(schema), Some(value)) => schema.check(value).map_err(OutputError::Schema)?,
            (Some(_), None) => return Err(OutputError::MissingStructured),
            _ => {}
        }
    }
    let mut content = result.content;
    // Clients that read only content still see a structured result: as its JSON text
    // (MCP's advice), when the plugin sent no content of its own.
    if content.is_empty()
        && let Some(text) = result.structured
    {
        content.push(Content::Text(text));
    }
    Ok(ToolOutput {
        content,
        structured,
        is_error: result.is_error,
    })
}

/// Bytes a result carries: its content and its structured content.
fn result_size(result: &CallResult) -> u64 {
    let content: usize = result
        .content
        .iter()
        .map(|c| match c {
            Content::Text(text) => text.len(),
            Content::Image(image) => image.data.len() + image.mime_type.len(),
            Content::Audio(audio) => audio.data.len() + audio.mime_type.len(),
            Content::EmbeddedResource(resource) => {
                let body = match &resource.body {
                    ResourceBody::Text(text) => text.len(),
                    ResourceBody::Blob(bytes) => bytes.len(),
                };
                resource.uri.len() + resource.mime_type.as_ref().map_or(0, String::len) + body
            }
            Content::ResourceLink(link) => {
                let optional = [&link.title, &link.description, &link.mime_type];
                link.uri.len()
                    + link.name.len()
                    + optional
                        .iter()
                        .map(|field| field.as_ref().map_or(0, String::len))
                        .sum::<usize>()
            }
        })
        .sum();
    (content + result.structured.as_ref().map_or(0, String::len)) as u64
}
