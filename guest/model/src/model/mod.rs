//! The datastore operations: the logic both hosts share.
//!
//! Round trips per operation (transport calls): `get` 1 (`get`); `get-many` 1
//! (`get-many`); `put`, `put-many`, `delete`, `delete-many` 2 (a `get-many` of the old
//! values, whose index rows must go, and one `commit` of the entities, their index rows and
//! version checks on what was read), retried on a lost race; a query page 1 scan per batch
//! of index rows (batches grow with the page) plus 1 `get-many` for the entities; a
//! transaction its reads, then 1 `get-many` for written keys it did not read, then 1
//! `commit`.
//!
//! (About 880 lines, 430 of them the operations' tests.)

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use crate::entity::Entity;
use crate::error::Error;
use crate::index;
use crate::key::{Key, describe_kv_key};
use crate::query::{self, Query};
use crate::schema::Schema;
use crate::transport::{Check, Level, Log, StoreError, Transport, Versioned, Write};

mod listing;
mod transaction;

pub use listing::{CHECK_PAGE, CheckReport, EntityPage, PAGE_BYTES, RepairReport, SCAN_ROWS};
pub use transaction::Transaction;

/// Most ids one `allocate_ids` call reserves.
pub const MAX_ALLOCATE: u64 = 1 << 20;

/// The datastore model over a transport and a log, with the kinds a schema declares.
///
/// One `Model` serves one call; it holds no state of its own between calls.
pub struct Model<T, L> {
    transport: T,
    log: L,
    schema: &'static Schema,
}

/// A write one commit applies to an entity.
#[derive(Debug, Clone)]
enum Mutation {
    /// Store the entity (already prepared) with this stored value.
    Put(Entity, Vec<u8>),
    /// Delete the entity at this key.
    Delete(Key),
}

impl Mutation {
    fn key(&self) -> &Key {
        match self {
            Mutation::Put(entity, _) => &entity.key,
            Mutation::Delete(key) => key,
        }
    }
}

impl<T: Transport, L: Log> Model<T, L> {
    /// A schemaless model reading and committing through `transport`, logging to `log`.
    pub fn new(transport: T, log: L) -> Self {
        Model {
            transport,
            log,
            schema: &Schema::EMPTY,
        }
    }

    /// The model with the kinds `schema` declares.
    pub fn with_schema(mut self, schema: &'static Schema) -> Self {
        self.schema = schema;
        self
    }

    /// The transport, e.g. to inspect a native store after a test.
    pub fn transport(&self) -> &T {
        &self.transport
    }

    /// The transport, mutably (e.g. to reset a counting transport in a test).
    pub fn transport_mut(&mut self) -> &mut T {
        &mut self.transport
    }

