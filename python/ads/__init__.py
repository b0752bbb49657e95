"""ads: the ds datastore model, called from asyncio.

``ads.Datastore`` runs the same model component as ``ds.Datastore``; every method returns
an awaitable, and no call blocks the event loop. Values and exceptions are ``ds``'s own.

    >>> import asyncio, ads
    >>> async def main():
    ...     db = await ads.Datastore.open("memory:")
    ...     await db.put("Account:alice", {"owner": "Alice"})
    ...     return (await db.get("Account:alice")).properties["owner"]
    >>> asyncio.run(main())
    'Alice'
"""

from ds import (
    MAX_DEPTH,
    BoundExceeded,
    CheckReport,
    ComponentError,
    Conflict,
    Corrupt,
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
    QueryPage,
    Receipt,
    StoreError,
    StoreInternal,
    StoreInvalidRequest,
    StoreUnavailable,
    Trap,
    enable_logging,
)
from ds._native import AsyncDatastore as Datastore
from ds._native import AsyncPages as Pages
from ds.memory import AsyncMemoryStore, MemoryStore

__all__ = [
    "MAX_DEPTH",
    "AsyncMemoryStore",
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
