//! `ds shell` / `ads shell`: the commands of the command line, one per line, on a datastore
//! opened once, with line editing, history and completion of command names (as sqlite3's
//! and redis-cli's shells have). Each line is split as a POSIX shell splits words
//! (`put Note:1 '{"n": 1}'`), parsed by the same clap definitions and run by the same
//! dispatch, so a line does exactly what the same words after `ds` do. An error is printed
//! and the shell goes on; `exit`, `quit` or end of input (Ctrl-D) leave it.

use std::path::PathBuf;

use clap::{CommandFactory, FromArgMatches, Parser};
use host_core::face::Face;
use rustyline::completion::Completer;
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::history::DefaultHistory;
use rustyline::validate::Validator;
use rustyline::{Context, Editor, Helper};

use crate::args::Command;
use crate::dispatch::{self, Invocation};
use crate::output::{Output, OutputFormat};

/// One line of the shell: a command and how to print it (the other global options are
/// the shell's: the datastore is open).
#[derive(Debug, Parser)]
#[command(no_binary_name = true, disable_version_flag = true)]
struct Line {
    /// How this command's results are printed (default: as the shell's).
    #[arg(long, value_enum, global = true)]
    output: Option<OutputFormat>,
    /// Indented JSON: the same as --output pretty.
    #[arg(long, global = true)]
    pretty: bool,
    #[command(subcommand)]
    command: Command,
}

/// Commands that make no sense inside the shell.
const NOT_IN_SHELL: &[&str] = &["shell", "completions", "new-model"];

/// Completes the first word of a line with a command name.
struct Commands(Vec<String>);

impl Completer for Commands {
    type Candidate = String;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<String>)> {
        let before = &line[..pos];
        if before.contains(char::is_whitespace) {
            return Ok((pos, Vec::new()));
        }
        let matches = self
            .0
            .iter()
            .filter(|name| name.starts_with(before))
            .cloned()
            .collect();
        Ok((0, matches))
    }
}

impl Hinter for Commands {
    type Hint = String;
}
impl Highlighter for Commands {}
impl Validator for Commands {}
impl Helper for Commands {}

/// Where the history is kept: `$DS_HISTORY`, else `~/.ds_history`; `None` keeps none.
fn history_file() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("DS_HISTORY") {
        return (!path.is_empty()).then(|| PathBuf::from(path));
    }
    std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".ds_history"))
}

/// Runs the shell on `db` until `exit` or the end of input. `name` is the binary's.
pub async fn run(
    db: &impl Face,
    output: &mut Output,
    invocation: Invocation<'_>,
    name: &'static str,
) -> anyhow::Result<()> {
    let mut names: Vec<String> = Line::command()
        .get_subcommands()
        .map(|c| c.get_name().to_string())
        .filter(|n| !NOT_IN_SHELL.contains(&n.as_str()))
        .collect();
    names.extend(["exit".into(), "help".into(), "quit".into()]);
    let mut editor: Editor<Commands, DefaultHistory> = Editor::new()?;
    editor.set_helper(Some(Commands(names)));
    let history = history_file();
    if let Some(path) = &history {
        // A missing history file is a first run, not an error.
        let _ = editor.load_history(path);
    }
    let prompt = format!("{name}> ");
    loop {
        let line = match editor.readline(&prompt) {
            Ok(line) => line,
            // Ctrl-C drops the line being typed, as shells do.
            Err(ReadlineError::Interrupted) => continue,
            Err(ReadlineError::Eof) => break,
            Err(err) => return Err(err.into()),
        };
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let _ = editor.add_history_entry(trimmed);
        let Some(words) = shlex::split(trimmed) else {
            eprintln!("error: unbalanced quotes");
            continue;
        };
        match words.first().map(String::as_str) {
            Some("exit" | "quit") => break,
            Some("help") => {
                let _ = Line::command().name(name).print_help();
                continue;
            }
            Some(word) if NOT_IN_SHELL.contains(&word) => {
                eprintln!("error: `{word}` is not available in the shell; run `{name} {word}`");
                continue;
            }
            _ => {}
        }
        let parsed = Line::command()
            .name(name)
            .try_get_matches_from(words)
            .and_then(|matches| Line::from_arg_matches(&matches));
        let line = match parsed {
            Ok(line) => line,
            Err(err) => {
                // --help on a command is printed as help; the rest as errors. Either way
                // the shell goes on.
                let _ = err.print();
                continue;
            }
        };
        let format = if line.pretty {
            Some(OutputFormat::Pretty)
        } else {
            line.output
        };
        let mut own;
        let out = match format {
            Some(format) => {
                own = Output::new(format);
                &mut own
            }
            None => &mut *output,
        };
        let result = Box::pin(dispatch::run(db, line.command, out, invocation)).await;
        out.flush();
        if let Err(err) = result {
            eprintln!("error: {err:#}");
        }
    }
    if let Some(path) = &history {
        let _ = editor.save_history(path);
    }
    Ok(())
}