    /// The schema the model checks puts against.
    pub fn schema(&self) -> &'static Schema {
        self.schema
    }

    /// Reads the entity at `key`: one transport `get`, then decoding and validation.
    pub fn get(&mut self, key: &Key) -> Result<Option<Entity>, Error> {
        match self.read(key)? {
            None => Ok(None),
            Some(stored) => Entity::decode(key.clone(), &stored).map(Some),
        }
    }

    /// Reads the entity at `key` as its properties' typed-JSON text, checked but not parsed:
    /// what the component returns, since the host parses it into its own types anyway.
    pub fn get_json(&mut self, key: &Key) -> Result<Option<String>, Error> {
        match self.read(key)? {
            None => Ok(None),
            Some(stored) => crate::entity::into_json(key, stored).map(Some),
        }
    }

    /// [`Model::get_json`] of a key given in its transport encoding, as the WIT `key`
    /// crosses the component boundary: checked in place ([`crate::key::check_encoded`]) and
    /// read as the transport key it already is, so the common get builds no [`Key`] and
    /// encodes nothing.
    pub fn get_json_encoded(&mut self, key: &[u8]) -> Result<Option<String>, Error> {
        self.log.log(Level::Debug, "model", "Model base _get()");
        crate::key::check_encoded(key)?;
        match self.transport.get(key)? {
            None => Ok(None),
            Some(stored) => {
                crate::entity::into_json(&crate::key::EncodedKey(key), stored.value).map(Some)
            }
        }
    }

    fn read(&mut self, key: &Key) -> Result<Option<Vec<u8>>, Error> {
        self.log.log(Level::Debug, "model", "Model base _get()");
        key.validate()?;
        Ok(self
            .transport
            .get(&key.encode())?
            .map(|stored| stored.value))
    }

    /// Reads several entities with one transport `get-many`: one result per key, in order.
    pub fn get_many(&mut self, keys: &[Key]) -> Result<Vec<Option<Entity>>, Error> {
        let stored = self.read_many(keys)?;
        keys.iter()
            .zip(stored)
            .map(|(key, value)| {
                value
                    .map(|value| Entity::decode(key.clone(), &value))
                    .transpose()
            })
            .collect()
    }

    /// Like [`Model::get_many`], as JSON text checked but not parsed (see [`Model::get_json`]).
    pub fn get_many_json(&mut self, keys: &[Key]) -> Result<Vec<Option<String>>, Error> {
        let stored = self.read_many(keys)?;
        keys.iter()
            .zip(stored)
            .map(|(key, value)| {
                value
                    .map(|value| crate::entity::into_json(key, value))
                    .transpose()
            })
            .collect()
    }

    fn read_many(&mut self, keys: &[Key]) -> Result<Vec<Option<Vec<u8>>>, Error> {
        Ok(self
            .read_many_versioned(keys, false)?
            .into_iter()
            .map(|v| v.map(|v| v.value))
            .collect())
    }

    fn read_many_versioned(
        &mut self,
        keys: &[Key],
        single_as_get: bool,
    ) -> Result<Vec<Option<Versioned>>, Error> {
        self.log
            .log(Level::Debug, "model", "Model base _get_many()");
        check_batch(keys.len())?;
        let encoded = keys
            .iter()
            .map(|key| key.validate().map(|()| key.encode()))
            .collect::<Result<Vec<_>, _>>()?;
        // One key (HTTP's GET with its ETag): the transport's `get`, as `Model::get` reads.
        if let ([one], true) = (encoded.as_slice(), single_as_get) {
            return Ok(alloc::vec![self.transport.get(one)?]);
        }
        Ok(self.transport.get_many(&encoded)?)
    }

    /// Reads several entities as [`Model::get_many_json`] does, each with the version of its
    /// row: what a conditional write ([`Model::put_if`], [`Model::delete_if`]) names.
    pub fn get_versioned_json(
        &mut self,
        keys: &[Key],
    ) -> Result<Vec<Option<(String, u64)>>, Error> {
        let stored = self.read_many_versioned(keys, true)?;
        keys.iter()
            .zip(stored)
            .map(|(key, stored)| {
                stored
                    .map(|stored| {
                        crate::entity::into_json(key, stored.value)
                            .map(|json| (json, stored.version))
                    })
                    .transpose()
            })
            .collect()
    }

    /// Validates `entity` against its kind, then writes it and its index rows in one atomic
    /// commit; returns its key.
    pub fn put(&mut self, entity: &Entity) -> Result<Key, Error> {
        self.put_owned(entity.clone())
    }

    /// [`Model::put`] of an entity the caller gives up: no copy of it is made.
    pub fn put_owned(&mut self, mut entity: Entity) -> Result<Key, Error> {
        self.log.log(Level::Debug, "model", "Model base _put()");
        let stored = entity.prepare(self.schema)?;
        let key = entity.key.clone();
        self.write(alloc::vec![Mutation::Put(entity, stored)])?;
        Ok(key)
    }

    /// Validates every entity, then writes them all, with their index rows, in one atomic
    /// commit (a later entity with the same key wins). If any entity is invalid nothing is
    /// written, and the error names the entity.
    pub fn put_many(&mut self, entities: &[Entity]) -> Result<Vec<Key>, Error> {
        self.put_many_owned(entities.to_vec())
    }

    /// [`Model::put_many`] of entities the caller gives up: no copy of them is made.
    pub fn put_many_owned(&mut self, entities: Vec<Entity>) -> Result<Vec<Key>, Error> {
        self.log
            .log(Level::Debug, "model", "Model base _put_many()");
        check_batch(entities.len())?;
        let several = entities.len() > 1;
        let mut keys = Vec::with_capacity(entities.len());
        let mut mutations = Vec::with_capacity(entities.len());
        for mut entity in entities {
            let stored = entity.prepare(self.schema).map_err(|err| match err {
                Error::InvalidEntity(msg) if several => {
                    Error::InvalidEntity(format!("{}: {msg}", entity.key))
                }
                other => other,
            })?;
            keys.push(entity.key.clone());
            mutations.push(Mutation::Put(entity, stored));
        }
        self.write(mutations)?;
        Ok(keys)
    }

    /// Deletes the entity at `key` and its index rows in one commit; deleting an absent
    /// entity is not an error.
    pub fn delete(&mut self, key: &Key) -> Result<(), Error> {
        self.delete_many(core::slice::from_ref(key))
    }

    /// Deletes several entities and their index rows in one atomic commit.
    pub fn delete_many(&mut self, keys: &[Key]) -> Result<(), Error> {
        self.log.log(Level::Debug, "model", "Model base _delete()");
        check_batch(keys.len())?;
        let mutations = keys
            .iter()
            .map(|key| key.validate().map(|()| Mutation::Delete(key.clone())))
            .collect::<Result<Vec<_>, _>>()?;
        self.write(mutations)
    }

    /// Like [`Model::put_many`], but each entity is written only if its [`Condition`] holds
    /// for what is stored at its key; if one does not, nothing is written and the error is
    /// [`Error::FailedPrecondition`], naming the key and what is stored. Returns the
    /// version of the commit, which every written entity now has.
    pub fn put_if(&mut self, writes: Vec<(Entity, Condition)>) -> Result<u64, Error> {
        self.log.log(Level::Debug, "model", "Model base _put_if()");
        check_batch(writes.len())?;
        let several = writes.len() > 1;
        let mut mutations = Vec::with_capacity(writes.len());
        let mut conditions = Vec::with_capacity(writes.len());
        for (mut entity, condition) in writes {
            let stored = entity.prepare(self.schema).map_err(|err| match err {
                Error::InvalidEntity(msg) if several => {
                    Error::InvalidEntity(format!("{}: {msg}", entity.key))
                }
                other => other,
            })?;
            conditions.push(condition);
            mutations.push(Mutation::Put(entity, stored));
        }
        Ok(self.write_if(mutations, &conditions)?.version)
    }

    /// Deletes the entities at `deletes`' keys in one atomic commit, if every [`Condition`]
    /// holds (else [`Error::FailedPrecondition`], and nothing is deleted). Returns, per key,
    /// whether an entity was there.
    pub fn delete_if(&mut self, deletes: &[(Key, Condition)]) -> Result<Vec<bool>, Error> {
        self.log
            .log(Level::Debug, "model", "Model base _delete_if()");
        check_batch(deletes.len())?;
        let mutations = deletes
            .iter()
            .map(|(key, _)| key.validate().map(|()| Mutation::Delete(key.clone())))
            .collect::<Result<Vec<_>, _>>()?;
        let conditions: Vec<Condition> = deletes.iter().map(|(_, c)| *c).collect();
        let written = self.write_if(mutations, &conditions)?;
        Ok(deletes
            .iter()
            .map(|(key, _)| written.existed.get(&key.encode()).copied().unwrap_or(false))
            .collect())
    }

    /// Applies `mutations` unconditionally (see [`Model::write_if`]).
    fn write(&mut self, mutations: Vec<Mutation>) -> Result<(), Error> {
        let conditions = alloc::vec![Condition::Any; mutations.len()];
        self.write_if(mutations, &conditions).map(|_| ())
    }

    /// Applies `mutations` (a later one for the same key wins) if each one's condition (in
    /// `conditions`, beside it) holds: reads the old values, checks the conditions against
    /// them, then commits entities and index rows with checks on the versions read; a lost
    /// race is retried as the transport's backoff allows (and the conditions checked again).
    fn write_if(
        &mut self,
        mutations: Vec<Mutation>,
        conditions: &[Condition],
    ) -> Result<Written, Error> {
        let mut required: Vec<(Vec<u8>, Key, Condition)> = Vec::new();
        let mut by_key: BTreeMap<Vec<u8>, Mutation> = BTreeMap::new();
        for (mutation, condition) in mutations.into_iter().zip(conditions) {
            let encoded = mutation.key().encode();
            if *condition != Condition::Any {
                required.push((encoded.clone(), mutation.key().clone(), *condition));
            }
            by_key.insert(encoded, mutation);
        }
        let keys: Vec<Vec<u8>> = by_key.keys().cloned().collect();
        self.retrying(|model| {
            let old = model.transport.get_many(&keys)?;
            let reads: BTreeMap<Vec<u8>, Option<Versioned>> =
                keys.iter().cloned().zip(old).collect();
            for (encoded, key, condition) in &required {
                let stored = reads.get(encoded).and_then(Option::as_ref);
                condition.check(key, stored.map(|s| s.version))?;
            }
            let existed = reads
                .iter()
                .map(|(k, v)| (k.clone(), v.is_some()))
                .collect();
            let (checks, writes) = commit_plan(model.schema, reads, &by_key)?;
            let version = model.transport.commit(&checks, &writes)?;
            Ok(Written { version, existed })
        })
    }

    /// Runs `attempt` until it does not lose a commit race, as the backoff allows.
    fn retrying<R>(
        &mut self,
        mut attempt: impl FnMut(&mut Self) -> Result<R, Error>,
    ) -> Result<R, Error> {
        let mut tries = 0u32;
        loop {
            match attempt(self) {
                Err(Error::Store(StoreError::Conflict(key))) => {
                    tries += 1;
                    if !self.transport.backoff(tries) {
                        return Err(Error::Conflict(format!(
                            "gave up after {tries} attempts: another writer committed {} first",
                            describe_kv_key(&key)
                        )));
                    }
                    self.log.log(
                        Level::Debug,
                        "model",
                        &format!("commit lost a race on {}; retrying", describe_kv_key(&key)),
                    );
                }
                other => return other,
            }
        }
    }

    /// Runs `body` as an optimistic transaction: its reads record versions, its writes are
    /// buffered, and the commit checks every version read and writes everything (with
    /// index rows) atomically. If another writer got there first, `body` runs again, as
    /// the transport's backoff allows ([`crate::transport::DEFAULT_RETRIES`] by default),
    /// and then the transaction fails with [`Error::Conflict`]. `body` must have no effects
    /// besides those through the transaction, since it may run several times.
    pub fn transaction<R>(
        &mut self,
        mut body: impl FnMut(&mut Transaction<'_, T, L>) -> Result<R, Error>,
    ) -> Result<R, Error> {
        // The transport key the last attempt's commit lost on, for the next attempt.
        let mut lost_on: Option<Vec<u8>> = None;
        self.retrying(|model| {
            let mut tx = Transaction {
                model,
                reads: BTreeMap::new(),
                writes: BTreeMap::new(),
                lost_on: lost_on.take(),
            };
            let result = body(&mut tx)?;
            if let Err(err) = tx.commit() {
                if let Error::Store(StoreError::Conflict(key)) = &err {
                    lost_on = Some(key.clone());
                }
                return Err(err);
            }
            Ok(result)
        })
    }

    /// Runs one page of `query` (see [`crate::query`]).
    pub fn query(&mut self, query: &Query) -> Result<query::Page, Error> {
        self.log.log(Level::Debug, "model", "Model base _query()");
        query::run(&mut self.transport, self.schema, query, false)
    }

    /// Runs one page of `query` and returns keys with their properties' JSON text (`None`
    /// for keys-only queries), and the next cursor.
    pub fn query_json(&mut self, query: &Query) -> Result<QueryPage, Error> {
        let page = self.query(query)?;
        let results = page
            .hits
            .into_iter()
            .map(|hit| {
                let json = hit
                    .stored
                    .map(|stored| crate::entity::into_json(&hit.key, stored.value))
                    .transpose()?;
                Ok((hit.key, json))
            })
            .collect::<Result<Vec<_>, Error>>()?;
        Ok(QueryPage {
            results,
            next: page.next,
        })
    }

    /// Counts the results of `query` from its index (see [`crate::query::count`]).
    pub fn count(&mut self, query: &Query) -> Result<query::Count, Error> {
        self.log.log(Level::Debug, "model", "Model base _count()");
        query::count(&mut self.transport, self.schema, query)
    }

    /// Reserves `count` consecutive ids for `kind` in `namespace` and returns the first.
    /// Ids are unique per namespace and kind and never issued twice, however many callers
    /// race (the counter row is read and committed with a version check). Ids put
    /// explicitly by users are not reserved (as in Cloud Datastore).
    pub fn allocate_ids(&mut self, namespace: &str, kind: &str, count: u64) -> Result<u64, Error> {
        crate::key::check_namespace(namespace)?;
        crate::key::check_kind(kind)?;
        if count == 0 || count > MAX_ALLOCATE {
            return Err(Error::InvalidArgument(format!(
                "allocate between 1 and {MAX_ALLOCATE} ids at once, not {count}"
            )));
        }
        let row = index::allocator_row(namespace, kind);
        self.retrying(|model| {
            let current = model.transport.get(&row)?;
            let next = match &current {
                None => 1,
                Some(stored) => stored
                    .value
                    .as_slice()
                    .try_into()
                    .map(u64::from_be_bytes)
                    .map_err(|_| {
                        Error::Corrupt(format!("the id allocator row of {kind} is damaged"))
                    })?,
            };
            let after = next
                .checked_add(count)
                .ok_or_else(|| Error::InvalidKey(format!("ids of kind {kind} are exhausted")))?;
            model.transport.commit(
                &[Check {
                    key: row.clone(),
                    version: current.map(|c| c.version),
                }],
                &[Write {
                    key: row.clone(),
                    value: Some(after.to_be_bytes().to_vec()),
                }],
            )?;
            Ok(next)
        })
    }
}

