//! The owner's view of a vault: the root key. Creates and deletes
//! identities, opens them, and manages access: sessions, grants, key
//! rotation and passphrase change. Every write is one batch.

use std::collections::HashMap;
use std::time::Duration;

use uuid::Uuid;

use crate::agent::{self, AgentPublicKey};
use crate::backend::{
    Batch, Conflict, GrantRow, IdentityRow, Precondition, RecordQuery, RecordRow, SessionRow,
    VaultRow, Write,
};
use crate::clock::{now_rfc3339, rfc3339, unix_now};
use crate::envelope::{self, SealContext};
use crate::error::{Error, Result};
use crate::identity_vault::IdentityVault;
use crate::keys::{KdfParams, Passphrase, SALT_LEN, SecretKey, derive_kek};
use crate::model::{GrantInfo, Identity, NewIdentity, Rekey, Rotation};
use crate::names;
use crate::primitives::random_bytes;
use crate::recovery::{ClientMemory, RotateOptions, WrappedKey};
use crate::sealer::{HEAD_LEN, RecordSealer, uuid_bytes, xor_into};
use crate::session::{MAX_TTL, SessionToken};
use crate::signing::OwnerKey;
use crate::state::{
    OnConflict, VaultState, grant_context, grant_signed, header_signed, identity_signed,
    kdf_params_of, transact,
};
use crate::tree::{Tree, bucket_of};
use crate::vault_head::VaultHead;

/// What [`Unlocked::adopt_pending`] did: the identities adopted, and the
/// requests left pending (by name) with the reason.
pub type Adoption = (Vec<Identity>, Vec<(String, Error)>);

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

/// An identity's key, unwrapped under the root key and bound to the row's
/// metadata and epoch.
fn unwrap_identity_key(
    state: &VaultState,
    root_key: &SecretKey,
    row: &IdentityRow,
) -> Result<SecretKey> {
    let id = uuid_bytes(&row.uuid)?;
    envelope::open(
        root_key,
        &identity_ctx(&state.vault_id, &id, row),
        &row.wrapped_key,
    )
    .and_then(|pt| SecretKey::from_slice(&pt))
    .ok_or_else(|| Error::tampered(format!("the key of identity {:?}", row.name)))
}

