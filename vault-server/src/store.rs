//! Where a server keeps what it serves: the vault's rows (exactly as
//! clients sealed them, through vault-core's SQLite backend) and its own
//! `server_…` tables in the same file: bearer tokens (only their SHA-256)
//! and identities created over REST that no owner has adopted yet.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rand::TryRng;
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use sha2::{Digest, Sha256};
use vault_core::backend::{Backend, SqliteBackend, VaultRow};
use vault_core::{Error, Result};

/// How long a busy file is waited for.
const BUSY: std::time::Duration = std::time::Duration::from_secs(30);

fn db(e: rusqlite::Error) -> Error {
    Error::Storage(Box::new(e))
}

/// What a token may do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Everything.
    Owner,
    /// The rows of these identities (uuids) only.
    Identities(BTreeSet<String>),
}

impl Scope {
    /// Whether this scope covers the identity.
    #[must_use]
    pub fn allows(&self, identity_uuid: &str) -> bool {
        match self {
            Scope::Owner => true,
            Scope::Identities(ids) => ids.contains(identity_uuid),
        }
    }

    /// Whether this is the owner's scope.
    #[must_use]
    pub fn is_owner(&self) -> bool {
        matches!(self, Scope::Owner)
    }
}

/// A token as listed: never the token itself.
#[derive(Clone, Debug, Serialize)]
pub struct TokenInfo {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// `owner` or `identity`.
    pub scope: String,
    /// The identities an identity-scoped token covers.
    pub identities: Vec<String>,
    /// When it was made, RFC 3339.
    pub created_dt: String,
    /// When it expires (Unix seconds), if it does.
    pub expires_at: Option<u64>,
}

impl TokenInfo {
    /// From the columns `id, name, owner, identities, created_dt,
    /// expires_at` of a token row.
    pub(crate) fn from_columns(
        id: String,
        name: String,
        owner: bool,
        identities: &str,
        created_dt: String,
        expires_at: Option<i64>,
    ) -> Self {
        TokenInfo {
            id,
            name,
            scope: if owner { "owner" } else { "identity" }.into(),
            identities: serde_json::from_str(identities).unwrap_or_default(),
            created_dt,
            expires_at: expires_at.map(|e| u64::try_from(e).unwrap_or(0)),
        }
    }
}

/// An identity created over REST, waiting for an owner to adopt it.
#[derive(Clone, Debug, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct Pending {
    /// Its uuid.
    pub uuid: String,
    /// Its requested name.
    pub name: String,
    /// When it was requested, RFC 3339.
    pub created_dt: String,
}

/// The `owner` and `identities` columns of a token row.
pub(crate) fn scope_columns(scope: &Scope) -> Result<(bool, String)> {
    let (owner, ids): (bool, Vec<String>) = match scope {
        Scope::Owner => (true, Vec::new()),
        Scope::Identities(ids) => (false, ids.iter().cloned().collect()),
    };
    Ok((owner, serde_json::to_string(&ids).map_err(Error::Encoding)?))
}

/// The scope of a token row, unless it expired.
pub(crate) fn scope_of(owner: bool, identities: &str, expires_at: Option<i64>) -> Option<Scope> {
    if expires_at.is_some_and(|e| u64::try_from(e).unwrap_or(0) <= now_unix()) {
        return None;
    }
    Some(if owner {
        Scope::Owner
    } else {
        Scope::Identities(
            serde_json::from_str::<Vec<String>>(identities)
                .unwrap_or_default()
                .into_iter()
                .collect(),
        )
    })
}

/// Where a server keeps its rows: a SQLite file or a PostgreSQL database.
#[derive(Debug)]
pub enum Store {
    /// One SQLite file (the default).
    Sqlite(SqliteStore),
    /// A PostgreSQL database shared by any number of server processes.
    Postgres(crate::pg::PgStore),
}

macro_rules! each {
    ($self:ident, $s:ident => $e:expr) => {
        match $self {
            Store::Sqlite($s) => $e,
            Store::Postgres($s) => $e,
        }
    };
}

impl Store {
    /// Runs `f` on the vault's rows ([`Error::NotFound`] before a vault
    /// was created).
    ///
    /// # Errors
    /// Whatever `f` returns; storage errors.
    pub fn with_vault<T>(&self, f: impl FnOnce(&dyn Backend) -> Result<T>) -> Result<T> {
        each!(self, s => s.with_vault(f))
    }

