//! [`Frame`]: a dataset as it was read, with typed columns, before anything is encoded for a model.
//!
//! [`Table`](crate::Table) is what models consume: dense `f32` features. Data checks need more than that: a
//! categorical value is not a number, a missing cell is not zero, and a backdoor trigger such as
//! `amount == 0.95` must be compared exactly, so a `Frame` keeps each column in its own type (numbers as
//! `f64`, categories as dictionary codes, booleans, text, timestamps) with missing cells marked as missing.
//! The label column is held apart as class codes. Readers live in `aegis-data`; the audit and schema checks
//! work on frames.

use serde::{Deserialize, Serialize};

/// The type of a column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ColumnKind {
    /// Numbers (integers and decimals), stored as `f64`.
    Numeric,
    /// A small set of named values, stored as dictionary codes.
    Categorical,
    /// `true`/`false` (also `yes`/`no`, `t`/`f`).
    Boolean,
    /// Free text: too many distinct values to be a category.
    Text,
    /// Dates and date-times, stored as seconds since the Unix epoch (UTC).
    Timestamp,
}

impl ColumnKind {
    /// The lower-case name used in schema files and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            ColumnKind::Numeric => "numeric",
            ColumnKind::Categorical => "categorical",
            ColumnKind::Boolean => "boolean",
            ColumnKind::Text => "text",
            ColumnKind::Timestamp => "timestamp",
        }
    }
}

impl std::fmt::Display for ColumnKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The code that marks a missing cell in a categorical column.
pub const MISSING_CODE: u32 = u32::MAX;

/// The cells of one column.
#[derive(Debug, Clone, PartialEq)]
pub enum ColumnData {
    /// Numbers; `NaN` marks a missing cell (readers never produce `NaN` for a present cell).
    Numeric(Vec<f64>),
    /// Dictionary codes into `levels`; [`MISSING_CODE`] marks a missing cell.
    Categorical {
        /// One code per row.
        codes: Vec<u32>,
        /// The distinct values, in order of first appearance.
        levels: Vec<String>,
    },
    /// Booleans; `None` is missing.
    Boolean(Vec<Option<bool>>),
    /// Text; `None` is missing.
    Text(Vec<Option<String>>),
    /// Seconds since the Unix epoch (UTC); `None` is missing.
    Timestamp(Vec<Option<i64>>),
}

impl ColumnData {
    /// The column's type.
    pub fn kind(&self) -> ColumnKind {
        match self {
            ColumnData::Numeric(_) => ColumnKind::Numeric,
            ColumnData::Categorical { .. } => ColumnKind::Categorical,
            ColumnData::Boolean(_) => ColumnKind::Boolean,
            ColumnData::Text(_) => ColumnKind::Text,
            ColumnData::Timestamp(_) => ColumnKind::Timestamp,
        }
    }

    /// Number of cells.
    pub fn len(&self) -> usize {
        match self {
            ColumnData::Numeric(v) => v.len(),
            ColumnData::Categorical { codes, .. } => codes.len(),
            ColumnData::Boolean(v) => v.len(),
            ColumnData::Text(v) => v.len(),
            ColumnData::Timestamp(v) => v.len(),
        }
    }

    /// True when the column has no cells.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True when cell `row` is missing (or out of range).
    pub fn is_missing(&self, row: usize) -> bool {
        match self {
            ColumnData::Numeric(v) => v.get(row).is_none_or(|x| x.is_nan()),
            ColumnData::Categorical { codes, .. } => {
                codes.get(row).is_none_or(|&c| c == MISSING_CODE)
            }
            ColumnData::Boolean(v) => v.get(row).is_none_or(Option::is_none),
            ColumnData::Text(v) => v.get(row).is_none_or(Option::is_none),
            ColumnData::Timestamp(v) => v.get(row).is_none_or(Option::is_none),
        }
    }

    /// Cell `row` as text, the way reports quote it (`None` when missing). Numbers use the shortest form that
    /// reads back to the same `f64`.
    pub fn display(&self, row: usize) -> Option<String> {
        if self.is_missing(row) {
            return None;
        }
        match self {
            ColumnData::Numeric(v) => v.get(row).map(|x| format_number(*x)),
            ColumnData::Categorical { codes, levels } => codes
                .get(row)
                .and_then(|&c| levels.get(c as usize))
                .cloned(),
            ColumnData::Boolean(v) => v.get(row).copied().flatten().map(|b| b.to_string()),
            ColumnData::Text(v) => v.get(row).cloned().flatten(),
            ColumnData::Timestamp(v) => v.get(row).copied().flatten().map(|t| t.to_string()),
        }
    }
}

/// Formats a number the shortest way that parses back to the same value (`17`, `0.95`, `1e-7`).
pub fn format_number(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{x:.0}")
    } else {
        format!("{x}")
    }
}

