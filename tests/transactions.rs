//! No lost updates: concurrent transactions through both hosts, on every store.
//!
//! - 8 threads × 200 deposits of 1 through `ds`, and 8 tasks × 200 through `ads`, to one
//!   account, then 32 × 50 each: the final balance is exactly the number of deposits, and
//!   with a generous retry policy every one succeeds.
//! - 8 workers × 200 random transfers between 4 accounts: the total never changes, no
//!   balance goes negative, every successful transfer left exactly one `Transfer` record, and
//!   `check` finds every index row in place.
//!
//! On the memory store, SQLite, PostgreSQL (when a server answers; always under CI) and a
//! 3-member etcd cluster (when etcd is installed; always under CI).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ds_tests::{PostgresSchema, account, balance, postgres_server};
use host_core::store::{MemoryStore, Offload, SqliteStore};
use host_core::{Error, Key, RetryPolicy};

const WORKERS: usize = 8;
const OPERATIONS: usize = 200;

/// Enough retries that contention never exhausts them; short waits keep the test quick.
fn generous() -> RetryPolicy {
    RetryPolicy {
        retries: 10_000,
        base_delay: Duration::from_micros(200),
        max_delay: Duration::from_millis(20),
    }
}

/// A store URL per backend for one test, and what keeps it alive.
enum Backend {
    Memory(Arc<MemoryStore>),
    Sqlite(tempfile::TempDir),
    Postgres(PostgresSchema),
    /// A 3-member cluster of the test's own.
    Etcd(ds_tests::EtcdCluster),
}

fn backends() -> Vec<(&'static str, Backend)> {
    let mut all = vec![
        ("memory", Backend::Memory(Arc::new(MemoryStore::new()))),
        ("sqlite", Backend::Sqlite(tempfile::tempdir().unwrap())),
    ];
    if let Some(server) = postgres_server() {
        all.push(("postgres", Backend::Postgres(PostgresSchema::new(&server))));
    }
    if let Some(cluster) = ds_tests::EtcdCluster::start(3) {
        all.push(("etcd", Backend::Etcd(cluster)));
    }
    all
}

fn sync_db(backend: &Backend) -> ds::Datastore {
    let builder = ds::Datastore::builder().retry_policy(generous());
    match backend {
        Backend::Memory(store) => builder.store(store.clone()),
        Backend::Sqlite(dir) => builder.store(Arc::new(
            SqliteStore::open(dir.path().join("ds.db")).unwrap(),
        )),
        Backend::Postgres(schema) => builder.store_url(&schema.url()),
        Backend::Etcd(cluster) => builder.store_url(&cluster.url("transactions")),
    }
    .build()
    .unwrap()
}

