//! The transport contract, one set of checks run against every store: memory, SQLite,
//! PostgreSQL and etcd, each through its blocking form (what `ds` calls) and its async form (what
//! `ads` calls, driven here by the `BlockOn` adapter).
//!
//! The contract is in `wit/transport.wit`: bytewise order, bounded scans both ways, batched
//! gets in request order, atomic commits with version checks, one winner among concurrent
//! commits on the same version, and versions that only grow.

use std::sync::Arc;

use ds_tests::{PostgresSchema, postgres_server};
use host_core::store::{
    AsyncStore, BlockOn, Check, Direction, KeyRange, MAX_SCAN_LIMIT, MemoryStore, Offload,
    PostgresStore, SqliteStore, Store, StoreError, StoreUrl, Write, open_blocking,
};

fn put(key: &[u8], value: &[u8]) -> Write {
    Write {
        key: key.to_vec(),
        value: Some(value.to_vec()),
    }
}

fn delete(key: &[u8]) -> Write {
    Write {
        key: key.to_vec(),
        value: None,
    }
}

fn check(key: &[u8], version: Option<u64>) -> Check {
    Check {
        key: key.to_vec(),
        version,
    }
}

fn keys(entries: &[host_core::store::Entry]) -> Vec<Vec<u8>> {
    entries.iter().map(|e| e.key.clone()).collect()
}

/// Every contract check, against one empty store.
fn contract(name: &str, store: &dyn Store) {
    gets_and_versions(name, store);
    ordering_and_scans(name, store);
    batched_gets(name, store);
    atomic_commits(name, store);
    odd_values(name, store);
}

fn gets_and_versions(name: &str, store: &dyn Store) {
    assert_eq!(store.get(b"v/a").unwrap(), None, "{name}");
    let v1 = store
        .commit(&[check(b"v/a", None)], &[put(b"v/a", b"1")])
        .unwrap();
    let got = store.get(b"v/a").unwrap().unwrap();
    assert_eq!(
        (got.value.as_slice(), got.version),
        (b"1".as_slice(), v1),
        "{name}"
    );
    let v2 = store
        .commit(&[check(b"v/a", Some(v1))], &[delete(b"v/a")])
        .unwrap();
    assert!(v2 > v1, "{name}: versions grow");
    assert_eq!(store.get(b"v/a").unwrap(), None, "{name}");
    // Deleting an absent key is not an error; re-creating a key never shows an old version.
    let v3 = store
        .commit(&[], &[delete(b"v/a"), put(b"v/a", b"again")])
        .unwrap();
    assert!(v3 > v2, "{name}");
    assert_eq!(store.get(b"v/a").unwrap().unwrap().version, v3, "{name}");
    // Within one commit, the last write to a key wins.
    store
        .commit(&[], &[put(b"v/b", b"first"), put(b"v/b", b"second")])
        .unwrap();
    assert_eq!(
        store.get(b"v/b").unwrap().unwrap().value,
        b"second",
        "{name}"
    );
}

