//! The audit log on the real host: one record per call and per denial, a chain that
//! `audit verify` accepts and that catches any edit, deletion or reordering by line; a
//! host killed in the middle of a load keeps every call a client got an answer for;
//! a log that cannot be written stops tool calls until it can.

use crate::common::host::run_with_input;
use crate::common::idp::Idp;
use crate::common::{Host, plugin, run_host, start_refused, stateless_call, toml_path, toml_str};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The fixture plugin offering `open` and `read` (scope `fix:read`), auditing to
/// `audit` with `extra` lines in `[audit]`.
fn config(auth: &str, audit: &Path, extra: &str) -> String {
    let tools = json!([
        {"name": "open", "input_schema": {"type": "object", "properties": {"n": {"type": "integer"}}}},
        {"name": "read", "input_schema": {"type": "object"}},
    ]);
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n{auth}\n[audit]\npath = {}\n{extra}\n\
         [plugins.fix]\npath = {}\nenv = {{ FIXTURE_TOOLS = {} }}\n\
         scopes = {{ read = \"fix:read\" }}\n",
        toml_path(audit),
        toml_path(&plugin("fixture")),
        toml_str(&tools.to_string()),
    )
}

/// A stateless 2026-07-28 `tools/call` of `tool` with `arguments`: (status, request id,
/// body).
async fn call(
    host: &Host,
    token: Option<&str>,
    tool: &str,
    arguments: Value,
) -> (StatusCode, String, String) {
    let mut request = stateless_call(&reqwest::Client::new(), &host.mcp_url(), tool, arguments);
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let response = request.send().await.unwrap();
    let id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    (response.status(), id, response.text().await.unwrap())
}

/// A client sending stateless `tools/call` requests, one connection per request.
struct Probe {
    http: reqwest::Client,
    url: String,
}

impl Probe {
    fn new(url: &str) -> Self {
        Self {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            url: url.to_owned(),
        }
    }

    /// The call's (request id, result), or `None` if the host did not answer.
    async fn send(&self, tool: &str, arguments: Value) -> Option<(String, Value)> {
        let response = stateless_call(&self.http, &self.url, tool, arguments)
            .send()
            .await
            .ok()?;
        let id = response
            .headers()
            .get("x-request-id")?
            .to_str()
            .ok()?
            .to_owned();
        let answer: Value = response.json().await.ok()?;
        Some((id, answer.get("result")?.clone()))
    }

    /// The request id of a call the host answered with a result that is not an error.
    async fn call(&self, tool: &str, arguments: Value) -> Option<String> {
        let (id, result) = self.send(tool, arguments).await?;
        (result["isError"] == false).then_some(id)
    }

    /// The result of a call.
    async fn result(&self, tool: &str, arguments: Value) -> Value {
        self.send(tool, arguments).await.expect("an answer").1
    }
}

/// The records of the log files under `dir`, in chain order.
fn records(dir: &Path) -> Vec<Value> {
    let mut files = log_files(dir);
    files.sort_by_key(|f| f.file_name().unwrap().len());
    let mut records = Vec::new();
    for file in files {
        for line in std::fs::read_to_string(file).unwrap().lines() {
            records.push(serde_json::from_str(line).unwrap());
        }
    }
    records.sort_by_key(|r: &Value| r["seq"].as_u64());
    records
}

fn log_files(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("audit.jsonl")
        })
        .collect()
}

/// Runs an administrative command with `config` and the KEK, `input` on stdin.
fn admin(config: &Path, kek: &str, args: &[&str], input: &str) {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_mcp-wasm-host"));
    command
        .args(args)
        .arg("--config")
        .arg(config)
        .env("MCP_HOST_KEK", kek);
    let (status, _, stderr) = run_with_input(command, &format!("{input}\n"));
    assert!(status.success(), "{args:?}: {stderr}");
}

