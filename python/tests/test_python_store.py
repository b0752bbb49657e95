"""Python stores: the transport contract, and how the datastore treats a store object.

Proves, for ``ds.MemoryStore`` and ``ads.AsyncMemoryStore`` directly: keys order bytewise;
scans honour start (inclusive), end (exclusive), limit and direction; a commit applies all
of its writes or, when a version check fails, raises ``ds.Conflict`` and writes nothing;
commit versions only grow; of racing commits on one version exactly one wins.

Through ``ds`` and ``ads`` over such stores: the datastore lists and queries in the
store's order; a rival commit between a transaction's read and its commit is retried by
the model (and, when retries are spent, surfaces as ``ds.Conflict`` with nothing written);
concurrent deposits to one account lose no update. A store raising
``ds.StoreUnavailable``/``ds.StoreInvalidRequest`` surfaces as that exception; any other
exception, or an answer that breaks the contract (wrong types, lengths, order or range),
becomes ``ds.StoreInternal`` naming the method, after which the process and the datastore
carry on. An object without the transport methods is a ``TypeError`` at open. ``ads``
takes ``async def`` and plain store methods alike.
"""

from __future__ import annotations

import asyncio
import collections
import inspect
import threading
from typing import Any, Callable, Dict, List, Optional

import pytest

import ads
import ds
from conftest import Env, SyncFace, collect

# ---------------------------------------------------------------------------------------
# The contract, on the stores themselves


async def maybe(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


STORE_KINDS = ["sync", "async"]


def new_store(kind: str) -> Any:
    return ds.MemoryStore() if kind == "sync" else ads.AsyncMemoryStore(latency=0.001)


@pytest.fixture(params=STORE_KINDS)
def store_kind(request) -> str:
    return request.param


TRICKY_KEYS = [b"\xff", b"b", b"a\x00", b"", b"\x00", b"ab", b"\x00\x00", b"a", b"\x01", b"a\xff", b"\x7f\x80"]


def test_keys_order_bytewise(store_kind: str):
    async def main():
        store = new_store(store_kind)
        for i, key in enumerate(TRICKY_KEYS):
            await maybe(store.commit([], [(key, b"v%d" % i)]))
        rows = await maybe(store.scan(b"", None, 1000, False))
        assert [k for k, _v, _ver in rows] == sorted(TRICKY_KEYS)
        assert all(isinstance(ver, int) for _k, _v, ver in rows)
        back = await maybe(store.scan(b"", None, 1000, True))
        assert [k for k, _v, _ver in back] == sorted(TRICKY_KEYS, reverse=True)
        assert (await maybe(store.get(b"a\x00")))[0] == b"v%d" % TRICKY_KEYS.index(b"a\x00")

    asyncio.run(main())


def test_bounded_scans(store_kind: str):
    async def main():
        store = new_store(store_kind)
        keys = [bytes([c]) for c in b"abcdefgh"]
        await maybe(store.commit([], [(k, k.upper()) for k in keys]))

        async def scan(start, end, limit, reverse=False):
            rows = await maybe(store.scan(start, end, limit, reverse))
            assert isinstance(rows, list)
            return b"".join(k for k, _v, _ver in rows)

        assert await scan(b"c", b"f", 100) == b"cde"  # start inclusive, end exclusive
        assert await scan(b"c", b"f", 100, True) == b"edc"
        assert await scan(b"c", b"f", 2) == b"cd"
        assert await scan(b"c", b"f", 2, True) == b"ed"  # reverse: the last ones first
        assert await scan(b"c", None, 100) == b"cdefgh"
        assert await scan(b"c", None, 2, True) == b"hg"
        assert await scan(b"", b"c", 100) == b"ab"
        assert await scan(b"bb", b"dd", 100) == b"cd"  # bounds need not be keys
        assert await scan(b"f", b"c", 100) == b""  # empty range
        assert await scan(b"c", b"c", 100) == b""
        assert await scan(b"zz", None, 100) == b""
        assert await scan(b"a", None, 0) == b""
        rows = await maybe(store.scan(b"a", b"b", 10, False))
        assert rows == [(b"a", b"A", rows[0][2])]

    asyncio.run(main())


def test_commits_are_atomic_and_checked(store_kind: str):
    async def main():
        store = new_store(store_kind)
        v1 = await maybe(store.commit([(b"k", None)], [(b"k", b"one"), (b"other", b"x")]))
        assert await maybe(store.get(b"k")) == (b"one", v1)
        assert await maybe(store.get(b"missing")) is None
        before = await maybe(store.scan(b"", None, 100, False))

        # A failed check: ds.Conflict naming the key, and none of the writes.
        for checks in (
            [(b"k", None)],  # must be absent, is present
            [(b"k", v1 + 100)],  # wrong version
            [(b"other", v1), (b"absent", v1)],  # second check fails
        ):
            with pytest.raises(ds.Conflict) as info:
                await maybe(store.commit(checks, [(b"k", b"two"), (b"new", b"n"), (b"other", None)]))
            assert info.value.args[0] in {c[0] for c in checks}
            assert await maybe(store.scan(b"", None, 100, False)) == before

        # Checks that hold: every write lands, deletes included, under one new version.
        v2 = await maybe(store.commit([(b"k", v1), (b"absent", None)], [(b"k", b"two"), (b"new", b"n"), (b"other", None)]))
        assert v2 > v1
        assert await maybe(store.get(b"k")) == (b"two", v2)
        assert await maybe(store.get(b"new")) == (b"n", v2)
        assert await maybe(store.get(b"other")) is None
        # Deleting an absent key is fine; a commit of nothing still gets a version.
        v3 = await maybe(store.commit([], [(b"never", None)]))
        v4 = await maybe(store.commit([], []))
        assert v2 < v3 < v4
        got = await maybe(store.get_many([b"new", b"nope", b"k"]))
        assert got == [(b"n", v2), None, (b"two", v2)]
        if store_kind == "sync":
            assert len(store) == 2
        else:
            assert len(store.inner) == 2

    asyncio.run(main())


def test_commit_versions_increase(store_kind: str):
    async def main():
        store = new_store(store_kind)
        versions = [await maybe(store.commit([], [(b"k%d" % (i % 3), b"%d" % i)])) for i in range(20)]
        assert versions == sorted(set(versions))

    asyncio.run(main())


def test_one_winner_among_racing_commits_threads():
    store = ds.MemoryStore()
    version = store.commit([], [(b"k", b"start")])
    workers = 16
    barrier = threading.Barrier(workers)
    outcomes: List[str] = []
    lock = threading.Lock()

    def race(i: int) -> None:
        seen = store.get(b"k")[1]
        barrier.wait()
        try:
            store.commit([(b"k", seen)], [(b"k", b"w%d" % i), (b"by%d" % i, b"x")])
            result = "won"
        except ds.Conflict:
            result = "lost"
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=race, args=(i,)) for i in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["lost"] * (workers - 1) + ["won"]
    value, new_version = store.get(b"k")
    assert new_version > version
    winner = int(value[1:])
    # Only the winner's other write exists.
    assert [k for k, _v, _ver in store.scan(b"by", b"bz", 100, False)] == [b"by%d" % winner]


