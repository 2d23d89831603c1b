//! The operator's commands on the embedded authorization server: `users add | list |
//! rm` (passwords from standard input only, hashed with argon2id) and `auth
//! rotate-key`.

use super::config::EmbeddedConfig;
use super::flow::{new_user, now};
use super::signing::{KeyError, KeyRing};
use super::store::{Store, StoreError};
use crate::domain::Scope;
use crate::secrets::kek::Kek;
use std::io::{IsTerminal, Read};
use thiserror::Error;
use zeroize::Zeroizing;

/// Why a command failed.
#[derive(Debug, Error)]
pub enum AdminError {
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The keys failed.
    #[error(transparent)]
    Keys(#[from] KeyError),
    /// Standard input could not be read.
    #[error("cannot read the password from standard input: {0}")]
    Stdin(std::io::Error),
    /// The name or password cannot be used.
    #[error("{0}")]
    Invalid(String),
    /// `users add` of a name that exists.
    #[error("a user `{0}` exists already")]
    Exists(String),
    /// `users rm` of a name that does not.
    #[error("no user `{0}`")]
    NoSuchUser(String),
}

/// Longest password read from standard input.
const MAX_PASSWORD: u64 = 1026;

/// `users add NAME [--scope S]...`: the password comes from `input`.
pub async fn add_user(
    config: &EmbeddedConfig,
    name: &str,
    scopes: &[Scope],
    mut input: impl Read,
) -> Result<(), AdminError> {
    if std::io::stdin().is_terminal() {
        eprintln!("Enter the password of `{name}`, then press Ctrl-D:");
    }
    let mut password = Zeroizing::new(String::new());
    (&mut input)
        .take(MAX_PASSWORD)
        .read_to_string(&mut password)
        .map_err(AdminError::Stdin)?;
    let password = password.strip_suffix('\n').unwrap_or(&password);
    let password = password.strip_suffix('\r').unwrap_or(password);
    let scopes =
        (!scopes.is_empty()).then(|| scopes.iter().map(|s| s.as_str().to_owned()).collect());
    let user = new_user(name, password, scopes).map_err(AdminError::Invalid)?;
    let store = Store::open(&config.database).await?;
    if !store.add_user(&user, now()).await? {
        return Err(AdminError::Exists(name.to_owned()));
    }
    eprintln!("added user `{name}` to {}", config.database);
    Ok(())
}

/// `users list`: names and the scopes each may grant, on stdout.
pub async fn list_users(config: &EmbeddedConfig) -> Result<(), AdminError> {
    let store = Store::open(&config.database).await?;
    let users = store.users().await?;
    if users.is_empty() {
        eprintln!("no users in {}", config.database);
    }
    for user in users {
        let scopes = user
            .scopes
            .map_or_else(|| "(any scope)".to_owned(), |s| s.join(" "));
        println!("{}\t{scopes}", user.name);
    }
    Ok(())
}

/// `users rm NAME`.
pub async fn remove_user(config: &EmbeddedConfig, name: &str) -> Result<(), AdminError> {
    let store = Store::open(&config.database).await?;
    if !store.remove_user(name).await? {
        return Err(AdminError::NoSuchUser(name.to_owned()));
    }
    eprintln!("removed user `{name}` from {}", config.database);
    Ok(())
}

/// `auth rotate-key`: a new signing key; the old ones stay published until the last
/// token they signed has expired. Returns the new key's id.
pub async fn rotate_key(config: &EmbeddedConfig, kek: &Kek) -> Result<String, AdminError> {
    let store = Store::open(&config.database).await?;
    let kid = KeyRing::rotate(&store, kek, now(), config.access_ttl()).await?;
    eprintln!(
        "new signing key `{kid}`; the old keys stay published for {} (a running host \
         signs with the new key within a minute)",
        humantime::format_duration(config.access_ttl())
    );
    Ok(kid)
}
