//! Shared by the end-to-end tests: the plugins (built once per run), a real
//! OpenWeatherMap-shaped upstream on 127.0.0.1, and the real host process.

#![allow(
    dead_code,
    reason = "each test binary uses a different part of this module"
)]

use axum::extract::{Query, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The API key the test upstream accepts.
pub const API_KEY: &str = "test-key-5f3a9c";

/// How long a host may take to compile its plugins and start listening.
const START_TIMEOUT: Duration = Duration::from_secs(120);

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("host/ has a parent")
        .to_owned()
}

/// Path of a plugin component, building every test plugin the first time it is asked
/// for in this process (cargo makes later builds no-ops).
pub fn plugin(name: &str) -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    let dir = BUILT.get_or_init(|| {
        let root = workspace_root();
        let target = root.join("target");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .current_dir(&root)
            .args(["build", "--release", "--target", "wasm32-wasip2"])
            .args(["-p", "weather", "-p", "echo", "-p", "fixture"])
            .arg("--target-dir")
            .arg(&target)
            .status()
            .expect("cargo can be run");
        assert!(status.success(), "building the test plugins failed");
        target.join("wasm32-wasip2").join("release")
    });
    let path = dir.join(format!("{name}.wasm"));
    assert!(path.exists(), "no plugin at {}", path.display());
    path
}

/// One request the upstream received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub path: String,
    /// The raw (still percent-encoded) query string.
    pub raw_query: String,
    pub params: HashMap<String, String>,
}

/// A real HTTP server shaped like OpenWeatherMap's current-weather API.
///
/// Cities with special behaviour: `Atlantis` 404, `Ratelimit` 429, `Meltdown` 503,
/// `Garbled` 200 with a body that is not JSON, `Partial` 200 without `main`. A wrong
/// `appid` gets 401. Anything else gets a report whose `name` is the city. `/endless`
/// answers 200 and a body that never ends (the connection stays open); `/slow?ms=N` is
/// recorded at once and answers 200 after N ms; `/redirect?to=URL` answers 302 to URL.
pub struct Upstream {
    pub addr: SocketAddr,
    requests: Arc<Mutex<Vec<Recorded>>>,
}

