//! The credential store: a JSON file of envelope-encrypted secrets, read whole, written
//! atomically under a lock. Values are decrypted only on use, into zeroizing memory.
//!
//! File layout (`format` 1):
//! `{"format":1,"secrets":{"NAME":{"created":..,"updated":..,"sealed":{..}}}}`.

pub mod admin;
pub mod envelope;
pub mod file;
pub mod kek;
pub mod sources;

use crate::domain::CredentialName;
use envelope::{OpenError, Sealed};
use kek::{Kek, KekError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;
use zeroize::Zeroizing;

/// The file format this build reads and writes.
const FORMAT: u32 = 1;
/// Largest value a secret may hold: API keys and tokens, not files.
pub const MAX_VALUE_BYTES: usize = 64 * 1024;
/// Largest store file we read.
const MAX_STORE_BYTES: u64 = 16 * 1024 * 1024;

/// Why the store could not be read, written or opened. Every message names the store
/// file; none carries a value or key material.
#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    /// The KEK could not be loaded.
    #[error(transparent)]
    Kek(#[from] KekError),
    /// The store file could not be read.
    #[error("cannot read the secret store {path}: {source}")]
    Read {
        /// The store file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The store file could not be written.
    #[error("cannot write the secret store {path}: {source}")]
    Write {
        /// The store file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a store.
    #[error("the secret store {path} is not a valid store file: {message}")]
    Parse {
        /// The store file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// The file is a store of another format version.
    #[error("the secret store {path} has format {found}; this build reads format {FORMAT}")]
    Format {
        /// The store file.
        path: PathBuf,
        /// The version it has.
        found: u32,
    },
    /// The file is implausibly large.
    #[error("the secret store {path} is larger than {MAX_STORE_BYTES} bytes")]
    TooLarge {
        /// The store file.
        path: PathBuf,
    },
    /// A secret does not decrypt (wrong KEK, or the store was altered).
    #[error("secret `{name}` in {path} cannot be opened: {source}")]
    Open {
        /// The store file.
        path: PathBuf,
        /// The secret.
        name: String,
        /// Why.
        source: OpenError,
    },
    /// No secret of that name.
    #[error("no secret `{name}` in {path}")]
    NotFound {
        /// The store file.
        path: PathBuf,
        /// The name asked for.
        name: String,
    },
    /// Not a valid credential name.
    #[error("{0}")]
    InvalidName(String),
    /// An empty value.
    #[error("the value is empty")]
    EmptyValue,
    /// A value over [`MAX_VALUE_BYTES`].
    #[error("the value is longer than {MAX_VALUE_BYTES} bytes")]
    ValueTooLarge,
    /// A value that is not UTF-8.
    #[error("the value is not UTF-8 text")]
    NotText,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoreFile {
    format: u32,
    #[serde(default)]
    secrets: BTreeMap<String, Entry>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    created: String,
    updated: String,
    sealed: Sealed,
}

/// One row of `secrets list`: never a value.
#[derive(Debug, Clone, PartialEq)]
pub struct Listed {
    /// The secret's name.
    pub name: String,
    /// When it was first stored (RFC 3339).
    pub created: String,
    /// When its value last changed (RFC 3339).
    pub updated: String,
}

/// An opened store: its sealed entries and the KEK that opens them.
pub struct SecretStore {
    path: PathBuf,
    kek: Kek,
    file: StoreFile,
    /// The version of the file `file` was read from.
    version: Option<FileVersion>,
    /// A later version that was refused: not read again until the file changes.
    refused: Option<Option<FileVersion>>,
}

/// Tells one version of the store file from another: every write replaces the file
/// (a new inode) and changes its modification time.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileVersion {
    len: u64,
    modified: Option<SystemTime>,
    #[cfg(unix)]
    inode: (u64, u64),
}

impl FileVersion {
    /// The version of the file at `path`; `None` if there is no file.
    fn of(path: &Path) -> Result<Option<Self>, SecretsError> {
        let metadata = match std::fs::metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(SecretsError::Read {
                    path: path.to_owned(),
                    source,
                });
            }
        };
        #[cfg(unix)]
        let inode = {
            use std::os::unix::fs::MetadataExt;
            (metadata.dev(), metadata.ino())
        };
        Ok(Some(Self {
            len: metadata.len(),
            modified: metadata.modified().ok(),
            #[cfg(unix)]
            inode,
        }))
    }
}

impl std::fmt::Debug for SecretStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretStore")
            .field("path", &self.path)
            .field("kek", &self.kek)
            .finish_non_exhaustive()
    }
}

