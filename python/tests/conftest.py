"""Shared fixtures: every store backend, for both modules.

A *backend* is where a datastore keeps its rows: the ``memory:`` URL, a SQLite file in the
test's ``tmp_path``, PostgreSQL (one schema per test, dropped afterwards), or a Python store
object (``ds.MemoryStore`` for ``ds``, ``ads.AsyncMemoryStore`` for ``ads``). Every
``Backend.new_store`` call returns a *fresh, empty* store of that backend, so two datastores
opened from two calls never share rows; to share one, pass the same store (URL or object)
to both opens.

``Env`` pairs a backend with a module (``"ds"`` or ``"ads"``) so that one test body runs
against both: ``env.run(body)`` opens a datastore inside ``asyncio.run`` and awaits
``body(db)``. For ``ds`` the datastore is wrapped in ``SyncFace``, which only makes each
(blocking) method call awaitable; the calls themselves are ``ds.Datastore``'s own.

PostgreSQL: the URL comes from ``DS_TEST_POSTGRES`` (default
``postgres://postgres@127.0.0.1:5432/test``). Without a server answering there the
PostgreSQL cases are skipped, except with ``CI=true``, where they fail.
"""

from __future__ import annotations

import asyncio
import gc
import os
import shutil
import socket
import subprocess
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Awaitable, Callable, List, Optional
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest

import ads
import ds

BACKENDS = ["memory", "sqlite", "postgres", "python"]
URL_BACKENDS = ["memory", "sqlite", "postgres"]
MODES = ["ds", "ads"]

