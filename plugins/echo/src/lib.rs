//! A minimal plugin: `echo` returns its `message` argument. Used by the benchmarks and
//! as the smallest example of the plugin SDK.

use mcp_wasm_sdk::{Error, JsonSchema, Plugin, Tool};
use serde::Deserialize;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Arguments {
    /// What to send back.
    #[schemars(length(max = 1048576))]
    message: String,
}

fn echo(args: Arguments) -> Result<String, Error> {
    Ok(args.message)
}

struct Echo;

impl Plugin for Echo {
    fn tools() -> Vec<Tool> {
        vec![Tool::new("echo", "Returns the message it is given.", echo).title("Echo")]
    }
}

mcp_wasm_sdk::export!(Echo);
