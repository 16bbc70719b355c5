//! `ravi import`: sample files written from each format's public
//! documentation, checked field by field; --dry-run changes nothing; a
//! second import updates instead of duplicating.

use crate::common::*;

const BITWARDEN: &str = r#"{
  "encrypted": false,
  "folders": [],
  "items": [
    {
      "id": "1d7f8f4e-0000-4000-8000-000000000001",
      "type": 1,
      "name": "GitHub",
      "notes": "work account",
      "favorite": false,
      "login": {
        "uris": [{ "match": null, "uri": "https://github.com/login" }],
        "username": "bot@example.com",
        "password": "bw-github-pw",
        "totp": "otpauth://totp/GitHub:bot?secret=JBSWY3DPEHPK3PXP&issuer=GitHub"
      }
    },
    {
      "id": "1d7f8f4e-0000-4000-8000-000000000002",
      "type": 1,
      "name": "Shop",
      "login": { "uris": [{ "uri": "shop.example" }], "username": "u", "password": "bw-shop-pw", "totp": null }
    },
    { "id": "1d7f8f4e-0000-4000-8000-000000000003", "type": 2, "name": "a note", "notes": "x", "secureNote": { "type": 0 } },
    { "id": "1d7f8f4e-0000-4000-8000-000000000004", "type": 1, "name": "no uri", "login": { "password": "p" } }
  ]
}"#;

fn import(env: &Env, format: &str, text: &str, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["import", format, "-", "--json"];
    args.extend_from_slice(extra);
    env.run_stdin(&args, text).ok().json()
}

#[test]
fn bitwarden_json() {
    let (env, _) = Env::with_identity("alice");
    let r = import(&env, "bitwarden-json", BITWARDEN, &[]);
    assert_eq!(r["created"], 3, "{r}");
    assert_eq!(r["updated"], 0, "{r}");
    let skipped: Vec<&str> = r["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["item"].as_str().unwrap())
        .collect();
    assert_eq!(skipped, ["a note", "no uri"], "{r}");
    let gh = env
        .run(&["passwords", "get", "github.com", "--json"])
        .ok()
        .json();
    assert_eq!(gh["username"], "bot@example.com");
    assert_eq!(gh["password"], "bw-github-pw");
    assert_eq!(gh["notes"], "work account");
    let t = env
        .run(&["totp", "show", "github.com", "--json"])
        .ok()
        .json();
    assert_eq!(t["issuer"], "GitHub");
    env.run(&["totp", "code", "github.com"]).ok();
    let shop = env
        .run(&["passwords", "get", "shop.example", "--json"])
        .ok()
        .json();
    assert_eq!(shop["password"], "bw-shop-pw");
    // again: updated, not duplicated
    let r = import(&env, "bitwarden-json", BITWARDEN, &[]);
    assert_eq!(
        (r["created"].as_u64(), r["updated"].as_u64()),
        (Some(0), Some(3)),
        "{r}"
    );
    let all = env.run(&["passwords", "list", "--json"]).ok().json();
    assert_eq!(all.as_array().unwrap().len(), 2);
    // an encrypted export is refused
    env.run_stdin(
        &["import", "bitwarden-json", "-"],
        r#"{"encrypted": true, "items": []}"#,
    )
    .fails(EXIT_INVALID);
}

#[test]
fn csv_dotenv_and_otpauth() {
    let (env, _) = Env::with_identity("alice");
    let csv = "domain,username,password,notes,totp\n\
               https://mail.example.com,me,\"pw, with comma\",\"multi\nline\",JBSWY3DPEHPK3PXP\n\
               bank.example,,bank-pw,,\n\
               empty.example,x,,,\n";
    let r = import(&env, "csv", csv, &[]);
    assert_eq!(r["created"], 3, "{r}");
    assert_eq!(r["skipped"][0]["item"], "empty.example x", "{r}");
    let m = env
        .run(&["passwords", "get", "example.com", "--json"])
        .ok()
        .json();
    assert_eq!(m["password"], "pw, with comma");
    assert_eq!(m["notes"], "multi\nline");
    assert_eq!(m["username"], "me");
    env.run(&["totp", "code", "example.com"]).ok();
    assert_eq!(
        env.run(&["passwords", "get", "bank.example", "--json"])
            .ok()
            .json()["username"],
        serde_json::Value::Null
    );

    let dotenv = "# comment\nAPI_KEY=abc123\nexport QUOTED=\"with spaces\"\nnot a pair\n";
    let r = import(&env, "dotenv", dotenv, &[]);
    assert_eq!(r["created"], 2, "{r}");
    assert_eq!(r["skipped"][0]["item"], "line 4", "{r}");
    assert_eq!(
        env.run(&["secrets", "get", "QUOTED"]).ok().stdout.trim(),
        "with spaces"
    );

    let uris = "otpauth://totp/ACME:me?secret=GEZDGNBVGY3TQOJQ&issuer=ACME&digits=8\n\
                otpauth://hotp/X?secret=GEZDGNBVGY3TQOJQ&counter=1\n";
    let r = import(&env, "otpauth", uris, &[]);
    assert_eq!(r["created"], 1, "{r}");
    assert_eq!(r["skipped"][0]["item"], "line 2", "{r}");
    let acme = env.run(&["totp", "show", "acme", "--json"]).ok().json();
    assert_eq!(acme["digits"], 8);
}

#[test]
fn dry_run_changes_nothing() {
    let (env, _) = Env::with_identity("alice");
    let before = std::fs::read(&env.vault).unwrap();
    let r = import(&env, "bitwarden-json", BITWARDEN, &["--dry-run"]);
    assert_eq!(r["created"], 3, "{r}");
    assert_eq!(
        env.run(&["passwords", "list", "--json"]).ok().json(),
        serde_json::json!([])
    );
    assert_eq!(std::fs::read(&env.vault).unwrap(), before);
    env.run_stdin(&["import", "keepass-xml", "-"], "<KeePassFile/>")
        .fails(EXIT_INVALID);
    env.run(&["import", "csv", "/nonexistent.csv"])
        .fails(EXIT_INVALID);
}
