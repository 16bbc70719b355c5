use crate::common::*;

#[test]
fn set_get_list_delete() {
    let (env, _) = Env::with_identity("alice");
    let s = env
        .run(&[
            "secrets",
            "set",
            "OPENAI_API_KEY",
            "sk-test-1",
            "--notes",
            "billing",
            "--json",
        ])
        .ok()
        .json();
    assert_eq!(s["key"], "OPENAI_API_KEY");
    assert_eq!(s["value"], "sk-test-1");
    assert_eq!(s["notes"], "billing");
    assert_eq!(s["created"], true);
    for f in ["uuid", "created_dt", "updated_dt"] {
        assert!(s[f].is_string(), "{f}");
    }

    // replace: same uuid and created_dt, new value, notes kept
    let r = env
        .run_stdin(
            &[
                "secrets",
                "set",
                "OPENAI_API_KEY",
                "--value-stdin",
                "--json",
            ],
            "sk-test-2\n",
        )
        .ok()
        .json();
    assert_eq!(r["uuid"], s["uuid"]);
    assert_eq!(r["created_dt"], s["created_dt"]);
    assert_eq!(r["value"], "sk-test-2");
    assert_eq!(r["notes"], "billing");
    assert_eq!(r["created"], false);

    let f = env.dir.path().join("token");
    std::fs::write(&f, "ghp_fromfile").unwrap();
    env.run(&[
        "secrets",
        "set",
        "GITHUB_TOKEN",
        "--value-file",
        f.to_str().unwrap(),
    ])
    .ok();

    let g = env
        .run(&["secrets", "get", "OPENAI_API_KEY", "--json"])
        .ok()
        .json();
    let mut expected = r.clone();
    expected.as_object_mut().unwrap().remove("created");
    assert_eq!(g, expected);
    assert_eq!(
        env.run(&["secrets", "get", "GITHUB_TOKEN"]).ok().stdout,
        "ghp_fromfile\n"
    );
    // keys are case-sensitive
    env.run(&["secrets", "get", "github_token"])
        .fails(EXIT_NOT_FOUND);

    let list = env.run(&["secrets", "list", "--json"]).ok().json();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["key"], "GITHUB_TOKEN");
    for e in list {
        assert!(e.get("value").is_none(), "list must hide values: {e}");
    }
    assert!(
        !env.run(&["secrets", "list"])
            .ok()
            .stdout
            .contains("sk-test")
    );

    let d = env
        .run(&["secrets", "delete", "OPENAI_API_KEY", "--json"])
        .ok()
        .json();
    assert_eq!(d["deleted"], true);
    assert!(d.get("value").is_none());
    env.run(&["secrets", "get", "OPENAI_API_KEY"])
        .fails(EXIT_NOT_FOUND);
    let gh = env
        .run(&["secrets", "get", "GITHUB_TOKEN", "--json"])
        .ok()
        .json();
    env.run(&["secrets", "delete", gh["uuid"].as_str().unwrap()])
        .ok();
    env.run(&["secrets", "delete", "GITHUB_TOKEN"])
        .fails(EXIT_NOT_FOUND);
    assert_eq!(
        env.run(&["secrets", "list", "--json"]).ok().json(),
        serde_json::json!([])
    );
}

#[test]
fn secret_input_errors() {
    let (env, _) = Env::with_identity("alice");
    env.run(&["secrets", "set", "K"]).fails(EXIT_INVALID);
    env.run(&["secrets", "set", " K", "v"]).fails(EXIT_INVALID);
    env.run(&["secrets", "set", "K", "v", "--value-stdin"])
        .fails(EXIT_INVALID);
    env.run(&["secrets", "set", "K", "--value-file", "/nonexistent/file"])
        .fails(EXIT_INVALID);
    env.run(&["secrets", "get", "missing", "--json"])
        .fails(EXIT_NOT_FOUND);
}

#[test]
fn identities_do_not_share_records() {
    let env = Env::new();
    env.run(&["identity", "create", "--name", "a"]).ok();
    env.run(&["identity", "create", "--name", "b"]).ok();
    env.run(&["--identity", "a", "secrets", "set", "K", "for-a"])
        .ok();
    env.run(&["--identity", "b", "secrets", "set", "K", "for-b"])
        .ok();
    assert_eq!(
        env.run(&["--identity", "a", "secrets", "get", "K"])
            .ok()
            .stdout
            .trim(),
        "for-a"
    );
    assert_eq!(
        env.run(&["--identity", "b", "secrets", "get", "K"])
            .ok()
            .stdout
            .trim(),
        "for-b"
    );
    // the same key has unrelated blind indexes in the two identities
    let idx: Vec<Vec<u8>> = env
        .db()
        .prepare("SELECT blind_index FROM records")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(idx.len(), 2);
    assert_ne!(idx[0], idx[1]);
}
