//! `ds-cli`: the command line of both hosts, written once. The binaries `ds` (blocking)
//! and `ads` (async, which adds `serve`) parse the same arguments ([`args`]), run the same
//! dispatch over their host's `Datastore` ([`dispatch`]), print through the same
//! [`output`], read the same [`import`] files and exit with the same codes ([`exit`]).
//!
//! The host libraries carry none of this: an embedder of `ds` or `ads` compiles no clap,
//! indicatif, tracing-subscriber or anyhow.
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod args;
pub mod dispatch;
pub mod exit;
pub mod import;
pub mod output;
pub mod scaffold;
pub mod shell;

/// Installs the `tracing` subscriber on stderr: the call path at `trace` level with
/// `--trace`, otherwise `RUST_LOG` (default: warnings only).
pub fn init_tracing(trace: bool) {
    init_tracing_with(trace, false, "warn");
}

/// [`init_tracing`] with a default filter of one's own (when `RUST_LOG` is unset), and
/// optionally one JSON object per line (with timestamps, for log collectors).
pub fn init_tracing_with(trace: bool, json: bool, default_filter: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = if trace {
        EnvFilter::new("warn,ds=trace,ads=trace,host_core=debug,ads::http=info")
    } else {
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter))
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .without_time()
            .try_init()
    };
}

/// The context of a datastore that could not be built: the store URL, password redacted.
pub fn cannot_open(store: &str) -> String {
    format!("cannot open the datastore at {}", ds::store::redact(store))
}

/// Fixes the process's engine settings from the environment (`DS_MAX_INSTANCES`), refusing
/// a value that is not a number of instances: a typo must not pass for the default.
pub fn configure_engine() -> Result<(), exit::UsageError> {
    let options = host_core::runtime::EngineOptions::from_env().map_err(exit::UsageError)?;
    host_core::runtime::configure(options);
    Ok(())
}
