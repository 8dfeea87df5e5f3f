//! A dataset as model input: the one conversion from a typed [`Frame`] to the dense `f32` [`Table`] that
//! models, attacks and training take.
//!
//! Every command that feeds rows to a model (`assess`, `harden`, `drift --model`, the gateway's reference
//! data) reads the file with [`crate::read_frame`], in the one dialect, and converts here. A model input
//! must be a number in every row: numeric columns convert to `f32`, boolean columns to 0/1, and anything
//! else (a text or date column, a missing cell, a number too large for `f32`) is refused with an error that
//! names the file, the column, the first offending data row and its value, never silently zeroed or skipped,
//! because a zero where a value was missing changes what an attack or a drift test measures.

use std::path::Path;

use aegis_core::{format_timestamp, ColumnData, Frame, Table, MISSING_CODE};

use crate::cell::parse_number;
use crate::error::Error;
use crate::options::ReadOptions;
use crate::read::read_frame;

/// Reads a table file (CSV or Parquet, as [`read_frame`]) and converts it to model input.
///
/// # Errors
///
/// Every error of [`read_frame`], and [`Error::NotModelInput`] for a column a model cannot take.
pub fn read_table(path: &Path, opts: &ReadOptions) -> Result<Table, Error> {
    let frame = read_frame(path, opts)?;
    table_from_frame(&frame, path)
}

/// Converts `frame` (read from `path`) to model input: its feature columns in order, its labels as class
/// indices.
///
/// # Errors
///
/// [`Error::NotModelInput`] naming the first column that is not numeric or boolean, has a missing cell, or
/// holds a number outside the `f32` range.
pub fn table_from_frame(frame: &Frame, path: &Path) -> Result<Table, Error> {
    let n_rows = frame.n_rows;
    let n_cols = frame.columns.len();
    let mut features = vec![0f32; n_rows * n_cols];
    for (j, column) in frame.columns.iter().enumerate() {
        let refuse = |row: usize, detail: String| Error::NotModelInput {
            path: path.to_path_buf(),
            column: column.name.clone(),
            row: row + 1,
            detail,
        };
        let missing = |row: usize| refuse(row, "the cell is missing".into());
        match &column.data {
            ColumnData::Numeric(values) => {
                for (i, &x) in values.iter().enumerate() {
                    if x.is_nan() {
                        return Err(missing(i));
                    }
                    let v = x as f32;
                    if !v.is_finite() {
                        return Err(refuse(i, format!("{x:e} does not fit a 32-bit float")));
                    }
                    features[i * n_cols + j] = v;
                }
            }
            ColumnData::Boolean(values) => {
                for (i, b) in values.iter().enumerate() {
                    let Some(b) = b else {
                        return Err(missing(i));
                    };
                    features[i * n_cols + j] = f32::from(u8::from(*b));
                }
            }
            ColumnData::Categorical { codes, levels } => {
                // The example is the first value that is not a number, the reason the column is text.
                let level = |i: usize| levels.get(codes[i] as usize);
                let present = |i: &usize| codes[*i] != MISSING_CODE;
                let first = (0..codes.len())
                    .filter(present)
                    .find(|&i| level(i).is_some_and(|v| parse_number(v).is_none()))
                    .or_else(|| (0..codes.len()).find(present));
                let shown = first.and_then(level);
                return Err(match (first, shown) {
                    (Some(i), Some(value)) => refuse(i, text_detail(value)),
                    _ => missing(0),
                });
            }
            ColumnData::Text(values) => {
                return Err(match values.iter().position(Option::is_some) {
                    Some(i) => refuse(i, text_detail(values[i].as_deref().unwrap_or(""))),
                    None => missing(0),
                });
            }
            ColumnData::Timestamp(values) => {
                return Err(match values.iter().position(Option::is_some) {
                    Some(i) => refuse(
                        i,
                        format!(
                            "holds dates ({}), not numbers",
                            format_timestamp(values[i].unwrap_or(0))
                        ),
                    ),
                    None => missing(0),
                });
            }
        }
    }
    let (labels, label_column, class_names) = match &frame.labels {
        Some(l) => (
            Some(l.codes.clone()),
            Some(l.column.clone()),
            l.classes.clone(),
        ),
        None => (None, None, Vec::new()),
    };
    Ok(Table {
        columns: frame.columns.iter().map(|c| c.name.clone()).collect(),
        features,
        labels,
        label_column,
        class_names,
    })
}

