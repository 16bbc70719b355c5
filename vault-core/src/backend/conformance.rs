//! The backend conformance suite, written once and run against every
//! backend (see the `tests` module of each backend): reads, every
//! precondition, atomicity of rejected and failed batches, and
//! serialisation of concurrent conflicting commits.

// A test suite: a failed read or commit is a failed case.
#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

use super::{
    Backend, Batch, CommitError, Conflict, GrantRow, IdentityRow, Precondition, RecordQuery,
    RecordRow, SessionRow, VaultRow, Write,
};

// Ids are uuids (session ids hex), as a remote store requires.
const I1: &str = "10000000-0000-4000-8000-000000000001";
const I2: &str = "10000000-0000-4000-8000-000000000002";
const I3: &str = "10000000-0000-4000-8000-000000000003";
const GHOST: &str = "1fffffff-0000-4000-8000-000000000000";
const G1: &str = "30000000-0000-4000-8000-000000000001";
const G2: &str = "30000000-0000-4000-8000-000000000002";
const S1: &str = "5e55100000000001";
const S2: &str = "5e55100000000002";
const S3: &str = "5e55100000000003";
const R1: &str = "20000000-0000-4000-8000-000000000001";
const R2: &str = "20000000-0000-4000-8000-000000000002";
const R3: &str = "20000000-0000-4000-8000-000000000003";
const R4: &str = "20000000-0000-4000-8000-000000000004";
const R5: &str = "20000000-0000-4000-8000-000000000005";
const R6: &str = "20000000-0000-4000-8000-000000000006";
const R7: &str = "20000000-0000-4000-8000-000000000007";
const R8: &str = "20000000-0000-4000-8000-000000000008";
const R9: &str = "20000000-0000-4000-8000-000000000009";

/// Opens handles on one store: each call is a new handle (a new connection
/// for a file), as separate processes would have.
pub trait Harness: Sync {
    /// A new handle on the store.
    fn open(&self) -> Box<dyn Backend + Send>;
}

/// The header row every case starts from.
#[must_use]
pub fn header() -> VaultRow {
    VaultRow {
        vault_id: "00000000-0000-4000-8000-000000000001".into(),
        kdf_memory_kib: 1024,
        kdf_iterations: 1,
        kdf_parallelism: 1,
        kdf_salt: vec![1; 16],
        wrapped_root_key: vec![2; 72],
        inbox_domain: "example.com".into(),
        created_dt: "2026-01-01T00:00:00Z".into(),
        owner_public_key: Some(vec![7; 32]),
        wrapped_owner_key: Some(vec![8; 72]),
        signature: Some(vec![9; 64]),
        vault_head: None,
    }
}

fn identity(uuid: &str, name: &str) -> IdentityRow {
    IdentityRow {
        uuid: uuid.into(),
        name: name.into(),
        inbox: format!("{}@example.com", name.to_ascii_lowercase()),
        phone: None,
        created_dt: format!("2026-01-01T00:00:0{}Z", uuid.len() % 10),
        key_epoch: 1,
        wrapped_key: vec![3; 72],
        signature: Some(vec![4; 64]),
        head: None,
    }
}

fn record(uuid: &str, identity: &str, kind: u8, index: u8) -> RecordRow {
    RecordRow {
        uuid: uuid.into(),
        identity_uuid: identity.into(),
        kind,
        blind_index: vec![index; 32],
        key_epoch: 1,
        ciphertext: format!("ct-{uuid}").into_bytes(),
    }
}

fn grant(uuid: &str, identity: &str, recipient: u8) -> GrantRow {
    GrantRow {
        uuid: uuid.into(),
        identity_uuid: identity.into(),
        recipient: vec![recipient; 32],
        label: Some("l".into()),
        key_epoch: 1,
        ephemeral_public: vec![5; 32],
        wrapped_key: vec![6; 72],
        created_dt: format!("2026-01-01T00:00:0{recipient}Z"),
        signature: Some(vec![recipient; 64]),
    }
}

fn header_unchanged(wrapped_root_key: Vec<u8>, signature: Option<Vec<u8>>) -> Precondition {
    Precondition::HeaderUnchanged {
        wrapped_root_key,
        signature,
    }
}

