//! `host.toml`: parsed with serde (unknown keys are errors that name the key and the
//! line), checked once at start, relative paths resolved against the file's folder.
//!
//! This module only composes: each section's type and its checks belong to the module
//! that uses it (`[server]` to [`crate::server`], `[auth]` to [`crate::auth`],
//! `[secrets]` to [`crate::secrets`], `[rate_limits]` to [`crate::ratelimit`], `[audit]` to [`crate::audit`],
//! `[plugins.NAME]` to [`crate::registry`], whose grant keys belong to the sandbox's
//! capabilities).

use crate::audit::AuditConfig;
use crate::auth::config::AuthConfig;
use crate::domain::{CredentialName, PluginName};
use crate::ratelimit::RateLimitConfig;
use crate::registry::PluginConfig;
use crate::registry::rebuild::ReloadConfig;
use crate::sandbox::artifacts::CacheConfig;
use crate::sandbox::pool::PoolSize;
use crate::secrets::sources::SecretsConfig;
use crate::server::ServerConfig;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// Largest config file we read: a config is hand-written text, never megabytes.
const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

/// Why a config was refused. Every message names the file; parse errors name the key
/// and the line.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config {path}: {source}")]
    Read {
        /// The config file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is implausibly large.
    #[error("config {path} is larger than {MAX_CONFIG_BYTES} bytes")]
    TooLarge {
        /// The config file.
        path: PathBuf,
    },
    /// Not valid TOML, an unknown key, or a value of the wrong shape.
    #[error("config {path}: {message}")]
    Parse {
        /// The config file.
        path: PathBuf,
        /// What is wrong, with the line.
        message: String,
    },
    /// Well-formed, but refused by a check (a missing directory, say).
    #[error("config {path}: {message}")]
    Invalid {
        /// The config file.
        path: PathBuf,
        /// What is wrong, naming the section.
        message: String,
    },
}

/// The whole host configuration.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `[server]`: where and how to listen.
    #[serde(default)]
    pub server: ServerConfig,
    /// `[auth]`: how requests to `/mcp` are authenticated.
    #[serde(default)]
    pub auth: AuthConfig,
    /// `[rate_limits]`: how often users may call tools, and clients the server.
    #[serde(default)]
    pub rate_limits: RateLimitConfig,
    /// `[audit]`: the audit log.
    #[serde(default)]
    pub audit: AuditConfig,
    /// `[secrets]`: where credential values come from.
    #[serde(default)]
    pub secrets: SecretsConfig,
    /// `[cache]`: where compiled plugins are kept between starts.
    #[serde(default)]
    pub cache: CacheConfig,
    /// `[reload]`: whether changed files reload the plugins.
    #[serde(default)]
    pub reload: ReloadConfig,
    /// `[plugins.NAME]` tables, in name order (load order is deterministic).
    #[serde(default)]
    pub plugins: BTreeMap<PluginName, PluginConfig>,
    /// The file this config was read from (none when parsed from text).
    #[serde(skip)]
    pub source: Option<PathBuf>,
    /// The text it was parsed from, as read (a reload compares against it).
    #[serde(skip)]
    pub source_text: String,
}

