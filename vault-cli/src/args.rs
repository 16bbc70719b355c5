//! Command-line grammar of `ravi`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  success
  1  internal error (I/O, storage, bug)
  2  usage error or invalid input
  3  not found (vault, identity, record)
  4  locked or denied (no passphrase given, wrong passphrase)
  5  integrity failure (tampered or damaged vault)
  6  conflict or ambiguous (duplicate name, several matches)
  7  unavailable (the server cannot be reached or did not answer in time)

Secrets given on the command line (--password, VALUE) are visible to other
users of the machine through the process list; prefer --password-stdin,
--value-stdin, the *-file options, or environment variables.";

#[derive(Parser, Debug)]
#[command(
    name = "ravi",
    version,
    about = "End-to-end-encrypted vaults for AI-agent identities",
    after_help = EXIT_CODES_HELP
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args, Debug, Clone)]
pub struct GlobalArgs {
    /// Vault file [default: the server of RAVI_SERVER or `ravi login`, else
    /// ~/.ravi/vault.db]
    #[arg(long, global = true, env = "RAVI_VAULT", value_name = "PATH")]
    pub vault: Option<PathBuf>,
    /// Identity to act for (name or uuid); overrides config files. `serve
    /// token create` takes it several times
    #[arg(long, global = true, value_name = "NAME|UUID", action = clap::ArgAction::Append)]
    pub identity: Vec<String>,
    /// Print one JSON document on stdout (errors as JSON on stderr)
    #[arg(long, global = true)]
    pub json: bool,
    /// No confirmations on stderr ("Created secret K"); data and errors only
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Read the vault passphrase from this file (else RAVI_PASSPHRASE, else a prompt)
    #[arg(long, global = true, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
    /// Read a session token (from `ravi unlock`) from this file (else RAVI_SESSION)
    #[arg(long, global = true, value_name = "FILE")]
    pub session_file: Option<PathBuf>,
    /// Open only the identities granted to this agent key (else RAVI_AGENT_KEY_FILE)
    #[arg(long, global = true, value_name = "FILE")]
    pub agent_key_file: Option<PathBuf>,
}

