//! The SQLite store: moves sealed rows in and out, knows nothing of keys or
//! plaintext.
//!
//! One [`Store::read`] or [`Store::write`] call is one transaction. Writers
//! take the write lock up front (`BEGIN IMMEDIATE`) so concurrent processes
//! queue on the busy timeout instead of failing on a lock upgrade.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

use crate::error::{Error, Result};

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = 2;

/// How long a process waits for another process's write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(60);

/// `MIGRATIONS[i]` takes the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE vault (
    id               INTEGER PRIMARY KEY CHECK (id = 1),
    vault_id         TEXT    NOT NULL,
    kdf_memory_kib   INTEGER NOT NULL,
    kdf_iterations   INTEGER NOT NULL,
    kdf_parallelism  INTEGER NOT NULL,
    kdf_salt         BLOB    NOT NULL,
    wrapped_root_key BLOB    NOT NULL,
    inbox_domain     TEXT    NOT NULL,
    created_dt       TEXT    NOT NULL
);
CREATE TABLE identities (
    uuid        TEXT    PRIMARY KEY,
    name        TEXT    NOT NULL UNIQUE COLLATE NOCASE,
    inbox       TEXT    NOT NULL UNIQUE COLLATE NOCASE,
    phone       TEXT,
    created_dt  TEXT    NOT NULL,
    key_epoch   INTEGER NOT NULL,
    wrapped_key BLOB    NOT NULL
);
CREATE TABLE records (
    uuid          TEXT    PRIMARY KEY,
    identity_uuid TEXT    NOT NULL REFERENCES identities(uuid) ON DELETE CASCADE,
    kind          INTEGER NOT NULL,
    blind_index   BLOB    NOT NULL,
    key_epoch     INTEGER NOT NULL,
    ciphertext    BLOB    NOT NULL
);
CREATE INDEX records_by_name ON records(identity_uuid, kind, blind_index);
CREATE UNIQUE INDEX records_unique_name ON records(identity_uuid, kind, blind_index)
    WHERE kind <> 1;
"#,
    r#"
CREATE TABLE sessions (
    session_id       TEXT    PRIMARY KEY,
    expires_at       INTEGER NOT NULL,
    created_dt       TEXT    NOT NULL,
    wrapped_root_key BLOB    NOT NULL
);
CREATE TABLE grants (
    uuid             TEXT    PRIMARY KEY,
    identity_uuid    TEXT    NOT NULL REFERENCES identities(uuid) ON DELETE CASCADE,
    recipient        BLOB    NOT NULL,
    label            TEXT,
    key_epoch        INTEGER NOT NULL,
    ephemeral_public BLOB    NOT NULL,
    wrapped_key      BLOB    NOT NULL,
    created_dt       TEXT    NOT NULL,
    UNIQUE (identity_uuid, recipient)
);
CREATE INDEX grants_by_recipient ON grants(recipient);
"#,
];

/// The vault's header row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VaultRow {
    /// The vault's uuid, hyphenated.
    pub vault_id: String,
    /// Argon2id memory in KiB.
    pub kdf_memory_kib: u32,
    /// Argon2id passes.
    pub kdf_iterations: u32,
    /// Argon2id lanes.
    pub kdf_parallelism: u32,
    /// Argon2id salt.
    pub kdf_salt: Vec<u8>,
    /// The root key sealed under the KEK.
    pub wrapped_root_key: Vec<u8>,
    /// Domain of newly assigned inbox addresses.
    pub inbox_domain: String,
    /// Creation time, RFC 3339.
    pub created_dt: String,
}

/// An identity row: clear routing metadata and the wrapped identity key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdentityRow {
    /// The identity's uuid, hyphenated.
    pub uuid: String,
    /// Unique (case-insensitive) name.
    pub name: String,
    /// Inbox address.
    pub inbox: String,
    /// E.164 phone number.
    pub phone: Option<String>,
    /// Creation time, RFC 3339.
    pub created_dt: String,
    /// Epoch of the current identity key.
    pub key_epoch: u32,
    /// The identity key sealed under the root key.
    pub wrapped_key: Vec<u8>,
}

