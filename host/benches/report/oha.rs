//! HTTP load: `oha`, a well-known load generator, run as its own process (measuring),
//! or a few calls from a built-in client whose answers are checked (smoke runs).

use super::{CALL, CALL_HEADERS};
use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// What one scenario reached.
#[derive(Debug, Clone)]
pub struct Figures {
    /// Answered calls per second.
    pub calls_per_s: f64,
    /// Median latency.
    pub p50_us: f64,
    /// 99th percentile latency.
    pub p99_us: f64,
    /// Calls answered 200 (HTTP) or answered without error (stdio).
    pub ok: u64,
}

impl Figures {
    /// Figures from latencies measured over `elapsed`.
    pub fn from_latencies(mut latencies: Vec<Duration>, elapsed: Duration) -> Self {
        latencies.sort();
        let pct = |p: f64| {
            latencies
                .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
                .map_or(0.0, |d| d.as_secs_f64() * 1e6)
        };
        Self {
            calls_per_s: latencies.len() as f64 / elapsed.as_secs_f64(),
            p50_us: pct(0.50),
            p99_us: pct(0.99),
            ok: latencies.len() as u64,
        }
    }
}

/// How long a load runs.
#[derive(Debug, Clone, Copy)]
pub enum Budget {
    /// For this long.
    Time(Duration),
    /// Until this many calls were answered.
    Count(u64),
}

/// The `oha` executable.
#[derive(Clone)]
pub struct Oha {
    path: PathBuf,
}

impl Oha {
    /// Finds `oha` on the PATH or in `~/.cargo/bin`.
    pub fn find() -> Self {
        let mut places: Vec<PathBuf> = std::env::var_os("PATH")
            .map(|path| std::env::split_paths(&path).collect())
            .unwrap_or_default();
        if let Some(home) = std::env::var_os("HOME") {
            places.push(PathBuf::from(home).join(".cargo/bin"));
        }
        let path = places
            .into_iter()
            .map(|dir| dir.join("oha"))
            .find(|candidate| candidate.is_file())
            .expect("oha is not installed: run scripts/bench.sh, which installs it");
        Self { path }
    }

    /// `clients` concurrent connections sending the echo call to `url` for `time`.
    pub fn run(&self, url: &str, token: Option<&str>, clients: usize, time: Duration) -> Figures {
        self.run_body(url, token, clients, Budget::Time(time), CALL)
    }

    /// `clients` concurrent connections sending `body` (a call of echo) to `url`
    /// within `budget`.
    pub fn run_body(
        &self,
        url: &str,
        token: Option<&str>,
        clients: usize,
        budget: Budget,
        body: &str,
    ) -> Figures {
        // From a file: a body past 128 KiB cannot be a command-line argument.
        let mut file = tempfile::NamedTempFile::new().unwrap();
        std::io::Write::write_all(&mut file, body.as_bytes()).unwrap();
        let mut command = Command::new(&self.path);
        command
            .args(["--no-tui", "--output-format", "json", "-m", "POST", "-D"])
            .arg(file.path())
            .args(["-c", &clients.to_string()]);
        match budget {
            Budget::Time(time) => command.args(["-z", &format!("{}s", time.as_secs())]),
            Budget::Count(calls) => command.args(["-n", &calls.to_string()]),
        };
        for (name, value) in CALL_HEADERS {
            command.args(["-H", &format!("{name}: {value}")]);
        }
        if let Some(token) = token {
            command.args(["-H", &format!("authorization: Bearer {token}")]);
        }
        let output = command.arg(url).output().expect("oha runs");
        assert!(
            output.status.success(),
            "oha failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let report: Value = serde_json::from_slice(&output.stdout).expect("oha prints JSON");
        let codes = &report["statusCodeDistribution"];
        let ok = codes["200"].as_u64().unwrap_or(0);
        let others: u64 = codes
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(code, _)| code.as_str() != "200")
            .filter_map(|(_, n)| n.as_u64())
            .sum();
        assert_eq!(others, 0, "answers other than 200: {codes}");
        let seconds = report["summary"]["total"].as_f64().expect("a total time");
        let percentile = |p: &str| report["latencyPercentiles"][p].as_f64().unwrap_or(0.0) * 1e6;
        Figures {
            calls_per_s: ok as f64 / seconds,
            p50_us: percentile("p50"),
            p99_us: percentile("p99"),
            ok,
        }
    }
}

/// A few calls from `clients` (at most 4) concurrent built-in clients, each answer
/// checked: the smoke run's stand-in for oha.
pub async fn smoke(url: &str, token: Option<&str>, clients: usize) -> Figures {
    smoke_body(url, token, clients, CALL, "hello").await
}

/// [`smoke`] with `body`, a call of echo whose message is `message`.
pub async fn smoke_body(
    url: &str,
    token: Option<&str>,
    clients: usize,
    body: &str,
    message: &str,
) -> Figures {
    let (body, expected) = (
        body.to_owned(),
        serde_json::json!({"type": "text", "text": message}),
    );
    let http = reqwest::Client::new();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients.min(4) {
        let (http, url, token) = (http.clone(), url.to_owned(), token.map(str::to_owned));
        let (body, expected) = (body.clone(), expected.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            for _ in 0..5 {
                let mut request = http.post(&url).body(body.clone());
                for (name, value) in CALL_HEADERS {
                    request = request.header(name, value);
                }
                if let Some(token) = &token {
                    request = request.bearer_auth(token);
                }
                let sent = Instant::now();
                let response = request.send().await.expect("an answer");
                assert_eq!(response.status(), 200);
                let answer: Value = response.json().await.unwrap();
                assert_eq!(answer["result"]["isError"], false, "{answer}");
                assert_eq!(answer["result"]["content"][0], expected);
                latencies.push(sent.elapsed());
            }
            latencies
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.unwrap());
    }
    Figures::from_latencies(latencies, started.elapsed())
}
