//! What an owner's client keeps of an identity outside the store, and the
//! options of a rotation that uses it to recover an identity the store
//! rolled back (SPEC §4d).
//!
//! A store that restores an identity's row from a backup (undoing a
//! revocation, say) leaves its records sealed under a key it no longer
//! serves. The owner's client that saw the newer key remembers it, wrapped
//! under the root key exactly as in the vault, and a rotation opens those
//! records with it and re-keys the identity past both epochs.

use crate::agent::AgentPublicKey;
use crate::error::{Error, Result};

/// Longest wrapped key accepted from a client's memory (a 32-byte key
/// sealed under the root key is 73 bytes).
const MAX_WRAPPED: usize = 256;

/// An identity key wrapped under the vault's root key, at its key epoch:
/// ciphertext only, safe to keep beside the vault. Its text form is
/// `EPOCH:HEX`.
#[derive(Clone, PartialEq, Eq)]
pub struct WrappedKey {
    pub(crate) key_epoch: u32,
    pub(crate) wrapped: Vec<u8>,
}

impl std::fmt::Debug for WrappedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WrappedKey")
            .field("key_epoch", &self.key_epoch)
            .field("len", &self.wrapped.len())
            .finish()
    }
}

impl WrappedKey {
    /// The key epoch it was wrapped for.
    #[must_use]
    pub fn key_epoch(&self) -> u32 {
        self.key_epoch
    }

    /// `EPOCH:HEX`.
    #[must_use]
    pub fn to_text(&self) -> String {
        format!(
            "{}:{}",
            self.key_epoch,
            data_encoding::HEXLOWER.encode(&self.wrapped)
        )
    }

    /// Parses `EPOCH:HEX` (surrounding whitespace ignored).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for anything else.
    pub fn from_text(text: &str) -> Result<Self> {
        let bad = || Error::InvalidInput("not a remembered identity key (EPOCH:HEX)".into());
        let (epoch, hex) = text.trim().split_once(':').ok_or_else(bad)?;
        let key_epoch = epoch.parse().map_err(|_| bad())?;
        let wrapped = data_encoding::HEXLOWER
            .decode(hex.as_bytes())
            .map_err(|_| bad())?;
        if wrapped.is_empty() || wrapped.len() > MAX_WRAPPED {
            return Err(bad());
        }
        Ok(WrappedKey { key_epoch, wrapped })
    }
}

/// What an owner's client remembers of an identity outside the store.
pub trait ClientMemory {
    /// The newest head sequence this client saw for the identity.
    ///
    /// # Errors
    /// When the memory cannot be read.
    fn newest_head(&self, identity_uuid: &str) -> Result<Option<u64>>;

    /// The newest wrapped key this client saw for the identity.
    ///
    /// # Errors
    /// When the memory cannot be read.
    fn newest_key(&self, identity_uuid: &str) -> Result<Option<WrappedKey>>;
}

/// A client that remembers nothing.
#[derive(Clone, Copy, Debug, Default)]
pub struct Forgetful;

impl ClientMemory for Forgetful {
    fn newest_head(&self, _: &str) -> Result<Option<u64>> {
        Ok(None)
    }

    fn newest_key(&self, _: &str) -> Result<Option<WrappedKey>> {
        Ok(None)
    }
}

/// How [`crate::Unlocked::rotate_identity`] rotates.
#[derive(Clone, Copy)]
pub struct RotateOptions<'a> {
    /// Remove this agent's grant first (a revocation).
    pub revoke: Option<&'a AgentPublicKey>,
    /// What this client remembers, to recover a rolled-back identity.
    pub memory: &'a dyn ClientMemory,
    /// Remove the records no available key opens (sealed under a key the
    /// store withheld, or damaged) instead of refusing to rotate.
    pub drop_unreadable: bool,
    /// Complete the rotation under way (a rotation in chunks that stopped
    /// after it switched keys) instead of starting one.
    pub resume: bool,
    /// Records per transaction of a rotation in chunks; an identity with
    /// at most this many is rotated in one transaction. `None`:
    /// [`crate::ROTATION_CHUNK`].
    pub chunk_records: Option<usize>,
}

impl Default for RotateOptions<'_> {
    fn default() -> Self {
        RotateOptions {
            revoke: None,
            memory: &Forgetful,
            drop_unreadable: false,
            resume: false,
            chunk_records: None,
        }
    }
}

impl std::fmt::Debug for RotateOptions<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RotateOptions")
            .field("revoke", &self.revoke)
            .field("drop_unreadable", &self.drop_unreadable)
            .field("resume", &self.resume)
            .field("chunk_records", &self.chunk_records)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_round_trip_and_bounds() {
        let k = WrappedKey {
            key_epoch: 7,
            wrapped: vec![0xab; 73],
        };
        assert_eq!(WrappedKey::from_text(&k.to_text()).unwrap(), k);
        for bad in [
            "",
            "7",
            "x:ab",
            "7:zz",
            "7:",
            &format!("1:{}", "ab".repeat(300)),
        ] {
            assert!(WrappedKey::from_text(bad).is_err(), "{bad}");
        }
        assert!(!format!("{k:?}").contains("abab"));
    }
}
