//! The loaded plugins and the tools they offer: each plugin file is read (and checked
//! against its pin), compiled, pre-linked and asked for its tools once; every tool's
//! schemas are checked and compiled here, so a bad plugin is refused at start.
//! [`rebuild`] loads a changed config beside the registry being served (hot reload).

pub mod rebuild;

use crate::domain::{CredentialName, PluginName, Scope, Sha256Pin};
use crate::sandbox::bindings::exports::mcp::tools::tools::Tool as WitTool;
use crate::sandbox::client::ClientFeature;
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
#[derive(Debug, Clone, PartialEq, Deserialize)]
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
    /// What the plugin may ask of the MCP client: `sampling`, `elicitation`.
    #[serde(default)]
    pub client_features: Vec<ClientFeature>,
}

impl PluginConfig {
    /// Resolves relative paths against `base` (the config's folder) and checks the
    /// `files` grants.
    pub fn resolve(&mut self, base: &Path) -> Result<(), String> {
        self.path = base.join(&self.path);
        self.file_grants = fs::check(&self.files, base)?;
        Ok(())
    }

    /// Whether `other` grants exactly what this table grants (the environment,
    /// credentials, hosts, limits and directories).
    pub fn same_grants(&self, other: &PluginConfig) -> bool {
        self.env == other.env
            && self.credentials == other.credentials
            && self.allowed_outbound_hosts == other.allowed_outbound_hosts
            && self.limits == other.limits
            && self.file_grants == other.file_grants
            && self.client_features == other.client_features
    }

    /// The longest one call may take: its time limit, plus its budget for waiting on
    /// the client when it may ask the client anything.
    pub fn longest_call(&self) -> std::time::Duration {
        if self.client_features.is_empty() {
            self.limits.timeout
        } else {
            self.limits.timeout + self.limits.client_wait
        }
    }

    /// What this plugin is granted, as the sandbox takes it.
    pub fn grants(&self, plugin: &PluginName) -> Grants {
        Grants {
            env: self.env.clone(),
            credentials: self.credentials.clone(),
            outbound: self.allowed_outbound_hosts.clone(),
            limits: self.limits.clone(),
            files: self.file_grants.clone(),
            client_features: self.client_features.clone(),
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
    /// Its memory limit is larger than the instance slots the host started with (the
    /// pool is sized once, from the config at start).
    #[error(
        "plugin `{plugin}`: limits.memory is {wanted_mib} MiB, more than the {slot_mib} MiB \
         each instance slot got when the host started; restart the host to apply it"
    )]
    MemoryOverPool {
        /// The plugin.
        plugin: PluginName,
        /// Its `limits.memory`, in MiB (rounded up).
        wanted_mib: u64,
        /// The slot size, in MiB.
        slot_mib: u64,
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
    /// The same, in hex, as every call's audit record names it (encoded once, here).
    pub sha256_hex: String,
    /// Its table in the config it was loaded from (a reload keeps the plugin as it is
    /// when neither this nor the file changed).
    pub config: PluginConfig,
    /// Compiled, pre-linked, with its grants.
    pub prepared: PreparedPlugin,
    /// Its tools' call metrics.
    pub metrics: crate::telemetry::PluginMetrics,
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
    /// The plugins, in load order (those offering no tool too).
    plugins: Vec<Arc<LoadedPlugin>>,
}

/// One plugin and its tools, ready to be added to a registry.
#[derive(Clone)]
struct PluginTools {
    plugin: Arc<LoadedPlugin>,
    tools: Vec<Arc<RegisteredTool>>,
}

impl Registry {
    /// Loads every `[plugins.NAME]` of the config, in name order. The first plugin
    /// that cannot be loaded stops the load with an error naming it.
    pub async fn load(
        plugins: &BTreeMap<PluginName, PluginConfig>,
        sandbox: &Sandbox,
    ) -> Result<Self, LoadError> {
        let mut registry = Self::default();
        for (name, config) in plugins {
            let component = Component::read(name, config).await?;
            registry.insert(PluginTools::load(name, config, component, sandbox).await?)?;
            tracing::info!(plugin = %name, tools = ?registry.tools_of(name), "plugin loaded");
        }
        Ok(registry)
    }

    /// Adds a plugin and all its tools, or nothing if one of its tools' names is taken.
    fn insert(&mut self, entry: PluginTools) -> Result<(), LoadError> {
        let mut names = std::collections::HashSet::new();
        for tool in &entry.tools {
            let name = tool.descriptor.name.as_ref();
            let taken = self.tools.get(name).map(|t| t.plugin.name.clone());
            if let Some(other) =
                taken.or_else(|| (!names.insert(name)).then(|| entry.plugin.name.clone()))
            {
                return Err(LoadError::DuplicateTool {
                    plugin: entry.plugin.name.clone(),
                    tool: name.to_owned(),
                    other,
                });
            }
        }
        for tool in entry.tools {
            let name = tool.descriptor.name.to_string();
            self.order.push(name.clone());
            self.tools.insert(name, tool);
        }
        self.plugins.push(entry.plugin);
        Ok(())
    }

