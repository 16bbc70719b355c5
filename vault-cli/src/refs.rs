//! `ravi://` references to values in a vault, and the commands that
//! resolve them: `ravi read`, `ravi inject`, `ravi run`.
//!
//! ```text
//! ravi://[IDENTITY/]secrets/KEY
//! ravi://[IDENTITY/]passwords/DOMAIN[/USERNAME]/(password|username|notes)
//! ravi://[IDENTITY/]totp/NAME/code
//! ```
//!
//! IDENTITY is a name or uuid (the selected identity when left out); an
//! identity whose name is `secrets`, `passwords` or `totp` is named by its
//! uuid. Segments are percent-decoded (`%2F` for a `/` inside one).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::Read;
use std::path::Path;

use serde_json::json;
use vault_core::{Access, Error, Identity, IdentityVault, Result, SecretString, Vault};

use crate::args::GlobalArgs;
use crate::Output;

const SCHEME: &str = "ravi://";

/// What a reference points at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Item {
    /// A secret's value.
    Secret(String),
    /// A field of a password entry.
    Password {
        domain: String,
        username: Option<String>,
        field: Field,
    },
    /// A TOTP seed's current code.
    TotpCode(String),
}

/// A field of a password entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    Password,
    Username,
    Notes,
}

/// A parsed reference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ref {
    pub text: String,
    pub identity: Option<String>,
    pub item: Item,
}

fn bad(text: &str, why: &str) -> Error {
    Error::InvalidInput(format!("invalid reference {text:?}: {why}"))
}

/// Parses `ravi://…`.
///
/// # Errors
/// [`Error::InvalidInput`] naming the reference.
pub fn parse(text: &str) -> Result<Ref> {
    let rest = text
        .strip_prefix(SCHEME)
        .ok_or_else(|| bad(text, "it does not start with ravi://"))?;
    let segs = rest
        .split('/')
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8()
                .map(|c| c.into_owned())
                .map_err(|_| bad(text, "a segment is not UTF-8"))
        })
        .collect::<Result<Vec<String>>>()?;
    if segs.iter().any(String::is_empty) {
        return Err(bad(text, "empty segment"));
    }
    let kinds = ["secrets", "passwords", "totp"];
    let (identity, segs) = match segs.first() {
        Some(first) if kinds.contains(&first.as_str()) => (None, &segs[..]),
        Some(first) => (Some(first.clone()), &segs[1..]),
        None => return Err(bad(text, "nothing after ravi://")),
    };
    let item = match segs
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["secrets", key] => Item::Secret((*key).to_string()),
        ["totp", name, "code"] => Item::TotpCode((*name).to_string()),
        ["passwords", domain, rest @ ..] if !rest.is_empty() && rest.len() <= 2 => {
            let field = match rest[rest.len() - 1] {
                "password" => Field::Password,
                "username" => Field::Username,
                "notes" => Field::Notes,
                _ => return Err(bad(text, "a password field is password, username or notes")),
            };
            Item::Password {
                domain: (*domain).to_string(),
                username: (rest.len() == 2).then(|| rest[0].to_string()),
                field,
            }
        }
        _ => {
            return Err(bad(
                text,
                "use ravi://[IDENTITY/]secrets/KEY, …/passwords/DOMAIN[/USERNAME]/(password|username|notes) or …/totp/NAME/code",
            ));
        }
    };
    Ok(Ref {
        text: text.to_string(),
        identity,
        item,
    })
}

/// One resolved value.
fn value_of(iv: &IdentityVault<'_>, item: &Item) -> Result<SecretString> {
    Ok(match item {
        Item::Secret(key) => iv.get_secret(key)?.value,
        Item::TotpCode(name) => SecretString::from(iv.totp_code(name, None, None)?.code.as_str()),
        Item::Password {
            domain,
            username,
            field,
        } => {
            let e = iv.get_password(domain, username.as_deref())?;
            match field {
                Field::Password => e.password,
                Field::Username => SecretString::from(e.username.as_deref().unwrap_or_default()),
                Field::Notes => SecretString::from(e.notes.as_deref().unwrap_or_default()),
            }
        }
    })
}

/// Resolves every reference, opening each identity once. An error names
/// the reference that failed.
fn resolve(g: &GlobalArgs, refs: &[Ref]) -> Result<Vec<SecretString>> {
    let vault = crate::open_vault(g)?;
    let access = crate::access(g, &vault)?;
    resolve_in(&vault, &access, refs, || crate::selected_identity(g, &vault))
}

