//! Python values to the model's and back: property values, JSON (for `call`), timestamps.
//!
//! Conversions are strict, so bad input fails before anything reaches the datastore: a
//! wrong type is a `TypeError`, a value out of range (an int beyond int64, a naive
//! datetime, nesting past [`MAX_DEPTH`], which is what a cycle becomes) a `ValueError`, each
//! naming the property path.

use host_core::{Properties, Value};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{
    PyBool, PyByteArray, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple,
};
use serde_json::Value as Json;

use crate::key::Key;

/// Deepest nesting of lists and dicts accepted (a cyclic structure reaches it at once).
pub const MAX_DEPTH: usize = 64;

/// The `datetime` pieces the timestamp conversions use, imported once.
struct DateTime {
    datetime: Py<PyAny>,
    epoch: Py<PyAny>,
    microsecond: Py<PyAny>,
}

fn datetime(py: Python<'_>) -> PyResult<&DateTime> {
    static CELL: PyOnceLock<DateTime> = PyOnceLock::new();
    CELL.get_or_try_init(py, || {
        let module = py.import("datetime")?;
        let utc = module.getattr("timezone")?.getattr("utc")?;
        let datetime = module.getattr("datetime")?;
        let epoch = datetime.call1((1970, 1, 1, 0, 0, 0, 0, utc))?;
        let microsecond = module
            .getattr("timedelta")?
            .call((), Some(&[("microseconds", 1)].into_py_dict(py)?))?;
        Ok(DateTime {
            datetime: datetime.unbind(),
            epoch: epoch.unbind(),
            microsecond: microsecond.unbind(),
        })
    })
}

use pyo3::types::IntoPyDict as _;

/// Where a value sits, for error messages: `balance`, `tags[2]`, `address.city`.
fn at(path: &str) -> String {
    if path.is_empty() {
        "the value".into()
    } else {
        format!("property {path:?}")
    }
}

/// A Python value as a property value.
pub fn value(obj: &Bound<'_, PyAny>, path: &str, depth: usize) -> PyResult<Value> {
    if depth > MAX_DEPTH {
        return Err(PyValueError::new_err(format!(
            "{} nests deeper than {MAX_DEPTH} levels (a cyclic structure?)",
            at(path)
        )));
    }
    if obj.is_none() {
        return Ok(Value::Null);
    }
    // `bool` first: it is a subclass of `int`.
    if let Ok(b) = obj.cast::<PyBool>() {
        return Ok(Value::Bool(b.is_true()));
    }
    if obj.is_instance_of::<PyInt>() {
        return obj.extract::<i64>().map(Value::Int).map_err(|_| {
            PyValueError::new_err(format!(
                "{} is an int outside the 64-bit signed range: {}",
                at(path),
                obj
            ))
        });
    }
    if let Ok(f) = obj.cast::<PyFloat>() {
        return Ok(Value::Float(f.value()));
    }
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok(Value::String(s.to_cow()?.into_owned()));
    }
    if let Ok(b) = obj.cast::<PyBytes>() {
        return Ok(Value::Bytes(b.as_bytes().to_vec()));
    }
    if let Ok(b) = obj.cast::<PyByteArray>() {
        return Ok(Value::Bytes(b.to_vec()));
    }
    if let Ok(key) = obj.cast::<Key>() {
        return Ok(Value::Key(key.get().0.clone()));
    }
    if obj.is_instance_of::<PyList>() || obj.is_instance_of::<PyTuple>() {
        let mut out = Vec::new();
        for (i, element) in obj.try_iter()?.enumerate() {
            out.push(value(&element?, &format!("{path}[{i}]"), depth + 1)?);
        }
        return Ok(Value::Array(out));
    }
    if let Ok(dict) = obj.cast::<PyDict>() {
        return properties(dict, path, depth + 1).map(Value::Entity);
    }
    let py = obj.py();
    if obj.is_instance(datetime(py)?.datetime.bind(py))? {
        return timestamp(obj, path).map(Value::Timestamp);
    }
    let type_name = obj.get_type().name()?;
    Err(PyTypeError::new_err(format!(
        "{} has type {type_name}, which a datastore cannot hold (use None, bool, int, float, str, bytes, datetime, Key, list or dict)",
        at(path)
    )))
}

/// A dict of property values (an entity's properties or an embedded entity).
pub fn properties(dict: &Bound<'_, PyDict>, path: &str, depth: usize) -> PyResult<Properties> {
    let mut out = Properties::new();
    // A snapshot: Python code run while converting (a `tzinfo`, another thread) may change
    // the dict, which its live iterator refuses with a panic.
    for (name, element) in dict.copy()?.iter() {
        let Ok(name) = name.cast::<PyString>() else {
            return Err(PyTypeError::new_err(format!(
                "{} has a key of type {}: property names are str",
                if path.is_empty() {
                    "the properties".into()
                } else {
                    at(path)
                },
                name.get_type().name()?
            )));
        };
        let name = name.to_cow()?;
        let name: &str = &name;
        let inner = if path.is_empty() {
            name.to_owned()
        } else {
            format!("{path}.{name}")
        };
        out.insert(name.to_owned(), value(&element, &inner, depth)?);
    }
    Ok(out)
}

/// Properties given as any mapping-like argument: a dict, or `None` for none.
pub fn properties_arg(obj: Option<&Bound<'_, PyAny>>) -> PyResult<Properties> {
    match obj {
        None => Ok(Properties::new()),
        Some(obj) if obj.is_none() => Ok(Properties::new()),
        Some(obj) => match obj.cast::<PyDict>() {
            Ok(dict) => properties(dict, "", 0),
            Err(_) => Err(PyTypeError::new_err(format!(
                "properties must be a dict of str to values, not {}",
                obj.get_type().name()?
            ))),
        },
    }
}