impl Upstream {
    pub async fn start() -> Self {
        let requests = Arc::new(Mutex::new(Vec::new()));
        let app = axum::Router::new()
            .route("/data/2.5/weather", axum::routing::get(weather))
            .route("/endless", axum::routing::get(endless))
            .route("/slow", axum::routing::get(slow))
            .route("/redirect", axum::routing::get(redirect))
            .fallback(|| async { StatusCode::NOT_FOUND })
            .with_state(requests.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { addr, requests }
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }
}

async fn slow(
    State(requests): State<Arc<Mutex<Vec<Recorded>>>>,
    uri: Uri,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let ms = params.get("ms").and_then(|ms| ms.parse().ok()).unwrap_or(0);
    requests.lock().unwrap().push(Recorded {
        path: uri.path().to_owned(),
        raw_query: uri.query().unwrap_or("").to_owned(),
        params,
    });
    tokio::time::sleep(Duration::from_millis(ms)).await;
    (StatusCode::OK, "slow").into_response()
}

async fn redirect(Query(params): Query<HashMap<String, String>>) -> Response {
    let to = params.get("to").cloned().unwrap_or_default();
    (StatusCode::FOUND, [(axum::http::header::LOCATION, to)]).into_response()
}

async fn endless() -> Response {
    let first =
        futures::stream::once(async { Ok::<_, std::io::Error>(bytes::Bytes::from("tick")) });
    let body = axum::body::Body::from_stream(first.chain(futures::stream::pending()));
    (StatusCode::OK, body).into_response()
}

async fn weather(
    State(requests): State<Arc<Mutex<Vec<Recorded>>>>,
    uri: Uri,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    requests.lock().unwrap().push(Recorded {
        path: uri.path().to_owned(),
        raw_query: uri.query().unwrap_or("").to_owned(),
        params: params.clone(),
    });
    if params.get("appid").map(String::as_str) != Some(API_KEY) {
        let body = r#"{"cod":401,"message":"Invalid API key."}"#;
        return (StatusCode::UNAUTHORIZED, body).into_response();
    }
    let city = params.get("q").cloned().unwrap_or_default();
    let imperial = params.get("units").map(String::as_str) == Some("imperial");
    match city.as_str() {
        "Atlantis" => (
            StatusCode::NOT_FOUND,
            r#"{"cod":"404","message":"city not found"}"#,
        )
            .into_response(),
        "Ratelimit" => (StatusCode::TOO_MANY_REQUESTS, r#"{"cod":429}"#).into_response(),
        "Meltdown" => (StatusCode::SERVICE_UNAVAILABLE, "upstream down").into_response(),
        "Garbled" => (StatusCode::OK, "{this is not json").into_response(),
        "Partial" => (StatusCode::OK, r#"{"name":"Partial","cod":200}"#).into_response(),
        _ => {
            let (temp, wind) = if imperial { (70.7, 7.8) } else { (21.5, 3.5) };
            let body = serde_json::json!({
                "name": city,
                "cod": 200,
                "main": {"temp": temp, "humidity": 40, "pressure": 1012},
                "weather": [{"id": 800, "main": "Clear", "description": "clear sky"}],
                "wind": {"speed": wind, "deg": 90},
            });
            (StatusCode::OK, axum::Json(body)).into_response()
        }
    }
}

/// A running `mcp-wasm-host serve` process, killed on drop.
pub struct Host {
    child: Child,
    pub addr: SocketAddr,
    stderr: Arc<Mutex<String>>,
    _dir: tempfile::TempDir,
}

impl Host {
    /// Writes `config` to a fresh folder and starts the host on it; waits until it
    /// listens. Panics with the host's stderr if it does not.
    pub fn start(config: &str, env: &[(&str, &str)]) -> Self {
        Self::start_under(config, env, &[])
    }

    /// Like [`Host::start`], with the host's open-file limit (soft and hard) set to
    /// `limit` by util-linux `prlimit`.
    pub fn start_with_fd_limit(config: &str, env: &[(&str, &str)], limit: u64) -> Self {
        let nofile = format!("--nofile={limit}:{limit}");
        Self::start_under(config, env, &["prlimit", &nofile, "--"])
    }

    /// Starts the host as the last argument of `wrapper` (none: directly).
    fn start_under(config: &str, env: &[(&str, &str)], wrapper: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("host.toml");
        std::fs::write(&path, config).unwrap();
        let mut command = match wrapper.split_first() {
            None => host_command(&path, env),
            Some((program, args)) => {
                let direct = host_command(&path, env);
                let mut wrapped = Command::new(program);
                wrapped
                    .args(args)
                    .arg(direct.get_program())
                    .args(direct.get_args())
                    .env_clear()
                    .envs(direct.get_envs().filter_map(|(k, v)| Some((k, v?))));
                wrapped
            }
        };
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the host binary starts");
        let stderr = collect(child.stderr.take().unwrap());
        let (line_tx, line_rx) = std::sync::mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = line_tx.send(line);
            }
        });
        let deadline = Instant::now() + START_TIMEOUT;
        let addr = loop {
            match line_rx.recv_timeout(Duration::from_millis(100)) {
                Ok(line) => {
                    if let Some(url) = line.strip_prefix("mcp-wasm-host listening on http://") {
                        let addr = url.trim_end_matches("/mcp");
                        break addr.parse().expect("a socket address");
                    }
                }
                Err(_) => {
                    if let Ok(Some(status)) = child.try_wait() {
                        panic!(
                            "host exited with {status} before listening:\n{}",
                            stderr.lock().unwrap()
                        );
                    }
                    assert!(
                        Instant::now() < deadline,
                        "host did not listen within {START_TIMEOUT:?}:\n{}",
                        stderr.lock().unwrap()
                    );
                }
            }
        };
        Self {
            child,
            addr,
            stderr,
            _dir: dir,
        }
    }

    pub fn mcp_url(&self) -> String {
        format!("http://{}/mcp", self.addr)
    }

