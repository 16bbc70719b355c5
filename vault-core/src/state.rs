//! What every handle on an opened vault shares — the backend, the header
//! as read at open, the vault id — and the optimistic write loop: read,
//! build a batch with preconditions, commit, and on a lost precondition
//! read again and retry.

use std::cell::{Cell, RefCell};
use std::time::Duration;

use uuid::Uuid;

use crate::agent::GrantContext;
use crate::backend::{
    Backend, Batch, Changes, CommitError, Conflict, GrantRow, IdentityRow, VaultRow,
};
use crate::error::{Error, Result};
use crate::keys::KdfParams;
use crate::primitives::random_bytes;
use crate::sealer::uuid_bytes;
use crate::signing::{OwnerPublicKey, Signed};

/// How many times a batch is rebuilt after losing a precondition to a
/// concurrent writer before giving up.
const MAX_ATTEMPTS: u32 = 64;

/// The shared state of an opened vault. The header and owner key are
/// replaced only by the owner's own commits (a passphrase change, the
/// upgrade of a vault made before signing).
#[derive(Debug)]
pub(crate) struct VaultState {
    pub(crate) backend: Box<dyn Backend>,
    header: RefCell<VaultRow>,
    /// The owner's public key, its signature on the header checked.
    owner: Cell<Option<OwnerPublicKey>>,
    pub(crate) vault_id: [u8; 16],
}

impl VaultState {
    /// Reads and checks the header: a vault with an owner key must carry
    /// the owner's signature on its clear fields.
    pub(crate) fn load(backend: Box<dyn Backend>) -> Result<Self> {
        let header = backend.header()?;
        let vault_id = uuid_bytes(&header.vault_id)?;
        let owner = verify_header(&vault_id, &header)?;
        Ok(VaultState {
            backend,
            header: RefCell::new(header),
            owner: Cell::new(owner),
            vault_id,
        })
    }

    /// Reads the header again (after a concurrent owner commit).
    pub(crate) fn reload(&self) -> Result<()> {
        let header = self.backend.header()?;
        if header.vault_id != self.header.borrow().vault_id {
            return Err(Error::Integrity("the vault's id changed".into()));
        }
        let owner = verify_header(&self.vault_id, &header)?;
        if let (Some(before), Some(now)) = (self.owner.get(), owner)
            && before != now
        {
            return Err(Error::Integrity(format!(
                "the vault's owner key changed from {before} to {now}"
            )));
        }
        self.owner.set(owner);
        *self.header.borrow_mut() = header;
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
        )
    }

    /// The identity with this uuid, its signature checked.
    pub(crate) fn identity(&self, uuid: &str) -> Result<Option<IdentityRow>> {
        let row = self.backend.identity(uuid)?;
        if let Some(r) = &row {
            self.verify_identity(r)?;
        }
        Ok(row)
    }

    /// Every identity, signatures checked.
    pub(crate) fn identities(&self) -> Result<Vec<IdentityRow>> {
        let rows = self.backend.identities()?;
        for r in &rows {
            self.verify_identity(r)?;
        }
        Ok(rows)
    }

    /// The identity named or identified by `selector` (a name or a uuid),
    /// its signature checked.
    pub(crate) fn find_identity(&self, selector: &str) -> Result<IdentityRow> {
        let row = find_identity_row(self.backend.as_ref(), selector)?;
        self.verify_identity(&row)?;
        Ok(row)
    }

    /// The grants of an identity, signatures checked.
    pub(crate) fn grants(&self, identity_uuid: &str) -> Result<Vec<GrantRow>> {
        let grants = self.backend.grants(identity_uuid)?;
        for g in &grants {
            self.verify_grant(g)?;
        }
        Ok(grants)
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
/// commits its batch; a conflict goes to `on_conflict`, which decides
/// between a fresh attempt (after a short jittered pause) and an error.
pub(crate) fn transact<T>(
    backend: &dyn Backend,
    mut attempt: impl FnMut() -> Result<(Batch, T)>,
    mut on_conflict: impl FnMut(&Batch, &Conflict) -> OnConflict,
) -> Result<(T, Changes)> {
    for n in 0..MAX_ATTEMPTS {
        let (batch, value) = attempt()?;
        match backend.commit(&batch) {
            Ok(changes) => return Ok((value, changes)),
            Err(CommitError::Failed(e)) => return Err(e),
            Err(CommitError::Conflict(c)) => match on_conflict(&batch, &c) {
                OnConflict::Fail(e) => return Err(e),
                OnConflict::Retry => backoff(n)?,
            },
        }
    }
    Err(Error::Conflict(
        "the vault kept changing under concurrent writers; try again".into(),
    ))
}

/// Sleeps a random time below `2^min(n, 6)` milliseconds.
fn backoff(n: u32) -> Result<()> {
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
