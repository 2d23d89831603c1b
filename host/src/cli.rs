//! The command line: parses it and dispatches to the module that does the work
//! (`serve` to [`app`], `plugin inspect` to [`inspect`], `keygen` and `secrets` to
//! [`admin`]).

use crate::app::App;
use crate::audit::AdminLog;
use crate::auth::embedded::admin as auth_admin;
use crate::checklist;
use crate::config::Config;
use crate::domain::Scope;
use crate::inspect;
use crate::scaffold;
use crate::secrets::admin;
use crate::secrets::sources::{KekSource, load_kek};
use clap::{Parser, Subcommand};
use serde_json::json;
use std::path::PathBuf;

/// The parsed command line.
#[derive(Debug, Parser)]
#[command(
    name = "mcp-wasm-host",
    version,
    about = "MCP server for sandboxed WebAssembly tools"
)]
pub struct Cli {
    /// How log lines on stderr look: `text` for people, `json` (one object per line)
    /// for log collectors.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Load the plugins in the config and serve MCP over Streamable HTTP at /mcp (or
    /// over stdin and stdout with --stdio).
    Serve {
        /// The host config file.
        #[arg(long, default_value = "host.toml")]
        config: PathBuf,
        /// Serve one local client over stdin/stdout instead of HTTP (for desktop
        /// clients that start the server themselves). Logs go to stderr.
        #[arg(long)]
        stdio: bool,
    },
    /// Work with a host config file.
    Config {
        /// What to do with it.
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Work with plugin files.
    Plugin {
        /// What to do with it.
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
        /// What to do with it.
        #[command(subcommand)]
        command: SecretsCommand,
    },
    /// Manage the users of the embedded authorization server.
    Users {
        /// The host config file.
        #[arg(long, default_value = "host.toml", global = true)]
        config: PathBuf,
        /// What to do with them.
        #[command(subcommand)]
        command: UsersCommand,
    },
    /// Work with the audit log.
    Audit {
        /// What to do with it.
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Manage the embedded authorization server.
    Auth {
        /// The host config file.
        #[arg(long, default_value = "host.toml", global = true)]
        config: PathBuf,
        /// What to do.
        #[command(subcommand)]
        command: AuthCommand,
    },
}

/// `users` subcommands.
#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Add a user who may log in to the embedded authorization server; the password is
    /// read from standard input (never from arguments).
    Add {
        /// The login name (1-64 of A-Z a-z 0-9 _ - . @).
        name: String,
        /// A scope the user may grant (repeat for several; none: any scope).
        #[arg(long = "scope")]
        scopes: Vec<Scope>,
    },
    /// List users and the scopes each may grant.
    List,
    /// Remove a user.
    Rm {
        /// The login name.
        name: String,
    },
}

/// `audit` subcommands.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check the hash chain of an audit log: the live file and the files rotated out of
    /// it, in any order. Names the first line that breaks the chain, and why.
    Verify {
        /// The log files (e.g. `data/audit.jsonl*`).
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

/// `auth` subcommands.
#[derive(Debug, Subcommand)]
pub enum AuthCommand {
    /// Make a new signing key for the embedded authorization server; the old ones stay
    /// published until the tokens they signed have expired.
    RotateKey,
}

/// `secrets` subcommands.
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
    Rm {
        /// Credential name.
        name: String,
    },
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

/// `config` subcommands.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Check a config and load every plugin it names, without serving; then print the
    /// production security checklist for that deployment. Exits non-zero when the
    /// config cannot be served or an item of the checklist fails.
    Check {
        /// The host config file.
        #[arg(long, default_value = "host.toml")]
        config: PathBuf,
    },
}

/// `plugin` subcommands.
#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Show a component's tools and schemas, and the imports it asks for.
    Inspect {
        /// The `.wasm` component file.
        file: PathBuf,
    },
    /// Write a new plugin crate on the guest SDK: one tool, its unit test, and the host
    /// config that serves it.
    New {
        /// The plugin's name, also its crate's (a-z, 0-9, `_`, `-`; a letter first).
        name: String,
        /// The folder to create it in.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        /// The guest SDK's folder (default: `plugins/sdk` of the checkout this binary
        /// was built from).
        #[arg(long)]
        sdk: Option<PathBuf>,
    },
}

