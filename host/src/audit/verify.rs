//! `mcp-wasm-host audit verify FILE...`: checks the hash chain across the live file and
//! the files rotated out of it (given in any order: they are put in chain order by
//! their first record), and names the first line that breaks it, and why. Files of
//! several logs (one per replica: `audit-a.jsonl`, `audit-b.jsonl` and their rotated
//! `.NNN` files) are grouped by log and each chain is checked and reported
//! ([`verify_chains`]); every record of a chain must name the same replica.

use super::record::{GENESIS, digest};
use serde_json::{Map, Value};
use std::io::BufRead;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// What a good chain holds.
#[derive(Debug, PartialEq, Eq)]
pub struct Verified {
    /// Records checked.
    pub records: u64,
    /// The first record's number (0 when the chain starts at the beginning).
    pub first_seq: Option<u64>,
    /// The last record's number.
    pub last_seq: Option<u64>,
    /// Files read.
    pub files: usize,
    /// The replica its records name (`None`: unnamed).
    pub replica: Option<String>,
}

/// One log's chain, verified: the live file's path and what it holds.
#[derive(Debug, PartialEq, Eq)]
pub struct VerifiedLog {
    /// The live file (the rotated files are beside it).
    pub log: PathBuf,
    /// The chain.
    pub chain: Verified,
}

/// Verifies each log's chain among `paths`: files are grouped by the live file they
/// belong to (`PATH` and `PATH.<seq>`), in the order the logs were first named.
pub fn verify_chains(paths: &[PathBuf]) -> Result<Vec<VerifiedLog>, VerifyError> {
    let mut logs: Vec<(PathBuf, Vec<PathBuf>)> = Vec::new();
    for path in paths {
        let log = live_file(path);
        match logs.iter_mut().find(|(l, _)| *l == log) {
            Some((_, files)) => files.push(path.clone()),
            None => logs.push((log, vec![path.clone()])),
        }
    }
    logs.into_iter()
        .map(|(log, files)| {
            Ok(VerifiedLog {
                chain: verify(&files)?,
                log,
            })
        })
        .collect()
}

/// The live file `path` belongs to: itself, or what it was rotated from
/// (`PATH.<20 digits>`).
fn live_file(path: &Path) -> PathBuf {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    match name.rsplit_once('.') {
        Some((stem, seq)) if seq.len() == 20 && seq.bytes().all(|b| b.is_ascii_digit()) => {
            path.with_file_name(stem)
        }
        _ => path.to_owned(),
    }
}

/// Why the chain does not hold.
#[derive(Debug, Error)]
pub enum VerifyError {
    /// A file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A line breaks the chain.
    #[error("{path}:{line}: {why}")]
    Broken {
        /// The file.
        path: PathBuf,
        /// The line, from 1.
        line: usize,
        /// What is wrong with it.
        why: String,
    },
}

/// Verifies the chain through `paths`.
pub fn verify(paths: &[PathBuf]) -> Result<Verified, VerifyError> {
    let mut ordered = Vec::new();
    for path in paths {
        ordered.push((first_seq(path)?, path.clone()));
    }
    // Files without records sort last (a live file just rotated).
    ordered.sort_by_key(|(seq, _)| seq.unwrap_or(u64::MAX));
    let mut chain = Chain::default();
    for (_, path) in &ordered {
        chain.file(path)?;
    }
    Ok(Verified {
        records: chain.records,
        first_seq: chain.first_seq,
        last_seq: chain.expected.map(|next| next - 1),
        files: ordered.len(),
        replica: chain.replica.flatten(),
    })
}

#[derive(Default)]
struct Chain {
    records: u64,
    first_seq: Option<u64>,
    /// The next record's number, once one was read.
    expected: Option<u64>,
    prev: Option<String>,
    /// The first record's replica (`Some(None)`: it named none).
    replica: Option<Option<String>>,
}