async fn async_db(backend: &Backend) -> ads::Datastore {
    let builder = ads::Datastore::builder().retry_policy(generous());
    match backend {
        Backend::Memory(store) => builder.store(store.clone()),
        Backend::Sqlite(dir) => builder.store(Arc::new(Offload(Arc::new(
            SqliteStore::open(dir.path().join("ds.db")).unwrap(),
        )))),
        Backend::Postgres(schema) => builder.store_url(&schema.url()),
        Backend::Etcd(cluster) => builder.store_url(&cluster.url("transactions")),
    }
    .build()
    .await
    .unwrap()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn concurrent_increments_lose_no_update() {
    // The model layer's 8 × 200, then a higher concurrency: 32 × 50.
    for (workers, operations) in [(WORKERS, OPERATIONS), (32, 50)] {
        for (name, backend) in backends() {
            increments(name, &backend, workers, operations);
        }
    }
}

fn increments(name: &str, backend: &Backend, workers: usize, operations: usize) {
    let db = sync_db(backend);
    let counter = Key::name("Account", "counter");
    db.put(&account("counter", 0)).unwrap();
    let total = (workers * operations) as i64;

    // ds: threads.
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                for _ in 0..operations {
                    db.deposit(&counter, 1).unwrap();
                }
            });
        }
    });
    let after_ds = balance(db.get(&counter).unwrap());
    assert_eq!(
        after_ds, total,
        "{name}: ds lost updates ({workers} workers)"
    );

    // ads: tasks on a multi-threaded runtime, same account.
    let rt = runtime();
    rt.block_on(async {
        let adb = async_db(backend).await;
        let tasks: Vec<_> = (0..workers)
            .map(|_| {
                let adb = adb.clone();
                let counter = counter.clone();
                tokio::spawn(async move {
                    for _ in 0..operations {
                        adb.deposit(&counter, 1).await.unwrap();
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        let after = balance(adb.get(&counter).await.unwrap());
        assert_eq!(
            after,
            2 * total,
            "{name}: ads lost updates ({workers} workers)"
        );
    });
    let report = db.check().unwrap();
    assert!(report.problems.is_empty(), "{name}: {:?}", report.problems);
}

/// A tiny deterministic generator, so a failure replays.
fn next(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

#[test]
fn concurrent_transfers_conserve_the_total() {
    const ACCOUNTS: [&str; 4] = ["a", "b", "c", "d"];
    const START: i64 = 1_000;
    for (name, backend) in backends() {
        let db = sync_db(&backend);
        let keys: Vec<Key> = ACCOUNTS.iter().map(|n| Key::name("Account", *n)).collect();
        db.put_many(&ACCOUNTS.map(|n| account(n, START))).unwrap();
        let moved = AtomicU64::new(0);
        let rt = runtime();
        let adb = rt.block_on(async_db(&backend));
        std::thread::scope(|scope| {
            // Half the workers are ds threads, half ads tasks: both hosts race on one store.
            for worker in 0..WORKERS {
                let (db, adb, keys, moved) = (&db, adb.clone(), &keys, &moved);
                let handle = rt.handle().clone();
                scope.spawn(move || {
                    let mut seed = 0x9E37_79B9_7F4A_7C15 ^ (worker as u64 + 1);
                    for _ in 0..OPERATIONS {
                        let from = &keys[(next(&mut seed) % 4) as usize];
                        let to = &keys[(next(&mut seed) % 4) as usize];
                        let amount = (next(&mut seed) % 300) as i64 + 1;
                        let result = if worker % 2 == 0 {
                            db.transfer(from, to, amount)
                        } else {
                            handle.block_on(adb.transfer(from, to, amount))
                        };
                        match result {
                            Ok(_) => {
                                moved.fetch_add(1, Ordering::Relaxed);
                            }
                            // Refused by a business rule: nothing changed.
                            Err(Error::FailedPrecondition(_)) => {}
                            Err(err) => panic!("{name}: {err}"),
                        }
                    }
                });
            }
        });
        let balances: Vec<i64> = db
            .get_many(&keys)
            .unwrap()
            .into_iter()
            .map(balance)
            .collect();
        assert!(balances.iter().all(|b| *b >= 0), "{name}: {balances:?}");
        assert_eq!(
            balances.iter().sum::<i64>(),
            START * ACCOUNTS.len() as i64,
            "{name}: money was created or destroyed: {balances:?}"
        );
        // One Transfer record per successful transfer, found by ancestor queries.
        let records = ds_tests::transfer_records(&db, &keys);
        let moved = moved.load(Ordering::Relaxed);
        assert!(moved > 0, "{name}: no transfer succeeded");
        assert_eq!(records, moved, "{name}: transfer records");
        let report = db.check().unwrap();
        assert!(report.problems.is_empty(), "{name}: {:?}", report.problems);
    }
}

#[test]
fn allocated_ids_are_unique_under_concurrency() {
    for (name, backend) in backends() {
        let db = sync_db(&backend);
        let rt = runtime();
        let adb = rt.block_on(async_db(&backend));
        let mut all: Vec<u64> = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..WORKERS)
                .map(|worker| {
                    let (db, adb, handle) = (&db, adb.clone(), rt.handle().clone());
                    scope.spawn(move || {
                        let mut ids = Vec::new();
                        for _ in 0..50 {
                            let first = if worker % 2 == 0 {
                                db.allocate_ids("", "Order", 3).unwrap()
                            } else {
                                handle.block_on(adb.allocate_ids("", "Order", 3)).unwrap()
                            };
                            ids.extend(first..first + 3);
                        }
                        ids
                    })
                })
                .collect();
            workers
                .into_iter()
                .flat_map(|w| w.join().unwrap())
                .collect()
        });
        all.sort_unstable();
        let count = all.len();
        all.dedup();
        assert_eq!(all.len(), count, "{name}: an id was issued twice");
        assert_eq!(
            all,
            (1..=count as u64).collect::<Vec<_>>(),
            "{name}: ids are dense"
        );
    }
}

#[test]
fn a_spent_retry_budget_is_a_clear_conflict_that_writes_nothing() {
    // No retries at all: with 8 racing writers some deposits must lose, and each loss is an
    // `Error::Conflict` that changed nothing (the balance counts exactly the successes).
    let store = Arc::new(MemoryStore::new());
    let db = ds::Datastore::builder()
        .store(store)
        .transaction_retries(0)
        .build()
        .unwrap();
    let counter = Key::name("Account", "counter");
    db.put(&account("counter", 0)).unwrap();
    let (won, lost) = (AtomicU64::new(0), AtomicU64::new(0));
    std::thread::scope(|scope| {
        for _ in 0..WORKERS {
            scope.spawn(|| {
                for _ in 0..OPERATIONS {
                    match db.deposit(&counter, 1) {
                        Ok(_) => won.fetch_add(1, Ordering::Relaxed),
                        Err(Error::Conflict(message)) => {
                            assert!(message.contains("gave up after 1 attempts"), "{message}");
                            lost.fetch_add(1, Ordering::Relaxed)
                        }
                        Err(err) => panic!("{err}"),
                    };
                }
            });
        }
    });
    let won = won.load(Ordering::Relaxed);
    assert_eq!(
        won + lost.load(Ordering::Relaxed),
        (WORKERS * OPERATIONS) as u64
    );
    assert_eq!(balance(db.get(&counter).unwrap()), won as i64);
}
