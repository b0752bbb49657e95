//! The component side (built for `wasm32` only): the `datastore` export served by
//! [`ds_model`] for an [`App`], the imported transport and log as [`Transport`] and [`Log`],
//! and the conversions between WIT and model types, for crates with typed exports.

use alloc::string::String;
use alloc::vec::Vec;
use core::marker::PhantomData;
use core::sync::atomic::{AtomicU8, Ordering};

use ds_model::app::App;
use ds_model::query::{Filter, Op, Order, Query};
use ds_model::schema::Direction as SortDirection;
use ds_model::transport::{self as t, Direction, KeyRange, Level, Log, Transport};
use ds_model::{Condition, Entity, Error, Key, Model, Value};

use crate::bindings::ds;
use crate::bindings::ds::datastore::types as wit;
use crate::bindings::exports::ds::datastore::datastore::Guest;

/// The component of the app `A`: what [`crate::export_model!`] exports.
pub struct Component<A>(PhantomData<A>);

impl<A: App> Guest for Component<A> {
    fn get(key: wit::Key) -> Result<Option<wit::Properties>, wit::Error> {
        // The key is its row's transport key: checked in place and read as it is.
        model::<A>().get_json_encoded(&key).map_err(error_to_wit)
    }

    fn put(entity: wit::Entity) -> Result<wit::Key, wit::Error> {
        let wit::Entity { key, properties } = entity;
        let entity = key_from_wit(&key)
            .and_then(|key| Entity::from_json_input(key, &properties))
            .map_err(error_to_wit)?;
        // Parsed: free the text before the write, which holds the entity and its encoding
        // (for a large property, one copy less at the call's peak).
        drop(properties);
        model::<A>().put_owned(entity).map_err(error_to_wit)?;
        // The key written is the one given, and its encoding is canonical (one key, one
        // encoding): the bytes that came in are the answer, without encoding it again.
        Ok(key)
    }

    fn delete(key: wit::Key) -> Result<(), wit::Error> {
        let key = key_from_wit(&key).map_err(error_to_wit)?;
        model::<A>().delete(&key).map_err(error_to_wit)
    }

    fn get_many(keys: Vec<wit::Key>) -> Result<Vec<Option<wit::Properties>>, wit::Error> {
        let keys = keys_from_wit(&keys).map_err(error_to_wit)?;
        model::<A>().get_many_json(&keys).map_err(error_to_wit)
    }

