//! `ds-bench`: every comparison of the performance issue, side by side in one process run,
//! written to `BENCHMARKS.md` with SVG plots in `benches/plots/`.
//!
//! ```text
//! cargo run --release -p ds-bench             # full run (a few minutes)
//! cargo run --release -p ds-bench -- --quick  # fewer iterations
//! cargo run --release -p ds-bench -- --only a,f-postgres   # some sections, report untouched
//! ```
//!
//! Loops for profilers (perf, callgrind, strace), which print and write nothing else:
//!
//! ```text
//! ds-bench op VARIANT N                  # N gets: native, ds-warm, ads-per-call, sqlite-ds, ...
//!                                        # (or puts: native-put, ds-put)
//! ds-bench overlap CONCURRENCY [ROUNDS] [native]   # (c): rounds of 10,000 delayed gets
//! ds-bench sqlite-gets VARIANT THREADS N # (f): statement, native or ds gets on SQLite
//! ```
//!
//! Timings are medians of several rounds, reported beside the native baseline measured in the
//! same run, so the ratios are what to read. Instruction counts (callgrind) are repeatable on a
//! noisy machine. Nothing here asserts a timing.

mod svg;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use ds_model::transport::NoLog;
use ds_model::{Entity, Key, Model};
use host_core::Isolation;
use host_core::runtime::SlotReset;
use host_core::store::{
    AsyncStore, BoxFuture, Check, Direction, Entry, KeyRange, MemoryStore, NativeTransport,
    SqliteStore, Store, StoreError, Versioned, Write,
};

// ---------------------------------------------------------------------------------------
// Shared fixtures

fn key() -> Key {
    Key::name("Model", "my_key")
}

fn entity() -> Entity {
    let properties = serde_json::json!({ "name": "Ada", "balance": 10, "tags": ["a", "b"] });
    Entity::from_json_object(key(), properties.as_object().expect("an object"))
        .expect("a valid entity")
}

fn memory_store() -> Arc<MemoryStore> {
    let store = Arc::new(MemoryStore::new());
    let mut model = Model::new(NativeTransport(store.as_ref()), NoLog);
    model.put(&entity()).expect("seed the store");
    store
}

/// The model's `get` written as async Rust over an async store: the baseline for `ads`,
/// and (driven by `block_on`) the "async core + blocking wrapper" pattern of `postgres`.
async fn native_async_get(
    store: &dyn AsyncStore,
    key: &Key,
) -> Result<Option<Entity>, ds_model::Error> {
    key.validate()?;
    match store.get(key.encode()).await? {
        None => Ok(None),
        Some(stored) => Entity::decode(key.clone(), &stored.value).map(Some),
    }
}

fn sync_db(store: Arc<dyn Store>, isolation: Isolation) -> Result<ds::Datastore> {
    Ok(ds::Datastore::builder()
        .store(store)
        .isolation(isolation)
        .build()?)
}

async fn async_db(store: Arc<dyn AsyncStore>, isolation: Isolation) -> Result<ads::Datastore> {
    Ok(ads::Datastore::builder()
        .store(store)
        .isolation(isolation)
        .build()
        .await?)
}

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn multi_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// Median ns per op of `rounds` rounds of `iters` calls of `op`.
fn time_ns(iters: u64, rounds: usize, mut op: impl FnMut()) -> f64 {
    for _ in 0..iters / 5 + 1 {
        op();
    }
    let mut samples: Vec<f64> = (0..rounds)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..iters {
                op();
            }
            start.elapsed().as_nanos() as f64 / iters as f64
        })
        .collect();
    median(&mut samples)
}

/// How many times each (c) row runs each variant, the two taking turns.
const OVERLAP_TURNS: usize = 3;

/// How many turns each (f) measurement is split into.
const TURNS: usize = 5;

/// Runs the variants of one row in `turns` turns, each turn a slice of the work, and returns
/// each variant's median result. The speed of a shared machine drifts by more than the
/// differences measured; taking turns spreads the drift over every variant alike, where
/// measuring one variant after the other puts it into the ratio.
fn take_turns<const N: usize>(
    turns: usize,
    mut variants: [&mut dyn FnMut() -> Result<f64>; N],
) -> Result<[f64; N]> {
    let mut samples: [Vec<f64>; N] = std::array::from_fn(|_| Vec::with_capacity(turns));
    for _ in 0..turns {
        for (variant, samples) in variants.iter_mut().zip(&mut samples) {
            samples.push(variant()?);
        }
    }
    Ok(samples.map(|mut samples| median(&mut samples)))
}

fn median(samples: &mut [f64]) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

// ---------------------------------------------------------------------------------------
// The report

struct Report {
    quick: bool,
    out: String,
    plots: PathBuf,
}

impl Report {
    fn section(&mut self, title: &str, text: &str) {
        let _ = writeln!(self.out, "\n## {title}\n\n{text}\n");
        eprintln!("== {title}");
    }

    fn table(&mut self, header: &[&str], rows: &[Vec<String>]) {
        let _ = writeln!(self.out, "| {} |", header.join(" | "));
        let _ = writeln!(
            self.out,
            "|{}|",
            header.iter().map(|_| " --- ").collect::<Vec<_>>().join("|")
        );
        for row in rows {
            let _ = writeln!(self.out, "| {} |", row.join(" | "));
            eprintln!("   {}", row.join(" | "));
        }
        self.out.push('\n');
    }

    /// The (f) table of puts and queries through the model.
    fn model_table(&mut self, rows: &[Vec<String>]) {
        self.table(
            &[
                "op",
                "concurrency",
                "native model threads ops/s",
                "ds ops/s",
                "ds / native",
                "native model via spawn_blocking ops/s",
                "ads ops/s",
                "ads / native",
            ],
            rows,
        );
    }

    fn plot(&mut self, name: &str, svg: String) -> Result<()> {
        std::fs::create_dir_all(&self.plots)?;
        std::fs::write(self.plots.join(name), svg)?;
        let _ = writeln!(self.out, "![{name}](benches/plots/{name})\n");
        Ok(())
    }

