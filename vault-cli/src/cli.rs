// The whole `ravi` program, included by `main.rs` (the `ravi` binary) and
// by `bin/ravi-serve.rs` (the same program with the server linked in).

mod access;
mod args;
#[cfg(target_os = "linux")]
mod daemon;
mod export;
mod import;
mod input;
mod otpauth_migration;
mod pins;
mod records;
mod refs;
mod remote;
mod seen;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use serde::Serialize;
use serde_json::{Value, json};
use vault_cli::config::{self, IdentityConfig, Selection};
use vault_core::{
    Access, AgentPublicKey, Credential, Error, ErrorClass, GeneratorOptions, Identity,
    IdentityVault, InitOptions, KdfParams, NewIdentity, Result, RotateOptions, Rotation, Unlocked,
    Vault,
};

use args::{
    Cli, Command, GenerateArgs, GetCommand, GlobalArgs, IdentityCommand, InitArgs, KdfArgs,
    PasswordsCommand, VaultCommand,
};

/// Whether this program is `ravi-serve`, which carries the HTTP server.
/// `ravi` hands `ravi serve …` over to it (same arguments), so the server's
/// code (tokio, axum, the PostgreSQL driver) is not linked into `ravi`.
const SERVER_BUILTIN: bool = same(env!("CARGO_BIN_NAME"), "ravi-serve");

const fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

fn exit_code(class: ErrorClass) -> u8 {
    match class {
        ErrorClass::Internal => 1,
        ErrorClass::InvalidInput => 2,
        ErrorClass::NotFound => 3,
        ErrorClass::Locked => 4,
        ErrorClass::Integrity => 5,
        ErrorClass::Conflict => 6,
        ErrorClass::Unavailable => 7,
    }
}

fn main() -> ExitCode {
    // `ravi --version` alone answers before the command-line parser is
    // built (its whole command tree is most of a bare start-up's work),
    // with the text clap prints for it.
    {
        let mut args = std::env::args_os().skip(1);
        if let (Some(a), None) = (args.next(), args.next())
            && (a == "--version" || a == "-V")
        {
            use std::io::Write;
            let _ = writeln!(std::io::stdout(), "ravi {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
    }
    // A read command that a `ravi daemon` answers is asked of it, before
    // the command-line parser is built.
    #[cfg(target_os = "linux")]
    if let Some(code) = daemon::client() {
        return code;
    }
    // Beyond a file-size limit (RLIMIT_FSIZE) the kernel sends SIGXFSZ,
    // whose default action kills the process mid-write. With a handler the
    // write fails with EFBIG instead: SQLite rolls the transaction back and
    // ravi reports the error (exit 1). The handler only sets a flag; it
    // does not survive into a program `ravi run` starts.
    #[cfg(unix)]
    let _ = signal_hook::flag::register(
        signal_hook::consts::SIGXFSZ,
        std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false)),
    );
    use clap::{CommandFactory, FromArgMatches};
    let json_requested = std::env::args_os().any(|a| a == "--json");
    let parsed = Cli::command()
        .try_get_matches()
        .and_then(|m| Cli::from_arg_matches(&m).map(|cli| (cli, m)));
    let (cli, matches) = match parsed {
        Ok(c) => c,
        Err(e) => {
            use clap::error::ErrorKind;
            if e.kind() == ErrorKind::DisplayHelp {
                // Help as the command shows it: only the global options
                // that apply (the same arguments, parsed by that command).
                let shown = args::command()
                    .try_get_matches_from(std::env::args_os())
                    .err()
                    .filter(|h| h.kind() == ErrorKind::DisplayHelp)
                    .unwrap_or(e);
                let _ = shown.print();
                return ExitCode::SUCCESS;
            }
            if e.kind() == ErrorKind::DisplayVersion {
                let _ = e.print();
                return ExitCode::SUCCESS;
            }
            if json_requested {
                // The whole message (the missing argument's name, the
                // usage line), on one line, without the help pointer.
                let detail = e.render().to_string();
                let message = detail
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !l.starts_with("For more information"))
                    .collect::<Vec<_>>()
                    .join(" ");
                report_json_error("invalid_input", message.trim_start_matches("error: "), &[]);
            } else {
                let _ = e.print();
            }
            return ExitCode::from(2);
        }
    };
    let mut out = Output::new(&cli.global);
    let path = command_path(&matches);
    match run(&cli, &path, &mut out) {
        Ok(()) => out.flush(),
        Err(e) => {
            eprint!("{}", error_text(&e, cli.global.json));
            ExitCode::from(exit_code(e.class()))
        }
    }
}

