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

/// One mapping of `/proc/self/smaps`: where it is, what backs it, and its resident KiB.
#[derive(Debug, Clone)]
struct Mapping {
    start: u64,
    end: u64,
    /// The pathname column: empty for anonymous memory, `/memfd:…` for the data image.
    name: String,
    writable: bool,
    rss_kib: u64,
}

/// Every mapping of this process.
fn smaps() -> Vec<Mapping> {
    let text = std::fs::read_to_string("/proc/self/smaps").unwrap_or_default();
    let mut mappings: Vec<Mapping> = Vec::new();
    for line in text.lines() {
        let mut fields = line.split_whitespace();
        let Some(first) = fields.next() else { continue };
        if let Some((start, end)) = first.split_once('-')
            && let (Ok(start), Ok(end)) =
                (u64::from_str_radix(start, 16), u64::from_str_radix(end, 16))
        {
            let perms = fields.next().unwrap_or("");
            // offset, device, inode, then the pathname (which may hold spaces).
            let name = fields.skip(3).collect::<Vec<_>>().join(" ");
            mappings.push(Mapping {
                start,
                end,
                name,
                writable: perms.as_bytes().get(1) == Some(&b'w'),
                rss_kib: 0,
            });
        } else if first == "Rss:"
            && let Some(mapping) = mappings.last_mut()
        {
            mapping.rss_kib = fields.next().and_then(|v| v.parse().ok()).unwrap_or(0);
        }
    }
    mappings
}

/// Resident KiB of the process split by what holds it: the component's data image (shared
/// memfd pages), the rest of the instances' linear memories (private pages they wrote),
/// the fiber stacks, and everything else (the host's heap: stores, instances' host state,
/// tasks and futures; thread stacks).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Resident {
    pub(crate) image: u64,
    pub(crate) linear_memory: u64,
    pub(crate) fiber_stacks: u64,
    pub(crate) host: u64,
}

impl Resident {
    pub(crate) fn now() -> Resident {
        let mappings = smaps();
        // The pooling allocator reserves every slot's linear memory in one region; the
        // image is mapped at the start of each used slot, so the region runs from the first
        // image mapping to a slot past the last.
        let images: Vec<&Mapping> = mappings
            .iter()
            .filter(|m| m.name.contains("memfd:"))
            .collect();
        let pool = images.iter().map(|m| m.start).min().zip(
            images
                .iter()
                .map(|m| m.end)
                .max()
                .map(|end| end + 2 * host_core::runtime::MAX_GUEST_MEMORY as u64),
        );
        let stack = host_core::runtime::ASYNC_STACK_SIZE as u64;
        let mut resident = Resident::default();
        for m in &mappings {
            let size = m.end - m.start;
            if m.name.contains("memfd:") {
                resident.image += m.rss_kib;
            } else if m.name.is_empty()
                && pool.is_some_and(|(low, high)| m.start >= low && m.end <= high)
            {
                resident.linear_memory += m.rss_kib;
            } else if m.name.is_empty() && m.writable && size == stack {
                // A fiber stack: the pool puts a guard page between stacks, so each is a
                // mapping of its own, of exactly the configured size.
                resident.fiber_stacks += m.rss_kib;
            } else {
                resident.host += m.rss_kib;
            }
        }
        resident
    }

    /// The pages of one instance's linear memory (the lowest slot's) that are resident, as
    /// a line of one character per 4 KiB page from address 0: `s` shared with the image,
    /// `p` private (written), `.` not resident. Reads `/proc/self/pagemap`.
    pub(crate) fn first_slot_pages() -> String {
        use std::io::{Read as _, Seek as _};
        let mappings = smaps();
        let Some(image) = mappings
            .iter()
            .filter(|m| m.name.contains("memfd:"))
            .min_by_key(|m| m.start)
        else {
            return String::new();
        };
        // The memory before the image (the guest's stack, placed first), the image, then
        // the rest of the memory (anonymous): the accessible part of the slot, up to 256 KiB.
        let start = mappings
            .iter()
            .find(|m| m.end == image.start && m.name.is_empty() && m.writable)
            .map_or(image.start, |m| m.start);
        let mut end = image.end;
        while let Some(next) = mappings
            .iter()
            .find(|m| m.start == end && m.name.is_empty() && m.writable)
        {
            end = next.end;
        }
        let end = end.min(start + (256 << 10));
        let Ok(mut pagemap) = std::fs::File::open("/proc/self/pagemap") else {
            return String::new();
        };
        let mut line = String::new();
        for page in (start..end).step_by(4096) {
            let mut entry = [0u8; 8];
            if pagemap
                .seek(std::io::SeekFrom::Start(page / 4096 * 8))
                .is_err()
                || pagemap.read_exact(&mut entry).is_err()
            {
                break;
            }
            let entry = u64::from_le_bytes(entry);
            line.push(match (entry >> 63 & 1, entry >> 61 & 1) {
                (0, _) => '.',
                (_, 1) => 's',
                _ => 'p',
            });
        }
        line
    }

