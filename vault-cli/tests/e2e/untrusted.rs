//! Attacks by whoever can write the vault file but knows no secret: the
//! party end-to-end encryption exists to distrust. Each is scripted on a
//! real vault file with sqlite and must end in exit 5, never in forged data
//! with exit 0.

use rusqlite::params;
use vault_core::AgentPublicKey;
use vault_core::hazmat::{key_from_bytes, seal_secret_record, wrap_to_agent};

use crate::common::*;

fn as_agent(env: &Env, key_file: &std::path::Path, args: &[&str]) -> Run {
    let mut c = env.command();
    c.env_remove("RAVI_PASSPHRASE")
        .env("RAVI_AGENT_KEY_FILE", key_file)
        .args(args);
    run_command(&mut c)
}

fn uuid16(s: &str) -> [u8; 16] {
    let hex: String = s.chars().filter(|c| *c != '-').collect();
    data_encoding::HEXLOWER_PERMISSIVE
        .decode(hex.as_bytes())
        .unwrap()
        .try_into()
        .unwrap()
}

/// alice (granted to agent A) and bob (not granted), each with a secret.
fn setup() -> (Env, std::path::PathBuf, String) {
    let (env, _) = Env::with_identity("alice");
    env.run(&["secrets", "set", "K", "alice-v"]).ok();
    env.run(&[
        "identity",
        "create",
        "--name",
        "bob",
        "--phone",
        "+14155550123",
    ])
    .ok();
    env.run(&["--identity", "bob", "secrets", "set", "K", "bob-v"])
        .ok();
    let (key, public) = env.keygen("a.key");
    env.run(&["identity", "grant", "alice", "--to", &public])
        .ok();
    (env, key, public)
}

/// A grant to agent A for bob, forged from public data only (the agent's
/// public key, the vault and identity ids, bob's clear metadata), with a
/// record planted under the forged key: the agent refuses the grant with
/// exit 5, returns nothing planted, and writes nothing under the forged key.
#[test]
fn forged_grant_is_refused() {
    let (env, key, public) = setup();
    let db = env.db();
    let vault_id: String = db
        .query_row("SELECT vault_id FROM vault", [], |r| r.get(0))
        .unwrap();
    let (bob, name, inbox, phone, epoch): (String, String, String, Option<String>, u32) = db
        .query_row(
            "SELECT uuid, name, inbox, phone, key_epoch FROM identities WHERE name = 'bob'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )
        .unwrap();
    let agent = AgentPublicKey::parse(&public).unwrap();
    let forged_ik = key_from_bytes([0x66; 32]);
    let grant_id = "6f9619ff-8b86-4d01-b42d-00cf4fc964ff";
    let (eph, wrapped) = wrap_to_agent(
        &agent,
        &uuid16(&vault_id),
        &uuid16(&bob),
        &uuid16(grant_id),
        epoch,
        &name,
        &inbox,
        phone.as_deref().unwrap_or(""),
        &forged_ik,
    )
    .unwrap();
    // A signature copied from alice's real grant does not fit this one.
    let copied: Vec<u8> = db
        .query_row("SELECT signature FROM grants", [], |r| r.get(0))
        .unwrap();
    db.execute(
        "INSERT INTO grants (uuid, identity_uuid, recipient, label, key_epoch, ephemeral_public,
             wrapped_key, created_dt, signature)
         VALUES (?1, ?2, ?3, NULL, ?4, ?5, ?6, '2026-01-01T00:00:00Z', ?7)",
        params![
            grant_id,
            bob,
            agent.as_bytes().to_vec(),
            epoch,
            eph.to_vec(),
            wrapped,
            copied
        ],
    )
    .unwrap();
    let planted = "5a5a5a5a-0000-4000-8000-000000000001";
    let (bi, ct) = seal_secret_record(
        uuid16(&vault_id),
        &bob,
        epoch,
        &forged_ik,
        planted,
        "PLANTED",
        "attacker-chosen",
    )
    .unwrap();
    db.execute(
        "INSERT INTO records (uuid, identity_uuid, kind, blind_index, key_epoch, ciphertext)
         VALUES (?1, ?2, 2, ?3, ?4, ?5)",
        params![planted, bob, bi, epoch, ct],
    )
    .unwrap();
    let before: i64 = db
        .query_row("SELECT count(*) FROM records", [], |r| r.get(0))
        .unwrap();

    for args in [
        vec!["--identity", "bob", "secrets", "get", "PLANTED"],
        vec!["--identity", "bob", "secrets", "list"],
        vec!["--identity", "bob", "secrets", "set", "NEW", "agent-secret"],
    ] {
        let r = as_agent(&env, &key, &args).fails(EXIT_INTEGRITY);
        assert!(!r.stdout.contains("attacker-chosen"), "{args:?}");
        assert!(
            r.stderr.contains("not signed by the vault owner"),
            "{}",
            r.stderr
        );
    }
    let after: i64 = db
        .query_row("SELECT count(*) FROM records", [], |r| r.get(0))
        .unwrap();
    assert_eq!(before, after, "nothing was written under the forged key");
    // The agent's real grant still works; the owner sees the planted record
    // fail to open under bob's real key, and the forged grant in the list.
    assert_eq!(
        as_agent(&env, &key, &["secrets", "get", "K"])
            .ok()
            .stdout
            .trim(),
        "alice-v"
    );
    env.run(&["--identity", "bob", "secrets", "list"])
        .fails(EXIT_INTEGRITY);
    env.run(&["identity", "grants", "bob"])
        .fails(EXIT_INTEGRITY);
    // Rotation is the owner's recovery: it drops the planted grant.
    let r = env
        .run(&["identity", "rotate", "bob", "--json"])
        .fails(EXIT_INTEGRITY);
    assert!(
        r.stderr.contains("5a5a5a5a"),
        "the planted record is named: {}",
        r.stderr
    );
    env.db()
        .execute("DELETE FROM records WHERE uuid = ?1", [planted])
        .unwrap();
    let r = env
        .run(&["identity", "rotate", "bob", "--json"])
        .ok()
        .json();
    assert_eq!(r["grants_removed"], 1);
    env.run(&["identity", "grants", "bob"]).ok();
}

