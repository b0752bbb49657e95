//! Metadata queries, as Cloud Datastore's: what a store holds, read from its index rows.
//!
//! - `__namespace__`: one result per namespace that holds an entity; key
//!   `__namespace__:NAME`, or `__namespace__:1` for the default (empty) namespace.
//! - `__kind__`: one result per kind with an entity in the query's namespace; key
//!   `__kind__:KIND`.
//! - `__property__`: one result per indexed property of each kind in the namespace (of one
//!   kind with ancestor `__kind__:KIND`); key `__kind__:KIND/__property__:NAME`, and unless
//!   keys-only the property `property_representation`: the types its indexed values have
//!   (`["int64", "string"]`). Unindexed properties have no index rows, so they are not
//!   listed (as in Datastore).
//!
//! Each answer is a skip-scan: one scan of one row finds the next namespace, kind, property
//! or type, and the next scan starts past every row sharing it. So a listing costs one round
//! trip per result (per type, for `__property__`), however many entities the store holds.
//! Metadata queries take a limit, an offset and cursors; filters and sort orders are refused.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use super::cursor::{decode_cursor, encode_cursor, fingerprint};
use super::{Hit, MAX_PAGE, Page, Query};
use crate::encoding::{self, Reader};
use crate::entity::Entity;
use crate::error::Error;
use crate::index::{self, KIND_INDEX, PROPERTY_INDEX, prefix_end};
use crate::key::{IdOrName, Key, PathElement};
use crate::transport::{Direction, KeyRange, Transport, Versioned};
use crate::value::Value;

/// The kind of namespace metadata.
pub const NAMESPACE_KIND: &str = "__namespace__";
/// The kind of kind metadata.
pub const KIND_KIND: &str = "__kind__";
/// The kind of property metadata.
pub const PROPERTY_KIND: &str = "__property__";
/// The property of a `__property__` result that lists its types.
pub const REPRESENTATION: &str = "property_representation";

/// True for the kinds of metadata queries.
pub fn is_metadata_kind(kind: &str) -> bool {
    matches!(kind, NAMESPACE_KIND | KIND_KIND | PROPERTY_KIND)
}

/// What one skip-scan step found: the result's key and, for properties, the type tag of
/// the value found.
struct Found {
    key: Key,
    /// The first key past every row of this result (for `__property__`, of this type).
    after: Vec<u8>,
    tag: Option<u8>,
}

