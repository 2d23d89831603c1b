//! The tamper-evident audit log: `[audit]`, and the handle every part of the host
//! writes records through. One JSON line per tool call and per refused request (and per
//! start, stop, loaded plugin, registered client), hash-chained ([`record`]), written
//! off the request path by one writer thread ([`writer`]) behind a bounded queue,
//! rotated by size with the chain kept across files ([`log`]), checked by
//! `mcp-wasm-host audit verify` ([`verify`]).
//!
//! With `fsync = "always"` a call is answered only after its record is on disk; with
//! `"interval"`, once it is queued. If the log cannot be written, [`Audit::healthy`]
//! turns false and tool calls are refused: no call runs unaudited.

pub mod log;
pub mod record;
pub mod verify;
pub mod writer;

use crate::domain::{ByteSize, HumanDuration, MIB};
pub use record::{Record, RecordArguments};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use thiserror::Error;
use tokio::sync::{mpsc, oneshot};
use writer::{Message, Settings, Shared};

/// `[audit]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// The live log file (rotated files sit beside it). No path: no audit log.
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// When a record must be on disk.
    #[serde(default)]
    pub fsync: Fsync,
    /// With `fsync = "interval"`, how often.
    #[serde(default = "default_interval")]
    pub fsync_interval: HumanDuration,
    /// Rotate the live file before it grows past this.
    #[serde(default = "default_max_file_size")]
    pub max_file_size: ByteSize,
    /// How tool arguments are recorded.
    #[serde(default)]
    pub record_arguments: RecordArguments,
    /// Records that may wait for the writer; past it, calls wait for room.
    #[serde(default = "default_queue")]
    pub queue: usize,
    /// This replica's name, in every record it writes (several replicas: one chain
    /// each, in a file each; `audit verify` reports each chain).
    #[serde(default)]
    pub replica: Option<String>,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            path: None,
            fsync: Fsync::default(),
            fsync_interval: default_interval(),
            max_file_size: default_max_file_size(),
            record_arguments: RecordArguments::default(),
            queue: default_queue(),
            replica: None,
        }
    }
}

fn default_interval() -> HumanDuration {
    HumanDuration(Duration::from_secs(1))
}

fn default_max_file_size() -> ByteSize {
    ByteSize(100 * MIB)
}

fn default_queue() -> usize {
    8192
}

/// When a record must be on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Fsync {
    /// Before the call is answered (many calls share one sync under load).
    #[default]
    Always,
    /// Every `fsync_interval`; a crash may lose the last interval's records.
    Interval,
}

impl AuditConfig {
    /// Resolves the path against the config's folder and checks the numbers.
    pub fn resolve(&mut self, base: &Path) -> Result<(), String> {
        if let Some(path) = &self.path
            && path.is_relative()
        {
            self.path = Some(base.join(path));
        }
        if self.max_file_size.0 < 64 * 1024 {
            return Err(format!(
                "[audit] max_file_size = \"{}\": at least 64KiB",
                self.max_file_size
            ));
        }
        let interval = self.fsync_interval.0;
        if interval < Duration::from_millis(10) || interval > Duration::from_secs(60) {
            return Err(format!(
                "[audit] fsync_interval = \"{}\": from 10ms to 1m",
                self.fsync_interval
            ));
        }
        if !(1..=1_000_000).contains(&self.queue) {
            return Err(format!("[audit] queue = {}: from 1 to 1000000", self.queue));
        }
        if let Some(replica) = &self.replica {
            let good = (1..=64).contains(&replica.len())
                && replica
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
            if !good {
                return Err(format!(
                    "[audit] replica = {replica:?}: 1 to 64 letters, digits, `.`, `_` or `-`"
                ));
            }
        }
        Ok(())
    }
}

/// Why the audit log could not be used.
#[derive(Debug, Error)]
pub enum AuditError {
    /// The log could not be opened at start.
    #[error("cannot open the audit log {path}: {source}")]
    Open {
        /// The live file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The log cannot be written now.
    #[error("the audit log cannot be written ({0}); tool calls are refused until it can")]
    Unavailable(String),
}

/// The audit log of an administrative command run from a shell (`users add`, `auth
/// rotate-key`, `secrets set`, ...), beside a host that may be serving: opened before
/// the command changes anything (a log that cannot be written stops it first), written
/// once the change is made. Appends share the chain with the host ([`log`]).
pub struct AdminLog {
    log: Option<log::Log>,
}

impl AdminLog {
    /// Opens the configured log, if there is one.
    pub fn open(config: &AuditConfig) -> Result<Self, AuditError> {
        let Some(path) = &config.path else {
            return Ok(Self { log: None });
        };
        let (mut log, _) =
            log::Log::open(path, config.max_file_size.0).map_err(|source| AuditError::Open {
                path: path.clone(),
                source,
            })?;
        log.set_replica(config.replica.clone());
        Ok(Self { log: Some(log) })
    }

