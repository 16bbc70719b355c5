//! Read commands write nothing to the vault: under `strace -f -y`, no
//! `write`/`pwrite`/`fsync`/`fdatasync`/`ftruncate` on the vault file or
//! its `-wal`, and no `unlink` of any of the vault's files (the `-shm`
//! index may be written, as WAL mode requires).

use crate::common::*;

const WRITES: [&str; 8] = [
    "write(",
    "pwrite64(",
    "pwritev(",
    "pwritev2(",
    "writev(",
    "fsync(",
    "fdatasync(",
    "ftruncate(",
];

pub fn reads_write_nothing_to_the_vault() {
    let (env, _) = Env::with_identity("alice");
    env.run(&[
        "identity",
        "create",
        "--name",
        "bob",
        "--phone",
        "+14155550123",
    ])
    .ok();
    env.run_stdin(&["secrets", "set", "K", "--value-stdin"], "v")
        .ok();
    env.run_stdin(
        &["passwords", "create", "example.com", "--password-stdin"],
        "pw",
    )
    .ok();
    env.run(&["totp", "add", "t", "--secret", "JBSWY3DPEHPK3PXP"])
        .ok();
    let (key, public) = env.keygen("a.key");
    env.run(&["identity", "grant", "alice", "--to", &public])
        .ok();
    let session = env.run(&["unlock"]).ok().stdout.trim().to_string();
    let vault = env.vault.to_str().unwrap().to_string();
    let reads: [&[&str]; 10] = [
        &["secrets", "get", "K"],
        &["secrets", "list"],
        &["passwords", "list"],
        &["passwords", "get", "example.com"],
        &["totp", "code", "t"],
        &["identity", "list"],
        &["identity", "show"],
        &["get", "email"],
        &["--identity", "bob", "get", "phone"],
        &["read", "ravi://secrets/K"],
    ];
    let mut runs = Vec::new();
    for args in reads {
        runs.push(("session", args));
    }
    for args in [
        &["secrets", "get", "K"][..],
        &["totp", "code", "t"],
        &["get", "email"],
    ] {
        runs.push(("agent", args));
    }
    for (how, args) in runs {
        let log = env.work.join("strace.log");
        let mut c = env.command_for(std::path::Path::new("strace"));
        c.env_remove("RAVI_PASSPHRASE");
        match how {
            "session" => c.env("RAVI_SESSION", &session),
            _ => c.env("RAVI_AGENT_KEY_FILE", &key),
        };
        let out = c
            .args(["-f", "-y", "-qq", "-s", "0", "-o"])
            .arg(&log)
            .arg("-e")
            .arg("trace=write,pwrite64,pwritev,pwritev2,writev,fsync,fdatasync,ftruncate,unlink,unlinkat,rename,renameat,renameat2")
            .arg(ravi_bin())
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{how} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let trace = std::fs::read_to_string(&log).unwrap();
        for line in trace.lines() {
            let on_vault = |suffix: &str| line.contains(&format!("<{vault}{suffix}>"));
            let wrote =
                WRITES.iter().any(|w| line.contains(w)) && (on_vault("") || on_vault("-wal"));
            let unlinked =
                (line.contains("unlink") || line.contains("rename")) && line.contains(&vault);
            assert!(
                !wrote && !unlinked,
                "{how} {args:?} changed the vault: {line}\n{trace}"
            );
        }
        // the tracer saw the process at all (stdout written)
        assert!(
            trace.contains("write(1"),
            "{how} {args:?}: no trace?\n{trace}"
        );
    }
    // and the log and index files are still there, not re-created per process
    for suffix in ["-wal", "-shm"] {
        assert!(
            std::path::Path::new(&format!("{vault}{suffix}")).exists(),
            "{suffix}"
        );
    }
}
