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

/// `ravi` with `args` on a credential other than the passphrase: a session
/// token (`RAVI_SESSION`) or an agent key file.
fn with_credential(env: &Env, var: &str, value: &std::ffi::OsStr, args: &[&str]) -> Run {
    let mut c = env.command();
    c.env_remove("RAVI_PASSPHRASE").env(var, value).args(args);
    run_command(&mut c)
}

/// While one process rotates an identity's key at least 200 times, 4
/// readers and 4 writers (half on a session token, half on an agent key
/// whose grant each rotation re-wraps) work on it: no read of an existing
/// record says "not found", no command fails (no exit 6 either), and every
/// acknowledged write reads back. Every other rotation goes in chunks of 8
/// records (SPEC §4e), so the readers and writers also work inside its
/// window, with records under both keys.
#[test]
fn reads_and_writes_stay_correct_while_the_key_rotates() {
    const ROTATIONS: usize = 200;
    let (env, _) = Env::with_identity("busy");
    for i in 0..10 {
        env.run(&["secrets", "set", &format!("SEED_{i}"), &format!("seed-{i}")])
            .ok();
    }
    env.run(&["totp", "add", "example.org", "--secret", "JBSWY3DPEHPK3PXP"])
        .ok();
    let (key_file, public) = env.keygen("agent.key");
    env.run(&["identity", "grant", "busy", "--to", &public])
        .ok();
    let token = env
        .run(&["unlock", "--ttl", "1h"])
        .ok()
        .stdout
        .trim()
        .to_string();
    let credentials = [
        ("RAVI_SESSION", std::ffi::OsString::from(&token)),
        ("RAVI_AGENT_KEY_FILE", key_file.clone().into_os_string()),
    ];

    let done = std::sync::atomic::AtomicBool::new(false);
    let failures = std::sync::Mutex::new(Vec::<String>::new());
    let written = std::sync::Mutex::new(Vec::<(String, String)>::new());
    let reads = std::sync::atomic::AtomicUsize::new(0);
    let last_epoch = std::sync::atomic::AtomicU64::new(0);
    let fail = |who: &str, r: &Run| {
        failures
            .lock()
            .unwrap()
            .push(format!("{who}: exit {} {}", r.code, r.stderr.trim()));
    };
    std::thread::scope(|s| {
        s.spawn(|| {
            for n in 0..ROTATIONS {
                let (var, value) = &credentials[0];
                let chunk = if n % 2 == 0 { "8" } else { "256" };
                let r = with_credential(
                    &env,
                    var,
                    value,
                    &[
                        "identity",
                        "rotate",
                        "busy",
                        "--chunk-records",
                        chunk,
                        "--json",
                    ],
                );
                if r.code != 0 {
                    fail("rotate", &r);
                } else {
                    let epoch = r.json()["key_epoch"].as_u64().unwrap();
                    last_epoch.store(epoch, std::sync::atomic::Ordering::SeqCst);
                }
            }
            done.store(true, std::sync::atomic::Ordering::SeqCst);
        });
        for reader in 0..4 {
            let (var, value) = &credentials[reader % 2];
            let (done, reads, fail) = (&done, &reads, &fail);
            let env = &env;
            s.spawn(move || {
                let mut i = 0;
                while !done.load(std::sync::atomic::Ordering::SeqCst) {
                    i += 1;
                    let key = format!("SEED_{}", (i + reader) % 10);
                    let r = if i % 5 == 0 {
                        with_credential(env, var, value, &["totp", "code", "example.org"])
                    } else {
                        with_credential(env, var, value, &["secrets", "get", &key])
                    };
                    reads.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if r.code != 0 {
                        fail(&format!("reader {reader} ({var})"), &r);
                    } else if i % 5 != 0 && r.stdout.trim() != format!("seed-{}", (i + reader) % 10)
                    {
                        fail(&format!("reader {reader} read {:?}", r.stdout), &r);
                    }
                }
            });
        }
        for writer in 0..4 {
            let (var, value) = &credentials[writer % 2];
            let (done, written, fail) = (&done, &written, &fail);
            let env = &env;
            s.spawn(move || {
                let mut i = 0;
                while !done.load(std::sync::atomic::Ordering::SeqCst) && i < 150 {
                    i += 1;
                    let (key, val) = (format!("W{writer}_{i}"), format!("value-{writer}-{i}"));
                    let r = with_credential(env, var, value, &["secrets", "set", &key, &val]);
                    if r.code == 0 {
                        written.lock().unwrap().push((key, val));
                    } else {
                        fail(&format!("writer {writer} ({var})"), &r);
                    }
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    let not_found = failures.iter().filter(|f| f.contains("exit 3")).count();
    let conflicts = failures.iter().filter(|f| f.contains("exit 6")).count();
    assert!(
        failures.is_empty(),
        "{} failures ({not_found} not found, {conflicts} exit 6) over {} reads: {:#?}",
        failures.len(),
        reads.into_inner(),
        &failures[..failures.len().min(20)]
    );
    assert_eq!(last_epoch.into_inner(), 1 + ROTATIONS as u64);
    let written = written.into_inner().unwrap();
    assert!(written.len() >= 40, "only {} writes", written.len());
    for (key, val) in &written {
        let r = env.run(&["secrets", "get", key]).ok();
        assert_eq!(&r.stdout.trim(), val, "{key}");
    }
}

/// `kill -9` at 20 points spread over a rotation in chunks of 2,000
/// records (50 per transaction): after each, every record reads back (the
/// records not re-sealed yet open under the previous key the head keeps),
/// and the rotation completes: `rotate --resume` when the killed process
/// had switched keys, a new `rotate` when it had not (it changed nothing
/// then). At the end there is one key epoch per rotation, no window and
/// one tree slot.
#[test]
fn a_rotation_killed_anywhere_leaves_every_record_readable() {
    const RECORDS: usize = 2000;
    let (env, _) = Env::with_identity("big");
    let lines: String = (0..RECORDS)
        .map(|i| format!("K_{i:05}=value-{i}\n"))
        .collect();
    env.run_stdin(&["import", "dotenv", "-"], &lines).ok();
    let rotate = [
        "identity",
        "rotate",
        "big",
        "--chunk-records",
        "50",
        "--json",
    ];
    let epoch_now = || -> u64 {
        env.db()
            .query_row(
                "SELECT key_epoch FROM identities WHERE name = 'big'",
                [],
                |r| r.get::<_, u32>(0),
            )
            .map(u64::from)
            .unwrap()
    };
    let start = std::time::Instant::now();
    let first = env.run(&rotate).ok().json();
    let took = start.elapsed();
    assert_eq!(first["records_resealed"].as_u64().unwrap(), RECORDS as u64);
    let mut epoch = first["key_epoch"].as_u64().unwrap();
    let (mut resumed, mut before_switch) = (0, 0);
    for point in 0..20u32 {
        let mut child = env
            .command()
            .args(rotate)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(took * (2 * point + 1) / 40);
        let _ = child.kill(); // SIGKILL
        child.wait().unwrap();
        let list = env.run(&["secrets", "list", "--json"]).ok().json();
        assert_eq!(
            list.as_array().unwrap().len(),
            RECORDS,
            "after kill {point}"
        );
        let i = (point as usize * 97) % RECORDS;
        let got = env.run(&["secrets", "get", &format!("K_{i:05}")]).ok();
        assert_eq!(
            got.stdout.trim(),
            format!("value-{i}"),
            "after kill {point}"
        );
        let killed_at = epoch_now();
        let r = env.run(&["identity", "rotate", "big", "--resume", "--json"]);
        if r.code == 0 {
            // it had switched keys: resuming completes that rotation
            assert_eq!(killed_at, epoch + 1, "after kill {point}");
            assert_eq!(r.json()["key_epoch"].as_u64().unwrap(), epoch + 1);
            resumed += 1;
            epoch += 1;
        } else {
            assert_eq!(r.code, 3, "{}", r.stderr);
            assert!(r.stderr.contains("no rotation"), "{}", r.stderr);
            if killed_at == epoch {
                // killed before its switch: a new rotation completes it
                before_switch += 1;
                let again = env.run(&rotate).ok().json();
                assert_eq!(again["key_epoch"].as_u64().unwrap(), epoch + 1);
                assert_eq!(again["records_resealed"].as_u64().unwrap(), RECORDS as u64);
            }
            epoch += 1;
        }
        assert_eq!(epoch_now(), epoch, "after kill {point}");
        // one tree slot, no window left
        let slots: i64 = env
            .db()
            .query_row(
                "SELECT COUNT(DISTINCT node / 131072) FROM tree_nodes",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(slots, 1, "after kill {point}");
        assert_eq!(
            env.run(&["identity", "rotate", "big", "--resume"]).code,
            3,
            "after kill {point}"
        );
        let got = env.run(&["secrets", "get", &format!("K_{i:05}")]).ok();
        assert_eq!(got.stdout.trim(), format!("value-{i}"));
    }
    let shown = env.run(&["identity", "show", "big", "--json"]).ok().json();
    assert_eq!(shown["key_epoch"].as_u64().unwrap(), epoch);
    // the kill points fell inside windows (and the test saw them resumed)
    assert!(
        resumed > 0,
        "no kill fell inside a window ({before_switch} before a switch)"
    );
    let list = env.run(&["secrets", "list", "--json"]).ok().json();
    assert_eq!(list.as_array().unwrap().len(), RECORDS);
    let check: String = env
        .db()
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
}
