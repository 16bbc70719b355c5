//! End-to-end tests of the `ravi` binary on temporary vaults.
// Helpers outside #[test] functions unwrap too: this is test code.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod access;
mod at_rest;
mod common;
#[cfg(target_os = "linux")]
mod daemon;
mod errors;
mod export;
mod identities;
mod import;
mod mutation;
mod parallel;
mod passwords;
mod references;
mod rough_edges;
mod secrets;
mod serve;
mod tamper;
mod totp;
mod untrusted;
