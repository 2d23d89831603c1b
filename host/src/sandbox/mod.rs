//! The wasmtime engine, the linker every plugin shares, and running one call in a fresh,
//! capability-scoped component instance.
//!
//! Cost model: components are compiled once and pre-linked into an `InstancePre` at
//! load; each call only creates a `Store` (its WASI context from the plugin's grants)
//! and instantiates from the pooling allocator's warm slots.

pub mod bindings;
pub mod credentials;
pub mod egress;
pub mod state;

use bindings::exports::mcp::tools::tools::{CallError, CallResult, Tool};
use bindings::{Plugin, PluginPre};
use credentials::{CredentialSource, CredentialUse};
use state::{CallState, Grants};
use std::sync::Arc;
use thiserror::Error;
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store};

/// Component instances the pooling allocator keeps slots for: the ceiling on calls
/// running at once across all plugins.
const POOL_INSTANCES: u32 = 1000;

/// Linear memories one component instance may have (main module, WASI adapters).
const MEMORIES_PER_COMPONENT: u32 = 4;

/// Largest linear memory a plugin may grow to.
const MAX_MEMORY_BYTES: usize = 256 * 1024 * 1024;

/// How much of a freed slot's memory and tables is reset in place (memset) instead of
/// returned to the kernel (madvise): a Rust plugin touches ~1 MiB (its stack), and
/// resetting that in place is cheaper than faulting it back in on the next call.
const KEEP_RESIDENT_BYTES: usize = 2048 * 1024;

/// Errors from the runtime itself, as opposed to errors a plugin returns.
#[derive(Debug, Error)]
pub enum SandboxError {
    #[error("setting up the WebAssembly engine failed: {0}")]
    Engine(String),
    #[error("not a valid WebAssembly component: {0}")]
    Compile(String),
    #[error("the component needs imports this host does not provide: {0}")]
    Link(String),
    #[error("the component could not be instantiated: {0}")]
    Instantiate(String),
    #[error("the plugin crashed: {0}")]
    Trap(String),
}

impl SandboxError {
    /// A short reason for the client; the full error goes to the host log only.
    pub fn short(&self) -> &'static str {
        match self {
            SandboxError::Trap(_) => "the plugin crashed",
            SandboxError::Instantiate(_) => "the plugin could not be started",
            SandboxError::Engine(_) | SandboxError::Compile(_) | SandboxError::Link(_) => {
                "the plugin is not usable"
            }
        }
    }
}

/// A plugin ready to run: pre-linked, with the grants every call of it gets.
pub struct PreparedPlugin {
    pre: PluginPre<CallState>,
    grants: Arc<Grants>,
}

impl PreparedPlugin {
    pub fn grants(&self) -> &Grants {
        &self.grants
    }
}

/// The engine and the shared linker.
pub struct Sandbox {
    engine: Engine,
    linker: Linker<CallState>,
    credentials: Arc<dyn CredentialSource>,
}

impl Sandbox {
    /// Builds the engine (pooling allocator) and the linker with WASI 0.2, wasi:http
    /// (behind the egress policy) and the `credentials` import.
    pub fn new(credentials: Arc<dyn CredentialSource>) -> Result<Self, SandboxError> {
        let engine_err = |e: wasmtime::Error| SandboxError::Engine(format!("{e:#}"));
        let mut pooling = PoolingAllocationConfig::new();
        pooling
            .total_component_instances(POOL_INSTANCES)
            .total_memories(POOL_INSTANCES * MEMORIES_PER_COMPONENT)
            .total_tables(POOL_INSTANCES * MEMORIES_PER_COMPONENT)
            .max_memories_per_component(MEMORIES_PER_COMPONENT)
            .max_memory_size(MAX_MEMORY_BYTES)
            .linear_memory_keep_resident(KEEP_RESIDENT_BYTES)
            .table_keep_resident(KEEP_RESIDENT_BYTES);
        let mut config = Config::new();
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pooling));
        let engine = Engine::new(&config).map_err(engine_err)?;

        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(engine_err)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker).map_err(engine_err)?;
        Plugin::add_to_linker::<_, HasSelf<_>>(&mut linker, |state| state).map_err(engine_err)?;
        Ok(Self {
            engine,
            linker,
            credentials,
        })
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Compiles component bytes (slow: done once per plugin at load, on a blocking
    /// thread so the async workers stay free).
    pub async fn compile(&self, bytes: Vec<u8>) -> Result<Component, SandboxError> {
        let engine = self.engine.clone();
        tokio::task::spawn_blocking(move || Component::new(&engine, &bytes))
            .await
            .map_err(|e| SandboxError::Compile(format!("the compiler thread failed: {e}")))?
            .map_err(|e| SandboxError::Compile(format!("{e:#}")))
    }

    /// Links a compiled component against the host's imports, once.
    pub fn prepare(
        &self,
        component: &Component,
        grants: Arc<Grants>,
    ) -> Result<PreparedPlugin, SandboxError> {
        let instance_pre = self
            .linker
            .instantiate_pre(component)
            .map_err(|e| SandboxError::Link(format!("{e:#}")))?;
        let pre = PluginPre::new(instance_pre).map_err(|e| SandboxError::Link(format!("{e:#}")))?;
        Ok(PreparedPlugin { pre, grants })
    }

    /// A fresh instance of `plugin` in its own store.
    async fn instantiate(
        &self,
        plugin: &PreparedPlugin,
    ) -> Result<(Store<CallState>, Plugin), SandboxError> {
        let state = CallState::new(plugin.grants.clone(), self.credentials.clone());
        let mut store = Store::new(&self.engine, state);
        let instance = plugin
            .pre
            .instantiate_async(&mut store)
            .await
            .map_err(|e| SandboxError::Instantiate(format!("{e:#}")))?;
        Ok((store, instance))
    }

    /// Asks the plugin for its tools (once, at load).
    pub async fn list_tools(&self, plugin: &PreparedPlugin) -> Result<Vec<Tool>, SandboxError> {
        let (mut store, instance) = self.instantiate(plugin).await?;
        instance
            .mcp_tools_tools()
            .call_list_tools(&mut store)
            .await
            .map_err(|e| SandboxError::Trap(format!("{e:#}")))
    }

    /// Runs one tool call in a fresh instance; the instance is dropped afterwards.
    pub async fn call_tool(
        &self,
        plugin: &PreparedPlugin,
        tool: &str,
        arguments: &str,
    ) -> Invocation {
        let (mut store, instance) = match self.instantiate(plugin).await {
            Ok(ready) => ready,
            Err(error) => {
                return Invocation {
                    outcome: Err(error),
                    credential_uses: Vec::new(),
                };
            }
        };
        let outcome = instance
            .mcp_tools_tools()
            .call_call_tool(&mut store, tool, arguments)
            .await
            .map_err(|e| SandboxError::Trap(format!("{e:#}")));
        Invocation {
            outcome,
            credential_uses: std::mem::take(&mut store.data_mut().credential_uses),
        }
    }
}

/// What one call did: the plugin's answer (or why there is none), and the
/// credentials it asked for.
pub struct Invocation {
    pub outcome: Result<Result<CallResult, CallError>, SandboxError>,
    pub credential_uses: Vec<CredentialUse>,
}
