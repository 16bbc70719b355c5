//! Writes the key-dependent test vectors of `vault_core::fuzz_entry` into
//! `tests/data/<target>/`, then copies every `tests/data/<target>/` file
//! into `fuzz/corpus/<target>/` so each fuzz target starts from every
//! known-good and must-fail vector.
//!
//! `cargo run -p vault-core --example fuzz_seeds` from the workspace root.

use std::path::Path;

fn main() -> std::io::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let data = root.join("tests/data");
    for (target, name, bytes) in vault_core::fuzz_entry::generated_vectors() {
        let dir = data.join(target);
        std::fs::create_dir_all(&dir)?;
        let path = dir.join(&name);
        if !path.exists() {
            std::fs::write(path, bytes)?;
        }
    }
    for (target, _) in vault_core::fuzz_entry::TARGETS {
        let corpus = root.join("fuzz/corpus").join(target);
        std::fs::create_dir_all(&corpus)?;
        let Ok(rd) = std::fs::read_dir(data.join(target)) else {
            continue;
        };
        for e in rd {
            let e = e?;
            std::fs::copy(e.path(), corpus.join(e.file_name()))?;
        }
    }
    Ok(())
}
