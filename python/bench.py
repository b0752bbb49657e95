"""The Python package's benchmark: section (h) of BENCHMARKS.md.

Each figure is a ratio of variants measured side by side in one run (the variants take
turns, round by round; each figure is the median of its rounds), on a shared, noisy
machine. Run it with the package installed (``bash python/test.sh`` leaves it installed in
``target/python-venv``):

    target/python-venv/bin/python python/bench.py            # print the section
    target/python-venv/bin/python python/bench.py --write BENCHMARKS.md

``cargo run --release -p ds-bench`` runs it too, as section (h) of the full report.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sqlite3
import statistics
import sys
import tempfile
import time

# Run as a script, this folder comes first on sys.path, and its `ds/` (the sources) would
# shadow the installed package: measure what `pip install` installed.
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != HERE]

import ads  # noqa: E402
import ds  # noqa: E402
from ds import _native  # noqa: E402

ROUNDS = 7
PROPS = {"owner": "Alice", "balance": 10}


def per_op_ns(fn, count: int) -> float:
    start = time.perf_counter()
    fn(count)
    return (time.perf_counter() - start) / count * 1e9


def interleave(variants: dict, count: int, rounds: int = ROUNDS) -> dict:
    """Runs each variant `count` times per round, taking turns; the median ns per op."""
    samples = {name: [] for name in variants}
    for name, fn in variants.items():  # warm up
        fn(max(1, count // 10))
    for _ in range(rounds):
        for name, fn in variants.items():
            samples[name].append(per_op_ns(fn, count))
    return {name: statistics.median(values) for name, values in samples.items()}


def memory_get(count: int) -> list:
    db = ds.Datastore.open("memory:")
    key = db.put("Account:alice", PROPS)
    pydb = ds.Datastore.open(ds.MemoryStore())
    pydb.put(key, PROPS)

    def python_ds(n):
        get = db.get
        for _ in range(n):
            get(key)

    def rust_ds(n):
        _native._bench_get(db, key, n)

    def python_store(n):
        get = pydb.get
        for _ in range(n):
            get(key)

    result = interleave(
        {"rust": rust_ds, "python": python_ds, "python_store": python_store}, count
    )
    return [
        ("`get`, memory store: Rust `ds` (a loop in Rust)", result["rust"], "1.0×"),
        (
            "`get`, memory store: Python `ds`",
            result["python"],
            f"{result['python'] / result['rust']:.2f}× Rust (target ≤ 2.5×)",
        ),
        (
            "`get`, Python store (`ds.MemoryStore`): Python `ds`",
            result["python_store"],
            f"{result['python_store'] / result['python']:.2f}× the URL store's",
        ),
    ]


def sqlite_get(count: int, folder: str) -> list:
    db = ds.Datastore.open(f"sqlite:{folder}/ds.db")
    key = db.put("Account:alice", PROPS)
    stored = json.dumps(db.get(key).properties)
    conn = sqlite3.connect(f"{folder}/plain.db", check_same_thread=False)
    # The journal mode ds's SQLite store uses: readers take no file locks per statement.
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE entities (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    conn.execute("INSERT INTO entities VALUES (?, ?)", (str(key), stored))
    conn.commit()

    def python_ds(n):
        get = db.get
        for _ in range(n):
            get(key)

    def python_sqlite3(n):
        execute, loads, text = conn.execute, json.loads, str(key)
        for _ in range(n):
            (value,) = execute("SELECT value FROM entities WHERE key = ?", (text,)).fetchone()
            loads(value)

    result = interleave({"sqlite3": python_sqlite3, "ds": python_ds}, count)
    return [
        ("`get`, SQLite: Python's `sqlite3`, `SELECT` + `json.loads`", result["sqlite3"], "1.0×"),
        (
            "`get`, SQLite: Python `ds`",
            result["ds"],
            f"{result['sqlite3'] / result['ds']:.2f}× `sqlite3`'s speed (target ≥ 0.8×)",
        ),
    ]


async def ads_wall(concurrency: int, rounds: int) -> tuple:
    store = ads.AsyncMemoryStore(latency=0.005)
    db = await ads.Datastore.open(store)
    keys = [ds.Key("Account", f"a{i}") for i in range(1000)]
    for start in range(0, len(keys), 500):
        await db.put_many([(key, PROPS) for key in keys[start : start + 500]])
    table = {str(key): PROPS for key in keys}

    async def plain_get(key):
        await asyncio.sleep(0.005)
        return table.get(key)

    async def run_ads():
        started = time.perf_counter()
        got = await asyncio.gather(*(db.get(keys[i % 1000]) for i in range(concurrency)))
        assert all(entity is not None for entity in got)
        return time.perf_counter() - started

    async def run_plain():
        started = time.perf_counter()
        got = await asyncio.gather(*(plain_get(str(keys[i % 1000])) for i in range(concurrency)))
        assert all(entity is not None for entity in got)
        return time.perf_counter() - started

    await run_ads()
    await run_plain()
    ads_times, plain_times = [], []
    for _ in range(rounds):
        ads_times.append(await run_ads())
        plain_times.append(await run_plain())
    return statistics.median(ads_times), statistics.median(plain_times)


def ads_concurrency(rounds: int) -> list:
    rows = []
    for concurrency in (1_000, 10_000):
        ads_time, plain_time = asyncio.run(ads_wall(concurrency, rounds))
        target = " (target ≤ 1.25×)" if concurrency == 1_000 else ""
        rows.append(
            (
                f"{concurrency:,} concurrent gets, 5 ms store: plain asyncio (sleep + dict)",
                plain_time * 1e9,
                "1.0×",
            )
        )
        rows.append(
            (
                f"{concurrency:,} concurrent gets, 5 ms store: `ads` (Python async store)",
                ads_time * 1e9,
                f"{ads_time / plain_time:.2f}× plain asyncio's wall time{target}",
            )
        )
    return rows


def section(quick: bool) -> str:
    count = 2_000 if quick else 20_000
    rounds = 3 if quick else ROUNDS
    with tempfile.TemporaryDirectory() as folder:
        rows = memory_get(count) + sqlite_get(count, folder)
    concurrency_rows = ads_concurrency(rounds)
    lines = [
        "## (h) Python: `ds` and `ads`",
        "",
        "The Python package (`python/`, built by `pip install ./python`: release profile) against "
        "Rust and against plain Python doing the same work. Generated by `python/bench.py`; "
        f"CPython {sys.version.split()[0]}. Per-op rows are the median of {rounds} interleaved "
        f"rounds of {count:,} calls; concurrency rows the median wall time of {rounds} rounds.",
        "",
        "| variant | time | ratio |",
        "| --- | --- | --- |",
    ]
    for name, ns, ratio in rows:
        lines.append(f"| {name} | {ns:,.0f} ns/op | {ratio} |")
    for name, ns, ratio in concurrency_rows:
        lines.append(f"| {name} | {ns / 1e6:,.1f} ms | {ratio} |")
    return "\n".join(lines) + "\n"


def splice(path: str, text: str) -> None:
    """Replaces section (h) of the report at `path` (or appends it)."""
    with open(path, encoding="utf-8") as f:
        report = f.read()
    pattern = re.compile(r"^## \(h\) Python.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(report):
        report = pattern.sub(lambda _: text + "\n", report)
    else:
        report = report.rstrip("\n") + "\n\n" + text
    with open(path, "w", encoding="utf-8") as f:
        f.write(report)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer iterations")
    parser.add_argument("--write", metavar="REPORT", help="splice the section into REPORT")
    args = parser.parse_args()
    text = section(args.quick)
    if args.write:
        splice(args.write, text)
        print(f"wrote section (h) into {args.write}", file=sys.stderr)
    else:
        sys.stdout.write(text)


if __name__ == "__main__":
    main()
