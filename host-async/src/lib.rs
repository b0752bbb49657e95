//! `ads`: the async host of the ds model component.
//!
//! The same component that `ds` (crate `host-sync`) runs with a blocking transport runs here
//! on tokio: each call runs the guest on a wasmtime fiber, and when the guest calls the
//! transport the fiber is suspended while the task awaits the store, so a worker thread
//! never waits on I/O and thousands of calls overlap.
//!
//! ```no_run
//! use ads::{Datastore, Entity, Key, Value};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let db = Datastore::open("sqlite:ds.db").await?;
//! let alice: Key = "Account:alice".parse()?;
//! let bob: Key = "Account:bob".parse()?;
//! for (key, owner) in [(&alice, "Alice"), (&bob, "Bob")] {
//!     db.put(&Entity::new(key.clone()).with("owner", Value::String(owner.into()))).await?;
//! }
//! db.deposit(&alice, 100).await?;
//! let receipt = db.transfer(&alice, &bob, 30).await?; // one transaction, in the guest
//! assert_eq!(receipt.source_balance, 70);
//! # Ok(()) }
//! ```
//!
//! Blocking stores (SQLite) run on tokio's blocking pool ([`store::Offload`]), never on a
//! worker thread. Calls need a tokio runtime (any flavour) with its timers enabled
//! (`enable_time` or `enable_all`): each call runs under a tokio timeout.

use std::sync::Arc;

use host_core::bindings::asynchronous;
use host_core::builder::Settings;
use host_core::convert;
use host_core::exports::{ExportIndices, Exports};
use host_core::instances::{HasInstanceCtx, Instance, InstanceCtx, InstancePool, new_store};
use host_core::logging::{add_shared_imports, describe_key};
use host_core::store::{AsyncStore, open_async};
use wasmtime::component::HasSelf;

pub mod serve;

pub use host_core::bindings::types as wit;
pub use host_core::store;
pub use host_core::{
    CheckReport, ComponentSource, Direction, Entity, EntityPage, Error, Filter, IdOrName,
    InstanceOptions, Isolation, Key, Op, Order, PathElement, Properties, Query, QueryPage, Receipt,
    RetryPolicy, Value,
};

/// Runs one export call on a leased instance and gives the instance back (or drops it after
/// a trap), under the call's deadline. Evaluates to the call's result, a trap already turned
/// into an [`Error`].
macro_rules! call_export {
    ($self:ident, $method:ident($($arg:expr),*)) => {{
        // A place for one more call in flight: under this datastore's bound, if it has one,
        // then under the process's.
        let closed = |_| Error::Engine("the datastore is shut down".into());
        let _own = match &$self.inner.in_flight {
            Some(bound) => Some(bound.acquire().await.map_err(closed)?),
            None => None,
        };
        let _slot = process_in_flight().acquire().await.map_err(closed)?;
        let mut instance = $self.lease().await?;
        $self.inner.pool.arm(&mut instance);
        let deadline = $self.inner.pool.options().deadline;
        let call = instance.model.$method(&mut instance.store, $($arg),*);
        // The epoch deadline stops a guest that computes too long; this one stops waiting on
        // a store that answers too late (the instance is then dropped, never reused).
        let result = match tokio::time::timeout(deadline, call).await {
            Ok(result) => result,
            Err(_) => return Err($self.inner.pool.deadline_error(instance.writes())),
        };
        // Read only when it is needed: for a failed call's error.
        let writes = if result.is_err() { instance.writes() } else { Default::default() };
        $self.inner.pool.give_back(instance, result.is_err());
        result.map_err(|err| $self.inner.pool.trap_error(err, writes))
    }};
}

/// A datastore: the model component over an async store.
///
/// Cheap to clone and safe to share between tasks; calls run concurrently.
#[derive(Clone)]
pub struct Datastore {
    inner: Arc<Inner>,
}