/// Old values at least this long are decoded for their indexed properties only when they
/// are overwritten or deleted ([`Entity::decode_indexed`]): below it, two passes over the
/// text (+3% of a small put's instructions) cost more than the copies they save.
const DECODE_INDEXED_FROM_BYTES: usize = 16 << 10;

/// The checks and writes of a commit that applies `mutations`, given what was read
/// (`reads`: transport key → version and value; every mutated key must be in it).
///
/// Checks: every read's version. Writes: each entity row; its old index rows that the new
/// entity does not have are deleted, its new ones written; and the entity group row of
/// every root written is bumped, so that transactions that queried the group conflict.
/// Each old value is freed as soon as its rows are known, so a large one is not held
/// beside the new value's copies.
fn commit_plan(
    schema: &Schema,
    mut reads: BTreeMap<Vec<u8>, Option<Versioned>>,
    mutations: &BTreeMap<Vec<u8>, Mutation>,
) -> Result<(Vec<Check>, Vec<Write>), Error> {
    let checks = reads
        .iter()
        .map(|(key, read)| Check {
            key: key.clone(),
            version: read.as_ref().map(|r| r.version),
        })
        .collect();
    let mut writes: BTreeMap<Vec<u8>, Option<Vec<u8>>> = BTreeMap::new();
    for (encoded, mutation) in mutations {
        let key = mutation.key();
        let old_value = reads
            .get_mut(encoded)
            .and_then(Option::as_mut)
            .map(|old| core::mem::take(&mut old.value));
        let old_rows: BTreeMap<Vec<u8>, Vec<u8>> = match old_value {
            None => BTreeMap::new(),
            Some(old) => {
                // A small value parses faster once and whole; a large one is read for its
                // indexed properties only, the rest stepped over uncopied.
                let old = if old.len() >= DECODE_INDEXED_FROM_BYTES {
                    Entity::decode_indexed(key.clone(), &old, schema)
                } else {
                    Entity::decode(key.clone(), &old)
                };
                let old = old.map_err(|err| {
                    Error::Corrupt(format!(
                        "cannot replace {key}: its stored value does not decode, so its index \
                         rows are unknown (run `check`): {err}"
                    ))
                })?;
                index::rows(schema, &old)?.into_iter().collect()
            }
        };
        let (new_rows, value) = match mutation {
            Mutation::Put(entity, stored) => (index::rows(schema, entity)?, Some(stored.clone())),
            Mutation::Delete(_) => (Vec::new(), None),
        };
        for row in old_rows.keys() {
            writes.insert(row.clone(), None);
        }
        for (row, row_value) in new_rows {
            if old_rows.get(&row) == Some(&row_value) {
                writes.remove(&row);
            } else {
                writes.insert(row, Some(row_value));
            }
        }
        writes.insert(encoded.clone(), value);
        writes.insert(index::group_row(key), Some(Vec::new()));
    }
    let writes = writes
        .into_iter()
        .map(|(key, value)| Write { key, value })
        .collect();
    Ok((checks, writes))
}

