//! `ravi-serve`: the `ravi` program with the HTTP server linked in.
//! `ravi serve` hands over to it (see `SERVER_BUILTIN`), so that the
//! agent-facing `ravi` binary stays small and starts fast.

include!("../cli.rs");
