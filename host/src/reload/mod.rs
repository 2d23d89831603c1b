//! Hot reload. On SIGHUP, and when the config file or a plugin's file changes (a file
//! watcher, unless `[reload] watch = false`), the config is read again and the plugin
//! set is rebuilt beside the one serving, then swapped in whole: new calls use it,
//! calls in flight finish on the plugins they started with, and no connection drops.
//! A config that cannot be read changes nothing; a plugin that fails to load keeps its
//! previous version serving. Each reload is logged and audited, and clients with an
//! open session are told when the tools changed. Only `[plugins]` is reloaded: the
//! other sections apply at the next start (a changed one is named in a warning).

mod folders;

use crate::audit::{Audit, Record};
use crate::config::{Config, ConfigError};
use crate::domain::{PluginName, Scope};
use crate::pipeline::Pipeline;
use crate::registry::rebuild::Change;
use crate::sandbox::Sandbox;
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

/// The longest a reload waits for quiet: files touched without pause still get one.
const MAX_WAIT: Duration = Duration::from_secs(5);

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
    /// The config text the host started with.
    started_text: String,
    /// Its sections other than `[plugins]`.
    started_with: Option<toml::Table>,
    /// The tool scopes at start: what authentication advertises and the embedded
    /// authorization server grants.
    started_scopes: Vec<Scope>,
}

impl Reloader {
    /// A reloader of the plugins `pipeline` serves, from the config at `path`, whose
    /// text was `started_text` when the host loaded it.
    pub fn new(
        path: PathBuf,
        started_text: String,
        pipeline: Arc<Pipeline>,
        sandbox: Arc<Sandbox>,
        audit: Arc<Audit>,
    ) -> Self {
        let started_with = restart_only_sections(&started_text);
        let started_scopes = pipeline.scopes();
        Self {
            path,
            pipeline,
            sandbox,
            audit,
            started_text,
            started_with,
            started_scopes,
        }
    }

    /// Reloads on each of `hangups` and, with `watch`, when the config or a plugin
    /// file changes, until `shutdown`. Reloads run one at a time. A config changed
    /// while the host was starting is reloaded at once.
    pub fn start(
        self,
        hangups: Hangups,
        watch: bool,
        plugin_files: Vec<PathBuf>,
        shutdown: CancellationToken,
    ) {
        let (requests, mut requested) = mpsc::channel(QUEUED);
        hangups.forward(requests.clone(), shutdown.clone());
        let mut watched = None;
        if watch {
            match FileWatch::new(requests.clone()) {
                Ok(mut files) => {
                    files.set(&self.path, &plugin_files);
                    watched = Some(files);
                }
                Err(error) => tracing::warn!(
                    %error,
                    "cannot watch the config and plugin files; reload with SIGHUP"
                ),
            }
            let now = std::fs::read_to_string(&self.path).unwrap_or_default();
            if now != self.started_text {
                let _ = requests.try_send(Cause::Changed(self.path.clone()));
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
                // Wait for quiet (at most MAX_WAIT); what arrives meanwhile is part of
                // this reload.
                let deadline = tokio::time::Instant::now() + MAX_WAIT;
                while tokio::time::Instant::now() < deadline {
                    let quiet = QUIET.min(deadline - tokio::time::Instant::now());
                    match tokio::time::timeout(quiet, requested.recv()).await {
                        Ok(Some(_)) => continue,
                        Ok(None) | Err(_) => break,
                    }
                }
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
        self.warn_of_restart_only_changes(&config);
        let previous = self.pipeline.registry();
        let rebuilt = previous.rebuild(&config.plugins, &self.sandbox).await;
        let mut summary = serde_json::Map::new();
        for (plugin, change) in &rebuilt.changes {
            summary.insert(plugin.to_string(), change.as_str().into());
            let tools = rebuilt.registry.tools_of(plugin);
            let was_serving = previous.plugins().iter().any(|p| &p.name == plugin);
            self.record_change(
                plugin,
                change,
                &tools,
                &rebuilt.registry,
                cause,
                was_serving,
            );
        }
        self.warn_of_missing_credentials(&config, &rebuilt.changes);
        let (needed, pool) = (config.pool_size(), self.sandbox.pool());
        if needed.instances > pool.instances || needed.call_fds > pool.call_fds {
            tracing::warn!(
                instances = needed.instances,
                pool_instances = pool.instances,
                "the plugins' max_concurrency now adds up to more than the instance pool \
                 the host started with: calls past it fail while the pool is full; restart \
                 the host to size the pool for them"
            );
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
        was_serving: bool,
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
                    .map(|p| p.sha256_hex.clone());
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
                } else if was_serving {
                    tracing::error!(
                        %error,
                        "plugin not reloaded and no longer served: its grants or pin changed \
                         (the previous version may not run under the new table), or its tools \
                         clash with another plugin's"
                    );
                } else {
                    tracing::error!(%error, "plugin not loaded");
                }
                let mut record = record("plugin_load_failed");
                record.reason = Some(error.to_string());
                record.detail = Some(serde_json::json!({
                    "kept_previous": kept_previous,
                    "was_serving": was_serving,
                    "cause": cause.to_string(),
                }));
                self.audit.enqueue(record);
            }
        }
    }

