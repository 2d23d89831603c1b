//! The writer: one thread owns the log, takes records from a bounded queue in batches,
//! seals and appends each batch with one write, and syncs it to disk before answering
//! (`fsync = "always"`: many calls share one sync under load) or on a timer
//! (`"interval"`, where a batch gathers for [`LINGER`] first). When the disk refuses,
//! the writer marks the log failed, and retries on each tick until it can write again.

use super::log::Log;
use super::record::Record;
use crate::telemetry;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// Most records written with one write and one sync.
const MAX_BATCH: usize = 1024;

/// With `fsync = "interval"`, how long the writer lets a batch gather after its first
/// message. No caller waits for those writes, so the wait costs none of them; without
/// it, at low load every record costs the writer a wake-up, a lock, a stat and a write.
const LINGER: Duration = Duration::from_millis(2);

/// Whether a record's writer answer waits for the disk.
pub type Ack = oneshot::Sender<Result<(), String>>;

/// What the writer is asked to do.
pub enum Message {
    /// Write a record; answer once it is durable (or, without an ack, just write it).
    Append(Box<Record>, Option<Ack>),
    /// Time passed: sync what `interval` mode left unsynced; retry a failed log.
    Tick,
    /// Write what is queued, sync, and stop.
    Close(oneshot::Sender<()>),
}

/// What the writer shares with the handle.
pub struct Shared {
    /// Set while the log cannot be written.
    pub failed: AtomicBool,
    /// Records waiting in the queue.
    pub queued: AtomicU64,
}

/// The writer's settings.
pub struct Settings {
    /// The live file.
    pub path: PathBuf,
    /// Rotate past this size.
    pub max_size: u64,
    /// Sync every batch before answering.
    pub sync_always: bool,
    /// With `sync_always` off, sync at least this often.
    pub interval: Duration,
    /// The replica every record is stamped with.
    pub replica: Option<String>,
}

/// Runs the writer until it is closed or every sender is gone.
pub fn run(settings: Settings, log: Log, mut queue: mpsc::Receiver<Message>, shared: Arc<Shared>) {
    let mut log = Some(log);
    let mut unsynced = false;
    let mut last_sync = Instant::now();
    while let Some(first) = queue.blocking_recv() {
        if !settings.sync_always {
            std::thread::sleep(LINGER);
        }
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(message) => batch.push(message),
                Err(_) => break,
            }
        }
        let mut records = Vec::new();
        let mut acks = Vec::new();
        let mut close = None;
        let mut tick = false;
        for message in batch {
            match message {
                Message::Append(record, ack) => {
                    records.push(record);
                    acks.extend(ack);
                }
                Message::Tick => tick = true,
                Message::Close(done) => close = Some(done),
            }
        }
        shared
            .queued
            .fetch_sub(records.len() as u64, Ordering::Relaxed);
        if log.is_none() && (tick || !records.is_empty() || close.is_some()) {
            log = reopen(&settings, &shared);
        }
        let started = Instant::now();
        let result = match log.as_mut() {
            None => Err("the audit log cannot be written".to_owned()),
            Some(open) => {
                let mut written = open.append(&records);
                if written.is_ok() && !records.is_empty() {
                    unsynced = true;
                }
                let due = tick && last_sync.elapsed() >= settings.interval;
                if written.is_ok() && unsynced && (settings.sync_always || due || close.is_some()) {
                    written = open.sync();
                    unsynced = false;
                    last_sync = Instant::now();
                }
                written.map_err(|e| e.to_string())
            }
        };
        if !records.is_empty() {
            telemetry::audit_written(started.elapsed());
        }
        if let Err(error) = &result {
            if !shared.failed.swap(true, Ordering::SeqCst) {
                tracing::error!(
                    path = %settings.path.display(),
                    %error,
                    "the audit log cannot be written: tool calls are refused until it can"
                );
            }
            log = None;
        }
        for ack in acks {
            let _ = ack.send(result.clone());
        }
        if let Some(done) = close {
            let _ = done.send(());
            return;
        }
    }
    if let Some(open) = log.as_mut() {
        let _ = open.sync();
    }
}

/// Opens the log again after a failure (cutting off any record the failure left half
/// written), and says so in the log.
fn reopen(settings: &Settings, shared: &Shared) -> Option<Log> {
    match Log::open(&settings.path, settings.max_size) {
        Ok((mut log, recovered)) => {
            log.set_replica(settings.replica.clone());
            let mut note = Record::now("recovered");
            note.reason = Some(match recovered.and_then(|r| r.reason) {
                Some(reason) => format!("the audit log can be written again; {reason}"),
                None => "the audit log can be written again".to_owned(),
            });
            let written = log.append(&[Box::new(note)]).and_then(|()| log.sync());
            match written {
                Ok(()) => {
                    shared.failed.store(false, Ordering::SeqCst);
                    tracing::info!(path = %settings.path.display(), "the audit log can be written again");
                    Some(log)
                }
                Err(_) => None,
            }
        }
        Err(_) => None,
    }
}
