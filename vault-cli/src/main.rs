//! `ravi`: a thin command-line interface over vault-core. Parsing, output
//! and exit codes only; every behaviour lives in the library.

mod args;
mod input;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use serde_json::{Value, json};
use vault_core::config::{self, IdentityConfig, Selection};
use vault_core::{
    Error, ErrorClass, GeneratorOptions, Identity, IdentityVault, InitOptions, KdfParams,
    NewIdentity, NewPassword, PasswordEdit, PasswordEntry, Result, SecretEntry, SecretString,
    TotpAlgorithm, TotpEntry, TotpParams, Vault,
};

use args::{
    Cli, Command, GenerateArgs, GetCommand, GlobalArgs, IdentityCommand, InitArgs, PasswordInput,
    PasswordsCommand, SecretsCommand, TotpAddArgs, TotpCommand,
};

fn exit_code(class: ErrorClass) -> u8 {
    match class {
        ErrorClass::Internal => 1,
        ErrorClass::InvalidInput => 2,
        ErrorClass::NotFound => 3,
        ErrorClass::Locked => 4,
        ErrorClass::Integrity => 5,
        ErrorClass::Conflict => 6,
    }
}

fn main() -> ExitCode {
    let json_requested = std::env::args_os().any(|a| a == "--json");
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(
                e.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) {
                let _ = e.print();
                return ExitCode::SUCCESS;
            }
            if json_requested {
                let msg = e.kind().to_string();
                let detail = e.to_string();
                let first = detail
                    .lines()
                    .next()
                    .unwrap_or(&msg)
                    .trim_start_matches("error: ");
                report_json_error("invalid_input", first, &[]);
            } else {
                let _ = e.print();
            }
            return ExitCode::from(2);
        }
    };
    let json = cli.global.json;
    let mut out = Output {
        json,
        doc: None,
        text: String::new(),
    };
    match run(&cli, &mut out) {
        Ok(()) => out.flush(),
        Err(e) => {
            let class = e.class();
            if json {
                report_json_error(class.code(), &e.to_string(), e.candidates());
            } else {
                eprintln!("ravi: {e}");
                for c in e.candidates() {
                    let user = if c.username.is_empty() {
                        "(no username)"
                    } else {
                        &c.username
                    };
                    eprintln!("  {}  {}", c.uuid, user);
                }
            }
            ExitCode::from(exit_code(class))
        }
    }
}

fn report_json_error(code: &str, message: &str, candidates: &[vault_core::Candidate]) {
    let mut err = json!({ "code": code, "message": message });
    if !candidates.is_empty() {
        err["candidates"] = json!(candidates);
    }
    eprintln!("{}", json!({ "error": err }));
}

/// Collected output: one JSON document or text lines.
struct Output {
    json: bool,
    doc: Option<Value>,
    text: String,
}

impl Output {
    fn emit(&mut self, doc: Value, text: impl Into<String>) {
        self.doc = Some(doc);
        self.text = text.into();
    }

    fn flush(self) -> ExitCode {
        let mut stdout = std::io::stdout().lock();
        let res = if self.json {
            let doc = self.doc.unwrap_or(Value::Null);
            writeln!(stdout, "{doc}")
        } else if self.text.is_empty() {
            Ok(())
        } else {
            writeln!(stdout, "{}", self.text.trim_end_matches('\n'))
        };
        match res.and_then(|()| stdout.flush()) {
            Ok(()) => ExitCode::SUCCESS,
            // A closed pipe (e.g. `| head`) is not a failure of ravi.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
            Err(_) => ExitCode::from(1),
        }
    }
}

fn home_dir() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
}

fn default_ravi_dir() -> Result<PathBuf> {
    home_dir().map(|h| h.join(".ravi")).ok_or_else(|| {
        Error::InvalidInput("HOME is not set: give --vault / RAVI_VAULT and RAVI_CONFIG_DIR".into())
    })
}

fn vault_path(g: &GlobalArgs) -> Result<PathBuf> {
    match &g.vault {
        Some(p) => Ok(p.clone()),
        None => Ok(default_ravi_dir()?.join("vault.db")),
    }
}

fn config_dir() -> Result<PathBuf> {
    match std::env::var_os("RAVI_CONFIG_DIR").filter(|d| !d.is_empty()) {
        Some(d) => Ok(PathBuf::from(d)),
        None => default_ravi_dir(),
    }
}

