//! `ads serve`: the datastore API as a JSON HTTP service, for clients that are not Rust.
//!
//! | method and path | body | answer |
//! |---|---|---|
//! | `GET /v1/entities/{key}` | | `{"key", "properties"}`, 404 if missing |
//! | `PUT /v1/entities/{key}` | properties (typed JSON object) | `{"key"}` |
//! | `DELETE /v1/entities/{key}` | | `{"key", "deleted": true}` |
//! | `POST /v1/batch-get` | `{"keys": [...]}` | `{"entities": [entity or null, ...]}` |
//! | `POST /v1/query` | `{"kind", "ancestor"?, "filters"?: ["balance >= 10"], "orders"?: ["-balance"], "limit"?, "offset"?, "cursor"?, "end_cursor"?, "keys_only"?, "namespace"?}` | `{"results": [...], "next_cursor"}` |
//! | `POST /v1/allocate-ids` | `{"kind", "count", "namespace"?}` | `{"kind", "first", "last"}` |
//! | `POST /v1/accounts/deposit` | `{"account", "amount"}` | `{"account", "balance"}` |
//! | `POST /v1/accounts/transfer` | `{"source", "destination", "amount"}` | `{"transfer", "source_balance", "destination_balance"}` |
//! | `POST /v1/call/{name}` | the operation's input (JSON) | its output (JSON) |
//! | `GET /v1/health` | | `{"ok": true}` |
//!
//! Keys are written as in the CLI (`Account:alice/Order:7`, percent-encoded where a URL
//! needs it) or in their URL-safe form. Errors are `{"error": {"kind", "message"}}` with
//! status 400 (bad key, entity, query or body, or past a store's limits), 404 (no such
//! entity or route), 405 (another method), 409 (a commit conflict after the retries), 413
//! (a body over [`MAX_BODY_BYTES`]), 422 (refused by a business rule), 503 (overloaded: no call slot within
//! the queue timeout, or the store is unavailable), 504 (past the call deadline) or 500.
//!
//! Shutdown is graceful: after the signal, the listener closes and in-flight requests run
//! to completion.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use host_core::answer::{self, entity_json};
use host_core::instances::BoundExceeded;
use host_core::store::StoreError;
use serde::Deserialize;
use serde_json::{Value as Json, json};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::{Datastore, Entity, Error, Filter, Key, Order, Query};

/// How the service admits requests.
#[derive(Debug, Clone, Copy)]
pub struct ServeOptions {
    /// Requests served at once; more wait for a slot. At most the process's instance slots
    /// (`DS_MAX_INSTANCES`, default 1024) count: requests beyond them could only wait behind
    /// the slots, past the queue timeout that answers them 503.
    pub max_in_flight: usize,
    /// Longest a request waits for a slot before it is answered 503.
    pub queue_timeout: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            max_in_flight: 256,
            queue_timeout: Duration::from_secs(1),
        }
    }
}

#[derive(Clone)]
struct App {
    db: Datastore,
    slots: Arc<Semaphore>,
    queue_timeout: Duration,
}

/// The HTTP API over `db`, as an axum `Router` (to mount in your own service).
pub fn router(db: Datastore, options: ServeOptions) -> Router {
    let app = App {
        slots: Arc::new(Semaphore::new(
            options
                .max_in_flight
                .clamp(1, db.engine().max_instances() as usize),
        )),
        queue_timeout: options.queue_timeout,
        db,
    };
    Router::new()
        .route(
            "/v1/health",
            get(|| async { JsonAnswer(json!({ "ok": true })) }),
        )
        .route(
            "/v1/entities/{*key}",
            get(get_entity).put(put_entity).delete(delete_entity),
        )
        .route("/v1/batch-get", post(batch_get))
        .route("/v1/query", post(query))
        .route("/v1/allocate-ids", post(allocate_ids))
        .route("/v1/accounts/deposit", post(deposit))
        .route("/v1/accounts/transfer", post(transfer))
        .route("/v1/call/{name}", post(call))
        .fallback(no_route)
        .method_not_allowed_fallback(wrong_method)
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(app)
}

/// The largest request body: an entity is at most 1 MiB stored, and its JSON (escapes,
/// base64 for bytes) may take several times that.
pub const MAX_BODY_BYTES: usize = 8 << 20;

async fn no_route(uri: axum::http::Uri) -> ApiError {
    ApiError {
        status: StatusCode::NOT_FOUND,
        kind: "not_found",
        message: format!("no route {}: see the API table in the README", uri.path()),
    }
}

async fn wrong_method(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError {
        status: StatusCode::METHOD_NOT_ALLOWED,
        kind: "method_not_allowed",
        message: format!("{} does not take {method}", uri.path()),
    }
}

/// A request body, read whole; past [`MAX_BODY_BYTES`] (or unreadable) it is an error in
/// the API's JSON shape, not axum's plain text.
struct Body(axum::body::Bytes);

impl<S: Send + Sync> axum::extract::FromRequest<S> for Body {
    type Rejection = ApiError;

