"""Bad input, through both modules: each raises its specific exception and writes nothing.

Proves: wrong Python types are ``TypeError``; values out of range (ints past int64, naive
datetimes, cycles, nesting past ``ds.MAX_DEPTH``) are ``ValueError``; integer arguments
past their range are ``OverflowError``; bad keys are ``ds.InvalidKey``; entities the
model's rules refuse are ``ds.InvalidEntity``; queries no rule or index allows are
``ds.InvalidQuery``; missing entities/operations ``ds.NotFound``; refused business rules
``ds.FailedPrecondition``; bad operation arguments ``ds.InvalidArgument``. After every
refusal the store is exactly as before: the same export, the same ``check`` counts and,
for a Python store, the very same rows (and ``len``). A ``put_many`` with one bad entity
writes none of them.
"""

from __future__ import annotations

import asyncio
import datetime
import decimal
import math
from typing import Any, Callable, List, Tuple

import pytest

import ads
import ds
from conftest import Backend, Env, collect, store_len
from values import norm

UTC = datetime.timezone.utc
PLUS_1H = datetime.timezone(datetime.timedelta(hours=1))
MINUS_1H = datetime.timezone(datetime.timedelta(hours=-1))


def _cyclic_list() -> list:
    items: list = [1]
    items.append(items)
    return items


def _cyclic_dict() -> dict:
    d: dict = {"a": 1}
    d["self"] = d
    return d


def _cycle_through_both() -> dict:
    d: dict = {}
    d["l"] = [1, {"back": d}]
    return d


def _nest(levels: int) -> object:
    value: object = 1
    for _ in range(levels):
        value = {"a": value}
    return value


def _key_with_id_zero() -> ds.Key:
    """A key no constructor accepts (id 0), read back from storage bytes."""
    store = ds.MemoryStore()
    ds.Datastore.open(store).put("Thing:1", {})
    row = next(k for k, _v, _ver in store.scan(b"", None, 100, False) if ds.Key.from_storage(k))
    assert row.endswith((1).to_bytes(8, "big"))
    key = ds.Key.from_storage(row[:-8] + bytes(8))
    assert key is not None and key.id == 0
    return key


BAD_KEY = _key_with_id_zero()

Call = Callable[[Any], Any]


def case(id: str, call: Call, error: type) -> Any:
    return pytest.param(call, error, id=id)


def valid_then(bad: Tuple[Any, Any]) -> list:
    """A batch whose third entity is ``bad``: nothing of it may be written."""
    return [("Thing:new1", {"v": 1}), ("Account:carol", {"owner": "Carol"}), bad, ("Thing:new2", {})]


