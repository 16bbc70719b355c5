//! `ravi daemon`: a process that holds a session or an agent key and the
//! vault open, and answers the read commands of this user's other `ravi`
//! processes over a Unix socket. A process that finds `RAVI_DAEMON` set
//! sends its arguments there before building its command-line parser; what
//! the daemon does not answer (any other command, a store or credential of
//! the process's own) runs in the process as always.
//!
//! The daemon runs each request through the same code as a process would
//! (the vault's owner key and head checked, the credential presented
//! again, the identity's head checked against the newest seen), on the
//! connection and statements it keeps: a revoked session, a removed grant
//! or a rolled-back store is refused at the next request.

use std::io::{Read, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use vault_core::{Credential, Error, Result, Vault};

use crate::args::{
    Cli, Command, DaemonArgs, GlobalArgs, PasswordsCommand, SecretsCommand, TotpCommand,
};
use crate::{Output, records, refs};

/// The variable that names a daemon's socket to its clients.
pub const SOCKET_ENV: &str = "RAVI_DAEMON";

/// Options naming a store or a credential: a process given one on its
/// command line runs the command itself.
const OWN_OPTIONS: [&str; 4] = [
    "--vault",
    "--passphrase-file",
    "--session-file",
    "--agent-key-file",
];

/// Bounds of one exchange: a request is a command line (and, for `ravi
/// inject`, a template from standard input), a reply a record, a listing
/// or a rendered template.
const MAX_REQUEST: u64 = 4 * 1024 * 1024;
const MAX_REPLY: u64 = 16 * 1024 * 1024;

/// A client's question: its arguments (without the program name), its
/// working directory and its `RAVI_IDENTITY`, which select the identity.
#[derive(Serialize, Deserialize)]
struct Request {
    argv: Vec<String>,
    cwd: PathBuf,
    identity: Option<String>,
    /// `ravi inject` without `--in`: the template, once the daemon asks
    /// for it (`send_stdin`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    stdin: Option<String>,
}

/// The answer: `served: false` when the daemon does not run this command
/// (the client runs it), else what the command printed and its exit code.
/// (No `Debug`: `stdout` holds secrets.)
#[derive(Serialize, Deserialize, Default)]
struct Reply {
    served: bool,
    code: u8,
    stdout: String,
    stderr: String,
    /// `ravi run`: the command the client becomes, and its environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    exec: Option<Exec>,
    /// `ravi inject` without `--in`: ask again with standard input.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    send_stdin: bool,
    /// `ravi inject -o OUT`: the file the client writes before it prints
    /// `stdout` and `stderr`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    file: Option<FileOut>,
    /// `ravi totp code --min-validity N`: the code is the next window's,
    /// and the client waits this many seconds, until it begins, before it
    /// prints it (the daemon does not wait: it answers others meanwhile).
    #[serde(default, skip_serializing_if = "is_zero")]
    wait_seconds: u64,
}

#[allow(clippy::trivially_copy_pass_by_ref)] // (serde's signature)
fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// A file the client writes (mode 0600, all or nothing), its path as the
/// client gave it. (No `Debug`: `content` holds secrets.)
#[derive(Serialize, Deserialize)]
struct FileOut {
    path: PathBuf,
    content: String,
    /// Whether an error writing it is said as JSON (`--json`).
    json: bool,
}

/// What `ravi run` makes of its command line through a daemon: the
/// client runs `program` with `args`, the values in its environment.
/// (No `Debug`: `env` holds secrets.)
#[derive(Serialize, Deserialize)]
struct Exec {
    program: String,
    args: Vec<String>,
    env: Vec<(String, String)>,
    /// Whether an error running it is said as JSON (`--json`).
    json: bool,
}

/// Asks the daemon that `RAVI_DAEMON` names to run this process's command.
/// `None`: run it here (no daemon set, a command it does not answer, or a
/// daemon that cannot be reached, which is said on stderr).
pub fn client() -> Option<ExitCode> {
    let socket = std::env::var_os(SOCKET_ENV).filter(|s| !s.is_empty())?;
    let argv = std::env::args_os()
        .skip(1)
        .map(|a| a.into_string().ok())
        .collect::<Option<Vec<String>>>()?;
    let own = |a: &String| {
        OWN_OPTIONS
            .iter()
            .any(|o| a == o || a.strip_prefix(o).is_some_and(|r| r.starts_with('=')))
    };
    // Only reads are answered: other commands need not ask.
    if argv.iter().any(own)
        || !argv.iter().any(|a| {
            matches!(
                a.as_str(),
                "get" | "code" | "read" | "run" | "list" | "show" | "uri" | "inject"
            )
        })
    {
        return None;
    }
    let mut request = Request {
        argv,
        cwd: std::env::current_dir().ok()?,
        identity: std::env::var("RAVI_IDENTITY").ok().filter(|v| !v.is_empty()),
        stdin: None,
    };
    let socket = PathBuf::from(socket);
    let mut answered = ask(&socket, &request);
    if let Ok(Reply {
        send_stdin: true, ..
    }) = answered
    {
        let json = request.argv.iter().any(|a| a == "--json");
        match refs::template_from_stdin().and_then(|t| {
            if t.len() as u64 > MAX_REQUEST - 64 * 1024 {
                return Err(Error::InvalidInput(format!(
                    "the template on standard input is over {} MiB, more than a daemon takes: give it with --in FILE",
                    (MAX_REQUEST - 64 * 1024) >> 20
                )));
            }
            Ok(t)
        }) {
            Ok(template) => request.stdin = Some(template),
            Err(e) => {
                eprint!("{}", crate::error_text(&e, json));
                return Some(ExitCode::from(crate::exit_code(e.class())));
            }
        }
        answered = ask(&socket, &request);
        // (standard input is spent: running the command here would render
        // an empty template)
        let lost = match &answered {
            Ok(reply) if reply.served && !reply.send_stdin => None,
            Ok(_) => Some("it did not answer".to_string()),
            Err(e) => Some(e.to_string()),
        };
        if let Some(why) = lost {
            let e = Error::Io {
                context: format!(
                    "the daemon at {} did not render the template sent to it from standard input",
                    socket.display()
                ),
                source: std::io::Error::other(why),
            };
            eprint!("{}", crate::error_text(&e, json));
            return Some(ExitCode::from(crate::exit_code(e.class())));
        }
    }
    match answered {
        // (a daemon asks for standard input once)
        Ok(reply) if reply.served && !reply.send_stdin => {
            if reply.wait_seconds > 0 {
                std::thread::sleep(Duration::from_secs(reply.wait_seconds));
            }
            if let Some(file) = reply.file
                && let Err(e) = vault_cli::config::write_private_file(&file.path, file.content.as_bytes())
            {
                eprint!("{}", crate::error_text(&e, file.json));
                return Some(ExitCode::from(crate::exit_code(e.class())));
            }
            let mut err = std::io::stderr().lock();
            let _ = err.write_all(reply.stderr.as_bytes());
            if let Some(exec) = reply.exec {
                drop(err);
                return Some(run_as(exec));
            }
            let mut out = std::io::stdout().lock();
            match out
                .write_all(reply.stdout.as_bytes())
                .and_then(|()| out.flush())
            {
                Ok(()) => Some(ExitCode::from(reply.code)),
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                    Some(ExitCode::from(reply.code))
                }
                Err(_) => Some(ExitCode::from(1)),
            }
        }
        Ok(_) => None,
        Err(e) => {
            eprintln!(
                "ravi: warning: cannot use the daemon at {} ({SOCKET_ENV}): {e}; running without it",
                socket.display()
            );
            None
        }
    }
}

