//! `ads serve`: the datastore API as a JSON HTTP service, for clients that are not Rust.
//!
//! | method and path | body | answer | right |
//! |---|---|---|---|
//! | `GET /v1/entities/{key}` | | `{"key", "properties"}` and `ETag: "version"`, 404 if missing; `If-None-Match` → 304 | read |
//! | `PUT /v1/entities/{key}` | properties (typed JSON object) | `{"key"}` and the new `ETag`; `If-Match: "version"` / `*`, `If-None-Match: *` → 412 when they do not hold | write |
//! | `DELETE /v1/entities/{key}` | | `{"key", "deleted": whether it was there}`; `If-Match` → 412 | write |
//! | `POST /v1/batch-get` | `{"keys": [...]}` | `{"entities": [entity or null, ...]}` | read |
//! | `POST /v1/batch-put` | `{"entities": [{"key", "properties", "if_version"?, "if_absent"?}]}` (one commit; a key whose last element is a kind alone, `"Note"`, gets a new id) | `{"keys", "version"}` (no version when ids were allocated), 412 if a condition fails | write |
//! | `POST /v1/batch-delete` | `{"keys": [...]}` (one commit) | `{"deleted": [{"key", "deleted"}, ...]}` | write |
//! | `POST /v1/count` | `{"kind", "ancestor"?, "filters"?, "limit"?, "namespace"?}` | `{"count"}` | read |
//! | `POST /v1/delete-by-query` | as count, and `"dry_run"?` | `{"matched", "deleted", "batches"}` (dry run: `{"matched", "dry_run"}`) | write |
//! | `GET /v1/schema` | | the kinds the component declares | read |
//! | `POST /v1/query` | `{"kind", "ancestor"?, "filters"?: ["balance >= 10"], "orders"?: ["-balance"], "limit"?, "offset"?, "cursor"?, "end_cursor"?, "keys_only"?, "namespace"?}` | `{"results": [...], "next_cursor"}` | read |
//! | `POST /v1/allocate-ids` | `{"kind", "count", "namespace"?}` | `{"kind", "first", "last"}` | write |
//! | `POST /v1/accounts/deposit` | `{"account", "amount"}` | `{"account", "balance"}` | write |
//! | `POST /v1/accounts/transfer` | `{"source", "destination", "amount"}` | `{"transfer", "source_balance", "destination_balance"}` | write |
//! | `POST /v1/call/{name}` | the operation's input (JSON) | its output (JSON) | write |
//! | `GET /v1/health` | | `{"ok": true}`, or 503 with the reason; `?live`: no store check | none (nor `Host`, `Origin` checks) |
//! | `GET /metrics` | | Prometheus text format | read |
//!
//! **Keys in paths.** Everything after `/v1/entities/` is the key's text, as on the command
//! line (`Account:alice/Order:7`), or its URL-safe form, percent-decoded exactly once: `/`
//! and `%2F` are the same, and a key holding `?`, `#`, `%`, `"`, a space or any byte a URL
//! cannot carry as is writes it percent-encoded (`Note:%22a%3Fb%22` is `Note:"a?b"`). An
//! entity route with a query string, or an invalid escape (`%zz`), is refused (400). A
//! bare `#` cannot be refused: clients drop it and what follows before sending.
//!
//! **Errors** are `{"error": {"kind", "message"}}` with status 400 (bad key, entity, query
//! or body, or past a store's limits), 401 (no or unknown token), 403 (a token without the
//! right, or a `Host` or `Origin` the service does not serve), 404 (no such entity or route),
//! 405 (another method), 408 (a body slower than the body timeout), 409 (a commit conflict
//! after the retries), 412 (a write's `If-Match` or `If-None-Match` does not hold), 413 (a
//! body over [`MAX_BODY_BYTES`]), 415 (a body that is not
//! `application/json`), 422 (refused by a business rule), 503 (overloaded: no call slot or
//! body buffer within the queue timeout, or the store is unavailable), 504 (past the call
//! deadline) or 500.
//!
//! **On a network** (see [`ServeOptions`] and [`ConnectionOptions`]): TLS, bearer tokens
//! with roles ([`access`]), refusal of foreign `Host` and `Origin` headers (DNS rebinding,
//! cross-site requests) with CORS for trusted origins, a header timeout, a cap on
//! connections, a bound on body bytes buffered across connections, and a drain deadline at
//! shutdown. Every request is logged (target `ads::http`) and counted (`/metrics`); the
//! answer carries an `X-Request-Id` (the client's, or a new one).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use host_core::answer::{self, entity_json};
use host_core::instances::BoundExceeded;
use host_core::store::StoreError;
use http_body_util::BodyExt;
use serde::Deserialize;
use serde_json::{Value as Json, json};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::{Datastore, Entity, Error, Filter, Key, Order, Query};

pub mod access;
mod metrics;
mod server;