/// Opens an identity's records with its key as it is stored now,
/// unwrapped under the root key.
fn open_as_owner<'v>(
    state: &'v VaultState,
    root_key: &SecretKey,
    identity: &Identity,
) -> Result<IdentityVault<'v>> {
    let row = state
        .identity(&identity.uuid)?
        .ok_or_else(|| Error::NotFound(format!("no identity {}", identity.uuid)))?;
    let ik = unwrap_identity_key(state, root_key, &row)?;
    let key = WrappedKey {
        key_epoch: row.key_epoch,
        wrapped: row.wrapped_key.clone(),
    };
    Ok(IdentityVault::new(state, &row, &ik)?.with_wrapped_key(key))
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
                let all_identities = backend.identities()?;
                let mut all_grants = Vec::new();
                for row in &all_identities {
                    all_grants.extend(backend.grants(&row.uuid)?);
                }
                b.require(Precondition::VaultHead(old.vault_head.clone()))
                    .require(Precondition::IdentityCount(count(all_identities.len())))
                    .write(Write::SetVaultHead(
                        VaultHead::of(0, &all_identities, &all_grants)?
                            .seal(&self.state.vault_id, &owner),
                    ));
                for row in all_identities {
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
        self.create_identity_as(new, Uuid::new_v4())
    }

    /// Adopts the identities requested through a server's REST interface
    /// (pending: a name and a uuid, unsigned): each gets its key, its inbox
    /// and the owner's signature, keeping its uuid. A request whose name
    /// is invalid or taken stays pending and is reported in the second list.
    ///
    /// # Errors
    /// Storage errors; [`Error::Integrity`] as for any owner write.
    pub fn adopt_pending(&self) -> Result<Adoption> {
        let mut adopted = Vec::new();
        let mut refused = Vec::new();
        for p in self.state.backend.pending_identities()? {
            let Ok(uuid) = Uuid::try_parse(&p.uuid) else {
                refused.push((p.name, Error::InvalidInput("its uuid is malformed".into())));
                continue;
            };
            let new = NewIdentity {
                name: p.name.clone(),
                ..NewIdentity::default()
            };
            match self.create_identity_as(&new, uuid) {
                Ok(i) => adopted.push(i),
                Err(e @ (Error::InvalidInput(_) | Error::Conflict(_))) => refused.push((p.name, e)),
                Err(e) => return Err(e),
            }
        }
        Ok((adopted, refused))
    }

    fn create_identity_as(&self, new: &NewIdentity, uuid: Uuid) -> Result<Identity> {
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
            uuid: uuid.to_string(),
            name: new.name.clone(),
            inbox,
            phone,
            created_dt: now_rfc3339()?,
            key_epoch: 1,
            wrapped_key: Vec::new(),
            signature: None,
            head: None,
        };
        let ik = SecretKey::random()?;
        // Sequence 0, no records yet.
        row.head = Some(
            RecordSealer::new(self.state.vault_id, &row.uuid, row.key_epoch, &ik)?
                .seal_head(0, &[0; 32]),
        );
        row.wrapped_key = wrap_identity_key(&self.root_key, &self.state.vault_id, &row, &ik)?;
        let id = uuid_bytes(&row.uuid)?;
        row.signature = Some(self.owner_key()?.sign(&identity_signed(
            &self.state.vault_id,
            &id,
            &row,
        )));
        transact(
            self.state.backend.as_ref(),
            || {
                let mut batch = self.current_root_key();
                batch.write(Write::InsertIdentity(row.clone()));
                self.with_vault_head(&mut batch)?;
                Ok((batch, ()))
            },
            |b, c| match c {
                Conflict::Duplicate(_) => OnConflict::Fail(Error::Conflict(format!(
                    "an identity named {:?} or with inbox {:?} already exists",
                    row.name, row.inbox
                ))),
                _ => self.on_rekeyed(b, c),
            },
        )?;
        self.state.reload()?;
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
                // A row the store rolled back can still be deleted.
                let (row, _) = self.state.find_identity_to_recover(selector)?;
                let mut b = Batch::new();
                b.require(Precondition::IdentityEpoch {
                    identity_uuid: row.uuid.clone(),
                    key_epoch: row.key_epoch,
                })
                .write(Write::DeleteIdentity(row.uuid.clone()));
                self.with_vault_head(&mut b)?;
                Ok((b, Identity::from(&row)))
            },
            // Rotated meanwhile, or deleted: look again.
            |_, _| OnConflict::Retry,
        )?;
        self.state.reload()?;
        Ok(ident)
    }

    /// Unwraps a row's identity key under the root key.
    pub(crate) fn identity_key(&self, row: &IdentityRow) -> Result<SecretKey> {
        unwrap_identity_key(self.state, &self.root_key, row)
    }

    /// Opens an identity's records with its key, unwrapped under the root key.
    ///
    /// # Errors
    /// [`Error::NotFound`] if the identity is gone; [`Error::Integrity`] if
    /// its wrapped key or metadata was altered.
    pub fn open_identity(&self, identity: &Identity) -> Result<IdentityVault<'v>> {
        let (state, root_key, identity) = (self.state, self.root_key.clone(), identity.clone());
        let open = move || open_as_owner(state, &root_key, &identity);
        let iv = open()?;
        Ok(iv.with_reopen(Box::new(open)))
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
                self.with_vault_head(&mut b)?;
                Ok((b, grant))
            },
            |_, c| match c {
                Conflict::Duplicate(_) => OnConflict::Fail(Error::Conflict(
                    "this agent already has a grant for the identity".into(),
                )),
                _ => OnConflict::Retry,
            },
        )?;
        self.state.reload()?;
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
    /// It is also the owner's recovery from a store that lied (SPEC §4d):
    /// grants the vault head does not list are removed, an identity row
    /// rolled back to an older key is accepted when its metadata signature
    /// holds, records sealed under the newer key open with the key this
    /// client remembers (`options.memory`), and the new epoch and head
    /// sequence pass everything seen before.
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown identity or a `revoke` key that
    /// has no grant; [`Error::Integrity`] if a record opens under no
    /// available key (unless `options.drop_unreadable`).
    pub fn rotate_identity(&self, selector: &str, options: &RotateOptions<'_>) -> Result<Rotation> {
        if options.resume {
            return self.resume_rotation(selector, options);
        }
        let (row, listed_epoch) = self.state.find_identity_to_recover(selector)?;
        // An identity in a rotation's window completes it first (there are
        // never three keys); if that fails, the rotation in one transaction
        // below opens the records under either key, or says why not.
        // (only an extended head can have a window)
        let window = row
            .head
            .as_ref()
            .filter(|h| h.len() > HEAD_LEN)
            .map(|_| self.complete_window(&Identity::from(&row), options));
        match window {
            Some(Ok(Some(_))) => return self.rotate_identity(selector, options),
            Some(Err(_)) => {}
            Some(Ok(None)) | None => {
                if self.rotates_in_chunks(&row, listed_epoch, options)? {
                    return self.rotate_in_chunks(&row, options);
                }
            }
        }
        let backend = self.state.backend.as_ref();
        let carried = std::cell::RefCell::new(Carried::default());
        let (rotation, _) = transact(
            backend,
            || {
                let (row, listed_epoch) = self.state.find_identity_to_recover(selector)?;
                let mut batch = self.current_root_key();
                let rotation = self.rotation_into(
                    &mut batch,
                    &row,
                    &self.root_key,
                    &Recover {
                        listed_epoch,
                        options,
                        carried: Some(&carried),
                    },
                )?;
                self.with_vault_head(&mut batch)?;
                Ok((batch, rotation))
            },
            |b, c| self.on_rekeyed(b, c),
        )?;
        self.state.reload()?;
        Ok(rotation)
    }

    /// Steps 1 and 2 of a rotation in chunks (SPEC §4e) and no more: the
    /// identity is left in its window, with every record still under its
    /// previous key, as a rotation stopped right after its switch leaves
    /// it. For tests of readers of a window (feature `hazmat`); a rotation
    /// completes it with [`RotateOptions::resume`].
    ///
    /// # Errors
    /// As [`Unlocked::rotate_identity`]; [`Error::Conflict`] for an
    /// identity that has no head yet or is in a window already.
    #[cfg(feature = "hazmat")]
    pub fn open_rotation_window(
        &self,
        selector: &str,
        options: &RotateOptions<'_>,
    ) -> Result<Rotation> {
        let row = self.state.find_identity(selector)?;
        let in_window = open_as_owner(self.state, &self.root_key, &Identity::from(&row))?
            .window_epoch()
            .is_some();
        if row.head.is_none() || in_window {
            return Err(Error::Conflict(
                "a window opens on an identity with a head and no window".into(),
            ));
        }
        self.stage_and_switch(&row, options)
    }

    /// The identity's key as wrapped under the root key, for the client to
    /// remember outside the store ([`RotateOptions::memory`]).
    ///
    /// # Errors
    /// [`Error::NotFound`] if the identity is gone; [`Error::Integrity`] if
    /// its row does not verify or its key does not unwrap.
    pub fn wrapped_key(&self, identity: &Identity) -> Result<WrappedKey> {
        let row = self
            .state
            .identity(&identity.uuid)?
            .ok_or_else(|| Error::NotFound(format!("no identity {}", identity.uuid)))?;
        self.identity_key(&row)?;
        Ok(WrappedKey {
            key_epoch: row.key_epoch,
            wrapped: row.wrapped_key,
        })
    }

    /// Adds the vault head update to an owner batch that changes the set of
    /// identities, grants or key epochs: guarded by the head as read, the
    /// next head signed.
    fn with_vault_head(&self, batch: &mut Batch) -> Result<()> {
        let owner_key = self.owner_key()?;
        let owner = owner_key.public();
        let stored = self.state.backend.header()?.vault_head;
        let head = match &stored {
            Some(bytes) => VaultHead::open(bytes, &self.state.vault_id, &owner)?,
            None => {
                return Err(Error::Integrity(
                    "the vault head is missing (stripped by the store?)".into(),
                ));
            }
        };
        let next = head.after(&batch.writes)?;
        batch
            .require(Precondition::VaultHead(stored))
            .write(Write::SetVaultHead(
                next.seal(&self.state.vault_id, owner_key),
            ));
        Ok(())
    }

    /// A batch guarded by the header as this vault was unlocked: whatever
    /// it wraps under this root key is refused once the vault was re-keyed.
    fn current_root_key(&self) -> Batch {
        let h = self.state.header();
        let mut b = Batch::new();
        b.require(Precondition::HeaderUnchanged {
            wrapped_root_key: h.wrapped_root_key,
            signature: h.signature,
        });
        b
    }

    /// A lost header precondition: the vault got a new root key (or
    /// passphrase) meanwhile; anything else is retried.
    fn on_rekeyed(&self, preconditions: &[Precondition], c: &Conflict) -> OnConflict {
        match c {
            Conflict::Precondition(i)
                if matches!(
                    preconditions.get(*i),
                    Some(Precondition::HeaderUnchanged { .. })
                ) =>
            {
                OnConflict::Fail(Error::Locked(
                    "the vault's passphrase or root key changed while this command ran; unlock again"
                        .into(),
                ))
            }
            _ => OnConflict::Retry,
        }
    }

    /// The keys that open `row`'s records: its own, and the one this
    /// client remembers when it is for another epoch (the store rolled the
    /// row back). Each is checked by unwrapping under the root key bound to
    /// the row's metadata at its epoch.
    fn keys_of(
        &self,
        row: &IdentityRow,
        memory: &dyn ClientMemory,
    ) -> Result<Vec<(u32, RecordSealer)>> {
        let sealer = |epoch: u32, ik: &SecretKey| {
            RecordSealer::new(self.state.vault_id, &row.uuid, epoch, ik).map(|s| (epoch, s))
        };
        let own = self.identity_key(row);
        let mut keys = Vec::new();
        if let Some(k) = memory.newest_key(&row.uuid)?
            && k.key_epoch != row.key_epoch
        {
            let remembered = IdentityRow {
                key_epoch: k.key_epoch,
                wrapped_key: k.wrapped,
                ..row.clone()
            };
            if let Ok(ik) = self.identity_key(&remembered) {
                keys.push(sealer(k.key_epoch, &ik)?);
            }
        }
        match own {
            Ok(ik) => {
                let (epoch, mut own) = sealer(row.key_epoch, &ik)?;
                // In a rotation's window (SPEC §4e) the head keeps the
                // previous key, which opens the records not re-sealed yet.
                if let Some(h) = &row.head
                    && let Ok(head) = own.open_head(h)
                    && own.follow(&head).is_ok()
                    && let Some(previous) = own.take_previous()
                    && !keys.iter().any(|(e, _)| *e == previous.epoch())
                {
                    keys.push((previous.epoch(), previous));
                }
                keys.insert(0, (epoch, own));
            }
            Err(e) if keys.is_empty() => return Err(e),
            Err(_) => {}
        }
        Ok(keys)
    }

    /// Adds to `batch` the rotation of `old_row`'s key: its preconditions
    /// (epoch, head, record set) and writes (planted and revoked grants
    /// removed, records re-sealed, the new key wrapped under `root_key` and
    /// to the remaining grantees).
    fn rotation_into(
        &self,
        batch: &mut Batch,
        old_row: &IdentityRow,
        root_key: &SecretKey,
        recover: &Recover<'_, '_>,
    ) -> Result<Rotation> {
        let options = recover.options;
        let backend = self.state.backend.as_ref();
        let keys = self.keys_of(old_row, options.memory)?;
        batch.require(Precondition::IdentityEpoch {
            identity_uuid: old_row.uuid.clone(),
            key_epoch: old_row.key_epoch,
        });
        let (grants, removed) = self.grants_kept(batch, old_row, options.revoke)?;
        // Past every epoch the row, the vault head and this client know of.
        let new_epoch = keys
            .iter()
            .map(|(e, _)| *e)
            .chain([old_row.key_epoch, recover.listed_epoch])
            .max()
            .unwrap_or(old_row.key_epoch)
            .checked_add(1)
            .ok_or_else(|| Error::Conflict("the identity's key epoch is exhausted".into()))?;
        let mut carried = recover.carried.map(std::cell::RefCell::borrow_mut);
        let new_ik = match carried.as_deref_mut() {
            Some(c) => match &c.key {
                Some((uuid, epoch, key)) if *uuid == old_row.uuid && *epoch == new_epoch => {
                    key.clone()
                }
                _ => {
                    let key = SecretKey::random()?;
                    c.key = Some((old_row.uuid.clone(), new_epoch, key.clone()));
                    c.rows.clear();
                    key
                }
            },
            None => SecretKey::random()?,
        };
        let new_sealer = RecordSealer::new(self.state.vault_id, &old_row.uuid, new_epoch, &new_ik)?;
        // (when the row's own key is gone its head cannot be read, and the
        // remembered sequence has to do)
        let stored_head = match (&old_row.head, keys.first()) {
            (Some(h), Some((e, s))) if *e == old_row.key_epoch => Some(s.open_head(h)?),
            _ => None,
        };
        let stored_seq = stored_head.as_ref().map_or(0, |h| h.seq);
        let seen_seq = options.memory.newest_head(&old_row.uuid)?.unwrap_or(0);
        batch.require(Precondition::IdentityHead {
            identity_uuid: old_row.uuid.clone(),
            head: old_row.head.clone(),
        });
        let records = backend.records(&old_row.uuid, &RecordQuery::default())?;
        batch.require(Precondition::RecordCount {
            identity_uuid: old_row.uuid.clone(),
            count: u64::try_from(records.len()).unwrap_or(u64::MAX),
        });
        let mut resealed = Vec::with_capacity(records.len());
        let mut unreadable = Vec::new();
        for rec in &records {
            // Every record write changes the head, so the head as read
            // (required above) already says the records are as read; an
            // identity made before heads has none to say it.
            if old_row.head.is_none() {
                batch.require(Precondition::RecordUnchanged {
                    uuid: rec.uuid.clone(),
                    ciphertext: rec.ciphertext.clone(),
                });
            }
            let digest = carried.as_ref().map(|_| stored_digest(rec));
            if let (Some(c), Some(d)) = (carried.as_deref(), &digest)
                && let Some((was, row)) = c.rows.get(&rec.uuid)
                && was == d
            {
                resealed.push(row.clone());
                continue;
            }
            let opened = keys
                .iter()
                .find(|(e, _)| *e == rec.key_epoch)
                .map(|(_, old)| new_sealer.reseal(old, rec));
            match opened {
                Some(Ok(new)) => {
                    if let (Some(c), Some(d)) = (carried.as_deref_mut(), digest) {
                        c.rows.insert(rec.uuid.clone(), (d, new.clone()));
                    }
                    resealed.push(new);
                }
                Some(Err(e)) if !options.drop_unreadable && keys.len() == 1 => return Err(e),
                _ => unreadable.push(rec),
            }
        }
        if !unreadable.is_empty() && !options.drop_unreadable {
            let mut epochs: Vec<u32> = unreadable.iter().map(|r| r.key_epoch).collect();
            epochs.sort_unstable();
            epochs.dedup();
            return Err(Error::Integrity(format!(
                "{} records of identity {:?} open under no key this client has (sealed under key \
                 epoch {epochs:?}, which the store no longer serves, or damaged); nothing was \
                 changed. A rotation that drops unreadable records re-keys the rest",
                unreadable.len(),
                old_row.name
            )));
        }
        // An identity the store did not roll back (its own key opens its
        // head, nothing newer is known) is re-keyed with the record set its
        // head commits to and no other: a record the store deleted, replayed
        // in an older version or planted would otherwise pass into the new
        // head. A recovery (a rolled-back row, `drop_unreadable`) re-keys
        // what is stored, as SPEC 4d says.
        let newer_known = recover.listed_epoch > old_row.key_epoch
            || keys.iter().any(|(e, _)| *e > old_row.key_epoch);
        if let (Some(head), Some((_, own))) = (&stored_head, keys.first())
            && !options.drop_unreadable
            && !newer_known
        {
            let mut buckets = vec![[0u8; 32]; 1 << 16];
            for rec in &records {
                let leaf = own.leaf(&rec.uuid, rec.kind, &rec.ciphertext)?;
                xor_into(&mut buckets[usize::from(bucket_of(&rec.uuid)?)], &leaf);
            }
            // (a writer between the reads of the row and of the records:
            // the head precondition fails the commit and the rotation runs
            // again)
            if Tree::root_of_all(&buckets) != head.commitment
                && backend
                    .identity(&old_row.uuid)?
                    .is_some_and(|r| r.head == old_row.head)
            {
                return Err(Error::Integrity(format!(
                    "rollback or deletion detected: the records of identity {:?} are not the set \
                     its head (sequence {}) commits to; nothing was changed. A rotation that \
                     drops unreadable records re-keys the records as stored",
                    old_row.name, head.seq
                )));
            }
        }
        for rec in &unreadable {
            batch.write(Write::DeleteRecord {
                identity_uuid: rec.identity_uuid.clone(),
                kind: rec.kind,
                uuid: rec.uuid.clone(),
            });
        }
        let tree = new_sealer.tree(&resealed)?;
        let head = new_sealer.seal_head(stored_seq.max(seen_seq).saturating_add(1), &tree.root());
        batch
            .write(Write::ClearTree(old_row.uuid.clone()))
            .write(Write::SetTreeNodes {
                identity_uuid: old_row.uuid.clone(),
                nodes: tree.all_nodes(),
            });
        let records_resealed = resealed.len();
        batch
            .writes
            .extend(resealed.into_iter().map(Write::UpdateRecord));
        let new_row = IdentityRow {
            key_epoch: new_epoch,
            ..old_row.clone()
        };
        batch
            .write(Write::SetIdentityKey {
                uuid: new_row.uuid.clone(),
                key_epoch: new_epoch,
                wrapped_key: wrap_identity_key(root_key, &self.state.vault_id, &new_row, &new_ik)?,
            })
            .write(Write::SetIdentityHead {
                uuid: new_row.uuid.clone(),
                head,
            });
        self.rewrap_grants(batch, &new_row, &new_ik, &grants)?;
        Ok(Rotation {
            identity: Identity::from(&new_row),
            key_epoch: new_epoch,
            records_resealed,
            records_dropped: unreadable.len(),
            grants_kept: grants.len(),
            grants_removed: removed,
        })
    }

    /// The grants a rotation of `row` keeps; the others are deleted in
    /// `batch`, with how many. Rotation is the owner's recovery: a grant the
    /// owner did not sign, or that the vault head does not list (planted or
    /// restored by the store), is removed, never re-wrapped; so is the
    /// grant of `revoke`, which must have one.
    fn grants_kept(
        &self,
        batch: &mut Batch,
        row: &IdentityRow,
        revoke: Option<&AgentPublicKey>,
    ) -> Result<(Vec<GrantRow>, usize)> {
        let mut grants = Vec::new();
        let mut removed = 0;
        for g in self.state.backend.grants(&row.uuid)? {
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
                    row.name
                )));
            }
            removed += before - grants.len();
        }
        Ok((grants, removed))
    }

    /// Wraps `new_row`'s key `ik` to each of `grants` again, in `batch`.
    fn rewrap_grants(
        &self,
        batch: &mut Batch,
        new_row: &IdentityRow,
        ik: &SecretKey,
        grants: &[GrantRow],
    ) -> Result<()> {
        for g in grants {
            let pk = <[u8; 32]>::try_from(g.recipient.as_slice())
                .map(AgentPublicKey::from_bytes)
                .map_err(|_| Error::tampered("a grant's recipient"))?;
            let fresh = self.wrap_grant(
                new_row,
                ik,
                g.uuid.clone(),
                &pk,
                g.label.as_deref(),
                g.created_dt.clone(),
            )?;
            batch.write(Write::UpdateGrant(fresh));
        }
        Ok(())
    }

    /// A new header for `root_key` under `passphrase` (new salt), with the
    /// owner's key re-wrapped under it and the header signed again.
    fn header_for(
        &self,
        root_key: &SecretKey,
        passphrase: &Passphrase,
        params: KdfParams,
    ) -> Result<VaultRow> {
        let old = self.state.header();
        params.validate()?;
        let mut salt = [0u8; SALT_LEN];
        random_bytes(&mut salt)?;
        let kek = derive_kek(passphrase, &salt, &params)?;
        let ctx = SealContext::RootKey {
            vault_id: &self.state.vault_id,
            kdf_params: &params.encode(),
            salt: &salt,
        };
        let owner = self.owner_key()?;
        let seed = SecretKey::from_bytes(owner.seed());
        let mut header = VaultRow {
            kdf_memory_kib: params.memory_kib,
            kdf_iterations: params.iterations,
            kdf_parallelism: params.parallelism,
            kdf_salt: salt.to_vec(),
            wrapped_root_key: envelope::seal(&kek, &ctx, root_key.expose())?,
            wrapped_owner_key: Some(wrap_owner_key(
                root_key,
                &self.state.vault_id,
                owner,
                &seed,
            )?),
            ..old
        };
        sign_header(&mut header, &self.state.vault_id, owner);
        Ok(header)
    }

    fn require_passphrase(&self, what: &str) -> Result<()> {
        if self.session_id.is_some() {
            return Err(Error::Denied(format!(
                "{what} needs the current passphrase, not a session"
            )));
        }
        Ok(())
    }

    /// A new passphrase (new salt, optionally new KDF parameters) and a new
    /// root key: the owner key and every identity key are re-wrapped under
    /// it, and every session ends (their tokens seal the old root key). One
    /// batch. Records are not re-sealed: see [`Unlocked::rekey`] for that.
    ///
    /// # Errors
    /// [`Error::Denied`] when unlocked with a session rather than the
    /// passphrase; [`Error::InvalidInput`] for bad parameters;
    /// [`Error::Locked`] if the vault was re-keyed meanwhile.
    pub fn change_passphrase(&self, new: &Passphrase, kdf: Option<KdfParams>) -> Result<KdfParams> {
        self.require_passphrase("changing the passphrase")?;
        let params = kdf.unwrap_or(kdf_params_of(&self.state.header()));
        let backend = self.state.backend.as_ref();
        transact(
            backend,
            || {
                let new_rk = SecretKey::random()?;
                let mut batch = self.current_root_key();
                batch.write(Write::SetHeaderKey(self.header_for(&new_rk, new, params)?));
                let identities = self.state.identities()?;
                batch.require(Precondition::IdentityCount(count(identities.len())));
                for row in &identities {
                    let ik = self.identity_key(row)?;
                    batch
                        .require(Precondition::IdentityEpoch {
                            identity_uuid: row.uuid.clone(),
                            key_epoch: row.key_epoch,
                        })
                        .write(Write::SetIdentityKey {
                            uuid: row.uuid.clone(),
                            key_epoch: row.key_epoch,
                            wrapped_key: wrap_identity_key(
                                &new_rk,
                                &self.state.vault_id,
                                row,
                                &ik,
                            )?,
                        });
                }
                batch.write(Write::DeleteSessions(None));
                Ok((batch, ()))
            },
            |b, c| self.on_rekeyed(b, c),
        )?;
        self.state.reload()?;
        Ok(params)
    }

    /// Recovery after a leak: a new root key (the passphrase stays, with a
    /// new salt) and a rotation of every identity — new identity keys,
    /// every record re-sealed, grants re-wrapped to the remaining grantees —
    /// and every session ended, in one batch. Afterwards an old passphrase,
    /// session token or revoked agent key, even with an old copy of the
    /// vault, opens nothing written or re-sealed since.
    ///
    /// # Errors
    /// [`Error::Denied`] when unlocked with a session; [`Error::Integrity`]
    /// if a record fails to open (nothing is changed then).
    pub fn rekey(&self, passphrase: &Passphrase) -> Result<Rekey> {
        self.require_passphrase("re-keying the vault")?;
        let params = kdf_params_of(&self.state.header());
        let backend = self.state.backend.as_ref();
        let (rekey, changes) = transact(
            backend,
            || {
                let new_rk = SecretKey::random()?;
                let mut batch = self.current_root_key();
                batch.write(Write::SetHeaderKey(
                    self.header_for(&new_rk, passphrase, params)?,
                ));
                let identities = self.state.identities()?;
                batch.require(Precondition::IdentityCount(count(identities.len())));
                let mut rotations = Vec::new();
                for row in &identities {
                    let recover = Recover {
                        listed_epoch: row.key_epoch,
                        options: &RotateOptions::default(),
                        carried: None,
                    };
                    rotations.push(self.rotation_into(&mut batch, row, &new_rk, &recover)?);
                }
                self.with_vault_head(&mut batch)?;
                batch.write(Write::DeleteSessions(None));
                Ok((
                    batch,
                    Rekey {
                        identities: rotations,
                        sessions_revoked: 0,
                    },
                ))
            },
            |b, c| self.on_rekeyed(b, c),
        )?;
        self.state.reload()?;
        Ok(Rekey {
            sessions_revoked: changes.last().copied().unwrap_or(0),
            ..rekey
        })
    }
}