/// A record row: ids, kind, blind index, key epoch and ciphertext only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordRow {
    /// The record's uuid, hyphenated.
    pub uuid: String,
    /// Its identity's uuid.
    pub identity_uuid: String,
    /// Record kind.
    pub kind: u8,
    /// Keyed MAC of the record's normalised name.
    pub blind_index: Vec<u8>,
    /// Identity key epoch the record is sealed under.
    pub key_epoch: u32,
    /// The sealed record.
    pub ciphertext: Vec<u8>,
}

/// A session row: the root key sealed under a session key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionRow {
    /// The session id (hex).
    pub session_id: String,
    /// Expiry, Unix seconds.
    pub expires_at: u64,
    /// Creation time, RFC 3339.
    pub created_dt: String,
    /// The root key sealed under the session key.
    pub wrapped_root_key: Vec<u8>,
}

/// A grant row: an identity key wrapped to an agent's public key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrantRow {
    /// The grant's uuid.
    pub uuid: String,
    /// The identity's uuid.
    pub identity_uuid: String,
    /// The agent's X25519 public key.
    pub recipient: Vec<u8>,
    /// A label for humans.
    pub label: Option<String>,
    /// The identity key epoch wrapped.
    pub key_epoch: u32,
    /// The ephemeral X25519 public key.
    pub ephemeral_public: Vec<u8>,
    /// The identity key sealed under the grant's wrap key.
    pub wrapped_key: Vec<u8>,
    /// Creation time, RFC 3339.
    pub created_dt: String,
}

