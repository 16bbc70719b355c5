//! The backend conformance suite, run through a real `ravi serve` server:
//! a `RemoteBackend` speaking HTTP to the server's SQLite store.
// Helpers outside #[test] functions unwrap too: this is test code.
#![allow(clippy::unwrap_used)]

use vault_core::backend::conformance::{self, Harness};
use vault_core::backend::{Backend, RemoteBackend};
use vault_server::{Scope, ServeOptions, SqliteStore};

struct Server {
    url: String,
    token: String,
    _dir: tempfile::TempDir,
}

impl Harness for Server {
    fn open(&self) -> Box<dyn Backend + Send> {
        Box::new(RemoteBackend::new(&self.url, &self.token).unwrap())
    }
}

/// A server on a free loopback port over a fresh store holding the
/// suite's header (it runs until the test process ends).
fn server() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("server.db");
    let (token, _) = SqliteStore::open(&data)
        .unwrap()
        .create_token("owner", &Scope::Owner, None)
        .unwrap();
    let opts = ServeOptions {
        listen: "127.0.0.1:0".into(),
        data,
    };
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        vault_server::serve(&opts, |addr| tx.send(addr).unwrap()).unwrap();
    });
    let url = format!("http://{}", rx.recv().unwrap());
    RemoteBackend::new(&url, &token)
        .unwrap()
        .create(&conformance::header())
        .unwrap();
    Server {
        url,
        token,
        _dir: dir,
    }
}

#[test]
fn conformance_suite_over_http() {
    conformance::run_all(&server);
}
