"""The seed's aclient.py, with ads: the call goes ads.Datastore.get -> the model
component's logic -> this program's own async transport, a Python store.

Each line comes from where the seed printed it: the host API (``ads.api``), the model
(``ds.guest``), the transport this program passes in, and this program.
"""

import asyncio
import logging
import sys

import ads


class Transport(ads.AsyncMemoryStore):
    """The seed's async transport: an in-memory store that says what it is asked for."""

    tracing = False

    async def get(self, key):
        if self.tracing:
            print(f"async get() with key = {ads.Key.from_storage(key).id_or_name}")
        return await super().get(key)


async def main():
    transport = Transport()
    db = await ads.Datastore.open(transport)
    key = ads.Key("Model", "my_key")
    # Store the model first, before the call path is printed.
    await db.put(key, {})

    logging.basicConfig(stream=sys.stdout, format="%(message)s", level=logging.DEBUG)
    ads.enable_logging("ads::api=debug,ds::guest=debug")
    transport.tracing = True

    model = await db.get(key)
    print(f"Got a model with key={model.key.id_or_name}")


if __name__ == "__main__":
    asyncio.run(main())
