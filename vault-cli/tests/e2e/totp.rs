use data_encoding::BASE32_NOPAD;
use serde_json::json;

use crate::common::*;

const RFC_SHA1: &[u8] = b"12345678901234567890";
const RFC_SHA256: &[u8] = b"12345678901234567890123456789012";
const RFC_SHA512: &[u8] = b"1234567890123456789012345678901234567890123456789012345678901234";

fn b32(bytes: &[u8]) -> String {
    BASE32_NOPAD.encode(bytes)
}

#[test]
fn add_code_list_show_uri_delete() {
    let (env, _) = Env::with_identity("alice");
    let uri = format!(
        "otpauth://totp/GitHub:alice%40example.com?secret={}&issuer=GitHub&algorithm=SHA256&digits=8&period=30",
        b32(RFC_SHA256).to_lowercase()
    );
    let e = env
        .run_stdin(&["totp", "add", "--uri-stdin", "--json"], &uri)
        .ok()
        .json();
    assert_eq!(e["name"], "github", "the name defaults to the issuer");
    assert_eq!(e["issuer"], "GitHub");
    assert_eq!(e["account"], "alice@example.com");
    assert_eq!(
        (
            e["algorithm"].as_str(),
            e["digits"].as_u64(),
            e["period"].as_u64()
        ),
        (Some("SHA256"), Some(8), Some(30))
    );
    assert!(e.get("secret").is_none());

    let c = env
        .run(&["totp", "code", "github", "--at", "59", "--json"])
        .ok()
        .json();
    assert_eq!(
        c,
        json!({"name": "github", "code": "46119246", "digits": 8, "period": 30, "algorithm": "SHA256",
               "remaining_seconds": 1, "valid_until": "1970-01-01T00:01:00Z"})
    );
    assert_eq!(
        env.run(&["totp", "code", "GitHub", "--at", "1111111109"])
            .ok()
            .stdout
            .trim(),
        "68084774"
    );

    // --min-validity skips a code about to expire: at t=59 only 1 s is left
    let c = env
        .run(&[
            "totp",
            "code",
            "github",
            "--at",
            "59",
            "--min-validity",
            "5",
            "--json",
        ])
        .ok()
        .json();
    let next = env
        .run(&["totp", "code", "github", "--at", "60", "--json"])
        .ok()
        .json();
    assert_eq!(c, next);
    assert_eq!(c["remaining_seconds"], 30);
    assert_eq!(c["valid_until"], "1970-01-01T00:01:30Z");
    // with enough time left, no skip
    let c = env
        .run(&[
            "totp",
            "code",
            "github",
            "--at",
            "31",
            "--min-validity",
            "5",
            "--json",
        ])
        .ok()
        .json();
    assert_eq!(c["remaining_seconds"], 29);
    // real time: the answer has at least the asked validity
    let c = env
        .run(&["totp", "code", "github", "--min-validity", "3", "--json"])
        .ok()
        .json();
    assert!(c["remaining_seconds"].as_u64().unwrap() >= 3);
    assert_eq!(c["code"].as_str().unwrap().len(), 8);
    env.run(&["totp", "code", "github", "--min-validity", "30"])
        .fails(EXIT_INVALID);

    // a URL as NAME is cleaned like a password domain; --secret on argv
    let g = env
        .run(&[
            "totp",
            "add",
            "https://accounts.google.com/signin",
            "--secret",
            &b32(RFC_SHA1),
            "--digits",
            "8",
            "--json",
        ])
        .ok()
        .json();
    assert_eq!(g["name"], "google.com");
    assert_eq!(
        env.run(&["totp", "code", "google.com", "--at", "59"])
            .ok()
            .stdout
            .trim(),
        "94287082"
    );
    // --secret-stdin with spaces and lower case, SHA512
    let spaced = b32(RFC_SHA512)
        .to_lowercase()
        .as_bytes()
        .chunks(4)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join(" ");
    env.run_stdin(
        &[
            "totp",
            "add",
            "bank",
            "--secret-stdin",
            "--algorithm",
            "sha512",
            "--digits",
            "8",
        ],
        &format!("{spaced}\n"),
    )
    .ok();
    assert_eq!(
        env.run(&["totp", "code", "bank", "--at", "20000000000"])
            .ok()
            .stdout
            .trim(),
        "47863826"
    );

    let list = env.run(&["totp", "list", "--json"]).ok().json();
    let names: Vec<_> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["bank", "github", "google.com"]);
    assert_eq!(
        env.run(&["totp", "show", "github", "--json"]).ok().json(),
        e
    );

    // the URI export carries the seed and round-trips
    let exported = env.run(&["totp", "uri", "github", "--json"]).ok().json()["uri"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(exported.contains(&b32(RFC_SHA256)));
    env.run(&["totp", "add", "copy", "--uri", &exported]).ok();
    assert_eq!(
        env.run(&["totp", "code", "copy", "--at", "59"])
            .ok()
            .stdout
            .trim(),
        "46119246"
    );

    let d = env.run(&["totp", "delete", "copy", "--json"]).ok().json();
    assert_eq!(d["deleted"], true);
    env.run(&["totp", "code", "copy"]).fails(EXIT_NOT_FOUND);
    env.run(&["totp", "delete", "copy"]).fails(EXIT_NOT_FOUND);
    env.run(&["totp", "show", "nothing"]).fails(EXIT_NOT_FOUND);
    env.run(&["totp", "add", "github", "--secret", &b32(RFC_SHA1)])
        .fails(EXIT_CONFLICT);
}

