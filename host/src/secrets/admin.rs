//! The operator's commands on the store (`keygen`, `secrets set | list | rm |
//! rotate-kek`): what each does and what it tells the operator on stderr. Values are
//! read from standard input only, and never printed.

use super::kek::{Kek, KekError};
use super::sources::{KekSource, SecretsConfig, load_kek};
use super::{MAX_VALUE_BYTES, SecretStore, SecretsError};
use std::io::{IsTerminal, Read};
use zeroize::Zeroizing;

/// Why a `secrets` command failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The store refused the change or could not be read.
    #[error(transparent)]
    Store(#[from] SecretsError),
    /// The KEK could not be loaded.
    #[error(transparent)]
    Kek(#[from] KekError),
    /// Standard input could not be read.
    #[error("cannot read the value from standard input: {0}")]
    Stdin(std::io::Error),
    /// `rotate-kek` was given the KEK the store already uses.
    #[error("the new KEK is the one the store already uses")]
    SameKek,
    /// `set NAME` failed (the store's reason follows).
    #[error("cannot store `{name}`: {source}")]
    Set {
        /// The secret's name.
        name: String,
        /// Why.
        source: SecretsError,
    },
}

/// Largest value `secrets set` reads from standard input.
const MAX_STDIN_VALUE: u64 = MAX_VALUE_BYTES as u64 + 2;

/// A fresh random KEK (base64 of 32 bytes), for `keygen`.
pub fn keygen() -> Zeroizing<String> {
    Kek::generate()
}

/// `secrets set NAME`: stores the value read from `input` (one trailing newline, the
/// shell's, is dropped).
pub fn set(config: &SecretsConfig, name: &str, mut input: impl Read) -> Result<(), AdminError> {
    let kek = load_kek(&config.kek_source())?;
    let mut value = Zeroizing::new(Vec::new());
    if std::io::stdin().is_terminal() {
        eprintln!("Enter the value of `{name}`, then press Ctrl-D:");
    }
    (&mut input)
        .take(MAX_STDIN_VALUE)
        .read_to_end(&mut value)
        .map_err(AdminError::Stdin)?;
    if value.last() == Some(&b'\n') {
        value.pop();
        if value.last() == Some(&b'\r') {
            value.pop();
        }
    }
    SecretStore::set(&config.store, &kek, name, &value).map_err(|source| AdminError::Set {
        name: name.to_owned(),
        source,
    })?;
    eprintln!("stored `{name}` in {}", config.store.display());
    Ok(())
}

/// `secrets list`: names and dates on stdout, one per line (never values).
pub fn list(config: &SecretsConfig) -> Result<(), AdminError> {
    let kek = load_kek(&config.kek_source())?;
    let listed = SecretStore::open(&config.store, kek)?.list();
    if listed.is_empty() {
        eprintln!("no secrets in {}", config.store.display());
    }
    for row in listed {
        println!(
            "{}\tcreated {}\tupdated {}",
            row.name, row.created, row.updated
        );
    }
    Ok(())
}

/// `secrets rm NAME`.
pub fn remove(config: &SecretsConfig, name: &str) -> Result<(), AdminError> {
    SecretStore::remove(&config.store, name)?;
    eprintln!("removed `{name}` from {}", config.store.display());
    Ok(())
}

/// `secrets rotate-kek`: re-wraps every data key under the KEK `new` names.
pub fn rotate_kek(config: &SecretsConfig, new: &KekSource) -> Result<(), AdminError> {
    let new = load_kek(new)?;
    let old = load_kek(&config.kek_source())?;
    if old.id() == new.id() {
        return Err(AdminError::SameKek);
    }
    let count = SecretStore::rotate_kek(&config.store, &old, &new)?;
    eprintln!(
        "re-wrapped {count} secret(s) in {} under KEK {}; update the config's KEK source \
         before the next start",
        config.store.display(),
        new.id()
    );
    Ok(())
}