use access::{AccessPolicy, CrossSite, Denied, Right};
use metrics::{Metrics, route_label};
pub use server::{ConnectionOptions, TlsConfigError, tls_config};

/// How the service admits and checks requests.
#[derive(Clone)]
pub struct ServeOptions {
    /// Requests served at once; more wait for a slot. At most the process's instance slots
    /// (`DS_MAX_INSTANCES`, default 1024) count: requests beyond them could only wait behind
    /// the slots, past the queue timeout that answers them 503.
    pub max_in_flight: usize,
    /// Longest a request waits for a slot (or for its share of the body buffer) before it
    /// is answered 503.
    pub queue_timeout: Duration,
    /// Who may do what: [`access::Open`] (the default), [`access::Tokens`], or your own.
    pub access: Arc<dyn AccessPolicy>,
    /// The `Host` and `Origin` values served (default: loopback names, no origin).
    pub cross_site: CrossSite,
    /// Longest a request body may take to arrive, once its headers have: 408 after it.
    pub body_timeout: Duration,
    /// Most request-body bytes buffered at once, over all connections: a body waits (up to
    /// the queue timeout) for its share, so many large or slow uploads cannot exhaust
    /// memory.
    pub max_buffered_bytes: usize,
    /// How connections are accepted and bounded (used by [`serve`]; a router mounted in
    /// your own server leaves them to it).
    pub connections: ConnectionOptions,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            max_in_flight: 256,
            queue_timeout: Duration::from_secs(1),
            access: Arc::new(access::Open),
            cross_site: CrossSite::default(),
            body_timeout: Duration::from_secs(30),
            max_buffered_bytes: 64 << 20,
            connections: ConnectionOptions::default(),
        }
    }
}

impl std::fmt::Debug for ServeOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServeOptions")
            .field("max_in_flight", &self.max_in_flight)
            .field("queue_timeout", &self.queue_timeout)
            .field("cross_site", &self.cross_site)
            .field("body_timeout", &self.body_timeout)
            .field("max_buffered_bytes", &self.max_buffered_bytes)
            .finish_non_exhaustive()
    }
}

#[derive(Clone)]
struct App {
    db: Datastore,
    slots: Arc<Semaphore>,
    queue_timeout: Duration,
    /// Body bytes that may be buffered at once; one permit per byte.
    buffer: Arc<Semaphore>,
    body_timeout: Duration,
    access: Arc<dyn AccessPolicy>,
    cross_site: Arc<CrossSite>,
    metrics: Arc<Metrics>,
    /// The last store check and when it ran: probes share one check per 250 ms, so an open
    /// route cannot be turned into store load.
    health: Arc<tokio::sync::Mutex<Option<HealthCheck>>>,
}

/// A store check: when it ran, and its answer (the reason, if unhealthy).
type HealthCheck = (Instant, Result<(), String>);

/// The HTTP API over `db`, as an axum `Router` (to mount in your own service). The
/// connection limits of `options` are left to the server it is mounted in.
pub fn router(db: Datastore, options: &ServeOptions) -> Router {
    router_with(db, options, Arc::new(Metrics::default()))
}

fn router_with(db: Datastore, options: &ServeOptions, metrics: Arc<Metrics>) -> Router {
    let app = App {
        slots: Arc::new(Semaphore::new(
            options
                .max_in_flight
                .clamp(1, db.engine().max_instances() as usize),
        )),
        queue_timeout: options.queue_timeout,
        buffer: Arc::new(Semaphore::new(
            options
                .max_buffered_bytes
                .clamp(MAX_BODY_BYTES, Semaphore::MAX_PERMITS),
        )),
        body_timeout: options.body_timeout,
        access: options.access.clone(),
        cross_site: Arc::new(options.cross_site.clone()),
        metrics,
        health: Arc::default(),
        db,
    };
    Router::new()
        .route("/v1/health", get(health))
        .route("/metrics", get(metrics_text))
        .route(
            "/v1/entities/{*key}",
            get(get_entity).put(put_entity).delete(delete_entity),
        )
        .route("/v1/batch-get", post(batch_get))
        .route("/v1/batch-put", post(batch_put))
        .route("/v1/batch-delete", post(batch_delete))
        .route("/v1/count", post(count))
        .route("/v1/delete-by-query", post(delete_by_query))
        .route("/v1/schema", get(schema))
        .route("/v1/query", post(query))
        .route("/v1/allocate-ids", post(allocate_ids))
        .route("/v1/accounts/deposit", post(deposit))
        .route("/v1/accounts/transfer", post(transfer))
        .route("/v1/call/{name}", post(call))
        // Inside the routing (so the matched route is known): the right the route needs,
        // and the route's name for the outer layer's logs and metrics.
        .route_layer(middleware::from_fn_with_state(app.clone(), authorize))
        .fallback(no_route)
        .method_not_allowed_fallback(wrong_method)
        // Outside, for every request, matched or not: cross-site checks, then logging.
        .layer(middleware::from_fn_with_state(app.clone(), cross_site))
        .layer(middleware::from_fn_with_state(app.clone(), observe))
        .with_state(app)
}

