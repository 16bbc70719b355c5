//! The HTTP interface (docs/API.md): the seed's identity endpoints, and the
//! vault endpoints through which clients read and commit sealed rows.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use vault_core::Error;
use vault_core::backend::{
    Backend, Batch, CommitError, IdentityRow, Precondition, RecordQuery, VaultRow, Write,
};

use crate::store::{Pending, Scope, Store};

/// Failed authentications from one address before it is throttled.
const MAX_FAILURES: u32 = 10;
/// The window over which failures are counted, and the throttle's length.
const FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// Largest request body (a rotation re-seals every record in one batch).
const MAX_BODY: usize = 512 << 20;

/// The OpenAPI document served at `/api/schema/`.
pub const OPENAPI: &str = include_str!("openapi.json");

/// The address a request came from (plain TCP or TLS).
#[derive(Clone, Copy, Debug)]
pub struct Peer(pub IpAddr);

impl
    axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, tokio::net::TcpListener>>
    for Peer
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, tokio::net::TcpListener>) -> Self {
        Peer(stream.remote_addr().ip())
    }
}

impl
    axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, crate::tls::TlsListener>>
    for Peer
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, crate::tls::TlsListener>) -> Self {
        Peer(stream.remote_addr().ip())
    }
}

/// What every handler shares.
pub struct AppState {
    /// The store.
    pub store: Store,
    failures: Mutex<HashMap<IpAddr, (u32, Instant)>>,
}

impl AppState {
    /// A state over `store`.
    #[must_use]
    pub fn new(store: Store) -> Self {
        AppState {
            store,
            failures: Mutex::new(HashMap::new()),
        }
    }
}

type Shared = Arc<AppState>;

/// An error answer: `{"error": code, "message": …}` with its status.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    extra: Option<(&'static str, Value)>,
    retry_after: Option<u64>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            extra: None,
            retry_after: None,
        }
    }

    fn forbidden() -> Self {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "this token does not cover that identity or operation",
        )
    }

    fn bad(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_input", message)
    }

    fn not_found(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let status = match &e {
            Error::InvalidInput(_) => StatusCode::BAD_REQUEST,
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::Conflict(_) | Error::Ambiguous { .. } => StatusCode::CONFLICT,
            Error::Locked(_) | Error::Denied(_) | Error::WrongPassphrase => StatusCode::FORBIDDEN,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let message = if status == StatusCode::INTERNAL_SERVER_ERROR {
            eprintln!("ravi serve: {e}");
            "the store failed; see the server's log".to_string()
        } else {
            e.to_string()
        };
        ApiError::new(status, e.code(), message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({ "error": self.code, "message": self.message });
        if let Some((k, v)) = self.extra {
            body[k] = v;
        }
        if let Some(s) = self.retry_after {
            body["retry_after_seconds"] = json!(s);
        }
        let mut r = (self.status, axum::Json(body)).into_response();
        if let Some(s) = self.retry_after
            && let Ok(v) = HeaderValue::from_str(&s.to_string())
        {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
        r
    }
}

type ApiResult<T> = Result<T, ApiError>;

/// Runs blocking store work off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> ApiResult<T> + Send + 'static,
) -> ApiResult<T> {
    tokio::task::spawn_blocking(f).await.map_err(|_| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "a worker failed",
        )
    })?
}

/// The router over `state`.
pub fn router(state: Shared) -> Router {
    Router::new()
        .route("/api/schema/", get(schema))
        .route("/api/health", get(health))
        .route(
            "/api/identities/",
            get(list_identities).post(create_identity),
        )
        .route(
            "/api/identities/{uuid}/",
            get(show_identity)
                .put(rename_identity)
                .delete(delete_identity),
        )
        .route("/api/vault/header", get(vault_header).put(create_vault))
        .route("/api/vault/identities", get(vault_identities))
        .route("/api/vault/identity", get(vault_identity))
        .route("/api/vault/identity-by-name", get(vault_identity_by_name))
        .route("/api/vault/grants", get(vault_grants))
        .route("/api/vault/grant", get(vault_grant))
        .route("/api/vault/record", get(vault_record))
        .route("/api/vault/records", get(vault_records))
        .route("/api/vault/tree", get(vault_tree))
        .route("/api/vault/sessions/{id}", get(vault_session))
        .route("/api/vault/pending", get(vault_pending))
        .route("/api/vault/commit", post(vault_commit))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

async fn schema() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

async fn health() -> axum::Json<Value> {
    axum::Json(json!({ "ok": true }))
}

/// The caller's scope, from `Authorization: Bearer …`; repeated wrong
/// tokens from one address are throttled (429).
async fn auth(state: &Shared, headers: &HeaderMap, peer: IpAddr) -> ApiResult<Scope> {
    if let Ok(map) = state.failures.lock()
        && let Some((n, since)) = map.get(&peer)
        && *n >= MAX_FAILURES
        && since.elapsed() < FAILURE_WINDOW
    {
        let left = FAILURE_WINDOW
            .saturating_sub(since.elapsed())
            .as_secs()
            .max(1);
        let mut e = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "throttled",
            "too many failed authentications; wait before trying again",
        );
        e.retry_after = Some(left);
        return Err(e);
    }
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_string);
    let presented = token.is_some();
    let scope = match token {
        Some(t) => {
            let st = state.clone();
            blocking(move || Ok(st.store.authenticate(&t)?)).await?
        }
        None => None,
    };
    match scope {
        Some(s) => Ok(s),
        None => {
            // A wrong token is a guess; a missing one is not counted.
            if presented && let Ok(mut map) = state.failures.lock() {
                let e = map.entry(peer).or_insert((0, Instant::now()));
                if e.1.elapsed() >= FAILURE_WINDOW {
                    *e = (0, Instant::now());
                }
                e.0 += 1;
            }
            Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "a valid bearer token is required (Authorization: Bearer …)",
            ))
        }
    }
}

