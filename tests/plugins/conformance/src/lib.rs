//! The tools the official MCP conformance suite (`@modelcontextprotocol/conformance`)
//! calls in its server scenarios, each answering what its scenario expects.

use mcp_wasm_sdk::client::{self, Elicitation};
use mcp_wasm_sdk::{
    Audio, Content, EmbeddedResource, Error, Image, JsonSchema, Plugin, ResourceBody, Tool,
};
use serde::Deserialize;
use serde_json::json;
use std::time::Duration;

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

/// A tenth of a second of silence: 8-bit mono PCM at 8 kHz, as WAV.
fn silent_wav() -> Vec<u8> {
    const RATE: u32 = 8000;
    let samples = vec![0x80u8; (RATE / 10) as usize];
    let mut wav = Vec::with_capacity(44 + samples.len());
    wav.extend_from_slice(b"RIFF");
    wav.extend_from_slice(&(36 + samples.len() as u32).to_le_bytes());
    wav.extend_from_slice(b"WAVEfmt ");
    wav.extend_from_slice(&16u32.to_le_bytes()); // format chunk size
    wav.extend_from_slice(&1u16.to_le_bytes()); // PCM
    wav.extend_from_slice(&1u16.to_le_bytes()); // mono
    wav.extend_from_slice(&RATE.to_le_bytes());
    wav.extend_from_slice(&RATE.to_le_bytes()); // bytes per second
    wav.extend_from_slice(&1u16.to_le_bytes()); // block align
    wav.extend_from_slice(&8u16.to_le_bytes()); // bits per sample
    wav.extend_from_slice(b"data");
    wav.extend_from_slice(&(samples.len() as u32).to_le_bytes());
    wav.extend_from_slice(&samples);
    wav
}

fn audio_content(_: NoArguments) -> Result<Vec<Content>, Error> {
    Ok(vec![Content::Audio(Audio {
        mime_type: "audio/wav".into(),
        data: silent_wav(),
    })])
}

fn text_resource(uri: &str, mime_type: &str, text: &str) -> Content {
    Content::EmbeddedResource(EmbeddedResource {
        uri: uri.into(),
        mime_type: Some(mime_type.into()),
        body: ResourceBody::Text(text.into()),
    })
}

fn embedded_resource(_: NoArguments) -> Result<Vec<Content>, Error> {
    Ok(vec![text_resource(
        "test://embedded-resource",
        "text/plain",
        "This is an embedded resource content.",
    )])
}

fn multiple_content_types(_: NoArguments) -> Result<Vec<Content>, Error> {
    Ok(vec![
        Content::Text("Multiple content types test:".into()),
        Content::Image(Image {
            mime_type: "image/png".into(),
            data: RED_PIXEL_PNG.to_vec(),
        }),
        text_resource(
            "test://mixed-content-resource",
            "application/json",
            r#"{"test":"data","value":123}"#,
        ),
    ])
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

fn with_logging(_: NoArguments) -> Result<String, Error> {
    client::debug("Tool debug detail");
    client::info("Tool execution started");
    std::thread::sleep(Duration::from_millis(50));
    client::info("Tool processing data");
    std::thread::sleep(Duration::from_millis(50));
    client::info("Tool execution completed");
    Ok("Tool with logging executed successfully".into())
}

fn with_progress(_: NoArguments) -> Result<String, Error> {
    for (i, done) in [0.0, 50.0, 100.0].into_iter().enumerate() {
        if i > 0 {
            std::thread::sleep(Duration::from_millis(50));
        }
        client::progress(done, Some(100.0), None);
    }
    Ok("Tool with progress executed successfully".into())
}

/// The sampling scenario's arguments.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Prompt {
    /// The prompt to send to the LLM.
    prompt: String,
}

fn sampling(args: Prompt) -> Result<String, Error> {
    let answer = client::sample(args.prompt, 100)?;
    Ok(format!("LLM response: {answer}"))
}

/// The elicitation scenario's arguments.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Message {
    /// The message to show the user.
    message: String,
}

/// How an elicitation ended, as the scenarios' tools report it.
fn described(answer: Elicitation<serde_json::Value>) -> String {
    match answer {
        Elicitation::Accepted(content) => format!("action=accept, content={content}"),
        Elicitation::Declined => "action=decline".into(),
        Elicitation::Cancelled => "action=cancel".into(),
    }
}

fn elicitation(args: Message) -> Result<String, Error> {
    let schema = json!({
        "type": "object",
        "properties": {
            "username": {"type": "string", "description": "User's response"},
            "email": {"type": "string", "description": "User's email address"},
        },
        "required": ["username", "email"],
    });
    let answer = client::elicit_with(args.message, &schema)?;
    Ok(format!("User response: {}", described(answer)))
}

