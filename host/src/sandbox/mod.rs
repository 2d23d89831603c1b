//! The wasmtime engine, the linker every plugin shares, and running one call in a fresh,
//! capability-scoped component instance.
//!
//! Cost model: components are compiled once and pre-linked into an `InstancePre` at
//! load; each call only creates a `Store` (its WASI context from the plugin's grants)
//! and instantiates from the pooling allocator's warm slots.

//!
//! One module per capability, each owning its config type (checked when the config is
//! parsed) and the state it builds per call: [`env`], [`fs`], [`http`], [`sockets`],
//! [`credentials`], [`client`], [`limits`], [`stdio`]. [`pool`] sizes the instance pool and the
//! open-file limit from the plugins' limits; [`state`] is one call's `Store` data;
//! [`denials`] names refusals in the host log; [`artifacts`] keeps compiled plugins
//! on disk between starts.

pub mod artifacts;
pub mod bindings;
pub mod client;
pub mod contract;
pub mod credentials;
pub mod denials;
pub mod env;
pub mod fs;
pub mod http;
pub mod limits;
pub mod pool;
pub mod sockets;
pub mod state;
pub mod stdio;

use crate::secrets::sources::CredentialSource;
use bindings::exports::mcp::tools::tools::{CallError, CallResult, Tool};
use client::Client;
use fs::OpenedDirs;
use pool::PoolSize;
use state::{CallState, CallUses, Grants};
use std::sync::Arc;
use thiserror::Error;
use wasmtime::component::{Component, Linker};
use wasmtime::{
    Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store,
};

/// Linear memories one component instance may have (main module, WASI adapters).
const MEMORIES_PER_COMPONENT: u32 = 4;

/// Wasm stack a call may use before it traps: deep recursion ends as a clean trap.
const MAX_WASM_STACK: usize = 1024 * 1024;

/// How much of a freed slot's memory and tables is reset in place instead of returned
/// to the kernel (madvise): a Rust plugin touches ~1 MiB (its stack), and resetting
/// that in place is cheaper than faulting it back in on the next call. Where the
/// kernel has `PAGEMAP_SCAN` (Linux 6.7+), only the pages the call dirtied are reset;
/// elsewhere the whole region is (a 2 MiB memset per call).
const KEEP_RESIDENT_BYTES: usize = 2048 * 1024;

/// How long the epoch ticker goes on ticking with no call running before it sleeps.
const TICKER_IDLE_AFTER: std::time::Duration = std::time::Duration::from_millis(50);
/// How often a sleeping ticker wakes to see whether its engine is gone.
const TICKER_IDLE_CHECK: std::time::Duration = std::time::Duration::from_secs(1);

/// Errors from the runtime itself, as opposed to errors a plugin returns.
#[derive(Debug, Error)]
pub enum SandboxError {
    /// The engine or linker could not be set up.
    #[error("setting up the WebAssembly engine failed: {0}")]
    Engine(String),
    /// The bytes are not a component this engine can compile.
    #[error("not a valid WebAssembly component: {0}")]
    Compile(String),
    /// The component imports something the host does not provide.
    #[error("the component needs imports this host does not provide: {0}")]
    Link(String),
    /// A granted directory could not be opened.
    #[error("files: {0}")]
    Files(std::io::Error),
    /// Instantiation failed (a start function trapped, say).
    #[error("the component could not be instantiated: {0}")]
    Instantiate(String),
    /// The plugin trapped.
    #[error("the plugin crashed: {0}")]
    Trap(String),
    /// The plugin recursed too deep.
    #[error("the plugin overflowed its stack")]
    StackOverflow,
    /// The plugin accessed memory out of bounds.
    #[error("the plugin accessed memory out of bounds")]
    MemoryFault,
    /// The plugin hit a limit the host set (time, memory).
    #[error("the plugin {0}")]
    Limit(limits::LimitHit),
}

