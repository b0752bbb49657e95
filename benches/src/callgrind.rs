//! Instruction counts under callgrind, and the `op` loops it runs.

use crate::prelude::*;

/// Runs `count` gets (or puts) of one variant: what callgrind measures.
pub(crate) fn op_loop(variant: &str, count: u64) -> Result<()> {
    // Valgrind cannot reserve the address space of a large instance pool. (A component of
    // many core instances, such as a Python model, needs more: `DS_MAX_INSTANCES`.)
    let max_instances = std::env::var("DS_MAX_INSTANCES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(2);
    host_core::runtime::configure(host_core::runtime::EngineOptions { max_instances });
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

pub(crate) fn callgrind(report: &mut Report, root: &Path) -> Result<()> {
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
pub(crate) fn callgrind_per_op(
    exe: &Path,
    root: &Path,
    dir: &Path,
    variant: &str,
) -> Result<(f64, f64)> {
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
pub(crate) fn callgrind_string_ops(path: &Path) -> Result<u64> {
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

pub(crate) fn callgrind_total(path: &Path) -> Result<u64> {
    let text = std::fs::read_to_string(path)?;
    text.lines()
        .find_map(|l| {
            l.strip_prefix("summary:")
                .or_else(|| l.strip_prefix("totals:"))
        })
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .context("no total in the callgrind output")
}
