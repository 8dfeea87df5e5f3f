//! CSV into a typed [`Frame`], plus the column builders the Parquet reader shares.
//!
//! A CSV file says nothing about its types, so they are inferred, and a 1,000,000 × 20 file must not be
//! held as strings to do it: pass 1 streams the file once and keeps, per column, only whether every cell
//! so far could still be a number, a boolean or a timestamp, and up to `max_categories` distinct values;
//! pass 2 streams it again and parses each cell straight into its typed column. Rows come from the one CSV
//! reader ([`crate::CsvChunks`]: its dialect, bounds and errors), cells are parsed by [`crate::cell`],
//! missing markers become missing cells, and every refusal names the file, the 1-based line and the column.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use aegis_core::{Column, ColumnData, ColumnKind, Frame, Labels, MISSING_CODE};

use crate::cell::{parse_bool, parse_number, parse_timestamp};
use crate::columns::{Chunk, ChunkOptions, CsvChunks};
use crate::error::Error;
use crate::options::{ReadOptions, Record, RecordStream, MAX_CELL_BYTES};

/// The largest integer label accepted as a class index .
const MAX_CLASS_INDEX: u32 = 65_535;

/// At most this many distinct labels: more means the column is not a classification target.
pub(crate) const MAX_CLASSES: usize = 65_536;

/// Where CSV bytes come from: a file (opened afresh for each pass) or memory.
#[derive(Clone, Copy)]
enum Source<'a> {
    File(&'a Path),
    Bytes(&'a str, &'a [u8]),
}

impl Source<'_> {
    fn path(&self) -> PathBuf {
        match self {
            Source::File(p) => p.to_path_buf(),
            Source::Bytes(name, _) => PathBuf::from(name),
        }
    }

    fn open(&self, opts: &ReadOptions) -> Result<CsvChunks, Error> {
        let chunk_opts = ChunkOptions::from_read(opts);
        match *self {
            Source::File(path) => CsvChunks::open(path, &chunk_opts),
            Source::Bytes(name, bytes) => {
                if bytes.len() as u64 > opts.max_bytes {
                    return Err(Error::TooLarge {
                        path: PathBuf::from(name),
                        limit: opts.max_bytes,
                    });
                }
                let reader = std::io::Cursor::new(bytes.to_vec());
                let chunk_opts = ChunkOptions {
                    chunk_bytes: chunk_opts.chunk_bytes.min(bytes.len() + 1),
                    ..chunk_opts
                };
                CsvChunks::from_reader(PathBuf::from(name), Box::new(reader), &chunk_opts)
            }
        }
    }
}

/// A CSV table past its header, read through the one CSV reader ([`CsvChunks`]): hands out data rows as
/// text cells with their line, checking the row width, the cell length and that each cell is UTF-8.
struct Rows {
    chunks: CsvChunks,
    path: PathBuf,
    names: Vec<String>,
    chunk: Option<Chunk>,
    next: usize,
    rows: usize,
    max_rows: Option<usize>,
}

/// The rows of `src` (header checks are [`CsvChunks`]').
fn start_rows(src: Source<'_>, opts: &ReadOptions) -> Result<Rows, Error> {
    let chunks = src.open(opts)?;
    Ok(Rows {
        names: chunks.header().to_vec(),
        path: src.path(),
        chunks,
        chunk: None,
        next: 0,
        rows: 0,
        max_rows: opts.max_rows,
    })
}

impl Rows {
    /// Reads the next data row into `record` (one trimmed cell per column); returns its 1-based line, or
    /// `None` at the end (or at `max_rows`).
    fn next(&mut self, record: &mut Vec<String>) -> Result<Option<u64>, Error> {
        if self.max_rows.is_some_and(|m| self.rows >= m) {
            return Ok(None);
        }
        while self.chunk.as_ref().is_none_or(|c| self.next >= c.len()) {
            match self.chunks.next_chunk()? {
                Some(chunk) => {
                    self.chunk = Some(chunk);
                    self.next = 0;
                }
                None => return Ok(None),
            }
        }
        let Some(chunk) = self.chunk.as_ref() else {
            return Ok(None);
        };
        let i = self.next;
        self.next += 1;
        let line = chunk.line(i);
        let mut fields = Vec::with_capacity(self.names.len());
        chunk.fields(i, &mut fields)?;
        record.resize(fields.len(), String::new());
        for ((field, cell), name) in fields.iter().zip(record.iter_mut()).zip(&self.names) {
            let Some(text) = field.strict_text() else {
                return Err(Error::NotUtf8 {
                    path: self.path.clone(),
                    line,
                    column: name.clone(),
                });
            };
            if text.len() > MAX_CELL_BYTES {
                return Err(Error::CellTooLong {
                    path: self.path.clone(),
                    line,
                    column: name.clone(),
                    found: text.len(),
                    limit: MAX_CELL_BYTES,
                });
            }
            cell.clear();
            cell.push_str(&text);
        }
        self.rows += 1;
        Ok(Some(line))
    }
}

