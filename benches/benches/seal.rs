//! Sealing and opening one record — as written now (envelope 0x02: Padmé
//! padding, sealed in place, a fresh nonce from the OS) and as version
//! 0x01 wrote it (power-of-two buckets) — next to raw XChaCha20-Poly1305
//! on the same bytes. Target (SPEC §5): 0x02 within 1.3× of raw at 1 KiB
//! and 64 KiB.

use std::hint::black_box;

use chacha20poly1305::XChaCha20Poly1305;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use vault_core::hazmat::{
    SealContext, key_bytes, key_from_bytes, open, open_record, pad, seal, seal_record, unpad,
};

const VAULT: [u8; 16] = [1; 16];
const IDENT: [u8; 16] = [2; 16];
const RECORD: [u8; 16] = [3; 16];

fn ctx() -> SealContext<'static> {
    SealContext::Record {
        vault_id: &VAULT,
        identity_id: &IDENT,
        kind: 2,
        record_id: &RECORD,
        epoch: 1,
    }
}

fn seal_open(c: &mut Criterion) {
    let key = key_from_bytes([7; 32]);
    let raw = XChaCha20Poly1305::new(key_bytes(&key).into());
    let nonce = [9u8; 24];
    let mut g = c.benchmark_group("seal_record");
    for size in [64usize, 1024, 64 * 1024] {
        let data = vec![0x5a; size];
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_with_input(BenchmarkId::new("ravi_padme_seal", size), &data, |b, d| {
            b.iter(|| black_box(seal_record(&key, &ctx(), d, None).expect("seal")))
        });
        g.bench_with_input(
            BenchmarkId::new("ravi_v1_pow2_seal", size),
            &data,
            |b, d| {
                b.iter(|| {
                    let padded = pad(d).expect("pad");
                    black_box(seal(&key, &ctx(), &padded).expect("seal"))
                })
            },
        );
        g.bench_with_input(
            BenchmarkId::new("raw_xchacha20poly1305", size),
            &data,
            |b, d| {
                b.iter(|| {
                    black_box(
                        raw.encrypt((&nonce).into(), Payload { msg: d, aad: b"" })
                            .expect("encrypt"),
                    )
                })
            },
        );
    }
    g.finish();

    let mut g = c.benchmark_group("open_record");
    for size in [64usize, 1024, 64 * 1024] {
        let data = vec![0x5a; size];
        let padded = pad(&data).expect("pad");
        let env = seal(&key, &ctx(), &padded).expect("seal");
        let env2 = seal_record(&key, &ctx(), &data, None).expect("seal");
        let raw_ct = raw
            .encrypt(
                (&nonce).into(),
                Payload {
                    msg: &data,
                    aad: b"",
                },
            )
            .expect("encrypt");
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_with_input(BenchmarkId::new("ravi_padme_open", size), &env2, |b, e| {
            b.iter(|| black_box(open_record(&key, &ctx(), e).expect("open").len()))
        });
        g.bench_with_input(BenchmarkId::new("ravi_v1_pow2_open", size), &env, |b, e| {
            b.iter(|| {
                let pt = open(&key, &ctx(), e).expect("open");
                black_box(unpad(&pt).expect("unpad").len())
            })
        });
        g.bench_with_input(
            BenchmarkId::new("raw_xchacha20poly1305", size),
            &raw_ct,
            |b, ct| {
                b.iter(|| {
                    black_box(
                        raw.decrypt((&nonce).into(), Payload { msg: ct, aad: b"" })
                            .expect("decrypt"),
                    )
                })
            },
        );
    }
    g.finish();
}

criterion_group!(benches, seal_open);
criterion_main!(benches);
