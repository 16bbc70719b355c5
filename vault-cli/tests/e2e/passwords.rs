use crate::common::*;

#[test]
fn create_generates_by_default_and_cleans_urls() {
    let (env, _) = Env::with_identity("alice");
    let e = env
        .run(&[
            "passwords",
            "create",
            "https://mail.google.com/inbox",
            "--username",
            "alice@gmail.com",
            "--notes",
            "main",
            "--json",
        ])
        .ok()
        .json();
    assert_eq!(e["domain"], "google.com");
    assert_eq!(e["username"], "alice@gmail.com");
    assert_eq!(e["notes"], "main");
    let pw = e["password"].as_str().unwrap();
    assert_eq!(pw.chars().count(), 16);
    assert!(pw.chars().any(|c| c.is_ascii_digit()));
    assert!(pw.chars().any(|c| !c.is_ascii_alphanumeric()));
    for f in ["uuid", "created_dt", "updated_dt"] {
        assert!(e[f].is_string(), "{f}");
    }

    let e2 = env
        .run(&[
            "passwords",
            "create",
            "a.b.example.co.uk",
            "--generate",
            "--length",
            "32",
            "--no-special",
            "--exclude-chars",
            "0O1l",
            "--json",
        ])
        .ok()
        .json();
    assert_eq!(e2["domain"], "example.co.uk");
    assert_eq!(e2["username"], serde_json::Value::Null);
    let pw2 = e2["password"].as_str().unwrap();
    assert_eq!(pw2.len(), 32);
    assert!(
        pw2.chars()
            .all(|c| c.is_ascii_alphanumeric() && !"0O1l".contains(c))
    );

    let got = env
        .run(&["passwords", "get", "https://www.google.com/", "--json"])
        .ok()
        .json();
    assert_eq!(got, e);
}

#[test]
fn password_inputs_without_argv() {
    let (env, _) = Env::with_identity("alice");
    let e = env
        .run_stdin(
            &[
                "passwords",
                "create",
                "github.com",
                "--username",
                "u1",
                "--password-stdin",
                "--json",
            ],
            "s3cret from stdin\n",
        )
        .ok()
        .json();
    assert_eq!(e["password"], "s3cret from stdin");
    let f = env.dir.path().join("pw.txt");
    std::fs::write(&f, "from-a-file\n").unwrap();
    let e = env
        .run(&[
            "passwords",
            "create",
            "gitlab.com",
            "--password-file",
            f.to_str().unwrap(),
            "--json",
        ])
        .ok()
        .json();
    assert_eq!(e["password"], "from-a-file");
    let e = env
        .run(&[
            "passwords",
            "create",
            "x.com",
            "--password",
            "argv-pw",
            "--json",
        ])
        .ok()
        .json();
    assert_eq!(e["password"], "argv-pw");
    env.run(&[
        "passwords",
        "create",
        "y.com",
        "--password",
        "a",
        "--password-stdin",
    ])
    .fails(EXIT_INVALID);
    env.run_stdin(&["passwords", "create", "y.com", "--password-stdin"], "")
        .fails(EXIT_INVALID);
}

