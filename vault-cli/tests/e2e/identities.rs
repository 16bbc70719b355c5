use serde_json::json;

use crate::common::*;

#[test]
fn identity_lifecycle() {
    let env = Env::new();
    let a = env
        .run(&[
            "identity",
            "create",
            "--name",
            "alice",
            "--phone",
            "+1 (415) 555-0123",
            "--json",
        ])
        .ok()
        .json();
    assert_eq!(a["name"], "alice");
    assert_eq!(a["inbox"], "alice@agents.example.com");
    assert_eq!(a["phone"], "+14155550123");
    let uuid = a["uuid"].as_str().unwrap().to_string();
    assert_eq!(uuid.len(), 36);
    assert!(a["created_dt"].as_str().unwrap().ends_with('Z'));

    let b = env
        .run(&[
            "identity",
            "create",
            "--name",
            "bob",
            "--email",
            "Bob.Ops@Example.org",
            "--json",
        ])
        .ok()
        .json();
    assert_eq!(b["inbox"], "Bob.Ops@example.org");
    assert_eq!(b["phone"], serde_json::Value::Null);

    let list = env.run(&["identity", "list", "--json"]).ok().json();
    let names: Vec<_> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["alice", "bob"]);
    assert_eq!(list[0], a);

    // show by name and by uuid give the same document
    assert_eq!(
        env.run(&["identity", "show", "alice", "--json"])
            .ok()
            .json(),
        a
    );
    assert_eq!(
        env.run(&["identity", "show", &uuid, "--json"]).ok().json(),
        a
    );
    // text output names the identity
    assert!(
        env.run(&["identity", "show", "bob"])
            .ok()
            .stdout
            .contains("Bob.Ops@example.org")
    );

    // use, then the selected identity answers get/show
    let used = env.run(&["identity", "use", "alice", "--json"]).ok().json();
    assert_eq!(used["identity_uuid"], uuid.as_str());
    assert_eq!(used["identity_name"], "alice");
    assert_eq!(env.run(&["identity", "show", "--json"]).ok().json(), a);
    assert_eq!(
        env.run(&["get", "email", "--json"]).ok().json(),
        json!({"email": "alice@agents.example.com"})
    );
    assert_eq!(
        env.run(&["get", "phone", "--json"]).ok().json(),
        json!({"phone_number": "+14155550123"})
    );
    assert_eq!(
        env.run(&["get", "email"]).ok().stdout.trim(),
        "alice@agents.example.com"
    );

    // records die with the identity
    env.run(&["secrets", "set", "K", "v"]).ok();
    env.run(&["passwords", "create", "example.com"]).ok();
    let del = env
        .run(&["identity", "delete", "alice", "--json"])
        .ok()
        .json();
    assert_eq!(del["deleted"], true);
    assert_eq!(del["uuid"], uuid.as_str());
    env.run(&["identity", "show", "alice"])
        .fails(EXIT_NOT_FOUND);
    // the config still names alice: a clear not-found, not a crash
    let e = env
        .run(&["get", "email", "--json"])
        .fails(EXIT_NOT_FOUND)
        .error_json();
    assert_eq!(e["error"]["code"], "not_found");
    let n: i64 = env
        .db()
        .query_row("SELECT count(*) FROM records", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 0);
    let n: i64 = env
        .db()
        .query_row("SELECT count(*) FROM identities", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 1);
}

#[test]
fn phone_absent_is_null() {
    let (env, _) = Env::with_identity("nophone");
    assert_eq!(
        env.run(&["get", "phone", "--json"]).ok().json(),
        json!({"phone_number": null})
    );
}

