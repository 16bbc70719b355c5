//! The PostgreSQL store of `ravi serve` (`--database postgres://…` or
//! `RAVI_DATABASE_URL`), for fleets: any number of stateless server
//! processes share one database. The same rows, preconditions and
//! conflicts as the SQLite store, through tokio-postgres and a
//! deadpool-postgres pool; the same conformance suite runs against it.
//!
//! Commits take `LOCK TABLE vault IN SHARE ROW EXCLUSIVE MODE` (a mode
//! that conflicts with itself) inside their transaction, so commits from
//! every server process are serialised, as SQLite's `BEGIN IMMEDIATE`
//! serialises writers; reads are single statements, each its own snapshot.

use std::future::Future;

use deadpool_postgres::GenericClient;
use deadpool_postgres::{Pool, Runtime};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{NoTls, Row};
use vault_core::backend::{
    Backend, Batch, Changes, CommitError, Conflict, GrantRow, IdentityRow, PendingIdentity,
    Precondition, RecordQuery, RecordRow, SessionRow, VaultRow, Write,
};
use vault_core::{Error, Result};

use crate::store::{Pending, Scope, TokenInfo, now_rfc3339, token_hash};

/// The schema version this build writes (`server_schema.version`).
const SCHEMA_VERSION: i32 = 1;

