//! `ravi daemon`: reads answered over its socket with the credential it
//! holds, everything else run by the client itself, and every check a
//! process makes still made (revocation, rollback) on each request.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

/// A running `ravi daemon`, killed when dropped.
struct Daemon {
    child: Child,
    socket: PathBuf,
}

impl Daemon {
    /// Starts `ravi daemon --socket <dir>/d.sock` with `credential` (the
    /// variables and options that give it one) and waits for its line.
    fn start(env: &Env, credential: &[(&str, &str)], args: &[&str]) -> Daemon {
        let socket = env.dir.path().join("d.sock");
        let mut c = env.command();
        c.env_remove("RAVI_PASSPHRASE")
            .args(["daemon", "--socket", socket.to_str().unwrap()])
            .args(args)
            .stderr(Stdio::inherit());
        for (k, v) in credential {
            c.env(k, v);
        }
        let (child, line) = spawn_for_line(&mut c);
        assert_eq!(
            line.trim(),
            format!("RAVI_DAEMON={}", socket.display()),
            "the daemon did not start"
        );
        Daemon { child, socket }
    }

    /// The exit status within `limit`, if it ended.
    fn ended_within(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Some(s) = self.child.try_wait().unwrap() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A client of `daemon`: no credential of its own.
fn client(env: &Env, daemon: &Daemon) -> Command {
    let mut c = env.command();
    c.env_remove("RAVI_PASSPHRASE")
        .env("RAVI_DAEMON", &daemon.socket);
    c
}

fn ask(env: &Env, daemon: &Daemon, args: &[&str]) -> Run {
    run_command(client(env, daemon).args(args))
}

/// The daemon's answer to `args` is the one the process itself gives
/// (with the passphrase).
#[track_caller]
fn answered_as_the_process_answers(env: &Env, d: &Daemon, args: &[&str]) {
    let there = ask(env, d, args);
    let here = env.run(args);
    assert_eq!(
        (there.code, &there.stdout, &there.stderr),
        (here.code, &here.stdout, &here.stderr),
        "{args:?}"
    );
}

/// Sets bob's `API_KEY` (bob is the setup's second identity).
fn set_bobs_key(env: &Env, value: &str) {
    env.run_stdin(
        &[
            "--identity",
            "bob",
            "secrets",
            "set",
            "API_KEY",
            "--value-stdin",
        ],
        value,
    )
    .ok();
}

fn session(env: &Env) -> String {
    env.run(&["unlock", "--ttl", "1h"])
        .ok()
        .stdout
        .trim()
        .to_string()
}

#[test]
fn reads_are_answered_with_the_credential_the_daemon_holds() {
    let env = crate::references::setup();
    let token = session(&env);
    let d = Daemon::start(&env, &[("RAVI_SESSION", &token)], &[]);
    let mode = std::fs::symlink_metadata(&d.socket).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
        0o600
    );

    // Each answer is the one the process itself gives (with the passphrase).
    for args in [
        &["secrets", "get", "API_KEY"][..],
        &["secrets", "get", "API_KEY", "--json"],
        &["passwords", "get", "example.com"],
        &["passwords", "get", "example.com", "--json"],
        &["get", "email"],
        &["get", "phone", "--json"],
        &["read", "ravi://secrets/API_KEY"],
        &[
            "read",
            "ravi://alice/passwords/example.com/password",
            "--json",
        ],
        &["read", "ravi://secrets/NOPE"],
        &["read", "ravi://nobody/secrets/API_KEY"],
        &["read", "not-a-reference"],
        &["secrets", "get", "NOPE"],
        &["secrets", "get", "NOPE", "--json"],
        &["--identity", "nobody", "secrets", "get", "API_KEY"],
    ] {
        answered_as_the_process_answers(&env, &d, args);
    }
    assert_eq!(
        ask(&env, &d, &["secrets", "get", "API_KEY"]).ok().stdout,
        "alice-api-value\n"
    );
    let code = ask(&env, &d, &["totp", "code", "github", "--json"])
        .ok()
        .json();
    let digits = code["code"].as_str().unwrap();
    assert!(digits.len() == 6 && digits.bytes().all(|b| b.is_ascii_digit()));

    // The identity a client selects: its --identity, its RAVI_IDENTITY, its
    // working directory's .ravi/config.json.
    set_bobs_key(&env, "bobs-value\n");
    assert_eq!(
        ask(
            &env,
            &d,
            &["--identity", "bob", "secrets", "get", "API_KEY"]
        )
        .ok()
        .stdout,
        "bobs-value\n"
    );
    let r = run_command(
        client(&env, &d)
            .env("RAVI_IDENTITY", "bob")
            .args(["secrets", "get", "API_KEY"]),
    );
    assert_eq!(r.ok().stdout, "bobs-value\n");
    let project = env.work.join("project");
    std::fs::create_dir_all(project.join(".ravi")).unwrap();
    std::fs::write(
        project.join(".ravi/config.json"),
        r#"{"identity_name": "bob"}"#,
    )
    .unwrap();
    let r = run_command(
        client(&env, &d)
            .current_dir(&project)
            .args(["secrets", "get", "API_KEY"]),
    );
    assert_eq!(r.ok().stdout, "bobs-value\n");
}

#[test]
fn listings_and_templates_are_answered_too() {
    let env = crate::references::setup();
    let token = session(&env);
    let d = Daemon::start(&env, &[("RAVI_SESSION", &token)], &[]);
    // Each answer is the one the process itself gives (with the passphrase).
    for args in [
        &["secrets", "list"][..],
        &["secrets", "list", "--json"],
        &["--identity", "bob", "secrets", "list"],
        &["passwords", "list"],
        &["--json", "passwords", "list"],
        &["totp", "list", "--json"],
        &["totp", "show", "github"],
        &["totp", "uri", "github", "--json"],
        &["totp", "show", "nope"],
        &["inject", "-i", "no-such-template"],
    ] {
        answered_as_the_process_answers(&env, &d, args);
    }
    let listed = ask(&env, &d, &["secrets", "list", "--json"]).ok().json();
    assert_eq!(listed[0]["key"], "API_KEY", "{listed}");
    assert!(!listed.to_string().contains("alice-api-value"));

    // A template and its output, named relative to the client's directory:
    // the daemon reads the template there, the client writes the output.
    let project = env.work.join("templates");
    std::fs::create_dir_all(&project).unwrap();
    let template =
        "key={{ ravi://secrets/API_KEY }}\nuser={{ravi://passwords/example.com/username}}\n";
    let rendered = "key=alice-api-value\nuser=bot@example.com\n";
    std::fs::write(project.join("app.tpl"), template).unwrap();
    let r = run_command(
        client(&env, &d)
            .current_dir(&project)
            .args(["inject", "-i", "app.tpl"]),
    );
    assert_eq!(r.ok().stdout, rendered);
    let r = run_command(
        client(&env, &d)
            .current_dir(&project)
            .args(["--json", "inject", "-i", "app.tpl", "-o", "app.env"]),
    )
    .ok();
    assert_eq!(r.json()["path"], "app.env");
    assert_eq!(r.json()["references"], 2);
    let written = project.join("app.env");
    assert_eq!(std::fs::read_to_string(&written).unwrap(), rendered);
    let mode = std::fs::metadata(&written).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
        0o600
    );
    // Without --in, the template is the client's standard input.
    let r = run_command_stdin(client(&env, &d).args(["inject"]), template);
    assert_eq!(r.ok().stdout, rendered);
    let r = run_command_stdin(
        client(&env, &d).args(["inject"]),
        "{{ ravi://secrets/NOPE }}",
    )
    .fails(EXIT_NOT_FOUND);
    assert!(r.stderr.contains("NOPE"), "{}", r.stderr);
    assert!(r.stdout.is_empty());
    // An output the client cannot write is its error, said as the
    // process itself says it.
    let args = [
        "--json",
        "inject",
        "-i",
        "app.tpl",
        "-o",
        "no-such-dir/app.env",
    ];
    let there = run_command(client(&env, &d).current_dir(&project).args(args));
    let here = run_command(env.command().current_dir(&project).args(args));
    assert_ne!(there.code, 0);
    let said = |r: &Run| {
        let e = r.error_json();
        let m = e["error"]["message"].as_str().unwrap().to_string();
        // (the message ends with the temporary file's random name)
        (
            r.code,
            r.stdout.clone(),
            e["error"]["code"].clone(),
            m[..m.find(" at path").unwrap_or(m.len())].to_string(),
        )
    };
    assert_eq!(said(&there), said(&here));
    assert!(!project.join("no-such-dir").exists());
}

