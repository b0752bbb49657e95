"""A ds model written in Python: the `model` world of the ds:datastore WIT, built into a
component with componentize-py and run unchanged by `ds` and `ads`.

It keeps each entity's properties (canonical JSON text) under a key of its own encoding,
and implements get, put, delete, get-many, put-many, delete-many, the versioned reads and
conditional writes (get-versioned, put-if, delete-if), schema, and `call` with one
operation, `increment`, a read-modify-write transaction over the transport's versions.
What it does not do, and why: README.md.
"""

import json

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import transport
from wit_world.imports import types as t

# Every key this model writes starts so, apart from the Rust model's (which starts with a
# namespace length byte), so the two never read each other's rows as their own.
PREFIX = b"\xffpy\x00"
# The largest key the model accepts, encoded (ds-model's own limit).
MAX_KEY_BYTES = 6 * 1024


def fail(error):
    """Ends the export call with `error` (a `types.Error_*`), as the WIT result's error."""
    raise Err(error)


def store_failed(err):
    """A transport error, passed on as the datastore error `store`."""
    fail(t.Error_Store(err.value))


def encode_key(key):
    """The transport key of `key`: checked as ds checks keys, then written as JSON."""
    if not key.path:
        fail(t.Error_InvalidKey("a key needs at least one path element"))
    path = []
    for element in key.path:
        if not element.kind:
            fail(t.Error_InvalidKey("a kind must not be empty"))
        if isinstance(element.id, t.IdOrName_Id):
            if element.id.value == 0:
                fail(t.Error_InvalidKey(f"{element.kind}: id 0 is not a valid id"))
            path.append([element.kind, element.id.value])
        else:
            if not element.id.value:
                fail(t.Error_InvalidKey(f"{element.kind}: a name must not be empty"))
            path.append([element.kind, element.id.value])
    encoded = PREFIX + json.dumps([key.namespace, path], separators=(",", ":")).encode()
    if len(encoded) > MAX_KEY_BYTES:
        fail(t.Error_InvalidKey(f"the key is over {MAX_KEY_BYTES} bytes encoded"))
    return encoded


def canonical_properties(text):
    """The properties as canonical JSON text (keys sorted, no spaces), or `invalid-entity`."""
    try:
        value = json.loads(text)
    except ValueError as err:
        fail(t.Error_InvalidEntity(f"the properties are not JSON: {err}"))
    if not isinstance(value, dict):
        fail(t.Error_InvalidEntity("the properties must be a JSON object"))
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def read(key):
    """The stored value at transport key `key` (`types.Versioned`), or None."""
    try:
        return transport.get(key)
    except Err as err:
        store_failed(err)


def commit(checks, writes):
    try:
        return transport.commit(checks, writes)
    except Err as err:
        if isinstance(err.value, t.StoreError_Conflict):
            fail(t.Error_Conflict("another writer changed the entity first"))
        store_failed(err)


def parse_key(text):
    """A key argument in the command line's simple form: `Kind:name` or `Kind:42`, with
    `/` between ancestors. (Namespaces, quoting and URL-safe keys are ds-model's: see
    README.md.)"""
    if not isinstance(text, str) or not text:
        fail(t.Error_InvalidArgument("increment: key must be a key string"))
    path = []
    for part in text.split("/"):
        kind, sep, id_or_name = part.partition(":")
        if not sep or not kind or not id_or_name:
            fail(t.Error_InvalidArgument(f"increment: key {text!r} is not Kind:id-or-name"))
        if id_or_name.isdigit():
            path.append(t.PathElement(kind, t.IdOrName_Id(int(id_or_name))))
        else:
            path.append(t.PathElement(kind, t.IdOrName_Name(id_or_name)))
    return t.Key("", path)


def increment(arguments):
    """Adds `by` (default 1) to the integer property `count` of the entity at `key`,
    creating it at 0 if absent, in a transaction: the commit checks the version read, and
    a lost race is retried as the host's retry policy says."""
    if not isinstance(arguments, dict):
        fail(t.Error_InvalidArgument("increment: the input must be a JSON object"))
    key = parse_key(arguments.get("key"))
    by = arguments.get("by", 1)
    if not isinstance(by, int) or isinstance(by, bool) or not -(2**63) <= by < 2**63:
        fail(t.Error_InvalidArgument("increment: by must be an int64"))
    encoded = encode_key(key)
    attempt = 0
    while True:
        stored = read(encoded)
        properties = json.loads(stored.value) if stored else {}
        count = properties.get("count", 0)
        if not isinstance(count, int) or isinstance(count, bool):
            fail(t.Error_FailedPrecondition("count is not an integer"))
        if not -(2**63) <= count + by < 2**63:
            fail(t.Error_FailedPrecondition("count would overflow int64"))
        properties["count"] = count + by
        value = json.dumps(properties, sort_keys=True, separators=(",", ":")).encode()
        check = t.Check(encoded, stored.version if stored else None)
        try:
            transport.commit([check], [t.Write(encoded, value)])
            return {"key": arguments["key"], "count": count + by}
        except Err as err:
            if not isinstance(err.value, t.StoreError_Conflict):
                store_failed(err)
        attempt += 1
        if not transport.backoff(attempt):
            fail(t.Error_Conflict("increment lost its commit race on every retry"))


