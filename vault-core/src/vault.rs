//! A vault, opened but not unlocked: its header and identity metadata are
//! readable, its sealed records are not. Credentials turn it into an
//! [`Unlocked`] vault (the owner) or an agent's [`Access`].

use std::path::Path;

use uuid::Uuid;

use crate::access::{self, Access, Credential};
use crate::agent::AgentSecretKey;
use crate::backend::{Backend, SqliteBackend, VaultRow};
use crate::clock::{now_rfc3339, rfc3339, unix_now};
use crate::envelope::{self, SealContext};
use crate::error::{Error, Result};
use crate::identity_vault::IdentityVault;
use crate::keys::{Passphrase, SALT_LEN, SecretKey, derive_kek};
use crate::model::{GrantInfo, Identity, InitOptions, VaultInfo};
use crate::names;
use crate::primitives::random_bytes;
use crate::session::SessionToken;
use crate::signing::{OwnerKey, OwnerPublicKey};
use crate::state::{VaultState, kdf_params_of};
use crate::unlocked::{Unlocked, sign_header, wrap_owner_key};
use crate::vault_head::VaultHead;

/// A vault, opened but not unlocked: identity metadata is readable, sealed
/// records are not.
#[derive(Debug)]
pub struct Vault {
    state: VaultState,
}

impl Vault {
    /// Creates a new vault file at `path`, sealed under `passphrase`.
    ///
    /// # Errors
    /// [`Error::Conflict`] if a vault exists there; [`Error::InvalidInput`]
    /// for bad options.
    pub fn init(path: &Path, passphrase: &Passphrase, opts: &InitOptions) -> Result<Vault> {
        Vault::create_in(passphrase, opts, |header| {
            Ok(Box::new(SqliteBackend::create(path, header)?))
        })
    }

    /// Creates a new vault in the backend that `create` makes from the
    /// sealed header row.
    ///
    /// # Errors
    /// As [`Vault::init`], and whatever `create` returns.
    #[cfg(feature = "hazmat")]
    pub fn init_with(
        passphrase: &Passphrase,
        opts: &InitOptions,
        create: impl FnOnce(&VaultRow) -> Result<Box<dyn Backend>>,
    ) -> Result<Vault> {
        Vault::create_in(passphrase, opts, create)
    }

    fn create_in(
        passphrase: &Passphrase,
        opts: &InitOptions,
        create: impl FnOnce(&VaultRow) -> Result<Box<dyn Backend>>,
    ) -> Result<Vault> {
        opts.kdf.validate()?;
        let inbox_domain = names::validate_inbox_domain(&opts.inbox_domain)?;
        let vault_uuid = Uuid::new_v4();
        let mut salt = [0u8; SALT_LEN];
        random_bytes(&mut salt)?;
        let kek = derive_kek(passphrase, &salt, &opts.kdf)?;
        let root_key = SecretKey::random()?;
        let vault_id = *vault_uuid.as_bytes();
        let ctx = SealContext::RootKey {
            vault_id: &vault_id,
            kdf_params: &opts.kdf.encode(),
            salt: &salt,
        };
        let mut header = VaultRow {
            vault_id: vault_uuid.to_string(),
            kdf_memory_kib: opts.kdf.memory_kib,
            kdf_iterations: opts.kdf.iterations,
            kdf_parallelism: opts.kdf.parallelism,
            kdf_salt: salt.to_vec(),
            wrapped_root_key: envelope::seal(&kek, &ctx, root_key.expose())?,
            inbox_domain,
            created_dt: now_rfc3339()?,
            owner_public_key: None,
            wrapped_owner_key: None,
            signature: None,
            vault_head: None,
        };
        let (seed, owner) = OwnerKey::generate()?;
        header.vault_head = Some(VaultHead::default().seal(&vault_id, &owner));
        header.wrapped_owner_key = Some(wrap_owner_key(&root_key, &vault_id, &owner, &seed)?);
        sign_header(&mut header, &vault_id, &owner);
        Vault::from_backend(create(&header)?)
    }