fn batch(pre: Vec<Precondition>, writes: Vec<Write>) -> Batch {
    Batch {
        preconditions: pre,
        writes,
    }
}

fn conflict(r: Result<super::Changes, CommitError>) -> Conflict {
    match r {
        Err(CommitError::Conflict(c)) => c,
        other => panic!("expected a conflict, got {other:?}"),
    }
}

/// Everything a test can observe of the store, for before/after checks.
fn snapshot(b: &dyn Backend) -> String {
    let mut s = format!("{:?}\n", b.header().unwrap());
    for i in b.identities().unwrap() {
        s += &format!("{i:?}\n{:?}\n", b.grants(&i.uuid).unwrap());
        s += &format!(
            "{:?}\n",
            b.records(&i.uuid, &RecordQuery::default()).unwrap()
        );
    }
    s
}

/// Two identities with a few records and a grant.
fn seed(b: &dyn Backend) {
    b.commit(&batch(
        vec![],
        vec![
            Write::InsertIdentity(identity(I1, "Alice")),
            Write::InsertIdentity(identity(I2, "bob")),
            Write::InsertRecord(record(R1, I1, 2, 1)),
            Write::InsertRecord(record(R2, I1, 2, 2)),
            Write::InsertRecord(record(R3, I1, 1, 3)),
            Write::InsertRecord(record(R4, I1, 1, 3)),
            Write::InsertRecord(record(R5, I2, 2, 1)),
            Write::InsertGrant(grant(G1, I1, 9)),
        ],
    ))
    .unwrap();
}

/// One case of the suite, on a fresh store.
type Case = fn(&dyn Harness);

/// Runs every case, each on a fresh store that `make` gives, already
/// holding [`header`].
///
/// # Panics
/// On the first case that fails.
pub fn run_all<H: Harness>(make: &dyn Fn() -> H) {
    let cases: &[(&str, Case)] = &[
        ("reads", reads),
        ("uniqueness", uniqueness),
        ("preconditions", preconditions),
        (
            "rejected_batch_applies_nothing",
            rejected_batch_applies_nothing,
        ),
        // The failure is injected in the committing process: only a
        // backend in this process can take it.
        #[cfg(test)]
        (
            "injected_failure_applies_nothing",
            injected_failure_applies_nothing,
        ),
        ("cascade_and_sessions", cascade_and_sessions),
        ("exclusive_commit", exclusive_commit),
        (
            "concurrent_conflicting_commits",
            concurrent_conflicting_commits,
        ),
    ];
    for (name, case) in cases {
        eprintln!("conformance: {name}");
        case(&make());
    }
}

