//! [`Engine`]: a wasmtime engine with what ds keeps beside it: the thread that ticks its
//! epoch (call deadlines), its compiled components, the registry of its instance pools
//! (whose idle instances give up their slots when a call finds none free) and the bound on
//! calls in flight in `ads`.
//!
//! A datastore runs on the engine its builder was given, or on the process's default engine
//! ([`Engine::shared`], sized by [`crate::runtime::configure`] or `DS_MAX_INSTANCES`). An
//! embedder who wants its own limits, or its own wasmtime configuration, makes an `Engine`
//! and hands it to as many datastores as it likes; nothing else in this crate is
//! process-wide except the default engine and the on-disk component cache.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use sha2::{Digest, Sha256};
use wasmtime::component::Component;

use crate::error::{BoundExceeded, Error};
use crate::runtime::{ComponentSource, EPOCH_TICK, EngineOptions};

/// A wasmtime engine and the state ds keeps per engine. Cheap to clone; clones share all.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    wasmtime: wasmtime::Engine,
    options: EngineOptions,
    /// Epoch ticks since the ticker started: the engine's epoch as the host can read it
    /// (wasmtime does not expose its own), so a call's time left needs no clock read.
    epochs: Arc<AtomicU64>,
    /// Whether the ticker runs; set once it was spawned, so a failed spawn is retried.
    ticking: AtomicBool,
    /// Held while the ticker is started, so that it starts once.
    starting: Mutex<()>,
    /// Components compiled for this engine, by the SHA-256 of their bytes.
    components: Mutex<HashMap<[u8; 32], Component>>,
    /// The idle instances of every live instance pool of this engine.
    pools: Mutex<Vec<Weak<dyn ReleaseIdle>>>,
    /// Held while idle instances are released, so that a caller that finds nothing left to
    /// release still waits until the slots another caller is freeing are free.
    releasing: Mutex<()>,
    /// Bounds the `ads` calls in flight on this engine to its instance slots.
    in_flight: crate::gate::Gate,
}

/// A pool whose idle instances can be released (their slots freed).
pub(crate) trait ReleaseIdle: Send + Sync {
    /// Drops every idle instance; returns how many there were.
    fn release_idle(&self) -> usize;
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("options", &self.inner.options)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// An engine of ds's own configuration (pooling allocator with `options.max_instances`
    /// slots, copy-on-write memory images, epoch interruption, small fiber stacks).
    pub fn new(options: EngineOptions) -> Result<Engine, Error> {
        let config = crate::runtime::engine_config_for(&options);
        Engine::with_config(config, options)
    }

    /// An engine of the embedder's own wasmtime `config`, with what ds needs turned on
    /// (the component model and epoch interruption, by which call deadlines work).
    /// `options.max_instances` should match the config's instance limit, if it has one: it
    /// bounds `ads`'s calls in flight and names the limit in errors.
    pub fn with_config(
        mut config: wasmtime::Config,
        options: EngineOptions,
    ) -> Result<Engine, Error> {
        config.epoch_interruption(true).wasm_component_model(true);
        let wasmtime =
            wasmtime::Engine::new(&config).map_err(|err| Error::Engine(format!("{err:#}")))?;
        let slots = options.max_instances.max(1) as usize;
        let engine = Engine {
            inner: Arc::new(Inner {
                wasmtime,
                options,
                epochs: Arc::new(AtomicU64::new(0)),
                ticking: AtomicBool::new(false),
                starting: Mutex::new(()),
                components: Mutex::new(HashMap::new()),
                pools: Mutex::new(Vec::new()),
                releasing: Mutex::new(()),
                in_flight: crate::gate::Gate::new(slots),
            }),
        };
        engine.start_ticker()?;
        Ok(engine)
    }