/// The names of the subcommands given, outermost first.
fn command_path(matches: &clap::ArgMatches) -> Vec<&str> {
    let mut path = Vec::new();
    let mut m = matches;
    while let Some((name, sub)) = m.subcommand() {
        path.push(name);
        m = sub;
    }
    path
}

/// What a failed command prints on stderr: one JSON line with `--json`,
/// else the message and any candidates.
fn error_text(e: &Error, json: bool) -> String {
    if json {
        return json_error_line(e.code(), &e.to_string(), e.candidates());
    }
    let mut text = format!("ravi: {e}\n");
    for c in e.candidates() {
        let user = if c.username.is_empty() {
            "(no username)"
        } else {
            &c.username
        };
        text.push_str(&format!("  {}  {}\n", c.uuid, user));
    }
    text
}

fn report_json_error(code: &str, message: &str, candidates: &[vault_core::Candidate]) {
    eprint!("{}", json_error_line(code, message, candidates));
}

fn json_error_line(code: &str, message: &str, candidates: &[vault_core::Candidate]) -> String {
    let mut err = json!({ "code": code, "message": message });
    if !candidates.is_empty() {
        err["candidates"] = json!(candidates);
    }
    format!("{}\n", json!({ "error": err }))
}

/// Collected output: one JSON document, or text: data on stdout,
/// confirmations ("talk") on stderr, silenced by `--quiet`.
struct Output {
    json: bool,
    quiet: bool,
    doc: Option<Value>,
    text: String,
    talk: bool,
    /// The command wrote its data to stdout itself (a template, an
    /// export): nothing more goes there, not even a JSON `null`.
    streamed: bool,
    /// In a daemon: what is streamed is kept here for the client's reply
    /// instead of going to the daemon's own stdout.
    captured: Option<Vec<u8>>,
}

impl Output {
    fn new(g: &GlobalArgs) -> Output {
        Output {
            json: g.json,
            quiet: g.quiet,
            doc: None,
            text: String::new(),
            talk: false,
            streamed: false,
            captured: None,
        }
    }

    /// An output whose streamed data is kept (a daemon's, for its reply).
    #[cfg(target_os = "linux")]
    fn captured(g: &GlobalArgs) -> Output {
        Output {
            captured: Some(Vec::new()),
            ..Output::new(g)
        }
    }

    /// Data: the JSON document, or the text on stdout.
    fn emit(&mut self, doc: Value, text: impl Into<String>) {
        self.doc = Some(doc);
        self.text = text.into();
        self.talk = false;
    }

    /// A confirmation: the JSON document on stdout, or the text on stderr
    /// (so `$(…)` captures only data), unless `--quiet`.
    fn said(&mut self, doc: Value, text: impl Into<String>) {
        self.emit(doc, text);
        self.talk = true;
    }

    /// Data written to stdout as it is made (see `streamed`), or kept for
    /// a daemon's reply.
    fn stream(
        &mut self,
        write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
    ) -> Result<()> {
        self.streamed = true;
        let written = match &mut self.captured {
            Some(kept) => write(kept),
            None => {
                let mut w = std::io::BufWriter::with_capacity(64 * 1024, std::io::stdout().lock());
                write(&mut w).and_then(|()| w.flush())
            }
        };
        written.map_err(|e| Error::Io {
            context: "cannot write standard output".into(),
            source: e,
        })
    }

    /// A listing written to stdout as it is serialised, without a JSON
    /// document or text copy of the whole of it in memory: a JSON array,
    /// or one `line` per item (nothing for none).
    fn stream_list<T: serde::Serialize>(
        &mut self,
        items: &[T],
        line: impl Fn(&T) -> String,
    ) -> Result<()> {
        let json = self.json;
        self.stream(|w| {
            if json {
                serde_json::to_writer(&mut *w, items)
                    .map_err(std::io::Error::from)
                    .and_then(|()| writeln!(w))
            } else {
                items.iter().try_for_each(|i| writeln!(w, "{}", line(i)))
            }
        })
    }

