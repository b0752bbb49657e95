"""ds: one datastore model, compiled once to a WebAssembly component, called blocking.

``ds.Datastore`` runs the model with the GIL released around each call; its twin,
``ads.Datastore``, runs the same component from asyncio. Both share the value types
(``Key``, ``Entity``, ...) and the exceptions defined here.

    >>> import ds
    >>> db = ds.Datastore.open("memory:")
    >>> db.put("Account:alice", {"owner": "Alice", "balance": 10})
    Key.parse('Account:alice')
    >>> db.get("Account:alice").properties["balance"]
    10
"""

from ds._native import (
    MAX_DEPTH,
    BoundExceeded,
    CheckReport,
    ComponentError,
    Conflict,
    Corrupt,
    Datastore,
    Entity,
    EntityPage,
    Error,
    FailedPrecondition,
    InvalidArgument,
    InvalidEntity,
    InvalidKey,
    InvalidQuery,
    InvalidStoreUrl,
    Key,
    NotFound,
    Pages,
    QueryPage,
    Receipt,
    StoreError,
    StoreInternal,
    StoreInvalidRequest,
    StoreUnavailable,
    Trap,
    enable_logging,
)
from ds.memory import MemoryStore

__all__ = [
    "MAX_DEPTH",
    "BoundExceeded",
    "CheckReport",
    "ComponentError",
    "Conflict",
    "Corrupt",
    "Datastore",
    "Entity",
    "EntityPage",
    "Error",
    "FailedPrecondition",
    "InvalidArgument",
    "InvalidEntity",
    "InvalidKey",
    "InvalidQuery",
    "InvalidStoreUrl",
    "Key",
    "MemoryStore",
    "NotFound",
    "Pages",
    "QueryPage",
    "Receipt",
    "StoreError",
    "StoreInternal",
    "StoreInvalidRequest",
    "StoreUnavailable",
    "Trap",
    "enable_logging",
]
