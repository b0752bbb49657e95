//! Queries against a naive reference: random entities (puts, overwrites and deletes, so
//! index maintenance is exercised), random queries of every supported shape, and the same
//! results from the index-served executor as from filtering and sorting everything in
//! memory, page by page through cursors.
#![allow(clippy::unwrap_used)]

use std::cmp::Ordering;
use std::collections::BTreeMap;

use ds_model::query::{Filter, Op, Order, Query};
use ds_model::schema::{
    CompositeIndex, Default as PropertyDefault, Direction, Kind, Property, Schema,
};
use ds_model::transport::{MemoryTransport, NoLog};
use ds_model::value::{self, Type, Value};
use ds_model::{Entity, Key, Model, PathElement};
use proptest::prelude::*;

static SCHEMA: Schema = Schema::new(&[Kind::new(
    "Item",
    &[
        Property::new("a", Type::Int)
            .repeated()
            .default(PropertyDefault::Empty),
        Property::new("b", Type::String),
        Property::new("c", Type::Int),
        // Never indexed: an overwrite reads the old value without it.
        Property::new("d", Type::String).unindexed(),
    ],
)
.indexes(&[
    CompositeIndex::new(&[("b", Direction::Ascending), ("c", Direction::Ascending)]),
    CompositeIndex::new(&[("b", Direction::Ascending), ("c", Direction::Descending)]),
    CompositeIndex::new(&[("a", Direction::Ascending), ("c", Direction::Descending)]),
    CompositeIndex::new(&[
        ("a", Direction::Ascending),
        ("a", Direction::Ascending),
        ("c", Direction::Descending),
    ]),
])]);

const PARENTS: [&str; 2] = ["p", "q"];

fn key_strategy(kind: &'static str) -> impl Strategy<Value = Key> {
    (prop::option::of(0..PARENTS.len()), 1u64..12).prop_map(move |(parent, id)| match parent {
        Some(p) => Key::name("Parent", PARENTS[p]).child(PathElement::id(kind, id)),
        None => Key::id(kind, id),
    })
}

/// Small domains so that filters match often and ties happen.
fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        3 => (0i64..5).prop_map(Value::Int),
        2 => prop::sample::select(vec!["", "x", "y", "\0"]).prop_map(|s| Value::String(s.into())),
        1 => Just(Value::Null),
        1 => any::<bool>().prop_map(Value::Bool),
        1 => prop::sample::select(vec![-1.5, 0.0, 2.0, f64::NAN]).prop_map(Value::Float),
    ]
}

fn thing_value() -> impl Strategy<Value = Option<Value>> {
    prop_oneof![
        1 => Just(None),
        4 => scalar().prop_map(Some),
        2 => prop::collection::vec(scalar(), 0..4).prop_map(|v| Some(Value::Array(v))),
    ]
}

fn thing() -> impl Strategy<Value = Entity> {
    (
        key_strategy("Thing"),
        thing_value(),
        thing_value(),
        any::<bool>(),
    )
        .prop_map(|(key, p, q, hide_q)| {
            let mut entity = Entity::new(key);
            if let Some(p) = p {
                entity.properties.insert("p".into(), p);
            }
            if let Some(q) = q {
                entity.properties.insert("q".into(), q);
                if hide_q {
                    entity.unindexed.insert("q".into());
                }
            }
            entity
        })
}

fn item() -> impl Strategy<Value = Entity> {
    (
        key_strategy("Item"),
        prop::collection::vec(0i64..4, 0..3),
        prop::option::of(prop::sample::select(vec!["x", "y"])),
        prop::option::of(0i64..4),
        prop::option::of(prop::sample::select(vec![
            "",
            "d",
            "a long text, never indexed",
        ])),
    )
        .prop_map(|(key, a, b, c, d)| {
            let mut entity =
                Entity::new(key).with("a", Value::Array(a.into_iter().map(Value::Int).collect()));
            if let Some(b) = b {
                entity
                    .properties
                    .insert("b".into(), Value::String(b.into()));
            }
            if let Some(c) = c {
                entity.properties.insert("c".into(), Value::Int(c));
            }
            if let Some(d) = d {
                entity
                    .properties
                    .insert("d".into(), Value::String(d.into()));
            }
            entity
        })
}

