//! Log records: the guest's `logging` import into `tracing`, trace rendering of transport
//! keys, and the CLI's subscriber. Shared by both hosts.

use tracing::level_filters::LevelFilter;

use crate::bindings::logging::{self, Level};
use crate::bindings::types;
use crate::instances::HasInstanceCtx;

/// The `logging` import (and the function-less `types` import) for both hosts: each guest
/// log line becomes a `tracing` event with target `ds::guest`.
#[derive(Debug, Default, Clone, Copy)]
pub struct GuestLog {
    /// The level `log` last told this instance, if it logged: the guest keeps the answer.
    told: Option<LevelFilter>,
}

impl GuestLog {
    /// Whether the level this instance was told by `log` (if anything) is still the host's
    /// level. An instance for which it is not must not be called again, or it would drop
    /// lines the host now records (or keep sending lines it no longer does).
    pub fn is_current(&self) -> bool {
        self.told.is_none_or(|told| told == LevelFilter::current())
    }
}

impl types::Host for GuestLog {}

impl logging::Host for GuestLog {
    fn log(&mut self, level: Level, context: String, message: String) -> Option<Level> {
        // `tracing` levels are static per call site, hence one arm per level.
        match level {
            Level::Trace => tracing::trace!(target: "ds::guest", context, "{message}"),
            Level::Debug => tracing::debug!(target: "ds::guest", context, "{message}"),
            Level::Info => tracing::info!(target: "ds::guest", context, "{message}"),
            Level::Warn => tracing::warn!(target: "ds::guest", context, "{message}"),
            Level::Error | Level::Critical => {
                tracing::error!(target: "ds::guest", context, "{message}")
            }
        }
        // The global hint: the most detailed level any subscriber may record. Cheap to keep
        // current (one atomic load per call, in `is_current`) and never below a per-target
        // answer, so the guest skips no line that a subscriber wants.
        let current = LevelFilter::current();
        self.told = Some(current);
        Some(match current.into_level()? {
            tracing::Level::TRACE => Level::Trace,
            tracing::Level::DEBUG => Level::Debug,
            tracing::Level::INFO => Level::Info,
            tracing::Level::WARN => Level::Warn,
            tracing::Level::ERROR => Level::Error,
        })
    }
}

/// Links the imports both hosts implement the same way (`types`, `logging`) into `linker`.
pub fn add_shared_imports<T: HasInstanceCtx>(
    linker: &mut wasmtime::component::Linker<T>,
) -> wasmtime::Result<()> {
    fn log<T: HasInstanceCtx>(state: &mut T) -> &mut GuestLog {
        &mut state.ctx().log
    }
    types::add_to_linker::<T, wasmtime::component::HasSelf<GuestLog>>(linker, log::<T>)?;
    logging::add_to_linker::<T, wasmtime::component::HasSelf<GuestLog>>(linker, log::<T>)
}

/// A transport key for a trace line: the entity's own id or name (what the seed's transport
/// printed) and the whole key in the human syntax (or escaped bytes for non-entity keys).
pub fn describe_key(key: &[u8]) -> (String, String) {
    match ds_model::Key::decode(key) {
        Ok(decoded) => {
            let leaf = decoded.leaf().map(|e| match &e.id {
                ds_model::IdOrName::Id(id) => id.to_string(),
                ds_model::IdOrName::Name(name) => name.clone(),
            });
            (leaf.unwrap_or_default(), decoded.to_string())
        }
        Err(_) => {
            let text = ds_model::key::describe_kv_key(key);
            (text.clone(), text)
        }
    }
}

/// Installs the CLI's `tracing` subscriber on stderr: the call path at `trace` level with
/// `--trace`, otherwise `RUST_LOG` (default: warnings only).
pub fn init_cli_tracing(trace: bool) {
    use tracing_subscriber::EnvFilter;
    let filter = if trace {
        EnvFilter::new("warn,ds=trace,ads=trace,host_core=debug")
    } else {
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"))
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .without_time()
        .try_init();
}
