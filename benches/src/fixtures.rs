//! Shared fixtures: keys, entities, stores, datastores, runtimes and timing helpers.

use crate::prelude::*;

pub(crate) fn key() -> Key {
    Key::name("Model", "my_key")
}

pub(crate) fn entity() -> Entity {
    let properties = serde_json::json!({ "name": "Ada", "balance": 10, "tags": ["a", "b"] });
    Entity::from_json_object(key(), properties.as_object().expect("an object"))
        .expect("a valid entity")
}

pub(crate) fn memory_store() -> Arc<MemoryStore> {
    let store = Arc::new(MemoryStore::new());
    let mut model = Model::new(NativeTransport(store.as_ref()), NoLog);
    model.put(&entity()).expect("seed the store");
    store
}

/// The model's `get` written as async Rust over an async store: the baseline for `ads`,
/// and (driven by `block_on`) the "async core + blocking wrapper" pattern of `postgres`.
pub(crate) async fn native_async_get(
    store: &dyn AsyncStore,
    key: &Key,
) -> Result<Option<Entity>, ds_model::Error> {
    key.validate()?;
    match store.get(key.encode()).await? {
        None => Ok(None),
        Some(stored) => Entity::decode(key.clone(), &stored.value).map(Some),
    }
}

/// The component the datastores run: the embedded one, or the file `DS_BENCH_COMPONENT`
/// names (to compare two builds of the model, e.g. under callgrind, with one bench binary).
pub(crate) fn component_source() -> ComponentSource {
    std::env::var_os("DS_BENCH_COMPONENT")
        .map(|path| ComponentSource::File(path.into()))
        .unwrap_or_default()
}

pub(crate) fn sync_db(store: Arc<dyn Store>, isolation: Isolation) -> Result<ds::Datastore> {
    Ok(ds::Datastore::builder()
        .store(store)
        .isolation(isolation)
        .component(component_source())
        .build()?)
}

pub(crate) async fn async_db(
    store: Arc<dyn AsyncStore>,
    isolation: Isolation,
) -> Result<ads::Datastore> {
    Ok(ads::Datastore::builder()
        .store(store)
        .isolation(isolation)
        .component(component_source())
        .build()
        .await?)
}

pub(crate) fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

pub(crate) fn multi_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// Median ns per op of `rounds` rounds of `iters` calls of `op`.
pub(crate) fn time_ns(iters: u64, rounds: usize, mut op: impl FnMut()) -> f64 {
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
pub(crate) const OVERLAP_TURNS: usize = 3;

/// How many turns each (f) measurement is split into.
pub(crate) const TURNS: usize = 5;

/// Runs the variants of one row in `turns` turns, each turn a slice of the work, and returns
/// each variant's median result. The speed of a shared machine drifts by more than the
/// differences measured; taking turns spreads the drift over every variant alike, where
/// measuring one variant after the other puts it into the ratio.
pub(crate) fn take_turns<const N: usize>(
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

pub(crate) fn median(samples: &mut [f64]) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

pub(crate) fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}