    /// Warns when a section that only applies at start differs from the one running.
    fn warn_of_restart_only_changes(&self, config: &Config) {
        let (Some(started), Some(now)) = (
            &self.started_with,
            restart_only_sections(&config.source_text),
        ) else {
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

    /// Warns of each credential a newly loaded plugin is granted that has no value
    /// (the credential source is the one the host started with).
    fn warn_of_missing_credentials(&self, config: &Config, changes: &[(PluginName, Change)]) {
        let source = self.sandbox.credentials();
        for (plugin, change) in changes {
            if !matches!(change, Change::Added | Change::Replaced) {
                continue;
            }
            let granted = config.plugins.get(plugin).map(|p| p.credentials.as_slice());
            for name in granted.unwrap_or_default() {
                match source.get(name.as_str()) {
                    Ok(Some(_)) => {}
                    Ok(None) => tracing::warn!(
                        %plugin,
                        credential = %name,
                        "credential has no value: {}; the plugin's reads of it fail until it \
                         is set (a credential store first used by a reload is opened only \
                         when the host restarts)",
                        source.describe(name.as_str())
                    ),
                    Err(_) => {
                        tracing::warn!(%plugin, credential = %name, "credential cannot be read")
                    }
                }
            }
        }
    }
}

/// A config's top-level tables other than `[plugins]`, as written (none if the text
/// does not parse; the reload reports why).
fn restart_only_sections(text: &str) -> Option<toml::Table> {
    let mut table: toml::Table = toml::from_str(text).ok()?;
    table.remove("plugins");
    Some(table)
}

/// SIGHUP, listened for from the moment the host starts loading (its default action
/// would end the process), forwarded as reload requests once serving starts.
pub struct Hangups {
    #[cfg(unix)]
    signals: Option<tokio::signal::unix::Signal>,
}

impl Hangups {
    /// Starts listening for SIGHUP. Must be called within a Tokio runtime.
    pub fn listen() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let signals = signal(SignalKind::hangup())
                .inspect_err(|error| tracing::warn!(%error, "cannot listen for SIGHUP"))
                .ok();
            Self { signals }
        }
        #[cfg(not(unix))]
        Self {}
    }

