//! Rotation in bounded chunks (SPEC §4e): an identity with more records
//! than one chunk is re-keyed in short transactions, so writers of other
//! identities never wait for the whole of it.
//!
//! 1. **Stage**: draw the next key; read every record (checked against the
//!    head) and write the record tree under the next key's head key into
//!    the tree slot the head does not use, a few thousand nodes per
//!    transaction. Nothing live changes.
//! 2. **Switch**, one short transaction with other writers kept out: the
//!    identity at the next epoch, its head naming the staged slot and
//!    carrying the previous key (the *window*), revoked and unlisted grants
//!    deleted, the others wrapped to the next key, the vault head.
//! 3. **Re-seal** the records still under the previous key, a page per
//!    transaction, as ordinary writes of the identity.
//! 4. **Finish**: once no record is under the previous key, delete the
//!    old slot's nodes and close the window.
//!
//! A crash before the switch changes nothing; after it, every record opens
//! (under either key) and `rotate --resume` (or the next rotation) runs
//! steps 3 and 4.

use std::collections::{BTreeMap, HashMap};

use super::{Unlocked, open_as_owner, wrap_identity_key};
use crate::backend::{Batch, CommitError, IdentityRow, Precondition, RecordQuery, Write};
use crate::error::{Error, Result};
use crate::identity_vault::{IdentityVault, slot_nodes};
use crate::keys::SecretKey;
use crate::model::{Identity, Rotation};
use crate::recovery::RotateOptions;
use crate::sealer::{Head, HeadExt, RecordSealer};
use crate::tree::{NODE_COUNT, Tree, writes_in_slot};

/// Records re-sealed per transaction of a rotation in chunks; an identity
/// with at most this many records is rotated in one transaction.
pub const ROTATION_CHUNK: usize = 256;
/// Tree nodes written or deleted per transaction while staging or
/// finishing.
const NODE_CHUNK: usize = 2048;
/// Switch attempts before the rotation gives up (each catches up with the
/// writes of the identity since the previous one).
const SWITCH_ATTEMPTS: u32 = 16;

/// The next epoch's tree as staged, and the live leaves it was made from.
struct Staging {
    /// The head the staged tree agrees with (bytes, content).
    bytes: Option<Vec<u8>>,
    head: Head,
    /// Each bucket's value in the live tree under that head.
    live: Vec<[u8; 32]>,
    /// The next epoch's tree.
    tree: Tree,
}

impl<'v> Unlocked<'v> {
    /// Whether `row` is rotated in chunks: it has a head, no window, more
    /// records than one chunk, and nothing says the store rolled it back
    /// (a recovery sees the whole record set in one transaction).
    pub(super) fn rotates_in_chunks(
        &self,
        row: &IdentityRow,
        listed_epoch: u32,
        options: &RotateOptions<'_>,
    ) -> Result<bool> {
        if options.drop_unreadable || row.head.is_none() || listed_epoch > row.key_epoch {
            return Ok(false);
        }
        if options
            .memory
            .newest_key(&row.uuid)?
            .is_some_and(|k| k.key_epoch > row.key_epoch)
        {
            return Ok(false);
        }
        let chunk = options.chunk_records.unwrap_or(ROTATION_CHUNK).max(1);
        let page = self.state.backend.records(
            &row.uuid,
            &RecordQuery {
                limit: Some(chunk.saturating_add(1)),
                ..RecordQuery::default()
            },
        )?;
        Ok(page.len() > chunk)
    }

    /// Steps 1 to 4 for `row` (which has no window).
    pub(super) fn rotate_in_chunks(
        &self,
        row: &IdentityRow,
        options: &RotateOptions<'_>,
    ) -> Result<Rotation> {
        let switched = self.stage_and_switch(row, options)?;
        let resealed = self
            .complete_window(&switched.identity, options)?
            .unwrap_or(0);
        self.state.reload()?;
        Ok(Rotation {
            records_resealed: resealed,
            ..switched
        })
    }

