//! The same operations through `ds` and `ads`, over the memory, SQLite and PostgreSQL stores
//! (PostgreSQL when a server answers; always under `CI=true`), give the
//! same results and leave the same key-value contents, byte for byte (versions included),
//! with warm instances and with a fresh instance per call.

use std::sync::Arc;

use ds_model::{Entity, Key};
use std::sync::OnceLock;

use ds_tests::{PostgresSchema, postgres_server};
use host_core::Isolation;
use host_core::store::{
    self, Entry, MemoryStore, Offload, SqliteStore, Store, StoreUrl, open_blocking,
};

static POSTGRES: OnceLock<Option<String>> = OnceLock::new();
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
        Just(Key::name("Item", "a").child(ds_model::PathElement::id("Part", 1))),
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
        Ok(serde_json::Value::Object(properties)) => Entity {
            key: key.clone(),
            properties,
        },
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

/// Runs `ops` through every host × store × isolation; returns (label, results, contents).
fn run_everywhere(ops: &[Op], postgres: Option<&str>) -> Vec<(String, Vec<String>, Vec<Entry>)> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut runs = Vec::new();
    for isolation in [Isolation::Warm, Isolation::PerCall] {
        let memory = Arc::new(MemoryStore::new());
        let db = ds::Datastore::builder()
            .store(memory.clone())
            .isolation(isolation)
            .build()
            .unwrap();
        runs.push((
            format!("ds/memory/{isolation:?}"),
            run_blocking(&db, ops),
            contents(memory.as_ref()),
        ));

        let sqlite =
            Arc::new(SqliteStore::open(dir.path().join(format!("ds-{isolation:?}.db"))).unwrap());
        let db = ds::Datastore::builder()
            .store(sqlite.clone())
            .isolation(isolation)
            .build()
            .unwrap();
        runs.push((
            format!("ds/sqlite/{isolation:?}"),
            run_blocking(&db, ops),
            contents(sqlite.as_ref()),
        ));

        let memory = Arc::new(MemoryStore::new());
        let results = runtime.block_on(async {
            let db = ads::Datastore::builder()
                .store(memory.clone())
                .isolation(isolation)
                .build()
                .await
                .unwrap();
            run_async(&db, ops).await
        });
        runs.push((
            format!("ads/memory/{isolation:?}"),
            results,
            contents(memory.as_ref()),
        ));

        let sqlite =
            Arc::new(SqliteStore::open(dir.path().join(format!("ads-{isolation:?}.db"))).unwrap());
        let results = runtime.block_on(async {
            let store = Arc::new(Offload(sqlite.clone()));
            let db = ads::Datastore::builder()
                .store(store)
                .isolation(isolation)
                .build()
                .await
                .unwrap();
            run_async(&db, ops).await
        });
        runs.push((
            format!("ads/sqlite/{isolation:?}"),
            results,
            contents(sqlite.as_ref()),
        ));

        if let Some(server) = postgres {
            let schema = PostgresSchema::new(server);
            let url: StoreUrl = schema.url().parse().unwrap();
            let store = open_blocking(&url).unwrap();
            let db = ds::Datastore::builder()
                .store(store.clone())
                .isolation(isolation)
                .build()
                .unwrap();
            runs.push((
                format!("ds/postgres/{isolation:?}"),
                run_blocking(&db, ops),
                contents(store.as_ref()),
            ));

            let schema = PostgresSchema::new(server);
            let url: StoreUrl = schema.url().parse().unwrap();
            let results = runtime.block_on(async {
                let db = ads::Datastore::builder()
                    .store_url(&schema.url())
                    .isolation(isolation)
                    .build()
                    .await
                    .unwrap();
                run_async(&db, ops).await
            });
            // Read back through a blocking store on the same schema.
            let store = open_blocking(&url).unwrap();
            runs.push((
                format!("ads/postgres/{isolation:?}"),
                results,
                contents(store.as_ref()),
            ));
        }
    }
    runs
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn every_host_store_and_isolation_agrees(ops in proptest::collection::vec(arb_op(), 1..24)) {
        let runs = run_everywhere(&ops, POSTGRES.get_or_init(postgres_server).as_deref());
        let (first, results, contents) = &runs[0];
        for (label, other_results, other_contents) in &runs[1..] {
            prop_assert_eq!(other_results, results, "{} vs {}: results", label, first);
            prop_assert_eq!(other_contents, contents, "{} vs {}: store contents", label, first);
        }
    }
}
