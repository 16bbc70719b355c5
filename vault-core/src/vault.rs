//! Vaults and identities: creating, unlocking, opening an identity's keys.

use std::path::{Path, PathBuf};

use serde::Serialize;
use uuid::Uuid;

use crate::envelope::{self, SealContext};
use crate::error::{Error, Result};
use crate::identity_vault::IdentityVault;
use crate::keys::{KdfParams, Passphrase, SALT_LEN, SecretKey, derive_kek};
use crate::names;
use crate::primitives::random_bytes;
use crate::sealer::{RecordSealer, uuid_bytes};
use crate::store::{IdentityRow, Store, Tx, VaultRow};

/// The current time as RFC 3339 UTC with second precision.
pub(crate) fn now_rfc3339() -> String {
    let now = time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap_or_else(|_| time::OffsetDateTime::now_utc());
    now.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".into())
}

/// Default domain of assigned inbox addresses. `.invalid` never routes
/// mail (RFC 2606): deployments set their own with `--inbox-domain`.
pub const DEFAULT_INBOX_DOMAIN: &str = "ravi.invalid";

/// Choices made once, when a vault is created.
#[derive(Clone, Debug)]
pub struct InitOptions {
    /// Argon2id parameters of the passphrase.
    pub kdf: KdfParams,
    /// Domain of assigned inbox addresses.
    pub inbox_domain: String,
}

impl Default for InitOptions {
    fn default() -> Self {
        InitOptions {
            kdf: KdfParams::DEFAULT,
            inbox_domain: DEFAULT_INBOX_DOMAIN.into(),
        }
    }
}

/// Public facts about a vault.
#[derive(Clone, Debug, Serialize)]
pub struct VaultInfo {
    /// The vault file.
    pub path: PathBuf,
    /// The vault's uuid.
    pub vault_id: String,
    /// Domain of assigned inbox addresses.
    pub inbox_domain: String,
    /// Argon2id parameters.
    pub kdf: KdfParams,
    /// Creation time.
    pub created_dt: String,
}

/// An identity's routing metadata (stored in the clear).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Identity {
    /// The identity's uuid.
    pub uuid: String,
    /// Its unique name.
    pub name: String,
    /// Its inbox address.
    pub inbox: String,
    /// Its phone number (E.164), if any.
    pub phone: Option<String>,
    /// Creation time.
    pub created_dt: String,
}

impl From<&IdentityRow> for Identity {
    fn from(r: &IdentityRow) -> Self {
        Identity {
            uuid: r.uuid.clone(),
            name: r.name.clone(),
            inbox: r.inbox.clone(),
            phone: r.phone.clone(),
            created_dt: r.created_dt.clone(),
        }
    }
}

/// A new identity.
#[derive(Clone, Debug, Default)]
pub struct NewIdentity {
    /// Unique name; also the inbox local part unless `email` is given.
    pub name: String,
    /// Inbox address; default `<name>@<inbox domain>`.
    pub email: Option<String>,
    /// Phone number, normalised to E.164.
    pub phone: Option<String>,
}

/// A vault file, opened but not unlocked: identity metadata is readable,
/// sealed records are not.
#[derive(Debug)]
pub struct Vault {
    pub(crate) store: Store,
    pub(crate) header: VaultRow,
    pub(crate) vault_id: [u8; 16],
}

impl Vault {
    /// Creates a new vault at `path`, sealed under `passphrase`.
    ///
    /// # Errors
    /// [`Error::Conflict`] if a vault exists there; [`Error::InvalidInput`]
    /// for bad options.
    pub fn init(path: &Path, passphrase: &Passphrase, opts: &InitOptions) -> Result<Vault> {
        opts.kdf.validate()?;
        let inbox_domain = names::validate_inbox_domain(&opts.inbox_domain)?;
        let vault_uuid = Uuid::new_v4();
        let mut salt = [0u8; SALT_LEN];
        random_bytes(&mut salt)?;
        let kek = derive_kek(passphrase, &salt, &opts.kdf)?;
        let root_key = SecretKey::random()?;
        let ctx = SealContext::RootKey {
            vault_id: vault_uuid.as_bytes(),
            kdf_params: &opts.kdf.encode(),
            salt: &salt,
        };
        let wrapped = envelope::seal(&kek, &ctx, root_key.expose())?;
        let header = VaultRow {
            vault_id: vault_uuid.to_string(),
            kdf_memory_kib: opts.kdf.memory_kib,
            kdf_iterations: opts.kdf.iterations,
            kdf_parallelism: opts.kdf.parallelism,
            kdf_salt: salt.to_vec(),
            wrapped_root_key: wrapped,
            inbox_domain,
            created_dt: now_rfc3339(),
        };
        let store = Store::create(path, &header)?;
        Ok(Vault {
            store,
            header,
            vault_id: *vault_uuid.as_bytes(),
        })
    }

    /// Opens the vault at `path`.
    ///
    /// # Errors
    /// [`Error::NotFound`] if there is none; [`Error::Integrity`] if the file
    /// is damaged.
    pub fn open(path: &Path) -> Result<Vault> {
        let store = Store::open(path)?;
        let header = store.read(|tx| tx.vault())?;
        let vault_id = uuid_bytes(&header.vault_id)?;
        Ok(Vault {
            store,
            header,
            vault_id,
        })
    }

    pub(crate) fn kdf_params(&self) -> KdfParams {
        KdfParams {
            memory_kib: self.header.kdf_memory_kib,
            iterations: self.header.kdf_iterations,
            parallelism: self.header.kdf_parallelism,
        }
    }

