//! HTTPS: the official Python SDK walks the OAuth flow over TLS with a certificate from a
//! test CA; a renewed certificate is served without a restart (a broken one is refused
//! and the old one kept); HSTS is sent; plain HTTP on the TLS port gets no answer; an
//! unusable certificate stops the host at start with a message naming the file.

use crate::common::tls::{Leaf, TestCa};
use crate::common::{
    Host, plugin, python, sdk_client_output, start_refused, toml_path, workspace_root,
};
use std::io::{Read as _, Write as _};
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Writes `leaf` where `[server] tls` will look; returns the `tls = {...}` line.
fn write_leaf(dir: &Path, leaf: &Leaf) -> String {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&key, &leaf.key_pem).unwrap();
    std::fs::write(&cert, &leaf.chain_pem).unwrap();
    format!(
        "tls = {{ cert = {}, key = {}, reload_interval = \"1s\" }}\n",
        toml_path(&cert),
        toml_path(&key)
    )
}

/// A TLS host with authentication off and the echo plugin.
fn start_echo_host(dir: &Path, leaf: &Leaf) -> Host {
    let tls = write_leaf(dir, leaf);
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n{tls}[plugins.echo]\npath = {}\n",
        toml_path(&plugin("echo"))
    );
    Host::start(&config, &[])
}

/// Handshakes with `addr` trusting `ca`, sends `GET path` and returns the certificate
/// the server presented and the raw response.
fn get(ca: &TestCa, addr: SocketAddr, path: &str) -> std::io::Result<(Vec<u8>, String)> {
    let config = Arc::new(ca.client_config());
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let mut connection = rustls::ClientConnection::new(config, name).unwrap();
    let mut tcp = std::net::TcpStream::connect(addr)?;
    tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut stream = rustls::Stream::new(&mut connection, &mut tcp);
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let presented = connection.peer_certificates().unwrap()[0].to_vec();
    Ok((presented, response))
}

/// Waits until `check` holds, for at most 20 s (the host checks its files every second).
fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check() {
        assert!(Instant::now() < deadline, "never happened: {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_renewed_certificate_is_served_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let first = ca.leaf();
    let host = start_echo_host(dir.path(), &first);

    let (presented, response) = get(&ca, host.addr, "/healthz").unwrap();
    assert_eq!(presented, first.der);
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(
        response
            .to_ascii_lowercase()
            .contains("\r\nstrict-transport-security: max-age=31536000\r\n"),
        "{response}"
    );

    // Plain HTTP on the TLS port: no HTTP answer.
    let mut plain = std::net::TcpStream::connect(host.addr).unwrap();
    plain
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    plain
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut answer = Vec::new();
    let _ = plain.read_to_end(&mut answer);
    assert!(!answer.starts_with(b"HTTP/"), "{answer:?}");

    // A renewed certificate (new key) replaces the first for new connections.
    let second = ca.leaf();
    write_leaf(dir.path(), &second);
    eventually("the renewed certificate is served", || {
        get(&ca, host.addr, "/healthz").is_ok_and(|(presented, _)| presented == second.der)
    });
    let log = host.wait_for_log("TLS certificate reloaded", Duration::from_secs(5));
    assert!(log.contains("TLS certificate reloaded"), "{log}");

    // A broken certificate is refused, said so, and the last good one stays.
    std::fs::write(dir.path().join("cert.pem"), "not a certificate\n").unwrap();
    eventually("the broken certificate is reported", || {
        host.log()
            .contains("was not loaded; keeping the current certificate")
    });
    let (presented, response) = get(&ca, host.addr, "/healthz").unwrap();
    assert_eq!(presented, second.der);
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let log = host.log();
    assert!(log.contains("no certificate in the file"), "{log}");
    assert!(!log.contains("PRIVATE KEY"), "{log}");
}

#[test]
fn an_unusable_certificate_stops_the_host_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let (first, other) = (ca.leaf(), ca.leaf());
    let tls = write_leaf(dir.path(), &first);
    // The key of another certificate.
    std::fs::write(dir.path().join("key.pem"), &other.key_pem).unwrap();
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n{tls}[plugins.echo]\npath = {}\n",
        toml_path(&plugin("echo"))
    );
    let (status, stderr) = start_refused(&config, &[]);
    assert!(!status.success());
    assert!(
        stderr.contains("key.pem\" is not the private key of the certificate in"),
        "{stderr}"
    );
    assert!(!stderr.contains("PRIVATE KEY"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_walks_the_oauth_flow_over_https() {
    let state = crate::oauth::State::new();
    state.add_user("alice", "alice-password-1", &[]);
    let ca = TestCa::new();
    let tls = write_leaf(state.dir.path(), &ca.leaf());
    let ca_file = state.dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let config = state
        .config("scopes_supported = [\"fix:read\"]\n")
        .replacen("[server]\n", &format!("[server]\n{tls}"), 1);
    let host = Host::start(&config, &[("MCP_HOST_KEK", &state.kek)]);
    let url = format!("https://{}/mcp", host.addr);
    let seen = tokio::task::spawn_blocking(move || {
        let mut command = Command::new(python());
        command
            .arg(workspace_root().join("tests/python/oauth_client.py"))
            .args([url.as_str(), "auto", "alice", "alice-password-1"])
            // The SDK's HTTP client trusts the CA named here (and only it).
            .env("SSL_CERT_FILE", &ca_file);
        sdk_client_output(command, "python oauth client over https")
    })
    .await
    .unwrap();
    assert_eq!(seen["protocol_version"], "2026-07-28", "{seen}");
    assert_eq!(seen["first_scope"], "fix:read", "{seen}");
    assert_eq!(seen["tools"], serde_json::json!(["open", "read"]), "{seen}");
    assert_eq!(seen["read"], serde_json::json!(["first"]), "{seen}");
    // The authorization server is the same https origin, and its metadata says so.
    let addr = host.addr;
    let response = tokio::task::spawn_blocking(move || {
        get(&ca, addr, "/.well-known/oauth-authorization-server").unwrap()
    })
    .await
    .unwrap()
    .1;
    let body = response.split_once("\r\n\r\n").map_or("", |(_, body)| body);
    let metadata: serde_json::Value = serde_json::from_str(body).expect(&response);
    assert_eq!(metadata["issuer"], format!("https://{addr}"), "{metadata}");
}
