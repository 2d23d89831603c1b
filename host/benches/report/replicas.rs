//! Replicas: what sharing costs. The echo tool through the pipeline (authentication
//! off, rate limits set high, schema, audit with `fsync = "interval"`), 64 clients in
//! all: one replica with its budgets in memory, the same replica with its budgets in a
//! real Redis (one script per budget per call), and two replicas sharing that Redis,
//! each loaded by its own `oha` with half the clients (the client side spreads the
//! load, as a balancer would, without a balancer's hop in the figures).

use super::oha::{self, Figures, Oha};
use super::{MEASURE_FOR, print_row, rss_mib};
use crate::common::services::Redis;
use crate::common::{Host, plugin, toml_path};

/// Clients in every row, in all.
const CLIENTS: usize = 64;

/// A replica named `name` with its budgets in `store` (`None`: in memory).
fn replica(dir: &std::path::Path, name: &str, store: Option<&str>) -> Host {
    let store = store.map_or(String::new(), |url| format!("store = \"{url}\"\n"));
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n\
         [audit]\npath = {}\nfsync = \"interval\"\nreplica = \"{name}\"\n\
         [rate_limits]\n{store}per_user = \"1000000/s\"\nper_tool = \"1000000/s\"\n\
         per_user_tool = \"1000000/s\"\n\
         [plugins.echo]\npath = {}\nlimits = {{ max_concurrency = 64 }}\n",
        toml_path(&dir.join(format!("audit-{name}.jsonl"))),
        toml_path(&plugin("echo")),
    );
    Host::start(&config, &[("RUST_LOG", "info,rmcp=warn")])
}

/// `clients` calling each of `hosts` at once (measured with `oha`, or a smoke run):
/// calls/s summed, the slowest replica's percentiles.
async fn load(oha: Option<&Oha>, hosts: &[&Host], clients: usize) -> Figures {
    let each: Vec<Figures> = match oha {
        Some(oha) => std::thread::scope(|scope| {
            let runs: Vec<_> = hosts
                .iter()
                .map(|host| {
                    let url = host.mcp_url();
                    scope.spawn(move || oha.run(&url, None, clients, MEASURE_FOR))
                })
                .collect();
            runs.into_iter().map(|run| run.join().unwrap()).collect()
        }),
        None => {
            let mut each = Vec::new();
            for host in hosts {
                each.push(oha::smoke(&host.mcp_url(), None, clients).await);
            }
            each
        }
    };
    Figures {
        calls_per_s: each.iter().map(|f| f.calls_per_s).sum(),
        p50_us: each.iter().map(|f| f.p50_us).fold(0.0, f64::max),
        p99_us: each.iter().map(|f| f.p99_us).fold(0.0, f64::max),
        ok: each.iter().map(|f| f.ok).sum(),
    }
}

/// Prints the replica rows.
pub async fn report(oha: Option<&Oha>) {
    println!(
        "\nreplicas: echo, auth off, audit fsync = interval, {CLIENTS} clients in all \
         (RSS: the first replica)"
    );
    println!(
        "{:<34} {:>8} {:>11} {:>9} {:>9} {:>10} {:>9}",
        "", "clients", "calls/s", "p50 us", "p99 us", "vs 1st row", "RSS MiB"
    );
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start();
    let alone = replica(dir.path(), "memory", None);
    let first = load(oha, &[&alone], CLIENTS).await;
    print_row(
        "1 replica, limits in memory",
        CLIENTS,
        &first,
        None,
        rss_mib(alone.pid()),
    );
    drop(alone);
    let shared = replica(dir.path(), "redis", Some(&redis.url()));
    let figures = load(oha, &[&shared], CLIENTS).await;
    print_row(
        "1 replica, limits in Redis",
        CLIENTS,
        &figures,
        Some(&first),
        rss_mib(shared.pid()),
    );
    let second = replica(dir.path(), "redis-2", Some(&redis.url()));
    let figures = load(oha, &[&shared, &second], CLIENTS / 2).await;
    print_row(
        "2 replicas, limits in Redis",
        CLIENTS,
        &figures,
        Some(&first),
        rss_mib(shared.pid()),
    );
}
