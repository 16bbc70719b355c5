//! `ravi import FORMAT (FILE | -) [--dry-run]`: entries from another
//! password manager into the selected identity, in one transaction.

use std::io::Read;
use std::path::Path;

use serde_json::Value;
use vault_core::{
    Error, IdentityVault, ImportReport, ImportSet, NewPassword, Result, SecretString, Skipped,
    TotpParams,
};

use crate::Output;
use crate::otpauth_migration as migration;

/// The formats `ravi import` reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// ravi's own JSON export (`ravi export --format json`): passwords, secrets and TOTP seeds
    Json,
    /// An unencrypted Bitwarden JSON export (logins, with their TOTP seeds)
    BitwardenJson,
    /// A KeePassXC XML export (entries with a URL, with their TOTP seeds)
    KeepassXml,
    /// CSV with the columns domain, username, password, notes, totp
    Csv,
    /// NAME=VALUE lines, into secrets
    Dotenv,
    /// One otpauth://totp/ URI per line
    Otpauth,
    /// Google Authenticator export URIs (otpauth-migration://offline?data=…), one per line
    OtpauthMigration,
}

/// Largest input read.
const MAX_INPUT: u64 = 64 << 20;

fn read_input(source: &Path) -> Result<zeroize::Zeroizing<String>> {
    let mut text = zeroize::Zeroizing::new(String::new());
    let what = source.display().to_string();
    let io = |e| Error::Io {
        context: format!("cannot read {what}"),
        source: e,
    };
    if source == Path::new("-") {
        std::io::stdin()
            .take(MAX_INPUT)
            .read_to_string(&mut text)
            .map_err(io)?;
    } else {
        crate::input::check_file(source, "import")?;
        std::fs::File::open(source)
            .map_err(io)?
            .take(MAX_INPUT)
            .read_to_string(&mut text)
            .map_err(io)?;
    }
    Ok(text)
}

/// A TOTP from an otpauth URI or a bare Base32 secret.
fn totp_of(s: &str) -> Result<TotpParams> {
    let s = s.trim();
    if s.starts_with("otpauth://") {
        TotpParams::from_uri(s)
    } else {
        TotpParams::from_base32_secret(s)
    }
}

fn skip(set: &mut Vec<Skipped>, item: impl Into<String>, reason: impl Into<String>) {
    set.push(Skipped {
        item: item.into(),
        reason: reason.into(),
    });
}

/// The lines of a line-based format that hold something, trimmed, with
/// their (0-based) numbers: blank lines and `#` comments are skipped.
fn content_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .map(str::trim)
        .enumerate()
        .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'))
}