    /// Writes `event` with `detail`, by the local operator, and waits for the disk.
    pub fn record(self, event: &str, detail: serde_json::Value) -> Result<(), AuditError> {
        let Some(mut log) = self.log else {
            return Ok(());
        };
        let mut record = Record::now(event);
        record.subject = Some("local".into());
        record.transport = Some("cli".into());
        record.outcome = Some("ok".into());
        record.detail = Some(detail);
        log.append(&[Box::new(record)])
            .and_then(|()| log.sync())
            .map_err(|e| AuditError::Unavailable(e.to_string()))
    }
}

/// Where records go.
pub struct Audit {
    inner: Option<Inner>,
    record_arguments: RecordArguments,
}

struct Inner {
    queue: mpsc::Sender<Message>,
    shared: Arc<Shared>,
    sync_always: bool,
    writer: std::sync::Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Audit {
    /// No audit log.
    pub fn off() -> Self {
        Self {
            inner: None,
            record_arguments: RecordArguments::None,
        }
    }

    /// Opens the log `config` names (or none) and starts its writer; must run inside
    /// the Tokio runtime (the writer's timer is a task).
    pub fn start(config: &AuditConfig) -> Result<Self, AuditError> {
        let Some(path) = &config.path else {
            return Ok(Self::off());
        };
        let open = |source| AuditError::Open {
            path: path.clone(),
            source,
        };
        let (mut log, recovered) = log::Log::open(path, config.max_file_size.0).map_err(open)?;
        log.set_replica(config.replica.clone());
        let (queue, receiver) = mpsc::channel(config.queue);
        let shared = Arc::new(Shared {
            failed: AtomicBool::new(false),
            queued: AtomicU64::new(0),
        });
        let settings = Settings {
            path: path.clone(),
            max_size: config.max_file_size.0,
            sync_always: config.fsync == Fsync::Always,
            interval: config.fsync_interval.0,
            replica: config.replica.clone(),
        };
        let thread_shared = shared.clone();
        let writer = std::thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || writer::run(settings, log, receiver, thread_shared))
            .map_err(open)?;
        // Ticks sync `interval` mode and retry a failed log.
        let ticks = queue.clone();
        let every = config.fsync_interval.0.min(Duration::from_secs(1));
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(every);
            loop {
                interval.tick().await;
                if ticks.send(Message::Tick).await.is_err() {
                    return;
                }
            }
        });
        let audit = Self {
            inner: Some(Inner {
                queue,
                shared,
                sync_always: config.fsync == Fsync::Always,
                writer: std::sync::Mutex::new(Some(writer)),
            }),
            record_arguments: config.record_arguments,
        };
        if let Some(record) = recovered {
            tracing::warn!(
                reason = record.reason.as_deref().unwrap_or(""),
                "audit log recovered"
            );
            audit.enqueue(record);
        }
        Ok(audit)
    }

    /// Whether records can be written (always, without a log).
    pub fn healthy(&self) -> bool {
        self.inner
            .as_ref()
            .is_none_or(|inner| !inner.shared.failed.load(Ordering::SeqCst))
    }

    /// Whether there is a log at all.
    pub fn is_on(&self) -> bool {
        self.inner.is_some()
    }

    /// Records waiting for the writer.
    pub fn queued(&self) -> u64 {
        self.inner
            .as_ref()
            .map_or(0, |inner| inner.shared.queued.load(Ordering::Relaxed))
    }

    /// How tool arguments are recorded.
    pub fn record_arguments(&self) -> RecordArguments {
        self.record_arguments
    }

    /// Writes `record`: with `fsync = "always"`, returns once it is on disk; else once
    /// it is queued. Fails when the log cannot be written.
    pub async fn write(&self, record: Record) -> Result<(), AuditError> {
        let Some(inner) = &self.inner else {
            return Ok(());
        };
        if inner.shared.failed.load(Ordering::SeqCst) {
            return Err(AuditError::Unavailable("it failed earlier".into()));
        }
        let closed = || AuditError::Unavailable("the writer has stopped".into());
        inner.shared.queued.fetch_add(1, Ordering::Relaxed);
        if !inner.sync_always {
            return inner
                .queue
                .send(Message::Append(Box::new(record), None))
                .await
                .map_err(|_| closed());
        }
        let (ack, written) = oneshot::channel();
        inner
            .queue
            .send(Message::Append(Box::new(record), Some(ack)))
            .await
            .map_err(|_| closed())?;
        match written.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(AuditError::Unavailable(error)),
            Err(_) => Err(closed()),
        }
    }

    /// Writes `record` without waiting (for events outside a request); a failure is
    /// logged by the writer.
    pub fn enqueue(&self, record: Record) {
        if let Some(inner) = &self.inner {
            inner.shared.queued.fetch_add(1, Ordering::Relaxed);
            if inner
                .queue
                .try_send(Message::Append(Box::new(record), None))
                .is_err()
            {
                inner.shared.queued.fetch_sub(1, Ordering::Relaxed);
                tracing::warn!("audit queue full: an event record was dropped");
            }
        }
    }

    /// Writes what is queued, syncs and stops the writer.
    pub async fn close(&self) {
        let Some(inner) = &self.inner else {
            return;
        };
        let (done, closed) = oneshot::channel();
        if inner.queue.send(Message::Close(done)).await.is_ok() {
            let _ = closed.await;
        }
        let writer = inner
            .writer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(writer) = writer {
            let _ = tokio::task::spawn_blocking(move || writer.join()).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &Path, fsync: Fsync) -> AuditConfig {
        AuditConfig {
            path: Some(dir.join("audit.jsonl")),
            fsync,
            ..AuditConfig::default()
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn records_from_many_tasks_form_one_chain() {
        let dir = tempfile::tempdir().unwrap();
        for fsync in [Fsync::Always, Fsync::Interval] {
            let config = config(dir.path(), fsync);
            let audit = Arc::new(Audit::start(&config).unwrap());
            let tasks: Vec<_> = (0..200)
                .map(|n| {
                    let audit = audit.clone();
                    tokio::spawn(async move {
                        let mut record = Record::now("tool_call");
                        record.tool = Some(format!("t{n}"));
                        audit.write(record).await.unwrap();
                    })
                })
                .collect();
            for task in tasks {
                task.await.unwrap();
            }
            audit.close().await;
        }
        let verified = verify::verify(&[dir.path().join("audit.jsonl")]).unwrap();
        assert_eq!(verified.records, 400);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rotation_keeps_the_chain_across_files() {
        let dir = tempfile::tempdir().unwrap();
        let config = AuditConfig {
            max_file_size: ByteSize(64 * 1024),
            ..config(dir.path(), Fsync::Interval)
        };
        let audit = Audit::start(&config).unwrap();
        for n in 0..2000 {
            let mut record = Record::now("tool_call");
            record.tool = Some(format!("tool-{n}"));
            audit.write(record).await.unwrap();
        }
        audit.close().await;
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert!(files.len() > 2, "{files:?}");
        // In any order: verify puts them in chain order.
        files.reverse();
        let verified = verify::verify(&files).unwrap();
        assert_eq!(verified.records, 2000);
        // A missing file between two others breaks the chain (sorted: the live file,
        // then the rotated ones in order).
        files.sort();
        files.remove(2);
        assert!(verify::verify(&files).is_err());
    }

    #[test]
    fn bad_settings_name_the_key() {
        let mut config: AuditConfig = toml::from_str("max_file_size = \"1KiB\"").unwrap();
        assert!(
            config
                .resolve(Path::new("/"))
                .unwrap_err()
                .contains("max_file_size")
        );
        let err = toml::from_str::<AuditConfig>("fsync = \"sometimes\"").unwrap_err();
        assert!(err.to_string().contains("sometimes"), "{err}");
        let mut config: AuditConfig = toml::from_str("replica = \"a b\"").unwrap();
        let err = config.resolve(Path::new("/")).unwrap_err();
        assert!(err.contains("[audit] replica = \"a b\""), "{err}");
        let mut config: AuditConfig = toml::from_str("replica = \"eu-1.a\"").unwrap();
        assert!(config.resolve(Path::new("/")).is_ok());
        let err = toml::from_str::<AuditConfig>("record_arguments = \"all\"").unwrap_err();
        assert!(err.to_string().contains("all"), "{err}");
    }
}