impl GlobalArgs {
    /// The one `--identity` a command acts for.
    ///
    /// # Errors
    /// [`vault_core::Error::InvalidInput`] if it was given more than once.
    pub fn one_identity(&self) -> vault_core::Result<Option<&str>> {
        match self.identity.as_slice() {
            [] => Ok(None),
            [one] => Ok(Some(one)),
            _ => Err(vault_core::Error::InvalidInput(
                "--identity is given more than once".into(),
            )),
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create a new vault
    Init(InitArgs),
    /// Create, list, show, select and delete identities
    #[command(subcommand)]
    Identity(IdentityCommand),
    /// Print the selected identity's email or phone number
    #[command(subcommand)]
    Get(GetCommand),
    /// Service passwords of the selected identity
    #[command(subcommand)]
    Passwords(PasswordsCommand),
    /// Key/value secrets of the selected identity
    #[command(subcommand)]
    Secrets(SecretsCommand),
    /// TOTP (2FA) seeds of the selected identity, and their codes
    #[command(subcommand)]
    Totp(TotpCommand),
    /// Derive the key once and print a session token (use as RAVI_SESSION)
    Unlock {
        /// Session lifetime: 90s, 15m, 1h, 7d (at most 30d)
        #[arg(long, value_name = "DURATION", default_value = "1h")]
        ttl: String,
    },
    /// Revoke every session of the vault
    Lock {
        /// Revoke only the session in use (RAVI_SESSION / --session-file)
        #[arg(long)]
        session: bool,
    },
    /// Agent key pairs (X25519)
    #[command(subcommand)]
    Agent(AgentCommand),
    /// Change the vault passphrase
    #[command(subcommand)]
    Passphrase(PassphraseCommand),
    /// Recover from a leak: a new root key and new keys for every identity,
    /// every record re-sealed, every session ended (needs the passphrase)
    Rekey,
    /// Facts about the vault: id, owner key, KDF (no credential needed)
    #[command(subcommand)]
    Vault(VaultCommand),
    /// Hold a session or an agent key and the vault open, and answer the
    /// `secrets get`, `passwords get`, `totp code`, `get email|phone` and `read` of
    /// this user's processes that set RAVI_DAEMON to its socket
    Daemon(DaemonArgs),
    /// Serve vaults over HTTP to clients on other machines (stores only
    /// ciphertext), and manage its bearer tokens
    Serve(ServeArgs),
    /// Use the vault on a `ravi serve` server: writes ~/.ravi/auth.json
    Login {
        /// The server's base URL (http://HOST:PORT or https://…)
        #[arg(long, value_name = "URL")]
        server: String,
        /// Read the bearer token from standard input
        #[arg(
            long,
            conflicts_with = "token_file",
            required_unless_present = "token_file"
        )]
        token_stdin: bool,
        /// Read the bearer token from this file
        #[arg(long, value_name = "FILE")]
        token_file: Option<PathBuf>,
    },
    /// Forget the server login (removes ~/.ravi/auth.json)
    Logout,
    /// Upload the local vault (--vault, default ~/.ravi/vault.db) to the
    /// server of `ravi login` or RAVI_SERVER, which must hold none yet
    Push,
    /// Import entries from another password manager into the selected
    /// identity, in one transaction
    Import {
        /// The format of the file
        #[arg(value_enum)]
        format: crate::import::Format,
        /// The file, or - for standard input
        #[arg(value_name = "FILE|-")]
        source: PathBuf,
        /// Report what would change, change nothing
        #[arg(long)]
        dry_run: bool,
    },
    /// Export every entry of the selected identity: plaintext (a 0600
    /// file, with a warning) or encrypted to age recipients
    Export {
        /// The format
        #[arg(long, value_enum, default_value = "json")]
        format: crate::export::Format,
        /// Encrypt to this age recipient (age1…, as `age-keygen -y` prints); repeatable
        #[arg(long, value_name = "AGE_RECIPIENT")]
        recipient: Vec<String>,
        /// Write to this file (created 0600, replaced only when complete) instead of stdout
        #[arg(short = 'o', long = "output", value_name = "OUT")]
        output: Option<PathBuf>,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell)
    Completions {
        /// The shell
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff)
    Man,
    /// Print the value a ravi:// reference names:
    /// ravi://[IDENTITY/]secrets/KEY,
    /// ravi://[IDENTITY/]passwords/DOMAIN[/USERNAME]/(password|username|notes),
    /// ravi://[IDENTITY/]totp/NAME/code
    Read {
        /// The reference
        #[arg(value_name = "REF")]
        reference: String,
    },
    /// Render a template, replacing every {{ ravi://… }} with its value; one
    /// unresolved reference fails the whole render
    Inject {
        /// The template [default: standard input]
        #[arg(short = 'i', long = "in", value_name = "IN")]
        input: Option<PathBuf>,
        /// Write here (mode 0600, all or nothing) [default: standard output]
        #[arg(short = 'o', long = "out", value_name = "OUT")]
        output: Option<PathBuf>,
    },
    /// Run a command with secrets in its environment (never on argv); ravi
    /// becomes the command, so its exit status and signals are the command's
    Run {
        /// NAME=ravi://… (repeatable)
        #[arg(long, value_name = "NAME=REF", action = clap::ArgAction::Append)]
        env: Vec<String>,
        /// dotenv-style NAME=VALUE lines whose values may be ravi:// references (repeatable)
        #[arg(long, value_name = "FILE", action = clap::ArgAction::Append)]
        env_file: Vec<PathBuf>,
        /// Export every secret of the selected identity under its key
        #[arg(long)]
        all_secrets: bool,
        /// The command and its arguments, after --
        #[arg(last = true, required = true, value_name = "CMD")]
        command: Vec<std::ffi::OsString>,
    },
}