/// The largest request body, for entities and operations' input: an entity is at most
/// 1 MiB stored, and its JSON (escapes, base64 for bytes) may take several times that.
pub const MAX_BODY_BYTES: usize = 8 << 20;

/// The largest body of the other routes (batch-get, query, allocate-ids, deposit,
/// transfer): a thousand long keys fit.
pub const SMALL_BODY_BYTES: usize = 1 << 20;

/// Serves the API on `listener` until `shutdown` completes, then lets the requests in
/// flight finish (up to the drain deadline of `options.connections`) and returns.
pub async fn serve(
    listener: tokio::net::TcpListener,
    db: Datastore,
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let metrics = Arc::new(Metrics::default());
    let app = router_with(db, &options, metrics.clone());
    server::run(listener, app, options.connections, metrics, shutdown).await
}

/// The matched route's name, passed from the routing layer to the outer one.
#[derive(Clone)]
struct RouteName(String);

/// Outermost: request id, one log line, and the request counters.
async fn observe(State(app): State<App>, mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let request_id = request
        .headers()
        .get("x-request-id")
        .filter(|id| id.len() <= 128 && id.as_bytes().iter().all(|b| b.is_ascii_graphic()))
        .cloned()
        .unwrap_or_else(new_request_id);
    request
        .headers_mut()
        .insert("x-request-id", request_id.clone());
    let mut pending = Pending {
        app: &app,
        method: method_label(&method),
        request_id: &request_id,
        started,
        done: false,
    };
    app.metrics.started();
    let mut response = next.run(request).await;
    let route = response
        .extensions()
        .get::<RouteName>()
        .map(|name| name.0.clone())
        .unwrap_or_else(|| "unmatched".into());
    if let Some(kind) = response.extensions().get::<StoreErrorKind>() {
        app.metrics.store_error(kind.0);
    }
    pending.finish(&route, response.status().as_u16());
    response
        .headers_mut()
        .insert("x-request-id", request_id.clone());
    response
}

/// A request being served: logged and counted once, when answered, or when dropped
/// unanswered (the client went away, or shutdown cut it off: status 499, as nginx logs it).
struct Pending<'a> {
    app: &'a App,
    method: &'static str,
    request_id: &'a HeaderValue,
    started: Instant,
    done: bool,
}

impl Pending<'_> {
    fn finish(&mut self, route: &str, status: u16) {
        self.done = true;
        let elapsed = self.started.elapsed();
        self.app
            .metrics
            .finished(route, self.method, status, elapsed);
        tracing::info!(
            target: "ads::http",
            method = self.method,
            route = %route,
            status,
            duration_ms = elapsed.as_micros() as f64 / 1e3,
            request_id = self.request_id.to_str().unwrap_or(""),
            "request"
        );
    }
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.finish("unanswered", 499);
        }
    }
}

/// A method as a metrics label: the API's methods by name, any other token as `other`, so
/// made-up methods cannot grow the series without bound.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::PUT => "PUT",
        Method::POST => "POST",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

fn new_request_id() -> HeaderValue {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    static PROCESS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    let process = PROCESS.get_or_init(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        nanos ^ (u64::from(std::process::id()) << 32)
    });
    let id = format!("{process:016x}-{}", NEXT.fetch_add(1, Ordering::Relaxed));
    HeaderValue::from_str(&id).unwrap_or(HeaderValue::from_static("0"))
}

/// `Host` and `Origin` checks, CORS preflights, and CORS headers for trusted origins. The
/// health probe is exempt: orchestrators probe by IP address, and its answer (ok or not,
/// and why) is no secret worth rebinding DNS for.
async fn cross_site(State(app): State<App>, request: Request, next: Next) -> Response {
    if request.uri().path() == "/v1/health" {
        return next.run(request).await;
    }
    if let Err(message) = app.cross_site.check_host(request.headers()) {
        return ApiError::new(StatusCode::FORBIDDEN, "forbidden_host", message).into_response();
    }
    let origin = match app.cross_site.check_origin(request.headers()) {
        Ok(origin) => origin,
        Err(message) => {
            return ApiError::new(StatusCode::FORBIDDEN, "forbidden_origin", message)
                .into_response();
        }
    };
    let preflight = request.method() == Method::OPTIONS
        && request
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    let mut response = if preflight && origin.is_some() {
        let mut response = StatusCode::NO_CONTENT.into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, PUT, POST, DELETE"),
        );
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static(
                "authorization, content-type, if-match, if-none-match, x-request-id",
            ),
        );
        headers.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("600"),
        );
        response
    } else {
        next.run(request).await
    };
    if let Some(origin) = origin {
        let headers = response.headers_mut();
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        headers.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static("x-request-id"),
        );
        headers.append(header::VARY, HeaderValue::from_static("Origin"));
    }
    response
}

