//! Arbitrary bytes opened as an identity head under a fixed identity key.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    vault_core::fuzz_entry::identity_head(data);
});
