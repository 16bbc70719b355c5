//! The key schedule: key types, KDF parameters and domain-separation labels.
//!
//! ```text
//! passphrase --Argon2id(salt, params)--> KEK
//! KEK  wraps  RK   (root key, random; one per vault)
//! RK   wraps  IK   (identity key, random; one per identity and key epoch)
//! IK --HKDF-SHA256(info = LABEL_SEAL_KEY)--> record seal key
//! IK --HKDF-SHA256(info = LABEL_INDEX_KEY)--> blind-index key
//! ```

use std::fmt;

use zeroize::{Zeroize, Zeroizing};

use crate::error::{Error, Result};
use crate::primitives::{KEY_LEN, argon2id, hkdf_sha256, random_bytes};

/// Associated-data label of the root key wrapped under the KEK.
pub const LABEL_WRAP_ROOT_KEY: &str = "ravi/v1/wrap/root-key";
/// Associated-data label of an identity key wrapped under the root key.
pub const LABEL_WRAP_IDENTITY_KEY: &str = "ravi/v1/wrap/identity-key";
/// Associated-data label of an identity key wrapped to an agent (a grant).
pub const LABEL_WRAP_GRANT: &str = "ravi/v1/wrap/grant";
/// Associated-data label of the root key sealed under a session key.
pub const LABEL_WRAP_SESSION: &str = "ravi/v1/wrap/session";
/// Associated-data label of a sealed record.
pub const LABEL_RECORD: &str = "ravi/v1/record";
/// Associated-data label of an identity's previous key sealed in its head
/// during a rotation's window (SPEC §4e).
pub const LABEL_WRAP_PREVIOUS_KEY: &str = "ravi/v1/wrap/previous-key";
/// Label of the owner's signing key wrapped under the root key.
pub const LABEL_WRAP_OWNER_KEY: &str = "ravi/v1/wrap/owner-key";
/// Label of the owner's signature on the vault header.
pub const LABEL_SIG_HEADER: &str = "ravi/v1/sig/header";
/// Label of the owner's signature on an identity's metadata.
pub const LABEL_SIG_IDENTITY: &str = "ravi/v1/sig/identity";
/// Label of the owner's signature on the vault head.
pub const LABEL_SIG_VAULT_HEAD: &str = "ravi/v1/sig/vault-head";
/// Label of the owner's signature on a grant.
pub const LABEL_SIG_GRANT: &str = "ravi/v1/sig/grant";
/// Domain separation of the digests a client keeps of owner signatures it
/// verified (SPEC §4a).
pub const LABEL_VERIFIED: &str = "ravi/v1/verified-signature";
/// HKDF info of the record seal key derived from an identity key.
pub const LABEL_SEAL_KEY: &str = "ravi/v1/identity/seal-key";
/// HKDF info of the blind-index key derived from an identity key.
pub const LABEL_INDEX_KEY: &str = "ravi/v1/identity/blind-index-key";
/// HKDF info of the identity-head key derived from an identity key.
pub const LABEL_HEAD_KEY: &str = "ravi/v1/identity/head-key";
/// Label of an identity head's MAC.
pub const LABEL_HEAD: &str = "ravi/v1/head/identity";
/// Label of a record's leaf in an identity head's commitment.
pub const LABEL_HEAD_LEAF: &str = "ravi/v1/head/leaf";

/// Length of the Argon2id salt stored with a vault.
pub const SALT_LEN: usize = 16;

/// A 32-byte symmetric key that is zeroized on drop and never printed.
///
/// Equality is constant-time.
#[derive(Clone)]
pub struct SecretKey(Zeroizing<[u8; KEY_LEN]>);

impl PartialEq for SecretKey {
    fn eq(&self, other: &Self) -> bool {
        use subtle::ConstantTimeEq;
        self.0.ct_eq(&*other.0).into()
    }
}

impl Eq for SecretKey {}

impl SecretKey {
    /// A fresh key from the OS random number generator.
    ///
    /// # Errors
    /// Fails only if the OS random number generator fails.
    pub fn random() -> Result<Self> {
        let mut k = Zeroizing::new([0u8; KEY_LEN]);
        random_bytes(k.as_mut())?;
        Ok(SecretKey(k))
    }

