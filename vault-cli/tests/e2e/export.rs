//! `ravi export`: round trips through `ravi import` into a fresh identity
//! give identical records; the plaintext file is 0600 and warned about; a
//! bad recipient writes nothing. (`age -d` reading an encrypted export is a
//! tools test.)

use serde_json::Value;

use crate::common::*;

/// An identity with every kind of entry, including awkward ones.
fn filled() -> Env {
    let (env, _) = Env::with_identity("alice");
    env.run_stdin(
        &[
            "passwords",
            "create",
            "github.com",
            "--username",
            "bot@example.com",
            "--notes",
            "work, \"quoted\"\nsecond line",
            "--password-stdin",
        ],
        "gh-pass,word\n",
    )
    .ok();
    env.run_stdin(
        &[
            "passwords",
            "create",
            "github.com",
            "--username",
            "other",
            "--password-stdin",
        ],
        "second-gh\n",
    )
    .ok();
    env.run_stdin(
        &["passwords", "create", "bank.example", "--password-stdin"],
        "bänk\n",
    )
    .ok();
    env.run_stdin(
        &[
            "secrets",
            "set",
            "API_KEY",
            "--value-stdin",
            "--notes",
            "prod",
        ],
        "sk-123",
    )
    .ok();
    env.run_stdin(&["secrets", "set", "multi.line", "--value-stdin"], "a\nb\n")
        .ok();
    env.run_stdin(
        &["totp", "add", "--uri-stdin"],
        "otpauth://totp/GitHub:bot?secret=JBSWY3DPEHPK3PXP&issuer=GitHub&algorithm=SHA256&digits=8&period=60",
    )
    .ok();
    env.run_stdin(
        &["totp", "add", "github.com", "--secret-stdin"],
        "GEZDGNBVGY3TQOJQ",
    )
    .ok();
    env
}

/// The records of the selected identity, without uuids and times.
fn records(env: &Env, identity: &str) -> Value {
    let mut doc = env.run(&["export", "--identity", identity]).ok().json();
    for kind in ["passwords", "secrets", "totp"] {
        for e in doc[kind].as_array_mut().unwrap() {
            let e = e.as_object_mut().unwrap();
            e.remove("created_dt");
            e.remove("updated_dt");
        }
    }
    doc.as_object_mut().unwrap().remove("identity");
    doc
}

/// `ravi import json FILE --identity NAME --json`: the report.
fn import_json(env: &Env, file: &std::path::Path, identity: &str) -> Value {
    env.run(&[
        "import",
        "json",
        file.to_str().unwrap(),
        "--identity",
        identity,
        "--json",
    ])
    .ok()
    .json()
}

#[test]
fn json_round_trip_into_a_fresh_identity() {
    let env = filled();
    let file = env.work.join("alice.json");
    let r = env
        .run(&["export", "-o", file.to_str().unwrap(), "--json"])
        .ok();
    assert!(r.stderr.contains("plaintext"), "{}", r.stderr);
    let report = r.json();
    assert_eq!(
        (
            report["passwords"].as_u64(),
            report["secrets"].as_u64(),
            report["totp"].as_u64()
        ),
        (Some(3), Some(2), Some(2)),
        "{report}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let doc: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(doc["format"], "ravi-export");
    assert_eq!(doc["identity"]["name"], "alice");
    assert_eq!(doc["secrets"][0]["key"], "API_KEY");
    assert_eq!(doc["secrets"][0]["value"], "sk-123");
    assert_eq!(doc["secrets"][0]["notes"], "prod");

    env.run(&["identity", "create", "--name", "bob"]).ok();
    let r = import_json(&env, &file, "bob");
    assert_eq!(r["created"], 7, "{r}");
    assert_eq!(r["skipped"], serde_json::json!([]), "{r}");
    let (a, b) = (records(&env, "alice"), records(&env, "bob"));
    assert_eq!(a, b);
    assert_eq!(a["passwords"].as_array().unwrap().len(), 3);
    // the copies work: the same codes, the same values
    for name in ["github", "github.com"] {
        assert_eq!(
            env.run(&["totp", "code", name, "--identity", "alice"])
                .ok()
                .stdout,
            env.run(&["totp", "code", name, "--identity", "bob"])
                .ok()
                .stdout
        );
    }
    assert_eq!(
        env.run(&[
            "secrets",
            "get",
            "multi.line",
            "--identity",
            "bob",
            "--json"
        ])
        .ok()
        .json()["value"],
        "a\nb"
    );
    // importing again updates, never duplicates
    let r = import_json(&env, &file, "bob");
    assert_eq!(
        (r["created"].as_u64(), r["updated"].as_u64()),
        (Some(0), Some(7)),
        "{r}"
    );
    assert_eq!(records(&env, "bob"), a);
}

#[test]
fn csv_round_trip_of_passwords_and_totp() {
    let env = filled();
    let r = env.run(&["export", "--format", "csv"]).ok();
    assert!(r.stderr.contains("2 secret(s) left out"), "{}", r.stderr);
    let csv = r.stdout;
    assert!(
        csv.starts_with("domain,username,password,notes,totp\n"),
        "{csv}"
    );
    env.run(&["identity", "create", "--name", "carol"]).ok();
    let r = env
        .run_stdin(
            &["import", "csv", "-", "--identity", "carol", "--json"],
            &csv,
        )
        .ok()
        .json();
    assert_eq!(r["created"], 5, "{r}");
    let (mut a, b) = (records(&env, "alice"), records(&env, "carol"));
    a["secrets"] = serde_json::json!([]);
    assert_eq!(a, b);
}

#[test]
fn json_to_stdout_is_the_document_alone() {
    let env = filled();
    let r = env.run(&["export", "--json"]).ok();
    let doc: Value = serde_json::from_str(&r.stdout).expect("one JSON document on stdout");
    assert_eq!(doc["format"], "ravi-export");
    assert!(!r.stdout.trim_end().ends_with("null"));
}

#[test]
fn bad_recipient_or_version_writes_nothing() {
    let env = filled();
    let file = env.work.join("out.json");
    std::fs::write(&file, "before").unwrap();
    let r = env
        .run(&[
            "export",
            "--recipient",
            "age1notakey",
            "-o",
            file.to_str().unwrap(),
        ])
        .fails(EXIT_INVALID);
    assert!(r.stderr.contains("not an age recipient"), "{}", r.stderr);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "before");
    env.run_stdin(
        &["import", "json", "-"],
        r#"{"format": "ravi-export", "version": 99, "passwords": []}"#,
    )
    .fails(EXIT_INVALID);
    env.run_stdin(&["import", "json", "-"], r#"{"items": []}"#)
        .fails(EXIT_INVALID);
}
