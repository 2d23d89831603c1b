//! The loaded plugins and the tools they offer: each plugin file is read (and checked
//! against its pin), compiled, pre-linked and asked for its tools once; every tool's
//! schemas are checked and compiled here, so a bad plugin is refused at start.

use crate::domain::{CredentialName, PluginName, Scope, Sha256Pin};
use crate::sandbox::bindings::exports::mcp::tools::tools::Tool as WitTool;
use crate::sandbox::env::PluginEnv;
use crate::sandbox::fs::{self, FileGrant, FileGrantConfig};
use crate::sandbox::http::allowlist::AllowedHost;
use crate::sandbox::limits::Limits;
use crate::sandbox::state::Grants;
use crate::sandbox::{PreparedPlugin, Sandbox, SandboxError};
use crate::schema::CompiledSchema;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use thiserror::Error;

/// Largest component file we load: real plugins are a few MiB at most.
const MAX_COMPONENT_BYTES: u64 = 64 * 1024 * 1024;

/// Tool names: 1-128 of `A-Z a-z 0-9 _ - .` (the MCP spec's rule).
const MAX_TOOL_NAME_CHARS: usize = 128;

/// Largest tool description: it goes to the model with every `tools/list`.
const MAX_DESCRIPTION_BYTES: usize = 16 * 1024;

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
    pub env: PluginEnv,
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
    /// The scope a token needs to call each tool, by tool name.
    #[serde(default)]
    pub scopes: BTreeMap<String, Scope>,
    /// The scope a token needs to call a tool not in `scopes` (none: any valid token).
    #[serde(default)]
    pub default_scope: Option<Scope>,
}

impl PluginConfig {
    /// Resolves relative paths against `base` (the config's folder) and checks the
    /// `files` grants.
    pub fn resolve(&mut self, base: &Path) -> Result<(), String> {
        self.path = base.join(&self.path);
        self.file_grants = fs::check(&self.files, base)?;
        Ok(())
    }

    /// What this plugin is granted, as the sandbox takes it.
    pub fn grants(&self, plugin: &PluginName) -> Grants {
        Grants {
            env: self.env.clone(),
            credentials: self.credentials.clone(),
            outbound: self.allowed_outbound_hosts.clone(),
            limits: self.limits.clone(),
            files: self.file_grants.clone(),
            ..Grants::none(plugin.clone())
        }
    }
}

/// Why a plugin was refused at load. Every message names the plugin.
#[derive(Debug, Error)]
pub enum LoadError {
    /// The component file could not be read.
    #[error("plugin `{plugin}`: cannot read {path}: {source}")]
    Read {
        /// The plugin.
        plugin: PluginName,
        /// Its component file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The component file is implausibly large.
    #[error("plugin `{plugin}`: {path} is larger than {MAX_COMPONENT_BYTES} bytes")]
    TooLarge {
        /// The plugin.
        plugin: PluginName,
        /// Its component file.
        path: PathBuf,
    },
    /// The file is not the one the config pins.
    #[error(
        "plugin `{plugin}`: {path} has sha256 {actual}, but the config pins {expected}; \
         refusing to load a file that changed"
    )]
    PinMismatch {
        /// The plugin.
        plugin: PluginName,
        /// Its component file.
        path: PathBuf,
        /// The pinned digest.
        expected: String,
        /// The file's digest.
        actual: String,
    },
    /// The component could not be compiled, linked or asked for its tools.
    #[error("plugin `{plugin}`: {path}: {source}")]
    Sandbox {
        /// The plugin.
        plugin: PluginName,
        /// Its component file.
        path: PathBuf,
        /// Why.
        source: SandboxError,
    },
    /// A tool it offers is refused (a bad name or schema).
    #[error("plugin `{plugin}`: tool `{tool}`: {reason}")]
    Tool {
        /// The plugin.
        plugin: PluginName,
        /// The tool's name (cut to 129 characters).
        tool: String,
        /// What is wrong.
        reason: String,
    },
    /// `scopes` names a tool the plugin does not offer.
    #[error(
        "plugin `{plugin}`: scopes names the tool `{tool}`, which the plugin does not offer \
         (it offers: {offered})"
    )]
    UnknownScopedTool {
        /// The plugin.
        plugin: PluginName,
        /// The name in `scopes`.
        tool: String,
        /// The tools it does offer.
        offered: String,
    },
    /// Two plugins offer a tool of the same name.
    #[error("plugin `{plugin}`: tool `{tool}` is already provided by plugin `{other}`")]
    DuplicateTool {
        /// The plugin loaded second.
        plugin: PluginName,
        /// The tool.
        tool: String,
        /// The plugin that offers it already.
        other: PluginName,
    },
}

