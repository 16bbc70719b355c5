//! A store behind `ravi serve`: every read of the seam is one HTTP request,
//! every batch one `POST /api/vault/commit` (docs/API.md). The server keeps
//! rows exactly as sealed here; nothing it answers is trusted beyond what
//! the layers above verify (signatures, heads, the record tree).
//!
//! Every wait is bounded: 5 s to connect, 30 s for a whole exchange. An
//! unreachable server, a timeout or an overloaded server is
//! [`Error::Unavailable`].

use std::time::Duration;

use data_encoding::HEXLOWER;
use serde::de::DeserializeOwned;

use super::{
    Backend, Batch, Changes, CommitError, Conflict, GrantRow, IdentityRow, PendingIdentity,
    RecordQuery, RecordRow, SessionRow, VaultRow,
};
use crate::error::{Error, Result};

/// Time allowed to open a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Time allowed for one whole request and its answer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest answer read (a listing of every record of a large identity).
const MAX_BODY: u64 = 1 << 30;

/// A vault on a `ravi serve` server, reached with a bearer token.
pub struct RemoteBackend {
    agent: ureq::Agent,
    base: String,
    token: String,
}

impl std::fmt::Debug for RemoteBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteBackend")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

/// An answer: its status and body.
struct Answer {
    status: u16,
    body: String,
}

impl Answer {
    fn json<T: DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_str(&self.body)
            .map_err(|e| Error::Storage(format!("the server's answer is malformed ({e})").into()))
    }

    /// The server's error code, from `{"error": …}`.
    fn code(&self) -> String {
        serde_json::from_str::<serde_json::Value>(&self.body)
            .ok()
            .and_then(|v| v.get("error").and_then(|m| m.as_str()).map(str::to_string))
            .unwrap_or_default()
    }

    /// The server's message, from `{"message": …}`.
    fn message(&self) -> String {
        serde_json::from_str::<serde_json::Value>(&self.body)
            .ok()
            .and_then(|v| {
                v.get("message")
                    .and_then(|m| m.as_str())
                    .map(str::to_string)
            })
            .unwrap_or_else(|| format!("HTTP {}", self.status))
    }
}

