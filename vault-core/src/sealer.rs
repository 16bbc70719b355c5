//! Sealing and opening the records of one identity under one key epoch.

use std::collections::BTreeMap;

use subtle::ConstantTimeEq;
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::backend::RecordRow;
use crate::envelope::{self, SealContext};
use crate::error::{Error, Result};
use crate::keys::{IdentityKeys, LABEL_HEAD, LABEL_HEAD_LEAF, SecretKey};
use crate::primitives::{NONCE_LEN, hmac_sha256, sha256};
use crate::records::{
    KIND_PASSWORD, KIND_SECRET, KIND_TOTP, PasswordBody, RecordBody, SecretBody, TotpBody,
};
use crate::tree::{Tree, bucket_of};

/// A stored id as its 16 uuid bytes (for associated data).
pub(crate) fn uuid_bytes(s: &str) -> Result<[u8; 16]> {
    Uuid::try_parse(s)
        .map(|u| *u.as_bytes())
        .map_err(|_| Error::Integrity(format!("stored id {s:?} is not a uuid")))
}

/// The name a record is indexed by, read from its plaintext JSON through
/// its (zeroizing) body type, so no copy of the plaintext outlives it.
fn record_name(kind: u8, json: &[u8]) -> Option<Zeroizing<String>> {
    fn name<T: RecordBody>(json: &[u8]) -> Option<Zeroizing<String>> {
        let body: T = serde_json::from_slice(json).ok()?;
        Some(Zeroizing::new(body.name().to_string()))
    }
    match kind {
        KIND_PASSWORD => name::<PasswordBody>(json),
        KIND_SECRET => name::<SecretBody>(json),
        KIND_TOTP => name::<TotpBody>(json),
        _ => None,
    }
}

/// An identity head (SPEC §4b): a sequence number raised by every write,
/// the key epoch, a commitment to the identity's whole record set, and
/// where its tree is and which previous key still opens records (SPEC §4e).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Head {
    pub(crate) seq: u64,
    pub(crate) epoch: u32,
    pub(crate) commitment: [u8; 32],
    pub(crate) ext: HeadExt,
}

/// What a head says beyond its sequence, epoch and commitment: the slot of
/// the record tree, and during a rotation's window the previous key.
/// The default (slot 0, no window) is stored as the 76-byte head of SPEC
/// §4b.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct HeadExt {
    /// The tree's node ids are offset by `slot * 2^17` ([`crate::tree::SLOT_SPAN`]).
    pub(crate) slot: u8,
    /// The window of a rotation in chunks: records still sealed under the
    /// previous key.
    pub(crate) window: Option<Window>,
}

/// A rotation's window: the previous epoch and its key, sealed under the
/// head's key (SPEC §4e).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Window {
    pub(crate) epoch: u32,
    pub(crate) wrapped: Vec<u8>,
}

/// Stored length of a head without extension: `u64be(seq) || u32be(epoch)
/// || commitment (32) || MAC (32)`.
pub(crate) const HEAD_LEN: usize = 8 + 4 + 32 + 32;

const FLAG_SLOT: u8 = 1;
const FLAG_WINDOW: u8 = 2;

impl HeadExt {
    /// The bytes between the commitment and the MAC: none for the default,
    /// else `flags || [u32be(previous epoch) || u16be(len) || sealed key]`.
    fn encode(&self) -> Vec<u8> {
        if *self == HeadExt::default() {
            return Vec::new();
        }
        let mut out = vec![
            (if self.slot == 1 { FLAG_SLOT } else { 0 })
                | (if self.window.is_some() {
                    FLAG_WINDOW
                } else {
                    0
                }),
        ];
        if let Some(w) = &self.window {
            out.extend_from_slice(&w.epoch.to_be_bytes());
            let len = u16::try_from(w.wrapped.len()).unwrap_or(u16::MAX);
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(&w.wrapped[..usize::from(len)]);
        }
        out
    }

