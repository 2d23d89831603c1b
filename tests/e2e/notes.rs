//! The notes plugin: a read-write folder grant in use. Notes land as files in the
//! granted folder, concurrent adds never overwrite each other, and without the grant
//! (or with a read-only one) the plugin says what the operator must grant.

use crate::common::{Host, plugin, stateless_result, toml_path};
use serde_json::{Value, json};
use std::path::Path;

fn config(folder: &Path, mode: &str) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n[plugins.notes]\npath = {}\n\
         files = [{{ host = {}, guest = \"/data\", mode = \"{mode}\" }}]\n",
        toml_path(&plugin("notes")),
        toml_path(folder),
    )
}

async fn call(host: &Host, tool: &str, arguments: Value) -> Value {
    stateless_result(&host.mcp_url(), tool, arguments).await
}

fn text(result: &Value) -> &str {
    result["content"][0]["text"].as_str().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notes_are_files_in_the_granted_folder() {
    let folder = tempfile::tempdir().unwrap();
    // Something of the operator's in the folder is left alone and not read as a note.
    std::fs::write(folder.path().join("README.txt"), "mine").unwrap();
    let host = Host::start(&config(folder.path(), "rw"), &[]);
    assert_eq!(
        text(&call(&host, "list_notes", json!({})).await),
        "No notes yet."
    );
    let saved = call(
        &host,
        "add_note",
        json!({"title": "Groceries", "text": "eggs, Flour"}),
    )
    .await;
    assert_eq!(text(&saved), "Saved note 1: Groceries", "{saved}");
    call(
        &host,
        "add_note",
        json!({"title": "Call Ada", "text": "about the flour mill"}),
    )
    .await;

    let listed = call(&host, "list_notes", json!({})).await;
    assert_eq!(text(&listed), "1. Groceries\n2. Call Ada");
    assert_eq!(listed["structuredContent"]["notes"][1]["title"], "Call Ada");
    let found = call(&host, "search_notes", json!({"query": "FLOUR"})).await;
    assert_eq!(
        found["structuredContent"]["notes"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let found = call(&host, "search_notes", json!({"query": "ada"})).await;
    assert_eq!(text(&found), "2. Call Ada: about the flour mill");
    let none = call(&host, "search_notes", json!({"query": "zebra"})).await;
    assert_eq!(text(&none), "No note mentions \"zebra\".");

    // On disk, one file per note, beside the operator's file.
    let stored: Value =
        serde_json::from_slice(&std::fs::read(folder.path().join("note-000001.json")).unwrap())
            .unwrap();
    assert_eq!(stored["text"], "eggs, Flour");
    assert_eq!(
        std::fs::read_to_string(folder.path().join("README.txt")).unwrap(),
        "mine"
    );

    // Eight adds at once: eight notes, none overwritten.
    let adds = (0..8).map(|n| {
        let host = &host;
        async move {
            call(
                host,
                "add_note",
                json!({"title": format!("n{n}"), "text": "x"}),
            )
            .await
        }
    });
    for result in futures::future::join_all(adds).await {
        assert!(text(&result).starts_with("Saved note "), "{result}");
    }
    let listed = call(&host, "list_notes", json!({})).await;
    let ids: Vec<u64> = listed["structuredContent"]["notes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|note| note["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, (1..=10).collect::<Vec<_>>());

    // The schema bounds what a note may be, before the plugin runs.
    let empty = call(&host, "add_note", json!({"title": "", "text": "x"})).await;
    assert_eq!(empty["isError"], true, "{empty}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_read_write_grant_the_plugin_says_what_to_grant() {
    let folder = tempfile::tempdir().unwrap();
    let host = Host::start(&config(folder.path(), "ro"), &[]);
    let refused = call(&host, "add_note", json!({"title": "t", "text": "x"})).await;
    assert_eq!(refused["isError"], true, "{refused}");
    assert!(text(&refused).contains("read-write"), "{refused}");
    assert_eq!(std::fs::read_dir(folder.path()).unwrap().count(), 0);

    let config = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n[plugins.notes]\npath = {}\n",
        toml_path(&plugin("notes"))
    );
    let host = Host::start(&config, &[]);
    let refused = call(&host, "list_notes", json!({})).await;
    assert_eq!(refused["isError"], true, "{refused}");
    assert!(text(&refused).contains("/data is not granted"), "{refused}");
}
