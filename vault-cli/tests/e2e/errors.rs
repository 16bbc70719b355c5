use crate::common::*;

#[test]
fn wrong_or_missing_passphrase_is_locked() {
    let (env, _) = Env::with_identity("alice");
    env.run(&["secrets", "set", "K", "v"]).ok();
    let mut c = env.command();
    c.env("RAVI_PASSPHRASE", "not the passphrase")
        .args(["secrets", "get", "K", "--json"]);
    let r = run_command(&mut c).fails(EXIT_LOCKED);
    assert_eq!(r.error_json()["error"]["code"], "locked");
    assert!(
        r.error_json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("wrong passphrase")
    );
    assert!(r.stdout.is_empty());

    let mut c = env.command();
    c.env_remove("RAVI_PASSPHRASE")
        .args(["secrets", "get", "K"]);
    let r = run_command(&mut c).fails(EXIT_LOCKED);
    assert!(r.stderr.contains("locked"));

    // the passphrase from a file
    let f = env.dir.path().join("pass");
    std::fs::write(&f, format!("{PASSPHRASE}\n")).unwrap();
    let mut c = env.command();
    c.env_remove("RAVI_PASSPHRASE").args([
        "--passphrase-file",
        f.to_str().unwrap(),
        "secrets",
        "get",
        "K",
    ]);
    assert_eq!(run_command(&mut c).ok().stdout.trim(), "v");
    // a file beats the environment
    let mut c = env.command();
    c.env("RAVI_PASSPHRASE", "wrong").args([
        "secrets",
        "get",
        "K",
        "--passphrase-file",
        f.to_str().unwrap(),
    ]);
    run_command(&mut c).ok();
    let mut c = env.command();
    c.args(["secrets", "get", "K", "--passphrase-file", "/nonexistent"]);
    run_command(&mut c).fails(EXIT_INVALID);
}

#[test]
fn vault_lifecycle_errors() {
    let env = Env::empty();
    let r = env
        .run(&["identity", "list", "--json"])
        .fails(EXIT_NOT_FOUND);
    assert!(
        r.error_json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("ravi init")
    );
    assert!(!env.vault.exists(), "a failed open must not create a file");
    env.init(&["--inbox-domain", "nodots"]).fails(EXIT_INVALID);
    env.run(&["init", "--kdf-memory-mib", "0"])
        .fails(EXIT_INVALID);
    let mut c = env.command();
    c.env("RAVI_PASSPHRASE", "")
        .args(["init", "--kdf-memory-mib", "1", "--kdf-iterations", "1"]);
    run_command(&mut c).fails(EXIT_INVALID);
    let r = env.init(&["--json"]).ok();
    assert!(
        r.stderr.contains("weaker"),
        "weak parameters warn: {}",
        r.stderr
    );
    let info = r.json();
    assert_eq!(info["kdf"]["memory_kib"], 1024);
    assert_eq!(info["inbox_domain"], "ravi.invalid");
    env.init(&[]).fails(EXIT_CONFLICT);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&env.vault).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let mode = std::fs::metadata(env.vault.parent().unwrap())
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o700);
    }
    // the stored pragmas
    let db = env.db();
    let mode: String = db
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    let v: i64 = db
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(v, 5);
}

#[test]
fn newer_schema_is_refused() {
    let (env, _) = Env::with_identity("alice");
    env.db().pragma_update(None, "user_version", 99).unwrap();
    let r = env
        .run(&["identity", "list", "--json"])
        .fails(EXIT_CONFLICT);
    assert!(
        r.error_json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("newer")
    );
}

#[test]
fn not_a_vault_file() {
    let env = Env::empty();
    std::fs::create_dir_all(env.vault.parent().unwrap()).unwrap();
    std::fs::write(&env.vault, vec![0x55u8; 8192]).unwrap();
    let r = env
        .run(&["identity", "list", "--json"])
        .fails(EXIT_INTEGRITY);
    assert_eq!(r.error_json()["error"]["code"], "integrity");
}

/// Another program's SQLite database is never modified: not switched to
/// WAL, not migrated, and `init` refuses it without touching it.
#[test]
fn another_programs_sqlite_file_is_left_untouched() {
    let env = Env::empty();
    std::fs::create_dir_all(env.vault.parent().unwrap()).unwrap();
    {
        let db = rusqlite::Connection::open(&env.vault).unwrap();
        db.execute_batch("PRAGMA user_version = 7; CREATE TABLE notes (t TEXT); INSERT INTO notes VALUES ('mine');")
            .unwrap();
    }
    let before = std::fs::read(&env.vault).unwrap();
    for args in [
        &["identity", "list"][..],
        &["secrets", "get", "K", "--identity", "x"],
    ] {
        let r = env.run(args).fails(EXIT_INVALID);
        assert!(r.stderr.contains("not a ravi vault"), "{}", r.stderr);
    }
    let r = env.init(&[]).fails(EXIT_INVALID);
    assert!(r.stderr.contains("not a ravi vault"), "{}", r.stderr);
    assert_eq!(std::fs::read(&env.vault).unwrap(), before);
    let parent = env.vault.parent().unwrap();
    let names: Vec<_> = std::fs::read_dir(parent)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 1, "no -wal or -shm made: {names:?}");
}

