//! The owner's view of a vault: the root key. Creates and deletes
//! identities, opens them, and manages access: sessions, grants, key
//! rotation and passphrase change. Every write is one batch.

use std::time::Duration;

use uuid::Uuid;

use crate::agent::{self, AgentPublicKey};
use crate::backend::{
    Batch, Conflict, GrantRow, IdentityRow, Precondition, RecordQuery, SessionRow, VaultRow, Write,
};
use crate::clock::{now_rfc3339, rfc3339, unix_now};
use crate::envelope::{self, SealContext};
use crate::error::{Error, Result};
use crate::identity_vault::IdentityVault;
use crate::keys::{KdfParams, Passphrase, SALT_LEN, SecretKey, derive_kek};
use crate::model::{GrantInfo, Identity, NewIdentity, Rotation};
use crate::names;
use crate::primitives::random_bytes;
use crate::sealer::{RecordSealer, uuid_bytes};
use crate::session::{MAX_TTL, SessionToken};
use crate::signing::OwnerKey;
use crate::state::{
    OnConflict, VaultState, grant_context, grant_signed, header_signed, identity_signed,
    kdf_params_of, transact,
};

/// A session created by [`Unlocked::create_session`].
#[derive(Debug)]
pub struct NewSession {
    /// The token: give it to the caller, never store it.
    pub token: SessionToken,
    /// Expiry, Unix seconds.
    pub expires_at: u64,
}

impl NewSession {
    /// The expiry as RFC 3339 UTC.
    pub fn expires_at_text(&self) -> String {
        rfc3339(self.expires_at)
    }
}

/// An unlocked vault: holds the root key.
pub struct Unlocked<'v> {
    state: &'v VaultState,
    root_key: SecretKey,
    /// The session this vault was unlocked with, if not the passphrase.
    session_id: Option<[u8; 16]>,
    /// The owner's signing key, unwrapped when first needed.
    owner_key: std::cell::OnceCell<OwnerKey>,
}

/// Seals the owner's signing key seed under the root key.
pub(crate) fn wrap_owner_key(
    root_key: &SecretKey,
    vault_id: &[u8; 16],
    owner: &OwnerKey,
    seed: &SecretKey,
) -> Result<Vec<u8>> {
    let public = owner.public();
    let ctx = SealContext::OwnerKey {
        vault_id,
        owner_public: public.as_bytes(),
    };
    envelope::seal(root_key, &ctx, seed.expose())
}

/// Sets a header's owner public key and the owner's signature on it.
pub(crate) fn sign_header(header: &mut VaultRow, vault_id: &[u8; 16], owner: &OwnerKey) {
    let public = owner.public();
    header.owner_public_key = Some(public.as_bytes().to_vec());
    let kdf = kdf_params_of(header).encode();
    let sig = owner.sign(&header_signed(vault_id, header, &kdf, public.as_bytes()));
    header.signature = Some(sig);
}

impl std::fmt::Debug for Unlocked<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Unlocked")
            .field("vault", &self.state.vault_id)
            .finish_non_exhaustive()
    }
}

fn identity_ctx<'a>(
    vault_id: &'a [u8; 16],
    id: &'a [u8; 16],
    row: &'a IdentityRow,
) -> SealContext<'a> {
    SealContext::IdentityKey {
        vault_id,
        identity_id: id,
        epoch: row.key_epoch,
        name: &row.name,
        inbox: &row.inbox,
        phone: row.phone.as_deref().unwrap_or(""),
    }
}

impl<'v> Unlocked<'v> {
    /// The owner's view with this root key. A vault made before signing
    /// gets its owner key here: the header, every identity and every grant
    /// are signed in one batch.
    pub(crate) fn open(
        state: &'v VaultState,
        root_key: SecretKey,
        session_id: Option<[u8; 16]>,
    ) -> Result<Self> {
        let u = Unlocked {
            state,
            root_key,
            session_id,
            owner_key: std::cell::OnceCell::new(),
        };
        if state.owner().is_none() {
            u.add_owner_key()?;
        }
        Ok(u)
    }