/// Edited clear metadata is caught by every read that prints it.
#[test]
fn edited_metadata_is_refused() {
    for (column, value) in [
        ("inbox", "'attacker@evil.example'"),
        ("phone", "'+15550000000'"),
        ("name", "'eve'"),
        ("created_dt", "'2020-01-01T00:00:00Z'"),
    ] {
        let (env, _, _) = setup();
        env.db()
            .execute(
                &format!("UPDATE identities SET {column} = {value} WHERE name = 'alice'"),
                [],
            )
            .unwrap();
        for args in [
            vec!["get", "email"],
            vec!["get", "phone"],
            vec!["identity", "list"],
            vec!["identity", "show"],
        ] {
            let mut c = env.command();
            c.env_remove("RAVI_PASSPHRASE").args(&args);
            let r = run_command(&mut c);
            // a renamed row no longer matches the selection by uuid+name
            // only when looked up by name; by uuid it is found and refused
            assert_eq!(r.code, EXIT_INTEGRITY, "{column}: {args:?}: {}", r.stderr);
            assert!(!r.stdout.contains("attacker") && !r.stdout.contains("+1555"));
        }
    }
}

/// An edited inbox domain in the header makes every command exit 5, so no
/// identity is ever created with an attacker's address.
#[test]
fn edited_inbox_domain_and_grant_label_are_refused() {
    let (env, key, _) = setup();
    env.db()
        .execute("UPDATE vault SET inbox_domain = 'evil.example'", [])
        .unwrap();
    for args in [
        vec!["identity", "create", "--name", "carol"],
        vec!["get", "email"],
        vec!["vault", "info"],
    ] {
        env.run(&args).fails(EXIT_INTEGRITY);
    }
    env.db()
        .execute("UPDATE vault SET inbox_domain = 'agents.example.com'", [])
        .unwrap();
    env.run(&["identity", "create", "--name", "carol"]).ok();
    env.db()
        .execute("UPDATE grants SET label = 'attacker'", [])
        .unwrap();
    as_agent(&env, &key, &["secrets", "get", "K"]).fails(EXIT_INTEGRITY);
    env.run(&["identity", "grants", "alice"])
        .fails(EXIT_INTEGRITY);
}

