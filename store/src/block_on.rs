//! Runs an [`AsyncStore`] as a blocking [`Store`]: a private runtime, one `block_on` per
//! call. For an async store of one's own; ds's PostgreSQL store drives its connections on
//! the calling thread instead (`postgres::BlockingPostgresStore`), which saves a hop to the
//! runtime's thread per call.

use std::future::Future;
use std::sync::Arc;

use super::{AsyncStore, Check, Direction, Entry, KeyRange, Store, StoreError, Versioned, Write};

/// A blocking [`Store`] over an [`AsyncStore`] and a private tokio runtime.
///
/// The runtime has one worker thread, which drives the store's connections; each call runs
/// on the calling thread with `block_on`. A thread inside another tokio runtime cannot
/// `block_on` (tokio panics: rust-postgres #639), so such a call runs on a short-lived helper
/// thread instead: it works, but it still blocks the caller, so async code should use `ads`.
///
/// It may be dropped anywhere, async code included: the last owner of the runtime shuts it
/// down in the background (dropping a tokio runtime inside async code panics).
pub struct BlockOn<S: ?Sized> {
    /// Present until drop.
    runtime: Option<Arc<tokio::runtime::Runtime>>,
    store: Arc<S>,
}

impl<S: AsyncStore + ?Sized> BlockOn<S> {
    /// Wraps `store`, whose connections live on `runtime`.
    pub fn new(runtime: Arc<tokio::runtime::Runtime>, store: Arc<S>) -> Self {
        BlockOn {
            runtime: Some(runtime),
            store,
        }
    }

    /// A runtime fit to drive blocking stores: one worker, I/O and timers enabled.
    pub fn runtime() -> Result<Arc<tokio::runtime::Runtime>, StoreError> {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("ds-store-io")
            .enable_all()
            .build()
            .map(Arc::new)
            .map_err(|err| {
                StoreError::Unavailable(format!("cannot start the store's I/O thread: {err}"))
            })
    }

    fn run<R: Send>(
        &self,
        call: impl Future<Output = Result<R, StoreError>> + Send,
    ) -> Result<R, StoreError> {
        let runtime = self.runtime.as_ref().expect("present until drop");
        off_runtime(|| runtime.block_on(call))
    }
}

impl<S: ?Sized> Drop for BlockOn<S> {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take().and_then(Arc::into_inner) {
            // Its only work is the store's I/O: nothing to wait for.
            runtime.shutdown_background();
        }
    }
}

/// Runs `call`, which blocks, on this thread; or, if this thread is inside a tokio runtime
/// (where a blocking `block_on` panics: rust-postgres #639), on a short-lived helper thread.
pub(crate) fn off_runtime<R: Send>(
    call: impl FnOnce() -> Result<R, StoreError> + Send,
) -> Result<R, StoreError> {
    if tokio::runtime::Handle::try_current().is_err() {
        return call();
    }
    std::thread::scope(|scope| {
        scope
            .spawn(call)
            .join()
            .unwrap_or_else(|_| Err(StoreError::Internal("the store call panicked".into())))
    })
}

impl<S: AsyncStore + ?Sized> Store for BlockOn<S> {
    fn get(&self, key: &[u8]) -> Result<Option<Versioned>, StoreError> {
        self.run(self.store.get(key.to_vec()))
    }

    fn get_many(&self, keys: &[Vec<u8>]) -> Result<Vec<Option<Versioned>>, StoreError> {
        self.run(self.store.get_many(keys.to_vec()))
    }

    fn scan(
        &self,
        range: &KeyRange,
        limit: u32,
        direction: Direction,
    ) -> Result<Vec<Entry>, StoreError> {
        self.run(self.store.scan(range.clone(), limit, direction))
    }

    fn commit(&self, checks: &[Check], writes: &[Write]) -> Result<u64, StoreError> {
        self.run(self.store.commit(checks.to_vec(), writes.to_vec()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryStore;

    /// A `ds` datastore over an async store of one's own can be dropped in async code (a
    /// handler that built one, say): the private runtime must not be dropped there.
    #[tokio::test]
    async fn can_be_used_and_dropped_inside_async_code() {
        let runtime = BlockOn::<MemoryStore>::runtime().expect("runtime");
        let store = BlockOn::new(runtime, Arc::new(MemoryStore::new()));
        let version = Store::commit(
            &store,
            &[],
            &[Write {
                key: b"k".to_vec(),
                value: Some(b"v".to_vec()),
            }],
        )
        .expect("commit");
        let read = Store::get(&store, b"k").expect("get").expect("present");
        assert_eq!((read.value.as_slice(), read.version), (&b"v"[..], version));
        drop(store);
    }
}
