//! The official MCP conformance suite (`@modelcontextprotocol/conformance`, pinned in
//! tests/typescript) as the referee: its server scenarios run against the host serving
//! the `conformance` test plugin, which offers the tools they call. Every scenario
//! listed here must pass; the suite's other tool scenarios need what the plugin
//! contract does not offer yet (logging, progress, sampling, elicitation).

use crate::common::{Host, plugin, toml_path, workspace_root};
use std::process::Command;

/// The scenarios the host passes, each run on its own.
const SCENARIOS: [&str; 18] = [
    "server-initialize",
    "ping",
    "logging-set-level",
    "tools-list",
    "tools-call-simple-text",
    "tools-call-image",
    "tools-call-audio",
    "tools-call-embedded-resource",
    "tools-call-mixed-content",
    "tools-call-with-logging",
    "tools-call-error",
    "tools-call-with-progress",
    "tools-call-sampling",
    "tools-call-elicitation",
    "json-schema-2020-12",
    "elicitation-sep1034-defaults",
    "elicitation-sep1330-enums",
    "dns-rebinding-protection",
];

#[test]
fn the_conformance_suite_passes_its_tool_scenarios() {
    let host = Host::start(
        &format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n[plugins.conformance]\npath = {}\n\
             client_features = [\"sampling\", \"elicitation\"]\n",
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
        let passed = run.status.success()
            && tally(&report).is_some_and(|(passed, total, failed, warnings)| {
                total > 0 && passed == total && failed == 0 && warnings == 0
            });
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

/// The numbers of a scenario's last line `Passed: P/T, F failed, W warnings`.
fn tally(report: &str) -> Option<(u32, u32, u32, u32)> {
    let line = report.lines().rev().find(|l| l.starts_with("Passed: "))?;
    let numbers: Vec<u32> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter(|part| !part.is_empty())
        .map(|n| n.parse().ok())
        .collect::<Option<_>>()?;
    match numbers[..] {
        [passed, total, failed, warnings] => Some((passed, total, failed, warnings)),
        _ => None,
    }
}

#[test]
fn the_tally_is_read_in_full() {
    assert_eq!(
        tally("x\nPassed: 4/4, 0 failed, 0 warnings\n"),
        Some((4, 4, 0, 0))
    );
    assert_eq!(
        tally("Passed: 0/0, 0 failed, 0 warnings"),
        Some((0, 0, 0, 0))
    );
    assert_eq!(
        tally("Passed: 3/4, 1 failed, 2 warnings"),
        Some((3, 4, 1, 2))
    );
    assert_eq!(tally("no tally"), None);
}
