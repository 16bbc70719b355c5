//! The writer of `benches/rotate_stall.sh`: opens the vault with the
//! passphrase (RAVI_PASSPHRASE), then writes a secret of `IDENTITY` in a
//! loop until the file `STOP` exists, and prints each write's start (Unix
//! time, µs) and latency (µs), one write per line.
//!
//! `stall_writer VAULT IDENTITY STOP`

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use vault_core::{Passphrase, Vault};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: stall_writer VAULT IDENTITY STOP";
    let path = args.next().ok_or(usage)?;
    let name = args.next().ok_or(usage)?;
    let stop = std::path::PathBuf::from(args.next().ok_or(usage)?);
    let vault = Vault::open(std::path::Path::new(&path))?;
    let unlocked = vault.unlock(&Passphrase::new(std::env::var("RAVI_PASSPHRASE")?)?)?;
    let iv = unlocked.open_identity(&vault.find_identity(&name)?)?;
    let mut i = 0u64;
    while !stop.exists() {
        let wall = SystemTime::now().duration_since(UNIX_EPOCH)?.as_micros();
        let t = Instant::now();
        iv.set_secret(&format!("W{}", i % 64), &format!("v{i}").into(), None)?;
        println!("{wall} {}", t.elapsed().as_micros());
        i += 1;
    }
    Ok(())
}
