//! Internals for auditors, vector tests, benches and fuzzing: raw
//! envelopes with caller-chosen nonces, padding, labels, raw key bytes and
//! record kinds. Nothing here checks what the vault API checks; an
//! application never needs it. Only with the `hazmat` feature.

pub use crate::envelope::{
    ENVELOPE_VERSION, PAD_MIN_BUCKET, SealContext, open, pad, padded_len, seal, seal_with_nonce,
    unpad,
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