    /// Wraps existing key bytes (for test vectors and unwrapping).
    pub(crate) fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        SecretKey(Zeroizing::new(bytes))
    }

    /// The key bytes. Callers must not copy them anywhere that outlives the key.
    pub(crate) fn expose(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// Parses key bytes from an unwrapped plaintext of exactly 32 bytes.
    pub(crate) fn from_slice(bytes: &[u8]) -> Option<Self> {
        let arr: [u8; KEY_LEN] = bytes.try_into().ok()?;
        Some(SecretKey(Zeroizing::new(arr)))
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey([redacted])")
    }
}

/// A passphrase, zeroized on drop and never printed.
#[derive(Clone)]
pub struct Passphrase(Zeroizing<String>);

impl Passphrase {
    /// Wraps a passphrase. Rejects an empty one.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when the passphrase is empty.
    pub fn new(mut s: String) -> Result<Self> {
        if s.is_empty() {
            s.zeroize();
            return Err(Error::invalid("the passphrase is empty"));
        }
        Ok(Passphrase(Zeroizing::new(s)))
    }

    fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Passphrase([redacted])")
    }
}

/// Argon2id cost parameters, stored with the vault and bound into the
/// associated data of the wrapped root key.
///
/// Serialises as `{"algorithm": "argon2id", "memory_kib", "iterations",
/// "parallelism"}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KdfParams {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Number of passes.
    pub iterations: u32,
    /// Degree of parallelism (lanes).
    pub parallelism: u32,
}

impl KdfParams {
    /// RFC 9106's second recommended option: 64 MiB, t=3, p=4.
    pub const DEFAULT: KdfParams = KdfParams {
        memory_kib: 64 * 1024,
        iterations: 3,
        parallelism: 4,
    };
    /// Largest memory cost a vault may ask for (1 GiB), so a hostile file
    /// cannot make `ravi` allocate without bound.
    pub const MAX_MEMORY_KIB: u32 = 1024 * 1024;
    /// Largest pass count a vault may ask for.
    pub const MAX_ITERATIONS: u32 = 16;
    /// Largest memory × passes a vault may ask for (3 GiB-passes: about
    /// 6 s of one Argon2id derivation on the 2-core reference machine, where
    /// the default 64 MiB × 3 takes 0.12 s), so a hostile header cannot stall
    /// a client for long.
    pub const MAX_COST_KIB_PASSES: u64 = 3 * 1024 * 1024;
    /// Largest parallelism a vault may ask for.
    pub const MAX_PARALLELISM: u32 = 16;

    /// Checks the parameters are within the bounds ravi accepts.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming the parameter out of range.
    pub fn validate(&self) -> Result<()> {
        if self.parallelism == 0 || self.parallelism > Self::MAX_PARALLELISM {
            return Err(Error::invalid(format!(
                "KDF parallelism must be between 1 and {}",
                Self::MAX_PARALLELISM
            )));
        }
        if self.iterations == 0 || self.iterations > Self::MAX_ITERATIONS {
            return Err(Error::invalid(format!(
                "KDF iterations must be between 1 and {}",
                Self::MAX_ITERATIONS
            )));
        }
        if self.memory_kib < 1024 || self.memory_kib > Self::MAX_MEMORY_KIB {
            return Err(Error::invalid(format!(
                "KDF memory must be between 1 MiB and {} MiB",
                Self::MAX_MEMORY_KIB / 1024
            )));
        }
        if self.memory_kib < 8 * self.parallelism {
            return Err(Error::invalid("KDF memory must be at least 8 KiB per lane"));
        }
        if u64::from(self.memory_kib) * u64::from(self.iterations) > Self::MAX_COST_KIB_PASSES {
            return Err(Error::invalid(format!(
                "KDF memory × iterations must be at most {} MiB-passes",
                Self::MAX_COST_KIB_PASSES / 1024
            )));
        }
        Ok(())
    }

    /// Whether these parameters are weaker than [`KdfParams::DEFAULT`].
    pub fn is_weaker_than_default(&self) -> bool {
        self.memory_kib < Self::DEFAULT.memory_kib || self.iterations < Self::DEFAULT.iterations
    }

