//! The `credentials` import: a plugin reads a credential only if the operator granted
//! it. Values come from the host's [`CredentialSource`] (see [`crate::secrets`]); every
//! request is recorded by name and outcome for the call's record, and values are never
//! logged.

use super::bindings::mcp::tools::credentials::{Error as WitError, Host};
use super::state::CallState;
use crate::secrets::sources::SourceUnavailable;

/// Credential requests of a call with the same name and outcome: which name, what
/// the plugin got (never the value), how often. The audit log carries these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialUse {
    /// The name asked for (cut to 128 characters).
    pub name: String,
    /// What the plugin got.
    pub outcome: CredentialOutcome,
    /// How many requests had this name and outcome.
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

/// What a plugin got when it asked for a credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialOutcome {
    /// The value.
    Granted,
    /// Nothing: the operator did not grant it.
    NotGranted,
    /// Nothing: granted, but no value is set.
    NotFound,
    /// Nothing: the source could not be read.
    Unavailable,
}

impl CredentialOutcome {
    /// The outcome as the call's record writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            CredentialOutcome::Granted => "granted",
            CredentialOutcome::NotGranted => "not-granted",
            CredentialOutcome::NotFound => "not-found",
            CredentialOutcome::Unavailable => "unavailable",
        }
    }
}

/// The `types` interface has no functions; the linker still wants it implemented.
impl super::bindings::mcp::tools::types::Host for CallState {}

/// The same, for plugins of the 0.1.0 contract.
impl super::bindings::v0_1::mcp::tools::types::Host for CallState {}

/// `credentials.get` for plugins of the 0.1.0 contract: the same rules and record.
impl super::bindings::v0_1::mcp::tools::credentials::Host for CallState {
    fn get(
        &mut self,
        name: String,
    ) -> Result<String, super::bindings::v0_1::mcp::tools::credentials::Error> {
        use super::bindings::v0_1::mcp::tools::credentials::Error as Old;
        Host::get(self, name).map_err(|error| match error {
            WitError::NotGranted => Old::NotGranted,
            WitError::NotFound => Old::NotFound,
            WitError::Unavailable => Old::Unavailable,
        })
    }
}

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
        let mut uses = self.uses.lock().unwrap_or_else(|e| e.into_inner());
        record(&mut uses.credentials, &name, outcome);
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
}