impl SandboxError {
    /// Sorts a wasm trap: a limit we imposed, a stack overflow, or any other crash.
    fn from_trap(error: wasmtime::Error) -> Self {
        if let Some(hit) = error.downcast_ref::<limits::LimitHit>() {
            return SandboxError::Limit(*hit);
        }
        match error.downcast_ref::<wasmtime::Trap>() {
            Some(wasmtime::Trap::StackOverflow) => SandboxError::StackOverflow,
            // Guests built by LLVM keep a shadow stack at the bottom of linear memory;
            // when it overflows, the next access wraps below address 0.
            Some(wasmtime::Trap::MemoryOutOfBounds) => SandboxError::MemoryFault,
            _ => SandboxError::Trap(format!("{error:#}")),
        }
    }
}

impl SandboxError {
    /// A short reason for the client; the full error goes to the host log only.
    pub fn short(&self) -> String {
        match self {
            SandboxError::Trap(_) => "the plugin crashed".to_owned(),
            SandboxError::StackOverflow => "the plugin overflowed its stack".to_owned(),
            SandboxError::MemoryFault => {
                "the plugin crashed: out-of-bounds memory access (often a stack overflow)"
                    .to_owned()
            }
            SandboxError::Limit(hit) => format!("the plugin {hit}"),
            SandboxError::Instantiate(_) => "the plugin could not be started".to_owned(),
            SandboxError::Engine(_)
            | SandboxError::Compile(_)
            | SandboxError::Link(_)
            | SandboxError::Files(_) => "the plugin is not usable".to_owned(),
        }
    }
}

/// A plugin ready to run: pre-linked, with the grants every call of it gets.
pub struct PreparedPlugin {
    pre: contract::Prepared,
    grants: Arc<Grants>,
    /// The granted directories, opened once here and shared by every call.
    dirs: OpenedDirs,
}

impl PreparedPlugin {
    /// What the plugin was granted.
    pub fn grants(&self) -> &Grants {
        &self.grants
    }

    /// The contract version the plugin speaks.
    pub fn contract(&self) -> contract::Version {
        self.pre.version()
    }
}

/// The engine and the shared linker.
pub struct Sandbox {
    engine: Engine,
    /// When calls start, for [`limits::fairness`].
    load: Arc<limits::fairness::Load>,
    linker: Linker<CallState>,
    credentials: Arc<dyn CredentialSource>,
    /// Compiled plugins kept between starts, if a cache folder is in use.
    artifacts: Option<Arc<artifacts::ArtifactCache>>,
    /// How the instance pool was sized (once, at start).
    pool: PoolSize,
}

