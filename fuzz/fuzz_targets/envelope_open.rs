//! Arbitrary bytes opened as a record envelope under a fixed key: an error, never a panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    vault_core::fuzz_entry::envelope_open(data);
});
