//! Warm instances are reused; per-call mode never reuses; a call that hits a bound loses
//! only its instance, and the next call on the same datastore succeeds. In both hosts.

use std::sync::Arc;

use ds_model::{Entity, Key};
use host_core::store::MemoryStore;
use host_core::{Error, InstanceOptions, Isolation};

fn entity(key: &Key, bytes: usize) -> Entity {
    // Unindexed: indexed strings hold at most 1500 bytes.
    let mut entity =
        Entity::new(key.clone()).with("blob", host_core::Value::String("x".repeat(bytes)));
    entity.unindexed.insert("blob".into());
    entity
}

fn small_memory() -> InstanceOptions {
    InstanceOptions {
        memory_limit_bytes: 3 << 20,
        ..InstanceOptions::default()
    }
}

#[test]
fn blocking_warm_instances_are_reused_and_per_call_ones_are_not() {
    let key = Key::name("Item", "a");
    let warm = ds::Datastore::builder()
        .store(Arc::new(MemoryStore::new()))
        .build()
        .unwrap();
    assert_eq!(warm.idle_instances(), 0);
    warm.put(&entity(&key, 10)).unwrap();
    warm.get(&key).unwrap();
    assert_eq!(
        warm.idle_instances(),
        1,
        "the one instance went back to the pool"
    );

    let fresh = ds::Datastore::builder()
        .store(Arc::new(MemoryStore::new()))
        .isolation(Isolation::PerCall)
        .build()
        .unwrap();
    fresh.put(&entity(&key, 10)).unwrap();
    assert_eq!(fresh.get(&key).unwrap().unwrap(), entity(&key, 10));
    assert_eq!(fresh.idle_instances(), 0);
}

#[test]
fn blocking_memory_bound_costs_one_instance() {
    for isolation in [Isolation::Warm, Isolation::PerCall] {
        let db = ds::Datastore::builder()
            .store(Arc::new(MemoryStore::new()))
            .instance_options(InstanceOptions {
                isolation,
                ..small_memory()
            })
            .build()
            .unwrap();
        let key = Key::name("Item", "big");
        db.put(&entity(&Key::name("Item", "small"), 10)).unwrap();
        match db.put(&entity(&key, 2 << 20)) {
            Err(Error::Bound(bound)) => assert!(bound.to_string().contains("3145728"), "{bound}"),
            other => panic!("{isolation:?}: expected a memory bound, got {other:?}"),
        }
        assert_eq!(
            db.get(&key).unwrap(),
            None,
            "{isolation:?}: nothing of the failed put was written"
        );
        assert!(
            db.get(&Key::name("Item", "small")).unwrap().is_some(),
            "{isolation:?}: the next call works"
        );
    }
}

#[tokio::test]
async fn async_warm_instances_are_reused_and_per_call_ones_are_not() {
    let key = Key::name("Item", "a");
    let warm = ads::Datastore::builder()
        .store(Arc::new(MemoryStore::new()))
        .build()
        .await
        .unwrap();
    warm.put(&entity(&key, 10)).await.unwrap();
    warm.get(&key).await.unwrap();
    assert_eq!(warm.idle_instances(), 1);

    let fresh = ads::Datastore::builder()
        .store(Arc::new(MemoryStore::new()))
        .isolation(Isolation::PerCall)
        .build()
        .await
        .unwrap();
    fresh.put(&entity(&key, 10)).await.unwrap();
    assert_eq!(fresh.get(&key).await.unwrap().unwrap(), entity(&key, 10));
    assert_eq!(fresh.idle_instances(), 0);
}

#[tokio::test]
async fn async_memory_bound_costs_one_instance() {
    for isolation in [Isolation::Warm, Isolation::PerCall] {
        let db = ads::Datastore::builder()
            .store(Arc::new(MemoryStore::new()))
            .instance_options(InstanceOptions {
                isolation,
                ..small_memory()
            })
            .build()
            .await
            .unwrap();
        let key = Key::name("Item", "big");
        db.put(&entity(&Key::name("Item", "small"), 10))
            .await
            .unwrap();
        assert!(
            matches!(db.put(&entity(&key, 2 << 20)).await, Err(Error::Bound(_))),
            "{isolation:?}"
        );
        assert_eq!(db.get(&key).await.unwrap(), None);
        assert!(db.get(&Key::name("Item", "small")).await.unwrap().is_some());
    }
}

/// `Duration::MAX` (the natural way to ask for no deadline) runs calls normally, in both
/// isolation modes and both hosts.
#[tokio::test]
async fn the_longest_deadline_means_no_deadline() {
    for isolation in [Isolation::Warm, Isolation::PerCall] {
        let options = InstanceOptions {
            isolation,
            deadline: std::time::Duration::MAX,
            ..InstanceOptions::default()
        };
        let key = Key::name("Item", "a");
        let blocking = ds::Datastore::builder()
            .store(Arc::new(MemoryStore::new()))
            .instance_options(options.clone())
            .build()
            .unwrap();
        let (blocking, key_copy) = (blocking.clone(), key.clone());
        tokio::task::spawn_blocking(move || {
            blocking.put(&entity(&key_copy, 10)).unwrap();
            assert_eq!(
                blocking.get(&key_copy).unwrap(),
                Some(entity(&key_copy, 10))
            );
        })
        .await
        .unwrap();
        let awaited = ads::Datastore::builder()
            .store(Arc::new(MemoryStore::new()))
            .instance_options(options)
            .build()
            .await
            .unwrap();
        awaited.put(&entity(&key, 10)).await.unwrap();
        assert_eq!(awaited.get(&key).await.unwrap(), Some(entity(&key, 10)));
    }
}