    fn iters(&self, full: u64) -> u64 {
        if self.quick {
            (full / 10).max(10)
        } else {
            full
        }
    }
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("op") => {
            return op_loop(
                args.get(2).context("variant")?,
                args.get(3).context("count")?.parse()?,
            );
        }
        Some("overlap") => {
            let concurrency: usize = args.get(2).context("concurrency")?.parse()?;
            host_core::runtime::configure(host_core::runtime::EngineOptions {
                max_instances: 10_500,
            });
            let rt = multi_thread();
            let store = delay_store(Duration::from_millis(5));
            let key = Arc::new(key());
            let db = rt.block_on(async_db(store.clone(), Isolation::Warm))?;
            let rounds: usize = args.get(3).map_or(Ok(4), |n| n.parse())?;
            for round in 0..rounds {
                let (wall, lat) = if args.get(4).is_some_and(|mode| mode == "native") {
                    native_gets(&rt, &store, &key, 10_000, concurrency)
                } else {
                    ads_gets(&rt, &db, &key, 10_000, concurrency)
                };
                eprintln!(
                    "round {round}: {:?} p50 {:.1} idle {}",
                    wall,
                    percentile(&lat, 0.5),
                    db.idle_instances()
                );
            }
            // Skip tearing down thousands of instances: profiles of this loop stay clean.
            std::process::exit(0);
        }
        Some("sqlite-gets") => {
            // A diagnostic: one variant of the (f) SQLite get row, for profilers.
            let variant = args.get(2).context("variant")?.clone();
            let concurrency: usize = args.get(3).context("concurrency")?.parse()?;
            let per: usize = args.get(4).context("gets per thread")?.parse()?;
            let dir = tempfile::tempdir()?;
            let path = dir.path().join("gets.db");
            let store = Arc::new(SqliteStore::open(&path)?);
            Model::new(NativeTransport(store.as_ref()), NoLog).put(&entity())?;
            let db = sync_db(store.clone(), Isolation::Warm)?;
            for _ in 0..3 {
                let rate = match variant.as_str() {
                    "statement" => threads_rate(concurrency, per, || {
                        let conn = rusqlite::Connection::open(&path).expect("open");
                        move || sqlite_statement_get(&conn)
                    }),
                    "native" => threads_rate(concurrency, per, || {
                        let store = store.clone();
                        move || {
                            let mut model = Model::new(NativeTransport(store.as_ref()), NoLog);
                            std::hint::black_box(model.get(&key()).expect("get"));
                        }
                    }),
                    _ => ds_gets_rate(&db, concurrency, per),
                };
                eprintln!("{variant} at {concurrency}: {rate:.0} gets/s");
            }
            return Ok(());
        }
        Some("pg-gets") => {
            // A diagnostic: one variant of the (f) PostgreSQL get row (postgres, ds,
            // tokio-postgres, ads), with this process's CPU per get (the client's share; the
            // server's is not counted).
            let variant = args.get(2).context("variant")?.clone();
            let concurrency: usize = args.get(3).context("concurrency")?.parse()?;
            let per: usize = args.get(4).context("gets per thread")?.parse()?;
            // Room for valgrind, which cannot reserve the address space of a large pool.
            host_core::runtime::configure(host_core::runtime::EngineOptions {
                max_instances: u32::try_from(concurrency)?.saturating_add(2),
            });
            let server = std::env::var("DS_TEST_POSTGRES")
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
            let schema = format!("ds_pg_gets_{}", std::process::id());
            let base_url = format!("{server}?schema={schema}");
            let store = open_store(&format!("{base_url}&max_connections={concurrency}"))?;
            let rt = multi_thread();
            Model::new(NativeTransport(store.as_ref()), NoLog).put(&entity())?;
            let db = sync_db(store, Isolation::Warm)?;
            ds_gets_rate(&db, concurrency, 1);
            for _ in 0..3 {
                let (rate, cpu) = cpu_per_op(concurrency * per, || -> Result<f64> {
                    Ok(match variant.as_str() {
                        "postgres" => postgres_gets_rate(&server, &schema, concurrency, per),
                        "tokio-postgres" => {
                            tokio_postgres_gets_rate(&rt, &server, &schema, concurrency, per)?
                        }
                        "ads" => ads_pg_gets_rate(&rt, &base_url, concurrency, per)?,
                        _ => ds_gets_rate(&db, concurrency, per),
                    })
                })?;
                let rate = rate?;
                eprintln!("{variant} at {concurrency}: {rate:.0} gets/s, {cpu:.1} µs CPU per get");
            }
            let mut client = postgres::Client::connect(&server, postgres::NoTls)?;
            client.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))?;
            return Ok(());
        }
        Some("rss") => {
            return rss_child(
                args.get(2).context("mode")?,
                args.get(3).context("calls")?.parse()?,
            );
        }
        _ => {}
    }
    let quick = args.iter().any(|a| a == "--quick");
    let root = workspace_root();
    // High-concurrency rows need more instance slots than the default 1024.
    host_core::runtime::configure(host_core::runtime::EngineOptions {
        max_instances: 10_500,
    });
    let mut report = Report {
        quick,
        out: String::new(),
        plots: root.join("benches/plots"),
    };
    // `--only a,f-postgres`: run some sections, print them, and leave BENCHMARKS.md alone.
    let only: Option<Vec<String>> = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1))
        .map(|list| list.split(',').map(String::from).collect());
    let run = |name: &str| {
        only.as_ref()
            .is_none_or(|names| names.iter().any(|n| n == name))
    };
    header(&mut report)?;
    if run("a") {
        per_call(&mut report)?;
    }
    if run("callgrind") {
        callgrind(&mut report, &root)?;
    }
    if run("b") {
        instantiation(&mut report)?;
    }
    if run("c") {
        overlap(&mut report)?;
    }
    if run("d") {
        throughput(&mut report)?;
    }
    if run("e") {
        memory(&mut report, &root)?;
    }
    if run("f-sqlite") {
        sqlite(&mut report)?;
    }
    if run("f-postgres") {
        postgres(&mut report)?;
    }
    if run("g") {
        cold_start(&mut report, &root)?;
    }
    if only.is_none() {
        std::fs::write(root.join("BENCHMARKS.md"), &report.out)?;
        eprintln!("wrote {}", root.join("BENCHMARKS.md").display());
    }
    Ok(())
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("benches/ is in the workspace")
        .to_path_buf()
}