/// Which columns are features (with their forced type, if any), which is the label, which are kept when
/// streaming.
pub(crate) struct Layout {
    /// Feature column positions with the caller's forced type.
    pub(crate) features: Vec<(usize, Option<ColumnKind>)>,
    /// Label column position.
    pub(crate) label: Option<usize>,
    /// Every position that is not dropped (features and label), in file order.
    pub(crate) kept: Vec<usize>,
}

impl Layout {
    /// Checks the caller's column names against `names`. With `need_features`, a file whose every column is
    /// the label or dropped is an error.
    pub(crate) fn new(
        path: &Path,
        names: &[String],
        opts: &ReadOptions,
        need_features: bool,
    ) -> Result<Self, Error> {
        let find = |role: &'static str, name: &str| {
            names
                .iter()
                .position(|h| h == name)
                .ok_or_else(|| Error::MissingColumn {
                    path: path.to_path_buf(),
                    role,
                    column: name.to_owned(),
                    available: names.to_vec(),
                })
        };
        let label = opts
            .label
            .as_deref()
            .map(|name| find("label", name))
            .transpose()?;
        let mut dropped = vec![false; names.len()];
        for name in &opts.drop {
            dropped[find("drop", name)?] = true;
        }
        for name in opts.types.keys() {
            if !names.iter().any(|h| h == name) {
                return Err(Error::UnknownTypedColumn {
                    path: path.to_path_buf(),
                    column: name.clone(),
                    available: names.to_vec(),
                });
            }
        }
        let kept: Vec<usize> = (0..names.len()).filter(|&j| !dropped[j]).collect();
        let features: Vec<(usize, Option<ColumnKind>)> = kept
            .iter()
            .filter(|&&j| Some(j) != label)
            .map(|&j| (j, opts.types.get(&names[j]).copied()))
            .collect();
        if need_features && features.is_empty() {
            return Err(Error::NoFeatures {
                path: path.to_path_buf(),
            });
        }
        Ok(Self {
            features,
            label,
            kept,
        })
    }
}

/// What pass 1 has learnt about one column so far.
struct Infer {
    present: usize,
    numeric: bool,
    boolean: bool,
    timestamp: bool,
    /// Distinct values, until there are more than `max_categories`.
    distinct: Option<HashSet<String>>,
}

impl Infer {
    fn new() -> Self {
        Self {
            present: 0,
            numeric: true,
            boolean: true,
            timestamp: true,
            distinct: Some(HashSet::new()),
        }
    }

    fn observe(&mut self, cell: &str, max_categories: usize) {
        self.present += 1;
        if self.numeric && parse_number(cell).is_none() {
            self.numeric = false;
        }
        if self.boolean && parse_bool(cell).is_none() {
            self.boolean = false;
        }
        if self.timestamp && parse_timestamp(cell).is_none() {
            self.timestamp = false;
        }
        if let Some(set) = &mut self.distinct {
            if !set.contains(cell) {
                if set.len() >= max_categories {
                    self.distinct = None;
                } else {
                    set.insert(cell.to_owned());
                }
            }
        }
    }

    fn kind(&self) -> ColumnKind {
        if self.present == 0 || self.numeric {
            ColumnKind::Numeric
        } else if self.boolean {
            ColumnKind::Boolean
        } else if self.timestamp {
            ColumnKind::Timestamp
        } else if self.distinct.is_some() {
            ColumnKind::Categorical
        } else {
            ColumnKind::Text
        }
    }
}

/// One column being filled in.
#[derive(Debug)]
pub(crate) enum Builder {
    Numeric(Vec<f64>),
    Categorical {
        codes: Vec<u32>,
        levels: Vec<String>,
        index: HashMap<String, u32>,
        /// With `Some(k)`, the column turns into text when a `k+1`-th distinct value arrives.
        overflow: Option<usize>,
    },
    Boolean(Vec<Option<bool>>),
    Text(Vec<Option<String>>),
    Timestamp(Vec<Option<i64>>),
}

impl Builder {
    pub(crate) fn new(kind: ColumnKind, overflow: Option<usize>) -> Self {
        match kind {
            ColumnKind::Numeric => Builder::Numeric(Vec::new()),
            ColumnKind::Categorical => Builder::Categorical {
                codes: Vec::new(),
                levels: Vec::new(),
                index: HashMap::new(),
                overflow,
            },
            ColumnKind::Boolean => Builder::Boolean(Vec::new()),
            ColumnKind::Text => Builder::Text(Vec::new()),
            ColumnKind::Timestamp => Builder::Timestamp(Vec::new()),
        }
    }

    pub(crate) fn kind(&self) -> ColumnKind {
        match self {
            Builder::Numeric(_) => ColumnKind::Numeric,
            Builder::Categorical { .. } => ColumnKind::Categorical,
            Builder::Boolean(_) => ColumnKind::Boolean,
            Builder::Text(_) => ColumnKind::Text,
            Builder::Timestamp(_) => ColumnKind::Timestamp,
        }
    }