#[test]
fn list_get_edit_delete() {
    let (env, _) = Env::with_identity("alice");
    let a = env
        .run(&[
            "passwords",
            "create",
            "google.com",
            "--username",
            "a",
            "--password",
            "pw-alpha-77",
            "--json",
        ])
        .ok()
        .json();
    let b = env
        .run(&[
            "passwords",
            "create",
            "google.com",
            "--username",
            "b",
            "--password",
            "pw-bravo-88",
            "--json",
        ])
        .ok()
        .json();
    let c = env
        .run(&[
            "passwords",
            "create",
            "amazon.com",
            "--username",
            "c",
            "--password",
            "pc",
            "--json",
        ])
        .ok()
        .json();

    let list = env.run(&["passwords", "list", "--json"]).ok().json();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 3);
    for e in list {
        assert!(e.get("password").is_none(), "list must hide passwords: {e}");
        for f in ["uuid", "domain", "username", "notes", "created_dt"] {
            assert!(e.get(f).is_some(), "{f}");
        }
    }
    assert_eq!(list[0]["domain"], "amazon.com");
    assert!(
        !env.run(&["passwords", "list"])
            .ok()
            .stdout
            .contains("pw-alpha")
    );

    // ambiguous domain: conflict listing both candidates
    let r = env
        .run(&["passwords", "get", "google.com", "--json"])
        .fails(EXIT_CONFLICT);
    let err = r.error_json();
    assert_eq!(err["error"]["code"], "conflict");
    let cands = err["error"]["candidates"].as_array().unwrap();
    assert_eq!(cands.len(), 2);
    let mut users: Vec<_> = cands
        .iter()
        .map(|c| c["username"].as_str().unwrap())
        .collect();
    users.sort();
    assert_eq!(users, ["a", "b"]);
    assert!(cands.iter().any(|c| c["uuid"] == a["uuid"]));
    assert!(!r.stderr.contains("pw-alpha") && !r.stderr.contains("pw-bravo"));
    let r = env
        .run(&["passwords", "get", "google.com"])
        .fails(EXIT_CONFLICT);
    assert!(r.stderr.contains(b["uuid"].as_str().unwrap()));

    // narrowed by username, or by uuid
    assert_eq!(
        env.run(&[
            "passwords",
            "get",
            "google.com",
            "--username",
            "b",
            "--json"
        ])
        .ok()
        .json(),
        b
    );
    assert_eq!(
        env.run(&["passwords", "get", a["uuid"].as_str().unwrap(), "--json"])
            .ok()
            .json(),
        a
    );
    assert_eq!(
        env.run(&["passwords", "get", "amazon.com", "--json"])
            .ok()
            .json(),
        c
    );

    // edit: new password from stdin, new username, notes; uuid and created kept
    let e = env
        .run_stdin(
            &[
                "passwords",
                "edit",
                "google.com",
                "--username",
                "a",
                "--new-username",
                "a2",
                "--password-stdin",
                "--notes",
                "rotated",
                "--json",
            ],
            "pa-new\n",
        )
        .ok()
        .json();
    assert_eq!(e["uuid"], a["uuid"]);
    assert_eq!(e["created_dt"], a["created_dt"]);
    assert_eq!(e["username"], "a2");
    assert_eq!(e["password"], "pa-new");
    assert_eq!(e["notes"], "rotated");
    assert_eq!(
        env.run(&[
            "passwords",
            "get",
            "google.com",
            "--username",
            "a2",
            "--json"
        ])
        .ok()
        .json(),
        e
    );
    // edit the domain: the entry moves to the new blind index
    let e = env
        .run(&[
            "passwords",
            "edit",
            c["uuid"].as_str().unwrap(),
            "--new-domain",
            "https://www.amazon.de/",
            "--json",
        ])
        .ok()
        .json();
    assert_eq!(e["domain"], "amazon.de");
    assert_eq!(e["password"], "pc");
    env.run(&["passwords", "get", "amazon.com"])
        .fails(EXIT_NOT_FOUND);
    assert_eq!(
        env.run(&["passwords", "get", "amazon.de", "--json"])
            .ok()
            .json()["uuid"],
        c["uuid"]
    );
    // --generate on edit makes a new password
    let e = env
        .run(&[
            "passwords",
            "edit",
            "amazon.de",
            "--generate",
            "--length",
            "20",
            "--json",
        ])
        .ok()
        .json();
    assert_eq!(e["password"].as_str().unwrap().len(), 20);

    // delete
    let d = env
        .run(&[
            "passwords",
            "delete",
            "google.com",
            "--username",
            "b",
            "--json",
        ])
        .ok()
        .json();
    assert_eq!(d["deleted"], true);
    assert_eq!(d["uuid"], b["uuid"]);
    assert!(d.get("password").is_none());
    env.run(&["passwords", "get", b["uuid"].as_str().unwrap()])
        .fails(EXIT_NOT_FOUND);
    env.run(&["passwords", "delete", "google.com", "--username", "b"])
        .fails(EXIT_NOT_FOUND);
    assert_eq!(
        env.run(&["passwords", "list", "--json"])
            .ok()
            .json()
            .as_array()
            .unwrap()
            .len(),
        2
    );

    env.run(&["passwords", "get", "nothing.example"])
        .fails(EXIT_NOT_FOUND);
    env.run(&["passwords", "create", "not a domain"])
        .fails(EXIT_INVALID);
    env.run(&["passwords", "create", "https://"])
        .fails(EXIT_INVALID);
}

#[test]
fn generate_command() {
    let env = Env::empty(); // needs no vault
    let p = env.run(&["passwords", "generate", "--json"]).ok().json();
    assert_eq!(p["password"].as_str().unwrap().len(), 16);
    let p = env
        .run(&[
            "passwords",
            "generate",
            "--length",
            "64",
            "--no-digits",
            "--no-special",
        ])
        .ok();
    let p = p.stdout.trim();
    assert_eq!(p.len(), 64);
    assert!(p.chars().all(|c| c.is_ascii_alphabetic()));
    env.run(&["passwords", "generate", "--length", "2"])
        .fails(EXIT_INVALID);
    env.run(&["passwords", "generate", "--length", "nope"])
        .fails(EXIT_INVALID);
    env.run(&[
        "passwords",
        "generate",
        "--no-special",
        "--exclude-chars",
        "0123456789",
    ])
    .fails(EXIT_INVALID);
}