    /// Steps 1 and 2 for `row` (which has no window): the identity is left
    /// in its window, no record re-sealed yet.
    pub(super) fn stage_and_switch(
        &self,
        row: &IdentityRow,
        options: &RotateOptions<'_>,
    ) -> Result<Rotation> {
        let identity = Identity::from(row);
        let old_ik = self.identity_key(row)?;
        let old = IdentityVault::new(self.state, row, &old_ik)?;
        let epoch = row.key_epoch;
        let new_epoch = epoch
            .checked_add(1)
            .ok_or_else(|| Error::Conflict("the identity's key epoch is exhausted".into()))?;
        // a revocation of an agent without a grant fails before any work
        self.grants_kept(&mut Batch::new(), row, options.revoke)?;
        let vault_id = self.state.vault_id;
        let new_ik = SecretKey::random()?;
        let new = RecordSealer::new(vault_id, &row.uuid, new_epoch, &new_ik)?
            .with_previous(RecordSealer::new(vault_id, &row.uuid, epoch, &old_ik)?);

        // 1. Stage.
        let Some(head) = old.current_head()?.1 else {
            return Err(Error::Integrity(format!(
                "identity {:?} lost its head while it was rotated",
                row.name
            )));
        };
        let [live, next] = old.leaves_for(&new)?;
        let next: BTreeMap<u16, [u8; 32]> = (0..=u16::MAX)
            .zip(next)
            .filter(|(_, v)| *v != [0; 32])
            .collect();
        let mut staging = Staging {
            // (the leaves were read under no head: no stored head is
            // `None`, so the first catch-up checks every bucket against
            // the authenticated tree)
            bytes: None,
            head,
            live,
            tree: Tree::from_buckets(&next),
        };
        let free = 1 - staging.head.ext.slot;
        self.write_staged(row, &old, free, &mut staging)?;

        // 2. Switch.
        let (kept, removed) =
            self.switch(row, &old, &new, (&old_ik, &new_ik), &mut staging, options)?;

        self.state.reload()?;
        Ok(Rotation {
            identity,
            key_epoch: new_epoch,
            records_resealed: 0,
            records_dropped: 0,
            grants_kept: kept,
            grants_removed: removed,
        })
    }

    /// Writes the staged tree into `slot` (which no head names): only what
    /// differs from what the slot holds (the leftovers of a stopped
    /// rotation, or another rotation's nodes).
    fn write_staged(
        &self,
        row: &IdentityRow,
        old: &IdentityVault<'_>,
        slot: u8,
        staging: &mut Staging,
    ) -> Result<()> {
        let stored: HashMap<u32, Vec<u8>> = self
            .slot_tree(row, slot)?
            .all_nodes()
            .into_iter()
            .filter_map(|(id, h)| h.map(|h| (id, h)))
            .collect();
        let tree = &mut staging.tree;
        let mut writes: Vec<(u32, Option<Vec<u8>>)> = tree
            .all_nodes()
            .into_iter()
            .filter(|(id, h)| stored.get(id) != h.as_ref())
            .collect();
        writes.extend(
            stored
                .keys()
                .filter(|id| tree.get(**id) == [0; 32])
                .map(|id| (*id, None)),
        );
        tree.take_changes();
        write_nodes(old, slot, &writes, Some(staging))
    }

    /// The tree stored in `slot`, whole.
    fn slot_tree(&self, row: &IdentityRow, slot: u8) -> Result<Tree> {
        let ids: Vec<u32> = (0..NODE_COUNT).collect();
        Tree::from_slot(
            slot_nodes(self.state.backend.as_ref(), &row.uuid, slot, &ids)?,
            slot,
        )
    }

    /// Brings the staged tree up to the live tree: the buckets writers
    /// changed since it was staged get their leaves under the next key.
    /// `checked` (with writers kept out): against the head, which the staging
    /// then agrees with; otherwise a first pass that leaves the check to a
    /// checked one. Returns the node writes that make the stored slot match.
    fn catch_up(
        &self,
        row: &IdentityRow,
        old: &IdentityVault<'_>,
        new: &RecordSealer,
        staging: &mut Staging,
        checked: bool,
    ) -> Result<Vec<(u32, Option<Vec<u8>>)>> {
        let stored = self
            .state
            .backend
            .identity(&row.uuid)?
            .ok_or_else(|| Error::NotFound(format!("identity {:?} was deleted", row.name)))?;
        if stored.key_epoch != row.key_epoch {
            return Err(rotated_meanwhile(row));
        }
        if stored.head == staging.bytes {
            return Ok(Vec::new());
        }
        let (bytes, head, changed) = old.changed_buckets(&staging.live, checked)?;
        for (b, leaf, rows) in changed {
            let next = new
                .bucket_values(&rows)?
                .get(&b)
                .copied()
                .unwrap_or([0; 32]);
            staging.tree.set_leaf(b, next);
            staging.live[usize::from(b)] = leaf;
        }
        staging.bytes = bytes;
        staging.head = head;
        Ok(staging.tree.take_changes())
    }

