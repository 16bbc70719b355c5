//! Storing N sealed records in one transaction (`import_secrets`: blind
//! index + seal + insert) next to the same SQL inserting rows of the same
//! sizes without any crypto (the store layer alone: plain rusqlite).

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use vault_core::store::{IdentityRow, RecordRow, Store, VaultRow};

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
    }
}

/// Rows shaped like sealed secrets: 32-byte index, 169-byte "ciphertext"
/// (41 bytes of envelope around a 128-byte padding bucket).
fn plain_rows(n: usize) -> Vec<RecordRow> {
    (0..n)
        .map(|i| {
            let mut idx = [0u8; 32];
            idx[..8].copy_from_slice(&(i as u64).to_le_bytes());
            RecordRow {
                uuid: format!("00000000-0000-4000-8000-{i:012}"),
                identity_uuid: "00000000-0000-4000-8000-000000000001".into(),
                kind: 2,
                blind_index: idx.to_vec(),
                key_epoch: 1,
                ciphertext: vec![0xa5; 169],
            }
        })
        .collect()
}

fn store_n(c: &mut Criterion) {
    let mut g = c.benchmark_group("store_records_one_transaction");
    g.sample_size(10);
    for n in [1_000usize, 10_000, 100_000] {
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::new("ravi_sealed", n), &n, |b, &n| {
            b.iter_batched(
                || {
                    let dir = tempfile::tempdir().expect("tempdir");
                    let v = common::vault(&dir);
                    (dir, v, common::entries(0, n))
                },
                |(dir, v, entries)| {
                    let u = v.unlock(&common::passphrase()).expect("unlock");
                    let iv = u
                        .open_identity(&v.find_identity("bench").expect("identity"))
                        .expect("open");
                    iv.import_secrets(&entries).expect("import");
                    drop(iv);
                    drop(u);
                    drop(v);
                    drop(dir);
                },
                BatchSize::PerIteration,
            )
        });
        g.bench_with_input(
            BenchmarkId::new("plain_rusqlite_same_schema", n),
            &n,
            |b, &n| {
                b.iter_batched(
                    || {
                        let dir = tempfile::tempdir().expect("tempdir");
                        let s = Store::create(&dir.path().join("plain.db"), &plain_header())
                            .expect("create");
                        s.write(|tx| {
                            tx.insert_identity(&IdentityRow {
                                uuid: "00000000-0000-4000-8000-000000000001".into(),
                                name: "bench".into(),
                                inbox: "bench@bench.example.com".into(),
                                phone: None,
                                created_dt: "2026-01-01T00:00:00Z".into(),
                                key_epoch: 1,
                                wrapped_key: vec![0; 73],
                            })
                        })
                        .expect("identity");
                        (dir, s, plain_rows(n))
                    },
                    |(dir, s, rows)| {
                        s.write(|tx| {
                            for r in &rows {
                                tx.insert_record(r)?;
                            }
                            Ok(())
                        })
                        .expect("insert");
                        drop(s);
                        drop(dir);
                    },
                    BatchSize::PerIteration,
                )
            },
        );
    }
    g.finish();
}

criterion_group!(benches, store_n);
criterion_main!(benches);