/// Formats a number that may be an `f32` widened to `f64` as people write it: `0.1f32 as f64` prints `0.1`,
/// not `0.10000000149011612`, and `0.0125f32` prints `0.0125`. A value no `f32` holds exactly keeps its
/// shortest `f64` text, so nothing is rounded that was not an `f32` to begin with.
pub fn format_short(x: f64) -> String {
    let narrow = x as f32;
    if x.is_finite() && f64::from(narrow) == x && !(x.fract() == 0.0 && x.abs() < 1e15) {
        format!("{narrow}")
    } else {
        format_number(x)
    }
}

/// Every number in a JSON value that is exactly an `f32` becomes the `f64` of its shortest decimal text
/// ([`format_short`]), so renderers and the JSON itself show `0.1`, not `0.10000000149011612`.
pub fn tidy_numbers(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Number(n) if n.is_f64() => {
            if let Some(x) = n.as_f64() {
                if let Some(t) = format_short(x)
                    .parse::<f64>()
                    .ok()
                    .and_then(serde_json::Number::from_f64)
                {
                    *n = t;
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(tidy_numbers),
        serde_json::Value::Object(map) => map.values_mut().for_each(tidy_numbers),
        _ => {}
    }
}

/// One named column.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    /// Header name.
    pub name: String,
    /// Cells.
    pub data: ColumnData,
}

/// The label column of a frame, as class codes.
#[derive(Debug, Clone, PartialEq)]
pub struct Labels {
    /// Header name of the label column.
    pub column: String,
    /// Class index per row.
    pub codes: Vec<u32>,
    /// Class names; code `k` is `classes[k]`. Integer labels `0..k` keep their numeric order, other labels are
    /// sorted by name.
    pub classes: Vec<String>,
}

impl Labels {
    /// Rows per class.
    pub fn counts(&self) -> Vec<usize> {
        let mut counts = vec![0usize; self.classes.len()];
        for &c in &self.codes {
            if let Some(n) = counts.get_mut(c as usize) {
                *n += 1;
            }
        }
        counts
    }
}

/// A dataset with typed columns and an optional label column.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Frame {
    /// Where it was read from (for findings); empty when built in memory.
    pub source: String,
    /// Feature columns in file order (the label column and dropped columns are not among them).
    pub columns: Vec<Column>,
    /// The label column, when one was named.
    pub labels: Option<Labels>,
    /// Number of data rows.
    pub n_rows: usize,
}

impl Frame {
    /// Index of the column named `name`.
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }

    /// The column named `name`.
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// The label codes, when the frame has labels.
    pub fn label_codes(&self) -> Option<&[u32]> {
        self.labels.as_ref().map(|l| l.codes.as_slice())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widened_f32_values_print_as_written() {
        assert_eq!(format_short(0.1f32 as f64), "0.1");
        assert_eq!(format_short(0.0125f32 as f64), "0.0125");
        assert_eq!(format_short(3.0), "3");
        // A genuine f64 that no f32 holds keeps its digits.
        assert_eq!(format_short(0.1), "0.1");
        assert_eq!(format_short(0.123456789012), "0.123456789012");
        let mut v = serde_json::json!({"eps": 0.1f32, "list": [0.05f32, 7], "s": "x"});
        assert_eq!(
            v["eps"].to_string(),
            "0.10000000149011612",
            "serde_json widens f32"
        );
        tidy_numbers(&mut v);
        assert_eq!(v.to_string(), r#"{"eps":0.1,"list":[0.05,7],"s":"x"}"#);
    }

    #[test]
    fn missing_cells_are_reported_per_type() {
        let num = ColumnData::Numeric(vec![1.0, f64::NAN]);
        assert!(!num.is_missing(0));
        assert!(num.is_missing(1));
        assert!(num.is_missing(2), "out of range counts as missing");
        let cat = ColumnData::Categorical {
            codes: vec![0, MISSING_CODE],
            levels: vec!["a".into()],
        };
        assert_eq!(cat.display(0).as_deref(), Some("a"));
        assert_eq!(cat.display(1), None);
        assert_eq!(cat.kind(), ColumnKind::Categorical);
    }

    #[test]
    fn numbers_display_in_their_shortest_form() {
        assert_eq!(format_number(17.0), "17");
        assert_eq!(format_number(0.95), "0.95");
        assert_eq!(format_number(-3.0), "-3");
    }

    #[test]
    fn label_counts_per_class() {
        let l = Labels {
            column: "y".into(),
            codes: vec![0, 1, 1, 1],
            classes: vec!["0".into(), "1".into()],
        };
        assert_eq!(l.counts(), vec![1, 3]);
    }
}
