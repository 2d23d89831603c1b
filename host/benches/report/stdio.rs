//! stdio load: a raw JSON-RPC client keeping N `tools/call`s of echo in flight on a
//! server's stdin, reading answers from its stdout, checking each.

use super::oha::Figures;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long, or how many calls.
#[derive(Clone, Copy)]
pub struct Budget {
    time: Duration,
    count: u64,
}

impl Budget {
    /// As many calls as fit in `time`.
    pub fn time(time: Duration) -> Self {
        Self {
            time,
            count: u64::MAX,
        }
    }

    /// `count` calls.
    pub fn count(count: u64) -> Self {
        Self {
            time: Duration::from_secs(60),
            count,
        }
    }
}

/// The host over stdio with `config` (the executable `MCP_BENCH_HOST` names, if set).
pub fn host_command(config: &Path) -> Command {
    let host = std::env::var_os("MCP_BENCH_HOST")
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_mcp-wasm-host").into());
    let mut command = Command::new(host);
    command
        .args(["serve", "--stdio", "--config"])
        .arg(config)
        // The host's default log filter, as an operator runs it.
        .env_remove("RUST_LOG");
    command
}

/// This executable in `role` (`ceiling-stdio` or `floor-stdio`).
pub fn bench_role(role: &str) -> Command {
    let mut command = Command::new(std::env::current_exe().expect("the bench's own path"));
    command.env("MCP_BENCH_ROLE", role);
    command
}

fn call(id: u64) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"echo","arguments":{{"message":"hello"}}}}}}"#
    )
}

/// Runs `command`, initializes, and keeps `in_flight` calls going within `budget`;
/// returns the figures and the CPU time the server spent per call (after the
/// handshake), in microseconds, when `/proc` tells.
pub fn drive(mut command: Command, in_flight: usize, budget: Budget) -> (Figures, Option<f64>) {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the server starts");
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    writeln!(
        stdin,
        r#"{{"jsonrpc":"2.0","id":0,"method":"initialize","params":{{"protocolVersion":"2025-11-25","capabilities":{{}},"clientInfo":{{"name":"bench","version":"1"}}}}}}"#
    )
    .unwrap();
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert!(line.contains(r#""id":0"#), "{line}");
    writeln!(
        stdin,
        r#"{{"jsonrpc":"2.0","method":"notifications/initialized"}}"#
    )
    .unwrap();

    // The reader hands each answered id back; the writer sends one more per answer.
    let (answered, answers) = mpsc::channel::<u64>();
    let reader = std::thread::spawn(move || {
        let mut line = String::new();
        loop {
            line.clear();
            if stdout.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            assert!(
                line.contains(r#""text":"hello""#) && !line.contains(r#""isError":true"#),
                "{line}"
            );
            let id = line
                .split(r#""id":"#)
                .nth(1)
                .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
                .and_then(|id| id.parse().ok())
                .expect("an id");
            if answered.send(id).is_err() {
                return;
            }
        }
    });
    let cpu_start = super::cpu_seconds(child.id());
    let started = Instant::now();
    let mut sent_at = HashMap::new();
    let mut latencies = Vec::new();
    let mut next_id = 1u64;
    let mut send = |stdin: &mut std::process::ChildStdin, sent_at: &mut HashMap<u64, Instant>| {
        sent_at.insert(next_id, Instant::now());
        writeln!(stdin, "{}", call(next_id)).unwrap();
        next_id += 1;
    };
    for _ in 0..in_flight.min(budget.count as usize) {
        send(&mut stdin, &mut sent_at);
    }
    while !sent_at.is_empty() {
        let id = answers
            .recv_timeout(Duration::from_secs(30))
            .expect("an answer within 30 s");
        let sent = sent_at.remove(&id).expect("an id we sent");
        latencies.push(sent.elapsed());
        let sent_total = latencies.len() as u64 + sent_at.len() as u64;
        if started.elapsed() < budget.time && sent_total < budget.count {
            send(&mut stdin, &mut sent_at);
        }
    }
    let elapsed = started.elapsed();
    let cpu_us = cpu_start
        .zip(super::cpu_seconds(child.id()))
        .filter(|_| !latencies.is_empty())
        .map(|(start, end)| (end - start) * 1e6 / latencies.len() as f64);
    drop(stdin);
    let _ = child.wait();
    let _ = reader.join();
    (Figures::from_latencies(latencies, elapsed), cpu_us)
}
