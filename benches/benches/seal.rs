//! Sealing and opening one record (pad + XChaCha20-Poly1305 envelope with
//! its associated data) next to raw XChaCha20-Poly1305 on the same bytes.

use std::hint::black_box;

use chacha20poly1305::XChaCha20Poly1305;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use vault_core::hazmat::{SealContext, key_bytes, key_from_bytes, open, pad, seal, unpad};

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
        g.bench_with_input(BenchmarkId::new("ravi_pad_seal", size), &data, |b, d| {
            b.iter(|| {
                let padded = pad(d).expect("pad");
                black_box(seal(&key, &ctx(), &padded).expect("seal"))
            })
        });
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
        g.bench_with_input(BenchmarkId::new("ravi_open_unpad", size), &env, |b, e| {
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
