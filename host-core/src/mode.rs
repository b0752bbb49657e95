//! The two ways of running the one [`Core`](crate::core::Core): blocking ([`Blocking`], the
//! `ds` host) and on tokio ([`Async`], the `ads` host).
//!
//! The core is written once, as `async` code, over this trait. A mode says how the few
//! things that really differ are done: calling an export (`call` or `call_async` on a
//! fiber: [`ExportCalls`](crate::exports::ExportCalls), generated from the export table),
//! instantiating, reaching the store (`Store` or `AsyncStore`), sleeping between
//! retries, bounding a call's wall time, and admitting a call. In [`Blocking`] every one of
//! these futures is ready when it is made (the work is done in the call that makes it), so
//! the whole core future completes on its first poll: [`complete`] drives it without a
//! runtime, as `postgres` drives `tokio-postgres` with `block_on`, only cheaper.

use std::future::{Future, Ready, ready};
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use ds_store::{
    AsyncStore, Check, Direction, Entry, KeyRange, Store, StoreError, Versioned, Write,
};

use crate::core::HostState;
use crate::engine::Engine;
use crate::error::Error;

/// How the core runs: everything that differs between the blocking and the async host.
///
/// Implemented by [`Blocking`] and [`Async`] only; the trait is public so that both faces
/// can name `Core<Blocking>` and `Core<Async>`.
pub trait Mode: Sized + Send + Sync + 'static {
    /// The store trait object this mode calls: `dyn Store` or `dyn AsyncStore`.
    type Store: ?Sized + Send + Sync + 'static;

    /// What one admitted call holds until it ends.
    type Admission<'a>: Send
    where
        Self: 'a;

    /// True for the async host: trace lines go to the `ads::` targets and say "async".
    const ASYNC: bool;

    /// Opens the store at `url` for this mode.
    fn open_store(url: &ds_store::StoreUrl) -> Result<Arc<Self::Store>, StoreError>;

    /// Links this mode's transport into `linker`.
    fn link(linker: &mut wasmtime::component::Linker<HostState<Self>>) -> wasmtime::Result<()>;

    /// This mode as it runs on `engine` (`ads` drops a bound of its own that the engine's
    /// is tighter than).
    fn for_engine(self, _engine: &Engine) -> Self {
        self
    }

    /// Waits until one more call may run on `engine` (`ads` bounds the calls in flight).
    fn admit<'a>(
        &'a self,
        engine: &'a Engine,
    ) -> impl Future<Output = Result<Self::Admission<'a>, Error>> + Send;

    /// Instantiates `pre` in `store`.
    fn instantiate<'a>(
        pre: &'a wasmtime::component::InstancePre<HostState<Self>>,
        store: &'a mut wasmtime::Store<HostState<Self>>,
    ) -> impl Future<Output = wasmtime::Result<wasmtime::component::Instance>> + Send + 'a;

    /// Runs `call`, giving up (`None`) once `limit` has passed if the mode can stop waiting
    /// (the async host stops awaiting a store that answers too late; the blocking host
    /// relies on the epoch deadline alone).
    fn within<F: Future + Send>(
        limit: Duration,
        call: F,
    ) -> impl Future<Output = Option<F::Output>> + Send;

    /// Waits `delay` between two attempts of a transaction; `left` is what the call has
    /// left before its deadline.
    fn pause(delay: Duration, left: Duration) -> impl Future<Output = ()> + Send;

    /// The store's `get`.
    fn get(
        store: &Self::Store,
        key: Vec<u8>,
    ) -> impl Future<Output = Result<Option<Versioned>, StoreError>> + Send + '_;

    /// The store's `get_many`.
    fn get_many(
        store: &Self::Store,
        keys: Vec<Vec<u8>>,
    ) -> impl Future<Output = Result<Vec<Option<Versioned>>, StoreError>> + Send + '_;

    /// The store's `scan`.
    fn scan(
        store: &Self::Store,
        range: KeyRange,
        limit: u32,
        direction: Direction,
    ) -> impl Future<Output = Result<Vec<Entry>, StoreError>> + Send + '_;

    /// The store's `commit`.
    fn commit(
        store: &Self::Store,
        checks: Vec<Check>,
        writes: Vec<Write>,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send + '_;
}