/// The values `refs` name, through `access`; `selected` is the identity
/// of references that name none.
pub(crate) fn resolve_in(
    vault: &Vault,
    access: &Access<'_>,
    refs: &[Ref],
    selected: impl Fn() -> Result<Identity>,
) -> Result<Vec<SecretString>> {
    let mut by_identity: BTreeMap<Option<String>, Vec<usize>> = BTreeMap::new();
    for (i, r) in refs.iter().enumerate() {
        by_identity.entry(r.identity.clone()).or_default().push(i);
    }
    let mut out: Vec<Option<SecretString>> = vec![None; refs.len()];
    for (identity, idx) in by_identity {
        let named = |e: Error, r: &Ref| match e {
            Error::NotFound(m) => Error::NotFound(format!("{}: {m}", r.text)),
            Error::InvalidInput(m) => Error::InvalidInput(format!("{}: {m}", r.text)),
            other => other,
        };
        let first = &refs[idx[0]];
        let ident = match &identity {
            Some(sel) => vault.find_identity(sel),
            None => selected(),
        }
        .map_err(|e| named(e, first))?;
        let (iv, seen) = crate::checked_open(vault, access, &ident)?;
        for i in idx {
            out[i] = Some(value_of(&iv, &refs[i].item).map_err(|e| named(e, &refs[i]))?);
        }
        crate::raise_seen(vault, &iv, seen)?;
    }
    Ok(out.into_iter().flatten().collect())
}

/// `ravi read REF`.
pub fn read(g: &GlobalArgs, reference: &str, out: &mut Output) -> Result<()> {
    let r = parse(reference)?;
    let value = resolve(g, std::slice::from_ref(&r))?.remove(0);
    emit_read(&r, &value, out);
    Ok(())
}

/// `ravi read`'s output for the value `r` names.
pub(crate) fn emit_read(r: &Ref, value: &SecretString, out: &mut Output) {
    out.emit(
        json!({ "reference": r.text, "value": value.expose() }),
        value.expose().to_string(),
    );
}

/// The `{{ ravi://… }}` placeholders of a template: (start, end, ref text).
fn placeholders(template: &str) -> Vec<(usize, usize, String)> {
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(open) = template[from..].find("{{") {
        let start = from + open;
        let Some(close) = template[start + 2..].find("}}") else {
            break;
        };
        let end = start + 2 + close + 2;
        let inner = template[start + 2..end - 2].trim();
        if inner.starts_with(SCHEME) {
            found.push((start, end, inner.to_string()));
        }
        from = end;
    }
    found
}

/// `ravi inject [-i IN] [-o OUT]`.
pub fn inject(
    g: &GlobalArgs,
    input: Option<&Path>,
    output: Option<&Path>,
    out: &mut Output,
) -> Result<()> {
    let template = match input {
        Some(p) => read_template(p, None)?,
        None => template_from_stdin()?,
    };
    let template = Template::parse(template)?;
    let values = if template.refs.is_empty() {
        Vec::new()
    } else {
        resolve(g, &template.refs)?
    };
    let rendered = template.render(&values);
    match output {
        Some(p) => {
            vault_cli::config::write_private_file(p, rendered.as_bytes())?;
            template.wrote(p, out);
            Ok(())
        }
        None => out.stream(|w| w.write_all(rendered.as_bytes())),
    }
}

/// The template file at `p` (relative to `base` when given: a daemon's
/// client's working directory).
pub(crate) fn read_template(p: &Path, base: Option<&Path>) -> Result<String> {
    let at = base.map_or_else(|| p.to_path_buf(), |b| b.join(p));
    std::fs::read_to_string(at).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => {
            Error::InvalidInput(format!("no template at {}", p.display()))
        }
        _ => Error::Io {
            context: format!("cannot read {}", p.display()),
            source: e,
        },
    })
}

/// The template on standard input.
pub(crate) fn template_from_stdin() -> Result<String> {
    let mut template = String::new();
    std::io::stdin()
        .read_to_string(&mut template)
        .map_err(|e| Error::Io {
            context: "cannot read the template from standard input".into(),
            source: e,
        })?;
    Ok(template)
}

/// A template and its references, parsed (one that does not parse fails
/// the whole render, before anything is resolved).
pub(crate) struct Template {
    text: String,
    spots: Vec<(usize, usize, String)>,
    pub(crate) refs: Vec<Ref>,
}

impl Template {
    pub(crate) fn parse(text: String) -> Result<Template> {
        let spots = placeholders(&text);
        let refs = spots
            .iter()
            .map(|(_, _, t)| parse(t))
            .collect::<Result<Vec<_>>>()?;
        Ok(Template { text, spots, refs })
    }

