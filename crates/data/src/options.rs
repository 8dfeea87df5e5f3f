//! How a table is read ([`ReadOptions`]: dialect, bounds, label and dropped columns, forced types) and what
//! streaming hands out ([`Record`]): the vocabulary every reader of the crate shares, in a leaf module.

use std::collections::BTreeMap;

use aegis_core::ColumnKind;

use crate::error::Error;

/// Files with more columns than this are refused.
pub const MAX_COLUMNS: usize = 10_000;

/// Cells longer than this many bytes are refused.
pub const MAX_CELL_BYTES: usize = 1 << 20;

/// How to read a dataset into a [`Frame`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadOptions {
    /// Name of the label column; `None` reads a frame without labels. It must exist when named.
    pub label: Option<String>,
    /// Columns to ignore, such as row ids. Each must exist.
    pub drop: Vec<String>,
    /// CSV field delimiter; `None` picks the most frequent of `,` `;` tab `|` in the first line.
    pub delimiter: Option<u8>,
    /// The first CSV line names the columns (default); when false, columns are named `c0`, `c1`, ….
    pub header: bool,
    /// Cell texts (after trimming) that mean "missing".
    pub missing: Vec<String>,
    /// Column types forced by the caller instead of inferred; a cell that does not fit is an error.
    pub types: BTreeMap<String, ColumnKind>,
    /// Read only the first this many data rows; `None` reads them all.
    pub max_rows: Option<usize>,
    /// Refuse files larger than this many bytes; nothing past it is ever read.
    pub max_bytes: u64,
    /// A string column with more distinct values than this is text rather than categorical.
    pub max_categories: usize,
}

impl ReadOptions {
    /// The default byte bound: 4 GiB.
    pub const DEFAULT_MAX_BYTES: u64 = 4 << 30;
    /// The default bound on distinct values of a categorical column.
    pub const DEFAULT_MAX_CATEGORIES: usize = 1000;
    /// The default missing markers.
    pub const DEFAULT_MISSING: [&'static str; 9] =
        ["", "?", "NA", "N/A", "NaN", "nan", "null", "NULL", "None"];

    /// True when `cell` (already trimmed) is one of the missing markers.
    pub fn is_missing(&self, cell: &str) -> bool {
        self.missing.iter().any(|m| m == cell)
    }
}

impl Default for ReadOptions {
    fn default() -> Self {
        Self {
            label: None,
            drop: Vec::new(),
            delimiter: None,
            header: true,
            missing: Self::DEFAULT_MISSING
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
            types: BTreeMap::new(),
            max_rows: None,
            max_bytes: Self::DEFAULT_MAX_BYTES,
            max_categories: Self::DEFAULT_MAX_CATEGORIES,
        }
    }
}

/// The rows handed out by [`crate::stream_records`]: owns its reader, borrows nothing.
pub type RecordStream = Box<dyn Iterator<Item = Result<Record, Error>>>;

/// One data row handed out by [`crate::stream_records`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// 0-based index of the data row.
    pub row: u64,
    /// 1-based line where the row starts in a CSV file; `None` for Parquet.
    pub line: Option<u64>,
    /// One cell per header column (in the header's order); `None` is a missing cell. CSV cells are trimmed
    /// text; Parquet values are written the way a CSV would hold them (numbers in their shortest form,
    /// `true`/`false`, timestamps as `YYYY-MM-DDTHH:MM:SSZ`).
    pub cells: Vec<Option<String>>,
}
