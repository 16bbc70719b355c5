//! The records of one identity — passwords, secrets and TOTP enrolments —
//! opened with its identity key. Reads go straight to the backend; every
//! write is one batch guarded by the identity's key epoch (and by the
//! record's version or the name's absence for read-modify-writes), retried
//! when a concurrent writer wins a race.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use uuid::Uuid;
use zeroize::Zeroizing;

use crate::backend::{
    Backend, Batch, CommitError, Conflict, IdentityRow, Precondition, RecordQuery, RecordRow, Write,
};
use crate::clock::{Clock, SystemClock, now_rfc3339};
use crate::error::{Candidate, Error, Result};
use crate::keys::SecretKey;
use crate::model::Identity;
use crate::names::{self, RecordName};
use crate::primitives::random_bytes;
use crate::records::{
    ExportSet, IfExists, ImportReport, ImportSet, KIND_PASSWORD, KIND_SECRET, KIND_TOTP,
    NewPassword, PasswordBody, PasswordEdit, PasswordEntry, PasswordListing, RecordBody,
    SecretBody, SecretEntry, SecretListing, Skipped, TotpBody, TotpEntry,
};
use crate::recovery::WrappedKey;
use crate::sealer::{Head, HeadExt, RecordSealer, xor_into};
use crate::secret::SecretString;
use crate::state::{OnConflict, VaultState, transact};
use crate::totp::{self, TotpAlgorithm, TotpCode, TotpParams};
use crate::tree::{Tree, bucket_of, in_slot, leaf_id, sibling_ids, writes_in_slot};

/// The records of one identity, opened with its identity key.
pub struct IdentityVault<'v> {
    backend: &'v dyn Backend,
    identity: Identity,
    /// The keys of the epoch this handle opened (replaced when the
    /// identity's key is rotated under it, see [`IdentityVault::settled`]).
    sealer: std::cell::RefCell<RecordSealer>,
    /// The sequence of the newest head this handle read or wrote (`None`:
    /// the identity has no head yet, SPEC §4b).
    head_seq: std::cell::Cell<Option<u64>>,
    /// Inside a write: the records it replaces are proven by the head
    /// update itself (their buckets are checked there), not one by one.
    writing: std::cell::Cell<bool>,
    /// The identity key as wrapped under the root key, when the owner
    /// opened it (for the client to remember, SPEC §4d).
    wrapped_key: std::cell::RefCell<Option<WrappedKey>>,
    /// Opens the identity again with the same credential, after its key
    /// epoch moved (a rotation by another process).
    reopen: Option<Reopen<'v>>,
    /// Inside [`IdentityVault::settled`]: nested calls do not retry.
    settling: std::cell::Cell<bool>,
}

/// How an [`IdentityVault`] opens its identity again, with the credential
/// it was opened with, once the identity's key was rotated.
pub(crate) type Reopen<'v> = Box<dyn Fn() -> Result<IdentityVault<'v>> + 'v>;

/// How many times one call reopens the identity after its key epoch moved
/// before it reports what it found.
const REOPENS: u32 = 8;

/// Records per page when the whole record set is read.
const PAGE: usize = 2048;

impl std::fmt::Debug for IdentityVault<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentityVault")
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

fn params_of(body: &TotpBody) -> Result<TotpParams> {
    let bad = || Error::tampered(format!("TOTP record {:?}", body.name));
    let params = TotpParams {
        secret: totp::decode_base32_secret(&body.secret).map_err(|_| bad())?,
        algorithm: TotpAlgorithm::parse(&body.algorithm).map_err(|_| bad())?,
        digits: body.digits,
        period: body.period,
        issuer: body.issuer.clone(),
        account: body.account.clone(),
    };
    params.validate().map_err(|_| bad())?;
    Ok(params)
}

impl<'v> IdentityVault<'v> {
    /// The one constructor: the identity's row and its unwrapped key.
    pub(crate) fn new(state: &'v VaultState, row: &IdentityRow, key: &SecretKey) -> Result<Self> {
        let mut sealer = RecordSealer::new(state.vault_id, &row.uuid, row.key_epoch, key)?;
        let head_seq = match &row.head {
            Some(h) => {
                let head = sealer.open_head(h)?;
                sealer.follow(&head)?;
                Some(head.seq)
            }
            None => None,
        };
        Ok(IdentityVault {
            backend: state.backend.as_ref(),
            identity: Identity::from(row),
            sealer: std::cell::RefCell::new(sealer),
            head_seq: std::cell::Cell::new(head_seq),
            writing: std::cell::Cell::new(false),
            wrapped_key: std::cell::RefCell::new(None),
            reopen: None,
            settling: std::cell::Cell::new(false),
        })
    }

    /// Keeps the wrapped key the owner opened this identity with.
    pub(crate) fn with_wrapped_key(self, key: WrappedKey) -> Self {
        self.wrapped_key.replace(Some(key));
        self
    }

    /// Lets this handle follow the identity through rotations: `reopen`
    /// opens it again with the same credential.
    pub(crate) fn with_reopen(mut self, reopen: Reopen<'v>) -> Self {
        self.reopen = Some(reopen);
        self
    }

