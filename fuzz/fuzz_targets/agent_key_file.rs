//! Agent secret key file parsing.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    vault_core::fuzz_entry::agent_key_file(data);
});
