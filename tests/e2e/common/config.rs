//! Host configs as the tests write them.

use super::plugins::plugin;
use std::path::Path;

/// A TOML string literal for `path`.
pub fn toml_path(path: &Path) -> String {
    toml_str(&path.display().to_string())
}

/// A TOML basic string holding `text`.
pub fn toml_str(text: &str) -> String {
    serde_json::to_string(text).unwrap()
}

/// The config of a host serving the weather plugin against `upstream`, with
/// `secrets` as its `[secrets]` section (see [`Secrets::section`]).
pub fn weather_config(upstream_base: &str, allowed: &str, secrets: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"

{secrets}

[plugins.weather]
path = {path}
env = {{ WEATHER_API_BASE = {base} }}
credentials = ["weather-api-key"]
allowed_outbound_hosts = [{allowed}]
"#,
        path = toml_path(&plugin("weather")),
        base = toml_str(upstream_base),
        allowed = toml_str(allowed),
    )
}

/// The `[secrets]` section that takes credentials from `MCP_SECRET_*` variables.
pub const ENV_SECRETS: &str = "[secrets]\nsource = \"env\"\n";