    /// The inverse of [`HeadExt::encode`]; `None` for anything it would
    /// not have written.
    fn decode(bytes: &[u8]) -> Option<HeadExt> {
        let Some((&flags, rest)) = bytes.split_first() else {
            return Some(HeadExt::default());
        };
        if flags & !(FLAG_SLOT | FLAG_WINDOW) != 0 || flags == 0 {
            return None;
        }
        let window = if flags & FLAG_WINDOW != 0 {
            let epoch = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?);
            let len = u16::from_be_bytes(rest.get(4..6)?.try_into().ok()?);
            let wrapped = rest.get(6..)?;
            if wrapped.len() != usize::from(len) {
                return None;
            }
            Some(Window {
                epoch,
                wrapped: wrapped.to_vec(),
            })
        } else if rest.is_empty() {
            None
        } else {
            return None;
        };
        Some(HeadExt {
            slot: flags & FLAG_SLOT,
            window,
        })
    }
}

/// `acc ^= x`: the commitment is the XOR of its records' leaves, so one
/// record's change updates it without reading the others.
pub(crate) fn xor_into(acc: &mut [u8; 32], x: &[u8; 32]) {
    for (a, b) in acc.iter_mut().zip(x) {
        *a ^= b;
    }
}

/// The keys and context that seal an identity's records at one epoch.
pub(crate) struct RecordSealer {
    vault_id: [u8; 16],
    identity_id: [u8; 16],
    identity_uuid: String,
    epoch: u32,
    keys: IdentityKeys,
    /// During a rotation's window: the sealer of the previous epoch, which
    /// opens the records not re-sealed yet (never seals).
    previous: Option<Box<RecordSealer>>,
}

impl RecordSealer {
    pub(crate) fn new(
        vault_id: [u8; 16],
        identity_uuid: &str,
        epoch: u32,
        identity_key: &SecretKey,
    ) -> Result<Self> {
        Ok(RecordSealer {
            vault_id,
            identity_id: uuid_bytes(identity_uuid)?,
            identity_uuid: identity_uuid.to_string(),
            epoch,
            keys: IdentityKeys::derive(identity_key),
            previous: None,
        })
    }

    /// The key epoch this sealer seals under.
    pub(crate) fn epoch(&self) -> u32 {
        self.epoch
    }

    /// This sealer, opening `previous`'s records too (a rotation's next
    /// epoch, before its window is stored).
    pub(crate) fn with_previous(mut self, previous: RecordSealer) -> Self {
        self.previous = Some(Box::new(previous));
        self
    }

    /// Takes the previous epoch's sealer out of this one.
    pub(crate) fn take_previous(&mut self) -> Option<RecordSealer> {
        self.previous.take().map(|p| *p)
    }

    /// The previous epoch's sealer, during a rotation's window.
    pub(crate) fn previous(&self) -> Option<&RecordSealer> {
        self.previous.as_deref()
    }

