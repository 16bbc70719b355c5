//! Times one `set_secret` (an update of an existing key, and a new key) in
//! an identity holding N secrets, through the library: median of 200.
use std::time::Instant;

use vault_core::{InitOptions, KdfParams, NewIdentity, Passphrase, SecretString, Vault};

fn main() {
    let n: usize = std::env::args().nth(1).unwrap().parse().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let pass = Passphrase::new("pw".into()).unwrap();
    let opts = InitOptions {
        kdf: KdfParams {
            memory_kib: 1024,
            iterations: 1,
            parallelism: 1,
        },
        inbox_domain: "bench.example.com".into(),
    };
    let v = Vault::init(&dir.path().join("v.db"), &pass, &opts).unwrap();
    let u = v.unlock(&pass).unwrap();
    let id = u
        .create_identity(&NewIdentity {
            name: "b".into(),
            ..Default::default()
        })
        .unwrap();
    let iv = u.open_identity(&id).unwrap();
    let mut filled = 0;
    while filled < n {
        let chunk = (n - filled).min(50_000);
        let e: Vec<(String, SecretString)> = (filled..filled + chunk)
            .map(|i| (format!("KEY_{i:08}"), format!("value-{i}").into()))
            .collect();
        iv.import_secrets(&e).unwrap();
        filled += chunk;
    }
    for (what, key) in [
        ("update", "KEY_00000007".to_string()),
        ("insert", String::new()),
    ] {
        let mut t = Vec::new();
        for i in 0..200 {
            let k = if key.is_empty() {
                format!("NEW_{i}")
            } else {
                key.clone()
            };
            let s = Instant::now();
            iv.set_secret(&k, &"v".into(), None).unwrap();
            t.push(s.elapsed().as_micros());
        }
        t.sort();
        println!("n={n} {what}: median {} us", t[100]);
    }
}
