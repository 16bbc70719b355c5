//! vault-core: the end-to-end-encrypted vault engine behind `ravi`.
//!
//! A [`Vault`] is opened from a file. Unlocking it with its passphrase (or a
//! session token) gives an [`Unlocked`] vault, which holds the root key;
//! opening an identity gives an [`IdentityVault`] (that identity's key) whose
//! passwords, secrets and TOTP seeds are sealed records. An agent's key opens
//! only the identities granted to it, through [`Vault::access`].
//!
//! ```no_run
//! # fn main() -> vault_core::Result<()> {
//! use vault_core::{Credential, Passphrase, Vault};
//! let vault = Vault::open(std::path::Path::new("vault.db"))?;
//! let access = vault.access(&Credential::Passphrase(Passphrase::new("pw".into())?))?;
//! let identity = vault.find_identity("alice")?;
//! let records = access.open_identity(&identity)?;
//! println!("{}", records.get_secret("API_KEY")?.value.expose());
//! # Ok(())
//! # }
//! ```
//!
//! Storage sits behind a narrow seam (the `Backend` trait: reads, and one
//! atomic commit of a batch of row writes guarded by preconditions) that
//! knows nothing of keys or plaintext. The seam, the raw envelope functions
//! and the fuzz entry points are visible only with the `hazmat` feature,
//! which the vector tests, benches and fuzz targets turn on. See
//! `docs/SPEC.md` for every format and derivation and
//! `docs/ARCHITECTURE.md` for the layers.

mod access;
mod agent;
#[cfg(feature = "hazmat")]
pub mod backend;
#[cfg(not(feature = "hazmat"))]
mod backend;
mod clock;
mod envelope;
mod error;
mod fsutil;
#[cfg(feature = "hazmat")]
#[doc(hidden)]
pub mod fuzz_entry;
mod generator;
#[cfg(feature = "hazmat")]
pub mod hazmat;
mod identity_vault;
mod keys;
mod model;
mod names;
mod primitives;
mod records;
mod recovery;
mod sealer;
mod secret;
mod session;
mod signing;
mod state;
mod totp;
mod tree;
mod unlocked;
mod vault;
mod vault_head;

pub use access::{Access, Credential};
pub use agent::{AgentPublicKey, AgentSecretKey};
pub use clock::{Clock, SystemClock};
pub use error::{Candidate, Error, ErrorClass, Result};
pub use fsutil::ensure_private_dir;
pub use generator::{DEFAULT_LENGTH, GeneratorOptions, generate_password};
pub use identity_vault::IdentityVault;
pub use keys::{KdfParams, Passphrase};
pub use model::{
    DEFAULT_INBOX_DOMAIN, GrantInfo, Identity, InitOptions, NewIdentity, Push, Rekey, Rotation,
    VaultInfo,
};
pub use records::{
    ExportSet, IfExists, ImportReport, ImportSet, NewPassword, PasswordEdit, PasswordEntry,
    PasswordListing, SecretEntry, SecretListing, Skipped, TotpEntry,
};
pub use recovery::{ClientMemory, Forgetful, RotateOptions, WrappedKey};
pub use secret::SecretString;
pub use session::{DEFAULT_TTL, MAX_TTL, SessionToken, parse_ttl};
pub use signing::{OwnerPublicKey, SignatureMemory, remember_signatures_in};
pub use totp::{TotpAlgorithm, TotpCode, TotpParams};
pub use unlocked::{Adoption, NewSession, ROTATION_CHUNK, Unlocked};
pub use vault::Vault;
