//! Shared by the end-to-end tests, one module per concern: the plugins (built once per
//! run), a real OpenWeatherMap-shaped upstream on 127.0.0.1, the real host process,
//! configs, an encrypted secret store, MCP clients, and the SDK client scripts.

#![allow(
    dead_code,
    unused_imports,
    reason = "the benchmarks include this module and use only part of it"
)]

pub mod client;
pub mod config;
pub mod host;
pub mod idp;
pub mod oauth;
pub mod plugins;
pub mod sdk;
pub mod secrets;
pub mod services;
pub mod tls;
pub mod upstream;

pub use client::{
    Client, call_fixture, connect, connect_with_token, first_text, internal_host_name,
    stateless_call, stateless_result, tool_names,
};
pub use config::{ENV_SECRETS, toml_path, toml_str, weather_config};
pub use host::{Host, run_host, start_refused};
pub use plugins::{plugin, workspace_root};
pub use sdk::{assert_sdk_saw_weather, check_sdk_client, python, sdk_client_output};
pub use secrets::Secrets;
pub use upstream::{API_KEY, Upstream};