    fn minus(self, before: Resident) -> Resident {
        Resident {
            image: self.image.saturating_sub(before.image),
            linear_memory: self.linear_memory.saturating_sub(before.linear_memory),
            fiber_stacks: self.fiber_stacks.saturating_sub(before.fiber_stacks),
            host: self.host.saturating_sub(before.host),
        }
    }
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
    let parts_before = Resident::now();
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
    let parts = Resident::now().minus(parts_before);
    let pages = Resident::first_slot_pages();
    gate.add_permits(calls);
    rt.block_on(async {
        for task in tasks {
            task.await??;
        }
        anyhow::Ok(())
    })?;
    let per_call = |kib: u64| kib as f64 / calls as f64;
    println!(
        "{:.2} {:.2} {:.2} {:.2} {:.2} {:.2} {}",
        per_call(during.saturating_sub(before)),
        per_call(shared_during.saturating_sub(shared_before)),
        per_call(parts.image),
        per_call(parts.linear_memory),
        per_call(parts.fiber_stacks),
        per_call(parts.host),
        if pages.is_empty() { "-" } else { &pages },
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
         a fiber stack per in-flight call; native async holds only its future. VmRSS counts \
         the component's read-only data image once per instance (`RssShmem`: every instance \
         maps the same memfd pages), though it is held in memory once.",
    );
    let exe = std::env::current_exe()?;
    let mut rows = Vec::new();
    let mut pages = String::new();
    for calls in [1_000usize, 10_000] {
        let mut cells = vec![calls.to_string()];
        let mut split = Vec::new();
        for mode in ["native", "ads"] {
            let out = Command::new(&exe)
                .args(["rss", mode, &calls.to_string()])
                .env("DS_CACHE_DIR", root.join("target/bench-cache"))
                .output()?;
            if !out.status.success() {
                bail!("rss child failed: {}", String::from_utf8_lossy(&out.stderr));
            }
            let text = String::from_utf8_lossy(&out.stdout).to_string();
            let fields: Vec<String> = text.split_whitespace().map(str::to_string).collect();
            cells.push(fields.first().cloned().unwrap_or_else(|| "?".into()));
            if mode == "ads" {
                // RssShmem's share, then smaps' split: image, linear memory, stacks, host;
                // then the page map of one instance.
                split = fields.get(1..6).map(<[String]>::to_vec).unwrap_or_default();
                pages = fields.get(6).cloned().unwrap_or_default();
            }
        }
        let number = |cell: Option<&String>| cell.and_then(|c| c.parse::<f64>().ok());
        // What the calls hold that no other holds: all but the shared image pages.
        let private = match (number(cells.get(2)), number(split.first())) {
            (Some(total), Some(shared)) => format!("{:.2}", total - shared),
            _ => "?".into(),
        };
        cells[2] = format!("**{}**", cells[2]);
        cells.push(private);
        cells.extend(split);
        rows.push(cells);
    }
    report.table(
        &[
            "in-flight calls",
            "native async KiB/call",
            "ads KiB/call (VmRSS)",
            "ads KiB/call held privately",
            "shared image pages (RssShmem)",
            "image mappings (smaps: the shared pages and the one written)",
            "linear memory, private pages",
            "fiber stack",
            "host heap and the rest",
        ],
        &rows,
    );
    report.out.push_str(
        "*Held privately* is VmRSS less the shared image pages: the memory each call in \
         flight adds. The split reads `/proc/self/smaps` before and while the calls wait: \
         the image is the memfd mappings (the component's data, mapped into each instance \
         and counted there once more, though held once: the kernel maps the whole 32 KiB \
         image around the first page read, whatever is read), linear memory the rest of the \
         pooling allocator's memory region (pages instances wrote), fiber stacks the stack \
         pool's mappings, and the host heap everything else (each call's wasmtime `Store` and \
         instance state, its task and futures).\n\n",
    );
    if !pages.is_empty() && pages != "-" {
        let _ = writeln!(
            report.out,
            "One instance's linear memory while its call waits, a character per 4 KiB page \
             from address 0 (`p` private, written; `s` the shared image; `.` untouched): \
             `{pages}`. The guest puts its 64 KiB stack first (the call used its top page), \
             then the data image (the last image page holds the statics and the heap's start, \
             so it is written), then the heap.\n"
        );
    }
    Ok(())
}
