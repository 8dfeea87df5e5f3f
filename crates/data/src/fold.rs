//! Streaming a REFERENCE / CURRENT pair of tables column by column into per-column summaries (the drift
//! accumulators of `aegis-monitor`, through [`aegis_core::ColumnSummary`]): one pass over each file, in
//! constant memory beyond the summaries.
//!
//! Each file is read in chunks of whole rows by the one CSV reader ([`crate::CsvChunks`]); the rows of a chunk
//! are split into blocks that are parsed in parallel (rayon) into partial summaries, folded in block order so
//! the result does not depend on thread timing. Memory is bounded by the summaries plus one chunk. Column kinds
//! come from the data schema or are inferred from the reference's first chunk: numeric when every present
//! cell parses as a number, categorical otherwise. Cells are parsed in the one dialect ([`crate::cell`]:
//! numbers, and through a schema's [`ColumnSpec`] timestamps and booleans), with the same missing markers as
//! every other reader.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use aegis_core::{ColumnKind, ColumnSummary, StreamCell, SummaryKind};
use rayon::prelude::*;

use crate::columns::{Chunk, ChunkOptions, CsvChunks, Field};
use crate::error::Error;
use crate::options::ReadOptions;
use crate::spec::{CellValue, ColumnSpec};

/// How to read the pair and which columns to compare.
#[derive(Debug, Clone, Default)]
pub struct FoldOptions {
    /// Field delimiter (default: sniffed from the header).
    pub delimiter: Option<u8>,
    /// Columns left out (ids).
    pub drop: Vec<String>,
    /// The label column, left out of the feature comparison.
    pub label: Option<String>,
    /// Cell values that mean "missing" (default: [`ReadOptions::DEFAULT_MISSING`]).
    pub missing: Option<Vec<String>>,
    /// A data schema (`aegis schema infer`) fixing each column's kind; inferred otherwise.
    pub schema: Option<PathBuf>,
}

/// The summaries of one file's columns.
#[derive(Debug, Clone)]
pub struct Folded<S> {
    /// The file.
    pub source: PathBuf,
    /// Data rows read.
    pub rows: u64,
    /// Each compared column's name and summary, in the reference file's order.
    pub columns: Vec<(String, S)>,
}

/// Read both files (same columns by name, in any order) into one summary per compared column, each made by
/// `make` from its kind and name: (reference, current).
///
/// # Errors
///
/// Every reading error of [`CsvChunks`]; [`Error::NoRows`] for a file without data rows;
/// [`Error::Mismatch`] when the headers differ (beyond `drop` and `label`) or a `drop`/`label` column is in
/// neither file; [`Error::NoFeatures`] when nothing is left to compare.
pub fn fold_pair<S: ColumnSummary>(
    ref_path: &Path,
    cur_path: &Path,
    opts: &FoldOptions,
    make: impl Fn(SummaryKind, &str) -> S,
) -> Result<(Folded<S>, Folded<S>), Error> {
    let chunk_opts = ChunkOptions {
        delimiter: opts.delimiter,
        ..ChunkOptions::default()
    };
    let mut reference = CsvChunks::open(ref_path, &chunk_opts)?;
    let mut current = CsvChunks::open(cur_path, &chunk_opts)?;
    let first = reference.next_chunk()?.ok_or_else(|| no_rows(ref_path))?;
    let plan = plan(opts, (ref_path, cur_path), &reference, &current, &first)?;
    let new_set = |path: &Path| Folded {
        source: path.to_path_buf(),
        rows: 0,
        columns: plan
            .columns
            .iter()
            .map(|(_, name, p)| (name.clone(), make(kind_of(p), name)))
            .collect::<Vec<_>>(),
    };

    let mut ref_set = new_set(ref_path);
    // Rows per byte from the first chunk, to size the numeric columns once (5% slack).
    let bytes_per_row = (first.byte_len() as f64 / first.len().max(1) as f64).max(1.0);
    // Never more than the file could hold: a number takes at least 2 bytes (a digit and a delimiter).
    let numeric_columns = plan
        .columns
        .iter()
        .filter(|(_, _, p)| kind_of(p) == SummaryKind::Numeric)
        .count()
        .max(1) as u64;
    let estimate = |path: &Path| {
        std::fs::metadata(path)
            .map(|m| {
                let guess = (m.len() as f64 / bytes_per_row * 1.05) as u64;
                guess.min(m.len() / (2 * numeric_columns)) as usize
            })
            .unwrap_or(0)
    };
    reserve(&mut ref_set, estimate(ref_path));
    absorb_chunk(&mut ref_set, &first, &plan)?;
    drop(first);
    while let Some(chunk) = reference.next_chunk()? {
        absorb_chunk(&mut ref_set, &chunk, &plan)?;
    }
    // The current file's columns, in the reference's order, found by name.
    let cur_plan = Plan {
        columns: plan
            .columns
            .iter()
            .map(|(_, name, p)| {
                let idx = current
                    .header()
                    .iter()
                    .position(|h| h == name)
                    .unwrap_or(usize::MAX);
                (idx, name.clone(), p.clone())
            })
            .collect(),
        missing: plan.missing.clone(),
    };
    let mut cur_set = new_set(cur_path);
    reserve(&mut cur_set, estimate(cur_path));
    while let Some(chunk) = current.next_chunk()? {
        absorb_chunk(&mut cur_set, &chunk, &cur_plan)?;
    }
    if cur_set.rows == 0 {
        return Err(no_rows(cur_path));
    }
    Ok((ref_set, cur_set))
}

