//! `cargo bench --bench report` (run by `scripts/bench.sh`): the end-to-end table.
//!
//! In one run, on loopback, bounded in time:
//! - HTTP: the release host with everything on (tokens from its embedded authorization
//!   server, rate limits set high, schema validation, audit log with `fsync =
//!   "interval"`, then `"always"`) answering stateless 2026-07-28 `tools/call`s of the
//!   echo tool from 1, 16, 64 and 256 concurrent clients of `oha`, a well-known load
//!   generator run as its own process; and the same clients against the ceiling, a
//!   bare axum server doing the same JSON-RPC work ([`ceiling`]), and the floor, the
//!   ceiling plus a fresh sandboxed echo instance per call through the host's own
//!   sandbox ([`floor`]): what no host of sandboxed tools can skip. Each row gives
//!   calls/s, p50 and p99, the ratios to the ceiling and to the floor, the host's RSS,
//!   and the CPU time the server spent per call, which varies less between runs than
//!   the rates. The host's own metrics
//!   must count every 200 as a successful call (a refused call answered 200 with
//!   `isError` would otherwise pass for a fast one).
//! - stdio: the host's `serve --stdio`, the bare stdio ceiling and the stdio floor,
//!   driven by a raw JSON-RPC client ([`stdio`]) with 1 and 8 requests in flight
//!   (audit log with `fsync = "interval"`).
//! - replicas: one replica with in-memory budgets, with budgets in Redis, and two
//!   replicas sharing that Redis ([`replicas`]).
//! - start-up: from starting the host to `/healthz` answering with 10 plugins, with an
//!   empty compiled-plugin cache and with a filled one ([`startup`]).
//!
//! Without `--bench` (as under `cargo test --benches`) every scenario runs a few calls
//! with a built-in client and checks the answers: a smoke test, not a measurement.
//!
//! Arguments after `--` choose sections (`http`, `stdio`, `growth`, `replicas`,
//! `startup`; all when none is named): `cargo bench --bench report -- stdio`.
//! `MCP_BENCH_HOST` names another host executable for the stdio rows to measure (an
//! A/B comparison of two builds) in place of the one this bench was built with.

#[path = "../../../tests/e2e/common/mod.rs"]
mod common;

mod ceiling;
mod floor;
mod growth;
mod oha;
mod replicas;
mod startup;
mod stdio;

use common::oauth::{Login, OAuthClient, Pkce, setup_code};
use common::{Host, plugin, toml_path};
use std::time::Duration;

/// The host's allocator, for the bare servers this executable also runs (the ceiling
/// and the floor): they are measured against the host with the same malloc.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// How long each measured HTTP or stdio scenario runs.
const MEASURE_FOR: Duration = Duration::from_secs(5);
/// Concurrent HTTP clients per row.
const CLIENTS: [usize; 4] = [1, 16, 64, 256];
/// Plugins loaded in the start-up rows.
const STARTUP_PLUGINS: usize = 10;
/// Requests in flight on stdio.
const IN_FLIGHT: [usize; 2] = [1, 8];

/// The body of a stateless `tools/call` of `echo`.
pub const CALL: &str = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"message":"hello"},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}"#;

/// The headers a 2026-07-28 client sends with [`CALL`].
pub const CALL_HEADERS: [(&str, &str); 5] = [
    ("content-type", "application/json"),
    ("accept", "application/json, text/event-stream"),
    ("mcp-protocol-version", "2026-07-28"),
    ("mcp-method", "tools/call"),
    ("mcp-name", "echo"),
];

fn main() {
    match std::env::var("MCP_BENCH_ROLE").as_deref() {
        Ok("ceiling-http") => return ceiling::http().expect("the ceiling serves"),
        Ok("ceiling-stdio") => return ceiling::stdio().expect("the ceiling serves"),
        Ok("floor-http") => return floor::http().expect("the floor serves"),
        Ok("floor-stdio") => return floor::stdio().expect("the floor serves"),
        _ => {}
    }
    let measuring = std::env::args().any(|a| a == "--bench");
    let sections = Sections::from_args(std::env::args().skip(1));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(report(measuring, &sections));
}

/// The sections of the report to run.
struct Sections(Vec<String>);

impl Sections {
    const ALL: [&str; 5] = ["http", "stdio", "growth", "replicas", "startup"];