/// Runs `round` (a request, a change, the same request again) until one
/// round began and ended in one second of the clock, in which the daemon
/// answers the second request from the reply it kept for the first when
/// it finds nothing changed: the round checks that it does find the change.
fn within_one_second(mut round: impl FnMut()) {
    let second = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    };
    for _ in 0..20 {
        let began = second();
        round();
        if second() == began {
            return;
        }
    }
    panic!("no round took less than a second");
}

#[test]
fn a_kept_reply_is_not_given_once_anything_it_was_made_from_changed() {
    let env = crate::references::setup();
    let token = session(&env);
    let d = Daemon::start(&env, &[("RAVI_SESSION", &token)], &[]);
    let get = || ask(&env, &d, &["secrets", "get", "API_KEY"]);
    // The same request again, nothing changed: the same reply.
    let first = get().ok().stdout;
    assert_eq!(get().ok().stdout, first);

    // The store changed: a write by a client with a config directory of
    // its own (another machine's), which records the head it wrote in its
    // own `state` files, not in this client's.
    let elsewhere = env.dir.path().join("elsewhere");
    let mut n = 0;
    within_one_second(|| {
        n += 1;
        let before = get().ok().stdout;
        run_command_stdin(
            env.command().env("RAVI_CONFIG_DIR", &elsewhere).args([
                "--identity",
                "alice",
                "secrets",
                "set",
                "API_KEY",
                "--value-stdin",
            ]),
            &format!("value-{n}"),
        )
        .ok();
        let after = get().ok().stdout;
        assert_ne!(after, before);
        assert_eq!(after, format!("value-{n}\n"));
    });

    // The identity selection changed (the config file; bob has API_KEY too).
    set_bobs_key(&env, "bobs-value");
    within_one_second(|| {
        env.run(&["identity", "use", "alice"]).ok();
        assert_ne!(get().ok().stdout, "bobs-value\n");
        env.run(&["identity", "use", "bob"]).ok();
        assert_eq!(get().ok().stdout, "bobs-value\n");
    });
    env.run(&["identity", "use", "alice"]).ok();

    // A newer head seen by another process (its `state` file) than the one
    // the store shows: the rollback check refuses, kept reply or not.
    let vault_id = env.run(&["vault", "info", "--json"]).ok().json()["vault_id"]
        .as_str()
        .unwrap()
        .to_string();
    let uuid = env.run(&["identity", "show", "--json"]).ok().json()["uuid"]
        .as_str()
        .unwrap()
        .to_string();
    let state = env.config_dir.join("state").join(&vault_id).join(&uuid);
    let seen = std::fs::read_to_string(&state).unwrap();
    within_one_second(|| {
        get().ok();
        std::fs::write(&state, "1000000\n").unwrap();
        let r = get().fails(EXIT_INTEGRITY);
        assert!(r.stderr.contains("rollback"), "{}", r.stderr);
        std::fs::write(&state, &seen).unwrap();
    });

    // The session ended (`ravi lock`): the next request is refused.
    get().ok();
    env.run(&["lock"]).ok();
    let r = get().fails(EXIT_LOCKED);
    assert!(!r.stdout.contains("value"), "{}", r.stdout);
}

