//! `config check`: loads a config and every plugin it names as a start would, without
//! serving or writing anything, then grades the deployment against the production
//! security checklist: each item passes, warns or fails, and says how to fix it.

use crate::auth::config::AuthMode;
use crate::config::{Config, ConfigError};
use crate::registry::{LoadError, Registry};
use crate::sandbox::limits::Limits;
use crate::sandbox::{Sandbox, SandboxError};
use crate::secrets::sources::{self, KekSource, NoCredentials, SecretSource};
use crate::server::tls;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use thiserror::Error;

/// Why the config cannot be served at all (the checklist is not reached).
#[derive(Debug, Error)]
pub enum CheckError {
    /// The file is unreadable, not TOML, or has an unknown key or a bad value.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The engine could not be set up for these plugins.
    #[error("{0}")]
    Sandbox(#[from] SandboxError),
    /// A plugin does not load.
    #[error(transparent)]
    Plugin(#[from] LoadError),
    /// Well-formed, but a start would refuse it.
    #[error("config {path}: {message}")]
    Invalid {
        /// The config file.
        path: PathBuf,
        /// What is wrong, naming the section.
        message: String,
    },
}

/// How an item of the checklist stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grade {
    /// As it should be in production.
    Pass,
    /// Acceptable for some deployments; read the finding.
    Warn,
    /// Not safe to expose.
    Fail,
}

/// One finding of the checklist.
#[derive(Debug, Clone)]
pub struct Item {
    /// How it stands.
    pub grade: Grade,
    /// What was checked (`tls`, `auth`, `plugin weather`...).
    pub topic: String,
    /// What was found.
    pub finding: String,
    /// What to change, unless it passes.
    pub fix: Option<String>,
}

/// What `config check` found.
#[derive(Debug)]
pub struct Report {
    /// Each plugin and the tools it offers.
    pub plugins: Vec<(String, Vec<String>)>,
    /// The checklist, in a fixed order.
    pub items: Vec<Item>,
}

/// Loads the config at `path` and its plugins, then grades it.
pub async fn check(path: &Path) -> Result<Report, CheckError> {
    let config = Config::load(path)?;
    let invalid = |message: String| CheckError::Invalid {
        path: path.to_owned(),
        message,
    };
    if let Some(pair) = &config.server.tls {
        tls::check(pair).map_err(|e| invalid(format!("[server] tls: {e}")))?;
    }
    let sandbox = Sandbox::new(Arc::new(NoCredentials), config.pool_size())?;
    let registry = Registry::load(&config.plugins, &sandbox).await?;
    config
        .rate_limits
        .check_tools(|tool| registry.tool(tool).is_some())
        .map_err(invalid)?;
    let plugins = registry
        .plugins()
        .iter()
        .map(|plugin| {
            let tools = registry.tools_of(&plugin.name);
            let tools = tools.into_iter().map(str::to_owned).collect();
            (plugin.name.to_string(), tools)
        })
        .collect();
    Ok(Report {
        plugins,
        items: grade(&config),
    })
}

/// The checklist for a loaded config.
pub fn grade(config: &Config) -> Vec<Item> {
    let mut items = vec![transport(config), authentication(config)];
    items.extend(key_encryption_key(config));
    items.extend(credentials(config));
    items.extend(metrics(config));
    for (name, plugin) in &config.plugins {
        items.push(grants(name.as_str(), plugin));
        items.push(limits(name.as_str(), &plugin.limits));
    }
    items.push(rate_limits(config));
    items.push(audit(config));
    items
}

fn item(grade: Grade, topic: &str, finding: String, fix: Option<&str>) -> Item {
    Item {
        grade,
        topic: topic.to_owned(),
        finding,
        fix: fix.map(str::to_owned),
    }
}

/// TLS: on the listener, at a proxy in front, or not needed on loopback.
fn transport(config: &Config) -> Item {
    let server = &config.server;
    let https_url = server
        .public_url
        .as_ref()
        .is_some_and(|url| url.scheme() == "https");
    if let Some(pair) = &server.tls {
        return item(
            Grade::Pass,
            "tls",
            format!("HTTPS on {} with {}", server.listen, pair.cert.display()),
            None,
        );
    }
    if server.allow_insecure_http {
        return if https_url {
            item(
                Grade::Pass,
                "tls",
                "TLS ends at the proxy in front (public_url is https)".to_owned(),
                None,
            )
        } else {
            item(
                Grade::Fail,
                "tls",
                format!(
                    "plain HTTP on {} and public_url is not https: tokens cross the network \
                     in clear",
                    server.listen
                ),
                Some(
                    "terminate TLS at the proxy and set [server] public_url = \"https://...\", \
                     or set [server] tls = { cert = \"...\", key = \"...\" }",
                ),
            )
        };
    }
    item(
        Grade::Warn,
        "tls",
        format!(
            "plain HTTP on loopback ({}): only clients on this machine can connect",
            server.listen
        ),
        Some(
            "to serve other machines, set [server] tls = { cert = \"...\", key = \"...\" } and \
             public_url = \"https://...\"",
        ),
    )
}

/// Who may call tools.
fn authentication(config: &Config) -> Item {
    match config.auth.mode {
        AuthMode::Embedded => item(
            Grade::Pass,
            "auth",
            "access tokens from the embedded authorization server (OAuth 2.1, PKCE)".to_owned(),
            None,
        ),
        AuthMode::External => item(
            Grade::Pass,
            "auth",
            format!(
                "access tokens from {}",
                config
                    .auth
                    .issuer
                    .as_deref()
                    .unwrap_or("the identity provider")
            ),
            None,
        ),
        AuthMode::Off => item(
            Grade::Fail,
            "auth",
            "authentication is off: anyone who reaches the listener calls every tool".to_owned(),
            Some(
                "set [auth] mode = \"embedded\" (the default), or \"external\" with issuer = \
                 \"https://your-idp\"",
            ),
        ),
    }
}

/// Where the key that encrypts credentials and signing keys comes from, when one is
/// needed.
fn key_encryption_key(config: &Config) -> Option<Item> {
    let store_used = config.secrets.source == SecretSource::Store
        && config.plugins.values().any(|p| !p.credentials.is_empty());
    let embedded = config.auth.mode == AuthMode::Embedded;
    if !store_used && !embedded {
        return None;
    }
    Some(match config.secrets.kek_source() {
        KekSource::Env(var) => item(
            Grade::Warn,
            "kek",
            format!(
                "the key-encryption key comes from the environment variable {var}{}: other \
                 processes of the same user can read a process's environment",
                if std::env::var_os(&var).is_some() {
                    ""
                } else {
                    " (not set in this shell)"
                }
            ),
            Some(
                "keep it in a file only the host's user can read: [secrets] kek_file = \
                 \"/etc/mcp-wasm-host/kek\" (mode 0600)",
            ),
        ),
        KekSource::File(path) => kek_file(&path),
    })
}

/// Whether every credential granted to a plugin has a value a start can read.
fn credentials(config: &Config) -> Option<Item> {
    let granted = config.granted_credentials();
    if granted.is_empty() {
        return None;
    }
    let fix = "store each granted credential: `mcp-wasm-host secrets set NAME` (or set its \
               MCP_SECRET_ variable with [secrets] source = \"env\")";
    let source = match sources::from_config(&config.secrets, &granted) {
        Ok(source) => source,
        Err(error) => {
            return Some(item(
                Grade::Fail,
                "credentials",
                error.to_string(),
                Some(fix),
            ));
        }
    };
    let mut missing = Vec::new();
    for (plugin, name) in &granted {
        match source.get(name.as_str()) {
            Ok(Some(_)) => {}
            Ok(None) => missing.push(format!(
                "{name} (plugin {plugin}): {}",
                source.describe(name.as_str())
            )),
            Err(_) => {
                return Some(item(
                    Grade::Fail,
                    "credentials",
                    format!("the credential source cannot be read right now ({name})"),
                    Some(fix),
                ));
            }
        }
    }
    Some(if missing.is_empty() {
        item(
            Grade::Pass,
            "credentials",
            format!("{} granted, each with a value", granted.len()),
            None,
        )
    } else {
        item(
            Grade::Warn,
            "credentials",
            format!("granted without a value: {}", missing.join("; ")),
            Some(fix),
        )
    })
}

fn kek_file(path: &Path) -> Item {
    let shown = path.display();
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(error) => {
            return item(
                Grade::Fail,
                "kek",
                format!("kek_file {shown} cannot be read: {error}"),
                Some("create it with `mcp-wasm-host keygen > FILE` and `chmod 600 FILE`"),
            );
        }
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let mode = meta.mode() & 0o777;
        if mode & 0o077 != 0 {
            return item(
                Grade::Fail,
                "kek",
                format!("kek_file {shown} has mode {mode:o}: other users can read it"),
                Some("chmod 600 the file"),
            );
        }
        if meta.uid() != rustix::process::geteuid().as_raw() {
            return item(
                Grade::Warn,
                "kek",
                format!(
                    "kek_file {shown} belongs to another user (uid {})",
                    meta.uid()
                ),
                Some("chown it to the user the host runs as"),
            );
        }
    }
    #[cfg(not(unix))]
    let _ = meta;
    item(
        Grade::Pass,
        "kek",
        format!("key-encryption key in {shown}, readable by its owner only"),
        None,
    )
}

