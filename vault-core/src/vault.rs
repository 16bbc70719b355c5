//! Vaults, identities and the operations on an identity's records.

use std::path::{Path, PathBuf};

use serde::Serialize;
use subtle::ConstantTimeEq;
use uuid::Uuid;

use crate::envelope::{self, SealContext};
use crate::error::{Candidate, Error, Result};
use crate::keys::{IdentityKeys, KdfParams, Passphrase, SALT_LEN, SecretKey, derive_kek};
use crate::names;
use crate::primitives::{hmac_sha256, random_bytes};
use crate::records::{
    KIND_PASSWORD, KIND_SECRET, KIND_TOTP, NewPassword, PasswordBody, PasswordEdit, PasswordEntry,
    SecretBody, SecretEntry, TotpBody, TotpEntry,
};
use crate::secret::SecretString;
use crate::store::{IdentityRow, RecordRow, Store, Tx, VaultRow};
use crate::totp::{self, TotpAlgorithm, TotpCode, TotpParams};

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

fn uuid_bytes(s: &str) -> Result<[u8; 16]> {
    Uuid::try_parse(s)
        .map(|u| *u.as_bytes())
        .map_err(|_| Error::Integrity(format!("stored id {s:?} is not a uuid")))
}

/// A vault file, opened but not unlocked: identity metadata is readable,
/// sealed records are not.
#[derive(Debug)]
pub struct Vault {
    store: Store,
    header: VaultRow,
    vault_id: [u8; 16],
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

    fn kdf_params(&self) -> KdfParams {
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
        })
    }
}

fn find_identity_row(tx: &Tx<'_>, selector: &str) -> Result<IdentityRow> {
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
    vault: &'v Vault,
    root_key: SecretKey,
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
        row.wrapped_key = envelope::seal(
            &self.root_key,
            &identity_ctx(&self.vault.vault_id, uuid.as_bytes(), &row),
            ik.expose(),
        )?;
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
        let id = uuid_bytes(&row.uuid)?;
        let ik = envelope::open(
            &self.root_key,
            &identity_ctx(&self.vault.vault_id, &id, &row),
            &row.wrapped_key,
        )
        .and_then(|pt| SecretKey::from_slice(&pt))
        .ok_or_else(|| Error::tampered(format!("the key of identity {:?}", row.name)))?;
        Ok(IdentityVault {
            store: &self.vault.store,
            vault_id: self.vault.vault_id,
            identity: Identity::from(&row),
            identity_id: id,
            epoch: row.key_epoch,
            keys: IdentityKeys::derive(&ik),
        })
    }
}

/// The records of one identity, opened with its identity key.
pub struct IdentityVault<'s> {
    store: &'s Store,
    vault_id: [u8; 16],
    identity: Identity,
    identity_id: [u8; 16],
    epoch: u32,
    keys: IdentityKeys,
}

impl std::fmt::Debug for IdentityVault<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentityVault")
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

