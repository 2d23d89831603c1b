//! A plugin built against the 0.1.0 contract (`wit/v0.1.0`), as plugins built before
//! 0.2.0 are: `legacy_echo` answers its `message` as text, with a resource link (a URI
//! only, in 0.1.0), and the credential `legacy-key` when asked (`credential: true`).

wit_bindgen::generate!({ path: "../../../wit/v0.1.0", world: "plugin" });

use exports::mcp::tools::tools::Guest;
use mcp::tools::types::{CallError, CallResult, Content, Tool};

struct Legacy;

impl Guest for Legacy {
    fn list_tools() -> Vec<Tool> {
        vec![Tool {
            name: "legacy_echo".into(),
            title: Some("Legacy echo".into()),
            description: "Returns its message; built against mcp:tools@0.1.0.".into(),
            input_schema: r#"{"type":"object","properties":{"message":{"type":"string"},"credential":{"type":"boolean"}},"required":["message"]}"#.into(),
            output_schema: None,
        }]
    }

    fn call_tool(name: String, arguments: String) -> Result<CallResult, CallError> {
        if name != "legacy_echo" {
            return Err(CallError::UnknownTool(name));
        }
        let args: serde_json::Value = serde_json::from_str(&arguments)
            .map_err(|e| CallError::InvalidArguments(e.to_string()))?;
        let mut text = args["message"].as_str().unwrap_or_default().to_owned();
        if args["credential"].as_bool() == Some(true) {
            let credential = mcp::tools::credentials::get("legacy-key");
            text = format!("{text} / credential: {}", credential.is_ok());
        }
        Ok(CallResult {
            content: vec![
                Content::Text(text),
                Content::ResourceLink("https://example.com/legacy".into()),
            ],
            structured: None,
            is_error: false,
        })
    }
}

export!(Legacy);
