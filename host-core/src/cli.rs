//! The command line both binaries share: arguments, output and exit codes. Each binary's
//! `main` only dispatches the parsed command to its own `Datastore`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use ds_model::query::{Filter, Order};
use ds_model::{Entity, Key, Query};
use serde_json::{Map, Value, json};

use crate::error::Error;
use crate::runtime::ComponentSource;
use crate::store::{DEFAULT_STORE_URL, StoreError};

const KEY_HELP: &str = "Entity key: [NAMESPACE@]Kind:id-or-name[/Kind:id-or-name]... \
    An all-digit id-or-name is an integer id; quote names with special characters or that \
    are all digits: Account:alice, Account:42, Account:\"42\", Account:alice/Order:7. \
    The URL-safe form of a key is accepted too";

/// Command-line arguments of `ds` and `ads`.
#[derive(Debug, Parser)]
pub struct Cli {
    /// Store URL: sqlite:PATH (the default, ./ds.db), postgres://USER@HOST/DB or memory:.
    #[arg(long, env = "DS_STORE", default_value = DEFAULT_STORE_URL, global = true)]
    pub store: String,
    /// Run another build of the model component instead of the embedded one.
    #[arg(long, value_name = "PATH", global = true)]
    pub component: Option<PathBuf>,
    /// Instances: warm (reused across calls) or per-call (a fresh instance for every call).
    #[arg(long, default_value = "warm", global = true)]
    pub isolation: crate::instances::Isolation,
    /// Longest a call may run, in milliseconds.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..), global = true)]
    pub deadline_ms: u64,
    /// Most linear memory the guest may use, in MiB.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=64), global = true)]
    pub memory_limit_mib: u64,
    /// Retries of a transaction or write that lost its commit race to another writer.
    #[arg(long, default_value_t = ds_model::transport::DEFAULT_RETRIES, global = true)]
    pub retries: u32,
    /// Show the call path (host API, guest, transport) on stderr.
    #[arg(long, global = true)]
    pub trace: bool,
    /// How results are printed: json (one JSON object per line, for programs; the default)
    /// or table (aligned columns, for people).
    #[arg(long, value_enum, default_value = "json", global = true)]
    pub output: OutputFormat,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// How results are printed (`--output`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// One JSON object per line.
    Json,
    /// Aligned columns; an entity's properties are columns of their own.
    Table,
}

static OUTPUT: std::sync::OnceLock<OutputFormat> = std::sync::OnceLock::new();

