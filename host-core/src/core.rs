//! The datastore, written once: what `ds::Datastore` and `ads::Datastore` are faces of.
//!
//! [`Core`] converts arguments to their WIT form, admits the call, leases an instance,
//! calls the export under the call's deadline, gives the instance back (or drops it after a
//! trap) and converts the result. It is `async` code over a [`Mode`]; the blocking face runs
//! each method with [`complete`](crate::mode::complete), whose first poll finishes it, and
//! the async face awaits it. Each face's method is one line.

use std::sync::Arc;

use wasmtime::component::InstancePre;

use crate::builder::Settings;
use crate::convert;
use crate::ctx::{HasInstanceCtx, InstanceCtx};
use crate::engine::Engine;
use crate::error::Error;
use crate::exports::{ExportCalls, ExportIndices, Exports};
use crate::instances::{Instance, InstancePool, new_store};
use crate::logging::GuestLog;
use crate::mode::Mode;
use crate::{
    CheckReport, Condition, Entity, EntityPage, Key, Query, QueryPage, Receipt, RepairReport,
    RetryPolicy, SalvagePage, VersionedEntity,
};

/// Writes a host API trace line (`ds::api`: "Model sync get()", `ads::api`: "Model async
/// get()"), as the seed's models printed them.
macro_rules! trace_api {
    ($mode:ty, $($op:tt)+) => {
        if <$mode as Mode>::ASYNC {
            tracing::debug!(target: "ads::api", "Model async {}()", format_args!($($op)+))
        } else {
            tracing::debug!(target: "ds::api", "Model sync {}()", format_args!($($op)+))
        }
    };
}

/// A datastore: the model component over a store, run in mode `M`.
pub struct Core<M: Mode> {
    mode: M,
    pre: InstancePre<HostState<M>>,
    exports: Arc<ExportIndices>,
    store: Arc<M::Store>,
    retry: RetryPolicy,
    pool: InstancePool<HostState<M>, Exports>,
}

/// What one instance's imports reach: the store, the per-instance context and the retry
/// policy.
pub struct HostState<M: Mode> {
    pub(crate) store: Arc<M::Store>,
    pub(crate) ctx: InstanceCtx,
    pub(crate) retry: RetryPolicy,
}

impl<M: Mode> HasInstanceCtx for HostState<M> {
    fn ctx(&mut self) -> &mut InstanceCtx {
        &mut self.ctx
    }
}

/// One call in progress: its admission and its instance. The instance is boxed (a few
/// hundred bytes with its table of exports), so the call's nested futures move a pointer.
pub(crate) struct Call<'a, M: Mode> {
    pub(crate) instance: Box<Instance<HostState<M>, Exports>>,
    _admission: M::Admission<'a>,
}

impl<M: ExportCalls> Core<M> {
    /// Opens the store (default `sqlite:ds.db`), loads (or reuses) the compiled component
    /// and links the two. Opening and compiling block the thread.
    pub fn build(mut settings: Settings<M::Store>, mode: M) -> Result<Self, Error> {
        let store = settings.take_store(M::open_store)?;
        let engine = settings.take_engine()?;
        let (pre, exports) = settings.prepare(
            &engine,
            |linker| {
                add_shared_imports(linker)?;
                M::link(linker)
            },
            |pre| {
                let exports = ExportIndices::new(&pre)?;
                Ok((pre, exports))
            },
        )?;
        Ok(Core {
            mode: mode.for_engine(&engine),
            pre,
            exports,
            store,
            retry: settings.retry,
            pool: InstancePool::new(settings.instances, &engine),
        })
    }

    /// The mode this core runs in.
    pub fn mode(&self) -> &M {
        &self.mode
    }

    /// The engine this datastore runs on.
    pub fn engine(&self) -> &Engine {
        self.pool.engine()
    }

    /// The store this datastore reads and writes.
    pub fn store(&self) -> &Arc<M::Store> {
        &self.store
    }

    /// How many warm instances are idle, ready for the next call (always 0 in per-call mode).
    pub fn idle_instances(&self) -> usize {
        self.pool.idle_count()
    }

