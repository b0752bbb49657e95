//! Output: results as JSON lines (for programs) or one aligned table (for people), through
//! an [`Output`] value the dispatch is handed, not process-wide state.

use serde_json::Value;

/// How results are printed (`--output`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// One JSON object per line.
    Json,
    /// Aligned columns; an entity's properties are columns of their own. Control
    /// characters in the data are shown escaped (`\u{1b}`).
    Table,
    /// Indented JSON, one object after another: for people reading JSON.
    Pretty,
}

/// Most rows held back for one table.
const TABLE_ROWS: usize = 1000;

/// Where a command's results go: standard output, in one format.
#[derive(Debug)]
pub struct Output {
    format: OutputFormat,
    /// Rows of `--output table` not printed yet. Pages of one command (`export`, an
    /// unlimited `query`) make one table with one header: rows are printed together,
    /// [`TABLE_ROWS`] at a time and the rest by [`Output::flush`].
    pending: Vec<Value>,
}

impl Output {
    /// Results printed in `format`.
    pub fn new(format: OutputFormat) -> Self {
        Output {
            format,
            pending: Vec::new(),
        }
    }

    /// Prints one result, now: in a table, after the rows held back and as a table of its
    /// own (a query's cursor is not a row of its results).
    pub fn emit(&mut self, row: Value) {
        self.flush();
        self.emit_rows(std::slice::from_ref(&row));
        self.flush();
    }

    /// Prints results: one JSON object per line, or table rows.
    pub fn emit_rows(&mut self, rows: &[Value]) {
        match self.format {
            OutputFormat::Json => write_stdout(
                &rows
                    .iter()
                    .map(|row| format!("{row}\n"))
                    .collect::<String>(),
            ),
            OutputFormat::Pretty => write_stdout(
                &rows
                    .iter()
                    .map(|row| {
                        let text =
                            serde_json::to_string_pretty(row).unwrap_or_else(|_| row.to_string());
                        format!("{text}\n")
                    })
                    .collect::<String>(),
            ),
            OutputFormat::Table => {
                self.pending.extend_from_slice(rows);
                if self.pending.len() >= TABLE_ROWS {
                    self.flush();
                }
            }
        }
    }

    /// Prints the table rows held back, if any, as one table.
    pub fn flush(&mut self) {
        if !self.pending.is_empty() {
            let text = table(&self.pending);
            self.pending.clear();
            write_stdout(&text);
        }
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
    let headers: Vec<String> = columns.iter().map(|c| printable(c)).collect();
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
                .map(|row| display_width(&row[i]))
                .chain([display_width(c)])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: &[String]| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(cell, width)| {
                let pad = width.saturating_sub(display_width(cell));
                format!("{cell}{}", " ".repeat(pad))
            })
            .collect();
        format!("{}\n", padded.join("  ").trim_end())
    };
    let mut out = line(&headers);
    for row in &grid {
        out.push_str(&line(row));
    }
    out
}

/// Columns a cell takes on a terminal: East Asian wide characters take two, combining
/// marks none.
fn display_width(text: &str) -> usize {
    unicode_width::UnicodeWidthStr::width(text)
}

/// `text` with control characters (and the bidirectional overrides, which reorder what
/// follows them) escaped: stored data must not move the cursor, recolour or retitle the
/// terminal of whoever lists it.
fn printable(text: &str) -> String {
    let hidden =
        |c: char| c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
    if !text.chars().any(hidden) {
        return text.to_string();
    }
    text.chars()
        .map(|c| {
            if hidden(c) {
                c.escape_unicode().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

fn cell(value: &Value) -> String {
    match value {
        Value::String(text) => printable(text),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}
