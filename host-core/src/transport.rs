//! The transport imports, written once over a [`Mode`], and the two bindings' host traits
//! over it: each blocking method is one [`complete`] of the shared implementation, each
//! async one an `.await` of it (as `wasmtime-wasi` keeps its `sync.rs` shims).

use crate::bindings::{asynchronous, blocking, types as wit};
use crate::convert;
use crate::core::HostState;
use crate::logging::describe_key;
use crate::mode::{Async, Blocking, Mode, complete};

/// Writes a transport trace line: `ds::transport` ("get() with key = …") or
/// `ads::transport` ("async get() with key = …"), as the seed's transports printed them.
macro_rules! trace_transport {
    ($mode:ty, $($fields:ident = $value:expr,)* $op:literal $(, $arg:expr)*) => {
        if <$mode as Mode>::ASYNC {
            tracing::debug!(target: "ads::transport", $($fields = $value,)* concat!("async ", $op) $(, $arg)*)
        } else {
            tracing::debug!(target: "ds::transport", $($fields = $value,)* $op $(, $arg)*)
        }
    };
}

impl<M: Mode> HostState<M> {
    async fn transport_get(
        &mut self,
        key: Vec<u8>,
    ) -> Result<Option<wit::Versioned>, wit::StoreError> {
        trace_transport!(
            M,
            key = describe_key(&key).1,
            "get() with key = {}",
            describe_key(&key).0
        );
        convert::get_to_wit(M::get(&self.store, key).await)
    }

    async fn transport_get_many(
        &mut self,
        keys: Vec<Vec<u8>>,
    ) -> Result<Vec<Option<wit::Versioned>>, wit::StoreError> {
        trace_transport!(M, count = keys.len(), "get_many()");
        convert::get_many_to_wit(M::get_many(&self.store, keys).await)
    }

    async fn transport_scan(
        &mut self,
        range: wit::KeyRange,
        limit: u32,
        direction: wit::Direction,
    ) -> Result<Vec<wit::Entry>, wit::StoreError> {
        trace_transport!(M, limit = limit, "scan()");
        let (range, direction) = convert::scan_args_from_wit(range, direction);
        convert::scan_to_wit(M::scan(&self.store, range, limit, direction).await)
    }

    async fn transport_commit(
        &mut self,
        checks: Vec<wit::Check>,
        writes: Vec<wit::Write>,
    ) -> Result<u64, wit::StoreError> {
        trace_transport!(M, checks = checks.len(), writes = writes.len(), "commit()");
        let (checks, writes) = convert::commit_args_from_wit(checks, writes);
        self.ctx.writes.sent(writes.len());
        let result = M::commit(&self.store, checks, writes).await;
        self.ctx.writes.answered(&result);
        convert::commit_to_wit(result)
    }

    async fn transport_backoff(&mut self, attempt: u32) -> bool {
        trace_transport!(M, attempt = attempt, "backoff()");
        match self.retry.delay(attempt) {
            Some(delay) => {
                crate::retry::count_retry();
                M::pause(delay, self.ctx.time_left()).await;
                true
            }
            None => false,
        }
    }
}

/// The blocking transport: each import is one blocking call into the store.
impl blocking::ds::datastore::transport::Host for HostState<Blocking> {
    fn get(&mut self, key: Vec<u8>) -> Result<Option<wit::Versioned>, wit::StoreError> {
        complete(self.transport_get(key))
    }

    fn get_many(
        &mut self,
        keys: Vec<Vec<u8>>,
    ) -> Result<Vec<Option<wit::Versioned>>, wit::StoreError> {
        complete(self.transport_get_many(keys))
    }

    fn scan(
        &mut self,
        range: wit::KeyRange,
        limit: u32,
        direction: wit::Direction,
    ) -> Result<Vec<wit::Entry>, wit::StoreError> {
        complete(self.transport_scan(range, limit, direction))
    }

    fn commit(
        &mut self,
        checks: Vec<wit::Check>,
        writes: Vec<wit::Write>,
    ) -> Result<u64, wit::StoreError> {
        complete(self.transport_commit(checks, writes))
    }

    fn backoff(&mut self, attempt: u32) -> bool {
        complete(self.transport_backoff(attempt))
    }
}

/// The async transport: each import awaits the store while the guest's fiber is suspended.
impl asynchronous::ds::datastore::transport::Host for HostState<Async> {
    async fn get(&mut self, key: Vec<u8>) -> Result<Option<wit::Versioned>, wit::StoreError> {
        self.transport_get(key).await
    }

    async fn get_many(
        &mut self,
        keys: Vec<Vec<u8>>,
    ) -> Result<Vec<Option<wit::Versioned>>, wit::StoreError> {
        self.transport_get_many(keys).await
    }

    async fn scan(
        &mut self,
        range: wit::KeyRange,
        limit: u32,
        direction: wit::Direction,
    ) -> Result<Vec<wit::Entry>, wit::StoreError> {
        self.transport_scan(range, limit, direction).await
    }

    async fn commit(
        &mut self,
        checks: Vec<wit::Check>,
        writes: Vec<wit::Write>,
    ) -> Result<u64, wit::StoreError> {
        self.transport_commit(checks, writes).await
    }

    async fn backoff(&mut self, attempt: u32) -> bool {
        self.transport_backoff(attempt).await
    }
}
