//! `ds`: the blocking datastore CLI.

use std::process::ExitCode;

use anyhow::Context as _;
use ds::Datastore;
use host_core::cli::{self, Cli, Command, NotFound};

fn main() -> ExitCode {
    let cli = Cli::parse_for("ds", "ds: the datastore model, run by the blocking host");
    host_core::logging::init_cli_tracing(cli.trace);
    cli::finish(run(cli))
}

fn run(cli: Cli) -> anyhow::Result<()> {
    // Refused before the store is opened: nothing is created for a command that cannot run.
    if let Command::Serve { .. } = cli.command {
        return Err(cli::UsageError(
            "`serve` is the async host's: run `ads serve --listen ADDR`".into(),
        )
        .into());
    }
    let db = Datastore::builder()
        .store_url(&cli.store)
        .component(cli.component_source())
        .instance_options(cli.instance_options())
        .transaction_retries(cli.retries)
        .build()
        .with_context(|| {
            format!(
                "cannot open the datastore at {}",
                host_core::store::redact(&cli.store)
            )
        })?;
    match cli.command {
        Command::Get { key } => {
            let entity = db.get(&key).with_context(|| format!("get {key}"))?;
            cli::print_entity(&entity.ok_or(NotFound(key))?);
        }
        Command::Put { key, properties } => {
            let entity = cli::entity_from_cli(key.clone(), &properties)
                .with_context(|| format!("put {key}"))?;
            let key = db.put(&entity).with_context(|| format!("put {key}"))?;
            cli::print_put(&key);
        }
        Command::Delete { key } => {
            db.delete(&key).with_context(|| format!("delete {key}"))?;
            cli::print_deleted(&key);
        }
        Command::Import { file, batch } => {
            let mut reader = cli::ImportReader::open(&file, batch)?;
            let progress = cli::import_progress();
            while let Some(entities) = reader.next_batch().context("import stopped")? {
                db.put_many(&entities)
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
                let page = db.query(&query).context("query")?;
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
                .with_context(|| format!("allocate {count} ids of {kind}"))?;
            cli::print_allocated(&kind, first, count);
        }
        Command::Deposit { account, amount } => {
            let balance = db
                .deposit(&account, amount)
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
                .with_context(|| format!("transfer {amount} from {source} to {destination}"))?;
            cli::print_receipt(&receipt);
        }
        Command::Serve { .. } => unreachable!("refused before the store was opened"),
        Command::Call { name, input } => {
            let output = db
                .call(&name, &input)
                .with_context(|| format!("call {name}"))?;
            cli::emit(output);
        }
        Command::Completions { .. } => unreachable!("answered while parsing"),
        Command::Check => {
            let report = db.check().context("check")?;
            cli::report_check(&report)?;
        }
    }
    Ok(())
}
