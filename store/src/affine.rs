//! A bounded pool of idle, reusable things (warm instances, SQLite connections) that gives a
//! thread back what it returned last.
//!
//! One shared `Mutex<Vec<T>>` makes every call on every thread take the same lock and hands
//! each call whatever another thread returned last: under many threads the lock's cache
//! line bounces between cores, and the item arrives cold (its memory last touched on another
//! core). Measured on the SQLite get of benchmark (f), 16 threads on 2 cores: the model over
//! the shared-stack pool reached 0.66 of a connection-per-thread loop.
//!
//! Here the idle items sit in [`SHARDS`] separately locked stacks. Each thread has a home
//! stack (threads are numbered as they first use a pool, so up to [`SHARDS`] threads have one
//! each) and returns to it, so in a steady load each thread takes back its own item, through
//! a lock no other thread touches. A thread whose home stack is empty takes from the others,
//! so an idle item is never out of reach. One atomic counter bounds the idle items of all
//! stacks together.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// How many stacks the idle items are spread over: more than the threads that call at
/// once in practice, few enough that a thread whose stack is empty can look in all of them.
pub const SHARDS: usize = 32;

/// Idle items, each thread preferring the stack it returns to.
pub struct AffinePool<T> {
    shards: Box<[Shard<T>]>,
    /// Idle items in all stacks; never above `max_idle`.
    idle: AtomicUsize,
    max_idle: usize,
}

/// One stack, on a cache line of its own so that neighbouring locks do not share one.
#[repr(align(128))]
struct Shard<T>(Mutex<Vec<T>>);

impl<T> AffinePool<T> {
    /// An empty pool that keeps at most `max_idle` items.
    pub fn new(max_idle: usize) -> Self {
        AffinePool {
            shards: (0..SHARDS).map(|_| Shard(Mutex::new(Vec::new()))).collect(),
            idle: AtomicUsize::new(0),
            max_idle,
        }
    }

    /// An idle item: the one this thread returned last if its stack has one, else any.
    pub fn take(&self) -> Option<T> {
        if self.idle.load(Ordering::Relaxed) == 0 {
            return None;
        }
        let home = home_shard();
        (0..SHARDS).find_map(|offset| {
            let item = self.shards[(home + offset) % SHARDS].lock().pop()?;
            self.idle.fetch_sub(1, Ordering::Relaxed);
            Some(item)
        })
    }

    /// Keeps `item` for this thread's next [`take`](Self::take), or hands it back if the
    /// pool is full (the caller drops it, outside any lock of the pool).
    pub fn put(&self, item: T) -> Result<(), T> {
        // Counted before it is pushed, so the count never exceeds `max_idle` and never drops
        // below zero: a `take` that sees the count first may find nothing, and makes a new one.
        if self.idle.fetch_add(1, Ordering::Relaxed) >= self.max_idle {
            self.idle.fetch_sub(1, Ordering::Relaxed);
            return Err(item);
        }
        self.shards[home_shard()].lock().push(item);
        Ok(())
    }

    /// How many items are idle.
    pub fn len(&self) -> usize {
        self.idle.load(Ordering::Relaxed)
    }

    /// Whether no item is idle.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Takes every idle item out (the caller drops them, outside any lock of the pool).
    pub fn drain(&self) -> Vec<T> {
        let mut items = Vec::new();
        for shard in &self.shards {
            let mut stack = shard.lock();
            self.idle.fetch_sub(stack.len(), Ordering::Relaxed);
            items.append(&mut stack);
        }
        items
    }
}

impl<T> Shard<T> {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<T>> {
        // A panic while holding the lock cannot leave the Vec half-changed: push and pop.
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// This thread's stack: threads are numbered in the order they first use any pool.
fn home_shard() -> usize {
    static NEXT_THREAD: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static HOME: usize = NEXT_THREAD.fetch_add(1, Ordering::Relaxed) % SHARDS;
    }
    HOME.with(|home| *home)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_thread_takes_back_what_it_returned_last() {
        let pool = AffinePool::new(8);
        assert_eq!(pool.take(), None);
        pool.put(1).unwrap();
        pool.put(2).unwrap();
        assert_eq!(pool.take(), Some(2));
        assert_eq!(pool.take(), Some(1));
        assert_eq!(pool.take(), None);
    }

    #[test]
    fn an_item_another_thread_returned_is_still_taken() {
        let pool = AffinePool::new(8);
        std::thread::scope(|scope| {
            scope.spawn(|| pool.put("theirs").unwrap());
        });
        assert_eq!(pool.take(), Some("theirs"));
        assert_eq!(pool.len(), 0);
    }

    #[test]
    fn a_full_pool_hands_the_item_back() {
        let pool = AffinePool::new(1);
        pool.put(1).unwrap();
        assert_eq!(pool.put(2), Err(2));
        assert_eq!(pool.len(), 1);
    }

    #[test]
    fn many_threads_lose_nothing_and_keep_the_bound() {
        let pool = AffinePool::new(5);
        let (made, refused) = (AtomicUsize::new(0), AtomicUsize::new(0));
        std::thread::scope(|scope| {
            for _ in 0..8 {
                scope.spawn(|| {
                    for _ in 0..2_000 {
                        // Each item made is numbered, so one taken twice would show.
                        let item = pool
                            .take()
                            .unwrap_or_else(|| made.fetch_add(1, Ordering::Relaxed));
                        assert!(pool.len() <= 5);
                        if pool.put(item).is_err() {
                            refused.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                });
            }
        });
        let mut left = Vec::new();
        while let Some(item) = pool.take() {
            left.push(item);
        }
        assert!(left.len() <= 5);
        assert_eq!(
            left.len(),
            made.into_inner() - refused.into_inner(),
            "every item made is either idle or was refused"
        );
        let idle = left.len();
        left.sort_unstable();
        left.dedup();
        assert_eq!(left.len(), idle, "an item came out twice");
        assert_eq!(pool.len(), 0);
    }

    #[test]
    fn drain_takes_every_thread_s_items_and_resets_the_count() {
        let pool = AffinePool::new(8);
        pool.put(1).unwrap();
        std::thread::scope(|scope| {
            scope.spawn(|| pool.put(2).unwrap());
        });
        let mut drained = pool.drain();
        drained.sort_unstable();
        assert_eq!(drained, [1, 2]);
        assert_eq!(pool.len(), 0);
        assert_eq!(pool.take(), None);
        pool.put(3).unwrap();
        assert_eq!(pool.take(), Some(3), "the pool works on after a drain");
    }

    proptest! {
        /// From one thread the pool is a bounded stack: what comes out is what went in, last
        /// in first out, and puts past the bound are handed back.
        #[test]
        fn one_thread_sees_a_bounded_stack(ops in proptest::collection::vec(any::<Option<u8>>(), 0..200), max in 0usize..10) {
            let pool = AffinePool::new(max);
            let mut model = Vec::new();
            for op in ops {
                match op {
                    Some(item) => {
                        let kept = pool.put(item).is_ok();
                        prop_assert_eq!(kept, model.len() < max);
                        if kept {
                            model.push(item);
                        }
                    }
                    None => prop_assert_eq!(pool.take(), model.pop()),
                }
                prop_assert_eq!(pool.len(), model.len());
            }
        }
    }
}
