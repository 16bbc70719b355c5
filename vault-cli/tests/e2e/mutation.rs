//! A mutation harness for the untrusted store. A history of operations over
//! two identities and one agent is scripted, keeping every intermediate
//! state of the rows. Then every single-row change an attacker can make is
//! applied to the final vault — restore any row from any earlier state,
//! delete any row, duplicate any row — and reads run as the owner and as
//! the agent. Each must print exactly what it printed on the untouched
//! vault, or exit 5. Never stale or foreign data with exit 0.
//!
//! The gets read records written several times (A1, the password,
//! BY_AGENT), so every older version of them is among the rows put back.

use std::collections::BTreeSet;
use std::path::Path;

use rusqlite::types::Value;

use crate::common::*;

/// The tables an attacker can edit, with their primary key column.
const TABLES: &[(&str, &str)] = &[
    ("vault", "id"),
    ("identities", "uuid"),
    ("records", "uuid"),
    ("grants", "uuid"),
];

type Row = Vec<(String, Value)>;

fn rows(db: &rusqlite::Connection, table: &str) -> Vec<Row> {
    let mut st = db.prepare(&format!("SELECT * FROM {table}")).unwrap();
    let names: Vec<String> = st.column_names().map(str::to_string).collect();
    st.query_map([], |r| {
        Ok(names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), r.get::<_, Value>(i).unwrap()))
            .collect())
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

fn pk<'a>(row: &'a Row, key: &str) -> &'a Value {
    &row.iter().find(|(n, _)| n == key).unwrap().1
}