struct Inner {
    pre: wasmtime::component::InstancePre<HostState>,
    exports: Arc<ExportIndices>,
    store: Arc<dyn AsyncStore>,
    retry: RetryPolicy,
    pool: InstancePool<HostState, Exports>,
    /// This datastore's own bound on calls in flight, if the builder set one below the
    /// process's ([`process_in_flight`]).
    in_flight: Option<tokio::sync::Semaphore>,
}

/// Bounds the calls in flight in the whole process, of all datastores together, to the
/// engine's instance slots: each call holds an instance (and its fiber) until it ends, so
/// further calls wait here instead of failing for want of a slot.
fn process_in_flight() -> &'static tokio::sync::Semaphore {
    static SLOTS: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    SLOTS.get_or_init(|| {
        tokio::sync::Semaphore::new(host_core::runtime::engine_options().max_instances as usize)
    })
}

/// Builds a [`Datastore`] with options beyond [`Datastore::open`].
#[derive(Default)]
#[must_use]
pub struct Builder {
    settings: Settings<dyn AsyncStore>,
    max_in_flight: Option<usize>,
}

impl Builder {
    host_core::builder_setters!(AsyncStore);

    /// Most calls of this datastore in flight at once. Further calls wait for one to finish.
    /// Whatever this says, the calls of all datastores of the process together never exceed
    /// the engine's `max_instances` (further calls wait), so memory stays bounded and the
    /// instance pool never runs dry.
    pub fn max_in_flight(mut self, calls: usize) -> Self {
        self.max_in_flight = Some(calls.max(1));
        self
    }

    /// Opens the store (default `sqlite:ds.db`), loads (or reuses) the compiled component
    /// and links the two. Opening files and compiling run on the blocking pool.
    pub async fn build(self) -> Result<Datastore, Error> {
        tokio::task::spawn_blocking(move || self.build_blocking())
            .await
            .map_err(|err| Error::Engine(format!("building the datastore failed: {err}")))?
    }

    fn build_blocking(mut self) -> Result<Datastore, Error> {
        let store = self.settings.take_store(open_async)?;
        let (pre, exports) = self.settings.prepare(
            |linker| {
                add_shared_imports(linker)?;
                asynchronous::ds::datastore::transport::add_to_linker::<_, HasSelf<HostState>>(
                    linker,
                    |state| state,
                )
            },
            |pre| {
                let exports = ExportIndices::new(&pre)?;
                Ok((pre, exports))
            },
        )?;
        let pool = InstancePool::new(self.settings.instances);
        let slots = host_core::runtime::engine_options().max_instances as usize;
        let in_flight = self
            .max_in_flight
            .filter(|&calls| calls < slots)
            .map(tokio::sync::Semaphore::new);
        Ok(Datastore {
            inner: Arc::new(Inner {
                pre,
                exports,
                store,
                retry: self.settings.retry,
                pool,
                in_flight,
            }),
        })
    }
}

impl Datastore {
    /// Opens the store at `url` with the embedded model component.
    pub async fn open(url: &str) -> Result<Datastore, Error> {
        Builder::default().store_url(url).build().await
    }

    /// A builder for other stores or components.
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// The store this datastore reads and writes.
    pub fn store(&self) -> &Arc<dyn AsyncStore> {
        &self.inner.store
    }

    /// How many warm instances are idle, ready for the next call (always 0 in per-call mode).
    pub fn idle_instances(&self) -> usize {
        self.inner.pool.idle_count()
    }

    /// Reads the entity at `key`, or `None` if there is none.
    pub async fn get(&self, key: &Key) -> Result<Option<Entity>, Error> {
        tracing::debug!(target: "ads::api", "Model async get()");
        let wit_key = convert::key_ref(key);
        let result = call_export!(self, get_async(&wit_key));
        convert::call_result(result, |found| convert::found_from_wit(key, found))
    }