impl RemoteBackend {
    /// A client of the server at `base` (`http://…` or `https://…`).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a URL that is not http(s).
    pub fn new(base: &str, token: &str) -> Result<RemoteBackend> {
        let base = base.trim_end_matches('/').to_string();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(Error::InvalidInput(format!(
                "the server URL {base:?} must start with http:// or https://"
            )));
        }
        if token.is_empty() || token.chars().any(|c| c.is_control() || c == ' ') {
            return Err(Error::InvalidInput("the server token is malformed".into()));
        }
        let mut config = ureq::Agent::config_builder()
            .timeout_connect(Some(CONNECT_TIMEOUT))
            .timeout_global(Some(REQUEST_TIMEOUT))
            .http_status_as_error(false);
        if let Some(roots) = custom_roots()? {
            config = config.tls_config(
                ureq::tls::TlsConfig::builder()
                    .root_certs(ureq::tls::RootCerts::new_with_certs(&roots))
                    .build(),
            );
        }
        let agent: ureq::Agent = config.build().into();
        Ok(RemoteBackend {
            agent,
            base,
            token: token.to_string(),
        })
    }

    fn unavailable(&self, e: &ureq::Error) -> Error {
        Error::Unavailable(format!("the server at {} is unavailable: {e}", self.base))
    }

    fn finish(
        &self,
        r: std::result::Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<Answer> {
        let mut resp = r.map_err(|e| self.unavailable(&e))?;
        let status = resp.status().as_u16();
        let body = resp
            .body_mut()
            .with_config()
            .limit(MAX_BODY)
            .read_to_string()
            .map_err(|e| self.unavailable(&e))?;
        let answer = Answer { status, body };
        match status {
            401 => Err(Error::Locked(format!(
                "the server at {} refused the token: {}",
                self.base,
                answer.message()
            ))),
            403 => Err(Error::Denied(format!(
                "the server's token does not allow this: {}",
                answer.message()
            ))),
            429 | 502..=504 => Err(Error::Unavailable(format!(
                "the server at {} is unavailable: {}",
                self.base,
                answer.message()
            ))),
            500..=599 => Err(Error::Storage(
                format!("the server failed: {}", answer.message()).into(),
            )),
            _ => Ok(answer),
        }
    }

    fn get(&self, path: &str, identity: Option<&str>, query: &[(&str, String)]) -> Result<Answer> {
        let mut req = self
            .agent
            .get(format!("{}{path}", self.base))
            .header("Authorization", format!("Bearer {}", self.token));
        if let Some(i) = identity {
            req = req.header("X-Ravi-Identity", i);
        }
        for (k, v) in query {
            req = req.query(*k, v);
        }
        self.finish(req.call())
    }

    /// A read that answers one row, or 404 for none.
    fn get_opt<T: DeserializeOwned>(
        &self,
        path: &str,
        identity: Option<&str>,
        query: &[(&str, String)],
    ) -> Result<Option<T>> {
        if identity.is_some_and(|i| !is_uuid(i)) {
            // No identity has such an id.
            return Ok(None);
        }
        let a = self.get(path, identity, query)?;
        match a.status {
            200 => a.json().map(Some),
            // An identity requested over REST that no owner adopted yet.
            404 if a.code() == "pending" => Err(Error::NotFound(a.message())),
            404 => Ok(None),
            _ => Err(unexpected(&a)),
        }
    }

    fn get_all<T: DeserializeOwned>(
        &self,
        path: &str,
        identity: Option<&str>,
        query: &[(&str, String)],
    ) -> Result<T> {
        if identity.is_some_and(|i| !is_uuid(i)) {
            // No identity has such an id: nothing of it exists.
            return serde_json::from_str("[]").map_err(Error::Encoding);
        }
        let a = self.get(path, identity, query)?;
        match a.status {
            200 => a.json(),
            _ => Err(unexpected(&a)),
        }
    }

    /// Creates the vault on the server from its sealed header row.
    ///
    /// # Errors
    /// [`Error::Conflict`] if the server holds a vault already.
    pub fn create(&self, header: &VaultRow) -> Result<()> {
        let body = serde_json::to_string(header).map_err(Error::Encoding)?;
        let a = self.finish(
            self.agent
                .put(format!("{}/api/vault/header", self.base))
                .header("Authorization", format!("Bearer {}", self.token))
                .header("Content-Type", "application/json")
                .send(body),
        )?;
        match a.status {
            200 | 201 => Ok(()),
            409 => Err(Error::Conflict(format!(
                "the server at {} holds a vault already",
                self.base
            ))),
            _ => Err(unexpected(&a)),
        }
    }
}

/// The certificates in the PEM file `RAVI_CA_FILE` names, if it is set:
/// the only roots then trusted for `https://` servers (a private CA, or a
/// server's self-signed certificate). Without it, the Web PKI roots.
fn custom_roots() -> Result<Option<Vec<ureq::tls::Certificate<'static>>>> {
    let Some(path) = std::env::var_os("RAVI_CA_FILE").filter(|p| !p.is_empty()) else {
        return Ok(None);
    };
    let shown = std::path::Path::new(&path).display().to_string();
    let pem = std::fs::read(&path).map_err(|e| Error::Io {
        context: format!("cannot read RAVI_CA_FILE {shown}"),
        source: e,
    })?;
    let mut certs = Vec::new();
    for item in ureq::tls::parse_pem(&pem) {
        match item {
            Ok(ureq::tls::PemItem::Certificate(c)) => certs.push(c),
            Ok(_) => {}
            Err(e) => {
                return Err(Error::InvalidInput(format!(
                    "RAVI_CA_FILE {shown} is not PEM: {e}"
                )));
            }
        }
    }
    if certs.is_empty() {
        return Err(Error::InvalidInput(format!(
            "RAVI_CA_FILE {shown} holds no certificate"
        )));
    }
    Ok(Some(certs))
}

fn is_uuid(s: &str) -> bool {
    uuid::Uuid::try_parse(s).is_ok_and(|u| u.hyphenated().to_string() == s)
}

fn unexpected(a: &Answer) -> Error {
    Error::Storage(format!("unexpected answer from the server: {}", a.message()).into())
}

impl Backend for RemoteBackend {
    fn location(&self) -> String {
        self.base.clone()
    }

