//! The plugin contract from other languages: a Python plugin built with componentize-py
//! (`plugins/python-textstats`) and a JavaScript one built with ComponentizeJS
//! (`plugins/js-units`), each by its own build script (which installs its tool from
//! PyPI or npm on first use), then loaded and called through the whole pipeline.

use crate::common::{Host, stateless_result, toml_path, workspace_root};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs `plugins/<plugin>/build.sh`; returns the component it wrote.
fn build(plugin: &str, file: &str) -> PathBuf {
    let root = workspace_root();
    let out = root.join("target/plugin-artifacts/other-languages");
    std::fs::create_dir_all(&out).unwrap();
    let out = out.join(file);
    let built = Command::new("bash")
        .arg(root.join("plugins").join(plugin).join("build.sh"))
        .arg(&out)
        .output()
        .expect("bash runs");
    assert!(
        built.status.success(),
        "building {plugin} failed:\n{}\n{}",
        String::from_utf8_lossy(&built.stdout),
        String::from_utf8_lossy(&built.stderr)
    );
    out
}

fn serve(plugin: &str, path: &Path) -> Host {
    Host::start(
        &format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n[plugins.{plugin}]\npath = {}\n",
            toml_path(path)
        ),
        &[],
    )
}

fn text(result: &Value) -> &str {
    result["content"][0]["text"].as_str().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_plugin_serves_its_tool() {
    let component = build("python-textstats", "textstats.wasm");
    let host = serve("textstats", &component);
    let url = host.mcp_url();

    let counted = stateless_result(
        &url,
        "text_stats",
        json!({"text": "The cat saw the hat.\nThe end", "top": 2}),
    )
    .await;
    assert_ne!(counted["isError"], true, "{counted}");
    assert_eq!(
        counted["structuredContent"],
        json!({
            "words": 7, "lines": 2, "characters": 28,
            "top_words": [{"word": "the", "count": 3}, {"word": "cat", "count": 1}]
        })
    );
    assert!(text(&counted).starts_with("7 words, 2 lines"), "{counted}");

    // The host's schema check refuses what the plugin's schema refuses...
    let refused = stateless_result(&url, "text_stats", json!({"text": "a", "top": 99})).await;
    assert_eq!(refused["isError"], true, "{refused}");
    assert!(text(&refused).contains("top"), "{refused}");
    // ...and the plugin's own refusal reaches the model as the plugin wrote it.
    let empty = stateless_result(&url, "text_stats", json!({"text": "  "})).await;
    assert_eq!(empty["isError"], true, "{empty}");
    assert_eq!(
        text(&empty),
        "Invalid arguments: `text` has no words to count"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_javascript_plugin_serves_its_tool() {
    let component = build("js-units", "units.wasm");
    let host = serve("units", &component);
    let url = host.mcp_url();

    let boiling = stateless_result(
        &url,
        "convert_units",
        json!({"value": 100, "from": "C", "to": "F"}),
    )
    .await;
    assert_ne!(boiling["isError"], true, "{boiling}");
    assert_eq!(
        boiling["structuredContent"],
        json!({"value": 212, "unit": "F", "dimension": "temperature"})
    );
    assert_eq!(text(&boiling), "100 C = 212 F");
    let miles = stateless_result(
        &url,
        "convert_units",
        json!({"value": 3, "from": "mi", "to": "km"}),
    )
    .await;
    assert_eq!(miles["structuredContent"]["value"], 4.828032, "{miles}");

    let unknown_unit = stateless_result(
        &url,
        "convert_units",
        json!({"value": 1, "from": "parsec", "to": "m"}),
    )
    .await;
    assert_eq!(unknown_unit["isError"], true, "{unknown_unit}");
    let across = stateless_result(
        &url,
        "convert_units",
        json!({"value": 1, "from": "kg", "to": "mi"}),
    )
    .await;
    assert_eq!(across["isError"], true, "{across}");
    assert_eq!(
        text(&across),
        "Invalid arguments: cannot convert kg (mass) to mi (length)"
    );
}
