//! Hot reload. On SIGHUP, and when the config file or a plugin's file changes (a file
//! watcher, unless `[reload] watch = false`), the config is read again and the plugin
//! set is rebuilt beside the one serving, then swapped in whole: new calls use it,
//! calls in flight finish on the plugins they started with, and no connection drops.
//! A config that cannot be read changes nothing; a plugin that fails to load keeps its
//! previous version serving. Each reload is logged and audited, and clients with an
//! open session are told when the tools changed. Only `[plugins]` is reloaded: the
//! other sections apply at the next start (a changed one is named in a warning).

use crate::audit::{Audit, Record};
use crate::config::{Config, ConfigError};
use crate::domain::{PluginName, Scope};
use crate::pipeline::Pipeline;
use crate::registry::rebuild::Change;
use crate::sandbox::Sandbox;
use notify::Watcher as _;
use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// How long the files must be quiet before a reload: a plugin being copied into place
/// writes many times, an editor saves in several steps.
const QUIET: Duration = Duration::from_millis(300);

/// Reload requests waiting while one runs (more are merged into those).
const QUEUED: usize = 16;

/// Why a reload ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cause {
    /// The process got SIGHUP.
    Signal,
    /// A watched file changed.
    Changed(PathBuf),
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Signal => f.write_str("SIGHUP"),
            Self::Changed(path) => write!(f, "{} changed", path.display()),
        }
    }
}

/// Reloads the plugins of one running host from its config file.
pub struct Reloader {
    path: PathBuf,
    pipeline: Arc<Pipeline>,
    sandbox: Arc<Sandbox>,
    audit: Arc<Audit>,
    /// The config's sections other than `[plugins]` as the host started with them.
    started_with: Option<toml::Table>,
    /// The tool scopes at start: what authentication advertises and the embedded
    /// authorization server grants.
    started_scopes: Vec<Scope>,
}

impl Reloader {
    /// A reloader of the plugins `pipeline` serves, from the config at `path`.
    pub fn new(
        path: PathBuf,
        pipeline: Arc<Pipeline>,
        sandbox: Arc<Sandbox>,
        audit: Arc<Audit>,
    ) -> Self {
        let started_with = restart_only_sections(&path);
        let started_scopes = pipeline.scopes();
        Self {
            path,
            pipeline,
            sandbox,
            audit,
            started_with,
            started_scopes,
        }
    }

    /// Reloads on SIGHUP and, with `watch`, when the config or a plugin file changes,
    /// until `shutdown`. Reloads run one at a time.
    pub fn start(self, watch: bool, plugin_files: Vec<PathBuf>, shutdown: CancellationToken) {
        let (requests, mut requested) = mpsc::channel(QUEUED);
        listen_for_hangup(requests.clone(), shutdown.clone());
        let mut watched = None;
        if watch {
            match FileWatch::new(requests) {
                Ok(mut files) => {
                    files.set(&self.path, &plugin_files);
                    watched = Some(files);
                }
                Err(error) => tracing::warn!(
                    %error,
                    "cannot watch the config and plugin files; reload with SIGHUP"
                ),
            }
        }
        tokio::spawn(async move {
            loop {
                let cause = tokio::select! {
                    () = shutdown.cancelled() => return,
                    cause = requested.recv() => match cause {
                        Some(cause) => cause,
                        None => return,
                    },
                };
                // Wait for quiet; what arrives meanwhile is part of this reload.
                while let Ok(Some(_)) = tokio::time::timeout(QUIET, requested.recv()).await {}
                if let Ok(plugin_files) = self.reload(&cause).await
                    && let Some(files) = &mut watched
                {
                    files.set(&self.path, &plugin_files);
                }
            }
        });
    }

