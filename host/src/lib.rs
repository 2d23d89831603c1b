//! mcp-wasm-host: an MCP server whose tools run as sandboxed WebAssembly components.
//!
//! Where things live. Dependencies point down this list: a module uses only modules
//! below it (a test reads every `crate::` path in the source and keeps this true).
//!
//! - [`cli`]: parses the command line and dispatches.
//! - [`app`]: builds the shared state once; serves it over HTTP or stdio.
//! - [`reload`]: hot reload of the plugins on SIGHUP and on file changes.
//! - [`checklist`]: `config check`: a config and its plugins loaded without serving,
//!   graded against the production security checklist.
//! - [`config`]: `host.toml`, composed of the sections the modules below own.
//! - [`server`]: the HTTP edge: router, tower layers in order, listener, Host/Origin.
//! - [`auth`]: the OAuth protected resource: bearer tokens verified into callers.
//! - [`mcp`]: the rmcp `ServerHandler`; request context in, MCP results out.
//! - [`pipeline`]: one tool call, step by step, and its one outcome record.
//! - [`inspect`]: `plugin inspect`: what a component offers and asks for.
//! - [`scaffold`]: `plugin new`: a new plugin crate on the guest SDK.
//! - [`registry`]: the loaded plugins and their tools (schemas compiled at load).
//! - [`schema`]: checks a plugin's JSON Schemas at load and validates per call.
//! - [`audit`]: the hash-chained audit log, its writer and `audit verify`.
//! - [`ratelimit`]: `[rate_limits]` and the bounded keyed limiters built from it.
//! - [`sandbox`]: the wasmtime engine and each capability a plugin may be granted.
//! - [`secrets`]: the envelope-encrypted credential store and credential sources.
//! - [`telemetry`]: the Prometheus metrics every layer records.
//! - [`domain`]: names and quantities every layer shares.
//! - [`log_lines`]: the host log's lines, written to stderr in batches by a thread of
//!   their own.

#![deny(missing_docs)]

pub mod app;
pub mod audit;
pub mod auth;
pub mod checklist;
pub mod cli;
pub mod config;
pub mod domain;
pub mod inspect;
pub mod log_lines;
pub mod mcp;
pub mod pipeline;
pub mod ratelimit;
pub mod registry;
pub mod reload;
pub mod sandbox;
pub mod scaffold;
pub mod schema;
pub mod secrets;
pub mod server;
pub mod telemetry;

#[cfg(test)]
mod layering;
