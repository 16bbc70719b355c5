//! The envelope format of every ciphertext ravi stores, its associated data,
//! and the padding of record plaintexts.
//!
//! ```text
//! envelope = version (1 byte, 0x01) || nonce (24 bytes) || AEAD ciphertext || tag (16 bytes)
//! AD       = for each field: len (u16 big-endian) || field bytes
//!            fields = [version byte, label, context fields...]
//! ```

use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::keys::{
    LABEL_RECORD, LABEL_WRAP_GRANT, LABEL_WRAP_IDENTITY_KEY, LABEL_WRAP_OWNER_KEY,
    LABEL_WRAP_ROOT_KEY, LABEL_WRAP_SESSION, SecretKey,
};
use crate::primitives::{NONCE_LEN, TAG_LEN, aead_open, aead_seal, random_bytes};

/// The envelope format version this build writes and reads.
pub const ENVELOPE_VERSION: u8 = 0x01;
/// Smallest possible envelope: header, nonce and tag around an empty plaintext.
pub const ENVELOPE_MIN_LEN: usize = 1 + NONCE_LEN + TAG_LEN;
/// Smallest padding bucket of a record plaintext.
pub const PAD_MIN_BUCKET: usize = 64;
/// Largest record plaintext ravi accepts (before padding).
pub const MAX_RECORD_LEN: usize = 1 << 20;

/// The context a ciphertext is bound to through its associated data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SealContext<'a> {
    /// The root key, wrapped under the passphrase-derived KEK.
    RootKey {
        /// The vault's id (16 bytes).
        vault_id: &'a [u8; 16],
        /// The encoded KDF parameters ([`crate::KdfParams::encode`]).
        kdf_params: &'a [u8; 13],
        /// The KDF salt.
        salt: &'a [u8],
    },
    /// An identity key, wrapped under the root key.
    IdentityKey {
        /// The vault's id.
        vault_id: &'a [u8; 16],
        /// The identity's uuid (16 bytes).
        identity_id: &'a [u8; 16],
        /// The identity key's epoch.
        epoch: u32,
        /// The identity's routing metadata: name, inbox, phone ("" if none).
        name: &'a str,
        /// Inbox address.
        inbox: &'a str,
        /// Phone number or "".
        phone: &'a str,
    },
    /// An identity key wrapped to an agent's X25519 key.
    Grant {
        /// The vault's id.
        vault_id: &'a [u8; 16],
        /// The identity's uuid.
        identity_id: &'a [u8; 16],
        /// The grant's uuid.
        grant_id: &'a [u8; 16],
        /// The identity key's epoch.
        epoch: u32,
        /// The ephemeral X25519 public key.
        ephemeral: &'a [u8; 32],
        /// The agent's X25519 public key.
        recipient: &'a [u8; 32],
        /// Identity name.
        name: &'a str,
        /// Inbox address.
        inbox: &'a str,
        /// Phone number or "".
        phone: &'a str,
    },
    /// The owner's Ed25519 signing key (its 32-byte seed), wrapped under
    /// the root key.
    OwnerKey {
        /// The vault's id.
        vault_id: &'a [u8; 16],
        /// The owner's Ed25519 public key.
        owner_public: &'a [u8; 32],
    },
    /// The root key sealed under a session key.
    Session {
        /// The vault's id.
        vault_id: &'a [u8; 16],
        /// The session's id (16 bytes).
        session_id: &'a [u8; 16],
        /// Expiry, Unix seconds.
        expires_at: u64,
    },
    /// A record of an identity.
    Record {
        /// The vault's id.
        vault_id: &'a [u8; 16],
        /// The identity's uuid.
        identity_id: &'a [u8; 16],
        /// The record kind (1 password, 2 secret, 3 TOTP).
        kind: u8,
        /// The record's uuid.
        record_id: &'a [u8; 16],
        /// The identity key epoch the record is sealed under.
        epoch: u32,
    },
}

