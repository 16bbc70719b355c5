//! Times one `set_secret` — an update of an existing key and a new key — in
//! an identity holding N secrets, through the library (median of 200), with
//! weak Argon2id parameters (unlocking is not what is measured):
//! `cargo run --release -p ravi-benches --example set_in_big -- N`.

use std::error::Error;
use std::time::Instant;

use vault_core::{InitOptions, KdfParams, NewIdentity, Passphrase, SecretString, Vault};

fn main() -> Result<(), Box<dyn Error>> {
    let n: usize = std::env::args()
        .nth(1)
        .ok_or("usage: set_in_big N")?
        .parse()?;
    let dir = tempfile::tempdir()?;
    let pass = Passphrase::new("pw".into())?;
    let opts = InitOptions {
        kdf: KdfParams {
            memory_kib: 1024,
            iterations: 1,
            parallelism: 1,
        },
        inbox_domain: "bench.example.com".into(),
    };
    let v = Vault::init(&dir.path().join("v.db"), &pass, &opts)?;
    let u = v.unlock(&pass)?;
    let id = u.create_identity(&NewIdentity {
        name: "b".into(),
        ..Default::default()
    })?;
    let iv = u.open_identity(&id)?;
    let mut filled = 0;
    while filled < n {
        let chunk = (n - filled).min(50_000);
        let e: Vec<(String, SecretString)> = (filled..filled + chunk)
            .map(|i| (format!("KEY_{i:08}"), format!("value-{i}").into()))
            .collect();
        iv.import_secrets(&e)?;
        filled += chunk;
    }
    for (what, key) in [("update", Some("KEY_00000007")), ("insert", None)] {
        let mut t = Vec::new();
        for i in 0..200 {
            let k = key.map_or_else(|| format!("NEW_{i}"), str::to_string);
            let s = Instant::now();
            iv.set_secret(&k, &"v".into(), None)?;
            t.push(s.elapsed().as_micros());
        }
        t.sort_unstable();
        println!("n={n} {what}: median {} us", t[100]);
    }
    Ok(())
}
