//! The one dispatch of a parsed command over a datastore, for both binaries: written once
//! as `async` code over [`Face`], which `ds::Datastore` (its futures ready when made, so the
//! blocking binary runs the dispatch with one poll) and `ads::Datastore` (awaited) implement.

use anyhow::Context as _;
use ds::{CheckReport, Entity, Error, Query, QueryPage};
use host_core::answer;
use host_core::face::Face;
use serde_json::json;

use crate::args::Command;
use crate::exit::{CheckFailed, NotFound};
use crate::import::{ImportReader, import_progress};
use crate::output::Output;

/// Runs `command` on `db`, printing its results to `output`.
pub async fn run(db: &impl Face, command: Command, output: &mut Output) -> anyhow::Result<()> {
    match command {
        Command::Get { keys } if keys.len() == 1 => {
            let key = keys.into_iter().next().expect("one key");
            let entity = db.get(&key).await.with_context(|| format!("get {key}"))?;
            output.emit(answer::entity_json(&entity.ok_or(NotFound(key))?));
        }
        Command::Get { keys } => {
            // Several keys: one batch read; every key gets a line, in order, and a missing
            // one makes the exit code 1 (as one missing key does).
            let found = db.get_many(&keys).await.context("get")?;
            let mut missing = None;
            let rows: Vec<_> = keys
                .iter()
                .zip(found)
                .map(|(key, entity)| match entity {
                    Some(entity) => answer::entity_json(&entity),
                    None => {
                        missing.get_or_insert_with(|| key.clone());
                        serde_json::json!({ "key": key.to_string(), "found": false })
                    }
                })
                .collect();
            output.emit_rows(&rows);
            if let Some(key) = missing {
                return Err(NotFound(key).into());
            }
        }
        Command::Put { key, properties } => {
            let entity = Entity::from_json_object(key.clone(), &properties)
                .map_err(Error::from)
                .with_context(|| format!("put {key}"))?;
            let key = db
                .put(&entity)
                .await
                .with_context(|| format!("put {key}"))?;
            output.emit(answer::key_json(&key));
        }
        Command::Delete { keys } => {
            db.delete_many(&keys).await.context("delete")?;
            let rows: Vec<_> = keys.iter().map(answer::deleted_json).collect();
            output.emit_rows(&rows);
        }
        Command::Import { file, batch } => {
            let mut reader = ImportReader::open(&file, batch)?;
            let progress = import_progress();
            while let Some(entities) = reader.next_batch().context("import stopped")? {
                db.put_many(&entities)
                    .await
                    .with_context(|| reader.batch_failed(entities.len()))?;
                progress.inc(entities.len() as u64);
            }
            progress.finish_and_clear();
            output.emit(json!({ "imported": reader.read }));
        }
        Command::Export { kind } => {
            let mut start: Option<Vec<u8>> = None;
            loop {
                let page = db
                    .entities(start.as_deref(), kind.as_deref())
                    .await
                    .context("export")?;
                // A page with none of the kind asked for prints nothing (not an empty table).
                if !page.entities.is_empty() {
                    let rows: Vec<_> = page.entities.iter().map(answer::entity_json).collect();
                    output.emit_rows(&rows);
                }
                match page.next {
                    Some(next) => start = Some(next),
                    None => break,
                }
            }
        }
        Command::Query { .. } => {
            let mut query = command.query().context("query")?;
            loop {
                let page = db.query(&query).await.context("query")?;
                if print_query_page(output, &page, &mut query) {
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
            output.emit(answer::allocated_json(&kind, first, count));
        }
        Command::Deposit { account, amount } => {
            let balance = db
                .deposit(&account, amount)
                .await
                .with_context(|| format!("deposit {amount} to {account}"))?;
            output.emit(answer::balance_json(&account, balance));
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
            output.emit(answer::receipt_json(&receipt));
        }
        Command::Call { name, input } => {
            let result = db
                .call(&name, &input)
                .await
                .with_context(|| format!("call {name}"))?;
            output.emit(result);
        }
        Command::Completions { .. } | Command::NewModel { .. } | Command::Key { .. } => {} // answered while parsing
        Command::Check => {
            let report = db.check().await.context("check")?;
            report_check(output, &report)?;
        }
    }
    Ok(())
}

/// Prints one page of `query`'s results. Returns true when the caller should stop: the
/// query asked for one page only (a limit) or is exhausted. Otherwise `query` now asks for
/// the next page: from the page's cursor, with no offset (the cursor already lies past the
/// results the offset skipped).
fn print_query_page(output: &mut Output, page: &QueryPage, query: &mut Query) -> bool {
    let rows = answer::query_rows(page);
    if !rows.is_empty() {
        output.emit_rows(&rows);
    }
    match &page.next_cursor {
        Some(cursor) if query.limit.is_some() => {
            output.emit(json!({ "next_cursor": cursor }));
            true
        }
        Some(cursor) => {
            query.start = Some(cursor.clone());
            query.offset = 0;
            false
        }
        None => true,
    }
}

/// Prints a check report; an error if it lists problems.
fn report_check(output: &mut Output, report: &CheckReport) -> Result<(), CheckFailed> {
    output.emit(json!({
        "entities": report.entities,
        "index_rows": report.index_rows,
        "problems": report.problems,
    }));
    if report.problems.is_empty() {
        Ok(())
    } else {
        Err(CheckFailed(report.problems.len()))
    }
}
