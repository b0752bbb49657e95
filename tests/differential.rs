//! The same operations (puts, gets, deletes, queries, the example's transactions, id
//! allocation) through `ds` and `ads`, over the memory, SQLite and PostgreSQL stores
//! (PostgreSQL when a server answers; always under `CI=true`), give the
//! same results and leave the same key-value contents, byte for byte (versions included),
//! with warm instances and with a fresh instance per call. Over a 3-member etcd cluster (when
//! etcd is installed; always under `CI=true`) the same holds, versions compared by rank.

use std::sync::Arc;

use ds_model::query::{Filter, Order};
use ds_model::{Entity, Key, Query};
use std::sync::OnceLock;

use ds_tests::{PostgresSchema, postgres_server};
use host_core::Isolation;
use host_core::store::{
    self, Entry, MemoryStore, Offload, SqliteStore, Store, StoreUrl, open_blocking,
};

static POSTGRES: OnceLock<Option<String>> = OnceLock::new();
static POSTGRES_TLS: OnceLock<Option<ds_tests::TlsServers>> = OnceLock::new();

/// A PostgreSQL server for the runs: its store URL and where plain tokio-postgres connects
/// to drop a test's schema.
#[derive(Clone, Copy)]
struct Server<'a> {
    url: &'a str,
    admin: &'a str,
}
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Put(Key, String),
    Get(Key),
    Delete(Key),
    Query(Query),
    Deposit(Key, i64),
    Transfer(Key, Key, i64),
    Allocate(String, u64),
}

fn arb_key() -> impl Strategy<Value = Key> {
    prop_oneof![
        (1u64..4).prop_map(|id| Key::id("Item", id)),
        "[ab]{1,2}".prop_map(|name| Key::name("Item", name)),
        (1u64..3)
            .prop_map(|id| Key::name("Item", "a").child(ds_model::PathElement::id("Part", id))),
        Just(Key::id("Item", 0)), // invalid: id 0
    ]
}

fn arb_account() -> impl Strategy<Value = Key> {
    prop::sample::select(vec!["alice", "bob", "carol"]).prop_map(|name| Key::name("Account", name))
}

