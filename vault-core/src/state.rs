//! What every handle on an opened vault shares — the backend, the header
//! as read at open, the vault id — and the optimistic write loop: read,
//! build a batch with preconditions, commit, and on a lost precondition
//! read again and retry.

use std::cell::{Cell, RefCell};
use std::time::Duration;

use uuid::Uuid;

use crate::agent::GrantContext;
use crate::backend::{
    Backend, Batch, Changes, CommitError, Conflict, GrantRow, IdentityRow, Precondition, VaultRow,
};
use crate::error::{Error, Result};
use crate::keys::KdfParams;
use crate::primitives::random_bytes;
use crate::sealer::uuid_bytes;
use crate::signing::{OwnerPublicKey, Signed};
use crate::vault_head::VaultHead;

/// How many times a batch is rebuilt after losing a precondition to a
/// concurrent writer before giving up.
const MAX_ATTEMPTS: u32 = 64;

/// How many of those attempts run without keeping other writers out.
const OPTIMISTIC_ATTEMPTS: u32 = 4;

/// The shared state of an opened vault. The header and owner key are
/// replaced only by the owner's own commits (a passphrase change, the
/// upgrade of a vault made before signing).
#[derive(Debug)]
pub(crate) struct VaultState {
    pub(crate) backend: Box<dyn Backend>,
    header: RefCell<VaultRow>,
    /// The owner's public key, its signature on the header checked.
    owner: Cell<Option<OwnerPublicKey>>,
    /// The vault head, its signature checked (`None` before signing).
    vault_head: RefCell<Option<VaultHead>>,
    pub(crate) vault_id: [u8; 16],
}

impl VaultState {
    /// Reads and checks the header: a vault with an owner key must carry
    /// the owner's signature on its clear fields.
    pub(crate) fn load(backend: Box<dyn Backend>) -> Result<Self> {
        let header = backend.header()?;
        let vault_id = uuid_bytes(&header.vault_id)?;
        let owner = verify_header(&vault_id, &header)?;
        let vault_head = open_vault_head(&vault_id, &header, owner)?;
        Ok(VaultState {
            backend,
            header: RefCell::new(header),
            owner: Cell::new(owner),
            vault_head: RefCell::new(vault_head),
            vault_id,
        })
    }

    /// The vault head's sequence, `None` before signing.
    pub(crate) fn vault_head_seq(&self) -> Option<u64> {
        self.vault_head.borrow().as_ref().map(|h| h.seq)
    }

    /// Runs a check against the vault head; if it fails, reads the head
    /// again (an owner write may have committed since it was read) and
    /// runs it once more.
    fn against_head(&self, check: impl Fn(&VaultHead) -> Result<()>) -> Result<()> {
        let once = || match self.vault_head.borrow().as_ref() {
            Some(h) => check(h),
            None => Ok(()),
        };
        match once() {
            Ok(()) => Ok(()),
            Err(_) => {
                self.reload()?;
                once()
            }
        }
    }

    /// Reads the header again (after a concurrent owner commit).
    pub(crate) fn reload(&self) -> Result<()> {
        let header = self.backend.header()?;
        if header == *self.header.borrow() {
            // Unchanged: already verified when it was read.
            return Ok(());
        }
        if header.vault_id != self.header.borrow().vault_id {
            return Err(Error::Integrity("the vault's id changed".into()));
        }
        let owner = verify_header(&self.vault_id, &header)?;
        let vault_head = open_vault_head(&self.vault_id, &header, owner)?;
        if let (Some(before), Some(now)) = (self.owner.get(), owner)
            && before != now
        {
            return Err(Error::Integrity(format!(
                "the vault's owner key changed from {before} to {now}"
            )));
        }
        let seen = self.vault_head_seq();
        if let (Some(s), Some(h)) = (seen, &vault_head)
            && h.seq < s
        {
            return Err(Error::Integrity(format!(
                "rollback detected: the vault head went back from sequence {s} to {}",
                h.seq
            )));
        }
        self.owner.set(owner);
        *self.header.borrow_mut() = header;
        *self.vault_head.borrow_mut() = vault_head;
        Ok(())
    }

    /// The header as read.
    pub(crate) fn header(&self) -> VaultRow {
        self.header.borrow().clone()
    }

    /// The owner's public key, if the vault has one.
    pub(crate) fn owner(&self) -> Option<OwnerPublicKey> {
        self.owner.get()
    }

    /// Checks the owner's signature on an identity's metadata (vaults made
    /// before signing have no owner key yet and nothing to check).
    pub(crate) fn verify_identity(&self, row: &IdentityRow) -> Result<()> {
        self.verify_identity_signature(row)?;
        self.against_head(|h| h.check_identity(row))
    }