/// Why a column of words is not model input, with its first value as the example.
fn text_detail(value: &str) -> String {
    let shown: String = value.chars().take(40).collect();
    format!("holds text ({shown:?}), not numbers")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::read::read_frame_bytes;

    fn table(text: &str, opts: &ReadOptions) -> Result<Table, Error> {
        let frame = read_frame_bytes("t.csv", text.as_bytes(), opts)?;
        table_from_frame(&frame, Path::new("t.csv"))
    }

    fn labelled(label: &str) -> ReadOptions {
        ReadOptions {
            label: Some(label.into()),
            ..ReadOptions::default()
        }
    }

    #[test]
    fn reads_numbers_in_every_notation_with_integer_labels() {
        let t = table("a,b,y\n1,2.5,0\n-3e2, .5 ,2\n7,0.1,2\n", &labelled("y")).unwrap();
        assert_eq!(t.columns, vec!["a", "b"]);
        assert_eq!(t.features, vec![1.0, 2.5, -300.0, 0.5, 7.0, 0.1]);
        assert_eq!(t.labels, Some(vec![0, 2, 2]));
        assert_eq!(t.label_column.as_deref(), Some("y"));
        assert_eq!(t.class_names, vec!["0", "1", "2"]);
    }

    #[test]
    fn string_labels_become_sorted_class_names() {
        let t = table("a,y\n1,spam\n2,ham\n3,spam\n4,eggs\n", &labelled("y")).unwrap();
        assert_eq!(t.class_names, vec!["eggs", "ham", "spam"]);
        assert_eq!(t.labels, Some(vec![2, 1, 2, 0]));
    }

    #[test]
    fn sniffed_delimiters_quotes_and_booleans_convert() {
        let t = table(
            "\u{feff}a;\"b; c\";flag\r\n1;2;true\r\n3;\"4\";No\r\n",
            &ReadOptions::default(),
        )
        .unwrap();
        assert_eq!(t.columns, vec!["a", "b; c", "flag"]);
        assert_eq!(t.features, vec![1.0, 2.0, 1.0, 3.0, 4.0, 0.0]);
        assert_eq!(t.labels, None);
    }

    #[test]
    fn dropped_columns_are_ignored_even_when_not_numeric() {
        let opts = ReadOptions {
            drop: vec!["id".into()],
            ..ReadOptions::default()
        };
        let t = table("id,a,b\nx1,1,2\nx2,3,4\n", &opts).unwrap();
        assert_eq!(t.columns, vec!["a", "b"]);
        assert_eq!(t.features, vec![1.0, 2.0, 3.0, 4.0]);
    }

    #[test]
    fn text_dates_missing_and_huge_cells_name_column_row_and_value() {
        let cases = [
            (
                "a,city\n1,Paris\n2,Lyon\n",
                "city",
                1,
                "holds text (\"Paris\")",
            ),
            ("a,b\n1,2\n2,12abc\n", "b", 2, "holds text (\"12abc\")"),
            (
                "a,when\n1,2024-01-02\n",
                "when",
                1,
                "holds dates (2024-01-02T00:00:00Z)",
            ),
            ("a,b\n1,2\n2,NA\n3,4\n", "b", 2, "the cell is missing"),
            (
                "a,b\n1,2\n2,1e39\n",
                "b",
                2,
                "1e39 does not fit a 32-bit float",
            ),
            ("a,b\n1,\n2,\n", "b", 1, "the cell is missing"),
        ];
        for (text, column, row, detail) in cases {
            let e = table(text, &ReadOptions::default()).unwrap_err();
            let Error::NotModelInput {
                column: c, row: r, ..
            } = &e
            else {
                panic!("{text}: {e}");
            };
            assert_eq!((c.as_str(), *r), (column, row), "{text}: {e}");
            let msg = e.to_string();
            assert!(msg.starts_with("t.csv, column"), "{msg}");
            assert!(msg.contains(detail), "{text}: {msg}");
        }
    }

    #[test]
    fn a_missing_label_names_its_line() {
        let e = table("a,y\n1,0\n2,\n", &labelled("y")).unwrap_err();
        assert!(matches!(e, Error::EmptyLabel { line: 3, .. }), "{e}");
    }

    #[test]
    fn parquet_and_csv_give_the_same_table() {
        // The Parquet side is covered in `parquet.rs`; here a CSV with every numeric notation round-trips
        // through the frame unchanged (f64 → f32 is the only rounding).
        let t = table("a\n0.1\n1e-7\n16777217\n", &ReadOptions::default()).unwrap();
        assert_eq!(t.features, vec![0.1f32, 1e-7, 16_777_216.0]);
    }
}
