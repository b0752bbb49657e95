//! Faults are contained, in both hosts: a guest that panics, loops forever or allocates
//! without end costs one instance and returns a typed error (a panic's message reaches the
//! host's log through the logging import); the next call on the same datastore succeeds.
//! And in `ads`, a call dropped at any await point (during `get`, `scan` or `commit`) leaves
//! the store consistent and frees its instance and its in-flight slot.
//!
//! The misbehaving guest is `tests/fault-guest`, a test-only component of the same world.

use std::sync::Arc;

use ds_tests::with_guest_lines;
use std::time::Duration;

use host_core::instances::{BoundExceeded, Writes};
use host_core::store::{
    AsyncStore, BoxFuture, Check, Direction, Entry, KeyRange, MemoryStore, Offload, SqliteStore,
    Store, StoreError, Versioned, Write,
};
use host_core::{ComponentSource, Error, InstanceOptions, Key};

fn fault_guest() -> ComponentSource {
    ComponentSource::File(env!("FAULT_GUEST_WASM").into())
}

fn options() -> InstanceOptions {
    InstanceOptions {
        deadline: Duration::from_millis(300),
        memory_limit_bytes: 16 << 20,
        ..InstanceOptions::default()
    }
}

fn check_panic(result: Result<Option<host_core::Entity>, Error>, lines: &[String]) {
    assert!(
        matches!(result, Err(Error::Trap(_))),
        "a panic traps: {result:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("the fault guest panics on purpose")),
        "the panic message went through the logging import: {lines:?}"
    );
}

fn check_bounds(result: Result<Option<host_core::Entity>, Error>, kind: &str) {
    match (kind, result) {
        ("Loop", Err(Error::Bound(BoundExceeded::Deadline { limit, writes }))) => {
            assert_eq!(limit, Duration::from_millis(300));
            assert_eq!(writes, Writes::None);
        }
        ("Alloc", Err(Error::Bound(BoundExceeded::Memory { limit, requested }))) => {
            assert_eq!(limit, 16 << 20);
            assert!(requested > limit);
        }
        (kind, other) => panic!("{kind}: expected a bound error, got {other:?}"),
    }
}

#[test]
fn blocking_host_contains_guest_faults() {
    let db = ds::Datastore::builder()
        .store(Arc::new(MemoryStore::new()))
        .component(fault_guest())
        .instance_options(options())
        .build()
        .unwrap();
    assert_eq!(db.get(&Key::name("Fine", "a")).unwrap(), None);
    // The fault guest is of world `model`, without the example's `accounts`: it runs, and
    // only the two calls it lacks fail, saying why.
    let account = Key::name("Account", "a");
    for result in [
        db.deposit(&account, 1).map(|_| ()),
        db.transfer(&account, &Key::name("Account", "b"), 1)
            .map(|_| ()),
    ] {
        assert!(
            matches!(&result, Err(Error::NotFound(m)) if m.contains("`accounts` interface")),
            "{result:?}"
        );
    }
    let (result, lines) = with_guest_lines(|| db.get(&Key::name("Panic", "a")));
    check_panic(result, &lines);
    for kind in ["Loop", "Alloc"] {
        check_bounds(db.get(&Key::name(kind, "a")), kind);
        assert_eq!(
            db.get(&Key::name("Fine", "a")).unwrap(),
            None,
            "{kind}: the next call works"
        );
    }
    assert_eq!(
        db.idle_instances(),
        1,
        "every faulted instance was dropped; the healthy one kept"
    );
}

#[test]
fn async_host_contains_guest_faults() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let db = ads::Datastore::builder()
            .store(Arc::new(MemoryStore::new()))
            .component(fault_guest())
            .instance_options(options())
            .max_in_flight(2)
            .build()
            .await
            .unwrap();
        assert_eq!(db.get(&Key::name("Fine", "a")).await.unwrap(), None);
        let account = Key::name("Account", "a");
        let result = db.deposit(&account, 1).await;
        assert!(
            matches!(&result, Err(Error::NotFound(m)) if m.contains("`accounts` interface")),
            "{result:?}"
        );
        let (result, lines) =
            with_guest_lines(|| futures::executor::block_on(db.get(&Key::name("Panic", "a"))));
        check_panic(result, &lines);
        for kind in ["Loop", "Alloc"] {
            check_bounds(db.get(&Key::name(kind, "a")).await, kind);
            assert_eq!(
                db.get(&Key::name("Fine", "a")).await.unwrap(),
                None,
                "{kind}: the next call works"
            );
        }
        // Faults happen on the runtime's threads; none was lost, and calls still overlap.
        let keys: Vec<Key> = (1..=8).map(|i| Key::id("Fine", i)).collect();
        let calls = keys.iter().map(|key| db.get(key));
        assert!(
            futures::future::join_all(calls)
                .await
                .into_iter()
                .all(|r| r.is_ok())
        );
    });
}

