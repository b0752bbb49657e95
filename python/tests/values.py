"""Helpers the tests share: what a value reads back as, and a strict comparison."""

from __future__ import annotations

import datetime
import math
from typing import Any

import ds

UTC = datetime.timezone.utc


def expected(value: Any) -> Any:
    """What ``value`` reads back as: tuples become lists, bytearrays bytes, datetimes UTC."""
    if isinstance(value, (list, tuple)):
        return [expected(v) for v in value]
    if isinstance(value, dict):
        return {k: expected(v) for k, v in value.items()}
    if isinstance(value, bytearray):
        return bytes(value)
    if isinstance(value, datetime.datetime):
        return value.astimezone(UTC)
    return value


def same(got: Any, want: Any) -> bool:
    """Equal values of exactly the same types; NaN equals NaN and -0.0 differs from 0.0."""
    if type(got) is not type(want):
        return False
    if isinstance(want, float):
        if math.isnan(want):
            return math.isnan(got)
        return got == want and math.copysign(1.0, got) == math.copysign(1.0, want)
    if isinstance(want, list):
        return len(got) == len(want) and all(same(g, w) for g, w in zip(got, want))
    if isinstance(want, dict):
        return got.keys() == want.keys() and all(same(got[k], want[k]) for k in want)
    if isinstance(want, datetime.datetime):
        return got == want and got.utcoffset() == want.utcoffset()
    return got == want


def norm(value: Any) -> Any:
    """A plain, comparable form of a result (entities, keys, pages, receipts, floats)."""
    if isinstance(value, ds.Entity):
        return ("Entity", str(value.key), norm(value.properties))
    if isinstance(value, ds.Key):
        return ("Key", str(value))
    if isinstance(value, ds.QueryPage):
        return ("QueryPage", norm(value.keys), norm(value.entities), value.next_cursor)
    if isinstance(value, ds.Receipt):
        return ("Receipt", str(value.transfer), value.source_balance, value.destination_balance)
    if isinstance(value, float):
        if math.isnan(value):
            return ("float", "nan")
        return ("float", value, math.copysign(1.0, value))
    if isinstance(value, datetime.datetime):
        return ("datetime", value.isoformat())
    if isinstance(value, (list, tuple)):
        return [norm(v) for v in value]
    if isinstance(value, dict):
        return {k: norm(v) for k, v in sorted(value.items())}
    if isinstance(value, BaseException):
        return ("raised", type(value).__name__, str(value))
    return (type(value).__name__, value)
