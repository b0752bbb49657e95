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
    Serve(Box<ServeArgs>),
}

/// `ads serve`'s options.
#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// The address to listen on (port 0: any free port). A non-loopback address needs
    /// --tokens (or --allow-unauthenticated).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: std::net::SocketAddr,
    /// Requests served at once; more wait for a slot.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    max_in_flight: u32,
    /// Longest a request waits for a slot (or body buffer) before it is answered 503, in
    /// milliseconds.
    #[arg(long, default_value_t = 1_000)]
    queue_timeout_ms: u64,
    /// Serve HTTPS with this certificate chain (PEM, leaf first); needs --tls-key.
    #[arg(long, requires = "tls_key", value_name = "PATH")]
    tls_cert: Option<std::path::PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, requires = "tls_cert", value_name = "PATH")]
    tls_key: Option<std::path::PathBuf>,
    /// Bearer tokens: a file of `read TOKEN` / `write TOKEN` lines. Requests then need
    /// `Authorization: Bearer TOKEN`; `read` may get, batch-get, query and scrape
    /// /metrics, `write` may do everything. /v1/health stays open.
    #[arg(long, value_name = "PATH")]
    tokens: Option<std::path::PathBuf>,
    /// Listen on a non-loopback address without --tokens: anyone who can reach the port
    /// can read and write everything.
    #[arg(long)]
    allow_unauthenticated: bool,
    /// Also answer requests addressed to this host name (the Host header; repeatable; `*`:
    /// any). Default: loopback names and the --listen address.
    #[arg(long, value_name = "NAME")]
    allow_host: Vec<String>,
    /// Let web pages from this origin call the service, with CORS (repeatable, e.g.
    /// https://app.example; `*`: any). Default: none, and a request with an Origin header is
    /// refused.
    #[arg(long, value_name = "ORIGIN")]
    allow_origin: Vec<String>,
    /// Longest a connection may take to send a request's headers (counted from when it
    /// opened or was last answered, so it also closes idle connections), in milliseconds.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    header_timeout_ms: u64,
    /// Longest a request body may take to arrive, in milliseconds (408 after).
    #[arg(long, default_value_t = 30_000, value_parser = clap::value_parser!(u64).range(1..))]
    body_timeout_ms: u64,
    /// Most connections open at once; more wait in the listen backlog.
    #[arg(long, default_value_t = 4096, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    max_connections: u32,
    /// Most request-body bytes buffered at once, over all connections.
    #[arg(long, default_value_t = 64 << 20, value_parser = clap::value_parser!(u64).range(8 << 20..))]
    max_buffered_bytes: u64,
    /// After SIGINT or SIGTERM, how long requests in flight may take before the remaining
    /// connections are closed, in milliseconds.
    #[arg(long, default_value_t = 10_000)]
    drain_timeout_ms: u64,
    /// Request log lines (target ads::http, on stderr): `text` or `json`.
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
}

impl ServeArgs {
    /// The service's options, with every file read and every refusal made before the store
    /// is opened.
    fn options(&self) -> anyhow::Result<ads::serve::ServeOptions> {
        use ads::serve::access::{CrossSite, Open, Tokens};
        let access: std::sync::Arc<dyn ads::serve::access::AccessPolicy> = match &self.tokens {
            Some(path) => std::sync::Arc::new(
                Tokens::from_file(path).map_err(|err| ds_cli::exit::UsageError(err.to_string()))?,
            ),
            None if !self.listen.ip().is_loopback() && !self.allow_unauthenticated => {
                return Err(ds_cli::exit::UsageError(format!(
                    "refusing to listen on {} without authentication: anyone who reaches it \
                     could read and write everything. Give --tokens FILE, or \
                     --allow-unauthenticated if the network is trusted",
                    self.listen
                ))
                .into());
            }
            None => std::sync::Arc::new(Open),
        };
        let mut cross_site = CrossSite::default();
        if !self.listen.ip().is_unspecified() {
            cross_site.allow_host(&self.listen.ip().to_string());
        }
        if !self.listen.ip().is_loopback() && self.allow_host.is_empty() {
            tracing::warn!(
                "listening on {} without --allow-host: requests must name a loopback host or \
                 the listen address in their Host header (others get 403 forbidden_host)",
                self.listen
            );
        }
        for host in &self.allow_host {
            cross_site.allow_host(host);
        }
        for origin in &self.allow_origin {
            cross_site.allow_origin(origin);
        }
        let tls = match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Some(
                ads::serve::tls_config(cert, key)
                    .map_err(|err| ds_cli::exit::UsageError(err.to_string()))?,
            ),
            _ => None,
        };
        let millis = std::time::Duration::from_millis;
        Ok(ads::serve::ServeOptions {
            max_in_flight: self.max_in_flight as usize,
            queue_timeout: millis(self.queue_timeout_ms),
            access,
            cross_site,
            body_timeout: millis(self.body_timeout_ms),
            max_buffered_bytes: usize::try_from(self.max_buffered_bytes).unwrap_or(usize::MAX),
            connections: ads::serve::ConnectionOptions {
                tls,
                header_timeout: millis(self.header_timeout_ms),
                max_connections: self.max_connections as usize,
                drain_timeout: millis(self.drain_timeout_ms),
            },
        })
    }
}

impl AsCommand for AdsCommand {
    fn as_command(&self) -> Option<&Command> {
        match self {
            AdsCommand::Shared(command) => Some(command),
            AdsCommand::Serve(_) => None,
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
    match &cli.command {
        // A service logs each request (target ads::http) unless RUST_LOG says otherwise.
        AdsCommand::Serve(serve) => {
            ds_cli::init_tracing_with(cli.trace, serve.log_format == "json", "warn,ads::http=info")
        }
        AdsCommand::Shared(_) => ds_cli::init_tracing(cli.trace),
    }
    let mut output = Output::new(cli.output_format());
    let result = run(cli, &mut output).await;
    ds_cli::exit::finish(&mut output, result)
}

async fn run(cli: Cli<AdsCommand>, output: &mut Output) -> anyhow::Result<()> {
    ds_cli::configure_engine()?;
    let reads_only = matches!(&cli.command, AdsCommand::Shared(command) if command.reads_only());
    let options = match &cli.command {
        AdsCommand::Serve(serve) => Some(serve.options()?),
        AdsCommand::Shared(_) => None,
    };
    let db = ads::Datastore::builder()
        .store_url(&cli.store)
        // Commands that only read refuse a store that does not exist instead of making one.
        .create_store(!reads_only)
        .component(cli.component_source())
        .instance_options(cli.instance_options())
        .transaction_retries(cli.retries)
        .build()
        .await
        .with_context(|| ds_cli::cannot_open(&cli.store))?;
    match cli.command {
        AdsCommand::Shared(command) => {
            let invocation = ds_cli::dispatch::Invocation {
                store: &cli.store,
                component: cli.component.as_deref(),
                binary: "ads",
            };
            ds_cli::dispatch::run(&db, command, output, invocation).await
        }
        AdsCommand::Serve(serve) => {
            let listen = serve.listen;
            let options = options.context("serve options")?;
            let listener = tokio::net::TcpListener::bind(listen)
                .await
                .with_context(|| format!("cannot listen on {listen}"))?;
            let address = listener.local_addr().context("the listening address")?;
            output.emit(serde_json::json!({ "listening": address.to_string() }));
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
