//! Sessions, agent keys, grants, revocation and passphrase change.

use crate::common::*;

fn no_pass(env: &Env) -> std::process::Command {
    let mut c = env.command();
    c.env_remove("RAVI_PASSPHRASE");
    c
}

fn with_session(env: &Env, token: &str, args: &[&str]) -> Run {
    let mut c = no_pass(env);
    c.env("RAVI_SESSION", token).args(args);
    run_command(&mut c)
}

fn as_agent(env: &Env, key_file: &std::path::Path, args: &[&str]) -> Run {
    let mut c = no_pass(env);
    c.env("RAVI_AGENT_KEY_FILE", key_file).args(args);
    run_command(&mut c)
}

#[test]
fn session_token_lifecycle() {
    let (env, _) = Env::with_identity("alice");
    let plain = env.run(&["unlock"]).ok();
    let token = plain.stdout.trim().to_string();
    assert!(
        token.starts_with("ravi_session_") && !token.contains(' '),
        "{token}"
    );
    let j = env.run(&["unlock", "--ttl", "10m", "--json"]).ok().json();
    assert!(j["session"].as_str().unwrap().starts_with("ravi_session_"));
    assert!(j["expires_at"].as_str().unwrap().ends_with('Z'));

    // 50 commands on the token, no passphrase anywhere
    for i in 0..10 {
        with_session(
            &env,
            &token,
            &["secrets", "set", &format!("K{i}"), &format!("v{i}")],
        )
        .ok();
        assert_eq!(
            with_session(&env, &token, &["secrets", "get", &format!("K{i}")])
                .ok()
                .stdout
                .trim(),
            format!("v{i}")
        );
        with_session(
            &env,
            &token,
            &["passwords", "create", &format!("site{i}.com"), "--json"],
        )
        .ok();
        with_session(
            &env,
            &token,
            &["passwords", "get", &format!("site{i}.com"), "--json"],
        )
        .ok();
        with_session(&env, &token, &["totp", "list", "--json"]).ok();
    }
    // the token also works from a file, and for owner operations
    let tf = env.dir.path().join("token");
    std::fs::write(&tf, format!("{token}\n")).unwrap();
    let mut c = no_pass(&env);
    c.args([
        "--session-file",
        tf.to_str().unwrap(),
        "identity",
        "create",
        "--name",
        "bob",
    ]);
    run_command(&mut c).ok();

    // lock revokes every session
    let r = with_session(&env, &token, &["lock", "--json"]).ok().json();
    assert_eq!(r["revoked_sessions"], 2);
    let e = with_session(&env, &token, &["secrets", "get", "K1", "--json"])
        .fails(EXIT_LOCKED)
        .error_json();
    assert_eq!(e["error"]["code"], "locked");
    let other = j["session"].as_str().unwrap();
    with_session(&env, other, &["secrets", "get", "K1"]).fails(EXIT_LOCKED);
    // and never falls back to the passphrase
    let mut c = env.command();
    c.env("RAVI_SESSION", &token).args(["secrets", "get", "K1"]);
    run_command(&mut c).fails(EXIT_LOCKED);
    // the owner still reads everything
    assert_eq!(
        env.run(&["secrets", "list", "--json"])
            .ok()
            .json()
            .as_array()
            .unwrap()
            .len(),
        10
    );
}

#[test]
fn lock_one_session_only() {
    let (env, _) = Env::with_identity("alice");
    let t1 = env.run(&["unlock"]).ok().stdout.trim().to_string();
    let t2 = env.run(&["unlock"]).ok().stdout.trim().to_string();
    let r = with_session(&env, &t1, &["lock", "--session", "--json"])
        .ok()
        .json();
    assert_eq!(r["revoked_sessions"], 1);
    with_session(&env, &t1, &["secrets", "list"]).fails(EXIT_LOCKED);
    with_session(&env, &t2, &["secrets", "list"]).ok();
    // --session without a session is a usage error
    env.run(&["lock", "--session"]).fails(EXIT_INVALID);
}

