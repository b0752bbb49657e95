//! `ds`: the blocking host of the ds model component.
//!
//! The model logic (keys, entities, validation, and what the model layer adds) is compiled
//! once into a WebAssembly component; this crate runs it with a blocking transport. Its twin,
//! `ads` (package `ads-host`), runs the very same component with an async transport.
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

use host_core::builder::Settings;
use host_core::core::Core;
use host_core::mode::{Blocking, complete};
use host_core::store::Store;

pub use host_core::api::*;

/// A datastore: the model component over a blocking store.
///
/// Cheap to clone and safe to share between threads; each call runs on the calling thread.
#[derive(Clone)]
pub struct Datastore {
    core: Arc<Core<Blocking>>,
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
    pub fn build(self) -> Result<Datastore, Error> {
        let core = Core::build(self.settings, Blocking)?;
        Ok(Datastore {
            core: Arc::new(core),
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

    /// Reads the entity at `key`, or `None` if there is none.
    pub fn get(&self, key: &Key) -> Result<Option<Entity>, Error> {
        complete(self.core.get(key))
    }

    /// Validates and writes `entity`, replacing any entity at its key. Returns the key.
    pub fn put(&self, entity: &Entity) -> Result<Key, Error> {
        complete(self.core.put(entity))
    }

    /// Deletes the entity at `key`; deleting an absent entity is not an error.
    pub fn delete(&self, key: &Key) -> Result<(), Error> {
        complete(self.core.delete(key))
    }

    /// Reads several entities in one transport round trip: one result per key, in order.
    pub fn get_many(&self, keys: &[Key]) -> Result<Vec<Option<Entity>>, Error> {
        complete(self.core.get_many(keys))
    }

    /// Validates every entity, then writes them all in one atomic commit; if any is invalid,
    /// nothing is written. Returns the keys written, in order.
    pub fn put_many(&self, entities: &[Entity]) -> Result<Vec<Key>, Error> {
        complete(self.core.put_many(entities))
    }

    /// Deletes several entities in one atomic commit.
    pub fn delete_many(&self, keys: &[Key]) -> Result<(), Error> {
        complete(self.core.delete_many(keys))
    }

    /// One page of entities in key order, from `start` (`None`: the first page; else a
    /// page's `next`), of every kind or only of `kind`. What `export` is made of.
    pub fn entities(&self, start: Option<&[u8]>, kind: Option<&str>) -> Result<EntityPage, Error> {
        complete(self.core.entities(start, kind))
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
        complete(self.core.query(query))
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
        complete(self.core.allocate_ids(namespace, kind, count))
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
        complete(self.core.deposit(account, amount))
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
        complete(self.core.transfer(source, destination, amount))
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
        complete(self.core.call(name, input))
    }

    /// Checks the whole store, page by page (each page its own call): every entity must be
    /// readable and have exactly its index rows, and every index row must belong to its
    /// entity. Returns the rows examined and every problem found.
    pub fn check(&self) -> Result<CheckReport, Error> {
        complete(self.core.check())
    }

    /// Reads several entities with the versions of their rows, in one round trip: one
    /// result per key, in order. A version is what [`Condition::Version`] names in a
    /// conditional write, to replace or delete exactly what was read.
    pub fn get_versioned(&self, keys: &[Key]) -> Result<Vec<Option<VersionedEntity>>, Error> {
        complete(self.core.get_versioned(keys))
    }

    /// Writes the entities in one atomic commit if the [`Condition`] beside each holds for
    /// what is stored at its key ([`Condition::Absent`]: create only;
    /// [`Condition::Version`]: replace exactly what was read). If one does not hold, nothing
    /// is written and the error is [`Error::FailedPrecondition`], naming the key. Returns
    /// the commit's version, which every written entity now has.
    pub fn put_if(&self, writes: &[(Entity, Condition)]) -> Result<u64, Error> {
        complete(self.core.put_if(writes))
    }

    /// Deletes the entities in one atomic commit if the [`Condition`] beside each holds
    /// (else [`Error::FailedPrecondition`], and nothing is deleted). Returns, per key, in
    /// order, whether an entity was there.
    pub fn delete_if(&self, deletes: &[(Key, Condition)]) -> Result<Vec<bool>, Error> {
        complete(self.core.delete_if(deletes))
    }

    /// Counts the results of `query` from the indexes, reading no entity (but the entities
    /// a repeated property needs, to count each once): up to `query.limit` (`None`: all),
    /// after `query.offset`. A large count takes several calls of the component (10,000
    /// results each), so it is not one snapshot under concurrent writes.
    pub fn count(&self, query: &Query) -> Result<u64, Error> {
        complete(self.core.count(query))
    }

    /// The kinds the component declares, as JSON: each kind's properties (type, required,
    /// repeated, indexed, default) and composite indexes (`ds schema`, `ds indexes`).
    pub fn schema(&self) -> Result<serde_json::Value, Error> {
        complete(self.core.schema())
    }

    /// Checks the whole store as [`Datastore::check`] does and repairs what is certain:
    /// index rows an entity lacks are written back, index rows whose entity is absent or
    /// does not have them are deleted; an entity that does not decode is left alone. Each
    /// page's repairs are one commit checked against what was read, so nothing written
    /// meanwhile is undone (a page that changed is reported, for another run). With
    /// `apply` false nothing is written and the counts say what would be.
    pub fn repair(&self, apply: bool) -> Result<RepairReport, Error> {
        complete(self.core.repair(apply))
    }

    /// One page of entities as [`Datastore::entities`] lists them, but an entity row that
    /// does not decode is described in `skipped` instead of failing the page
    /// (`export --skip-corrupt`).
    pub fn salvage(&self, start: Option<&[u8]>, kind: Option<&str>) -> Result<SalvagePage, Error> {
        complete(self.core.salvage(start, kind))
    }
}

// The operations as futures that are ready when made, for code written once over both hosts.
host_core::implement_face!(Datastore, std::future::ready);
