//! The loaded plugins and the tools they offer: each plugin file is read (and checked
//! against its pin), compiled, pre-linked and asked for its tools once; every tool's
//! schemas are checked and compiled here, so a bad plugin is refused at start.

use crate::config::{Config, PluginConfig, PluginName};
use crate::cooldown::Cooldown;
use crate::sandbox::bindings::exports::mcp::tools::tools::Tool as WitTool;
use crate::sandbox::state::Grants;
use crate::sandbox::{PreparedPlugin, Sandbox, SandboxError};
use crate::schema::CompiledSchema;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use thiserror::Error;
use tokio::sync::Semaphore;

/// Largest component file we load: real plugins are a few MiB at most.
const MAX_COMPONENT_BYTES: u64 = 64 * 1024 * 1024;

/// Tool names: 1-128 of `A-Z a-z 0-9 _ - .` (the MCP spec's rule).
const MAX_TOOL_NAME_CHARS: usize = 128;

/// Largest tool description: it goes to the model with every `tools/list`.
const MAX_DESCRIPTION_BYTES: usize = 16 * 1024;

/// Why a plugin was refused at load. Every message names the plugin.
#[derive(Debug, Error)]
pub enum LoadError {
    #[error("plugin `{plugin}`: cannot read {path}: {source}")]
    Read {
        plugin: PluginName,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("plugin `{plugin}`: {path} is larger than {MAX_COMPONENT_BYTES} bytes")]
    TooLarge { plugin: PluginName, path: PathBuf },
    #[error(
        "plugin `{plugin}`: {path} has sha256 {actual}, but the config pins {expected}; \
         refusing to load a file that changed"
    )]
    PinMismatch {
        plugin: PluginName,
        path: PathBuf,
        expected: String,
        actual: String,
    },
    #[error("plugin `{plugin}`: {path}: {source}")]
    Sandbox {
        plugin: PluginName,
        path: PathBuf,
        source: SandboxError,
    },
    #[error("plugin `{plugin}`: tool `{tool}`: {reason}")]
    Tool {
        plugin: PluginName,
        tool: String,
        reason: String,
    },
    #[error("plugin `{plugin}`: tool `{tool}` is already provided by plugin `{other}`")]
    DuplicateTool {
        plugin: PluginName,
        tool: String,
        other: PluginName,
    },
}

/// One loaded plugin.
pub struct LoadedPlugin {
    pub name: PluginName,
    pub prepared: PreparedPlugin,
    /// One permit per call allowed to run at once (`limits.max_concurrency`); the
    /// pipeline holds a permit for the whole call.
    pub slots: Arc<Semaphore>,
    /// Slows the plugin's calls down while its calls keep crashing.
    pub cooldown: Cooldown,
}

/// One tool, ready to be listed and called.
pub struct RegisteredTool {
    pub plugin: Arc<LoadedPlugin>,
    /// The tool as `tools/list` shows it.
    pub descriptor: rmcp::model::Tool,
    pub input: CompiledSchema,
    pub output: Option<CompiledSchema>,
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
    pub async fn load(config: &Config, sandbox: &Sandbox) -> Result<Self, LoadError> {
        let mut registry = Self::default();
        for (name, plugin_config) in &config.plugins {
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
                registry.add(&plugin, tool)?;
            }
            tracing::info!(
                plugin = %name,
                tools = ?registry.tools_of(name),
                "plugin loaded"
            );
        }
        Ok(registry)
    }

    fn add(&mut self, plugin: &Arc<LoadedPlugin>, tool: WitTool) -> Result<(), LoadError> {
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
        self.order.push(tool.name.clone());
        self.tools.insert(
            tool.name,
            Arc::new(RegisteredTool {
                plugin: plugin.clone(),
                descriptor,
                input,
                output,
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

    fn tools_of(&self, plugin: &PluginName) -> Vec<&str> {
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
    if let Some(pin) = &config.sha256 {
        let actual: [u8; 32] = Sha256::digest(&bytes).into();
        if actual != pin.0 {
            return Err(LoadError::PinMismatch {
                plugin: name.clone(),
                path: path.clone(),
                expected: hex::encode(pin.0),
                actual: hex::encode(actual),
            });
        }
    }
    let sandbox_err = |source| LoadError::Sandbox {
        plugin: name.clone(),
        path: path.clone(),
        source,
    };
    let component = sandbox.compile(bytes).await.map_err(sandbox_err)?;
    let grants = Arc::new(Grants {
        plugin: name.clone(),
        env: config
            .env
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        credentials: config.credentials.clone(),
        outbound: config.allowed_outbound_hosts.clone(),
        limits: config.limits.clone(),
        files: config.file_grants.clone(),
    });
    let prepared = sandbox.prepare(&component, grants).map_err(sandbox_err)?;
    Ok(Arc::new(LoadedPlugin {
        name: name.clone(),
        slots: Arc::new(Semaphore::new(config.limits.max_concurrency as usize)),
        cooldown: Cooldown::default(),
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
