//! Where the vault is: a local file (the default), or a `ravi serve` server
//! (`ravi login`, or `RAVI_SERVER` with `RAVI_TOKEN`); and `ravi serve`.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use serde_json::json;
use vault_core::{Error, Result, Vault};
use zeroize::Zeroizing;

use crate::Output;
use crate::args::{GlobalArgs, ServeArgs, ServeCommand, TokenCommand};

/// Where this process's vault lives.
pub enum Store {
    /// A vault file.
    Local(PathBuf),
    /// A vault on a server, with a bearer token.
    Remote {
        server: String,
        token: Zeroizing<String>,
    },
}

/// `{"server", "access_token"}`, as `ravi login` writes it.
#[derive(serde::Serialize, serde::Deserialize)]
struct Auth {
    server: String,
    access_token: String,
}

fn auth_path() -> Result<PathBuf> {
    Ok(crate::default_ravi_dir()?.join("auth.json"))
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// The store: `--vault`/`RAVI_VAULT` names a file; else `RAVI_SERVER` with
/// `RAVI_TOKEN`; else the login in `~/.ravi/auth.json`; else
/// `~/.ravi/vault.db`.
///
/// # Errors
/// [`Error::InvalidInput`] for `RAVI_SERVER` without `RAVI_TOKEN`, or a
/// malformed auth.json.
pub fn store(g: &GlobalArgs) -> Result<Store> {
    if let Some(p) = &g.vault {
        return Ok(Store::Local(p.clone()));
    }
    if let Some(server) = env("RAVI_SERVER") {
        let token = env("RAVI_TOKEN").ok_or_else(|| {
            Error::InvalidInput("RAVI_SERVER is set but RAVI_TOKEN is not".into())
        })?;
        return Ok(Store::Remote {
            server,
            token: Zeroizing::new(token),
        });
    }
    let path = auth_path()?;
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let auth: Auth = serde_json::from_str(&text).map_err(|_| {
                Error::InvalidInput(format!(
                    "{} is not {{\"server\", \"access_token\"}}; run `ravi login` again",
                    path.display()
                ))
            })?;
            Ok(Store::Remote {
                server: auth.server,
                token: Zeroizing::new(auth.access_token),
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Ok(Store::Local(crate::default_ravi_dir()?.join("vault.db")))
        }
        Err(e) => Err(Error::Io {
            context: format!("cannot read {}", path.display()),
            source: e,
        }),
    }
}

impl Store {
    /// Opens the vault there.
    ///
    /// # Errors
    /// [`Error::NotFound`] if there is none.
    pub fn open(&self) -> Result<Vault> {
        match self {
            Store::Local(p) => Vault::open(p).map_err(|e| match e {
                Error::NotFound(m) => Error::NotFound(format!("{m} (run `ravi init` first)")),
                other => other,
            }),
            Store::Remote { server, token } => Vault::open_remote(server, token),
        }
    }

    /// Whether a vault may be there (a file exists, or a server is set).
    pub fn may_exist(&self) -> bool {
        match self {
            Store::Local(p) => p.exists(),
            Store::Remote { .. } => true,
        }
    }
}

fn read_token(stdin: bool, file: Option<&Path>) -> Result<Zeroizing<String>> {
    let mut line = Zeroizing::new(String::new());
    if stdin {
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| Error::Io {
                context: "cannot read the token from standard input".into(),
                source: e,
            })?;
    } else if let Some(f) = file {
        *line = std::fs::read_to_string(f).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => {
                Error::InvalidInput(format!("no token file at {}", f.display()))
            }
            _ => Error::Io {
                context: format!("cannot read {}", f.display()),
                source: e,
            },
        })?;
    }
    let token = Zeroizing::new(line.trim().to_string());
    if token.is_empty() {
        return Err(Error::InvalidInput("the token is empty".into()));
    }
    Ok(token)
}

/// `ravi login`: checks the server and token, then writes auth.json (0600).
pub fn login(server: &str, stdin: bool, file: Option<&Path>, out: &mut Output) -> Result<()> {
    let token = read_token(stdin, file)?;
    let server = server.trim_end_matches('/').to_string();
    // Reach the server with the token before keeping it: a vault there is
    // not needed yet (`ravi init` creates it).
    match Vault::open_remote(&server, &token) {
        Ok(_) | Err(Error::NotFound(_)) => {}
        Err(e) => return Err(e),
    }
    let path = auth_path()?;
    if let Some(dir) = path.parent() {
        vault_core::ensure_private_dir(dir)?;
    }
    let body = Zeroizing::new(
        serde_json::to_string_pretty(&Auth {
            server: server.clone(),
            access_token: token.to_string(),
        })
        .map_err(Error::Encoding)?,
    );
    vault_cli::config::write_private_file(&path, body.as_bytes())?;
    out.said(
        json!({ "server": server, "auth_file": path }),
        format!("Logged in to {server} ({})", path.display()),
    );
    Ok(())
}


/// `ravi push`: the local vault's rows to the configured server.
pub fn push(g: &GlobalArgs, out: &mut Output) -> Result<()> {
    let local = match &g.vault {
        Some(p) => p.clone(),
        None => crate::default_ravi_dir()?.join("vault.db"),
    };
    // The server as it would be without --vault.
    let server = store(&GlobalArgs {
        vault: None,
        ..g.clone()
    })?;
    let Store::Remote { server, token } = server else {
        return Err(Error::InvalidInput(
            "no server: run `ravi login --server URL …` or set RAVI_SERVER and RAVI_TOKEN".into(),
        ));
    };
    let vault = Vault::open(&local).map_err(|e| match e {
        Error::NotFound(m) => Error::NotFound(format!("{m}: nothing to push")),
        other => other,
    })?;
    crate::pins::check(&vault, &crate::config_dir()?, None)?;
    let r = vault.push(&server, &token)?;
    eprintln!(
        "ravi: the vault now lives on {server}; commands use it while logged in (the local file {} is no longer used; sessions were not pushed: run `ravi unlock` again)",
        local.display()
    );
    out.said(
        serde_json::to_value(&r).map_err(Error::Encoding)?,
        format!(
            "Pushed vault {} to {}: {} identities, {} records, {} grants",
            r.vault_id, r.server, r.identities, r.records, r.grants
        ),
    );
    Ok(())
}

