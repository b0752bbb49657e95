//! (i) The etcd store against etcd's own Rust client, on a 3-member cluster of loopback
//! processes started for the run.

use etcd_client::{Compare, CompareOp, GetOptions, SortOrder, SortTarget, Txn, TxnOp};
use host_core::store::EtcdStore;

use crate::prelude::*;

/// The store's key for `key` under the bench's prefix (the store writes `PREFIX/KEY`).
fn full(key: &[u8]) -> Vec<u8> {
    let mut full = b"bench/".to_vec();
    full.extend_from_slice(key);
    full
}

fn task_key(task: usize) -> Vec<u8> {
    format!("k{task:05}").into_bytes()
}

/// Operations per second of `tasks` tasks of `per` operations each, `task(t)` the t-th.
fn tasks_rate<F, E>(
    rt: &tokio::runtime::Runtime,
    tasks: usize,
    per: usize,
    task: impl Fn(usize) -> F,
) -> Result<f64>
where
    F: std::future::Future<Output = Result<(), E>> + Send + 'static,
    E: std::error::Error + Send + Sync + 'static,
{
    rt.block_on(async {
        let started = Instant::now();
        let handles: Vec<_> = (0..tasks).map(|t| tokio::spawn(task(t))).collect();
        for handle in handles {
            handle.await??;
        }
        Ok((tasks * per) as f64 / started.elapsed().as_secs_f64())
    })
}

/// Gets per second of the store, of keys that exist.
fn store_gets(
    rt: &tokio::runtime::Runtime,
    store: &Arc<EtcdStore>,
    tasks: usize,
    per: usize,
) -> Result<f64> {
    tasks_rate(rt, tasks, per, |t| {
        let store = store.clone();
        async move {
            for _ in 0..per {
                store.get(task_key(t)).await?;
            }
            Ok::<_, StoreError>(())
        }
    })
}

/// The same ranges with etcd-client directly.
fn client_gets(
    rt: &tokio::runtime::Runtime,
    client: &etcd_client::Client,
    tasks: usize,
    per: usize,
) -> Result<f64> {
    tasks_rate(rt, tasks, per, |t| {
        let mut kv = client.kv_client();
        async move {
            for _ in 0..per {
                kv.get(full(&task_key(t)), None).await?;
            }
            Ok::<_, etcd_client::Error>(())
        }
    })
}

/// Commits per second of the store: each task rewrites its own key, checking the version
/// it wrote last (the store's whole transaction: compare, put, the failure branch's read).
fn store_commits(
    rt: &tokio::runtime::Runtime,
    store: &Arc<EtcdStore>,
    tasks: usize,
    per: usize,
) -> Result<f64> {
    tasks_rate(rt, tasks, per, |t| {
        let store = store.clone();
        async move {
            let key = task_key(t);
            let mut version = store.get(key.clone()).await?.map(|v| v.version);
            for i in 0..per {
                let check = Check {
                    key: key.clone(),
                    version,
                };
                let write = Write {
                    key: key.clone(),
                    value: Some(i.to_le_bytes().to_vec()),
                };
                version = Some(store.commit(vec![check], vec![write]).await?);
            }
            Ok::<_, StoreError>(())
        }
    })
}

/// The same transactions with etcd-client directly.
fn client_commits(
    rt: &tokio::runtime::Runtime,
    client: &etcd_client::Client,
    tasks: usize,
    per: usize,
) -> Result<f64> {
    tasks_rate(rt, tasks, per, |t| {
        let mut kv = client.kv_client();
        async move {
            let key = full(&task_key(t));
            let mut revision = kv
                .get(key.clone(), None)
                .await?
                .kvs()
                .first()
                .map_or(0, |kv| kv.mod_revision());
            for i in 0..per {
                let compare = if revision == 0 {
                    Compare::create_revision(key.clone(), CompareOp::Equal, 0)
                } else {
                    Compare::mod_revision(key.clone(), CompareOp::Equal, revision)
                };
                let txn = Txn::new()
                    .when([compare])
                    .and_then([TxnOp::put(key.clone(), (i as u64).to_le_bytes(), None)])
                    .or_else([TxnOp::get(
                        key.clone(),
                        Some(GetOptions::new().with_keys_only()),
                    )]);
                let response = kv.txn(txn).await?;
                assert!(response.succeeded(), "no one else writes this key");
                revision = response.header().map_or(0, |h| h.revision());
            }
            Ok::<_, etcd_client::Error>(())
        }
    })
}