#[test]
fn seeds_never_printed_outside_uri() {
    let (env, _) = Env::with_identity("alice");
    let seed = b32(b"seed-that-must-not-print");
    let variants = [seed.clone(), seed.to_lowercase()];
    let mut outputs = Vec::new();
    outputs.push(
        env.run(&[
            "totp", "add", "svc", "--secret", &seed, "--issuer", "Svc", "--json",
        ])
        .ok(),
    );
    outputs.push(
        env.run(&["totp", "add", "svc", "--secret", &seed])
            .fails(EXIT_CONFLICT),
    );
    outputs.push(env.run(&["totp", "list", "--json"]).ok());
    outputs.push(env.run(&["totp", "list"]).ok());
    outputs.push(env.run(&["totp", "show", "svc", "--json"]).ok());
    outputs.push(env.run(&["totp", "show", "svc"]).ok());
    outputs.push(env.run(&["totp", "code", "svc", "--json"]).ok());
    outputs.push(
        env.run(&["totp", "code", "svc", "--min-validity", "99"])
            .fails(EXIT_INVALID),
    );
    outputs.push(
        env.run(&["totp", "add", "x", "--secret", &format!("{seed}!")])
            .fails(EXIT_INVALID),
    );
    outputs.push(
        env.run(&[
            "totp", "add", "x", "--secret", &seed, "--digits", "9", "--json",
        ])
        .fails(EXIT_INVALID),
    );
    for r in &outputs {
        for v in &variants {
            assert!(
                !r.stdout.contains(v.as_str()) && !r.stderr.contains(v.as_str()),
                "seed printed: {} {}",
                r.stdout,
                r.stderr
            );
        }
    }
    assert!(env.run(&["totp", "uri", "svc"]).ok().stdout.contains(&seed));
}

