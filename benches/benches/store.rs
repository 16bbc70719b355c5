//! Storing N sealed records in one transaction (`import_secrets`: blind
//! index + seal + one batch) next to the SQLite backend committing one
//! batch of rows of the same sizes without any crypto (the store layer
//! alone, below the seam).

use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use vault_core::backend::{Backend, Batch, IdentityRow, RecordRow, SqliteBackend, VaultRow, Write};

mod common;

fn plain_header() -> VaultRow {
    VaultRow {
        vault_id: "00000000-0000-4000-8000-000000000000".into(),
        kdf_memory_kib: 1024,
        kdf_iterations: 1,
        kdf_parallelism: 1,
        kdf_salt: vec![0; 16],
        wrapped_root_key: vec![0; 73],
        inbox_domain: "bench.example.com".into(),
        created_dt: "2026-01-01T00:00:00Z".into(),
        owner_public_key: None,
        wrapped_owner_key: None,
        signature: None,
        vault_head: None,
    }
}

/// Rows shaped like sealed secrets: random v4 uuids and random 32-byte
/// indexes (as ravi writes them, so the B-trees see the same key order),
/// 169-byte "ciphertexts" (41 bytes of envelope around a 128-byte bucket).
fn plain_rows(n: usize) -> Vec<RecordRow> {
    (0..n)
        .map(|_| RecordRow {
            uuid: uuid::Uuid::new_v4().to_string(),
            identity_uuid: "00000000-0000-4000-8000-000000000001".into(),
            kind: 2,
            blind_index: uuid::Uuid::new_v4()
                .as_bytes()
                .iter()
                .chain(uuid::Uuid::new_v4().as_bytes())
                .copied()
                .collect(),
            key_epoch: 1,
            ciphertext: vec![0xa5; 169],
        })
        .collect()
}

fn plain_store(dir: &tempfile::TempDir) -> SqliteBackend {
    let s = SqliteBackend::create(&dir.path().join("plain.db"), &plain_header()).expect("create");
    let mut b = Batch::new();
    b.write(Write::InsertIdentity(IdentityRow {
        uuid: "00000000-0000-4000-8000-000000000001".into(),
        name: "bench".into(),
        inbox: "bench@bench.example.com".into(),
        phone: None,
        created_dt: "2026-01-01T00:00:00Z".into(),
        key_epoch: 1,
        wrapped_key: vec![0; 73],
        signature: None,
        head: None,
    }));
    s.commit(&b).expect("identity");
    s
}

/// Only the one transaction is timed: creating and unlocking each fresh
/// vault happens outside the clock.
fn store_n(c: &mut Criterion) {
    let mut g = c.benchmark_group("store_records_one_transaction");
    g.sample_size(10);
    for n in [1_000usize, 10_000, 100_000] {
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::new("ravi_sealed", n), &n, |b, &n| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let dir = tempfile::tempdir().expect("tempdir");
                    let entries = common::entries(0, n);
                    total += common::with_identity(&dir, |iv| {
                        let t = Instant::now();
                        iv.import_secrets(&entries).expect("import");
                        t.elapsed()
                    });
                }
                total
            })
        });
        g.bench_with_input(
            BenchmarkId::new("sqlite_backend_plain_rows", n),
            &n,
            |b, &n| {
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let dir = tempfile::tempdir().expect("tempdir");
                        let s = plain_store(&dir);
                        let batch = Batch {
                            preconditions: Vec::new(),
                            writes: plain_rows(n).into_iter().map(Write::InsertRecord).collect(),
                        };
                        let t = Instant::now();
                        s.commit(&batch).expect("insert");
                        total += t.elapsed();
                    }
                    total
                })
            },
        );
    }
    g.finish();
}

criterion_group!(benches, store_n);
criterion_main!(benches);
