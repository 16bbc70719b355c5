//! A vault with one identity, weak KDF parameters (opening is not what
//! these benches measure), for the store and lookup benches.

use vault_core::{
    IdentityVault, InitOptions, KdfParams, NewIdentity, Passphrase, SecretString, Vault,
};

/// The bench vaults' passphrase.
pub const PASS: &str = "bench passphrase";

/// Runs `f` on identity `bench` of a fresh vault in `dir`, unlocked once.
pub fn with_identity<T>(dir: &tempfile::TempDir, f: impl FnOnce(&IdentityVault<'_>) -> T) -> T {
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
    let u = v.unlock(&pass).expect("unlock");
    let ident = u
        .create_identity(&NewIdentity {
            name: "bench".into(),
            ..Default::default()
        })
        .expect("identity");
    f(&u.open_identity(&ident).expect("open identity"))
}

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
