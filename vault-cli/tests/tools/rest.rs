//! The REST interface with outside clients: the Python (httpx) and
//! TypeScript (fetch) examples run against `ravi serve` with only BASE
//! changed and the token from the auth.json `ravi login` wrote; and
//! schemathesis fuzzes every operation of `/api/schema/` without one 5xx.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::common::*;
use crate::serve::Server;

fn python() -> PathBuf {
    PathBuf::from(std::env::var_os("RAVI_INDEPENDENT_PYTHON").unwrap())
}

/// `tsc` from `RAVI_TSC`.
pub fn tsc() -> Option<PathBuf> {
    std::env::var_os("RAVI_TSC")
        .map(PathBuf::from)
        .filter(|p| p.is_file())
}

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/rest")
}

/// The example with its BASE line pointed at `url`, in `dir`.
fn with_base(file: &str, url: &str, dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(examples().join(file)).unwrap();
    let line = text
        .lines()
        .find(|l| l.contains("BASE = \"http://127.0.0.1:8700\""))
        .expect("the example's BASE line");
    let changed = text.replacen(line, &line.replace("http://127.0.0.1:8700", url), 1);
    assert_ne!(changed, text);
    let out = dir.join(file);
    std::fs::write(&out, changed).unwrap();
    out
}

fn check(out: &std::process::Output, name: &str) -> Value {
    assert!(
        out.status.success(),
        "{name}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["name"], name, "{v}");
    for key in ["uuid", "name", "inbox", "phone", "created_dt"] {
        assert!(v.get(key).is_some(), "{key} missing: {v}");
    }
    v
}

pub fn seed_examples_run_against_ravi_serve() {
    let server = Server::start();
    let token = server.token(&["--name", "owner", "--owner"]);
    let env = Env::empty();
    let mut c = env.command();
    c.env_remove("RAVI_VAULT")
        .args(["login", "--server", &server.url, "--token-stdin"]);
    let mut child = c.stdin(std::process::Stdio::piped()).spawn().unwrap();
    {
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(token.as_bytes())
            .unwrap();
    }
    assert!(child.wait().unwrap().success());
    let owner = |args: &[&str]| {
        let mut c = env.command();
        c.env_remove("RAVI_VAULT").args(args);
        run_command(&mut c)
    };
    owner(
        &[
            &["init", "--inbox-domain", "agents.example.com"][..],
            &WEAK_KDF,
        ]
        .concat(),
    )
    .ok();

    // Python, httpx
    let py = with_base("identity.py", &server.url, env.dir.path());
    let out = Command::new(python())
        .arg(&py)
        .arg("py-agent")
        .env("HOME", &env.home)
        .output()
        .unwrap();
    let py_identity = check(&out, "py-agent");
    assert_eq!(py_identity["pending"], true);

    // TypeScript, fetch (compiled with tsc, run by node)
    let ts = with_base("identity.ts", &server.url, env.dir.path());
    let built = env.dir.path().join("js");
    let tsc = tsc().unwrap();
    // tsc is node_modules/.bin/tsc: the Node types are beside it
    let types = tsc.parent().unwrap().parent().unwrap().join("@types");
    let out = Command::new(&tsc)
        .args(["--target", "es2022", "--module", "nodenext", "--strict"])
        .arg("--typeRoots")
        .arg(&types)
        .args(["--types", "node", "--outDir"])
        .arg(&built)
        .arg(&ts)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "tsc: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new("node")
        .arg(built.join("identity.js"))
        .arg("ts-agent")
        .env("HOME", &env.home)
        .output()
        .unwrap();
    check(&out, "ts-agent");

    // The owner's next command adopts both; the REST API then shows them
    // with their inboxes, and ravi uses them.
    let r = owner(&["identity", "create", "--name", "owner-made"]).ok();
    assert!(
        r.stderr.contains("adopted identity py-agent"),
        "{}",
        r.stderr
    );
    let email = owner(&["--identity", "ts-agent", "get", "email"]).ok();
    assert_eq!(email.stdout.trim(), "ts-agent@agents.example.com");
    let out = Command::new(python())
        .arg("-c")
        .arg(format!(
            "import httpx, json, pathlib; t = json.loads((pathlib.Path.home() / '.ravi/auth.json').read_text())['access_token']; print(httpx.get('{}/api/identities/{}/', headers={{'Authorization': 'Bearer ' + t}}).text)",
            server.url,
            py_identity["uuid"].as_str().unwrap()
        ))
        .env("HOME", &env.home)
        .output()
        .unwrap();
    let shown = check(&out, "py-agent");
    assert_eq!(shown["inbox"], "py-agent@agents.example.com");
    assert_eq!(shown["pending"], false);
}

pub fn schemathesis_finds_no_server_error() {
    let server = Server::start();
    let token = server.token(&["--name", "owner", "--owner"]);
    let env = Env::empty();
    let owner = |args: &[&str]| {
        let mut c = env.command();
        c.env_remove("RAVI_VAULT")
            .env("RAVI_SERVER", &server.url)
            .env("RAVI_TOKEN", &token)
            .args(args);
        run_command(&mut c)
    };
    owner(&[&["init"][..], &WEAK_KDF].concat()).ok();
    owner(&["identity", "create", "--name", "alice"]).ok();
    owner(&["--identity", "alice", "secrets", "set", "K", "v"]).ok();
    let st = python().with_file_name("schemathesis");
    let out = Command::new(&st)
        .arg("run")
        .arg(format!("{}/api/schema/", server.url))
        .args([
            "--checks",
            "not_a_server_error",
            "--max-examples",
            "25",
            "--seed",
            "7",
        ])
        .args(["--header", &format!("Authorization: Bearer {token}")])
        .env("SCHEMATHESIS_HOOKS", "")
        .current_dir(env.dir.path())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!(
        "schemathesis: {}",
        text.lines()
            .filter(|l| l.contains("generated") || l.contains("Tested"))
            .collect::<Vec<_>>()
            .join("; ")
    );
    assert!(out.status.success(), "schemathesis failed:\n{text}");
    assert!(text.contains("passed"), "{text}");
    let log = String::from_utf8_lossy(&server.log()).to_string();
    assert!(
        !log.lines().any(|l| l
            .split_whitespace()
            .nth(4)
            .is_some_and(|s| s.starts_with('5'))),
        "a 5xx in the server log"
    );
}