    /// The sections named among `args` (all when none is); an unknown name stops the
    /// bench with the list of known ones.
    fn from_args(args: impl Iterator<Item = String>) -> Self {
        let named: Vec<String> = args.filter(|a| !a.starts_with('-')).collect();
        if let Some(unknown) = named.iter().find(|n| !Self::ALL.contains(&n.as_str())) {
            eprintln!(
                "unknown report section {unknown:?}; the sections are {}",
                Self::ALL.join(", ")
            );
            std::process::exit(2);
        }
        Self(named)
    }

    fn runs(&self, section: &str) -> bool {
        self.0.is_empty() || self.0.iter().any(|n| n == section)
    }
}

async fn report(measuring: bool, sections: &Sections) {
    println!("{}", machine());
    if !measuring {
        println!("smoke run: a few calls per row, each answer checked; the figures mean nothing");
    }
    if sections.runs("http") {
        http(measuring).await;
    }
    if sections.runs("stdio") {
        stdio_rows(measuring);
    }
    let oha =
        (measuring && (sections.runs("growth") || sections.runs("replicas"))).then(oha::Oha::find);
    if sections.runs("growth") {
        growth::report(oha.as_ref()).await;
    }
    if sections.runs("replicas") {
        replicas::report(oha.as_ref()).await;
    }
    if sections.runs("startup") {
        startup_rows(measuring);
    }
}

/// The HTTP rows: the ceiling, the floor, then the host with each `fsync` setting.
async fn http(measuring: bool) {
    let oha = measuring.then(oha::Oha::find);
    let load = |url: String, token: Option<String>, clients: usize| {
        let oha = oha.clone();
        async move {
            match &oha {
                Some(oha) => oha.run(&url, token.as_deref(), clients, MEASURE_FOR),
                None => oha::smoke(&url, token.as_deref(), clients).await,
            }
        }
    };
    // The bare servers' rows, each server on its own: a row per number of clients.
    let mut bare = Vec::new();
    for role in ["ceiling-http", "floor-http"] {
        let server = ceiling::Process::start_role(role);
        let mut rows = Vec::new();
        for clients in CLIENTS {
            let cpu = Cpu::of(server.pid());
            let figures = load(server.url(), None, clients).await;
            let cpu_us = cpu.per_call(figures.ok);
            rows.push((figures, cpu_us));
        }
        bare.push(rows);
    }
    let (ceilings, floors) = (&bare[0], &bare[1]);
    println!("\nHTTP, stateless tools/call of echo, full pipeline (oha, {MEASURE_FOR:?} per row)");
    print_measured_header("clients");
    for (clients, ceiling) in CLIENTS.into_iter().zip(ceilings) {
        print_measured(LABEL_HTTP_CEILING, clients, ceiling, None, None, None);
    }
    for ((clients, floor), ceiling) in CLIENTS.into_iter().zip(floors).zip(ceilings) {
        print_measured(LABEL_FLOOR, clients, floor, Some(ceiling), None, None);
    }
    for fsync in ["interval", "always"] {
        let bench = FullHost::start(fsync).await;
        for ((clients, ceiling), floor) in CLIENTS.into_iter().zip(ceilings).zip(floors) {
            let before = bench.ok_calls().await;
            let cpu = Cpu::of(bench.host.pid());
            let figures = load(bench.host.mcp_url(), Some(bench.token.clone()), clients).await;
            let cpu_us = cpu.per_call(figures.ok);
            let counted = bench.ok_calls().await - before;
            // oha drops the calls still in flight at its deadline: the host may have
            // answered up to one per client more than oha counted, never fewer.
            assert!(
                (figures.ok..=figures.ok + clients as u64).contains(&counted),
                "the host counted {counted} successful calls, the client {} answers 200",
                figures.ok
            );
            print_measured(
                &format!("this host, audit fsync = {fsync}"),
                clients,
                &(figures, cpu_us),
                Some(ceiling),
                Some(floor),
                rss_mib(bench.host.pid()),
            );
        }
    }
}

/// The ceiling's label in the HTTP table.
const LABEL_HTTP_CEILING: &str = "bare axum JSON-RPC echo (ceiling)";
/// The floor's label in the HTTP and stdio tables.
const LABEL_FLOOR: &str = "ceiling + fresh echo instance";

