//! Index rows: what the model writes beside every entity so that queries never scan every
//! entity, and the other bookkeeping rows.
//!
//! Transport key layout (first byte):
//!
//! | prefix | row | key | value |
//! |---|---|---|---|
//! | `0x10` | entity | `Key::encode` | the stored entity |
//! | `0x20` | kind index | ns, kind, entity key | flag, entity key |
//! | `0x21` | property index | ns, kind, property, value, entity key | flag, entity key |
//! | `0x22` | composite index | ns, kind, index name, column values, entity key | flag, entity key |
//! | `0x30` | entity group | root key | empty; its version changes with every write under the root |
//! | `0x31` | id allocator | ns, kind | the next id (8 bytes, big-endian) |
//!
//! Strings (ns, kind, property, index name) use [`encoding::put_bytes`]; values use
//! [`value::encode_index_value`]; the entity key at the end is `Key::encode` unescaped, so
//! an ancestor's encoding is a byte prefix of its descendants' (ancestor queries are
//! ranges). A composite index whose last column is descending stores the entity key
//! inverted, so that ties on equal values follow the last column's direction.
//!
//! Row values start with a flag byte: `1` when the entity has more than one row in this
//! index (a repeated property), which tells a query to look at the entity to return it once.
//!
//! **Invariant:** an entity row and all its index rows are written in one commit, so there
//! is never an entity without its index rows or an index row without its entity.

use alloc::collections::BTreeSet;
use alloc::format;
use alloc::vec::Vec;

use crate::encoding;
use crate::entity::Entity;
use crate::error::Error;
use crate::key::Key;
use crate::schema::{CompositeIndex, Direction, Schema};
use crate::value;

/// Kind index rows.
pub const KIND_INDEX: u8 = 0x20;
/// Single-property index rows.
pub const PROPERTY_INDEX: u8 = 0x21;
/// Composite index rows.
pub const COMPOSITE_INDEX: u8 = 0x22;
/// Entity-group version rows.
pub const GROUP: u8 = 0x30;
/// Id allocator rows.
pub const ID_ALLOCATOR: u8 = 0x31;

/// Most rows one entity may have in one composite index (repeated properties multiply).
pub const MAX_COMPOSITE_ROWS: usize = 1000;

/// Most index rows one entity may have (kind, property and composite rows together), as
/// Cloud Datastore allows: every row is a write in the entity's commit.
pub const MAX_INDEX_ROWS: usize = 20_000;

/// One index row: transport key and value.
pub type Row = (Vec<u8>, Vec<u8>);

/// The kind index prefix of `kind` in `namespace`.
pub fn kind_prefix(namespace: &str, kind: &str) -> Vec<u8> {
    let mut out = alloc::vec![KIND_INDEX];
    encoding::put_bytes(&mut out, namespace.as_bytes());
    encoding::put_bytes(&mut out, kind.as_bytes());
    out
}

/// The single-property index prefix of `kind.property` in `namespace`.
pub fn property_prefix(namespace: &str, kind: &str, property: &str) -> Vec<u8> {
    let mut out = alloc::vec![PROPERTY_INDEX];
    encoding::put_bytes(&mut out, namespace.as_bytes());
    encoding::put_bytes(&mut out, kind.as_bytes());
    encoding::put_bytes(&mut out, property.as_bytes());
    out
}

/// The prefix of a composite index of `kind` in `namespace`.
pub fn composite_prefix(namespace: &str, kind: &str, index: &CompositeIndex) -> Vec<u8> {
    let mut out = alloc::vec![COMPOSITE_INDEX];
    encoding::put_bytes(&mut out, namespace.as_bytes());
    encoding::put_bytes(&mut out, kind.as_bytes());
    encoding::put_bytes(&mut out, index.name().as_bytes());
    out
}

/// The entity-group row of the root ancestor of `key`.
pub fn group_row(key: &Key) -> Vec<u8> {
    let root = Key {
        namespace: key.namespace.clone(),
        path: key.path.iter().take(1).cloned().collect(),
    };
    let mut out = alloc::vec![GROUP];
    out.extend_from_slice(&root.encode());
    out
}

