//! Every stored ciphertext and wrapped key is authenticated: a single
//! flipped byte, or a blob moved to another row, kind or identity, fails.

use rusqlite::params;

use crate::common::*;

fn blob(env: &Env, sql: &str, key: &str) -> Vec<u8> {
    env.db().query_row(sql, [key], |r| r.get(0)).unwrap()
}

/// A vault with identity `alice` holding one password, one secret and one
/// TOTP seed, and identity `bob` holding one secret.
fn populated() -> (Env, String, String, String) {
    let (env, _) = Env::with_identity("alice");
    env.run(&[
        "totp",
        "add",
        "svc",
        "--secret",
        "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ",
    ])
    .ok();
    let pw = env
        .run(&[
            "passwords",
            "create",
            "example.com",
            "--username",
            "u",
            "--password",
            "p",
            "--json",
        ])
        .ok()
        .json();
    let sec = env.run(&["secrets", "set", "K", "v", "--json"]).ok().json();
    env.run(&["identity", "create", "--name", "bob"]).ok();
    let bob = env
        .run(&[
            "--identity",
            "bob",
            "secrets",
            "set",
            "K",
            "bob-v",
            "--json",
        ])
        .ok()
        .json();
    let s = |v: &serde_json::Value| v["uuid"].as_str().unwrap().to_string();
    (env, s(&pw), s(&sec), s(&bob))
}

#[test]
fn every_byte_of_every_record_ciphertext() {
    let (env, pw, sec, _) = populated();
    let totp = env.run(&["totp", "show", "svc", "--json"]).ok().json()["uuid"]
        .as_str()
        .unwrap()
        .to_string();
    for (uuid, cmd, get) in [
        (&pw, "passwords", "get"),
        (&sec, "secrets", "get"),
        (&totp, "totp", "show"),
    ] {
        let original = blob(&env, "SELECT ciphertext FROM records WHERE uuid = ?1", uuid);
        for i in 0..original.len() {
            let mut bad = original.clone();
            bad[i] ^= 0x01;
            env.db()
                .execute(
                    "UPDATE records SET ciphertext = ?1 WHERE uuid = ?2",
                    params![bad, uuid],
                )
                .unwrap();
            let r = env.run(&[cmd, get, uuid, "--json"]).fails(EXIT_INTEGRITY);
            assert_eq!(r.error_json()["error"]["code"], "integrity", "byte {i}");
            env.run(&[cmd, "list"]).fails(EXIT_INTEGRITY);
        }
        env.db()
            .execute(
                "UPDATE records SET ciphertext = ?1 WHERE uuid = ?2",
                params![original, uuid],
            )
            .unwrap();
        env.run(&[cmd, get, uuid]).ok();
    }
    env.run(&["totp", "code", "svc"]).ok();
    // truncated and empty ciphertexts too
    let original = blob(&env, "SELECT ciphertext FROM records WHERE uuid = ?1", &sec);
    for bad in [
        original[..original.len() - 1].to_vec(),
        Vec::new(),
        vec![0u8; 200],
    ] {
        env.db()
            .execute(
                "UPDATE records SET ciphertext = ?1 WHERE uuid = ?2",
                params![bad, sec],
            )
            .unwrap();
        env.run(&["secrets", "get", "K"]).fails(EXIT_INTEGRITY);
    }
}