#[test]
fn usage_errors_and_help() {
    let env = Env::empty();
    let r = env.run(&["--help"]).ok();
    for code in [
        "2  usage",
        "3  not found",
        "4  locked",
        "5  integrity",
        "6  conflict",
        "1  internal",
    ] {
        assert!(r.stdout.contains(code), "help lists exit code {code}");
    }
    env.run(&["frobnicate"]).fails(EXIT_INVALID);
    let e = env
        .run(&["frobnicate", "--json"])
        .fails(EXIT_INVALID)
        .error_json();
    assert_eq!(e["error"]["code"], "invalid_input");
    env.run(&["identity", "create"]).fails(EXIT_INVALID);
    // a rotation's chunk is at least one record; resuming is not recovering
    for bad in [
        &["identity", "rotate", "x", "--chunk-records", "0"][..],
        &["identity", "rotate", "x", "--chunk-records", "many"],
        &["identity", "rotate", "x", "--resume", "--drop-unreadable"],
    ] {
        env.run(bad).fails(EXIT_INVALID);
    }
    // a missing subcommand prints help but is still a usage error
    let r = env.run(&["identity"]).fails(EXIT_INVALID);
    assert!(r.stderr.contains("Usage"));
    // `--version` alone is answered before the parser is built, with the
    // text the parser prints for it (as in `--json --version`)
    let short = env.run(&["--version"]).ok().stdout;
    assert_eq!(short, format!("ravi {}\n", env!("CARGO_PKG_VERSION")));
    assert_eq!(env.run(&["-V"]).ok().stdout, short);
    assert_eq!(env.run(&["--json", "--version"]).ok().stdout, short);
}

/// A config.json that is a FIFO, a device or a huge file is refused
/// without being read (no hang, no endless read).
#[cfg(unix)]
#[test]
fn config_json_that_is_not_a_regular_file() {
    let (env, _) = Env::with_identity("alice");
    let config = env.config_dir.join("config.json");
    let check = |what: &str| {
        let r = env.run(&["get", "email"]).fails(EXIT_INVALID);
        assert!(r.stderr.contains(what), "{}", r.stderr);
    };
    std::fs::remove_file(&config).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &config).unwrap();
    check("not a regular file");
    std::fs::remove_file(&config).unwrap();
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&config)
            .status()
            .unwrap()
            .success()
    );
    check("not a regular file");
    std::fs::remove_file(&config).unwrap();
    std::fs::write(&config, vec![b' '; 1 << 20]).unwrap();
    check("too large");
}

/// Agent key files: not UTF-8 or a directory is exit 2 saying so; one
/// that others may read works, with a warning.
#[cfg(unix)]
#[test]
fn agent_key_file_checks() {
    use std::os::unix::fs::PermissionsExt;
    let (env, _) = Env::with_identity("alice");
    let (key, public) = env.keygen("a.key");
    env.run(&["secrets", "set", "K", "v"]).ok();
    env.run(&["identity", "grant", "alice", "--to", &public])
        .ok();
    let agent = |file: &std::path::Path| {
        let mut c = env.command();
        c.env_remove("RAVI_PASSPHRASE")
            .arg("--agent-key-file")
            .arg(file)
            .args(["secrets", "get", "K"]);
        run_command(&mut c)
    };
    let r = agent(&key).ok();
    assert!(!r.stderr.contains("warning"), "{}", r.stderr);
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let r = agent(&key).ok();
    assert!(
        r.stderr.contains("accessible by others") && r.stderr.contains("chmod 600"),
        "{}",
        r.stderr
    );
    let bad = env.work.join("bad.key");
    std::fs::write(&bad, [0xff, 0xfe, 0x00, 0x80]).unwrap();
    let r = agent(&bad).fails(EXIT_INVALID);
    assert!(r.stderr.contains("not UTF-8"), "{}", r.stderr);
    let r = agent(&env.work).fails(EXIT_INVALID);
    assert!(r.stderr.contains("is a directory"), "{}", r.stderr);
}

