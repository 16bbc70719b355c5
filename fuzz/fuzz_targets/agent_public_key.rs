//! Agent public key (Bech32) parsing; parsed keys print back to the same key.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    vault_core::fuzz_entry::agent_public_key(data);
});
