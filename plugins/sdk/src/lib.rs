//! The guest SDK for mcp-wasm-host plugins: a tool is a Rust function from a typed
//! argument struct to a result. The SDK derives the tool's JSON Schema from the struct
//! (`#[derive(Deserialize, JsonSchema)]`, constraints from `#[schemars(...)]`
//! attributes and descriptions from doc comments), implements the `tools` interface of
//! `wit/plugin.wit`, turns errors into what the host expects, and wraps credentials and
//! outgoing HTTP in small helpers.
//!
//! ```no_run
//! use mcp_wasm_sdk::{Error, JsonSchema, Plugin, Tool};
//! use serde::Deserialize;
//!
//! #[derive(Deserialize, JsonSchema)]
//! #[serde(deny_unknown_fields)]
//! struct Greet {
//!     /// Who to greet.
//!     #[schemars(length(min = 1, max = 50), pattern(r"^[\p{L} '-]+$"))]
//!     name: String,
//! }
//!
//! fn greet(args: Greet) -> Result<String, Error> {
//!     if args.name == "nobody" {
//!         return Err(Error::Tool("Nobody is here; ask for someone else.".into()));
//!     }
//!     Ok(format!("Hello, {}!", args.name))
//! }
//!
//! struct Hello;
//!
//! impl Plugin for Hello {
//!     fn tools() -> Vec<Tool> {
//!         vec![Tool::new("greet", "Greets someone by name.", greet).title("Greet")]
//!     }
//! }
//!
//! mcp_wasm_sdk::export!(Hello);
//! ```

pub mod client;
pub mod credentials;
pub mod http;
mod tool;

pub use schemars::{self, JsonSchema};
pub use tool::{IntoContent, Structured, Tool};

/// The WIT bindings (`wit/plugin.wit`), for what the helpers do not cover.
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "plugin",
        pub_export_macro: true,
        export_macro_name: "export_bindings",
        default_bindings_module: "mcp_wasm_sdk::bindings",
        additional_derives: [PartialEq],
    });
}

pub use bindings::mcp::tools::types::{
    Annotations, Audio, CallResult, Content, EmbeddedResource, Image, ResourceBody, ResourceLink,
};

impl Annotations {
    /// No hints at all (start from this and set the ones that apply).
    pub fn none() -> Self {
        Self {
            read_only: None,
            destructive: None,
            idempotent: None,
            open_world: None,
        }
    }
}

/// Why a call did not produce a result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// A failure the model should read and may recover from ("city not found"): the
    /// client gets a tool result marked as an error, with this text.
    Tool(String),
    /// The arguments passed the schema but are still unusable.
    InvalidArguments(String),
    /// A remote service failed or answered something unusable.
    Upstream(String),
    /// Anything else: a bug in the plugin or a host that is not set up for it.
    Internal(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Tool(m) => write!(f, "{m}"),
            Error::InvalidArguments(m) => write!(f, "invalid arguments: {m}"),
            Error::Upstream(m) => write!(f, "upstream: {m}"),
            Error::Internal(m) => write!(f, "internal: {m}"),
        }
    }
}

impl std::error::Error for Error {}

/// A plugin: the tools it offers. Export it with [`export!`].
pub trait Plugin {
    /// Every tool, in the order `tools/list` shows them.
    fn tools() -> Vec<Tool>;
}

/// Exports a [`Plugin`] as the component's `tools` interface. Use once per plugin.
#[macro_export]
macro_rules! export {
    ($plugin:ty) => {
        struct __McpWasmSdkExport;

        impl $crate::bindings::exports::mcp::tools::tools::Guest for __McpWasmSdkExport {
            fn list_tools() -> ::std::vec::Vec<$crate::bindings::mcp::tools::types::Tool> {
                $crate::__private::list_tools(<$plugin as $crate::Plugin>::tools())
            }

            fn call_tool(
                name: ::std::string::String,
                arguments: ::std::string::String,
            ) -> ::std::result::Result<
                $crate::bindings::mcp::tools::types::CallResult,
                $crate::bindings::mcp::tools::types::CallError,
            > {
                $crate::__private::call_tool(<$plugin as $crate::Plugin>::tools(), &name, &arguments)
            }
        }

        $crate::bindings::export_bindings!(__McpWasmSdkExport with_types_in $crate::bindings);
    };
}

#[doc(hidden)]
pub mod __private {
    pub use crate::tool::{call_tool, list_tools};
}