#[derive(Debug, Clone)]
enum Step {
    Put(Entity),
    Delete(Key),
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    prop::collection::vec(
        prop_oneof![
            4 => thing().prop_map(Step::Put),
            4 => item().prop_map(Step::Put),
            1 => key_strategy("Thing").prop_map(Step::Delete),
            1 => key_strategy("Item").prop_map(Step::Delete),
        ],
        1..60,
    )
}

fn direction() -> impl Strategy<Value = Direction> {
    prop_oneof![Just(Direction::Ascending), Just(Direction::Descending)]
}

fn range_op() -> impl Strategy<Value = Op> {
    prop::sample::select(vec![Op::Lt, Op::Le, Op::Gt, Op::Ge])
}

fn order(property: &str, direction: Direction) -> Order {
    Order {
        property: property.into(),
        direction,
    }
}

fn filter(property: &str, op: Op, value: Value) -> Filter {
    Filter {
        property: property.into(),
        op,
        value,
    }
}

/// Queries of every shape the planner serves.
fn query() -> impl Strategy<Value = Query> {
    let ancestor = prop::option::of(
        prop::sample::select(PARENTS.to_vec()).prop_map(|p| Key::name("Parent", p)),
    );
    let thing_prop = prop::sample::select(vec!["p", "q"]);
    let shape = prop_oneof![
        // Kind only, key order either way.
        any::<bool>().prop_map(|desc| (
            "Thing",
            Vec::new(),
            if desc {
                vec![order("__key__", Direction::Descending)]
            } else {
                Vec::new()
            }
        )),
        // Equalities and IN: merge join.
        prop::collection::vec(
            (
                thing_prop.clone(),
                scalar(),
                prop::collection::vec(scalar(), 0..3),
                any::<bool>()
            ),
            1..3
        )
        .prop_map(|filters| (
            "Thing",
            filters
                .into_iter()
                .map(|(p, v, list, is_in)| if is_in {
                    filter(p, Op::In, Value::Array(list))
                } else {
                    filter(p, Op::Eq, v)
                })
                .collect(),
            Vec::new()
        )),
        // One range property, one or two bounds, sorted either way.
        (
            thing_prop.clone(),
            range_op(),
            scalar(),
            prop::option::of((range_op(), scalar())),
            prop::option::of(direction())
        )
            .prop_map(|(p, op, v, second, dir)| {
                let mut filters = vec![filter(p, op, v)];
                if let Some((op, v)) = second {
                    filters.push(filter(p, op, v));
                }
                (
                    "Thing",
                    filters,
                    dir.map(|d| vec![order(p, d)]).unwrap_or_default(),
                )
            }),
        // A sort order alone; IN on the sorted property; the key tie-break spelled out.
        (
            thing_prop.clone(),
            direction(),
            prop::option::of(prop::collection::vec(scalar(), 1..3)),
            any::<bool>()
        )
            .prop_map(|(p, d, list, spell_key)| {
                let mut orders = vec![order(p, d)];
                if spell_key {
                    orders.push(order("__key__", d));
                }
                (
                    "Thing",
                    list.map(|l| vec![filter(p, Op::In, Value::Array(l))])
                        .unwrap_or_default(),
                    orders,
                )
            }),
        // Composite: b fixed (`=`, a one-value IN, or an empty IN), sort (or range) on c,
        // either direction; maybe an order on b first, which the equality makes moot.
        (
            prop::sample::select(vec!["x", "y"]),
            0..3,
            direction(),
            prop::option::of((range_op(), 0i64..4)),
            prop::option::of(direction())
        )
            .prop_map(|(b, how, d, range, b_order)| {
                let b = Value::String(b.into());
                let mut filters = vec![match how {
                    0 => filter("b", Op::Eq, b),
                    1 => filter("b", Op::In, Value::Array(vec![b.clone(), b])),
                    _ => filter("b", Op::In, Value::Array(Vec::new())),
                }];
                if let Some((op, c)) = range {
                    filters.push(filter("c", op, Value::Int(c)));
                }
                let orders = match b_order {
                    Some(db) if how != 2 => vec![order("b", db), order("c", d)],
                    _ => vec![order("c", d)],
                };
                ("Item", filters, orders)
            }),
        // Composite over a repeated property: sort a, then c (and the flipped directions).
        (any::<bool>(), prop::option::of((range_op(), 0i64..4))).prop_map(|(flip, range)| {
            let (da, dc) = if flip {
                (Direction::Descending, Direction::Ascending)
            } else {
                (Direction::Ascending, Direction::Descending)
            };
            let filters = range
                .map(|(op, a)| vec![filter("a", op, Value::Int(a))])
                .unwrap_or_default();
            ("Item", filters, vec![order("a", da), order("c", dc)])
        }),
    ];
    (shape, ancestor, any::<bool>()).prop_map(|((kind, filters, orders), ancestor, keys_only)| {
        Query {
            kind: Some(kind.into()),
            ancestor,
            filters,
            orders,
            keys_only,
            ..Query::default()
        }
    })
}

