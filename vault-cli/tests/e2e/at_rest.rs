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

/// Stored sizes reveal a padding bucket, not a length.
#[test]
fn ciphertext_sizes_are_bucketed() {
    let (env, _) = Env::with_identity("pad");
    env.run(&["secrets", "set", "a", "x"]).ok();
    env.run(&["secrets", "set", "b", "xxxxxxxxxxxx"]).ok();
    let sizes: Vec<i64> = env
        .db()
        .prepare("SELECT length(ciphertext) FROM records")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(sizes.len(), 2);
    assert_eq!(sizes[0], sizes[1]);
}
