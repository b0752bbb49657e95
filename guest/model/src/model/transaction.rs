//! Optimistic transactions: reads recorded with their versions, writes buffered, and one
//! commit that checks every read.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::vec::Vec;

use crate::entity::Entity;
use crate::error::Error;
use crate::index;
use crate::key::Key;
use crate::query::{self, Query};
use crate::transport::{Check, Log, Transport, Versioned};

use super::{Model, Mutation, commit_plan};

/// An optimistic transaction (see [`Model::transaction`]).
pub struct Transaction<'m, T, L> {
    pub(super) model: &'m mut Model<T, L>,
    /// Transport key → what was read (version and value), for the commit's checks.
    pub(super) reads: BTreeMap<Vec<u8>, Option<Versioned>>,
    /// Buffered writes, by transport key.
    pub(super) writes: BTreeMap<Vec<u8>, Mutation>,
    /// The transport key the previous attempt's commit lost its race on, if it did.
    pub(super) lost_on: Option<Vec<u8>>,
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
        super::check_batch(keys.len())?;
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
        if query.kind.as_deref().is_some_and(query::is_metadata_kind) {
            return Err(Error::InvalidQuery(
                "metadata queries do not run inside a transaction: their results are not \
                 entities with versions to check"
                    .into(),
            ));
        }
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

    pub(super) fn commit(self) -> Result<(), Error> {
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