/// Text columns compare bytewise (`COLLATE "C"`), as SQLite's do: uuid
/// ranges and orderings are the same in both stores. Version 1; later
/// versions add migrations after it, as the SQLite store does.
const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS server_schema (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS vault (
    id               INTEGER PRIMARY KEY CHECK (id = 1),
    vault_id         TEXT COLLATE "C" NOT NULL,
    kdf_memory_kib   BIGINT NOT NULL,
    kdf_iterations   BIGINT NOT NULL,
    kdf_parallelism  BIGINT NOT NULL,
    kdf_salt         BYTEA  NOT NULL,
    wrapped_root_key BYTEA  NOT NULL,
    inbox_domain     TEXT COLLATE "C" NOT NULL,
    created_dt       TEXT COLLATE "C" NOT NULL,
    owner_public_key BYTEA,
    wrapped_owner_key BYTEA,
    signature        BYTEA,
    vault_head       BYTEA
);
CREATE TABLE IF NOT EXISTS identities (
    uuid        TEXT COLLATE "C" PRIMARY KEY,
    name        TEXT COLLATE "C" NOT NULL,
    inbox       TEXT COLLATE "C" NOT NULL,
    phone       TEXT COLLATE "C",
    created_dt  TEXT COLLATE "C" NOT NULL,
    key_epoch   BIGINT NOT NULL,
    wrapped_key BYTEA  NOT NULL,
    signature   BYTEA,
    head        BYTEA
);
CREATE UNIQUE INDEX IF NOT EXISTS identities_name ON identities (lower(name));
CREATE UNIQUE INDEX IF NOT EXISTS identities_inbox ON identities (lower(inbox));
CREATE TABLE IF NOT EXISTS records (
    uuid          TEXT COLLATE "C" PRIMARY KEY,
    identity_uuid TEXT COLLATE "C" NOT NULL REFERENCES identities(uuid) ON DELETE CASCADE,
    kind          SMALLINT NOT NULL,
    blind_index   BYTEA    NOT NULL,
    key_epoch     BIGINT   NOT NULL,
    ciphertext    BYTEA    NOT NULL
);
CREATE INDEX IF NOT EXISTS records_by_name ON records (identity_uuid, kind, blind_index);
CREATE INDEX IF NOT EXISTS records_by_identity ON records (identity_uuid, uuid);
CREATE UNIQUE INDEX IF NOT EXISTS records_unique_name ON records (identity_uuid, kind, blind_index)
    WHERE kind <> 1;
CREATE TABLE IF NOT EXISTS sessions (
    session_id       TEXT COLLATE "C" PRIMARY KEY,
    expires_at       BIGINT NOT NULL,
    created_dt       TEXT COLLATE "C" NOT NULL,
    wrapped_root_key BYTEA  NOT NULL
);
CREATE TABLE IF NOT EXISTS grants (
    uuid             TEXT COLLATE "C" PRIMARY KEY,
    identity_uuid    TEXT COLLATE "C" NOT NULL REFERENCES identities(uuid) ON DELETE CASCADE,
    recipient        BYTEA  NOT NULL,
    label            TEXT COLLATE "C",
    key_epoch        BIGINT NOT NULL,
    ephemeral_public BYTEA  NOT NULL,
    wrapped_key      BYTEA  NOT NULL,
    created_dt       TEXT COLLATE "C" NOT NULL,
    signature        BYTEA,
    UNIQUE (identity_uuid, recipient)
);
CREATE TABLE IF NOT EXISTS tree_nodes (
    identity_uuid TEXT COLLATE "C" NOT NULL REFERENCES identities(uuid) ON DELETE CASCADE,
    node          BIGINT NOT NULL,
    hash          BYTEA  NOT NULL,
    PRIMARY KEY (identity_uuid, node)
);
CREATE TABLE IF NOT EXISTS server_tokens (
    id         TEXT COLLATE "C" PRIMARY KEY,
    name       TEXT COLLATE "C" NOT NULL UNIQUE,
    hash       BYTEA  NOT NULL UNIQUE,
    owner      BOOLEAN NOT NULL,
    identities TEXT NOT NULL,
    created_dt TEXT COLLATE "C" NOT NULL,
    expires_at BIGINT
);
CREATE TABLE IF NOT EXISTS server_pending (
    uuid       TEXT COLLATE "C" PRIMARY KEY,
    name       TEXT COLLATE "C" NOT NULL,
    created_dt TEXT COLLATE "C" NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS server_pending_name ON server_pending (lower(name));
"#;

const IDENTITY_COLS: &str =
    "uuid, name, inbox, phone, created_dt, key_epoch, wrapped_key, signature, head";
const RECORD_COLS: &str = "uuid, identity_uuid, kind, blind_index, key_epoch, ciphertext";
const GRANT_COLS: &str = "uuid, identity_uuid, recipient, label, key_epoch, ephemeral_public, \
                          wrapped_key, created_dt, signature";

fn pg(e: tokio_postgres::Error) -> Error {
    Error::Storage(Box::new(e))
}

fn pool_err(e: impl std::fmt::Display) -> Error {
    Error::Unavailable(format!("the PostgreSQL database is unavailable: {e}"))
}

fn u32_of(v: i64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

fn identity_row(r: &Row) -> IdentityRow {
    IdentityRow {
        uuid: r.get(0),
        name: r.get(1),
        inbox: r.get(2),
        phone: r.get(3),
        created_dt: r.get(4),
        key_epoch: u32_of(r.get(5)),
        wrapped_key: r.get(6),
        signature: r.get(7),
        head: r.get(8),
    }
}

fn record_row(r: &Row) -> RecordRow {
    RecordRow {
        uuid: r.get(0),
        identity_uuid: r.get(1),
        kind: u8::try_from(r.get::<_, i16>(2)).unwrap_or(u8::MAX),
        blind_index: r.get(3),
        key_epoch: u32_of(r.get(4)),
        ciphertext: r.get(5),
    }
}

fn grant_row(r: &Row) -> GrantRow {
    GrantRow {
        uuid: r.get(0),
        identity_uuid: r.get(1),
        recipient: r.get(2),
        label: r.get(3),
        key_epoch: u32_of(r.get(4)),
        ephemeral_public: r.get(5),
        wrapped_key: r.get(6),
        created_dt: r.get(7),
        signature: r.get(8),
    }
}

/// A PostgreSQL database holding one vault, the server's tokens and its
/// pending identities.
pub struct PgStore {
    pool: Pool,
    handle: tokio::runtime::Handle,
    /// The runtime of a store opened outside one (`ravi serve token`).
    _runtime: Option<tokio::runtime::Runtime>,
    url_for_people: String,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("database", &self.url_for_people)
            .finish_non_exhaustive()
    }
}

/// The URL without its password, for messages.
pub(crate) fn redacted(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://…@{}", &url[..s], &url[at + 1..]),
        _ => url.to_string(),
    }
}

impl PgStore {
    /// Connects to `url` and creates the schema if needed. Called from
    /// outside any async context; inside the server's runtime, `handle` is
    /// that runtime's.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a bad URL; [`Error::Unavailable`] if the
    /// database cannot be reached.
    pub fn open(url: &str, handle: Option<tokio::runtime::Handle>) -> Result<PgStore> {
        let (handle, runtime) = match handle {
            Some(h) => (h, None),
            None => {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .enable_all()
                    .build()
                    .map_err(|e| Error::Io {
                        context: "cannot start the database runtime".into(),
                        source: e,
                    })?;
                (rt.handle().clone(), Some(rt))
            }
        };
        let cfg = deadpool_postgres::Config {
            url: Some(url.to_string()),
            ..deadpool_postgres::Config::default()
        };
        let pool = cfg
            .create_pool(Some(Runtime::Tokio1), NoTls)
            .map_err(|e| Error::InvalidInput(format!("bad database URL: {e}")))?;
        let store = PgStore {
            pool,
            handle,
            _runtime: runtime,
            url_for_people: redacted(url),
        };
        let version = store.run(async |c| {
            // One migrating process at a time.
            c.batch_execute("SELECT pg_advisory_lock(7270617669);")
                .await?;
            let r = async {
                // (absent before the first start: the query fails)
                let found: Option<i32> = c
                    .query_opt("SELECT version FROM server_schema WHERE id = 1", &[])
                    .await
                    .ok()
                    .flatten()
                    .map(|r| r.get(0));
                match found {
                    Some(v) if v >= SCHEMA_VERSION => Ok(v),
                    _ => {
                        c.batch_execute(SCHEMA).await?;
                        c.execute(
                            "INSERT INTO server_schema (id, version) VALUES (1, $1)
                             ON CONFLICT (id) DO UPDATE SET version = EXCLUDED.version",
                            &[&SCHEMA_VERSION],
                        )
                        .await?;
                        Ok(SCHEMA_VERSION)
                    }
                }
            }
            .await;
            c.batch_execute("SELECT pg_advisory_unlock(7270617669);")
                .await?;
            r
        })?;
        if version > SCHEMA_VERSION {
            return Err(Error::Conflict(format!(
                "the database has ravi schema version {version}, newer than this ravi supports \
                 ({SCHEMA_VERSION}); upgrade ravi"
            )));
        }
        Ok(store)
    }

    /// Runs `f` on a pooled connection, blocking this (non-async) thread.
    fn run<T, F>(&self, f: F) -> Result<T>
    where
        F: AsyncFnOnce(&deadpool_postgres::Client) -> std::result::Result<T, tokio_postgres::Error>,
    {
        self.block_on(async {
            let client = self.pool.get().await.map_err(pool_err)?;
            f(&client).await.map_err(pg)
        })
    }

    fn block_on<T>(&self, f: impl Future<Output = T>) -> T {
        self.handle.block_on(f)
    }

    /// Runs `f` on the vault's rows.
    ///
    /// # Errors
    /// Whatever `f` returns.
    pub fn with_vault<T>(&self, f: impl FnOnce(&dyn Backend) -> Result<T>) -> Result<T> {
        f(&PgBackend { store: self })
    }

    /// Creates the vault from its sealed header row.
    ///
    /// # Errors
    /// [`Error::Conflict`] if there is one.
    pub fn create_vault(&self, h: &VaultRow) -> Result<()> {
        let inserted = self.run(async |c| {
            c.execute(
                "INSERT INTO vault (id, vault_id, kdf_memory_kib, kdf_iterations, kdf_parallelism,
                     kdf_salt, wrapped_root_key, inbox_domain, created_dt, owner_public_key,
                     wrapped_owner_key, signature, vault_head)
                 VALUES (1, $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
                 ON CONFLICT (id) DO NOTHING",
                &[
                    &h.vault_id,
                    &i64::from(h.kdf_memory_kib),
                    &i64::from(h.kdf_iterations),
                    &i64::from(h.kdf_parallelism),
                    &h.kdf_salt,
                    &h.wrapped_root_key,
                    &h.inbox_domain,
                    &h.created_dt,
                    &h.owner_public_key,
                    &h.wrapped_owner_key,
                    &h.signature,
                    &h.vault_head,
                ],
            )
            .await
        })?;
        if inserted == 0 {
            return Err(Error::Conflict("this server holds a vault already".into()));
        }
        Ok(())
    }

    /// Keeps a token's hash with its name and scope (see
    /// [`crate::Store::create_token`]).
    ///
    /// # Errors
    /// [`Error::Conflict`] for a name in use.
    pub fn insert_token(
        &self,
        id: &str,
        name: &str,
        token: &str,
        scope: &Scope,
        expires: Option<i64>,
    ) -> Result<()> {
        let (owner, ids) = scope_columns(scope)?;
        let r = self.run(async |c| {
            c.execute(
                "INSERT INTO server_tokens (id, name, hash, owner, identities, created_dt, expires_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
                &[&id, &name, &token_hash(token), &owner, &ids, &now_rfc3339(), &expires],
            )
            .await
        });
        unique_as_conflict(r, || format!("a token named {name:?} exists already")).map(drop)
    }

    /// See [`crate::SqliteStore::tokens`].
    ///
    /// # Errors
    /// Storage errors.
    pub fn tokens(&self) -> Result<Vec<TokenInfo>> {
        let rows = self.run(async |c| {
            c.query(
                "SELECT id, name, owner, identities, created_dt, expires_at
                 FROM server_tokens ORDER BY created_dt, name",
                &[],
            )
            .await
        })?;
        Ok(rows
            .iter()
            .map(|r| {
                TokenInfo::from_columns(
                    r.get(0),
                    r.get(1),
                    r.get(2),
                    &r.get::<_, String>(3),
                    r.get(4),
                    r.get(5),
                )
            })
            .collect())
    }

    /// See [`crate::SqliteStore::revoke_token`].
    ///
    /// # Errors
    /// Storage errors.
    pub fn revoke_token(&self, id_or_name: &str) -> Result<bool> {
        self.run(async |c| {
            c.execute(
                "DELETE FROM server_tokens WHERE id = $1 OR name = $1",
                &[&id_or_name],
            )
            .await
        })
        .map(|n| n > 0)
    }

    /// See [`crate::SqliteStore::authenticate`].
    ///
    /// # Errors
    /// Storage errors.
    pub fn authenticate(&self, token: &str) -> Result<Option<Scope>> {
        let row = self.run(async |c| {
            c.query_opt(
                "SELECT owner, identities, expires_at FROM server_tokens WHERE hash = $1",
                &[&token_hash(token)],
            )
            .await
        })?;
        Ok(row.and_then(|r| {
            let (owner, ids, exp): (bool, String, Option<i64>) = (r.get(0), r.get(1), r.get(2));
            crate::store::scope_of(owner, &ids, exp)
        }))
    }

    /// See [`crate::SqliteStore::add_pending`].
    ///
    /// # Errors
    /// [`Error::Conflict`] if the name is taken by a pending identity.
    pub fn add_pending(&self, p: &Pending) -> Result<()> {
        let r = self.run(async |c| {
            c.execute(
                "INSERT INTO server_pending (uuid, name, created_dt) VALUES ($1, $2, $3)",
                &[&p.uuid, &p.name, &p.created_dt],
            )
            .await
        });
        unique_as_conflict(r, || {
            format!("an identity named {:?} exists already", p.name)
        })
        .map(drop)
    }

    /// See [`crate::SqliteStore::pending`].
    ///
    /// # Errors
    /// Storage errors.
    pub fn pending(&self) -> Result<Vec<Pending>> {
        let rows = self.run(async |c| {
            c.query(
                "SELECT uuid, name, created_dt FROM server_pending ORDER BY created_dt, name",
                &[],
            )
            .await
        })?;
        Ok(rows
            .iter()
            .map(|r| Pending {
                uuid: r.get(0),
                name: r.get(1),
                created_dt: r.get(2),
            })
            .collect())
    }

    /// See [`crate::SqliteStore::rename_pending`].
    ///
    /// # Errors
    /// [`Error::Conflict`] if the name is taken.
    pub fn rename_pending(&self, uuid: &str, name: &str) -> Result<bool> {
        let r = self.run(async |c| {
            c.execute(
                "UPDATE server_pending SET name = $2 WHERE uuid = $1",
                &[&uuid, &name],
            )
            .await
        });
        unique_as_conflict(r, || format!("an identity named {name:?} exists already"))
            .map(|n| n > 0)
    }

    /// See [`crate::SqliteStore::remove_pending`].
    ///
    /// # Errors
    /// Storage errors.
    pub fn remove_pending(&self, uuid: &str) -> Result<bool> {
        self.run(async |c| {
            c.execute("DELETE FROM server_pending WHERE uuid = $1", &[&uuid])
                .await
        })
        .map(|n| n > 0)
    }
}

fn scope_columns(scope: &Scope) -> Result<(bool, String)> {
    let (owner, ids): (bool, Vec<String>) = match scope {
        Scope::Owner => (true, Vec::new()),
        Scope::Identities(ids) => (false, ids.iter().cloned().collect()),
    };
    Ok((owner, serde_json::to_string(&ids).map_err(Error::Encoding)?))
}

fn unique_as_conflict(r: Result<u64>, message: impl FnOnce() -> String) -> Result<u64> {
    match r {
        Err(Error::Storage(e))
            if e.downcast_ref::<tokio_postgres::Error>()
                .and_then(tokio_postgres::Error::code)
                == Some(&SqlState::UNIQUE_VIOLATION) =>
        {
            Err(Error::Conflict(message()))
        }
        other => other,
    }
}

/// The vault's rows in a [`PgStore`], as a vault-core backend.
struct PgBackend<'a> {
    store: &'a PgStore,
}