CASES = [
    # --- TypeError: wrong Python types -------------------------------------------------
    case("set-value", lambda db: db.put("Thing:x", {"s": {1, 2}}), TypeError),
    case("frozenset-value", lambda db: db.put("Thing:x", {"s": frozenset()}), TypeError),
    case("object-value", lambda db: db.put("Thing:x", {"o": object()}), TypeError),
    case("complex-value", lambda db: db.put("Thing:x", {"c": 1j}), TypeError),
    case("decimal-value", lambda db: db.put("Thing:x", {"d": decimal.Decimal("1.5")}), TypeError),
    case("date-value", lambda db: db.put("Thing:x", {"d": datetime.date(2024, 1, 1)}), TypeError),
    case("time-value", lambda db: db.put("Thing:x", {"t": datetime.time(1, 2, tzinfo=UTC)}), TypeError),
    case("timedelta-value", lambda db: db.put("Thing:x", {"t": datetime.timedelta(1)}), TypeError),
    case("range-value", lambda db: db.put("Thing:x", {"r": range(3)}), TypeError),
    case("generator-value", lambda db: db.put("Thing:x", {"g": (i for i in ())}), TypeError),
    case("type-value", lambda db: db.put("Thing:x", {"t": int}), TypeError),
    case("set-in-list", lambda db: db.put("Thing:x", {"l": [1, {2}]}), TypeError),
    case("object-in-dict", lambda db: db.put("Thing:x", {"d": {"e": object()}}), TypeError),
    case("int-property-name", lambda db: db.put("Thing:x", {1: "x"}), TypeError),
    case("none-property-name", lambda db: db.put("Thing:x", {None: "x"}), TypeError),
    case("bytes-name-nested", lambda db: db.put("Thing:x", {"d": {b"k": 1}}), TypeError),
    case("tuple-name-in-list", lambda db: db.put("Thing:x", {"l": [{(1,): 1}]}), TypeError),
    case("properties-list", lambda db: db.put("Thing:x", ["a"]), TypeError),
    case("properties-str", lambda db: db.put("Thing:x", "v=1"), TypeError),
    case("properties-pairs", lambda db: db.put("Thing:x", [("v", 1)]), TypeError),
    case("key-int", lambda db: db.put(123, {}), TypeError),
    case("key-bytes", lambda db: db.put(b"Thing:x", {}), TypeError),
    case("key-none", lambda db: db.put(None, {}), TypeError),
    case("key-tuple", lambda db: db.put(("Thing", "x"), {}), TypeError),
    case("entity-and-properties", lambda db: db.put(ds.Entity("Thing:x", {}), {"v": 1}), TypeError),
    case("get-none", lambda db: db.get(None), TypeError),
    case("get-int", lambda db: db.get(1), TypeError),
    case("delete-float", lambda db: db.delete(3.5), TypeError),
    case("get-many-str", lambda db: db.get_many("Thing:keep"), TypeError),
    case("get-many-ints", lambda db: db.get_many([1]), TypeError),
    case("get-many-not-iterable", lambda db: db.get_many(5), TypeError),
    case("delete-many-str", lambda db: db.delete_many("Thing:keep"), TypeError),
    case("delete-many-mixed", lambda db: db.delete_many(["Thing:keep", None]), TypeError),
    case("put-many-int", lambda db: db.put_many([1]), TypeError),
    case("put-many-str", lambda db: db.put_many(["Thing:x"]), TypeError),
    case("put-many-1-tuple", lambda db: db.put_many([("Thing:x",)]), TypeError),
    case("put-many-3-tuple", lambda db: db.put_many([("Thing:x", {}, 1)]), TypeError),
    case("put-many-list-pair", lambda db: db.put_many([["Thing:x", {}]]), TypeError),
    case("put-many-bad-props", lambda db: db.put_many([("Thing:x", [1])]), TypeError),
    case("put-many-not-iterable", lambda db: db.put_many(5), TypeError),
    case("put-many-third-type", lambda db: db.put_many(valid_then(("Thing:bad", {"s": {1}}))), TypeError),
    case("put-many-third-shape", lambda db: db.put_many(valid_then("Thing:bad")), TypeError),
    case("query-kind-int", lambda db: db.query(5), TypeError),
    case("query-filter-int", lambda db: db.query("Item", filters=[123]), TypeError),
    case("query-filters-str", lambda db: db.query("Item", filters="n = 1"), TypeError),
    case("query-filter-2-tuple", lambda db: db.query("Item", filters=[("n", "=")]), TypeError),
    case("query-filter-prop-int", lambda db: db.query("Item", filters=[(1, "=", 2)]), TypeError),
    case("query-filter-op-int", lambda db: db.query("Item", filters=[("n", 1, 2)]), TypeError),
    case("query-filter-set-value", lambda db: db.query("Item", filters=[("n", "=", {1})]), TypeError),
    case("query-orders-str", lambda db: db.query("Item", orders="n"), TypeError),
    case("query-order-int", lambda db: db.query("Item", orders=[1]), TypeError),
    case("query-ancestor-int", lambda db: db.query("Item", ancestor=5), TypeError),
    case("query-limit-str", lambda db: db.query("Item", limit="3"), TypeError),
    case("query-pages-filter-int", lambda db: collect(db.query_pages("Item", filters=[1])), TypeError),
    case("entities-start-str", lambda db: db.entities("start"), TypeError),
    case("deposit-amount-str", lambda db: db.deposit("Account:alice", "10"), TypeError),
    case("deposit-amount-float", lambda db: db.deposit("Account:alice", 1.5), TypeError),
    case("deposit-account-none", lambda db: db.deposit(None, 1), TypeError),
    case("transfer-amount-str", lambda db: db.transfer("Account:alice", "Account:bob", "x"), TypeError),
    case("transfer-key-int", lambda db: db.transfer(1, "Account:bob", 1), TypeError),
    case("call-name-int", lambda db: db.call(5, {}), TypeError),
    case("call-int-key", lambda db: db.call("deposit", {1: 2}), TypeError),
    case("call-object", lambda db: db.call("deposit", {"a": object()}), TypeError),
    case("call-bytes", lambda db: db.call("deposit", {"a": b"x"}), TypeError),
    case("call-set", lambda db: db.call("deposit", {1, 2}), TypeError),
    case("allocate-kind-int", lambda db: db.allocate_ids(5), TypeError),
    case("allocate-count-str", lambda db: db.allocate_ids("Thing", "3"), TypeError),
    # --- ValueError: values out of range ------------------------------------------------
    case("int-2**63", lambda db: db.put("Thing:x", {"i": 2**63}), ValueError),
    case("int-below-min", lambda db: db.put("Thing:x", {"i": -(2**63) - 1}), ValueError),
    case("int-2**64", lambda db: db.put("Thing:x", {"i": 2**64}), ValueError),
    case("int-huge-in-list", lambda db: db.put("Thing:x", {"l": [1, 10**30]}), ValueError),
    case("int-huge-nested", lambda db: db.put("Thing:x", {"d": {"e": {"f": 2**100}}}), ValueError),
    case("naive-datetime", lambda db: db.put("Thing:x", {"t": datetime.datetime(2024, 1, 1)}), ValueError),
    case("naive-in-list", lambda db: db.put("Thing:x", {"l": [datetime.datetime.now()]}), ValueError),
    case("cyclic-list", lambda db: db.put("Thing:x", {"l": _cyclic_list()}), ValueError),
    case("cyclic-dict", lambda db: db.put("Thing:x", {"d": _cyclic_dict()}), ValueError),
    case("cyclic-both", lambda db: db.put("Thing:x", {"d": _cycle_through_both()}), ValueError),
    case("cyclic-properties", lambda db: db.put("Thing:x", _cyclic_dict()), ValueError),
    case("too-deep-dicts", lambda db: db.put("Thing:x", {"d": _nest(ds.MAX_DEPTH + 1)}), ValueError),
    case("too-deep-in-list", lambda db: db.put("Thing:x", {"l": [_nest(ds.MAX_DEPTH)]}), ValueError),
    case("entity-object-huge-int", lambda db: db.put(ds.Entity("Thing:x", {"i": 2**63})), ValueError),
    case("put-many-third-int", lambda db: db.put_many(valid_then(("Thing:bad", {"i": 2**64}))), ValueError),
    case("put-many-third-naive", lambda db: db.put_many(valid_then(ds.Entity("Thing:bad", {"t": datetime.datetime(2000, 1, 1)}))), ValueError),
    case("filter-huge-int", lambda db: db.query("Item", filters=[("n", "=", 2**64)]), ValueError),
    case("filter-naive-datetime", lambda db: db.query("Item", filters=[("t", ">", datetime.datetime(2000, 1, 1))]), ValueError),
    case("query-limit-0", lambda db: db.query("Item", limit=0), ValueError),
    case("query-limit-1001", lambda db: db.query("Item", limit=1001), ValueError),
    case("query-pages-limit-0", lambda db: collect(db.query_pages("Item", limit=0)), ValueError),
    case("call-int-2**64", lambda db: db.call("deposit", {"account": "Account:alice", "amount": 2**64}), ValueError),
    case("call-nan", lambda db: db.call("deposit", {"account": "Account:alice", "amount": math.nan}), ValueError),
    case("call-cyclic", lambda db: db.call("deposit", _cyclic_dict()), ValueError),
    # --- OverflowError: integer arguments past their range -------------------------------
    case("query-limit-negative", lambda db: db.query("Item", limit=-1), OverflowError),
    case("query-offset-negative", lambda db: db.query("Item", offset=-1), OverflowError),
    case("query-limit-2**32", lambda db: db.query("Item", limit=2**32), OverflowError),
    case("allocate-count-negative", lambda db: db.allocate_ids("Thing", -1), OverflowError),
    case("deposit-amount-2**63", lambda db: db.deposit("Account:alice", 2**63), OverflowError),
    # --- ds.InvalidKey -------------------------------------------------------------------
    case("key-empty", lambda db: db.get(""), ds.InvalidKey),
    case("key-kind-only", lambda db: db.get("Account"), ds.InvalidKey),
    case("key-no-id", lambda db: db.get("Account:"), ds.InvalidKey),
    case("key-no-kind", lambda db: db.get(":alice"), ds.InvalidKey),
    case("key-trailing-slash", lambda db: db.put("Account:alice/", {}), ds.InvalidKey),
    case("key-id-0", lambda db: db.put("Thing:0", {}), ds.InvalidKey),
    case("key-half-element", lambda db: db.delete("Account:alice/Order"), ds.InvalidKey),
    case("key-reserved-kind", lambda db: db.put("__Reserved:x", {}), ds.InvalidKey),
    case("key-kind-too-long", lambda db: db.put("K" * 1501 + ":x", {}), ds.InvalidKey),
    case("key-name-too-long", lambda db: db.put('Thing:"' + "n" * 1501 + '"', {}), ds.InvalidKey),
    case("key-unterminated-quote", lambda db: db.get('Account:"alice'), ds.InvalidKey),
    case("key-not-urlsafe", lambda db: db.get("!!!not-base64!!!"), ds.InvalidKey),
    case("key-id-overflow", lambda db: db.get("Thing:18446744073709551616"), ds.InvalidKey),
    case("key-object-id-0", lambda db: db.put(BAD_KEY, {}), ds.InvalidKey),
    case("key-get-many", lambda db: db.get_many(["Thing:keep", "Bad:"]), ds.InvalidKey),
    case("key-delete-many", lambda db: db.delete_many(["Thing:keep", "Bad:"]), ds.InvalidKey),
    case("key-put-many-third", lambda db: db.put_many(valid_then(("Thing:", {}))), ds.InvalidKey),
    case("key-entity-object", lambda db: db.put(ds.Entity("Thing:", {})), ds.InvalidKey),
    case("key-deposit-kind", lambda db: db.deposit("Thing:keep", 5), ds.InvalidKey),
    case("key-transfer-kind", lambda db: db.transfer("Account:alice", "Thing:keep", 5), ds.InvalidKey),
    case("key-ancestor", lambda db: db.query("Item", ancestor="Bad"), ds.InvalidKey),
    case("key-allocate-reserved", lambda db: db.allocate_ids("__Reserved"), ds.InvalidKey),
    case("key-allocate-empty-kind", lambda db: db.allocate_ids(""), ds.InvalidKey),
    # --- ds.InvalidEntity ----------------------------------------------------------------
    case("nested-array", lambda db: db.put("Thing:x", {"a": [[1]]}), ds.InvalidEntity),
    case("nested-tuple", lambda db: db.put("Thing:x", {"a": [1, (2, 3)]}), ds.InvalidEntity),
    case("nested-array-in-embedded", lambda db: db.put("Thing:x", {"e": {"a": [[1]]}}), ds.InvalidEntity),
    case("indexed-string-too-long", lambda db: db.put("Thing:x", {"s": "x" * 1501}), ds.InvalidEntity),
    case("indexed-bytes-too-long", lambda db: db.put("Thing:x", {"b": b"x" * 1501}), ds.InvalidEntity),
    case("indexed-element-too-long", lambda db: db.put("Thing:x", {"l": ["ok", "y" * 2000]}), ds.InvalidEntity),
    case("property-name-empty", lambda db: db.put("Thing:x", {"": 1}), ds.InvalidEntity),
    case("property-name-dollar", lambda db: db.put("Thing:x", {"$x": 1}), ds.InvalidEntity),
    case("property-name-dunder", lambda db: db.put("Thing:x", {"__x": 1}), ds.InvalidEntity),
    case("property-name-too-long", lambda db: db.put("Thing:x", {"p" * 1501: 1}), ds.InvalidEntity),
    case("embedded-name-empty", lambda db: db.put("Thing:x", {"d": {"": 1}}), ds.InvalidEntity),
    case("embedded-name-dollar", lambda db: db.put("Thing:x", {"d": {"$x": 1}}), ds.InvalidEntity),
    case("timestamp-before-year-1", lambda db: db.put("Thing:x", {"t": datetime.datetime(1, 1, 1, tzinfo=PLUS_1H)}), ds.InvalidEntity),
    case("timestamp-after-9999", lambda db: db.put("Thing:x", {"t": datetime.datetime(9999, 12, 31, 23, 30, tzinfo=MINUS_1H)}), ds.InvalidEntity),
    case("key-value-id-0", lambda db: db.put("Thing:x", {"k": BAD_KEY}), ds.InvalidEntity),
    case("account-no-owner", lambda db: db.put("Account:x", {"balance": 1}), ds.InvalidEntity),
    case("account-owner-none", lambda db: db.put("Account:x", {"owner": None}), ds.InvalidEntity),
    case("account-owner-int", lambda db: db.put("Account:x", {"owner": 5}), ds.InvalidEntity),
    case("account-balance-negative", lambda db: db.put("Account:x", {"owner": "X", "balance": -1}), ds.InvalidEntity),
    case("account-balance-str", lambda db: db.put("Account:x", {"owner": "X", "balance": "5"}), ds.InvalidEntity),
    case("account-balance-float", lambda db: db.put("Account:x", {"owner": "X", "balance": 5.0}), ds.InvalidEntity),
    case("account-undeclared", lambda db: db.put("Account:x", {"owner": "X", "color": "red"}), ds.InvalidEntity),
    case("account-tags-not-list", lambda db: db.put("Account:x", {"owner": "X", "tags": "a"}), ds.InvalidEntity),
    case("account-tags-int", lambda db: db.put("Account:x", {"owner": "X", "tags": ["a", 1]}), ds.InvalidEntity),
    case("account-overwrite-bad", lambda db: db.put("Account:alice", {"owner": "Alice", "balance": -5}), ds.InvalidEntity),
    case("entity-too-large", lambda db: db.put("Account:x", {"owner": "X", "note": "n" * (1 << 20)}), ds.InvalidEntity),
    case("transfer-from-not-account", lambda db: db.put("Account:alice/Transfer:9", {"from": ds.Key("Thing", "keep"), "to": ds.Key("Account", "bob"), "amount": 1}), ds.InvalidEntity),
    case("transfer-amount-zero", lambda db: db.put("Account:alice/Transfer:9", {"from": ds.Key("Account", "alice"), "to": ds.Key("Account", "bob"), "amount": 0}), ds.InvalidEntity),
    case("put-many-third-invalid", lambda db: db.put_many(valid_then(("Account:bad", {"balance": 3}))), ds.InvalidEntity),
    case("put-many-third-nested", lambda db: db.put_many(valid_then(ds.Entity("Thing:bad", {"a": [[1]]}))), ds.InvalidEntity),
    case("put-many-last-invalid", lambda db: db.put_many([("Thing:n1", {}), ("Thing:n2", {"s": "z" * 5000})]), ds.InvalidEntity),
    # --- ds.InvalidQuery -----------------------------------------------------------------
    case("filter-no-operator", lambda db: db.query("Item", filters=["n ~ 3"]), ds.InvalidQuery),
    case("filter-no-value", lambda db: db.query("Item", filters=["n = "]), ds.InvalidQuery),
    case("filter-no-property", lambda db: db.query("Item", filters=["= 3"]), ds.InvalidQuery),
    case("filter-bad-json", lambda db: db.query("Item", filters=["n = [1"]), ds.InvalidQuery),
    case("filter-bare-word", lambda db: db.query("Item", filters=["n = nope"]), ds.InvalidQuery),
    case("filter-not-equal", lambda db: db.query("Item", filters=["n != 3"]), ds.InvalidQuery),
    case("filter-tuple-not-equal", lambda db: db.query("Item", filters=[("n", "!=", 3)]), ds.InvalidQuery),
    case("filter-tuple-like", lambda db: db.query("Item", filters=[("n", "LIKE", 3)]), ds.InvalidQuery),
    case("filter-in-scalar", lambda db: db.query("Item", filters=["n IN 3"]), ds.InvalidQuery),
    case("filter-eq-list", lambda db: db.query("Item", filters=[("n", "=", [1, 2])]), ds.InvalidQuery),
    case("filter-in-nested-list", lambda db: db.query("Item", filters=[("n", "IN", [[1]])]), ds.InvalidQuery),
    case("filter-key-property", lambda db: db.query("Item", filters=["__key__ = 1"]), ds.InvalidQuery),
    case("filter-two-ranges", lambda db: db.query("Item", filters=["n > 1", "m < 3"]), ds.InvalidQuery),
    case("filter-eq-and-range", lambda db: db.query("Item", filters=["n = 1", "n > 0"]), ds.InvalidQuery),
    case("filter-kindless", lambda db: db.query(filters=["n = 1"]), ds.InvalidQuery),
    case("order-kindless", lambda db: db.query(orders=["n"]), ds.InvalidQuery),
    case("order-dash-only", lambda db: db.query("Item", orders=["-"]), ds.InvalidQuery),
    case("order-empty", lambda db: db.query("Item", orders=[""]), ds.InvalidQuery),
    case("order-twice", lambda db: db.query("Item", orders=["n", "-n"]), ds.InvalidQuery),
    case("order-key-ascending-after-desc", lambda db: db.query("Item", orders=["-n", "__key__"]), ds.InvalidQuery),
    case("range-first-order-other", lambda db: db.query("Item", filters=["n > 1"], orders=["m"]), ds.InvalidQuery),
    case("range-key-order", lambda db: db.query("Item", filters=["n > 1"], orders=["__key__"]), ds.InvalidQuery),
    case("needs-composite", lambda db: db.query("Item", filters=['tag = "a"'], orders=["n"]), ds.InvalidQuery),
    case("in-with-other-order", lambda db: db.query("Account", filters=['owner IN ["A", "B"]'], orders=["-balance"]), ds.InvalidQuery),
    case("account-unindexed", lambda db: db.query("Account", filters=['note = "x"']), ds.InvalidQuery),
    case("account-undeclared", lambda db: db.query("Account", filters=['color = "x"']), ds.InvalidQuery),
    case("account-order-undeclared", lambda db: db.query("Account", orders=["color"]), ds.InvalidQuery),
    case("cursor-garbage", lambda db: db.query("Item", start="!!not a cursor!!"), ds.InvalidQuery),
    case("cursor-short", lambda db: db.query("Item", start="AQ"), ds.InvalidQuery),
    case("ancestor-other-namespace", lambda db: db.query("Item", ancestor="ns@Thing:a"), ds.InvalidQuery),
    case("query-pages-bad-filter", lambda db: collect(db.query_pages("Item", filters=["n ~ 1"])), ds.InvalidQuery),
    # --- ds.NotFound, ds.FailedPrecondition, ds.InvalidArgument ------------------------
    case("deposit-missing", lambda db: db.deposit("Account:nobody", 5), ds.NotFound),
    case("transfer-missing-source", lambda db: db.transfer("Account:nobody", "Account:bob", 5), ds.NotFound),
    case("transfer-missing-destination", lambda db: db.transfer("Account:alice", "Account:nobody", 5), ds.NotFound),
    case("call-unknown", lambda db: db.call("launch_rockets", {}), ds.NotFound),
    case("deposit-overdraw", lambda db: db.deposit("Account:alice", -51), ds.FailedPrecondition),
    case("deposit-overflow", lambda db: db.deposit("Account:alice", 2**63 - 1), ds.FailedPrecondition),
    case("transfer-insufficient", lambda db: db.transfer("Account:alice", "Account:bob", 51), ds.FailedPrecondition),
    case("transfer-to-self", lambda db: db.transfer("Account:alice", "Account:alice", 1), ds.FailedPrecondition),
    case("transfer-negative", lambda db: db.transfer("Account:alice", "Account:bob", -1), ds.FailedPrecondition),
    case("call-overdraw", lambda db: db.call("deposit", {"account": "Account:alice", "amount": -51}), ds.FailedPrecondition),
    case("call-no-arguments", lambda db: db.call("deposit", {}), ds.InvalidArgument),
    case("call-default-input", lambda db: db.call("deposit"), ds.InvalidArgument),
    case("call-account-int", lambda db: db.call("deposit", {"account": 5, "amount": 1}), ds.InvalidArgument),
    case("call-amount-str", lambda db: db.call("deposit", {"account": "Account:alice", "amount": "1"}), ds.InvalidArgument),
    case("call-amount-float", lambda db: db.call("deposit", {"account": "Account:alice", "amount": 1.5}), ds.InvalidArgument),
    case("call-bad-key", lambda db: db.call("deposit", {"account": "Account:", "amount": 1}), ds.InvalidArgument),
    case("allocate-zero", lambda db: db.allocate_ids("Thing", 0), ds.InvalidArgument),
    case("allocate-too-many", lambda db: db.allocate_ids("Thing", (1 << 20) + 1), ds.InvalidArgument),
]


