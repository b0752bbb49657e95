//! `ds`: the blocking host of the ds model component.
//!
//! The model logic (keys, entities, validation, and what the model layer adds) is compiled
//! once into a WebAssembly component; this crate runs it with a blocking transport. Its twin,
//! `ads` (crate `host-async`), runs the very same component with an async transport.
//!
//! ```no_run
//! use ds::{Datastore, Entity, Key, Value};
//!
//! let db = Datastore::open("sqlite:ds.db")?;
//! let alice: Key = "Account:alice".parse()?;
//! let bob: Key = "Account:bob".parse()?;
//! for (key, owner) in [(&alice, "Alice"), (&bob, "Bob")] {
//!     db.put(&Entity::new(key.clone()).with("owner", Value::String(owner.into())))?;
//! }
//! db.deposit(&alice, 100)?;
//! let receipt = db.transfer(&alice, &bob, 30)?; // one transaction, in the guest
//! assert_eq!(receipt.source_balance, 70);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Every call blocks the calling thread until the store answers. Inside an async runtime,
//! use `ads` instead (or `spawn_blocking`): a blocking call on a tokio worker stalls every
//! task on that worker.

use std::sync::Arc;

use host_core::bindings::blocking;
use host_core::builder::Settings;
use host_core::convert;
use host_core::exports::{ExportIndices, Exports};
use host_core::instances::{HasInstanceCtx, Instance, InstanceCtx, InstancePool, new_store};
use host_core::logging::{add_shared_imports, describe_key};
use host_core::store::{Store, open_blocking};
use wasmtime::component::HasSelf;

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
        let mut instance = $self.lease()?;
        $self.inner.pool.arm(&mut instance);
        let result = instance.model.$method(&mut instance.store, $($arg),*);
        // Read only when it is needed: for a failed call's error.
        let writes = if result.is_err() { instance.writes() } else { Default::default() };
        $self.inner.pool.give_back(instance, result.is_err());
        result.map_err(|err| $self.inner.pool.trap_error(err, writes))
    }};
}

/// A datastore: the model component over a blocking store.
///
/// Cheap to clone and safe to share between threads; each call runs on the calling thread.
#[derive(Clone)]
pub struct Datastore {
    inner: Arc<Inner>,
}

struct Inner {
    pre: wasmtime::component::InstancePre<HostState>,
    exports: Arc<ExportIndices>,
    store: Arc<dyn Store>,
    retry: RetryPolicy,
    pool: InstancePool<HostState, Exports>,
}

/// Builds a [`Datastore`] with options beyond [`Datastore::open`].
#[derive(Default)]
#[must_use]
pub struct Builder {
    settings: Settings<dyn Store>,
}

impl Builder {
    host_core::builder_setters!(Store);