/// A datastore operation.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the entity at KEY as JSON; exit 1 if there is none.
    #[command(
        after_help = "Examples:\n  ds get Account:alice\n  ds get 'tenant-1@Account:alice/Order:7' --output table"
    )]
    Get {
        #[arg(help = KEY_HELP, value_parser = parse_key)]
        /// The key.
        key: Key,
    },
    /// Write the entity at KEY with PROPERTIES (a JSON object), replacing any entity there.
    #[command(
        after_help = "Examples:\n  ds put Account:alice '{\"owner\": \"Alice\", \"balance\": 10}'\n  ds put Note:1 '{\"at\": {\"$timestamp\": \"2024-05-01T12:00:00Z\"}, \"raw\": {\"$bytes\": \"AP8=\"}}'"
    )]
    Put {
        #[arg(help = KEY_HELP, value_parser = parse_key)]
        /// The key.
        key: Key,
        /// The properties, a JSON object in the typed mapping, e.g.
        /// '{"owner": "Alice", "balance": 10, "opened": {"$timestamp": "2024-05-01T00:00:00Z"}}'.
        #[arg(value_parser = parse_properties)]
        properties: Map<String, Value>,
    },
    /// Delete the entity at KEY (not an error if there is none).
    #[command(after_help = "Example:\n  ds delete Account:alice")]
    Delete {
        #[arg(help = KEY_HELP, value_parser = parse_key)]
        /// The key.
        key: Key,
    },
    /// Import entities from JSON lines, {"key": "Kind:name", "properties": {...}} per line
    /// (the output format of `get`), in atomic batches. A line that is not an entity stops
    /// the import with its line number, an entity the model refuses with its batch's lines;
    /// the batches before are written, nothing after.
    #[command(
        after_help = "Examples:\n  ds import entities.jsonl\n  ds export | ads --store sqlite:copy.db import -"
    )]
    Import {
        /// The file to read; `-` reads standard input.
        #[arg(default_value = "-")]
        file: PathBuf,
        /// Most entities per atomic batch (one commit each); a batch also ends once its
        /// lines hold 4 MiB, so that it fits the component's memory.
        #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=10_000))]
        batch: u32,
    },
    /// Export entities as JSON lines in key order, in the format `import` reads: all of
    /// them, or only those whose own kind is KIND.
    #[command(
        after_help = "Examples:\n  ds export > all.jsonl\n  ds export Account --output table"
    )]
    Export {
        /// Only entities of this kind.
        kind: Option<String>,
    },
    /// Serve the datastore API as JSON over HTTP (ads only): entities by key, batch get,
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
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell) to stdout.
    #[command(
        after_help = "Example:\n  ds completions bash > ~/.local/share/bash-completion/completions/ds"
    )]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Check the store: every entity must be readable and have exactly its index rows, and
    /// every index row must belong to its entity. Prints a report; exits 6 on problems.
    #[command(after_help = "Example:\n  ds check")]
    Check,
    /// Query entities of KIND, served from indexes: one JSON object per result per line,
    /// then {"next_cursor": "..."} when --limit cut the results short. Without --limit,
    /// every result is printed.
    #[command(after_help = "Examples:\n  \
        ds query Account --filter 'owner = \"Alice\"' --order -balance\n  \
        ds query Account --filter 'balance >= 100' --limit 10\n  \
        ds query Account --limit 10 --cursor <next_cursor of the previous page>\n  \
        ds query Transfer --ancestor Account:alice --keys-only")]
    Query {
        /// The kind.
        kind: String,
        /// Only descendants of this key (and the key itself).
        #[arg(long, value_parser = parse_key)]
        ancestor: Option<Key>,
        /// A filter 'PROPERTY OP VALUE': OP is = < <= > >= or IN, VALUE typed JSON
        /// ('balance >= 100', 'owner = "Alice"', 'tags IN ["a","b"]'). Repeatable.
        #[arg(long = "filter", value_parser = parse_filter)]
        filters: Vec<Filter>,
        /// A sort order: PROPERTY or -PROPERTY (descending). Repeatable.
        #[arg(long = "order", value_parser = parse_order, allow_hyphen_values = true)]
        orders: Vec<Order>,
        /// At most this many results (one page; its cursor is printed).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1000))]
        limit: Option<u32>,
        /// Skip this many results first.
        #[arg(long, default_value_t = 0)]
        offset: u32,
        /// Resume after this cursor (the next_cursor of a previous page).
        #[arg(long)]
        cursor: Option<String>,
        /// Stop after this cursor.
        #[arg(long)]
        end_cursor: Option<String>,
        /// Print keys only.
        #[arg(long)]
        keys_only: bool,
        /// The namespace.
        #[arg(long, default_value = "")]
        namespace: String,
    },
    /// Reserve COUNT consecutive ids of KIND, never issued again; prints the first and last.
    #[command(after_help = "Example:\n  ds allocate-ids Order 10")]
    AllocateIds {
        /// The kind.
        kind: String,
        /// How many ids.
        #[arg(value_parser = clap::value_parser!(u64).range(1..=ds_model::model::MAX_ALLOCATE))]
        count: u64,
        /// The namespace.
        #[arg(long, default_value = "")]
        namespace: String,
    },
    /// Run an application operation of the component by NAME with INPUT (JSON), and print
    /// its output (JSON): how operations added to the guest are called without rebuilding
    /// the hosts. `ds call deposit '{"account": "Account:alice", "amount": 5}'`.
    #[command(
        after_help = "Examples:\n  ds call deposit '{\"account\": \"Account:alice\", \"amount\": 5}'\n  ds --component my_guest.wasm call reserve '{\"stock\": \"Stock:widget\", \"quantity\": 3}'"
    )]
    Call {
        /// The operation's name.
        name: String,
        /// Its input, a JSON value.
        #[arg(default_value = "{}", value_parser = parse_json)]
        input: Value,
    },
    /// The example application: add AMOUNT (negative: withdraw) to the balance of an
    /// Account, in a transaction. Exits 7 if the balance would go negative.
    #[command(
        after_help = "Examples:\n  ds deposit Account:alice 100\n  ds deposit Account:alice -20"
    )]
    Deposit {
        /// The account's key, e.g. Account:alice.
        #[arg(value_parser = parse_key)]
        account: Key,
        /// The amount.
        #[arg(allow_hyphen_values = true)]
        amount: i64,
    },
    /// The example application: move AMOUNT from one Account to another in one transaction
    /// and record it as a Transfer under the source. Exits 7 on insufficient funds.
    #[command(after_help = "Example:\n  ds transfer Account:alice Account:bob 30")]
    Transfer {
        /// The source account's key.
        #[arg(value_parser = parse_key)]
        source: Key,
        /// The destination account's key.
        #[arg(value_parser = parse_key)]
        destination: Key,
        /// The amount (positive; a negative one is refused by the model, exit 7).
        #[arg(allow_hyphen_values = true)]
        amount: i64,
    },
}