/// One change to the store.
#[derive(Debug)]
enum Mutation {
    Put(&'static str, Row),
    Delete(&'static str, &'static str, Value),
    Duplicate(&'static str, &'static str, Row),
}

fn apply(db: &rusqlite::Connection, m: &Mutation) -> bool {
    let insert = |table: &str, row: &Row, replace: bool| {
        let cols: Vec<&str> = row.iter().map(|(n, _)| n.as_str()).collect();
        let marks: Vec<String> = (1..=cols.len()).map(|i| format!("?{i}")).collect();
        let sql = format!(
            "INSERT {} INTO {table} ({}) VALUES ({})",
            if replace { "OR REPLACE" } else { "" },
            cols.join(", "),
            marks.join(", ")
        );
        let vals: Vec<&Value> = row.iter().map(|(_, v)| v).collect();
        db.execute(&sql, rusqlite::params_from_iter(vals)).is_ok()
    };
    match m {
        Mutation::Put(table, row) => {
            // Put the old row back in place; cascades are off so that only
            // this one row changes.
            insert(table, row, true)
        }
        Mutation::Delete(table, key, v) => db
            .execute(&format!("DELETE FROM {table} WHERE {key} = ?1"), [v])
            .is_ok_and(|n| n == 1),
        Mutation::Duplicate(table, key, row) => {
            let mut copy = row.clone();
            for (n, v) in copy.iter_mut() {
                if n == key {
                    *v = Value::Text("00000000-0000-4000-8000-00000000d0d0".into());
                }
            }
            insert(table, &copy, false)
        }
    }
}

struct Reader {
    name: &'static str,
    args: Vec<String>,
    agent: bool,
}

fn run_reader(
    env: &Env,
    vault: &Path,
    cfg: &Path,
    agent_cfg: &Path,
    key: &Path,
    r: &Reader,
) -> Run {
    let mut c = env.command();
    c.env("RAVI_VAULT", vault);
    if r.agent {
        c.env_remove("RAVI_PASSPHRASE")
            .env("RAVI_CONFIG_DIR", agent_cfg)
            .env("RAVI_AGENT_KEY_FILE", key);
    } else {
        c.env("RAVI_CONFIG_DIR", cfg);
    }
    c.args(&r.args);
    run_command(&mut c)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

#[test]
fn every_single_row_change_is_current_data_or_exit_5() {
    let (env, alice) = Env::with_identity("alice");
    let alice = alice["uuid"].as_str().unwrap().to_string();
    let (key, public) = env.keygen("a.key");
    let agent_cfg = env.dir.path().join("agent-cfg");
    let as_agent = |args: &[&str]| {
        let mut c = env.command();
        c.env_remove("RAVI_PASSPHRASE")
            .env("RAVI_CONFIG_DIR", &agent_cfg)
            .env("RAVI_AGENT_KEY_FILE", &key)
            .args(["--identity", &alice])
            .args(args);
        run_command(&mut c)
    };
    let mut history: Vec<Vec<(&'static str, Vec<Row>)>> = Vec::new();
    let mut keep = |env: &Env| {
        let db = env.db();
        history.push(TABLES.iter().map(|(t, _)| (*t, rows(&db, t))).collect());
    };
    // About 20 operations over two identities and one agent.
    let ops: Vec<Vec<&str>> = vec![
        vec!["secrets", "set", "A1", "a1-v1"],
        vec!["secrets", "set", "A2", "a2-v1"],
        vec![
            "passwords",
            "create",
            "example.com",
            "--username",
            "u",
            "--password",
            "p1",
        ],
        vec!["identity", "create", "--name", "bob"],
        vec!["--identity", "bob", "secrets", "set", "B1", "b1-v1"],
        vec!["identity", "grant", "alice", "--to", &public],
        vec!["secrets", "set", "A1", "a1-v2"],
        vec![
            "totp",
            "add",
            "svc",
            "--secret",
            "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ",
        ],
        vec!["secrets", "delete", "A2"],
        vec!["--identity", "bob", "secrets", "set", "B2", "b2-v1"],
        vec!["passwords", "edit", "example.com", "--password", "p2"],
        vec!["identity", "rotate", "alice"],
        vec!["secrets", "set", "A3", "a3-v1"],
        vec!["--identity", "bob", "secrets", "set", "B1", "b1-v2"],
        vec!["secrets", "set", "A1", "a1-v3"],
    ];
    keep(&env);
    for (i, op) in ops.iter().enumerate() {
        env.run(op).ok();
        keep(&env);
        if i == 6 {
            as_agent(&["secrets", "set", "BY_AGENT", "agent-v1"]).ok();
            keep(&env);
        }
    }
    as_agent(&["secrets", "set", "BY_AGENT", "agent-v2"]).ok();
    keep(&env);
    let readers = [
        Reader {
            name: "owner secrets",
            args: vec!["secrets".into(), "list".into(), "--json".into()],
            agent: false,
        },
        Reader {
            name: "owner get A1",
            args: vec!["secrets".into(), "get".into(), "A1".into()],
            agent: false,
        },
        Reader {
            name: "owner get password",
            args: vec!["passwords".into(), "get".into(), "example.com".into()],
            agent: false,
        },
        Reader {
            name: "agent get BY_AGENT",
            args: vec![
                "--identity".into(),
                alice.clone(),
                "secrets".into(),
                "get".into(),
                "BY_AGENT".into(),
            ],
            agent: true,
        },
        Reader {
            name: "owner passwords",
            args: vec!["passwords".into(), "list".into(), "--json".into()],
            agent: false,
        },
        Reader {
            name: "owner identities",
            args: vec!["identity".into(), "list".into(), "--json".into()],
            agent: false,
        },
        Reader {
            name: "owner bob",
            args: vec![
                "--identity".into(),
                "bob".into(),
                "secrets".into(),
                "list".into(),
                "--json".into(),
            ],
            agent: false,
        },
        Reader {
            name: "owner email",
            args: vec!["get".into(), "email".into()],
            agent: false,
        },
        Reader {
            name: "agent secrets",
            args: vec![
                "--identity".into(),
                alice.clone(),
                "secrets".into(),
                "list".into(),
                "--json".into(),
            ],
            agent: true,
        },
        Reader {
            name: "agent totp",
            args: vec![
                "--identity".into(),
                alice.clone(),
                "totp".into(),
                "list".into(),
                "--json".into(),
            ],
            agent: true,
        },
    ];
    // The untouched final vault: what each reader must print.
    let base = env.dir.path().join("final.db");
    env.db()
        .execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
        .unwrap();
    std::fs::copy(&env.vault, &base).unwrap();
    let expected: Vec<String> = readers
        .iter()
        .map(|r| {
            run_reader(&env, &env.vault, &env.config_dir, &agent_cfg, &key, r)
                .ok()
                .stdout
        })
        .collect();
    let final_rows = history.last().unwrap().clone();

    // Every single-row change.
    let mut mutations = Vec::new();
    for (table, key) in TABLES {
        let current: Vec<&Row> = final_rows
            .iter()
            .find(|(t, _)| t == table)
            .unwrap()
            .1
            .iter()
            .collect();
        let mut seen = BTreeSet::new();
        for state in &history {
            for row in &state.iter().find(|(t, _)| t == table).unwrap().1 {
                if !current.contains(&row) && seen.insert(format!("{row:?}")) {
                    mutations.push(Mutation::Put(table, row.clone()));
                }
            }
        }
        for row in &current {
            mutations.push(Mutation::Delete(table, key, pk(row, key).clone()));
            mutations.push(Mutation::Duplicate(table, key, (*row).clone()));
        }
    }
    let (mut applied, mut cases, mut refused) = (0, 0, 0);
    let work = env.dir.path().join("mut");
    for (i, m) in mutations.iter().enumerate() {
        let dir = work.join(i.to_string());
        std::fs::create_dir_all(&dir).unwrap();
        let vault = dir.join("v.db");
        std::fs::copy(&base, &vault).unwrap();
        let db = rusqlite::Connection::open(&vault).unwrap();
        db.execute_batch("PRAGMA foreign_keys = OFF;").unwrap();
        let ok = apply(&db, m);
        drop(db);
        if !ok {
            continue;
        }
        applied += 1;
        // each client keeps what it had seen of the final vault
        let (cfg, acfg) = (dir.join("cfg"), dir.join("agent-cfg"));
        copy_dir(&env.config_dir, &cfg);
        copy_dir(&agent_cfg, &acfg);
        // the pins remember the vault by its path: the copy is the same vault
        let _ = std::fs::remove_dir_all(cfg.join("pins"));
        let _ = std::fs::remove_dir_all(acfg.join("pins"));
        for (r, want) in readers.iter().zip(&expected) {
            cases += 1;
            let got = run_reader(&env, &vault, &cfg, &acfg, &key, r);
            assert!(
                !got.stderr.contains("panicked"),
                "{m:?} {}: {}",
                r.name,
                got.stderr
            );
            match got.code {
                0 => assert_eq!(
                    &got.stdout, want,
                    "{m:?}: {} printed other data with exit 0",
                    r.name
                ),
                5 => refused += 1,
                c => panic!("{m:?}: {} exited {c}: {}", r.name, got.stderr),
            }
        }
    }
    println!(
        "mutation harness: {} mutations, {applied} applied, {cases} (change x command) cases, {refused} refused with exit 5",
        mutations.len()
    );
    assert!(applied >= 40, "only {applied} mutations applied");
}
