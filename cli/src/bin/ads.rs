//! `ads`: the datastore command line over the async host, with `serve`.

use std::process::ExitCode;

use anyhow::Context as _;
use clap::Subcommand;
use ds_cli::args::{AsCommand, Cli, Command};
use ds_cli::output::Output;

/// The commands of `ads`: those of `ds`, and `serve`.
#[derive(Debug, Subcommand)]
enum AdsCommand {
    #[command(flatten)]
    Shared(Command),
    /// Serve the datastore API as JSON over HTTP: entities by key, batch get,
    /// query, allocate-ids and the example's operations under /v1/. Prints
    /// {"listening": "ADDR"} once it accepts connections; SIGINT or SIGTERM stops it after
    /// the requests in flight.
    #[command(after_help = "Examples:\n  \
        ads serve --listen 127.0.0.1:8080\n  \
        curl -X PUT localhost:8080/v1/entities/Account:alice -d '{\"owner\": \"Alice\"}'\n  \
        curl localhost:8080/v1/entities/Account:alice\n  \
        curl localhost:8080/v1/query -d '{\"kind\": \"Account\", \"filters\": [\"balance >= 10\"]}'")]
    Serve {
        /// The address to listen on (port 0: any free port).
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: std::net::SocketAddr,
        /// Requests served at once; more wait for a slot.
        #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=100_000))]
        max_in_flight: u32,
        /// Longest a request waits for a slot before it is answered 503, in milliseconds.
        #[arg(long, default_value_t = 1_000)]
        queue_timeout_ms: u64,
    },
}

impl AsCommand for AdsCommand {
    fn as_command(&self) -> Option<&Command> {
        match self {
            AdsCommand::Shared(command) => Some(command),
            AdsCommand::Serve { .. } => None,
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli: Cli<AdsCommand> = Cli::parse_for(
        "ads",
        "ads: the datastore model, run by the async host",
        &[],
    );
    ds_cli::init_tracing(cli.trace);
    let mut output = Output::new(cli.output);
    let result = run(cli, &mut output).await;
    ds_cli::exit::finish(&mut output, result)
}

async fn run(cli: Cli<AdsCommand>, output: &mut Output) -> anyhow::Result<()> {
    let db = ads::Datastore::builder()
        .store_url(&cli.store)
        .component(cli.component_source())
        .instance_options(cli.instance_options())
        .transaction_retries(cli.retries)
        .build()
        .await
        .with_context(|| ds_cli::cannot_open(&cli.store))?;
    match cli.command {
        AdsCommand::Shared(command) => ds_cli::dispatch::run(&db, command, output).await,
        AdsCommand::Serve {
            listen,
            max_in_flight,
            queue_timeout_ms,
        } => {
            let listener = tokio::net::TcpListener::bind(listen)
                .await
                .with_context(|| format!("cannot listen on {listen}"))?;
            let address = listener.local_addr().context("the listening address")?;
            output.emit(serde_json::json!({ "listening": address.to_string() }));
            let options = ads::serve::ServeOptions {
                max_in_flight: max_in_flight as usize,
                queue_timeout: std::time::Duration::from_millis(queue_timeout_ms),
            };
            ads::serve::serve(listener, db, options, shutdown_signal())
                .await
                .context("serve")
        }
    }
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    let mut terminate =
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => signal,
            Err(err) => {
                tracing::warn!("cannot listen for SIGTERM: {err}");
                let _ = interrupt.await;
                return;
            }
        };
    tokio::select! {
        _ = interrupt => {}
        _ = terminate.recv() => {}
    }
}