/// A connection to one vault file.
pub struct Store {
    conn: Connection,
    path: PathBuf,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

impl Store {
    /// Creates the vault file (0600, directory 0700) and its schema, and
    /// inserts the header row, in one transaction.
    ///
    /// # Errors
    /// [`Error::Conflict`] if a vault already exists at `path`.
    pub fn create(path: &Path, header: &VaultRow) -> Result<Store> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            crate::config::ensure_private_dir(dir)?;
        }
        create_private_file(path)?;
        let store = Store::connect(path, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
        store.write(|tx| {
            let version: i64 = tx.0.query_row("PRAGMA user_version", [], |r| r.get(0))?;
            let has_tables: i64 = tx.0.query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table'",
                [],
                |r| r.get(0),
            )?;
            if version != 0 || has_tables != 0 {
                return Err(Error::Conflict(format!(
                    "a vault already exists at {}",
                    path.display()
                )));
            }
            migrate(tx, 0)?;
            tx.insert_vault(header)
        })?;
        Ok(store)
    }

    /// Opens an existing vault, applying forward migrations if needed.
    ///
    /// # Errors
    /// [`Error::NotFound`] if there is no vault at `path`; [`Error::Conflict`]
    /// if the file's schema is newer than this build understands.
    pub fn open(path: &Path) -> Result<Store> {
        if !path.exists() {
            return Err(Error::NotFound(format!(
                "no vault at {} (run `ravi init` first)",
                path.display()
            )));
        }
        let store = Store::connect(path, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
        let version = store.read(|tx| Ok(tx.user_version()?))?;
        if version == 0 {
            return Err(Error::NotFound(format!(
                "no vault at {} (the file is not initialised; run `ravi init`)",
                path.display()
            )));
        }
        if version > SCHEMA_VERSION {
            return Err(Error::Conflict(format!(
                "the vault at {} has schema version {version}, newer than this ravi \
                 supports ({SCHEMA_VERSION}); upgrade ravi",
                path.display()
            )));
        }
        if version < SCHEMA_VERSION {
            store.write(|tx| {
                let v = tx.user_version()?;
                migrate(tx, v)
            })?;
        }
        Ok(store)
    }

    fn connect(path: &Path, flags: OpenFlags) -> Result<Store> {
        let conn = Connection::open_with_flags(path, flags | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        // journal_mode returns a row; the others do not.
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(Error::Storage(format!(
                "could not switch the vault to WAL mode (got {mode})"
            )));
        }
        conn.execute_batch(
            "PRAGMA synchronous = FULL;
             PRAGMA foreign_keys = ON;
             PRAGMA secure_delete = ON;",
        )?;
        Ok(Store {
            conn,
            path: path.to_path_buf(),
        })
    }

    /// The path of the vault file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` in a read transaction.
    ///
    /// # Errors
    /// Whatever `f` returns, or a storage error.
    pub fn read<T>(&self, f: impl FnOnce(&Tx<'_>) -> Result<T>) -> Result<T> {
        self.transaction("BEGIN DEFERRED", f)
    }

    /// Runs `f` in a write transaction, committed only if `f` succeeds.
    ///
    /// # Errors
    /// Whatever `f` returns, or a storage error; nothing is written then.
    pub fn write<T>(&self, f: impl FnOnce(&Tx<'_>) -> Result<T>) -> Result<T> {
        self.transaction("BEGIN IMMEDIATE", f)
    }

    fn transaction<T>(&self, begin: &str, f: impl FnOnce(&Tx<'_>) -> Result<T>) -> Result<T> {
        self.conn.execute_batch(begin)?;
        let tx = Tx(&self.conn);
        match f(&tx) {
            Ok(v) => match self.conn.execute_batch("COMMIT") {
                Ok(()) => Ok(v),
                Err(e) => {
                    let _ = self.conn.execute_batch("ROLLBACK");
                    Err(e.into())
                }
            },
            Err(e) => {
                // A failed ROLLBACK leaves the connection to be dropped,
                // which rolls back too; the original error matters more.
                let _ = self.conn.execute_batch("ROLLBACK");
                Err(e)
            }
        }
    }
}

fn migrate(tx: &Tx<'_>, from: i64) -> Result<()> {
    let from = usize::try_from(from).map_err(|_| Error::Storage("bad schema version".into()))?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(from) {
        tx.0.execute_batch(sql)?;
        tx.0.pragma_update(
            None,
            "user_version",
            i64::try_from(i + 1).unwrap_or(i64::MAX),
        )?;
    }
    Ok(())
}

fn create_private_file(path: &Path) -> Result<()> {
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path)
        .map(drop)
        .map_err(|e| Error::io(format!("cannot create {}", path.display()), e))
}

/// A transaction on the store; every method moves sealed rows only.
pub struct Tx<'a>(&'a Connection);

const IDENTITY_COLS: &str = "uuid, name, inbox, phone, created_dt, key_epoch, wrapped_key";
const RECORD_COLS: &str = "uuid, identity_uuid, kind, blind_index, key_epoch, ciphertext";
const GRANT_COLS: &str =
    "uuid, identity_uuid, recipient, label, key_epoch, ephemeral_public, wrapped_key, created_dt";

fn grant_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<GrantRow> {
    Ok(GrantRow {
        uuid: r.get(0)?,
        identity_uuid: r.get(1)?,
        recipient: r.get(2)?,
        label: r.get(3)?,
        key_epoch: r.get(4)?,
        ephemeral_public: r.get(5)?,
        wrapped_key: r.get(6)?,
        created_dt: r.get(7)?,
    })
}

fn identity_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<IdentityRow> {
    Ok(IdentityRow {
        uuid: r.get(0)?,
        name: r.get(1)?,
        inbox: r.get(2)?,
        phone: r.get(3)?,
        created_dt: r.get(4)?,
        key_epoch: r.get(5)?,
        wrapped_key: r.get(6)?,
    })
}

fn record_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RecordRow> {
    Ok(RecordRow {
        uuid: r.get(0)?,
        identity_uuid: r.get(1)?,
        kind: r.get(2)?,
        blind_index: r.get(3)?,
        key_epoch: r.get(4)?,
        ciphertext: r.get(5)?,
    })
}

fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(
        e,
        rusqlite::Error::SqliteFailure(f, _)
            if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                || f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
    )
}