    /// Makes room for `n` more cells (the row count is known after pass 1), so the column never doubles
    /// past what it needs.
    pub(crate) fn reserve(&mut self, n: usize) {
        match self {
            Builder::Numeric(v) => v.reserve_exact(n),
            Builder::Categorical { codes, .. } => codes.reserve_exact(n),
            Builder::Boolean(v) => v.reserve_exact(n),
            Builder::Text(v) => v.reserve_exact(n),
            Builder::Timestamp(v) => v.reserve_exact(n),
        }
    }

    pub(crate) fn push_missing(&mut self) {
        match self {
            Builder::Numeric(v) => v.push(f64::NAN),
            Builder::Categorical { codes, .. } => codes.push(MISSING_CODE),
            Builder::Boolean(v) => v.push(None),
            Builder::Text(v) => v.push(None),
            Builder::Timestamp(v) => v.push(None),
        }
    }

    /// Parses a present cell as this column's type; `Err(())` when it is not one.
    pub(crate) fn push_text(&mut self, cell: &str) -> Result<(), ()> {
        match self {
            Builder::Numeric(v) => v.push(parse_number(cell).ok_or(())?),
            Builder::Boolean(v) => v.push(Some(parse_bool(cell).ok_or(())?)),
            Builder::Timestamp(v) => v.push(Some(parse_timestamp(cell).ok_or(())?)),
            Builder::Text(v) => v.push(Some(cell.to_owned())),
            Builder::Categorical {
                codes,
                levels,
                index,
                overflow,
            } => {
                if let Some(&code) = index.get(cell) {
                    codes.push(code);
                } else if overflow.is_some_and(|k| levels.len() >= k) {
                    let mut text: Vec<Option<String>> = codes
                        .iter()
                        .map(|&c| levels.get(c as usize).cloned())
                        .collect();
                    text.push(Some(cell.to_owned()));
                    *self = Builder::Text(text);
                } else {
                    let code = u32::try_from(levels.len())
                        .ok()
                        .filter(|&c| c != MISSING_CODE)
                        .ok_or(())?;
                    levels.push(cell.to_owned());
                    index.insert(cell.to_owned(), code);
                    codes.push(code);
                }
            }
        }
        Ok(())
    }

    pub(crate) fn finish(self) -> ColumnData {
        match self {
            Builder::Numeric(v) => ColumnData::Numeric(v),
            Builder::Categorical { codes, levels, .. } => ColumnData::Categorical { codes, levels },
            Builder::Boolean(v) => ColumnData::Boolean(v),
            Builder::Text(v) => ColumnData::Text(v),
            Builder::Timestamp(v) => ColumnData::Timestamp(v),
        }
    }
}

/// Why a label column cannot be encoded.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum LabelError {
    /// More than [`MAX_CLASSES`] distinct labels.
    TooMany,
    /// Every label is an integer, and this one (first seen at `at`) is above [`MAX_CLASS_INDEX`].
    TooLarge { at: u64, value: u32 },
}

/// Label cells turned into class codes in one pass: distinct values are interned, and the codes are
/// renumbered at the end (integers `0..k` keep their value, names are sorted), as `read_csv` does.
#[derive(Debug, Default)]
pub(crate) struct LabelBuilder {
    codes: Vec<u32>,
    names: Vec<String>,
    first_at: Vec<u64>,
    index: HashMap<String, u32>,
}

impl LabelBuilder {
    /// Adds one label; `at` is its line or row, for messages.
    pub(crate) fn push(&mut self, value: &str, at: u64) -> Result<(), LabelError> {
        let code = match self.index.get(value) {
            Some(&c) => c,
            None => {
                if self.names.len() >= MAX_CLASSES {
                    return Err(LabelError::TooMany);
                }
                let c = u32::try_from(self.names.len()).map_err(|_| LabelError::TooMany)?;
                self.names.push(value.to_owned());
                self.first_at.push(at);
                self.index.insert(value.to_owned(), c);
                c
            }
        };
        self.codes.push(code);
        Ok(())
    }

    /// The class codes and class names.
    pub(crate) fn finish(self) -> Result<(Vec<u32>, Vec<String>), LabelError> {
        let ints: Option<Vec<u32>> = self.names.iter().map(|s| s.parse::<u32>().ok()).collect();
        let (remap, classes) = match ints {
            Some(ints) => {
                let mut max = 0;
                for (&v, &at) in ints.iter().zip(&self.first_at) {
                    if v > MAX_CLASS_INDEX {
                        return Err(LabelError::TooLarge { at, value: v });
                    }
                    max = max.max(v);
                }
                let classes = (0..=max).map(|k| k.to_string()).collect();
                (ints, classes)
            }
            None => {
                let mut order: Vec<usize> = (0..self.names.len()).collect();
                order.sort_by(|&a, &b| self.names[a].cmp(&self.names[b]));
                let mut remap = vec![0u32; self.names.len()];
                for (rank, &i) in order.iter().enumerate() {
                    // Fewer than `MAX_CLASSES` names: the rank fits.
                    remap[i] = u32::try_from(rank).unwrap_or(u32::MAX);
                }
                let classes = order.iter().map(|&i| self.names[i].clone()).collect();
                (remap, classes)
            }
        };
        let codes = self
            .codes
            .iter()
            .map(|&c| remap.get(c as usize).copied().unwrap_or(0))
            .collect();
        Ok((codes, classes))
    }
}