/// `/metrics` names every tool and plugin and counts their calls: it belongs on a
/// listener of its own when the main one faces the network.
fn metrics(config: &Config) -> Option<Item> {
    let server = &config.server;
    if server.listen.ip().is_loopback() {
        return None;
    }
    Some(match server.metrics_listen {
        Some(addr) => item(
            Grade::Pass,
            "metrics",
            format!("/metrics on its own listener, {addr}"),
            None,
        ),
        None => item(
            Grade::Warn,
            "metrics",
            format!(
                "/metrics is served without authentication on the main listener, {}",
                server.listen
            ),
            Some("set [server] metrics_listen = \"127.0.0.1:9090\" (or a private address)"),
        ),
    })
}

/// What a plugin may reach beyond its own memory.
fn grants(name: &str, plugin: &crate::registry::PluginConfig) -> Item {
    let topic = format!("plugin {name}");
    let mut wide = Vec::new();
    for grant in &plugin.file_grants {
        if grant.mode == crate::sandbox::fs::Mode::Rw {
            wide.push(format!(
                "writes {} (as {})",
                grant.host.display(),
                grant.guest
            ));
        }
    }
    for host in &plugin.allowed_outbound_hosts {
        if host.is_wildcard() {
            wide.push(format!("reaches every host under {host}"));
        } else if host.is_plain_http() {
            wide.push(format!("sends unencrypted requests to {host}"));
        }
    }
    let reach = format!(
        "{} director{}, {} outbound host{}, {} credential{}",
        plugin.file_grants.len(),
        if plugin.file_grants.len() == 1 {
            "y"
        } else {
            "ies"
        },
        plugin.allowed_outbound_hosts.len(),
        plural(plugin.allowed_outbound_hosts.len()),
        plugin.credentials.len(),
        plural(plugin.credentials.len()),
    );
    if wide.is_empty() {
        item(Grade::Pass, &topic, format!("narrow grants: {reach}"), None)
    } else {
        item(
            Grade::Warn,
            &topic,
            format!("wide grants: {}", wide.join("; ")),
            Some(
                "grant `ro` unless the plugin must write, the narrowest folder, and exact \
                 https hosts",
            ),
        )
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// Limits sized for the plugin, or the host's defaults.
fn limits(name: &str, limits: &Limits) -> Item {
    let topic = format!("limits {name}");
    let summary = format!(
        "memory {} MiB, timeout {:?}, {} calls at once",
        limits.memory / (1024 * 1024),
        limits.timeout,
        limits.max_concurrency
    );
    if *limits == Limits::default() {
        item(
            Grade::Warn,
            &topic,
            format!("every limit at the host's default ({summary})"),
            Some(&format!(
                "size them for the tool: [plugins.{name}] limits = {{ memory = \"32MiB\", \
                 timeout = \"5s\", max_concurrency = 8 }}"
            )),
        )
    } else {
        item(Grade::Pass, &topic, summary, None)
    }
}

/// Budgets per user and per tool.
fn rate_limits(config: &Config) -> Item {
    let limits = &config.rate_limits;
    let set: Vec<String> = [
        ("per_user", &limits.per_user),
        ("per_tool", &limits.per_tool),
        ("per_user_tool", &limits.per_user_tool),
    ]
    .into_iter()
    .filter_map(|(key, rate)| rate.as_ref().map(|rate| format!("{key} = {rate}")))
    .collect();
    if limits.per_user.is_some() {
        item(Grade::Pass, "rate limits", set.join(", "), None)
    } else {
        item(
            Grade::Warn,
            "rate limits",
            if set.is_empty() {
                "no budgets: one user (or a leaked token) may call as fast as the host answers"
                    .to_owned()
            } else {
                format!("no per-user budget ({})", set.join(", "))
            },
            Some("set [rate_limits] per_user = \"120/min\""),
        )
    }
}

/// The record of every call.
fn audit(config: &Config) -> Item {
    let audit = &config.audit;
    match &audit.path {
        None => item(
            Grade::Fail,
            "audit",
            "no audit log: calls are recorded in the host log only".to_owned(),
            Some("set [audit] path = \"data/audit.jsonl\""),
        ),
        Some(path) if audit.fsync == crate::audit::Fsync::Interval => item(
            Grade::Warn,
            "audit",
            format!(
                "{} with fsync = \"interval\": a crash may lose the last {} of records",
                path.display(),
                audit.fsync_interval
            ),
            Some("set [audit] fsync = \"always\" (calls share syncs under load)"),
        ),
        Some(path) => item(
            Grade::Pass,
            "audit",
            format!("{}, each record on disk before its answer", path.display()),
            None,
        ),
    }
}

impl Report {
    /// How many items fail.
    pub fn failures(&self) -> usize {
        self.items.iter().filter(|i| i.grade == Grade::Fail).count()
    }

    /// The human-readable report.
    pub fn render(&self) -> String {
        let mut out = String::from("config ok\n");
        for (plugin, tools) in &self.plugins {
            let _ = writeln!(out, "plugin {plugin} loads: {}", tools.join(", "));
        }
        let _ = writeln!(out, "\nproduction checklist:");
        for item in &self.items {
            let grade = match item.grade {
                Grade::Pass => "pass",
                Grade::Warn => "WARN",
                Grade::Fail => "FAIL",
            };
            let _ = writeln!(out, "  {grade}  {:<16} {}", item.topic, item.finding);
            if let Some(fix) = &item.fix {
                let _ = writeln!(out, "        {:<16} fix: {fix}", "");
            }
        }
        let warnings = self.items.iter().filter(|i| i.grade == Grade::Warn).count();
        let _ = writeln!(
            out,
            "\n{} pass, {warnings} warn, {} fail",
            self.items.len() - warnings - self.failures(),
            self.failures()
        );
        out
    }
}