impl std::fmt::Debug for PgBackend<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.store.fmt(f)
    }
}

type Params<'p> = Vec<&'p (dyn ToSql + Sync)>;

async fn holds<C: GenericClient>(
    c: &C,
    p: &Precondition,
) -> std::result::Result<bool, tokio_postgres::Error> {
    let exists =
        async |sql: &str, params: Params<'_>| -> std::result::Result<bool, tokio_postgres::Error> {
            Ok(c.query_opt(sql, &params).await?.is_some())
        };
    let count =
        async |sql: &str, params: Params<'_>| -> std::result::Result<i64, tokio_postgres::Error> {
            Ok(c.query_one(sql, &params).await?.get(0))
        };
    match p {
        Precondition::HeaderUnchanged {
            wrapped_root_key,
            signature,
        } => {
            exists(
                "SELECT 1 FROM vault WHERE id = 1 AND wrapped_root_key = $1
                 AND signature IS NOT DISTINCT FROM $2",
                vec![wrapped_root_key, signature],
            )
            .await
        }
        Precondition::IdentityEpoch {
            identity_uuid,
            key_epoch,
        } => {
            exists(
                "SELECT 1 FROM identities WHERE uuid = $1 AND key_epoch = $2",
                vec![identity_uuid, &i64::from(*key_epoch)],
            )
            .await
        }
        Precondition::RecordUnchanged { uuid, ciphertext } => {
            exists(
                "SELECT 1 FROM records WHERE uuid = $1 AND ciphertext = $2",
                vec![uuid, ciphertext],
            )
            .await
        }
        Precondition::NameFree {
            identity_uuid,
            kind,
            blind_index,
        } => exists(
            "SELECT 1 FROM records WHERE identity_uuid = $1 AND kind = $2 AND blind_index = $3",
            vec![identity_uuid, &i16::from(*kind), blind_index],
        )
        .await
        .map(|found| !found),
        Precondition::VaultHead(head) => {
            exists(
                "SELECT 1 FROM vault WHERE id = 1 AND vault_head IS NOT DISTINCT FROM $1",
                vec![head],
            )
            .await
        }
        Precondition::IdentityHead {
            identity_uuid,
            head,
        } => {
            exists(
                "SELECT 1 FROM identities WHERE uuid = $1 AND head IS NOT DISTINCT FROM $2",
                vec![identity_uuid, head],
            )
            .await
        }
        Precondition::IdentityCount(n) => Ok(count("SELECT count(*) FROM identities", vec![])
            .await?
            == i64::try_from(*n).unwrap_or(i64::MAX)),
        Precondition::RecordCount {
            identity_uuid,
            count: n,
        } => Ok(count(
            "SELECT count(*) FROM records WHERE identity_uuid = $1",
            vec![identity_uuid],
        )
        .await?
            == i64::try_from(*n).unwrap_or(i64::MAX)),
    }
}

