//! The newest identity heads this client has seen, kept outside the vault:
//! a store that serves an older head (a rolled-back file, an identity
//! replayed with its records) is caught with exit 5.
//!
//! `<config dir>/state/<vault id>/<identity uuid>` (and `…/vault-head` for
//! the vault head): the highest head sequence seen, as decimal text.
//! Updated under an exclusive file lock and never lowered, so parallel
//! processes only ever raise it.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use vault_core::{Error, Result};

use crate::pins::{io, uuid_text};

/// The state key of the vault head (beside one file per identity uuid).
pub const VAULT_HEAD: &str = "vault-head";

fn path(config_dir: &Path, vault_id: &str, key: &str) -> Result<PathBuf> {
    let key = if key == VAULT_HEAD {
        key.to_string()
    } else {
        uuid_text(key)?
    };
    Ok(config_dir
        .join("state")
        .join(uuid_text(vault_id)?)
        .join(key))
}

fn read_seq(f: &mut File, path: &Path) -> Result<Option<u64>> {
    let mut text = String::new();
    f.seek(SeekFrom::Start(0)).map_err(|e| io(path, e))?;
    f.take(64)
        .read_to_string(&mut text)
        .map_err(|e| io(path, e))?;
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    text.parse()
        .map(Some)
        .map_err(|_| Error::InvalidInput(format!("{} is not a sequence number", path.display())))
}

fn open_locked(p: &Path) -> Result<File> {
    if let Some(dir) = p.parent() {
        vault_core::ensure_private_dir(dir)?;
    }
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(p)
        .map_err(|e| io(p, e))?;
    f.lock().map_err(|e| io(p, e))?;
    Ok(f)
}

/// The newest head sequence seen for this identity, if any.
pub fn newest_seen(config_dir: &Path, vault_id: &str, identity_uuid: &str) -> Result<Option<u64>> {
    let p = path(config_dir, vault_id, identity_uuid)?;
    match File::open(&p) {
        Ok(mut f) => {
            f.lock_shared().map_err(|e| io(&p, e))?;
            read_seq(&mut f, &p)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io(&p, e)),
    }
}

/// Compares the head the vault shows now (read *after* `seen`) with the
/// newest seen before. `what` names it in the error.
///
/// # Errors
/// [`Error::Integrity`] if it is older, or absent although one was seen.
pub fn check(what: &str, seen: Option<u64>, now: Option<u64>) -> Result<()> {
    match (seen, now) {
        (Some(s), None) => Err(Error::Integrity(format!(
            "rollback detected: {what} shows no head, but this client saw sequence {s}"
        ))),
        (Some(s), Some(q)) if q < s => Err(Error::Integrity(format!(
            "rollback detected: {what} shows head sequence {q}, but this client saw {s}"
        ))),
        _ => Ok(()),
    }
}

/// Records `seq` as seen, unless a higher one already is.
///
/// # Errors
/// [`Error::Io`] if the state file cannot be written.
pub fn raise(
    config_dir: &Path,
    vault_id: &str,
    identity_uuid: &str,
    seq: Option<u64>,
) -> Result<()> {
    let Some(q) = seq else { return Ok(()) };
    let p = path(config_dir, vault_id, identity_uuid)?;
    let mut f = open_locked(&p)?;
    if read_seq(&mut f, &p)?.is_some_and(|s| s >= q) {
        return Ok(());
    }
    f.set_len(0).map_err(|e| io(&p, e))?;
    f.seek(SeekFrom::Start(0)).map_err(|e| io(&p, e))?;
    f.write_all(format!("{q}\n").as_bytes())
        .and_then(|()| f.sync_data())
        .map_err(|e| io(&p, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_lowered() {
        let dir = tempfile::tempdir().unwrap();
        let (v, i) = (
            "0f8fad5b-d9cb-469f-a165-70867728950e",
            "6f9619ff-8b86-4d01-b42d-00cf4fc964ff",
        );
        let seen = || newest_seen(dir.path(), v, i).unwrap();
        assert_eq!(seen(), None);
        raise(dir.path(), v, i, None).unwrap();
        assert_eq!(seen(), None);
        raise(dir.path(), v, i, Some(3)).unwrap();
        raise(dir.path(), v, i, Some(5)).unwrap();
        raise(dir.path(), v, i, Some(4)).unwrap();
        assert_eq!(seen(), Some(5));
        check("a", seen(), Some(5)).unwrap();
        check("a", None, None).unwrap();
        for bad in [Some(4), None] {
            assert!(matches!(check("a", seen(), bad), Err(Error::Integrity(_))));
        }
        assert!(raise(dir.path(), "../x", i, Some(1)).is_err());
    }
}
