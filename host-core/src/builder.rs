//! What both hosts' `Builder`s hold and do, written once: the settings, their setters (a
//! macro, since each host's builder is its own type), opening the store named by URL, and
//! pre-instantiating the component.

use std::sync::Arc;

use crate::engine::Engine;
use crate::error::Error;
use crate::instances::InstanceOptions;
use crate::retry::RetryPolicy;
use crate::runtime::ComponentSource;
use crate::store::{DEFAULT_STORE_URL, StoreError, StoreUrl};

/// The settings of a datastore being built; `S` is the host's store trait object.
pub struct Settings<S: ?Sized> {
    /// A store given directly.
    pub store: Option<Arc<S>>,
    /// A store URL to open when the datastore is built.
    pub store_url: Option<String>,
    /// The component to run.
    pub component: ComponentSource,
    /// Instance settings: isolation, recycling, bounds.
    pub instances: InstanceOptions,
    /// How lost commit races are retried.
    pub retry: RetryPolicy,
    /// The engine to run on (`None`: the process's default engine).
    pub engine: Option<Engine>,
    /// Whether a store opened by URL is created when there is none (the default).
    pub create_store: bool,
}

impl<S: ?Sized> Default for Settings<S> {
    fn default() -> Self {
        Settings {
            store: None,
            store_url: None,
            component: ComponentSource::default(),
            instances: InstanceOptions::default(),
            retry: RetryPolicy::default(),
            engine: None,
            create_store: true,
        }
    }
}

impl<S: ?Sized> Settings<S> {
    /// The store: the one given, or the one at the URL (default `sqlite:ds.db`) opened with
    /// `open`, within the calls' deadline: a store that does not open in time (a SQLite file
    /// another process holds locked while it is set up, an unreachable server) is
    /// `Unavailable`, not a wait as long as the store's own timeouts.
    pub fn take_store(
        &mut self,
        open: impl FnOnce(&StoreUrl) -> Result<Arc<S>, StoreError> + Send + 'static,
    ) -> Result<Arc<S>, Error>
    where
        Arc<S>: Send + 'static,
    {
        if let Some(store) = self.store.take() {
            return Ok(store);
        }
        let url: StoreUrl = self
            .store_url
            .as_deref()
            .unwrap_or(DEFAULT_STORE_URL)
            .parse()?;
        let url = if self.create_store {
            url
        } else {
            url.existing()?
        };
        Ok(within(self.instances.deadline, move || open(&url))?)
    }

    /// The engine: the one given, or the process's default engine.
    pub fn take_engine(&mut self) -> Result<Engine, Error> {
        match self.engine.take() {
            Some(engine) => Ok(engine),
            None => Engine::shared().cloned(),
        }
    }

    /// Links the host's imports with `link`, pre-instantiates the component on `engine`, and
    /// wraps the result with `typed`.
    pub fn prepare<T: Send + 'static, P>(
        &self,
        engine: &Engine,
        link: impl FnOnce(&mut wasmtime::component::Linker<T>) -> wasmtime::Result<()>,
        typed: impl FnOnce(wasmtime::component::InstancePre<T>) -> wasmtime::Result<P>,
    ) -> Result<P, Error> {
        let pre = engine.instance_pre(&self.component, link)?;
        typed(pre).map_err(|err| Error::Component {
            origin: self.component.to_string(),
            reason: format!("{err:#}"),
        })
    }
}

/// The setters both hosts' builders share. The builder must have a field
/// `settings: host_core::builder::Settings<dyn $store>`.
#[macro_export]
macro_rules! builder_setters {
    ($store:ident) => {
        /// Uses `store` (any implementation of the store trait, e.g. one of your own).
        pub fn store(mut self, store: std::sync::Arc<dyn $store>) -> Self {
            self.settings.store = Some(store);
            self
        }

        /// Opens the store at `url` (`sqlite:PATH`, `postgres://…`, `memory:`) when the
        /// datastore is built.
        pub fn store_url(mut self, url: &str) -> Self {
            self.settings.store_url = Some(url.to_string());
            self
        }

        /// Whether a store opened by URL is created when there is none (default `true`).
        /// With `false`, building fails with a store error instead: a SQLite file that does
        /// not exist, a PostgreSQL schema without ds's tables. For readers that must not
        /// make an empty store out of a mistyped URL.
        pub fn create_store(mut self, create: bool) -> Self {
            self.settings.create_store = create;
            self
        }

        /// Runs on `engine` instead of the process's default engine: its own instance slots,
        /// its own wasmtime configuration ([`Engine::with_config`](host_core::engine::Engine::with_config)).
        pub fn engine(mut self, engine: $crate::engine::Engine) -> Self {
            self.settings.engine = Some(engine);
            self
        }

        /// Runs another build of the model component instead of the embedded one.
        pub fn component(mut self, source: $crate::ComponentSource) -> Self {
            self.settings.component = source;
            self
        }

        /// Warm instances reused across calls (the default) or a fresh instance per call.
        pub fn isolation(mut self, isolation: $crate::Isolation) -> Self {
            self.settings.instances.isolation = isolation;
            self
        }

        /// All instance settings: isolation, recycling, memory limit, deadline.
        pub fn instance_options(mut self, options: $crate::InstanceOptions) -> Self {
            self.settings.instances = options;
            self
        }

        /// How many times a transaction (or write) that lost its commit race is retried
        /// before it fails with `Error::Conflict` (default 3), keeping the default waits.
        pub fn transaction_retries(mut self, retries: u32) -> Self {
            self.settings.retry.retries = retries;
            self
        }

        /// The whole retry policy: retries and the exponential backoff between them.
        pub fn retry_policy(mut self, policy: $crate::RetryPolicy) -> Self {
            self.settings.retry = policy;
            self
        }
    };
}

/// Runs `work` (opening a store) on a thread of its own and waits at most `deadline` for
/// it. Past the deadline the caller gets `Unavailable` and the thread is left to finish
/// (and drop what it opened) by itself. The thread runs in the caller's tokio runtime, if
/// any, since the async stores spawn their connections' tasks there.
fn within<T: Send + 'static>(
    deadline: std::time::Duration,
    work: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    let runtime = tokio::runtime::Handle::try_current().ok();
    let (sender, receiver) = std::sync::mpsc::sync_channel(1);
    std::thread::Builder::new()
        .name("ds-open-store".into())
        .spawn(move || {
            let _entered = runtime.as_ref().map(tokio::runtime::Handle::enter);
            let _ = sender.send(work());
        })
        .map_err(|err| StoreError::Unavailable(format!("cannot start a thread: {err}")))?;
    match receiver.recv_timeout(deadline) {
        Ok(result) => result,
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => Err(StoreError::Unavailable(format!(
            "the store did not open within the deadline ({} ms); raise --deadline-ms, or see \
             what holds it (another process setting up a SQLite file, an unreachable server)",
            deadline.as_millis()
        ))),
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
            Err(StoreError::Internal("opening the store panicked".into()))
        }
    }
}
