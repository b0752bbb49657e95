//! `memory:`: the in-memory store, for tests and for embedding without persistence.

use std::sync::{Mutex, MutexGuard};

use ds_model::transport::{MemoryTransport, Transport};

use super::{
    AsyncStore, BoxFuture, Check, Direction, Entry, KeyRange, Store, StoreError, Versioned, Write,
};

/// A store held in process memory; its contents vanish with it.
///
/// It is the guest crate's reference [`MemoryTransport`] behind a lock, so the hosts and the
/// native baseline share one implementation of the contract. Its calls never wait on I/O,
/// so it is an [`AsyncStore`] directly, without a blocking thread.
#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<MemoryTransport>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, MemoryTransport> {
        // The transport's methods cannot leave it half-updated, so a poisoned lock (a panic
        // elsewhere while it was held) still guards consistent data.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Store for MemoryStore {
    fn get(&self, key: &[u8]) -> Result<Option<Versioned>, StoreError> {
        self.lock().get(key)
    }

    fn get_many(&self, keys: &[Vec<u8>]) -> Result<Vec<Option<Versioned>>, StoreError> {
        self.lock().get_many(keys)
    }

    fn scan(
        &self,
        range: &KeyRange,
        limit: u32,
        direction: Direction,
    ) -> Result<Vec<Entry>, StoreError> {
        self.lock()
            .scan(range, limit.min(super::MAX_SCAN_LIMIT), direction)
    }

    fn commit(&self, checks: &[Check], writes: &[Write]) -> Result<u64, StoreError> {
        self.lock().commit(checks, writes)
    }
}

impl AsyncStore for MemoryStore {
    fn get(&self, key: Vec<u8>) -> BoxFuture<'_, Result<Option<Versioned>, StoreError>> {
        Box::pin(std::future::ready(Store::get(self, &key)))
    }

    fn get_many(
        &self,
        keys: Vec<Vec<u8>>,
    ) -> BoxFuture<'_, Result<Vec<Option<Versioned>>, StoreError>> {
        Box::pin(std::future::ready(Store::get_many(self, &keys)))
    }

    fn scan(
        &self,
        range: KeyRange,
        limit: u32,
        direction: Direction,
    ) -> BoxFuture<'_, Result<Vec<Entry>, StoreError>> {
        Box::pin(std::future::ready(Store::scan(
            self, &range, limit, direction,
        )))
    }

    fn commit(
        &self,
        checks: Vec<Check>,
        writes: Vec<Write>,
    ) -> BoxFuture<'_, Result<u64, StoreError>> {
        Box::pin(std::future::ready(Store::commit(self, &checks, &writes)))
    }
}