    fn sealer(&self) -> std::cell::Ref<'_, RecordSealer> {
        self.sealer.borrow()
    }

    /// Runs one public operation so that a rotation by another process
    /// cannot make it lie or fail: when it fails (a record "not found"
    /// under the old epoch's blind index, a write whose epoch precondition
    /// was lost, a row sealed under the new key) and the identity's key
    /// epoch has moved since this handle opened it, the identity is opened
    /// again with the same credential and the operation runs again, at most
    /// [`REOPENS`] times, after a short random pause. A revoked agent's
    /// reopening fails with [`Error::Denied`]. Nested calls run once: the
    /// outermost retries.
    fn settled<T>(&self, mut op: impl FnMut() -> Result<T>) -> Result<T> {
        if self.settling.replace(true) {
            return op();
        }
        let mut run = || {
            for n in 0.. {
                let r = op();
                match &r {
                    Err(e) if n < REOPENS && self.reopened(e)? => crate::state::backoff(n)?,
                    _ => return r,
                }
            }
            unreachable!("the loop returns")
        };
        let r = run();
        self.settling.set(false);
        r
    }

    /// After an operation failed with `e`: whether the identity's key epoch
    /// moved since this handle opened it, in which case it is opened again.
    fn reopened(&self, e: &Error) -> Result<bool> {
        let Some(reopen) = &self.reopen else {
            return Ok(false);
        };
        if !matches!(
            e,
            Error::NotFound(_) | Error::Conflict(_) | Error::Integrity(_) | Error::Unavailable(_)
        ) {
            return Ok(false);
        }
        match self.backend.identity(&self.identity.uuid)? {
            Some(row) if row.key_epoch != self.sealer().epoch() => {}
            _ => return Ok(false),
        }
        let fresh = reopen()?;
        self.sealer.replace(fresh.sealer.into_inner());
        if let Some(key) = fresh.wrapped_key.into_inner() {
            self.wrapped_key.replace(Some(key));
        }
        if let Some(seq) = fresh.head_seq.get() {
            self.note_seq(seq);
        }
        Ok(true)
    }

    /// The identity key as wrapped under the root key, as the owner opened
    /// it (`None` for an agent): what a client keeps outside the store to
    /// recover from a rolled-back identity row
    /// ([`crate::RotateOptions::memory`]).
    pub fn wrapped_key(&self) -> Option<WrappedKey> {
        self.wrapped_key.borrow().clone()
    }

    /// The identity these records belong to.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// The sequence number of the identity's newest head this handle has
    /// read or written: clients remember it outside the vault and refuse a
    /// lower one later (a rollback). `None` for an identity made before
    /// heads, until its first write.
    pub fn head_seq(&self) -> Option<u64> {
        self.head_seq.get()
    }

    /// The identity's head as stored now: its bytes (for the precondition
    /// of a write) and, if it has one, its checked content. An identity made
    /// before heads has none until its first write.
    pub(crate) fn current_head(&self) -> Result<(Option<Vec<u8>>, Option<Head>)> {
        let row = self.backend.identity(&self.identity.uuid)?.ok_or_else(|| {
            Error::NotFound(format!("identity {:?} was deleted", self.identity.name))
        })?;
        if row.key_epoch != self.sealer().epoch() {
            return Err(Error::Unavailable(
                "the identity's key was rotated while this command ran; nothing was written, try again".into(),
            ));
        }
        let head = row
            .head
            .as_deref()
            .map(|h| self.sealer().open_head(h))
            .transpose()?;
        if let Some(h) = &head {
            self.note_seq(h.seq);
        }
        Ok((row.head, head))
    }

    /// Reads the identity's head again and returns its sequence (as
    /// [`IdentityVault::head_seq`]). A client compares it with the newest
    /// it remembers, read *before* this call.
    ///
    /// # Errors
    /// [`Error::Integrity`] if the head fails to authenticate.
    pub fn refresh_head(&self) -> Result<Option<u64>> {
        self.settled(|| {
            self.current_head()?;
            Ok(self.head_seq())
        })
    }

    /// Runs `read` between two reads of the head until both agree, so that
    /// what it read belongs to that head (a write in between makes it read
    /// again). `read` gets the head (`None`: the identity has none yet).
    fn under_one_head<T>(
        &self,
        mut read: impl FnMut(Option<&Head>) -> Result<T>,
    ) -> Result<(Option<Vec<u8>>, Option<Head>, T)> {
        for n in 0..8 {
            let (bytes, head) = self.current_head()?;
            let value = read(head.as_ref())?;
            if self.current_head()?.0 == bytes {
                return Ok((bytes, head, value));
            }
            if n >= 2 {
                crate::state::backoff(n - 2)?;
            }
        }
        // Writers of the identity kept winning: read once with them kept
        // out (an empty batch commits nothing).
        let mut read_once = None;
        let locked = self.backend.commit_exclusive(&mut || {
            let (bytes, head) = self.current_head()?;
            let value = read(head.as_ref())?;
            read_once = Some((bytes, head, value));
            Ok(Batch::new())
        });
        match (locked, read_once) {
            (Ok(_), Some(read)) => Ok(read),
            (Err(CommitError::Failed(e)), _) => Err(e),
            _ => Err(Error::Unavailable(
                "the identity kept changing while it was read (busy with concurrent writers); try again".into(),
            )),
        }
    }

    /// One bucket's records as stored, and the value they give its leaf.
    fn bucket(&self, bucket: u16) -> Result<(Vec<RecordRow>, [u8; 32])> {
        let rows = self.backend.records(
            &self.identity.uuid,
            &RecordQuery {
                bucket: Some(bucket),
                ..RecordQuery::default()
            },
        )?;
        let value = self
            .sealer()
            .bucket_values(&rows)?
            .get(&bucket)
            .copied()
            .unwrap_or([0; 32]);
        Ok((rows, value))
    }

    fn note_seq(&self, seq: u64) {
        self.head_seq
            .set(Some(self.head_seq.get().map_or(seq, |s| s.max(seq))));
    }

    /// Adds the head update to a batch of record writes: the precondition
    /// that the head is as read, and the new head (next sequence, the
    /// commitment updated by each written record's leaf).
    fn with_head(&self, batch: &mut Batch) -> Result<u64> {
        let old: HashMap<&str, &[u8]> = batch
            .preconditions
            .iter()
            .filter_map(|p| match p {
                Precondition::RecordUnchanged { uuid, ciphertext } => {
                    Some((uuid.as_str(), ciphertext.as_slice()))
                }
                _ => None,
            })
            .collect();
        let unread = |uuid: &str| {
            Error::Storage(format!("record {uuid} is written without being read").into())
        };
        // Each touched bucket's change: the XOR of the leaves written and
        // of the leaves they replace.
        let mut deltas: BTreeMap<u16, [u8; 32]> = BTreeMap::new();
        let replaced: BTreeSet<u16> = old.keys().map(|u| bucket_of(u)).collect::<Result<_>>()?;
        let mut flip = |uuid: &str, kind: u8, ct: &[u8]| -> Result<()> {
            let d = deltas.entry(bucket_of(uuid)?).or_insert([0; 32]);
            xor_into(d, &self.sealer().leaf(uuid, kind, ct)?);
            Ok(())
        };
        for w in &batch.writes {
            match w {
                Write::InsertRecord(r) => flip(&r.uuid, r.kind, &r.ciphertext)?,
                Write::UpdateRecord(r) => {
                    let before = old.get(r.uuid.as_str()).ok_or_else(|| unread(&r.uuid))?;
                    flip(&r.uuid, r.kind, before)?;
                    flip(&r.uuid, r.kind, &r.ciphertext)?;
                }
                Write::DeleteRecord { uuid, kind, .. } => {
                    let before = old.get(uuid.as_str()).ok_or_else(|| unread(uuid))?;
                    flip(uuid, *kind, before)?;
                }
                _ => {}
            }
        }
        let (bytes, head, mut tree, rebuilt) = self.tree_for(&deltas, &replaced)?;
        for (b, d) in &deltas {
            let mut v = tree.get(leaf_id(*b));
            xor_into(&mut v, d);
            tree.set_leaf(*b, v);
        }
        let seq = head.seq.saturating_add(1);
        batch.require(Precondition::IdentityHead {
            identity_uuid: self.identity.uuid.clone(),
            head: bytes,
        });
        if rebuilt {
            batch.write(Write::ClearTree(self.identity.uuid.clone()));
        }
        let nodes = if rebuilt {
            tree.all_nodes()
        } else {
            tree.changes()
        };
        batch
            .write(Write::SetTreeNodes {
                identity_uuid: self.identity.uuid.clone(),
                nodes: writes_in_slot(nodes, head.ext.slot),
            })
            .write(Write::SetIdentityHead {
                uuid: self.identity.uuid.clone(),
                head: self.sealer().seal_head_with(seq, &tree.root(), &head.ext),
            });
        Ok(seq)
    }

    /// The head's bytes and content (a default head at sequence 0 for an
    /// identity without one), and the stored path of every touched
    /// bucket, checked against the root under the head's MAC before it is
    /// built on; the buckets of the records the write replaces must hold
    /// what their leaves commit to, so the versions the write read are the
    /// current ones. An identity made before heads gets its whole tree from
    /// what it holds (`rebuilt`).
    fn tree_for(
        &self,
        deltas: &BTreeMap<u16, [u8; 32]>,
        replaced: &BTreeSet<u16>,
    ) -> Result<(Option<Vec<u8>>, Head, Tree, bool)> {
        let (bytes, head, (tree, leaves)) = self.under_one_head(|head| {
            let Some(head) = head else {
                let rows = self
                    .backend
                    .records(&self.identity.uuid, &RecordQuery::default())?;
                return Ok((self.sealer().tree(&rows)?, BTreeMap::new()));
            };
            let ids: Vec<u32> = if deltas.len() > 256 {
                Vec::new()
            } else {
                deltas
                    .keys()
                    .flat_map(|b| std::iter::once(leaf_id(*b)).chain(sibling_ids(*b)))
                    .collect()
            };
            let stored = self
                .backend
                .tree_nodes(&self.identity.uuid, &in_slot(&ids, head.ext.slot))?;
            let tree = Tree::from_slot(stored, head.ext.slot)?;
            let mut leaves = BTreeMap::new();
            for b in replaced {
                leaves.insert(*b, self.bucket(*b)?.1);
            }
            Ok((tree, leaves))
        })?;
        let Some(head) = head else {
            let none = Head {
                seq: 0,
                epoch: self.sealer().epoch(),
                commitment: [0; 32],
                ext: HeadExt::default(),
            };
            return Ok((bytes, none, tree, true));
        };
        for b in deltas.keys() {
            let leaf = tree.get(leaf_id(*b));
            let stale = leaves.get(b).is_some_and(|v| *v != leaf);
            if stale || tree.root_through(*b, &leaf) != head.commitment {
                return Err(Error::Integrity(format!(
                    "rollback or deletion detected: the records or record tree of identity {:?} do not match its head (sequence {})",
                    self.identity.name, head.seq
                )));
            }
        }
        Ok((bytes, head, tree, false))
    }

    /// Every record of the identity, checked against the head's commitment:
    /// a deleted, added, older or swapped record is a rollback.
    fn all_records_checked(&self) -> Result<Vec<RecordRow>> {
        self.paged_checked(
            None,
            Vec::new,
            |_, rows| Ok(rows),
            |all, rows| {
                all.extend(rows);
                Ok(())
            },
        )
    }

    /// The precondition of every write: the identity still exists and its
    /// key was not rotated since this vault was opened, so nothing is
    /// sealed under a key that has just been retired.
    fn epoch_holds(&self) -> Precondition {
        Precondition::IdentityEpoch {
            identity_uuid: self.identity.uuid.clone(),
            key_epoch: self.sealer().epoch(),
        }
    }

    /// A batch guarded by [`IdentityVault::epoch_holds`].
    fn batch(&self) -> Batch {
        let mut b = Batch::new();
        b.require(self.epoch_holds());
        b
    }

    /// Commits the batches `attempt` builds: a lost epoch is an error (the
    /// identity was deleted or rotated), another lost precondition a retry,
    /// a duplicate name the error `duplicate` makes.
    fn transact<T>(
        &self,
        mut attempt: impl FnMut() -> Result<(Batch, T)>,
        duplicate: impl Fn() -> Error,
    ) -> Result<T> {
        let next_seq = std::cell::Cell::new(0);
        let with_head = || {
            self.writing.set(true);
            let built = attempt();
            self.writing.set(false);
            let (mut batch, value) = built?;
            next_seq.set(self.with_head(&mut batch)?);
            Ok((batch, value))
        };
        let (value, _) = transact(self.backend, with_head, |preconditions, c| {
            self.on_conflict(preconditions, c, &duplicate)
        })?;
        self.note_seq(next_seq.get());
        Ok(value)
    }

    /// What a write of this identity does when it loses: a lost epoch is
    /// an error (the identity was deleted or rotated), a duplicate the
    /// error `duplicate` makes, anything else a retry.
    fn on_conflict(
        &self,
        preconditions: &[Precondition],
        c: &Conflict,
        duplicate: &dyn Fn() -> Error,
    ) -> OnConflict {
        match c {
            Conflict::Precondition(i)
                if matches!(
                    preconditions.get(*i),
                    Some(Precondition::IdentityEpoch { .. })
                ) =>
            {
                match self.backend.identity(&self.identity.uuid) {
                    Ok(None) => OnConflict::Fail(Error::NotFound(format!(
                        "identity {:?} was deleted",
                        self.identity.name
                    ))),
                    Ok(Some(_)) => OnConflict::Fail(Error::Unavailable(
                        "the identity's key was rotated while this command ran; nothing was written, try again".into(),
                    )),
                    Err(e) => OnConflict::Fail(e),
                }
            }
            Conflict::Duplicate(_) => OnConflict::Fail(duplicate()),
            Conflict::Precondition(_) | Conflict::Missing(_) => OnConflict::Retry,
        }
    }

    /// The current version of a record that a lookup found, proven by its
    /// bucket and the siblings on its path against the root under the
    /// head's MAC: a record replayed in an older version, planted, or
    /// hidden beside it is exit 5.
    fn proven(&self, row: RecordRow) -> Result<RecordRow> {
        if self.writing.get() {
            // `with_head` checks the buckets of every record a write
            // replaces against the root before the batch is committed.
            return Ok(row);
        }
        let bucket = bucket_of(&row.uuid)?;
        let (_, head, read) = self.under_one_head(|head| {
            let Some(head) = head else {
                return Ok(None);
            };
            let slot = head.ext.slot;
            let tree = Tree::from_slot(
                self.backend
                    .tree_nodes(&self.identity.uuid, &in_slot(&sibling_ids(bucket), slot))?,
                slot,
            )?;
            Ok(Some((self.bucket(bucket)?, tree)))
        })?;
        // An identity made before heads: nothing to prove against.
        let (Some(head), Some(((rows, value), tree))) = (head, read) else {
            return Ok(row);
        };
        let current = rows
            .into_iter()
            .find(|r| r.uuid == row.uuid && r.kind == row.kind);
        match current {
            Some(r) if tree.root_through(bucket, &value) == head.commitment => Ok(r),
            _ => Err(Error::Integrity(format!(
                "rollback or deletion detected: record {} is not the version identity {:?}'s head (sequence {}) commits to",
                row.uuid, self.identity.name, head.seq
            ))),
        }
    }

    /// "Not found", once the whole record set has been checked against the
    /// head: a record the head commits to but the store hides (or shows
    /// only in an older version) is a rollback, not an absence.
    fn not_found(&self, message: impl Into<String>) -> Error {
        match self.all_records_checked() {
            Ok(_) => Error::NotFound(message.into()),
            Err(e) => e,
        }
    }

    /// Reads every record of the identity page by page (uuid order, no
    /// page held after it is seen), under one head, and checks the whole
    /// set against the head's commitment. Each page's records of `kind` go
    /// to `open` on a worker thread (with the page's leaves), while the next
    /// page is read from the store; `visit` then adds what `open` made to a
    /// fresh `T` (a change of the head between pages starts over with a new
    /// one). Memory is two pages of rows, the bucket values, and what
    /// `visit` keeps.
    fn paged_checked<T, U: Send>(
        &self,
        kind: Option<u8>,
        init: impl Fn() -> T,
        open: impl Fn(&RecordSealer, Vec<RecordRow>) -> Result<U> + Sync,
        visit: impl Fn(&mut T, U) -> Result<()>,
    ) -> Result<T> {
        let sealer = self.sealer();
        let sealer: &RecordSealer = &sealer;
        let (_, head, (buckets, kept)) = self.under_one_head(|head| {
            let has_head = head.is_some();
            // One page's work: its leaves (summed per bucket), then `open`.
            let work = |rows: Vec<RecordRow>| -> Result<(Leaves, U)> {
                let leaves = if has_head {
                    in_parallel(sealer, &rows, |sealer, chunk| sealer.bucket_values(chunk))?
                        .into_iter()
                        .flatten()
                        .collect()
                } else {
                    Vec::new()
                };
                let rows = rows
                    .into_iter()
                    .filter(|r| kind.is_none_or(|k| r.kind == k))
                    .collect();
                Ok((leaves, open(sealer, rows)?))
            };
            let work = &work;
            std::thread::scope(|s| {
                // every bucket's value, dense (2 MiB), for the root at the end
                let mut buckets = if has_head {
                    vec![[0u8; 32]; 1 << 16]
                } else {
                    Vec::new()
                };
                let mut kept = init();
                let mut merge = |done: Result<(Leaves, U)>| -> Result<()> {
                    let (leaves, made) = done?;
                    for (b, v) in leaves {
                        xor_into(&mut buckets[usize::from(b)], &v);
                    }
                    visit(&mut kept, made)
                };
                // The worker takes one page at a time; without a worker (a
                // thread limit) each page is done here once read.
                let (to_worker, pages) = std::sync::mpsc::sync_channel::<Vec<RecordRow>>(1);
                let (done, results) = std::sync::mpsc::channel();
                let worker = std::thread::Builder::new()
                    .spawn_scoped(s, move || {
                        for rows in pages {
                            if done.send(work(rows)).is_err() {
                                break;
                            }
                        }
                    })
                    .is_ok();
                let lost = || Error::Crypto("a worker thread");
                let (mut after, mut in_flight) = (None, false);
                loop {
                    let rows = self.page(after.take())?;
                    let next = (rows.len() == PAGE)
                        .then(|| rows.last().map(|r| r.uuid.clone()))
                        .flatten();
                    if in_flight {
                        merge(results.recv().map_err(|_| lost())?)?;
                    }
                    if worker {
                        to_worker.send(rows).map_err(|_| lost())?;
                        in_flight = true;
                    } else {
                        merge(work(rows))?;
                    }
                    match next {
                        Some(last) => after = Some(last),
                        None => break,
                    }
                }
                drop(to_worker);
                if in_flight {
                    merge(results.recv().map_err(|_| lost())?)?;
                }
                Ok((buckets, kept))
            })
        })?;
        if let Some(head) = head
            && Tree::root_of_all(&buckets) != head.commitment
        {
            return Err(Error::Integrity(format!(
                "rollback or deletion detected: the records of identity {:?} are not the set its head (sequence {}) commits to",
                self.identity.name, head.seq
            )));
        }
        Ok(kept)
    }

    /// The listing of every record of body type `B`, made by `make` as
    /// each is opened (in parallel where that pays; the body, secret
    /// included, dropped at once), from the identity's records read page by
    /// page and checked against its head as a whole; sorted by `order`
    /// (unstably: `order` must be total).
    fn listing<B: RecordBody, T: Send>(
        &self,
        make: impl Fn(String, &B) -> T + Sync,
        order: impl Fn(&T, &T) -> std::cmp::Ordering,
    ) -> Result<Vec<T>> {
        self.settled(|| {
            let pages = self.paged_checked(
                Some(B::KIND),
                Vec::new,
                |sealer, rows| {
                    open_all(sealer, &rows, |sealer, r| {
                        Ok(make(r.uuid.clone(), &sealer.open_row::<B>(r)?))
                    })
                },
                |pages, page| {
                    pages.push(page);
                    Ok(())
                },
            )?;
            let mut out = concat_pages(pages);
            out.sort_unstable_by(&order);
            Ok(out)
        })
    }

    /// Every secret without its value, by key (keys are unique).
    ///
    /// # Errors
    /// [`Error::Integrity`] if the records are not the set the head commits
    /// to or any fails to open.
    pub fn secret_listing(&self) -> Result<Vec<SecretListing>> {
        self.listing(SecretListing::from_body, |a: &SecretListing, b| {
            a.key().cmp(b.key())
        })
    }

    /// Every password entry without its password, by domain, username and
    /// creation time (then uuid, the order the rows are read in).
    ///
    /// # Errors
    /// As [`IdentityVault::secret_listing`].
    pub fn password_listing(&self) -> Result<Vec<PasswordListing>> {
        self.listing(PasswordListing::from_body, |a: &PasswordListing, b| {
            (a.domain(), a.username(), a.created_dt(), a.uuid()).cmp(&(
                b.domain(),
                b.username(),
                b.created_dt(),
                b.uuid(),
            ))
        })
    }

    /// The records of one kind, the whole set checked against the head.
    fn records_of_kind(&self, kind: u8) -> Result<Vec<RecordRow>> {
        let mut rows = self.all_records_checked()?;
        rows.retain(|r| r.kind == kind);
        Ok(rows)
    }

    fn open_password(&self, row: &RecordRow) -> Result<PasswordEntry> {
        let body: PasswordBody = self.sealer().open_row(row)?;
        Ok(PasswordEntry::from_body(row.uuid.clone(), &body))
    }

    fn open_secret(&self, row: &RecordRow) -> Result<SecretEntry> {
        let body: SecretBody = self.sealer().open_row(row)?;
        Ok(SecretEntry::from_body(row.uuid.clone(), &body))
    }

    // ---- passwords ----

    /// Stores a new password entry; an entry with the same domain and
    /// username is a conflict (see [`IdentityVault::create_password_with`]).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a bad domain or an empty password;
    /// [`Error::Conflict`] if the entry exists.
    pub fn create_password(&self, new: &NewPassword) -> Result<PasswordEntry> {
        self.create_password_with(new, IfExists::Conflict)
            .map(|(e, _)| e)
    }

    /// The entry with this (cleaned) domain and username, if any.
    fn password_named(
        &self,
        domain: &str,
        username: Option<&str>,
    ) -> Result<Option<PasswordEntry>> {
        for row in self.indexed_rows(KIND_PASSWORD, domain)? {
            let row = self.proven(row)?;
            let e = self.open_password(&row)?;
            if e.username.as_deref() == username {
                return Ok(Some(e));
            }
        }
        Ok(None)
    }

    /// Stores a password entry unless one with the same domain and username
    /// exists; then `if_exists` decides: a conflict naming its uuid, an
    /// update of its password (and notes, when given), or the entry as it
    /// is. Retried creates stay idempotent. Returns the entry and whether it
    /// was created.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a bad domain or an empty password;
    /// [`Error::Conflict`] for an existing entry under
    /// [`IfExists::Conflict`].
    pub fn create_password_with(
        &self,
        new: &NewPassword,
        if_exists: IfExists,
    ) -> Result<(PasswordEntry, bool)> {
        self.settled(|| {
            let domain = names::clean_domain(&new.domain)?;
            if new.password.expose().is_empty() {
                return Err(Error::invalid("the password is empty"));
            }
            let username = new.username.clone().filter(|u| !u.is_empty());
            for _ in 0..4 {
                match (
                    self.password_named(&domain, username.as_deref())?,
                    if_exists,
                ) {
                    (Some(e), IfExists::Conflict) => {
                        return Err(Error::Conflict(format!(
                            "a password for {domain} with {} exists already: {}",
                            username
                                .as_deref()
                                .map_or("no username".to_string(), |u| format!("username {u:?}")),
                            e.uuid
                        )));
                    }
                    (Some(e), IfExists::Keep) => return Ok((e, false)),
                    (Some(e), IfExists::Update) => {
                        let edit = PasswordEdit {
                            password: Some(new.password.clone()),
                            notes: new.notes.clone(),
                            ..PasswordEdit::default()
                        };
                        return Ok((self.edit_password(&e.uuid, None, &edit)?, false));
                    }
                    (None, _) => {}
                }
                let now = now_rfc3339()?;
                let body = PasswordBody {
                    domain: domain.clone(),
                    username: username.clone(),
                    password: new.password.expose().to_string(),
                    notes: new.notes.clone().filter(|n| !n.is_empty()),
                    created_dt: now.clone(),
                    updated_dt: now,
                };
                let uuid = Uuid::new_v4().to_string();
                let row = self.sealer().seal_row(&uuid, &body)?;
                // Each attempt reads the head, then looks for the entry, and is
                // guarded by that head: an entry created meanwhile fails the
                // commit (and the next attempt finds it).
                let appeared = std::cell::Cell::new(false);
                let r = self.transact(
                    || {
                        let (head, _) = self.current_head()?;
                        if self.password_named(&domain, username.as_deref())?.is_some() {
                            appeared.set(true);
                            return Err(Error::Conflict("created meanwhile".into()));
                        }
                        let mut batch = self.batch();
                        batch
                            .require(Precondition::IdentityHead {
                                identity_uuid: self.identity.uuid.clone(),
                                head,
                            })
                            .write(Write::InsertRecord(row.clone()));
                        Ok((batch, ()))
                    },
                    duplicate_record,
                );
                match r {
                    Ok(()) => return Ok((PasswordEntry::from_body(uuid, &body), true)),
                    // Created meanwhile: decide again, by `if_exists`.
                    Err(_) if appeared.get() => {}
                    Err(e) => return Err(e),
                }
            }
            Err(Error::Conflict(format!(
                "the identity {:?} kept changing while a password was created; retry",
                self.identity.name
            )))
        })
    }

    /// Imports passwords, secrets and TOTP seeds in one transaction: an
    /// entry that exists (same domain and username, key, or TOTP name) is
    /// updated, keeping its uuid and creation time; within the set, a later
    /// entry for the same one wins. Invalid entries are skipped with their
    /// reason, never half-written. With `dry_run` nothing is written and
    /// the report says what would happen.
    ///
    /// # Errors
    /// Storage and integrity errors (nothing is written then).
    pub fn import(&self, set: &ImportSet, dry_run: bool) -> Result<ImportReport> {
        self.settled(|| {
            let mut skipped = Vec::new();
            // Validate first: what fails is reported, not written.
            let mut passwords: Vec<(String, Option<String>, &NewPassword)> = Vec::new();
            for p in &set.passwords {
                let item = format!("{} {}", p.domain, p.username.as_deref().unwrap_or(""))
                    .trim()
                    .to_string();
                match names::clean_domain(&p.domain) {
                    Err(e) => skipped.push(skip(&item, &e)),
                    Ok(_) if p.password.expose().is_empty() => {
                        skipped.push(skip(&item, &Error::invalid("the password is empty")));
                    }
                    Ok(d) => passwords.push((d, p.username.clone().filter(|u| !u.is_empty()), p)),
                }
            }
            let mut secrets = Vec::new();
            for (k, v, n) in &set.secrets {
                match RecordName::secret(k) {
                    Err(e) => skipped.push(skip(k, &e)),
                    Ok(key) => secrets.push((key, v, n)),
                }
            }
            let mut totps = Vec::new();
            for (name, params) in &set.totps {
                match params.validate().and_then(|()| RecordName::totp(name)) {
                    Err(e) => skipped.push(skip(name, &e)),
                    Ok(n) => totps.push((n, params)),
                }
            }
            let build = || -> Result<(Batch, (usize, usize))> {
                let now = now_rfc3339()?;
                let mut batch = self.batch();
                let mut plan = ImportPlan::default();
                // One read of the identity's records, checked against its head
                // once, for all three kinds.
                let mut passwords_now = HashMap::new();
                let mut named_now = HashMap::new();
                for r in self.all_records_checked()? {
                    if r.kind == KIND_PASSWORD {
                        let e = self.open_password(&r)?;
                        passwords_now.insert((e.domain.clone(), e.username.clone()), (r, e));
                    } else {
                        named_now.insert((r.kind, r.blind_index.clone()), r);
                    }
                }
                for (domain, username, p) in &passwords {
                    let key = (domain.clone(), username.clone());
                    let old = passwords_now
                        .get(&key)
                        .map(|(r, e)| (r, e.created_dt.clone()));
                    let slot_key = format!("{domain}\n{}", username.as_deref().unwrap_or(""));
                    let i = plan.slot(&mut batch, (KIND_PASSWORD, slot_key), old, &now);
                    let (uuid, created_dt) = plan.entry(i);
                    let body = PasswordBody {
                        domain: domain.clone(),
                        username: username.clone(),
                        password: p.password.expose().to_string(),
                        notes: p.notes.clone().filter(|n| !n.is_empty()),
                        created_dt,
                        updated_dt: now.clone(),
                    };
                    plan.set(i, self.sealer().seal_row(&uuid, &body)?);
                }
                for (key, v, n) in &secrets {
                    let k = &key.name;
                    let old = match self
                        .filed(KIND_SECRET, key, |bi| named_now.get(&(KIND_SECRET, bi)))
                    {
                        Some(r) => Some((r, self.open_secret(r)?)),
                        None => None,
                    };
                    let old_notes = old.as_ref().and_then(|(_, e)| e.notes.clone());
                    let i = plan.slot(
                        &mut batch,
                        (KIND_SECRET, k.clone()),
                        old.map(|(r, e)| (r, e.created_dt.clone())),
                        &now,
                    );
                    let (uuid, created_dt) = plan.entry(i);
                    let body = SecretBody {
                        key: k.clone(),
                        value: v.expose().to_string(),
                        notes: (*n).clone().filter(|n| !n.is_empty()).or(old_notes),
                        created_dt,
                        updated_dt: now.clone(),
                    };
                    plan.set(i, self.sealer().seal_row(&uuid, &body)?);
                }
                for (totp_name, params) in &totps {
                    let name = &totp_name.name;
                    let old = match self
                        .filed(KIND_TOTP, totp_name, |bi| named_now.get(&(KIND_TOTP, bi)))
                    {
                        Some(r) => {
                            let b: TotpBody = self.sealer().open_row(r)?;
                            Some((r, b.created_dt.clone()))
                        }
                        None => None,
                    };
                    let i = plan.slot(&mut batch, (KIND_TOTP, name.clone()), old, &now);
                    let (uuid, created_dt) = plan.entry(i);
                    let body = totp_body(name, params, created_dt, now.clone());
                    plan.set(i, self.sealer().seal_row(&uuid, &body)?);
                }
                let counts = (plan.created, plan.updated);
                batch.writes.extend(plan.writes.into_iter().flatten());
                Ok((batch, counts))
            };
            let (created, updated) = if dry_run {
                build()?.1
            } else if passwords.is_empty() && secrets.is_empty() && totps.is_empty() {
                (0, 0)
            } else {
                self.transact(build, duplicate_record)?
            };
            Ok(ImportReport {
                created,
                updated,
                skipped,
            })
        })
    }

    /// Every entry of the identity — passwords, secrets and TOTP seeds —
    /// from one read checked against the identity's head, sorted as the
    /// listings are.
    ///
    /// # Errors
    /// [`Error::Integrity`] if the records are not the set the head commits
    /// to or any fails to open.
    pub fn export(&self) -> Result<ExportSet> {
        self.settled(|| {
            let mut set = ExportSet::default();
            for r in self.all_records_checked()? {
                match r.kind {
                    KIND_PASSWORD => set.passwords.push(self.open_password(&r)?),
                    KIND_SECRET => set.secrets.push(self.open_secret(&r)?),
                    KIND_TOTP => {
                        let body: TotpBody = self.sealer().open_row(&r)?;
                        set.totps.push((
                            TotpEntry::from_body(r.uuid.clone(), &body),
                            params_of(&body)?,
                        ));
                    }
                    _ => {}
                }
            }
            set.passwords.sort_by(|a, b| {
                (&a.domain, &a.username, &a.created_dt).cmp(&(
                    &b.domain,
                    &b.username,
                    &b.created_dt,
                ))
            });
            set.secrets.sort_by(|a, b| a.key.cmp(&b.key));
            set.totps.sort_by(|a, b| a.0.name.cmp(&b.0.name));
            Ok(set)
        })
    }

    /// Every password entry of the identity, by domain then username.
    ///
    /// # Errors
    /// [`Error::Integrity`] if any entry fails to open.
    pub fn passwords(&self) -> Result<Vec<PasswordEntry>> {
        self.settled(|| {
            let mut out = self
                .records_of_kind(KIND_PASSWORD)?
                .iter()
                .map(|r| self.open_password(r))
                .collect::<Result<Vec<_>>>()?;
            out.sort_by(|a, b| {
                (&a.domain, &a.username, &a.created_dt).cmp(&(
                    &b.domain,
                    &b.username,
                    &b.created_dt,
                ))
            });
            Ok(out)
        })
    }

    fn find_password_row(
        &self,
        selector: &str,
        username: Option<&str>,
    ) -> Result<(RecordRow, PasswordEntry)> {
        if let Ok(u) = Uuid::try_parse(selector)
            && let Some(row) =
                self.backend
                    .record(&self.identity.uuid, KIND_PASSWORD, &u.to_string())?
        {
            let row = self.proven(row)?;
            let entry = self.open_password(&row)?;
            return Ok((row, entry));
        }
        let domain = names::clean_domain(selector)?;
        let mut matches = Vec::new();
        for row in self.indexed_rows(KIND_PASSWORD, &domain)? {
            let row = self.proven(row)?;
            let entry = self.open_password(&row)?;
            if username.is_none_or(|u| entry.username.as_deref() == Some(u)) {
                matches.push((row, entry));
            }
        }
        match matches.len() {
            0 => Err(self.not_found(match username {
                Some(u) => format!("no password for {domain} with username {u:?}"),
                None => format!("no password for {domain}"),
            })),
            1 => Ok(matches.remove(0)),
            n => Err(Error::Ambiguous {
                message: format!("{n} passwords match {domain}; choose one by uuid or username"),
                candidates: matches
                    .iter()
                    .map(|(_, e)| Candidate {
                        uuid: e.uuid.clone(),
                        username: e.username.clone().unwrap_or_default(),
                    })
                    .collect(),
            }),
        }
    }

    /// One password entry, by uuid or by domain (optionally narrowed by
    /// username).
    ///
    /// # Errors
    /// [`Error::NotFound`]; [`Error::Ambiguous`] if several entries match.
    pub fn get_password(&self, selector: &str, username: Option<&str>) -> Result<PasswordEntry> {
        self.settled(|| self.find_password_row(selector, username).map(|(_, e)| e))
    }

    /// Changes a password entry, in one batch.
    ///
    /// # Errors
    /// As [`IdentityVault::get_password`], plus [`Error::InvalidInput`].
    pub fn edit_password(
        &self,
        selector: &str,
        username: Option<&str>,
        edit: &PasswordEdit,
    ) -> Result<PasswordEntry> {
        self.settled(|| {
            let new_domain = edit
                .domain
                .as_deref()
                .map(names::clean_domain)
                .transpose()?;
            if edit
                .password
                .as_ref()
                .is_some_and(|p| p.expose().is_empty())
            {
                return Err(Error::invalid("the password is empty"));
            }
            self.transact(
                || {
                    let (old_row, old) = self.find_password_row(selector, username)?;
                    let body = PasswordBody {
                        domain: new_domain.clone().unwrap_or(old.domain.clone()),
                        username: match &edit.username {
                            Some(u) => Some(u.clone()).filter(|u| !u.is_empty()),
                            None => old.username.clone(),
                        },
                        password: edit
                            .password
                            .as_ref()
                            .unwrap_or(&old.password)
                            .expose()
                            .to_string(),
                        notes: match &edit.notes {
                            Some(n) => Some(n.clone()).filter(|n| !n.is_empty()),
                            None => old.notes.clone(),
                        },
                        created_dt: old.created_dt.clone(),
                        updated_dt: now_rfc3339()?,
                    };
                    let mut batch = self.batch();
                    batch
                        .require(unchanged(&old_row))
                        .write(Write::UpdateRecord(
                            self.sealer().seal_row(&old.uuid, &body)?,
                        ));
                    Ok((batch, PasswordEntry::from_body(old.uuid.clone(), &body)))
                },
                duplicate_record,
            )
        })
    }

    /// Deletes a password entry.
    ///
    /// # Errors
    /// As [`IdentityVault::get_password`].
    pub fn delete_password(&self, selector: &str, username: Option<&str>) -> Result<PasswordEntry> {
        self.settled(|| {
            self.transact(
                || {
                    let (row, entry) = self.find_password_row(selector, username)?;
                    Ok((self.delete_batch(&row), entry))
                },
                duplicate_record,
            )
        })
    }

    fn delete_batch(&self, row: &RecordRow) -> Batch {
        let mut batch = self.batch();
        batch.require(unchanged(row)).write(Write::DeleteRecord {
            identity_uuid: self.identity.uuid.clone(),
            kind: row.kind,
            uuid: row.uuid.clone(),
        });
        batch
    }

    // ---- secrets ----

    /// Sets a secret; an existing key gets the new value (and the new notes,
    /// if given). Returns the entry and whether it was newly created.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a bad key.
    pub fn set_secret(
        &self,
        raw_key: &str,
        value: &SecretString,
        notes: Option<&str>,
    ) -> Result<(SecretEntry, bool)> {
        self.settled(|| {
            let name = RecordName::secret(raw_key)?;
            let key = &name.name;
            self.transact(
                || {
                    let now = now_rfc3339()?;
                    let existing = self.named_rows(KIND_SECRET, &name)?;
                    let mut batch = self.batch();
                    let (uuid, created_dt, old_notes) =
                        self.secret_slot(&mut batch, existing.first(), key, &now, || {
                            Ok(Uuid::new_v4().to_string())
                        })?;
                    let body = SecretBody {
                        key: key.to_string(),
                        value: value.expose().to_string(),
                        notes: match notes {
                            Some(n) => Some(n.to_string()).filter(|n| !n.is_empty()),
                            None => old_notes,
                        },
                        created_dt,
                        updated_dt: now,
                    };
                    let row = self.sealer().seal_row(&uuid, &body)?;
                    let created = existing.is_empty();
                    batch.write(if created {
                        Write::InsertRecord(row)
                    } else {
                        Write::UpdateRecord(row)
                    });
                    Ok((batch, (SecretEntry::from_body(uuid, &body), created)))
                },
                duplicate_record,
            )
        })
    }

    /// Sets many secrets in one batch (an import): each key is created or
    /// has its value replaced; a key given twice keeps its last value.
    /// Returns how many were created.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a bad key, before anything is written.
    pub fn import_secrets(&self, entries: &[(String, SecretString)]) -> Result<usize> {
        self.settled(|| {
            let entries = entries
                .iter()
                .map(|(k, v)| Ok((RecordName::secret(k)?, v)))
                .collect::<Result<Vec<_>>>()?;
            const PER_RECORD: usize = 16 + 24;
            self.transact(
                || {
                    // One OS random draw for every record's uuid and nonce,
                    // instead of two system calls per record; a fresh draw for
                    // each attempt, so no nonce ever seals twice.
                    let mut random = Zeroizing::new(vec![0u8; entries.len() * PER_RECORD]);
                    random_bytes(&mut random)?;
                    let now = now_rfc3339()?;
                    // One read of the identity's secrets instead of a lookup per
                    // key; only the rows an import replaces are opened.
                    let existing: HashMap<Vec<u8>, RecordRow> = self
                        .records_of_kind(KIND_SECRET)?
                        .into_iter()
                        .map(|r| (r.blind_index.clone(), r))
                        .collect();
                    // The last value of each key, in first-seen order.
                    let mut latest: HashMap<&str, usize> = HashMap::new();
                    let mut order = Vec::new();
                    for (i, (key, _)) in entries.iter().enumerate() {
                        if latest.insert(key.name.as_str(), i).is_none() {
                            order.push(key.name.as_str());
                        }
                    }
                    let mut batch = self.batch();
                    let mut created = 0;
                    for (key, r) in order.iter().zip(random.chunks_exact(PER_RECORD)) {
                        let (name, value) = &entries[latest[key]];
                        let (id_bytes, nonce) = r.split_at(16);
                        let nonce: &[u8; 24] =
                            nonce.try_into().map_err(|_| Error::Crypto("nonce"))?;
                        let old = self.filed(KIND_SECRET, name, |bi| existing.get(&bi));
                        if old.is_none() {
                            created += 1;
                        }
                        let (uuid, created_dt, notes) =
                            self.secret_slot(&mut batch, old, key, &now, || {
                                let id: [u8; 16] =
                                    id_bytes.try_into().map_err(|_| Error::Crypto("uuid"))?;
                                Ok(uuid::Builder::from_random_bytes(id).into_uuid().to_string())
                            })?;
                        let body = SecretBody {
                            key: key.to_string(),
                            value: value.expose().to_string(),
                            notes,
                            created_dt,
                            updated_dt: now.clone(),
                        };
                        let row = self
                            .sealer()
                            .seal_row_with_nonce(&uuid, &body, Some(nonce))?;
                        batch.write(if old.is_some() {
                            Write::UpdateRecord(row)
                        } else {
                            Write::InsertRecord(row)
                        });
                    }
                    Ok((batch, created))
                },
                duplicate_record,
            )
        })
    }

    /// What a secret write keeps of the secret's previous row — uuid,
    /// creation time, notes — with the precondition that the row is as read;
    /// or, for a new secret, a new uuid and the precondition that its name is
    /// still free.
    fn secret_slot(
        &self,
        batch: &mut Batch,
        existing: Option<&RecordRow>,
        key: &str,
        now: &str,
        new_uuid: impl FnOnce() -> Result<String>,
    ) -> Result<(String, String, Option<String>)> {
        match existing {
            Some(row) => {
                let old = self.open_secret(row)?;
                batch.require(unchanged(row));
                Ok((old.uuid, old.created_dt, old.notes))
            }
            None => {
                self.require_name_free(batch, KIND_SECRET, key);
                Ok((new_uuid()?, now.to_string(), None))
            }
        }
    }

    /// The precondition of a new record of a uniquely named kind: no record
    /// is filed under its name, by this epoch's blind index or, during a
    /// rotation's window, the previous one.
    fn require_name_free(&self, batch: &mut Batch, kind: u8, name: &str) {
        for bi in self.sealer().blind_indexes(kind, name) {
            batch.require(Precondition::NameFree {
                identity_uuid: self.identity.uuid.clone(),
                kind,
                blind_index: bi.to_vec(),
            });
        }
    }

    /// The rows filed under one name form, by every blind index it may
    /// have ([`RecordSealer::blind_indexes`]), each record once (a re-seal
    /// between the reads may show one under both).
    fn indexed_rows(&self, kind: u8, form: &str) -> Result<Vec<RecordRow>> {
        let mut rows: Vec<RecordRow> = Vec::new();
        for bi in self.sealer().blind_indexes(kind, form) {
            for row in self
                .backend
                .records_by_index(&self.identity.uuid, kind, &bi)?
            {
                if !rows.iter().any(|r| r.uuid == row.uuid) {
                    rows.push(row);
                }
            }
        }
        Ok(rows)
    }

    /// The rows filed under `name`'s normalised form; when there are none,
    /// those under its legacy form (SPEC 6). A write to such a record files
    /// it under the normalised name.
    fn named_rows(&self, kind: u8, name: &RecordName) -> Result<Vec<RecordRow>> {
        for form in name.forms() {
            let rows = self.indexed_rows(kind, form)?;
            if !rows.is_empty() {
                return Ok(rows);
            }
        }
        Ok(Vec::new())
    }

    /// As [`IdentityVault::named_rows`], in rows already read: `get` looks
    /// a blind index up.
    fn filed<'m, V>(
        &self,
        kind: u8,
        name: &RecordName,
        get: impl Fn(Vec<u8>) -> Option<&'m V>,
    ) -> Option<&'m V> {
        let sealer = self.sealer();
        name.forms().find_map(|form| {
            sealer
                .blind_indexes(kind, form)
                .into_iter()
                .find_map(|bi| get(bi.to_vec()))
        })
    }

    /// The row of a uniquely named kind (secret, TOTP): by its normalised
    /// name through the blind index, else by uuid.
    fn find_unique_row(
        &self,
        kind: u8,
        name: Option<&RecordName>,
        selector: &str,
    ) -> Result<Option<RecordRow>> {
        if let Some(name) = name
            && let Some(row) = self.named_rows(kind, name)?.pop()
        {
            return self.proven(row).map(Some);
        }
        match Uuid::try_parse(selector) {
            Ok(u) => self
                .backend
                .record(&self.identity.uuid, kind, &u.to_string())?
                .map(|r| self.proven(r))
                .transpose(),
            Err(_) => Ok(None),
        }
    }

    fn find_secret_row(&self, selector: &str) -> Result<(RecordRow, SecretEntry)> {
        let name = RecordName::secret(selector).ok();
        let row = self
            .find_unique_row(KIND_SECRET, name.as_ref(), selector)?
            .map_or_else(
                || Err(self.not_found(format!("no secret {selector:?}"))),
                Ok,
            )?;
        let e = self.open_secret(&row)?;
        Ok((row, e))
    }

    /// One secret, by key (or uuid).
    ///
    /// # Errors
    /// [`Error::NotFound`] if there is none.
    pub fn get_secret(&self, selector: &str) -> Result<SecretEntry> {
        self.settled(|| self.find_secret_row(selector).map(|(_, e)| e))
    }

    /// Every secret of the identity, by key.
    ///
    /// # Errors
    /// [`Error::Integrity`] if any secret fails to open.
    pub fn secrets(&self) -> Result<Vec<SecretEntry>> {
        self.settled(|| {
            let mut out = self
                .records_of_kind(KIND_SECRET)?
                .iter()
                .map(|r| self.open_secret(r))
                .collect::<Result<Vec<_>>>()?;
            out.sort_by(|a, b| a.key.cmp(&b.key));
            Ok(out)
        })
    }

    /// Deletes a secret by key or uuid.
    ///
    /// # Errors
    /// [`Error::NotFound`] if there is none.
    pub fn delete_secret(&self, selector: &str) -> Result<SecretEntry> {
        self.settled(|| {
            self.transact(
                || {
                    let (row, e) = self.find_secret_row(selector)?;
                    Ok((self.delete_batch(&row), e))
                },
                duplicate_record,
            )
        })
    }

    // ---- TOTP ----

    fn find_totp_row(&self, selector: &str) -> Result<(RecordRow, TotpBody)> {
        let name = RecordName::totp(selector).ok();
        let row = self
            .find_unique_row(KIND_TOTP, name.as_ref(), selector)?
            .map_or_else(
                || Err(self.not_found(format!("no TOTP named {selector:?}"))),
                Ok,
            )?;
        let b = self.sealer().open_row(&row)?;
        Ok((row, b))
    }

    /// Enrols a TOTP seed under `name` (else the URI's issuer); a seed of
    /// that name is a conflict (see [`IdentityVault::add_totp_with`]).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for bad parameters or no name;
    /// [`Error::Conflict`] if the name is taken.
    pub fn add_totp(&self, name: Option<&str>, params: &TotpParams) -> Result<TotpEntry> {
        self.add_totp_with(name, params, IfExists::Conflict)
            .map(|(e, _)| e)
    }

    /// Enrols a TOTP seed; when one of that name exists, `if_exists`
    /// decides: a conflict, its replacement (new seed and parameters, same
    /// uuid and creation time), or the existing entry as it is. Returns the
    /// entry and whether it was created.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for bad parameters or no name;
    /// [`Error::Conflict`] for a taken name under [`IfExists::Conflict`].
    pub fn add_totp_with(
        &self,
        name: Option<&str>,
        params: &TotpParams,
        if_exists: IfExists,
    ) -> Result<(TotpEntry, bool)> {
        self.settled(|| {
            params.validate()?;
            let raw_name = name
                .or(params.issuer.as_deref())
                .ok_or_else(|| Error::invalid("give the TOTP a name (the URI has no issuer)"))?;
            let totp_name = RecordName::totp(raw_name)?;
            let name = totp_name.name.clone();
            if if_exists == IfExists::Keep
                && let Ok(e) = self.get_totp(&name)
            {
                return Ok((e, false));
            }
            self.transact(
                || {
                    let now = now_rfc3339()?;
                    let existing = self.named_rows(KIND_TOTP, &totp_name)?.pop();
                    let mut batch = self.batch();
                    let (uuid, created_dt, created) = match (&existing, if_exists) {
                        // (Keep found it before; one created meanwhile conflicts)
                        (Some(row), IfExists::Conflict | IfExists::Keep) => {
                            return Err(Error::Conflict(format!(
                                "a TOTP named {name:?} exists already: {}",
                                row.uuid
                            )));
                        }
                        (Some(row), IfExists::Update) => {
                            let old: TotpBody = self.sealer().open_row(row)?;
                            batch.require(unchanged(row));
                            (row.uuid.clone(), old.created_dt.clone(), false)
                        }
                        (None, _) => {
                            self.require_name_free(&mut batch, KIND_TOTP, &name);
                            (Uuid::new_v4().to_string(), now.clone(), true)
                        }
                    };
                    let body = totp_body(&name, params, created_dt, now);
                    let row = self.sealer().seal_row(&uuid, &body)?;
                    batch.write(if created {
                        Write::InsertRecord(row)
                    } else {
                        Write::UpdateRecord(row)
                    });
                    Ok((batch, (TotpEntry::from_body(uuid, &body), created)))
                },
                || Error::Conflict(format!("a TOTP named {name:?} exists already")),
            )
        })
    }

    /// Every TOTP enrolment (no seeds), by name.
    ///
    /// # Errors
    /// [`Error::Integrity`] if any fails to open.
    pub fn totps(&self) -> Result<Vec<TotpEntry>> {
        self.settled(|| {
            let mut out = self
                .records_of_kind(KIND_TOTP)?
                .iter()
                .map(|r| {
                    let body: TotpBody = self.sealer().open_row(r)?;
                    Ok(TotpEntry::from_body(r.uuid.clone(), &body))
                })
                .collect::<Result<Vec<_>>>()?;
            out.sort_by(|a, b| a.name.cmp(&b.name));
            Ok(out)
        })
    }

    /// One TOTP enrolment's parameters (no seed), by name or uuid.
    ///
    /// # Errors
    /// [`Error::NotFound`] if there is none.
    pub fn get_totp(&self, selector: &str) -> Result<TotpEntry> {
        self.settled(|| {
            let (row, body) = self.find_totp_row(selector)?;
            Ok(TotpEntry::from_body(row.uuid, &body))
        })
    }

    /// The enrolment's `otpauth://` URI. It contains the seed.
    ///
    /// # Errors
    /// [`Error::NotFound`] if there is none.
    pub fn totp_uri(&self, selector: &str) -> Result<SecretString> {
        self.settled(|| {
            let (_, body) = self.find_totp_row(selector)?;
            Ok(SecretString::new(
                params_of(&body)?.to_uri_named(Some(&body.name)).to_string(),
            ))
        })
    }

    /// Deletes a TOTP enrolment by name or uuid.
    ///
    /// # Errors
    /// [`Error::NotFound`] if there is none.
    pub fn delete_totp(&self, selector: &str) -> Result<TotpEntry> {
        self.settled(|| {
            self.transact(
                || {
                    let (row, body) = self.find_totp_row(selector)?;
                    let entry = TotpEntry::from_body(row.uuid.clone(), &body);
                    Ok((self.delete_batch(&row), entry))
                },
                duplicate_record,
            )
        })
    }

    /// The code for `at` (default: now, by the system clock); see
    /// [`IdentityVault::totp_code_with`].
    ///
    /// # Errors
    /// As [`IdentityVault::totp_code_with`].
    pub fn totp_code(
        &self,
        selector: &str,
        at: Option<u64>,
        min_validity: Option<u64>,
    ) -> Result<TotpCode> {
        self.totp_code_with(&SystemClock, selector, at, min_validity)
    }

    /// The code for `at` (default: `clock`'s now). With `min_validity`, a
    /// code with fewer seconds left is skipped: without `at` this waits on
    /// `clock` (at most one period, with nothing held open) for the next
    /// window.
    ///
    /// # Errors
    /// [`Error::NotFound`]; [`Error::InvalidInput`] if `min_validity` is not
    /// below the period.
    pub fn totp_code_with(
        &self,
        clock: &dyn Clock,
        selector: &str,
        at: Option<u64>,
        min_validity: Option<u64>,
    ) -> Result<TotpCode> {
        let (_, body) = self.settled(|| self.find_totp_row(selector))?;
        let params = params_of(&body)?;
        let now = match at {
            Some(t) => t,
            None => clock.now()?,
        };
        let (t, wait) = totp::plan_code(params.period, now, min_validity)?;
        let t = if at.is_none() && wait > 0 {
            clock.sleep(std::time::Duration::from_secs(wait));
            // Read the clock again: the code must be for the window we are in.
            clock.now()?.max(t)
        } else {
            t
        };
        totp::code_for(&body.name, &params, t)
    }
}