/// `ravi run` answered by a daemon: this process becomes the command.
fn run_as(exec: Exec) -> ExitCode {
    let e = refs::become_with(
        std::ffi::OsStr::new(&exec.program),
        &exec.args,
        exec.env.iter().map(|(k, v)| (k.as_str(), v.as_str())),
    );
    eprint!("{}", crate::error_text(&e, exec.json));
    ExitCode::from(crate::exit_code(e.class()))
}

fn ask(socket: &Path, request: &Request) -> std::io::Result<Reply> {
    let mut stream = UnixStream::connect(socket)?;
    // Only a daemon of this user is believed: a socket another user made
    // (in /tmp, say) could otherwise answer with codes and addresses of
    // its choosing.
    same_user(&stream, "the daemon runs as")?;
    stream.set_read_timeout(Some(Duration::from_secs(120)))?;
    let mut line = serde_json::to_vec(request)?;
    line.push(b'\n');
    stream.write_all(&line)?;
    stream.shutdown(std::net::Shutdown::Write)?;
    let mut reply = Vec::new();
    (&stream).take(MAX_REPLY).read_to_end(&mut reply)?;
    serde_json::from_slice(&reply).map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("not a daemon's reply ({e})"),
        )
    })
}

/// What the daemon holds for its whole life.
struct Held {
    /// Its own options: the store and the credential's files.
    global: GlobalArgs,
    vault: Vault,
    credential: Credential,
    /// The owner keys pinned for the vault, read once (as a process reads
    /// them once); the vault's owner key is compared with them each time.
    pinned: Vec<vault_core::OwnerPublicKey>,
}

/// `ravi daemon`: answers clients until its lifetime ends or a signal
/// stops it, then removes its socket.
pub fn serve(g: &GlobalArgs, a: &DaemonArgs) -> Result<()> {
    let ttl = vault_core::parse_ttl(&a.ttl)?;
    let set = |v: &str| std::env::var_os(v).is_some_and(|s| !s.is_empty());
    // (checked before reading one: no passphrase prompt, nothing derived)
    let offered = g.session_file.is_some()
        || g.agent_key_file.is_some()
        || set("RAVI_SESSION")
        || set("RAVI_AGENT_KEY_FILE");
    let credential = if offered {
        Some(crate::credential(g)?)
    } else {
        None
    };
    let Some(credential) = credential.filter(|c| !matches!(c, Credential::Passphrase(_))) else {
        return Err(Error::InvalidInput(
            "ravi daemon holds a session or an agent key, never the passphrase: give it \
             a session (`ravi unlock`, then RAVI_SESSION or --session-file) or an agent key \
             (--agent-key-file)"
                .into(),
        ));
    };
    let vault = crate::open_vault(g)?;
    let pinned = crate::check_vault(g, &vault)?;
    // A credential that opens nothing is refused now, not at each request.
    crate::access_with(&vault, &credential)?;
    let socket = match (&a.socket, a.command.is_empty()) {
        (Some(p), _) => p.clone(),
        (None, true) => crate::config_dir()?.join("daemon.sock"),
        // (one per command: daemons wrapping commands side by side)
        (None, false) => crate::config_dir()?.join(format!("daemon-{}.sock", std::process::id())),
    };
    let held = Held {
        global: g.clone(),
        vault,
        credential,
        pinned,
    };
    let mut child = None;
    let ending = {
        let listener = bind(&socket)?;
        let _remove = RemoveOnDrop(&socket);
        let signals = Signals::register(!a.command.is_empty())?;
        match a.command.split_first() {
            Some((program, args)) => child = Some(spawn(program, args, &socket)?),
            None => ready(g, &socket, ttl)?,
        }
        // (the socket is removed at the end of this block, before waiting
        // for a command)
        answer_until(&held, &listener, &signals, Instant::now() + ttl, child.as_mut())?
    };
    // The credential is not held while the command goes on alone.
    drop(held);
    let Some(mut child) = child else {
        return Ok(());
    };
    let status = match ending {
        Ending::Exited(status) => status,
        Ending::Signal(signal) => {
            // Passed on to the command, whose status is the daemon's.
            let _ = rustix::process::kill_process(rustix::process::Pid::from_child(&child), signal);
            wait_for(&mut child)?
        }
        Ending::Expired => {
            eprintln!("ravi daemon: its --ttl has ended; the command goes on without it");
            wait_for(&mut child)?
        }
    };
    use std::os::unix::process::ExitStatusExt;
    let code = status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(1);
    std::process::exit(code);
}

