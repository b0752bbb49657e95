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

use alloc::collections::VecDeque;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use base64::Engine as _;

use crate::encoding;
use crate::entity::Entity;
use crate::error::Error;
use crate::index::{self, prefix_end};
use crate::key::Key;
use crate::schema::{CompositeIndex, Direction, Schema, describe_columns};
use crate::transport::{Direction as ScanDirection, KeyRange, Transport, Versioned};
use crate::value::{self, Value};

/// Most results one page holds; a query without a limit pages at this size.
pub const MAX_PAGE: u32 = 1000;

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
                "filter {text:?}: {why} (write it as `property OP value`, e.g. `balance >= 100` \
                 or `owner = \"alice\"`)"
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
                "sort order {text:?} names no property (write `prop` or `-prop`)"
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

/// Rows read per scan call, and the smallest batch worth a round trip.
const MAX_BATCH: u32 = 500;
const MIN_BATCH: u32 = 16;

/// Runs `query` over `transport`. `fetch_all` fetches entities even for keys-only queries
/// (transactions need their versions).
pub fn run<T: Transport>(
    transport: &mut T,
    schema: &Schema,
    query: &Query,
    fetch_all: bool,
) -> Result<Page, Error> {
    let planned = plan(schema, query)?;
    let fingerprint = fingerprint(query);
    let start = query
        .start
        .as_deref()
        .map(|c| decode_cursor(c, fingerprint))
        .transpose()?;
    let end = query
        .end
        .as_deref()
        .map(|c| decode_cursor(c, fingerprint))
        .transpose()?;
    let want = query.limit.unwrap_or(MAX_PAGE).min(MAX_PAGE) as usize;
    let mut run = Run {
        transport,
        schema,
        fetch: fetch_all || !query.keys_only,
        offset: query.offset as usize,
        want,
        hits: Vec::new(),
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

// ---- Planning ----

#[derive(Debug)]
enum Plan {
    Scan(Scan),
    Join(Join),
}

/// Index or entity rows in `ranges`, in order (or reversed).
#[derive(Debug)]
struct Scan {
    /// Sorted, disjoint, `[start, end)`; `None` is unbounded.
    ranges: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    reverse: bool,
    /// `None`: entity rows. `Some(prefix)`: index rows of the index starting with `prefix`.
    index: Option<Vec<u8>>,
    /// Keep only keys starting with this (an ancestor's encoding) when the ranges do not.
    ancestor: Option<Vec<u8>>,
}

/// A merge join of streams of entity keys in key order, within `[lo, hi)`.
#[derive(Debug)]
struct Join {
    /// Each stream is the union of index ranges `prefix + entity key`.
    streams: Vec<Vec<Vec<u8>>>,
    lo: Vec<u8>,
    hi: Option<Vec<u8>>,
}

/// What constrains one index column.
#[derive(Debug, Clone)]
enum Column {
    All,
    Points(Vec<Value>),
    Range {
        lower: Option<(Value, bool)>,
        upper: Option<(Value, bool)>,
    },
}

fn invalid(message: String) -> Error {
    Error::InvalidQuery(message)
}

/// Whether a filter of `query` fixes `property` to one value: an `=`, or an `IN` whose
/// values are all the same one. (A repeated property may have several such filters; each
/// still fixes the order on it, since every matching entity holds each value.)
fn fixed_by_equality(query: &Query, property: &str) -> bool {
    query.filters.iter().any(|f| {
        f.property == property
            && match (&f.op, &f.value) {
                (Op::Eq, _) => true,
                (Op::In, Value::Array(values)) => {
                    values.split_first().is_some_and(|(first, rest)| {
                        rest.iter().all(|v| value::compare(v, first).is_eq())
                    })
                }
                _ => false,
            }
    })
}

fn plan(schema: &Schema, query: &Query) -> Result<Plan, Error> {
    crate::key::check_namespace(&query.namespace)?;
    let ancestor = match &query.ancestor {
        Some(ancestor) => {
            ancestor.validate()?;
            if ancestor.namespace != query.namespace {
                return Err(invalid(format!(
                    "the ancestor {ancestor} is in namespace {:?}, the query in {:?}",
                    ancestor.namespace, query.namespace
                )));
            }
            Some(ancestor.encode())
        }
        None => None,
    };
    // An order on a property that an equality filter fixes to one value changes nothing: it
    // is dropped before anything else looks at the orders (a range filter's "sort it
    // first", the key order's place).
    let mut orders: Vec<Order> = query
        .orders
        .iter()
        .filter(|o| !fixed_by_equality(query, &o.property))
        .cloned()
        .collect();
    // `ORDER BY __key__` alone: what a range filter, which needs its own property sorted
    // first, cannot give.
    let key_order_only = orders.first().is_some_and(|o| o.property == "__key__");
    // A trailing key order in the direction of the order before it (ascending when alone)
    // is the default tie-break: ties follow the direction of the last order (the index rows
    // are laid out so). Any other key order stays, to be refused below.
    while orders.last().is_some_and(|o| {
        o.property == "__key__"
            && o.direction
                == orders
                    .len()
                    .checked_sub(2)
                    .map_or(Direction::Ascending, |before| orders[before].direction)
    }) {
        orders.pop();
    }
    let key_order_only = key_order_only && orders.is_empty();
    let key_descending = orders.len() == 1
        && orders[0].property == "__key__"
        && orders[0].direction == Direction::Descending;
    if key_descending {
        orders.clear();
    }
    if let Some(at) = orders.iter().position(|o| o.property == "__key__") {
        let order = &orders[at];
        if order.direction == Direction::Ascending && at + 1 == orders.len() && at > 0 {
            let previous = &orders[at - 1].property;
            return Err(invalid(format!(
                "an ascending key order after the descending order on {previous}: ties on \
                 {previous} come in descending key order (the last order's direction); drop \
                 the key order, or sort {previous} ascending"
            )));
        }
        return Err(invalid(format!(
            "sort order on __key__ {}: only a last key order in the direction of the order \
             before it, or a key order alone, is supported",
            if order.direction == Direction::Descending {
                "descending"
            } else {
                "ascending"
            }
        )));
    }
    let entity_range = || {
        let mut lo = alloc::vec![crate::key::ENTITY_PREFIX];
        encoding::put_bytes(&mut lo, query.namespace.as_bytes());
        lo
    };
    let (key_lo, key_hi) = match &ancestor {
        Some(encoded) => (encoded.clone(), prefix_end(encoded)),
        None => {
            let lo = entity_range();
            let hi = prefix_end(&lo);
            (lo, hi)
        }
    };

    let Some(kind) = query.kind.as_deref() else {
        if !query.filters.is_empty() || !orders.is_empty() {
            return Err(invalid(
                "a kindless query cannot filter or sort on properties; give a kind".into(),
            ));
        }
        return Ok(Plan::Scan(Scan {
            ranges: alloc::vec![(key_lo, key_hi)],
            reverse: key_descending,
            index: None,
            ancestor: None,
        }));
    };
    crate::key::check_kind(kind)?;
    let declared = schema.kind(kind);

    // Sort the filters out: equality (one stream each), and one range property.
    let mut equalities: Vec<(String, Vec<Value>)> = Vec::new();
    let mut range: Option<(String, Column)> = None;
    for filter in &query.filters {
        if filter.property == "__key__" {
            return Err(invalid(
                "filters on __key__ are not supported; use an ancestor or get-many".into(),
            ));
        }
        if let Some(kind) = declared {
            match kind.property(&filter.property) {
                None => {
                    return Err(invalid(format!(
                        "kind {} declares no property {}",
                        kind.name, filter.property
                    )));
                }
                Some(p) if !p.indexed => {
                    return Err(invalid(format!(
                        "property {} of kind {} is not indexed, so no query can filter on it",
                        filter.property, kind.name
                    )));
                }
                Some(_) => {}
            }
        }
        let scalar = |value: &Value| -> Result<(), Error> {
            if value::is_indexable(value) {
                Ok(())
            } else {
                Err(invalid(format!(
                    "filter {filter}: the value must be a single indexable value, not {}{}",
                    value.ty(),
                    if matches!(value, Value::Array(_)) {
                        " (use IN for a list)"
                    } else {
                        ""
                    }
                )))
            }
        };
        match filter.op {
            Op::Eq => {
                scalar(&filter.value)?;
                let equality = (filter.property.clone(), alloc::vec![filter.value.clone()]);
                // The same filter twice means it once (and needs no index column twice).
                if !equalities.iter().any(|(p, values)| {
                    *p == equality.0
                        && values.len() == 1
                        && value::compare(&values[0], &equality.1[0]).is_eq()
                }) {
                    equalities.push(equality);
                }
            }
            Op::In => {
                let Value::Array(values) = &filter.value else {
                    return Err(invalid(format!("filter {filter}: IN takes an array")));
                };
                values.iter().try_for_each(scalar)?;
                let mut values = values.clone();
                values.sort_by(value::compare);
                values.dedup_by(|a, b| value::compare(a, b).is_eq());
                equalities.push((filter.property.clone(), values));
            }
            Op::Lt | Op::Le | Op::Gt | Op::Ge => {
                scalar(&filter.value)?;
                let (lower, upper) = match &mut range {
                    Some((property, Column::Range { lower, upper })) => {
                        if *property != filter.property {
                            return Err(invalid(format!(
                                "range filters on {property} and {}: a query may have range \
                                 filters on one property only (as in Cloud Datastore)",
                                filter.property
                            )));
                        }
                        (lower, upper)
                    }
                    _ => {
                        range = Some((
                            filter.property.clone(),
                            Column::Range {
                                lower: None,
                                upper: None,
                            },
                        ));
                        match &mut range {
                            Some((_, Column::Range { lower, upper })) => (lower, upper),
                            _ => unreachable!("just set"),
                        }
                    }
                };
                let inclusive = matches!(filter.op, Op::Le | Op::Ge);
                let bound = (filter.value.clone(), inclusive);
                let (slot, tighter) = if matches!(filter.op, Op::Gt | Op::Ge) {
                    (lower, core::cmp::Ordering::Greater)
                } else {
                    (upper, core::cmp::Ordering::Less)
                };
                let replace = match slot {
                    None => true,
                    Some((current, current_inclusive)) => {
                        let order = value::compare(&bound.0, current);
                        order == tighter || (order.is_eq() && *current_inclusive && !inclusive)
                    }
                };
                if replace {
                    *slot = Some(bound);
                }
            }
        }
    }
    // Range bounds of different types match nothing (each compares its own type only).
    if let Some((_, column)) = &mut range {
        let bounds: Vec<&Value> = query
            .filters
            .iter()
            .filter(|f| matches!(f.op, Op::Lt | Op::Le | Op::Gt | Op::Ge))
            .map(|f| &f.value)
            .collect();
        if bounds
            .windows(2)
            .any(|w| !value::same_type_group(w[0], w[1]))
        {
            *column = Column::Points(Vec::new());
        }
    }
    if let Some((property, _)) = &range {
        if equalities.iter().any(|(p, _)| p == property) {
            return Err(invalid(format!(
                "property {property} has both equality and range filters"
            )));
        }
        match orders.first() {
            None if key_order_only => {
                return Err(invalid(format!(
                    "the first sort order must be on {property}, the property with a range \
                     filter (as in Cloud Datastore), not on __key__"
                )));
            }
            None => orders.push(Order {
                property: property.clone(),
                direction: Direction::Ascending,
            }),
            Some(first) if first.property != *property => {
                return Err(invalid(format!(
                    "the first sort order must be on {property}, the property with a range \
                     filter (as in Cloud Datastore), not on {}",
                    first.property
                )));
            }
            Some(_) => {}
        }
    }
    for (i, order) in orders.iter().enumerate() {
        if orders[..i].iter().any(|o| o.property == order.property) {
            return Err(invalid(format!(
                "sort order on {} given twice",
                order.property
            )));
        }
        if let Some(kind) = declared
            && !kind.property(&order.property).is_some_and(|p| p.indexed)
        {
            return Err(invalid(format!(
                "kind {} has no indexed property {} to sort on",
                kind.name, order.property
            )));
        }
    }
    // The columns of the sort properties, in order; an IN property that is sorted on is
    // served as points of its own column.
    let mut sort: Vec<(String, Direction, Column)> = Vec::new();
    for order in &orders {
        let column = if let Some((_, column)) = range.as_ref().filter(|(p, _)| *p == order.property)
        {
            column.clone()
        } else if let Some(i) = equalities.iter().position(|(p, _)| *p == order.property) {
            if !sort.is_empty() || orders.len() > 1 {
                return Err(invalid(format!(
                    "IN on {} with a sort order on it is supported only when it is the only \
                     sort order",
                    order.property
                )));
            }
            Column::Points(equalities.remove(i).1)
        } else {
            Column::All
        };
        sort.push((order.property.clone(), order.direction, column));
    }

    let ns = &query.namespace;
    if sort.is_empty() && equalities.is_empty() {
        let prefix = index::kind_prefix(ns, kind);
        return Ok(Plan::Scan(Scan {
            ranges: alloc::vec![(
                [prefix.as_slice(), &key_lo].concat(),
                match &key_hi {
                    Some(hi) => Some([prefix.as_slice(), hi].concat()),
                    None => prefix_end(&prefix),
                },
            )],
            reverse: key_descending,
            index: Some(prefix),
            ancestor: None,
        }));
    }
    if key_descending {
        // One property fixed to one value: its index rows for that value, read backwards,
        // are in descending key order. (`p IN []` gives no rows at all.)
        if let [(property, values)] = equalities.as_slice()
            && sort.is_empty()
            && values.len() <= 1
        {
            let prefix = index::property_prefix(ns, kind, property);
            return Ok(Plan::Scan(Scan {
                ranges: column_ranges(&prefix, false, &Column::Points(values.clone())),
                reverse: true,
                index: Some(prefix),
                ancestor,
            }));
        }
        return Err(invalid(
            "a descending key order can be combined only with one `=` filter (or a one-value \
             IN)"
            .into(),
        ));
    }
    if sort.is_empty() {
        let streams = equalities
            .iter()
            .map(|(property, values)| {
                let prefix = index::property_prefix(ns, kind, property);
                values
                    .iter()
                    .map(|v| {
                        let mut p = prefix.clone();
                        value::encode_index_value(v, &mut p);
                        p
                    })
                    .collect()
            })
            .collect();
        return Ok(Plan::Join(Join {
            streams,
            lo: key_lo,
            hi: key_hi,
        }));
    }
    if equalities.is_empty() && sort.len() == 1 {
        let (property, direction, column) = &sort[0];
        let prefix = index::property_prefix(ns, kind, property);
        return Ok(Plan::Scan(Scan {
            ranges: column_ranges(&prefix, false, column),
            reverse: *direction == Direction::Descending,
            index: Some(prefix),
            ancestor,
        }));
    }
    composite_plan(schema, query, kind, &equalities, &sort, ancestor)
}

fn composite_plan(
    schema: &Schema,
    query: &Query,
    kind: &str,
    equalities: &[(String, Vec<Value>)],
    sort: &[(String, Direction, Column)],
    ancestor: Option<Vec<u8>>,
) -> Result<Plan, Error> {
    let wanted = describe_columns(
        equalities
            .iter()
            .map(|(p, _)| (p.as_str(), Direction::Ascending))
            .chain(sort.iter().map(|(p, d, _)| (p.as_str(), *d))),
    );
    let needed = || {
        invalid(format!(
            "no index serves this query: declare the composite index {kind}({wanted}) in the \
             model (Kind::indexes(&[CompositeIndex::new(&[...])]); equality properties first, \
             in any order and direction)"
        ))
    };
    if let Some((property, values)) = equalities.iter().find(|(_, values)| values.len() > 1) {
        return Err(invalid(format!(
            "IN on {property} ({} values) combined with a sort order on another property is \
             not supported; run one query per value",
            values.len()
        )));
    }
    let declared = schema.kind(kind).ok_or_else(needed)?;
    let eq_count = equalities.len();
    let matches = |index: &CompositeIndex, flip: bool| {
        // The equality columns are the equality properties as a multiset: `(t, t, u)`
        // serves `t = 1 AND t = 2 AND u = 3`, and `(t, u, u)` does not.
        let mut unfilled: Vec<&str> = equalities.iter().map(|(p, _)| p.as_str()).collect();
        index.columns.len() == eq_count + sort.len()
            && index.columns[..eq_count].iter().all(|(p, _)| {
                unfilled
                    .iter()
                    .position(|u| u == p)
                    .map(|at| unfilled.swap_remove(at))
                    .is_some()
            })
            && index.columns[eq_count..]
                .iter()
                .zip(sort)
                .all(|((p, d), (sp, sd, _))| p == sp && *d == if flip { sd.flip() } else { *sd })
    };
    let (index, reverse) = declared
        .indexes
        .iter()
        .find_map(|index| {
            if matches(index, false) {
                Some((index, false))
            } else if matches(index, true) {
                Some((index, true))
            } else {
                None
            }
        })
        .ok_or_else(needed)?;
    // `p IN []` matches nothing: an empty page, from the index the query would use.
    if equalities.iter().any(|(_, values)| values.is_empty()) {
        return Ok(Plan::Scan(Scan {
            ranges: Vec::new(),
            reverse,
            index: Some(index::composite_prefix(&query.namespace, kind, index)),
            ancestor,
        }));
    }
    let index_prefix = index::composite_prefix(&query.namespace, kind, index);
    let mut prefix = index_prefix.clone();
    // Each equality fills one column: `tags = "a" AND tags = "b"` is served by
    // `(tags, tags, ...)` with "a" in one column and "b" in the other.
    let mut unused: Vec<&(String, Vec<Value>)> = equalities.iter().collect();
    for (property, direction) in &index.columns[..eq_count] {
        let at = unused
            .iter()
            .position(|(p, _)| p == property)
            .ok_or_else(needed)?;
        let values = &unused.remove(at).1;
        let mut encoded = Vec::new();
        value::encode_index_value(&values[0], &mut encoded);
        if *direction == Direction::Descending {
            index::invert(&mut encoded);
        }
        prefix.extend_from_slice(&encoded);
    }
    let first_sort_descending = index.columns[eq_count].1 == Direction::Descending;
    Ok(Plan::Scan(Scan {
        ranges: column_ranges(&prefix, first_sort_descending, &sort[0].2),
        reverse,
        index: Some(index_prefix),
        ancestor,
    }))
}

/// The row ranges of one column after `prefix`, sorted; `descending` columns hold inverted
/// encodings.
fn column_ranges(
    prefix: &[u8],
    descending: bool,
    column: &Column,
) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
    let at = |v: &Value| {
        let mut out = prefix.to_vec();
        let start = out.len();
        value::encode_index_value(v, &mut out);
        if descending {
            index::invert(&mut out[start..]);
        }
        out
    };
    let tag = |t: u8| [prefix, &[t]].concat();
    let mut ranges = match column {
        Column::All => alloc::vec![(prefix.to_vec(), prefix_end(prefix))],
        Column::Points(values) => values
            .iter()
            .map(|v| {
                let point = at(v);
                let end = prefix_end(&point);
                (point, end)
            })
            .collect(),
        Column::Range { lower, upper } => {
            let Some(group) = lower
                .as_ref()
                .or(upper.as_ref())
                .map(|(v, _)| value::type_group(v))
            else {
                return Vec::new();
            };
            if lower.is_some()
                && upper.is_some()
                && !value::same_type_group(
                    &lower.as_ref().map(|b| b.0.clone()).unwrap_or(Value::Null),
                    &upper.as_ref().map(|b| b.0.clone()).unwrap_or(Value::Null),
                )
            {
                return Vec::new();
            }
            // In ascending columns the lower bound starts the range; in descending ones
            // (inverted bytes) the upper bound does.
            let (first, last) = if descending {
                (upper, lower)
            } else {
                (lower, upper)
            };
            let start = match first {
                Some((v, true)) => at(v),
                Some((v, false)) => prefix_end(&at(v)).unwrap_or_else(|| at(v)),
                None if descending => tag(!(group.1 - 1)),
                None => tag(group.0),
            };
            let end = match last {
                Some((v, true)) => prefix_end(&at(v)),
                Some((v, false)) => Some(at(v)),
                None if descending => Some(tag(!group.0 + 1)),
                None => Some(tag(group.1)),
            };
            if end.as_ref().is_some_and(|end| *end <= start) {
                return Vec::new();
            }
            alloc::vec![(start, end)]
        }
    };
    ranges.sort();
    ranges
}

// ---- Execution ----

struct Run<'a, T> {
    transport: &'a mut T,
    schema: &'a Schema,
    fetch: bool,
    offset: usize,
    want: usize,
    hits: Vec<Hit>,
    /// The position after the last result or skipped result.
    position: Option<Vec<u8>>,
}