/// The blocking host's mode: each step runs on the calling thread, to its end, before its
/// future is returned.
#[derive(Debug, Default, Clone, Copy)]
pub struct Blocking;

// The futures are spelled `Ready`: each step is done before its future is returned.
#[allow(refining_impl_trait)]
impl Mode for Blocking {
    type Store = dyn Store;
    type Admission<'a> = ();
    const ASYNC: bool = false;

    fn open_store(url: &ds_store::StoreUrl) -> Result<Arc<dyn Store>, StoreError> {
        ds_store::open_blocking(url)
    }

    fn link(linker: &mut wasmtime::component::Linker<HostState<Self>>) -> wasmtime::Result<()> {
        use wasmtime::component::HasSelf;
        crate::bindings::blocking::ds::datastore::transport::add_to_linker::<
            _,
            HasSelf<HostState<Self>>,
        >(linker, |state| state)
    }

    fn admit<'a>(&'a self, _engine: &'a Engine) -> Ready<Result<(), Error>> {
        ready(Ok(()))
    }

    fn instantiate<'a>(
        pre: &'a wasmtime::component::InstancePre<HostState<Self>>,
        store: &'a mut wasmtime::Store<HostState<Self>>,
    ) -> Ready<wasmtime::Result<wasmtime::component::Instance>> {
        ready(pre.instantiate(store))
    }

    async fn within<F: Future + Send>(_limit: Duration, call: F) -> Option<F::Output> {
        Some(call.await)
    }

    fn pause(delay: Duration, left: Duration) -> Ready<()> {
        // No longer than the call has left: past its deadline the guest traps as soon as it
        // runs again, and the caller hears so on time.
        std::thread::sleep(delay.min(left));
        ready(())
    }

    fn get(store: &dyn Store, key: Vec<u8>) -> Ready<Result<Option<Versioned>, StoreError>> {
        ready(store.get(&key))
    }

    fn get_many(
        store: &dyn Store,
        keys: Vec<Vec<u8>>,
    ) -> Ready<Result<Vec<Option<Versioned>>, StoreError>> {
        ready(store.get_many(&keys))
    }

    fn scan(
        store: &dyn Store,
        range: KeyRange,
        limit: u32,
        direction: Direction,
    ) -> Ready<Result<Vec<Entry>, StoreError>> {
        ready(store.scan(&range, limit, direction))
    }

    fn commit(
        store: &dyn Store,
        checks: Vec<Check>,
        writes: Vec<Write>,
    ) -> Ready<Result<u64, StoreError>> {
        ready(store.commit(&checks, &writes))
    }
}

/// The async host's mode: exports run on a wasmtime fiber, the store is awaited, and calls
/// in flight are bounded (by the engine's instance slots, and by this datastore's own bound
/// if it has one).
#[derive(Debug, Default)]
pub struct Async {
    /// This datastore's own bound on calls in flight, if the builder set one below the
    /// engine's.
    pub in_flight: Option<tokio::sync::Semaphore>,
}

impl Async {
    /// A mode whose datastore admits at most `max_in_flight` calls at once (`None`: only
    /// the engine's bound).
    pub fn new(max_in_flight: Option<usize>) -> Self {
        Async {
            in_flight: max_in_flight.map(tokio::sync::Semaphore::new),
        }
    }
}