fn header(report: &mut Report) -> Result<()> {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let rustc = Command::new("rustc")
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let wasm = host_core::runtime::EMBEDDED_COMPONENT.len();
    let _ = writeln!(
        report.out,
        "# ds benchmarks\n\nGenerated by `cargo run --release -p ds-bench{}` (do not edit by hand).\n\n\
         - machine: {cpu}, {cores} cores (shared and noisy: read the ratios, measured side by side in one run)\n\
         - {rustc}; wasmtime 48.0.8 (cranelift, pooling allocator, copy-on-write images); wit-bindgen 0.63.0\n\
         - guest component: {wasm} bytes, `#![no_std]`, imports only `ds:datastore/{{types,transport,logging}}`\n\
         - timings: median of rounds; ns per operation unless stated",
        if report.quick { " -- --quick" } else { "" }
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------
// (a) One model get on the memory store

fn per_call(report: &mut Report) -> Result<()> {
    report.section(
        "(a) One model `get`, memory store",
        "The same `get` (validate key, encode, one transport `get`, decode and validate the entity) \
         natively and through both hosts. `ads` calls are awaited one after another on a \
         current-thread runtime. The six variants take turns, each running a slice of its \
         calls per turn, and each row is the median of its turns. *Over native* is the cost \
         of the component.",
    );
    let iters = report.iters(200_000);
    let rounds = 9;
    let store = memory_store();
    let key = key();
    let rt = current_thread();

    // Every variant runs a slice of its calls in each turn, so that drift of the machine's
    // speed lands on all of them alike (see `take_turns`).
    let timed = |op: &mut dyn FnMut()| {
        let start = Instant::now();
        for _ in 0..iters {
            op();
        }
        Ok(start.elapsed().as_nanos() as f64 / iters as f64)
    };
    let async_store: Arc<dyn AsyncStore> = store.clone();
    let ds_warm = sync_db(store.clone(), Isolation::Warm)?;
    let ds_per_call = sync_db(store.clone(), Isolation::PerCall)?;
    let ads_warm = rt.block_on(async_db(store.clone(), Isolation::Warm))?;
    let ads_per_call = rt.block_on(async_db(store.clone(), Isolation::PerCall))?;
    let ads_timed = |db: &ads::Datastore| {
        rt.block_on(async {
            let start = Instant::now();
            for _ in 0..iters {
                std::hint::black_box(db.get(&key).await.expect("get"));
            }
            Ok(start.elapsed().as_nanos() as f64 / iters as f64)
        })
    };
    // Warm-up: fills the pools, the caches and the branch predictors alike.
    for _ in 0..iters / 5 + 1 {
        let mut model = Model::new(NativeTransport(store.as_ref()), NoLog);
        std::hint::black_box(model.get(&key).expect("get"));
        std::hint::black_box(ds_warm.get(&key).expect("get"));
        std::hint::black_box(rt.block_on(ads_warm.get(&key)).expect("get"));
    }
    let [
        native,
        block_on,
        ds_warm_ns,
        ds_per_call_ns,
        ads_warm_ns,
        ads_per_call_ns,
    ] = take_turns(
        rounds,
        [
            &mut || {
                timed(&mut || {
                    let mut model = Model::new(NativeTransport(store.as_ref()), NoLog);
                    std::hint::black_box(model.get(&key).expect("get"));
                })
            },
            &mut || {
                timed(&mut || {
                    std::hint::black_box(
                        rt.block_on(native_async_get(async_store.as_ref(), &key))
                            .expect("get"),
                    );
                })
            },
            &mut || timed(&mut || drop(std::hint::black_box(ds_warm.get(&key).expect("get")))),
            &mut || timed(&mut || drop(std::hint::black_box(ds_per_call.get(&key).expect("get")))),
            &mut || ads_timed(&ads_warm),
            &mut || ads_timed(&ads_per_call),
        ],
    )?;
    let mut rows = Vec::new();
    let mut bars = Vec::new();
    let mut row = |name: &str, ns: f64, rows: &mut Vec<Vec<String>>| {
        rows.push(vec![
            name.into(),
            format!("{ns:.0}"),
            format!("{:+.2} µs", (ns - native) / 1000.0),
            format!("{:.1}×", ns / native),
        ]);
        bars.push((name.to_string(), ns));
    };
    row(
        "native Rust (the guest's logic, called directly)",
        native,
        &mut rows,
    );
    row(
        "async Rust driven by `block_on` (postgres-style)",
        block_on,
        &mut rows,
    );
    row("`ds` warm instance", ds_warm_ns, &mut rows);
    row("`ds` fresh instance per call", ds_per_call_ns, &mut rows);
    row("`ads` warm instance", ads_warm_ns, &mut rows);
    row("`ads` fresh instance per call", ads_per_call_ns, &mut rows);

    // The split: an export call that does no transport call (the key is refused at once),
    // and instantiation alone.
    let db = ds_warm;
    let bad_key = Key::id("Model", 0);
    let export_only = time_ns(iters, rounds, || {
        std::hint::black_box(db.get(&bad_key).expect_err("id 0 is refused"));
    });
    let native_refuse = time_ns(iters, rounds, || {
        let mut model = Model::new(NativeTransport(store.as_ref()), NoLog);
        std::hint::black_box(model.get(&bad_key).expect_err("refused"));
    });
    let instantiate = instantiate_ns(&host_core::runtime::engine_config(), report.iters(20_000))?;
    report.table(&["variant", "ns/op", "over native", "ratio"], &rows);
    let warm_sync = bars[2].1;
    let text = format!(
        "Cost split (blocking host): a fresh instance (store + instantiate + drop) costs \
         **{instantiate:.0} ns**; an export call that returns at once costs {export_only:.0} ns \
         against {native_refuse:.0} ns natively (**{:.0} ns** for crossing into the guest and back, \
         with the key lowered and the error lifted); the rest of the warm `ds` overhead, \
         **{:.0} ns**, is the transport import call and the stored properties crossing back \
         (typed JSON text, lifted as a string and parsed by the host).",
        export_only - native_refuse,
        (warm_sync - native) - (export_only - native_refuse),
    );
    report.out.push_str(&text);
    report.out.push_str("\n\n");
    report.plot(
        "per-call-cost.svg",
        svg::bar_chart("One model get: ns per call", "ns", &bars),
    )?;
    Ok(())
}

/// ns to create a store, instantiate the embedded component and drop both.
fn instantiate_ns(config: &wasmtime::Config, iters: u64) -> Result<f64> {
    let engine = wasmtime::Engine::new(config).map_err(|e| anyhow::anyhow!("{e:#}"))?;
    let component =
        wasmtime::component::Component::new(&engine, host_core::runtime::EMBEDDED_COMPONENT)
            .map_err(|e| anyhow::anyhow!("{e:#}"))?;
    let mut linker = wasmtime::component::Linker::<()>::new(&engine);
    linker
        .define_unknown_imports_as_traps(&component)
        .map_err(|e| anyhow::anyhow!("{e:#}"))?;
    let pre = linker
        .instantiate_pre(&component)
        .map_err(|e| anyhow::anyhow!("{e:#}"))?;
    Ok(time_ns(iters, 7, || {
        let mut store = wasmtime::Store::new(&engine, ());
        store.set_epoch_deadline(u64::MAX);
        std::hint::black_box(pre.instantiate(&mut store).expect("instantiate"));
    }))
}

// ---------------------------------------------------------------------------------------
// Instruction counts under callgrind

/// Runs `count` gets (or puts) of one variant: what callgrind measures.
fn op_loop(variant: &str, count: u64) -> Result<()> {
    // Valgrind cannot reserve the address space of a large instance pool.
    host_core::runtime::configure(host_core::runtime::EngineOptions { max_instances: 2 });
    let store = memory_store();
    let key = key();
    match variant {
        "native" => {
            for _ in 0..count {
                let mut model = Model::new(NativeTransport(store.as_ref()), NoLog);
                std::hint::black_box(model.get(&key)?);
            }
        }
        "ds-warm" | "ds-per-call" => {
            let isolation = if variant == "ds-warm" {
                Isolation::Warm
            } else {
                Isolation::PerCall
            };
            let db = sync_db(store, isolation)?;
            for _ in 0..count {
                std::hint::black_box(db.get(&key)?);
            }
        }
        "ads-warm" | "ads-per-call" => {
            let isolation = if variant == "ads-warm" {
                Isolation::Warm
            } else {
                Isolation::PerCall
            };
            let rt = current_thread();
            rt.block_on(async {
                let db = async_db(store, isolation).await?;
                for _ in 0..count {
                    std::hint::black_box(db.get(&key).await?);
                }
                anyhow::Ok(())
            })?;
        }
        "native-put" => {
            let entity = entity();
            for _ in 0..count {
                let mut model = Model::new(NativeTransport(store.as_ref()), NoLog);
                std::hint::black_box(model.put(&entity)?);
            }
        }
        "ds-put" => {
            let (db, entity) = (sync_db(store, Isolation::Warm)?, entity());
            for _ in 0..count {
                std::hint::black_box(db.put(&entity)?);
            }
        }
        "native-query" | "ds-query" => {
            let seed = seed_models(store.as_ref())?;
            if variant == "native-query" {
                for _ in 0..count {
                    native_model_op(store.as_ref(), "query", &seed[0]);
                }
            } else {
                let db = sync_db(store, Isolation::Warm)?;
                for _ in 0..count {
                    std::hint::black_box(db.query(&ada_query())?);
                }
            }
        }
        "sqlite-statement" | "sqlite-native" | "sqlite-ds" => {
            let dir = tempfile::tempdir()?;
            let path = dir.path().join("op.db");
            let store = Arc::new(SqliteStore::open(&path)?);
            Model::new(NativeTransport(store.as_ref()), NoLog).put(&entity())?;
            match variant {
                "sqlite-statement" => {
                    let conn = rusqlite::Connection::open(&path)?;
                    for _ in 0..count {
                        sqlite_statement_get(&conn);
                    }
                }
                "sqlite-native" => {
                    for _ in 0..count {
                        let mut model = Model::new(NativeTransport(store.as_ref()), NoLog);
                        std::hint::black_box(model.get(&key)?);
                    }
                }
                _ => {
                    let db = sync_db(store, Isolation::Warm)?;
                    for _ in 0..count {
                        std::hint::black_box(db.get(&key)?);
                    }
                }
            }
        }
        other => bail!("unknown variant {other}"),
    }
    Ok(())
}

fn callgrind(report: &mut Report, root: &Path) -> Result<()> {
    report.section(
        "Instruction counts (callgrind)",
        "Instructions per `get`, from two runs of N and N+1000 calls under \
         `valgrind --tool=callgrind` (the difference divided by 1000, so start-up cancels out). \
         Repeatable on a noisy machine.",
    );
    if Command::new("valgrind").arg("--version").output().is_err() {
        report
            .out
            .push_str("valgrind is not installed here; skipped.\n");
        return Ok(());
    }
    let exe = std::env::current_exe()?;
    let dir = tempfile::tempdir()?;
    let per_op = |variant: &str| callgrind_per_op(&exe, root, dir.path(), variant);
    let mut rows = Vec::new();
    let mut native = 0.0;
    for variant in [
        "native",
        "ds-warm",
        "ds-per-call",
        "ads-warm",
        "ads-per-call",
    ] {
        let (count, string_ops) = per_op(variant)?;
        if variant == "native" {
            native = count;
        }
        rows.push(vec![
            variant.to_string(),
            format!("{count:.0}"),
            format!("{:.1}×", count / native),
            format!("{string_ops:.0}"),
        ]);
    }
    report.table(
        &[
            "variant",
            "instructions/op",
            "ratio to native",
            "of which in memset/memcpy",
        ],
        &rows,
    );
    report.out.push_str(
        "Callgrind counts every iteration of a `rep stos`/`rep movs` string instruction, so the \
         last column is about one count per byte set or copied. In per-call mode most of it is \
         the reset of the dropped instance's pool slot: the pages the `pagemap` scan found \
         dirty, zeroed or copied from the data image. The scan itself is a syscall, which \
         callgrind does not count.\n\n",
    );
    // The (f) SQLite get row by instructions: what the component adds to a fast store.
    let mut rows = Vec::new();
    let mut statement = 0.0;
    for (variant, what) in [
        (
            "sqlite-statement",
            "the statement from rusqlite, entity decoded",
        ),
        (
            "sqlite-native",
            "the model compiled natively over `SqliteStore`",
        ),
        ("sqlite-ds", "`ds`, warm, over `SqliteStore`"),
    ] {
        let (count, _) = per_op(variant)?;
        if variant == "sqlite-statement" {
            statement = count;
        }
        rows.push(vec![
            what.to_string(),
            format!("{count:.0}"),
            format!("{:.2}", statement / count),
        ]);
    }
    report.table(
        &[
            "SQLite get (f)",
            "instructions/op",
            "statement / this (the ops/s ratio if time followed instructions)",
        ],
        &rows,
    );
    Ok(())
}

/// Instructions per op of one `ds-bench op` variant under callgrind (two runs, N and N+1000
/// ops, so start-up cancels out), and of those, the ones in memset/memcpy.
fn callgrind_per_op(exe: &Path, root: &Path, dir: &Path, variant: &str) -> Result<(f64, f64)> {
    // Fill the component cache for this engine configuration first, so that both measured
    // runs deserialize instead of one of them compiling. Under valgrind: the CPU it emulates
    // has other features, so its engine has a cache entry of its own.
    let warm = Command::new("valgrind")
        .args(["--tool=none", "-q"])
        .arg(exe)
        .args(["op", variant, "1"])
        .env("DS_CACHE_DIR", root.join("target/bench-cache"))
        .status()?;
    if !warm.success() {
        bail!("{variant} failed outside callgrind");
    }
    let mut counts = Vec::new();
    let mut string_ops = Vec::new();
    for n in [200u64, 1200] {
        let out_file = dir.join(format!("{variant}-{n}.out"));
        let status = Command::new("valgrind")
            .args(["--tool=callgrind", "--smc-check=all-non-file"])
            .arg(format!("--callgrind-out-file={}", out_file.display()))
            .arg(exe)
            .args(["op", variant, &n.to_string()])
            .env("DS_CACHE_DIR", root.join("target/bench-cache"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()?;
        if !status.success() {
            bail!("callgrind run of {variant} failed");
        }
        counts.push(callgrind_total(&out_file)?);
        string_ops.push(callgrind_string_ops(&out_file)?);
    }
    Ok((
        (counts[1] as f64 - counts[0] as f64) / 1000.0,
        (string_ops[1] as f64 - string_ops[0] as f64) / 1000.0,
    ))
}

/// Instructions counted in libc's `memset`/`memcpy`/`memmove` in a callgrind output file (by
/// `callgrind_annotate`, which comes with valgrind).
fn callgrind_string_ops(path: &Path) -> Result<u64> {
    let out = Command::new("callgrind_annotate")
        .args(["--threshold=100"])
        .arg(path)
        .output()
        .context("running callgrind_annotate")?;
    if !out.status.success() {
        bail!("callgrind_annotate failed on {}", path.display());
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut total = 0u64;
    for line in text.lines() {
        let Some((count, rest)) = line.trim_start().split_once(' ') else {
            continue;
        };
        let Ok(count) = count.replace(',', "").parse::<u64>() else {
            continue;
        };
        let function = rest.rsplit_once(':').map_or(rest, |(_, f)| f);
        if ["__memset", "__memcpy", "__memmove"]
            .iter()
            .any(|name| function.starts_with(name))
        {
            total += count;
        }
    }
    Ok(total)
}

fn callgrind_total(path: &Path) -> Result<u64> {
    let text = std::fs::read_to_string(path)?;
    text.lines()
        .find_map(|l| {
            l.strip_prefix("summary:")
                .or_else(|| l.strip_prefix("totals:"))
        })
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .context("no total in the callgrind output")
}

// ---------------------------------------------------------------------------------------
// (b) Instantiation

fn instantiation(report: &mut Report) -> Result<()> {
    report.section(
        "(b) Instantiation",
        "A fresh `Store` plus an instance of the component, then dropped, under each allocator \
         configuration (the rest of the configuration as the hosts use it).",
    );
    let iters = report.iters(20_000);
    let base = host_core::runtime::engine_config;
    let pooled = |reset| {
        let mut config = base();
        config.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(
            host_core::runtime::pooling_config(64, reset),
        ));
        config
    };
    let mut rows = Vec::new();
    let configs: Vec<(&str, wasmtime::Config)> = vec![
        (
            "pooling, CoW, keep-resident, pagemap scan (the hosts' choice)",
            base(),
        ),
        (
            "pooling, CoW, keep-resident, memset (no scan)",
            pooled(SlotReset::KeepResident),
        ),
        (
            "pooling, CoW, no keep-resident",
            pooled(SlotReset::Decommit),
        ),
        ("pooling, no CoW", {
            let mut c = base();
            c.memory_init_cow(false);
            c
        }),
        ("on-demand, CoW", {
            let mut c = base();
            c.allocation_strategy(wasmtime::InstanceAllocationStrategy::OnDemand);
            c
        }),
        ("on-demand, no CoW", {
            let mut c = base();
            c.allocation_strategy(wasmtime::InstanceAllocationStrategy::OnDemand)
                .memory_init_cow(false);
            c
        }),
    ];
    let mut first = 0.0;
    for (name, config) in configs {
        let ns = instantiate_ns(&config, iters)?;
        if first == 0.0 {
            first = ns;
        }
        rows.push(vec![
            name.to_string(),
            format!("{:.1}", ns / 1000.0),
            format!("{:.1}×", ns / first),
        ]);
    }
    report.table(&["allocator", "µs per instance", "ratio"], &rows);
    Ok(())
}

// ---------------------------------------------------------------------------------------
// (c) Overlap with 5 ms of store latency

/// A store whose `get` takes `delay` (async sleep, or thread sleep in blocking mode).
struct DelayStore {
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

fn delay_store(delay: Duration) -> Arc<DelayStore> {
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
fn native_gets<S: AsyncStore + 'static>(
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
fn ads_gets(
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
fn cpu_per_op<R>(ops: usize, run: impl FnOnce() -> R) -> Result<(R, f64)> {
    let before = process_cpu()?;
    let result = run();
    let used = process_cpu()?.saturating_sub(before);
    Ok((result, used.as_secs_f64() * 1e6 / ops as f64))
}

/// The CPU time this process has used so far: all its threads together, ended ones included
/// (`CLOCK_PROCESS_CPUTIME_ID`, the kernel's scheduler accounting in nanoseconds: finer than
/// `getrusage`'s ticks on short runs, and it keeps the time of the threads a loop joined).
fn process_cpu() -> Result<Duration> {
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
async fn concurrent_gets<F, Fut>(total: usize, concurrency: usize, get: F) -> (Duration, Vec<f64>)
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

fn overlap(report: &mut Report) -> Result<()> {
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

// ---------------------------------------------------------------------------------------
// (d) Throughput with an instant store

fn throughput(report: &mut Report) -> Result<()> {
    report.section(
        "(d) Throughput, instant (memory) store",
        "Model gets per second on a 2-worker tokio runtime, `ads` with warm instances against \
         native async Rust running the same logic.",
    );
    let total = report.iters(400_000) as usize;
    let rt = multi_thread();
    let store = memory_store();
    let key = Arc::new(key());
    let mut rows = Vec::new();
    let mut native_series = Vec::new();
    let mut ads_series = Vec::new();
    for concurrency in [1usize, 16, 64, 256] {
        let mut native = Vec::new();
        let mut ads_rate = Vec::new();
        let db = rt.block_on(async_db(store.clone(), Isolation::Warm))?;
        for _ in 0..3 {
            let (wall, _) = native_gets(&rt, &store, &key, total, concurrency);
            native.push(total as f64 / wall.as_secs_f64());
            let (wall, _) = ads_gets(&rt, &db, &key, total, concurrency);
            ads_rate.push(total as f64 / wall.as_secs_f64());
        }
        let (n, a) = (median(&mut native), median(&mut ads_rate));
        rows.push(vec![
            concurrency.to_string(),
            format!("{n:.0}"),
            format!("**{a:.0}**"),
            format!("{:.2}", a / n),
        ]);
        native_series.push((concurrency as f64, n));
        ads_series.push((concurrency as f64, a));
    }
    report.table(
        &[
            "concurrency",
            "native async gets/s",
            "ads gets/s",
            "ads / native",
        ],
        &rows,
    );
    report.plot(
        "throughput.svg",
        svg::line_chart(
            "gets/s, instant store, 2 workers",
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
    Ok(())
}

// ---------------------------------------------------------------------------------------
// (e) Resident memory per in-flight call

/// A field of /proc/self/status in KiB, e.g. `VmRSS` (all resident pages) or `RssShmem`
/// (resident shared-memory pages: here the component's data image, mapped into every
/// instance from one memfd, so counted once per instance but held once in memory).
fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.strip_prefix(field).is_some_and(|r| r.starts_with(':')))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn rss_kib() -> u64 {
    status_kib("VmRSS")
}

/// In a fresh process: start `calls` gets that all wait on the store, then report the RSS
/// growth per call (KiB) on stdout.
fn rss_child(mode: &str, calls: usize) -> Result<()> {
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
struct GateStore {
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

fn memory(report: &mut Report, root: &Path) -> Result<()> {
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

// ---------------------------------------------------------------------------------------
// (f) SQLite

fn sqlite(report: &mut Report) -> Result<()> {
    report.section(
        "(f) SQLite store",
        "Gets per second on a SQLite file (WAL, synchronous=FULL). `ds` from N threads \
         against the same statement in a native rusqlite loop on N threads; `ads` with N tasks \
         against the same statement from N tokio tasks through `spawn_blocking` (SQLite blocks, \
         so async code must hand it to the blocking pool; `ads` does the same). The second \
         table: model gets (the same statement, plus the model's key encoding and entity \
         decoding: this row isolates the component's cost from the model's), puts (each writer \
         its own key; a put reads the old value, then one `BEGIN \
         IMMEDIATE` commit of the entity, its changed index rows and its version check) and \
         one-page queries (`name = \"Ada\"`, limit 20: an index scan and a get-many), with the \
         model compiled natively over the same store as the baseline: the very statements \
         `ds` issues, without the component. The variants of each row take turns, five \
         slices each, and each reports its median slice.",
    );
    let dir = tempfile::tempdir()?;
    let ops = report.iters(20_000) as usize;
    let mut rows = Vec::new();
    for concurrency in [1usize, 16, 64] {
        {
            let op = "get";
            let path = dir.path().join(format!("{op}-{concurrency}.db"));
            let store = Arc::new(SqliteStore::open(&path)?);
            Model::new(NativeTransport(store.as_ref()), NoLog).put(&entity())?;
            let per = (ops / TURNS).max(1);
            let native_op = sqlite_statement_get;
            let open = || {
                let conn = rusqlite::Connection::open(&path).expect("open");
                conn.busy_timeout(Duration::from_secs(30)).expect("timeout");
                conn.pragma_update(None, "synchronous", "FULL")
                    .expect("pragma");
                conn
            };
            let rt = multi_thread();
            let db = sync_db(store.clone(), Isolation::Warm)?;
            let adb = rt.block_on(async_db(
                Arc::new(host_core::store::Offload(store.clone())),
                Isolation::Warm,
            ))?;
            let [native, ds_rate, native_async, ads_rate] = take_turns(
                TURNS,
                [
                    &mut || {
                        Ok(threads_rate(concurrency, per, || {
                            let conn = open();
                            move || native_op(&conn)
                        }))
                    },
                    &mut || Ok(ds_gets_rate(&db, concurrency, per)),
                    // The async baseline: the same statements from tokio tasks, each on the
                    // blocking pool (a connection per task), as any async program must run SQLite.
                    &mut || {
                        Ok(tasks_rate(&rt, concurrency, per, || {
                            let conn = Arc::new(std::sync::Mutex::new(open()));
                            move || {
                                let conn = conn.clone();
                                async move {
                                    tokio::task::spawn_blocking(move || {
                                        native_op(&conn.lock().expect("lock"))
                                    })
                                    .await
                                    .expect("blocking op");
                                }
                            }
                        }))
                    },
                    &mut || {
                        let adb = adb.clone();
                        let (wall, _) = rt.block_on(concurrent_gets(
                            per * concurrency,
                            concurrency,
                            move || {
                                let adb = adb.clone();
                                async move {
                                    std::hint::black_box(adb.get(&key()).await.expect("get"));
                                }
                            },
                        ));
                        Ok((per * concurrency) as f64 / wall.as_secs_f64())
                    },
                ],
            )?;
            rows.push(vec![
                op.into(),
                concurrency.to_string(),
                format!("{native:.0}"),
                format!("{ds_rate:.0}"),
                format!("**{:.2}**", ds_rate / native),
                format!("{native_async:.0}"),
                format!("{ads_rate:.0}"),
                format!("**{:.2}**", ads_rate / native_async),
            ]);
        }
    }
    report.table(
        &[
            "op",
            "concurrency",
            "rusqlite threads ops/s",
            "ds ops/s",
            "ds / rusqlite",
            "rusqlite via spawn_blocking ops/s",
            "ads ops/s",
            "ads / spawn_blocking",
        ],
        &rows,
    );
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path().join("model.db"))?);
    let rt = multi_thread();
    let adb = rt.block_on(async_db(
        Arc::new(host_core::store::Offload(store.clone())),
        Isolation::Warm,
    ))?;
    let rows = model_rows(store, adb, &rt, report.iters(2_000) as usize)?;
    report.model_table(&rows);
    Ok(())
}

/// The (f) SQLite baseline: the store's get statement from a native rusqlite connection,
/// and the entity decoded, as the model decodes it.
fn sqlite_statement_get(conn: &rusqlite::Connection) {
    let key = key().encode();
    let mut stmt = conn
        .prepare_cached("SELECT value, version FROM ds_kv WHERE key = ?1")
        .expect("prepare");
    let row: (Vec<u8>, i64) = stmt
        .query_row([&key], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("get");
    std::hint::black_box(Entity::decode(self::key(), &row.0).expect("decode"));
}

// ---------------------------------------------------------------------------------------
// (f) Puts and queries through the model, on either store

/// The one-page query of (f): 20 `Model` entities named Ada, served by the property index.
fn ada_query() -> ds_model::Query {
    ds_model::Query {
        kind: Some("Model".into()),
        filters: vec![ds_model::Filter::parse(r#"name = "Ada""#).expect("a filter")],
        limit: Some(20),
        ..ds_model::Query::default()
    }
}

/// Puts (each writer its own key) and one-page queries per second through the model: the
/// model compiled natively over the same store (so the very statements `ds` issues) on N
/// threads, against `ds` on N threads; the native model on N tokio blocking-pool tasks
/// against `ads` with N tasks.
fn model_rows(
    store: Arc<dyn Store>,
    adb: ads::Datastore,
    rt: &tokio::runtime::Runtime,
    ops: usize,
) -> Result<Vec<Vec<String>>> {
    seed_models(store.as_ref())?;
    let db = sync_db(store.clone(), Isolation::Warm)?;
    let mut rows = Vec::new();
    for concurrency in [1usize, 16, 64] {
        for op in ["get", "put", "query"] {
            let per = match op {
                "put" => ops / 4,
                "get" => ops * 4,
                _ => ops,
            };
            let per = (per / TURNS).max(1);
            let [native, ds_rate, native_async, ads_rate] = take_turns(
                TURNS,
                [
                    &mut || {
                        let ids = AtomicUsize::new(0);
                        Ok(threads_rate(concurrency, per, || {
                            let own = own_entity(&ids);
                            let store = store.clone();
                            move || native_model_op(store.as_ref(), op, &own)
                        }))
                    },
                    &mut || {
                        let ids = AtomicUsize::new(0);
                        Ok(threads_rate(concurrency, per, || {
                            let own = own_entity(&ids);
                            let db = db.clone();
                            move || match op {
                                "get" => {
                                    std::hint::black_box(db.get(&seed_key()).expect("get"));
                                }
                                "put" => {
                                    db.put(&own).expect("put");
                                }
                                _ => {
                                    std::hint::black_box(db.query(&ada_query()).expect("query"));
                                }
                            }
                        }))
                    },
                    &mut || {
                        let ids = AtomicUsize::new(0);
                        Ok(tasks_rate(rt, concurrency, per, || {
                            let own = Arc::new(own_entity(&ids));
                            let store = store.clone();
                            move || {
                                let (store, own) = (store.clone(), own.clone());
                                async move {
                                    tokio::task::spawn_blocking(move || {
                                        native_model_op(store.as_ref(), op, &own)
                                    })
                                    .await
                                    .expect("blocking op");
                                }
                            }
                        }))
                    },
                    &mut || {
                        let ids = AtomicUsize::new(0);
                        Ok(tasks_rate(rt, concurrency, per, || {
                            let own = Arc::new(own_entity(&ids));
                            let adb = adb.clone();
                            move || {
                                let (adb, own) = (adb.clone(), own.clone());
                                async move {
                                    match op {
                                        "get" => {
                                            std::hint::black_box(
                                                adb.get(&seed_key()).await.expect("get"),
                                            );
                                        }
                                        "put" => {
                                            adb.put(&own).await.expect("put");
                                        }
                                        _ => {
                                            std::hint::black_box(
                                                adb.query(&ada_query()).await.expect("query"),
                                            );
                                        }
                                    }
                                }
                            }
                        }))
                    },
                ],
            )?;
            rows.push(vec![
                op.into(),
                concurrency.to_string(),
                format!("{native:.0}"),
                format!("{ds_rate:.0}"),
                format!("**{:.2}**", ds_rate / native),
                format!("{native_async:.0}"),
                format!("{ads_rate:.0}"),
                format!("**{:.2}**", ads_rate / native_async),
            ]);
        }
    }
    Ok(rows)
}

/// One put of `own` or one page of [`ada_query`], by the model compiled natively.
/// Writes the 100 entities the model-level gets and queries read (`ada_query` finds them).
fn seed_models(store: &dyn Store) -> Result<Vec<Entity>> {
    let seed: Vec<Entity> = (0..100)
        .map(|i| Entity {
            key: Key::name("Model", format!("ada-{i}")),
            ..entity()
        })
        .collect();
    Model::new(NativeTransport(store), NoLog).put_many(&seed)?;
    Ok(seed)
}

/// The key of a seeded entity that the model-level gets read.
fn seed_key() -> Key {
    Key::name("Model", "ada-0")
}

fn native_model_op(store: &dyn Store, op: &str, own: &Entity) {
    let mut model = Model::new(NativeTransport(store), NoLog);
    if op == "get" {
        std::hint::black_box(model.get(&seed_key()).expect("get"));
    } else if op == "put" {
        model.put(own).expect("put");
    } else {
        // Typed entities, as `ds::Datastore::query` returns them.
        let page = model.query(&ada_query()).expect("query");
        let entities: Vec<Entity> = page
            .hits
            .into_iter()
            .filter_map(|hit| Some(Entity::decode(hit.key, &hit.stored?.value).expect("decode")))
            .collect();
        std::hint::black_box(entities);
    }
}

// ---------------------------------------------------------------------------------------
// (f) PostgreSQL

const PG_GET: &str = "SELECT value, version FROM ds_kv WHERE key = $1";

fn postgres(report: &mut Report) -> Result<()> {
    report.section(
        "(f) PostgreSQL store",
        "Gets per second against the local PostgreSQL 15 server. `ds` from N threads against \
         the same statement from the `postgres` crate on N threads (a connection each); `ads` \
         with N tasks against the same statement from `tokio-postgres` in N tasks (a \
         connection each). The second table: model gets (statement plus the model's own work), \
         puts (a get-many of the old value, then one \
         `SERIALIZABLE` commit: checks, `nextval`, upserts) and one-page queries, with the \
         model compiled natively over the same store as the baseline (threads; for `ads`, \
         the native model on the blocking pool). `ds` drives each pooled connection on the \
         calling thread, as `postgres` does. In the first table `ds` and `ads` get a store of \
         their own per turn with `max_connections` = N, a connection per thread or task as \
         the native loops have. The variants of each row take turns, five slices \
         each, and each reports its median slice.",
    );
    let server = std::env::var("DS_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    if postgres::Client::connect(&server, postgres::NoTls).is_err() {
        let _ = writeln!(
            report.out,
            "No PostgreSQL server at `{server}`: skipped (set DS_TEST_POSTGRES).\n"
        );
        return Ok(());
    }
    let schema = format!("ds_bench_{}", std::process::id());
    let url = format!(
        "{server}{}schema={schema}",
        if server.contains('?') { '&' } else { '?' }
    );
    let ops = report.iters(4_000) as usize;
    let mut rows = Vec::new();
    let store = open_store(&url)?;
    Model::new(NativeTransport(store.as_ref()), NoLog).put(&entity())?;
    for concurrency in [1usize, 16, 64] {
        let per = (ops / TURNS).max(1);
        let rt = multi_thread();
        let [native, ds_rate, native_async, ads_rate] = take_turns(
            TURNS,
            [
                &mut || Ok(postgres_gets_rate(&server, &schema, concurrency, per)),
                // A connection per thread, as the native loop has: a store of its own per
                // turn with `max_connections` = N, warmed up first, then closed (the server's
                // 100 connections do not hold 64 native ones beside 64 idle ones).
                &mut || {
                    let own = open_store(&format!("{url}&max_connections={concurrency}"))?;
                    let db = sync_db(own, Isolation::Warm)?;
                    ds_gets_rate(&db, concurrency, 1);
                    Ok(ds_gets_rate(&db, concurrency, per))
                },
                &mut || tokio_postgres_gets_rate(&rt, &server, &schema, concurrency, per),
                // Likewise a store of its own per turn, with a connection per task.
                &mut || ads_pg_gets_rate(&rt, &url, concurrency, per),
            ],
        )?;
        rows.push(vec![
            "get".into(),
            concurrency.to_string(),
            format!("{native:.0}"),
            format!("{ds_rate:.0}"),
            format!("**{:.2}**", ds_rate / native),
            format!("{native_async:.0}"),
            format!("{ads_rate:.0}"),
            format!("**{:.2}**", ads_rate / native_async),
        ]);
    }
    report.table(
        &[
            "op",
            "concurrency",
            "postgres ops/s",
            "ds ops/s",
            "ds / postgres",
            "tokio-postgres ops/s",
            "ads ops/s",
            "ads / tokio-postgres",
        ],
        &rows,
    );
    let rt = multi_thread();
    let adb = rt.block_on(async {
        ads::Datastore::builder()
            .store_url(&url)
            .isolation(Isolation::Warm)
            .build()
            .await
    })?;
    let rows = model_rows(store.clone(), adb, &rt, ops)?;
    report.model_table(&rows);
    let mut client = postgres::Client::connect(&server, postgres::NoTls)?;
    client.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))?;
    Ok(())
}

/// Gets of the (f) key per second from `concurrency` threads, each with a `postgres` client
/// of its own running the statement `per_thread` times.
fn postgres_gets_rate(server: &str, schema: &str, concurrency: usize, per_thread: usize) -> f64 {
    threads_rate(concurrency, per_thread, || {
        let read_key = key().encode();
        let mut client = postgres::Client::connect(server, postgres::NoTls).expect("connect");
        client
            .batch_execute(&format!("SET search_path TO {schema}"))
            .expect("schema");
        let get = client.prepare(PG_GET).expect("prepare");
        move || {
            let row = client.query_opt(&get, &[&read_key]).expect("get");
            std::hint::black_box(
                row.map(|row| Entity::decode(key(), row.get::<_, &[u8]>(0)).expect("decode")),
            );
        }
    })
}

/// Gets of the (f) key per second from `concurrency` tasks on `rt`, each with a
/// `tokio-postgres` client of its own running the statement `per_task` times.
fn tokio_postgres_gets_rate(
    rt: &tokio::runtime::Runtime,
    server: &str,
    schema: &str,
    concurrency: usize,
    per_task: usize,
) -> Result<f64> {
    let mut clients = rt
        .block_on(async {
            let mut clients = Vec::new();
            for _ in 0..concurrency {
                let (client, connection) =
                    tokio_postgres::connect(server, tokio_postgres::NoTls).await?;
                tokio::spawn(connection);
                client
                    .batch_execute(&format!("SET search_path TO {schema}"))
                    .await?;
                let get = client.prepare(PG_GET).await?;
                clients.push(Arc::new((client, get, key().encode())));
            }
            anyhow::Ok(clients)
        })?
        .into_iter();
    Ok(tasks_rate(rt, concurrency, per_task, || {
        let client = clients.next().expect("a client per task");
        move || {
            let client = client.clone();
            async move {
                let (client, get, read_key) = &*client;
                let row = client.query_opt(get, &[read_key]).await.expect("get");
                std::hint::black_box(
                    row.map(|row| Entity::decode(key(), row.get::<_, &[u8]>(0)).expect("decode")),
                );
            }
        }
    }))
}

/// `ads` gets of the (f) key per second from `concurrency` tasks on `rt`, `per_task` each,
/// through a datastore of its own over `url` with a connection per task, warmed up first.
fn ads_pg_gets_rate(
    rt: &tokio::runtime::Runtime,
    url: &str,
    concurrency: usize,
    per_task: usize,
) -> Result<f64> {
    let adb = rt.block_on(async {
        ads::Datastore::builder()
            .store_url(&format!("{url}&max_connections={concurrency}"))
            .isolation(Isolation::Warm)
            .build()
            .await
    })?;
    let gets = |count: usize| {
        tasks_rate(rt, concurrency, count, || {
            let adb = adb.clone();
            move || {
                let adb = adb.clone();
                async move {
                    std::hint::black_box(adb.get(&key()).await.expect("get"));
                }
            }
        })
    };
    gets(1);
    Ok(gets(per_task))
}

/// The entity the next writer puts: its own key, one per thread or task.
fn own_entity(ids: &AtomicUsize) -> Entity {
    Entity {
        key: Key::name(
            "Model",
            format!("writer-{}", ids.fetch_add(1, Ordering::Relaxed)),
        ),
        ..entity()
    }
}

fn open_store(url: &str) -> Result<Arc<dyn Store>> {
    let url: host_core::store::StoreUrl = url.parse()?;
    Ok(host_core::store::open_blocking(&url)?)
}

/// Ops per second of `concurrency` threads each running `per_thread` calls of the closure
/// that `make` builds on that thread.
///
/// The clock runs from the first thread's start to the last one's end, as the threads read
/// it: with more threads than cores, a coordinating thread may wait many time slices to be
/// scheduled after releasing them, and its clock would miss the work done meanwhile.
fn threads_rate<M, F>(concurrency: usize, per_thread: usize, make: M) -> f64
where
    M: Fn() -> F + Sync,
    F: FnMut(),
{
    use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
    let barrier = std::sync::Barrier::new(concurrency);
    let spans = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..concurrency)
            .map(|_| {
                scope.spawn(|| {
                    // Every thread reaches the barrier even if it panics, so a failure is
                    // reported instead of leaving the others waiting forever.
                    let op = catch_unwind(AssertUnwindSafe(&make));
                    barrier.wait();
                    let start = Instant::now();
                    let done = op.and_then(|mut op| {
                        catch_unwind(AssertUnwindSafe(|| {
                            for _ in 0..per_thread {
                                op();
                            }
                        }))
                    });
                    done.map(|()| (start, Instant::now()))
                })
            })
            .collect();
        let mut spans = Vec::with_capacity(concurrency);
        for handle in handles {
            match handle.join().expect("joined") {
                Ok(span) => spans.push(span),
                Err(panic) => resume_unwind(panic),
            }
        }
        spans
    });
    let start = spans
        .iter()
        .map(|(start, _)| *start)
        .min()
        .expect("a thread");
    let end = spans.iter().map(|(_, end)| *end).max().expect("a thread");
    (concurrency * per_thread) as f64 / (end - start).as_secs_f64()
}

/// `ds` gets of the (f) key per second from `concurrency` threads, `per_thread` each.
fn ds_gets_rate(db: &ds::Datastore, concurrency: usize, per_thread: usize) -> f64 {
    threads_rate(concurrency, per_thread, || {
        let db = db.clone();
        move || {
            std::hint::black_box(db.get(&key()).expect("get"));
        }
    })
}

/// Ops per second of `concurrency` tokio tasks on `rt`, each awaiting `per_task` calls of
/// the async closure that `make` builds for it: the async twin of [`threads_rate`].
fn tasks_rate<M, F, Fut>(
    rt: &tokio::runtime::Runtime,
    concurrency: usize,
    per_task: usize,
    make: M,
) -> f64
where
    M: FnMut() -> F,
    F: FnMut() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let ops: Vec<F> = std::iter::repeat_with(make).take(concurrency).collect();
    let start = Instant::now();
    rt.block_on(async {
        let tasks: Vec<_> = ops
            .into_iter()
            .map(|mut op| {
                tokio::spawn(async move {
                    for _ in 0..per_task {
                        op().await;
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("task");
        }
    });
    (concurrency * per_task) as f64 / start.elapsed().as_secs_f64()
}

// ---------------------------------------------------------------------------------------
// (g) CLI cold start

fn cold_start(report: &mut Report, root: &Path) -> Result<()> {
    report.section(
        "(g) CLI cold start",
        "`ds get` end to end as a process (release build), median of runs, with the \
         precompiled component cache warm and with the cache disabled (`DS_CACHE_DIR=off`, so \
         every start compiles the component with Cranelift).",
    );
    // Build the binary measured here, so that the one bench command measures the current
    // code and never a stale or missing `target/release/ds`.
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args([
            "build",
            "--release",
            "--quiet",
            "-p",
            "ds-cli",
            "--bin",
            "ds",
        ])
        .arg("--manifest-path")
        .arg(root.join("Cargo.toml"))
        .status()
        .context("cannot run cargo to build the ds binary")?;
    if !status.success() {
        bail!("building the ds binary for (g) failed");
    }
    let ds = root.join("target/release/ds");
    let dir = tempfile::tempdir()?;
    let store = format!("sqlite:{}", dir.path().join("cli.db").display());
    let cache = dir.path().join("cache");
    let run = |cache: &str| -> Result<f64> {
        let start = Instant::now();
        let out = Command::new(&ds)
            .args(["--store", &store, "get", "Model:my_key"])
            .env("DS_CACHE_DIR", cache)
            .output()?;
        if !out.status.success() {
            bail!("ds failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(start.elapsed().as_secs_f64() * 1000.0)
    };
    let out = Command::new(&ds)
        .args(["--store", &store, "put", "Model:my_key", "{}"])
        .env("DS_CACHE_DIR", &cache)
        .output()?;
    if !out.status.success() {
        bail!("ds put failed");
    }
    let cache_str = cache.to_string_lossy().to_string();
    let runs = if report.quick { 5 } else { 15 };
    let mut warm: Vec<f64> = (0..runs).map(|_| run(&cache_str)).collect::<Result<_>>()?;
    let mut cold: Vec<f64> = (0..runs.min(7))
        .map(|_| run("off"))
        .collect::<Result<_>>()?;
    let (warm, cold) = (median(&mut warm), median(&mut cold));

    let engine = host_core::runtime::engine()?;
    let bytes = host_core::runtime::EMBEDDED_COMPONENT;
    let start = Instant::now();
    let precompiled = engine
        .precompile_component(bytes)
        .map_err(|e| anyhow::anyhow!("{e:#}"))?;
    let compile_ms = start.elapsed().as_secs_f64() * 1000.0;
    let start = Instant::now();
    // SAFETY: the bytes were produced by this engine's `precompile_component` just above.
    let _component = unsafe { wasmtime::component::Component::deserialize(engine, &precompiled) }
        .map_err(|e| anyhow::anyhow!("{e:#}"))?;
    let deserialize_ms = start.elapsed().as_secs_f64() * 1000.0;
    report.table(
        &["measure", "ms"],
        &[
            vec![
                "`ds get`, warm component cache".into(),
                format!("**{warm:.1}**"),
            ],
            vec!["`ds get`, no cache (compiles)".into(), format!("{cold:.1}")],
            vec![
                "compile the component (Cranelift), in process".into(),
                format!("{compile_ms:.1}"),
            ],
            vec![
                "deserialise the precompiled component, in process".into(),
                format!("{deserialize_ms:.2}"),
            ],
        ],
    );
    Ok(())
}