    fn previous_key_ctx(&self, epoch: u32) -> SealContext<'_> {
        SealContext::PreviousKey {
            vault_id: &self.vault_id,
            identity_id: &self.identity_id,
            epoch,
            new_epoch: self.epoch,
        }
    }

    /// The window that keeps `previous` (the key of an earlier epoch)
    /// reachable from a head of this epoch: the key sealed under this
    /// epoch's record seal key (SPEC §4e).
    pub(crate) fn window_for(&self, epoch: u32, previous: &SecretKey) -> Result<Window> {
        if epoch >= self.epoch {
            return Err(Error::Crypto("a window's key is of an earlier epoch"));
        }
        Ok(Window {
            epoch,
            wrapped: envelope::seal(
                &self.keys.seal,
                &self.previous_key_ctx(epoch),
                previous.expose(),
            )?,
        })
    }

    /// Follows a head this sealer opened: with a window, the previous
    /// epoch's key is unsealed (once) and its records open; without one,
    /// they no longer do.
    pub(crate) fn follow(&mut self, head: &Head) -> Result<()> {
        match &head.ext.window {
            None => self.previous = None,
            Some(w) if self.previous.as_ref().is_some_and(|p| p.epoch == w.epoch) => {}
            Some(w) => {
                let key =
                    envelope::open(&self.keys.seal, &self.previous_key_ctx(w.epoch), &w.wrapped)
                        .and_then(|pt| SecretKey::from_slice(&pt))
                        .ok_or_else(|| {
                            Error::Integrity("the identity's head failed to authenticate".into())
                        })?;
                self.previous = Some(Box::new(RecordSealer::new(
                    self.vault_id,
                    &self.identity_uuid,
                    w.epoch,
                    &key,
                )?));
            }
        }
        Ok(())
    }

    /// Whether a stored row's epoch is one this sealer opens: its own, or
    /// the previous one during a window.
    fn opens_epoch(&self, epoch: u32) -> bool {
        epoch == self.epoch || self.previous.as_ref().is_some_and(|p| p.epoch == epoch)
    }

    /// A record's leaf in the head commitment:
    /// MAC(HK, label || record_id || kind || u32be(epoch) || SHA-256(ciphertext)).
    pub(crate) fn leaf(&self, uuid: &str, kind: u8, ciphertext: &[u8]) -> Result<[u8; 32]> {
        let id = uuid_bytes(uuid)?;
        Ok(hmac_sha256(
            self.keys.head.expose(),
            &[
                LABEL_HEAD_LEAF.as_bytes(),
                &id,
                &[kind],
                &self.epoch.to_be_bytes(),
                &sha256(ciphertext),
            ],
        ))
    }

    /// Each bucket's value (the XOR of its records' leaves) for a set of
    /// records (all of them this identity's, at this epoch or, in a window,
    /// the previous one: a leaf binds the head's epoch, a record's own
    /// epoch is bound by its associated data).
    pub(crate) fn bucket_values(&self, rows: &[RecordRow]) -> Result<BTreeMap<u16, [u8; 32]>> {
        let mut buckets = BTreeMap::new();
        for r in rows {
            if r.identity_uuid != self.identity_uuid || !self.opens_epoch(r.key_epoch) {
                return Err(Error::tampered(format!("record {}", r.uuid)));
            }
            let acc = buckets.entry(bucket_of(&r.uuid)?).or_insert([0u8; 32]);
            xor_into(acc, &self.leaf(&r.uuid, r.kind, &r.ciphertext)?);
        }
        Ok(buckets)
    }

    /// The record tree of a whole record set.
    pub(crate) fn tree(&self, rows: &[RecordRow]) -> Result<Tree> {
        Ok(Tree::from_buckets(&self.bucket_values(rows)?))
    }

    fn head_mac(&self, seq: u64, commitment: &[u8; 32], ext: &[u8]) -> [u8; 32] {
        hmac_sha256(
            self.keys.head.expose(),
            &[
                LABEL_HEAD.as_bytes(),
                &self.vault_id,
                &self.identity_id,
                &seq.to_be_bytes(),
                &self.epoch.to_be_bytes(),
                commitment,
                ext,
            ],
        )
    }

    /// The stored bytes of the head `(seq, this epoch, commitment)` with
    /// the tree in slot 0 and no window.
    pub(crate) fn seal_head(&self, seq: u64, commitment: &[u8; 32]) -> Vec<u8> {
        self.seal_head_with(seq, commitment, &HeadExt::default())
    }

    /// The stored bytes of the head `(seq, this epoch, commitment, ext)`.
    pub(crate) fn seal_head_with(&self, seq: u64, commitment: &[u8; 32], ext: &HeadExt) -> Vec<u8> {
        let ext = ext.encode();
        let mut out = Vec::with_capacity(HEAD_LEN + ext.len());
        out.extend_from_slice(&seq.to_be_bytes());
        out.extend_from_slice(&self.epoch.to_be_bytes());
        out.extend_from_slice(commitment);
        out.extend_from_slice(&ext);
        out.extend_from_slice(&self.head_mac(seq, commitment, &ext));
        out
    }

    /// Checks a stored head: its length and form, its epoch against this
    /// sealer's, and its MAC. (A window it names is unsealed by
    /// [`RecordSealer::follow`].)
    pub(crate) fn open_head(&self, bytes: &[u8]) -> Result<Head> {
        let bad = || Error::Integrity("the identity's head failed to authenticate".into());
        if bytes.len() < HEAD_LEN {
            return Err(bad());
        }
        let seq = u64::from_be_bytes(bytes[..8].try_into().map_err(|_| bad())?);
        let epoch = u32::from_be_bytes(bytes[8..12].try_into().map_err(|_| bad())?);
        let commitment: [u8; 32] = bytes[12..44].try_into().map_err(|_| bad())?;
        let (ext_bytes, mac) = bytes[44..].split_at(bytes.len() - HEAD_LEN);
        // (the head is read in the same row as the key epoch this sealer
        // was made for: another epoch is never a rotation under way)
        if epoch != self.epoch {
            return Err(Error::Integrity(format!(
                "rollback or damage detected: the identity's head is for key epoch {epoch}, its key is at {}",
                self.epoch
            )));
        }
        let expected = self.head_mac(seq, &commitment, ext_bytes);
        if !bool::from(expected.ct_eq(mac)) {
            return Err(bad());
        }
        let ext = HeadExt::decode(ext_bytes).ok_or_else(bad)?;
        if ext.window.as_ref().is_some_and(|w| w.epoch >= epoch) {
            return Err(bad());
        }
        Ok(Head {
            seq,
            epoch,
            commitment,
            ext,
        })
    }

    /// The blind index of a (normalised) record name:
    /// HMAC-SHA256(index key, kind || name).
    pub(crate) fn blind_index(&self, kind: u8, name: &str) -> [u8; 32] {
        hmac_sha256(self.keys.index.expose(), &[&[kind], name.as_bytes()])
    }

    /// Every blind index a record of this name may be filed under: in a
    /// window the previous epoch's first, then this epoch's. (In that order
    /// a lookup cannot miss a record that a re-seal moves from the first
    /// to the second between the two reads.)
    pub(crate) fn blind_indexes(&self, kind: u8, name: &str) -> Vec<[u8; 32]> {
        let mut out = Vec::with_capacity(2);
        if let Some(p) = &self.previous {
            out.push(p.blind_index(kind, name));
        }
        out.push(self.blind_index(kind, name));
        out
    }

    /// Seals a record's JSON plaintext into a row, with a fresh OS nonce
    /// unless the caller drew one (bulk imports draw many at once).
    fn seal_json(
        &self,
        kind: u8,
        uuid: &str,
        name: &str,
        json: &[u8],
        nonce: Option<&[u8; NONCE_LEN]>,
    ) -> Result<RecordRow> {
        let record_id = uuid_bytes(uuid)?;
        let ctx = SealContext::Record {
            vault_id: &self.vault_id,
            identity_id: &self.identity_id,
            kind,
            record_id: &record_id,
            epoch: self.epoch,
        };
        Ok(RecordRow {
            uuid: uuid.to_string(),
            identity_uuid: self.identity_uuid.clone(),
            kind,
            blind_index: self.blind_index(kind, name).to_vec(),
            key_epoch: self.epoch,
            ciphertext: envelope::seal_record(&self.keys.seal, &ctx, json, nonce)?,
        })
    }

    /// Seals a record body under its kind and name.
    pub(crate) fn seal_row<T: RecordBody>(&self, uuid: &str, body: &T) -> Result<RecordRow> {
        self.seal_row_with_nonce(uuid, body, None)
    }

    /// As [`RecordSealer::seal_row`], with a nonce drawn by the caller from
    /// the OS random number generator.
    pub(crate) fn seal_row_with_nonce<T: RecordBody>(
        &self,
        uuid: &str,
        body: &T,
        nonce: Option<&[u8; NONCE_LEN]>,
    ) -> Result<RecordRow> {
        let json = Zeroizing::new(serde_json::to_vec(body).map_err(Error::Encoding)?);
        self.seal_json(T::KIND, uuid, body.name(), &json, nonce)
    }

    /// Decrypts a row to its JSON plaintext after checking it belongs to this
    /// identity and epoch. The caller still checks the name (blind index).
    fn decrypt(&self, row: &RecordRow) -> Result<envelope::RecordPlaintext> {
        let what = || Error::tampered(format!("record {}", row.uuid));
        if row.key_epoch > self.epoch && row.identity_uuid == self.identity_uuid {
            return Err(Error::Unavailable(
                "the identity's key was rotated while this command ran; nothing was written, try again".into(),
            ));
        }
        if row.identity_uuid != self.identity_uuid {
            return Err(what());
        }
        if let Some(p) = &self.previous
            && row.key_epoch == p.epoch
        {
            return p.decrypt(row);
        }
        if row.key_epoch != self.epoch {
            // Not "no such record": a row that exists but is sealed under a
            // retired key epoch is damaged or rolled back.
            return Err(Error::Integrity(format!(
                "record {} is sealed under key epoch {}, but the identity's key is at epoch {} (rolled back or damaged)",
                row.uuid, row.key_epoch, self.epoch
            )));
        }
        let record_id = uuid_bytes(&row.uuid)?;
        let ctx = SealContext::Record {
            vault_id: &self.vault_id,
            identity_id: &self.identity_id,
            kind: row.kind,
            record_id: &record_id,
            epoch: row.key_epoch,
        };
        envelope::open_record(&self.keys.seal, &ctx, &row.ciphertext).ok_or_else(what)
    }

    /// Checks a decrypted record's name against the row's blind index.
    fn check_name(&self, row: &RecordRow, name: &str) -> Result<()> {
        if let Some(p) = &self.previous
            && row.key_epoch == p.epoch
        {
            return p.check_name(row, name);
        }
        let expected = self.blind_index(row.kind, name);
        if bool::from(expected.ct_eq(row.blind_index.as_slice())) {
            Ok(())
        } else {
            Err(Error::tampered(format!("record {}", row.uuid)))
        }
    }

    /// Opens a row into its body type: context, authentication, padding,
    /// kind and blind index all checked.
    pub(crate) fn open_row<T: RecordBody>(&self, row: &RecordRow) -> Result<T> {
        let what = || Error::tampered(format!("record {}", row.uuid));
        if row.kind != T::KIND {
            return Err(what());
        }
        let json = self.decrypt(row)?;
        let body: T = serde_json::from_slice(&json).map_err(|_| what())?;
        self.check_name(row, body.name())?;
        Ok(body)
    }

    /// Re-seals a row opened by `from` under this sealer's keys and epoch,
    /// keeping its uuid, kind and plaintext.
    pub(crate) fn reseal(&self, from: &RecordSealer, row: &RecordRow) -> Result<RecordRow> {
        let json = from.decrypt(row)?;
        let name = record_name(row.kind, &json)
            .ok_or_else(|| Error::tampered(format!("record {}", row.uuid)))?;
        from.check_name(row, &name)?;
        self.seal_json(row.kind, &row.uuid, &name, &json, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::SecretBody;

    const VAULT: [u8; 16] = [0xaa; 16];
    const IDENT: &str = "bbbbbbbb-bbbb-4bbb-bbbb-bbbbbbbbbbbb";
    const RECORD: &str = "cccccccc-cccc-4ccc-8ccc-cccccccccccc";

    /// A head's extension round-trips; the plain head is the 76 bytes of
    /// SPEC §4b; every other form (flags 0, unknown flags, bytes after a
    /// slot-only flag, a length that does not match, a window of the same or
    /// a later epoch) is refused, and the previous key opens only under the
    /// head's own key and epochs.
    #[test]
    fn head_extensions_round_trip_and_bad_ones_are_refused() {
        let new = RecordSealer::new(VAULT, IDENT, 3, &SecretKey::from_bytes([3; 32])).unwrap();
        let plain = new.seal_head(7, &[9; 32]);
        assert_eq!(plain.len(), HEAD_LEN);
        assert_eq!(new.open_head(&plain).unwrap().ext, HeadExt::default());
        let previous = SecretKey::from_bytes([2; 32]);
        let window = new.window_for(2, &previous).unwrap();
        for ext in [
            HeadExt {
                slot: 1,
                window: None,
            },
            HeadExt {
                slot: 0,
                window: Some(window.clone()),
            },
            HeadExt {
                slot: 1,
                window: Some(window.clone()),
            },
        ] {
            let bytes = new.seal_head_with(8, &[9; 32], &ext);
            let head = new.open_head(&bytes).unwrap();
            assert_eq!((head.seq, head.ext.clone()), (8, ext.clone()));
            let mut opened =
                RecordSealer::new(VAULT, IDENT, 3, &SecretKey::from_bytes([3; 32])).unwrap();
            opened.follow(&head).unwrap();
            assert_eq!(
                opened.previous().map(RecordSealer::epoch),
                ext.window.as_ref().map(|_| 2)
            );
        }
        assert!(HeadExt::decode(&[0]).is_none());
        assert!(HeadExt::decode(&[4]).is_none());
        assert!(HeadExt::decode(&[1, 0]).is_none());
        assert!(HeadExt::decode(&[2, 0, 0, 0, 2, 0, 5, 1, 2, 3]).is_none());
        assert!(HeadExt::decode(&[2, 0, 0, 0]).is_none());
        assert!(new.window_for(3, &previous).is_err());
        // a window claiming the head's own epoch (re-MACed, as only a key
        // holder could) is refused
        let same = HeadExt {
            slot: 0,
            window: Some(Window {
                epoch: 3,
                wrapped: window.wrapped.clone(),
            }),
        };
        assert!(
            new.open_head(&new.seal_head_with(8, &[9; 32], &same))
                .is_err()
        );
        // the sealed previous key is bound to its epochs and identity
        let moved = Window {
            epoch: 1,
            wrapped: window.wrapped.clone(),
        };
        let head = new
            .open_head(&new.seal_head_with(
                8,
                &[9; 32],
                &HeadExt {
                    slot: 0,
                    window: Some(moved),
                },
            ))
            .unwrap();
        let mut opened =
            RecordSealer::new(VAULT, IDENT, 3, &SecretKey::from_bytes([3; 32])).unwrap();
        assert!(matches!(opened.follow(&head), Err(Error::Integrity(_))));
        let other = RecordSealer::new(VAULT, IDENT, 3, &SecretKey::from_bytes([4; 32])).unwrap();
        let head = other
            .open_head(&other.seal_head_with(
                8,
                &[9; 32],
                &HeadExt {
                    slot: 0,
                    window: Some(window),
                },
            ))
            .unwrap();
        let mut opened =
            RecordSealer::new(VAULT, IDENT, 3, &SecretKey::from_bytes([4; 32])).unwrap();
        assert!(opened.follow(&head).is_err());
    }

    /// A record written before Padmé (envelope 0x01, power-of-two bucket)
    /// opens, and re-sealing it for a rotation writes envelope 0x02.
    #[test]
    fn version_1_records_open_and_rotation_upgrades_them() {
        let old = RecordSealer::new(VAULT, IDENT, 1, &SecretKey::from_bytes([1; 32])).unwrap();
        let body = SecretBody {
            key: "K".into(),
            value: "v".into(),
            notes: None,
            created_dt: "2026-01-01T00:00:00Z".into(),
            updated_dt: "2026-01-01T00:00:00Z".into(),
        };
        let mut row = old.seal_row(RECORD, &body).unwrap();
        assert_eq!(row.ciphertext[0], envelope::ENVELOPE_VERSION_PADME);
        let json = serde_json::to_vec(&body).unwrap();
        let ctx = SealContext::Record {
            vault_id: &VAULT,
            identity_id: &uuid_bytes(IDENT).unwrap(),
            kind: SecretBody::KIND,
            record_id: &uuid_bytes(RECORD).unwrap(),
            epoch: 1,
        };
        row.ciphertext =
            envelope::seal(&old.keys.seal, &ctx, &envelope::pad(&json).unwrap()).unwrap();
        assert_eq!(row.ciphertext[0], envelope::ENVELOPE_VERSION);
        assert_eq!(old.open_row::<SecretBody>(&row).unwrap().value, "v");
        let new = RecordSealer::new(VAULT, IDENT, 2, &SecretKey::from_bytes([2; 32])).unwrap();
        let rotated = new.reseal(&old, &row).unwrap();
        assert_eq!(rotated.ciphertext[0], envelope::ENVELOPE_VERSION_PADME);
        assert_eq!(rotated.key_epoch, 2);
        assert_eq!(new.open_row::<SecretBody>(&rotated).unwrap().value, "v");
    }
}
