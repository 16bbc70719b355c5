//! otpauth:// Key URI parsing; parsed URIs export and re-parse to the same parameters.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    vault_core::fuzz_entry::otpauth_uri(data);
});
