//! `ads.Datastore`: the asyncio face. Each call returns an awaitable at once; the call runs
//! on ds's tokio runtime and never blocks the event loop. Cancelling the awaitable drops
//! the call: a commit is whole or absent, and the instance is freed, as in Rust.

use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::PyString;

use crate::bridge::{self, Bridge};
use crate::convert;
use crate::errors::to_py;
use crate::key::{key_arg, keys_arg};
use crate::methods::datastore_methods;
use crate::ops::{self, Op, Output, Pager};
use crate::options::Options;
use crate::store::PyAsyncStore;

/// A datastore: the model component over a store, called from asyncio.
///
/// Open it with `await Datastore.open(store)`: a URL (`"sqlite:ds.db"`, the default;
/// `"postgres://…"`; `"memory:"`) or a store object of your own whose methods are
/// `async def` (or plain). Every method returns an awaitable.
#[pyclass(module = "ads", frozen, name = "Datastore")]
pub struct AsyncDatastore {
    db: ads::Datastore,
    /// The event loop this datastore was opened on, where its results are delivered.
    bridge: Arc<Bridge>,
}

impl AsyncDatastore {
    fn run<'py>(&self, py: Python<'py>, op: Op) -> PyResult<Bound<'py, PyAny>> {
        self.bridge.check_loop(py)?;
        let db = self.db.clone();
        self.bridge
            .spawn(py, async move { ops::run(&db, op).await.map_err(to_py) })
    }

    fn pages(&self, op: Op, entities: bool) -> Pages {
        Pages {
            db: self.db.clone(),
            bridge: Arc::clone(&self.bridge),
            pager: Arc::new(tokio::sync::Mutex::new(Pager::new(op))),
            entities,
        }
    }
}

datastore_methods!(AsyncDatastore, {
    /// Opens a datastore over `store` (awaitable): a URL (default `sqlite:ds.db`) or a
    /// store object whose `get`, `scan`, `commit` (and optional `get_many`) methods are
    /// `async def` or plain; its coroutines run on the event loop running now.
    /// `max_in_flight` bounds this datastore's concurrent calls (more wait).
    #[staticmethod]
    #[pyo3(signature = (store = None, *, component = None, transaction_retries = None, max_in_flight = None))]
    fn open<'py>(
        py: Python<'py>,
        store: Option<&Bound<'py, PyAny>>,
        component: Option<std::path::PathBuf>,
        transaction_retries: Option<u32>,
        max_in_flight: Option<usize>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let bridge = Bridge::to_running_loop(py)?;
        let options = Options::new(component, transaction_retries);
        let mut builder = options.apply(ads::Datastore::builder());
        if let Some(calls) = max_in_flight {
            builder = builder.max_in_flight(calls);
        }
        match store {
            None => {}
            Some(url) if url.is_instance_of::<PyString>() => {
                builder = builder.store_url(&url.extract::<String>()?);
            }
            Some(store) => {
                builder = builder.store(Arc::new(PyAsyncStore::new(store, Arc::clone(&bridge))?))
            }
        }
        let opened = Arc::clone(&bridge);
        bridge.spawn(py, async move {
            let db = builder.build().await.map_err(to_py)?;
            Ok(AsyncDatastore { db, bridge: opened })
        })
    }

    fn __repr__(&self) -> String {
        "ads.Datastore".into()
    }
});

/// Pages of a query, or the entities of a listing, fetched as `async for` needs them.
#[pyclass(module = "ads", frozen, name = "Pages")]
pub struct Pages {
    db: ads::Datastore,
    bridge: Arc<Bridge>,
    pager: Arc<tokio::sync::Mutex<Pager>>,
    /// Yield entities one by one rather than pages.
    entities: bool,
}

#[pymethods]
impl Pages {
    fn __aiter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __anext__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.bridge.check_loop(py)?;
        let (db, pager, entities) = (self.db.clone(), Arc::clone(&self.pager), self.entities);
        self.bridge.spawn(py, async move {
            let mut pager = pager.lock().await;
            let next = if entities {
                pager
                    .next_entity(&db)
                    .await
                    .map(|entity| entity.map(|e| Output::Entity(Some(e))))
            } else {
                pager.next_page(&db).await
            };
            next.map_err(to_py)?.ok_or_else(bridge::stop_iteration)
        })
    }
}
