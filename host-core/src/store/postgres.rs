//! `postgres://…` (and `postgresql://…`): the server store, for PostgreSQL and for the
//! PostgreSQL-protocol distributed SQL engines (CockroachDB, YugabyteDB).
//!
//! Written once, async, over `tokio-postgres`; `ads` awaits it and `ds` drives it with
//! [`super::BlockOn`], as the `postgres` crate drives `tokio-postgres`.
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
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls, Statement};

use super::{
    AsyncStore, BoxFuture, Check, Direction, Entry, KeyRange, StoreError, Versioned, Write,
};

/// The on-server format this build writes and reads.
pub const FORMAT_VERSION: i64 = 1;

/// Most connections one store opens.
const MAX_CONNECTIONS: usize = 32;

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
}

impl PostgresUrl {
    /// Splits ds's `schema` parameter off a `postgres://` URL.
    pub fn parse(url: &str) -> Result<PostgresUrl, String> {
        let (base, query) = match url.split_once('?') {
            Some((base, query)) => (base, query),
            None => (url, ""),
        };
        let mut schema = None;
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
                _ => rest.push(pair),
            }
        }
        let url = if rest.is_empty() {
            base.to_string()
        } else {
            format!("{base}?{}", rest.join("&"))
        };
        url.parse::<tokio_postgres::Config>()
            .map_err(|err| format!("not a valid PostgreSQL URL: {err}"))?;
        Ok(PostgresUrl { url, schema })
    }
}

/// A connection with its prepared statements.
struct Conn {
    client: Client,
    statements: HashMap<&'static str, Statement>,
}

impl Conn {
    async fn statement(&mut self, sql: &'static str) -> Result<Statement, tokio_postgres::Error> {
        if let Some(statement) = self.statements.get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.client.prepare(sql).await?;
        self.statements.insert(sql, statement.clone());
        Ok(statement)
    }
}

/// A store in a PostgreSQL database (or a PostgreSQL-protocol distributed SQL database).
pub struct PostgresStore {
    config: tokio_postgres::Config,
    schema: Option<String>,
    idle: Mutex<Vec<Conn>>,
    slots: tokio::sync::Semaphore,
    /// Where connection tasks run: the runtime the store was opened on.
    runtime: tokio::runtime::Handle,
}

impl PostgresStore {
    /// Connects to `url`, creates the tables if needed and checks their format. Must run
    /// inside a tokio runtime, which then drives the store's connections.
    pub async fn open(url: &PostgresUrl) -> Result<PostgresStore, StoreError> {
        let config: tokio_postgres::Config = url
            .url
            .parse()
            .map_err(|err| StoreError::Unavailable(format!("invalid PostgreSQL URL: {err}")))?;
        let store = PostgresStore {
            config,
            schema: url.schema.clone(),
            idle: Mutex::new(Vec::new()),
            slots: tokio::sync::Semaphore::new(MAX_CONNECTIONS),
            runtime: tokio::runtime::Handle::current(),
        };
        let mut conn = store.connect().await?;
        store.init_schema(&mut conn).await?;
        store.release(conn);
        Ok(store)
    }

