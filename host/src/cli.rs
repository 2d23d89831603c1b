//! The command line: `serve`, `plugin inspect`, `keygen` and `secrets`.

use crate::config::Config;
use crate::pipeline::Pipeline;
use crate::registry::Registry;
use crate::sandbox::Sandbox;
use crate::sandbox::credentials;
use crate::secrets::{SecretStore, kek};
use crate::{fd_limit, inspect, server};
use anyhow::Context;
use clap::{Parser, Subcommand};
use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use zeroize::Zeroizing;

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
    /// Print a new random key-encryption key (base64 of 32 bytes) for the secret store.
    Keygen,
    /// Manage the encrypted credential store named in the config's `[secrets]`.
    Secrets {
        /// The host config file.
        #[arg(long, default_value = "host.toml", global = true)]
        config: PathBuf,
        #[command(subcommand)]
        command: SecretsCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum SecretsCommand {
    /// Store a secret; its value is read from standard input (never from arguments).
    Set {
        /// Credential name, as plugins ask for it (e.g. `weather-api-key`).
        name: String,
    },
    /// List secret names and dates (never values).
    List,
    /// Remove a secret.
    Rm { name: String },
    /// Re-wrap every data key under a new key-encryption key, in one atomic write.
    RotateKek {
        /// Environment variable holding the new KEK.
        #[arg(
            long,
            conflicts_with = "new_kek_file",
            required_unless_present = "new_kek_file"
        )]
        new_kek_env: Option<String>,
        /// File holding the new KEK (mode 0600).
        #[arg(long)]
        new_kek_file: Option<PathBuf>,
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
        Command::Keygen => {
            println!("{}", kek::Kek::generate().as_str());
            Ok(())
        }
        Command::Secrets { config, command } => secrets_command(&config, command),
    }
}

/// Largest value `secrets set` reads from standard input.
const MAX_STDIN_VALUE: u64 = crate::secrets::MAX_VALUE_BYTES as u64 + 2;

fn secrets_command(config_path: &Path, command: SecretsCommand) -> anyhow::Result<()> {
    let config = Config::load(config_path)?;
    let store = &config.secrets.store;
    let kek = || credentials::load_kek(&config.secrets.kek_source());
    match command {
        SecretsCommand::Set { name } => {
            let kek = kek()?;
            let mut value = Zeroizing::new(Vec::new());
            if std::io::stdin().is_terminal() {
                eprintln!("Enter the value of `{name}`, then press Ctrl-D:");
            }
            std::io::stdin()
                .take(MAX_STDIN_VALUE)
                .read_to_end(&mut value)
                .context("cannot read the value from standard input")?;
            // One trailing newline is the shell's (`echo`), not the value's.
            if value.last() == Some(&b'\n') {
                value.pop();
                if value.last() == Some(&b'\r') {
                    value.pop();
                }
            }
            SecretStore::set(store, &kek, &name, &value)
                .with_context(|| format!("cannot store `{name}`"))?;
            eprintln!("stored `{name}` in {}", store.display());
        }
        SecretsCommand::List => {
            let listed = SecretStore::open(store, kek()?)?.list();
            if listed.is_empty() {
                eprintln!("no secrets in {}", store.display());
            }
            for row in listed {
                println!(
                    "{}\tcreated {}\tupdated {}",
                    row.name, row.created, row.updated
                );
            }
        }
        SecretsCommand::Rm { name } => {
            SecretStore::remove(store, &name)?;
            eprintln!("removed `{name}` from {}", store.display());
        }
        SecretsCommand::RotateKek {
            new_kek_env,
            new_kek_file,
        } => {
            let new = match (new_kek_env, new_kek_file) {
                (_, Some(file)) => kek::Kek::from_file(&file)?,
                (Some(var), None) => kek::Kek::from_env(&var)?,
                (None, None) => anyhow::bail!("give --new-kek-env or --new-kek-file"),
            };
            let old = kek()?;
            if old.id() == new.id() {
                anyhow::bail!("the new KEK is the one the store already uses");
            }
            let count = SecretStore::rotate_kek(store, &old, &new)?;
            eprintln!(
                "re-wrapped {count} secret(s) in {} under KEK {}; update the config's KEK \
                 source before the next start",
                store.display(),
                new.id()
            );
        }
    }
    Ok(())
}

async fn serve(config_path: PathBuf) -> anyhow::Result<()> {
    let config = Config::load(&config_path)?;
    fd_limit::prepare(&config);
    let credentials = credentials::from_config(&config)?;
    let sandbox = Arc::new(Sandbox::new(credentials, config.pool_size())?);
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
