//! Helpers for the cross-host and cross-store tests in this directory.
//!
//! The tests run the same operations through `ds` (blocking) and `ads` (async), over every
//! store, and through both binaries.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use host_core::store::{
    AsyncStore, BoxFuture, Check, Direction, Entry, KeyRange, MemoryStore, StoreError, Versioned, Write,
};

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ is in the workspace").to_path_buf()
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| workspace_root().join("target"))
}

/// Runs cargo in the workspace with `args`, returning its output.
pub fn cargo(args: &[&str]) -> Output {
    Command::new(env!("CARGO"))
        .args(args)
        .current_dir(workspace_root())
        .output()
        .expect("cargo runs")
}

/// The path of the `ds` or `ads` binary, built (once per test process) if needed.
pub fn binary(name: &str) -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let out = cargo(&["build", "-q", "-p", "host-sync", "-p", "host-async", "--bins"]);
        assert!(out.status.success(), "building the binaries failed:\n{}", String::from_utf8_lossy(&out.stderr));
    });
    target_dir().join("debug").join(name)
}

/// An async store that sleeps before answering each `get`, and records how many `get`s were
/// waiting at once: the proof that `ads` overlaps I/O, without timing anything.
pub struct SleepStore {
    inner: MemoryStore,
    delay: Duration,
    in_flight: AtomicUsize,
    peak: AtomicUsize,
}

impl SleepStore {
    /// A store over an empty memory store whose `get`s each wait `delay`.
    pub fn new(delay: Duration) -> Self {
        SleepStore { inner: MemoryStore::new(), delay, in_flight: AtomicUsize::new(0), peak: AtomicUsize::new(0) }
    }

    /// The most `get`s that were in flight at the same moment.
    pub fn peak_in_flight(&self) -> usize {
        self.peak.load(Ordering::SeqCst)
    }
}

impl AsyncStore for SleepStore {
    fn get(&self, key: Vec<u8>) -> BoxFuture<'_, Result<Option<Versioned>, StoreError>> {
        Box::pin(async move {
            let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            self.peak.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(self.delay).await;
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            AsyncStore::get(&self.inner, key).await
        })
    }

    fn get_many(&self, keys: Vec<Vec<u8>>) -> BoxFuture<'_, Result<Vec<Option<Versioned>>, StoreError>> {
        AsyncStore::get_many(&self.inner, keys)
    }

    fn scan(&self, range: KeyRange, limit: u32, direction: Direction) -> BoxFuture<'_, Result<Vec<Entry>, StoreError>> {
        AsyncStore::scan(&self.inner, range, limit, direction)
    }

    fn commit(&self, checks: Vec<Check>, writes: Vec<Write>) -> BoxFuture<'_, Result<u64, StoreError>> {
        AsyncStore::commit(&self.inner, checks, writes)
    }
}
