//! The process-wide engine and the compiled model component, with its on-disk cache.
//!
//! The engine configuration and the component cache. Both hosts use the same configuration,
//! so a component compiled by `ds` is reused by `ads`; each [`crate::engine::Engine`]
//! compiles a component at most once (memoised by the SHA-256 of its bytes), and compiled
//! components are cached precompiled on disk between processes.
//!
//! Cache files are trusted only after a check: the file name is derived from the component
//! bytes, this crate's version and the engine's compatibility hash; the content starts with
//! a magic tag and the SHA-256 of the precompiled payload, which must match. Anything else
//! (stale, truncated, damaged) is ignored and rebuilt.

use std::hash::Hasher;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::error::Error;

/// The example model component (`guest/`), shipped prebuilt in this crate so that it builds
/// anywhere without a WebAssembly toolchain. `cargo run -p ds-build-support -- refresh`
/// rebuilds it; `tests/shipped_component.rs` checks it is byte for byte a fresh build of the
/// sources.
pub const EMBEDDED_COMPONENT: &[u8] = include_bytes!("../component/ds_guest.wasm");

/// Instances that may exist at once across the process (pool slots), unless
/// [`configure`] or `DS_MAX_INSTANCES` says otherwise.
pub const DEFAULT_MAX_INSTANCES: u32 = 1024;

/// The most instances `DS_MAX_INSTANCES` may ask for: far above any use measured (the
/// benchmark's 10,500), low enough to catch a typo before it reserves the address space.
pub const MAX_MAX_INSTANCES: u32 = 100_000;

/// Largest linear memory a model instance may grow to.
pub const MAX_GUEST_MEMORY: usize = 64 << 20;

/// Most bytes of properties one call may carry into the model (a batch put's entities, a
/// `call`'s input): a quarter of [`MAX_GUEST_MEMORY`], since the model holds the text, the
/// parsed values and the encoded rows at once. A larger batch is refused as bad input
/// before it runs, where it would otherwise run out of memory inside the model.
pub const MAX_CALL_BYTES: usize = MAX_GUEST_MEMORY / 4;

/// Refuses a call whose arguments hold `bytes` (see [`MAX_CALL_BYTES`]).
pub(crate) fn check_call_bytes(what: &str, bytes: usize) -> Result<(), crate::Error> {
    if bytes > MAX_CALL_BYTES {
        return Err(crate::Error::InvalidArgument(format!(
            "{what} holds {bytes} bytes; one call carries at most {MAX_CALL_BYTES} (a quarter \
             of the model's {} MiB of memory): split it",
            MAX_GUEST_MEMORY >> 20
        )));
    }
    Ok(())
}

/// Stack of one async call's fiber. The model's calls are shallow; small stacks keep
/// thousands of in-flight `ads` calls cheap.
pub const ASYNC_STACK_SIZE: usize = 256 << 10;

const CACHE_MAGIC: &[u8; 8] = b"DSCWASM1";

/// Which model component to run.
#[derive(Debug, Clone, Default)]
pub enum ComponentSource {
    /// The component embedded at build time (the shipped guest).
    #[default]
    Embedded,
    /// A component file, e.g. another build of the guest (`--component PATH`).
    File(PathBuf),
    /// Component bytes already in memory.
    Bytes(Arc<[u8]>),
}

/// Process-wide engine settings, fixed when the engine is first used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineOptions {
    /// Instances that may exist at once in the process: the pooling allocator reserves
    /// address space (not memory) for this many linear memories and fiber stacks up front.
    /// Calls beyond it wait (`ads`) or fail with a clear error (`ds`).
    pub max_instances: u32,
}

impl EngineOptions {
    /// The options `DS_MAX_INSTANCES` asks for (the default when it is unset), or why its
    /// value is not a number of instances: for programs that want to refuse a typo.
    pub fn from_env() -> Result<EngineOptions, String> {
        let max_instances = match std::env::var("DS_MAX_INSTANCES") {
            Err(std::env::VarError::NotPresent) => DEFAULT_MAX_INSTANCES,
            Ok(value) => value
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=MAX_MAX_INSTANCES).contains(n))
                .ok_or_else(|| {
                    format!(
                        "DS_MAX_INSTANCES={value:?} is not a number of instances from 1 to \
                         {MAX_MAX_INSTANCES}"
                    )
                })?,
            Err(std::env::VarError::NotUnicode(value)) => {
                return Err(format!(
                    "DS_MAX_INSTANCES={value:?} is not a number of instances"
                ));
            }
        };
        Ok(EngineOptions { max_instances })
    }
}