/// Runs a metadata query (`query.kind` is one of the metadata kinds).
pub(super) fn run<T: Transport>(transport: &mut T, query: &Query) -> Result<Page, Error> {
    let kind = query.kind.as_deref().unwrap_or_default();
    crate::key::check_namespace(&query.namespace)?;
    if !query.filters.is_empty() || !query.orders.is_empty() {
        return Err(Error::InvalidQuery(format!(
            "a {kind} query takes no filters or sort orders: it lists in key order"
        )));
    }
    if let Some(limit) = query.limit
        && !(1..=MAX_PAGE).contains(&limit)
    {
        return Err(Error::InvalidQuery(format!(
            "limit {limit} is out of range: a query returns 1 to {MAX_PAGE} results"
        )));
    }
    let (lo, hi) = range(kind, query)?;
    let fingerprint = fingerprint(query);
    let mut from = match &query.start {
        Some(cursor) => decode_cursor(cursor, fingerprint)?,
        None => lo,
    };
    let end = query
        .end
        .as_deref()
        .map(|cursor| decode_cursor(cursor, fingerprint))
        .transpose()?;
    let want = query.limit.unwrap_or(MAX_PAGE) as usize;
    let mut offset = query.offset as usize;
    let mut hits = Vec::new();
    let mut pending: Option<(Key, Vec<&'static str>, Vec<u8>)> = None;
    loop {
        let found = if end.as_ref().is_some_and(|end| from >= *end) {
            None
        } else {
            next(transport, kind, &from, hi.as_deref(), query.keys_only)?
        };
        // A `__property__` result is complete when the next row is of another property.
        if let Some((key, types, after)) =
            pending.take_if(|(key, _, _)| found.as_ref().is_none_or(|found| found.key != *key))
        {
            if offset > 0 {
                offset -= 1;
            } else {
                hits.push(hit(key, &types, query.keys_only)?);
                if hits.len() >= want {
                    return Ok(page(hits, Some(encode_cursor(fingerprint, &after))));
                }
            }
        }
        let Some(found) = found else { break };
        from = found.after.clone();
        if kind == PROPERTY_KIND {
            let entry = pending.get_or_insert_with(|| (found.key, Vec::new(), Vec::new()));
            if let Some(name) = found.tag.and_then(type_name)
                && !entry.1.contains(&name)
            {
                entry.1.push(name);
            }
            entry.2 = found.after;
            continue;
        }
        if offset > 0 {
            offset -= 1;
            continue;
        }
        hits.push(hit(found.key, &[], query.keys_only)?);
        if hits.len() >= want {
            return Ok(page(hits, Some(encode_cursor(fingerprint, &from))));
        }
    }
    Ok(page(hits, None))
}

fn page(hits: Vec<Hit>, next: Option<String>) -> Page {
    Page { hits, next }
}

/// The index rows a metadata query lists: `[lo, hi)`.
fn range(kind: &str, query: &Query) -> Result<(Vec<u8>, Option<Vec<u8>>), Error> {
    let ancestor_kind = match &query.ancestor {
        None => None,
        Some(ancestor) => match (kind, ancestor.path.as_slice()) {
            (
                PROPERTY_KIND,
                [
                    PathElement {
                        kind: meta,
                        id: IdOrName::Name(of),
                    },
                ],
            ) if meta == KIND_KIND => Some(of.as_str()),
            _ => {
                return Err(Error::InvalidQuery(format!(
                    "a {kind} query takes no ancestor{}",
                    if kind == PROPERTY_KIND {
                        " but `__kind__:KIND`, for the properties of one kind"
                    } else {
                        ""
                    }
                )));
            }
        },
    };
    let lo = match kind {
        NAMESPACE_KIND => alloc::vec![KIND_INDEX],
        KIND_KIND => {
            let mut lo = alloc::vec![KIND_INDEX];
            encoding::put_bytes(&mut lo, query.namespace.as_bytes());
            lo
        }
        _ => {
            let mut lo = alloc::vec![PROPERTY_INDEX];
            encoding::put_bytes(&mut lo, query.namespace.as_bytes());
            if let Some(of) = ancestor_kind {
                encoding::put_bytes(&mut lo, of.as_bytes());
            }
            lo
        }
    };
    let hi = prefix_end(&lo);
    Ok((lo, hi))
}

/// The first result at or after `from`, read with one scan of one row.
fn next<T: Transport>(
    transport: &mut T,
    kind: &str,
    from: &[u8],
    hi: Option<&[u8]>,
    keys_only: bool,
) -> Result<Option<Found>, Error> {
    let range = KeyRange {
        start: from.to_vec(),
        end: hi.map(<[u8]>::to_vec),
    };
    let Some(row) = transport
        .scan(&range, 1, Direction::Forward)?
        .into_iter()
        .next()
    else {
        return Ok(None);
    };
    let corrupt = |err: encoding::DecodeError| {
        Error::Corrupt(format!(
            "index row {}: {err}",
            crate::key::describe_kv_key(&row.key)
        ))
    };
    let mut reader = Reader::new(&row.key);
    reader.byte().map_err(corrupt)?;
    let namespace = reader.string().map_err(corrupt)?;
    let found = match kind {
        NAMESPACE_KIND => {
            let mut prefix = alloc::vec![KIND_INDEX];
            encoding::put_bytes(&mut prefix, namespace.as_bytes());
            let id = if namespace.is_empty() {
                IdOrName::Id(1)
            } else {
                IdOrName::Name(namespace)
            };
            Found {
                key: metadata_key(String::new(), [(NAMESPACE_KIND, id)]),
                after: end_of(&prefix),
                tag: None,
            }
        }
        KIND_KIND => {
            let of = reader.string().map_err(corrupt)?;
            let after = end_of(&index::kind_prefix(&namespace, &of));
            Found {
                key: metadata_key(namespace, [(KIND_KIND, IdOrName::Name(of))]),
                after,
                tag: None,
            }
        }
        _ => {
            let of = reader.string().map_err(corrupt)?;
            let property = reader.string().map_err(corrupt)?;
            let tag = reader.byte().map_err(corrupt)?;
            let mut prefix = index::property_prefix(&namespace, &of, &property);
            if !keys_only {
                // Step past this type only, to find the property's next one.
                prefix.push(tag);
            }
            Found {
                key: metadata_key(
                    namespace,
                    [
                        (KIND_KIND, IdOrName::Name(of)),
                        (PROPERTY_KIND, IdOrName::Name(property)),
                    ],
                ),
                after: end_of(&prefix),
                tag: Some(tag),
            }
        }
    };
    Ok(Some(found))
}

/// The first key past every key starting with `prefix` (`prefix` ends in an escaped
/// string or a tag byte below `0xFF`, so there always is one).
fn end_of(prefix: &[u8]) -> Vec<u8> {
    prefix_end(prefix).unwrap_or_else(|| prefix.to_vec())
}

fn metadata_key<const N: usize>(namespace: String, path: [(&str, IdOrName); N]) -> Key {
    Key {
        namespace,
        path: path
            .into_iter()
            .map(|(kind, id)| PathElement {
                kind: kind.to_string(),
                id,
            })
            .collect(),
    }
}

/// A result: the key and, unless keys-only, its properties in the stored form the other
/// queries return (a `__property__`'s representations; none for the others).
fn hit(key: Key, types: &[&str], keys_only: bool) -> Result<Hit, Error> {
    if keys_only {
        return Ok(Hit { key, stored: None });
    }
    let mut entity = Entity::new(key.clone());
    if key.path.len() == 2 {
        let names = types.iter().map(|t| Value::String((*t).into())).collect();
        entity = entity.with(REPRESENTATION, Value::Array(names));
    }
    let value = entity.encode_stored();
    Ok(Hit {
        key,
        stored: Some(Versioned { value, version: 0 }),
    })
}

/// The type an index value's tag byte stands for (see `value::encode_index_value`).
fn type_name(tag: u8) -> Option<&'static str> {
    use crate::value::Type;
    let ty = match tag {
        0x10 => Type::Null,
        0x20 | 0x21 => Type::Bool,
        0x30 => Type::Int,
        0x38 => Type::Timestamp,
        0x40 => Type::Float,
        0x50 => Type::String,
        0x58 => Type::Bytes,
        0x60 => Type::Key,
        _ => return None,
    };
    Some(ty.name())
}
