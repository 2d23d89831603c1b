//! Hot reload while the host serves: a changed config or plugin file, or SIGHUP, swaps
//! the plugin set without dropping anyone; calls in flight finish on the plugins they
//! started with; a plugin that fails to load leaves its previous version serving; and
//! connected clients (a 2025-11-25 session, a 2026-07-28 `subscriptions/listen` stream)
//! hear that the tools changed.

use crate::common::host::with_auth;
use crate::common::{
    Host, plugin, stateless_call, stateless_result, toml_path, toml_str, tool_names,
};
use rmcp::model::{ProtocolVersion, ServerNotification, SubscriptionFilter};
use rmcp::service::{ClientLifecycleMode, ClientServiceExt, NotificationContext};
use rmcp::{ClientHandler, RoleClient, ServiceExt};
use serde_json::{Value, json};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

/// What the host logs when a reload is done.
const RELOADED: &str = "plugins reloaded";

/// How long a reload may take (it may compile a plugin).
const WAIT: Duration = Duration::from_secs(90);

/// Echo from `echo`, and with `fixture_tools` the fixture offering those tools;
/// audited to `audit`.
fn config(echo: &Path, fixture_tools: Option<Value>, audit: &Path) -> String {
    let mut config = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n[audit]\npath = {}\n[plugins.echo]\npath = {}\n",
        toml_path(audit),
        toml_path(echo),
    );
    if let Some(tools) = fixture_tools {
        config.push_str(&format!(
            "[plugins.fixture]\npath = {}\nenv = {{ FIXTURE_TOOLS = {} }}\n",
            toml_path(&plugin("fixture")),
            toml_str(&tools.to_string()),
        ));
    }
    config
}

/// Fixture tools by name, each taking any object.
fn fixture_tools(names: &[&str]) -> Value {
    names
        .iter()
        .map(|name| json!({"name": name, "input_schema": {"type": "object"}}))
        .collect()
}

/// Replaces the host's config as a deploy tool does: a new file renamed over the old.
fn replace_config(host: &Host, config: &str) {
    let path = host.config_path();
    let next = path.with_extension("toml.next");
    std::fs::write(&next, with_auth(config)).unwrap();
    std::fs::rename(&next, path).unwrap();
}

/// Waits for the reload that follows `mark` in the log; returns the log since `mark`.
fn reloaded_since(host: &Host, mark: usize) -> String {
    let log = host.wait_for_log_since(mark, RELOADED, WAIT);
    assert!(log.contains(RELOADED), "no reload within {WAIT:?}:\n{log}");
    log
}

