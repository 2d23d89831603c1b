//! Where credential values come from, as the config's `[secrets]` chooses: the encrypted
//! store (decrypted on each use, reloaded when the file changes) or the host's
//! environment (`MCP_SECRET_<NAME>`). At start every credential granted to a plugin is
//! looked up once, so a misconfigured deployment is caught before it serves.

use super::kek::{Kek, KekError};
use super::{SecretStore, SecretsError};
use crate::domain::{CredentialName, PluginName};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use zeroize::Zeroizing;

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
    /// What a granted credential without a value does at start: `refuse` to serve, or
    /// `warn` and serve (the plugin's reads get `not-found`). Default: `refuse` for the
    /// store, `warn` for the environment.
    #[serde(default)]
    pub missing: Option<Missing>,
}

impl Default for SecretsConfig {
    fn default() -> Self {
        Self {
            source: SecretSource::default(),
            store: default_store(),
            kek_env: None,
            kek_file: None,
            missing: None,
        }
    }
}

fn default_store() -> PathBuf {
    PathBuf::from("data/secrets.json")
}

/// Where credential values are read from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SecretSource {
    /// The encrypted store file.
    #[default]
    Store,
    /// `MCP_SECRET_<NAME>` variables of the host's environment.
    Env,
}

/// What a granted credential without a value does at start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Missing {
    /// The host refuses to start, naming the plugin and the credential.
    Refuse,
    /// The host logs a warning and serves; the plugin's reads get `not-found`.
    Warn,
}