    /// Step 2: catches up outside the lock, then switches with other
    /// writers kept out (catching up once more if a writer got in between,
    /// and checking that the staged slot holds exactly the staged tree: a
    /// second rotation staging the same slot is refused, not mixed in).
    /// Returns the grants kept and removed.
    fn switch(
        &self,
        row: &IdentityRow,
        old: &IdentityVault<'_>,
        new: &RecordSealer,
        (old_ik, new_ik): (&SecretKey, &SecretKey),
        staging: &mut Staging,
        options: &RotateOptions<'_>,
    ) -> Result<(usize, usize)> {
        let backend = self.state.backend.as_ref();
        let free = 1 - staging.head.ext.slot;
        let seen_seq = options.memory.newest_head(&row.uuid)?.unwrap_or(0);
        let window = new.window_for(row.key_epoch, old_ik)?;
        for n in 0..SWITCH_ATTEMPTS {
            let changes = self.catch_up(row, old, new, staging, false)?;
            write_nodes(old, free, &changes, Some(staging))?;
            let verified = self.slot_verified(row, free, staging)?;
            let mut grants = (0, 0);
            let mut build = || -> Result<Batch> {
                let changes = self.catch_up(row, old, new, staging, true)?;
                // The slot needs reading again unless it was read back
                // after the very head this batch requires (any write into
                // it since then moved the head on).
                if !changes.is_empty() || verified.is_none() || staging.bytes != verified {
                    let mut stored = self.slot_tree(row, free)?;
                    for (id, h) in &changes {
                        stored.put_raw(*id, h.as_deref());
                    }
                    if !stored.same_nodes(&staging.tree) {
                        return Err(Error::Unavailable(format!(
                            "another rotation of identity {:?} is under way; try again when it is done",
                            row.name
                        )));
                    }
                }
                let current = backend.identity(&row.uuid)?.ok_or_else(|| {
                    Error::NotFound(format!("identity {:?} was deleted", row.name))
                })?;
                let mut batch = self.current_root_key();
                batch
                    .require(Precondition::IdentityEpoch {
                        identity_uuid: row.uuid.clone(),
                        key_epoch: row.key_epoch,
                    })
                    .require(Precondition::IdentityHead {
                        identity_uuid: row.uuid.clone(),
                        head: staging.bytes.clone(),
                    });
                if !changes.is_empty() {
                    batch.write(Write::SetTreeNodes {
                        identity_uuid: row.uuid.clone(),
                        nodes: writes_in_slot(changes, free),
                    });
                }
                let (kept, removed) = self.grants_kept(&mut batch, &current, options.revoke)?;
                let new_row = IdentityRow {
                    key_epoch: new.epoch(),
                    ..current
                };
                let seq = staging.head.seq.max(seen_seq).saturating_add(1);
                let ext = HeadExt {
                    slot: free,
                    window: Some(window.clone()),
                };
                batch
                    .write(Write::SetIdentityKey {
                        uuid: row.uuid.clone(),
                        key_epoch: new.epoch(),
                        wrapped_key: wrap_identity_key(
                            &self.root_key,
                            &self.state.vault_id,
                            &new_row,
                            new_ik,
                        )?,
                    })
                    .write(Write::SetIdentityHead {
                        uuid: row.uuid.clone(),
                        head: new.seal_head_with(seq, &staging.tree.root(), &ext),
                    });
                self.rewrap_grants(&mut batch, &new_row, new_ik, &kept)?;
                self.with_vault_head(&mut batch)?;
                grants = (kept.len(), removed);
                Ok(batch)
            };
            match backend.commit_exclusive(&mut build) {
                Ok(_) => return Ok(grants),
                Err(CommitError::Failed(e)) => return Err(e),
                Err(CommitError::Conflict(c)) => {
                    if let crate::backend::Conflict::Precondition(0) = c {
                        return Err(Error::Locked(
                            "the vault's passphrase or root key changed while this command ran; unlock again"
                                .into(),
                        ));
                    }
                    // (a store without an exclusive commit: what the lost
                    // attempt caught up is written again from the tree)
                    self.write_staged(row, old, free, staging)?;
                }
            }
            crate::state::backoff(n)?;
        }
        Err(Error::Unavailable(
            "the identity stayed busy with concurrent writers; its rotation did not switch keys and changed nothing; try again".into(),
        ))
    }

