//! What one call's `Store` holds: the WASI context built from the plugin's grants, the
//! wasi:http context with its egress policy, and the credential source.

use super::credentials::{CredentialSource, CredentialUse};
use super::egress::EgressPolicy;
use super::fairness::Ticket;
use super::files::{self, FileGrant};
use super::limits::{CallLimiter, Limits};
use super::stdio::Capture;
use crate::config::{CredentialName, PluginName};
use crate::sandbox::egress::AllowedHost;
use std::sync::Arc;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

/// Everything the operator granted one plugin; built once at load, shared by its calls.
#[derive(Debug)]
pub struct Grants {
    pub plugin: PluginName,
    /// The plugin's whole environment.
    pub env: Vec<(String, String)>,
    pub credentials: Vec<CredentialName>,
    pub outbound: Vec<AllowedHost>,
    pub limits: Limits,
    /// Preopened directories.
    pub files: Vec<FileGrant>,
}

/// The data of one call's `Store`; dropped with the store when the call ends.
pub struct CallState {
    pub grants: Arc<Grants>,
    pub credentials: Arc<dyn CredentialSource>,
    /// Every credential request of this call, in order.
    pub credential_uses: Vec<CredentialUse>,
    /// Memory cap and deadline of this call.
    pub limiter: CallLimiter,
    pub stdout: Capture,
    pub stderr: Capture,
    /// This call's place among the calls in flight.
    pub ticket: Ticket,
    wasi: WasiCtx,
    http: WasiHttpCtx,
    egress: EgressPolicy,
    table: ResourceTable,
}

impl CallState {
    pub fn new(
        grants: Arc<Grants>,
        credentials: Arc<dyn CredentialSource>,
        ticket: Ticket,
    ) -> wasmtime::Result<Self> {
        let (stdout, stderr) = (Capture::default(), Capture::default());
        let mut wasi = WasiCtx::builder();
        // No args, no inherited environment, stdin closed, stdout/stderr captured for
        // the host log, only the granted directories, and no raw sockets or name
        // lookups: a plugin reaches the network only through wasi:http.
        wasi.envs(&grants.env)
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
        files::preopen(&mut wasi, &grants.files)?;
        let limiter = CallLimiter {
            memory: grants.limits.memory,
            deadline: std::time::Instant::now() + grants.limits.timeout,
            timeout: grants.limits.timeout,
        };
        Ok(Self {
            ticket,
            limiter,
            stdout,
            stderr,
            wasi: wasi.build(),
            http: WasiHttpCtx::new(),
            egress: EgressPolicy(grants.clone()),
            table: ResourceTable::new(),
            grants,
            credentials,
            credential_uses: Vec::new(),
        })
    }
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for CallState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.egress,
        }
    }
}