    /// What is left to print: (stdout, stderr).
    fn printed(self) -> (String, String) {
        let line = |t: &str| format!("{}\n", t.trim_end_matches('\n'));
        if self.streamed {
            let kept = self.captured.unwrap_or_default();
            let kept = String::from_utf8(kept)
                .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
            (kept, String::new())
        } else if self.json {
            (line(&self.doc.unwrap_or(Value::Null).to_string()), String::new())
        } else if self.text.is_empty() || (self.talk && self.quiet) {
            (String::new(), String::new())
        } else if self.talk {
            (String::new(), line(&self.text))
        } else {
            (line(&self.text), String::new())
        }
    }

    fn flush(self) -> ExitCode {
        let (data, talk) = self.printed();
        let mut stdout = std::io::stdout().lock();
        let res = if talk.is_empty() {
            Ok(())
        } else {
            std::io::stderr().lock().write_all(talk.as_bytes())
        };
        match res
            .and_then(|()| stdout.write_all(data.as_bytes()))
            .and_then(|()| stdout.flush())
        {
            Ok(()) => ExitCode::SUCCESS,
            // A closed pipe (e.g. `| head`) is not a failure of ravi.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
            Err(_) => ExitCode::from(1),
        }
    }
}

fn home_dir() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
}

pub(crate) fn default_ravi_dir() -> Result<PathBuf> {
    home_dir().map(|h| h.join(".ravi")).ok_or_else(|| {
        Error::InvalidInput("HOME is not set: give --vault / RAVI_VAULT and RAVI_CONFIG_DIR".into())
    })
}

fn config_dir() -> Result<PathBuf> {
    match std::env::var_os("RAVI_CONFIG_DIR").filter(|d| !d.is_empty()) {
        Some(d) => Ok(PathBuf::from(d)),
        None => default_ravi_dir(),
    }
}

fn cwd() -> Result<PathBuf> {
    std::env::current_dir().map_err(|e| Error::Io {
        context: "cannot read the working directory".into(),
        source: e,
    })
}

/// Opens the vault and checks it against this client's pinned owner key
/// (pinning it on first use).
fn open_vault(g: &GlobalArgs) -> Result<Vault> {
    let store = remote::store(g)?;
    let cfg = config_dir()?;
    vault_core::remember_signatures_in(Box::new(seen::Verified::new(&cfg)));
    let vault = store.open()?;
    if let remote::Store::Local(path) = &store {
        warn_if_others_can_write(path);
    }
    check_vault(g, &vault)?;
    Ok(vault)
}

/// Checks an open vault against the owner key this client pinned and the
/// newest vault head it saw; returns the pinned owner keys.
fn check_vault(g: &GlobalArgs, vault: &Vault) -> Result<Vec<vault_core::OwnerPublicKey>> {
    let cfg = config_dir()?;
    let pinned = pins::check(vault, &cfg, agent_key_path(g).as_deref())?;
    check_head(vault, &pinned)?;
    Ok(pinned)
}

/// The vault head against the newest this client saw: the remembered value
/// first, then the head read again (with the header: its owner key is
/// compared with `pinned` again). A vault held open (`ravi daemon`) is
/// checked so on every use.
fn check_head(vault: &Vault, pinned: &[vault_core::OwnerPublicKey]) -> Result<()> {
    let cfg = config_dir()?;
    let vault_id = vault.info().vault_id;
    let newest = seen::newest_seen(&cfg, &vault_id, seen::VAULT_HEAD)?;
    let now = vault.refresh_head()?;
    for k in pinned {
        vault.check_owner(k)?;
    }
    seen::check("the vault", newest, now)?;
    pins::best_effort(seen::raise(&cfg, &vault_id, seen::VAULT_HEAD, newest, now))
}

/// Keeps the identity's newest wrapped key outside the store, for a
/// rotation that recovers from a store that rolled its row back.
fn remember_key(vault: &Vault, owner: &Unlocked<'_>, ident: &Identity) -> Result<()> {
    let key = owner.wrapped_key(ident)?;
    pins::best_effort(seen::remember_key(
        &config_dir()?,
        &vault.info().vault_id,
        &ident.uuid,
        &key,
    ))
}

/// Records the vault head after an owner write raised it.
fn raise_vault_head(vault: &Vault) -> Result<()> {
    let seq = vault.refresh_head()?;
    pins::best_effort(seen::raise(
        &config_dir()?,
        &vault.info().vault_id,
        seen::VAULT_HEAD,
        None,
        seq,
    ))
}