/// The id allocator row of `kind` in `namespace`.
pub fn allocator_row(namespace: &str, kind: &str) -> Vec<u8> {
    let mut out = alloc::vec![ID_ALLOCATOR];
    encoding::put_bytes(&mut out, namespace.as_bytes());
    encoding::put_bytes(&mut out, kind.as_bytes());
    out
}

/// The smallest key greater than every key that starts with `prefix`, or `None` if there
/// is none (the prefix is all `0xFF`).
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xFF {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// Inverts every byte: reverses the order of prefix-free encodings (descending columns).
pub fn invert(bytes: &mut [u8]) {
    for b in bytes {
        *b = !*b;
    }
}

fn row_value(multi: bool, key: &[u8]) -> Vec<u8> {
    let mut value = Vec::with_capacity(1 + key.len());
    value.push(u8::from(multi));
    value.extend_from_slice(key);
    value
}

/// The entity key an index row points at, from the row's value.
pub fn row_entity_key(value: &[u8]) -> Result<Key, Error> {
    value
        .get(1..)
        .and_then(|key| Key::decode(key).ok())
        .ok_or_else(|| Error::Corrupt("an index row does not name a valid entity key".into()))
}

/// True when the row's value says its entity has several rows in this index.
pub fn row_is_multi(value: &[u8]) -> bool {
    value.first() == Some(&1)
}

/// The distinct indexed encodings of property `name` of `entity` (empty when the property
/// is absent, unindexed, an empty array or an embedded entity).
pub fn indexed_encodings(schema: &Schema, entity: &Entity, name: &str) -> Vec<Vec<u8>> {
    let Some(value) = entity.properties.get(name) else {
        return Vec::new();
    };
    if !entity.is_indexed(schema, name) {
        return Vec::new();
    }
    let distinct: BTreeSet<Vec<u8>> = value
        .elements()
        .iter()
        .filter(|v| value::is_indexable(v))
        .map(|v| {
            let mut out = Vec::new();
            value::encode_index_value(v, &mut out);
            out
        })
        .collect();
    distinct.into_iter().collect()
}

/// Every index row of `entity` (kind, single-property and composite), sorted by key.
pub fn rows(schema: &Schema, entity: &Entity) -> Result<Vec<Row>, Error> {
    let key = entity.key.encode();
    let Some(leaf) = entity.key.leaf() else {
        return Ok(Vec::new());
    };
    let ns = &entity.key.namespace;
    let mut rows = Vec::new();

    let mut kind_row = kind_prefix(ns, &leaf.kind);
    kind_row.extend_from_slice(&key);
    rows.push((kind_row, row_value(false, &key)));

    for name in entity.properties.keys() {
        let encodings = indexed_encodings(schema, entity, name);
        let multi = encodings.len() > 1;
        let prefix = property_prefix(ns, &leaf.kind, name);
        for encoded in encodings {
            let mut row = prefix.clone();
            row.extend_from_slice(&encoded);
            row.extend_from_slice(&key);
            rows.push((row, row_value(multi, &key)));
        }
    }

    if let Some(kind) = schema.kind(&leaf.kind) {
        for index in kind.indexes {
            composite_rows(schema, entity, index, &key, &mut rows)?;
        }
    }
    if rows.len() > MAX_INDEX_ROWS {
        return Err(Error::InvalidEntity(format!(
            "entity {} needs {} index rows; at most {MAX_INDEX_ROWS} are allowed (index fewer \
             values: write long arrays as {{\"$unindexed\": …}} or declare them unindexed)",
            entity.key,
            rows.len()
        )));
    }
    rows.sort();
    Ok(rows)
}

fn composite_rows(
    schema: &Schema,
    entity: &Entity,
    index: &CompositeIndex,
    key: &[u8],
    rows: &mut Vec<Row>,
) -> Result<(), Error> {
    let mut columns = Vec::with_capacity(index.columns.len());
    let mut count = 1usize;
    for (property, direction) in index.columns {
        let mut encodings = indexed_encodings(schema, entity, property);
        if encodings.is_empty() {
            return Ok(());
        }
        if *direction == Direction::Descending {
            encodings.iter_mut().for_each(|e| invert(e));
        }
        count = count.saturating_mul(encodings.len());
        columns.push(encodings);
    }
    if count > MAX_COMPOSITE_ROWS {
        return Err(Error::InvalidEntity(format!(
            "entity {} needs {count} rows in composite index {} (repeated properties multiply); \
             at most {MAX_COMPOSITE_ROWS} are allowed",
            entity.key,
            index.name()
        )));
    }
    let mut suffix = key.to_vec();
    if index.columns.last().map(|c| c.1) == Some(Direction::Descending) {
        invert(&mut suffix);
    }
    let prefix = composite_prefix(
        &entity.key.namespace,
        &entity.key.path[entity.key.path.len() - 1].kind,
        index,
    );
    let mut combination = alloc::vec![0usize; columns.len()];
    loop {
        let mut row = prefix.clone();
        for (column, &choice) in columns.iter().zip(&combination) {
            row.extend_from_slice(&column[choice]);
        }
        row.extend_from_slice(&suffix);
        rows.push((row, row_value(count > 1, key)));
        // Odometer over the cross product.
        let mut i = columns.len();
        loop {
            if i == 0 {
                return Ok(());
            }
            i -= 1;
            combination[i] += 1;
            if combination[i] < columns[i].len() {
                break;
            }
            combination[i] = 0;
        }
    }
}

/// The rows `entity` has in one index: the rows of [`rows`] that start with `prefix`.
pub fn rows_with_prefix(
    schema: &Schema,
    entity: &Entity,
    prefix: &[u8],
) -> Result<Vec<Vec<u8>>, Error> {
    Ok(rows(schema, entity)?
        .into_iter()
        .map(|(row, _)| row)
        .filter(|row| row.starts_with(prefix))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{Kind, Property};
    use crate::value::{Type, Value};

    static SCHEMA: Schema = Schema::new(&[Kind::new(
        "Item",
        &[
            Property::new("a", Type::Int).repeated(),
            Property::new("b", Type::String),
            Property::new("c", Type::String).unindexed(),
        ],
    )
    .indexes(&[CompositeIndex::new(&[
        ("b", Direction::Ascending),
        ("a", Direction::Descending),
    ])])]);

    #[test]
    fn rows_cover_kind_properties_and_composites() {
        let entity = Entity::new(Key::id("Item", 1))
            .with(
                "a",
                Value::Array(alloc::vec![Value::Int(1), Value::Int(2), Value::Int(1)]),
            )
            .with("b", Value::String("x".into()))
            .with("c", Value::String("hidden".into()));
        let rows = rows(&SCHEMA, &entity).unwrap();
        let count = |prefix: u8| rows.iter().filter(|(k, _)| k[0] == prefix).count();
        assert_eq!(count(KIND_INDEX), 1);
        // a: two distinct values; b: one; c: unindexed.
        assert_eq!(count(PROPERTY_INDEX), 3);
        assert_eq!(count(COMPOSITE_INDEX), 2);
        for (row, value) in &rows {
            assert_eq!(row_entity_key(value).unwrap(), entity.key);
            let multi =
                row.starts_with(&property_prefix("", "Item", "a")) || row[0] == COMPOSITE_INDEX;
            assert_eq!(row_is_multi(value), multi, "{row:?}");
        }
        // A composite index needs every column.
        let partial = Entity::new(Key::id("Item", 2)).with("b", Value::String("x".into()));
        let rows = super::rows(&SCHEMA, &partial).unwrap();
        assert!(rows.iter().all(|(k, _)| k[0] != COMPOSITE_INDEX));
    }

    #[test]
    fn composite_explosion_is_bounded() {
        let many = Value::Array((0..1001).map(Value::Int).collect());
        let entity = Entity::new(Key::id("Item", 1))
            .with("a", many)
            .with("b", Value::String("x".into()));
        let err = rows(&SCHEMA, &entity).unwrap_err();
        assert!(err.to_string().contains("composite index b,-a"), "{err}");
    }

    #[test]
    fn prefix_end_is_the_least_upper_bound() {
        assert_eq!(prefix_end(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_end(&[1, 0xFF]), Some(alloc::vec![2]));
        assert_eq!(prefix_end(&[0xFF]), None);
    }
}
