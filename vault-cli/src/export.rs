//! `ravi export [--format json|csv] [--recipient AGE_RECIPIENT]… [-o OUT]`:
//! every entry of the selected identity, in a file another password manager
//! (or `ravi import`) reads — plaintext, or encrypted to age recipients.

use std::io::Write;
use std::path::Path;
use std::str::FromStr;

use serde_json::json;
use vault_core::{Error, ExportSet, IdentityVault, Result};
use zeroize::Zeroizing;

use crate::Output;

/// The formats `ravi export` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// ravi's JSON export: passwords, secrets and TOTP seeds (`ravi import json` reads it)
    Json,
    /// CSV with the columns domain, username, password, notes, totp (passwords and TOTP seeds; `ravi import csv` reads it)
    Csv,
}

/// The `format` field of a JSON export.
pub const JSON_FORMAT: &str = "ravi-export";
/// The `version` field of a JSON export.
pub const JSON_VERSION: u64 = 1;

/// The JSON document (SPEC §10), serialised straight from the entries (no
/// intermediate copies of the secrets).
#[derive(serde::Serialize)]
struct Document<'a> {
    format: &'static str,
    version: u64,
    identity: IdentityDoc<'a>,
    passwords: Vec<PasswordDoc<'a>>,
    secrets: Vec<SecretDoc<'a>>,
    totp: Vec<TotpDoc<'a>>,
}

#[derive(serde::Serialize)]
struct IdentityDoc<'a> {
    uuid: &'a str,
    name: &'a str,
    inbox: &'a str,
    phone: Option<&'a str>,
}

#[derive(serde::Serialize)]
struct PasswordDoc<'a> {
    domain: &'a str,
    username: Option<&'a str>,
    password: &'a str,
    notes: Option<&'a str>,
    created_dt: &'a str,
    updated_dt: &'a str,
}

#[derive(serde::Serialize)]
struct SecretDoc<'a> {
    key: &'a str,
    value: &'a str,
    notes: Option<&'a str>,
    created_dt: &'a str,
    updated_dt: &'a str,
}

#[derive(serde::Serialize)]
struct TotpDoc<'a> {
    name: &'a str,
    #[serde(serialize_with = "zeroizing_str")]
    uri: Zeroizing<String>,
    created_dt: &'a str,
    updated_dt: &'a str,
}

fn zeroizing_str<S: serde::Serializer>(
    s: &Zeroizing<String>,
    to: S,
) -> std::result::Result<S::Ok, S::Error> {
    to.serialize_str(s)
}

fn to_json(iv: &IdentityVault<'_>, set: &ExportSet) -> Result<Zeroizing<Vec<u8>>> {
    let ident = iv.identity();
    let doc = Document {
        format: JSON_FORMAT,
        version: JSON_VERSION,
        identity: IdentityDoc {
            uuid: &ident.uuid,
            name: &ident.name,
            inbox: &ident.inbox,
            phone: ident.phone.as_deref(),
        },
        passwords: set
            .passwords
            .iter()
            .map(|p| PasswordDoc {
                domain: &p.domain,
                username: p.username.as_deref(),
                password: p.password.expose(),
                notes: p.notes.as_deref(),
                created_dt: &p.created_dt,
                updated_dt: &p.updated_dt,
            })
            .collect(),
        secrets: set
            .secrets
            .iter()
            .map(|s| SecretDoc {
                key: &s.key,
                value: s.value.expose(),
                notes: s.notes.as_deref(),
                created_dt: &s.created_dt,
                updated_dt: &s.updated_dt,
            })
            .collect(),
        totp: set
            .totps
            .iter()
            .map(|(e, p)| TotpDoc {
                name: &e.name,
                uri: p.to_uri_named(Some(&e.name)),
                created_dt: &e.created_dt,
                updated_dt: &e.updated_dt,
            })
            .collect(),
    };
    let mut text = Zeroizing::new(serde_json::to_vec_pretty(&doc).map_err(Error::Encoding)?);
    text.push(b'\n');
    Ok(text)
}

