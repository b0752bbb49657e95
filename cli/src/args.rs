//! The command line's arguments: the global options, the commands both binaries take, and
//! the parsers of keys, JSON, filters and orders.

use std::path::PathBuf;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use ds::store::DEFAULT_STORE_URL;
use ds::{ComponentSource, Filter, InstanceOptions, Isolation, Key, Order, Query};
use serde_json::{Map, Value};

use crate::output::{Output, OutputFormat};
use crate::scaffold::{SdkSource, new_model};

const KEY_HELP: &str = "Entity key: [NAMESPACE@]Kind:id-or-name[/Kind:id-or-name]... \
    An all-digit id-or-name is an integer id; quote names with special characters or that \
    are all digits: Account:alice, Account:42, Account:\"42\", Account:alice/Order:7. \
    The URL-safe form of a key is accepted too";

/// Command-line arguments of `ds` and `ads`: the global options and a command of the set
/// `C` (`ds` runs [`Command`]; `ads` adds `serve` to it).
#[derive(Debug, Parser)]
pub struct Cli<C: Subcommand> {
    /// Store URL: sqlite:PATH (the default, ./ds.db), postgres://USER@HOST/DB, memory:, or
    /// etcd://HOST:PORT[,HOST:PORT…]/PREFIX in builds with the etcd feature.
    #[arg(long, env = "DS_STORE", default_value = DEFAULT_STORE_URL, global = true)]
    pub store: String,
    /// Run another build of the model component instead of the embedded one.
    #[arg(long, value_name = "PATH", global = true)]
    pub component: Option<PathBuf>,
    /// Instances: warm (reused across calls) or per-call (a fresh instance for every call).
    #[arg(long, default_value = "warm", global = true)]
    pub isolation: Isolation,
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
    /// How results are printed: json (one JSON object per line, for programs; the default),
    /// table (aligned columns, for people) or pretty (indented JSON).
    #[arg(long, value_enum, default_value = "json", global = true)]
    pub output: OutputFormat,
    /// Indented JSON: the same as --output pretty.
    #[arg(long, global = true)]
    pub pretty: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: C,
}