/// A memory store whose `scan` and `commit` wait at a gate before doing anything.
struct GateStore {
    inner: MemoryStore,
    gate: tokio::sync::Semaphore,
}

impl AsyncStore for GateStore {
    fn get(&self, key: Vec<u8>) -> BoxFuture<'_, Result<Option<Versioned>, StoreError>> {
        Box::pin(async move {
            let _ = self.gate.acquire().await;
            Store::get(&self.inner, &key)
        })
    }
    fn get_many(
        &self,
        keys: Vec<Vec<u8>>,
    ) -> BoxFuture<'_, Result<Vec<Option<Versioned>>, StoreError>> {
        AsyncStore::get_many(&self.inner, keys)
    }
    fn scan(
        &self,
        range: KeyRange,
        limit: u32,
        direction: Direction,
    ) -> BoxFuture<'_, Result<Vec<Entry>, StoreError>> {
        Box::pin(async move {
            let _ = self.gate.acquire().await;
            Store::scan(&self.inner, &range, limit, direction)
        })
    }
    fn commit(
        &self,
        checks: Vec<Check>,
        writes: Vec<Write>,
    ) -> BoxFuture<'_, Result<u64, StoreError>> {
        Box::pin(async move {
            let _ = self.gate.acquire().await;
            Store::commit(&self.inner, &checks, &writes)
        })
    }
}

fn commit_keys(store: &dyn Store) -> Vec<Vec<u8>> {
    host_core::store::scan_all(store)
        .unwrap()
        .into_iter()
        .map(|e| e.key)
        .filter(|k| k.starts_with(b"commit/"))
        .collect()
}

#[tokio::test]
async fn dropping_a_call_at_any_await_point_leaves_everything_consistent() {
    let store = Arc::new(GateStore {
        inner: MemoryStore::new(),
        gate: tokio::sync::Semaphore::new(0),
    });
    let db = ads::Datastore::builder()
        .store(store.clone())
        .component(fault_guest())
        .instance_options(options())
        .max_in_flight(1)
        .build()
        .await
        .unwrap();
    for kind in ["Get", "Scan", "Commit"] {
        let key = Key::name(kind, "a");
        // The call reaches the store and waits at the gate; then it is dropped.
        assert!(
            tokio::time::timeout(Duration::from_millis(50), db.get(&key))
                .await
                .is_err(),
            "{kind}"
        );
        assert_eq!(
            db.idle_instances(),
            0,
            "{kind}: the interrupted instance is not reused"
        );
        assert!(
            commit_keys(&store.inner).is_empty(),
            "{kind}: a dropped commit is absent"
        );
    }
    // With one in-flight slot, this call proves every dropped call gave its slot back.
    store.gate.add_permits(1000);
    db.get(&Key::name("Commit", "a")).await.unwrap();
    assert_eq!(
        commit_keys(&store.inner).len(),
        3,
        "a commit that runs is whole"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_sqlite_commit_is_whole_or_absent() {
    let dir = tempfile::tempdir().unwrap();
    for round in 0..20u64 {
        let sqlite = Arc::new(SqliteStore::open(dir.path().join(format!("{round}.db"))).unwrap());
        let db = ads::Datastore::builder()
            .store(Arc::new(Offload(sqlite.clone())))
            .component(fault_guest())
            .instance_options(options())
            .build()
            .await
            .unwrap();
        // Drop the call at a different moment each round, often while SQLite commits.
        let _ = tokio::time::timeout(
            Duration::from_micros(50 * round),
            db.get(&Key::name("Commit", "a")),
        )
        .await;
        // The blocking commit, if it started, finishes on its own; give it the time.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let found = commit_keys(sqlite.as_ref()).len();
        assert!(
            found == 0 || found == 3,
            "round {round}: {found} of 3 writes"
        );
    }
}

/// How a [`CommitHook`] commits: given the inner store, the checks and the writes.
type CommitFn =
    Box<dyn Fn(&MemoryStore, &[Check], &[Write]) -> Result<u64, StoreError> + Send + Sync>;

/// A memory store whose commits go through `commit` (which may wait first, or refuse).
struct CommitHook {
    inner: MemoryStore,
    commit: CommitFn,
}

impl Store for CommitHook {
    fn get(&self, key: &[u8]) -> Result<Option<Versioned>, StoreError> {
        Store::get(&self.inner, key)
    }
    fn get_many(&self, keys: &[Vec<u8>]) -> Result<Vec<Option<Versioned>>, StoreError> {
        Store::get_many(&self.inner, keys)
    }
    fn scan(
        &self,
        range: &KeyRange,
        limit: u32,
        direction: Direction,
    ) -> Result<Vec<Entry>, StoreError> {
        Store::scan(&self.inner, range, limit, direction)
    }
    fn commit(&self, checks: &[Check], writes: &[Write]) -> Result<u64, StoreError> {
        (self.commit)(&self.inner, checks, writes)
    }
}

/// A call stopped at its deadline says whether it had written: a commit that returned before
/// the deadline struck was applied (`ds`), one still in flight may be applied (`ads`: and
/// over a blocking store it is, after the caller was told). Retrying blindly could apply
/// either twice, so the error must say so.
#[test]
fn a_deadline_error_says_what_the_call_had_written() {
    let slow = || {
        Arc::new(CommitHook {
            inner: MemoryStore::new(),
            commit: Box::new(|inner, checks, writes| {
                std::thread::sleep(Duration::from_millis(700));
                Store::commit(inner, checks, writes)
            }),
        })
    };
    let key = Key::name("Commit", "a");

    let store = slow();
    let db = ds::Datastore::builder()
        .store(store.clone())
        .component(fault_guest())
        .instance_options(options())
        .build()
        .unwrap();
    let err = db.get(&key).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Bound(BoundExceeded::Deadline {
                writes: Writes::Applied,
                ..
            })
        ),
        "ds: {err:?}"
    );
    assert!(err.to_string().contains("had been applied"), "{err}");
    assert_eq!(
        commit_keys(&store.inner).len(),
        3,
        "ds: the commit was applied"
    );

    let store = slow();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let db = ads::Datastore::builder()
            .store(Arc::new(Offload(store.clone())))
            .component(fault_guest())
            .instance_options(options())
            .build()
            .await
            .unwrap();
        let err = db.get(&key).await.unwrap_err();
        assert!(
            matches!(
                err,
                Error::Bound(BoundExceeded::Deadline {
                    writes: Writes::Unknown,
                    ..
                })
            ),
            "ads: {err:?}"
        );
        assert!(err.to_string().contains("read before retrying"), "{err}");
        tokio::time::sleep(Duration::from_millis(900)).await;
    });
    assert_eq!(
        commit_keys(&store.inner).len(),
        3,
        "ads: the commit in flight was applied after the deadline"
    );
}

