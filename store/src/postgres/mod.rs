//! `postgres://…` (and `postgresql://…`): the server store, for PostgreSQL and for the
//! PostgreSQL-protocol distributed SQL engines (CockroachDB, YugabyteDB).
//!
//! The store's SQL, commit retries and error mapping are written once, async, over
//! `tokio-postgres`, as operations on one connection ([`Conn`]). Two pools run them, and
//! they differ only in who drives a connection's socket:
//!
//! - [`PostgresStore`] (`ads`): each connection is a task on the caller's tokio runtime;
//!   operations are awaited.
//! - [`BlockingPostgresStore`] (`ds`): each connection keeps its own current-thread runtime
//!   and is driven on the calling thread for the length of one operation, as the `postgres`
//!   crate drives `tokio-postgres`; no other thread takes part in a query.
//!
//! Commits run at `SERIALIZABLE` isolation: the checks and the writes are one transaction,
//! and a serialization failure (SQLSTATE 40001, or a deadlock, 40P01) is retried inside the
//! store; the retry re-reads the checked versions, so a real conflict then shows as a
//! `conflict`. Row locks (`SELECT … FOR UPDATE`) cannot lock a key that does not exist yet,
//! so two commits that both check "absent" would both pass; serializable isolation covers
//! that case, and it is what CockroachDB runs by default. Versions come from a sequence.
//!
//! The SQL is portable on purpose: no extensions, no advisory locks, no `LISTEN`, nothing
//! that CockroachDB or YugabyteDB lacks.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use tokio_postgres::error::{Severity, SqlState};
use tokio_postgres::{Client, Statement};

use super::{Check, Direction, Entry, KeyRange, StoreError, Versioned, Write};
use crate::error_chain as chain;

mod blocking;
mod spawned;
mod tls;

pub use blocking::BlockingPostgresStore;
pub use spawned::{PostgresStore, open_on};
pub use tls::{SslMode, TlsSettings};

/// The on-server format this build writes and reads.
pub const FORMAT_VERSION: i64 = 1;

/// Most connections one store opens, unless its URL says otherwise (`max_connections=N`).
pub const DEFAULT_MAX_CONNECTIONS: usize = 32;

/// The largest `max_connections` a URL may ask for: far above any server's connection limit,
/// low enough to catch a typo.
const MAX_MAX_CONNECTIONS: usize = 10_000;

/// How many times a commit is retried after a serialization failure.
const MAX_COMMIT_ATTEMPTS: u32 = 20;

const GET: &str = "SELECT value, version FROM ds_kv WHERE key = $1";
const GET_MANY: &str = "SELECT key, value, version FROM ds_kv WHERE key = ANY($1)";
const SCAN_FORWARD: &str =
    "SELECT key, value, version FROM ds_kv WHERE key >= $1 AND key < $2 ORDER BY key ASC LIMIT $3";
const SCAN_FORWARD_OPEN: &str =
    "SELECT key, value, version FROM ds_kv WHERE key >= $1 ORDER BY key ASC LIMIT $2";
const SCAN_REVERSE: &str =
    "SELECT key, value, version FROM ds_kv WHERE key >= $1 AND key < $2 ORDER BY key DESC LIMIT $3";
const SCAN_REVERSE_OPEN: &str =
    "SELECT key, value, version FROM ds_kv WHERE key >= $1 ORDER BY key DESC LIMIT $2";
/// Locks the checked rows in key order: contending commits queue on their first common
/// key instead of deadlocking (PostgreSQL only detects a deadlock after `deadlock_timeout`).
const CHECK: &str = "SELECT key, version FROM ds_kv WHERE key = ANY($1) ORDER BY key FOR UPDATE";
const CURRENT_VERSIONS: &str = "SELECT key, version FROM ds_kv WHERE key = ANY($1)";
const NEXT_VERSION: &str = "SELECT nextval('ds_version')";
const PUT: &str = "INSERT INTO ds_kv (key, value, version) SELECT k, v, $3 FROM UNNEST($1::bytea[], $2::bytea[]) AS t (k, v) \
                   ON CONFLICT (key) DO UPDATE SET value = excluded.value, version = excluded.version";
const DELETE: &str = "DELETE FROM ds_kv WHERE key = ANY($1)";

const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS ds_meta (name TEXT PRIMARY KEY, value BIGINT NOT NULL);
    CREATE TABLE IF NOT EXISTS ds_kv (key BYTEA PRIMARY KEY, value BYTEA NOT NULL, version BIGINT NOT NULL);
    CREATE SEQUENCE IF NOT EXISTS ds_version;
