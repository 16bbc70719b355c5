use crate::common::*;

/// Known canary strings stored through every field never appear in any file
/// the vault or the config writes (main file, -wal, -shm, config.json).
#[test]
fn no_plaintext_at_rest() {
    let (env, _) = Env::with_identity("canary-owner");
    // Hold a connection open so the last ravi process does not checkpoint
    // and delete the -wal file: its contents are checked too.
    let holder = env.db();
    holder
        .query_row("SELECT count(*) FROM records", [], |r| r.get::<_, i64>(0))
        .unwrap();
    let canaries = [
        "canary-domain-q7x.example",
        "canary-username-w3v",
        "canary-password-Zk9#",
        "canary-notes-p2m",
        "CANARY_SECRET_KEY_R5T",
        "canary-secret-value-j8h",
        "canary-secret-notes-b4n",
    ];
    env.run_stdin(
        &[
            "passwords",
            "create",
            canaries[0],
            "--username",
            canaries[1],
            "--password-stdin",
            "--notes",
            canaries[3],
        ],
        canaries[2],
    )
    .ok();
    env.run_stdin(
        &[
            "secrets",
            "set",
            canaries[4],
            "--value-stdin",
            "--notes",
            canaries[6],
        ],
        canaries[5],
    )
    .ok();
    // read them back so any read path that could spill runs too
    env.run(&["passwords", "get", canaries[0], "--json"]).ok();
    env.run(&["secrets", "get", canaries[4], "--json"]).ok();
    let files = env.stored_bytes();
    let names: Vec<_> = files
        .iter()
        .map(|(p, _)| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().any(|n| n == "vault.db"), "{names:?}");
    assert!(
        names.iter().any(|n| n == "vault.db-wal"),
        "WAL file checked too: {names:?}"
    );
    for (path, bytes) in &files {
        for c in canaries {
            assert!(
                !contains(bytes, c.as_bytes()),
                "{c} found in {}",
                path.display()
            );
        }
        assert!(
            !contains(bytes, PASSPHRASE.as_bytes()),
            "passphrase in {}",
            path.display()
        );
    }
    // and after a checkpoint folds the WAL into the main file
    drop(holder);
    env.db()
        .execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
        .unwrap();
    for (path, bytes) in env.stored_bytes() {
        for c in canaries {
            assert!(
                !contains(&bytes, c.as_bytes()),
                "{c} found in {}",
                path.display()
            );
        }
    }
}

/// Stored sizes reveal a Padmé size class, not a length: short values of
/// different lengths are one size (the 256-byte floor), values of 1000,
/// 1010 and 1024 bytes are one size, and that size is not the doubling of
/// power-of-two buckets but at most 12 % over the JSON. Every record is
/// written as envelope version 0x02.
#[test]
fn ciphertext_sizes_are_bucketed() {
    let (env, _) = Env::with_identity("pad");
    env.run(&["secrets", "set", "a", "x"]).ok();
    env.run(&["secrets", "set", "b", "xxxxxxxxxxxx"]).ok();
    env.run(&["secrets", "set", "c", &"y".repeat(1000)]).ok();
    env.run(&["secrets", "set", "d", &"y".repeat(1010)]).ok();
    env.run(&["secrets", "set", "e", &"z".repeat(1024)]).ok();
    let rows: Vec<(usize, u8)> = env
        .db()
        .prepare("SELECT length(ciphertext), substr(ciphertext, 1, 1) FROM records")
        .unwrap()
        .query_map([], |r| {
            Ok((r.get::<_, i64>(0)? as usize, r.get::<_, Vec<u8>>(1)?[0]))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let sizes: std::collections::BTreeMap<usize, usize> =
        rows.iter()
            .fold(std::collections::BTreeMap::new(), |mut m, (len, _)| {
                *m.entry(*len).or_insert(0) += 1;
                m
            });
    assert!(rows.iter().all(|(_, v)| *v == 2), "{rows:?}");
    // {a, b} at the 256-byte floor, {c, d, e} one size
    let largest = *sizes.keys().last().unwrap();
    assert_eq!(
        sizes.into_iter().collect::<Vec<_>>(),
        [(256 + 41, 2), (largest, 3)]
    );
    // the JSON around a 1024-byte value is about 100 bytes; 41 bytes of
    // version, nonce and tag
    assert!(largest - 41 < (1024 + 130) * 112 / 100, "{largest}");
    assert!(largest < 2048, "{largest}");
}