    /// Puts the plugins, and so `tools/list`, in `order` (each plugin's tools keep
    /// their own order).
    fn sort_like(&mut self, order: &[&PluginName]) {
        let rank = |plugin: &PluginName| order.iter().position(|o| *o == plugin);
        self.plugins.sort_by_key(|p| rank(&p.name));
        let tools = &self.tools;
        self.order
            .sort_by_key(|tool| tools.get(tool).map(|t| rank(&t.plugin.name)));
    }

    /// The plugin called `name` and its tools, as loaded here.
    fn entry(&self, name: &PluginName) -> Option<PluginTools> {
        let plugin = self.plugins.iter().find(|p| &p.name == name)?.clone();
        let tools = self
            .tools()
            .filter(|t| &t.plugin.name == name)
            .cloned()
            .collect();
        Some(PluginTools { plugin, tools })
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

    /// Every loaded plugin, in load order.
    pub fn plugins(&self) -> &[Arc<LoadedPlugin>] {
        &self.plugins
    }

    /// The names of `plugin`'s tools, in load order.
    pub fn tools_of(&self, plugin: &PluginName) -> Vec<&str> {
        self.tools()
            .filter(|t| &t.plugin.name == plugin)
            .map(|t| t.descriptor.name.as_ref())
            .collect()
    }
}

/// A plugin's component file, read and checked against its pin.
struct Component {
    bytes: Vec<u8>,
    sha256: [u8; 32],
}

impl Component {
    /// Reads `config.path` (bounded in size) and checks it against the pin.
    async fn read(name: &PluginName, config: &PluginConfig) -> Result<Self, LoadError> {
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
        let sha256: [u8; 32] = Sha256::digest(&bytes).into();
        if let Some(pin) = &config.sha256
            && sha256 != pin.0
        {
            return Err(LoadError::PinMismatch {
                plugin: name.clone(),
                path: path.clone(),
                expected: hex::encode(pin.0),
                actual: hex::encode(sha256),
            });
        }
        Ok(Self { bytes, sha256 })
    }
}

impl PluginTools {
    /// Compiles and pre-links a plugin, asks it for its tools and checks them.
    async fn load(
        name: &PluginName,
        config: &PluginConfig,
        component: Component,
        sandbox: &Sandbox,
    ) -> Result<Self, LoadError> {
        let slot = sandbox.pool().max_memory;
        if config.limits.memory > slot {
            const MIB: u64 = 1024 * 1024;
            return Err(LoadError::MemoryOverPool {
                plugin: name.clone(),
                wanted_mib: config.limits.memory.div_ceil(MIB),
                slot_mib: slot / MIB,
            });
        }
        let sandbox_err = |source| LoadError::Sandbox {
            plugin: name.clone(),
            path: config.path.clone(),
            source,
        };
        let compiled = sandbox
            .compile(component.bytes)
            .await
            .map_err(sandbox_err)?;
        let grants = Arc::new(config.grants(name));
        let prepared = sandbox.prepare(&compiled, grants).map_err(sandbox_err)?;
        let plugin = Arc::new(LoadedPlugin {
            name: name.clone(),
            sha256: component.sha256,
            sha256_hex: hex::encode(component.sha256),
            config: config.clone(),
            prepared,
            metrics: crate::telemetry::PluginMetrics::new(name.as_str()),
        });
        let offered = sandbox
            .list_tools(&plugin.prepared)
            .await
            .map_err(sandbox_err)?;
        if offered.is_empty() {
            tracing::warn!(plugin = %name, "plugin offers no tools");
        }
        let mut tools = Vec::with_capacity(offered.len());
        for tool in offered {
            let scope = config
                .scopes
                .get(&tool.name)
                .or(config.default_scope.as_ref())
                .cloned();
            tools.push(Arc::new(register(&plugin, tool, scope)?));
        }
        if let Some(unknown) = config
            .scopes
            .keys()
            .find(|scoped| !tools.iter().any(|t| t.descriptor.name == scoped.as_str()))
        {
            return Err(LoadError::UnknownScopedTool {
                plugin: name.clone(),
                tool: unknown.clone(),
                offered: tools
                    .iter()
                    .map(|t| t.descriptor.name.as_ref())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        Ok(Self { plugin, tools })
    }
}

/// Checks one tool a plugin offers and compiles its schemas.
fn register(
    plugin: &Arc<LoadedPlugin>,
    tool: WitTool,
    scope: Option<Scope>,
) -> Result<RegisteredTool, LoadError> {
    let refuse = |reason: String| LoadError::Tool {
        plugin: plugin.name.clone(),
        tool: tool.name.chars().take(MAX_TOOL_NAME_CHARS + 1).collect(),
        reason,
    };
    check_tool_name(&tool.name).map_err(refuse)?;
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
    if let Some(hints) = tool.annotations {
        descriptor = descriptor.with_annotations(rmcp::model::ToolAnnotations::from_raw(
            None,
            hints.read_only,
            hints.destructive,
            hints.idempotent,
            hints.open_world,
        ));
    }
    let mirrors_params_in_headers = annotates_header(&input.json);
    Ok(RegisteredTool {
        plugin: plugin.clone(),
        descriptor,
        input,
        output,
        scope,
        mirrors_params_in_headers,
    })
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
