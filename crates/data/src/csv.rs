//! CSV files into a [`Table`]: a header row, numeric feature columns, and an optional label column.
//!
//! Datasets come from users and from third parties, so the reader is strict about content and bounded in
//! size: every feature cell must be a finite number (a silently skipped or zeroed cell would skew every
//! statistic computed downstream), rows must all have the header's width, and the file is never read past
//! [`CsvOptions::max_bytes`]. Each refusal names the file, the 1-based line and the column.
//!
//! Labels are either class indices (every label a non-negative integer: class `k` is index `k`) or class
//! names (anything else: classes are the sorted unique names, index = position in that order).

use std::collections::BTreeSet;
use std::fs::File;
use std::io::Read;
use std::path::Path;

use aegis_core::Table;

use crate::error::Error;

/// The largest integer label accepted as a class index; larger ones would make `class_names` huge.
const MAX_CLASS_INDEX: u32 = 65_535;

/// How to read a CSV dataset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvOptions {
    /// Name of the label column; `None` reads a table without labels.
    pub label: Option<String>,
    /// Columns to ignore, such as row ids. Each must exist in the header.
    pub drop: Vec<String>,
    /// Read only the first this many data rows (a sample of a large file); `None` reads them all.
    pub max_rows: Option<usize>,
    /// Refuse files larger than this many bytes; nothing past it is ever read.
    pub max_bytes: u64,
}

impl CsvOptions {
    /// The default byte bound: 1 GiB.
    pub const DEFAULT_MAX_BYTES: u64 = 1 << 30;
}

impl Default for CsvOptions {
    fn default() -> Self {
        Self {
            label: None,
            drop: Vec::new(),
            max_rows: None,
            max_bytes: Self::DEFAULT_MAX_BYTES,
        }
    }
}

/// Reads a CSV file with a header row into a [`Table`].
///
/// Feature columns are every column except the label and the dropped ones, in header order. Cells may be
/// integers, decimals or scientific notation, with surrounding whitespace; empty, `NaN`, infinite or
/// non-numeric cells are an error naming the file, line, column and value.
///
/// # Errors
///
/// [`Error::TooLarge`] when the file exceeds `opts.max_bytes`; [`Error::Empty`], [`Error::NoRows`],
/// [`Error::DuplicateColumn`], [`Error::MissingColumn`], [`Error::NoFeatures`], [`Error::RaggedRow`],
/// [`Error::NotANumber`], [`Error::EmptyLabel`], [`Error::LabelTooLarge`] for content problems;
/// [`Error::Io`] and [`Error::Csv`] when the file cannot be read or is not CSV.
pub fn read_csv(path: &Path, opts: &CsvOptions) -> Result<Table, Error> {
    let io_err = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let too_large = || Error::TooLarge {
        path: path.to_path_buf(),
        limit: opts.max_bytes,
    };
    let csv_err = |e: ::csv::Error| {
        if !e.is_io_error() {
            return Error::Csv {
                path: path.to_path_buf(),
                source: e,
            };
        }
        let source = match e.into_kind() {
            ::csv::ErrorKind::Io(source) => source,
            // `is_io_error` said it is one; this arm only keeps the match total.
            other => std::io::Error::other(format!("{other:?}")),
        };
        Error::Io {
            path: path.to_path_buf(),
            source,
        }
    };

    let file = File::open(path).map_err(io_err)?;
    let size = file.metadata().map_err(io_err)?.len();
    if size > opts.max_bytes {
        return Err(too_large());
    }
    // The file may grow after the size check, and special files report no size: read at most one byte past
    // the bound, and check the position the parser has reached after every record.
    let reader = file.take(opts.max_bytes.saturating_add(1));
    let mut rdr = ::csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .trim(::csv::Trim::All)
        .from_reader(reader);

    let header: Vec<String> = rdr
        .headers()
        .map_err(csv_err)?
        .iter()
        .map(str::to_owned)
        .collect();
    if rdr.position().byte() > opts.max_bytes {
        return Err(too_large());
    }
    if header.is_empty() || header.iter().all(String::is_empty) {
        return Err(Error::Empty {
            path: path.to_path_buf(),
        });
    }
    let layout = Layout::new(path, &header, opts)?;

    let mut features = Vec::new();
    let mut raw_labels: Vec<(u64, String)> = Vec::new();
    let mut record = ::csv::StringRecord::new();
    let mut n_rows = 0usize;
    while opts.max_rows.is_none_or(|m| n_rows < m) {
        let more = rdr.read_record(&mut record).map_err(csv_err)?;
        if rdr.position().byte() > opts.max_bytes {
            return Err(too_large());
        }
        if !more {
            break;
        }
        // `position` is always set for records the reader returns; the fallback only keeps this panic-free.
        let line = record
            .position()
            .map_or(n_rows as u64 + 2, ::csv::Position::line);
        if record.len() != header.len() {
            return Err(Error::RaggedRow {
                path: path.to_path_buf(),
                line,
                expected: header.len(),
                found: record.len(),
            });
        }
        for &j in &layout.features {
            let cell = record.get(j).unwrap_or("");
            features.push(parse_cell(cell).map_err(|finite_only| Error::NotANumber {
                path: path.to_path_buf(),
                line,
                column: header[j].clone(),
                value: cell.to_owned(),
                finite_only,
            })?);
        }
        if let Some(j) = layout.label {
            let cell = record.get(j).unwrap_or("");
            if cell.is_empty() {
                return Err(Error::EmptyLabel {
                    path: path.to_path_buf(),
                    line,
                    column: header[j].clone(),
                });
            }
            raw_labels.push((line, cell.to_owned()));
        }
        n_rows += 1;
    }
    if n_rows == 0 {
        return Err(Error::NoRows {
            path: path.to_path_buf(),
        });
    }

    let (labels, class_names) = match layout.label {
        Some(j) => {
            let (labels, names) = encode_labels(path, &header[j], &raw_labels)?;
            (Some(labels), names)
        }
        None => (None, Vec::new()),
    };
    Ok(Table {
        columns: layout.features.iter().map(|&j| header[j].clone()).collect(),
        features,
        labels,
        label_column: layout.label.map(|j| header[j].clone()),
        class_names,
    })
}

