//! The plugin contract grows without breaking anyone: a plugin built against
//! `mcp:tools@0.1.0` (`tests/plugins/legacy`, from `wit/v0.1.0`) loads and serves beside
//! plugins built against the current version, credentials and all, and `plugin
//! inspect` says which version each speaks.

use crate::common::{ENV_SECRETS, Host, plugin, run_host, stateless_result, toml_path};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_of_the_previous_contract_serves_beside_current_ones() {
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n{ENV_SECRETS}\
         [plugins.legacy]\npath = {}\ncredentials = [\"legacy-key\"]\n\
         [plugins.echo]\npath = {}\n",
        toml_path(&plugin("legacy")),
        toml_path(&plugin("echo")),
    );
    let host = Host::start(&config, &[("MCP_SECRET_LEGACY_KEY", "k")]);
    let url = host.mcp_url();

    let old = stateless_result(
        &url,
        "legacy_echo",
        json!({"message": "hi", "credential": true}),
    )
    .await;
    assert_ne!(old["isError"], true, "{old}");
    assert_eq!(old["content"][0]["text"], "hi / credential: true");
    // A 0.1.0 link is a URI; it names itself.
    assert_eq!(
        old["content"][1],
        json!({"type": "resource_link", "uri": "https://example.com/legacy", "name": "https://example.com/legacy"})
    );
    let current = stateless_result(&url, "echo", json!({"message": "now"})).await;
    assert_eq!(current["content"][0]["text"], "now", "{current}");

    let legacy = plugin("legacy");
    let (status, inspected, stderr) = run_host(&["plugin", "inspect", &legacy.to_string_lossy()]);
    assert!(status.success(), "{stderr}");
    assert!(
        inspected.contains("contract: mcp:tools@0.1.0 (an earlier version, still served)"),
        "{inspected}"
    );
    let echo = plugin("echo");
    let (_, inspected, _) = run_host(&["plugin", "inspect", &echo.to_string_lossy()]);
    assert!(
        inspected.contains("contract: mcp:tools@0.2.0 (the current version)"),
        "{inspected}"
    );
}