    /// `get`: the entity at `key`, or `None`.
    pub async fn get(&self, key: &Key) -> Result<Option<Entity>, Error> {
        trace_api!(M, "get");
        let wit_key = convert::key_to_wit(key);
        let result = self.call_get(&wit_key).await;
        convert::call_result(result, |found| convert::found_from_wit(key, found))
    }

    /// `put`: validates and writes `entity`; returns its key.
    pub async fn put(&self, entity: &Entity) -> Result<Key, Error> {
        trace_api!(M, "put");
        let entity = convert::entity_to_wit(entity)?;
        let result = self.call_put(&entity).await;
        convert::call_result(result, convert::key_from_wit)
    }

    /// `delete`: deletes the entity at `key`, if any.
    pub async fn delete(&self, key: &Key) -> Result<(), Error> {
        trace_api!(M, "delete");
        let key = convert::key_to_wit(key);
        let result = self.call_delete(&key).await;
        convert::call_result(result, Ok)
    }

    /// `get-many`: one result per key, in order, in one transport round trip.
    pub async fn get_many(&self, keys: &[Key]) -> Result<Vec<Option<Entity>>, Error> {
        let wit_keys: Vec<_> = keys.iter().map(convert::key_to_wit).collect();
        let result = self.call_get_many(&wit_keys).await;
        convert::call_result(result, |found| convert::found_many_from_wit(keys, found))
    }

    /// `put-many`: validates every entity, then writes them all in one atomic commit.
    pub async fn put_many(&self, entities: &[Entity]) -> Result<Vec<Key>, Error> {
        let entities = entities
            .iter()
            .map(convert::entity_to_wit)
            .collect::<Result<Vec<_>, _>>()?;
        let bytes = entities.iter().map(|e| e.properties.len()).sum();
        crate::runtime::check_call_bytes("the batch's entities' properties", bytes)?;
        let result = self.call_put_many(&entities).await;
        convert::call_result(result, |keys| {
            keys.into_iter().map(convert::key_from_wit).collect()
        })
    }

    /// `delete-many`: deletes several entities in one atomic commit.
    pub async fn delete_many(&self, keys: &[Key]) -> Result<(), Error> {
        let keys: Vec<_> = keys.iter().map(convert::key_to_wit).collect();
        let result = self.call_delete_many(&keys).await;
        convert::call_result(result, Ok)
    }

    /// `entities`: one page of entities in key order, of every kind or of `kind`.
    pub async fn entities(
        &self,
        start: Option<&[u8]>,
        kind: Option<&str>,
    ) -> Result<EntityPage, Error> {
        let start = start.map(<[u8]>::to_vec);
        let result = self.call_entities(start.as_ref(), kind).await;
        convert::call_result(result, convert::entity_page_from_wit)
    }

    /// `query`: one page of `query`, served from the indexes.
    pub async fn query(&self, query: &Query) -> Result<QueryPage, Error> {
        trace_api!(M, "query");
        let query = convert::query_to_wit(query);
        let result = self.call_query(&query).await;
        convert::call_result(result, convert::query_page_from_wit)
    }

    /// `allocate-ids`: reserves `count` ids of `kind` in `namespace`; returns the first.
    pub async fn allocate_ids(
        &self,
        namespace: &str,
        kind: &str,
        count: u64,
    ) -> Result<u64, Error> {
        let result = self.call_allocate_ids(namespace, kind, count).await;
        convert::call_result(result, Ok)
    }

    /// `accounts.deposit`: adds `amount` to the balance of `account`.
    pub async fn deposit(&self, account: &Key, amount: i64) -> Result<i64, Error> {
        trace_api!(M, "deposit");
        self.exports.require_accounts()?;
        let account = convert::key_to_wit(account);
        let result = self.call_deposit(&account, amount).await;
        convert::call_result(result, Ok)
    }

    /// `accounts.transfer`: moves `amount` from `source` to `destination`.
    pub async fn transfer(
        &self,
        source: &Key,
        destination: &Key,
        amount: i64,
    ) -> Result<Receipt, Error> {
        trace_api!(M, "transfer");
        self.exports.require_accounts()?;
        let (source, destination) = (
            convert::key_to_wit(source),
            convert::key_to_wit(destination),
        );
        let result = self.call_transfer(&source, &destination, amount).await;
        convert::call_result(result, convert::receipt_from_wit)
    }

