//! End-to-end tests of the `ravi` binary on temporary vaults.

mod at_rest;
mod common;
mod errors;
mod identities;
mod parallel;
mod passwords;
mod secrets;
mod tamper;
