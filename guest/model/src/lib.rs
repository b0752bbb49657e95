//! The ds model logic, written once.
//!
//! Compiled to `wasm32-wasip2` inside the `ds-guest` component, it is what both hosts run
//! (`ds`, blocking; `ads`, async). Compiled natively it is an ordinary library, so its unit
//! tests, the hosts' key syntax and the benchmarks' native baseline use the very same code.
//!
//! The logic only ever talks to a [`Transport`]: an ordered key-value store with optimistic
//! commits. In the component the transport is the imported WIT interface; natively it is
//! whatever implements the trait (see [`transport::MemoryTransport`]).
//!
//! Architecture invariant: nothing here does I/O, reads a clock or the environment; every
//! effect goes through [`Transport`] or [`Log`].
#![cfg_attr(test, allow(clippy::unwrap_used))]
#![cfg_attr(target_arch = "wasm32", no_std)]

extern crate alloc;

pub mod app;
pub mod encoding;
pub mod entity;
pub mod error;
pub mod fuzz;
pub mod index;
pub mod json;
pub mod key;
pub mod model;
pub mod query;
pub mod schema;
pub mod transport;
mod typed_json;
pub mod value;

pub use app::{App, Args};
pub use entity::Entity;
pub use error::Error;
pub use key::{IdOrName, Key, PathElement};
pub use model::{CheckReport, Condition, EntityPage, Model, QueryPage, Transaction};
pub use query::{Filter, Op, Order, Query};
pub use schema::Schema;
pub use transport::{Check, Direction, Level, Log, StoreError, Transport, Versioned, Write};
pub use value::Value;
