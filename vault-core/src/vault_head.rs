//! The vault head (SPEC §4c): the owner-signed list of every identity (with
//! its key epoch) and every grant (with its identity and epoch), under a
//! sequence number raised by every owner write that changes them. It makes
//! deletions and restorations of identity and grant rows visible, and lets
//! clients refuse an older head than one they saw.

use std::collections::BTreeMap;

use crate::backend::{GrantRow, IdentityRow, Write};
use crate::error::{Error, Result};
use crate::sealer::uuid_bytes;
use crate::signing::{OwnerKey, OwnerPublicKey, SIGNATURE_LEN, Signed};

/// The content of a vault head.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct VaultHead {
    pub(crate) seq: u64,
    /// identity uuid → key epoch
    pub(crate) identities: BTreeMap<[u8; 16], u32>,
    /// grant uuid → (identity uuid, recipient, key epoch)
    pub(crate) grants: BTreeMap<[u8; 16], ([u8; 16], [u8; 32], u32)>,
}

fn bad() -> Error {
    Error::Integrity("the vault head is malformed".into())
}

impl VaultHead {
    /// The head of these rows, at `seq`.
    pub(crate) fn of(seq: u64, identities: &[IdentityRow], grants: &[GrantRow]) -> Result<Self> {
        let mut h = VaultHead {
            seq,
            ..VaultHead::default()
        };
        for i in identities {
            h.identities.insert(uuid_bytes(&i.uuid)?, i.key_epoch);
        }
        for g in grants {
            h.grants.insert(uuid_bytes(&g.uuid)?, entry(g)?);
        }
        Ok(h)
    }

    /// `u64be(seq) || u32be(n) || n × (identity_id || u32be(epoch)) ||
    /// u32be(m) || m × (grant_id || identity_id || recipient || u32be(epoch))`,
    /// in uuid order.
    fn body(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(16 + self.identities.len() * 20 + self.grants.len() * 68);
        b.extend_from_slice(&self.seq.to_be_bytes());
        let n = |len: usize| u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes();
        b.extend_from_slice(&n(self.identities.len()));
        for (id, epoch) in &self.identities {
            b.extend_from_slice(id);
            b.extend_from_slice(&epoch.to_be_bytes());
        }
        b.extend_from_slice(&n(self.grants.len()));
        for (gid, (iid, recipient, epoch)) in &self.grants {
            b.extend_from_slice(gid);
            b.extend_from_slice(iid);
            b.extend_from_slice(recipient);
            b.extend_from_slice(&epoch.to_be_bytes());
        }
        b
    }

    /// The stored bytes: the body, then the owner's signature on it.
    pub(crate) fn seal(&self, vault_id: &[u8; 16], owner: &OwnerKey) -> Vec<u8> {
        let mut body = self.body();
        let sig = owner.sign(&Signed::VaultHead {
            vault_id,
            body: &body,
        });
        body.extend_from_slice(&sig);
        body
    }

    /// Parses stored bytes whose signature verifies under `owner`.
    pub(crate) fn open(bytes: &[u8], vault_id: &[u8; 16], owner: &OwnerPublicKey) -> Result<Self> {
        let split = bytes.len().checked_sub(SIGNATURE_LEN).ok_or_else(bad)?;
        let (body, sig) = bytes.split_at(split);
        owner.verify(
            &Signed::VaultHead { vault_id, body },
            Some(sig),
            "the vault head",
        )?;
        let mut r = Reader(body);
        let mut h = VaultHead {
            seq: u64::from_be_bytes(r.take()?),
            ..VaultHead::default()
        };
        for _ in 0..u32::from_be_bytes(r.take()?) {
            let id: [u8; 16] = r.take()?;
            h.identities.insert(id, u32::from_be_bytes(r.take()?));
        }
        for _ in 0..u32::from_be_bytes(r.take()?) {
            let gid: [u8; 16] = r.take()?;
            let iid: [u8; 16] = r.take()?;
            let recipient: [u8; 32] = r.take()?;
            h.grants
                .insert(gid, (iid, recipient, u32::from_be_bytes(r.take()?)));
        }
        if !r.0.is_empty() {
            return Err(bad());
        }
        Ok(h)
    }

    /// The head after `writes`, at the next sequence number.
    pub(crate) fn after(&self, writes: &[Write]) -> Result<Self> {
        let mut h = self.clone();
        h.seq = h.seq.checked_add(1).ok_or_else(bad)?;
        for w in writes {
            match w {
                Write::InsertIdentity(r) => {
                    h.identities.insert(uuid_bytes(&r.uuid)?, r.key_epoch);
                }
                Write::SetIdentityKey {
                    uuid, key_epoch, ..
                } => {
                    h.identities.insert(uuid_bytes(uuid)?, *key_epoch);
                }
                Write::DeleteIdentity(uuid) => {
                    let id = uuid_bytes(uuid)?;
                    h.identities.remove(&id);
                    h.grants.retain(|_, (iid, _, _)| *iid != id);
                }
                Write::InsertGrant(g) | Write::UpdateGrant(g) => {
                    h.grants.insert(uuid_bytes(&g.uuid)?, entry(g)?);
                }
                Write::DeleteGrant(uuid) => {
                    h.grants.remove(&uuid_bytes(uuid)?);
                }
                _ => {}
            }
        }
        Ok(h)
    }

    /// Checks an identity row against the head.
    pub(crate) fn check_identity(&self, row: &IdentityRow) -> Result<()> {
        match self.identities.get(&uuid_bytes(&row.uuid)?) {
            Some(e) if *e == row.key_epoch => Ok(()),
            Some(e) => Err(Error::Integrity(format!(
                "rollback detected: identity {:?} is at key epoch {}, the vault head says {e}",
                row.name, row.key_epoch
            ))),
            None => Err(Error::Integrity(format!(
                "identity {:?} is not in the vault head (planted or restored by the store)",
                row.name
            ))),
        }
    }

    /// Checks a grant row against the head.
    pub(crate) fn check_grant(&self, g: &GrantRow) -> Result<()> {
        match self.grants.get(&uuid_bytes(&g.uuid)?) {
            Some(e) if *e == entry(g)? => Ok(()),
            _ => Err(Error::Integrity(format!(
                "grant {} is not in the vault head as stored (restored or planted by the store)",
                g.uuid
            ))),
        }
    }
}

/// Whether the head lists a grant of this identity to this recipient.
impl VaultHead {
    pub(crate) fn lists_grant(&self, identity: &[u8; 16], recipient: &[u8]) -> bool {
        self.grants
            .values()
            .any(|(i, r, _)| i == identity && r.as_slice() == recipient)
    }
}

fn entry(g: &GrantRow) -> Result<([u8; 16], [u8; 32], u32)> {
    let recipient: [u8; 32] = g
        .recipient
        .as_slice()
        .try_into()
        .map_err(|_| Error::tampered("a grant's recipient"))?;
    Ok((uuid_bytes(&g.identity_uuid)?, recipient, g.key_epoch))
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N]> {
        if self.0.len() < N {
            return Err(bad());
        }
        let (a, b) = self.0.split_at(N);
        self.0 = b;
        a.try_into().map_err(|_| bad())
    }
}
