//! The command line both binaries share: arguments, output and exit codes. Each binary's
//! `main` only dispatches the parsed command to its own `Datastore`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use ds_model::{Entity, Key};
use serde_json::{Map, Value, json};

use crate::error::Error;
use crate::runtime::ComponentSource;
use crate::store::{DEFAULT_STORE_URL, StoreError};

const KEY_HELP: &str = "Entity key: [NAMESPACE@]Kind:id-or-name[/Kind:id-or-name]... \
    An all-digit id-or-name is an integer id; quote names with special characters or that \
    are all digits: Account:alice, Account:42, Account:\"42\", Account:alice/Order:7";

/// Command-line arguments of `ds` and `ads`.
#[derive(Debug, Parser)]
pub struct Cli {
    /// Store URL: sqlite:PATH (the default, ./ds.db) or memory:.
    #[arg(long, env = "DS_STORE", default_value = DEFAULT_STORE_URL, global = true)]
    pub store: String,
    /// Run another build of the model component instead of the embedded one.
    #[arg(long, value_name = "PATH", global = true)]
    pub component: Option<PathBuf>,
    /// Instances: warm (reused across calls) or per-call (a fresh instance for every call).
    #[arg(long, default_value = "warm", global = true)]
    pub isolation: crate::instances::Isolation,
    /// Show the call path (host API, guest, transport) on stderr.
    #[arg(long, global = true)]
    pub trace: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// A datastore operation.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the entity at KEY as JSON; exit 1 if there is none.
    Get {
        #[arg(help = KEY_HELP, value_parser = parse_key)]
        /// The key.
        key: Key,
    },
    /// Write the entity at KEY with PROPERTIES (a JSON object), replacing any entity there.
    Put {
        #[arg(help = KEY_HELP, value_parser = parse_key)]
        /// The key.
        key: Key,
        /// The properties, a JSON object, e.g. '{"name": "Alice", "balance": 10}'.
        #[arg(value_parser = parse_properties)]
        properties: Map<String, Value>,
    },
    /// Delete the entity at KEY (not an error if there is none).
    Delete {
        #[arg(help = KEY_HELP, value_parser = parse_key)]
        /// The key.
        key: Key,
    },
}

impl Cli {
    /// Parses the process arguments for the binary `name`; on bad usage prints help and
    /// exits with code 2.
    pub fn parse_for(name: &'static str, about: &'static str) -> Cli {
        let matches = Cli::command().name(name).bin_name(name).about(about).get_matches();
        Cli::from_arg_matches(&matches).unwrap_or_else(|err| err.exit())
    }

    /// The component to run: `--component PATH`, or the embedded one.
    pub fn component_source(&self) -> ComponentSource {
        self.component.clone().map(ComponentSource::File).unwrap_or_default()
    }
}

fn parse_key(text: &str) -> Result<Key, String> {
    text.parse::<Key>().map_err(|err| err.to_string())
}

fn parse_properties(text: &str) -> Result<Map<String, Value>, String> {
    match serde_json::from_str(text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err("properties must be a JSON object, e.g. '{\"name\": \"Alice\"}'".into()),
        Err(err) => Err(format!("invalid JSON: {err}")),
    }
}

/// `get` found nothing at the key.
#[derive(Debug, thiserror::Error)]
#[error("no entity at key {0}")]
pub struct NotFound(pub Key);

/// Prints an entity as one JSON object: `{"key": "...", "properties": {...}}`.
pub fn print_entity(entity: &Entity) {
    println!("{}", json!({ "key": entity.key.to_string(), "properties": entity.properties }));
}

/// Prints the key a `put` wrote.
pub fn print_put(key: &Key) {
    println!("{}", json!({ "key": key.to_string() }));
}

/// Prints the key a `delete` removed.
pub fn print_deleted(key: &Key) {
    println!("{}", json!({ "key": key.to_string(), "deleted": true }));
}

/// Exit codes, documented in README: 0 ok, 1 not found, 2 bad usage or input, 3 conflict,
/// 4 store unavailable, 5 any other failure.
pub fn exit_code(err: &anyhow::Error) -> ExitCode {
    for cause in err.chain() {
        if cause.is::<NotFound>() {
            return ExitCode::from(1);
        }
        if let Some(err) = cause.downcast_ref::<Error>() {
            return ExitCode::from(match err {
                Error::InvalidKey(_) | Error::InvalidEntity(_) | Error::StoreUrl(_) => 2,
                Error::Store(StoreError::Conflict(_)) => 3,
                Error::Store(StoreError::Unavailable(_)) => 4,
                _ => 5,
            });
        }
        if let Some(err) = cause.downcast_ref::<StoreError>() {
            return ExitCode::from(match err {
                StoreError::Conflict(_) => 3,
                StoreError::Unavailable(_) => 4,
                _ => 5,
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
