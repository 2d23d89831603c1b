//! The audit log on disk: the live file, the files rotated out of it, and where the
//! chain stands (the next record's number and the last record's hash), recovered from
//! the files at start. A record cut off by a crash (a last line without its newline)
//! is cut away, and a `recovered` record says so.
//!
//! More than one process may append: the serving host and the administrative commands
//! (`users add`, `auth rotate-key`, ...) run beside it. Each append holds an exclusive
//! lock on `PATH.lock` and first checks that the live file is still the one it last
//! wrote to, at the size it left it; if another process appended or rotated meanwhile,
//! it reads where the chain stands again, so the chain stays one chain.

use super::record::{GENESIS, Record};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// How much of a file's end is read to find its last record: far more than one line.
const TAIL_BYTES: u64 = 1024 * 1024;

/// The live log file and the chain's position.
pub struct Log {
    path: PathBuf,
    /// `PATH.lock`, locked while the files are read or written.
    lock: File,
    file: File,
    /// Bytes in the live file.
    size: u64,
    /// The number of the live file's first record.
    first_seq: u64,
    /// The number the next record gets.
    next_seq: u64,
    /// The last record's hash.
    prev: String,
    /// Rotate before the live file grows past this.
    max_size: u64,
    /// The replica every record is stamped with, if named.
    replica: Option<String>,
}

impl Log {
    /// Opens (or creates) the log at `path`, continuing the chain where the files end.
    /// Returns the log and, if a cut-off record was removed, a record saying so.
    pub fn open(path: &Path, max_size: u64) -> std::io::Result<(Self, Option<Record>)> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)?;
        }
        let lock = private_file(&lock_name(path))?;
        lock.lock()?;
        let opened = Self::open_locked(path, max_size, lock.try_clone()?);
        lock.unlock()?;
        opened
    }

    /// [`Log::open`], with `lock` held.
    fn open_locked(
        path: &Path,
        max_size: u64,
        lock: File,
    ) -> std::io::Result<(Self, Option<Record>)> {
        let mut file = private_file(path)?;
        let (last, torn) = last_line(&mut file)?;
        let mut recovered = None;
        if torn > 0 {
            let size = file.metadata()?.len();
            file.set_len(size - torn)?;
            file.sync_all()?;
            let mut record = Record::now("recovered");
            record.reason = Some(format!(
                "removed {torn} bytes of a record cut off at the end of {} (the host \
                 stopped while writing it)",
                path.display()
            ));
            recovered = Some(record);
        }
        let size = file.metadata()?.len();
        // An empty live file continues from the last rotated file, if any.
        let last = match last {
            Some(line) => Some(line),
            None => match rotated(path)?.last() {
                Some(previous) => last_line(&mut File::open(previous)?)?.0,
                None => None,
            },
        };
        let (next_seq, prev) = match last {
            None => (0, GENESIS.to_owned()),
            Some(line) => chain_position(&line).ok_or_else(|| {
                std::io::Error::other(format!(
                    "the last record of {} is not an audit record; run `mcp-wasm-host audit \
                     verify` on it",
                    path.display()
                ))
            })?,
        };
        let first_seq = match size {
            0 => next_seq,
            _ => first_seq_of(path)?.unwrap_or(next_seq),
        };
        let log = Self {
            path: path.to_owned(),
            lock,
            file,
            size,
            first_seq,
            next_seq,
            prev,
            max_size,
            replica: None,
        };
        Ok((log, recovered))
    }

    /// Stamps every record from now on with `replica` (`[audit] replica`).
    pub fn set_replica(&mut self, replica: Option<String>) {
        self.replica = replica;
    }

    /// Seals `record` as the next in the chain: its line (with the newline).
    fn seal(&mut self, record: &Record) -> String {
        let (mut line, hash) = record.seal(self.next_seq, &self.prev, self.replica.as_deref());
        line.push('\n');
        self.next_seq += 1;
        self.prev = hash;
        line
    }

    /// Appends sealed lines, each batch with one write; the live file is rotated
    /// between lines so that it stays within its size (a single line larger than the
    /// size gets a file of its own). Holds the lock throughout.
    pub fn append(&mut self, records: &[Box<Record>]) -> std::io::Result<()> {
        self.lock.lock()?;
        let appended = self.catch_up().and_then(|recovered| {
            let recovered: Vec<Box<Record>> = recovered.into_iter().map(Box::new).collect();
            self.append_locked(&recovered)?;
            self.append_locked(records)
        });
        let unlocked = self.lock.unlock();
        appended.and(unlocked)
    }

    /// If another process appended to or rotated the live file since we last wrote,
    /// reads where the chain stands again (a record it left cut off is removed, and the
    /// returned record says so).
    fn catch_up(&mut self) -> std::io::Result<Option<Record>> {
        let unchanged = match std::fs::metadata(&self.path) {
            Ok(on_disk) => {
                on_disk.len() == self.size && same_file(&on_disk, &self.file.metadata()?)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
            Err(e) => return Err(e),
        };
        if unchanged {
            return Ok(None);
        }
        let lock = self.lock.try_clone()?;
        let (fresh, recovered) = Self::open_locked(&self.path, self.max_size, lock)?;
        *self = fresh;
        Ok(recovered)
    }

    fn append_locked(&mut self, records: &[Box<Record>]) -> std::io::Result<()> {
        let mut pending = String::new();
        for record in records {
            let seq = self.next_seq;
            let line = self.seal(record);
            let after = self.size + (pending.len() + line.len()) as u64;
            if after > self.max_size && self.size + pending.len() as u64 > 0 {
                self.write_raw(pending.as_bytes())?;
                pending.clear();
                self.rotate(seq)?;
            }
            pending.push_str(&line);
        }
        self.write_raw(pending.as_bytes())
    }

    fn write_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        self.file.write_all(bytes)?;
        self.size += bytes.len() as u64;
        Ok(())
    }

    /// Makes everything appended so far durable.
    pub fn sync(&mut self) -> std::io::Result<()> {
        self.file.sync_data()
    }

    /// The number the next sealed record gets.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Moves the live file aside as `PATH.<first seq, 20 digits>` and starts a new one;
    /// the new file's first record follows the old file's last.
    fn rotate(&mut self, next_first_seq: u64) -> std::io::Result<()> {
        self.file.sync_all()?;
        let aside = rotated_name(&self.path, self.first_seq);
        std::fs::rename(&self.path, &aside)?;
        self.file = private_file(&self.path)?;
        if let Some(dir) = self.path.parent().filter(|p| !p.as_os_str().is_empty()) {
            // The rename and the new file survive a crash.
            File::open(dir).and_then(|d| d.sync_all()).ok();
        }
        self.size = 0;
        self.first_seq = next_first_seq;
        tracing::info!(rotated = %aside.display(), "audit log rotated");
        Ok(())
    }
}