/// The stdio rows: the ceiling, the floor and the host, with 1 and 8 calls in flight.
fn stdio_rows(measuring: bool) {
    println!("\nstdio, tools/call of echo (raw JSON-RPC client, {MEASURE_FOR:?} per row)");
    print_measured_header("in flight");
    let config_dir = tempfile::tempdir().unwrap();
    let config = config_dir.path().join("host.toml");
    std::fs::write(
        &config,
        format!(
            "[audit]\npath = {}\nfsync = \"interval\"\n[rate_limits]\nper_user_tool = \"1000000/s\"\n\
             [plugins.echo]\npath = {}\nlimits = {{ max_concurrency = 64 }}\n",
            toml_path(&config_dir.path().join("audit.jsonl")),
            toml_path(&plugin("echo"))
        ),
    )
    .unwrap();
    let budget = if measuring {
        stdio::Budget::time(MEASURE_FOR)
    } else {
        stdio::Budget::count(20)
    };
    for in_flight in IN_FLIGHT {
        let ceiling = stdio::drive(stdio::bench_role("ceiling-stdio"), in_flight, budget);
        let floor = stdio::drive(stdio::bench_role("floor-stdio"), in_flight, budget);
        let host = stdio::drive(stdio::host_command(&config), in_flight, budget);
        let label = "bare stdio JSON-RPC echo (ceiling)";
        print_measured(label, in_flight, &ceiling, None, None, None);
        print_measured(LABEL_FLOOR, in_flight, &floor, Some(&ceiling), None, None);
        let label = "this host, serve --stdio";
        print_measured(label, in_flight, &host, Some(&ceiling), Some(&floor), None);
    }
}

/// The start-up rows: 10 plugins, cold and warm.
fn startup_rows(measuring: bool) {
    let plugins = if measuring { STARTUP_PLUGINS } else { 2 };
    let startup = startup::measure(plugins);
    println!(
        "\nstart-up until /healthz answers, {} plugins (distinct builds of the fixture plugin)",
        startup.plugins
    );
    println!(
        "{:<34} {:>8.0} ms",
        "cold (empty compile cache)",
        startup.cold.as_secs_f64() * 1e3
    );
    println!(
        "{:<34} {:>8.0} ms",
        "warm (cache filled by the cold start)",
        startup.warm.as_secs_f64() * 1e3
    );
}

/// One table row, its ratio to `first` and the RSS.
fn print_row(
    label: &str,
    clients: usize,
    figures: &oha::Figures,
    first: Option<&oha::Figures>,
    rss: Option<f64>,
) {
    let rss = rss.map_or(String::new(), |r| format!("{r:.0}"));
    println!("{} {rss:>9}", row(label, clients, figures, first));
}

/// One row of the HTTP and stdio tables: beside the figures, the ratios to the ceiling
/// and the floor, the RSS and the CPU per call.
fn print_measured(
    label: &str,
    clients: usize,
    measured: &Measured,
    ceiling: Option<&Measured>,
    floor: Option<&Measured>,
    rss: Option<f64>,
) {
    let rss = rss.map_or(String::new(), |r| format!("{r:.0}"));
    println!(
        "{} {:>9} {rss:>9} {:>12}",
        row(label, clients, &measured.0, ceiling.map(|c| &c.0)),
        ratio(&measured.0, floor.map(|f| &f.0)),
        cpu_column(measured.1)
    );
}

/// The header of the HTTP and stdio tables.
fn print_measured_header(clients: &str) {
    println!(
        "{:<34} {:>8} {:>11} {:>9} {:>9} {:>10} {:>9} {:>9} {:>12}",
        "",
        clients,
        "calls/s",
        "p50 us",
        "p99 us",
        "vs ceiling",
        "vs floor",
        "RSS MiB",
        "CPU us/call"
    );
}

/// A row's figures and the CPU its server spent per call, in microseconds.
type Measured = (oha::Figures, Option<f64>);

/// The text of a row's figures and their ratio to `base`.
fn row(label: &str, clients: usize, figures: &oha::Figures, base: Option<&oha::Figures>) -> String {
    format!(
        "{label:<34} {clients:>8} {:>11.0} {:>9.0} {:>9.0} {:>10}",
        figures.calls_per_s,
        figures.p50_us,
        figures.p99_us,
        ratio(figures, base)
    )
}