    /// `call`: the component's operation `name` on `input`.
    pub async fn call(
        &self,
        name: &str,
        input: &serde_json::Value,
    ) -> Result<serde_json::Value, Error> {
        trace_api!(M, "call({name})");
        let input = input.to_string();
        crate::runtime::check_call_bytes(&format!("the input of {name}"), input.len())?;
        let result = self.call_call(name, &input).await;
        convert::call_result(result, |output| convert::json_from_wit(name, &output))
    }

    /// `check`: the whole store, page by page (each page its own call).
    pub async fn check(&self) -> Result<CheckReport, Error> {
        let mut total = CheckReport::default();
        let mut start: Option<Vec<u8>> = None;
        loop {
            let result = self.call_check(start.as_ref()).await;
            let page = convert::call_result(result, Ok)?;
            match convert::merge_check_page(&mut total, page) {
                Some(next) => start = Some(next),
                None => return Ok(total),
            }
        }
    }

    /// `get-versioned`: each key's entity with the version of its row, in one round trip.
    pub async fn get_versioned(&self, keys: &[Key]) -> Result<Vec<Option<VersionedEntity>>, Error> {
        trace_api!(M, "get_versioned");
        let wit_keys: Vec<_> = keys.iter().map(convert::key_to_wit).collect();
        let result = self.call_get_versioned(&wit_keys).await;
        convert::call_result(result, |found| convert::versioned_from_wit(keys, found))
    }

    /// `put-if`: writes the entities in one atomic commit if every condition holds (else
    /// `FailedPrecondition`, and nothing is written); returns the commit's version.
    pub async fn put_if(&self, writes: &[(Entity, Condition)]) -> Result<u64, Error> {
        trace_api!(M, "put_if");
        let writes = writes
            .iter()
            .map(|(entity, condition)| {
                Ok((
                    convert::entity_to_wit(entity)?,
                    convert::condition_to_wit(*condition),
                ))
            })
            .collect::<Result<Vec<_>, Error>>()?;
        let bytes = writes.iter().map(|(e, _)| e.properties.len()).sum();
        crate::runtime::check_call_bytes("the batch's entities' properties", bytes)?;
        let result = self.call_put_if(&writes).await;
        convert::call_result(result, Ok)
    }

    /// `delete-if`: deletes the entities in one atomic commit if every condition holds;
    /// returns, per key, whether an entity was there.
    pub async fn delete_if(&self, deletes: &[(Key, Condition)]) -> Result<Vec<bool>, Error> {
        trace_api!(M, "delete_if");
        let deletes: Vec<_> = deletes
            .iter()
            .map(|(key, condition)| {
                (
                    convert::key_to_wit(key),
                    convert::condition_to_wit(*condition),
                )
            })
            .collect();
        let result = self.call_delete_if(&deletes).await;
        convert::call_result(result, Ok)
    }

    /// `count`: the number of results of `query` (up to its `limit`, after its `offset`),
    /// counted from the indexes, call after call until the count is complete.
    pub async fn count(&self, query: &Query) -> Result<u64, Error> {
        trace_api!(M, "count");
        let mut spec = convert::query_to_wit(query);
        let mut total = 0u64;
        loop {
            let result = self.call_count(&spec).await;
            let page = convert::call_result(result, Ok)?;
            total += page.count;
            let Some(next) = page.next_cursor else {
                return Ok(total);
            };
            if let Some(limit) = query.limit {
                match u64::from(limit).checked_sub(total) {
                    Some(left @ 1..) => spec.limit = Some(left as u32),
                    _ => return Ok(total),
                }
            }
            spec.start_cursor = Some(next);
            spec.offset = 0;
        }
    }

    /// `schema`: the kinds the component declares, as JSON (see `datastore.schema`).
    pub async fn schema(&self) -> Result<serde_json::Value, Error> {
        let result = self.call_schema().await;
        convert::call_result(result, |text| convert::json_from_wit("schema", &text))
    }

