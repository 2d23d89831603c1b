//! The authorization server's state in a database (sqlx): clients, users, authorization
//! codes, refresh tokens and their families, signing keys. SQLite for one process (WAL
//! mode, a file the operator names) or Postgres for several replicas: every query is
//! plain SQL with `$n` parameters and portable types (TEXT, BIGINT), the same
//! statements on both. Codes and refresh tokens are stored as SHA-256 digests: the
//! database never holds a usable one. Single use is a conditional update whose
//! affected-row count decides, so two requests (or two replicas) racing for one code
//! cannot both win; the first signing key is made under a row lock, so replicas
//! starting together share one.

use super::config::Database;
use sha2::{Digest, Sha256};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};
use sqlx::{AnyPool, Row, SqlSafeStr};
use std::path::Path;
use thiserror::Error;

/// Why the store could not be used.
#[derive(Debug, Error)]
pub enum StoreError {
    /// Opening, migrating or querying failed.
    #[error("auth database {path}: {source}")]
    Database {
        /// Where the database is.
        path: String,
        /// What failed.
        source: sqlx::Error,
    },
    /// A migration failed.
    #[error("auth database {path}: migrating: {source}")]
    Migrate {
        /// Where the database is.
        path: String,
        /// What failed.
        source: sqlx::migrate::MigrateError,
    },
}

/// The schema, in order. Never edit a released one: add the next.
const MIGRATIONS: [(i64, &str, &str); 2] = [
    (1, "initial schema", include_str!("schema/0001_initial.sql")),
    (
        2,
        "signing key lock",
        include_str!("schema/0002_key_lock.sql"),
    ),
];

/// [`MIGRATIONS`] for sqlx's migrator (which records what ran, and on Postgres takes an
/// advisory lock so replicas starting together migrate once).
#[derive(Debug)]
struct Embedded;

impl<'s> MigrationSource<'s> for Embedded {
    fn resolve(
        self,
    ) -> futures::future::BoxFuture<'s, Result<Vec<Migration>, sqlx::error::BoxDynError>> {
        Box::pin(async {
            Ok(MIGRATIONS
                .iter()
                .map(|(version, description, sql)| {
                    Migration::new(
                        *version,
                        (*description).into(),
                        MigrationType::Simple,
                        sqlx::AssertSqlSafe(*sql).into_sql_str(),
                        false,
                    )
                })
                .collect())
        })
    }
}

/// The opened database.
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    /// For error messages.
    shown: String,
}

/// A registered client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientRecord {
    /// Its `client_id`.
    pub client_id: String,
    /// Shown on the consent page.
    pub client_name: String,
    /// Exact redirect URIs it may use.
    pub redirect_uris: Vec<String>,
    /// `registered` (RFC 7591), `configured` or `metadata` (a metadata document).
    pub source: String,
}

/// A user who may log in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    /// The login name.
    pub name: String,
    /// The argon2id PHC string.
    pub password_hash: String,
    /// The scopes the user may grant (`None`: any).
    pub scopes: Option<Vec<String>>,
}

/// What a redeemed authorization code was issued for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeGrant {
    /// The client it was issued to.
    pub client_id: String,
    /// The redirect URI of the authorization request.
    pub redirect_uri: String,
    /// The PKCE S256 challenge.
    pub code_challenge: String,
    /// The resource the token will be for.
    pub resource: String,
    /// The granted scopes, space-separated.
    pub scope: String,
    /// The user.
    pub subject: String,
    /// The refresh-token family issued when the code was redeemed.
    pub family: String,
}

/// What a refresh token was issued for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshGrant {
    /// Its family (every rotation of one grant).
    pub family: String,
    /// The client.
    pub client_id: String,
    /// The user.
    pub subject: String,
    /// The granted scopes, space-separated.
    pub scope: String,
    /// The resource.
    pub resource: String,
}

/// What happened to a refresh token presented at the token endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refresh {
    /// It was live: now used; issue the next one in its family.
    Rotated(RefreshGrant),
    /// It was already used (stolen, or a replay): its whole family is now revoked.
    Reused,
    /// Unknown, expired or revoked.
    Invalid,
}

