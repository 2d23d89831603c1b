//! A registry for a changed config, built beside the one being served (hot reload):
//! a plugin whose file and table did not change is kept as it is, not compiled again;
//! one that fails to load keeps its previous version serving, if it had one.

use super::{Component, LoadError, PluginConfig, PluginTools, Registry};
use crate::domain::PluginName;
use crate::sandbox::Sandbox;
use serde::Deserialize;
use std::collections::BTreeMap;

/// What a rebuild did with one plugin.
#[derive(Debug)]
pub enum Change {
    /// New in the config; loaded.
    Added,
    /// Its file or its table changed; the new version is loaded.
    Replaced,
    /// Neither changed; the loaded plugin is kept.
    Unchanged,
    /// No longer in the config; its tools are gone.
    Removed,
    /// It could not be loaded. `kept_previous`: its previous version still serves.
    Failed {
        /// Why.
        error: LoadError,
        /// Whether the version loaded before is still served.
        kept_previous: bool,
    },
}

impl Change {
    /// The change as one word, for logs and audit records.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Added => "added",
            Self::Replaced => "replaced",
            Self::Unchanged => "unchanged",
            Self::Removed => "removed",
            Self::Failed { .. } => "failed",
        }
    }
}

/// The registry a rebuild produced, and what it did with each plugin (config order,
/// then the removed ones).
pub struct Rebuilt {
    /// The registry to serve.
    pub registry: Registry,
    /// Each plugin's change.
    pub changes: Vec<(PluginName, Change)>,
}

impl Registry {
    /// A registry for `plugins`, reusing this one's plugins where nothing changed. It
    /// never fails as a whole: each plugin's failure is reported in its [`Change`].
    pub async fn rebuild(
        &self,
        plugins: &BTreeMap<PluginName, PluginConfig>,
        sandbox: &Sandbox,
    ) -> Rebuilt {
        let mut loaded = Vec::with_capacity(plugins.len());
        for (name, config) in plugins {
            let previous = self.entry(name);
            let outcome = load_unless_unchanged(name, config, previous.as_ref(), sandbox).await;
            loaded.push((name, config, previous, outcome));
        }
        // What serves already is registered first: a new or changed plugin whose tool
        // name is taken cannot push out a plugin nobody touched.
        let unchanged_first = |(_, _, _, outcome): &(_, _, _, Result<(_, Change), _>)| {
            !matches!(outcome, Ok((_, Change::Unchanged)))
        };
        loaded.sort_by_key(unchanged_first);
        let mut registry = Self::default();
        let mut changes = Vec::with_capacity(plugins.len());
        for (name, config, previous, outcome) in loaded {
            let change =
                outcome.and_then(|(entry, change)| registry.insert(entry).map(|()| change));
            let change = change.unwrap_or_else(|error| {
                // The previous version keeps serving if the operator changed nothing it
                // runs under, and its tools do not clash with one registered before.
                let kept_previous = previous
                    .filter(|previous| may_keep(previous, config))
                    .is_some_and(|kept| registry.insert(kept).is_ok());
                Change::Failed {
                    error,
                    kept_previous,
                }
            });
            changes.push((name.clone(), change));
        }
        let order: Vec<&PluginName> = plugins.keys().collect();
        registry.sort_like(&order);
        changes.sort_by_key(|(name, _)| order.iter().position(|o| *o == name));
        for plugin in &self.plugins {
            if !plugins.contains_key(&plugin.name) {
                changes.push((plugin.name.clone(), Change::Removed));
            }
        }
        Rebuilt { registry, changes }
    }
}

/// Whether `previous` may keep serving under `config` when its new version failed:
/// only if its grants are the same and the file it runs satisfies the pin. A table
/// that narrows a grant or pins another file must not leave the old one running.
fn may_keep(previous: &PluginTools, config: &PluginConfig) -> bool {
    let old = &previous.plugin.config;
    old.same_grants(config)
        && config
            .sha256
            .as_ref()
            .is_none_or(|pin| pin.0 == previous.plugin.sha256)
}

/// The plugin as loaded before, when `previous` was loaded from this very table and
/// file; else the plugin loaded anew.
async fn load_unless_unchanged(
    name: &PluginName,
    config: &PluginConfig,
    previous: Option<&PluginTools>,
    sandbox: &Sandbox,
) -> Result<(PluginTools, Change), LoadError> {
    let component = Component::read(name, config).await?;
    match previous {
        Some(previous)
            if previous.plugin.sha256 == component.sha256 && previous.plugin.config == *config =>
        {
            Ok((previous.clone(), Change::Unchanged))
        }
        Some(_) => Ok((
            PluginTools::load(name, config, component, sandbox).await?,
            Change::Replaced,
        )),
        None => Ok((
            PluginTools::load(name, config, component, sandbox).await?,
            Change::Added,
        )),
    }
}

/// `[reload]`: whether file changes reload the plugins (SIGHUP always does).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReloadConfig {
    /// Watch the config file and every plugin file, and reload when one changes.
    #[serde(default = "watch_by_default")]
    pub watch: bool,
}

impl Default for ReloadConfig {
    fn default() -> Self {
        Self {
            watch: watch_by_default(),
        }
    }
}