    /// Public facts about the vault.
    pub fn info(&self) -> VaultInfo {
        VaultInfo {
            path: self.store.path().to_path_buf(),
            vault_id: self.header.vault_id.clone(),
            inbox_domain: self.header.inbox_domain.clone(),
            kdf: self.kdf_params(),
            created_dt: self.header.created_dt.clone(),
        }
    }

    /// Every identity, oldest first.
    ///
    /// # Errors
    /// Storage errors only.
    pub fn identities(&self) -> Result<Vec<Identity>> {
        Ok(self
            .store
            .read(|tx| tx.identities())?
            .iter()
            .map(Identity::from)
            .collect())
    }

    /// The identity named or identified by `selector` (a name or a uuid).
    ///
    /// # Errors
    /// [`Error::NotFound`] if there is none.
    pub fn find_identity(&self, selector: &str) -> Result<Identity> {
        self.store
            .read(|tx| find_identity_row(tx, selector))
            .map(|r| Identity::from(&r))
    }

    /// Unlocks the vault with its passphrase (one Argon2id derivation).
    ///
    /// # Errors
    /// [`Error::WrongPassphrase`] if the passphrase is wrong or the wrapped
    /// root key or its parameters were altered.
    pub fn unlock(&self, passphrase: &Passphrase) -> Result<Unlocked<'_>> {
        let params = self.kdf_params();
        params
            .validate()
            .map_err(|_| Error::Integrity("the vault's KDF parameters are out of range".into()))?;
        let kek = derive_kek(passphrase, &self.header.kdf_salt, &params)?;
        let ctx = SealContext::RootKey {
            vault_id: &self.vault_id,
            kdf_params: &params.encode(),
            salt: &self.header.kdf_salt,
        };
        let rk = envelope::open(&kek, &ctx, &self.header.wrapped_root_key)
            .and_then(|pt| SecretKey::from_slice(&pt))
            .ok_or(Error::WrongPassphrase)?;
        Ok(Unlocked {
            vault: self,
            root_key: rk,
            session_id: None,
        })
    }
}

pub(crate) fn find_identity_row(tx: &Tx<'_>, selector: &str) -> Result<IdentityRow> {
    let by_uuid = match Uuid::try_parse(selector) {
        Ok(u) => tx.identity_by_uuid(&u.to_string())?,
        Err(_) => None,
    };
    match by_uuid {
        Some(r) => Ok(r),
        None => tx
            .identity_by_name(selector)?
            .ok_or_else(|| Error::NotFound(format!("no identity named {selector:?}"))),
    }
}

/// An unlocked vault: holds the root key.
pub struct Unlocked<'v> {
    pub(crate) vault: &'v Vault,
    pub(crate) root_key: SecretKey,
    /// The session this vault was unlocked with, if not the passphrase.
    pub(crate) session_id: Option<[u8; 16]>,
}

impl std::fmt::Debug for Unlocked<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Unlocked")
            .field("vault", self.vault)
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
                self.vault.header.inbox_domain
            ),
        };
        let phone = new
            .phone
            .as_deref()
            .map(names::normalize_phone)
            .transpose()?;
        let uuid = Uuid::new_v4();
        let mut row = IdentityRow {
            uuid: uuid.to_string(),
            name: new.name.clone(),
            inbox,
            phone,
            created_dt: now_rfc3339(),
            key_epoch: 1,
            wrapped_key: Vec::new(),
        };
        let ik = SecretKey::random()?;
        row.wrapped_key = self.wrap_identity_key(&row, &ik)?;
        self.vault.store.write(|tx| tx.insert_identity(&row))?;
        Ok(Identity::from(&row))
    }

    /// Deletes an identity, its key and every one of its records.
    ///
    /// # Errors
    /// [`Error::NotFound`] if there is no such identity.
    pub fn delete_identity(&self, selector: &str) -> Result<Identity> {
        self.vault.store.write(|tx| {
            let row = find_identity_row(tx, selector)?;
            tx.delete_identity(&row.uuid)?;
            Ok(Identity::from(&row))
        })
    }

    /// Seals an identity key under the root key, bound to the row's uuid,
    /// epoch and routing metadata.
    pub(crate) fn wrap_identity_key(&self, row: &IdentityRow, ik: &SecretKey) -> Result<Vec<u8>> {
        let id = uuid_bytes(&row.uuid)?;
        envelope::seal(
            &self.root_key,
            &identity_ctx(&self.vault.vault_id, &id, row),
            ik.expose(),
        )
    }

    /// Unwraps a row's identity key under the root key.
    pub(crate) fn identity_key(&self, row: &IdentityRow) -> Result<SecretKey> {
        let id = uuid_bytes(&row.uuid)?;
        envelope::open(
            &self.root_key,
            &identity_ctx(&self.vault.vault_id, &id, row),
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
            .vault
            .store
            .read(|tx| tx.identity_by_uuid(&identity.uuid))?
            .ok_or_else(|| Error::NotFound(format!("no identity {}", identity.uuid)))?;
        let ik = self.identity_key(&row)?;
        Ok(IdentityVault {
            store: &self.vault.store,
            identity: Identity::from(&row),
            sealer: RecordSealer::new(self.vault.vault_id, &row.uuid, row.key_epoch, &ik)?,
        })
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    //! Helpers shared by the unit tests: a vault with weak Argon2id
    //! parameters, chosen explicitly for speed.
    use super::*;

    pub(crate) const WEAK: KdfParams = KdfParams {
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::NewPassword;
    use crate::secret::SecretString;

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

    #[test]
    fn debug_of_unlocked_state_is_redacted() {
        let dir = tempfile::tempdir().unwrap();
        let v = vault(&dir);
        let u = v.unlock(&pass("pw")).unwrap();
        let dbg = format!("{u:?}");
        assert!(!dbg.contains("SecretKey") && dbg.ends_with(".. }"), "{dbg}");
    }
}