/// The access policy, for routes that need a right; and the route's name for `observe`.
async fn authorize(State(app): State<App>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_string())
        .unwrap_or_default();
    let name = RouteName(route_label(&route));
    let (parts, body) = request.into_parts();
    let denied = match Right::of(&parts.method, &route) {
        Some(right) => app.access.check(&parts, right).err(),
        None => None,
    };
    let mut response = match denied {
        None => next.run(Request::from_parts(parts, body)).await,
        Some(Denied::Unauthenticated(message)) => {
            let mut response =
                ApiError::new(StatusCode::UNAUTHORIZED, "unauthenticated", message).into_response();
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"ds\""),
            );
            response
        }
        Some(Denied::Forbidden(message)) => {
            ApiError::new(StatusCode::FORBIDDEN, "forbidden", message).into_response()
        }
    };
    response.extensions_mut().insert(name);
    response
}

async fn no_route(uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no route {}: see the API table in the README", uri.path()),
    )
}

async fn wrong_method(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{} does not take {method}", uri.path()),
    )
}

/// A request body, read whole within the body timeout, each byte counted against the
/// service's body buffer (held until the body is dropped, once parsed); past [`MAX_BODY_BYTES`],
/// slow, unreadable or not JSON, it is an error in the API's JSON shape.
struct Body {
    bytes: axum::body::Bytes,
    _buffered: Option<OwnedSemaphorePermit>,
}

impl axum::extract::FromRequest<App> for Body {
    type Rejection = ApiError;

    async fn from_request(request: Request, app: &App) -> Result<Self, ApiError> {
        check_content_type(&request)?;
        let declared = request
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        // Routes that take a few fields take at most SMALL_BODY_BYTES: parsed JSON takes
        // many times its text, and only entities and operations' input need more.
        let path = request.uri().path();
        let limit = if path.contains("/v1/entities/")
            || path.contains("/v1/call/")
            || path.ends_with("/v1/batch-put")
        {
            MAX_BODY_BYTES
        } else {
            SMALL_BODY_BYTES
        };
        if declared.is_some_and(|length| length > limit) {
            return Err(too_large(limit));
        }
        let mut body = request.into_body();
        // Shares are taken as bytes arrive, never ahead of them: a client that declares
        // 8 MiB and sends nothing holds nothing.
        let mut bytes = Vec::with_capacity(declared.unwrap_or(0).min(64 << 10));
        let mut buffered: Option<OwnedSemaphorePermit> = None;
        let read = async {
            while let Some(frame) = body.frame().await {
                let frame = frame.map_err(|err| {
                    ApiError::bad_request(format!("cannot read the request body: {err}"))
                })?;
                let Ok(data) = frame.into_data() else {
                    continue;
                };
                if bytes.len() + data.len() > limit {
                    return Err(too_large(limit));
                }
                let share = buffer_share(app, data.len()).await?;
                match &mut buffered {
                    Some(held) => held.merge(share),
                    None => buffered = Some(share),
                }
                bytes.extend_from_slice(&data);
            }
            Ok(())
        };
        match tokio::time::timeout(app.body_timeout, read).await {
            Ok(result) => result?,
            Err(_) => {
                return Err(ApiError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    "request_timeout",
                    format!(
                        "the request body did not arrive within {} ms",
                        app.body_timeout.as_millis()
                    ),
                ));
            }
        }
        Ok(Body {
            bytes: bytes.into(),
            _buffered: buffered,
        })
    }
}

fn too_large(limit: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "too_large",
        format!("this route's request bodies hold at most {limit} bytes"),
    )
}

/// `length` bytes of the body buffer, or 503 after the queue timeout.
async fn buffer_share(app: &App, length: usize) -> Result<OwnedSemaphorePermit, ApiError> {
    let permits = u32::try_from(length).map_err(|_| too_large(MAX_BODY_BYTES))?;
    match tokio::time::timeout(
        app.queue_timeout,
        app.buffer.clone().acquire_many_owned(permits),
    )
    .await
    {
        Ok(Ok(permit)) => Ok(permit),
        _ => {
            app.metrics.overloaded();
            Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "overloaded",
                format!(
                    "the server is buffering too many request bodies; none freed up within {} ms: retry later",
                    app.queue_timeout.as_millis()
                ),
            ))
        }
    }
}