fn owner_only(scope: &Scope) -> ApiResult<()> {
    if scope.is_owner() {
        Ok(())
    } else {
        Err(ApiError::forbidden())
    }
}

/// The identity named by `X-Ravi-Identity`, checked against the scope.
fn scoped_identity(headers: &HeaderMap, scope: &Scope) -> ApiResult<String> {
    let id = headers
        .get("x-ravi-identity")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| ApiError::bad("the X-Ravi-Identity header names the identity"))?;
    let id = uuid::Uuid::try_parse(id)
        .map_err(|_| ApiError::bad("X-Ravi-Identity is not a uuid"))?
        .to_string();
    if scope.allows(&id) {
        Ok(id)
    } else {
        Err(ApiError::forbidden())
    }
}

// ---------------------------------------------------------------- seed REST

/// `{uuid, name, inbox, phone, created_dt}` (and `pending`).
#[derive(Serialize)]
struct IdentityJson {
    uuid: String,
    name: String,
    inbox: Option<String>,
    phone: Option<String>,
    created_dt: String,
    pending: bool,
}

impl From<&IdentityRow> for IdentityJson {
    fn from(r: &IdentityRow) -> Self {
        IdentityJson {
            uuid: r.uuid.clone(),
            name: r.name.clone(),
            inbox: Some(r.inbox.clone()),
            phone: r.phone.clone(),
            created_dt: r.created_dt.clone(),
            pending: false,
        }
    }
}

impl From<&Pending> for IdentityJson {
    fn from(p: &Pending) -> Self {
        IdentityJson {
            uuid: p.uuid.clone(),
            name: p.name.clone(),
            inbox: None,
            phone: None,
            created_dt: p.created_dt.clone(),
            pending: true,
        }
    }
}

#[derive(Deserialize)]
struct NameBody {
    name: String,
}

fn parse_name(body: &Bytes) -> ApiResult<String> {
    let b: NameBody = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad(format!("the body must be {{\"name\": …}} ({e})")))?;
    let name = b.name.trim().to_string();
    if name.is_empty() || name.len() > 64 || name.chars().any(char::is_control) {
        return Err(ApiError::bad("a name is 1-64 printable characters"));
    }
    Ok(name)
}

/// Every identity the scope covers: adopted ones (clear metadata as
/// stored) and, for the owner, pending ones.
fn all_identities(store: &Store, scope: &Scope) -> ApiResult<Vec<IdentityJson>> {
    let rows = match store.with_vault(|b| b.identities()) {
        Ok(rows) => rows,
        Err(Error::NotFound(_)) => Vec::new(),
        Err(e) => return Err(e.into()),
    };
    let mut out: Vec<IdentityJson> = rows
        .iter()
        .filter(|r| scope.allows(&r.uuid))
        .map(IdentityJson::from)
        .collect();
    if scope.is_owner() {
        out.extend(store.pending()?.iter().map(IdentityJson::from));
    }
    Ok(out)
}

async fn list_identities(
    State(st): State<Shared>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    headers: HeaderMap,
) -> ApiResult<axum::Json<Vec<IdentityJson>>> {
    let scope = auth(&st, &headers, peer.0).await?;
    blocking(move || all_identities(&st.store, &scope).map(axum::Json)).await
}

