//! The benchmarks' floor: the ceiling ([`super::ceiling`]) plus the one piece of work no
//! host of sandboxed tools can skip, a fresh instance of the echo plugin per `tools/call`
//! through the host's own [`Sandbox`] (its engine, pooling allocator, per-call WASI
//! context and limits), freed after the answer as the host frees it. No authentication,
//! rate limits, schema, audit, log line or rmcp. What the host reaches against this is
//! what its MCP pipeline costs; what this reaches against the ceiling is what the
//! sandbox costs, on this machine, in the same run.
//!
//! Like the ceiling, it runs as this executable in a role of its own: `floor-http`
//! (axum on 127.0.0.1, port from the OS, printed as `listening on http://ADDR/mcp`) or
//! `floor-stdio` (newline-delimited JSON-RPC on a piped stdin and stdout, each call
//! answered by its own task).

use super::ceiling::{self, Echo};
use mcp_wasm_host::domain::PluginName;
use mcp_wasm_host::sandbox::bindings::mcp::tools::types::Content;
use mcp_wasm_host::sandbox::pool::PoolSize;
use mcp_wasm_host::sandbox::state::{CallUses, Grants};
use mcp_wasm_host::sandbox::{PreparedPlugin, Sandbox};
use mcp_wasm_host::secrets::sources::EnvSource;
use serde_json::Value;
use std::io::Write;
use std::os::fd::AsFd;
use std::sync::Arc;
use tokio::io::AsyncBufReadExt;

/// The echo plugin, ready to instantiate.
struct Plugin {
    sandbox: Sandbox,
    echo: PreparedPlugin,
}

impl Plugin {
    /// Compiles and links the echo plugin with nothing granted.
    async fn load() -> Arc<Self> {
        let sandbox =
            Sandbox::new(Arc::new(EnvSource), PoolSize::default()).expect("the sandbox starts");
        let bytes = std::fs::read(test_artifacts::plugin("echo")).expect("the echo plugin");
        let component = sandbox.compile(bytes).await.expect("echo compiles");
        let grants = Arc::new(Grants::none(
            PluginName::try_from("echo".to_owned()).unwrap(),
        ));
        let echo = sandbox.prepare(&component, grants).expect("echo links");
        Arc::new(Self { sandbox, echo })
    }

    /// The echo tool's text for `arguments`, from a fresh instance, freed on a task of
    /// its own once the answer is built.
    async fn call(&self, arguments: &Value) -> String {
        let arguments = arguments.to_string();
        let (answer, spent) = self
            .sandbox
            .call_tool(&self.echo, "echo", &arguments, None, CallUses::shared())
            .await;
        tokio::spawn(async move { drop(spent) });
        let answer = answer
            .expect("the sandbox runs echo")
            .expect("echo answers");
        match answer.content.into_iter().next() {
            Some(Content::Text(text)) => text,
            other => panic!("echo answered {other:?}"),
        }
    }
}

/// The answer to one JSON-RPC message, if it is a request; a `tools/call` runs echo.
async fn answer(plugin: &Plugin, request: &Value) -> Option<Value> {
    if request["method"] != "tools/call" {
        return ceiling::answer(request, Echo::Argument);
    }
    let text = plugin.call(&request["params"]["arguments"]).await;
    ceiling::answer(request, Echo::Text(&text))
}

/// Serves HTTP until killed.
pub fn http() -> std::io::Result<()> {
    runtime()?.block_on(async {
        let plugin = Plugin::load().await;
        ceiling::serve_http(move |request| {
            let plugin = plugin.clone();
            async move { answer(&plugin, &request).await }
        })
        .await
    })
}

/// Serves stdin until it closes and every call read is answered.
pub fn stdio() -> std::io::Result<()> {
    // On a worker: the thread that blocks on the runtime is not one of its workers,
    // and every call it spawned would wake one.
    let runtime = runtime()?;
    let serving = runtime.spawn(async {
        let plugin = Plugin::load().await;
        // Read by the reactor: tokio's own stdin hands each read to a blocking thread.
        let stdin = std::io::stdin().as_fd().try_clone_to_owned()?;
        let stdin = tokio::net::unix::pipe::Receiver::from_owned_fd(stdin)?;
        let mut lines = tokio::io::BufReader::new(stdin).lines();
        let mut calls = tokio::task::JoinSet::new();
        while let Some(line) = lines.next_line().await? {
            let Ok(request) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            let plugin = plugin.clone();
            calls.spawn(async move {
                if let Some(response) = answer(&plugin, &request).await {
                    let mut line = serde_json::to_vec(&response).expect("a value serializes");
                    line.push(b'\n');
                    let mut stdout = std::io::stdout().lock();
                    stdout.write_all(&line)?;
                    stdout.flush()?;
                }
                Ok::<_, std::io::Error>(())
            });
            while let Some(done) = calls.try_join_next() {
                done.expect("a call's task")?;
            }
        }
        while let Some(done) = calls.join_next().await {
            done.expect("a call's task")?;
        }
        Ok(())
    });
    runtime.block_on(serving).expect("the stdio floor's task")
}

/// The host's runtime: tokio's multi-threaded one, a worker per core.
fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
}