fn cwd() -> Result<PathBuf> {
    std::env::current_dir().map_err(|e| Error::Io {
        context: "cannot read the working directory".into(),
        source: e,
    })
}

fn open_vault(g: &GlobalArgs) -> Result<Vault> {
    Vault::open(&vault_path(g)?)
}

/// The identity the command acts for, by the selection rules.
fn selected_identity(g: &GlobalArgs, vault: &Vault) -> Result<Identity> {
    let sel = config::resolve_identity(
        g.identity.as_deref(),
        &cwd()?,
        &config_dir()?,
        home_dir().as_deref(),
    )?;
    match sel {
        Selection::Explicit(s) => vault.find_identity(&s),
        Selection::File { selector, path } => vault.find_identity(&selector).map_err(|e| match e {
            Error::NotFound(m) => Error::NotFound(format!("{m} (selected by {})", path.display())),
            other => other,
        }),
        Selection::None => Err(Error::InvalidInput(
            "no identity selected: pass --identity, run `ravi identity use NAME`, or write .ravi/config.json".into(),
        )),
    }
}

fn identity_json(i: &Identity) -> Value {
    json!({ "uuid": i.uuid, "name": i.name, "inbox": i.inbox, "phone": i.phone, "created_dt": i.created_dt })
}

fn identity_text(i: &Identity) -> String {
    format!(
        "name:    {}\nuuid:    {}\ninbox:   {}\nphone:   {}\ncreated: {}",
        i.name,
        i.uuid,
        i.inbox,
        i.phone.as_deref().unwrap_or("-"),
        i.created_dt
    )
}

fn password_json(p: &PasswordEntry, with_password: bool) -> Value {
    let mut v = json!({
        "uuid": p.uuid, "domain": p.domain, "username": p.username,
        "notes": p.notes, "created_dt": p.created_dt, "updated_dt": p.updated_dt,
    });
    if with_password {
        v["password"] = json!(p.password);
    }
    v
}

fn password_text(p: &PasswordEntry) -> String {
    let mut s = format!(
        "uuid:     {}\ndomain:   {}\nusername: {}\npassword: {}",
        p.uuid,
        p.domain,
        p.username.as_deref().unwrap_or("-"),
        p.password.expose()
    );
    if let Some(n) = &p.notes {
        s.push_str(&format!("\nnotes:    {n}"));
    }
    s
}

fn secret_json(s: &SecretEntry, with_value: bool) -> Value {
    let mut v = json!({
        "uuid": s.uuid, "key": s.key, "notes": s.notes,
        "created_dt": s.created_dt, "updated_dt": s.updated_dt,
    });
    if with_value {
        v["value"] = json!(s.value);
    }
    v
}

fn generator_options(g: &GenerateArgs) -> GeneratorOptions {
    GeneratorOptions {
        length: g.length,
        special: !g.no_special,
        digits: !g.no_digits,
        exclude: g.exclude_chars.clone().unwrap_or_default(),
    }
}

/// The password given by the user, or `None` if none was given.
fn given_password(input: &PasswordInput) -> Result<Option<SecretString>> {
    if let Some(p) = &input.password {
        return Ok(Some(SecretString::from(p.as_str())));
    }
    if input.password_stdin {
        return input::secret_from_stdin("password").map(Some);
    }
    if let Some(f) = &input.password_file {
        return input::secret_from_file(f, "password").map(Some);
    }
    Ok(None)
}

fn run(cli: &Cli, out: &mut Output) -> Result<()> {
    let g = &cli.global;
    match &cli.command {
        Command::Init(a) => init(g, a, out),
        Command::Identity(c) => identity(g, c, out),
        Command::Get(c) => {
            let vault = open_vault(g)?;
            let ident = selected_identity(g, &vault)?;
            match c {
                GetCommand::Email => out.emit(json!({ "email": ident.inbox }), ident.inbox.clone()),
                GetCommand::Phone => out.emit(
                    json!({ "phone_number": ident.phone }),
                    ident.phone.clone().unwrap_or_default(),
                ),
            }
            Ok(())
        }
        // Generating needs no vault.
        Command::Passwords(PasswordsCommand::Generate { generator }) => generate(generator, out),
        Command::Passwords(c) => with_identity(g, |iv| passwords(iv, c, out)),
        Command::Secrets(c) => with_identity(g, |iv| secrets(iv, c, out)),
        Command::Totp(c) => with_identity(g, |iv| totp(iv, c, out)),
    }
}

