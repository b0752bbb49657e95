//! Datastores on engines of their own, in one process: each engine's instance slots bound
//! the calls of its own datastores, whatever the other engines and the default engine allow.

use std::sync::Arc;
use std::time::Duration;

use ds_model::Key;
use ds_tests::{BarrierStore, SleepStore};
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

#[test]
fn a_blocking_call_past_its_engines_slots_names_that_engines_limit() {
    let store = Arc::new(BarrierStore::new(2));
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
    while store.waiting() == 0 {
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

    store.release();
    assert_eq!(holder.join().unwrap().unwrap(), None);
    // With the slot back, the small engine serves again.
    store.reset();
    let again = {
        let (db, key) = (one_slot.clone(), key.clone());
        std::thread::spawn(move || db.get(&key))
    };
    while store.waiting() == 0 {
        std::thread::yield_now();
    }
    store.release();
    assert_eq!(again.join().unwrap().unwrap(), None);
}
