//! The same operations through `ds` and `ads`, over the memory and SQLite stores, give the
//! same results and leave the same key-value contents, byte for byte (versions included).

use std::sync::Arc;

use ds_guest::{Entity, Key};
use host_core::store::{self, Entry, MemoryStore, Offload, SqliteStore, Store};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Put(Key, String),
    Get(Key),
    Delete(Key),
}

fn arb_key() -> impl Strategy<Value = Key> {
    prop_oneof![
        (1u64..4).prop_map(|id| Key::id("Item", id)),
        "[ab]{1,2}".prop_map(|name| Key::name("Item", name)),
        Just(Key::name("Item", "a").child(ds_guest::PathElement::id("Part", 1))),
        Just(Key::id("Item", 0)), // invalid: id 0
    ]
}

fn arb_properties() -> impl Strategy<Value = String> {
    prop_oneof![
        (any::<i32>(), "[a-z]{0,3}").prop_map(|(n, s)| format!(r#"{{"n":{n},"s":"{s}"}}"#)),
        Just("{}".to_string()),
        Just(r#"{"__reserved":1}"#.to_string()), // invalid property name
        Just(r#"{"nested":{"a":[1,2,{"b":null}]}}"#.to_string()),
    ]
}

fn arb_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (arb_key(), arb_properties()).prop_map(|(k, p)| Op::Put(k, p)),
        2 => arb_key().prop_map(Op::Get),
        1 => arb_key().prop_map(Op::Delete),
    ]
}

fn entity(key: &Key, properties: &str) -> Entity {
    match serde_json::from_str(properties) {
        Ok(serde_json::Value::Object(properties)) => Entity { key: key.clone(), properties },
        _ => unreachable!("the strategy generates JSON objects"),
    }
}

fn run_blocking(db: &ds::Datastore, ops: &[Op]) -> Vec<String> {
    ops.iter()
        .map(|op| match op {
            Op::Put(key, props) => format!("{:?}", db.put(&entity(key, props))),
            Op::Get(key) => format!("{:?}", db.get(key)),
            Op::Delete(key) => format!("{:?}", db.delete(key)),
        })
        .collect()
}

async fn run_async(db: &ads::Datastore, ops: &[Op]) -> Vec<String> {
    let mut out = Vec::new();
    for op in ops {
        out.push(match op {
            Op::Put(key, props) => format!("{:?}", db.put(&entity(key, props)).await),
            Op::Get(key) => format!("{:?}", db.get(key).await),
            Op::Delete(key) => format!("{:?}", db.delete(key).await),
        });
    }
    out
}

fn contents(store: &dyn Store) -> Vec<Entry> {
    store::scan_all(store).expect("scan the store")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn both_hosts_and_both_stores_agree(ops in proptest::collection::vec(arb_op(), 1..24)) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let dir = tempfile::tempdir().unwrap();

        let memory_sync = Arc::new(MemoryStore::new());
        let db = ds::Datastore::builder().store(memory_sync.clone()).build().unwrap();
        let expected = run_blocking(&db, &ops);
        let expected_contents = contents(memory_sync.as_ref());

        let sqlite_sync = Arc::new(SqliteStore::open(dir.path().join("sync.db")).unwrap());
        let db = ds::Datastore::builder().store(sqlite_sync.clone()).build().unwrap();
        prop_assert_eq!(&run_blocking(&db, &ops), &expected, "ds over sqlite");
        prop_assert_eq!(&contents(sqlite_sync.as_ref()), &expected_contents, "ds over sqlite: contents");

        let memory_async = Arc::new(MemoryStore::new());
        let sqlite_async = Arc::new(SqliteStore::open(dir.path().join("async.db")).unwrap());
        let (memory_results, sqlite_results) = runtime.block_on(async {
            let db = ads::Datastore::builder().store(memory_async.clone()).build().await.unwrap();
            let memory_results = run_async(&db, &ops).await;
            let db = ads::Datastore::builder().store(Arc::new(Offload(sqlite_async.clone()))).build().await.unwrap();
            (memory_results, run_async(&db, &ops).await)
        });
        prop_assert_eq!(&memory_results, &expected, "ads over memory");
        prop_assert_eq!(&contents(memory_async.as_ref()), &expected_contents, "ads over memory: contents");
        prop_assert_eq!(&sqlite_results, &expected, "ads over sqlite");
        prop_assert_eq!(&contents(sqlite_async.as_ref()), &expected_contents, "ads over sqlite: contents");
    }
}