#[test]
fn local_config_wins_over_config_dir_and_flag_wins_over_both() {
    let env = Env::new();
    env.run(&["identity", "create", "--name", "alice"]).ok();
    env.run(&["identity", "create", "--name", "bob"]).ok();
    env.run(&["identity", "use", "alice"]).ok();
    let task = env.work.join("task");
    let deep = task.join("src/deeper");
    std::fs::create_dir_all(&deep).unwrap();

    let mut c = env.command();
    let r = run_command(
        c.current_dir(&task)
            .args(["identity", "use", "bob", "--local", "--json"]),
    )
    .ok();
    assert!(task.join(".ravi/config.json").is_file());
    assert!(
        r.json()["config_path"]
            .as_str()
            .unwrap()
            .ends_with(".ravi/config.json")
    );

    let email_in = |dir: &std::path::Path, extra: &[&str]| {
        let mut c = env.command();
        c.current_dir(dir)
            .args(["get", "email", "--json"])
            .args(extra);
        run_command(&mut c).ok().json()["email"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(email_in(&task, &[]), "bob@agents.example.com");
    assert_eq!(email_in(&deep, &[]), "bob@agents.example.com");
    assert_eq!(email_in(&env.work, &[]), "alice@agents.example.com");
    assert_eq!(
        email_in(&deep, &["--identity", "alice"]),
        "alice@agents.example.com"
    );

    // the file has exactly the documented shape
    let cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(task.join(".ravi/config.json")).unwrap()).unwrap();
    assert_eq!(cfg["identity_name"], "bob");
    assert_eq!(cfg.as_object().unwrap().len(), 2);
}

/// The seed's subprocess pattern: an orchestrator creates an identity,
/// writes `{"identity_uuid": ...}` into a fresh directory and points the
/// agent's `RAVI_CONFIG_DIR` at it.
#[test]
fn seed_subprocess_pattern() {
    let env = Env::new();
    let ident = env
        .run(&[
            "identity",
            "create",
            "--name",
            "task-42",
            "--phone",
            "+447700900123",
            "--json",
        ])
        .ok()
        .json();
    let agent_dir = env.dir.path().join("agent-42");
    std::fs::create_dir_all(&agent_dir).unwrap();
    std::fs::write(
        agent_dir.join("config.json"),
        serde_json::to_vec(&json!({"identity_uuid": ident["uuid"]})).unwrap(),
    )
    .unwrap();
    let mut c = env.command();
    c.env("RAVI_CONFIG_DIR", &agent_dir)
        .args(["get", "email", "--json"]);
    assert_eq!(
        run_command(&mut c).ok().json(),
        json!({"email": "task-42@agents.example.com"})
    );
    let mut c = env.command();
    c.env("RAVI_CONFIG_DIR", &agent_dir)
        .args(["get", "phone", "--json"]);
    assert_eq!(
        run_command(&mut c).ok().json(),
        json!({"phone_number": "+447700900123"})
    );
}

#[test]
fn global_options_before_or_after_subcommand() {
    let env = Env::new();
    env.run(&["identity", "create", "--name", "alice"]).ok();
    let vault = env.vault.to_str().unwrap().to_string();
    let mut c = env.command();
    c.env_remove("RAVI_VAULT").args([
        "--vault",
        &vault,
        "--identity",
        "alice",
        "--json",
        "get",
        "email",
    ]);
    assert_eq!(
        run_command(&mut c).ok().json()["email"],
        "alice@agents.example.com"
    );
    let mut c = env.command();
    c.env_remove("RAVI_VAULT").args([
        "get",
        "email",
        "--vault",
        &vault,
        "--json",
        "--identity",
        "alice",
    ]);
    assert_eq!(
        run_command(&mut c).ok().json()["email"],
        "alice@agents.example.com"
    );
}

#[test]
fn identity_errors() {
    let env = Env::new();
    env.run(&["identity", "create", "--name", "alice"]).ok();
    let e = env
        .run(&["identity", "create", "--name", "ALICE", "--json"])
        .fails(EXIT_CONFLICT)
        .error_json();
    assert_eq!(e["error"]["code"], "conflict");
    env.run(&["identity", "create", "--name", "x", "--phone", "555-1234"])
        .fails(EXIT_INVALID);
    env.run(&["identity", "create", "--name", "has space"])
        .fails(EXIT_INVALID);
    env.run(&[
        "identity",
        "create",
        "--name",
        "y",
        "--email",
        "not-an-email",
    ])
    .fails(EXIT_INVALID);
    let e = env
        .run(&["identity", "show", "nobody", "--json"])
        .fails(EXIT_NOT_FOUND)
        .error_json();
    assert_eq!(e["error"]["code"], "not_found");
    env.run(&["identity", "use", "nobody"])
        .fails(EXIT_NOT_FOUND);
    env.run(&["identity", "delete", "nobody"])
        .fails(EXIT_NOT_FOUND);
    env.run(&["--identity", "nobody", "get", "email"])
        .fails(EXIT_NOT_FOUND);
    // nothing selected at all
    let e = env
        .run(&["get", "email", "--json"])
        .fails(EXIT_INVALID)
        .error_json();
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no identity selected")
    );
    env.run(&["secrets", "list"]).fails(EXIT_INVALID);
    // a malformed config file is an input error naming the file
    std::fs::create_dir_all(&env.config_dir).unwrap();
    std::fs::write(env.config_dir.join("config.json"), "{oops").unwrap();
    let r = env.run(&["get", "email"]).fails(EXIT_INVALID);
    assert!(r.stderr.contains("config.json"));
}
