//! `ds-store`: the ordered key-value stores behind ds's transport, for both hosts.
//!
//! A store implements the transport contract (see `wit/transport.wit`) once, as a blocking
//! [`Store`] or an async [`AsyncStore`]. The data types are the guest's own
//! ([`ds_model::transport`]), so guest and hosts share one definition of the key-value model.
//!
//! - `ds` runs a [`Store`] directly on the calling thread.
//! - `ads` runs an [`AsyncStore`]. A blocking store is adapted with [`Offload`], which runs
//!   each call on tokio's blocking pool: blocking work (SQLite) never runs on a worker thread.
//!   A store whose calls never wait (memory) implements both traits directly.
//!
//! Backends are modules behind cargo features, so an embedder builds only what it uses:
//! `memory:` always, `sqlite:PATH` with `sqlite` and `postgres://…` with `postgres` (both
//! on by default in the hosts), `etcd://…` with `etcd` (off by default: it needs protoc). [`open_blocking`] and [`open_async`] open a store from its URL; a URL of
//! a backend this build lacks is refused with the feature to turn on.
#![cfg_attr(test, allow(clippy::unwrap_used))]

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

pub use ds_model::transport::{Check, Direction, Entry, KeyRange, StoreError, Versioned, Write};

pub mod affine;
mod block_on;
#[cfg(feature = "etcd")]
pub mod etcd;
mod memory;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "sqlite")]
mod sqlite;
mod url;

pub use block_on::BlockOn;
#[cfg(feature = "etcd")]
pub use etcd::{EtcdStore, EtcdUrl};
pub use memory::MemoryStore;
#[cfg(feature = "postgres")]
pub use postgres::{BlockingPostgresStore, PostgresStore, PostgresUrl};
#[cfg(feature = "sqlite")]
pub use sqlite::{FORMAT_VERSION as SQLITE_FORMAT_VERSION, SqliteStore};
pub use url::{DEFAULT_STORE_URL, StoreUrl, StoreUrlError, open_async, open_blocking, redact};

/// Most entries one `scan` returns, whatever limit the model asks for.
pub const MAX_SCAN_LIMIT: u32 = 1000;

/// A boxed, `Send` future: what [`AsyncStore`] methods return, so stores can be `dyn`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A blocking ordered key-value store with optimistic commits.
///
/// Every method may block the calling thread on I/O. Implementations are shared between
/// threads, so they synchronise internally.
pub trait Store: Send + Sync + 'static {
    /// Reads one key.
    fn get(&self, key: &[u8]) -> Result<Option<Versioned>, StoreError>;

    /// Reads several keys; one result per key, in order.
    fn get_many(&self, keys: &[Vec<u8>]) -> Result<Vec<Option<Versioned>>, StoreError> {
        keys.iter().map(|key| self.get(key)).collect()
    }

    /// Reads up to `limit` (capped at [`MAX_SCAN_LIMIT`]) entries of `range` in `direction`.
    fn scan(
        &self,
        range: &KeyRange,
        limit: u32,
        direction: Direction,
    ) -> Result<Vec<Entry>, StoreError>;

    /// Applies `writes` atomically if all `checks` hold; returns the commit's version.
    fn commit(&self, checks: &[Check], writes: &[Write]) -> Result<u64, StoreError>;

    /// Whether the store can serve calls now, for health checks: by default one read (of a
    /// key no entity has). A store whose reads can succeed while its writes cannot (a file
    /// deleted or made read-only under it) checks that too.
    fn health(&self) -> Result<(), StoreError> {
        self.get(&[]).map(|_| ())
    }
}

/// An async ordered key-value store with optimistic commits: [`Store`]'s contract, awaited.
///
/// Futures own their arguments so that an implementation may move the work to another
/// thread. Dropping a future must leave the store consistent: a commit is whole or absent.
pub trait AsyncStore: Send + Sync + 'static {
    /// Reads one key.
    fn get(&self, key: Vec<u8>) -> BoxFuture<'_, Result<Option<Versioned>, StoreError>>;

    /// Reads several keys; one result per key, in order.
    fn get_many(
        &self,
        keys: Vec<Vec<u8>>,
    ) -> BoxFuture<'_, Result<Vec<Option<Versioned>>, StoreError>>;

    /// Reads up to `limit` entries of `range` in `direction`.
    fn scan(
        &self,
        range: KeyRange,
        limit: u32,
        direction: Direction,
    ) -> BoxFuture<'_, Result<Vec<Entry>, StoreError>>;

    /// Applies `writes` atomically if all `checks` hold; returns the commit's version.
    fn commit(
        &self,
        checks: Vec<Check>,
        writes: Vec<Write>,
    ) -> BoxFuture<'_, Result<u64, StoreError>>;

    /// Whether the store can serve calls now: [`Store::health`]'s contract, awaited.
    fn health(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move { self.get(Vec::new()).await.map(|_| ()) })
    }
}

