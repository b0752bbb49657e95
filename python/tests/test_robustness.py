"""Edge cases a serious program meets: Python code that runs mid-conversion, cancelled page
reads, exceptions that cross processes, a datastore used from the wrong event loop, and
`ads` after `fork`."""

from __future__ import annotations

import asyncio
import datetime
import os
import pickle

import pytest

import ads
import ds


class MutatingZone(datetime.tzinfo):
    """A timezone whose `utcoffset` (Python code, run during conversion) changes the dict
    being converted."""

    def __init__(self, target: dict):
        self.target = target

    def utcoffset(self, dt):
        self.target[f"added{len(self.target)}"] = 1
        return datetime.timedelta(hours=2)

    def dst(self, dt):
        return None


def test_a_dict_changed_during_conversion_is_read_as_it_was():
    db = ds.Datastore.open("memory:")
    props: dict = {"a": 1}
    props["when"] = datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=MutatingZone(props))
    db.put("Note:n", props)
    stored = db.get("Note:n").properties
    assert set(stored) == {"a", "when"}
    assert stored["when"] == datetime.datetime(2024, 1, 2, 1, 4, 5, tzinfo=datetime.timezone.utc)


def test_a_cancelled_page_read_can_be_read_again():
    async def main():
        db = await ads.Datastore.open(ads.AsyncMemoryStore(latency=0.05))
        await db.put_many([(f"Account:a{i}", {"owner": "A"}) for i in range(5)])
        pages = db.export("Account")
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(pages.__anext__(), 0.01)
        return [entity.key.name async for entity in pages]

    assert asyncio.run(main()) == [f"a{i}" for i in range(5)]


def test_errors_are_named_as_exported_and_pickle():
    assert ds.Error.__name__ == "Error" and ds.Error.__module__ == "ds"
    err = pickle.loads(pickle.dumps(ds.NotFound("no such account")))
    assert isinstance(err, ds.NotFound) and isinstance(err, ds.Error)
    assert str(err) == "no such account"


def test_a_datastore_refuses_another_event_loop():
    holder = {}

    async def first():
        holder["db"] = await ads.Datastore.open("memory:")
        await holder["db"].put("Account:a", {"owner": "A"})

    async def second():
        with pytest.raises(RuntimeError, match="another event loop"):
            await holder["db"].get("Account:a")
        # A datastore opened on this loop works.
        db = await ads.Datastore.open("memory:")
        assert await db.get("Account:a") is None

    asyncio.run(first())
    asyncio.run(second())


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_ads_works_in_a_forked_child():
    async def use():
        db = await ads.Datastore.open("memory:")
        await db.put("Account:a", {"owner": "A"})
        return (await db.get("Account:a")).properties["owner"]

    assert asyncio.run(use()) == "A"  # the parent's runtime is up
    pid = os.fork()
    if pid == 0:  # the child: exit status 0 only if ads answered in time
        status = 1
        try:
            status = 0 if asyncio.run(asyncio.wait_for(use(), 30)) == "A" else 1
        finally:
            os._exit(status)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
