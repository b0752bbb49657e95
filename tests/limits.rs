//! Cloud Datastore's limits, through both hosts (over HTTP: `tests/serve.rs`): at most 1,000 keys per batch,
//! 30 values per `IN`, a query `limit` of 1 to 1,000, 20,000 index rows per entity, and a
//! batch too large for the model's memory refused as bad input before it runs. Each is a
//! clear error naming the limit, and writes nothing.

use std::sync::Arc;

use host_core::store::MemoryStore;
use host_core::{Entity, Error, Filter, Key, Query, Value};

/// Every limit through one host; `run` turns a call of `ads` into a blocking one.
macro_rules! check_limits {
    ($host:expr, $db:expr, $wait:expr) => {{
        let db = $db;
        let keys: Vec<Key> = (1..=1001).map(|i| Key::id("Item", i)).collect();
        let entities: Vec<Entity> = keys.iter().map(|k| Entity::new(k.clone())).collect();
        for (op, err) in [
            ("get_many", $wait(db.get_many(&keys)).map(|_| ()).unwrap_err()),
            ("put_many", $wait(db.put_many(&entities)).map(|_| ()).unwrap_err()),
            ("delete_many", $wait(db.delete_many(&keys)).unwrap_err()),
        ] {
            assert!(
                matches!(&err, Error::InvalidArgument(msg) if msg.contains("at most 1000 keys")),
                "{} {op}: {err:?}",
                $host
            );
        }
        let in_values: Vec<Value> = (0..31).map(Value::Int).collect();
        for (query, says) in [
            (
                Query {
                    kind: Some("Item".into()),
                    filters: vec![Filter {
                        property: "n".into(),
                        op: host_core::Op::In,
                        value: Value::Array(in_values),
                    }],
                    ..Query::default()
                },
                "at most 30 values",
            ),
            (
                Query {
                    kind: Some("Item".into()),
                    limit: Some(0),
                    ..Query::default()
                },
                "limit 0 is out of range",
            ),
        ] {
            match $wait(db.query(&query)) {
                Err(Error::InvalidQuery(msg)) => assert!(msg.contains(says), "{}: {msg}", $host),
                other => panic!("{}: {other:?}", $host),
            }
        }
        // 20 entities of 900 KB each: every one fits, the batch does not fit the model.
        let big: Vec<Entity> = (1..=20)
            .map(|i| {
                let mut entity = Entity::new(Key::id("Big", i))
                    .with("text", Value::String("x".repeat(900_000)));
                entity.unindexed.insert("text".into());
                entity
            })
            .collect();
        match $wait(db.put_many(&big)) {
            Err(Error::InvalidArgument(msg)) => {
                assert!(msg.contains("split it"), "{}: {msg}", $host)
            }
            other => panic!("{}: {other:?}", $host),
        }
        let wide = Entity::new(Key::id("Wide", 1))
            .with("n", Value::Array((0..20_000).map(Value::Int).collect()));
        match $wait(db.put(&wide)) {
            Err(Error::InvalidEntity(msg)) => {
                assert!(msg.contains("at most 20000"), "{}: {msg}", $host)
            }
            other => panic!("{}: {other:?}", $host),
        }
        let written = $wait(db.get_many(&[Key::id("Item", 1), Key::id("Big", 1), Key::id("Wide", 1)]))
            .unwrap();
        assert!(written.iter().all(Option::is_none), "{}: {written:?}", $host);
    }};
}

#[test]
fn both_hosts_refuse_what_exceeds_the_limits() {
    let store = Arc::new(MemoryStore::new());
    let db = ds::Datastore::builder()
        .store(store.clone())
        .build()
        .unwrap();
    check_limits!("ds", &db, |r| r);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let db = runtime
        .block_on(ads::Datastore::builder().store(store).build())
        .unwrap();
    check_limits!("ads", &db, |f| runtime.block_on(f));
}