impl Config {
    /// Reads, parses and checks the config at `path`; relative plugin paths are
    /// resolved against the config's folder.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let read_err = |source| ConfigError::Read {
            path: path.to_owned(),
            source,
        };
        let size = std::fs::metadata(path).map_err(read_err)?.len();
        if size > MAX_CONFIG_BYTES {
            return Err(ConfigError::TooLarge {
                path: path.to_owned(),
            });
        }
        let text = std::fs::read_to_string(path).map_err(read_err)?;
        let base = path.parent().unwrap_or(Path::new("."));
        let mut config = Self::parse(&text, base).map_err(|e| match e {
            Problem::Parse(message) => ConfigError::Parse {
                path: path.to_owned(),
                message,
            },
            Problem::Invalid(message) => ConfigError::Invalid {
                path: path.to_owned(),
                message,
            },
        })?;
        config.source = Some(path.to_owned());
        config.source_text = text;
        Ok(config)
    }

    /// How to size the instance pool for these plugins.
    pub fn pool_size(&self) -> PoolSize {
        PoolSize::for_plugins(
            self.plugins
                .values()
                .map(|p| (&p.limits, p.file_grants.len())),
        )
    }

    /// How long a POST may take: `[server] request_timeout`, else the longest plugin
    /// timeout plus a margin.
    pub fn request_timeout(&self) -> std::time::Duration {
        self.server.request_timeout.map_or_else(
            || {
                let longest = self
                    .plugins
                    .values()
                    .map(crate::registry::PluginConfig::longest_call)
                    .max()
                    .unwrap_or(crate::sandbox::limits::DEFAULT_TIMEOUT);
                longest + crate::server::REQUEST_TIMEOUT_MARGIN
            },
            |t| t.0,
        )
    }

    /// Every credential granted to a plugin: (plugin, credential).
    pub fn granted_credentials(&self) -> Vec<(PluginName, CredentialName)> {
        self.plugins
            .iter()
            .flat_map(|(plugin, p)| p.credentials.iter().map(|c| (plugin.clone(), c.clone())))
            .collect()
    }

    /// Parses config text; `base` is the folder relative paths are resolved against.
    fn parse(text: &str, base: &Path) -> Result<Self, Problem> {
        let mut config: Config =
            // The parser quotes the offending line: a URL's password in it is hidden.
            toml::from_str(text).map_err(|e| {
                Problem::Parse(crate::domain::redact_passwords(e.to_string().trim()))
            })?;
        config.server.resolve(base).map_err(Problem::Invalid)?;
        config
            .server
            .check(config.auth.mode != crate::auth::config::AuthMode::Off)
            .map_err(Problem::Invalid)?;
        if let Some(timeout) = config.server.request_timeout
            && let Some((name, plugin)) = config
                .plugins
                .iter()
                .find(|(_, p)| p.longest_call() >= timeout.0)
        {
            let longest = if plugin.client_features.is_empty() {
                format!(
                    "limits.timeout = \"{}\"",
                    crate::domain::HumanDuration(plugin.limits.timeout)
                )
            } else {
                format!(
                    "limits.timeout + limits.client_wait = \"{}\"",
                    crate::domain::HumanDuration(plugin.longest_call())
                )
            };
            return Err(Problem::Invalid(format!(
                "[server] request_timeout = \"{timeout}\" is not longer than \
                 [plugins.{name}] {longest}: its calls would be cut off"
            )));
        }
        for (name, plugin) in config.plugins.iter_mut() {
            plugin
                .resolve(base)
                .map_err(|e| Problem::Invalid(format!("[plugins.{name}] {e}")))?;
        }
        let plugins: Vec<&PluginName> = config.plugins.keys().collect();
        config
            .rate_limits
            .check(&plugins)
            .map_err(Problem::Invalid)?;
        config.audit.resolve(base).map_err(Problem::Invalid)?;
        config.cache.resolve(base);
        config.secrets.resolve(base).map_err(Problem::Invalid)?;
        config.auth.resolve(base).map_err(Problem::Invalid)?;
        Ok(config)
    }
}

enum Problem {
    Parse(String),
    Invalid(String),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::sources::{KekSource, SecretSource};

    fn parse(text: &str) -> Result<Config, String> {
        Config::parse(text, Path::new("/etc/mcp")).map_err(|e| match e {
            Problem::Parse(m) | Problem::Invalid(m) => m,
        })
    }

    #[test]
    fn minimal_plugin_resolves_relative_path() {
        let config = parse("[plugins.weather]\npath = \"plugins/weather.wasm\"\n").unwrap();
        let plugin = &config.plugins[&PluginName::try_from("weather".to_owned()).unwrap()];
        assert_eq!(plugin.path, Path::new("/etc/mcp/plugins/weather.wasm"));
        assert_eq!(
            config.server.listen,
            crate::server::ServerConfig::default().listen
        );
    }

