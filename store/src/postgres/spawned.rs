//! The async PostgreSQL store (`ads`): each connection is a task on a tokio runtime, and the
//! operations are awaited.

use std::sync::{Arc, Mutex};

use super::tls::Connector;
use super::{Conn, PostgresUrl, config, connect_error, map_error, reusable, stale};
use crate::{
    AsyncStore, BoxFuture, Check, Direction, Entry, KeyRange, StoreError, Versioned, Write,
};

/// A store in a PostgreSQL database (or a PostgreSQL-protocol distributed SQL database),
/// awaited: its connections are tasks on the runtime it was opened on.
pub struct PostgresStore {
    config: tokio_postgres::Config,
    tls: Connector,
    schema: Option<String>,
    /// Whether connections create the schema and tables when missing.
    create: bool,
    idle: Mutex<Vec<Conn>>,
    slots: tokio::sync::Semaphore,
    /// Where connection tasks run: the runtime the store was opened on.
    runtime: tokio::runtime::Handle,
}

impl PostgresStore {
    /// Connects to `url`, creates the tables if needed and checks their format. Must run
    /// inside a tokio runtime, which then drives the store's connections.
    pub async fn open(url: &PostgresUrl) -> Result<PostgresStore, StoreError> {
        let store = PostgresStore {
            config: config(url)?,
            tls: url.tls.connector()?,
            schema: url.schema.clone(),
            create: url.create,
            idle: Mutex::new(Vec::new()),
            slots: tokio::sync::Semaphore::new(url.max_connections),
            runtime: tokio::runtime::Handle::current(),
        };
        let mut conn = store.connect().await?;
        conn.init_schema(store.create).await?;
        store.release(conn);
        Ok(store)
    }

    async fn connect(&self) -> Result<Conn, StoreError> {
        let (client, connection) = self
            .config
            .connect(self.tls.clone())
            .await
            .map_err(|err| connect_error(&err, &self.config))?;
        self.runtime.spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(target: "host_core::postgres", "connection closed: {err}");
            }
        });
        Conn::new(client, self.schema.as_deref(), self.create).await
    }

    /// Runs `op` on a pooled connection (opening one if none is idle); the connection goes
    /// back to the pool unless the op broke it or was cancelled mid-request. An idle
    /// connection's task sees the server close it, but only once the runtime gets to it:
    /// an op that fails on one closed meanwhile ([`stale`]) runs again on the next.
    async fn with_conn<R>(
        &self,
        op: impl AsyncFnOnce(&mut Conn) -> Result<R, tokio_postgres::Error> + Clone,
    ) -> Result<R, StoreError> {
        let _permit = self
            .slots
            .acquire()
            .await
            .map_err(|_| StoreError::Unavailable("store closed".into()))?;
        loop {
            let idle = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
            let (mut conn, was_idle) = match idle {
                Some(conn) if !conn.client.is_closed() => (conn, true),
                _ => (self.connect().await?, false),
            };
            // Dropped here with `conn` if the future is cancelled mid-request: a connection
            // in an unknown protocol state is never reused.
            let result = op.clone()(&mut conn).await;
            if reusable(&result, &conn.client) {
                self.release(conn);
            } else if stale(&result, &conn.client, was_idle) {
                continue;
            }
            return result.map_err(|err| map_error(&err));
        }
    }

    fn release(&self, conn: Conn) {
        self.idle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(conn);
    }
}

impl AsyncStore for PostgresStore {
    fn get(&self, key: Vec<u8>) -> BoxFuture<'_, Result<Option<Versioned>, StoreError>> {
        Box::pin(async move { self.with_conn(async |conn| conn.get(&key).await).await })
    }

    fn get_many(
        &self,
        keys: Vec<Vec<u8>>,
    ) -> BoxFuture<'_, Result<Vec<Option<Versioned>>, StoreError>> {
        Box::pin(async move {
            self.with_conn(async |conn| conn.get_many(&keys).await)
                .await
        })
    }

    fn scan(
        &self,
        range: KeyRange,
        limit: u32,
        direction: Direction,
    ) -> BoxFuture<'_, Result<Vec<Entry>, StoreError>> {
        Box::pin(async move {
            self.with_conn(async |conn| conn.scan(&range, limit, direction).await)
                .await
        })
    }

    fn commit(
        &self,
        checks: Vec<Check>,
        writes: Vec<Write>,
    ) -> BoxFuture<'_, Result<u64, StoreError>> {
        Box::pin(async move {
            self.with_conn(async |conn| conn.commit(&checks, &writes).await)
                .await?
        })
    }
}

/// Opens a PostgreSQL store whose connections run on `runtime`, from inside or outside a
/// runtime.
pub fn open_on(
    runtime: &tokio::runtime::Handle,
    url: &PostgresUrl,
) -> Result<Arc<PostgresStore>, StoreError> {
    let open = PostgresStore::open(url);
    crate::block_on::off_runtime(|| runtime.block_on(open)).map(Arc::new)
}