/// Runs a blocking [`Store`] as an [`AsyncStore`] on tokio's blocking thread pool.
///
/// Each call is one `spawn_blocking`. If the caller's future is dropped (a deadline, a
/// client that went away), a blocking call that has started still runs to its end, so a
/// commit is never cut in half; one still queued for a blocking thread never starts, so
/// abandoned calls cannot pile up behind a busy store and apply writes long after their
/// callers were told they failed.
pub struct Offload<S: ?Sized>(pub Arc<S>);

/// Aborts its blocking task when dropped: a task that has not started yet then never does.
struct AbortOnDrop<R>(tokio::task::JoinHandle<R>);

impl<R> Drop for AbortOnDrop<R> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl<S: Store + ?Sized> Offload<S> {
    fn run<R: Send + 'static>(
        &self,
        call: impl FnOnce(&S) -> Result<R, StoreError> + Send + 'static,
    ) -> BoxFuture<'static, Result<R, StoreError>> {
        let store = Arc::clone(&self.0);
        Box::pin(async move {
            let mut task = AbortOnDrop(tokio::task::spawn_blocking(move || call(&store)));
            (&mut task.0)
                .await
                .map_err(|err| StoreError::Internal(format!("store task failed: {err}")))?
        })
    }
}

impl<S: Store + ?Sized> AsyncStore for Offload<S> {
    fn get(&self, key: Vec<u8>) -> BoxFuture<'_, Result<Option<Versioned>, StoreError>> {
        self.run(move |store| store.get(&key))
    }

    fn get_many(
        &self,
        keys: Vec<Vec<u8>>,
    ) -> BoxFuture<'_, Result<Vec<Option<Versioned>>, StoreError>> {
        self.run(move |store| store.get_many(&keys))
    }

    fn scan(
        &self,
        range: KeyRange,
        limit: u32,
        direction: Direction,
    ) -> BoxFuture<'_, Result<Vec<Entry>, StoreError>> {
        self.run(move |store| store.scan(&range, limit, direction))
    }

    fn commit(
        &self,
        checks: Vec<Check>,
        writes: Vec<Write>,
    ) -> BoxFuture<'_, Result<u64, StoreError>> {
        self.run(move |store| store.commit(&checks, &writes))
    }

    fn health(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        self.run(|store| store.health())
    }
}

/// An error and its sources, joined (a cause whose text the message already holds is not
/// repeated): the client crates put the useful part in the source.
#[cfg(any(feature = "postgres", feature = "etcd"))]
pub(crate) fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// Every entry of a store in key order, read in pages: for tests, `check` and export.
pub fn scan_all(store: &dyn Store) -> Result<Vec<Entry>, StoreError> {
    let mut out = Vec::new();
    let mut range = KeyRange::default();
    loop {
        let page = store.scan(&range, MAX_SCAN_LIMIT, Direction::Forward)?;
        let full = page.len() == MAX_SCAN_LIMIT as usize;
        if let Some(last) = page.last() {
            // The next page starts just after the last key: the key with a 0 byte appended.
            range.start = last.key.clone();
            range.start.push(0);
        }
        out.extend(page);
        if !full {
            return Ok(out);
        }
    }
}

/// The guest's model logic run natively over a host [`Store`]: a [`ds_model::Transport`]
/// backed by the store, for native baselines and tests.
pub struct NativeTransport<'a>(pub &'a dyn Store);

impl ds_model::Transport for NativeTransport<'_> {
    fn get(&mut self, key: &[u8]) -> Result<Option<Versioned>, StoreError> {
        self.0.get(key)
    }

    fn get_many(&mut self, keys: &[Vec<u8>]) -> Result<Vec<Option<Versioned>>, StoreError> {
        self.0.get_many(keys)
    }

    fn scan(
        &mut self,
        range: &KeyRange,
        limit: u32,
        direction: Direction,
    ) -> Result<Vec<Entry>, StoreError> {
        self.0.scan(range, limit, direction)
    }

    fn commit(&mut self, checks: &[Check], writes: &[Write]) -> Result<u64, StoreError> {
        self.0.commit(checks, writes)
    }
}