/// Anyone who can write the vault's directory can replace the vault (and
/// its -wal) wholesale: say so, as ssh does of a lax key file.
fn warn_if_others_can_write(vault: &std::path::Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let dir = vault
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(std::path::Path::new("."));
        if let Ok(m) = std::fs::metadata(dir) {
            let mode = m.permissions().mode();
            // The sticky bit (as on /tmp) stops others replacing our files.
            if mode & 0o022 != 0 && mode & 0o1000 == 0 {
                eprintln!(
                    "ravi: warning: {} is writable by other users, who could replace the vault; use a 0700 directory",
                    dir.display()
                );
            }
        }
    }
}

/// The agent key file this process would use as its credential, by the
/// order of [`input::credential`].
fn agent_key_path(g: &GlobalArgs) -> Option<PathBuf> {
    if g.session_file.is_some() {
        return None;
    }
    if let Some(f) = &g.agent_key_file {
        return Some(f.clone());
    }
    let set = |v: &str| std::env::var_os(v).is_some_and(|s| !s.is_empty());
    if g.passphrase_file.is_some() || set("RAVI_SESSION") {
        return None;
    }
    std::env::var_os("RAVI_AGENT_KEY_FILE")
        .filter(|s| !s.is_empty())
        .map(PathBuf::from)
}

/// The JSON document of a value: its `Serialize` shape, the one definition.
fn to_json<T: Serialize>(v: &T) -> Result<Value> {
    serde_json::to_value(v).map_err(Error::Encoding)
}

/// The identity the command acts for, by the selection rules.
fn selected_identity(g: &GlobalArgs, vault: &Vault) -> Result<Identity> {
    let from_env = std::env::var("RAVI_IDENTITY")
        .ok()
        .filter(|v| !v.is_empty());
    selected_identity_at(g, vault, &cwd()?, from_env.as_deref())
}

/// The identity selected for a command run in `cwd` with `RAVI_IDENTITY`
/// set to `from_env`.
fn selected_identity_at(
    g: &GlobalArgs,
    vault: &Vault,
    cwd: &std::path::Path,
    from_env: Option<&str>,
) -> Result<Identity> {
    identity_selected_by(vault, selection_at(g, cwd, from_env)?)
}

/// What selects the identity for a process in `cwd`: `--identity`, then
/// `RAVI_IDENTITY` (`from_env`), then config files.
fn selection_at(
    g: &GlobalArgs,
    cwd: &std::path::Path,
    from_env: Option<&str>,
) -> Result<Selection> {
    config::resolve_identity(
        g.one_identity()?.or(from_env),
        cwd,
        &config_dir()?,
        home_dir().as_deref(),
    )
}

/// The identity `sel` names.
fn identity_selected_by(vault: &Vault, sel: Selection) -> Result<Identity> {
    match sel {
        Selection::Explicit(s) => vault.find_identity(&s),
        Selection::File { selector, path } => vault.find_identity(&selector).map_err(|e| match e {
            Error::NotFound(m) => Error::NotFound(format!("{m} (selected by {})", path.display())),
            other => other,
        }),
        Selection::None => Err(Error::InvalidInput(
            "no identity selected: pass --identity, set RAVI_IDENTITY, run `ravi identity use NAME`, or write .ravi/config.json".into(),
        )),
    }
}

fn identity_text(i: &Identity) -> String {
    format!(
        "name:    {}\nuuid:    {}\ninbox:   {}\nphone:   {}\ncreated: {}",
        i.name,
        i.uuid,
        i.inbox,
        i.phone.as_deref().unwrap_or("-"),
        i.created_dt
    )
}

fn generator_options(g: &GenerateArgs) -> GeneratorOptions {
    GeneratorOptions {
        length: g.length,
        special: !g.no_special,
        digits: !g.no_digits,
        exclude: g.exclude_chars.clone().unwrap_or_default(),
    }
}

/// The password given by the user, or `None` if none was given.
/// Replaces this process with `cmd` (its exit status, signals and stdio
/// become the command's own); returns only the error when it cannot start.
/// Elsewhere than Unix, runs it and exits with its status.
fn become_command(cmd: &mut std::process::Command) -> std::io::Error {
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        cmd.exec()
    }
    #[cfg(not(unix))]
    match cmd.status() {
        Ok(s) => std::process::exit(s.code().unwrap_or(1)),
        Err(e) => e,
    }
}

