//! The benchmarks' ceiling: a bare MCP server that answers `tools/call` of `echo` the way
//! the host does on the wire (JSON-RPC parsed, a result built and serialized), with no
//! sandbox, validation, authentication, audit or rmcp. Whatever the host reaches is
//! measured against this, in the same run, on the same machine.
//!
//! The report runs it as a process of its own: its own executable with
//! `MCP_BENCH_ROLE=ceiling-http` (axum on 127.0.0.1, port from the OS, printed as
//! `listening on http://ADDR/mcp`; POST `/mcp`, JSON answers, TCP_NODELAY) or
//! `ceiling-stdio` (newline-delimited JSON-RPC on stdin and stdout).

use axum::Router;
use axum::body::Bytes;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::post;
use axum::serve::ListenerExt;
use serde_json::{Value, json};
use std::io::{BufRead, Write};

/// The answer to one JSON-RPC message, if it is a request.
fn answer(request: &Value) -> Option<Value> {
    let id = request.get("id")?.clone();
    let result = match request["method"].as_str() {
        Some("initialize") => json!({
            "protocolVersion": request["params"]["protocolVersion"],
            "capabilities": {"tools": {}},
            "serverInfo": {"name": "ceiling", "version": "1"},
        }),
        Some("tools/list") => json!({"tools": [{
            "name": "echo",
            "inputSchema": {"type": "object", "properties": {"message": {"type": "string"}}},
        }]}),
        Some("tools/call") => {
            let message = request["params"]["arguments"]["message"]
                .as_str()
                .unwrap_or_default();
            json!({"content": [{"type": "text", "text": message}], "isError": false})
        }
        _ => {
            return Some(json!({
                "jsonrpc": "2.0", "id": id,
                "error": {"code": -32601, "message": "method not found"},
            }));
        }
    };
    Some(json!({"jsonrpc": "2.0", "id": id, "result": result}))
}

/// Serves HTTP until killed.
pub fn http() -> std::io::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        println!("listening on http://{}/mcp", listener.local_addr()?);
        std::io::stdout().flush()?;
        let app = Router::new().route(
            "/mcp",
            post(|body: Bytes| async move {
                let Ok(request) = serde_json::from_slice::<Value>(&body) else {
                    return axum::http::StatusCode::BAD_REQUEST.into_response();
                };
                match answer(&request) {
                    Some(response) => (
                        [(header::CONTENT_TYPE, "application/json")],
                        serde_json::to_vec(&response).expect("a value serializes"),
                    )
                        .into_response(),
                    None => axum::http::StatusCode::ACCEPTED.into_response(),
                }
            }),
        );
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        axum::serve(listener, app).await
    })
}

/// Serves stdin until it closes.
pub fn stdio() -> std::io::Result<()> {
    let stdin = std::io::stdin().lock();
    let mut stdout = std::io::BufWriter::new(std::io::stdout().lock());
    let mut lines = stdin.lines();
    while let Some(line) = lines.next().transpose()? {
        let Ok(request) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        if let Some(response) = answer(&request) {
            serde_json::to_writer(&mut stdout, &response)?;
            stdout.write_all(b"\n")?;
            stdout.flush()?;
        }
    }
    Ok(())
}

/// The HTTP ceiling running as a process of its own, killed on drop.
pub struct Process {
    child: std::process::Child,
    addr: String,
}

impl Process {
    /// Starts this executable in its HTTP ceiling role; waits until it listens.
    pub fn start_http() -> Self {
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .env("MCP_BENCH_ROLE", "ceiling-http")
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("the ceiling starts");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .strip_prefix("listening on http://")
            .and_then(|rest| rest.strip_suffix("/mcp"))
            .unwrap_or_else(|| panic!("the ceiling said {line:?}"))
            .to_owned();
        Self { child, addr }
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its `/mcp` URL.
    pub fn url(&self) -> String {
        format!("http://{}/mcp", self.addr)
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
