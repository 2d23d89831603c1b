//! The official MCP conformance suite (`@modelcontextprotocol/conformance`, pinned in
//! tests/typescript) as the referee: its server scenarios run against the host serving
//! the `conformance` test plugin, which offers the tools they call. Every scenario
//! listed here must pass; the suite's other tool scenarios need what the plugin
//! contract does not offer yet (logging, progress, sampling, elicitation).

use crate::common::{Host, plugin, toml_path, workspace_root};
use std::process::Command;

/// The scenarios the host passes, each run on its own.
const SCENARIOS: [&str; 11] = [
    "server-initialize",
    "ping",
    "tools-list",
    "tools-call-simple-text",
    "tools-call-image",
    "tools-call-audio",
    "tools-call-embedded-resource",
    "tools-call-mixed-content",
    "tools-call-error",
    "json-schema-2020-12",
    "dns-rebinding-protection",
];

#[test]
fn the_conformance_suite_passes_its_tool_scenarios() {
    let host = Host::start(
        &format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n[plugins.conformance]\npath = {}\n",
            toml_path(&plugin("conformance"))
        ),
        &[],
    );
    let suite = workspace_root().join("tests/typescript/node_modules/.bin/conformance");
    assert!(
        suite.exists(),
        "no conformance suite at {}: run `npm ci` in tests/typescript",
        suite.display()
    );
    let mut failed = Vec::new();
    for scenario in SCENARIOS {
        let run = Command::new(&suite)
            .args(["server", "--url", &host.mcp_url(), "--scenario", scenario])
            .env("NO_COLOR", "1")
            .output()
            .expect("the conformance suite runs");
        let report = String::from_utf8_lossy(&run.stdout).into_owned()
            + &String::from_utf8_lossy(&run.stderr);
        // Each scenario ends with its tally; a scenario that ran no check proves nothing.
        let passed = run.status.success() && report.contains(" 0 failed");
        if !passed {
            failed.push(format!("{scenario} ({}):\n{report}", run.status));
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {} scenarios failed:\n\n{}\n--- host log ---\n{}",
        failed.len(),
        SCENARIOS.len(),
        failed.join("\n"),
        host.log()
    );
}
