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
//! ds-bench pg-gets VARIANT THREADS N     # (f): postgres, ds, tokio-postgres or ads gets
//! ```
//!
//! One module per report section (`per_call` is (a), `instantiation` (b), `overlap` (c),
//! `throughput` (d), `memory` (e), `sqlite`, `model_rows` and `pg` (f), `cold_start`
//! (g), `python` (h: runs `python/bench.py`), `etcd` (i), `callgrind` the instruction counts); `fixtures` and `report` are what they share.
//! Timings are medians of several rounds, reported beside the native baseline measured in the
//! same run, so the ratios are what to read. Instruction counts (callgrind) are repeatable on a
//! noisy machine. Nothing here asserts a timing.

mod callgrind;
mod cold_start;
mod etcd;
mod fixtures;
mod instantiation;
mod memory;
mod model_rows;
mod overlap;
mod per_call;
mod pg;
mod prelude;
mod python;
mod report;
mod sqlite;
mod svg;
mod throughput;

use clap::{Parser, Subcommand};

use crate::prelude::*;

/// The benchmark report, or one loop of it for a profiler.
#[derive(Debug, Parser)]
#[command(name = "ds-bench")]
struct Args {
    /// Fewer iterations.
    #[arg(long)]
    quick: bool,
    /// Run only these sections (a, callgrind, b, c, d, e, f-sqlite, f-postgres, g, h, i), print
    /// them, and leave BENCHMARKS.md alone.
    #[arg(long, value_delimiter = ',')]
    only: Option<Vec<String>>,
    /// A single loop instead of the report.
    #[command(subcommand)]
    run: Option<Loop>,
}

/// The single-variant loops, for profilers.
#[derive(Debug, Subcommand)]
enum Loop {
    /// N gets (or puts) of one variant: what callgrind counts.
    Op {
        /// native, ds-warm, ads-per-call, sqlite-ds, native-put, ds-put, ...
        variant: String,
        /// How many operations.
        count: u64,
    },
    /// (c): rounds of 10,000 gets with 5 ms of store latency.
    Overlap {
        /// Gets in flight at once.
        concurrency: usize,
        /// How many rounds.
        #[arg(default_value_t = 4)]
        rounds: usize,
        /// `native`: native async Rust instead of `ads`.
        #[arg(value_parser = ["native"])]
        native: Option<String>,
    },
    /// (f): one variant of the SQLite get row (statement, native or ds).
    SqliteGets {
        /// statement, native or ds.
        variant: String,
        /// Threads.
        concurrency: usize,
        /// Gets per thread.
        per: usize,
    },
    /// (f): one variant of the PostgreSQL get row (postgres, ds, tokio-postgres, ads), with
    /// this process's CPU per get (the client's share; the server's is not counted).
    PgGets {
        /// postgres, ds, tokio-postgres or ads.
        variant: String,
        /// Threads or tasks.
        concurrency: usize,
        /// Gets per thread or task.
        per: usize,
    },
    /// (e): the child process that measures resident memory per call in flight.
    #[command(hide = true)]
    Rss {
        /// The host.
        mode: String,
        /// Calls in flight.
        calls: usize,
    },
}

fn main() -> Result<()> {
    let args = Args::parse();
    match args.run {
        Some(Loop::Op { variant, count }) => op_loop(&variant, count),
        Some(Loop::Overlap {
            concurrency,
            rounds,
            native,
        }) => overlap_loop(concurrency, rounds, native.is_some()),
        Some(Loop::SqliteGets {
            variant,
            concurrency,
            per,
        }) => sqlite_gets_loop(&variant, concurrency, per),
        Some(Loop::PgGets {
            variant,
            concurrency,
            per,
        }) => pg_gets_loop(&variant, concurrency, per),
        Some(Loop::Rss { mode, calls }) => rss_child(&mode, calls),
        None => full_report(args.quick, args.only),
    }
}

/// The whole report (or the sections `only` names).
fn full_report(quick: bool, only: Option<Vec<String>>) -> Result<()> {
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
    if run("h") {
        python::python(&mut report, &root)?;
    }
    if run("i") {
        etcd::etcd(&mut report)?;
    }
    if only.is_none() {
        std::fs::write(root.join("BENCHMARKS.md"), &report.out)?;
        eprintln!("wrote {}", root.join("BENCHMARKS.md").display());
    } else {
        // The sections' Markdown, for a report assembled by hand.
        print!("{}", report.out);
    }
    Ok(())
}

/// (c) as a loop: rounds of 10,000 delayed gets through `ads` (or native async Rust).
fn overlap_loop(concurrency: usize, rounds: usize, native: bool) -> Result<()> {
    host_core::runtime::configure(host_core::runtime::EngineOptions {
        max_instances: 10_500,
    });
    let rt = multi_thread();
    let store = delay_store(Duration::from_millis(5));
    let key = Arc::new(key());
    let db = rt.block_on(async_db(store.clone(), Isolation::Warm))?;
    for round in 0..rounds {
        let (wall, lat) = if native {
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

/// (f) as a loop: one variant of the SQLite get row.
fn sqlite_gets_loop(variant: &str, concurrency: usize, per: usize) -> Result<()> {
    // A diagnostic: one variant of the (f) SQLite get row, for profilers.
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("gets.db");
    let store = Arc::new(SqliteStore::open(&path)?);
    Model::new(NativeTransport(store.as_ref()), NoLog).put(&entity())?;
    let db = sync_db(store.clone(), Isolation::Warm)?;
    for _ in 0..3 {
        let rate = match variant {
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
    Ok(())
}

/// (f) as a loop: one variant of the PostgreSQL get row, with the client's CPU per get.
fn pg_gets_loop(variant: &str, concurrency: usize, per: usize) -> Result<()> {
    // A diagnostic: one variant of the (f) PostgreSQL get row (postgres, ds,
    // tokio-postgres, ads), with this process's CPU per get (the client's share; the
    // server's is not counted).
    // Room for valgrind, which cannot reserve the address space of a large pool.
    host_core::runtime::configure(host_core::runtime::EngineOptions {
        max_instances: u32::try_from(concurrency)?.saturating_add(2),
    });
    let server = std::env::var("DS_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let schema = format!("ds_pg_gets_{}", std::process::id());
    // Plain TCP, as the native clients' `NoTls`: ds's default (libpq's `prefer`) would
    // encrypt to a server that offers TLS, and the rows would compare unlike with like.
    let base_url = format!("{server}?sslmode=disable&schema={schema}");
    let store = open_store(&format!("{base_url}&max_connections={concurrency}"))?;
    let rt = multi_thread();
    Model::new(NativeTransport(store.as_ref()), NoLog).put(&entity())?;
    let db = sync_db(store, Isolation::Warm)?;
    ds_gets_rate(&db, concurrency, 1);
    for _ in 0..3 {
        let (rate, cpu) = cpu_per_op(concurrency * per, || -> Result<f64> {
            Ok(match variant {
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
    Ok(())
}