fn reserve<S: ColumnSummary>(set: &mut Folded<S>, rows: usize) {
    for (_, summary) in &mut set.columns {
        summary.reserve(rows);
    }
}

fn no_rows(path: &Path) -> Error {
    Error::NoRows {
        path: path.to_path_buf(),
    }
}

/// How a column's cells are read.
#[derive(Debug, Clone)]
enum Parser {
    Number,
    /// Timestamps (as seconds) and booleans go through the schema's own cell parser.
    Spec(ColumnSpec),
    Category,
    Text,
}

struct Plan {
    /// (file column index, name, parser) of each compared column, in reference order.
    columns: Vec<(usize, String, Parser)>,
    missing: HashSet<String>,
}

fn kind_of(p: &Parser) -> SummaryKind {
    match p {
        Parser::Number => SummaryKind::Numeric,
        Parser::Spec(spec) if spec.kind == ColumnKind::Timestamp => SummaryKind::Numeric,
        Parser::Spec(_) | Parser::Category => SummaryKind::Categorical,
        Parser::Text => SummaryKind::Text,
    }
}

/// Check both headers, decide each column's parser from the schema or the reference's first chunk.
fn plan(
    opts: &FoldOptions,
    (ref_path, cur_path): (&Path, &Path),
    reference: &CsvChunks,
    current: &CsvChunks,
    first: &Chunk,
) -> Result<Plan, Error> {
    let rh = reference.header();
    let ch = current.header();
    let mut excluded: Vec<&str> = opts.drop.iter().map(String::as_str).collect();
    if let Some(l) = &opts.label {
        excluded.push(l);
    }
    for name in &excluded {
        if !rh.iter().any(|h| h == name) && !ch.iter().any(|h| h == name) {
            return Err(Error::Mismatch {
                reference: ref_path.to_path_buf(),
                current: cur_path.to_path_buf(),
                reason: format!("column {name:?} (--drop/--label) is in neither"),
            });
        }
    }
    let keep = |h: &&String| !excluded.contains(&h.as_str());
    let only_ref: Vec<&String> = rh.iter().filter(keep).filter(|h| !ch.contains(h)).collect();
    let only_cur: Vec<&String> = ch.iter().filter(keep).filter(|h| !rh.contains(h)).collect();
    if !only_ref.is_empty() || !only_cur.is_empty() {
        let mut why = Vec::new();
        if !only_ref.is_empty() {
            why.push(format!(
                "only in {}: {}",
                ref_path.display(),
                list(&only_ref)
            ));
        }
        if !only_cur.is_empty() {
            why.push(format!(
                "only in {}: {}",
                cur_path.display(),
                list(&only_cur)
            ));
        }
        return Err(Error::Mismatch {
            reference: ref_path.to_path_buf(),
            current: cur_path.to_path_buf(),
            reason: format!(
                "the headers differ ({}); use --drop for columns to leave out",
                why.join("; ")
            ),
        });
    }
    let missing: HashSet<String> = match &opts.missing {
        Some(m) => m.iter().map(|s| s.trim().to_owned()).collect(),
        None => ReadOptions::DEFAULT_MISSING
            .iter()
            .map(|s| (*s).to_owned())
            .collect(),
    };
    let specs: BTreeMap<String, ColumnSpec> = match &opts.schema {
        Some(path) => crate::dataset_schema::load_data_schema(path)?
            .columns
            .into_iter()
            .map(|c| (c.name.clone(), c))
            .collect(),
        None => BTreeMap::new(),
    };
    let mut columns = Vec::new();
    let mut fields: Vec<Field<'_>> = Vec::new();
    let mut numeric = vec![true; rh.len()];
    let mut present = vec![0usize; rh.len()];
    for i in 0..first.len() {
        first.fields(i, &mut fields)?;
        for (j, f) in fields.iter().enumerate() {
            if !numeric[j] {
                continue;
            }
            let text = f.text();
            if missing.contains(text.as_ref()) {
                continue;
            }
            present[j] += 1;
            if f.number().is_none() {
                numeric[j] = false;
            }
        }
    }
    for (j, name) in rh.iter().enumerate() {
        if excluded.contains(&name.as_str()) {
            continue;
        }
        let parser = match specs.get(name) {
            Some(spec) => match spec.kind {
                ColumnKind::Numeric => Parser::Number,
                ColumnKind::Timestamp | ColumnKind::Boolean => Parser::Spec(spec.clone()),
                ColumnKind::Categorical => Parser::Category,
                ColumnKind::Text => Parser::Text,
            },
            None if numeric[j] && present[j] > 0 => Parser::Number,
            None => Parser::Category,
        };
        columns.push((j, name.clone(), parser));
    }
    if columns.is_empty() {
        return Err(Error::NoFeatures {
            path: ref_path.to_path_buf(),
        });
    }
    Ok(Plan { columns, missing })
}

