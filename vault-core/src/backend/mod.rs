//! The storage seam: a [`Backend`] moves sealed rows in and out and knows
//! nothing of keys or plaintext.
//!
//! Reads are single calls. Every write is one [`Batch`]: row writes applied
//! atomically by [`Backend::commit`] if and only if every [`Precondition`]
//! holds; otherwise nothing is applied and the commit reports a typed
//! [`Conflict`]. The layers above never see SQL, connections or driver
//! errors, so the same rows can live in a SQLite file, in memory, on a
//! ciphertext-only server or in PostgreSQL.

#[cfg(any(test, feature = "hazmat"))]
mod memory;
#[cfg(feature = "remote")]
mod remote;
mod sqlite;

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
pub mod wire;

#[cfg(any(test, feature = "hazmat"))]
pub use memory::MemoryBackend;
#[cfg(feature = "remote")]
pub use remote::RemoteBackend;
pub use sqlite::SqliteBackend;

use crate::error::Error;

/// The vault's header row.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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
    #[serde(with = "wire::bytes")]
    pub kdf_salt: Vec<u8>,
    /// The root key sealed under the KEK.
    #[serde(with = "wire::bytes")]
    pub wrapped_root_key: Vec<u8>,
    /// Domain of newly assigned inbox addresses.
    pub inbox_domain: String,
    /// Creation time, RFC 3339.
    pub created_dt: String,
    /// The owner's Ed25519 public key (absent in vaults made before
    /// signing, until the owner next unlocks them).
    #[serde(with = "wire::opt_bytes")]
    pub owner_public_key: Option<Vec<u8>>,
    /// The owner's signing key seed sealed under the root key.
    #[serde(with = "wire::opt_bytes")]
    pub wrapped_owner_key: Option<Vec<u8>>,
    /// The owner's signature on the clear header fields.
    #[serde(with = "wire::opt_bytes")]
    pub signature: Option<Vec<u8>>,
    /// The vault head: the owner-signed set of identities (with key epochs)
    /// and grants, with a sequence number (SPEC §4c).
    #[serde(with = "wire::opt_bytes")]
    pub vault_head: Option<Vec<u8>>,
}

/// An identity row: clear routing metadata and the wrapped identity key.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct IdentityRow {
    /// The identity's uuid, hyphenated.
    pub uuid: String,
    /// Unique (ASCII case-insensitive) name.
    pub name: String,
    /// Unique (ASCII case-insensitive) inbox address.
    pub inbox: String,
    /// E.164 phone number.
    pub phone: Option<String>,
    /// Creation time, RFC 3339.
    pub created_dt: String,
    /// Epoch of the current identity key.
    pub key_epoch: u32,
    /// The identity key sealed under the root key.
    #[serde(with = "wire::bytes")]
    pub wrapped_key: Vec<u8>,
    /// The owner's signature on the clear metadata.
    #[serde(with = "wire::opt_bytes")]
    pub signature: Option<Vec<u8>>,
    /// The identity head: sequence, key epoch and record-set commitment,
    /// MACed under a key derived from the identity key (SPEC §4b).
    #[serde(with = "wire::opt_bytes")]
    pub head: Option<Vec<u8>>,
}

/// A record row: ids, kind, blind index, key epoch and ciphertext only.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RecordRow {
    /// The record's uuid, hyphenated.
    pub uuid: String,
    /// Its identity's uuid.
    pub identity_uuid: String,
    /// Record kind.
    pub kind: u8,
    /// Keyed MAC of the record's normalised name.
    #[serde(with = "wire::bytes")]
    pub blind_index: Vec<u8>,
    /// Identity key epoch the record is sealed under.
    pub key_epoch: u32,
    /// The sealed record.
    #[serde(with = "wire::bytes")]
    pub ciphertext: Vec<u8>,
}

/// A session row: the root key sealed under a session key.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SessionRow {
    /// The session id (hex).
    pub session_id: String,
    /// Expiry, Unix seconds.
    pub expires_at: u64,
    /// Creation time, RFC 3339.
    pub created_dt: String,
    /// The root key sealed under the session key.
    #[serde(with = "wire::bytes")]
    pub wrapped_root_key: Vec<u8>,
}

