//! The floor of `ravi secrets list` for `benches/list.sh`: the same rows
//! read from the same vault file with plain SQLite (one query, in uuid
//! order, through the same index) and each ciphertext put through one raw
//! XChaCha20-Poly1305 pass of its own length (the work of opening it;
//! the floor has no key, so it encrypts the bytes instead of decrypting
//! them). No head check, no JSON, no output but a count.
//!
//! `list_floor VAULT`

use chacha20poly1305::XChaCha20Poly1305;
use chacha20poly1305::aead::{AeadInOut, KeyInit};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args().nth(1).ok_or("usage: list_floor VAULT")?;
    let db = rusqlite::Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    let identity: String = db.query_row("SELECT uuid FROM identities LIMIT 1", [], |r| r.get(0))?;
    let cipher = XChaCha20Poly1305::new(&[7u8; 32].into());
    let mut stmt =
        db.prepare("SELECT ciphertext FROM records WHERE identity_uuid = ?1 ORDER BY uuid")?;
    let mut rows = stmt.query([identity])?;
    let (mut n, mut buf) = (0usize, Vec::new());
    while let Some(row) = rows.next()? {
        let ct = row.get_ref(0)?.as_blob()?;
        if ct.len() < 41 {
            continue;
        }
        let nonce: [u8; 24] = ct[1..25].try_into()?;
        buf.clear();
        buf.extend_from_slice(&ct[25..ct.len() - 16]);
        let tag = cipher
            .encrypt_inout_detached(&nonce.into(), b"", buf.as_mut_slice().into())
            .map_err(|_| "aead")?;
        n += usize::from(tag[0] != 0 || !buf.is_empty());
    }
    println!("{n}");
    Ok(())
}
