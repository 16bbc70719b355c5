//! A vault with one identity, weak KDF parameters (opening is not what
//! these benches measure), for the store and lookup benches.

use vault_core::{InitOptions, KdfParams, NewIdentity, Passphrase, SecretString, Vault};

/// The bench vaults' passphrase.
pub const PASS: &str = "bench passphrase";

/// A fresh vault with identity `bench`.
pub fn vault(dir: &tempfile::TempDir) -> Vault {
    let opts = InitOptions {
        kdf: KdfParams {
            memory_kib: 1024,
            iterations: 1,
            parallelism: 1,
        },
        inbox_domain: "bench.example.com".into(),
    };
    let pass = Passphrase::new(PASS.into()).expect("passphrase");
    let v = Vault::init(&dir.path().join("vault.db"), &pass, &opts).expect("init");
    v.unlock(&pass)
        .expect("unlock")
        .create_identity(&NewIdentity {
            name: "bench".into(),
            ..Default::default()
        })
        .expect("identity");
    v
}

/// [`PASS`] as a passphrase.
pub fn passphrase() -> Passphrase {
    Passphrase::new(PASS.into()).expect("passphrase")
}

#[allow(dead_code)]
/// `n` secrets `KEY_{offset + i}` with ~40-byte values.
pub fn entries(offset: usize, n: usize) -> Vec<(String, SecretString)> {
    (offset..offset + n)
        .map(|i| {
            (
                format!("KEY_{i:08}"),
                format!("value-{i:08}-abcdefghijklmnopqrstuvwxyz").into(),
            )
        })
        .collect()
}