/// Another owner key (a header re-signed by the attacker, or the owner key
/// stripped) against a pinned one: exit 5, never a silent re-pin.
#[test]
fn owner_key_substitution_and_stripping_are_refused() {
    let (env, key, _) = setup();
    let other = Env::new();
    let (pk, wok, sig): (Vec<u8>, Vec<u8>, Vec<u8>) = other
        .db()
        .query_row(
            "SELECT owner_public_key, wrapped_owner_key, signature FROM vault",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    let (opk, owok, osig): (Vec<u8>, Vec<u8>, Vec<u8>) = env
        .db()
        .query_row(
            "SELECT owner_public_key, wrapped_owner_key, signature FROM vault",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    env.db()
        .execute(
            "UPDATE vault SET owner_public_key = ?1, wrapped_owner_key = ?2, signature = ?3",
            params![pk, wok, sig],
        )
        .unwrap();
    env.run(&["get", "email"]).fails(EXIT_INTEGRITY);
    env.db()
        .execute(
            "UPDATE vault SET owner_public_key = NULL, wrapped_owner_key = NULL, signature = NULL",
            [],
        )
        .unwrap();
    let r = env.run(&["get", "email"]).fails(EXIT_INTEGRITY);
    assert!(r.stderr.contains("pinned"), "{}", r.stderr);
    as_agent(&env, &key, &["secrets", "get", "K"]).fails(EXIT_INTEGRITY);
    env.db()
        .execute(
            "UPDATE vault SET owner_public_key = ?1, wrapped_owner_key = ?2, signature = ?3",
            params![opk, owok, osig],
        )
        .unwrap();
    env.run(&["get", "email"]).ok();
}

/// The whole file swapped for another vault (another id, its own valid
/// owner key, a grant to the same agent) is noticed by the owner's client
/// (the vault first seen at this path) and by the agent (its key file pins
/// the vault it was made for).
#[test]
fn swapped_vault_is_refused() {
    let (env, key, public) = setup();
    let other = Env::new();
    other.run(&["identity", "create", "--name", "alice"]).ok();
    other
        .run(&["--identity", "alice", "secrets", "set", "K", "attacker-v"])
        .ok();
    other
        .run(&["identity", "grant", "alice", "--to", &public])
        .ok();
    std::fs::copy(&other.vault, &env.vault).unwrap();
    let r = env.run(&["get", "email"]).fails(EXIT_INTEGRITY);
    assert!(r.stderr.contains("swapped"), "{}", r.stderr);
    // the agent, with a fresh config directory of its own
    let mut c = env.command();
    c.env_remove("RAVI_PASSPHRASE")
        .env("RAVI_CONFIG_DIR", env.dir.path().join("agent-cfg"))
        .env("RAVI_AGENT_KEY_FILE", &key)
        .args(["--identity", "alice", "secrets", "get", "K"]);
    let r = run_command(&mut c).fails(EXIT_INTEGRITY);
    assert!(!r.stdout.contains("attacker-v"));
}

/// A key file made away from the vault pins on first use, or explicitly
/// with `ravi agent pin`; a wrong key is refused and never pinned.
#[test]
fn agent_pin_command() {
    let (env, _, _) = setup();
    let info = env.run(&["vault", "info", "--json"]).ok().json();
    let owner = info["owner_public_key"].as_str().unwrap().to_string();
    assert!(owner.starts_with("raviowner1"));
    assert!(info["vault_id"].is_string());
    let fresh = env.dir.path().join("fresh-cfg");
    let pin = |k: &str| {
        let mut c = env.command();
        c.env("RAVI_CONFIG_DIR", &fresh)
            .args(["agent", "pin", "--owner-key", k, "--json"]);
        run_command(&mut c)
    };
    let other_owner = Env::new().run(&["vault", "info", "--json"]).ok().json()["owner_public_key"]
        .as_str()
        .unwrap()
        .to_string();
    pin(&other_owner).fails(EXIT_INTEGRITY);
    assert!(
        !fresh
            .join("pins")
            .join(info["vault_id"].as_str().unwrap())
            .exists()
    );
    pin("raviowner1notakey").fails(EXIT_INVALID);
    let r = pin(&owner).ok().json();
    assert_eq!(r["owner_public_key"], owner);
    assert_eq!(
        std::fs::read_to_string(fresh.join("pins").join(info["vault_id"].as_str().unwrap()))
            .unwrap()
            .trim(),
        owner
    );
}

/// The vault file as it is now (the write-ahead log folded in first), to
/// put back later as a store that rolls back would.
fn snapshot(env: &Env) -> Vec<u8> {
    env.db()
        .execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
        .unwrap();
    std::fs::read(&env.vault).unwrap()
}

fn restore(env: &Env, bytes: &[u8]) {
    let wal = env.vault.with_extension("db-wal");
    let shm = env.vault.with_extension("db-shm");
    let _ = std::fs::remove_file(wal);
    let _ = std::fs::remove_file(shm);
    std::fs::write(&env.vault, bytes).unwrap();
}

/// The whole file rolled back after a write: every client that saw the
/// newer state (passphrase, session, agent key with its own config dir)
/// refuses it with exit 5.
#[test]
fn whole_file_rollback_after_a_write_is_caught() {
    let (env, key, _) = setup();
    let token = env.run(&["unlock"]).ok().stdout.trim().to_string();
    let agent_cfg = env.dir.path().join("agent-cfg");
    let agent = |args: &[&str]| {
        let mut c = env.command();
        c.env_remove("RAVI_PASSPHRASE")
            .env("RAVI_CONFIG_DIR", &agent_cfg)
            .env("RAVI_AGENT_KEY_FILE", &key)
            .args(["--identity", "alice"])
            .args(args);
        run_command(&mut c)
    };
    let session = |args: &[&str]| {
        let mut c = env.command();
        c.env_remove("RAVI_PASSPHRASE")
            .env("RAVI_SESSION", &token)
            .args(args);
        run_command(&mut c)
    };
    agent(&["secrets", "get", "K"]).ok();
    let old = snapshot(&env);
    env.run(&["secrets", "set", "NEW", "new-v"]).ok();
    agent(&["secrets", "get", "NEW"]).ok();
    session(&["secrets", "get", "NEW"]).ok();
    restore(&env, &old);
    for r in [
        env.run(&["secrets", "get", "K"]),
        session(&["secrets", "get", "K"]),
        agent(&["secrets", "get", "K"]),
        env.run(&["secrets", "set", "LATER", "x"]),
    ] {
        let r = r.fails(EXIT_INTEGRITY);
        assert!(r.stderr.contains("rollback detected"), "{}", r.stderr);
    }
}

/// Single records deleted, replaced by an older version of themselves, or
/// planted: the listing checks the whole set against the identity's head.
#[test]
fn deleted_replayed_and_planted_records_are_caught_by_list() {
    let (env, key, _) = setup();
    env.run(&["secrets", "set", "K2", "v2"]).ok();
    let (uuid, old_ct): (String, Vec<u8>) = env
        .db()
        .query_row(
            "SELECT r.uuid, r.ciphertext FROM records r JOIN identities i
             ON r.identity_uuid = i.uuid WHERE i.name = 'alice' ORDER BY r.uuid LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    let list_fails = |what: &str| {
        let r = env.run(&["secrets", "list"]).fails(EXIT_INTEGRITY);
        assert!(
            r.stderr.contains("rollback or deletion"),
            "{what}: {}",
            r.stderr
        );
        as_agent(&env, &key, &["secrets", "list"]).fails(EXIT_INTEGRITY);
    };
    // replaced by its older version
    let key_name = env
        .run(&["secrets", "list", "--json"])
        .ok()
        .json()
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["uuid"] == uuid.as_str())
        .unwrap()["key"]
        .as_str()
        .unwrap()
        .to_string();
    env.run(&["secrets", "set", &key_name, "newer"]).ok();
    let new_ct: Vec<u8> = env
        .db()
        .query_row(
            "SELECT ciphertext FROM records WHERE uuid = ?1",
            [&uuid],
            |r| r.get(0),
        )
        .unwrap();
    env.db()
        .execute(
            "UPDATE records SET ciphertext = ?1 WHERE uuid = ?2",
            params![old_ct, uuid],
        )
        .unwrap();
    list_fails("replayed");
    // and a get of that one record: its bucket and path do not reach the
    // root under the head's MAC
    let r = env
        .run(&["secrets", "get", &key_name])
        .fails(EXIT_INTEGRITY);
    assert!(!r.stdout.contains("newer"));
    as_agent(&env, &key, &["secrets", "get", &key_name]).fails(EXIT_INTEGRITY);
    env.db()
        .execute(
            "UPDATE records SET ciphertext = ?1 WHERE uuid = ?2",
            params![new_ct, uuid],
        )
        .unwrap();
    env.run(&["secrets", "list"]).ok();
    // deleted
    let row: (String, i64, Vec<u8>, i64, Vec<u8>) = env
        .db()
        .query_row(
            "SELECT identity_uuid, kind, blind_index, key_epoch, ciphertext FROM records WHERE uuid = ?1",
            [&uuid],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )
        .unwrap();
    env.db()
        .execute("DELETE FROM records WHERE uuid = ?1", [&uuid])
        .unwrap();
    list_fails("deleted");
    env.db()
        .execute(
            "INSERT INTO records (uuid, identity_uuid, kind, blind_index, key_epoch, ciphertext)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![uuid, row.0, row.1, row.2, row.3, row.4],
        )
        .unwrap();
    env.run(&["secrets", "list"]).ok();
    // a deletion stays detected after further writes: each write updates
    // the commitment from the head, not from what the store shows
    env.run(&["secrets", "set", "K3", "v3"]).ok();
    env.db()
        .execute("DELETE FROM records WHERE uuid = ?1", [&uuid])
        .unwrap();
    env.run(&["secrets", "list"]).fails(EXIT_INTEGRITY);
}

/// The owner's rotation re-keys the record set the head commits to and no
/// other, in one transaction or in chunks: a record the store replayed in
/// an older version or deleted just before is exit 5 with nothing changed,
/// not passed into the new head. `--drop-unreadable`, the explicit
/// recovery, re-keys what is stored.
#[test]
fn a_rotation_does_not_launder_replayed_or_deleted_records() {
    let (env, _, _) = setup();
    for i in 0..4 {
        env.run(&["secrets", "set", &format!("R{i}"), &format!("r{i}")])
            .ok();
    }
    let record = |key: &str| -> (String, Vec<u8>) {
        let uuid = env.run(&["secrets", "get", key, "--json"]).ok().json()["uuid"]
            .as_str()
            .unwrap()
            .to_string();
        let ct = env
            .db()
            .query_row(
                "SELECT ciphertext FROM records WHERE uuid = ?1",
                [&uuid],
                |r| r.get(0),
            )
            .unwrap();
        (uuid, ct)
    };
    let epoch = || {
        env.run(&["identity", "show", "alice", "--json"])
            .ok()
            .json()["key_epoch"]
            .clone()
    };
    let before = epoch();
    let refused = |what: &str| {
        for extra in [&[][..], &["--chunk-records", "1"][..]] {
            let mut args = vec!["identity", "rotate", "alice"];
            args.extend_from_slice(extra);
            let r = env.run(&args).fails(EXIT_INTEGRITY);
            assert!(
                r.stderr.contains("rollback or deletion"),
                "{what} {extra:?}: {}",
                r.stderr
            );
            assert_eq!(epoch(), before, "{what} {extra:?}: nothing changed");
        }
    };
    let (uuid, old_ct) = record("R1");
    env.run(&["secrets", "set", "R1", "newer"]).ok();
    let (_, new_ct) = record("R1");
    let set_ct = |ct: &[u8]| {
        env.db()
            .execute(
                "UPDATE records SET ciphertext = ?1 WHERE uuid = ?2",
                params![ct, uuid],
            )
            .unwrap();
    };
    set_ct(&old_ct);
    refused("replayed");
    set_ct(&new_ct);
    let (gone, _) = record("R2");
    env.db()
        .execute("DELETE FROM records WHERE uuid = ?1", [&gone])
        .unwrap();
    refused("deleted");
    // the explicit recovery re-keys what the store holds
    let r = env
        .run(&["identity", "rotate", "alice", "--drop-unreadable", "--json"])
        .ok()
        .json();
    assert_ne!(r["key_epoch"], before);
    env.run(&["secrets", "get", "R2"]).fails(EXIT_NOT_FOUND);
    assert_eq!(
        env.run(&["secrets", "get", "R1"]).ok().stdout.trim(),
        "newer"
    );
}

/// Revokes agent A from alice, then restores alice's row and A's grant as
/// they were before (undoing the revocation, as a store with a backup
/// can), with a record written after the revocation. Returns the number of
/// records in the vault.
fn undo_revocation(env: &Env, public: &str) -> i64 {
    let db = env.db();
    let ident: (String, i64, Vec<u8>, Option<Vec<u8>>) = db
        .query_row(
            "SELECT uuid, key_epoch, wrapped_key, head FROM identities WHERE name = 'alice'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap();
    let grant: (String, Vec<u8>, Vec<u8>, Vec<u8>, String, Vec<u8>) = db
        .query_row(
            "SELECT uuid, recipient, ephemeral_public, wrapped_key, created_dt, signature FROM grants",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)),
        )
        .unwrap();
    env.run(&["identity", "revoke", "alice", "--from", public])
        .ok();
    env.run(&["secrets", "set", "LATER", "written-after-revoke"])
        .ok();
    env.run(&["secrets", "get", "K"]).ok();
    db.execute(
        "UPDATE identities SET key_epoch = ?2, wrapped_key = ?3, head = ?4 WHERE uuid = ?1",
        params![ident.0, ident.1, ident.2, ident.3],
    )
    .unwrap();
    db.execute(
        "INSERT INTO grants (uuid, identity_uuid, recipient, label, key_epoch, ephemeral_public,
             wrapped_key, created_dt, signature) VALUES (?1, ?2, ?3, NULL, ?4, ?5, ?6, ?7, ?8)",
        params![
            grant.0, ident.0, grant.1, ident.1, grant.2, grant.3, grant.4, grant.5
        ],
    )
    .unwrap();
    db.query_row("SELECT count(*) FROM records", [], |r| r.get(0))
        .unwrap()
}