    /// The owner's signing key, unwrapped under the root key.
    fn owner_key(&self) -> Result<&OwnerKey> {
        if let Some(k) = self.owner_key.get() {
            return Ok(k);
        }
        let tampered = || Error::tampered("the owner's signing key");
        let owner = self.state.owner().ok_or_else(tampered)?;
        let h = self.state.header();
        let wrapped = h.wrapped_owner_key.as_deref().ok_or_else(tampered)?;
        let ctx = SealContext::OwnerKey {
            vault_id: &self.state.vault_id,
            owner_public: owner.as_bytes(),
        };
        let seed = envelope::open(&self.root_key, &ctx, wrapped)
            .and_then(|pt| SecretKey::from_slice(&pt))
            .ok_or_else(tampered)?;
        let key = OwnerKey::from_seed(&seed);
        if key.public() != owner {
            return Err(tampered());
        }
        Ok(self.owner_key.get_or_init(|| key))
    }

    /// Gives a vault made before signing its owner key (see [`Unlocked::open`]).
    fn add_owner_key(&self) -> Result<()> {
        let backend = self.state.backend.as_ref();
        let (seed, owner) = OwnerKey::generate()?;
        transact(
            backend,
            || {
                let old = backend.header()?;
                if old.owner_public_key.is_some() {
                    // Another process added one meanwhile.
                    return Ok((Batch::new(), false));
                }
                let mut header = old.clone();
                header.wrapped_owner_key = Some(wrap_owner_key(
                    &self.root_key,
                    &self.state.vault_id,
                    &owner,
                    &seed,
                )?);
                sign_header(&mut header, &self.state.vault_id, &owner);
                let mut b = Batch::new();
                b.require(Precondition::HeaderUnchanged {
                    wrapped_root_key: old.wrapped_root_key.clone(),
                    signature: None,
                })
                .write(Write::SetHeaderKey(header));
                for row in backend.identities()? {
                    // Only what the owner's own key opens gets signed.
                    self.identity_key(&row)?;
                    let id = uuid_bytes(&row.uuid)?;
                    b.require(Precondition::IdentityEpoch {
                        identity_uuid: row.uuid.clone(),
                        key_epoch: row.key_epoch,
                    })
                    .write(Write::SetIdentitySignature {
                        uuid: row.uuid.clone(),
                        signature: owner.sign(&identity_signed(&self.state.vault_id, &id, &row)),
                    });
                    for mut g in backend.grants(&row.uuid)? {
                        let gid = uuid_bytes(&g.uuid)?;
                        g.signature =
                            Some(owner.sign(&grant_signed(&self.state.vault_id, &gid, &id, &g)));
                        b.write(Write::UpdateGrant(g));
                    }
                }
                Ok((b, true))
            },
            |_, _| OnConflict::Retry,
        )?;
        self.state.reload()?;
        if self.state.owner() == Some(owner.public()) {
            let _ = self.owner_key.set(owner);
        }
        Ok(())
    }

    #[cfg(test)]
    pub(crate) fn root_key(&self) -> &SecretKey {
        &self.root_key
    }

    /// Creates an identity with a fresh random identity key.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a bad name, email or phone;
    /// [`Error::Conflict`] if the name or inbox is taken.
    pub fn create_identity(&self, new: &NewIdentity) -> Result<Identity> {
        names::validate_identity_name(&new.name)?;
        let inbox = match &new.email {
            Some(e) => names::validate_email(e)?,
            None => format!(
                "{}@{}",
                new.name.to_ascii_lowercase(),
                self.state.header().inbox_domain
            ),
        };
        let phone = new
            .phone
            .as_deref()
            .map(names::normalize_phone)
            .transpose()?;
        let mut row = IdentityRow {
            uuid: Uuid::new_v4().to_string(),
            name: new.name.clone(),
            inbox,
            phone,
            created_dt: now_rfc3339()?,
            key_epoch: 1,
            wrapped_key: Vec::new(),
            signature: None,
        };
        let ik = SecretKey::random()?;
        row.wrapped_key = self.wrap_identity_key(&row, &ik)?;
        let id = uuid_bytes(&row.uuid)?;
        row.signature = Some(self.owner_key()?.sign(&identity_signed(
            &self.state.vault_id,
            &id,
            &row,
        )));
        let mut batch = Batch::new();
        batch.write(Write::InsertIdentity(row.clone()));
        transact(
            self.state.backend.as_ref(),
            || Ok((batch.clone(), ())),
            |_, _| {
                OnConflict::Fail(Error::Conflict(format!(
                    "an identity named {:?} or with inbox {:?} already exists",
                    row.name, row.inbox
                )))
            },
        )?;
        Ok(Identity::from(&row))
    }

