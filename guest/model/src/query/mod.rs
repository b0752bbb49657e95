//! Queries: planned onto the indexes the model maintains, executed with index scans, never
//! by scanning every entity of a kind when an index fits.
//!
//! Supported, as in Cloud Datastore: kind, ancestor, equality filters, `IN`, range filters
//! (`<`, `<=`, `>`, `>=`) on one property, sort orders on one or more properties, limit,
//! offset, keys-only, start and end cursors.
//!
//! Plans:
//! - no filters and no sort orders: the kind index (or, kindless, the entity rows) in key
//!   order, restricted to the ancestor's range;
//! - only equality filters (and `IN`): a zig-zag merge join of single-property indexes, in
//!   key order (as Datastore's merge join), each restricted to the ancestor's range;
//! - one sort property (with its range or `IN` filter): its single-property index,
//!   scanned backwards for a descending order;
//! - a descending key order with one property fixed to one value: that property's index
//!   rows for the value, scanned backwards;
//! - anything else (equality filters with a sort order on another property, or several
//!   sort orders): a composite index the kind declares, with the equality properties
//!   first and the sort properties after it, in order (all directions flipped works too).
//!   A query that no index serves is refused, naming the index to declare.
//!
//! Semantics, as in Datastore: a filter on a repeated property matches when any element
//! matches (the bounds of one range filter must hold for the same element); an entity
//! appears once, placed by the first of its values (in the query's order) that passes the
//! filters; entities without an indexed value for a filtered or sorted property do not
//! match; range filters compare values of the bound's type only (an int64 bound never
//! matches strings or floats). Ties on equal sort values are broken by key, in the
//! direction of the last sort order (ascending when there is none); a sort order on a
//! property that an equality filter fixes to one value is ignored.
//!
//! A cursor marks the position after one result; a page's `next` cursor resumes exactly
//! there. Cursors carry a fingerprint of the query they came from and are refused by any
//! other query.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use crate::error::{Error, quote};
use crate::key::Key;
use crate::schema::{Direction, Schema};
use crate::transport::{Transport, Versioned};
use crate::value::Value;

mod cursor;
mod exec;
mod metadata;
mod plan;

pub use metadata::{KIND_KIND, NAMESPACE_KIND, PROPERTY_KIND, REPRESENTATION, is_metadata_kind};

use cursor::{decode_cursor, encode_cursor, fingerprint};
use exec::Run;
use plan::{Plan, plan};

/// Most results one page holds; a query without a limit pages at this size, and a `limit`
/// must be from 1 to this.
pub const MAX_PAGE: u32 = 1000;

/// Most values one `IN` filter may hold, as Cloud Datastore allows.
pub const MAX_IN_VALUES: usize = 30;

/// A comparison in a filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `=`
    Eq,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `IN`: equal to any element of an array.
    In,
}

impl Op {
    /// The operator as written in filters.
    pub fn symbol(self) -> &'static str {
        match self {
            Op::Eq => "=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::In => "IN",
        }
    }
}

/// A property filter.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    /// The property.
    pub property: String,
    /// The comparison.
    pub op: Op,
    /// The operand; an array for `IN`.
    pub value: Value,
}