fn generate(generator: &GenerateArgs, out: &mut Output) -> Result<()> {
    let p = vault_core::generate_password(&generator_options(generator))?;
    out.emit(json!({ "password": p.as_str() }), p.as_str());
    Ok(())
}

fn init(g: &GlobalArgs, a: &InitArgs, out: &mut Output) -> Result<()> {
    let d = KdfParams::DEFAULT;
    let kdf = KdfParams {
        memory_kib: a
            .kdf_memory_mib
            .map_or(d.memory_kib, |m| m.saturating_mul(1024)),
        iterations: a.kdf_iterations.unwrap_or(d.iterations),
        parallelism: a.kdf_parallelism.unwrap_or(d.parallelism),
    };
    kdf.validate()?;
    let opts = InitOptions {
        kdf,
        inbox_domain: a
            .inbox_domain
            .clone()
            .unwrap_or_else(|| vault_core::DEFAULT_INBOX_DOMAIN.into()),
    };
    let path = vault_path(g)?;
    if kdf.is_weaker_than_default() {
        eprintln!(
            "ravi: warning: Argon2id parameters ({} MiB, t={}) are weaker than the default (64 MiB, t=3)",
            kdf.memory_kib / 1024,
            kdf.iterations
        );
    }
    let pass = input::passphrase(g.passphrase_file.as_deref(), true)?;
    let vault = Vault::init(&path, &pass, &opts)?;
    let info = vault.info();
    out.emit(
        json!({
            "vault": info.path, "vault_id": info.vault_id, "inbox_domain": info.inbox_domain,
            "kdf": { "algorithm": "argon2id", "memory_kib": info.kdf.memory_kib,
                     "iterations": info.kdf.iterations, "parallelism": info.kdf.parallelism },
            "created_dt": info.created_dt,
        }),
        format!(
            "Created vault {} at {} (Argon2id {} MiB, t={}, p={})",
            info.vault_id,
            info.path.display(),
            info.kdf.memory_kib / 1024,
            info.kdf.iterations,
            info.kdf.parallelism
        ),
    );
    Ok(())
}

fn identity(g: &GlobalArgs, c: &IdentityCommand, out: &mut Output) -> Result<()> {
    let vault = open_vault(g)?;
    match c {
        IdentityCommand::Create { name, email, phone } => {
            let pass = input::passphrase(g.passphrase_file.as_deref(), false)?;
            let unlocked = vault.unlock(&pass)?;
            let ident = unlocked.create_identity(&NewIdentity {
                name: name.clone(),
                email: email.clone(),
                phone: phone.clone(),
            })?;
            out.emit(identity_json(&ident), identity_text(&ident));
        }
        IdentityCommand::List => {
            let all = vault.identities()?;
            let text = all
                .iter()
                .map(|i| {
                    format!(
                        "{}\t{}\t{}\t{}",
                        i.name,
                        i.inbox,
                        i.phone.as_deref().unwrap_or("-"),
                        i.uuid
                    )
                })
                .collect::<Vec<_>>()
                .join("\n");
            out.emit(Value::Array(all.iter().map(identity_json).collect()), text);
        }
        IdentityCommand::Show { selector } => {
            let ident = match selector {
                Some(s) => vault.find_identity(s)?,
                None => selected_identity(g, &vault)?,
            };
            out.emit(identity_json(&ident), identity_text(&ident));
        }
        IdentityCommand::Use { selector, local } => {
            let ident = vault.find_identity(selector)?;
            let path = if *local {
                cwd()?.join(config::LOCAL_DIR).join(config::CONFIG_FILE)
            } else {
                config_dir()?.join(config::CONFIG_FILE)
            };
            config::write_config(
                &path,
                &IdentityConfig {
                    identity_uuid: Some(ident.uuid.clone()),
                    identity_name: Some(ident.name.clone()),
                },
            )?;
            out.emit(
                json!({ "identity_uuid": ident.uuid, "identity_name": ident.name, "config_path": path }),
                format!("Using identity {} ({}) via {}", ident.name, ident.uuid, path.display()),
            );
        }
        IdentityCommand::Delete { selector } => {
            let pass = input::passphrase(g.passphrase_file.as_deref(), false)?;
            let unlocked = vault.unlock(&pass)?;
            let ident = unlocked.delete_identity(selector)?;
            let mut doc = identity_json(&ident);
            doc["deleted"] = json!(true);
            out.emit(
                doc,
                format!("Deleted identity {} ({})", ident.name, ident.uuid),
            );
        }
    }
    Ok(())
}