    /// The text with each reference replaced by its value (`values` in
    /// the order of `refs`).
    pub(crate) fn render(&self, values: &[SecretString]) -> zeroize::Zeroizing<String> {
        let mut rendered = zeroize::Zeroizing::new(String::with_capacity(self.text.len()));
        let mut at = 0;
        for ((start, end, _), v) in self.spots.iter().zip(values) {
            rendered.push_str(&self.text[at..*start]);
            rendered.push_str(v.expose());
            at = *end;
        }
        rendered.push_str(&self.text[at..]);
        rendered
    }

    /// What `ravi inject -o P` says once `P` is written.
    pub(crate) fn wrote(&self, p: &Path, out: &mut Output) {
        out.said(
            json!({ "path": p.display().to_string(), "references": self.refs.len() }),
            format!("Wrote {} ({} reference(s))", p.display(), self.refs.len()),
        );
    }
}

/// A valid environment variable name: a letter or `_`, then letters,
/// digits or `_`.
pub fn is_env_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `NAME=VALUE` lines (`#` comments, blank lines, optional `export `,
/// optional matching quotes) of an env file.
fn env_file(path: &Path) -> Result<Vec<(String, String)>> {
    let text = std::fs::read_to_string(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => {
            Error::InvalidInput(format!("no env file at {}", path.display()))
        }
        _ => Error::Io {
            context: format!("cannot read {}", path.display()),
            source: e,
        },
    })?;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let (name, value) = line.split_once('=').ok_or_else(|| {
            Error::InvalidInput(format!("{}:{}: not NAME=VALUE", path.display(), n + 1))
        })?;
        let name = name.trim();
        if !is_env_name(name) {
            return Err(Error::InvalidInput(format!(
                "{}:{}: {name:?} is not a variable name",
                path.display(),
                n + 1
            )));
        }
        let value = value.trim();
        let value = ['"', '\'']
            .iter()
            .find_map(|q| {
                value
                    .strip_prefix(*q)
                    .and_then(|v| v.strip_suffix(*q))
            })
            .unwrap_or(value);
        out.push((name.to_string(), value.to_string()));
    }
    Ok(out)
}

/// `ravi run [--env NAME=REF]… [--env-file F] [--all-secrets] -- CMD ARGS…`:
/// CMD replaces this process (so its exit status is ravi's, signals reach
/// it directly, and stdio is inherited), with the resolved values in its
/// environment only.
pub fn run(
    g: &GlobalArgs,
    envs: &[String],
    env_files: &[std::path::PathBuf],
    all_secrets: bool,
    command: &[OsString],
) -> Result<()> {
    let Some((program, args)) = command.split_first() else {
        return Err(Error::InvalidInput("give the command to run after --".into()));
    };
    let (wanted, plain) = run_wanted(envs, env_files, None)?;
    let resolved = if all_secrets || !wanted.is_empty() {
        let vault = crate::open_vault(g)?;
        let access = crate::access(g, &vault)?;
        run_values(&vault, &access, || crate::selected_identity(g, &vault), &wanted, all_secrets)?
    } else {
        Vec::new()
    };
    let vars = plain
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .chain(resolved.iter().map(|(k, v)| (k.as_str(), v.expose())));
    Err(become_with(program, args, vars))
}

/// This process becomes `program` with `args`, `vars` added to its
/// environment in order (a later one wins); what it returns is why not.
pub(crate) fn become_with<'a>(
    program: &std::ffi::OsStr,
    args: impl IntoIterator<Item = impl AsRef<std::ffi::OsStr>>,
    vars: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Error {
    let mut cmd = std::process::Command::new(program);
    cmd.args(args);
    for (k, v) in vars {
        cmd.env(k, v);
    }
    exec_error(program, crate::become_command(&mut cmd))
}

/// Why `program` could not be run.
pub(crate) fn exec_error(program: &std::ffi::OsStr, e: std::io::Error) -> Error {
    match e.kind() {
        std::io::ErrorKind::NotFound => Error::NotFound(format!(
            "cannot run {}: not found",
            Path::new(program).display()
        )),
        _ => Error::Io {
            context: format!("cannot run {}", Path::new(program).display()),
            source: e,
        },
    }
}

/// Variable names and the references whose values they get.
pub(crate) type Wanted = Vec<(String, Ref)>;

