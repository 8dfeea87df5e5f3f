//! The one error type of the data crate.
//!
//! Every message names the operation's file and, where it applies, the 1-based line, the column or the
//! schema feature, because the person reading it has to go and fix that file. Names and cell values come from
//! untrusted files, so they are quoted with Rust string escapes (no raw control characters reach a terminal)
//! and cut short when long.

use std::path::PathBuf;

/// At most this many names are listed in a message; the rest are counted.
const MAX_LISTED: usize = 12;

/// Cell values in messages are cut to this many characters.
const MAX_EXCERPT: usize = 64;

/// Why reading or checking a dataset or schema failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The file could not be opened, read or written.
    #[error("cannot access {}: {source}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating-system error.
        #[source]
        source: std::io::Error,
    },

    /// The file is larger than the caller's byte bound.
    #[error("{} is larger than the limit of {limit} bytes", .path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The byte bound that was exceeded.
        limit: u64,
    },

    /// A cell is not UTF-8 text.
    #[error("{} line {line}, column {}: the cell is not UTF-8 text; save the file as UTF-8", .path.display(), quoted(.column))]
    NotUtf8 {
        /// The file.
        path: PathBuf,
        /// 1-based line number where the row starts.
        line: u64,
        /// The column.
        column: String,
    },

    /// The header row is not text: a binary file (a model, an archive) given where a table was expected.
    #[error(
        "{} is not a CSV file: its header row {reason} (a binary file?); give a CSV or Parquet table",
        .path.display()
    )]
    NotText {
        /// The file.
        path: PathBuf,
        /// What is wrong with the header row.
        reason: &'static str,
    },

    /// Two tables that must describe the same columns do not.
    #[error("{} and {} do not match: {reason}", .reference.display(), .current.display())]
    Mismatch {
        /// The reference table.
        reference: PathBuf,
        /// The current table.
        current: PathBuf,
        /// What differs.
        reason: String,
    },

    /// The file has no header row.
    #[error("{} is empty: a header row naming the columns is required", .path.display())]
    Empty {
        /// The file.
        path: PathBuf,
    },

    /// The file has a header row but no data rows.
    #[error("{} has a header row but no data rows", .path.display())]
    NoRows {
        /// The file.
        path: PathBuf,
    },

    /// Two header cells have the same name.
    #[error("{}: column {} appears more than once in the header", .path.display(), quoted(.column))]
    DuplicateColumn {
        /// The file.
        path: PathBuf,
        /// The repeated name.
        column: String,
    },

    /// A column named by the caller (label or column to drop) is not in the header.
    #[error("{}: {role} column {} not found; available columns: {}", .path.display(), quoted(.column), name_list(.available))]
    MissingColumn {
        /// The file.
        path: PathBuf,
        /// What the column was wanted for: `label` or `drop`.
        role: &'static str,
        /// The name that was asked for.
        column: String,
        /// The header's column names.
        available: Vec<String>,
    },

    /// Every column is the label or dropped: nothing is left to be a feature.
    #[error("{}: no feature columns left after removing the label and dropped columns", .path.display())]
    NoFeatures {
        /// The file.
        path: PathBuf,
    },

    /// A row has a different number of fields than the header.
    #[error("{} line {line}: row has {found} fields, the header has {expected}", .path.display())]
    RaggedRow {
        /// The file.
        path: PathBuf,
        /// 1-based line number where the row starts.
        line: u64,
        /// Number of header columns.
        expected: usize,
        /// Number of fields in this row.
        found: usize,
    },

    /// A column cannot be model input: it is not numeric or boolean, or one of its cells is missing or
    /// outside the `f32` range.
    #[error("{}, column {}, data row {row}: {detail}; a model takes a number in every row: encode the column as numbers, fill the missing cells, or leave the column out (--drop)", .path.display(), quoted(.column))]
    NotModelInput {
        /// The file.
        path: PathBuf,
        /// The column.
        column: String,
        /// 1-based data row of the first offending cell (the header is not counted).
        row: usize,
        /// What is wrong, with the cell's value.
        detail: String,
    },

    /// A label cell is empty.
    #[error("{} line {line}: label column {} is empty", .path.display(), quoted(.column))]
    EmptyLabel {
        /// The file.
        path: PathBuf,
        /// 1-based line number where the row starts.
        line: u64,
        /// The label column.
        column: String,
    },

    /// An integer label is too large to be a class index.
    #[error("{} line {line}: integer label {value} in column {} is larger than the largest class index {max}", .path.display(), quoted(.column))]
    LabelTooLarge {
        /// The file.
        path: PathBuf,
        /// 1-based line number where the row starts.
        line: u64,
        /// The label column.
        column: String,
        /// The label.
        value: u32,
        /// The largest accepted class index.
        max: u32,
    },

    /// A header cell is empty: every column needs a name.
    #[error("{}: header column {index} has an empty name", .path.display())]
    EmptyColumnName {
        /// The file.
        path: PathBuf,
        /// 1-based position of the column in the header.
        index: usize,
    },

    /// The file has more columns than the reader accepts.
    #[error("{} has {found} columns, more than the limit of {limit}", .path.display())]
    TooManyColumns {
        /// The file.
        path: PathBuf,
        /// Number of columns in the file.
        found: usize,
        /// The column bound.
        limit: usize,
    },

    /// One cell is longer than the reader accepts.
    #[error("{} line {line}, column {}: cell is {found} bytes long, more than the limit of {limit}", .path.display(), quoted(.column))]
    CellTooLong {
        /// The file.
        path: PathBuf,
        /// 1-based line number where the row starts.
        line: u64,
        /// The column.
        column: String,
        /// Length of the cell in bytes.
        found: usize,
        /// The cell-length bound.
        limit: usize,
    },

    /// A cell does not have the type the caller forced for its column.
    #[error("{} line {line}, column {}: {} is not a valid {expected} value (the column's type was forced)", .path.display(), quoted(.column), quoted(.value))]
    BadCell {
        /// The file.
        path: PathBuf,
        /// 1-based line number where the row starts.
        line: u64,
        /// The column.
        column: String,
        /// The cell's text.
        value: String,
        /// The forced type.
        expected: aegis_core::ColumnKind,
    },

    /// A type was forced for a column the file does not have.
    #[error("{}: a type was forced for column {}, which is not in the file; available columns: {}", .path.display(), quoted(.column), name_list(.available))]
    UnknownTypedColumn {
        /// The file.
        path: PathBuf,
        /// The name that was given.
        column: String,
        /// The file's column names.
        available: Vec<String>,
    },

    /// The label column has more distinct values than a classification target can have.
    #[error("{}: label column {} has more than {limit} distinct values; is it really the label?", .path.display(), quoted(.column))]
    TooManyClasses {
        /// The file.
        path: PathBuf,
        /// The label column.
        column: String,
        /// The bound on distinct labels.
        limit: usize,
    },

    /// The file changed between the two passes of a reader (type inference, then parsing).
    #[error("{} changed while it was being read; read it again when it is no longer being written", .path.display())]
    Changed {
        /// The file.
        path: PathBuf,
    },

    /// A Parquet file could not be decoded (not Parquet, truncated or corrupt).
    #[error("{} is not a readable Parquet file: {reason}", .path.display())]
    Parquet {
        /// The file.
        path: PathBuf,
        /// The decoder's explanation.
        reason: String,
    },

    /// A Parquet column has a type the reader cannot turn into a frame column (nested or unknown types).
    #[error("{}: Parquet column {} is not supported: {reason}", .path.display(), quoted(.column))]
    UnsupportedColumn {
        /// The file.
        path: PathBuf,
        /// The column.
        column: String,
        /// Why (for example, `nested group`).
        reason: String,
    },

    /// A value in a Parquet file cannot be used (a missing label, an out-of-range class index, an oversized
    /// cell, a value a forced type cannot take).
    #[error("{} data row {row}, column {}: {reason}", .path.display(), quoted(.column))]
    BadValue {
        /// The file.
        path: PathBuf,
        /// 0-based data row.
        row: u64,
        /// The column.
        column: String,
        /// What is wrong.
        reason: String,
    },

    /// A schema file is not valid TOML or does not have the schema's shape.
    #[error("cannot parse schema {}: {source}", .path.display())]
    SchemaParse {
        /// The schema file.
        path: PathBuf,
        /// The TOML error, with its position.
        #[source]
        source: toml::de::Error,
    },

    /// A schema could not be written as TOML.
    #[error("cannot write schema {}: {source}", .path.display())]
    SchemaWrite {
        /// The schema file.
        path: PathBuf,
        /// The serialiser's error.
        #[source]
        source: toml::ser::Error,
    },

    /// A schema file defines no features.
    #[error("schema {} defines no features (expected [[feature]] tables)", .path.display())]
    SchemaEmpty {
        /// The schema file.
        path: PathBuf,
    },

    /// A feature in a schema file is inconsistent.
    #[error("schema {}: feature {}: {reason}", .path.display(), quoted(.feature))]
    InvalidFeature {
        /// The schema file.
        path: PathBuf,
        /// The feature's name.
        feature: String,
        /// What is wrong with it.
        reason: String,
    },

    /// A one-hot group in a schema file is inconsistent.
    #[error("schema {}: one-hot group {}: {reason}", .path.display(), quoted(.group))]
    InvalidOneHot {
        /// The schema file.
        path: PathBuf,
        /// The group's name.
        group: String,
        /// What is wrong with it.
        reason: String,
    },

    /// A schema and a table do not have the same columns.
    #[error("schema does not match the table: {}", mismatch(.missing_from_schema, .missing_from_table))]
    SchemaMismatch {
        /// Table columns the schema does not describe.
        missing_from_schema: Vec<String>,
        /// Schema features the table does not have.
        missing_from_table: Vec<String>,
    },

    /// A dataset schema file (`aegis schema infer`/`check`) is inconsistent: a column, the label or the row
    /// bounds.
    #[error("schema {}: {subject}: {reason}", .path.display())]
    InvalidDataSchema {
        /// The schema file.
        path: PathBuf,
        /// What is wrong: `column "amount"`, `label`, `rows` or `version` (names already quoted).
        subject: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// A quoted, escaped and possibly shortened cell value for a message.
fn quoted(value: &str) -> String {
    let mut chars = value.char_indices();
    match chars.nth(MAX_EXCERPT) {
        Some((cut, _)) => format!("{:?}…", &value[..cut]),
        None => format!("{value:?}"),
    }
}

/// `"a", "b", "c"`, with at most [`MAX_LISTED`] names and a count of the rest.
fn name_list(names: &[String]) -> String {
    let mut out = names
        .iter()
        .take(MAX_LISTED)
        .map(|n| quoted(n))
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > MAX_LISTED {
        out.push_str(&format!(" and {} more", names.len() - MAX_LISTED));
    }
    if names.is_empty() {
        out.push_str("(none)");
    }
    out
}

fn mismatch(missing_from_schema: &[String], missing_from_table: &[String]) -> String {
    let mut parts = Vec::new();
    if !missing_from_schema.is_empty() {
        parts.push(format!(
            "table columns missing from the schema: {}",
            name_list(missing_from_schema)
        ));
    }
    if !missing_from_table.is_empty() {
        parts.push(format!(
            "schema features missing from the table: {}",
            name_list(missing_from_table)
        ));
    }
    parts.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_values_are_cut_and_escaped() {
        let long = "x".repeat(1000);
        let q = quoted(&long);
        assert!(q.len() < 80, "{q}");
        assert!(q.ends_with('…'));
        assert_eq!(quoted("a\u{1b}[31m"), "\"a\\u{1b}[31m\"");
        // Multi-byte characters are cut on a character boundary.
        let wide = "é".repeat(100);
        assert!(quoted(&wide).ends_with('…'));
    }

    #[test]
    fn name_lists_are_bounded() {
        let names: Vec<String> = (0..20).map(|i| format!("c{i}")).collect();
        let s = name_list(&names);
        assert!(s.contains("\"c11\""));
        assert!(!s.contains("\"c12\""));
        assert!(s.ends_with("and 8 more"));
        assert_eq!(name_list(&[]), "(none)");
    }
}
