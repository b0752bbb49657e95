//! Host bindings of the `ds:datastore` world, generated twice from the same WIT.
//!
//! As in `wasmtime-wasi`: the async run marks only the transport, the one interface that
//! really waits, as `async`; the sync run reuses the async run's `types` and `logging`
//! (nothing there blocks), so both hosts share every data type and one logging
//! implementation, and differ only in the transport trait and the export calls.
#![allow(missing_docs)]

/// Bindings for the async host: transport imports are `async fn`, export calls are awaited.
pub mod asynchronous {
    wasmtime::component::bindgen!({
        path: "wit",
        world: "model",
        imports: {
            "ds:datastore/transport": async,
        },
        exports: { default: async },
    });
}

/// Bindings for the blocking host: every import and export call is an ordinary call.
pub mod blocking {
    wasmtime::component::bindgen!({
        path: "wit",
        world: "model",
        with: {
            "ds:datastore/types": super::asynchronous::ds::datastore::types,
            "ds:datastore/logging": super::asynchronous::ds::datastore::logging,
        },
        require_store_data_send: true,
    });
}

pub use asynchronous::ds::datastore::logging;
pub use asynchronous::ds::datastore::types;