#[test]
fn a_template_or_an_answer_too_large_for_the_daemon_is_refused_with_a_reason() {
    let env = crate::references::setup();
    let token = session(&env);
    let d = Daemon::start(&env, &[("RAVI_SESSION", &token)], &[]);
    // A template on standard input over what a request may carry.
    let r = run_command_stdin(client(&env, &d).args(["inject"]), &"x".repeat(4 << 20))
        .fails(EXIT_INVALID);
    assert!(r.stderr.contains("--in FILE"), "{}", r.stderr);
    assert!(r.stdout.is_empty());
    // An answer over what a reply may carry (a 17 MiB template rendered).
    std::fs::write(env.work.join("big.tpl"), "x".repeat(17 << 20)).unwrap();
    let r = ask(&env, &d, &["inject", "-i", "big.tpl"]).fails(EXIT_INVALID);
    assert!(
        r.stderr.contains("more than a daemon sends"),
        "{}",
        r.stderr
    );
    assert!(r.stdout.is_empty());
    // The daemon answers on.
    assert_eq!(
        ask(&env, &d, &["secrets", "get", "API_KEY"]).ok().stdout,
        "alice-api-value\n"
    );
}

#[test]
fn a_template_sent_to_a_daemon_that_then_fails_is_not_rendered_empty() {
    use std::io::{BufRead, Write};
    use std::os::unix::net::UnixListener;
    let env = crate::references::setup();
    let socket = env.dir.path().join("fake.sock");
    let listener = UnixListener::bind(&socket).unwrap();
    // Asks for standard input, then closes the connection that brings it.
    let fake = std::thread::spawn(move || {
        for asked in 0..2 {
            let (stream, _) = listener.accept().unwrap();
            let mut line = String::new();
            std::io::BufReader::new(&stream)
                .read_line(&mut line)
                .unwrap();
            if asked == 0 {
                (&stream)
                    .write_all(b"{\"served\":true,\"code\":0,\"stdout\":\"\",\"stderr\":\"\",\"send_stdin\":true}\n")
                    .unwrap();
            } else {
                assert!(line.contains("API_KEY"), "{line}");
            }
        }
    });
    let r = run_command_stdin(
        env.command()
            .env_remove("RAVI_PASSPHRASE")
            .env("RAVI_DAEMON", &socket)
            .args(["inject"]),
        "key={{ ravi://secrets/API_KEY }}\n",
    );
    fake.join().unwrap();
    assert_eq!(r.code, EXIT_INTERNAL, "{}", r.stderr);
    assert!(r.stdout.is_empty(), "{}", r.stdout);
    assert!(
        r.stderr.contains("did not render the template"),
        "{}",
        r.stderr
    );
}