/// One page's bucket values (the XOR of its records' leaves per bucket).
type Leaves = Vec<(u16, [u8; 32])>;

/// What a rotation in chunks (SPEC §4e, driven by the owner's view) does
/// with an identity's records, through the same checked reads and writes
/// as every other command.
impl IdentityVault<'_> {
    /// The epoch of the previous key this handle opens records of (a
    /// window it found when it was opened).
    pub(crate) fn window_epoch(&self) -> Option<u32> {
        self.sealer().previous().map(RecordSealer::epoch)
    }

    /// Each bucket's value under this epoch's head key and under `next`'s
    /// (which opens this epoch's records as its previous), from the records
    /// read page by page, with no head: what writers change meanwhile, and
    /// anything the store made up, is found by
    /// [`IdentityVault::changed_buckets`] against the authenticated tree.
    pub(crate) fn leaves_for(&self, next: &RecordSealer) -> Result<[Vec<[u8; 32]>; 2]> {
        let mut out = [vec![[0u8; 32]; 1 << 16], vec![[0u8; 32]; 1 << 16]];
        self.each_page(|rows| {
            let sealer = self.sealer();
            for (buckets, s) in out.iter_mut().zip([&*sealer, next]) {
                for part in in_parallel(s, rows, |s, chunk| s.bucket_values(chunk))? {
                    for (b, v) in part {
                        xor_into(&mut buckets[usize::from(b)], &v);
                    }
                }
            }
            Ok(true)
        })?;
        Ok(out)
    }

    /// The page of at most [`PAGE`] records after `after` (uuid order).
    fn page(&self, after: Option<String>) -> Result<Vec<RecordRow>> {
        self.backend.records(
            &self.identity.uuid,
            &RecordQuery {
                after,
                limit: Some(PAGE),
                ..RecordQuery::default()
            },
        )
    }

    /// Reads the identity's records a page at a time (uuid order, under no
    /// head), giving each page to `visit` until it returns `false` or the
    /// pages end.
    fn each_page(&self, mut visit: impl FnMut(&[RecordRow]) -> Result<bool>) -> Result<()> {
        let mut after = None;
        loop {
            let rows = self.page(after.take())?;
            if !visit(&rows)? {
                return Ok(());
            }
            match rows.last() {
                Some(last) if rows.len() == PAGE => after = Some(last.uuid.clone()),
                _ => return Ok(()),
            }
        }
    }

    /// The buckets whose leaf in the live tree is no longer `known[b]`,
    /// with the records they hold now: the head they were read under (bytes
    /// and content), and per changed bucket its stored leaf and records.
    ///
    /// `checked`: all of it is read under one head, the stored leaves are
    /// checked against the head's commitment and each changed bucket's
    /// records against its leaf. Otherwise (a first pass while writers are
    /// busy, to be checked later) it is read once: if the head did not move
    /// meanwhile it is checked as above; if it did, nothing is checked
    /// against the head (whose bytes come back `None`), and a bucket whose
    /// records do not give its leaf (changed between the two reads) is
    /// left out.
    #[allow(clippy::type_complexity)]
    pub(crate) fn changed_buckets(
        &self,
        known: &[[u8; 32]],
        checked: bool,
    ) -> Result<(Option<Vec<u8>>, Head, Vec<(u16, [u8; 32], Vec<RecordRow>)>)> {
        let read = |head: Option<&Head>| {
            let Some(head) = head else {
                return Ok(None);
            };
            let leaves = slot_leaves(self.backend, &self.identity.uuid, head.ext.slot)?;
            let mut changed = Vec::new();
            for (b, leaf) in leaves.iter().enumerate() {
                if known.get(b) != Some(leaf) {
                    let b = u16::try_from(b).map_err(|_| Error::Crypto("bucket"))?;
                    let (rows, value) = self.bucket(b)?;
                    changed.push((b, *leaf, value, rows));
                }
            }
            Ok(Some((leaves, changed)))
        };
        let (bytes, head, read) = if checked {
            self.under_one_head(read)?
        } else {
            let (bytes, head) = self.current_head()?;
            let read = read(head.as_ref())?;
            let settled = self.current_head()?.0 == bytes;
            (bytes.filter(|_| settled), head, read)
        };
        // (read under one head after all)
        let checked = checked || bytes.is_some();
        let (Some(head), Some((leaves, changed))) = (head, read) else {
            return Err(Error::Integrity(format!(
                "identity {:?} lost its head while it was rotated",
                self.identity.name
            )));
        };
        let lied = || {
            Error::Integrity(format!(
                "rollback or deletion detected: the record tree of identity {:?} does not match its head (sequence {})",
                self.identity.name, head.seq
            ))
        };
        if checked && Tree::root_of_all(&leaves) != head.commitment {
            return Err(lied());
        }
        let mut out = Vec::with_capacity(changed.len());
        for (b, leaf, value, rows) in changed {
            match (value == leaf, checked) {
                (true, _) => out.push((b, leaf, rows)),
                (false, true) => return Err(lied()),
                (false, false) => {}
            }
        }
        Ok((bytes, head, out))
    }

    /// Re-seals under this epoch's key the records still under the previous
    /// one among the page of at most `limit` records after `after` (uuid
    /// order), in one write (retried like any other). Returns how many, and
    /// the uuid the next page starts after (`None`: this was the last).
    pub(crate) fn reseal_page(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(usize, Option<String>)> {
        let page = || {
            self.backend.records(
                &self.identity.uuid,
                &RecordQuery {
                    after: after.map(str::to_string),
                    limit: Some(limit),
                    ..RecordQuery::default()
                },
            )
        };
        let rows = page()?;
        let next = (rows.len() == limit)
            .then(|| rows.last().map(|r| r.uuid.clone()))
            .flatten();
        let Some(previous) = self.window_epoch() else {
            return Ok((0, next));
        };
        if !rows.iter().any(|r| r.key_epoch == previous) {
            return Ok((0, next));
        }
        // (the page read above serves the first attempt; a retry reads it
        // again)
        let mut read = Some(rows);
        let resealed = self.transact(
            || {
                let rows = match read.take() {
                    Some(rows) => rows,
                    None => page()?,
                };
                let sealer = self.sealer();
                let old = sealer
                    .previous()
                    .ok_or_else(|| Error::Storage("the handle lost its previous key".into()))?;
                let mut batch = self.batch();
                let mut n = 0;
                for row in rows.iter().filter(|r| r.key_epoch == previous) {
                    batch
                        .require(unchanged(row))
                        .write(Write::UpdateRecord(sealer.reseal(old, row)?));
                    n += 1;
                }
                Ok((batch, n))
            },
            duplicate_record,
        )?;
        Ok((resealed, next))
    }

    /// Whether a record is still sealed under the previous epoch (read page
    /// by page: no write seals one once the window is open, and a record
    /// the store hides here only stays unreadable, as it could make any).
    pub(crate) fn previous_epoch_left(&self) -> Result<bool> {
        let Some(previous) = self.window_epoch() else {
            return Ok(false);
        };
        let mut left = false;
        self.each_page(|rows| {
            left = rows.iter().any(|r| r.key_epoch == previous);
            Ok(!left)
        })?;
        Ok(left)
    }

    /// Ends a window: the next head names no previous key (the caller
    /// checked that no record is sealed under it, and no write can seal
    /// one). Returns whether the head had a window.
    pub(crate) fn close_window(&self) -> Result<bool> {
        let (closed, _) = transact(
            self.backend,
            || {
                let (bytes, head) = self.current_head()?;
                let mut batch = self.batch();
                let Some(head) = head.filter(|h| h.ext.window.is_some()) else {
                    return Ok((batch, None));
                };
                let ext = HeadExt {
                    slot: head.ext.slot,
                    window: None,
                };
                let seq = head.seq.saturating_add(1);
                batch
                    .require(Precondition::IdentityHead {
                        identity_uuid: self.identity.uuid.clone(),
                        head: bytes,
                    })
                    .write(Write::SetIdentityHead {
                        uuid: self.identity.uuid.clone(),
                        head: self.sealer().seal_head_with(seq, &head.commitment, &ext),
                    });
                Ok((batch, Some(seq)))
            },
            |_, _| OnConflict::Retry,
        )?;
        if let Some(seq) = closed {
            self.note_seq(seq);
        }
        Ok(closed.is_some())
    }

    /// Writes tree nodes (`nodes`, slot-relative ids) into `slot`, which
    /// the head must not name — a rotation staging the next key's tree, or
    /// deleting the tree its switch left — and in the same transaction
    /// moves the head's sequence on (same commitment and extension; SPEC
    /// §4e). A rotation switches only under the head it checked its staged
    /// slot against, so another rotation writing into that slot meanwhile
    /// makes the switch lose its precondition, even through a store that
    /// cannot keep writers out while a batch is built, instead of naming a
    /// slot that holds both rotations' nodes. Returns the head bytes the
    /// write replaced, and the head it wrote (bytes, content).
    pub(crate) fn write_free_slot(
        &self,
        slot: u8,
        nodes: &[(u32, Option<Vec<u8>>)],
    ) -> Result<(Option<Vec<u8>>, Vec<u8>, Head)> {
        let (written, _) = transact(
            self.backend,
            || {
                let (bytes, head) = self.current_head()?;
                let Some(head) = head else {
                    return Err(Error::Integrity(format!(
                        "identity {:?} has no head while its tree slots are written",
                        self.identity.name
                    )));
                };
                if head.ext.slot == slot {
                    return Err(Error::Unavailable(format!(
                        "another rotation of identity {:?} switched to the tree slot this one was writing; nothing of this rotation was used, try again",
                        self.identity.name
                    )));
                }
                let next = Head {
                    seq: head.seq.saturating_add(1),
                    ..head
                };
                let sealed = self
                    .sealer()
                    .seal_head_with(next.seq, &next.commitment, &next.ext);
                let mut batch = self.batch();
                batch
                    .require(Precondition::IdentityHead {
                        identity_uuid: self.identity.uuid.clone(),
                        head: bytes.clone(),
                    })
                    .write(Write::SetTreeNodes {
                        identity_uuid: self.identity.uuid.clone(),
                        nodes: writes_in_slot(nodes.to_vec(), slot),
                    })
                    .write(Write::SetIdentityHead {
                        uuid: self.identity.uuid.clone(),
                        head: sealed.clone(),
                    });
                Ok((batch, (bytes, sealed, next)))
            },
            |preconditions, conflict| {
                self.on_conflict(preconditions, conflict, &|| {
                    Error::Storage("the store reported a duplicate for tree nodes".into())
                })
            },
        )?;
        self.note_seq(written.2.seq);
        Ok(written)
    }
}

