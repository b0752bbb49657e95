//! The model component's exports, as the core calls them: looked up on an instance only
//! when first called, and type-checked once per component instead of once per instance.
//!
//! Why not the bindgen `Model`: `ModelPre::instantiate` looks up and type-checks all 13
//! exports on every instantiation (a fifth of the instructions of a `get` in per-call
//! isolation), though a call uses one and the types are a property of the component. Here
//! [`ExportIndices`] resolves the names once per datastore, the first instance type-checks
//! every export against the signatures below (with wasmtime's own check), and later
//! instances only look up the export they call. The types are the bindgen-generated ones
//! from [`crate::bindings::types`], so values convert exactly as before.

use std::sync::{Arc, OnceLock};

use wasmtime::component::{ComponentExportIndex, Func, Instance, InstancePre, TypedFunc};

use crate::bindings::types::{
    CheckReport, Condition, CountPage, Entity, EntityPage, Error, Key, KvKey, Properties,
    QueryPage, QuerySpec, Receipt, RepairReport, SalvagePage, StoredProperties,
};
use std::future::{Future, Ready, ready};

use crate::contract::{ACCOUNTS, DATASTORE};
use crate::core::{Core, HostState};
use crate::mode::{Async, Blocking, Mode};

/// Declares the exports once: the index table, the one-time type check, and per export one
/// call method of [`Core`], in whichever [`Mode`] it runs.
macro_rules! model_exports {
    ($(
        $(#[$doc:meta])*
        $variant:ident: $interface:ident $name:literal,
        $method:ident ($($arg:ident: $arg_ty:ty),*) -> $ret:ty;
    )*) => {
        /// One export of the model world.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub(crate) enum Export {
            $($variant,)*
        }

        /// Every export: its interface and function name.
        const EXPORTS: &[(Export, &str, &str)] = &[$((Export::$variant, $interface, $name),)*];

        /// Checks every export `instance` has against the signatures the calls use.
        fn typecheck(
            store: &mut impl wasmtime::AsContextMut,
            instance: &Instance,
            indices: &[Option<ComponentExportIndex>],
        ) -> wasmtime::Result<()> {
            $(
                if let Some(index) = &indices[Export::$variant as usize] {
                    instance.get_typed_func::<($($arg_ty,)*), ($ret,)>(&mut *store, index)?;
                }
            )*
            Ok(())
        }

        /// The model's export calls, as a [`Mode`] makes them: an ordinary call on the
        /// calling thread ([`Blocking`]) or an awaited call on a fiber ([`Async`]).
        pub trait ExportCalls: Mode {
            $(
                $(#[$doc])*
                fn $method(
                    exports: &mut Exports,
                    store: &mut wasmtime::Store<HostState<Self>>,
                    $($arg: $arg_ty),*
                ) -> impl Future<Output = wasmtime::Result<$ret>> + Send;
            )*
        }

        // The futures are spelled `Ready`: each call is made before its future is returned.
        #[allow(refining_impl_trait)]
        impl ExportCalls for Blocking {
            $(
                fn $method(
                    exports: &mut Exports,
                    store: &mut wasmtime::Store<HostState<Self>>,
                    $($arg: $arg_ty),*
                ) -> Ready<wasmtime::Result<$ret>> {
                    let mut call = || {
                        // SAFETY: the signature `typecheck` checks for this export.
                        let typed = unsafe {
                            exports.typed::<($($arg_ty,)*), ($ret,)>(&mut *store, Export::$variant)?
                        };
                        let (ret,) = typed.call(&mut *store, ($($arg,)*))?;
                        Ok(ret)
                    };
                    ready(call())
                }
            )*
        }

        impl ExportCalls for Async {
            $(
                async fn $method(
                    exports: &mut Exports,
                    store: &mut wasmtime::Store<HostState<Self>>,
                    $($arg: $arg_ty),*
                ) -> wasmtime::Result<$ret> {
                    // SAFETY: the signature `typecheck` checks for this export.
                    let typed = unsafe {
                        exports.typed::<($($arg_ty,)*), ($ret,)>(&mut *store, Export::$variant)?
                    };
                    let (ret,) = typed.call_async(&mut *store, ($($arg,)*)).await?;
                    Ok(ret)
                }
            )*
        }

        impl<M: ExportCalls> Core<M> {
            $(
                $(#[$doc])*
                pub(crate) async fn $method(&self, $($arg: $arg_ty),*) -> Result<$ret, crate::Error> {
                    let mut call = self.begin().await?;
                    let instance = &mut call.instance;
                    let run = M::$method(&mut instance.model, &mut instance.store, $($arg),*);
                    let result = M::within(self.deadline(), run).await;
                    self.end(call, result)
                }
            )*
        }
    };
}

model_exports! {
    /// `datastore.get`
    Get: DATASTORE "get",
        call_get(key: &[u8]) -> Result<Option<Properties>, Error>;
    /// `datastore.put`
    Put: DATASTORE "put",
        call_put(entity: &Entity) -> Result<Key, Error>;
    /// `datastore.delete`
    Delete: DATASTORE "delete",
        call_delete(key: &[u8]) -> Result<(), Error>;
    /// `datastore.get-many`
    GetMany: DATASTORE "get-many",
        call_get_many(keys: &[Key]) -> Result<Vec<Option<Properties>>, Error>;
    /// `datastore.put-many`
    PutMany: DATASTORE "put-many",
        call_put_many(entities: &[Entity]) -> Result<Vec<Key>, Error>;
    /// `datastore.delete-many`
    DeleteMany: DATASTORE "delete-many",
        call_delete_many(keys: &[Key]) -> Result<(), Error>;
    /// `datastore.entities`
    Entities: DATASTORE "entities",
        call_entities(start: Option<&KvKey>, kind: Option<&str>) -> Result<EntityPage, Error>;
    /// `datastore.query`
    Query: DATASTORE "query",
        call_query(query: &QuerySpec) -> Result<QueryPage, Error>;
    /// `datastore.allocate-ids`
    AllocateIds: DATASTORE "allocate-ids",
        call_allocate_ids(namespace: &str, kind: &str, count: u64) -> Result<u64, Error>;
    /// `datastore.call`
    Call: DATASTORE "call",
        call_call(name: &str, input: &str) -> Result<String, Error>;
    /// `datastore.check`
    Check: DATASTORE "check",
        call_check(start: Option<&KvKey>) -> Result<CheckReport, Error>;
    /// `datastore.get-versioned`
    GetVersioned: DATASTORE "get-versioned",
        call_get_versioned(keys: &[Key]) -> Result<Vec<Option<StoredProperties>>, Error>;
    /// `datastore.put-if`
    PutIf: DATASTORE "put-if",
        call_put_if(writes: &[(Entity, Condition)]) -> Result<u64, Error>;
    /// `datastore.delete-if`
    DeleteIf: DATASTORE "delete-if",
        call_delete_if(deletes: &[(Key, Condition)]) -> Result<Vec<bool>, Error>;
    /// `datastore.count`
    Count: DATASTORE "count",
        call_count(query: &QuerySpec) -> Result<CountPage, Error>;
    /// `datastore.schema`
    Schema: DATASTORE "schema",
        call_schema() -> Result<String, Error>;
    /// `datastore.repair`
    Repair: DATASTORE "repair",
        call_repair(start: Option<&KvKey>, apply: bool) -> Result<RepairReport, Error>;
    /// `datastore.salvage`
    Salvage: DATASTORE "salvage",
        call_salvage(start: Option<&KvKey>, kind: Option<&str>) -> Result<SalvagePage, Error>;
    /// `accounts.deposit`
    Deposit: ACCOUNTS "deposit",
        call_deposit(account: &[u8], amount: i64) -> Result<i64, Error>;
    /// `accounts.transfer`
    Transfer: ACCOUNTS "transfer",
        call_transfer(source: &[u8], destination: &[u8], amount: i64) -> Result<Receipt, Error>;
}

/// The interface a component may lack: the example application's `accounts` (world `bank`).
/// A component of world `model` runs without it; only `deposit` and `transfer` then fail.
const OPTIONAL_INTERFACE: &str = ACCOUNTS;

/// What `deposit` and `transfer` answer (as `not-found`) on a component without `accounts`.
const NO_ACCOUNTS: &str = "the component does not export the example application's \
    `accounts` interface (world `bank`), so deposit and transfer are not there; its own \
    operations are reached with `call`";

/// Where each export sits in a component, resolved once per datastore.
#[derive(Debug)]
pub struct ExportIndices {
    /// `None` for the exports of [`OPTIONAL_INTERFACE`] when the component lacks it.
    indices: Vec<Option<ComponentExportIndex>>,
    /// Set once an instance of the component passed [`typecheck`].
    checked: OnceLock<()>,
}

impl ExportIndices {
    /// Resolves every export of the `model` world, and of `accounts` if the component has
    /// it, in `pre`'s component; fails naming the first one the component lacks.
    pub fn new<T>(pre: &InstancePre<T>) -> wasmtime::Result<Arc<Self>> {
        let component = pre.component();
        let mut indices = Vec::with_capacity(EXPORTS.len());
        for (position, (export, interface, name)) in EXPORTS.iter().enumerate() {
            debug_assert_eq!(*export as usize, position);
            let Some(instance) = component.get_export_index(None, interface) else {
                if *interface == OPTIONAL_INTERFACE {
                    indices.push(None);
                    continue;
                }
                return Err(wasmtime::format_err!(
                    "the component does not export `{interface}`"
                ));
            };
            let Some(func) = component.get_export_index(Some(&instance), name) else {
                return Err(wasmtime::format_err!(
                    "the component's `{interface}` has no function `{name}`"
                ));
            };
            indices.push(Some(func));
        }
        Ok(Arc::new(ExportIndices {
            indices,
            checked: OnceLock::new(),
        }))
    }

    /// `Ok` if the component exports the example application's `accounts` (`deposit` and
    /// `transfer`), else the `not-found` error both hosts answer those calls with.
    pub fn require_accounts(&self) -> Result<(), crate::Error> {
        match self.indices[Export::Deposit as usize] {
            Some(_) => Ok(()),
            None => Err(crate::Error::NotFound(NO_ACCOUNTS.into())),
        }
    }
}

/// The exports of one instance, each looked up when first called.
pub struct Exports {
    instance: Instance,
    indices: Arc<ExportIndices>,
    funcs: [Option<Func>; EXPORTS.len()],
}

impl Exports {
    /// The exports of `instance`, a fresh instance of the component `indices` were made for.
    /// The first instance of a component type-checks every export.
    pub fn new(
        store: &mut impl wasmtime::AsContextMut,
        instance: Instance,
        indices: &Arc<ExportIndices>,
    ) -> wasmtime::Result<Self> {
        if indices.checked.get().is_none() {
            typecheck(store, &instance, &indices.indices)?;
            let _ = indices.checked.set(());
        }
        Ok(Exports {
            instance,
            indices: Arc::clone(indices),
            funcs: [None; EXPORTS.len()],
        })
    }

    /// `export` as a typed function, without a type check.
    ///
    /// # Safety
    /// `Params` and `Return` must be the signature `typecheck` checked for `export` (the
    /// methods `model_exports!` generates pass exactly that).
    pub(crate) unsafe fn typed<Params, Return>(
        &mut self,
        store: &mut impl wasmtime::AsContextMut,
        export: Export,
    ) -> wasmtime::Result<TypedFunc<Params, Return>>
    where
        Params: wasmtime::component::ComponentNamedList + wasmtime::component::Lower,
        Return: wasmtime::component::ComponentNamedList + wasmtime::component::Lift,
    {
        let func = self.func(store, export)?;
        // SAFETY: the first instance of this component checked this export's type against
        // these parameter and result types (`typecheck`, from `Exports::new`; the caller
        // passes that signature), and every instance of a component has the same types.
        Ok(unsafe { TypedFunc::new_unchecked(func) })
    }

    fn func(
        &mut self,
        store: &mut impl wasmtime::AsContextMut,
        export: Export,
    ) -> wasmtime::Result<Func> {
        let slot = &mut self.funcs[export as usize];
        if let Some(func) = *slot {
            return Ok(func);
        }
        let func = self.indices.indices[export as usize]
            .as_ref()
            .and_then(|index| self.instance.get_func(&mut *store, index))
            .ok_or_else(|| wasmtime::format_err!("the instance lacks the export {export:?}"))?;
        *slot = Some(func);
        Ok(func)
    }
}