fn parse(format: Format, text: &str) -> Result<(ImportSet, Vec<Skipped>)> {
    let mut set = ImportSet::default();
    let mut skipped = Vec::new();
    match format {
        Format::KeepassXml => keepass_xml(text, &mut set, &mut skipped)?,
        Format::OtpauthMigration => {
            for (n, line) in content_lines(text) {
                match migration::decode(line) {
                    Ok(list) => {
                        for (i, entry) in list.into_iter().enumerate() {
                            match entry {
                                Ok((name, params)) => set.totps.push((name, params)),
                                Err(why) => skip(&mut skipped, format!("line {} entry {}", n + 1, i + 1), why),
                            }
                        }
                    }
                    Err(e) => skip(&mut skipped, format!("line {}", n + 1), e.to_string()),
                }
            }
        }
        Format::Json => {
            let v: Value = serde_json::from_str(text)
                .map_err(|e| Error::InvalidInput(format!("not a ravi JSON export: {e}")))?;
            if v.get("format").and_then(Value::as_str) != Some(crate::export::JSON_FORMAT) {
                return Err(Error::InvalidInput(format!(
                    "not a ravi JSON export: its \"format\" is not {:?}",
                    crate::export::JSON_FORMAT
                )));
            }
            match v.get("version").and_then(Value::as_u64) {
                Some(crate::export::JSON_VERSION) => {}
                other => {
                    return Err(Error::InvalidInput(format!(
                        "ravi JSON export version {} is not supported (this ravi reads version {})",
                        other.map_or("(none)".to_string(), |n| n.to_string()),
                        crate::export::JSON_VERSION
                    )));
                }
            }
            let list = |k: &str| v.get(k).and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[]);
            let str_of = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
            for (n, p) in list("passwords").iter().enumerate() {
                let (Some(domain), Some(password)) = (str_of(p, "domain"), str_of(p, "password")) else {
                    skip(&mut skipped, format!("passwords[{n}]"), "needs domain and password");
                    continue;
                };
                set.passwords.push(NewPassword {
                    domain,
                    username: str_of(p, "username"),
                    password: SecretString::from(password.as_str()),
                    notes: str_of(p, "notes"),
                });
            }
            for (n, s) in list("secrets").iter().enumerate() {
                let (Some(key), Some(value)) = (str_of(s, "key"), str_of(s, "value")) else {
                    skip(&mut skipped, format!("secrets[{n}]"), "needs key and value");
                    continue;
                };
                set.secrets
                    .push((key, SecretString::from(value.as_str()), str_of(s, "notes")));
            }
            for (n, t) in list("totp").iter().enumerate() {
                let (Some(name), Some(uri)) = (str_of(t, "name"), str_of(t, "uri")) else {
                    skip(&mut skipped, format!("totp[{n}]"), "needs name and uri");
                    continue;
                };
                match TotpParams::from_uri(&uri) {
                    Ok(params) => set.totps.push((name, params)),
                    Err(e) => skip(&mut skipped, name, e.to_string()),
                }
            }
        }
        Format::Dotenv => {
            for (n, line) in content_lines(text) {
                let line = line.strip_prefix("export ").unwrap_or(line);
                let Some((k, v)) = line.split_once('=') else {
                    skip(&mut skipped, format!("line {}", n + 1), "not NAME=VALUE");
                    continue;
                };
                let v = v.trim();
                let v = ['"', '\'']
                    .iter()
                    .find_map(|q| v.strip_prefix(*q).and_then(|x| x.strip_suffix(*q)))
                    .unwrap_or(v);
                set.secrets
                    .push((k.trim().to_string(), SecretString::from(v), None));
            }
        }
        Format::Otpauth => {
            for (n, line) in content_lines(text) {
                match TotpParams::from_uri(line) {
                    Ok(p) => match p.issuer.clone().or_else(|| p.account.clone()) {
                        Some(name) => set.totps.push((name, p)),
                        None => skip(&mut skipped, format!("line {}", n + 1), "the URI names no issuer or account"),
                    },
                    Err(e) => skip(&mut skipped, format!("line {}", n + 1), e.to_string()),
                }
            }
        }
        Format::Csv => {
            let mut r = csv::ReaderBuilder::new()
                .flexible(true)
                .trim(csv::Trim::All)
                .from_reader(text.as_bytes());
            let headers = r
                .headers()
                .map_err(|e| Error::InvalidInput(format!("not CSV: {e}")))?
                .iter()
                .map(str::to_ascii_lowercase)
                .collect::<Vec<_>>();
            let col = |name: &str| headers.iter().position(|h| h == name);
            let (Some(d), Some(p)) = (col("domain"), col("password")) else {
                return Err(Error::InvalidInput(
                    "the CSV header needs the columns domain and password (and username, notes, totp)".into(),
                ));
            };
            let (u, no, t) = (col("username"), col("notes"), col("totp"));
            for (n, rec) in r.records().enumerate() {
                let item = format!("row {}", n + 2);
                let rec = match rec {
                    Ok(rec) => rec,
                    Err(e) => {
                        skip(&mut skipped, item, e.to_string());
                        continue;
                    }
                };
                let get = |i: Option<usize>| i.and_then(|i| rec.get(i)).unwrap_or("").to_string();
                let domain = get(Some(d));
                let totp = get(t);
                let password = get(Some(p));
                // A row with a TOTP seed and no password is the seed alone
                // (as `ravi export --format csv` writes seeds of no domain).
                if !password.is_empty() || totp.is_empty() {
                    set.passwords.push(NewPassword {
                        domain: domain.clone(),
                        username: Some(get(u)).filter(|s| !s.is_empty()),
                        password: SecretString::from(password.as_str()),
                        notes: Some(get(no)).filter(|s| !s.is_empty()),
                    });
                }
                if !totp.is_empty() {
                    match totp_of(&totp) {
                        Ok(params) => set.totps.push((domain, params)),
                        Err(e) => skip(&mut skipped, format!("{item} totp"), e.to_string()),
                    }
                }
            }
        }
        Format::BitwardenJson => {
            let v: Value = serde_json::from_str(text)
                .map_err(|e| Error::InvalidInput(format!("not a Bitwarden JSON export: {e}")))?;
            if v.get("encrypted").and_then(Value::as_bool) == Some(true) {
                return Err(Error::InvalidInput(
                    "this Bitwarden export is encrypted: export it unencrypted (JSON)".into(),
                ));
            }
            let items = v
                .get("items")
                .and_then(Value::as_array)
                .ok_or_else(|| Error::InvalidInput("not a Bitwarden JSON export: no items".into()))?;
            for it in items {
                let name = it.get("name").and_then(Value::as_str).unwrap_or("(no name)");
                let str_of = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_string);
                let Some(login) = it.get("login").filter(|_| it.get("type").and_then(Value::as_u64) == Some(1)) else {
                    skip(&mut skipped, name, "not a login");
                    continue;
                };
                let uri = login
                    .get("uris")
                    .and_then(Value::as_array)
                    .and_then(|u| u.first())
                    .and_then(|u| str_of(u.get("uri")));
                let Some(domain) = uri else {
                    skip(&mut skipped, name, "the login has no URI");
                    continue;
                };
                let Some(password) = str_of(login.get("password")) else {
                    skip(&mut skipped, name, "the login has no password");
                    continue;
                };
                set.passwords.push(NewPassword {
                    domain: domain.clone(),
                    username: str_of(login.get("username")),
                    password: SecretString::from(password.as_str()),
                    notes: str_of(it.get("notes")),
                });
                if let Some(t) = str_of(login.get("totp")).filter(|t| !t.is_empty()) {
                    match totp_of(&t) {
                        Ok(params) => set.totps.push((domain, params)),
                        Err(e) => skip(&mut skipped, format!("{name} totp"), e.to_string()),
                    }
                }
            }
        }
    }
    Ok((set, skipped))
}