/// The 65,536 leaves of an identity's tree in `slot`, read in runs of ids
/// short enough for any store's request.
pub(crate) fn slot_leaves(
    backend: &dyn Backend,
    identity_uuid: &str,
    slot: u8,
) -> Result<Vec<[u8; 32]>> {
    let first = leaf_id(0);
    let ids: Vec<u32> = (first..first + (1 << 16)).collect();
    let tree = Tree::from_slot(slot_nodes(backend, identity_uuid, slot, &ids)?, slot)?;
    Ok(ids.iter().map(|id| tree.get(*id)).collect())
}

/// The stored nodes of `slot` among `ids` (slot-relative), read 1,024 ids
/// at a time (a run of ids is one range read in SQLite, and the ids of a
/// remote read go in its URL).
pub(crate) fn slot_nodes(
    backend: &dyn Backend,
    identity_uuid: &str,
    slot: u8,
    ids: &[u32],
) -> Result<Vec<(u32, Vec<u8>)>> {
    let mut out = Vec::new();
    for run in ids.chunks(1024) {
        out.extend(backend.tree_nodes(identity_uuid, &in_slot(run, slot))?);
    }
    Ok(out)
}

/// Runs `f` over `items` in chunks, one per core but the one reading the
/// next page ([`IdentityVault::paged_checked`]) when there are enough items
/// to pay for the threads; the chunks' results in order.
fn in_parallel<I: Sync, T: Send>(
    sealer: &RecordSealer,
    items: &[I],
    f: impl Fn(&RecordSealer, &[I]) -> Result<T> + Sync,
) -> Result<Vec<T>> {
    const PER_THREAD: usize = 512;
    let threads = std::thread::available_parallelism()
        .map_or(1, std::num::NonZero::get)
        .saturating_sub(1)
        .min(items.len() / PER_THREAD)
        .max(1);
    if threads == 1 {
        return Ok(vec![f(sealer, items)?]);
    }
    let f = &f;
    std::thread::scope(|s| {
        // A chunk whose thread cannot be started (a process or thread
        // limit) runs here instead.
        let parts: Vec<_> = items
            .chunks(items.len().div_ceil(threads))
            .map(|chunk| {
                std::thread::Builder::new()
                    .spawn_scoped(s, move || f(sealer, chunk))
                    .map_err(|_| chunk)
            })
            .collect();
        parts
            .into_iter()
            .map(|p| match p {
                Ok(handle) => handle
                    .join()
                    .map_err(|_| Error::Crypto("a worker thread"))?,
                Err(chunk) => f(sealer, chunk),
            })
            .collect()
    })
}