OPERATIONS = {"increment": increment}


def write_if(items):
    """Writes `items`, each (transport key, key, value or None to delete, condition), in one
    commit if every condition holds for what is stored; returns the commit's version and,
    per item, whether something was stored."""
    try:
        stored = transport.get_many([encoded for encoded, _, _, _ in items])
    except Err as err:
        store_failed(err)
    checks = {}
    for (encoded, key, _, condition), found in zip(items, stored):
        if isinstance(condition, t.Condition_Absent) and found:
            fail(t.Error_FailedPrecondition(f"{describe(key)} exists (version {found.version})"))
        if isinstance(condition, t.Condition_Present) and not found:
            fail(t.Error_FailedPrecondition(f"{describe(key)} does not exist"))
        if isinstance(condition, t.Condition_Version) and (
            not found or found.version != condition.value
        ):
            have = f"is at version {found.version}" if found else "does not exist"
            fail(t.Error_FailedPrecondition(
                f"{describe(key)} {have}; the write required version {condition.value}"
            ))
        checks[encoded] = t.Check(encoded, found.version if found else None)
    writes = {encoded: value for encoded, _, value, _ in items}
    version = commit(list(checks.values()), [t.Write(k, v) for k, v in writes.items()])
    return version, [found is not None for found in stored]


def describe(key):
    """A key in the command line's simple form, for messages."""
    return "/".join(f"{e.kind}:{e.id.value}" for e in key.path)


def not_supported(what):
    fail(t.Error_InvalidArgument(f"{what} is not supported by the Python example model"))


class Datastore(exports.Datastore):
    def get(self, key):
        stored = read(encode_key(key))
        return stored.value.decode() if stored else None

    def put(self, entity):
        encoded = encode_key(entity.key)
        value = canonical_properties(entity.properties).encode()
        commit([], [t.Write(encoded, value)])
        return entity.key

    def delete(self, key):
        commit([], [t.Write(encode_key(key), None)])

    def get_many(self, keys):
        encoded = [encode_key(key) for key in keys]
        try:
            values = transport.get_many(encoded)
        except Err as err:
            store_failed(err)
        return [v.value.decode() if v else None for v in values]

    def put_many(self, entities):
        # Every entity is checked before anything is written; a later one with the same
        # key wins, as the contract says.
        writes = {}
        for entity in entities:
            writes[encode_key(entity.key)] = canonical_properties(entity.properties).encode()
        commit([], [t.Write(k, v) for k, v in writes.items()])
        return [entity.key for entity in entities]

    def delete_many(self, keys):
        encoded = dict.fromkeys(encode_key(key) for key in keys)
        commit([], [t.Write(k, None) for k in encoded])

    def entities(self, start, kind):
        not_supported("listing entities (export)")

    def query(self, query):
        not_supported("query")

    def allocate_ids(self, namespace, kind, count):
        not_supported("allocate-ids")

    def call(self, name, input):
        operation = OPERATIONS.get(name)
        if operation is None:
            fail(t.Error_NotFound(f"no operation {name!r}; this component has: increment"))
        try:
            arguments = json.loads(input)
        except ValueError as err:
            fail(t.Error_InvalidArgument(f"the input of {name} is not JSON: {err}"))
        return json.dumps(operation(arguments), sort_keys=True, separators=(",", ":"))

    def check(self, start):
        not_supported("check")

    def get_versioned(self, keys):
        encoded = [encode_key(key) for key in keys]
        try:
            values = transport.get_many(encoded)
        except Err as err:
            store_failed(err)
        return [t.StoredProperties(v.value.decode(), v.version) if v else None for v in values]

    def put_if(self, writes):
        items = [
            (encode_key(e.key), e.key, canonical_properties(e.properties).encode(), condition)
            for e, condition in writes
        ]
        version, _ = write_if(items)
        return version

    def delete_if(self, deletes):
        _, existed = write_if([(encode_key(k), k, None, c) for k, c in deletes])
        return existed

    def count(self, query):
        not_supported("count")

    def repair(self, start, apply):
        not_supported("repair")

    def salvage(self, start, kind):
        not_supported("salvage (export --skip-corrupt)")

    def schema(self):
        # Every kind is schemaless here: the model declares none.
        return json.dumps({"kinds": []})
