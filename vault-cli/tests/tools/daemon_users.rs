//! `ravi daemon` across users: a daemon run by another user is not
//! believed by a client, and the daemon answers no client of another user.
//! Needs a second user: `nobody`, through `runuser` (as root) or `sudo -n`.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::common::{PASSPHRASE, WEAK_KDF, ravi_bin, spawn_for_line, to_run};

fn root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false)
}

/// A command line prefix that runs a program as `nobody`, if this machine
/// has one.
pub fn as_nobody() -> Option<Vec<&'static str>> {
    let works = |prefix: &[&str]| {
        Command::new(prefix[0])
            .args(&prefix[1..])
            .arg("true")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    let prefix: &[&'static str] = if root() {
        &["runuser", "-u", "nobody", "--"]
    } else {
        &["sudo", "-n", "-u", "nobody", "--"]
    };
    works(prefix).then(|| prefix.to_vec())
}

/// `PROGRAM ARGS` as `nobody`, with only the variables given.
fn as_nobody_run(vars: &[(&str, String)], program: &Path, args: &[&str]) -> Command {
    let prefix = as_nobody().expect("a way to run as nobody");
    let mut c = Command::new(prefix[0]);
    c.args(&prefix[1..]).arg("env").arg("-i");
    for (k, v) in vars {
        c.arg(format!("{k}={v}"));
    }
    c.arg(program).args(args).stdin(Stdio::null());
    c
}

pub fn a_daemon_of_another_user_is_not_believed() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path();
    std::fs::set_permissions(base, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let (home, vault) = (base.join("home"), base.join("vault.db"));
    let mut vars = vec![
        ("HOME", home.display().to_string()),
        ("RAVI_CONFIG_DIR", base.join("cfg").display().to_string()),
        ("RAVI_VAULT", vault.display().to_string()),
        ("RAVI_PASSPHRASE", PASSPHRASE.to_string()),
    ];
    let nobody = |vars: &[(&str, String)], args: &[&str]| {
        let r = to_run(as_nobody_run(vars, ravi_bin(), args).output().unwrap());
        assert_eq!(r.code, 0, "ravi {args:?} as nobody: {}", r.stderr);
        r
    };
    nobody(&vars, &[&["init"][..], &WEAK_KDF].concat());
    nobody(&vars, &["identity", "create", "--name", "alice"]);
    nobody(&vars, &["identity", "use", "alice"]);
    nobody(&vars, &["secrets", "set", "API_KEY", "nobodys-value"]);
    let token = nobody(&vars, &["unlock"]).stdout.trim().to_string();
    vars.retain(|(k, _)| *k != "RAVI_PASSPHRASE");
    vars.push(("RAVI_SESSION", token));
    let socket = base.join("d.sock");
    let mut daemon = as_nobody_run(
        &vars,
        ravi_bin(),
        &[
            "daemon",
            "--json",
            "--ttl",
            "2m",
            "--socket",
            socket.to_str().unwrap(),
        ],
    );
    let (mut child, line) = spawn_for_line(&mut daemon);
    let ready: serde_json::Value =
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
    let pid = ready["pid"].as_u64().expect("the daemon's pid").to_string();

    // This user's client does not ask a daemon of another user: it warns
    // and runs the command itself (here without a credential: refused).
    let mut client = Command::new(ravi_bin());
    client
        .env_clear()
        .env("HOME", &home)
        .env("RAVI_CONFIG_DIR", base.join("client-cfg"))
        .env("RAVI_VAULT", &vault)
        .env("RAVI_DAEMON", &socket)
        .args(["--identity", "alice", "secrets", "get", "API_KEY"])
        .stdin(Stdio::null());
    let r = to_run(client.output().unwrap());
    assert!(!r.stdout.contains("nobodys-value"), "{}", r.stdout);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("cannot use the daemon"), "{}", r.stderr);

    // The daemon answers nothing to a client of another user (root reaches
    // its 0600 socket; another user does not even connect).
    if let Ok(mut s) = UnixStream::connect(&socket) {
        let request = serde_json::json!({
            "argv": ["secrets", "get", "API_KEY"],
            "cwd": base,
            "identity": "alice",
        });
        let _ = s.write_all(format!("{request}\n").as_bytes());
        let _ = s.shutdown(std::net::Shutdown::Write);
        let mut reply = String::new();
        let _ = s.read_to_string(&mut reply);
        assert_eq!(reply, "", "the daemon answered another user");
    }
    let kill = format!("kill -TERM {pid}");
    let killed = as_nobody_run(&[], Path::new("/bin/sh"), &["-c", &kill])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    assert!(!socket.exists(), "the daemon left its socket");
}
