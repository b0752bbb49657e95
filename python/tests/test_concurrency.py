"""Concurrency: ``ds`` releases the GIL, ``ads`` never blocks the event loop, and a cancelled
``ads`` call leaves a whole commit or none and no leaked instance or admission slot.

(a) While a long ``ds`` call runs (a ``put_many`` of thousands of entities over a URL
store), another Python thread keeps counting: it makes progress in the middle of the call,
which it could not if the call held the GIL. (b) A thousand concurrent ``ads`` gets over a
slow asyncio store all return the right entities while a 10 ms heartbeat on the same loop
stays on time (its worst lateness is far below the run's length). (c) ``ads`` calls
cancelled by ``asyncio.wait_for`` at many points of their run leave the store whole
(balances conserved, a batch all or nothing) and the datastore, limited to two calls in
flight, keeps serving call after call. (d) Opening and dropping many ``ads`` datastores
leaks no file descriptors (each has a socket pair to wake its loop).
"""

from __future__ import annotations

import asyncio
import gc
import os
import threading
import time
from typing import List

import pytest

import ads
import ds
from conftest import Backend


# ---------------------------------------------------------------------------------------
# (a) ds releases the GIL


class Counter(threading.Thread):
    """Counts in pure Python, noting the time of every 1000th step."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.stop = threading.Event()
        self.stamps: List[float] = []
        self.started_counting = threading.Event()

    def run(self) -> None:
        n = 0
        clock = time.perf_counter
        while not self.stop.is_set():
            n += 1
            if n % 1000 == 0:
                self.stamps.append(clock())
                self.started_counting.set()


@pytest.mark.parametrize("url_kind", ["memory", "sqlite"])
def test_ds_call_releases_the_gil(url_kind: str, tmp_path):
    backend = Backend(url_kind, tmp_path)
    db = backend.open_ds()
    counter = Counter()
    counter.start()
    assert counter.started_counting.wait(10)
    try:
        # A batch holds at most 1000 entities: the call grows by their indexed properties.
        size, width = 1000, 10
        for attempt in range(6):
            entities = [
                (ds.Key("Bulk", attempt * 100_000 + i + 1), {f"p{j}": i for j in range(width)})
                for i in range(size)
            ]
            start = time.perf_counter()
            keys = db.put_many(entities)
            end = time.perf_counter()
            assert len(keys) == size
            if end - start >= 0.1:
                break
            width *= 2  # a fast machine: make the call long enough to observe
        duration = end - start
        quarter = duration / 4
        during = [t for t in counter.stamps if start <= t <= end]
        middle = [t for t in during if start + quarter <= t <= end - quarter]
    finally:
        counter.stop.set()
        counter.join()
    # Thousands of steps while the call ran, and some in its middle half: a call holding
    # the GIL would have allowed none there (the other thread cannot run a bytecode).
    assert len(during) >= 20, (duration, len(during))
    assert len(middle) >= 5, (duration, len(middle))
    assert db.get(keys[-1]) is not None


def test_ds_calls_from_threads_overlap(tmp_path):
    """Blocking calls in several threads share one datastore and all succeed."""
    db = ds.Datastore.open(f"sqlite:{tmp_path}/t.db")
    errors: List[BaseException] = []

    def work(t: int) -> None:
        try:
            for i in range(30):
                key = ds.Key("T", t * 1000 + i + 1)
                db.put(key, {"t": t, "i": i})
                assert db.get(key)["i"] == i
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(list(db.export("T"))) == 120
    assert db.check().problems == []


def test_ds_threads_overlap_over_a_slow_python_store():
    """A Python store's slow calls (which let go of the GIL, as I/O does) overlap across
    threads: the datastore holds no lock of its own around them."""

    class Slow(ds.MemoryStore):
        def get(self, key):
            time.sleep(0.01)
            return super().get(key)

        def get_many(self, keys):
            time.sleep(0.01)
            return super().get_many(keys)

    db = ds.Datastore.open(Slow())
    db.put("Thing:1", {"v": 1})
    errors: List[BaseException] = []

    def work() -> None:
        try:
            for _ in range(20):
                assert db.get("Thing:1")["v"] == 1
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(8)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    assert errors == []
    assert elapsed < 1.0, f"{elapsed:.2f} s; one after the other the 160 gets take 1.6 s"


# ---------------------------------------------------------------------------------------
# (b) ads never blocks the loop


def test_ads_thousand_gets_and_a_punctual_heartbeat():
    async def main():
        store = ads.AsyncMemoryStore()
        db = await ads.Datastore.open(store)
        count = 1000
        await db.put_many([(ds.Key("Item", i), {"i": i}) for i in range(1, count + 1)])
        store.latency = 0.005

        lateness: List[float] = []
        running = True

        async def heartbeat():
            while running:
                before = time.perf_counter()
                await asyncio.sleep(0.01)
                lateness.append(time.perf_counter() - before - 0.01)

        beat = asyncio.ensure_future(heartbeat())
        await asyncio.sleep(0.05)
        start = time.perf_counter()
        got = await asyncio.gather(*(db.get(ds.Key("Item", i)) for i in range(1, count + 1)))
        total = time.perf_counter() - start
        running = False
        await beat
        return got, total, lateness

    got, total, lateness = asyncio.run(main())
    assert [e.key.id for e in got] == list(range(1, 1001))
    assert [e["i"] for e in got] == list(range(1, 1001))
    # The gets ran concurrently (one after the other they would need 1000 × 5 ms).
    assert total < 4.0, total
    assert len(lateness) >= 3
    worst = max(lateness)
    assert worst < 0.5, (worst, total)
    assert worst < max(total / 2, 0.25), (worst, total)


# ---------------------------------------------------------------------------------------
# (c) cancellation

TIMEOUTS = [0.0, 0.001, 0.01, 0.03, 0.06, 0.09, 0.12, 0.16, 0.2]


def test_cancelled_transfers_commit_whole_or_not_at_all():
    async def main():
        store = ads.AsyncMemoryStore()
        db = await ads.Datastore.open(store, max_in_flight=2)
        await db.put("Account:alice", {"owner": "Alice", "balance": 1000})
        await db.put("Account:bob", {"owner": "Bob", "balance": 0})
        store.latency = 0.05
        timeouts = 0
        for timeout in TIMEOUTS:
            try:
                await asyncio.wait_for(db.transfer("Account:alice", "Account:bob", 10), timeout=timeout)
            except asyncio.TimeoutError:
                timeouts += 1
            # Let whatever store call was under way finish.
            await asyncio.sleep(0.15)
        store.latency = 0
        alice, bob = await db.get_many(["Account:alice", "Account:bob"])
        records = (await db.query("Transfer", ancestor="Account:alice")).entities
        assert (await db.check()).problems == []
        # 50 more calls through the two admission slots: none was leaked.
        for _ in range(25):
            await asyncio.wait_for(db.deposit("Account:bob", 1), timeout=10)
            await asyncio.wait_for(db.deposit("Account:bob", -1), timeout=10)
        return timeouts, alice, bob, records

    timeouts, alice, bob, records = asyncio.run(main())
    assert timeouts >= 5  # most of them were cut short
    # Money is conserved, and each applied transfer is whole: its record, its count.
    assert alice["balance"] + bob["balance"] == 1000
    moved = bob["balance"] // 10
    assert bob["balance"] % 10 == 0
    assert len(records) == moved == alice["transfers_out"]
    assert all(r["amount"] == 10 for r in records)


def test_cancelled_put_many_is_all_or_nothing_and_nothing_leaks():
    async def main():
        store = ads.AsyncMemoryStore()
        db = await ads.Datastore.open(store, max_in_flight=2)
        store.latency = 0.05
        outcomes = []
        for n, timeout in enumerate(TIMEOUTS):
            batch = [(ds.Key("Batch", n + 1, "Item", i), {"i": i}) for i in range(1, 21)]
            try:
                await asyncio.wait_for(db.put_many(batch), timeout=timeout)
                cut = False
            except asyncio.TimeoutError:
                cut = True
            await asyncio.sleep(0.15)
            outcomes.append((n + 1, cut))
        store.latency = 0
        sizes = {}
        for n, _cut in outcomes:
            page = await db.query("Item", ancestor=ds.Key("Batch", n), keys_only=True)
            sizes[n] = len(page.keys)
        assert (await db.check()).problems == []
        # The datastore (two calls in flight at most) still serves call after call: a
        # cancelled call that leaked its slot or instance would make these wait forever.
        await db.put("Account:a", {"owner": "A"})
        for i in range(50):
            await asyncio.wait_for(db.deposit("Account:a", 1), timeout=10)
        results = await asyncio.wait_for(
            asyncio.gather(*(db.get("Account:a") for _ in range(50))), timeout=10
        )
        return outcomes, sizes, results

    outcomes, sizes, results = asyncio.run(main())
    assert sum(cut for _n, cut in outcomes) >= 5
    for n, cut in outcomes:
        assert sizes[n] in (0, 20), (n, sizes[n])
        if not cut:
            assert sizes[n] == 20
    assert all(r["balance"] == 50 for r in results)


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc/self/fd")
def test_ads_datastores_opened_and_dropped_leak_no_descriptors():
    """Each ``ads.Datastore`` wakes its loop through a socket pair; dropping it frees them."""

    def open_descriptors() -> int:
        return len(os.listdir("/proc/self/fd"))

    async def main():
        db = await ads.Datastore.open("memory:")  # start the runtime's threads first
        await db.put("Thing:1", {})
        del db
        gc.collect()
        before = open_descriptors()
        for i in range(100):
            store = "memory:" if i % 2 else ads.AsyncMemoryStore()
            db = await ads.Datastore.open(store)
            await db.put("Thing:1", {"i": i})
            assert (await db.get("Thing:1"))["i"] == i
            del db
        gc.collect()
        await asyncio.sleep(0.05)
        gc.collect()
        return open_descriptors() - before

    grown = asyncio.run(main())
    assert grown < 20, f"{grown} descriptors more after opening and dropping 100 datastores"