fn arb_properties() -> impl Strategy<Value = String> {
    prop_oneof![
        (0i32..4, "[a-c]{0,2}").prop_map(|(n, s)| format!(r#"{{"n":{n},"s":"{s}"}}"#)),
        (0i32..4, 0i32..4).prop_map(|(a, b)| format!(
            r#"{{"n":[{a},{b}],"t":{{"$timestamp":"2024-01-0{}T00:00:00Z"}}}}"#,
            a + 1
        )),
        Just("{}".to_string()),
        Just(r#"{"__reserved":1}"#.to_string()), // invalid property name
        Just(r#"{"nested":{"a":[1,2,{"b":null}]},"u":{"$unindexed":"x"}}"#.to_string()),
    ]
}

fn arb_account_properties() -> impl Strategy<Value = String> {
    prop_oneof![
        (prop::sample::select(vec!["A", "B"]), 0i64..50)
            .prop_map(|(owner, balance)| format!(r#"{{"owner":"{owner}","balance":{balance}}}"#)),
        Just(r#"{"owner":"A","balance":-1}"#.to_string()), // invalid: negative balance
        Just(r#"{"balance":1}"#.to_string()),              // invalid: no owner
    ]
}

fn arb_query() -> impl Strategy<Value = Query> {
    let filter = |text: String| Filter::parse(&text).unwrap();
    prop_oneof![
        (0i32..4, any::<bool>(), 1u32..4).prop_map(move |(n, keys_only, limit)| Query {
            kind: Some("Item".into()),
            filters: vec![filter(format!("n = {n}"))],
            keys_only,
            limit: Some(limit),
            ..Query::default()
        }),
        (0i32..4, prop::bool::ANY).prop_map(move |(n, desc)| Query {
            kind: Some("Item".into()),
            filters: vec![filter(format!("n >= {n}"))],
            orders: vec![Order::parse(if desc { "-n" } else { "n" }).unwrap()],
            ..Query::default()
        }),
        Just(Query {
            kind: Some("Part".into()),
            ancestor: Some(Key::name("Item", "a")),
            ..Query::default()
        }),
        prop::sample::select(vec!["A", "B"]).prop_map(move |owner| Query {
            kind: Some("Account".into()),
            filters: vec![filter(format!(r#"owner = "{owner}""#))],
            orders: vec![Order::parse("-balance").unwrap()],
            ..Query::default()
        }),
        // Not served by any index: the same error everywhere.
        Just(Query {
            kind: Some("Item".into()),
            filters: vec![filter("n = 1".into())],
            orders: vec![Order::parse("s").unwrap()],
            ..Query::default()
        }),
    ]
}

fn arb_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (arb_key(), arb_properties()).prop_map(|(k, p)| Op::Put(k, p)),
        2 => (arb_account(), arb_account_properties()).prop_map(|(k, p)| Op::Put(k, p)),
        2 => prop_oneof![arb_key(), arb_account()].prop_map(Op::Get),
        1 => arb_key().prop_map(Op::Delete),
        2 => arb_query().prop_map(Op::Query),
        1 => (arb_account(), -20i64..20).prop_map(|(k, n)| Op::Deposit(k, n)),
        2 => (arb_account(), arb_account(), -5i64..30).prop_map(|(a, b, n)| Op::Transfer(a, b, n)),
        1 => (prop::sample::select(vec!["Item", "Order", ""]), 1u64..5)
            .prop_map(|(kind, n)| Op::Allocate(kind.to_string(), n)),
    ]
}

fn entity(key: &Key, properties: &str) -> Result<Entity, host_core::Error> {
    Entity::from_json(key.clone(), properties).map_err(host_core::Error::from)
}

fn run_blocking(db: &ds::Datastore, ops: &[Op]) -> Vec<String> {
    ops.iter()
        .map(|op| match op {
            Op::Put(key, props) => format!("{:?}", entity(key, props).and_then(|e| db.put(&e))),
            Op::Get(key) => format!("{:?}", db.get(key)),
            Op::Delete(key) => format!("{:?}", db.delete(key)),
            Op::Query(query) => format!("{:?}", db.query(query)),
            Op::Deposit(key, n) => format!("{:?}", db.deposit(key, *n)),
            Op::Transfer(a, b, n) => format!("{:?}", db.transfer(a, b, *n)),
            Op::Allocate(kind, n) => format!("{:?}", db.allocate_ids("", kind, *n)),
        })
        .collect()
}

async fn run_async(db: &ads::Datastore, ops: &[Op]) -> Vec<String> {
    let mut out = Vec::new();
    for op in ops {
        out.push(match op {
            Op::Put(key, props) => match entity(key, props) {
                Ok(e) => format!("{:?}", db.put(&e).await),
                Err(err) => format!("{:?}", Err::<Key, _>(err)),
            },
            Op::Get(key) => format!("{:?}", db.get(key).await),
            Op::Delete(key) => format!("{:?}", db.delete(key).await),
            Op::Query(query) => format!("{:?}", db.query(query).await),
            Op::Deposit(key, n) => format!("{:?}", db.deposit(key, *n).await),
            Op::Transfer(a, b, n) => format!("{:?}", db.transfer(a, b, *n).await),
            Op::Allocate(kind, n) => format!("{:?}", db.allocate_ids("", kind, *n).await),
        });
    }
    out
}

fn contents(store: &dyn Store) -> Vec<Entry> {
    store::scan_all(store).expect("scan the store")
}

/// Runs `ops` through every host × store × isolation; returns (label, results, contents).
fn run_everywhere(ops: &[Op], postgres: Option<Server>) -> Vec<(String, Vec<String>, Vec<Entry>)> {
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
            let schema = PostgresSchema::on(server.url, server.admin);
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

            let schema = PostgresSchema::on(server.url, server.admin);
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
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn every_host_store_and_isolation_agrees(ops in proptest::collection::vec(arb_op(), 1..32)) {
        let server = POSTGRES.get_or_init(postgres_server).as_deref();
        let runs = run_everywhere(&ops, server.map(|url| Server { url, admin: url }));
        let (first, results, contents) = &runs[0];
        for (label, other_results, other_contents) in &runs[1..] {
            prop_assert_eq!(other_results, results, "{} vs {}: results", label, first);
            prop_assert_eq!(other_contents, contents, "{} vs {}: store contents", label, first);
        }
    }
}

proptest! {
    // Fewer cases: the point is the transport under TLS, which the cases above cover in
    // depth over plain TCP.
    #![proptest_config(ProptestConfig { cases: 6, ..ProptestConfig::default() })]

    #[test]
    fn every_host_agrees_over_tls(ops in proptest::collection::vec(arb_op(), 1..32)) {
        let Some(servers) = POSTGRES_TLS.get_or_init(ds_tests::postgres_tls) else {
            return Ok(());
        };
        let (url, admin) = (servers.verified(), servers.admin());
        let runs = run_everywhere(&ops, Some(Server { url: &url, admin: &admin }));
        let (first, results, contents) = &runs[0];
        for (label, other_results, other_contents) in &runs[1..] {
            prop_assert_eq!(other_results, results, "{} vs {}: results", label, first);
            prop_assert_eq!(other_contents, contents, "{} vs {}: store contents", label, first);
        }
    }
}

/// A store's contents with each version replaced by its rank among the contents' versions:
/// etcd's versions are the cluster's revisions (shared by every prefix, and bumped by the
/// store's own format record), so only their order can match another store's.
fn ranked(contents: &[Entry]) -> Vec<Entry> {
    let mut versions: Vec<u64> = contents.iter().map(|e| e.value.version).collect();
    versions.sort_unstable();
    versions.dedup();
    contents
        .iter()
        .map(|e| {
            let mut e = e.clone();
            e.value.version = versions.partition_point(|v| *v < e.value.version) as u64;
            e
        })
        .collect()
}

/// The same operations through `ds` and `ads` over a 3-member etcd cluster, warm and with a
/// fresh instance per call, give the memory store's results and contents (versions compared
/// by rank). One cluster serves every case, each run under a prefix of its own.
#[test]
fn every_host_agrees_on_etcd() {
    let Some(cluster) = ds_tests::EtcdCluster::start(3) else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let prefix = std::sync::atomic::AtomicUsize::new(0);
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 8,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    runner
        .run(&proptest::collection::vec(arb_op(), 1..32), |ops| {
            let memory = Arc::new(MemoryStore::new());
            let db = ds::Datastore::builder()
                .store(memory.clone())
                .build()
                .unwrap();
            let expected = run_blocking(&db, &ops);
            let expected_contents = ranked(&contents(memory.as_ref()));
            for isolation in [Isolation::Warm, Isolation::PerCall] {
                for host in ["ds", "ads"] {
                    let n = prefix.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let url = cluster.url(&format!("differential/{n}"));
                    let results = if host == "ds" {
                        let db = ds::Datastore::builder()
                            .store_url(&url)
                            .isolation(isolation)
                            .build()
                            .unwrap();
                        run_blocking(&db, &ops)
                    } else {
                        runtime.block_on(async {
                            let db = ads::Datastore::builder()
                                .store_url(&url)
                                .isolation(isolation)
                                .build()
                                .await
                                .unwrap();
                            run_async(&db, &ops).await
                        })
                    };
                    let store = open_blocking(&url.parse().unwrap()).unwrap();
                    let label = format!("{host}/etcd/{isolation:?}");
                    prop_assert_eq!(&results, &expected, "{} vs ds/memory: results", label);
                    prop_assert_eq!(
                        ranked(&contents(store.as_ref())),
                        expected_contents.clone(),
                        "{} vs ds/memory: store contents",
                        label
                    );
                }
            }
            Ok(())
        })
        .unwrap();
}
