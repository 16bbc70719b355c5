//! Fills a vault for `benches/cli.sh`: `populate VAULT N` creates the vault
//! (default Argon2id parameters, passphrase from RAVI_PASSPHRASE), an
//! identity `bench` and N records: secrets `KEY_i`, passwords for
//! `site-i.example`, and one TOTP seed `bench-totp`. Much faster than N
//! `ravi` processes, and through the same library calls.

use std::error::Error;

use vault_core::{InitOptions, NewIdentity, NewPassword, Passphrase, TotpParams, Vault};

fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let path = args.next().ok_or("usage: populate VAULT N")?;
    let n: usize = args.next().ok_or("usage: populate VAULT N")?.parse()?;
    let pass = Passphrase::new(std::env::var("RAVI_PASSPHRASE")?)?;
    let opts = InitOptions {
        inbox_domain: "bench.example.com".into(),
        ..Default::default()
    };
    let vault = Vault::init(std::path::Path::new(&path), &pass, &opts)?;
    let unlocked = vault.unlock(&pass)?;
    let ident = unlocked.create_identity(&NewIdentity {
        name: "bench".into(),
        ..Default::default()
    })?;
    let iv = unlocked.open_identity(&ident)?;
    for i in 0..n / 2 {
        iv.set_secret(&format!("KEY_{i}"), &format!("value-{i}").into(), None)?;
        iv.create_password(&NewPassword {
            domain: format!("site-{i}.example"),
            username: Some(format!("user{i}")),
            password: format!("password-{i}").into(),
            notes: None,
        })?;
    }
    let seed = TotpParams::from_base32_secret("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ")?.secret;
    iv.add_totp(Some("bench-totp"), &TotpParams::with_defaults(seed))?;
    Ok(())
}
