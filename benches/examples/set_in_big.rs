//! Times one `set_secret` — an update of an existing key and a new key — in
//! an identity holding N secrets, through the library (median of 200), on
//! the benches' vault with weak Argon2id parameters (unlocking is not what is
//! measured): `cargo run --release -p ravi-benches --example set_in_big -- N`.

use std::error::Error;
use std::time::Instant;

#[path = "../benches/common/mod.rs"]
mod common;

fn main() -> Result<(), Box<dyn Error>> {
    let n: usize = std::env::args()
        .nth(1)
        .ok_or("usage: set_in_big N")?
        .parse()?;
    let dir = tempfile::tempdir()?;
    common::with_identity(&dir, |iv| -> Result<(), Box<dyn Error>> {
        let mut filled = 0;
        while filled < n {
            let chunk = (n - filled).min(50_000);
            iv.import_secrets(&common::entries(filled, chunk))?;
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
    })
}
