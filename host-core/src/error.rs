//! The error type of both host libraries (`ds::Error` and `ads::Error` are this type).

use ds_model::key::KeyError;

use crate::instances::BoundExceeded;
use crate::store::StoreError;
use crate::store::StoreUrlError;

/// Why a datastore call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The key is not valid; the message says which part.
    #[error("invalid key: {0}")]
    InvalidKey(String),
    /// The entity is not valid; the message names the property or limit. Nothing was written.
    #[error("invalid entity: {0}")]
    InvalidEntity(String),
    /// A stored value could not be decoded by the model.
    #[error("corrupt data in the store: {0}")]
    Corrupt(String),
    /// The query is not valid or no index serves it; the message names the index to declare.
    #[error("invalid query: {0}")]
    InvalidQuery(String),
    /// A transaction (or write) lost its commit race on every attempt the retry policy
    /// allowed. Nothing was written; trying again later may succeed.
    #[error("transaction conflict: {0}")]
    Conflict(String),
    /// A business rule refused the operation (e.g. insufficient funds). Nothing was written.
    #[error("refused: {0}")]
    FailedPrecondition(String),
    /// An entity (or application operation) the call needs does not exist. Nothing was
    /// written.
    #[error("not found: {0}")]
    NotFound(String),
    /// An argument of an application operation is missing or of the wrong type.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The store failed (unavailable, conflict, refused request, internal failure).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The store URL is not valid.
    #[error(transparent)]
    StoreUrl(#[from] StoreUrlError),
    /// A call hit a bound (memory); the instance was discarded.
    #[error(transparent)]
    Bound(#[from] BoundExceeded),
    /// The model component trapped (a panic, a bug, or a bound). The instance was discarded;
    /// the next call runs on a fresh one.
    #[error("the model component trapped: {0}")]
    Trap(String),
    /// The model component could not be loaded, compiled or instantiated.
    #[error("cannot load the model component from {origin}: {reason}")]
    Component {
        /// Where the component came from (a path, or "the embedded guest").
        origin: String,
        /// What went wrong.
        reason: String,
    },
    /// The wasmtime engine could not be created.
    #[error("cannot create the wasmtime engine: {0}")]
    Engine(String),
}

impl From<KeyError> for Error {
    fn from(err: KeyError) -> Self {
        Error::InvalidKey(err.0)
    }
}

/// A model error met on the host side (e.g. parsing typed JSON for the CLI).
impl From<ds_model::Error> for Error {
    fn from(err: ds_model::Error) -> Self {
        match err {
            ds_model::Error::InvalidKey(msg) => Error::InvalidKey(msg),
            ds_model::Error::InvalidEntity(msg) => Error::InvalidEntity(msg),
            ds_model::Error::Corrupt(msg) => Error::Corrupt(msg),
            ds_model::Error::InvalidQuery(msg) => Error::InvalidQuery(msg),
            ds_model::Error::Conflict(msg) => Error::Conflict(msg),
            ds_model::Error::FailedPrecondition(msg) => Error::FailedPrecondition(msg),
            ds_model::Error::NotFound(msg) => Error::NotFound(msg),
            ds_model::Error::InvalidArgument(msg) => Error::InvalidArgument(msg),
            ds_model::Error::Store(err) => Error::Store(err),
        }
    }
}

impl Error {
    /// The error for a failed instantiation or export call (a trap, or a link failure).
    pub fn from_wasmtime(err: wasmtime::Error) -> Self {
        if err.is::<wasmtime::PoolConcurrencyLimitError>() {
            return Error::Bound(BoundExceeded::Instances {
                limit: crate::runtime::engine_options().max_instances,
            });
        }
        match err.downcast::<BoundExceeded>() {
            Ok(bound) => Error::Bound(bound),
            Err(err) => Error::Trap(format!("{err:?}")),
        }
    }
}