    /// Opens the store (default `sqlite:ds.db`), loads (or reuses) the compiled component
    /// and links the two.
    pub fn build(mut self) -> Result<Datastore, Error> {
        let store = self.settings.take_store(open_blocking)?;
        let (pre, exports) = self.settings.prepare(
            |linker| {
                add_shared_imports(linker)?;
                blocking::ds::datastore::transport::add_to_linker::<_, HasSelf<HostState>>(
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
        Ok(Datastore {
            inner: Arc::new(Inner {
                pre,
                exports,
                store,
                retry: self.settings.retry,
                pool,
            }),
        })
    }
}

impl Datastore {
    /// Opens the store at `url` with the embedded model component.
    pub fn open(url: &str) -> Result<Datastore, Error> {
        Builder::default().store_url(url).build()
    }

    /// A builder for other stores or components.
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// The store this datastore reads and writes.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    /// How many warm instances are idle, ready for the next call (always 0 in per-call mode).
    pub fn idle_instances(&self) -> usize {
        self.inner.pool.idle_count()
    }

    /// Reads the entity at `key`, or `None` if there is none.
    pub fn get(&self, key: &Key) -> Result<Option<Entity>, Error> {
        tracing::debug!(target: "ds::api", "Model sync get()");
        let wit_key = convert::key_ref(key);
        let result = call_export!(self, get(&wit_key));
        convert::call_result(result, |found| convert::found_from_wit(key, found))
    }

    /// Validates and writes `entity`, replacing any entity at its key. Returns the key.
    pub fn put(&self, entity: &Entity) -> Result<Key, Error> {
        tracing::debug!(target: "ds::api", "Model sync put()");
        let entity = convert::entity_to_wit(entity)?;
        let result = call_export!(self, put(&entity));
        convert::call_result(result, |key| Ok(convert::key_from_wit(key)))
    }

    /// Deletes the entity at `key`; deleting an absent entity is not an error.
    pub fn delete(&self, key: &Key) -> Result<(), Error> {
        tracing::debug!(target: "ds::api", "Model sync delete()");
        let key = convert::key_ref(key);
        let result = call_export!(self, delete(&key));
        convert::call_result(result, Ok)
    }

    /// Reads several entities in one transport round trip: one result per key, in order.
    pub fn get_many(&self, keys: &[Key]) -> Result<Vec<Option<Entity>>, Error> {
        let wit_keys: Vec<_> = keys.iter().map(convert::key_ref).collect();
        let result = call_export!(self, get_many(&wit_keys));
        convert::call_result(result, |found| convert::found_many_from_wit(keys, found))
    }

    /// Validates every entity, then writes them all in one atomic commit; if any is invalid,
    /// nothing is written. Returns the keys written, in order.
    pub fn put_many(&self, entities: &[Entity]) -> Result<Vec<Key>, Error> {
        let entities = entities
            .iter()
            .map(convert::entity_to_wit)
            .collect::<Result<Vec<_>, _>>()?;
        let result = call_export!(self, put_many(&entities));
        convert::call_result(result, |keys| {
            Ok(keys.into_iter().map(convert::key_from_wit).collect())
        })
    }

    /// Deletes several entities in one atomic commit.
    pub fn delete_many(&self, keys: &[Key]) -> Result<(), Error> {
        let keys: Vec<_> = keys.iter().map(convert::key_ref).collect();
        let result = call_export!(self, delete_many(&keys));
        convert::call_result(result, Ok)
    }

    /// One page of entities in key order, from `start` (`None`: the first page; else a
    /// page's `next`), of every kind or only of `kind`. What `export` is made of.
    pub fn entities(&self, start: Option<&[u8]>, kind: Option<&str>) -> Result<EntityPage, Error> {
        let start = start.map(<[u8]>::to_vec);
        let kind = kind.map(str::to_string);
        let result = call_export!(self, entities(start.as_ref(), kind.as_deref()));
        convert::call_result(result, convert::entity_page_from_wit)
    }

    /// Runs one page of `query`, served from the indexes the model maintains. A query no
    /// index serves fails with [`Error::InvalidQuery`], naming the composite index to
    /// declare. Pass the page's `next_cursor` as the next query's `start` to page on.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), ds::Error> {
    /// use ds::{Datastore, Filter, Order, Query};
    ///
    /// let db = Datastore::open("memory:")?;
    /// let mut query = Query {
    ///     kind: Some("Account".into()),
    ///     filters: vec![Filter::parse(r#"owner = "Alice""#)?],
    ///     orders: vec![Order::parse("-balance")?],
    ///     limit: Some(20),
    ///     ..Query::default()
    /// };
    /// loop {
    ///     let page = db.query(&query)?;
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
    pub fn query(&self, query: &Query) -> Result<QueryPage, Error> {
        tracing::debug!(target: "ds::api", "Model sync query()");
        let query = convert::query_to_wit(query);
        let result = call_export!(self, query(&query));
        convert::call_result(result, convert::query_page_from_wit)
    }

    /// Reserves `count` consecutive ids of `kind` in `namespace` and returns the first.
    /// Ids are never issued twice, however many callers race.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), ds::Error> {
    /// let db = ds::Datastore::open("memory:")?;
    /// let first = db.allocate_ids("", "Order", 10)?;
    /// let order = ds::Key::id("Order", first);
    /// # let _ = order; Ok(()) }
    /// ```
    pub fn allocate_ids(&self, namespace: &str, kind: &str, count: u64) -> Result<u64, Error> {
        let result = call_export!(self, allocate_ids(namespace, kind, count));
        convert::call_result(result, Ok)
    }

    /// The example application: adds `amount` (negative: a withdrawal) to the balance of
    /// `account` in a transaction and returns the new balance. [`Error::NotFound`] without
    /// such an account, [`Error::FailedPrecondition`] if the balance would go negative.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), ds::Error> {
    /// let db = ds::Datastore::open("memory:")?;
    /// let alice: ds::Key = "Account:alice".parse()?;
    /// let balance = db.deposit(&alice, 25)?;
    /// # let _ = balance; Ok(()) }
    /// ```
    pub fn deposit(&self, account: &Key, amount: i64) -> Result<i64, Error> {
        tracing::debug!(target: "ds::api", "Model sync deposit()");
        self.inner.exports.require_accounts()?;
        let account = convert::key_ref(account);
        let result = call_export!(self, deposit(&account, amount));
        convert::call_result(result, Ok)
    }

    /// The example application: moves `amount` from `source` to `destination` in one
    /// transaction and records a `Transfer` under `source`. The total of all balances never
    /// changes, whatever runs concurrently.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), ds::Error> {
    /// let db = ds::Datastore::open("memory:")?;
    /// let (alice, bob) = ("Account:alice".parse()?, "Account:bob".parse()?);
    /// let receipt = db.transfer(&alice, &bob, 10)?;
    /// println!("{} now holds {}", alice, receipt.source_balance);
    /// # Ok(()) }
    /// ```
    pub fn transfer(&self, source: &Key, destination: &Key, amount: i64) -> Result<Receipt, Error> {
        tracing::debug!(target: "ds::api", "Model sync transfer()");
        self.inner.exports.require_accounts()?;
        let (source, destination) = (convert::key_ref(source), convert::key_ref(destination));
        let result = call_export!(self, transfer(&source, &destination, amount));
        convert::call_result(result, |receipt| Ok(convert::receipt_from_wit(receipt)))
    }

    /// Runs the component's application operation `name` on `input` and returns its output:
    /// how operations a guest author adds are reached without rebuilding this host.
    /// [`Error::NotFound`] names the operations there are.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), ds::Error> {
    /// let db = ds::Datastore::open("memory:")?;
    /// let out = db.call("deposit", &serde_json::json!({ "account": "Account:alice", "amount": 5 }))?;
    /// println!("balance {}", out["balance"]);
    /// # Ok(()) }
    /// ```
    pub fn call(&self, name: &str, input: &serde_json::Value) -> Result<serde_json::Value, Error> {
        tracing::debug!(target: "ds::api", "Model sync call({name})");
        let input = input.to_string();
        let result = call_export!(self, call(name, &input));
        convert::call_result(result, |output| convert::json_from_wit(name, &output))
    }

    /// Checks the whole store, page by page (each page its own call): every entity must be
    /// readable and have exactly its index rows, and every index row must belong to its
    /// entity. Returns the rows examined and every problem found.
    pub fn check(&self) -> Result<CheckReport, Error> {
        let mut total = CheckReport::default();
        let mut start: Option<Vec<u8>> = None;
        loop {
            let result = call_export!(self, check(start.as_ref()));
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
    fn lease(&self) -> Result<Instance<HostState, Exports>, Error> {
        if let Some(instance) = self.inner.pool.take() {
            return Ok(instance);
        }
        // With every slot of the process taken, idle instances (of any datastore) give theirs
        // up and the instantiation is tried once more.
        match self.instantiate() {
            Err(err) if host_core::instances::release_idle_for(&err) => self.instantiate(),
            result => result,
        }
    }

    /// A fresh instance in a fresh store.
    fn instantiate(&self) -> Result<Instance<HostState, Exports>, Error> {
        let state = HostState {
            store: Arc::clone(&self.inner.store),
            ctx: InstanceCtx::new(self.inner.pool.options()),
            retry: self.inner.retry,
        };
        let mut store = new_store(self.inner.pre.engine(), state, self.inner.pool.options());
        let instance = self
            .inner
            .pre
            .instantiate(&mut store)
            .map_err(Error::from_wasmtime)?;
        let model = Exports::new(&mut store, instance, &self.inner.exports)
            .map_err(Error::from_wasmtime)?;
        Ok(Instance::new(store, model))
    }
}

/// What one instance's imports reach: the store and the log.
struct HostState {
    store: Arc<dyn Store>,
    ctx: InstanceCtx,
    retry: RetryPolicy,
}

impl HasInstanceCtx for HostState {
    fn ctx(&mut self) -> &mut InstanceCtx {
        &mut self.ctx
    }
}

/// The blocking transport: each import is one blocking call into the store.
impl blocking::ds::datastore::transport::Host for HostState {
    fn get(&mut self, key: Vec<u8>) -> Result<Option<wit::Versioned>, wit::StoreError> {
        tracing::debug!(target: "ds::transport", key = describe_key(&key).1, "get() with key = {}", describe_key(&key).0);
        convert::get_to_wit(self.store.get(&key))
    }

    fn get_many(
        &mut self,
        keys: Vec<Vec<u8>>,
    ) -> Result<Vec<Option<wit::Versioned>>, wit::StoreError> {
        tracing::debug!(target: "ds::transport", count = keys.len(), "get_many()");
        convert::get_many_to_wit(self.store.get_many(&keys))
    }

    fn scan(
        &mut self,
        range: wit::KeyRange,
        limit: u32,
        direction: wit::Direction,
    ) -> Result<Vec<wit::Entry>, wit::StoreError> {
        tracing::debug!(target: "ds::transport", limit, "scan()");
        let (range, direction) = convert::scan_args_from_wit(range, direction);
        convert::scan_to_wit(self.store.scan(&range, limit, direction))
    }

    fn commit(
        &mut self,
        checks: Vec<wit::Check>,
        writes: Vec<wit::Write>,
    ) -> Result<u64, wit::StoreError> {
        tracing::debug!(target: "ds::transport", checks = checks.len(), writes = writes.len(), "commit()");
        let (checks, writes) = convert::commit_args_from_wit(checks, writes);
        self.ctx.writes.sent(writes.len());
        let result = self.store.commit(&checks, &writes);
        self.ctx.writes.answered(&result);
        convert::commit_to_wit(result)
    }

    fn backoff(&mut self, attempt: u32) -> bool {
        tracing::debug!(target: "ds::transport", attempt, "backoff()");
        match self.retry.delay(attempt) {
            Some(delay) => {
                // No longer than the call has left: past its deadline the guest traps as
                // soon as it runs again, and the caller hears so on time.
                std::thread::sleep(delay.min(self.ctx.time_left()));
                true
            }
            None => false,
        }
    }
}
