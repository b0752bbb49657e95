//! The transport the model runs on: an ordered key-value store with optimistic commits.
//!
//! These are the Rust forms of the WIT `types` and `transport` interfaces. The component
//! implements [`Transport`] with the imported functions; the hosts' stores produce these
//! same types, so the key-value data model is defined once for guest and hosts.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::ops::Bound;

/// A value and the version of the commit that wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned {
    /// The value bytes.
    pub value: Vec<u8>,
    /// The commit version.
    pub version: u64,
}

/// A key and its versioned value, as returned by a scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The key.
    pub key: Vec<u8>,
    /// The value and its version.
    pub value: Versioned,
}

/// Scan order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Ascending key order.
    Forward,
    /// Descending key order.
    Reverse,
}

/// A half-open key range `[start, end)`; `end: None` is unbounded.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KeyRange {
    /// The smallest key included.
    pub start: Vec<u8>,
    /// The first key excluded, if any.
    pub end: Option<Vec<u8>>,
}

/// A commit precondition: `key` must be at `version` (`None`: must be absent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// The key checked.
    pub key: Vec<u8>,
    /// The required version, or `None` for "absent".
    pub version: Option<u64>,
}

/// A commit write: put `value` at `key`, or delete `key` when `value` is `None`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    /// The key written.
    pub key: Vec<u8>,
    /// The new value, or `None` to delete.
    pub value: Option<Vec<u8>>,
}

/// Why a transport call failed (the WIT `store-error`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// A commit check failed on this key; nothing was written.
    Conflict(Vec<u8>),
    /// The store is unreachable or unusable now; nothing was written.
    Unavailable(String),
    /// The request breaks a limit of the store; nothing was written.
    InvalidRequest(String),
    /// Any other failure; whether a commit applied is unknown.
    Internal(String),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Conflict(key) => {
                write!(
                    f,
                    "commit conflict on key {}",
                    crate::key::describe_kv_key(key)
                )
            }
            StoreError::Unavailable(msg) => write!(f, "store unavailable: {msg}"),
            StoreError::InvalidRequest(msg) => write!(f, "request refused by the store: {msg}"),
            StoreError::Internal(msg) => write!(f, "store failure: {msg}"),
        }
    }
}

impl core::error::Error for StoreError {}

/// Log severity (the WIT `logging.level`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Very detailed.
    Trace,
    /// Debugging information.
    Debug,
    /// Normal operation.
    Info,
    /// Something unexpected, recovered.
    Warn,
    /// A failure.
    Error,
    /// A failure the model cannot go on from.
    Critical,
}

/// The ordered key-value store the model reads and commits through.
///
/// Contract (shared by every implementation, checked by the conformance tests): reads see
/// every commit completed before they started; `commit` is atomic; versions come from one
/// counter that only grows.
pub trait Transport {
    /// Reads one key.
    fn get(&mut self, key: &[u8]) -> Result<Option<Versioned>, StoreError>;

    /// Reads several keys; one result per key, in order.
    fn get_many(&mut self, keys: &[Vec<u8>]) -> Result<Vec<Option<Versioned>>, StoreError> {
        keys.iter().map(|key| self.get(key)).collect()
    }

    /// Reads up to `limit` entries of `range` in `direction`.
    fn scan(
        &mut self,
        range: &KeyRange,
        limit: u32,
        direction: Direction,
    ) -> Result<Vec<Entry>, StoreError>;

    /// Applies `writes` atomically if all `checks` hold; returns the new version.
    fn commit(&mut self, checks: &[Check], writes: &[Write]) -> Result<u64, StoreError>;

    /// Called after a commit lost a race, before retry number `attempt` (from 1): waits as
    /// the host's retry policy says and returns true to retry, or returns false at once when
    /// the policy's retries are spent. The policy (how many retries, how long to wait) is
    /// the host's; the default retries three times without waiting.
    fn backoff(&mut self, attempt: u32) -> bool {
        attempt <= DEFAULT_RETRIES
    }
}

impl<T: Transport + ?Sized> Transport for &mut T {
    fn get(&mut self, key: &[u8]) -> Result<Option<Versioned>, StoreError> {
        (**self).get(key)
    }
    fn get_many(&mut self, keys: &[Vec<u8>]) -> Result<Vec<Option<Versioned>>, StoreError> {
        (**self).get_many(keys)
    }
    fn scan(
        &mut self,
        range: &KeyRange,
        limit: u32,
        direction: Direction,
    ) -> Result<Vec<Entry>, StoreError> {
        (**self).scan(range, limit, direction)
    }
    fn commit(&mut self, checks: &[Check], writes: &[Write]) -> Result<u64, StoreError> {
        (**self).commit(checks, writes)
    }
    fn backoff(&mut self, attempt: u32) -> bool {
        (**self).backoff(attempt)
    }
}

/// Retries after a lost commit race that [`Transport::backoff`] allows by default (as
/// Cloud NDB's transactions).
pub const DEFAULT_RETRIES: u32 = 3;

