//! `ravi serve` on PostgreSQL: the backend conformance suite through two
//! servers sharing one database, and the two-machine scenario with the
//! owner and the agent on different servers.

use std::path::PathBuf;

use vault_core::backend::conformance::{self, Harness};
use vault_core::backend::{Backend, RemoteBackend};
use vault_server::{Scope, ServeOptions, StoreConfig};

use crate::pg_cluster::Cluster;
use crate::serve::{Server, two_machines};

/// Servers over one store: handles alternate between them.
struct Servers {
    urls: Vec<String>,
    token: String,
    next: std::sync::atomic::AtomicUsize,
}

impl Harness for Servers {
    fn open(&self) -> Box<dyn Backend + Send> {
        let i = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Box::new(RemoteBackend::new(&self.urls[i % self.urls.len()], &self.token).unwrap())
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

/// The conformance suite on PostgreSQL, each case on a fresh database
/// served by two servers (so concurrent commits arrive through both).
pub fn conformance_through_two_servers() {
    let cluster = Cluster::start();
    let n = std::sync::atomic::AtomicUsize::new(0);
    conformance::run_all(&|| {
        let name = format!(
            "case{}",
            n.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let store = StoreConfig::Postgres(cluster.database(&name));
        let (token, _) = store
            .open()
            .unwrap()
            .create_token("owner", &Scope::Owner, None)
            .unwrap();
        let urls = vec![start(store.clone()), start(store)];
        RemoteBackend::new(&urls[0], &token)
            .unwrap()
            .create(&conformance::header())
            .unwrap();
        Servers {
            urls,
            token,
            next: 0.into(),
        }
    });
}

/// Two machines on two `ravi serve` processes sharing one database: the
/// owner talks to one, the agent to the other; `pg_dump` holds no secret.
pub fn two_machines_on_two_servers() {
    let cluster = Cluster::start();
    let db = cluster.database("ravi");
    let (one, two) = (Server::start_pg(&db), Server::start_pg(&db));
    two_machines(&one, &two, &|| {
        vec![(PathBuf::from("pg_dump"), cluster.dump("ravi"))]
    });
    // a database from a newer ravi is refused, not modified
    cluster.sql("ravi", "UPDATE server_schema SET version = 99");
    let err = StoreConfig::Postgres(db).open().unwrap_err();
    assert!(matches!(err, vault_core::Error::Conflict(_)), "{err}");
}
