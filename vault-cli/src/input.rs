//! Where secrets come from: files, environment variables, stdin, a prompt.
//! Never only argv.

use std::io::{IsTerminal, Read};
use std::path::Path;

use vault_core::{Error, Passphrase, Result, SecretString};
use zeroize::Zeroizing;

/// Largest secret read from stdin or a file.
const MAX_SECRET_INPUT: u64 = 1 << 20;

fn strip_newline(mut s: String) -> String {
    if s.ends_with('\n') {
        s.pop();
        if s.ends_with('\r') {
            s.pop();
        }
    }
    s
}

fn utf8(bytes: Vec<u8>, what: &str) -> Result<String> {
    String::from_utf8(bytes).map_err(|e| {
        let mut b = e.into_bytes();
        zeroize::Zeroize::zeroize(&mut b);
        Error::InvalidInput(format!("{what} is not valid UTF-8"))
    })
}

/// Reads a secret from a file, minus one trailing newline.
pub fn secret_from_file(path: &Path, what: &str) -> Result<SecretString> {
    let file = std::fs::File::open(path).map_err(|e| Error::Io {
        context: format!("cannot read {what} file {}", path.display()),
        source: e,
    })?;
    let mut buf = Vec::new();
    file.take(MAX_SECRET_INPUT + 1)
        .read_to_end(&mut buf)
        .map_err(|e| Error::Io {
            context: format!("cannot read {what} file {}", path.display()),
            source: e,
        })?;
    if buf.len() as u64 > MAX_SECRET_INPUT {
        return Err(Error::InvalidInput(format!("{what} file is too large")));
    }
    Ok(SecretString::new(strip_newline(utf8(buf, what)?)))
}

/// Reads a secret from stdin, minus one trailing newline.
pub fn secret_from_stdin(what: &str) -> Result<SecretString> {
    let mut buf = Vec::new();
    std::io::stdin()
        .lock()
        .take(MAX_SECRET_INPUT + 1)
        .read_to_end(&mut buf)
        .map_err(|e| Error::Io {
            context: format!("cannot read {what} from stdin"),
            source: e,
        })?;
    if buf.len() as u64 > MAX_SECRET_INPUT {
        return Err(Error::InvalidInput(format!("{what} on stdin is too large")));
    }
    Ok(SecretString::new(strip_newline(utf8(buf, what)?)))
}

fn prompt(msg: &str) -> Result<Zeroizing<String>> {
    rpassword::prompt_password(msg)
        .map(Zeroizing::new)
        .map_err(|e| Error::Io {
            context: "cannot read the passphrase from the terminal".into(),
            source: e,
        })
}

/// The vault passphrase: `--passphrase-file`, else `RAVI_PASSPHRASE`, else a
/// prompt when stdin is a terminal, else a "locked" error.
/// `confirm` asks twice (for `init`).
pub fn passphrase(file: Option<&Path>, confirm: bool) -> Result<Passphrase> {
    if let Some(f) = file {
        let s = secret_from_file(f, "passphrase")?;
        return Passphrase::new(s.expose().to_string());
    }
    if let Some(v) = std::env::var_os("RAVI_PASSPHRASE") {
        let s = v
            .into_string()
            .map_err(|_| Error::InvalidInput("RAVI_PASSPHRASE is not valid UTF-8".into()))?;
        return Passphrase::new(s);
    }
    if !std::io::stdin().is_terminal() {
        return Err(Error::Locked(
            "the vault is locked: give the passphrase with --passphrase-file or RAVI_PASSPHRASE"
                .into(),
        ));
    }
    let first = prompt("Vault passphrase: ")?;
    if confirm {
        let second = prompt("Repeat passphrase: ")?;
        if *first != *second {
            return Err(Error::InvalidInput("the passphrases do not match".into()));
        }
    }
    Passphrase::new(first.to_string())
}