/// The CSV table: a TOTP seed named like a password's domain goes in that
/// domain's first row; any other seed gets a row of its own with no
/// password. Secrets have no place in it: their count is returned.
fn to_csv(set: &ExportSet) -> Result<Zeroizing<Vec<u8>>> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let csv_err = |e: csv::Error| Error::InvalidInput(format!("cannot write CSV: {e}"));
    w.write_record(["domain", "username", "password", "notes", "totp"])
        .map_err(csv_err)?;
    let mut used = vec![false; set.totps.len()];
    for p in &set.passwords {
        let totp = set
            .totps
            .iter()
            .position(|(e, _)| e.name == p.domain)
            .filter(|i| !used[*i])
            .map(|i| {
                used[i] = true;
                let (e, params) = &set.totps[i];
                params.to_uri_named(Some(&e.name))
            })
            .unwrap_or_default();
        w.write_record([
            p.domain.as_str(),
            p.username.as_deref().unwrap_or(""),
            p.password.expose(),
            p.notes.as_deref().unwrap_or(""),
            totp.as_str(),
        ])
        .map_err(csv_err)?;
    }
    for ((e, params), _) in set.totps.iter().zip(&used).filter(|(_, u)| !**u) {
        w.write_record([e.name.as_str(), "", "", "", params.to_uri_named(Some(&e.name)).as_str()])
            .map_err(csv_err)?;
    }
    let bytes = w
        .into_inner()
        .map_err(|e| Error::InvalidInput(format!("cannot write CSV: {e}")))?;
    Ok(Zeroizing::new(bytes))
}

/// The recipients, each an `age1…` X25519 recipient.
fn recipients(given: &[String]) -> Result<Vec<age::x25519::Recipient>> {
    given
        .iter()
        .map(|r| {
            age::x25519::Recipient::from_str(r.trim()).map_err(|_| {
                Error::InvalidInput(format!(
                    "{r:?} is not an age recipient (an X25519 public key, age1…, as `age-keygen -y` prints)"
                ))
            })
        })
        .collect()
}

/// Encrypts `plain` to the recipients (age-encryption.org/v1, binary).
fn encrypt(plain: &[u8], to: &[age::x25519::Recipient]) -> Result<Vec<u8>> {
    let enc = age::Encryptor::with_recipients(to.iter().map(|r| r as &dyn age::Recipient))
        .map_err(|e| Error::InvalidInput(format!("cannot encrypt to the recipients: {e}")))?;
    let io = |e| Error::Io {
        context: "cannot encrypt the export".into(),
        source: e,
    };
    let mut out = Vec::with_capacity(plain.len() + 256);
    let mut w = enc.wrap_output(&mut out).map_err(io)?;
    w.write_all(plain).map_err(io)?;
    w.finish().map_err(io)?;
    Ok(out)
}

/// `ravi export`.
pub fn run(
    iv: &IdentityVault<'_>,
    format: Format,
    recipient: &[String],
    output: Option<&Path>,
    out: &mut Output,
) -> Result<()> {
    // Bad recipients fail before anything is read.
    let to = recipients(recipient)?;
    let set = iv.export()?;
    let plain: Zeroizing<Vec<u8>> = match format {
        Format::Json => to_json(iv, &set)?,
        Format::Csv => to_csv(&set)?,
    };
    // CSV has no place for secrets.
    let secrets = if format == Format::Json { set.secrets.len() } else { 0 };
    if format == Format::Csv && !set.secrets.is_empty() {
        eprintln!(
            "ravi: warning: {} secret(s) left out: CSV holds passwords and TOTP seeds; use --format json for everything",
            set.secrets.len()
        );
    }
    let bytes = if to.is_empty() {
        eprintln!(
            "ravi: warning: the export is plaintext: every password, secret and TOTP seed of identity {:?} is readable in it; use --recipient age1… to encrypt it",
            iv.identity().name
        );
        plain
    } else {
        Zeroizing::new(encrypt(&plain, &to)?)
    };
    match output {
        Some(p) => {
            vault_cli::config::write_private_file(p, &bytes)?;
            let doc = json!({
                "path": p.display().to_string(),
                "format": match format { Format::Json => "json", Format::Csv => "csv" },
                "encrypted": !to.is_empty(),
                "passwords": set.passwords.len(),
                "secrets": secrets,
                "totp": set.totps.len(),
            });
            let text = format!(
                "Exported {} password(s), {} secret(s) and {} TOTP seed(s) to {}{}",
                set.passwords.len(),
                secrets,
                set.totps.len(),
                p.display(),
                if to.is_empty() { "" } else { " (age-encrypted)" }
            );
            out.said(doc, text);
            Ok(())
        }
        None => out.stream(|w| w.write_all(&bytes)),
    }
}
