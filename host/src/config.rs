//! `host.toml`: parsed with serde (unknown keys are errors that name the key and the
//! line), checked once at start, relative paths resolved against the file's folder.

use crate::sandbox::PoolSize;
use crate::sandbox::egress::AllowedHost;
use crate::sandbox::files::{self, FileGrant, FileGrantConfig};
use crate::sandbox::limits::Limits;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// Largest config file we read: a config is hand-written text, never megabytes.
const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config {path} is larger than {MAX_CONFIG_BYTES} bytes")]
    TooLarge { path: PathBuf },
    #[error("config {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config {path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// The whole host configuration.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub secrets: SecretsConfig,
    /// `[plugins.NAME]` tables, in name order (load order is deterministic).
    #[serde(default)]
    pub plugins: BTreeMap<PluginName, PluginConfig>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Where to listen. Port 0 picks a free port; the bound address is printed.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Canonical base URL clients use; its host is accepted in the `Host` header.
    #[serde(default)]
    pub public_url: Option<url::Url>,
    /// Browser origins allowed to call `/mcp` (e.g. `https://app.example.com:443`).
    #[serde(default)]
    pub allowed_origins: Vec<String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            public_url: None,
            allowed_origins: Vec::new(),
        }
    }
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}

/// `[secrets]`: where plugin credentials come from.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretsConfig {
    /// `store` (default): the encrypted store file; `env`: `MCP_SECRET_<NAME>` variables.
    #[serde(default)]
    pub source: SecretSource,
    /// The store file.
    #[serde(default = "default_store")]
    pub store: PathBuf,
    /// Environment variable holding the key-encryption key (default `MCP_HOST_KEK`).
    #[serde(default)]
    pub kek_env: Option<String>,
    /// File holding the key-encryption key (mode 0600, not in the store's folder).
    #[serde(default)]
    pub kek_file: Option<PathBuf>,
}

impl Default for SecretsConfig {
    fn default() -> Self {
        Self {
            source: SecretSource::default(),
            store: default_store(),
            kek_env: None,
            kek_file: None,
        }
    }
}

fn default_store() -> PathBuf {
    PathBuf::from("data/secrets.json")
}

/// Where the KEK comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KekSource {
    Env(String),
    File(PathBuf),
}

