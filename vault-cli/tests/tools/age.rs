//! `ravi export --recipient`: Debian's `age -d` decrypts the file, and what
//! it holds is the plaintext export.

use std::process::Command;

use crate::common::*;

/// `age -d -i IDENTITY FILE`: the plaintext (UTF-8: JSON or CSV).
fn age_decrypt(identity: &std::path::Path, file: &std::path::Path) -> String {
    run_command(
        Command::new("age")
            .arg("-d")
            .arg("-i")
            .arg(identity)
            .arg(file),
    )
    .ok()
    .stdout
}

pub fn age_decrypts_an_export() {
    let (env, _) = Env::with_identity("alice");
    env.run_stdin(
        &["secrets", "set", "API_KEY", "--value-stdin"],
        "sk-age-canary",
    )
    .ok();
    env.run_stdin(
        &[
            "passwords",
            "create",
            "example.com",
            "--username",
            "me",
            "--password-stdin",
        ],
        "pw-age-canary",
    )
    .ok();
    let identity = env.work.join("key.txt");
    run_command(Command::new("age-keygen").arg("-o").arg(&identity)).ok();
    let recipient = run_command(Command::new("age-keygen").arg("-y").arg(&identity))
        .ok()
        .stdout;
    let file = env.work.join("export.age");
    let r = env
        .run(&[
            "export",
            "--recipient",
            recipient.trim(),
            "-o",
            file.to_str().unwrap(),
            "--json",
        ])
        .ok();
    assert!(!r.stderr.contains("plaintext"), "{}", r.stderr);
    assert_eq!(r.json()["encrypted"], true);
    let sealed = std::fs::read(&file).unwrap();
    assert!(sealed.starts_with(b"age-encryption.org/v1\n"));
    assert!(!contains(&sealed, b"sk-age-canary") && !contains(&sealed, b"pw-age-canary"));
    let plain = age_decrypt(&identity, &file);
    let doc: serde_json::Value = serde_json::from_str(&plain).unwrap();
    assert_eq!(doc["format"], "ravi-export");
    assert_eq!(doc["secrets"][0]["value"], "sk-age-canary");
    assert_eq!(doc["passwords"][0]["password"], "pw-age-canary");
    // The decrypted file imports: the round trip holds through age too.
    env.run(&["identity", "create", "--name", "bob"]).ok();
    let r = env
        .run_stdin(
            &["import", "json", "-", "--identity", "bob", "--json"],
            &plain,
        )
        .ok()
        .json();
    assert_eq!(r["created"], 2, "{r}");
    // To stdout (binary) as well: the CSV form, read back by age.
    let out = env
        .command()
        .args(["export", "--format", "csv", "--recipient", recipient.trim()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let piped = env.work.join("export.csv.age");
    std::fs::write(&piped, &out.stdout).unwrap();
    assert_eq!(
        age_decrypt(&identity, &piped),
        "domain,username,password,notes,totp\nexample.com,me,pw-age-canary,,\n"
    );
}