impl Filter {
    /// Parses `property OP value`: `OP` is one of `=`, `==`, `<`, `<=`, `>`, `>=`, `IN`, and
    /// `value` is typed JSON (`"alice"`, `42`, `1.5`, `{"$timestamp": "…"}`, `["a","b"]`
    /// for `IN`). A property name with spaces or operators is written as a JSON string.
    pub fn parse(text: &str) -> Result<Filter, Error> {
        let bad = |why: &str| {
            Error::InvalidQuery(format!(
                "filter {}: {why} (write it as `property OP value`, e.g. `balance >= 100` \
                 or `owner = \"alice\"`)",
                quote(text)
            ))
        };
        let text_trimmed = text.trim_start();
        let (property, rest) = if text_trimmed.starts_with('"') {
            // Read as a JSON value, not as a typed `String`: see `crate::json` for why.
            let mut stream =
                serde_json::Deserializer::from_str(text_trimmed).into_iter::<serde_json::Value>();
            let name = match stream.next() {
                Some(Ok(serde_json::Value::String(name))) => name,
                _ => return Err(bad("the quoted property name is not a JSON string")),
            };
            (name, &text_trimmed[stream.byte_offset()..])
        } else {
            let end = text_trimmed
                .find(|c: char| c.is_whitespace() || "<>=!".contains(c))
                .unwrap_or(text_trimmed.len());
            (text_trimmed[..end].to_string(), &text_trimmed[end..])
        };
        if property.is_empty() {
            return Err(bad("the property name is missing"));
        }
        let rest = rest.trim_start();
        let (op, rest) = [
            ("<=", Op::Le),
            (">=", Op::Ge),
            ("==", Op::Eq),
            ("=", Op::Eq),
            ("<", Op::Lt),
            (">", Op::Gt),
        ]
        .iter()
        .find_map(|(symbol, op)| rest.strip_prefix(symbol).map(|rest| (*op, rest)))
        .or_else(|| {
            let word = rest.get(..2)?;
            let after = rest.get(2..)?;
            (word.eq_ignore_ascii_case("in")
                && after.starts_with(|c: char| c.is_whitespace() || c == '['))
            .then_some((Op::In, after))
        })
        .ok_or_else(|| bad("no operator"))?;
        let json: serde_json::Value = serde_json::from_str(rest.trim())
            .map_err(|err| bad(&format!("the value is not JSON ({err})")))?;
        crate::json::check_integer_literals(rest).map_err(|err| bad(&err))?;
        let value = Value::from_json(&json, &property).map_err(|err| bad(&err))?;
        Ok(Filter {
            property,
            op,
            value,
        })
    }
}

impl core::fmt::Display for Filter {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let plain = !self.property.is_empty()
            && !self.property.starts_with('"')
            && !self
                .property
                .contains(|c: char| c.is_whitespace() || "<>=!".contains(c));
        if plain {
            f.write_str(&self.property)?;
        } else {
            let name = serde_json::Value::String(self.property.clone());
            write!(f, "{}", crate::json::Text(&name))?;
        }
        let value = self.value.to_json();
        write!(f, " {} {}", self.op.symbol(), crate::json::Text(&value))
    }
}

/// A sort order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    /// The property (`__key__` for the key).
    pub property: String,
    /// The direction.
    pub direction: Direction,
}

impl Order {
    /// Parses `prop` (ascending) or `-prop` (descending); `+prop` is ascending too.
    pub fn parse(text: &str) -> Result<Order, Error> {
        let text = text.trim();
        let (direction, property) = match text.as_bytes().first() {
            Some(b'-') => (Direction::Descending, &text[1..]),
            Some(b'+') => (Direction::Ascending, &text[1..]),
            _ => (Direction::Ascending, text),
        };
        if property.is_empty() {
            return Err(Error::InvalidQuery(format!(
                "sort order {} names no property (write `prop` or `-prop`)",
                quote(text)
            )));
        }
        Ok(Order {
            property: property.to_string(),
            direction,
        })
    }
}

/// A query.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Query {
    /// The namespace (empty: the default namespace).
    pub namespace: String,
    /// The kind; `None` for a kindless query (ancestor and key order only).
    pub kind: Option<String>,
    /// Only the ancestor and its descendants.
    pub ancestor: Option<Key>,
    /// Filters, all of which must hold.
    pub filters: Vec<Filter>,
    /// Sort orders, most significant first.
    pub orders: Vec<Order>,
    /// Most results to return (at most [`MAX_PAGE`]; `None`: a page of [`MAX_PAGE`]).
    pub limit: Option<u32>,
    /// Results to skip first (after `start`, when given). To page on from a page's cursor,
    /// pass it as `start` and set this to 0: the cursor already lies past the skipped
    /// results, so keeping the offset would skip as many again on every page.
    pub offset: u32,
    /// Return keys without entities.
    pub keys_only: bool,
    /// Resume after this cursor.
    pub start: Option<String>,
    /// Stop after this cursor.
    pub end: Option<String>,
}

/// One result: the key and, unless keys-only, the stored entity.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    /// The entity's key.
    pub key: Key,
    /// The stored value and version (`None` for keys-only results).
    pub stored: Option<Versioned>,
}

/// One page of results.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    /// The results, in query order.
    pub hits: Vec<Hit>,
    /// The cursor after the last result, when the page is full and more may follow.
    pub next: Option<String>,
}