impl Cli {
    /// Parses the process arguments for the binary `name`; on bad usage prints help and
    /// exits with code 2.
    /// `completions` is answered here, before any store is opened.
    pub fn parse_for(name: &'static str, about: &'static str) -> Cli {
        let command = || Cli::command().name(name).bin_name(name).about(about);
        let matches = command().get_matches();
        let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|err| err.exit());
        if let Command::Completions { shell } = cli.command {
            clap_complete::generate(shell, &mut command(), name, &mut std::io::stdout());
            std::process::exit(0);
        }
        let _ = OUTPUT.set(cli.output);
        cli
    }

    /// The instance settings the options ask for.
    pub fn instance_options(&self) -> crate::instances::InstanceOptions {
        crate::instances::InstanceOptions {
            isolation: self.isolation,
            deadline: std::time::Duration::from_millis(self.deadline_ms),
            memory_limit_bytes: (self.memory_limit_mib as usize) << 20,
            ..Default::default()
        }
    }

    /// The component to run: `--component PATH`, or the embedded one.
    pub fn component_source(&self) -> ComponentSource {
        self.component
            .clone()
            .map(ComponentSource::File)
            .unwrap_or_default()
    }
}

/// Parses a key as the command line and the HTTP API take it: the human syntax, or the
/// URL-safe form.
pub fn parse_key(text: &str) -> Result<Key, String> {
    Key::parse_any(text).map_err(|err| err.to_string())
}

/// Refuses integer literals that have no int64 form in JSON text a user gave: the check
/// every command and HTTP body applies after parsing.
pub use ds_model::json::check_integer_literals;

fn parse_json(text: &str) -> Result<Value, String> {
    let value = serde_json::from_str(text).map_err(|err| format!("invalid JSON: {err}"))?;
    check_integer_literals(text)?;
    Ok(value)
}

fn parse_filter(text: &str) -> Result<Filter, String> {
    Filter::parse(text).map_err(|err| err.to_string())
}

fn parse_order(text: &str) -> Result<Order, String> {
    Order::parse(text).map_err(|err| err.to_string())
}

impl Command {
    /// The query a `query` command asks for; `None` for other commands.
    pub fn query(&self) -> Option<Query> {
        let Command::Query {
            kind,
            ancestor,
            filters,
            orders,
            limit,
            offset,
            cursor,
            end_cursor,
            keys_only,
            namespace,
        } = self
        else {
            return None;
        };
        Some(Query {
            namespace: namespace.clone(),
            kind: Some(kind.clone()),
            ancestor: ancestor.clone(),
            filters: filters.clone(),
            orders: orders.clone(),
            limit: *limit,
            offset: *offset,
            keys_only: *keys_only,
            start: cursor.clone(),
            end: end_cursor.clone(),
        })
    }
}

/// Prints one result in the `--output` format, now: in a table, after the rows held back
/// and as a table of its own (a query's cursor is not a row of its results).
pub fn emit(row: Value) {
    flush_table();
    emit_rows(std::slice::from_ref(&row));
    flush_table();
}