    /// Opens the vault file at `path`.
    ///
    /// # Errors
    /// [`Error::NotFound`] if there is none; [`Error::Integrity`] if the file
    /// is damaged.
    pub fn open(path: &Path) -> Result<Vault> {
        Vault::from_backend(Box::new(SqliteBackend::open(path)?))
    }

    /// Creates a new vault on a `ravi serve` server (`server` is its base
    /// URL), sealed under `passphrase`, with an owner `token`.
    ///
    /// # Errors
    /// As [`Vault::init`]; [`Error::Unavailable`] if the server cannot be
    /// reached.
    #[cfg(feature = "remote")]
    pub fn init_remote(
        server: &str,
        token: &str,
        passphrase: &Passphrase,
        opts: &InitOptions,
    ) -> Result<Vault> {
        let remote = crate::backend::RemoteBackend::new(server, token)?;
        Vault::create_in(passphrase, opts, |header| {
            remote.create(header)?;
            Ok(Box::new(remote))
        })
    }

    /// Opens the vault on a `ravi serve` server with a bearer token (an
    /// owner's or an identity-scoped one).
    ///
    /// # Errors
    /// [`Error::NotFound`] if the server holds no vault;
    /// [`Error::Unavailable`] if it cannot be reached; [`Error::Locked`] if
    /// it refuses the token.
    #[cfg(feature = "remote")]
    pub fn open_remote(server: &str, token: &str) -> Result<Vault> {
        Vault::from_backend(Box::new(crate::backend::RemoteBackend::new(server, token)?))
    }

    /// Uploads this vault's rows, exactly as they are, to an empty
    /// `ravi serve` server (`server`, with an owner `token`): the header
    /// (with the owner key and the vault head), then each identity with its
    /// records, record tree and grants in one batch. Sessions stay behind
    /// (`ravi unlock` again). No secret is needed or used: the rows are
    /// already sealed, and every signature and head travels with them.
    ///
    /// # Errors
    /// [`Error::Conflict`] if the server holds a vault already;
    /// [`Error::Unavailable`] if it cannot be reached (what was uploaded
    /// before stays; pushing again then reports the conflict).
    #[cfg(feature = "remote")]
    pub fn push(&self, server: &str, token: &str) -> Result<crate::model::Push> {
        use crate::backend::{Batch, CommitError, RecordQuery, Write};
        let remote = crate::backend::RemoteBackend::new(server, token)?;
        let local = self.state.backend.as_ref();
        let identities = self.state.identities()?;
        remote.create(&local.header()?)?;
        let (mut records, mut grants) = (0, 0);
        for row in &identities {
            let mut batch = Batch::new();
            batch.write(Write::InsertIdentity(row.clone()));
            for r in local.records(&row.uuid, &RecordQuery::default())? {
                batch.write(Write::InsertRecord(r));
                records += 1;
            }
            let nodes = local.tree_nodes(&row.uuid, &[])?;
            if !nodes.is_empty() {
                batch.write(Write::SetTreeNodes {
                    identity_uuid: row.uuid.clone(),
                    nodes: nodes.into_iter().map(|(id, h)| (id, Some(h))).collect(),
                });
            }
            for g in local.grants(&row.uuid)? {
                batch.write(Write::InsertGrant(g));
                grants += 1;
            }
            remote.commit(&batch).map_err(|e| match e {
                CommitError::Failed(e) => e,
                CommitError::Conflict(c) => Error::Conflict(format!(
                    "the server refused identity {:?} ({c:?})",
                    row.name
                )),
            })?;
        }
        Ok(crate::model::Push {
            server: remote.location(),
            vault_id: uuid::Uuid::from_bytes(self.state.vault_id).to_string(),
            identities: identities.len(),
            records,
            grants,
        })
    }