    fn put_many(entities: Vec<wit::Entity>) -> Result<Vec<wit::Key>, wit::Error> {
        // Each text is freed once parsed, as in `put`.
        let entities = entities
            .into_iter()
            .map(|wit::Entity { key, properties }| {
                Entity::from_json_input(key_from_wit(&key)?, &properties)
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(error_to_wit)?;
        let keys = model::<A>()
            .put_many_owned(entities)
            .map_err(error_to_wit)?;
        Ok(keys.into_iter().map(key_to_wit).collect())
    }

    fn delete_many(keys: Vec<wit::Key>) -> Result<(), wit::Error> {
        let keys = keys_from_wit(&keys).map_err(error_to_wit)?;
        model::<A>().delete_many(&keys).map_err(error_to_wit)
    }

    fn entities(
        start: Option<Vec<u8>>,
        kind: Option<String>,
    ) -> Result<wit::EntityPage, wit::Error> {
        let page = model::<A>()
            .entities_json(start.as_deref(), kind.as_deref())
            .map_err(error_to_wit)?;
        let entities = page
            .entities
            .into_iter()
            .map(|(key, properties)| wit::Entity {
                key: key_to_wit(key),
                properties,
            })
            .collect();
        Ok(wit::EntityPage {
            entities,
            next: page.next,
        })
    }

    fn query(query: wit::QuerySpec) -> Result<wit::QueryPage, wit::Error> {
        let query = query_from_wit(query).map_err(error_to_wit)?;
        let page = model::<A>().query_json(&query).map_err(error_to_wit)?;
        Ok(wit::QueryPage {
            results: page
                .results
                .into_iter()
                .map(|(key, properties)| wit::QueryResult {
                    key: key_to_wit(key),
                    properties,
                })
                .collect(),
            next_cursor: page.next,
        })
    }

    fn allocate_ids(namespace: String, kind: String, count: u64) -> Result<u64, wit::Error> {
        model::<A>()
            .allocate_ids(&namespace, &kind, count)
            .map_err(error_to_wit)
    }

    fn call(name: String, input: String) -> Result<String, wit::Error> {
        ds_model::app::call::<A, _, _>(&mut model::<A>(), &name, &input).map_err(error_to_wit)
    }

    fn check(start: Option<Vec<u8>>) -> Result<wit::CheckReport, wit::Error> {
        let report = model::<A>().check(start.as_deref()).map_err(error_to_wit)?;
        Ok(check_report_to_wit(report))
    }

    fn get_versioned(
        keys: Vec<wit::Key>,
    ) -> Result<Vec<Option<wit::StoredProperties>>, wit::Error> {
        let keys = keys_from_wit(&keys).map_err(error_to_wit)?;
        let found = model::<A>()
            .get_versioned_json(&keys)
            .map_err(error_to_wit)?;
        Ok(found
            .into_iter()
            .map(|found| {
                found.map(|(properties, version)| wit::StoredProperties {
                    properties,
                    version,
                })
            })
            .collect())
    }

    fn put_if(writes: Vec<(wit::Entity, wit::Condition)>) -> Result<u64, wit::Error> {
        let writes = writes
            .into_iter()
            .map(|(wit::Entity { key, properties }, condition)| {
                Entity::from_json_input(key_from_wit(&key)?, &properties)
                    .map(|entity| (entity, condition_from_wit(condition)))
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(error_to_wit)?;
        model::<A>().put_if(writes).map_err(error_to_wit)
    }

    fn delete_if(deletes: Vec<(wit::Key, wit::Condition)>) -> Result<Vec<bool>, wit::Error> {
        let deletes = deletes
            .into_iter()
            .map(|(key, condition)| Ok((key_from_wit(&key)?, condition_from_wit(condition))))
            .collect::<Result<Vec<(Key, Condition)>, Error>>()
            .map_err(error_to_wit)?;
        model::<A>().delete_if(&deletes).map_err(error_to_wit)
    }

    fn count(query: wit::QuerySpec) -> Result<wit::CountPage, wit::Error> {
        let query = query_from_wit(query).map_err(error_to_wit)?;
        let counted = model::<A>().count(&query).map_err(error_to_wit)?;
        Ok(wit::CountPage {
            count: counted.count,
            next_cursor: counted.next,
        })
    }

    fn schema() -> Result<String, wit::Error> {
        Ok(A::SCHEMA.to_json_text())
    }

    fn repair(start: Option<Vec<u8>>, apply: bool) -> Result<wit::RepairReport, wit::Error> {
        let report = model::<A>()
            .repair(start.as_deref(), apply)
            .map_err(error_to_wit)?;
        Ok(wit::RepairReport {
            check: check_report_to_wit(report.check),
            written: report.written,
            deleted: report.deleted,
        })
    }

    fn salvage(
        start: Option<Vec<u8>>,
        kind: Option<String>,
    ) -> Result<wit::SalvagePage, wit::Error> {
        let (page, skipped) = model::<A>()
            .salvage_json(start.as_deref(), kind.as_deref())
            .map_err(error_to_wit)?;
        Ok(wit::SalvagePage {
            entities: page
                .entities
                .into_iter()
                .map(|(key, properties)| wit::Entity {
                    key: key_to_wit(key),
                    properties,
                })
                .collect(),
            skipped,
            next: page.next,
        })
    }
}

fn check_report_to_wit(report: ds_model::CheckReport) -> wit::CheckReport {
    wit::CheckReport {
        entities: report.entities,
        index_rows: report.index_rows,
        problems: report.problems,
        next: report.next,
    }
}

fn condition_from_wit(condition: wit::Condition) -> Condition {
    match condition {
        wit::Condition::Any => Condition::Any,
        wit::Condition::Absent => Condition::Absent,
        wit::Condition::Present => Condition::Present,
        wit::Condition::Version(version) => Condition::Version(version),
    }
}

/// The model of one export call: the imported transport and log, and `A`'s schema.
pub fn model<A: App>() -> Model<ImportedTransport, ImportedLog> {
    Model::new(ImportedTransport, ImportedLog).with_schema(A::SCHEMA)
}

fn query_from_wit(query: wit::QuerySpec) -> Result<Query, Error> {
    let filters = query
        .filters
        .into_iter()
        .map(|filter| {
            let json: serde_json::Value = serde_json::from_str(&filter.value).map_err(|err| {
                Error::InvalidQuery(alloc::format!(
                    "filter on {}: the value is not JSON: {err}",
                    filter.property
                ))
            })?;
            ds_model::json::check_integer_literals(&filter.value).map_err(|err| {
                Error::InvalidQuery(alloc::format!("filter on {}: {err}", filter.property))
            })?;
            let value = Value::from_json(&json, &filter.property).map_err(Error::InvalidQuery)?;
            let op = match filter.op {
                wit::FilterOp::Equal => Op::Eq,
                wit::FilterOp::Less => Op::Lt,
                wit::FilterOp::LessOrEqual => Op::Le,
                wit::FilterOp::Greater => Op::Gt,
                wit::FilterOp::GreaterOrEqual => Op::Ge,
                wit::FilterOp::InList => Op::In,
            };
            Ok(Filter {
                property: filter.property,
                op,
                value,
            })
        })
        .collect::<Result<Vec<_>, Error>>()?;
    let orders = query
        .orders
        .into_iter()
        .map(|order| Order {
            property: order.property,
            direction: match order.direction {
                wit::SortDirection::Ascending => SortDirection::Ascending,
                wit::SortDirection::Descending => SortDirection::Descending,
            },
        })
        .collect();
    Ok(Query {
        namespace: query.namespace,
        kind: query.kind,
        ancestor: query.ancestor.as_deref().map(key_from_wit).transpose()?,
        filters,
        orders,
        limit: query.limit,
        offset: query.offset,
        keys_only: query.keys_only,
        start: query.start_cursor,
        end: query.end_cursor,
    })
}

/// The transport the host supplies, through the WIT imports.
pub struct ImportedTransport;

impl Transport for ImportedTransport {
    fn get(&mut self, key: &[u8]) -> Result<Option<t::Versioned>, t::StoreError> {
        ds::datastore::transport::get(key)
            .map(|v| v.map(versioned_from_wit))
            .map_err(store_error_from_wit)
    }

    fn get_many(&mut self, keys: &[Vec<u8>]) -> Result<Vec<Option<t::Versioned>>, t::StoreError> {
        let keys: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
        ds::datastore::transport::get_many(&keys)
            .map(|values| {
                values
                    .into_iter()
                    .map(|v| v.map(versioned_from_wit))
                    .collect()
            })
            .map_err(store_error_from_wit)
    }

    fn scan(
        &mut self,
        range: &KeyRange,
        limit: u32,
        direction: Direction,
    ) -> Result<Vec<t::Entry>, t::StoreError> {
        let range = wit::KeyRange {
            start: &range.start,
            end: range.end.as_deref(),
        };
        let direction = match direction {
            Direction::Forward => wit::Direction::Forward,
            Direction::Reverse => wit::Direction::Reverse,
        };
        ds::datastore::transport::scan(range, limit, direction)
            .map(|entries| {
                entries
                    .into_iter()
                    .map(|e| t::Entry {
                        key: e.key,
                        value: versioned_from_wit(e.value),
                    })
                    .collect()
            })
            .map_err(store_error_from_wit)
    }

    fn commit(&mut self, checks: &[t::Check], writes: &[t::Write]) -> Result<u64, t::StoreError> {
        let checks: Vec<wit::Check> = checks
            .iter()
            .map(|c| wit::Check {
                key: &c.key,
                version: c.version,
            })
            .collect();
        let writes: Vec<wit::Write> = writes
            .iter()
            .map(|w| wit::Write {
                key: &w.key,
                value: w.value.as_deref(),
            })
            .collect();
        ds::datastore::transport::commit(&checks, &writes).map_err(store_error_from_wit)
    }

    fn backoff(&mut self, attempt: u32) -> bool {
        ds::datastore::transport::backoff(attempt)
    }
}

/// The host's log, through the WIT import.
pub struct ImportedLog;

/// What the host's `log` last answered: 0 nothing yet, 1 the host records nothing, 2 + rank
/// the most detailed level it records. The host never calls an instance again once the
/// answer is stale, so it holds for the instance's life. (The component is single-threaded:
/// the atomic is only a safe static.)
static HOST_LEVEL: AtomicU8 = AtomicU8::new(0);

impl Log for ImportedLog {
    fn log(&self, level: Level, context: &str, message: &str) {
        use ds::datastore::logging::{Level as L, log};
        // Most lines are not worth a crossing: skip those the host said it does not record.
        let known = HOST_LEVEL.load(Ordering::Relaxed);
        if known == 1 || (known >= 2 && (level as u8) < known - 2) {
            return;
        }
        let wit_level = match level {
            Level::Trace => L::Trace,
            Level::Debug => L::Debug,
            Level::Info => L::Info,
            Level::Warn => L::Warn,
            Level::Error => L::Error,
            Level::Critical => L::Critical,
        };
        let answer = match log(wit_level, context, message) {
            None => 1,
            Some(recorded) => 2 + level_from_wit(recorded) as u8,
        };
        HOST_LEVEL.store(answer, Ordering::Relaxed);
    }
}

fn level_from_wit(level: ds::datastore::logging::Level) -> Level {
    use ds::datastore::logging::Level as L;
    match level {
        L::Trace => Level::Trace,
        L::Debug => Level::Debug,
        L::Info => Level::Info,
        L::Warn => Level::Warn,
        L::Error => Level::Error,
        L::Critical => Level::Critical,
    }
}

fn versioned_from_wit(v: wit::Versioned) -> t::Versioned {
    t::Versioned {
        value: v.value,
        version: v.version,
    }
}

fn store_error_from_wit(err: wit::StoreError) -> t::StoreError {
    match err {
        wit::StoreError::Conflict(key) => t::StoreError::Conflict(key),
        wit::StoreError::Unavailable(msg) => t::StoreError::Unavailable(msg),
        wit::StoreError::InvalidRequest(msg) => t::StoreError::InvalidRequest(msg),
        wit::StoreError::Internal(msg) => t::StoreError::Internal(msg),
    }
}

fn store_error_to_wit(err: t::StoreError) -> wit::StoreError {
    match err {
        t::StoreError::Conflict(key) => wit::StoreError::Conflict(key),
        t::StoreError::Unavailable(msg) => wit::StoreError::Unavailable(msg),
        t::StoreError::InvalidRequest(msg) => wit::StoreError::InvalidRequest(msg),
        t::StoreError::Internal(msg) => wit::StoreError::Internal(msg),
    }
}

/// A model error as the WIT `error` it crosses the boundary as.
pub fn error_to_wit(err: Error) -> wit::Error {
    match err {
        Error::InvalidKey(msg) => wit::Error::InvalidKey(msg),
        Error::InvalidEntity(msg) => wit::Error::InvalidEntity(msg),
        Error::Corrupt(msg) => wit::Error::Corrupt(msg),
        Error::InvalidQuery(msg) => wit::Error::InvalidQuery(msg),
        Error::Conflict(msg) => wit::Error::Conflict(msg),
        Error::FailedPrecondition(msg) => wit::Error::FailedPrecondition(msg),
        Error::NotFound(msg) => wit::Error::NotFound(msg),
        Error::InvalidArgument(msg) => wit::Error::InvalidArgument(msg),
        Error::Store(err) => wit::Error::Store(store_error_to_wit(err)),
    }
}

/// A WIT key (its transport encoding) as a model key, decoded but not yet validated: the
/// operation validates it, as it would a key built in Rust. Bytes that do not decode are
/// `invalid-key`.
pub fn key_from_wit(key: &[u8]) -> Result<Key, Error> {
    Ok(Key::from_encoded(key)?)
}

/// A model key as a WIT key: its transport encoding.
pub fn key_to_wit(key: Key) -> wit::Key {
    key.encode()
}

fn keys_from_wit(keys: &[wit::Key]) -> Result<Vec<Key>, Error> {
    keys.iter().map(|key| key_from_wit(key)).collect()
}

/// Where `ds-guest-rt`'s panic handler sends the message: the logging import.
#[doc(hidden)]
#[unsafe(no_mangle)]
fn ds_guest_panic_log(message: &str) {
    ImportedLog.log(Level::Critical, "panic", message);
}
