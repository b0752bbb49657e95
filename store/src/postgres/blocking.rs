//! The blocking PostgreSQL store (`ds`): the same operations as the async store, each run to
//! its end on the calling thread, which drives the connection's socket meanwhile.
//!
//! This is how the `postgres` crate wraps `tokio-postgres`: every connection has a
//! current-thread runtime of its own, and a call `block_on`s the operation together with the
//! connection's protocol half. Between calls nothing polls an idle connection, so a
//! connection the server closed meanwhile shows when an op fails on it, and the op runs
//! again on another. (Looking at every idle socket at checkout instead cost a runtime turn
//! and an `epoll_wait` per op: a third of the client's CPU over the `postgres` crate's.)
//! The earlier design (the async store driven through `BlockOn`) spent two thread
//! hops per query on the store's I/O thread; this one spends none.

use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::{Condvar, Mutex, MutexGuard};

use tokio::runtime::Runtime;

use super::tls::Connector;
use super::{Conn, PostgresUrl, config, connect_error, map_error, reusable, stale};
use crate::block_on::off_runtime;
use crate::{Check, Direction, Entry, KeyRange, Store, StoreError, Versioned, Write};

/// A store in a PostgreSQL database (or a PostgreSQL-protocol distributed SQL database),
/// for blocking callers: each call runs on the calling thread, which drives the connection.
pub struct BlockingPostgresStore {
    config: tokio_postgres::Config,
    tls: Connector,
    schema: Option<String>,
    /// Whether connections create the schema and tables when missing.
    create: bool,
    /// The most connections open at once (the URL's `max_connections`).
    max_connections: usize,
    pool: Mutex<Pool>,
    /// Signalled when a connection goes back to the pool or a slot frees up while a caller
    /// waits for one.
    released: Condvar,
}

struct Pool {
    idle: Vec<DrivenConn>,
    /// Connections open or being opened, idle or in use: at most `max_connections`.
    open: usize,
    /// Callers waiting for a connection: only then does a release signal (a futex call).
    waiting: usize,
}

impl BlockingPostgresStore {
    /// Connects to `url`, creates the tables if needed and checks their format.
    pub fn open(url: &PostgresUrl) -> Result<BlockingPostgresStore, StoreError> {
        let store = BlockingPostgresStore {
            config: config(url)?,
            tls: url.tls.connector()?,
            schema: url.schema.clone(),
            create: url.create,
            max_connections: url.max_connections,
            pool: Mutex::new(Pool {
                idle: Vec::new(),
                open: 0,
                waiting: 0,
            }),
            released: Condvar::new(),
        };
        let create = url.create;
        store.with_conn(async move |conn| Ok(conn.init_schema(create).await))??;
        Ok(store)
    }

    /// Runs `op` on a pooled connection (opening one if none is idle), driving it on this
    /// thread; the connection goes back to the pool unless the op broke it.
    ///
    /// Nothing polls an idle connection, so one the server closed while it sat idle shows
    /// only when an op fails on it ([`stale`]); the op then runs again on the next
    /// connection, until one opened for it: dead idle connections are used up, not reported.
    fn with_conn<R: Send>(
        &self,
        op: impl AsyncFnOnce(&mut Conn) -> Result<R, tokio_postgres::Error> + Clone + Send + Sync,
    ) -> Result<R, StoreError> {
        off_runtime(|| {
            loop {
                let mut lease = self.checkout()?;
                let driven = lease.conn.as_mut().expect("present until drop");
                let result = drive(
                    driven.runtime.get(),
                    &mut driven.driver,
                    op.clone()(&mut driven.conn),
                );
                lease.reusable = reusable(&result, &driven.conn.client);
                if !stale(&result, &driven.conn.client, lease.was_idle) {
                    return result.map_err(|err| map_error(&err));
                }
            }
        })
    }

