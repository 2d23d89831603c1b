//! The benchmarks' ceiling: a bare MCP server that answers `tools/call` of `echo` the way
//! the host does on the wire (JSON-RPC parsed, a result built and serialized), with no
//! sandbox, validation, authentication, audit or rmcp. Whatever the host reaches is
//! measured against this, in the same run, on the same machine.
//!
//! The report runs it as a process of its own: its own executable with
//! `MCP_BENCH_ROLE=ceiling-http` (axum on 127.0.0.1, port from the OS, printed as
//! `listening on http://ADDR/mcp`; POST `/mcp`, JSON answers, TCP_NODELAY) or
//! `ceiling-stdio` (newline-delimited JSON-RPC on stdin and stdout). The floor
//! ([`super::floor`]) serves the same way, with a sandboxed echo behind each call.

use axum::Router;
use axum::body::Bytes;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::post;
use axum::serve::ListenerExt;
use serde_json::{Value, json};
use std::future::Future;
use std::io::{BufRead, Write};

/// What a `tools/call` of echo answers.
pub enum Echo<'a> {
    /// The call's `message` argument (the ceiling).
    Argument,
    /// This text (the plugin's answer, in the floor).
    Text(&'a str),
}

/// The answer to one JSON-RPC message, if it is a request.
pub fn answer(request: &Value, echo: Echo) -> Option<Value> {
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
            let message = match echo {
                Echo::Argument => request["params"]["arguments"]["message"]
                    .as_str()
                    .unwrap_or_default(),
                Echo::Text(text) => text,
            };
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
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(serve_http(|request| async move {
            answer(&request, Echo::Argument)
        }))
}

/// Serves `POST /mcp` on 127.0.0.1 (a port from the OS, printed), answering each
/// JSON-RPC message with `answer`'s value (202 when it has none), until killed.
pub async fn serve_http<F, Fut>(answer: F) -> std::io::Result<()>
where
    F: Fn(Value) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Option<Value>> + Send,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("listening on http://{}/mcp", listener.local_addr()?);
    std::io::stdout().flush()?;
    let app = Router::new().route(
        "/mcp",
        post(move |body: Bytes| async move {
            let Ok(request) = serde_json::from_slice::<Value>(&body) else {
                return axum::http::StatusCode::BAD_REQUEST.into_response();
            };
            match answer(request).await {
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
        if let Some(response) = answer(&request, Echo::Argument) {
            serde_json::to_writer(&mut stdout, &response)?;
            stdout.write_all(b"\n")?;
            stdout.flush()?;
        }
    }
    Ok(())
}

/// A bare HTTP server (the ceiling or the floor) running as a process of its own,
/// killed on drop.
pub struct Process {
    child: std::process::Child,
    addr: String,
}

impl Process {
    /// Starts this executable in `role` (an HTTP server's); waits until it listens.
    pub fn start_role(role: &str) -> Self {
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .env("MCP_BENCH_ROLE", role)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("the bench server starts");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .strip_prefix("listening on http://")
            .and_then(|rest| rest.strip_suffix("/mcp"))
            .unwrap_or_else(|| panic!("the {role} server said {line:?}"))
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
