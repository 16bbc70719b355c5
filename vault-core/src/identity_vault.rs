//! The records of one identity: passwords and secrets (TOTP seeds are in
//! `totp_records.rs`), each operation one transaction.

use uuid::Uuid;
use zeroize::Zeroizing;

use crate::error::{Candidate, Error, Result};
use crate::names;
use crate::primitives::random_bytes;
use crate::records::{
    KIND_PASSWORD, KIND_SECRET, NewPassword, PasswordBody, PasswordEdit, PasswordEntry, SecretBody,
    SecretEntry,
};
use crate::sealer::RecordSealer;
use crate::secret::SecretString;
use crate::store::{RecordRow, Store, Tx};
use crate::vault::{Identity, now_rfc3339};

/// The records of one identity, opened with its identity key.
pub struct IdentityVault<'s> {
    pub(crate) store: &'s Store,
    pub(crate) identity: Identity,
    pub(crate) sealer: RecordSealer,
}

impl std::fmt::Debug for IdentityVault<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentityVault")
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

impl IdentityVault<'_> {
    /// Inside a write transaction: the identity still exists and its key
    /// was not rotated since this vault was opened, so nothing is sealed
    /// under a key that has just been retired.
    pub(crate) fn check_epoch(&self, tx: &Tx<'_>) -> Result<()> {
        match tx.identity_epoch(&self.identity.uuid)? {
            None => Err(Error::NotFound(format!(
                "identity {:?} was deleted",
                self.identity.name
            ))),
            Some(e) if e != self.sealer.epoch() => Err(Error::Conflict(
                "the identity's key was rotated while this command ran; retry".into(),
            )),
            Some(_) => Ok(()),
        }
    }

    /// The identity these records belong to.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    fn open_password(&self, row: &RecordRow) -> Result<PasswordEntry> {
        let body: PasswordBody = self.sealer.open_row(row)?;
        Ok(PasswordEntry::from_body(row.uuid.clone(), &body))
    }

    fn open_secret(&self, row: &RecordRow) -> Result<SecretEntry> {
        let body: SecretBody = self.sealer.open_row(row)?;
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
        let row = self.sealer.seal_row(&uuid, &body)?;
        self.store.write(|tx| {
            self.check_epoch(tx)?;
            tx.insert_record(&row)
        })?;
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
        let bi = self.sealer.blind_index(KIND_PASSWORD, &domain);
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
            self.check_epoch(tx)?;
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
            let row = self.sealer.seal_row(&old.uuid, &body)?;
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
            self.check_epoch(tx)?;
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
        self.store.write(|tx| {
            self.check_epoch(tx)?;
            self.set_secret_in(tx, key, value, notes, &now_rfc3339())
        })
    }

    /// Sets many secrets in one transaction (an import): each key is
    /// created or has its value replaced. Returns how many were created.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a bad key, before anything is written.
    pub fn import_secrets(&self, entries: &[(String, SecretString)]) -> Result<usize> {
        for (key, _) in entries {
            names::validate_secret_key(key)?;
        }
        let now = now_rfc3339();
        // One OS random draw for every record's uuid and nonce, instead of
        // two system calls per record.
        const PER_RECORD: usize = 16 + 24;
        let mut random = Zeroizing::new(vec![0u8; entries.len() * PER_RECORD]);
        random_bytes(&mut random)?;
        self.store.write(|tx| {
            self.check_epoch(tx)?;
            let mut created = 0;
            for ((key, value), r) in entries.iter().zip(random.chunks_exact(PER_RECORD)) {
                // Most imported keys are new: try the insert first and let
                // the unique index find the existing ones, instead of a
                // lookup per key.
                let (id_bytes, nonce) = r.split_at(16);
                let id: [u8; 16] = id_bytes.try_into().expect("16-byte chunk");
                let nonce: [u8; 24] = nonce.try_into().expect("24-byte chunk");
                let uuid = uuid::Builder::from_random_bytes(id).into_uuid().to_string();
                let body = SecretBody {
                    key: key.clone(),
                    value: value.expose().to_string(),
                    notes: None,
                    created_dt: now.clone(),
                    updated_dt: now.clone(),
                };
                let row = self
                    .sealer
                    .seal_row_with_nonce(&uuid, &body, Some(&nonce))?;
                match tx.insert_record(&row) {
                    Ok(()) => created += 1,
                    Err(Error::Conflict(_)) => {
                        self.set_secret_in(tx, key, value, None, &now)?;
                    }
                    Err(e) => return Err(e),
                }
            }
            Ok(created)
        })
    }

    fn set_secret_in(
        &self,
        tx: &Tx<'_>,
        key: &str,
        value: &SecretString,
        notes: Option<&str>,
        now: &str,
    ) -> Result<(SecretEntry, bool)> {
        let bi = self.sealer.blind_index(KIND_SECRET, key);
        let existing = tx.records_by_index(&self.identity.uuid, KIND_SECRET, &bi)?;
        let (uuid, created_dt, old_notes) = match existing.first() {
            Some(row) => {
                let old = self.open_secret(row)?;
                (old.uuid, old.created_dt, old.notes)
            }
            None => (Uuid::new_v4().to_string(), now.to_string(), None),
        };
        let body = SecretBody {
            key: key.to_string(),
            value: value.expose().to_string(),
            notes: match notes {
                Some(n) => Some(n.to_string()).filter(|n| !n.is_empty()),
                None => old_notes,
            },
            created_dt,
            updated_dt: now.to_string(),
        };
        let row = self.sealer.seal_row(&uuid, &body)?;
        if existing.is_empty() {
            tx.insert_record(&row)?;
        } else {
            tx.update_record(&row)?;
        }
        Ok((SecretEntry::from_body(uuid, &body), existing.is_empty()))
    }

    /// The row of a uniquely named kind (secret, TOTP): by its normalised
    /// name through the blind index, else by uuid.
    pub(crate) fn find_unique_row(
        &self,
        tx: &Tx<'_>,
        kind: u8,
        name: Option<&str>,
        selector: &str,
    ) -> Result<Option<RecordRow>> {
        if let Some(name) = name {
            let bi = self.sealer.blind_index(kind, name);
            if let Some(row) = tx.records_by_index(&self.identity.uuid, kind, &bi)?.pop() {
                return Ok(Some(row));
            }
        }
        match Uuid::try_parse(selector) {
            Ok(u) => tx.record(&self.identity.uuid, kind, &u.to_string()),
            Err(_) => Ok(None),
        }
    }

    fn find_secret_row(&self, tx: &Tx<'_>, selector: &str) -> Result<(RecordRow, SecretEntry)> {
        let name = names::validate_secret_key(selector)
            .is_ok()
            .then_some(selector);
        let row = self
            .find_unique_row(tx, KIND_SECRET, name, selector)?
            .ok_or_else(|| Error::NotFound(format!("no secret {selector:?}")))?;
        let e = self.open_secret(&row)?;
        Ok((row, e))
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
            self.check_epoch(tx)?;
            let (row, e) = self.find_secret_row(tx, selector)?;
            tx.delete_record(&self.identity.uuid, KIND_SECRET, &row.uuid)?;
            Ok(e)
        })
    }
}