async def baseline(db) -> None:
    """What every case starts from (and must leave as it was)."""
    await db.put("Thing:keep", {"v": 1, "s": "keep"})
    await db.put("Account:alice", {"owner": "Alice", "balance": 50})
    await db.put("Account:bob", {"owner": "Bob", "balance": 0})
    await db.put_many([(f"Item:{i}", {"n": i, "tag": "abc"[i % 3]}) for i in range(1, 4)])
    await db.allocate_ids("Thing", 2)


async def snapshot(db, store: Any) -> Any:
    """The store's contents as the API sees them, and a Python store's very rows."""
    exported = [norm(e) for e in await collect(db.export())]
    report = await db.check()
    rows = None
    if not isinstance(store, str):
        inner = store.inner if isinstance(store, ads.AsyncMemoryStore) else store
        rows = (store_len(store), inner.scan(b"", None, 1 << 30, False))
    return exported, report.entities, report.index_rows, report.problems, rows


async def expect_refusal(db, store: Any, call: Call, error: type) -> None:
    before = await snapshot(db, store)
    with pytest.raises(error) as info:
        await call(db)
    # The specific class, not a sibling that happens to share a base.
    assert isinstance(info.value, error)
    assert str(info.value)  # every refusal says why
    after = await snapshot(db, store)
    assert after == before, "a refused call changed the store"


