//! What every handle on an opened vault shares — the backend, the header
//! as read at open, the vault id — and the optimistic write loop: read,
//! build a batch with preconditions, commit, and on a lost precondition
//! read again and retry.

use std::time::Duration;

use uuid::Uuid;

use crate::agent::GrantContext;
use crate::backend::{Backend, Batch, Changes, CommitError, Conflict, IdentityRow, VaultRow};
use crate::error::{Error, Result};
use crate::primitives::random_bytes;

/// How many times a batch is rebuilt after losing a precondition to a
/// concurrent writer before giving up.
const MAX_ATTEMPTS: u32 = 64;

/// The shared state of an opened vault.
#[derive(Debug)]
pub(crate) struct VaultState {
    pub(crate) backend: Box<dyn Backend>,
    pub(crate) header: VaultRow,
    pub(crate) vault_id: [u8; 16],
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