    fn verify_identity_signature(&self, row: &IdentityRow) -> Result<()> {
        let Some(owner) = self.owner() else {
            return Ok(());
        };
        let id = uuid_bytes(&row.uuid)?;
        owner.verify(
            &identity_signed(&self.vault_id, &id, row),
            row.signature.as_deref(),
            &format!("the metadata of identity {:?}", row.name),
        )
    }

    /// For the owner's recovery (rotation, deletion): the identity named or
    /// identified by `selector`, its metadata signature checked and listed
    /// in the vault head, but its key epoch allowed to differ from the
    /// head's (a row the store rolled back). Returns the row and the epoch
    /// the vault head lists (the row's own for a vault without a head).
    pub(crate) fn find_identity_to_recover(&self, selector: &str) -> Result<(IdentityRow, u32)> {
        let found = match Uuid::try_parse(selector) {
            Ok(u) => self.backend.identity(&u.to_string())?,
            Err(_) => find_identity_row(self.backend.as_ref(), selector).ok(),
        };
        let Some(row) = found else {
            // Not in the store: the usual lookup says why (deleted by the
            // store, or not found).
            let r = self.find_identity(selector)?;
            let e = r.key_epoch;
            return Ok((r, e));
        };
        self.verify_identity_signature(&row)?;
        let id = uuid_bytes(&row.uuid)?;
        let listed = |h: &VaultHead| h.identities.get(&id).copied();
        let mut epoch = self.vault_head.borrow().as_ref().map(listed);
        if epoch.as_ref().is_some_and(Option::is_none) {
            self.reload()?;
            epoch = self.vault_head.borrow().as_ref().map(listed);
        }
        match epoch {
            None => Ok((row.clone(), row.key_epoch)),
            Some(Some(e)) => Ok((row, e)),
            Some(None) => Err(Error::Integrity(format!(
                "identity {:?} is not in the vault head (planted or restored by the store)",
                row.name
            ))),
        }
    }

    /// Checks the owner's signature on a grant.
    pub(crate) fn verify_grant(&self, g: &GrantRow) -> Result<()> {
        let Some(owner) = self.owner() else {
            return Ok(());
        };
        let (gid, iid) = (uuid_bytes(&g.uuid)?, uuid_bytes(&g.identity_uuid)?);
        owner.verify(
            &grant_signed(&self.vault_id, &gid, &iid, g),
            g.signature.as_deref(),
            "a grant",
        )?;
        self.against_head(|h| h.check_grant(g))
    }

    /// Whether the vault head lists a grant of this identity to this
    /// recipient (read again if it does not, in case an owner write just
    /// added it).
    pub(crate) fn head_lists_grant(&self, identity_uuid: &str, recipient: &[u8]) -> Result<bool> {
        let id = uuid_bytes(identity_uuid)?;
        let listed = || {
            self.vault_head
                .borrow()
                .as_ref()
                .is_some_and(|h| h.lists_grant(&id, recipient))
        };
        if listed() {
            return Ok(true);
        }
        self.reload()?;
        Ok(listed())
    }

    /// The identity with this uuid, its signature checked.
    ///
    /// The row and the vault head are two reads: when they disagree and the
    /// row has changed since (a rotation or deletion committed between
    /// them), both are read again.
    pub(crate) fn identity(&self, uuid: &str) -> Result<Option<IdentityRow>> {
        let mut row = self.backend.identity(uuid)?;
        for n in 0.. {
            let checked = match &row {
                Some(r) => self.verify_identity(r),
                None => {
                    let id = uuid_bytes(uuid)?;
                    self.against_head(|h| match h.identities.contains_key(&id) {
                        true => Err(Error::Integrity(format!(
                            "identity {uuid} is in the vault head but missing: deleted by the store"
                        ))),
                        false => Ok(()),
                    })
                }
            };
            match checked {
                Err(Error::Integrity(_)) if n < 8 => {
                    let again = self.backend.identity(uuid)?;
                    if again == row {
                        return checked.map(|()| row);
                    }
                    row = again;
                }
                _ => return checked.map(|()| row),
            }
        }
        unreachable!("the loop returns")
    }

    /// Every identity, signatures checked, and exactly the set the vault
    /// head lists.
    pub(crate) fn identities(&self) -> Result<Vec<IdentityRow>> {
        for _ in 0..3 {
            let rows = self.backend.identities()?;
            for r in &rows {
                self.verify_identity(r)?;
            }
            let complete = self
                .vault_head
                .borrow()
                .as_ref()
                .is_none_or(|h| h.identities.len() == rows.len());
            if complete {
                return Ok(rows);
            }
            self.reload()?;
        }
        Err(Error::Integrity(
            "identities listed in the vault head are missing: deleted by the store".into(),
        ))
    }

