//! The newest identity heads this client has seen, kept outside the vault:
//! a store that serves an older head (a rolled-back file, an identity
//! replayed with its records) is caught with exit 5.
//!
//! `<config dir>/state/<vault id>/<identity uuid>` (and `…/vault-head` for
//! the vault head): the highest head sequence seen, as decimal text.
//! Updated under an exclusive file lock and never lowered, so parallel
//! processes only ever raise it.
//!
//! The owner's client also keeps `…/<identity uuid>.key`: the identity's
//! newest key as wrapped under the root key (`EPOCH:HEX`, ciphertext only),
//! with which `ravi identity rotate` recovers records a store left sealed
//! under a key it no longer serves (SPEC §4d).
//!
//! `<config dir>/state/verified`: the digests of owner signatures this
//! client has verified (32 bytes each, appended, the newest
//! [`VERIFIED_KEPT`] kept), so that a signature met again — the header, the
//! vault head, an identity row, read by every command — is not verified
//! again (SPEC §4a).

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use vault_core::{ClientMemory, Error, Result, WrappedKey};

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

/// Records `seq` as seen, unless a higher one already is. `known` is what
/// this process read before (`newest_seen`): when `seq` is not above it, the
/// file is left alone (a read-only command takes no exclusive lock).
///
/// # Errors
/// [`Error::Io`] if the state file cannot be written.
pub fn raise(
    config_dir: &Path,
    vault_id: &str,
    identity_uuid: &str,
    known: Option<u64>,
    seq: Option<u64>,
) -> Result<()> {
    let Some(q) = seq.filter(|q| known.is_none_or(|k| *q > k)) else {
        return Ok(());
    };
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

fn key_path(config_dir: &Path, vault_id: &str, identity_uuid: &str) -> Result<PathBuf> {
    Ok(path(config_dir, vault_id, identity_uuid)?.with_extension("key"))
}

fn read_key(f: &mut File, path: &Path) -> Result<Option<WrappedKey>> {
    let mut text = String::new();
    f.seek(SeekFrom::Start(0)).map_err(|e| io(path, e))?;
    f.take(1024)
        .read_to_string(&mut text)
        .map_err(|e| io(path, e))?;
    if text.trim().is_empty() {
        return Ok(None);
    }
    WrappedKey::from_text(&text)
        .map(Some)
        .map_err(|_| Error::InvalidInput(format!("{} is not a remembered key", path.display())))
}

/// The newest wrapped key of this identity this client keeps, if any.
pub fn newest_key(
    config_dir: &Path,
    vault_id: &str,
    identity_uuid: &str,
) -> Result<Option<WrappedKey>> {
    let p = key_path(config_dir, vault_id, identity_uuid)?;
    match File::open(&p) {
        Ok(mut f) => {
            f.lock_shared().map_err(|e| io(&p, e))?;
            read_key(&mut f, &p)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io(&p, e)),
    }
}

/// Keeps `key` as this identity's newest, unless one of a later epoch is
/// kept already (one of the same epoch is replaced: a passphrase change
/// re-wraps it). Writes only when it changes.
///
/// # Errors
/// [`Error::Io`] if the file cannot be written.
pub fn remember_key(
    config_dir: &Path,
    vault_id: &str,
    identity_uuid: &str,
    key: &WrappedKey,
) -> Result<()> {
    let p = key_path(config_dir, vault_id, identity_uuid)?;
    if let Ok(Some(k)) = newest_key(config_dir, vault_id, identity_uuid)
        && (k == *key || k.key_epoch() > key.key_epoch())
    {
        return Ok(());
    }
    let mut f = open_locked(&p)?;
    if read_key(&mut f, &p)
        .ok()
        .flatten()
        .is_some_and(|k| k.key_epoch() > key.key_epoch())
    {
        return Ok(());
    }
    f.set_len(0).map_err(|e| io(&p, e))?;
    f.seek(SeekFrom::Start(0)).map_err(|e| io(&p, e))?;
    f.write_all(format!("{}\n", key.to_text()).as_bytes())
        .and_then(|()| f.sync_data())
        .map_err(|e| io(&p, e))
}

/// This client's memory of one vault, for a recovering rotation.
pub struct Memory<'a> {
    pub config_dir: &'a Path,
    pub vault_id: &'a str,
}

