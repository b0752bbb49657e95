//! `ads`: the async datastore CLI.

use std::process::ExitCode;

use ads::Datastore;
use anyhow::Context as _;
use host_core::cli::{self, Cli, Command, NotFound};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse_for("ads", "ads: the datastore model, run by the async host");
    host_core::logging::init_cli_tracing(cli.trace);
    cli::finish(run(cli).await)
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let db = Datastore::builder()
        .store_url(&cli.store)
        .component(cli.component_source())
        .instance_options(cli.instance_options())
        .transaction_retries(cli.retries)
        .build()
        .await
        .with_context(|| {
            format!(
                "cannot open the datastore at {}",
                host_core::store::redact(&cli.store)
            )
        })?;
    match cli.command {
        Command::Get { key } => {
            let entity = db.get(&key).await.with_context(|| format!("get {key}"))?;
            cli::print_entity(&entity.ok_or(NotFound(key))?);
        }
        Command::Put { key, properties } => {
            let entity = cli::entity_from_cli(key.clone(), &properties)
                .with_context(|| format!("put {key}"))?;
            let key = db
                .put(&entity)
                .await
                .with_context(|| format!("put {key}"))?;
            cli::print_put(&key);
        }
        Command::Delete { key } => {
            db.delete(&key)
                .await
                .with_context(|| format!("delete {key}"))?;
            cli::print_deleted(&key);
        }
        Command::Import { file, batch } => {
            let mut reader = cli::ImportReader::open(&file, batch)?;
            let progress = cli::import_progress();
            while let Some(entities) = reader.next_batch().context("import stopped")? {
                db.put_many(&entities)
                    .await
                    .with_context(|| reader.batch_failed(entities.len()))?;
                progress.inc(entities.len() as u64);
            }
            progress.finish_and_clear();
            cli::print_imported(reader.read);
        }
        Command::Export { kind } => {
            let mut start: Option<Vec<u8>> = None;
            loop {
                let page = db
                    .entities(start.as_deref(), kind.as_deref())
                    .await
                    .context("export")?;
                cli::print_entities(&page.entities);
                match page.next {
                    Some(next) => start = Some(next),
                    None => break,
                }
            }
        }
        Command::Query { .. } => {
            let mut query = cli.command.query().context("query")?;
            loop {
                let page = db.query(&query).await.context("query")?;
                if cli::print_query_page(&page, &mut query) {
                    break;
                }
            }
        }
        Command::AllocateIds {
            kind,
            count,
            namespace,
        } => {
            let first = db
                .allocate_ids(&namespace, &kind, count)
                .await
                .with_context(|| format!("allocate {count} ids of {kind}"))?;
            cli::print_allocated(&kind, first, count);
        }
        Command::Deposit { account, amount } => {
            let balance = db
                .deposit(&account, amount)
                .await
                .with_context(|| format!("deposit {amount} to {account}"))?;
            cli::print_balance(&account, balance);
        }
        Command::Transfer {
            source,
            destination,
            amount,
        } => {
            let receipt = db
                .transfer(&source, &destination, amount)
                .await
                .with_context(|| format!("transfer {amount} from {source} to {destination}"))?;
            cli::print_receipt(&receipt);
        }
        Command::Serve {
            listen,
            max_in_flight,
            queue_timeout_ms,
        } => {
            let listener = tokio::net::TcpListener::bind(listen)
                .await
                .with_context(|| format!("cannot listen on {listen}"))?;
            let address = listener.local_addr().context("the listening address")?;
            cli::emit(serde_json::json!({ "listening": address.to_string() }));
            let options = ads::serve::ServeOptions {
                max_in_flight: max_in_flight as usize,
                queue_timeout: std::time::Duration::from_millis(queue_timeout_ms),
            };
            ads::serve::serve(listener, db, options, shutdown_signal())
                .await
                .context("serve")?;
        }
        Command::Call { name, input } => {
            let output = db
                .call(&name, &input)
                .await
                .with_context(|| format!("call {name}"))?;
            cli::emit(output);
        }
        Command::Completions { .. } => unreachable!("answered while parsing"),
        Command::Check => {
            let report = db.check().await.context("check")?;
            cli::report_check(&report)?;
        }
    }
    Ok(())
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