/// Bodies are JSON: a `Content-Type` other than `application/json` (the shapes a browser
/// sends cross-site without a preflight: forms, `text/plain`) is refused before anything
/// runs. An empty body may come without one.
fn check_content_type(request: &Request) -> Result<(), ApiError> {
    let Some(value) = request.headers().get(header::CONTENT_TYPE) else {
        let empty = request
            .headers()
            .get(header::CONTENT_LENGTH)
            .is_some_and(|length| length.as_bytes() == b"0")
            || !request.headers().contains_key(header::CONTENT_LENGTH)
                && !request.headers().contains_key(header::TRANSFER_ENCODING);
        return if empty {
            Ok(())
        } else {
            Err(unsupported("a body needs `Content-Type: application/json`"))
        };
    };
    let essence = value
        .to_str()
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if essence == "application/json" {
        Ok(())
    } else {
        Err(unsupported(&format!(
            "bodies are JSON: `Content-Type: application/json`, not {:?}",
            value.to_str().unwrap_or("(not text)")
        )))
    }
}

fn unsupported(message: &str) -> ApiError {
    ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        message,
    )
}

/// A key from an entity route's path: the rest of the path, percent-decoded exactly once.
/// A query string (an unencoded `?` in a key, most likely) or an invalid escape is refused
/// rather than guessed at.
struct PathKey(Key);

impl axum::extract::FromRequestParts<App> for PathKey {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &App,
    ) -> Result<Self, ApiError> {
        let invalid =
            |message: String| ApiError::new(StatusCode::BAD_REQUEST, "invalid_key", message);
        if let Some(query) = parts.uri.query() {
            return Err(invalid(format!(
                "an entity path takes no query string (found ?{query}): a key holding `?` or `#` \
                 writes them percent-encoded (%3F, %23)"
            )));
        }
        let raw = parts
            .uri
            .path()
            .strip_prefix("/v1/entities/")
            .unwrap_or_default();
        let bytes = percent_decode(raw).map_err(invalid)?;
        // Not text at all: a malformed request rather than a malformed key (as before).
        let text = String::from_utf8(bytes)
            .map_err(|_| ApiError::bad_request("the key, percent-decoded, is not UTF-8"))?;
        key(&text).map(PathKey)
    }
}

/// The one path parameter of a route (an operation name), decoded; one that is not UTF-8
/// after percent-decoding is an error in the API's JSON shape, not axum's plain text.
struct Segment(String);

impl axum::extract::FromRequestParts<App> for Segment {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &App,
    ) -> Result<Self, ApiError> {
        match axum::extract::Path::<String>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(text)) => Ok(Segment(text)),
            Err(rejection) => Err(ApiError::bad_request(rejection.body_text())),
        }
    }
}

/// Percent-decodes a path exactly once; an escape that is not `%` and two hex digits is an
/// error.
fn percent_decode(raw: &str) -> Result<Vec<u8>, String> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|pair| std::str::from_utf8(pair).ok())
                .and_then(|pair| u8::from_str_radix(pair, 16).ok())
                .filter(|_| bytes[i + 1].is_ascii_hexdigit() && bytes[i + 2].is_ascii_hexdigit());
            match hex {
                Some(byte) => out.push(byte),
                None => {
                    return Err(format!(
                        "invalid percent escape at byte {i} of the path: `%` must be followed by \
                         two hex digits (write a literal % as %25)"
                    ));
                }
            }
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Ok(out)
}

/// How long one store check answers the health probes that follow it.
const HEALTH_CHECK_REUSE: Duration = Duration::from_millis(250);

async fn health(State(app): State<App>, uri: axum::http::Uri) -> Response {
    let live_only = uri.query().is_some_and(|q| {
        q.split('&')
            .any(|pair| pair == "live" || pair.starts_with("live="))
    });
    if live_only {
        return JsonAnswer(json!({ "ok": true })).into_response();
    }
    let outcome = {
        // One check at a time; the others wait for it and reuse its answer.
        let mut last = app.health.lock().await;
        match &*last {
            Some((at, outcome)) if at.elapsed() < HEALTH_CHECK_REUSE => outcome.clone(),
            _ => {
                let checked = tokio::time::timeout(Duration::from_secs(5), app.db.health()).await;
                let outcome = match checked {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(err)) => Err(err.to_string()),
                    Err(_) => Err("the store did not answer a read within 5 s".to_string()),
                };
                *last = Some((Instant::now(), outcome.clone()));
                outcome
            }
        }
    };
    let reason = match outcome {
        Ok(()) => return JsonAnswer(json!({ "ok": true })).into_response(),
        Err(reason) => reason,
    };
    (
        StatusCode::SERVICE_UNAVAILABLE,
        JsonAnswer(json!({ "ok": false, "error": { "kind": "unhealthy", "message": reason } })),
    )
        .into_response()
}

async fn metrics_text(State(app): State<App>) -> Response {
    let text = app
        .metrics
        .render(app.db.idle_instances(), app.db.engine().max_instances());
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        text,
    )
        .into_response()
}

/// An error answer: status and `{"error": {"kind", "message"}}`.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    kind: &'static str,
    message: String,
    /// The store error's kind, when a store caused it (for the metrics).
    store: Option<&'static str>,
}