    /// Reads the config again and serves its plugins: each unchanged plugin as it is,
    /// each changed or new one loaded anew, each failing one in its previous version.
    /// Returns the plugin files the config names (to watch), or why the config could
    /// not be used (nothing changed then).
    pub async fn reload(&self, cause: &Cause) -> Result<Vec<PathBuf>, ConfigError> {
        tracing::info!(%cause, "reloading plugins");
        let config = match Config::load(&self.path) {
            Ok(config) => config,
            Err(error) => {
                tracing::error!(%cause, %error, "reload refused: the config cannot be used; the plugins loaded before keep serving");
                let mut record = Record::now("reload_failed");
                record.reason = Some(error.to_string());
                record.detail = Some(serde_json::json!({ "cause": cause.to_string() }));
                self.audit.enqueue(record);
                return Err(error);
            }
        };
        self.warn_of_restart_only_changes();
        let previous = self.pipeline.registry();
        let rebuilt = previous.rebuild(&config.plugins, &self.sandbox).await;
        let mut summary = serde_json::Map::new();
        for (plugin, change) in &rebuilt.changes {
            summary.insert(plugin.to_string(), change.as_str().into());
            let tools = rebuilt.registry.tools_of(plugin);
            self.record_change(plugin, change, &tools, &rebuilt.registry, cause);
        }
        if let Err(problem) = config
            .rate_limits
            .check_tools(|tool| rebuilt.registry.tool(tool).is_some())
        {
            tracing::warn!("after the reload, {problem}");
        }
        let scopes = rebuilt.registry.scopes();
        let new_scopes: Vec<&str> = scopes
            .iter()
            .filter(|scope| !self.started_scopes.contains(scope))
            .map(Scope::as_str)
            .collect();
        if !new_scopes.is_empty() {
            tracing::warn!(
                scopes = ?new_scopes,
                "tools now need scopes the host did not know at start: calls check them at \
                 once, but the embedded authorization server grants them (and the metadata \
                 lists them) only after a restart"
            );
        }
        let failed = rebuilt
            .changes
            .iter()
            .filter(|(_, change)| matches!(change, Change::Failed { .. }))
            .count();
        let tools_changed = self.pipeline.replace_registry(rebuilt.registry);
        tracing::info!(%cause, tools_changed, failed, "plugins reloaded");
        let mut record = Record::now("reload");
        record.outcome = Some(if failed == 0 { "ok" } else { "partial" }.into());
        record.detail = Some(serde_json::json!({
            "cause": cause.to_string(),
            "plugins": summary,
            "tools_changed": tools_changed,
        }));
        self.audit.enqueue(record);
        Ok(config.plugins.values().map(|p| p.path.clone()).collect())
    }

    /// Logs and audits what happened to one plugin.
    fn record_change(
        &self,
        plugin: &PluginName,
        change: &Change,
        tools: &[&str],
        registry: &crate::registry::Registry,
        cause: &Cause,
    ) {
        let record = |event: &str| {
            let mut record = Record::now(event);
            record.plugin = Some(plugin.to_string());
            record
        };
        match change {
            Change::Unchanged => {}
            Change::Added | Change::Replaced => {
                tracing::info!(%plugin, ?tools, change = change.as_str(), "plugin loaded");
                let mut record = record("plugin_loaded");
                record.plugin_sha256 = registry
                    .plugins()
                    .iter()
                    .find(|p| &p.name == plugin)
                    .map(|p| hex::encode(p.sha256));
                record.detail = Some(serde_json::json!({
                    "tools": tools,
                    "change": change.as_str(),
                    "cause": cause.to_string(),
                }));
                self.audit.enqueue(record);
            }
            Change::Removed => {
                tracing::info!(%plugin, "plugin unloaded: no longer in the config");
                let mut record = record("plugin_unloaded");
                record.detail = Some(serde_json::json!({ "cause": cause.to_string() }));
                self.audit.enqueue(record);
            }
            Change::Failed {
                error,
                kept_previous,
            } => {
                if *kept_previous {
                    tracing::error!(%error, "plugin not reloaded; its previous version keeps serving");
                } else {
                    tracing::error!(%error, "plugin not loaded");
                }
                let mut record = record("plugin_load_failed");
                record.reason = Some(error.to_string());
                record.detail = Some(serde_json::json!({
                    "kept_previous": kept_previous,
                    "cause": cause.to_string(),
                }));
                self.audit.enqueue(record);
            }
        }
    }