impl ClientMemory for Memory<'_> {
    fn newest_head(&self, identity_uuid: &str) -> Result<Option<u64>> {
        newest_seen(self.config_dir, self.vault_id, identity_uuid)
    }

    fn newest_key(&self, identity_uuid: &str) -> Result<Option<WrappedKey>> {
        newest_key(self.config_dir, self.vault_id, identity_uuid)
    }
}

/// How many digests `state/verified` keeps (it is cut to the newest half
/// when it grows past this).
pub const VERIFIED_KEPT: usize = 256;

/// The file-backed [`vault_core::SignatureMemory`] of this client: read on
/// first use, appended to under an exclusive lock when a signature is
/// verified for the first time. A file that cannot be read or written is
/// no memory (every signature is verified), never an error.
pub struct Verified {
    path: PathBuf,
    known: std::sync::Mutex<Option<HashSet<[u8; 32]>>>,
}

impl Verified {
    /// The memory kept under `config_dir`.
    pub fn new(config_dir: &Path) -> Self {
        Verified {
            path: config_dir.join("state").join("verified"),
            known: std::sync::Mutex::new(None),
        }
    }

    fn read(path: &Path) -> Vec<[u8; 32]> {
        let mut bytes = Vec::new();
        if let Ok(f) = File::open(path)
            && f.lock_shared().is_ok()
        {
            let limit = u64::try_from(2 * VERIFIED_KEPT * 32).unwrap_or(u64::MAX);
            let _ = (&f).take(limit).read_to_end(&mut bytes);
        }
        // (a torn last entry, from a crash in an append, is left out)
        bytes
            .chunks_exact(32)
            .filter_map(|c| <[u8; 32]>::try_from(c).ok())
            .collect()
    }

    fn append(&self, digest: &[u8; 32]) -> std::io::Result<()> {
        if let Some(dir) = self.path.parent() {
            vault_core::ensure_private_dir(dir).map_err(std::io::Error::other)?;
        }
        let mut opts = OpenOptions::new();
        opts.read(true).append(true).create(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let mut f = opts.open(&self.path)?;
        f.lock()?;
        let len = f.metadata()?.len();
        let stored = Self::read_locked(&mut f)?;
        if stored.chunks_exact(32).any(|d| d == digest) {
            // (another process verified it meanwhile)
            return Ok(());
        }
        if len % 32 != 0 || len >= u64::try_from(VERIFIED_KEPT * 32).unwrap_or(u64::MAX) {
            // Keep the newest half (whole entries only), then append.
            let keep = stored.len().min(VERIFIED_KEPT / 2 * 32);
            let kept = stored[stored.len() - keep..].to_vec();
            f.set_len(0)?;
            f.write_all(&kept)?;
        }
        f.write_all(digest)
    }

    fn read_locked(f: &mut File) -> std::io::Result<Vec<u8>> {
        let mut bytes = Vec::new();
        f.seek(SeekFrom::Start(0))?;
        f.read_to_end(&mut bytes)?;
        bytes.truncate(bytes.len() - bytes.len() % 32);
        Ok(bytes)
    }
}

impl vault_core::SignatureMemory for Verified {
    fn contains(&self, digest: &[u8; 32]) -> bool {
        let Ok(mut known) = self.known.lock() else {
            return false;
        };
        known
            .get_or_insert_with(|| Self::read(&self.path).into_iter().collect())
            .contains(digest)
    }