    /// Creates the vault from its sealed header row.
    ///
    /// # Errors
    /// [`Error::Conflict`] if there is one.
    pub fn create_vault(&self, header: &VaultRow) -> Result<()> {
        each!(self, s => s.create_vault(header))
    }

    /// Makes a token (256 random bits, `ravi_…`) and keeps only its hash.
    /// Returns the token (shown once) and its id.
    ///
    /// # Errors
    /// [`Error::Conflict`] for a name in use; [`Error::InvalidInput`] for a
    /// bad name.
    pub fn create_token(
        &self,
        name: &str,
        scope: &Scope,
        ttl: Option<u64>,
    ) -> Result<(String, String)> {
        if name.is_empty() || name.len() > 128 || name.chars().any(char::is_control) {
            return Err(Error::InvalidInput(
                "a token name is 1-128 printable characters".into(),
            ));
        }
        let mut raw = [0u8; 32];
        rand::rngs::SysRng
            .try_fill_bytes(&mut raw)
            .map_err(|e| Error::Rng(Box::new(e)))?;
        let token = format!("ravi_{}", data_encoding::BASE64URL_NOPAD.encode(&raw));
        let id = uuid::Uuid::new_v4().to_string();
        let expires = ttl.map(|t| i64::try_from(now_unix().saturating_add(t)).unwrap_or(i64::MAX));
        each!(self, s => s.insert_token(&id, name, &token, scope, expires))?;
        Ok((token, id))
    }

    /// Every token (never the tokens themselves).
    ///
    /// # Errors
    /// Storage errors.
    pub fn tokens(&self) -> Result<Vec<TokenInfo>> {
        each!(self, s => s.tokens())
    }

    /// Revokes the token with this id or name; whether one was.
    ///
    /// # Errors
    /// Storage errors.
    pub fn revoke_token(&self, id_or_name: &str) -> Result<bool> {
        each!(self, s => s.revoke_token(id_or_name))
    }

    /// The scope of a presented token, if it is known and not expired.
    ///
    /// # Errors
    /// Storage errors.
    pub fn authenticate(&self, token: &str) -> Result<Option<Scope>> {
        each!(self, s => s.authenticate(token))
    }

    /// Records an identity requested over REST.
    ///
    /// # Errors
    /// [`Error::Conflict`] if a pending identity has the name.
    pub fn add_pending(&self, name: &str) -> Result<Pending> {
        let p = Pending {
            uuid: uuid::Uuid::new_v4().to_string(),
            name: name.to_string(),
            created_dt: now_rfc3339(),
        };
        each!(self, s => s.add_pending(&p))?;
        Ok(p)
    }

    /// Identities waiting for adoption, oldest first.
    ///
    /// # Errors
    /// Storage errors.
    pub fn pending(&self) -> Result<Vec<Pending>> {
        each!(self, s => s.pending())
    }

    /// Renames a pending identity; whether it exists.
    ///
    /// # Errors
    /// [`Error::Conflict`] if the name is taken.
    pub fn rename_pending(&self, uuid: &str, name: &str) -> Result<bool> {
        each!(self, s => s.rename_pending(uuid, name))
    }

    /// Forgets a pending identity; whether it existed.
    ///
    /// # Errors
    /// Storage errors.
    pub fn remove_pending(&self, uuid: &str) -> Result<bool> {
        each!(self, s => s.remove_pending(uuid))
    }