impl Default for EngineOptions {
    /// [`EngineOptions::from_env`]; an invalid `DS_MAX_INSTANCES` is reported as a warning
    /// and the default used.
    fn default() -> Self {
        EngineOptions::from_env().unwrap_or_else(|reason| {
            tracing::warn!(target: "host_core::runtime", "{reason}; using {DEFAULT_MAX_INSTANCES}");
            EngineOptions {
                max_instances: DEFAULT_MAX_INSTANCES,
            }
        })
    }
}

static OPTIONS: OnceLock<EngineOptions> = OnceLock::new();

/// Sets the options of the process's default engine. Must run before the first datastore on
/// it is built; returns `false` (and changes nothing) if they were fixed already with other
/// options. Datastores given an engine of their own ([`crate::engine::Engine::new`]) do not
/// use these.
pub fn configure(options: EngineOptions) -> bool {
    OPTIONS.get_or_init(|| options.clone()) == &options
}

/// The options of the process's default engine.
pub fn engine_options() -> &'static EngineOptions {
    OPTIONS.get_or_init(EngineOptions::default)
}

/// How often the engine's epoch advances: the granularity of call deadlines.
pub const EPOCH_TICK: std::time::Duration = std::time::Duration::from_millis(10);

/// The process's default engine (see [`crate::engine::Engine::shared`]), as wasmtime's.
pub fn engine() -> Result<&'static Engine, Error> {
    crate::engine::Engine::shared().map(crate::engine::Engine::wasmtime)
}

/// How a pool slot is made clean for its next instance when an instance is dropped.
/// Public so that the benchmark can compare the choices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotReset {
    /// The whole slot goes back to the kernel (`madvise`): the next instance page-faults on
    /// every page it touches.
    Decommit,
    /// The first [`KEEP_RESIDENT`] bytes of memory stay mapped and are reset by `memset` (or a
    /// copy from the image); the rest is decommitted.
    KeepResident,
    /// As `KeepResident`, but a `pagemap` scan finds the pages the instance dirtied, anywhere
    /// in the slot, and only those are reset (on kernels without the scan, Linux before 6.7,
    /// wasmtime falls back to `KeepResident`). The hosts' choice.
    KeepResidentScan,
}

/// Linear memory kept mapped across instances of a pool slot: the whole initial memory of
/// the shipped guest (its 64 KiB stack, its data and the first heap pages), so a fresh
/// instance of it takes no page fault in memory it had at start.
///
/// The hosts reset it with the `pagemap` scan, which writes only the pages a call dirtied.
/// Measured on per-call `ds` gets (benchmark (a), builds of each choice in alternating runs):
/// on an Intel Xeon the scan saves about 1.9 µs per call over a `memset` of all 128 KiB (10.4
/// against 12.3 µs per call); on an AMD EPYC the `memset` was 0.5 µs cheaper (8.7 against
/// 9.2; benchmark (b) in a later run: 6.0 against 7.5 µs per instance). The scan's cost is
/// one syscall; the `memset`'s grows with the memory bandwidth a busy machine leaves, and
/// evicts 128 KiB of cache on every call. Either is far cheaper than the page faults of a
/// decommitted slot (27.8 µs per call on the EPYC).
pub const KEEP_RESIDENT: usize = 128 << 10;