/// Which header positions are features and which is the label.
struct Layout {
    features: Vec<usize>,
    label: Option<usize>,
}

impl Layout {
    fn new(path: &Path, header: &[String], opts: &CsvOptions) -> Result<Self, Error> {
        let mut seen = BTreeSet::new();
        for name in header {
            if !seen.insert(name.as_str()) {
                return Err(Error::DuplicateColumn {
                    path: path.to_path_buf(),
                    column: name.clone(),
                });
            }
        }
        let find = |role: &'static str, name: &str| {
            header
                .iter()
                .position(|h| h == name)
                .ok_or_else(|| Error::MissingColumn {
                    path: path.to_path_buf(),
                    role,
                    column: name.to_owned(),
                    available: header.to_vec(),
                })
        };
        let label = opts
            .label
            .as_deref()
            .map(|name| find("label", name))
            .transpose()?;
        let mut dropped = vec![false; header.len()];
        for name in &opts.drop {
            dropped[find("drop", name)?] = true;
        }
        if let Some(j) = label {
            dropped[j] = true;
        }
        let features: Vec<usize> = (0..header.len()).filter(|&j| !dropped[j]).collect();
        if features.is_empty() {
            return Err(Error::NoFeatures {
                path: path.to_path_buf(),
            });
        }
        Ok(Self { features, label })
    }
}

/// A feature cell as a finite `f32`; `Err(true)` when it parses but is not finite, `Err(false)` otherwise.
fn parse_cell(cell: &str) -> Result<f32, bool> {
    // The reader already trims; trimming again keeps this correct on its own.
    match cell.trim().parse::<f32>() {
        Ok(v) if v.is_finite() => Ok(v),
        Ok(_) => Err(true),
        Err(_) => Err(false),
    }
}