#[test]
fn what_the_daemon_does_not_answer_runs_in_the_client() {
    let env = crate::references::setup();
    let token = session(&env);
    let d = Daemon::start(&env, &[("RAVI_SESSION", &token)], &[]);
    // Writes are not answered: the client, without a credential of its
    // own, is refused, and nothing is written.
    ask(&env, &d, &["secrets", "set", "OTHER", "x", "--json"]).fails(EXIT_LOCKED);
    ask(&env, &d, &["secrets", "delete", "API_KEY"]).fails(EXIT_LOCKED);
    ask(&env, &d, &["export"]).fails(EXIT_LOCKED);
    ask(&env, &d, &["secrets", "get", "OTHER"]).fails(EXIT_NOT_FOUND);
    ask(&env, &d, &["secrets", "get", "API_KEY"]).ok();
    // A credential or a vault on the client's command line is its own.
    let other = Env::new();
    let r = ask(
        &env,
        &d,
        &[
            "--vault",
            other.vault.to_str().unwrap(),
            "--identity",
            "alice",
            "secrets",
            "get",
            "API_KEY",
        ],
    );
    assert_ne!(r.code, 0, "{}", r.stdout);
    let file = env.dir.path().join("session");
    std::fs::write(&file, format!("{token}\n")).unwrap();
    let r = ask(
        &env,
        &d,
        &[
            "--session-file",
            file.to_str().unwrap(),
            "secrets",
            "get",
            "API_KEY",
        ],
    );
    assert_eq!(r.ok().stdout, "alice-api-value\n");
    // A command line that does not parse gets the usual error.
    let r = ask(&env, &d, &["secrets", "get"]).fails(EXIT_INVALID);
    assert!(r.stderr.contains("<KEY>"), "{}", r.stderr);
}