/// A grant row: an identity key wrapped to an agent's public key.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct GrantRow {
    /// The grant's uuid.
    pub uuid: String,
    /// The identity's uuid.
    pub identity_uuid: String,
    /// The agent's X25519 public key.
    #[serde(with = "wire::bytes")]
    pub recipient: Vec<u8>,
    /// A label for humans.
    pub label: Option<String>,
    /// The identity key epoch wrapped.
    pub key_epoch: u32,
    /// The ephemeral X25519 public key.
    #[serde(with = "wire::bytes")]
    pub ephemeral_public: Vec<u8>,
    /// The identity key sealed under the grant's wrap key.
    #[serde(with = "wire::bytes")]
    pub wrapped_key: Vec<u8>,
    /// Creation time, RFC 3339.
    pub created_dt: String,
    /// The owner's signature on the grant.
    #[serde(with = "wire::opt_bytes")]
    pub signature: Option<Vec<u8>>,
}

/// An identity requested through a server's REST interface (a name only),
/// waiting for an owner client to adopt it: to make its key and sign its
/// metadata. Local stores have none.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PendingIdentity {
    /// The uuid the server gave it (the identity keeps it).
    pub uuid: String,
    /// The requested name.
    pub name: String,
    /// When it was requested, RFC 3339.
    pub created_dt: String,
}

/// Which records a [`Backend::records`] call returns: all of an identity's
/// records (of one kind, or every kind) ordered by uuid, optionally one page
/// of them: those after a uuid, at most `limit`.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RecordQuery {
    /// One kind, or every kind.
    pub kind: Option<u8>,
    /// Only records whose uuid sorts after this one (the previous page's last).
    pub after: Option<String>,
    /// At most this many.
    pub limit: Option<usize>,
    /// Only records whose uuid starts with these 16 bits (its bucket in the
    /// identity head's Merkle tree, SPEC §4b).
    pub bucket: Option<u16>,
}

/// The uuid range of a bucket: `[lower, upper)` in hyphenated text order.
pub(crate) fn bucket_range(bucket: u16) -> (String, String) {
    let lower = format!("{bucket:04x}");
    let upper = match bucket.checked_add(1) {
        Some(next) => format!("{next:04x}"),
        None => "g".into(),
    };
    (lower, upper)
}

/// A condition a [`Batch`] needs to hold when it is applied.
///
/// A record's ciphertext is its version: every seal draws a fresh random
/// nonce, so two writes of a record never leave the same bytes.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Precondition {
    /// The header is as read: the same wrapped root key and owner signature
    /// (no concurrent passphrase change or owner-key upgrade).
    HeaderUnchanged {
        /// The wrapped root key read.
        #[serde(with = "wire::bytes")]
        wrapped_root_key: Vec<u8>,
        /// The header signature read (`None` before signing).
        #[serde(with = "wire::opt_bytes")]
        signature: Option<Vec<u8>>,
    },
    /// The identity exists and its key is at this epoch.
    IdentityEpoch {
        /// The identity.
        identity_uuid: String,
        /// Its expected key epoch.
        key_epoch: u32,
    },
    /// The record exists with exactly this ciphertext (unchanged since read).
    RecordUnchanged {
        /// The record.
        uuid: String,
        /// Its ciphertext when read.
        #[serde(with = "wire::bytes")]
        ciphertext: Vec<u8>,
    },
    /// No record of this identity and kind has this blind index.
    NameFree {
        /// The identity.
        identity_uuid: String,
        /// The record kind.
        kind: u8,
        /// The blind index of the name.
        #[serde(with = "wire::bytes")]
        blind_index: Vec<u8>,
    },
    /// The vault head is as read (`None`: there is none yet).
    VaultHead(#[serde(with = "wire::opt_bytes")] Option<Vec<u8>>),
    /// The identity's head is as read (`None`: it has none yet).
    IdentityHead {
        /// The identity.
        identity_uuid: String,
        /// The head bytes read.
        #[serde(with = "wire::opt_bytes")]
        head: Option<Vec<u8>>,
    },
    /// The vault has exactly this many identities (none was added or
    /// removed since they were read).
    IdentityCount(u64),
    /// The identity has exactly this many records, every kind (none was
    /// added or removed since they were read).
    RecordCount {
        /// The identity.
        identity_uuid: String,
        /// The expected count.
        count: u64,
    },
}

