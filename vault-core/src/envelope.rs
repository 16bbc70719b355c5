//! The envelope format of every ciphertext ravi stores, its associated data,
//! and the padding of record plaintexts.
//!
//! ```text
//! envelope = version (1 byte) || nonce (24 bytes) || AEAD ciphertext || tag (16 bytes)
//! AD       = for each field: len (u16 big-endian) || field bytes
//!            fields = [version byte, label, context fields...]
//! ```
//!
//! Version `0x01`: key wraps, and records padded to power-of-two buckets
//! (still read). Version `0x02`: records padded with Padmé (SPEC §5),
//! which every record write uses.

use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::keys::{
    LABEL_RECORD, LABEL_WRAP_GRANT, LABEL_WRAP_IDENTITY_KEY, LABEL_WRAP_OWNER_KEY,
    LABEL_WRAP_PREVIOUS_KEY, LABEL_WRAP_ROOT_KEY, LABEL_WRAP_SESSION, SecretKey,
};
use crate::primitives::{
    NONCE_LEN, TAG_LEN, aead_open, aead_open_in_place, aead_seal, aead_seal_in_place, random_bytes,
};

/// The envelope format version of key wraps, and of records padded to
/// power-of-two buckets (read, no longer written).
pub const ENVELOPE_VERSION: u8 = 0x01;
/// The envelope format version of records padded with Padmé: what every
/// record write produces.
pub const ENVELOPE_VERSION_PADME: u8 = 0x02;
/// Smallest possible envelope: header, nonce and tag around an empty plaintext.
pub const ENVELOPE_MIN_LEN: usize = 1 + NONCE_LEN + TAG_LEN;
/// Smallest padding bucket of a record plaintext.
pub const PAD_MIN_BUCKET: usize = 64;
/// Smallest Padmé size of a record (version 0x02): below it Padmé's steps
/// are 8 or 16 bytes, fine enough to tell a password's length; every
/// record whose JSON is under 252 bytes (most passwords, keys and seeds)
/// is this size.
pub const PADME_MIN_LEN: usize = 256;
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
    /// An identity's previous key, sealed in its head under the current
    /// key's record seal key while a rotation re-seals its records.
    PreviousKey {
        /// The vault's id.
        vault_id: &'a [u8; 16],
        /// The identity's uuid.
        identity_id: &'a [u8; 16],
        /// The previous key's epoch.
        epoch: u32,
        /// The epoch of the key it is sealed under.
        new_epoch: u32,
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
    /// The associated-data bytes of this context in a version `0x01`
    /// envelope.
    pub fn associated_data(&self) -> Vec<u8> {
        self.associated_data_of(ENVELOPE_VERSION)
    }

    /// The associated-data bytes of this context in an envelope of
    /// `version`: the version byte is the first field, so an envelope's
    /// version cannot be changed without failing authentication.
    pub fn associated_data_of(&self, version: u8) -> Vec<u8> {
        let mut ad = Vec::with_capacity(128);
        let mut field = |f: &[u8]| {
            let len = u16::try_from(f.len()).expect("AD fields are short fixed-size values");
            ad.extend_from_slice(&len.to_be_bytes());
            ad.extend_from_slice(f);
        };
        field(&[version]);
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
            SealContext::PreviousKey {
                vault_id,
                identity_id,
                epoch,
                new_epoch,
            } => {
                field(LABEL_WRAP_PREVIOUS_KEY.as_bytes());
                field(vault_id);
                field(identity_id);
                field(&epoch.to_be_bytes());
                field(&new_epoch.to_be_bytes());
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

/// A record plaintext above 1 MiB is refused before it is padded.
fn check_record_len(plaintext: &[u8]) -> Result<()> {
    if plaintext.len() > MAX_RECORD_LEN {
        return Err(Error::invalid(format!(
            "record too large ({} bytes; the limit is {MAX_RECORD_LEN})",
            plaintext.len()
        )));
    }
    Ok(())
}

/// Pads a record plaintext as version `0x01` envelopes did:
/// `len u32be || plaintext || zeros` to its power-of-two bucket. Records
/// are now written by [`seal_record`]; this stays for vectors and tests.
///
/// # Errors
/// [`Error::InvalidInput`] if the plaintext exceeds 1 MiB.
#[cfg(any(test, feature = "hazmat"))]
pub fn pad(plaintext: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    check_record_len(plaintext)?;
    let mut out = Zeroizing::new(Vec::with_capacity(padded_len(plaintext.len())));
    let len = u32::try_from(plaintext.len()).expect("bounded by MAX_RECORD_LEN");
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(plaintext);
    out.resize(padded_len(plaintext.len()), 0);
    Ok(out)
}

/// Removes the padding of a version `0x01` record plaintext. `None` if
/// the length prefix or the zero padding is wrong.
#[cfg(any(test, feature = "hazmat"))]
pub fn unpad(padded: &[u8]) -> Option<&[u8]> {
    unpadded_len(padded, padded_len).map(|len| &padded[4..4 + len])
}

/// The length of the plaintext in `padded` if its prefix fits, every
/// padding byte is zero and its size is `bucket` of that length.
fn unpadded_len(padded: &[u8], bucket: fn(usize) -> usize) -> Option<usize> {
    let len_bytes: [u8; 4] = padded.get(..4)?.try_into().ok()?;
    let len = usize::try_from(u32::from_be_bytes(len_bytes)).ok()?;
    let rest = padded.get(4usize.checked_add(len)?..)?;
    if len > MAX_RECORD_LEN || padded.len() != bucket(len) || rest.iter().any(|&b| b != 0) {
        return None;
    }
    Some(len)
}

/// The Padmé size (Nikitin et al., "Reducing Metadata Leakage from
/// Encrypted Files and Communication with PURBs", 2019) of a padded record
/// whose plaintext is `len` bytes: `L = max(256, len + 4)` rounded up so
/// that only its top `floor(log2 E) + 1` bits can be set, `E =
/// floor(log2 L)`. Above the 256-byte floor it adds at most 12 % (6 % at
/// 1 KiB, 3 % at 64 KiB) and leaks O(log log L) bits of the length.
pub fn padme_len(len: usize) -> usize {
    let l = len.saturating_add(4).max(PADME_MIN_LEN);
    let e = l.ilog2();
    let s = e.ilog2() + 1;
    let mask = (1usize << (e - s)) - 1;
    (l + mask) & !mask
}

/// Seals a record's plaintext in a version `0x02` envelope:
/// `u32be(len) || plaintext || zeros` to [`padme_len`], encrypted in place
/// (the only plaintext copy is overwritten by its ciphertext).
///
/// # Errors
/// [`Error::InvalidInput`] if the plaintext exceeds 1 MiB; an RNG failure.
pub fn seal_record(
    key: &SecretKey,
    ctx: &SealContext<'_>,
    plaintext: &[u8],
    nonce: Option<&[u8; NONCE_LEN]>,
) -> Result<Vec<u8>> {
    check_record_len(plaintext)?;
    let mut drawn = [0u8; NONCE_LEN];
    let nonce = match nonce {
        Some(n) => n,
        None => {
            random_bytes(&mut drawn)?;
            &drawn
        }
    };
    let padded = padme_len(plaintext.len());
    let mut out = Vec::with_capacity(1 + NONCE_LEN + padded + TAG_LEN);
    out.push(ENVELOPE_VERSION_PADME);
    out.extend_from_slice(nonce);
    let len = u32::try_from(plaintext.len()).expect("bounded by MAX_RECORD_LEN");
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(plaintext);
    out.resize(1 + NONCE_LEN + padded, 0);
    let ad = ctx.associated_data_of(ENVELOPE_VERSION_PADME);
    let tag = aead_seal_in_place(key.expose(), nonce, &ad, &mut out[1 + NONCE_LEN..])?;
    out.extend_from_slice(&tag);
    Ok(out)
}

/// A record's plaintext, opened and unpadded (zeroed when dropped).
pub struct RecordPlaintext {
    padded: Zeroizing<Vec<u8>>,
    len: usize,
}

impl std::ops::Deref for RecordPlaintext {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.padded[4..4 + self.len]
    }
}

/// Opens a record envelope of either version and removes its padding
/// (power-of-two buckets in `0x01`, Padmé in `0x02`). Any failure — other
/// version, length, key, context, a flipped bit, bad padding — is `None`.
pub fn open_record(
    key: &SecretKey,
    ctx: &SealContext<'_>,
    envelope: &[u8],
) -> Option<RecordPlaintext> {
    if envelope.len() < ENVELOPE_MIN_LEN || envelope.len() > ENVELOPE_MAX_LEN {
        return None;
    }
    let (bucket, padded): (fn(usize) -> usize, _) = match envelope[0] {
        ENVELOPE_VERSION => (padded_len, open(key, ctx, envelope)?),
        ENVELOPE_VERSION_PADME => {
            let nonce: &[u8; NONCE_LEN] = envelope[1..1 + NONCE_LEN].try_into().ok()?;
            let (body, tag) = envelope[1 + NONCE_LEN..].split_at(envelope.len() - ENVELOPE_MIN_LEN);
            let mut padded = Zeroizing::new(body.to_vec());
            let ad = ctx.associated_data_of(ENVELOPE_VERSION_PADME);
            aead_open_in_place(key.expose(), nonce, &ad, &mut padded, tag.try_into().ok()?)?;
            (padme_len, padded)
        }
        _ => return None,
    };
    let len = unpadded_len(&padded, bucket)?;
    Some(RecordPlaintext { padded, len })
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

    /// Golden vector of a version 0x02 record (Padmé): the plaintext of
    /// the version 0x01 vector, now padded to 256 bytes (the minimum), with
    /// the version byte first in the envelope and in the AD.
    #[test]
    fn record_envelope_padme_golden() {
        let key = SecretKey::from_bytes([0x42; 32]);
        let env = seal_record(&key, &record_ctx(2), b"{\"key\":\"k\"}", Some(&[0x24; 24])).unwrap();
        assert_eq!(env.len(), 1 + 24 + 256 + 16);
        assert_eq!(data_encoding::HEXLOWER.encode(&env), GOLDEN_RECORD_PADME);
        let opened = open_record(&key, &record_ctx(2), &env).unwrap();
        assert_eq!(&opened[..], b"{\"key\":\"k\"}");
        // the same bytes as an AEAD of the padded plaintext under the v2 AD
        let padded: Vec<u8> = [&11u32.to_be_bytes()[..], b"{\"key\":\"k\"}", &[0; 241]].concat();
        let raw = crate::primitives::aead_seal(
            key.expose(),
            &[0x24; 24],
            &record_ctx(2).associated_data_of(0x02),
            &padded,
        )
        .unwrap();
        assert_eq!(&env[25..], &raw[..]);
        // a version 0x01 record still opens
        let old = seal_with_nonce(
            &key,
            &[0x24; 24],
            &record_ctx(2),
            &pad(b"{\"key\":\"k\"}").unwrap(),
        )
        .unwrap();
        assert_eq!(
            &open_record(&key, &record_ctx(2), &old).unwrap()[..],
            b"{\"key\":\"k\"}"
        );
    }

    /// Reproduced with libsodium's `crypto_aead_xchacha20poly1305_ietf_encrypt`
    /// (PyNaCl): its first 64 bytes of ciphertext are those of the version
    /// 0x01 vector (same key, nonce and first 64 plaintext bytes).
    const GOLDEN_RECORD_PADME: &str = "02242424242424242424242424242424242424242424242424a55ed76e150627c3db0d051865aa70ca32f18eba7c1f749d2161e64d6b10dbcd149188d8349b5b9c7cb5b1bbf9dd288c574d2ffe274881dc123a89d3911fb4f8ee9432240631db00cc966d3e35245afabe9b70c0a6386ea403bf33f097187924d56b377c62d1a6055294105aacce651bb564a2c42ff7499438dc9febe1f0315cba2a75624e6ea1be97dd042eb3ec28086dc7e95c41425e220ba1bf3c5abdcc8a295dd67dcd55084001333b3e5ac085a5bfdb2bf2ad8cd2355749f0c217a628235ee4249c9b9135b7c79700af17bfb2bbc6dca65fb1df3c5a3ef2630602dfc5fce598147556e52b73bfdd79a54e8ebbdc7614d2612de10e3be021ad627e2920e8a9c599b8038cb9800e9ec7d30240673b";

    #[test]
    fn padme_sizes() {
        assert_eq!(padme_len(0), 256);
        assert_eq!(padme_len(252), 256);
        assert_eq!(padme_len(253), 272);
        assert_eq!(padme_len(1024), 1088);
        assert_eq!(padme_len(64 * 1024), 67584);
        assert_eq!(padme_len(MAX_RECORD_LEN), 1_081_344);
        let mut last = 0;
        for len in (0..70_000).chain(MAX_RECORD_LEN - 70_000..=MAX_RECORD_LEN) {
            let p = padme_len(len);
            assert!(p >= len + 4 && p >= last, "{len}");
            assert!(p * 100 <= (len + 4).max(256) * 112, "{len} -> {p}");
            last = p;
        }
        for n in [0usize, 1, 59, 60, 61, 200, 1020, 5000, 65536] {
            let key = SecretKey::from_bytes([9; 32]);
            let data = vec![0x5a; n];
            let env = seal_record(&key, &record_ctx(1), &data, None).unwrap();
            assert_eq!(env.len(), ENVELOPE_MIN_LEN + padme_len(n));
            assert_eq!(
                &open_record(&key, &record_ctx(1), &env).unwrap()[..],
                &data[..]
            );
        }
        let key = SecretKey::from_bytes([9; 32]);
        assert!(seal_record(&key, &record_ctx(1), &vec![0; MAX_RECORD_LEN + 1], None).is_err());
    }

    /// Every bit of a version 0x02 record matters, the version byte
    /// included (0x02 → 0x01 is a downgrade the AD catches); a wrong
    /// padding under a valid tag is refused too.
    #[test]
    fn padme_record_tamper_and_padding() {
        let key = SecretKey::from_bytes([9; 32]);
        let env = seal_record(&key, &record_ctx(1), b"secret", None).unwrap();
        for i in 0..env.len() {
            for bit in 0..8 {
                let mut bad = env.clone();
                bad[i] ^= 1 << bit;
                assert!(
                    open_record(&key, &record_ctx(1), &bad).is_none(),
                    "byte {i} bit {bit}"
                );
            }
        }
        assert!(open_record(&key, &record_ctx(1), &env[..env.len() - 1]).is_none());
        assert!(open_record(&key, &record_ctx(2), &env).is_none());
        // A v1 envelope is not a wrap's v2: key wraps stay version 0x01 only.
        assert!(open(&key, &record_ctx(1), &env).is_none());
        let sealed_padding = |padded: &[u8]| {
            let ad = record_ctx(1).associated_data_of(ENVELOPE_VERSION_PADME);
            let ct = crate::primitives::aead_seal(key.expose(), &[1; 24], &ad, padded).unwrap();
            [&[ENVELOPE_VERSION_PADME][..], &[1; 24], &ct].concat()
        };
        let good: Vec<u8> = [&6u32.to_be_bytes()[..], b"secret", &[0; 246]].concat();
        assert!(open_record(&key, &record_ctx(1), &sealed_padding(&good)).is_some());
        let mut nonzero = good.clone();
        nonzero[255] = 1;
        assert!(open_record(&key, &record_ctx(1), &sealed_padding(&nonzero)).is_none());
        // a power-of-two bucket is not a Padmé size here (272 for 253 bytes)
        let bucket: Vec<u8> = [&253u32.to_be_bytes()[..], &[b'x'; 253], &[0; 255]].concat();
        assert!(open_record(&key, &record_ctx(1), &sealed_padding(&bucket)).is_none());
        let long_prefix: Vec<u8> = [&300u32.to_be_bytes()[..], &[0; 252]].concat();
        assert!(open_record(&key, &record_ctx(1), &sealed_padding(&long_prefix)).is_none());
    }
}