#[test]
fn revocation_and_rollback_reach_a_running_daemon() {
    let env = crate::references::setup();
    let token = session(&env);
    let d = Daemon::start(&env, &[("RAVI_SESSION", &token)], &[]);
    ask(&env, &d, &["secrets", "get", "API_KEY"]).ok();
    // A rotation changes nothing for the reader.
    env.run(&["identity", "rotate", "alice"]).ok();
    assert_eq!(
        ask(&env, &d, &["secrets", "get", "API_KEY"]).ok().stdout,
        "alice-api-value\n"
    );
    // A store rolled back to an older copy is caught at the next request.
    let old = env.dir.path().join("old.db");
    std::fs::copy(&env.vault, &old).unwrap();
    env.run_stdin(&["secrets", "set", "API_KEY", "--value-stdin"], "newer\n")
        .ok();
    assert_eq!(
        ask(&env, &d, &["secrets", "get", "API_KEY"]).ok().stdout,
        "newer\n"
    );
    replace_vault(&env, &old);
    ask(&env, &d, &["secrets", "get", "API_KEY"]).fails(EXIT_INTEGRITY);
    drop(d);

    // `ravi lock` ends the session the daemon holds.
    let env = crate::references::setup();
    let token = session(&env);
    let d = Daemon::start(&env, &[("RAVI_SESSION", &token)], &[]);
    ask(&env, &d, &["secrets", "get", "API_KEY"]).ok();
    env.run(&["lock"]).ok();
    let r = ask(&env, &d, &["secrets", "get", "API_KEY"]).fails(EXIT_LOCKED);
    assert!(!r.stdout.contains("alice-api"));
    drop(d);

    // A grant revoked is refused to the agent key the daemon holds.
    let env = crate::references::setup();
    let (key, public) = env.keygen("agent.key");
    env.run(&["identity", "grant", "alice", "--to", &public])
        .ok();
    let d = Daemon::start(&env, &[("RAVI_AGENT_KEY_FILE", key.to_str().unwrap())], &[]);
    assert_eq!(
        ask(&env, &d, &["secrets", "get", "API_KEY"]).ok().stdout,
        "alice-api-value\n"
    );
    env.run(&["identity", "revoke", "alice", "--from", &public])
        .ok();
    let r = ask(&env, &d, &["secrets", "get", "API_KEY"]);
    assert_ne!(r.code, 0);
    assert!(!r.stdout.contains("alice-api"), "{}", r.stdout);
}

/// Puts the copy `old` in place of the vault (its log emptied first).
fn replace_vault(env: &Env, old: &Path) {
    let db = env.db();
    db.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    drop(db);
    std::fs::copy(old, &env.vault).unwrap();
}

#[test]
fn the_daemon_life_its_socket_and_what_it_refuses() {
    let env = crate::references::setup();
    // Never the passphrase.
    let r = env.run(&[
        "daemon",
        "--socket",
        env.dir.path().join("p.sock").to_str().unwrap(),
    ]);
    let r = r.fails(EXIT_INVALID);
    assert!(r.stderr.contains("never the passphrase"), "{}", r.stderr);
    let token = session(&env);
    let mut d = Daemon::start(&env, &[("RAVI_SESSION", &token)], &[]);
    // One daemon per socket.
    let mut second = env.command();
    second
        .env_remove("RAVI_PASSPHRASE")
        .env("RAVI_SESSION", &token)
        .args(["daemon", "--socket", d.socket.to_str().unwrap()]);
    run_command(&mut second).fails(EXIT_CONFLICT);
    // SIGTERM ends it and removes the socket.
    let pid = d.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = d.ended_within(Duration::from_secs(10)).expect("it ended");
    assert!(status.success(), "{status:?}");
    assert!(!d.socket.exists());
    // Gone, the client says so and runs the command itself.
    let r = run_command(
        env.command()
            .env("RAVI_DAEMON", &d.socket)
            .args(["secrets", "get", "API_KEY"]),
    );
    let r = r.ok();
    assert_eq!(r.stdout, "alice-api-value\n");
    assert!(r.stderr.contains("cannot use the daemon"), "{}", r.stderr);
    // A socket left by a daemon that was killed is replaced.
    let mut killed = Daemon::start(&env, &[("RAVI_SESSION", &token)], &[]);
    killed.child.kill().unwrap();
    killed.child.wait().unwrap();
    assert!(killed.socket.exists());
    let mut d = Daemon::start(&env, &[("RAVI_SESSION", &token)], &["--ttl", "1s"]);
    ask(&env, &d, &["get", "email"]).ok();
    // Its lifetime ends it.
    let status = d.ended_within(Duration::from_secs(20)).expect("it ended");
    assert!(status.success(), "{status:?}");
    assert!(!d.socket.exists());
    // Anything else at the path is left alone.
    std::fs::write(&d.socket, "not a socket").unwrap();
    let mut c = env.command();
    c.env_remove("RAVI_PASSPHRASE")
        .env("RAVI_SESSION", &token)
        .args(["daemon", "--socket", d.socket.to_str().unwrap()]);
    run_command(&mut c).fails(EXIT_INVALID);
    assert_eq!(std::fs::read(&d.socket).unwrap(), b"not a socket");
}