impl Tx<'_> {
    fn user_version(&self) -> rusqlite::Result<i64> {
        self.0.query_row("PRAGMA user_version", [], |r| r.get(0))
    }

    fn insert_vault(&self, v: &VaultRow) -> Result<()> {
        self.0.execute(
            "INSERT INTO vault (id, vault_id, kdf_memory_kib, kdf_iterations, kdf_parallelism,
                 kdf_salt, wrapped_root_key, inbox_domain, created_dt)
             VALUES (1, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                v.vault_id,
                v.kdf_memory_kib,
                v.kdf_iterations,
                v.kdf_parallelism,
                v.kdf_salt,
                v.wrapped_root_key,
                v.inbox_domain,
                v.created_dt
            ],
        )?;
        Ok(())
    }

    /// The vault header.
    ///
    /// # Errors
    /// [`Error::Integrity`] if the header row is missing.
    pub fn vault(&self) -> Result<VaultRow> {
        self.0
            .query_row(
                "SELECT vault_id, kdf_memory_kib, kdf_iterations, kdf_parallelism, kdf_salt,
                        wrapped_root_key, inbox_domain, created_dt FROM vault WHERE id = 1",
                [],
                |r| {
                    Ok(VaultRow {
                        vault_id: r.get(0)?,
                        kdf_memory_kib: r.get(1)?,
                        kdf_iterations: r.get(2)?,
                        kdf_parallelism: r.get(3)?,
                        kdf_salt: r.get(4)?,
                        wrapped_root_key: r.get(5)?,
                        inbox_domain: r.get(6)?,
                        created_dt: r.get(7)?,
                    })
                },
            )
            .optional()?
            .ok_or_else(|| Error::Integrity("the vault header is missing".into()))
    }

    /// Inserts an identity.
    ///
    /// # Errors
    /// [`Error::Conflict`] if the name or inbox is taken.
    pub fn insert_identity(&self, row: &IdentityRow) -> Result<()> {
        self.0
            .execute(
                &format!(
                    "INSERT INTO identities ({IDENTITY_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
                ),
                params![
                    row.uuid,
                    row.name,
                    row.inbox,
                    row.phone,
                    row.created_dt,
                    row.key_epoch,
                    row.wrapped_key
                ],
            )
            .map_err(|e| {
                if is_unique_violation(&e) {
                    Error::Conflict(format!(
                        "an identity named {:?} or with inbox {:?} already exists",
                        row.name, row.inbox
                    ))
                } else {
                    e.into()
                }
            })?;
        Ok(())
    }

    /// The identity with this uuid.
    ///
    /// # Errors
    /// Storage errors only.
    pub fn identity_by_uuid(&self, uuid: &str) -> Result<Option<IdentityRow>> {
        Ok(self
            .0
            .query_row(
                &format!("SELECT {IDENTITY_COLS} FROM identities WHERE uuid = ?1"),
                [uuid],
                identity_row,
            )
            .optional()?)
    }

    /// The identity with this name (case-insensitive).
    ///
    /// # Errors
    /// Storage errors only.
    pub fn identity_by_name(&self, name: &str) -> Result<Option<IdentityRow>> {
        Ok(self
            .0
            .query_row(
                &format!("SELECT {IDENTITY_COLS} FROM identities WHERE name = ?1"),
                [name],
                identity_row,
            )
            .optional()?)
    }

    /// All identities, by creation time then name.
    ///
    /// # Errors
    /// Storage errors only.
    pub fn identities(&self) -> Result<Vec<IdentityRow>> {
        let mut stmt = self.0.prepare(&format!(
            "SELECT {IDENTITY_COLS} FROM identities ORDER BY created_dt, name"
        ))?;
        let rows = stmt.query_map([], identity_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Deletes an identity and, by cascade, all its records. Returns whether
    /// a row was deleted.
    ///
    /// # Errors
    /// Storage errors only.
    pub fn delete_identity(&self, uuid: &str) -> Result<bool> {
        Ok(self
            .0
            .execute("DELETE FROM identities WHERE uuid = ?1", [uuid])?
            > 0)
    }

    /// Inserts a record.
    ///
    /// # Errors
    /// [`Error::Conflict`] if a unique name is already taken.
    pub fn insert_record(&self, row: &RecordRow) -> Result<()> {
        self.0
            .execute(
                &format!("INSERT INTO records ({RECORD_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"),
                params![
                    row.uuid,
                    row.identity_uuid,
                    row.kind,
                    row.blind_index,
                    row.key_epoch,
                    row.ciphertext
                ],
            )
            .map_err(|e| {
                if is_unique_violation(&e) {
                    Error::Conflict("a record with this name already exists".into())
                } else {
                    e.into()
                }
            })?;
        Ok(())
    }

    /// Replaces a record's blind index, epoch and ciphertext.
    ///
    /// # Errors
    /// [`Error::NotFound`] if the record vanished; [`Error::Conflict`] on a
    /// unique-name clash.
    pub fn update_record(&self, row: &RecordRow) -> Result<()> {
        let n = self
            .0
            .execute(
                "UPDATE records SET blind_index = ?2, key_epoch = ?3, ciphertext = ?4
                 WHERE uuid = ?1 AND identity_uuid = ?5 AND kind = ?6",
                params![
                    row.uuid,
                    row.blind_index,
                    row.key_epoch,
                    row.ciphertext,
                    row.identity_uuid,
                    row.kind
                ],
            )
            .map_err(|e| {
                if is_unique_violation(&e) {
                    Error::Conflict("a record with this name already exists".into())
                } else {
                    Error::from(e)
                }
            })?;
        if n == 0 {
            return Err(Error::NotFound(format!("record {} not found", row.uuid)));
        }
        Ok(())
    }

    /// The record with this uuid in this identity and kind.
    ///
    /// # Errors
    /// Storage errors only.
    pub fn record(&self, identity_uuid: &str, kind: u8, uuid: &str) -> Result<Option<RecordRow>> {
        Ok(self
            .0
            .query_row(
                &format!(
                    "SELECT {RECORD_COLS} FROM records
                     WHERE uuid = ?1 AND identity_uuid = ?2 AND kind = ?3"
                ),
                params![uuid, identity_uuid, kind],
                record_row,
            )
            .optional()?)
    }

    /// Records of an identity and kind with this blind index.
    ///
    /// # Errors
    /// Storage errors only.
    pub fn records_by_index(
        &self,
        identity_uuid: &str,
        kind: u8,
        blind_index: &[u8],
    ) -> Result<Vec<RecordRow>> {
        let mut stmt = self.0.prepare_cached(&format!(
            "SELECT {RECORD_COLS} FROM records
             WHERE identity_uuid = ?1 AND kind = ?2 AND blind_index = ?3 ORDER BY uuid"
        ))?;
        let rows = stmt.query_map(params![identity_uuid, kind, blind_index], record_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// All records of an identity and kind.
    ///
    /// # Errors
    /// Storage errors only.
    pub fn records_of_kind(&self, identity_uuid: &str, kind: u8) -> Result<Vec<RecordRow>> {
        let mut stmt = self.0.prepare_cached(&format!(
            "SELECT {RECORD_COLS} FROM records WHERE identity_uuid = ?1 AND kind = ?2 ORDER BY uuid"
        ))?;
        let rows = stmt.query_map(params![identity_uuid, kind], record_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Replaces the vault's KDF parameters, salt and wrapped root key, if the
    /// wrapped root key is still `expected` (no concurrent change).
    ///
    /// # Errors
    /// [`Error::Conflict`] if the header changed meanwhile.
    pub fn replace_vault_key(&self, expected: &[u8], v: &VaultRow) -> Result<()> {
        let n = self.0.execute(
            "UPDATE vault SET kdf_memory_kib = ?1, kdf_iterations = ?2, kdf_parallelism = ?3,
                 kdf_salt = ?4, wrapped_root_key = ?5 WHERE id = 1 AND wrapped_root_key = ?6",
            params![
                v.kdf_memory_kib,
                v.kdf_iterations,
                v.kdf_parallelism,
                v.kdf_salt,
                v.wrapped_root_key,
                expected
            ],
        )?;
        if n == 0 {
            return Err(Error::Conflict(
                "the vault's passphrase changed while this command ran; retry".into(),
            ));
        }
        Ok(())
    }

    /// Replaces an identity's key epoch and wrapped key, if its epoch is
    /// still `expected_epoch`.
    ///
    /// # Errors
    /// [`Error::Conflict`] if the identity changed meanwhile.
    pub fn replace_identity_key(
        &self,
        uuid: &str,
        expected_epoch: u32,
        new_epoch: u32,
        wrapped_key: &[u8],
    ) -> Result<()> {
        let n = self.0.execute(
            "UPDATE identities SET key_epoch = ?3, wrapped_key = ?4 WHERE uuid = ?1 AND key_epoch = ?2",
            params![uuid, expected_epoch, new_epoch, wrapped_key],
        )?;
        if n == 0 {
            return Err(Error::Conflict(
                "the identity changed while this command ran; retry".into(),
            ));
        }
        Ok(())
    }

    /// All records of an identity, every kind.
    ///
    /// # Errors
    /// Storage errors only.
    pub fn records_of_identity(&self, identity_uuid: &str) -> Result<Vec<RecordRow>> {
        let mut stmt = self.0.prepare(&format!(
            "SELECT {RECORD_COLS} FROM records WHERE identity_uuid = ?1 ORDER BY uuid"
        ))?;
        let rows = stmt.query_map([identity_uuid], record_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Inserts a session.
    ///
    /// # Errors
    /// Storage errors only.
    pub fn insert_session(&self, row: &SessionRow) -> Result<()> {
        self.0.execute(
            "INSERT INTO sessions (session_id, expires_at, created_dt, wrapped_root_key)
             VALUES (?1, ?2, ?3, ?4)",
            params![
                row.session_id,
                i64::try_from(row.expires_at).unwrap_or(i64::MAX),
                row.created_dt,
                row.wrapped_root_key
            ],
        )?;
        Ok(())
    }

    /// The session with this id.
    ///
    /// # Errors
    /// Storage errors only.
    pub fn session(&self, session_id: &str) -> Result<Option<SessionRow>> {
        Ok(self
            .0
            .query_row(
                "SELECT session_id, expires_at, created_dt, wrapped_root_key
                 FROM sessions WHERE session_id = ?1",
                [session_id],
                |r| {
                    Ok(SessionRow {
                        session_id: r.get(0)?,
                        expires_at: u64::try_from(r.get::<_, i64>(1)?).unwrap_or(0),
                        created_dt: r.get(2)?,
                        wrapped_root_key: r.get(3)?,
                    })
                },
            )
            .optional()?)
    }

    /// Deletes one session (`Some`) or all of them (`None`); returns how many.
    ///
    /// # Errors
    /// Storage errors only.
    pub fn delete_sessions(&self, session_id: Option<&str>) -> Result<usize> {
        Ok(match session_id {
            Some(id) => self
                .0
                .execute("DELETE FROM sessions WHERE session_id = ?1", [id])?,
            None => self.0.execute("DELETE FROM sessions", [])?,
        })
    }

    /// Deletes sessions that expired at or before `now`.
    ///
    /// # Errors
    /// Storage errors only.
    pub fn delete_expired_sessions(&self, now: u64) -> Result<usize> {
        Ok(self.0.execute(
            "DELETE FROM sessions WHERE expires_at <= ?1",
            [i64::try_from(now).unwrap_or(i64::MAX)],
        )?)
    }

    /// Inserts a grant.
    ///
    /// # Errors
    /// [`Error::Conflict`] if this agent already has a grant for the identity.
    pub fn insert_grant(&self, g: &GrantRow) -> Result<()> {
        self.0
            .execute(
                &format!(
                    "INSERT INTO grants ({GRANT_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
                ),
                params![
                    g.uuid,
                    g.identity_uuid,
                    g.recipient,
                    g.label,
                    g.key_epoch,
                    g.ephemeral_public,
                    g.wrapped_key,
                    g.created_dt
                ],
            )
            .map_err(|e| {
                if is_unique_violation(&e) {
                    Error::Conflict("this agent already has a grant for the identity".into())
                } else {
                    e.into()
                }
            })?;
        Ok(())
    }

    /// Replaces a grant's epoch, ephemeral key and wrapped key.
    ///
    /// # Errors
    /// Storage errors only.
    pub fn update_grant(&self, g: &GrantRow) -> Result<()> {
        self.0.execute(
            "UPDATE grants SET key_epoch = ?2, ephemeral_public = ?3, wrapped_key = ?4 WHERE uuid = ?1",
            params![g.uuid, g.key_epoch, g.ephemeral_public, g.wrapped_key],
        )?;
        Ok(())
    }

    /// The grants of an identity, oldest first.
    ///
    /// # Errors
    /// Storage errors only.
    pub fn grants_of(&self, identity_uuid: &str) -> Result<Vec<GrantRow>> {
        let mut stmt = self.0.prepare(&format!(
            "SELECT {GRANT_COLS} FROM grants WHERE identity_uuid = ?1 ORDER BY created_dt, uuid"
        ))?;
        let rows = stmt.query_map([identity_uuid], grant_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The grant of an identity to this recipient.
    ///
    /// # Errors
    /// Storage errors only.
    pub fn grant_for(&self, identity_uuid: &str, recipient: &[u8]) -> Result<Option<GrantRow>> {
        Ok(self
            .0
            .query_row(
                &format!(
                    "SELECT {GRANT_COLS} FROM grants WHERE identity_uuid = ?1 AND recipient = ?2"
                ),
                params![identity_uuid, recipient],
                grant_row,
            )
            .optional()?)
    }

    /// Deletes a grant. Returns whether a row was deleted.
    ///
    /// # Errors
    /// Storage errors only.
    pub fn delete_grant(&self, uuid: &str) -> Result<bool> {
        Ok(self
            .0
            .execute("DELETE FROM grants WHERE uuid = ?1", [uuid])?
            > 0)
    }

    /// An identity's current key epoch.
    ///
    /// # Errors
    /// Storage errors only.
    pub fn identity_epoch(&self, uuid: &str) -> Result<Option<u32>> {
        Ok(self
            .0
            .query_row(
                "SELECT key_epoch FROM identities WHERE uuid = ?1",
                [uuid],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Deletes a record. Returns whether a row was deleted.
    ///
    /// # Errors
    /// Storage errors only.
    pub fn delete_record(&self, identity_uuid: &str, kind: u8, uuid: &str) -> Result<bool> {
        Ok(self.0.execute(
            "DELETE FROM records WHERE uuid = ?1 AND identity_uuid = ?2 AND kind = ?3",
            params![uuid, identity_uuid, kind],
        )? > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> VaultRow {
        VaultRow {
            vault_id: "v".into(),
            kdf_memory_kib: 1024,
            kdf_iterations: 1,
            kdf_parallelism: 1,
            kdf_salt: vec![1; 16],
            wrapped_root_key: vec![2; 73],
            inbox_domain: "example.com".into(),
            created_dt: "2026-01-01T00:00:00Z".into(),
        }
    }

    #[test]
    fn create_open_and_refuse_twice() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/vault.db");
        Store::create(&path, &header()).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
            let mode = fs::metadata(path.parent().unwrap())
                .unwrap()
                .permissions()
                .mode()
                & 0o777;
            assert_eq!(mode, 0o700);
        }
        assert!(matches!(
            Store::create(&path, &header()),
            Err(Error::Conflict(_))
        ));
        let s = Store::open(&path).unwrap();
        assert_eq!(s.read(|tx| tx.vault()).unwrap(), header());
    }

    #[test]
    fn missing_and_newer_schema() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vault.db");
        assert!(matches!(Store::open(&path), Err(Error::NotFound(_))));
        Store::create(&path, &header()).unwrap();
        let c = Connection::open(&path).unwrap();
        c.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
        drop(c);
        let err = Store::open(&path).unwrap_err();
        assert!(matches!(err, Error::Conflict(_)), "{err}");
        assert!(err.to_string().contains("newer"));
    }

    #[test]
    fn failed_write_rolls_back_and_cascade_deletes() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::create(&dir.path().join("v.db"), &header()).unwrap();
        let ident = IdentityRow {
            uuid: "i1".into(),
            name: "a".into(),
            inbox: "a@x".into(),
            phone: None,
            created_dt: "t".into(),
            key_epoch: 1,
            wrapped_key: vec![0; 73],
        };
        let rec = RecordRow {
            uuid: "r1".into(),
            identity_uuid: "i1".into(),
            kind: 2,
            blind_index: vec![1; 32],
            key_epoch: 1,
            ciphertext: vec![3; 100],
        };
        let r: Result<()> = s.write(|tx| {
            tx.insert_identity(&ident)?;
            Err(Error::invalid("abort"))
        });
        assert!(r.is_err());
        assert!(s.read(|tx| tx.identity_by_uuid("i1")).unwrap().is_none());
        s.write(|tx| {
            tx.insert_identity(&ident)?;
            tx.insert_record(&rec)
        })
        .unwrap();
        let dup = RecordRow {
            uuid: "r2".into(),
            ..rec.clone()
        };
        assert!(matches!(
            s.write(|tx| tx.insert_record(&dup)),
            Err(Error::Conflict(_))
        ));
        let pw = RecordRow {
            uuid: "r3".into(),
            kind: 1,
            ..rec.clone()
        };
        let pw2 = RecordRow {
            uuid: "r4".into(),
            kind: 1,
            ..rec.clone()
        };
        s.write(|tx| {
            tx.insert_record(&pw)?;
            tx.insert_record(&pw2)
        })
        .unwrap();
        assert_eq!(
            s.read(|tx| tx.records_by_index("i1", 1, &[1; 32]))
                .unwrap()
                .len(),
            2
        );
        assert!(s.write(|tx| tx.delete_identity("i1")).unwrap());
        assert!(s.read(|tx| tx.records_of_kind("i1", 2)).unwrap().is_empty());
    }
}