async fn create_identity(
    State(st): State<Shared>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<(StatusCode, axum::Json<IdentityJson>)> {
    let scope = auth(&st, &headers, peer.0).await?;
    owner_only(&scope)?;
    let name = parse_name(&body)?;
    blocking(move || {
        let taken = match st.store.with_vault(|b| b.identity_by_name(&name)) {
            Ok(r) => r.is_some(),
            Err(Error::NotFound(_)) => false,
            Err(e) => return Err(e.into()),
        };
        if taken {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "conflict",
                format!("an identity named {name:?} exists already"),
            ));
        }
        let p = st.store.add_pending(&name)?;
        Ok((StatusCode::CREATED, axum::Json(IdentityJson::from(&p))))
    })
    .await
}

fn uuid_path(uuid: &str) -> ApiResult<String> {
    uuid::Uuid::try_parse(uuid)
        .map(|u| u.to_string())
        .map_err(|_| ApiError::not_found("no such identity"))
}

fn find_one(store: &Store, uuid: &str) -> ApiResult<IdentityJson> {
    if let Some(p) = store.pending()?.iter().find(|p| p.uuid == uuid) {
        return Ok(IdentityJson::from(p));
    }
    match store.with_vault(|b| b.identity(uuid)) {
        Ok(Some(r)) => Ok(IdentityJson::from(&r)),
        Ok(None) | Err(Error::NotFound(_)) => Err(ApiError::not_found("no such identity")),
        Err(e) => Err(e.into()),
    }
}

async fn show_identity(
    State(st): State<Shared>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    headers: HeaderMap,
    Path(uuid): Path<String>,
) -> ApiResult<axum::Json<IdentityJson>> {
    let scope = auth(&st, &headers, peer.0).await?;
    let uuid = uuid_path(&uuid)?;
    if !scope.allows(&uuid) {
        return Err(ApiError::forbidden());
    }
    blocking(move || find_one(&st.store, &uuid).map(axum::Json)).await
}

async fn rename_identity(
    State(st): State<Shared>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    headers: HeaderMap,
    Path(uuid): Path<String>,
    body: Bytes,
) -> ApiResult<axum::Json<IdentityJson>> {
    let scope = auth(&st, &headers, peer.0).await?;
    let uuid = uuid_path(&uuid)?;
    if !scope.allows(&uuid) {
        return Err(ApiError::forbidden());
    }
    owner_only(&scope)?;
    let name = parse_name(&body)?;
    blocking(move || {
        if st.store.rename_pending(&uuid, &name)? {
            return find_one(&st.store, &uuid).map(axum::Json);
        }
        find_one(&st.store, &uuid)?;
        Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            "this identity's metadata is signed by the vault owner: rename it with ravi",
        ))
    })
    .await
}

async fn delete_identity(
    State(st): State<Shared>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    headers: HeaderMap,
    Path(uuid): Path<String>,
) -> ApiResult<StatusCode> {
    let scope = auth(&st, &headers, peer.0).await?;
    let uuid = uuid_path(&uuid)?;
    if !scope.allows(&uuid) {
        return Err(ApiError::forbidden());
    }
    owner_only(&scope)?;
    blocking(move || {
        if st.store.remove_pending(&uuid)? {
            return Ok(StatusCode::NO_CONTENT);
        }
        find_one(&st.store, &uuid)?;
        Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            "this identity is listed in the vault's signed head: delete it with `ravi identity delete`",
        ))
    })
    .await
}

// ----------------------------------------------------------- vault endpoints

/// A read of the vault's rows with the caller's scope.
async fn read<T: Serialize + Send + 'static>(
    st: Shared,
    headers: &HeaderMap,
    peer: Peer,
    need_identity: bool,
    f: impl FnOnce(&dyn Backend, &Scope, Option<&str>) -> ApiResult<T> + Send + 'static,
) -> ApiResult<axum::Json<T>> {
    let scope = auth(&st, headers, peer.0).await?;
    let identity = if need_identity {
        Some(scoped_identity(headers, &scope)?)
    } else {
        None
    };
    blocking(move || {
        let mut out = None;
        let r = st.store.with_vault(|b| {
            out = Some(f(b, &scope, identity.as_deref()));
            Ok(())
        });
        match (r, out) {
            (Ok(()), Some(v)) => v.map(axum::Json),
            (Err(e), _) => Err(e.into()),
            (Ok(()), None) => Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "no answer",
            )),
        }
    })
    .await
}

/// The answer for an identity that is requested but not adopted yet.
fn pending_answer(p: &Pending) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "pending",
        format!(
            "identity {:?} is pending: it was requested over REST and no owner client has adopted it yet (it has no key and no owner signature); the next ravi command its owner runs with the passphrase or a session adopts it",
            p.name
        ),
    )
}