fn ordering_and_scans(name: &str, store: &dyn Store) {
    // Bytewise, unsigned order; a prefix before its extensions; 0x00 and 0xFF inside keys.
    let mut all: Vec<Vec<u8>> = vec![
        b"s/".to_vec(),
        b"s/\x00".to_vec(),
        b"s/\x00\x00".to_vec(),
        b"s/\x01".to_vec(),
        b"s/a".to_vec(),
        b"s/a\x00".to_vec(),
        b"s/ab".to_vec(),
        b"s/b".to_vec(),
        b"s/\x7f".to_vec(),
        b"s/\x80".to_vec(),
        b"s/\xff".to_vec(),
        b"s/\xff\xff".to_vec(),
    ];
    let writes: Vec<Write> = all.iter().rev().map(|k| put(k, k)).collect();
    store.commit(&[], &writes).unwrap();
    all.sort();
    let range = KeyRange {
        start: b"s/".to_vec(),
        end: Some(b"s0".to_vec()),
    };
    let forward = store.scan(&range, 100, Direction::Forward).unwrap();
    assert_eq!(keys(&forward), all, "{name}: forward order");
    let reverse = store.scan(&range, 100, Direction::Reverse).unwrap();
    let mut reversed = all.clone();
    reversed.reverse();
    assert_eq!(keys(&reverse), reversed, "{name}: reverse order");
    assert!(
        forward.iter().all(|e| e.value.value == e.key),
        "{name}: values"
    );

    // Limits, and half-open bounds: start included, end excluded.
    assert_eq!(
        keys(&store.scan(&range, 3, Direction::Forward).unwrap()),
        all[..3],
        "{name}"
    );
    assert_eq!(
        keys(&store.scan(&range, 2, Direction::Reverse).unwrap()),
        reversed[..2],
        "{name}"
    );
    let inner = KeyRange {
        start: b"s/a".to_vec(),
        end: Some(b"s/b".to_vec()),
    };
    assert_eq!(
        keys(&store.scan(&inner, 100, Direction::Forward).unwrap()),
        [b"s/a".to_vec(), b"s/a\x00".to_vec(), b"s/ab".to_vec()],
        "{name}: [start, end)"
    );
    assert!(
        store
            .scan(&inner, 0, Direction::Forward)
            .unwrap()
            .is_empty(),
        "{name}: limit 0"
    );
    let empty = KeyRange {
        start: b"s/b".to_vec(),
        end: Some(b"s/a".to_vec()),
    };
    assert!(
        store
            .scan(&empty, 100, Direction::Forward)
            .unwrap()
            .is_empty(),
        "{name}: end before start"
    );
    let open = KeyRange {
        start: b"s/\xff".to_vec(),
        end: None,
    };
    let tail = keys(&store.scan(&open, 100, Direction::Forward).unwrap());
    assert_eq!(
        tail[..2],
        [b"s/\xff".to_vec(), b"s/\xff\xff".to_vec()],
        "{name}: open end"
    );

    // The host caps any limit at MAX_SCAN_LIMIT.
    let many: Vec<Write> = (0..MAX_SCAN_LIMIT + 5)
        .map(|i| put(format!("t/{i:05}").as_bytes(), b""))
        .collect();
    store.commit(&[], &many).unwrap();
    let range = KeyRange {
        start: b"t/".to_vec(),
        end: Some(b"t0".to_vec()),
    };
    assert_eq!(
        store
            .scan(&range, u32::MAX, Direction::Forward)
            .unwrap()
            .len(),
        MAX_SCAN_LIMIT as usize,
        "{name}"
    );
}

fn batched_gets(name: &str, store: &dyn Store) {
    store
        .commit(&[], &[put(b"g/1", b"one"), put(b"g/2", b"two")])
        .unwrap();
    let wanted = [
        b"g/2".to_vec(),
        b"g/missing".to_vec(),
        b"g/1".to_vec(),
        b"g/2".to_vec(),
    ];
    let got: Vec<Option<Vec<u8>>> = store
        .get_many(&wanted)
        .unwrap()
        .into_iter()
        .map(|v| v.map(|v| v.value))
        .collect();
    assert_eq!(
        got,
        [
            Some(b"two".to_vec()),
            None,
            Some(b"one".to_vec()),
            Some(b"two".to_vec())
        ],
        "{name}: one answer per key, in order, duplicates included"
    );
    assert!(store.get_many(&[]).unwrap().is_empty(), "{name}");
}

fn atomic_commits(name: &str, store: &dyn Store) {
    let v = store.commit(&[], &[put(b"c/x", b"x0")]).unwrap();
    // A failed check refuses the whole commit, names the key, and writes nothing.
    let err = store
        .commit(
            &[check(b"c/x", Some(v)), check(b"c/y", Some(1))],
            &[put(b"c/x", b"x1"), put(b"c/z", b"z")],
        )
        .unwrap_err();
    assert_eq!(err, StoreError::Conflict(b"c/y".to_vec()), "{name}");
    assert_eq!(
        store.get(b"c/x").unwrap().unwrap().value,
        b"x0",
        "{name}: nothing written"
    );
    assert_eq!(store.get(b"c/z").unwrap(), None, "{name}: nothing written");
    let err = store
        .commit(&[check(b"c/x", None)], &[put(b"c/x", b"x2")])
        .unwrap_err();
    assert_eq!(
        err,
        StoreError::Conflict(b"c/x".to_vec()),
        "{name}: present, not absent"
    );
}

