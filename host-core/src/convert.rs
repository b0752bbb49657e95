//! Conversions between the WIT types (shared by both hosts' bindings) and the Rust types of
//! the host API and the stores. Written once; the hosts' shims only call these.

use ds_model::schema::Direction;
use ds_model::{Entity, Key, Op, Query};

use crate::bindings::types as wit;
use crate::error::Error;
use crate::store::{Check, Entry, KeyRange, StoreError, Versioned, Write};

/// A host key as the WIT `key`: its transport encoding, which the model reads as the row
/// key it is (`ds:datastore@0.2.0`; ds-model's own encoder, so the two always agree).
pub fn key_to_wit(key: &Key) -> wit::Key {
    key.encode()
}

/// A key the model returned (the WIT `key`, its transport encoding) as a host key. A key
/// that does not decode is the model's fault: `Corrupt`, naming what it returned.
pub fn key_from_wit(key: wit::Key) -> Result<Key, Error> {
    Key::decode(&key).map_err(|err| {
        Error::Corrupt(format!(
            "the model returned a key that does not decode ({err}): {}",
            ds_model::key::describe_kv_key(&key)
        ))
    })
}

/// A host entity as the WIT record (properties as typed-JSON text). Values built in Rust
/// are checked first, so that their JSON means them and nothing else (an embedded property
/// named `$key` would otherwise read back as a key).
pub fn entity_to_wit(entity: &Entity) -> Result<wit::Entity, Error> {
    entity.check_values()?;
    Ok(wit::Entity {
        key: key_to_wit(&entity.key),
        properties: entity.properties_json(),
    })
}

/// A WIT entity record returned by the model as a host entity.
pub fn entity_from_wit(entity: wit::Entity) -> Result<Entity, Error> {
    properties_from_wit(key_from_wit(entity.key)?, &entity.properties)
}

/// Typed-JSON properties returned by the model for `key`, as a host entity.
fn properties_from_wit(key: Key, properties: &str) -> Result<Entity, Error> {
    Entity::from_json(key, properties).map_err(|err| {
        Error::Corrupt(format!(
            "the model returned properties it cannot read back: {err}"
        ))
    })
}

/// A host query as the WIT record (filter values as typed JSON).
pub fn query_to_wit(query: &Query) -> wit::QuerySpec {
    wit::QuerySpec {
        namespace: query.namespace.clone(),
        kind: query.kind.clone(),
        ancestor: query.ancestor.as_ref().map(key_to_wit),
        filters: query
            .filters
            .iter()
            .map(|filter| wit::Filter {
                property: filter.property.clone(),
                op: match filter.op {
                    Op::Eq => wit::FilterOp::Equal,
                    Op::Lt => wit::FilterOp::Less,
                    Op::Le => wit::FilterOp::LessOrEqual,
                    Op::Gt => wit::FilterOp::Greater,
                    Op::Ge => wit::FilterOp::GreaterOrEqual,
                    Op::In => wit::FilterOp::InList,
                },
                value: filter.value.to_json().to_string(),
            })
            .collect(),
        orders: query
            .orders
            .iter()
            .map(|order| wit::SortOrder {
                property: order.property.clone(),
                direction: match order.direction {
                    Direction::Ascending => wit::SortDirection::Ascending,
                    Direction::Descending => wit::SortDirection::Descending,
                },
            })
            .collect(),
        limit: query.limit,
        offset: query.offset,
        keys_only: query.keys_only,
        start_cursor: query.start.clone(),
        end_cursor: query.end.clone(),
    }
}

/// A page of query results from the model as the host type.
pub fn query_page_from_wit(page: wit::QueryPage) -> Result<crate::QueryPage, Error> {
    let mut keys = Vec::with_capacity(page.results.len());
    let mut entities = Vec::new();
    for result in page.results {
        let key = key_from_wit(result.key)?;
        if let Some(properties) = result.properties {
            entities.push(properties_from_wit(key.clone(), &properties)?);
        }
        keys.push(key);
    }
    Ok(crate::QueryPage {
        keys,
        entities,
        next_cursor: page.next_cursor,
    })
}

/// A transfer receipt from the model as the host type.
pub fn receipt_from_wit(receipt: wit::Receipt) -> Result<crate::Receipt, Error> {
    Ok(crate::Receipt {
        transfer: key_from_wit(receipt.transfer)?,
        source_balance: receipt.source_balance,
        destination_balance: receipt.destination_balance,
    })
}