impl Sandbox {
    /// Builds the engine (pooling allocator) and the linker with WASI 0.2, wasi:http
    /// (behind the egress policy) and the `credentials` import.
    pub fn new(
        credentials: Arc<dyn CredentialSource>,
        pool: PoolSize,
    ) -> Result<Self, SandboxError> {
        let engine_err = |e: wasmtime::Error| SandboxError::Engine(format!("{e:#}"));
        let mut pooling = PoolingAllocationConfig::new();
        pooling
            .total_component_instances(pool.instances)
            .total_memories(pool.instances * MEMORIES_PER_COMPONENT)
            .total_tables(pool.instances * MEMORIES_PER_COMPONENT)
            .total_stacks(pool.instances)
            .max_memories_per_component(MEMORIES_PER_COMPONENT)
            .max_memory_size(usize::try_from(pool.max_memory).unwrap_or(usize::MAX))
            .linear_memory_keep_resident(KEEP_RESIDENT_BYTES)
            .table_keep_resident(KEEP_RESIDENT_BYTES)
            .pagemap_scan(Enabled::Auto);
        let mut config = Config::new();
        config
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pooling))
            .epoch_interruption(true)
            .max_wasm_stack(MAX_WASM_STACK);
        let engine = Engine::new(&config).map_err(engine_err)?;
        let load = Arc::<limits::fairness::Load>::default();
        // Without the ticker no call could time out on CPU: refuse to run at all.
        start_epoch_ticker(&engine, load.clone())
            .map_err(|e| SandboxError::Engine(format!("cannot start the epoch thread: {e}")))?;

        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(engine_err)?;
        // Refusals inside wasmtime-wasi (file escapes, raw sockets, name lookup) are
        // logged by these layers in front of it.
        fs::host::add_to_linker(&mut linker).map_err(engine_err)?;
        sockets::add_to_linker(&mut linker).map_err(engine_err)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker).map_err(engine_err)?;
        contract::add_to_linker(&mut linker).map_err(engine_err)?;
        Ok(Self {
            engine,
            load,
            linker,
            credentials,
            artifacts: None,
            pool,
        })
    }

    /// Where the `credentials` import reads values (fixed at start).
    pub fn credentials(&self) -> &Arc<dyn CredentialSource> {
        &self.credentials
    }

    /// How the instance pool was sized: a plugin needing larger slots cannot be
    /// loaded until the host restarts.
    pub fn pool(&self) -> PoolSize {
        self.pool
    }

    /// Keeps compiled plugins in `cache` and loads them from it.
    pub fn use_cache(&mut self, cache: artifacts::ArtifactCache) {
        self.artifacts = Some(Arc::new(cache));
    }

    /// The engine components are compiled for.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Compiles component bytes, or loads them compiled from the cache (compiling is
    /// slow: done once per plugin at load, on a blocking thread so the async workers
    /// stay free).
    pub async fn compile(&self, bytes: Vec<u8>) -> Result<Component, SandboxError> {
        let engine = self.engine.clone();
        let cache = self.artifacts.clone();
        tokio::task::spawn_blocking(move || compile_or_load(&engine, cache.as_deref(), &bytes))
            .await
            .map_err(|e| SandboxError::Compile(format!("the compiler thread failed: {e}")))?
    }

    /// Links a compiled component against the host's imports and opens its granted
    /// directories, once.
    pub fn prepare(
        &self,
        component: &Component,
        grants: Arc<Grants>,
    ) -> Result<PreparedPlugin, SandboxError> {
        let dirs = OpenedDirs::open(&grants.files).map_err(SandboxError::Files)?;
        let instance_pre = self
            .linker
            .instantiate_pre(component)
            .map_err(|e| SandboxError::Link(format!("{e:#}")))?;
        let exports = component
            .component_type()
            .exports(&self.engine)
            .map(|(name, _)| name.to_owned())
            .collect();
        let pre = contract::Prepared::new(instance_pre, exports).map_err(SandboxError::Link)?;
        Ok(PreparedPlugin { pre, grants, dirs })
    }

    /// A fresh instance of `plugin` in its own store, with its limits in force: the
    /// memory limiter, and an epoch deadline that yields the worker thread every tick
    /// and traps once `clock` says the call's time is up.
    async fn instantiate(
        &self,
        plugin: &PreparedPlugin,
        clock: limits::CallClock,
        client: Option<Arc<dyn Client>>,
        uses: Arc<std::sync::Mutex<CallUses>>,
    ) -> Result<(Store<CallState>, contract::Instance), SandboxError> {
        let state = CallState::new(
            plugin.grants.clone(),
            plugin.dirs.clone(),
            self.credentials.clone(),
            self.load.ticket(),
            clock,
            client,
            uses,
        );
        let mut store = Store::new(&self.engine, state);
        store.limiter(|state| &mut state.limiter);
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|store| {
            let state = store.data();
            if state.limiter.clock.is_up() {
                return Err(wasmtime::Error::new(limits::LimitHit::Timeout(
                    state.limiter.timeout,
                )));
            }
            // tokio's own yield puts the task at the back of the run queue; a plain
            // wake would put it in the LIFO slot and starve other calls.
            let pause: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> =
                match state.ticket.on_tick() {
                    None => Box::pin(tokio::task::yield_now()),
                    Some(backoff) => Box::pin(tokio::time::sleep(backoff)),
                };
            Ok(wasmtime::UpdateDeadline::YieldCustom(1, pause))
        });
        let instance =
            plugin.pre.instantiate(&mut store).await.map_err(
                |e| match SandboxError::from_trap(e) {
                    SandboxError::Trap(message) => SandboxError::Instantiate(message),
                    other => other,
                },
            )?;
        Ok((store, instance))
    }

    /// Asks the plugin for its tools (once, at load).
    pub async fn list_tools(&self, plugin: &PreparedPlugin) -> Result<Vec<Tool>, SandboxError> {
        let timeout = plugin.grants.limits.timeout;
        let listing = async {
            let clock = limits::CallClock::start(timeout);
            let (mut store, instance) = self
                .instantiate(plugin, clock, None, CallUses::shared())
                .await?;
            instance
                .list_tools(&mut store)
                .await
                .map_err(SandboxError::from_trap)
        };
        tokio::time::timeout(timeout, listing)
            .await
            .unwrap_or(Err(SandboxError::Limit(limits::LimitHit::Timeout(timeout))))
    }

    /// Runs one tool call in a fresh instance, serving `client` and recording what it
    /// asked for in `uses`. The call ends at its deadline even while it waits on a host
    /// call (a slow upstream); only waits for the client's answers stop its clock. The
    /// instance of a call that returned is handed back: the caller frees it (its memory
    /// reset, its slot back in the pool) when it suits, after the answer is on its way,
    /// say. One that trapped or ran out of time is freed here.
    pub async fn call_tool(
        &self,
        plugin: &PreparedPlugin,
        tool: &str,
        arguments: &str,
        client: Option<Arc<dyn Client>>,
        uses: Arc<std::sync::Mutex<CallUses>>,
    ) -> (
        Result<Result<CallResult, CallError>, SandboxError>,
        Option<Spent>,
    ) {
        let timeout = plugin.grants.limits.timeout;
        let clock = limits::CallClock::start(timeout);
        let call = async {
            let (mut store, instance) = self
                .instantiate(plugin, clock.clone(), client, uses)
                .await?;
            match instance.call_tool(&mut store, tool, arguments).await {
                Ok(answer) => Ok((answer, Spent { _store: store })),
                Err(trap) => Err(SandboxError::from_trap(trap)),
            }
        };
        let timed_out = || SandboxError::Limit(limits::LimitHit::Timeout(timeout));
        tokio::select! {
            outcome = call => match outcome {
                Ok((answer, spent)) => (Ok(answer), Some(spent)),
                Err(error) => (Err(error), None),
            },
            () = clock.expired() => (Err(timed_out()), None),
        }
    }
}