/// The indexed values a query sees for `property` of `entity`.
fn indexed_values<'e>(entity: &'e Entity, property: &str) -> Vec<&'e Value> {
    match entity.properties.get(property) {
        Some(v) if entity.is_indexed(&SCHEMA, property) => v
            .elements()
            .iter()
            .filter(|v| value::is_indexable(v))
            .collect(),
        _ => Vec::new(),
    }
}

fn satisfies(v: &Value, op: Op, bound: &Value) -> bool {
    let order = value::compare(v, bound);
    match op {
        Op::Eq => order.is_eq(),
        Op::In => match bound {
            Value::Array(list) => list.iter().any(|b| value::compare(v, b).is_eq()),
            _ => false,
        },
        _ if !value::same_type_group(v, bound) => false,
        Op::Lt => order.is_lt(),
        Op::Le => order.is_le(),
        Op::Gt => order.is_gt(),
        Op::Ge => order.is_ge(),
    }
}

/// Filters and sorts everything in memory: the semantics the module docs of
/// `ds_model::query` state.
fn reference(entities: &BTreeMap<Key, Entity>, query: &Query) -> Vec<Key> {
    let kind = query.kind.as_deref().unwrap();
    let is_range = |op: Op| matches!(op, Op::Lt | Op::Le | Op::Gt | Op::Ge);
    let range_property = query
        .filters
        .iter()
        .find(|f| is_range(f.op))
        .map(|f| f.property.clone());
    let mut orders: Vec<Order> = query.orders.clone();
    orders.retain(|o| {
        !query.filters.iter().any(|f| {
            f.property == o.property
                && (f.op == Op::Eq
                    || matches!(&f.value, Value::Array(l) if f.op == Op::In
                        && l.iter().all(|v| value::compare(v, &l[0]).is_eq())
                        && !l.is_empty()))
        })
    });
    // A last key order in the last order's direction is the tie-break below, spelled out;
    // a key order alone is the tie-break's direction.
    if orders.len() > 1
        && orders.last().is_some_and(|o| {
            o.property == "__key__" && o.direction == orders[orders.len() - 2].direction
        })
    {
        orders.pop();
    }
    let key_alone = orders.len() == 1 && orders[0].property == "__key__";
    let key_descending = key_alone && orders[0].direction == Direction::Descending;
    if key_alone {
        orders.clear();
    }
    if orders.is_empty()
        && let Some(p) = &range_property
    {
        orders.push(order(p, Direction::Ascending));
    }
    // Values of `property` that pass every filter on it (range bounds on one element).
    let eligible = |entity: &Entity, property: &str| -> Vec<Value> {
        indexed_values(entity, property)
            .into_iter()
            .filter(|v| {
                query
                    .filters
                    .iter()
                    .filter(|f| f.property == property && (is_range(f.op) || f.op == Op::In))
                    .all(|f| satisfies(v, f.op, &f.value))
            })
            .cloned()
            .collect()
    };
    let mut matched: Vec<(Vec<Value>, &Key)> = Vec::new();
    'entities: for (key, entity) in entities {
        if key.leaf().unwrap().kind != kind {
            continue;
        }
        if let Some(ancestor) = &query.ancestor
            && !(key.namespace == ancestor.namespace && key.path.starts_with(&ancestor.path))
        {
            continue;
        }
        for f in &query.filters {
            let values = indexed_values(entity, &f.property);
            let ok = if is_range(f.op) {
                !eligible(entity, &f.property).is_empty()
            } else {
                values.iter().any(|v| satisfies(v, f.op, &f.value))
            };
            if !ok {
                continue 'entities;
            }
        }
        let mut tuple = Vec::new();
        for o in &orders {
            let mut values = eligible(entity, &o.property);
            values.sort_by(value::compare);
            let pick = match o.direction {
                Direction::Ascending => values.first(),
                Direction::Descending => values.last(),
            };
            match pick {
                Some(v) => tuple.push(v.clone()),
                None => continue 'entities,
            }
        }
        matched.push((tuple, key));
    }
    let last_descending = key_descending
        || orders
            .last()
            .is_some_and(|o| o.direction == Direction::Descending);
    matched.sort_by(|(ta, ka), (tb, kb)| {
        for ((a, b), o) in ta.iter().zip(tb).zip(&orders) {
            let order = value::compare(a, b);
            let order = if o.direction == Direction::Descending {
                order.reverse()
            } else {
                order
            };
            if order != Ordering::Equal {
                return order;
            }
        }
        if last_descending {
            kb.cmp(ka)
        } else {
            ka.cmp(kb)
        }
    });
    matched.into_iter().map(|(_, k)| k.clone()).collect()
}