/// Why a daemon stopped answering.
enum Ending {
    /// SIGTERM, SIGINT or SIGHUP.
    Signal(rustix::process::Signal),
    /// Its `--ttl` ended.
    Expired,
    /// The command it ran exited.
    Exited(std::process::ExitStatus),
}

/// The signals that end a daemon (TERM, INT, HUP), and for one that runs
/// a command, CHLD: each sets a flag and wakes the wait for clients.
struct Signals {
    last: Arc<AtomicUsize>,
    wake: UnixStream,
}

impl Signals {
    fn register(child: bool) -> Result<Signals> {
        let io = |e| Error::Io {
            context: "cannot handle signals".into(),
            source: e,
        };
        let (wake, notify) = UnixStream::pair().map_err(io)?;
        wake.set_nonblocking(true).map_err(io)?;
        let last = Arc::new(AtomicUsize::new(0));
        use signal_hook::consts::{SIGCHLD, SIGHUP, SIGINT, SIGTERM};
        let mut wakers = vec![SIGTERM, SIGINT, SIGHUP];
        for &signal in &wakers {
            let n = usize::try_from(signal).unwrap_or(usize::MAX);
            signal_hook::flag::register_usize(signal, Arc::clone(&last), n).map_err(io)?;
        }
        if child {
            wakers.push(SIGCHLD);
        }
        for signal in wakers {
            signal_hook::low_level::pipe::register(signal, notify.try_clone().map_err(io)?)
                .map_err(io)?;
        }
        Ok(Signals { last, wake })
    }

    /// The ending signal received, if one was.
    fn received(&self) -> Option<rustix::process::Signal> {
        // (what woke the wait is read away)
        let mut buf = [0u8; 64];
        while matches!((&self.wake).read(&mut buf), Ok(n) if n > 0) {}
        i32::try_from(self.last.load(Ordering::SeqCst))
            .ok()
            .and_then(rustix::process::Signal::from_named_raw)
    }
}

/// The line that says the daemon listens (a daemon without a command).
fn ready(g: &GlobalArgs, socket: &Path, ttl: Duration) -> Result<()> {
    let line = if g.json {
        serde_json::json!({
            "socket": socket,
            "pid": std::process::id(),
            "ttl_seconds": ttl.as_secs(),
        })
        .to_string()
    } else {
        format!("{SOCKET_ENV}={}", socket.display())
    };
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")
        .and_then(|()| out.flush())
        .map_err(|e| Error::Io {
            context: "cannot write standard output".into(),
            source: e,
        })
}

/// Starts the command a daemon runs, with `RAVI_DAEMON` naming its socket.
fn spawn(
    program: &std::ffi::OsStr,
    args: &[std::ffi::OsString],
    socket: &Path,
) -> Result<std::process::Child> {
    std::process::Command::new(program)
        .args(args)
        .env(SOCKET_ENV, socket)
        .spawn()
        .map_err(|e| refs::exec_error(program, e))
}

fn wait_for(child: &mut std::process::Child) -> Result<std::process::ExitStatus> {
    child.wait().map_err(|e| Error::Io {
        context: "cannot wait for the command".into(),
        source: e,
    })
}

/// Answers clients until a signal, the end of the lifetime, or the exit
/// of the command the daemon runs.
fn answer_until(
    held: &Held,
    listener: &UnixListener,
    signals: &Signals,
    deadline: Instant,
    mut child: Option<&mut std::process::Child>,
) -> Result<Ending> {
    listener.set_nonblocking(true).map_err(|e| Error::Io {
        context: "cannot listen".into(),
        source: e,
    })?;
    let mut parsed = Parsed::new();
    let mut memo = Memo::new();
    // Clients whose request has not arrived whole yet. One that is slow,
    // silent or stopped waits here and holds up no other.
    let mut pending: Vec<Pending> = Vec::new();
    // (a signal may have come before the first wait)
    let mut woken = true;
    loop {
        if woken {
            if let Some(signal) = signals.received() {
                return Ok(Ending::Signal(signal));
            }
            if let Some(c) = child.as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                return Ok(Ending::Exited(status));
            }
        }
        // (a reply kept from a second that has ended is dropped now: at
        // most about a second later, the wait being at most a second)
        memo.now();
        let Some(left) = deadline.checked_duration_since(Instant::now()) else {
            return Ok(Ending::Expired);
        };
        woken = wait(listener, &signals.wake, &pending, left);
        accept_all(listener, &mut pending);
        let now = Instant::now();
        let mut i = 0;
        while i < pending.len() {
            let client = &mut pending[i];
            let progress = if client.reply.is_some() {
                client.send()
            } else {
                client.read().and_then(|whole| {
                    if !whole {
                        return Ok(false);
                    }
                    client.answer(held, &mut parsed, &mut memo)?;
                    client.send()
                })
            };
            match progress {
                // (within its time: waits for more bytes, or for room to send)
                Ok(false) if now.duration_since(client.since) < REQUEST_TIME => i += 1,
                // (done; or its time is up: closed, unanswered or part-answered)
                Ok(_) => {
                    pending.swap_remove(i);
                }
                Err(e) => {
                    if client.reply.is_some() && e.kind() != std::io::ErrorKind::BrokenPipe {
                        eprintln!("ravi daemon: a reply failed: {e}");
                    }
                    pending.swap_remove(i);
                }
            }
        }
    }
}

