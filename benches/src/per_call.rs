//! (a) One model get on the memory store.

use crate::prelude::*;

pub(crate) fn per_call(report: &mut Report) -> Result<()> {
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
pub(crate) fn instantiate_ns(config: &wasmtime::Config, iters: u64) -> Result<f64> {
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
