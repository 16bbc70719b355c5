//! Arbitrary bytes opened as a grant (ephemeral key || wrapped identity key) with a fixed agent key.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    vault_core::fuzz_entry::grant_open(data);
});
