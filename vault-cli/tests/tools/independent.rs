//! `tests/independent/reader.py`, written from docs/SPEC.md alone with
//! well-known Python packages, opens a vault that `ravi` wrote: with the
//! passphrase (every record of every identity) and with an agent key.
//! `.ci/run` makes a virtual environment and sets RAVI_INDEPENDENT_PYTHON.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::Value;

use crate::common::*;

fn python() -> PathBuf {
    PathBuf::from(std::env::var_os("RAVI_INDEPENDENT_PYTHON").expect("checked by the harness"))
}

fn reader(py: &PathBuf, args: &[&str]) -> Value {
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/independent/reader.py");
    let out = std::process::Command::new(py)
        .arg(script)
        .args(args)
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "reader failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("reader prints JSON")
}

/// uuid -> record body, for one identity of the reader's output.
fn by_uuid(doc: &Value, name: &str) -> BTreeMap<String, Value> {
    doc[name]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["uuid"].as_str().unwrap().to_string(), r["body"].clone()))
        .collect()
}

pub fn python_reader_opens_a_ravi_vault() {
    let py = python();
    let env = Env::new();
    env.run(&[
        "identity",
        "create",
        "--name",
        "alice",
        "--phone",
        "+14155550123",
    ])
    .ok();
    env.run(&["identity", "create", "--name", "bob"]).ok();
    env.run(&["identity", "use", "alice"]).ok();
    let mut expected: BTreeMap<String, BTreeMap<String, Value>> = BTreeMap::new();
    for (who, ident) in [("alice", "alice"), ("bob", "bob")] {
        let run = |args: &[&str]| {
            let mut a = vec!["--identity", ident];
            a.extend_from_slice(args);
            env.run(&a).ok()
        };
        let mut recs = BTreeMap::new();
        for (domain, user) in [
            ("https://mail.example.com/", "u1"),
            ("example.com", "u2"),
            ("other.example.org", "u3"),
        ] {
            let p = run(&[
                "passwords",
                "create",
                domain,
                "--username",
                user,
                "--notes",
                &format!("{who} notes"),
                "--json",
            ])
            .json();
            recs.insert(p["uuid"].as_str().unwrap().to_string(), p);
        }
        for i in 0..3 {
            let s = run(&[
                "secrets",
                "set",
                &format!("{who}_KEY_{i}"),
                &format!("{who}-value-{i} ✓"),
                "--json",
            ])
            .json();
            recs.insert(s["uuid"].as_str().unwrap().to_string(), s);
        }
        let big = "x".repeat(5000);
        let s = run(&["secrets", "set", "BIG", &big, "--json"]).json();
        recs.insert(s["uuid"].as_str().unwrap().to_string(), s);
        for (name, extra) in [
            ("github", vec!["--algorithm", "SHA1"]),
            (
                "bank",
                vec!["--algorithm", "SHA256", "--digits", "8", "--period", "60"],
            ),
            ("steam", vec!["--algorithm", "STEAM"]),
        ] {
            let mut a = vec![
                "totp",
                "add",
                name,
                "--secret",
                "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ",
            ];
            a.extend(extra);
            a.push("--json");
            let mut t = run(&a).json();
            t["code_at_59"] =
                run(&["totp", "code", name, "--at", "59", "--json"]).json()["code"].clone();
            recs.insert(t["uuid"].as_str().unwrap().to_string(), t);
        }
        expected.insert(who.to_string(), recs);
    }
    // a grant, then a rotation: the reader must follow epoch 2 too
    let (key, public) = env.keygen("agent.key");
    env.run(&["identity", "grant", "alice", "--to", &public])
        .ok();
    env.run(&["identity", "rotate", "alice"]).ok();
    // bob rotated in chunks (SPEC §4e): his tree is in slot 1 since
    env.run(&["identity", "rotate", "bob", "--chunk-records", "1"])
        .ok();
    // alice left in a rotation's window (as a rotation stopped after its
    // switch leaves her), then written to: records under epochs 2 and 3
    {
        let vault = vault_core::Vault::open(&env.vault).unwrap();
        let owner = vault
            .unlock(&vault_core::Passphrase::new(PASSPHRASE.to_string()).unwrap())
            .unwrap();
        let window = vault_core::RotateOptions {
            chunk_records: Some(1),
            ..vault_core::RotateOptions::default()
        };
        let r = owner.open_rotation_window("alice", &window).unwrap();
        assert_eq!((r.key_epoch, r.records_resealed), (3, 0));
    }
    let s = env
        .run(&[
            "--identity",
            "alice",
            "secrets",
            "set",
            "IN_WINDOW",
            "w",
            "--json",
        ])
        .ok()
        .json();
    expected
        .get_mut("alice")
        .unwrap()
        .insert(s["uuid"].as_str().unwrap().to_string(), s);
    let pass = env.dir.path().join("passphrase");
    std::fs::write(&pass, format!("{PASSPHRASE}\n")).unwrap();

    let vault = env.vault.to_str().unwrap().to_string();
    let owner = env.run(&["vault", "info", "--json"]).ok().json()["owner_public_key"]
        .as_str()
        .unwrap()
        .to_string();
    let doc = reader(
        &py,
        &[
            &vault,
            "--passphrase-file",
            pass.to_str().unwrap(),
            "--owner-key",
            &owner,
        ],
    );
    let epochs: Vec<u64> = doc["alice"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["key_epoch"].as_u64().unwrap())
        .collect();
    assert!(epochs.contains(&2) && epochs.contains(&3), "{epochs:?}");
    for who in ["alice", "bob"] {
        let got = by_uuid(&doc, who);
        let want = &expected[who];
        assert_eq!(got.len(), want.len(), "{who}: record count");
        for (uuid, w) in want {
            let g = &got[uuid];
            for field in [
                "domain",
                "username",
                "password",
                "notes",
                "key",
                "value",
                "name",
                "algorithm",
                "digits",
                "period",
                "code_at_59",
                "created_dt",
            ] {
                if w.get(field).is_some() {
                    assert_eq!(g[field], w[field], "{who} {uuid} {field}");
                }
            }
        }
    }
    let agent_doc = reader(
        &py,
        &[
            &vault,
            "--agent-key-file",
            key.to_str().unwrap(),
            "--identity",
            "alice",
        ],
    );
    assert_eq!(by_uuid(&agent_doc, "alice"), by_uuid(&doc, "alice"));

    // The reader refuses what ravi refuses: an edited inbox, a forged
    // grant signature, another owner key.
    let refused = |args: &[&str]| {
        let out = std::process::Command::new(&py)
            .arg(
                std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("../tests/independent/reader.py"),
            )
            .args(args)
            .output()
            .unwrap();
        assert!(!out.status.success(), "the reader accepted {args:?}");
    };
    let other_owner = "raviowner1p0h0t20x08n28cf5lcncx7llxtrukh6agn4qn09su4pt444ycrxq26846w";
    refused(&[
        &vault,
        "--passphrase-file",
        pass.to_str().unwrap(),
        "--owner-key",
        other_owner,
    ]);
    let pass_arg = pass.to_str().unwrap();
    // a deleted record: the head's commitment no longer matches
    type Row = (String, String, i64, Vec<u8>, i64, Vec<u8>);
    let saved: Row = env
        .db()
        .query_row(
            "SELECT uuid, identity_uuid, kind, blind_index, key_epoch, ciphertext FROM records LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)),
        )
        .unwrap();
    env.db()
        .execute("DELETE FROM records WHERE uuid = ?1", [&saved.0])
        .unwrap();
    refused(&[&vault, "--passphrase-file", pass_arg]);
    env.db()
        .execute(
            "INSERT INTO records VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            rusqlite::params![saved.0, saved.1, saved.2, saved.3, saved.4, saved.5],
        )
        .unwrap();
    reader(&py, &[&vault, "--passphrase-file", pass_arg]);
    // a deleted grant: the vault head still lists it
    let saved_grant: Vec<rusqlite::types::Value> = env
        .db()
        .query_row("SELECT * FROM grants", [], |r| {
            (0..9).map(|i| r.get(i)).collect()
        })
        .unwrap();
    env.db().execute("DELETE FROM grants", []).unwrap();
    refused(&[&vault, "--passphrase-file", pass_arg]);
    env.db()
        .execute(
            "INSERT INTO grants VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            rusqlite::params_from_iter(saved_grant),
        )
        .unwrap();
    reader(&py, &[&vault, "--passphrase-file", pass_arg]);
    env.db()
        .execute(
            "UPDATE identities SET inbox = 'evil@example.com' WHERE name = 'bob'",
            [],
        )
        .unwrap();
    refused(&[&vault, "--passphrase-file", pass_arg]);
}
