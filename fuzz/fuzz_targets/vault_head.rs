//! Arbitrary bytes opened as a vault head signed by a fixed owner key.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    vault_core::fuzz_entry::vault_head(data);
});
