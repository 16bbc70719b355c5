//! Ways into a vault without the passphrase — session tokens and agent keys
//! — and the operations that manage access: grants, revocation with key
//! rotation, and passphrase change.

use std::time::Duration;

use serde::Serialize;
use uuid::Uuid;

use crate::agent::{self, AgentPublicKey, AgentSecretKey, GrantContext};
use crate::envelope::{self, SealContext};
use crate::error::{Error, Result};
use crate::identity_vault::IdentityVault;
use crate::keys::{KdfParams, Passphrase, SALT_LEN, SecretKey, derive_kek};
use crate::primitives::random_bytes;
use crate::sealer::{RecordSealer, uuid_bytes};
use crate::session::{MAX_TTL, SessionToken};
use crate::store::{GrantRow, IdentityRow, SessionRow, Tx, VaultRow};
use crate::vault::{Identity, Unlocked, Vault, find_identity_row, now_rfc3339};

/// Seconds since the Unix epoch, now.
pub(crate) fn unix_now() -> Result<u64> {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .map_err(|_| Error::Storage("the system clock is before 1970".into()))
}

/// RFC 3339 UTC text of a Unix time.
pub(crate) fn rfc3339(unix: u64) -> String {
    i64::try_from(unix)
        .ok()
        .and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok())
        .and_then(|d| {
            d.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| "9999-12-31T23:59:59Z".into())
}

/// What a process presents to open a vault.
#[derive(Debug)]
pub enum Credential {
    /// The vault passphrase (one Argon2id derivation).
    Passphrase(Passphrase),
    /// A session token from `ravi unlock`.
    Session(SessionToken),
    /// An agent's secret key: opens only identities granted to it.
    Agent(AgentSecretKey),
}

/// What a credential opened.
#[derive(Debug)]
pub enum Access<'v> {
    /// The owner: the root key, every identity.
    Owner(Unlocked<'v>),
    /// An agent: only the identities granted to its key.
    Agent {
        /// The vault.
        vault: &'v Vault,
        /// The agent's key.
        key: AgentSecretKey,
    },
}

impl<'v> Access<'v> {
    /// The unlocked vault, or [`Error::Denied`] for an agent: `what` names
    /// the vault-wide operation refused.
    ///
    /// # Errors
    /// [`Error::Denied`] for agent keys.
    pub fn owner(&self, what: &str) -> Result<&Unlocked<'v>> {
        match self {
            Access::Owner(u) => Ok(u),
            Access::Agent { .. } => Err(Error::Denied(format!(
                "an agent key cannot {what}: that needs the vault passphrase or a session"
            ))),
        }
    }

    /// Opens an identity's records with whatever this access holds.
    ///
    /// # Errors
    /// [`Error::Denied`] if an agent has no grant for the identity.
    pub fn open_identity(&self, identity: &Identity) -> Result<IdentityVault<'v>> {
        match self {
            Access::Owner(u) => u.open_identity(identity),
            Access::Agent { vault, key } => vault.open_identity_as_agent(key, identity),
        }
    }
}

/// A grant, as listed (no key material).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct GrantInfo {
    /// The grant's uuid.
    pub uuid: String,
    /// The identity's uuid.
    pub identity_uuid: String,
    /// The agent's public key (`raviagent1…`).
    pub agent_public_key: String,
    /// A label for humans.
    pub label: Option<String>,
    /// The identity key epoch it wraps.
    pub key_epoch: u32,
    /// Creation time.
    pub created_dt: String,
}

impl From<&GrantRow> for GrantInfo {
    fn from(g: &GrantRow) -> Self {
        let pk = <[u8; 32]>::try_from(g.recipient.as_slice())
            .map(|b| AgentPublicKey::from_bytes(b).to_string())
            .unwrap_or_else(|_| "(malformed)".into());
        GrantInfo {
            uuid: g.uuid.clone(),
            identity_uuid: g.identity_uuid.clone(),
            agent_public_key: pk,
            label: g.label.clone(),
            key_epoch: g.key_epoch,
            created_dt: g.created_dt.clone(),
        }
    }
}