";

/// A connection URL split into what `tokio-postgres` reads and the schema ds uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostgresUrl {
    /// The connection URL, without ds's own parameters.
    pub url: String,
    /// `schema=NAME`: the schema that holds ds's tables (created if missing); `None` uses the
    /// server's default search path.
    pub schema: Option<String>,
    /// `max_connections=N`: the most connections the store's pool opens (default
    /// [`DEFAULT_MAX_CONNECTIONS`]); callers beyond it wait for a connection to come back.
    pub max_connections: usize,
    /// `sslmode`, `sslrootcert`, `sslcert`, `sslkey`: TLS, with libpq's meanings.
    pub tls: TlsSettings,
    /// Whether opening creates the schema and ds's tables when they are missing (the
    /// default); without, opening a database that holds no ds store fails
    /// ([`StoreUrl::existing`](crate::StoreUrl::existing), for reads).
    pub create: bool,
}

impl PostgresUrl {
    /// Splits ds's own parameters (`schema`, `max_connections`) and the TLS ones (which ds
    /// reads as libpq does, beyond what tokio-postgres knows) off a `postgres://` URL.
    pub fn parse(url: &str) -> Result<PostgresUrl, String> {
        let (base, query) = match url.split_once('?') {
            Some((base, query)) => (base, query),
            None => (url, ""),
        };
        let mut schema = None;
        let mut max_connections = DEFAULT_MAX_CONNECTIONS;
        let mut rest = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("schema", name)) => {
                    if name.is_empty()
                        || name.len() > 63
                        || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                    {
                        return Err(format!(
                            "schema {name:?} must be 1 to 63 ASCII letters, digits or underscores"
                        ));
                    }
                    schema = Some(name.to_ascii_lowercase());
                }
                Some(("max_connections", count)) => {
                    max_connections = count
                        .parse()
                        .ok()
                        .filter(|n| (1..=MAX_MAX_CONNECTIONS).contains(n))
                        .ok_or_else(|| {
                            format!(
                                "max_connections {count:?} must be a whole number from 1 to \
                                 {MAX_MAX_CONNECTIONS}"
                            )
                        })?;
                }
                _ => rest.push(pair),
            }
        }
        let tls = TlsSettings::split_off(&mut rest)?;
        let url = if rest.is_empty() {
            base.to_string()
        } else {
            format!("{base}?{}", rest.join("&"))
        };
        url.parse::<tokio_postgres::Config>()
            .map_err(|err| format!("not a valid PostgreSQL URL: {err}"))?;
        Ok(PostgresUrl {
            url,
            schema,
            create: true,
            max_connections,
            tls,
        })
    }
}

/// `Ok` for a store format this build reads.
fn check_format(found: i64) -> Result<(), StoreError> {
    if found > FORMAT_VERSION {
        return Err(StoreError::Unavailable(format!(
            "the database was written by a newer ds (store format {found}; this build reads format \
             {FORMAT_VERSION}): upgrade ds to open it"
        )));
    }
    Ok(())
}

/// A connection with its prepared statements: every operation of the store, written once.
struct Conn {
    client: Client,
    statements: HashMap<&'static str, Statement>,
}

impl Conn {
    /// A new connection's setup: ds's schema (created if missing, when `create`), first on
    /// the search path.
    async fn new(client: Client, schema: Option<&str>, create: bool) -> Result<Conn, StoreError> {
        if let Some(schema) = schema {
            // The name was checked to be [a-z0-9_]+ when the URL was parsed.
            let setup = if create {
                format!("CREATE SCHEMA IF NOT EXISTS {schema}; SET search_path TO {schema}")
            } else {
                format!("SET search_path TO {schema}")
            };
            client
                .batch_execute(&setup)
                .await
                .map_err(|err| map_error(&err))?;
        }
        Ok(Conn {
            client,
            statements: HashMap::new(),
        })
    }

    async fn statement(&mut self, sql: &'static str) -> Result<Statement, tokio_postgres::Error> {
        if let Some(statement) = self.statements.get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.client.prepare(sql).await?;
        self.statements.insert(sql, statement.clone());
        Ok(statement)
    }