    #[test]
    fn unknown_key_names_key_and_line() {
        let err = parse("[server]\nlisten = \"127.0.0.1:1\"\nlisen = 3\n").unwrap_err();
        assert!(err.contains("lisen"), "{err}");
        assert!(err.contains("line 3"), "{err}");
    }

    #[test]
    fn unknown_plugin_key_names_key_and_line() {
        let err = parse("[plugins.a]\npath = \"a.wasm\"\n\nallowed_hosts = []\n").unwrap_err();
        assert!(err.contains("allowed_hosts"), "{err}");
        assert!(err.contains("line 4"), "{err}");
    }

    #[test]
    fn bad_values_are_refused_with_their_line() {
        for (text, needle) in [
            ("[plugins.\"Bad Name\"]\npath = \"a.wasm\"\n", "plugin name"),
            (
                "[plugins.a]\npath = \"a.wasm\"\nsha256 = \"abc\"\n",
                "64 hex digits",
            ),
            (
                "[plugins.a]\npath = \"a.wasm\"\ncredentials = [\"bad name!\"]\n",
                "credential name",
            ),
            (
                "[plugins.a]\npath = \"a.wasm\"\nallowed_outbound_hosts = [\"*\"]\n",
                "`*`",
            ),
            ("[server]\nlisten = \"nonsense\"\n", "listen"),
            ("[reload]\nwatch = \"yes\"\n", "watch"),
            ("[reload]\nwatched = true\n", "watched"),
            (
                "[plugins.a]\npath = \"a.wasm\"\nclient_features = [\"roots\"]\n",
                "unknown variant `roots`, expected `sampling` or `elicitation`",
            ),
            (
                "[plugins.a]\npath = \"a.wasm\"\nlimits = { client_wait = \"0s\" }\n",
                "client_wait must be from 1s to 24h",
            ),
        ] {
            let err = parse(text).unwrap_err();
            assert!(err.contains(needle), "{text:?} gave {err}");
            assert!(err.contains("line"), "{text:?} gave {err}");
        }
    }

    #[test]
    fn a_request_timeout_must_outlast_a_plugin_waiting_for_its_client() {
        let text = "[server]\nrequest_timeout = \"30s\"\n[plugins.a]\npath = \"a.wasm\"\n\
                    client_features = [\"elicitation\"]\n\
                    limits = { timeout = \"10s\", client_wait = \"1m\" }\n";
        let err = parse(text).unwrap_err();
        assert!(
            err.contains("limits.timeout + limits.client_wait = \"1m 10s\""),
            "{err}"
        );
        // Without the grant, the plugin never waits for its client.
        let ungranted = text.replace("client_features = [\"elicitation\"]\n", "");
        let config = parse(&ungranted).expect("the plugin's own limit fits");
        assert_eq!(config.request_timeout(), std::time::Duration::from_secs(30));
        // Left unset, the request timeout covers the wait.
        let unset = text.replace("request_timeout = \"30s\"\n", "");
        let config = parse(&unset).expect("a config");
        assert!(config.request_timeout() > std::time::Duration::from_secs(70));
    }

    #[test]
    fn new_server_and_audit_settings_are_checked() {
        for (text, needle) in [
            (
                "[server]\nmax_concurrent_requests = 0\n",
                "max_concurrent_requests = 0",
            ),
            ("[server]\nrequest_timeout = \"10ms\"\n", "at least 1s"),
            (
                "[server]\nmetrics_listen = \"0.0.0.0:9464\"\n",
                "metrics_listen",
            ),
            ("[audit]\nfsync_interval = \"5m\"\n", "fsync_interval"),
            ("[audit]\nqueue = 0\n", "queue = 0"),
            ("[audit]\nmax_file_size = \"1KiB\"\n", "max_file_size"),
            (
                "[rate_limits.plugins.nope]\nper_tool = \"1/s\"\n",
                "[rate_limits.plugins.nope]",
            ),
        ] {
            let err = parse(text).unwrap_err();
            assert!(err.contains(needle), "{text:?} gave {err}");
        }
        let config = parse("[audit]\npath = \"logs/audit.jsonl\"\n").unwrap();
        assert_eq!(
            config.audit.path.as_deref(),
            Some(Path::new("/etc/mcp/logs/audit.jsonl"))
        );
    }