/// Runs `query` over `transport`. `fetch_all` fetches entities even for keys-only queries
/// (transactions need their versions).
pub fn run<T: Transport>(
    transport: &mut T,
    schema: &Schema,
    query: &Query,
    fetch_all: bool,
) -> Result<Page, Error> {
    if query.kind.as_deref().is_some_and(is_metadata_kind) {
        return metadata::run(transport, query);
    }
    let planned = plan(schema, query)?;
    let (fingerprint, start, end) = cursors(query)?;
    let want = query.limit.unwrap_or(MAX_PAGE).min(MAX_PAGE) as usize;
    let mut run = Run {
        transport,
        schema,
        fetch: fetch_all || !query.keys_only,
        offset: query.offset as usize,
        want,
        hits: Vec::new(),
        count_only: false,
        counted: 0,
        position: None,
    };
    if want == 0 {
        return Ok(Page {
            hits: Vec::new(),
            next: None,
        });
    }
    let full = match &planned {
        Plan::Scan(scan) => run.scan(scan, start, end.as_deref())?,
        Plan::Join(join) => run.join(join, start, end.as_deref())?,
    };
    let next = if full {
        run.position
            .as_deref()
            .map(|position| encode_cursor(fingerprint, position))
    } else {
        None
    };
    Ok(Page {
        hits: run.hits,
        next,
    })
}

/// The query's fingerprint, and the positions of its start and end cursors.
type Cursors = (u64, Option<Vec<u8>>, Option<Vec<u8>>);

/// The fingerprint of `query` and its cursors' positions, each checked against it.
fn cursors(query: &Query) -> Result<Cursors, Error> {
    let fingerprint = fingerprint(query);
    let position = |cursor: &Option<String>| {
        cursor
            .as_deref()
            .map(|c| decode_cursor(c, fingerprint))
            .transpose()
    };
    Ok((fingerprint, position(&query.start)?, position(&query.end)?))
}

/// Most results one [`count`] call counts before it returns a cursor to count on from:
/// a bound on one call's index reads (the rows of 20 scans).
pub const COUNT_PAGE: u32 = 10_000;

/// What one [`count`] call counted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Count {
    /// Results counted by this call.
    pub count: u64,
    /// Where this call stopped when more may follow (pass it as the query's start cursor,
    /// with offset 0, to count on); `None` when the count is complete.
    pub next: Option<String>,
}

