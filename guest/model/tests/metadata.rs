//! Metadata queries, counts past one call's bound, conditional writes, and filters that a
//! kind's declaration rules out: the model operations of issue 28, natively.
#![allow(clippy::unwrap_used)]

use ds_model::query::{COUNT_PAGE, KIND_KIND, NAMESPACE_KIND, PROPERTY_KIND, Query};
use ds_model::schema::{Kind, Property, Schema};
use ds_model::transport::{MemoryTransport, NoLog};
use ds_model::value::Type;
use ds_model::{Condition, Entity, Error, Filter, Key, Model};

static SCHEMA: Schema = Schema::new(&[Kind::new(
    "Account",
    &[
        Property::new("balance", Type::Int),
        Property::new("owner", Type::String),
        Property::new("note", Type::String).unindexed(),
    ],
)]);

fn model() -> Model<MemoryTransport, NoLog> {
    Model::new(MemoryTransport::new(), NoLog).with_schema(&SCHEMA)
}

fn put(model: &mut Model<MemoryTransport, NoLog>, key: &str, json: &str) {
    let entity = Entity::from_json(key.parse().unwrap(), json).unwrap();
    model.put(&entity).unwrap();
}

/// Every page of `query`: the keys and, per result, its properties' JSON.
fn listing(model: &mut Model<MemoryTransport, NoLog>, query: &Query) -> Vec<(String, String)> {
    let mut query = query.clone();
    let mut out = Vec::new();
    loop {
        let page = model.query_json(&query).unwrap();
        for (key, properties) in page.results {
            out.push((key.to_string(), properties.unwrap_or_default()));
        }
        match page.next {
            Some(next) => query.start = Some(next),
            None => return out,
        }
    }
}

fn metadata(kind: &str, namespace: &str) -> Query {
    Query {
        namespace: namespace.into(),
        kind: Some(kind.into()),
        ..Query::default()
    }
}

