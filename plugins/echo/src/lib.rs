//! A minimal plugin: `echo` returns its `message` argument. Used by the benchmarks and
//! as the smallest example of the plugin contract.

wit_bindgen::generate!({ path: "../../wit", world: "plugin" });

use exports::mcp::tools::tools::Guest;
use mcp::tools::types::{CallError, CallResult, Content, Tool};

struct Echo;

const INPUT_SCHEMA: &str = r#"{
  "type": "object",
  "properties": { "message": { "type": "string", "maxLength": 1048576 } },
  "required": ["message"],
  "additionalProperties": false
}"#;

impl Guest for Echo {
    fn list_tools() -> Vec<Tool> {
        vec![Tool {
            name: "echo".into(),
            title: Some("Echo".into()),
            description: "Returns the message it is given.".into(),
            input_schema: INPUT_SCHEMA.into(),
            output_schema: None,
        }]
    }

    fn call_tool(name: String, arguments: String) -> Result<CallResult, CallError> {
        if name != "echo" {
            return Err(CallError::UnknownTool(name));
        }
        let args: serde_json::Value = serde_json::from_str(&arguments)
            .map_err(|e| CallError::InvalidArguments(format!("arguments are not JSON: {e}")))?;
        let message = args
            .get("message")
            .and_then(|m| m.as_str())
            .ok_or_else(|| CallError::InvalidArguments("`message` must be a string".into()))?;
        Ok(CallResult {
            content: vec![Content::Text(message.to_owned())],
            structured: None,
            is_error: false,
        })
    }
}

export!(Echo);