    /// The process's default engine, made on first use with the options of
    /// [`crate::runtime::configure`] (or `DS_MAX_INSTANCES`).
    pub fn shared() -> Result<&'static Engine, Error> {
        static SHARED: OnceLock<Engine> = OnceLock::new();
        if let Some(engine) = SHARED.get() {
            engine.start_ticker()?;
            return Ok(engine);
        }
        let engine = Engine::new(crate::runtime::engine_options().clone())?;
        Ok(SHARED.get_or_init(|| engine))
    }

    /// The wasmtime engine.
    pub fn wasmtime(&self) -> &wasmtime::Engine {
        &self.inner.wasmtime
    }

    /// The options this engine was made with.
    pub fn options(&self) -> &EngineOptions {
        &self.inner.options
    }

    /// Instances that may exist at once on this engine.
    pub fn max_instances(&self) -> u32 {
        self.inner.options.max_instances
    }

    /// The engine's epoch tick counter, shared with each instance's context.
    pub(crate) fn epochs(&self) -> &Arc<AtomicU64> {
        &self.inner.epochs
    }

    /// The current epoch tick (see [`EPOCH_TICK`]).
    pub fn current_epoch(&self) -> u64 {
        self.inner.epochs.load(Ordering::Relaxed)
    }

    /// Bounds `ads`'s calls in flight on this engine, of all its datastores together, to its
    /// instance slots: each call holds an instance (and its fiber) until it ends, so further
    /// calls wait here instead of failing for want of a slot.
    pub(crate) fn in_flight(&self) -> &crate::gate::Gate {
        &self.inner.in_flight
    }

    /// The compiled component for `source`: from this engine's memo, the disk cache, or a
    /// fresh compile (which then fills both).
    pub fn component(&self, source: &ComponentSource) -> Result<Component, Error> {
        let bytes = source.bytes()?;
        let digest: [u8; 32] = Sha256::digest(&bytes).into();
        let memo = || {
            self.inner
                .components
                .lock()
                .unwrap_or_else(|p| p.into_inner())
        };
        if let Some(component) = memo().get(&digest) {
            return Ok(component.clone());
        }
        let component = crate::runtime::load_or_compile(
            &self.inner.wasmtime,
            &bytes,
            crate::runtime::cache_dir().as_deref(),
        )
        .map_err(|reason| Error::Component {
            origin: source.to_string(),
            reason,
        })?;
        memo().insert(digest, component.clone());
        Ok(component)
    }

    /// Links a host's imports with `link` and pre-instantiates `source`'s component.
    /// Compiling may take a moment the first time (unless the disk cache has it).
    pub fn instance_pre<T: Send + 'static>(
        &self,
        source: &ComponentSource,
        link: impl FnOnce(&mut wasmtime::component::Linker<T>) -> wasmtime::Result<()>,
    ) -> Result<wasmtime::component::InstancePre<T>, Error> {
        let component = self.component(source)?;
        crate::contract::check(&self.inner.wasmtime, &component).map_err(|reason| {
            Error::Component {
                origin: source.to_string(),
                reason,
            }
        })?;
        let mut linker = wasmtime::component::Linker::new(&self.inner.wasmtime);
        link(&mut linker)
            .and_then(|()| linker.instantiate_pre(&component))
            .map_err(|err| Error::Component {
                origin: source.to_string(),
                reason: format!("{err:#}"),
            })
    }

    /// Lists `pool` among this engine's pools, whose idle instances are released when a
    /// call finds no free slot.
    pub(crate) fn register(&self, pool: Weak<dyn ReleaseIdle>) {
        let mut pools = self.inner.pools.lock().unwrap_or_else(|p| p.into_inner());
        pools.retain(|pool| pool.strong_count() > 0);
        pools.push(pool);
    }

    /// After a failed instantiation: when `err` says every slot of this engine is taken,
    /// drops the idle warm instances of every datastore on it and returns true: instantiating
    /// once more may succeed. Calls in flight keep their instances.
    ///
    /// True even when this caller dropped none: a rival that failed at the same moment may
    /// have taken them all, and once this returns (after the rival's release, which holds
    /// the `releasing` lock) their slots are free. The price is one more attempt when every
    /// slot is in use by calls in flight.
    pub fn release_idle_for(&self, err: &Error) -> bool {
        if !matches!(err, Error::Bound(BoundExceeded::Instances { .. })) {
            return false;
        }
        let _releasing = self
            .inner
            .releasing
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let pools: Vec<Arc<dyn ReleaseIdle>> = self
            .inner
            .pools
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter_map(Weak::upgrade)
            .collect();
        // Outside the registry's lock: dropping instances frees their slots, which takes time.
        let released: usize = pools.iter().map(|pool| pool.release_idle()).sum();
        if released > 0 {
            tracing::debug!(target: "host_core::instances", released, "every instance slot was taken; released the idle instances of every datastore");
        }
        true
    }

    /// Starts the thread that advances this engine's epoch (deadlines are counted in
    /// epochs), unless it runs already. It ends when the engine is dropped.
    fn start_ticker(&self) -> Result<(), Error> {
        let inner = &self.inner;
        if inner.ticking.load(Ordering::Acquire) {
            return Ok(());
        }
        let _starting = inner.starting.lock().unwrap_or_else(|p| p.into_inner());
        if inner.ticking.load(Ordering::Acquire) {
            return Ok(());
        }
        let ticker = inner.wasmtime.weak();
        let epochs = Arc::clone(&inner.epochs);
        std::thread::Builder::new()
            .name("ds-epoch".into())
            .spawn(move || {
                while let Some(engine) = ticker.upgrade() {
                    engine.increment_epoch();
                    epochs.fetch_add(1, Ordering::Relaxed);
                    drop(engine);
                    std::thread::sleep(EPOCH_TICK);
                }
            })
            .map_err(|err| Error::Engine(format!("cannot start the epoch thread: {err}")))?;
        inner.ticking.store(true, Ordering::Release);
        Ok(())
    }
}
