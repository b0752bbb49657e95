//! (g) CLI cold start.

use crate::prelude::*;

pub(crate) fn cold_start(report: &mut Report, root: &Path) -> Result<()> {
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
