//! Planning: a query onto the index (or the entity rows) that serves it, or a refusal that
//! names the composite index to declare.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use super::{Op, Order, Query};
use crate::encoding;
use crate::error::Error;
use crate::index::{self, prefix_end};
use crate::schema::{CompositeIndex, Direction, Kind, Schema, describe_columns};
use crate::value::{self, Type, Value};

#[derive(Debug)]
pub(super) enum Plan {
    Scan(Scan),
    Join(Join),
}

/// Index or entity rows in `ranges`, in order (or reversed).
#[derive(Debug)]
pub(super) struct Scan {
    /// Sorted, disjoint, `[start, end)`; `None` is unbounded.
    pub(super) ranges: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    pub(super) reverse: bool,
    /// `None`: entity rows. `Some(prefix)`: index rows of the index starting with `prefix`.
    pub(super) index: Option<Vec<u8>>,
    /// Keep only keys starting with this (an ancestor's encoding) when the ranges do not.
    pub(super) ancestor: Option<Vec<u8>>,
}

/// A merge join of streams of entity keys in key order, within `[lo, hi)`.
#[derive(Debug)]
pub(super) struct Join {
    /// Each stream is the union of index ranges `prefix + entity key`.
    pub(super) streams: Vec<Vec<Vec<u8>>>,
    pub(super) lo: Vec<u8>,
    pub(super) hi: Option<Vec<u8>>,
}

/// What constrains one index column.
#[derive(Debug, Clone)]
pub(super) enum Column {
    All,
    Points(Vec<Value>),
    Range {
        lower: Option<(Value, bool)>,
        upper: Option<(Value, bool)>,
    },
}

pub(super) fn invalid(message: String) -> Error {
    Error::InvalidQuery(message)
}

