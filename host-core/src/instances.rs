//! Instances of the model component: warm reuse or a fresh one per call, and the memory
//! meter that bounds and measures each instance. Shared by both hosts; they differ only in
//! how they instantiate and call (blocking or awaited).
//!
//! Warm mode (the default) keeps up to `max_idle` instances, each in its own wasmtime
//! `Store`, and lends one to each call. An instance is discarded instead of returned when
//! its call trapped or was cancelled, after `max_calls` calls, or when its linear memory has
//! grown by more than `recycle_memory_bytes` since it was instantiated; so no fault or leak
//! outlives one instance. Per-call
//! mode instantiates for every call and never reuses. See ARCHITECTURE.md for what can and
//! cannot carry over between calls in warm mode.

use std::sync::Arc;

use ds_store::affine::AffinePool;

use crate::ctx::{HasInstanceCtx, WriteLog};
use crate::engine::{Engine, ReleaseIdle};
pub use crate::error::{BoundExceeded, Writes};

/// How instances are shared between calls.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Isolation {
    /// Reuse warm instances across calls (fast; see the module docs for the recycling rules).
    #[default]
    Warm,
    /// A fresh `Store` and instance for every call: nothing survives a call.
    PerCall,
}

impl std::str::FromStr for Isolation {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "warm" => Ok(Isolation::Warm),
            "per-call" => Ok(Isolation::PerCall),
            other => Err(format!("unknown isolation {other:?}: use warm or per-call")),
        }
    }
}

/// Settings of a datastore's instances.
#[derive(Debug, Clone)]
pub struct InstanceOptions {
    /// Warm reuse or a fresh instance per call.
    pub isolation: Isolation,
    /// Most idle warm instances kept; more in use at once are discarded after their call.
    /// Default: the engine's `max_instances`, so a steady load at any concurrency the
    /// process allows stays warm (each idle instance keeps about 34 KiB of its own resident,
    /// and maps the component's shared data image: BENCHMARKS.md (e)). Idle
    /// instances give up their slots when a call of any datastore finds none free.
    pub max_idle: usize,
    /// Calls after which a warm instance is discarded.
    pub max_calls: u64,
    /// Growth of linear memory, past its size when instantiated, beyond which a warm
    /// instance is discarded after its call. (Growth, not size: a component whose image
    /// alone is larger, such as a Python model's interpreter, stays warm.)
    pub recycle_memory_bytes: usize,
    /// Largest linear memory an instance may grow to; growing past it traps the call with
    /// [`BoundExceeded::Memory`]. At most [`crate::runtime::MAX_GUEST_MEMORY`].
    pub memory_limit_bytes: usize,
    /// Longest a call may take, wall clock, checked while the guest runs (epoch
    /// interruption, in steps of [`crate::runtime::EPOCH_TICK`]); past it the call traps with
    /// [`BoundExceeded::Deadline`]. `ads` also stops awaiting a store past it.
    pub deadline: std::time::Duration,
}

impl Default for InstanceOptions {
    fn default() -> Self {
        InstanceOptions {
            isolation: Isolation::Warm,
            max_idle: crate::runtime::engine_options().max_instances as usize,
            max_calls: 10_000,
            recycle_memory_bytes: 8 << 20,
            memory_limit_bytes: crate::runtime::MAX_GUEST_MEMORY,
            deadline: std::time::Duration::from_secs(10),
        }
    }
}

/// A wasmtime store for one instance, with the memory meter installed and the deadline
/// armed for the instantiation itself.
pub fn new_store<T: HasInstanceCtx>(
    engine: &wasmtime::Engine,
    state: T,
    options: &InstanceOptions,
) -> wasmtime::Store<T> {
    let mut store = wasmtime::Store::new(engine, state);
    store.limiter(|state| &mut state.ctx().meter);
    store.set_epoch_deadline(deadline_ticks(options.deadline));
    store
}

impl<T: Send + 'static, M: Send + 'static> ReleaseIdle for AffinePool<Box<Instance<T, M>>> {
    fn release_idle(&self) -> usize {
        self.drain().len()
    }
}

/// The epoch ticks that cover `deadline`: one more than the quotient, since the first tick
/// may come at once. Capped far below `u64::MAX`: wasmtime adds the current epoch to it, and
/// a sum that wrapped would be a deadline already past (`Duration::MAX`, "no deadline",
/// would fail every call).
fn deadline_ticks(deadline: std::time::Duration) -> u64 {
    let tick = crate::runtime::EPOCH_TICK.as_nanos().max(1);
    u64::try_from(deadline.as_nanos().div_ceil(tick) + 1)
        .unwrap_or(u64::MAX)
        .min(MAX_DEADLINE_TICKS)
}

/// The longest deadline, in epoch ticks (billions of years at one tick per 10 ms), leaving
/// the epoch as much room again to grow before the sum could wrap.
const MAX_DEADLINE_TICKS: u64 = u64::MAX / 2;

/// An instance with its store, lent to one call at a time.
pub struct Instance<T: 'static, M> {
    /// The wasmtime store holding the instance.
    pub store: wasmtime::Store<T>,
    /// The bindings' handle on the instance's exports.
    pub model: M,
    calls: u64,
    /// Linear memory right after instantiation: what the component's image needs, which
    /// recycling does not count as growth.
    instantiated_bytes: usize,
}

