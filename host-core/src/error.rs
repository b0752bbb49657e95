//! The error type of both host libraries (`ds::Error` and `ads::Error` are this type), and
//! the bounds a call can hit. A leaf: it imports no other module of this crate.

use ds_model::key::KeyError;

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
    /// `slots` is the engine's `max_instances`, named when every slot was taken.
    pub fn from_wasmtime(err: wasmtime::Error, slots: u32) -> Self {
        if err.is::<wasmtime::PoolConcurrencyLimitError>() {
            return Error::Bound(BoundExceeded::Instances { limit: slots });
        }
        match err.downcast::<BoundExceeded>() {
            Ok(bound) => Error::Bound(bound),
            Err(err) => Error::Trap(format!("{err:?}")),
        }
    }
}

/// A bound that a call hit (it trapped, and its instance was discarded).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BoundExceeded {
    /// The guest tried to grow its linear memory past the limit.
    #[error("guest memory limit of {limit} bytes exceeded (the guest asked for {requested} bytes)")]
    Memory {
        /// The limit, in bytes.
        limit: usize,
        /// The size the guest asked for, in bytes.
        requested: usize,
    },
    /// The call ran past its deadline. `writes` says whether it wrote before it was stopped:
    /// a retry of a call whose commit was applied, or may have been, could apply it twice.
    #[error("the call ran past its deadline of {} ms{writes}", limit.as_millis())]
    Deadline {
        /// The deadline.
        limit: std::time::Duration,
        /// What the call had written when it was stopped.
        writes: Writes,
    },
    /// Every instance slot of the process is in use (`ds` with more threads calling at once
    /// than the engine's `max_instances`; `ads` waits instead).
    #[error(
        "all {limit} instance slots of the process are in use; raise DS_MAX_INSTANCES or call with fewer threads"
    )]
    Instances {
        /// The engine's `max_instances`.
        limit: u32,
    },
}

/// What a call that failed midway (a deadline, a trap) had written, as far as the host saw
/// its commits: whether retrying it could apply its writes twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Writes {
    /// No commit with writes was sent, or every one sent was refused: nothing was written.
    #[default]
    None,
    /// A commit was sent and not answered (or answered with an internal error): it may have
    /// been applied. Read before retrying.
    Unknown,
    /// A commit was applied before the call failed: only its result was lost.
    Applied,
}

/// Shown after a failed call's message.
impl std::fmt::Display for Writes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Writes::None => "; nothing was written",
            Writes::Unknown => {
                "; a commit it sent was not answered and may have been applied: read before retrying"
            }
            Writes::Applied => "; a commit it made had been applied (only the result was lost)",
        })
    }
}
