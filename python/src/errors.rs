//! The exception hierarchy both modules share (it mirrors the WIT `error` variant and the
//! transport's `store-error`), and the mappings: a host [`Error`] to its exception, and an
//! exception raised by a Python store to the [`StoreError`] the model sees.

use host_core::Error as HostError;
use host_core::store::StoreError as TransportError;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

pyo3::create_exception!(
    ds,
    Error,
    PyException,
    "Every error a datastore call raises."
);
pyo3::create_exception!(
    ds,
    InvalidKey,
    Error,
    "The key is not valid; the message says which part."
);
pyo3::create_exception!(
    ds,
    InvalidEntity,
    Error,
    "The entity is not valid (a property, a limit, the model's schema). Nothing was written."
);
pyo3::create_exception!(
    ds,
    Corrupt,
    Error,
    "A stored value could not be decoded by the model."
);
pyo3::create_exception!(
    ds,
    InvalidQuery,
    Error,
    "The query is not valid, or no index serves it (the message names the index to declare)."
);
pyo3::create_exception!(
    ds,
    Conflict,
    Error,
    "A transaction lost its commit race on every attempt. Nothing was written.\n\nA Python store raises it (with the conflicting key as its argument) when a commit check fails."
);
pyo3::create_exception!(
    ds,
    FailedPrecondition,
    Error,
    "A business rule refused the operation (e.g. insufficient funds). Nothing was written."
);
pyo3::create_exception!(
    ds,
    NotFound,
    Error,
    "An entity or operation the call needs does not exist."
);
pyo3::create_exception!(
    ds,
    InvalidArgument,
    Error,
    "An argument of an application operation is missing or of the wrong type."
);
pyo3::create_exception!(ds, StoreError, Error, "The store failed.");
pyo3::create_exception!(
    ds,
    StoreUnavailable,
    StoreError,
    "The store is unreachable or unusable now; nothing was written. A Python store raises it likewise."
);
pyo3::create_exception!(
    ds,
    StoreInvalidRequest,
    StoreError,
    "The store refused the request (it breaks a limit); nothing was written. A Python store raises it likewise."
);
pyo3::create_exception!(
    ds,
    StoreInternal,
    StoreError,
    "Any other store failure; whether a commit applied is unknown. Any other exception a Python store raises becomes this."
);
pyo3::create_exception!(ds, InvalidStoreUrl, Error, "The store URL is not valid.");
pyo3::create_exception!(
    ds,
    BoundExceeded,
    Error,
    "A call hit a bound (memory, deadline, instance slots); its instance was discarded."
);
pyo3::create_exception!(
    ds,
    Trap,
    Error,
    "The model component trapped; the instance was discarded and the next call runs on a fresh one."
);
pyo3::create_exception!(
    ds,
    ComponentError,
    Error,
    "The model component (or the engine) could not be loaded, compiled or instantiated."
);

/// Adds every exception class to the module `m`.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("Error", py.get_type::<Error>())?;
    m.add("InvalidKey", py.get_type::<InvalidKey>())?;
    m.add("InvalidEntity", py.get_type::<InvalidEntity>())?;
    m.add("Corrupt", py.get_type::<Corrupt>())?;
    m.add("InvalidQuery", py.get_type::<InvalidQuery>())?;
    m.add("Conflict", py.get_type::<Conflict>())?;
    m.add("FailedPrecondition", py.get_type::<FailedPrecondition>())?;
    m.add("NotFound", py.get_type::<NotFound>())?;
    m.add("InvalidArgument", py.get_type::<InvalidArgument>())?;
    m.add("StoreError", py.get_type::<StoreError>())?;
    m.add("StoreUnavailable", py.get_type::<StoreUnavailable>())?;
    m.add("StoreInvalidRequest", py.get_type::<StoreInvalidRequest>())?;
    m.add("StoreInternal", py.get_type::<StoreInternal>())?;
    m.add("InvalidStoreUrl", py.get_type::<InvalidStoreUrl>())?;
    m.add("BoundExceeded", py.get_type::<BoundExceeded>())?;
    m.add("Trap", py.get_type::<Trap>())?;
    m.add("ComponentError", py.get_type::<ComponentError>())?;
    Ok(())
}

/// The exception for a failed datastore call.
pub fn to_py(err: HostError) -> PyErr {
    let message = err.to_string();
    match err {
        HostError::InvalidKey(_) => InvalidKey::new_err(message),
        HostError::InvalidEntity(_) => InvalidEntity::new_err(message),
        HostError::Corrupt(_) => Corrupt::new_err(message),
        HostError::InvalidQuery(_) => InvalidQuery::new_err(message),
        HostError::Conflict(_) | HostError::Store(TransportError::Conflict(_)) => {
            Conflict::new_err(message)
        }
        HostError::FailedPrecondition(_) => FailedPrecondition::new_err(message),
        HostError::NotFound(_) => NotFound::new_err(message),
        HostError::InvalidArgument(_) => InvalidArgument::new_err(message),
        HostError::Store(TransportError::Unavailable(_)) => StoreUnavailable::new_err(message),
        HostError::Store(TransportError::InvalidRequest(_)) => {
            StoreInvalidRequest::new_err(message)
        }
        HostError::Store(TransportError::Internal(_)) => StoreInternal::new_err(message),
        HostError::StoreUrl(_) => InvalidStoreUrl::new_err(message),
        HostError::Bound(_) => BoundExceeded::new_err(message),
        HostError::Trap(_) => Trap::new_err(message),
        HostError::Component { .. } | HostError::Engine(_) => ComponentError::new_err(message),
        _ => Error::new_err(message),
    }
}

/// A model error met while converting arguments (a key or filter that does not parse).
pub fn model_to_py(err: impl Into<HostError>) -> PyErr {
    to_py(err.into())
}

/// The store error for an exception a Python store raised (or a bad answer it gave):
/// `ds.Conflict(key)`, `ds.StoreUnavailable(msg)` and `ds.StoreInvalidRequest(msg)` map to
/// their variants; anything else is `internal`, with the exception's type and message.
pub fn store_error(py: Python<'_>, err: &PyErr, method: &str) -> TransportError {
    let value = err.value(py);
    let message = || {
        value
            .str()
            .map(|text| text.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    if err.is_instance_of::<Conflict>(py) {
        let key = value
            .getattr("args")
            .and_then(|args| args.get_item(0))
            .ok()
            .and_then(|first| first.cast::<PyBytes>().ok().map(|b| b.as_bytes().to_vec()))
            .unwrap_or_default();
        TransportError::Conflict(key)
    } else if err.is_instance_of::<StoreUnavailable>(py) {
        TransportError::Unavailable(message())
    } else if err.is_instance_of::<StoreInvalidRequest>(py) {
        TransportError::InvalidRequest(message())
    } else {
        let kind = value
            .get_type()
            .name()
            .map(|name| name.to_string())
            .unwrap_or_else(|_| "exception".into());
        TransportError::Internal(format!(
            "the Python store's {method} raised {kind}: {}",
            message()
        ))
    }
}
