//! vault-core: the end-to-end-encrypted vault engine behind `ravi`.
//!
//! A [`Vault`] is a SQLite file. Unlocking it with its passphrase gives an
//! [`Unlocked`] vault (the root key); opening an identity gives an
//! [`IdentityVault`] (that identity's key) whose passwords and secrets are
//! sealed records. See `docs/SPEC.md` for every format and derivation.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![deny(rustdoc::broken_intra_doc_links)]

mod access;
mod agent;
pub mod config;
mod envelope;
mod error;
#[doc(hidden)]
pub mod fuzz_entry;
mod generator;
mod identity_vault;
mod keys;
pub mod names;
mod primitives;
mod records;
mod sealer;
mod secret;
mod session;
pub mod store;
pub mod totp;
mod totp_records;
mod vault;

pub use access::{Access, Credential, GrantInfo, NewSession, Rotation};
pub use agent::{AgentPublicKey, AgentSecretKey};
pub use envelope::{
    ENVELOPE_VERSION, PAD_MIN_BUCKET, SealContext, open, pad, padded_len, seal, seal_with_nonce,
    unpad,
};
pub use error::{Candidate, Error, ErrorClass, Result};
pub use generator::{DEFAULT_LENGTH, GeneratorOptions, generate_password};
pub use identity_vault::IdentityVault;
pub use keys::{
    KdfParams, LABEL_INDEX_KEY, LABEL_RECORD, LABEL_SEAL_KEY, LABEL_WRAP_GRANT,
    LABEL_WRAP_IDENTITY_KEY, LABEL_WRAP_ROOT_KEY, LABEL_WRAP_SESSION, Passphrase, SecretKey,
};
pub use records::{
    KIND_PASSWORD, KIND_SECRET, KIND_TOTP, NewPassword, PasswordEdit, PasswordEntry, SecretEntry,
    TotpEntry,
};
pub use secret::SecretString;
pub use session::{DEFAULT_TTL, MAX_TTL, SessionToken, parse_ttl};
pub use totp::{TotpAlgorithm, TotpCode, TotpParams};
pub use vault::{
    DEFAULT_INBOX_DOMAIN, Identity, InitOptions, NewIdentity, Unlocked, Vault, VaultInfo,
};