    /// Sends a reload request on each SIGHUP (one that came while the host started,
    /// too), until `shutdown`.
    fn forward(self, requests: mpsc::Sender<Cause>, shutdown: CancellationToken) {
        #[cfg(unix)]
        if let Some(mut hangups) = self.signals {
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
}

/// Watches the folders of the config and plugin files, and asks for a reload when
/// one of those files is written, created, renamed or removed. Folders, not files:
/// editors and deploy scripts replace a file by renaming another onto it.
struct FileWatch {
    watcher: folders::Folders,
    folders: HashSet<PathBuf>,
    files: Arc<Mutex<HashSet<PathBuf>>>,
}

impl FileWatch {
    fn new(requests: mpsc::Sender<Cause>) -> std::io::Result<Self> {
        let files: Arc<Mutex<HashSet<PathBuf>>> = Arc::default();
        let watched = files.clone();
        let watcher = folders::Folders::new(Box::new(move |path| {
            if watched
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .contains(path)
            {
                // A full queue already holds a reload that will read this change.
                let _ = requests.try_send(Cause::Changed(path.to_owned()));
            }
        }))?;
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
            .flat_map(watch_points)
            .collect();
        let folders: HashSet<PathBuf> = wanted.iter().map(|(folder, _)| folder.clone()).collect();
        for gone in self.folders.difference(&folders) {
            self.watcher.unwatch(gone);
        }
        for folder in folders.difference(&self.folders) {
            if let Err(error) = self.watcher.watch(folder) {
                tracing::warn!(folder = %folder.display(), %error, "cannot watch a folder for changes; reload with SIGHUP");
            }
        }
        self.folders = folders;
        *self.files.lock().unwrap_or_else(|e| e.into_inner()) =
            wanted.into_iter().map(|(_, file)| file).collect();
    }
}

/// Symbolic links followed at most, as the kernel does.
const MAX_LINKS: usize = 40;

/// Where to watch `file`: (folder, path the watcher reports) for the file where its
/// links lead, and for every symbolic link on the way, in the folder that holds it.
/// A link swapped to point elsewhere (a ConfigMap's `..data`, a `current` release
/// link) then changes the file as surely as writing it does. Folders are canonical,
/// as the watcher reports paths under them.
fn watch_points(file: &Path) -> Vec<(PathBuf, PathBuf)> {
    let mut points = Vec::new();
    let Ok(mut current) = std::path::absolute(file) else {
        return points;
    };
    for _ in 0..MAX_LINKS {
        let link = current
            .ancestors()
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .skip(1)
            .find(|prefix| prefix.is_symlink())
            .map(Path::to_path_buf);
        let Some(link) = link else {
            break;
        };
        let (Some(folder), Ok(target)) = (link.parent(), std::fs::read_link(&link)) else {
            break;
        };
        if let Some(point) = point_in(folder, &link) {
            points.push(point);
        }
        let rest = current
            .strip_prefix(&link)
            .map(Path::to_path_buf)
            .unwrap_or_default();
        current = folder.join(target).join(rest);
    }
    match current
        .parent()
        .and_then(|folder| point_in(folder, &current))
    {
        Some(point) => points.push(point),
        None => tracing::warn!(
            file = %file.display(),
            "cannot watch this file: its folder does not exist; reload with SIGHUP"
        ),
    }
    points
}

/// `(canonical folder, canonical folder + name)` for `path` in `folder`.
fn point_in(folder: &Path, path: &Path) -> Option<(PathBuf, PathBuf)> {
    let folder = std::fs::canonicalize(folder).ok()?;
    let reported = folder.join(path.file_name()?);
    Some((folder, reported))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_on_the_way_to_a_file_are_watched_in_their_folders() {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        // A ConfigMap's layout: host.toml -> ..data/host.toml, ..data -> ..v1.
        std::fs::create_dir(root.join("..v1")).unwrap();
        std::fs::write(root.join("..v1/host.toml"), "").unwrap();
        std::os::unix::fs::symlink("..v1", root.join("..data")).unwrap();
        std::os::unix::fs::symlink("..data/host.toml", root.join("host.toml")).unwrap();
        let points = watch_points(&root.join("host.toml"));
        assert_eq!(
            points,
            [
                (root.clone(), root.join("host.toml")),
                (root.clone(), root.join("..data")),
                (root.join("..v1"), root.join("..v1/host.toml")),
            ]
        );
        // A plain file: its folder and itself.
        std::fs::write(root.join("plain.wasm"), "").unwrap();
        assert_eq!(
            watch_points(&root.join("plain.wasm")),
            [(root.clone(), root.join("plain.wasm"))]
        );
        // A file whose folder is missing cannot be watched (and says so).
        assert!(watch_points(&root.join("missing/x.wasm")).is_empty());
        // A loop of links ends.
        std::os::unix::fs::symlink("loop", root.join("loop")).unwrap();
        assert!(watch_points(&root.join("loop")).len() <= MAX_LINKS + 1);
    }
}