#[derive(Args, Debug)]
pub struct DaemonArgs {
    /// The Unix socket to listen on (created 0600; give it to clients as
    /// RAVI_DAEMON) [default: daemon.sock in the config directory]
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// How long to answer: 90s, 15m, 1h, 7d (at most 30d); it also ends on
    /// SIGTERM, SIGINT or SIGHUP, and removes its socket
    #[arg(long, value_name = "DURATION", default_value = "1h")]
    pub ttl: String,
    /// A command to run, after --, with RAVI_DAEMON naming this daemon:
    /// the daemon answers until the command exits, then exits with its
    /// status (no line is printed; the socket defaults to daemon-PID.sock)
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<std::ffi::OsString>,
}

#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ServeArgs {
    #[command(subcommand)]
    pub command: Option<ServeCommand>,
    /// Address to listen on (HOST:PORT; port 0 picks a free one)
    #[arg(long, value_name = "ADDR", default_value = vault_server::DEFAULT_LISTEN)]
    pub listen: String,
    /// The server's SQLite store [default: ~/.ravi/server.db]
    #[arg(long, global = true, value_name = "PATH", conflicts_with = "database")]
    pub data: Option<PathBuf>,
    /// A PostgreSQL store instead (postgres://USER@HOST:PORT/DB), shared by
    /// any number of `ravi serve` processes
    #[arg(
        long,
        global = true,
        value_name = "URL",
        env = "RAVI_DATABASE_URL",
        hide_env_values = true
    )]
    pub database: Option<String>,
    /// Serve HTTPS with this PEM certificate chain (with --tls-key)
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum ServeCommand {
    /// Bearer tokens of the server
    #[command(subcommand)]
    Token(TokenCommand),
}