/// Refuses global options that the command would ignore
/// ([`args::scope`]): an option that does nothing is a mistake the user
/// should hear about.
fn refuse_unused_options(g: &GlobalArgs, path: &[&str]) -> Result<()> {
    let name = path.join(" ");
    let (identity, credential) = args::scope(path);
    if !identity && !g.identity.is_empty() {
        return Err(Error::InvalidInput(format!(
            "--identity does nothing for `ravi {name}`"
        )));
    }
    let given = [
        ("--passphrase-file", g.passphrase_file.is_some()),
        ("--session-file", g.session_file.is_some()),
        ("--agent-key-file", g.agent_key_file.is_some()),
    ];
    if !credential && let Some((flag, _)) = given.iter().find(|(_, set)| *set) {
        return Err(Error::InvalidInput(format!(
            "{flag} does nothing for `ravi {name}`: it needs no credential"
        )));
    }
    Ok(())
}

fn run(cli: &Cli, path: &[&str], out: &mut Output) -> Result<()> {
    let g = &cli.global;
    refuse_unused_options(g, path)?;
    match &cli.command {
        Command::Init(a) => init(g, a, out),
        Command::Identity(c) => identity(g, c, out),
        Command::Get(c) => {
            let vault = open_vault(g)?;
            contact(c, &selected_identity(g, &vault)?, out);
            Ok(())
        }
        // Generating needs no vault.
        Command::Passwords(PasswordsCommand::Generate { generator }) => generate(generator, out),
        Command::Passwords(c) => with_identity(g, |iv| records::passwords(iv, c, out)),
        Command::Secrets(c) => with_identity(g, |iv| records::secrets(iv, c, out)),
        Command::Totp(c) => with_identity(g, |iv| records::totp(iv, c, out)),
        Command::Unlock { ttl } => access::unlock(g, ttl, out),
        Command::Lock { session } => access::lock(g, *session, out),
        Command::Agent(c) => access::agent(g, c, out),
        Command::Passphrase(c) => access::passphrase(g, c, out),
        Command::Rekey => access::rekey(g, out),
        Command::Serve(a) if SERVER_BUILTIN => remote::serve(g, a, out),
        Command::Serve(_) => remote::hand_over_to_server(),
        Command::Login {
            server,
            token_stdin,
            token_file,
        } => remote::login(server, *token_stdin, token_file.as_deref(), out),
        Command::Logout => remote::logout(out),
        Command::Push => remote::push(g, out),
        Command::Import {
            format,
            source,
            dry_run,
        } => with_identity(g, |iv| import::run(iv, *format, source, *dry_run, out)),
        Command::Export {
            format,
            recipient,
            output,
        } => with_identity(g, |iv| {
            export::run(iv, *format, recipient, output.as_deref(), out)
        }),
        Command::Completions { shell } => {
            // Into memory first: clap_complete panics if its writer fails.
            let mut script = Vec::new();
            clap_complete::generate(*shell, &mut args::command(), "ravi", &mut script);
            let mut so = std::io::stdout().lock();
            so.write_all(&script).and_then(|()| so.flush()).map_err(|e| Error::Io {
                context: "cannot write standard output".into(),
                source: e,
            })
        }
        Command::Man => {
            use clap::CommandFactory;
            let mut so = std::io::stdout().lock();
            clap_mangen::Man::new(Cli::command())
                .render(&mut so)
                .and_then(|()| so.flush())
                .map_err(|e| Error::Io {
                    context: "cannot write standard output".into(),
                    source: e,
                })
        }
        Command::Read { reference } => refs::read(g, reference, out),
        Command::Inject { input, output } => {
            refs::inject(g, input.as_deref(), output.as_deref(), out)
        }
        Command::Run {
            env,
            env_file,
            all_secrets,
            command,
        } => refs::run(g, env, env_file, *all_secrets, command),
        #[cfg(target_os = "linux")]
        Command::Daemon(a) => daemon::serve(g, a),
        #[cfg(not(target_os = "linux"))]
        Command::Daemon(_) => Err(Error::InvalidInput(
            "ravi daemon needs Linux (its socket's peer credentials): it is not available on this system".into(),
        )),
        Command::Vault(VaultCommand::Info) => {
            let info = open_vault(g)?.info();
            let owner = info
                .owner_public_key
                .map_or_else(|| "(none yet)".to_string(), |k| k.to_string());
            let text = format!(
                "vault:      {}\nvault id:   {}\nowner key:  {owner}\ninbox:      @{}\nkdf:        Argon2id {} MiB, t={}, p={}\ncreated:    {}",
                info.location,
                info.vault_id,
                info.inbox_domain,
                info.kdf.memory_kib / 1024,
                info.kdf.iterations,
                info.kdf.parallelism,
                info.created_dt
            );
            out.emit(to_json(&info)?, text);
            Ok(())
        }
    }
}