fn odd_values(name: &str, store: &dyn Store) {
    let big: Vec<u8> = (0..(1 << 20)).map(|i: u32| (i % 251) as u8).collect();
    let binary = b"\x00\xff\x00bytes\x00".to_vec();
    store
        .commit(
            &[],
            &[
                put(b"o/empty", b""),
                put(b"o/big", &big),
                put(b"o/bin", &binary),
                put(b"", b"empty key"),
            ],
        )
        .unwrap();
    assert_eq!(
        store.get(b"o/empty").unwrap().unwrap().value,
        b"",
        "{name}: empty value"
    );
    assert_eq!(
        store.get(b"o/big").unwrap().unwrap().value,
        big,
        "{name}: 1 MiB value"
    );
    assert_eq!(
        store.get(b"o/bin").unwrap().unwrap().value,
        binary,
        "{name}: binary value"
    );
    assert_eq!(
        store.get(b"").unwrap().unwrap().value,
        b"empty key",
        "{name}: the empty key"
    );
}

/// Two threads at a time commit against the same version of one key: exactly one wins.
fn one_winner(name: &str, store: Arc<dyn Store>) {
    for round in 0..20 {
        let key = format!("w/{round}").into_bytes();
        let v = store.commit(&[], &[put(&key, b"start")]).unwrap();
        let results: Vec<Result<u64, StoreError>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..2)
                .map(|i| {
                    let (store, key) = (store.clone(), key.clone());
                    scope.spawn(move || {
                        store.commit(
                            &[check(&key, Some(v))],
                            &[put(&key, format!("winner {i}").as_bytes())],
                        )
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("thread"))
                .collect()
        });
        let wins = results.iter().filter(|r| r.is_ok()).count();
        assert_eq!(wins, 1, "{name} round {round}: {results:?}");
        for result in &results {
            if let Err(err) = result {
                assert_eq!(
                    err,
                    &StoreError::Conflict(key.clone()),
                    "{name} round {round}"
                );
            }
        }
    }
}

fn async_as_blocking(
    store: Arc<dyn AsyncStore>,
    runtime: Arc<tokio::runtime::Runtime>,
) -> Arc<dyn Store> {
    Arc::new(BlockOn::new(runtime, store))
}

#[test]
fn memory_store_keeps_the_contract() {
    contract("memory", &MemoryStore::new());
    one_winner("memory", Arc::new(MemoryStore::new()));
    let runtime = BlockOn::<MemoryStore>::runtime().unwrap();
    let as_async = async_as_blocking(Arc::new(MemoryStore::new()), runtime.clone());
    contract("memory (async)", as_async.as_ref());
    one_winner(
        "memory (async)",
        async_as_blocking(Arc::new(MemoryStore::new()), runtime),
    );
}

#[test]
fn sqlite_store_keeps_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    contract(
        "sqlite",
        &SqliteStore::open(dir.path().join("a.db")).unwrap(),
    );
    one_winner(
        "sqlite",
        Arc::new(SqliteStore::open(dir.path().join("b.db")).unwrap()),
    );
    let runtime = BlockOn::<MemoryStore>::runtime().unwrap();
    let offload = |file: &str| {
        let store = Arc::new(SqliteStore::open(dir.path().join(file)).unwrap());
        async_as_blocking(Arc::new(Offload(store)), runtime.clone())
    };
    contract("sqlite (async)", offload("c.db").as_ref());
    one_winner("sqlite (async)", offload("d.db"));
}

