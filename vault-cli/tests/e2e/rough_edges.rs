//! Rough edges a new user hit, each with its exit code.

use crate::common::*;

/// Creating a password that exists (same domain and username) is a
/// conflict naming its uuid; --update replaces it, --if-absent returns it;
/// `totp add --update` replaces a seed.
#[test]
fn creates_are_idempotent_on_request() {
    let (env, _) = Env::with_identity("alice");
    let first = env
        .run(&[
            "passwords",
            "create",
            "example.com",
            "--username",
            "u",
            "--password",
            "p1",
            "--json",
        ])
        .ok()
        .json();
    let uuid = first["uuid"].as_str().unwrap();
    let r = env
        .run(&[
            "passwords",
            "create",
            "https://www.example.com/login",
            "--username",
            "u",
            "--password",
            "p2",
        ])
        .fails(EXIT_CONFLICT);
    assert!(r.stderr.contains(uuid), "{}", r.stderr);
    assert!(r.stderr.contains("--update"), "{}", r.stderr);
    // another username is another entry
    env.run(&[
        "passwords",
        "create",
        "example.com",
        "--username",
        "v",
        "--password",
        "p3",
    ])
    .ok();
    let kept = env
        .run(&[
            "passwords",
            "create",
            "example.com",
            "--username",
            "u",
            "--password",
            "p9",
            "--if-absent",
            "--json",
        ])
        .ok()
        .json();
    assert_eq!(kept["uuid"], first["uuid"]);
    assert_eq!(kept["password"], "p1");
    let updated = env
        .run(&[
            "passwords",
            "create",
            "example.com",
            "--username",
            "u",
            "--password",
            "p2",
            "--update",
            "--json",
        ])
        .ok()
        .json();
    assert_eq!(updated["uuid"], first["uuid"]);
    assert_eq!(updated["password"], "p2");
    assert_eq!(updated["created_dt"], first["created_dt"]);
    let got = env
        .run(&[
            "passwords",
            "get",
            "example.com",
            "--username",
            "u",
            "--json",
        ])
        .ok()
        .json();
    assert_eq!(got["password"], "p2");
    env.run(&[
        "passwords",
        "create",
        "example.com",
        "--username",
        "u",
        "--password",
        "x",
        "--update",
        "--if-absent",
    ])
    .fails(EXIT_INVALID);

    let seed = env
        .run(&[
            "totp",
            "add",
            "github",
            "--secret",
            "JBSWY3DPEHPK3PXP",
            "--json",
        ])
        .ok()
        .json();
    env.run(&["totp", "add", "github", "--secret", "GEZDGNBVGY3TQOJQ"])
        .fails(EXIT_CONFLICT);
    let replaced = env
        .run(&[
            "totp",
            "add",
            "github",
            "--secret",
            "GEZDGNBVGY3TQOJQ",
            "--update",
            "--json",
        ])
        .ok()
        .json();
    assert_eq!(replaced["uuid"], seed["uuid"]);
    let uri = env.run(&["totp", "uri", "github", "--json"]).ok().json();
    assert!(
        uri["uri"].as_str().unwrap().contains("GEZDGNBVGY3TQOJQ"),
        "{uri}"
    );
}

/// An empty value (empty stdin, /dev/null) is refused unless --allow-empty.
#[test]
fn empty_values_need_allow_empty() {
    let (env, _) = Env::with_identity("alice");
    env.run_stdin(&["secrets", "set", "E", "--value-stdin"], "")
        .fails(EXIT_INVALID);
    env.run(&["secrets", "set", "E", "--value-file", "/dev/null"])
        .fails(EXIT_INVALID);
    env.run(&["secrets", "get", "E"]).fails(EXIT_NOT_FOUND);
    env.run_stdin(
        &["secrets", "set", "E", "--value-stdin", "--allow-empty"],
        "",
    )
    .ok();
    let got = env.run(&["secrets", "get", "E", "--json"]).ok().json();
    assert_eq!(got["value"], "");
}

