"""Differential: ``ds`` and ``ads`` run one model, so the same operations give the same
results.

A seeded random sequence of operations (puts of random values, deletes, batched reads and
writes, deposits and transfers that may be refused, queries with filters, orders, limits
and cursors, id allocation) runs through ``ds`` on one fresh store and through ``ads`` on
another fresh store of the same backend. Every result (or exception class and message) is
compared in a plain form, and so are the final exports and ``check`` reports.
"""

from __future__ import annotations

import asyncio
import datetime
import math
import random
from typing import Any, Callable, List, Tuple

import pytest

import ds
from conftest import Backend, SyncFace, collect
from values import norm

SEEDS = [7, 42, 2024]
STEPS = 80

NAMES = [ds.Key("Thing", n) for n in ("a", "b", "c", "é", "x y")] + [ds.Key("Thing", i) for i in (1, 2, 99)]
NAMES.append(ds.Key("Thing", "p", "Sub", 1))
ACCOUNTS = ["Account:a", "Account:b", "Account:c", "Account:ghost"]


def random_scalar(rng: random.Random) -> Any:
    kind = rng.randrange(11)
    if kind == 0:
        return None
    if kind == 1:
        return rng.random() < 0.5
    if kind == 2:
        return rng.choice([0, 1, -1, 2**63 - 1, -(2**63), rng.randint(-(10**12), 10**12)])
    if kind == 3:
        return rng.choice([0.0, -0.0, 1.5, math.inf, -math.inf, math.nan, rng.uniform(-1e9, 1e9)])
    if kind == 4:
        return "".join(rng.choice("ab é✓\x00\n") for _ in range(rng.randrange(8)))
    if kind == 5:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(6)))
    if kind == 6:
        offset = datetime.timedelta(minutes=rng.randrange(-12 * 60, 14 * 60))
        base = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
        moment = base + datetime.timedelta(microseconds=rng.randint(-(10**16), 10**16))
        return moment.astimezone(datetime.timezone(offset))
    if kind == 7:
        return rng.choice(NAMES)
    if kind == 8:
        return rng.randint(0, 5)
    if kind == 9:
        return rng.choice(["red", "green", "blue"])
    return rng.uniform(-10, 10)


def random_value(rng: random.Random, depth: int = 0) -> Any:
    roll = rng.random()
    if roll < 0.15 and depth < 3:
        return [random_scalar(rng) for _ in range(rng.randrange(4))]
    if roll < 0.25 and depth < 3:
        return {f"f{i}": random_value(rng, depth + 1) for i in range(rng.randrange(3))}
    return random_scalar(rng)


def random_properties(rng: random.Random) -> dict:
    props = {"n": rng.randint(0, 20), "tag": rng.choice(["red", "green", "blue"])}
    for i in range(rng.randrange(4)):
        props[f"p{i}"] = random_value(rng)
    return props


Op = Tuple[str, Callable[[Any], Any]]


def operations(seed: int) -> List[Op]:
    """The sequence, drawn once: each op is a name and a call on a datastore (awaitable)."""
    rng = random.Random(seed)
    ops: List[Op] = [
        ("open accounts", lambda db: db.put_many([(a, {"owner": a[-1], "balance": 100}) for a in ACCOUNTS[:3]])),
    ]
    for _ in range(STEPS):
        roll = rng.randrange(12)
        if roll <= 2:
            key, props = rng.choice(NAMES), random_properties(rng)
            ops.append(("put", lambda db, k=key, p=props: db.put(k, p)))
        elif roll == 3:
            batch = [(rng.choice(NAMES), random_properties(rng)) for _ in range(rng.randrange(1, 4))]
            ops.append(("put_many", lambda db, b=batch: db.put_many(b)))
        elif roll == 4:
            key = rng.choice(NAMES)
            ops.append(("delete", lambda db, k=key: db.delete(k)))
        elif roll == 5:
            keys = rng.sample(NAMES, rng.randrange(1, 5))
            ops.append(("get_many", lambda db, k=keys: db.get_many(k)))
        elif roll == 6:
            account, amount = rng.choice(ACCOUNTS), rng.randint(-150, 100)
            ops.append(("deposit", lambda db, a=account, m=amount: db.deposit(a, m)))
        elif roll == 7:
            source, destination = rng.choice(ACCOUNTS), rng.choice(ACCOUNTS)
            amount = rng.randint(-5, 120)
            ops.append(("transfer", lambda db, s=source, d=destination, m=amount: db.transfer(s, d, m)))
        elif roll == 8:
            key = rng.choice(NAMES)
            ops.append(("get", lambda db, k=key: db.get(k)))
        elif roll == 9:
            kwargs = rng.choice(
                [
                    {},
                    {"filters": [f"n >= {rng.randint(0, 20)}"]},
                    {"filters": [("n", "<", rng.randint(0, 20))], "orders": ["-n"]},
                    {"filters": [f'tag = "{rng.choice(["red", "green", "blue"])}"']},
                    {"filters": [("tag", "IN", ["red", "blue"])]},
                    {"orders": ["n"], "keys_only": True},
                    {"orders": ["-__key__"]},
                    {"filters": ["n > 3", "n <= 15"], "orders": ["n"]},
                ]
            )
            limit = rng.choice([None, 1, 2, 3])

            async def query_twice(db, kw=kwargs, lim=limit):
                first = await db.query("Thing", limit=lim, **kw)
                if first.next_cursor is None:
                    return [first]
                return [first, await db.query("Thing", limit=lim, start=first.next_cursor, **kw)]

            ops.append(("query", query_twice))
        elif roll == 10:
            limit = rng.randint(1, 4)
            ops.append(("query_pages", lambda db, lim=limit: collect(db.query_pages("Thing", orders=["-n"], limit=lim))))
        else:
            count = rng.randint(1, 5)
            ops.append(("allocate_ids", lambda db, c=count: db.allocate_ids("Thing", c)))
    ops.append(("check", lambda db: db.check()))
    return ops


async def run_all(db: Any, ops: List[Op]) -> List[Any]:
    results = []
    for name, op in ops:
        try:
            result = await op(db)
        except ds.Error as exc:
            result = exc
        if isinstance(result, ds.CheckReport):
            result = (result.entities, result.index_rows, result.problems)
        results.append((name, norm(result)))
    exported = [norm(e) for e in await collect(db.export())]
    return results + [("export", exported)]


@pytest.mark.parametrize("seed", SEEDS)
def test_ds_and_ads_agree(backend: Backend, seed: int):
    ops = operations(seed)

    async def main():
        sync_results = await run_all(SyncFace(backend.open_ds()), ops)
        async_results = await run_all(await backend.open_ads(), ops)
        return sync_results, async_results

    sync_results, async_results = asyncio.run(main())
    assert len(sync_results) == len(ops) + 1
    for i, (got_sync, got_async) in enumerate(zip(sync_results, async_results)):
        assert got_sync == got_async, f"step {i} ({got_sync[0]}) differs"
    # The sequence did real work, and the model refused some of it alike.
    kinds = {name for name, _ in ops}
    assert {"put", "deposit", "query"} <= kinds
    raised = [r for _name, r in sync_results if isinstance(r, tuple) and r and r[0] == "raised"]
    assert raised, "no refusal was exercised"
    assert sync_results[-2][1][2] == []  # check: no problems
    assert len(sync_results[-1][1]) > 3  # something was exported