def test_one_winner_among_racing_commits_tasks():
    async def main():
        store = ads.AsyncMemoryStore(latency=0.002)
        await store.commit([], [(b"k", b"start")])

        async def race(i: int) -> str:
            _value, seen = await store.get(b"k")
            try:
                await store.commit([(b"k", seen)], [(b"k", b"w%d" % i)])
                return "won"
            except ds.Conflict:
                return "lost"

        outcomes = await asyncio.gather(*(race(i) for i in range(20)))
        assert sorted(outcomes) == ["lost"] * 19 + ["won"]

    asyncio.run(main())


# ---------------------------------------------------------------------------------------
# A store object that records, injects faults, and answers garbage


class Faulty:
    """A ``MemoryStore`` behind hooks: ``before[m](*args)`` runs first (it may raise);
    ``after[m](result, *args)`` replaces the answer. ``calls`` counts every call."""

    def __init__(self) -> None:
        self.inner = ds.MemoryStore()
        self.before: Dict[str, Callable[..., Any]] = {}
        self.after: Dict[str, Callable[..., Any]] = {}
        self.calls: collections.Counter = collections.Counter()
        self.versions: List[int] = []

    def _do(self, method: str, *args: Any) -> Any:
        self.calls[method] += 1
        if method in self.before:
            self.before[method](*args)
        result = getattr(self.inner, method)(*args)
        if method == "commit":
            self.versions.append(result)
        if method in self.after:
            return self.after[method](result, *args)
        return result

    def clear(self) -> None:
        self.before.clear()
        self.after.clear()

    def get(self, key):
        return self._do("get", key)

    def get_many(self, keys):
        return self._do("get_many", keys)

    def scan(self, start, end, limit, reverse):
        return self._do("scan", start, end, limit, reverse)

    def commit(self, checks, writes):
        return self._do("commit", checks, writes)

    def __len__(self) -> int:
        return len(self.inner)


