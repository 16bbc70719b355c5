//! Ways into a vault: the passphrase, a session token, or an agent key
//! that opens only the identities granted to it.

use crate::agent::{self, AgentSecretKey};
use crate::error::{Error, Result};
use crate::identity_vault::IdentityVault;
use crate::keys::Passphrase;
use crate::model::Identity;
use crate::sealer::uuid_bytes;
use crate::session::SessionToken;
use crate::state::{VaultState, grant_context};
use crate::unlocked::Unlocked;

/// What a process presents to open a vault.
#[derive(Debug)]
pub enum Credential {
    /// The vault passphrase (one Argon2id derivation).
    Passphrase(Passphrase),
    /// A session token.
    Session(SessionToken),
    /// An agent's secret key: opens only identities granted to it.
    Agent(AgentSecretKey),
}

/// What a credential opened: the owner (the root key, every identity) or
/// an agent (only the identities granted to its key).
#[derive(Debug)]
pub struct Access<'v>(Inner<'v>);

#[derive(Debug)]
enum Inner<'v> {
    Owner(Box<Unlocked<'v>>),
    Agent {
        state: &'v VaultState,
        key: AgentSecretKey,
    },
}

impl<'v> Access<'v> {
    pub(crate) fn owner_access(u: Unlocked<'v>) -> Self {
        Access(Inner::Owner(Box::new(u)))
    }

    pub(crate) fn agent_access(state: &'v VaultState, key: AgentSecretKey) -> Self {
        Access(Inner::Agent { state, key })
    }

    /// Whether this is the owner's access.
    pub fn is_owner(&self) -> bool {
        matches!(self.0, Inner::Owner(_))
    }

    /// The unlocked vault, or [`Error::Denied`] for an agent: `what` names
    /// the vault-wide operation refused.
    ///
    /// # Errors
    /// [`Error::Denied`] for agent keys.
    pub fn owner(&self, what: &str) -> Result<&Unlocked<'v>> {
        match &self.0 {
            Inner::Owner(u) => Ok(u),
            Inner::Agent { .. } => Err(Error::Denied(format!(
                "an agent key cannot {what}: that needs the vault passphrase or a session"
            ))),
        }
    }

    /// Opens an identity's records with whatever this access holds.
    ///
    /// # Errors
    /// [`Error::Denied`] if an agent has no grant for the identity.
    pub fn open_identity(&self, identity: &Identity) -> Result<IdentityVault<'v>> {
        match &self.0 {
            Inner::Owner(u) => u.open_identity(identity),
            Inner::Agent { state, key } => open_as_agent(state, key, identity),
        }
    }
}

/// Opens an identity with an agent key through the identity's grant; the
/// handle follows the identity through rotations that keep the grant.
pub(crate) fn open_as_agent<'v>(
    state: &'v VaultState,
    key: &AgentSecretKey,
    identity: &Identity,
) -> Result<IdentityVault<'v>> {
    let (key, identity) = (key.clone(), identity.clone());
    let open = move || open_through_grant(state, &key, &identity);
    let iv = open()?;
    Ok(iv.with_reopen(Box::new(open)))
}

/// Opens an identity with an agent key through the identity's grant, at
/// the key epoch stored now.
fn open_through_grant<'v>(
    state: &'v VaultState,
    key: &AgentSecretKey,
    identity: &Identity,
) -> Result<IdentityVault<'v>> {
    let public = key.public();
    let backend = state.backend.as_ref();
    // The identity row and the grant are two reads: a rotation committed
    // between them shows as a grant of another epoch, so read again.
    // The row read again after the grant shows whether one did: then the
    // pair is read again (a store that keeps the row still and the grant at
    // another epoch is caught below).
    let row_now = || {
        state
            .identity(&identity.uuid)?
            .ok_or_else(|| Error::NotFound(format!("no identity {}", identity.uuid)))
    };
    let mut tries = 0;
    let (row, grant) = loop {
        let row = row_now()?;
        let grant = backend.grant_for(&row.uuid, public.as_bytes())?;
        let settled = grant.as_ref().is_none_or(|g| g.key_epoch == row.key_epoch)
            || row_now()?.key_epoch == row.key_epoch;
        tries += 1;
        if settled || tries >= 16 {
            break (row, grant);
        }
        crate::state::backoff(tries)?;
    };
    let denied = || {
        Error::Denied(format!(
            "agent key {public} has no grant for identity {:?}",
            row.name
        ))
    };
    let grant = match grant {
        Some(g) => g,
        // A grant the vault head lists but the store does not show was
        // deleted by the store.
        None if state.head_lists_grant(&row.uuid, public.as_bytes())? => {
            return Err(Error::Integrity(format!(
                "the grant of identity {:?} to this agent is in the vault head but missing: deleted by the store",
                row.name
            )));
        }
        None => return Err(denied()),
    };
    // A grant the owner did not sign (one forged by the store from public
    // data) is refused before its key is used.
    state.verify_grant(&grant)?;
    if grant.key_epoch != row.key_epoch {
        // Rotation re-wraps every kept grant in the same batch, so a signed
        // grant of another epoch than its identity's is an old row put
        // back (or the identity row is).
        return Err(Error::Integrity(format!(
            "the grant of identity {:?} is for key epoch {}, the identity is at {} (restored from a backup?)",
            row.name, grant.key_epoch, row.key_epoch
        )));
    }
    let id = uuid_bytes(&row.uuid)?;
    let gid = uuid_bytes(&grant.uuid)?;
    let eph: [u8; 32] = grant
        .ephemeral_public
        .as_slice()
        .try_into()
        .map_err(|_| Error::tampered("the grant"))?;
    let ik = agent::unwrap_as_agent(
        key,
        &grant_context(&state.vault_id, &id, &gid, &row),
        &eph,
        &grant.wrapped_key,
    )
    .ok_or_else(|| Error::tampered(format!("the grant of identity {:?}", row.name)))?;
    IdentityVault::new(state, &row, &ik)
}
