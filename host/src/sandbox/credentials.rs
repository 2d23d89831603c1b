//! The `credentials` import: a plugin reads a credential only if the operator granted
//! it. Values come from a [`CredentialSource`] (the encrypted store, or the host's
//! environment); every access is recorded by name, and values are never logged.

use super::bindings::mcp::tools::credentials::{Error as WitError, Host};
use super::state::CallState;
use crate::config::{Config, KekSource, SecretSource};
use crate::secrets::kek::{Kek, KekError};
use crate::secrets::{SecretStore, SecretsError};
use std::sync::Arc;
use zeroize::Zeroizing;

/// Where credential values come from.
pub trait CredentialSource: Send + Sync {
    /// The value of `name`, `Ok(None)` if the source has none.
    fn get(&self, name: &str) -> Result<Option<Zeroizing<String>>, SourceUnavailable>;

    /// Where a missing credential should be put, for error messages.
    fn describe(&self, name: &str) -> String;
}

/// Credential requests of a call with the same name and outcome: which name, what
/// the plugin got (never the value), how often. The audit log carries these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialUse {
    pub name: String,
    pub outcome: CredentialOutcome,
    pub count: u32,
}

impl std::fmt::Display for CredentialUse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.name, self.outcome.as_str())?;
        if self.count > 1 {
            write!(f, "*{}", self.count)?;
        }
        Ok(())
    }
}

/// Where requests for names past [`MAX_RECORDED_NAMES`] are counted.
const OTHER_NAMES: &str = "(other names)";

/// Adds one request to a call's record. Granted names are few (the grants) and always
/// recorded; other names are chosen by the plugin, so at most [`MAX_RECORDED_NAMES`]
/// of them are kept apart and the rest are counted under [`OTHER_NAMES`].
pub fn record(uses: &mut Vec<CredentialUse>, name: &str, outcome: CredentialOutcome) {
    let name: String = name.chars().take(MAX_RECORDED_NAME).collect();
    let distinct = uses.len() < MAX_RECORDED_NAMES || outcome == CredentialOutcome::Granted;
    let name = if distinct || uses.iter().any(|u| u.name == name) {
        name
    } else {
        OTHER_NAMES.to_owned()
    };
    match uses
        .iter_mut()
        .find(|u| u.outcome == outcome && u.name == name)
    {
        Some(known) => known.count = known.count.saturating_add(1),
        None => uses.push(CredentialUse {
            name,
            outcome,
            count: 1,
        }),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialOutcome {
    Granted,
    NotGranted,
    NotFound,
    Unavailable,
}

impl CredentialOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            CredentialOutcome::Granted => "granted",
            CredentialOutcome::NotGranted => "not-granted",
            CredentialOutcome::NotFound => "not-found",
            CredentialOutcome::Unavailable => "unavailable",
        }
    }
}

/// The source could not be read (a store that failed to decrypt, say).
#[derive(Debug)]
pub struct SourceUnavailable;

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

/// Credentials from the encrypted store, decrypted on each use. The file is looked at on each read, so a
/// `secrets set` or `rm` while the host runs takes effect on the next call; a new
/// version that cannot be used is refused (logged once) and the loaded one stays.
pub struct StoreSource(std::sync::Mutex<SecretStore>);