/// Where the model's log lines go.
pub trait Log {
    /// Records one line.
    fn log(&self, level: Level, context: &str, message: &str);
}

/// A log that drops everything.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoLog;

impl Log for NoLog {
    fn log(&self, _: Level, _: &str, _: &str) {}
}

/// An in-memory transport: the reference implementation of the contract.
///
/// The hosts' `memory:` store wraps it in a lock; tests and the native benchmark use it
/// directly.
#[derive(Debug, Default, Clone)]
pub struct MemoryTransport {
    entries: BTreeMap<Vec<u8>, Versioned>,
    last_version: u64,
}

impl MemoryTransport {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every entry in key order: for comparing stores in tests.
    pub fn entries(&self) -> impl Iterator<Item = (&Vec<u8>, &Versioned)> {
        self.entries.iter()
    }
}

impl Transport for MemoryTransport {
    fn get(&mut self, key: &[u8]) -> Result<Option<Versioned>, StoreError> {
        Ok(self.entries.get(key).cloned())
    }

    fn scan(
        &mut self,
        range: &KeyRange,
        limit: u32,
        direction: Direction,
    ) -> Result<Vec<Entry>, StoreError> {
        let upper = match &range.end {
            Some(end) if *end <= range.start => return Ok(Vec::new()),
            Some(end) => Bound::Excluded(end.as_slice()),
            None => Bound::Unbounded,
        };
        let bounds = (Bound::Included(range.start.as_slice()), upper);
        let to_entry = |(key, value): (&Vec<u8>, &Versioned)| Entry {
            key: key.clone(),
            value: value.clone(),
        };
        let limit = limit as usize;
        Ok(match direction {
            Direction::Forward => self
                .entries
                .range::<[u8], _>(bounds)
                .take(limit)
                .map(to_entry)
                .collect(),
            Direction::Reverse => self
                .entries
                .range::<[u8], _>(bounds)
                .rev()
                .take(limit)
                .map(to_entry)
                .collect(),
        })
    }

    fn commit(&mut self, checks: &[Check], writes: &[Write]) -> Result<u64, StoreError> {
        for check in checks {
            let current = self.entries.get(&check.key).map(|v| v.version);
            if current != check.version {
                return Err(StoreError::Conflict(check.key.clone()));
            }
        }
        self.last_version += 1;
        let version = self.last_version;
        for write in writes {
            match &write.value {
                Some(value) => {
                    self.entries.insert(
                        write.key.clone(),
                        Versioned {
                            value: value.clone(),
                            version,
                        },
                    );
                }
                None => {
                    self.entries.remove(&write.key);
                }
            }
        }
        Ok(version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(key: &[u8], value: &[u8]) -> Write {
        Write {
            key: key.to_vec(),
            value: Some(value.to_vec()),
        }
    }

    #[test]
    fn commit_checks_versions_and_writes_atomically() {
        let mut t = MemoryTransport::new();
        let v1 = t
            .commit(
                &[Check {
                    key: b"a".to_vec(),
                    version: None,
                }],
                &[put(b"a", b"1")],
            )
            .unwrap();
        assert_eq!(
            t.get(b"a").unwrap(),
            Some(Versioned {
                value: b"1".to_vec(),
                version: v1
            })
        );
        // A stale check refuses the whole commit.
        let err = t
            .commit(
                &[Check {
                    key: b"a".to_vec(),
                    version: None,
                }],
                &[put(b"a", b"2"), put(b"b", b"2")],
            )
            .unwrap_err();
        assert_eq!(err, StoreError::Conflict(b"a".to_vec()));
        assert_eq!(t.get(b"b").unwrap(), None);
        let v2 = t
            .commit(
                &[Check {
                    key: b"a".to_vec(),
                    version: Some(v1),
                }],
                &[put(b"a", b"2")],
            )
            .unwrap();
        assert!(v2 > v1);
    }

    #[test]
    fn scans_are_bounded_and_ordered_both_ways() {
        let mut t = MemoryTransport::new();
        let writes: Vec<_> = [b"a", b"b", b"c", b"d"]
            .iter()
            .map(|k| put(*k, b""))
            .collect();
        t.commit(&[], &writes).unwrap();
        let range = KeyRange {
            start: b"b".to_vec(),
            end: Some(b"d".to_vec()),
        };
        let keys = |entries: Vec<Entry>| entries.into_iter().map(|e| e.key).collect::<Vec<_>>();
        assert_eq!(
            keys(t.scan(&range, 10, Direction::Forward).unwrap()),
            [b"b".to_vec(), b"c".to_vec()]
        );
        assert_eq!(
            keys(t.scan(&range, 1, Direction::Reverse).unwrap()),
            [b"c".to_vec()]
        );
        let empty = KeyRange {
            start: b"c".to_vec(),
            end: Some(b"a".to_vec()),
        };
        assert!(t.scan(&empty, 10, Direction::Forward).unwrap().is_empty());
    }
}
