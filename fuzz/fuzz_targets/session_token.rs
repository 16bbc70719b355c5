//! Session token parsing; parsed tokens print back to the same token.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    vault_core::fuzz_entry::session_token(data);
});