/// One loaded plugin.
pub struct LoadedPlugin {
    /// Its name in the config.
    pub name: PluginName,
    /// SHA-256 of the component file that was loaded.
    pub sha256: [u8; 32],
    /// Compiled, pre-linked, with its grants.
    pub prepared: PreparedPlugin,
}

/// One tool, ready to be listed and called.
pub struct RegisteredTool {
    /// The plugin that offers it.
    pub plugin: Arc<LoadedPlugin>,
    /// The tool as `tools/list` shows it.
    pub descriptor: rmcp::model::Tool,
    /// Its arguments' schema, compiled.
    pub input: CompiledSchema,
    /// Its structured result's schema, compiled, if it declares one.
    pub output: Option<CompiledSchema>,
    /// The scope a token needs to call it (`None`: any valid token).
    pub scope: Option<Scope>,
    /// Its input schema marks arguments that clients mirror in `Mcp-Param-*` headers
    /// (SEP-2243 `x-mcp-header`), which the server checks against the body.
    pub mirrors_params_in_headers: bool,
}

/// Every tool of every loaded plugin, by name.
#[derive(Default)]
pub struct Registry {
    tools: HashMap<String, Arc<RegisteredTool>>,
    /// Tool names in load order, so `tools/list` is stable.
    order: Vec<String>,
}

impl Registry {
    /// Loads every `[plugins.NAME]` of the config, in name order. The first plugin
    /// that cannot be loaded stops the load with an error naming it.
    pub async fn load(
        plugins: &BTreeMap<PluginName, PluginConfig>,
        sandbox: &Sandbox,
    ) -> Result<Self, LoadError> {
        let mut registry = Self::default();
        for (name, plugin_config) in plugins {
            let plugin = load_plugin(name, plugin_config, sandbox).await?;
            let tools = sandbox
                .list_tools(&plugin.prepared)
                .await
                .map_err(|source| LoadError::Sandbox {
                    plugin: name.clone(),
                    path: plugin_config.path.clone(),
                    source,
                })?;
            if tools.is_empty() {
                tracing::warn!(plugin = %name, "plugin offers no tools");
            }
            for tool in tools {
                let scope = plugin_config
                    .scopes
                    .get(&tool.name)
                    .or(plugin_config.default_scope.as_ref())
                    .cloned();
                registry.add(&plugin, tool, scope)?;
            }
            let offered = registry.tools_of(name);
            if let Some(unknown) = plugin_config
                .scopes
                .keys()
                .find(|tool| !offered.contains(&tool.as_str()))
            {
                return Err(LoadError::UnknownScopedTool {
                    plugin: name.clone(),
                    tool: unknown.clone(),
                    offered: offered.join(", "),
                });
            }
            tracing::info!(
                plugin = %name,
                tools = ?registry.tools_of(name),
                "plugin loaded"
            );
        }
        Ok(registry)
    }

    fn add(
        &mut self,
        plugin: &Arc<LoadedPlugin>,
        tool: WitTool,
        scope: Option<Scope>,
    ) -> Result<(), LoadError> {
        let refuse = |reason: String| LoadError::Tool {
            plugin: plugin.name.clone(),
            tool: tool.name.chars().take(MAX_TOOL_NAME_CHARS + 1).collect(),
            reason,
        };
        check_tool_name(&tool.name).map_err(refuse)?;
        if let Some(other) = self.tools.get(&tool.name) {
            return Err(LoadError::DuplicateTool {
                plugin: plugin.name.clone(),
                tool: tool.name,
                other: other.plugin.name.clone(),
            });
        }
        if tool.description.len() > MAX_DESCRIPTION_BYTES {
            return Err(refuse(format!(
                "description is longer than {MAX_DESCRIPTION_BYTES} bytes"
            )));
        }
        let input = CompiledSchema::compile_object_schema(&tool.input_schema)
            .map_err(|e| refuse(format!("input-schema: {e}")))?;
        let output = tool
            .output_schema
            .as_deref()
            .map(CompiledSchema::compile_object_schema)
            .transpose()
            .map_err(|e| refuse(format!("output-schema: {e}")))?;
        let mut descriptor = rmcp::model::Tool::new(
            tool.name.clone(),
            tool.description,
            Arc::new(input.json.clone()),
        );
        if let Some(title) = tool.title {
            descriptor = descriptor.with_title(title);
        }
        if let Some(output) = &output {
            descriptor = descriptor.with_raw_output_schema(Arc::new(output.json.clone()));
        }
        let mirrors_params_in_headers = annotates_header(&input.json);
        self.order.push(tool.name.clone());
        self.tools.insert(
            tool.name,
            Arc::new(RegisteredTool {
                plugin: plugin.clone(),
                descriptor,
                input,
                output,
                scope,
                mirrors_params_in_headers,
            }),
        );
        Ok(())
    }

