"""The public API, through both modules (``ds`` and ``ads``) over every store backend.

Proves: every value type makes a lossless round trip (with the documented conversions:
tuples to lists, bytearrays to bytes, aware datetimes to UTC at microsecond precision);
the single and batched reads, writes and deletes keep order and report missing entities as
``None``; ``Key`` behaves as a value (construction, parsing, both string forms, accessors,
equality, hashing, ordering, pickling); queries filter, sort, page and resume exactly;
listings and exports see every entity once, in key order; ids are never issued twice; the
example application's operations move money and refuse what they must; ``check`` finds a
sound store sound.
"""

from __future__ import annotations

import asyncio
import copy
import datetime
import doctest
import math
import pickle
import re
from pathlib import Path

import pytest

import ads
import ds
from conftest import Backend, Env, SyncFace, collect
from values import UTC, expected, norm, same

# ---------------------------------------------------------------------------------------
# Values

TZ_PLUS = datetime.timezone(datetime.timedelta(hours=5, minutes=30))
TZ_MINUS = datetime.timezone(datetime.timedelta(hours=-7))


def nest(levels: int) -> object:
    """``levels`` dicts, one inside the other, around an int."""
    value: object = 1
    for _ in range(levels):
        value = {"a": value}
    return value


VALUES = {
    "none": None,
    "true": True,
    "false": False,
    "zero": 0,
    "int": 42,
    "negative": -7,
    "int_min": -(2**63),
    "int_max": 2**63 - 1,
    "float": 1.5,
    "float_integral": 2.0,
    "float_tiny": 5e-324,
    "float_huge": 1.7976931348623157e308,
    "nan": math.nan,
    "inf": math.inf,
    "ninf": -math.inf,
    "neg_zero": -0.0,
    "empty_str": "",
    "str": "hello",
    "unicode": "héllo wörld ✓ 日本語 🎉",
    "control": "tab\tnewline\nnul\x00quote\"backslash\\",
    "bytes": b"\x00\x01\xfe\xff",
    "empty_bytes": b"",
    "bytearray": bytearray(b"abc"),
    "dt_utc": datetime.datetime(2024, 2, 29, 12, 34, 56, 789012, tzinfo=UTC),
    "dt_plus": datetime.datetime(2024, 1, 1, 0, 30, 0, 1, tzinfo=TZ_PLUS),
    "dt_minus": datetime.datetime(1999, 12, 31, 20, 0, 0, 999999, tzinfo=TZ_MINUS),
    "dt_pre_epoch": datetime.datetime(1900, 6, 15, 1, 2, 3, 456789, tzinfo=UTC),
    "dt_min": datetime.datetime(1, 1, 1, 0, 0, 0, 0, tzinfo=UTC),
    "dt_max": datetime.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    "key": ds.Key("Account", "alice"),
    "key_deep": ds.Key("Account", "alice", "Transfer", 7, namespace="tenant"),
    "list": [1, "two", 3.0, None, True, b"six"],
    "empty_list": [],
    "tuple": (1, 2, 3),
    "list_of_keys": [ds.Key("A", 1), ds.Key("B", "b")],
    "list_of_dicts": [{"x": 1}, {"y": [1, 2]}],
    "dict": {"city": "Paris", "zip": 75001, "geo": {"lat": 48.85, "tags": ["a", "b"]}},
    "empty_dict": {},
    "deep": nest(ds.MAX_DEPTH),
}


def test_max_depth_is_exported():
    assert ds.MAX_DEPTH == ads.MAX_DEPTH == 64


def test_every_value_type_round_trips(env: Env):
    async def body(db):
        key = await db.put("Thing:values", VALUES)
        assert key == ds.Key("Thing", "values")
        got = await db.get(key)
        assert isinstance(got, ds.Entity)
        assert got.key == key
        assert got.properties.keys() == VALUES.keys()
        for name, value in VALUES.items():
            want = expected(value)
            assert same(got[name], want), (name, got[name], want)
        return got

    got = env.run(body)
    # The conversions the comparison allowed, spelled out.
    assert isinstance(got["float_integral"], float)
    assert got["true"] is True and got["false"] is False
    assert math.copysign(1.0, got["neg_zero"]) == -1.0
    assert type(got["bytearray"]) is bytes and type(got["tuple"]) is list
    for name in ("dt_utc", "dt_plus", "dt_minus", "dt_pre_epoch", "dt_min", "dt_max"):
        value = got[name]
        assert value.utcoffset() == datetime.timedelta(0)
        assert value == VALUES[name]  # the same instant
        assert value.microsecond == VALUES[name].astimezone(UTC).microsecond
    assert got["dt_plus"] == datetime.datetime(2023, 12, 31, 19, 0, 0, 1, tzinfo=UTC)
    assert got["dt_minus"] == datetime.datetime(2000, 1, 1, 3, 0, 0, 999999, tzinfo=UTC)
    assert isinstance(got["key_deep"], ds.Key)
    assert got["key_deep"].namespace == "tenant"