/// An answer's error kind when a store caused it, for the metrics.
#[derive(Clone, Copy)]
struct StoreErrorKind(&'static str);

impl ApiError {
    fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            kind,
            message: message.into(),
            store: None,
        }
    }

    fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
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
        // A conflict is the store's verdict whether the store or the model's retries
        // reported it.
        let store = match &err {
            Error::Store(StoreError::Unavailable(_)) => Some("unavailable"),
            Error::Store(StoreError::InvalidRequest(_)) => Some("invalid_request"),
            Error::Store(StoreError::Internal(_)) => Some("internal"),
            Error::Store(StoreError::Conflict(_)) | Error::Conflict(_) => Some("conflict"),
            _ => None,
        };
        ApiError {
            store,
            ..ApiError::new(status, kind, err.to_string())
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let store = self.store;
        let body = json!({ "error": { "kind": self.kind, "message": self.message } });
        let mut response = (self.status, JsonAnswer(body)).into_response();
        if self.status == StatusCode::CONFLICT {
            // A conflict that outlived the retries: the entity was busy; try again shortly.
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static("1"),
            );
        }
        if let Some(kind) = store {
            response.extensions_mut().insert(StoreErrorKind(kind));
        }
        response
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
    let started = Instant::now();
    let admitted = tokio::time::timeout(app.queue_timeout, app.slots.clone().acquire_owned()).await;
    app.metrics.queue_wait(started.elapsed());
    match admitted {
        Ok(Ok(permit)) => Ok(permit),
        _ => Err({
            app.metrics.overloaded();
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "overloaded",
                format!(
                    "no call slot became free within {} ms; retry later",
                    app.queue_timeout.as_millis()
                ),
            )
        }),
    }
}

fn key(text: &str) -> Result<Key, ApiError> {
    Key::parse_any(text)
        .map_err(|err| ApiError::new(StatusCode::BAD_REQUEST, "invalid_key", err.to_string()))
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

async fn get_entity(
    State(app): State<App>,
    PathKey(key): PathKey,
    headers: axum::http::HeaderMap,
) -> Result<Response, ApiError> {
    let not_found = || {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no entity at key {key}"),
        )
    };
    let _slot = admit(&app).await?;
    let found = app
        .db
        .get_versioned(std::slice::from_ref(&key))
        .await?
        .pop()
        .flatten()
        .ok_or_else(not_found)?;
    let tag = etag(found.version);
    if conditional::none_match(&headers, found.version)? {
        return Ok((StatusCode::NOT_MODIFIED, [(header::ETAG, tag)]).into_response());
    }
    let mut response = JsonAnswer(entity_json(&found.entity)).into_response();
    response.headers_mut().insert(header::ETAG, tag);
    Ok(response)
}

async fn put_entity(
    State(app): State<App>,
    PathKey(key): PathKey,
    headers: axum::http::HeaderMap,
    request: Body,
) -> Result<Response, ApiError> {
    let condition = conditional::for_write(&headers, true)?;
    let properties: serde_json::Map<String, Json> = body(&request.bytes)?;
    let entity = Entity::from_json_object(key, &properties).map_err(Error::from)?;
    let _slot = admit(&app).await?;
    let version = app
        .db
        .put_if(&[(entity.clone(), condition)])
        .await
        .map_err(conditional::failed)?;
    let mut response = JsonAnswer(answer::key_json(&entity.key)).into_response();
    response.headers_mut().insert(header::ETAG, etag(version));
    Ok(response)
}

async fn delete_entity(
    State(app): State<App>,
    PathKey(key): PathKey,
    headers: axum::http::HeaderMap,
) -> Answer {
    let condition = conditional::for_write(&headers, false)?;
    let _slot = admit(&app).await?;
    let existed = app
        .db
        .delete_if(&[(key.clone(), condition)])
        .await
        .map_err(conditional::failed)?;
    let existed = existed.first().copied().unwrap_or(false);
    Ok(JsonAnswer(answer::deleted_json(&key, existed)))
}

/// An entity version as an `ETag` (strong: the version names the exact stored bytes).
fn etag(version: u64) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{version}\"")).unwrap_or(HeaderValue::from_static("\"\""))
}

/// HTTP conditional requests over the model's write conditions: `If-Match` and
/// `If-None-Match` as RFC 9110 defines them, for the ETags [`etag`] gives.
mod conditional {
    use super::*;
    use crate::Condition;

