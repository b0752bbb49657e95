//! Python objects as stores: the transport of the model, implemented by the program.
//!
//! A store object has the methods `get(key)`, `scan(start, end, limit, reverse)`,
//! `commit(checks, writes)` and optionally `get_many(keys)`; plain methods for `ds`, plain
//! or `async def` for `ads`. Keys and values are `bytes`; a value read is a
//! `(value, version)` tuple, a scan entry a `(key, value, version)` tuple, a check a
//! `(key, version or None)` pair and a write a `(key, value or None)` pair. What the object
//! returns is checked (types, lengths, scan order and range), and every failure becomes a
//! transport error the model handles, never a crash: see [`errors::store_error`].

use std::sync::Arc;

use host_core::store::{
    AsyncStore, BoxFuture, Check, Direction, Entry, KeyRange, MAX_SCAN_LIMIT, Store, StoreError,
    Versioned, Write,
};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};

use crate::bridge::{Bridge, Callback};
use crate::errors;

/// The transport methods a store object must have.
const REQUIRED: [&str; 3] = ["get", "scan", "commit"];

/// Checks that `obj` looks like a store: a `TypeError` naming what is missing.
pub fn check_store(obj: &Bound<'_, PyAny>) -> PyResult<()> {
    for method in REQUIRED {
        if !obj.hasattr(method)? {
            return Err(pyo3::exceptions::PyTypeError::new_err(format!(
                "a store is a URL str or an object with get, scan and commit methods; {} has no {method}",
                obj.get_type().name()?
            )));
        }
    }
    Ok(())
}

/// A bad answer from the store object: an internal transport error naming it.
fn bad(method: &str, what: impl std::fmt::Display) -> StoreError {
    StoreError::Internal(format!("the Python store's {method} returned {what}"))
}

fn versioned(method: &str, obj: &Bound<'_, PyAny>) -> Result<Option<Versioned>, StoreError> {
    if obj.is_none() {
        return Ok(None);
    }
    let pair = obj
        .cast::<PyTuple>()
        .ok()
        .filter(|t| t.len() == 2)
        .ok_or_else(|| {
            bad(
                method,
                "something other than None or a (value, version) tuple",
            )
        })?;
    value_and_version(method, pair, 0).map(Some)
}

/// The `(value, version)` at positions `at` and `at + 1` of an answer tuple.
fn value_and_version(
    method: &str,
    tuple: &Bound<'_, PyTuple>,
    at: usize,
) -> Result<Versioned, StoreError> {
    let value = tuple
        .get_item(at)
        .ok()
        .and_then(|v| v.cast::<PyBytes>().ok().map(|b| b.as_bytes().to_vec()))
        .ok_or_else(|| bad(method, "a value that is not bytes"))?;
    let version = tuple
        .get_item(at + 1)
        .ok()
        .and_then(|v| v.extract::<u64>().ok())
        .ok_or_else(|| bad(method, "a version that is not a non-negative int"))?;
    Ok(Versioned { value, version })
}

fn get_many_answer(
    obj: &Bound<'_, PyAny>,
    asked: usize,
) -> Result<Vec<Option<Versioned>>, StoreError> {
    let list = obj
        .cast::<PyList>()
        .map_err(|_| bad("get_many", "something other than a list"))?;
    if list.len() != asked {
        return Err(bad(
            "get_many",
            format!("{} results for {asked} keys", list.len()),
        ));
    }
    list.iter()
        .map(|item| versioned("get_many", &item))
        .collect()
}

fn scan_answer(
    obj: &Bound<'_, PyAny>,
    range: &KeyRange,
    limit: u32,
    direction: Direction,
) -> Result<Vec<Entry>, StoreError> {
    let list = obj
        .cast::<PyList>()
        .map_err(|_| bad("scan", "something other than a list"))?;
    if list.len() > limit.min(MAX_SCAN_LIMIT) as usize {
        return Err(bad(
            "scan",
            format!("{} entries for a limit of {limit}", list.len()),
        ));
    }
    let mut entries: Vec<Entry> = Vec::with_capacity(list.len());
    for item in list.iter() {
        let triple = item
            .cast::<PyTuple>()
            .ok()
            .filter(|t| t.len() == 3)
            .ok_or_else(|| bad("scan", "an entry that is not a (key, value, version) tuple"))?;
        let key = triple
            .get_item(0)
            .ok()
            .and_then(|k| k.cast::<PyBytes>().ok().map(|b| b.as_bytes().to_vec()))
            .ok_or_else(|| bad("scan", "a key that is not bytes"))?;
        let value = value_and_version("scan", triple, 1)?;
        let in_range = key >= range.start && range.end.as_ref().is_none_or(|end| key < *end);
        let in_order = entries.last().is_none_or(|last| match direction {
            Direction::Forward => last.key < key,
            Direction::Reverse => last.key > key,
        });
        if !in_range || !in_order {
            return Err(bad("scan", "keys outside the range or out of order"));
        }
        entries.push(Entry { key, value });
    }
    Ok(entries)
}