    fn header(&self) -> Result<VaultRow> {
        self.get_opt("/api/vault/header", None, &[])?
            .ok_or_else(|| Error::NotFound(format!("no vault on the server at {}", self.base)))
    }

    fn identities(&self) -> Result<Vec<IdentityRow>> {
        self.get_all("/api/vault/identities", None, &[])
    }

    fn identity(&self, uuid: &str) -> Result<Option<IdentityRow>> {
        self.get_opt("/api/vault/identity", Some(uuid), &[])
    }

    fn identity_by_name(&self, name: &str) -> Result<Option<IdentityRow>> {
        self.get_opt(
            "/api/vault/identity-by-name",
            None,
            &[("name", name.to_string())],
        )
    }

    fn grants(&self, identity_uuid: &str) -> Result<Vec<GrantRow>> {
        self.get_all("/api/vault/grants", Some(identity_uuid), &[])
    }

    fn grant_for(&self, identity_uuid: &str, recipient: &[u8]) -> Result<Option<GrantRow>> {
        self.get_opt(
            "/api/vault/grant",
            Some(identity_uuid),
            &[("recipient", HEXLOWER.encode(recipient))],
        )
    }

    fn record(&self, identity_uuid: &str, kind: u8, uuid: &str) -> Result<Option<RecordRow>> {
        self.get_opt(
            "/api/vault/record",
            Some(identity_uuid),
            &[("kind", kind.to_string()), ("uuid", uuid.to_string())],
        )
    }

    fn records_by_index(
        &self,
        identity_uuid: &str,
        kind: u8,
        blind_index: &[u8],
    ) -> Result<Vec<RecordRow>> {
        self.get_all(
            "/api/vault/records",
            Some(identity_uuid),
            &[
                ("kind", kind.to_string()),
                ("blind_index", HEXLOWER.encode(blind_index)),
            ],
        )
    }

    fn records(&self, identity_uuid: &str, q: &RecordQuery) -> Result<Vec<RecordRow>> {
        let mut query = Vec::new();
        if let Some(k) = q.kind {
            query.push(("kind", k.to_string()));
        }
        if let Some(a) = &q.after {
            query.push(("after", a.clone()));
        }
        if let Some(l) = q.limit {
            query.push(("limit", l.to_string()));
        }
        if let Some(b) = q.bucket {
            query.push(("bucket", b.to_string()));
        }
        self.get_all("/api/vault/records", Some(identity_uuid), &query)
    }

    fn tree_nodes(&self, identity_uuid: &str, ids: &[u32]) -> Result<Vec<(u32, Vec<u8>)>> {
        #[derive(serde::Deserialize)]
        struct Nodes(#[serde(with = "super::wire::stored_nodes")] Vec<(u32, Vec<u8>)>);
        let ids = ids.iter().map(u32::to_string).collect::<Vec<_>>().join(",");
        let nodes: Nodes = self.get_all("/api/vault/tree", Some(identity_uuid), &[("ids", ids)])?;
        Ok(nodes.0)
    }

    fn session(&self, session_id: &str) -> Result<Option<SessionRow>> {
        if !session_id.chars().all(|c| c.is_ascii_hexdigit()) {
            return Ok(None);
        }
        self.get_opt(&format!("/api/vault/sessions/{session_id}"), None, &[])
    }

    fn pending_identities(&self) -> Result<Vec<PendingIdentity>> {
        self.get_all("/api/vault/pending", None, &[])
    }

    fn commit(&self, batch: &Batch) -> std::result::Result<Changes, CommitError> {
        #[derive(serde::Deserialize)]
        struct Applied {
            changes: Changes,
        }
        #[derive(serde::Deserialize)]
        struct Refused {
            conflict: Conflict,
        }
        let body = serde_json::to_string(batch).map_err(Error::Encoding)?;
        let a = self.finish(
            self.agent
                .post(format!("{}/api/vault/commit", self.base))
                .header("Authorization", format!("Bearer {}", self.token))
                .header("Content-Type", "application/json")
                .send(body),
        )?;
        match a.status {
            200 => Ok(a.json::<Applied>()?.changes),
            409 => Err(CommitError::Conflict(a.json::<Refused>()?.conflict)),
            _ => Err(CommitError::Failed(unexpected(&a))),
        }
    }
}