    /// Whether `slot` holds exactly the staged tree, read after a head the
    /// staging agrees with: that head's bytes if so. A switch that requires
    /// the same head need not read the slot again with writers kept out:
    /// every write into the slot moves the head on
    /// ([`IdentityVault::write_free_slot`]). `None` when the staging agrees
    /// with no head read, the head moved, or the slot differs (the switch
    /// then reads it again, with writers kept out, to decide).
    fn slot_verified(
        &self,
        row: &IdentityRow,
        slot: u8,
        staging: &Staging,
    ) -> Result<Option<Vec<u8>>> {
        let Some(bytes) = &staging.bytes else {
            return Ok(None);
        };
        let stored = self.state.backend.identity(&row.uuid)?;
        if stored.and_then(|r| r.head).as_ref() != Some(bytes) {
            return Ok(None);
        }
        Ok(self
            .slot_tree(row, slot)?
            .same_nodes(&staging.tree)
            .then(|| bytes.clone()))
    }

    /// Steps 3 and 4 for an identity in a rotation's window: re-seals what
    /// is still under the previous key, deletes the old tree slot and
    /// closes the window. Returns how many records were re-sealed, or
    /// `None` if the identity has no window.
    pub(super) fn complete_window(
        &self,
        identity: &Identity,
        options: &RotateOptions<'_>,
    ) -> Result<Option<usize>> {
        let iv = open_as_owner(self.state, &self.root_key, identity)?;
        if iv.window_epoch().is_none() {
            return Ok(None);
        }
        let chunk = options.chunk_records.unwrap_or(ROTATION_CHUNK).max(1);
        let mut resealed = 0;
        for pass in 0.. {
            let mut after: Option<String> = None;
            loop {
                let (n, next) = iv.reseal_page(after.as_deref(), chunk)?;
                resealed += n;
                match next {
                    Some(last) => after = Some(last),
                    None => break,
                }
            }
            if !iv.previous_epoch_left()? {
                break;
            }
            if pass >= 3 {
                return Err(Error::Unavailable(format!(
                    "records of identity {:?} are still under its previous key; run `ravi identity rotate --resume` again",
                    identity.name
                )));
            }
        }
        let (_, head) = iv.current_head()?;
        let live = head.map_or(0, |h| h.ext.slot);
        let row = self
            .state
            .backend
            .identity(&identity.uuid)?
            .ok_or_else(|| Error::NotFound(format!("identity {:?} was deleted", identity.name)))?;
        let old_slot = 1 - live;
        let stale: Vec<(u32, Option<Vec<u8>>)> = self
            .slot_tree(&row, old_slot)?
            .all_nodes()
            .into_iter()
            .map(|(id, _)| (id, None))
            .collect();
        write_nodes(&iv, old_slot, &stale, None)?;
        iv.close_window()?;
        Ok(Some(resealed))
    }

    /// `rotate --resume`: completes the rotation under way of an identity.
    pub(super) fn resume_rotation(
        &self,
        selector: &str,
        options: &RotateOptions<'_>,
    ) -> Result<Rotation> {
        let row = self.state.find_identity(selector)?;
        let identity = Identity::from(&row);
        let Some(resealed) = self.complete_window(&identity, options)? else {
            return Err(Error::NotFound(format!(
                "no rotation of identity {:?} is under way (one stopped before it switched keys changed nothing: rotate again)",
                row.name
            )));
        };
        self.state.reload()?;
        Ok(Rotation {
            identity,
            key_epoch: row.key_epoch,
            records_resealed: resealed,
            records_dropped: 0,
            grants_kept: self.state.grants(&row.uuid)?.len(),
            grants_removed: 0,
        })
    }
}

