//! Record kinds and their sealed plaintext bodies.
//!
//! A record's plaintext is a JSON object (fields below), padded and sealed
//! by [`crate::envelope`]. Its name (domain or key) is also stored, keyed,
//! in the row's blind index; opening re-checks the two agree.

use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::secret::SecretString;

/// Record kind of a password entry.
pub const KIND_PASSWORD: u8 = 1;
/// Record kind of a key/value secret.
pub const KIND_SECRET: u8 = 2;

/// A sealed record body: its kind and the name its blind index is made of.
pub(crate) trait RecordBody: Serialize + serde::de::DeserializeOwned {
    /// The record kind stored in the row and bound into the AD.
    const KIND: u8;
    /// The normalised name (domain, key, TOTP name).
    fn name(&self) -> &str;
}

impl RecordBody for PasswordBody {
    const KIND: u8 = KIND_PASSWORD;
    fn name(&self) -> &str {
        &self.domain
    }
}

impl RecordBody for SecretBody {
    const KIND: u8 = KIND_SECRET;
    fn name(&self) -> &str {
        &self.key
    }
}

impl RecordBody for TotpBody {
    const KIND: u8 = KIND_TOTP;
    fn name(&self) -> &str {
        &self.name
    }
}

/// The sealed body of a password entry.
#[derive(Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
#[serde(deny_unknown_fields)]
pub(crate) struct PasswordBody {
    pub domain: String,
    pub username: Option<String>,
    pub password: String,
    pub notes: Option<String>,
    pub created_dt: String,
    pub updated_dt: String,
}

/// The sealed body of a secret.
#[derive(Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
#[serde(deny_unknown_fields)]
pub(crate) struct SecretBody {
    pub key: String,
    pub value: String,
    pub notes: Option<String>,
    pub created_dt: String,
    pub updated_dt: String,
}

/// A password entry, as returned to callers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PasswordEntry {
    /// The entry's uuid.
    pub uuid: String,
    /// The registrable domain it is filed under.
    pub domain: String,
    /// The username, if any.
    pub username: Option<String>,
    /// The password.
    #[serde(serialize_with = "SecretString::serialize_exposed")]
    pub password: SecretString,
    /// Free-form notes.
    pub notes: Option<String>,
    /// Creation time (RFC 3339 UTC).
    pub created_dt: String,
    /// Last change (RFC 3339 UTC).
    pub updated_dt: String,
}

impl PasswordEntry {
    pub(crate) fn from_body(uuid: String, b: &PasswordBody) -> Self {
        PasswordEntry {
            uuid,
            domain: b.domain.clone(),
            username: b.username.clone(),
            password: SecretString::new(b.password.clone()),
            notes: b.notes.clone(),
            created_dt: b.created_dt.clone(),
            updated_dt: b.updated_dt.clone(),
        }
    }
}

/// A secret, as returned to callers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SecretEntry {
    /// The secret's uuid.
    pub uuid: String,
    /// Its key (unique per identity).
    pub key: String,
    /// Its value.
    #[serde(serialize_with = "SecretString::serialize_exposed")]
    pub value: SecretString,
    /// Free-form notes.
    pub notes: Option<String>,
    /// Creation time (RFC 3339 UTC).
    pub created_dt: String,
    /// Last change (RFC 3339 UTC).
    pub updated_dt: String,
}

impl SecretEntry {
    pub(crate) fn from_body(uuid: String, b: &SecretBody) -> Self {
        SecretEntry {
            uuid,
            key: b.key.clone(),
            value: SecretString::new(b.value.clone()),
            notes: b.notes.clone(),
            created_dt: b.created_dt.clone(),
            updated_dt: b.updated_dt.clone(),
        }
    }
}

/// A new password entry.
#[derive(Clone, Debug, Default)]
pub struct NewPassword {
    /// Domain, host or URL; cleaned to the registrable domain.
    pub domain: String,
    /// Username.
    pub username: Option<String>,
    /// The password.
    pub password: SecretString,
    /// Notes.
    pub notes: Option<String>,
}

/// What creating an entry does when one exists already (the same domain
/// and username for a password, the same name for a TOTP seed).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum IfExists {
    /// Refuse: [`crate::Error::Conflict`] naming the existing entry's uuid.
    #[default]
    Conflict,
    /// Replace its secret part, keeping its uuid and creation time.
    Update,
    /// Return the existing entry unchanged.
    Keep,
}

/// Changes to a password entry; `None` leaves a field as it is.
#[derive(Clone, Debug, Default)]
pub struct PasswordEdit {
    /// New domain (cleaned like [`NewPassword::domain`]).
    pub domain: Option<String>,
    /// New username.
    pub username: Option<String>,
    /// New password.
    pub password: Option<SecretString>,
    /// New notes.
    pub notes: Option<String>,
}

/// Record kind of a TOTP enrolment.
pub const KIND_TOTP: u8 = 3;

/// The sealed body of a TOTP enrolment. `secret` is unpadded Base32.
#[derive(Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
#[serde(deny_unknown_fields)]
pub(crate) struct TotpBody {
    pub name: String,
    pub secret: String,
    pub algorithm: String,
    pub digits: u8,
    pub period: u64,
    pub issuer: Option<String>,
    pub account: Option<String>,
    pub created_dt: String,
    pub updated_dt: String,
}