/// A signing key as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRecord {
    /// Its `kid`.
    pub kid: String,
    /// Its public JWK (JSON).
    pub public_jwk: String,
    /// The sealed private key (JSON of an envelope).
    pub private_sealed: String,
    /// When it was made (seconds since the epoch).
    pub created_at: i64,
    /// When it stopped signing, if it did.
    pub retired_at: Option<i64>,
    /// When it leaves the JWKS, if it will.
    pub publish_until: Option<i64>,
}

/// SHA-256 of a code or token, hex: what the database keeps.
pub fn digest(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

impl Store {
    /// Opens `database` and brings its schema up to date (on Postgres, under sqlx's
    /// advisory lock: replicas starting together migrate once).
    pub async fn open(database: &Database) -> Result<Self, StoreError> {
        match database {
            Database::Sqlite(path) => Self::open_sqlite(path).await,
            Database::Postgres(url) => Self::open_url(url, database.to_string()).await,
        }
    }

    /// Opens (creating it if missing) the SQLite database at `path`, in WAL mode, and
    /// brings its schema up to date.
    pub async fn open_sqlite(path: &Path) -> Result<Self, StoreError> {
        let shown = path.display().to_string();
        if let Some(folder) = path.parent().filter(|p| !p.as_os_str().is_empty())
            && let Err(source) = std::fs::create_dir_all(folder)
        {
            return Err(StoreError::Database {
                path: shown,
                source: sqlx::Error::Io(source),
            });
        }
        // The folder as the OS resolves it (absolute, no `..`, links followed): in a
        // URL, a relative `examples/../x` would make `examples` the host and leave `/x`.
        // Percent-encoded, so a `?`, `#` or `%` in a name stays part of the name.
        let io = |source| StoreError::Database {
            path: shown.clone(),
            source: sqlx::Error::Io(source),
        };
        let folder = match path.parent().filter(|p| !p.as_os_str().is_empty()) {
            Some(folder) => folder,
            None => std::path::Path::new("."),
        };
        let Some(name) = path.file_name() else {
            return Err(io(std::io::Error::other("the path names no file")));
        };
        let absolute = std::fs::canonicalize(folder).map_err(io)?.join(name);
        let file_url = url::Url::from_file_path(&absolute)
            .map_err(|()| io(std::io::Error::other("the path cannot be made a URL")))?;
        let url = format!("sqlite://{}?mode=rwc", file_url.path());
        Self::open_url(&url, shown).await
    }

    /// Opens the database at `url` and migrates it.
    async fn open_url(url: &str, shown: String) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let database = |source| StoreError::Database {
            path: shown.clone(),
            source,
        };
        let pool = AnyPoolOptions::new()
            .max_connections(8)
            // A database that stops answering fails requests, not hangs them.
            .acquire_timeout(std::time::Duration::from_secs(5))
            .connect(url)
            .await
            .map_err(database)?;
        if url.starts_with("sqlite:") {
            // Readers do not block the writer; the setting stays with the file.
            sqlx::query("PRAGMA journal_mode = WAL")
                .execute(&pool)
                .await
                .map_err(database)?;
        }
        let migrator = Migrator::new(Embedded)
            .await
            .map_err(|source| StoreError::Migrate {
                path: shown.clone(),
                source,
            })?;
        migrator
            .run(&pool)
            .await
            .map_err(|source| StoreError::Migrate {
                path: shown.clone(),
                source,
            })?;
        Ok(Self { pool, shown })
    }

    fn err(&self) -> impl Fn(sqlx::Error) -> StoreError + '_ {
        |source| StoreError::Database {
            path: self.shown.clone(),
            source,
        }
    }

    // --- clients ---

    /// Stores a client (replacing one with the same id). One statement, so replicas
    /// registering the same configured client at once both succeed.
    pub async fn put_client(&self, client: &ClientRecord, now: i64) -> Result<(), StoreError> {
        let uris = serde_json::to_string(&client.redirect_uris).unwrap_or_default();
        sqlx::query(
            "INSERT INTO clients (client_id, client_name, redirect_uris, source, created_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (client_id) DO UPDATE SET \
             client_name = excluded.client_name, redirect_uris = excluded.redirect_uris, \
             source = excluded.source, created_at = excluded.created_at",
        )
        .bind(&client.client_id)
        .bind(&client.client_name)
        .bind(uris)
        .bind(&client.source)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(self.err())?;
        Ok(())
    }

    /// The client `client_id`, if registered.
    pub async fn client(&self, client_id: &str) -> Result<Option<ClientRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT client_id, client_name, redirect_uris, source FROM clients WHERE client_id = $1",
        )
        .bind(client_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(self.err())?;
        Ok(row.map(|row: AnyRow| ClientRecord {
            client_id: row.get(0),
            client_name: row.get(1),
            redirect_uris: serde_json::from_str(&row.get::<String, _>(2)).unwrap_or_default(),
            source: row.get(3),
        }))
    }

    // --- users ---

    /// Adds a user; `false` if the name is taken (also when another process adds it
    /// at the same moment).
    pub async fn add_user(&self, user: &UserRecord, now: i64) -> Result<bool, StoreError> {
        let scopes = user
            .scopes
            .as_ref()
            .map(|s| serde_json::to_string(s).unwrap_or_default());
        let added = sqlx::query(
            "INSERT INTO users (name, password_hash, scopes, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(&user.name)
        .bind(&user.password_hash)
        .bind(scopes)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(self.err())?;
        Ok(added.rows_affected() == 1)
    }

    /// The user `name`, if any.
    pub async fn user(&self, name: &str) -> Result<Option<UserRecord>, StoreError> {
        let row = sqlx::query("SELECT name, password_hash, scopes FROM users WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(self.err())?;
        Ok(row.map(|row: AnyRow| UserRecord {
            name: row.get(0),
            password_hash: row.get(1),
            scopes: row
                .get::<Option<String>, _>(2)
                .and_then(|s| serde_json::from_str(&s).ok()),
        }))
    }

    /// Every user's name and scopes, by name.
    pub async fn users(&self) -> Result<Vec<UserRecord>, StoreError> {
        let rows = sqlx::query("SELECT name, password_hash, scopes FROM users ORDER BY name")
            .fetch_all(&self.pool)
            .await
            .map_err(self.err())?;
        Ok(rows
            .into_iter()
            .map(|row| UserRecord {
                name: row.get(0),
                password_hash: row.get(1),
                scopes: row
                    .get::<Option<String>, _>(2)
                    .and_then(|s| serde_json::from_str(&s).ok()),
            })
            .collect())
    }

    /// Removes user `name`; `false` if there was none.
    pub async fn remove_user(&self, name: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM users WHERE name = $1")
            .bind(name)
            .execute(&self.pool)
            .await
            .map_err(self.err())?;
        Ok(done.rows_affected() == 1)
    }

    // --- one-time setup codes (the first user) ---

    /// Stores a setup code's digest, valid until `expires_at`.
    pub async fn put_setup_code(&self, code: &str, expires_at: i64) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO setup_codes (code_hash, expires_at) VALUES ($1, $2)")
            .bind(digest(code))
            .bind(expires_at)
            .execute(&self.pool)
            .await
            .map_err(self.err())?;
        Ok(())
    }

    /// Uses up `code` if it is a live setup code.
    pub async fn use_setup_code(&self, code: &str, now: i64) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM setup_codes WHERE code_hash = $1 AND expires_at > $2")
            .bind(digest(code))
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(self.err())?;
        Ok(done.rows_affected() == 1)
    }

    // --- authorization codes ---

    /// Stores a new authorization code (its digest) for `grant`.
    pub async fn put_code(
        &self,
        code: &str,
        grant: &CodeGrant,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO authorization_codes (code_hash, client_id, redirect_uri, \
             code_challenge, resource, scope, subject, family, expires_at, used) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 0)",
        )
        .bind(digest(code))
        .bind(&grant.client_id)
        .bind(&grant.redirect_uri)
        .bind(&grant.code_challenge)
        .bind(&grant.resource)
        .bind(&grant.scope)
        .bind(&grant.subject)
        .bind(&grant.family)
        .bind(expires_at)
        .execute(&self.pool)
        .await
        .map_err(self.err())?;
        Ok(())
    }

    /// Redeems `code`: `Ok(Some)` exactly once for a live code. A second attempt finds
    /// it used, and revokes every refresh token issued from it.
    pub async fn redeem_code(&self, code: &str, now: i64) -> Result<Option<CodeGrant>, StoreError> {
        let hash = digest(code);
        let won = sqlx::query(
            "UPDATE authorization_codes SET used = 1 \
             WHERE code_hash = $1 AND used = 0 AND expires_at > $2",
        )
        .bind(&hash)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(self.err())?
        .rows_affected()
            == 1;
        let row = sqlx::query(
            "SELECT client_id, redirect_uri, code_challenge, resource, scope, subject, family \
             FROM authorization_codes WHERE code_hash = $1",
        )
        .bind(&hash)
        .fetch_optional(&self.pool)
        .await
        .map_err(self.err())?;
        let Some(row) = row else { return Ok(None) };
        let grant = CodeGrant {
            client_id: row.get(0),
            redirect_uri: row.get(1),
            code_challenge: row.get(2),
            resource: row.get(3),
            scope: row.get(4),
            subject: row.get(5),
            family: row.get(6),
        };
        if won {
            Ok(Some(grant))
        } else {
            // Replayed (or expired): whatever it was exchanged for is revoked too.
            self.revoke_family(&grant.family).await?;
            Ok(None)
        }
    }

    // --- refresh tokens ---

    /// Stores a new refresh token (its digest) in `grant`'s family.
    pub async fn put_refresh(
        &self,
        token: &str,
        grant: &RefreshGrant,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO refresh_tokens (token_hash, family, client_id, subject, scope, \
             resource, expires_at, used, revoked) VALUES ($1, $2, $3, $4, $5, $6, $7, 0, 0)",
        )
        .bind(digest(token))
        .bind(&grant.family)
        .bind(&grant.client_id)
        .bind(&grant.subject)
        .bind(&grant.scope)
        .bind(&grant.resource)
        .bind(expires_at)
        .execute(&self.pool)
        .await
        .map_err(self.err())?;
        Ok(())
    }

    /// Uses `token` once: rotated if it was live; a token used before revokes its
    /// family (the thief's and the owner's tokens alike).
    pub async fn use_refresh(&self, token: &str, now: i64) -> Result<Refresh, StoreError> {
        let hash = digest(token);
        let row = sqlx::query(
            "SELECT family, client_id, subject, scope, resource, expires_at, used, revoked \
             FROM refresh_tokens WHERE token_hash = $1",
        )
        .bind(&hash)
        .fetch_optional(&self.pool)
        .await
        .map_err(self.err())?;
        let Some(row) = row else {
            return Ok(Refresh::Invalid);
        };
        let grant = RefreshGrant {
            family: row.get(0),
            client_id: row.get(1),
            subject: row.get(2),
            scope: row.get(3),
            resource: row.get(4),
        };
        let (expires_at, used, revoked): (i64, i64, i64) = (row.get(5), row.get(6), row.get(7));
        if revoked != 0 || expires_at <= now {
            return Ok(Refresh::Invalid);
        }
        if used != 0 {
            self.revoke_family(&grant.family).await?;
            return Ok(Refresh::Reused);
        }
        let won = sqlx::query(
            "UPDATE refresh_tokens SET used = 1 WHERE token_hash = $1 AND used = 0 AND revoked = 0",
        )
        .bind(&hash)
        .execute(&self.pool)
        .await
        .map_err(self.err())?
        .rows_affected()
            == 1;
        if won {
            Ok(Refresh::Rotated(grant))
        } else {
            // Another request used it between our read and our update.
            self.revoke_family(&grant.family).await?;
            Ok(Refresh::Reused)
        }
    }

    /// Revokes every refresh token of `family`.
    pub async fn revoke_family(&self, family: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE refresh_tokens SET revoked = 1 WHERE family = $1")
            .bind(family)
            .execute(&self.pool)
            .await
            .map_err(self.err())?;
        Ok(())
    }

    // --- signing keys ---

    /// Stores a signing key.
    pub async fn put_key(&self, key: &KeyRecord) -> Result<(), StoreError> {
        insert_key(&self.pool, key).await.map_err(self.err())
    }

    /// Every key still published at `now`, newest first.
    pub async fn keys(&self, now: i64) -> Result<Vec<KeyRecord>, StoreError> {
        keys_in(&self.pool, now).await.map_err(self.err())
    }

    /// The newest key that still signs; if there is none, `new` is stored and
    /// returned (`true`: it was stored). Done under the key lock row, so of several
    /// processes starting together on one database exactly one makes the key and the
    /// others use it.
    pub async fn signing_key_or(
        &self,
        now: i64,
        new: KeyRecord,
    ) -> Result<(KeyRecord, bool), StoreError> {
        let mut tx = self.pool.begin().await.map_err(self.err())?;
        // The write comes first: it takes the lock (a row lock on Postgres, the write
        // lock on SQLite) before anything is read, so the read below sees what the
        // process that held it before committed.
        sqlx::query("UPDATE key_lock SET taken_at = $1 WHERE id = 1")
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(self.err())?;
        let found = keys_in(&mut *tx, now)
            .await
            .map_err(self.err())?
            .into_iter()
            .find(|k| k.retired_at.is_none());
        let made = found.is_none();
        let key = match found {
            Some(key) => key,
            None => {
                insert_key(&mut *tx, &new).await.map_err(self.err())?;
                new
            }
        };
        tx.commit().await.map_err(self.err())?;
        Ok((key, made))
    }

    /// Whether the database answers (for readiness checks).
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(self.err())?;
        Ok(())
    }

    /// Retires every signing key but `keep`: they stop signing at `now` and stay
    /// published until `publish_until` (when the last token they signed expires).
    pub async fn retire_keys_except(
        &self,
        keep: &str,
        now: i64,
        publish_until: i64,
    ) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE signing_keys SET retired_at = $1, publish_until = $2 \
             WHERE kid <> $3 AND retired_at IS NULL",
        )
        .bind(now)
        .bind(publish_until)
        .bind(keep)
        .execute(&self.pool)
        .await
        .map_err(self.err())?;
        Ok(done.rows_affected())
    }

    // --- housekeeping ---

    /// Deletes what can no longer be used: expired codes, setup codes, refresh tokens
    /// and keys past their publication. Returns how many rows went.
    pub async fn purge(&self, now: i64) -> Result<u64, StoreError> {
        let mut purged = 0;
        for statement in [
            "DELETE FROM authorization_codes WHERE expires_at <= $1",
            "DELETE FROM setup_codes WHERE expires_at <= $1",
            "DELETE FROM refresh_tokens WHERE expires_at <= $1",
            "DELETE FROM signing_keys WHERE publish_until IS NOT NULL AND publish_until <= $1",
        ] {
            purged += sqlx::query(statement)
                .bind(now)
                .execute(&self.pool)
                .await
                .map_err(self.err())?
                .rows_affected();
        }
        Ok(purged)
    }
}

/// Every key still published at `now`, newest first, read through `db`.
async fn keys_in<'e>(
    db: impl sqlx::Executor<'e, Database = sqlx::Any>,
    now: i64,
) -> Result<Vec<KeyRecord>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT kid, public_jwk, private_sealed, created_at, retired_at, publish_until \
         FROM signing_keys WHERE publish_until IS NULL OR publish_until > $1 \
         ORDER BY created_at DESC, kid",
    )
    .bind(now)
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| KeyRecord {
            kid: row.get(0),
            public_jwk: row.get(1),
            private_sealed: row.get(2),
            created_at: row.get(3),
            retired_at: row.get(4),
            publish_until: row.get(5),
        })
        .collect())
}

/// Stores `key` through `db`.
async fn insert_key<'e>(
    db: impl sqlx::Executor<'e, Database = sqlx::Any>,
    key: &KeyRecord,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO signing_keys (kid, public_jwk, private_sealed, created_at, \
         retired_at, publish_until) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&key.kid)
    .bind(&key.public_jwk)
    .bind(&key.private_sealed)
    .bind(key.created_at)
    .bind(key.retired_at)
    .bind(key.publish_until)
    .execute(db)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests;