#[test]
fn every_byte_of_the_wrapped_identity_key() {
    let (env, _, _, _) = populated();
    let original = blob(
        &env,
        "SELECT wrapped_key FROM identities WHERE name = ?1",
        "alice",
    );
    for i in 0..original.len() {
        let mut bad = original.clone();
        bad[i] ^= 0x80;
        env.db()
            .execute(
                "UPDATE identities SET wrapped_key = ?1 WHERE name = 'alice'",
                [bad],
            )
            .unwrap();
        env.run(&["secrets", "get", "K", "--json"])
            .fails(EXIT_INTEGRITY);
    }
    env.db()
        .execute(
            "UPDATE identities SET wrapped_key = ?1 WHERE name = 'alice'",
            [&original],
        )
        .unwrap();
    env.run(&["secrets", "get", "K"]).ok();
    // the identity's clear metadata is bound to its key: editing it fails
    env.db()
        .execute(
            "UPDATE identities SET inbox = 'evil@attacker.example' WHERE name = 'alice'",
            [],
        )
        .unwrap();
    env.run(&["secrets", "get", "K"]).fails(EXIT_INTEGRITY);
    env.db().execute("UPDATE identities SET inbox = 'alice@agents.example.com', phone = '+15550000000' WHERE name = 'alice'", []).unwrap();
    env.run(&["secrets", "get", "K"]).fails(EXIT_INTEGRITY);
    env.db()
        .execute(
            "UPDATE identities SET phone = NULL WHERE name = 'alice'",
            [],
        )
        .unwrap();
    env.run(&["secrets", "get", "K"]).ok();
    // bob's wrapped key on alice's row fails
    let bobs = blob(
        &env,
        "SELECT wrapped_key FROM identities WHERE name = ?1",
        "bob",
    );
    env.db()
        .execute(
            "UPDATE identities SET wrapped_key = ?1 WHERE name = 'alice'",
            [bobs],
        )
        .unwrap();
    env.run(&["secrets", "get", "K"]).fails(EXIT_INTEGRITY);
}

/// The wrapped root key and its KDF parameters: any change is
/// indistinguishable from a wrong passphrase, by design.
#[test]
fn every_byte_of_the_wrapped_root_key_and_kdf_header() {
    let (env, _, _, _) = populated();
    let original: Vec<u8> = env
        .db()
        .query_row("SELECT wrapped_root_key FROM vault", [], |r| r.get(0))
        .unwrap();
    for i in 0..original.len() {
        let mut bad = original.clone();
        bad[i] ^= 0x04;
        env.db()
            .execute("UPDATE vault SET wrapped_root_key = ?1", [bad])
            .unwrap();
        let r = env
            .run(&["secrets", "get", "K", "--json"])
            .fails(EXIT_LOCKED);
        assert!(
            r.error_json()["error"]["message"]
                .as_str()
                .unwrap()
                .contains("damaged vault")
        );
    }
    env.db()
        .execute("UPDATE vault SET wrapped_root_key = ?1", [&original])
        .unwrap();
    env.run(&["secrets", "get", "K"]).ok();
    let salt: Vec<u8> = env
        .db()
        .query_row("SELECT kdf_salt FROM vault", [], |r| r.get(0))
        .unwrap();
    let mut bad = salt.clone();
    bad[0] ^= 1;
    env.db()
        .execute("UPDATE vault SET kdf_salt = ?1", [bad])
        .unwrap();
    // the owner's signature on the header covers the salt: caught before
    // any key derivation
    env.run(&["secrets", "get", "K"]).fails(EXIT_INTEGRITY);
    env.db()
        .execute("UPDATE vault SET kdf_salt = ?1", [salt])
        .unwrap();
    // a changed cost parameter is caught by the header signature (and by
    // the root key's associated data)
    env.db()
        .execute("UPDATE vault SET kdf_memory_kib = 2048", [])
        .unwrap();
    env.run(&["secrets", "get", "K"]).fails(EXIT_INTEGRITY);
    // an absurd cost is refused before any allocation
    env.db()
        .execute("UPDATE vault SET kdf_memory_kib = 2147483647", [])
        .unwrap();
    env.run(&["secrets", "get", "K"]).fails(EXIT_INTEGRITY);
    env.db()
        .execute("UPDATE vault SET kdf_memory_kib = 1024", [])
        .unwrap();
    env.run(&["secrets", "get", "K"]).ok();
}