/// `ravi get email|phone`.
fn contact(c: &GetCommand, ident: &Identity, out: &mut Output) {
    match c {
        GetCommand::Email => out.emit(json!({ "email": ident.inbox }), ident.inbox.clone()),
        GetCommand::Phone => out.emit(
            json!({ "phone_number": ident.phone }),
            ident.phone.clone().unwrap_or_default(),
        ),
    }
}

fn generate(generator: &GenerateArgs, out: &mut Output) -> Result<()> {
    let p = vault_core::generate_password(&generator_options(generator))?;
    out.emit(json!({ "password": p.as_str() }), p.as_str());
    Ok(())
}

/// The parameters the flags ask for over `base`, validated; explicitly
/// weaker than the default ones get a warning.
fn kdf_params(flags: &KdfArgs, base: KdfParams) -> Result<KdfParams> {
    let kdf = KdfParams {
        memory_kib: flags
            .kdf_memory_mib
            .map_or(base.memory_kib, |m| m.saturating_mul(1024)),
        iterations: flags.kdf_iterations.unwrap_or(base.iterations),
        parallelism: flags.kdf_parallelism.unwrap_or(base.parallelism),
    };
    kdf.validate()?;
    let chosen = flags.kdf_memory_mib.is_some()
        || flags.kdf_iterations.is_some()
        || flags.kdf_parallelism.is_some();
    if chosen && kdf.is_weaker_than_default() {
        eprintln!(
            "ravi: warning: Argon2id parameters ({} MiB, t={}) are weaker than the default (64 MiB, t=3)",
            kdf.memory_kib / 1024,
            kdf.iterations
        );
    }
    Ok(kdf)
}

fn init(g: &GlobalArgs, a: &InitArgs, out: &mut Output) -> Result<()> {
    let kdf = kdf_params(&a.kdf, KdfParams::DEFAULT)?;
    let opts = InitOptions {
        kdf,
        inbox_domain: a
            .inbox_domain
            .clone()
            .unwrap_or_else(|| vault_core::DEFAULT_INBOX_DOMAIN.into()),
    };
    let store = remote::store(g)?;
    let pass = input::passphrase(g.passphrase_file.as_deref(), true)?;
    let vault = match &store {
        remote::Store::Local(path) => Vault::init(path, &pass, &opts)?,
        remote::Store::Remote { server, token } => Vault::init_remote(server, token, &pass, &opts)?,
    };
    pins::new_vault_at(&config_dir()?, &vault.info().location)?;
    pins::check(&vault, &config_dir()?, None)?;
    let info = vault.info();
    out.said(
        to_json(&info)?,
        format!(
            "Created vault {} at {} (Argon2id {} MiB, t={}, p={})",
            info.vault_id,
            info.location,
            info.kdf.memory_kib / 1024,
            info.kdf.iterations,
            info.kdf.parallelism
        ),
    );
    Ok(())
}

