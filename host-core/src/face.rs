//! [`Face`]: the operations both hosts' `Datastore`s offer, as one trait of futures, so that
//! code over a datastore (the command line's dispatch, the Python binding) is written once
//! for both. `ads::Datastore` implements it with its own futures; `ds::Datastore` with
//! futures that are ready when made (its calls block), so one poll runs them
//! ([`complete`](crate::mode::complete)).

use std::future::Future;

use serde_json::Value as Json;

use crate::error::Error;
use crate::{CheckReport, Entity, EntityPage, Key, Query, QueryPage, Receipt};

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
        }
    };
}