    async fn from_request(request: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        match axum::body::Bytes::from_request(request, state).await {
            Ok(bytes) => Ok(Body(bytes)),
            Err(rejection) => Err(ApiError {
                status: rejection.status(),
                kind: if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    "too_large"
                } else {
                    "bad_request"
                },
                message: format!(
                    "{} (bodies hold at most {MAX_BODY_BYTES} bytes)",
                    rejection.body_text()
                ),
            }),
        }
    }
}

/// The one path parameter of a route (a key, an operation name), decoded; one that is not
/// UTF-8 after percent-decoding is an error in the API's JSON shape, not axum's plain text.
struct Segment(String);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Segment {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, ApiError> {
        match Path::<String>::from_request_parts(parts, state).await {
            Ok(Path(text)) => Ok(Segment(text)),
            Err(rejection) => Err(ApiError {
                status: rejection.status(),
                kind: "bad_request",
                message: rejection.body_text(),
            }),
        }
    }
}

/// Serves the API on `listener` until `shutdown` completes, then finishes the requests in
/// flight and returns.
pub async fn serve(
    listener: tokio::net::TcpListener,
    db: Datastore,
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(db, options))
        .with_graceful_shutdown(shutdown)
        .await
}

/// An error answer: status and `{"error": {"kind", "message"}}`.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    kind: &'static str,
    message: String,
}

impl ApiError {
    fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            kind: "bad_request",
            message: message.into(),
        }
    }
}