    /// Creates the tables if needed (when `create`; else a database without them holds no
    /// store, an error) and checks that their format is one this build reads.
    async fn init_schema(&mut self, create: bool) -> Result<(), StoreError> {
        if !create {
            return match self
                .client
                .query_one("SELECT value FROM ds_meta WHERE name = 'format'", &[])
                .await
            {
                Ok(row) => check_format(row.get(0)),
                Err(err) if err.code() == Some(&SqlState::UNDEFINED_TABLE) => {
                    Err(StoreError::Unavailable(
                        "no store there: the database (and schema) holds no ds tables (reading \
                         does not create a store; writing does)"
                            .into(),
                    ))
                }
                Err(err) => Err(map_error(&err)),
            };
        }
        // Two processes creating the tables at once can collide on the catalog; one retry
        // then sees the tables in place.
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.client.batch_execute(SCHEMA).await {
                Ok(()) => break,
                Err(err) if attempt < 3 && err.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
                    continue;
                }
                Err(err) => return Err(map_error(&err)),
            }
        }
        self.client
            .execute("INSERT INTO ds_meta (name, value) VALUES ('format', $1) ON CONFLICT (name) DO NOTHING", &[&FORMAT_VERSION])
            .await
            .map_err(|err| map_error(&err))?;
        let row = self
            .client
            .query_one("SELECT value FROM ds_meta WHERE name = 'format'", &[])
            .await
            .map_err(|err| map_error(&err))?;
        check_format(row.get(0))
    }

    async fn get(&mut self, key: &[u8]) -> Result<Option<Versioned>, tokio_postgres::Error> {
        let statement = self.statement(GET).await?;
        let row = self.client.query_opt(&statement, &[&key]).await?;
        Ok(row.map(|row| versioned(row.get(0), row.get(1))))
    }

    async fn get_many(
        &mut self,
        keys: &[Vec<u8>],
    ) -> Result<Vec<Option<Versioned>>, tokio_postgres::Error> {
        let statement = self.statement(GET_MANY).await?;
        let rows = self.client.query(&statement, &[&keys]).await?;
        let mut found: HashMap<Vec<u8>, Versioned> = rows
            .into_iter()
            .map(|row| (row.get(0), versioned(row.get(1), row.get(2))))
            .collect();
        // One answer per requested key, in order; a duplicate key gets the same answer.
        let mut out = Vec::with_capacity(keys.len());
        for (i, key) in keys.iter().enumerate() {
            let later_duplicate = keys[i + 1..].contains(key);
            out.push(if later_duplicate {
                found.get(key).cloned()
            } else {
                found.remove(key)
            });
        }
        Ok(out)
    }

    async fn scan(
        &mut self,
        range: &KeyRange,
        limit: u32,
        direction: Direction,
    ) -> Result<Vec<Entry>, tokio_postgres::Error> {
        let limit = i64::from(limit.min(super::MAX_SCAN_LIMIT));
        let rows = match (&range.end, direction) {
            (Some(end), Direction::Forward) => {
                let statement = self.statement(SCAN_FORWARD).await?;
                self.client
                    .query(&statement, &[&range.start, end, &limit])
                    .await?
            }
            (Some(end), Direction::Reverse) => {
                let statement = self.statement(SCAN_REVERSE).await?;
                self.client
                    .query(&statement, &[&range.start, end, &limit])
                    .await?
            }
            (None, Direction::Forward) => {
                let statement = self.statement(SCAN_FORWARD_OPEN).await?;
                self.client
                    .query(&statement, &[&range.start, &limit])
                    .await?
            }
            (None, Direction::Reverse) => {
                let statement = self.statement(SCAN_REVERSE_OPEN).await?;
                self.client
                    .query(&statement, &[&range.start, &limit])
                    .await?
            }
        };
        Ok(rows
            .into_iter()
            .map(|row| Entry {
                key: row.get(0),
                value: versioned(row.get(1), row.get(2)),
            })
            .collect())
    }

    /// Applies a commit, retrying serialization failures. The outer error is one the
    /// connection reports (see [`reusable`]); the inner one is the commit's outcome, which
    /// leaves the connection usable: a conflict, or too many serialization failures.
    async fn commit(
        &mut self,
        checks: &[Check],
        writes: &[Write],
    ) -> Result<Result<u64, StoreError>, tokio_postgres::Error> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.commit_once(checks, writes).await {
                Ok(Attempt::Committed(version)) => return Ok(Ok(version)),
                Ok(Attempt::CheckFailed(key)) => return Ok(Err(StoreError::Conflict(key))),
                Ok(Attempt::OutcomeUnknown(err)) => {
                    return Ok(Err(StoreError::Internal(format!(
                        "PostgreSQL: the connection failed while committing, so whether the \
                         commit was applied is unknown: {}",
                        chain(&err)
                    ))));
                }
                Err(err) if !retryable(&err) => return Err(err),
                Err(_) => {
                    // With checks, a serialization failure is either a lost race (a checked
                    // key changed: report the conflict, so the model re-reads and retries
                    // under the host's one retry policy) or a false positive of PostgreSQL's
                    // page-granular predicate locks (nothing checked changed: retry here).
                    if !checks.is_empty()
                        && let Some(key) = self.failing_check(checks).await?
                    {
                        return Ok(Err(StoreError::Conflict(key)));
                    }
                    if attempt >= MAX_COMMIT_ATTEMPTS {
                        return Ok(Err(StoreError::Unavailable(format!(
                            "PostgreSQL: the commit failed to serialize {MAX_COMMIT_ATTEMPTS} times under contention"
                        ))));
                    }
                    // Back off a little more each time, so contending commits spread out.
                    tokio::time::sleep(Duration::from_micros(200 * u64::from(attempt))).await;
                }
            }
        }
    }

    /// The first check that no longer holds, read outside any transaction.
    async fn failing_check(
        &mut self,
        checks: &[Check],
    ) -> Result<Option<Vec<u8>>, tokio_postgres::Error> {
        let statement = self.statement(CURRENT_VERSIONS).await?;
        let keys: Vec<&[u8]> = checks.iter().map(|c| c.key.as_slice()).collect();
        let rows = self.client.query(&statement, &[&keys]).await?;
        let current: HashMap<Vec<u8>, i64> =
            rows.iter().map(|row| (row.get(0), row.get(1))).collect();
        Ok(checks
            .iter()
            .find(|check| current.get(&check.key).map(|v| *v as u64) != check.version)
            .map(|check| check.key.clone()))
    }

    /// One attempt at a commit. An error is one from before `COMMIT` was sent (nothing was
    /// written) or the server's refusal of the `COMMIT` (it rolled back); a `COMMIT` whose
    /// outcome the server cannot vouch for ([`outcome_unknown`]) is an outcome instead.
    async fn commit_once(
        &mut self,
        checks: &[Check],
        writes: &[Write],
    ) -> Result<Attempt, tokio_postgres::Error> {
        let check = self.statement(CHECK).await?;
        let next = self.statement(NEXT_VERSION).await?;
        let put = self.statement(PUT).await?;
        let delete = self.statement(DELETE).await?;
        let tx = self
            .client
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::Serializable)
            .start()
            .await?;
        if !checks.is_empty() {
            let keys: Vec<&[u8]> = checks.iter().map(|c| c.key.as_slice()).collect();
            let rows = tx.query(&check, &[&keys]).await?;
            let current: HashMap<Vec<u8>, i64> =
                rows.iter().map(|row| (row.get(0), row.get(1))).collect();
            for check in checks {
                if current.get(&check.key).map(|v| *v as u64) != check.version {
                    tx.rollback().await?;
                    return Ok(Attempt::CheckFailed(check.key.clone()));
                }
            }
        }
        let version: i64 = tx.query_one(&next, &[]).await?.get(0);
        // Last write wins within one commit, as in the other stores; one statement may not
        // touch a row twice. Key order, so that every commit takes row locks in one order.
        let mut last: BTreeMap<&[u8], Option<&[u8]>> = BTreeMap::new();
        for write in writes {
            last.insert(write.key.as_slice(), write.value.as_deref());
        }
        let (mut put_keys, mut put_values, mut delete_keys) = (Vec::new(), Vec::new(), Vec::new());
        for (key, value) in last {
            match value {
                Some(value) => {
                    put_keys.push(key);
                    put_values.push(value);
                }
                None => delete_keys.push(key),
            }
        }
        if !put_keys.is_empty() {
            tx.execute(&put, &[&put_keys, &put_values, &version])
                .await?;
        }
        if !delete_keys.is_empty() {
            tx.execute(&delete, &[&delete_keys]).await?;
        }
        match tx.commit().await {
            Ok(()) => Ok(Attempt::Committed(version as u64)),
            Err(err) if outcome_unknown(&err) => Ok(Attempt::OutcomeUnknown(err)),
            Err(err) => Err(err),
        }
    }
}

