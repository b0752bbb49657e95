//! What users of datastore tools expect (issue 28), through both hosts over every store:
//! metadata queries (`__namespace__`, `__kind__`, `__property__`), counts from the indexes,
//! versions and conditional writes, deletes that say what was there, delete by query, and
//! the component's declared schema. Written once over [`Face`], run by `ds` and by `ads`;
//! every host and store gives the same transcript.

use host_core::face::{self, Face};
use host_core::mode::complete;
use host_core::{Condition, Entity, Error, Filter, Key, Query};

fn key(text: &str) -> Key {
    text.parse().unwrap()
}

fn entity(key_text: &str, json: &str) -> Entity {
    Entity::from_json(key(key_text), json).unwrap()
}

fn kind_query(kind: &str) -> Query {
    Query {
        kind: Some(kind.into()),
        ..Query::default()
    }
}

/// Every result of `query`, page by page: keys and properties as text.
async fn listing(db: &impl Face, mut query: Query) -> Vec<String> {
    let mut out = Vec::new();
    loop {
        let page = db.query(&query).await.unwrap();
        for (i, key) in page.keys.iter().enumerate() {
            match page.entities.get(i) {
                Some(entity) => out.push(format!("{key} {}", entity.properties_json())),
                None => out.push(key.to_string()),
            }
        }
        match page.next_cursor {
            Some(cursor) => query.start = Some(cursor),
            None => return out,
        }
    }
}