impl Chain {
    fn file(&mut self, path: &Path) -> Result<(), VerifyError> {
        let read = |source| VerifyError::Read {
            path: path.to_owned(),
            source,
        };
        let file = std::fs::File::open(path).map_err(read)?;
        let mut reader = std::io::BufReader::new(file);
        let mut number = 0;
        let mut line = String::new();
        loop {
            line.clear();
            let n = reader.read_line(&mut line).map_err(read)?;
            if n == 0 {
                return Ok(());
            }
            number += 1;
            let broken = |why: String| VerifyError::Broken {
                path: path.to_owned(),
                line: number,
                why,
            };
            if !line.ends_with('\n') {
                return Err(broken(
                    "the last line is incomplete (a write was cut off)".into(),
                ));
            }
            self.record(line.trim_end_matches('\n')).map_err(broken)?;
        }
    }

    fn record(&mut self, line: &str) -> Result<(), String> {
        let mut fields: Map<String, Value> =
            serde_json::from_str(line).map_err(|e| format!("not a JSON record: {e}"))?;
        let hash = match fields.remove("hash") {
            Some(Value::String(hash)) => hash,
            _ => return Err("no `hash`".into()),
        };
        let seq = fields
            .get("seq")
            .and_then(Value::as_u64)
            .ok_or("no `seq`")?;
        let prev = fields
            .get("prev")
            .and_then(Value::as_str)
            .ok_or("no `prev`")?
            .to_owned();
        if digest(&fields) != hash {
            return Err(format!(
                "record {seq} does not match its hash: the line was changed"
            ));
        }
        let replica = fields
            .get("replica")
            .and_then(Value::as_str)
            .map(str::to_owned);
        match &self.replica {
            None => self.replica = Some(replica),
            Some(chain) if *chain != replica => {
                let name = |r: &Option<String>| r.clone().unwrap_or_else(|| "(none)".into());
                return Err(format!(
                    "record {seq} names replica {}, but the chain is replica {}'s: records of \
                     two logs were mixed",
                    name(&replica),
                    name(chain)
                ));
            }
            Some(_) => {}
        }
        match (self.expected, &self.prev) {
            (Some(expected), _) if seq != expected => {
                return Err(format!(
                    "expected record {expected}, found record {seq}: records were removed, \
                     added or reordered"
                ));
            }
            (Some(_), Some(before)) if &prev != before => {
                return Err(format!(
                    "record {seq} does not follow the record before it (its `prev` is not \
                     that record's hash)"
                ));
            }
            (None, _) if seq == 0 && prev != GENESIS => {
                return Err("record 0 does not start a chain".into());
            }
            _ => {}
        }
        self.first_seq.get_or_insert(seq);
        self.expected = Some(seq + 1);
        self.prev = Some(hash);
        self.records += 1;
        Ok(())
    }
}

/// The first record's number in `path`, if it has a readable one.
fn first_seq(path: &Path) -> Result<Option<u64>, VerifyError> {
    let file = std::fs::File::open(path).map_err(|source| VerifyError::Read {
        path: path.to_owned(),
        source,
    })?;
    let mut first = String::new();
    std::io::BufReader::new(file)
        .read_line(&mut first)
        .map_err(|source| VerifyError::Read {
            path: path.to_owned(),
            source,
        })?;
    Ok(serde_json::from_str::<Value>(&first)
        .ok()
        .and_then(|v| v["seq"].as_u64()))
}

#[cfg(test)]
mod tests {
    use super::super::record::Record;
    use super::*;

    /// A chain of `n` records in one file, as lines.
    fn lines(n: u64) -> Vec<String> {
        let mut prev = GENESIS.to_owned();
        (0..n)
            .map(|seq| {
                let mut record = Record::now("tool_call");
                record.tool = Some(format!("t{seq}"));
                let (line, hash) = record.seal(seq, &prev, None);
                prev = hash;
                line
            })
            .collect()
    }