fn identity(g: &GlobalArgs, c: &IdentityCommand, out: &mut Output) -> Result<()> {
    let vault = open_vault(g)?;
    match c {
        IdentityCommand::Create { name, email, phone } => {
            let access = access(g, &vault)?;
            let owner = access.owner("create identities")?;
            let ident = owner.create_identity(&NewIdentity {
                name: name.clone(),
                email: email.clone(),
                phone: phone.clone(),
            })?;
            remember_key(&vault, owner, &ident)?;
            out.emit(to_json(&ident)?, identity_text(&ident));
        }
        IdentityCommand::List => {
            let all = vault.identities()?;
            let text = all
                .iter()
                .map(|i| {
                    format!(
                        "{}\t{}\t{}\t{}",
                        i.name,
                        i.inbox,
                        i.phone.as_deref().unwrap_or("-"),
                        i.uuid
                    )
                })
                .collect::<Vec<_>>()
                .join("\n");
            out.emit(to_json(&all)?, text);
        }
        IdentityCommand::Show { selector } => {
            let ident = match selector {
                Some(s) => vault.find_identity(s)?,
                None => selected_identity(g, &vault)?,
            };
            out.emit(to_json(&ident)?, identity_text(&ident));
        }
        IdentityCommand::Use { selector, local } => {
            let ident = vault.find_identity(selector)?;
            let path = if *local {
                cwd()?.join(config::LOCAL_DIR).join(config::CONFIG_FILE)
            } else {
                config_dir()?.join(config::CONFIG_FILE)
            };
            config::write_config(
                &path,
                &IdentityConfig {
                    identity_uuid: Some(ident.uuid.clone()),
                    identity_name: Some(ident.name.clone()),
                },
            )?;
            out.said(
                json!({ "identity_uuid": ident.uuid, "identity_name": ident.name, "config_path": path }),
                format!("Using identity {} ({}) via {}", ident.name, ident.uuid, path.display()),
            );
        }
        IdentityCommand::Delete { selector } => {
            let ident = access(g, &vault)?
                .owner("delete identities")?
                .delete_identity(selector)?;
            let mut doc = to_json(&ident)?;
            doc["deleted"] = json!(true);
            out.said(
                doc,
                format!("Deleted identity {} ({})", ident.name, ident.uuid),
            );
        }
        IdentityCommand::Grant {
            selector,
            to,
            label,
        } => {
            let to = AgentPublicKey::parse(to)?;
            let grant =
                access(g, &vault)?
                    .owner("grant access")?
                    .grant(selector, &to, label.as_deref())?;
            out.said(
                to_json(&grant)?,
                format!("Granted {} access to {}", grant.agent_public_key, selector),
            );
        }
        IdentityCommand::Grants { selector } => {
            let grants = vault.grants(selector)?;
            let text = grants
                .iter()
                .map(|g| {
                    format!(
                        "{}\t{}\t{}",
                        g.agent_public_key,
                        g.label.as_deref().unwrap_or("-"),
                        g.created_dt
                    )
                })
                .collect::<Vec<_>>()
                .join("\n");
            out.emit(to_json(&grants)?, text);
        }
        IdentityCommand::Revoke { selector, from } => {
            let from = AgentPublicKey::parse(from)?;
            let r = rotate(
                g,
                &vault,
                selector,
                RotateOptions {
                    revoke: Some(&from),
                    ..RotateOptions::default()
                },
            )?;
            out.said(
                to_json(&r)?,
                format!(
                    "Revoked {from}; identity key rotated to epoch {}",
                    r.key_epoch
                ),
            );
        }
        IdentityCommand::Rotate {
            selector,
            drop_unreadable,
            resume,
            chunk_records,
        } => {
            let r = rotate(
                g,
                &vault,
                selector,
                RotateOptions {
                    drop_unreadable: *drop_unreadable,
                    resume: *resume,
                    chunk_records: usize::try_from(*chunk_records).ok(),
                    ..RotateOptions::default()
                },
            )?;
            let mut text = if *resume {
                format!(
                    "Rotation to epoch {} completed; {} records re-sealed",
                    r.key_epoch, r.records_resealed
                )
            } else {
                format!("Identity key rotated to epoch {}", r.key_epoch)
            };
            if r.records_dropped > 0 {
                text.push_str(&format!(
                    "; {} unreadable records removed",
                    r.records_dropped
                ));
            }
            out.said(to_json(&r)?, text);
        }
    }
    raise_vault_head(&vault)?;
    Ok(())
}

/// `identity rotate` and `identity revoke`: a rotation that may recover
/// from a rolled-back row with what this client remembers.
fn rotate(
    g: &GlobalArgs,
    vault: &Vault,
    selector: &str,
    options: RotateOptions<'_>,
) -> Result<Rotation> {
    let (cfg, vault_id) = (config_dir()?, vault.info().vault_id);
    let memory = seen::Memory {
        config_dir: &cfg,
        vault_id: &vault_id,
    };
    let access = access(g, vault)?;
    let owner = access.owner("rotate identity keys")?;
    let r = owner
        .rotate_identity(
            selector,
            &RotateOptions {
                memory: &memory,
                ..options
            },
        )
        .map_err(|e| match e {
            Error::Integrity(m) if m.contains("drops unreadable records") => {
                Error::Integrity(format!("{m}: `ravi identity rotate --drop-unreadable`"))
            }
            other => other,
        })?;
    // The new key and head, from one opening of the rotated identity.
    let iv = owner.open_identity(&r.identity)?;
    if let Some(key) = iv.wrapped_key() {
        pins::best_effort(seen::remember_key(&cfg, &vault_id, &r.identity.uuid, &key))?;
    }
    pins::best_effort(seen::raise(&cfg, &vault_id, &r.identity.uuid, None, iv.head_seq()))?;
    Ok(r)
}