#[test]
fn moved_ciphertexts_fail() {
    let (env, pw, sec, bob) = populated();
    let db = env.db();
    let get = |uuid: &str| -> Vec<u8> {
        blob(&env, "SELECT ciphertext FROM records WHERE uuid = ?1", uuid)
    };
    let set = |uuid: &str, ct: &[u8]| {
        db.execute(
            "UPDATE records SET ciphertext = ?1 WHERE uuid = ?2",
            params![ct, uuid],
        )
        .unwrap();
    };
    let (pw_ct, sec_ct, bob_ct) = (get(&pw), get(&sec), get(&bob));

    // another record of the same kind and identity
    env.run(&["secrets", "set", "K2", "v2"]).ok();
    let k2 = env.run(&["secrets", "get", "K2", "--json"]).ok().json()["uuid"]
        .as_str()
        .unwrap()
        .to_string();
    let k2_ct = get(&k2);
    set(&k2, &sec_ct);
    env.run(&["secrets", "get", "K2"]).fails(EXIT_INTEGRITY);
    env.run(&["secrets", "get", &k2]).fails(EXIT_INTEGRITY);
    set(&k2, &k2_ct);
    env.run(&["secrets", "get", "K2"]).ok();

    // another kind: a secret's ciphertext on a password row
    set(&pw, &sec_ct);
    env.run(&["passwords", "get", &pw]).fails(EXIT_INTEGRITY);
    set(&pw, &pw_ct);
    // or the row's kind column rewritten
    db.execute("UPDATE records SET kind = 1 WHERE uuid = ?1", [&sec])
        .unwrap();
    env.run(&["passwords", "list"]).fails(EXIT_INTEGRITY);
    db.execute("UPDATE records SET kind = 2 WHERE uuid = ?1", [&sec])
        .unwrap();

    // another identity: bob's secret ciphertext on alice's row, and moved rows
    set(&sec, &bob_ct);
    env.run(&["secrets", "get", "K"]).fails(EXIT_INTEGRITY);
    set(&sec, &sec_ct);
    let alice: String = db
        .query_row("SELECT uuid FROM identities WHERE name='alice'", [], |r| {
            r.get(0)
        })
        .unwrap();
    db.execute(
        "UPDATE records SET identity_uuid = ?1 WHERE uuid = ?2",
        params![alice, bob],
    )
    .unwrap();
    env.run(&["secrets", "list"]).fails(EXIT_INTEGRITY);
    let bob_id: String = db
        .query_row("SELECT uuid FROM identities WHERE name='bob'", [], |r| {
            r.get(0)
        })
        .unwrap();
    db.execute(
        "UPDATE records SET identity_uuid = ?1 WHERE uuid = ?2",
        params![bob_id, bob],
    )
    .unwrap();

    // a blind index swapped between records is caught when opening
    let idx_k: Vec<u8> = db
        .query_row(
            "SELECT blind_index FROM records WHERE uuid = ?1",
            [&sec],
            |r| r.get(0),
        )
        .unwrap();
    let idx_k2: Vec<u8> = db
        .query_row(
            "SELECT blind_index FROM records WHERE uuid = ?1",
            [&k2],
            |r| r.get(0),
        )
        .unwrap();
    db.execute(
        "UPDATE records SET blind_index = ?1 WHERE uuid = ?2",
        params![vec![0u8; 32], sec],
    )
    .unwrap();
    db.execute(
        "UPDATE records SET blind_index = ?1 WHERE uuid = ?2",
        params![idx_k, k2],
    )
    .unwrap();
    env.run(&["secrets", "get", "K"]).fails(EXIT_INTEGRITY);
    db.execute(
        "UPDATE records SET blind_index = ?1 WHERE uuid = ?2",
        params![idx_k2, k2],
    )
    .unwrap();
    db.execute(
        "UPDATE records SET blind_index = ?1 WHERE uuid = ?2",
        params![idx_k, sec],
    )
    .unwrap();

    // everything intact again: nothing was lost by the failed reads
    assert_eq!(env.run(&["secrets", "get", "K"]).ok().stdout.trim(), "v");
    assert_eq!(
        env.run(&["--identity", "bob", "secrets", "get", "K"])
            .ok()
            .stdout
            .trim(),
        "bob-v"
    );
    assert_eq!(
        env.run(&["passwords", "get", "example.com", "--json"])
            .ok()
            .json()["password"],
        "p"
    );
}
