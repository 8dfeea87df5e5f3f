//! Streaming a table column by column without holding it: the cells a table reader hands a consumer that
//! keeps only a summary of each column (the drift accumulators), and the trait such a summary implements.
//!
//! Vocabulary only, so that the reader (`aegis-data`, which owns the dialect, the bounds and the parallel
//! parsing) and the statistics (`aegis-monitor`) need not know each other: the binary hands one to the other.

/// One cell of a streamed column, parsed by the reader per the column's kind.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum StreamCell<'a> {
    /// A missing cell (one of the missing markers).
    Missing,
    /// A present cell that does not parse as its column's kind (text in a numeric column).
    Invalid,
    /// A number: numeric columns, and timestamps as seconds since the Unix epoch.
    Number(f64),
    /// A category: categorical columns, and booleans as `true`/`false`.
    Category(&'a str),
    /// Free text (only counted).
    Text(&'a str),
}

/// How a streamed column is summarised (and compared: `aegis-monitor` calls it `DriftKind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SummaryKind {
    /// Numbers (and timestamps as seconds).
    Numeric,
    /// Categories (and booleans).
    Categorical,
    /// Free text.
    Text,
}

/// A summary of one column that a reader fills in parallel blocks (each from [`ColumnSummary::empty_like`])
/// and folds in file order ([`ColumnSummary::absorb`]), so the result does not depend on thread timing.
pub trait ColumnSummary: Send + Sync + Sized {
    /// Count one cell.
    fn push(&mut self, cell: StreamCell<'_>);
    /// An empty summary of the same kind and bounds.
    fn empty_like(&self) -> Self;
    /// Fold a later partial into this one.
    fn absorb(&mut self, other: Self);
    /// Room for about `rows` more cells (a hint; the default does nothing).
    fn reserve(&mut self, _rows: usize) {}
}
