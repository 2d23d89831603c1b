//! Filesystem grants on the real host: a plugin reads and writes exactly its granted
//! directories, with the granted permissions, and every way out fails inside it.

use crate::common::{Host, call_fixture, connect, first_text, plugin, start_refused, toml_path};
use serde_json::json;
use std::time::Duration;

struct Fixture {
    _dir: tempfile::TempDir,
    ro: std::path::PathBuf,
    rw: std::path::PathBuf,
    outside: std::path::PathBuf,
    host: Host,
}

/// A host whose fixture plugin has `/ro` (read-only) and `/rw` (read-write), next to
/// a host folder it was not granted.
fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let (ro, rw, outside) = (
        dir.path().join("ro"),
        dir.path().join("rw"),
        dir.path().join("outside"),
    );
    for folder in [&ro, &rw, &outside] {
        std::fs::create_dir(folder).unwrap();
    }
    std::fs::write(ro.join("notes.txt"), "read me").unwrap();
    std::fs::write(outside.join("secret.txt"), "not for plugins").unwrap();
    #[cfg(unix)]
    std::os::unix::fs::symlink(outside.join("secret.txt"), rw.join("link")).unwrap();
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n[plugins.fix]\npath = {}\nfiles = [\n  \
         {{ host = {}, guest = \"/ro\", mode = \"ro\" }},\n  \
         {{ host = {}, guest = \"/rw\", mode = \"rw\" }},\n]\n",
        toml_path(&plugin("fixture")),
        toml_path(&ro),
        toml_path(&rw),
    );
    let host = Host::start(&config, &[]);
    Fixture {
        _dir: dir,
        ro,
        rw,
        outside,
        host,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn granted_directories_work_with_their_permissions() {
    let f = fixture();
    let client = connect(&f.host.mcp_url()).await;
    let result = call_fixture(&client, json!({"read_file": "/ro/notes.txt"})).await;
    assert_eq!(
        (result.is_error, first_text(&result)),
        (Some(false), "read me".into())
    );
    let result = call_fixture(
        &client,
        json!({"write_file": "/rw/out.txt", "contents": "hi"}),
    )
    .await;
    assert_eq!(result.is_error, Some(false), "{}", first_text(&result));
    assert_eq!(std::fs::read_to_string(f.rw.join("out.txt")).unwrap(), "hi");
    let result = call_fixture(&client, json!({"rename": ["/rw/out.txt", "/rw/moved.txt"]})).await;
    assert_eq!(result.is_error, Some(false), "{}", first_text(&result));
    assert!(f.rw.join("moved.txt").exists());
    client.cancel().await.ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_way_out_fails_inside_the_plugin() {
    let f = fixture();
    let client = connect(&f.host.mcp_url()).await;
    // (attempt, what the plugin sees, the host log line naming it). Paths outside every
    // preopen are refused by the plugin's own libc before the host is asked: there is
    // nothing to log, and the raw WASI attempts below show the host refusing (and
    // logging) the same paths.
    let attempts = [
        (
            json!({"read_file": "/etc/passwd"}),
            ": No such file or directory",
            None,
        ),
        (
            json!({"list_dir": "/"}),
            ": No such file or directory",
            None,
        ),
        (
            json!({"write_file": "/elsewhere.txt", "contents": "x"}),
            ": No such file or directory",
            None,
        ),
        (
            json!({"raw_open": ["/ro", "/etc/passwd"]}),
            ": not-permitted",
            Some(r#"target="/etc/passwd (from /ro)""#),
        ),
        (
            json!({"raw_open": ["/rw", "../outside/secret.txt"]}),
            ": not-permitted",
            Some(r#"target="/rw/../outside/secret.txt""#),
        ),
        (
            json!({"read_file": "/ro/../outside/secret.txt"}),
            ": Operation not permitted",
            Some(r#"target="/ro/../outside/secret.txt""#),
        ),
        (
            json!({"read_file": "/ro/../../../../etc/passwd"}),
            ": Operation not permitted",
            Some(r#"target="/ro/../../../../etc/passwd""#),
        ),
        (
            json!({"read_file": "/rw/link"}),
            ": Operation not permitted",
            Some(
                r#"open: outside the granted directories or not writable plugin=fix capability=file target="/rw/link""#,
            ),
        ),
        (
            json!({"write_file": "/ro/notes.txt", "contents": "overwritten"}),
            ": Operation not permitted",
            Some(r#"target="/ro/notes.txt""#),
        ),
        (
            json!({"write_file": "/ro/new.txt", "contents": "x"}),
            ": Operation not permitted",
            Some(r#"target="/ro/new.txt""#),
        ),
        (
            json!({"rename": ["/ro/notes.txt", "/rw/stolen.txt"]}),
            ": Operation not permitted",
            Some(r#"target="/ro/notes.txt -> /rw/stolen.txt""#),
        ),
        (
            json!({"rename": ["/rw/link", "/ro/link"]}),
            ": Operation not permitted",
            Some(r#"target="/rw/link -> /ro/link""#),
        ),
        (
            json!({"hard_link": ["/ro/notes.txt", "/rw/hard"]}),
            ": Operation not permitted",
            Some(r#"target="/ro/notes.txt -> /rw/hard""#),
        ),
        (
            json!({"hard_link": ["/rw/../outside/secret.txt", "/rw/hard2"]}),
            ": Operation not permitted",
            Some(r#"target="/rw/../outside/secret.txt -> /rw/hard2""#),
        ),
    ];
    for (attempt, seen, logged) in attempts {
        let mark = f.host.log_mark();
        let result = call_fixture(&client, attempt.clone()).await;
        let answer = first_text(&result);
        assert_eq!(result.is_error, Some(true), "{attempt} succeeded: {answer}");
        assert!(answer.contains(seen), "{attempt}: {answer}");
        assert!(!answer.contains("not for plugins"), "{attempt}: {answer}");
        if let Some(logged) = logged {
            let log = f
                .host
                .wait_for_log_since(mark, logged, Duration::from_secs(5));
            assert!(log.contains(logged), "{attempt}: {logged} not in\n{log}");
        }
        // An honest call on the same host still answers right after.
        let result = call_fixture(&client, json!({"read_file": "/ro/notes.txt"})).await;
        assert_eq!(first_text(&result), "read me", "after {attempt}");
    }
    // Nothing outside the grants, or in the read-only grant, changed.
    assert_eq!(
        std::fs::read_to_string(f.ro.join("notes.txt")).unwrap(),
        "read me"
    );
    assert!(!f.ro.join("new.txt").exists());
    assert_eq!(
        std::fs::read_to_string(f.outside.join("secret.txt")).unwrap(),
        "not for plugins"
    );
    let mut rw: Vec<_> = std::fs::read_dir(&f.rw)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    rw.sort();
    assert_eq!(rw, ["link"], "the read-write folder gained files");
    // An honest call still works right after.
    let result = call_fixture(&client, json!({"read_file": "/ro/notes.txt"})).await;
    assert_eq!(first_text(&result), "read me");
    client.cancel().await.ok();
}

#[test]
fn bad_grants_stop_the_host_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let rw = dir.path().join("rw");
    std::fs::create_dir_all(rw.join("inner")).unwrap();
    for (files, needle) in [
        (
            "[{ host = \"/\", guest = \"/all\", mode = \"ro\" }]".to_owned(),
            "root directory",
        ),
        (
            "[{ host = \"/no/such/dir\", guest = \"/d\", mode = \"ro\" }]".to_owned(),
            "/no/such/dir",
        ),
        (
            format!(
                "[{{ host = {}, guest = \"/w\", mode = \"rw\" }}, {{ host = {}, guest = \"/r\", mode = \"ro\" }}]",
                toml_path(&rw),
                toml_path(&rw.join("inner"))
            ),
            "inside read-write",
        ),
        (
            format!(
                "[{{ host = {}, guest = \"/w\", mode = \"rwx\" }}]",
                toml_path(&rw)
            ),
            "rwx",
        ),
    ] {
        let config = format!(
            "[plugins.fix]\npath = {}\nfiles = {files}\n",
            toml_path(&plugin("fixture"))
        );
        let (status, stderr) = start_refused(&config, &[]);
        assert!(!status.success());
        assert!(stderr.contains(needle), "{files}: {stderr}");
        // Parse errors point at the line; checks name the plugin.
        assert!(
            stderr.contains("[plugins.fix]") || stderr.contains("line 3"),
            "{stderr}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_looping_on_refusals_cannot_flood_or_hide_in_the_log() {
    let f = fixture();
    let client = connect(&f.host.mcp_url()).await;
    // A thousand refused opens, then a credential it was not granted, in one call.
    let result = call_fixture(
        &client,
        json!({
            "raw_open": ["/ro", "../loop"], "repeat": 1000,
            "then": {"credential": "someone-elses-key"},
        }),
    )
    .await;
    assert_eq!(result.is_error, Some(true), "{}", first_text(&result));
    let log = f
        .host
        .wait_for_log("denied 992 more file requests", Duration::from_secs(5));
    assert!(
        log.contains("denied 992 more file requests in this call"),
        "{log}"
    );
    assert_eq!(log.matches(r#"target="/ro/../loop""#).count(), 8, "{log}");
    // The credential probe is not hidden behind the flood.
    assert!(
        log.contains(r#"capability=credential target="someone-elses-key""#),
        "{log}"
    );
    client.cancel().await.ok();
}
