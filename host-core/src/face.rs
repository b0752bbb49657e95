//! [`Face`]: the operations both hosts' `Datastore`s offer, as one trait of futures, so that
//! code over a datastore (the command line's dispatch, the Python binding) is written once
//! for both. `ads::Datastore` implements it with its own futures; `ds::Datastore` with
//! futures that are ready when made (its calls block), so one poll runs them
//! ([`complete`](crate::mode::complete)).

use std::future::Future;

use serde_json::Value as Json;

use crate::error::Error;
use crate::{
    CheckReport, Condition, Entity, EntityPage, Key, Query, QueryPage, Receipt, RepairReport,
    SalvagePage, VersionedEntity,
};

/// The datastore operations of both hosts, as `Send` futures.
pub trait Face: Send + Sync {
    /// Reads the entity at `key`, or `None` if there is none.
    fn get(&self, key: &Key) -> impl Future<Output = Result<Option<Entity>, Error>> + Send;
    /// Validates and writes `entity`; returns its key.
    fn put(&self, entity: &Entity) -> impl Future<Output = Result<Key, Error>> + Send;
    /// Deletes the entity at `key`.
    fn delete(&self, key: &Key) -> impl Future<Output = Result<(), Error>> + Send;
    /// Reads several entities in one round trip: one result per key, in order.
    fn get_many(
        &self,
        keys: &[Key],
    ) -> impl Future<Output = Result<Vec<Option<Entity>>, Error>> + Send;
    /// Writes `entities` in one atomic commit.
    fn put_many(&self, entities: &[Entity])
    -> impl Future<Output = Result<Vec<Key>, Error>> + Send;
    /// Deletes several entities in one atomic commit.
    fn delete_many(&self, keys: &[Key]) -> impl Future<Output = Result<(), Error>> + Send;
    /// One page of entities in key order.
    fn entities(
        &self,
        start: Option<&[u8]>,
        kind: Option<&str>,
    ) -> impl Future<Output = Result<EntityPage, Error>> + Send;
    /// One page of a query.
    fn query(&self, query: &Query) -> impl Future<Output = Result<QueryPage, Error>> + Send;
    /// Reserves `count` ids of `kind` in `namespace`; returns the first.
    fn allocate_ids(
        &self,
        namespace: &str,
        kind: &str,
        count: u64,
    ) -> impl Future<Output = Result<u64, Error>> + Send;
    /// The example application's deposit.
    fn deposit(
        &self,
        account: &Key,
        amount: i64,
    ) -> impl Future<Output = Result<i64, Error>> + Send;
    /// The example application's transfer.
    fn transfer(
        &self,
        source: &Key,
        destination: &Key,
        amount: i64,
    ) -> impl Future<Output = Result<Receipt, Error>> + Send;
    /// An application operation of the component, by name.
    fn call(&self, name: &str, input: &Json) -> impl Future<Output = Result<Json, Error>> + Send;
    /// Checks the whole store.
    fn check(&self) -> impl Future<Output = Result<CheckReport, Error>> + Send;
    /// Reads several entities with the versions of their rows.
    fn get_versioned(
        &self,
        keys: &[Key],
    ) -> impl Future<Output = Result<Vec<Option<VersionedEntity>>, Error>> + Send;
    /// Writes entities in one atomic commit if every condition holds; the commit's version.
    fn put_if(
        &self,
        writes: &[(Entity, Condition)],
    ) -> impl Future<Output = Result<u64, Error>> + Send;
    /// Deletes in one atomic commit if every condition holds; per key, whether it was there.
    fn delete_if(
        &self,
        deletes: &[(Key, Condition)],
    ) -> impl Future<Output = Result<Vec<bool>, Error>> + Send;
    /// Counts a query's results from the indexes.
    fn count(&self, query: &Query) -> impl Future<Output = Result<u64, Error>> + Send;
    /// The kinds the component declares, as JSON.
    fn schema(&self) -> impl Future<Output = Result<Json, Error>> + Send;
    /// Checks the whole store and repairs what is certain (`apply`), or says what it would.
    fn repair(&self, apply: bool) -> impl Future<Output = Result<RepairReport, Error>> + Send;
    /// One page of entities, skipping rows that do not decode.
    fn salvage(
        &self,
        start: Option<&[u8]>,
        kind: Option<&str>,
    ) -> impl Future<Output = Result<SalvagePage, Error>> + Send;
}