/// Whether a filter of `query` fixes `property` to one value: an `=`, or an `IN` whose
/// values are all the same one. (A repeated property may have several such filters; each
/// still fixes the order on it, since every matching entity holds each value.)
pub(super) fn fixed_by_equality(query: &Query, property: &str) -> bool {
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

/// The plan that serves `query`, or the reason none does. In steps: the ancestor, the sort
/// orders as they matter, the key range, the filters as index columns, the sort columns,
/// and then the plan by kind ([`choose`]).
pub(super) fn plan(schema: &Schema, query: &Query) -> Result<Plan, Error> {
    crate::key::check_namespace(&query.namespace)?;
    check_limits(query)?;
    check_declared(schema, query)?;
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
    let Orders {
        mut orders,
        key_order_only,
        key_descending,
    } = orders(query)?;
    let (key_lo, key_hi) = key_bounds(query, ancestor.as_deref());

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

    let (mut equalities, range) = filter_columns(query, declared)?;
    let sort = sort_columns(
        &mut orders,
        key_order_only,
        range.as_ref(),
        &mut equalities,
        declared,
    )?;
    choose(
        schema,
        query,
        kind,
        Bounds {
            key_lo,
            key_hi,
            key_descending,
            ancestor,
        },
        &equalities,
        &sort,
    )
}

/// The sort orders of a query as they matter to its plan.
struct Orders {
    /// The orders left once those an equality fixes, and a default key tie-break, are dropped.
    orders: Vec<Order>,
    /// The query asked for `ORDER BY __key__` alone.
    key_order_only: bool,
    /// The query asked for a descending key order alone (then `orders` is empty).
    key_descending: bool,
}

/// `query`'s sort orders with those that change nothing dropped; a key order no index can
/// give is refused.
fn orders(query: &Query) -> Result<Orders, Error> {
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
    Ok(Orders {
        orders,
        key_order_only,
        key_descending,
    })
}

/// The entity keys the query may return: `[lo, hi)` of the ancestor, or of the namespace.
fn key_bounds(query: &Query, ancestor: Option<&[u8]>) -> (Vec<u8>, Option<Vec<u8>>) {
    let entity_range = || {
        let mut lo = alloc::vec![crate::key::ENTITY_PREFIX];
        encoding::put_bytes(&mut lo, query.namespace.as_bytes());
        lo
    };
    match ancestor {
        Some(encoded) => (encoded.to_vec(), prefix_end(encoded)),
        None => {
            let lo = entity_range();
            let hi = prefix_end(&lo);
            (lo, hi)
        }
    }
}

/// Equality filters (and `IN`), and one range property.
type FilterColumns = (Vec<(String, Vec<Value>)>, Option<(String, Column)>);

/// The filters of `query` as index columns: equality (one stream each, `IN` values sorted
/// and deduplicated) and one range property with its tightest bounds; filters the kind's
/// declaration rules out are refused.
fn filter_columns(query: &Query, declared: Option<&Kind>) -> Result<FilterColumns, Error> {
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
    Ok((equalities, range))
}

/// The columns of the sort properties, in order, after the checks the orders must pass; an
/// `IN` property that is sorted on is served as points of its own column (and leaves
/// `equalities`). A range property with no order of its own is sorted first, ascending.
fn sort_columns(
    orders: &mut Vec<Order>,
    key_order_only: bool,
    range: Option<&(String, Column)>,
    equalities: &mut Vec<(String, Vec<Value>)>,
    declared: Option<&Kind>,
) -> Result<Vec<(String, Direction, Column)>, Error> {
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
    for order in orders.iter() {
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

    Ok(sort)
}

/// Where a query's entity keys lie and in which key order.
struct Bounds {
    key_lo: Vec<u8>,
    key_hi: Option<Vec<u8>>,
    key_descending: bool,
    ancestor: Option<Vec<u8>>,
}

/// The plan, by kind: the kind index, a descending key scan of one equality's rows, a merge
/// join of equalities, one property's index, or a composite index.
fn choose(
    schema: &Schema,
    query: &Query,
    kind: &str,
    bounds: Bounds,
    equalities: &[(String, Vec<Value>)],
    sort: &[(String, Direction, Column)],
) -> Result<Plan, Error> {
    let Bounds {
        key_lo,
        key_hi,
        key_descending,
        ancestor,
    } = bounds;
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
        if let [(property, values)] = equalities
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
    composite_plan(schema, query, kind, equalities, sort, ancestor)
}

pub(super) fn composite_plan(
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
pub(super) fn column_ranges(
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

/// Refuses what Cloud Datastore refuses before planning: a `limit` outside
/// 1..=[`super::MAX_PAGE`], and an `IN` of more than [`super::MAX_IN_VALUES`] values (each
/// value is a scan of its own).
/// Refuses a filter that can match nothing because the kind's declaration rules it out: a
/// property the kind does not declare (a typo: a declared kind has no other properties),
/// or a value of another type than the property's (index order never puts
/// an int64 beside a float64, so `balance > 1.5` on an int64 `balance` would be silently
/// empty). Schemaless kinds and properties are not checked: any value can be there.
fn check_declared(schema: &Schema, query: &Query) -> Result<(), Error> {
    let Some(kind) = query.kind.as_deref().and_then(|kind| schema.kind(kind)) else {
        return Ok(());
    };
    for filter in &query.filters {
        if filter.property == "__key__" {
            continue;
        }
        let Some(property) = kind.property(&filter.property) else {
            let declared: Vec<&str> = kind.properties.iter().map(|p| p.name).collect();
            return Err(invalid(format!(
                "filter {filter}: kind {} declares no property {} (declared: {})",
                kind.name,
                filter.property,
                declared.join(", ")
            )));
        };
        if !property.indexed {
            // Refused when its index is planned, in the words every unindexed filter gets.
            continue;
        }
        for value in filter.value.elements() {
            let ty = value.ty();
            if ty != property.ty && ty != Type::Null {
                return Err(invalid(format!(
                    "filter {filter}: {}.{} is declared {}, and {} {ty} never compares equal \
                     or ordered to one (write the value as {} {})",
                    kind.name,
                    property.name,
                    property.ty,
                    article(ty),
                    article(property.ty),
                    property.ty
                )));
            }
        }
    }
    Ok(())
}

fn article(ty: Type) -> &'static str {
    match ty {
        Type::Int | Type::Array | Type::Entity => "an",
        _ => "a",
    }
}

fn check_limits(query: &Query) -> Result<(), Error> {
    if let Some(limit) = query.limit
        && !(1..=super::MAX_PAGE).contains(&limit)
    {
        return Err(Error::InvalidQuery(format!(
            "limit {limit} is out of range: a query returns 1 to {} results (leave it out for a \
             full page)",
            super::MAX_PAGE
        )));
    }
    for filter in &query.filters {
        if let (Op::In, Value::Array(values)) = (&filter.op, &filter.value)
            && values.len() > super::MAX_IN_VALUES
        {
            return Err(Error::InvalidQuery(format!(
                "{} IN takes at most {} values; this one has {}",
                filter.property,
                super::MAX_IN_VALUES,
                values.len()
            )));
        }
    }
    Ok(())
}