class AsyncFaulty(Faulty):
    """``Faulty`` with ``async def`` methods that yield to the loop first."""

    async def get(self, key):
        await asyncio.sleep(0)
        return self._do("get", key)

    async def get_many(self, keys):
        await asyncio.sleep(0)
        return self._do("get_many", keys)

    async def scan(self, start, end, limit, reverse):
        await asyncio.sleep(0)
        return self._do("scan", start, end, limit, reverse)

    async def commit(self, checks, writes):
        await asyncio.sleep(0)
        return self._do("commit", checks, writes)


FAULTY_KINDS = ["ds", "ads-async", "ads-plain"]


@pytest.fixture(params=FAULTY_KINDS)
def faulty_kind(request) -> str:
    return request.param


def run_faulty(kind: str, body: Callable[..., Any], **options: Any) -> Any:
    """``body(db, store)`` over a fresh ``Faulty`` store: ``ds``; ``ads`` with ``async def``
    methods; ``ads`` with plain methods."""

    async def main():
        store = AsyncFaulty() if kind == "ads-async" else Faulty()
        if kind == "ds":
            db = SyncFace(ds.Datastore.open(store, **options))
        else:
            db = await ads.Datastore.open(store, **options)
        return await body(db, store)

    return asyncio.run(main())


def raiser(exc_type: type, message: str) -> Callable[..., None]:
    def hook(*_args: Any) -> None:
        raise exc_type(message)

    return hook


# ---------------------------------------------------------------------------------------
# The contract through the datastore

NAMES = ["a", "a\x00", "a\x00b", "a\x01", "ab", "b", "é", "\U0001f600", "Z", "0a", "a b", "a/b"]
IDS = [1, 2, 255, 256, 2**32, 2**63, 2**64 - 1]


def test_datastore_order_is_the_store_order(faulty_kind: str):
    async def body(db, store):
        keys = [ds.Key("Thing", n) for n in NAMES] + [ds.Key("Thing", i) for i in IDS]
        keys += [ds.Key("Thing", "a", "Child", 1), ds.Key("Thing", 1, namespace="ns"), ds.Key("Th", 1)]
        await db.put_many([(k, {"k": str(k)}) for k in reversed(keys)])
        want = sorted(keys)
        rows = [k for k, _v, _ver in store.inner.scan(b"", None, 10**6, False)]
        in_store = [ds.Key.from_storage(r) for r in rows if ds.Key.from_storage(r) is not None]
        assert in_store == want
        assert [e.key for e in await collect(db.export())] == want
        things = [k for k in want if k.kind == "Thing" and k.namespace == ""]
        assert (await db.query("Thing")).keys == things
        assert (await db.query("Thing", orders=["-__key__"])).keys == things[::-1]
        # Bounded scans: small pages, both directions.
        for orders in ([], ["-__key__"]):
            pages = await collect(db.query_pages("Thing", orders=orders, limit=4))
            assert [k for p in pages for k in p.keys] == (things if not orders else things[::-1])
        assert store.calls["scan"] > 0
        # The datastore never asks a scan for more than the store's limit of 1000 rows.
        seen: List[int] = []
        store.before["scan"] = lambda start, end, limit, reverse: seen.append(limit)
        await db.query("Thing", limit=1000)
        await collect(db.export())
        assert seen and max(seen) <= 1000 and min(seen) >= 1

    run_faulty(faulty_kind, body)


def test_commit_versions_increase_through_the_datastore(faulty_kind: str):
    async def body(db, store):
        await db.put("Account:a", {"owner": "A", "balance": 10})
        await db.put("Account:b", {"owner": "B"})
        for i in range(5):
            await db.deposit("Account:a", 1)
            await db.transfer("Account:a", "Account:b", 1)
            await db.put(f"Thing:{i + 1}", {"i": i})
            await db.allocate_ids("Thing", 2)
        await db.delete("Thing:1")
        await db.put("Thing:last", {})
        assert len(store.versions) >= 24
        assert store.versions == sorted(set(store.versions))
        # Every row a commit wrote carries that commit's version.
        row = store.inner.scan(b"", None, 10**6, False)
        assert max(ver for _k, _v, ver in row) == store.versions[-1]

    run_faulty(faulty_kind, body)


