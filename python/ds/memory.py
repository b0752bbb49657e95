"""A store in pure Python: the transport contract a store object implements, in memory.

It is the example to copy for a store of your own (one over your own connection pool or
storage): ``Datastore.open(MemoryStore())``. The contract, for every method:

* keys and values are ``bytes``; the store orders keys bytewise;
* ``get(key)`` returns ``(value, version)`` or ``None``;
* ``get_many(keys)`` (optional) returns one such result per key, in order;
* ``scan(start, end, limit, reverse)`` returns up to ``limit`` ``(key, value, version)``
  tuples with ``start <= key < end`` (``end`` ``None``: unbounded), ascending, or
  descending when ``reverse``;
* ``commit(checks, writes)`` applies every ``(key, value)`` write (``value`` ``None``
  deletes) atomically if every ``(key, version)`` check holds (``version`` ``None``: the
  key must be absent), and returns the commit's version, greater than any before.

Errors: raise ``ds.Conflict(key)`` when a check fails (nothing written),
``ds.StoreUnavailable(message)`` when the storage cannot be reached (nothing written),
``ds.StoreInvalidRequest(message)`` for a request that breaks a limit (nothing written).
Any other exception becomes an internal store error: the call fails, the process goes on.
"""

from __future__ import annotations

import asyncio
import bisect
import threading
from typing import Optional, Sequence, Tuple

from ds._native import Conflict

Versioned = Tuple[bytes, int]
Entry = Tuple[bytes, bytes, int]


class MemoryStore:
    """An ordered in-memory store with optimistic commits, safe to share between threads."""

    def __init__(self) -> None:
        self._keys: list[bytes] = []  # sorted
        self._rows: dict[bytes, Versioned] = {}
        self._version = 0
        self._lock = threading.Lock()

    def get(self, key: bytes) -> Optional[Versioned]:
        return self._rows.get(key)

    def get_many(self, keys: Sequence[bytes]) -> list[Optional[Versioned]]:
        with self._lock:
            return [self._rows.get(key) for key in keys]

    def scan(self, start: bytes, end: Optional[bytes], limit: int, reverse: bool) -> list[Entry]:
        with self._lock:
            low = bisect.bisect_left(self._keys, start)
            high = len(self._keys) if end is None else bisect.bisect_left(self._keys, end)
            keys = self._keys[low:high]
            if reverse:
                keys = keys[::-1]
            return [(key, *self._rows[key]) for key in keys[:limit]]

    def commit(
        self,
        checks: Sequence[Tuple[bytes, Optional[int]]],
        writes: Sequence[Tuple[bytes, Optional[bytes]]],
    ) -> int:
        with self._lock:
            for key, version in checks:
                row = self._rows.get(key)
                if (row[1] if row else None) != version:
                    raise Conflict(key)
            self._version += 1
            for key, value in writes:
                if value is None:
                    if self._rows.pop(key, None) is not None:
                        del self._keys[bisect.bisect_left(self._keys, key)]
                else:
                    if key not in self._rows:
                        bisect.insort(self._keys, key)
                    self._rows[key] = (value, self._version)
            return self._version

    def __len__(self) -> int:
        return len(self._rows)


class AsyncMemoryStore:
    """``MemoryStore``'s contract with ``async def`` methods, for ``ads``: each call can
    wait ``latency`` seconds first (as a networked store would), and never blocks the loop.
    """

    def __init__(self, latency: float = 0.0) -> None:
        self.inner = MemoryStore()
        self.latency = latency

    async def _wait(self) -> None:
        if self.latency:
            await asyncio.sleep(self.latency)

    async def get(self, key: bytes) -> Optional[Versioned]:
        await self._wait()
        return self.inner.get(key)

    async def get_many(self, keys: Sequence[bytes]) -> list[Optional[Versioned]]:
        await self._wait()
        return self.inner.get_many(keys)

    async def scan(
        self, start: bytes, end: Optional[bytes], limit: int, reverse: bool
    ) -> list[Entry]:
        await self._wait()
        return self.inner.scan(start, end, limit, reverse)

    async def commit(
        self,
        checks: Sequence[Tuple[bytes, Optional[int]]],
        writes: Sequence[Tuple[bytes, Optional[bytes]]],
    ) -> int:
        await self._wait()
        return self.inner.commit(checks, writes)