#[test]
fn postgres_store_keeps_the_contract() {
    let Some(server) = postgres_server() else {
        return;
    };
    for (round, blocking) in [("blocking", true), ("second run", true), ("async", false)] {
        let schema = PostgresSchema::new(&server);
        let store = postgres_pool(&schema.url(), blocking);
        contract(&format!("postgres ({round})"), store.as_ref());
        one_winner(&format!("postgres ({round})"), store);
    }
}

/// The same contract over TLS (`sslmode=verify-full` against the test CA), through both
/// pools: the private cluster refuses any connection without TLS.
#[test]
fn postgres_store_keeps_the_contract_over_tls() {
    let Some(servers) = ds_tests::postgres_tls() else {
        return;
    };
    for (round, blocking) in [("blocking", true), ("async", false)] {
        let schema = PostgresSchema::on(&servers.verified(), &servers.admin());
        let store = postgres_pool(&schema.url(), blocking);
        contract(&format!("postgres over TLS ({round})"), store.as_ref());
        one_winner(&format!("postgres over TLS ({round})"), store);
    }
}

/// The contract on a 3-member etcd cluster of the test's own, through `ds`'s form of the
/// store (the async store behind `BlockOn`, as `open_blocking` builds it) and `ads`'s (the
/// async store, driven here through a `BlockOn` of the test's).
#[test]
fn etcd_store_keeps_the_contract() {
    let Some(cluster) = ds_tests::EtcdCluster::start(3) else {
        return;
    };
    for (round, blocking) in [("blocking", true), ("async", false)] {
        let store = etcd_store(&cluster.url(&format!("conformance/{round}")), blocking);
        contract(&format!("etcd ({round})"), store.as_ref());
        one_winner(&format!("etcd ({round})"), store);
    }
}

/// Opens the etcd store at `url` as `open_blocking` does, or as `open_async` does (driven
/// here through `BlockOn`).
fn etcd_store(url: &str, blocking: bool) -> Arc<dyn Store> {
    let url: StoreUrl = url.parse().unwrap();
    if blocking {
        return open_blocking(&url).unwrap();
    }
    let StoreUrl::Etcd(etcd) = &url else {
        unreachable!()
    };
    let runtime = BlockOn::<MemoryStore>::runtime().unwrap();
    async_as_blocking(
        host_core::store::etcd::open_on(runtime.handle(), etcd).unwrap(),
        runtime,
    )
}

/// Opens the PostgreSQL store at `url` as `ds`'s blocking pool, or as `ads`'s async pool
/// (driven here through `BlockOn`, its connections tasks on a runtime of their own).
fn postgres_pool(url: &str, blocking: bool) -> Arc<dyn Store> {
    let url: StoreUrl = url.parse().unwrap();
    if blocking {
        return open_blocking(&url).unwrap();
    }
    let StoreUrl::Postgres(pg) = &url else {
        unreachable!()
    };
    let runtime = BlockOn::<PostgresStore>::runtime().unwrap();
    async_as_blocking(
        host_core::store::postgres::open_on(runtime.handle(), pg).unwrap(),
        runtime,
    )
}

/// Runs `op` with a client on a connection of its own to `server`.
fn with_client<R>(server: &str, op: impl AsyncFnOnce(&tokio_postgres::Client) -> R) -> R {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (client, connection) = tokio_postgres::connect(server, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        op(&client).await
    })
}

/// Runs `sql` on `server` on a connection of its own.
fn execute(server: &str, sql: &str) {
    with_client(server, async |client| {
        client.batch_execute(sql).await.unwrap()
    });
}