/// RAVI_IDENTITY selects the identity: after --identity, before config files.
#[test]
fn ravi_identity_ranks_between_the_flag_and_config_files() {
    let (env, _) = Env::with_identity("alice");
    env.run(&["identity", "create", "--name", "bob"]).ok();
    env.run(&["identity", "create", "--name", "carol"]).ok();
    env.run(&["--identity", "bob", "secrets", "set", "WHO", "bob"])
        .ok();
    env.run(&["--identity", "carol", "secrets", "set", "WHO", "carol"])
        .ok();
    env.run(&["secrets", "set", "WHO", "alice"]).ok();
    let who = |extra: &[&str], var: Option<&str>| {
        let mut c = env.command();
        if let Some(v) = var {
            c.env("RAVI_IDENTITY", v);
        }
        c.args(extra).args(["secrets", "get", "WHO"]);
        run_command(&mut c).ok().stdout.trim().to_string()
    };
    assert_eq!(who(&[], None), "alice");
    assert_eq!(who(&[], Some("bob")), "bob");
    assert_eq!(who(&["--identity", "carol"], Some("bob")), "carol");
}

/// Usage errors under --json keep the whole message.
#[test]
fn json_usage_errors_name_the_argument() {
    let env = Env::new();
    let r = env.run(&["secrets", "set", "--json"]).fails(EXIT_INVALID);
    let m = r.error_json()["error"]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(m.contains("<KEY>"), "{m}");
    assert!(m.contains("required"), "{m}");
}

/// A credential file that is missing, or a directory, is a usage error.
#[test]
fn missing_credential_files_are_exit_2() {
    let (env, _) = Env::with_identity("alice");
    let missing = env.work.join("missing");
    let dir = env.work.clone();
    for flag in ["--passphrase-file", "--session-file", "--agent-key-file"] {
        for path in [&missing, &dir] {
            let r = env
                .run(&[flag, path.to_str().unwrap(), "secrets", "list"])
                .fails(EXIT_INVALID);
            assert!(
                r.stderr.contains("no ") || r.stderr.contains("directory"),
                "{flag}: {}",
                r.stderr
            );
        }
    }
    let mut c = env.command();
    c.env_remove("RAVI_PASSPHRASE")
        .env("RAVI_AGENT_KEY_FILE", &missing)
        .args(["secrets", "list"]);
    run_command(&mut c).fails(EXIT_INVALID);
}

/// The "locked" error names every way in.
#[test]
fn the_locked_hint_names_every_way_in() {
    let (env, _) = Env::with_identity("alice");
    let mut c = env.command();
    c.env_remove("RAVI_PASSPHRASE").args(["secrets", "list"]);
    let r = run_command(&mut c).fails(EXIT_LOCKED);
    for way in [
        "RAVI_SESSION",
        "RAVI_AGENT_KEY_FILE",
        "--passphrase-file",
        "RAVI_PASSPHRASE",
    ] {
        assert!(r.stderr.contains(way), "{way}: {}", r.stderr);
    }
}

/// A --ttl without a unit is refused.
#[test]
fn a_ttl_needs_a_unit() {
    let env = Env::new();
    let r = env.run(&["unlock", "--ttl", "5"]).fails(EXIT_INVALID);
    assert!(r.stderr.contains("unit"), "{}", r.stderr);
    env.run(&["unlock", "--ttl", "5m"]).ok();
}

