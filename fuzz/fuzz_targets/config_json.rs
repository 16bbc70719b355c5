//! .ravi/config.json parsing.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    vault_core::fuzz_entry::config_json(data);
});