/// Opens `rows` with `open` (in parallel where that pays), in order.
fn open_all<T: Send>(
    sealer: &RecordSealer,
    rows: &[RecordRow],
    open: impl Fn(&RecordSealer, &RecordRow) -> Result<T> + Sync,
) -> Result<Vec<T>> {
    let parts = in_parallel(sealer, rows, |sealer, chunk| {
        chunk
            .iter()
            .map(|r| open(sealer, r))
            .collect::<Result<Vec<T>>>()
    })?;
    Ok(parts.into_iter().flatten().collect())
}

/// The pages of a listing in one vector of exactly their length, each page
/// dropped as it is moved (a vector grown by doubling holds up to twice the
/// listing while it grows).
fn concat_pages<T>(pages: Vec<Vec<T>>) -> Vec<T> {
    let mut out = Vec::with_capacity(pages.iter().map(Vec::len).sum());
    for page in pages {
        out.extend(page);
    }
    out
}

/// The error of a record insert whose unique name is taken.
/// The sealed body of a TOTP seed.
fn totp_body(name: &str, params: &TotpParams, created_dt: String, updated_dt: String) -> TotpBody {
    TotpBody {
        name: name.to_string(),
        secret: totp::encode_base32_secret(&params.secret).to_string(),
        algorithm: params.algorithm.as_str().to_string(),
        digits: params.digits,
        period: params.period,
        issuer: params.issuer.clone(),
        account: params.account.clone(),
        created_dt,
        updated_dt,
    }
}

