//! The pipeline's answer in MCP's terms: a [`ToolOutput`] becomes a `CallToolResult`
//! (WIT content mapped to MCP content blocks), a [`CallError`] an `isError` result the
//! model can read, or, for a tool that does not exist, a protocol error. The one place
//! the pipeline's typed errors meet the wire.

use crate::pipeline::{CallError, ToolOutput};
use crate::sandbox::bindings::mcp::tools::types::{Content, ResourceBody};
use base64::Engine as _;
use rmcp::ErrorData as McpError;
use rmcp::model::{CallToolResult, ContentBlock, Resource, ResourceContents};

/// The answer to a `tools/call`.
pub fn to_mcp(result: Result<ToolOutput, CallError>) -> Result<CallToolResult, McpError> {
    match result {
        Ok(output) => {
            let content = output.content.into_iter().map(content_block).collect();
            let mut mapped = if output.is_error {
                CallToolResult::error(content)
            } else {
                CallToolResult::success(content)
            };
            mapped.structured_content = output.structured;
            Ok(mapped)
        }
        Err(error @ CallError::UnknownTool(_)) => {
            Err(McpError::invalid_params(error.to_string(), None))
        }
        Err(error @ CallError::RateLimited { limit, .. }) => {
            // Structured, so a client can wait without parsing prose.
            let structured = serde_json::json!({
                "error": {
                    "code": "RATE_LIMITED",
                    "retryable": true,
                    "retry_after_seconds": limit.retry_after_seconds(),
                }
            });
            let mut result = CallToolResult::error(vec![ContentBlock::text(error.to_string())]);
            result.structured_content = Some(structured);
            Ok(result)
        }
        Err(error) => Ok(CallToolResult::error(vec![ContentBlock::text(
            error.to_string(),
        )])),
    }
}

fn content_block(content: Content) -> ContentBlock {
    let base64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    match content {
        Content::Text(text) => ContentBlock::text(text),
        Content::Image(image) => ContentBlock::image(base64(&image.data), image.mime_type),
        Content::Audio(audio) => ContentBlock::audio(base64(&audio.data), audio.mime_type),
        Content::EmbeddedResource(resource) => {
            let (uri, mime_type) = (resource.uri, resource.mime_type);
            ContentBlock::resource(match resource.body {
                ResourceBody::Text(text) => ResourceContents::TextResourceContents {
                    uri,
                    mime_type,
                    text,
                    meta: None,
                },
                ResourceBody::Blob(bytes) => ResourceContents::BlobResourceContents {
                    uri,
                    mime_type,
                    blob: base64(&bytes),
                    meta: None,
                },
            })
        }
        Content::ResourceLink(link) => {
            let mut resource = Resource::new(link.uri, link.name);
            resource.title = link.title;
            resource.description = link.description;
            resource.mime_type = link.mime_type;
            ContentBlock::resource_link(resource)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::output::OutputError;
    use crate::sandbox::bindings::mcp::tools::types::{
        Audio, EmbeddedResource, Image, ResourceLink,
    };

    #[test]
    fn outputs_and_errors_map_to_results() {
        let output = ToolOutput {
            content: vec![
                Content::Text("hi".into()),
                Content::Image(Image {
                    mime_type: "image/png".into(),
                    data: vec![1, 2, 3],
                }),
                Content::Audio(Audio {
                    mime_type: "audio/wav".into(),
                    data: vec![4, 5, 6],
                }),
                Content::EmbeddedResource(EmbeddedResource {
                    uri: "test://text".into(),
                    mime_type: None,
                    body: ResourceBody::Text("words".into()),
                }),
                Content::EmbeddedResource(EmbeddedResource {
                    uri: "test://blob".into(),
                    mime_type: Some("application/octet-stream".into()),
                    body: ResourceBody::Blob(vec![7, 8, 9]),
                }),
                Content::ResourceLink(ResourceLink {
                    uri: "https://example.com/r".into(),
                    name: "r".into(),
                    title: None,
                    description: Some("a linked thing".into()),
                    mime_type: Some("text/html".into()),
                }),
            ],
            structured: Some(serde_json::json!({"n": 1})),
            is_error: false,
        };
        let mapped = to_mcp(Ok(output)).unwrap();
        assert_eq!(mapped.is_error, Some(false));
        assert_eq!(mapped.content[0].as_text().unwrap().text, "hi");
        assert_eq!(mapped.content[1].as_image().unwrap().data, "AQID");
        // As the client reads them: MCP's JSON for each kind.
        let json = serde_json::to_value(&mapped.content).unwrap();
        assert_eq!(
            json[2],
            serde_json::json!({"type": "audio", "data": "BAUG", "mimeType": "audio/wav"})
        );
        assert_eq!(
            json[3],
            serde_json::json!({"type": "resource", "resource": {"uri": "test://text", "text": "words"}})
        );
        assert_eq!(
            json[4],
            serde_json::json!({"type": "resource", "resource": {
                "uri": "test://blob", "mimeType": "application/octet-stream", "blob": "BwgJ"
            }})
        );
        assert_eq!(
            json[5],
            serde_json::json!({"type": "resource_link", "uri": "https://example.com/r", "name": "r",
                "description": "a linked thing", "mimeType": "text/html"})
        );
        assert_eq!(mapped.structured_content, Some(serde_json::json!({"n": 1})));

        let refused = to_mcp(Err(CallError::Output(OutputError::MissingStructured))).unwrap();
        assert_eq!(refused.is_error, Some(true));
        assert_eq!(
            refused.content[0].as_text().unwrap().text,
            "The tool declares an output schema but returned no structured content"
        );
        let limit = crate::ratelimit::RateLimited {
            budget: crate::ratelimit::Budget::UserTool,
            rate: crate::ratelimit::Rate::parse("3/min").unwrap(),
            retry_after: std::time::Duration::from_millis(19_200),
        };
        let limited = to_mcp(Err(CallError::RateLimited {
            tool: "forecast".into(),
            limit,
        }))
        .unwrap();
        assert_eq!(limited.is_error, Some(true));
        assert_eq!(
            limited.structured_content,
            Some(serde_json::json!({"error": {
                "code": "RATE_LIMITED", "retryable": true, "retry_after_seconds": 20
            }}))
        );
        assert_eq!(
            limited.content[0].as_text().unwrap().text,
            "Rate limited: you may call `forecast` 3 times per minute. Try again in 20 s."
        );
        let unknown = to_mcp(Err(CallError::UnknownTool("nope".into()))).unwrap_err();
        assert!(
            unknown.message.contains("unknown tool `nope`"),
            "{unknown:?}"
        );
    }
}
