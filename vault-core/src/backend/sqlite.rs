//! The SQLite backend: one vault file, many processes.
//!
//! WAL journal, `synchronous = FULL`, foreign keys, `secure_delete`, a busy
//! timeout; file 0600 in a 0700 directory; the schema version in
//! `user_version` with forward migrations. Reads are single statements
//! (each its own snapshot); a commit is one `BEGIN IMMEDIATE` transaction
//! that checks the batch's preconditions, then applies its writes, so
//! concurrent writers queue on the busy timeout instead of failing on a
//! lock upgrade. rusqlite and its error codes stay in this file.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

use super::{
    Backend, Batch, Changes, CommitError, Conflict, GrantRow, IdentityRow, Precondition,
    RecordQuery, RecordRow, SessionRow, VaultRow, Write, injected_failure,
};
use crate::error::{Error, Result};

/// The schema version this build writes.
pub(crate) const SCHEMA_VERSION: i64 = 5;

/// The oldest schema a read-only opening reads without migrating: versions
/// 4 and 5 only change indexes, which the queries name so that both forms
/// serve them.
const READ_ONLY_MIN_VERSION: i64 = 3;

thread_local! {
    /// Set while a checkpoint that must never wait runs on this thread.
    static NO_WAIT: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// How long a process waits for another process's write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(60);

/// Waits for another process's write lock: polls every millisecond for
/// two seconds, then every ten, up to [`BUSY_TIMEOUT`]. SQLite's own
/// timeout sleeps longer and longer (1, 2, 5, … 100 ms) between tries, so a
/// writer that meets a series of short transactions (a rotation in chunks)
/// kept missing the gaps between them and waited 80 ms and more; polling
/// often, it gets in within a millisecond of the first gap.
fn busy_wait(tries: i32) -> bool {
    const FAST: i32 = 2000;
    if NO_WAIT.with(std::cell::Cell::get) {
        return false;
    }
    let slow = i32::try_from((BUSY_TIMEOUT.as_millis() - 2000) / 10).unwrap_or(i32::MAX);
    match tries {
        n if n < FAST => std::thread::sleep(Duration::from_millis(1)),
        n if n - FAST < slow => std::thread::sleep(Duration::from_millis(10)),
        _ => return false,
    }
    true
}

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
    r#"
ALTER TABLE vault ADD COLUMN owner_public_key BLOB;
ALTER TABLE vault ADD COLUMN wrapped_owner_key BLOB;
ALTER TABLE vault ADD COLUMN signature BLOB;
ALTER TABLE identities ADD COLUMN signature BLOB;
ALTER TABLE grants ADD COLUMN signature BLOB;
ALTER TABLE identities ADD COLUMN head BLOB;
ALTER TABLE vault ADD COLUMN vault_head BLOB;
CREATE TABLE tree_nodes (
    identity_uuid TEXT    NOT NULL REFERENCES identities(uuid) ON DELETE CASCADE,
    node          INTEGER NOT NULL,
    hash          BLOB    NOT NULL,
    PRIMARY KEY (identity_uuid, node)
) WITHOUT ROWID;
"#,
    // An identity's records in uuid order without sorting them: listings
    // read them page by page.
    r#"
CREATE INDEX records_by_identity ON records(identity_uuid, uuid);
"#,
    // A record is filed under its name once: passwords (whose names repeat)
    // in `records_by_name`, the other kinds in `records_unique_name`. Before,
    // every secret and TOTP had an entry in both, and each write (a
    // rotation's re-seal of each record above all) changed two more pages.
    r#"
DROP INDEX records_by_name;
CREATE INDEX records_by_name ON records(identity_uuid, kind, blind_index) WHERE kind = 1;
"#,
];

/// A SQLite error as a vault-core error: a damaged file is an integrity
/// failure, everything else a storage failure carrying its source.
fn db_error(e: rusqlite::Error) -> Error {
    use rusqlite::ffi::ErrorCode;
    match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseCorrupt) | Some(ErrorCode::NotADatabase) => {
            Error::Integrity(format!("the vault file is damaged ({e})"))
        }
        // A full disk, or a file-size limit (RLIMIT_FSIZE: the write fails
        // with EFBIG once SIGXFSZ is handled): the transaction is rolled
        // back and nothing stored is lost.
        Some(ErrorCode::DiskFull | ErrorCode::SystemIoFailure) => Error::Storage(
            format!(
                "cannot write the vault: the disk is full or a file-size limit was reached \
                 (nothing was changed) ({e})"
            )
            .into(),
        ),
        Some(ErrorCode::ReadOnly) => Error::Storage(Box::new(ReadOnlyVault(e))),
        _ => Error::Storage(Box::new(e)),
    }
}

/// A write refused because the vault file, its directory or its
/// filesystem is read-only here.
#[derive(Debug)]
struct ReadOnlyVault(rusqlite::Error);

impl std::fmt::Display for ReadOnlyVault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "cannot write the vault: its file, directory or filesystem is read-only here \
             (reads work; nothing was changed) ({})",
            self.0
        )
    }
}

impl std::error::Error for ReadOnlyVault {}

trait Db<T> {
    fn db(self) -> Result<T>;
}

impl<T> Db<T> for rusqlite::Result<T> {
    fn db(self) -> Result<T> {
        self.map_err(db_error)
    }
}

fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(
        e,
        rusqlite::Error::SqliteFailure(f, _)
            if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                || f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
    )
}

fn is_foreign_key_violation(e: &rusqlite::Error) -> bool {
    matches!(
        e,
        rusqlite::Error::SqliteFailure(f, _)
            if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY
    )
}

/// A connection to one vault file.
pub struct SqliteBackend {
    conn: Connection,
    path: PathBuf,
    /// This connection committed a change since it last emptied the log:
    /// it checkpoints when dropped.
    wrote: std::cell::Cell<bool>,
    /// A read transaction of [`Backend::read_snapshot`] is open.
    snapshot: std::cell::Cell<bool>,
}

