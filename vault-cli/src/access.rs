//! Commands that manage access: sessions, agent keys, passphrase change.

use serde_json::json;
use vault_core::{AgentSecretKey, Error, OwnerPublicKey, Result};

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
    out.said(
        json!({ "revoked_sessions": n }),
        format!("Revoked {n} session(s)"),
    );
    Ok(())
}

/// The pin line for the vault at `--vault`/`RAVI_VAULT`, if one can be
/// opened there and has an owner key: a key file made next to an open
/// vault records which owner to trust.
fn pin_lines(g: &GlobalArgs) -> Result<Vec<String>> {
    if !crate::remote::store(g)?.may_exist() {
        return Ok(Vec::new());
    }
    let vault = open_vault(g)?;
    let info = vault.info();
    Ok(info
        .owner_public_key
        .map(|k| format!("{}{} {k}", crate::pins::KEY_FILE_PIN, info.vault_id))
        .into_iter()
        .collect())
}

/// `ravi agent keygen|pubkey|pin`.
pub fn agent(g: &GlobalArgs, c: &AgentCommand, out: &mut Output) -> Result<()> {
    match c {
        AgentCommand::Keygen { out: path } => {
            let key = AgentSecretKey::generate()?;
            let public = key.public().to_string();
            let pins = pin_lines(g)?;
            match path {
                Some(p) if p.as_os_str() == "-" => {
                    let secret = key.to_text();
                    out.emit(
                        json!({ "public_key": public, "secret_key": secret.as_str() }),
                        key.to_file_contents_with(&pins).as_str(),
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
                    key.write_new_file(&path, &pins)?;
                    out.emit(
                        json!({ "public_key": public, "key_file": path }),
                        public.clone(),
                    );
                }
            }
        }
        AgentCommand::Pin {
            owner_key,
            key_file,
        } => {
            let key = OwnerPublicKey::parse(owner_key)?;
            // Compare with the vault before pinning (exit 5 on a mismatch);
            // the vault itself is opened without its pin check.
            let vault = crate::remote::store(g)?.open()?;
            vault.check_owner(&key)?;
            let vault_id = vault.info().vault_id;
            crate::pins::write_pin(&config_dir()?, &vault_id, &key)?;
            if let Some(f) = key_file {
                use std::io::Write;
                AgentSecretKey::read_file(f)?;
                let line = format!("{}{vault_id} {key}\n", crate::pins::KEY_FILE_PIN);
                std::fs::OpenOptions::new()
                    .append(true)
                    .open(f)
                    .and_then(|mut file| file.write_all(line.as_bytes()))
                    .map_err(|e| Error::Io {
                        context: format!("cannot write {}", f.display()),
                        source: e,
                    })?;
            }
            out.said(
                json!({ "vault_id": vault_id, "owner_public_key": key }),
                format!("Pinned owner key {key} for vault {vault_id}"),
            );
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
    out.said(
        json!({ "changed": true, "kdf": params }),
        "Passphrase changed",
    );
    Ok(())
}

/// `ravi rekey`: a new root key and a rotation of every identity.
pub fn rekey(g: &GlobalArgs, out: &mut Output) -> Result<()> {
    let vault = open_vault(g)?;
    let pass = input::owner_passphrase(
        g.session_file.as_deref(),
        g.agent_key_file.as_deref(),
        g.passphrase_file.as_deref(),
        "re-key the vault",
    )?;
    let r = vault.unlock(&pass)?.rekey(&pass)?;
    crate::raise_vault_head(&vault)?;
    let records: usize = r.identities.iter().map(|i| i.records_resealed).sum();
    out.said(
        crate::to_json(&r)?,
        format!(
            "Re-keyed the vault: {} identities rotated, {records} records re-sealed, {} sessions ended",
            r.identities.len(),
            r.sessions_revoked
        ),
    );
    Ok(())
}