fn reads(h: &dyn Harness) {
    let b = h.open();
    assert_eq!(b.header().unwrap(), header());
    seed(b.as_ref());
    let b2 = h.open();
    assert_eq!(b2.identity(I1).unwrap().unwrap().name, "Alice");
    assert_eq!(b2.identity_by_name("ALICE").unwrap().unwrap().uuid, I1);
    assert!(b2.identity("nope").unwrap().is_none());
    assert_eq!(b2.identities().unwrap().len(), 2);
    assert_eq!(b2.record(I1, 2, R1).unwrap().unwrap(), record(R1, I1, 2, 1));
    assert!(b2.record(I1, 1, R1).unwrap().is_none(), "kind is checked");
    assert!(
        b2.record(I2, 2, R1).unwrap().is_none(),
        "identity is checked"
    );
    let by_index = b2.records_by_index(I1, 1, &[3; 32]).unwrap();
    assert_eq!(
        by_index.iter().map(|r| r.uuid.as_str()).collect::<Vec<_>>(),
        [R3, R4]
    );
    let all = b2.records(I1, &RecordQuery::default()).unwrap();
    assert_eq!(all.len(), 4);
    let secrets = RecordQuery {
        kind: Some(2),
        ..Default::default()
    };
    assert_eq!(b2.records(I1, &secrets).unwrap().len(), 2);
    // Paging visits every record once, in uuid order.
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = b2
            .records(
                I1,
                &RecordQuery {
                    kind: None,
                    after: after.clone(),
                    limit: Some(3),
                    bucket: None,
                },
            )
            .unwrap();
        let Some(last) = page.last() else { break };
        after = Some(last.uuid.clone());
        seen.extend(page.into_iter().map(|r| r.uuid));
    }
    assert_eq!(seen, [R1, R2, R3, R4]);
    // a bucket: the records whose uuid starts with these 16 bits
    let b = h.open();
    b.commit(&batch(
        vec![],
        vec![
            Write::InsertRecord(record("abcd0000-0000-4000-8000-000000000001", I1, 2, 20)),
            Write::InsertRecord(record("abcd0000-0000-4000-8000-000000000002", I1, 2, 21)),
            Write::InsertRecord(record("abce0000-0000-4000-8000-000000000001", I1, 2, 22)),
            Write::InsertRecord(record("ffff0000-0000-4000-8000-000000000001", I1, 2, 23)),
        ],
    ))
    .unwrap();
    let in_bucket = |bucket| {
        b.records(
            I1,
            &RecordQuery {
                bucket: Some(bucket),
                ..Default::default()
            },
        )
        .unwrap()
        .len()
    };
    assert_eq!(
        (
            in_bucket(0xabcd),
            in_bucket(0xabce),
            in_bucket(0xffff),
            in_bucket(0)
        ),
        (2, 1, 1, 0)
    );
    // tree nodes: set, read some or all, delete, cascade
    let nodes = |pairs: Vec<(u32, Option<Vec<u8>>)>| Write::SetTreeNodes {
        identity_uuid: I1.into(),
        nodes: pairs,
    };
    b.commit(&batch(
        vec![],
        vec![nodes(vec![
            (1, Some(vec![1; 32])),
            (2, Some(vec![2; 32])),
            (3, Some(vec![3; 32])),
        ])],
    ))
    .unwrap();
    assert_eq!(b.tree_nodes(I1, &[1, 3, 9]).unwrap().len(), 2);
    b.commit(&batch(vec![], vec![nodes(vec![(3, None)])]))
        .unwrap();
    assert_eq!(
        b.tree_nodes(I1, &[]).unwrap(),
        [(1, vec![1; 32]), (2, vec![2; 32])]
    );
    assert!(b.tree_nodes(I2, &[]).unwrap().is_empty());
    b.commit(&batch(vec![], vec![Write::ClearTree(I1.into())]))
        .unwrap();
    assert!(b.tree_nodes(I1, &[]).unwrap().is_empty());
    assert_eq!(b2.grants(I1).unwrap(), [grant(G1, I1, 9)]);
    assert!(b2.grant_for(I1, &[9; 32]).unwrap().is_some());
    assert!(b2.grant_for(I2, &[9; 32]).unwrap().is_none());
}

fn uniqueness(h: &dyn Harness) {
    let b = h.open();
    seed(b.as_ref());
    let dup_name = identity(I3, "ALICE");
    assert_eq!(
        conflict(b.commit(&batch(vec![], vec![Write::InsertIdentity(dup_name)]))),
        Conflict::Duplicate(0)
    );
    // A unique kind's name is taken; passwords (kind 1) may share a name.
    assert_eq!(
        conflict(b.commit(&batch(
            vec![],
            vec![
                Write::InsertRecord(record(R6, I1, 1, 3)),
                Write::InsertRecord(record(R7, I1, 2, 1)),
            ]
        ))),
        Conflict::Duplicate(1)
    );
    assert_eq!(
        conflict(b.commit(&batch(vec![], vec![Write::InsertGrant(grant(G2, I1, 9))]))),
        Conflict::Duplicate(0)
    );
    assert_eq!(
        conflict(b.commit(&batch(
            vec![],
            vec![Write::UpdateRecord(record("nope", I1, 2, 7))]
        ))),
        Conflict::Missing(0)
    );
    assert_eq!(
        conflict(b.commit(&batch(
            vec![],
            vec![Write::InsertRecord(record(R9, GHOST, 2, 7))]
        ))),
        Conflict::Missing(0)
    );
    // Renaming a record onto a taken name is a duplicate too.
    assert_eq!(
        conflict(b.commit(&batch(
            vec![],
            vec![Write::UpdateRecord(record(R2, I1, 2, 1))]
        ))),
        Conflict::Duplicate(0)
    );
}