impl SecretsConfig {
    /// The configured KEK source (`MCP_HOST_KEK` unless told otherwise).
    pub fn kek_source(&self) -> KekSource {
        match (&self.kek_file, &self.kek_env) {
            (Some(file), _) => KekSource::File(file.clone()),
            (None, Some(var)) => KekSource::Env(var.clone()),
            (None, None) => KekSource::Env("MCP_HOST_KEK".to_owned()),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SecretSource {
    #[default]
    Store,
    Env,
}

/// One `[plugins.NAME]` table: the component and exactly what it is granted.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginConfig {
    /// The `.wasm` component file.
    pub path: PathBuf,
    /// Optional pin: the file's SHA-256 in hex. A mismatch refuses the plugin.
    #[serde(default)]
    pub sha256: Option<Sha256Pin>,
    /// The plugin's whole environment (nothing is inherited from the host).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Credential names the plugin may read through the `credentials` import.
    #[serde(default)]
    pub credentials: Vec<CredentialName>,
    /// `scheme://host[:port]` entries the plugin may send HTTP requests to.
    #[serde(default)]
    pub allowed_outbound_hosts: Vec<AllowedHost>,
    /// Memory, time, concurrency and output limits (defaults for what is not set).
    #[serde(default)]
    pub limits: Limits,
    /// Directories the plugin may read (`ro`) or read and write (`rw`).
    #[serde(default)]
    pub files: Vec<FileGrantConfig>,
    /// `files`, checked and canonicalized when the config is loaded.
    #[serde(skip)]
    pub file_grants: Vec<FileGrant>,
}

/// A plugin's name in the config: 1-64 of `a-z 0-9 _ -`, used in logs and errors.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(try_from = "String")]
pub struct PluginName(String);

impl TryFrom<String> for PluginName {
    type Error = String;
    fn try_from(name: String) -> Result<Self, String> {
        let ok = (1..=64).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if ok {
            Ok(Self(name))
        } else {
            Err(format!(
                "plugin name `{name}` must be 1-64 characters of a-z, 0-9, `_` and `-`"
            ))
        }
    }
}

impl PluginName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for PluginName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A credential name: 1-128 of `A-Z a-z 0-9 _ - .`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(try_from = "String")]
pub struct CredentialName(String);

impl TryFrom<String> for CredentialName {
    type Error = String;
    fn try_from(name: String) -> Result<Self, String> {
        let ok = (1..=128).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
        if ok {
            Ok(Self(name))
        } else {
            Err(format!(
                "credential name `{name}` must be 1-128 characters of A-Z, a-z, 0-9, `_`, `-` and `.`"
            ))
        }
    }
}

impl CredentialName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A SHA-256 digest written as 64 hex digits.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Sha256Pin(pub [u8; 32]);

impl TryFrom<String> for Sha256Pin {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        let mut digest = [0u8; 32];
        hex::decode_to_slice(text.trim(), &mut digest)
            .map_err(|_| format!("sha256 `{text}` must be 64 hex digits"))?;
        Ok(Self(digest))
    }
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
        Self::parse(&text, base).map_err(|e| match e {
            Problem::Parse(message) => ConfigError::Parse {
                path: path.to_owned(),
                message,
            },
            Problem::Invalid(message) => ConfigError::Invalid {
                path: path.to_owned(),
                message,
            },
        })
    }

    /// How to size the instance pool: every plugin's concurrency, the largest memory.
    pub fn pool_size(&self) -> PoolSize {
        let concurrency = self
            .plugins
            .values()
            .map(|p| p.limits.max_concurrency)
            .fold(0u32, u32::saturating_add);
        let memory = self.plugins.values().map(|p| p.limits.memory).max();
        PoolSize::new(concurrency, memory.unwrap_or_default())
    }

    /// Parses config text; `base` is the folder relative paths are resolved against.
    fn parse(text: &str, base: &Path) -> Result<Self, Problem> {
        let mut config: Config =
            toml::from_str(text).map_err(|e| Problem::Parse(e.to_string().trim().to_owned()))?;
        config.check()?;
        for (name, plugin) in config.plugins.iter_mut() {
            plugin.path = base.join(&plugin.path);
            plugin.file_grants = files::check(&plugin.files, base)
                .map_err(|e| Problem::Invalid(format!("[plugins.{name}] {e}")))?;
        }
        let secrets = &mut config.secrets;
        secrets.store = base.join(&secrets.store);
        if let Some(file) = &mut secrets.kek_file {
            *file = base.join(&*file);
            let store_folder = secrets.store.parent().map(normalize);
            if file.parent().map(normalize) == store_folder {
                return Err(Problem::Invalid(format!(
                    "[secrets] kek_file = \"{}\" is in the same folder as the store; keep \
                     the key away from what it protects",
                    file.display()
                )));
            }
        }
        Ok(config)
    }

    fn check(&self) -> Result<(), Problem> {
        let listen = self.server.listen;
        if !listen.ip().is_loopback() {
            return Err(Problem::Invalid(format!(
                "[server] listen = \"{listen}\": only loopback addresses are allowed until \
                 TLS and authentication are configured; use 127.0.0.1 or [::1]"
            )));
        }
        if self.secrets.kek_env.is_some() && self.secrets.kek_file.is_some() {
            return Err(Problem::Invalid(
                "[secrets] set kek_env or kek_file, not both".to_owned(),
            ));
        }
        if let Some(url) = &self.server.public_url
            && (!matches!(url.scheme(), "http" | "https") || url.host_str().is_none())
        {
            return Err(Problem::Invalid(format!(
                "[server] public_url = \"{url}\" must be an http:// or https:// URL with a host"
            )));
        }
        for (name, plugin) in &self.plugins {
            for key in plugin.env.keys() {
                let ok = !key.is_empty()
                    && !key.contains('=')
                    && !key.contains('\0')
                    && key.bytes().all(|b| b.is_ascii_graphic());
                if !ok {
                    return Err(Problem::Invalid(format!(
                        "[plugins.{name}] env: variable name `{key}` must be printable ASCII \
                         without `=`"
                    )));
                }
            }
            if plugin.env.values().any(|v| v.contains('\0')) {
                return Err(Problem::Invalid(format!(
                    "[plugins.{name}] env: values must not contain NUL"
                )));
            }
        }
        Ok(())
    }
}

/// `path` with `.` and `..` components resolved lexically (no file system access).
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

enum Problem {
    Parse(String),
    Invalid(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, String> {
        Config::parse(text, Path::new("/etc/mcp")).map_err(|e| match e {
            Problem::Parse(m) | Problem::Invalid(m) => m,
        })
    }

    #[test]
    fn minimal_plugin_resolves_relative_path() {
        let config = parse("[plugins.weather]\npath = \"plugins/weather.wasm\"\n").unwrap();
        let plugin = &config.plugins[&PluginName("weather".into())];
        assert_eq!(plugin.path, Path::new("/etc/mcp/plugins/weather.wasm"));
        assert_eq!(config.server.listen, default_listen());
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
        ] {
            let err = parse(text).unwrap_err();
            assert!(err.contains(needle), "{text:?} gave {err}");
            assert!(err.contains("line"), "{text:?} gave {err}");
        }
    }

    #[test]
    fn off_loopback_listen_is_refused() {
        let err = parse("[server]\nlisten = \"0.0.0.0:8080\"\n").unwrap_err();
        assert!(err.contains("loopback"), "{err}");
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