#[tokio::test]
async fn a_dropped_call_is_not_reused() {
    use std::time::Duration;
    let store = Arc::new(ds_tests::SleepStore::new(Duration::from_secs(60)));
    let db = ads::Datastore::builder()
        .store(store)
        .build()
        .await
        .unwrap();
    let key = Key::name("Item", "a");
    let call = db.get(&key);
    // The call suspends inside the guest, waiting on the store; then it is dropped.
    assert!(
        tokio::time::timeout(Duration::from_millis(50), call)
            .await
            .is_err()
    );
    assert_eq!(
        db.idle_instances(),
        0,
        "an instance interrupted mid-call never returns to the pool"
    );
}

/// The properties of an entity nested as deep as typed JSON allows: `depth` embedded
/// entities, one inside the other.
fn deep_properties(depth: usize) -> String {
    let mut json = "1".to_string();
    for _ in 0..depth {
        json = format!(r#"{{"a":{json}}}"#);
    }
    json
}

#[test]
fn the_deepest_entities_fit_the_guest_stack_in_both_hosts() {
    // The component links a 64 KiB stack (guest/build.rs); parsing, validating, indexing and
    // encoding the deepest entity JSON can express recurse once per level. A stack too small
    // would trap here instead of storing the entity.
    let key = Key::name("Deep", "x");
    let entity = Entity::from_json(key.clone(), &deep_properties(127)).unwrap();
    let db = ds::Datastore::builder()
        .store(Arc::new(MemoryStore::new()))
        .build()
        .unwrap();
    db.put(&entity).unwrap();
    assert_eq!(db.get(&key).unwrap().as_ref(), Some(&entity));

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let db = ads::Datastore::builder()
            .store(Arc::new(MemoryStore::new()))
            .build()
            .await
            .unwrap();
        db.put(&entity).await.unwrap();
        assert_eq!(db.get(&key).await.unwrap().as_ref(), Some(&entity));
    });
}

/// Each call on a warm instance starts from an empty heap: what an earlier call allocated
/// and freed (thousands of small blocks) does not stay in the way of a later call's large
/// ones. Under a 3 MiB limit, a put of 3,000 small properties (2.3 MiB at its peak) and then
/// a put and get of a 200 KB property (1.6 MiB) both fit one instance; with the heap kept
/// between calls, the second call hit the limit.
#[test]
fn a_warm_instance_gives_each_call_its_whole_memory_limit() {
    let db = ds::Datastore::builder()
        .store(Arc::new(MemoryStore::new()))
        .instance_options(small_memory())
        .build()
        .unwrap();
    let mut many = Entity::new(Key::name("Item", "many"));
    for i in 0..3000 {
        many = many.with(
            format!("p{i:05}"),
            host_core::Value::String(format!("v{i}")),
        );
    }
    db.put(&many).unwrap();
    assert_eq!(db.idle_instances(), 1);
    let big = entity(&Key::name("Item", "big"), 200_000);
    db.put(&big).unwrap();
    assert_eq!(db.get(&big.key).unwrap(), Some(big));
}

/// A put holds few copies of a large property at once: one of 900 KB (near the 1 MiB entity
/// limit) fits a 4.5 MiB memory limit, and so does its overwrite. Both peak near 3.7 MiB;
/// when the guest copied the entity, kept the argument text, and grew the encoding by
/// doubling, the put needed 6.4 MiB, and when an overwrite decoded the whole old value and
/// held it to the commit, the overwrite needed 5.4 MiB.
#[test]
fn a_put_of_a_large_property_holds_few_copies_of_it() {
    for isolation in [Isolation::PerCall, Isolation::Warm] {
        let db = ds::Datastore::builder()
            .store(Arc::new(MemoryStore::new()))
            .instance_options(InstanceOptions {
                isolation,
                memory_limit_bytes: 4608 << 10,
                ..InstanceOptions::default()
            })
            .build()
            .unwrap();
        let big = entity(&Key::name("Item", "big"), 900_000)
            .with("tag", host_core::Value::String("old".into()));
        db.put(&big)
            .unwrap_or_else(|err| panic!("{isolation:?}: {err}"));
        assert_eq!(
            db.get(&big.key).unwrap(),
            Some(big.clone()),
            "{isolation:?}"
        );
        // An overwrite reads the old value too, but decodes only its indexed properties and
        // frees it before the commit: it fits where the put fits (it needed 5.4 MiB before),
        // and the old value's index row (`tag`) is still found and deleted.
        let mut bigger = big.clone();
        bigger.properties.remove("tag");
        bigger
            .properties
            .insert("extra".into(), host_core::Value::String("more".into()));
        db.put(&bigger)
            .unwrap_or_else(|err| panic!("{isolation:?}, overwrite: {err}"));
        assert_eq!(db.get(&big.key).unwrap(), Some(bigger), "{isolation:?}");
        let report = db.check().unwrap();
        assert!(
            report.problems.is_empty(),
            "{isolation:?}: {:?}",
            report.problems
        );
    }
}