@pytest.mark.parametrize("call, error", CASES)
def test_refused_and_nothing_written(python_env: Env, call: Call, error: type):
    """Each case, in both modules, over a Python store (whose rows are compared too)."""

    async def body(db, store):
        await baseline(db)
        await expect_refusal(db, store, call, error)

    python_env.run_with_store(body)


def test_every_case_on_every_url_backend(mode: str, url_backend: Backend):
    """The whole corpus over memory, SQLite and PostgreSQL (export and check compared)."""
    env = Env(mode, url_backend)
    ids = [p.id for p in CASES]

    async def body(db, store):
        await baseline(db)
        failures: List[str] = []
        for case_id, param in zip(ids, CASES):
            call, error = param.values
            try:
                await expect_refusal(db, store, call, error)
            except BaseException as exc:  # noqa: BLE001 - report every case at once
                failures.append(f"{case_id}: {type(exc).__name__}: {exc}")
        assert failures == []

    env.run_with_store(body)


def test_put_many_with_one_invalid_writes_none(env: Env):
    async def body(db, store):
        await baseline(db)
        before = await snapshot(db, store)
        batch = [(f"Thing:b{i}", {"i": i}) for i in range(20)]
        for bad, error in [
            ((ds.Key("Thing", "bad"), {"a": [[1]]}), ds.InvalidEntity),
            (("Account:new", {"owner": 7}), ds.InvalidEntity),
            (("Thing:bad", {"i": 2**64}), ValueError),
            (("Thing:bad", {"o": object()}), TypeError),
            (("Thing:", {}), ds.InvalidKey),
        ]:
            for at in (0, 10, 20):
                with pytest.raises(error):
                    await db.put_many(batch[:at] + [bad] + batch[at:])
                assert await snapshot(db, store) == before, (bad, at)
        assert await db.get_many([k for k, _ in batch]) == [None] * len(batch)

    env.run_with_store(body)