fn now() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

fn check_name(name: &str) -> Result<(), SecretsError> {
    CredentialName::try_from(name.to_owned())
        .map(|_| ())
        .map_err(SecretsError::InvalidName)
}

impl SecretStore {
    /// Reads the store at `path` (a missing file is an empty store).
    pub fn open(path: &Path, kek: Kek) -> Result<Self, SecretsError> {
        let version = FileVersion::of(path)?;
        let file = read(path)?;
        Ok(Self {
            path: path.to_owned(),
            kek,
            file,
            version,
            refused: None,
        })
    }

    /// Reads the file again if it changed since it was last read (`secrets set`, `rm`
    /// while the host runs): `Ok(true)` if it did. A new version that cannot be read,
    /// or holds a secret this KEK does not open, is refused and what was loaded stays.
    pub fn refresh(&mut self) -> Result<bool, SecretsError> {
        let version = FileVersion::of(&self.path)?;
        if version == self.version || self.refused.as_ref() == Some(&version) {
            return Ok(false);
        }
        match self.usable_file() {
            Ok(file) => {
                self.file = file;
                self.version = version;
                self.refused = None;
                Ok(true)
            }
            Err(error) => {
                self.refused = Some(version);
                Err(error)
            }
        }
    }

    /// The file as it is now, if every secret in it opens with this store's KEK.
    fn usable_file(&self) -> Result<StoreFile, SecretsError> {
        let file = read(&self.path)?;
        check_same_kek(&self.path, &file, &self.kek)?;
        for (name, entry) in &file.secrets {
            envelope::open(&self.kek, name, &entry.sealed).map_err(|source| {
                SecretsError::Open {
                    path: self.path.clone(),
                    name: name.clone(),
                    source,
                }
            })?;
        }
        Ok(file)
    }

    /// The store file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Decrypts secret `name`; `Ok(None)` if the store has no such secret.
    pub fn get(&self, name: &str) -> Result<Option<Zeroizing<String>>, SecretsError> {
        let Some(entry) = self.file.secrets.get(name) else {
            return Ok(None);
        };
        let bytes = envelope::open(&self.kek, name, &entry.sealed).map_err(|source| {
            SecretsError::Open {
                path: self.path.clone(),
                name: name.to_owned(),
                source,
            }
        })?;
        let text = std::str::from_utf8(&bytes).map_err(|_| SecretsError::NotText)?;
        Ok(Some(Zeroizing::new(text.to_owned())))
    }

    /// Names and dates of every secret, in name order.
    pub fn list(&self) -> Vec<Listed> {
        self.file
            .secrets
            .iter()
            .map(|(name, entry)| Listed {
                name: name.clone(),
                created: entry.created.clone(),
                updated: entry.updated.clone(),
            })
            .collect()
    }

    /// Stores `value` as secret `name` (replacing any old value), under the write lock.
    pub fn set(path: &Path, kek: &Kek, name: &str, value: &[u8]) -> Result<(), SecretsError> {
        check_name(name)?;
        if value.is_empty() {
            return Err(SecretsError::EmptyValue);
        }
        if value.len() > MAX_VALUE_BYTES {
            return Err(SecretsError::ValueTooLarge);
        }
        if std::str::from_utf8(value).is_err() {
            return Err(SecretsError::NotText);
        }
        update(path, |file| {
            check_same_kek(path, file, kek)?;
            let sealed = envelope::seal(kek, name, value);
            let stamp = now();
            let created = file
                .secrets
                .get(name)
                .map(|e| e.created.clone())
                .unwrap_or_else(|| stamp.clone());
            file.secrets.insert(
                name.to_owned(),
                Entry {
                    created,
                    updated: stamp,
                    sealed,
                },
            );
            Ok(())
        })
    }

