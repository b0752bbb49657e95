//! `import`: JSON lines in `get`'s format, read as batches of entities.

use ds::{Entity, Key};
use serde_json::{Map, Value};

use crate::args::parse_json;

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
        let reader: Box<dyn std::io::BufRead + Send> = if file.as_os_str() == "-" {
            Box::new(std::io::BufReader::new(std::io::stdin()))
        } else {
            // A file that cannot be opened is bad input (exit 2), like a bad line.
            let opened = std::fs::File::open(file).map_err(|err| {
                crate::exit::UsageError(format!("cannot open {}: {err}", file.display()))
            })?;
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
            // A byte-order mark, as some editors write at the start of UTF-8 files.
            let line = match line.strip_prefix('\u{feff}') {
                Some(rest) if self.line == 1 => rest.to_string(),
                _ => line,
            };
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
        Some(Value::String(text)) => Key::parse_any(&text).map_err(|err| err.to_string())?,
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
