//! `[auth.embedded]`: where the authorization server keeps its state, how long its
//! tokens live, and the clients the operator registers in advance.

use super::client_metadata::ClientMetadataConfig;
use crate::domain::{HumanDuration, redact_url};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Default lifetime of an access token.
pub const DEFAULT_ACCESS_TTL: Duration = Duration::from_secs(600);
/// Default lifetime of a refresh token (each use makes a new one).
pub const DEFAULT_REFRESH_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

/// `[auth.embedded]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmbeddedConfig {
    /// The database: a SQLite file (created on first start), or a Postgres URL that
    /// several replicas share.
    #[serde(default = "default_database")]
    pub database: Database,
    /// Lifetime of access tokens (default 10m; 1m to 24h).
    #[serde(default)]
    pub access_token_ttl: Option<HumanDuration>,
    /// Lifetime of refresh tokens (default 30 days; 1h to 365 days).
    #[serde(default)]
    pub refresh_token_ttl: Option<HumanDuration>,
    /// Clients registered by the operator.
    #[serde(default)]
    pub clients: Vec<ConfiguredClient>,
    /// Clients identified by a metadata document URL.
    #[serde(default)]
    pub client_metadata: ClientMetadataConfig,
}

impl Default for EmbeddedConfig {
    fn default() -> Self {
        Self {
            database: default_database(),
            access_token_ttl: None,
            refresh_token_ttl: None,
            clients: Vec::new(),
            client_metadata: ClientMetadataConfig::default(),
        }
    }
}

fn default_database() -> Database {
    Database::Sqlite(PathBuf::from("data/auth.sqlite"))
}

/// Where the authorization server's state lives.
#[derive(Clone, PartialEq, Eq)]
pub enum Database {
    /// A SQLite file: one host process.
    Sqlite(PathBuf),
    /// A Postgres URL (`postgres://user:password@host/db`): any number of replicas.
    Postgres(String),
}

impl Database {
    /// Reads `database = "..."`: a `postgres://` or `postgresql://` URL, else a path.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            let url = url::Url::parse(text).map_err(|e| {
                format!(
                    "[auth.embedded] database: not a Postgres URL ({e}): {}",
                    redact_url(text)
                )
            })?;
            if url.host_str().is_none_or(str::is_empty) {
                return Err(format!(
                    "[auth.embedded] database: the Postgres URL names no host: {}",
                    redact_url(text)
                ));
            }
            return Ok(Self::Postgres(text.to_owned()));
        }
        if text.contains("://") {
            return Err(format!(
                "[auth.embedded] database: `{}` is neither a file path nor a postgres:// URL",
                redact_url(text)
            ));
        }
        if text.trim().is_empty() {
            return Err("[auth.embedded] database: empty; a file path or a postgres:// URL".into());
        }
        Ok(Self::Sqlite(PathBuf::from(text)))
    }
}

/// The database as logs and errors show it: a URL's password is replaced by `***`.
impl std::fmt::Display for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Database::Sqlite(path) => write!(f, "{}", path.display()),
            Database::Postgres(url) => f.write_str(&redact_url(url)),
        }
    }
}

/// Like [`Display`](std::fmt::Display): a `Debug` never shows the password either.
impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Database({self})")
    }
}

impl<'de> Deserialize<'de> for Database {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Database::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// A client the operator registers: `{ client_id, name, redirect_uris }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfiguredClient {
    /// Its `client_id`.
    pub client_id: String,
    /// Shown on the consent page.
    pub name: String,
    /// Exact redirect URIs (https, or http on a loopback address).
    pub redirect_uris: Vec<String>,
}

impl EmbeddedConfig {
    /// Checks the section and resolves `database` against `base`.
    pub fn resolve(&mut self, base: &Path) -> Result<(), String> {
        if let Database::Sqlite(path) = &mut self.database {
            *path = base.join(&*path);
        }
        self.client_metadata.resolve(base);
        let access = self.access_ttl();
        if !(Duration::from_secs(60)..=Duration::from_secs(24 * 3600)).contains(&access) {
            return Err("[auth.embedded] access_token_ttl must be from 1m to 24h".into());
        }
        let refresh = self.refresh_ttl();
        if !(Duration::from_secs(3600)..=Duration::from_secs(365 * 24 * 3600)).contains(&refresh) {
            return Err("[auth.embedded] refresh_token_ttl must be from 1h to 365d".into());
        }
        for client in &self.clients {
            if client.client_id.is_empty() || client.client_id.len() > 256 {
                return Err("[auth.embedded] clients: client_id must be 1-256 characters".into());
            }
            if client.redirect_uris.is_empty() {
                return Err(format!(
                    "[auth.embedded] client `{}` needs at least one redirect URI",
                    client.client_id
                ));
            }
            for uri in &client.redirect_uris {
                super::flow::check_redirect_uri(uri).map_err(|why| {
                    format!(
                        "[auth.embedded] client `{}`: redirect URI `{uri}`: {why}",
                        client.client_id
                    )
                })?;
            }
        }
        Ok(())
    }

    /// Lifetime of access tokens.
    pub fn access_ttl(&self) -> Duration {
        self.access_token_ttl.map_or(DEFAULT_ACCESS_TTL, |d| d.0)
    }

    /// Lifetime of refresh tokens.
    pub fn refresh_ttl(&self) -> Duration {
        self.refresh_token_ttl.map_or(DEFAULT_REFRESH_TTL, |d| d.0)
    }
}
