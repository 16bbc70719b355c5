//! .ravi/config.json parsing.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = vault_cli::config::fuzz_config_json(data);
});