/// A timezone-aware datetime as microseconds since the Unix epoch.
fn timestamp(obj: &Bound<'_, PyAny>, path: &str) -> PyResult<i64> {
    if obj.getattr("utcoffset")?.call0()?.is_none() {
        return Err(PyValueError::new_err(format!(
            "{} is a naive datetime: give it a timezone (e.g. tzinfo=datetime.timezone.utc)",
            at(path)
        )));
    }
    let py = obj.py();
    let dt = datetime(py)?;
    // Exact integer arithmetic: (value - epoch) // 1 µs.
    obj.sub(dt.epoch.bind(py))?
        .floor_div(dt.microsecond.bind(py))?
        .extract::<i64>()
}

/// Microseconds since the Unix epoch as a UTC datetime.
fn datetime_of(py: Python<'_>, micros: i64) -> PyResult<Bound<'_, PyAny>> {
    let dt = datetime(py)?;
    dt.epoch.bind(py).add(dt.microsecond.bind(py).mul(micros)?)
}

/// A property value as a Python value.
pub fn to_py<'py>(py: Python<'py>, value: &Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match value {
        Value::Null => py.None().into_bound(py),
        Value::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
        Value::Int(i) => i.into_pyobject(py)?.into_any(),
        Value::Float(f) => PyFloat::new(py, *f).into_any(),
        Value::String(s) => PyString::new(py, s).into_any(),
        Value::Bytes(b) => PyBytes::new(py, b).into_any(),
        Value::Timestamp(micros) => datetime_of(py, *micros)?,
        Value::Key(key) => Bound::new(py, Key(key.clone()))?.into_any(),
        Value::Array(values) => {
            let list = PyList::empty(py);
            for value in values {
                list.append(to_py(py, value)?)?;
            }
            list.into_any()
        }
        Value::Entity(properties) => properties_to_py(py, properties)?.into_any(),
    })
}

/// Properties as a dict.
pub fn properties_to_py<'py>(
    py: Python<'py>,
    properties: &Properties,
) -> PyResult<Bound<'py, PyDict>> {
    let dict = PyDict::new(py);
    for (name, value) in properties {
        dict.set_item(name, to_py(py, value)?)?;
    }
    Ok(dict)
}

/// A JSON-like Python value (None, bool, int, float, str, list, tuple, dict with str keys)
/// as JSON: the input of `call`.
pub fn json(obj: &Bound<'_, PyAny>, depth: usize) -> PyResult<Json> {
    if depth > MAX_DEPTH {
        return Err(PyValueError::new_err(format!(
            "the input nests deeper than {MAX_DEPTH} levels (a cyclic structure?)"
        )));
    }
    if obj.is_none() {
        return Ok(Json::Null);
    }
    if let Ok(b) = obj.cast::<PyBool>() {
        return Ok(Json::Bool(b.is_true()));
    }
    if obj.is_instance_of::<PyInt>() {
        if let Ok(i) = obj.extract::<i64>() {
            return Ok(Json::from(i));
        }
        if let Ok(u) = obj.extract::<u64>() {
            return Ok(Json::from(u));
        }
        return Err(PyValueError::new_err(format!(
            "the int {obj} is outside the 64-bit range JSON input carries"
        )));
    }
    if let Ok(f) = obj.cast::<PyFloat>() {
        return serde_json::Number::from_f64(f.value())
            .map(Json::Number)
            .ok_or_else(|| PyValueError::new_err(format!("{obj} has no JSON form")));
    }
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok(Json::String(s.to_cow()?.into_owned()));
    }
    if let Ok(key) = obj.cast::<Key>() {
        return Ok(Json::String(key.get().0.to_string()));
    }
    if obj.is_instance_of::<PyList>() || obj.is_instance_of::<PyTuple>() {
        let mut out = Vec::new();
        for element in obj.try_iter()? {
            out.push(json(&element?, depth + 1)?);
        }
        return Ok(Json::Array(out));
    }
    if let Ok(dict) = obj.cast::<PyDict>() {
        let mut out = serde_json::Map::new();
        for (name, element) in dict.copy()?.iter() {
            let Ok(name) = name.cast::<PyString>() else {
                return Err(PyTypeError::new_err("JSON object keys must be str"));
            };
            out.insert(name.to_cow()?.into_owned(), json(&element, depth + 1)?);
        }
        return Ok(Json::Object(out));
    }
    Err(PyTypeError::new_err(format!(
        "a value of type {} has no JSON form",
        obj.get_type().name()?
    )))
}

/// JSON as a Python value: numbers become int when integral, else float.
pub fn json_to_py<'py>(py: Python<'py>, json: &Json) -> PyResult<Bound<'py, PyAny>> {
    Ok(match json {
        Json::Null => py.None().into_bound(py),
        Json::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
        Json::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => i.into_pyobject(py)?.into_any(),
            (None, Some(u)) => u.into_pyobject(py)?.into_any(),
            _ => PyFloat::new(py, n.as_f64().unwrap_or(f64::NAN)).into_any(),
        },
        Json::String(s) => PyString::new(py, s).into_any(),
        Json::Array(values) => {
            let list = PyList::empty(py);
            for value in values {
                list.append(json_to_py(py, value)?)?;
            }
            list.into_any()
        }
        Json::Object(map) => {
            let dict = PyDict::new(py);
            for (name, value) in map {
                dict.set_item(name, json_to_py(py, value)?)?;
            }
            dict.into_any()
        }
    })
}