/// One row write of a [`Batch`].
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Write {
    /// Inserts an identity; its name and inbox must be free.
    InsertIdentity(IdentityRow),
    /// Replaces an identity's key epoch and wrapped key.
    SetIdentityKey {
        /// The identity.
        uuid: String,
        /// Its new key epoch.
        key_epoch: u32,
        /// Its key wrapped for the new epoch.
        #[serde(with = "wire::bytes")]
        wrapped_key: Vec<u8>,
    },
    /// Deletes an identity with its records and grants.
    DeleteIdentity(String),
    /// Inserts a record; a unique kind's name must be free.
    InsertRecord(RecordRow),
    /// Replaces an existing record's blind index, epoch and ciphertext.
    UpdateRecord(RecordRow),
    /// Deletes a record.
    DeleteRecord {
        /// Its identity.
        identity_uuid: String,
        /// Its kind.
        kind: u8,
        /// The record.
        uuid: String,
    },
    /// Inserts a grant; an agent has at most one grant per identity.
    InsertGrant(GrantRow),
    /// Replaces an existing grant's epoch, ephemeral key, wrapped key and
    /// signature.
    UpdateGrant(GrantRow),
    /// Deletes a grant.
    DeleteGrant(String),
    /// Inserts a session.
    InsertSession(SessionRow),
    /// Deletes one session (`Some`) or every session (`None`).
    DeleteSessions(Option<String>),
    /// Deletes the sessions that expired at or before this Unix time.
    DeleteExpiredSessions(u64),
    /// Replaces the header's KDF parameters, salt, wrapped root key, owner
    /// key and signature (every field but the id, inbox domain and time).
    SetHeaderKey(VaultRow),
    /// Replaces the vault head.
    SetVaultHead(#[serde(with = "wire::bytes")] Vec<u8>),
    /// Sets nodes of an identity's record tree (`None` deletes a node: an
    /// all-zero subtree is not stored).
    SetTreeNodes {
        /// The identity.
        identity_uuid: String,
        /// `(node id, hash)` pairs.
        #[serde(with = "wire::nodes")]
        nodes: Vec<(u32, Option<Vec<u8>>)>,
    },
    /// Deletes every node of an identity's record tree.
    ClearTree(String),
    /// Replaces an identity's head.
    SetIdentityHead {
        /// The identity.
        uuid: String,
        /// The new head.
        #[serde(with = "wire::bytes")]
        head: Vec<u8>,
    },
    /// Replaces an identity's signature.
    SetIdentitySignature {
        /// The identity.
        uuid: String,
        /// The owner's signature on its metadata.
        #[serde(with = "wire::bytes")]
        signature: Vec<u8>,
    },
}

impl Write {
    /// Whether this write updates a row that must exist: touching no row
    /// means it is missing ([`Conflict::Missing`]).
    pub fn must_touch(&self) -> bool {
        matches!(
            self,
            Write::SetIdentityKey { .. }
                | Write::UpdateRecord(_)
                | Write::UpdateGrant(_)
                | Write::SetHeaderKey(_)
                | Write::SetIdentitySignature { .. }
                | Write::SetIdentityHead { .. }
                | Write::SetVaultHead(_)
        )
    }
}

/// Row writes applied together or not at all, guarded by preconditions.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Batch {
    /// Conditions checked, in order, before anything is written.
    pub preconditions: Vec<Precondition>,
    /// Writes applied in order.
    pub writes: Vec<Write>,
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Self {
        Batch::default()
    }

    /// Adds a precondition.
    pub fn require(&mut self, p: Precondition) -> &mut Self {
        self.preconditions.push(p);
        self
    }

    /// Adds a write.
    pub fn write(&mut self, w: Write) -> &mut Self {
        self.writes.push(w);
        self
    }

    /// Whether the batch has more than 1,000 writes (a rotation, a bulk
    /// import): SQLite gives it a bigger page cache, and after one lost
    /// precondition it is built again with other writers kept out.
    pub fn is_big(&self) -> bool {
        self.writes.len() > 1000
    }
}

/// Why a batch was not applied although the store works.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Conflict {
    /// The precondition at this index does not hold.
    Precondition(usize),
    /// The write at this index would duplicate a unique identity name or
    /// inbox, a unique record name, a grant, or a row id.
    Duplicate(usize),
    /// The write at this index updates a row that does not exist.
    Missing(usize),
}

/// The failure of [`Backend::commit`]. Either way nothing was applied.
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    /// The batch conflicts with the stored state.
    #[error("the batch conflicts with the store: {0:?}")]
    Conflict(Conflict),
    /// The store failed.
    #[error(transparent)]
    Failed(#[from] Error),
}

/// What a commit changed: for each write, how many rows it touched.
pub type Changes = Vec<usize>;

/// Where a vault's rows live. Implementations must make every
/// [`Backend::commit`] atomic and serialisable with respect to other
/// commits and reads, from any number of processes or handles.
pub trait Backend: std::fmt::Debug {
    /// Where the rows are, for people (a path or an address).
    fn location(&self) -> String;

    /// The vault header.
    ///
    /// # Errors
    /// [`Error::Integrity`] if there is none.
    fn header(&self) -> crate::Result<VaultRow>;

