//! Per-process queues of the example's transactions by entity group.
//!
//! Transactions on one entity group (the keys under one root) conflict in the store: when
//! several run at once, all but one lose the commit race, back off and retry, and after the
//! retries are spent the caller gets a conflict. Under a server's load (8 clients × 50
//! deposits to one account) that was a quarter to a half of the answers. Inside one process
//! nothing is gained by letting them race, so they queue here, group by group, before they
//! reach the store; only transactions from other processes can still conflict. Groups that
//! no transaction holds or waits for are forgotten.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use host_core::Key;
use tokio::sync::OwnedMutexGuard;

/// The queues, one per entity group that a transaction holds or waits for.
#[derive(Default)]
pub(crate) struct GroupQueues {
    queues: Mutex<HashMap<Key, Weak<tokio::sync::Mutex<()>>>>,
}

/// A transaction's turn on its groups: held until dropped (also when the call is
/// cancelled).
pub(crate) struct Turn {
    _held: Vec<OwnedMutexGuard<()>>,
}

/// The root of `key`'s entity group: its namespace and first path element.
fn group(key: &Key) -> Key {
    Key {
        namespace: key.namespace.clone(),
        path: key.path.iter().take(1).cloned().collect(),
    }
}

impl GroupQueues {
    /// Waits for the turn of a transaction on the groups of `keys`. Groups are taken in
    /// key order, so two transactions on the same two groups cannot wait for each other.
    pub(crate) async fn turn(&self, keys: &[&Key]) -> Turn {
        let mut groups: Vec<Key> = keys.iter().map(|key| group(key)).collect();
        groups.sort();
        groups.dedup();
        let queues: Vec<Arc<tokio::sync::Mutex<()>>> = {
            let mut all = self.queues.lock().unwrap_or_else(|p| p.into_inner());
            if all.len() > 1024 {
                all.retain(|_, queue| queue.strong_count() > 0);
            }
            groups
                .into_iter()
                .map(|group| {
                    let entry = all.entry(group).or_default();
                    entry.upgrade().unwrap_or_else(|| {
                        let queue = Arc::new(tokio::sync::Mutex::new(()));
                        *entry = Arc::downgrade(&queue);
                        queue
                    })
                })
                .collect()
        };
        let mut held = Vec::with_capacity(queues.len());
        for queue in queues {
            held.push(queue.lock_owned().await);
        }
        Turn { _held: held }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn transactions_on_one_group_take_turns_and_others_do_not_wait() {
        let queues = Arc::new(GroupQueues::default());
        let alice: Key = "Account:alice".parse().unwrap();
        let child: Key = "Account:alice/Transfer:1".parse().unwrap();
        let bob: Key = "Account:bob".parse().unwrap();
        let first = queues.turn(&[&alice]).await;
        // Another group is free; the same group (a descendant's key) waits.
        let _other = queues.turn(&[&bob]).await;
        let waiting = {
            let queues = queues.clone();
            let child = child.clone();
            tokio::spawn(async move { queues.turn(&[&child]).await })
        };
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        drop(first);
        let _second = waiting.await.unwrap();
        // Both groups at once, in either order, with duplicates.
        drop(_other);
        drop(_second);
        let _both = queues.turn(&[&bob, &alice, &bob]).await;
    }
}