/// A rotation's options, with the key epoch the vault head lists for the
/// identity (which a rolled-back row falls behind), and what its earlier
/// attempts re-sealed.
struct Recover<'a, 'o> {
    listed_epoch: u32,
    options: &'a RotateOptions<'o>,
    carried: Option<&'a std::cell::RefCell<Carried>>,
}

/// What a rotation's attempts that lost to other writers leave to the next
/// one: the new key (drawn once per rotation and epoch) and every record
/// re-sealed under it, by uuid with the digest of the stored row it came
/// from. A record stored as it was then (same kind, epoch, blind index and
/// ciphertext: the same authenticated plaintext under the same name) is not
/// opened and sealed again, so a rotation that keeps losing its head
/// precondition to writers of the identity re-reads every record but
/// re-seals only what they changed. Nothing of it is stored unless an
/// attempt commits.
#[derive(Default)]
struct Carried {
    key: Option<(String, u32, SecretKey)>,
    rows: HashMap<String, ([u8; 32], RecordRow)>,
}

/// The digest that says a stored record is still the one re-sealed before.
fn stored_digest(r: &RecordRow) -> [u8; 32] {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    h.update([r.kind]);
    h.update(r.key_epoch.to_be_bytes());
    for part in [&r.blind_index, &r.ciphertext] {
        h.update(u64::try_from(part.len()).unwrap_or(u64::MAX).to_be_bytes());
        h.update(part);
    }
    h.finalize().into()
}