/// How long a client may take to send its request, and to take its
/// reply; how many clients may be sending or receiving at once (beyond,
/// the one that has waited longest is closed: its process runs the
/// command itself).
const REQUEST_TIME: Duration = Duration::from_secs(5);
const MAX_PENDING: usize = 64;

/// Waits at most `left` (and a second) for a new client, for bytes from
/// one that is sending, or for room to send one its reply; a signal ends
/// the wait early (`true`).
fn wait(listener: &UnixListener, wake: &UnixStream, pending: &[Pending], left: Duration) -> bool {
    use rustix::event::{PollFd, PollFlags, Timespec, poll};
    // (the lifetime, a signal and the clients' time are checked after each)
    let mut left = left.min(Duration::from_secs(1));
    if let Some(first) = pending.iter().map(|p| p.since).min() {
        left = left.min((first + REQUEST_TIME).saturating_duration_since(Instant::now()));
    }
    let timeout = Timespec {
        tv_sec: i64::try_from(left.as_secs()).unwrap_or(1),
        tv_nsec: i64::from(left.subsec_nanos()),
    };
    let mut fds: Vec<PollFd<'_>> = [
        PollFd::new(listener, PollFlags::IN),
        PollFd::new(wake, PollFlags::IN),
    ]
    .into_iter()
    .chain(pending.iter().map(|p| {
        let wanted = if p.reply.is_some() {
            PollFlags::OUT
        } else {
            PollFlags::IN
        };
        PollFd::new(&p.stream, wanted)
    }))
        .collect();
    let _ = poll(&mut fds, Some(&timeout));
    !fds[1].revents().is_empty()
}

/// Takes every client waiting at the listener.
fn accept_all(listener: &UnixListener, pending: &mut Vec<Pending>) {
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                // The socket's mode keeps other users out; the peer's user
                // id is checked too (a socket made in a directory others
                // can enter).
                if let Err(e) = same_user(&stream, "refused a client of")
                    .and_then(|()| stream.set_nonblocking(true))
                {
                    eprintln!("ravi daemon: {e}");
                    continue;
                }
                if pending.len() >= MAX_PENDING {
                    let oldest = (0..pending.len()).min_by_key(|&i| pending[i].since);
                    if let Some(i) = oldest {
                        pending.swap_remove(i);
                    }
                }
                pending.push(Pending {
                    stream,
                    line: Vec::new(),
                    since: Instant::now(),
                    reply: None,
                });
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => return,
            Err(e) => {
                eprintln!("ravi daemon: cannot accept a client: {e}");
                return;
            }
        }
    }
}

/// A client: the part of its request read so far, then its reply and how
/// much of it is sent. Neither waits for the client: one that is slow to
/// send or to read holds up no other.
struct Pending {
    stream: UnixStream,
    line: Vec<u8>,
    /// When it connected; once answered, when the reply was made.
    since: Instant,
    /// (No `Debug`: the reply holds secrets.)
    reply: Option<(Vec<u8>, usize)>,
}