/// Reads a CSV file into a frame (two passes).
pub(crate) fn read_csv_frame(path: &Path, opts: &ReadOptions) -> Result<Frame, Error> {
    read_two_pass(Source::File(path), opts)
}

/// Reads CSV text in memory into a frame (two passes).
pub(crate) fn read_csv_frame_bytes(
    name: &str,
    bytes: &[u8],
    opts: &ReadOptions,
) -> Result<Frame, Error> {
    read_two_pass(Source::Bytes(name, bytes), opts)
}

fn read_two_pass(src: Source<'_>, opts: &ReadOptions) -> Result<Frame, Error> {
    let path = src.path();
    // Pass 1: infer each column's type.
    let mut cur = start_rows(src, opts)?;
    let names = cur.names.clone();
    let layout = Layout::new(&path, &names, opts, true)?;
    let mut infer: Vec<Option<Infer>> = layout
        .features
        .iter()
        .map(|(_, forced)| forced.is_none().then(Infer::new))
        .collect();
    let mut record = Vec::new();
    let mut n_rows = 0usize;
    while cur.next(&mut record)?.is_some() {
        for ((j, _), inf) in layout.features.iter().zip(&mut infer) {
            if let Some(inf) = inf {
                let cell = record.get(*j).map_or("", String::as_str);
                if !opts.is_missing(cell) {
                    inf.observe(cell, opts.max_categories);
                }
            }
        }
        n_rows += 1;
    }
    if n_rows == 0 {
        return Err(Error::NoRows { path });
    }
    let kinds: Vec<ColumnKind> = layout
        .features
        .iter()
        .zip(&infer)
        .map(|((_, forced), inf)| match (forced, inf) {
            (Some(k), _) => *k,
            (None, Some(inf)) => inf.kind(),
            (None, None) => ColumnKind::Text,
        })
        .collect();
    drop(infer);

    // Pass 2: parse every cell into its column.
    let mut cur = start_rows(src, opts)?;
    if cur.names != names {
        return Err(Error::Changed { path });
    }
    let mut builders: Vec<Builder> = kinds.iter().map(|&k| Builder::new(k, None)).collect();
    for b in &mut builders {
        b.reserve(n_rows);
    }
    let mut labels = LabelBuilder::default();
    labels.codes.reserve_exact(n_rows);
    let mut rows = 0usize;
    while let Some(line) = cur.next(&mut record)? {
        for (((j, forced), b), kind) in layout.features.iter().zip(&mut builders).zip(&kinds) {
            let cell = record.get(*j).map_or("", String::as_str);
            if opts.is_missing(cell) {
                b.push_missing();
            } else if b.push_text(cell).is_err() {
                if forced.is_none() {
                    return Err(Error::Changed { path });
                }
                return Err(Error::BadCell {
                    path,
                    line,
                    column: names[*j].clone(),
                    value: cell.to_owned(),
                    expected: *kind,
                });
            }
        }
        if let Some(j) = layout.label {
            let cell = record.get(j).map_or("", String::as_str);
            if opts.is_missing(cell) {
                return Err(Error::EmptyLabel {
                    path,
                    line,
                    column: names[j].clone(),
                });
            }
            labels
                .push(cell, line)
                .map_err(|e| label_error(&path, &names[j], e))?;
        }
        rows += 1;
    }
    if rows != n_rows {
        return Err(Error::Changed { path });
    }
    let labels = match layout.label {
        Some(j) => {
            let (codes, classes) = labels
                .finish()
                .map_err(|e| label_error(&path, &names[j], e))?;
            Some(Labels {
                column: names[j].clone(),
                codes,
                classes,
            })
        }
        None => None,
    };
    let columns = layout
        .features
        .iter()
        .zip(builders)
        .map(|((j, _), b)| Column {
            name: names[*j].clone(),
            data: b.finish(),
        })
        .collect();
    Ok(Frame {
        source: path.display().to_string(),
        columns,
        labels,
        n_rows,
    })
}

fn label_error(path: &Path, column: &str, e: LabelError) -> Error {
    match e {
        LabelError::TooMany => Error::TooManyClasses {
            path: path.to_path_buf(),
            column: column.to_owned(),
            limit: MAX_CLASSES,
        },
        LabelError::TooLarge { at, value } => Error::LabelTooLarge {
            path: path.to_path_buf(),
            line: at,
            column: column.to_owned(),
            value,
            max: MAX_CLASS_INDEX,
        },
    }
}