/// What a conditional write requires of the entity stored at its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    /// Nothing: the write applies whatever is stored.
    Any,
    /// No entity is stored at the key (create, never replace).
    Absent,
    /// An entity is stored at the key, at any version (replace, never create).
    Present,
    /// An entity is stored at the key, at exactly this version.
    Version(u64),
}

impl Condition {
    /// `Ok` when the condition holds for `stored`, the version of the entity at `key`
    /// (`None`: absent); else the error that says what is stored.
    fn check(self, key: &Key, stored: Option<u64>) -> Result<(), Error> {
        let failed = |why: String| Err(Error::FailedPrecondition(why));
        match (self, stored) {
            (Condition::Any, _) | (Condition::Absent, None) | (Condition::Present, Some(_)) => {
                Ok(())
            }
            (Condition::Present, None) => failed(format!(
                "{key} does not exist; the write required that it did"
            )),
            (Condition::Version(want), Some(have)) if want == have => Ok(()),
            (Condition::Absent, Some(have)) => failed(format!(
                "{key} exists (version {have}); the write required that it did not"
            )),
            (Condition::Version(want), None) => failed(format!(
                "{key} does not exist; the write required version {want}"
            )),
            (Condition::Version(want), Some(have)) => failed(format!(
                "{key} is at version {have}, not {want}: it was written since it was read"
            )),
        }
    }
}

