//! Private directories for vault files and keys.

use std::fs;
use std::path::Path;

use crate::error::{Error, Result};

/// Creates a directory (and its parents) with mode 0700 if it is missing.
///
/// # Errors
/// [`Error::Io`] if it cannot be created.
pub fn ensure_private_dir(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut b = fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir)
        .map_err(|e| Error::io(format!("cannot create {}", dir.display()), e))
}
