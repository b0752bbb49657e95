//! The etcd store against real 3-member clusters of the tests' own (`ds_tests::EtcdCluster`):
//! what the contract suite cannot show. Batched reads beyond one transaction, responses
//! beyond tonic's 4 MiB default, the cluster's limits as clear errors, endpoints that refuse,
//! a cluster without quorum, and a leader killed under load through both hosts.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ds_tests::{EtcdCluster, account, balance};
use host_core::store::{
    BlockOn, Direction, KeyRange, MemoryStore, Store, StoreError, StoreUrl, Write, open_blocking,
};
use host_core::{Error, Key, RetryPolicy};

fn put(key: &[u8], value: &[u8]) -> Write {
    Write {
        key: key.to_vec(),
        value: Some(value.to_vec()),
    }
}

fn open(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    open_blocking(&url.parse::<StoreUrl>().expect("a valid URL"))
}

/// The async store, as `ads` opens it, driven through a `BlockOn` of the test's.
fn open_async(url: &str) -> Arc<dyn Store> {
    let StoreUrl::Etcd(etcd) = url.parse::<StoreUrl>().unwrap() else {
        unreachable!()
    };
    let runtime = BlockOn::<MemoryStore>::runtime().unwrap();
    let store = host_core::store::etcd::open_on(runtime.handle(), &etcd).unwrap();
    Arc::new(BlockOn::new(runtime, store))
}

/// Batched reads of more keys than one transaction may hold (the URL's default
/// `max_txn_ops` is etcd's 128) come back whole and in order, duplicates and absent keys
/// included; a page of large values (about 12 MiB) exceeds tonic's 4 MiB default.
#[test]
fn large_batches_and_large_responses() {
    let Some(cluster) = EtcdCluster::start(3) else {
        return;
    };
    for (round, store) in [
        (
            "blocking",
            open(&cluster.url_with("batches/blocking", "")).unwrap(),
        ),
        ("async", open_async(&cluster.url_with("batches/async", ""))),
    ] {
        let writes: Vec<Write> = (0..100u32)
            .map(|i| put(format!("k{i:04}").as_bytes(), &i.to_be_bytes()))
            .collect();
        let version = store.commit(&[], &writes).unwrap();
        // 300 keys: present, absent and repeated, over three transactions.
        let keys: Vec<Vec<u8>> = (0..300u32)
            .map(|i| format!("k{:04}", (i * 7) % 150).into_bytes())
            .collect();
        let got = store.get_many(&keys).unwrap();
        assert_eq!(got.len(), keys.len(), "{round}");
        for (key, value) in keys.iter().zip(&got) {
            let n: u32 = std::str::from_utf8(&key[1..]).unwrap().parse().unwrap();
            match value {
                Some(v) => {
                    assert!(n < 100, "{round}: {n} was never written");
                    assert_eq!(
                        (v.value.as_slice(), v.version),
                        (&n.to_be_bytes()[..], version),
                        "{round}"
                    );
                }
                None => assert!(n >= 100, "{round}: {n} is missing"),
            }
        }

        let big = vec![0xAB; 1 << 20];
        for i in 0..12u8 {
            store.commit(&[], &[put(&[b'z', i], &big)]).unwrap();
        }
        let range = KeyRange {
            start: b"z".to_vec(),
            end: Some(b"{".to_vec()),
        };
        for direction in [Direction::Forward, Direction::Reverse] {
            let page = store.scan(&range, 1000, direction).unwrap();
            assert_eq!(page.len(), 12, "{round} {direction:?}");
            assert!(page.iter().all(|e| e.value.value == big), "{round}");
            let first = if direction == Direction::Forward {
                0
            } else {
                11
            };
            assert_eq!(page[0].key, [b'z', first], "{round} {direction:?}");
        }
    }
}