/// A pooled connection that the server closed while it sat idle (a restart, an idle timeout,
/// an administrator) is noticed and replaced: the next calls succeed, in both PostgreSQL
/// pools. Nothing polls the blocking pool's idle connections, so it finds out when an op
/// fails on one, and runs the op again on another; the async pool may too, in the moment
/// before its connection task sees the close.
#[test]
fn postgres_stores_replace_connections_the_server_closed() {
    let Some(server) = postgres_server() else {
        return;
    };
    let schema = PostgresSchema::new(&server);
    // The application name marks this test's connections, so only they are terminated.
    let app = format!("ds_test_closed_{}", std::process::id());
    let url = format!("{}&application_name={app}", schema.url());
    let stores = [
        ("blocking", postgres_pool(&url, true)),
        ("async", postgres_pool(&url, false)),
    ];
    // `pg_terminate_backend` with a timeout waits until the backends are gone.
    let terminate = || {
        execute(
            &server,
            &format!(
                "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity \
                 WHERE application_name = '{app}'"
            ),
        )
    };
    for (name, store) in &stores {
        let key = name.as_bytes();
        let version = store.commit(&[], &[put(key, b"before")]).unwrap();
        terminate();
        // The async pool's connection tasks notice the close in the background; the
        // blocking pool's get fails on its closed connection and runs again on a new one.
        std::thread::sleep(std::time::Duration::from_millis(200));
        let read = store.get(key).unwrap().expect("present");
        assert_eq!(
            (read.value.as_slice(), read.version),
            (&b"before"[..], version),
            "{name}"
        );
        // A commit on a closed connection fails before anything is written, and runs again.
        terminate();
        store
            .commit(&[check(key, Some(version))], &[put(key, b"after")])
            .unwrap();
        assert_eq!(
            store.get(key).unwrap().expect("present").value,
            b"after",
            "{name}"
        );
    }
}

/// The number of server backends whose `application_name` is `app`.
fn backends(server: &str, app: &str) -> i64 {
    with_client(server, async |client| {
        client
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
                &[&app],
            )
            .await
            .unwrap()
            .get(0)
    })
}

/// `max_connections=N` caps each PostgreSQL pool: eight callers at once share two
/// connections (and still read what was written), where the default pool would open one each.
#[test]
fn postgres_pools_open_at_most_max_connections() {
    let Some(server) = postgres_server() else {
        return;
    };
    let schema = PostgresSchema::new(&server);
    for (name, blocking) in [("blocking", true), ("async", false)] {
        let app = format!("ds_test_cap_{name}_{}", std::process::id());
        let store = postgres_pool(
            &format!("{}&application_name={app}&max_connections=2", schema.url()),
            blocking,
        );
        let version = store.commit(&[], &[put(b"cap", b"v")]).unwrap();
        let start = std::sync::Barrier::new(8);
        std::thread::scope(|scope| {
            for _ in 0..8 {
                scope.spawn(|| {
                    start.wait();
                    for _ in 0..20 {
                        let read = store.get(b"cap").unwrap().expect("present");
                        assert_eq!((read.value.as_slice(), read.version), (&b"v"[..], version));
                    }
                });
            }
        });
        // Pooled connections stay open while idle, so the count shows how many were opened.
        let open = backends(&server, &app);
        assert!((1..=2).contains(&open), "{name}: {open} connections open");
    }
}

#[test]
fn stores_refuse_a_newer_format() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("future.db");
    drop(SqliteStore::open(&path).unwrap());
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute("UPDATE ds_meta SET value = 99 WHERE name = 'format'", [])
        .unwrap();
    drop(conn);
    let err = SqliteStore::open(&path).err().expect("refused");
    assert!(
        err.to_string().contains("newer ds (store format 99"),
        "{err}"
    );

    let Some(server) = postgres_server() else {
        return;
    };
    let schema = PostgresSchema::new(&server);
    let url: StoreUrl = schema.url().parse().unwrap();
    drop(open_blocking(&url).unwrap());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (client, connection) = tokio_postgres::connect(&server, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        let StoreUrl::Postgres(pg) = &url else {
            unreachable!()
        };
        let schema = pg.schema.as_deref().unwrap();
        client
            .batch_execute(&format!(
                "UPDATE {schema}.ds_meta SET value = 99 WHERE name = 'format'"
            ))
            .await
            .unwrap();
    });
    let err = open_blocking(&url).err().expect("refused");
    assert!(
        err.to_string().contains("newer ds (store format 99"),
        "{err}"
    );
}