#[test]
fn expired_tampered_malformed_and_foreign_tokens() {
    let (env, _) = Env::with_identity("alice");
    let short = env
        .run(&["unlock", "--ttl", "1s"])
        .ok()
        .stdout
        .trim()
        .to_string();
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let r = with_session(&env, &short, &["secrets", "list"]).fails(EXIT_LOCKED);
    assert!(
        r.stderr.contains("expired") || r.stderr.contains("not valid"),
        "{}",
        r.stderr
    );

    let token = env.run(&["unlock"]).ok().stdout.trim().to_string();
    // every single-character change of the token is refused
    let alphabet = ['A', 'b', '0', '-', '_'];
    for i in "ravi_session_".len()..token.len() {
        let mut t: Vec<char> = token.chars().collect();
        let replacement = alphabet.iter().copied().find(|c| *c != t[i]).unwrap();
        t[i] = replacement;
        let t: String = t.into_iter().collect();
        with_session(&env, &t, &["secrets", "list"]).fails(EXIT_LOCKED);
    }
    for bad in [
        "garbage",
        "ravi_session_",
        "ravi_session_AAAA",
        "ravi_session_!!!",
    ] {
        let e = with_session(&env, bad, &["secrets", "list", "--json"])
            .fails(EXIT_LOCKED)
            .error_json();
        assert!(!e["error"]["message"].as_str().unwrap().contains(bad) || bad == "garbage");
    }
    // a token of another vault
    let (other, _) = Env::with_identity("alice");
    let foreign = other.run(&["unlock"]).ok().stdout.trim().to_string();
    with_session(&env, &foreign, &["secrets", "list"]).fails(EXIT_LOCKED);
    // extending a session in the file is caught by its associated data
    env.db()
        .execute("UPDATE sessions SET expires_at = expires_at + 86400", [])
        .unwrap();
    with_session(&env, &token, &["secrets", "list"]).fails(EXIT_LOCKED);
    // bad lifetimes
    env.run(&["unlock", "--ttl", "31d"]).fails(EXIT_INVALID);
    env.run(&["unlock", "--ttl", "0"]).fails(EXIT_INVALID);
    env.run(&["unlock", "--ttl", "soon"]).fails(EXIT_INVALID);
    // unlock itself needs the passphrase
    let mut c = no_pass(&env);
    c.args(["unlock"]);
    run_command(&mut c).fails(EXIT_LOCKED);
}