/// Rows of `--output table` not printed yet. Pages of one command (`export`, an unlimited
/// `query`) make one table with one header: rows are printed together, [`TABLE_ROWS`] at a
/// time and the rest by [`finish`].
static TABLE: std::sync::Mutex<Vec<Value>> = std::sync::Mutex::new(Vec::new());

/// Most rows held back for one table.
const TABLE_ROWS: usize = 1000;

/// Prints results in the `--output` format: one JSON object per line, or table rows.
pub fn emit_rows(rows: &[Value]) {
    match OUTPUT.get().copied().unwrap_or(OutputFormat::Json) {
        OutputFormat::Json => write_stdout(
            &rows
                .iter()
                .map(|row| format!("{row}\n"))
                .collect::<String>(),
        ),
        OutputFormat::Table => {
            let mut pending = TABLE.lock().unwrap_or_else(|p| p.into_inner());
            pending.extend_from_slice(rows);
            if pending.len() >= TABLE_ROWS {
                let text = table(&pending);
                pending.clear();
                drop(pending);
                write_stdout(&text);
            }
        }
    }
}

/// Prints the table rows held back, if any, as one table.
fn flush_table() {
    let pending = std::mem::take(&mut *TABLE.lock().unwrap_or_else(|p| p.into_inner()));
    if !pending.is_empty() {
        write_stdout(&table(&pending));
    }
}

/// Prints any table rows still held back, then ends the command: exit code 0, or the
/// error's message and code ([`fail`]). What both binaries' `main` returns.
pub fn finish(result: anyhow::Result<()>) -> ExitCode {
    flush_table();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => fail(&err),
    }
}

/// Writes to standard output. When the reader has gone (`ds export | head -1`) the process
/// ends quietly with success, as a Unix tool does, rather than panicking; any other write
/// error ends it with exit code 5.
fn write_stdout(text: &str) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    if let Err(err) = out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        if err.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: cannot write the output: {err}");
        std::process::exit(5);
    }
}

