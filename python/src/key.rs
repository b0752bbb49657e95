//! `ds.Key`: an entity key, the model's own `Key` type behind a Python class.

use std::hash::{DefaultHasher, Hash, Hasher};

use ds_model::key::{IdOrName, PathElement};
use pyo3::basic::CompareOp;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyInt, PyString, PyTuple};

use crate::errors::InvalidKey;

/// An entity key: a namespace and a path of (kind, id or name) pairs, ancestors first.
///
/// `Key("Account", "alice")`, `Key("Account", "alice", "Transfer", 7)`,
/// `Key.parse("Account:alice/Transfer:7")`. Immutable, hashable and ordered as the
/// datastore orders keys.
#[pyclass(module = "ds", frozen, name = "Key")]
#[derive(Clone)]
pub struct Key(pub ds_model::Key);

/// A key argument: a `Key`, or its string form (the human syntax or the URL-safe form).
pub fn key_arg(obj: &Bound<'_, PyAny>) -> PyResult<ds_model::Key> {
    if let Ok(key) = obj.cast::<Key>() {
        return Ok(key.get().0.clone());
    }
    if let Ok(text) = obj.cast::<PyString>() {
        return ds_model::Key::parse_any(&text.to_cow()?)
            .map_err(|err| InvalidKey::new_err(format!("invalid key: {err}")));
    }
    Err(PyTypeError::new_err(format!(
        "a key is a ds.Key or a str such as \"Account:alice\", not {}",
        obj.get_type().name()?
    )))
}

/// Several key arguments.
pub fn keys_arg(obj: &Bound<'_, PyAny>) -> PyResult<Vec<ds_model::Key>> {
    if obj.is_instance_of::<PyString>() {
        return Err(PyTypeError::new_err(
            "expected an iterable of keys, not a single str",
        ));
    }
    obj.try_iter()?.map(|item| key_arg(&item?)).collect()
}

fn element(kind: &Bound<'_, PyAny>, id: &Bound<'_, PyAny>) -> PyResult<PathElement> {
    let kind: String = kind
        .cast::<PyString>()
        .map_err(|_| PyTypeError::new_err("a key's kinds are str"))?
        .to_cow()?
        .into_owned();
    let id = if id.is_instance_of::<PyBool>() {
        return Err(PyTypeError::new_err(
            "a key's id is an int or a str, not a bool",
        ));
    } else if id.is_instance_of::<PyInt>() {
        IdOrName::Id(id.extract::<u64>().map_err(|_| {
            PyValueError::new_err(format!("a key's id is a positive 64-bit int, not {id}"))
        })?)
    } else if let Ok(name) = id.cast::<PyString>() {
        IdOrName::Name(name.to_cow()?.into_owned())
    } else {
        return Err(PyTypeError::new_err(format!(
            "a key's id is an int or a str, not {}",
            id.get_type().name()?
        )));
    };
    Ok(PathElement { kind, id })
}

fn id_to_py<'py>(py: Python<'py>, id: &IdOrName) -> PyResult<Bound<'py, PyAny>> {
    Ok(match id {
        IdOrName::Id(id) => id.into_pyobject(py)?.into_any(),
        IdOrName::Name(name) => PyString::new(py, name).into_any(),
    })
}

#[pymethods]
impl Key {
    /// `Key(kind, id_or_name, [kind, id_or_name, ...], parent=None, namespace="")`.
    #[new]
    #[pyo3(signature = (*path, parent = None, namespace = None))]
    fn new(
        path: &Bound<'_, PyTuple>,
        parent: Option<&Bound<'_, Key>>,
        namespace: Option<String>,
    ) -> PyResult<Key> {
        if path.is_empty() || path.len() % 2 != 0 {
            return Err(PyTypeError::new_err(
                "Key takes pairs of kind and id or name: Key(\"Account\", \"alice\")",
            ));
        }
        let mut key = match parent {
            Some(parent) => parent.get().0.clone(),
            None => ds_model::Key {
                namespace: String::new(),
                path: Vec::new(),
            },
        };
        if let Some(namespace) = namespace {
            if parent.is_some_and(|p| p.get().0.namespace != namespace) {
                return Err(InvalidKey::new_err(
                    "invalid key: a child key is in its parent's namespace",
                ));
            }
            key.namespace = namespace;
        }
        let items: Vec<_> = path.iter().collect();
        for pair in items.chunks(2) {
            key.path.push(element(&pair[0], &pair[1])?);
        }
        key.validate()
            .map_err(|err| InvalidKey::new_err(format!("invalid key: {err}")))?;
        Ok(Key(key))
    }

