//! The running host: builds the shared state once from a checked config (credential
//! source, sandbox, plugins, pipeline) and serves it over Streamable HTTP
//! ([`App::serve_http`]) or stdio ([`App::serve_stdio`]), both through the same
//! pipeline, and reloads the plugins while it serves ([`crate::reload`]).

use crate::audit::{Audit, AuditError, Record};
use crate::auth::{Auth, AuthError};
use crate::config::Config;
use crate::mcp::McpHandler;
use crate::pipeline::Pipeline;
use crate::ratelimit::{AddressLimits, ToolLimiter};
use crate::registry::{LoadError, Registry};
use crate::reload::{Hangups, Reloader};
use crate::sandbox::artifacts::ArtifactCache;
use crate::sandbox::{Sandbox, SandboxError, pool};
use crate::secrets::sources::{self, CredentialSetupError, load_kek};
use crate::server::tls::{Tls, TlsError};
use crate::server::{self, listener};
use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;
use tokio_util::sync::CancellationToken;

/// How often the embedded authorization server deletes expired codes and tokens.
const PURGE_INTERVAL: Duration = Duration::from_secs(3600);

/// How often rate limiters forget the keys whose allowance has refilled.
const PRUNE_INTERVAL: Duration = Duration::from_secs(60);

/// How long in-flight requests may run after a shutdown signal.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the host could not start or stopped serving.
#[derive(Debug, Error)]
pub enum AppError {
    /// A granted credential is unusable (or the store cannot be opened).
    #[error(transparent)]
    Credentials(#[from] CredentialSetupError),
    /// The WebAssembly engine could not be set up.
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    /// A plugin was refused.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// Authentication could not be set up.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// The audit log could not be opened.
    #[error(transparent)]
    Audit(#[from] AuditError),
    /// A rate-limit override names no tool a plugin offers.
    #[error("config: {0}")]
    RateLimits(String),
    /// The TLS certificate or key is unusable.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The configured address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// Serving failed.
    #[error("serving failed: {0}")]
    Serve(String),
}

/// The host, built and ready to serve.
pub struct App {
    config: Config,
    /// SIGHUP, caught from the start (reloads once serving).
    hangups: Option<Hangups>,
    pipeline: Arc<Pipeline>,
    sandbox: Arc<Sandbox>,
    audit: Arc<Audit>,
}

impl App {
    /// Builds everything the config asks for; the first problem stops the start.
    pub async fn build(config: Config) -> Result<Self, AppError> {
        // Before the slow part: a SIGHUP while plugins compile must not end the process.
        let hangups = Some(Hangups::listen());
        let audit = Arc::new(Audit::start(&config.audit)?);
        if !audit.is_on() {
            tracing::warn!(
                "no audit log ([audit] path is not set): calls are recorded in the host log \
                 only"
            );
        }
        let pool = config.pool_size();
        pool::raise_fd_limit(&pool);
        let credentials = sources::from_config(&config.secrets, &config.granted_credentials())?;
        let mut sandbox = Sandbox::new(credentials, pool)?;
        if let Some(dir) = config.cache.folder() {
            match ArtifactCache::open(&dir, sandbox.engine()) {
                Ok(cache) => sandbox.use_cache(cache),
                Err(error) => tracing::warn!(%error, "compiled plugins are not cached"),
            }
        }
        let sandbox = Arc::new(sandbox);
        let registry = Registry::load(&config.plugins, &sandbox).await?;
        config
            .rate_limits
            .check_tools(|tool| registry.tool(tool).is_some())
            .map_err(AppError::RateLimits)?;
        let limiter = Arc::new(ToolLimiter::new(&config.rate_limits));
        let pruned = limiter.clone();
        prune_every(PRUNE_INTERVAL, move || pruned.prune());
        for plugin in registry.plugins() {
            let mut record = Record::now("plugin_loaded");
            record.plugin = Some(plugin.name.to_string());
            record.plugin_sha256 = Some(plugin.sha256_hex.clone());
            record.detail = Some(serde_json::json!({ "tools": registry.tools_of(&plugin.name) }));
            audit.enqueue(record);
        }
        let pipeline = Arc::new(Pipeline::new(
            registry,
            sandbox.clone(),
            limiter,
            audit.clone(),
        ));
        Ok(Self {
            config,
            hangups,
            pipeline,
            sandbox,
            audit,
        })
    }

    /// Reloads the plugins on SIGHUP and when their files change, until `shutdown`
    /// (when the config was read from a file).
    fn start_reloading(&mut self, shutdown: CancellationToken) {
        let (Some(path), Some(hangups)) = (self.config.source.clone(), self.hangups.take()) else {
            return;
        };
        let files = self
            .config
            .plugins
            .values()
            .map(|p| p.path.clone())
            .collect();
        Reloader::new(
            path,
            self.config.source_text.clone(),
            self.pipeline.clone(),
            self.sandbox.clone(),
            self.audit.clone(),
        )
        .start(hangups, self.config.reload.watch, files, shutdown);
    }

    /// Serves MCP at `/mcp` until Ctrl-C or SIGTERM, then drains requests in flight
    /// for at most [`DRAIN_TIMEOUT`]. The one line on stdout names the bound address.
    pub async fn serve_http(mut self) -> Result<(), AppError> {
        let shutdown = CancellationToken::new();
        let tls = match &self.config.server.tls {
            Some(config) => Some(Tls::start(config, shutdown.clone())?),
            None => None,
        };
        let listen = self.config.server.listen;
        let (tcp, local) = listener::bind(listen)
            .await
            .map_err(|source| AppError::Listen {
                addr: listen,
                source,
            })?;
        // The resource URI (tokens' audience) depends on the address clients use.
        let base = server::public_base(&self.config.server, local);
        let secrets = &self.config.secrets;
        let auth = Auth::build(&self.config.auth, &base, self.pipeline.scopes(), || {
            load_kek(&secrets.kek_source())
        })
        .await?;
        if let Some(server) = auth.authorization_server() {
            server.purge_every(PURGE_INTERVAL);
        }
        if let Some(code) = auth.setup_code() {
            // Written straight to the terminal: the one way a newcomer learns it.
            eprintln!(
                "\n  No user can log in yet. Create the first one on the login page of the\n  \
                 next authorization (open the MCP Inspector, say) with the setup code\n\n      \
                 {code}\n\n  (valid 24 hours, once), or run `mcp-wasm-host users add NAME`.\n"
            );
        }
        if auth.is_off() {
            tracing::warn!(
                "authentication is off ([auth] mode = \"off\"): anyone who can reach \
                 {local} can call every tool"
            );
        } else {
            tracing::info!(
                resource = auth.resource(),
                "access tokens are required at /mcp"
            );
        }
        let scrape = crate::telemetry::install().map(|handle| {
            Arc::new(server::metrics::Scrape {
                handle,
                pipeline: self.pipeline.clone(),
            })
        });
        let main_metrics = match (self.config.server.metrics_listen, scrape) {
            (Some(addr), Some(scrape)) => {
                let (tcp, local) = listener::bind(addr)
                    .await
                    .map_err(|source| AppError::Listen { addr, source })?;
                tracing::info!(address = %local, "serving /metrics");
                let routes = server::metrics::routes(scrape);
                let (stop, tls) = (shutdown.clone(), tls.clone());
                tokio::spawn(async move {
                    if let Err(error) = listener::serve(tcp, tls, routes, stop).await {
                        tracing::error!(%error, "the metrics listener failed");
                    }
                });
                None
            }
            (None, scrape) => scrape,
            (Some(_), None) => None,
        };
        self.start_reloading(shutdown.clone());
        let limits = Arc::new(AddressLimits::new(&self.config.rate_limits));
        let pruned = limits.clone();
        prune_every(PRUNE_INTERVAL, move || pruned.prune());
        let app = server::router(
            self.pipeline,
            Arc::new(auth),
            limits,
            &self.config.server,
            self.config.request_timeout(),
            main_metrics,
            shutdown.clone(),
        );
        let mut started = Record::now("start");
        started.transport = Some("http".into());
        started.detail = Some(
            serde_json::json!({ "address": local.to_string(), "version": env!("CARGO_PKG_VERSION") }),
        );
        self.audit.enqueue(started);
        if !local.ip().is_loopback() && tls.is_none() {
            tracing::warn!(
                address = %local,
                "serving plain HTTP off loopback (allow_insecure_http = true): safe only \
                 behind a proxy that terminates TLS, with no other way in"
            );
        }
        // Scripts and tests read the bound address from this line.
        let scheme = if tls.is_some() { "https" } else { "http" };
        println!("mcp-wasm-host listening on {scheme}://{local}/mcp");
        std::io::stdout().flush().ok();
        tracing::info!(address = %local, "serving MCP at /mcp");
        tokio::spawn(cancel_on_signal(shutdown.clone()));
        let drained = shutdown.clone();
        tokio::select! {
            served = listener::serve(tcp, tls, app, shutdown) => {
                served.map_err(|e| AppError::Serve(e.to_string()))?;
            }
            () = async move {
                drained.cancelled().await;
                tokio::time::sleep(DRAIN_TIMEOUT).await;
            } => tracing::warn!("requests still running after {DRAIN_TIMEOUT:?}; stopping anyway"),
        }
        self.audit.enqueue(Record::now("stop"));
        self.audit.close().await;
        tracing::info!("stopped");
        Ok(())
    }

    /// Serves MCP over stdin and stdout until stdin closes (or Ctrl-C / SIGTERM).
    /// Nothing but MCP messages is written to stdout; the log goes to stderr.
    pub async fn serve_stdio(mut self) -> Result<(), AppError> {
        let shutdown = CancellationToken::new();
        self.start_reloading(shutdown.clone());
        let handler = McpHandler::new(self.pipeline.clone());
        let session = crate::mcp::stdio::Session::start(handler)
            .await
            .map_err(|e| AppError::Serve(e.to_string()))?;
        tracing::info!("serving MCP on stdio");
        let mut started = Record::now("start");
        started.transport = Some("stdio".into());
        self.audit.enqueue(started);
        tokio::spawn(cancel_on_signal(shutdown.clone()));
        session.run(shutdown).await;
        self.audit.enqueue(Record::now("stop"));
        self.audit.close().await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// Cancels `shutdown` on Ctrl-C or SIGTERM.
async fn cancel_on_signal(shutdown: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot listen for SIGTERM");
                    let _ = ctrl_c.await;
                    shutdown.cancel();
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutting down");
    shutdown.cancel();
}

/// Runs `prune` every `interval`, for as long as the process runs.
fn prune_every(interval: Duration, prune: impl Fn() + Send + 'static) {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(interval);
        ticks.tick().await;
        loop {
            ticks.tick().await;
            prune();
        }
    });
}
