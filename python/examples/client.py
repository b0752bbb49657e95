"""The seed's client.py, with ds: the call goes ds.Datastore.get -> the model component's
logic -> this program's own transport, a Python store.

Each line comes from where the seed printed it: the host API (``ds.api``), the model
(``ds.guest``), the transport this program passes in, and this program.
"""

import logging
import sys

import ds


class Transport(ds.MemoryStore):
    """The seed's transport: an in-memory store that says what it is asked for."""

    tracing = False

    def get(self, key):
        if self.tracing:
            print(f"get() with key = {ds.Key.from_storage(key).id_or_name}")
        return super().get(key)


def main():
    transport = Transport()
    db = ds.Datastore.open(transport)
    key = ds.Key("Model", "my_key")
    # Store the model first, before the call path is printed.
    db.put(key, {})

    logging.basicConfig(stream=sys.stdout, format="%(message)s", level=logging.DEBUG)
    ds.enable_logging("ds::api=debug,ds::guest=debug")
    transport.tracing = True

    model = db.get(key)
    print(f"Got a model with key={model.key.id_or_name}")


if __name__ == "__main__":
    main()
