//! The Python binding of ds: the extension module `ds._native`, which the Python packages
//! `ds` (blocking) and `ads` (asyncio) re-export.
//!
//! It wraps the Rust hosts and never re-implements them: `ds.Datastore` is
//! `ds::Datastore` with the GIL released around each call, `ads.Datastore` is
//! `ads::Datastore` with each call a tokio task behind an asyncio awaitable. Both run the
//! same operations ([`ops`], written once over `host_core::face::Face`), take the same
//! Python values ([`convert`]) and raise the same exceptions ([`errors`]). A Python object
//! can be the store ([`store`]).

mod asynchronous;
mod blocking;
mod bridge;
mod convert;
mod errors;
mod key;
mod logging;
mod methods;
mod ops;
mod options;
mod store;
mod types;

use pyo3::prelude::*;

/// For `python/bench.py` only: `iterations` gets of `key` in a Rust loop, with the GIL
/// released, through the same `ds::Datastore` as `datastore`; returns the seconds taken.
/// The Rust baseline that Python `get`s are measured against, side by side.
#[pyfunction]
fn _bench_get(
    py: Python<'_>,
    datastore: &Bound<'_, blocking::Datastore>,
    key: &Bound<'_, PyAny>,
    iterations: u64,
) -> PyResult<f64> {
    let key = key::key_arg(key)?;
    let db = datastore.get().rust();
    py.detach(|| {
        let started = std::time::Instant::now();
        for _ in 0..iterations {
            std::hint::black_box(db.get(&key)?);
        }
        Ok(started.elapsed().as_secs_f64())
    })
    .map_err(errors::to_py)
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<blocking::Datastore>()?;
    m.add(
        "AsyncDatastore",
        m.py().get_type::<asynchronous::AsyncDatastore>(),
    )?;
    m.add_class::<blocking::Pages>()?;
    m.add("AsyncPages", m.py().get_type::<asynchronous::Pages>())?;
    m.add_class::<key::Key>()?;
    m.add_class::<types::Entity>()?;
    m.add_class::<types::QueryPage>()?;
    m.add_class::<types::EntityPage>()?;
    m.add_class::<types::Receipt>()?;
    m.add_class::<types::CheckReport>()?;
    m.add_function(wrap_pyfunction!(logging::enable_logging, m)?)?;
    m.add_function(wrap_pyfunction!(_bench_get, m)?)?;
    // From interpreter exit on, threads without the GIL must not take it (see `bridge`).
    let mark_exiting = wrap_pyfunction!(bridge::_mark_exiting, m)?;
    m.py()
        .import("atexit")?
        .call_method1("register", (mark_exiting,))?;
    m.add("MAX_DEPTH", convert::MAX_DEPTH)?;
    errors::register(m)?;
    Ok(())
}