fn preconditions(h: &dyn Harness) {
    let b = h.open();
    seed(b.as_ref());
    let r1 = record(R1, I1, 2, 1);
    let cases: Vec<(Precondition, bool)> = vec![
        (header_unchanged(vec![2; 72], Some(vec![9; 64])), true),
        (header_unchanged(vec![0; 72], Some(vec![9; 64])), false),
        (header_unchanged(vec![2; 72], None), false),
        (
            Precondition::IdentityEpoch {
                identity_uuid: I1.into(),
                key_epoch: 1,
            },
            true,
        ),
        (
            Precondition::IdentityEpoch {
                identity_uuid: I1.into(),
                key_epoch: 2,
            },
            false,
        ),
        (
            Precondition::IdentityEpoch {
                identity_uuid: GHOST.into(),
                key_epoch: 1,
            },
            false,
        ),
        (
            Precondition::RecordUnchanged {
                uuid: R1.into(),
                ciphertext: r1.ciphertext.clone(),
            },
            true,
        ),
        (
            Precondition::RecordUnchanged {
                uuid: R1.into(),
                ciphertext: b"other".to_vec(),
            },
            false,
        ),
        (
            Precondition::NameFree {
                identity_uuid: I1.into(),
                kind: 2,
                blind_index: vec![7; 32],
            },
            true,
        ),
        (
            Precondition::NameFree {
                identity_uuid: I1.into(),
                kind: 2,
                blind_index: vec![1; 32],
            },
            false,
        ),
        (
            Precondition::IdentityHead {
                identity_uuid: I1.into(),
                head: None,
            },
            true,
        ),
        (
            Precondition::IdentityHead {
                identity_uuid: I1.into(),
                head: Some(vec![1]),
            },
            false,
        ),
        (Precondition::VaultHead(None), true),
        (Precondition::VaultHead(Some(vec![1])), false),
        (Precondition::IdentityCount(2), true),
        (Precondition::IdentityCount(3), false),
        (
            Precondition::RecordCount {
                identity_uuid: I1.into(),
                count: 4,
            },
            true,
        ),
        (
            Precondition::RecordCount {
                identity_uuid: I1.into(),
                count: 3,
            },
            false,
        ),
    ];
    for (p, expected) in cases {
        let got = b.commit(&batch(vec![p.clone()], vec![]));
        match (expected, got) {
            (true, Ok(_)) => {}
            (false, Err(CommitError::Conflict(Conflict::Precondition(0)))) => {}
            (e, g) => panic!("{p:?}: expected holds={e}, got {g:?}"),
        }
    }
    // A header change guarded by the header's key.
    let mut new_header = header();
    new_header.wrapped_root_key = vec![8; 72];
    new_header.kdf_salt = vec![9; 16];
    let change = batch(
        vec![header_unchanged(vec![2; 72], Some(vec![9; 64]))],
        vec![Write::SetHeaderKey(new_header.clone())],
    );
    b.commit(&change).unwrap();
    assert_eq!(h.open().header().unwrap(), new_header);
    b.commit(&batch(
        vec![],
        vec![Write::SetIdentitySignature {
            uuid: I2.into(),
            signature: vec![1; 64],
        }],
    ))
    .unwrap();
    assert_eq!(
        h.open().identity(I2).unwrap().unwrap().signature,
        Some(vec![1; 64])
    );
    assert_eq!(conflict(b.commit(&change)), Conflict::Precondition(0));
    let set_head = |head: Vec<u8>| Write::SetIdentityHead {
        uuid: I2.into(),
        head,
    };
    b.commit(&batch(vec![], vec![set_head(vec![5; 76])]))
        .unwrap();
    let guarded = batch(
        vec![Precondition::IdentityHead {
            identity_uuid: I2.into(),
            head: Some(vec![5; 76]),
        }],
        vec![set_head(vec![6; 76])],
    );
    b.commit(&guarded).unwrap();
    assert_eq!(conflict(b.commit(&guarded)), Conflict::Precondition(0));
    assert_eq!(
        h.open().identity(I2).unwrap().unwrap().head,
        Some(vec![6; 76])
    );
    let vh = batch(
        vec![Precondition::VaultHead(None)],
        vec![Write::SetVaultHead(vec![7; 100])],
    );
    b.commit(&vh).unwrap();
    assert_eq!(conflict(b.commit(&vh)), Conflict::Precondition(0));
    assert_eq!(h.open().header().unwrap().vault_head, Some(vec![7; 100]));
}

