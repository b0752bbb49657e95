//! The one dispatch of a parsed command over a datastore, for both binaries: written once
//! as `async` code over [`Face`], which `ds::Datastore` (its futures ready when made, so the
//! blocking binary runs the dispatch with one poll) and `ads::Datastore` (awaited) implement.

use anyhow::Context as _;
use ds::{CheckReport, Condition, Entity, Error, Query, QueryPage};
use host_core::answer;
use host_core::face::{self, Face};
use serde_json::json;

use crate::args::Command;
use crate::exit::{CheckFailed, ExportIncomplete, NotFound};
use crate::import::{ImportReader, import_progress};
use crate::output::Output;

/// What a command runs on, as the user named it: for `info`.
#[derive(Debug, Clone, Copy)]
pub struct Invocation<'a> {
    /// The store URL as given.
    pub store: &'a str,
    /// The component: `--component`'s path, or `None` for the embedded example.
    pub component: Option<&'a std::path::Path>,
    /// The binary's name (`ds` or `ads`), for the shell's prompt.
    pub binary: &'static str,
}

/// Runs `command` on `db`, printing its results to `output`.
pub async fn run(
    db: &impl Face,
    command: Command,
    output: &mut Output,
    invocation: Invocation<'_>,
) -> anyhow::Result<()> {
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
            // A kind alone as the last element gets a new id, which the answer shows.
            let written = face::put_completing(db, vec![entity])
                .await
                .with_context(|| format!("put {key}"))?;
            for key in &written {
                output.emit(answer::key_json(key));
            }
        }
        Command::Delete { keys } => {
            let deletes: Vec<_> = keys.iter().map(|k| (k.clone(), Condition::Any)).collect();
            let existed = db.delete_if(&deletes).await.context("delete")?;
            let rows: Vec<_> = keys
                .iter()
                .zip(existed)
                .map(|(key, existed)| answer::deleted_json(key, existed))
                .collect();
            output.emit_rows(&rows);
        }
        Command::Count { selection, limit } => {
            let query = selection.query(limit);
            let count = db.count(&query).await.context("count")?;
            output.emit(json!({ "count": count }));
            if count == 0 {
                hint_unknown_kind(db, &query).await;
            }
        }
        Command::DeleteQuery {
            selection,
            limit,
            dry_run,
        } => {
            let query = selection.query(limit);
            let done = face::delete_by_query(db, &query, dry_run)
                .await
                .context("delete-query")?;
            output.emit(answer::deleted_by_query_json(&done, dry_run));
        }
        Command::Schema => {
            output.emit(db.schema().await.context("schema")?);
        }
        Command::Indexes => {
            let schema = db.schema().await.context("indexes")?;
            let rows = answer::index_rows(&schema);
            if !rows.is_empty() {
                output.emit_rows(&rows);
            }
        }
        Command::Info => {
            let schema = db.schema().await.context("info")?;
            output.emit(info_json(invocation, &schema));
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
        Command::Export {
            kind,
            namespace,
            skip_corrupt,
        } => {
            let mut start: Option<Vec<u8>> = None;
            let mut skipped = 0;
            loop {
                let page = if skip_corrupt {
                    let page = db
                        .salvage(start.as_deref(), kind.as_deref())
                        .await
                        .context("export")?;
                    for row in &page.skipped {
                        eprintln!("skipped: {row}");
                    }
                    skipped += page.skipped.len();
                    ds::EntityPage {
                        entities: page.entities,
                        next: page.next,
                    }
                } else {
                    db.entities(start.as_deref(), kind.as_deref())
                        .await
                        .context("export")?
                };
                // Keys sort by namespace first: past the one asked for, nothing follows.
                let past = namespace.as_deref().is_some_and(|ns| {
                    page.entities
                        .last()
                        .is_some_and(|e| e.key.namespace.as_str() > ns)
                });
                let rows: Vec<_> = page
                    .entities
                    .iter()
                    .filter(|e| namespace.as_deref().is_none_or(|ns| e.key.namespace == ns))
                    .map(answer::entity_json)
                    .collect();
                // A page with none of the entities asked for prints nothing (not an empty
                // table).
                if !rows.is_empty() {
                    output.emit_rows(&rows);
                }
                match page.next {
                    Some(next) if !past => start = Some(next),
                    _ => break,
                }
            }
            if skipped > 0 {
                return Err(ExportIncomplete(skipped).into());
            }
        }
        Command::Query { .. } => {
            let mut query = command.query().context("query")?;
            let mut printed = 0;
            loop {
                let page = db.query(&query).await.context("query")?;
                printed += page.keys.len();
                if print_query_page(output, &page, &mut query) {
                    break;
                }
            }
            if printed == 0 && query.start.is_none() {
                hint_unknown_kind(db, &query).await;
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
        Command::Key { key } => {
            // Answered while parsing, before a store opens; here for the shell.
            output.emit(json!({ "key": key.to_string(), "urlsafe": key.to_urlsafe() }));
        }
        Command::Shell => {
            crate::shell::run(db, output, invocation, invocation.binary).await?;
        }
        Command::Completions { .. } | Command::NewModel { .. } => {} // answered while parsing
        Command::Check { repair: false, .. } => {
            let report = db.check().await.context("check")?;
            report_check(output, &report)?;
        }
        Command::Check {
            repair: true,
            apply,
        } => {
            let repaired = db.repair(apply).await.context("check --repair")?;
            let mut answer = json!({
                "entities": repaired.check.entities,
                "index_rows": repaired.check.index_rows,
                "problems": repaired.check.problems,
                "repair": {
                    "applied": apply,
                    "index_rows_written": repaired.written,
                    "index_rows_deleted": repaired.deleted,
                },
            });
            if !apply {
                output.emit(answer);
                if !repaired.check.problems.is_empty() {
                    return Err(CheckFailed(repaired.check.problems.len()).into());
                }
                return Ok(());
            }
            // What no repair could fix (an entity that does not decode), or what changed
            // meanwhile: the check after says.
            let after = db.check().await.context("check after the repair")?;
            answer["remaining_problems"] = json!(after.problems);
            output.emit(answer);
            if !after.problems.is_empty() {
                return Err(CheckFailed(after.problems.len()).into());
            }
        }
    }
    Ok(())
}

/// After an empty answer: a note on stderr when no entity of the query's kind exists in its
/// namespace and the component does not declare it, naming the kinds that do exist. A
/// misspelled kind is otherwise indistinguishable from an empty one. Best effort: a failure
/// to list the kinds prints nothing.
async fn hint_unknown_kind(db: &impl Face, query: &Query) {
    let Some(kind) = query.kind.as_deref() else {
        return;
    };
    if ds_model::query::is_metadata_kind(kind) {
        return;
    }
    if let Ok(schema) = db.schema().await
        && answer::declared_kinds(&schema).iter().any(|k| k == kind)
    {
        return;
    }
    let kinds_query = Query {
        namespace: query.namespace.clone(),
        kind: Some(ds_model::query::KIND_KIND.into()),
        keys_only: true,
        ..Query::default()
    };
    let Ok(page) = db.query(&kinds_query).await else {
        return;
    };
    let kinds: Vec<String> = page
        .keys
        .iter()
        .filter_map(|key| match &key.path.first()?.id {
            ds::IdOrName::Name(name) => Some(name.clone()),
            ds::IdOrName::Id(_) => None,
        })
        .collect();
    if kinds.iter().any(|k| k == kind) {
        return;
    }
    let namespace = if query.namespace.is_empty() {
        "the default namespace".to_string()
    } else {
        format!("namespace {:?}", query.namespace)
    };
    let existing = if kinds.is_empty() {
        "none".to_string()
    } else {
        kinds.join(", ")
    };
    eprintln!("note: no entity of kind {kind} exists in {namespace} (kinds there: {existing})");
}

/// `info`'s answer: this build, its contract, the component and the store.
fn info_json(invocation: Invocation<'_>, schema: &serde_json::Value) -> serde_json::Value {
    let component = match invocation.component {
        Some(path) => path.display().to_string(),
        None => "embedded example (ds-guest)".to_string(),
    };
    let (backend, format) = store_format(invocation.store);
    json!({
        "ds": env!("CARGO_PKG_VERSION"),
        "contract": ds::CONTRACT,
        "component": component,
        "declared_kinds": answer::declared_kinds(schema),
        "store": ds::store::redact(invocation.store),
        "store_backend": backend,
        "store_format": format,
    })
}

/// The backend of a store URL, and the format of a store of it that opened: formats older
/// than this build's do not exist yet, and a newer one is refused when the store opens, so
/// a store that opened is at this build's format. `None` for the memory store.
fn store_format(url: &str) -> (&'static str, Option<i64>) {
    use ds::store::StoreUrl;
    match url.parse::<StoreUrl>() {
        Ok(StoreUrl::Memory) => ("memory", None),
        Ok(StoreUrl::Sqlite(_)) => ("sqlite", Some(ds::store::SQLITE_FORMAT_VERSION)),
        Ok(StoreUrl::Postgres(_)) => ("postgres", Some(ds::store::postgres::FORMAT_VERSION)),
        #[cfg(feature = "etcd")]
        Ok(StoreUrl::Etcd(_)) => ("etcd", Some(ds::store::etcd::FORMAT_VERSION as i64)),
        // A backend another crate's feature adds to the store URLs, which this build does
        // not name (etcd, when ds-cli is built without it).
        #[allow(unreachable_patterns)]
        Ok(_) | Err(_) => ("unknown", None),
    }
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