    async fn connect(&self) -> Result<Conn, StoreError> {
        let (client, connection) = self.config.connect(NoTls).await.map_err(|err| {
            StoreError::Unavailable(format!("cannot connect to PostgreSQL: {}", chain(&err)))
        })?;
        self.runtime.spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(target: "host_core::postgres", "connection closed: {err}");
            }
        });
        if let Some(schema) = &self.schema {
            // The name was checked to be [a-z0-9_]+ when the URL was parsed.
            client
                .batch_execute(&format!(
                    "CREATE SCHEMA IF NOT EXISTS {schema}; SET search_path TO {schema}"
                ))
                .await
                .map_err(|err| map_error(&err))?;
        }
        Ok(Conn {
            client,
            statements: HashMap::new(),
        })
    }

    async fn init_schema(&self, conn: &mut Conn) -> Result<(), StoreError> {
        // Two processes creating the tables at once can collide on the catalog; one retry
        // then sees the tables in place.
        let mut attempt = 0;
        loop {
            attempt += 1;
            match conn.client.batch_execute(SCHEMA).await {
                Ok(()) => break,
                Err(err) if attempt < 3 && err.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
                    continue;
                }
                Err(err) => return Err(map_error(&err)),
            }
        }
        conn.client
            .execute("INSERT INTO ds_meta (name, value) VALUES ('format', $1) ON CONFLICT (name) DO NOTHING", &[&FORMAT_VERSION])
            .await
            .map_err(|err| map_error(&err))?;
        let row = conn
            .client
            .query_one("SELECT value FROM ds_meta WHERE name = 'format'", &[])
            .await
            .map_err(|err| map_error(&err))?;
        let found: i64 = row.get(0);
        if found > FORMAT_VERSION {
            return Err(StoreError::Unavailable(format!(
                "the database was written by a newer ds (store format {found}; this build reads format \
                 {FORMAT_VERSION}): upgrade ds to open it"
            )));
        }
        Ok(())
    }

    /// A pooled connection (opening one if none is idle), held until the guard is dropped.
    async fn checkout(&self) -> Result<Pooled<'_>, StoreError> {
        let permit = self
            .slots
            .acquire()
            .await
            .map_err(|_| StoreError::Unavailable("store closed".into()))?;
        let idle = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let conn = match idle {
            Some(conn) if !conn.client.is_closed() => conn,
            _ => self.connect().await?,
        };
        Ok(Pooled {
            store: self,
            conn: Some(conn),
            reusable: false,
            _permit: permit,
        })
    }

    fn release(&self, conn: Conn) {
        self.idle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(conn);
    }

    /// The first check that no longer holds, read outside any transaction.
    async fn failing_check(&self, checks: &[Check]) -> Result<Option<Vec<u8>>, StoreError> {
        let mut pooled = self.checkout().await?;
        let result = async {
            let statement = pooled.conn().statement(CURRENT_VERSIONS).await?;
            let keys: Vec<&[u8]> = checks.iter().map(|c| c.key.as_slice()).collect();
            pooled.conn().client.query(&statement, &[&keys]).await
        }
        .await;
        let rows = pooled.done(result)?;
        let current: HashMap<Vec<u8>, i64> =
            rows.iter().map(|row| (row.get(0), row.get(1))).collect();
        Ok(checks
            .iter()
            .find(|check| current.get(&check.key).map(|v| *v as u64) != check.version)
            .map(|check| check.key.clone()))
    }

    async fn commit_once(
        conn: &mut Conn,
        checks: &[Check],
        writes: &[Write],
    ) -> Result<Result<u64, Vec<u8>>, tokio_postgres::Error> {
        let check = conn.statement(CHECK).await?;
        let next = conn.statement(NEXT_VERSION).await?;
        let put = conn.statement(PUT).await?;
        let delete = conn.statement(DELETE).await?;
        let tx = conn
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
                    return Ok(Err(check.key.clone()));
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
        tx.commit().await?;
        Ok(Ok(version as u64))
    }
}

/// A checked-out connection. It goes back to the pool only if [`Pooled::done`] says the last
/// request left it usable; a guard dropped mid-request (a cancelled call) drops the connection.
struct Pooled<'a> {
    store: &'a PostgresStore,
    conn: Option<Conn>,
    reusable: bool,
    _permit: tokio::sync::SemaphorePermit<'a>,
}

impl Pooled<'_> {
    fn conn(&mut self) -> &mut Conn {
        self.conn.as_mut().expect("present until drop")
    }

    /// Records the outcome of the work done on the connection and maps its error.
    fn done<R>(mut self, result: Result<R, tokio_postgres::Error>) -> Result<R, StoreError> {
        self.reusable = match &result {
            Ok(_) => true,
            // A server-side error leaves the connection usable; a broken one does not.
            Err(err) => err.code().is_some() && !self.conn().client.is_closed(),
        };
        result.map_err(|err| map_error(&err))
    }
}

impl Drop for Pooled<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take().filter(|_| self.reusable) {
            self.store.release(conn);
        }
    }
}

fn retryable(err: &tokio_postgres::Error) -> bool {
    matches!(err.code(), Some(code) if *code == SqlState::T_R_SERIALIZATION_FAILURE || *code == SqlState::T_R_DEADLOCK_DETECTED)
}

/// An error and its sources, joined: tokio-postgres puts the useful part in the source.
fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
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

