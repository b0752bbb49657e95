//! What both ds hosts share, written once: the bindings of the WIT world, the engine and the
//! component cache, conversions between WIT and Rust types, the guest's logging, the stores,
//! and the command line.
//!
//! `host-sync` (`ds`) and `host-async` (`ads`) add only what differs: how the transport is
//! called (blocking or awaited) and how the model's exports are called.
//!
//! Architecture invariant: nothing here knows how entities are encoded or queried; that is
//! the guest's job. The one exception is read-only: trace lines and errors render transport
//! keys with the guest crate's key decoder.
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod affine;
pub mod bindings;
pub mod builder;
pub mod cli;
pub mod convert;
pub mod error;
pub mod exports;
pub mod instances;
pub mod logging;
pub mod retry;
pub mod runtime;
pub mod store;

pub use ds_model::query::{Filter, Op, Order};
pub use ds_model::schema::Direction;
pub use ds_model::value::{Properties, Value};
pub use ds_model::{CheckReport, Entity, IdOrName, Key, PathElement, Query};
pub use error::Error;
pub use instances::{InstanceOptions, Isolation};
pub use retry::RetryPolicy;
pub use runtime::ComponentSource;

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