/// A candidate row: its position, the entity key, and what the row says.
struct Candidate {
    position: Vec<u8>,
    key: Key,
    stored: Option<Versioned>,
    multi: bool,
}

impl<T: Transport> Run<'_, T> {
    fn batch(&self) -> u32 {
        let remaining = (self.want - self.hits.len() + self.offset) as u32;
        remaining.saturating_add(1).clamp(MIN_BATCH, MAX_BATCH)
    }

    /// Takes one result; true when the page is full.
    fn take(&mut self, position: Vec<u8>, key: Key, stored: Option<Versioned>) -> bool {
        self.position = Some(position);
        if self.offset > 0 {
            self.offset -= 1;
            return false;
        }
        self.hits.push(Hit { key, stored });
        self.hits.len() >= self.want
    }

    /// Scans the plan's ranges from `start` (exclusive) to `end` (inclusive); true when the
    /// page filled up.
    fn scan(
        &mut self,
        plan: &Scan,
        start: Option<Vec<u8>>,
        end: Option<&[u8]>,
    ) -> Result<bool, Error> {
        let order: Vec<&(Vec<u8>, Option<Vec<u8>>)> = if plan.reverse {
            plan.ranges.iter().rev().collect()
        } else {
            plan.ranges.iter().collect()
        };
        for (range_start, range_end) in order {
            let (mut lo, mut hi) = (range_start.clone(), range_end.clone());
            if plan.reverse {
                if let Some(start) = &start
                    && hi.as_ref().is_none_or(|hi| start < hi)
                {
                    hi = Some(start.clone());
                }
                if let Some(end) = end
                    && lo.as_slice() < end
                {
                    lo = end.to_vec();
                }
            } else {
                if let Some(start) = &start {
                    let after = [start.as_slice(), &[0]].concat();
                    if after > lo {
                        lo = after;
                    }
                }
                if let Some(end) = end {
                    let after = [end, &[0]].concat();
                    if hi.as_ref().is_none_or(|hi| after < *hi) {
                        hi = Some(after);
                    }
                }
            }
            loop {
                if hi.as_ref().is_some_and(|hi| *hi <= lo) {
                    break;
                }
                let limit = self.batch();
                let range = KeyRange {
                    start: lo.clone(),
                    end: hi.clone(),
                };
                let direction = if plan.reverse {
                    ScanDirection::Reverse
                } else {
                    ScanDirection::Forward
                };
                let rows = self.transport.scan(&range, limit, direction)?;
                let exhausted = rows.len() < limit as usize;
                if let Some(last) = rows.last() {
                    if plan.reverse {
                        hi = Some(last.key.clone());
                    } else {
                        lo = [last.key.as_slice(), &[0]].concat();
                    }
                }
                let mut candidates = Vec::with_capacity(rows.len());
                for row in rows {
                    let candidate = match &plan.index {
                        None => Candidate {
                            key: Key::decode(&row.key).map_err(|err| {
                                Error::Corrupt(format!(
                                    "row {}: {err}",
                                    crate::key::describe_kv_key(&row.key)
                                ))
                            })?,
                            position: row.key,
                            stored: Some(row.value),
                            multi: false,
                        },
                        Some(_) => Candidate {
                            key: index::row_entity_key(&row.value.value)?,
                            multi: index::row_is_multi(&row.value.value),
                            position: row.key,
                            stored: None,
                        },
                    };
                    if let Some(ancestor) = &plan.ancestor
                        && !candidate.key.encode().starts_with(ancestor)
                    {
                        continue;
                    }
                    candidates.push(candidate);
                }
                self.fetch_for(&mut candidates)?;
                for candidate in candidates {
                    if candidate.multi && !self.first_row_of_entity(plan, &candidate)? {
                        continue;
                    }
                    if self.fetch && candidate.stored.is_none() {
                        // Deleted between the index scan and the read.
                        continue;
                    }
                    let stored = if self.fetch { candidate.stored } else { None };
                    if self.take(candidate.position, candidate.key, stored) {
                        return Ok(true);
                    }
                }
                if exhausted {
                    break;
                }
            }
        }
        Ok(false)
    }

    /// Reads the entities of index candidates that need them, in one `get-many`.
    fn fetch_for(&mut self, candidates: &mut [Candidate]) -> Result<(), Error> {
        let needed: Vec<usize> = candidates
            .iter()
            .enumerate()
            .filter(|(_, c)| c.stored.is_none() && (self.fetch || c.multi))
            .map(|(i, _)| i)
            .collect();
        if needed.is_empty() {
            return Ok(());
        }
        let keys: Vec<Vec<u8>> = needed.iter().map(|&i| candidates[i].key.encode()).collect();
        let values = self.transport.get_many(&keys)?;
        for (i, value) in needed.into_iter().zip(values) {
            candidates[i].stored = value;
        }
        Ok(())
    }

    /// For an entity with several rows in the index: true when `candidate` is its first row
    /// within the plan's ranges, in scan order (so it is returned once).
    fn first_row_of_entity(&self, plan: &Scan, candidate: &Candidate) -> Result<bool, Error> {
        let (Some(prefix), Some(stored)) = (&plan.index, &candidate.stored) else {
            return Ok(false);
        };
        let entity = Entity::decode(candidate.key.clone(), &stored.value)?;
        let rows = index::rows_with_prefix(self.schema, &entity, prefix)?;
        let in_ranges = rows.into_iter().filter(|row| {
            plan.ranges
                .iter()
                .any(|(start, end)| row >= start && end.as_ref().is_none_or(|end| row < end))
        });
        let first = if plan.reverse {
            in_ranges.max()
        } else {
            in_ranges.min()
        };
        Ok(first.as_deref() == Some(candidate.position.as_slice()))
    }

    /// Runs a merge join from `start` (exclusive) to `end` (inclusive); true when the page
    /// filled up.
    fn join(
        &mut self,
        plan: &Join,
        start: Option<Vec<u8>>,
        end: Option<&[u8]>,
    ) -> Result<bool, Error> {
        let batch = self.batch();
        let mut streams: Vec<Vec<Stream>> = plan
            .streams
            .iter()
            .map(|prefixes| {
                prefixes
                    .iter()
                    .map(|prefix| Stream {
                        prefix: prefix.clone(),
                        buffer: VecDeque::new(),
                        from: plan.lo.clone(),
                        exhausted: false,
                    })
                    .collect()
            })
            .collect();
        let mut candidate = match start {
            Some(start) if start >= plan.lo => [start.as_slice(), &[0]].concat(),
            _ => plan.lo.clone(),
        };
        let mut keys: Vec<Vec<u8>> = Vec::new();
        let mut full = false;
        let (count, mut agreed, mut i) = (streams.len(), 0, 0);
        'join: loop {
            let mut head: Option<Vec<u8>> = None;
            for stream in &mut streams[i] {
                let found = stream.seek(self.transport, &candidate, plan.hi.as_deref(), batch)?;
                if let Some(k) = found
                    && head.as_ref().is_none_or(|h| k < *h)
                {
                    head = Some(k);
                }
            }
            let Some(head) = head else { break };
            if head == candidate {
                agreed += 1;
            } else {
                candidate = head;
                agreed = 1;
            }
            if agreed == count {
                if end.is_some_and(|end| candidate.as_slice() > end) {
                    break 'join;
                }
                self.position = Some(candidate.clone());
                if self.offset > 0 {
                    self.offset -= 1;
                } else {
                    keys.push(candidate.clone());
                    if keys.len() >= self.want {
                        full = true;
                        break 'join;
                    }
                }
                candidate.push(0);
                agreed = 0;
            }
            i = (i + 1) % count;
        }
        let stored = if self.fetch && !keys.is_empty() {
            self.transport.get_many(&keys)?
        } else {
            alloc::vec![None; keys.len()]
        };
        for (encoded, stored) in keys.into_iter().zip(stored) {
            if self.fetch && stored.is_none() {
                continue;
            }
            let key = Key::decode(&encoded)
                .map_err(|err| Error::Corrupt(format!("an index row holds a bad key: {err}")))?;
            self.hits.push(Hit { key, stored });
        }
        Ok(full)
    }
}

