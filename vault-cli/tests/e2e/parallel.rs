use std::collections::HashSet;

use crate::common::*;

/// 8 processes at a time each write 50 secrets into one vault; every write
/// succeeds, every value reads back, and the file passes integrity_check.
#[test]
fn eight_writers_fifty_secrets_each() {
    let (env, _) = Env::with_identity("busy");
    std::thread::scope(|s| {
        for w in 0..8 {
            let env = &env;
            s.spawn(move || {
                for i in 0..50 {
                    env.run(&[
                        "secrets",
                        "set",
                        &format!("w{w}-k{i}"),
                        &format!("value-{w}-{i}"),
                    ])
                    .ok();
                }
            });
        }
    });
    let list = env.run(&["secrets", "list", "--json"]).ok().json();
    let keys: HashSet<_> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["key"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(keys.len(), 400);
    std::thread::scope(|s| {
        for w in 0..8 {
            let env = &env;
            s.spawn(move || {
                for i in 0..50 {
                    let v = env.run(&["secrets", "get", &format!("w{w}-k{i}")]).ok();
                    assert_eq!(v.stdout.trim(), format!("value-{w}-{i}"));
                }
            });
        }
    });
    let check: String = env
        .db()
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
}

/// Concurrent writers of one key: all succeed (no contention errors), one
/// value wins, and there is exactly one record.
#[test]
fn concurrent_set_of_one_key() {
    let (env, _) = Env::with_identity("race");
    std::thread::scope(|s| {
        for w in 0..8 {
            let env = &env;
            s.spawn(move || {
                for i in 0..10 {
                    env.run(&["secrets", "set", "SHARED", &format!("{w}-{i}")])
                        .ok();
                }
            });
        }
    });
    let list = env.run(&["secrets", "list", "--json"]).ok().json();
    assert_eq!(list.as_array().unwrap().len(), 1);
}

/// 8 processes running `identity use` at once leave a valid config file.
#[test]
fn concurrent_identity_use() {
    let env = Env::new();
    let mut uuids = HashSet::new();
    for n in 0..8 {
        let i = env
            .run(&[
                "identity",
                "create",
                "--name",
                &format!("agent{n}"),
                "--json",
            ])
            .ok()
            .json();
        uuids.insert(i["uuid"].as_str().unwrap().to_string());
    }
    std::thread::scope(|s| {
        for n in 0..8 {
            let env = &env;
            s.spawn(move || {
                for _ in 0..15 {
                    env.run(&["identity", "use", &format!("agent{n}")]).ok();
                }
            });
        }
    });
    let cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(env.config_dir.join("config.json")).unwrap())
            .unwrap();
    assert!(uuids.contains(cfg["identity_uuid"].as_str().unwrap()));
    let email = env.run(&["get", "email", "--json"]).ok().json();
    assert!(email["email"].as_str().unwrap().starts_with("agent"));
    // no temporary files left behind (beside pinned keys and seen heads)
    let leftovers: Vec<_> = std::fs::read_dir(&env.config_dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .filter(|n| n != "pins" && n != "state")
        .collect();
    assert_eq!(leftovers.len(), 1, "{leftovers:?}");
}
