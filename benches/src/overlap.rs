//! (c) Overlap with 5 ms of store latency.

use crate::prelude::*;

/// A store whose `get` takes `delay` (async sleep, or thread sleep in blocking mode).
pub(crate) struct DelayStore {
    inner: MemoryStore,
    delay: Duration,
}

impl Store for DelayStore {
    fn get(&self, key: &[u8]) -> Result<Option<Versioned>, StoreError> {
        std::thread::sleep(self.delay);
        Store::get(&self.inner, key)
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
        Store::commit(&self.inner, checks, writes)
    }
}

impl AsyncStore for DelayStore {
    fn get(&self, key: Vec<u8>) -> BoxFuture<'_, Result<Option<Versioned>, StoreError>> {
        Box::pin(async move {
            tokio::time::sleep(self.delay).await;
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
        AsyncStore::scan(&self.inner, range, limit, direction)
    }
    fn commit(
        &self,
        checks: Vec<Check>,
        writes: Vec<Write>,
    ) -> BoxFuture<'_, Result<u64, StoreError>> {
        AsyncStore::commit(&self.inner, checks, writes)
    }
}

pub(crate) fn delay_store(delay: Duration) -> Arc<DelayStore> {
    let store = Arc::new(DelayStore {
        inner: MemoryStore::new(),
        delay,
    });
    let mut model = Model::new(NativeTransport(&store.inner), NoLog);
    model.put(&entity()).expect("seed");
    store
}

/// `total` gets of the shared key by the model written as async Rust over `store`,
/// `concurrency` at a time on `rt`: the wall time and the sorted latencies.
pub(crate) fn native_gets<S: AsyncStore + 'static>(
    rt: &tokio::runtime::Runtime,
    store: &Arc<S>,
    key: &Arc<Key>,
    total: usize,
    concurrency: usize,
) -> (Duration, Vec<f64>) {
    let (store, key) = (store.clone(), key.clone());
    rt.block_on(concurrent_gets(total, concurrency, move || {
        let (store, key) = (store.clone(), key.clone());
        async move {
            std::hint::black_box(native_async_get(store.as_ref(), &key).await.expect("get"));
        }
    }))
}

/// The same gets through `ads`.
pub(crate) fn ads_gets(
    rt: &tokio::runtime::Runtime,
    db: &ads::Datastore,
    key: &Arc<Key>,
    total: usize,
    concurrency: usize,
) -> (Duration, Vec<f64>) {
    let (db, key) = (db.clone(), key.clone());
    rt.block_on(concurrent_gets(total, concurrency, move || {
        let (db, key) = (db.clone(), key.clone());
        async move {
            std::hint::black_box(db.get(&key).await.expect("get"));
        }
    }))
}

/// Runs `run` (`ops` operations) and returns its result with the process's CPU time per
/// operation, in µs.
pub(crate) fn cpu_per_op<R>(ops: usize, run: impl FnOnce() -> R) -> Result<(R, f64)> {
    let before = process_cpu()?;
    let result = run();
    let used = process_cpu()?.saturating_sub(before);
    Ok((result, used.as_secs_f64() * 1e6 / ops as f64))
}

/// The CPU time this process has used so far: all its threads together, ended ones included
/// (`CLOCK_PROCESS_CPUTIME_ID`, the kernel's scheduler accounting in nanoseconds: finer than
/// `getrusage`'s ticks on short runs, and it keeps the time of the threads a loop joined).
pub(crate) fn process_cpu() -> Result<Duration> {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid `timespec` for the call to fill.
    if unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut now) } != 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    Ok(Duration::new(
        u64::try_from(now.tv_sec)?,
        u32::try_from(now.tv_nsec)?,
    ))
}