/// One index range `prefix + entity key`, read ahead in batches, for the merge join.
struct Stream {
    prefix: Vec<u8>,
    buffer: VecDeque<Vec<u8>>,
    /// Where the next scan starts (an entity key).
    from: Vec<u8>,
    exhausted: bool,
}

impl Stream {
    /// The first entity key `>= target` in this range, if any.
    fn seek<T: Transport>(
        &mut self,
        transport: &mut T,
        target: &[u8],
        hi: Option<&[u8]>,
        batch: u32,
    ) -> Result<Option<Vec<u8>>, Error> {
        while self.buffer.front().is_some_and(|k| k.as_slice() < target) {
            self.buffer.pop_front();
        }
        if self.buffer.is_empty() && !self.exhausted {
            let from = if target > self.from.as_slice() {
                target
            } else {
                &self.from
            };
            let range = KeyRange {
                start: [self.prefix.as_slice(), from].concat(),
                end: match hi {
                    Some(hi) => Some([self.prefix.as_slice(), hi].concat()),
                    None => prefix_end(&self.prefix),
                },
            };
            let rows = transport.scan(&range, batch, ScanDirection::Forward)?;
            self.exhausted = rows.len() < batch as usize;
            for row in rows {
                if let Some(key) = row.key.get(self.prefix.len()..) {
                    self.buffer.push_back(key.to_vec());
                }
            }
            if let Some(last) = self.buffer.back() {
                self.from = [last.as_slice(), &[0]].concat();
            }
        }
        Ok(self.buffer.front().cloned())
    }
}

