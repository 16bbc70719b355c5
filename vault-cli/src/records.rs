//! Commands on an identity's records: passwords, secrets, TOTP.

use serde_json::{Value, json};
use vault_core::{
    Error, IdentityVault, IfExists, NewPassword, PasswordEdit, PasswordEntry, Result, SecretEntry,
    SecretString, TotpAlgorithm, TotpEntry, TotpParams,
};

use crate::args::{PasswordInput, PasswordsCommand, SecretsCommand, TotpAddArgs, TotpCommand};
use crate::{Output, generate, generator_options, input};

/// A record's JSON document; listings leave out the secret field.
fn record_json<T: serde::Serialize>(entry: &T, secret_field: Option<&str>) -> Result<Value> {
    let mut v = crate::to_json(entry)?;
    if let (Some(field), Some(map)) = (secret_field, v.as_object_mut()) {
        map.remove(field);
    }
    Ok(v)
}

fn password_json(p: &PasswordEntry, with_password: bool) -> Result<Value> {
    record_json(p, (!with_password).then_some("password"))
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

fn secret_json(s: &SecretEntry, with_value: bool) -> Result<Value> {
    record_json(s, (!with_value).then_some("value"))
}

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

pub fn passwords(iv: &IdentityVault<'_>, c: &PasswordsCommand, out: &mut Output) -> Result<()> {
    match c {
        PasswordsCommand::Create {
            domain,
            username,
            input,
            generator,
            notes,
            update,
            if_absent,
        } => {
            let given = given_password(input)?;
            let generated = given.is_none();
            let password = match given {
                Some(p) => p,
                None => SecretString::from(
                    vault_core::generate_password(&generator_options(generator))?.as_str(),
                ),
            };
            let if_exists = match (update, if_absent) {
                (true, _) => IfExists::Update,
                (_, true) => IfExists::Keep,
                _ => IfExists::Conflict,
            };
            let (e, _) = iv
                .create_password_with(
                    &NewPassword {
                        domain: domain.clone(),
                        username: username.clone(),
                        password,
                        notes: notes.clone(),
                    },
                    if_exists,
                )
                .map_err(|e| match e {
                    Error::Conflict(m) if m.contains("exists already") => Error::Conflict(format!(
                        "{m} (--update replaces its password, --if-absent returns it)"
                    )),
                    other => other,
                })?;
            // The password is data only when ravi made it up.
            let text = if generated {
                e.password.expose().to_string()
            } else {
                format!("Created password for {} ({})", e.domain, e.uuid)
            };
            if generated {
                out.emit(password_json(&e, true)?, text);
            } else {
                out.said(password_json(&e, true)?, text);
            }
        }
        PasswordsCommand::List => {
            out.stream_list(&iv.password_listing()?, |p| {
                format!(
                    "{}\t{}\t{}",
                    p.domain(),
                    p.username().unwrap_or("-"),
                    p.uuid()
                )
            })?;
        }
        PasswordsCommand::Get { selector, username } => {
            let e = iv.get_password(selector, username.as_deref())?;
            out.emit(password_json(&e, true)?, password_text(&e));
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
            out.emit(password_json(&e, true)?, password_text(&e));
        }
        PasswordsCommand::Delete { selector, username } => {
            let e = iv.delete_password(selector, username.as_deref())?;
            let mut doc = password_json(&e, false)?;
            doc["deleted"] = json!(true);
            out.said(doc, format!("Deleted password {} for {}", e.uuid, e.domain));
        }
        PasswordsCommand::Generate { generator } => generate(generator, out)?,
    }
    Ok(())
}

pub fn secrets(iv: &IdentityVault<'_>, c: &SecretsCommand, out: &mut Output) -> Result<()> {
    match c {
        SecretsCommand::Set {
            key,
            value,
            value_stdin,
            value_file,
            notes,
            allow_empty,
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
            if !crate::refs::is_env_name(key) {
                eprintln!(
                    "ravi: warning: {key:?} is not an environment variable name: `ravi run --all-secrets` needs --env NAME=ravi://secrets/… for it"
                );
            }
            input::check_value_len(v.expose().len())?;
            if v.expose().is_empty() && !allow_empty {
                return Err(Error::InvalidInput(
                    "the value is empty (from empty input?); pass --allow-empty to store it".into(),
                ));
            }
            let (e, created) = iv.set_secret(key, &v, notes.as_deref())?;
            let mut doc = secret_json(&e, true)?;
            doc["created"] = json!(created);
            out.said(
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
            out.emit(secret_json(&e, true)?, e.value.expose());
        }
        SecretsCommand::List => {
            out.stream_list(&iv.secret_listing()?, |s| {
                format!("{}\t{}", s.key(), s.uuid())
            })?;
        }
        SecretsCommand::Delete { selector } => {
            let e = iv.delete_secret(selector)?;
            let mut doc = secret_json(&e, false)?;
            doc["deleted"] = json!(true);
            out.said(doc, format!("Deleted secret {}", e.key));
        }
    }
    Ok(())
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
    let mut p = TotpParams::from_base32_secret(b32.expose())?;
    if let Some(a) = algorithm {
        p.set_algorithm(TotpAlgorithm::parse(a)?);
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

pub fn totp(iv: &IdentityVault<'_>, c: &TotpCommand, out: &mut Output) -> Result<()> {
    match c {
        TotpCommand::Add(a) => {
            let params = totp_params(a)?;
            if params.is_weak_secret() {
                eprintln!(
                    "ravi: warning: the TOTP secret has only {} bits; 128 or more is recommended",
                    params.secret.len() * 8
                );
            }
            let if_exists = if a.update {
                IfExists::Update
            } else {
                IfExists::Conflict
            };
            let (e, _) = iv
                .add_totp_with(a.name.as_deref(), &params, if_exists)
                .map_err(|e| match e {
                    Error::Conflict(m) if m.contains("exists already") => {
                        Error::Conflict(format!("{m} (--update replaces it)"))
                    }
                    other => other,
                })?;
            out.emit(crate::to_json(&e)?, totp_text(&e));
        }
        TotpCommand::Code {
            name,
            min_validity,
            at,
        } => {
            let code = iv.totp_code(name, *at, *min_validity)?;
            out.emit(crate::to_json(&code)?, code.code.clone());
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
            out.emit(crate::to_json(&all)?, text);
        }
        TotpCommand::Show { name } => {
            let e = iv.get_totp(name)?;
            out.emit(crate::to_json(&e)?, totp_text(&e));
        }
        TotpCommand::Uri { name } => {
            let uri = iv.totp_uri(name)?;
            out.emit(json!({ "uri": uri.expose() }), uri.expose());
        }
        TotpCommand::Delete { name } => {
            let e = iv.delete_totp(name)?;
            let mut doc = crate::to_json(&e)?;
            doc["deleted"] = json!(true);
            out.said(doc, format!("Deleted TOTP {}", e.name));
        }
    }
    Ok(())
}