#[test]
fn agent_keys_grants_and_revocation() {
    let env = Env::new();
    env.run(&["identity", "create", "--name", "alice"]).ok();
    env.run(&["identity", "create", "--name", "bob"]).ok();
    env.run(&["identity", "use", "alice"]).ok();
    env.run(&["--identity", "bob", "secrets", "set", "BOB", "bob-secret"])
        .ok();
    env.run(&["secrets", "set", "OLD", "before-grant"]).ok();

    let (key_a, pub_a) = env.keygen("a.key");
    let (key_b, pub_b) = env.keygen("b.key");
    assert!(pub_a.starts_with("raviagent1"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_a).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    let again = env
        .run(&["agent", "pubkey", "--key-file", key_a.to_str().unwrap()])
        .ok();
    assert_eq!(again.stdout.trim(), pub_a);
    // keygen never overwrites
    env.run(&["agent", "keygen", "--out", key_a.to_str().unwrap()])
        .fails(EXIT_CONFLICT);

    let g = env
        .run(&[
            "identity", "grant", "alice", "--to", &pub_a, "--label", "task-a", "--json",
        ])
        .ok()
        .json();
    assert_eq!(g["agent_public_key"], pub_a.as_str());
    assert_eq!(g["label"], "task-a");
    env.run(&["identity", "grant", "alice", "--to", &pub_b])
        .ok();
    env.run(&["identity", "grant", "alice", "--to", &pub_b])
        .fails(EXIT_CONFLICT);
    let grants = env
        .run(&["identity", "grants", "alice", "--json"])
        .ok()
        .json();
    assert_eq!(grants.as_array().unwrap().len(), 2);

    // a mistyped public key is rejected by its checksum
    let mut typo: Vec<char> = pub_a.chars().collect();
    let i = typo.len() - 5;
    typo[i] = if typo[i] == 'q' { 'p' } else { 'q' };
    let typo: String = typo.into_iter().collect();
    env.run(&["identity", "grant", "bob", "--to", &typo])
        .fails(EXIT_INVALID);
    env.run(&["identity", "grant", "bob", "--to", "not-a-key"])
        .fails(EXIT_INVALID);

    // agent A reads and writes its identity, with no passphrase
    assert_eq!(
        as_agent(&env, &key_a, &["secrets", "get", "OLD"])
            .ok()
            .stdout
            .trim(),
        "before-grant"
    );
    as_agent(
        &env,
        &key_a,
        &["secrets", "set", "BY_AGENT", "written-by-a"],
    )
    .ok();
    as_agent(
        &env,
        &key_a,
        &[
            "passwords",
            "create",
            "example.com",
            "--username",
            "agent",
            "--json",
        ],
    )
    .ok();
    as_agent(
        &env,
        &key_a,
        &[
            "totp",
            "add",
            "svc",
            "--secret",
            "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ",
        ],
    )
    .ok();
    as_agent(&env, &key_a, &["totp", "code", "svc", "--json"]).ok();
    let mut c = no_pass(&env);
    c.args([
        "--agent-key-file",
        key_a.to_str().unwrap(),
        "secrets",
        "get",
        "BY_AGENT",
    ]);
    assert_eq!(run_command(&mut c).ok().stdout.trim(), "written-by-a");
    // metadata needs no key
    as_agent(&env, &key_a, &["get", "email"]).ok();

    // denied: other identities and vault-wide operations
    let e = as_agent(
        &env,
        &key_a,
        &["--identity", "bob", "secrets", "get", "BOB", "--json"],
    )
    .fails(EXIT_LOCKED)
    .error_json();
    assert_eq!(e["error"]["code"], "denied");
    for args in [
        vec!["identity", "create", "--name", "carol"],
        vec!["identity", "delete", "bob"],
        vec!["identity", "grant", "bob", "--to", pub_a.as_str()],
        vec!["identity", "revoke", "alice", "--from", pub_b.as_str()],
        vec!["identity", "rotate", "alice"],
        vec!["unlock"],
        vec!["lock"],
        vec!["passphrase", "change"],
    ] {
        let mut a = args.clone();
        a.push("--json");
        let e = as_agent(&env, &key_a, &a).fails(EXIT_LOCKED).error_json();
        assert_eq!(e["error"]["code"], "denied", "{args:?}");
    }

    // revoke A: the grant goes, the key rotates
    let saved_grant: Vec<u8> = env
        .db()
        .query_row(
            "SELECT wrapped_key FROM grants WHERE label = 'task-a'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let r = env
        .run(&["identity", "revoke", "alice", "--from", &pub_a, "--json"])
        .ok()
        .json();
    assert_eq!(r["key_epoch"], 2);
    assert_eq!(r["grants_removed"], 1);
    assert_eq!(r["grants_kept"], 1);
    assert_eq!(r["records_resealed"], 4);
    env.run(&["identity", "revoke", "alice", "--from", &pub_a])
        .fails(EXIT_NOT_FOUND);
    env.run(&["secrets", "set", "AFTER", "written-after-revocation"])
        .ok();
    for key in ["OLD", "BY_AGENT", "AFTER"] {
        as_agent(&env, &key_a, &["secrets", "get", key]).fails(EXIT_LOCKED);
    }
    as_agent(&env, &key_a, &["totp", "code", "svc"]).fails(EXIT_LOCKED);
    // restoring A's old grant row from a backup does not bring access back
    let alice: String = env
        .db()
        .query_row("SELECT uuid FROM identities WHERE name='alice'", [], |r| {
            r.get(0)
        })
        .unwrap();
    let a_bytes = bech32::decode(&pub_a).unwrap().1;
    env.db()
        .execute(
            "INSERT INTO grants (uuid, identity_uuid, recipient, label, key_epoch, ephemeral_public, wrapped_key, created_dt)
             VALUES ('0f8fad5b-d9cb-469f-a165-70867728950e', ?1, ?2, 'restored', 1, zeroblob(32), ?3, 'x')",
            rusqlite::params![alice, a_bytes, saved_grant],
        )
        .unwrap();
    for key in ["OLD", "AFTER"] {
        let r = as_agent(&env, &key_a, &["secrets", "get", key]);
        assert_ne!(r.code, 0, "a restored stale grant must not open {key}");
        assert!(!r.stdout.contains("before-grant") && !r.stdout.contains("written-after"));
    }
    // the owner and agent B still read everything, including A's writes
    for (key, want) in [
        ("OLD", "before-grant"),
        ("BY_AGENT", "written-by-a"),
        ("AFTER", "written-after-revocation"),
    ] {
        assert_eq!(env.run(&["secrets", "get", key]).ok().stdout.trim(), want);
        assert_eq!(
            as_agent(&env, &key_b, &["secrets", "get", key])
                .ok()
                .stdout
                .trim(),
            want
        );
    }
    assert_eq!(
        as_agent(&env, &key_b, &["passwords", "get", "example.com", "--json"])
            .ok()
            .json()["username"],
        "agent"
    );

    // rotate without removing anyone
    let r = env
        .run(&["identity", "rotate", "alice", "--json"])
        .ok()
        .json();
    assert_eq!(r["key_epoch"], 3);
    assert_eq!(
        as_agent(&env, &key_b, &["secrets", "get", "AFTER"])
            .ok()
            .stdout
            .trim(),
        "written-after-revocation"
    );
    assert_eq!(
        env.run(&["--identity", "bob", "secrets", "get", "BOB"])
            .ok()
            .stdout
            .trim(),
        "bob-secret"
    );
}

#[test]
fn bad_agent_key_files() {
    let (env, _) = Env::with_identity("alice");
    let f = env.dir.path().join("bad.key");
    std::fs::write(&f, "not a key\n").unwrap();
    as_agent(&env, &f, &["secrets", "list"]).fails(EXIT_INVALID);
    as_agent(
        &env,
        &env.dir.path().join("missing.key"),
        &["secrets", "list"],
    )
    .fails(EXIT_INVALID);
    env.run(&["agent", "pubkey", "--key-file", f.to_str().unwrap()])
        .fails(EXIT_INVALID);
    // --out - prints the secret only when asked
    let j = env
        .run(&["agent", "keygen", "--out", "-", "--json"])
        .ok()
        .json();
    assert!(
        j["secret_key"]
            .as_str()
            .unwrap()
            .starts_with("RAVI-AGENT-SECRET-KEY-1")
    );
    let j = env.run(&["agent", "keygen", "--json"]).ok().json();
    assert!(j.get("secret_key").is_none());
    assert!(env.config_dir.join("agent.key").is_file());
}

#[test]
fn passphrase_change() {
    let (env, _) = Env::with_identity("alice");
    env.run(&["secrets", "set", "K", "v"]).ok();
    env.run(&["passwords", "create", "example.com", "--password", "pw-1"])
        .ok();
    let token = env.run(&["unlock"]).ok().stdout.trim().to_string();
    // no new passphrase given and no terminal: a usage error, nothing changed
    env.run(&["passphrase", "change"]).fails(EXIT_INVALID);
    // a session cannot change the passphrase
    let mut c = no_pass(&env);
    c.env("RAVI_SESSION", &token)
        .env("RAVI_NEW_PASSPHRASE", "x")
        .args(["passphrase", "change"]);
    run_command(&mut c).fails(EXIT_LOCKED);

    let nf = env.dir.path().join("new-pass");
    std::fs::write(&nf, "the new passphrase\n").unwrap();
    let r = env
        .run(&[
            "passphrase",
            "change",
            "--new-passphrase-file",
            nf.to_str().unwrap(),
            "--kdf-memory-mib",
            "2",
            "--json",
        ])
        .ok()
        .json();
    assert_eq!(r["kdf"]["memory_kib"], 2048);
    env.run(&["secrets", "get", "K"]).fails(EXIT_LOCKED);
    let mut c = env.command();
    c.env("RAVI_PASSPHRASE", "the new passphrase")
        .args(["secrets", "get", "K"]);
    assert_eq!(run_command(&mut c).ok().stdout.trim(), "v");
    let mut c = env.command();
    c.env("RAVI_PASSPHRASE", "the new passphrase").args([
        "passwords",
        "get",
        "example.com",
        "--json",
    ]);
    assert_eq!(run_command(&mut c).ok().json()["password"], "pw-1");
    // a new root key: sessions made before the change end
    with_session(&env, &token, &["secrets", "get", "K"]).fails(EXIT_LOCKED);
    let kdf: i64 = env
        .db()
        .query_row("SELECT kdf_memory_kib FROM vault", [], |r| r.get(0))
        .unwrap();
    assert_eq!(kdf, 2048);
}

#[test]
fn no_key_material_at_rest() {
    let (env, _) = Env::with_identity("alice");
    let holder = env.db();
    holder
        .query_row("SELECT count(*) FROM identities", [], |r| {
            r.get::<_, i64>(0)
        })
        .unwrap();
    env.run(&["secrets", "set", "K", "v"]).ok();
    let token = env.run(&["unlock"]).ok().stdout.trim().to_string();
    let raw = data_encoding::BASE64URL_NOPAD
        .decode(&token.as_bytes()["ravi_session_".len()..])
        .unwrap();
    let session_key = &raw[16..];
    let j = env
        .run(&["agent", "keygen", "--out", "-", "--json"])
        .ok()
        .json();
    let agent_secret = bech32::decode(j["secret_key"].as_str().unwrap()).unwrap().1;
    env.run(&[
        "identity",
        "grant",
        "alice",
        "--to",
        j["public_key"].as_str().unwrap(),
    ])
    .ok();
    with_session(&env, &token, &["secrets", "get", "K"]).ok();
    for (path, bytes) in env.stored_bytes() {
        assert!(
            !contains(&bytes, session_key),
            "session key in {}",
            path.display()
        );
        assert!(
            !contains(&bytes, token.as_bytes()),
            "token in {}",
            path.display()
        );
        assert!(
            !contains(&bytes, &agent_secret),
            "agent secret in {}",
            path.display()
        );
        assert!(
            !contains(&bytes, PASSPHRASE.as_bytes()),
            "passphrase in {}",
            path.display()
        );
    }
    drop(holder);
}

/// A vault written by schema version 1 opens and is migrated forward.
#[test]
fn schema_v1_is_migrated() {
    let (env, _) = Env::with_identity("alice");
    env.run(&["secrets", "set", "K", "v"]).ok();
    // A version 1 file, as a build before sessions and signing wrote it,
    // that no client pinned.
    env.db()
        .execute_batch(
            "DROP TABLE grants; DROP TABLE sessions;
             ALTER TABLE vault DROP COLUMN owner_public_key;
             ALTER TABLE vault DROP COLUMN wrapped_owner_key;
             ALTER TABLE vault DROP COLUMN signature;
             ALTER TABLE identities DROP COLUMN signature;
             ALTER TABLE identities DROP COLUMN head;
             ALTER TABLE vault DROP COLUMN vault_head;
             DROP TABLE tree_nodes;
             DROP INDEX records_by_identity;
             PRAGMA user_version = 1;",
        )
        .unwrap();
    std::fs::remove_dir_all(env.config_dir.join("pins")).unwrap();
    std::fs::remove_dir_all(env.config_dir.join("state")).unwrap();
    let info = env.run(&["vault", "info", "--json"]).ok().json();
    assert!(info["owner_public_key"].is_null());
    // the owner's first unlock adds the owner key and signs the metadata
    assert_eq!(env.run(&["secrets", "get", "K"]).ok().stdout.trim(), "v");
    let v: i64 = env
        .db()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(v, 5);
    let info = env.run(&["vault", "info", "--json"]).ok().json();
    let owner = info["owner_public_key"].as_str().unwrap().to_string();
    assert!(owner.starts_with("raviowner1"));
    let pinned = std::fs::read_to_string(
        env.config_dir
            .join("pins")
            .join(info["vault_id"].as_str().unwrap()),
    )
    .unwrap();
    assert_eq!(pinned.trim(), owner);
    env.run(&["identity", "show", "alice"]).ok();
    // the first write gives the identity its head, committing to what is there
    env.run(&["secrets", "set", "K2", "v2"]).ok();
    let head: Option<Vec<u8>> = env
        .db()
        .query_row("SELECT head FROM identities", [], |r| r.get(0))
        .unwrap();
    assert_eq!(head.map(|h| h.len()), Some(76));
    assert_eq!(env.run(&["secrets", "list"]).ok().stdout.lines().count(), 2);
    env.run(&["unlock"]).ok();
}

/// `ravi rekey` after a leak: an old copy of the vault with the old
/// passphrase, a session token from before, or a revoked agent key opens
/// nothing written or re-sealed afterwards.
#[test]
fn rekey_recovers_from_a_leak() {
    let (env, _) = Env::with_identity("alice");
    env.run(&["secrets", "set", "BEFORE", "before-v"]).ok();
    let (key, public) = env.keygen("a.key");
    env.run(&["identity", "grant", "alice", "--to", &public])
        .ok();
    let token = env.run(&["unlock"]).ok().stdout.trim().to_string();
    // the thief's copy, taken while everything was valid
    let copy = env.dir.path().join("stolen.db");
    let holder = env.db();
    holder
        .execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
        .unwrap();
    std::fs::copy(&env.vault, &copy).unwrap();
    drop(holder);
    env.run(&["identity", "revoke", "alice", "--from", &public])
        .ok();
    let r = env.run(&["rekey", "--json"]).ok().json();
    assert_eq!(r["identities"][0]["records_resealed"], 1);
    assert_eq!(r["sessions_revoked"], 1);
    env.run(&["secrets", "set", "AFTER", "after-v"]).ok();
    assert_eq!(
        env.run(&["secrets", "get", "BEFORE"]).ok().stdout.trim(),
        "before-v"
    );
    // the old token and the revoked agent key against the live vault
    with_session(&env, &token, &["secrets", "get", "AFTER"]).fails(EXIT_LOCKED);
    as_agent(&env, &key, &["secrets", "get", "AFTER"]).fails(EXIT_LOCKED);
    // the stolen copy's keys against the live rows: splice the stolen
    // header key and session in, so that the old passphrase and the old
    // session token yield the old root key (the unit test `rekey_recovers`
    // shows the old root and identity keys open none of the new rows)
    let live = env.db();
    let stolen = rusqlite::Connection::open(&copy).unwrap();
    let (wrk, salt): (Vec<u8>, Vec<u8>) = stolen
        .query_row("SELECT wrapped_root_key, kdf_salt FROM vault", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    let (sid, swrk): (String, Vec<u8>) = stolen
        .query_row(
            "SELECT session_id, wrapped_root_key FROM sessions",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    live.execute(
        "UPDATE vault SET wrapped_root_key = ?1, kdf_salt = ?2",
        rusqlite::params![wrk, salt],
    )
    .unwrap();
    live.execute(
        "INSERT INTO sessions (session_id, expires_at, created_dt, wrapped_root_key)
         VALUES (?1, 9999999999, 'x', ?2)",
        rusqlite::params![sid, swrk],
    )
    .unwrap();
    for r in [
        env.run(&["secrets", "get", "AFTER"]),
        with_session(&env, &token, &["secrets", "get", "AFTER"]),
        env.run(&["secrets", "get", "BEFORE"]),
    ] {
        assert_ne!(r.code, 0);
        assert!(!r.stdout.contains("after-v") && !r.stdout.contains("before-v"));
    }
    // and the stolen copy itself still opens only what it held
    let mut c = env.command();
    c.env("RAVI_VAULT", &copy)
        .env("RAVI_CONFIG_DIR", env.dir.path().join("thief-cfg"))
        .args(["--identity", "alice", "secrets", "list", "--json"]);
    let r = run_command(&mut c).ok();
    assert!(!r.stdout.contains("AFTER"));
}

/// `ravi rekey` needs the passphrase itself: a session or an agent key is
/// refused (exit 4), and so is no credential at all; nothing changes.
#[test]
fn rekey_needs_the_passphrase() {
    let (env, _) = Env::with_identity("alice");
    let token = env.run(&["unlock"]).ok().stdout.trim().to_string();
    let (key, public) = env.keygen("a.key");
    env.run(&["identity", "grant", "alice", "--to", &public])
        .ok();
    let before: Vec<u8> = env
        .db()
        .query_row("SELECT wrapped_root_key FROM vault", [], |r| r.get(0))
        .unwrap();
    with_session(&env, &token, &["rekey"]).fails(EXIT_LOCKED);
    as_agent(&env, &key, &["rekey"]).fails(EXIT_LOCKED);
    run_command(no_pass(&env).arg("rekey")).fails(EXIT_LOCKED);
    let after: Vec<u8> = env
        .db()
        .query_row("SELECT wrapped_root_key FROM vault", [], |r| r.get(0))
        .unwrap();
    assert_eq!(before, after);
}