/// Data on stdout, talk on stderr: `$(…)` captures only data; --quiet
/// silences the talk; `passwords create` prints the password only when
/// ravi generated it.
#[test]
fn data_on_stdout_talk_on_stderr() {
    let (env, _) = Env::with_identity("alice");
    let r = env.run(&["secrets", "set", "K", "v"]).ok();
    assert_eq!(r.stdout, "");
    assert!(r.stderr.contains("Created secret K"), "{}", r.stderr);
    let r = env.run(&["secrets", "set", "K", "v2", "-q"]).ok();
    assert_eq!((r.stdout.as_str(), r.stderr.as_str()), ("", ""));
    let r = env.run(&["secrets", "get", "K"]).ok();
    assert_eq!(r.stdout, "v2\n");
    // a given password is not echoed; a generated one is the only output
    let r = env
        .run(&[
            "passwords",
            "create",
            "a.com",
            "--username",
            "u",
            "--password",
            "given-pw",
        ])
        .ok();
    assert_eq!(r.stdout, "");
    assert!(!r.stderr.contains("given-pw"), "{}", r.stderr);
    let r = env.run(&["passwords", "create", "b.com", "-q"]).ok();
    let generated = r.stdout.trim();
    assert_eq!(generated.len(), 16, "{}", r.stdout);
    let got = env
        .run(&["passwords", "get", "b.com", "--json"])
        .ok()
        .json();
    assert_eq!(got["password"], generated);
    // JSON is unchanged: one document on stdout
    let j = env.run(&["secrets", "delete", "K", "--json"]).ok().json();
    assert_eq!(j["deleted"], true);
}

/// Base32 errors say what is wrong (never echoing the secret), and `totp
/// uri` of a seed added with --secret keeps its name as the label.
#[test]
fn base32_errors_and_uri_labels() {
    let (env, _) = Env::with_identity("alice");
    let r = env
        .run(&["totp", "add", "x", "--secret", "JBSWY3DPE"])
        .fails(EXIT_INVALID);
    assert!(r.stderr.contains("length"), "{}", r.stderr);
    assert!(!r.stderr.contains("alphabet"), "{}", r.stderr);
    let r = env
        .run(&["totp", "add", "x", "--secret", "JBSW!3DP"])
        .fails(EXIT_INVALID);
    assert!(r.stderr.contains("character 5"), "{}", r.stderr);
    env.run(&["totp", "add", "gh", "--secret", "JBSWY3DPEHPK3PXP"])
        .ok();
    let uri = env.run(&["totp", "uri", "gh"]).ok().stdout;
    assert!(uri.starts_with("otpauth://totp/gh?secret="), "{uri}");
}

/// Names refuse control, zero-width and bidirectional-override characters;
/// a secret key that is not a variable name gets a warning.
#[test]
fn names_refuse_invisible_characters() {
    let (env, _) = Env::with_identity("alice");
    env.run(&["secrets", "set", "API\u{200B}KEY", "v"])
        .fails(EXIT_INVALID);
    env.run(&["secrets", "set", "KEY\u{202E}txt", "v"])
        .fails(EXIT_INVALID);
    env.run(&[
        "totp",
        "add",
        "git\u{200D}hub",
        "--secret",
        "JBSWY3DPEHPK3PXP",
    ])
    .fails(EXIT_INVALID);
    env.run(&[
        "passwords",
        "create",
        "exa\u{200B}mple.com",
        "--password",
        "p",
    ])
    .fails(EXIT_INVALID);
    env.run(&["identity", "create", "--name", "bob\u{202E}"])
        .fails(EXIT_INVALID);
    let r = env.run(&["secrets", "set", "my-key", "v"]).ok();
    assert!(
        r.stderr.contains("not an environment variable name"),
        "{}",
        r.stderr
    );
    let r = env.run(&["secrets", "set", "MY_KEY", "v"]).ok();
    assert!(!r.stderr.contains("warning"), "{}", r.stderr);
}

/// Names are NFC-normalised before the blind index: two spellings of
/// "café" are one key, one TOTP name, one reference.
#[test]
fn two_spellings_are_one_name() {
    let (env, _) = Env::with_identity("alice");
    let (nfc, nfd) = ("caf\u{e9}", "cafe\u{301}");
    env.run_stdin(&["secrets", "set", nfd, "--value-stdin"], "first")
        .ok();
    env.run_stdin(&["secrets", "set", nfc, "--value-stdin"], "second")
        .ok();
    let all = env.run(&["secrets", "list", "--json"]).ok().json();
    assert_eq!(all.as_array().unwrap().len(), 1, "{all}");
    assert_eq!(all[0]["key"], nfc);
    assert_eq!(
        env.run(&["read", &format!("ravi://secrets/{nfd}")])
            .ok()
            .stdout
            .trim(),
        "second"
    );
    env.run(&["totp", "add", nfd, "--secret", "JBSWY3DPEHPK3PXP"])
        .ok();
    env.run(&[
        "totp",
        "add",
        &nfc.to_uppercase(),
        "--secret",
        "JBSWY3DPEHPK3PXP",
    ])
    .fails(EXIT_CONFLICT);
    env.run(&["totp", "code", nfc]).ok();
}