    /// Opens the vault whose rows `backend` holds.
    ///
    /// # Errors
    /// [`Error::Integrity`] if its header is missing or malformed.
    #[cfg(feature = "hazmat")]
    pub fn with_backend(backend: Box<dyn Backend>) -> Result<Vault> {
        Vault::from_backend(backend)
    }

    fn from_backend(backend: Box<dyn Backend>) -> Result<Vault> {
        Ok(Vault {
            state: VaultState::load(backend)?,
        })
    }

    /// The owner's public key, its signature on the header checked; `None`
    /// for a vault made before signing that its owner has not unlocked
    /// since. Clients pin it and compare it with [`Vault::check_owner`].
    pub fn owner_public_key(&self) -> Option<OwnerPublicKey> {
        self.state.owner()
    }

    /// The sequence number of the vault head (SPEC §4c) as the store shows
    /// it now, read again: clients compare it with the newest they
    /// remember, read *before* this call. `None` for a vault made before
    /// signing.
    ///
    /// # Errors
    /// [`Error::Integrity`] if the header or head fails to verify.
    pub fn refresh_head(&self) -> Result<Option<u64>> {
        self.state.reload()?;
        Ok(self.state.vault_head_seq())
    }

    /// The sequence number of the vault head as last read (by
    /// [`Vault::refresh_head`] or on opening); `None` for a vault made
    /// before signing.
    pub fn head_seq(&self) -> Option<u64> {
        self.state.vault_head_seq()
    }

    /// A value that differs whenever the store's rows, as this handle
    /// reads them, may differ from when it last gave the same value
    /// (inside [`Vault::read_consistently`]: that snapshot's). `None` when
    /// the store gives none (a remote store): then nothing may be assumed
    /// unchanged. For a process that keeps what it derived from the store
    /// (`ravi daemon`).
    ///
    /// # Errors
    /// Storage errors.
    pub fn store_version(&self) -> Result<Option<[u64; 2]>> {
        self.state.backend.version()
    }

    /// Runs `read` on one snapshot of the store where it has them (SQLite:
    /// one read transaction rather than one per query), for a process that
    /// reads the same vault many times (`ravi daemon`). Everything `read`
    /// does is checked as always; a write inside ends the snapshot first.
    ///
    /// # Errors
    /// Whatever `read` returns; storage errors.
    pub fn read_consistently<T>(&self, read: impl FnOnce() -> Result<T>) -> Result<T> {
        let mut read = Some(read);
        let mut value = None;
        self.state.backend.read_snapshot(&mut || {
            if let Some(read) = read.take() {
                value = Some(read()?);
            }
            Ok(())
        })?;
        value.ok_or_else(|| Error::Storage("the store did not run the read".into()))
    }

    /// Compares the vault's owner key with the one a client pinned.
    ///
    /// # Errors
    /// [`Error::Integrity`] if they differ, or if the vault has no owner key
    /// although one was pinned (the store stripped it).
    pub fn check_owner(&self, pinned: &OwnerPublicKey) -> Result<()> {
        match self.state.owner() {
            Some(k) if k == *pinned => Ok(()),
            Some(k) => Err(Error::Integrity(format!(
                "the vault's owner key {k} is not the pinned owner key {pinned}"
            ))),
            None => Err(Error::Integrity(format!(
                "the vault carries no owner key, but {pinned} was pinned for it (stripped by the store?)"
            ))),
        }
    }

    #[cfg(test)]
    pub(crate) fn backend(&self) -> &dyn Backend {
        self.state.backend.as_ref()
    }

    #[cfg(test)]
    pub(crate) fn state_for_tests(&self) -> &VaultState {
        &self.state
    }