    /// The 13-byte encoding bound into associated data:
    /// `0x01 (Argon2id v1.3) || m_kib u32be || t u32be || p u32be`.
    pub fn encode(&self) -> [u8; 13] {
        let mut out = [0u8; 13];
        out[0] = 0x01;
        out[1..5].copy_from_slice(&self.memory_kib.to_be_bytes());
        out[5..9].copy_from_slice(&self.iterations.to_be_bytes());
        out[9..13].copy_from_slice(&self.parallelism.to_be_bytes());
        out
    }
}

impl serde::Serialize for KdfParams {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("KdfParams", 4)?;
        st.serialize_field("algorithm", "argon2id")?;
        st.serialize_field("memory_kib", &self.memory_kib)?;
        st.serialize_field("iterations", &self.iterations)?;
        st.serialize_field("parallelism", &self.parallelism)?;
        st.end()
    }
}

/// Derives the key-encryption key from a passphrase.
pub(crate) fn derive_kek(
    passphrase: &Passphrase,
    salt: &[u8],
    params: &KdfParams,
) -> Result<SecretKey> {
    params.validate()?;
    let k = argon2id(
        passphrase.as_bytes(),
        salt,
        params.memory_kib,
        params.iterations,
        params.parallelism,
    )?;
    Ok(SecretKey(k))
}

/// The keys an identity key expands into.
pub(crate) struct IdentityKeys {
    /// Seals and opens the identity's records.
    pub seal: SecretKey,
    /// Keys the blind index of record names.
    pub index: SecretKey,
    /// Keys the identity head's MAC and its record-set commitment.
    pub head: SecretKey,
}

impl IdentityKeys {
    pub(crate) fn derive(identity_key: &SecretKey) -> Self {
        IdentityKeys {
            seal: SecretKey(hkdf_sha256(
                identity_key.expose(),
                LABEL_SEAL_KEY.as_bytes(),
            )),
            index: SecretKey(hkdf_sha256(
                identity_key.expose(),
                LABEL_INDEX_KEY.as_bytes(),
            )),
            head: SecretKey(hkdf_sha256(
                identity_key.expose(),
                LABEL_HEAD_KEY.as_bytes(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A hostile header cannot ask for more than a few seconds of work.
    #[test]
    fn kdf_cost_is_bounded() {
        let p = |memory_kib, iterations| KdfParams {
            memory_kib,
            iterations,
            parallelism: 4,
        };
        KdfParams::DEFAULT.validate().unwrap();
        p(1024 * 1024, 3).validate().unwrap();
        for bad in [
            p(1024 * 1024, 4),
            p(2 * 1024 * 1024, 1),
            p(65536, 17),
            p(4 * 1024 * 1024, 1),
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn debug_is_redacted() {
        let k = SecretKey::from_bytes([0x41; 32]);
        assert_eq!(format!("{k:?}"), "SecretKey([redacted])");
        let p = Passphrase::new("hunter2".into()).unwrap();
        assert!(!format!("{p:?}").contains("hunter2"));
    }

    #[test]
    fn empty_passphrase_rejected() {
        assert!(Passphrase::new(String::new()).is_err());
    }

    #[test]
    fn params_bounds() {
        assert!(KdfParams::DEFAULT.validate().is_ok());
        assert!(!KdfParams::DEFAULT.is_weaker_than_default());
        let weak = KdfParams {
            memory_kib: 1024,
            iterations: 1,
            parallelism: 1,
        };
        assert!(weak.validate().is_ok());
        assert!(weak.is_weaker_than_default());
        for bad in [
            KdfParams {
                memory_kib: 512,
                ..weak
            },
            KdfParams {
                iterations: 0,
                ..weak
            },
            KdfParams {
                parallelism: 0,
                ..weak
            },
            KdfParams {
                memory_kib: u32::MAX,
                ..weak
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
        assert_eq!(
            data_encoding::HEXLOWER.encode(&weak.encode()),
            "01000004000000000100000001"
        );
    }

    /// Golden vector: identity-key expansion is fixed by the labels.
    #[test]
    fn identity_key_expansion_golden() {
        let ik = SecretKey::from_bytes([0x11; 32]);
        let keys = IdentityKeys::derive(&ik);
        assert_ne!(keys.seal, keys.index);
        assert_eq!(
            keys.seal.expose(),
            hkdf_sha256(&[0x11; 32], b"ravi/v1/identity/seal-key").as_ref()
        );
    }
}