/// Text fields packed into one allocation: a listing of 100,000 records
/// keeps 100,000 of these, so each costs one heap block instead of five.
#[derive(Clone, PartialEq, Eq)]
struct Packed<const N: usize> {
    text: Box<str>,
    /// End offset of each field in `text`.
    ends: [u32; N],
    /// Bit i: field i is present (an absent one is empty in `text`).
    present: u8,
}

impl<const N: usize> Packed<N> {
    fn new(fields: [Option<&str>; N]) -> Self {
        let mut text = String::with_capacity(fields.iter().flatten().map(|f| f.len()).sum());
        let (mut ends, mut present) = ([0u32; N], 0u8);
        for (i, f) in fields.iter().enumerate() {
            if let Some(f) = f {
                text.push_str(f);
                present |= 1 << i;
            }
            // (records are at most 1 MiB)
            ends[i] = u32::try_from(text.len()).unwrap_or(u32::MAX);
        }
        Packed {
            text: text.into_boxed_str(),
            ends,
            present,
        }
    }

    fn get(&self, i: usize) -> Option<&str> {
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        (self.present & (1 << i) != 0).then(|| &self.text[start..self.ends[i] as usize])
    }

    fn text(&self, i: usize) -> &str {
        self.get(i).unwrap_or("")
    }

    /// As `Debug` shows a struct named by `shape`: an optional field as an
    /// `Option`, the others as text.
    fn fmt_as(&self, shape: &Shape<N>, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct(shape.name);
        for (i, name) in shape.fields.iter().enumerate() {
            if shape.optional & (1 << i) != 0 {
                d.field(name, &self.get(i));
            } else {
                d.field(name, &self.text(i));
            }
        }
        d.finish()
    }

    /// As a JSON object with its keys in alphabetical order; an absent
    /// optional field is `null`.
    fn serialize_as<S: serde::Serializer>(
        &self,
        shape: &Shape<N>,
        s: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut order: [usize; N] = std::array::from_fn(|i| i);
        order.sort_unstable_by_key(|&i| shape.fields[i]);
        let mut m = s.serialize_map(Some(N))?;
        for i in order {
            if shape.optional & (1 << i) != 0 {
                m.serialize_entry(shape.fields[i], &self.get(i))?;
            } else {
                m.serialize_entry(shape.fields[i], self.text(i))?;
            }
        }
        m.end()
    }
}

/// How a packed listing names itself and its fields (in packing order),
/// and which fields may be absent (bit i: field i).
struct Shape<const N: usize> {
    name: &'static str,
    fields: [&'static str; N],
    optional: u8,
}

const SECRET_LISTING: Shape<5> = Shape {
    name: "SecretListing",
    fields: ["uuid", "key", "notes", "created_dt", "updated_dt"],
    optional: 1 << 2,
};

const PASSWORD_LISTING: Shape<6> = Shape {
    name: "PasswordListing",
    fields: [
        "uuid",
        "domain",
        "username",
        "notes",
        "created_dt",
        "updated_dt",
    ],
    optional: 1 << 2 | 1 << 3,
};

/// A secret as a listing shows it: everything but the value. Serialised
/// as `{created_dt, key, notes, updated_dt, uuid}`.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretListing(Packed<5>);

impl SecretListing {
    pub(crate) fn from_body(uuid: String, b: &SecretBody) -> Self {
        SecretListing(Packed::new([
            Some(&uuid),
            Some(&b.key),
            b.notes.as_deref(),
            Some(&b.created_dt),
            Some(&b.updated_dt),
        ]))
    }

    /// The secret's uuid.
    pub fn uuid(&self) -> &str {
        self.0.text(0)
    }

    /// Its key (unique per identity).
    pub fn key(&self) -> &str {
        self.0.text(1)
    }

    /// Free-form notes.
    pub fn notes(&self) -> Option<&str> {
        self.0.get(2)
    }

    /// Creation time (RFC 3339 UTC).
    pub fn created_dt(&self) -> &str {
        self.0.text(3)
    }

    /// Last change (RFC 3339 UTC).
    pub fn updated_dt(&self) -> &str {
        self.0.text(4)
    }
}

impl std::fmt::Debug for SecretListing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt_as(&SECRET_LISTING, f)
    }
}

impl Serialize for SecretListing {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.0.serialize_as(&SECRET_LISTING, s)
    }
}

/// A password entry as a listing shows it: everything but the password.
/// Serialised as `{created_dt, domain, notes, updated_dt, username, uuid}`.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordListing(Packed<6>);

impl PasswordListing {
    pub(crate) fn from_body(uuid: String, b: &PasswordBody) -> Self {
        PasswordListing(Packed::new([
            Some(&uuid),
            Some(&b.domain),
            b.username.as_deref(),
            b.notes.as_deref(),
            Some(&b.created_dt),
            Some(&b.updated_dt),
        ]))
    }

    /// The entry's uuid.
    pub fn uuid(&self) -> &str {
        self.0.text(0)
    }