def test_key_constructor_errors():
    with pytest.raises(TypeError):
        ds.Key()
    with pytest.raises(TypeError):
        ds.Key("Account")
    with pytest.raises(TypeError):
        ds.Key("Account", "a", "Transfer")
    with pytest.raises(TypeError):
        ds.Key(1, "a")
    with pytest.raises(TypeError):
        ds.Key("A", 1.5)
    with pytest.raises(TypeError):
        ds.Key("A", True)
    with pytest.raises(TypeError):
        ds.Key("A", None)
    with pytest.raises(TypeError):
        ds.Key("A", 1, parent="B:1")
    with pytest.raises(ValueError):
        ds.Key("A", -1)
    with pytest.raises(ValueError):
        ds.Key("A", 2**64)
    with pytest.raises(ds.InvalidKey):
        ds.Key("A", 0)
    with pytest.raises(ds.InvalidKey):
        ds.Key("A", "")
    with pytest.raises(ds.InvalidKey):
        ds.Key("", 1)
    with pytest.raises(ds.InvalidKey):
        ds.Key("__A", 1)
    with pytest.raises(ds.InvalidKey):
        ds.Key("A", "x" * 1501)
    with pytest.raises(ds.InvalidKey):
        ds.Key("A", 1, namespace="n" * 1501)
    with pytest.raises(ds.InvalidKey):
        ds.Key("A", 1, parent=ds.Key("B", 1, namespace="n"), namespace="m")
    with pytest.raises(ds.InvalidKey):
        ds.Key(*(["K", 1] * 101))
    for text in ["", "Account", "Account:", ":a", "Account:alice/", 'A:"x', "A:0", "@"]:
        with pytest.raises(ds.InvalidKey):
            ds.Key.parse(text)
    for text in ["Account:alice", "!!!", ds.Key("A", 1).urlsafe() + "AA", ""]:
        with pytest.raises(ds.InvalidKey):
            ds.Key.from_urlsafe(text)
    with pytest.raises(TypeError):
        ds.Key.parse(5)
    with pytest.raises(TypeError):
        ds.Key.from_storage("text")
    with pytest.raises(TypeError):
        ds.Entity(5)
    with pytest.raises(ds.InvalidKey):
        ds.Entity("Account:")
    with pytest.raises(TypeError):
        ds.Entity("Thing:a", [("v", 1)])
    assert issubclass(ds.InvalidKey, ds.Error) and issubclass(ds.Error, Exception)
    assert issubclass(ds.StoreUnavailable, ds.StoreError)


