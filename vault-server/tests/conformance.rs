//! The backend conformance suite, run through a real `ravi serve` server:
//! a `RemoteBackend` speaking HTTP to the server's SQLite store.
// Helpers outside #[test] functions unwrap too: this is test code.
#![allow(clippy::unwrap_used)]

use vault_core::backend::conformance::{self, Harness};
use vault_core::backend::{Backend, RemoteBackend};
use vault_server::{Scope, ServeOptions, SqliteStore, Store, StoreConfig};

struct Server {
    /// One or more servers over the same store: handles alternate.
    urls: Vec<String>,
    token: String,
    next: std::sync::atomic::AtomicUsize,
    _dir: tempfile::TempDir,
}

impl Harness for Server {
    fn open(&self) -> Box<dyn Backend + Send> {
        let i = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let url = &self.urls[i % self.urls.len()];
        Box::new(RemoteBackend::new(url, &self.token).unwrap())
    }
}

/// An in-process server on a free loopback port over `store`; its URL.
fn start(store: StoreConfig) -> String {
    vault_server::serve_in_background(ServeOptions {
        listen: "127.0.0.1:0".into(),
        store,
        tls: None,
    })
}

/// A server on a free loopback port over a fresh SQLite store holding the
/// suite's header.
fn server() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("server.db");
    let (token, _) = Store::Sqlite(SqliteStore::open(&data).unwrap())
        .create_token("owner", &Scope::Owner, None)
        .unwrap();
    let url = start(StoreConfig::Sqlite(data));
    RemoteBackend::new(&url, &token)
        .unwrap()
        .create(&conformance::header())
        .unwrap();
    Server {
        urls: vec![url],
        token,
        next: 0.into(),
        _dir: dir,
    }
}

#[test]
fn conformance_suite_over_http() {
    conformance::run_all(&server);
}
