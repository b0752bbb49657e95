//! (e) Resident memory per in-flight call.

use crate::prelude::*;

/// A field of /proc/self/status in KiB, e.g. `VmRSS` (all resident pages) or `RssShmem`
/// (resident shared-memory pages: here the component's data image, mapped into every
/// instance from one memfd, so counted once per instance but held once in memory).
pub(crate) fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.strip_prefix(field).is_some_and(|r| r.starts_with(':')))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

pub(crate) fn rss_kib() -> u64 {
    status_kib("VmRSS")
}

/// In a fresh process: start `calls` gets that all wait on the store, then report the RSS
/// growth per call (KiB) on stdout.
pub(crate) fn rss_child(mode: &str, calls: usize) -> Result<()> {
    host_core::runtime::configure(host_core::runtime::EngineOptions {
        max_instances: calls as u32 + 16,
    });
    let rt = multi_thread();
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let started = Arc::new(AtomicUsize::new(0));
    let store = Arc::new(GateStore {
        inner: memory_store(),
        gate: gate.clone(),
        started: started.clone(),
    });
    let key = Arc::new(key());
    let db = rt.block_on(async_db(store.clone(), Isolation::Warm))?;
    // Warm up one call (and the engine) before the baseline.
    gate.add_permits(1);
    rt.block_on(db.get(&key))?;
    started.store(0, Ordering::SeqCst);
    let before = rss_kib();
    let shared_before = status_kib("RssShmem");
    let native = mode == "native";
    let mut tasks = Vec::new();
    for _ in 0..calls {
        let (db, key, store) = (db.clone(), key.clone(), store.clone());
        tasks.push(rt.spawn(async move {
            if native {
                native_async_get(store.as_ref(), &key)
                    .await
                    .map(|_| ())
                    .map_err(|e| anyhow::anyhow!("{e}"))
            } else {
                db.get(&key)
                    .await
                    .map(|_| ())
                    .map_err(|e| anyhow::anyhow!("{e}"))
            }
        }));
    }
    while started.load(Ordering::SeqCst) < calls {
        std::thread::sleep(Duration::from_millis(5));
    }
    let during = rss_kib();
    let shared_during = status_kib("RssShmem");
    gate.add_permits(calls);
    rt.block_on(async {
        for task in tasks {
            task.await??;
        }
        anyhow::Ok(())
    })?;
    println!(
        "{:.2} {:.2}",
        (during.saturating_sub(before)) as f64 / calls as f64,
        (shared_during.saturating_sub(shared_before)) as f64 / calls as f64
    );
    Ok(())
}

/// A memory store whose `get` waits at a gate until released.
pub(crate) struct GateStore {
    inner: Arc<MemoryStore>,
    gate: Arc<tokio::sync::Semaphore>,
    started: Arc<AtomicUsize>,
}

impl AsyncStore for GateStore {
    fn get(&self, key: Vec<u8>) -> BoxFuture<'_, Result<Option<Versioned>, StoreError>> {
        Box::pin(async move {
            self.started.fetch_add(1, Ordering::SeqCst);
            let _ = self.gate.acquire().await.map(|p| p.forget());
            Store::get(self.inner.as_ref(), &key)
        })
    }
    fn get_many(
        &self,
        keys: Vec<Vec<u8>>,
    ) -> BoxFuture<'_, Result<Vec<Option<Versioned>>, StoreError>> {
        AsyncStore::get_many(self.inner.as_ref(), keys)
    }
    fn scan(
        &self,
        range: KeyRange,
        limit: u32,
        direction: Direction,
    ) -> BoxFuture<'_, Result<Vec<Entry>, StoreError>> {
        AsyncStore::scan(self.inner.as_ref(), range, limit, direction)
    }
    fn commit(
        &self,
        checks: Vec<Check>,
        writes: Vec<Write>,
    ) -> BoxFuture<'_, Result<u64, StoreError>> {
        AsyncStore::commit(self.inner.as_ref(), checks, writes)
    }
}

pub(crate) fn memory(report: &mut Report, root: &Path) -> Result<()> {
    report.section(
        "(e) Resident memory per in-flight call",
        "Each run is a fresh process: N gets are started and all wait inside the store; the \
         growth of resident memory (VmRSS) divided by N. `ads` holds an instance, a store and \
         a fiber stack per in-flight call; native async holds only its future. The last \
         column is the part of the `ads` figure that is the component's read-only data image \
         (`RssShmem`): every instance maps the same memfd pages, so they count once per \
         instance in VmRSS but are held in memory once.",
    );
    let exe = std::env::current_exe()?;
    let mut rows = Vec::new();
    for calls in [1_000usize, 10_000] {
        let mut cells = vec![calls.to_string()];
        let mut shared = String::new();
        for mode in ["native", "ads"] {
            let out = Command::new(&exe)
                .args(["rss", mode, &calls.to_string()])
                .env("DS_CACHE_DIR", root.join("target/bench-cache"))
                .output()?;
            if !out.status.success() {
                bail!("rss child failed: {}", String::from_utf8_lossy(&out.stderr));
            }
            let text = String::from_utf8_lossy(&out.stdout).to_string();
            let mut fields = text.split_whitespace();
            cells.push(fields.next().unwrap_or("?").to_string());
            if mode == "ads" {
                shared = fields.next().unwrap_or("?").to_string();
            }
        }
        cells[2] = format!("**{}**", cells[2]);
        cells.push(shared);
        rows.push(cells);
    }
    report.table(
        &[
            "in-flight calls",
            "native async KiB/call",
            "ads KiB/call",
            "of which shared image pages",
        ],
        &rows,
    );
    Ok(())
}
