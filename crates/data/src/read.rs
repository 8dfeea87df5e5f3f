//! Reading a dataset into a typed [`Frame`]: the options, the format dispatch, and row-by-row streaming.
//!
//! The data checks (`aegis audit`, `aegis schema`) need each column in its own type, missing cells marked as
//! missing and the label held apart, so this is the entry point they call: [`read_frame`] picks Parquet or
//! CSV from the file itself, [`read_frame_bytes`] reads CSV from memory (tests and fuzzing), and
//! [`stream_records`] hands out one row at a time for checks that can stream, without holding the file in
//! memory. Every reader is bounded by [`ReadOptions::max_bytes`], [`MAX_COLUMNS`] and [`MAX_CELL_BYTES`],
//! because datasets are untrusted input.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use aegis_core::Frame;

use crate::error::Error;
use crate::options::{ReadOptions, RecordStream};
use crate::{frame_csv, parquet};

/// Reads a dataset file into a [`Frame`]: Parquet when the file starts with `PAR1` or is named `.parquet` or
/// `.pq`, CSV otherwise.
///
/// CSV column types are inferred in a first streaming pass (numeric, boolean, timestamp, categorical, text,
/// in that order of preference) and parsed in a second, so no column is ever held as strings unless it is
/// text. Parquet types come from the file's schema.
///
/// # Errors
///
/// Every [`Error`] names the file and, where it applies, the line (CSV) or data row (Parquet) and column.
pub fn read_frame(path: &Path, opts: &ReadOptions) -> Result<Frame, Error> {
    if is_parquet(path)? {
        parquet::read_parquet(path, opts)
    } else {
        frame_csv::read_csv_frame(path, opts)
    }
}

/// Reads CSV text held in memory into a [`Frame`]; `name` stands for the file in messages and in
/// [`Frame::source`].
///
/// # Errors
///
/// As [`read_frame`] for CSV.
pub fn read_frame_bytes(name: &str, bytes: &[u8], opts: &ReadOptions) -> Result<Frame, Error> {
    frame_csv::read_csv_frame_bytes(name, bytes, opts)
}

/// The rows of a dataset one at a time, without holding the file in memory (Parquet: one row group at a
/// time).
///
/// Returns the header, which is every column of the file except the dropped ones (the label column is kept:
/// find it by name), and an iterator of [`Record`]s whose cells line up with it. Header problems, a missing
/// label or dropped column and the byte bound on the file size are reported at once; problems in a row
/// (ragged rows, oversized cells, bad bytes) come out of the iterator, which then stops. Cells are not typed:
/// [`ReadOptions::types`] is not applied.
///
/// # Errors
///
/// As [`read_frame`] for everything up to the first row.
pub fn stream_records(
    path: &Path,
    opts: &ReadOptions,
) -> Result<(Vec<String>, RecordStream), Error> {
    if is_parquet(path)? {
        parquet::stream_parquet(path, opts)
    } else {
        frame_csv::stream_csv(path, opts)
    }
}

/// True when `path` names a Parquet file: by its magic bytes, or by its extension.
fn is_parquet(path: &Path) -> Result<bool, Error> {
    let by_name = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("parquet") || e.eq_ignore_ascii_case("pq"));
    if by_name {
        return Ok(true);
    }
    let io_err = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut magic = Vec::with_capacity(4);
    File::open(path)
        .map_err(io_err)?
        .take(4)
        .read_to_end(&mut magic)
        .map_err(io_err)?;
    Ok(magic == b"PAR1")
}
