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

/// An identity left in a rotation's window (SPEC §4e, as a rotation
/// stopped after its switch leaves it), with records under both epochs.
/// Returns the identity's uuid.
fn in_a_window(env: &Env) -> String {
    for i in 0..5 {
        env.run(&["secrets", "set", &format!("OLD_{i}"), &format!("old-{i}")])
            .ok();
    }
    let vault = vault_core::Vault::open(&env.vault).unwrap();
    let owner = vault
        .unlock(&vault_core::Passphrase::new(PASSPHRASE.to_string()).unwrap())
        .unwrap();
    let options = vault_core::RotateOptions {
        chunk_records: Some(1),
        ..vault_core::RotateOptions::default()
    };
    let r = owner.open_rotation_window("alice", &options).unwrap();
    env.run(&["secrets", "set", "NEW", "new"]).ok();
    r.identity.uuid
}

/// In a rotation's window every byte of the head counts — its extension
/// (slot, previous epoch, sealed previous key) is under the head's MAC and
/// the previous key under the new key — and a record relabelled to the
/// other epoch, or a tree moved to the other slot, fails: exit 5, and the
/// rotation completes once the rows are restored.
#[test]
fn every_byte_of_a_window_head_and_the_window_rows() {
    let (env, _) = Env::with_identity("alice");
    let uuid = in_a_window(&env);
    let head = blob(&env, "SELECT head FROM identities WHERE uuid = ?1", &uuid);
    assert!(
        head.len() > 76 + 1 + 6,
        "a head with a window: {} bytes",
        head.len()
    );
    let set_head = |h: &[u8]| {
        env.db()
            .execute(
                "UPDATE identities SET head = ?1 WHERE uuid = ?2",
                params![h, uuid],
            )
            .unwrap();
    };
    for i in 0..head.len() {
        let mut bad = head.clone();
        bad[i] ^= 0x01;
        set_head(&bad);
        let r = env
            .run(&["secrets", "get", "OLD_1", "--json"])
            .fails(EXIT_INTEGRITY);
        assert_eq!(r.error_json()["error"]["code"], "integrity", "byte {i}");
    }
    // the window stripped, or the head cut short or lengthened
    let stripped: Vec<u8> = [&head[..44], &head[head.len() - 32..]].concat();
    for bad in [
        stripped,
        head[..head.len() - 1].to_vec(),
        [&head[..], &[0]].concat(),
    ] {
        set_head(&bad);
        env.run(&["secrets", "get", "OLD_1"]).fails(EXIT_INTEGRITY);
    }
    set_head(&head);
    assert_eq!(
        env.run(&["secrets", "get", "OLD_1"]).ok().stdout.trim(),
        "old-1"
    );
    assert_eq!(
        env.run(&["secrets", "get", "NEW"]).ok().stdout.trim(),
        "new"
    );

    // a record relabelled to the other epoch does not open (its epoch is
    // bound by its associated data and its key)
    let epoch: u32 = env
        .db()
        .query_row(
            "SELECT key_epoch FROM identities WHERE uuid = ?1",
            [&uuid],
            |r| r.get(0),
        )
        .unwrap();
    let set_epoch = |record: &str, e: u32| {
        env.db()
            .execute(
                "UPDATE records SET key_epoch = ?1 WHERE uuid = ?2",
                params![e, record],
            )
            .unwrap();
    };
    for (key, own, other) in [("OLD_2", epoch - 1, epoch), ("NEW", epoch, epoch - 1)] {
        let record = env.run(&["secrets", "get", key, "--json"]).ok().json()["uuid"]
            .as_str()
            .unwrap()
            .to_string();
        for e in [other, epoch + 1, epoch - 2] {
            set_epoch(&record, e);
            env.run(&["secrets", "get", key]).fails(EXIT_INTEGRITY);
            env.run(&["secrets", "list"]).fails(EXIT_INTEGRITY);
        }
        set_epoch(&record, own);
        env.run(&["secrets", "get", key]).ok();
    }

    // the two tree slots swapped: the old epoch's tree does not prove the
    // new head's records
    let swap = || {
        for (from, to) in [(0, 2), (1, 0), (2, 1)] {
            env.db()
                .execute(
                    "UPDATE tree_nodes SET node = node - ?1 * 131072 + ?2 * 131072
                     WHERE identity_uuid = ?3 AND node >= ?1 * 131072 AND node < (?1 + 1) * 131072",
                    params![from, to, uuid],
                )
                .unwrap();
        }
    };
    swap();
    env.run(&["secrets", "get", "OLD_1"]).fails(EXIT_INTEGRITY);
    env.run(&["secrets", "get", "NEW"]).fails(EXIT_INTEGRITY);
    swap();
    env.run(&["secrets", "get", "OLD_1"]).ok();

    // restored, the rotation completes
    let r = env
        .run(&["identity", "rotate", "alice", "--resume", "--json"])
        .ok()
        .json();
    assert_eq!(r["key_epoch"].as_u64().unwrap(), u64::from(epoch));
    assert_eq!(r["records_resealed"].as_u64().unwrap(), 5);
    assert_eq!(
        env.run(&["secrets", "get", "OLD_1"]).ok().stdout.trim(),
        "old-1"
    );
    assert_eq!(
        env.run(&["secrets", "list", "--json"])
            .ok()
            .json()
            .as_array()
            .unwrap()
            .len(),
        6
    );
    env.run(&["identity", "rotate", "alice", "--resume"])
        .fails(EXIT_NOT_FOUND);
}
