//! Commands that manage access: sessions, agent keys, passphrase change.

use serde_json::json;
use vault_core::{AgentSecretKey, Error, Result};

use crate::args::{AgentCommand, GlobalArgs, PassphraseCommand};
use crate::{Output, access, config_dir, input, open_vault};

/// `ravi unlock`: one Argon2id derivation, then a session token.
pub fn unlock(g: &GlobalArgs, ttl: &str, out: &mut Output) -> Result<()> {
    let ttl = vault_core::parse_ttl(ttl)?;
    let vault = open_vault(g)?;
    let pass = input::owner_passphrase(
        g.session_file.as_deref(),
        g.agent_key_file.as_deref(),
        g.passphrase_file.as_deref(),
        "unlock the vault",
    )?;
    let session = vault.unlock(&pass)?.create_session(ttl)?;
    let token = session.token.to_text();
    let expires = session.expires_at_text();
    out.emit(
        json!({ "session": token.as_str(), "expires_at": expires }),
        token.as_str(),
    );
    Ok(())
}

/// `ravi lock [--session]`: revoke every session, or only the one in use.
pub fn lock(g: &GlobalArgs, only_current: bool, out: &mut Output) -> Result<()> {
    let vault = open_vault(g)?;
    let access = access(g, &vault)?;
    let n = access
        .owner("revoke sessions")?
        .revoke_sessions(only_current)
        .map_err(|e| match e {
            Error::InvalidInput(_) => Error::InvalidInput(
                "--session needs a session (RAVI_SESSION or --session-file) to revoke".into(),
            ),
            other => other,
        })?;
    out.emit(
        json!({ "revoked_sessions": n }),
        format!("Revoked {n} session(s)"),
    );
    Ok(())
}

/// `ravi agent keygen|pubkey`.
pub fn agent(c: &AgentCommand, out: &mut Output) -> Result<()> {
    match c {
        AgentCommand::Keygen { out: path } => {
            let key = AgentSecretKey::generate()?;
            let public = key.public().to_string();
            match path {
                Some(p) if p.as_os_str() == "-" => {
                    let secret = key.to_text();
                    out.emit(
                        json!({ "public_key": public, "secret_key": secret.as_str() }),
                        key.to_file_contents().as_str(),
                    );
                }
                _ => {
                    let path = match path {
                        Some(p) => p.clone(),
                        None => {
                            let dir = config_dir()?;
                            vault_core::ensure_private_dir(&dir)?;
                            dir.join("agent.key")
                        }
                    };
                    key.write_new_file(&path)?;
                    out.emit(
                        json!({ "public_key": public, "key_file": path }),
                        public.clone(),
                    );
                }
            }
        }
        AgentCommand::Pubkey { key_file } => {
            let public = AgentSecretKey::read_file(key_file)?.public().to_string();
            out.emit(json!({ "public_key": public }), public.clone());
        }
    }
    Ok(())
}

/// `ravi passphrase change`.
pub fn passphrase(g: &GlobalArgs, c: &PassphraseCommand, out: &mut Output) -> Result<()> {
    let PassphraseCommand::Change {
        new_passphrase_file,
        kdf,
    } = c;
    let vault = open_vault(g)?;
    let old = input::owner_passphrase(
        g.session_file.as_deref(),
        g.agent_key_file.as_deref(),
        g.passphrase_file.as_deref(),
        "change the passphrase",
    )?;
    let unlocked = vault.unlock(&old)?;
    let new = input::new_passphrase(new_passphrase_file.as_deref())?;
    let kdf = crate::kdf_params(kdf, vault.info().kdf)?;
    let params = unlocked.change_passphrase(&new, Some(kdf))?;
    out.emit(
        json!({ "changed": true, "kdf": params }),
        "Passphrase changed",
    );
    Ok(())
}
