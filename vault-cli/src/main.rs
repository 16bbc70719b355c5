//! `ravi`: a thin command-line interface over vault-core. Parsing, output
//! and exit codes only; every behaviour lives in the library.

include!("cli.rs");