/// `audit verify` on `files`: (success, stdout + stderr).
fn verify(files: &[PathBuf]) -> (bool, String) {
    let mut args = vec!["audit".to_owned(), "verify".to_owned()];
    args.extend(files.iter().map(|f| f.display().to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (status, stdout, stderr) = run_host(&args);
    (status.success(), format!("{stdout}{stderr}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_call_and_denial_is_one_record_in_a_chain_that_verifies() {
    let idp = Idp::start().await;
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    let mut host = Host::start(&config(&idp.auth_section(), &audit, ""), &[]);
    let mut claims = idp.claims(&host.mcp_url(), "");
    claims["sub"] = json!("alice");
    let token = idp.key.sign(&claims);
    // N = 3 calls that ran...
    let mut ran = Vec::new();
    for n in 0..3 {
        let (status, id, body) = call(&host, Some(&token), "open", json!({"n": n})).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        ran.push(id);
    }
    // ...and M = 4 denials: no token, a token without the scope, an unknown tool,
    // arguments that do not match the schema.
    let (status, no_token, _) = call(&host, None, "open", json!({})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, forbidden, _) = call(&host, Some(&token), "read", json!({})).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (_, unknown, _) = call(&host, Some(&token), "nope", json!({})).await;
    let (_, invalid, body) = call(&host, Some(&token), "open", json!({"n": "x"})).await;
    assert!(body.contains("Invalid arguments"), "{body}");
    // A clean stop writes `stop` and drains the queue.
    assert!(host.terminate(Duration::from_secs(20)).success());
    let all = records(dir.path());
    let calls: Vec<&Value> = all.iter().filter(|r| r["event"] == "tool_call").collect();
    assert_eq!(calls.len(), 3 + 4, "{all:#?}");
    let by_id = |id: &str| {
        calls
            .iter()
            .find(|r| r["request_id"] == id)
            .unwrap_or_else(|| panic!("no record of {id} in {calls:#?}"))
    };
    for id in &ran {
        let record = by_id(id);
        assert_eq!(record["outcome"], "ok");
        assert_eq!(record["subject"], "alice");
        assert_eq!(record["client_id"], "test-client");
        assert_eq!(record["plugin"], "fix");
        assert_eq!(record["plugin_sha256"].as_str().unwrap().len(), 64);
        assert_eq!(record["transport"], "http");
        assert!(record["peer"].as_str().unwrap().starts_with("127.0.0.1:"));
        assert_eq!(record["arguments"]["sha256"].as_str().unwrap().len(), 64);
        assert!(record["duration_us"].as_u64().is_some());
    }
    assert_eq!(by_id(&no_token)["outcome"], "unauthenticated");
    assert_eq!(by_id(&no_token)["step"], "authenticate");
    assert_eq!(by_id(&forbidden)["outcome"], "forbidden");
    assert_eq!(by_id(&unknown)["outcome"], "unknown_tool");
    assert_eq!(by_id(&invalid)["outcome"], "invalid_arguments");
    // The same arguments give the same digest; others another.
    assert_ne!(by_id(&ran[0])["arguments"], by_id(&ran[1])["arguments"]);
    let events: Vec<&str> = all.iter().map(|r| r["event"].as_str().unwrap()).collect();
    assert_eq!(events.first(), Some(&"plugin_loaded"), "{events:?}");
    assert!(
        events.contains(&"start") && events.last() == Some(&"stop"),
        "{events:?}"
    );
    // No token in the log.
    let text = std::fs::read_to_string(&audit).unwrap();
    assert!(!text.contains(&token), "a token is in the audit log");
    // The chain verifies...
    let (ok, said) = verify(std::slice::from_ref(&audit));
    assert!(ok, "{said}");
    assert!(
        said.contains(&format!("ok: {} records", all.len())),
        "{said}"
    );
    // ...and each kind of tampering is caught, naming its line.
    let lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let tampered = dir.path().join("tampered.jsonl");
    let check = |lines: &[String]| {
        std::fs::write(&tampered, lines.join("\n") + "\n").unwrap();
        verify(std::slice::from_ref(&tampered))
    };
    let mut edited = lines.clone();
    edited[3] = edited[3].replace("\"alice\"", "\"mallory\"");
    let (ok, said) = check(&edited);
    assert!(
        !ok && said.contains("tampered.jsonl:4: record 3 does not match its hash"),
        "{said}"
    );
    let mut deleted = lines.clone();
    deleted.remove(4);
    let (ok, said) = check(&deleted);
    assert!(
        !ok && said.contains("tampered.jsonl:5: expected record 4, found record 5"),
        "{said}"
    );
    let mut reordered = lines.clone();
    reordered.swap(5, 6);
    let (ok, said) = check(&reordered);
    assert!(
        !ok && said.contains("tampered.jsonl:6: expected record 5, found record 6"),
        "{said}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_killed_under_load_keeps_every_answered_call() {
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    // Small files: the load rotates the log too.
    let mut host = Host::start(
        &config("", &audit, "fsync = \"always\"\nmax_file_size = \"64KiB\""),
        &[],
    );
    let answered = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let url = host.mcp_url();
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (answered, stop, url) = (answered.clone(), stop.clone(), url.clone());
            tokio::spawn(async move {
                let probe = Probe::new(&url);
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    match probe.call("open", json!({"n": 1})).await {
                        Some(id) => answered.lock().unwrap().push(id),
                        None => return,
                    }
                }
            })
        })
        .collect();
    // Let the load run, then kill the host in the middle of it.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while answered.lock().unwrap().len() < 400 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    host.kill();
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    for client in clients {
        client.await.unwrap();
    }
    let answered = answered.lock().unwrap().clone();
    assert!(
        answered.len() >= 50,
        "only {} calls answered",
        answered.len()
    );
    // The verified prefix of the log holds every answered call.
    let files = log_files(dir.path());
    assert!(
        files.len() > 1,
        "the load did not rotate the log: {files:?}"
    );
    let (ok, said) = verify(&files);
    let recorded: std::collections::HashSet<String> = records_until_break(dir.path(), &said)
        .iter()
        .filter_map(|r| r["request_id"].as_str().map(ToOwned::to_owned))
        .collect();
    let missing: Vec<&String> = answered
        .iter()
        .filter(|id| !recorded.contains(*id))
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} answered calls are not in the verified log (verify said: {said})",
        missing.len(),
        answered.len()
    );
    // Restarted, the host cuts off a record the kill left half written, says so, and
    // the chain goes on.
    let mut again = Host::start(&config("", &audit, ""), &[]);
    let _ = Probe::new(&again.mcp_url())
        .call("open", json!({"n": 2}))
        .await;
    assert!(again.terminate(Duration::from_secs(20)).success());
    let (ok_after, said_after) = verify(&log_files(dir.path()));
    assert!(ok_after, "{said_after}");
    if !ok {
        assert!(said.contains("incomplete"), "{said}");
        assert!(
            records(dir.path())
                .iter()
                .any(|r| r["event"] == "recovered"),
            "no `recovered` record"
        );
    }
}