/// A datastore operation.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the entity at KEY as JSON; exit 1 if there is none.
    #[command(
        after_help = "Examples:\n  ds get Account:alice\n  ds get 'tenant-1@Account:alice/Order:7' --output table\n  ds get Account:alice Account:bob"
    )]
    Get {
        #[arg(help = KEY_HELP, value_parser = parse_key, required = true, num_args = 1..=1000)]
        /// The keys (one or more; several are read in one batch).
        keys: Vec<Key>,
    },
    /// Write the entity at KEY with PROPERTIES (a JSON object), replacing any entity there.
    #[command(
        after_help = "Examples:\n  ds put Account:alice '{\"owner\": \"Alice\", \"balance\": 10}'\n  ds put Note:1 '{\"at\": {\"$timestamp\": \"2024-05-01T12:00:00Z\"}, \"raw\": {\"$bytes\": \"AP8=\"}}'\n  ds put Note:2 @note.json\n  ds put Note '{\"text\": \"a new id\"}'\n  curl -s https://example.invalid/note.json | ds put Note:3 -"
    )]
    Put {
        /// The key; or, to allocate a new id for it, the kind alone as its last element
        /// (`Note`, `Account:alice/Order`), printed back with the id.
        #[arg(value_parser = parse_key_allowing_incomplete)]
        key: Key,
        /// The properties, a JSON object in the typed mapping, e.g.
        /// '{"owner": "Alice", "balance": 10, "opened": {"$timestamp": "2024-05-01T00:00:00Z"}}';
        /// `-` reads it from standard input, `@FILE` from a file.
        #[arg(value_parser = parse_properties_arg)]
        properties: Map<String, Value>,
    },
    /// Delete the entities at KEYS in one atomic commit (not an error if there is none);
    /// prints, per key, whether an entity was there ("deleted": true or false).
    #[command(
        after_help = "Examples:\n  ds delete Account:alice\n  ds delete Note:1 Note:2 Note:3"
    )]
    Delete {
        #[arg(help = KEY_HELP, value_parser = parse_key, required = true, num_args = 1..=1000)]
        /// The keys (one or more).
        keys: Vec<Key>,
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
        #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=1_000))]
        batch: u32,
    },
    /// Export entities as JSON lines in key order, in the format `import` reads: all of
    /// them, or only those whose own kind is KIND.
    #[command(
        after_help = "Examples:\n  ds export > all.jsonl\n  ds export Account --output table\n  ds export --namespace tenant-1 > tenant-1.jsonl"
    )]
    Export {
        /// Only entities of this kind.
        kind: Option<String>,
        /// Only entities of this namespace (`""`: the default one).
        #[arg(long)]
        namespace: Option<String>,
        /// Skip entity rows that do not decode, naming each on stderr, instead of stopping
        /// at the first; exit 6 at the end if any was skipped.
        #[arg(long)]
        skip_corrupt: bool,
    },
    /// Print a key in both forms: as written (`Kind:id`) and URL-safe (for URLs, and for
    /// keys whose names hold characters a shell cannot pass, such as NUL). Either form is
    /// accepted, wherever a key is. Opens no store.
    #[command(
        after_help = "Examples:\n  ds key 'Account:alice/Order:7'\n  ds key EAABQWNjb3VudAABAmFsaWNlAAE"
    )]
    Key {
        /// The key, in either form.
        #[arg(value_parser = parse_key, help = KEY_HELP)]
        key: Key,
    },
    /// An interactive shell: the commands above, one per line, on the datastore opened
    /// once, with history (~/.ds_history, or $DS_HISTORY) and completion of command names.
    /// `exit` or Ctrl-D leaves it.
    #[command(
        after_help = "Example:\n  ds --store sqlite:app.db shell\n  ds> put Note:1 '{\"n\": 1}'\n  ds> query Note --output table"
    )]
    Shell,
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell) to stdout.
    #[command(
        after_help = "Example:\n  ds completions bash > ~/.local/share/bash-completion/completions/ds"
    )]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Write a new model crate at PATH (outside any workspace): a kind, a transactional
    /// operation and a README, ready to build into a component that --component runs.
    #[command(after_help = "Examples:\n  \
        ds new-model ../my-model\n  \
        ds new-model ../my-model --sdk-git https://example.invalid/ds --sdk-rev v0.2.0\n\n\
        Without --sdk-*: the SDK of the checkout this ds was built from, if it is still \
        there, else this version of ds-guest-sdk from crates.io.")]
    NewModel {
        /// The directory to create (it must not exist, or be empty).
        path: PathBuf,
        /// The crate's name (default: the directory's name).
        #[arg(long)]
        name: Option<String>,
        /// Depend on the guest SDK in this directory (guest/sdk of a ds checkout).
        #[arg(long, value_name = "DIR", conflicts_with_all = ["sdk_git", "sdk_version"])]
        sdk_path: Option<PathBuf>,
        /// Depend on the guest SDK from this git repository (the ds workspace).
        #[arg(long, value_name = "URL", conflicts_with = "sdk_version")]
        sdk_git: Option<String>,
        /// With --sdk-git: the commit, tag or branch.
        #[arg(long, value_name = "REV", requires = "sdk_git")]
        sdk_rev: Option<String>,
        /// Depend on this version of ds-guest-sdk from crates.io.
        #[arg(long, value_name = "VERSION")]
        sdk_version: Option<String>,
    },
    /// Check the store: every entity must be readable and have exactly its index rows, and
    /// every index row must belong to its entity. Prints a report; exits 6 on problems.
    /// With --repair, also says what a repair would do: write back missing index rows and
    /// delete stale ones (an entity that does not decode is left alone); with --apply, does
    /// it, one commit per page checked against what was read, then checks again.
    #[command(
        after_help = "Examples:\n  ds check\n  ds check --repair\n  ds check --repair --apply"
    )]
    Check {
        /// Say what a repair would write and delete (a dry run, unless --apply).
        #[arg(long)]
        repair: bool,
        /// With --repair: write the repairs.
        #[arg(long, requires = "repair")]
        apply: bool,
    },
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
    /// Count the entities of KIND that match, from the indexes (no entity is read): prints
    /// {"count": N}. Takes the filters and ancestor `query` takes.
    #[command(after_help = "Examples:\n  \
        ds count Account\n  \
        ds count Account --filter 'balance >= 100'\n  \
        ds count Transfer --ancestor Account:alice --limit 1000")]
    Count {
        /// Which entities.
        #[command(flatten)]
        selection: Selection,
        /// Count at most this many (stop early).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
        limit: Option<u32>,
    },
    /// Delete every entity of KIND that matches, in atomic batches of 500 (a keys-only query,
    /// then one commit per page): prints {"matched", "deleted", "batches"}. Not one
    /// transaction: a failure leaves the batches before it deleted. --dry-run only counts.
    #[command(after_help = "Examples:\n  \
        ds delete-query Transfer --ancestor Account:alice --dry-run\n  \
        ds delete-query Session --filter 'expires < {\"$timestamp\": \"2026-01-01T00:00:00Z\"}'")]
    DeleteQuery {
        /// Which entities.
        #[command(flatten)]
        selection: Selection,
        /// Delete at most this many.
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
        limit: Option<u32>,
        /// Count what would be deleted; delete nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Print the kinds the component declares, as JSON: each kind's properties (type,
    /// required, repeated, indexed, default) and composite indexes. Opens the store too.
    #[command(
        after_help = "Examples:\n  ds schema --pretty\n  ds --component my_model.wasm schema"
    )]
    Schema,
    /// List the composite indexes the component declares, one line each (kind, name,
    /// columns), as `gcloud datastore indexes list` does. Single-property and kind indexes
    /// are built in for every indexed property. Kinds in the store: `ds query __kind__`.
    #[command(after_help = "Example:\n  ds indexes --output table")]
    Indexes,
    /// Print what this ds is and what it runs on: its version, the WIT contract, the
    /// component and the kinds it declares, the store (password redacted) and its format.
    #[command(after_help = "Example:\n  ds info --pretty")]
    Info,
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