/// How a commit attempt ended, other than with an error before or at `COMMIT`.
enum Attempt {
    /// Applied, at this version.
    Committed(u64),
    /// The check of this key failed; nothing was written.
    CheckFailed(Vec<u8>),
    /// The connection failed once `COMMIT` was sent: the server may have applied it before
    /// the reply was lost, so the caller must not be told that nothing was written.
    OutcomeUnknown(tokio_postgres::Error),
}

/// Whether `err` is the connection failing (I/O, the socket closed, the backend shut down)
/// rather than the server answering with an error.
fn lost_connection(err: &tokio_postgres::Error) -> bool {
    match err.code() {
        None => true,
        Some(code) => code.code().starts_with("08") || code.code().starts_with("57P"),
    }
}

/// Whether `err`, the answer to a `COMMIT`, leaves the commit's outcome unknown: the
/// connection failed, CockroachDB's "result is ambiguous" (SQLSTATE 40003), or the server
/// ended the session (a `FATAL` or `PANIC`, as on an fsync failure once the commit record
/// may be written). Any other error is a refusal, and the transaction rolled back.
fn outcome_unknown(err: &tokio_postgres::Error) -> bool {
    lost_connection(err)
        || err.code() == Some(&SqlState::T_R_STATEMENT_COMPLETION_UNKNOWN)
        || err.as_db_error().is_some_and(|db| {
            // The parsed severity is not translated; older servers send only the other.
            match db.parsed_severity() {
                Some(severity) => matches!(severity, Severity::Fatal | Severity::Panic),
                None => matches!(db.severity(), "FATAL" | "PANIC"),
            }
        })
}