/// Refuses a pending identity matched by `is`.
async fn refuse_pending(
    st: &Shared,
    is: impl Fn(&Pending) -> bool + Send + 'static,
) -> ApiResult<()> {
    let st = st.clone();
    blocking(move || match st.store.pending()?.iter().find(|p| is(p)) {
        Some(p) => Err(pending_answer(p)),
        None => Ok(()),
    })
    .await
}

fn found<T>(v: Option<T>) -> ApiResult<T> {
    v.ok_or_else(|| ApiError::not_found("no such row"))
}

async fn vault_header(
    State(st): State<Shared>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    headers: HeaderMap,
) -> ApiResult<axum::Json<VaultRow>> {
    read(st, &headers, peer, false, |b, _, _| Ok(b.header()?)).await
}

async fn create_vault(
    State(st): State<Shared>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<StatusCode> {
    let scope = auth(&st, &headers, peer.0).await?;
    owner_only(&scope)?;
    let header: VaultRow = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad(format!("not a header row ({e})")))?;
    blocking(move || {
        st.store.create_vault(&header)?;
        Ok(StatusCode::CREATED)
    })
    .await
}

async fn vault_identities(
    State(st): State<Shared>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    headers: HeaderMap,
) -> ApiResult<axum::Json<Vec<IdentityRow>>> {
    read(st, &headers, peer, false, |b, scope, _| {
        owner_only(scope)?;
        Ok(b.identities()?)
    })
    .await
}

async fn vault_identity(
    State(st): State<Shared>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    headers: HeaderMap,
) -> ApiResult<axum::Json<IdentityRow>> {
    if let Some(id) = headers
        .get("x-ravi-identity")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
    {
        refuse_pending(&st, move |p| p.uuid == id).await?;
    }
    read(st, &headers, peer, true, |b, _, id| {
        found(b.identity(id.unwrap_or_default())?)
    })
    .await
}

#[derive(Deserialize)]
struct NameQuery {
    name: String,
}

async fn vault_identity_by_name(
    State(st): State<Shared>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    headers: HeaderMap,
    Query(q): Query<NameQuery>,
) -> ApiResult<axum::Json<IdentityRow>> {
    let name = q.name.clone();
    refuse_pending(&st, move |p| p.name.eq_ignore_ascii_case(&name)).await?;
    read(st, &headers, peer, false, move |b, scope, _| {
        let row = found(b.identity_by_name(&q.name)?)?;
        if scope.allows(&row.uuid) {
            Ok(row)
        } else {
            Err(ApiError::forbidden())
        }
    })
    .await
}

async fn vault_grants(
    State(st): State<Shared>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    headers: HeaderMap,
) -> ApiResult<axum::Json<Vec<vault_core::backend::GrantRow>>> {
    read(st, &headers, peer, true, |b, _, id| {
        Ok(b.grants(id.unwrap_or_default())?)
    })
    .await
}

#[derive(Deserialize)]
struct GrantQuery {
    recipient: String,
}

fn hex(s: &str) -> ApiResult<Vec<u8>> {
    data_encoding::HEXLOWER_PERMISSIVE
        .decode(s.as_bytes())
        .map_err(|_| ApiError::bad("not hex"))
}

async fn vault_grant(
    State(st): State<Shared>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    headers: HeaderMap,
    Query(q): Query<GrantQuery>,
) -> ApiResult<axum::Json<vault_core::backend::GrantRow>> {
    let recipient = hex(&q.recipient)?;
    read(st, &headers, peer, true, move |b, _, id| {
        found(b.grant_for(id.unwrap_or_default(), &recipient)?)
    })
    .await
}

#[derive(Deserialize)]
struct RecordQ {
    kind: u8,
    uuid: String,
}

async fn vault_record(
    State(st): State<Shared>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    headers: HeaderMap,
    Query(q): Query<RecordQ>,
) -> ApiResult<axum::Json<vault_core::backend::RecordRow>> {
    read(st, &headers, peer, true, move |b, _, id| {
        found(b.record(id.unwrap_or_default(), q.kind, &q.uuid)?)
    })
    .await
}

#[derive(Deserialize)]
struct RecordsQ {
    kind: Option<u8>,
    after: Option<String>,
    limit: Option<usize>,
    bucket: Option<u16>,
    blind_index: Option<String>,
}

