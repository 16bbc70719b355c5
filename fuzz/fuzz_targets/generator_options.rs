//! Password generator options from bytes; generated passwords honour them.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    vault_core::fuzz_entry::generator_options(data);
});