    /// The tool called `name`, if any plugin offers it.
    pub fn tool(&self, name: &str) -> Option<&Arc<RegisteredTool>> {
        self.tools.get(name)
    }

    /// Every tool, in load order.
    pub fn tools(&self) -> impl Iterator<Item = &Arc<RegisteredTool>> {
        self.order.iter().filter_map(|name| self.tools.get(name))
    }

    /// Every scope some tool needs, sorted, each once.
    pub fn scopes(&self) -> Vec<Scope> {
        let mut scopes: Vec<Scope> = self.tools().filter_map(|t| t.scope.clone()).collect();
        scopes.sort();
        scopes.dedup();
        scopes
    }

    /// Every loaded plugin, in load order, each once.
    pub fn plugins(&self) -> Vec<Arc<LoadedPlugin>> {
        let mut plugins: Vec<Arc<LoadedPlugin>> = Vec::new();
        for tool in self.tools() {
            if !plugins.iter().any(|p| p.name == tool.plugin.name) {
                plugins.push(tool.plugin.clone());
            }
        }
        plugins
    }

    /// The names of `plugin`'s tools, in load order.
    pub fn tools_of(&self, plugin: &PluginName) -> Vec<&str> {
        self.tools()
            .filter(|t| &t.plugin.name == plugin)
            .map(|t| t.descriptor.name.as_ref())
            .collect()
    }
}

/// Reads, pins, compiles and pre-links one plugin.
async fn load_plugin(
    name: &PluginName,
    config: &PluginConfig,
    sandbox: &Sandbox,
) -> Result<Arc<LoadedPlugin>, LoadError> {
    let path = &config.path;
    let read_err = |source| LoadError::Read {
        plugin: name.clone(),
        path: path.clone(),
        source,
    };
    let size = tokio::fs::metadata(path).await.map_err(read_err)?.len();
    if size > MAX_COMPONENT_BYTES {
        return Err(LoadError::TooLarge {
            plugin: name.clone(),
            path: path.clone(),
        });
    }
    let bytes = tokio::fs::read(path).await.map_err(read_err)?;
    let actual: [u8; 32] = Sha256::digest(&bytes).into();
    if let Some(pin) = &config.sha256
        && actual != pin.0
    {
        return Err(LoadError::PinMismatch {
            plugin: name.clone(),
            path: path.clone(),
            expected: hex::encode(pin.0),
            actual: hex::encode(actual),
        });
    }
    let sandbox_err = |source| LoadError::Sandbox {
        plugin: name.clone(),
        path: path.clone(),
        source,
    };
    let component = sandbox.compile(bytes).await.map_err(sandbox_err)?;
    let grants = Arc::new(config.grants(name));
    let prepared = sandbox.prepare(&component, grants).map_err(sandbox_err)?;
    Ok(Arc::new(LoadedPlugin {
        name: name.clone(),
        sha256: actual,
        prepared,
    }))
}

fn check_tool_name(name: &str) -> Result<(), String> {
    let ok = (1..=MAX_TOOL_NAME_CHARS).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "name must be 1-{MAX_TOOL_NAME_CHARS} characters of A-Z, a-z, 0-9, `_`, `-` and `.`"
        ))
    }
}

/// Whether a schema has an `x-mcp-header` on a property reached from its root through
/// `properties` alone (where SEP-2243 looks for them).
fn annotates_header(schema: &serde_json::Map<String, serde_json::Value>) -> bool {
    let Some(serde_json::Value::Object(properties)) = schema.get("properties") else {
        return false;
    };
    properties.values().any(|property| {
        property.as_object().is_some_and(|property| {
            property.contains_key("x-mcp-header") || annotates_header(property)
        })
    })
}

#[cfg(test)]
mod tests {
    use super::annotates_header;

    fn object(value: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn header_annotations_are_found_along_properties() {
        let plain = object(serde_json::json!({
            "type": "object",
            "properties": {"text": {"type": "string"}},
            "$defs": {"x": {"x-mcp-header": "Elsewhere"}}
        }));
        assert!(!annotates_header(&plain));
        let top = object(serde_json::json!({
            "type": "object",
            "properties": {"region": {"type": "string", "x-mcp-header": "Region"}}
        }));
        assert!(annotates_header(&top));
        let nested = object(serde_json::json!({
            "type": "object",
            "properties": {"where": {"type": "object", "properties": {
                "zone": {"type": "string", "x-mcp-header": "Zone"}
            }}}
        }));
        assert!(annotates_header(&nested));
    }
}