/// A KeePassXC (KeePass 2) XML export: `<Entry>`s of every `<Group>` but
/// the recycle bin, without their `<History>`. Title, UserName, Password,
/// URL and Notes are standard fields; the TOTP seed is KeePassXC's `otp`
/// field (an otpauth URI), or the older `TOTP Seed` with `TOTP Settings`
/// (`PERIOD;DIGITS`, or `PERIOD;S` for Steam).
fn keepass_xml(text: &str, set: &mut ImportSet, skipped: &mut Vec<Skipped>) -> Result<()> {
    let opts = roxmltree::ParsingOptions {
        allow_dtd: false,
        ..Default::default()
    };
    let doc = roxmltree::Document::parse_with_options(text, opts)
        .map_err(|e| Error::InvalidInput(format!("not a KeePassXC XML export: {e}")))?;
    let root = doc.root_element();
    if !root.has_tag_name("KeePassFile") {
        return Err(Error::InvalidInput(
            "not a KeePassXC XML export: the root element is not <KeePassFile>".into(),
        ));
    }
    let recycle_bin = text_of(child(root, "Meta").and_then(|m| child(m, "RecycleBinUUID")));
    let Some(top) = child(root, "Root") else {
        return Err(Error::InvalidInput("not a KeePassXC XML export: no <Root>".into()));
    };
    let mut groups: Vec<roxmltree::Node<'_, '_>> = top.children().filter(|c| c.has_tag_name("Group")).collect();
    while let Some(group) = groups.pop() {
        let uuid = text_of(child(group, "UUID"));
        if !recycle_bin.is_empty() && uuid == recycle_bin && recycle_bin != "AAAAAAAAAAAAAAAAAAAAAA==" {
            continue;
        }
        groups.extend(group.children().filter(|c| c.has_tag_name("Group")));
        for entry in group.children().filter(|c| c.has_tag_name("Entry")) {
            let mut fields = std::collections::HashMap::new();
            let mut protected = false;
            for f in entry.children().filter(|c| c.has_tag_name("String")) {
                let value = child(f, "Value");
                protected |= value.and_then(|v| v.attribute("Protected")) == Some("True");
                fields.insert(text_of(child(f, "Key")), value.and_then(|v| v.text()).unwrap_or("").to_string());
            }
            let field = |k: &str| fields.get(k).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
            let title = field("Title").unwrap_or_else(|| "(no title)".into());
            if protected {
                skip(skipped, title, "a protected (encrypted) value: export the database as XML from KeePassXC");
                continue;
            }
            let Some(domain) = field("URL") else {
                skip(skipped, title, "the entry has no URL");
                continue;
            };
            let password = fields.get("Password").cloned().unwrap_or_default();
            let otp = field("otp").map(Ok).or_else(|| {
                field("TOTP Seed").map(|seed| legacy_totp(&seed, field("TOTP Settings").as_deref()))
            });
            if password.is_empty() && otp.is_none() {
                skip(skipped, title, "the entry has no password");
                continue;
            }
            if !password.is_empty() {
                set.passwords.push(NewPassword {
                    domain: domain.clone(),
                    username: field("UserName"),
                    password: SecretString::from(password.as_str()),
                    notes: fields.get("Notes").cloned().filter(|n| !n.trim().is_empty()),
                });
            }
            match otp {
                Some(Ok(uri)) => match totp_of(&uri) {
                    Ok(params) => set.totps.push((domain, params)),
                    Err(e) => skip(skipped, format!("{title} totp"), e.to_string()),
                },
                Some(Err(why)) => skip(skipped, format!("{title} totp"), why),
                None => {}
            }
        }
    }
    Ok(())
}