    /// Every identity, by creation time then name.
    ///
    /// # Errors
    /// Storage errors only.
    fn identities(&self) -> crate::Result<Vec<IdentityRow>>;

    /// The identity with this uuid.
    ///
    /// # Errors
    /// Storage errors only.
    fn identity(&self, uuid: &str) -> crate::Result<Option<IdentityRow>>;

    /// The identity with this name (ASCII case-insensitive).
    ///
    /// # Errors
    /// Storage errors only.
    fn identity_by_name(&self, name: &str) -> crate::Result<Option<IdentityRow>>;

    /// The grants of an identity, oldest first.
    ///
    /// # Errors
    /// Storage errors only.
    fn grants(&self, identity_uuid: &str) -> crate::Result<Vec<GrantRow>>;

    /// The grant of an identity to this recipient.
    ///
    /// # Errors
    /// Storage errors only.
    fn grant_for(&self, identity_uuid: &str, recipient: &[u8]) -> crate::Result<Option<GrantRow>>;

    /// The record with this uuid in this identity and kind.
    ///
    /// # Errors
    /// Storage errors only.
    fn record(&self, identity_uuid: &str, kind: u8, uuid: &str)
    -> crate::Result<Option<RecordRow>>;

    /// The records of an identity and kind with this blind index, by uuid.
    ///
    /// # Errors
    /// Storage errors only.
    fn records_by_index(
        &self,
        identity_uuid: &str,
        kind: u8,
        blind_index: &[u8],
    ) -> crate::Result<Vec<RecordRow>>;

    /// An identity's records, by uuid: all of them or one page.
    ///
    /// # Errors
    /// Storage errors only.
    fn records(&self, identity_uuid: &str, query: &RecordQuery) -> crate::Result<Vec<RecordRow>>;

    /// Nodes of an identity's record tree: those with these ids, or every
    /// stored one if `ids` is empty. Absent nodes are all-zero.
    ///
    /// # Errors
    /// Storage errors only.
    fn tree_nodes(&self, identity_uuid: &str, ids: &[u32]) -> crate::Result<Vec<(u32, Vec<u8>)>>;

    /// The session with this id.
    ///
    /// # Errors
    /// Storage errors only.
    fn session(&self, session_id: &str) -> crate::Result<Option<SessionRow>>;

    /// Identities requested through a server and not adopted yet.
    ///
    /// # Errors
    /// Storage errors only.
    fn pending_identities(&self) -> crate::Result<Vec<PendingIdentity>> {
        Ok(Vec::new())
    }

    /// Applies every write of `batch` atomically if every precondition
    /// holds; otherwise applies nothing.
    ///
    /// # Errors
    /// [`CommitError::Conflict`] with the failing precondition or write;
    /// [`CommitError::Failed`] if the store fails.
    fn commit(&self, batch: &Batch) -> Result<Changes, CommitError>;

    /// Builds a batch with `build` (which reads through this backend) and
    /// commits it, with other writers kept out from the first read to the
    /// commit where the store can do that: a writer that keeps losing its
    /// preconditions to a stream of others' commits (a rotation of a busy
    /// identity) then gets through. The default builds and commits as
    /// [`Backend::commit`] does.
    ///
    /// # Errors
    /// As [`Backend::commit`]; an error of `build` as
    /// [`CommitError::Failed`], nothing committed.
    fn commit_exclusive(
        &self,
        build: &mut dyn FnMut() -> crate::Result<Batch>,
    ) -> Result<Changes, CommitError> {
        let batch = build()?;
        self.commit(&batch)
    }

    /// Runs `read` on one snapshot of the store where the store has them
    /// (one read transaction instead of one per query); a commit inside
    /// ends the snapshot first, so what is read after it is read afresh.
    /// The default just runs `read`.
    ///
    /// # Errors
    /// Whatever `read` returns; storage errors.
    fn read_snapshot(&self, read: &mut dyn FnMut() -> crate::Result<()>) -> crate::Result<()> {
        read()
    }

    /// A value that differs whenever what this handle reads may differ
    /// from what it read when it last gave the same value: inside
    /// [`Backend::read_snapshot`], that snapshot's. `None` where the store
    /// gives none (the default): nothing may then be assumed unchanged.
    ///
    /// # Errors
    /// Storage errors.
    fn version(&self) -> crate::Result<Option<[u64; 2]>> {
        Ok(None)
    }
}