impl StoreSource {
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
    #[error(transparent)]
    Kek(#[from] KekError),
    #[error(transparent)]
    Store(#[from] SecretsError),
    #[error("plugin `{plugin}`: credential `{name}`: {reason}")]
    Unusable {
        plugin: String,
        name: String,
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

/// The credential source the config asks for, after checking that every credential
/// granted to a plugin exists and can be read. The store and its KEK are needed only
/// when some plugin is granted a credential.
pub fn from_config(config: &Config) -> Result<Arc<dyn CredentialSource>, CredentialSetupError> {
    let granted: Vec<(&str, &str)> = config
        .plugins
        .iter()
        .flat_map(|(plugin, p)| {
            p.credentials
                .iter()
                .map(move |c| (plugin.as_str(), c.as_str()))
        })
        .collect();
    let source: Arc<dyn CredentialSource> = match config.secrets.source {
        SecretSource::Env => Arc::new(EnvSource),
        SecretSource::Store if granted.is_empty() => Arc::new(EnvSource),
        SecretSource::Store => {
            let kek = load_kek(&config.secrets.kek_source())?;
            let store = SecretStore::open(&config.secrets.store, kek)?;
            for &(plugin, name) in &granted {
                store
                    .get(name)
                    .map_err(|e| CredentialSetupError::Unusable {
                        plugin: plugin.to_owned(),
                        name: name.to_owned(),
                        reason: e.to_string(),
                    })?;
            }
            Arc::new(StoreSource::new(store))
        }
    };
    for &(plugin, name) in &granted {
        let unusable = |reason: String| CredentialSetupError::Unusable {
            plugin: plugin.to_owned(),
            name: name.to_owned(),
            reason,
        };
        match source.get(name) {
            Ok(Some(_)) => {}
            Ok(None) => return Err(unusable(source.describe(name))),
            Err(SourceUnavailable) => return Err(unusable("it cannot be read".to_owned())),
        }
    }
    Ok(source)
}

/// The `types` interface has no functions; the linker still wants it implemented.
impl super::bindings::mcp::tools::types::Host for CallState {}

/// Names longer than this are cut in the access record: a plugin chooses the name.
const MAX_RECORDED_NAME: usize = 128;

/// Distinct names recorded per call before the rest are counted together.
const MAX_RECORDED_NAMES: usize = 32;

impl Host for CallState {
    fn get(&mut self, name: String) -> Result<String, WitError> {
        let granted = self.grants.credentials.iter().any(|g| g.as_str() == name);
        let answer = if !granted {
            self.denials.refuse(
                "credential",
                &name,
                "credential: not granted to this plugin",
            );
            Err(WitError::NotGranted)
        } else {
            match self.credentials.get(&name) {
                // The guest needs its own copy; ours is zeroized when dropped here.
                Ok(Some(value)) => Ok(value.as_str().to_owned()),
                Ok(None) => Err(WitError::NotFound),
                Err(SourceUnavailable) => Err(WitError::Unavailable),
            }
        };
        let outcome = match &answer {
            Ok(_) => CredentialOutcome::Granted,
            Err(WitError::NotGranted) => CredentialOutcome::NotGranted,
            Err(WitError::NotFound) => CredentialOutcome::NotFound,
            Err(WitError::Unavailable) => CredentialOutcome::Unavailable,
        };
        record(&mut self.credential_uses, &name, outcome);
        answer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_count_repeats_and_never_lose_a_granted_read() {
        let mut uses = Vec::new();
        record(&mut uses, "key", CredentialOutcome::Granted);
        record(&mut uses, "key", CredentialOutcome::Granted);
        for i in 0..100 {
            record(
                &mut uses,
                &format!("probe-{i}"),
                CredentialOutcome::NotGranted,
            );
        }
        // A granted read after the flood is still recorded by name.
        record(&mut uses, "late", CredentialOutcome::Granted);
        // A name already recorded keeps its own entry.
        record(&mut uses, "probe-3", CredentialOutcome::NotGranted);
        assert_eq!(uses.len(), MAX_RECORDED_NAMES + 2);
        let shown: Vec<String> = uses.iter().map(ToString::to_string).collect();
        assert_eq!(shown[0], "key:granted*2");
        assert!(
            shown.contains(&"probe-3:not-granted*2".to_owned()),
            "{shown:?}"
        );
        assert!(
            shown.contains(&"(other names):not-granted*69".to_owned()),
            "{shown:?}"
        );
        assert_eq!(shown.last().unwrap(), "late:granted");
    }

    #[test]
    fn env_variable_names() {
        assert_eq!(
            EnvSource::variable("weather-api-key"),
            "MCP_SECRET_WEATHER_API_KEY"
        );
        assert_eq!(EnvSource::variable("a.b_c"), "MCP_SECRET_A_B_C");
    }
}
