//! An owner public key (raviowner1...) as text.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    vault_core::fuzz_entry::owner_public_key(data);
});