    /// Validates and writes `entity`, replacing any entity at its key. Returns the key.
    pub async fn put(&self, entity: &Entity) -> Result<Key, Error> {
        tracing::debug!(target: "ads::api", "Model async put()");
        let entity = convert::entity_to_wit(entity)?;
        let result = call_export!(self, put_async(&entity));
        convert::call_result(result, |key| Ok(convert::key_from_wit(key)))
    }

    /// Deletes the entity at `key`; deleting an absent entity is not an error.
    pub async fn delete(&self, key: &Key) -> Result<(), Error> {
        tracing::debug!(target: "ads::api", "Model async delete()");
        let key = convert::key_ref(key);
        let result = call_export!(self, delete_async(&key));
        convert::call_result(result, Ok)
    }

    /// Reads several entities in one transport round trip: one result per key, in order.
    pub async fn get_many(&self, keys: &[Key]) -> Result<Vec<Option<Entity>>, Error> {
        let wit_keys: Vec<_> = keys.iter().map(convert::key_ref).collect();
        let result = call_export!(self, get_many_async(&wit_keys));
        convert::call_result(result, |found| convert::found_many_from_wit(keys, found))
    }

    /// Validates every entity, then writes them all in one atomic commit; if any is invalid,
    /// nothing is written. Returns the keys written, in order.
    pub async fn put_many(&self, entities: &[Entity]) -> Result<Vec<Key>, Error> {
        let entities = entities
            .iter()
            .map(convert::entity_to_wit)
            .collect::<Result<Vec<_>, _>>()?;
        let result = call_export!(self, put_many_async(&entities));
        convert::call_result(result, |keys| {
            Ok(keys.into_iter().map(convert::key_from_wit).collect())
        })
    }

    /// Deletes several entities in one atomic commit.
    pub async fn delete_many(&self, keys: &[Key]) -> Result<(), Error> {
        let keys: Vec<_> = keys.iter().map(convert::key_ref).collect();
        let result = call_export!(self, delete_many_async(&keys));
        convert::call_result(result, Ok)
    }

    /// One page of entities in key order, from `start` (`None`: the first page; else a
    /// page's `next`), of every kind or only of `kind`. What `export` is made of.
    pub async fn entities(
        &self,
        start: Option<&[u8]>,
        kind: Option<&str>,
    ) -> Result<EntityPage, Error> {
        let start = start.map(<[u8]>::to_vec);
        let kind = kind.map(str::to_string);
        let result = call_export!(self, entities_async(start.as_ref(), kind.as_deref()));
        convert::call_result(result, convert::entity_page_from_wit)
    }

    /// Runs one page of `query`, served from the indexes the model maintains. A query no
    /// index serves fails with [`Error::InvalidQuery`], naming the composite index to
    /// declare. Pass the page's `next_cursor` as the next query's `start` to page on.
    ///
    /// ```no_run
    /// # async fn example() -> Result<(), ads::Error> {
    /// use ads::{Datastore, Filter, Order, Query};
    ///
    /// let db = Datastore::open("memory:").await?;
    /// let mut query = Query {
    ///     kind: Some("Account".into()),
    ///     filters: vec![Filter::parse(r#"owner = "Alice""#)?],
    ///     orders: vec![Order::parse("-balance")?],
    ///     limit: Some(20),
    ///     ..Query::default()
    /// };
    /// loop {
    ///     let page = db.query(&query).await?;
    ///     for account in &page.entities {
    ///         println!("{} {:?}", account.key, account.properties.get("balance"));
    ///     }
    ///     match page.next_cursor {
    ///         Some(cursor) => query.start = Some(cursor),
    ///         None => break,
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn query(&self, query: &Query) -> Result<QueryPage, Error> {
        tracing::debug!(target: "ads::api", "Model async query()");
        let query = convert::query_to_wit(query);
        let result = call_export!(self, query_async(&query));
        convert::call_result(result, convert::query_page_from_wit)
    }

