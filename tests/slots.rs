//! Instance slots are shared by every datastore of the process: one datastore's idle
//! instances never starve another, and in `ads` a call waits for a slot rather than failing.
//! A process of its own with 4 slots; the tests take turns (they share those slots).

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use ds_model::Key;
use ds_tests::{BarrierStore, SleepStore};
use host_core::Error;
use host_core::instances::BoundExceeded;
use host_core::runtime::{EngineOptions, configure};
use host_core::store::MemoryStore;

const SLOTS: u32 = 4;

/// This file's 4-slot engine, and the turn of one test.
fn four_slots() -> MutexGuard<'static, ()> {
    static TURN: Mutex<()> = Mutex::new(());
    assert!(
        configure(EngineOptions {
            max_instances: SLOTS
        }),
        "the engine has 4 slots"
    );
    TURN.lock().unwrap_or_else(|p| p.into_inner())
}

#[test]
fn blocking_idle_instances_give_their_slots_to_another_datastore() {
    let _turn = four_slots();
    let key = Key::name("Item", "a");
    let store = Arc::new(BarrierStore::new(SLOTS as usize + 1));
    let busy = ds::Datastore::builder()
        .store(store.clone())
        .build()
        .unwrap();
    let other = ds::Datastore::builder()
        .store(Arc::new(MemoryStore::new()))
        .build()
        .unwrap();

    std::thread::scope(|scope| {
        let calls: Vec<_> = (0..SLOTS).map(|_| scope.spawn(|| busy.get(&key))).collect();
        // Every slot is in use by a call in flight: a call with no slot fails at once, with
        // the error that says so (nothing idle to release).
        while store.waiting() < SLOTS as usize {
            std::thread::sleep(Duration::from_millis(5));
        }
        match other.get(&key) {
            Err(Error::Bound(BoundExceeded::Instances { limit })) => assert_eq!(limit, SLOTS),
            result => panic!("expected every slot to be in use, got {result:?}"),
        }
        store.release();
        for call in calls {
            assert_eq!(call.join().unwrap().unwrap(), None);
        }
    });
    assert_eq!(
        busy.idle_instances(),
        SLOTS as usize,
        "the burst's instances stay warm"
    );

    // Those idle instances hold every slot; another datastore's call takes them over.
    assert_eq!(other.get(&key).unwrap(), None);
    assert_eq!(busy.idle_instances(), 0, "the idle instances were released");
    assert_eq!(other.idle_instances(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
// The turn is held for the whole test on purpose; the other test holding it is a plain thread.
#[allow(clippy::await_holding_lock)]
async fn async_calls_wait_for_a_slot_across_datastores() {
    let _turn = four_slots();
    let key = Key::name("Item", "a");
    let slow = Arc::new(SleepStore::new(Duration::from_millis(300)));
    let busy = ads::Datastore::builder()
        .store(slow.clone())
        .build()
        .await
        .unwrap();
    let other = ads::Datastore::builder()
        .store(Arc::new(MemoryStore::new()))
        .build()
        .await
        .unwrap();

    let calls: Vec<_> = (0..SLOTS)
        .map(|_| {
            let (busy, key) = (busy.clone(), key.clone());
            tokio::spawn(async move { busy.get(&key).await })
        })
        .collect();
    while slow.in_flight() < SLOTS as usize {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Every slot is held by a call in flight: this call waits for one (and then takes over
    // the slot of an instance that went idle), rather than failing.
    assert_eq!(other.get(&key).await.unwrap(), None);
    for call in calls {
        assert_eq!(call.await.unwrap().unwrap(), None);
    }
    assert!(other.idle_instances() >= 1);
    assert!(
        busy.idle_instances() + other.idle_instances() <= SLOTS as usize,
        "idle instances hold at most every slot"
    );
    // And the busy datastore gets its slots back the same way.
    assert_eq!(busy.get(&key).await.unwrap(), None);
}