    fn check(lines: &[String]) -> Result<Verified, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
        std::fs::write(&path, text).unwrap();
        verify(&[path]).map_err(|e| match e {
            VerifyError::Broken { line, why, .. } => format!("{line}: {why}"),
            other => other.to_string(),
        })
    }

    #[test]
    fn a_whole_chain_verifies() {
        let verified = check(&lines(5)).unwrap();
        assert_eq!(verified.records, 5);
        assert_eq!((verified.first_seq, verified.last_seq), (Some(0), Some(4)));
    }

    #[test]
    fn each_kind_of_tampering_names_its_line() {
        let good = lines(5);
        let mut edited = good.clone();
        edited[2] = edited[2].replace("t2", "t9");
        assert_eq!(
            check(&edited).unwrap_err(),
            "3: record 2 does not match its hash: the line was changed"
        );
        let mut deleted = good.clone();
        deleted.remove(1);
        assert!(
            check(&deleted)
                .unwrap_err()
                .starts_with("2: expected record 1, found record 2")
        );
        let mut reordered = good.clone();
        reordered.swap(3, 4);
        assert!(
            check(&reordered)
                .unwrap_err()
                .starts_with("4: expected record 3, found record 4")
        );
        let mut garbage = good.clone();
        garbage.insert(2, "not json".into());
        assert!(
            check(&garbage)
                .unwrap_err()
                .starts_with("3: not a JSON record")
        );
        // A record re-hashed after editing, but no longer following its predecessor.
        let mut forged = good.clone();
        let mut record = Record::now("tool_call");
        record.tool = Some("forged".into());
        forged[3] = record.seal(3, GENESIS, None).0;
        assert!(
            check(&forged)
                .unwrap_err()
                .starts_with("4: record 3 does not follow")
        );
        let mut first = good;
        first.remove(0);
        // A log whose beginning was rotated away still verifies from where it starts.
        assert_eq!(check(&first).unwrap().first_seq, Some(1));
    }

    /// `n` records of `replica`'s chain, as lines.
    fn replica_lines(n: u64, replica: &str) -> Vec<String> {
        let mut prev = GENESIS.to_owned();
        (0..n)
            .map(|seq| {
                let (line, hash) = Record::now("tool_call").seal(seq, &prev, Some(replica));
                prev = hash;
                line
            })
            .collect()
    }

    #[test]
    fn each_replica_log_is_a_chain_of_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, lines: &[String]| {
            let path = dir.path().join(name);
            let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
            std::fs::write(&path, text).unwrap();
            path
        };
        let a = replica_lines(5, "a");
        let b = replica_lines(3, "b");
        // Replica a's log was rotated once: its first three records are aside.
        let a_old = write("audit-a.jsonl.00000000000000000000", &a[..3]);
        let a_live = write("audit-a.jsonl", &a[3..]);
        let b_live = write("audit-b.jsonl", &b);
        let logs = verify_chains(&[a_live.clone(), b_live.clone(), a_old]).unwrap();
        assert_eq!(logs.len(), 2);
        assert_eq!(logs[0].log, a_live);
        assert_eq!(logs[0].chain.replica.as_deref(), Some("a"));
        assert_eq!((logs[0].chain.records, logs[0].chain.files), (5, 2));
        assert_eq!(logs[1].chain.replica.as_deref(), Some("b"));
        assert_eq!(logs[1].chain.last_seq, Some(2));
        // A record of b's chain in a's file breaks a's chain; so does a record that
        // follows a's chain but names b.
        let mut mixed = a.clone();
        mixed[2] = b[2].clone();
        let mixed = write("mixed.jsonl", &mixed);
        assert!(verify_chains(&[mixed]).is_err());
        let last: Value = serde_json::from_str(&a[4]).unwrap();
        let (forged, _) =
            Record::now("tool_call").seal(5, last["hash"].as_str().unwrap(), Some("b"));
        let mut claimed = a;
        claimed.push(forged);
        let err = check(&claimed).unwrap_err();
        assert!(err.starts_with("6: record 5 names replica b"), "{err}");
    }
}