/// Opens the vault, unlocks it and opens the selected identity's records.
fn with_identity(g: &GlobalArgs, f: impl FnOnce(&IdentityVault<'_>) -> Result<()>) -> Result<()> {
    let vault = open_vault(g)?;
    let ident = selected_identity(g, &vault)?;
    let pass = input::passphrase(g.passphrase_file.as_deref(), false)?;
    let unlocked = vault.unlock(&pass)?;
    let iv = unlocked.open_identity(&ident)?;
    f(&iv)
}

fn passwords(iv: &IdentityVault<'_>, c: &PasswordsCommand, out: &mut Output) -> Result<()> {
    match c {
        PasswordsCommand::Create {
            domain,
            username,
            input,
            generator,
            notes,
        } => {
            let password = match given_password(input)? {
                Some(p) => p,
                None => SecretString::from(
                    vault_core::generate_password(&generator_options(generator))?.as_str(),
                ),
            };
            let e = iv.create_password(&NewPassword {
                domain: domain.clone(),
                username: username.clone(),
                password,
                notes: notes.clone(),
            })?;
            out.emit(password_json(&e, true), password_text(&e));
        }
        PasswordsCommand::List => {
            let all = iv.passwords()?;
            let text = all
                .iter()
                .map(|p| {
                    format!(
                        "{}\t{}\t{}",
                        p.domain,
                        p.username.as_deref().unwrap_or("-"),
                        p.uuid
                    )
                })
                .collect::<Vec<_>>()
                .join("\n");
            out.emit(
                Value::Array(all.iter().map(|p| password_json(p, false)).collect()),
                text,
            );
        }
        PasswordsCommand::Get { selector, username } => {
            let e = iv.get_password(selector, username.as_deref())?;
            out.emit(password_json(&e, true), password_text(&e));
        }
        PasswordsCommand::Edit {
            selector,
            username,
            new_domain,
            new_username,
            input,
            generator,
            notes,
        } => {
            let password = match given_password(input)? {
                Some(p) => Some(p),
                None if input.generate => Some(SecretString::from(
                    vault_core::generate_password(&generator_options(generator))?.as_str(),
                )),
                None => None,
            };
            let edit = PasswordEdit {
                domain: new_domain.clone(),
                username: new_username.clone(),
                password,
                notes: notes.clone(),
            };
            let e = iv.edit_password(selector, username.as_deref(), &edit)?;
            out.emit(password_json(&e, true), password_text(&e));
        }
        PasswordsCommand::Delete { selector, username } => {
            let e = iv.delete_password(selector, username.as_deref())?;
            let mut doc = password_json(&e, false);
            doc["deleted"] = json!(true);
            out.emit(doc, format!("Deleted password {} for {}", e.uuid, e.domain));
        }
        PasswordsCommand::Generate { generator } => generate(generator, out)?,
    }
    Ok(())
}

fn secrets(iv: &IdentityVault<'_>, c: &SecretsCommand, out: &mut Output) -> Result<()> {
    match c {
        SecretsCommand::Set {
            key,
            value,
            value_stdin,
            value_file,
            notes,
        } => {
            let v = if let Some(v) = value {
                SecretString::from(v.as_str())
            } else if *value_stdin {
                input::secret_from_stdin("value")?
            } else if let Some(f) = value_file {
                input::secret_from_file(f, "value")?
            } else {
                return Err(Error::InvalidInput(
                    "no value given: pass VALUE, --value-stdin or --value-file".into(),
                ));
            };
            let (e, created) = iv.set_secret(key, &v, notes.as_deref())?;
            let mut doc = secret_json(&e, true);
            doc["created"] = json!(created);
            out.emit(
                doc,
                format!(
                    "{} secret {}",
                    if created { "Created" } else { "Updated" },
                    e.key
                ),
            );
        }
        SecretsCommand::Get { key } => {
            let e = iv.get_secret(key)?;
            out.emit(secret_json(&e, true), e.value.expose());
        }
        SecretsCommand::List => {
            let all = iv.secrets()?;
            let text = all
                .iter()
                .map(|s| format!("{}\t{}", s.key, s.uuid))
                .collect::<Vec<_>>()
                .join("\n");
            out.emit(
                Value::Array(all.iter().map(|s| secret_json(s, false)).collect()),
                text,
            );
        }
        SecretsCommand::Delete { selector } => {
            let e = iv.delete_secret(selector)?;
            let mut doc = secret_json(&e, false);
            doc["deleted"] = json!(true);
            out.emit(doc, format!("Deleted secret {}", e.key));
        }
    }
    Ok(())
}

fn totp_json(e: &TotpEntry) -> Value {
    json!({
        "uuid": e.uuid, "name": e.name, "issuer": e.issuer, "account": e.account,
        "algorithm": e.algorithm, "digits": e.digits, "period": e.period,
        "created_dt": e.created_dt, "updated_dt": e.updated_dt,
    })
}

fn totp_text(e: &TotpEntry) -> String {
    format!(
        "name:      {}\nuuid:      {}\nissuer:    {}\naccount:   {}\nalgorithm: {}\ndigits:    {}\nperiod:    {}s",
        e.name,
        e.uuid,
        e.issuer.as_deref().unwrap_or("-"),
        e.account.as_deref().unwrap_or("-"),
        e.algorithm,
        e.digits,
        e.period
    )
}

fn totp_params(a: &TotpAddArgs) -> Result<TotpParams> {
    let TotpAddArgs {
        uri,
        uri_stdin,
        secret,
        secret_stdin,
        algorithm,
        digits,
        period,
        issuer,
        account,
        ..
    } = a;
    if let Some(u) = uri {
        return TotpParams::from_uri(u);
    }
    if *uri_stdin {
        return TotpParams::from_uri(input::secret_from_stdin("URI")?.expose());
    }
    let b32 = match (secret, secret_stdin) {
        (Some(s), _) => SecretString::from(s.as_str()),
        (None, true) => input::secret_from_stdin("secret")?,
        (None, false) => {
            return Err(Error::InvalidInput(
                "no TOTP seed given: pass --uri, --uri-stdin, --secret or --secret-stdin".into(),
            ));
        }
    };
    let mut p = TotpParams::with_defaults(vault_core::totp::decode_base32_secret(b32.expose())?);
    if let Some(a) = algorithm {
        p.algorithm = TotpAlgorithm::parse(a)?;
        if p.algorithm == TotpAlgorithm::Steam {
            p.digits = 5;
        }
    }
    if let Some(d) = digits {
        p.digits = *d;
    }
    if let Some(s) = period {
        p.period = *s;
    }
    p.issuer = issuer.clone().filter(|i| !i.is_empty());
    p.account = account.clone().filter(|a| !a.is_empty());
    p.validate()?;
    Ok(p)
}

fn totp(iv: &IdentityVault<'_>, c: &TotpCommand, out: &mut Output) -> Result<()> {
    match c {
        TotpCommand::Add(a) => {
            let params = totp_params(a)?;
            if params.is_weak_secret() {
                eprintln!(
                    "ravi: warning: the TOTP secret has only {} bits; 128 or more is recommended",
                    params.secret.len() * 8
                );
            }
            let e = iv.add_totp(a.name.as_deref(), &params)?;
            out.emit(totp_json(&e), totp_text(&e));
        }
        TotpCommand::Code {
            name,
            min_validity,
            at,
        } => {
            let code = iv.totp_code(name, *at, *min_validity)?;
            out.emit(
                json!({
                    "name": code.name, "code": code.code, "digits": code.digits,
                    "period": code.period, "algorithm": code.algorithm,
                    "remaining_seconds": code.remaining_seconds, "valid_until": code.valid_until,
                }),
                code.code.clone(),
            );
        }
        TotpCommand::List => {
            let all = iv.totps()?;
            let text = all
                .iter()
                .map(|e| {
                    format!(
                        "{}\t{}\t{}",
                        e.name,
                        e.issuer.as_deref().unwrap_or("-"),
                        e.uuid
                    )
                })
                .collect::<Vec<_>>()
                .join("\n");
            out.emit(Value::Array(all.iter().map(totp_json).collect()), text);
        }
        TotpCommand::Show { name } => {
            let e = iv.get_totp(name)?;
            out.emit(totp_json(&e), totp_text(&e));
        }
        TotpCommand::Uri { name } => {
            let uri = iv.totp_uri(name)?;
            out.emit(json!({ "uri": uri }), uri.expose());
        }
        TotpCommand::Delete { name } => {
            let e = iv.delete_totp(name)?;
            let mut doc = totp_json(&e);
            doc["deleted"] = json!(true);
            out.emit(doc, format!("Deleted TOTP {}", e.name));
        }
    }
    Ok(())
}
