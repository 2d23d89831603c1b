//! Several host processes sharing state, as behind a load balancer: auth state in a
//! real Postgres (tokens, refresh families, codes and signing keys mean the same on
//! every replica), rate-limit budgets in a real Redis (one allowance across replicas,
//! and what happens while Redis is away), `/readyz` telling a load balancer which
//! replica can serve, and a replica killed under load losing no answered call's
//! record.

use crate::common::idp::Idp;
use crate::common::oauth::{Login, OAuthClient, Pkce};
use crate::common::services::{Postgres, Redis, free_port};
use crate::common::{Host, plugin, run_host, stateless_call, toml_path, toml_str, workspace_root};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// The fixture plugin offering `open` (no scope).
fn plugin_section() -> String {
    let tools = json!([{"name": "open", "input_schema": {"type": "object"}}]);
    format!(
        "[plugins.fix]\npath = {}\nenv = {{ FIXTURE_TOOLS = {} }}\n",
        toml_path(&plugin("fixture")),
        toml_str(&tools.to_string()),
    )
}

fn base(host: &Host) -> String {
    format!("http://{}", host.addr)
}

/// Starts one host per config at the same time (as replicas behind a load balancer
/// start), each with `env`.
fn start_together(configs: &[String], env: &[(&str, &str)]) -> Vec<Host> {
    std::thread::scope(|scope| {
        let started: Vec<_> = configs
            .iter()
            .map(|config| scope.spawn(move || Host::start(config, env)))
            .collect();
        started
            .into_iter()
            .map(|handle| handle.join().expect("a replica started"))
            .collect()
    })
}

/// A stateless `tools/call` of `open` with `token` to `host`: the JSON-RPC `result`.
async fn call(host: &Host, token: &str) -> Value {
    call_tool(&host.mcp_url(), token, "open", json!({})).await
}

/// A stateless `tools/call` of `tool` with `arguments` and `token` to `url`: the
/// JSON-RPC `result`.
async fn call_tool(url: &str, token: &str, tool: &str, arguments: Value) -> Value {
    let response = stateless_call(&reqwest::Client::new(), url, tool, arguments)
        .bearer_auth(token)
        .send()
        .await
        .expect("the replica answers");
    assert_eq!(response.status(), StatusCode::OK, "{response:?}");
    let answer: Value = response.json().await.expect("JSON");
    answer["result"].clone()
}

/// `/readyz` of `host`: status and body.
async fn readyz(host: &Host) -> (StatusCode, Value) {
    let response = reqwest::get(format!("{}/readyz", base(host)))
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap())
}

/// Postgres, a KEK, and the config every replica of the embedded server shares (the
/// same public URL, so the same issuer and audience).
struct AuthCluster {
    postgres: Postgres,
    kek: String,
    public_url: String,
    dir: tempfile::TempDir,
}