#[test]
fn metadata_queries_list_namespaces_kinds_and_properties() {
    let mut model = model();
    put(
        &mut model,
        "Account:a",
        r#"{"balance": 1, "owner": "x", "note": "n"}"#,
    );
    put(&mut model, "Account:b", r#"{"balance": 2}"#);
    put(&mut model, "Thing:1", r#"{"p": 1, "q": "s"}"#);
    put(
        &mut model,
        "Thing:2",
        r#"{"p": "text", "r": {"$unindexed": 5}}"#,
    );
    put(&mut model, "Account:a/Thing:3", r#"{"p": true}"#);
    put(&mut model, "ns1@Other:1", r#"{"z": null}"#);
    put(&mut model, "ns2@Other:1", "{}");

    let keys = |rows: Vec<(String, String)>| rows.into_iter().map(|(k, _)| k).collect::<Vec<_>>();
    assert_eq!(
        keys(listing(&mut model, &metadata(NAMESPACE_KIND, ""))),
        ["__namespace__:1", "__namespace__:ns1", "__namespace__:ns2"]
    );
    assert_eq!(
        keys(listing(&mut model, &metadata(KIND_KIND, ""))),
        ["__kind__:Account", "__kind__:Thing"]
    );
    assert_eq!(
        keys(listing(&mut model, &metadata(KIND_KIND, "ns1"))),
        ["ns1@__kind__:Other"]
    );
    // Indexed properties with the types their values have; unindexed ones are not listed.
    assert_eq!(
        listing(&mut model, &metadata(PROPERTY_KIND, "")),
        [
            (
                "__kind__:Account/__property__:balance".to_string(),
                r#"{"property_representation":["int64"]}"#.to_string()
            ),
            (
                "__kind__:Account/__property__:owner".into(),
                r#"{"property_representation":["string"]}"#.into()
            ),
            (
                "__kind__:Thing/__property__:p".into(),
                r#"{"property_representation":["bool","int64","string"]}"#.into()
            ),
            (
                "__kind__:Thing/__property__:q".into(),
                r#"{"property_representation":["string"]}"#.into()
            ),
        ]
    );
    // One kind's, by ancestor; keys only; and page by page (a page of one).
    let mut of_thing = metadata(PROPERTY_KIND, "");
    of_thing.ancestor = Some("__kind__:Thing".parse().unwrap());
    of_thing.keys_only = true;
    assert_eq!(
        keys(listing(&mut model, &of_thing)),
        [
            "__kind__:Thing/__property__:p",
            "__kind__:Thing/__property__:q"
        ]
    );
    for kind in [NAMESPACE_KIND, KIND_KIND, PROPERTY_KIND] {
        let all = listing(&mut model, &metadata(kind, ""));
        let mut paged = metadata(kind, "");
        paged.limit = Some(1);
        assert_eq!(listing(&mut model, &paged), all, "{kind}");
        let mut skipped = metadata(kind, "");
        skipped.offset = 1;
        assert_eq!(listing(&mut model, &skipped), all[1..], "{kind}");
    }
    // Refused: filters, other ancestors, counts, transactions, and writes of their keys.
    let mut filtered = metadata(KIND_KIND, "");
    filtered.filters = vec![Filter::parse("x = 1").unwrap()];
    let mut wrong_ancestor = metadata(KIND_KIND, "");
    wrong_ancestor.ancestor = Some("Account:a".parse().unwrap());
    for query in [filtered, wrong_ancestor] {
        assert!(
            matches!(model.query(&query), Err(Error::InvalidQuery(_))),
            "{query:?}"
        );
    }
    assert!(matches!(
        model.count(&metadata(KIND_KIND, "")),
        Err(Error::InvalidQuery(_))
    ));
    let key: Key = "__kind__:Account".parse().unwrap();
    assert!(matches!(
        model.put(&Entity::new(key.clone())),
        Err(Error::InvalidKey(_))
    ));
    assert!(matches!(model.get(&key), Err(Error::InvalidKey(_))));
}

#[test]
fn counts_continue_past_one_calls_bound() {
    let mut model = model();
    let total = COUNT_PAGE as usize + 250;
    let entities: Vec<Entity> = (1..=total as u64)
        .map(|id| {
            Entity::from_json(
                Key::id("Account", id),
                &format!(r#"{{"balance": {}}}"#, id % 3),
            )
            .unwrap()
        })
        .collect();
    for chunk in entities.chunks(1000) {
        model.put_many(chunk).unwrap();
    }
    let mut query = Query {
        kind: Some("Account".into()),
        ..Query::default()
    };
    let first = model.count(&query).unwrap();
    assert_eq!(first.count, u64::from(COUNT_PAGE));
    query.start = first.next.clone();
    let second = model.count(&query).unwrap();
    assert_eq!((second.count, second.next), (250, None));
    // A count's cursor is the query's: the query resumes where the count stopped.
    let page = model.query(&query).unwrap();
    assert_eq!(page.hits.len(), 250);
    // With a filter, through the property index; with a limit below the bound, no cursor.
    let mut zeros = Query {
        kind: Some("Account".into()),
        filters: vec![Filter::parse("balance = 0").unwrap()],
        ..Query::default()
    };
    assert_eq!(model.count(&zeros).unwrap().count, (total / 3) as u64);
    zeros.limit = Some(7);
    assert_eq!(
        model.count(&zeros).unwrap(),
        ds_model::query::Count {
            count: 7,
            next: None
        }
    );
    zeros.limit = Some(0);
    assert!(matches!(model.count(&zeros), Err(Error::InvalidQuery(_))));
}

#[test]
fn conditional_writes_hold_or_write_nothing() {
    let mut model = model();
    let a: Key = "Account:a".parse().unwrap();
    let b: Key = "Account:b".parse().unwrap();
    let entity = |key: &Key, balance: i64| {
        Entity::from_json(key.clone(), &format!(r#"{{"balance": {balance}}}"#)).unwrap()
    };
    // Create only: the first succeeds, the second is refused.
    let created = model
        .put_if(vec![(entity(&a, 1), Condition::Absent)])
        .unwrap();
    let err = model
        .put_if(vec![(entity(&a, 2), Condition::Absent)])
        .unwrap_err();
    assert!(
        matches!(&err, Error::FailedPrecondition(m) if m.contains("exists")),
        "{err}"
    );
    let looked = model.get_versioned_json(&[a.clone(), b.clone()]).unwrap();
    assert_eq!(
        looked,
        [Some((r#"{"balance":1}"#.to_string(), created)), None]
    );
    // Replace at the version read; a stale version is refused and writes nothing, even
    // beside a write whose condition holds.
    let replaced = model
        .put_if(vec![(entity(&a, 3), Condition::Version(created))])
        .unwrap();
    assert!(replaced > created);
    let err = model
        .put_if(vec![
            (entity(&b, 9), Condition::Absent),
            (entity(&a, 4), Condition::Version(created)),
        ])
        .unwrap_err();
    assert!(
        matches!(&err, Error::FailedPrecondition(m) if m.contains("not")),
        "{err}"
    );
    assert_eq!(model.get(&b).unwrap(), None);
    assert_eq!(
        model.get_versioned_json(std::slice::from_ref(&a)).unwrap()[0]
            .as_ref()
            .unwrap()
            .1,
        replaced
    );
    // A version on a missing entity; then deletes that say what was there.
    let err = model
        .put_if(vec![(entity(&b, 1), Condition::Version(1))])
        .unwrap_err();
    assert!(
        matches!(&err, Error::FailedPrecondition(m) if m.contains("does not exist")),
        "{err}"
    );
    let err = model
        .delete_if(&[(a.clone(), Condition::Version(created))])
        .unwrap_err();
    assert!(matches!(err, Error::FailedPrecondition(_)));
    assert!(model.get(&a).unwrap().is_some());
    assert_eq!(
        model
            .delete_if(&[
                (a.clone(), Condition::Version(replaced)),
                (b.clone(), Condition::Any)
            ])
            .unwrap(),
        [true, false]
    );
    assert_eq!(
        model.delete_if(&[(a.clone(), Condition::Any)]).unwrap(),
        [false]
    );
    // Replace only: refused while absent, then allowed at any version.
    let err = model
        .put_if(vec![(entity(&a, 5), Condition::Present)])
        .unwrap_err();
    assert!(
        matches!(&err, Error::FailedPrecondition(m) if m.contains("does not exist")),
        "{err}"
    );
    model.put_if(vec![(entity(&a, 5), Condition::Any)]).unwrap();
    model
        .put_if(vec![(entity(&a, 6), Condition::Present)])
        .unwrap();
    assert_eq!(
        model.get(&a).unwrap().unwrap().properties_json(),
        r#"{"balance":6}"#
    );
}

#[test]
fn filters_a_declaration_rules_out_are_refused() {
    let mut model = model();
    put(&mut model, "Account:a", r#"{"balance": 1}"#);
    let query = |filter: &str| Query {
        kind: Some("Account".into()),
        filters: vec![Filter::parse(filter).unwrap()],
        ..Query::default()
    };
    for (filter, want) in [
        ("balance > 1.5", "declared int64"),
        ("balance IN [1, \"2\"]", "declared int64"),
        ("balanse = 1", "declares no property balanse"),
        ("note = \"n\"", "not indexed"),
    ] {
        let err = model.query(&query(filter)).unwrap_err();
        assert!(
            matches!(&err, Error::InvalidQuery(m) if m.contains(want)),
            "{filter}: {err}"
        );
        assert!(model.count(&query(filter)).is_err());
    }
    // Null is a value of every type; schemaless kinds take any value.
    assert!(
        model
            .query(&query("balance = null"))
            .unwrap()
            .hits
            .is_empty()
    );
    let mut schemaless = query("balance > 1.5");
    schemaless.kind = Some("Thing".into());
    assert!(model.query(&schemaless).is_ok());
}

#[test]
fn incomplete_keys_parse_and_the_model_refuses_them() {
    let incomplete = |text: &str| Key::parse_allowing_incomplete(text).unwrap();
    assert!(incomplete("Account").is_incomplete());
    assert_eq!(incomplete("tenant@Account").namespace, "tenant");
    assert!(incomplete("tenant@Account").is_incomplete());
    assert!(incomplete("Account:a/Note").is_incomplete());
    assert!(!incomplete("Account:a/Note:1").is_incomplete());
    for bad in ["Account:a/", "__kind__", "", "Acc ount"] {
        assert!(Key::parse_allowing_incomplete(bad).is_err(), "{bad}");
    }
    // Completing it is the host's (put_completing): the model refuses id 0.
    let mut model = model();
    assert!(matches!(
        model.put(&Entity::new(incomplete("Note"))),
        Err(Error::InvalidKey(_))
    ));
}

/// Writes raw rows, as a damaged store would hold them.
fn write_raw(model: &mut Model<MemoryTransport, NoLog>, rows: &[(Vec<u8>, Option<Vec<u8>>)]) {
    use ds_model::{Transport, Write};
    let writes: Vec<Write> = rows
        .iter()
        .map(|(key, value)| Write {
            key: key.clone(),
            value: value.clone(),
        })
        .collect();
    model.transport_mut().commit(&[], &writes).unwrap();
}

/// Every page of `check` (or of `repair`), summed: (problems, written, deleted).
fn repair_all(model: &mut Model<MemoryTransport, NoLog>, apply: bool) -> (Vec<String>, u64, u64) {
    let (mut start, mut problems, mut written, mut deleted) = (None, Vec::new(), 0, 0);
    loop {
        let page = model.repair(start.as_deref(), apply).unwrap();
        problems.extend(page.check.problems);
        written += page.written;
        deleted += page.deleted;
        match page.check.next {
            Some(next) => start = Some(next),
            None => return (problems, written, deleted),
        }
    }
}

#[test]
fn repair_rewrites_missing_rows_and_deletes_stale_ones_and_salvage_skips_corrupt_entities() {
    let mut model = model();
    put(&mut model, "Account:a", r#"{"owner": "x", "balance": 1}"#);
    put(&mut model, "Account:b", r#"{"owner": "y", "balance": 2}"#);
    put(&mut model, "Account:c", r#"{"owner": "z", "balance": 3}"#);
    let a = model.get(&key("Account:a")).unwrap().unwrap();
    let b = model.get(&key("Account:b")).unwrap().unwrap();
    let a_rows = ds_model::index::rows(&SCHEMA, &a).unwrap();
    let b_rows = ds_model::index::rows(&SCHEMA, &b).unwrap();
    // Damage: one of a's index rows gone; b deleted behind the model's back (its rows
    // stay, stale); an index row that names no entity; c's value unreadable.
    let mut stale_garbage = a_rows[0].0.clone();
    stale_garbage.push(0xEE);
    write_raw(
        &mut model,
        &[
            (a_rows[1].0.clone(), None),
            (key("Account:b").encode(), None),
            (stale_garbage, Some(vec![0, 0xFF])),
            (key("Account:c").encode(), Some(vec![0x7F, b'{'])),
        ],
    );
    let before = repair_all(&mut model, false);
    assert_eq!(
        (before.1, before.2),
        (1, b_rows.len() as u64 + 1),
        "{:?}",
        before.0
    );
    // A dry run wrote nothing: the same problems again.
    assert_eq!(repair_all(&mut model, false), before);
    let applied = repair_all(&mut model, true);
    assert_eq!((applied.1, applied.2), (before.1, before.2));
    // What is left: the unreadable entity, which no repair can know the rows of (its
    // index rows stay, pointing at it).
    let (after, written, deleted) = repair_all(&mut model, true);
    assert_eq!((written, deleted), (0, 0));
    assert!(after.iter().all(|p| p.contains("Account:c")), "{after:?}");
    assert!(!after.is_empty());
    // The repaired index serves queries again.
    let owners = Query {
        kind: Some("Account".into()),
        filters: vec![Filter::parse(r#"owner = "x""#).unwrap()],
        keys_only: true,
        ..Query::default()
    };
    assert_eq!(model.query(&owners).unwrap().hits.len(), 1);
    // Export stops at the unreadable entity; a salvage skips it and says so.
    assert!(matches!(
        model.entities_json(None, None),
        Err(Error::Corrupt(_))
    ));
    let (page, skipped) = model.salvage_json(None, None).unwrap();
    let keys: Vec<String> = page.entities.iter().map(|(k, _)| k.to_string()).collect();
    assert_eq!(keys, ["Account:a"]);
    assert_eq!(skipped.len(), 1);
    assert!(skipped[0].contains("Account:c"), "{skipped:?}");
}

fn key(text: &str) -> Key {
    text.parse().unwrap()
}
