//! The tools the official MCP conformance suite (`@modelcontextprotocol/conformance`)
//! calls in its server scenarios, each answering what its scenario expects.

use mcp_wasm_sdk::{Content, Error, Image, JsonSchema, Plugin, Tool};
use serde::Deserialize;

/// A tool that takes no arguments.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct NoArguments {}

/// A 1x1 red pixel, as PNG.
const RED_PIXEL_PNG: [u8; 69] = [
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x02, 0x00, 0x00, 0x00, 0x90, 0x77, 0x53,
    0xde, 0x00, 0x00, 0x00, 0x0c, 0x49, 0x44, 0x41, 0x54, 0x08, 0xd7, 0x63, 0xf8, 0xcf, 0xc0, 0x00,
    0x00, 0x03, 0x01, 0x01, 0x00, 0x18, 0xdd, 0x8d, 0xb0, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e,
    0x44, 0xae, 0x42, 0x60, 0x82,
];

fn simple_text(_: NoArguments) -> Result<String, Error> {
    Ok("This is a simple text response for testing.".into())
}

fn image_content(_: NoArguments) -> Result<Vec<Content>, Error> {
    Ok(vec![Content::Image(Image {
        mime_type: "image/png".into(),
        data: RED_PIXEL_PNG.to_vec(),
    })])
}

fn error_handling(_: NoArguments) -> Result<String, Error> {
    Err(Error::Tool(
        "This tool intentionally returns an error for testing".into(),
    ))
}

/// A postal address (a `$defs` entry the arguments refer to).
#[derive(Deserialize, JsonSchema)]
#[schemars(rename = "address")]
#[allow(dead_code, reason = "the fields exist for the schema")]
struct Address {
    street: Option<String>,
    city: Option<String>,
}

/// The JSON Schema 2020-12 scenario's arguments: `$defs`, `$ref`, no other fields.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code, reason = "the fields exist for the schema")]
struct Person {
    name: Option<String>,
    address: Option<Address>,
}

fn json_schema_2020_12(_: Person) -> Result<String, Error> {
    Ok("The arguments matched the schema.".into())
}

struct Conformance;

impl Plugin for Conformance {
    fn tools() -> Vec<Tool> {
        vec![
            Tool::new(
                "test_simple_text",
                "Returns a simple text response.",
                simple_text,
            ),
            Tool::new(
                "test_image_content",
                "Returns a 1x1 red PNG image.",
                image_content,
            ),
            Tool::new(
                "test_error_handling",
                "Always returns an error result.",
                error_handling,
            ),
            Tool::new(
                "json_schema_2020_12_tool",
                "Tool with JSON Schema 2020-12 features",
                json_schema_2020_12,
            ),
        ]
    }
}

mcp_wasm_sdk::export!(Conformance);