impl Mode for Async {
    type Store = dyn AsyncStore;
    type Admission<'a> = (
        Option<tokio::sync::SemaphorePermit<'a>>,
        crate::gate::Pass<'a>,
    );
    const ASYNC: bool = true;

    fn open_store(url: &ds_store::StoreUrl) -> Result<Arc<dyn AsyncStore>, StoreError> {
        ds_store::open_async(url)
    }

    fn link(linker: &mut wasmtime::component::Linker<HostState<Self>>) -> wasmtime::Result<()> {
        use wasmtime::component::HasSelf;
        crate::bindings::asynchronous::ds::datastore::transport::add_to_linker::<
            _,
            HasSelf<HostState<Self>>,
        >(linker, |state| state)
    }

    fn for_engine(self, engine: &Engine) -> Self {
        // A bound at or above the engine's is no bound of its own.
        let slots = engine.max_instances() as usize;
        Async {
            in_flight: self
                .in_flight
                .filter(|bound| bound.available_permits() < slots),
        }
    }

    async fn admit<'a>(&'a self, engine: &'a Engine) -> Result<Self::Admission<'a>, Error> {
        // A place for one more call in flight: under this datastore's bound, if it has one,
        // then under the engine's.
        let closed = |_| Error::Engine("the datastore is shut down".into());
        let own = match &self.in_flight {
            Some(bound) => Some(bound.acquire().await.map_err(closed)?),
            None => None,
        };
        let slot = engine.in_flight().pass().await;
        Ok((own, slot))
    }

    fn instantiate<'a>(
        pre: &'a wasmtime::component::InstancePre<HostState<Self>>,
        store: &'a mut wasmtime::Store<HostState<Self>>,
    ) -> impl Future<Output = wasmtime::Result<wasmtime::component::Instance>> + Send + 'a {
        pre.instantiate_async(store)
    }

    async fn within<F: Future + Send>(limit: Duration, call: F) -> Option<F::Output> {
        // The epoch deadline stops a guest that computes too long; this one stops waiting on
        // a store that answers too late (the instance is then dropped, never reused). The
        // timer is made only once the call waits: a call whose store answers at once (a
        // memory store, a cache) ends on its first poll, and a tokio timer would cost it
        // the runtime handle (a reference count both workers share) and a clock read more
        // (measured: 3% of the instant-store loop of benchmark (d)).
        let start = tokio::time::Instant::now();
        let mut call = pin!(call);
        let mut timer = pin!(None::<tokio::time::Sleep>);
        std::future::poll_fn(|cx| {
            if let Poll::Ready(output) = call.as_mut().poll(cx) {
                return Poll::Ready(Some(output));
            }
            if timer.is_none() {
                timer.set(Some(tokio::time::sleep_until(start + limit)));
            }
            match timer.as_mut().as_pin_mut().map(|timer| timer.poll(cx)) {
                Some(Poll::Pending) => Poll::Pending,
                _ => Poll::Ready(None),
            }
        })
        .await
    }

    async fn pause(delay: Duration, _left: Duration) {
        // A timer, not a sleep: the worker runs other tasks meanwhile. The call's own
        // timeout ends it at its deadline.
        tokio::time::sleep(delay).await;
    }

    fn get(
        store: &dyn AsyncStore,
        key: Vec<u8>,
    ) -> impl Future<Output = Result<Option<Versioned>, StoreError>> + Send + '_ {
        store.get(key)
    }

    fn get_many(
        store: &dyn AsyncStore,
        keys: Vec<Vec<u8>>,
    ) -> impl Future<Output = Result<Vec<Option<Versioned>>, StoreError>> + Send + '_ {
        store.get_many(keys)
    }

    fn scan(
        store: &dyn AsyncStore,
        range: KeyRange,
        limit: u32,
        direction: Direction,
    ) -> impl Future<Output = Result<Vec<Entry>, StoreError>> + Send + '_ {
        store.scan(range, limit, direction)
    }

    fn commit(
        store: &dyn AsyncStore,
        checks: Vec<Check>,
        writes: Vec<Write>,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send + '_ {
        store.commit(checks, writes)
    }
}

/// Runs `future` to its end on this thread: how the blocking host runs the core.
///
/// Over [`Blocking`] every step is done before its future is returned, so the first poll
/// completes it and nothing is allocated. Any other future is driven too: the thread parks
/// until it is woken, as `block_on` does.
pub fn complete<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    if let Poll::Ready(output) = future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        return output;
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut context = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut context) {
            return output;
        }
        std::thread::park();
    }
}

/// Wakes the thread that [`complete`] parked.
struct Unpark(std::thread::Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn complete_runs_ready_and_waiting_futures_to_their_end() {
        assert_eq!(complete(async { 7 }), 7);
        // A future that is pending once and wakes itself from another thread.
        let (sender, receiver) = std::sync::mpsc::channel::<u32>();
        let waited = complete(std::future::poll_fn(move |cx| match receiver.try_recv() {
            Ok(value) => Poll::Ready(value),
            Err(_) => {
                let (sender, waker) = (sender.clone(), cx.waker().clone());
                std::thread::spawn(move || {
                    let _ = sender.send(42);
                    waker.wake();
                });
                Poll::Pending
            }
        }));
        assert_eq!(waited, 42);
    }
}