impl SealContext<'_> {
    /// The associated-data bytes of this context.
    pub fn associated_data(&self) -> Vec<u8> {
        let mut ad = Vec::with_capacity(128);
        let mut field = |f: &[u8]| {
            let len = u16::try_from(f.len()).expect("AD fields are short fixed-size values");
            ad.extend_from_slice(&len.to_be_bytes());
            ad.extend_from_slice(f);
        };
        field(&[ENVELOPE_VERSION]);
        match *self {
            SealContext::RootKey {
                vault_id,
                kdf_params,
                salt,
            } => {
                field(LABEL_WRAP_ROOT_KEY.as_bytes());
                field(vault_id);
                field(kdf_params);
                field(salt);
            }
            SealContext::IdentityKey {
                vault_id,
                identity_id,
                epoch,
                name,
                inbox,
                phone,
            } => {
                field(LABEL_WRAP_IDENTITY_KEY.as_bytes());
                field(vault_id);
                field(identity_id);
                field(&epoch.to_be_bytes());
                field(name.as_bytes());
                field(inbox.as_bytes());
                field(phone.as_bytes());
            }
            SealContext::Grant {
                vault_id,
                identity_id,
                grant_id,
                epoch,
                ephemeral,
                recipient,
                name,
                inbox,
                phone,
            } => {
                field(LABEL_WRAP_GRANT.as_bytes());
                field(vault_id);
                field(identity_id);
                field(grant_id);
                field(&epoch.to_be_bytes());
                field(ephemeral);
                field(recipient);
                field(name.as_bytes());
                field(inbox.as_bytes());
                field(phone.as_bytes());
            }
            SealContext::OwnerKey {
                vault_id,
                owner_public,
            } => {
                field(LABEL_WRAP_OWNER_KEY.as_bytes());
                field(vault_id);
                field(owner_public);
            }
            SealContext::Session {
                vault_id,
                session_id,
                expires_at,
            } => {
                field(LABEL_WRAP_SESSION.as_bytes());
                field(vault_id);
                field(session_id);
                field(&expires_at.to_be_bytes());
            }
            SealContext::Record {
                vault_id,
                identity_id,
                kind,
                record_id,
                epoch,
            } => {
                field(LABEL_RECORD.as_bytes());
                field(vault_id);
                field(identity_id);
                field(&[kind]);
                field(record_id);
                field(&epoch.to_be_bytes());
            }
        }
        ad
    }
}

/// Seals `plaintext` into an envelope with a fresh random nonce.
///
/// # Errors
/// Only if the OS random number generator fails.
pub fn seal(key: &SecretKey, ctx: &SealContext<'_>, plaintext: &[u8]) -> Result<Vec<u8>> {
    let mut nonce = [0u8; NONCE_LEN];
    random_bytes(&mut nonce)?;
    seal_with_nonce(key, &nonce, ctx, plaintext)
}

/// Seals with a caller-chosen nonce. Only for golden vectors: a nonce must
/// never repeat under one key.
///
/// # Errors
/// Never in practice; the AEAD only fails on absurd lengths.
pub fn seal_with_nonce(
    key: &SecretKey,
    nonce: &[u8; NONCE_LEN],
    ctx: &SealContext<'_>,
    plaintext: &[u8],
) -> Result<Vec<u8>> {
    let ct = aead_seal(key.expose(), nonce, &ctx.associated_data(), plaintext)?;
    let mut out = Vec::with_capacity(1 + NONCE_LEN + ct.len());
    out.push(ENVELOPE_VERSION);
    out.extend_from_slice(nonce);
    out.extend_from_slice(&ct);
    Ok(out)
}

/// The longest envelope a reader accepts: the padded bucket of the largest
/// record plaintext, plus version, nonce and tag.
pub const ENVELOPE_MAX_LEN: usize = 2 * MAX_RECORD_LEN + ENVELOPE_MIN_LEN;

