//! The TOTP enrolments of one identity.

use uuid::Uuid;

use crate::access::unix_now;
use crate::error::{Error, Result};
use crate::identity_vault::IdentityVault;
use crate::records::{KIND_TOTP, TotpBody, TotpEntry};
use crate::secret::SecretString;
use crate::store::{RecordRow, Tx};
use crate::totp::{self, TotpAlgorithm, TotpCode, TotpParams};
use crate::vault::now_rfc3339;

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
        self.sealer.open_row(row)
    }

    fn find_totp_row(&self, tx: &Tx<'_>, selector: &str) -> Result<(RecordRow, TotpBody)> {
        let name = totp::clean_totp_name(selector).ok();
        let row = self
            .find_unique_row(tx, KIND_TOTP, name.as_deref(), selector)?
            .ok_or_else(|| Error::NotFound(format!("no TOTP named {selector:?}")))?;
        let b = self.open_totp(&row)?;
        Ok((row, b))
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
        let row = self.sealer.seal_row(&uuid, &body)?;
        self.store
            .write(|tx| {
                self.check_epoch(tx)?;
                tx.insert_record(&row)
            })
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
            self.check_epoch(tx)?;
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