/// A value of exactly 1 MiB is refused by the input check, with its
/// message (the sealed record must fit in 1 MiB); the largest value the
/// check allows is stored and read back whole.
#[test]
fn one_mebibyte_value() {
    let (env, _) = Env::with_identity("alice");
    let file = env.work.join("big");
    std::fs::write(&file, "x".repeat(1 << 20)).unwrap();
    let r = env
        .run(&[
            "secrets",
            "set",
            "BIG",
            "--value-file",
            file.to_str().unwrap(),
        ])
        .fails(EXIT_INVALID);
    assert!(
        r.stderr.contains("the value is too large (1048576 bytes"),
        "{}",
        r.stderr
    );
    let max = (1 << 20) - 4096;
    std::fs::write(&file, "x".repeat(max)).unwrap();
    env.run(&[
        "secrets",
        "set",
        "BIG",
        "--value-file",
        file.to_str().unwrap(),
    ])
    .ok();
    let got = env.run(&["secrets", "get", "BIG"]).ok().stdout;
    assert_eq!(got.trim_end_matches('\n').len(), max);
}

/// Beyond a file-size limit (RLIMIT_FSIZE) a write is a clear error with
/// exit 1, not death by SIGXFSZ, and what was stored stays readable.
#[cfg(unix)]
#[test]
fn file_size_limit_is_an_error_not_a_signal() {
    let (env, _) = Env::with_identity("alice");
    env.run(&["secrets", "set", "K", "kept"]).ok();
    let file = env.work.join("big");
    std::fs::write(&file, "y".repeat(900_000)).unwrap();
    let mut c = env.command_for(std::path::Path::new("bash"));
    c.arg("-c")
        .arg(r#"ulimit -f 200; exec "$0" secrets set BIG --value-file "$1""#)
        .arg(ravi_bin())
        .arg(&file);
    let r = run_command(&mut c).fails(1);
    assert!(r.stderr.contains("file-size limit"), "{}", r.stderr);
    assert_eq!(env.run(&["secrets", "get", "K"]).ok().stdout.trim(), "kept");
    env.run(&["secrets", "get", "BIG"]).fails(EXIT_NOT_FOUND);
}

/// Read commands work on a vault whose directory is read-only and that
/// has no `-wal`/`-shm` beside it (as a copy of the file alone, or a
/// read-only filesystem); a write says why it cannot be done (exit 1) and
/// nothing is created in the directory. As root (which ignores permission
/// bits) the commands run as `nobody` through setpriv.
#[cfg(unix)]
#[test]
fn reads_work_on_a_read_only_directory() {
    use std::os::unix::fs::PermissionsExt;
    let (env, _) = Env::with_identity("alice");
    env.run(&["secrets", "set", "K", "v1"]).ok();
    env.run(&["totp", "add", "example.org", "--secret", "JBSWY3DPEHPK3PXP"])
        .ok();
    let token = env.run(&["unlock"]).ok().stdout.trim().to_string();
    let dir = env.vault.parent().unwrap().to_path_buf();
    for suffix in ["-wal", "-shm"] {
        let mut p = env.vault.clone().into_os_string();
        p.push(suffix);
        let _ = std::fs::remove_file(p);
    }
    let root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    if root {
        let status = std::process::Command::new("chown")
            .args(["-R", "65534:65534"])
            .arg(env.dir.path())
            .status()
            .unwrap();
        assert!(status.success());
    }
    std::fs::set_permissions(&env.vault, std::fs::Permissions::from_mode(0o444)).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o555)).unwrap();
    let run = |args: &[&str]| {
        let mut c = if root {
            let mut c = env.command_for(std::path::Path::new("setpriv"));
            c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
                .arg(ravi_bin());
            c
        } else {
            env.command()
        };
        c.env_remove("RAVI_PASSPHRASE")
            .env("RAVI_SESSION", &token)
            .args(args);
        run_command(&mut c)
    };
    assert_eq!(run(&["secrets", "get", "K"]).ok().stdout.trim(), "v1");
    assert!(run(&["secrets", "list"]).ok().stdout.contains("K\t"));
    assert_eq!(
        run(&["totp", "code", "example.org", "--at", "59"])
            .ok()
            .stdout
            .trim(),
        "996554"
    );
    let e = run(&["secrets", "set", "K2", "v2"]).fails(EXIT_INTERNAL);
    assert!(e.stderr.contains("read-only"), "{}", e.stderr);
    let entries: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    // A schema too old to read without migrating it: exit 1, saying so,
    // and the file as it was.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&env.vault, std::fs::Permissions::from_mode(0o644)).unwrap();
    env.db()
        .execute_batch("PRAGMA journal_mode = DELETE; PRAGMA user_version = 2;")
        .unwrap();
    for suffix in ["-wal", "-shm"] {
        let mut p = env.vault.clone().into_os_string();
        p.push(suffix);
        let _ = std::fs::remove_file(p);
    }
    let before = std::fs::read(&env.vault).unwrap();
    std::fs::set_permissions(&env.vault, std::fs::Permissions::from_mode(0o444)).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o555)).unwrap();
    let e = run(&["secrets", "get", "K"]).fails(EXIT_INTERNAL);
    assert!(e.stderr.contains("too old"), "{}", e.stderr);
    assert_eq!(std::fs::read(&env.vault).unwrap(), before);
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
}