def test_entity_object_and_put_forms(env: Env):
    async def body(db):
        entity = ds.Entity("Thing:e", {"n": 1})
        assert entity.key == ds.Key("Thing", "e") and entity["n"] == 1
        assert await db.put(entity) == entity.key
        assert await db.get("Thing:e") == entity
        # Properties omitted or None: an entity with no properties.
        assert await db.put("Thing:empty") == ds.Key("Thing", "empty")
        assert (await db.get("Thing:empty")).properties == {}
        await db.put(ds.Key("Thing", "none"), None)
        assert (await db.get("Thing:none")).properties == {}
        # A put replaces the whole entity.
        await db.put("Thing:e", {"m": 2})
        assert (await db.get("Thing:e")).properties == {"m": 2}
        with pytest.raises(KeyError):
            (await db.get("Thing:e"))["n"]

    env.run(body)


def test_declared_kind_gets_its_defaults(env: Env):
    async def body(db):
        await db.put("Account:alice", {"owner": "Alice"})
        got = await db.get("Account:alice")
        assert got.properties == {"owner": "Alice", "balance": 0, "tags": [], "transfers_out": 0}
        # An unindexed declared property may hold a long string.
        note = "n" * 20_000
        await db.put("Account:bob", {"owner": "Bob", "balance": 3, "note": note, "tags": ["x"]})
        got = await db.get("Account:bob")
        assert got["note"] == note and got["tags"] == ["x"] and got["balance"] == 3

    env.run(body)


def test_get_missing_delete_and_key_forms(env: Env):
    async def body(db):
        assert await db.get("Thing:missing") is None
        assert await db.get(ds.Key("Thing", 99)) is None
        key = await db.put(ds.Key("Thing", 7), {"v": 1})
        # The same entity by Key, by human string, and by URL-safe string.
        for form in (key, "Thing:7", key.urlsafe(), str(key)):
            got = await db.get(form)
            assert got is not None and got.key == key and got["v"] == 1
        # A name that looks like an id is quoted; it is another entity than the id.
        await db.put('Thing:"7"', {"v": 2})
        assert (await db.get(ds.Key("Thing", "7")))["v"] == 2
        assert (await db.get("Thing:7"))["v"] == 1
        assert await db.delete("Thing:7") is None
        assert await db.get("Thing:7") is None
        assert (await db.get('Thing:"7"'))["v"] == 2
        # Deleting what is absent is not an error.
        await db.delete("Thing:7")
        await db.delete(ds.Key("Thing", "never"))

    env.run(body)


def test_batches_keep_order(env: Env):
    async def body(db):
        keys = await db.put_many(
            [
                ("Thing:b", {"i": 1}),
                ds.Entity("Thing:a", {"i": 2}),
                (ds.Key("Thing", 3), {"i": 3}),
                ds.Entity(ds.Key("Thing", "c", "Child", 1), {"i": 4}),
            ]
        )
        assert keys == [
            ds.Key("Thing", "b"),
            ds.Key("Thing", "a"),
            ds.Key("Thing", 3),
            ds.Key("Thing", "c", "Child", 1),
        ]
        got = await db.get_many(["Thing:a", "Thing:missing", ds.Key("Thing", 3), "Thing:b", "Thing:a"])
        assert [e and e["i"] for e in got] == [2, None, 3, 1, 2]
        assert got[0].key == ds.Key("Thing", "a") and got[1] is None
        # Any iterable of keys; an empty batch is fine.
        assert await db.get_many(iter(["Thing:b"])) == [await db.get("Thing:b")]
        assert await db.get_many([]) == []
        assert await db.put_many([]) == []
        await db.delete_many([])
        # A generator of entities.
        keys = await db.put_many((f"Gen:{i}", {"i": i}) for i in range(1, 4))
        assert keys == [ds.Key("Gen", i) for i in range(1, 4)]
        await db.delete_many(["Thing:a", ds.Key("Thing", 3), "Thing:missing"])
        got = await db.get_many(["Thing:a", "Thing:b", "Thing:3", "Thing:c/Child:1"])
        assert [e and e["i"] for e in got] == [None, 1, None, 4]

    env.run(body)