/// After the rotation that recovers: the owner reads and writes alice
/// again, the revoked agent A opens nothing, and a second agent B, granted
/// afterwards, reads what the owner wrote.
fn assert_recovered(env: &Env, key: &std::path::Path, expect_k: Option<&str>) {
    match expect_k {
        Some(v) => assert_eq!(env.run(&["secrets", "get", "K"]).ok().stdout.trim(), v),
        None => {
            env.run(&["secrets", "get", "K"]).fails(EXIT_NOT_FOUND);
        }
    }
    env.run(&["secrets", "set", "AFTER", "written-after-recovery"])
        .ok();
    env.run(&["secrets", "list"]).ok();
    let r = as_agent(env, key, &["secrets", "get", "AFTER"]);
    assert_ne!(r.code, 0);
    assert!(!r.stdout.contains("written-after"), "{}", r.stdout);
    let (key_b, public_b) = env.keygen("b.key");
    env.run(&["identity", "grant", "alice", "--to", &public_b])
        .ok();
    let r = as_agent(env, &key_b, &["secrets", "get", "AFTER"]).ok();
    assert_eq!(r.stdout.trim(), "written-after-recovery");
}

/// A revoked agent's grant and the identity row restored from a backup
/// (undoing the revocation): the owner's client, which saw the rotation,
/// refuses to read or write the identity, so nothing is sealed under the
/// revoked key; `identity rotate` then recovers it with the newer key this
/// client remembers: every record kept, the restored grant removed.
#[test]
fn undone_revocation_is_caught_and_rotate_recovers() {
    let (env, key, public) = setup();
    let before = undo_revocation(&env, &public);
    for args in [
        vec!["secrets", "get", "K"],
        vec![
            "secrets",
            "set",
            "AFTER",
            "must-not-be-sealed-under-the-old-key",
        ],
    ] {
        let r = env.run(&args).fails(EXIT_INTEGRITY);
        assert!(r.stderr.contains("rollback"), "{}", r.stderr);
    }
    let after: i64 = env
        .db()
        .query_row("SELECT count(*) FROM records", [], |r| r.get(0))
        .unwrap();
    assert_eq!(before, after, "nothing was written under the revoked key");
    // the revoked agent opens nothing: its key opens the restored grant,
    // but every record was re-sealed under the new key
    let r = as_agent(&env, &key, &["secrets", "get", "K"]);
    assert_ne!(r.code, 0);
    assert!(!r.stdout.contains("alice-v"));

    let rot = env
        .run(&["identity", "rotate", "alice", "--json"])
        .ok()
        .json();
    assert_eq!(rot["records_resealed"], 2, "{rot}");
    assert_eq!(rot["records_dropped"], 0, "{rot}");
    assert_eq!(rot["grants_removed"], 1, "{rot}");
    assert_eq!(rot["grants_kept"], 0, "{rot}");
    let r = env.run(&["secrets", "get", "LATER"]).ok();
    assert_eq!(r.stdout.trim(), "written-after-revoke");
    assert_recovered(&env, &key, Some("alice-v"));
}