    /// Everything the host wrote to stderr (its log) so far.
    pub fn log(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// How many file descriptors the host process has open (Linux): (sockets, others).
    #[cfg(target_os = "linux")]
    pub fn open_fds(&self) -> (usize, usize) {
        let fds =
            std::fs::read_dir(format!("/proc/{}/fd", self.child.id())).expect("/proc is mounted");
        let (mut sockets, mut others) = (0, 0);
        for fd in fds.flatten() {
            match std::fs::read_link(fd.path()) {
                Ok(target) if target.to_string_lossy().starts_with("socket:") => sockets += 1,
                _ => others += 1,
            }
        }
        (sockets, others)
    }

    /// Where the log ends now: pass it to [`Host::wait_for_log_since`].
    pub fn log_mark(&self) -> usize {
        self.stderr.lock().unwrap().len()
    }

    /// Waits up to `timeout` for the log written after `mark` to contain `needle`;
    /// returns that part of the log.
    pub fn wait_for_log_since(&self, mark: usize, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let log = self.log()[mark..].to_owned();
            if log.contains(needle) || Instant::now() > deadline {
                return log;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits up to `timeout` for the log to contain `needle`; returns the log.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let log = self.log();
            if log.contains(needle) || Instant::now() > deadline {
                return log;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- host log ---\n{}--- end of host log ---", self.log());
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the host with `config` and `env` and expects it to refuse to start; returns
/// its exit status and stderr.
pub fn start_refused(config: &str, env: &[(&str, &str)]) -> (ExitStatus, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("host.toml");
    std::fs::write(&path, config).unwrap();
    let mut child = host_command(&path, env)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the host binary starts");
    let mut pipe = child.stderr.take().unwrap();
    // Reads until the host exits (or is killed) and its end of the pipe closes.
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = pipe.read_to_string(&mut text);
        text
    });
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return (status, reader.join().unwrap());
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "host did not exit within {START_TIMEOUT:?}:\n{}",
                reader.join().unwrap()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs the host binary with `args`; returns (status, stdout, stderr).
pub fn run_host(args: &[&str]) -> (ExitStatus, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_mcp-wasm-host"))
        .args(args)
        .env_clear()
        .env("RUST_LOG", "warn")
        .output()
        .expect("the host binary runs");
    (
        output.status,
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn host_command(config: &Path, env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_mcp-wasm-host"));
    command
        .arg("serve")
        .arg("--config")
        .arg(config)
        .env_clear()
        .env("RUST_LOG", "info")
        .envs(env.iter().copied());
    command
}

fn collect(mut pipe: impl Read + Send + 'static) -> Arc<Mutex<String>> {
    let text = Arc::new(Mutex::new(String::new()));
    let sink = text.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        loop {
            match pipe.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => sink
                    .lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n])),
            }
        }
    });
    text
}

/// A TOML string literal for `path`.
pub fn toml_path(path: &Path) -> String {
    toml_str(&path.display().to_string())
}

/// A TOML basic string holding `text`.
pub fn toml_str(text: &str) -> String {
    serde_json::to_string(text).unwrap()
}

/// The config of a host serving the weather plugin against `upstream`, with
/// `secrets` as its `[secrets]` section (see [`Secrets::section`]).
pub fn weather_config(upstream_base: &str, allowed: &str, secrets: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"

{secrets}

[plugins.weather]
path = {path}
env = {{ WEATHER_API_BASE = {base} }}
credentials = ["weather-api-key"]
allowed_outbound_hosts = [{allowed}]
"#,
        path = toml_path(&plugin("weather")),
        base = toml_str(upstream_base),
        allowed = toml_str(allowed),
    )
}

/// The `[secrets]` section that takes credentials from `MCP_SECRET_*` variables.
pub const ENV_SECRETS: &str = "[secrets]\nsource = \"env\"\n";

/// An encrypted secret store in a temp folder, filled through the real CLI.
pub struct Secrets {
    dir: tempfile::TempDir,
    /// The KEK (base64), as `MCP_HOST_KEK` must hold it.
    pub kek: String,
}

impl Secrets {
    /// A new store with a fresh KEK holding `values`.
    pub fn new(values: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (status, kek, stderr) = run_host(&["keygen"]);
        assert!(status.success(), "{stderr}");
        let secrets = Self {
            dir,
            kek: kek.trim().to_owned(),
        };
        std::fs::write(secrets.config_path(), secrets.section()).unwrap();
        for (name, value) in values {
            secrets.set(name, value).unwrap();
        }
        secrets
    }

    /// The `[secrets]` section naming this store (KEK from `MCP_HOST_KEK`).
    pub fn section(&self) -> String {
        format!(
            "[secrets]\nstore = {}\nkek_env = \"MCP_HOST_KEK\"\n",
            toml_path(&self.store_path())
        )
    }

    pub fn store_path(&self) -> PathBuf {
        self.dir.path().join("data").join("secrets.json")
    }

    /// A config file holding only [`Self::section`], for the `secrets` commands.
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("secrets.toml")
    }

    /// The environment a host or CLI using this store needs.
    pub fn env(&self) -> [(&str, &str); 1] {
        [("MCP_HOST_KEK", self.kek.as_str())]
    }

    /// `mcp-wasm-host secrets ARGS --config ...`, with `stdin` as standard input.
    pub fn cli(&self, args: &[&str], stdin: &str) -> (ExitStatus, String, String) {
        let mut child = Command::new(env!("CARGO_BIN_EXE_mcp-wasm-host"))
            .arg("secrets")
            .args(args)
            .arg("--config")
            .arg(self.config_path())
            .env_clear()
            .envs(self.env())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the host binary runs");
        use std::io::Write as _;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        let output = child.wait_with_output().unwrap();
        (
            output.status,
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }

    /// Stores `value` as `name` through `secrets set`; `Err(stderr)` if refused.
    pub fn set(&self, name: &str, value: &str) -> Result<(), String> {
        let (status, _, stderr) = self.cli(&["set", name], &format!("{value}\n"));
        if status.success() {
            Ok(())
        } else {
            Err(stderr)
        }
    }
}