def rival_on_commit(store: Faulty, times: Optional[int]) -> Callable[..., None]:
    """A commit hook: before the datastore's commit lands, a rival rewrites one row the
    commit checks (same bytes, new version), so the check fails (``times`` times)."""
    left = [times]

    def hook(checks, writes):
        if left[0] == 0:
            return
        checked = [key for key, version in checks if version is not None]
        if not checked:
            return
        if left[0] is not None:
            left[0] -= 1
        value, _version = store.inner.get(checked[0])
        store.inner.commit([], [(checked[0], value)])

    return hook


def test_lost_race_is_retried_by_the_model(faulty_kind: str):
    async def body(db, store):
        await db.put("Account:a", {"owner": "A", "balance": 10})
        await db.put("Account:b", {"owner": "B", "balance": 0})
        store.before["commit"] = rival_on_commit(store, times=2)
        commits = store.calls["commit"]
        assert await db.deposit("Account:a", 5) == 15
        assert store.calls["commit"] - commits == 3  # two lost races, then the winner
        store.before["commit"] = rival_on_commit(store, times=1)
        receipt = await db.transfer("Account:a", "Account:b", 4)
        assert (receipt.source_balance, receipt.destination_balance) == (11, 4)
        store.clear()
        assert [e["balance"] for e in await db.get_many(["Account:a", "Account:b"])] == [11, 4]
        assert (await db.check()).problems == []

    run_faulty(faulty_kind, body, transaction_retries=5)


def test_spent_retries_raise_conflict_and_write_nothing(faulty_kind: str):
    async def body(db, store):
        await db.put("Account:a", {"owner": "A", "balance": 10})
        await db.put("Account:b", {"owner": "B", "balance": 0})
        store.before["commit"] = rival_on_commit(store, times=None)
        commits = store.calls["commit"]
        rows = store.inner.scan(b"", None, 10**6, False)
        with pytest.raises(ds.Conflict):
            await db.deposit("Account:a", 5)
        assert store.calls["commit"] - commits == 3  # the first attempt and 2 retries
        with pytest.raises(ds.Conflict):
            await db.transfer("Account:a", "Account:b", 5)
        # Only the rival's rewrites (same bytes) happened.
        after = store.inner.scan(b"", None, 10**6, False)
        assert [(k, v) for k, v, _ in after] == [(k, v) for k, v, _ in rows]
        store.clear()
        assert await db.deposit("Account:a", 5) == 15

    run_faulty(faulty_kind, body, transaction_retries=2)