    /// Public facts about the vault.
    pub fn info(&self) -> VaultInfo {
        let h = self.state.header();
        VaultInfo {
            location: self.state.backend.location(),
            vault_id: h.vault_id.clone(),
            owner_public_key: self.state.owner(),
            inbox_domain: h.inbox_domain.clone(),
            kdf: kdf_params_of(&h),
            created_dt: h.created_dt,
        }
    }

    /// Every identity, oldest first.
    ///
    /// # Errors
    /// Storage errors only.
    pub fn identities(&self) -> Result<Vec<Identity>> {
        Ok(self
            .state
            .identities()?
            .iter()
            .map(Identity::from)
            .collect())
    }

    /// The identity named or identified by `selector` (a name or a uuid).
    ///
    /// # Errors
    /// [`Error::NotFound`] if there is none.
    pub fn find_identity(&self, selector: &str) -> Result<Identity> {
        self.state
            .find_identity(selector)
            .map(|r| Identity::from(&r))
    }

    /// The grants of an identity (public information).
    ///
    /// # Errors
    /// [`Error::NotFound`] if there is no such identity.
    pub fn grants(&self, selector: &str) -> Result<Vec<GrantInfo>> {
        let row = self.state.find_identity(selector)?;
        Ok(self
            .state
            .grants(&row.uuid)?
            .iter()
            .map(GrantInfo::from)
            .collect())
    }