impl<T: HasInstanceCtx, M> Instance<T, M> {
    /// Wraps a freshly instantiated model.
    pub fn new(mut store: wasmtime::Store<T>, model: M) -> Self {
        let instantiated_bytes = store.data_mut().ctx().meter.current_bytes();
        Instance {
            store,
            model,
            calls: 0,
            instantiated_bytes,
        }
    }

    /// What the current call has written so far.
    pub fn writes(&mut self) -> Writes {
        self.store.data_mut().ctx().writes.writes()
    }
}

/// The idle warm instances of one datastore. A thread (for `ads`, a worker thread) takes back
/// the instance it returned last, still in its core's cache (see [`ds_store::affine`]).
///
/// Every pool of an engine is also listed in the engine's registry, so that a datastore that
/// finds no free slot can have the idle instances of all its datastores released
/// ([`Engine::release_idle_for`]): otherwise one datastore's idle instances, kept after a
/// burst, could hold every slot of the engine and starve another datastore for good.
pub struct InstancePool<T: 'static, M> {
    idle: Arc<AffinePool<Box<Instance<T, M>>>>,
    engine: Engine,
    options: InstanceOptions,
    /// `options.deadline` in epoch ticks, computed once (a 128-bit division per call
    /// otherwise).
    deadline_ticks: u64,
}

impl<T: HasInstanceCtx, M: Send + 'static> InstancePool<T, M> {
    /// An empty pool on `engine`, listed in its registry of pools. It keeps at most as many
    /// idle instances as the engine has slots.
    pub fn new(options: InstanceOptions, engine: &Engine) -> Self {
        let max_idle = options.max_idle.min(engine.max_instances() as usize);
        let idle = Arc::new(AffinePool::new(max_idle));
        let listed: Arc<dyn ReleaseIdle> = idle.clone();
        engine.register(Arc::downgrade(&listed));
        InstancePool {
            idle,
            engine: engine.clone(),
            deadline_ticks: deadline_ticks(options.deadline),
            options,
        }
    }

    /// The options instances are made and recycled with.
    pub fn options(&self) -> &InstanceOptions {
        &self.options
    }

    /// An idle warm instance, if there is one (never in per-call mode). Instances that were
    /// told a log level the host no longer has are dropped on the way.
    pub fn take(&self) -> Option<Box<Instance<T, M>>> {
        if self.options.isolation == Isolation::PerCall {
            return None;
        }
        loop {
            let mut instance = self.idle.take()?;
            if instance.store.data_mut().ctx().log.is_current() {
                return Some(instance);
            }
        }
    }

    /// Arms the deadline of the call about to run on `instance`, and starts its write log.
    pub fn arm(&self, instance: &mut Instance<T, M>) {
        instance.store.set_epoch_deadline(self.deadline_ticks);
        let ctx = instance.store.data_mut().ctx();
        ctx.writes = WriteLog::default();
        ctx.deadline_epoch = ctx.current_epoch().saturating_add(self.deadline_ticks);
    }

    /// The error for a trapped call, naming the bound it hit if it hit one, and saying what
    /// the call had written (`writes`, read from the instance before it was given back).
    pub fn trap_error(&self, err: wasmtime::Error, writes: Writes) -> crate::Error {
        if err.downcast_ref::<wasmtime::Trap>() == Some(&wasmtime::Trap::Interrupt) {
            return self.deadline_error(writes);
        }
        match crate::Error::from_wasmtime(err, self.engine.max_instances()) {
            crate::Error::Trap(message) if writes != Writes::None => {
                crate::Error::Trap(format!("{message}{writes}"))
            }
            other => other,
        }
    }

    /// The error for a call stopped at its deadline, having written `writes`.
    pub fn deadline_error(&self, writes: Writes) -> crate::Error {
        crate::Error::Bound(BoundExceeded::Deadline {
            limit: self.options.deadline,
            writes,
        })
    }

    /// Returns `instance` after a call that completed (`trapped == false`) or trapped.
    /// It is kept for reuse only if warm mode, healthy, young and small enough, and the
    /// pool has room; otherwise it is dropped (its pool slot is freed).
    pub fn give_back(&self, mut instance: Box<Instance<T, M>>, trapped: bool) {
        instance.calls += 1;
        let memory = instance.store.data_mut().ctx().meter.current_bytes();
        let keep = self.options.isolation == Isolation::Warm
            && !trapped
            && instance.calls < self.options.max_calls
            && memory.saturating_sub(instance.instantiated_bytes)
                <= self.options.recycle_memory_bytes;
        if !keep {
            return;
        }
        // A full pool hands the instance back: it is dropped here, its slot freed.
        let _ = self.idle.put(instance);
    }

    /// The engine the pool's instances run on.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// How many idle instances the pool holds.
    pub fn idle_count(&self) -> usize {
        self.idle.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn deadline_ticks_cover_the_deadline_and_never_wrap() {
        let tick = crate::runtime::EPOCH_TICK;
        assert_eq!(deadline_ticks(Duration::ZERO), 1);
        assert_eq!(deadline_ticks(tick), 2);
        assert_eq!(deadline_ticks(tick + Duration::from_nanos(1)), 3);
        assert_eq!(deadline_ticks(Duration::from_secs(10)), 1001);
        for huge in [Duration::MAX, Duration::from_secs(u64::MAX)] {
            let ticks = deadline_ticks(huge);
            assert_eq!(ticks, MAX_DEADLINE_TICKS);
            assert!(ticks.checked_add(u64::MAX / 2).is_some());
        }
    }
}