impl<C: Subcommand + AsCommand> Cli<C> {
    /// How results are printed: `--output`, or pretty JSON with `--pretty`.
    pub fn output_format(&self) -> OutputFormat {
        if self.pretty {
            OutputFormat::Pretty
        } else {
            self.output
        }
    }

    /// Parses the process arguments for the binary `name`; on bad usage prints help and
    /// exits with code 2. A command that only another binary has (`elsewhere`: its name and
    /// what to say) gets that message instead of clap's, also with code 2. `completions` is
    /// answered here, and `new-model`, before any store is opened.
    pub fn parse_for(name: &'static str, about: &'static str, elsewhere: &[(&str, &str)]) -> Self {
        let command = || {
            Self::command()
                .name(name)
                .bin_name(name)
                .about(about)
                .version(env!("CARGO_PKG_VERSION"))
                .long_version(long_version())
                // The shared commands' examples are written for `ds`; each binary shows its
                // own name.
                .mut_subcommands(|sub| {
                    let examples = sub.get_after_help().map(|help| {
                        help.to_string()
                            .replace("\n  ds ", &format!("\n  {name} "))
                            .replace("| ds ", &format!("| {name} "))
                    });
                    match examples {
                        Some(examples) => sub.after_help(examples),
                        None => sub,
                    }
                })
        };
        let matches = command().try_get_matches().unwrap_or_else(|err| {
            if err.kind() == clap::error::ErrorKind::InvalidSubcommand {
                let given = err.get(clap::error::ContextKind::InvalidSubcommand);
                for (other, message) in elsewhere {
                    if matches!(given, Some(clap::error::ContextValue::String(s)) if s == other) {
                        eprintln!("error: {message}");
                        std::process::exit(2);
                    }
                }
            }
            exit_bounded(err)
        });
        let cli = Self::from_arg_matches(&matches).unwrap_or_else(|err| err.exit());
        match cli.command.as_command() {
            Some(Command::Completions { shell }) => {
                clap_complete::generate(*shell, &mut command(), name, &mut std::io::stdout());
                std::process::exit(0);
            }
            Some(Command::Key { key }) => {
                let mut output = Output::new(cli.output_format());
                output.emit(serde_json::json!({
                    "key": key.to_string(),
                    "urlsafe": key.to_urlsafe(),
                }));
                output.flush();
                std::process::exit(0);
            }
            Some(Command::NewModel {
                path,
                name,
                sdk_path,
                sdk_git,
                sdk_rev,
                sdk_version,
            }) => {
                let sdk = match (sdk_path, sdk_git, sdk_version) {
                    (Some(dir), _, _) => SdkSource::Path(dir.clone()),
                    (_, Some(url), _) => SdkSource::Git {
                        url: url.clone(),
                        rev: sdk_rev.clone(),
                    },
                    (_, _, Some(version)) => SdkSource::Version(version.clone()),
                    _ => SdkSource::default_for_this_build(),
                };
                let mut output = Output::new(cli.output_format());
                match new_model(path, name.as_deref(), &sdk) {
                    Ok(created) => {
                        output.emit(created);
                        output.flush();
                        std::process::exit(0);
                    }
                    Err(err) => {
                        eprintln!("error: {err:#}");
                        std::process::exit(i32::from(crate::exit::status(&err)));
                    }
                }
            }
            _ => cli,
        }
    }

