//! mcp-wasm-host: an MCP server whose tools run as sandboxed WebAssembly components.
//!
//! Where things live, outside in:
//!
//! - [`cli`]: the command line (`serve`, `plugin inspect`).
//! - [`config`]: `host.toml` parsed and checked; every error names the key and line.
//! - [`fd_limit`]: the open-file limit, raised at start to what the plugins may hold.
//! - [`server`]: the axum router, the listener (TCP_NODELAY) and `/healthz`.
//! - [`guard`]: checks on each `/mcp` request before rmcp parses it.
//! - [`mcp`]: the rmcp `ServerHandler`: `tools/list` and `tools/call` over Streamable HTTP.
//! - [`cooldown`]: slows down plugins whose calls keep crashing.
//! - [`pipeline`]: one tool call, step by step, from request to `CallToolResult`.
//! - [`registry`]: the loaded plugins and their tools (schemas compiled once at load).
//! - [`schema`]: checks a plugin's JSON Schemas at load and validates arguments per call.
//! - [`secrets`]: the envelope-encrypted credential store and its KEK.
//! - [`sandbox`]: the wasmtime engine and everything a plugin instance may touch.
//! - [`inspect`]: `plugin inspect`: what a component offers and what it asks for.

pub mod cli;
pub mod config;
pub mod cooldown;
pub mod fd_limit;
pub mod guard;
pub mod inspect;
pub mod mcp;
pub mod pipeline;
pub mod registry;
pub mod sandbox;
pub mod schema;
pub mod secrets;
pub mod server;