    /// Removes secret `name`, under the write lock.
    pub fn remove(path: &Path, name: &str) -> Result<(), SecretsError> {
        update(path, |file| match file.secrets.remove(name) {
            Some(_) => Ok(()),
            None => Err(SecretsError::NotFound {
                path: path.to_owned(),
                name: name.to_owned(),
            }),
        })
    }

    /// Re-wraps every data key from `old` to `new` in one atomic write. Nothing is
    /// written unless every secret opens with `old`.
    pub fn rotate_kek(path: &Path, old: &Kek, new: &Kek) -> Result<usize, SecretsError> {
        Self::rotate_kek_with(path, old, new, || Ok(()))
    }

    pub(crate) fn rotate_kek_with(
        path: &Path,
        old: &Kek,
        new: &Kek,
        before_rename: impl FnOnce() -> std::io::Result<()>,
    ) -> Result<usize, SecretsError> {
        let mut count = 0;
        update_with(
            path,
            |file| {
                for (name, entry) in file.secrets.iter_mut() {
                    entry.sealed =
                        envelope::rotate(old, new, name, &entry.sealed).map_err(|source| {
                            SecretsError::Open {
                                path: path.to_owned(),
                                name: name.clone(),
                                source,
                            }
                        })?;
                    count += 1;
                }
                Ok(())
            },
            before_rename,
        )?;
        Ok(count)
    }
}

/// Every secret in a store is sealed under one KEK: refuse to mix in another.
fn check_same_kek(path: &Path, file: &StoreFile, kek: &Kek) -> Result<(), SecretsError> {
    match file
        .secrets
        .iter()
        .find(|(_, e)| e.sealed.kek_id != kek.id())
    {
        None => Ok(()),
        Some((name, entry)) => Err(SecretsError::Open {
            path: path.to_owned(),
            name: name.clone(),
            source: OpenError::WrongKek {
                found: entry.sealed.kek_id.clone(),
                expected: kek.id().to_owned(),
            },
        }),
    }
}

fn read(path: &Path) -> Result<StoreFile, SecretsError> {
    let read_err = |source| SecretsError::Read {
        path: path.to_owned(),
        source,
    };
    let metadata = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(StoreFile {
                format: FORMAT,
                secrets: BTreeMap::new(),
            });
        }
        Err(e) => return Err(read_err(e)),
    };
    if metadata.len() > MAX_STORE_BYTES {
        return Err(SecretsError::TooLarge {
            path: path.to_owned(),
        });
    }
    let bytes = std::fs::read(path).map_err(read_err)?;
    let file: StoreFile = serde_json::from_slice(&bytes).map_err(|e| SecretsError::Parse {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    if file.format != FORMAT {
        return Err(SecretsError::Format {
            path: path.to_owned(),
            found: file.format,
        });
    }
    Ok(file)
}

fn update(
    path: &Path,
    change: impl FnOnce(&mut StoreFile) -> Result<(), SecretsError>,
) -> Result<(), SecretsError> {
    update_with(path, change, || Ok(()))
}

/// Read-modify-write under the lock; nothing is written if `change` fails.
fn update_with(
    path: &Path,
    change: impl FnOnce(&mut StoreFile) -> Result<(), SecretsError>,
    before_rename: impl FnOnce() -> std::io::Result<()>,
) -> Result<(), SecretsError> {
    let write_err = |source| SecretsError::Write {
        path: path.to_owned(),
        source,
    };
    if let Some(folder) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(folder).map_err(write_err)?;
    }
    let _lock = file::WriteLock::acquire(path).map_err(write_err)?;
    let mut store = read(path)?;
    change(&mut store)?;
    let bytes = serde_json::to_vec_pretty(&store).expect("the store serializes");
    file::write_atomic_with(path, &bytes, before_rename).map_err(write_err)
}

#[cfg(test)]
mod tests;
