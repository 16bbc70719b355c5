//! The parts of `ravi` that are tested and fuzzed on their own: choosing
//! the identity a command acts for from `--identity` and config files.
//! Everything else of the CLI is in the `ravi` binary.

pub mod config;