async fn apply<C: GenericClient>(
    c: &C,
    w: &Write,
) -> std::result::Result<u64, tokio_postgres::Error> {
    match w {
        Write::InsertIdentity(r) => {
            c.execute(
                &format!("INSERT INTO identities ({IDENTITY_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"),
                &[
                    &r.uuid,
                    &r.name,
                    &r.inbox,
                    &r.phone,
                    &r.created_dt,
                    &i64::from(r.key_epoch),
                    &r.wrapped_key,
                    &r.signature,
                    &r.head,
                ],
            )
            .await
        }
        Write::SetIdentityKey {
            uuid,
            key_epoch,
            wrapped_key,
        } => {
            c.execute(
                "UPDATE identities SET key_epoch = $2, wrapped_key = $3 WHERE uuid = $1",
                &[uuid, &i64::from(*key_epoch), wrapped_key],
            )
            .await
        }
        Write::DeleteIdentity(uuid) => {
            c.execute("DELETE FROM identities WHERE uuid = $1", &[uuid])
                .await
        }
        Write::InsertRecord(r) => {
            c.execute(
                &format!("INSERT INTO records ({RECORD_COLS}) VALUES ($1, $2, $3, $4, $5, $6)"),
                &[
                    &r.uuid,
                    &r.identity_uuid,
                    &i16::from(r.kind),
                    &r.blind_index,
                    &i64::from(r.key_epoch),
                    &r.ciphertext,
                ],
            )
            .await
        }
        Write::UpdateRecord(r) => {
            c.execute(
                "UPDATE records SET blind_index = $2, key_epoch = $3, ciphertext = $4
                 WHERE uuid = $1 AND identity_uuid = $5 AND kind = $6",
                &[
                    &r.uuid,
                    &r.blind_index,
                    &i64::from(r.key_epoch),
                    &r.ciphertext,
                    &r.identity_uuid,
                    &i16::from(r.kind),
                ],
            )
            .await
        }
        Write::DeleteRecord {
            identity_uuid,
            kind,
            uuid,
        } => {
            c.execute(
                "DELETE FROM records WHERE uuid = $1 AND identity_uuid = $2 AND kind = $3",
                &[uuid, identity_uuid, &i16::from(*kind)],
            )
            .await
        }
        Write::InsertGrant(g) => {
            c.execute(
                &format!("INSERT INTO grants ({GRANT_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"),
                &[
                    &g.uuid,
                    &g.identity_uuid,
                    &g.recipient,
                    &g.label,
                    &i64::from(g.key_epoch),
                    &g.ephemeral_public,
                    &g.wrapped_key,
                    &g.created_dt,
                    &g.signature,
                ],
            )
            .await
        }
        Write::UpdateGrant(g) => {
            c.execute(
                "UPDATE grants SET key_epoch = $2, ephemeral_public = $3, wrapped_key = $4,
                     signature = $5 WHERE uuid = $1",
                &[
                    &g.uuid,
                    &i64::from(g.key_epoch),
                    &g.ephemeral_public,
                    &g.wrapped_key,
                    &g.signature,
                ],
            )
            .await
        }
        Write::DeleteGrant(uuid) => c.execute("DELETE FROM grants WHERE uuid = $1", &[uuid]).await,
        Write::InsertSession(s) => {
            c.execute(
                "INSERT INTO sessions (session_id, expires_at, created_dt, wrapped_root_key)
                 VALUES ($1, $2, $3, $4)",
                &[
                    &s.session_id,
                    &i64::try_from(s.expires_at).unwrap_or(i64::MAX),
                    &s.created_dt,
                    &s.wrapped_root_key,
                ],
            )
            .await
        }
        Write::DeleteSessions(Some(id)) => {
            c.execute("DELETE FROM sessions WHERE session_id = $1", &[id])
                .await
        }
        Write::DeleteSessions(None) => c.execute("DELETE FROM sessions", &[]).await,
        Write::DeleteExpiredSessions(now) => {
            c.execute(
                "DELETE FROM sessions WHERE expires_at <= $1",
                &[&i64::try_from(*now).unwrap_or(i64::MAX)],
            )
            .await
        }
        Write::SetHeaderKey(v) => {
            c.execute(
                "UPDATE vault SET kdf_memory_kib = $1, kdf_iterations = $2, kdf_parallelism = $3,
                     kdf_salt = $4, wrapped_root_key = $5, owner_public_key = $6,
                     wrapped_owner_key = $7, signature = $8 WHERE id = 1",
                &[
                    &i64::from(v.kdf_memory_kib),
                    &i64::from(v.kdf_iterations),
                    &i64::from(v.kdf_parallelism),
                    &v.kdf_salt,
                    &v.wrapped_root_key,
                    &v.owner_public_key,
                    &v.wrapped_owner_key,
                    &v.signature,
                ],
            )
            .await
        }
        Write::SetTreeNodes {
            identity_uuid,
            nodes,
        } => {
            let (set_ids, set_hashes): (Vec<i64>, Vec<&[u8]>) = nodes
                .iter()
                .filter_map(|(id, h)| h.as_deref().map(|h| (i64::from(*id), h)))
                .unzip();
            let gone: Vec<i64> = nodes
                .iter()
                .filter(|(_, h)| h.is_none())
                .map(|(id, _)| i64::from(*id))
                .collect();
            let mut n = 0;
            if !set_ids.is_empty() {
                n += c
                    .execute(
                        "INSERT INTO tree_nodes (identity_uuid, node, hash)
                         SELECT $1, n, h FROM unnest($2::BIGINT[], $3::BYTEA[]) AS t(n, h)
                         ON CONFLICT (identity_uuid, node) DO UPDATE SET hash = EXCLUDED.hash",
                        &[identity_uuid, &set_ids, &set_hashes],
                    )
                    .await?;
            }
            if !gone.is_empty() {
                n += c
                    .execute(
                        "DELETE FROM tree_nodes WHERE identity_uuid = $1 AND node = ANY($2)",
                        &[identity_uuid, &gone],
                    )
                    .await?;
            }
            Ok(n)
        }
        Write::ClearTree(identity_uuid) => {
            c.execute(
                "DELETE FROM tree_nodes WHERE identity_uuid = $1",
                &[identity_uuid],
            )
            .await
        }
        Write::SetVaultHead(head) => {
            c.execute("UPDATE vault SET vault_head = $1 WHERE id = 1", &[head])
                .await
        }
        Write::SetIdentityHead { uuid, head } => {
            c.execute(
                "UPDATE identities SET head = $2 WHERE uuid = $1",
                &[uuid, head],
            )
            .await
        }
        Write::SetIdentitySignature { uuid, signature } => {
            c.execute(
                "UPDATE identities SET signature = $2 WHERE uuid = $1",
                &[uuid, signature],
            )
            .await
        }
    }
}