    #[test]
    fn off_loopback_needs_auth_tls_and_a_public_url() {
        let open = "[server]\nlisten = \"0.0.0.0:8080\"\n";
        let url = "public_url = \"https://mcp.example.com\"\n";
        let tls = "tls = { cert = \"c.pem\", key = \"k.pem\" }\n";
        let insecure = "allow_insecure_http = true\n";
        let off = "[auth]\nmode = \"off\"\n";
        for (text, needle) in [
            (
                format!("{open}{url}{tls}{off}"),
                "mode = \"off\" anyone there could call",
            ),
            (format!("{open}{url}"), "set [server] tls = { cert"),
            (
                format!("{open}{tls}"),
                "set [server] public_url to the https:// URL",
            ),
            (format!("{open}{url}{tls}{insecure}"), "remove one"),
            (
                format!("[server]\npublic_url = \"http://h.example\"\n{tls}"),
                "is http:// but the listener speaks TLS",
            ),
            (
                "[server]\nmetrics_listen = \"0.0.0.0:9100\"\n".to_owned(),
                "metrics_listen = \"0.0.0.0:9100\" is reachable from other machines",
            ),
            (
                "[server]\ntls = { cert = \"c\", key = \"k\", reload_interval = \"0s\" }\n"
                    .to_owned(),
                "tls.reload_interval",
            ),
            (
                "[server]\ntls = { cert = \"c\" }\n".to_owned(),
                "missing field `key`",
            ),
        ] {
            let err = parse(&text).unwrap_err();
            assert!(err.contains(needle), "{text:?} gave {err}");
        }
        let config = parse(&format!("{open}{url}{tls}")).unwrap();
        let files = config.server.tls.unwrap();
        assert_eq!(files.cert, Path::new("/etc/mcp/c.pem"));
        assert_eq!(files.key, Path::new("/etc/mcp/k.pem"));
        assert!(parse(&format!("{open}{url}{insecure}")).is_ok());
        assert!(
            parse(&format!(
                "[server]\nmetrics_listen = \"0.0.0.0:9100\"\n{tls}"
            ))
            .is_ok()
        );
    }

    #[test]
    fn env_names_are_checked() {
        let err = parse("[plugins.a]\npath = \"a.wasm\"\nenv = { \"A=B\" = \"x\" }\n").unwrap_err();
        assert!(err.contains("A=B"), "{err}");
    }

    #[test]
    fn secrets_defaults_and_paths() {
        let config = parse("").unwrap();
        assert_eq!(config.secrets.source, SecretSource::Store);
        assert_eq!(
            config.secrets.store,
            Path::new("/etc/mcp/data/secrets.json")
        );
        assert_eq!(
            config.secrets.kek_source(),
            KekSource::Env("MCP_HOST_KEK".into())
        );
        let config = parse("[secrets]\nsource = \"env\"\nkek_file = \"keys/kek\"\n").unwrap();
        assert_eq!(config.secrets.source, SecretSource::Env);
        assert_eq!(
            config.secrets.kek_source(),
            KekSource::File("/etc/mcp/keys/kek".into())
        );
    }

    #[test]
    fn bad_secrets_settings_are_refused() {
        let err = parse("[secrets]\nkek_env = \"A\"\nkek_file = \"k\"\n").unwrap_err();
        assert!(err.contains("not both"), "{err}");
        let err = parse("[secrets]\nstore = \"data/s.json\"\nkek_file = \"data/../data/kek\"\n")
            .unwrap_err();
        assert!(err.contains("same folder"), "{err}");
        let err = parse("[secrets]\nsource = \"vault\"\n").unwrap_err();
        assert!(err.contains("vault") && err.contains("line 2"), "{err}");
    }

    #[test]
    fn missing_path_is_an_error() {
        let err = parse("[plugins.a]\nenv = {}\n").unwrap_err();
        assert!(err.contains("path"), "{err}");
    }
}
