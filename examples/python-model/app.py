"""A ds model written in Python: the `model` world of the ds:datastore WIT, built into a
component with componentize-py and run unchanged by `ds` and `ads`.

It keeps each entity's properties (canonical JSON text) under the key it is given (the
contract's key, ds-model's encoding) behind a prefix of its own,
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

# The contract's key is the transport key of the entity's row in ds-model's encoding
# (`wit/types.wit`, type `key`). This model keeps each entity under PREFIX + that key, so
# its rows never mix with those of the Rust model (whose keys start with 0x10).
PREFIX = b"\xffpy\x00"
# The first byte of every key, and ds-model's limits (`wit/types.wit`).
ENTITY_PREFIX = 0x10
MAX_NAME_BYTES = 1500
MAX_PATH_DEPTH = 100
MAX_KEY_BYTES = 6 * 1024


def fail(error):
    """Ends the export call with `error` (a `types.Error_*`), as the WIT result's error."""
    raise Err(error)


def store_failed(err):
    """A transport error, passed on as the datastore error `store`."""
    fail(t.Error_Store(err.value))


def read_string(key, at):
    """The escaped string of `key` at `at` (`0x00` written `0x00 0xff`, ended by `0x00 0x01`)
    as text, and where it ends; ValueError if it is not one."""
    out = bytearray()
    while True:
        if at >= len(key):
            raise ValueError("unexpected end")
        byte = key[at]
        at += 1
        if byte != 0:
            out.append(byte)
            continue
        escape = key[at] if at < len(key) else None
        at += 1
        if escape == 0xFF:
            out.append(0)
        elif escape == 0x01:
            return out.decode("utf-8"), at
        else:
            raise ValueError("bad escape in byte string")


def decode_key(key):
    """The namespace and path (kind, int id or str name) of `key`, the contract's key,
    checked as ds checks keys; `invalid-key` if it does not decode or breaks a rule."""
    try:
        if not key or key[0] != ENTITY_PREFIX:
            raise ValueError("not an entity key")
        namespace, at = read_string(key, 1)
        path = []
        while at < len(key):
            kind, at = read_string(key, at)
            tag = key[at] if at < len(key) else None
            at += 1
            if tag == 0x01:
                if at + 8 > len(key):
                    raise ValueError("unexpected end in integer")
                path.append((kind, int.from_bytes(key[at : at + 8], "big")))
                at += 8
            elif tag == 0x02:
                name, at = read_string(key, at)
                path.append((kind, name))
            else:
                raise ValueError("bad id-or-name tag")
    except ValueError as err:
        fail(t.Error_InvalidKey(f"the key's encoding does not decode: {err}"))
    if not path:
        fail(t.Error_InvalidKey("a key needs at least one path element"))
    if len(path) > MAX_PATH_DEPTH:
        fail(t.Error_InvalidKey(f"a key has at most {MAX_PATH_DEPTH} path elements"))
    for kind, ident in path:
        if not kind or kind.startswith("__"):
            fail(t.Error_InvalidKey(f"kind {kind!r} is empty or reserved"))
        if ident == 0:
            fail(t.Error_InvalidKey(f"{kind}: id 0 is not a valid id"))
        if ident == "":
            fail(t.Error_InvalidKey(f"{kind}: a name must not be empty"))
        if max(len(kind.encode()), len(str(ident).encode())) > MAX_NAME_BYTES:
            fail(t.Error_InvalidKey(f"{kind}: a kind or name is over {MAX_NAME_BYTES} bytes"))
    if len(namespace.encode()) > MAX_NAME_BYTES or len(key) > MAX_KEY_BYTES:
        fail(t.Error_InvalidKey(f"the key is over {MAX_KEY_BYTES} bytes, or its namespace over {MAX_NAME_BYTES}"))
    return namespace, path


def row_key(key):
    """The transport key this model keeps the entity at `key` under, once `key` is checked."""
    decode_key(key)
    return PREFIX + key


def escaped(text):
    """`text` as an escaped string of the key encoding."""
    return text.encode().replace(b"\x00", b"\x00\xff") + b"\x00\x01"


def encode_key(namespace, path):
    """The contract's key of `namespace` and `path` (kind, int id or str name)."""
    out = bytearray([ENTITY_PREFIX]) + escaped(namespace)
    for kind, ident in path:
        out += escaped(kind)
        if isinstance(ident, int):
            out += b"\x01" + ident.to_bytes(8, "big")
        else:
            out += b"\x02" + escaped(ident)
    return bytes(out)


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
    """A key argument in the command line's simple form (`Kind:name` or `Kind:42`, with `/`
    between ancestors) as the contract's key. (Namespaces, quoting and URL-safe keys are
    ds-model's: see README.md.)"""
    if not isinstance(text, str) or not text:
        fail(t.Error_InvalidArgument("increment: key must be a key string"))
    path = []
    for part in text.split("/"):
        kind, sep, id_or_name = part.partition(":")
        if not sep or not kind or not id_or_name:
            fail(t.Error_InvalidArgument(f"increment: key {text!r} is not Kind:id-or-name"))
        if id_or_name.isdigit():
            if int(id_or_name) >= 2**64:
                fail(t.Error_InvalidArgument(f"increment: id {id_or_name} is over 64 bits"))
            path.append((kind, int(id_or_name)))
        else:
            path.append((kind, id_or_name))
    return encode_key("", path)


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
    encoded = row_key(key)
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
    namespace, path = decode_key(key)
    text = "/".join(f"{kind}:{ident}" for kind, ident in path)
    return f"{namespace}@{text}" if namespace else text


def not_supported(what):
    fail(t.Error_InvalidArgument(f"{what} is not supported by the Python example model"))


class Datastore(exports.Datastore):
    def get(self, key):
        stored = read(row_key(key))
        return stored.value.decode() if stored else None

    def put(self, entity):
        encoded = row_key(entity.key)
        value = canonical_properties(entity.properties).encode()
        commit([], [t.Write(encoded, value)])
        return entity.key

    def delete(self, key):
        commit([], [t.Write(row_key(key), None)])

    def get_many(self, keys):
        encoded = [row_key(key) for key in keys]
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
            writes[row_key(entity.key)] = canonical_properties(entity.properties).encode()
        commit([], [t.Write(k, v) for k, v in writes.items()])
        return [entity.key for entity in entities]

    def delete_many(self, keys):
        encoded = dict.fromkeys(row_key(key) for key in keys)
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
        encoded = [row_key(key) for key in keys]
        try:
            values = transport.get_many(encoded)
        except Err as err:
            store_failed(err)
        return [t.StoredProperties(v.value.decode(), v.version) if v else None for v in values]

    def put_if(self, writes):
        items = [
            (row_key(e.key), e.key, canonical_properties(e.properties).encode(), condition)
            for e, condition in writes
        ]
        version, _ = write_if(items)
        return version

    def delete_if(self, deletes):
        _, existed = write_if([(row_key(k), k, None, c) for k, c in deletes])
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