/// The whole exercise on one datastore; returns its transcript (no raw versions: etcd's
/// are cluster-wide revisions, so only their order is compared).
async fn exercise(db: &impl Face) -> Vec<String> {
    let mut transcript = Vec::new();
    let mut log = |line: String| transcript.push(line);
    db.put_many(&[
        entity("Account:a", r#"{"owner": "x", "balance": 10}"#),
        entity("Account:b", r#"{"owner": "y", "balance": 20}"#),
        entity("Thing:1", r#"{"p": 1, "q": "s"}"#),
        entity("Thing:2", r#"{"p": "t"}"#),
        entity("Thing:3", r#"{"p": true}"#),
        entity("ns1@Other:1", r#"{"z": null}"#),
    ])
    .await
    .unwrap();

    // Metadata, as Datastore's queries give it.
    for (kind, namespace) in [
        ("__namespace__", ""),
        ("__kind__", ""),
        ("__kind__", "ns1"),
        ("__property__", ""),
    ] {
        let query = Query {
            namespace: namespace.into(),
            ..kind_query(kind)
        };
        log(format!(
            "{kind}@{namespace}: {:?}",
            listing(db, query).await
        ));
    }

    // Counts: all, filtered, bounded; a float against an int64 is refused.
    let balance_over_10 = Query {
        filters: vec![Filter::parse("balance > 10").unwrap()],
        ..kind_query("Account")
    };
    let bounded = Query {
        limit: Some(2),
        ..kind_query("Thing")
    };
    for query in [kind_query("Account"), balance_over_10, bounded] {
        log(format!(
            "count {query:?}: {}",
            db.count(&query).await.unwrap()
        ));
    }
    let float = Query {
        filters: vec![Filter::parse("balance > 1.5").unwrap()],
        ..kind_query("Account")
    };
    match db.count(&float).await {
        Err(Error::InvalidQuery(message)) => assert!(message.contains("declared int64")),
        other => panic!("a float filter on an int64: {other:?}"),
    }

    // Versions and conditional writes.
    let (a, missing) = (key("Account:a"), key("Account:missing"));
    let read = db
        .get_versioned(&[a.clone(), missing.clone()])
        .await
        .unwrap();
    assert!(read[1].is_none());
    let first = read[0].clone().unwrap();
    log(format!("read {}", first.entity.properties_json()));
    let changed = entity("Account:a", r#"{"owner": "x", "balance": 11}"#);
    let second = db
        .put_if(&[(changed.clone(), Condition::Version(first.version))])
        .await
        .unwrap();
    assert!(second > first.version, "{second} > {}", first.version);
    let stale = db
        .put_if(&[(changed.clone(), Condition::Version(first.version))])
        .await;
    let created = db.put_if(&[(changed.clone(), Condition::Absent)]).await;
    let replaced = db
        .put_if(&[(
            entity("Account:missing", r#"{"owner": "z"}"#),
            Condition::Present,
        )])
        .await;
    for (what, result) in [("stale", stale), ("create", created), ("replace", replaced)] {
        match result {
            Err(Error::FailedPrecondition(message)) => {
                assert!(message.contains("Account:"), "{what}: {message}");
                log(format!("{what}: refused"));
            }
            other => panic!("{what}: {other:?}"),
        }
    }
    let now = db.get_versioned(std::slice::from_ref(&a)).await.unwrap();
    assert_eq!(now[0].as_ref().map(|v| v.version), Some(second));
    log(format!(
        "after: {}",
        now[0].as_ref().unwrap().entity.properties_json()
    ));
    // A delete names what was there; a stale delete deletes nothing.
    assert!(matches!(
        db.delete_if(&[(a.clone(), Condition::Version(first.version))])
            .await,
        Err(Error::FailedPrecondition(_))
    ));
    let existed = db
        .delete_if(&[
            (a.clone(), Condition::Version(second)),
            (missing, Condition::Any),
        ])
        .await
        .unwrap();
    log(format!("deleted {existed:?}"));

    // Delete by query: a dry run counts, the real one deletes in batches.
    let things = kind_query("Thing");
    let dry = face::delete_by_query(db, &things, true).await.unwrap();
    let done = face::delete_by_query(db, &things, false).await.unwrap();
    log(format!("delete-by-query: {dry:?} then {done:?}"));
    log(format!("things left: {}", db.count(&things).await.unwrap()));

    // The declared schema.
    let schema = db.schema().await.unwrap();
    log(format!(
        "declared: {:?}",
        host_core::answer::declared_kinds(&schema)
    ));
    log(format!(
        "indexes: {:?}",
        host_core::answer::index_rows(&schema)
    ));
    let report = db.check().await.unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    transcript
}

/// The transcript every host and store must give.
fn expected() -> Vec<String> {
    let text = r#"__namespace__@: ["__namespace__:1 {}", "__namespace__:ns1 {}"]
__kind__@: ["__kind__:Account {}", "__kind__:Thing {}"]
__kind__@ns1: ["ns1@__kind__:Other {}"]
__property__@: ["__kind__:Account/__property__:balance {\"property_representation\":[\"int64\"]}", "__kind__:Account/__property__:owner {\"property_representation\":[\"string\"]}", "__kind__:Account/__property__:transfers_out {\"property_representation\":[\"int64\"]}", "__kind__:Thing/__property__:p {\"property_representation\":[\"bool\",\"int64\",\"string\"]}", "__kind__:Thing/__property__:q {\"property_representation\":[\"string\"]}"]"#;
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    lines.extend([
        r#"count Query { namespace: "", kind: Some("Account"), ancestor: None, filters: [], orders: [], limit: None, offset: 0, keys_only: false, start: None, end: None }: 2"#.to_string(),
        r#"count Query { namespace: "", kind: Some("Account"), ancestor: None, filters: [Filter { property: "balance", op: Gt, value: Int(10) }], orders: [], limit: None, offset: 0, keys_only: false, start: None, end: None }: 1"#.to_string(),
        r#"count Query { namespace: "", kind: Some("Thing"), ancestor: None, filters: [], orders: [], limit: Some(2), offset: 0, keys_only: false, start: None, end: None }: 2"#.to_string(),
        r#"read {"balance":10,"owner":"x","tags":[],"transfers_out":0}"#.to_string(),
        "stale: refused".to_string(),
        "create: refused".to_string(),
        "replace: refused".to_string(),
        r#"after: {"balance":11,"owner":"x","tags":[],"transfers_out":0}"#.to_string(),
        "deleted [true, false]".to_string(),
        "delete-by-query: DeletedByQuery { matched: 3, deleted: 0, batches: 0 } then DeletedByQuery { matched: 3, deleted: 3, batches: 1 }".to_string(),
        "things left: 0".to_string(),
        r#"declared: ["Account", "Transfer"]"#.to_string(),
        r#"indexes: [Object {"index": String("owner,-balance"), "kind": String("Account"), "properties": String("owner, balance")}]"#.to_string(),
    ]);
    lines
}

/// Runs the exercise through `ds` and `ads`, each over its own empty store.
fn both_hosts(sync_url: &str, async_url: &str) {
    let db = ds::Datastore::builder()
        .store_url(sync_url)
        .build()
        .unwrap();
    let got = complete(exercise(&db));
    assert_eq!(got, expected(), "ds over {sync_url}");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let got = runtime.block_on(async {
        let db = ads::Datastore::builder()
            .store_url(async_url)
            .build()
            .await
            .unwrap();
        exercise(&db).await
    });
    assert_eq!(got, expected(), "ads over {async_url}");
}

#[test]
fn memory() {
    both_hosts("memory:", "memory:");
}

#[test]
fn sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = |name: &str| format!("sqlite:{}", dir.path().join(name).display());
    both_hosts(&url("ds.db"), &url("ads.db"));
}

#[test]
fn postgres() {
    let Some(server) = ds_tests::postgres_server() else {
        return;
    };
    let (sync_schema, async_schema) = (
        ds_tests::PostgresSchema::new(&server),
        ds_tests::PostgresSchema::new(&server),
    );
    both_hosts(&sync_schema.url(), &async_schema.url());
}

#[test]
fn etcd() {
    let Some(cluster) = ds_tests::EtcdCluster::start(1) else {
        return;
    };
    both_hosts(&cluster.url("ds"), &cluster.url("ads"));
}

/// `create_store(false)`: a store that does not exist is an error, and nothing is made: no
/// SQLite file, no PostgreSQL schema. An existing store opens as before.
#[test]
fn readers_refuse_a_store_that_does_not_exist() {
    let dir = tempfile::tempdir().unwrap();
    let mut urls = vec![format!("sqlite:{}", dir.path().join("typo.db").display())];
    let server = ds_tests::postgres_server();
    let schema = server.as_deref().map(ds_tests::PostgresSchema::new);
    if let Some(schema) = &schema {
        urls.push(schema.url());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    for url in &urls {
        let refused = ds::Datastore::builder()
            .store_url(url)
            .create_store(false)
            .build()
            .err();
        let refused_async = runtime.block_on(
            ads::Datastore::builder()
                .store_url(url)
                .create_store(false)
                .build(),
        );
        for err in [refused, refused_async.err()] {
            match err {
                Some(Error::Store(host_core::store::StoreError::Unavailable(message))) => {
                    assert!(message.contains("no store"), "{url}: {message}")
                }
                other => panic!("{url}: {other:?}"),
            }
        }
    }
    assert!(!dir.path().join("typo.db").exists());
    if let (Some(server), Some(schema)) = (&server, &schema) {
        let exists = runtime.block_on(async {
            let (client, connection) = tokio_postgres::connect(server, tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(connection);
            let row = client
                .query_one(
                    "SELECT count(*) FROM pg_namespace WHERE nspname = $1",
                    &[&schema.name()],
                )
                .await
                .unwrap();
            row.get::<_, i64>(0)
        });
        assert_eq!(exists, 0, "a read created the schema");
    }
    // Once written, the same URLs open for reading.
    for url in &urls {
        ds::Datastore::builder().store_url(url).build().unwrap();
        ds::Datastore::builder()
            .store_url(url)
            .create_store(false)
            .build()
            .unwrap();
    }
}
