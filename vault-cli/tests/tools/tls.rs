//! `ravi serve --tls-cert --tls-key`: clients reach it over HTTPS, trusting
//! a private certificate through `RAVI_CA_FILE`; without that root the
//! connection is refused (exit 7), and plain HTTP gets no answer.

use std::process::Command;

use crate::common::*;
use crate::serve::Server;

pub fn https_with_a_private_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let p = |f: &str| dir.path().join(f);
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    // a private CA, and a server certificate it signs for 127.0.0.1
    openssl(
        &[
            &["req", "-x509"][..],
            &ec,
            &[
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                "/CN=ravi test CA",
            ],
        ]
        .concat(),
    );
    openssl(
        &[
            &["req"][..],
            &ec,
            &[
                "-keyout",
                "key.pem",
                "-out",
                "server.csr",
                "-subj",
                "/CN=localhost",
            ],
        ]
        .concat(),
    );
    std::fs::write(
        p("server.ext"),
        "basicConstraints=CA:FALSE\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "cert.pem",
        "-days",
        "2",
        "-extfile",
        "server.ext",
    ]);
    let (cert, key, ca) = (p("cert.pem"), p("key.pem"), p("ca.pem"));
    let server = Server::start_tls(&cert, &key);
    assert!(server.url.starts_with("https://"), "{}", server.url);
    let token = server.token(&["--name", "owner", "--owner"]);
    let env = Env::empty();
    let run = |args: &[&str], trust: bool| {
        let mut c = env.command();
        c.env_remove("RAVI_VAULT")
            .env("RAVI_SERVER", &server.url)
            .env("RAVI_TOKEN", &token);
        if trust {
            c.env("RAVI_CA_FILE", &ca);
        }
        c.args(args);
        run_command(&mut c)
    };
    run(&[&["init"][..], &WEAK_KDF].concat(), true).ok();
    run(&["identity", "create", "--name", "alice"], true).ok();
    run(
        &["--identity", "alice", "secrets", "set", "K", "over-tls"],
        true,
    )
    .ok();
    let r = run(&["--identity", "alice", "secrets", "get", "K"], true).ok();
    assert_eq!(r.stdout.trim(), "over-tls");
    // an unknown certificate is refused, not trusted
    let r = run(&["--identity", "alice", "secrets", "get", "K"], false).fails(7);
    assert!(!r.stdout.contains("over-tls"));
    // plain HTTP to the HTTPS port gets no answer
    let plain = server.url.replace("https://", "http://");
    let mut c = env.command();
    c.env_remove("RAVI_VAULT")
        .env("RAVI_SERVER", &plain)
        .env("RAVI_TOKEN", &token)
        .args(["vault", "info"]);
    assert_ne!(run_command(&mut c).code, 0);
}