# ---------------------------------------------------------------------------------------
# Keys (no store needed)


def test_key_construction_and_accessors():
    k = ds.Key("Account", "alice")
    assert (k.kind, k.name, k.id, k.id_or_name, k.namespace) == ("Account", "alice", None, "alice", "")
    assert k.parent is None
    assert k.path == (("Account", "alice"),)
    assert str(k) == "Account:alice"

    n = ds.Key("Account", 42)
    assert (n.kind, n.id, n.name, n.id_or_name) == ("Account", 42, None, 42)
    assert str(n) == "Account:42"

    child = ds.Key("Account", "alice", "Transfer", 7)
    assert child.kind == "Transfer" and child.id == 7
    assert child.parent == k
    assert child.path == (("Account", "alice"), ("Transfer", 7))
    assert str(child) == "Account:alice/Transfer:7"
    assert ds.Key("Transfer", 7, parent=k) == child

    ns = ds.Key("Account", "alice", namespace="tenant-1")
    assert ns.namespace == "tenant-1" and str(ns) == "tenant-1@Account:alice"
    assert ns != k
    nchild = ds.Key("Transfer", 1, parent=ns)
    assert nchild.namespace == "tenant-1" and nchild.parent == ns
    assert ds.Key("Transfer", 1, parent=ns, namespace="tenant-1") == nchild

    big = ds.Key("Thing", 2**64 - 1)
    assert big.id == 2**64 - 1 and ds.Key.parse(str(big)) == big


@pytest.mark.parametrize(
    "text",
    [
        "Account:alice",
        "Account:42",
        'Account:"42"',
        "Account:alice/Transfer:7",
        "tenant-1@Account:alice",
        'Note:"a/b"',
        'Note:"with space"',
        'Note:"quote\\"d"',
        'Note:"back\\\\slash"',
        'Note:"at@sign"',
        'Note:"colon:"',
        "Note:ünïcødé",
        "A:1/B:b/C:2/D:d",
    ],
)
def test_key_string_forms_round_trip(text: str):
    key = ds.Key.parse(text)
    assert str(key) == text
    assert ds.Key.parse(str(key)) == key
    safe = key.urlsafe()
    assert re.fullmatch(r"[A-Za-z0-9_-]+", safe), safe
    assert ds.Key.from_urlsafe(safe) == key
    assert ds.Key.parse(safe) == key  # parse reads either form
    assert eval(repr(key), {"Key": ds.Key}) == key
    assert repr(key).startswith("Key.parse(")


def test_key_names_needing_quotes_from_pairs():
    for name in ["42", "a/b", "x y", 'q"q', "b\\s", "n@m", "c:d", "tab\t"]:
        key = ds.Key("Note", name)
        assert key.name == name and key.id is None
        assert ds.Key.parse(str(key)) == key
        assert ds.Key.from_urlsafe(key.urlsafe()) == key


def test_key_equality_hash_ordering_pickling():
    a1 = ds.Key("A", 1)
    a2 = ds.Key("A", 2)
    a10 = ds.Key("A", 10)
    aname = ds.Key("A", "a")
    achild = ds.Key("A", 1, "B", 1)
    b = ds.Key("B", 1)
    ns = ds.Key("A", 1, namespace="ns")
    assert a1 == ds.Key.parse("A:1") and hash(a1) == hash(ds.Key.parse("A:1"))
    assert len({a1, ds.Key("A", 1), ds.Key.parse("A:1"), a2}) == 2
    assert {a1: "x"}[ds.Key.parse("A:1")] == "x"
    assert a1 != "A:1" and not (a1 == "A:1")
    assert ds.Key("A", "1") != a1
    # Ids before names (numerically), a parent before its children, then other kinds;
    # the default namespace before others.
    keys = [ns, b, aname, achild, a10, a2, a1]
    assert sorted(keys) == [a1, achild, a2, a10, aname, b, ns]
    assert a1 < a2 <= a2 < a10 and a10 > a1 and a1 >= a1
    assert not (a2 < a1)
    with pytest.raises(TypeError):
        a1 < "A:2"  # noqa: B015
    for key in keys:
        assert pickle.loads(pickle.dumps(key)) == key
        assert copy.deepcopy(key) == key and copy.copy(key) == key