/// Runs the parsed command.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve { config, stdio } => {
            let app = App::build(Config::load(&config)?).await?;
            if stdio {
                app.serve_stdio().await?;
            } else {
                app.serve_http().await?;
            }
        }
        Command::Config {
            command: ConfigCommand::Check { config },
        } => {
            let report = checklist::check(&config).await?;
            print!("{}", report.render());
            match report.failures() {
                0 => {}
                n => anyhow::bail!(
                    "{n} item{} of the production checklist fail{}",
                    if n == 1 { "" } else { "s" },
                    if n == 1 { "s" } else { "" }
                ),
            }
        }
        Command::Plugin {
            command: PluginCommand::Inspect { file },
        } => print!("{}", inspect::inspect(&file).await?.render()),
        Command::Plugin {
            command: PluginCommand::New { name, dir, sdk },
        } => {
            let sdk = sdk.unwrap_or_else(scaffold::default_sdk);
            let made = scaffold::create(&name, &dir, &sdk)?;
            let shown = made.dir.display();
            println!(
                "created {shown}\n\nnext:\n  cd {shown}\n  cargo test\n  \
                 cargo build --release --target wasm32-wasip2\n  \
                 mcp-wasm-host plugin inspect target/wasm32-wasip2/release/{}.wasm\n\n\
                 then serve it with this table in the host's config (also in \
                 host-snippet.toml):\n\n{}",
                name.replace('-', "_"),
                made.config
            );
        }
        Command::Keygen => println!("{}", admin::keygen().as_str()),
        Command::Audit {
            command: AuditCommand::Verify { files },
        } => {
            let logs = crate::audit::verify::verify_chains(&files)?;
            let several = logs.len() > 1;
            for verified in logs {
                let whose = match (&verified.chain.replica, several) {
                    (Some(replica), _) => {
                        format!("{} (replica {replica}): ", verified.log.display())
                    }
                    (None, true) => format!("{}: ", verified.log.display()),
                    (None, false) => String::new(),
                };
                let chain = &verified.chain;
                match (chain.first_seq, chain.last_seq) {
                    (Some(first), Some(last)) => println!(
                        "{whose}ok: {} records (numbers {first} to {last}) in {} files; the chain \
                         is intact",
                        chain.records, chain.files
                    ),
                    _ => println!("{whose}ok: no records in {} files", chain.files),
                }
            }
        }
        Command::Secrets { config, command } => {
            let config = Config::load(&config)?;
            let secrets = &config.secrets;
            match command {
                SecretsCommand::List => admin::list(secrets)?,
                SecretsCommand::Set { name } => {
                    let audit = AdminLog::open(&config.audit)?;
                    admin::set(secrets, &name, std::io::stdin())?;
                    audit.record("credential_set", json!({ "credential": name }))?;
                }
                SecretsCommand::Rm { name } => {
                    let audit = AdminLog::open(&config.audit)?;
                    admin::remove(secrets, &name)?;
                    audit.record("credential_removed", json!({ "credential": name }))?;
                }
                SecretsCommand::RotateKek {
                    new_kek_env,
                    new_kek_file,
                } => {
                    let new = match (new_kek_env, new_kek_file) {
                        (_, Some(file)) => KekSource::File(file),
                        (Some(var), None) => KekSource::Env(var),
                        (None, None) => anyhow::bail!("give --new-kek-env or --new-kek-file"),
                    };
                    let audit = AdminLog::open(&config.audit)?;
                    admin::rotate_kek(secrets, &new)?;
                    audit.record("kek_rotated", json!({ "store": secrets.store }))?;
                }
            }
        }
        Command::Users { config, command } => {
            let config = Config::load(&config)?;
            let embedded = &config.auth.embedded;
            match command {
                UsersCommand::List => auth_admin::list_users(embedded).await?,
                UsersCommand::Add { name, scopes } => {
                    let audit = AdminLog::open(&config.audit)?;
                    auth_admin::add_user(embedded, &name, &scopes, std::io::stdin()).await?;
                    let scopes = scopes.iter().map(ToString::to_string).collect::<Vec<_>>();
                    audit.record("user_added", json!({ "user": name, "scopes": scopes }))?;
                }
                UsersCommand::Rm { name } => {
                    let audit = AdminLog::open(&config.audit)?;
                    auth_admin::remove_user(embedded, &name).await?;
                    audit.record("user_removed", json!({ "user": name }))?;
                }
            }
        }
        Command::Auth {
            config,
            command: AuthCommand::RotateKey,
        } => {
            let config = Config::load(&config)?;
            let kek = load_kek(&config.secrets.kek_source())?;
            let audit = AdminLog::open(&config.audit)?;
            let kid = auth_admin::rotate_key(&config.auth.embedded, &kek).await?;
            audit.record("signing_key_rotated", json!({ "kid": kid }))?;
        }
    }
    Ok(())
}