    /// The identity named or identified by `selector` (a name or a uuid),
    /// its signature checked.
    pub(crate) fn find_identity(&self, selector: &str) -> Result<IdentityRow> {
        if let Ok(u) = Uuid::try_parse(selector) {
            // A uuid the vault head lists but the store lacks is a deletion.
            if let Some(row) = self.identity(&u.to_string())? {
                return Ok(row);
            }
        }
        match find_identity_row(self.backend.as_ref(), selector) {
            Ok(row) => {
                self.verify_identity(&row)?;
                Ok(row)
            }
            Err(Error::NotFound(m)) => {
                // Missing by name: if the store lacks an identity the vault
                // head lists, that is the answer, not "not found".
                self.identities()?;
                Err(Error::NotFound(m))
            }
            Err(e) => Err(e),
        }
    }

    /// The grants of an identity, signatures checked, and exactly those
    /// the vault head lists for it.
    pub(crate) fn grants(&self, identity_uuid: &str) -> Result<Vec<GrantRow>> {
        let iid = uuid_bytes(identity_uuid)?;
        for _ in 0..3 {
            let grants = self.backend.grants(identity_uuid)?;
            for g in &grants {
                self.verify_grant(g)?;
            }
            let listed = self
                .vault_head
                .borrow()
                .as_ref()
                .map(|h| h.grants.values().filter(|(i, _, _)| *i == iid).count());
            if listed.is_none_or(|n| n == grants.len()) {
                return Ok(grants);
            }
            self.reload()?;
        }
        Err(Error::Integrity(
            "grants listed in the vault head are missing: deleted by the store".into(),
        ))
    }
}

/// The owner key of a header whose signature verifies; `None` for a vault
/// made before signing (no owner key, no signature).
fn verify_header(vault_id: &[u8; 16], h: &VaultRow) -> Result<Option<OwnerPublicKey>> {
    match (&h.owner_public_key, &h.wrapped_owner_key, &h.signature) {
        (None, None, None) => Ok(None),
        (Some(pk), Some(_), sig) => {
            let owner = OwnerPublicKey::from_stored(pk)?;
            let kdf = kdf_params_of(h).encode();
            owner.verify(
                &header_signed(vault_id, h, &kdf, owner.as_bytes()),
                sig.as_deref(),
                "the vault header",
            )?;
            Ok(Some(owner))
        }
        _ => Err(Error::Integrity(
            "the vault header's owner key is incomplete (tampered)".into(),
        )),
    }
}

/// The vault head of a header whose owner key verified; required once the
/// vault has an owner key.
fn open_vault_head(
    vault_id: &[u8; 16],
    h: &VaultRow,
    owner: Option<OwnerPublicKey>,
) -> Result<Option<VaultHead>> {
    match (owner, &h.vault_head) {
        (Some(o), Some(bytes)) => VaultHead::open(bytes, vault_id, &o).map(Some),
        (Some(_), None) => Err(Error::Integrity(
            "the vault head is missing (stripped by the store?)".into(),
        )),
        (None, _) => Ok(None),
    }
}

/// The KDF parameters of a header.
pub(crate) fn kdf_params_of(h: &VaultRow) -> KdfParams {
    KdfParams {
        memory_kib: h.kdf_memory_kib,
        iterations: h.kdf_iterations,
        parallelism: h.kdf_parallelism,
    }
}

/// The message the owner signs for a header.
pub(crate) fn header_signed<'a>(
    vault_id: &'a [u8; 16],
    h: &'a VaultRow,
    kdf_params: &'a [u8; 13],
    owner_public: &'a [u8; 32],
) -> Signed<'a> {
    Signed::Header {
        vault_id,
        owner_public,
        kdf_params,
        kdf_salt: &h.kdf_salt,
        inbox_domain: &h.inbox_domain,
        created_dt: &h.created_dt,
    }
}

/// The message the owner signs for an identity's metadata.
pub(crate) fn identity_signed<'a>(
    vault_id: &'a [u8; 16],
    identity_id: &'a [u8; 16],
    row: &'a IdentityRow,
) -> Signed<'a> {
    Signed::Identity {
        vault_id,
        identity_id,
        name: &row.name,
        inbox: &row.inbox,
        phone: row.phone.as_deref().unwrap_or(""),
        created_dt: &row.created_dt,
    }
}