/// The outcome of a key rotation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Rotation {
    /// The identity.
    pub identity: Identity,
    /// Its new key epoch.
    pub key_epoch: u32,
    /// Records re-sealed under the new key.
    pub records_resealed: usize,
    /// Grants re-wrapped to the new key.
    pub grants_kept: usize,
    /// Grants removed.
    pub grants_removed: usize,
}

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

fn grant_context<'a>(
    vault_id: &'a [u8; 16],
    identity_id: &'a [u8; 16],
    grant_id: &'a [u8; 16],
    row: &'a IdentityRow,
) -> GrantContext<'a> {
    GrantContext {
        vault_id,
        identity_id,
        grant_id,
        epoch: row.key_epoch,
        name: &row.name,
        inbox: &row.inbox,
        phone: row.phone.as_deref().unwrap_or(""),
    }
}

impl Vault {
    /// Opens the vault with a credential.
    ///
    /// # Errors
    /// [`Error::WrongPassphrase`] or [`Error::Locked`] when refused.
    pub fn access(&self, credential: &Credential) -> Result<Access<'_>> {
        Ok(match credential {
            Credential::Passphrase(p) => Access::Owner(self.unlock(p)?),
            Credential::Session(t) => Access::Owner(self.unlock_with_session(t)?),
            Credential::Agent(k) => Access::Agent {
                vault: self,
                key: k.clone(),
            },
        })
    }

    /// Unlocks with a session token: no key derivation.
    ///
    /// # Errors
    /// [`Error::Locked`] if the session is unknown, revoked, expired, from
    /// another vault, or the token does not open it.
    pub fn unlock_with_session(&self, token: &SessionToken) -> Result<Unlocked<'_>> {
        let row = self.store.read(|tx| tx.session(&token.id_text()))?.ok_or_else(|| {
            Error::Locked(
                "the session is not valid (revoked, expired, or for another vault); run `ravi unlock`"
                    .into(),
            )
        })?;
        if row.expires_at <= unix_now()? {
            return Err(Error::Locked(format!(
                "the session expired at {}; run `ravi unlock`",
                rfc3339(row.expires_at)
            )));
        }
        let ctx = SealContext::Session {
            vault_id: &self.vault_id,
            session_id: &token.id,
            expires_at: row.expires_at,
        };
        let rk = envelope::open(&token.key, &ctx, &row.wrapped_root_key)
            .and_then(|pt| SecretKey::from_slice(&pt))
            .ok_or_else(|| Error::Locked("the session token was refused".into()))?;
        Ok(Unlocked {
            vault: self,
            root_key: rk,
            session_id: Some(token.id),
        })
    }

    /// Opens an identity with an agent key through the identity's grant.
    ///
    /// # Errors
    /// [`Error::Denied`] if the agent has no current grant for it;
    /// [`Error::Integrity`] if the grant was tampered with.
    pub fn open_identity_as_agent(
        &self,
        key: &AgentSecretKey,
        identity: &Identity,
    ) -> Result<IdentityVault<'_>> {
        let public = key.public();
        let (row, grant) = self.store.read(|tx| {
            let row = tx
                .identity_by_uuid(&identity.uuid)?
                .ok_or_else(|| Error::NotFound(format!("no identity {}", identity.uuid)))?;
            let grant = tx.grant_for(&row.uuid, public.as_bytes())?;
            Ok((row, grant))
        })?;
        let denied = || {
            Error::Denied(format!(
                "agent key {public} has no grant for identity {:?}",
                row.name
            ))
        };
        let grant = grant.ok_or_else(denied)?;
        if grant.key_epoch != row.key_epoch {
            return Err(denied());
        }
        let id = uuid_bytes(&row.uuid)?;
        let gid = uuid_bytes(&grant.uuid)?;
        let eph: [u8; 32] = grant
            .ephemeral_public
            .as_slice()
            .try_into()
            .map_err(|_| Error::tampered("the grant"))?;
        let ik = agent::unwrap_as_agent(
            key,
            &grant_context(&self.vault_id, &id, &gid, &row),
            &eph,
            &grant.wrapped_key,
        )
        .ok_or_else(|| Error::tampered(format!("the grant of identity {:?}", row.name)))?;
        Ok(IdentityVault {
            store: &self.store,
            identity: Identity::from(&row),
            sealer: RecordSealer::new(self.vault_id, &row.uuid, row.key_epoch, &ik)?,
        })
    }

    /// The grants of an identity (public information).
    ///
    /// # Errors
    /// [`Error::NotFound`] if there is no such identity.
    pub fn grants(&self, selector: &str) -> Result<Vec<GrantInfo>> {
        self.store.read(|tx| {
            let row = find_identity_row(tx, selector)?;
            Ok(tx
                .grants_of(&row.uuid)?
                .iter()
                .map(GrantInfo::from)
                .collect())
        })
    }
}