/// What `ravi run`'s options ask for: (name, reference) pairs, and the
/// plain values of its env files. Relative env-file paths start at `base`
/// (the process's own directory when `None`).
pub(crate) fn run_wanted(
    envs: &[String],
    env_files: &[std::path::PathBuf],
    base: Option<&Path>,
) -> Result<(Wanted, Vec<(String, String)>)> {
    let mut wanted: Vec<(String, Ref)> = Vec::new();
    let mut plain: Vec<(String, String)> = Vec::new();
    for f in env_files {
        let f = match base {
            Some(base) if f.is_relative() => base.join(f),
            _ => f.clone(),
        };
        for (name, value) in env_file(&f)? {
            if value.starts_with(SCHEME) {
                wanted.push((name, parse(&value)?));
            } else {
                plain.push((name, value));
            }
        }
    }
    for e in envs {
        let (name, r) = e
            .split_once('=')
            .ok_or_else(|| Error::InvalidInput(format!("--env {e:?} is not NAME=ravi://…")))?;
        if !is_env_name(name) {
            return Err(Error::InvalidInput(format!(
                "--env {name:?}: not a variable name"
            )));
        }
        wanted.push((name.to_string(), parse(r)?));
    }
    Ok((wanted, plain))
}

/// The values `ravi run` puts in its command's environment, through
/// `access`: every secret of the selected identity whose key is a variable
/// name (with `all_secrets`), then the references `wanted` names (which
/// win over a secret of the same name).
pub(crate) fn run_values(
    vault: &Vault,
    access: &Access<'_>,
    selected: impl Fn() -> Result<Identity>,
    wanted: &[(String, Ref)],
    all_secrets: bool,
) -> Result<Vec<(String, SecretString)>> {
    let mut resolved: Vec<(String, SecretString)> = Vec::new();
    if all_secrets {
        let ident = selected()?;
        let (iv, seen) = crate::checked_open(vault, access, &ident)?;
        let secrets = iv.secrets()?;
        crate::raise_seen(vault, &iv, seen)?;
        let mapped: Vec<&str> = wanted
            .iter()
            .filter_map(|(_, r)| match (&r.identity, &r.item) {
                (None, Item::Secret(k)) => Some(k.as_str()),
                _ => None,
            })
            .collect();
        let invalid: Vec<&str> = secrets
            .iter()
            .map(|s| s.key.as_str())
            .filter(|k| !is_env_name(k) && !mapped.contains(k))
            .collect();
        if !invalid.is_empty() {
            return Err(Error::InvalidInput(format!(
                "these secret keys are not environment variable names: {}; map them with --env NAME=ravi://secrets/KEY",
                invalid.join(", ")
            )));
        }
        resolved.extend(
            secrets
                .into_iter()
                .filter(|s| is_env_name(&s.key))
                .map(|s| (s.key, s.value)),
        );
    }
    if !wanted.is_empty() {
        let refs: Vec<Ref> = wanted.iter().map(|(_, r)| r.clone()).collect();
        for ((name, _), v) in wanted.iter().zip(resolve_in(vault, access, &refs, &selected)?) {
            resolved.push((name.clone(), v));
        }
    }
    Ok(resolved)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_form() {
        let p = |s: &str| parse(s).unwrap();
        assert_eq!(p("ravi://secrets/API_KEY").item, Item::Secret("API_KEY".into()));
        assert_eq!(p("ravi://secrets/API_KEY").identity, None);
        let r = p("ravi://alice/passwords/example.com/bot%40x.io/password");
        assert_eq!(r.identity.as_deref(), Some("alice"));
        assert_eq!(
            r.item,
            Item::Password {
                domain: "example.com".into(),
                username: Some("bot@x.io".into()),
                field: Field::Password
            }
        );
        assert_eq!(
            p("ravi://passwords/example.com/notes").item,
            Item::Password {
                domain: "example.com".into(),
                username: None,
                field: Field::Notes
            }
        );
        assert_eq!(p("ravi://bob/totp/github/code").item, Item::TotpCode("github".into()));
        for bad in [
            "ravi:/secrets/K",
            "https://secrets/K",
            "ravi://",
            "ravi://secrets",
            "ravi://secrets/",
            "ravi://secrets/a/b",
            "ravi://passwords/example.com",
            "ravi://passwords/example.com/u/secret",
            "ravi://totp/github",
            "ravi://totp/github/uri",
            "ravi://alice/bob/secrets/K",
            "ravi://%ff/secrets/K",
        ] {
            assert!(matches!(parse(bad), Err(Error::InvalidInput(_))), "{bad}");
        }
    }

    #[test]
    fn finds_placeholders() {
        let t = "a={{ ravi://secrets/A }} b={{ravi://x/totp/t/code}} c={{ other }} {{";
        let found: Vec<String> = placeholders(t).into_iter().map(|(_, _, r)| r).collect();
        assert_eq!(found, ["ravi://secrets/A", "ravi://x/totp/t/code"]);
    }

    #[test]
    fn env_names() {
        for ok in ["A", "_x", "API_KEY_2"] {
            assert!(is_env_name(ok));
        }
        for bad in ["", "2A", "A-B", "A.B", "Ä"] {
            assert!(!is_env_name(bad));
        }
    }
}