/// The pooling allocator for `max_instances` instances, with `reset` on drop.
pub fn pooling_config(max_instances: u32, reset: SlotReset) -> PoolingAllocationConfig {
    let max = max_instances;
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(max)
        // The no_std guest instantiates 6 core instances with one memory and one table.
        .total_core_instances(max.saturating_mul(8))
        .total_memories(max)
        .total_tables(max.saturating_mul(2))
        .total_stacks(max)
        .max_memory_size(MAX_GUEST_MEMORY);
    if reset != SlotReset::Decommit {
        pool.linear_memory_keep_resident(KEEP_RESIDENT)
            .table_keep_resident(4 << 10)
            .async_stack_keep_resident(16 << 10);
    }
    pool.pagemap_scan(if reset == SlotReset::KeepResidentScan {
        wasmtime::Enabled::Auto
    } else {
        wasmtime::Enabled::No
    });
    pool
}

/// The configuration of the process's default engine (public so benchmarks can vary it).
pub fn engine_config() -> Config {
    engine_config_for(engine_options())
}

/// ds's engine configuration for `options`.
pub fn engine_config_for(options: &EngineOptions) -> Config {
    let pool = pooling_config(options.max_instances.max(1), SlotReset::KeepResidentScan);
    let mut config = Config::new();
    config
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool))
        .memory_init_cow(true)
        .async_stack_size(ASYNC_STACK_SIZE)
        .max_wasm_stack(128 << 10)
        .epoch_interruption(true)
        .wasm_component_model(true);
    config
}

/// The compiled component for `source`, for the process's default engine.
pub fn component(source: &ComponentSource) -> Result<Component, Error> {
    crate::engine::Engine::shared()?.component(source)
}

impl ComponentSource {
    /// The component's bytes.
    pub fn bytes(&self) -> Result<std::borrow::Cow<'_, [u8]>, Error> {
        Ok(match self {
            ComponentSource::Embedded => EMBEDDED_COMPONENT.into(),
            ComponentSource::File(path) => std::fs::read(path)
                .map_err(|err| Error::Component {
                    origin: path.display().to_string(),
                    reason: err.to_string(),
                })?
                .into(),
            ComponentSource::Bytes(bytes) => bytes.as_ref().into(),
        })
    }
}

impl std::fmt::Display for ComponentSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ComponentSource::Embedded => f.write_str("the embedded guest"),
            ComponentSource::File(path) => write!(f, "{}", path.display()),
            ComponentSource::Bytes(_) => f.write_str("component bytes"),
        }
    }
}

/// `DS_CACHE_DIR`, else `$XDG_CACHE_HOME/ds`, else `$HOME/.cache/ds`. `DS_CACHE_DIR=off`
/// disables the disk cache.
pub fn cache_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("DS_CACHE_DIR") {
        return (dir != "off" && !dir.is_empty()).then(|| PathBuf::from(dir));
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir).join("ds"));
    }
    std::env::var_os("HOME")
        .filter(|d| !d.is_empty())
        .map(|home| PathBuf::from(home).join(".cache/ds"))
}