    /// A connection for one operation: an idle one, else a new one once fewer than
    /// `max_connections` are open (waiting for one otherwise). An idle connection is never
    /// seen closed here: only `drive` notices a close, and such a connection is not reused.
    fn checkout(&self) -> Result<Lease<'_>, StoreError> {
        let mut pool = self.lock();
        loop {
            if let Some(conn) = pool.idle.pop() {
                return Ok(Lease {
                    store: self,
                    conn: Some(conn),
                    was_idle: true,
                    reusable: false,
                });
            }
            if pool.open < self.max_connections {
                pool.open += 1;
                break;
            }
            pool.waiting += 1;
            pool = self
                .released
                .wait(pool)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            pool.waiting -= 1;
        }
        drop(pool);
        // The slot is taken; if connecting fails, dropping the empty lease frees it.
        let mut lease = Lease {
            store: self,
            conn: None,
            was_idle: false,
            reusable: false,
        };
        lease.conn = Some(DrivenConn::open(
            &self.config,
            &self.tls,
            self.schema.as_deref(),
            self.create,
        )?);
        Ok(lease)
    }

    fn lock(&self) -> MutexGuard<'_, Pool> {
        self.pool
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Store for BlockingPostgresStore {
    fn get(&self, key: &[u8]) -> Result<Option<Versioned>, StoreError> {
        self.with_conn(async |conn| conn.get(key).await)
    }

    fn get_many(&self, keys: &[Vec<u8>]) -> Result<Vec<Option<Versioned>>, StoreError> {
        self.with_conn(async |conn| conn.get_many(keys).await)
    }

    fn scan(
        &self,
        range: &KeyRange,
        limit: u32,
        direction: Direction,
    ) -> Result<Vec<Entry>, StoreError> {
        self.with_conn(async |conn| conn.scan(range, limit, direction).await)
    }

    fn commit(&self, checks: &[Check], writes: &[Write]) -> Result<u64, StoreError> {
        self.with_conn(async |conn| conn.commit(checks, writes).await)?
    }
}

/// A checked-out connection (or its slot, while it is being opened). Dropped, it goes back
/// to the pool if its last operation left it usable, and is closed otherwise.
struct Lease<'a> {
    store: &'a BlockingPostgresStore,
    conn: Option<DrivenConn>,
    /// Taken from the idle list, rather than opened for this op.
    was_idle: bool,
    reusable: bool,
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        let conn = self.conn.take().filter(|_| self.reusable);
        let mut pool = self.store.lock();
        match conn {
            Some(conn) => pool.idle.push(conn),
            None => pool.open -= 1,
        }
        let waiting = pool.waiting > 0;
        drop(pool);
        if waiting {
            self.store.released.notify_one();
        }
    }
}

/// The protocol half of a connection (`tokio_postgres::Connection`): it reads and writes the
/// socket, and must be polled while a request is in flight.
type Driver = Pin<Box<dyn Future<Output = Result<(), tokio_postgres::Error>> + Send>>;

/// A connection whose socket belongs to a current-thread runtime of its own, driven by
/// whichever thread runs an operation on it.
struct DrivenConn {
    conn: Conn,
    driver: Driver,
    /// Declared last: dropped after the socket it drives.
    runtime: ConnRuntime,
}

impl DrivenConn {
    fn open(
        config: &tokio_postgres::Config,
        tls: &Connector,
        schema: Option<&str>,
        create: bool,
    ) -> Result<Self, StoreError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map(|runtime| ConnRuntime(Some(runtime)))
            .map_err(|err| {
                StoreError::Unavailable(format!("cannot start a connection's runtime: {err}"))
            })?;
        let (client, connection) = runtime
            .get()
            .block_on(config.connect(tls.clone()))
            .map_err(|err| connect_error(&err, config))?;
        let mut driver: Driver = Box::pin(connection);
        let conn = drive(
            runtime.get(),
            &mut driver,
            Conn::new(client, schema, create),
        )?;
        Ok(DrivenConn {
            conn,
            driver,
            runtime,
        })
    }
}

/// Runs `operation` on `runtime` until it ends, polling the connection's `driver` too.
fn drive<T>(runtime: &Runtime, driver: &mut Driver, operation: impl Future<Output = T>) -> T {
    runtime.block_on(async {
        let mut operation = pin!(operation);
        tokio::select! {
            biased;
            output = &mut operation => return output,
            closed = driver.as_mut() => {
                if let Err(err) = closed {
                    tracing::debug!(target: "host_core::postgres", "connection closed: {err}");
                }
            }
        }
        // The connection ended mid-operation. Dropping its protocol half closes the client's
        // channel, so the operation now fails with tokio-postgres's own "closed" error.
        *driver = Box::pin(std::future::pending());
        operation.await
    })
}

/// A connection's runtime. Dropped, it shuts down without waiting, so a store can be dropped
/// anywhere: dropping a `Runtime` inside async code panics.
struct ConnRuntime(Option<Runtime>);

impl ConnRuntime {
    fn get(&self) -> &Runtime {
        self.0.as_ref().expect("present until drop")
    }
}

impl Drop for ConnRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}