/// A datastore error from the model as the host error.
pub fn error_from_wit(err: wit::Error) -> Error {
    match err {
        wit::Error::InvalidKey(msg) => Error::InvalidKey(msg),
        wit::Error::InvalidEntity(msg) => Error::InvalidEntity(msg),
        wit::Error::Corrupt(msg) => Error::Corrupt(msg),
        wit::Error::InvalidQuery(msg) => Error::InvalidQuery(msg),
        wit::Error::Conflict(msg) => Error::Conflict(msg),
        wit::Error::FailedPrecondition(msg) => Error::FailedPrecondition(msg),
        wit::Error::NotFound(msg) => Error::NotFound(msg),
        wit::Error::InvalidArgument(msg) => Error::InvalidArgument(msg),
        wit::Error::Store(err) => Error::Store(store_error_from_wit(err)),
    }
}

/// The outcome of an export call: a trap (already turned into an error), a model error, or
/// the value.
pub fn call_result<T, U>(
    result: Result<Result<T, wit::Error>, Error>,
    convert: impl FnOnce(T) -> Result<U, Error>,
) -> Result<U, Error> {
    match result {
        Err(trap) => Err(trap),
        Ok(Err(err)) => Err(error_from_wit(err)),
        Ok(Ok(value)) => convert(value),
    }
}

/// A store error as the WIT variant.
pub fn store_error_to_wit(err: StoreError) -> wit::StoreError {
    match err {
        StoreError::Conflict(key) => wit::StoreError::Conflict(key),
        StoreError::Unavailable(msg) => wit::StoreError::Unavailable(msg),
        StoreError::InvalidRequest(msg) => wit::StoreError::InvalidRequest(msg),
        StoreError::Internal(msg) => wit::StoreError::Internal(msg),
    }
}

/// A WIT store error as the store type.
pub fn store_error_from_wit(err: wit::StoreError) -> StoreError {
    match err {
        wit::StoreError::Conflict(key) => StoreError::Conflict(key),
        wit::StoreError::Unavailable(msg) => StoreError::Unavailable(msg),
        wit::StoreError::InvalidRequest(msg) => StoreError::InvalidRequest(msg),
        wit::StoreError::Internal(msg) => StoreError::Internal(msg),
    }
}

/// A store's answer to `get` as the WIT result.
pub fn get_to_wit(
    result: Result<Option<Versioned>, StoreError>,
) -> Result<Option<wit::Versioned>, wit::StoreError> {
    result
        .map(|v| v.map(versioned_to_wit))
        .map_err(store_error_to_wit)
}

/// A store's answer to `get-many` as the WIT result.
pub fn get_many_to_wit(
    result: Result<Vec<Option<Versioned>>, StoreError>,
) -> Result<Vec<Option<wit::Versioned>>, wit::StoreError> {
    result
        .map(|values| {
            values
                .into_iter()
                .map(|v| v.map(versioned_to_wit))
                .collect()
        })
        .map_err(store_error_to_wit)
}

/// A store's answer to `scan` as the WIT result.
pub fn scan_to_wit(
    result: Result<Vec<Entry>, StoreError>,
) -> Result<Vec<wit::Entry>, wit::StoreError> {
    result
        .map(|entries| {
            entries
                .into_iter()
                .map(|e| wit::Entry {
                    key: e.key,
                    value: versioned_to_wit(e.value),
                })
                .collect()
        })
        .map_err(store_error_to_wit)
}

/// A store's answer to `commit` as the WIT result.
pub fn commit_to_wit(result: Result<u64, StoreError>) -> Result<u64, wit::StoreError> {
    result.map_err(store_error_to_wit)
}

fn versioned_to_wit(v: Versioned) -> wit::Versioned {
    wit::Versioned {
        value: v.value,
        version: v.version,
    }
}

/// The arguments of `scan` as store types.
pub fn scan_args_from_wit(
    range: wit::KeyRange,
    direction: wit::Direction,
) -> (KeyRange, crate::store::Direction) {
    let direction = match direction {
        wit::Direction::Forward => crate::store::Direction::Forward,
        wit::Direction::Reverse => crate::store::Direction::Reverse,
    };
    (
        KeyRange {
            start: range.start,
            end: range.end,
        },
        direction,
    )
}