/// The writes of an import: one per record, a later entry for the same
/// record (kind and name) replacing an earlier one.
#[derive(Default)]
struct ImportPlan {
    writes: Vec<Option<Write>>,
    /// (kind, name) → index of its write
    slots: HashMap<(u8, String), usize>,
    /// per write: the record's uuid, creation time, and whether it exists
    entries: Vec<(String, String, bool)>,
    created: usize,
    updated: usize,
}

impl ImportPlan {
    /// The write slot of the record `key` names: a previous entry's, or a
    /// new one for the existing row `old` (its precondition added to
    /// `batch`; `old` carries its creation time) or for a new record.
    fn slot(
        &mut self,
        batch: &mut Batch,
        key: (u8, String),
        old: Option<(&RecordRow, String)>,
        now: &str,
    ) -> usize {
        if let Some(&i) = self.slots.get(&key) {
            return i;
        }
        let entry = match old {
            Some((row, created_dt)) => {
                batch.require(unchanged(row));
                self.updated += 1;
                (row.uuid.clone(), created_dt, true)
            }
            None => {
                self.created += 1;
                (Uuid::new_v4().to_string(), now.to_string(), false)
            }
        };
        self.slots.insert(key, self.writes.len());
        self.writes.push(None);
        self.entries.push(entry);
        self.writes.len() - 1
    }

