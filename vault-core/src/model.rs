//! The plain data types callers see: identities, vault facts, grants,
//! rotations. Each derives `Serialize` with the documented JSON shape, so
//! that shape has one definition.

use serde::Serialize;

use crate::agent::AgentPublicKey;
use crate::backend::{GrantRow, IdentityRow};
use crate::keys::KdfParams;
use crate::signing::OwnerPublicKey;

/// Default domain of assigned inbox addresses. `.invalid` never routes
/// mail (RFC 2606): deployments choose their own at init.
pub const DEFAULT_INBOX_DOMAIN: &str = "ravi.invalid";

/// Choices made once, when a vault is created.
#[derive(Clone, Debug)]
pub struct InitOptions {
    /// Argon2id parameters of the passphrase.
    pub kdf: KdfParams,
    /// Domain of assigned inbox addresses.
    pub inbox_domain: String,
}

impl Default for InitOptions {
    fn default() -> Self {
        InitOptions {
            kdf: KdfParams::DEFAULT,
            inbox_domain: DEFAULT_INBOX_DOMAIN.into(),
        }
    }
}

/// Public facts about a vault: `{vault, vault_id, owner_public_key,
/// inbox_domain, kdf, created_dt}`.
#[derive(Clone, Debug, Serialize)]
pub struct VaultInfo {
    /// Where the vault's rows are (the file's path).
    #[serde(rename = "vault")]
    pub location: String,
    /// The vault's uuid.
    pub vault_id: String,
    /// The owner's Ed25519 public key (`raviowner1…`), `null` for a vault
    /// made before signing that its owner has not unlocked since.
    pub owner_public_key: Option<OwnerPublicKey>,
    /// Domain of assigned inbox addresses.
    pub inbox_domain: String,
    /// Argon2id parameters.
    pub kdf: KdfParams,
    /// Creation time.
    pub created_dt: String,
}

/// An identity's routing metadata (stored in the clear) and key epoch:
/// `{uuid, name, inbox, phone, created_dt, key_epoch}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Identity {
    /// The identity's uuid.
    pub uuid: String,
    /// Its unique name.
    pub name: String,
    /// Its inbox address.
    pub inbox: String,
    /// Its phone number (E.164), if any.
    pub phone: Option<String>,
    /// Creation time.
    pub created_dt: String,
    /// The epoch of its key when this was read (1 at creation, one more
    /// per rotation; checked against the owner-signed vault head).
    pub key_epoch: u32,
}

impl From<&IdentityRow> for Identity {
    fn from(r: &IdentityRow) -> Self {
        Identity {
            uuid: r.uuid.clone(),
            name: r.name.clone(),
            inbox: r.inbox.clone(),
            phone: r.phone.clone(),
            created_dt: r.created_dt.clone(),
            key_epoch: r.key_epoch,
        }
    }
}

/// A new identity.
#[derive(Clone, Debug, Default)]
pub struct NewIdentity {
    /// Unique name; also the inbox local part unless `email` is given.
    pub name: String,
    /// Inbox address; default `<name>@<inbox domain>`.
    pub email: Option<String>,
    /// Phone number, normalised to E.164.
    pub phone: Option<String>,
}

/// A grant, as listed (no key material): `{uuid, identity_uuid,
/// agent_public_key, label, key_epoch, created_dt}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct GrantInfo {
    /// The grant's uuid.
    pub uuid: String,
    /// The identity's uuid.
    pub identity_uuid: String,
    /// The agent's public key (`raviagent1…`).
    pub agent_public_key: String,
    /// A label for humans.
    pub label: Option<String>,
    /// The identity key epoch it wraps.
    pub key_epoch: u32,
    /// Creation time.
    pub created_dt: String,
}

impl From<&GrantRow> for GrantInfo {
    fn from(g: &GrantRow) -> Self {
        let pk = <[u8; 32]>::try_from(g.recipient.as_slice())
            .map(|b| AgentPublicKey::from_bytes(b).to_string())
            .unwrap_or_else(|_| "(malformed)".into());
        GrantInfo {
            uuid: g.uuid.clone(),
            identity_uuid: g.identity_uuid.clone(),
            agent_public_key: pk,
            label: g.label.clone(),
            key_epoch: g.key_epoch,
            created_dt: g.created_dt.clone(),
        }
    }
}

/// The outcome of a key rotation: `{identity, key_epoch, records_resealed,
/// records_dropped, grants_kept, grants_removed}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Rotation {
    /// The identity.
    pub identity: Identity,
    /// Its new key epoch.
    pub key_epoch: u32,
    /// Records re-sealed under the new key.
    pub records_resealed: usize,
    /// Records removed because no available key opened them (only when
    /// asked to, see [`crate::RotateOptions::drop_unreadable`]).
    pub records_dropped: usize,
    /// Grants re-wrapped to the new key.
    pub grants_kept: usize,
    /// Grants removed.
    pub grants_removed: usize,
}

/// The outcome of a re-key: `{identities, sessions_revoked}`, one
/// [`Rotation`] per identity.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Rekey {
    /// Every identity's rotation.
    pub identities: Vec<Rotation>,
    /// Sessions ended.
    pub sessions_revoked: usize,
}

/// What `Vault::push` (feature `remote`) uploaded: `{server, vault_id, identities,
/// records, grants}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Push {
    /// The server.
    pub server: String,
    /// The vault's uuid.
    pub vault_id: String,
    /// Identities uploaded.
    pub identities: usize,
    /// Records uploaded.
    pub records: usize,
    /// Grants uploaded.
    pub grants: usize,
}