/// Renders rows as aligned columns: one column per field, in order of first appearance;
/// the members of a `properties` object become columns of their own. Strings print bare,
/// other values as compact JSON.
pub fn table(rows: &[Value]) -> String {
    // A property named like a field of the row (`key`) gets a column of its own.
    let fields: std::collections::BTreeSet<&str> = rows
        .iter()
        .filter_map(Value::as_object)
        .flat_map(|fields| fields.keys().map(String::as_str))
        .filter(|name| *name != "properties")
        .collect();
    let flat: Vec<Vec<(String, String)>> = rows
        .iter()
        .map(|row| {
            let mut cells = Vec::new();
            if let Value::Object(fields_of_row) = row {
                for (name, value) in fields_of_row {
                    match (name.as_str(), value) {
                        ("properties", Value::Object(properties)) => {
                            for (property, value) in properties {
                                let column = if fields.contains(property.as_str()) {
                                    format!("properties.{property}")
                                } else {
                                    property.clone()
                                };
                                cells.push((column, cell(value)));
                            }
                        }
                        _ => cells.push((name.clone(), cell(value))),
                    }
                }
            } else {
                cells.push(("value".into(), cell(row)));
            }
            cells
        })
        .collect();
    let mut columns: Vec<String> = Vec::new();
    // The key first, wherever it sorts.
    for cells in &flat {
        for (name, _) in cells {
            if !columns.contains(name) {
                columns.push(name.clone());
            }
        }
    }
    if let Some(at) = columns.iter().position(|c| c == "key") {
        let key = columns.remove(at);
        columns.insert(0, key);
    }
    let grid: Vec<Vec<String>> = flat
        .iter()
        .map(|cells| {
            columns
                .iter()
                .map(|c| {
                    cells
                        .iter()
                        .find(|(name, _)| name == c)
                        .map(|(_, v)| v.clone())
                        .unwrap_or_default()
                })
                .collect()
        })
        .collect();
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            grid.iter()
                .map(|row| row[i].chars().count())
                .chain([c.chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: &[String]| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        format!("{}\n", padded.join("  ").trim_end())
    };
    let mut out = line(&columns);
    for row in &grid {
        out.push_str(&line(row));
    }
    out
}

fn cell(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Prints entities (a page of `export`), in the `--output` format.
pub fn print_entities(entities: &[Entity]) {
    // A page with none of the kind asked for prints nothing (not an empty table).
    if !entities.is_empty() {
        emit_rows(&entities.iter().map(entity_json).collect::<Vec<_>>());
    }
}

/// An entity from the CLI's key and typed-JSON properties.
pub fn entity_from_cli(key: Key, properties: &Map<String, Value>) -> Result<Entity, Error> {
    Entity::from_json_object(key, properties).map_err(Error::from)
}

/// Prints one page of `query`'s results, one JSON object per line. Returns true when the
/// caller should stop: the query asked for one page only (a limit) or is exhausted.
/// Otherwise `query` now asks for the next page: from the page's cursor, with no offset
/// (the cursor already lies past the results the offset skipped).
pub fn print_query_page(page: &crate::QueryPage, query: &mut crate::Query) -> bool {
    let rows = query_rows(page);
    if !rows.is_empty() {
        emit_rows(&rows);
    }
    match &page.next_cursor {
        Some(cursor) if query.limit.is_some() => {
            emit(json!({ "next_cursor": cursor }));
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

/// Prints the ids `allocate-ids` reserved.
pub fn print_allocated(kind: &str, first: u64, count: u64) {
    emit(allocated_json(kind, first, count));
}

/// Prints the balance after a deposit.
pub fn print_balance(account: &Key, balance: i64) {
    emit(balance_json(account, balance));
}

/// Prints a transfer's receipt.
pub fn print_receipt(receipt: &crate::Receipt) {
    emit(receipt_json(receipt));
}

// The JSON shapes of results, shared by the command line and `ads serve`.

/// `{"key"}`: what a put wrote.
pub fn key_json(key: &Key) -> Value {
    json!({ "key": key.to_string() })
}

/// `{"key", "deleted": true}`: what a delete removed.
pub fn deleted_json(key: &Key) -> Value {
    json!({ "key": key.to_string(), "deleted": true })
}

/// `{"kind", "first", "last"}`: the ids `allocate-ids` reserved (`count` ≥ 1).
pub fn allocated_json(kind: &str, first: u64, count: u64) -> Value {
    json!({ "kind": kind, "first": first, "last": first + (count - 1) })
}

/// `{"account", "balance"}`: the balance after a deposit.
pub fn balance_json(account: &Key, balance: i64) -> Value {
    json!({ "account": account.to_string(), "balance": balance })
}

/// `{"transfer", "source_balance", "destination_balance"}`: a transfer's receipt.
pub fn receipt_json(receipt: &crate::Receipt) -> Value {
    json!({
        "transfer": receipt.transfer.to_string(),
        "source_balance": receipt.source_balance,
        "destination_balance": receipt.destination_balance,
    })
}

/// The results of a query page: entities, or `{"key"}` objects when keys-only.
pub fn query_rows(page: &crate::QueryPage) -> Vec<Value> {
    if page.entities.is_empty() {
        page.keys.iter().map(key_json).collect()
    } else {
        page.entities.iter().map(entity_json).collect()
    }
}

fn parse_properties(text: &str) -> Result<Map<String, Value>, String> {
    match parse_json(text)? {
        Value::Object(map) => Ok(map),
        _ => Err("properties must be a JSON object, e.g. '{\"name\": \"Alice\"}'".into()),
    }
}

/// A command this binary does not run, or arguments that do not fit together.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// `get` found nothing at the key.
#[derive(Debug, thiserror::Error)]
#[error("no entity at key {0}")]
pub struct NotFound(pub Key);

/// An entity as one JSON object: `{"key": "...", "properties": {...}}` (typed JSON).
pub fn entity_json(entity: &Entity) -> Value {
    json!({ "key": entity.key.to_string(), "properties": entity.to_json_object() })
}

/// Prints an entity as one JSON object: `{"key": "...", "properties": {...}}`.
pub fn print_entity(entity: &Entity) {
    emit(entity_json(entity));
}

/// Prints the key a `put` wrote.
pub fn print_put(key: &Key) {
    emit(key_json(key));
}

/// Prints the key a `delete` removed.
pub fn print_deleted(key: &Key) {
    emit(deleted_json(key));
}

/// Exit codes, documented in README: 0 ok, 1 not found, 2 bad usage or input, 3 conflict,
/// 4 store unavailable, 5 any other failure, 6 `check` found problems, 7 refused by a
/// business rule.
pub fn exit_code(err: &anyhow::Error) -> ExitCode {
    for cause in err.chain() {
        if cause.is::<NotFound>() {
            return ExitCode::from(1);
        }
        if cause.is::<ImportError>() || cause.is::<UsageError>() {
            return ExitCode::from(2);
        }
        if cause.is::<CheckFailed>() {
            return ExitCode::from(6);
        }
        if let Some(err) = cause.downcast_ref::<Error>() {
            return ExitCode::from(match err {
                Error::NotFound(_) => 1,
                Error::InvalidKey(_)
                | Error::InvalidEntity(_)
                | Error::InvalidQuery(_)
                | Error::InvalidArgument(_)
                | Error::StoreUrl(_)
                | Error::Store(StoreError::InvalidRequest(_)) => 2,
                Error::Store(StoreError::Conflict(_)) | Error::Conflict(_) => 3,
                Error::FailedPrecondition(_) => 7,
                Error::Store(StoreError::Unavailable(_)) => 4,
                _ => 5,
            });
        }
        if let Some(err) = cause.downcast_ref::<StoreError>() {
            return ExitCode::from(match err {
                StoreError::Conflict(_) => 3,
                StoreError::Unavailable(_) => 4,
                StoreError::InvalidRequest(_) => 2,
                StoreError::Internal(_) => 5,
            });
        }
    }
    ExitCode::from(5)
}

/// Reports a failed command on stderr and returns its exit code.
pub fn fail(err: &anyhow::Error) -> ExitCode {
    eprintln!("error: {err:#}");
    exit_code(err)
}

/// Bytes of import lines past which a batch ends early. One `put_many` holds its batch in
/// the component's memory several times over (the JSON text, the parsed properties, the
/// encoded rows): 500 entities of up to 1 MiB each would not fit in one instance's 64 MiB.
pub const IMPORT_BATCH_BYTES: usize = 4 << 20;

/// Reads an import file as batches of entities.
pub struct ImportReader {
    lines: std::io::Lines<Box<dyn std::io::BufRead + Send>>,
    line: u64,
    batch: usize,
    /// The first and last line of the last batch read.
    batch_lines: (u64, u64),
    /// Entities read so far.
    pub read: u64,
}

/// A line of an import file that is not an entity, and how far the import got: the batches
/// before were written (when the caller writes each batch before reading the next), the
/// batch this line was in was not.
#[derive(Debug, thiserror::Error)]
#[error(
    "line {line}: {reason} (written: the {written} entities before line {resume_line}; \
     nothing from line {resume_line} on)"
)]
pub struct ImportError {
    /// The 1-based line number.
    pub line: u64,
    /// What is wrong with it.
    pub reason: String,
    /// Entities in the batches before this line's batch.
    pub written: u64,
    /// The first line of this line's batch: where a corrected import resumes.
    pub resume_line: u64,
}

impl ImportReader {
    /// Opens `file` (`-`: standard input) to read batches of `batch` entities.
    pub fn open(file: &std::path::Path, batch: u32) -> anyhow::Result<ImportReader> {
        use anyhow::Context as _;
        let reader: Box<dyn std::io::BufRead + Send> = if file.as_os_str() == "-" {
            Box::new(std::io::BufReader::new(std::io::stdin()))
        } else {
            let opened = std::fs::File::open(file)
                .with_context(|| format!("cannot open {}", file.display()))?;
            Box::new(std::io::BufReader::new(opened))
        };
        Ok(ImportReader {
            lines: std::io::BufRead::lines(reader),
            line: 0,
            batch: batch as usize,
            batch_lines: (0, 0),
            read: 0,
        })
    }

    /// The next batch: `batch` entities, or fewer once their lines hold
    /// [`IMPORT_BATCH_BYTES`]; `None` at the end of the input. Blank lines are skipped.
    pub fn next_batch(&mut self) -> Result<Option<Vec<Entity>>, ImportError> {
        let mut batch = Vec::with_capacity(self.batch.min(64));
        let mut bytes = 0;
        // The first line after the batches already handed out.
        let resume_line = self.line + 1;
        let written = self.read;
        let error = |line: u64, reason: String| ImportError {
            line,
            reason,
            written,
            resume_line,
        };
        while batch.len() < self.batch && bytes < IMPORT_BATCH_BYTES {
            let Some(line) = self.lines.next() else { break };
            self.line += 1;
            let line = line.map_err(|err| error(self.line, format!("cannot read: {err}")))?;
            if line.trim().is_empty() {
                continue;
            }
            bytes += line.len();
            if batch.is_empty() {
                self.batch_lines.0 = self.line;
            }
            self.batch_lines.1 = self.line;
            batch.push(parse_import_line(&line).map_err(|reason| error(self.line, reason))?);
        }
        self.read += batch.len() as u64;
        Ok((!batch.is_empty()).then_some(batch))
    }

    /// What to say when the last batch read (`entities` long) could not be written: where
    /// the import stopped, and the lines of the batch, none of which was written (the model
    /// checks a whole batch before it writes any of it).
    pub fn batch_failed(&self, entities: usize) -> String {
        let (first, last) = self.batch_lines;
        format!(
            "import stopped after {} entities; the batch of lines {first}-{last} was not written",
            self.read - entities as u64
        )
    }
}

fn parse_import_line(line: &str) -> Result<Entity, String> {
    let value = parse_json(line)?;
    let Value::Object(mut object) = value else {
        return Err("expected an object {\"key\": ..., \"properties\": {...}}".into());
    };
    let key = match object.remove("key") {
        Some(Value::String(text)) => parse_key(&text)?,
        _ => return Err("\"key\" must be a key string, e.g. \"Account:alice\"".into()),
    };
    let properties = match object.remove("properties") {
        Some(Value::Object(map)) => map,
        None => Map::new(),
        Some(_) => return Err("\"properties\" must be a JSON object".into()),
    };
    if let Some(extra) = object.keys().next() {
        return Err(format!(
            "unexpected field {extra:?}: a line holds \"key\" and \"properties\""
        ));
    }
    Entity::from_json_object(key, &properties).map_err(|err| err.to_string())
}

/// A progress bar on stderr when it is a terminal; nothing otherwise.
pub fn import_progress() -> indicatif::ProgressBar {
    if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} {human_pos} entities imported ({per_sec}) {elapsed}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
    );
    bar
}

/// Prints the result of an import.
pub fn print_imported(count: u64) {
    emit(json!({ "imported": count }));
}

/// `check` found problems in the store.
#[derive(Debug, thiserror::Error)]
#[error("check found {0} problem(s) in the store")]
pub struct CheckFailed(pub usize);

/// Prints a check report; an error if it lists problems.
pub fn report_check(report: &ds_model::CheckReport) -> Result<(), CheckFailed> {
    emit(json!({
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_readme() {
        let code = |err: anyhow::Error| exit_code(&err.context("a command"));
        let store = |err: StoreError| code(anyhow::Error::new(Error::Store(err)));
        assert_eq!(store(StoreError::Conflict(vec![1])), ExitCode::from(3));
        assert_eq!(
            store(StoreError::Unavailable("down".into())),
            ExitCode::from(4)
        );
        assert_eq!(
            store(StoreError::InvalidRequest("key too long".into())),
            ExitCode::from(2),
            "a request past a store's limits is bad input"
        );
        assert_eq!(
            store(StoreError::Internal("unknown".into())),
            ExitCode::from(5)
        );
        let bare = |err: StoreError| code(anyhow::Error::new(err));
        assert_eq!(
            bare(StoreError::InvalidRequest("x".into())),
            ExitCode::from(2)
        );
        assert_eq!(bare(StoreError::Internal("x".into())), ExitCode::from(5));
        assert_eq!(
            code(anyhow::Error::new(Error::NotFound("Note:a".into()))),
            ExitCode::from(1)
        );
    }
}