fn run_pages(model: &mut Model<MemoryTransport, NoLog>, query: &Query, page: u32) -> Vec<Key> {
    let mut query = query.clone();
    query.limit = Some(page);
    let mut all = Vec::new();
    for _ in 0..1000 {
        let result = model.query(&query).unwrap();
        for hit in &result.hits {
            assert_eq!(hit.stored.is_none(), query.keys_only);
        }
        all.extend(result.hits.into_iter().map(|h| h.key));
        match result.next {
            Some(next) => query.start = Some(next),
            None => return all,
        }
    }
    panic!("paging did not end");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn queries_match_the_naive_reference(steps in steps(), queries in prop::collection::vec(query(), 1..6), page in 1u32..5) {
        let mut model = Model::new(MemoryTransport::new(), NoLog).with_schema(&SCHEMA);
        let mut entities = BTreeMap::new();
        for step in steps {
            match step {
                Step::Put(entity) => {
                    model.put(&entity).unwrap();
                    entities.insert(entity.key.clone(), model.get(&entity.key).unwrap().unwrap());
                }
                Step::Delete(key) => {
                    model.delete(&key).unwrap();
                    entities.remove(&key);
                }
            }
        }
        for query in queries {
            let want = reference(&entities, &query);
            // One page of everything.
            let all = model.query(&query).unwrap();
            let keys: Vec<Key> = all.hits.iter().map(|h| h.key.clone()).collect();
            prop_assert_eq!(&keys, &want, "{:?}", query);
            prop_assert!(all.next.is_none());
            // Page by page through cursors.
            prop_assert_eq!(&run_pages(&mut model, &query, page), &want, "paged {:?}", query);
            // Counted from the indexes: as many as the results; with an offset and a limit,
            // as many as that window holds.
            let counted = model.count(&query).unwrap();
            prop_assert_eq!(counted.count as usize, want.len(), "count {:?}", query);
            prop_assert!(counted.next.is_none());
            let mut window = query.clone();
            window.offset = 1;
            window.limit = Some(page);
            prop_assert_eq!(
                model.count(&window).unwrap().count as usize,
                want.len().saturating_sub(1).min(page as usize)
            );
            // Offset and limit, and an end cursor that stops where a page ended.
            let mut windowed = query.clone();
            windowed.offset = 1;
            windowed.limit = Some(page);
            let window = model.query(&windowed).unwrap();
            let expect: Vec<Key> = want.iter().skip(1).take(page as usize).cloned().collect();
            prop_assert_eq!(window.hits.iter().map(|h| h.key.clone()).collect::<Vec<_>>(), expect);
            if let Some(cursor) = window.next {
                let mut bounded = query.clone();
                bounded.end = Some(cursor);
                let upto: Vec<Key> = model.query(&bounded).unwrap().hits.into_iter().map(|h| h.key).collect();
                prop_assert_eq!(upto, want.iter().take(1 + page as usize).cloned().collect::<Vec<_>>());
            }
        }
    }
}

