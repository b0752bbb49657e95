//! The guest is told which log level the host records, and a warm instance told to log
//! nothing is not reused once a subscriber listens. In both hosts.
//!
//! A test binary of its own: `tracing`'s level and callsite interest are process-wide, and
//! a callsite another test's thread registers while this test registers its subscriber can
//! keep the interest computed without it. A CI run lost the guest's lines once, with the
//! other tests of `instances.rs` running beside this one.

use std::sync::Arc;

use ds_model::Key;
use host_core::store::MemoryStore;

#[test]
fn an_instance_told_to_log_nothing_is_not_reused_once_a_subscriber_listens() {
    // The guest keeps the level its first log call was answered with and skips the lines
    // below it. Until the subscriber is installed, the host records nothing and the warm
    // instances below are told so.
    use tracing::level_filters::LevelFilter;
    assert_eq!(
        LevelFilter::current(),
        LevelFilter::OFF,
        "no subscriber yet"
    );
    let key = Key::name("Item", "a");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let blocking = ds::Datastore::builder()
        .store(Arc::new(MemoryStore::new()))
        .build()
        .unwrap();
    let not_blocking = runtime.block_on(async {
        let db = ads::Datastore::builder()
            .store(Arc::new(MemoryStore::new()))
            .build()
            .await
            .unwrap();
        db.get(&key).await.unwrap();
        db
    });
    blocking.get(&key).unwrap();
    assert_eq!(
        (blocking.idle_instances(), not_blocking.idle_instances()),
        (1, 1)
    );

    let (_, blocking_lines) = ds_tests::with_guest_lines(|| blocking.get(&key).unwrap());
    let (_, async_lines) =
        ds_tests::with_guest_lines(|| runtime.block_on(not_blocking.get(&key)).unwrap());
    for (host, lines) in [("ds", blocking_lines), ("ads", async_lines)] {
        assert!(
            lines.iter().any(|line| line == "Model base _get()"),
            "{host}: the guest's lines reach the new subscriber: {lines:?}"
        );
    }
}