fn watch_by_default() -> bool {
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::pool::PoolSize;
    use crate::secrets::sources::NoCredentials;
    use std::sync::Arc;

    /// `[plugins]` tables: echo at `echo_path`, and the fixture offering `tools`.
    fn plugins(echo_path: &str, tools: &[&str]) -> BTreeMap<PluginName, PluginConfig> {
        let tools: Vec<_> = tools
            .iter()
            .map(|name| serde_json::json!({"name": name, "input_schema": {"type": "object"}}))
            .collect();
        let mut text = format!("[echo]\npath = {echo_path:?}\n");
        if !tools.is_empty() {
            text.push_str(&format!(
                "[fixture]\npath = {:?}\nenv = {{ FIXTURE_TOOLS = {:?} }}\n",
                test_artifacts::plugin("fixture"),
                serde_json::Value::from(tools).to_string(),
            ));
        }
        toml::from_str(&text).unwrap()
    }

    fn changes(rebuilt: &Rebuilt) -> Vec<(String, &'static str)> {
        rebuilt
            .changes
            .iter()
            .map(|(name, change)| (name.to_string(), change.as_str()))
            .collect()
    }

    fn tools(registry: &Registry) -> Vec<String> {
        registry
            .tools()
            .map(|t| t.descriptor.name.to_string())
            .collect()
    }

    fn same_plugin(a: &Registry, b: &Registry, tool: &str) -> bool {
        Arc::ptr_eq(&a.tool(tool).unwrap().plugin, &b.tool(tool).unwrap().plugin)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn only_changed_plugins_are_loaded_again_and_failures_keep_what_served() {
        let sandbox = Sandbox::new(Arc::new(NoCredentials), PoolSize::default()).unwrap();
        let echo = test_artifacts::plugin("echo");
        let first = Registry::load(&plugins(echo, &["a", "b"]), &sandbox)
            .await
            .unwrap();

        // Nothing changed: the very same plugins serve on.
        let same = first.rebuild(&plugins(echo, &["a", "b"]), &sandbox).await;
        assert_eq!(
            changes(&same),
            [
                ("echo".into(), "unchanged"),
                ("fixture".into(), "unchanged")
            ]
        );
        assert!(same_plugin(&first, &same.registry, "a"));

        // The fixture's table changed (a tool fewer); echo's file is gone.
        let next = first
            .rebuild(&plugins("/nonexistent/echo.wasm", &["a"]), &sandbox)
            .await;
        assert_eq!(
            changes(&next),
            [("echo".into(), "failed"), ("fixture".into(), "replaced")]
        );
        let Change::Failed {
            error,
            kept_previous,
        } = &next.changes[0].1
        else {
            panic!("{:?}", next.changes)
        };
        assert!(kept_previous, "echo's previous version serves on");
        assert!(
            error.to_string().contains("/nonexistent/echo.wasm"),
            "{error}"
        );
        assert_eq!(tools(&next.registry), ["echo", "a"]);
        assert!(same_plugin(&first, &next.registry, "echo"));
        assert!(!same_plugin(&first, &next.registry, "a"));

        // The fixture removed; then back, offering a tool echo already offers: it
        // cannot be added, and nothing of it is.
        let removed = next.registry.rebuild(&plugins(echo, &[]), &sandbox).await;
        assert_eq!(
            changes(&removed),
            [("echo".into(), "unchanged"), ("fixture".into(), "removed")]
        );
        assert_eq!(tools(&removed.registry), ["echo"]);
        let clash = removed
            .registry
            .rebuild(&plugins(echo, &["z", "echo"]), &sandbox)
            .await;
        let Change::Failed {
            error,
            kept_previous,
        } = &clash.changes[1].1
        else {
            panic!("{:?}", clash.changes)
        };
        assert!(!kept_previous, "it had no previous version");
        assert!(
            error
                .to_string()
                .contains("already provided by plugin `echo`"),
            "{error}"
        );
        assert_eq!(tools(&clash.registry), ["echo"]);

        // The same clash from a plugin whose name sorts first: the plugin already
        // serving the name keeps it.
        let text = format!(
            "[aaa]\npath = {:?}\nenv = {{ FIXTURE_TOOLS = {:?} }}\n[echo]\npath = {echo:?}\n",
            test_artifacts::plugin("fixture"),
            r#"[{"name": "echo", "input_schema": {"type": "object"}}]"#,
        );
        let first_by_name = removed
            .registry
            .rebuild(&toml::from_str(&text).unwrap(), &sandbox)
            .await;
        assert_eq!(
            changes(&first_by_name),
            [("aaa".into(), "failed"), ("echo".into(), "unchanged")]
        );
        assert!(same_plugin(
            &removed.registry,
            &first_by_name.registry,
            "echo"
        ));

        // A failing new version under narrower grants does not leave the old one
        // running with the wider ones.
        let narrowed =
            "[echo]\npath = \"/nonexistent/echo.wasm\"\nlimits = { memory = \"32MiB\" }\n";
        let dropped = removed
            .registry
            .rebuild(&toml::from_str(narrowed).unwrap(), &sandbox)
            .await;
        let Change::Failed { kept_previous, .. } = &dropped.changes[0].1 else {
            panic!("{:?}", dropped.changes)
        };
        assert!(!kept_previous, "its grants changed");
        assert!(tools(&dropped.registry).is_empty());
    }
}