def test_key_from_storage_names_entity_rows(python_backend: Backend):
    store = ds.MemoryStore()
    db = ds.Datastore.open(store)
    keys = [ds.Key("Thing", "a"), ds.Key("Thing", 5, "Child", "c"), ds.Key("X", 1, namespace="n")]
    db.put_many([(k, {"v": 1, "s": "x"}) for k in keys])
    db.allocate_ids("Thing", 3)
    rows = [row_key for row_key, _value, _version in store.scan(b"", None, 1000, False)]
    decoded = [ds.Key.from_storage(row) for row in rows]
    entity_keys = [k for k in decoded if k is not None]
    assert sorted(entity_keys) == sorted(keys)
    assert len(rows) > len(keys)  # index and allocator rows are not entities
    assert ds.Key.from_storage(b"") is None
    assert ds.Key.from_storage(b"\x20garbage") is None
    # The storage order of entity rows is the Key order.
    assert entity_keys == sorted(entity_keys)


def test_docstring_examples_run():
    """The examples in the two packages' docstrings print what they say."""
    for module in (ds, ads):
        finder = doctest.DocTestFinder(recurse=False)
        runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
        for test in finder.find(module):
            runner.run(test)
        result = runner.summarize(verbose=False)
        assert result.attempted > 0
        assert result.failed == 0, f"{module.__name__}'s docstring example fails"