impl Pending {
    /// Reads what has arrived; `true` once the request is whole (a line,
    /// the end of the stream, or more than a request may be).
    fn read(&mut self) -> std::io::Result<bool> {
        let mut buf = [0u8; 8192];
        loop {
            match (&self.stream).read(&mut buf) {
                Ok(0) => return Ok(true),
                Ok(n) => {
                    let chunk = &buf[..n];
                    if let Some(end) = chunk.iter().position(|&b| b == b'\n') {
                        self.line.extend_from_slice(&chunk[..=end]);
                        return Ok(true);
                    }
                    self.line.extend_from_slice(chunk);
                    if self.line.len() as u64 > MAX_REQUEST {
                        return Ok(true);
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Answers the request read: the reply to send.
    fn answer(&mut self, held: &Held, parsed: &mut Parsed, memo: &mut Memo) -> std::io::Result<()> {
        self.since = Instant::now();
        if self.line.is_empty() {
            // (a connection that asks nothing: a probe whether one listens)
            self.reply = Some((Vec::new(), 0));
            return Ok(());
        }
        let request = match serde_json::from_slice::<Request>(&self.line) {
            Ok(request) if self.line.len() as u64 <= MAX_REQUEST => request,
            _ => {
                let mut bytes = serde_json::to_vec(&Reply::default())?;
                bytes.push(b'\n');
                self.reply = Some((bytes, 0));
                return Ok(());
            }
        };
        let Some(line) = parsed.get(&request.argv) else {
            // (not a command the daemon answers: the client runs it)
            let mut bytes = serde_json::to_vec(&Reply::default())?;
            bytes.push(b'\n');
            self.reply = Some((bytes, 0));
            return Ok(());
        };
        let facts = keepable(held, &line.cli.command).then(|| Facts::read(held, &line.cli, &request));
        if let Some(facts) = &facts
            && let Some(bytes) = memo.reply(held, &request, facts)
        {
            self.reply = Some((bytes, 0));
            return Ok(());
        }
        let began = memo.now();
        let (reply, mut basis) = answer(held, &line, &request, facts);
        let mut bytes = serde_json::to_vec(&reply)?;
        if bytes.len() as u64 >= MAX_REPLY {
            basis = None;
            // (more than a client reads: said, instead of cut)
            let e = Error::InvalidInput(format!(
                "the answer is over {} MiB, more than a daemon sends: run this command with a credential of its own",
                MAX_REPLY >> 20
            ));
            bytes = serde_json::to_vec(&Reply {
                served: true,
                code: crate::exit_code(e.class()),
                stderr: crate::error_text(&e, false),
                ..Reply::default()
            })?;
        }
        bytes.push(b'\n');
        if let (Some(began), Some(basis), 0) = (began, basis, reply.code) {
            memo.keep(&request, began, basis, &bytes);
        }
        self.reply = Some((bytes, 0));
        Ok(())
    }

    /// Sends what the socket takes of the reply; `true` once all is sent.
    fn send(&mut self) -> std::io::Result<bool> {
        let Some((bytes, sent)) = &mut self.reply else {
            return Ok(false);
        };
        while *sent < bytes.len() {
            match (&self.stream).write(&bytes[*sent..]) {
                Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
                Ok(n) => *sent += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }
}

/// Listens at `socket`, mode 0600. A socket left by a daemon that ended
/// without removing it is replaced; a live daemon's is not.
fn bind(socket: &Path) -> Result<UnixListener> {
    let io = |context: String| move |source| Error::Io { context, source };
    match std::fs::symlink_metadata(socket) {
        Ok(m) if m.file_type().is_socket() => {
            if UnixStream::connect(socket).is_ok() {
                return Err(Error::Conflict(format!(
                    "a daemon already answers at {}",
                    socket.display()
                )));
            }
            std::fs::remove_file(socket)
                .map_err(io(format!("cannot remove the stale {}", socket.display())))?;
        }
        Ok(_) => {
            return Err(Error::InvalidInput(format!(
                "{} exists and is not a socket",
                socket.display()
            )));
        }
        Err(_) => {}
    }
    let listener =
        UnixListener::bind(socket).map_err(io(format!("cannot listen at {}", socket.display())))?;
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o600))
        .map_err(io(format!("cannot restrict {}", socket.display())))?;
    crate::warn_if_others_can_write(socket);
    Ok(listener)
}

struct RemoveOnDrop<'a>(&'a Path);

impl Drop for RemoveOnDrop<'_> {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(self.0);
    }
}

/// Whether the process at the other end of `stream` runs as this user.
fn same_user(stream: &UnixStream, refusal: &str) -> std::io::Result<()> {
    let peer = rustix::net::sockopt::socket_peercred(stream)?;
    if peer.uid == rustix::process::geteuid() {
        return Ok(());
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::PermissionDenied,
        format!("{refusal} user id {}", peer.uid.as_raw()),
    ))
}

/// The command-line parser, and what it made of the command lines seen.
/// A command line always parses the same way here (the options read from
/// the environment are the daemon's own), so each is parsed once: a
/// request costs a lookup, not a parse (an eighth of the daemon's time).
struct Parsed {
    parser: clap::Command,
    seen: std::collections::HashMap<Vec<String>, Option<std::rc::Rc<ParsedLine>>>,
}

/// A command line the daemon answers, parsed: the options and command,
/// and the command's path (`["secrets", "get"]`).
struct ParsedLine {
    cli: Cli,
    path: Vec<String>,
}

impl Parsed {
    /// Command lines kept at most (a daemon's clients ask few distinct
    /// ones; beyond, the table starts again).
    const KEPT: usize = 1024;

    fn new() -> Parsed {
        Parsed {
            parser: crate::args::command(),
            seen: std::collections::HashMap::new(),
        }
    }

    /// `None`: a command line that does not parse (the client's to
    /// report) or a command the daemon does not answer.
    fn get(&mut self, argv: &[String]) -> Option<std::rc::Rc<ParsedLine>> {
        if let Some(p) = self.seen.get(argv) {
            return p.clone();
        }
        let parsed = self.parse(argv).map(std::rc::Rc::new);
        if self.seen.len() >= Self::KEPT {
            self.seen.clear();
        }
        self.seen.insert(argv.to_vec(), parsed.clone());
        parsed
    }