/// Counts the results of `query` from its index, reading entities only where a repeated
/// property needs them to count an entity once: up to `query.limit` (`None`: no bound),
/// after skipping `query.offset`, and at most [`COUNT_PAGE`] per call.
pub fn count<T: Transport>(
    transport: &mut T,
    schema: &Schema,
    query: &Query,
) -> Result<Count, Error> {
    if let Some(kind) = query.kind.as_deref().filter(|kind| is_metadata_kind(kind)) {
        return Err(Error::InvalidQuery(format!(
            "{kind} results cannot be counted: list them with a query"
        )));
    }
    if query.limit == Some(0) {
        return Err(Error::InvalidQuery(
            "a count's limit is the most results to count, at least 1 (leave it out to count \
             them all)"
                .into(),
        ));
    }
    // The page-size bounds of `query` do not apply: its limit is the count's.
    let planned = plan(
        schema,
        &Query {
            limit: None,
            ..query.clone()
        },
    )?;
    let (fingerprint, start, end) = cursors(query)?;
    let limit = query.limit.map_or(u64::MAX, u64::from);
    let want = limit.min(u64::from(COUNT_PAGE)) as usize;
    let mut run = Run {
        transport,
        schema,
        fetch: false,
        offset: query.offset as usize,
        want,
        hits: Vec::new(),
        count_only: true,
        counted: 0,
        position: None,
    };
    let full = match &planned {
        Plan::Scan(scan) => run.scan(scan, start, end.as_deref())?,
        Plan::Join(join) => run.join(join, start, end.as_deref())?,
    };
    let next = if full && (want as u64) < limit {
        run.position
            .as_deref()
            .map(|position| encode_cursor(fingerprint, position))
    } else {
        None
    };
    Ok(Count {
        count: run.counted as u64,
        next,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ties follow the last order's direction; a key order that asks otherwise is refused,
    /// never quietly served in another order. So is a key order with a range filter, which
    /// needs its own property sorted first.
    #[test]
    fn key_orders_the_indexes_cannot_give_are_refused() {
        use crate::transport::{MemoryTransport, NoLog};
        let mut model = crate::Model::new(MemoryTransport::new(), NoLog);
        for (id, p) in [(1u64, 5i64), (2, 5), (3, 7)] {
            model
                .put(&crate::Entity::new(Key::id("Thing", id)).with("p", Value::Int(p)))
                .unwrap();
        }
        let ids =
            |page: Page| -> Vec<String> { page.hits.iter().map(|h| h.key.to_string()).collect() };
        let query = |filters: &[&str], orders: &[&str]| Query {
            kind: Some("Thing".into()),
            filters: filters.iter().map(|f| Filter::parse(f).unwrap()).collect(),
            orders: orders.iter().map(|o| Order::parse(o).unwrap()).collect(),
            ..Query::default()
        };
        // Accepted: the default tie-breaks, spelled out.
        assert_eq!(
            ids(model.query(&query(&[], &["p", "__key__"])).unwrap()),
            ["Thing:1", "Thing:2", "Thing:3"]
        );
        assert_eq!(
            ids(model.query(&query(&[], &["-p"])).unwrap()),
            ["Thing:3", "Thing:2", "Thing:1"]
        );
        assert_eq!(
            ids(model.query(&query(&["p > 1"], &["p", "__key__"])).unwrap()),
            ["Thing:1", "Thing:2", "Thing:3"]
        );
        // Accepted: a key order in the last order's direction is the default tie-break;
        // an order on a property an equality fixes is moot, wherever it stands.
        assert_eq!(
            ids(model.query(&query(&[], &["-p", "-__key__"])).unwrap()),
            ["Thing:3", "Thing:2", "Thing:1"]
        );
        assert_eq!(
            ids(model.query(&query(&["p = 5"], &["-p", "__key__"])).unwrap()),
            ["Thing:1", "Thing:2"]
        );
        assert_eq!(
            ids(model.query(&query(&["p = 5"], &["-p"])).unwrap()),
            ["Thing:1", "Thing:2"]
        );
        assert_eq!(
            ids(model.query(&query(&["p = 5"], &["-__key__"])).unwrap()),
            ["Thing:2", "Thing:1"]
        );
        assert!(ids(model.query(&query(&["p IN []"], &["-__key__"])).unwrap()).is_empty());
        // Refused: what the rows cannot give in the order asked.
        for (filters, orders, want) in [
            (
                &[][..],
                &["-p", "__key__"][..],
                "after the descending order on p",
            ),
            (&["p > 1"][..], &["__key__"][..], "must be on p"),
        ] {
            let err = model.query(&query(filters, orders)).unwrap_err();
            assert!(
                matches!(&err, Error::InvalidQuery(m) if m.contains(want)),
                "{filters:?} {orders:?}: {err}"
            );
        }
    }

    #[test]
    fn filters_parse_with_typed_values() {
        let f = Filter::parse("balance >= 100").unwrap();
        assert_eq!(
            (f.property.as_str(), f.op, f.value),
            ("balance", Op::Ge, Value::Int(100))
        );
        let f = Filter::parse(r#"owner="alice""#).unwrap();
        assert_eq!((f.op, f.value), (Op::Eq, Value::String("alice".into())));
        let f = Filter::parse(r#"tags in ["a", "b"]"#).unwrap();
        assert_eq!(f.op, Op::In);
        let f = Filter::parse(r#""odd name" < {"$timestamp":"2024-01-01T00:00:00Z"}"#).unwrap();
        assert_eq!(f.property, "odd name");
        assert!(matches!(f.value, Value::Timestamp(_)));
        for bad in [
            "",
            "balance",
            "balance >",
            "balance ~ 1",
            "= 1",
            "a = [[1]]",
            "a = nope",
        ] {
            assert!(
                matches!(Filter::parse(bad), Err(Error::InvalidQuery(_))),
                "{bad}"
            );
        }
        assert_eq!(
            Order::parse("-balance").unwrap().direction,
            Direction::Descending
        );
        assert!(Order::parse("-").is_err());
    }

    #[test]
    fn cursors_belong_to_their_query() {
        let q = Query {
            kind: Some("A".into()),
            ..Query::default()
        };
        let cursor = encode_cursor(fingerprint(&q), b"xyz");
        assert_eq!(decode_cursor(&cursor, fingerprint(&q)).unwrap(), b"xyz");
        let other = Query {
            kind: Some("B".into()),
            ..Query::default()
        };
        assert!(decode_cursor(&cursor, fingerprint(&other)).is_err());
        assert!(decode_cursor("!!", 0).is_err());
    }
}