fn rejected_batch_applies_nothing(h: &dyn Harness) {
    let b = h.open();
    seed(b.as_ref());
    let before = snapshot(b.as_ref());
    let writes = vec![
        Write::InsertIdentity(identity(I3, "carol")),
        Write::InsertRecord(record(R8, I3, 2, 1)),
        Write::DeleteRecord {
            identity_uuid: I1.into(),
            kind: 2,
            uuid: R1.into(),
        },
        Write::SetIdentityKey {
            uuid: I1.into(),
            key_epoch: 2,
            wrapped_key: vec![4; 72],
        },
    ];
    // The last precondition fails: nothing is written.
    let pre = vec![
        Precondition::IdentityEpoch {
            identity_uuid: I1.into(),
            key_epoch: 1,
        },
        Precondition::RecordCount {
            identity_uuid: I1.into(),
            count: 99,
        },
    ];
    assert_eq!(
        conflict(b.commit(&batch(pre, writes.clone()))),
        Conflict::Precondition(1)
    );
    assert_eq!(snapshot(h.open().as_ref()), before);
    // A write that conflicts late undoes the earlier writes.
    let mut late = writes;
    late.push(Write::InsertRecord(record(R9, I2, 2, 1)));
    assert_eq!(
        conflict(b.commit(&batch(vec![], late))),
        Conflict::Duplicate(4)
    );
    assert_eq!(snapshot(h.open().as_ref()), before);
}

/// `commit_exclusive` builds from what the store holds and commits like
/// `commit`: preconditions checked, all or nothing; a build that fails
/// commits nothing and reports the build's error.
fn exclusive_commit(h: &dyn Harness) {
    let b = h.open();
    seed(b.as_ref());
    let before = snapshot(b.as_ref());
    let failed = b.commit_exclusive(&mut || Err(crate::Error::Conflict("no".into())));
    assert!(matches!(
        failed,
        Err(CommitError::Failed(crate::Error::Conflict(_)))
    ));
    let lost = b.commit_exclusive(&mut || {
        let n = b.records(I1, &RecordQuery::default())?.len();
        Ok(batch(
            vec![Precondition::RecordCount {
                identity_uuid: I1.into(),
                count: u64::try_from(n).unwrap_or(0) + 1,
            }],
            vec![Write::InsertRecord(record(R8, I1, 2, 7))],
        ))
    });
    assert_eq!(conflict(lost), Conflict::Precondition(0));
    assert_eq!(snapshot(h.open().as_ref()), before);
    let mut builds = 0;
    b.commit_exclusive(&mut || {
        builds += 1;
        let n = b.records(I1, &RecordQuery::default())?.len();
        Ok(batch(
            vec![Precondition::RecordCount {
                identity_uuid: I1.into(),
                count: u64::try_from(n).unwrap_or(0),
            }],
            vec![Write::InsertRecord(record(R8, I1, 2, 7))],
        ))
    })
    .unwrap();
    assert_eq!(builds, 1);
    let after = h.open();
    assert_eq!(after.records(I1, &RecordQuery::default()).unwrap().len(), 5);
}

