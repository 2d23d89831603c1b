//! What one call's `Store` holds: the WASI context built from the plugin's grants, the
//! wasi:http context with its egress policy, the credential source, and the record of
//! what the call printed and was refused (logged when the store is dropped).

use super::client::{Client, ClientFeature, ClientUse};
use super::credentials::CredentialUse;
use super::denials::Denials;
use super::env::PluginEnv;
use super::fs::host::OpenFiles;
use super::fs::{FileGrant, OpenedDirs};
use super::http::allowlist::AllowedHost;
use super::http::hooks::EgressPolicy;
use super::limits::fairness::Ticket;
use super::limits::{CallClock, CallLimiter, Limits};
use super::stdio::{self, Capture};
use crate::domain::{CredentialName, PluginName};
use crate::secrets::sources::CredentialSource;
use std::sync::Arc;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

/// In-memory size of one set of HTTP header fields (wasmtime's default is 128 KiB).
const FIELDS_LIMIT: usize = 32 * 1024;

/// Everything the operator granted one plugin; built once at load, shared by its calls.
/// Start from [`Grants::none`] and set what is granted.
#[derive(Debug, Clone)]
pub struct Grants {
    /// The plugin the grants are for (named in every log line of its calls).
    pub plugin: PluginName,
    /// The plugin's whole environment.
    pub env: PluginEnv,
    /// Credentials it may read through the `credentials` import.
    pub credentials: Vec<CredentialName>,
    /// Where it may send HTTP requests.
    pub outbound: Vec<AllowedHost>,
    /// Memory, time, concurrency and output limits.
    pub limits: Limits,
    /// Directories it may read (and write), checked at load.
    pub files: Vec<FileGrant>,
    /// What it may ask of the MCP client (sampling, elicitation).
    pub client_features: Vec<ClientFeature>,
}

impl Grants {
    /// Nothing granted: no environment, credentials, hosts or directories, and the
    /// default limits.
    pub fn none(plugin: PluginName) -> Self {
        Self {
            plugin,
            env: PluginEnv::default(),
            credentials: Vec::new(),
            outbound: Vec::new(),
            limits: Limits::default(),
            files: Vec::new(),
            client_features: Vec::new(),
        }
    }
}

/// What one call asked for, by name and outcome: its credentials and its requests to
/// the client.
#[derive(Debug, Default)]
pub struct CallUses {
    /// Every credential request, by name and outcome.
    pub credentials: Vec<CredentialUse>,
    /// Every sampling and elicitation request, by feature and outcome.
    pub client: Vec<ClientUse>,
}

impl CallUses {
    /// A fresh record to share between a call's store and its caller.
    pub fn shared() -> Arc<std::sync::Mutex<CallUses>> {
        Arc::default()
    }
}

/// The data of one call's `Store`; dropped with the store when the call ends.
pub struct CallState {
    /// What the plugin was granted.
    pub grants: Arc<Grants>,
    /// Where credential values come from.
    pub credentials: Arc<dyn CredentialSource>,
    /// What the call asked for (credentials, the client), for its record: shared with
    /// whoever awaits the call, so a call stopped midway still leaves its record.
    pub uses: Arc<std::sync::Mutex<CallUses>>,
    /// The MCP client the call serves, when it can be reached.
    pub client: Option<Arc<dyn Client>>,
    /// Log and progress messages sent to the client so far.
    pub client_messages: u32,
    /// What is left of the call's time to wait for the client (`limits.client_wait`).
    pub client_wait_left: std::time::Duration,
    /// The last progress reported (reports must grow).
    pub last_progress: Option<f64>,
    /// Memory cap and deadline of this call.
    pub limiter: CallLimiter,
    /// What the plugin printed to stdout (logged when the call ends).
    pub stdout: Capture,
    /// What the plugin printed to stderr (logged when the call ends).
    pub stderr: Capture,
    /// This call's place among the calls in flight.
    pub ticket: Ticket,
    /// What this call was refused.
    pub denials: Denials,
    pub(super) wasi: WasiParts,
    /// What the call holds through its filesystem (paths for log lines, open files).
    pub(super) open_files: OpenFiles,
    /// The plugin's granted directories, opened at load.
    pub(super) dirs: OpenedDirs,
    http: WasiHttpCtx,
    egress: EgressPolicy,
}

/// The WASI context and the resource table, apart from the rest of the state so the
/// filesystem layer can borrow them next to [`CallState::open_files`].
pub struct WasiParts {
    ctx: WasiCtx,
    table: ResourceTable,
}

impl CallState {
    /// The state of a new call of a plugin with `grants` and its opened `dirs`, timed
    /// by `clock`, serving `client`.
    pub fn new(
        grants: Arc<Grants>,
        dirs: OpenedDirs,
        credentials: Arc<dyn CredentialSource>,
        ticket: Ticket,
        clock: CallClock,
        client: Option<Arc<dyn Client>>,
        uses: Arc<std::sync::Mutex<CallUses>>,
    ) -> Self {
        let (stdout, stderr) = (Capture::default(), Capture::default());
        let mut wasi = WasiCtx::builder();
        // No args, no inherited environment, stdin closed, stdout/stderr captured for
        // the host log, and no raw sockets or name lookups: a plugin reaches the
        // network only through wasi:http. Its granted directories are handed out by
        // the filesystem layer (`fs::host`) from `dirs`.
        wasi.envs(grants.env.vars())
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
        let limiter = CallLimiter {
            memory: grants.limits.memory,
            clock,
            timeout: grants.limits.timeout,
        };
        let denials = Denials::new(grants.plugin.clone());
        let limiter_wait = grants.limits.client_wait;
        // Host-side objects (handles, streams, requests) live outside the plugin's
        // memory limit: cap how many one call may hold (`limits.max_handles`). With the
        // caps on what each may buffer (header fields, body chunks), this bounds the
        // host memory a call can tie up.
        let mut table = ResourceTable::new();
        table.set_max_capacity(grants.limits.max_handles as usize);
        let mut http = WasiHttpCtx::new();
        http.set_field_size_limit(FIELDS_LIMIT);
        Self {
            ticket,
            limiter,
            stdout,
            stderr,
            wasi: WasiParts {
                ctx: wasi.build(),
                table,
            },
            open_files: OpenFiles::new(&grants.limits),
            dirs,
            http,
            egress: EgressPolicy::new(grants.clone(), denials.clone()),
            denials,
            grants,
            credentials,
            uses,
            client,
            client_messages: 0,
            client_wait_left: limiter_wait,
            last_progress: None,
        }
    }
}

impl WasiView for WasiParts {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.ctx,
            table: &mut self.table,
        }
    }
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        self.wasi.ctx()
    }
}

/// When the call ends, however it ends (finished, trapped, cancelled at its deadline),
/// what it printed and how often it was refused reach the host log.
impl Drop for CallState {
    fn drop(&mut self) {
        let plugin = self.grants.plugin.as_str();
        stdio::log_output(plugin, "stdout", &self.stdout);
        stdio::log_output(plugin, "stderr", &self.stderr);
        self.denials.finish();
    }
}

impl WasiHttpView for CallState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.wasi.table,
            hooks: &mut self.egress,
        }
    }
}