/// `figures`' calls/s as a percentage of `base`'s; blank without a base.
fn ratio(figures: &oha::Figures, base: Option<&oha::Figures>) -> String {
    base.map_or(String::new(), |b| {
        format!("{:.0}%", 100.0 * figures.calls_per_s / b.calls_per_s)
    })
}

/// A process's CPU time (user and system) at the start of a row: per call, the figure
/// that varies least between runs on a busy machine.
struct Cpu {
    pid: u32,
    start: Option<f64>,
}

impl Cpu {
    fn of(pid: u32) -> Self {
        Self {
            pid,
            start: cpu_seconds(pid),
        }
    }

    /// Microseconds of CPU the process spent per call since [`Cpu::of`].
    fn per_call(&self, calls: u64) -> Option<f64> {
        let spent = cpu_seconds(self.pid)? - self.start?;
        (calls > 0).then(|| spent * 1e6 / calls as f64)
    }
}

/// A process's user and system CPU time in seconds (Linux: `/proc/PID/stat` counts in
/// USER_HZ ticks, 100 a second).
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command (which may hold spaces) start at the state, field 3;
    // utime and stime are fields 14 and 15.
    let after_command = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after_command.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// The CPU column: blank when unknown.
fn cpu_column(cpu_us: Option<f64>) -> String {
    cpu_us.map_or(String::new(), |us| format!("{us:.0}"))
}

/// Cores, load and kernel: the figures mean little without them.
fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: Vec<&str> = load.split_whitespace().take(3).collect();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!(
        "machine: {cores} cores, load average {} (1, 5, 15 min), Linux {}",
        load.join(" "),
        kernel.trim()
    )
}

/// A process's resident memory in MiB (Linux).
fn rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: f64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib / 1024.0)
}

/// The release host with everything on, and a token from its embedded server.
struct FullHost {
    host: Host,
    token: String,
    _dir: tempfile::TempDir,
}

impl FullHost {
    async fn start(fsync: &str) -> Self {
        Self::start_with(fsync, |_| String::new()).await
    }

    /// [`FullHost::start`] with more config (plugins, say) from `more`, given the
    /// host's folder.
    async fn start_with(fsync: &str, more: impl FnOnce(&std::path::Path) -> String) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n[auth]\nmode = \"embedded\"\n\
             [auth.embedded]\ndatabase = {}\n\
             [audit]\npath = {}\nfsync = \"{fsync}\"\n\
             [rate_limits]\nper_user = \"1000000/s\"\nper_tool = \"1000000/s\"\n\
             per_user_tool = \"1000000/s\"\n\
             [plugins.echo]\npath = {}\n\
             limits = {{ max_concurrency = 64, max_output = \"2MiB\" }}\n{}",
            toml_path(&dir.path().join("auth.sqlite")),
            toml_path(&dir.path().join("audit.jsonl")),
            toml_path(&plugin("echo")),
            more(dir.path()),
        );
        let (_, kek, _) = common::run_host(&["keygen"]);
        // The host's own default log filter, as an operator runs it (the tests' helper
        // turns every library's info lines on).
        let host = Host::start(
            &config,
            &[("MCP_HOST_KEK", kek.trim()), ("RUST_LOG", "info,rmcp=warn")],
        );
        let base = format!("http://{}", host.addr);
        let client = OAuthClient::register(&base).await;
        let pkce = Pkce::new();
        let code = setup_code(&host.log()).expect("a fresh host prints a setup code");
        let login = Login::Setup {
            code: &code,
            name: "bench",
            password: "a-long-bench-password",
        };
        let code = client.authorize(&pkce, "", &login).await;
        let (_, tokens) = client.exchange(&code, &pkce).await;
        let token = tokens["access_token"].as_str().expect("a token").to_owned();
        Self {
            host,
            token,
            _dir: dir,
        }
    }

    /// `mcp_tool_calls_total{outcome="ok"}` from the host's `/metrics`.
    async fn ok_calls(&self) -> u64 {
        let text = reqwest::get(format!("http://{}/metrics", self.host.addr))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .filter(|line| {
                line.starts_with("mcp_tool_calls_total{") && line.contains("outcome=\"ok\"")
            })
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64
    }
}