/// Where the KEK comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KekSource {
    /// An environment variable holding the base64 key.
    Env(String),
    /// A file holding the base64 key (mode 0600).
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

    /// What a missing credential does, with the source's default filled in.
    pub fn on_missing(&self) -> Missing {
        self.missing.unwrap_or(match self.source {
            SecretSource::Store => Missing::Refuse,
            SecretSource::Env => Missing::Warn,
        })
    }

    /// Checks the section and resolves its paths against `base` (the config's folder).
    pub fn resolve(&mut self, base: &Path) -> Result<(), String> {
        if self.kek_env.is_some() && self.kek_file.is_some() {
            return Err("[secrets] set kek_env or kek_file, not both".to_owned());
        }
        self.store = base.join(&self.store);
        if let Some(file) = &mut self.kek_file {
            *file = base.join(&*file);
            let store_folder = self.store.parent().map(normalize);
            if file.parent().map(normalize) == store_folder {
                return Err(format!(
                    "[secrets] kek_file = \"{}\" is in the same folder as the store; keep \
                     the key away from what it protects",
                    file.display()
                ));
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

/// Where credential values come from.
pub trait CredentialSource: Send + Sync {
    /// The value of `name`, `Ok(None)` if the source has none.
    fn get(&self, name: &str) -> Result<Option<Zeroizing<String>>, SourceUnavailable>;

    /// Where a missing credential should be put, for error messages.
    fn describe(&self, name: &str) -> String;
}

/// The source could not be read (a store that failed to decrypt, say).
#[derive(Debug)]
pub struct SourceUnavailable;

/// A source that has nothing: for plugins run with no grants (`plugin inspect`).
#[derive(Debug, Default, Clone, Copy)]
pub struct NoCredentials;

impl CredentialSource for NoCredentials {
    fn get(&self, _name: &str) -> Result<Option<Zeroizing<String>>, SourceUnavailable> {
        Ok(None)
    }

    fn describe(&self, _name: &str) -> String {
        "no credentials are available here".to_owned()
    }
}

/// Credentials from the host's environment: `weather-api-key` is read from
/// `MCP_SECRET_WEATHER_API_KEY` (upper-cased, `-` and `.` become `_`).
#[derive(Debug, Default, Clone, Copy)]
pub struct EnvSource;

impl EnvSource {
    /// The environment variable that holds credential `name`.
    pub fn variable(name: &str) -> String {
        let mut var = String::from("MCP_SECRET_");
        var.extend(name.chars().map(|c| match c {
            '-' | '.' => '_',
            c => c.to_ascii_uppercase(),
        }));
        var
    }
}

impl CredentialSource for EnvSource {
    fn get(&self, name: &str) -> Result<Option<Zeroizing<String>>, SourceUnavailable> {
        match std::env::var(Self::variable(name)) {
            Ok(value) if value.is_empty() => Ok(None),
            Ok(value) => Ok(Some(Zeroizing::new(value))),
            Err(std::env::VarError::NotPresent) => Ok(None),
            Err(std::env::VarError::NotUnicode(_)) => Err(SourceUnavailable),
        }
    }

    fn describe(&self, name: &str) -> String {
        format!(
            "the environment variable {} is not set",
            Self::variable(name)
        )
    }
}

/// Credentials from the encrypted store, decrypted on each use. The file is looked at
/// on each read, so a `secrets set` or `rm` while the host runs takes effect on the
/// next call; a new version that cannot be used is refused (logged once) and the
/// loaded one stays.
pub struct StoreSource(std::sync::Mutex<SecretStore>);

impl StoreSource {
    /// A source reading `store`.
    pub fn new(store: SecretStore) -> Self {
        Self(std::sync::Mutex::new(store))
    }
}

impl CredentialSource for StoreSource {
    fn get(&self, name: &str) -> Result<Option<Zeroizing<String>>, SourceUnavailable> {
        let mut store = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match store.refresh() {
            Ok(true) => tracing::info!(path = %store.path().display(), "secret store reloaded"),
            Ok(false) => {}
            Err(error) => tracing::error!(
                %error,
                "the secret store changed but cannot be used; keeping the credentials \
                 loaded before"
            ),
        }
        store.get(name).map_err(|error| {
            tracing::error!(%error, "credential store read failed");
            SourceUnavailable
        })
    }

    fn describe(&self, name: &str) -> String {
        let store = self.0.lock().unwrap_or_else(|e| e.into_inner());
        format!(
            "it is not in the secret store {}; add it with `mcp-wasm-host secrets set {name}`",
            store.path().display()
        )
    }
}

/// Why the host cannot start with its credentials.
#[derive(Debug, thiserror::Error)]
pub enum CredentialSetupError {
    /// The KEK could not be loaded.
    #[error(transparent)]
    Kek(#[from] KekError),
    /// The store could not be read or opened.
    #[error(transparent)]
    Store(#[from] SecretsError),
    /// A granted credential has no usable value.
    #[error("plugin `{plugin}`: credential `{name}`: {reason}")]
    Unusable {
        /// The plugin granted the credential.
        plugin: PluginName,
        /// The credential.
        name: CredentialName,
        /// What is wrong, and where to put the value.
        reason: String,
    },
}

/// Loads the KEK a config names.
pub fn load_kek(source: &KekSource) -> Result<Kek, KekError> {
    match source {
        KekSource::Env(var) => Kek::from_env(var),
        KekSource::File(path) => Kek::from_file(path),
    }
}

/// The credential source `config` asks for, after looking up every credential granted
/// to a plugin (`granted`: plugin and credential). A credential that exists but cannot
/// be read always refuses the start; one without a value refuses or warns as
/// `missing` says. The store and its KEK are needed only when some plugin is granted a
/// credential.
pub fn from_config(
    config: &SecretsConfig,
    granted: &[(PluginName, CredentialName)],
) -> Result<Arc<dyn CredentialSource>, CredentialSetupError> {
    let unusable = |plugin: &PluginName, name: &CredentialName, reason: String| {
        CredentialSetupError::Unusable {
            plugin: plugin.clone(),
            name: name.clone(),
            reason,
        }
    };
    let source: Arc<dyn CredentialSource> = match config.source {
        SecretSource::Env => Arc::new(EnvSource),
        SecretSource::Store if granted.is_empty() => Arc::new(NoCredentials),
        SecretSource::Store => {
            let kek = load_kek(&config.kek_source())?;
            let store = SecretStore::open(&config.store, kek)?;
            for (plugin, name) in granted {
                store
                    .get(name.as_str())
                    .map_err(|e| unusable(plugin, name, e.to_string()))?;
            }
            Arc::new(StoreSource::new(store))
        }
    };
    for (plugin, name) in granted {
        match source.get(name.as_str()) {
            Ok(Some(_)) => {}
            Ok(None) if config.on_missing() == Missing::Warn => tracing::warn!(
                plugin = %plugin,
                credential = %name,
                "credential has no value: {}; the plugin's reads of it fail until it is set",
                source.describe(name.as_str())
            ),
            Ok(None) => return Err(unusable(plugin, name, source.describe(name.as_str()))),
            Err(SourceUnavailable) => {
                return Err(unusable(plugin, name, "it cannot be read".to_owned()));
            }
        }
    }
    Ok(source)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_variable_names() {
        assert_eq!(
            EnvSource::variable("weather-api-key"),
            "MCP_SECRET_WEATHER_API_KEY"
        );
        assert_eq!(EnvSource::variable("a.b_c"), "MCP_SECRET_A_B_C");
    }

    #[test]
    fn missing_defaults_follow_the_source() {
        let mut config = SecretsConfig::default();
        assert_eq!(config.on_missing(), Missing::Refuse);
        config.source = SecretSource::Env;
        assert_eq!(config.on_missing(), Missing::Warn);
        config.missing = Some(Missing::Refuse);
        assert_eq!(config.on_missing(), Missing::Refuse);
    }

    #[test]
    fn a_missing_env_credential_warns_or_refuses_as_configured() {
        let granted = [(
            PluginName::try_from("p".to_owned()).unwrap(),
            CredentialName::try_from("sources-test-never-set".to_owned()).unwrap(),
        )];
        let mut config = SecretsConfig {
            source: SecretSource::Env,
            ..SecretsConfig::default()
        };
        let source = from_config(&config, &granted).unwrap();
        assert!(source.get("sources-test-never-set").unwrap().is_none());
        config.missing = Some(Missing::Refuse);
        let err = from_config(&config, &granted).err().unwrap().to_string();
        assert_eq!(
            err,
            "plugin `p`: credential `sources-test-never-set`: the environment variable \
             MCP_SECRET_SOURCES_TEST_NEVER_SET is not set"
        );
    }
}
