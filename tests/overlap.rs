//! `ads` overlaps I/O: while one call's guest waits on the transport, others run. Counted,
//! not timed: the store records how many `get`s were waiting at once.

use std::sync::Arc;
use std::time::Duration;

use ads::{Datastore, Entity, Key};
use ds_tests::SleepStore;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_gets_wait_on_the_store_together() {
    let store = Arc::new(SleepStore::new(Duration::from_millis(200)));
    let db = Datastore::builder()
        .store(store.clone())
        .build()
        .await
        .unwrap();
    let keys: Vec<Key> = (1..=200).map(|i| Key::id("Item", i)).collect();
    for key in keys.iter().step_by(2) {
        db.put(&Entity::new(key.clone()).with("id", ads::Value::String(key.to_string())))
            .await
            .unwrap();
    }

    let tasks: Vec<_> = keys
        .iter()
        .cloned()
        .map(|key| {
            let db = db.clone();
            tokio::spawn(async move { (key.clone(), db.get(&key).await) })
        })
        .collect();
    for (i, task) in tasks.into_iter().enumerate() {
        let (key, result) = task.await.unwrap();
        let entity = result.unwrap();
        assert_eq!(entity.is_some(), i % 2 == 0, "{key}");
        if let Some(entity) = entity {
            assert_eq!(entity.properties["id"], ads::Value::String(key.to_string()));
        }
    }
    let peak = store.peak_in_flight();
    assert!(
        peak >= 100,
        "only {peak} gets were in flight at once; ads did not overlap them"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn overlap_needs_no_extra_threads() {
    // One thread, 50 calls: the fibers still interleave on that thread.
    let store = Arc::new(SleepStore::new(Duration::from_millis(100)));
    let db = Datastore::builder()
        .store(store.clone())
        .build()
        .await
        .unwrap();
    let calls = (1..=50).map(|i| {
        let db = db.clone();
        async move { db.get(&Key::id("Item", i)).await }
    });
    for result in futures::future::join_all(calls).await {
        assert_eq!(result.unwrap(), None);
    }
    assert_eq!(store.peak_in_flight(), 50);
}
