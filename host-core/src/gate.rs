//! The bound on `ads` calls in flight on one engine: a counter on the way in and out, and a
//! wait only when every slot is taken.
//!
//! Every `ads` call passes here twice, from any worker thread. `tokio::sync::Semaphore`
//! takes its waiters' lock on every release, so at a steady load each call took a lock that
//! both workers share (measured: the semaphore's acquire and release were 3.7% of the
//! instant-store throughput loop, benchmark (d)). Here a call that finds a free slot does
//! one compare-and-swap in and one subtraction out; only calls that find the engine full
//! wait, on a [`Notify`].

use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Notify;

/// At most `slots` passes out at once; further callers wait for one to end.
#[derive(Debug)]
pub struct Gate {
    slots: usize,
    taken: AtomicUsize,
    /// Callers waiting (or about to wait) for a slot: a leaving pass wakes one if any.
    waiting: AtomicUsize,
    freed: Notify,
}

/// One slot of a [`Gate`], given back when dropped.
#[derive(Debug)]
#[must_use = "the slot is given back when the pass is dropped"]
pub struct Pass<'a>(&'a Gate);

impl Gate {
    /// A gate of `slots` slots (at least one).
    pub fn new(slots: usize) -> Gate {
        Gate {
            slots: slots.max(1),
            taken: AtomicUsize::new(0),
            waiting: AtomicUsize::new(0),
            freed: Notify::new(),
        }
    }

    /// A slot, now if one is free.
    pub fn try_pass(&self) -> Option<Pass<'_>> {
        let mut taken = self.taken.load(Ordering::Relaxed);
        while taken < self.slots {
            match self.taken.compare_exchange_weak(
                taken,
                taken + 1,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Some(Pass(self)),
                Err(now) => taken = now,
            }
        }
        None
    }

    /// A slot, waiting for one if all are taken. Not first come, first served: a caller
    /// that arrives as a slot frees may take it before a woken waiter, which then waits for
    /// the next.
    pub async fn pass(&self) -> Pass<'_> {
        if let Some(pass) = self.try_pass() {
            return pass;
        }
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let _waiting = Waiting(self);
        loop {
            let freed = self.freed.notified();
            let mut freed = std::pin::pin!(freed);
            // Registered before the check below: a slot freed after the check wakes it.
            freed.as_mut().enable();
            if let Some(pass) = self.try_pass() {
                return pass;
            }
            freed.await;
        }
    }

    /// Slots taken now.
    pub fn taken(&self) -> usize {
        self.taken.load(Ordering::Relaxed)
    }
}

impl Drop for Pass<'_> {
    fn drop(&mut self) {
        let gate = self.0;
        gate.taken.fetch_sub(1, Ordering::SeqCst);
        // Paired with the waiter's `SeqCst` increment of `waiting` before its check of
        // `taken`: either it sees this slot free, or this sees it waiting and wakes it.
        if gate.waiting.load(Ordering::SeqCst) > 0 {
            gate.freed.notify_one();
        }
    }
}

/// A caller counted in `waiting` until it has its pass or gives up (its future dropped).
struct Waiting<'a>(&'a Gate);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn passes_stop_at_the_slots_and_come_back() {
        let gate = Gate::new(2);
        let first = gate.try_pass().expect("a free slot");
        let _second = gate.try_pass().expect("a free slot");
        assert!(gate.try_pass().is_none());
        assert_eq!(gate.taken(), 2);
        drop(first);
        assert!(gate.try_pass().is_some());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_waiter_gets_the_slot_that_frees() {
        let gate = Arc::new(Gate::new(1));
        let held = gate.try_pass().expect("a free slot");
        let waiter = tokio::spawn({
            let gate = gate.clone();
            async move {
                let _pass = gate.pass().await;
            }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished(), "the waiter passed a full gate");
        drop(held);
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("the waiter was never woken")
            .expect("the waiter panicked");
        assert_eq!(gate.taken(), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn many_tasks_never_exceed_the_slots_and_all_finish() {
        const SLOTS: usize = 3;
        let gate = Arc::new(Gate::new(SLOTS));
        let most = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..200)
            .map(|i| {
                let (gate, most) = (gate.clone(), most.clone());
                tokio::spawn(async move {
                    let _pass = gate.pass().await;
                    most.fetch_max(gate.taken(), Ordering::SeqCst);
                    if i % 3 == 0 {
                        tokio::task::yield_now().await;
                    }
                })
            })
            .collect();
        let all = async {
            for task in tasks {
                task.await.expect("a task panicked");
            }
        };
        tokio::time::timeout(Duration::from_secs(10), all)
            .await
            .expect("a waiter was never woken");
        assert!(most.load(Ordering::SeqCst) <= SLOTS);
        assert_eq!(gate.taken(), 0);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_waiter_that_gives_up_leaves_nothing_behind() {
        let gate = Gate::new(1);
        let held = gate.try_pass().expect("a free slot");
        let gave_up = tokio::time::timeout(Duration::from_millis(10), gate.pass()).await;
        assert!(gave_up.is_err());
        assert_eq!(gate.waiting.load(Ordering::SeqCst), 0);
        drop(held);
        assert!(gate.try_pass().is_some());
    }
}
