//! The `mcp-wasm-host` binary: parses the command line, sets up logging (stderr) and
//! runs the command; errors are printed as one readable message.

use clap::Parser;
use mcp_wasm_host::cli::{self, Cli, LogFormat};
use mcp_wasm_host::log_lines;
use std::io::IsTerminal;
use std::process::ExitCode;
use tracing_subscriber::EnvFilter;

/// The allocator: a call allocates and frees many small buffers on two worker threads,
/// where mimalloc spends less of the host's CPU than glibc's malloc.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Log filter when `RUST_LOG` is unset: our own events, and only rmcp's warnings (it
/// logs every session at info).
const DEFAULT_LOG: &str = "info,rmcp=warn";

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_LOG));
    // Lines are formatted on the thread that logs and written by one thread of their
    // own, in batches: a busy host writes many lines per syscall, and no call waits
    // for stderr. Nothing is dropped (a full queue makes the logger wait).
    let (writer, queued_lines) = match log_lines::to(std::io::stderr()) {
        Ok(lines) => lines,
        Err(error) => {
            eprintln!("error: cannot start the log writer thread: {error}");
            return ExitCode::FAILURE;
        }
    };
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    match cli.log_format {
        LogFormat::Text => logs.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => logs.json().with_current_span(true).init(),
    }
    let outcome = run(cli);
    // Every line logged is on stderr before the last word.
    drop(queued_lines);
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the command on a runtime that is gone (its tasks ended) when this returns.
fn run(cli: Cli) -> Result<(), String> {
    let runtime = tokio::runtime::Runtime::new()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    runtime.block_on(cli::run(cli)).map_err(|e| report(&e))
}

/// The error and its causes on one line, each cause once: most of our messages already
/// include their cause, which `{:#}` would print again.
fn report(error: &anyhow::Error) -> String {
    let mut text = error.to_string();
    for cause in error.chain().skip(1) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
    }
    text
}
