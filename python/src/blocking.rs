//! `ds.Datastore`: the blocking face. Each call runs on the calling thread with the GIL
//! released, so other Python threads run meanwhile (and a Python store takes it back for
//! each of its methods).

use std::sync::{Arc, Mutex};

use host_core::mode::complete;
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::PyString;

use crate::convert;
use crate::errors::to_py;
use crate::key::{key_arg, keys_arg};
use crate::methods::datastore_methods;
use crate::ops::{self, Op, Pager};
use crate::options::Options;
use crate::store::PyStore;

/// A datastore: the model component over a store, called blocking.
///
/// Open it with `Datastore.open(store)`: a URL (`"sqlite:ds.db"`, the default;
/// `"postgres://…"`; `"memory:"`) or a store object of your own. Safe to share between
/// threads; each call blocks its thread (never the others: the GIL is released).
#[pyclass(module = "ds", frozen, name = "Datastore")]
pub struct Datastore {
    db: ds::Datastore,
}

impl Datastore {
    fn run<'py>(&self, py: Python<'py>, op: Op) -> PyResult<Bound<'py, PyAny>> {
        let db = &self.db;
        let output = py.detach(|| complete(ops::run(db, op))).map_err(to_py)?;
        output.into_pyobject(py)
    }

    /// The Rust datastore behind this one (for the benchmark's Rust-side loop).
    pub fn rust(&self) -> &ds::Datastore {
        &self.db
    }

    fn pages(&self, op: Op, entities: bool) -> Pages {
        Pages {
            db: self.db.clone(),
            pager: Arc::new(Mutex::new(Pager::new(op))),
            entities,
        }
    }
}

datastore_methods!(Datastore, {
    /// Opens a datastore over `store`: a URL (default `sqlite:ds.db`) or a store object
    /// with `get`, `scan`, `commit` (and optionally `get_many`) methods. `component` runs
    /// another build of the model component; `transaction_retries` sets how often a lost
    /// commit race is retried.
    #[staticmethod]
    #[pyo3(signature = (store = None, *, component = None, transaction_retries = None))]
    fn open(
        py: Python<'_>,
        store: Option<&Bound<'_, PyAny>>,
        component: Option<std::path::PathBuf>,
        transaction_retries: Option<u32>,
    ) -> PyResult<Datastore> {
        let options = Options::new(component, transaction_retries);
        let mut builder = options.apply(ds::Datastore::builder());
        match store {
            None => {}
            Some(url) if url.is_instance_of::<PyString>() => {
                builder = builder.store_url(&url.extract::<String>()?);
            }
            Some(store) => builder = builder.store(Arc::new(PyStore::new(store)?)),
        }
        let db = py.detach(|| builder.build()).map_err(to_py)?;
        Ok(Datastore { db })
    }

    fn __repr__(&self) -> String {
        "ds.Datastore".into()
    }
});

/// Pages of a query, or the entities of a listing, fetched as iteration needs them.
#[pyclass(module = "ds", frozen, name = "Pages")]
pub struct Pages {
    db: ds::Datastore,
    pager: Arc<Mutex<Pager>>,
    /// Yield entities one by one rather than pages.
    entities: bool,
}

#[pymethods]
impl Pages {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        let (db, pager, entities) = (&self.db, &self.pager, self.entities);
        let next = py.detach(|| {
            let mut pager = pager
                .lock()
                .map_err(|_| PyRuntimeError::new_err("an earlier page failed mid-way"))?;
            if entities {
                complete(pager.next_entity(db))
                    .map(|entity| entity.map(|e| ops::Output::Entity(Some(e))))
                    .map_err(to_py)
            } else {
                complete(pager.next_page(db)).map_err(to_py)
            }
        })?;
        next.map(|output| output.into_pyobject(py)).transpose()
    }
}
