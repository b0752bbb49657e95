//! (b) Instantiation.

use crate::prelude::*;

pub(crate) fn instantiation(report: &mut Report) -> Result<()> {
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