/// What [`Model::write_if`] did: the commit's version, and whether each key held an entity.
struct Written {
    version: u64,
    existed: BTreeMap<Vec<u8>, bool>,
}

/// One page of [`Model::query_json`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueryPage {
    /// Keys and, unless keys-only, the properties' JSON text, in query order.
    pub results: Vec<(Key, Option<String>)>,
    /// The cursor to resume after the last result; `None` when the query is exhausted.
    pub next: Option<String>,
}

/// Most keys one batch get, put or delete may name, as Cloud Datastore allows.
pub const MAX_BATCH_KEYS: usize = 1000;

/// Refuses a batch of more than [`MAX_BATCH_KEYS`] keys, before anything is read.
pub(crate) fn check_batch(keys: usize) -> Result<(), Error> {
    if keys > MAX_BATCH_KEYS {
        return Err(Error::InvalidArgument(alloc::format!(
            "a batch names at most {MAX_BATCH_KEYS} keys; this one names {keys}: split it"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::{Direction, KeyRange};
    use crate::transport::{MemoryTransport, NoLog};
    use crate::value::Value;

    fn model() -> Model<MemoryTransport, NoLog> {
        Model::new(MemoryTransport::new(), NoLog)
    }

    fn json(key: Key, text: &str) -> Entity {
        Entity::from_json(key, text).unwrap()
    }

    fn check_all(model: &mut Model<MemoryTransport, NoLog>) -> (u64, Vec<String>) {
        let (mut start, mut entities, mut problems) = (None, 0, Vec::new());
        loop {
            let report = model.check(start.as_deref()).unwrap();
            entities += report.entities;
            problems.extend(report.problems);
            match report.next {
                Some(next) => start = Some(next),
                None => return (entities, problems),
            }
        }
    }

    #[test]
    fn put_get_delete() {
        let mut model = model();
        let key = Key::name("Model", "my_key");
        assert_eq!(model.get(&key).unwrap(), None);
        let entity = json(key.clone(), r#"{"n":1}"#);
        assert_eq!(model.put(&entity).unwrap(), key);
        assert_eq!(model.get(&key).unwrap(), Some(entity));
        model.delete(&key).unwrap();
        assert_eq!(model.get(&key).unwrap(), None);
        // Nothing is left behind: no entity, no index row (group rows stay by design).
        assert!(
            model
                .transport()
                .entries()
                .all(|(k, _)| k[0] == index::GROUP)
        );
    }

    #[test]
    fn a_get_by_the_encoded_key_answers_as_a_get_by_the_key() {
        let mut model = model();
        let key = Key::name("Model", "a\0b").child(crate::PathElement::id("Child", 7));
        let entity = json(key.clone(), r#"{"n":1}"#);
        model.put(&entity).unwrap();
        for key in [key, Key::name("Model", "absent"), Key::id("Model", 0)] {
            assert_eq!(model.get_json_encoded(&key.encode()), model.get_json(&key));
        }
        // A stored value it cannot read names the key, decoded for the message.
        let damaged = Key::name("Model", "damaged");
        let row = damaged.encode();
        model
            .transport_mut()
            .commit(
                &[],
                &[crate::transport::Write {
                    key: row.clone(),
                    value: Some(alloc::vec![0xEE]),
                }],
            )
            .unwrap();
        let err = model.get_json_encoded(&row).unwrap_err();
        assert_eq!(Err(err.clone()), model.get_json(&damaged));
        assert!(err.to_string().contains("Model:damaged"), "{err}");
        assert!(matches!(
            model.get_json_encoded(b"\x10garbage"),
            Err(Error::InvalidKey(_))
        ));
    }

    #[test]
    fn invalid_input_writes_nothing() {
        let mut model = model();
        let bad_key = Key::id("Model", 0);
        assert!(matches!(model.get(&bad_key), Err(Error::InvalidKey(_))));
        assert!(matches!(
            model.put(&Entity::new(bad_key)),
            Err(Error::InvalidKey(_))
        ));
        let long = "x".repeat(crate::value::MAX_INDEXED_BYTES + 1);
        let entity = Entity::new(Key::id("Model", 1)).with("s", Value::String(long));
        assert!(matches!(model.put(&entity), Err(Error::InvalidEntity(_))));
        assert_eq!(model.transport().entries().count(), 0);
    }

    #[test]
    fn batches_are_atomic_and_index_rows_follow_the_entity() {
        let mut model = model();
        let good = json(Key::id("Model", 1), r#"{"a":1}"#);
        let bad = Entity::new(Key::id("Model", 2)).with("s", Value::String("x".repeat(2000)));
        let err = model.put_many(&[good.clone(), bad]).unwrap_err();
        assert!(err.to_string().contains("Model:2"), "{err}");
        assert_eq!(model.transport().entries().count(), 0);
        let other = json(Key::id("Model", 3), r#"{"a":[1,2]}"#);
        model.put_many(&[good.clone(), other.clone()]).unwrap();
        let keys = [
            Key::id("Model", 3),
            Key::id("Model", 9),
            Key::id("Model", 1),
        ];
        assert_eq!(
            model.get_many(&keys).unwrap(),
            [Some(other), None, Some(good)]
        );
        assert_eq!(check_all(&mut model), (2, Vec::new()));
        // Changing a value moves its index row.
        model.put(&json(Key::id("Model", 1), r#"{"a":5}"#)).unwrap();
        assert_eq!(check_all(&mut model), (2, Vec::new()));
        model.delete_many(&keys).unwrap();
        assert_eq!(check_all(&mut model), (0, Vec::new()));
    }

    /// Cloud Datastore's limits, refused before anything is read or written.
    #[test]
    fn batches_filters_limits_and_index_rows_are_bounded() {
        let mut model = model();
        let keys: Vec<Key> = (1..=1001).map(|i| Key::id("Item", i)).collect();
        let entities: Vec<Entity> = keys.iter().map(|k| Entity::new(k.clone())).collect();
        for err in [
            model.get_many(&keys).map(|_| ()).unwrap_err(),
            model.put_many(&entities).map(|_| ()).unwrap_err(),
            model.delete_many(&keys).unwrap_err(),
        ] {
            assert!(
                matches!(&err, Error::InvalidArgument(msg) if msg.contains("at most 1000 keys")),
                "{err:?}"
            );
        }
        assert_eq!(check_all(&mut model), (0, Vec::new()));
        model.put_many(&entities[..1000]).unwrap();
        assert_eq!(model.get_many(&keys[..1000]).unwrap().len(), 1000);

        let filter = |n: usize| {
            let values: Vec<String> = (0..n).map(|i| i.to_string()).collect();
            crate::query::Filter::parse(&alloc::format!("n IN [{}]", values.join(","))).unwrap()
        };
        for (filters, limit, says) in [
            (alloc::vec![filter(31)], None, "at most 30 values"),
            (alloc::vec![], Some(0), "limit 0 is out of range"),
            (alloc::vec![], Some(1001), "limit 1001 is out of range"),
        ] {
            let query = Query {
                kind: Some("Item".into()),
                filters,
                limit,
                ..Query::default()
            };
            match model.query(&query) {
                Err(Error::InvalidQuery(msg)) => assert!(msg.contains(says), "{msg}"),
                other => panic!("{other:?}"),
            }
        }
        let query = Query {
            kind: Some("Item".into()),
            filters: alloc::vec![filter(30)],
            limit: Some(1000),
            ..Query::default()
        };
        assert!(model.query(&query).is_ok());

        let many = Entity::new(Key::id("Wide", 1))
            .with("n", Value::Array((0..20_000).map(Value::Int).collect()));
        match model.put(&many) {
            Err(Error::InvalidEntity(msg)) => assert!(msg.contains("20001 index rows"), "{msg}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(model.get(&Key::id("Wide", 1)).unwrap(), None);
    }

    #[test]
    fn check_pages_through_and_reports_problems() {
        let mut model = model();
        let entities: Vec<Entity> = (1..=1200)
            .map(|i| Entity::new(Key::id("Item", i)).with("n", Value::Int(i as i64)))
            .collect();
        for batch in entities.chunks(600) {
            model.put_many(batch).unwrap();
        }
        assert_eq!(check_all(&mut model), (1200, Vec::new()));

        let mut transport = MemoryTransport::new();
        let good = Entity::new(Key::id("Item", 5)).with("n", Value::Int(1));
        let never_stored = Entity::new(Key::id("Item", 6)).with("n", Value::Int(1));
        let stale = index::rows(&Schema::EMPTY, &never_stored)
            .unwrap()
            .pop()
            .unwrap();
        transport
            .commit(
                &[],
                &[
                    Write {
                        key: Key::id("Item", 1).encode(),
                        value: Some(b"\x02[1]".to_vec()),
                    },
                    Write {
                        key: b"\x99junk".to_vec(),
                        value: Some(Vec::new()),
                    },
                    Write {
                        key: Key::id("Item", 0).encode(),
                        value: Some(b"\x02{}".to_vec()),
                    },
                    // An entity without its index rows, and an index row without its entity.
                    Write {
                        key: good.key.encode(),
                        value: Some(b"\x02{\"n\":1}".to_vec()),
                    },
                    Write {
                        key: stale.0,
                        value: Some(stale.1),
                    },
                ],
            )
            .unwrap();
        let mut model = Model::new(transport, NoLog);
        let (_, problems) = check_all(&mut model);
        assert_eq!(problems.len(), 7, "{problems:#?}");
        assert!(
            problems.iter().any(|p| p.contains("missing")),
            "{problems:#?}"
        );
        assert!(
            problems.iter().any(|p| p.contains("stale")),
            "{problems:#?}"
        );
    }

    #[test]
    fn entities_page_through_by_kind() {
        let mut model = model();
        let mut entities: Vec<Entity> =
            (1..=700).map(|i| Entity::new(Key::id("Item", i))).collect();
        entities.push(json(
            Key::name("Shop", "s").child(crate::PathElement::id("Item", 1)),
            r#"{"a":1}"#,
        ));
        entities.push(Entity::new(Key::name("Shop", "s")));
        model.put_many(&entities).unwrap();
        let collect = |model: &mut Model<MemoryTransport, NoLog>, kind: Option<&str>| {
            let (mut all, mut start) = (Vec::new(), None);
            loop {
                let page = model.entities_json(start.as_deref(), kind).unwrap();
                all.extend(page.entities);
                match page.next {
                    Some(next) => start = Some(next),
                    None => return all,
                }
            }
        };
        assert_eq!(collect(&mut model, None).len(), 702);
        assert_eq!(collect(&mut model, Some("Item")).len(), 701);
        let shops = collect(&mut model, Some("Shop"));
        assert_eq!(shops, [(Key::name("Shop", "s"), "{}".into())]);
    }

    #[test]
    fn pages_of_large_entities_end_by_bytes_and_lose_nothing() {
        let mut model = model();
        let blob = "x".repeat(500_000);
        let entities: Vec<Entity> = (1..=40)
            .map(|i| {
                json(
                    Key::id("Blob", i),
                    &format!(r#"{{"b": {{"$unindexed": "{blob}"}}, "n": {i}}}"#),
                )
            })
            .collect();
        for entity in &entities {
            model.put(entity).unwrap();
        }
        let (mut seen, mut pages, mut start) = (Vec::new(), 0, None);
        loop {
            let page = model.entities_json(start.as_deref(), None).unwrap();
            pages += 1;
            let bytes: usize = page.entities.iter().map(|(_, json)| json.len()).sum();
            assert!(
                bytes <= PAGE_BYTES + SCAN_ROWS as usize * 600_000,
                "a page of {bytes} bytes"
            );
            seen.extend(page.entities.into_iter().map(|(key, _)| key));
            match page.next {
                Some(next) => start = Some(next),
                None => break,
            }
        }
        let keys: Vec<Key> = entities.iter().map(|e| e.key.clone()).collect();
        assert_eq!(seen, keys, "every entity once, in key order");
        assert!(pages >= 2, "20 MB of entities took {pages} page(s)");
        assert_eq!(check_all(&mut model), (40, Vec::new()));
    }

    #[test]
    fn corrupt_values_are_reported() {
        let mut transport = MemoryTransport::new();
        let key = Key::name("Model", "x");
        transport
            .commit(
                &[],
                &[Write {
                    key: key.encode(),
                    value: Some(b"\x02nope".to_vec()),
                }],
            )
            .unwrap();
        let mut model = Model::new(transport, NoLog);
        assert!(matches!(model.get(&key), Err(Error::Corrupt(_))));
        // Replacing it would orphan its index rows: refused, not guessed.
        assert!(matches!(
            model.put(&Entity::new(key)),
            Err(Error::Corrupt(_))
        ));
    }

    #[test]
    fn allocated_ids_are_consecutive_and_never_reissued() {
        let mut model = model();
        assert_eq!(model.allocate_ids("", "Order", 10).unwrap(), 1);
        assert_eq!(model.allocate_ids("", "Order", 1).unwrap(), 11);
        assert_eq!(model.allocate_ids("", "Invoice", 1).unwrap(), 1);
        assert_eq!(model.allocate_ids("ns", "Order", 1).unwrap(), 1);
        assert!(model.allocate_ids("", "Order", 0).is_err());
        assert!(model.allocate_ids("", "", 1).is_err());
        assert!(model.allocate_ids("", "__x", 1).is_err());
    }

    /// A transport whose first `n` commits fail as if another writer got there first.
    struct Racing {
        inner: MemoryTransport,
        lose: u32,
    }

    impl Transport for Racing {
        fn get(&mut self, key: &[u8]) -> Result<Option<Versioned>, StoreError> {
            self.inner.get(key)
        }
        fn scan(
            &mut self,
            range: &KeyRange,
            limit: u32,
            d: Direction,
        ) -> Result<Vec<crate::transport::Entry>, StoreError> {
            self.inner.scan(range, limit, d)
        }
        fn commit(&mut self, checks: &[Check], writes: &[Write]) -> Result<u64, StoreError> {
            if self.lose > 0 {
                self.lose -= 1;
                // The rival's commit: bump every checked key that exists.
                let bumps: Vec<Write> = checks
                    .iter()
                    .filter_map(|c| {
                        let current = self.inner.get(&c.key).ok().flatten()?;
                        Some(Write {
                            key: c.key.clone(),
                            value: Some(current.value),
                        })
                    })
                    .collect();
                self.inner.commit(&[], &bumps)?;
                return Err(StoreError::Conflict(checks[0].key.clone()));
            }
            self.inner.commit(checks, writes)
        }
    }

    /// A transport on which a rival moves 10 from one box to the other just before the
    /// transaction's second read, once.
    struct Interleaved {
        inner: MemoryTransport,
        armed: bool,
        gets: u32,
        rival: Vec<Write>,
    }

    impl Transport for Interleaved {
        fn get(&mut self, key: &[u8]) -> Result<Option<Versioned>, StoreError> {
            if self.armed {
                self.gets += 1;
                if self.gets == 2 {
                    self.armed = false;
                    let rival = core::mem::take(&mut self.rival);
                    self.inner.commit(&[], &rival)?;
                }
            }
            self.inner.get(key)
        }
        fn scan(
            &mut self,
            range: &KeyRange,
            limit: u32,
            d: Direction,
        ) -> Result<Vec<crate::transport::Entry>, StoreError> {
            self.inner.scan(range, limit, d)
        }
        fn commit(&mut self, checks: &[Check], writes: &[Write]) -> Result<u64, StoreError> {
            self.inner.commit(checks, writes)
        }
    }

    #[test]
    fn a_read_only_transaction_sees_one_snapshot() {
        let (a, b) = (Key::name("Box", "a"), Key::name("Box", "b"));
        let boxes = |n_a: i64, n_b: i64| {
            let mut scratch = model();
            scratch
                .put(&Entity::new(a.clone()).with("n", Value::Int(n_a)))
                .unwrap();
            scratch
                .put(&Entity::new(b.clone()).with("n", Value::Int(n_b)))
                .unwrap();
            [&a, &b]
                .map(|key| Write {
                    key: key.encode(),
                    value: scratch
                        .transport_mut()
                        .get(&key.encode())
                        .unwrap()
                        .map(|v| v.value),
                })
                .to_vec()
        };
        let mut inner = MemoryTransport::new();
        inner.commit(&[], &boxes(100, 10)).unwrap();
        let mut model = Model::new(
            Interleaved {
                inner,
                armed: true,
                gets: 0,
                rival: boxes(90, 20),
            },
            NoLog,
        );
        let n = |entity: Option<Entity>| match entity.map(|e| e.properties["n"].clone()) {
            Some(Value::Int(n)) => n,
            other => panic!("{other:?}"),
        };
        let total = model
            .transaction(|tx| Ok(n(tx.get(&a)?) + n(tx.get(&b)?)))
            .unwrap();
        assert_eq!(total, 110, "100 + 20 would count the moved 10 twice");
        assert!(!model.transport().armed, "the rival did move it");
    }

    #[test]
    fn transactions_retry_then_give_up() {
        let counter = Key::name("Counter", "c");
        let increment = |tx: &mut Transaction<'_, Racing, NoLog>| {
            let n = match tx.get(&counter)? {
                Some(e) => match e.properties.get("n") {
                    Some(Value::Int(n)) => *n,
                    _ => 0,
                },
                None => 0,
            };
            tx.put(Entity::new(counter.clone()).with("n", Value::Int(n + 1)))?;
            Ok(n + 1)
        };
        let mut model = Model::new(
            Racing {
                inner: MemoryTransport::new(),
                lose: 0,
            },
            NoLog,
        );
        assert_eq!(model.transaction(increment).unwrap(), 1);
        model.transport.lose = 3;
        assert_eq!(model.transaction(increment).unwrap(), 2);
        model.transport.lose = 4;
        let err = model.transaction(increment).unwrap_err();
        assert!(
            matches!(&err, Error::Conflict(m) if m.contains("4 attempts")),
            "{err}"
        );
        assert_eq!(
            model.get(&counter).unwrap().unwrap().properties["n"],
            Value::Int(2)
        );
    }

    #[test]
    fn transactional_queries_see_phantoms_as_conflicts() {
        let mut model = model();
        let parent = Key::name("List", "l");
        model.put(&Entity::new(parent.clone())).unwrap();
        let query = Query {
            kind: Some("Item".into()),
            ancestor: Some(parent.clone()),
            ..Query::default()
        };
        let mut runs = 0;
        let count = model
            .transaction(|tx| {
                runs += 1;
                let items = tx.query(&query)?;
                if runs == 1 {
                    // A rival adds an item under the same ancestor before we commit.
                    let rival =
                        Entity::new(parent.clone().child(crate::PathElement::id("Item", 9)));
                    let mut rival_model = Model::new(&mut tx.model.transport, NoLog);
                    rival_model.put(&rival)?;
                }
                tx.put(Entity::new(parent.clone()).with("count", Value::Int(items.len() as i64)))?;
                Ok(items.len())
            })
            .unwrap();
        assert_eq!((runs, count), (2, 1));
        let no_ancestor = Query {
            kind: Some("Item".into()),
            ..Query::default()
        };
        assert!(matches!(
            model.transaction(|tx| tx.query(&no_ancestor)),
            Err(Error::InvalidQuery(_))
        ));
    }
}