    fn insert(&self, digest: [u8; 32]) {
        if let Ok(mut known) = self.known.lock()
            && known.get_or_insert_with(HashSet::new).insert(digest)
        {
            let _ = self.append(&digest);
        }
    }
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
        raise(dir.path(), v, i, None, None).unwrap();
        assert_eq!(seen(), None);
        raise(dir.path(), v, i, None, Some(3)).unwrap();
        raise(dir.path(), v, i, None, Some(5)).unwrap();
        raise(dir.path(), v, i, None, Some(4)).unwrap();
        assert_eq!(seen(), Some(5));
        check("a", seen(), Some(5)).unwrap();
        check("a", None, None).unwrap();
        for bad in [Some(4), None] {
            assert!(matches!(check("a", seen(), bad), Err(Error::Integrity(_))));
        }
        assert!(raise(dir.path(), "../x", i, None, Some(1)).is_err());
        // what this process already read is not written again
        let other = "7c9e6679-7425-40de-944b-e07fc1f90ae7";
        raise(dir.path(), v, other, Some(5), Some(5)).unwrap();
        assert_eq!(newest_seen(dir.path(), v, other).unwrap(), None);
        raise(dir.path(), v, other, Some(5), Some(6)).unwrap();
        assert_eq!(newest_seen(dir.path(), v, other).unwrap(), Some(6));
    }

    #[test]
    fn keys_kept_by_epoch() {
        let dir = tempfile::tempdir().unwrap();
        let (v, i) = (
            "0f8fad5b-d9cb-469f-a165-70867728950e",
            "6f9619ff-8b86-4d01-b42d-00cf4fc964ff",
        );
        let key = |e: u32, b: &str| WrappedKey::from_text(&format!("{e}:{b}")).unwrap();
        assert_eq!(newest_key(dir.path(), v, i).unwrap(), None);
        remember_key(dir.path(), v, i, &key(3, "aa")).unwrap();
        remember_key(dir.path(), v, i, &key(2, "bb")).unwrap();
        assert_eq!(newest_key(dir.path(), v, i).unwrap(), Some(key(3, "aa")));
        remember_key(dir.path(), v, i, &key(3, "cc")).unwrap();
        assert_eq!(newest_key(dir.path(), v, i).unwrap(), Some(key(3, "cc")));
        // the sequence file beside it is untouched
        assert_eq!(newest_seen(dir.path(), v, i).unwrap(), None);
        std::fs::write(key_path(dir.path(), v, i).unwrap(), "junk").unwrap();
        assert!(matches!(
            newest_key(dir.path(), v, i),
            Err(Error::InvalidInput(_))
        ));
    }

    /// Digests survive the process, a torn last entry is left out, and
    /// the file keeps the newest entries once it is full.
    #[test]
    fn verified_signatures_are_remembered() {
        use vault_core::SignatureMemory;
        let dir = tempfile::tempdir().unwrap();
        let m = Verified::new(dir.path());
        assert!(!m.contains(&[1; 32]));
        m.insert([1; 32]);
        m.insert([2; 32]);
        // another process's memory that verified the same one does not
        // append it twice
        Verified::new(dir.path()).insert([2; 32]);
        let p = dir.path().join("state").join("verified");
        assert_eq!(std::fs::metadata(&p).unwrap().len(), 64);
        let again = Verified::new(dir.path());
        assert!(again.contains(&[1; 32]) && again.contains(&[2; 32]));
        let mut f = OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(&[3; 20]).unwrap();
        let torn = Verified::new(dir.path());
        assert!(torn.contains(&[2; 32]) && !torn.contains(&[3; 32]));
        for i in 0..=VERIFIED_KEPT {
            let mut d = [0xee; 32];
            d[..8].copy_from_slice(&(i as u64).to_be_bytes());
            torn.insert(d);
        }
        let len = std::fs::metadata(&p).unwrap().len();
        assert_eq!(len % 32, 0);
        assert!(len <= (VERIFIED_KEPT * 32) as u64, "{len}");
        let last = Verified::new(dir.path());
        let mut newest = [0xee; 32];
        newest[..8].copy_from_slice(&(VERIFIED_KEPT as u64).to_be_bytes());
        assert!(last.contains(&newest) && !last.contains(&[1; 32]));
    }
}