impl AuthCluster {
    fn new() -> Self {
        let (_, kek, _) = run_host(&["keygen"]);
        Self {
            postgres: Postgres::start(),
            kek: kek.trim().to_owned(),
            public_url: format!("http://127.0.0.1:{}", free_port()),
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn config(&self) -> String {
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\npublic_url = \"{}\"\n\
             [auth]\nmode = \"embedded\"\n[auth.embedded]\ndatabase = \"{}\"\n\
             clients = [{{ client_id = \"my-app\", name = \"My app\", \
             redirect_uris = [\"https://app.example.com/cb\"] }}]\n{}",
            self.public_url,
            self.postgres.url(),
            plugin_section(),
        )
    }

    fn env(&self) -> [(&str, &str); 1] {
        [("MCP_HOST_KEK", self.kek.as_str())]
    }

    /// `users add NAME` through the CLI, against Postgres.
    fn add_user(&self, name: &str, password: &str) {
        let config = self.dir.path().join("users.toml");
        std::fs::write(&config, self.config()).unwrap();
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_mcp-wasm-host"));
        command
            .args(["users", "add", name, "--config"])
            .arg(&config)
            .env("MCP_HOST_KEK", &self.kek);
        let (status, _, stderr) =
            crate::common::host::run_with_input(command, &format!("{password}\n"));
        assert!(status.success(), "{stderr}");
        assert!(!stderr.contains("test-password"), "{stderr}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_on_postgres_share_keys_tokens_refresh_families_and_codes() {
    let cluster = AuthCluster::new();
    cluster.add_user("alice", "alice-password-1");
    // Two replicas starting at once on an empty database: the schema is migrated once
    // and one signing key is made between them.
    let replicas = start_together(&[cluster.config(), cluster.config()], &cluster.env());
    let (a, b) = (&replicas[0], &replicas[1]);
    let jwks = |host: &Host| {
        let url = format!("{}/oauth/jwks.json", base(host));
        async move {
            reqwest::get(url)
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    let (keys_a, keys_b) = (jwks(a).await, jwks(b).await);
    assert_eq!(keys_a["keys"].as_array().unwrap().len(), 1, "{keys_a}");
    assert_eq!(keys_a, keys_b, "one signing key, published by both");
    for host in [a, b] {
        let (status, ready) = readyz(host).await;
        assert_eq!(status, StatusCode::OK, "{ready}");
        assert_eq!(ready["checks"]["auth_database"], "ok", "{ready}");
    }

    // A token issued through A is accepted by B.
    let resource = format!("{}/mcp", cluster.public_url);
    let client_a = OAuthClient::register(&base(a))
        .await
        .for_resource(&resource);
    let pkce = Pkce::new();
    let login = Login::Password("alice", "alice-password-1");
    let code = client_a.authorize(&pkce, "", &login).await;
    let (status, tokens) = client_a.exchange(&code, &pkce).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let access = tokens["access_token"].as_str().unwrap();
    let result = call(b, access).await;
    assert_eq!(result["isError"], json!(false), "{result}");

    // A refresh on B rotates the family A issued...
    let client_b = OAuthClient::existing(&base(b), &client_a.client_id).for_resource(&resource);
    let first_refresh = tokens["refresh_token"].as_str().unwrap();
    let (status, rotated) = client_b.refresh(first_refresh).await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    let second_refresh = rotated["refresh_token"].as_str().unwrap();
    assert_ne!(first_refresh, second_refresh);
    let result = call(a, rotated["access_token"].as_str().unwrap()).await;
    assert_eq!(result["isError"], json!(false), "{result}");
    // ...and the first token reused on A revokes the whole family, B's new one too.
    let (status, reused) = client_a.refresh(first_refresh).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{reused}");
    assert_eq!(reused["error"], "invalid_grant");
    let (status, revoked) = client_b.refresh(second_refresh).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{revoked}");
    assert_eq!(revoked["error"], "invalid_grant");

    // Two replicas race for one authorization code: exactly one gets a token.
    for _ in 0..3 {
        let pkce = Pkce::new();
        let code = client_a.authorize(&pkce, "", &login).await;
        let ((status_a, _), (status_b, _)) = tokio::join!(
            client_a.exchange(&code, &pkce),
            client_b.exchange(&code, &pkce)
        );
        let winners = [status_a, status_b]
            .iter()
            .filter(|s| **s == StatusCode::OK)
            .count();
        assert_eq!(winners, 1, "A: {status_a}, B: {status_b}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_restarted_on_postgres_keeps_the_key_and_the_users() {
    let cluster = AuthCluster::new();
    cluster.add_user("alice", "alice-password-1");
    let mut first = Host::start(&cluster.config(), &cluster.env());
    let before = reqwest::get(format!("{}/oauth/jwks.json", base(&first)))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    first.kill();
    let again = Host::start(&cluster.config(), &cluster.env());
    let after = reqwest::get(format!("{}/oauth/jwks.json", base(&again)))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(before, after, "the same key after a restart");
    let client = OAuthClient::register(&base(&again))
        .await
        .for_resource(&format!("{}/mcp", cluster.public_url));
    let pkce = Pkce::new();
    let code = client
        .authorize(&pkce, "", &Login::Password("alice", "alice-password-1"))
        .await;
    assert_eq!(client.exchange(&code, &pkce).await.0, StatusCode::OK);
    // A wrong KEK cannot open the shared key: the replica refuses to start, saying why.
    let (_, other_kek, _) = run_host(&["keygen"]);
    let (status, stderr) =
        crate::common::start_refused(&cluster.config(), &[("MCP_HOST_KEK", other_kek.trim())]);
    assert!(!status.success());
    assert!(stderr.contains("does not open with this KEK"), "{stderr}");
    assert!(!stderr.contains("test-password"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_postgres_is_away_logins_fail_cleanly_tokens_still_work_and_it_recovers() {
    let cluster = AuthCluster::new();
    cluster.add_user("alice", "alice-password-1");
    let host = Host::start(&cluster.config(), &cluster.env());
    let resource = format!("{}/mcp", cluster.public_url);
    let client = OAuthClient::register(&base(&host))
        .await
        .for_resource(&resource);
    let login = Login::Password("alice", "alice-password-1");
    let pkce = Pkce::new();
    let code = client.authorize(&pkce, "", &login).await;
    let (_, tokens) = client.exchange(&code, &pkce).await;
    let access = tokens["access_token"].as_str().unwrap();

    cluster.postgres.stop();
    let (status, ready) = readyz(&host).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{ready}");
    assert!(
        ready["checks"]["auth_database"]["error"].is_string(),
        "{ready}"
    );
    assert!(!ready.to_string().contains("test-password"), "{ready}");
    // A refresh needs the database: a clean OAuth error, not a hang or a crash.
    let refreshing = client.refresh(tokens["refresh_token"].as_str().unwrap());
    let (status, refused) = tokio::time::timeout(Duration::from_secs(20), refreshing)
        .await
        .expect("answered within the pool's acquire timeout");
    assert!(status.is_server_error(), "{status}: {refused}");
    assert_eq!(refused["error"], "server_error", "{refused}");
    // An access token already issued is verified with the keys in memory.
    let result = call(&host, access).await;
    assert_eq!(result["isError"], json!(false), "{result}");

    cluster.postgres.restart();
    let (status, ready) = readyz(&host).await;
    assert_eq!(status, StatusCode::OK, "{ready}");
    let pkce = Pkce::new();
    let code = client.authorize(&pkce, "", &login).await;
    assert_eq!(client.exchange(&code, &pkce).await.0, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_store_urls_are_refused_without_showing_passwords() {
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n[auth]\nmode = \"embedded\"\n\
         [auth.embedded]\ndatabase = \"postgres://mcp:hunter2@127.0.0.1:{}/auth\"\n{}",
        free_port(),
        plugin_section(),
    );
    let (_, kek, _) = run_host(&["keygen"]);
    let (status, stderr) = crate::common::start_refused(&config, &[("MCP_HOST_KEK", kek.trim())]);
    assert!(!status.success());
    assert!(
        stderr.contains("auth database postgres://mcp:***@127.0.0.1"),
        "{stderr}"
    );
    assert!(!stderr.contains("hunter2"), "{stderr}");
    let config = config.replace("postgres://mcp:hunter2@127.0.0.1", "postgres://");
    let (status, stderr) = crate::common::start_refused(&config, &[("MCP_HOST_KEK", kek.trim())]);
    assert!(!status.success());
    assert!(stderr.contains("[auth.embedded] database"), "{stderr}");
    // A rate-limit store that is not Redis, or a Redis URL that does not parse.
    for (store, expected) in [
        ("memcached://127.0.0.1:11211", "is not a rate-limit store"),
        (
            "redis://:hunter2@127.0.0.1:notaport/0",
            "is not a usable Redis URL",
        ),
        (
            "rediss://:hunter2@127.0.0.1/0",
            "TLS to Redis (rediss://) is not built yet",
        ),
    ] {
        let config = format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n{}\n[rate_limits]\nstore = \"{store}\"\n",
            plugin_section()
        );
        let (status, stderr) = crate::common::start_refused(&config, &[]);
        assert!(!status.success());
        assert!(stderr.contains(expected), "{store}: {stderr}");
        assert!(stderr.contains("store"), "{stderr}");
        assert!(!stderr.contains("hunter2"), "{stderr}");
    }
}

/// A replica trusting `idp` with `limits` (its `[rate_limits]` body).
fn limited_replica(idp: &Idp, limits: &str) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n{}\n{}\n[rate_limits]\n{limits}\n",
        idp.auth_section(),
        plugin_section(),
    )
}

/// A token for `subject` at `host`.
fn token(idp: &Idp, host: &Host, subject: &str) -> String {
    let mut claims = idp.claims(&host.mcp_url(), "");
    claims["sub"] = json!(subject);
    idp.key.sign(&claims)
}

fn is_limited(result: &Value) -> bool {
    result["isError"] == json!(true)
        && result["structuredContent"]["error"]["code"] == json!("RATE_LIMITED")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_per_user_limit_in_redis_holds_across_replicas() {
    let idp = Idp::start().await;
    let redis = Redis::start();
    let limits = format!(
        "store = \"{}\"\nper_user = \"5/min\"\n\
         [rate_limits.per_address]\nfailed_authentication = \"3/min\"\n",
        redis.url()
    );
    let config = limited_replica(&idp, &limits);
    let replicas = start_together(&[config.clone(), config], &[]);
    let (a, b) = (&replicas[0], &replicas[1]);
    let (on_a, on_b) = (token(&idp, a, "alice"), token(&idp, b, "alice"));
    for _ in 0..3 {
        let result = call(a, &on_a).await;
        assert_eq!(result["isError"], json!(false), "{result}");
    }
    for _ in 0..2 {
        let result = call(b, &on_b).await;
        assert_eq!(result["isError"], json!(false), "{result}");
    }
    // The sixth call is over the budget on either replica.
    for (host, token) in [(a, &on_a), (b, &on_b)] {
        let result = call(host, token).await;
        assert!(is_limited(&result), "{result}");
        let wait = result["structuredContent"]["error"]["retry_after_seconds"]
            .as_u64()
            .unwrap();
        assert!((1..=12).contains(&wait), "one call refills in 12 s: {wait}");
    }
    // Another user has a budget of their own.
    let result = call(b, &token(&idp, b, "bob")).await;
    assert_eq!(result["isError"], json!(false), "{result}");
    // Failed authentications count per address across replicas too: 2 on A and 1 on
    // B, then the next on either is 429.
    let bad = |host: &Host| {
        let url = host.mcp_url();
        async move {
            stateless_call(&reqwest::Client::new(), &url, "open", json!({}))
                .bearer_auth("not-a-token")
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    for host in [a, a, b] {
        assert_eq!(bad(host).await, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(bad(a).await, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(bad(b).await, StatusCode::TOO_MANY_REQUESTS);
    // One key per budget and user (or address), each expiring when its budget is full again (at most
    // a minute for 5/min): idle users cost Redis nothing.
    let mut redis = redis::Client::open(redis.url())
        .unwrap()
        .get_connection()
        .unwrap();
    let mut keys: Vec<String> = redis::cmd("KEYS")
        .arg("mcp-wasm-host:rate:*")
        .query(&mut redis)
        .unwrap();
    keys.sort();
    assert_eq!(
        keys,
        [
            "mcp-wasm-host:rate:failed_authentication:127.0.0.1",
            "mcp-wasm-host:rate:per_user:alice",
            "mcp-wasm-host:rate:per_user:bob",
        ]
    );
    for key in keys {
        let ttl: i64 = redis::cmd("PTTL").arg(&key).query(&mut redis).unwrap();
        assert!((1..=60_000).contains(&ttl), "{key}: {ttl} ms");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_redis_is_away_deny_refuses_and_allow_serves_and_both_recover() {
    let idp = Idp::start().await;
    let mut redis = Redis::start();
    let deny = limited_replica(
        &idp,
        &format!("store = \"{}\"\nper_user = \"100/min\"\n", redis.url()),
    );
    let allow = limited_replica(
        &idp,
        &format!(
            "store = \"{}\"\nper_user = \"100/min\"\non_store_error = \"allow\"\n",
            redis.url()
        ),
    );
    let replicas = start_together(&[deny, allow], &[]);
    let (denying, allowing) = (&replicas[0], &replicas[1]);
    let (on_deny, on_allow) = (
        token(&idp, denying, "carol"),
        token(&idp, allowing, "carol"),
    );
    assert_eq!(call(denying, &on_deny).await["isError"], json!(false));
    assert_eq!(readyz(denying).await.0, StatusCode::OK);

    redis.stop();
    let refused = call(denying, &on_deny).await;
    assert_eq!(refused["isError"], json!(true), "{refused}");
    let text = refused["content"][0]["text"].as_str().unwrap();
    assert!(text.contains("cannot check the rate limits"), "{text}");
    let served = call(allowing, &on_allow).await;
    assert_eq!(served["isError"], json!(false), "{served}");
    let (status, ready) = readyz(denying).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{ready}");
    let why = ready["checks"]["pipeline"]["error"].as_str().unwrap();
    assert!(why.contains("redis://127.0.0.1"), "{why}");
    // Counted, by what the calls got.
    let metrics = |host: &Host| {
        let url = format!("{}/metrics", base(host));
        async move { reqwest::get(url).await.unwrap().text().await.unwrap() }
    };
    let counted = metrics(denying).await;
    assert!(
        counted
            .lines()
            .any(|l| l.starts_with("mcp_rate_limit_store_errors_total{decision=\"deny\"}")),
        "{counted}"
    );
    assert!(
        metrics(allowing).await.contains("decision=\"allow\""),
        "the allowing replica counts too"
    );
    let log = denying.wait_for_log("rate-limit store unavailable", Duration::from_secs(5));
    assert!(log.contains("rate-limit store unavailable"), "{log}");
    let audit_outcome = denying.wait_for_log("outcome=limits_unavailable", Duration::from_secs(5));
    assert!(audit_outcome.contains("outcome=limits_unavailable"));

    redis.restart();
    let mut recovered = false;
    for _ in 0..50 {
        let result = call(denying, &on_deny).await;
        if result["isError"] == json!(false) {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        recovered,
        "the denying replica serves again once Redis is back"
    );
    assert_eq!(call(allowing, &on_allow).await["isError"], json!(false));
    assert_eq!(readyz(denying).await.0, StatusCode::OK);
}

/// A 2025-11-25 `initialize` request.
fn initialize() -> Value {
    json!({
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                   "clientInfo": {"name": "e2e", "version": "1"}}
    })
}

/// A 2025-11-25 request: `body` to `url` in `session` (if any), with `token` (if any).
fn legacy_post(
    http: &reqwest::Client,
    url: &str,
    body: Value,
    session: Option<&str>,
    token: Option<&str>,
) -> impl Future<Output = reqwest::Result<reqwest::Response>> + use<> {
    let mut request = http
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-11-25")
        .body(body.to_string());
    if let Some(session) = session {
        request = request.header("mcp-session-id", session);
    }
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send()
}

/// Sends `open` calls from 4 workers, alternating between `urls`, until `stop` is set
/// (or 4000 calls): the `x-request-id` of every call answered with a result, by the
/// index of the replica that answered and whether it came after `killed` was set.
async fn load(
    urls: [String; 2],
    stop: Arc<AtomicBool>,
    killed: Arc<AtomicBool>,
) -> Vec<(usize, bool, String)> {
    let urls = Arc::new(urls);
    let workers: Vec<_> = (0..4)
        .map(|worker| {
            let (urls, stop, killed) = (urls.clone(), stop.clone(), killed.clone());
            tokio::spawn(async move {
                let http = reqwest::Client::new();
                let mut answered = Vec::new();
                for n in 0..1000 {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let replica = (worker + n) % 2;
                    let after_kill = killed.load(Ordering::SeqCst);
                    let sent = stateless_call(&http, &urls[replica], "open", json!({}))
                        .timeout(Duration::from_secs(10))
                        .send()
                        .await;
                    let Ok(response) = sent else { continue };
                    let id = response
                        .headers()
                        .get("x-request-id")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned);
                    let Ok(answer) = response.json::<Value>().await else {
                        continue;
                    };
                    if answer["result"]["isError"] == json!(false) {
                        answered.push((replica, after_kill, id.expect("a request id")));
                    }
                }
                answered
            })
        })
        .collect();
    let mut answered = Vec::new();
    for worker in workers {
        answered.extend(worker.await.unwrap());
    }
    answered
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_under_load_loses_no_answered_call_and_rejoins() {
    let redis = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let config = |name: &str| {
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n{}\n[rate_limits]\nstore = \"{}\"\n\
             per_user = \"1000000/min\"\n[audit]\npath = {}\nreplica = \"{name}\"\n\
             fsync = \"always\"\n",
            plugin_section(),
            redis.url(),
            toml_path(&dir.path().join(format!("audit-{name}.jsonl"))),
        )
    };
    let mut replicas = start_together(&[config("a"), config("b")], &[]);
    let (stop, killed) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(false)),
    );
    let urls = [replicas[0].mcp_url(), replicas[1].mcp_url()];
    let traffic = tokio::spawn(load(urls, stop.clone(), killed.clone()));
    tokio::time::sleep(Duration::from_millis(800)).await;
    killed.store(true, Ordering::SeqCst);
    replicas[0].kill();
    tokio::time::sleep(Duration::from_millis(800)).await;
    stop.store(true, Ordering::SeqCst);
    let answered = traffic.await.unwrap();
    let by = |replica: usize, after: bool| {
        answered
            .iter()
            .filter(|(r, a, _)| *r == replica && *a == after)
            .count()
    };
    assert!(
        by(0, false) > 0 && by(1, false) > 0,
        "both served: {answered:?}"
    );
    assert!(by(1, true) > 0, "the survivor kept serving");
    eprintln!(
        "answered: a {} before the kill, b {} before and {} after",
        by(0, false),
        by(1, false),
        by(1, true)
    );

    // The killed replica restarts on its own log and serves again.
    let again = Host::start(&config("a"), &[]);
    // (Authentication is off: the token is not read.)
    let result = call(&again, "unused").await;
    assert_eq!(result["isError"], json!(false), "{result}");
    drop(again);
    replicas[1].terminate(Duration::from_secs(10));

    // Every answered call is in a verified chain, exactly once.
    let files: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| !p.to_string_lossy().ends_with(".lock"))
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let mut args = vec!["audit", "verify"];
    args.extend(files.iter().map(String::as_str));
    let (status, stdout, stderr) = run_host(&args);
    assert!(status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("(replica a): ok:"), "{stdout}");
    assert!(stdout.contains("(replica b): ok:"), "{stdout}");
    let mut recorded = std::collections::HashMap::<String, usize>::new();
    for file in &files {
        for line in std::fs::read_to_string(file).unwrap().lines() {
            let record: Value = serde_json::from_str(line).unwrap();
            if record["event"] == "tool_call" {
                let id = record["request_id"].as_str().unwrap_or_default().to_owned();
                *recorded.entry(id).or_default() += 1;
            }
        }
    }
    for (_, _, id) in &answered {
        assert_eq!(recorded.get(id), Some(&1), "call {id} recorded once");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_from_another_replica_gets_404_so_the_client_starts_anew() {
    let config = format!("[server]\nlisten = \"127.0.0.1:0\"\n{}", plugin_section());
    let replicas = start_together(&[config.clone(), config], &[]);
    let http = reqwest::Client::new();
    let post = |host: &Host, body: Value, session: Option<&str>| {
        legacy_post(&http, &host.mcp_url(), body, session, None)
    };
    let answer = post(&replicas[0], initialize(), None).await.unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    let session = answer.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"});
    let elsewhere = post(&replicas[1], list.clone(), Some(&session))
        .await
        .unwrap();
    assert_eq!(elsewhere.status(), StatusCode::NOT_FOUND, "{elsewhere:?}");
    // The replica that made the session serves it.
    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    post(&replicas[0], initialized, Some(&session))
        .await
        .unwrap();
    let here = post(&replicas[0], list, Some(&session)).await.unwrap();
    assert_eq!(here.status(), StatusCode::OK);
}

/// A process killed (and reaped) on drop.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cluster_example_serves_through_its_load_balancer() {
    // examples/cluster as its run.sh starts it, with ports from the OS and the data in
    // a temp folder: real Postgres, Redis, HAProxy and two replicas.
    let (postgres, redis) = (Postgres::start(), Redis::start());
    let dir = tempfile::tempdir().unwrap();
    let notes = dir.path().join("notes");
    std::fs::create_dir(&notes).unwrap();
    let (lb, a_port, b_port) = (free_port(), free_port(), free_port());
    let example = |name: &str| {
        std::fs::read_to_string(workspace_root().join("examples/cluster").join(name)).unwrap()
    };
    let replaced = |text: String, swaps: &[(&str, String)]| {
        let mut text = text;
        for (old, new) in swaps {
            assert!(text.contains(old), "the example has `{old}`");
            text = text.replace(old, new);
        }
        text
    };
    let swaps = [
        ("127.0.0.1:8080", format!("127.0.0.1:{lb}")),
        ("127.0.0.1:8081", format!("127.0.0.1:{a_port}")),
        ("127.0.0.1:8082", format!("127.0.0.1:{b_port}")),
    ];
    let replica = |name: &str| {
        let mut swaps = swaps.to_vec();
        swaps.retain(|(old, _)| example(name).contains(old));
        swaps.extend([
            (
                "\"postgres://mcp:mcp-example-password@127.0.0.1:55432/mcp_auth\"",
                toml_str(&postgres.url()),
            ),
            ("\"redis://127.0.0.1:56379/0\"", toml_str(&redis.url())),
            (
                "\"../../target/cluster/audit-",
                format!("\"{}/audit-", dir.path().display()),
            ),
            (
                "\"../../target/wasm32-wasip2/release/weather.wasm\"",
                toml_path(&plugin("weather")),
            ),
            (
                "\"../../target/wasm32-wasip2/release/notes.wasm\"",
                toml_path(&plugin("notes")),
            ),
            ("\"../../target/cluster/notes\"", toml_path(&notes)),
        ]);
        replaced(example(name), &swaps)
    };
    let (a, b) = (replica("replica-a.toml"), replica("replica-b.toml"));
    // The example's users are added with the CLI, against the shared database.
    let (_, kek, _) = run_host(&["keygen"]);
    let users = dir.path().join("users.toml");
    std::fs::write(&users, &a).unwrap();
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_mcp-wasm-host"));
    command
        .args(["users", "add", "demo", "--config"])
        .arg(&users)
        .env("MCP_HOST_KEK", kek.trim());
    let (status, _, stderr) = crate::common::host::run_with_input(command, "demo-password-1\n");
    assert!(status.success(), "{stderr}");

    // The replicas listen on the example's (replaced) ports, not on port 0.
    let replicas: Vec<Host> = std::thread::scope(|scope| {
        let started: Vec<_> = [a, b]
            .into_iter()
            .map(|config| {
                let kek = kek.trim();
                scope.spawn(move || Host::start(&config, &[("MCP_HOST_KEK", kek)]))
            })
            .collect();
        started.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(replicas[0].addr.port(), a_port);
    let balancer_config = dir.path().join("haproxy.cfg");
    std::fs::write(&balancer_config, replaced(example("haproxy.cfg"), &swaps)).unwrap();
    let _balancer = Killed(
        std::process::Command::new(
            ["/usr/sbin/haproxy", "/usr/bin/haproxy"]
                .into_iter()
                .find(|p| std::path::Path::new(p).exists())
                .unwrap_or("haproxy"),
        )
        .arg("-f")
        .arg(&balancer_config)
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("haproxy runs (scripts/test.sh installs Debian's haproxy)"),
    );
    let base = format!("http://127.0.0.1:{lb}");
    let mut ready = None;
    for _ in 0..100 {
        if let Ok(answer) = reqwest::get(format!("{base}/readyz")).await {
            ready = Some(answer.status());
            if answer.status() == StatusCode::OK {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(ready, Some(StatusCode::OK), "/readyz through the balancer");

    // A client that knows only the balancer's URL logs in and calls tools; its
    // requests land on both replicas, which share the notes folder.
    let client = OAuthClient::register(&base).await;
    let pkce = Pkce::new();
    let code = client
        .authorize(&pkce, "", &Login::Password("demo", "demo-password-1"))
        .await;
    let (status, tokens) = client.exchange(&code, &pkce).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let token = tokens["access_token"].as_str().unwrap();
    let http = reqwest::Client::new();
    let mcp = format!("{base}/mcp");
    let note = json!({"title": "shared", "text": "seen by both"});
    let saved = call_tool(&mcp, token, "add_note", note).await;
    assert_eq!(saved["isError"], json!(false), "{saved}");
    for _ in 0..6 {
        let listed = call_tool(&mcp, token, "list_notes", json!({})).await;
        assert!(listed.to_string().contains("shared"), "{listed}");
    }
    for replica in &replicas {
        let log = replica.wait_for_log("tool=\"list_notes\"", Duration::from_secs(5));
        assert!(
            log.contains("tool=\"list_notes\""),
            "each replica served calls:\n{log}"
        );
    }

    // A 2025-11-25 session sticks to the replica that made it.
    let answer = legacy_post(&http, &mcp, initialize(), None, Some(token))
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    let session = answer.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    legacy_post(&http, &mcp, initialized, Some(&session), Some(token))
        .await
        .unwrap();
    for id in 2..8 {
        let list = json!({"jsonrpc": "2.0", "id": id, "method": "tools/list"});
        let answer = legacy_post(&http, &mcp, list, Some(&session), Some(token))
            .await
            .unwrap();
        assert_eq!(
            answer.status(),
            StatusCode::OK,
            "request {id} of the session"
        );
    }

    // Each replica's audit chain verifies.
    drop(replicas);
    let files: Vec<String> = ["audit-a.jsonl", "audit-b.jsonl"]
        .iter()
        .map(|f| dir.path().join(f).display().to_string())
        .collect();
    let (status, stdout, stderr) =
        run_host(&["audit", "verify", files[0].as_str(), files[1].as_str()]);
    assert!(status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("(replica a): ok:") && stdout.contains("(replica b): ok:"));
}