#[cfg(test)]
thread_local! {
    /// Test hook: fail a rotation after re-sealing this many records.
    static FAIL_ROTATION_AFTER: std::cell::Cell<Option<usize>> = const { std::cell::Cell::new(None) };
}

impl Unlocked<'_> {
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
            vault_id: &self.vault.vault_id,
            session_id: &token.id,
            expires_at,
        };
        let row = SessionRow {
            session_id: token.id_text(),
            expires_at,
            created_dt: now_rfc3339(),
            wrapped_root_key: envelope::seal(&token.key, &ctx, self.root_key.expose())?,
        };
        self.vault.store.write(|tx| {
            tx.delete_expired_sessions(now)?;
            tx.insert_session(&row)
        })?;
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
            (true, Some(id)) => Some(id.iter().map(|b| format!("{b:02x}")).collect::<String>()),
            (true, None) => {
                return Err(Error::invalid(
                    "--session needs a session (RAVI_SESSION or --session-file) to revoke",
                ));
            }
        };
        self.vault
            .store
            .write(|tx| tx.delete_sessions(id.as_deref()))
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
        self.vault.store.write(|tx| {
            let row = find_identity_row(tx, selector)?;
            let ik = self.identity_key(&row)?;
            let grant = self.wrap_grant(
                &row,
                &ik,
                Uuid::new_v4().to_string(),
                to,
                label,
                now_rfc3339(),
            )?;
            tx.insert_grant(&grant)?;
            Ok(GrantInfo::from(&grant))
        })
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
            agent::wrap_to_agent(to, &grant_context(&self.vault.vault_id, &id, &gid, row), ik)?;
        Ok(GrantRow {
            uuid: grant_uuid,
            identity_uuid: row.uuid.clone(),
            recipient: to.as_bytes().to_vec(),
            label: label.map(str::to_string),
            key_epoch: row.key_epoch,
            ephemeral_public: eph.to_vec(),
            wrapped_key: wrapped,
            created_dt,
        })
    }

    /// Rotates an identity's key, optionally removing one agent's grant
    /// first: a new random key at the next epoch; every record re-sealed
    /// under it; the key wrapped to the root key and to the remaining
    /// grantees. One transaction: a failure leaves the old state intact.
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown identity or a `revoke` key that
    /// has no grant; [`Error::Integrity`] if a record fails to open.
    pub fn rotate_identity(
        &self,
        selector: &str,
        revoke: Option<&AgentPublicKey>,
    ) -> Result<Rotation> {
        self.vault
            .store
            .write(|tx| self.rotate_in(tx, selector, revoke))
    }

    fn rotate_in(
        &self,
        tx: &Tx<'_>,
        selector: &str,
        revoke: Option<&AgentPublicKey>,
    ) -> Result<Rotation> {
        let old_row = find_identity_row(tx, selector)?;
        let old_ik = self.identity_key(&old_row)?;
        let mut grants = tx.grants_of(&old_row.uuid)?;
        let mut removed = 0;
        if let Some(pk) = revoke {
            let before = grants.len();
            for g in grants.iter().filter(|g| g.recipient == pk.as_bytes()) {
                tx.delete_grant(&g.uuid)?;
            }
            grants.retain(|g| g.recipient != pk.as_bytes());
            removed = before - grants.len();
            if removed == 0 {
                return Err(Error::NotFound(format!(
                    "agent key {pk} has no grant for identity {:?}",
                    old_row.name
                )));
            }
        }
        let new_epoch = old_row
            .key_epoch
            .checked_add(1)
            .ok_or_else(|| Error::Conflict("the identity's key epoch is exhausted".into()))?;
        let new_ik = SecretKey::random()?;
        let old_sealer = RecordSealer::new(
            self.vault.vault_id,
            &old_row.uuid,
            old_row.key_epoch,
            &old_ik,
        )?;
        let new_sealer = RecordSealer::new(self.vault.vault_id, &old_row.uuid, new_epoch, &new_ik)?;
        let records = tx.records_of_identity(&old_row.uuid)?;
        for (i, rec) in records.iter().enumerate() {
            #[cfg(test)]
            if FAIL_ROTATION_AFTER.with(|f| f.get()) == Some(i) {
                return Err(Error::Storage(
                    "injected failure in the middle of a rotation".into(),
                ));
            }
            let _ = i;
            tx.update_record(&new_sealer.reseal(&old_sealer, rec)?)?;
        }
        let new_row = IdentityRow {
            key_epoch: new_epoch,
            ..old_row.clone()
        };
        let wrapped = self.wrap_identity_key(&new_row, &new_ik)?;
        tx.replace_identity_key(&new_row.uuid, old_row.key_epoch, new_epoch, &wrapped)?;
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
            tx.update_grant(&fresh)?;
        }
        Ok(Rotation {
            identity: Identity::from(&new_row),
            key_epoch: new_epoch,
            records_resealed: records.len(),
            grants_kept: grants.len(),
            grants_removed: removed,
        })
    }

    /// Re-wraps the root key under a new passphrase (new salt, optionally
    /// new KDF parameters), in one transaction. No record is re-encrypted
    /// and sessions stay valid.
    ///
    /// # Errors
    /// [`Error::Denied`] when unlocked with a session rather than the
    /// passphrase; [`Error::InvalidInput`] for bad parameters.
    pub fn change_passphrase(&self, new: &Passphrase, kdf: Option<KdfParams>) -> Result<KdfParams> {
        if self.session_id.is_some() {
            return Err(Error::Denied(
                "changing the passphrase needs the current passphrase, not a session".into(),
            ));
        }
        let params = kdf.unwrap_or_else(|| self.vault.kdf_params());
        params.validate()?;
        let mut salt = [0u8; SALT_LEN];
        random_bytes(&mut salt)?;
        let kek = derive_kek(new, &salt, &params)?;
        let ctx = SealContext::RootKey {
            vault_id: &self.vault.vault_id,
            kdf_params: &params.encode(),
            salt: &salt,
        };
        let header = VaultRow {
            kdf_memory_kib: params.memory_kib,
            kdf_iterations: params.iterations,
            kdf_parallelism: params.parallelism,
            kdf_salt: salt.to_vec(),
            wrapped_root_key: envelope::seal(&kek, &ctx, self.root_key.expose())?,
            ..self.vault.header.clone()
        };
        self.vault
            .store
            .write(|tx| tx.replace_vault_key(&self.vault.header.wrapped_root_key, &header))?;
        Ok(params)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vault::NewIdentity;
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
        FAIL_ROTATION_AFTER.with(|f| f.set(Some(3)));
        let err = u.rotate_identity("alice", None).unwrap_err();
        FAIL_ROTATION_AFTER.with(|f| f.set(None));
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
        let row = v
            .store
            .read(|tx| tx.identity_by_name("alice"))
            .unwrap()
            .unwrap();
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
            ("root key", u.root_key.expose()),
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