#[test]
fn a_query_no_index_serves_names_the_index_to_declare() {
    let mut model = Model::new(MemoryTransport::new(), NoLog).with_schema(&SCHEMA);
    let cases = [
        (
            Query {
                kind: Some("Thing".into()),
                filters: vec![filter("p", Op::Eq, Value::Int(1))],
                orders: vec![order("q", Direction::Ascending)],
                ..Query::default()
            },
            "Thing(p,q)",
        ),
        (
            Query {
                kind: Some("Item".into()),
                orders: vec![
                    order("c", Direction::Ascending),
                    order("b", Direction::Ascending),
                ],
                ..Query::default()
            },
            "Item(c,b)",
        ),
        (
            Query {
                kind: Some("Thing".into()),
                filters: vec![
                    filter("p", Op::Gt, Value::Int(1)),
                    filter("q", Op::Lt, Value::Int(1)),
                ],
                ..Query::default()
            },
            "one property only",
        ),
        (
            Query {
                kind: Some("Thing".into()),
                filters: vec![filter("p", Op::Gt, Value::Int(1))],
                orders: vec![order("q", Direction::Ascending)],
                ..Query::default()
            },
            "first sort order must be on p",
        ),
        (
            Query {
                kind: Some("Item".into()),
                filters: vec![filter("nope", Op::Eq, Value::Int(1))],
                ..Query::default()
            },
            "declares no property nope",
        ),
        (
            Query {
                kind: Some("Thing".into()),
                start: Some("AAAA".into()),
                ..Query::default()
            },
            "not a ds cursor",
        ),
    ];
    for (query, want) in cases {
        let err = model.query(&query).unwrap_err();
        assert!(
            matches!(&err, ds_model::Error::InvalidQuery(m) if m.contains(want)),
            "{query:?}: {err}"
        );
    }
}

#[test]
fn queries_use_indexes_not_full_scans() {
    // 1,000 entities, one match: the query reads a handful of rows, not the kind.
    struct Counting(MemoryTransport, usize);
    impl ds_model::Transport for Counting {
        fn get(&mut self, key: &[u8]) -> Result<Option<ds_model::Versioned>, ds_model::StoreError> {
            self.0.get(key)
        }
        fn scan(
            &mut self,
            range: &ds_model::transport::KeyRange,
            limit: u32,
            direction: ds_model::Direction,
        ) -> Result<Vec<ds_model::transport::Entry>, ds_model::StoreError> {
            let rows = self.0.scan(range, limit, direction)?;
            self.1 += rows.len();
            Ok(rows)
        }
        fn commit(
            &mut self,
            c: &[ds_model::Check],
            w: &[ds_model::Write],
        ) -> Result<u64, ds_model::StoreError> {
            self.0.commit(c, w)
        }
    }
    let mut model = Model::new(Counting(MemoryTransport::new(), 0), NoLog).with_schema(&SCHEMA);
    let items: Vec<Entity> = (1..=1000)
        .map(|i| {
            Entity::new(Key::id("Item", i))
                .with("b", Value::String(if i == 500 { "y" } else { "x" }.into()))
                .with("c", Value::Int(i as i64))
        })
        .collect();
    model.put_many(&items).unwrap();
    for query in [
        Query {
            kind: Some("Item".into()),
            filters: vec![filter("b", Op::Eq, Value::String("y".into()))],
            ..Query::default()
        },
        Query {
            kind: Some("Item".into()),
            filters: vec![filter("c", Op::Ge, Value::Int(999))],
            ..Query::default()
        },
        Query {
            kind: Some("Item".into()),
            filters: vec![filter("b", Op::Eq, Value::String("x".into()))],
            orders: vec![order("c", Direction::Descending)],
            limit: Some(2),
            ..Query::default()
        },
    ] {
        let before = model.transport().1;
        let page = model.query(&query).unwrap();
        assert!(!page.hits.is_empty());
        let read = model.transport().1 - before;
        // A page reads at least a small batch of index rows; never the whole kind.
        assert!(read <= 20, "{query:?} read {read} rows");
    }
}