    /// Parses a key in the human syntax (`Account:alice/Transfer:7`, `ns@Account:alice`)
    /// or the URL-safe form.
    #[staticmethod]
    fn parse(text: String) -> PyResult<Key> {
        ds_model::Key::parse_any(&text)
            .map(Key)
            .map_err(|err| InvalidKey::new_err(format!("invalid key: {err}")))
    }

    /// Reads the URL-safe form `urlsafe()` wrote.
    #[staticmethod]
    fn from_urlsafe(text: String) -> PyResult<Key> {
        ds_model::Key::from_urlsafe(&text)
            .map(Key)
            .map_err(|err| InvalidKey::new_err(format!("invalid key: {err}")))
    }

    /// The key of an entity row as a store sees it (a transport key), or `None` for rows
    /// that are not entities (indexes, counters): how a Python store names what it is asked.
    #[staticmethod]
    fn from_storage(raw: &[u8]) -> Option<Key> {
        ds_model::Key::decode(raw).ok().map(Key)
    }

    /// The URL-safe form: opaque, for URLs and web forms.
    fn urlsafe(&self) -> String {
        self.0.to_urlsafe()
    }

    /// The namespace ("" is the default one).
    #[getter]
    fn namespace(&self) -> &str {
        &self.0.namespace
    }

    /// The entity's kind (the last path element's).
    #[getter]
    fn kind(&self) -> &str {
        self.0.leaf().map_or("", |e| e.kind.as_str())
    }

    /// The entity's id, or `None` if it has a name.
    #[getter]
    fn id(&self) -> Option<u64> {
        match self.0.leaf().map(|e| &e.id) {
            Some(IdOrName::Id(id)) => Some(*id),
            _ => None,
        }
    }

    /// The entity's name, or `None` if it has an id.
    #[getter]
    fn name(&self) -> Option<&str> {
        match self.0.leaf().map(|e| &e.id) {
            Some(IdOrName::Name(name)) => Some(name),
            _ => None,
        }
    }

    /// The entity's id or name.
    #[getter]
    fn id_or_name<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        match self.0.leaf() {
            Some(leaf) => id_to_py(py, &leaf.id),
            None => Ok(py.None().into_bound(py)),
        }
    }

    /// The parent key, or `None` for a root entity.
    #[getter]
    fn parent(&self) -> Option<Key> {
        (self.0.path.len() > 1).then(|| {
            let mut parent = self.0.clone();
            parent.path.pop();
            Key(parent)
        })
    }

    /// The path as a tuple of (kind, id or name) pairs, ancestors first.
    #[getter]
    fn path<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        let pairs = self
            .0
            .path
            .iter()
            .map(|e| {
                PyTuple::new(
                    py,
                    [PyString::new(py, &e.kind).into_any(), id_to_py(py, &e.id)?],
                )
            })
            .collect::<PyResult<Vec<_>>>()?;
        PyTuple::new(py, pairs)
    }

    fn __str__(&self) -> String {
        self.0.to_string()
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!(
            "Key.parse({})",
            PyString::new(py, &self.0.to_string()).repr()?
        ))
    }

    fn __hash__(&self) -> u64 {
        let mut hasher = DefaultHasher::new();
        self.0.hash(&mut hasher);
        hasher.finish()
    }

    fn __richcmp__(&self, other: &Bound<'_, PyAny>, op: CompareOp) -> PyResult<Py<PyAny>> {
        let py = other.py();
        let Ok(other) = other.cast::<Key>() else {
            return Ok(py.NotImplemented());
        };
        let result = op.matches(self.0.cmp(&other.get().0));
        Ok(PyBool::new(py, result).to_owned().into_any().unbind())
    }

    fn __reduce__<'py>(&self, py: Python<'py>) -> PyResult<(Bound<'py, PyAny>, (String,))> {
        Ok((
            py.get_type::<Key>().getattr("parse")?,
            (self.0.to_string(),),
        ))
    }
}