#[test]
fn garbage_on_the_socket_is_not_answered_and_the_daemon_carries_on() {
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;
    let env = crate::references::setup();
    let token = session(&env);
    let mut d = Daemon::start(&env, &[("RAVI_SESSION", &token)], &[]);
    let exchange = |bytes: &[u8]| {
        let mut s = UnixStream::connect(&d.socket).unwrap();
        // (the daemon may close before reading everything)
        let _ = s.write_all(bytes);
        let _ = s.shutdown(std::net::Shutdown::Write);
        let mut reply = String::new();
        let _ = s.read_to_string(&mut reply);
        reply
    };
    for bytes in [
        &b"not json\n"[..],
        b"{\"argv\": 5}\n",
        b"{\"argv\": [\"secrets\", \"get\", \"API_KEY\"]}\n",
        &[0xff; 100_000],
        b"",
    ] {
        let reply = exchange(bytes);
        assert!(!reply.contains("alice-api"), "{reply}");
        if !reply.is_empty() {
            let v: serde_json::Value = serde_json::from_str(&reply).unwrap();
            assert_eq!(v["served"], false, "{reply}");
        }
    }
    // A well-formed request, without a client process.
    let request = serde_json::json!({
        "argv": ["secrets", "get", "API_KEY"],
        "cwd": env.work,
        "identity": null,
    });
    let reply: serde_json::Value =
        serde_json::from_str(&exchange(format!("{request}\n").as_bytes())).unwrap();
    assert_eq!(reply["served"], true);
    assert_eq!(reply["code"], 0);
    assert_eq!(reply["stdout"], "alice-api-value\n");
    assert!(d.ended_within(Duration::from_millis(100)).is_none());
    assert_eq!(
        ask(&env, &d, &["secrets", "get", "API_KEY"]).ok().stdout,
        "alice-api-value\n"
    );
}

#[test]
fn a_client_that_never_finishes_its_request_holds_up_no_other() {
    use std::io::Write;
    use std::os::unix::net::UnixStream;
    let env = crate::references::setup();
    let token = session(&env);
    let d = Daemon::start(&env, &[("RAVI_SESSION", &token)], &[]);
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        // Silent clients, and one that sends a byte of a request that never
        // ends every 50 ms (a daemon that read it to its end would never
        // answer anyone else).
        let silent: Vec<_> = (0..3)
            .map(|_| UnixStream::connect(&d.socket).unwrap())
            .collect();
        let trickler = s.spawn(|| {
            let mut t = UnixStream::connect(&d.socket).unwrap();
            let mut sent = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                if t.write_all(b" ").is_err() {
                    break;
                }
                sent += 1;
                std::thread::sleep(Duration::from_millis(50));
            }
            sent
        });
        // (the trickle stops when the reads are done, or when one failed)
        struct Done<'a>(&'a std::sync::atomic::AtomicBool);
        impl Drop for Done<'_> {
            fn drop(&mut self) {
                self.0.store(true, std::sync::atomic::Ordering::Relaxed);
            }
        }
        let stop = Done(&done);
        for _ in 0..5 {
            let r = ask(&env, &d, &["secrets", "get", "API_KEY"]).ok();
            assert_eq!(r.stdout, "alice-api-value\n");
            assert!(!r.stderr.contains("warning"), "{}", r.stderr);
        }
        drop(stop);
        drop(silent);
        // The reads above were answered while the trickle went on (it has
        // not been cut off yet, or was after the daemon's 5 s).
        assert!(trickler.join().unwrap() > 0);
    });
}

#[test]
fn a_client_that_does_not_take_its_reply_holds_up_no_other() {
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;
    let env = crate::references::setup();
    let token = session(&env);
    let d = Daemon::start(&env, &[("RAVI_SESSION", &token)], &[]);
    // A request whose reply (a 2 MiB template rendered) is far more than
    // the socket holds, from a client that does not read it yet.
    let template = "x".repeat(2 << 20);
    let request = serde_json::json!({
        "argv": ["inject"],
        "cwd": env.work,
        "identity": null,
        "stdin": template,
    });
    let mut slow = UnixStream::connect(&d.socket).unwrap();
    slow.write_all(format!("{request}\n").as_bytes()).unwrap();
    // Others are answered meanwhile: a daemon that waited on the slow
    // client's reply would answer them only once it gave up on it (5 s),
    // with that reply cut short.
    for _ in 0..5 {
        let r = ask(&env, &d, &["secrets", "get", "API_KEY"]).ok();
        assert_eq!(r.stdout, "alice-api-value\n");
        assert!(!r.stderr.contains("warning"), "{}", r.stderr);
    }
    let mut reply = Vec::new();
    slow.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    slow.read_to_end(&mut reply).unwrap();
    let reply: serde_json::Value = serde_json::from_slice(&reply).expect("the whole reply");
    assert_eq!(reply["code"], 0);
    assert_eq!(reply["stdout"].as_str().map(str::len), Some(template.len()));
}