/// Opens an envelope. Any failure — wrong version, short or oversized
/// input, wrong key, wrong context, a flipped bit — is the same opaque
/// `None`.
pub fn open(key: &SecretKey, ctx: &SealContext<'_>, envelope: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    if envelope.len() < ENVELOPE_MIN_LEN
        || envelope.len() > ENVELOPE_MAX_LEN
        || envelope[0] != ENVELOPE_VERSION
    {
        return None;
    }
    let nonce: &[u8; NONCE_LEN] = envelope[1..1 + NONCE_LEN].try_into().ok()?;
    aead_open(
        key.expose(),
        nonce,
        &ctx.associated_data(),
        &envelope[1 + NONCE_LEN..],
    )
}

/// The padded size of a plaintext of `len` bytes: the next power of two of
/// `len + 4`, at least [`PAD_MIN_BUCKET`].
pub fn padded_len(len: usize) -> usize {
    (len + 4).next_power_of_two().max(PAD_MIN_BUCKET)
}

/// Pads a record plaintext: `len u32be || plaintext || zeros` to its bucket.
///
/// # Errors
/// [`Error::InvalidInput`] if the plaintext exceeds 1 MiB.
pub fn pad(plaintext: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    if plaintext.len() > MAX_RECORD_LEN {
        return Err(Error::invalid(format!(
            "record too large ({} bytes; the limit is {MAX_RECORD_LEN})",
            plaintext.len()
        )));
    }
    let mut out = Zeroizing::new(Vec::with_capacity(padded_len(plaintext.len())));
    let len = u32::try_from(plaintext.len()).expect("bounded by MAX_RECORD_LEN");
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(plaintext);
    out.resize(padded_len(plaintext.len()), 0);
    Ok(out)
}