impl IdentityVault<'_> {
    /// The identity these records belong to.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// The blind index of a record name: HMAC-SHA256(index key, kind || name).
    /// Names arrive normalised: domains cleaned and lowercased, secret keys
    /// exact (case-sensitive).
    fn blind_index(&self, kind: u8, name: &str) -> [u8; 32] {
        hmac_sha256(self.keys.index.expose(), &[&[kind], name.as_bytes()])
    }

    fn seal_row<T: Serialize>(
        &self,
        kind: u8,
        uuid: &str,
        name: &str,
        body: &T,
    ) -> Result<RecordRow> {
        let record_id = uuid_bytes(uuid)?;
        let json = zeroize::Zeroizing::new(
            serde_json::to_vec(body)
                .map_err(|e| Error::Storage(format!("encoding failed: {e}")))?,
        );
        let padded = envelope::pad(&json)?;
        let ctx = SealContext::Record {
            vault_id: &self.vault_id,
            identity_id: &self.identity_id,
            kind,
            record_id: &record_id,
            epoch: self.epoch,
        };
        Ok(RecordRow {
            uuid: uuid.to_string(),
            identity_uuid: self.identity.uuid.clone(),
            kind,
            blind_index: self.blind_index(kind, name).to_vec(),
            key_epoch: self.epoch,
            ciphertext: envelope::seal(&self.keys.seal, &ctx, &padded)?,
        })
    }

    fn open_row<T: serde::de::DeserializeOwned>(
        &self,
        row: &RecordRow,
        name_of: impl Fn(&T) -> &str,
    ) -> Result<T> {
        let what = || Error::tampered(format!("record {}", row.uuid));
        if row.identity_uuid != self.identity.uuid || row.key_epoch != self.epoch {
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
        let json = envelope::unpad(&padded).ok_or_else(what)?;
        let body: T = serde_json::from_slice(json).map_err(|_| what())?;
        let expected = self.blind_index(row.kind, name_of(&body));
        if !bool::from(expected.ct_eq(row.blind_index.as_slice())) {
            return Err(what());
        }
        Ok(body)
    }

    fn open_password(&self, row: &RecordRow) -> Result<PasswordEntry> {
        let body: PasswordBody = self.open_row(row, |b: &PasswordBody| &b.domain)?;
        Ok(PasswordEntry::from_body(row.uuid.clone(), &body))
    }

    fn open_secret(&self, row: &RecordRow) -> Result<SecretEntry> {
        let body: SecretBody = self.open_row(row, |b: &SecretBody| &b.key)?;
        Ok(SecretEntry::from_body(row.uuid.clone(), &body))
    }

    // ---- passwords ----

    /// Stores a new password entry. Several entries may share a domain.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a bad domain or an empty password.
    pub fn create_password(&self, new: &NewPassword) -> Result<PasswordEntry> {
        let domain = names::clean_domain(&new.domain)?;
        if new.password.expose().is_empty() {
            return Err(Error::invalid("the password is empty"));
        }
        let now = now_rfc3339();
        let body = PasswordBody {
            domain: domain.clone(),
            username: new.username.clone().filter(|u| !u.is_empty()),
            password: new.password.expose().to_string(),
            notes: new.notes.clone().filter(|n| !n.is_empty()),
            created_dt: now.clone(),
            updated_dt: now,
        };
        let uuid = Uuid::new_v4().to_string();
        let row = self.seal_row(KIND_PASSWORD, &uuid, &domain, &body)?;
        self.store.write(|tx| tx.insert_record(&row))?;
        Ok(PasswordEntry::from_body(uuid, &body))
    }

    /// Every password entry of the identity, by domain then username.
    ///
    /// # Errors
    /// [`Error::Integrity`] if any entry fails to open.
    pub fn passwords(&self) -> Result<Vec<PasswordEntry>> {
        let rows = self
            .store
            .read(|tx| tx.records_of_kind(&self.identity.uuid, KIND_PASSWORD))?;
        let mut out = rows
            .iter()
            .map(|r| self.open_password(r))
            .collect::<Result<Vec<_>>>()?;
        out.sort_by(|a, b| {
            (&a.domain, &a.username, &a.created_dt).cmp(&(&b.domain, &b.username, &b.created_dt))
        });
        Ok(out)
    }

    fn find_password_row(
        &self,
        tx: &Tx<'_>,
        selector: &str,
        username: Option<&str>,
    ) -> Result<(RecordRow, PasswordEntry)> {
        if let Ok(u) = Uuid::try_parse(selector)
            && let Some(row) = tx.record(&self.identity.uuid, KIND_PASSWORD, &u.to_string())?
        {
            let entry = self.open_password(&row)?;
            return Ok((row, entry));
        }
        let domain = names::clean_domain(selector)?;
        let bi = self.blind_index(KIND_PASSWORD, &domain);
        let mut matches = Vec::new();
        for row in tx.records_by_index(&self.identity.uuid, KIND_PASSWORD, &bi)? {
            let entry = self.open_password(&row)?;
            if username.is_none_or(|u| entry.username.as_deref() == Some(u)) {
                matches.push((row, entry));
            }
        }
        match matches.len() {
            0 => Err(Error::NotFound(match username {
                Some(u) => format!("no password for {domain} with username {u:?}"),
                None => format!("no password for {domain}"),
            })),
            1 => Ok(matches.remove(0)),
            n => Err(Error::Ambiguous {
                message: format!("{n} passwords match {domain}; choose one by uuid or --username"),
                candidates: matches
                    .iter()
                    .map(|(_, e)| Candidate {
                        uuid: e.uuid.clone(),
                        username: e.username.clone().unwrap_or_default(),
                    })
                    .collect(),
            }),
        }
    }

    /// One password entry, by uuid or by domain (optionally narrowed by
    /// username).
    ///
    /// # Errors
    /// [`Error::NotFound`]; [`Error::Ambiguous`] if several entries match.
    pub fn get_password(&self, selector: &str, username: Option<&str>) -> Result<PasswordEntry> {
        self.store
            .read(|tx| self.find_password_row(tx, selector, username))
            .map(|(_, e)| e)
    }

    /// Changes a password entry, in one transaction.
    ///
    /// # Errors
    /// As [`IdentityVault::get_password`], plus [`Error::InvalidInput`].
    pub fn edit_password(
        &self,
        selector: &str,
        username: Option<&str>,
        edit: &PasswordEdit,
    ) -> Result<PasswordEntry> {
        let new_domain = edit
            .domain
            .as_deref()
            .map(names::clean_domain)
            .transpose()?;
        if edit
            .password
            .as_ref()
            .is_some_and(|p| p.expose().is_empty())
        {
            return Err(Error::invalid("the password is empty"));
        }
        self.store.write(|tx| {
            let (_, old) = self.find_password_row(tx, selector, username)?;
            let body = PasswordBody {
                domain: new_domain.clone().unwrap_or(old.domain.clone()),
                username: match &edit.username {
                    Some(u) => Some(u.clone()).filter(|u| !u.is_empty()),
                    None => old.username.clone(),
                },
                password: edit
                    .password
                    .as_ref()
                    .unwrap_or(&old.password)
                    .expose()
                    .to_string(),
                notes: match &edit.notes {
                    Some(n) => Some(n.clone()).filter(|n| !n.is_empty()),
                    None => old.notes.clone(),
                },
                created_dt: old.created_dt.clone(),
                updated_dt: now_rfc3339(),
            };
            let row = self.seal_row(KIND_PASSWORD, &old.uuid, &body.domain, &body)?;
            tx.update_record(&row)?;
            Ok(PasswordEntry::from_body(old.uuid.clone(), &body))
        })
    }

    /// Deletes a password entry.
    ///
    /// # Errors
    /// As [`IdentityVault::get_password`].
    pub fn delete_password(&self, selector: &str, username: Option<&str>) -> Result<PasswordEntry> {
        self.store.write(|tx| {
            let (row, entry) = self.find_password_row(tx, selector, username)?;
            tx.delete_record(&self.identity.uuid, KIND_PASSWORD, &row.uuid)?;
            Ok(entry)
        })
    }

    // ---- secrets ----

    /// Sets a secret; an existing key gets the new value (and the new notes,
    /// if given). Returns the entry and whether it was newly created.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a bad key.
    pub fn set_secret(
        &self,
        key: &str,
        value: &SecretString,
        notes: Option<&str>,
    ) -> Result<(SecretEntry, bool)> {
        names::validate_secret_key(key)?;
        let bi = self.blind_index(KIND_SECRET, key);
        self.store.write(|tx| {
            let existing = tx.records_by_index(&self.identity.uuid, KIND_SECRET, &bi)?;
            let now = now_rfc3339();
            let (uuid, created_dt, old_notes) = match existing.first() {
                Some(row) => {
                    let old = self.open_secret(row)?;
                    (old.uuid, old.created_dt, old.notes)
                }
                None => (Uuid::new_v4().to_string(), now.clone(), None),
            };
            let body = SecretBody {
                key: key.to_string(),
                value: value.expose().to_string(),
                notes: match notes {
                    Some(n) => Some(n.to_string()).filter(|n| !n.is_empty()),
                    None => old_notes,
                },
                created_dt,
                updated_dt: now,
            };
            let row = self.seal_row(KIND_SECRET, &uuid, key, &body)?;
            if existing.is_empty() {
                tx.insert_record(&row)?;
            } else {
                tx.update_record(&row)?;
            }
            Ok((SecretEntry::from_body(uuid, &body), existing.is_empty()))
        })
    }

    fn find_secret_row(&self, tx: &Tx<'_>, selector: &str) -> Result<(RecordRow, SecretEntry)> {
        if names::validate_secret_key(selector).is_ok() {
            let bi = self.blind_index(KIND_SECRET, selector);
            if let Some(row) = tx
                .records_by_index(&self.identity.uuid, KIND_SECRET, &bi)?
                .pop()
            {
                let e = self.open_secret(&row)?;
                return Ok((row, e));
            }
        }
        if let Ok(u) = Uuid::try_parse(selector)
            && let Some(row) = tx.record(&self.identity.uuid, KIND_SECRET, &u.to_string())?
        {
            let e = self.open_secret(&row)?;
            return Ok((row, e));
        }
        Err(Error::NotFound(format!("no secret {selector:?}")))
    }

    /// One secret, by key (or uuid).
    ///
    /// # Errors
    /// [`Error::NotFound`] if there is none.
    pub fn get_secret(&self, selector: &str) -> Result<SecretEntry> {
        self.store
            .read(|tx| self.find_secret_row(tx, selector))
            .map(|(_, e)| e)
    }

    /// Every secret of the identity, by key.
    ///
    /// # Errors
    /// [`Error::Integrity`] if any secret fails to open.
    pub fn secrets(&self) -> Result<Vec<SecretEntry>> {
        let rows = self
            .store
            .read(|tx| tx.records_of_kind(&self.identity.uuid, KIND_SECRET))?;
        let mut out = rows
            .iter()
            .map(|r| self.open_secret(r))
            .collect::<Result<Vec<_>>>()?;
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    /// Deletes a secret by key or uuid.
    ///
    /// # Errors
    /// [`Error::NotFound`] if there is none.
    pub fn delete_secret(&self, selector: &str) -> Result<SecretEntry> {
        self.store.write(|tx| {
            let (row, e) = self.find_secret_row(tx, selector)?;
            tx.delete_record(&self.identity.uuid, KIND_SECRET, &row.uuid)?;
            Ok(e)
        })
    }
}

/// Seconds since the Unix epoch, now.
fn unix_now() -> Result<u64> {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .map_err(|_| Error::Storage("the system clock is before 1970".into()))
}

fn params_of(body: &TotpBody) -> Result<TotpParams> {
    let bad = || Error::tampered(format!("TOTP record {:?}", body.name));
    let params = TotpParams {
        secret: totp::decode_base32_secret(&body.secret).map_err(|_| bad())?,
        algorithm: TotpAlgorithm::parse(&body.algorithm).map_err(|_| bad())?,
        digits: body.digits,
        period: body.period,
        issuer: body.issuer.clone(),
        account: body.account.clone(),
    };
    params.validate().map_err(|_| bad())?;
    Ok(params)
}

impl IdentityVault<'_> {
    fn open_totp(&self, row: &RecordRow) -> Result<TotpBody> {
        self.open_row(row, |b: &TotpBody| &b.name)
    }

    fn find_totp_row(&self, tx: &Tx<'_>, selector: &str) -> Result<(RecordRow, TotpBody)> {
        if let Ok(name) = totp::clean_totp_name(selector) {
            let bi = self.blind_index(KIND_TOTP, &name);
            if let Some(row) = tx
                .records_by_index(&self.identity.uuid, KIND_TOTP, &bi)?
                .pop()
            {
                let b = self.open_totp(&row)?;
                return Ok((row, b));
            }
        }
        if let Ok(u) = Uuid::try_parse(selector)
            && let Some(row) = tx.record(&self.identity.uuid, KIND_TOTP, &u.to_string())?
        {
            let b = self.open_totp(&row)?;
            return Ok((row, b));
        }
        Err(Error::NotFound(format!("no TOTP named {selector:?}")))
    }

    /// Enrols a TOTP seed. `name` defaults to the issuer; a URL or host is
    /// cleaned to its registrable domain, other names are lowercased.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for bad parameters or no usable name;
    /// [`Error::Conflict`] if the name is taken.
    pub fn add_totp(&self, name: Option<&str>, params: &TotpParams) -> Result<TotpEntry> {
        params.validate()?;
        let raw_name = name
            .or(params.issuer.as_deref())
            .ok_or_else(|| Error::invalid("give the TOTP a NAME (the URI has no issuer)"))?;
        let name = totp::clean_totp_name(raw_name)?;
        let now = now_rfc3339();
        let body = TotpBody {
            name: name.clone(),
            secret: totp::encode_base32_secret(&params.secret).to_string(),
            algorithm: params.algorithm.as_str().to_string(),
            digits: params.digits,
            period: params.period,
            issuer: params.issuer.clone(),
            account: params.account.clone(),
            created_dt: now.clone(),
            updated_dt: now,
        };
        let uuid = Uuid::new_v4().to_string();
        let row = self.seal_row(KIND_TOTP, &uuid, &name, &body)?;
        self.store
            .write(|tx| tx.insert_record(&row))
            .map_err(|e| match e {
                Error::Conflict(_) => Error::Conflict(format!(
                    "a TOTP named {name:?} already exists; delete it first"
                )),
                other => other,
            })?;
        Ok(TotpEntry::from_body(uuid, &body))
    }

    /// Every TOTP enrolment (no seeds), by name.
    ///
    /// # Errors
    /// [`Error::Integrity`] if any fails to open.
    pub fn totps(&self) -> Result<Vec<TotpEntry>> {
        let rows = self
            .store
            .read(|tx| tx.records_of_kind(&self.identity.uuid, KIND_TOTP))?;
        let mut out = rows
            .iter()
            .map(|r| Ok(TotpEntry::from_body(r.uuid.clone(), &self.open_totp(r)?)))
            .collect::<Result<Vec<_>>>()?;
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// One TOTP enrolment's parameters (no seed), by name or uuid.
    ///
    /// # Errors
    /// [`Error::NotFound`] if there is none.
    pub fn get_totp(&self, selector: &str) -> Result<TotpEntry> {
        let (row, body) = self.store.read(|tx| self.find_totp_row(tx, selector))?;
        Ok(TotpEntry::from_body(row.uuid, &body))
    }

    /// The enrolment's `otpauth://` URI. It contains the seed.
    ///
    /// # Errors
    /// [`Error::NotFound`] if there is none.
    pub fn totp_uri(&self, selector: &str) -> Result<SecretString> {
        let (_, body) = self.store.read(|tx| self.find_totp_row(tx, selector))?;
        Ok(SecretString::new(params_of(&body)?.to_uri().to_string()))
    }

    /// Deletes a TOTP enrolment by name or uuid.
    ///
    /// # Errors
    /// [`Error::NotFound`] if there is none.
    pub fn delete_totp(&self, selector: &str) -> Result<TotpEntry> {
        self.store.write(|tx| {
            let (row, body) = self.find_totp_row(tx, selector)?;
            tx.delete_record(&self.identity.uuid, KIND_TOTP, &row.uuid)?;
            Ok(TotpEntry::from_body(row.uuid, &body))
        })
    }

    /// The code for `at` (default: now). With `min_validity`, a code with
    /// fewer seconds left is skipped: without `at` this waits (at most one
    /// period, outside any transaction) for the next window.
    ///
    /// # Errors
    /// [`Error::NotFound`]; [`Error::InvalidInput`] if `min_validity` is not
    /// below the period.
    pub fn totp_code(
        &self,
        selector: &str,
        at: Option<u64>,
        min_validity: Option<u64>,
    ) -> Result<TotpCode> {
        let (_, body) = self.store.read(|tx| self.find_totp_row(tx, selector))?;
        let params = params_of(&body)?;
        let now = match at {
            Some(t) => t,
            None => unix_now()?,
        };
        let (t, wait) = totp::plan_code(params.period, now, min_validity)?;
        let t = if at.is_none() && wait > 0 {
            std::thread::sleep(std::time::Duration::from_secs(wait));
            // Re-read the clock: the code must be for the window we are in.
            unix_now()?.max(t)
        } else {
            t
        };
        totp::code_for(&body.name, &params, t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WEAK: KdfParams = KdfParams {
        memory_kib: 1024,
        iterations: 1,
        parallelism: 1,
    };

    fn vault(dir: &tempfile::TempDir) -> Vault {
        let opts = InitOptions {
            kdf: WEAK,
            inbox_domain: "example.com".into(),
        };
        Vault::init(&dir.path().join("v.db"), &pass("pw"), &opts).unwrap()
    }

    fn pass(s: &str) -> Passphrase {
        Passphrase::new(s.into()).unwrap()
    }

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

        // a reopened vault reads the same
        drop(iv);
        drop(u);
        drop(v);
        let v = Vault::open(&dir.path().join("v.db")).unwrap();
        let u = v.unlock(&pass("pw")).unwrap();
        let iv = u.open_identity(&v.find_identity("alice").unwrap()).unwrap();
        assert_eq!(iv.secrets().unwrap().len(), 1);
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