    /// The uuid and creation time slot `i` keeps.
    fn entry(&self, i: usize) -> (String, String) {
        let (uuid, created_dt, _) = &self.entries[i];
        (uuid.clone(), created_dt.clone())
    }

    /// The sealed row of slot `i`: an update of the existing record, or an
    /// insert.
    fn set(&mut self, i: usize, row: RecordRow) {
        self.writes[i] = Some(if self.entries[i].2 {
            Write::UpdateRecord(row)
        } else {
            Write::InsertRecord(row)
        });
    }
}

fn skip(item: &str, e: &Error) -> Skipped {
    Skipped {
        item: item.to_string(),
        reason: e.to_string(),
    }
}

fn duplicate_record() -> Error {
    Error::Conflict("a record with this name already exists".into())
}

/// The precondition that a record is as it was read.
fn unchanged(row: &RecordRow) -> Precondition {
    Precondition::RecordUnchanged {
        uuid: row.uuid.clone(),
        ciphertext: row.ciphertext.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::test_clock::TestClock;
    use crate::vault::test_support::{new_identity, pass, test_vault};

    #[test]
    fn min_validity_waits_on_the_clock() {
        let dir = tempfile::tempdir().unwrap();
        let v = test_vault(&dir);
        let u = v.unlock(&pass("pw")).unwrap();
        let id = new_identity(&u, "t");
        let iv = u.open_identity(&id).unwrap();
        let params = TotpParams::from_uri(
            "otpauth://totp/Ex:a?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Ex",
        )
        .unwrap();
        iv.add_totp(None, &params).unwrap();
        // 25 s into a 30 s window: 5 s left, 10 s wanted, so wait 5 s.
        let clock = TestClock(std::cell::Cell::new(
            1_700_000_000 - 1_700_000_000 % 30 + 25,
        ));
        let start = clock.0.get();
        let code = iv.totp_code_with(&clock, "ex", None, Some(10)).unwrap();
        assert_eq!(clock.0.get(), start + 5, "slept exactly to the next window");
        assert_eq!(code.remaining_seconds, 30);
        assert_eq!(code.code, *params.code_at(start + 5).unwrap());
        // Enough left: no wait.
        let code = iv.totp_code_with(&clock, "ex", None, Some(10)).unwrap();
        assert_eq!(clock.0.get(), start + 5);
        assert_eq!(code.remaining_seconds, 30);
    }

    #[test]
    fn names_are_nfc_and_old_forms_stay_reachable() {
        let dir = tempfile::tempdir().unwrap();
        let v = test_vault(&dir);
        let u = v.unlock(&pass("pw")).unwrap();
        let id = new_identity(&u, "t");
        let iv = u.open_identity(&id).unwrap();
        let (nfc, nfd) = ("caf\u{e9}", "cafe\u{301}");
        // Two spellings, one key.
        let (_, created) = iv.set_secret(nfd, &SecretString::from("1"), None).unwrap();
        assert!(created);
        let (e, created) = iv.set_secret(nfc, &SecretString::from("2"), None).unwrap();
        assert!(!created);
        assert_eq!(e.key, nfc);
        assert_eq!(iv.secrets().unwrap().len(), 1);
        assert_eq!(iv.get_secret(nfd).unwrap().value.expose(), "2");
        iv.add_totp(
            Some("Caf\u{c9}"),
            &TotpParams::from_base32_secret("JBSWY3DPEHPK3PXP").unwrap(),
        )
        .unwrap();
        assert_eq!(iv.get_totp("CAFE\u{301}").unwrap().name, nfc);

        // A record an older release filed under the decomposed form.
        let old = SecretBody {
            key: format!("old {nfd}"),
            value: "legacy".into(),
            notes: None,
            created_dt: "2026-01-01T00:00:00Z".into(),
            updated_dt: "2026-01-01T00:00:00Z".into(),
        };
        iv.transact(
            || {
                let mut b = iv.batch();
                b.write(Write::InsertRecord(
                    iv.sealer().seal_row(&Uuid::new_v4().to_string(), &old)?,
                ));
                Ok((b, ()))
            },
            duplicate_record,
        )
        .unwrap();
        // Found by either spelling; a write files it under the NFC form.
        assert_eq!(
            iv.get_secret(&format!("old {nfc}")).unwrap().value.expose(),
            "legacy"
        );
        assert_eq!(
            iv.get_secret(&format!("old {nfd}")).unwrap().value.expose(),
            "legacy"
        );
        let (e, created) = iv
            .set_secret(&format!("old {nfd}"), &SecretString::from("new"), None)
            .unwrap();
        assert!(!created);
        assert_eq!(e.key, format!("old {nfc}"));
        assert_eq!(iv.secrets().unwrap().len(), 2);
        assert_eq!(
            iv.get_secret(&format!("old {nfc}")).unwrap().value.expose(),
            "new"
        );
    }

    /// A listing spans pages (5000 records: three pages): a record the store
    /// hides in a later page is caught by the whole-set check, and the
    /// listing is whole and sorted when nothing is hidden.
    #[test]
    fn a_listing_over_pages_is_checked_as_a_whole() {
        let dir = tempfile::tempdir().unwrap();
        let v = test_vault(&dir);
        let u = v.unlock(&pass("pw")).unwrap();
        let iv = u.open_identity(&new_identity(&u, "t")).unwrap();
        let batch: Vec<(String, SecretString)> = (0..5000)
            .map(|i| (format!("K{i:05}"), SecretString::from("v")))
            .collect();
        iv.import_secrets(&batch).unwrap();
        let listing = iv.secret_listing().unwrap();
        assert_eq!(listing.len(), 5000);
        assert!(listing.windows(2).all(|w| w[0].key() < w[1].key()));
        assert!(iv.password_listing().unwrap().is_empty());
        let rows = iv
            .backend
            .records(&iv.identity.uuid, &RecordQuery::default())
            .unwrap();
        // a damaged record in the middle page stops the listing, whichever
        // check sees it first (a worker's error reaches the caller; nothing
        // hangs), and the listing is whole again once it is repaired
        let mut damaged = rows[3000].clone();
        let flip = damaged.ciphertext.len() - 1;
        damaged.ciphertext[flip] ^= 1;
        let mut swap = Batch::new();
        swap.write(Write::UpdateRecord(damaged));
        iv.backend.commit(&swap).unwrap();
        assert!(matches!(iv.secret_listing(), Err(Error::Integrity(_))));
        let mut back = Batch::new();
        back.write(Write::UpdateRecord(rows[3000].clone()));
        iv.backend.commit(&back).unwrap();
        assert_eq!(iv.secret_listing().unwrap().len(), 5000);
        // the store drops the last record in uuid order (the last page)
        let last = rows.last().unwrap();
        let mut hide = Batch::new();
        hide.write(Write::DeleteRecord {
            identity_uuid: last.identity_uuid.clone(),
            kind: last.kind,
            uuid: last.uuid.clone(),
        });
        iv.backend.commit(&hide).unwrap();
        assert!(matches!(iv.secret_listing(), Err(Error::Integrity(_))));
        assert!(matches!(iv.password_listing(), Err(Error::Integrity(_))));
    }
}