    /// The condition a write's headers ask for: `If-Match: "7"` (that version), `If-Match: *`
    /// (any version: replace, never create), and on a PUT `If-None-Match: *` (create, never
    /// replace). More than one ETag, a weak one, or both headers at once are refused (400):
    /// each names exactly one stored state, and a write must name one.
    pub(super) fn for_write(
        headers: &axum::http::HeaderMap,
        creating_allowed: bool,
    ) -> Result<Condition, ApiError> {
        let if_match = text(headers, header::IF_MATCH)?;
        let if_none_match = text(headers, header::IF_NONE_MATCH)?;
        match (if_match, if_none_match) {
            (None, None) => Ok(Condition::Any),
            (Some(_), Some(_)) => Err(bad("send If-Match or If-None-Match, not both")),
            (None, Some(value)) if value == "*" && creating_allowed => Ok(Condition::Absent),
            (None, Some(_)) => Err(bad(if creating_allowed {
                "If-None-Match on a PUT takes only * (create, never replace)"
            } else {
                "a DELETE takes If-Match, not If-None-Match"
            })),
            (Some(value), None) if value == "*" => Ok(Condition::Present),
            (Some(value), None) => version(&value)
                .map(Condition::Version)
                .ok_or_else(|| bad("If-Match takes one ETag this service gave (\"7\"), or *")),
        }
    }

    /// For a GET: true when `If-None-Match` names the current version (or is `*`), so the
    /// answer is 304. Weak comparison, as RFC 9110 has for `If-None-Match`.
    pub(super) fn none_match(
        headers: &axum::http::HeaderMap,
        current: u64,
    ) -> Result<bool, ApiError> {
        let Some(value) = text(headers, header::IF_NONE_MATCH)? else {
            return Ok(false);
        };
        Ok(value.split(',').map(str::trim).any(|tag| {
            tag == "*" || version(tag.strip_prefix("W/").unwrap_or(tag)) == Some(current)
        }))
    }

    /// A failed write condition is 412 here (elsewhere a failed precondition is a business
    /// rule's 422).
    pub(super) fn failed(err: Error) -> ApiError {
        match err {
            Error::FailedPrecondition(message) => ApiError::new(
                StatusCode::PRECONDITION_FAILED,
                "precondition_failed",
                message,
            ),
            other => other.into(),
        }
    }

    fn version(tag: &str) -> Option<u64> {
        tag.strip_prefix('"')?.strip_suffix('"')?.parse().ok()
    }

    fn text(
        headers: &axum::http::HeaderMap,
        name: header::HeaderName,
    ) -> Result<Option<String>, ApiError> {
        let mut values = headers.get_all(&name).iter();
        let Some(value) = values.next() else {
            return Ok(None);
        };
        if values.next().is_some() {
            return Err(bad(&format!("send one {name} header")));
        }
        let value = value
            .to_str()
            .map_err(|_| bad(&format!("{name} is not text")))?
            .trim()
            .to_string();
        Ok(Some(value))
    }

    fn bad(message: &str) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_condition", message)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchPutEntity {
    key: String,
    properties: serde_json::Map<String, Json>,
    /// Write only if the entity is at this version (its ETag's number).
    if_version: Option<u64>,
    /// Write only if no entity is there.
    #[serde(default)]
    if_absent: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchPut {
    entities: Vec<BatchPutEntity>,
}

async fn batch_put(State(app): State<App>, request: Body) -> Answer {
    let request: BatchPut = body(&request.bytes)?;
    let mut writes = Vec::with_capacity(request.entities.len());
    for item in request.entities {
        let condition = match (item.if_version, item.if_absent) {
            (Some(_), true) => {
                return Err(ApiError::bad_request(format!(
                    "entity {}: if_version and if_absent exclude each other",
                    item.key
                )));
            }
            (Some(version), false) => crate::Condition::Version(version),
            (None, true) => crate::Condition::Absent,
            (None, false) => crate::Condition::Any,
        };
        // A kind alone as the key's last element: the entity gets a new id.
        let key = Key::parse_allowing_incomplete(&item.key).map_err(|err| {
            ApiError::new(StatusCode::BAD_REQUEST, "invalid_key", err.to_string())
        })?;
        let entity = Entity::from_json_object(key, &item.properties).map_err(Error::from)?;
        writes.push((entity, condition));
    }
    let _slot = admit(&app).await?;
    let unconditional = writes.iter().all(|(_, c)| *c == crate::Condition::Any);
    let allocates = writes.iter().any(|(e, _)| e.key.is_incomplete());
    if unconditional && allocates {
        // put-many: what allocates ids (no condition can name an entity not yet named).
        let entities: Vec<Entity> = writes.into_iter().map(|(entity, _)| entity).collect();
        let keys: Vec<Json> = host_core::face::put_completing(&app.db, entities)
            .await?
            .iter()
            .map(|key| Json::String(key.to_string()))
            .collect();
        return Ok(JsonAnswer(json!({ "keys": keys })));
    }
    let keys: Vec<Json> = writes
        .iter()
        .map(|(entity, _)| Json::String(entity.key.to_string()))
        .collect();
    let version = app.db.put_if(&writes).await.map_err(conditional::failed)?;
    Ok(JsonAnswer(json!({ "keys": keys, "version": version })))
}

async fn batch_delete(State(app): State<App>, request: Body) -> Answer {
    let keys = body::<Keys>(&request.bytes)?.parse()?;
    let _slot = admit(&app).await?;
    let deletes: Vec<_> = keys
        .iter()
        .map(|k| (k.clone(), crate::Condition::Any))
        .collect();
    let existed = app.db.delete_if(&deletes).await?;
    let deleted: Vec<Json> = keys
        .iter()
        .zip(existed)
        .map(|(key, existed)| answer::deleted_json(key, existed))
        .collect();
    Ok(JsonAnswer(json!({ "deleted": deleted })))
}

/// The body of `count` and `delete-by-query`: which entities, as `query` names them.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SelectionRequest {
    kind: String,
    #[serde(default)]
    namespace: String,
    ancestor: Option<String>,
    #[serde(default)]
    filters: Vec<String>,
    /// At most this many.
    limit: Option<u32>,
    /// `delete-by-query` only: count, delete nothing.
    dry_run: Option<bool>,
}