    fn parse(&mut self, argv: &[String]) -> Option<ParsedLine> {
        use clap::FromArgMatches;
        let argv = std::iter::once("ravi").chain(argv.iter().map(String::as_str));
        let matches = self.parser.try_get_matches_from_mut(argv).ok()?;
        let cli = Cli::from_arg_matches(&matches).ok()?;
        if !answered(&cli.command) {
            return None;
        }
        let path = crate::command_path(&matches)
            .into_iter()
            .map(str::to_owned)
            .collect();
        Some(ParsedLine { cli, path })
    }
}

/// Runs a request's command if it is one the daemon answers.
fn answer(
    held: &Held,
    line: &ParsedLine,
    request: &Request,
    facts: Option<Facts>,
) -> (Reply, Option<Basis>) {
    let (cli, path) = (&line.cli, &line.path);
    let path: Vec<&str> = path.iter().map(String::as_str).collect();
    let mut out = Output::captured(&cli.global);
    let done = crate::refuse_unused_options(&cli.global, &path)
        .and_then(|()| read(held, cli, request, facts, &mut out));
    match done {
        Ok((extra, basis)) => {
            let (stdout, stderr) = out.printed();
            let mut reply = Reply {
                served: true,
                stdout,
                stderr,
                ..Reply::default()
            };
            match extra {
                Extra::Nothing => {}
                Extra::Exec(exec) => reply.exec = Some(exec),
                Extra::SendStdin => reply.send_stdin = true,
                Extra::File(file) => reply.file = Some(file),
                Extra::Wait(seconds) => reply.wait_seconds = seconds,
            }
            (reply, basis)
        }
        Err(e) => (
            Reply {
                served: true,
                code: crate::exit_code(e.class()),
                stderr: crate::error_text(&e, cli.global.json),
                ..Reply::default()
            },
            None,
        ),
    }
}

/// The commands whose replies may be kept (`Memo`): reads of the selected
/// identity's records, which depend on nothing but the store, the
/// selection, the client-side heads and the second of the clock (a TOTP
/// code; a session's expiry). Not `read`, `run` or `inject` (other
/// identities; the client's files), and not while no owner key is pinned
/// (the pins file is then read at each request).
fn keepable(held: &Held, c: &Command) -> bool {
    !held.pinned.is_empty()
        && matches!(
            c,
            Command::Secrets(SecretsCommand::Get { .. } | SecretsCommand::List)
                | Command::Passwords(PasswordsCommand::Get { .. } | PasswordsCommand::List)
                | Command::Totp(
                    TotpCommand::Code {
                        min_validity: None,
                        ..
                    } | TotpCommand::List
                        | TotpCommand::Show { .. }
                        | TotpCommand::Uri { .. }
                )
        )
}

/// The identity a request's records were read in, and its head then.
struct Opened {
    identity_uuid: String,
    identity_head: Option<u64>,
}

/// What a reply was made from, besides the request and the second.
struct Basis {
    /// The store's version (`Vault::store_version`), the same before the
    /// credential was presented and in the snapshot read.
    store: [u64; 2],
    selection: crate::Selection,
    /// The heads the checks accepted (the vault's, the identity's).
    vault_head: Option<u64>,
    opened: Opened,
}

/// What a kept reply must have been made from, read once for a request
/// whose reply may be kept, before anything else (the credential
/// included): compared with a kept reply's `Basis`, else what a new reply
/// is made for.
struct Facts {
    /// The identity selection (`None`: it failed, which the read then says).
    selection: Option<crate::Selection>,
    /// The store's version (`None`: it gives none, or reading it failed).
    store: Option<[u64; 2]>,
}

impl Facts {
    fn read(held: &Held, cli: &Cli, request: &Request) -> Facts {
        let vault = &held.vault;
        Facts {
            selection: crate::selection_at(&cli.global, &request.cwd, request.identity.as_deref())
                .ok(),
            store: vault
                .read_consistently(|| vault.store_version())
                .ok()
                .flatten(),
        }
    }
}

/// Replies made in the current second of the clock, kept for the same
/// request (command line, directory, `RAVI_IDENTITY`) while what they
/// were made from is unchanged: the store's version, the identity
/// selection, and the client-side heads no newer than those the reply's
/// checks accepted (SPEC §11). Each is dropped (zeroised) when the second
/// ends.
struct Memo {
    second: u64,
    kept: std::collections::HashMap<MemoKey, Kept>,
}

#[derive(PartialEq, Eq, Hash)]
struct MemoKey {
    argv: Vec<String>,
    cwd: PathBuf,
    identity: Option<String>,
}

struct Kept {
    basis: Basis,
    reply: zeroize::Zeroizing<Vec<u8>>,
}

impl Memo {
    /// At most this many replies are kept in one second.
    const KEPT: usize = 256;

    fn new() -> Memo {
        Memo {
            second: 0,
            kept: std::collections::HashMap::new(),
        }
    }

    fn key(request: &Request) -> MemoKey {
        MemoKey {
            argv: request.argv.clone(),
            cwd: request.cwd.clone(),
            identity: request.identity.clone(),
        }
    }

    /// The second of the clock now; a new one drops what was kept.
    fn now(&mut self) -> Option<u64> {
        let now = vault_core::Clock::now(&vault_core::SystemClock).ok()?;
        if now != self.second {
            self.kept.clear();
            self.second = now;
        }
        Some(now)
    }

    /// The reply kept for `request`, if nothing it was made from changed:
    /// the selection and the store's version as `facts` found them now.
    fn reply(&mut self, held: &Held, request: &Request, facts: &Facts) -> Option<Vec<u8>> {
        self.now()?;
        let kept = self.kept.get(&Memo::key(request))?;
        let basis = &kept.basis;
        if facts.selection.as_ref() != Some(&basis.selection) || facts.store != Some(basis.store) {
            return None;
        }
        // (read after the store's version, as a process reads them before
        // the heads: a newer one seen since is the rollback check's)
        let (cfg, vault_id) = (crate::config_dir().ok()?, held.vault.info().vault_id);
        let seen = |key: &str| crate::seen::newest_seen(&cfg, &vault_id, key).ok();
        crate::seen::check("", seen(crate::seen::VAULT_HEAD)?, basis.vault_head).ok()?;
        let identity = &basis.opened;
        crate::seen::check("", seen(&identity.identity_uuid)?, identity.identity_head).ok()?;
        Some(kept.reply.to_vec())
    }

