//! The `credentials` import: a plugin reads a credential only if the operator granted
//! it. Values come from a [`CredentialSource`]; they are never logged.

use super::bindings::mcp::tools::credentials::{Error as WitError, Host};
use super::state::CallState;

/// Where credential values come from.
pub trait CredentialSource: Send + Sync {
    /// The value of `name`, `Ok(None)` if the source has none.
    fn get(&self, name: &str) -> Result<Option<String>, SourceUnavailable>;
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
    fn get(&self, name: &str) -> Result<Option<String>, SourceUnavailable> {
        match std::env::var(Self::variable(name)) {
            Ok(value) => Ok(Some(value)),
            Err(std::env::VarError::NotPresent) => Ok(None),
            Err(std::env::VarError::NotUnicode(_)) => Err(SourceUnavailable),
        }
    }
}

/// The `types` interface has no functions; the linker still wants it implemented.
impl super::bindings::mcp::tools::types::Host for CallState {}

impl Host for CallState {
    fn get(&mut self, name: String) -> Result<String, WitError> {
        let grants = &self.grants;
        if !grants
            .credentials
            .iter()
            .any(|granted| granted.as_str() == name)
        {
            tracing::warn!(
                plugin = %grants.plugin,
                capability = "credential",
                target = %name.escape_debug(),
                "denied credential: not granted to this plugin"
            );
            return Err(WitError::NotGranted);
        }
        match self.credentials.get(&name) {
            Ok(Some(value)) => Ok(value),
            Ok(None) => Err(WitError::NotFound),
            Err(SourceUnavailable) => Err(WitError::Unavailable),
        }
    }
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
}
