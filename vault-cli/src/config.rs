//! Which identity a command acts for: `--identity`, else the nearest
//! `.ravi/config.json` from the working directory upward, else
//! `config.json` in the config directory.
//!
//! The file is `{"identity_uuid": "...", "identity_name": "..."}` and is
//! written atomically (temporary file, fsync, rename), so concurrent writers
//! never leave a torn file.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use vault_core::{Error, Result, ensure_private_dir};

/// Name of the per-directory folder holding a local config.
pub const LOCAL_DIR: &str = ".ravi";
/// Name of the config file.
pub const CONFIG_FILE: &str = "config.json";
/// Largest config file ravi reads.
const MAX_CONFIG_LEN: u64 = 64 * 1024;

fn invalid(msg: impl std::fmt::Display) -> Error {
    Error::InvalidInput(msg.to_string())
}

fn io_error(context: impl std::fmt::Display, source: std::io::Error) -> Error {
    Error::Io {
        context: context.to_string(),
        source,
    }
}

/// The identity selection stored in a config file.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentityConfig {
    /// The identity's uuid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_uuid: Option<String>,
    /// The identity's name (informational when a uuid is present).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_name: Option<String>,
}

impl IdentityConfig {
    /// The selector to look the identity up by: the uuid, else the name.
    pub fn selector(&self) -> Option<&str> {
        self.identity_uuid
            .as_deref()
            .or(self.identity_name.as_deref())
            .filter(|s| !s.is_empty())
    }

    /// Parses a config file's contents.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming the file if it is not valid JSON of
    /// this shape.
    pub fn parse(bytes: &[u8], origin: &Path) -> Result<Self> {
        let bad = |e: &dyn std::fmt::Display| {
            invalid(format!(
                "{} is not a valid ravi config: {e}",
                origin.display()
            ))
        };
        // An object only: serde would also read a JSON array positionally.
        let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| bad(&e))?;
        if !value.is_object() {
            return Err(bad(&"expected a JSON object"));
        }
        serde_json::from_value(value).map_err(|e| bad(&e))
    }
}

/// Where the selection came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Selection {
    /// `--identity` on the command line.
    Explicit(String),
    /// A config file.
    File {
        /// The selector read from it.
        selector: String,
        /// The file.
        path: PathBuf,
    },
    /// Nothing selected an identity.
    None,
}

/// Reads a config file, `None` if it does not exist.
///
/// # Errors
/// [`Error::InvalidInput`] for an unreadable or malformed file.
pub fn read_config(path: &Path) -> Result<Option<IdentityConfig>> {
    let meta = match fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_error(format!("cannot read {}", path.display()), e)),
    };
    // A device, a FIFO or a directory is refused before it is opened
    // (reading /dev/zero would never end; opening a FIFO would wait).
    if !meta.is_file() {
        return Err(invalid(format!("{} is not a regular file", path.display())));
    }
    if meta.len() > MAX_CONFIG_LEN {
        return Err(invalid(format!("{} is too large", path.display())));
    }
    // (sized to the file: read in one call, not in growing probes)
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0) + 1);
    {
        use std::io::Read;
        fs::File::open(path)
            .and_then(|f| f.take(MAX_CONFIG_LEN + 1).read_to_end(&mut bytes))
            .map_err(|e| io_error(format!("cannot read {}", path.display()), e))?;
    }
    if bytes.len() as u64 > MAX_CONFIG_LEN {
        return Err(invalid(format!("{} is too large", path.display())));
    }
    IdentityConfig::parse(&bytes, path).map(Some)
}

/// The nearest `.ravi/config.json` from `start` upward, skipping `skip_dir`
/// (the home directory, whose `.ravi` is the global config directory).
pub fn find_local_config(start: &Path, skip_dir: Option<&Path>) -> Option<PathBuf> {
    start.ancestors().find_map(|dir| {
        if skip_dir.is_some_and(|s| s == dir) {
            return None;
        }
        let candidate = dir.join(LOCAL_DIR).join(CONFIG_FILE);
        candidate.is_file().then_some(candidate)
    })
}

/// Resolves which identity to use.
///
/// # Errors
/// [`Error::InvalidInput`] if a config file that is found is malformed.
pub fn resolve_identity(
    explicit: Option<&str>,
    cwd: &Path,
    config_dir: &Path,
    home: Option<&Path>,
) -> Result<Selection> {
    if let Some(s) = explicit.filter(|s| !s.is_empty()) {
        return Ok(Selection::Explicit(s.to_string()));
    }
    let global = config_dir.join(CONFIG_FILE);
    let local = find_local_config(cwd, home).filter(|p| *p != global);
    for path in local.into_iter().chain(std::iter::once(global)) {
        if let Some(sel) = read_config(&path)?.and_then(|c| c.selector().map(str::to_string)) {
            return Ok(Selection::File {
                selector: sel,
                path,
            });
        }
    }
    Ok(Selection::None)
}

