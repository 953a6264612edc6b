//! Output for people (aligned tables) and for scripts (`--output json`, `--output csv`).

use serde_json::Value;

/// How client commands print their answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum OutputFormat {
    /// Aligned columns for people.
    #[default]
    Table,
    /// JSON (`audit export`: one record a line; `jsonl` is accepted as its name there).
    #[value(alias = "jsonl")]
    Json,
    /// CSV with a header line, for commands that print one table of rows.
    Csv,
}

/// Renders a cell of a JSON value.
pub fn cell(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(cell).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

/// Prints rows of objects as an aligned table of the given columns.
pub fn table(rows: &[Value], columns: &[&str]) -> String {
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|row| columns.iter().map(|c| cell(&row[*c])).collect())
        .collect();
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            cells
                .iter()
                .map(|r| r[i].chars().count())
                .chain([c.len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    let line = |values: Vec<String>| {
        values
            .iter()
            .zip(&widths)
            .map(|(v, w)| format!("{v:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_owned()
    };
    out.push_str(&line(columns.iter().map(|c| c.to_uppercase()).collect()));
    out.push('\n');
    for row in cells {
        out.push_str(&line(row));
        out.push('\n');
    }
    out
}

/// Prints a JSON value as `key: value` lines.
pub fn fields(value: &Value, keys: &[&str]) -> String {
    let width = keys.iter().map(|k| k.len()).max().unwrap_or(0);
    keys.iter()
        .filter(|k| !value[**k].is_null())
        .map(|k| format!("{k:<width$}  {}\n", cell(&value[*k])))
        .collect()
}

/// Prints for the chosen format (`run` has refused csv for a command that does not print rows).
pub fn print(format: OutputFormat, value: &Value, render: impl FnOnce(&Value) -> String) {
    match format {
        OutputFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
        ),
        OutputFormat::Table | OutputFormat::Csv => print!("{}", render(value)),
    }
}
