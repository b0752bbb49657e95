//! (h) The Python package: `python/bench.py`, run by the interpreter of the virtual
//! environment `python/test.sh` leaves (`target/python-venv`, or `DS_BENCH_PYTHON`), so
//! it measures the wheel a user installs. The script prints the whole section.

use crate::prelude::*;

pub(crate) fn python(report: &mut Report, root: &Path) -> Result<()> {
    let python = std::env::var_os("DS_BENCH_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target/python-venv/bin/python"));
    if !python.exists() {
        report.section(
            "(h) Python: `ds` and `ads`",
            &format!(
                "Not measured: no interpreter with the package installed at {} (run `bash \
                 python/test.sh` first, or set `DS_BENCH_PYTHON`).",
                python.display()
            ),
        );
        return Ok(());
    }
    eprintln!("== (h) Python: `ds` and `ads`");
    let mut command = Command::new(&python);
    command.arg(root.join("python/bench.py"));
    if report.quick {
        command.arg("--quick");
    }
    let out = command
        .output()
        .with_context(|| format!("cannot run {}", python.display()))?;
    if !out.status.success() {
        bail!(
            "python/bench.py failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let text = String::from_utf8(out.stdout).context("python/bench.py printed non-UTF-8")?;
    eprint!("{text}");
    report.out.push('\n');
    report.out.push_str(&text);
    Ok(())
}