/// The text an echo call answers (panics on an error).
async fn echo(host: &Host, message: &str) -> String {
    let result = stateless_result(&host.mcp_url(), "echo", json!({"message": message})).await;
    assert_ne!(result["isError"], true, "{result}");
    result["content"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// The JSON-RPC answer to a stateless call of `tool`.
async fn answer(host: &Host, tool: &str, arguments: Value) -> Value {
    stateless_call(&reqwest::Client::new(), &host.mcp_url(), tool, arguments)
        .send()
        .await
        .expect("the host answers")
        .json()
        .await
        .expect("a JSON answer")
}

/// Waits until a call of `plugin` is running (the host's instance gauge says so).
async fn wait_until_running(host: &Host, plugin: &str) {
    let sample = format!("mcp_instances_in_use{{plugin=\"{plugin}\"}} ");
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let metrics = reqwest::get(format!("http://{}/metrics", host.addr))
            .await
            .expect("/metrics answers")
            .text()
            .await
            .unwrap_or_default();
        let running = metrics.lines().any(|line| {
            line.strip_prefix(&sample)
                .and_then(|value| value.trim().parse::<f64>().ok())
                .is_some_and(|value| value >= 1.0)
        });
        if running {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no call of {plugin} started:\n{metrics}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The audit records of `path`, in order.
fn audit_records(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

/// Waits until the audit log at `path` holds a record `wanted` accepts.
fn wait_for_record(path: &Path, wanted: impl Fn(&Value) -> bool) -> Value {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        if let Some(found) = audit_records(path).into_iter().find(&wanted) {
            return found;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no such audit record in:\n{}",
            std::fs::read_to_string(path).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_in_flight_finish_while_the_plugins_reload() {
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    let echo_path = plugin("echo");
    let host = Host::start(
        &config(&echo_path, Some(fixture_tools(&["slow"])), &audit),
        &[],
    );

    // A call that is still running when its plugin is removed (5 s: the default
    // limit is 10 s).
    let url = host.mcp_url();
    let slow = tokio::spawn(async move {
        stateless_result(&url, "slow", json!({"sleep_ms": 5000, "echo": "done"})).await
    });
    wait_until_running(&host, "fixture").await;
    // Clients calling all along.
    let stop = Arc::new(AtomicBool::new(false));
    let (calls, failures) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut callers = Vec::new();
    for client in 0..4 {
        let (url, stop) = (host.mcp_url(), stop.clone());
        let (calls, failures) = (calls.clone(), failures.clone());
        callers.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            while !stop.load(Ordering::Relaxed) {
                let message = format!("client {client}");
                let answer = stateless_call(&http, &url, "echo", json!({"message": message}))
                    .send()
                    .await;
                let ok = match answer {
                    Ok(answer) => answer
                        .json::<Value>()
                        .await
                        .is_ok_and(|a| a["result"]["content"][0]["text"] == message.as_str()),
                    Err(_) => false,
                };
                calls.fetch_add(1, Ordering::Relaxed);
                if !ok {
                    failures.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    // The fixture goes away (its file is untouched: only the config changed).
    let mark = host.log_mark();
    replace_config(&host, &config(&echo_path, None, &audit));
    reloaded_since(&host, mark);
    assert!(!slow.is_finished(), "the slow call spans the reload");
    let gone = answer(&host, "slow", json!({})).await;
    assert!(
        gone["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("slow")),
        "a removed tool is unknown: {gone}"
    );
    // And comes back with another tool, on SIGHUP too.
    let mark = host.log_mark();
    std::fs::write(
        host.config_path(),
        with_auth(&config(&echo_path, Some(fixture_tools(&["fresh"])), &audit)),
    )
    .unwrap();
    reloaded_since(&host, mark);
    host.signal(rustix::process::Signal::HUP);
    let log = host.wait_for_line(
        |line| line.contains(RELOADED) && line.contains("cause=SIGHUP"),
        WAIT,
    );
    assert!(log.contains("cause=SIGHUP"), "{log}");

    let finished = slow.await.unwrap();
    assert_ne!(finished["isError"], true, "{finished}");
    stop.store(true, Ordering::Relaxed);
    for caller in callers {
        caller.await.unwrap();
    }
    let (calls, failures) = (
        calls.load(Ordering::Relaxed),
        failures.load(Ordering::Relaxed),
    );
    assert!(calls > 0, "the clients made calls");
    assert_eq!(
        failures, 0,
        "{failures} of {calls} calls failed during reloads"
    );
    let fresh = stateless_result(&host.mcp_url(), "fresh", json!({})).await;
    assert_ne!(fresh["isError"], true, "{fresh}");

    // Each reload is in the audit log: the fixture removed, then added back.
    wait_for_record(&audit, |r| {
        r["event"] == "plugin_unloaded" && r["plugin"] == "fixture"
    });
    let added = wait_for_record(&audit, |r| {
        r["event"] == "plugin_loaded" && r["detail"]["change"] == "added"
    });
    assert_eq!(added["detail"]["tools"], json!(["fresh"]), "{added}");
    let signalled = wait_for_record(&audit, |r| {
        r["event"] == "reload" && r["detail"]["cause"] == "SIGHUP"
    });
    // Nothing changed between the last two reloads.
    assert_eq!(signalled["detail"]["tools_changed"], false, "{signalled}");
    assert_eq!(signalled["detail"]["plugins"]["echo"], "unchanged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_that_fails_to_load_leaves_its_previous_version_serving() {
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    // The host serves a copy that the test overwrites, as a deploy would.
    let echo_path = dir.path().join("echo.wasm");
    let good = std::fs::read(plugin("echo")).unwrap();
    std::fs::write(&echo_path, &good).unwrap();
    let host = Host::start(&config(&echo_path, None, &audit), &[]);
    assert_eq!(echo(&host, "before").await, "before");

    // A broken build lands on the plugin's file.
    let mark = host.log_mark();
    std::fs::write(&echo_path, b"\0asm\x0d\0\x01\0 not a component").unwrap();
    let log = reloaded_since(&host, mark);
    assert!(
        log.contains("previous version keeps serving"),
        "the failure is logged:\n{log}"
    );
    assert!(log.contains("plugin `echo`"), "the plugin is named:\n{log}");
    assert_eq!(echo(&host, "still").await, "still");
    let failed = wait_for_record(&audit, |r| r["event"] == "plugin_load_failed");
    assert_eq!(failed["plugin"], "echo");
    assert_eq!(failed["detail"]["kept_previous"], true, "{failed}");
    assert!(
        failed["reason"]
            .as_str()
            .is_some_and(|r| r.contains("echo.wasm")),
        "the record says which file: {failed}"
    );

    // A config that does not parse changes nothing either.
    let mark = host.log_mark();
    std::fs::write(host.config_path(), "[plugins.echo\npath = 1").unwrap();
    let log = host.wait_for_log_since(mark, "reload refused", WAIT);
    assert!(log.contains("reload refused"), "{log}");
    assert!(log.contains("host.toml"), "the file is named:\n{log}");
    assert_eq!(echo(&host, "unharmed").await, "unharmed");
    wait_for_record(&audit, |r| r["event"] == "reload_failed");

    // The good build and config are back: served again.
    let mark = host.log_mark();
    std::fs::write(&echo_path, &good).unwrap();
    replace_config(&host, &config(&echo_path, None, &audit));
    reloaded_since(&host, mark);
    assert_eq!(echo(&host, "after").await, "after");
}

/// A client that remembers the `notifications/tools/list_changed` it receives.
#[derive(Clone)]
struct Listener {
    heard: tokio::sync::mpsc::UnboundedSender<()>,
}

impl ClientHandler for Listener {
    fn get_info(&self) -> rmcp::model::ClientConfig {
        rmcp::model::ClientConfig::default().with_protocol_version(ProtocolVersion::V_2025_11_25)
    }

    async fn on_tool_list_changed(&self, _context: NotificationContext<RoleClient>) {
        let _ = self.heard.send(());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connected_clients_hear_that_the_tools_changed() {
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    let echo_path = plugin("echo");
    let host = Host::start(
        &config(
            &echo_path,
            Some(fixture_tools(&["first", "second"])),
            &audit,
        ),
        &[],
    );

    // A 2025-11-25 session, initialized.
    let (heard, mut hearing) = tokio::sync::mpsc::unbounded_channel();
    let transport = rmcp::transport::StreamableHttpClientTransport::from_uri(host.mcp_url());
    let session = Listener { heard }
        .serve(transport)
        .await
        .expect("a 2025-11-25 session opens");
    let capabilities = session.peer_info().unwrap().capabilities.tools.clone();
    assert_eq!(
        capabilities.and_then(|t| t.list_changed),
        Some(true),
        "the host says it announces tool list changes"
    );
    // A 2026-07-28 client (`server/discover`, no session), listening.
    let stateless = ()
        .serve_with_lifecycle(
            rmcp::transport::StreamableHttpClientTransport::from_uri(host.mcp_url()),
            ClientLifecycleMode::Discover {
                preferred_versions: vec![ProtocolVersion::V_2026_07_28],
            },
        )
        .await
        .expect("a 2026-07-28 client connects");
    let mut subscription = stateless
        .peer()
        .listen(SubscriptionFilter::builder().tools_list_changed().build())
        .await
        .expect("subscriptions/listen is accepted");
    assert_eq!(subscription.acknowledged().tools_list_changed, Some(true));

    // A reload that changes nothing is not announced.
    let mark = host.log_mark();
    host.signal(rustix::process::Signal::HUP);
    reloaded_since(&host, mark);
    // The reload that drops `second` is.
    let mark = host.log_mark();
    replace_config(
        &host,
        &config(&echo_path, Some(fixture_tools(&["first"])), &audit),
    );
    reloaded_since(&host, mark);
    tokio::time::timeout(WAIT, hearing.recv())
        .await
        .expect("the session hears within the time")
        .expect("the session hears of the change");
    let notification = tokio::time::timeout(WAIT, subscription.next())
        .await
        .expect("the stream hears within the time")
        .expect("the stream is open")
        .expect("the stream has a notification");
    assert!(
        matches!(
            notification,
            ServerNotification::ToolListChangedNotification(_)
        ),
        "{notification:?}"
    );
    // Exactly once: the unchanged reload before was not announced.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(hearing.try_recv().is_err(), "one announcement per change");

    assert_eq!(tool_names(&session).await, ["echo", "first"]);
    assert_eq!(tool_names(&stateless).await, ["echo", "first"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_watching_only_sighup_reloads() {
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    let echo_path = plugin("echo");
    let unwatched = |tools: &[&str]| {
        format!(
            "[reload]\nwatch = false\n{}",
            config(&echo_path, Some(fixture_tools(tools)), &audit)
        )
    };
    let host = Host::start(&unwatched(&["old"]), &[]);
    let mark = host.log_mark();
    replace_config(&host, &unwatched(&["new"]));
    // Far longer than a watched reload takes to start.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        !host.log()[mark..].contains("reloading plugins"),
        "{}",
        host.log()
    );
    let old = stateless_result(&host.mcp_url(), "old", json!({})).await;
    assert_ne!(old["isError"], true, "{old}");

    host.signal(rustix::process::Signal::HUP);
    reloaded_since(&host, mark);
    let new = stateless_result(&host.mcp_url(), "new", json!({})).await;
    assert_ne!(new["isError"], true, "{new}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_and_config_changes_while_starting_are_not_lost() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    let path = dir.path().join("host.toml");
    // No compiled-plugin cache: loading takes long enough to act during it.
    let uncached = |tools: &[&str]| {
        with_auth(&format!(
            "[cache]\nenabled = false\n{}",
            config(&plugin("echo"), Some(fixture_tools(tools)), &audit)
        ))
    };
    std::fs::write(&path, uncached(&["before"])).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_mcp-wasm-host"))
        .args(["serve", "--config"])
        .arg(&path)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::HUP).unwrap();
    std::fs::write(&path, uncached(&["after"])).unwrap();

    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let listening = lines.next().and_then(Result::ok).unwrap_or_default();
    let status = child.try_wait().unwrap();
    assert!(
        status.is_none(),
        "the host ended ({status:?}) instead of serving"
    );
    let url = listening
        .strip_prefix("mcp-wasm-host listening on ")
        .unwrap_or_else(|| panic!("no address line: {listening:?}"))
        .to_owned();
    // The config written while it started is served without another signal.
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let answer = stateless_call(&reqwest::Client::new(), &url, "after", json!({}))
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap();
        if answer["result"]["isError"] == false {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{answer}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
}