/// Options that would do nothing are refused, not ignored.
#[test]
fn options_that_do_nothing_are_refused() {
    let env = Env::new();
    let key = env.work.join("a.key");
    let r = env
        .run(&[
            "agent",
            "keygen",
            "--identity",
            "x",
            "--out",
            key.to_str().unwrap(),
        ])
        .fails(EXIT_INVALID);
    assert!(r.stderr.contains("--identity does nothing"), "{}", r.stderr);
    assert!(!key.exists());
    env.run(&[
        "passwords",
        "generate",
        "--passphrase-file",
        "/etc/hostname",
    ])
    .fails(EXIT_INVALID);
    env.run(&["identity", "list", "--session-file", "/etc/hostname"])
        .fails(EXIT_INVALID);
    env.run(&["vault", "info", "--identity", "x"])
        .fails(EXIT_INVALID);
    env.run(&["passwords", "generate"]).ok();
    // and each command's help offers only the global options it uses
    let keygen = env.run(&["agent", "keygen", "--help"]).ok().stdout;
    for absent in [
        "--identity",
        "--session-file",
        "--agent-key-file",
        "--vault",
    ] {
        assert!(!keygen.contains(absent), "{absent} in {keygen}");
    }
    let help = env.run(&["help", "vault", "info"]).ok().stdout;
    assert!(
        help.contains("--vault") && !help.contains("--identity"),
        "{help}"
    );
    let get = env.run(&["secrets", "get", "--help"]).ok().stdout;
    for present in [
        "--identity",
        "--session-file",
        "--agent-key-file",
        "--vault",
        "--json",
    ] {
        assert!(get.contains(present), "{present} not in {get}");
    }
}

/// Bad input to the commands of this round: exit 2, nothing started.
#[test]
fn bad_input_to_new_commands_is_exit_2() {
    let (env, _) = Env::with_identity("alice");
    let missing = env.work.join("missing");
    let m = missing.to_str().unwrap();
    for args in [
        vec!["inject", "-i", m],
        vec!["run", "--env", "NO_EQUALS_SIGN", "--", "true"],
        vec!["run", "--env", "BAD-NAME=ravi://secrets/K", "--", "true"],
        vec!["run", "--env-file", m, "--", "true"],
        vec!["run", "--env", "X=https://not-a-ref", "--", "true"],
        vec![
            "login",
            "--server",
            "ftp://example.com",
            "--token-file",
            "/etc/hostname",
        ],
        vec!["login", "--server", "http://127.0.0.1:1", "--token-file", m],
        vec![
            "serve",
            "--data",
            m,
            "--tls-cert",
            m,
            "--tls-key",
            m,
            "--listen",
            "127.0.0.1:0",
        ],
        vec!["import", "otpauth", m],
    ] {
        env.run(&args).fails(EXIT_INVALID);
    }
    env.run_stdin(
        &["login", "--server", "http://127.0.0.1:1", "--token-stdin"],
        "\n",
    )
    .fails(EXIT_INVALID);
    // a CA file that is not PEM
    let junk = env.work.join("ca.pem");
    std::fs::write(&junk, "not a certificate").unwrap();
    let mut c = env.command();
    c.env_remove("RAVI_VAULT")
        .env("RAVI_SERVER", "https://127.0.0.1:1")
        .env("RAVI_TOKEN", "ravi_x")
        .env("RAVI_CA_FILE", &junk)
        .args(["vault", "info"]);
    run_command(&mut c).fails(EXIT_INVALID);
}