// ---- Cursors ----

const CURSOR_VERSION: u8 = 1;

/// FNV-1a over what defines the result order and set (not limit, offset or cursors).
fn fingerprint(query: &Query) -> u64 {
    let mut bytes = Vec::new();
    encoding::put_bytes(&mut bytes, query.namespace.as_bytes());
    encoding::put_bytes(&mut bytes, query.kind.as_deref().unwrap_or("").as_bytes());
    bytes.push(u8::from(query.kind.is_some()));
    encoding::put_bytes(
        &mut bytes,
        &query.ancestor.as_ref().map(Key::encode).unwrap_or_default(),
    );
    for filter in &query.filters {
        encoding::put_bytes(&mut bytes, filter.property.as_bytes());
        bytes.push(filter.op as u8);
        for v in filter.value.elements() {
            value::encode_index_value(v, &mut bytes);
        }
    }
    for order in &query.orders {
        encoding::put_bytes(&mut bytes, order.property.as_bytes());
        bytes.push(order.direction as u8);
    }
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn encode_cursor(fingerprint: u64, position: &[u8]) -> String {
    let mut bytes = Vec::with_capacity(9 + position.len());
    bytes.push(CURSOR_VERSION);
    bytes.extend_from_slice(&fingerprint.to_be_bytes());
    bytes.extend_from_slice(position);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn decode_cursor(cursor: &str, fingerprint: u64) -> Result<Vec<u8>, Error> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor.trim())
        .map_err(|_| {
            invalid(format!(
                "cursor {cursor:?} is not a ds cursor (bad base64url)"
            ))
        })?;
    if bytes.len() < 9 || bytes[0] != CURSOR_VERSION {
        return Err(invalid(format!("cursor {cursor:?} is not a ds cursor")));
    }
    if bytes[1..9] != fingerprint.to_be_bytes() {
        return Err(invalid(
            "the cursor belongs to a different query (kind, ancestor, filters and orders must \
             be the same)"
                .into(),
        ));
    }
    Ok(bytes[9..].to_vec())
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