    /// `repair`: the whole store, page by page (each page its own call and, with `apply`,
    /// its own commit).
    pub async fn repair(&self, apply: bool) -> Result<RepairReport, Error> {
        trace_api!(M, "repair");
        let mut total = RepairReport::default();
        let mut start: Option<Vec<u8>> = None;
        loop {
            let result = self.call_repair(start.as_ref(), apply).await;
            let page = convert::call_result(result, Ok)?;
            total.written += page.written;
            total.deleted += page.deleted;
            match convert::merge_check_page(&mut total.check, page.check) {
                Some(next) => start = Some(next),
                None => return Ok(total),
            }
        }
    }

    /// `salvage`: one page of entities, skipping (and describing) rows that do not decode.
    pub async fn salvage(
        &self,
        start: Option<&[u8]>,
        kind: Option<&str>,
    ) -> Result<SalvagePage, Error> {
        let start = start.map(<[u8]>::to_vec);
        let result = self.call_salvage(start.as_ref(), kind).await;
        convert::call_result(result, convert::salvage_page_from_wit)
    }

    /// Admits a call and leases it an instance, its deadline armed.
    pub(crate) async fn begin(&self) -> Result<Call<'_, M>, Error> {
        let admission = self.mode.admit(self.engine()).await?;
        let mut instance = self.lease().await?;
        self.pool.arm(&mut instance);
        Ok(Call {
            instance,
            _admission: admission,
        })
    }

    /// Ends `call`, which ran to `result` (`None`: stopped at its deadline): gives the
    /// instance back, or drops it after a trap or a deadline.
    pub(crate) fn end<R>(
        &self,
        mut call: Call<'_, M>,
        result: Option<wasmtime::Result<R>>,
    ) -> Result<R, Error> {
        let Some(result) = result else {
            return Err(self.pool.deadline_error(call.instance.writes()));
        };
        // Read only when it is needed: for a failed call's error.
        let writes = if result.is_err() {
            call.instance.writes()
        } else {
            Default::default()
        };
        self.pool.give_back(call.instance, result.is_err());
        result.map_err(|err| self.pool.trap_error(err, writes))
    }

    /// The longest a call may run.
    pub(crate) fn deadline(&self) -> std::time::Duration {
        self.pool.options().deadline
    }

    /// An instance for one call: a warm one from the pool, or a fresh one in a fresh store.
    /// The caller gives it back to the pool when the call ends; an instance whose call never
    /// ends (a dropped future) is simply dropped, never reused.
    async fn lease(&self) -> Result<Box<Instance<HostState<M>, Exports>>, Error> {
        if let Some(instance) = self.pool.take() {
            return Ok(instance);
        }
        // With every slot of the process taken, idle instances (of any datastore) give theirs
        // up and the instantiation is tried once more.
        match self.instantiate().await {
            Err(err) if self.engine().release_idle_for(&err) => self.instantiate().await,
            result => result,
        }
    }

    /// A fresh instance in a fresh store.
    async fn instantiate(&self) -> Result<Box<Instance<HostState<M>, Exports>>, Error> {
        let options = self.pool.options();
        let state = HostState {
            store: Arc::clone(&self.store),
            ctx: InstanceCtx::new(options.memory_limit_bytes, self.engine().epochs().clone()),
            retry: self.retry,
        };
        let slots = self.engine().max_instances();
        let mut store = new_store(self.pre.engine(), state, options);
        let instance = M::instantiate(&self.pre, &mut store)
            .await
            .map_err(|err| Error::from_wasmtime(err, slots))?;
        let model = Exports::new(&mut store, instance, &self.exports)
            .map_err(|err| Error::from_wasmtime(err, slots))?;
        Ok(Box::new(Instance::new(store, model)))
    }
}

/// Links the imports both hosts implement the same way (`types`, `logging`) into `linker`.
fn add_shared_imports<T: HasInstanceCtx>(
    linker: &mut wasmtime::component::Linker<T>,
) -> wasmtime::Result<()> {
    fn log<T: HasInstanceCtx>(state: &mut T) -> &mut GuestLog {
        &mut state.ctx().log
    }
    crate::bindings::types::add_to_linker::<T, wasmtime::component::HasSelf<GuestLog>>(
        linker, log::<T>,
    )?;
    crate::bindings::logging::add_to_linker::<T, wasmtime::component::HasSelf<GuestLog>>(
        linker, log::<T>,
    )
}
