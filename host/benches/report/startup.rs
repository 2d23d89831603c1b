//! Start-up: from starting the host to `/healthz` answering, with N plugins, first with
//! an empty compiled-plugin cache (every plugin compiled) and then with the cache the
//! first start filled. The plugins are copies of the fixture plugin, each with a custom
//! section of its own (distinct bytes, so distinct cache entries) and tools of their
//! own names.

use crate::common::{plugin, toml_path};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long one start took, cold and warm.
pub struct Startup {
    /// Plugins loaded.
    pub plugins: usize,
    /// With an empty cache.
    pub cold: Duration,
    /// With the cache the cold start filled.
    pub warm: Duration,
}

/// Starts the host twice on `plugins` plugins sharing one cache folder.
pub fn measure(plugins: usize) -> Startup {
    let dir = tempfile::tempdir().unwrap();
    let fixture = std::fs::read(plugin("fixture")).unwrap();
    let mut config = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n[auth]\nmode = \"off\"\n[cache]\ndir = {}\n",
        toml_path(&dir.path().join("cache"))
    );
    for i in 0..plugins {
        let path = dir.path().join(format!("copy{i}.wasm"));
        std::fs::write(&path, with_custom_section(&fixture, &format!("copy-{i}"))).unwrap();
        config.push_str(&format!(
            "[plugins.copy{i}]\npath = {}\nenv = {{ FIXTURE_TOOLS = '[{{\"name\":\"tool{i}\",\"input_schema\":{{\"type\":\"object\"}}}}]' }}\n",
            toml_path(&path)
        ));
    }
    let config_path = dir.path().join("host.toml");
    std::fs::write(&config_path, config).unwrap();
    let cold = time_to_healthz(&config_path);
    let warm = time_to_healthz(&config_path);
    let cached = std::fs::read_dir(dir.path().join("cache")).unwrap().count();
    assert_eq!(cached, plugins, "one cache entry per plugin");
    Startup {
        plugins,
        cold,
        warm,
    }
}

/// `wasm` with a custom section named `name` appended (component custom sections have
/// id 0 and are ignored when the component runs).
fn with_custom_section(wasm: &[u8], name: &str) -> Vec<u8> {
    let mut section = Vec::new();
    leb128(&mut section, name.len());
    section.extend_from_slice(name.as_bytes());
    let mut out = wasm.to_vec();
    out.push(0);
    leb128(&mut out, section.len());
    out.extend_from_slice(&section);
    out
}

fn leb128(out: &mut Vec<u8>, mut value: usize) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// Starts the host on `config`, waits for `/healthz` to answer `ok`, stops it.
fn time_to_healthz(config: &Path) -> Duration {
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_mcp-wasm-host"))
        .args(["serve", "--config"])
        .arg(config)
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the host starts");
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let url = line
        .split_whitespace()
        .find(|word| word.starts_with("http://"))
        .unwrap_or_else(|| panic!("the host printed no address: {line:?}"))
        .trim_end_matches("/mcp");
    let address = url.trim_start_matches("http://");
    let elapsed = loop {
        if healthz(address) {
            break started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "/healthz did not answer"
        );
        std::thread::sleep(Duration::from_millis(1));
    };
    let _ = child.kill();
    let _ = child.wait();
    elapsed
}

/// Whether `GET /healthz` at `address` answers 200 `ok` (a blocking HTTP/1.1 request,
/// so no client runtime's start-up is counted).
fn healthz(address: &str) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(address) else {
        return false;
    };
    let request = format!("GET /healthz HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer.starts_with("HTTP/1.1 200") && answer.ends_with("ok\n")
}
