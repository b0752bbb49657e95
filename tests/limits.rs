//! Cloud Datastore's limits, through both hosts and over HTTP: at most 1,000 keys per batch,
//! 30 values per `IN`, a query `limit` of 1 to 1,000, 20,000 index rows per entity, and a
//! batch too large for the model's memory refused as bad input before it runs. Each is a
//! clear error naming the limit, and writes nothing.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
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

/// Over HTTP the same limits are 400s, where `limit` 0 and 4,294,967,295 used to be served.
#[test]
fn http_answers_400_naming_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(ds_tests::binary("ads"))
        .args(["--store", "memory:", "serve", "--listen", "127.0.0.1:0"])
        .env("DS_CACHE_DIR", dir.path().join("cache"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let announced: serde_json::Value = serde_json::from_str(&line).unwrap();
    let address = announced["listening"].as_str().unwrap().to_string();
    let keys: Vec<String> = (1..=1001).map(|i| format!("Item:{i}")).collect();
    let in_values: Vec<String> = (0..31).map(|i| i.to_string()).collect();
    for (path, body, says) in [
        (
            "/v1/query",
            r#"{"kind": "Item", "limit": 0}"#.to_string(),
            "limit 0",
        ),
        (
            "/v1/query",
            r#"{"kind": "Item", "limit": 4294967295}"#.to_string(),
            "limit 4294967295",
        ),
        (
            "/v1/query",
            format!(
                r#"{{"kind": "Item", "filters": ["n IN [{}]"]}}"#,
                in_values.join(",")
            ),
            "at most 30 values",
        ),
        (
            "/v1/batch-get",
            serde_json::json!({ "keys": keys }).to_string(),
            "at most 1000 keys",
        ),
    ] {
        let out = Command::new("curl")
            .args([
                "-sS",
                "-w",
                "\n%{http_code}",
                "-H",
                "content-type: application/json",
            ])
            .args(["--data-binary", &body])
            .arg(format!("http://{address}{path}"))
            .output()
            .unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        let (answer, status) = text.rsplit_once('\n').unwrap();
        assert_eq!(status, "400", "{path} {body:.60}: {answer}");
        assert!(answer.contains(says), "{path}: {answer}");
    }
    let _ = child.kill();
    let _ = child.wait();
}
