//! Growth: what the host's speed and memory do as it carries more. The same
//! everything-on host as the HTTP rows, [`CLIENTS`] clients calling echo, with 1, 10
//! and 100 plugins loaded (the others are builds of the fixture plugin with tools of
//! their own names); with arguments of 100 B, 10 KB and 1 MB; and its resident memory
//! after 1,000 and after 100,000 calls.

use super::oha::{self, Budget, Figures, Oha};
use super::{FullHost, MEASURE_FOR, print_row, rss_mib};
use crate::common::{plugin, toml_path};

/// Concurrent clients in every growth row.
const CLIENTS: usize = 16;
/// Plugins loaded, per row.
const PLUGINS: [usize; 3] = [1, 10, 100];
/// Message sizes, per row.
const SIZES: [(usize, &str); 3] = [(100, "100 B"), (10_000, "10 KB"), (1_000_000, "1 MB")];
/// Calls before the first and the second memory reading.
const RSS_AFTER: [u64; 2] = [1_000, 100_000];

/// Prints the growth rows (measured with `oha`, or a smoke run without it).
pub async fn report(oha: Option<&Oha>) {
    println!("\ngrowth: everything on, audit fsync = interval, {CLIENTS} clients calling echo");
    println!(
        "{:<34} {:>8} {:>11} {:>9} {:>9} {:>10} {:>9}",
        "", "clients", "calls/s", "p50 us", "p99 us", "vs 1st row", "RSS MiB"
    );
    let plugins: &[usize] = if oha.is_some() {
        &PLUGINS
    } else {
        &PLUGINS[..2]
    };
    let mut rows = Rows::default();
    for &count in plugins {
        let bench = FullHost::start_with("interval", |dir| fixtures(dir, count - 1)).await;
        let figures = load(oha, &bench, &message_of("hello"), "hello").await;
        let label = format!("{count} plugin{} loaded", if count == 1 { "" } else { "s" });
        rows.print(&label, figures, &bench);
    }

    let bench = FullHost::start("interval").await;
    let mut rows = Rows::default();
    for (size, label) in SIZES {
        let text = "x".repeat(size);
        let figures = load(oha, &bench, &message_of(&text), &text).await;
        rows.print(&format!("arguments of {label}"), figures, &bench);
    }

    let bench = FullHost::start("interval").await;
    let mut readings = Vec::new();
    let mut done = 0;
    for calls in RSS_AFTER {
        match oha {
            Some(oha) => {
                oha.run_body(
                    &bench.host.mcp_url(),
                    Some(&bench.token),
                    CLIENTS,
                    Budget::Count(calls - done),
                    super::CALL,
                );
            }
            None => {
                oha::smoke(&bench.host.mcp_url(), Some(&bench.token), 4).await;
            }
        }
        done = calls;
        readings.push((calls, rss_mib(bench.host.pid()).unwrap_or(0.0)));
    }
    let [(few, before), (many, after)] = readings[..] else {
        unreachable!("two readings")
    };
    println!(
        "resident memory after {few} calls: {before:.1} MiB; after {many}: {after:.1} MiB \
         ({:+.1}%){}",
        100.0 * (after - before) / before,
        if oha.is_none() {
            " (smoke run: 20 calls each)"
        } else {
            ""
        }
    );
}

/// Rows of one series, each compared with the series' first.
#[derive(Default)]
struct Rows {
    first: Option<Figures>,
}

impl Rows {
    fn print(&mut self, label: &str, figures: Figures, bench: &FullHost) {
        let rss = rss_mib(bench.host.pid());
        print_row(label, CLIENTS, &figures, self.first.as_ref(), rss);
        self.first.get_or_insert(figures);
    }
}

/// One row's load: `oha` for [`MEASURE_FOR`], or a few checked calls.
async fn load(oha: Option<&Oha>, bench: &FullHost, body: &str, text: &str) -> Figures {
    let url = bench.host.mcp_url();
    match oha {
        Some(oha) => oha.run_body(
            &url,
            Some(&bench.token),
            CLIENTS,
            Budget::Time(MEASURE_FOR),
            body,
        ),
        None => oha::smoke_body(&url, Some(&bench.token), CLIENTS, body, text).await,
    }
}

/// A stateless `tools/call` of echo with `text` as its message.
fn message_of(text: &str) -> String {
    let mut call: serde_json::Value = serde_json::from_str(super::CALL).unwrap();
    call["params"]["arguments"]["message"] = text.into();
    call.to_string()
}

/// `count` fixture plugins, each offering one tool of its own name, compiled once into
/// a cache in `dir`.
fn fixtures(dir: &std::path::Path, count: usize) -> String {
    let mut config = format!("[cache]\ndir = {}\n", toml_path(&dir.join("cache")));
    for i in 0..count {
        config.push_str(&format!(
            "[plugins.fixture{i}]\npath = {}\n\
             env = {{ FIXTURE_TOOLS = '[{{\"name\":\"tool{i}\",\"input_schema\":{{\"type\":\"object\"}}}}]' }}\n",
            toml_path(&plugin("fixture"))
        ));
    }
    config
}