/// The instance of a call that has returned. Dropping it frees the instance: its
/// memory is reset and its slot goes back to the pool (several microseconds), and what
/// the plugin printed and was refused reaches the host log.
pub struct Spent {
    _store: Store<CallState>,
}

/// `wasm` compiled: from the cache when it holds a good entry, else compiled now (and
/// kept). A cache that fails is reported and bypassed, never fatal.
fn compile_or_load(
    engine: &Engine,
    cache: Option<&artifacts::ArtifactCache>,
    wasm: &[u8],
) -> Result<Component, SandboxError> {
    if let Some(cache) = cache {
        match cache.load(engine, wasm) {
            artifacts::Lookup::Hit(component) => return Ok(component),
            artifacts::Lookup::Miss => {}
            artifacts::Lookup::Bad(problem) => tracing::warn!(
                dir = %cache.dir().display(),
                problem,
                "a cached compiled plugin is unusable; compiling it again"
            ),
        }
    }
    let component =
        Component::new(engine, wasm).map_err(|e| SandboxError::Compile(format!("{e:#}")))?;
    if let Some(cache) = cache
        && let Err(error) = cache.store(wasm, &component)
    {
        tracing::warn!(dir = %cache.dir().display(), %error, "cannot keep the compiled plugin in the cache");
    }
    Ok(component)
}

/// Advances the engine's epoch every [`limits::EPOCH_TICK`] on a thread of its own,
/// until the engine is dropped. Once no call has run for [`TICKER_IDLE_AFTER`], it
/// sleeps until one starts (checking every [`TICKER_IDLE_CHECK`] that the engine is
/// still there): an idle host does not wake a thousand times a second.
fn start_epoch_ticker(engine: &Engine, load: Arc<limits::fairness::Load>) -> std::io::Result<()> {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("wasm-epoch".into())
        .spawn(move || {
            let mut idle_since = None;
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(limits::EPOCH_TICK);
                if load.running() > 0 {
                    idle_since = None;
                    continue;
                }
                let since = *idle_since.get_or_insert_with(std::time::Instant::now);
                if since.elapsed() >= TICKER_IDLE_AFTER {
                    load.sleep_while_idle(TICKER_IDLE_CHECK);
                }
            }
        })
        .map(drop)
}