    /// Reserves `count` consecutive ids of `kind` in `namespace` and returns the first.
    /// Ids are never issued twice, however many callers race.
    ///
    /// ```no_run
    /// # async fn example() -> Result<(), ads::Error> {
    /// let db = ads::Datastore::open("memory:").await?;
    /// let first = db.allocate_ids("", "Order", 10).await?;
    /// let order = ads::Key::id("Order", first);
    /// # let _ = order; Ok(()) }
    /// ```
    pub async fn allocate_ids(
        &self,
        namespace: &str,
        kind: &str,
        count: u64,
    ) -> Result<u64, Error> {
        let result = call_export!(self, allocate_ids_async(namespace, kind, count));
        convert::call_result(result, Ok)
    }

    /// The example application: adds `amount` (negative: a withdrawal) to the balance of
    /// `account` in a transaction and returns the new balance. [`Error::NotFound`] without
    /// such an account, [`Error::FailedPrecondition`] if the balance would go negative.
    ///
    /// ```no_run
    /// # async fn example() -> Result<(), ads::Error> {
    /// let db = ads::Datastore::open("memory:").await?;
    /// let alice: ads::Key = "Account:alice".parse()?;
    /// let balance = db.deposit(&alice, 25).await?;
    /// # let _ = balance; Ok(()) }
    /// ```
    pub async fn deposit(&self, account: &Key, amount: i64) -> Result<i64, Error> {
        tracing::debug!(target: "ads::api", "Model async deposit()");
        self.inner.exports.require_accounts()?;
        let account = convert::key_ref(account);
        let result = call_export!(self, deposit_async(&account, amount));
        convert::call_result(result, Ok)
    }

    /// The example application: moves `amount` from `source` to `destination` in one
    /// transaction and records a `Transfer` under `source`. The total of all balances never
    /// changes, whatever runs concurrently.
    ///
    /// ```no_run
    /// # async fn example() -> Result<(), ads::Error> {
    /// let db = ads::Datastore::open("memory:").await?;
    /// let (alice, bob) = ("Account:alice".parse()?, "Account:bob".parse()?);
    /// let receipt = db.transfer(&alice, &bob, 10).await?;
    /// println!("{} now holds {}", alice, receipt.source_balance);
    /// # Ok(()) }
    /// ```
    pub async fn transfer(
        &self,
        source: &Key,
        destination: &Key,
        amount: i64,
    ) -> Result<Receipt, Error> {
        tracing::debug!(target: "ads::api", "Model async transfer()");
        self.inner.exports.require_accounts()?;
        let (source, destination) = (convert::key_ref(source), convert::key_ref(destination));
        let result = call_export!(self, transfer_async(&source, &destination, amount));
        convert::call_result(result, |receipt| Ok(convert::receipt_from_wit(receipt)))
    }

    /// Runs the component's application operation `name` on `input` and returns its output:
    /// how operations a guest author adds are reached without rebuilding this host.
    /// [`Error::NotFound`] names the operations there are.
    ///
    /// ```no_run
    /// # async fn example() -> Result<(), ads::Error> {
    /// let db = ads::Datastore::open("memory:").await?;
    /// let out = db.call("deposit", &serde_json::json!({ "account": "Account:alice", "amount": 5 })).await?;
    /// println!("balance {}", out["balance"]);
    /// # Ok(()) }
    /// ```
    pub async fn call(
        &self,
        name: &str,
        input: &serde_json::Value,
    ) -> Result<serde_json::Value, Error> {
        tracing::debug!(target: "ads::api", "Model async call({name})");
        let input = input.to_string();
        let result = call_export!(self, call_async(name, &input));
        convert::call_result(result, |output| convert::json_from_wit(name, &output))
    }

    /// Checks the whole store, page by page (each page its own call): every entity must be
    /// readable and have exactly its index rows, and every index row must belong to its
    /// entity. Returns the rows examined and every problem found.
    pub async fn check(&self) -> Result<CheckReport, Error> {
        let mut total = CheckReport::default();
        let mut start: Option<Vec<u8>> = None;
        loop {
            let result = call_export!(self, check_async(start.as_ref()));
            let page = convert::call_result(result, Ok)?;
            match convert::merge_check_page(&mut total, page) {
                Some(next) => start = Some(next),
                None => return Ok(total),
            }
        }
    }