/// The credential of this process, by the documented order.
fn credential(g: &GlobalArgs) -> Result<Credential> {
    input::credential(
        g.session_file.as_deref(),
        g.agent_key_file.as_deref(),
        g.passphrase_file.as_deref(),
    )
    .map_err(|e| match e {
        Error::Locked(m) if m.starts_with("invalid session token") => {
            Error::Locked(format!("{m}; run `ravi unlock` for a new one"))
        }
        other => other,
    })
}

/// Opens `vault` with this process's credential. A refused session gets
/// the hint to make a new one.
fn access<'v>(g: &GlobalArgs, vault: &'v Vault) -> Result<Access<'v>> {
    access_with(vault, &credential(g)?)
}

/// Opens `vault` with `credential`.
fn access_with<'v>(vault: &'v Vault, credential: &Credential) -> Result<Access<'v>> {
    let signed_before = vault.owner_public_key().is_some();
    let access = vault
        .access(credential)
        .map_err(|e| match (e, credential) {
            (Error::Locked(m), Credential::Session(_)) => {
                Error::Locked(format!("{m}; run `ravi unlock`"))
            }
            (e, _) => e,
        })?;
    if !signed_before && vault.owner_public_key().is_some() {
        // The owner just gave a vault made before signing its owner key.
        pins::check(vault, &config_dir()?, None)?;
    }
    if let Ok(owner) = access.owner("") {
        // Identities requested over a server's REST interface get their
        // key and the owner's signature from the next owner command.
        let (adopted, refused) = owner.adopt_pending()?;
        for i in &adopted {
            remember_key(vault, owner, i)?;
            eprintln!(
                "ravi: adopted identity {} ({}), requested over REST",
                i.name, i.uuid
            );
        }
        for (name, e) in &refused {
            eprintln!("ravi: warning: identity {name:?} requested over REST stays pending: {e}");
        }
        if !adopted.is_empty() {
            raise_vault_head(vault)?;
        }
    }
    Ok(access)
}

/// Opens the vault with this process's credential and opens the selected
/// identity's records.
fn with_identity(g: &GlobalArgs, f: impl FnOnce(&IdentityVault<'_>) -> Result<()>) -> Result<()> {
    let vault = open_vault(g)?;
    let ident = selected_identity(g, &vault)?;
    let access = access(g, &vault)?;
    in_identity(&vault, &access, &ident, f)
}

/// Runs `f` on `ident`'s records, opened and checked by [`checked_open`].
fn in_identity(
    vault: &Vault,
    access: &Access<'_>,
    ident: &Identity,
    f: impl FnOnce(&IdentityVault<'_>) -> Result<()>,
) -> Result<()> {
    let (iv, seen) = checked_open(vault, access, ident)?;
    let result = f(&iv);
    raise_seen(vault, &iv, seen)?;
    result
}

/// Opens an identity's records, its head checked against the newest this
/// client saw: the remembered value is read first, the head (on opening)
/// after it. The owner's opening also remembers the wrapped key. Returns
/// the identity and the head sequence this client had seen.
fn checked_open<'v>(
    vault: &'v Vault,
    access: &Access<'v>,
    ident: &Identity,
) -> Result<(IdentityVault<'v>, Option<u64>)> {
    let (cfg, vault_id) = (config_dir()?, vault.info().vault_id);
    let newest = seen::newest_seen(&cfg, &vault_id, &ident.uuid)?;
    let iv = access.open_identity(ident)?;
    seen::check(&format!("identity {:?}", ident.name), newest, iv.head_seq())?;
    if let Some(key) = iv.wrapped_key() {
        pins::best_effort(seen::remember_key(&cfg, &vault_id, &ident.uuid, &key))?;
    }
    Ok((iv, newest))
}

/// Records the identity's head after a command (a write raises it);
/// `seen` is what [`checked_open`] read.
fn raise_seen(vault: &Vault, iv: &IdentityVault<'_>, seen: Option<u64>) -> Result<()> {
    pins::best_effort(seen::raise(
        &config_dir()?,
        &vault.info().vault_id,
        &iv.identity().uuid,
        seen,
        iv.head_seq(),
    ))
}
