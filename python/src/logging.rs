//! The hosts' `tracing` events into Python's `logging`: `ds.enable_logging(filter)`.
//!
//! Each event becomes one record, its message only, on the logger named after its target
//! with `.` for `::` (`ds.api`, `ds.guest`, `ds.transport`, `ads.api`, …). Nothing is
//! installed until the program asks, so a program that does not log pays nothing.

use std::sync::OnceLock;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, SubscriberExt as _};
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer, Registry, reload};

/// The filter of the installed subscriber, to change on a later call.
static FILTER: OnceLock<reload::Handle<EnvFilter, Registry>> = OnceLock::new();

/// Sends each event to `logging.getLogger(target).log(level, message)`.
struct ToPython;

/// Collects an event's `message` field.
#[derive(Default)]
struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0 = value.to_owned();
        }
    }
}

fn python_level(level: &tracing::Level) -> u8 {
    match *level {
        tracing::Level::TRACE => 5,
        tracing::Level::DEBUG => 10,
        tracing::Level::INFO => 20,
        tracing::Level::WARN => 30,
        tracing::Level::ERROR => 40,
    }
}

impl<S: tracing::Subscriber> Layer<S> for ToPython {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        let mut message = Message::default();
        event.record(&mut message);
        let metadata = event.metadata();
        let logger = metadata.target().replace("::", ".");
        let level = python_level(metadata.level());
        // Not after the interpreter has begun to go (a late event of a call in flight).
        // Events from tokio threads (`ads`) wait for the GIL here: logging is opt-in.
        if crate::bridge::exiting() {
            return;
        }
        Python::try_attach(|py| {
            let logged = py
                .import("logging")
                .and_then(|logging| logging.call_method1("getLogger", (logger,)))
                .and_then(|logger| logger.call_method1("log", (level, message.0)));
            // A failing handler is Python's to report, never a reason to fail the call.
            if let Err(err) = logged {
                err.print(py);
            }
        });
    }
}

/// Routes the hosts' log events at or above `filter` (a `tracing` filter, e.g. `"info"`,
/// `"ds::api=debug,ds::guest=debug"`) to Python's `logging`. Call again to change it.
#[pyfunction]
#[pyo3(signature = (filter = String::from("info")))]
pub fn enable_logging(filter: String) -> PyResult<()> {
    let parsed = EnvFilter::try_new(&filter)
        .map_err(|err| PyValueError::new_err(format!("invalid log filter {filter:?}: {err}")))?;
    if let Some(handle) = FILTER.get() {
        return handle
            .reload(parsed)
            .map_err(|err| PyValueError::new_err(format!("cannot change the log filter: {err}")));
    }
    let (layer, handle) = reload::Layer::new(parsed);
    tracing_subscriber::registry()
        .with(layer)
        .with(ToPython)
        .try_init()
        .map_err(|err| PyValueError::new_err(format!("cannot install logging: {err}")))?;
    let _ = FILTER.set(handle);
    Ok(())
}
