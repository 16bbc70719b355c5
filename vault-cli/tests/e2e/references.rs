//! `ravi read`, `ravi inject` and `ravi run` with `ravi://` references.

use crate::common::*;

/// alice (selected) with a secret, a password and a TOTP seed; bob with a
/// secret.
pub fn setup() -> Env {
    let (env, _) = Env::with_identity("alice");
    env.run_stdin(
        &["secrets", "set", "API_KEY", "--value-stdin"],
        "alice-api-value",
    )
    .ok();
    env.run_stdin(
        &[
            "passwords",
            "create",
            "example.com",
            "--username",
            "bot@example.com",
            "--password-stdin",
            "--notes",
            "n1",
        ],
        "pw-alice",
    )
    .ok();
    env.run(&["totp", "add", "github", "--secret", "JBSWY3DPEHPK3PXP"])
        .ok();
    env.run(&["identity", "create", "--name", "bob"]).ok();
    env.run_stdin(
        &[
            "--identity",
            "bob",
            "secrets",
            "set",
            "TOKEN",
            "--value-stdin",
        ],
        "bob-token",
    )
    .ok();
    env
}

#[test]
fn read_resolves_every_kind() {
    let env = setup();
    for (reference, want) in [
        ("ravi://secrets/API_KEY", "alice-api-value"),
        ("ravi://alice/secrets/API_KEY", "alice-api-value"),
        ("ravi://bob/secrets/TOKEN", "bob-token"),
        ("ravi://passwords/example.com/password", "pw-alice"),
        (
            "ravi://passwords/example.com/bot@example.com/username",
            "bot@example.com",
        ),
        ("ravi://passwords/example.com/notes", "n1"),
    ] {
        let r = env.run(&["read", reference]).ok();
        assert_eq!(r.stdout.trim(), want, "{reference}");
    }
    let j = env
        .run(&["read", "ravi://bob/secrets/TOKEN", "--json"])
        .ok()
        .json();
    assert_eq!(j["reference"], "ravi://bob/secrets/TOKEN");
    assert_eq!(j["value"], "bob-token");
    let code = env.run(&["read", "ravi://totp/github/code"]).ok();
    let want = env.run(&["totp", "code", "github"]).ok();
    let c = code.stdout.trim();
    assert!(c.len() == 6 && c.chars().all(|d| d.is_ascii_digit()), "{c}");
    // the same 30 s window almost always; both are valid codes of the seed
    assert_eq!(c.len(), want.stdout.trim().len());
    // unresolved and malformed references
    let r = env
        .run(&["read", "ravi://secrets/MISSING"])
        .fails(EXIT_NOT_FOUND);
    assert!(r.stderr.contains("ravi://secrets/MISSING"), "{}", r.stderr);
    env.run(&["read", "ravi://carol/secrets/K"])
        .fails(EXIT_NOT_FOUND);
    env.run(&["read", "ravi://secrets"]).fails(EXIT_INVALID);
    env.run(&["read", "https://example.com"])
        .fails(EXIT_INVALID);
}