/// Streams the rows of a CSV file (see [`crate::stream_records`]).
pub(crate) fn stream_csv(
    path: &Path,
    opts: &ReadOptions,
) -> Result<(Vec<String>, RecordStream), Error> {
    let cur = start_rows(Source::File(path), opts)?;
    let layout = Layout::new(path, &cur.names, opts, false)?;
    let header = layout.kept.iter().map(|&j| cur.names[j].clone()).collect();
    let iter = CsvRecords {
        cur,
        kept: layout.kept,
        missing: opts.missing.clone(),
        row: 0,
        done: false,
        record: Vec::new(),
    };
    Ok((header, Box::new(iter)))
}

/// The owned iterator behind [`stream_csv`].
struct CsvRecords {
    cur: Rows,
    kept: Vec<usize>,
    missing: Vec<String>,
    row: u64,
    done: bool,
    record: Vec<String>,
}

impl Iterator for CsvRecords {
    type Item = Result<Record, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.cur.next(&mut self.record) {
            Ok(Some(line)) => {
                let cells = self
                    .kept
                    .iter()
                    .map(|&j| {
                        let cell = self.record.get(j).map_or("", String::as_str);
                        (!self.missing.iter().any(|m| m == cell)).then(|| cell.to_owned())
                    })
                    .collect();
                let record = Record {
                    row: self.row,
                    line: Some(line),
                    cells,
                };
                self.row += 1;
                Some(Ok(record))
            }
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::MAX_COLUMNS;
    use crate::read::{read_frame, read_frame_bytes, stream_records};
    use std::fs::File;
    use std::io::Write;

    fn csv_file(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::Builder::new().suffix(".csv").tempfile().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f.flush().unwrap();
        f
    }

    fn read(text: &str) -> Frame {
        read_frame_bytes("t.csv", text.as_bytes(), &ReadOptions::default()).unwrap()
    }

    fn read_err(text: &str, opts: &ReadOptions) -> Error {
        read_frame_bytes("t.csv", text.as_bytes(), opts).unwrap_err()
    }

    fn labelled(label: &str) -> ReadOptions {
        ReadOptions {
            label: Some(label.into()),
            ..ReadOptions::default()
        }
    }

    fn data<'a>(f: &'a Frame, name: &str) -> &'a ColumnData {
        &f.column(name).unwrap().data
    }

    #[test]
    fn delimiters_are_sniffed_from_the_header_line() {
        let f = read("a;b;c\n1,5;2;x\n3;4;y\n");
        assert_eq!(f.columns.len(), 3);
        // A comma inside a cell of a semicolon file is just text.
        assert_eq!(data(&f, "a").kind(), ColumnKind::Categorical);
        let f = read("a\tb\n1\t2\n3\t4\n");
        assert_eq!(data(&f, "b"), &ColumnData::Numeric(vec![2.0, 4.0]));
        let f = read("a|b\n1|2\n");
        assert_eq!(f.columns.len(), 2);
        // Delimiters inside quotes do not count.
        let f = read("\"a;b;c\",d\n1,2\n");
        assert_eq!(f.columns[0].name, "a;b;c");
        assert_eq!(read("single\n1;2\n").columns.len(), 1);
        // A given delimiter wins over sniffing.
        let opts = ReadOptions {
            delimiter: Some(b','),
            ..ReadOptions::default()
        };
        let f = read_frame_bytes("t.csv", b"a;b\n1;2\n", &opts).unwrap();
        assert_eq!(f.columns.len(), 1);
        assert_eq!(f.columns[0].name, "a;b");
    }

    #[test]
    fn quoted_cells_keep_delimiters_and_newlines() {
        let text = "id,note,y\n1,\"a, b\",0\n2,\"two\nlines\",1\n3,  \"padded\"  ,0\n4,x,y,z\n";
        let e = read_err(text, &ReadOptions::default());
        // The ragged row starts on line 6: the quoted newline makes line 4 span two lines.
        assert!(
            matches!(
                e,
                Error::RaggedRow {
                    line: 6,
                    expected: 3,
                    found: 4,
                    ..
                }
            ),
            "{e}"
        );
        assert!(e.to_string().contains("t.csv line 6"), "{e}");
        // Cells are trimmed, inside quotes too.
        let f = read("id,note\n1,\"a, b\"\n2,\"two\nlines\"\n3,\"  padded \"\n");
        assert_eq!(
            data(&f, "note"),
            &ColumnData::Categorical {
                codes: vec![0, 1, 2],
                levels: vec!["a, b".into(), "two\nlines".into(), "padded".into()],
            }
        );
    }

    #[test]
    fn missing_markers_become_missing_cells() {
        let f = read("n,c,b,t\n1,x,true,2024-01-01\n?,NA,,null\nNaN,y,N/A,None\n");
        assert_eq!(f.n_rows, 3);
        let n = data(&f, "n");
        assert_eq!(n.kind(), ColumnKind::Numeric);
        assert!(!n.is_missing(0) && n.is_missing(1) && n.is_missing(2));
        let c = data(&f, "c");
        assert_eq!(
            c,
            &ColumnData::Categorical {
                codes: vec![0, MISSING_CODE, 1],
                levels: vec!["x".into(), "y".into()],
            }
        );
        assert_eq!(
            data(&f, "b"),
            &ColumnData::Boolean(vec![Some(true), None, None])
        );
        assert_eq!(
            data(&f, "t"),
            &ColumnData::Timestamp(vec![Some(1_704_067_200), None, None])
        );
        // Custom markers replace the defaults: "?" is then a category.
        let opts = ReadOptions {
            missing: vec!["-".into()],
            ..ReadOptions::default()
        };
        let f = read_frame_bytes("t.csv", b"a\n?\n-\n", &opts).unwrap();
        assert_eq!(
            data(&f, "a"),
            &ColumnData::Categorical {
                codes: vec![0, MISSING_CODE],
                levels: vec!["?".into()],
            }
        );
    }

    #[test]
    fn each_type_is_inferred() {
        let text = "num,bin,flag,day,when,cat,free,empty\n\
                    1.5,0,yes,2024-02-29,2024-03-01T12:30:00+02:00,red,alpha,\n\
                    -2e3,1,No,1970-01-01,2024-03-01 10:30Z,blue,beta,?\n\
                    7,1,T,2000-12-31,2024-03-01T10:30:15.250,red,gamma,NA\n";
        let opts = ReadOptions {
            max_categories: 2,
            ..ReadOptions::default()
        };
        let f = read_frame_bytes("t.csv", text.as_bytes(), &opts).unwrap();
        let kinds: Vec<ColumnKind> = f.columns.iter().map(|c| c.data.kind()).collect();
        assert_eq!(
            kinds,
            vec![
                ColumnKind::Numeric,
                ColumnKind::Numeric, // 0/1 stay numeric
                ColumnKind::Boolean,
                ColumnKind::Timestamp,
                ColumnKind::Timestamp,
                ColumnKind::Categorical,
                ColumnKind::Text,    // three values, more than max_categories
                ColumnKind::Numeric, // all missing
            ]
        );
        assert_eq!(
            data(&f, "num"),
            &ColumnData::Numeric(vec![1.5, -2000.0, 7.0])
        );
        assert_eq!(
            data(&f, "flag"),
            &ColumnData::Boolean(vec![Some(true), Some(false), Some(true)])
        );
        // 12:30 at +02:00, 10:30Z and 10:30:15 (no zone = UTC) on the same day.
        let day = 1_709_251_200; // 2024-03-01T00:00:00Z
        assert_eq!(
            data(&f, "when"),
            &ColumnData::Timestamp(vec![
                Some(day + 37_800),
                Some(day + 37_800),
                Some(day + 37_815)
            ])
        );
        assert_eq!(
            data(&f, "day"),
            &ColumnData::Timestamp(vec![Some(1_709_164_800), Some(0), Some(978_220_800)])
        );
        assert_eq!(
            data(&f, "free"),
            &ColumnData::Text(vec![
                Some("alpha".into()),
                Some("beta".into()),
                Some("gamma".into())
            ])
        );
        assert!(
            matches!(data(&f, "empty"), ColumnData::Numeric(v) if v.iter().all(|x| x.is_nan()))
        );
        assert_eq!(f.source, "t.csv");
        assert!(f.labels.is_none());
        // One cell that is not a number makes the column categorical; `inf` is not a finite number.
        let f = read("a,b\n1,inf\nx,2\n");
        assert_eq!(data(&f, "a").kind(), ColumnKind::Categorical);
        assert_eq!(data(&f, "b").kind(), ColumnKind::Categorical);
    }

    #[test]
    fn forced_types_parse_or_fail_with_line_column_and_value() {
        let mut opts = ReadOptions::default();
        opts.types.insert("code".into(), ColumnKind::Categorical);
        opts.types.insert("n".into(), ColumnKind::Text);
        let f = read_frame_bytes("t.csv", b"code,n\n1,5\n2,6\n", &opts).unwrap();
        assert_eq!(data(&f, "code").kind(), ColumnKind::Categorical);
        assert_eq!(
            data(&f, "n"),
            &ColumnData::Text(vec![Some("5".into()), Some("6".into())])
        );

        let mut opts = ReadOptions::default();
        opts.types.insert("n".into(), ColumnKind::Numeric);
        let e = read_err("id,n\n1,5\n2,five\n", &opts);
        assert!(
            matches!(&e, Error::BadCell { line: 3, column, value, expected: ColumnKind::Numeric, .. } if column == "n" && value == "five"),
            "{e}"
        );
        let msg = e.to_string();
        assert!(
            msg.contains("t.csv line 3") && msg.contains("\"n\"") && msg.contains("\"five\""),
            "{msg}"
        );

        let mut opts = ReadOptions::default();
        opts.types.insert("nope".into(), ColumnKind::Numeric);
        assert!(matches!(
            read_err("a\n1\n", &opts),
            Error::UnknownTypedColumn { .. }
        ));
    }

    #[test]
    fn integer_labels_keep_their_order_and_names_are_sorted() {
        let f = read_frame_bytes("t.csv", b"x,y\n1,2\n2,0\n3,2\n", &labelled("y")).unwrap();
        let l = f.labels.as_ref().unwrap();
        assert_eq!(l.column, "y");
        assert_eq!(l.codes, vec![2, 0, 2]);
        assert_eq!(l.classes, vec!["0", "1", "2"]);
        assert!(f.column("y").is_none(), "the label is not a feature");

        let f = read_frame_bytes("t.csv", b"x,y\n1,spam\n2,ham\n3,10\n", &labelled("y")).unwrap();
        let l = f.labels.unwrap();
        assert_eq!(l.classes, vec!["10", "ham", "spam"]);
        assert_eq!(l.codes, vec![2, 1, 0]);

        let e = read_err("x,y\n1,0\n2,70000\n", &labelled("y"));
        assert!(
            matches!(
                e,
                Error::LabelTooLarge {
                    line: 3,
                    value: 70_000,
                    ..
                }
            ),
            "{e}"
        );
        let e = read_err("x,y\n1,0\n2,?\n", &labelled("y"));
        assert!(matches!(e, Error::EmptyLabel { line: 3, .. }), "{e}");
        let e = read_err("x,y\n1,0\n", &labelled("z"));
        assert!(
            matches!(e, Error::MissingColumn { role: "label", .. }),
            "{e}"
        );
    }

    #[test]
    fn header_problems_are_errors() {
        let opts = ReadOptions::default();
        assert!(matches!(
            read_err("a,b,a\n1,2,3\n", &opts),
            Error::DuplicateColumn { .. }
        ));
        assert!(matches!(
            read_err("a,,c\n1,2,3\n", &opts),
            Error::EmptyColumnName { index: 2, .. }
        ));
        assert!(matches!(read_err("", &opts), Error::Empty { .. }));
        assert!(matches!(read_err("a,b\n", &opts), Error::NoRows { .. }));
        let wide = (0..=MAX_COLUMNS)
            .map(|i| format!("c{i}"))
            .collect::<Vec<_>>()
            .join(",");
        assert!(matches!(
            read_err(&wide, &opts),
            Error::TooManyColumns { .. }
        ));
        let drop_all = ReadOptions {
            drop: vec!["a".into()],
            ..ReadOptions::default()
        };
        assert!(matches!(
            read_err("a\n1\n", &drop_all),
            Error::NoFeatures { .. }
        ));
        let long = format!("a\n{}\n", "x".repeat(MAX_CELL_BYTES + 1));
        assert!(matches!(
            read_err(&long, &opts),
            Error::CellTooLong { line: 2, .. }
        ));
    }

    #[test]
    fn a_cell_that_is_not_utf8_names_its_line_and_column() {
        let e = read_frame_bytes("t.csv", b"a,b\n1,x\n2,\xff\xfe\n", &ReadOptions::default())
            .unwrap_err();
        assert!(
            matches!(&e, Error::NotUtf8 { line: 3, column, .. } if column == "b"),
            "{e}"
        );
        assert!(e.to_string().contains("save the file as UTF-8"), "{e}");
        // Valid UTF-8 beyond ASCII is text.
        let f = read("a,b\n1,café\n");
        assert_eq!(f.columns[1].data.display(0).as_deref(), Some("café"));
    }

    #[test]
    fn a_byte_order_mark_is_not_part_of_the_first_name() {
        let f = read("\u{feff}a;b\n1;2\n");
        assert_eq!(f.columns[0].name, "a");
        assert_eq!(f.columns.len(), 2);
    }

    #[test]
    fn without_a_header_columns_are_numbered() {
        let opts = ReadOptions {
            header: false,
            label: Some("c2".into()),
            ..ReadOptions::default()
        };
        let f = read_frame_bytes("t.csv", b"1,a,0\n2,b,1\n", &opts).unwrap();
        assert_eq!(f.n_rows, 2);
        let names: Vec<&str> = f.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, vec!["c0", "c1"]);
        assert_eq!(f.labels.unwrap().codes, vec![0, 1]);
    }

    #[test]
    fn byte_and_row_bounds_are_kept() {
        let text = "a,b\n1,2\n3,4\n5,6\n";
        let opts = ReadOptions {
            max_bytes: 10,
            ..ReadOptions::default()
        };
        assert!(matches!(
            read_err(text, &opts),
            Error::TooLarge { limit: 10, .. }
        ));
        let f = csv_file(text);
        let e = read_frame(f.path(), &opts).unwrap_err();
        assert!(matches!(e, Error::TooLarge { .. }), "{e}");
        assert!(stream_records(f.path(), &opts).is_err());
        let within = ReadOptions {
            max_bytes: text.len() as u64,
            max_rows: Some(2),
            ..ReadOptions::default()
        };
        let frame = read_frame(f.path(), &within).unwrap();
        assert_eq!(frame.n_rows, 2);
        assert_eq!(data(&frame, "a"), &ColumnData::Numeric(vec![1.0, 3.0]));
        assert_eq!(frame.source, f.path().display().to_string());
    }

    #[test]
    fn streamed_records_match_the_frame() {
        let text = "id,x,c,y\n1, 2.5 ,red,0\n2,?,\"bl,ue\",1\n3,4,,1\n";
        let f = csv_file(text);
        let opts = ReadOptions {
            label: Some("y".into()),
            drop: vec!["id".into()],
            ..ReadOptions::default()
        };
        let frame = read_frame(f.path(), &opts).unwrap();
        let (header, records) = stream_records(f.path(), &opts).unwrap();
        assert_eq!(header, vec!["x", "c", "y"]);
        let records: Vec<Record> = records.collect::<Result<_, _>>().unwrap();
        assert_eq!(records.len(), frame.n_rows);
        for (i, r) in records.iter().enumerate() {
            assert_eq!(r.row, i as u64);
            assert_eq!(r.line, Some(i as u64 + 2));
            for (k, col) in frame.columns.iter().enumerate() {
                assert_eq!(
                    r.cells[k],
                    col.data.display(i),
                    "row {i} column {}",
                    col.name
                );
            }
        }
        assert_eq!(
            records[1].cells,
            vec![None, Some("bl,ue".into()), Some("1".into())]
        );

        // A ragged row comes out of the iterator as an error with its line, and the iterator stops.
        let bad = csv_file("a,b\n1,2\n3\n5,6\n");
        let (_, mut it) = stream_records(bad.path(), &ReadOptions::default()).unwrap();
        assert!(it.next().unwrap().is_ok());
        assert!(matches!(
            it.next(),
            Some(Err(Error::RaggedRow { line: 3, .. }))
        ));
        assert!(it.next().is_none());
    }

    /// 1,000,000 rows × 20 columns (numeric, categorical, boolean, timestamp): run with `--ignored` under
    /// `/usr/bin/time -v` to see the peak memory of the two-pass reader.
    #[test]
    #[ignore = "large: writes a ~150 MB file"]
    fn a_million_rows_read_in_bounded_memory() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.csv");
        let mut w = std::io::BufWriter::new(File::create(&path).unwrap());
        let names: Vec<String> = (0..19).map(|j| format!("f{j}")).collect();
        writeln!(w, "{},y", names.join(",")).unwrap();
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for i in 0..1_000_000u64 {
            for j in 0..19u64 {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                match j % 4 {
                    0 => write!(w, "cat{},", state % 50).unwrap(),
                    1 => write!(w, "{},", state & 1 == 0).unwrap(),
                    2 => write!(w, "2024-01-{:02},", state % 28 + 1).unwrap(),
                    _ => write!(w, "{:.4},", (state % 100_000) as f64 / 7.0).unwrap(),
                }
            }
            writeln!(w, "{}", i % 2).unwrap();
        }
        w.flush().unwrap();
        drop(w);
        let f = read_frame(&path, &labelled("y")).unwrap();
        assert_eq!(f.n_rows, 1_000_000);
        assert_eq!(f.columns.len(), 19);
        assert_eq!(data(&f, "f0").kind(), ColumnKind::Categorical);
        assert_eq!(data(&f, "f1").kind(), ColumnKind::Boolean);
        assert_eq!(data(&f, "f2").kind(), ColumnKind::Timestamp);
        assert_eq!(data(&f, "f3").kind(), ColumnKind::Numeric);
    }

    #[test]
    fn label_builder_is_bounded() {
        let mut b = LabelBuilder::default();
        for i in 0..MAX_CLASSES {
            b.push(&format!("n{i}"), 0).unwrap();
        }
        assert_eq!(b.push("one more", 0), Err(LabelError::TooMany));
        assert!(b.push("n0", 0).is_ok(), "a known label is still accepted");
    }

    #[test]
    fn categorical_builder_can_overflow_into_text() {
        let mut b = Builder::new(ColumnKind::Categorical, Some(2));
        b.push_missing();
        for s in ["a", "b", "a", "c"] {
            b.push_text(s).unwrap();
        }
        assert_eq!(
            b.finish(),
            ColumnData::Text(vec![
                None,
                Some("a".into()),
                Some("b".into()),
                Some("a".into()),
                Some("c".into())
            ])
        );
    }
}