/// An rmcp client connected to `url` over Streamable HTTP.
pub async fn connect(url: &str) -> rmcp::service::RunningService<rmcp::RoleClient, ()> {
    use rmcp::ServiceExt;
    let transport = rmcp::transport::StreamableHttpClientTransport::from_uri(url.to_owned());
    ().serve(transport).await.expect("the MCP client connects")
}

/// This machine's host name, which resolves (through /etc/hosts) to a loopback or
/// private address: a name the allowlist grants that leads somewhere internal.
pub fn internal_host_name() -> String {
    use std::net::ToSocketAddrs;
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .expect("the host name is readable")
        .trim()
        .to_owned();
    let addrs: Vec<_> = (name.as_str(), 80)
        .to_socket_addrs()
        .unwrap_or_else(|e| panic!("host name {name} does not resolve: {e}"))
        .collect();
    assert!(
        addrs.iter().all(|a| {
            let ip = a.ip();
            ip.is_loopback() || matches!(ip, std::net::IpAddr::V4(v4) if v4.is_private())
        }),
        "host name {name} resolves to {addrs:?}, not an internal address: the test needs one"
    );
    name
}

/// A connected rmcp client, as the tests use it.
pub type Client = rmcp::service::RunningService<rmcp::RoleClient, ()>;

/// Calls the fixture plugin's `fixture` tool with `arguments` (a JSON object).
pub async fn call_fixture(
    client: &Client,
    arguments: serde_json::Value,
) -> rmcp::model::CallToolResult {
    client
        .call_tool(
            rmcp::model::CallToolRequestParams::new("fixture")
                .with_arguments(arguments.as_object().expect("an object").clone()),
        )
        .await
        .expect("tools/call answers")
}

/// The text of a result's first content block.
pub fn first_text(result: &rmcp::model::CallToolResult) -> String {
    result.content[0]
        .as_text()
        .expect("text content")
        .text
        .clone()
}

/// Runs an SDK client script (`command`) that prints one JSON line of what it saw.
pub fn sdk_client_output(mut command: Command, label: &str) -> serde_json::Value {
    let output = command.output().expect("the SDK client runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{label} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(stdout.trim()).expect("the script prints JSON")
}

/// Runs an SDK client (`run(url, mode, city)`) against a weather host for each
/// `(mode, negotiated version, city)` and checks what it saw (see
/// [`assert_sdk_saw_weather`]), and that the upstream got exactly those cities.
pub async fn check_sdk_client(
    run: fn(&str, &str, &str) -> serde_json::Value,
    cases: &[(&'static str, &'static str, &'static str)],
) {
    let upstream = Upstream::start().await;
    let config = weather_config(&upstream.base_url(), &upstream.base_url(), ENV_SECRETS);
    let host = Host::start(&config, &[("MCP_SECRET_WEATHER_API_KEY", API_KEY)]);
    for &(mode, version, city) in cases {
        let url = host.mcp_url();
        let seen = tokio::task::spawn_blocking(move || run(&url, mode, city))
            .await
            .unwrap();
        assert_sdk_saw_weather(&seen, mode, version, city);
    }
    let cities: Vec<_> = upstream
        .requests()
        .iter()
        .map(|r| r.params["q"].clone())
        .collect();
    let expected: Vec<_> = cases.iter().map(|(_, _, city)| city.to_string()).collect();
    assert_eq!(cities, expected);
}

/// What an SDK client script saw (tests/python, tests/typescript) in `mode`: the
/// negotiated `version`, the weather tool listed with its schema, a report for `city`
/// from the fake upstream, and an over-long city refused by the schema.
pub fn assert_sdk_saw_weather(seen: &serde_json::Value, mode: &str, version: &str, city: &str) {
    assert_eq!(seen["protocol_version"], version, "{mode}: {seen}");
    assert_eq!(seen["tools"][0]["name"], "get_weather", "{mode}: {seen}");
    assert_eq!(
        seen["tools"][0]["input_schema"]["properties"]["city"]["maxLength"],
        100
    );
    assert_eq!(seen["is_error"], false, "{mode}: {seen}");
    assert_eq!(
        seen["text"][0],
        format!("{city}: 21.5°C, clear sky, humidity 40%, wind 3.5 m/s")
    );
    assert_eq!(seen["structured"]["city"], city);
    assert_eq!(seen["structured"]["temperature"], serde_json::json!(21.5));
    assert_eq!(seen["invalid_is_error"], true, "{mode}: {seen}");
    assert!(
        seen["invalid_text"][0]
            .as_str()
            .unwrap()
            .contains("longer than 100"),
        "{seen}"
    );
}