    /// An instance for one call: a warm one from the pool, or a fresh one in a fresh store.
    /// The caller gives it back to the pool when the call ends; an instance whose call never
    /// ends (a dropped future) is simply dropped, never reused.
    async fn lease(&self) -> Result<Instance<HostState, Exports>, Error> {
        if let Some(instance) = self.inner.pool.take() {
            return Ok(instance);
        }
        // With every slot of the process taken, idle instances (of any datastore) give theirs
        // up and the instantiation is tried once more.
        match self.instantiate().await {
            Err(err) if host_core::instances::release_idle_for(&err) => self.instantiate().await,
            result => result,
        }
    }

    /// A fresh instance in a fresh store.
    async fn instantiate(&self) -> Result<Instance<HostState, Exports>, Error> {
        let state = HostState {
            store: Arc::clone(&self.inner.store),
            ctx: InstanceCtx::new(self.inner.pool.options()),
            retry: self.inner.retry,
        };
        let mut store = new_store(self.inner.pre.engine(), state, self.inner.pool.options());
        let instance = self
            .inner
            .pre
            .instantiate_async(&mut store)
            .await
            .map_err(Error::from_wasmtime)?;
        let model = Exports::new(&mut store, instance, &self.inner.exports)
            .map_err(Error::from_wasmtime)?;
        Ok(Instance::new(store, model))
    }
}

/// What one instance's imports reach: the store and the log.
struct HostState {
    store: Arc<dyn AsyncStore>,
    ctx: InstanceCtx,
    retry: RetryPolicy,
}

impl HasInstanceCtx for HostState {
    fn ctx(&mut self) -> &mut InstanceCtx {
        &mut self.ctx
    }
}

/// The async transport: each import awaits the store while the guest's fiber is suspended.
impl asynchronous::ds::datastore::transport::Host for HostState {
    async fn get(&mut self, key: Vec<u8>) -> Result<Option<wit::Versioned>, wit::StoreError> {
        tracing::debug!(target: "ads::transport", key = describe_key(&key).1, "async get() with key = {}", describe_key(&key).0);
        convert::get_to_wit(self.store.get(key).await)
    }

    async fn get_many(
        &mut self,
        keys: Vec<Vec<u8>>,
    ) -> Result<Vec<Option<wit::Versioned>>, wit::StoreError> {
        tracing::debug!(target: "ads::transport", count = keys.len(), "async get_many()");
        convert::get_many_to_wit(self.store.get_many(keys).await)
    }

    async fn scan(
        &mut self,
        range: wit::KeyRange,
        limit: u32,
        direction: wit::Direction,
    ) -> Result<Vec<wit::Entry>, wit::StoreError> {
        tracing::debug!(target: "ads::transport", limit, "async scan()");
        let (range, direction) = convert::scan_args_from_wit(range, direction);
        convert::scan_to_wit(self.store.scan(range, limit, direction).await)
    }

    async fn commit(
        &mut self,
        checks: Vec<wit::Check>,
        writes: Vec<wit::Write>,
    ) -> Result<u64, wit::StoreError> {
        tracing::debug!(target: "ads::transport", checks = checks.len(), writes = writes.len(), "async commit()");
        let (checks, writes) = convert::commit_args_from_wit(checks, writes);
        self.ctx.writes.sent(writes.len());
        let result = self.store.commit(checks, writes).await;
        self.ctx.writes.answered(&result);
        convert::commit_to_wit(result)
    }

    async fn backoff(&mut self, attempt: u32) -> bool {
        tracing::debug!(target: "ads::transport", attempt, "async backoff()");
        match self.retry.delay(attempt) {
            Some(delay) => {
                // A timer, not a sleep: the worker runs other tasks meanwhile.
                tokio::time::sleep(delay).await;
                true
            }
            None => false,
        }
    }
}
