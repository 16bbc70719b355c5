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
/// the key epoch, and a commitment to the identity's whole record set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Head {
    pub(crate) seq: u64,
    pub(crate) epoch: u32,
    pub(crate) commitment: [u8; 32],
}

/// Stored length of a head: `u64be(seq) || u32be(epoch) || commitment (32)
/// || MAC (32)`.
pub(crate) const HEAD_LEN: usize = 8 + 4 + 32 + 32;

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
        })
    }

    /// The key epoch this sealer seals under.
    pub(crate) fn epoch(&self) -> u32 {
        self.epoch
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
    /// records (all of them this identity's, at this epoch).
    pub(crate) fn bucket_values(&self, rows: &[RecordRow]) -> Result<BTreeMap<u16, [u8; 32]>> {
        let mut buckets = BTreeMap::new();
        for r in rows {
            if r.identity_uuid != self.identity_uuid || r.key_epoch != self.epoch {
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

    fn head_mac(&self, seq: u64, commitment: &[u8; 32]) -> [u8; 32] {
        hmac_sha256(
            self.keys.head.expose(),
            &[
                LABEL_HEAD.as_bytes(),
                &self.vault_id,
                &self.identity_id,
                &seq.to_be_bytes(),
                &self.epoch.to_be_bytes(),
                commitment,
            ],
        )
    }

    /// The stored bytes of the head `(seq, this epoch, commitment)`.
    pub(crate) fn seal_head(&self, seq: u64, commitment: &[u8; 32]) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEAD_LEN);
        out.extend_from_slice(&seq.to_be_bytes());
        out.extend_from_slice(&self.epoch.to_be_bytes());
        out.extend_from_slice(commitment);
        out.extend_from_slice(&self.head_mac(seq, commitment));
        out
    }

    /// Checks a stored head: its length, its epoch against this sealer's,
    /// and its MAC.
    pub(crate) fn open_head(&self, bytes: &[u8]) -> Result<Head> {
        let bad = || Error::Integrity("the identity's head failed to authenticate".into());
        if bytes.len() != HEAD_LEN {
            return Err(bad());
        }
        let seq = u64::from_be_bytes(bytes[..8].try_into().map_err(|_| bad())?);
        let epoch = u32::from_be_bytes(bytes[8..12].try_into().map_err(|_| bad())?);
        let commitment: [u8; 32] = bytes[12..44].try_into().map_err(|_| bad())?;
        if epoch > self.epoch {
            return Err(Error::Unavailable(
                "the identity's key was rotated while this command ran; nothing was written, try again".into(),
            ));
        }
        if epoch != self.epoch {
            return Err(Error::Integrity(format!(
                "rollback detected: the identity's head is for key epoch {epoch}, its key is at {}",
                self.epoch
            )));
        }
        let mac = self.head_mac(seq, &commitment);
        if !bool::from(mac.ct_eq(&bytes[44..])) {
            return Err(bad());
        }
        Ok(Head {
            seq,
            epoch,
            commitment,
        })
    }

    /// The blind index of a (normalised) record name:
    /// HMAC-SHA256(index key, kind || name).
    pub(crate) fn blind_index(&self, kind: u8, name: &str) -> [u8; 32] {
        hmac_sha256(self.keys.index.expose(), &[&[kind], name.as_bytes()])
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