fn list(names: &[&String]) -> String {
    names
        .iter()
        .take(12)
        .map(|n| format!("{n:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Parse one chunk in parallel blocks into partial summaries and fold them into `set` in block order.
fn absorb_chunk<S: ColumnSummary>(
    set: &mut Folded<S>,
    chunk: &Chunk,
    plan: &Plan,
) -> Result<(), Error> {
    let n = chunk.len();
    let blocks = (rayon::current_num_threads() * 2).clamp(1, 64);
    let per = n.div_ceil(blocks).max(1);
    let template: Vec<S> = set.columns.iter().map(|(_, a)| a.empty_like()).collect();
    let numeric_missing = plan.missing.iter().any(|m| m.parse::<f64>().is_ok());
    let partials: Vec<Result<Vec<S>, Error>> = (0..n.div_ceil(per))
        .into_par_iter()
        .map(|b| {
            let mut parts: Vec<S> = template.iter().map(ColumnSummary::empty_like).collect();
            let mut fields: Vec<Field<'_>> = Vec::new();
            for i in b * per..((b + 1) * per).min(n) {
                chunk.fields(i, &mut fields)?;
                for (part, (idx, _, parser)) in parts.iter_mut().zip(&plan.columns) {
                    match fields.get(*idx) {
                        Some(f) => feed(part, parser, f, &plan.missing, numeric_missing),
                        None => part.push(StreamCell::Missing),
                    }
                }
            }
            Ok(parts)
        })
        .collect();
    for partial in partials {
        for ((_, summary), p) in set.columns.iter_mut().zip(partial?) {
            summary.absorb(p);
        }
    }
    set.rows += n as u64;
    Ok(())
}

/// One field, parsed per its column's parser, into its summary.
fn feed<S: ColumnSummary>(
    summary: &mut S,
    parser: &Parser,
    f: &Field<'_>,
    missing: &HashSet<String>,
    numeric_missing: bool,
) {
    if let Parser::Number = parser {
        match f.number() {
            Some(v) if v.is_nan() => summary.push(StreamCell::Missing),
            // A marker that is a number (`--missing -999`) is missing too, as in every other reader.
            Some(_) if numeric_missing && missing.contains(f.text().as_ref()) => {
                summary.push(StreamCell::Missing)
            }
            Some(v) => summary.push(StreamCell::Number(v)),
            None if missing.contains(f.text().as_ref()) => summary.push(StreamCell::Missing),
            None => summary.push(StreamCell::Invalid),
        }
        return;
    }
    let text = f.text();
    if missing.contains(text.as_ref()) {
        summary.push(StreamCell::Missing);
        return;
    }
    let cell = match parser {
        Parser::Spec(spec) => match spec.parse_cell(Some(text.as_ref())) {
            Ok(CellValue::Timestamp(t)) => StreamCell::Number(t as f64),
            Ok(CellValue::Number(v)) => StreamCell::Number(v),
            Ok(value) => match value.canonical() {
                Some(c) => return summary.push(StreamCell::Category(&c)),
                None => StreamCell::Missing,
            },
            Err(_) if spec.kind == ColumnKind::Timestamp => StreamCell::Invalid,
            Err(_) => StreamCell::Category(text.as_ref()),
        },
        Parser::Category => StreamCell::Category(text.as_ref()),
        Parser::Text | Parser::Number => StreamCell::Text(text.as_ref()),
    };
    summary.push(cell);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(reference: &str, current: &str) -> (tempfile::TempDir, PathBuf, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let (r, c) = (dir.path().join("ref.csv"), dir.path().join("cur.csv"));
        std::fs::write(&r, reference).unwrap();
        std::fs::write(&c, current).unwrap();
        (dir, r, c)
    }

    fn options() -> FoldOptions {
        FoldOptions::default()
    }

    /// A summary that records its kind and every cell, to see what the reader handed out.
    #[derive(Debug, Clone, PartialEq)]
    struct Cells(SummaryKind, Vec<String>);

    impl ColumnSummary for Cells {
        fn push(&mut self, cell: StreamCell<'_>) {
            self.1.push(match cell {
                StreamCell::Missing => "missing".into(),
                StreamCell::Invalid => "invalid".into(),
                StreamCell::Number(x) => format!("n:{x}"),
                StreamCell::Category(c) => format!("c:{c}"),
                StreamCell::Text(t) => format!("t:{t}"),
            });
        }
        fn empty_like(&self) -> Self {
            Cells(self.0, Vec::new())
        }
        fn absorb(&mut self, other: Self) {
            self.1.extend(other.1);
        }
    }

    fn read_pair(
        r: &Path,
        c: &Path,
        opts: &FoldOptions,
    ) -> Result<(Folded<Cells>, Folded<Cells>), Error> {
        fold_pair(r, c, opts, |kind, _| Cells(kind, Vec::new()))
    }

    #[test]
    fn kinds_are_inferred_and_columns_matched_by_name() {
        let (_d, r, c) = pair(
            "x,colour,y\n1,red,0\n2.5,blue,1\nNA,red,0\n",
            "colour,x,y\ngreen,3,1\nred,4,0\n",
        );
        let opts = FoldOptions {
            label: Some("y".into()),
            ..options()
        };
        let (rs, cs) = read_pair(&r, &c, &opts).unwrap();
        assert_eq!((rs.rows, cs.rows), (3, 2));
        let kinds: Vec<(&str, SummaryKind)> =
            rs.columns.iter().map(|(n, a)| (n.as_str(), a.0)).collect();
        assert_eq!(
            kinds,
            [
                ("x", SummaryKind::Numeric),
                ("colour", SummaryKind::Categorical)
            ]
        );
        assert_eq!(rs.columns[0].1 .1, ["n:1", "n:2.5", "missing"]);
        assert_eq!(cs.columns[1].1 .1, ["c:green", "c:red"]);
        // The current file's columns follow the reference's order whatever its own.
        let names: Vec<&str> = cs.columns.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["x", "colour"]);
    }

    #[test]
    fn a_numeric_missing_marker_is_missing_in_numeric_columns() {
        let (_d, r, c) = pair("x\n1\n-999\n2\n", "x\n-999\n3\n");
        let opts = FoldOptions {
            missing: Some(vec!["-999".into()]),
            ..options()
        };
        let (rs, cs) = read_pair(&r, &c, &opts).unwrap();
        assert_eq!(rs.columns[0].1 .1, ["n:1", "missing", "n:2"]);
        assert_eq!(cs.columns[0].1 .1, ["missing", "n:3"]);
        // Without the marker, -999 is a number.
        let (rs, _) = read_pair(&r, &c, &options()).unwrap();
        assert_eq!(rs.columns[0].1 .1, ["n:1", "n:-999", "n:2"]);
    }

    #[test]
    fn mismatched_headers_and_empty_files_are_named() {
        let (_d, r, c) = pair("a,b\n1,2\n", "a,c\n1,2\n");
        let e = read_pair(&r, &c, &options()).unwrap_err().to_string();
        assert!(
            e.contains("only in") && e.contains("\"b\"") && e.contains("\"c\""),
            "{e}"
        );
        let (_d, r, c) = pair("a,b\n1,2\n", "a,b\n");
        let e = read_pair(&r, &c, &options()).unwrap_err().to_string();
        assert!(e.contains("cur.csv") && e.contains("no data rows"), "{e}");
        let (_d, r, c) = pair("a\n1\n", "a\n2\n");
        let opts = FoldOptions {
            drop: vec!["a".into()],
            ..options()
        };
        assert!(read_pair(&r, &c, &opts).is_err());
        let opts = FoldOptions {
            drop: vec!["zzz".into()],
            ..options()
        };
        let e = read_pair(&r, &c, &opts).unwrap_err().to_string();
        assert!(e.contains("zzz"), "{e}");
    }

    #[test]
    fn a_binary_file_is_named_not_echoed() {
        // An ELF header where a CSV was expected: one short line naming the file, no raw bytes.
        let mut elf = b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0\x03\0>\0".to_vec();
        elf.extend(std::iter::repeat_n(0xffu8, 4000));
        let d = tempfile::tempdir().unwrap();
        let (r, c) = (d.path().join("ref.csv"), d.path().join("model.bin"));
        std::fs::write(&r, "a,b\n1,2\n").unwrap();
        std::fs::write(&c, &elf).unwrap();
        let e = read_pair(&r, &c, &options()).unwrap_err().to_string();
        assert!(
            e.contains("model.bin") && e.contains("not a CSV file"),
            "{e}"
        );
        assert!(e.len() < 300, "{e}");
        // A text file with a NUL in the header: the same.
        std::fs::write(&c, "a,\0b\n1,2\n").unwrap();
        let e = read_pair(&r, &c, &options()).unwrap_err().to_string();
        assert!(e.contains("control characters"), "{e}");
        // Tabs are text (a tab-separated file): no error from the header check.
        std::fs::write(&c, "a\tb\n1\t2\n").unwrap();
        if let Err(e) = read_pair(&r, &c, &options()) {
            assert!(!e.to_string().contains("not a CSV file"), "{e}");
        }
    }
}
