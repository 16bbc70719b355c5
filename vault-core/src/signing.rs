//! The vault owner's Ed25519 (RFC 8032) key: it signs everything only the
//! owner may do — the clear header, each identity's metadata, each grant —
//! so that a store that can write rows cannot forge them. Its seed is
//! wrapped under the root key; its public key is in the clear and pinned by
//! clients outside the store.
//!
//! A signed message is a sequence of fields, each `u16be(len) || bytes`:
//! first the format version `0x01`, then the label, then the fields of
//! [`Signed`] in order.

use std::collections::HashSet;
use std::fmt;
use std::sync::Mutex;

use bech32::{Bech32, Hrp};
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};

use crate::error::{Error, Result};
use crate::keys::{
    LABEL_SIG_GRANT, LABEL_SIG_HEADER, LABEL_SIG_IDENTITY, LABEL_SIG_VAULT_HEAD, LABEL_VERIFIED,
    SecretKey,
};
use sha2::Digest;

/// Bech32 human-readable part of owner public keys.
pub const OWNER_HRP: &str = "raviowner";
/// Length of an Ed25519 signature.
pub const SIGNATURE_LEN: usize = 64;

/// The vault owner's Ed25519 public key (kept decompressed: each
/// verification would otherwise decompress it again).
#[derive(Clone, Copy)]
pub struct OwnerPublicKey([u8; 32], VerifyingKey);

impl PartialEq for OwnerPublicKey {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}

impl Eq for OwnerPublicKey {}

impl std::hash::Hash for OwnerPublicKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

/// Where a client keeps the digests of owner signatures it has verified in
/// earlier runs (its private state, beside its pins): a signature met again
/// is not verified again. A digest (SPEC §4a) covers the public key, the
/// whole signed message and the signature, so it stands for one exact
/// verification that succeeded; whoever can write this memory can make the
/// client skip a verification, as whoever can write its pins can make it
/// trust another owner.
pub trait SignatureMemory: Send + Sync {
    /// Whether this digest was remembered.
    fn contains(&self, digest: &[u8; 32]) -> bool;
    /// Remembers the digest of a signature just verified.
    fn insert(&self, digest: [u8; 32]);
}

static SIGNATURE_MEMORY: std::sync::OnceLock<Box<dyn SignatureMemory>> = std::sync::OnceLock::new();

/// The digests of the signatures this process has verified (or found in
/// its [`SignatureMemory`]): a row read twice in one command is checked
/// once.
static VERIFIED_HERE: std::sync::LazyLock<Mutex<HashSet<[u8; 32]>>> =
    std::sync::LazyLock::new(Default::default);

/// Lets every owner-signature check of this process use `memory`. Set once:
/// a second call returns `false` and changes nothing.
pub fn remember_signatures_in(memory: Box<dyn SignatureMemory>) -> bool {
    SIGNATURE_MEMORY.set(memory).is_ok()
}

/// The digest a [`SignatureMemory`] keeps for `signature` by `key` on
/// `message`: SHA-256 over the label and each part, length-prefixed.
fn verified_digest(key: &[u8; 32], message: &[u8], signature: &[u8; SIGNATURE_LEN]) -> [u8; 32] {
    let mut h = sha2::Sha256::new();
    for part in [LABEL_VERIFIED.as_bytes(), key, message, signature] {
        h.update(u64::try_from(part.len()).unwrap_or(u64::MAX).to_be_bytes());
        h.update(part);
    }
    h.finalize().into()
}

impl OwnerPublicKey {
    /// Parses `raviowner1…`, checking the Bech32 checksum and that the bytes
    /// are a valid Ed25519 point.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for anything else.
    pub fn parse(s: &str) -> Result<Self> {
        let bad = || Error::InvalidInput("invalid owner public key (expected raviowner1…)".into());
        let s = s.trim();
        if s.chars().any(|c| c.is_ascii_uppercase()) {
            return Err(bad());
        }
        let (h, data) = crate::agent::decode_bech32(s).map_err(|_| bad())?;
        if h != Hrp::parse(OWNER_HRP).map_err(|_| bad())? {
            return Err(bad());
        }
        let bytes: [u8; 32] = data.try_into().map_err(|_| bad())?;
        let key = VerifyingKey::from_bytes(&bytes).map_err(|_| bad())?;
        Ok(OwnerPublicKey(bytes, key))
    }

