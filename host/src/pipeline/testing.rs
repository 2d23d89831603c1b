//! Test support: one shared sandbox, and a pipeline over the test plugins (`echo`, and
//! `fixture` offering the tools `fixture` and `routed`), for the layers above to test
//! against real components.

use super::Pipeline;
use crate::registry::{PluginConfig, Registry};
use crate::sandbox::Sandbox;
use crate::sandbox::pool::PoolSize;
use crate::secrets::sources::NoCredentials;
use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

/// One sandbox for every test: an engine and its pool are costly to make.
pub fn sandbox() -> Arc<Sandbox> {
    static SANDBOX: OnceLock<Arc<Sandbox>> = OnceLock::new();
    SANDBOX
        .get_or_init(|| {
            Arc::new(Sandbox::new(Arc::new(NoCredentials), PoolSize::default()).unwrap())
        })
        .clone()
}

/// A pipeline with real plugins: echo, and the fixture offering `fixture` (any object)
/// and `routed` (its `region` mirrored in an `Mcp-Param-Region` header), granted
/// sampling and elicitation; no limits, no audit log.
pub async fn plugin_pipeline() -> Arc<Pipeline> {
    let tools = serde_json::json!([
        {"name": "fixture", "input_schema": {"type": "object"}},
        {"name": "routed", "input_schema": {"type": "object", "properties": {
            "region": {"type": "string", "x-mcp-header": "Region"}
        }}}
    ])
    .to_string();
    let config = format!(
        "[echo]\npath = {:?}\n[fixture]\npath = {:?}\nenv = {{ FIXTURE_TOOLS = {:?} }}\n\
         client_features = [\"sampling\", \"elicitation\"]\n",
        test_artifacts::plugin("echo"),
        test_artifacts::plugin("fixture"),
        tools,
    );
    let plugins: BTreeMap<_, PluginConfig> = toml::from_str(&config).unwrap();
    let registry = Registry::load(&plugins, &sandbox()).await.unwrap();
    Arc::new(Pipeline::new(
        registry,
        sandbox(),
        Arc::new(crate::ratelimit::ToolLimiter::unlimited()),
        Arc::new(crate::audit::Audit::off()),
    ))
}