fn scan_args<'py>(
    py: Python<'py>,
    range: &KeyRange,
    limit: u32,
    direction: Direction,
) -> (Bound<'py, PyBytes>, Option<Bound<'py, PyBytes>>, u32, bool) {
    (
        PyBytes::new(py, &range.start),
        range.end.as_ref().map(|end| PyBytes::new(py, end)),
        limit.min(MAX_SCAN_LIMIT),
        direction == Direction::Reverse,
    )
}

fn commit_args<'py>(
    py: Python<'py>,
    checks: &[Check],
    writes: &[Write],
) -> PyResult<(Bound<'py, PyList>, Bound<'py, PyList>)> {
    let checks = PyList::new(
        py,
        checks.iter().map(|c| (PyBytes::new(py, &c.key), c.version)),
    )?;
    let writes = PyList::new(
        py,
        writes.iter().map(|w| {
            (
                PyBytes::new(py, &w.key),
                w.value.as_ref().map(|v| PyBytes::new(py, v)),
            )
        }),
    )?;
    Ok((checks, writes))
}

fn commit_answer(obj: &Bound<'_, PyAny>) -> Result<u64, StoreError> {
    obj.extract::<u64>().map_err(|_| {
        bad(
            "commit",
            "something other than a version (a non-negative int)",
        )
    })
}

fn keys_arg<'py>(py: Python<'py>, keys: &[Vec<u8>]) -> PyResult<Bound<'py, PyList>> {
    PyList::new(py, keys.iter().map(|key| PyBytes::new(py, key)))
}

/// A Python store object as a blocking [`Store`] (for `ds`): each call takes the GIL.
pub struct PyStore {
    obj: Py<PyAny>,
    has_get_many: bool,
}

impl PyStore {
    /// Wraps a store object (see [`check_store`]); `async def` methods are refused, since
    /// a blocking call cannot await them.
    pub fn new(obj: &Bound<'_, PyAny>) -> PyResult<PyStore> {
        check_store(obj)?;
        let inspect = obj.py().import("inspect")?;
        for method in REQUIRED {
            if inspect
                .call_method1("iscoroutinefunction", (obj.getattr(method)?,))?
                .is_truthy()?
            {
                return Err(pyo3::exceptions::PyTypeError::new_err(format!(
                    "{}.{method} is async def: open it with ads.Datastore, or give ds a store with plain methods",
                    obj.get_type().name()?
                )));
            }
        }
        Ok(PyStore {
            has_get_many: obj.hasattr("get_many")?,
            obj: obj.clone().unbind(),
        })
    }

    fn call<R>(
        &self,
        method: &str,
        args: impl for<'py> FnOnce(Python<'py>) -> PyResult<Bound<'py, PyTuple>>,
        answer: impl for<'py> FnOnce(&Bound<'py, PyAny>) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        if crate::bridge::exiting() {
            return Err(StoreError::Unavailable(
                "the Python interpreter is exiting".into(),
            ));
        }
        Python::attach(|py| {
            let result = args(py)
                .and_then(|args| self.obj.bind(py).call_method1(method, args))
                .map_err(|err| errors::store_error(py, &err, method))?;
            answer(&result)
        })
    }
}

impl Store for PyStore {
    fn get(&self, key: &[u8]) -> Result<Option<Versioned>, StoreError> {
        self.call(
            "get",
            |py| PyTuple::new(py, [PyBytes::new(py, key)]),
            |out| versioned("get", out),
        )
    }

    fn get_many(&self, keys: &[Vec<u8>]) -> Result<Vec<Option<Versioned>>, StoreError> {
        if !self.has_get_many {
            return keys.iter().map(|key| self.get(key)).collect();
        }
        self.call(
            "get_many",
            |py| PyTuple::new(py, [keys_arg(py, keys)?]),
            |out| get_many_answer(out, keys.len()),
        )
    }

    fn scan(
        &self,
        range: &KeyRange,
        limit: u32,
        direction: Direction,
    ) -> Result<Vec<Entry>, StoreError> {
        self.call(
            "scan",
            |py| scan_args(py, range, limit, direction).into_pyobject(py),
            |out| scan_answer(out, range, limit, direction),
        )
    }