/// The arguments of `commit` as store types.
pub fn commit_args_from_wit(
    checks: Vec<wit::Check>,
    writes: Vec<wit::Write>,
) -> (Vec<Check>, Vec<Write>) {
    (
        checks
            .into_iter()
            .map(|c| Check {
                key: c.key,
                version: c.version,
            })
            .collect(),
        writes
            .into_iter()
            .map(|w| Write {
                key: w.key,
                value: w.value,
            })
            .collect(),
    )
}

/// Adds one page of a check to the running `total`; returns where the next page starts.
pub fn merge_check_page(
    total: &mut ds_model::CheckReport,
    page: wit::CheckReport,
) -> Option<Vec<u8>> {
    total.entities += page.entities;
    total.index_rows += page.index_rows;
    total.problems.extend(page.problems);
    page.next
}

/// What `get` read for `key` (its properties, if the entity exists) as a host entity.
pub fn found_from_wit(key: &Key, found: Option<wit::Properties>) -> Result<Option<Entity>, Error> {
    found
        .map(|properties| properties_from_wit(key.clone(), &properties))
        .transpose()
}

/// What `get-many` read for `keys` (one result per key, in order) as host entities.
pub fn found_many_from_wit(
    keys: &[Key],
    found: Vec<Option<wit::Properties>>,
) -> Result<Vec<Option<Entity>>, Error> {
    check_result_count(found.len(), keys.len())?;
    keys.iter()
        .zip(found)
        .map(|(key, found)| found_from_wit(key, found))
        .collect()
}

/// A batch read's answer has one result per key, or the model is broken.
fn check_result_count(results: usize, keys: usize) -> Result<(), Error> {
    if results != keys {
        return Err(Error::Corrupt(format!(
            "the model returned {results} results for {keys} keys"
        )));
    }
    Ok(())
}

/// `get-versioned`'s results for `keys`, as host entities with their versions.
pub fn versioned_from_wit(
    keys: &[Key],
    found: Vec<Option<wit::StoredProperties>>,
) -> Result<Vec<Option<crate::VersionedEntity>>, Error> {
    check_result_count(found.len(), keys.len())?;
    keys.iter()
        .zip(found)
        .map(|(key, found)| {
            let Some(found) = found else { return Ok(None) };
            let entity = found_from_wit(key, Some(found.properties))?;
            Ok(entity.map(|entity| crate::VersionedEntity {
                entity,
                version: found.version,
            }))
        })
        .collect()
}

/// A write condition in its WIT form.
pub fn condition_to_wit(condition: crate::Condition) -> wit::Condition {
    match condition {
        crate::Condition::Any => wit::Condition::Any,
        crate::Condition::Absent => wit::Condition::Absent,
        crate::Condition::Present => wit::Condition::Present,
        crate::Condition::Version(version) => wit::Condition::Version(version),
    }
}

/// One salvage page from the model, as host entities.
pub fn salvage_page_from_wit(page: wit::SalvagePage) -> Result<crate::SalvagePage, Error> {
    let entities = page
        .entities
        .into_iter()
        .map(entity_from_wit)
        .collect::<Result<_, _>>()?;
    Ok(crate::SalvagePage {
        entities,
        skipped: page.skipped,
        next: page.next,
    })
}

/// One page of entities from the model, as host entities.
pub fn entity_page_from_wit(page: wit::EntityPage) -> Result<crate::EntityPage, Error> {
    let entities = page
        .entities
        .into_iter()
        .map(entity_from_wit)
        .collect::<Result<_, _>>()?;
    Ok(crate::EntityPage {
        entities,
        next: page.next,
    })
}

/// The JSON output of the application operation `name`, as the host's JSON value.
pub fn json_from_wit(name: &str, output: &str) -> Result<serde_json::Value, Error> {
    serde_json::from_str(output).map_err(|err| {
        Error::Corrupt(format!(
            "operation {name} returned output that is not JSON: {err}"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_many_results_pair_with_their_keys_and_must_match_them_in_number() {
        let keys = [Key::name("Note", "a"), Key::name("Note", "b")];
        let found = found_many_from_wit(&keys, vec![None, Some(r#"{"n":1}"#.into())]).unwrap();
        assert_eq!(found[0], None);
        let b = found[1].as_ref().unwrap();
        assert_eq!((&b.key, b.properties.len()), (&keys[1], 1));

        let short = found_many_from_wit(&keys, vec![None]);
        assert!(matches!(short, Err(Error::Corrupt(m)) if m.contains("1 results for 2 keys")));
        let unreadable = found_from_wit(&keys[0], Some("not json".into()));
        assert!(matches!(unreadable, Err(Error::Corrupt(_))));
    }
}