    /// From stored bytes.
    ///
    /// # Errors
    /// [`Error::Integrity`] if they are not an Ed25519 public key.
    pub(crate) fn from_stored(bytes: &[u8]) -> Result<Self> {
        let bad = || Error::Integrity("the vault's owner key is malformed".into());
        let bytes: [u8; 32] = bytes.try_into().map_err(|_| bad())?;
        let key = VerifyingKey::from_bytes(&bytes).map_err(|_| bad())?;
        Ok(OwnerPublicKey(bytes, key))
    }

    /// The raw 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Checks `signature` on `msg` (RFC 8032 strict verification), unless
    /// this process verified this very one already or its
    /// [`SignatureMemory`] remembers it verified.
    ///
    /// # Errors
    /// [`Error::Integrity`] naming `what` if it does not verify.
    pub(crate) fn verify(
        &self,
        msg: &Signed<'_>,
        signature: Option<&[u8]>,
        what: &str,
    ) -> Result<()> {
        self.verify_with(
            SIGNATURE_MEMORY.get().map(AsRef::as_ref),
            msg,
            signature,
            what,
        )
    }

    fn verify_with(
        &self,
        memory: Option<&dyn SignatureMemory>,
        msg: &Signed<'_>,
        signature: Option<&[u8]>,
        what: &str,
    ) -> Result<()> {
        let forged = || {
            Error::Integrity(format!(
                "{what} is not signed by the vault owner (forged or tampered)"
            ))
        };
        let sig: [u8; SIGNATURE_LEN] = signature
            .ok_or_else(forged)?
            .try_into()
            .map_err(|_| forged())?;
        let message = msg.message();
        let digest = verified_digest(&self.0, &message, &sig);
        let here = VERIFIED_HERE
            .lock()
            .is_ok_and(|verified| verified.contains(&digest));
        let remembered = memory.is_some_and(|m| m.contains(&digest));
        if !here && !remembered {
            self.1
                .verify_strict(&message, &ed25519_dalek::Signature::from_bytes(&sig))
                .map_err(|_| forged())?;
        }
        if !here && let Ok(mut verified) = VERIFIED_HERE.lock() {
            verified.insert(digest);
        }
        if let Some(m) = memory.filter(|_| !remembered) {
            m.insert(digest);
        }
        Ok(())
    }
}

impl fmt::Display for OwnerPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hrp = Hrp::parse(OWNER_HRP).map_err(|_| fmt::Error)?;
        f.write_str(&bech32::encode::<Bech32>(hrp, &self.0).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for OwnerPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OwnerPublicKey({self})")
    }
}

impl serde::Serialize for OwnerPublicKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// The owner's signing key. The 32-byte seed is zeroized on drop.
pub(crate) struct OwnerKey(SigningKey);

impl fmt::Debug for OwnerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OwnerKey({}, [redacted])", self.public())
    }
}

impl OwnerKey {
    /// A new key from the OS random number generator, with its seed.
    pub(crate) fn generate() -> Result<(SecretKey, Self)> {
        let seed = SecretKey::random()?;
        let key = OwnerKey::from_seed(&seed);
        Ok((seed, key))
    }

    /// The key with this seed.
    pub(crate) fn from_seed(seed: &SecretKey) -> Self {
        OwnerKey(SigningKey::from_bytes(seed.expose()))
    }