/// The cluster's limits are refusals that name the flag to change, and write nothing.
#[test]
fn limits_are_clear_errors_naming_the_flag() {
    let Some(cluster) = EtcdCluster::start(3) else {
        return;
    };
    // The store URL's own limit (default 128) is checked before anything is sent.
    let store = open(&cluster.url_with("limits/own", "")).unwrap();
    let writes: Vec<Write> = (0..129u32)
        .map(|i| put(format!("k{i}").as_bytes(), b"v"))
        .collect();
    match store.commit(&[], &writes) {
        Err(StoreError::InvalidRequest(msg)) => {
            assert!(
                msg.contains("max_txn_ops") && msg.contains("--max-txn-ops"),
                "{msg}"
            )
        }
        other => panic!("{other:?}"),
    }
    // A URL that claims more than the cluster allows (10,000): etcd refuses.
    let store = open(&cluster.url_with("limits/server", "max_txn_ops=20000")).unwrap();
    let writes: Vec<Write> = (0..10_001u32)
        .map(|i| put(format!("k{i}").as_bytes(), b"v"))
        .collect();
    match store.commit(&[], &writes) {
        Err(StoreError::InvalidRequest(msg)) => assert!(msg.contains("--max-txn-ops"), "{msg}"),
        other => panic!("{other:?}"),
    }
    // A value above the cluster's --max-request-bytes (16 MiB).
    let huge = vec![1u8; 17 << 20];
    match store.commit(&[], &[put(b"huge", &huge)]) {
        Err(StoreError::InvalidRequest(msg)) => {
            assert!(msg.contains("--max-request-bytes"), "{msg}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(store.get(b"huge").unwrap(), None);
    assert_eq!(store.get(b"k0").unwrap(), None);
    // The same key written twice in one commit: the last write wins (etcd itself refuses
    // a key twice in one transaction).
    store
        .commit(&[], &[put(b"twice", b"1"), put(b"twice", b"2")])
        .unwrap();
    assert_eq!(store.get(b"twice").unwrap().unwrap().value, b"2");
}

/// A member that refuses connections is passed over for the next; when none answers, the
/// store says `unavailable` promptly.
#[test]
fn refused_endpoints_fail_over_then_report_unavailable() {
    let Some(cluster) = EtcdCluster::start(3) else {
        return;
    };
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let live = cluster.url("failover");
    let first_dead = live.replacen("etcd://", &format!("etcd://127.0.0.1:{dead},"), 1);
    let store = open(&first_dead).unwrap();
    store.commit(&[], &[put(b"a", b"1")]).unwrap();
    assert_eq!(store.get(b"a").unwrap().unwrap().value, b"1");

    let started = Instant::now();
    let err = open(&format!(
        "etcd://127.0.0.1:{dead}/failover?leader_wait_ms=500&connect_timeout_ms=500"
    ))
    .err()
    .expect("no member answers");
    let elapsed = started.elapsed();
    assert!(
        matches!(&err, StoreError::Unavailable(msg) if msg.contains("no etcd member")),
        "{err:?}"
    );
    assert!(elapsed < Duration::from_secs(10), "took {elapsed:?}");
}

/// Two of three members killed: the store answers `unavailable` within its leader wait,
/// not a hang; with a member back, it serves again.
#[test]
fn losing_quorum_is_unavailable_promptly() {
    let Some(mut cluster) = EtcdCluster::start(3) else {
        return;
    };
    let store = open(&cluster.url("quorum")).unwrap();
    store.commit(&[], &[put(b"a", b"1")]).unwrap();
    cluster.kill(0);
    cluster.kill(1);
    let timed = |op: &dyn Fn() -> Result<u64, StoreError>| {
        let started = Instant::now();
        let result = op();
        (result, started.elapsed())
    };
    let (read, read_took) = timed(&|| store.get(b"a").map(|_| 0));
    let (commit, commit_took) = timed(&|| store.commit(&[], &[put(b"b", b"2")]));
    eprintln!(
        "without quorum: get {read:?} after {read_took:?}; commit {commit:?} after {commit_took:?}"
    );
    assert!(matches!(read, Err(StoreError::Unavailable(_))), "{read:?}");
    match commit {
        Err(StoreError::Unavailable(_)) => {}
        // A commit cut off in flight may have reached a leader: the outcome is unknown.
        Err(StoreError::Internal(msg)) => assert!(msg.contains("unknown"), "{msg}"),
        other => panic!("commit: {other:?}"),
    }
    // The leader wait (3 s) and a request timeout (5 s), with room for a slow machine.
    for took in [read_took, commit_took] {
        assert!(took < Duration::from_secs(15), "took {took:?}");
    }
    cluster.restart(1);
    cluster.wait_for_leader(Duration::from_secs(30));
    assert_eq!(store.get(b"a").unwrap().unwrap().value, b"1");
}

/// What one worker saw.
#[derive(Default)]
struct Tally {
    /// Operations acknowledged as done.
    acknowledged: AtomicU64,
    /// Operations that failed with the outcome unknown (a commit cut off in flight).
    unknown: AtomicU64,
    /// Operations that failed as unavailable (nothing written).
    unavailable: AtomicU64,
}

/// Transfers and deposits through `ds` threads and `ads` tasks while the cluster's leader
/// is killed with SIGKILL and later restarted: the load goes on, every acknowledged deposit
/// is in the final balance, the total of the transfer accounts is conserved, every
/// acknowledged transfer has its record, and `check` is clean.
#[test]
fn a_killed_leader_loses_no_acknowledged_write() {
    const ACCOUNTS: [&str; 4] = ["a", "b", "c", "d"];
    const START: i64 = 1_000;
    let Some(mut cluster) = EtcdCluster::start(3) else {
        return;
    };
    let url = cluster.url("fault");
    let retry = RetryPolicy {
        retries: 10_000,
        base_delay: Duration::from_micros(500),
        max_delay: Duration::from_millis(20),
    };
    let db = ds::Datastore::builder()
        .retry_policy(retry)
        .store_url(&url)
        .build()
        .unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let adb = runtime.block_on(async {
        ads::Datastore::builder()
            .retry_policy(retry)
            .store_url(&url)
            .build()
            .await
            .unwrap()
    });
    db.put_many(&ACCOUNTS.map(|n| account(n, START))).unwrap();
    db.put(&account("savings", 0)).unwrap();
    let keys: Vec<Key> = ACCOUNTS.iter().map(|n| Key::name("Account", *n)).collect();
    let savings = Key::name("Account", "savings");

    let transfers = Tally::default();
    let deposits = Tally::default();
    let stop = std::sync::atomic::AtomicBool::new(false);
    let begun = Instant::now();
    // Completion times of acknowledged operations, in ms since `begun`, for the pauses.
    let done: std::sync::Mutex<Vec<u64>> = std::sync::Mutex::new(Vec::new());
    let (mut killed_at, mut restarted_at) = (0, 0);
    std::thread::scope(|scope| {
        for worker in 0..6usize {
            let (db, adb, keys, savings) = (&db, adb.clone(), &keys, &savings);
            let (transfers, deposits, stop, done) = (&transfers, &deposits, &stop, &done);
            let handle = runtime.handle().clone();
            scope.spawn(move || {
                let mut seed = 0x9E37_79B9_7F4A_7C15 ^ (worker as u64 + 1);
                let use_ads = worker % 2 == 1;
                let depositor = worker >= 4;
                while !stop.load(Ordering::Relaxed) {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    let (result, tally) = if depositor {
                        let result = if use_ads {
                            handle.block_on(adb.deposit(savings, 1)).map(|_| ())
                        } else {
                            db.deposit(savings, 1).map(|_| ())
                        };
                        (result, deposits)
                    } else {
                        let from = &keys[(seed % 4) as usize];
                        let to = &keys[((seed >> 8) % 4) as usize];
                        let amount = ((seed >> 16) % 50) as i64 + 1;
                        let result = if use_ads {
                            handle.block_on(adb.transfer(from, to, amount)).map(|_| ())
                        } else {
                            db.transfer(from, to, amount).map(|_| ())
                        };
                        (result, transfers)
                    };
                    match result {
                        Ok(()) => {
                            tally.acknowledged.fetch_add(1, Ordering::Relaxed);
                            let at = begun.elapsed().as_millis() as u64;
                            done.lock().unwrap().push(at);
                        }
                        Err(Error::FailedPrecondition(_)) => {}
                        Err(Error::Store(StoreError::Internal(msg))) if msg.contains("unknown") => {
                            tally.unknown.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(Error::Store(StoreError::Unavailable(_))) => {
                            tally.unavailable.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(err) => panic!("worker {worker}: {err}"),
                    }
                }
            });
        }
        std::thread::sleep(Duration::from_secs(2));
        let leader = cluster.leader().expect("the cluster has a leader");
        killed_at = begun.elapsed().as_millis() as u64;
        cluster.kill(leader);
        eprintln!("killed the leader, member {leader}, at {killed_at} ms");
        std::thread::sleep(Duration::from_secs(4));
        restarted_at = begun.elapsed().as_millis() as u64;
        cluster.restart(leader);
        std::thread::sleep(Duration::from_secs(3));
        stop.store(true, Ordering::Relaxed);
    });
    cluster.wait_for_leader(Duration::from_secs(30));

    let mut times = done.into_inner().unwrap();
    times.sort_unstable();
    let after_kill = times.iter().filter(|t| **t > killed_at).count();
    let after_restart = times.iter().filter(|t| **t > restarted_at).count();
    let (pause, pause_at) = times
        .windows(2)
        .map(|w| (w[1] - w[0], w[0]))
        .max()
        .unwrap_or((0, 0));
    let count = |t: &Tally| {
        (
            t.acknowledged.load(Ordering::Relaxed),
            t.unknown.load(Ordering::Relaxed),
            t.unavailable.load(Ordering::Relaxed),
        )
    };
    let (moved, moved_unknown, moved_unavailable) = count(&transfers);
    let (deposited, deposit_unknown, deposit_unavailable) = count(&deposits);
    eprintln!(
        "etcd leader kill: transfers {moved} acknowledged, {moved_unknown} unknown, \
         {moved_unavailable} unavailable; deposits {deposited} acknowledged, {deposit_unknown} \
         unknown, {deposit_unavailable} unavailable; {after_kill} operations done after the \
         kill, {after_restart} after the restart; longest pause {pause} ms (from {pause_at} ms; \
         kill at {killed_at} ms)"
    );
    assert!(after_kill > 0 && after_restart > 0, "the load stopped");
    assert!(moved > 0 && deposited > 0);

    let balances: Vec<i64> = db
        .get_many(&keys)
        .unwrap()
        .into_iter()
        .map(balance)
        .collect();
    assert_eq!(
        balances.iter().sum::<i64>(),
        START * ACCOUNTS.len() as i64,
        "money was created or destroyed: {balances:?}"
    );
    assert!(balances.iter().all(|b| *b >= 0), "{balances:?}");
    let saved = balance(db.get(&savings).unwrap()) as u64;
    assert!(
        (deposited..=deposited + deposit_unknown).contains(&saved),
        "savings {saved}: {deposited} acknowledged deposits, {deposit_unknown} unknown"
    );
    let records = ds_tests::transfer_records(&db, &keys);
    assert!(
        (moved..=moved + moved_unknown).contains(&records),
        "{records} transfer records: {moved} acknowledged, {moved_unknown} unknown"
    );
    let report = db.check().unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    // The checks above read through `ds`; `ads` sees the same.
    let seen = runtime.block_on(adb.get(&savings)).unwrap();
    assert_eq!(balance(seen) as u64, saved);
}

/// A cluster whose space quota is full refuses writes; the store says `unavailable` and
/// what to run, and reads go on.
#[test]
fn a_full_database_is_unavailable_with_what_to_do() {
    let Some(cluster) = EtcdCluster::start_with(1, &["--quota-backend-bytes=1048576"]) else {
        return;
    };
    let store = open(&cluster.url("full")).unwrap();
    let value = vec![7u8; 64 << 10];
    let mut refused = None;
    for i in 0..200u32 {
        match store.commit(&[], &[put(format!("k{i}").as_bytes(), &value)]) {
            Ok(_) => {}
            Err(err) => {
                refused = Some((i, err));
                break;
            }
        }
    }
    let Some((written, err)) = refused else {
        panic!("200 writes of 64 KiB fit a 1 MiB quota");
    };
    match &err {
        StoreError::Unavailable(msg) => {
            for says in [
                "database space exceeded",
                "etcdctl compact",
                "etcdctl defrag",
                "alarm disarm",
            ] {
                assert!(msg.contains(says), "{msg}");
            }
        }
        other => panic!("{other:?}"),
    }
    eprintln!("refused after {written} writes: {err}");
    assert_eq!(store.get(b"k0").unwrap().unwrap().value, value);
}
