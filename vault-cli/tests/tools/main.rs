//! End-to-end tests that need a tool outside Rust: oathtool, the
//! independent Python reader, util-linux `script`, PostgreSQL, the REST
//! examples (Python, TypeScript) and schemathesis. A test whose tool is
//! missing is reported as *ignored* with the reason in its name (and on
//! stdout), never as passed; with `CI` set, a missing tool fails the test.
//! `.ci/run` installs every tool and lists ignored tests, which must be none.
// A `harness = false` target is not test code to clippy, so its
// allow-unwrap-in-tests setting does not reach here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod age;
#[allow(dead_code)]
#[path = "../e2e/common.rs"]
mod common;
mod daemon_users;
mod independent;
mod man;
mod oathtool;
mod pg_cluster;
mod postgres;
mod rest;
#[allow(dead_code)]
#[path = "../e2e/serve.rs"]
mod serve;
mod syscalls;
mod terminal;
mod tls;

use libtest_mimic::{Arguments, Failed, Trial};

fn runs(program: &str, arg: &str) -> bool {
    std::process::Command::new(program)
        .arg(arg)
        .output()
        .is_ok()
}

/// A test that needs a tool: run it when the tool is there; otherwise fail
/// under CI and be ignored (skipped, with the reason) elsewhere.
fn needs(name: &str, present: bool, missing: &str, test: fn()) -> Trial {
    let in_ci = std::env::var_os("CI").is_some();
    if present {
        return Trial::test(name, move || {
            test();
            Ok(())
        });
    }
    if in_ci {
        let msg = format!("{missing}: required in CI (.ci/run installs it)");
        return Trial::test(name, move || Err(Failed::from(msg)));
    }
    println!("skipped: {name}: {missing}");
    Trial::test(format!("{name} [skipped: {missing}]"), || Ok(())).with_ignored_flag(true)
}

fn main() {
    let args = Arguments::from_args();
    let trials = vec![
        needs(
            "cross_check_with_oathtool",
            runs("oathtool", "--version"),
            "oathtool is not installed (apt-get install oathtool)",
            oathtool::cross_check_with_oathtool,
        ),
        needs(
            "python_reader_opens_a_ravi_vault",
            std::env::var_os("RAVI_INDEPENDENT_PYTHON").is_some(),
            "RAVI_INDEPENDENT_PYTHON is not set (see .ci/run)",
            independent::python_reader_opens_a_ravi_vault,
        ),
        needs(
            "postgres_conformance_through_two_servers",
            pg_cluster::available(),
            "PostgreSQL server binaries are not installed (apt-get install postgresql)",
            postgres::conformance_through_two_servers,
        ),
        needs(
            "postgres_two_machines_on_two_servers",
            pg_cluster::available(),
            "PostgreSQL server binaries are not installed (apt-get install postgresql)",
            postgres::two_machines_on_two_servers,
        ),
        needs(
            "seed_examples_run_against_ravi_serve",
            std::env::var_os("RAVI_INDEPENDENT_PYTHON").is_some()
                && rest::tsc().is_some()
                && runs("node", "--version"),
            "RAVI_INDEPENDENT_PYTHON (with httpx), RAVI_TSC and node are needed (see .ci/run)",
            rest::seed_examples_run_against_ravi_serve,
        ),
        needs(
            "schemathesis_finds_no_server_error",
            std::env::var_os("RAVI_INDEPENDENT_PYTHON").is_some(),
            "RAVI_INDEPENDENT_PYTHON (with schemathesis) is not set (see .ci/run)",
            rest::schemathesis_finds_no_server_error,
        ),
        needs(
            "https_with_a_private_certificate",
            runs("openssl", "version"),
            "openssl is not installed (apt-get install openssl)",
            tls::https_with_a_private_certificate,
        ),
        needs(
            "age_decrypts_an_export",
            runs("age", "--version"),
            "age is not installed (apt-get install age)",
            age::age_decrypts_an_export,
        ),
        needs(
            "reads_write_nothing_to_the_vault",
            runs("strace", "-V"),
            "strace is not installed (apt-get install strace)",
            syscalls::reads_write_nothing_to_the_vault,
        ),
        needs(
            "a_daemon_of_another_user_is_not_believed",
            cfg!(target_os = "linux") && daemon_users::as_nobody().is_some(),
            "no way to run a process as user nobody (runuser as root, or sudo -n)",
            daemon_users::a_daemon_of_another_user_is_not_believed,
        ),
        needs(
            "man_page_renders",
            runs("man", "--version"),
            "man is not installed (apt-get install man-db)",
            man::man_page_renders,
        ),
        needs(
            "passphrase_prompt_on_a_terminal",
            runs("script", "--version"),
            "util-linux `script` is not installed",
            terminal::passphrase_prompt_on_a_terminal,
        ),
    ];
    libtest_mimic::run(&args, trials).exit();
}