POSTGRES_URL = os.environ.get("DS_TEST_POSTGRES", "postgres://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() == "true"

_postgres_answers: Optional[bool] = None


def postgres_answers() -> bool:
    """True when something accepts TCP connections at the PostgreSQL URL's host and port."""
    global _postgres_answers
    if _postgres_answers is None:
        parts = urlsplit(POSTGRES_URL)
        host = parts.hostname or "127.0.0.1"
        port = parts.port or 5432
        try:
            with socket.create_connection((host, port), timeout=2):
                _postgres_answers = True
        except OSError:
            _postgres_answers = False
    return _postgres_answers


def require_postgres() -> None:
    """Skips (or, with CI=true, fails) the calling test when no PostgreSQL server answers."""
    if postgres_answers():
        return
    message = (
        f"no PostgreSQL server answers at {POSTGRES_URL} "
        "(set DS_TEST_POSTGRES, or run `bash .ci/postgres.sh`)"
    )
    if IN_CI:
        pytest.fail(message + "; with CI=true the PostgreSQL tests must run", pytrace=False)
    pytest.skip(message)


def _without_ds_params(url: str) -> str:
    """The URL without ds's own query parameters (psql does not know them)."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k not in ("schema", "max_connections")]
    return urlunsplit(parts._replace(query=urlencode(query)))


def _with_schema(url: str, schema: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}schema={schema}"


def drop_schemas(schemas: List[str]) -> None:
    """Drops the given PostgreSQL schemas with psql (skipped quietly without psql)."""
    if not schemas or shutil.which("psql") is None:
        return
    gc.collect()  # let dropped datastores close their connections first
    statements = "SET lock_timeout = '10s'; " + " ".join(
        f"DROP SCHEMA IF EXISTS {schema} CASCADE;" for schema in schemas
    )
    subprocess.run(
        ["psql", _without_ds_params(POSTGRES_URL), "-q", "-c", statements],
        check=False,
        capture_output=True,
        timeout=60,
    )


@dataclass
class Backend:
    """One kind of store; ``new_store`` makes a fresh, empty one of it."""

    name: str
    tmp_path: Path
    schemas: List[str] = field(default_factory=list)
    count: int = 0

    @property
    def is_python(self) -> bool:
        return self.name == "python"

    def new_store(self, mode: str = "ds") -> Any:
        """A fresh store for ``mode`` ("ds" or "ads"): a URL, or a Python store object."""
        self.count += 1
        if self.name == "memory":
            return "memory:"
        if self.name == "sqlite":
            return f"sqlite:{self.tmp_path}/ds-{self.count}.db"
        if self.name == "postgres":
            schema = f"pytest_{uuid.uuid4().hex}"
            self.schemas.append(schema)
            return _with_schema(POSTGRES_URL, schema)
        if self.name == "python":
            return ds.MemoryStore() if mode == "ds" else ads.AsyncMemoryStore()
        raise ValueError(self.name)

    def open_ds(self, store: Any = None, **options: Any) -> ds.Datastore:
        """A blocking datastore (over a fresh store unless one is given)."""
        return ds.Datastore.open(self.new_store("ds") if store is None else store, **options)

    async def open_ads(self, store: Any = None, **options: Any) -> ads.Datastore:
        """An asyncio datastore, opened in the running loop (over a fresh store unless given)."""
        return await ads.Datastore.open(
            self.new_store("ads") if store is None else store, **options
        )

    def cleanup(self) -> None:
        drop_schemas(self.schemas)
        self.schemas.clear()


def store_len(store: Any) -> int:
    """Rows in a Python store (``MemoryStore`` or ``AsyncMemoryStore``)."""
    if isinstance(store, ads.AsyncMemoryStore):
        return len(store.inner)
    return len(store)


class _AsyncIter:
    """A blocking iterator seen as an async one (each step is still a blocking call)."""

    def __init__(self, iterator: Any) -> None:
        self._iterator = iterator

    def __aiter__(self) -> "_AsyncIter":
        return self

    async def __anext__(self) -> Any:
        try:
            return next(self._iterator)
        except StopIteration:
            raise StopAsyncIteration from None


class SyncFace:
    """``ds.Datastore`` with awaitable methods: each call is the blocking call, made at once."""

    mode = "ds"

    def __init__(self, db: ds.Datastore) -> None:
        self.db = db

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.db, name)
        if name in ("query_pages", "export"):
            return lambda *args, **kwargs: _AsyncIter(method(*args, **kwargs))

        async def call(*args: Any, **kwargs: Any) -> Any:
            return method(*args, **kwargs)

        return call


@dataclass
class Env:
    """A module ("ds" or "ads") over a backend."""

    mode: str
    backend: Backend

    def new_store(self) -> Any:
        return self.backend.new_store(self.mode)

    async def open(self, store: Any = None, **options: Any) -> Any:
        """A datastore of this module (``ds`` wrapped in ``SyncFace``); call in a loop."""
        if self.mode == "ds":
            return SyncFace(self.backend.open_ds(store, **options))
        return await self.backend.open_ads(store, **options)

    def run(self, body: Callable[..., Awaitable[Any]], **options: Any) -> Any:
        """``asyncio.run``s ``body(db)`` over a datastore on a fresh store."""

        async def main() -> Any:
            db = await self.open(**options)
            return await body(db)

        return asyncio.run(main())

    def run_with_store(self, body: Callable[..., Awaitable[Any]], **options: Any) -> Any:
        """Like ``run``, but ``body(db, store)`` also gets the store (URL or object)."""

        async def main() -> Any:
            store = self.new_store()
            db = await self.open(store, **options)
            return await body(db, store)

        return asyncio.run(main())


async def collect(iterator: Any) -> list:
    """Every item of an async iterator (``ads`` pages, or ``SyncFace``'s)."""
    return [item async for item in iterator]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path):
    """Every backend in turn."""
    if request.param == "postgres":
        require_postgres()
    b = Backend(request.param, tmp_path)
    yield b
    b.cleanup()


@pytest.fixture(params=URL_BACKENDS)
def url_backend(request: pytest.FixtureRequest, tmp_path: Path):
    """The backends named by URL (memory, SQLite, PostgreSQL)."""
    if request.param == "postgres":
        require_postgres()
    b = Backend(request.param, tmp_path)
    yield b
    b.cleanup()


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def env(mode: str, backend: Backend) -> Env:
    """Both modules × every backend."""
    return Env(mode, backend)


@pytest.fixture
def python_backend(tmp_path: Path):
    """The Python store backend alone."""
    b = Backend("python", tmp_path)
    yield b
    b.cleanup()


@pytest.fixture
def python_env(mode: str, python_backend: Backend) -> Env:
    """Both modules over the Python store."""
    return Env(mode, python_backend)