impl Drop for SqliteBackend {
    /// A process that wrote leaves the main file complete (the log copied
    /// in and emptied, when no other process is in the way), as SQLite's
    /// own close did before the log was made persistent; a reader leaves
    /// everything as it found it.
    fn drop(&mut self) {
        if self.wrote.get() {
            self.checkpoint_truncate();
        }
    }
}

impl std::fmt::Debug for SqliteBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteBackend")
            .field("path", &self.path)
            .finish()
    }
}

impl SqliteBackend {
    /// Creates the vault file (0600, directory 0700) and its schema, and
    /// inserts the header row, in one transaction.
    ///
    /// # Errors
    /// [`Error::Conflict`] if a vault already exists at `path`.
    pub fn create(path: &Path, header: &VaultRow) -> Result<SqliteBackend> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            crate::fsutil::ensure_private_dir(dir)?;
        }
        create_private_file(path)?;
        let conn = SqliteBackend::connect_plain(path, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
        match inspect(&conn, path)? {
            Found::Empty => {}
            Found::Vault(_) => {
                return Err(Error::Conflict(format!(
                    "a vault already exists at {}",
                    path.display()
                )));
            }
        }
        let mut b = SqliteBackend::configure(conn, path, false)?;
        let tx = b
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .db()?;
        // (again inside the write transaction: another process may have
        // created the vault since)
        if !matches!(inspect(&tx, path)?, Found::Empty) {
            return Err(Error::Conflict(format!(
                "a vault already exists at {}",
                path.display()
            )));
        }
        migrate(&tx, 0)?;
        tx.execute(
            "INSERT INTO vault (id, vault_id, kdf_memory_kib, kdf_iterations, kdf_parallelism,
                 kdf_salt, wrapped_root_key, inbox_domain, created_dt, owner_public_key,
                 wrapped_owner_key, signature, vault_head)
             VALUES (1, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            params![
                header.vault_id,
                header.kdf_memory_kib,
                header.kdf_iterations,
                header.kdf_parallelism,
                header.kdf_salt,
                header.wrapped_root_key,
                header.inbox_domain,
                header.created_dt,
                header.owner_public_key,
                header.wrapped_owner_key,
                header.signature,
                header.vault_head
            ],
        )
        .db()?;
        tx.commit().db()?;
        b.wrote.set(true);
        Ok(b)
    }

    /// Opens an existing vault file, applying forward migrations if needed.
    ///
    /// # Errors
    /// [`Error::NotFound`] if there is no vault at `path`; [`Error::Conflict`]
    /// if the file's schema is newer than this build understands.
    pub fn open(path: &Path) -> Result<SqliteBackend> {
        if !path.exists() {
            return Err(Error::NotFound(format!("no vault at {}", path.display())));
        }
        match SqliteBackend::open_with(path, OpenFlags::SQLITE_OPEN_READ_WRITE) {
            // The file, its directory or its filesystem cannot be written
            // (and the log files are not there to be opened): the vault is
            // opened read-only, so that reads still work. Writes then fail
            // with a message saying why.
            Err(e) if is_read_only(&e) => {
                match SqliteBackend::open_with(path, OpenFlags::SQLITE_OPEN_READ_ONLY) {
                    // SQLite reads a WAL file read-only only through its
                    // `-wal` and `-shm`; where they are absent and cannot
                    // be created (a read-only directory or filesystem) no
                    // writer can exist either, and the main file is the
                    // whole vault (writers checkpoint it when they close):
                    // it is read as immutable.
                    Err(e) if is_read_only(&e) => SqliteBackend::open_with(
                        &immutable_uri(path),
                        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_URI,
                    ),
                    other => other,
                }
            }
            other => other,
        }
    }

    fn open_with(path: &Path, mode: OpenFlags) -> Result<SqliteBackend> {
        let read_only = mode.contains(OpenFlags::SQLITE_OPEN_READ_ONLY);
        // What the file holds is read before anything may change it: a
        // file that is not a vault is left exactly as it is.
        let conn = SqliteBackend::connect_plain(path, mode)?;
        let version = match inspect(&conn, path)? {
            Found::Empty => {
                return Err(Error::NotFound(format!(
                    "no vault at {} (the file is not initialised)",
                    path.display()
                )));
            }
            Found::Vault(v) => v,
        };
        if version > SCHEMA_VERSION {
            return Err(Error::Conflict(format!(
                "the vault at {} has schema version {version}, newer than this ravi \
                 supports ({SCHEMA_VERSION}); upgrade ravi",
                path.display()
            )));
        }
        if read_only && version < READ_ONLY_MIN_VERSION {
            return Err(read_only_error(path));
        }
        let mut b = SqliteBackend::configure(conn, path, read_only)?;
        if version < SCHEMA_VERSION && !read_only {
            let tx = b
                .conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .db()?;
            let v = user_version(&tx)?;
            migrate(&tx, v)?;
            tx.commit().db()?;
            b.wrote.set(true);
        }
        Ok(b)
    }

    /// A connection that has changed nothing yet.
    fn connect_plain(path: &Path, mode: OpenFlags) -> Result<Connection> {
        let mut conn =
            Connection::open_with_flags(path, mode | OpenFlags::SQLITE_OPEN_NO_MUTEX).db()?;
        conn.busy_handler(Some(busy_wait)).db()?;
        Ok(conn)
    }

    /// Puts a vault's connection in the mode every ravi connection uses.
    fn configure(conn: Connection, path: &Path, read_only: bool) -> Result<SqliteBackend> {
        // The log and its index stay between processes: without this the
        // last connection to close checkpoints, deletes `-wal` and `-shm`,
        // and the next process (a reader too) creates and sizes them again.
        // Readers then write nothing to the file or its log. Durability is
        // unchanged (WAL, synchronous = FULL); checkpoints happen on commit
        // (every 1000 pages, and after deleting commits, below).
        conn.file_control(
            Some(rusqlite::MAIN_DB),
            rusqlite::FileControl::PersistWal(&mut 1),
        )
        .db()?;
        conn.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)
            .db()?;
        // The query planner's stability guarantee: plans never depend on
        // bound values, so a cached statement is not re-prepared each time a
        // parameter it looked at is bound again (the bucket and paging
        // queries' `?N IS NULL` switches made every run re-compile).
        conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)
            .db()?;
        // journal_mode returns a row; the others do not. A read-only
        // connection takes the mode the file has.
        let mode: String = conn
            .query_row(
                if read_only {
                    "PRAGMA journal_mode"
                } else {
                    "PRAGMA journal_mode = WAL"
                },
                [],
                |r| r.get(0),
            )
            .db()?;
        // (an immutable read-only opening reports `delete`: no log is used)
        if !mode.eq_ignore_ascii_case("wal") && !read_only {
            return Err(Error::Storage(
                format!("could not switch the vault to WAL mode (got {mode})").into(),
            ));
        }
        conn.execute_batch(
            "PRAGMA synchronous = FULL;
             PRAGMA foreign_keys = ON;
             PRAGMA secure_delete = ON;",
        )
        .db()?;
        Ok(SqliteBackend {
            conn,
            path: path.to_path_buf(),
            wrote: std::cell::Cell::new(false),
            snapshot: std::cell::Cell::new(false),
        })
    }

    fn query_all<T>(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
        f: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Vec<T>> {
        let mut stmt = self.conn.prepare_cached(sql).db()?;
        let rows = stmt.query_map(params, f).db()?;
        rows.collect::<rusqlite::Result<_>>().db()
    }

    fn query_one<T>(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
        f: impl FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Option<T>> {
        let mut stmt = self.conn.prepare_cached(sql).db()?;
        stmt.query_row(params, f).optional().db()
    }
}

/// What an existing SQLite file holds.
enum Found {
    /// No table (but a `ravi serve` store's own `server_…` tables).
    Empty,
    /// A ravi vault of this schema version.
    Vault(i64),
}

/// Reads (never writes) what `conn`'s file holds; anything that is neither
/// empty nor a ravi vault is an error that leaves the file untouched.
fn inspect(conn: &Connection, path: &Path) -> Result<Found> {
    let not_ours = || {
        Error::InvalidInput(format!(
            "{} is not a ravi vault (another program's SQLite database); leaving it untouched",
            path.display()
        ))
    };
    // (a file that is not SQLite at all fails here, as damage would)
    let version = user_version(conn)?;
    // Tables named `server_…` belong to a `ravi serve` store that keeps its
    // tokens in the same file.
    let (tables, vault): (i64, i64) = conn
        .query_row(
            "SELECT count(*), coalesce(sum(name = 'vault'), 0) FROM sqlite_master
             WHERE type = 'table' AND name NOT LIKE 'server\\_%' ESCAPE '\\'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .db()?;
    match (version, tables, vault) {
        (0, 0, _) => Ok(Found::Empty),
        (v, _, 1) if v > 0 => Ok(Found::Vault(v)),
        _ => Err(not_ours()),
    }
}

/// `file:PATH?immutable=1`, the path percent-encoded where URI syntax needs.
fn immutable_uri(path: &Path) -> std::path::PathBuf {
    const SET: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
        .add(b'%')
        .add(b'?')
        .add(b'#')
        .add(b' ');
    #[cfg(unix)]
    let bytes = std::os::unix::ffi::OsStrExt::as_bytes(path.as_os_str());
    #[cfg(not(unix))]
    let lossy = path.to_string_lossy();
    #[cfg(not(unix))]
    let bytes = lossy.as_bytes();
    let encoded = percent_encoding::percent_encode(bytes, SET).to_string();
    std::path::PathBuf::from(format!("file:{encoded}?immutable=1"))
}

/// Whether opening failed because the file, its directory or its
/// filesystem cannot be written.
fn is_read_only(e: &Error) -> bool {
    use rusqlite::ffi::ErrorCode;
    let Error::Storage(source) = e else {
        return false;
    };
    source.is::<ReadOnlyVault>()
        || source
            .downcast_ref::<rusqlite::Error>()
            .and_then(rusqlite::Error::sqlite_error_code)
            .is_some_and(|c| c == ErrorCode::CannotOpen)
}

fn read_only_error(path: &Path) -> Error {
    Error::Storage(
        format!(
            "the vault at {} cannot be written here (its file, directory or filesystem is \
             read-only), and its schema is too old to be read without upgrading it",
            path.display()
        )
        .into(),
    )
}

fn user_version(conn: &Connection) -> Result<i64> {
    conn.query_row("PRAGMA user_version", [], |r| r.get(0)).db()
}

fn migrate(conn: &Connection, from: i64) -> Result<()> {
    let from = usize::try_from(from)
        .map_err(|_| Error::Integrity(format!("bad schema version {from}")))?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(from) {
        conn.execute_batch(sql).db()?;
        conn.pragma_update(
            None,
            "user_version",
            i64::try_from(i + 1).unwrap_or(i64::MAX),
        )
        .db()?;
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

const IDENTITY_COLS: &str =
    "uuid, name, inbox, phone, created_dt, key_epoch, wrapped_key, signature, head";
const RECORD_COLS: &str = "uuid, identity_uuid, kind, blind_index, key_epoch, ciphertext";
const GRANT_COLS: &str = "uuid, identity_uuid, recipient, label, key_epoch, ephemeral_public, \
                          wrapped_key, created_dt, signature";

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
        signature: r.get(8)?,
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
        signature: r.get(7)?,
        head: r.get(8)?,
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

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Whether a precondition holds, inside the commit's transaction.
fn holds(conn: &Connection, p: &Precondition) -> rusqlite::Result<bool> {
    let one = |sql: &str, params: &[&dyn rusqlite::ToSql]| -> rusqlite::Result<bool> {
        let mut stmt = conn.prepare_cached(sql)?;
        stmt.exists(params)
    };
    match p {
        Precondition::HeaderUnchanged {
            wrapped_root_key,
            signature,
        } => one(
            "SELECT 1 FROM vault WHERE id = 1 AND wrapped_root_key = ?1 AND signature IS ?2",
            &[wrapped_root_key, signature],
        ),
        Precondition::IdentityEpoch {
            identity_uuid,
            key_epoch,
        } => one(
            "SELECT 1 FROM identities WHERE uuid = ?1 AND key_epoch = ?2",
            &[identity_uuid, key_epoch],
        ),
        Precondition::RecordUnchanged { uuid, ciphertext } => one(
            "SELECT 1 FROM records WHERE uuid = ?1 AND ciphertext = ?2",
            &[uuid, ciphertext],
        ),
        Precondition::NameFree {
            identity_uuid,
            kind,
            blind_index,
        } => one(
            &format!("SELECT 1 FROM {}", filed_under(*kind)),
            &[identity_uuid, kind, blind_index],
        )
        .map(|found| !found),
        Precondition::VaultHead(head) => one(
            "SELECT 1 FROM vault WHERE id = 1 AND vault_head IS ?1",
            &[head],
        ),
        Precondition::IdentityHead {
            identity_uuid,
            head,
        } => one(
            "SELECT 1 FROM identities WHERE uuid = ?1 AND head IS ?2",
            &[identity_uuid, head],
        ),
        Precondition::IdentityCount(count) => {
            let mut stmt = conn.prepare_cached("SELECT count(*) FROM identities")?;
            let n: i64 = stmt.query_row([], |r| r.get(0))?;
            Ok(n == to_i64(*count))
        }
        Precondition::RecordCount {
            identity_uuid,
            count,
        } => {
            let mut stmt =
                conn.prepare_cached("SELECT count(*) FROM records WHERE identity_uuid = ?1")?;
            let n: i64 = stmt.query_row([identity_uuid], |r| r.get(0))?;
            Ok(n == to_i64(*count))
        }
    }
}

/// Applies one write; the number of rows it touched.
fn apply(conn: &Connection, w: &Write) -> rusqlite::Result<usize> {
    let exec = |sql: &str, params: &[&dyn rusqlite::ToSql]| -> rusqlite::Result<usize> {
        let mut stmt = conn.prepare_cached(sql)?;
        stmt.execute(params)
    };
    match w {
        Write::InsertIdentity(r) => exec(
            &format!(
                "INSERT INTO identities ({IDENTITY_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
            ),
            &[
                &r.uuid,
                &r.name,
                &r.inbox,
                &r.phone,
                &r.created_dt,
                &r.key_epoch,
                &r.wrapped_key,
                &r.signature,
                &r.head,
            ],
        ),
        Write::SetIdentityKey {
            uuid,
            key_epoch,
            wrapped_key,
        } => exec(
            "UPDATE identities SET key_epoch = ?2, wrapped_key = ?3 WHERE uuid = ?1",
            &[uuid, key_epoch, wrapped_key],
        ),
        Write::DeleteIdentity(uuid) => exec("DELETE FROM identities WHERE uuid = ?1", &[uuid]),
        Write::InsertRecord(r) => exec(
            &format!("INSERT INTO records ({RECORD_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"),
            &[
                &r.uuid,
                &r.identity_uuid,
                &r.kind,
                &r.blind_index,
                &r.key_epoch,
                &r.ciphertext,
            ],
        ),
        Write::UpdateRecord(r) => exec(
            "UPDATE records SET blind_index = ?2, key_epoch = ?3, ciphertext = ?4
             WHERE uuid = ?1 AND identity_uuid = ?5 AND kind = ?6",
            &[
                &r.uuid,
                &r.blind_index,
                &r.key_epoch,
                &r.ciphertext,
                &r.identity_uuid,
                &r.kind,
            ],
        ),
        Write::DeleteRecord {
            identity_uuid,
            kind,
            uuid,
        } => exec(
            "DELETE FROM records WHERE uuid = ?1 AND identity_uuid = ?2 AND kind = ?3",
            &[uuid, identity_uuid, kind],
        ),
        Write::InsertGrant(g) => exec(
            &format!(
                "INSERT INTO grants ({GRANT_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
            ),
            &[
                &g.uuid,
                &g.identity_uuid,
                &g.recipient,
                &g.label,
                &g.key_epoch,
                &g.ephemeral_public,
                &g.wrapped_key,
                &g.created_dt,
                &g.signature,
            ],
        ),
        Write::UpdateGrant(g) => exec(
            "UPDATE grants SET key_epoch = ?2, ephemeral_public = ?3, wrapped_key = ?4,
                 signature = ?5 WHERE uuid = ?1",
            &[
                &g.uuid,
                &g.key_epoch,
                &g.ephemeral_public,
                &g.wrapped_key,
                &g.signature,
            ],
        ),
        Write::DeleteGrant(uuid) => exec("DELETE FROM grants WHERE uuid = ?1", &[uuid]),
        Write::InsertSession(s) => exec(
            "INSERT INTO sessions (session_id, expires_at, created_dt, wrapped_root_key)
             VALUES (?1, ?2, ?3, ?4)",
            &[
                &s.session_id,
                &to_i64(s.expires_at),
                &s.created_dt,
                &s.wrapped_root_key,
            ],
        ),
        Write::DeleteSessions(Some(id)) => {
            exec("DELETE FROM sessions WHERE session_id = ?1", &[id])
        }
        Write::DeleteSessions(None) => exec("DELETE FROM sessions", &[]),
        Write::DeleteExpiredSessions(now) => exec(
            "DELETE FROM sessions WHERE expires_at <= ?1",
            &[&to_i64(*now)],
        ),
        Write::SetHeaderKey(v) => exec(
            "UPDATE vault SET kdf_memory_kib = ?1, kdf_iterations = ?2, kdf_parallelism = ?3,
                 kdf_salt = ?4, wrapped_root_key = ?5, owner_public_key = ?6,
                 wrapped_owner_key = ?7, signature = ?8 WHERE id = 1",
            &[
                &v.kdf_memory_kib,
                &v.kdf_iterations,
                &v.kdf_parallelism,
                &v.kdf_salt,
                &v.wrapped_root_key,
                &v.owner_public_key,
                &v.wrapped_owner_key,
                &v.signature,
            ],
        ),
        Write::SetTreeNodes {
            identity_uuid,
            nodes,
        } => {
            // Upserts in one statement per 17 rows, deletes
            // one by one (they are rare: a subtree that became empty).
            const ROWS: usize = 17;
            let mut n = 0;
            let set: Vec<(&u32, &Vec<u8>)> = nodes
                .iter()
                .filter_map(|(id, h)| h.as_ref().map(|h| (id, h)))
                .collect();
            for chunk in set.chunks(ROWS) {
                let values = (0..chunk.len())
                    .map(|k| format!("(?1, ?{}, ?{})", 2 * k + 2, 2 * k + 3))
                    .collect::<Vec<_>>()
                    .join(", ");
                let sql = format!(
                    "INSERT OR REPLACE INTO tree_nodes (identity_uuid, node, hash) VALUES {values}"
                );
                let mut bound: Vec<&dyn rusqlite::ToSql> = vec![identity_uuid];
                for (id, h) in chunk {
                    bound.push(*id);
                    bound.push(*h);
                }
                n += exec(&sql, &bound)?;
            }
            for (id, h) in nodes {
                if h.is_none() {
                    n += exec(
                        "DELETE FROM tree_nodes WHERE identity_uuid = ?1 AND node = ?2",
                        &[identity_uuid, id],
                    )?;
                }
            }
            Ok(n)
        }
        Write::ClearTree(identity_uuid) => exec(
            "DELETE FROM tree_nodes WHERE identity_uuid = ?1",
            &[identity_uuid],
        ),
        Write::SetVaultHead(head) => exec("UPDATE vault SET vault_head = ?1 WHERE id = 1", &[head]),
        Write::SetIdentityHead { uuid, head } => exec(
            "UPDATE identities SET head = ?2 WHERE uuid = ?1",
            &[uuid, head],
        ),
        Write::SetIdentitySignature { uuid, signature } => exec(
            "UPDATE identities SET signature = ?2 WHERE uuid = ?1",
            &[uuid, signature],
        ),
    }
}

/// Whether a write deletes ciphertext or replaces key material: its old
/// bytes must not linger in the write-ahead log.
fn retires_secrets(w: &Write) -> bool {
    matches!(
        w,
        Write::DeleteRecord { .. }
            | Write::DeleteIdentity(_)
            | Write::DeleteGrant(_)
            | Write::DeleteSessions(_)
            | Write::SetIdentityKey { .. }
            | Write::SetHeaderKey(_)
            | Write::UpdateGrant(_)
    )
}

impl SqliteBackend {
    /// Copies the log into the main file (where `secure_delete` has zeroed
    /// freed cells) and truncates it, so deleted ciphertext and retired
    /// wrapped keys do not stay in `-wal`. Best effort and never waits:
    /// with readers or writers in the way it is skipped, and the next
    /// deleting commit tries again.
    fn checkpoint_truncate(&self) {
        NO_WAIT.with(|w| w.set(true));
        // The log's frames are first copied without blocking anyone
        // (PASSIVE); the TRUNCATE that follows, which keeps writers out
        // while it runs, then has almost nothing left to copy. After a
        // rotation of 100,000 records that is the difference between
        // writers of other identities waiting seconds or not.
        let _ = self
            .conn
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
        // (its first column is 1 when something was in the way)
        let emptied = self
            .conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                r.get::<_, i64>(0)
            })
            .is_ok_and(|busy| busy == 0);
        if emptied {
            // (nothing left for the drop to do)
            self.wrote.set(false);
        }
        NO_WAIT.with(|w| w.set(false));
    }

    /// Ends the read transaction of [`Backend::read_snapshot`], if one is
    /// open (a read-only transaction: ending it changes nothing).
    fn end_snapshot(&self) -> Result<()> {
        if self.snapshot.replace(false) {
            self.conn.prepare_cached("COMMIT").db()?.execute([]).db()?;
        }
        Ok(())
    }

    /// One batch in one `BEGIN IMMEDIATE` transaction: applied whole, or
    /// rolled back. `build` runs inside the transaction, so what it reads
    /// cannot change before the batch is applied.
    fn commit_batch<B: std::borrow::Borrow<Batch>>(
        &self,
        build: impl FnOnce() -> Result<B>,
    ) -> std::result::Result<Changes, CommitError> {
        self.end_snapshot()?;
        self.conn.execute_batch("BEGIN IMMEDIATE").db()?;
        let applied = build()
            .map_err(CommitError::Failed)
            .and_then(|batch| Ok((self.commit_in(batch.borrow())?, batch)));
        match applied {
            Ok((changes, batch)) => match self.conn.execute_batch("COMMIT") {
                Ok(()) => {
                    self.wrote.set(true);
                    if batch.borrow().writes.iter().any(retires_secrets) {
                        self.checkpoint_truncate();
                    }
                    Ok(changes)
                }
                Err(e) => {
                    let _ = self.conn.execute_batch("ROLLBACK");
                    Err(db_error(e).into())
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

    /// Runs `f` with a page cache of up to 128 MiB (allocated as used) when
    /// `big`, and the default again after.
    fn with_cache<T>(&self, big: bool, f: impl FnOnce() -> T) -> Result<T> {
        if big {
            self.conn
                .execute_batch("PRAGMA cache_size = -131072")
                .db()?;
        }
        let result = f();
        if big {
            let _ = self.conn.execute_batch("PRAGMA cache_size = -2000");
        }
        Ok(result)
    }

    fn commit_in(&self, batch: &Batch) -> std::result::Result<Changes, CommitError> {
        for (i, p) in batch.preconditions.iter().enumerate() {
            if !holds(&self.conn, p).db()? {
                return Err(CommitError::Conflict(Conflict::Precondition(i)));
            }
        }
        let mut changes = Vec::with_capacity(batch.writes.len());
        for (i, w) in batch.writes.iter().enumerate() {
            injected_failure(i)?;
            match apply(&self.conn, w) {
                Ok(0) if w.must_touch() => {
                    return Err(CommitError::Conflict(Conflict::Missing(i)));
                }
                Ok(n) => changes.push(n),
                Err(e) if is_unique_violation(&e) => {
                    return Err(CommitError::Conflict(Conflict::Duplicate(i)));
                }
                Err(e) if is_foreign_key_violation(&e) => {
                    return Err(CommitError::Conflict(Conflict::Missing(i)));
                }
                Err(e) => return Err(db_error(e).into()),
            }
        }
        Ok(changes)
    }
}

impl Backend for SqliteBackend {
    fn location(&self) -> String {
        self.path.display().to_string()
    }

    fn header(&self) -> Result<VaultRow> {
        self.query_one(
            "SELECT vault_id, kdf_memory_kib, kdf_iterations, kdf_parallelism, kdf_salt,
                    wrapped_root_key, inbox_domain, created_dt, owner_public_key,
                    wrapped_owner_key, signature, vault_head FROM vault WHERE id = 1",
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
                    owner_public_key: r.get(8)?,
                    wrapped_owner_key: r.get(9)?,
                    signature: r.get(10)?,
                    vault_head: r.get(11)?,
                })
            },
        )?
        .ok_or_else(|| Error::Integrity("the vault header is missing".into()))
    }

    fn identities(&self) -> Result<Vec<IdentityRow>> {
        self.query_all(
            &format!("SELECT {IDENTITY_COLS} FROM identities ORDER BY created_dt, name"),
            [],
            identity_row,
        )
    }

    fn identity(&self, uuid: &str) -> Result<Option<IdentityRow>> {
        self.query_one(
            &format!("SELECT {IDENTITY_COLS} FROM identities WHERE uuid = ?1"),
            [uuid],
            identity_row,
        )
    }

    fn identity_by_name(&self, name: &str) -> Result<Option<IdentityRow>> {
        self.query_one(
            &format!("SELECT {IDENTITY_COLS} FROM identities WHERE name = ?1"),
            [name],
            identity_row,
        )
    }

    fn grants(&self, identity_uuid: &str) -> Result<Vec<GrantRow>> {
        self.query_all(
            &format!(
                "SELECT {GRANT_COLS} FROM grants WHERE identity_uuid = ?1 ORDER BY created_dt, uuid"
            ),
            [identity_uuid],
            grant_row,
        )
    }

    fn grant_for(&self, identity_uuid: &str, recipient: &[u8]) -> Result<Option<GrantRow>> {
        self.query_one(
            &format!("SELECT {GRANT_COLS} FROM grants WHERE identity_uuid = ?1 AND recipient = ?2"),
            params![identity_uuid, recipient],
            grant_row,
        )
    }

    fn record(&self, identity_uuid: &str, kind: u8, uuid: &str) -> Result<Option<RecordRow>> {
        self.query_one(
            &format!(
                "SELECT {RECORD_COLS} FROM records
                 WHERE uuid = ?1 AND identity_uuid = ?2 AND kind = ?3"
            ),
            params![uuid, identity_uuid, kind],
            record_row,
        )
    }

    fn records_by_index(
        &self,
        identity_uuid: &str,
        kind: u8,
        blind_index: &[u8],
    ) -> Result<Vec<RecordRow>> {
        self.query_all(
            &records_by_index_sql(kind),
            params![identity_uuid, kind, blind_index],
            record_row,
        )
    }

    fn records(&self, identity_uuid: &str, q: &RecordQuery) -> Result<Vec<RecordRow>> {
        // NULL parameters switch a condition off; a negative LIMIT is none.
        let limit = q.limit.map_or(-1, |l| i64::try_from(l).unwrap_or(i64::MAX));
        if let Some((lower, upper)) = q.bucket.map(super::bucket_range) {
            return self.query_all(
                &bucket_records_sql(),
                params![identity_uuid, lower, upper, q.kind, q.after, limit],
                record_row,
            );
        }
        // (every uuid sorts after the empty string)
        let after = q.after.as_deref().unwrap_or("");
        self.query_all(
            &identity_records_sql(),
            params![identity_uuid, q.kind, after, limit],
            record_row,
        )
    }

    fn tree_nodes(&self, identity_uuid: &str, ids: &[u32]) -> Result<Vec<(u32, Vec<u8>)>> {
        if ids.is_empty() {
            return self.query_all(
                "SELECT node, hash FROM tree_nodes WHERE identity_uuid = ?1",
                [identity_uuid],
                |r| Ok((r.get(0)?, r.get(1)?)),
            );
        }
        // The ids of a path come in runs (a node's siblings are
        // consecutive): one index range per run, through one cached
        // statement; a gap of one id (the path node itself) joins two runs.
        let wanted: std::collections::HashSet<u32> = ids.iter().copied().collect();
        let mut sorted = ids.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        let mut ranges: Vec<(u32, u32)> = Vec::new();
        for id in sorted {
            match ranges.last_mut() {
                Some((_, hi)) if id <= hi.saturating_add(2) => *hi = id,
                _ => ranges.push((id, id)),
            }
        }
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT node, hash FROM tree_nodes
                 WHERE identity_uuid = ?1 AND node >= ?2 AND node <= ?3",
            )
            .db()?;
        let mut out = Vec::new();
        for (lo, hi) in ranges {
            let rows = stmt
                .query_map(params![identity_uuid, lo, hi], |r| {
                    Ok((r.get::<_, u32>(0)?, r.get::<_, Vec<u8>>(1)?))
                })
                .db()?;
            for row in rows {
                let (id, h) = row.db()?;
                // a joined gap was read too: keep only what was asked for
                if wanted.contains(&id) {
                    out.push((id, h));
                }
            }
        }
        Ok(out)
    }

    fn session(&self, session_id: &str) -> Result<Option<SessionRow>> {
        self.query_one(
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
    }

    fn commit(&self, batch: &Batch) -> std::result::Result<Changes, CommitError> {
        // A big batch (a rotation, a bulk import) touches more pages than
        // the default 2 MiB page cache holds: SQLite would read the same
        // pages from the file again and again while it holds the write
        // lock. Rotating 100,000 records: writers of other identities wait
        // 1.2 s instead of 2.2 s.
        let big = batch.is_big();
        self.with_cache(big, || self.commit_batch(|| Ok(batch)))?
    }

    fn commit_exclusive(
        &self,
        build: &mut dyn FnMut() -> Result<Batch>,
    ) -> std::result::Result<Changes, CommitError> {
        // (its size is known only once built: the cache grows as used)
        self.with_cache(true, || self.commit_batch(build))?
    }

    /// SQLite's `data_version` (changed by every commit of another
    /// connection, as of this connection's current read transaction, which
    /// the pragma itself begins) and this connection's own changes.
    fn version(&self) -> Result<Option<[u64; 2]>> {
        let others: i64 = self
            .conn
            .prepare_cached("PRAGMA data_version")
            .db()?
            .query_row([], |r| r.get(0))
            .db()?;
        Ok(Some([others.cast_unsigned(), self.conn.total_changes()]))
    }

    fn read_snapshot(&self, read: &mut dyn FnMut() -> Result<()>) -> Result<()> {
        if !self.conn.is_autocommit() {
            // (inside a transaction already: that is the snapshot)
            return read();
        }
        // A deferred transaction: the read lock and the snapshot are taken
        // at the first query and held to the end.
        self.conn.prepare_cached("BEGIN").db()?.execute([]).db()?;
        self.snapshot.set(true);
        let result = read();
        let ended = self.end_snapshot();
        if ended.is_err() && !self.conn.is_autocommit() {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
        result.and(ended)
    }
}

/// The records of one tree bucket: a range of the primary key, a handful
/// of rows found through the uuid index. The unary `+` keeps the planner
/// off the identity index, which would visit every record of the identity.
/// NULL parameters switch a condition off; a negative LIMIT is none.
fn bucket_records_sql() -> String {
    format!(
        "SELECT {RECORD_COLS} FROM records
         WHERE uuid >= ?2 AND uuid < ?3 AND +identity_uuid = ?1
           AND (?4 IS NULL OR kind = ?4) AND (?5 IS NULL OR uuid > ?5)
         ORDER BY uuid LIMIT ?6"
    )
}

/// The records filed under a blind index (`?1` identity, `?2` kind, `?3`
/// index), through the index of `kind`'s names: `FROM … WHERE …`. The index
/// is named: for an ORDER BY the planner would otherwise walk every record
/// of the identity in `records_by_identity` (a `secrets get` read the whole
/// file); each index is partial, and the literal kind term lets it serve.
fn filed_under(kind: u8) -> &'static str {
    if kind == 1 {
        "records INDEXED BY records_by_name
         WHERE identity_uuid = ?1 AND kind = 1 AND kind = ?2 AND blind_index = ?3"
    } else {
        "records INDEXED BY records_unique_name
         WHERE identity_uuid = ?1 AND kind <> 1 AND kind = ?2 AND blind_index = ?3"
    }
}

/// The records filed under a blind index, by uuid.
fn records_by_index_sql(kind: u8) -> String {
    format!(
        "SELECT {RECORD_COLS} FROM {} ORDER BY uuid",
        filed_under(kind)
    )
}

/// An identity's records, optionally of one kind, after a uuid (`''` for
/// the first page): a range of `records_by_identity`.
fn identity_records_sql() -> String {
    format!(
        "SELECT {RECORD_COLS} FROM records
         WHERE identity_uuid = ?1 AND uuid > ?3 AND (?2 IS NULL OR kind = ?2)
         ORDER BY uuid LIMIT ?4"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::conformance::{self, header};

    struct Files(tempfile::TempDir);

    impl conformance::Harness for Files {
        fn open(&self) -> Box<dyn Backend + Send> {
            Box::new(SqliteBackend::open(&self.0.path().join("v.db")).unwrap())
        }
    }

    fn harness() -> Files {
        let dir = tempfile::tempdir().unwrap();
        SqliteBackend::create(&dir.path().join("v.db"), &header()).unwrap();
        Files(dir)
    }

    /// The record queries' plans: a lookup by name through
    /// `records_by_name`, a listing page and a bucket in uuid order without
    /// sorting (no temporary B-tree, no full walk of the identity).
    #[test]
    fn record_queries_use_their_indexes() {
        let files = harness();
        let b = SqliteBackend::open(&files.0.path().join("v.db")).unwrap();
        let plan = |sql: &str| {
            let mut stmt = b
                .conn
                .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                .unwrap();
            let n = stmt.parameter_count();
            let rows = stmt
                .query_map(
                    rusqlite::params_from_iter(std::iter::repeat_n("x", n)),
                    |r| r.get::<_, String>(3),
                )
                .unwrap();
            rows.map(|r| r.unwrap()).collect::<Vec<_>>().join("; ")
        };
        let by_index = plan(&records_by_index_sql(1));
        assert!(by_index.contains("INDEX records_by_name"), "{by_index}");
        let unique = plan(&records_by_index_sql(2));
        assert!(unique.contains("INDEX records_unique_name"), "{unique}");
        for kind in [1, 2, 3] {
            let free = plan(&format!("SELECT 1 FROM {}", filed_under(kind)));
            assert!(
                free.contains("(identity_uuid=? AND kind=? AND blind_index=?)"),
                "{free}"
            );
        }
        let listing = plan(&identity_records_sql());
        // a page starts where the last ended (not a walk from the first)
        assert!(
            listing.contains("INDEX records_by_identity (identity_uuid=? AND uuid>?)"),
            "{listing}"
        );
        assert!(!listing.contains("TEMP B-TREE"), "{listing}");
        let bucket = plan(&bucket_records_sql());
        assert!(!bucket.contains("TEMP B-TREE"), "{bucket}");
    }

    /// While an exclusive commit builds its batch, another process cannot
    /// start a write; a build that fails commits nothing and lets writers
    /// in again.
    #[test]
    fn an_exclusive_commit_keeps_writers_out_while_it_builds() {
        let files = harness();
        let path = files.0.path().join("v.db");
        let b = SqliteBackend::open(&path).unwrap();
        let other = Connection::open(&path).unwrap();
        other.busy_timeout(Duration::ZERO).unwrap();
        let try_write = || {
            let begun = other.execute_batch("BEGIN IMMEDIATE");
            if begun.is_ok() {
                other.execute_batch("ROLLBACK").unwrap();
            }
            begun.is_ok()
        };
        assert!(try_write());
        let mut kept_out = None;
        b.commit_exclusive(&mut || {
            kept_out = Some(!try_write());
            Ok(Batch::new())
        })
        .unwrap();
        assert_eq!(kept_out, Some(true));
        assert!(try_write());
        let failed = b.commit_exclusive(&mut || Err(Error::Conflict("no".into())));
        assert!(matches!(
            failed,
            Err(CommitError::Failed(Error::Conflict(_)))
        ));
        assert!(try_write());
    }

    /// SQLite is built without the modules ravi never uses
    /// (`.cargo/config.toml`): a vault file's schema cannot instantiate
    /// them, and extensions cannot be loaded.
    /// The version changes with every commit, another connection's or its
    /// own, and not otherwise; inside a snapshot it is the snapshot's.
    #[test]
    fn the_version_changes_with_every_commit_and_only_then() {
        let files = harness();
        let path = files.0.path().join("v.db");
        let b = SqliteBackend::open(&path).unwrap();
        let other = Connection::open(&path).unwrap();
        let v0 = b.version().unwrap().unwrap();
        assert_eq!(b.version().unwrap().unwrap(), v0);
        b.header().unwrap();
        assert_eq!(b.version().unwrap().unwrap(), v0, "a read changed it");
        other.execute_batch("CREATE TABLE scratch(x)").unwrap();
        let v1 = b.version().unwrap().unwrap();
        assert_ne!(v1, v0);
        b.conn
            .execute("INSERT INTO scratch VALUES (1)", [])
            .unwrap();
        let v2 = b.version().unwrap().unwrap();
        assert_ne!(v2, v1, "its own write");
        let mut inside = Vec::new();
        b.read_snapshot(&mut || {
            inside.push(b.version()?.unwrap());
            other.execute("INSERT INTO scratch VALUES (2)", []).unwrap();
            inside.push(b.version()?.unwrap());
            Ok(())
        })
        .unwrap();
        assert_eq!(inside, [v2, v2]);
        assert_ne!(b.version().unwrap().unwrap(), v2);
    }

    #[test]
    fn unused_sqlite_modules_are_left_out() {
        let files = harness();
        let b = SqliteBackend::open(&files.0.path().join("v.db")).unwrap();
        for module in ["fts3", "fts4", "fts5", "rtree", "dbstat"] {
            let made = b.conn.execute_batch(&format!(
                "CREATE VIRTUAL TABLE t_{module} USING {module}(x)"
            ));
            let e = made.expect_err(module).to_string();
            assert!(e.contains("no such module"), "{module}: {e}");
        }
        let options: Vec<String> = b
            .conn
            .prepare("PRAGMA compile_options")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        assert!(
            options.iter().any(|o| o == "OMIT_LOAD_EXTENSION"),
            "{options:?}"
        );
        assert!(
            !options.iter().any(|o| o.starts_with("ENABLE_FTS")),
            "{options:?}"
        );
    }

    #[test]
    fn conformance_suite() {
        conformance::run_all(&harness);
    }

    /// Cached statements stay compiled: a query whose bound values the
    /// planner could look at is not re-prepared for each new binding.
    #[test]
    fn cached_statements_are_not_reprepared() {
        let files = harness();
        let b = SqliteBackend::open(&files.0.path().join("v.db")).unwrap();
        let id = "6f9619ff-8b86-4d01-b42d-00cf4fc964ff";
        for bucket in [1u16, 2, 3] {
            for kind in [None, Some(1)] {
                let q = RecordQuery {
                    kind,
                    bucket: Some(bucket),
                    ..RecordQuery::default()
                };
                b.records(id, &q).unwrap();
                b.records(id, &RecordQuery::default()).unwrap();
            }
        }
        for sql in [bucket_records_sql(), identity_records_sql()] {
            let stmt = b.conn.prepare_cached(&sql).unwrap();
            assert_eq!(
                stmt.get_status(rusqlite::StatementStatus::RePrepare),
                0,
                "{sql}"
            );
        }
    }

    #[test]
    fn create_open_and_refuse_twice() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/vault.db");
        SqliteBackend::create(&path, &header()).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
            let dir_mode = fs::metadata(path.parent().unwrap())
                .unwrap()
                .permissions()
                .mode()
                & 0o777;
            assert_eq!(dir_mode, 0o700);
        }
        assert!(matches!(
            SqliteBackend::create(&path, &header()),
            Err(Error::Conflict(_))
        ));
        let s = SqliteBackend::open(&path).unwrap();
        assert_eq!(s.header().unwrap(), header());
    }

    #[test]
    fn missing_and_newer_schema() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vault.db");
        assert!(matches!(
            SqliteBackend::open(&path),
            Err(Error::NotFound(_))
        ));
        SqliteBackend::create(&path, &header()).unwrap();
        let c = Connection::open(&path).unwrap();
        c.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
        drop(c);
        let err = SqliteBackend::open(&path).unwrap_err();
        assert!(matches!(err, Error::Conflict(_)), "{err}");
        assert!(err.to_string().contains("newer"));
    }
}
