//! Datastores on engines of their own, in one process: each engine's instance slots bound
//! the calls of its own datastores, whatever the other engines and the default engine allow.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use ds_model::Key;
use ds_tests::SleepStore;
use host_core::store::{
    Check, Direction, Entry, KeyRange, MemoryStore, Store, StoreError, Versioned, Write,
};
use host_core::{BoundExceeded, Engine, EngineOptions, Error};

fn engine(max_instances: u32) -> Engine {
    Engine::new(EngineOptions { max_instances }).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_engine_bounds_its_own_calls_in_flight() {
    let (small, large) = (engine(2), engine(16));
    for (engine, slots) in [(small, 2), (large, 16)] {
        let store = Arc::new(SleepStore::new(Duration::from_millis(200)));
        let db = ads::Datastore::builder()
            .store(store.clone())
            .engine(engine)
            .build()
            .await
            .unwrap();
        assert_eq!(db.engine().max_instances(), slots);
        let gets: Vec<_> = (0..8)
            .map(|i| {
                let db = db.clone();
                tokio::spawn(async move { db.get(&Key::name("Note", format!("n{i}"))).await })
            })
            .collect();
        for get in gets {
            assert_eq!(get.await.unwrap().unwrap(), None);
        }
        let peak = store.peak_in_flight();
        if slots == 2 {
            assert_eq!(
                peak, 2,
                "the 2-slot engine lets 2 calls wait on the store at once"
            );
        } else {
            assert!(
                peak > 2,
                "the 16-slot engine is not bound by the other's 2 slots: {peak}"
            );
        }
    }
}

/// A blocking store whose `get`s wait at a barrier until the test thread joins them.
struct BarrierStore {
    inner: MemoryStore,
    barrier: Barrier,
    waiting: AtomicUsize,
}

impl Store for BarrierStore {
    fn get(&self, key: &[u8]) -> Result<Option<Versioned>, StoreError> {
        self.waiting.fetch_add(1, Ordering::SeqCst);
        self.barrier.wait();
        self.inner.get(key)
    }
    fn scan(
        &self,
        range: &KeyRange,
        limit: u32,
        direction: Direction,
    ) -> Result<Vec<Entry>, StoreError> {
        self.inner.scan(range, limit, direction)
    }
    fn commit(&self, checks: &[Check], writes: &[Write]) -> Result<u64, StoreError> {
        self.inner.commit(checks, writes)
    }
}

#[test]
fn a_blocking_call_past_its_engines_slots_names_that_engines_limit() {
    let store = Arc::new(BarrierStore {
        inner: MemoryStore::new(),
        barrier: Barrier::new(2),
        waiting: AtomicUsize::new(0),
    });
    let one_slot = ds::Datastore::builder()
        .store(store.clone())
        .engine(engine(1))
        .build()
        .unwrap();
    // Another datastore, on the default engine, in the same process.
    let default = ds::Datastore::open("memory:").unwrap();

    let key = Key::name("Note", "a");
    let holder = {
        let (db, key) = (one_slot.clone(), key.clone());
        std::thread::spawn(move || db.get(&key))
    };
    // The holder's call has the engine's one slot, and waits in the store.
    while store.waiting.load(Ordering::SeqCst) == 0 {
        std::thread::yield_now();
    }
    let second = one_slot.get(&key);
    assert!(
        matches!(
            second,
            Err(Error::Bound(BoundExceeded::Instances { limit: 1 }))
        ),
        "{second:?}"
    );
    // The default engine's slots are its own.
    assert_eq!(default.get(&key).unwrap(), None);

    store.barrier.wait();
    assert_eq!(holder.join().unwrap().unwrap(), None);
    // With the slot back, the small engine serves again.
    store.waiting.store(0, Ordering::SeqCst);
    let again = {
        let (db, key) = (one_slot.clone(), key.clone());
        std::thread::spawn(move || db.get(&key))
    };
    while store.waiting.load(Ordering::SeqCst) == 0 {
        std::thread::yield_now();
    }
    store.barrier.wait();
    assert_eq!(again.join().unwrap().unwrap(), None);
}