/// A SQLite store for unit tests whose commits go through `commit` (which
/// may refuse a batch, let another writer in first, or commit it to
/// `inner`). With `exclusive`, a commit that keeps writers out goes to
/// `inner`; without, it is built and then committed like any other, as a
/// remote store does.
#[cfg(test)]
pub(crate) struct Hooked {
    pub(crate) inner: SqliteBackend,
    #[allow(clippy::type_complexity)]
    pub(crate) commit: Box<dyn Fn(&SqliteBackend, &Batch) -> Result<Changes, CommitError>>,
    pub(crate) exclusive: bool,
}

#[cfg(test)]
impl std::fmt::Debug for Hooked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hooked").finish_non_exhaustive()
    }
}

#[cfg(test)]
impl Backend for Hooked {
    fn location(&self) -> String {
        self.inner.location()
    }
    fn header(&self) -> crate::Result<VaultRow> {
        self.inner.header()
    }
    fn identities(&self) -> crate::Result<Vec<IdentityRow>> {
        self.inner.identities()
    }
    fn identity(&self, uuid: &str) -> crate::Result<Option<IdentityRow>> {
        self.inner.identity(uuid)
    }
    fn identity_by_name(&self, name: &str) -> crate::Result<Option<IdentityRow>> {
        self.inner.identity_by_name(name)
    }
    fn grants(&self, identity_uuid: &str) -> crate::Result<Vec<GrantRow>> {
        self.inner.grants(identity_uuid)
    }
    fn grant_for(&self, identity_uuid: &str, recipient: &[u8]) -> crate::Result<Option<GrantRow>> {
        self.inner.grant_for(identity_uuid, recipient)
    }
    fn record(
        &self,
        identity_uuid: &str,
        kind: u8,
        uuid: &str,
    ) -> crate::Result<Option<RecordRow>> {
        self.inner.record(identity_uuid, kind, uuid)
    }
    fn records_by_index(
        &self,
        identity_uuid: &str,
        kind: u8,
        blind_index: &[u8],
    ) -> crate::Result<Vec<RecordRow>> {
        self.inner
            .records_by_index(identity_uuid, kind, blind_index)
    }
    fn records(&self, identity_uuid: &str, query: &RecordQuery) -> crate::Result<Vec<RecordRow>> {
        self.inner.records(identity_uuid, query)
    }
    fn tree_nodes(&self, identity_uuid: &str, ids: &[u32]) -> crate::Result<Vec<(u32, Vec<u8>)>> {
        self.inner.tree_nodes(identity_uuid, ids)
    }
    fn session(&self, session_id: &str) -> crate::Result<Option<SessionRow>> {
        self.inner.session(session_id)
    }
    fn commit(&self, batch: &Batch) -> Result<Changes, CommitError> {
        (self.commit)(&self.inner, batch)
    }
    fn commit_exclusive(
        &self,
        build: &mut dyn FnMut() -> crate::Result<Batch>,
    ) -> Result<Changes, CommitError> {
        if self.exclusive {
            self.inner.commit_exclusive(build)
        } else {
            let batch = build()?;
            self.commit(&batch)
        }
    }
}

#[cfg(test)]
thread_local! {
    /// Test hook: fail the next commit on this thread after applying this
    /// many writes, as a crash in the middle of a batch would.
    pub(crate) static FAIL_AFTER_WRITES: std::cell::Cell<Option<usize>> =
        const { std::cell::Cell::new(None) };
}

#[cfg(test)]
thread_local! {
    /// Test hook: let this many more commits (with writes) on this thread
    /// through, then fail the next one before it applies anything, as a
    /// process killed between two transactions would leave the store.
    pub(crate) static FAIL_AFTER_COMMITS: std::cell::Cell<Option<usize>> =
        const { std::cell::Cell::new(None) };
}

/// Called by backends before applying write `i`: the injected failures of
/// the tests, never anything in a normal build.
#[allow(clippy::unnecessary_wraps)]
pub(crate) fn injected_failure(i: usize) -> Result<(), CommitError> {
    #[cfg(test)]
    if i == 0
        && let Some(n) = FAIL_AFTER_COMMITS.with(std::cell::Cell::get)
    {
        if n == 0 {
            return Err(CommitError::Failed(Error::Storage(
                "injected stop between two commits".into(),
            )));
        }
        FAIL_AFTER_COMMITS.with(|f| f.set(Some(n - 1)));
    }
    #[cfg(test)]
    if FAIL_AFTER_WRITES.with(|f| f.get()) == Some(i) {
        FAIL_AFTER_WRITES.with(|f| f.set(None));
        return Err(CommitError::Failed(Error::Storage(
            "injected failure in the middle of a batch".into(),
        )));
    }
    let _ = i;
    Ok(())
}