/// The same attack seen by another owner machine, which never saw the newer
/// key: the records sealed under it open for no one, so `identity rotate`
/// refuses (exit 5, nothing changed) until told to drop them; then the
/// identity works again and the revoked agent still opens nothing. The
/// machine that saw more accepts it after its own rotation.
#[test]
fn undone_revocation_on_another_machine_rotates_with_drop_unreadable() {
    let (env, key, public) = setup();
    undo_revocation(&env, &public);
    let other = |args: &[&str]| {
        let mut c = env.command();
        c.env("RAVI_CONFIG_DIR", env.dir.path().join("other-cfg"))
            .args(args);
        run_command(&mut c)
    };
    other(&["--identity", "alice", "secrets", "get", "K"]).fails(EXIT_INTEGRITY);
    let stored = std::fs::read(&env.vault).unwrap();
    let r = other(&["identity", "rotate", "alice"]).fails(EXIT_INTEGRITY);
    assert!(r.stderr.contains("--drop-unreadable"), "{}", r.stderr);
    assert_eq!(
        std::fs::read(&env.vault).unwrap(),
        stored,
        "nothing changed"
    );
    let rot = other(&["identity", "rotate", "alice", "--drop-unreadable", "--json"])
        .ok()
        .json();
    assert_eq!(rot["records_dropped"], 2, "{rot}");
    assert_eq!(rot["records_resealed"], 0, "{rot}");
    assert_eq!(rot["grants_removed"], 1, "{rot}");
    other(&["--identity", "alice", "secrets", "list"]).ok();
    // The first machine saw a newer head than that rotation wrote: it still
    // refuses, until its own rotation passes everything it saw.
    env.run(&["secrets", "get", "K"]).fails(EXIT_INTEGRITY);
    env.run(&["identity", "rotate", "alice"]).ok();
    assert_recovered(&env, &key, None);
}

