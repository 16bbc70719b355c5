//! Seal then open returns the input, for any plaintext.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    vault_core::fuzz_entry::seal_open_roundtrip(data);
});