/// Whether a connection is fit for the next request after one that ended in `result`: a
/// server-side error leaves it usable, a broken connection does not (even when the request
/// itself ended in an outcome, as a commit whose reply was lost does).
fn reusable<R>(result: &Result<R, tokio_postgres::Error>, client: &Client) -> bool {
    match result {
        Ok(_) => !client.is_closed(),
        Err(err) => err.code().is_some() && !client.is_closed(),
    }
}

/// Whether an op that ended in `result` on a connection taken idle from the pool failed
/// with that connection closed (by a restart, an idle timeout, an administrator: the op
/// then sees tokio-postgres's "closed" error or the server's `FATAL`, such as 57P01). Such
/// an op wrote nothing, since a commit whose `COMMIT` went out reports an unknown outcome
/// ([`outcome_unknown`]) as a result instead of failing, so it may run again on another
/// connection.
fn stale<R>(result: &Result<R, tokio_postgres::Error>, client: &Client, was_idle: bool) -> bool {
    was_idle && result.is_err() && client.is_closed()
}

/// The connection settings of `url`.
fn config(url: &PostgresUrl) -> Result<tokio_postgres::Config, StoreError> {
    let mut config: tokio_postgres::Config = url
        .url
        .parse()
        .map_err(|err| StoreError::Unavailable(format!("invalid PostgreSQL URL: {err}")))?;
    config.ssl_mode(url.tls.wire_mode());
    Ok(config)
}

/// The error for a failed connection attempt; a TLS failure names the `sslmode` it was
/// under.
fn connect_error(err: &tokio_postgres::Error, config: &tokio_postgres::Config) -> StoreError {
    let text = chain(err);
    let mode = match config.get_ssl_mode() {
        tokio_postgres::config::SslMode::Disable => "",
        _ if !text.contains("TLS") && !text.contains("certificate") => "",
        _ => " (see sslmode, sslrootcert in the store URL)",
    };
    StoreError::Unavailable(format!("cannot connect to PostgreSQL: {text}{mode}"))
}

fn retryable(err: &tokio_postgres::Error) -> bool {
    matches!(err.code(), Some(code) if *code == SqlState::T_R_SERIALIZATION_FAILURE || *code == SqlState::T_R_DEADLOCK_DETECTED)
}

fn map_error(err: &tokio_postgres::Error) -> StoreError {
    let detail = match err.as_db_error() {
        Some(db) => format!("{}: {}", db.code().code(), db.message()),
        None => chain(err),
    };
    match err.code() {
        None => StoreError::Unavailable(format!("PostgreSQL connection failed: {detail}")),
        Some(code)
            if code.code().starts_with("08")
                || code.code().starts_with("57")
                || code.code().starts_with("53") =>
        {
            StoreError::Unavailable(format!("PostgreSQL: {detail}"))
        }
        Some(code) if code.code().starts_with("22") || code.code().starts_with("54") => {
            StoreError::InvalidRequest(format!("PostgreSQL refused the request: {detail}"))
        }
        Some(_) => StoreError::Internal(format!("PostgreSQL: {detail}")),
    }
}

fn versioned(value: Vec<u8>, version: i64) -> Versioned {
    Versioned {
        value,
        version: version as u64,
    }
}
