//! A plugin's environment: `env = { NAME = "value" }`, the whole of it (nothing is
//! inherited from the host). Names and values are checked when the config is parsed.

use serde::Deserialize;
use std::collections::BTreeMap;

/// The variables one plugin sees, in name order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(try_from = "BTreeMap<String, String>")]
pub struct PluginEnv(Vec<(String, String)>);

impl TryFrom<BTreeMap<String, String>> for PluginEnv {
    type Error = String;
    fn try_from(vars: BTreeMap<String, String>) -> Result<Self, String> {
        for (name, value) in &vars {
            let ok = !name.is_empty()
                && !name.contains('=')
                && name.bytes().all(|b| b.is_ascii_graphic());
            if !ok {
                return Err(format!(
                    "env: variable name `{name}` must be printable ASCII without `=`"
                ));
            }
            if value.contains('\0') {
                return Err(format!("env: the value of `{name}` must not contain NUL"));
            }
        }
        Ok(Self(vars.into_iter().collect()))
    }
}

impl PluginEnv {
    /// `(name, value)` pairs, in name order.
    pub fn vars(&self) -> &[(String, String)] {
        &self.0
    }

    /// An environment of exactly these variables (checked like the config's).
    pub fn from_pairs<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, String> {
        let vars: BTreeMap<String, String> = pairs
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        Self::try_from(vars)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_values_are_checked() {
        let env = PluginEnv::from_pairs([("B", "2"), ("A", "1")]).unwrap();
        assert_eq!(
            env.vars(),
            [
                ("A".to_owned(), "1".to_owned()),
                ("B".to_owned(), "2".to_owned())
            ]
        );
        for (name, value, needle) in [
            ("A=B", "x", "A=B"),
            ("", "x", "printable"),
            ("A B", "x", "printable"),
            ("A", "x\0y", "NUL"),
        ] {
            let err = PluginEnv::from_pairs([(name, value)]).unwrap_err();
            assert!(err.contains(needle), "{name:?}: {err}");
        }
    }
}