fn child<'a, 'i>(n: roxmltree::Node<'a, 'i>, tag: &str) -> Option<roxmltree::Node<'a, 'i>> {
    n.children().find(|c| c.has_tag_name(tag))
}

fn text_of(n: Option<roxmltree::Node<'_, '_>>) -> String {
    n.and_then(|n| n.text()).unwrap_or("").trim().to_string()
}

/// KeePassXC's older TOTP fields as an otpauth URI.
fn legacy_totp(seed: &str, settings: Option<&str>) -> std::result::Result<String, String> {
    let seed: String = seed.chars().filter(|c| !c.is_whitespace()).collect();
    let (period, digits) = settings.unwrap_or("30;6").split_once(';').unwrap_or(("30", "6"));
    let period: u64 = period.trim().parse().map_err(|_| format!("TOTP Settings {settings:?}: bad period"))?;
    let mut uri = format!("otpauth://totp/?secret={seed}&period={period}");
    match digits.trim() {
        "S" => uri.push_str("&encoder=steam"),
        d => {
            let d: u8 = d.parse().map_err(|_| format!("TOTP Settings {settings:?}: bad digits"))?;
            uri.push_str(&format!("&digits={d}"));
        }
    }
    Ok(uri)
}

/// `ravi import`.
pub fn run(iv: &IdentityVault<'_>, format: Format, source: &Path, dry_run: bool, out: &mut Output) -> Result<()> {
    let text = read_input(source)?;
    let (set, mut skipped) = parse(format, &text)?;
    let mut report: ImportReport = iv.import(&set, dry_run)?;
    skipped.append(&mut report.skipped);
    report.skipped = skipped;
    let text = format!(
        "{}{} created, {} updated, {} skipped{}",
        if dry_run { "Dry run: " } else { "" },
        report.created,
        report.updated,
        report.skipped.len(),
        report
            .skipped
            .iter()
            .map(|s| format!("\n  {}: {}", s.item, s.reason))
            .collect::<String>()
    );
    out.said(serde_json::to_value(&report).map_err(Error::Encoding)?, text);
    Ok(())
}