#[test]
fn a_code_that_must_wait_for_its_window_holds_up_no_other() {
    let env = crate::references::setup();
    env.run(&[
        "totp",
        "add",
        "slow",
        "--secret",
        "JBSWY3DPEHPK3PXP",
        "--period",
        "10",
    ])
    .ok();
    let token = session(&env);
    let d = Daemon::start(&env, &[("RAVI_SESSION", &token)], &[]);
    // (in the middle of a 10 s window: the code asked for, with 9 s of
    // validity, is the next window's, 2 to 8 s away)
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    };
    while !(2..=8).contains(&(10 - now() % 10)) {
        std::thread::sleep(Duration::from_millis(200));
    }
    let asked = now();
    let mut waiting = client(&env, &d)
        .args(["totp", "code", "slow", "--min-validity", "9", "--json"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // Others are answered while it waits (a daemon that waited for it
    // would answer them only once its window began).
    std::thread::sleep(Duration::from_millis(300));
    for _ in 0..3 {
        let r = ask(&env, &d, &["secrets", "get", "API_KEY"]).ok();
        assert_eq!(r.stdout, "alice-api-value\n");
    }
    assert!(
        waiting.try_wait().unwrap().is_none(),
        "the code was printed before its window"
    );
    let r = to_run(waiting.wait_with_output().unwrap()).ok();
    let code = r.json();
    // The next window's code, printed once that window began.
    assert!(now() >= asked - asked % 10 + 10);
    assert!(code["remaining_seconds"].as_u64().unwrap() >= 9, "{code}");
    let at = (asked - asked % 10 + 10).to_string();
    let expected = env
        .run(&["totp", "code", "slow", "--at", &at, "--json"])
        .ok()
        .json();
    assert_eq!(code["code"], expected["code"]);
}

#[test]
fn many_clients_at_once_while_the_identity_is_written() {
    let env = crate::references::setup();
    let token = session(&env);
    let d = Daemon::start(&env, &[("RAVI_SESSION", &token)], &[]);
    std::thread::scope(|s| {
        // A writer of the same identity, with its own credential.
        let writer = s.spawn(|| {
            for i in 0..20 {
                env.run(&["secrets", "set", &format!("W{i}"), &format!("w{i}")])
                    .ok();
            }
        });
        let readers: Vec<_> = (0..6)
            .map(|_| {
                s.spawn(|| {
                    for _ in 0..15 {
                        let r = ask(&env, &d, &["secrets", "get", "API_KEY"]);
                        assert_eq!(r.ok().stdout, "alice-api-value\n");
                    }
                })
            })
            .collect();
        writer.join().unwrap();
        for r in readers {
            r.join().unwrap();
        }
    });
    for i in 0..20 {
        assert_eq!(
            ask(&env, &d, &["secrets", "get", &format!("W{i}")])
                .ok()
                .stdout,
            format!("w{i}\n")
        );
    }
}

/// `ravi daemon -- CMD`: the command runs with `RAVI_DAEMON` set; the
/// daemon answers it, ends when it does and exits with its status.
fn wrapping(env: &Env, token_file: &Path, command: &[&str]) -> Command {
    let mut c = env.command();
    c.env_remove("RAVI_PASSPHRASE")
        .args([
            "--session-file",
            token_file.to_str().unwrap(),
            "daemon",
            "--",
        ])
        .args(command);
    c
}

fn sh(env: &Env, token_file: &Path, script: &str) -> Command {
    wrapping(env, token_file, &["sh", "-c", script])
}

/// The references' setup, and a file holding a session token.
fn with_token_file() -> (Env, PathBuf) {
    let env = crate::references::setup();
    let token_file = env.dir.path().join("session");
    std::fs::write(&token_file, session(&env)).unwrap();
    (env, token_file)
}

/// The sockets left in the config directory.
fn sockets_left(env: &Env) -> Vec<String> {
    std::fs::read_dir(&env.config_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".sock"))
        .collect()
}

