//! TOTP code generation: ravi (validation + totp-rs) next to totp-rs alone
//! and the bare HMAC-SHA1 of one counter (the floor).

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use hmac::{Hmac, KeyInit, Mac};
use vault_core::TotpParams;

fn totp(c: &mut Criterion) {
    let seed = b"12345678901234567890".to_vec();
    let params = TotpParams::with_defaults(seed.clone().into());
    let direct = totp_rs::Builder::new()
        .with_secret(seed.clone())
        .build_noncompliant();
    let mut g = c.benchmark_group("totp_code");
    g.bench_function("ravi_code_at", |b| {
        b.iter(|| black_box(params.code_at(black_box(1_111_111_109)).expect("code")))
    });
    g.bench_function("totp_rs_generate", |b| {
        b.iter(|| black_box(direct.generate(black_box(1_111_111_109)).to_string()))
    });
    g.bench_function("hmac_sha1_counter", |b| {
        b.iter(|| {
            let mut mac = <Hmac<sha1::Sha1> as KeyInit>::new_from_slice(&seed).expect("key");
            mac.update(&(black_box(1_111_111_109u64) / 30).to_be_bytes());
            black_box(mac.finalize().into_bytes())
        })
    });
    g.finish();
}

criterion_group!(benches, totp);
criterion_main!(benches);