    /// The 32-byte seed (to wrap it under a new root key).
    pub(crate) fn seed(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    pub(crate) fn public(&self) -> OwnerPublicKey {
        let key = self.0.verifying_key();
        OwnerPublicKey(key.to_bytes(), key)
    }

    /// The owner's signature on `msg`.
    pub(crate) fn sign(&self, msg: &Signed<'_>) -> Vec<u8> {
        self.0.sign(&msg.message()).to_bytes().to_vec()
    }
}

/// What the owner signs.
#[derive(Clone, Copy, Debug)]
pub enum Signed<'a> {
    /// The vault header's clear fields.
    Header {
        /// The vault's id.
        vault_id: &'a [u8; 16],
        /// The owner's public key.
        owner_public: &'a [u8; 32],
        /// The encoded KDF parameters.
        kdf_params: &'a [u8; 13],
        /// The KDF salt.
        kdf_salt: &'a [u8],
        /// Domain of assigned inbox addresses.
        inbox_domain: &'a str,
        /// Creation time.
        created_dt: &'a str,
    },
    /// An identity's clear metadata.
    Identity {
        /// The vault's id.
        vault_id: &'a [u8; 16],
        /// The identity's uuid.
        identity_id: &'a [u8; 16],
        /// Its name.
        name: &'a str,
        /// Its inbox.
        inbox: &'a str,
        /// Its phone, "" if none.
        phone: &'a str,
        /// Its creation time.
        created_dt: &'a str,
    },
    /// The vault head: its body (SPEC §4c).
    VaultHead {
        /// The vault's id.
        vault_id: &'a [u8; 16],
        /// `u64be(seq) || identities || grants`.
        body: &'a [u8],
    },
    /// A grant of an identity's key to an agent.
    Grant {
        /// The vault's id.
        vault_id: &'a [u8; 16],
        /// The grant's uuid.
        grant_id: &'a [u8; 16],
        /// The identity's uuid.
        identity_id: &'a [u8; 16],
        /// The identity key epoch it wraps.
        epoch: u32,
        /// The agent's X25519 public key.
        recipient: &'a [u8],
        /// The ephemeral X25519 public key.
        ephemeral: &'a [u8],
        /// The wrapped identity key.
        wrapped_key: &'a [u8],
        /// The label, "" if none.
        label: &'a str,
        /// Its creation time.
        created_dt: &'a str,
    },
}

