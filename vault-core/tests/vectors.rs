//! The vectors in `tests/data/` and the fuzz corpora in `fuzz/corpus/`,
//! replayed without a fuzzer:
//! - `tests/data/<target>/ok_*` must be accepted and `fail_*` rejected by
//!   that entry point;
//! - every corpus file goes through its fuzz entry point (no panic);
//! - every `fail_` vector is also in its target's corpus;
//! - `tests/data/kat/*.json` known-answer vectors match.
// Helpers outside #[test] functions unwrap too: this is test code.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use serde_json::Value;
use vault_core::fuzz_entry::{CHECKS, TARGETS};
use vault_core::hazmat::{
    SealContext, key_from_bytes, open_record, pad, seal_record, seal_with_nonce,
};
use vault_core::{TotpAlgorithm, TotpParams};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<_> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.path().is_file())
                .map(|e| {
                    (
                        e.file_name().to_string_lossy().into_owned(),
                        std::fs::read(e.path()).unwrap(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

#[test]
fn ok_and_fail_vectors() {
    let mut failures = Vec::new();
    let mut count = 0;
    for (target, check) in CHECKS {
        let dir = root().join("tests/data").join(target);
        let vectors = files(&dir);
        assert!(!vectors.is_empty(), "no vectors for {target}");
        for (name, bytes) in vectors {
            count += 1;
            let accepted = check(&bytes);
            if name.starts_with("ok_") && !accepted {
                failures.push(format!("{target}/{name}: rejected, must be accepted"));
            } else if name.starts_with("fail_") && accepted {
                failures.push(format!("{target}/{name}: accepted, must be rejected"));
            } else if !name.starts_with("ok_") && !name.starts_with("fail_") {
                failures.push(format!(
                    "{target}/{name}: name must start with ok_ or fail_"
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(count > 50, "only {count} vectors");
}

#[test]
fn fuzz_corpora_replay() {
    let mut count = 0;
    for (target, entry) in TARGETS {
        let corpus = files(&root().join("fuzz/corpus").join(target));
        assert!(!corpus.is_empty(), "empty corpus for {target}");
        for (_, bytes) in &corpus {
            entry(bytes);
            count += 1;
        }
        for (name, bytes) in files(&root().join("tests/data").join(target)) {
            if name.starts_with("fail_") {
                assert!(
                    corpus.iter().any(|(n, b)| *n == name && *b == bytes),
                    "{target}/{name} is missing from fuzz/corpus/{target} (run the fuzz_seeds example)"
                );
            }
        }
    }
    assert!(count > 50);
}

fn json(name: &str) -> Value {
    serde_json::from_slice(&std::fs::read(root().join("tests/data/kat").join(name)).unwrap())
        .unwrap()
}

fn hex32(v: &Value) -> [u8; 32] {
    data_encoding::HEXLOWER_PERMISSIVE
        .decode(v.as_str().unwrap().as_bytes())
        .unwrap()
        .try_into()
        .unwrap()
}

fn hex16(v: &Value) -> [u8; 16] {
    data_encoding::HEXLOWER_PERMISSIVE
        .decode(v.as_str().unwrap().as_bytes())
        .unwrap()
        .try_into()
        .unwrap()
}

fn nonce(v: &Value) -> [u8; 24] {
    data_encoding::HEXLOWER_PERMISSIVE
        .decode(v.as_str().unwrap().as_bytes())
        .unwrap()
        .try_into()
        .unwrap()
}

#[test]
fn kat_totp_and_hotp() {
    for file in ["totp_rfc6238.json", "hotp_rfc4226.json"] {
        let doc = json(file);
        let vectors = doc["vectors"].as_array().unwrap();
        assert!(vectors.len() >= 10);
        for v in vectors {
            let mut p = TotpParams::with_defaults(zeroize::Zeroizing::new(
                v["seed_ascii"].as_str().unwrap().as_bytes().to_vec(),
            ));
            p.algorithm = TotpAlgorithm::parse(v["algorithm"].as_str().unwrap()).unwrap();
            p.digits = u8::try_from(v["digits"].as_u64().unwrap()).unwrap();
            p.period = v["period"].as_u64().unwrap();
            let code = p.code_at(v["time"].as_u64().unwrap()).unwrap();
            assert_eq!(code.as_str(), v["code"].as_str().unwrap(), "{file}: {v}");
        }
    }
}

#[test]
fn kat_envelope_and_key_wrap() {
    let v = json("envelope_record_golden.json");
    let key = key_from_bytes(hex32(&v["key"]));
    let (vault_id, identity_id, record_id) = (
        hex16(&v["vault_id"]),
        hex16(&v["identity_id"]),
        hex16(&v["record_id"]),
    );
    let ctx = SealContext::Record {
        vault_id: &vault_id,
        identity_id: &identity_id,
        kind: u8::try_from(v["kind"].as_u64().unwrap()).unwrap(),
        record_id: &record_id,
        epoch: u32::try_from(v["epoch"].as_u64().unwrap()).unwrap(),
    };
    let padded = pad(v["plaintext"].as_str().unwrap().as_bytes()).unwrap();
    let env = seal_with_nonce(&key, &nonce(&v["nonce"]), &ctx, &padded).unwrap();
    assert_eq!(
        data_encoding::HEXLOWER.encode(&env),
        v["envelope"].as_str().unwrap()
    );
    // Version 0x02 (Padmé), same key, nonce, context and plaintext.
    let v2 = json("envelope_record_padme_golden.json");
    let plaintext = v2["plaintext"].as_str().unwrap().as_bytes();
    let env2 = seal_record(&key, &ctx, plaintext, Some(&nonce(&v2["nonce"]))).unwrap();
    assert_eq!(
        data_encoding::HEXLOWER.encode(&env2),
        v2["envelope"].as_str().unwrap()
    );
    assert_eq!(&open_record(&key, &ctx, &env2).unwrap()[..], plaintext);
    assert_eq!(&open_record(&key, &ctx, &env).unwrap()[..], plaintext);

    let w = json("identity_key_wrap_golden.json");
    let rk = key_from_bytes(hex32(&w["root_key"]));
    let (vault_id, identity_id) = (hex16(&w["vault_id"]), hex16(&w["identity_id"]));
    let ctx = SealContext::IdentityKey {
        vault_id: &vault_id,
        identity_id: &identity_id,
        epoch: u32::try_from(w["epoch"].as_u64().unwrap()).unwrap(),
        name: w["name"].as_str().unwrap(),
        inbox: w["inbox"].as_str().unwrap(),
        phone: w["phone"].as_str().unwrap(),
    };
    let env = seal_with_nonce(&rk, &nonce(&w["nonce"]), &ctx, &hex32(&w["identity_key"])).unwrap();
    assert_eq!(
        data_encoding::HEXLOWER.encode(&env),
        w["envelope"].as_str().unwrap()
    );
}