#[cfg(test)]
fn injected_failure_applies_nothing(h: &dyn Harness) {
    let b = h.open();
    seed(b.as_ref());
    let before = snapshot(b.as_ref());
    super::FAIL_AFTER_WRITES.with(|f| f.set(Some(2)));
    let r = b.commit(&batch(
        vec![],
        vec![
            Write::UpdateRecord(RecordRow {
                ciphertext: b"new".to_vec(),
                ..record(R1, I1, 2, 1)
            }),
            Write::DeleteIdentity(I2.into()),
            Write::InsertRecord(record(R8, I1, 2, 8)),
        ],
    ));
    super::FAIL_AFTER_WRITES.with(|f| f.set(None));
    assert!(matches!(r, Err(CommitError::Failed(_))), "{r:?}");
    assert_eq!(snapshot(h.open().as_ref()), before);
    // The store still works afterwards.
    b.commit(&batch(
        vec![],
        vec![Write::InsertRecord(record(R8, I1, 2, 8))],
    ))
    .unwrap();
}

fn cascade_and_sessions(h: &dyn Harness) {
    let b = h.open();
    seed(b.as_ref());
    let changes = b
        .commit(&batch(
            vec![],
            vec![
                Write::DeleteIdentity(I1.into()),
                Write::DeleteIdentity(I1.into()),
            ],
        ))
        .unwrap();
    assert_eq!(changes, [1, 0]);
    assert!(b.records(I1, &RecordQuery::default()).unwrap().is_empty());
    assert!(b.grants(I1).unwrap().is_empty());
    assert_eq!(b.records(I2, &RecordQuery::default()).unwrap().len(), 1);
    let session = |id: &str, expires_at| SessionRow {
        session_id: id.into(),
        expires_at,
        created_dt: "t".into(),
        wrapped_root_key: vec![1; 72],
    };
    b.commit(&batch(
        vec![],
        vec![
            Write::InsertSession(session(S1, 100)),
            Write::InsertSession(session(S2, 200)),
            Write::InsertSession(session(S3, 300)),
        ],
    ))
    .unwrap();
    assert_eq!(h.open().session(S2).unwrap().unwrap(), session(S2, 200));
    let changes = b
        .commit(&batch(
            vec![],
            vec![
                Write::DeleteExpiredSessions(100),
                Write::DeleteSessions(Some(S2.into())),
            ],
        ))
        .unwrap();
    assert_eq!(changes, [1, 1]);
    assert!(b.session(S1).unwrap().is_none());
    let changes = b
        .commit(&batch(vec![], vec![Write::DeleteSessions(None)]))
        .unwrap();
    assert_eq!(changes, [1]);
}

/// 8 threads, each with its own handle, increment one counter record by
/// read-modify-write guarded by `RecordUnchanged`, retrying on conflict:
/// the final count proves that commits serialise and none is lost.
fn concurrent_conflicting_commits(h: &dyn Harness) {
    const THREADS: u64 = 8;
    const EACH: u64 = 25;
    let b = h.open();
    seed(b.as_ref());
    let counter = |n: u64| RecordRow {
        ciphertext: n.to_be_bytes().to_vec(),
        ..record(R1, I1, 2, 1)
    };
    b.commit(&batch(vec![], vec![Write::UpdateRecord(counter(0))]))
        .unwrap();
    let conflicts = std::sync::atomic::AtomicU64::new(0);
    std::thread::scope(|s| {
        for _ in 0..THREADS {
            let handle = h.open();
            let conflicts = &conflicts;
            s.spawn(move || {
                for _ in 0..EACH {
                    loop {
                        let row = handle.record(I1, 2, R1).unwrap().unwrap();
                        let n = u64::from_be_bytes(row.ciphertext.clone().try_into().unwrap());
                        let r = handle.commit(&batch(
                            vec![Precondition::RecordUnchanged {
                                uuid: R1.into(),
                                ciphertext: row.ciphertext,
                            }],
                            vec![Write::UpdateRecord(counter(n + 1))],
                        ));
                        match r {
                            Ok(_) => break,
                            Err(CommitError::Conflict(Conflict::Precondition(0))) => {
                                conflicts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                                std::thread::yield_now();
                            }
                            Err(e) => panic!("{e}"),
                        }
                    }
                }
            });
        }
    });
    let row = h.open().record(I1, 2, R1).unwrap().unwrap();
    assert_eq!(
        u64::from_be_bytes(row.ciphertext.try_into().unwrap()),
        THREADS * EACH
    );
    eprintln!(
        "conformance: {} conflicts retried",
        conflicts.load(std::sync::atomic::Ordering::Relaxed)
    );
}
