//! Lookup by name through the blind index at vault sizes 1k to 1M records
//! (the index keeps it flat), and listing/decrypting every record of an
//! identity.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

mod common;

fn lookup(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    common::with_identity(&dir, |iv| lookup_in(c, iv));
}

fn lookup_in(c: &mut Criterion, iv: &vault_core::IdentityVault<'_>) {
    let mut filled = 0usize;
    let mut g = c.benchmark_group("lookup_by_name");
    for size in [1_000usize, 10_000, 100_000, 1_000_000] {
        while filled < size {
            let chunk = (size - filled).min(100_000);
            iv.import_secrets(&common::entries(filled, chunk))
                .expect("fill");
            filled += chunk;
        }
        let key = format!("KEY_{:08}", size / 2);
        g.bench_with_input(BenchmarkId::new("secrets_get", size), &key, |b, k| {
            b.iter(|| black_box(iv.get_secret(k).expect("get")))
        });
    }
    g.finish();
}

fn list(c: &mut Criterion) {
    let mut g = c.benchmark_group("list_and_decrypt_identity");
    g.sample_size(10);
    for size in [1_000usize, 10_000] {
        let dir = tempfile::tempdir().expect("tempdir");
        common::with_identity(&dir, |iv| {
            iv.import_secrets(&common::entries(0, size)).expect("fill");
            g.throughput(Throughput::Elements(size as u64));
            g.bench_function(BenchmarkId::new("secrets_list", size), |b| {
                b.iter(|| black_box(iv.secrets().expect("list").len()))
            });
        });
    }
    g.finish();
}

criterion_group!(benches, lookup, list);
criterion_main!(benches);