    /// Unlocks the vault with its passphrase (one Argon2id derivation).
    ///
    /// # Errors
    /// [`Error::WrongPassphrase`] if the passphrase is wrong or the wrapped
    /// root key or its parameters were altered.
    pub fn unlock(&self, passphrase: &Passphrase) -> Result<Unlocked<'_>> {
        let h = self.state.header();
        let params = kdf_params_of(&h);
        params
            .validate()
            .map_err(|_| Error::Integrity("the vault's KDF parameters are out of range".into()))?;
        let kek = derive_kek(passphrase, &h.kdf_salt, &params)?;
        let ctx = SealContext::RootKey {
            vault_id: &self.state.vault_id,
            kdf_params: &params.encode(),
            salt: &h.kdf_salt,
        };
        let rk = envelope::open(&kek, &ctx, &h.wrapped_root_key)
            .and_then(|pt| SecretKey::from_slice(&pt))
            .ok_or(Error::WrongPassphrase)?;
        Unlocked::open(&self.state, rk, None)
    }

    /// Unlocks with a session token: no key derivation.
    ///
    /// # Errors
    /// [`Error::Locked`] if the session is unknown, revoked, expired, from
    /// another vault, or the token does not open it.
    pub fn unlock_with_session(&self, token: &SessionToken) -> Result<Unlocked<'_>> {
        let row = self
            .state
            .backend
            .session(&token.id_text())?
            .ok_or_else(|| {
                Error::Locked(
                    "the session is not valid (revoked, expired, or for another vault)".into(),
                )
            })?;
        if row.expires_at <= unix_now()? {
            return Err(Error::Locked(format!(
                "the session expired at {}",
                rfc3339(row.expires_at)
            )));
        }
        let ctx = SealContext::Session {
            vault_id: &self.state.vault_id,
            session_id: &token.id,
            expires_at: row.expires_at,
        };
        let rk = envelope::open(&token.key, &ctx, &row.wrapped_root_key)
            .and_then(|pt| SecretKey::from_slice(&pt))
            .ok_or_else(|| Error::Locked("the session token was refused".into()))?;
        Unlocked::open(&self.state, rk, Some(token.id))
    }

    /// Opens the vault with a credential.
    ///
    /// # Errors
    /// [`Error::WrongPassphrase`] or [`Error::Locked`] when refused.
    pub fn access(&self, credential: &Credential) -> Result<Access<'_>> {
        Ok(match credential {
            Credential::Passphrase(p) => Access::owner_access(self.unlock(p)?),
            Credential::Session(t) => Access::owner_access(self.unlock_with_session(t)?),
            Credential::Agent(k) => Access::agent_access(&self.state, k.clone()),
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
        access::open_as_agent(&self.state, key, identity)
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    //! Helpers shared by the unit tests: a vault with weak Argon2id
    //! parameters, chosen explicitly for speed.
    use super::*;

    pub(crate) const WEAK: crate::keys::KdfParams = crate::keys::KdfParams {
        memory_kib: 1024,
        iterations: 1,
        parallelism: 1,
    };

    pub(crate) fn pass(s: &str) -> Passphrase {
        Passphrase::new(s.into()).unwrap()
    }

    /// A new vault at `dir/v.db` with passphrase "pw".
    pub(crate) fn test_vault(dir: &tempfile::TempDir) -> Vault {
        let opts = InitOptions {
            kdf: WEAK,
            inbox_domain: "example.com".into(),
        };
        Vault::init(&dir.path().join("v.db"), &pass("pw"), &opts).unwrap()
    }

    /// A new identity named `name` (its inbox from the name).
    pub(crate) fn new_identity(u: &crate::Unlocked<'_>, name: &str) -> crate::Identity {
        u.create_identity(&crate::NewIdentity {
            name: name.into(),
            ..Default::default()
        })
        .unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::NewIdentity;
    use crate::records::NewPassword;
    use crate::secret::SecretString;

    /// One snapshot: a commit by another connection is not seen inside it;
    /// a write through this connection ends it, and what is read after
    /// that is read afresh.
    #[test]
    fn a_snapshot_reads_one_state_and_a_write_inside_ends_it() {
        use test_support::*;
        let dir = tempfile::tempdir().unwrap();
        let v = test_vault(&dir);
        let u = v.unlock(&pass("pw")).unwrap();
        let ident = new_identity(&u, "alice");
        let iv = u.open_identity(&ident).unwrap();
        iv.set_secret("K", &"one".into(), None).unwrap();
        let other = Vault::open(&dir.path().join("v.db")).unwrap();
        let u2 = other.unlock(&pass("pw")).unwrap();
        let iv2 = u2.open_identity(&ident).unwrap();
        let value =
            |iv: &IdentityVault<'_>| iv.get_secret("K").map(|s| s.value.expose().to_string());
        v.read_consistently(|| {
            assert_eq!(value(&iv)?, "one");
            iv2.set_secret("K", &"two".into(), None)?;
            assert_eq!(value(&iv)?, "one", "the snapshot moved");
            iv.set_secret("J", &"x".into(), None)?;
            assert_eq!(value(&iv)?, "two");
            Ok(())
        })
        .unwrap();
        // (no transaction is left open: the other connection writes)
        iv2.set_secret("K", &"three".into(), None).unwrap();
        assert_eq!(value(&iv).unwrap(), "three");
    }

    use super::test_support::{pass, test_vault as vault};

    #[test]
    fn unlock_and_use_records() {
        let dir = tempfile::tempdir().unwrap();
        let v = vault(&dir);
        assert!(matches!(
            v.unlock(&pass("nope")),
            Err(Error::WrongPassphrase)
        ));
        let u = v.unlock(&pass("pw")).unwrap();
        let id = u
            .create_identity(&NewIdentity {
                name: "Alice".into(),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(id.inbox, "alice@example.com");
        let iv = u.open_identity(&id).unwrap();
        let p = iv
            .create_password(&NewPassword {
                domain: "https://accounts.example.org/login".into(),
                username: Some("alice".into()),
                password: "hunter2".into(),
                notes: None,
            })
            .unwrap();
        assert_eq!(p.domain, "example.org");
        // Debug of an entry never shows the password
        assert!(!format!("{p:?}").contains("hunter2"));
        assert_eq!(iv.get_password("example.org", None).unwrap(), p);
        let (s, created) = iv.set_secret("TOKEN", &"t1".into(), Some("n")).unwrap();
        assert!(created);
        let (s2, created) = iv.set_secret("TOKEN", &"t2".into(), None).unwrap();
        assert!(!created);
        assert_eq!(
            (s2.uuid.as_str(), s2.notes.as_deref()),
            (s.uuid.as_str(), Some("n"))
        );
        assert_eq!(iv.get_secret("TOKEN").unwrap().value.expose(), "t2");
        let batch: Vec<(String, SecretString)> = (0..50)
            .map(|i| (format!("BULK_{i}"), format!("b{i}").into()))
            .chain(std::iter::once(("TOKEN".to_string(), "t3".into())))
            .collect();
        assert_eq!(iv.import_secrets(&batch).unwrap(), 50);
        assert_eq!(iv.get_secret("TOKEN").unwrap().value.expose(), "t3");
        assert_eq!(iv.get_secret("BULK_49").unwrap().value.expose(), "b49");
        let bad = vec![
            ("ok".to_string(), SecretString::from("x")),
            (" bad".to_string(), "y".into()),
        ];
        assert!(iv.import_secrets(&bad).is_err());
        assert!(
            iv.get_secret("ok").is_err(),
            "nothing of a rejected import is written"
        );

        // a reopened vault reads the same
        drop(iv);
        drop(u);
        drop(v);
        let v = Vault::open(&dir.path().join("v.db")).unwrap();
        let u = v.unlock(&pass("pw")).unwrap();
        let iv = u.open_identity(&v.find_identity("alice").unwrap()).unwrap();
        assert_eq!(iv.secrets().unwrap().len(), 51);
        assert_eq!(iv.passwords().unwrap()[0].password.expose(), "hunter2");
        assert!(matches!(iv.get_secret("nope"), Err(Error::NotFound(_))));
        u.delete_identity("alice").unwrap();
        assert!(matches!(v.find_identity("alice"), Err(Error::NotFound(_))));
    }

    /// The whole API over the in-memory backend: the layers above the seam
    /// do not know which store holds the rows.
    #[test]
    fn the_engine_runs_on_the_memory_backend() {
        use crate::backend::MemoryBackend;
        let opts = InitOptions {
            kdf: super::test_support::WEAK,
            inbox_domain: "example.com".into(),
        };
        let mem = std::cell::RefCell::new(None);
        let v = Vault::create_in(&pass("pw"), &opts, |h| {
            let b = MemoryBackend::new(h.clone());
            *mem.borrow_mut() = Some(b.clone());
            Ok(Box::new(b))
        })
        .unwrap();
        let u = v.unlock(&pass("pw")).unwrap();
        let id = u
            .create_identity(&NewIdentity {
                name: "m".into(),
                ..Default::default()
            })
            .unwrap();
        let iv = u.open_identity(&id).unwrap();
        iv.set_secret("K", &"v1".into(), None).unwrap();
        let r = u
            .rotate_identity("m", &crate::RotateOptions::default())
            .unwrap();
        assert_eq!((r.key_epoch, r.records_resealed), (2, 1));
        // The handle opened before the rotation follows it.
        iv.set_secret("K", &"v2".into(), None).unwrap();
        iv.set_secret("K", &"v1".into(), None).unwrap();
        // A second handle on the same rows sees the rotated identity.
        let v2 = Vault::from_backend(Box::new(mem.borrow().clone().unwrap())).unwrap();
        let u2 = v2.unlock(&pass("pw")).unwrap();
        let iv2 = u2.open_identity(&v2.find_identity("m").unwrap()).unwrap();
        assert_eq!(iv2.get_secret("K").unwrap().value.expose(), "v1");
    }

    #[test]
    fn debug_of_unlocked_state_is_redacted() {
        let dir = tempfile::tempdir().unwrap();
        let v = vault(&dir);
        let u = v.unlock(&pass("pw")).unwrap();
        let dbg = format!("{u:?}");
        assert!(!dbg.contains("SecretKey") && dbg.ends_with(".. }"), "{dbg}");
    }
}