    /// The uuid of the identity (adopted or pending) with this uuid or name.
    ///
    /// # Errors
    /// Storage errors.
    pub fn find_identity(&self, selector: &str) -> Result<Option<String>> {
        if let Ok(u) = uuid::Uuid::try_parse(selector) {
            return Ok(Some(u.to_string()));
        }
        if let Some(p) = self
            .pending()?
            .into_iter()
            .find(|p| p.name.eq_ignore_ascii_case(selector))
        {
            return Ok(Some(p.uuid));
        }
        match self.with_vault(|b| b.identity_by_name(selector)) {
            Ok(r) => Ok(r.map(|r| r.uuid)),
            Err(Error::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// The server's store: one SQLite file.
pub struct SqliteStore {
    path: PathBuf,
    meta: Mutex<Connection>,
    pool: Mutex<Vec<SqliteBackend>>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

pub(crate) fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

pub(crate) fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// SHA-256 of a token, as stored.
pub(crate) fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

impl SqliteStore {
    /// Opens (creating if needed, 0600 in a 0700 directory) the store at
    /// `path` and its server tables.
    ///
    /// # Errors
    /// Storage and I/O errors.
    pub fn open(path: &Path) -> Result<SqliteStore> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            vault_core::ensure_private_dir(dir)?;
        }
        if !path.exists() {
            let mut o = std::fs::OpenOptions::new();
            o.write(true).create(true).truncate(false);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                o.mode(0o600);
            }
            o.open(path).map_err(|e| Error::Io {
                context: format!("cannot create {}", path.display()),
                source: e,
            })?;
        }
        let conn = Connection::open(path).map_err(db)?;
        conn.busy_timeout(BUSY).map_err(db)?;
        conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))
            .map_err(db)?;
        conn.execute_batch(
            "PRAGMA synchronous = FULL;
             PRAGMA secure_delete = ON;
             CREATE TABLE IF NOT EXISTS server_tokens (
                 id TEXT PRIMARY KEY,
                 name TEXT NOT NULL UNIQUE,
                 hash BLOB NOT NULL UNIQUE,
                 owner INTEGER NOT NULL,
                 identities TEXT NOT NULL,
                 created_dt TEXT NOT NULL,
                 expires_at INTEGER
             );
             CREATE TABLE IF NOT EXISTS server_pending (
                 uuid TEXT PRIMARY KEY,
                 name TEXT NOT NULL UNIQUE COLLATE NOCASE,
                 created_dt TEXT NOT NULL
             );",
        )
        .map_err(db)?;
        Ok(SqliteStore {
            path: path.to_path_buf(),
            meta: Mutex::new(conn),
            pool: Mutex::new(Vec::new()),
        })
    }

