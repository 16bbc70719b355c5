//! `ravi serve`: an HTTP server that stores ravi vault rows exactly as
//! clients sealed them. It holds no key and cannot decrypt; clients verify
//! everything it answers (SPEC 4a–4d). The interface is in `docs/API.md`,
//! the OpenAPI document at `/api/schema/`.

pub mod api;
mod pg;
pub mod store;
mod tls;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use vault_core::{Error, Result};

pub use pg::PgStore;
pub use store::{Scope, SqliteStore, Store, TokenInfo};

/// The loopback address `ravi serve` listens on by default.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8700";

/// Where the rows are kept. `Debug` shows a database URL without its
/// password.
#[derive(Clone)]
pub enum StoreConfig {
    /// One SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL database URL (`postgres://…`).
    Postgres(String),
}

impl std::fmt::Debug for StoreConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreConfig::Sqlite(p) => f.debug_tuple("Sqlite").field(p).finish(),
            StoreConfig::Postgres(url) => {
                f.debug_tuple("Postgres").field(&pg::redacted(url)).finish()
            }
        }
    }
}

impl StoreConfig {
    /// Opens the store (for `ravi serve token …`, outside the server).
    ///
    /// # Errors
    /// Storage errors; [`Error::Unavailable`] for an unreachable database.
    pub fn open(&self) -> Result<Store> {
        self.open_in(None)
    }

    fn open_in(&self, handle: Option<tokio::runtime::Handle>) -> Result<Store> {
        match self {
            StoreConfig::Sqlite(p) => SqliteStore::open(p).map(Store::Sqlite),
            StoreConfig::Postgres(url) => PgStore::open(url, handle).map(Store::Postgres),
        }
    }
}

/// How to serve.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// `HOST:PORT` to listen on (port 0: any free port).
    pub listen: String,
    /// The store.
    pub store: StoreConfig,
    /// HTTPS: a PEM certificate chain and its private key.
    pub tls: Option<(PathBuf, PathBuf)>,
}

/// One line per request on stderr: method, path (never the query, which
/// can carry names), status and time. No header or body is logged.
async fn log(req: Request, next: Next) -> Response {
    let (method, path) = (req.method().clone(), req.uri().path().to_string());
    let start = Instant::now();
    let resp = next.run(req).await;
    eprintln!(
        "ravi serve: {method} {path} {} {:.1} ms",
        resp.status().as_u16(),
        start.elapsed().as_secs_f64() * 1000.0
    );
    resp
}

/// Serves until SIGINT or SIGTERM. `ready` gets the bound address once
/// the server accepts connections.
///
/// # Errors
/// [`Error::Io`] if the address cannot be bound; store errors.
pub fn serve(opts: &ServeOptions, ready: impl FnOnce(SocketAddr)) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Io {
            context: "cannot start the server runtime".into(),
            source: e,
        })?;
    let acceptor = match &opts.tls {
        Some((cert, key)) => Some(tls::acceptor(cert, key)?),
        None => None,
    };
    let store = opts.store.open_in(Some(rt.handle().clone()))?;
    let state = Arc::new(api::AppState::new(store));
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&opts.listen)
            .await
            .map_err(|e| Error::Io {
                context: format!("cannot listen on {}", opts.listen),
                source: e,
            })?;
        let addr = listener.local_addr().map_err(|e| Error::Io {
            context: "cannot read the bound address".into(),
            source: e,
        })?;
        ready(addr);
        let app = api::router(state)
            .layer(axum::middleware::from_fn(log))
            .into_make_service_with_connect_info::<api::Peer>();
        let failed = |e| Error::Io {
            context: "the server failed".into(),
            source: e,
        };
        match acceptor {
            None => axum::serve(listener, app)
                .with_graceful_shutdown(shutdown())
                .await
                .map_err(failed),
            Some(acceptor) => {
                let listener = tls::TlsListener::new(listener, acceptor).map_err(failed)?;
                axum::serve(listener, app)
                    .with_graceful_shutdown(shutdown())
                    .await
                    .map_err(failed)
            }
        }
    })
}

/// Starts [`serve`] on a thread of its own (for tests and embedding) and
/// returns its base URL once it accepts connections. The server runs until
/// the process ends.
///
/// # Panics
/// If the server cannot start.
pub fn serve_in_background(opts: ServeOptions) -> String {
    let scheme = if opts.tls.is_some() { "https" } else { "http" };
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        if let Err(e) = serve(&opts, |addr| {
            let _ = tx.send(addr);
        }) {
            eprintln!("ravi serve: {e}");
        }
    });
    let addr = rx.recv().expect("the server did not start");
    format!("{scheme}://{addr}")
}

async fn shutdown() {
    let term = async {
        #[cfg(unix)]
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
            return;
        }
        std::future::pending::<()>().await;
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
}