/// Two equality filters on one repeated property, sorted by another: each value fills a
/// column of the `(a, a, -c)` index, so only entities holding both match. The same filter
/// twice means it once, served by `(a, -c)`.
#[test]
fn repeated_equalities_on_one_property_use_each_value() {
    let mut model = Model::new(MemoryTransport::new(), NoLog).with_schema(&SCHEMA);
    let item = |id: u64, a: &[i64], c: i64| {
        Entity::new(Key::id("Item", id))
            .with(
                "a",
                Value::Array(a.iter().map(|&v| Value::Int(v)).collect()),
            )
            .with("b", Value::String("x".into()))
            .with("c", Value::Int(c))
    };
    model
        .put_many(&[
            item(1, &[1], 5),
            item(2, &[1, 2], 3),
            item(3, &[2], 4),
            item(4, &[2, 1], 6),
        ])
        .unwrap();
    let ids = |model: &mut Model<MemoryTransport, NoLog>, filters: Vec<Filter>| -> Vec<u64> {
        let query = Query {
            kind: Some("Item".into()),
            filters,
            orders: vec![order("c", Direction::Descending)],
            ..Query::default()
        };
        model
            .query(&query)
            .unwrap()
            .hits
            .iter()
            .map(|hit| match hit.key.leaf().map(|leaf| &leaf.id) {
                Some(ds_model::IdOrName::Id(id)) => *id,
                other => panic!("{other:?}"),
            })
            .collect()
    };
    let both = vec![
        filter("a", Op::Eq, Value::Int(1)),
        filter("a", Op::Eq, Value::Int(2)),
    ];
    assert_eq!(
        ids(&mut model, both),
        [4, 2],
        "entities holding both 1 and 2, by -c"
    );
    let twice = vec![
        filter("a", Op::Eq, Value::Int(1)),
        filter("a", Op::Eq, Value::Int(1)),
    ];
    assert_eq!(ids(&mut model, twice), [4, 1, 2], "a = 1, by -c");
}

/// An index's equality columns must hold the query's equality properties as many times as
/// the filters name them: with `(t, u, u, -c)` declared before `(t, t, u, -c)`, the query
/// `t = 1 AND t = 2 AND u = 3` by `-c` is served by the second, not refused for the first.
#[test]
fn the_index_chosen_has_a_column_for_every_equality() {
    static TWO_INDEXES: Schema = Schema::new(&[Kind::new(
        "T",
        &[
            Property::new("t", Type::Int)
                .repeated()
                .default(PropertyDefault::Empty),
            Property::new("u", Type::Int)
                .repeated()
                .default(PropertyDefault::Empty),
            Property::new("c", Type::Int),
        ],
    )
    .indexes(&[
        CompositeIndex::new(&[
            ("t", Direction::Ascending),
            ("u", Direction::Ascending),
            ("u", Direction::Ascending),
            ("c", Direction::Descending),
        ]),
        CompositeIndex::new(&[
            ("t", Direction::Ascending),
            ("t", Direction::Ascending),
            ("u", Direction::Ascending),
            ("c", Direction::Descending),
        ]),
    ])]);
    let mut model = Model::new(MemoryTransport::new(), NoLog).with_schema(&TWO_INDEXES);
    let ints = |values: &[i64]| Value::Array(values.iter().map(|&v| Value::Int(v)).collect());
    for (id, t, u, c) in [
        (1u64, &[1, 2][..], &[3][..], 5),
        (2, &[1][..], &[3][..], 6),
        (3, &[2, 1][..], &[3, 4][..], 7),
    ] {
        model
            .put(
                &Entity::new(Key::id("T", id))
                    .with("t", ints(t))
                    .with("u", ints(u))
                    .with("c", Value::Int(c)),
            )
            .unwrap();
    }
    let page = model
        .query(&Query {
            kind: Some("T".into()),
            filters: vec![
                filter("t", Op::Eq, Value::Int(1)),
                filter("t", Op::Eq, Value::Int(2)),
                filter("u", Op::Eq, Value::Int(3)),
            ],
            orders: vec![order("c", Direction::Descending)],
            ..Query::default()
        })
        .unwrap();
    let keys: Vec<String> = page.hits.iter().map(|h| h.key.to_string()).collect();
    assert_eq!(keys, ["T:3", "T:1"]);
}

proptest! {
    /// An overwrite decodes only the old value's indexed properties to learn its index rows
    /// (`Entity::decode_indexed`): they are the rows of the whole entity.
    #[test]
    fn the_indexed_properties_give_the_rows_of_the_whole_entity(
        mut entity in prop_oneof![thing(), item()],
    ) {
        let Ok(stored) = entity.prepare(&SCHEMA) else {
            return Ok(());
        };
        let whole = Entity::decode(entity.key.clone(), &stored).unwrap();
        let indexed = Entity::decode_indexed(entity.key.clone(), &stored, &SCHEMA).unwrap();
        // What it skips is what no row comes from: `d` (declared unindexed), a hidden `q`.
        for name in indexed.properties.keys() {
            prop_assert!(whole.is_indexed(&SCHEMA, name), "kept {}", name);
        }
        prop_assert_eq!(
            ds_model::index::rows(&SCHEMA, &indexed).unwrap(),
            ds_model::index::rows(&SCHEMA, &whole).unwrap()
        );
    }
}