/// Writes `entities` as `put_many` does, first giving each one with an incomplete key (its
/// own id 0: `Note`, `Account:alice/Order`) a new id of its kind, as NDB's `put()` does:
/// one `allocate_ids` per kind and namespace, in the order the entities come. Returns the
/// keys written. The ids are reserved before the write, so a write that then fails leaves
/// them unused (they are never issued again).
pub async fn put_completing(db: &impl Face, mut entities: Vec<Entity>) -> Result<Vec<Key>, Error> {
    let mut incomplete: std::collections::BTreeMap<(String, String), Vec<usize>> =
        Default::default();
    for (i, entity) in entities.iter().enumerate() {
        if let (true, Some(leaf)) = (entity.key.is_incomplete(), entity.key.leaf()) {
            incomplete
                .entry((entity.key.namespace.clone(), leaf.kind.clone()))
                .or_default()
                .push(i);
        }
    }
    for ((namespace, kind), positions) in incomplete {
        let first = db
            .allocate_ids(&namespace, &kind, positions.len() as u64)
            .await?;
        for (offset, i) in positions.into_iter().enumerate() {
            if let Some(leaf) = entities[i].key.path.last_mut() {
                leaf.id = crate::IdOrName::Id(first + offset as u64);
            }
        }
    }
    match entities.as_slice() {
        [one] => Ok(vec![db.put(one).await?]),
        _ => db.put_many(&entities).await,
    }
}

/// Most keys one batch of [`delete_by_query`] deletes (one atomic commit each).
pub const DELETE_BATCH: u32 = 500;

/// What [`delete_by_query`] did: the entities it found and, unless a dry run, deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeletedByQuery {
    /// Results of the query (for a dry run, counted from the indexes).
    pub matched: u64,
    /// Entities deleted (fewer than matched if another writer deleted some first).
    pub deleted: u64,
    /// Atomic commits made.
    pub batches: u64,
}

/// Deletes every result of `query` (its limit, if any, bounds how many): a keys-only query,
/// page by page, each page deleted in one atomic commit of at most [`DELETE_BATCH`] keys.
/// With `dry_run`, counts the results instead and deletes nothing. Not one transaction:
/// an entity written after its page was read stays, and a failure leaves the batches before
/// it deleted (each batch is all or nothing).
pub async fn delete_by_query(
    db: &impl Face,
    query: &Query,
    dry_run: bool,
) -> Result<DeletedByQuery, Error> {
    if dry_run {
        let matched = db.count(query).await?;
        return Ok(DeletedByQuery {
            matched,
            deleted: 0,
            batches: 0,
        });
    }
    let mut page_query = Query {
        keys_only: true,
        ..query.clone()
    };
    let mut left = query.limit.map(u64::from);
    let mut done = DeletedByQuery {
        matched: 0,
        deleted: 0,
        batches: 0,
    };
    loop {
        let batch = left.map_or(DELETE_BATCH, |left| {
            left.min(u64::from(DELETE_BATCH)) as u32
        });
        page_query.limit = Some(batch);
        let page = db.query(&page_query).await?;
        if !page.keys.is_empty() {
            let deletes: Vec<(Key, Condition)> = page
                .keys
                .iter()
                .map(|key| (key.clone(), Condition::Any))
                .collect();
            let existed = db.delete_if(&deletes).await?;
            done.matched += page.keys.len() as u64;
            done.deleted += existed.iter().filter(|&&e| e).count() as u64;
            done.batches += 1;
        }
        if let Some(left) = &mut left {
            *left -= page.keys.len() as u64;
            if *left == 0 {
                return Ok(done);
            }
        }
        match page.next_cursor {
            Some(cursor) => {
                page_query.start = Some(cursor);
                page_query.offset = 0;
            }
            None => return Ok(done),
        }
    }
}

/// The async host's futures, as they are (the `$wrap` of [`implement_face!`] for `ads`).
pub fn awaited<F: Future>(future: F) -> F {
    future
}