fn elicitation_defaults(_: NoArguments) -> Result<String, Error> {
    let schema = json!({
        "type": "object",
        "properties": {
            "name": {"type": "string", "description": "User name", "default": "John Doe"},
            "age": {"type": "integer", "description": "User age", "default": 30},
            "score": {"type": "number", "description": "User score", "default": 95.5},
            "status": {
                "type": "string",
                "description": "User status",
                "enum": ["active", "inactive", "pending"],
                "default": "active",
            },
            "verified": {"type": "boolean", "description": "Verification status", "default": true},
        },
    });
    let answer = client::elicit_with(
        "Please review and update the form fields with defaults",
        &schema,
    )?;
    Ok(format!("Elicitation completed: {}", described(answer)))
}

fn elicitation_enums(_: NoArguments) -> Result<String, Error> {
    let schema = json!({
        "type": "object",
        "properties": {
            "untitledSingle": {"type": "string", "enum": ["option1", "option2", "option3"]},
            "titledSingle": {
                "type": "string",
                "oneOf": [
                    {"const": "value1", "title": "First Option"},
                    {"const": "value2", "title": "Second Option"},
                    {"const": "value3", "title": "Third Option"},
                ],
            },
            "legacyEnum": {
                "type": "string",
                "enum": ["opt1", "opt2", "opt3"],
                "enumNames": ["Option One", "Option Two", "Option Three"],
            },
            "untitledMulti": {
                "type": "array",
                "items": {"type": "string", "enum": ["option1", "option2", "option3"]},
            },
            "titledMulti": {
                "type": "array",
                "items": {
                    "anyOf": [
                        {"const": "value1", "title": "First Choice"},
                        {"const": "value2", "title": "Second Choice"},
                        {"const": "value3", "title": "Third Choice"},
                    ],
                },
            },
        },
    });
    let answer = client::elicit_with("Please select options from the enum fields", &schema)?;
    Ok(format!("Elicitation completed: {}", described(answer)))
}

/// A coffee order, asked of the user as a typed form (not a conformance scenario: the
/// SDK's `elicit::<T>` under test).
#[derive(Deserialize, JsonSchema)]
struct CoffeeOrder {
    /// Cup size.
    size: CupSize,
    /// Sugar cubes, if any.
    sugar: Option<u32>,
    /// Oat milk instead of cow's milk.
    oat_milk: bool,
}

#[derive(Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
enum CupSize {
    Small,
    Large,
}

fn order_coffee(_: NoArguments) -> Result<String, Error> {
    Ok(
        match client::elicit::<CoffeeOrder>("How would you like your coffee?")? {
            Elicitation::Accepted(order) => format!(
                "Ordered: {} coffee, {} sugar, {}",
                match order.size {
                    CupSize::Small => "small",
                    CupSize::Large => "large",
                },
                order.sugar.unwrap_or(0),
                if order.oat_milk {
                    "oat milk"
                } else {
                    "cow's milk"
                }
            ),
            Elicitation::Declined | Elicitation::Cancelled => "No coffee ordered.".into(),
        },
    )
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
                "test_audio_content",
                "Returns a short silent WAV clip.",
                audio_content,
            ),
            Tool::new(
                "test_embedded_resource",
                "Returns an embedded text resource.",
                embedded_resource,
            ),
            Tool::new(
                "test_multiple_content_types",
                "Returns text, an image and an embedded resource.",
                multiple_content_types,
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
            Tool::new(
                "test_tool_with_logging",
                "Sends a debug and three info log messages while it runs.",
                with_logging,
            ),
            Tool::new(
                "test_tool_with_progress",
                "Reports progress 0, 50 and 100 of 100.",
                with_progress,
            ),
            Tool::new(
                "test_sampling",
                "Asks the client's model to answer a prompt.",
                sampling,
            ),
            Tool::new(
                "test_elicitation",
                "Asks the user for a username and an email address.",
                elicitation,
            ),
            Tool::new(
                "test_elicitation_sep1034_defaults",
                "Asks the user for fields that all have defaults.",
                elicitation_defaults,
            ),
            Tool::new(
                "order_coffee",
                "Asks the user how they like their coffee (a typed form).",
                order_coffee,
            ),
            Tool::new(
                "test_elicitation_sep1330_enums",
                "Asks the user to choose from five kinds of enum fields.",
                elicitation_enums,
            ),
        ]
    }
}

mcp_wasm_sdk::export!(Conformance);