pub(crate) fn etcd(report: &mut Report) -> Result<()> {
    report.section(
        "(i) etcd store",
        "Operations per second of the etcd store (`etcd://`, the async store `ads` runs; `ds` \
         runs the same store through `BlockOn`) against etcd's own Rust client \
         (`etcd-client`) sending the same requests, on a 3-member etcd 3.4 cluster of \
         loopback processes started for the run (the flags `README.md` gives). Gets are \
         linearizable ranges of one key; commits rewrite a key of the task's own, checking \
         the version written last (compare, put, and the failure branch's read). N tasks on \
         a 2-thread runtime; the two variants take turns, five slices each, and each reports \
         its median slice. Then the cost of a reverse page (etcd sorts the whole range for a \
         descending read) and the longest gap between commits when the leader is killed.",
    );
    let Some(mut cluster) = ds_tests::EtcdCluster::start(3) else {
        let _ = writeln!(report.out, "No etcd installed: skipped.\n");
        return Ok(());
    };
    let rt = multi_thread();
    let url = cluster.url("bench");
    let host_core::store::StoreUrl::Etcd(parsed) = url.parse()? else {
        bail!("not an etcd URL: {url}");
    };
    let store = host_core::store::etcd::open_on(rt.handle(), &parsed)?;
    let endpoints: Vec<String> = (0..cluster.size()).map(|i| cluster.endpoint(i)).collect();
    let client = rt.block_on(etcd_client::Client::connect(&endpoints, None))?;
    rt.block_on(async {
        let writes = (0..64)
            .map(|t| Write {
                key: task_key(t),
                value: Some(vec![7; 100]),
            })
            .collect();
        store.commit(Vec::new(), writes).await
    })?;

    let mut rows = Vec::new();
    for (op, base) in [("get", 2_000usize), ("commit", 400)] {
        for tasks in [1usize, 64] {
            let per = (report.iters(base as u64) as usize * tasks.min(8) / tasks / TURNS).max(2);
            let [native, ours] = take_turns(
                TURNS,
                [
                    &mut || match op {
                        "get" => client_gets(&rt, &client, tasks, per),
                        _ => client_commits(&rt, &client, tasks, per),
                    },
                    &mut || match op {
                        "get" => store_gets(&rt, &store, tasks, per),
                        _ => store_commits(&rt, &store, tasks, per),
                    },
                ],
            )?;
            rows.push(vec![
                op.into(),
                tasks.to_string(),
                format!("{native:.0}"),
                format!("{ours:.0}"),
                format!("**{:.2}**", ours / native),
            ]);
        }
    }
    report.table(
        &[
            "op",
            "tasks",
            "etcd-client ops/s",
            "etcd store ops/s",
            "store / client",
        ],
        &rows,
    );

    // Reverse paging: a page of 100 at the end of a range of N keys, both ways.
    let mut rows = Vec::new();
    for size in [1_000usize, 10_000] {
        let prefix = format!("r{size}/");
        rt.block_on(async {
            for chunk in (0..size).collect::<Vec<_>>().chunks(1_000) {
                let writes = chunk
                    .iter()
                    .map(|i| Write {
                        key: format!("{prefix}{i:06}").into_bytes(),
                        value: Some(vec![1; 100]),
                    })
                    .collect();
                store.commit(Vec::new(), writes).await?;
            }
            Ok::<_, StoreError>(())
        })?;
        let range = KeyRange {
            start: prefix.clone().into_bytes(),
            end: Some(format!("r{size}0").into_bytes()),
        };
        let pages = report.iters(200) as usize;
        let page_rate = |direction: Direction| {
            let store = store.clone();
            let range = range.clone();
            rt.block_on(async move {
                let started = Instant::now();
                for _ in 0..pages {
                    let page = store.scan(range.clone(), 100, direction).await?;
                    assert_eq!(page.len(), 100);
                }
                Ok::<_, StoreError>(started.elapsed().as_secs_f64() * 1e6 / pages as f64)
            })
        };
        let [forward, reverse] = take_turns(
            TURNS,
            [&mut || Ok(page_rate(Direction::Forward)?), &mut || {
                Ok(page_rate(Direction::Reverse)?)
            }],
        )?;
        // etcd-client, for the same reverse page: the cost is the server's.
        let reverse_client = rt.block_on(async {
            let mut kv = client.kv_client();
            let started = Instant::now();
            for _ in 0..pages {
                let options = GetOptions::new()
                    .with_range(full(format!("r{size}0").as_bytes()))
                    .with_limit(100)
                    .with_sort(SortTarget::Key, SortOrder::Descend);
                kv.get(full(prefix.as_bytes()), Some(options)).await?;
            }
            Ok::<_, etcd_client::Error>(started.elapsed().as_secs_f64() * 1e6 / pages as f64)
        })?;
        rows.push(vec![
            size.to_string(),
            format!("{forward:.0}"),
            format!("{reverse:.0}"),
            format!("**{:.1}×**", reverse / forward),
            format!("{reverse_client:.0}"),
        ]);
    }
    report.table(
        &[
            "keys in range",
            "forward page of 100 µs",
            "reverse page of 100 µs",
            "reverse / forward",
            "etcd-client reverse page µs",
        ],
        &rows,
    );

    // Failover: one task commits in a loop; the leader is killed with SIGKILL.
    let mut gaps = Vec::new();
    for _ in 0..3 {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writer = {
            let (store, stop) = (store.clone(), stop.clone());
            rt.spawn(async move {
                let mut last = Instant::now();
                let (mut longest, mut failed) = (Duration::ZERO, 0u32);
                while !stop.load(Ordering::Relaxed) {
                    let write = Write {
                        key: b"failover".to_vec(),
                        value: Some(vec![1]),
                    };
                    match store.commit(Vec::new(), vec![write]).await {
                        Ok(_) => {
                            longest = longest.max(last.elapsed());
                            last = Instant::now();
                        }
                        Err(_) => failed += 1,
                    }
                }
                (longest, failed)
            })
        };
        std::thread::sleep(Duration::from_millis(1000));
        let leader = cluster.leader().context("the cluster has no leader")?;
        cluster.kill(leader);
        std::thread::sleep(Duration::from_millis(4000));
        stop.store(true, Ordering::Relaxed);
        let (longest, failed) = rt.block_on(writer)?;
        cluster.restart(leader);
        cluster.wait_for_leader(Duration::from_secs(30));
        gaps.push((longest, failed));
    }
    let shown: Vec<String> = gaps
        .iter()
        .map(|(gap, failed)| format!("{} ms ({failed} failed)", gap.as_millis()))
        .collect();
    let _ = writeln!(
        report.out,
        "Longest gap between successful commits while the leader is killed (one writer, \
         three kills): {}.\n",
        shown.join(", ")
    );
    eprintln!("   failover gaps: {}", shown.join(", "));
    Ok(())
}