async fn vault_records(
    State(st): State<Shared>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    headers: HeaderMap,
    Query(q): Query<RecordsQ>,
) -> ApiResult<axum::Json<Vec<vault_core::backend::RecordRow>>> {
    let index = q.blind_index.as_deref().map(hex).transpose()?;
    read(st, &headers, peer, true, move |b, _, id| {
        let id = id.unwrap_or_default();
        match (index, q.kind) {
            (Some(bi), Some(kind)) => Ok(b.records_by_index(id, kind, &bi)?),
            (Some(_), None) => Err(ApiError::bad("blind_index needs kind")),
            (None, kind) => Ok(b.records(
                id,
                &RecordQuery {
                    kind,
                    after: q.after,
                    limit: q.limit,
                    bucket: q.bucket,
                },
            )?),
        }
    })
    .await
}

#[derive(Deserialize)]
struct TreeQ {
    #[serde(default)]
    ids: String,
}

/// `[[id, "base64"]…]`.
#[derive(Serialize)]
struct Nodes(#[serde(with = "vault_core::backend::wire::stored_nodes")] Vec<(u32, Vec<u8>)>);

async fn vault_tree(
    State(st): State<Shared>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    headers: HeaderMap,
    Query(q): Query<TreeQ>,
) -> ApiResult<axum::Json<Nodes>> {
    let ids = q
        .ids
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<u32>()
                .map_err(|_| ApiError::bad("ids are numbers"))
        })
        .collect::<ApiResult<Vec<u32>>>()?;
    read(st, &headers, peer, true, move |b, _, id| {
        Ok(Nodes(b.tree_nodes(id.unwrap_or_default(), &ids)?))
    })
    .await
}

async fn vault_session(
    State(st): State<Shared>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<vault_core::backend::SessionRow>> {
    read(st, &headers, peer, false, move |b, scope, _| {
        owner_only(scope)?;
        found(b.session(&id)?)
    })
    .await
}

async fn vault_pending(
    State(st): State<Shared>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    headers: HeaderMap,
) -> ApiResult<axum::Json<Vec<Pending>>> {
    let scope = auth(&st, &headers, peer.0).await?;
    owner_only(&scope)?;
    blocking(move || Ok(axum::Json(st.store.pending()?))).await
}

/// What an identity-scoped token may put in a batch: preconditions on its
/// identities (or on nothing identity-specific), and writes of its
/// identities' records, record tree and head.
fn batch_in_scope(batch: &Batch, scope: &Scope) -> bool {
    if scope.is_owner() {
        return true;
    }
    let pre = batch.preconditions.iter().all(|p| match p {
        Precondition::IdentityEpoch { identity_uuid, .. }
        | Precondition::NameFree { identity_uuid, .. }
        | Precondition::IdentityHead { identity_uuid, .. }
        | Precondition::RecordCount { identity_uuid, .. } => scope.allows(identity_uuid),
        Precondition::RecordUnchanged { .. }
        | Precondition::HeaderUnchanged { .. }
        | Precondition::VaultHead(_)
        | Precondition::IdentityCount(_) => true,
    });
    pre && batch.writes.iter().all(|w| match w {
        Write::InsertRecord(r) | Write::UpdateRecord(r) => scope.allows(&r.identity_uuid),
        Write::DeleteRecord { identity_uuid, .. }
        | Write::SetTreeNodes { identity_uuid, .. }
        | Write::ClearTree(identity_uuid) => scope.allows(identity_uuid),
        Write::SetIdentityHead { uuid, .. } => scope.allows(uuid),
        _ => false,
    })
}

async fn vault_commit(
    State(st): State<Shared>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let scope = auth(&st, &headers, peer.0).await?;
    let batch: Batch =
        serde_json::from_slice(&body).map_err(|e| ApiError::bad(format!("not a batch ({e})")))?;
    if !batch_in_scope(&batch, &scope) {
        return Err(ApiError::forbidden());
    }
    blocking(move || {
        let mut outcome = None;
        st.store.with_vault(|b| {
            outcome = Some(b.commit(&batch));
            Ok(())
        })?;
        match outcome {
            Some(Ok(changes)) => {
                for w in &batch.writes {
                    if let Write::InsertIdentity(r) = w {
                        st.store.remove_pending(&r.uuid)?;
                    }
                }
                Ok(axum::Json(json!({ "changes": changes })).into_response())
            }
            Some(Err(CommitError::Conflict(c))) => {
                let mut e = ApiError::new(
                    StatusCode::CONFLICT,
                    "conflict",
                    "a precondition of the batch does not hold; nothing was applied",
                );
                e.extra = Some(("conflict", serde_json::to_value(c).unwrap_or(Value::Null)));
                Err(e)
            }
            Some(Err(CommitError::Failed(e))) => Err(e.into()),
            None => Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "no answer",
            )),
        }
    })
    .await
}