impl SelectionRequest {
    fn query(&self) -> Result<Query, ApiError> {
        Ok(Query {
            namespace: self.namespace.clone(),
            kind: Some(self.kind.clone()),
            ancestor: self.ancestor.as_deref().map(key).transpose()?,
            filters: filters(&self.filters)?,
            limit: self.limit,
            ..Query::default()
        })
    }
}

async fn count(State(app): State<App>, request: Body) -> Answer {
    let request: SelectionRequest = body(&request.bytes)?;
    if request.dry_run.is_some() {
        return Err(ApiError::bad_request("count takes no dry_run"));
    }
    let query = request.query()?;
    let _slot = admit(&app).await?;
    let count = app.db.count(&query).await?;
    Ok(JsonAnswer(json!({ "count": count })))
}

async fn delete_by_query(State(app): State<App>, request: Body) -> Answer {
    let request: SelectionRequest = body(&request.bytes)?;
    let query = request.query()?;
    let dry_run = request.dry_run.unwrap_or(false);
    let _slot = admit(&app).await?;
    let done = host_core::face::delete_by_query(&app.db, &query, dry_run).await?;
    Ok(JsonAnswer(answer::deleted_by_query_json(&done, dry_run)))
}

async fn schema(State(app): State<App>) -> Answer {
    let _slot = admit(&app).await?;
    Ok(JsonAnswer(app.db.schema().await?))
}

/// The body of `batch-get` and `batch-delete`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Keys {
    keys: Vec<String>,
}

impl Keys {
    fn parse(&self) -> Result<Vec<Key>, ApiError> {
        self.keys.iter().map(|k| key(k)).collect()
    }
}

async fn batch_get(State(app): State<App>, request: Body) -> Answer {
    let keys = body::<Keys>(&request.bytes)?.parse()?;
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

/// The filters of a query-shaped body, each `property OP value`.
fn filters(texts: &[String]) -> Result<Vec<Filter>, ApiError> {
    texts
        .iter()
        .map(|f| Filter::parse(f).map_err(|err| Error::from(err).into()))
        .collect()
}

async fn query(State(app): State<App>, request: Body) -> Answer {
    let request: QueryRequest = body(&request.bytes)?;
    let query = Query {
        namespace: request.namespace,
        kind: Some(request.kind),
        ancestor: request.ancestor.as_deref().map(key).transpose()?,
        filters: filters(&request.filters)?,
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

async fn allocate_ids(State(app): State<App>, request: Body) -> Answer {
    let request: AllocateIds = body(&request.bytes)?;
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

async fn deposit(State(app): State<App>, request: Body) -> Answer {
    let request: Deposit = body(&request.bytes)?;
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

async fn transfer(State(app): State<App>, request: Body) -> Answer {
    let request: Transfer = body(&request.bytes)?;
    let (source, destination) = (key(&request.source)?, key(&request.destination)?);
    let _slot = admit(&app).await?;
    let receipt = app
        .db
        .transfer(&source, &destination, request.amount)
        .await?;
    Ok(JsonAnswer(answer::receipt_json(&receipt)))
}

async fn call(State(app): State<App>, Segment(name): Segment, request: Body) -> Answer {
    let input: Json = if request.bytes.is_empty() {
        json!({})
    } else {
        body(&request.bytes)?
    };
    let _slot = admit(&app).await?;
    Ok(JsonAnswer(app.db.call(&name, &input).await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 409 tells the client when to try again; other errors do not.
    #[test]
    fn conflicts_carry_retry_after() {
        let conflict = ApiError::from(Error::Conflict("busy".into())).into_response();
        assert_eq!(conflict.status(), StatusCode::CONFLICT);
        assert_eq!(
            conflict.headers().get(axum::http::header::RETRY_AFTER),
            Some(&axum::http::HeaderValue::from_static("1"))
        );
        let missing = ApiError::from(Error::NotFound("x".into())).into_response();
        assert!(
            missing
                .headers()
                .get(axum::http::header::RETRY_AFTER)
                .is_none()
        );
    }
}