/// Class indices and class names for the raw label cells (each with its line number).
fn encode_labels(
    path: &Path,
    column: &str,
    raw: &[(u64, String)],
) -> Result<(Vec<u32>, Vec<String>), Error> {
    let as_ints: Option<Vec<u32>> = raw.iter().map(|(_, s)| s.parse::<u32>().ok()).collect();
    if let Some(ints) = as_ints {
        let mut max = 0;
        for (&v, (line, _)) in ints.iter().zip(raw) {
            if v > MAX_CLASS_INDEX {
                return Err(Error::LabelTooLarge {
                    path: path.to_path_buf(),
                    line: *line,
                    column: column.to_owned(),
                    value: v,
                    max: MAX_CLASS_INDEX,
                });
            }
            max = max.max(v);
        }
        let names = (0..=max).map(|k| k.to_string()).collect();
        return Ok((ints, names));
    }
    let names: Vec<String> = raw
        .iter()
        .map(|(_, s)| s.as_str())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .map(str::to_owned)
        .collect();
    let mut labels = Vec::with_capacity(raw.len());
    for (_, s) in raw {
        // Every label is in `names`, and there are fewer names than rows, and far fewer rows than `u32::MAX`
        // in a file within the byte bound; the fallback only keeps this panic-free.
        let index = names.binary_search_by(|n| n.as_str().cmp(s)).unwrap_or(0);
        labels.push(u32::try_from(index).unwrap_or(u32::MAX));
    }
    Ok((labels, names))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn csv_file(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::Builder::new().suffix(".csv").tempfile().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f.flush().unwrap();
        f
    }

    fn labelled(label: &str) -> CsvOptions {
        CsvOptions {
            label: Some(label.into()),
            ..CsvOptions::default()
        }
    }

    fn err(text: &str, opts: &CsvOptions) -> (Error, String, String) {
        let f = csv_file(text);
        let e = read_csv(f.path(), opts).unwrap_err();
        let msg = e.to_string();
        (e, msg, f.path().display().to_string())
    }

    #[test]
    fn reads_numbers_in_every_notation_with_integer_labels() {
        let f = csv_file("a, b ,y\n1, 2.5 ,0\n-3e2,  .5,2\n 7 ,1E-1, 2 \n");
        let t = read_csv(f.path(), &labelled("y")).unwrap();
        assert_eq!(t.columns, vec!["a", "b"]);
        assert_eq!(t.features, vec![1.0, 2.5, -300.0, 0.5, 7.0, 0.1]);
        assert_eq!(t.labels, Some(vec![0, 2, 2]));
        assert_eq!(t.label_column.as_deref(), Some("y"));
        // Integer labels: class k is index k, and every index up to the largest has a name.
        assert_eq!(t.class_names, vec!["0", "1", "2"]);
    }

    #[test]
    fn string_labels_become_sorted_class_names() {
        let f = csv_file("x,y\n1,spam\n2,ham\n3,spam\n4,eggs\n");
        let t = read_csv(f.path(), &labelled("y")).unwrap();
        assert_eq!(t.class_names, vec!["eggs", "ham", "spam"]);
        assert_eq!(t.labels, Some(vec![2, 1, 2, 0]));
    }

    #[test]
    fn labels_with_a_negative_or_fractional_value_are_names_not_indices() {
        let f = csv_file("x,y\n1,-1\n2,1\n3,0.5\n");
        let t = read_csv(f.path(), &labelled("y")).unwrap();
        assert_eq!(t.class_names, vec!["-1", "0.5", "1"]);
        assert_eq!(t.labels, Some(vec![0, 2, 1]));
    }

    #[test]
    fn without_a_label_every_column_is_a_feature() {
        let f = csv_file("a,b\n1,2\n3,4\n");
        let t = read_csv(f.path(), &CsvOptions::default()).unwrap();
        assert_eq!(t.columns, vec!["a", "b"]);
        assert_eq!(t.labels, None);
        assert_eq!(t.label_column, None);
        assert!(t.class_names.is_empty());
    }

    #[test]
    fn dropped_columns_are_ignored_even_when_not_numeric() {
        let f = csv_file("id,a,y,b\nrow-1,1,0,2\nrow-2,3,1,4\n");
        let opts = CsvOptions {
            label: Some("y".into()),
            drop: vec!["id".into()],
            ..CsvOptions::default()
        };
        let t = read_csv(f.path(), &opts).unwrap();
        assert_eq!(t.columns, vec!["a", "b"]);
        assert_eq!(t.features, vec![1.0, 2.0, 3.0, 4.0]);
    }

    #[test]
    fn quoted_fields_bom_and_crlf_are_accepted() {
        let f = csv_file("\u{feff}\"a\",\"b, c\"\r\n\"1\",\" 2 \"\r\n");
        let t = read_csv(f.path(), &CsvOptions::default()).unwrap();
        assert_eq!(t.columns, vec!["a", "b, c"]);
        assert_eq!(t.features, vec![1.0, 2.0]);
    }

    #[test]
    fn max_rows_reads_only_a_prefix() {
        let f = csv_file("a\n1\n2\n3\nnot-read\n");
        let opts = CsvOptions {
            max_rows: Some(3),
            ..CsvOptions::default()
        };
        let t = read_csv(f.path(), &opts).unwrap();
        assert_eq!(t.features, vec![1.0, 2.0, 3.0]);
        // Without the bound the bad fourth row is reached.
        assert!(read_csv(f.path(), &CsvOptions::default()).is_err());
    }

    #[test]
    fn non_numeric_cell_names_file_line_column_and_value() {
        let (e, msg, path) = err("id,amount\n1,2\n2,abc\n", &CsvOptions::default());
        assert!(matches!(
            e,
            Error::NotANumber {
                line: 3,
                finite_only: false,
                ..
            }
        ));
        assert_eq!(
            msg,
            format!("{path} line 3, column \"amount\": \"abc\" is not a number")
        );
    }

    #[test]
    fn empty_nan_and_infinite_cells_are_refused() {
        let (_, msg, path) = err("a,b\n1,\n", &CsvOptions::default());
        assert_eq!(
            msg,
            format!("{path} line 2, column \"b\": \"\" is not a number")
        );
        let (_, msg, _) = err("a,b\n1,2\n1,NaN\n", &CsvOptions::default());
        assert!(
            msg.ends_with("line 3, column \"b\": \"NaN\" is not a finite number"),
            "{msg}"
        );
        let (_, msg, _) = err("a,b\ninf,2\n", &CsvOptions::default());
        assert!(
            msg.contains("column \"a\": \"inf\" is not a finite number"),
            "{msg}"
        );
        // Finite in decimal, but beyond f32.
        let (e, _, _) = err("a\n1e39\n", &CsvOptions::default());
        assert!(matches!(
            e,
            Error::NotANumber {
                finite_only: true,
                ..
            }
        ));
    }

    #[test]
    fn line_numbers_count_multi_line_quoted_fields() {
        let (e, _, _) = err(
            "a,note\n1,\"two\nlines\"\nx,ok\n",
            &CsvOptions {
                drop: vec!["note".into()],
                ..CsvOptions::default()
            },
        );
        assert!(matches!(e, Error::NotANumber { line: 4, .. }), "{e}");
    }

    #[test]
    fn missing_label_column_lists_the_available_ones() {
        let (e, msg, path) = err("a,b\n1,2\n", &labelled("target"));
        assert!(matches!(e, Error::MissingColumn { role: "label", .. }));
        assert_eq!(
            msg,
            format!("{path}: label column \"target\" not found; available columns: \"a\", \"b\"")
        );
    }

    #[test]
    fn unknown_drop_column_is_an_error() {
        let opts = CsvOptions {
            drop: vec!["id".into()],
            ..CsvOptions::default()
        };
        let (e, msg, _) = err("a,b\n1,2\n", &opts);
        assert!(matches!(e, Error::MissingColumn { role: "drop", .. }));
        assert!(msg.contains("drop column \"id\" not found"), "{msg}");
    }

    #[test]
    fn ragged_rows_name_their_line() {
        let (e, msg, path) = err("a,b\n1,2\n3\n", &CsvOptions::default());
        assert!(matches!(
            e,
            Error::RaggedRow {
                line: 3,
                expected: 2,
                found: 1,
                ..
            }
        ));
        assert_eq!(
            msg,
            format!("{path} line 3: row has 1 fields, the header has 2")
        );
        let (e, _, _) = err("a,b\n1,2,3\n", &CsvOptions::default());
        assert!(matches!(
            e,
            Error::RaggedRow {
                line: 2,
                found: 3,
                ..
            }
        ));
    }

    #[test]
    fn empty_file_and_header_only_file_are_refused() {
        let (e, msg, _) = err("", &CsvOptions::default());
        assert!(matches!(e, Error::Empty { .. }));
        assert!(msg.contains("is empty: a header row"), "{msg}");
        let (e, _, _) = err("\n\n", &CsvOptions::default());
        assert!(matches!(e, Error::Empty { .. }));
        let (e, msg, _) = err("a,b\n", &CsvOptions::default());
        assert!(matches!(e, Error::NoRows { .. }));
        assert!(msg.ends_with("has a header row but no data rows"), "{msg}");
    }

    #[test]
    fn duplicate_header_names_are_refused() {
        let (e, msg, _) = err("a,b,a\n1,2,3\n", &CsvOptions::default());
        assert!(matches!(e, Error::DuplicateColumn { .. }));
        assert!(msg.contains("column \"a\" appears more than once"), "{msg}");
    }

    #[test]
    fn label_only_file_has_no_features() {
        let (e, _, _) = err("y\n1\n", &labelled("y"));
        assert!(matches!(e, Error::NoFeatures { .. }));
    }

    #[test]
    fn empty_and_huge_labels_are_refused() {
        let (e, msg, path) = err("a,y\n1,1\n2,\n", &labelled("y"));
        assert!(matches!(e, Error::EmptyLabel { line: 3, .. }));
        assert_eq!(msg, format!("{path} line 3: label column \"y\" is empty"));
        let (e, _, _) = err("a,y\n1,1\n2,4000000000\n", &labelled("y"));
        assert!(matches!(
            e,
            Error::LabelTooLarge {
                line: 3,
                value: 4_000_000_000,
                ..
            }
        ));
        // The largest accepted index is fine.
        let f = csv_file("a,y\n1,65535\n");
        assert_eq!(
            read_csv(f.path(), &labelled("y"))
                .unwrap()
                .class_names
                .len(),
            65_536
        );
    }

    #[test]
    fn files_over_the_byte_bound_are_refused_before_reading() {
        let text = "a,b\n1,2\n3,4\n";
        let opts = CsvOptions {
            max_bytes: 10,
            ..CsvOptions::default()
        };
        let (e, msg, path) = err(text, &opts);
        assert!(matches!(e, Error::TooLarge { limit: 10, .. }));
        assert_eq!(msg, format!("{path} is larger than the limit of 10 bytes"));
        // Exactly at the bound is accepted.
        let f = csv_file(text);
        let opts = CsvOptions {
            max_bytes: text.len() as u64,
            ..CsvOptions::default()
        };
        assert_eq!(read_csv(f.path(), &opts).unwrap().n_rows(), 2);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn endless_streams_are_cut_at_the_byte_bound() {
        // A character device reports size 0, so only the read bound stops it.
        let opts = CsvOptions {
            max_bytes: 4096,
            ..CsvOptions::default()
        };
        let e = read_csv(Path::new("/dev/zero"), &opts).unwrap_err();
        assert!(matches!(e, Error::TooLarge { limit: 4096, .. }), "{e}");
    }

    #[test]
    fn missing_file_is_an_io_error_naming_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nope.csv");
        let e = read_csv(&path, &CsvOptions::default()).unwrap_err();
        assert!(matches!(e, Error::Io { .. }));
        assert!(e.to_string().contains("nope.csv"));
    }

    #[test]
    fn invalid_utf8_is_a_csv_error() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(b"a\n1\n\xff\xfe\n").unwrap();
        f.flush().unwrap();
        let e = read_csv(f.path(), &CsvOptions::default()).unwrap_err();
        assert!(matches!(e, Error::Csv { .. }), "{e}");
    }
}
