//! End-to-end tests: the real host process, real MCP clients (rmcp, the Python and
//! TypeScript SDKs), real HTTP upstreams. One test binary: each links wasmtime, so one
//! link instead of one per file.

mod common;

mod audit;
mod auth;
mod browser;
mod client_features;
mod config_check;
mod conformance;
mod contract;
mod files;
mod hostile;
mod limits;
mod loading;
mod notes;
mod oauth;
mod other_languages;
mod python_sdk;
mod rate_limits;
mod records;
mod reload;
mod replicas;
mod results;
mod scaffold;
mod secrets;
mod stdio;
mod tls;
mod transport;
mod typescript_sdk;
mod weather;
