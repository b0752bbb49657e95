//! Hostile input through the library API of both hosts (the CLI has its own corpus in
//! `hostile_inputs.json`): every case is a typed error, and the store's key-value contents
//! are byte-identical before and after each one. Values built directly in Rust get the
//! checks that values read from JSON get.

use std::sync::Arc;

use host_core::store::{self, Entry, Offload, SqliteStore};
use host_core::{Entity, Error, Filter, Key, Op, PathElement, Query, Value};

/// One hostile call, run through `ds` and `ads` alike.
#[derive(Debug, Clone)]
enum Call {
    Put(Entity),
    PutMany(Vec<Entity>),
    Get(Key),
    GetMany(Vec<Key>),
    Delete(Key),
    Query(Query),
    Allocate(&'static str, u64),
    Deposit(Key, i64),
    Transfer(Key, Key, i64),
    Operation(&'static str, serde_json::Value),
}

fn account(name: &str) -> Key {
    Key::name("Account", name)
}

/// A call and the test its error must pass.
type Case = (Call, fn(&Error) -> bool);

fn cases() -> Vec<Case> {
    let note = |props: &[(&str, Value)]| {
        let mut e = Entity::new(Key::name("Note", "x"));
        for (name, value) in props {
            e.properties.insert(name.to_string(), value.clone());
        }
        e
    };
    let owned = |props: &[(&str, Value)]| {
        let mut e = Entity::new(account("a")).with("owner", Value::String("x".into()));
        for (name, value) in props {
            e.properties.insert(name.to_string(), value.clone());
        }
        e
    };
    let mut embedded = host_core::Properties::new();
    embedded.insert("$key".into(), Value::String("Note:1".into()));
    let big = {
        let mut e = note(&[("blob", Value::Bytes(vec![0; 1 << 20]))]);
        e.unindexed.insert("blob".into());
        e
    };
    let query = |kind: &str, filters: Vec<Filter>, orders: &[&str]| Query {
        kind: Some(kind.into()),
        filters,
        orders: orders
            .iter()
            .map(|o| host_core::Order::parse(o).unwrap())
            .collect(),
        ..Query::default()
    };
    let filter = |property: &str, op: Op, value: Value| Filter {
        property: property.into(),
        op,
        value,
    };
    let invalid_key = |e: &Error| matches!(e, Error::InvalidKey(_));
    let invalid_entity = |e: &Error| matches!(e, Error::InvalidEntity(_));
    let invalid_query = |e: &Error| matches!(e, Error::InvalidQuery(_));
    let refused = |e: &Error| matches!(e, Error::FailedPrecondition(_));
    let not_found = |e: &Error| matches!(e, Error::NotFound(_));
    let invalid_argument = |e: &Error| matches!(e, Error::InvalidArgument(_));
    vec![
        // Keys.
        (Call::Put(Entity::new(Key::id("Note", 0))), invalid_key),
        (Call::Put(Entity::new(Key::name("", "x"))), invalid_key),
        (
            Call::Put(Entity::new(Key::name("__kind", "x"))),
            invalid_key,
        ),
        (
            Call::Put(Entity::new(Key::name("Note", "x".repeat(1501)))),
            invalid_key,
        ),
        (
            Call::Put(Entity::new(Key {
                namespace: String::new(),
                path: Vec::new(),
            })),
            invalid_key,
        ),
        (Call::Get(Key::id("Note", 0)), invalid_key),
        // A get checks its key's encoding in place; every rule still holds there.
        (Call::Get(Key::name("__kind", "x")), invalid_key),
        (Call::Get(Key::name("", "x")), invalid_key),
        (Call::Get(Key::name("Note", "x".repeat(1501))), invalid_key),
        (Call::Get(Key::name("Note", "")), invalid_key),
        (
            Call::Get(Key {
                namespace: "n".repeat(1501),
                path: vec![PathElement::id("Note", 1)],
            }),
            invalid_key,
        ),
        (
            Call::Get(Key {
                namespace: String::new(),
                path: vec![PathElement::id("Note", 1); 101],
            }),
            invalid_key,
        ),
        (
            Call::Get(Key {
                namespace: String::new(),
                path: Vec::new(),
            }),
            invalid_key,
        ),
        (
            Call::GetMany(vec![Key::id("Note", 1), Key::id("Note", 0)]),
            invalid_key,
        ),
        (Call::Delete(Key::name("Note", "")), invalid_key),
        // Properties and values.
        (Call::Put(note(&[("", Value::Int(1))])), invalid_entity),
        (Call::Put(note(&[("$x", Value::Int(1))])), invalid_entity),
        (Call::Put(note(&[("__x", Value::Int(1))])), invalid_entity),
        (
            Call::Put(note(&[("s", Value::String("x".repeat(1501)))])),
            invalid_entity,
        ),
        (
            Call::Put(note(&[("b", Value::Bytes(vec![1; 1501]))])),
            invalid_entity,
        ),
        (
            Call::Put(note(&[("a", Value::Array(vec![Value::Array(vec![])]))])),
            invalid_entity,
        ),
        (
            Call::Put(note(&[("t", Value::Timestamp(i64::MAX))])),
            invalid_entity,
        ),
        (
            Call::Put(note(&[("k", Value::Key(Key::id("Note", 0)))])),
            invalid_entity,
        ),
        (
            Call::Put(note(&[("e", Value::Entity(embedded))])),
            invalid_entity,
        ),
        (Call::Put(big), invalid_entity),
        // A batch with one bad entity writes nothing.
        (
            Call::PutMany(vec![
                note(&[("n", Value::Int(1))]),
                Entity::new(Key::id("Note", 0)),
            ]),
            invalid_key,
        ),
        // Declared kinds.
        (Call::Put(Entity::new(account("a"))), invalid_entity),
        (
            Call::Put(owned(&[("owner", Value::Int(1))])),
            invalid_entity,
        ),
        (
            Call::Put(owned(&[("balance", Value::Float(1.0))])),
            invalid_entity,
        ),
        (
            Call::Put(owned(&[("balance", Value::Int(-1))])),
            invalid_entity,
        ),
        (Call::Put(owned(&[("colour", Value::Null)])), invalid_entity),
        (
            Call::Put(owned(&[("tags", Value::String("x".into()))])),
            invalid_entity,
        ),
        // Queries.
        (
            Call::Query(query(
                "Account",
                vec![filter("colour", Op::Eq, Value::Null)],
                &[],
            )),
            invalid_query,
        ),
        (
            Call::Query(query(
                "Account",
                vec![filter("note", Op::Eq, Value::Null)],
                &[],
            )),
            invalid_query,
        ),
        (
            Call::Query(query(
                "Note",
                vec![
                    filter("a", Op::Gt, Value::Int(1)),
                    filter("b", Op::Lt, Value::Int(1)),
                ],
                &[],
            )),
            invalid_query,
        ),
        (
            Call::Query(query("Note", vec![filter("a", Op::In, Value::Int(1))], &[])),
            invalid_query,
        ),
        (
            Call::Query(query(
                "Note",
                vec![filter("a", Op::Eq, Value::Array(vec![]))],
                &[],
            )),
            invalid_query,
        ),
        (
            Call::Query(query("Note", vec![], &["a", "b"])),
            invalid_query,
        ),
        (
            Call::Query(Query {
                start: Some("not-a-cursor".into()),
                ..query("Note", vec![], &[])
            }),
            invalid_query,
        ),
        (
            Call::Query(Query {
                ancestor: Some(Key::id("Note", 1).in_namespace("other")),
                ..query("Note", vec![], &[])
            }),
            invalid_query,
        ),
        // Ids.
        (Call::Allocate("Order", 0), invalid_argument),
        (Call::Allocate("", 1), invalid_key),
        (Call::Allocate("Order", u64::MAX), invalid_argument),
        // The business operations: refused, and nothing written.
        (Call::Transfer(account("a"), account("b"), 6), refused),
        (Call::Transfer(account("a"), account("a"), 1), refused),
        (Call::Transfer(account("a"), account("b"), 0), refused),
        (Call::Transfer(account("a"), account("b"), -5), refused),
        (
            Call::Transfer(account("a"), account("nobody"), 1),
            not_found,
        ),
        (
            Call::Transfer(Key::name("Note", "x"), account("b"), 1),
            invalid_key,
        ),
        (Call::Deposit(account("nobody"), 1), not_found),
        (Call::Deposit(account("a"), -6), refused),
        (Call::Deposit(account("a"), i64::MAX), refused),
        (
            Call::Deposit(account("a").child(PathElement::name("Account", "sub")), 1),
            not_found,
        ),
        (Call::Operation("mint", serde_json::json!({})), not_found),
        (
            Call::Operation("deposit", serde_json::json!({ "account": 1 })),
            invalid_argument,
        ),
        (
            Call::Operation("transfer", serde_json::json!({ "source": "Account:a" })),
            invalid_argument,
        ),
    ]
}

fn run_ds(db: &ds::Datastore, call: &Call) -> Result<(), Error> {
    match call.clone() {
        Call::Put(e) => db.put(&e).map(drop),
        Call::PutMany(es) => db.put_many(&es).map(drop),
        Call::Get(k) => db.get(&k).map(drop),
        Call::GetMany(ks) => db.get_many(&ks).map(drop),
        Call::Delete(k) => db.delete(&k),
        Call::Query(q) => db.query(&q).map(drop),
        Call::Allocate(kind, n) => db.allocate_ids("", kind, n).map(drop),
        Call::Deposit(k, n) => db.deposit(&k, n).map(drop),
        Call::Transfer(a, b, n) => db.transfer(&a, &b, n).map(drop),
        Call::Operation(name, input) => db.call(name, &input).map(drop),
    }
}

async fn run_ads(db: &ads::Datastore, call: &Call) -> Result<(), Error> {
    match call.clone() {
        Call::Put(e) => db.put(&e).await.map(drop),
        Call::PutMany(es) => db.put_many(&es).await.map(drop),
        Call::Get(k) => db.get(&k).await.map(drop),
        Call::GetMany(ks) => db.get_many(&ks).await.map(drop),
        Call::Delete(k) => db.delete(&k).await,
        Call::Query(q) => db.query(&q).await.map(drop),
        Call::Allocate(kind, n) => db.allocate_ids("", kind, n).await.map(drop),
        Call::Deposit(k, n) => db.deposit(&k, n).await.map(drop),
        Call::Transfer(a, b, n) => db.transfer(&a, &b, n).await.map(drop),
        Call::Operation(name, input) => db.call(name, &input).await.map(drop),
    }
}

fn contents(store: &SqliteStore) -> Vec<Entry> {
    store::scan_all(store).unwrap()
}

#[test]
fn hostile_library_calls_are_typed_errors_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = Arc::new(SqliteStore::open(dir.path().join("ds.db")).unwrap());
    let db = ds::Datastore::builder()
        .store(sqlite.clone())
        .build()
        .unwrap();
    db.put_many(&[
        Entity::new(Key::name("Note", "keep")).with("v", Value::Int(1)),
        Entity::new(account("a"))
            .with("owner", Value::String("x".into()))
            .with("balance", Value::Int(5)),
        Entity::new(account("b")).with("owner", Value::String("y".into())),
    ])
    .unwrap();
    let before = contents(&sqlite);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let adb = runtime
        .block_on(
            ads::Datastore::builder()
                .store(Arc::new(Offload(sqlite.clone())))
                .build(),
        )
        .unwrap();
    let cases = cases();
    assert!(cases.len() >= 45, "the corpus lost cases");
    for (call, expected) in &cases {
        let sync = run_ds(&db, call);
        assert!(sync.as_ref().is_err_and(expected), "ds {call:?}: {sync:?}");
        assert!(contents(&sqlite) == before, "ds {call:?} changed the store");
        let asynchronous = runtime.block_on(run_ads(&adb, call));
        assert!(
            asynchronous.as_ref().is_err_and(expected),
            "ads {call:?}: {asynchronous:?}"
        );
        assert!(
            contents(&sqlite) == before,
            "ads {call:?} changed the store"
        );
        // Both hosts say the same.
        assert_eq!(format!("{sync:?}"), format!("{asynchronous:?}"), "{call:?}");
    }
    assert!(db.check().unwrap().problems.is_empty());
}
