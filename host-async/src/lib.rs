//! `ads`: the async host of the ds model component.
//!
//! The same component that `ds` (package `ds-host`) runs with a blocking transport runs here
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

use host_core::builder::Settings;
use host_core::core::Core;
use host_core::mode::Async;
use host_core::store::AsyncStore;

mod groups;
pub mod serve;

pub use host_core::api::*;

/// Builds a [`Datastore`] with options beyond [`Datastore::open`].
#[derive(Default)]
#[must_use]
pub struct Builder {
    settings: Settings<dyn AsyncStore>,
    max_in_flight: Option<usize>,
}

/// A datastore: the model component over an async store.
///
/// Cheap to clone and safe to share between tasks; calls run concurrently.
#[derive(Clone)]
pub struct Datastore {
    core: Arc<Core<Async>>,
    /// The example's transactions queue here by entity group (see `groups`).
    groups: Arc<groups::GroupQueues>,
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

    fn build_blocking(self) -> Result<Datastore, Error> {
        let core = Core::build(self.settings, Async::new(self.max_in_flight))?;
        Ok(Datastore {
            core: Arc::new(core),
            groups: Arc::default(),
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
        self.core.store()
    }

    /// The engine this datastore runs on.
    pub fn engine(&self) -> &Engine {
        self.core.engine()
    }

    /// How many warm instances are idle, ready for the next call (always 0 in per-call mode).
    pub fn idle_instances(&self) -> usize {
        self.core.idle_instances()
    }

    /// Whether the store can serve calls now (see `Store::health`): for health probes.
    pub async fn health(&self) -> Result<(), Error> {
        Ok(self.core.store().health().await?)
    }

    /// Reads the entity at `key`, or `None` if there is none.
    pub async fn get(&self, key: &Key) -> Result<Option<Entity>, Error> {
        self.core.get(key).await
    }

    /// Validates and writes `entity`, replacing any entity at its key. Returns the key.
    pub async fn put(&self, entity: &Entity) -> Result<Key, Error> {
        self.core.put(entity).await
    }

    /// Deletes the entity at `key`; deleting an absent entity is not an error.
    pub async fn delete(&self, key: &Key) -> Result<(), Error> {
        self.core.delete(key).await
    }

    /// Reads several entities in one transport round trip: one result per key, in order.
    pub async fn get_many(&self, keys: &[Key]) -> Result<Vec<Option<Entity>>, Error> {
        self.core.get_many(keys).await
    }

    /// Validates every entity, then writes them all in one atomic commit; if any is invalid,
    /// nothing is written. Returns the keys written, in order.
    pub async fn put_many(&self, entities: &[Entity]) -> Result<Vec<Key>, Error> {
        self.core.put_many(entities).await
    }

    /// Deletes several entities in one atomic commit.
    pub async fn delete_many(&self, keys: &[Key]) -> Result<(), Error> {
        self.core.delete_many(keys).await
    }

    /// One page of entities in key order, from `start` (`None`: the first page; else a
    /// page's `next`), of every kind or only of `kind`. What `export` is made of.
    pub async fn entities(
        &self,
        start: Option<&[u8]>,
        kind: Option<&str>,
    ) -> Result<EntityPage, Error> {
        self.core.entities(start, kind).await
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
        self.core.query(query).await
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
        self.core.allocate_ids(namespace, kind, count).await
    }

    /// The example application: adds `amount` (negative: a withdrawal) to the balance of
    /// `account` in a transaction and returns the new balance. [`Error::NotFound`] without
    /// such an account, [`Error::FailedPrecondition`] if the balance would go negative.
    /// Deposits and transfers on one account's entity group queue in this process (clones
    /// of this datastore share the queue) instead of racing each other in the store, so
    /// only writers in other processes can make them conflict.
    ///
    /// ```no_run
    /// # async fn example() -> Result<(), ads::Error> {
    /// let db = ads::Datastore::open("memory:").await?;
    /// let alice: ads::Key = "Account:alice".parse()?;
    /// let balance = db.deposit(&alice, 25).await?;
    /// # let _ = balance; Ok(()) }
    /// ```
    pub async fn deposit(&self, account: &Key, amount: i64) -> Result<i64, Error> {
        let _turn = self.groups.turn(&[account]).await;
        self.core.deposit(account, amount).await
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
        let _turn = self.groups.turn(&[source, destination]).await;
        self.core.transfer(source, destination, amount).await
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
        self.core.call(name, input).await
    }

    /// Checks the whole store, page by page (each page its own call): every entity must be
    /// readable and have exactly its index rows, and every index row must belong to its
    /// entity. Returns the rows examined and every problem found.
    pub async fn check(&self) -> Result<CheckReport, Error> {
        self.core.check().await
    }

    /// Reads several entities with the versions of their rows, in one round trip: one
    /// result per key, in order. A version is what [`Condition::Version`] names in a
    /// conditional write, to replace or delete exactly what was read.
    pub async fn get_versioned(&self, keys: &[Key]) -> Result<Vec<Option<VersionedEntity>>, Error> {
        self.core.get_versioned(keys).await
    }

    /// Writes the entities in one atomic commit if the [`Condition`] beside each holds for
    /// what is stored at its key ([`Condition::Absent`]: create only;
    /// [`Condition::Version`]: replace exactly what was read). If one does not hold, nothing
    /// is written and the error is [`Error::FailedPrecondition`], naming the key. Returns
    /// the commit's version, which every written entity now has.
    pub async fn put_if(&self, writes: &[(Entity, Condition)]) -> Result<u64, Error> {
        self.core.put_if(writes).await
    }

    /// Deletes the entities in one atomic commit if the [`Condition`] beside each holds
    /// (else [`Error::FailedPrecondition`], and nothing is deleted). Returns, per key, in
    /// order, whether an entity was there.
    pub async fn delete_if(&self, deletes: &[(Key, Condition)]) -> Result<Vec<bool>, Error> {
        self.core.delete_if(deletes).await
    }

    /// Counts the results of `query` from the indexes, reading no entity (but the entities
    /// a repeated property needs, to count each once): up to `query.limit` (`None`: all),
    /// after `query.offset`. A large count takes several calls of the component (10,000
    /// results each), so it is not one snapshot under concurrent writes.
    pub async fn count(&self, query: &Query) -> Result<u64, Error> {
        self.core.count(query).await
    }

    /// The kinds the component declares, as JSON: each kind's properties (type, required,
    /// repeated, indexed, default) and composite indexes (`ds schema`, `ds indexes`).
    pub async fn schema(&self) -> Result<serde_json::Value, Error> {
        self.core.schema().await
    }

    /// Checks the whole store as [`Datastore::check`] does and repairs what is certain:
    /// index rows an entity lacks are written back, index rows whose entity is absent or
    /// does not have them are deleted; an entity that does not decode is left alone. Each
    /// page's repairs are one commit checked against what was read, so nothing written
    /// meanwhile is undone (a page that changed is reported, for another run). With
    /// `apply` false nothing is written and the counts say what would be.
    pub async fn repair(&self, apply: bool) -> Result<RepairReport, Error> {
        self.core.repair(apply).await
    }

    /// One page of entities as [`Datastore::entities`] lists them, but an entity row that
    /// does not decode is described in `skipped` instead of failing the page
    /// (`export --skip-corrupt`).
    pub async fn salvage(
        &self,
        start: Option<&[u8]>,
        kind: Option<&str>,
    ) -> Result<SalvagePage, Error> {
        self.core.salvage(start, kind).await
    }
}

// The operations as they are, for code written once over both hosts.
host_core::implement_face!(Datastore, host_core::face::awaited);