#[test]
fn inject_renders_all_or_nothing() {
    let env = setup();
    let template = "key={{ ravi://secrets/API_KEY }}\nbob={{ravi://bob/secrets/TOKEN}}\nuser={{ ravi://passwords/example.com/username }}\nkeep={{ not a ref }}\n";
    let r = env.run_stdin(&["inject"], template).ok();
    assert_eq!(
        r.stdout,
        "key=alice-api-value\nbob=bob-token\nuser=bot@example.com\nkeep={{ not a ref }}\n"
    );
    // to a file: 0600, replacing an existing one
    let tpl = env.work.join("app.tpl");
    let out = env.work.join("app.conf");
    std::fs::write(&tpl, template).unwrap();
    std::fs::write(&out, "old contents").unwrap();
    env.run(&[
        "inject",
        "-i",
        tpl.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ])
    .ok();
    let written = std::fs::read_to_string(&out).unwrap();
    assert!(written.starts_with("key=alice-api-value\n"), "{written}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&out).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // one unresolved reference: nothing written, the error names it
    std::fs::write(
        &tpl,
        "a={{ ravi://secrets/API_KEY }}\nb={{ ravi://secrets/NOPE }}\n",
    )
    .unwrap();
    let r = env
        .run(&[
            "inject",
            "-i",
            tpl.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ])
        .fails(EXIT_NOT_FOUND);
    assert!(r.stderr.contains("ravi://secrets/NOPE"), "{}", r.stderr);
    assert_eq!(std::fs::read_to_string(&out).unwrap(), written);
}

#[test]
fn run_injects_passes_the_status_and_keeps_values_off_argv() {
    let env = setup();
    // variables reach the child; its exit status is ravi's
    let r = env.run(&[
        "run",
        "--env",
        "BOB=ravi://bob/secrets/TOKEN",
        "--",
        "sh",
        "-c",
        "printf '%s %s' \"$BOB\" \"$PLAIN\"; exit 7",
    ]);
    assert_eq!(r.code, 7, "{}", r.stderr);
    assert_eq!(r.stdout, "bob-token ");
    // an env file with references and plain values, and --all-secrets
    let f = env.work.join(".env");
    std::fs::write(
        &f,
        "# comment\nexport PW=ravi://passwords/example.com/password\nPLAIN='plain value'\n",
    )
    .unwrap();
    let r = env
        .run(&[
            "run",
            "--env-file",
            f.to_str().unwrap(),
            "--all-secrets",
            "--",
            "sh",
            "-c",
            "printf '%s|%s|%s' \"$PW\" \"$PLAIN\" \"$API_KEY\"",
        ])
        .ok();
    assert_eq!(r.stdout, "pw-alice|plain value|alice-api-value");
    // a key that is not a variable name is refused by --all-secrets …
    env.run(&["secrets", "set", "bad-key", "x"]).ok();
    let r = env
        .run(&["run", "--all-secrets", "--", "true"])
        .fails(EXIT_INVALID);
    assert!(r.stderr.contains("bad-key"), "{}", r.stderr);
    // … unless --env maps it
    env.run(&[
        "run",
        "--all-secrets",
        "--env",
        "BAD_KEY=ravi://secrets/bad-key",
        "--",
        "true",
    ])
    .ok();
    // an unresolved reference runs nothing
    let marker = env.work.join("ran");
    env.run(&[
        "run",
        "--env",
        "X=ravi://secrets/NOPE",
        "--",
        "touch",
        marker.to_str().unwrap(),
    ])
    .fails(EXIT_NOT_FOUND);
    assert!(!marker.exists());
}

/// The value is in neither process's argv: ravi's own command line holds
/// only the reference, and the child's only its own arguments.
#[cfg(target_os = "linux")]
#[test]
fn run_puts_no_value_on_any_cmdline() {
    let env = setup();
    let out = env.work.join("cmdline");
    let r = env
        .run(&[
            "run",
            "--env",
            "V=ravi://secrets/API_KEY",
            "--",
            "sh",
            "-c",
            &format!(
                "tr '\\0' ' ' < /proc/$$/cmdline > {0}; test -n \"$V\" && echo set >> {0}",
                out.display()
            ),
        ])
        .ok();
    let _ = r;
    let cmdline = std::fs::read_to_string(&out).unwrap();
    assert!(cmdline.contains("set"), "{cmdline}");
    assert!(!cmdline.contains("alice-api-value"), "{cmdline}");
}

/// INT, TERM and HUP reach the command: ravi becomes it.
#[cfg(unix)]
#[test]
fn run_forwards_signals() {
    let env = setup();
    let mut child = env
        .command()
        .args([
            "run",
            "--env",
            "V=ravi://secrets/API_KEY",
            "--",
            "sh",
            "-c",
            "trap 'exit 42' TERM; echo ready; while :; do sleep 0.05; done",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line.trim(), "ready");
    let pid = child.id().to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(42));
}

/// `ravi completions SHELL` prints a script for each shell; bash loads it.
#[test]
fn completions_for_every_shell() {
    let env = Env::empty();
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let r = env.run(&["completions", shell]).ok();
        assert!(r.stdout.contains("ravi"), "{shell}");
        assert!(r.stdout.len() > 1000, "{shell}");
    }
    env.run(&["completions", "tcsh"]).fails(EXIT_INVALID);
    let script = env.work.join("ravi.bash");
    std::fs::write(&script, env.run(&["completions", "bash"]).ok().stdout).unwrap();
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!(
            "set -e; source {}; complete -p ravi",
            script.display()
        ))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("_ravi"));
}
