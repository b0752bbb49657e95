//! The result classes: `Entity`, `QueryPage`, `EntityPage`, `Receipt`, `CheckReport`.

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList};

use crate::convert;
use crate::key::Key;

/// An entity: its key and its properties (a dict of str to values).
#[pyclass(module = "ds", frozen, name = "Entity")]
pub struct Entity {
    /// The entity's key.
    #[pyo3(get)]
    pub key: Py<Key>,
    /// The entity's properties.
    #[pyo3(get)]
    pub properties: Py<PyDict>,
}

impl Entity {
    /// The Python form of a model entity.
    pub fn from_model(py: Python<'_>, entity: host_core::Entity) -> PyResult<Entity> {
        Ok(Entity {
            properties: convert::properties_to_py(py, &entity.properties)?.unbind(),
            key: Py::new(py, Key(entity.key))?,
        })
    }

    /// The model entity of this one's key and properties, converted afresh.
    pub fn to_model(&self, py: Python<'_>) -> PyResult<host_core::Entity> {
        let mut entity = host_core::Entity::new(self.key.get().0.clone());
        entity.properties = convert::properties(self.properties.bind(py), "", 0)?;
        Ok(entity)
    }
}

#[pymethods]
impl Entity {
    /// `Entity(key, properties=None)`: an entity to `put`.
    #[new]
    #[pyo3(signature = (key, properties = None))]
    fn new(
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        properties: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Entity> {
        Ok(Entity {
            key: Py::new(py, Key(crate::key::key_arg(key)?))?,
            properties: properties
                .map_or_else(|| PyDict::new(py), |p| p.clone())
                .unbind(),
        })
    }

    fn __getitem__<'py>(&self, py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyAny>> {
        self.properties.bind(py).as_any().get_item(name)
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!(
            "Entity({}, {})",
            self.key.bind(py).repr()?,
            self.properties.bind(py).repr()?
        ))
    }

    fn __eq__(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> PyResult<bool> {
        let Ok(other) = other.cast::<Entity>() else {
            return Ok(false);
        };
        let other = other.get();
        Ok(self.key.get().0 == other.key.get().0
            && self.properties.bind(py).eq(other.properties.bind(py))?)
    }
}

/// One page of query results.
#[pyclass(module = "ds", frozen, name = "QueryPage")]
pub struct QueryPage {
    /// The keys of the results, in query order.
    #[pyo3(get)]
    pub keys: Py<PyList>,
    /// The entities of the results, in query order (empty for keys-only queries).
    #[pyo3(get)]
    pub entities: Py<PyList>,
    /// The cursor after this page when more may follow (pass it as `start`), else `None`.
    #[pyo3(get)]
    pub next_cursor: Option<String>,
}

#[pymethods]
impl QueryPage {
    fn __repr__(&self, py: Python<'_>) -> String {
        format!(
            "QueryPage({} keys, {} entities, next_cursor={:?})",
            self.keys.bind(py).len(),
            self.entities.bind(py).len(),
            self.next_cursor
        )
    }
}

/// One page of an `entities` listing: entities in key order, and where the next page
/// starts (`None` after the last page).
#[pyclass(module = "ds", frozen, name = "EntityPage")]
pub struct EntityPage {
    /// The entities of this page, in key order.
    #[pyo3(get)]
    pub entities: Py<PyList>,
    /// The opaque position of the next page (pass it as `start`), or `None`.
    #[pyo3(get)]
    pub next: Option<Py<PyBytes>>,
}

/// What a transfer did.
#[pyclass(module = "ds", frozen, name = "Receipt", get_all)]
pub struct Receipt {
    /// The `Transfer` entity recording it, a child of the source account.
    pub transfer: Py<Key>,
    /// The source account's balance after the transfer.
    pub source_balance: i64,
    /// The destination account's balance after the transfer.
    pub destination_balance: i64,
}

#[pymethods]
impl Receipt {
    fn __repr__(&self) -> String {
        format!(
            "Receipt(transfer={}, source_balance={}, destination_balance={})",
            self.transfer.get().0,
            self.source_balance,
            self.destination_balance
        )
    }
}

/// The result of `check`: rows examined and every problem found.
#[pyclass(module = "ds", frozen, name = "CheckReport", get_all)]
pub struct CheckReport {
    /// Entity rows examined.
    pub entities: u64,
    /// Index rows examined.
    pub index_rows: u64,
    /// Problems found, each naming the row and what is wrong (empty: the store is sound).
    pub problems: Vec<String>,
}

#[pymethods]
impl CheckReport {
    fn __repr__(&self) -> String {
        format!(
            "CheckReport(entities={}, index_rows={}, problems={:?})",
            self.entities, self.index_rows, self.problems
        )
    }
}