    /// Deletes an identity, its key and every one of its records.
    ///
    /// # Errors
    /// [`Error::NotFound`] if there is no such identity.
    pub fn delete_identity(&self, selector: &str) -> Result<Identity> {
        let backend = self.state.backend.as_ref();
        let (ident, _) = transact(
            backend,
            || {
                let row = self.state.find_identity(selector)?;
                let mut b = Batch::new();
                b.require(Precondition::IdentityEpoch {
                    identity_uuid: row.uuid.clone(),
                    key_epoch: row.key_epoch,
                })
                .write(Write::DeleteIdentity(row.uuid.clone()));
                Ok((b, Identity::from(&row)))
            },
            // Rotated meanwhile, or deleted: look again.
            |_, _| OnConflict::Retry,
        )?;
        Ok(ident)
    }

    /// Seals an identity key under the root key, bound to the row's uuid,
    /// epoch and routing metadata.
    fn wrap_identity_key(&self, row: &IdentityRow, ik: &SecretKey) -> Result<Vec<u8>> {
        let id = uuid_bytes(&row.uuid)?;
        envelope::seal(
            &self.root_key,
            &identity_ctx(&self.state.vault_id, &id, row),
            ik.expose(),
        )
    }

    /// Unwraps a row's identity key under the root key.
    pub(crate) fn identity_key(&self, row: &IdentityRow) -> Result<SecretKey> {
        let id = uuid_bytes(&row.uuid)?;
        envelope::open(
            &self.root_key,
            &identity_ctx(&self.state.vault_id, &id, row),
            &row.wrapped_key,
        )
        .and_then(|pt| SecretKey::from_slice(&pt))
        .ok_or_else(|| Error::tampered(format!("the key of identity {:?}", row.name)))
    }