def test_racing_deposits_lose_no_update(env: Env):
    """N concurrent deposits to one account (threads for ds, tasks for ads), every backend."""
    workers, each = 6, 4

    async def body(db):
        await db.put("Account:hot", {"owner": "Hot", "balance": 0})
        if env.mode == "ds":
            errors: List[BaseException] = []

            def work() -> None:
                try:
                    for _ in range(each):
                        db.db.deposit("Account:hot", 1)
                except BaseException as exc:  # noqa: BLE001
                    errors.append(exc)

            threads = [threading.Thread(target=work) for _ in range(workers)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert errors == []
        else:

            async def work() -> None:
                for _ in range(each):
                    await db.deposit("Account:hot", 1)

            await asyncio.gather(*(work() for _ in range(workers)))
        assert (await db.get("Account:hot"))["balance"] == workers * each
        assert (await db.check()).problems == []

    env.run(body, transaction_retries=60)


def test_racing_allocations_never_overlap(env: Env):
    async def body(db):
        if env.mode == "ds":
            got: List[int] = []
            lock = threading.Lock()

            def work() -> None:
                for _ in range(5):
                    first = db.db.allocate_ids("Thing", 3)
                    with lock:
                        got.append(first)

            threads = [threading.Thread(target=work) for _ in range(4)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        else:
            got = list(await asyncio.gather(*(db.allocate_ids("Thing", 3) for _ in range(20))))
        taken = [first + i for first in got for i in range(3)]
        assert len(got) == 20 and len(taken) == len(set(taken))

    env.run(body, transaction_retries=60)


# ---------------------------------------------------------------------------------------
# Errors a store raises


@pytest.mark.parametrize(
    "raised, expected",
    [
        (ds.StoreUnavailable, ds.StoreUnavailable),
        (ds.StoreInvalidRequest, ds.StoreInvalidRequest),
        (RuntimeError, ds.StoreInternal),
        (ZeroDivisionError, ds.StoreInternal),
        (KeyError, ds.StoreInternal),
        (ValueError, ds.StoreInternal),
        (ds.NotFound, ds.StoreInternal),
        (ds.StoreInternal, ds.StoreInternal),
    ],
)
@pytest.mark.parametrize("method", ["get", "get_many", "scan", "commit"])
def test_store_exceptions_map(faulty_kind: str, method: str, raised: type, expected: type):
    calls = {
        "get": lambda db: db.get("Thing:1"),
        "get_many": lambda db: db.get_many(["Thing:1", "Thing:2"]),
        "scan": lambda db: db.query("Thing"),
        "commit": lambda db: db.put("Thing:3", {"v": 3}),
    }

    async def body(db, store):
        await db.put_many([("Thing:1", {"v": 1}), ("Thing:2", {"v": 2})])
        rows = store.inner.scan(b"", None, 10**6, False)
        store.before[method] = raiser(raised, f"boom in {method}")
        with pytest.raises(ds.StoreError) as info:
            await calls[method](db)
        assert type(info.value) is expected
        message = str(info.value)
        assert "boom in" in message
        if expected is ds.StoreInternal:
            assert method in message and raised.__name__ in message
        assert store.calls[method] >= 1
        # Nothing was written, and the datastore works again once the store does.
        assert store.inner.scan(b"", None, 10**6, False) == rows
        store.clear()
        assert (await calls[method](db)) is not None or method == "commit"
        assert (await db.get("Thing:3")) == (ds.Entity("Thing:3", {"v": 3}) if method == "commit" else None)
        assert (await db.get("Thing:1"))["v"] == 1
        assert (await db.check()).problems == []

    run_faulty(faulty_kind, body)


def entries(n: int, start: bytes) -> list:
    return [(start + i.to_bytes(2, "big"), b"x", 1) for i in range(n)]


GARBAGE = [
    # (id, method, after-hook making the answer garbage, the call that reads it)
    ("get-str", "get", lambda r, *a: "junk", "get"),
    ("get-list", "get", lambda r, *a: [r[0], r[1]] if r else ["x", 1], "get"),
    ("get-1-tuple", "get", lambda r, *a: (b"v",), "get"),
    ("get-3-tuple", "get", lambda r, *a: (b"v", 1, 2), "get"),
    ("get-str-value", "get", lambda r, *a: ("v", 1), "get"),
    ("get-negative-version", "get", lambda r, *a: (r[0], -1), "get"),
    ("get-str-version", "get", lambda r, *a: (r[0], "1"), "get"),
    ("get-float-version", "get", lambda r, *a: (r[0], 1.5), "get"),
    ("get-huge-version", "get", lambda r, *a: (r[0], 2**64), "get"),
    ("get-many-short", "get_many", lambda r, *a: r[:-1], "get_many"),
    ("get-many-long", "get_many", lambda r, *a: r + [None], "get_many"),
    ("get-many-tuple", "get_many", lambda r, *a: tuple(r), "get_many"),
    ("get-many-none", "get_many", lambda r, *a: None, "get_many"),
    ("get-many-bad-item", "get_many", lambda r, *a: [r[0], "junk"], "get_many"),
    ("scan-not-list", "scan", lambda r, *a: tuple(r), "scan"),
    ("scan-none", "scan", lambda r, *a: None, "scan"),
    ("scan-out-of-order", "scan", lambda r, *a: list(reversed(r)) if a[3] is False else r, "scan"),
    ("scan-duplicate", "scan", lambda r, *a: r[:1] + r[:1] + r[1:], "scan"),
    ("scan-before-start", "scan", lambda r, *a: [(a[0][:-1], b"x", 1)] + r, "scan"),
    ("scan-at-end", "scan", lambda r, *a: r + [(a[1], b"x", 1)] if a[1] is not None else r + [(b"\xff" * 4, b"x", 1)], "scan"),
    ("scan-over-limit", "scan", lambda r, *a: entries(a[2] + 1, a[0]), "scan"),
    ("scan-2-tuple", "scan", lambda r, *a: [(k, v) for k, v, _ in r], "scan"),
    ("scan-str-key", "scan", lambda r, *a: [(k.decode("latin-1"), v, ver) for k, v, ver in r], "scan"),
    ("scan-str-value", "scan", lambda r, *a: [(k, "v", ver) for k, v, ver in r], "scan"),
    ("scan-bad-version", "scan", lambda r, *a: [(k, v, -ver) for k, v, ver in r], "scan"),
    ("commit-str", "commit", lambda r, *a: "v1", "commit"),
    ("commit-none", "commit", lambda r, *a: None, "commit"),
    ("commit-negative", "commit", lambda r, *a: -1, "commit"),
    ("commit-float", "commit", lambda r, *a: float(r), "commit"),
]

GARBAGE_CALLS = {
    "get": lambda db: db.get("Thing:1"),
    "get_many": lambda db: db.get_many(["Thing:1", "Thing:2", "Thing:3"]),
    "scan": lambda db: db.query("Thing"),
    "commit": lambda db: db.put("Thing:9", {"v": 9}),
}


@pytest.mark.parametrize("method, hook, call", [pytest.param(m, h, c, id=i) for i, m, h, c in GARBAGE])
def test_garbage_answers_are_internal_errors(faulty_kind: str, method: str, hook: Callable, call: str):
    async def body(db, store):
        await db.put_many([(f"Thing:{i}", {"v": i}) for i in (1, 2, 3)])
        store.after[method] = hook
        with pytest.raises(ds.StoreInternal) as info:
            await GARBAGE_CALLS[call](db)
        assert f"Python store's {method}" in str(info.value)
        store.clear()
        # The datastore goes on.
        assert (await db.get("Thing:1"))["v"] == 1
        assert [e["v"] for e in (await db.query("Thing")).entities][:3] == [1, 2, 3]
        await db.put("Thing:10", {"v": 10})
        assert (await db.check()).problems == []

    run_faulty(faulty_kind, body)


def test_undecodable_value_is_corrupt(faulty_kind: str):
    async def body(db, store):
        await db.put("Thing:1", {"v": 1})
        store.after["get"] = lambda r, *a: (b"\xfe\x00garbage", r[1]) if r else r
        store.after["get_many"] = lambda r, *a: [(b"\xfe\x00garbage", x[1]) if x else x for x in r]
        with pytest.raises(ds.Corrupt):
            await db.get("Thing:1")
        store.clear()
        assert (await db.get("Thing:1"))["v"] == 1

    run_faulty(faulty_kind, body)


class NoScan:
    def get(self, key):
        return None

    def commit(self, checks, writes):
        return 1


class NoCommit:
    def get(self, key):
        return None

    def scan(self, start, end, limit, reverse):
        return []


class NoGet:
    def scan(self, start, end, limit, reverse):
        return []

    def commit(self, checks, writes):
        return 1


@pytest.mark.parametrize("cls, missing", [(NoScan, "scan"), (NoCommit, "commit"), (NoGet, "get")])
def test_object_without_transport_methods_is_refused_at_open(mode: str, cls: type, missing: str):
    async def main():
        with pytest.raises(TypeError, match=missing):
            if mode == "ds":
                ds.Datastore.open(cls())
            else:
                await ads.Datastore.open(cls())

    asyncio.run(main())


def test_blocking_datastore_refuses_an_async_store():
    """``ds`` cannot await a coroutine: an ``async def`` store is refused at open, with a
    pointer to ``ads`` (which takes it)."""
    with pytest.raises(TypeError, match="ads.Datastore"):
        ds.Datastore.open(ads.AsyncMemoryStore())

    async def main():
        db = await ads.Datastore.open(ads.AsyncMemoryStore())
        await db.put("Account:a", {"owner": "A"})
        assert (await db.get("Account:a")).properties["owner"] == "A"

    asyncio.run(main())


def test_minimal_store_without_get_many_works(faulty_kind: str):
    """``get_many`` is optional: the datastore falls back to ``get``."""

    class Minimal:
        def __init__(self, inner):
            self.inner = inner

        def get(self, key):
            return self.inner.get(key)

        def scan(self, start, end, limit, reverse):
            return self.inner.scan(start, end, limit, reverse)

        def commit(self, checks, writes):
            return self.inner.commit(checks, writes)

    class AsyncMinimal(Minimal):
        async def get(self, key):
            return self.inner.get(key)

        async def scan(self, start, end, limit, reverse):
            return self.inner.scan(start, end, limit, reverse)

        async def commit(self, checks, writes):
            return self.inner.commit(checks, writes)

    async def main():
        inner = ds.MemoryStore()
        if faulty_kind == "ds":
            db = SyncFace(ds.Datastore.open(Minimal(inner)))
        elif faulty_kind == "ads-plain":
            db = await ads.Datastore.open(Minimal(inner))
        else:
            db = await ads.Datastore.open(AsyncMinimal(inner))
        await db.put("Account:a", {"owner": "A", "balance": 5})
        await db.put("Account:b", {"owner": "B"})
        receipt = await db.transfer("Account:a", "Account:b", 2)
        assert receipt.destination_balance == 2
        got = await db.get_many(["Account:b", "Account:x", "Account:a"])
        assert [e and e["balance"] for e in got] == [2, None, 3]
        assert len(inner) > 3

    asyncio.run(main())


def test_ads_store_coroutine_raising_after_awaiting():
    """An ``async def`` store method that raises after a real await maps like a plain one."""

    class Slow(AsyncFaulty):
        failing = False

        async def get(self, key):
            await asyncio.sleep(0.01)
            if self.failing:
                raise ds.StoreUnavailable("went away")
            return self._do("get", key)

        async def scan(self, start, end, limit, reverse):
            await asyncio.sleep(0.01)
            if self.failing:
                raise OSError("disk on fire")
            return self._do("scan", start, end, limit, reverse)

    async def main():
        store = Slow()
        db = await ads.Datastore.open(store)
        await db.put("Thing:1", {"v": 1})
        store.failing = True
        with pytest.raises(ds.StoreUnavailable, match="went away"):
            await db.get("Thing:1")
        with pytest.raises(ds.StoreInternal, match="scan"):
            await db.query("Thing")
        # Other methods still work; so does the loop.
        assert (await db.get_many(["Thing:1"]))[0]["v"] == 1
        await asyncio.sleep(0)

    asyncio.run(main())


def test_pages_resume_after_a_failed_page(faulty_kind: str):
    """A page that failed can be asked for again: iteration resumes where it stopped."""

    async def body(db, store):
        await db.put_many([(ds.Key("T", i), {"n": i}) for i in range(1, 11)])
        pages = db.query_pages("T", limit=3)
        first = await pages.__anext__()
        assert [k.id for k in first.keys] == [1, 2, 3]
        store.before["scan"] = raiser(ds.StoreUnavailable, "down for a moment")
        with pytest.raises(ds.StoreUnavailable):
            await pages.__anext__()
        store.clear()
        rest = await collect(pages)
        assert [[k.id for k in p.keys] for p in rest] == [[4, 5, 6], [7, 8, 9], [10]]
        # Exhausted stays exhausted.
        assert await collect(pages) == []
        export = db.export()
        store.before["scan"] = raiser(RuntimeError, "flaky")
        with pytest.raises(ds.StoreInternal):
            await export.__anext__()
        store.clear()
        assert [e.key.id for e in await collect(export)] == list(range(1, 11))

    run_faulty(faulty_kind, body)


def test_ads_max_in_flight_bounds_concurrent_calls():
    """``max_in_flight`` bounds the calls (and so the store calls) running at once."""

    class Gauge(AsyncFaulty):
        def __init__(self) -> None:
            super().__init__()
            self.now = 0
            self.most = 0

        async def get(self, key):
            self.now += 1
            self.most = max(self.most, self.now)
            try:
                await asyncio.sleep(0.01)
                return self._do("get", key)
            finally:
                self.now -= 1

    async def most_at_once(limit):
        store = Gauge()
        db = await ads.Datastore.open(store, max_in_flight=limit)
        await db.put("Thing:1", {"v": 1})
        store.most = 0
        got = await asyncio.gather(*(db.get("Thing:1") for _ in range(30)))
        assert all(e["v"] == 1 for e in got)
        return store.most

    async def main():
        return await most_at_once(2), await most_at_once(None)

    bounded, unbounded = asyncio.run(main())
    assert bounded == 2
    assert unbounded > 2
