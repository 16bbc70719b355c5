//! Sealing and opening the records of one identity under one key epoch.

use serde::Serialize;
use serde::de::DeserializeOwned;
use subtle::ConstantTimeEq;
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::envelope::{self, SealContext};
use crate::error::{Error, Result};
use crate::keys::{IdentityKeys, SecretKey};
use crate::primitives::{NONCE_LEN, hmac_sha256};
use crate::records::{KIND_PASSWORD, KIND_SECRET, KIND_TOTP};
use crate::store::RecordRow;

/// A stored id as its 16 uuid bytes (for associated data).
pub(crate) fn uuid_bytes(s: &str) -> Result<[u8; 16]> {
    Uuid::try_parse(s)
        .map(|u| *u.as_bytes())
        .map_err(|_| Error::Integrity(format!("stored id {s:?} is not a uuid")))
}

/// The name a record is indexed by, read from its plaintext JSON.
fn record_name(kind: u8, json: &serde_json::Value) -> Option<&str> {
    let field = match kind {
        KIND_PASSWORD => "domain",
        KIND_SECRET => "key",
        KIND_TOTP => "name",
        _ => return None,
    };
    json.get(field)?.as_str()
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

    /// The blind index of a (normalised) record name:
    /// HMAC-SHA256(index key, kind || name).
    pub(crate) fn blind_index(&self, kind: u8, name: &str) -> [u8; 32] {
        hmac_sha256(self.keys.index.expose(), &[&[kind], name.as_bytes()])
    }

    /// Seals a record's JSON plaintext into a row.
    pub(crate) fn seal_json(
        &self,
        kind: u8,
        uuid: &str,
        name: &str,
        json: &[u8],
    ) -> Result<RecordRow> {
        self.seal_json_with_nonce(kind, uuid, name, json, None)
    }

    /// As [`RecordSealer::seal_json`], with a nonce the caller drew from the
    /// OS random number generator (bulk imports draw many at once).
    pub(crate) fn seal_json_with_nonce(
        &self,
        kind: u8,
        uuid: &str,
        name: &str,
        json: &[u8],
        nonce: Option<&[u8; NONCE_LEN]>,
    ) -> Result<RecordRow> {
        let record_id = uuid_bytes(uuid)?;
        let padded = envelope::pad(json)?;
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
            ciphertext: match nonce {
                Some(n) => envelope::seal_with_nonce(&self.keys.seal, n, &ctx, &padded)?,
                None => envelope::seal(&self.keys.seal, &ctx, &padded)?,
            },
        })
    }

    /// Seals a record body.
    pub(crate) fn seal_row<T: Serialize>(
        &self,
        kind: u8,
        uuid: &str,
        name: &str,
        body: &T,
    ) -> Result<RecordRow> {
        let json = Zeroizing::new(
            serde_json::to_vec(body)
                .map_err(|e| Error::Storage(format!("encoding failed: {e}")))?,
        );
        self.seal_json(kind, uuid, name, &json)
    }

    /// Opens a row to its JSON plaintext, checking its context and that its
    /// name matches the row's blind index.
    pub(crate) fn open_json(&self, row: &RecordRow) -> Result<Zeroizing<Vec<u8>>> {
        let what = || Error::tampered(format!("record {}", row.uuid));
        if row.key_epoch > self.epoch && row.identity_uuid == self.identity_uuid {
            return Err(Error::Conflict(
                "the identity's key was rotated while this command ran; retry".into(),
            ));
        }
        if row.identity_uuid != self.identity_uuid || row.key_epoch != self.epoch {
            return Err(what());
        }
        let record_id = uuid_bytes(&row.uuid)?;
        let ctx = SealContext::Record {
            vault_id: &self.vault_id,
            identity_id: &self.identity_id,
            kind: row.kind,
            record_id: &record_id,
            epoch: row.key_epoch,
        };
        let padded = envelope::open(&self.keys.seal, &ctx, &row.ciphertext).ok_or_else(what)?;
        let json = Zeroizing::new(envelope::unpad(&padded).ok_or_else(what)?.to_vec());
        let value: serde_json::Value = serde_json::from_slice(&json).map_err(|_| what())?;
        let name = record_name(row.kind, &value).ok_or_else(what)?;
        let expected = self.blind_index(row.kind, name);
        if !bool::from(expected.ct_eq(row.blind_index.as_slice())) {
            return Err(what());
        }
        Ok(json)
    }

    /// Opens a row into its body type.
    pub(crate) fn open_row<T: DeserializeOwned>(&self, row: &RecordRow) -> Result<T> {
        let json = self.open_json(row)?;
        serde_json::from_slice(&json).map_err(|_| Error::tampered(format!("record {}", row.uuid)))
    }

    /// Re-seals a row opened by `from` under this sealer's keys and epoch,
    /// keeping its uuid and kind.
    pub(crate) fn reseal(&self, from: &RecordSealer, row: &RecordRow) -> Result<RecordRow> {
        let json = from.open_json(row)?;
        let value: serde_json::Value = serde_json::from_slice(&json)
            .map_err(|_| Error::tampered(format!("record {}", row.uuid)))?;
        let name = record_name(row.kind, &value)
            .ok_or_else(|| Error::tampered(format!("record {}", row.uuid)))?;
        self.seal_json(row.kind, &row.uuid, name, &json)
    }
}