/// Removes padding. `None` if the length prefix or the zero padding is wrong.
pub fn unpad(padded: &[u8]) -> Option<&[u8]> {
    let len_bytes: [u8; 4] = padded.get(..4)?.try_into().ok()?;
    let len = usize::try_from(u32::from_be_bytes(len_bytes)).ok()?;
    let body = padded.get(4..4usize.checked_add(len)?)?;
    let rest = &padded[4 + len..];
    if padded.len() != padded_len(len) || rest.iter().any(|&b| b != 0) {
        return None;
    }
    Some(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    const VAULT: [u8; 16] = [0xaa; 16];
    const IDENT: [u8; 16] = [0xbb; 16];
    const RECORD: [u8; 16] = [0xcc; 16];

    fn record_ctx(kind: u8) -> SealContext<'static> {
        SealContext::Record {
            vault_id: &VAULT,
            identity_id: &IDENT,
            kind,
            record_id: &RECORD,
            epoch: 1,
        }
    }

    #[test]
    fn ad_layout_golden() {
        let ad = record_ctx(2).associated_data();
        let expected = format!(
            "0001{ver}000e{label}0010{v}0010{i}0001020010{r}000400000001",
            ver = "01",
            label = data_encoding::HEXLOWER.encode(b"ravi/v1/record"),
            v = "aa".repeat(16),
            i = "bb".repeat(16),
            r = "cc".repeat(16)
        );
        assert_eq!(data_encoding::HEXLOWER.encode(&ad), expected);
    }

    /// Golden vector of the record envelope: fixed key, nonce and context
    /// give fixed bytes. A change here is a format change.
    #[test]
    fn record_envelope_golden() {
        let key = SecretKey::from_bytes([0x42; 32]);
        let nonce = [0x24; 24];
        let padded = pad(b"{\"key\":\"k\"}").unwrap();
        let env = seal_with_nonce(&key, &nonce, &record_ctx(2), &padded).unwrap();
        assert_eq!(env.len(), 1 + 24 + 64 + 16);
        assert_eq!(data_encoding::HEXLOWER.encode(&env), GOLDEN_RECORD);
        let opened = open(&key, &record_ctx(2), &env).unwrap();
        assert_eq!(unpad(&opened).unwrap(), b"{\"key\":\"k\"}");
    }

    const GOLDEN_RECORD: &str = concat!(
        "01242424242424242424242424242424242424242424242424a55ed76e150627c3db0d051865aa70ca",
        "32f18eba7c1f749d2161e64d6b10dbcd149188d8349b5b9c7cb5b1bbf9dd288c574d2ffe274881dc",
        "123a89d3911fb4f86b5fffd3531f44122ce608b577fee664"
    );

    /// Golden vector of the key-wrap format (identity key under a root key).
    #[test]
    fn key_wrap_golden() {
        let rk = SecretKey::from_bytes([0x01; 32]);
        let ctx = SealContext::IdentityKey {
            vault_id: &VAULT,
            identity_id: &IDENT,
            epoch: 1,
            name: "alice",
            inbox: "alice@example.com",
            phone: "",
        };
        let env = seal_with_nonce(&rk, &[0x02; 24], &ctx, &[0x03; 32]).unwrap();
        assert_eq!(env.len(), 1 + 24 + 32 + 16);
        assert_eq!(data_encoding::HEXLOWER.encode(&env), GOLDEN_WRAP);
        assert_eq!(&open(&rk, &ctx, &env).unwrap()[..], &[0x03; 32]);
    }

    const GOLDEN_WRAP: &str = "01020202020202020202020202020202020202020202020202cf6535eca974ff4ea362629271537a9dced6f2ab36e528144364bf6d72d2fc9b82d415d23d604a47b91cc85ee4c4a6f2";

    #[test]
    fn every_bit_flip_fails() {
        let key = SecretKey::from_bytes([9; 32]);
        let env = seal(&key, &record_ctx(1), &pad(b"secret").unwrap()).unwrap();
        for i in 0..env.len() {
            for bit in 0..8 {
                let mut bad = env.clone();
                bad[i] ^= 1 << bit;
                assert!(
                    open(&key, &record_ctx(1), &bad).is_none(),
                    "byte {i} bit {bit}"
                );
            }
        }
        assert!(open(&key, &record_ctx(1), &env[..env.len() - 1]).is_none());
        assert!(open(&key, &record_ctx(1), &[]).is_none());
    }

    #[test]
    fn context_is_bound() {
        let key = SecretKey::from_bytes([9; 32]);
        let env = seal(&key, &record_ctx(1), b"x").unwrap();
        assert!(open(&key, &record_ctx(2), &env).is_none());
        let other_record = [0xcd; 16];
        let moved = SealContext::Record {
            vault_id: &VAULT,
            identity_id: &IDENT,
            kind: 1,
            record_id: &other_record,
            epoch: 1,
        };
        assert!(open(&key, &moved, &env).is_none());
        let new_epoch = SealContext::Record {
            vault_id: &VAULT,
            identity_id: &IDENT,
            kind: 1,
            record_id: &RECORD,
            epoch: 2,
        };
        assert!(open(&key, &new_epoch, &env).is_none());
        assert!(open(&SecretKey::from_bytes([8; 32]), &record_ctx(1), &env).is_none());
    }

    #[test]
    fn padding_buckets() {
        assert_eq!(padded_len(0), 64);
        assert_eq!(padded_len(60), 64);
        assert_eq!(padded_len(61), 128);
        assert_eq!(padded_len(1000), 1024);
        for n in [0usize, 1, 59, 60, 61, 200, 5000] {
            let data = vec![0x5a; n];
            let p = pad(&data).unwrap();
            assert_eq!(p.len(), padded_len(n));
            assert_eq!(unpad(&p).unwrap(), &data[..]);
        }
        assert!(pad(&vec![0; MAX_RECORD_LEN + 1]).is_err());
        let mut p = pad(b"abc").unwrap();
        p[10] = 1;
        assert!(unpad(&p).is_none());
        let mut p = pad(b"abc").unwrap();
        p[3] = 200;
        assert!(unpad(&p).is_none());
        assert!(unpad(&[0, 0]).is_none());
    }
}
