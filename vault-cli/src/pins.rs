//! Pinned owner keys: what this client believes the vault owner's public
//! key is, kept outside the vault so that the store cannot change it.
//!
//! - `<config dir>/pins/<vault id>`: one line, `raviowner1…`. Written once
//!   (by `init`, on first use, or by `ravi agent pin`), never replaced: a
//!   create-new write, so parallel first uses agree or one of them fails.
//! - an agent key file written by `ravi agent keygen` next to an open vault
//!   carries `# pin: <vault id> <raviowner1…>` lines (comments to parsers
//!   that predate pins).
//!
//! - `<config dir>/pins/at-<SHA-256 of the vault path>`: the id of the vault
//!   first seen at that path, so that a store which swaps in another vault
//!   (another id, its own owner key) is noticed.
//!
//! A vault whose owner key differs from a pin, that carries none although
//! one is pinned, that is not the vault first seen at its path, or that an
//! agent key file with pins does not name, is refused with an integrity
//! error (exit 5).

use std::io::Write;
use std::path::{Path, PathBuf};

use vault_core::{Error, OwnerPublicKey, Result, Vault};

const PIN_DIR: &str = "pins";
/// The prefix of a pin line in an agent key file.
pub const KEY_FILE_PIN: &str = "# pin: ";

fn pin_path(config_dir: &Path, vault_id: &str) -> Result<PathBuf> {
    // The id comes from the store: accept only a uuid as a file name.
    let id = uuid_text(vault_id)?;
    Ok(config_dir.join(PIN_DIR).join(id))
}

/// A uuid from the store, lowercased, before it becomes a file name.
pub(crate) fn uuid_text(s: &str) -> Result<String> {
    let ok = s.len() == 36 && s.chars().all(|c| c.is_ascii_hexdigit() || c == '-');
    if ok {
        Ok(s.to_ascii_lowercase())
    } else {
        Err(Error::Integrity(format!(
            "the stored id {s:?} is not a uuid"
        )))
    }
}

/// An I/O error on one of this client's state files.
pub(crate) fn io(path: &Path, e: std::io::Error) -> Error {
    Error::Io {
        context: format!("cannot access {}", path.display()),
        source: e,
    }
}

/// The key pinned in the config directory for this vault, if any.
pub fn read_pin(config_dir: &Path, vault_id: &str) -> Result<Option<OwnerPublicKey>> {
    let path = pin_path(config_dir, vault_id)?;
    match std::fs::read_to_string(&path) {
        Ok(text) => OwnerPublicKey::parse(text.trim())
            .map(Some)
            .map_err(|_| Error::InvalidInput(format!("{} is not a valid pin", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io(&path, e)),
    }
}

/// Pins `key` for this vault in the config directory, unless a pin exists;
/// an existing pin must be the same key.
pub fn write_pin(config_dir: &Path, vault_id: &str, key: &OwnerPublicKey) -> Result<()> {
    let path = pin_path(config_dir, vault_id)?;
    if let Some(dir) = path.parent() {
        vault_core::ensure_private_dir(dir)?;
    }
    create_once(&path, &key.to_string())?;
    match read_pin(config_dir, vault_id)? {
        Some(k) if k == *key => Ok(()),
        Some(k) => Err(Error::Integrity(format!(
            "the vault's owner key {key} is not the pinned owner key {k}"
        ))),
        None => Err(Error::Integrity(format!(
            "the pin {} vanished while it was written",
            path.display()
        ))),
    }
}

/// The pins an agent key file carries: `(vault id, owner key)`.
pub fn key_file_pins(contents: &str) -> Vec<(String, OwnerPublicKey)> {
    contents
        .lines()
        .filter_map(|l| l.trim().strip_prefix(KEY_FILE_PIN))
        .filter_map(|rest| {
            let (id, key) = rest.trim().split_once(' ')?;
            Some((id.to_ascii_lowercase(), OwnerPublicKey::parse(key).ok()?))
        })
        .collect()
}

/// The file that remembers which vault was first seen at `location`.
fn location_path(config_dir: &Path, location: &str) -> PathBuf {
    use sha2::Digest;
    let canonical = std::fs::canonicalize(location)
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|_| location.to_string());
    let digest = sha2::Sha256::digest(canonical.as_bytes());
    config_dir
        .join(PIN_DIR)
        .join(format!("at-{}", data_encoding::HEXLOWER.encode(&digest)))
}

/// Checks that the vault at `location` is the one first seen there, and
/// remembers it on first sight.
fn check_location(config_dir: &Path, location: &str, id: &str) -> Result<()> {
    let path = location_path(config_dir, location);
    match std::fs::read_to_string(&path) {
        Ok(seen) if seen.trim() == id => Ok(()),
        Ok(seen) => Err(Error::Integrity(format!(
            "the vault at {location} is {id}, but {} was there before: the store swapped in another vault",
            seen.trim()
        ))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(dir) = path.parent() {
                vault_core::ensure_private_dir(dir)?;
            }
            create_once(&path, id)
        }
        Err(e) => Err(io(&path, e)),
    }
}

/// Writes `text` to a new file at `path` unless it exists (then the caller
/// compares); complete or absent, never torn.
fn create_once(path: &Path, text: &str) -> Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut f = opts.open(&tmp).map_err(|e| io(&tmp, e))?;
    let linked = f
        .write_all(format!("{text}\n").as_bytes())
        .and_then(|()| f.sync_all())
        .and_then(|()| std::fs::hard_link(&tmp, path));
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(()),
        // A parallel first use wrote it: the caller reads it again.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(io(path, e)),
    }
}