/// The message the owner signs for a grant.
pub(crate) fn grant_signed<'a>(
    vault_id: &'a [u8; 16],
    grant_id: &'a [u8; 16],
    identity_id: &'a [u8; 16],
    g: &'a GrantRow,
) -> Signed<'a> {
    Signed::Grant {
        vault_id,
        grant_id,
        identity_id,
        epoch: g.key_epoch,
        recipient: &g.recipient,
        ephemeral: &g.ephemeral_public,
        wrapped_key: &g.wrapped_key,
        label: g.label.as_deref().unwrap_or(""),
        created_dt: &g.created_dt,
    }
}

/// What to do about a commit's conflict.
pub(crate) enum OnConflict {
    /// Read again and rebuild the batch.
    Retry,
    /// Stop with this error.
    Fail(Error),
}

/// Runs `attempt` (read, then build a batch and the value to return) and
/// commits its batch; a conflict goes to `on_conflict` with the batch's
/// preconditions, which decides between a fresh attempt (after a short
/// jittered pause) and an error. After [`OPTIMISTIC_ATTEMPTS`] conflicts (one,
/// for a big batch, [`Batch::is_big`]) the attempt runs with
/// other writers kept out where the store can do that
/// ([`Backend::commit_exclusive`]), so a big batch (a rotation) is not
/// starved by a stream of small ones.
pub(crate) fn transact<T>(
    backend: &dyn Backend,
    mut attempt: impl FnMut() -> Result<(Batch, T)>,
    mut on_conflict: impl FnMut(&[Precondition], &Conflict) -> OnConflict,
) -> Result<(T, Changes)> {
    let mut exclusive = false;
    for n in 0..MAX_ATTEMPTS {
        // (the batch's preconditions and the value, once built)
        let mut built = None;
        let committed = if n < OPTIMISTIC_ATTEMPTS && !exclusive {
            let (batch, value) = attempt()?;
            let committed = backend.commit(&batch);
            // (building a big batch again takes long enough that writers of
            // its identity would win again)
            exclusive = batch.is_big();
            built = Some((batch.preconditions, value));
            committed
        } else {
            backend.commit_exclusive(&mut || {
                let (batch, value) = attempt()?;
                built = Some((batch.preconditions.clone(), value));
                Ok(batch)
            })
        };
        let Some((preconditions, value)) = built else {
            // (a store that committed, or failed, without building)
            return Err(committed.err().map_or_else(
                || Error::Storage("the store committed a batch it did not build".into()),
                |e| match e {
                    CommitError::Failed(e) => e,
                    CommitError::Conflict(c) => Error::Storage(format!("{c:?}").into()),
                },
            ));
        };
        match committed {
            Ok(changes) => return Ok((value, changes)),
            Err(CommitError::Failed(e)) => return Err(e),
            Err(CommitError::Conflict(c)) => match on_conflict(&preconditions, &c) {
                OnConflict::Fail(e) => return Err(e),
                OnConflict::Retry => {}
            },
        }
        backoff(n)?;
    }
    Err(Error::Unavailable(
        "the vault stayed busy with concurrent writers; nothing was written, try again".into(),
    ))
}

/// Sleeps a random time below `2^min(n, 6)` milliseconds.
pub(crate) fn backoff(n: u32) -> Result<()> {
    let mut b = [0u8; 2];
    random_bytes(&mut b)?;
    let cap = 1u64 << n.min(6);
    let micros = u64::from(u16::from_le_bytes(b)) % (cap * 1000);
    std::thread::sleep(Duration::from_micros(micros));
    Ok(())
}

/// The identity named or identified by `selector` (a name or a uuid).
pub(crate) fn find_identity_row(backend: &dyn Backend, selector: &str) -> Result<IdentityRow> {
    if let Ok(u) = Uuid::try_parse(selector)
        && let Some(r) = backend.identity(&u.to_string())?
    {
        return Ok(r);
    }
    backend
        .identity_by_name(selector)?
        .ok_or_else(|| Error::NotFound(format!("no identity named {selector:?}")))
}

/// The associated data of a grant of `row`'s key.
pub(crate) fn grant_context<'a>(
    vault_id: &'a [u8; 16],
    identity_id: &'a [u8; 16],
    grant_id: &'a [u8; 16],
    row: &'a IdentityRow,
) -> GrantContext<'a> {
    GrantContext {
        vault_id,
        identity_id,
        grant_id,
        epoch: row.key_epoch,
        name: &row.name,
        inbox: &row.inbox,
        phone: row.phone.as_deref().unwrap_or(""),
    }
}