@pytest.mark.parametrize(
    "store, error",
    [
        ("nope:", ds.InvalidStoreUrl),
        ("memory:extra", ds.InvalidStoreUrl),
        ("sqlite:", ds.InvalidStoreUrl),
        ("no-scheme", ds.InvalidStoreUrl),
        ("postgres://u@h/db?schema=bad-name!", ds.InvalidStoreUrl),
        (5, TypeError),
        (object(), TypeError),
        (b"memory:", TypeError),
    ],
)
def test_open_refuses_bad_stores(mode: str, store: Any, error: type):
    if mode == "ds":
        with pytest.raises(error):
            ds.Datastore.open(store)
        return

    async def main():
        with pytest.raises(error):
            await ads.Datastore.open(store)

    asyncio.run(main())


def test_open_refuses_bad_options(tmp_path, mode: str):
    missing = tmp_path / "missing.wasm"
    garbage = tmp_path / "garbage.wasm"
    garbage.write_bytes(b"\0asm not really")

    async def main():
        for kwargs, error in [
            ({"component": missing}, ds.ComponentError),
            ({"component": str(garbage)}, ds.ComponentError),
            ({"transaction_retries": -1}, OverflowError),
            ({"transaction_retries": "3"}, TypeError),
            ({"component": 5}, TypeError),
        ]:
            with pytest.raises(error):
                if mode == "ds":
                    ds.Datastore.open("memory:", **kwargs)
                else:
                    await ads.Datastore.open("memory:", **kwargs)
        if mode == "ads":
            with pytest.raises(OverflowError):
                await ads.Datastore.open("memory:", max_in_flight=-1)

    asyncio.run(main())
