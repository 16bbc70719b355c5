//! Helpers: the `ravi` binary cargo built and a throwaway vault environment.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

/// Exit codes documented in the README and `ravi --help`.
#[allow(dead_code)] // documented; no test provokes an internal failure now
pub const EXIT_INTERNAL: i32 = 1;
pub const EXIT_INVALID: i32 = 2;
pub const EXIT_NOT_FOUND: i32 = 3;
pub const EXIT_LOCKED: i32 = 4;
pub const EXIT_INTEGRITY: i32 = 5;
pub const EXIT_CONFLICT: i32 = 6;

pub const PASSPHRASE: &str = "correct horse battery staple";

/// Weak Argon2id parameters (1 MiB, t=1, p=1) for `ravi init`, chosen
/// explicitly for test speed.
pub const WEAK_KDF: [&str; 6] = [
    "--kdf-memory-mib",
    "1",
    "--kdf-iterations",
    "1",
    "--kdf-parallelism",
    "1",
];

/// The `ravi` binary under test: the one cargo built for these tests, or
/// the one `RAVI_TEST_BIN` names (`.ci/run` runs the suites a second time
/// against the static release build of README "A static build").
pub fn ravi_bin() -> &'static Path {
    static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(|| match std::env::var_os("RAVI_TEST_BIN") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(env!("CARGO_BIN_EXE_ravi")),
    })
}

/// A temporary home, config directory, vault path and work directory.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub home: PathBuf,
    pub vault: PathBuf,
    pub config_dir: PathBuf,
    pub work: PathBuf,
}

/// The result of one `ravi` run.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}): {:?}\nstderr: {}",
                self.stdout, self.stderr
            )
        })
    }

    pub fn error_json(&self) -> Value {
        serde_json::from_str(self.stderr.trim())
            .unwrap_or_else(|e| panic!("stderr is not JSON ({e}): {:?}", self.stderr))
    }

    #[track_caller]
    pub fn ok(self) -> Self {
        assert_eq!(
            self.code, 0,
            "stdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        self
    }

    #[track_caller]
    pub fn fails(self, code: i32) -> Self {
        assert_eq!(
            self.code, code,
            "stdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        assert!(!self.stderr.contains("panicked"), "panic: {}", self.stderr);
        assert!(
            !self.stderr.contains("RUST_BACKTRACE"),
            "backtrace: {}",
            self.stderr
        );
        self
    }
}

impl Env {
    /// A fresh environment with no vault yet.
    pub fn empty() -> Env {
        let dir = tempfile::tempdir().expect("tempdir");
        let home = dir.path().join("home");
        let work = dir.path().join("work");
        std::fs::create_dir_all(&home).unwrap();
        std::fs::create_dir_all(&work).unwrap();
        Env {
            vault: dir.path().join("vaults/vault.db"),
            config_dir: dir.path().join("cfg"),
            home,
            work,
            dir,
        }
    }

    /// A fresh environment with an initialised vault (weak Argon2id
    /// parameters, chosen explicitly for test speed).
    pub fn new() -> Env {
        let env = Env::empty();
        env.init(&["--inbox-domain", "agents.example.com"]).ok();
        env
    }

    /// `ravi init` with weak Argon2id parameters (1 MiB, t=1, p=1), chosen
    /// explicitly for test speed, plus `extra` arguments.
    pub fn init(&self, extra: &[&str]) -> Run {
        self.run(&[&["init"][..], &WEAK_KDF, extra].concat())
    }

    /// A fresh vault with one identity selected through the config directory.
    pub fn with_identity(name: &str) -> (Env, Value) {
        let env = Env::new();
        let ident = env
            .run(&["identity", "create", "--name", name, "--json"])
            .ok()
            .json();
        env.run(&["identity", "use", name]).ok();
        (env, ident)
    }

    /// `ravi agent keygen --out <tmp>/<file>`: the key file and its public key.
    pub fn keygen(&self, file: &str) -> (PathBuf, String) {
        let path = self.dir.path().join(file);
        let public = self
            .run(&["agent", "keygen", "--out", path.to_str().unwrap(), "--json"])
            .ok()
            .json()["public_key"]
            .as_str()
            .unwrap()
            .to_string();
        (path, public)
    }

    pub fn command(&self) -> Command {
        self.command_for(ravi_bin())
    }

    /// `program` with this environment's variables and working directory.
    pub fn command_for(&self, program: &Path) -> Command {
        let mut c = Command::new(program);
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("RAVI_") {
                c.env_remove(k);
            }
        }
        c.env("HOME", &self.home)
            .env("RAVI_VAULT", &self.vault)
            .env("RAVI_CONFIG_DIR", &self.config_dir)
            .env("RAVI_PASSPHRASE", PASSPHRASE)
            .env_remove("RUST_BACKTRACE")
            .current_dir(&self.work)
            .stdin(Stdio::null());
        c
    }

    pub fn run(&self, args: &[&str]) -> Run {
        run_command(self.command().args(args))
    }

    pub fn run_stdin(&self, args: &[&str], stdin: &str) -> Run {
        run_command_stdin(self.command().args(args), stdin)
    }

    /// Every file of the vault (main, -wal, -shm) and of the config dirs.
    pub fn stored_bytes(&self) -> Vec<(PathBuf, Vec<u8>)> {
        let mut out = Vec::new();
        for root in [
            self.vault.parent().unwrap(),
            &self.config_dir,
            &self.home,
            &self.work,
        ] {
            collect(root, &mut out);
        }
        out
    }

    pub fn db(&self) -> rusqlite::Connection {
        let c = rusqlite::Connection::open(&self.vault).unwrap();
        c.busy_timeout(std::time::Duration::from_secs(30)).unwrap();
        c
    }
}

fn collect(dir: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            collect(&p, out);
        } else if let Ok(b) = std::fs::read(&p) {
            out.push((p, b));
        }
    }
}

pub fn run_command(c: &mut Command) -> Run {
    to_run(c.output().expect("run ravi"))
}

/// Runs `c` with `stdin` as its standard input.
pub fn run_command_stdin(c: &mut Command, stdin: &str) -> Run {
    use std::io::Write;
    let mut child = c
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ravi");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    to_run(child.wait_with_output().unwrap())
}

/// Starts `c` with its stdout piped and reads the first line it prints (a
/// server's or daemon's "ready" line).
pub fn spawn_for_line(c: &mut Command) -> (std::process::Child, String) {
    use std::io::BufRead;
    let mut child = c.stdout(Stdio::piped()).spawn().expect("spawn ravi");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().expect("piped stdout"))
        .read_line(&mut line)
        .expect("read its first line");
    (child, line)
}

pub fn to_run(o: Output) -> Run {
    Run {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}