/// Opens (or creates, readable by its owner only) `path` for reading and appending.
fn private_file(path: &Path) -> std::io::Result<File> {
    let mut options = OpenOptions::new();
    options.read(true).append(true).create(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

/// `PATH.lock`: the lock every process appending to `PATH` takes.
fn lock_name(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

/// Whether two metadata are of the same file.
#[cfg(unix)]
fn same_file(a: &std::fs::Metadata, b: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    (a.dev(), a.ino()) == (b.dev(), b.ino())
}

/// Whether two metadata are of the same file (sizes are compared by the caller).
#[cfg(not(unix))]
fn same_file(_: &std::fs::Metadata, _: &std::fs::Metadata) -> bool {
    true
}

/// `PATH.<seq>`, zero-padded so the names sort in chain order.
fn rotated_name(path: &Path, first_seq: u64) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{first_seq:020}"));
    PathBuf::from(name)
}

/// The files rotated out of `path`, in chain order.
pub fn rotated(path: &Path) -> std::io::Result<Vec<PathBuf>> {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Ok(Vec::new());
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let prefix = format!("{}.", name.to_string_lossy());
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .filter(|entry| {
            let entry_name = entry.file_name().to_string_lossy().into_owned();
            entry_name
                .strip_prefix(&prefix)
                .is_some_and(|rest| rest.len() == 20 && rest.bytes().all(|b| b.is_ascii_digit()))
        })
        .map(|entry| entry.path())
        .collect();
    found.sort();
    Ok(found)
}

/// The last complete line of `file` (without its newline), and how many bytes after
/// it belong to a line that was never finished.
fn last_line(file: &mut File) -> std::io::Result<(Option<String>, u64)> {
    let size = file.metadata()?.len();
    if size == 0 {
        return Ok((None, 0));
    }
    let start = size.saturating_sub(TAIL_BYTES);
    file.seek(SeekFrom::Start(start))?;
    let mut tail = Vec::new();
    file.take(TAIL_BYTES).read_to_end(&mut tail)?;
    let Some(end) = tail.iter().rposition(|&b| b == b'\n') else {
        if start == 0 {
            // Not one finished line: all of it was cut off.
            return Ok((None, size));
        }
        return Err(std::io::Error::other(
            "the audit log's last line is over 1 MiB",
        ));
    };
    let torn = (tail.len() - end - 1) as u64;
    let begin = tail[..end]
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    if begin == 0 && start > 0 {
        return Err(std::io::Error::other(
            "the audit log's last line is over 1 MiB",
        ));
    }
    let line = String::from_utf8_lossy(&tail[begin..end]).into_owned();
    Ok((Some(line), torn))
}

/// The first record's number in `path`, if it has one.
fn first_seq_of(path: &Path) -> std::io::Result<Option<u64>> {
    let mut first = String::new();
    let file = File::open(path)?;
    std::io::BufRead::read_line(&mut std::io::BufReader::new(file), &mut first)?;
    Ok(serde_json::from_str::<serde_json::Value>(&first)
        .ok()
        .and_then(|v| v["seq"].as_u64()))
}

/// The next record's number and the previous hash, from a record's line.
fn chain_position(line: &str) -> Option<(u64, String)> {
    let value: serde_json::Value = serde_json::from_str(line).ok()?;
    let seq = value["seq"].as_u64()?;
    let hash = value["hash"].as_str()?.to_owned();
    Some((seq + 1, hash))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(log: &mut Log, event: &str) {
        log.append(&[Box::new(Record::now(event))]).unwrap();
    }

    #[test]
    fn the_chain_continues_across_restarts_and_rotations() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let (mut log, recovered) = Log::open(&path, 400).unwrap();
        assert!(recovered.is_none());
        for _ in 0..5 {
            write(&mut log, "start");
        }
        let next = log.next_seq();
        let prev = log.prev.clone();
        drop(log);
        // Rotated at least once (each line is ~200 bytes).
        assert!(!rotated(&path).unwrap().is_empty());
        let (log, _) = Log::open(&path, 400).unwrap();
        assert_eq!((log.next_seq(), log.prev.clone()), (next, prev));
    }

    #[test]
    fn a_cut_off_record_is_removed_and_reported() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let (mut log, _) = Log::open(&path, 1 << 20).unwrap();
        write(&mut log, "start");
        write(&mut log, "stop");
        let (next, prev) = (log.next_seq(), log.prev.clone());
        drop(log);
        let whole = std::fs::read(&path).unwrap();
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"{\"event\":\"tool_c")
            .unwrap();
        let (log, recovered) = Log::open(&path, 1 << 20).unwrap();
        assert!(
            recovered
                .unwrap()
                .reason
                .unwrap()
                .contains("removed 16 bytes")
        );
        assert_eq!((log.next_seq(), log.prev.clone()), (next, prev));
        assert_eq!(std::fs::read(&path).unwrap(), whole);
    }

    #[test]
    fn two_writers_keep_one_chain() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        // A small size: the writers also rotate under each other.
        let (mut host, _) = Log::open(&path, 1200).unwrap();
        let (mut admin, _) = Log::open(&path, 1200).unwrap();
        for round in 0..8 {
            write(&mut host, "tool_call");
            if round % 2 == 0 {
                write(&mut admin, "user_added");
            }
        }
        write(&mut host, "stop");
        let mut files = rotated(&path).unwrap();
        assert!(files.len() > 1, "{files:?}");
        files.push(path.clone());
        let verified = crate::audit::verify::verify(&files).unwrap();
        assert_eq!(verified.records, 13);
        assert_eq!(verified.first_seq, Some(0));
        assert_eq!(verified.last_seq, Some(12));
    }

    #[test]
    fn a_log_that_is_not_an_audit_log_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        std::fs::write(&path, "hello\n").unwrap();
        let err = Log::open(&path, 1 << 20).err().unwrap().to_string();
        assert!(err.contains("not an audit record"), "{err}");
    }
}
