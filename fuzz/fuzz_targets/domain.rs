//! Domain / URL cleaning with the public suffix list.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    vault_core::fuzz_entry::domain(data);
});