    /// The registrable domain it is filed under.
    pub fn domain(&self) -> &str {
        self.0.text(1)
    }

    /// The username, if any.
    pub fn username(&self) -> Option<&str> {
        self.0.get(2)
    }

    /// Free-form notes.
    pub fn notes(&self) -> Option<&str> {
        self.0.get(3)
    }

    /// Creation time (RFC 3339 UTC).
    pub fn created_dt(&self) -> &str {
        self.0.text(4)
    }

    /// Last change (RFC 3339 UTC).
    pub fn updated_dt(&self) -> &str {
        self.0.text(5)
    }
}

impl std::fmt::Debug for PasswordListing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt_as(&PASSWORD_LISTING, f)
    }
}

impl Serialize for PasswordListing {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.0.serialize_as(&PASSWORD_LISTING, s)
    }
}

/// A TOTP enrolment as shown to callers: parameters, never the seed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TotpEntry {
    /// The enrolment's uuid.
    pub uuid: String,
    /// Its name (unique per identity).
    pub name: String,
    /// Issuer, if known.
    pub issuer: Option<String>,
    /// Account, if known.
    pub account: Option<String>,
    /// `SHA1`, `SHA256`, `SHA512` or `STEAM`.
    pub algorithm: String,
    /// Code length.
    pub digits: u8,
    /// Time step in seconds.
    pub period: u64,
    /// Creation time (RFC 3339 UTC).
    pub created_dt: String,
    /// Last change (RFC 3339 UTC).
    pub updated_dt: String,
}

impl TotpEntry {
    pub(crate) fn from_body(uuid: String, b: &TotpBody) -> Self {
        TotpEntry {
            uuid,
            name: b.name.clone(),
            issuer: b.issuer.clone(),
            account: b.account.clone(),
            algorithm: b.algorithm.clone(),
            digits: b.digits,
            period: b.period,
            created_dt: b.created_dt.clone(),
            updated_dt: b.updated_dt.clone(),
        }
    }
}

/// Entries to import into one identity in one transaction
/// ([`crate::IdentityVault::import`]).
#[derive(Clone, Debug, Default)]
pub struct ImportSet {
    /// Password entries (an existing domain + username is updated).
    pub passwords: Vec<NewPassword>,
    /// Secrets: key, value, notes (an existing key is updated).
    pub secrets: Vec<(String, SecretString, Option<String>)>,
    /// TOTP seeds: name, parameters (an existing name is updated).
    pub totps: Vec<(String, crate::totp::TotpParams)>,
}

/// Every entry of one identity, read under one head
/// ([`crate::IdentityVault::export`]).
#[derive(Clone, Debug, Default)]
pub struct ExportSet {
    /// Password entries, by domain then username.
    pub passwords: Vec<PasswordEntry>,
    /// Secrets, by key.
    pub secrets: Vec<SecretEntry>,
    /// TOTP enrolments with their parameters (seed included), by name.
    pub totps: Vec<(TotpEntry, crate::totp::TotpParams)>,
}

/// What an import did (or, dry, would do): `{created, updated, skipped}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ImportReport {
    /// Entries created.
    pub created: usize,
    /// Entries that existed and were replaced.
    pub updated: usize,
    /// Entries left out, with the reason.
    pub skipped: Vec<Skipped>,
}

/// An entry an import left out.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Skipped {
    /// What it was (a name, a domain and username, a line number).
    pub item: String,
    /// Why.
    pub reason: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The listings' JSON (keys in alphabetical order, an absent optional
    /// field `null`) and `Debug` (fields in declaration order; never a
    /// value or a password, which they do not hold).
    #[test]
    fn listings_serialise_and_debug_as_before() {
        let s = SecretListing::from_body(
            "u1".into(),
            &SecretBody {
                key: "K".into(),
                value: "hunter2".into(),
                notes: None,
                created_dt: "c".into(),
                updated_dt: "d".into(),
            },
        );
        assert_eq!(
            serde_json::to_string(&s).unwrap(),
            r#"{"created_dt":"c","key":"K","notes":null,"updated_dt":"d","uuid":"u1"}"#
        );
        assert_eq!(
            format!("{s:?}"),
            r#"SecretListing { uuid: "u1", key: "K", notes: None, created_dt: "c", updated_dt: "d" }"#
        );
        let p = PasswordListing::from_body(
            "u2".into(),
            &PasswordBody {
                domain: "example.com".into(),
                username: Some("bob".into()),
                password: "hunter2".into(),
                notes: Some("n".into()),
                created_dt: "c".into(),
                updated_dt: "d".into(),
            },
        );
        assert_eq!(
            serde_json::to_string(&p).unwrap(),
            r#"{"created_dt":"c","domain":"example.com","notes":"n","updated_dt":"d","username":"bob","uuid":"u2"}"#
        );
        assert_eq!(
            format!("{p:?}"),
            r#"PasswordListing { uuid: "u2", domain: "example.com", username: Some("bob"), notes: Some("n"), created_dt: "c", updated_dt: "d" }"#
        );
        assert!(!format!("{s:?}{p:?}").contains("hunter2"));
    }
}