    /// Opens an identity's records with its key, unwrapped under the root key.
    ///
    /// # Errors
    /// [`Error::NotFound`] if the identity is gone; [`Error::Integrity`] if
    /// its wrapped key or metadata was altered.
    pub fn open_identity(&self, identity: &Identity) -> Result<IdentityVault<'v>> {
        let row = self
            .state
            .identity(&identity.uuid)?
            .ok_or_else(|| Error::NotFound(format!("no identity {}", identity.uuid)))?;
        let ik = self.identity_key(&row)?;
        IdentityVault::new(self.state, &row, &ik)
    }

    /// Creates a session: a random token whose key seals the root key.
    /// Expired sessions are swept at the same time.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a lifetime of zero or above 30 days.
    pub fn create_session(&self, ttl: Duration) -> Result<NewSession> {
        if ttl.is_zero() || ttl > MAX_TTL {
            return Err(Error::invalid(
                "a session lifetime must be between 1 s and 30 days",
            ));
        }
        let token = SessionToken::generate()?;
        let now = unix_now()?;
        let expires_at = now + ttl.as_secs();
        let ctx = SealContext::Session {
            vault_id: &self.state.vault_id,
            session_id: &token.id,
            expires_at,
        };
        let row = SessionRow {
            session_id: token.id_text(),
            expires_at,
            created_dt: rfc3339(now),
            wrapped_root_key: envelope::seal(&token.key, &ctx, self.root_key.expose())?,
        };
        let mut batch = Batch::new();
        batch
            .write(Write::DeleteExpiredSessions(now))
            .write(Write::InsertSession(row));
        transact(
            self.state.backend.as_ref(),
            || Ok((batch.clone(), ())),
            |_, _| OnConflict::Fail(Error::Conflict("a session with this id exists".into())),
        )?;
        Ok(NewSession { token, expires_at })
    }

    /// Revokes every session, or only the one this vault was unlocked with.
    /// Returns how many were revoked.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] if `only_current` but this is not a session.
    pub fn revoke_sessions(&self, only_current: bool) -> Result<usize> {
        let id = match (only_current, self.session_id) {
            (false, _) => None,
            (true, Some(id)) => Some(data_encoding::HEXLOWER.encode(&id)),
            (true, None) => {
                return Err(Error::invalid(
                    "revoking the current session needs a session to be in use",
                ));
            }
        };
        let mut batch = Batch::new();
        batch.write(Write::DeleteSessions(id));
        let (_, changes) = transact(
            self.state.backend.as_ref(),
            || Ok((batch.clone(), ())),
            |_, _| OnConflict::Retry,
        )?;
        Ok(changes.first().copied().unwrap_or(0))
    }

    /// Grants an agent key access to one identity.
    ///
    /// # Errors
    /// [`Error::NotFound`]; [`Error::Conflict`] if already granted.
    pub fn grant(
        &self,
        selector: &str,
        to: &AgentPublicKey,
        label: Option<&str>,
    ) -> Result<GrantInfo> {
        let label = label.map(str::trim).filter(|l| !l.is_empty());
        if label.is_some_and(|l| l.len() > 256 || l.chars().any(char::is_control)) {
            return Err(Error::invalid(
                "a grant label must be at most 256 printable characters",
            ));
        }
        let backend = self.state.backend.as_ref();
        let created_dt = now_rfc3339()?;
        let (grant, _) = transact(
            backend,
            || {
                let row = self.state.find_identity(selector)?;
                let ik = self.identity_key(&row)?;
                let grant = self.wrap_grant(
                    &row,
                    &ik,
                    Uuid::new_v4().to_string(),
                    to,
                    label,
                    created_dt.clone(),
                )?;
                let mut b = Batch::new();
                b.require(Precondition::IdentityEpoch {
                    identity_uuid: row.uuid.clone(),
                    key_epoch: row.key_epoch,
                })
                .write(Write::InsertGrant(grant.clone()));
                Ok((b, grant))
            },
            |_, c| match c {
                Conflict::Duplicate(_) => OnConflict::Fail(Error::Conflict(
                    "this agent already has a grant for the identity".into(),
                )),
                _ => OnConflict::Retry,
            },
        )?;
        Ok(GrantInfo::from(&grant))
    }

    fn wrap_grant(
        &self,
        row: &IdentityRow,
        ik: &SecretKey,
        grant_uuid: String,
        to: &AgentPublicKey,
        label: Option<&str>,
        created_dt: String,
    ) -> Result<GrantRow> {
        let id = uuid_bytes(&row.uuid)?;
        let gid = uuid_bytes(&grant_uuid)?;
        let (eph, wrapped) =
            agent::wrap_to_agent(to, &grant_context(&self.state.vault_id, &id, &gid, row), ik)?;
        let mut g = GrantRow {
            uuid: grant_uuid,
            identity_uuid: row.uuid.clone(),
            recipient: to.as_bytes().to_vec(),
            label: label.map(str::to_string),
            key_epoch: row.key_epoch,
            ephemeral_public: eph.to_vec(),
            wrapped_key: wrapped,
            created_dt,
            signature: None,
        };
        g.signature =
            Some(
                self.owner_key()?
                    .sign(&grant_signed(&self.state.vault_id, &gid, &id, &g)),
            );
        Ok(g)
    }

    /// Rotates an identity's key, optionally removing one agent's grant
    /// first: a new random key at the next epoch; every record re-sealed
    /// under it; the key wrapped to the root key and to the remaining
    /// grantees. One batch, guarded by the old epoch, the record count and
    /// every record's ciphertext: a failure or a concurrent change leaves
    /// the old state intact (a concurrent change makes it start over).
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown identity or a `revoke` key that
    /// has no grant; [`Error::Integrity`] if a record fails to open.
    pub fn rotate_identity(
        &self,
        selector: &str,
        revoke: Option<&AgentPublicKey>,
    ) -> Result<Rotation> {
        let backend = self.state.backend.as_ref();
        let (rotation, _) = transact(
            backend,
            || self.rotation_batch(selector, revoke),
            |_, _| OnConflict::Retry,
        )?;
        Ok(rotation)
    }

    fn rotation_batch(
        &self,
        selector: &str,
        revoke: Option<&AgentPublicKey>,
    ) -> Result<(Batch, Rotation)> {
        let backend = self.state.backend.as_ref();
        let old_row = self.state.find_identity(selector)?;
        let old_ik = self.identity_key(&old_row)?;
        let mut batch = Batch::new();
        batch.require(Precondition::IdentityEpoch {
            identity_uuid: old_row.uuid.clone(),
            key_epoch: old_row.key_epoch,
        });
        // Rotation is the owner's recovery: a grant the owner did not sign
        // (planted by the store) is removed, never re-wrapped.
        let mut grants = Vec::new();
        let mut removed = 0;
        for g in backend.grants(&old_row.uuid)? {
            if self.state.verify_grant(&g).is_ok() {
                grants.push(g);
            } else {
                batch.write(Write::DeleteGrant(g.uuid.clone()));
                removed += 1;
            }
        }
        if let Some(pk) = revoke {
            let before = grants.len();
            for g in grants.iter().filter(|g| g.recipient == pk.as_bytes()) {
                batch.write(Write::DeleteGrant(g.uuid.clone()));
            }
            grants.retain(|g| g.recipient != pk.as_bytes());
            if grants.len() == before {
                return Err(Error::NotFound(format!(
                    "agent key {pk} has no grant for identity {:?}",
                    old_row.name
                )));
            }
            removed += before - grants.len();
        }
        let new_epoch = old_row
            .key_epoch
            .checked_add(1)
            .ok_or_else(|| Error::Conflict("the identity's key epoch is exhausted".into()))?;
        let new_ik = SecretKey::random()?;
        let old_sealer = RecordSealer::new(
            self.state.vault_id,
            &old_row.uuid,
            old_row.key_epoch,
            &old_ik,
        )?;
        let new_sealer = RecordSealer::new(self.state.vault_id, &old_row.uuid, new_epoch, &new_ik)?;
        let records = backend.records(&old_row.uuid, &RecordQuery::default())?;
        batch.require(Precondition::RecordCount {
            identity_uuid: old_row.uuid.clone(),
            count: u64::try_from(records.len()).unwrap_or(u64::MAX),
        });
        for rec in &records {
            batch
                .require(Precondition::RecordUnchanged {
                    uuid: rec.uuid.clone(),
                    ciphertext: rec.ciphertext.clone(),
                })
                .write(Write::UpdateRecord(new_sealer.reseal(&old_sealer, rec)?));
        }
        let new_row = IdentityRow {
            key_epoch: new_epoch,
            ..old_row.clone()
        };
        batch.write(Write::SetIdentityKey {
            uuid: new_row.uuid.clone(),
            key_epoch: new_epoch,
            wrapped_key: self.wrap_identity_key(&new_row, &new_ik)?,
        });
        for g in &grants {
            let pk = <[u8; 32]>::try_from(g.recipient.as_slice())
                .map(AgentPublicKey::from_bytes)
                .map_err(|_| Error::tampered("a grant's recipient"))?;
            let fresh = self.wrap_grant(
                &new_row,
                &new_ik,
                g.uuid.clone(),
                &pk,
                g.label.as_deref(),
                g.created_dt.clone(),
            )?;
            batch.write(Write::UpdateGrant(fresh));
        }
        Ok((
            batch,
            Rotation {
                identity: Identity::from(&new_row),
                key_epoch: new_epoch,
                records_resealed: records.len(),
                grants_kept: grants.len(),
                grants_removed: removed,
            },
        ))
    }

    /// Re-wraps the root key under a new passphrase (new salt, optionally
    /// new KDF parameters), in one batch. No record is re-encrypted and
    /// sessions stay valid.
    ///
    /// # Errors
    /// [`Error::Denied`] when unlocked with a session rather than the
    /// passphrase; [`Error::InvalidInput`] for bad parameters;
    /// [`Error::Conflict`] if the passphrase changed meanwhile.
    pub fn change_passphrase(&self, new: &Passphrase, kdf: Option<KdfParams>) -> Result<KdfParams> {
        if self.session_id.is_some() {
            return Err(Error::Denied(
                "changing the passphrase needs the current passphrase, not a session".into(),
            ));
        }
        let old = &self.state.header();
        let params = kdf.unwrap_or(kdf_params_of(old));
        params.validate()?;
        let mut salt = [0u8; SALT_LEN];
        random_bytes(&mut salt)?;
        let kek = derive_kek(new, &salt, &params)?;
        let ctx = SealContext::RootKey {
            vault_id: &self.state.vault_id,
            kdf_params: &params.encode(),
            salt: &salt,
        };
        let mut header = VaultRow {
            kdf_memory_kib: params.memory_kib,
            kdf_iterations: params.iterations,
            kdf_parallelism: params.parallelism,
            kdf_salt: salt.to_vec(),
            wrapped_root_key: envelope::seal(&kek, &ctx, self.root_key.expose())?,
            ..old.clone()
        };
        sign_header(&mut header, &self.state.vault_id, self.owner_key()?);
        let mut batch = Batch::new();
        batch
            .require(Precondition::HeaderUnchanged {
                wrapped_root_key: old.wrapped_root_key.clone(),
                signature: old.signature.clone(),
            })
            .write(Write::SetHeaderKey(header));
        transact(
            self.state.backend.as_ref(),
            || Ok((batch.clone(), ())),
            |_, _| {
                OnConflict::Fail(Error::Conflict(
                    "the vault's passphrase changed while this command ran; retry".into(),
                ))
            },
        )?;
        self.state.reload()?;
        Ok(params)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::AgentSecretKey;
    use crate::backend::FAIL_AFTER_WRITES;
    use crate::vault::Vault;
    use crate::vault::test_support::{pass, test_vault};

    fn setup(dir: &tempfile::TempDir) -> Vault {
        let v = test_vault(dir);
        let u = v.unlock(&pass("pw")).unwrap();
        let id = u
            .create_identity(&NewIdentity {
                name: "alice".into(),
                ..Default::default()
            })
            .unwrap();
        let iv = u.open_identity(&id).unwrap();
        for i in 0..5 {
            iv.set_secret(&format!("K{i}"), &format!("v{i}").into(), None)
                .unwrap();
        }
        drop(iv);
        drop(u);
        v
    }

    fn read_all(iv: &IdentityVault<'_>) -> Vec<String> {
        iv.secrets()
            .unwrap()
            .into_iter()
            .map(|s| s.value.expose().to_string())
            .collect()
    }

    /// A rotation that fails midway leaves the old key and every record.
    #[test]
    fn interrupted_rotation_leaves_old_state() {
        let dir = tempfile::tempdir().unwrap();
        let v = setup(&dir);
        let agent = AgentSecretKey::generate().unwrap();
        let u = v.unlock(&pass("pw")).unwrap();
        u.grant("alice", &agent.public(), None).unwrap();
        FAIL_AFTER_WRITES.with(|f| f.set(Some(3)));
        let err = u.rotate_identity("alice", None).unwrap_err();
        FAIL_AFTER_WRITES.with(|f| f.set(None));
        assert!(err.to_string().contains("injected"));
        let id = v.find_identity("alice").unwrap();
        assert_eq!(
            read_all(&u.open_identity(&id).unwrap()),
            ["v0", "v1", "v2", "v3", "v4"]
        );
        assert_eq!(
            read_all(&v.open_identity_as_agent(&agent, &id).unwrap()).len(),
            5
        );
        // and a rotation that completes works afterwards
        let r = u.rotate_identity("alice", None).unwrap();
        assert_eq!((r.key_epoch, r.records_resealed, r.grants_kept), (2, 5, 1));
        assert_eq!(read_all(&u.open_identity(&id).unwrap()).len(), 5);
        assert_eq!(
            read_all(&v.open_identity_as_agent(&agent, &id).unwrap()).len(),
            5
        );
    }

    #[test]
    fn stale_identity_vault_cannot_write_after_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let v = setup(&dir);
        let u = v.unlock(&pass("pw")).unwrap();
        let id = v.find_identity("alice").unwrap();
        let stale = u.open_identity(&id).unwrap();
        u.rotate_identity("alice", None).unwrap();
        let e = stale.set_secret("NEW", &"x".into(), None).unwrap_err();
        assert!(matches!(e, Error::Conflict(_)), "{e}");
        assert!(matches!(
            stale.get_secret("K1"),
            Err(Error::NotFound(_)) | Err(Error::Conflict(_))
        ));
        assert_eq!(read_all(&u.open_identity(&id).unwrap()).len(), 5);
    }

    #[test]
    fn sessions_and_passphrase_change() {
        let dir = tempfile::tempdir().unwrap();
        let v = setup(&dir);
        let u = v.unlock(&pass("pw")).unwrap();
        let s = u.create_session(Duration::from_secs(60)).unwrap();
        let t = SessionToken::parse(&s.token.to_text()).unwrap();
        let us = v.unlock_with_session(&t).unwrap();
        let id = v.find_identity("alice").unwrap();
        assert_eq!(read_all(&us.open_identity(&id).unwrap()).len(), 5);
        assert!(matches!(
            us.change_passphrase(&pass("new"), None),
            Err(Error::Denied(_))
        ));
        u.change_passphrase(&pass("new"), None).unwrap();
        let v = Vault::open(&dir.path().join("v.db")).unwrap();
        assert!(matches!(v.unlock(&pass("pw")), Err(Error::WrongPassphrase)));
        v.unlock(&pass("new")).unwrap();
        // the session survives the passphrase change, until revoked
        let us = v.unlock_with_session(&t).unwrap();
        assert_eq!(us.revoke_sessions(true).unwrap(), 1);
        assert!(matches!(v.unlock_with_session(&t), Err(Error::Locked(_))));
    }

    /// The root key, identity keys, session key and agent secret never
    /// reach the vault file or its WAL.
    #[test]
    fn no_key_material_at_rest() {
        let dir = tempfile::tempdir().unwrap();
        let v = setup(&dir);
        let u = v.unlock(&pass("pw")).unwrap();
        let s = u.create_session(Duration::from_secs(60)).unwrap();
        let agent = AgentSecretKey::generate().unwrap();
        u.grant("alice", &agent.public(), Some("t")).unwrap();
        u.rotate_identity("alice", None).unwrap();
        let row = v.backend().identity_by_name("alice").unwrap().unwrap();
        let ik = u.identity_key(&row).unwrap();
        let agent_bytes =
            crate::agent::AgentSecretKey::parse_file_contents(&agent.to_file_contents()).unwrap();
        let mut files = Vec::new();
        for e in std::fs::read_dir(dir.path()).unwrap() {
            let p = e.unwrap().path();
            files.push((p.clone(), std::fs::read(&p).unwrap()));
        }
        assert!(
            files
                .iter()
                .any(|(p, _)| p.to_string_lossy().ends_with("-wal"))
        );
        let needles: [(&str, &[u8]); 4] = [
            ("root key", u.root_key().expose()),
            ("identity key", ik.expose()),
            ("session key", s.token.key.expose()),
            ("agent secret", agent_bytes.secret_bytes()),
        ];
        for (path, bytes) in &files {
            for (what, needle) in needles {
                assert!(
                    !bytes.windows(32).any(|w| w == needle),
                    "{what} in {}",
                    path.display()
                );
            }
        }
    }
}