/// Runs `total` gets as `concurrency` tasks; returns (wall, sorted latencies in ms).
pub(crate) async fn concurrent_gets<F, Fut>(
    total: usize,
    concurrency: usize,
    get: F,
) -> (Duration, Vec<f64>)
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let (get, next) = (get.clone(), next.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                while next.fetch_add(1, Ordering::Relaxed) < total {
                    let t = Instant::now();
                    get().await;
                    latencies.push(t.elapsed().as_secs_f64() * 1000.0);
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::with_capacity(total);
    for task in tasks {
        latencies.extend(task.await.expect("task"));
    }
    let wall = start.elapsed();
    latencies.sort_by(f64::total_cmp);
    (wall, latencies)
}

pub(crate) fn overlap(report: &mut Report) -> Result<()> {
    report.section(
        "(c) Overlap: gets against a store with 5 ms of latency",
        "10,000 gets, at each concurrency, on a 2-worker tokio runtime: `ads` (warm instances) \
         against the same logic as native async Rust on the same runtime and store. `ds` runs \
         them serially (a smaller count, extrapolated to 10,000: marked *extrapolated*). The \
         ideal is 10,000 / concurrency × 5 ms; the ratio to native async is the one to read. \
         Each concurrency gets one untimed warm-up round first (steady state, not first burst: \
         a first burst of N calls also instantiates N instances, about 8 µs each), then the \
         two take three turns: walls are the median turn, latencies pool all three. CPU is \
         the process's CPU time per get (all threads, from `CLOCK_PROCESS_CPUTIME_ID`), \
         median turn: once the two cores are saturated, the wall ratio tends to the CPU \
         ratio.",
    );
    let total = if report.quick { 2_000 } else { 10_000 };
    let rt = multi_thread();
    let store = delay_store(Duration::from_millis(5));
    let key = Arc::new(key());
    let mut rows = Vec::new();
    let (mut native_series, mut ads_series) = (Vec::new(), Vec::new());
    let (mut native_p99, mut ads_p99) = (Vec::new(), Vec::new());
    let db = rt.block_on(async_db(store.clone(), Isolation::Warm))?;
    for concurrency in [10usize, 100, 1_000, 10_000] {
        let concurrency = concurrency.min(total);
        // One warm-up round at this concurrency for both, so that the timed run measures the
        // steady state (for ads: a warm instance per concurrent call) and not the first burst.
        rt.block_on({
            let (store, key, db) = (store.clone(), key.clone(), db.clone());
            async move {
                let native = (0..concurrency).map(|_| native_async_get(store.as_ref(), &key));
                futures::future::join_all(native).await;
                let hosted = (0..concurrency).map(|_| db.get(&key));
                futures::future::join_all(hosted).await;
            }
        });
        // The two take turns, as in (a) and (f): the machine's drift over a run lands on
        // both alike. Walls are medians of the turns; latencies pool every turn's calls.
        let (mut native_walls, mut native_lat, mut ads_walls, mut ads_lat) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let (mut native_cpu, mut ads_cpu) = (Vec::new(), Vec::new());
        for _ in 0..OVERLAP_TURNS {
            let ((wall, lat), cpu) =
                cpu_per_op(total, || native_gets(&rt, &store, &key, total, concurrency))?;
            native_cpu.push(cpu);
            native_walls.push(wall.as_secs_f64());
            native_lat.extend(lat);
            let ((wall, lat), cpu) =
                cpu_per_op(total, || ads_gets(&rt, &db, &key, total, concurrency))?;
            ads_cpu.push(cpu);
            ads_walls.push(wall.as_secs_f64());
            ads_lat.extend(lat);
        }
        let (native_cpu, ads_cpu) = (median(&mut native_cpu), median(&mut ads_cpu));
        native_lat.sort_by(f64::total_cmp);
        ads_lat.sort_by(f64::total_cmp);
        let (native_wall, ads_wall) = (
            Duration::from_secs_f64(median(&mut native_walls)),
            Duration::from_secs_f64(median(&mut ads_walls)),
        );
        let ideal = (total as f64 / concurrency as f64).ceil() * 5.0;
        let (n, a) = (
            native_wall.as_secs_f64() * 1000.0,
            ads_wall.as_secs_f64() * 1000.0,
        );
        rows.push(vec![
            concurrency.to_string(),
            format!("{ideal:.0}"),
            format!("{n:.0}"),
            format!("{a:.0}"),
            format!("**{:.2}×**", a / n),
            format!(
                "{:.1} / {:.1}",
                percentile(&native_lat, 0.5),
                percentile(&native_lat, 0.99)
            ),
            format!(
                "{:.1} / {:.1}",
                percentile(&ads_lat, 0.5),
                percentile(&ads_lat, 0.99)
            ),
            format!("{native_cpu:.1} / {ads_cpu:.1}"),
            format!("{:.2}×", ads_cpu / native_cpu),
        ]);
        native_series.push((concurrency as f64, total as f64 / native_wall.as_secs_f64()));
        ads_series.push((concurrency as f64, total as f64 / ads_wall.as_secs_f64()));
        native_p99.push((concurrency as f64, percentile(&native_lat, 0.99)));
        ads_p99.push((concurrency as f64, percentile(&ads_lat, 0.99)));
    }
    let serial = 100;
    let db = sync_db(store.clone(), Isolation::Warm)?;
    let start = Instant::now();
    for _ in 0..serial {
        std::hint::black_box(db.get(&key)?);
    }
    let ds_ms = start.elapsed().as_secs_f64() * 1000.0 * total as f64 / serial as f64;
    report.table(
        &[
            "concurrency",
            "ideal ms",
            "native async ms",
            "ads ms",
            "ads / native",
            "native p50 / p99 ms",
            "ads p50 / p99 ms",
            "CPU µs per get, native / ads",
            "ads / native CPU",
        ],
        &rows,
    );
    let _ = writeln!(
        report.out,
        "`ds`, serial: {ds_ms:.0} ms for {total} gets (*extrapolated* from {serial}).\n"
    );
    report.plot(
        "overlap-throughput.svg",
        svg::line_chart(
            "gets/s with 5 ms store latency",
            "concurrency",
            "gets per second",
            &[
                svg::Series {
                    label: "native async".into(),
                    points: native_series,
                },
                svg::Series {
                    label: "ads".into(),
                    points: ads_series,
                },
            ],
            true,
        ),
    )?;
    report.plot(
        "overlap-latency.svg",
        svg::line_chart(
            "p99 latency with 5 ms store latency",
            "concurrency",
            "p99 ms",
            &[
                svg::Series {
                    label: "native async".into(),
                    points: native_p99,
                },
                svg::Series {
                    label: "ads".into(),
                    points: ads_p99,
                },
            ],
            true,
        ),
    )?;
    Ok(())
}