impl AsyncStore for PostgresStore {
    fn get(&self, key: Vec<u8>) -> BoxFuture<'_, Result<Option<Versioned>, StoreError>> {
        Box::pin(async move {
            let mut pooled = self.checkout().await?;
            let conn = pooled.conn();
            let result = async {
                let statement = conn.statement(GET).await?;
                let row = conn.client.query_opt(&statement, &[&key]).await?;
                Ok(row.map(|row| versioned(row.get(0), row.get(1))))
            }
            .await;
            pooled.done(result)
        })
    }

    fn get_many(
        &self,
        keys: Vec<Vec<u8>>,
    ) -> BoxFuture<'_, Result<Vec<Option<Versioned>>, StoreError>> {
        Box::pin(async move {
            let mut pooled = self.checkout().await?;
            let conn = pooled.conn();
            let result = async {
                let statement = conn.statement(GET_MANY).await?;
                conn.client.query(&statement, &[&keys]).await
            }
            .await;
            let rows = pooled.done(result)?;
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
        })
    }

    fn scan(
        &self,
        range: KeyRange,
        limit: u32,
        direction: Direction,
    ) -> BoxFuture<'_, Result<Vec<Entry>, StoreError>> {
        let limit = i64::from(limit.min(super::MAX_SCAN_LIMIT));
        Box::pin(async move {
            let mut pooled = self.checkout().await?;
            let conn = pooled.conn();
            let result = async {
                match (&range.end, direction) {
                    (Some(end), Direction::Forward) => {
                        let statement = conn.statement(SCAN_FORWARD).await?;
                        conn.client
                            .query(&statement, &[&range.start, end, &limit])
                            .await
                    }
                    (Some(end), Direction::Reverse) => {
                        let statement = conn.statement(SCAN_REVERSE).await?;
                        conn.client
                            .query(&statement, &[&range.start, end, &limit])
                            .await
                    }
                    (None, Direction::Forward) => {
                        let statement = conn.statement(SCAN_FORWARD_OPEN).await?;
                        conn.client.query(&statement, &[&range.start, &limit]).await
                    }
                    (None, Direction::Reverse) => {
                        let statement = conn.statement(SCAN_REVERSE_OPEN).await?;
                        conn.client.query(&statement, &[&range.start, &limit]).await
                    }
                }
            }
            .await;
            let rows = pooled.done(result)?;
            Ok(rows
                .into_iter()
                .map(|row| Entry {
                    key: row.get(0),
                    value: versioned(row.get(1), row.get(2)),
                })
                .collect())
        })
    }

    fn commit(
        &self,
        checks: Vec<Check>,
        writes: Vec<Write>,
    ) -> BoxFuture<'_, Result<u64, StoreError>> {
        Box::pin(async move {
            let mut attempt = 0;
            loop {
                attempt += 1;
                let mut pooled = self.checkout().await?;
                let result = PostgresStore::commit_once(pooled.conn(), &checks, &writes).await;
                match result {
                    // With checks, a serialization failure is either a lost race (a checked
                    // key changed: report the conflict, so the model re-reads and retries
                    // under the host's one retry policy) or a false positive of PostgreSQL's
                    // page-granular predicate locks (nothing checked changed: retry here).
                    Err(err) if retryable(&err) && !checks.is_empty() => {
                        pooled.reusable = true;
                        drop(pooled);
                        if let Some(key) = self.failing_check(&checks).await? {
                            return Err(StoreError::Conflict(key));
                        }
                        if attempt >= MAX_COMMIT_ATTEMPTS {
                            return Err(StoreError::Unavailable(format!(
                                "PostgreSQL: the commit failed to serialize {MAX_COMMIT_ATTEMPTS} times under contention"
                            )));
                        }
                        tokio::time::sleep(Duration::from_micros(200 * u64::from(attempt))).await;
                    }
                    Err(err) if retryable(&err) && attempt < MAX_COMMIT_ATTEMPTS => {
                        pooled.reusable = true;
                        drop(pooled);
                        // Back off a little more each time, so contending commits spread out.
                        tokio::time::sleep(Duration::from_micros(200 * u64::from(attempt))).await;
                    }
                    Err(err) if retryable(&err) => {
                        let _ = pooled.done(Err::<(), _>(err));
                        return Err(StoreError::Unavailable(format!(
                            "PostgreSQL: the commit failed to serialize {MAX_COMMIT_ATTEMPTS} times under contention"
                        )));
                    }
                    result => return pooled.done(result)?.map_err(StoreError::Conflict),
                }
            }
        })
    }
}

/// Opens a PostgreSQL store on `runtime`, for either host.
pub fn open_on(
    runtime: &tokio::runtime::Handle,
    url: &PostgresUrl,
) -> Result<Arc<PostgresStore>, StoreError> {
    let open = PostgresStore::open(url);
    let store = if tokio::runtime::Handle::try_current().is_ok() {
        std::thread::scope(|scope| scope.spawn(|| runtime.block_on(open)).join())
            .unwrap_or_else(|_| Err(StoreError::Internal("opening the store panicked".into())))?
    } else {
        runtime.block_on(open)?
    };
    Ok(Arc::new(store))
}
