//! The passphrase prompt on a real terminal (a pty from util-linux `script`).

use crate::common::*;

/// On a terminal (a pty from `script`), the passphrase is prompted for and
/// read from the terminal, never echoed; `init` asks twice.
pub fn passphrase_prompt_on_a_terminal() {
    let env = Env::empty();
    let on_tty = |cmd: &str, input: &str| {
        let line = format!("{} {cmd}", ravi_bin().display());
        let mut sh = env.command_for(std::path::Path::new("sh"));
        sh.env_remove("RAVI_PASSPHRASE").env("INPUT", input).args([
            "-c",
            &format!("(sleep 0.3; printf \"$INPUT\") | script -qec '{line}' /dev/null"),
        ]);
        run_command(&mut sh)
    };
    let r = on_tty(
        "init --kdf-memory-mib 1 --kdf-iterations 1 --kdf-parallelism 1",
        "tty-pass\\ntty-typo\\n",
    );
    assert_eq!(
        r.code, EXIT_INVALID,
        "mismatched confirmation: {}{}",
        r.stdout, r.stderr
    );
    let r = on_tty(
        "init --kdf-memory-mib 1 --kdf-iterations 1 --kdf-parallelism 1",
        "tty-pass\\ntty-pass\\n",
    );
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("Vault passphrase:") && !r.stdout.contains("tty-pass"));
    let mut c = env.command();
    c.env("RAVI_PASSPHRASE", "tty-pass")
        .args(["identity", "create", "--name", "t"]);
    run_command(&mut c).ok();
    let r = on_tty("--identity t secrets list --json", "tty-pass\\n");
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let r = on_tty("--identity t secrets list", "nope\\n");
    assert_eq!(r.code, EXIT_LOCKED, "{}{}", r.stdout, r.stderr);
}