#[derive(Subcommand, Debug)]
pub enum TokenCommand {
    /// Make a token and print it once (the store keeps only its hash);
    /// scope it to the owner (--owner) or to identities (--identity, repeated)
    Create {
        /// A name for the token
        #[arg(long)]
        name: String,
        /// The token may do everything
        #[arg(long)]
        owner: bool,
        /// Lifetime: 90s, 15m, 1h, 7d… (default: no expiry)
        #[arg(long, value_name = "DURATION")]
        ttl: Option<String>,
    },
    /// List the tokens (never the tokens themselves)
    List,
    /// Revoke a token by id or name
    Revoke {
        /// The token's id or name
        #[arg(value_name = "ID|NAME")]
        token: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum VaultCommand {
    /// Print the vault id, the owner's public key and the KDF parameters
    Info,
}

#[derive(Subcommand, Debug)]
pub enum AgentCommand {
    /// Make a key pair: the secret goes to a 0600 file, the public key is printed
    Keygen {
        /// Where to write the secret key [default: <config dir>/agent.key]; `-` prints it
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Print the public key of a secret key file
    Pubkey {
        /// The agent key file
        #[arg(long, value_name = "FILE")]
        key_file: PathBuf,
    },
    /// Pin the vault owner's public key (from `ravi vault info` on a trusted
    /// machine) before first use: a vault with another owner key is refused
    Pin {
        /// The owner's public key, raviowner1…
        #[arg(long, value_name = "KEY")]
        owner_key: String,
        /// Also record the pin in this agent key file
        #[arg(long, value_name = "FILE")]
        key_file: Option<PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
pub enum PassphraseCommand {
    /// Re-wrap the root key under a new passphrase (old one as usual; new one
    /// from --new-passphrase-file, RAVI_NEW_PASSPHRASE or a prompt)
    Change {
        /// Read the new passphrase from this file (else RAVI_NEW_PASSPHRASE, else a prompt)
        #[arg(long, value_name = "FILE")]
        new_passphrase_file: Option<PathBuf>,
        /// New Argon2id parameters [default: unchanged]
        #[command(flatten)]
        kdf: KdfArgs,
    },
}

#[derive(Args, Debug)]
pub struct InitArgs {
    /// Domain of assigned inbox addresses (<name>@<domain>)
    #[arg(long, value_name = "DOMAIN")]
    pub inbox_domain: Option<String>,
    #[command(flatten)]
    pub kdf: KdfArgs,
}

/// Argon2id cost flags; unset ones keep a base value (the default for
/// `init`, the vault's current one for `passphrase change`).
#[derive(Args, Debug)]
pub struct KdfArgs {
    /// Argon2id memory in MiB [init default: 64]; lower only for tests
    #[arg(long, value_name = "N")]
    pub kdf_memory_mib: Option<u32>,
    /// Argon2id passes [init default: 3]
    #[arg(long, value_name = "N")]
    pub kdf_iterations: Option<u32>,
    /// Argon2id lanes [init default: 4]
    #[arg(long, value_name = "N")]
    pub kdf_parallelism: Option<u32>,
}

#[derive(Subcommand, Debug)]
pub enum IdentityCommand {
    /// Create an identity
    Create {
        /// Unique name (also the inbox local part)
        #[arg(long)]
        name: String,
        /// Inbox address [default: <name>@<inbox domain>]
        #[arg(long)]
        email: Option<String>,
        /// Phone number, E.164 (e.g. +14155550123)
        #[arg(long)]
        phone: Option<String>,
    },
    /// List identities
    List,
    /// Show one identity [default: the selected one]
    Show {
        /// The identity: its name or uuid [default: the selected identity]
        #[arg(value_name = "NAME|UUID")]
        selector: Option<String>,
    },
    /// Select an identity for later commands (writes config.json)
    Use {
        /// The identity: its name or uuid
        #[arg(value_name = "NAME|UUID")]
        selector: String,
        /// Write ./.ravi/config.json instead of the config directory's file
        #[arg(long)]
        local: bool,
    },
    /// Delete an identity, its key and all its records
    Delete {
        /// The identity: its name or uuid
        #[arg(value_name = "NAME|UUID")]
        selector: String,
    },
    /// Let an agent key open this identity (and only this one)
    Grant {
        /// The identity: its name or uuid
        #[arg(value_name = "NAME|UUID")]
        selector: String,
        /// The agent's public key (raviagent1...)
        #[arg(long, value_name = "AGENT_PUBLIC_KEY")]
        to: String,
        /// A label for people (for example the agent's host)
        #[arg(long)]
        label: Option<String>,
    },
    /// List the agent keys granted this identity
    Grants {
        /// The identity: its name or uuid
        #[arg(value_name = "NAME|UUID")]
        selector: String,
    },
    /// Remove an agent's grant and rotate the identity key
    Revoke {
        /// The identity: its name or uuid
        #[arg(value_name = "NAME|UUID")]
        selector: String,
        /// The agent's public key (raviagent1...)
        #[arg(long, value_name = "AGENT_PUBLIC_KEY")]
        from: String,
    },
    /// Rotate the identity key: re-seal every record under a new key (also
    /// the recovery after a store rolled the identity back)
    Rotate {
        /// The identity: its name or uuid
        #[arg(value_name = "NAME|UUID")]
        selector: String,
        /// Remove the records no available key opens (sealed under a key the
        /// store no longer serves, or damaged) and re-key the rest
        #[arg(long, conflicts_with = "resume")]
        drop_unreadable: bool,
        /// Complete a rotation that stopped after it switched keys (a rotation
        /// in chunks, interrupted); exit 3 if none is under way
        #[arg(long)]
        resume: bool,
        /// Records re-sealed per transaction; an identity with at most this
        /// many is rotated in one transaction
        #[arg(long, value_name = "N", default_value_t = 256,
              value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
        chunk_records: u32,
    },
}

#[derive(Subcommand, Debug)]
pub enum GetCommand {
    /// The identity's inbox address: {"email": ...}
    Email,
    /// The identity's phone number: {"phone_number": ...}
    Phone,
}

#[derive(Args, Debug, Default)]
pub struct GenerateArgs {
    /// Generated password length
    #[arg(long, value_name = "N", default_value_t = vault_core::DEFAULT_LENGTH)]
    pub length: usize,
    /// No special characters
    #[arg(long)]
    pub no_special: bool,
    /// No digits
    #[arg(long)]
    pub no_digits: bool,
    /// Characters never to use
    #[arg(long, value_name = "CHARS")]
    pub exclude_chars: Option<String>,
}

#[derive(Args, Debug, Default)]
pub struct PasswordInput {
    /// The password on argv (visible to other local users; prefer --password-stdin)
    #[arg(long, conflicts_with_all = ["password_stdin", "password_file", "generate"])]
    pub password: Option<String>,
    /// Read the password from stdin
    #[arg(long, conflicts_with_all = ["password_file", "generate"])]
    pub password_stdin: bool,
    /// Read the password from a file
    #[arg(long, value_name = "FILE", conflicts_with = "generate")]
    pub password_file: Option<PathBuf>,
    /// Generate a password (the default for create when none is given)
    #[arg(long)]
    pub generate: bool,
}

#[derive(Subcommand, Debug)]
pub enum PasswordsCommand {
    /// Store a password for a domain or URL (an entry with the same domain
    /// and username is a conflict, exit 6, unless --update or --if-absent)
    Create {
        /// The domain (a URL or host is cleaned to its registrable domain)
        #[arg(value_name = "DOMAIN|URL")]
        domain: String,
        /// The username
        #[arg(long)]
        username: Option<String>,
        #[command(flatten)]
        input: PasswordInput,
        #[command(flatten)]
        generator: GenerateArgs,
        /// Notes
        #[arg(long)]
        notes: Option<String>,
        /// If the entry exists, replace its password (and notes, if given)
        #[arg(long, conflicts_with = "if_absent")]
        update: bool,
        /// If the entry exists, return it unchanged (retried creates stay
        /// idempotent)
        #[arg(long)]
        if_absent: bool,
    },
    /// List entries (passwords hidden)
    List,
    /// Show one entry with its password
    Get {
        /// The entry: its uuid, or a domain or URL
        #[arg(value_name = "UUID|DOMAIN")]
        selector: String,
        /// Pick the entry with this username
        #[arg(long)]
        username: Option<String>,
    },
    /// Change an entry
    Edit {
        /// The entry: its uuid, or a domain or URL
        #[arg(value_name = "UUID|DOMAIN")]
        selector: String,
        /// Pick the entry with this username
        #[arg(long)]
        username: Option<String>,
        /// New domain or URL
        #[arg(long, value_name = "DOMAIN|URL")]
        new_domain: Option<String>,
        /// New username
        #[arg(long, value_name = "USERNAME")]
        new_username: Option<String>,
        #[command(flatten)]
        input: PasswordInput,
        #[command(flatten)]
        generator: GenerateArgs,
        /// New notes
        #[arg(long)]
        notes: Option<String>,
    },
    /// Delete an entry
    Delete {
        /// The entry: its uuid, or a domain or URL
        #[arg(value_name = "UUID|DOMAIN")]
        selector: String,
        /// Pick the entry with this username
        #[arg(long)]
        username: Option<String>,
    },
    /// Generate a password without storing it
    Generate {
        #[command(flatten)]
        generator: GenerateArgs,
    },
}

#[derive(Subcommand, Debug)]
pub enum SecretsCommand {
    /// Set a secret (replaces the value of an existing key)
    Set {
        /// The secret's key
        key: String,
        /// The value on argv (visible to other local users; prefer --value-stdin)
        #[arg(conflicts_with_all = ["value_stdin", "value_file"])]
        value: Option<String>,
        /// Read the value from stdin
        #[arg(long, conflicts_with = "value_file")]
        value_stdin: bool,
        /// Read the value from a file
        #[arg(long, value_name = "FILE")]
        value_file: Option<PathBuf>,
        /// Notes
        #[arg(long)]
        notes: Option<String>,
        /// Store an empty value (refused otherwise)
        #[arg(long)]
        allow_empty: bool,
    },
    /// Show one secret with its value
    Get {
        /// The secret's key
        key: String,
    },
    /// List secrets (values hidden)
    List,
    /// Delete a secret
    Delete {
        /// The secret: its key or uuid
        #[arg(value_name = "KEY|UUID")]
        selector: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum TotpCommand {
    /// Enrol a TOTP seed from an otpauth:// URI or a Base32 secret
    Add(TotpAddArgs),
    /// The current code and how long it stays valid
    Code {
        /// The TOTP seed: its name or uuid
        name: String,
        /// If fewer seconds remain, wait for the next window (must be below the period)
        #[arg(long, value_name = "SECS")]
        min_validity: Option<u64>,
        /// Compute the code for this Unix time instead of now (no waiting)
        #[arg(long, value_name = "UNIX_TIME")]
        at: Option<u64>,
    },
    /// List enrolments (never shows seeds)
    List,
    /// Show one enrolment's parameters (no seed)
    Show {
        /// The TOTP seed: its name or uuid
        name: String,
    },
    /// Export the otpauth:// URI (contains the seed)
    Uri {
        /// The TOTP seed: its name or uuid
        name: String,
    },
    /// Delete an enrolment
    Delete {
        /// The TOTP seed: its name or uuid
        name: String,
    },
}

#[derive(Args, Debug)]
pub struct TotpAddArgs {
    /// Name [default: the URI's issuer]; a URL or host is cleaned to its domain
    pub name: Option<String>,
    /// If a seed of this name exists, replace it (same uuid); else a
    /// conflict (exit 6)
    #[arg(long)]
    pub update: bool,
    /// otpauth://totp/... URI (on argv: visible to other local users)
    #[arg(long, group = "source")]
    pub uri: Option<String>,
    /// Read the otpauth:// URI from stdin
    #[arg(long, group = "source")]
    pub uri_stdin: bool,
    /// Base32 secret (on argv: visible to other local users)
    #[arg(long, group = "source")]
    pub secret: Option<String>,
    /// Read the Base32 secret from stdin
    #[arg(long, group = "source")]
    pub secret_stdin: bool,
    /// SHA1, SHA256, SHA512 or STEAM [default: SHA1]
    #[arg(long, conflicts_with_all = ["uri", "uri_stdin"])]
    pub algorithm: Option<String>,
    /// Code length, 6-8 [default: 6; 5 for STEAM]
    #[arg(long, conflicts_with_all = ["uri", "uri_stdin"])]
    pub digits: Option<u8>,
    /// Time step in seconds, 1-300 [default: 30]
    #[arg(long, value_name = "SECS", conflicts_with_all = ["uri", "uri_stdin"])]
    pub period: Option<u64>,
    /// Issuer (service name)
    #[arg(long, conflicts_with_all = ["uri", "uri_stdin"])]
    pub issuer: Option<String>,
    /// Account name
    #[arg(long, conflicts_with_all = ["uri", "uri_stdin"])]
    pub account: Option<String>,
}

/// Which global options a command uses: (`--identity`, a credential
/// file). Options it would ignore are hidden from its help and refused
/// when given.
pub fn scope(path: &[&str]) -> (bool, bool) {
    match path {
        ["init", ..] => (false, true),
        ["identity", "show", ..] => (true, false),
        ["identity", "list" | "use" | "grants", ..] => (false, false),
        ["identity", ..] => (false, true),
        ["get", ..] => (true, false),
        ["passwords", "generate", ..] => (false, false),
        ["passwords" | "secrets" | "totp", ..] => (true, true),
        ["unlock" | "lock" | "passphrase" | "rekey" | "daemon", ..] => (false, true),
        ["serve", ..] => (true, false),
        ["read" | "inject" | "run" | "import" | "export", ..] => (true, true),
        // agent, vault, login, logout, push, completions, man
        _ => (false, false),
    }
}

/// Whether a command opens a vault (else `--vault` is left out of its
/// help; it is not refused, since `RAVI_VAULT` is often set for a whole
/// session).
pub fn uses_vault(path: &[&str]) -> bool {
    !matches!(
        path,
        ["agent", "keygen" | "pubkey", ..]
            | ["passwords", "generate", ..]
            | ["completions" | "man" | "login" | "logout", ..]
    )
}

/// The credential-file options.
pub const CREDENTIAL_FILES: [&str; 3] = ["passphrase_file", "session_file", "agent_key_file"];

/// The command line, with each subcommand's help showing only the global
/// options that apply to it (see [`scope`]).
pub fn command() -> clap::Command {
    use clap::CommandFactory;
    fn hide(cmd: clap::Command, path: &mut Vec<String>) -> clap::Command {
        let names: Vec<String> = cmd.get_subcommands().map(|c| c.get_name().to_string()).collect();
        let mut cmd = cmd;
        if !path.is_empty() {
            let p: Vec<&str> = path.iter().map(String::as_str).collect();
            let (identity, credential) = scope(&p);
            let mut hidden: Vec<&str> = Vec::new();
            if !identity {
                hidden.push("identity");
            }
            if !credential {
                hidden.extend(CREDENTIAL_FILES);
            }
            if !uses_vault(&p) {
                hidden.push("vault");
            }
            // (mut_args keeps the arguments' order, which the built
            // command's index of option names relies on; mut_arg does not)
            cmd = cmd.mut_args(|a| {
                let hide = hidden.contains(&a.get_id().as_str()) || a.is_hide_set();
                a.hide(hide)
            });
        }
        for name in names {
            path.push(name.clone());
            cmd = cmd.mut_subcommand(&name, |sub| hide(sub, path));
            path.pop();
        }
        cmd
    }
    let mut cmd = Cli::command();
    // Propagates the global options into every subcommand first.
    cmd.build();
    hide(cmd, &mut Vec::new())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// A subcommand's help lists only the global options it uses.
    #[test]
    fn help_shows_only_applicable_globals() {
        let mut cmd = command();
        let help = |cmd: &mut clap::Command, path: &[&str]| {
            let mut c = cmd.clone();
            let mut sub = &mut c;
            for p in path {
                sub = sub.find_subcommand_mut(p).unwrap();
            }
            sub.render_help().to_string()
        };
        let keygen = help(&mut cmd, &["agent", "keygen"]);
        assert!(!keygen.contains("--identity"), "{keygen}");
        assert!(!keygen.contains("--session-file"), "{keygen}");
        assert!(keygen.contains("--json"), "{keygen}");
        assert!(!keygen.contains("--vault"), "{keygen}");
        let get = help(&mut cmd, &["secrets", "get"]);
        assert!(get.contains("--identity") && get.contains("--agent-key-file"), "{get}");
        let email = help(&mut cmd, &["get", "email"]);
        assert!(email.contains("--identity") && !email.contains("--passphrase-file"), "{email}");
        // hidden, still parsed (and then refused with a clear error)
        let m = cmd
            .clone()
            .try_get_matches_from(["ravi", "agent", "keygen", "--identity", "x", "--json"])
            .unwrap();
        let cli = <Cli as clap::FromArgMatches>::from_arg_matches(&m).unwrap();
        assert_eq!(cli.global.identity, ["x"]);
        assert!(cli.global.json);
    }

    /// Every option and positional argument of every subcommand has a help
    /// line.
    #[test]
    fn every_argument_has_help() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for a in cmd.get_arguments() {
                let id = a.get_id().as_str();
                if id == "help" || id == "version" {
                    continue;
                }
                if a.get_help().is_none() && a.get_long_help().is_none() {
                    missing.push(format!("{path} {id}"));
                }
            }
            for sub in cmd.get_subcommands() {
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        walk(&Cli::command(), "ravi", &mut missing);
        assert!(missing.is_empty(), "no help line: {missing:#?}");
    }

    /// `identity rotate` without `--chunk-records` rotates in the library's
    /// chunks; `--resume` and `--drop-unreadable` exclude each other.
    #[test]
    fn rotate_defaults_to_the_library_chunk() {
        let parse = |args: &[&str]| {
            let m = command().try_get_matches_from(args)?;
            <Cli as clap::FromArgMatches>::from_arg_matches(&m)
        };
        let cli = parse(&["ravi", "identity", "rotate", "x"]).unwrap();
        let Command::Identity(IdentityCommand::Rotate { chunk_records, .. }) = cli.command else {
            panic!("not a rotation");
        };
        assert_eq!(usize::try_from(chunk_records).unwrap(), vault_core::ROTATION_CHUNK);
        assert!(parse(&["ravi", "identity", "rotate", "x", "--resume", "--drop-unreadable"]).is_err());
        assert!(parse(&["ravi", "identity", "rotate", "x", "--chunk-records", "0"]).is_err());
    }
}