    /// Keeps a reply made in the second `made` (it began and ended in it).
    fn keep(&mut self, request: &Request, made: u64, basis: Basis, reply: &[u8]) {
        if self.now() == Some(made) && self.kept.len() < Memo::KEPT {
            self.kept.insert(
                Memo::key(request),
                Kept {
                    basis,
                    reply: zeroize::Zeroizing::new(reply.to_vec()),
                },
            );
        }
    }
}

/// What a read gives the client besides what it prints.
enum Extra {
    Nothing,
    /// `ravi run`: the command to become.
    Exec(Exec),
    /// `ravi inject` without `--in`: the template is the client's stdin.
    SendStdin,
    /// `ravi inject -o OUT`: the file to write.
    File(FileOut),
    /// `ravi totp code --min-validity`: print after this many seconds.
    Wait(u64),
}

/// A clock that does not wait: a wait moves its time on instead, and the
/// client does the waiting (`Reply::wait_seconds`).
#[derive(Default)]
struct Planned {
    waited: std::cell::Cell<u64>,
}

impl vault_core::Clock for Planned {
    fn now(&self) -> Result<u64> {
        Ok(vault_core::SystemClock.now()?.saturating_add(self.waited.get()))
    }

    fn sleep(&self, d: Duration) {
        self.waited.set(self.waited.get().saturating_add(d.as_secs()));
    }
}

/// The commands a daemon answers: the reads of a credential (one record
/// or field, a listing, references resolved), none that writes the vault.
fn answered(c: &Command) -> bool {
    matches!(
        c,
        Command::Get(_)
            | Command::Read { .. }
            | Command::Inject { .. }
            | Command::Run { .. }
            | Command::Secrets(SecretsCommand::Get { .. } | SecretsCommand::List)
            | Command::Passwords(PasswordsCommand::Get { .. } | PasswordsCommand::List)
            | Command::Totp(
                TotpCommand::Code { .. }
                    | TotpCommand::List
                    | TotpCommand::Show { .. }
                    | TotpCommand::Uri { .. }
            )
    )
}

/// A read, as `ravi` runs it, on the vault and credential held (for
/// `ravi run`, what the client then runs).
fn read(
    held: &Held,
    cli: &Cli,
    request: &Request,
    facts: Option<Facts>,
    out: &mut Output,
) -> Result<(Extra, Option<Basis>)> {
    let vault = &held.vault;
    // What the client gave that is not in the vault, read once: a
    // reference that does not parse is refused before anything is read,
    // as `ravi read` refuses it; `ravi run`'s env files are read from the
    // client's directory.
    let what = match &cli.command {
        Command::Read { reference } => Gave::Reference(refs::parse(reference)?),
        Command::Run { env, env_file, .. } => {
            let (wanted, plain) = refs::run_wanted(env, env_file, Some(&request.cwd))?;
            Gave::Run { wanted, plain }
        }
        Command::Inject { input, .. } => {
            let text = match (input, &request.stdin) {
                (Some(p), _) => refs::read_template(p, Some(&request.cwd))?,
                (None, Some(text)) => text.clone(),
                (None, None) => return Ok((Extra::SendStdin, None)),
            };
            Gave::Template(refs::Template::parse(text)?)
        }
        _ => Gave::Nothing,
    };
    // A reply that may be kept (`Memo`) is made for the selection and
    // from the version of the store in `facts`, read before the credential
    // is presented: a change committed between that and the snapshot (a
    // revocation) keeps it from being kept.
    let (selection, before) = facts.map_or((None, None), |f| (f.selection, f.store));
    let given = Given { what, selection };
    // The credential first, outside the snapshot below: an owner's opening
    // may write (identities requested over REST are adopted). `get
    // email|phone` needs none.
    let access = match &cli.command {
        Command::Get(_) => None,
        _ => Some(crate::access_with(vault, &held.credential)?),
    };
    // The client's `state` files (the newest heads seen) are read inside
    // the snapshot, after it began: a write committed meanwhile, whose
    // writer then recorded its newer head there, makes the snapshot look
    // rolled back. Such a request runs again on a new snapshot, which
    // begins after that record; a store that did roll back fails each time.
    let mut tries = 0;
    loop {
        let mut attempt = Output::captured(&cli.global);
        let mut opened = None;
        let done = vault.read_consistently(|| {
            let extra = snapshot_read(
                held,
                cli,
                request,
                access.as_ref(),
                &given,
                &mut attempt,
                &mut opened,
            )?;
            let version = if before.is_some() {
                vault.store_version()?
            } else {
                None
            };
            Ok((extra, version))
        });
        match done {
            Err(Error::Integrity(_)) if tries < 2 => tries += 1,
            done => {
                *out = attempt;
                let (extra, version) = done?;
                let basis = match (before, version, given.selection, opened) {
                    (Some(before), Some(store), Some(selection), Some(opened))
                        if before == store =>
                    {
                        Some(Basis {
                            store,
                            selection,
                            vault_head: vault.head_seq(),
                            opened,
                        })
                    }
                    _ => None,
                };
                return Ok((extra, basis));
            }
        }
    }
}

/// What a request gives besides its command that `read` needs, read once
/// before the snapshot (and its retries).
struct Given {
    what: Gave,
    /// The identity selection (config files), for a command whose reply
    /// may be kept: what the reply is then made for.
    selection: Option<crate::Selection>,
}

/// What the client gave that is not in the vault.
enum Gave {
    Nothing,
    /// `ravi read REF`, parsed.
    Reference(refs::Ref),
    /// `ravi run`: the references asked for, and the env files' plain values.
    Run {
        wanted: refs::Wanted,
        plain: Vec<(String, String)>,
    },
    /// `ravi inject`: the template, parsed.
    Template(refs::Template),
}

/// The part of a read that runs on one snapshot of the store.
fn snapshot_read(
    held: &Held,
    cli: &Cli,
    request: &Request,
    access: Option<&vault_core::Access<'_>>,
    given: &Given,
    out: &mut Output,
    opened: &mut Option<Opened>,
) -> Result<Extra> {
    let vault = &held.vault;
    if held.pinned.is_empty() {
        // (a vault without an owner key yet: pinned on first sight)
        crate::check_vault(&held.global, vault)?;
    } else {
        crate::check_head(vault, &held.pinned)?;
    }
    let selected = || match &given.selection {
        // (resolved once before the snapshot: what a kept reply was made for)
        Some(sel) => crate::identity_selected_by(vault, sel.clone()),
        _ => crate::selected_identity_at(
            &cli.global,
            vault,
            &request.cwd,
            request.identity.as_deref(),
        ),
    };
    let (access, command) = match (access, &cli.command) {
        (None, Command::Get(c)) => {
            crate::contact(c, &selected()?, out);
            return Ok(Extra::Nothing);
        }
        (Some(access), command) => (access, command),
        (None, _) => {
            return Err(Error::InvalidInput(
                "ravi daemon does not run this command".into(),
            ));
        }
    };
    if let Gave::Reference(r) = &given.what {
        let value = refs::resolve_in(vault, access, std::slice::from_ref(r), selected)?.remove(0);
        refs::emit_read(r, &value, out);
        return Ok(Extra::Nothing);
    }
    if let (Gave::Template(t), Command::Inject { output, .. }) = (&given.what, command) {
        let values = if t.refs.is_empty() {
            Vec::new()
        } else {
            refs::resolve_in(vault, access, &t.refs, selected)?
        };
        let rendered = t.render(&values);
        return match output {
            Some(p) => {
                t.wrote(p, out);
                Ok(Extra::File(FileOut {
                    path: p.clone(),
                    content: rendered.as_str().to_owned(),
                    json: cli.global.json,
                }))
            }
            None => out
                .stream(|w| w.write_all(rendered.as_bytes()))
                .map(|()| Extra::Nothing),
        };
    }
    if let (
        Gave::Run { wanted, plain },
        Command::Run {
            all_secrets,
            command,
            ..
        },
    ) = (&given.what, command)
    {
        let resolved = refs::run_values(vault, access, selected, wanted, *all_secrets)?;
        // (the words came from the request's UTF-8 strings)
        let mut words = command.iter().map(|w| w.to_string_lossy().into_owned());
        let program = words
            .next()
            .ok_or_else(|| Error::InvalidInput("give the command to run after --".into()))?;
        return Ok(Extra::Exec(Exec {
            program,
            args: words.collect(),
            env: plain
                .iter()
                .cloned()
                .chain(resolved.into_iter().map(|(k, v)| (k, v.expose().to_owned())))
                .collect(),
            json: cli.global.json,
        }));
    }
    let mut open_records = |f: &mut dyn FnMut(&vault_core::IdentityVault<'_>) -> Result<()>| {
        crate::in_identity(vault, access, &selected()?, |iv| {
            let done = f(iv);
            *opened = Some(Opened {
                identity_uuid: iv.identity().uuid.clone(),
                identity_head: iv.head_seq(),
            });
            done
        })
    };
    if let Command::Totp(TotpCommand::Code {
        name,
        min_validity: Some(m),
        at: None,
    }) = command
    {
        let clock = Planned::default();
        open_records(&mut |iv| {
            let code = iv.totp_code_with(&clock, name, None, Some(*m))?;
            out.emit(crate::to_json(&code)?, code.code.clone());
            Ok(())
        })?;
        return Ok(Extra::Wait(clock.waited.get()));
    }
    match command {
        Command::Secrets(c) => open_records(&mut |iv| records::secrets(iv, c, out)),
        Command::Passwords(c) => open_records(&mut |iv| records::passwords(iv, c, out)),
        Command::Totp(c) => open_records(&mut |iv| records::totp(iv, c, out)),
        _ => Err(Error::InvalidInput(
            "ravi daemon does not run this command".into(),
        )),
    }
    .map(|()| Extra::Nothing)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(line: &str) -> Vec<String> {
        line.split(' ').map(str::to_owned).collect()
    }

    #[test]
    fn a_command_line_is_parsed_once_and_only_reads_are_answered() {
        let mut p = Parsed::new();
        let a = p.get(&argv("secrets get K")).unwrap();
        let b = p.get(&argv("secrets get K")).unwrap();
        assert!(std::rc::Rc::ptr_eq(&a, &b));
        assert_eq!(a.path, ["secrets", "get"]);
        assert!(!a.cli.global.json);
        assert!(p.get(&argv("--json totp code X")).unwrap().cli.global.json);
        // Listings, shows, references: answered.
        for line in ["secrets list", "--json passwords list", "totp show X", "totp uri X", "inject -i t"] {
            assert!(p.get(&argv(line)).is_some(), "{line}");
        }
        // A write, a line that does not parse, a command needing no
        // credential: the client's.
        for line in [
            "secrets set K",
            "secrets delete K",
            "totp add X",
            "passwords generate",
            "export",
            "identity list",
            "secrets get",
            "secrets get K --nope",
        ] {
            assert!(p.get(&argv(line)).is_none(), "{line}");
            assert!(p.get(&argv(line)).is_none(), "{line}");
        }
        for i in 0..Parsed::KEPT + 10 {
            assert!(p.get(&argv(&format!("secrets get K{i}"))).is_some());
        }
        assert!(p.seen.len() <= Parsed::KEPT);
    }
}
