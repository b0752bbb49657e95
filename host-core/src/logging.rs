//! Log records: the guest's `logging` import into `tracing`, and trace rendering of
//! transport keys. Shared by both hosts.

use tracing::level_filters::LevelFilter;

use crate::bindings::logging::{self, Level};
use crate::bindings::types;

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