/// Revoked wrapped keys and deleted ciphertext do not linger in the vault
/// file or its write-ahead log once the command has returned, even while
/// another connection keeps the log alive.
#[test]
fn retired_keys_and_deleted_records_leave_no_copy() {
    let (env, _, public) = setup();
    env.run(&["secrets", "set", "GONE", "to-be-deleted"]).ok();
    let read = |sql: &str| -> Vec<Vec<u8>> {
        let db = env.db();
        let mut st = db.prepare(sql).unwrap();
        st.query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    let mut retired = read("SELECT wrapped_key FROM grants");
    retired.extend(read(
        "SELECT wrapped_key FROM identities WHERE name = 'alice'",
    ));
    retired.extend(read(
        "SELECT ciphertext FROM records r JOIN identities i ON r.identity_uuid = i.uuid
         WHERE i.name = 'alice'",
    ));
    // another process with the vault open: the log is not removed on close
    let holder = env.db();
    holder
        .query_row("SELECT count(*) FROM identities", [], |r| {
            r.get::<_, i64>(0)
        })
        .unwrap();
    env.run(&["secrets", "delete", "GONE"]).ok();
    env.run(&["identity", "revoke", "alice", "--from", &public])
        .ok();
    assert!(env.vault.with_extension("db-wal").exists());
    for (path, bytes) in env.stored_bytes() {
        for old in &retired {
            assert!(
                !contains(&bytes, old),
                "a retired blob of {} bytes is still in {}",
                old.len(),
                path.display()
            );
        }
    }
    drop(holder);
}

/// The owner-signed vault head lists every identity and grant: a store
/// that deletes one, or rolls back an owner change, is caught.
#[test]
fn deleted_identity_grant_and_vault_head_rollback_are_caught() {
    let (env, _, _) = setup();
    let bob: String = env
        .db()
        .query_row("SELECT uuid FROM identities WHERE name = 'bob'", [], |r| {
            r.get(0)
        })
        .unwrap();
    // an identity deleted wholesale (its records and grants cascade)
    let saved = snapshot(&env);
    env.db()
        .execute("DELETE FROM identities WHERE uuid = ?1", [&bob])
        .unwrap();
    env.run(&["identity", "list"]).fails(EXIT_INTEGRITY);
    env.run(&["--identity", &bob, "get", "email"])
        .fails(EXIT_INTEGRITY);
    restore(&env, &saved);
    env.run(&["identity", "list"]).ok();
    // a grant deleted
    env.db().execute("DELETE FROM grants", []).unwrap();
    env.run(&["identity", "grants", "alice"])
        .fails(EXIT_INTEGRITY);
    restore(&env, &saved);
    env.run(&["identity", "grants", "alice"]).ok();
    // an owner change rolled back: the header row (with its vault head)
    // from before a new identity, for a client that saw the new one
    let (old_head, old_sig): (Vec<u8>, Vec<u8>) = env
        .db()
        .query_row("SELECT vault_head, signature FROM vault", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    env.run(&["identity", "create", "--name", "carol"]).ok();
    env.db()
        .execute(
            "UPDATE vault SET vault_head = ?1, signature = ?2",
            params![old_head, old_sig],
        )
        .unwrap();
    let r = env.run(&["identity", "list"]).fails(EXIT_INTEGRITY);
    assert!(
        r.stderr.contains("rollback") || r.stderr.contains("not in the vault head"),
        "{}",
        r.stderr
    );
    // and a client that never saw carol refuses the planted-looking row
    let mut c = env.command();
    c.env("RAVI_CONFIG_DIR", env.dir.path().join("fresh-cfg"))
        .args(["identity", "show", "carol"]);
    run_command(&mut c).fails(EXIT_INTEGRITY);
}

/// The stored nodes of an identity's record tree are not trusted either: a
/// changed node makes gets and writes of the buckets below it exit 5;
/// listings, which recompute the tree from the records, still print the
/// right data.
#[test]
fn tampered_tree_nodes_are_caught() {
    let (env, _, _) = setup();
    env.run(&["secrets", "set", "K2", "v2"]).ok();
    let nodes: Vec<(i64, Vec<u8>)> = {
        let db = env.db();
        let mut st = db.prepare("SELECT node, hash FROM tree_nodes").unwrap();
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    assert!(!nodes.is_empty());
    let mut caught = 0;
    for (node, hash) in &nodes {
        let mut bad = hash.clone();
        bad[0] ^= 1;
        env.db()
            .execute(
                "UPDATE tree_nodes SET hash = ?1 WHERE node = ?2 AND hash = ?3",
                params![bad, node, hash],
            )
            .unwrap();
        for (k, v) in [("K", "alice-v"), ("K2", "v2")] {
            let r = env.run(&["secrets", "get", k]);
            match r.code {
                0 => assert_eq!(r.stdout.trim(), v),
                5 => caught += 1,
                c => panic!("node {node}: exit {c}: {}", r.stderr),
            }
        }
        env.run(&["secrets", "list"]).ok();
        env.db()
            .execute(
                "UPDATE tree_nodes SET hash = ?1 WHERE node = ?2 AND hash = ?3",
                params![hash, node, bad],
            )
            .unwrap();
    }
    assert!(caught > 0, "no tampered node was noticed");
    env.run(&["secrets", "get", "K"]).ok();
}

/// Damaged client state is a clear input error, never a panic or a
/// silent reset: a pin or seen-head file that does not parse, and
/// `agent pin --key-file` on a file that is not an agent key.
#[test]
fn damaged_client_state_is_an_input_error() {
    let (env, _, _) = setup();
    let info = env.run(&["vault", "info", "--json"]).ok().json();
    let (vault_id, owner) = (
        info["vault_id"].as_str().unwrap().to_string(),
        info["owner_public_key"].as_str().unwrap().to_string(),
    );
    let pin = env.config_dir.join("pins").join(&vault_id);
    std::fs::write(&pin, "not a key\n").unwrap();
    let r = env.run(&["get", "email"]).fails(EXIT_INVALID);
    assert!(r.stderr.contains("not a valid pin"), "{}", r.stderr);
    std::fs::write(&pin, format!("{owner}\n")).unwrap();
    env.run(&["secrets", "get", "K"]).ok();
    let state = env
        .config_dir
        .join("state")
        .join(&vault_id)
        .join("vault-head");
    std::fs::write(&state, "many\n").unwrap();
    env.run(&["get", "email"]).fails(EXIT_INVALID);
    std::fs::write(&state, "0\n").unwrap();
    env.run(&["get", "email"]).ok();
    let not_a_key = env.dir.path().join("notes.txt");
    std::fs::write(&not_a_key, "hello\n").unwrap();
    env.run(&[
        "agent",
        "pin",
        "--owner-key",
        &owner,
        "--key-file",
        not_a_key.to_str().unwrap(),
    ])
    .fails(EXIT_INVALID);
    assert_eq!(std::fs::read_to_string(&not_a_key).unwrap(), "hello\n");
}

/// The client remembers the owner signatures it verified
/// (`state/verified`, SPEC 4a) so that later commands skip them, but a row
/// the store edits afterwards is a different message: it is verified, and
/// refused. A damaged memory is no memory, never an error.
#[test]
fn remembered_signatures_vouch_for_nothing_the_store_changes() {
    let (env, _, _) = setup();
    let memory = env.config_dir.join("state").join("verified");
    let read = || std::fs::read(&memory).unwrap();
    env.run(&["secrets", "get", "K"]).ok();
    let first = read();
    assert!(
        !first.is_empty() && first.len() % 32 == 0,
        "{}",
        first.len()
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&memory).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "{mode:o}");
    }
    // Reading again verifies nothing new: the memory is not written.
    env.run(&["secrets", "get", "K"]).ok();
    env.run(&["identity", "show"]).ok();
    assert_eq!(read(), first);
    // Torn and garbage entries: still works, every signature checked.
    std::fs::write(&memory, [0x5a; 70]).unwrap();
    env.run(&["secrets", "get", "K"]).ok();
    assert_eq!(read().len() % 32, 0);
    // The store edits a signed row after the client remembered it.
    env.db()
        .execute(
            "UPDATE identities SET inbox = 'attacker@evil.example' WHERE name = 'alice'",
            [],
        )
        .unwrap();
    let mut c = env.command();
    c.env_remove("RAVI_PASSPHRASE").args(["identity", "show"]);
    let r = run_command(&mut c);
    assert_eq!(r.code, EXIT_INTEGRITY, "{}", r.stderr);
    assert!(!r.stdout.contains("attacker"));
}