/// Node writes into `slot` (which the head does not name), `NODE_CHUNK`
/// per transaction, each moving the head on
/// ([`IdentityVault::write_free_slot`]). A staging that agreed with the
/// head a write replaced agrees with the head it wrote (the live tree is
/// the same).
fn write_nodes(
    iv: &IdentityVault<'_>,
    slot: u8,
    writes: &[(u32, Option<Vec<u8>>)],
    mut staging: Option<&mut Staging>,
) -> Result<()> {
    for chunk in writes.chunks(NODE_CHUNK) {
        let (before, after, head) = iv.write_free_slot(slot, chunk)?;
        if let Some(st) = staging.as_deref_mut()
            && st.bytes.is_some()
            && st.bytes == before
        {
            st.bytes = Some(after);
            st.head = head;
        }
    }
    Ok(())
}

fn rotated_meanwhile(row: &IdentityRow) -> Error {
    Error::Unavailable(format!(
        "identity {:?} was rotated by another process meanwhile; nothing of this rotation was used",
        row.name
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::AgentSecretKey;
    use crate::backend::FAIL_AFTER_COMMITS;
    use crate::tree::SLOT_SPAN;
    use crate::vault::test_support::{new_identity, pass, test_vault};

    fn values(iv: &IdentityVault<'_>) -> Vec<(String, String)> {
        iv.secrets()
            .unwrap()
            .into_iter()
            .map(|s| (s.key, s.value.expose().to_string()))
            .collect()
    }

    /// The identity's head (checked with its current key) and the slots its
    /// stored tree nodes are in.
    fn state_of(u: &Unlocked<'_>, name: &str) -> (u32, Head, Vec<u32>) {
        let row = u.state.find_identity(name).unwrap();
        let iv = open_as_owner(u.state, &u.root_key, &Identity::from(&row)).unwrap();
        let head = iv.current_head().unwrap().1.unwrap();
        let mut slots: Vec<u32> = u
            .state
            .backend
            .tree_nodes(&row.uuid, &[])
            .unwrap()
            .iter()
            .map(|(id, _)| id / SLOT_SPAN)
            .collect();
        slots.dedup();
        (row.key_epoch, head, slots)
    }

    /// Stopped between any two of its transactions, a rotation in chunks
    /// leaves every record readable by the owner and by a remaining agent,
    /// writes in its window work, and `--resume` (or, when it stopped
    /// before its switch, a new rotation) completes it: one epoch more, no
    /// window, one tree slot, the revoked agent locked out.
    #[test]
    fn a_rotation_stopped_between_any_two_chunks_resumes() {
        let dir = tempfile::tempdir().unwrap();
        let v = test_vault(&dir);
        let u = v.unlock(&pass("pw")).unwrap();
        let id = new_identity(&u, "alice");
        let (kept, revoked) = (
            AgentSecretKey::generate().unwrap(),
            AgentSecretKey::generate().unwrap(),
        );
        u.grant("alice", &kept.public(), None).unwrap();
        let mut expected: Vec<(String, String)> = (0..40)
            .map(|i| (format!("K{i:02}"), format!("v{i}")))
            .collect();
        let iv = u.open_identity(&id).unwrap();
        for (k, val) in &expected {
            iv.set_secret(k, &val.as_str().into(), None).unwrap();
        }
        drop(iv);
        let chunked = RotateOptions {
            chunk_records: Some(8),
            ..RotateOptions::default()
        };
        let mut epoch = state_of(&u, "alice").0;
        for k in 0.. {
            u.grant("alice", &revoked.public(), None).unwrap();
            let options = RotateOptions {
                revoke: Some(&revoked.public()),
                ..chunked
            };
            FAIL_AFTER_COMMITS.with(|f| f.set(Some(k)));
            let r = u.rotate_identity("alice", &options);
            FAIL_AFTER_COMMITS.with(|f| f.set(None));
            if let Ok(r) = &r {
                assert_eq!(r.key_epoch, epoch + 1);
                assert_eq!(
                    (r.records_resealed, r.grants_kept, r.grants_removed),
                    (40, 1, 1)
                );
                let (e, head, slots) = state_of(&u, "alice");
                assert_eq!((e, head.ext.window, slots.len()), (epoch + 1, None, 1));
                // stage, switch, 5 pages, the old slot, the window closed
                assert_eq!(k, 9, "commits of a rotation of 40 records in chunks of 8");
                break;
            }
            assert!(
                r.as_ref()
                    .is_err_and(|e| e.to_string().contains("injected stop")),
                "{r:?}"
            );
            // Stopped: everything opens for the owner and the kept agent.
            let iv = u.open_identity(&id).unwrap();
            assert_eq!(values(&iv), expected, "stopped after {k} commits");
            let agent_view = v.open_identity_as_agent(&kept, &id).unwrap();
            assert_eq!(values(&agent_view), expected);
            // A write in the middle (in the window or before it) works.
            let key = format!("K{:02}", k % 40);
            iv.set_secret(&key, &format!("w{k}").as_str().into(), None)
                .unwrap();
            expected.iter_mut().find(|(k2, _)| *k2 == key).unwrap().1 = format!("w{k}");
            assert_eq!(iv.get_secret(&key).unwrap().value.expose(), format!("w{k}"));
            drop((iv, agent_view));
            let (e, head, _) = state_of(&u, "alice");
            let resumed = u.rotate_identity(
                "alice",
                &RotateOptions {
                    resume: true,
                    ..chunked
                },
            );
            if e == epoch {
                // stopped before the switch: nothing to resume, nothing changed
                assert!(head.ext.window.is_none());
                assert!(matches!(resumed, Err(Error::NotFound(_))), "{resumed:?}");
                u.rotate_identity("alice", &options).unwrap();
            } else {
                assert!(head.ext.window.is_some());
                assert_eq!(resumed.unwrap().key_epoch, epoch + 1);
                // the revoked agent lost its grant at the switch
                assert!(v.open_identity_as_agent(&revoked, &id).is_err());
            }
            epoch += 1;
            let (e, head, slots) = state_of(&u, "alice");
            assert_eq!((e, head.ext.window, slots.len()), (epoch, None, 1));
            assert!(v.open_identity_as_agent(&revoked, &id).is_err());
            let iv = u.open_identity(&id).unwrap();
            assert_eq!(values(&iv), expected);
            assert_eq!(
                values(&v.open_identity_as_agent(&kept, &id).unwrap()),
                expected
            );
        }
    }

    /// A store that cannot keep writers out while a batch is built (as
    /// `ravi serve` is to its clients): `before_switch` runs once, between
    /// the building of the first batch that switches keys and its commit.
    fn optimistic(
        inner: crate::backend::SqliteBackend,
        before_switch: Box<dyn FnOnce()>,
    ) -> crate::backend::Hooked {
        let before_switch = std::cell::RefCell::new(Some(before_switch));
        crate::backend::Hooked {
            inner,
            commit: Box::new(move |inner, batch| {
                if batch
                    .writes
                    .iter()
                    .any(|w| matches!(w, Write::SetIdentityKey { .. }))
                    && let Some(meanwhile) = before_switch.borrow_mut().take()
                {
                    meanwhile();
                }
                crate::backend::Backend::commit(inner, batch)
            }),
            exclusive: false,
        }
    }

    /// Two rotations of one identity in chunks at once, through a store
    /// that cannot keep writers out: the second stages into the same free
    /// slot after the first checked it and before the first switches. The
    /// first must not switch to a slot holding the other's nodes (every
    /// read would then fail as if the store lied): each write into the slot
    /// the head does not name moves the head on, so the first's switch
    /// loses its precondition, stages again and switches to its own tree.
    #[test]
    fn a_second_rotation_staging_meanwhile_is_not_mixed_in() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.db");
        let expected: Vec<(String, String)> = (0..40)
            .map(|i| (format!("K{i:02}"), format!("v{i}")))
            .collect();
        {
            let v = test_vault(&dir);
            let u = v.unlock(&pass("pw")).unwrap();
            let iv = u.open_identity(&new_identity(&u, "alice")).unwrap();
            for (k, val) in &expected {
                iv.set_secret(k, &val.as_str().into(), None).unwrap();
            }
        }
        let chunked = RotateOptions {
            chunk_records: Some(8),
            ..RotateOptions::default()
        };
        let other = path.clone();
        let store = optimistic(
            crate::backend::SqliteBackend::open(&path).unwrap(),
            // another process stages its own rotation (its first
            // transaction, then it stops)
            Box::new(move || {
                let v = crate::Vault::open(&other).unwrap();
                let u = v.unlock(&pass("pw")).unwrap();
                FAIL_AFTER_COMMITS.with(|f| f.set(Some(1)));
                let r = u.rotate_identity("alice", &chunked);
                FAIL_AFTER_COMMITS.with(|f| f.set(None));
                assert!(
                    r.as_ref()
                        .is_err_and(|e| e.to_string().contains("injected stop")),
                    "{r:?}"
                );
            }),
        );
        let v = crate::Vault::with_backend(Box::new(store)).unwrap();
        let u = v.unlock(&pass("pw")).unwrap();
        let r = u.rotate_identity("alice", &chunked).unwrap();
        assert_eq!((r.key_epoch, r.records_resealed), (2, 40));
        let (e, head, slots) = state_of(&u, "alice");
        assert_eq!((e, head.ext.window, slots.len()), (2, None, 1));
        let id = v.find_identity("alice").unwrap();
        assert_eq!(values(&u.open_identity(&id).unwrap()), expected);
        let v2 = crate::Vault::open(&path).unwrap();
        let u2 = v2.unlock(&pass("pw")).unwrap();
        assert_eq!(values(&u2.open_identity(&id).unwrap()), expected);
    }

    /// An identity in a window: a plain rotation completes the window and
    /// then rotates (one epoch per rotation, no third key), and `rekey`
    /// re-keys it in one transaction from both epochs; every record opens
    /// after either, and no window is left.
    #[test]
    fn the_next_rotation_or_a_rekey_completes_a_window() {
        let dir = tempfile::tempdir().unwrap();
        let v = test_vault(&dir);
        let u = v.unlock(&pass("pw")).unwrap();
        let id = new_identity(&u, "alice");
        let iv = u.open_identity(&id).unwrap();
        for i in 0..6 {
            iv.set_secret(&format!("K{i}"), &format!("v{i}").as_str().into(), None)
                .unwrap();
        }
        drop(iv);
        let chunked = RotateOptions {
            chunk_records: Some(2),
            ..RotateOptions::default()
        };
        let expected: Vec<(String, String)> =
            (0..6).map(|i| (format!("K{i}"), format!("v{i}"))).collect();
        let in_window = |epoch: u32| {
            let (e, head, slots) = state_of(&u, "alice");
            assert_eq!(
                (e, head.ext.window.map(|w| w.epoch), slots.len()),
                (epoch, Some(epoch - 1), 2)
            );
        };
        let done = |epoch: u32| {
            let (e, head, slots) = state_of(&u, "alice");
            assert_eq!((e, head.ext.window, slots.len()), (epoch, None, 1));
            assert_eq!(values(&u.open_identity(&id).unwrap()), expected);
        };
        assert_eq!(
            u.open_rotation_window("alice", &chunked).unwrap().key_epoch,
            2
        );
        in_window(2);
        assert_eq!(values(&u.open_identity(&id).unwrap()), expected);
        let r = u.rotate_identity("alice", &chunked).unwrap();
        assert_eq!((r.key_epoch, r.records_resealed), (3, 6));
        done(3);
        assert!(u.open_rotation_window("alice", &chunked).is_ok());
        in_window(4);
        assert!(u.open_rotation_window("alice", &chunked).is_err());
        u.rekey(&pass("pw")).unwrap();
        let u = v.unlock(&pass("pw")).unwrap();
        let (e, head, slots) = state_of(&u, "alice");
        assert_eq!((e, head.ext, slots), (5, HeadExt::default(), vec![0]));
        assert_eq!(values(&u.open_identity(&id).unwrap()), expected);
    }
}
