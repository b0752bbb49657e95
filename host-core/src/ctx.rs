//! The per-instance context both hosts keep in each wasmtime `Store`: the guest's log, the
//! memory meter, the current call's commits and its deadline.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{BoundExceeded, Writes};
use crate::logging::GuestLog;

/// The commits of the current call, as the transport imports see them.
#[derive(Debug, Default)]
pub struct WriteLog {
    applied: bool,
    unanswered: bool,
}

impl WriteLog {
    /// A commit with `writes` writes is about to go to the store.
    pub fn sent(&mut self, writes: usize) {
        if writes > 0 {
            self.unanswered = true;
        }
    }

    /// The store answered the commit last [`sent`](Self::sent): an internal error may mean
    /// it was applied (the store cannot tell), every other error means it was not.
    pub fn answered<T>(&mut self, result: &Result<T, ds_store::StoreError>) {
        if !self.unanswered {
            return;
        }
        match result {
            Ok(_) => {
                self.applied = true;
                self.unanswered = false;
            }
            Err(ds_store::StoreError::Internal(_)) => {}
            Err(_) => self.unanswered = false,
        }
    }

    /// What the call has written so far.
    pub fn writes(&self) -> Writes {
        if self.applied {
            Writes::Applied
        } else if self.unanswered {
            Writes::Unknown
        } else {
            Writes::None
        }
    }
}

/// Per-instance host state both hosts keep: the guest's log, the memory meter, and the
/// current call's commits.
#[derive(Debug)]
pub struct InstanceCtx {
    /// The `logging` import.
    pub log: GuestLog,
    /// The memory meter and limiter.
    pub meter: MemoryMeter,
    /// The commits of the call running now (reset when a call is armed).
    pub writes: WriteLog,
    /// The engine's epoch tick counter ([`crate::engine::Engine::current_epoch`]).
    epochs: Arc<AtomicU64>,
    /// The epoch tick at which the call running now
    /// reaches its deadline.
    pub(crate) deadline_epoch: u64,
}

impl InstanceCtx {
    /// A context whose instance may grow its memory to `memory_limit_bytes`, on the engine
    /// whose epoch counter is `epochs`.
    pub fn new(memory_limit_bytes: usize, epochs: Arc<AtomicU64>) -> Self {
        InstanceCtx {
            log: GuestLog::default(),
            meter: MemoryMeter {
                limit: memory_limit_bytes.min(crate::runtime::MAX_GUEST_MEMORY),
                current: 0,
            },
            writes: WriteLog::default(),
            epochs,
            deadline_epoch: u64::MAX,
        }
    }

    /// The engine's current epoch tick.
    pub fn current_epoch(&self) -> u64 {
        self.epochs.load(Ordering::Relaxed)
    }

    /// How long the call running now has left before its deadline (zero once past it): the
    /// most a blocking wait inside the call may take. Precise to one epoch tick.
    pub fn time_left(&self) -> std::time::Duration {
        let ticks = self.deadline_epoch.saturating_sub(self.current_epoch());
        crate::runtime::EPOCH_TICK.saturating_mul(u32::try_from(ticks).unwrap_or(u32::MAX))
    }
}

/// Host state that carries an [`InstanceCtx`]: what the shared linking and pooling need.
pub trait HasInstanceCtx: Send + 'static {
    /// The shared per-instance state.
    fn ctx(&mut self) -> &mut InstanceCtx;
}

/// Tracks an instance's linear memory and refuses growth past a limit.
#[derive(Debug)]
pub struct MemoryMeter {
    limit: usize,
    current: usize,
}

impl MemoryMeter {
    /// The instance's current linear memory size, in bytes.
    pub fn current_bytes(&self) -> usize {
        self.current
    }
}

impl wasmtime::ResourceLimiter for MemoryMeter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.limit {
            return Err(wasmtime::Error::new(BoundExceeded::Memory {
                limit: self.limit,
                requested: desired,
            }));
        }
        self.current = desired;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}