#[test]
fn a_daemon_that_runs_a_command_answers_it_and_exits_with_its_status() {
    let (env, token_file) = with_token_file();
    let r = ravi_bin().display().to_string();
    // The command's reads have no credential of their own: only the
    // daemon can answer them.
    let script = format!(
        "{r} secrets get API_KEY && {r} totp code github && echo \"$RAVI_DAEMON\" && exit 7"
    );
    let run = run_command(&mut sh(&env, &token_file, &script));
    assert_eq!(run.code, 7, "{}", run.stderr);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(
        lines.len(),
        3,
        "no ready line with a command: {}",
        run.stdout
    );
    assert_eq!(lines[0], "alice-api-value");
    assert!(
        lines[1].len() == 6 && lines[1].bytes().all(|b| b.is_ascii_digit()),
        "{}",
        lines[1]
    );
    let socket = Path::new(lines[2]);
    assert!(
        socket.starts_with(&env.config_dir)
            && socket
                .file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("daemon-"),
        "{}",
        socket.display()
    );
    assert!(
        !socket.exists(),
        "the socket is removed when the command ends"
    );
    assert!(!run.stderr.contains("warning"), "{}", run.stderr);
    // Its status, also when a signal ends it (128 + the signal).
    assert_eq!(run_command(&mut sh(&env, &token_file, "exit 0")).code, 0);
    assert_eq!(
        run_command(&mut sh(&env, &token_file, "kill -TERM $$")).code,
        128 + 15
    );
    // A command that does not exist: the daemon's error, nothing left.
    let missing = run_command(&mut wrapping(&env, &token_file, &["/nonexistent/command"])).fails(3);
    assert!(missing.stderr.contains("cannot run"), "{}", missing.stderr);
    assert!(sockets_left(&env).is_empty(), "{:?}", sockets_left(&env));
}

#[test]
fn a_signal_to_a_daemon_that_runs_a_command_is_passed_on() {
    let (env, token_file) = with_token_file();
    let r = ravi_bin().display().to_string();
    // The command says it can read through the daemon, then waits.
    let script = format!("{r} secrets get API_KEY && exec sleep 60");
    let mut c = sh(&env, &token_file, &script);
    let (mut child, line) = spawn_for_line(&mut c);
    assert_eq!(line.trim(), "alice-api-value");
    let pid = rustix::process::Pid::from_child(&child);
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    let status = child.wait().unwrap();
    // The command (sleep) was ended by the TERM the daemon passed on.
    assert_eq!(status.code(), Some(128 + 15));
    assert!(sockets_left(&env).is_empty(), "{:?}", sockets_left(&env));
}

#[test]
fn ravi_run_through_a_daemon_gets_its_values_from_it() {
    let env = crate::references::setup();
    let token = session(&env);
    let d = Daemon::start(&env, &[("RAVI_SESSION", &token)], &[]);
    // An env file relative to the client's own directory, not the daemon's.
    let sub = env.work.join("sub");
    std::fs::create_dir(&sub).unwrap();
    std::fs::write(sub.join("e.env"), "Y=ravi://secrets/API_KEY\nZ=plain\n").unwrap();
    let run = |args: &[&str]| run_command(client(&env, &d).current_dir(&sub).args(args));
    let r = run(&[
        "run",
        "--env",
        "X=ravi://secrets/API_KEY",
        "--env-file",
        "e.env",
        "--",
        "sh",
        "-c",
        "printf '%s|%s|%s' \"$X\" \"$Y\" \"$Z\"",
    ])
    .ok();
    assert_eq!(r.stdout, "alice-api-value|alice-api-value|plain");
    assert!(!r.stderr.contains("warning"), "{}", r.stderr);
    let r = run(&[
        "run",
        "--all-secrets",
        "--",
        "sh",
        "-c",
        "printf %s \"$API_KEY\"",
    ])
    .ok();
    assert_eq!(r.stdout, "alice-api-value");
    // The command's status is the client's; errors are the daemon's.
    assert_eq!(run(&["run", "--", "sh", "-c", "exit 9"]).code, 9);
    let missing = run(&["run", "--env", "X=ravi://secrets/NOPE", "--", "true"]).fails(3);
    assert!(
        missing.stderr.contains("ravi://secrets/NOPE"),
        "{}",
        missing.stderr
    );
    let r = run(&["--json", "run", "--", "/nonexistent/command"]).fails(3);
    assert_eq!(r.error_json()["error"]["code"], "not_found", "{}", r.stderr);
    // A value never reaches the client's command line or its stderr.
    assert!(!r.stderr.contains("alice-api-value"));
}