/// Implements [`Face`] for a host's `Datastore`, each method wrapping the host's own call
/// in `$wrap`: `std::future::ready` for the blocking host, [`awaited`] for the async one.
#[macro_export]
macro_rules! implement_face {
    ($host:ty, $wrap:path) => {
        impl $crate::face::Face for $host {
            fn get(
                &self,
                key: &$crate::Key,
            ) -> impl std::future::Future<Output = Result<Option<$crate::Entity>, $crate::Error>> + Send {
                $wrap(<$host>::get(self, key))
            }
            fn put(
                &self,
                entity: &$crate::Entity,
            ) -> impl std::future::Future<Output = Result<$crate::Key, $crate::Error>> + Send {
                $wrap(<$host>::put(self, entity))
            }
            fn delete(
                &self,
                key: &$crate::Key,
            ) -> impl std::future::Future<Output = Result<(), $crate::Error>> + Send {
                $wrap(<$host>::delete(self, key))
            }
            fn get_many(
                &self,
                keys: &[$crate::Key],
            ) -> impl std::future::Future<Output = Result<Vec<Option<$crate::Entity>>, $crate::Error>> + Send
            {
                $wrap(<$host>::get_many(self, keys))
            }
            fn put_many(
                &self,
                entities: &[$crate::Entity],
            ) -> impl std::future::Future<Output = Result<Vec<$crate::Key>, $crate::Error>> + Send {
                $wrap(<$host>::put_many(self, entities))
            }
            fn delete_many(
                &self,
                keys: &[$crate::Key],
            ) -> impl std::future::Future<Output = Result<(), $crate::Error>> + Send {
                $wrap(<$host>::delete_many(self, keys))
            }
            fn entities(
                &self,
                start: Option<&[u8]>,
                kind: Option<&str>,
            ) -> impl std::future::Future<Output = Result<$crate::EntityPage, $crate::Error>> + Send {
                $wrap(<$host>::entities(self, start, kind))
            }
            fn query(
                &self,
                query: &$crate::Query,
            ) -> impl std::future::Future<Output = Result<$crate::QueryPage, $crate::Error>> + Send {
                $wrap(<$host>::query(self, query))
            }
            fn allocate_ids(
                &self,
                namespace: &str,
                kind: &str,
                count: u64,
            ) -> impl std::future::Future<Output = Result<u64, $crate::Error>> + Send {
                $wrap(<$host>::allocate_ids(self, namespace, kind, count))
            }
            fn deposit(
                &self,
                account: &$crate::Key,
                amount: i64,
            ) -> impl std::future::Future<Output = Result<i64, $crate::Error>> + Send {
                $wrap(<$host>::deposit(self, account, amount))
            }
            fn transfer(
                &self,
                source: &$crate::Key,
                destination: &$crate::Key,
                amount: i64,
            ) -> impl std::future::Future<Output = Result<$crate::Receipt, $crate::Error>> + Send {
                $wrap(<$host>::transfer(self, source, destination, amount))
            }
            fn call(
                &self,
                name: &str,
                input: &serde_json::Value,
            ) -> impl std::future::Future<Output = Result<serde_json::Value, $crate::Error>> + Send {
                $wrap(<$host>::call(self, name, input))
            }
            fn check(
                &self,
            ) -> impl std::future::Future<Output = Result<$crate::CheckReport, $crate::Error>> + Send {
                $wrap(<$host>::check(self))
            }
            fn get_versioned(
                &self,
                keys: &[$crate::Key],
            ) -> impl std::future::Future<
                Output = Result<Vec<Option<$crate::VersionedEntity>>, $crate::Error>,
            > + Send {
                $wrap(<$host>::get_versioned(self, keys))
            }
            fn put_if(
                &self,
                writes: &[($crate::Entity, $crate::Condition)],
            ) -> impl std::future::Future<Output = Result<u64, $crate::Error>> + Send {
                $wrap(<$host>::put_if(self, writes))
            }
            fn delete_if(
                &self,
                deletes: &[($crate::Key, $crate::Condition)],
            ) -> impl std::future::Future<Output = Result<Vec<bool>, $crate::Error>> + Send {
                $wrap(<$host>::delete_if(self, deletes))
            }
            fn count(
                &self,
                query: &$crate::Query,
            ) -> impl std::future::Future<Output = Result<u64, $crate::Error>> + Send {
                $wrap(<$host>::count(self, query))
            }
            fn schema(
                &self,
            ) -> impl std::future::Future<Output = Result<serde_json::Value, $crate::Error>> + Send {
                $wrap(<$host>::schema(self))
            }
            fn repair(
                &self,
                apply: bool,
            ) -> impl std::future::Future<Output = Result<$crate::RepairReport, $crate::Error>> + Send {
                $wrap(<$host>::repair(self, apply))
            }
            fn salvage(
                &self,
                start: Option<&[u8]>,
                kind: Option<&str>,
            ) -> impl std::future::Future<Output = Result<$crate::SalvagePage, $crate::Error>> + Send {
                $wrap(<$host>::salvage(self, start, kind))
            }
        }
    };
}