fn count(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

/// Seals an identity key under a root key, bound to the row's uuid, epoch
/// and routing metadata.
fn wrap_identity_key(
    root_key: &SecretKey,
    vault_id: &[u8; 16],
    row: &IdentityRow,
    ik: &SecretKey,
) -> Result<Vec<u8>> {
    let id = uuid_bytes(&row.uuid)?;
    envelope::seal(root_key, &identity_ctx(vault_id, &id, row), ik.expose())
}

mod chunked;

pub use chunked::ROTATION_CHUNK;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::AgentSecretKey;
    use crate::backend::{Backend, CommitError, FAIL_AFTER_WRITES};
    use crate::vault::Vault;
    use crate::vault::test_support::{new_identity, pass, test_vault};

    fn setup(dir: &tempfile::TempDir) -> Vault {
        let v = test_vault(dir);
        let u = v.unlock(&pass("pw")).unwrap();
        let iv = u.open_identity(&new_identity(&u, "alice")).unwrap();
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
        let err = u
            .rotate_identity("alice", &RotateOptions::default())
            .unwrap_err();
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
        let r = u
            .rotate_identity("alice", &RotateOptions::default())
            .unwrap();
        assert_eq!((r.key_epoch, r.records_resealed, r.grants_kept), (2, 5, 1));
        assert_eq!(read_all(&u.open_identity(&id).unwrap()).len(), 5);
        assert_eq!(
            read_all(&v.open_identity_as_agent(&agent, &id).unwrap()).len(),
            5
        );
    }

    /// A record that opens under no key stops a rotation (nothing changed)
    /// unless it is told to drop such records.
    #[test]
    fn rotation_drops_unreadable_records_only_when_told() {
        let dir = tempfile::tempdir().unwrap();
        let v = setup(&dir);
        let u = v.unlock(&pass("pw")).unwrap();
        let backend = u.state.backend.as_ref();
        let id = v.find_identity("alice").unwrap();
        let mut rec = backend
            .records(&id.uuid, &RecordQuery::default())
            .unwrap()
            .remove(0);
        let last = rec.ciphertext.len() - 1;
        rec.ciphertext[last] ^= 1;
        let mut b = Batch::new();
        b.write(Write::UpdateRecord(rec));
        backend.commit(&b).unwrap();
        let err = u
            .rotate_identity("alice", &RotateOptions::default())
            .unwrap_err();
        assert!(matches!(err, Error::Integrity(_)), "{err}");
        let row = backend.identity(&id.uuid).unwrap().unwrap();
        assert_eq!(row.key_epoch, 1, "nothing changed");
        let r = u
            .rotate_identity(
                "alice",
                &RotateOptions {
                    drop_unreadable: true,
                    ..RotateOptions::default()
                },
            )
            .unwrap();
        assert_eq!(
            (r.key_epoch, r.records_resealed, r.records_dropped),
            (2, 4, 1)
        );
        assert_eq!(read_all(&u.open_identity(&id).unwrap()).len(), 4);
    }

    /// A handle opened before a rotation follows it: its writes are
    /// sealed under the new epoch, its reads find records re-filed under
    /// the new key's blind indexes; an agent whose grant the rotation
    /// removed gets nothing more from its old handle.
    #[test]
    fn identity_vault_opened_before_a_rotation_follows_it() {
        let dir = tempfile::tempdir().unwrap();
        let v = setup(&dir);
        let u = v.unlock(&pass("pw")).unwrap();
        let (kept, revoked) = (
            AgentSecretKey::generate().unwrap(),
            AgentSecretKey::generate().unwrap(),
        );
        u.grant("alice", &kept.public(), None).unwrap();
        u.grant("alice", &revoked.public(), None).unwrap();
        let id = v.find_identity("alice").unwrap();
        let stale = u.open_identity(&id).unwrap();
        let stale_agent = v.open_identity_as_agent(&kept, &id).unwrap();
        let stale_revoked = v.open_identity_as_agent(&revoked, &id).unwrap();
        u.rotate_identity("alice", &RotateOptions::default())
            .unwrap();
        assert_eq!(stale.get_secret("K1").unwrap().value.expose(), "v1");
        stale.set_secret("NEW", &"x".into(), None).unwrap();
        assert_eq!(stale_agent.get_secret("NEW").unwrap().value.expose(), "x");
        stale_agent.set_secret("K2", &"y".into(), None).unwrap();
        let options = RotateOptions {
            revoke: Some(&revoked.public()),
            ..RotateOptions::default()
        };
        u.rotate_identity("alice", &options).unwrap();
        assert!(matches!(
            stale_revoked.get_secret("K1"),
            Err(Error::Denied(_))
        ));
        assert!(matches!(
            stale_revoked.set_secret("K9", &"z".into(), None),
            Err(Error::Denied(_))
        ));
        let rows = u
            .state
            .backend
            .records(&id.uuid, &RecordQuery::default())
            .unwrap();
        assert_eq!(rows.len(), 6);
        assert!(rows.iter().all(|r| r.key_epoch == 3), "{rows:?}");
        assert_eq!(read_all(&u.open_identity(&id).unwrap()).len(), 6);
        assert_eq!(stale.get_secret("K2").unwrap().value.expose(), "y");
    }

    /// (uuid, ciphertext) of a batch's records, by uuid.
    type Sealed = Vec<(String, Vec<u8>)>;

    /// A store where another writer always commits first: every ordinary
    /// commit of a rotation loses its head precondition (its records go to
    /// `lost`, then `meanwhile` runs with how many were lost). Everything
    /// else goes to the SQLite file underneath.
    fn contested(
        inner: crate::backend::SqliteBackend,
        lost: std::rc::Rc<std::cell::RefCell<Vec<Sealed>>>,
        meanwhile: Box<dyn Fn(usize)>,
    ) -> crate::backend::Hooked {
        crate::backend::Hooked {
            inner,
            commit: Box::new(move |inner, batch| {
                let head = batch
                    .preconditions
                    .iter()
                    .position(|p| matches!(p, Precondition::IdentityHead { .. }));
                let rotation = batch
                    .writes
                    .iter()
                    .any(|w| matches!(w, Write::SetIdentityKey { .. }));
                match head {
                    Some(i) if rotation => {
                        let mut records: Sealed = batch
                            .writes
                            .iter()
                            .filter_map(|w| match w {
                                Write::UpdateRecord(r) => {
                                    Some((r.uuid.clone(), r.ciphertext.clone()))
                                }
                                _ => None,
                            })
                            .collect();
                        records.sort();
                        lost.borrow_mut().push(records);
                        meanwhile(lost.borrow().len());
                        Err(CommitError::Conflict(Conflict::Precondition(i)))
                    }
                    _ => inner.commit(batch),
                }
            }),
            exclusive: true,
        }
    }

    /// A rotation that keeps losing to other writers is not starved: after
    /// a few lost attempts it is built and committed with writers kept out.
    /// From its second attempt on it re-seals only what changed: records
    /// stored as they were keep the sealing of the attempt before.
    #[test]
    fn a_rotation_outrun_by_other_writers_gets_through() {
        let dir = tempfile::tempdir().unwrap();
        drop(setup(&dir));
        let lost = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
        let path = dir.path().join("v.db");
        let writer = path.clone();
        let store = contested(
            crate::backend::SqliteBackend::open(&path).unwrap(),
            lost.clone(),
            // after the second loss, another process changes K1
            Box::new(move |n| {
                if n == 2 {
                    let v = Vault::open(&writer).unwrap();
                    let u = v.unlock(&pass("pw")).unwrap();
                    let iv = u.open_identity(&v.find_identity("alice").unwrap()).unwrap();
                    iv.set_secret("K1", &"changed".into(), None).unwrap();
                }
            }),
        );
        let v = Vault::with_backend(Box::new(store)).unwrap();
        let u = v.unlock(&pass("pw")).unwrap();
        let rotation = u
            .rotate_identity("alice", &RotateOptions::default())
            .unwrap();
        assert_eq!((rotation.key_epoch, rotation.records_resealed), (2, 5));
        let id = v.find_identity("alice").unwrap();
        assert_eq!(read_all(&u.open_identity(&id).unwrap()).len(), 5);
        let lost = lost.borrow();
        assert_eq!(lost.len(), 4);
        let mut committed: Vec<(String, Vec<u8>)> = u
            .state
            .backend
            .records(&id.uuid, &RecordQuery::default())
            .unwrap()
            .into_iter()
            .map(|r| (r.uuid, r.ciphertext))
            .collect();
        committed.sort();
        // K1, changed after the second attempt, is sealed again (once);
        // every other record keeps the first attempt's sealing
        let k1 = u.open_identity(&id).unwrap().get_secret("K1").unwrap();
        assert_eq!(k1.value.expose(), "changed");
        let k1 = k1.uuid;
        let without = |rows: &[(String, Vec<u8>)]| -> Vec<(String, Vec<u8>)> {
            rows.iter().filter(|(u, _)| *u != k1).cloned().collect()
        };
        let sealed = |rows: &[(String, Vec<u8>)]| {
            rows.iter().find(|(u, _)| *u == k1).map(|(_, c)| c.clone())
        };
        for attempt in [&lost[1], &lost[2], &lost[3], &committed] {
            assert_eq!(without(attempt), without(&lost[0]));
        }
        assert_eq!(sealed(&lost[1]), sealed(&lost[0]));
        assert_ne!(sealed(&lost[2]), sealed(&lost[1]));
        assert_eq!(sealed(&lost[3]), sealed(&lost[2]));
        assert_eq!(sealed(&committed), sealed(&lost[2]));
    }

    /// A rotation of more than a thousand records that lost once is built
    /// again with writers kept out at once: building it again in the open
    /// would only lose again to the writers of its identity.
    #[test]
    fn a_big_rotation_that_lost_once_goes_exclusive() {
        let dir = tempfile::tempdir().unwrap();
        {
            let v = test_vault(&dir);
            let u = v.unlock(&pass("pw")).unwrap();
            let id = new_identity(&u, "alice");
            let batch: Vec<(String, crate::SecretString)> = (0..1001)
                .map(|i| (format!("K{i:04}"), crate::SecretString::from("v")))
                .collect();
            u.open_identity(&id)
                .unwrap()
                .import_secrets(&batch)
                .unwrap();
        }
        let lost = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
        let store = contested(
            crate::backend::SqliteBackend::open(&dir.path().join("v.db")).unwrap(),
            lost.clone(),
            Box::new(|_| {}),
        );
        let v = Vault::with_backend(Box::new(store)).unwrap();
        let u = v.unlock(&pass("pw")).unwrap();
        let one_transaction = RotateOptions {
            chunk_records: Some(1001),
            ..RotateOptions::default()
        };
        let rotation = u.rotate_identity("alice", &one_transaction).unwrap();
        assert_eq!(rotation.records_resealed, 1001);
        assert_eq!(lost.borrow().len(), 1);
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
        let u = v.unlock(&pass("new")).unwrap();
        // a new root key: sessions (which seal the old one) end
        assert!(matches!(v.unlock_with_session(&t), Err(Error::Locked(_))));
        assert_eq!(read_all(&u.open_identity(&id).unwrap()).len(), 5);
        // a stale unlocked view (old root key) can no longer write under it
        let stale = Vault::open(&dir.path().join("v.db")).unwrap();
        let su = stale.unlock(&pass("new")).unwrap();
        u.change_passphrase(&pass("newer"), None).unwrap();
        assert!(matches!(
            su.create_identity(&NewIdentity {
                name: "late".into(),
                ..Default::default()
            }),
            Err(Error::Locked(_))
        ));
    }

    /// After a re-key, an old copy of the vault and any old credential
    /// open nothing written or re-sealed since.
    #[test]
    fn rekey_recovers() {
        let dir = tempfile::tempdir().unwrap();
        let v = setup(&dir);
        let agent = AgentSecretKey::generate().unwrap();
        let u = v.unlock(&pass("pw")).unwrap();
        u.grant("alice", &agent.public(), None).unwrap();
        let s = u.create_session(Duration::from_secs(600)).unwrap();
        let old_copy = dir.path().join("old.db");
        std::fs::copy(dir.path().join("v.db"), &old_copy).unwrap();
        // the committed state lives partly in the write-ahead log
        std::fs::copy(dir.path().join("v.db-wal"), dir.path().join("old.db-wal")).unwrap();
        let id = v.find_identity("alice").unwrap();
        let old_rk = u.root_key().clone();
        let old_ik = u
            .identity_key(&v.backend().identity(&id.uuid).unwrap().unwrap())
            .unwrap();
        // revoke the agent, then re-key
        u.rotate_identity(
            "alice",
            &RotateOptions {
                revoke: Some(&agent.public()),
                ..RotateOptions::default()
            },
        )
        .unwrap();
        let r = u.rekey(&pass("pw")).unwrap();
        assert_eq!(r.identities.len(), 1);
        assert_eq!(r.identities[0].records_resealed, 5);
        assert_eq!(r.sessions_revoked, 1);
        let v = Vault::open(&dir.path().join("v.db")).unwrap();
        let u = v.unlock(&pass("pw")).unwrap();
        let iv = u.open_identity(&id).unwrap();
        iv.set_secret("AFTER", &"after".into(), None).unwrap();
        assert_eq!(read_all(&iv).len(), 6);
        // old credentials against the new file
        assert!(v.unlock_with_session(&s.token).is_err());
        assert!(v.open_identity_as_agent(&agent, &id).is_err());
        let row = v.backend().identity(&id.uuid).unwrap().unwrap();
        let stale = Unlocked::open(v.state_for_tests(), old_rk.clone(), None);
        assert!(stale.is_err() || stale.unwrap().identity_key(&row).is_err());
        let new_ik = u.identity_key(&row).unwrap();
        assert_ne!(new_ik, old_ik);
        // the old copy still opens with the old passphrase, but only to
        // the old key, which opens no new record
        let old = Vault::open(&old_copy).unwrap();
        let ou = old.unlock(&pass("pw")).unwrap();
        assert_eq!(*ou.root_key(), old_rk);
        let rec = v
            .backend()
            .records(&id.uuid, &crate::backend::RecordQuery::default())
            .unwrap();
        let old_sealer =
            RecordSealer::new(v.state_for_tests().vault_id, &id.uuid, 1, &old_ik).unwrap();
        for r in &rec {
            let opened: Result<crate::records::SecretBody> = old_sealer.open_row(r);
            assert!(opened.is_err());
        }
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
        u.rotate_identity("alice", &RotateOptions::default())
            .unwrap();
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
        let owner_seed = u.owner_key().unwrap().seed();
        let needles: [(&str, &[u8]); 5] = [
            ("root key", u.root_key().expose()),
            ("identity key", ik.expose()),
            ("session key", s.token.key.expose()),
            ("agent secret", agent_bytes.secret_bytes()),
            ("owner signing seed", &owner_seed),
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