impl PgBackend<'_> {
    fn all<T>(&self, sql: &str, params: Params<'_>, map: fn(&Row) -> T) -> Result<Vec<T>> {
        let rows = self.store.run(async |c| c.query(sql, &params).await)?;
        Ok(rows.iter().map(map).collect())
    }

    fn one<T>(&self, sql: &str, params: Params<'_>, map: fn(&Row) -> T) -> Result<Option<T>> {
        let row = self.store.run(async |c| c.query_opt(sql, &params).await)?;
        Ok(row.as_ref().map(map))
    }
}

impl Backend for PgBackend<'_> {
    fn location(&self) -> String {
        self.store.url_for_people.clone()
    }

    fn header(&self) -> Result<VaultRow> {
        self.one(
            "SELECT vault_id, kdf_memory_kib, kdf_iterations, kdf_parallelism, kdf_salt,
                    wrapped_root_key, inbox_domain, created_dt, owner_public_key,
                    wrapped_owner_key, signature, vault_head FROM vault WHERE id = 1",
            vec![],
            |r| VaultRow {
                vault_id: r.get(0),
                kdf_memory_kib: u32_of(r.get(1)),
                kdf_iterations: u32_of(r.get(2)),
                kdf_parallelism: u32_of(r.get(3)),
                kdf_salt: r.get(4),
                wrapped_root_key: r.get(5),
                inbox_domain: r.get(6),
                created_dt: r.get(7),
                owner_public_key: r.get(8),
                wrapped_owner_key: r.get(9),
                signature: r.get(10),
                vault_head: r.get(11),
            },
        )?
        .ok_or_else(|| Error::NotFound("this server holds no vault yet".into()))
    }

    fn identities(&self) -> Result<Vec<IdentityRow>> {
        self.all(
            &format!("SELECT {IDENTITY_COLS} FROM identities ORDER BY created_dt, lower(name)"),
            vec![],
            identity_row,
        )
    }

    fn identity(&self, uuid: &str) -> Result<Option<IdentityRow>> {
        self.one(
            &format!("SELECT {IDENTITY_COLS} FROM identities WHERE uuid = $1"),
            vec![&uuid],
            identity_row,
        )
    }

    fn identity_by_name(&self, name: &str) -> Result<Option<IdentityRow>> {
        self.one(
            &format!("SELECT {IDENTITY_COLS} FROM identities WHERE lower(name) = lower($1)"),
            vec![&name],
            identity_row,
        )
    }

    fn grants(&self, identity_uuid: &str) -> Result<Vec<GrantRow>> {
        self.all(
            &format!(
                "SELECT {GRANT_COLS} FROM grants WHERE identity_uuid = $1 ORDER BY created_dt, uuid"
            ),
            vec![&identity_uuid],
            grant_row,
        )
    }

    fn grant_for(&self, identity_uuid: &str, recipient: &[u8]) -> Result<Option<GrantRow>> {
        self.one(
            &format!("SELECT {GRANT_COLS} FROM grants WHERE identity_uuid = $1 AND recipient = $2"),
            vec![&identity_uuid, &recipient],
            grant_row,
        )
    }

    fn record(&self, identity_uuid: &str, kind: u8, uuid: &str) -> Result<Option<RecordRow>> {
        self.one(
            &format!(
                "SELECT {RECORD_COLS} FROM records WHERE uuid = $1 AND identity_uuid = $2 AND kind = $3"
            ),
            vec![&uuid, &identity_uuid, &i16::from(kind)],
            record_row,
        )
    }

    fn records_by_index(
        &self,
        identity_uuid: &str,
        kind: u8,
        blind_index: &[u8],
    ) -> Result<Vec<RecordRow>> {
        self.all(
            &format!(
                "SELECT {RECORD_COLS} FROM records
                 WHERE identity_uuid = $1 AND kind = $2 AND blind_index = $3 ORDER BY uuid"
            ),
            vec![&identity_uuid, &i16::from(kind), &blind_index],
            record_row,
        )
    }

    fn records(&self, identity_uuid: &str, q: &RecordQuery) -> Result<Vec<RecordRow>> {
        let kind = q.kind.map(i16::from);
        let limit = q.limit.map(|l| i64::try_from(l).unwrap_or(i64::MAX));
        let (lower, upper) = match q.bucket {
            Some(b) => {
                let upper = match b.checked_add(1) {
                    Some(n) => format!("{n:04x}"),
                    None => "g".into(),
                };
                (Some(format!("{b:04x}")), Some(upper))
            }
            None => (None, None),
        };
        self.all(
            &format!(
                "SELECT {RECORD_COLS} FROM records
                 WHERE identity_uuid = $1
                   AND ($2::SMALLINT IS NULL OR kind = $2)
                   AND ($3::TEXT IS NULL OR uuid > $3)
                   AND ($5::TEXT IS NULL OR (uuid >= $5 AND uuid < $6))
                 ORDER BY uuid LIMIT $4"
            ),
            vec![&identity_uuid, &kind, &q.after, &limit, &lower, &upper],
            record_row,
        )
    }

    fn tree_nodes(&self, identity_uuid: &str, ids: &[u32]) -> Result<Vec<(u32, Vec<u8>)>> {
        let ids: Vec<i64> = ids.iter().map(|i| i64::from(*i)).collect();
        let map = |r: &Row| (u32_of(r.get(0)), r.get::<_, Vec<u8>>(1));
        if ids.is_empty() {
            return self.all(
                "SELECT node, hash FROM tree_nodes WHERE identity_uuid = $1",
                vec![&identity_uuid],
                map,
            );
        }
        self.all(
            "SELECT node, hash FROM tree_nodes WHERE identity_uuid = $1 AND node = ANY($2)",
            vec![&identity_uuid, &ids],
            map,
        )
    }

    fn session(&self, session_id: &str) -> Result<Option<SessionRow>> {
        self.one(
            "SELECT session_id, expires_at, created_dt, wrapped_root_key
             FROM sessions WHERE session_id = $1",
            vec![&session_id],
            |r| SessionRow {
                session_id: r.get(0),
                expires_at: u64::try_from(r.get::<_, i64>(1)).unwrap_or(0),
                created_dt: r.get(2),
                wrapped_root_key: r.get(3),
            },
        )
    }

    fn pending_identities(&self) -> Result<Vec<PendingIdentity>> {
        Ok(self
            .store
            .pending()?
            .into_iter()
            .map(|p| PendingIdentity {
                uuid: p.uuid,
                name: p.name,
                created_dt: p.created_dt,
            })
            .collect())
    }

    fn commit(&self, batch: &Batch) -> std::result::Result<Changes, CommitError> {
        self.store.block_on(async {
            let mut client = self.store.pool.get().await.map_err(pool_err)?;
            let tx = client.transaction().await.map_err(pg)?;
            tx.batch_execute("LOCK TABLE vault IN SHARE ROW EXCLUSIVE MODE")
                .await
                .map_err(pg)?;
            for (i, p) in batch.preconditions.iter().enumerate() {
                if !holds(&tx, p).await.map_err(pg)? {
                    return Err(CommitError::Conflict(Conflict::Precondition(i)));
                }
            }
            let mut changes = Vec::with_capacity(batch.writes.len());
            for (i, w) in batch.writes.iter().enumerate() {
                match apply(&tx, w).await {
                    Ok(0) if w.must_touch() => {
                        return Err(CommitError::Conflict(Conflict::Missing(i)));
                    }
                    Ok(n) => changes.push(usize::try_from(n).unwrap_or(usize::MAX)),
                    Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
                        return Err(CommitError::Conflict(Conflict::Duplicate(i)));
                    }
                    Err(e) if e.code() == Some(&SqlState::FOREIGN_KEY_VIOLATION) => {
                        return Err(CommitError::Conflict(Conflict::Missing(i)));
                    }
                    Err(e) => return Err(pg(e).into()),
                }
            }
            tx.commit().await.map_err(pg)?;
            Ok(changes)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_passwords_stay_out_of_debug() {
        let url = "postgres://ravi:s3cret-pw@db.internal:5432/ravi";
        assert_eq!(redacted(url), "postgres://…@db.internal:5432/ravi");
        let shown = format!("{:?}", crate::StoreConfig::Postgres(url.into()));
        assert!(!shown.contains("s3cret-pw"), "{shown}");
    }
}
