//! (d) Throughput with an instant store.

use crate::prelude::*;

pub(crate) fn throughput(report: &mut Report) -> Result<()> {
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
