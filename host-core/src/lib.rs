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

pub mod bindings;
pub mod builder;
pub mod cli;
pub mod convert;
pub mod error;
pub mod instances;
pub mod logging;
pub mod runtime;
pub mod store;

pub use ds_model::{CheckReport, Entity, IdOrName, Key, PathElement};
pub use error::Error;
pub use instances::{InstanceOptions, Isolation};
pub use runtime::ComponentSource;
/// The properties of an entity: a JSON object.
pub type Properties = serde_json::Map<String, serde_json::Value>;

/// One page of a `Datastore::entities` listing: entities in key order and where
/// the next page starts (`None` after the last page; pass it back as `start`).
#[derive(Debug, Clone, PartialEq)]
pub struct EntityPage {
    /// The entities of this page, in key order.
    pub entities: Vec<Entity>,
    /// The opaque position of the next page.
    pub next: Option<Vec<u8>>,
}
