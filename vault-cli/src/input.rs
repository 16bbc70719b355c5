//! Where secrets come from: files, environment variables, stdin, a prompt.
//! Never only argv.

use std::io::{IsTerminal, Read};
use std::path::Path;

use vault_core::{
    AgentSecretKey, Credential, Error, Passphrase, Result, SecretString, SessionToken,
};
use zeroize::Zeroizing;

/// Largest secret read from stdin or a file.
const MAX_SECRET_INPUT: u64 = 1 << 20;

/// Longest secret value: the sealed record (value, key, notes and times as
/// JSON) must stay within the envelope's 1 MiB, so values get 4 KiB less.
pub const MAX_VALUE_LEN: usize = (1 << 20) - 4096;

/// Refuses a value too long to seal, before anything is done with it.
pub fn check_value_len(len: usize) -> Result<()> {
    if len > MAX_VALUE_LEN {
        return Err(Error::InvalidInput(format!(
            "the value is too large ({len} bytes; a value may have at most {MAX_VALUE_LEN} bytes, 1 MiB less 4 KiB, so that its sealed record fits in 1 MiB)"
        )));
    }
    Ok(())
}

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

/// A file named on the command line or in the environment that is missing
/// or a directory is a usage error (exit 2), not an I/O failure. Returns
/// the file's metadata when it could be read.
pub fn check_file(path: &Path, what: &str) -> Result<Option<std::fs::Metadata>> {
    match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Error::InvalidInput(format!(
            "no {what} file at {}",
            path.display()
        ))),
        Ok(m) if m.is_dir() => Err(Error::InvalidInput(format!(
            "{} is a directory, not a {what} file",
            path.display()
        ))),
        Ok(m) => Ok(Some(m)),
        Err(_) => Ok(None),
    }
}

/// Reads a secret from a file, minus one trailing newline.
pub fn secret_from_file(path: &Path, what: &str) -> Result<SecretString> {
    check_file(path, what)?;
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
            "the vault is locked: give a credential: a session token in RAVI_SESSION (from \
             `ravi unlock`) or --session-file, an agent key in RAVI_AGENT_KEY_FILE or \
             --agent-key-file, or the passphrase with --passphrase-file or RAVI_PASSPHRASE"
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

fn env_nonempty(name: &str) -> Result<Option<String>> {
    match std::env::var_os(name) {
        None => Ok(None),
        Some(v) if v.is_empty() => Ok(None),
        Some(v) => v
            .into_string()
            .map(Some)
            .map_err(|_| Error::InvalidInput(format!("{name} is not valid UTF-8"))),
    }
}

/// An agent key file, with ssh's warning when others may read it.
fn agent_key(path: &Path) -> Result<Credential> {
    let meta = check_file(path, "agent key")?;
    let key = AgentSecretKey::read_file(path)?;
    #[cfg(unix)]
    if let Some(meta) = meta {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if meta.is_file() && mode & 0o077 != 0 {
            eprintln!(
                "ravi: warning: the agent key file {} is accessible by others (mode {mode:04o}); run: chmod 600 {}",
                path.display(),
                path.display()
            );
        }
    }
    Ok(Credential::Agent(key))
}

fn session_from_file(path: &Path) -> Result<Credential> {
    let t = secret_from_file(path, "session token")?;
    SessionToken::parse(t.expose()).map(Credential::Session)
}

/// The credential a command opens the vault with. Explicit flags win
/// (`--session-file`, `--agent-key-file`, `--passphrase-file`), then the
/// environment (`RAVI_SESSION`, `RAVI_AGENT_KEY_FILE`, `RAVI_PASSPHRASE`),
/// then a prompt on a terminal. A bad token or key is an error, never a
/// fallback to another credential.
pub fn credential(
    session_file: Option<&Path>,
    agent_key_file: Option<&Path>,
    passphrase_file: Option<&Path>,
) -> Result<Credential> {
    if let Some(f) = session_file {
        return session_from_file(f);
    }
    if let Some(f) = agent_key_file {
        return agent_key(f);
    }
    if passphrase_file.is_some() {
        return passphrase(passphrase_file, false).map(Credential::Passphrase);
    }
    if let Some(t) = env_nonempty("RAVI_SESSION")? {
        let t = Zeroizing::new(t);
        return SessionToken::parse(&t).map(Credential::Session);
    }
    // (a path, which need not be UTF-8)
    if let Some(f) = std::env::var_os("RAVI_AGENT_KEY_FILE").filter(|f| !f.is_empty()) {
        return agent_key(Path::new(&f));
    }
    passphrase(None, false).map(Credential::Passphrase)
}

/// For operations that need the passphrase itself (`unlock`, `passphrase
/// change`): an agent key alone is denied, a session alone is not enough.
pub fn owner_passphrase(
    session_file: Option<&Path>,
    agent_key_file: Option<&Path>,
    passphrase_file: Option<&Path>,
    what: &str,
) -> Result<Passphrase> {
    let have_passphrase =
        passphrase_file.is_some() || std::env::var_os("RAVI_PASSPHRASE").is_some();
    if !have_passphrase
        && (agent_key_file.is_some() || env_nonempty("RAVI_AGENT_KEY_FILE")?.is_some())
    {
        return Err(Error::Denied(format!(
            "an agent key cannot {what}: that needs the vault passphrase"
        )));
    }
    if !have_passphrase && session_file.is_some() {
        return Err(Error::Locked(format!(
            "{what} needs the vault passphrase, not a session"
        )));
    }
    passphrase(passphrase_file, false)
}

/// A new passphrase: `--new-passphrase-file`, else `RAVI_NEW_PASSPHRASE`,
/// else a prompt (twice) on a terminal.
pub fn new_passphrase(file: Option<&Path>) -> Result<Passphrase> {
    if let Some(f) = file {
        let s = secret_from_file(f, "new passphrase")?;
        return Passphrase::new(s.expose().to_string());
    }
    if let Some(v) = env_nonempty("RAVI_NEW_PASSPHRASE")? {
        return Passphrase::new(v);
    }
    if !std::io::stdin().is_terminal() {
        return Err(Error::InvalidInput(
            "no new passphrase given: use --new-passphrase-file or RAVI_NEW_PASSPHRASE".into(),
        ));
    }
    let first = prompt("New passphrase: ")?;
    let second = prompt("Repeat new passphrase: ")?;
    if *first != *second {
        return Err(Error::InvalidInput("the passphrases do not match".into()));
    }
    Passphrase::new(first.to_string())
}