    fn commit(&self, checks: &[Check], writes: &[Write]) -> Result<u64, StoreError> {
        self.call(
            "commit",
            |py| commit_args(py, checks, writes)?.into_pyobject(py),
            commit_answer,
        )
    }
}

/// A Python store object as an [`AsyncStore`] (for `ads`): its methods are called on the
/// thread of the event loop the datastore was opened on (through the [`Bridge`]), and an
/// `async def` method's coroutine runs there as a task; plain methods answer at once.
pub struct PyAsyncStore {
    obj: Arc<Py<PyAny>>,
    has_get_many: bool,
    bridge: Arc<Bridge>,
}

impl PyAsyncStore {
    /// Wraps a store object; its methods will run on `bridge`'s event loop.
    pub fn new(obj: &Bound<'_, PyAny>, bridge: Arc<Bridge>) -> PyResult<PyAsyncStore> {
        check_store(obj)?;
        Ok(PyAsyncStore {
            has_get_many: obj.hasattr("get_many")?,
            obj: Arc::new(obj.clone().unbind()),
            bridge,
        })
    }

    /// Calls `method` on the loop's thread, awaits its coroutine (if it returned one) as a
    /// task there, and reads the answer with `answer`. If this future is dropped, a
    /// coroutine already started still runs to its end: a commit is whole or absent.
    fn call<R: Send + 'static>(
        &self,
        method: &'static str,
        args: impl for<'py> FnOnce(Python<'py>) -> PyResult<Bound<'py, PyTuple>> + Send + 'static,
        answer: impl for<'py> FnOnce(&Bound<'py, PyAny>) -> Result<R, StoreError> + Send + 'static,
    ) -> BoxFuture<'static, Result<R, StoreError>> {
        let (reply, answered) = tokio::sync::oneshot::channel();
        let obj = Arc::clone(&self.obj);
        let bridge = Arc::clone(&self.bridge);
        self.bridge.push(Box::new(move |py| {
            let result = match args(py).and_then(|args| obj.bind(py).call_method1(method, args)) {
                Ok(result) => result,
                Err(err) => {
                    let _ = reply.send(Err(errors::store_error(py, &err, method)));
                    return;
                }
            };
            if !result.hasattr(intern!(py, "__await__")).unwrap_or(false) {
                let _ = reply.send(answer(&result));
                return;
            }
            let done = Callback::once(move |py, task| {
                let outcome = task
                    .call_method0(intern!(py, "result"))
                    .map_err(|err| errors::store_error(py, &err, method))
                    .and_then(|value| answer(&value));
                let _ = reply.send(outcome);
            });
            let scheduled = bridge
                .create_task(result)
                .and_then(|task| task.call_method1(intern!(py, "add_done_callback"), (done,)));
            if let Err(err) = scheduled {
                // `done` was dropped unused; its sender with it, which the caller sees.
                err.print(py);
            }
        }));
        Box::pin(async move {
            answered.await.unwrap_or_else(|_| {
                Err(StoreError::Internal(format!(
                    "the Python store's {method} never answered (its event loop stopped or the call could not be scheduled)"
                )))
            })
        })
    }
}

impl AsyncStore for PyAsyncStore {
    fn get(&self, key: Vec<u8>) -> BoxFuture<'_, Result<Option<Versioned>, StoreError>> {
        self.call(
            "get",
            move |py| PyTuple::new(py, [PyBytes::new(py, &key)]),
            |out| versioned("get", out),
        )
    }

    fn get_many(
        &self,
        keys: Vec<Vec<u8>>,
    ) -> BoxFuture<'_, Result<Vec<Option<Versioned>>, StoreError>> {
        if !self.has_get_many {
            return Box::pin(async move {
                let mut out = Vec::with_capacity(keys.len());
                for key in keys {
                    out.push(self.get(key).await?);
                }
                Ok(out)
            });
        }
        let asked = keys.len();
        self.call(
            "get_many",
            move |py| PyTuple::new(py, [keys_arg(py, &keys)?]),
            move |out| get_many_answer(out, asked),
        )
    }

    fn scan(
        &self,
        range: KeyRange,
        limit: u32,
        direction: Direction,
    ) -> BoxFuture<'_, Result<Vec<Entry>, StoreError>> {
        let asked = range.clone();
        self.call(
            "scan",
            move |py| scan_args(py, &range, limit, direction).into_pyobject(py),
            move |out| scan_answer(out, &asked, limit, direction),
        )
    }

    fn commit(
        &self,
        checks: Vec<Check>,
        writes: Vec<Write>,
    ) -> BoxFuture<'_, Result<u64, StoreError>> {
        self.call(
            "commit",
            move |py| commit_args(py, &checks, &writes)?.into_pyobject(py),
            commit_answer,
        )
    }
}