def test_open_without_a_store_uses_sqlite_ds_db(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    db = ds.Datastore.open()
    db.put("Thing:a", {"v": 1})
    assert (tmp_path / "ds.db").exists()
    del db

    async def main():
        adb = await ads.Datastore.open()
        return await adb.get("Thing:a")

    assert asyncio.run(main())["v"] == 1
    assert repr(ds.Datastore.open("memory:")) == "ds.Datastore"


# ---------------------------------------------------------------------------------------
# Queries


def item(i: int) -> tuple:
    return (ds.Key("Item", i), {"n": i, "tag": "abc"[i % 3], "even": i % 2 == 0})


async def seed_items(db, count: int = 10) -> list:
    return await db.put_many([item(i) for i in range(1, count + 1)])


def ids(page) -> list:
    return [k.id for k in page.keys]


def test_query_kind_filters_and_orders(env: Env):
    async def body(db):
        await seed_items(db)
        await db.put("Other:1", {"n": 5})
        page = await db.query("Item")
        assert ids(page) == list(range(1, 11))
        assert [e.key for e in page.entities] == page.keys
        assert page.entities[0] == ds.Entity("Item:1", {"n": 1, "tag": "b", "even": False})
        assert page.next_cursor is None

        cases = [
            (["n = 5"], [5]),
            (["n == 5"], [5]),
            (["n < 3"], [1, 2]),
            (["n <= 3"], [1, 2, 3]),
            (["n > 8"], [9, 10]),
            (["n >= 9"], [9, 10]),
            (["n >= 3", "n < 7"], [3, 4, 5, 6]),
            (["n IN [2, 4, 11]"], [2, 4]),
            (['tag = "a"'], [3, 6, 9]),
            (['tag in ["a", "b"]'], [1, 3, 4, 6, 7, 9, 10]),
            (["even = true"], [2, 4, 6, 8, 10]),
            (['tag = "a"', "even = false"], [3, 9]),
            (["n = 99"], []),
        ]
        for filters, want in cases:
            assert ids(await db.query("Item", filters=filters)) == want, filters
        tuple_cases = [
            ([("n", "=", 5)], [5]),
            ([("n", "<", 3)], [1, 2]),
            ([("n", "<=", 3)], [1, 2, 3]),
            ([("n", ">", 8)], [9, 10]),
            ([("n", ">=", 9)], [9, 10]),
            ([("n", "IN", [2, 4, 11])], [2, 4]),
            ([("n", "in", (7,))], [7]),
            ([("tag", "=", "a"), ("even", "=", False)], [3, 9]),
            ([("n", ">", 2), "n <= 4"], [3, 4]),
        ]
        for filters, want in tuple_cases:
            assert ids(await db.query("Item", filters=filters)) == want, filters
        assert ids(await db.query("Item", orders=["n"])) == list(range(1, 11))
        assert ids(await db.query("Item", orders=["-n"])) == list(range(10, 0, -1))
        assert ids(await db.query("Item", orders=["-__key__"])) == list(range(10, 0, -1))
        assert ids(await db.query("Item", filters=["n > 2"], orders=["-n"])) == list(range(10, 2, -1))
        assert ids(await db.query("Item", filters=["n > 2"], orders=["n"], limit=2)) == [3, 4]
        # Any iterable of filters and orders.
        assert ids(await db.query("Item", filters=iter(["n < 3"]), orders=("-n",))) == [2, 1]

    env.run(body)


def test_count_metadata_and_schema(env: Env):
    async def body(db):
        await seed_items(db)
        assert await db.count("Item") == 10
        assert await db.count("Item", filters=["n > 7"]) == 3
        assert await db.count("Item", filters=[("tag", "=", "a")], limit=2) == 2
        assert await db.count("Nothing") == 0
        with pytest.raises(ValueError):
            await db.count("Item", limit=0)
        kinds = await db.query("__kind__", keys_only=True)
        assert [str(k) for k in kinds.keys] == ["__kind__:Item"]
        schema = await db.schema()
        assert [k["kind"] for k in schema["kinds"]] == ["Account", "Transfer"]

    env.run(body)


def test_query_limit_offset_cursors_keys_only(env: Env):
    async def body(db):
        await seed_items(db)
        first = await db.query("Item", limit=3)
        assert ids(first) == [1, 2, 3] and isinstance(first.next_cursor, str)
        second = await db.query("Item", limit=3, start=first.next_cursor)
        assert ids(second) == [4, 5, 6]
        assert ids(await db.query("Item", limit=3, offset=2)) == [3, 4, 5]
        assert ids(await db.query("Item", offset=8)) == [9, 10]
        assert ids(await db.query("Item", offset=20)) == []
        # end: stop at a cursor.
        assert ids(await db.query("Item", end=second.next_cursor)) == [1, 2, 3, 4, 5, 6]
        assert ids(await db.query("Item", start=first.next_cursor, end=second.next_cursor)) == [4, 5, 6]
        # Cursors of a sorted, filtered query.
        desc = await db.query("Item", filters=["n >= 2"], orders=["-n"], limit=4)
        assert ids(desc) == [10, 9, 8, 7]
        more = await db.query("Item", filters=["n >= 2"], orders=["-n"], limit=4, start=desc.next_cursor)
        assert ids(more) == [6, 5, 4, 3]
        keys = await db.query("Item", filters=['tag = "a"'], keys_only=True)
        assert ids(keys) == [3, 6, 9] and keys.entities == []
        assert "QueryPage(" in repr(keys)

    env.run(body)


def test_query_ancestor_namespace_and_composite_index(env: Env):
    async def body(db):
        parent = ds.Key("Parent", "p")
        await db.put_many(
            [
                (parent, {"x": 1}),
                (ds.Key("Child", 1, parent=parent), {"x": 2}),
                (ds.Key("Child", 2, parent=parent), {"x": 3}),
                (ds.Key("Child", 3, parent=ds.Key("Child", 1, parent=parent)), {"x": 4}),
                (ds.Key("Parent", "q", "Child", 1), {"x": 5}),
                ("ns1@Child:1", {"x": 6}),
            ]
        )
        page = await db.query("Child", ancestor=parent)
        assert page.keys == [
            ds.Key("Parent", "p", "Child", 1),
            ds.Key("Parent", "p", "Child", 1, "Child", 3),
            ds.Key("Parent", "p", "Child", 2),
        ]
        # A range filter sorts by its property first.
        assert (await db.query("Child", ancestor="Parent:p", filters=["x >= 3"])).keys == [
            ds.Key("Parent", "p", "Child", 2),
            ds.Key("Parent", "p", "Child", 1, "Child", 3),
        ]
        # A kindless ancestor query: the ancestor itself and every descendant, in key order.
        kindless = await db.query(ancestor=parent)
        assert kindless.keys[0] == parent and len(kindless.keys) == 4
        assert kindless.keys == sorted(kindless.keys)
        # Namespaces are separate.
        assert (await db.query("Child", namespace="ns1")).keys == [ds.Key("Child", 1, namespace="ns1")]
        assert len((await db.query("Child")).keys) == 4

        await db.put_many(
            [
                ("Account:a1", {"owner": "Alice", "balance": 5}),
                ("Account:a2", {"owner": "Alice", "balance": 50}),
                ("Account:a3", {"owner": "Alice", "balance": 20}),
                ("Account:b1", {"owner": "Bob", "balance": 100}),
            ]
        )
        rich_first = await db.query("Account", filters=['owner = "Alice"'], orders=["-balance"])
        assert [k.name for k in rich_first.keys] == ["a2", "a3", "a1"]
        poor_first = await db.query("Account", filters=[("owner", "=", "Alice")], orders=["balance"])
        assert [k.name for k in poor_first.keys] == ["a1", "a3", "a2"]

    env.run(body)


def test_query_pages_yield_every_entity_once(env: Env):
    async def body(db):
        await seed_items(db, 10)
        for limit, kwargs, want in [
            (3, {}, list(range(1, 11))),
            (4, {"filters": ["n >= 2"], "orders": ["-n"]}, list(range(10, 1, -1))),
            (3, {"offset": 2}, list(range(3, 11))),
            (10, {}, list(range(1, 11))),
            (1, {"filters": ['tag = "a"']}, [3, 6, 9]),
            (2, {"keys_only": True}, list(range(1, 11))),
        ]:
            pages = await collect(db.query_pages("Item", limit=limit, **kwargs))
            assert all(isinstance(p, ds.QueryPage) for p in pages)
            assert all(len(p.keys) <= limit for p in pages)
            got = [i for p in pages for i in ids(p)]
            assert got == want, (limit, kwargs)
            # Every page but the last ones is full: limit is the page size.
            assert len(pages) >= math.ceil(len(want) / limit)
            assert all(len(p.keys) == limit for p in pages[: len(want) // limit])
        # Without a limit: one page.
        pages = await collect(db.query_pages("Item"))
        assert [ids(p) for p in pages] == [list(range(1, 11))]

    env.run(body)


def test_pages_beyond_the_largest_page(env: Env):
    """A page holds at most 1000 results, whatever the limit; paging goes on past them."""

    async def body(db):
        count = 1205
        for first in range(1, count + 1, 500):  # a batch holds at most 1000 entities
            await db.put_many([(ds.Key("Item", i), {"n": i}) for i in range(first, min(first + 500, count + 1))])
        with pytest.raises(ValueError, match="limit must be from 1 to 1000"):
            await db.query("Item", limit=5000)
        for limit in (None, 1000):
            page = await db.query("Item", limit=limit)
            assert len(page.keys) == 1000 and page.next_cursor is not None, limit
            pages = await collect(db.query_pages("Item", limit=limit))
            assert [len(p.keys) for p in pages][:2] == [1000, 205], limit
            assert [k.id for p in pages for k in p.keys] == list(range(1, count + 1))
        pages = await collect(db.query_pages("Item", orders=["-n"], offset=5, keys_only=True))
        assert [k.id for p in pages for k in p.keys] == list(range(count - 5, 0, -1))

    env.run(body)


def test_entities_pages_and_export_in_key_order(env: Env):
    async def body(db):
        count = 1100  # more than a listing page (500 rows)
        for first in range(1, count + 1, 550):  # a batch holds at most 1000 entities
            await db.put_many([(ds.Key("Bulk", i), {"i": i}) for i in range(first, first + 550)])
        await db.put_many([("Account:zed", {"owner": "Z"}), ("Aardvark:x", {}), ("ns@Bulk:1", {"i": 0})])
        listed = []
        start = None
        pages = 0
        while True:
            page = await db.entities(start)
            assert isinstance(page, ds.EntityPage)
            listed.extend(page.entities)
            pages += 1
            if page.next is None:
                break
            assert isinstance(page.next, bytes)
            start = page.next
        assert pages >= 3
        keys = [e.key for e in listed]
        assert len(keys) == count + 3 and len(set(keys)) == len(keys)
        assert keys == sorted(keys)
        exported = await collect(db.export())
        assert exported == listed
        bulk = await collect(db.export("Bulk"))
        assert [e.key for e in bulk] == [ds.Key("Bulk", i) for i in range(1, count + 1)] + [
            ds.Key("Bulk", 1, namespace="ns")
        ]
        assert [e["i"] for e in bulk[:3]] == [1, 2, 3]
        only = await db.entities(kind="Aardvark")
        assert [e.key for e in only.entities] == [ds.Key("Aardvark", "x")]
        assert await collect(db.export("Nothing")) == []

    env.run(body)


# ---------------------------------------------------------------------------------------
# Ids, the example application, check


def test_allocate_ids_never_overlap(env: Env):
    async def body(db):
        ranges = []
        for count in (1, 10, 5, 1, 100):
            first = await db.allocate_ids("Thing", count)
            assert isinstance(first, int) and first >= 1
            ranges.append(range(first, first + count))
        taken = [i for r in ranges for i in r]
        assert len(taken) == len(set(taken))
        assert ranges == sorted(ranges, key=lambda r: r.start)
        # Other kinds and namespaces count on their own.
        assert await db.allocate_ids("Other") == 1
        assert await db.allocate_ids("Thing", 2, namespace="ns") == 1
        assert await db.allocate_ids("Thing", count=1, namespace="ns") == 3

    env.run(body)


def test_deposit_and_transfer(env: Env):
    async def body(db):
        await db.put("Account:alice", {"owner": "Alice", "balance": 100})
        await db.put(ds.Key("Account", "bob"), {"owner": "Bob"})
        assert await db.deposit("Account:alice", 5) == 105
        assert await db.deposit(ds.Key("Account", "alice"), -5) == 100
        receipt = await db.transfer("Account:alice", "Account:bob", 30)
        assert isinstance(receipt, ds.Receipt)
        assert receipt.transfer == ds.Key("Account", "alice", "Transfer", 1)
        assert (receipt.source_balance, receipt.destination_balance) == (70, 30)
        assert "Receipt(" in repr(receipt)
        record = await db.get(receipt.transfer)
        assert record.properties == {
            "from": ds.Key("Account", "alice"),
            "to": ds.Key("Account", "bob"),
            "amount": 30,
        }
        second = await db.transfer(ds.Key("Account", "bob"), "Account:alice", 10)
        assert second.transfer == ds.Key("Account", "bob", "Transfer", 1)
        third = await db.transfer("Account:alice", "Account:bob", 1)
        assert third.transfer == ds.Key("Account", "alice", "Transfer", 2)
        assert (await db.get("Account:alice"))["transfers_out"] == 2

        balances = lambda: db.get_many(["Account:alice", "Account:bob"])  # noqa: E731
        before = [e["balance"] for e in await balances()]
        assert before == [79, 21]
        with pytest.raises(ds.FailedPrecondition, match="insufficient funds"):
            await db.deposit("Account:alice", -80)
        with pytest.raises(ds.FailedPrecondition, match="insufficient funds"):
            await db.transfer("Account:alice", "Account:bob", 80)
        with pytest.raises(ds.FailedPrecondition):
            await db.transfer("Account:alice", "Account:alice", 1)
        with pytest.raises(ds.FailedPrecondition):
            await db.transfer("Account:alice", "Account:bob", 0)
        with pytest.raises(ds.NotFound):
            await db.deposit("Account:nobody", 5)
        with pytest.raises(ds.NotFound):
            await db.transfer("Account:alice", "Account:nobody", 5)
        with pytest.raises(ds.NotFound):
            await db.transfer("Account:nobody", "Account:alice", 5)
        assert [e["balance"] for e in await balances()] == before
        assert await db.get("Account:nobody") is None
        assert (await db.query("Transfer", ancestor="Account:alice", keys_only=True)).keys == [
            ds.Key("Account", "alice", "Transfer", 1),
            ds.Key("Account", "alice", "Transfer", 2),
        ]

    env.run(body)


def test_call_runs_operations_by_name(env: Env):
    async def body(db):
        await db.put("Account:alice", {"owner": "Alice", "balance": 10})
        await db.put("Account:bob", {"owner": "Bob"})
        out = await db.call("deposit", {"account": "Account:alice", "amount": 5})
        assert out == {"account": "Account:alice", "balance": 15}
        out = await db.call("transfer", {"source": "Account:alice", "destination": "Account:bob", "amount": 3})
        assert out == {"transfer": "Account:alice/Transfer:1", "source_balance": 12, "destination_balance": 3}
        # A Key is accepted where the JSON input wants a key string.
        out = await db.call("deposit", {"account": ds.Key("Account", "bob"), "amount": 1})
        assert out["balance"] == 4
        with pytest.raises(ds.NotFound, match="no operation"):
            await db.call("no_such_operation", {})
        with pytest.raises(ds.NotFound):
            await db.call("no_such_operation")
        with pytest.raises(ds.FailedPrecondition):
            await db.call("deposit", {"account": "Account:alice", "amount": -100})
        assert (await db.get("Account:alice"))["balance"] == 12

    env.run(body)


def test_check_reports_no_problems(env: Env):
    async def body(db):
        empty = await db.check()
        assert isinstance(empty, ds.CheckReport)
        assert (empty.entities, empty.problems) == (0, [])
        await seed_items(db, 7)
        await db.put("Account:alice", {"owner": "Alice", "balance": 9, "tags": ["x", "y"]})
        await db.put("Account:bob", {"owner": "Bob"})
        await db.transfer("Account:alice", "Account:bob", 4)
        await db.delete("Item:3")
        await db.put("Item:4", {"n": 40})
        await db.put("Thing:v", VALUES)
        report = await db.check()
        assert report.problems == []
        assert report.entities == 7 - 1 + 2 + 1 + 1
        assert report.index_rows > report.entities
        assert "CheckReport(" in repr(report)

    env.run(body)


def test_results_are_the_same_types_in_both_modules(backend: Backend):
    """``ds`` and ``ads`` return instances of the very same classes."""
    sync_db = backend.open_ds()
    sync_db.put("Thing:a", {"v": [1]})

    async def main():
        adb = await backend.open_ads()
        await adb.put("Thing:a", {"v": [1]})
        return await adb.get("Thing:a"), await adb.query("Thing")

    got, page = asyncio.run(main())
    assert type(got) is type(sync_db.get("Thing:a")) is ds.Entity
    assert type(page) is type(sync_db.query("Thing")) is ds.QueryPage
    assert norm(got) == norm(sync_db.get("Thing:a"))
    assert ads.Key is ds.Key and ads.Entity is ds.Entity and ads.Error is ds.Error
    assert ads.Datastore is not ds.Datastore


def test_enable_logging_routes_events_to_python_logging(caplog):
    """``enable_logging`` sends the hosts' events to loggers named after their targets."""
    import logging

    with pytest.raises(ValueError):
        ds.enable_logging("ds::api=nonsense_level[")
    db = ds.Datastore.open(ds.MemoryStore())
    db.put("Model:my_key", {})
    try:
        with caplog.at_level(logging.DEBUG):
            ds.enable_logging("ds::api=debug,ds::guest=debug,ds::transport=debug")
            db.get("Model:my_key")
        records = [(r.name, r.getMessage()) for r in caplog.records if r.name.startswith("ds.")]
        assert ("ds.api", "Model sync get()") in records
        assert ("ds.guest", "Model base _get()") in records
        assert ("ds.transport", "get() with key = my_key") in records
        caplog.clear()
        with caplog.at_level(logging.DEBUG):
            ds.enable_logging("off")  # a second call changes the filter
            db.get("Model:my_key")
        assert [r for r in caplog.records if r.name.startswith("ds.")] == []
    finally:
        ds.enable_logging("off")


COMPONENT = Path(__file__).resolve().parents[2] / "host-core" / "component" / "ds_guest.wasm"


@pytest.mark.skipif(not COMPONENT.is_file(), reason=f"{COMPONENT} is not in this checkout")
def test_open_with_an_explicit_component(mode: str):
    """``component=`` runs a build of the model from a file (str or PathLike)."""

    async def main():
        for component in (COMPONENT, str(COMPONENT)):
            if mode == "ds":
                db = SyncFace(ds.Datastore.open("memory:", component=component, transaction_retries=1))
            else:
                db = await ads.Datastore.open("memory:", component=component, transaction_retries=1, max_in_flight=4)
            await db.put("Account:a", {"owner": "A", "balance": 1})
            assert await db.deposit("Account:a", 2) == 3

    asyncio.run(main())


def test_stub_matches_the_extension():
    """Every class, method and function ``_native.pyi`` declares exists with that signature."""
    import ast
    import inspect

    from ds import _native

    # The stub in the source tree (what the wheel ships), else the installed one.
    stub = Path(__file__).resolve().parents[1] / "ds" / "_native.pyi"
    if not stub.is_file():
        stub = Path(ds.__file__).with_name("_native.pyi")
    tree = ast.parse(stub.read_text())

    def stub_params(function: ast.FunctionDef) -> list:
        a = function.args
        names = [x.arg for x in a.posonlyargs + a.args]
        names += ["*" + a.vararg.arg] if a.vararg else []
        names += [x.arg for x in a.kwonlyargs]
        return [n for n in names if n != "self"]

    def runtime_params(obj: object) -> list:
        sig = inspect.signature(obj)
        return [
            ("*" + p.name if p.kind is p.VAR_POSITIONAL else p.name)
            for p in sig.parameters.values()
            if p.name != "self"
        ]

    checked = 0
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            assert runtime_params(getattr(_native, node.name)) == stub_params(node), node.name
            checked += 1
        if not isinstance(node, ast.ClassDef):
            continue
        if any(getattr(base, "id", "") == "Protocol" for base in node.bases):
            continue  # a description of store objects, not a class of the module
        cls = getattr(_native, node.name)
        for item in node.body:
            if not isinstance(item, ast.FunctionDef):
                continue
            assert hasattr(cls, item.name), f"{node.name}.{item.name}"
            is_property = any(getattr(d, "id", "") == "property" for d in item.decorator_list)
            if is_property or (item.name.startswith("__") and item.name != "__init__"):
                continue
            obj = cls if item.name == "__init__" else getattr(cls, item.name)
            assert runtime_params(obj) == stub_params(item), f"{node.name}.{item.name}"
            checked += 1
    assert checked >= 39
    for name in ds.__all__:
        assert hasattr(ds, name), name
    for name in ads.__all__:
        assert hasattr(ads, name), name