#[test]
fn bad_input_is_refused_and_nothing_is_stored() {
    let (env, _) = Env::with_identity("alice");
    let good = b32(RFC_SHA1);
    let cases: Vec<Vec<String>> = vec![
        vec![
            "--secret".into(),
            good.clone(),
            "--digits".into(),
            "5".into(),
        ],
        vec![
            "--secret".into(),
            good.clone(),
            "--digits".into(),
            "9".into(),
        ],
        vec![
            "--secret".into(),
            good.clone(),
            "--period".into(),
            "0".into(),
        ],
        vec![
            "--secret".into(),
            good.clone(),
            "--period".into(),
            "301".into(),
        ],
        vec!["--secret".into(), "".into()],
        vec!["--secret".into(), "not base32!".into()],
        vec!["--secret".into(), "01234567".into()],
        vec!["--secret".into(), b32(b"123456789")], // 72 bits
        vec![
            "--secret".into(),
            good.clone(),
            "--algorithm".into(),
            "MD5".into(),
        ],
        vec![
            "--secret".into(),
            good.clone(),
            "--algorithm".into(),
            "steam".into(),
            "--digits".into(),
            "6".into(),
        ],
        vec![
            "--uri".into(),
            format!("otpauth://hotp/x?secret={good}&counter=0"),
        ],
        vec![
            "--uri".into(),
            format!("otpauth://totp/Evil:x?secret={good}&issuer=Good"),
        ],
        vec![
            "--uri".into(),
            format!("otpauth://totp/x?secret={good}&period=0"),
        ],
        vec![
            "--uri".into(),
            format!("otpauth://totp/x?secret={good}&digits=10"),
        ],
        vec!["--uri".into(), "otpauth://totp/x?issuer=NoSecret".into()],
        vec!["--uri".into(), "http://example.com".into()],
        vec![], // no seed at all
        vec![
            "--uri".into(),
            format!("otpauth://totp/x?secret={good}"),
            "--digits".into(),
            "8".into(),
        ],
    ];
    for args in &cases {
        let mut full = vec!["totp", "add", "name", "--json"];
        full.extend(args.iter().map(String::as_str));
        let r = env.run(&full).fails(EXIT_INVALID);
        assert!(!r.stderr.is_empty(), "{args:?}");
    }
    let hotp = env
        .run(&[
            "totp",
            "add",
            "--uri",
            &format!("otpauth://hotp/x?secret={good}&counter=0"),
        ])
        .fails(EXIT_INVALID);
    assert!(hotp.stderr.contains("not supported"));
    // without NAME and without an issuer there is no name
    env.run(&["totp", "add", "--secret", &good])
        .fails(EXIT_INVALID);
    env.run(&["totp", "code", "x", "--at", "-1"])
        .fails(EXIT_INVALID);
    env.run(&["totp", "code", "x", "--at", "soon"])
        .fails(EXIT_INVALID);
    assert_eq!(env.run(&["totp", "list", "--json"]).ok().json(), json!([]));
    // an 80-bit secret is accepted with a warning
    let r = env
        .run(&["totp", "add", "legacy", "--secret", &b32(b"1234567890")])
        .ok();
    assert!(
        r.stderr.contains("warning") && r.stderr.contains("80 bits"),
        "{}",
        r.stderr
    );
    let r = env.run(&["totp", "add", "modern", "--secret", &good]).ok();
    assert!(!r.stderr.contains("warning"));
}

#[test]
fn steam_guard() {
    let (env, _) = Env::with_identity("gamer");
    let uri = format!(
        "otpauth://totp/Steam:gaben?secret={}&issuer=Steam",
        b32(RFC_SHA1)
    );
    let e = env
        .run(&["totp", "add", "--uri", &uri, "--json"])
        .ok()
        .json();
    assert_eq!(e["algorithm"], "STEAM");
    assert_eq!(e["digits"], 5);
    let c = env
        .run(&["totp", "code", "steam", "--at", "1700000000", "--json"])
        .ok()
        .json();
    let code = c["code"].as_str().unwrap();
    assert_eq!(code.len(), 5);
    assert!(
        code.chars()
            .all(|ch| "23456789BCDFGHJKMNPQRTVWXY".contains(ch)),
        "{code}"
    );
    let e = env
        .run(&[
            "totp",
            "add",
            "steam2",
            "--secret",
            &b32(RFC_SHA1),
            "--algorithm",
            "STEAM",
            "--json",
        ])
        .ok()
        .json();
    assert_eq!(e["digits"], 5);
    assert_eq!(
        env.run(&["totp", "code", "steam2", "--at", "1700000000", "--json"])
            .ok()
            .json()["code"],
        code
    );
}

#[test]
fn seed_bytes_never_at_rest() {
    let (env, _) = Env::with_identity("alice");
    let holder = env.db();
    holder
        .query_row("SELECT count(*) FROM records", [], |r| r.get::<_, i64>(0))
        .unwrap();
    let seed = b"canary-seed-bytes-q9!";
    let encoded = b32(seed);
    env.run(&[
        "totp",
        "add",
        "canary-totp-name",
        "--secret",
        &encoded,
        "--issuer",
        "CanaryIssuer",
        "--account",
        "canary-account",
    ])
    .ok();
    env.run(&["totp", "code", "canary-totp-name"]).ok();
    for (path, bytes) in env.stored_bytes() {
        for needle in [
            &seed[..],
            encoded.as_bytes(),
            encoded.to_lowercase().as_bytes(),
            b"canary-totp-name",
            b"CanaryIssuer",
            b"canary-account",
        ] {
            assert!(
                !contains(&bytes, needle),
                "{} found in {}",
                String::from_utf8_lossy(needle),
                path.display()
            );
        }
    }
    drop(holder);
}
