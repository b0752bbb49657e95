//! The host, written once: the bindings of the WIT world, the engine and the component
//! cache, the instance pool, conversions between WIT and Rust types, the guest's logging,
//! and [`Core`](core::Core), the datastore both hosts are faces of.
//!
//! The core is `async` code over a [`Mode`](mode::Mode): [`Blocking`](mode::Blocking) (the
//! `ds` host, which runs each call with [`complete`](mode::complete)) or
//! [`Async`](mode::Async) (the `ads` host, which awaits it). `ds-host` and `ads-host`
//! hold only their builders and one-line methods; the stores are the `ds-store` crate.
//!
//! Module graph (no cycles): `error`, `gate` (the bound on `ads` calls in flight) and
//! `contract` (the WIT version these hosts run) are leaves; `runtime` uses `error`;
//! `logging` uses the bindings; `engine` (an engine with its epoch ticker, component memo
//! and registry of pools) uses `runtime`, `gate` and `contract`; `ctx` (the per-instance
//! context) uses `error`, `logging` and `runtime`; `instances` uses `ctx` and `engine`;
//! `mode`, `core`, `exports` and `transport` sit on top; `face` (the trait both hosts'
//! `Datastore`s implement) uses only the API types.
//!
//! Architecture invariant: nothing here knows how entities are encoded or queried; that is
//! the guest's job. The one exception is the key: the contract's `key` is its transport
//! encoding, which the host writes and reads with the guest crate's own encoder and decoder
//! (never one of its own), and trace lines and errors render transport keys with it.
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod answer;
pub mod bindings;
pub mod builder;
pub mod contract;
pub mod convert;
pub mod core;
pub mod ctx;
pub mod engine;
pub mod error;
pub mod exports;
pub mod face;
pub mod gate;
pub mod instances;
pub mod logging;
pub mod mode;
pub mod retry;
pub mod runtime;
mod transport;

pub use ds_store as store;

/// The types of the host API, which both faces re-export whole (`pub use host_core::api::*`),
/// so `ds::Key` and `ads::Key` are one type.
pub mod api {
    pub use crate::bindings::types as wit;
    pub use crate::store;
    pub use crate::{
        BoundExceeded, CONTRACT, CheckReport, ComponentSource, Condition, Direction, Engine,
        EngineOptions, Entity, EntityPage, Error, Filter, IdOrName, InstanceOptions, Isolation,
        Key, Op, Order, PathElement, Properties, Query, QueryPage, Receipt, RepairReport,
        RetryPolicy, SalvagePage, Value, VersionedEntity, Writes,
    };
}

pub use contract::CONTRACT;
pub use ds_model::query::{Filter, Op, Order};
pub use ds_model::schema::Direction;
pub use ds_model::value::{Properties, Value};
pub use ds_model::{CheckReport, Condition, Entity, IdOrName, Key, PathElement, Query};
pub use engine::Engine;
pub use error::{BoundExceeded, Error, Writes};
pub use instances::{InstanceOptions, Isolation};
pub use retry::RetryPolicy;
pub use runtime::{ComponentSource, EngineOptions};

/// One page of query results.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryPage {
    /// The keys of the results, in query order.
    pub keys: Vec<Key>,
    /// The entities of the results, in query order (empty for keys-only queries).
    pub entities: Vec<Entity>,
    /// The cursor after the last result when the page is full and more may follow: pass it
    /// as the next query's `start`, with `offset` 0 (`None`: the query is exhausted).
    pub next_cursor: Option<String>,
}

/// An entity and the version of its stored row (`Datastore::get_versioned`): what a conditional
/// write (`Datastore::put_if`, `Datastore::delete_if`) names as
/// [`Condition::Version`] to replace exactly what was read.
#[derive(Debug, Clone, PartialEq)]
pub struct VersionedEntity {
    /// The entity.
    pub entity: Entity,
    /// The version of the commit that last wrote it; it changes with every write.
    pub version: u64,
}

/// What `Datastore::repair` found and did over the whole store.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RepairReport {
    /// What the check found (problems repaired or not), as `check` reports it.
    pub check: CheckReport,
    /// Index rows written back (missing, or with the wrong value); without `apply`, that
    /// would be.
    pub written: u64,
    /// Index rows deleted (stale, or naming no entity); without `apply`, that would be.
    pub deleted: u64,
}

/// One page of `Datastore::salvage`: the entities that decode, and the rows that did not.
#[derive(Debug, Clone, PartialEq)]
pub struct SalvagePage {
    /// The entities of this page that decode, in key order.
    pub entities: Vec<Entity>,
    /// The entity rows of this page that do not decode, each described.
    pub skipped: Vec<String>,
    /// The opaque position of the next page.
    pub next: Option<Vec<u8>>,
}

/// What a transfer did (the example application's `transfer`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// The `Transfer` entity recording it, a child of the source account.
    pub transfer: Key,
    /// The source account's balance after the transfer.
    pub source_balance: i64,
    /// The destination account's balance after the transfer.
    pub destination_balance: i64,
}

/// One page of a `Datastore::entities` listing: entities in key order and where
/// the next page starts (`None` after the last page; pass it back as `start`).
#[derive(Debug, Clone, PartialEq)]
pub struct EntityPage {
    /// The entities of this page, in key order.
    pub entities: Vec<Entity>,
    /// The opaque position of the next page.
    pub next: Option<Vec<u8>>,
}
