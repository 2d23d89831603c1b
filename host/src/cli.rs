//! The command line: `serve` and `plugin inspect`.

use crate::config::Config;
use crate::pipeline::Pipeline;
use crate::registry::Registry;
use crate::sandbox::Sandbox;
use crate::sandbox::credentials::EnvSource;
use crate::{inspect, server};
use anyhow::Context;
use clap::{Parser, Subcommand};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// How long in-flight requests may run after a shutdown signal.
const DRAIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

#[derive(Debug, Parser)]
#[command(
    name = "mcp-wasm-host",
    version,
    about = "MCP server for sandboxed WebAssembly tools"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Load the plugins in the config and serve MCP over Streamable HTTP at /mcp.
    Serve {
        /// The host config file.
        #[arg(long, default_value = "host.toml")]
        config: PathBuf,
    },
    /// Work with plugin files.
    Plugin {
        #[command(subcommand)]
        command: PluginCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Show a component's tools and schemas, and the imports it asks for.
    Inspect {
        /// The `.wasm` component file.
        file: PathBuf,
    },
}

/// Runs the parsed command.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve { config } => serve(config).await,
        Command::Plugin {
            command: PluginCommand::Inspect { file },
        } => {
            let report = inspect::inspect(&file).await?;
            print!("{}", report.render());
            Ok(())
        }
    }
}

async fn serve(config_path: PathBuf) -> anyhow::Result<()> {
    let config = Config::load(&config_path)?;
    let sandbox = Arc::new(Sandbox::new(Arc::new(EnvSource))?);
    let registry = Arc::new(Registry::load(&config, &sandbox).await?);
    let pipeline = Arc::new(Pipeline::new(registry, sandbox));
    let shutdown = CancellationToken::new();
    let app = server::app(pipeline, &config.server, shutdown.clone());
    let (listener, local) = server::bind(config.server.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.server.listen))?;
    // The one line on stdout: scripts and tests read the bound address from it.
    println!("mcp-wasm-host listening on http://{local}/mcp");
    std::io::stdout().flush().ok();
    tracing::info!(address = %local, "serving MCP at /mcp");
    tokio::spawn(cancel_on_signal(shutdown.clone()));
    let drained = shutdown.clone();
    tokio::select! {
        served = server::serve(listener, app, shutdown) => served?,
        () = async move {
            drained.cancelled().await;
            tokio::time::sleep(DRAIN_TIMEOUT).await;
        } => tracing::warn!("requests still running after {DRAIN_TIMEOUT:?}; stopping anyway"),
    }
    tracing::info!("stopped");
    Ok(())
}

/// Cancels `shutdown` on Ctrl-C or SIGTERM.
async fn cancel_on_signal(shutdown: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot listen for SIGTERM");
                    let _ = ctrl_c.await;
                    shutdown.cancel();
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutting down");
    shutdown.cancel();
}
