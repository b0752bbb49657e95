//! The datastore operations: the logic both hosts share.
//!
//! Round trips per operation (transport calls): `get` 1 (`get`); `get-many` 1
//! (`get-many`); `put`, `put-many`, `delete`, `delete-many` 2 (a `get-many` of the old
//! values, whose index rows must go, and one `commit` of the entities, their index rows and
//! version checks on what was read), retried on a lost race; a query page 1 scan per batch
//! of index rows (batches grow with the page) plus 1 `get-many` for the entities; a
//! transaction its reads, then 1 `get-many` for written keys it did not read, then 1
//! `commit`.

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
use crate::transport::{
    Check, Direction, KeyRange, Level, Log, StoreError, Transport, Versioned, Write,
};

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
        self.log
            .log(Level::Debug, "model", "Model base _get_many()");
        let encoded = keys
            .iter()
            .map(|key| key.validate().map(|()| key.encode()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(self
            .transport
            .get_many(&encoded)?
            .into_iter()
            .map(|v| v.map(|v| v.value))
            .collect())
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
        let mutations = keys
            .iter()
            .map(|key| key.validate().map(|()| Mutation::Delete(key.clone())))
            .collect::<Result<Vec<_>, _>>()?;
        self.write(mutations)
    }

    /// Applies `mutations` (a later one for the same key wins): reads the old values, then
    /// commits entities and index rows with checks on the versions read; a lost race is
    /// retried as the transport's backoff allows.
    fn write(&mut self, mutations: Vec<Mutation>) -> Result<(), Error> {
        let mut by_key: BTreeMap<Vec<u8>, Mutation> = BTreeMap::new();
        for mutation in mutations {
            by_key.insert(mutation.key().encode(), mutation);
        }
        let keys: Vec<Vec<u8>> = by_key.keys().cloned().collect();
        self.retrying(|model| {
            let old = model.transport.get_many(&keys)?;
            let reads: BTreeMap<Vec<u8>, Option<Versioned>> =
                keys.iter().cloned().zip(old).collect();
            let (checks, writes) = commit_plan(model.schema, reads, &by_key)?;
            model.transport.commit(&checks, &writes)?;
            Ok(())
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

    /// One page of entities in key order from `start`, all kinds or only `kind` (the
    /// entity's own kind), as JSON text: a page reads at most [`CHECK_PAGE`] rows, and
    /// ends early once they hold [`PAGE_BYTES`], so a page of the largest entities still
    /// fits the component's memory.
    pub fn entities_json(
        &mut self,
        start: Option<&[u8]>,
        kind: Option<&str>,
    ) -> Result<EntityPage, Error> {
        let begin = alloc::vec![crate::key::ENTITY_PREFIX];
        let range = KeyRange {
            start: start
                .map(<[u8]>::to_vec)
                .filter(|s| *s > begin)
                .unwrap_or(begin),
            end: Some(alloc::vec![crate::key::ENTITY_PREFIX + 1]),
        };
        let page = self.read_page(range)?;
        let next = page.next();
        let mut entities = Vec::new();
        for entry in page.entries {
            let key = Key::decode(&entry.key).map_err(|err| {
                Error::Corrupt(format!("row {}: {err}", describe_kv_key(&entry.key)))
            })?;
            if kind.is_some_and(|kind| key.leaf().is_some_and(|leaf| leaf.kind != kind)) {
                continue;
            }
            // The stored bytes become the text: one copy of each value in memory, not two.
            let json = crate::entity::into_json(&key, entry.value.value)?;
            entities.push((key, json));
        }
        Ok(EntityPage { entities, next })
    }

    /// One page of rows from `range`'s start: [`CHECK_PAGE`] rows, or fewer once they hold
    /// [`PAGE_BYTES`], read [`SCAN_ROWS`] at a time. A scan's result is copied whole into
    /// the component's memory, and one entity may be 1 MiB: 500 rows in one scan could need
    /// 500 MiB, past any instance's memory, where this bounds a page by its bytes.
    fn read_page(&mut self, mut range: KeyRange) -> Result<Page, Error> {
        let mut page = Page {
            entries: Vec::new(),
            exhausted: false,
        };
        let mut bytes = 0;
        while page.entries.len() < CHECK_PAGE as usize && bytes < PAGE_BYTES {
            let want = SCAN_ROWS.min(CHECK_PAGE - page.entries.len() as u32);
            let batch = self.transport.scan(&range, want, Direction::Forward)?;
            page.exhausted = batch.len() < want as usize;
            bytes += batch
                .iter()
                .map(|entry| entry.key.len() + entry.value.value.len())
                .sum::<usize>();
            if let Some(last) = batch.last() {
                range.start = last.key.clone();
                range.start.push(0);
            }
            page.entries.extend(batch);
            if page.exhausted {
                break;
            }
        }
        Ok(page)
    }

    /// Checks one page of the store from `start`: every entity row must decode canonically
    /// and validly and have exactly its index rows; every index row must point at an entity
    /// that has it. Reads only.
    pub fn check(&mut self, start: Option<&[u8]>) -> Result<CheckReport, Error> {
        let range = KeyRange {
            start: start.map(<[u8]>::to_vec).unwrap_or_default(),
            end: None,
        };
        let page = self.read_page(range)?;
        let mut report = CheckReport::default();
        // Rows each entity must have, and the entities index rows point at.
        let mut expected: Vec<(Key, index::Row)> = Vec::new();
        let mut pointed: Vec<IndexRow> = Vec::new();
        for entry in &page.entries {
            let row = describe_kv_key(&entry.key);
            match entry.key.first() {
                Some(&crate::key::ENTITY_PREFIX) => {}
                Some(&(index::KIND_INDEX | index::PROPERTY_INDEX | index::COMPOSITE_INDEX)) => {
                    report.index_rows += 1;
                    match index::row_entity_key(&entry.value.value) {
                        Ok(key) => pointed.push(IndexRow {
                            row: entry.key.clone(),
                            value: entry.value.value.clone(),
                            encoded: key.encode(),
                            entity: key,
                        }),
                        Err(err) => report.problems.push(format!("index row {row}: {err}")),
                    }
                    continue;
                }
                Some(&(index::GROUP | index::ID_ALLOCATOR)) => continue,
                _ => {
                    report
                        .problems
                        .push(format!("row {row}: not an entity row (unknown prefix)"));
                    continue;
                }
            }
            report.entities += 1;
            let key = match Key::decode(&entry.key) {
                Ok(key) => key,
                Err(err) => {
                    report
                        .problems
                        .push(format!("row {row}: the key does not decode: {err}"));
                    continue;
                }
            };
            if key.encode() != entry.key {
                report.problems.push(format!(
                    "entity {key}: the stored key is not in canonical form"
                ));
            }
            if let Err(err) = key.validate() {
                report
                    .problems
                    .push(format!("entity {key}: invalid key: {err}"));
            }
            match Entity::decode(key.clone(), &entry.value.value) {
                Err(err) => report.problems.push(format!("{err}")),
                Ok(entity) => match index::rows(self.schema, &entity) {
                    Ok(rows) => expected.extend(rows.into_iter().map(|r| (key.clone(), r))),
                    Err(err) => report.problems.push(format!("entity {key}: {err}")),
                },
            }
        }
        // Every expected index row is there, with its value.
        let row_keys: Vec<Vec<u8>> = expected.iter().map(|(_, (row, _))| row.clone()).collect();
        if !row_keys.is_empty() {
            let found = self.transport.get_many(&row_keys)?;
            for ((key, (row, value)), found) in expected.iter().zip(found) {
                match found {
                    None => report.problems.push(format!(
                        "entity {key}: index row {} is missing",
                        describe_kv_key(row)
                    )),
                    Some(found) if found.value != *value => report.problems.push(format!(
                        "entity {key}: index row {} has the wrong value",
                        describe_kv_key(row)
                    )),
                    Some(_) => {}
                }
            }
        }
        // Every index row belongs to an entity that has it. The entities are read
        // [`SCAN_ROWS`] at a time (each may be 1 MiB), each once for all its index rows.
        // Encoded entity key → the key, and the index rows the stored entity has (`None`: it
        // is absent or unreadable).
        let mut entities: BTreeMap<Vec<u8>, (&Key, Option<Vec<index::Row>>)> = BTreeMap::new();
        for pointer in &pointed {
            entities
                .entry(pointer.encoded.clone())
                .or_insert((&pointer.entity, None));
        }
        let entity_keys: Vec<Vec<u8>> = entities.keys().cloned().collect();
        for chunk in entity_keys.chunks(SCAN_ROWS as usize) {
            let found = self.transport.get_many(chunk)?;
            for (encoded, found) in chunk.iter().zip(found) {
                if let (Some(stored), Some((key, rows))) = (found, entities.get_mut(encoded)) {
                    *rows = Entity::decode((*key).clone(), &stored.value)
                        .and_then(|entity| index::rows(self.schema, &entity))
                        .ok();
                }
            }
        }
        for IndexRow {
            row,
            value,
            entity: key,
            encoded,
        } in &pointed
        {
            let has_it = entities
                .get(encoded)
                .and_then(|(_, rows)| rows.as_ref())
                .is_some_and(|rows| rows.iter().any(|(r, v)| r == row && v == value));
            if !has_it {
                report.problems.push(format!(
                    "index row {} points at {key}, which does not have it (stale index row)",
                    describe_kv_key(row)
                ));
            }
        }
        report.next = page.next();
        Ok(report)
    }
}

/// An index row `check` read, and the entity it points at.
struct IndexRow {
    row: Vec<u8>,
    value: Vec<u8>,
    entity: Key,
    /// `entity`, encoded: the transport key of its row.
    encoded: Vec<u8>,
}

/// Rows of one `entities` or `check` page.
struct Page {
    entries: Vec<crate::transport::Entry>,
    /// The range holds nothing after these.
    exhausted: bool,
}

impl Page {
    /// Where the next page starts, unless this one was the last.
    fn next(&self) -> Option<Vec<u8>> {
        if self.exhausted {
            return None;
        }
        self.entries.last().map(|last| {
            let mut next = last.key.clone();
            next.push(0);
            next
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

/// An optimistic transaction (see [`Model::transaction`]).
pub struct Transaction<'m, T, L> {
    model: &'m mut Model<T, L>,
    /// Transport key → what was read (version and value), for the commit's checks.
    reads: BTreeMap<Vec<u8>, Option<Versioned>>,
    /// Buffered writes, by transport key.
    writes: BTreeMap<Vec<u8>, Mutation>,
    /// The transport key the previous attempt's commit lost its race on, if it did.
    lost_on: Option<Vec<u8>>,
}

impl<T: Transport, L: Log> Transaction<'_, T, L> {
    /// Whether this is a retry whose previous attempt lost its commit race on the entity
    /// at `key`: someone else wrote it, or (for [`Transaction::insert`]) it exists. Lets a
    /// body that inserts a computed key look for a free one only when it has to.
    pub fn lost_race_on(&self, key: &Key) -> bool {
        self.lost_on
            .as_deref()
            .is_some_and(|lost| lost == key.encode().as_slice())
    }

    /// Reads an entity; sees this transaction's own buffered writes.
    pub fn get(&mut self, key: &Key) -> Result<Option<Entity>, Error> {
        Ok(self.get_many(core::slice::from_ref(key))?.pop().flatten())
    }

    /// Reads several entities in at most one `get-many`; sees buffered writes.
    pub fn get_many(&mut self, keys: &[Key]) -> Result<Vec<Option<Entity>>, Error> {
        let encoded = keys
            .iter()
            .map(|key| key.validate().map(|()| key.encode()))
            .collect::<Result<Vec<_>, _>>()?;
        let missing: Vec<Vec<u8>> = encoded
            .iter()
            .filter(|k| !self.writes.contains_key(*k) && !self.reads.contains_key(*k))
            .cloned()
            .collect();
        if !missing.is_empty() {
            let found = self.model.transport.get_many(&missing)?;
            self.reads.extend(missing.into_iter().zip(found));
        }
        keys.iter()
            .zip(&encoded)
            .map(|(key, encoded)| match self.writes.get(encoded) {
                Some(Mutation::Put(entity, _)) => Ok(Some(entity.clone())),
                Some(Mutation::Delete(_)) => Ok(None),
                None => match self.reads.get(encoded).and_then(Option::as_ref) {
                    Some(stored) => Entity::decode(key.clone(), &stored.value).map(Some),
                    None => Ok(None),
                },
            })
            .collect()
    }

    /// Buffers a put; the entity is validated now. Returns its key.
    pub fn put(&mut self, entity: Entity) -> Result<Key, Error> {
        let mut entity = entity;
        let stored = entity.prepare(self.model.schema)?;
        let key = entity.key.clone();
        self.writes
            .insert(key.encode(), Mutation::Put(entity, stored));
        Ok(key)
    }

    /// Buffers the put of an entity that must not exist yet (Datastore's `insert`): no read
    /// is needed, and if the key exists at commit the transaction conflicts instead of
    /// overwriting it.
    pub fn insert(&mut self, entity: Entity) -> Result<Key, Error> {
        let encoded = entity.key.encode();
        match self.reads.get(&encoded) {
            Some(Some(_)) => {
                return Err(Error::FailedPrecondition(format!(
                    "{} exists already",
                    entity.key
                )));
            }
            Some(None) => {}
            None => {
                self.reads.insert(encoded, None);
            }
        }
        self.put(entity)
    }

    /// Buffers a delete.
    pub fn delete(&mut self, key: &Key) -> Result<(), Error> {
        key.validate()?;
        self.writes
            .insert(key.encode(), Mutation::Delete(key.clone()));
        Ok(())
    }

    /// Runs one page of an ancestor query, consistent with the transaction: the versions of
    /// the entities returned and of the ancestor's entity group are checked at commit, so
    /// any write under the ancestor since (a phantom included) makes the transaction retry.
    /// Like Cloud Datastore, the results do not include this transaction's own buffered
    /// writes.
    pub fn query(&mut self, query: &Query) -> Result<Vec<Entity>, Error> {
        let Some(ancestor) = &query.ancestor else {
            return Err(Error::InvalidQuery(
                "queries inside a transaction must have an ancestor (as in Cloud Datastore)".into(),
            ));
        };
        let group = index::group_row(ancestor);
        if !self.reads.contains_key(&group) {
            let version = self.model.transport.get(&group)?;
            self.reads.insert(group, version);
        }
        let page = query::run(&mut self.model.transport, self.model.schema, query, true)?;
        let mut entities = Vec::with_capacity(page.hits.len());
        for hit in page.hits {
            let Some(stored) = hit.stored else { continue };
            let entity = Entity::decode(hit.key.clone(), &stored.value)?;
            self.reads.entry(hit.key.encode()).or_insert(Some(stored));
            if !query.keys_only {
                entities.push(entity);
            } else {
                entities.push(Entity::new(hit.key));
            }
        }
        Ok(entities)
    }

    fn commit(self) -> Result<(), Error> {
        if self.writes.is_empty() {
            // Read-only. One read is a snapshot of its own; several must all still be what
            // they were, checked at once, or the body saw a mix of before and after another
            // commit (a transfer counted twice) and runs again.
            if self.reads.len() > 1 {
                let checks: Vec<Check> = self
                    .reads
                    .iter()
                    .map(|(key, read)| Check {
                        key: key.clone(),
                        version: read.as_ref().map(|stored| stored.version),
                    })
                    .collect();
                self.model.transport.commit(&checks, &[])?;
            }
            return Ok(());
        }
        let mut reads = self.reads;
        let unread: Vec<Vec<u8>> = self
            .writes
            .keys()
            .filter(|k| !reads.contains_key(*k))
            .cloned()
            .collect();
        if !unread.is_empty() {
            let found = self.model.transport.get_many(&unread)?;
            reads.extend(unread.into_iter().zip(found));
        }
        let (checks, writes) = commit_plan(self.model.schema, reads, &self.writes)?;
        self.model.transport.commit(&checks, &writes)?;
        Ok(())
    }
}

/// One page of [`Model::query_json`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueryPage {
    /// Keys and, unless keys-only, the properties' JSON text, in query order.
    pub results: Vec<(Key, Option<String>)>,
    /// The cursor to resume after the last result; `None` when the query is exhausted.
    pub next: Option<String>,
}

/// One page of [`Model::entities_json`]: keys with their properties' JSON text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EntityPage {
    /// The entities, in key order.
    pub entities: Vec<(Key, String)>,
    /// Where the next page starts; `None` after the last page.
    pub next: Option<Vec<u8>>,
}

/// Most rows one `check` or `entities` call reads.
pub const CHECK_PAGE: u32 = 500;

/// Bytes of keys and values past which a `check` or `entities` page ends early (it may
/// exceed this by one scan of [`SCAN_ROWS`] rows).
pub const PAGE_BYTES: usize = 8 << 20;

/// Rows one transport `scan` or `get_many` of `check` and `entities` asks for: at most
/// 16 MiB of entities even when each is as large as allowed (1 MiB).
pub const SCAN_ROWS: u32 = 16;

/// One page of [`Model::check`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckReport {
    /// Entity rows examined.
    pub entities: u64,
    /// Index rows examined.
    pub index_rows: u64,
    /// Problems found, each naming the row and what is wrong.
    pub problems: Vec<String>,
    /// Where the next page starts; `None` when the check is complete.
    pub next: Option<Vec<u8>>,
}

#[cfg(test)]
mod tests {
    use super::*;
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

    #[test]
    fn check_pages_through_and_reports_problems() {
        let mut model = model();
        let entities: Vec<Entity> = (1..=1200)
            .map(|i| Entity::new(Key::id("Item", i)).with("n", Value::Int(i as i64)))
            .collect();
        model.put_many(&entities).unwrap();
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
