//! Internals for auditors, vector tests, benches and fuzzing: raw
//! envelopes with caller-chosen nonces, padding, labels, raw key bytes and
//! record kinds. Nothing here checks what the vault API checks; an
//! application never needs it. Only with the `hazmat` feature.

pub use crate::envelope::{
    ENVELOPE_VERSION, ENVELOPE_VERSION_PADME, PAD_MIN_BUCKET, RecordPlaintext, SealContext, open,
    open_record, pad, padded_len, padme_len, seal, seal_record, seal_with_nonce, unpad,
};
pub use crate::keys::{
    LABEL_INDEX_KEY, LABEL_RECORD, LABEL_SEAL_KEY, LABEL_WRAP_GRANT, LABEL_WRAP_IDENTITY_KEY,
    LABEL_WRAP_ROOT_KEY, LABEL_WRAP_SESSION, SecretKey,
};
pub use crate::records::{KIND_PASSWORD, KIND_SECRET, KIND_TOTP};

use crate::agent::AgentSecretKey;

/// A key from raw bytes.
pub fn key_from_bytes(bytes: [u8; 32]) -> SecretKey {
    SecretKey::from_bytes(bytes)
}

/// A key's raw bytes.
pub fn key_bytes(key: &SecretKey) -> &[u8; 32] {
    key.expose()
}

/// An agent key from a fixed seed (test vectors only: real keys come from
/// [`AgentSecretKey::generate`]).
pub fn agent_key_from_seed(seed: [u8; 32]) -> AgentSecretKey {
    AgentSecretKey::from_seed(seed)
}

/// What anyone who can read the store can do with public data alone: wrap
/// an identity key of their choice to an agent's public key, with the
/// associated data of a grant (SPEC §2). The attack tests use it to forge
/// grants; the owner's signature is what makes agents refuse them.
#[allow(clippy::too_many_arguments)]
pub fn wrap_to_agent(
    agent: &crate::AgentPublicKey,
    vault_id: &[u8; 16],
    identity_id: &[u8; 16],
    grant_id: &[u8; 16],
    epoch: u32,
    name: &str,
    inbox: &str,
    phone: &str,
    identity_key: &SecretKey,
) -> crate::Result<([u8; 32], Vec<u8>)> {
    let ctx = crate::agent::GrantContext {
        vault_id,
        identity_id,
        grant_id,
        epoch,
        name,
        inbox,
        phone,
    };
    crate::agent::wrap_to_agent(agent, &ctx, identity_key)
}

/// Seals a secret record under an identity key, as a client would: the
/// blind index of `key` and the envelope of the padded body. Returns
/// `(blind_index, ciphertext)`.
///
/// # Errors
/// If `identity_uuid` or `record_uuid` is not a uuid.
pub fn seal_secret_record(
    vault_id: [u8; 16],
    identity_uuid: &str,
    epoch: u32,
    identity_key: &SecretKey,
    record_uuid: &str,
    key: &str,
    value: &str,
) -> crate::Result<(Vec<u8>, Vec<u8>)> {
    let sealer = crate::sealer::RecordSealer::new(vault_id, identity_uuid, epoch, identity_key)?;
    let body = crate::records::SecretBody {
        key: key.into(),
        value: value.into(),
        notes: None,
        created_dt: "2026-01-01T00:00:00Z".into(),
        updated_dt: "2026-01-01T00:00:00Z".into(),
    };
    let row = sealer.seal_row(record_uuid, &body)?;
    Ok((row.blind_index, row.ciphertext))
}