    /// The instance settings the options ask for.
    pub fn instance_options(&self) -> InstanceOptions {
        InstanceOptions {
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

/// Which entities a `count` or `delete-query` takes: a kind, filters and an ancestor, as
/// `query` takes them.
#[derive(Debug, Clone, clap::Args)]
pub struct Selection {
    /// The kind.
    pub kind: String,
    /// Only descendants of this key (and the key itself).
    #[arg(long, value_parser = parse_key)]
    pub ancestor: Option<Key>,
    /// A filter 'PROPERTY OP VALUE', as `query` takes it. Repeatable.
    #[arg(long = "filter", value_parser = parse_filter)]
    pub filters: Vec<Filter>,
    /// The namespace.
    #[arg(long, default_value = "")]
    pub namespace: String,
}

impl Selection {
    /// The query that selects these entities, with `limit` as its limit.
    pub fn query(&self, limit: Option<u32>) -> Query {
        Query {
            namespace: self.namespace.clone(),
            kind: Some(self.kind.clone()),
            ancestor: self.ancestor.clone(),
            filters: self.filters.clone(),
            limit,
            ..Query::default()
        }
    }
}

/// Exits on a usage error as clap does, but with each line of its message bounded: clap
/// quotes an invalid argument whole, and a 1 MB argument must not make a 1 MB message.
fn exit_bounded(err: clap::Error) -> ! {
    if !err.use_stderr() {
        // --help and --version: printed as they are.
        err.exit()
    }
    let text = err.render().to_string();
    eprint!("{}", bound_lines(&text, 400));
    std::process::exit(err.exit_code())
}

/// `text` with every line longer than `max` characters cut in the middle, saying how many
/// bytes it had.
fn bound_lines(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(text.len().min(4096));
    for line in text.split_inclusive('\n') {
        let chars = line.chars().count();
        if chars <= max {
            out.push_str(line);
            continue;
        }
        let head: String = line.chars().take(max / 2).collect();
        let tail: String = line.chars().skip(chars - max / 4).collect();
        out.push_str(&format!("{head}… ({} bytes in all) …{tail}", line.len()));
    }
    out
}

/// A binary's command set, seen as the commands both binaries share.
pub trait AsCommand {
    /// The shared command this is, if it is one.
    fn as_command(&self) -> Option<&Command>;
}

impl AsCommand for Command {
    fn as_command(&self) -> Option<&Command> {
        Some(self)
    }
}

/// Parses a key as the command line and the HTTP API take it: the human syntax, or the
/// URL-safe form.
pub fn parse_key(text: &str) -> Result<Key, String> {
    Key::parse_any(text).map_err(|err| err.to_string())
}

/// Parses a key for `put`: as [`parse_key`], or a kind alone as its last element.
fn parse_key_allowing_incomplete(text: &str) -> Result<Key, String> {
    Key::parse_allowing_incomplete(text).map_err(|err| err.to_string())
}

/// Parses JSON text a user gave, refusing integer literals with no int64 form.
pub(crate) fn parse_json(text: &str) -> Result<Value, String> {
    let value = serde_json::from_str(text).map_err(|err| format!("invalid JSON: {err}"))?;
    ds_model::json::check_integer_literals(text)?;
    Ok(value)
}

fn parse_filter(text: &str) -> Result<Filter, String> {
    Filter::parse(text).map_err(|err| err.to_string())
}

fn parse_order(text: &str) -> Result<Order, String> {
    Order::parse(text).map_err(|err| err.to_string())
}

impl Command {
    /// Whether the command only reads the store: such a command refuses a store that does
    /// not exist instead of creating it (`Builder::create_store(false)`).
    pub fn reads_only(&self) -> bool {
        matches!(
            self,
            Command::Get { .. }
                | Command::Query { .. }
                | Command::Export { .. }
                | Command::Check { apply: false, .. }
                | Command::Count { .. }
                | Command::DeleteQuery { dry_run: true, .. }
                | Command::Info
        )
    }

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

/// `put`'s properties: the JSON text, `-` (standard input) or `@FILE`.
fn parse_properties_arg(text: &str) -> Result<Map<String, Value>, String> {
    use std::io::Read as _;
    let read = match text {
        "-" => {
            let mut read = String::new();
            std::io::stdin()
                .read_to_string(&mut read)
                .map_err(|err| format!("cannot read standard input: {err}"))?;
            read
        }
        _ => match text.strip_prefix('@') {
            Some(path) => {
                std::fs::read_to_string(path).map_err(|err| format!("cannot read {path}: {err}"))?
            }
            None => return parse_properties(text),
        },
    };
    parse_properties(read.strip_prefix('\u{feff}').unwrap_or(&read))
}

fn parse_properties(text: &str) -> Result<Map<String, Value>, String> {
    match parse_json(text)? {
        Value::Object(map) => Ok(map),
        _ => Err("properties must be a JSON object, e.g. '{\"name\": \"Alice\"}'".into()),
    }
}

/// `--version` in full: the build, the WIT contract the hosts run, and the store formats it
/// reads and writes (a store written by a newer ds is refused, so users need to see both).
fn long_version() -> &'static str {
    static TEXT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    TEXT.get_or_init(|| {
        format!(
            "{} (contract {}; store formats: sqlite {}, postgres {})",
            env!("CARGO_PKG_VERSION"),
            ds::CONTRACT,
            ds::store::SQLITE_FORMAT_VERSION,
            ds::store::postgres::FORMAT_VERSION,
        )
    })
}
