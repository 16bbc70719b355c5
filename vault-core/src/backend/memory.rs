//! An in-memory backend: the same rows and rules as the SQLite file, in
//! ordered maps behind a mutex. It proves the seam (the conformance suite
//! runs against it) and serves tests that need no file; it persists nothing.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use super::{
    Backend, Batch, Changes, CommitError, Conflict, GrantRow, IdentityRow, Precondition,
    RecordQuery, RecordRow, SessionRow, VaultRow, Write, injected_failure,
};
use crate::error::Result;
use crate::records::KIND_PASSWORD;

#[derive(Clone, Debug)]
struct State {
    header: VaultRow,
    identities: BTreeMap<String, IdentityRow>,
    records: BTreeMap<String, RecordRow>,
    grants: BTreeMap<String, GrantRow>,
    sessions: BTreeMap<String, SessionRow>,
    tree: BTreeMap<(String, u32), Vec<u8>>,
}

/// A vault held in memory. Clones are handles to the same rows.
#[derive(Clone, Debug)]
pub struct MemoryBackend {
    state: Arc<Mutex<State>>,
}

impl MemoryBackend {
    /// A new, empty vault with this header.
    pub fn new(header: VaultRow) -> Self {
        MemoryBackend {
            state: Arc::new(Mutex::new(State {
                header,
                identities: BTreeMap::new(),
                records: BTreeMap::new(),
                grants: BTreeMap::new(),
                sessions: BTreeMap::new(),
                tree: BTreeMap::new(),
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave a half-applied batch:
        // commits work on a copy and swap it in whole.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl State {
    fn holds(&self, p: &Precondition) -> bool {
        match p {
            Precondition::HeaderUnchanged {
                wrapped_root_key,
                signature,
            } => {
                self.header.wrapped_root_key == *wrapped_root_key
                    && self.header.signature == *signature
            }
            Precondition::IdentityEpoch {
                identity_uuid,
                key_epoch,
            } => self
                .identities
                .get(identity_uuid)
                .is_some_and(|i| i.key_epoch == *key_epoch),
            Precondition::RecordUnchanged { uuid, ciphertext } => self
                .records
                .get(uuid)
                .is_some_and(|r| r.ciphertext == *ciphertext),
            Precondition::NameFree {
                identity_uuid,
                kind,
                blind_index,
            } => !self.records.values().any(|r| {
                r.identity_uuid == *identity_uuid
                    && r.kind == *kind
                    && r.blind_index == *blind_index
            }),
            Precondition::VaultHead(head) => self.header.vault_head == *head,
            Precondition::IdentityHead {
                identity_uuid,
                head,
            } => self
                .identities
                .get(identity_uuid)
                .is_some_and(|i| i.head == *head),
            Precondition::IdentityCount(count) => {
                u64::try_from(self.identities.len()).is_ok_and(|n| n == *count)
            }
            Precondition::RecordCount {
                identity_uuid,
                count,
            } => {
                let n = self
                    .records
                    .values()
                    .filter(|r| r.identity_uuid == *identity_uuid)
                    .count();
                u64::try_from(n).is_ok_and(|n| n == *count)
            }
        }
    }

    fn name_taken(&self, r: &RecordRow) -> bool {
        r.kind != KIND_PASSWORD
            && self.records.values().any(|o| {
                o.uuid != r.uuid
                    && o.identity_uuid == r.identity_uuid
                    && o.kind == r.kind
                    && o.blind_index == r.blind_index
            })
    }

    /// Applies one write: `Ok(rows touched)`, or the conflict it causes.
    fn apply(&mut self, w: &Write) -> std::result::Result<usize, ConflictKind> {
        use ConflictKind::{Duplicate, Missing};
        Ok(match w {
            Write::InsertIdentity(r) => {
                let clash = self.identities.contains_key(&r.uuid)
                    || self.identities.values().any(|o| {
                        o.name.eq_ignore_ascii_case(&r.name)
                            || o.inbox.eq_ignore_ascii_case(&r.inbox)
                    });
                if clash {
                    return Err(Duplicate);
                }
                self.identities.insert(r.uuid.clone(), r.clone());
                1
            }
            Write::SetIdentityKey {
                uuid,
                key_epoch,
                wrapped_key,
            } => {
                let i = self.identities.get_mut(uuid).ok_or(Missing)?;
                i.key_epoch = *key_epoch;
                i.wrapped_key.clone_from(wrapped_key);
                1
            }
            Write::DeleteIdentity(uuid) => {
                if self.identities.remove(uuid).is_none() {
                    return Ok(0);
                }
                self.records.retain(|_, r| r.identity_uuid != *uuid);
                self.grants.retain(|_, g| g.identity_uuid != *uuid);
                self.tree.retain(|(i, _), _| i != uuid);
                1
            }
            Write::InsertRecord(r) => {
                if !self.identities.contains_key(&r.identity_uuid) {
                    return Err(Missing);
                }
                if self.records.contains_key(&r.uuid) || self.name_taken(r) {
                    return Err(Duplicate);
                }
                self.records.insert(r.uuid.clone(), r.clone());
                1
            }
            Write::UpdateRecord(r) => {
                let Some(old) = self.records.get(&r.uuid) else {
                    return Err(Missing);
                };
                if old.identity_uuid != r.identity_uuid || old.kind != r.kind {
                    return Err(Missing);
                }
                if self.name_taken(r) {
                    return Err(Duplicate);
                }
                self.records.insert(r.uuid.clone(), r.clone());
                1
            }
            Write::DeleteRecord {
                identity_uuid,
                kind,
                uuid,
            } => {
                let matches = self
                    .records
                    .get(uuid)
                    .is_some_and(|r| r.identity_uuid == *identity_uuid && r.kind == *kind);
                if matches {
                    self.records.remove(uuid);
                }
                usize::from(matches)
            }
            Write::InsertGrant(g) => {
                if !self.identities.contains_key(&g.identity_uuid) {
                    return Err(Missing);
                }
                let clash = self.grants.contains_key(&g.uuid)
                    || self
                        .grants
                        .values()
                        .any(|o| o.identity_uuid == g.identity_uuid && o.recipient == g.recipient);
                if clash {
                    return Err(Duplicate);
                }
                self.grants.insert(g.uuid.clone(), g.clone());
                1
            }
            Write::UpdateGrant(g) => {
                let old = self.grants.get_mut(&g.uuid).ok_or(Missing)?;
                old.key_epoch = g.key_epoch;
                old.ephemeral_public.clone_from(&g.ephemeral_public);
                old.wrapped_key.clone_from(&g.wrapped_key);
                old.signature.clone_from(&g.signature);
                1
            }
            Write::DeleteGrant(uuid) => usize::from(self.grants.remove(uuid).is_some()),
            Write::InsertSession(s) => {
                if self.sessions.contains_key(&s.session_id) {
                    return Err(Duplicate);
                }
                self.sessions.insert(s.session_id.clone(), s.clone());
                1
            }
            Write::DeleteSessions(Some(id)) => usize::from(self.sessions.remove(id).is_some()),
            Write::DeleteSessions(None) => {
                let n = self.sessions.len();
                self.sessions.clear();
                n
            }
            Write::DeleteExpiredSessions(now) => {
                let before = self.sessions.len();
                self.sessions.retain(|_, s| s.expires_at > *now);
                before - self.sessions.len()
            }
            Write::SetHeaderKey(v) => {
                let h = &mut self.header;
                h.kdf_memory_kib = v.kdf_memory_kib;
                h.kdf_iterations = v.kdf_iterations;
                h.kdf_parallelism = v.kdf_parallelism;
                h.kdf_salt.clone_from(&v.kdf_salt);
                h.wrapped_root_key.clone_from(&v.wrapped_root_key);
                h.owner_public_key.clone_from(&v.owner_public_key);
                h.wrapped_owner_key.clone_from(&v.wrapped_owner_key);
                h.signature.clone_from(&v.signature);
                1
            }
            Write::SetTreeNodes {
                identity_uuid,
                nodes,
            } => {
                if !self.identities.contains_key(identity_uuid) {
                    return Err(Missing);
                }
                for (id, hash) in nodes {
                    let key = (identity_uuid.clone(), *id);
                    match hash {
                        Some(h) => {
                            self.tree.insert(key, h.clone());
                        }
                        None => {
                            self.tree.remove(&key);
                        }
                    }
                }
                nodes.len()
            }
            Write::ClearTree(identity_uuid) => {
                let before = self.tree.len();
                self.tree.retain(|(i, _), _| i != identity_uuid);
                before - self.tree.len()
            }
            Write::SetVaultHead(head) => {
                self.header.vault_head = Some(head.clone());
                1
            }
            Write::SetIdentityHead { uuid, head } => {
                let i = self.identities.get_mut(uuid).ok_or(Missing)?;
                i.head = Some(head.clone());
                1
            }
            Write::SetIdentitySignature { uuid, signature } => {
                let i = self.identities.get_mut(uuid).ok_or(Missing)?;
                i.signature = Some(signature.clone());
                1
            }
        })
    }
}

enum ConflictKind {
    Duplicate,
    Missing,
}

fn sorted_by_uuid<'a>(rows: impl Iterator<Item = &'a RecordRow>) -> Vec<RecordRow> {
    // The map is keyed by uuid, so iteration is already in uuid order.
    rows.cloned().collect()
}

impl Backend for MemoryBackend {
    fn location(&self) -> String {
        ":memory:".into()
    }

    fn header(&self) -> Result<VaultRow> {
        Ok(self.lock().header.clone())
    }

    fn identities(&self) -> Result<Vec<IdentityRow>> {
        let mut all: Vec<_> = self.lock().identities.values().cloned().collect();
        all.sort_by(|a, b| (&a.created_dt, &a.name).cmp(&(&b.created_dt, &b.name)));
        Ok(all)
    }

    fn identity(&self, uuid: &str) -> Result<Option<IdentityRow>> {
        Ok(self.lock().identities.get(uuid).cloned())
    }

    fn identity_by_name(&self, name: &str) -> Result<Option<IdentityRow>> {
        Ok(self
            .lock()
            .identities
            .values()
            .find(|i| i.name.eq_ignore_ascii_case(name))
            .cloned())
    }

    fn grants(&self, identity_uuid: &str) -> Result<Vec<GrantRow>> {
        let mut all: Vec<_> = self
            .lock()
            .grants
            .values()
            .filter(|g| g.identity_uuid == identity_uuid)
            .cloned()
            .collect();
        all.sort_by(|a, b| (&a.created_dt, &a.uuid).cmp(&(&b.created_dt, &b.uuid)));
        Ok(all)
    }

    fn grant_for(&self, identity_uuid: &str, recipient: &[u8]) -> Result<Option<GrantRow>> {
        Ok(self
            .lock()
            .grants
            .values()
            .find(|g| g.identity_uuid == identity_uuid && g.recipient == recipient)
            .cloned())
    }

    fn record(&self, identity_uuid: &str, kind: u8, uuid: &str) -> Result<Option<RecordRow>> {
        Ok(self
            .lock()
            .records
            .get(uuid)
            .filter(|r| r.identity_uuid == identity_uuid && r.kind == kind)
            .cloned())
    }

    fn records_by_index(
        &self,
        identity_uuid: &str,
        kind: u8,
        blind_index: &[u8],
    ) -> Result<Vec<RecordRow>> {
        Ok(sorted_by_uuid(self.lock().records.values().filter(|r| {
            r.identity_uuid == identity_uuid && r.kind == kind && r.blind_index == blind_index
        })))
    }

    fn records(&self, identity_uuid: &str, q: &RecordQuery) -> Result<Vec<RecordRow>> {
        let state = self.lock();
        let rows = state
            .records
            .values()
            .filter(|r| r.identity_uuid == identity_uuid)
            .filter(|r| q.kind.is_none_or(|k| r.kind == k))
            .filter(|r| q.after.as_ref().is_none_or(|a| r.uuid > *a))
            .filter(|r| {
                q.bucket.map(super::bucket_range).is_none_or(|(lo, hi)| {
                    r.uuid.as_str() >= lo.as_str() && r.uuid.as_str() < hi.as_str()
                })
            })
            .take(q.limit.unwrap_or(usize::MAX));
        Ok(sorted_by_uuid(rows))
    }

    fn tree_nodes(&self, identity_uuid: &str, ids: &[u32]) -> Result<Vec<(u32, Vec<u8>)>> {
        let state = self.lock();
        let mine = state
            .tree
            .iter()
            .filter(|((i, id), _)| i == identity_uuid && (ids.is_empty() || ids.contains(id)))
            .map(|((_, id), h)| (*id, h.clone()));
        Ok(mine.collect())
    }

    fn session(&self, session_id: &str) -> Result<Option<SessionRow>> {
        Ok(self.lock().sessions.get(session_id).cloned())
    }

    fn commit(&self, batch: &Batch) -> std::result::Result<Changes, CommitError> {
        let mut state = self.lock();
        if let Some(i) = batch.preconditions.iter().position(|p| !state.holds(p)) {
            return Err(CommitError::Conflict(Conflict::Precondition(i)));
        }
        // Work on a copy: a failure part-way leaves the rows untouched.
        let mut next = state.clone();
        let mut changes = Vec::with_capacity(batch.writes.len());
        for (i, w) in batch.writes.iter().enumerate() {
            injected_failure(i)?;
            match next.apply(w) {
                Ok(n) => changes.push(n),
                Err(ConflictKind::Duplicate) => {
                    return Err(CommitError::Conflict(Conflict::Duplicate(i)));
                }
                Err(ConflictKind::Missing) => {
                    return Err(CommitError::Conflict(Conflict::Missing(i)));
                }
            }
        }
        *state = next;
        Ok(changes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::conformance::{self, header};

    struct Shared(MemoryBackend);

    impl conformance::Harness for Shared {
        fn open(&self) -> Box<dyn Backend + Send> {
            Box::new(self.0.clone())
        }
    }

    #[test]
    fn conformance_suite() {
        conformance::run_all(&|| Shared(MemoryBackend::new(header())));
    }
}