/// Writes a config file atomically ([`write_private_file`]).
///
/// # Errors
/// [`Error::Io`] if the directory or file cannot be written.
pub fn write_config(path: &Path, cfg: &IdentityConfig) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        ensure_private_dir(dir)?;
    }
    let mut json = serde_json::to_vec_pretty(cfg).map_err(Error::Encoding)?;
    json.push(b'\n');
    write_private_file(path, &json)
}

/// Writes `bytes` to `path` so that a reader sees the old file or the whole
/// new one, never a part: a uniquely named 0600 temporary file in the same
/// directory, fsynced, renamed over the target, the directory fsynced.
///
/// # Errors
/// [`Error::Io`] if the directory or file cannot be written.
pub fn write_private_file(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let io = |e| io_error(format!("cannot write {}", path.display()), e);
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let prefix = format!(".{name}.");
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(fs::Permissions::from_mode(0o600));
    }
    let mut tmp = builder.tempfile_in(dir).map_err(io)?;
    tmp.write_all(bytes).map_err(io)?;
    tmp.as_file().sync_all().map_err(io)?;
    tmp.persist(path).map_err(|e| io(e.error))?;
    if let Ok(d) = fs::File::open(dir) {
        // Make the rename durable; failure here loses nothing already visible.
        let _ = d.sync_all();
    }
    Ok(())
}

/// Fuzz entry point: parses arbitrary bytes as a `config.json`; must
/// return normally for every input.
#[doc(hidden)]
pub fn fuzz_config_json(data: &[u8]) -> bool {
    IdentityConfig::parse(data, Path::new("fuzz")).is_ok_and(|c| {
        let _ = c.selector();
        true
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
        let mut out: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                (name, fs::read(e.path()).unwrap())
            })
            .collect();
        out.sort();
        out
    }

    /// `tests/data/config_json/ok_*` parse, `fail_*` do not, and the fuzz
    /// corpus (which holds every `fail_` vector) replays without a panic.
    #[test]
    fn vectors_and_corpus() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let vectors = files(&root.join("tests/data/config_json"));
        let corpus = files(&root.join("fuzz/corpus/config_json"));
        assert!(vectors.len() >= 4 && !corpus.is_empty());
        for (name, bytes) in &vectors {
            let ok = fuzz_config_json(bytes);
            assert_eq!(ok, name.starts_with("ok_"), "{name}");
            if name.starts_with("fail_") {
                assert!(
                    corpus.contains(&(name.clone(), bytes.clone())),
                    "{name} not in corpus"
                );
            }
        }
        for (_, bytes) in &corpus {
            fuzz_config_json(bytes);
        }
    }

    fn cfg(uuid: &str) -> IdentityConfig {
        IdentityConfig {
            identity_uuid: Some(uuid.into()),
            identity_name: None,
        }
    }

    #[test]
    fn precedence() {
        let root = tempfile::tempdir().unwrap();
        let home = root.path().join("home");
        let global_dir = root.path().join("cfg");
        let work = root.path().join("work/a/b");
        fs::create_dir_all(&work).unwrap();
        assert_eq!(
            resolve_identity(None, &work, &global_dir, Some(&home)).unwrap(),
            Selection::None
        );
        write_config(&global_dir.join(CONFIG_FILE), &cfg("g")).unwrap();
        assert!(matches!(
            resolve_identity(None, &work, &global_dir, Some(&home)).unwrap(),
            Selection::File { selector, .. } if selector == "g"
        ));
        write_config(&root.path().join("work/.ravi/config.json"), &cfg("l")).unwrap();
        assert!(matches!(
            resolve_identity(None, &work, &global_dir, Some(&home)).unwrap(),
            Selection::File { selector, .. } if selector == "l"
        ));
        assert_eq!(
            resolve_identity(Some("x"), &work, &global_dir, Some(&home)).unwrap(),
            Selection::Explicit("x".into())
        );
    }

    #[test]
    fn home_dot_ravi_is_not_a_local_config() {
        let root = tempfile::tempdir().unwrap();
        let home = root.path().to_path_buf();
        write_config(&home.join(".ravi/config.json"), &cfg("home")).unwrap();
        let other = root.path().join("other-cfg");
        let work = home.join("proj");
        fs::create_dir_all(&work).unwrap();
        assert_eq!(
            resolve_identity(None, &work, &other, Some(&home)).unwrap(),
            Selection::None
        );
    }

    #[test]
    fn malformed_config_is_input_error() {
        let root = tempfile::tempdir().unwrap();
        fs::write(root.path().join(CONFIG_FILE), b"{not json").unwrap();
        let err = resolve_identity(None, root.path(), root.path(), None).unwrap_err();
        assert_eq!(err.class(), vault_core::ErrorClass::InvalidInput);
    }
}