impl Signed<'_> {
    /// The bytes signed.
    pub fn message(&self) -> Vec<u8> {
        let mut m = Vec::with_capacity(256);
        let mut field = |f: &[u8]| {
            // Every field is bounded far below 64 KiB by the writers; a longer
            // one (only from a hostile store) is cut, which fails to verify.
            let len = u16::try_from(f.len()).unwrap_or(u16::MAX);
            m.extend_from_slice(&len.to_be_bytes());
            m.extend_from_slice(&f[..usize::from(len)]);
        };
        field(&[0x01]);
        match *self {
            Signed::Header {
                vault_id,
                owner_public,
                kdf_params,
                kdf_salt,
                inbox_domain,
                created_dt,
            } => {
                field(LABEL_SIG_HEADER.as_bytes());
                field(vault_id);
                field(owner_public);
                field(kdf_params);
                field(kdf_salt);
                field(inbox_domain.as_bytes());
                field(created_dt.as_bytes());
            }
            Signed::Identity {
                vault_id,
                identity_id,
                name,
                inbox,
                phone,
                created_dt,
            } => {
                field(LABEL_SIG_IDENTITY.as_bytes());
                field(vault_id);
                field(identity_id);
                field(name.as_bytes());
                field(inbox.as_bytes());
                field(phone.as_bytes());
                field(created_dt.as_bytes());
            }
            Signed::VaultHead { vault_id, body } => {
                field(LABEL_SIG_VAULT_HEAD.as_bytes());
                field(vault_id);
                // The body can exceed a u16 field: it is the last bytes,
                // preceded by its u32be length.
                m.extend_from_slice(&u32::try_from(body.len()).unwrap_or(u32::MAX).to_be_bytes());
                m.extend_from_slice(body);
            }
            Signed::Grant {
                vault_id,
                grant_id,
                identity_id,
                epoch,
                recipient,
                ephemeral,
                wrapped_key,
                label,
                created_dt,
            } => {
                field(LABEL_SIG_GRANT.as_bytes());
                field(vault_id);
                field(grant_id);
                field(identity_id);
                field(&epoch.to_be_bytes());
                field(recipient);
                field(ephemeral);
                field(wrapped_key);
                field(label.as_bytes());
                field(created_dt.as_bytes());
            }
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> OwnerKey {
        OwnerKey::from_seed(&SecretKey::from_bytes([0x0e; 32]))
    }

    fn identity<'a>(name: &'a str) -> Signed<'a> {
        Signed::Identity {
            vault_id: &[0xaa; 16],
            identity_id: &[0xbb; 16],
            name,
            inbox: "alice@example.com",
            phone: "",
            created_dt: "2026-01-01T00:00:00Z",
        }
    }

    #[test]
    fn sign_verify_and_refuse_changes() {
        let k = key();
        let sig = k.sign(&identity("alice"));
        let pk = k.public();
        pk.verify(&identity("alice"), Some(&sig), "x").unwrap();
        for bad in [
            pk.verify(&identity("mallory"), Some(&sig), "x"),
            pk.verify(&identity("alice"), None, "x"),
            pk.verify(&identity("alice"), Some(&sig[..63]), "x"),
        ] {
            assert!(matches!(bad, Err(Error::Integrity(_))));
        }
        let other = OwnerKey::from_seed(&SecretKey::from_bytes([0x0f; 32])).public();
        assert!(other.verify(&identity("alice"), Some(&sig), "x").is_err());
    }

    #[derive(Default)]
    struct Remembered(std::sync::Mutex<Vec<[u8; 32]>>);

    impl SignatureMemory for Remembered {
        fn contains(&self, digest: &[u8; 32]) -> bool {
            self.0.lock().unwrap().contains(digest)
        }
        fn insert(&self, digest: [u8; 32]) {
            self.0.lock().unwrap().push(digest);
        }
    }

    /// A signature verified once is remembered and not verified again; a
    /// failed one is not remembered; what is remembered for one (key,
    /// message, signature) vouches for nothing else.
    #[test]
    fn remembered_signatures_skip_only_themselves() {
        let k = key();
        let sig = k.sign(&identity("alice"));
        let pk = k.public();
        let m = Remembered::default();
        pk.verify_with(Some(&m), &identity("alice"), Some(&sig), "x")
            .unwrap();
        assert_eq!(m.0.lock().unwrap().len(), 1);
        let mut forged = sig.clone();
        forged[0] ^= 1;
        for bad in [
            pk.verify_with(Some(&m), &identity("mallory"), Some(&sig), "x"),
            pk.verify_with(Some(&m), &identity("alice"), Some(&forged), "x"),
        ] {
            assert!(matches!(bad, Err(Error::Integrity(_))));
        }
        let other = OwnerKey::from_seed(&SecretKey::from_bytes([0x0f; 32])).public();
        assert!(
            other
                .verify_with(Some(&m), &identity("alice"), Some(&sig), "x")
                .is_err()
        );
        assert_eq!(m.0.lock().unwrap().len(), 1);
        // The remembered digest is taken at its word: this one stands for a
        // forged signature, and verifying it succeeds without Ed25519.
        let planted = Remembered::default();
        planted.insert(verified_digest(
            pk.as_bytes(),
            &identity("mallory").message(),
            &forged.clone().try_into().unwrap(),
        ));
        pk.verify_with(Some(&planted), &identity("mallory"), Some(&forged), "x")
            .unwrap();
        assert_eq!(
            verified_digest(
                pk.as_bytes(),
                &identity("alice").message(),
                &sig.clone().try_into().unwrap()
            ),
            m.0.lock().unwrap()[0]
        );
    }

    #[test]
    fn public_key_text() {
        let pk = key().public();
        let text = pk.to_string();
        assert!(text.starts_with("raviowner1"));
        assert_eq!(OwnerPublicKey::parse(&text).unwrap(), pk);
        let mut typo: Vec<char> = text.chars().collect();
        let i = typo.len() - 3;
        typo[i] = if typo[i] == 'q' { 'p' } else { 'q' };
        assert!(OwnerPublicKey::parse(&typo.into_iter().collect::<String>()).is_err());
        assert!(OwnerPublicKey::parse("raviagent1qqqq").is_err());
        assert!(!format!("{:?}", key()).contains("0e0e"));
    }

    /// Ed25519 is deterministic: a fixed seed and message give fixed bytes
    /// (the golden vector of SPEC §4a).
    #[test]
    fn golden_identity_signature() {
        let msg = identity("alice").message();
        assert_eq!(
            data_encoding::HEXLOWER.encode(&msg),
            "000101\
             0014726176692f76312f7369672f6964656e74697479\
             0010aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\
             0010bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\
             0005616c696365\
             0011616c696365406578616d706c652e636f6d\
             0000\
             0014323032362d30312d30315430303a30303a30305a"
        );
        // Reproduced with libsodium (PyNaCl's SigningKey(b"\x0e" * 32)).
        assert_eq!(
            data_encoding::HEXLOWER.encode(&key().sign(&identity("alice"))),
            "4966d0695d3185c1bfae6869675b26ef34a987172bfc60922ff094ab07af71ec\
             9a2953e5a3040212b8820736f6cd44cd8524636614d1eb54e425e55f9af19c0c"
        );
        assert_eq!(
            data_encoding::HEXLOWER.encode(key().public().as_bytes()),
            "0beef5a9e679e6a3e134fe27837bff32c7cb5f5d44ea09bcb0e542bad6a4c0cc"
        );
    }
}