/// The records up to the line `verify` named as broken (all, if it named none).
fn records_until_break(dir: &Path, said: &str) -> Vec<Value> {
    let mut kept = Vec::new();
    let mut files = log_files(dir);
    files.sort_by_key(|f| {
        (
            f.file_name().unwrap().len() == "audit.jsonl".len(),
            f.clone(),
        )
    });
    for file in files {
        let name = file.display().to_string();
        for (n, line) in std::fs::read_to_string(&file).unwrap().lines().enumerate() {
            if said.contains(&format!("{name}:{}:", n + 1)) {
                return kept;
            }
            if let Ok(record) = serde_json::from_str(line) {
                kept.push(record);
            }
        }
    }
    kept
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_that_cannot_be_written_stops_tool_calls_until_it_can() {
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    // Every write to /dev/full fails as on a full disk.
    std::os::unix::fs::symlink("/dev/full", &audit).unwrap();
    let host = Host::start(&config("", &audit, ""), &[]);
    let probe = Probe::new(&host.mcp_url());
    let ran = || {
        host.log()
            .lines()
            .filter(|l| l.contains("plugin output") && l.contains("stream=\"stdout\""))
            .count()
    };
    // The first call is refused, or, if it started before the writer found out, runs
    // with its answer withheld: either way no unaudited answer.
    let first = probe.result("open", json!({"n": 1, "print": "ran"})).await;
    assert_eq!(first["isError"], true, "{first}");
    let said = first["content"][0]["text"].as_str().unwrap();
    assert!(
        said.contains("cannot record tool calls right now"),
        "{said}"
    );
    let ran_before = ran();
    assert!(ran_before <= 1);
    // From then on calls are refused before the plugin runs.
    let second = probe.result("open", json!({"n": 2, "print": "ran"})).await;
    assert_eq!(second["isError"], true, "{second}");
    let log = host.wait_for_log("the audit log cannot be written", Duration::from_secs(5));
    assert!(log.contains("the audit log cannot be written"), "{log}");
    assert_eq!(
        ran(),
        ran_before,
        "the plugin ran while the log could not be written:\n{log}"
    );
    // The disk has room again: the host notices on its own and calls run again.
    std::fs::remove_file(&audit).unwrap();
    host.wait_for_log(
        "the audit log can be written again",
        Duration::from_secs(10),
    );
    let third = probe.result("open", json!({"n": 3})).await;
    assert_eq!(third["isError"], false, "{third}");
    let (ok, said) = verify(&log_files(dir.path()));
    assert!(ok, "{said}");
    let all = records(dir.path());
    assert_eq!(all[0]["event"], "recovered", "{all:#?}");
    assert_eq!(all.last().unwrap()["outcome"], "ok", "{all:#?}");
}

#[test]
fn a_log_that_cannot_be_opened_stops_the_start() {
    let (status, log) = start_refused(&config("", Path::new("/proc/audit/x.jsonl"), ""), &[]);
    assert!(!status.success());
    assert!(
        log.contains("cannot open the audit log /proc/audit/x.jsonl"),
        "{log}"
    );
    let (status, log) = start_refused(
        &config("", Path::new("/tmp/a.jsonl"), "fsync = \"sometimes\""),
        &[],
    );
    assert!(!status.success());
    assert!(log.contains("sometimes") && log.contains("line"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_authorization_server_records_registrations_logins_and_consents() {
    use crate::common::oauth::{Login, OAuthClient, Pkce};
    let state = crate::oauth::State::new();
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    let config = format!(
        "{}\n[audit]\npath = {}\n",
        state.config(""),
        toml_path(&audit)
    );
    let host = Host::start(&config, &[("MCP_HOST_KEK", &state.kek)]);
    // The first user, made with the setup code; a client registered; a consent.
    crate::oauth::token_for(&host, "dana").await;
    // Administrative commands beside the running host append to the same chain.
    let config_file = dir.path().join("host.toml");
    std::fs::write(&config_file, &config).unwrap();
    admin(
        &config_file,
        &state.kek,
        &["users", "add", "erin", "--scope", "fix:read"],
        "erin-password-12",
    );
    admin(&config_file, &state.kek, &["auth", "rotate-key"], "");
    admin(&config_file, &state.kek, &["users", "rm", "erin"], "");
    // A wrong password: the host writes after them.
    let base = format!("http://{}", host.addr);
    let client = OAuthClient::register(&base).await;
    let pkce = Pkce::new();
    let page = client.open_page(&client.authorize_params(&pkce, "")).await;
    let refused = client
        .submit(
            &page,
            &Login::Password("dana", "not-her-password"),
            "approve",
        )
        .await;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    // With `fsync = "interval"` a record is queued when the answer goes out, and
    // written a moment later.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let records = loop {
        let records = records(dir.path());
        if records.iter().any(|r| r["step"] == "login") || std::time::Instant::now() > deadline {
            break records;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let of =
        |event: &str| -> Vec<&Value> { records.iter().filter(|r| r["event"] == event).collect() };
    assert_eq!(of("client_registered").len(), 2, "{records:#?}");
    assert!(of("client_registered")[0]["client_id"].is_string());
    // The first user, made on the login page (the commands' records come below).
    let added: Vec<&Value> = of("user_added")
        .into_iter()
        .filter(|r| r["transport"] != "cli")
        .collect();
    assert_eq!(added.len(), 1, "{records:#?}");
    assert_eq!(added[0]["subject"], "dana");
    let consents = of("consent");
    assert_eq!(consents.len(), 1, "{records:#?}");
    assert_eq!(consents[0]["subject"], "dana");
    let failed: Vec<&Value> = of("request_refused")
        .into_iter()
        .filter(|r| r["step"] == "login")
        .collect();
    assert_eq!(failed.len(), 1, "{records:#?}");
    assert_eq!(failed[0]["outcome"], "unauthenticated");
    let by_cli: Vec<(&str, &Value)> = records
        .iter()
        .filter(|r| r["transport"] == "cli")
        .map(|r| (r["event"].as_str().unwrap(), &r["detail"]))
        .collect();
    assert_eq!(by_cli.len(), 3, "{records:#?}");
    assert_eq!(
        by_cli[0],
        (
            "user_added",
            &json!({"user": "erin", "scopes": ["fix:read"]})
        )
    );
    assert_eq!(by_cli[1].0, "signing_key_rotated");
    assert!(
        by_cli[1].1["kid"]
            .as_str()
            .is_some_and(|kid| !kid.is_empty())
    );
    assert_eq!(by_cli[2], ("user_removed", &json!({"user": "erin"})));
    assert!(
        records.last().unwrap()["step"] == "login",
        "the host wrote after the commands: {records:#?}"
    );
    // No password in the log, right or wrong.
    let text = std::fs::read_to_string(&audit).unwrap();
    assert!(!text.contains("not-her-password") && !text.contains("a-long-test-password"));
    assert!(!text.contains("erin-password-12"));
    let (ok, said) = verify(std::slice::from_ref(&audit));
    assert!(ok, "{said}");
}