/// `ds` backs off by sleeping the calling thread: never past the call's deadline, so a long
/// retry policy cannot hold a caller beyond it.
#[test]
fn a_blocking_backoff_ends_at_the_deadline() {
    let db = ds::Datastore::builder()
        .store(Arc::new(CommitHook {
            inner: MemoryStore::new(),
            // Every commit loses its race.
            commit: Box::new(|_, _, writes| Err(StoreError::Conflict(writes[0].key.clone()))),
        }))
        .instance_options(options())
        .retry_policy(host_core::RetryPolicy {
            retries: 3,
            base_delay: Duration::from_secs(5),
            max_delay: Duration::from_secs(5),
        })
        .build()
        .unwrap();
    let started = std::time::Instant::now();
    let err = db
        .put(&host_core::Entity::new(Key::name("Note", "a")))
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Bound(BoundExceeded::Deadline {
                writes: Writes::None,
                ..
            })
        ),
        "{err:?}"
    );
    // The first wait alone would be 2.5 s or more; the deadline is 300 ms.
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

/// `Offload`: with the only blocking thread busy in a commit, a second commit waits in
/// tokio's queue; its caller gives up, and it must never run. The first, started, runs whole.
#[test]
fn a_queued_blocking_call_whose_caller_left_never_starts() {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .max_blocking_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let gate = Arc::new(Mutex::new(()));
    let started = Arc::new(AtomicUsize::new(0));
    let store = Arc::new(CommitHook {
        inner: MemoryStore::new(),
        commit: Box::new({
            let (gate, started) = (gate.clone(), started.clone());
            move |inner, checks, writes| {
                started.fetch_add(1, Ordering::SeqCst);
                let _open = gate.lock().unwrap_or_else(|p| p.into_inner());
                Store::commit(inner, checks, writes)
            }
        }),
    });
    let put = |key: &str| {
        vec![Write {
            key: key.as_bytes().to_vec(),
            value: Some(b"v".to_vec()),
        }]
    };
    let offload = Offload(store.clone());
    let closed = gate.lock().unwrap();
    runtime.block_on(async {
        let other = Offload(store.clone());
        let first = tokio::spawn(async move { AsyncStore::commit(&other, vec![], put("a")).await });
        while started.load(Ordering::SeqCst) == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let second = tokio::time::timeout(
            Duration::from_millis(50),
            AsyncStore::commit(&offload, vec![], put("b")),
        )
        .await;
        assert!(second.is_err(), "the second commit waited for a thread");
        drop(closed);
        first.await.unwrap().unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    });
    assert_eq!(
        started.load(Ordering::SeqCst),
        1,
        "the abandoned commit ran"
    );
    assert!(Store::get(&store.inner, b"a").unwrap().is_some());
    assert!(Store::get(&store.inner, b"b").unwrap().is_none());
}