/// Feeds `Hash` output into SHA-256, to fold the engine's compatibility hash into the name.
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn finish(&self) -> u64 {
        0 // Only the digest is used.
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

/// The cache file for `bytes` under `dir`.
pub fn cache_path(engine: &Engine, dir: &Path, bytes: &[u8]) -> PathBuf {
    let mut hasher = Sha256Hasher(Sha256::new());
    hasher.write(b"ds-component-cache\0");
    hasher.write(env!("CARGO_PKG_VERSION").as_bytes());
    std::hash::Hash::hash(&engine.precompile_compatibility_hash(), &mut hasher);
    hasher.write(&Sha256::digest(bytes));
    let name: String = hasher
        .0
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    dir.join(format!("{name}.cwasm"))
}

/// What is wrong with `bytes` as a component, in one line, where wasmtime's report would be
/// a page (a dump of the bytes it expected) or would not say what to do.
fn check_header(bytes: &[u8]) -> Result<(), String> {
    match bytes.get(..8) {
        // `\0asm`, a version, and layer 1: a component.
        Some([0, b'a', b's', b'm', _, _, 1, 0]) => Ok(()),
        Some([0, b'a', b's', b'm', _, _, 0, 0]) => Err(
            "this is a core WebAssembly module, not a component: build the model for \
             wasm32-wasip2 (cargo build --target wasm32-wasip2) or with cargo component"
                .into(),
        ),
        _ => Err(
            "not a WebAssembly component (the file does not start with the \\0asm magic \
             bytes)"
                .into(),
        ),
    }
}

pub(crate) fn load_or_compile(
    engine: &Engine,
    bytes: &[u8],
    dir: Option<&Path>,
) -> Result<Component, String> {
    check_header(bytes)?;
    let Some(dir) = dir else {
        return Component::new(engine, bytes).map_err(|err| format!("{err:#}"));
    };
    let path = cache_path(engine, dir, bytes);
    if let Some(component) = load_cached(engine, &path) {
        return Ok(component);
    }
    let precompiled = engine
        .precompile_component(bytes)
        .map_err(|err| format!("{err:#}"))?;
    if let Err(err) = store_cached(&path, &precompiled) {
        tracing::warn!(target: "host_core::cache", path = %path.display(), "cannot write the component cache: {err}");
    }
    // SAFETY: `precompiled` was produced just now by this engine's `precompile_component`.
    unsafe { Component::deserialize(engine, &precompiled) }.map_err(|err| format!("{err:#}"))
}

fn load_cached(engine: &Engine, path: &Path) -> Option<Component> {
    let file = std::fs::read(path).ok()?;
    let payload = file.strip_prefix(CACHE_MAGIC.as_slice()).and_then(|rest| {
        let (digest, payload) = rest.split_at_checked(32)?;
        (Sha256::digest(payload).as_slice() == digest).then_some(payload)
    });
    let Some(payload) = payload else {
        tracing::debug!(target: "host_core::cache", path = %path.display(), "damaged cache file; recompiling");
        return None;
    };
    // SAFETY: the payload is byte-for-byte what `store_cached` wrote from this engine
    // configuration's `precompile_component` (the digest and the name check that), and
    // `deserialize` still refuses output of another wasmtime version or configuration.
    match unsafe { Component::deserialize(engine, payload) } {
        Ok(component) => Some(component),
        Err(err) => {
            tracing::debug!(target: "host_core::cache", path = %path.display(), "stale cache file ({err}); recompiling");
            None
        }
    }
}

fn store_cached(path: &Path, precompiled: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    // Write a temporary file and rename it: readers see the old file or the whole new one.
    let mut tmp = tempfile_in(dir)?;
    tmp.1.write_all(CACHE_MAGIC)?;
    tmp.1.write_all(&Sha256::digest(precompiled))?;
    tmp.1.write_all(precompiled)?;
    tmp.1.sync_all()?;
    std::fs::rename(&tmp.0, path)
}

fn tempfile_in(dir: &Path) -> std::io::Result<(PathBuf, std::fs::File)> {
    let path = dir.join(format!(
        ".tmp-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let file = std::fs::File::create(&path)?;
    Ok((path, file))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_round_trip_and_damage_recovery() {
        let dir = tempfile::tempdir().unwrap();
        let engine = engine().unwrap();
        let path = cache_path(engine, dir.path(), EMBEDDED_COMPONENT);
        load_or_compile(engine, EMBEDDED_COMPONENT, Some(dir.path())).unwrap();
        let good = std::fs::read(&path).unwrap();
        assert!(good.starts_with(CACHE_MAGIC));
        assert!(load_cached(engine, &path).is_some());

        // Damaged payload: refused, then rebuilt whole.
        let mut bad = good.clone();
        let last = bad.len() - 1;
        bad[last] ^= 0xFF;
        std::fs::write(&path, &bad).unwrap();
        assert!(load_cached(engine, &path).is_none());
        load_or_compile(engine, EMBEDDED_COMPONENT, Some(dir.path())).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), good);

        // Truncated and foreign files are refused too.
        std::fs::write(&path, &good[..good.len() / 2]).unwrap();
        assert!(load_cached(engine, &path).is_none());
        std::fs::write(&path, b"not a cache file").unwrap();
        assert!(load_cached(engine, &path).is_none());
    }

    #[test]
    fn cache_name_depends_on_the_component() {
        let engine = engine().unwrap();
        let dir = Path::new("/cache");
        assert_ne!(cache_path(engine, dir, b"a"), cache_path(engine, dir, b"b"));
        assert_eq!(cache_path(engine, dir, b"a"), cache_path(engine, dir, b"a"));
    }
}