impl From<Error> for ApiError {
    fn from(err: Error) -> Self {
        let (status, kind) = match &err {
            Error::InvalidKey(_) => (StatusCode::BAD_REQUEST, "invalid_key"),
            Error::InvalidEntity(_) => (StatusCode::BAD_REQUEST, "invalid_entity"),
            Error::InvalidQuery(_) => (StatusCode::BAD_REQUEST, "invalid_query"),
            Error::InvalidArgument(_) => (StatusCode::BAD_REQUEST, "invalid_argument"),
            Error::Store(StoreError::InvalidRequest(_)) => {
                (StatusCode::BAD_REQUEST, "invalid_request")
            }
            Error::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            Error::Conflict(_) | Error::Store(StoreError::Conflict(_)) => {
                (StatusCode::CONFLICT, "conflict")
            }
            Error::FailedPrecondition(_) => {
                (StatusCode::UNPROCESSABLE_ENTITY, "failed_precondition")
            }
            Error::Store(StoreError::Unavailable(_))
            | Error::Bound(BoundExceeded::Instances { .. }) => {
                (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
            }
            Error::Bound(BoundExceeded::Deadline { .. }) => {
                (StatusCode::GATEWAY_TIMEOUT, "deadline")
            }
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        };
        ApiError {
            status,
            kind,
            message: err.to_string(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({ "error": { "kind": self.kind, "message": self.message } });
        (self.status, JsonAnswer(body)).into_response()
    }
}

/// A JSON answer (`application/json`). Not axum's `Json`: its feature turns on serde_json's
/// `raw_value` for the whole build, and with it every parse of a `serde_json::Value` reads an
/// object `{"$serde_json::private::RawValue": "…"}` as the JSON text inside. The guest, built
/// without it, refuses such a name, so the hosts would have read input the model does not.
struct JsonAnswer(Json);

impl IntoResponse for JsonAnswer {
    fn into_response(self) -> Response {
        match serde_json::to_vec(&self.0) {
            Ok(bytes) => (
                [(axum::http::header::CONTENT_TYPE, "application/json")],
                bytes,
            )
                .into_response(),
            Err(err) => (StatusCode::INTERNAL_SERVER_ERROR, err.to_string()).into_response(),
        }
    }
}

type Answer = Result<JsonAnswer, ApiError>;

/// A call slot, or 503 after the queue timeout.
async fn admit(app: &App) -> Result<OwnedSemaphorePermit, ApiError> {
    match tokio::time::timeout(app.queue_timeout, app.slots.clone().acquire_owned()).await {
        Ok(Ok(permit)) => Ok(permit),
        _ => Err(ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            kind: "overloaded",
            message: format!(
                "no call slot became free within {} ms; retry later",
                app.queue_timeout.as_millis()
            ),
        }),
    }
}

fn key(text: &str) -> Result<Key, ApiError> {
    Key::parse_any(text).map_err(|err| ApiError {
        status: StatusCode::BAD_REQUEST,
        kind: "invalid_key",
        message: err.to_string(),
    })
}

/// A JSON body, with a 400 that says what is wrong (axum's own rejection is plain text).
fn body<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let value = serde_json::from_slice(bytes)
        .map_err(|err| ApiError::bad_request(format!("bad JSON body: {err}")))?;
    // Parsed, so UTF-8: integer literals serde_json would turn into floats are refused.
    if let Ok(text) = std::str::from_utf8(bytes) {
        ds_model::json::check_integer_literals(text)
            .map_err(|err| ApiError::bad_request(format!("bad JSON body: {err}")))?;
    }
    Ok(value)
}

async fn get_entity(State(app): State<App>, Segment(text): Segment) -> Answer {
    let key = key(&text)?;
    let _slot = admit(&app).await?;
    match app.db.get(&key).await? {
        Some(entity) => Ok(JsonAnswer(entity_json(&entity))),
        None => Err(ApiError {
            status: StatusCode::NOT_FOUND,
            kind: "not_found",
            message: format!("no entity at key {key}"),
        }),
    }
}

async fn put_entity(State(app): State<App>, Segment(text): Segment, Body(bytes): Body) -> Answer {
    let key = key(&text)?;
    let properties: serde_json::Map<String, Json> = body(&bytes)?;
    let entity = Entity::from_json_object(key, &properties).map_err(Error::from)?;
    let _slot = admit(&app).await?;
    let key = app.db.put(&entity).await?;
    Ok(JsonAnswer(answer::key_json(&key)))
}

async fn delete_entity(State(app): State<App>, Segment(text): Segment) -> Answer {
    let key = key(&text)?;
    let _slot = admit(&app).await?;
    app.db.delete(&key).await?;
    Ok(JsonAnswer(answer::deleted_json(&key)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchGet {
    keys: Vec<String>,
}

async fn batch_get(State(app): State<App>, Body(bytes): Body) -> Answer {
    let request: BatchGet = body(&bytes)?;
    let keys = request
        .keys
        .iter()
        .map(|k| key(k))
        .collect::<Result<Vec<_>, _>>()?;
    let _slot = admit(&app).await?;
    let found = app.db.get_many(&keys).await?;
    let entities: Vec<Json> = found
        .iter()
        .map(|e| e.as_ref().map(entity_json).unwrap_or(Json::Null))
        .collect();
    Ok(JsonAnswer(json!({ "entities": entities })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QueryRequest {
    kind: String,
    #[serde(default)]
    namespace: String,
    ancestor: Option<String>,
    #[serde(default)]
    filters: Vec<String>,
    #[serde(default)]
    orders: Vec<String>,
    limit: Option<u32>,
    #[serde(default)]
    offset: u32,
    cursor: Option<String>,
    end_cursor: Option<String>,
    #[serde(default)]
    keys_only: bool,
}

async fn query(State(app): State<App>, Body(bytes): Body) -> Answer {
    let request: QueryRequest = body(&bytes)?;
    let query = Query {
        namespace: request.namespace,
        kind: Some(request.kind),
        ancestor: request.ancestor.as_deref().map(key).transpose()?,
        filters: request
            .filters
            .iter()
            .map(|f| Filter::parse(f))
            .collect::<Result<_, _>>()
            .map_err(Error::from)?,
        orders: request
            .orders
            .iter()
            .map(|o| Order::parse(o))
            .collect::<Result<_, _>>()
            .map_err(Error::from)?,
        limit: request.limit,
        offset: request.offset,
        keys_only: request.keys_only,
        start: request.cursor,
        end: request.end_cursor,
    };
    let _slot = admit(&app).await?;
    let page = app.db.query(&query).await?;
    Ok(JsonAnswer(
        json!({ "results": answer::query_rows(&page), "next_cursor": page.next_cursor }),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AllocateIds {
    kind: String,
    count: u64,
    #[serde(default)]
    namespace: String,
}

async fn allocate_ids(State(app): State<App>, Body(bytes): Body) -> Answer {
    let request: AllocateIds = body(&bytes)?;
    let _slot = admit(&app).await?;
    let first = app
        .db
        .allocate_ids(&request.namespace, &request.kind, request.count)
        .await?;
    Ok(JsonAnswer(answer::allocated_json(
        &request.kind,
        first,
        request.count,
    )))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Deposit {
    account: String,
    amount: i64,
}

async fn deposit(State(app): State<App>, Body(bytes): Body) -> Answer {
    let request: Deposit = body(&bytes)?;
    let account = key(&request.account)?;
    let _slot = admit(&app).await?;
    let balance = app.db.deposit(&account, request.amount).await?;
    Ok(JsonAnswer(answer::balance_json(&account, balance)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Transfer {
    source: String,
    destination: String,
    amount: i64,
}

async fn transfer(State(app): State<App>, Body(bytes): Body) -> Answer {
    let request: Transfer = body(&bytes)?;
    let (source, destination) = (key(&request.source)?, key(&request.destination)?);
    let _slot = admit(&app).await?;
    let receipt = app
        .db
        .transfer(&source, &destination, request.amount)
        .await?;
    Ok(JsonAnswer(answer::receipt_json(&receipt)))
}

async fn call(State(app): State<App>, Segment(name): Segment, Body(bytes): Body) -> Answer {
    let input: Json = if bytes.is_empty() {
        json!({})
    } else {
        body(&bytes)?
    };
    let _slot = admit(&app).await?;
    Ok(JsonAnswer(app.db.call(&name, &input).await?))
}