    /// Warns when a section that only applies at start differs from the one running.
    fn warn_of_restart_only_changes(&self) {
        let (Some(started), Some(now)) = (&self.started_with, restart_only_sections(&self.path))
        else {
            return;
        };
        let mut changed: Vec<&str> = started
            .keys()
            .chain(now.keys())
            .filter(|section| started.get(*section) != now.get(*section))
            .map(String::as_str)
            .collect();
        changed.sort_unstable();
        changed.dedup();
        if !changed.is_empty() {
            tracing::warn!(
                sections = ?changed,
                "config sections other than [plugins] changed; they apply when the host restarts"
            );
        }
    }
}

/// The config file's top-level tables other than `[plugins]`, as written (none if the
/// file cannot be read or parsed; the reload reports why).
fn restart_only_sections(path: &Path) -> Option<toml::Table> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut table: toml::Table = toml::from_str(&text).ok()?;
    table.remove("plugins");
    Some(table)
}

/// Sends a reload request on each SIGHUP, until `shutdown`.
fn listen_for_hangup(requests: mpsc::Sender<Cause>, shutdown: CancellationToken) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hangups = match signal(SignalKind::hangup()) {
            Ok(hangups) => hangups,
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGHUP");
                return;
            }
        };
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    got = hangups.recv() => {
                        if got.is_none() {
                            return;
                        }
                        let _ = requests.try_send(Cause::Signal);
                    }
                }
            }
        });
    }
    #[cfg(not(unix))]
    let _ = (requests, shutdown);
}

/// Watches the folders of the config and plugin files, and asks for a reload when
/// one of those files is written, created, renamed or removed. Folders, not files:
/// editors and deploy scripts replace a file by renaming another onto it.
struct FileWatch {
    watcher: notify::RecommendedWatcher,
    folders: HashSet<PathBuf>,
    files: Arc<Mutex<HashSet<PathBuf>>>,
}

impl FileWatch {
    fn new(requests: mpsc::Sender<Cause>) -> notify::Result<Self> {
        let files: Arc<Mutex<HashSet<PathBuf>>> = Arc::default();
        let watched = files.clone();
        let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            let Ok(event) = event else { return };
            if matches!(event.kind, notify::EventKind::Access(_)) {
                return;
            }
            let files = watched.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(path) = event.paths.iter().find(|path| files.contains(*path)) {
                // A full queue already holds a reload that will read this change.
                let _ = requests.try_send(Cause::Changed(path.clone()));
            }
        })?;
        Ok(Self {
            watcher,
            folders: HashSet::new(),
            files,
        })
    }

    /// Watches `config` and `plugins` (and nothing else).
    fn set(&mut self, config: &Path, plugins: &[PathBuf]) {
        let wanted: Vec<(PathBuf, PathBuf)> = std::iter::once(config)
            .chain(plugins.iter().map(PathBuf::as_path))
            .filter_map(watch_key)
            .collect();
        let folders: HashSet<PathBuf> = wanted.iter().map(|(folder, _)| folder.clone()).collect();
        for gone in self.folders.difference(&folders) {
            let _ = self.watcher.unwatch(gone);
        }
        for folder in folders.difference(&self.folders) {
            if let Err(error) = self
                .watcher
                .watch(folder, notify::RecursiveMode::NonRecursive)
            {
                tracing::warn!(folder = %folder.display(), %error, "cannot watch a folder for changes; reload with SIGHUP");
            }
        }
        self.folders = folders;
        *self.files.lock().unwrap_or_else(|e| e.into_inner()) =
            wanted.into_iter().map(|(_, file)| file).collect();
    }
}

/// The folder to watch for `file` (canonical, as the watcher reports paths under it)
/// and the path the watcher will report for the file.
fn watch_key(file: &Path) -> Option<(PathBuf, PathBuf)> {
    let name = file.file_name()?;
    let parent = match file.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let folder = std::fs::canonicalize(parent).ok()?;
    let file = folder.join(name);
    Some((folder, file))
}