/// `ravi logout`.
pub fn logout(out: &mut Output) -> Result<()> {
    let path = auth_path()?;
    let removed = match std::fs::remove_file(&path) {
        Ok(()) => true,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => {
            return Err(Error::Io {
                context: format!("cannot remove {}", path.display()),
                source: e,
            });
        }
    };
    out.said(
        json!({ "logged_out": removed }),
        if removed {
            "Logged out".to_string()
        } else {
            "Not logged in".to_string()
        },
    );
    Ok(())
}

fn store_config(a: &ServeArgs) -> Result<vault_server::StoreConfig> {
    Ok(match (&a.database, &a.data) {
        (Some(url), _) => vault_server::StoreConfig::Postgres(url.clone()),
        (None, Some(p)) => vault_server::StoreConfig::Sqlite(p.clone()),
        (None, None) => {
            vault_server::StoreConfig::Sqlite(crate::default_ravi_dir()?.join("server.db"))
        }
    })
}

/// `ravi serve …` in the `ravi` binary: runs `ravi-serve` (beside this
/// program, else on PATH) with the same arguments, in this process.
pub fn hand_over_to_server() -> Result<()> {
    let sibling = std::env::current_exe()
        .ok()
        .map(|p| p.with_file_name("ravi-serve"))
        .filter(|p| p.is_file());
    let program = sibling.unwrap_or_else(|| PathBuf::from("ravi-serve"));
    let mut cmd = std::process::Command::new(&program);
    cmd.args(std::env::args_os().skip(1));
    let e = crate::become_command(&mut cmd);
    Err(Error::NotFound(format!(
        "`ravi serve` needs the ravi-serve program ({}: {e}); it is installed with ravi \
         (cargo install --locked --path vault-cli)",
        program.display()
    )))
}

/// `ravi serve` and `ravi serve token …`.
pub fn serve(g: &GlobalArgs, a: &ServeArgs, out: &mut Output) -> Result<()> {
    let store = store_config(a)?;
    match &a.command {
        None => {
            if !g.identity.is_empty() {
                return Err(Error::InvalidInput(
                    "`ravi serve` takes no --identity (tokens are scoped with `ravi serve token create`)".into(),
                ));
            }
            let shown = match &store {
                vault_server::StoreConfig::Sqlite(p) => p.display().to_string(),
                vault_server::StoreConfig::Postgres(_) => "PostgreSQL".to_string(),
            };
            let tls = a.tls_cert.clone().zip(a.tls_key.clone());
            let scheme = if tls.is_some() { "https" } else { "http" };
            let opts = vault_server::ServeOptions {
                listen: a.listen.clone(),
                store,
                tls,
            };
            vault_server::serve(&opts, |addr| {
                // The first line of stdout: scripts wait for it.
                println!("ravi serve: listening on {scheme}://{addr} (store {shown})");
                let _ = std::io::stdout().flush();
            })
        }
        Some(ServeCommand::Token(t)) => token(g, t, &store.open()?, out),
    }
}

fn token(
    g: &GlobalArgs,
    t: &TokenCommand,
    store: &vault_server::Store,
    out: &mut Output,
) -> Result<()> {
    match t {
        TokenCommand::Create { name, owner, ttl } => {
            let scope = match (owner, g.identity.is_empty()) {
                (true, true) => vault_server::Scope::Owner,
                (false, false) => vault_server::Scope::Identities(
                    g.identity
                        .iter()
                        .map(|s| resolve_identity(store, s))
                        .collect::<Result<_>>()?,
                ),
                _ => {
                    return Err(Error::InvalidInput(
                        "give either --owner or --identity (one or more)".into(),
                    ));
                }
            };
            let ttl = ttl
                .as_deref()
                .map(vault_core::parse_ttl)
                .transpose()?
                .map(|d| d.as_secs());
            let (token, id) = store.create_token(name, &scope, ttl)?;
            let identities = match &scope {
                vault_server::Scope::Owner => Vec::new(),
                vault_server::Scope::Identities(ids) => ids.iter().cloned().collect(),
            };
            out.emit(
                json!({ "id": id, "name": name, "token": token, "scope": if *owner { "owner" } else { "identity" }, "identities": identities }),
                token.clone(),
            );
        }
        TokenCommand::List => {
            let all = store.tokens()?;
            let text = all
                .iter()
                .map(|t| {
                    format!(
                        "{}\t{}\t{}\t{}",
                        t.id,
                        t.name,
                        t.scope,
                        t.identities.join(",")
                    )
                })
                .collect::<Vec<_>>()
                .join("\n");
            out.emit(serde_json::to_value(&all).map_err(Error::Encoding)?, text);
        }
        TokenCommand::Revoke { token } => {
            if !store.revoke_token(token)? {
                return Err(Error::NotFound(format!("no token {token:?}")));
            }
            out.said(json!({ "revoked": token }), format!("Revoked {token}"));
        }
    }
    Ok(())
}

/// An identity of the server's vault (or a pending one) by uuid or name.
fn resolve_identity(store: &vault_server::Store, s: &str) -> Result<String> {
    store
        .find_identity(s)?
        .ok_or_else(|| Error::NotFound(format!("no identity {s:?} on this server")))
}