    /// Where the store is.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn meta<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T> {
        let conn = self
            .meta
            .lock()
            .map_err(|_| Error::Storage("a store lock was poisoned".into()))?;
        f(&conn).map_err(db)
    }

    /// Runs `f` on a connection to the vault's rows, or answers
    /// [`Error::NotFound`] if no vault was created yet.
    ///
    /// # Errors
    /// Whatever `f` returns; storage errors.
    pub fn with_vault<T>(&self, f: impl FnOnce(&dyn Backend) -> Result<T>) -> Result<T> {
        let taken = self
            .pool
            .lock()
            .map_err(|_| Error::Storage("a store lock was poisoned".into()))?
            .pop();
        let backend = match taken {
            Some(b) => b,
            None => SqliteBackend::open(&self.path).map_err(|e| match e {
                Error::NotFound(_) => Error::NotFound("this server holds no vault yet".into()),
                other => other,
            })?,
        };
        let out = f(&backend);
        if let Ok(mut pool) = self.pool.lock()
            && pool.len() < 16
        {
            pool.push(backend);
        }
        out
    }

    /// Creates the vault from its sealed header row.
    ///
    /// # Errors
    /// [`Error::Conflict`] if there is one.
    pub fn create_vault(&self, header: &VaultRow) -> Result<()> {
        SqliteBackend::create(&self.path, header).map(drop)
    }

    /// Keeps a token's hash with its name and scope.
    ///
    /// # Errors
    /// [`Error::Conflict`] for a name in use; storage errors.
    pub fn insert_token(
        &self,
        id: &str,
        name: &str,
        token: &str,
        scope: &Scope,
        expires: Option<i64>,
    ) -> Result<()> {
        let (owner, ids) = scope_columns(scope)?;
        let r = self.meta(|c| {
            c.execute(
                "INSERT INTO server_tokens (id, name, hash, owner, identities, created_dt, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![id, name, token_hash(token), owner, ids, now_rfc3339(), expires],
            )
        });
        match r {
            Ok(_) => Ok(()),
            Err(Error::Storage(e)) if e.to_string().contains("UNIQUE") => Err(Error::Conflict(
                format!("a token named {name:?} exists already"),
            )),
            Err(e) => Err(e),
        }
    }

    /// Every token (never the tokens themselves).
    ///
    /// # Errors
    /// Storage errors.
    pub fn tokens(&self) -> Result<Vec<TokenInfo>> {
        self.meta(|c| {
            let mut s = c.prepare(
                "SELECT id, name, owner, identities, created_dt, expires_at
                 FROM server_tokens ORDER BY created_dt, name",
            )?;
            let rows = s.query_map([], |r| {
                Ok(TokenInfo::from_columns(
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    &r.get::<_, String>(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ))
            })?;
            rows.collect()
        })
    }

    /// Revokes the token with this id or name. Returns whether one was.
    ///
    /// # Errors
    /// Storage errors.
    pub fn revoke_token(&self, id_or_name: &str) -> Result<bool> {
        self.meta(|c| {
            c.execute(
                "DELETE FROM server_tokens WHERE id = ?1 OR name = ?1",
                [id_or_name],
            )
        })
        .map(|n| n > 0)
    }

    /// The scope of a presented token, if it is known and not expired.
    ///
    /// # Errors
    /// Storage errors.
    pub fn authenticate(&self, token: &str) -> Result<Option<Scope>> {
        let row: Option<(bool, String, Option<i64>)> = self.meta(|c| {
            c.prepare_cached(
                "SELECT owner, identities, expires_at FROM server_tokens WHERE hash = ?1",
            )?
            .query_row([token_hash(token)], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .optional()
        })?;
        Ok(row.and_then(|(owner, ids, exp)| scope_of(owner, &ids, exp)))
    }

    /// Records an identity requested over REST.
    ///
    /// # Errors
    /// [`Error::Conflict`] if the name is taken by a pending identity.
    pub fn add_pending(&self, p: &Pending) -> Result<()> {
        let r = self.meta(|c| {
            c.execute(
                "INSERT INTO server_pending (uuid, name, created_dt) VALUES (?1, ?2, ?3)",
                params![p.uuid, p.name, p.created_dt],
            )
        });
        match r {
            Ok(_) => Ok(()),
            Err(Error::Storage(e)) if e.to_string().contains("UNIQUE") => Err(Error::Conflict(
                format!("an identity named {:?} exists already", p.name),
            )),
            Err(e) => Err(e),
        }
    }

    /// Identities waiting for adoption, oldest first.
    ///
    /// # Errors
    /// Storage errors.
    pub fn pending(&self) -> Result<Vec<Pending>> {
        self.meta(|c| {
            let mut s = c.prepare(
                "SELECT uuid, name, created_dt FROM server_pending ORDER BY created_dt, name",
            )?;
            let rows = s.query_map([], |r| {
                Ok(Pending {
                    uuid: r.get(0)?,
                    name: r.get(1)?,
                    created_dt: r.get(2)?,
                })
            })?;
            rows.collect()
        })
    }

    /// Renames a pending identity. Returns whether it exists.
    ///
    /// # Errors
    /// [`Error::Conflict`] if the name is taken.
    pub fn rename_pending(&self, uuid: &str, name: &str) -> Result<bool> {
        match self.meta(|c| {
            c.execute(
                "UPDATE server_pending SET name = ?2 WHERE uuid = ?1",
                params![uuid, name],
            )
        }) {
            Ok(n) => Ok(n > 0),
            Err(Error::Storage(e)) if e.to_string().contains("UNIQUE") => Err(Error::Conflict(
                format!("an identity named {name:?} exists already"),
            )),
            Err(e) => Err(e),
        }
    }

    /// Forgets a pending identity (deleted, or adopted). Returns whether it
    /// existed.
    ///
    /// # Errors
    /// Storage errors.
    pub fn remove_pending(&self, uuid: &str) -> Result<bool> {
        self.meta(|c| c.execute("DELETE FROM server_pending WHERE uuid = ?1", [uuid]))
            .map(|n| n > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_kept_as_hashes_and_scoped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let s = Store::Sqlite(SqliteStore::open(&path).unwrap());
        let (owner, _) = s.create_token("o", &Scope::Owner, None).unwrap();
        let scope = Scope::Identities(["a".to_string()].into_iter().collect());
        let (agent, id) = s.create_token("a", &scope, Some(3600)).unwrap();
        assert!(matches!(
            s.create_token("a", &Scope::Owner, None),
            Err(Error::Conflict(_))
        ));
        assert_eq!(s.authenticate(&owner).unwrap(), Some(Scope::Owner));
        assert_eq!(s.authenticate(&agent).unwrap(), Some(scope));
        assert_eq!(s.authenticate("ravi_nope").unwrap(), None);
        assert_eq!(s.tokens().unwrap().len(), 2);
        let (expired, _) = s.create_token("e", &Scope::Owner, Some(0)).unwrap();
        assert_eq!(s.authenticate(&expired).unwrap(), None);
        assert!(s.revoke_token(&id).unwrap());
        assert_eq!(s.authenticate(&agent).unwrap(), None);
        drop(s);
        let bytes = std::fs::read(&path).unwrap();
        let wal = std::fs::read(dir.path().join("s.db-wal")).unwrap_or_default();
        for t in [&owner, &agent] {
            let needle = t.as_bytes();
            assert!(!bytes.windows(needle.len()).any(|w| w == needle));
            assert!(!wal.windows(needle.len()).any(|w| w == needle));
        }
    }
}