/// A client state write that fails because the config directory cannot be
/// written (a read-only container, say) is a warning, as ssh's is for
/// `known_hosts`: the command still runs, without that protection.
/// Integrity errors stay errors.
pub fn best_effort(r: Result<()>) -> Result<()> {
    match r {
        Err(Error::Io { context, source })
            if matches!(
                source.kind(),
                std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem
            ) =>
        {
            // Once per process, however many state files it could not write.
            static WARNED: std::sync::atomic::AtomicBool =
                std::sync::atomic::AtomicBool::new(false);
            if !WARNED.swap(true, std::sync::atomic::Ordering::Relaxed) {
                eprintln!(
                    "ravi: warning: {context}: {source}; this client cannot remember the vault's owner key or newest state"
                );
            }
            Ok(())
        }
        other => other,
    }
}

/// Records that the vault at this path is a new one (`ravi init` made it):
/// whatever was first seen there before is forgotten.
pub fn new_vault_at(config_dir: &Path, location: &str) -> Result<()> {
    let path = location_path(config_dir, location);
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io(&path, e)),
    }
}

/// Checks the vault against what this client pinned, and pins its owner
/// key on first use. `key_file` is the agent key file in use, if any.
///
/// Returns the owner keys pinned for the vault (one written now included).
pub fn check(
    vault: &Vault,
    config_dir: &Path,
    key_file: Option<&Path>,
) -> Result<Vec<OwnerPublicKey>> {
    let info = vault.info();
    let vault_id = info.vault_id;
    let id = uuid_text(&vault_id)?;
    best_effort(check_location(config_dir, &info.location, &id))?;
    let mut pinned = Vec::new();
    if let Some(f) = key_file
        && let Ok(text) = std::fs::read_to_string(f)
    {
        let file_pins = key_file_pins(&text);
        let mine: Vec<_> = file_pins
            .iter()
            .filter(|(v, _)| *v == id)
            .map(|(_, k)| *k)
            .collect();
        if !file_pins.is_empty() && mine.is_empty() {
            return Err(Error::Integrity(format!(
                "the agent key file {} pins other vaults; vault {id} is not one of them",
                f.display()
            )));
        }
        pinned.extend(mine);
    }
    pinned.extend(read_pin(config_dir, &vault_id)?);
    for k in &pinned {
        vault.check_owner(k)?;
    }
    match vault.owner_public_key() {
        Some(owner) if pinned.is_empty() => {
            best_effort(write_pin(config_dir, &vault_id, &owner))?;
            Ok(vec![owner])
        }
        _ => Ok(pinned),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "raviowner1p0h0t20x08n28cf5lcncx7llxtrukh6agn4qn09su4pt444ycrxq26846w";

    #[test]
    fn pin_once_and_compare() {
        let dir = tempfile::tempdir().unwrap();
        let id = "0f8fad5b-d9cb-469f-a165-70867728950e";
        let k = OwnerPublicKey::parse(KEY).unwrap();
        assert_eq!(read_pin(dir.path(), id).unwrap(), None);
        write_pin(dir.path(), id, &k).unwrap();
        write_pin(dir.path(), id, &k).unwrap();
        assert_eq!(read_pin(dir.path(), id).unwrap(), Some(k));
        assert!(pin_path(dir.path(), "../../etc/passwd").is_err());
        let text =
            format!("# ravi agent key\n{KEY_FILE_PIN}{id} {KEY}\nRAVI-AGENT-SECRET-KEY-1X\n");
        assert_eq!(key_file_pins(&text), [(id.to_string(), k)]);
    }
}
