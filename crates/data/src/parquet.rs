//! Parquet files into a typed [`Frame`], and row-by-row streaming of them.
//!
//! Parquet carries its own schema, so types come from it instead of being inferred: integers, floats and
//! decimals are numeric, `BOOLEAN` is boolean, `DATE`/`TIMESTAMP`/`INT96` are timestamps (Unix seconds),
//! and strings (`UTF8`/`STRING`/`ENUM`/`JSON`, or raw bytes) are categorical until they have more than
//! `max_categories` distinct values, then text. Nulls are missing cells; non-finite floats are missing too,
//! because frames never hold `NaN` for a present cell. Only flat files are read: a nested or repeated
//! column is refused by name.
//!
//! The reader uses the `parquet` crate's record API (no Arrow) one row group at a time. Parquet files are
//! untrusted: the file size is checked against [`ReadOptions::max_bytes`] before anything is decoded, the
//! column types are vetted before any row is read (the record API refuses some type combinations by
//! panicking), and decoding runs under `catch_unwind` so that a decoder bug on a corrupt file becomes an
//! error naming the file rather than a crash.

use std::fs::File;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use ::parquet::basic::{ConvertedType, LogicalType, Repetition, TimeUnit, Type as PhysicalType};
use ::parquet::file::reader::{FileReader, SerializedFileReader};
use ::parquet::record::reader::RowIter;
use ::parquet::record::Field;
use ::parquet::schema::types::ColumnDescriptor;
use aegis_core::{format_number, Column, ColumnKind, Frame, Labels};

use crate::cell::format_timestamp;
use crate::error::Error;
use crate::frame_csv::{Builder, LabelBuilder, LabelError, Layout, MAX_CLASSES};
use crate::options::{ReadOptions, Record, RecordStream, MAX_CELL_BYTES, MAX_COLUMNS};

/// How the values of one Parquet column are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Plan {
    Numeric,
    Boolean,
    /// `nanos`: an `INT64` timestamp in nanoseconds, which the record API hands out as a plain integer.
    Timestamp {
        nanos: bool,
    },
    Str,
}

impl Plan {
    fn kind(self) -> ColumnKind {
        match self {
            Plan::Numeric => ColumnKind::Numeric,
            Plan::Boolean => ColumnKind::Boolean,
            Plan::Timestamp { .. } => ColumnKind::Timestamp,
            Plan::Str => ColumnKind::Categorical,
        }
    }
}

/// One cell, converted from a Parquet field.
#[derive(Debug, Clone, PartialEq)]
enum Value {
    Missing,
    Num(f64),
    Bool(bool),
    Ts(i64),
    Str(String),
}

impl Value {
    /// The cell as a CSV would hold it.
    fn into_text(self) -> Option<String> {
        match self {
            Value::Missing => None,
            Value::Num(x) => Some(format_number(x)),
            Value::Bool(b) => Some(b.to_string()),
            Value::Ts(t) => Some(format_timestamp(t)),
            Value::Str(s) => Some(s),
        }
    }
}

/// An opened file with its vetted column plans.
struct Opened {
    reader: SerializedFileReader<File>,
    names: Vec<String>,
    plans: Vec<Plan>,
}

fn parquet_error(path: &Path, reason: impl std::fmt::Display) -> Error {
    Error::Parquet {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

/// Runs `f`, turning a panic inside the Parquet decoder into an error naming the file.
fn guarded<T>(path: &Path, f: impl FnOnce() -> Result<T, Error>) -> Result<T, Error> {
    catch_unwind(AssertUnwindSafe(f))
        .unwrap_or_else(|_| Err(parquet_error(path, "the decoder failed on malformed data")))
}

/// Opens `path` within the byte bound, reads its footer and plans every column.
fn open(path: &Path, opts: &ReadOptions) -> Result<Opened, Error> {
    let io_err = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(io_err)?;
    if file.metadata().map_err(io_err)?.len() > opts.max_bytes {
        return Err(Error::TooLarge {
            path: path.to_path_buf(),
            limit: opts.max_bytes,
        });
    }
    guarded(path, || {
        let reader = SerializedFileReader::new(file).map_err(|e| parquet_error(path, e))?;
        let schema = reader.metadata().file_metadata().schema_descr();
        let fields = schema.root_schema().get_fields();
        if fields.len() > MAX_COLUMNS {
            return Err(Error::TooManyColumns {
                path: path.to_path_buf(),
                found: fields.len(),
                limit: MAX_COLUMNS,
            });
        }
        let unsupported = |column: &str, reason: &str| Error::UnsupportedColumn {
            path: path.to_path_buf(),
            column: column.to_owned(),
            reason: reason.to_owned(),
        };
        for field in fields {
            if field.is_group() {
                return Err(unsupported(
                    field.name(),
                    "nested groups (structs, lists, maps) cannot be read as a table column",
                ));
            }
            let info = field.get_basic_info();
            if info.has_repetition() && info.repetition() == Repetition::REPEATED {
                return Err(unsupported(
                    field.name(),
                    "repeated columns cannot be read as a table column",
                ));
            }
        }
        if schema.num_columns() != fields.len() {
            return Err(parquet_error(
                path,
                "the schema's leaves do not match its fields",
            ));
        }
        let mut names = Vec::with_capacity(fields.len());
        let mut plans = Vec::with_capacity(fields.len());
        for (i, field) in fields.iter().enumerate() {
            let plan =
                plan(&schema.column(i)).map_err(|reason| unsupported(field.name(), &reason))?;
            if field.name().is_empty() {
                return Err(Error::EmptyColumnName {
                    path: path.to_path_buf(),
                    index: i + 1,
                });
            }
            if names.iter().any(|n| n == field.name()) {
                return Err(Error::DuplicateColumn {
                    path: path.to_path_buf(),
                    column: field.name().to_owned(),
                });
            }
            names.push(field.name().to_owned());
            plans.push(plan);
        }
        Ok(Opened {
            reader,
            names,
            plans,
        })
    })
}

/// The plan for a column, or why it cannot be read. Only combinations the record API converts without
/// panicking are accepted.
fn plan(descr: &ColumnDescriptor) -> Result<Plan, String> {
    use ConvertedType as C;
    let converted = descr.converted_type();
    let nanos_timestamp = matches!(
        descr.logical_type_ref(),
        Some(LogicalType::Timestamp(t)) if t.unit == TimeUnit::NANOS
    );
    let plan = match descr.physical_type() {
        PhysicalType::BOOLEAN => Some(Plan::Boolean),
        PhysicalType::INT32 => match converted {
            C::NONE
            | C::INT_8
            | C::INT_16
            | C::INT_32
            | C::UINT_8
            | C::UINT_16
            | C::UINT_32
            | C::DECIMAL
            | C::TIME_MILLIS => Some(Plan::Numeric),
            C::DATE => Some(Plan::Timestamp { nanos: false }),
            _ => None,
        },
        PhysicalType::INT64 => match converted {
            C::NONE if nanos_timestamp => Some(Plan::Timestamp { nanos: true }),
            C::NONE | C::INT_64 | C::UINT_64 | C::DECIMAL | C::TIME_MICROS => Some(Plan::Numeric),
            C::TIMESTAMP_MILLIS | C::TIMESTAMP_MICROS => Some(Plan::Timestamp { nanos: false }),
            _ => None,
        },
        PhysicalType::INT96 => Some(Plan::Timestamp { nanos: false }),
        PhysicalType::FLOAT | PhysicalType::DOUBLE => Some(Plan::Numeric),
        PhysicalType::BYTE_ARRAY => match converted {
            C::UTF8 | C::ENUM | C::JSON | C::BSON | C::NONE => Some(Plan::Str),
            C::DECIMAL => Some(Plan::Numeric),
            _ => None,
        },
        PhysicalType::FIXED_LEN_BYTE_ARRAY => match converted {
            C::DECIMAL => Some(Plan::Numeric),
            C::NONE if descr.logical_type_ref() == Some(&LogicalType::Float16) => {
                Some(Plan::Numeric)
            }
            C::NONE => Some(Plan::Str),
            _ => None,
        },
    };
    plan.ok_or_else(|| {
        format!(
            "physical type {} with annotation {converted} has no frame column type",
            descr.physical_type()
        )
    })
}

/// A decimal's unscaled big-endian two's-complement bytes and scale as an `f64`.
fn decimal_to_f64(bytes: &[u8], scale: i32) -> f64 {
    let mut v = 0f64;
    for (i, &b) in bytes.iter().enumerate() {
        let digit = if i == 0 {
            f64::from(b as i8)
        } else {
            f64::from(b)
        };
        v = v * 256.0 + digit;
    }
    v / 10f64.powi(scale)
}

/// Converts one field by its column's plan; `Err` says why it cannot be.
fn value(field: Field, plan: Plan) -> Result<Value, String> {
    let num = |x: f64| {
        if x.is_finite() {
            Value::Num(x)
        } else {
            Value::Missing
        }
    };
    Ok(match field {
        Field::Null => Value::Missing,
        Field::Bool(b) => Value::Bool(b),
        Field::Long(v) if plan == (Plan::Timestamp { nanos: true }) => {
            Value::Ts(v.div_euclid(1_000_000_000))
        }
        Field::Byte(v) => Value::Num(f64::from(v)),
        Field::Short(v) => Value::Num(f64::from(v)),
        Field::Int(v) => Value::Num(f64::from(v)),
        Field::Long(v) => Value::Num(v as f64),
        Field::UByte(v) => Value::Num(f64::from(v)),
        Field::UShort(v) => Value::Num(f64::from(v)),
        Field::UInt(v) => Value::Num(f64::from(v)),
        Field::ULong(v) => Value::Num(v as f64),
        Field::Float16(v) => num(v.to_f64()),
        Field::Float(v) => num(f64::from(v)),
        Field::Double(v) => num(v),
        Field::Decimal(d) => num(decimal_to_f64(d.data(), d.scale())),
        Field::Str(s) => Value::Str(s),
        Field::Bytes(b) => match std::str::from_utf8(b.data()) {
            Ok(s) => Value::Str(s.to_owned()),
            Err(_) => Value::Str(b.data().iter().map(|x| format!("{x:02x}")).collect()),
        },
        Field::Date(days) => Value::Ts(i64::from(days) * 86_400),
        Field::TimeMillis(ms) => Value::Num(f64::from(ms) / 1e3),
        Field::TimeMicros(us) => Value::Num(us as f64 / 1e6),
        Field::TimestampMillis(ms) => Value::Ts(ms.div_euclid(1_000)),
        Field::TimestampMicros(us) => Value::Ts(us.div_euclid(1_000_000)),
        Field::Group(_) | Field::ListInternal(_) | Field::MapInternal(_) => {
            return Err("nested value".to_owned());
        }
    })
}

/// Adds a present or missing value to a column; a value of another type goes through its text form (a
/// forced type), and `Err(())` means it does not fit.
fn push_value(b: &mut Builder, v: Value) -> Result<(), ()> {
    match (b, v) {
        (b, Value::Missing) => {
            b.push_missing();
            Ok(())
        }
        (Builder::Numeric(col), Value::Num(x)) => {
            col.push(x);
            Ok(())
        }
        (Builder::Boolean(col), Value::Bool(x)) => {
            col.push(Some(x));
            Ok(())
        }
        (Builder::Timestamp(col), Value::Ts(x)) => {
            col.push(Some(x));
            Ok(())
        }
        (b, v) => match v.into_text() {
            Some(text) => b.push_text(&text),
            None => {
                b.push_missing();
                Ok(())
            }
        },
    }
}

/// The rows of an opened file; each row's fields in schema order, with the data row index.
fn rows(opened: Opened) -> RowIter<'static> {
    RowIter::from_file_into(Box::new(opened.reader))
}

/// Reads a Parquet file into a frame.
pub(crate) fn read_parquet(path: &Path, opts: &ReadOptions) -> Result<Frame, Error> {
    let opened = open(path, opts)?;
    let names = opened.names.clone();
    let plans = opened.plans.clone();
    let layout = Layout::new(path, &names, opts, true)?;
    let mut builders: Vec<Builder> = layout
        .features
        .iter()
        .map(|&(j, forced)| match forced {
            Some(k) => Builder::new(k, None),
            None => Builder::new(plans[j].kind(), Some(opts.max_categories)),
        })
        .collect();
    let mut labels = LabelBuilder::default();
    let bad = |row: u64, j: usize, reason: String| Error::BadValue {
        path: path.to_path_buf(),
        row,
        column: names[j].clone(),
        reason,
    };
    let mut iter = rows(opened);
    let mut n_rows = 0usize;
    while opts.max_rows.is_none_or(|m| n_rows < m) {
        let Some(row) = guarded(path, || Ok(iter.next()))? else {
            break;
        };
        let row = row.map_err(|e| parquet_error(path, e))?;
        let at = n_rows as u64;
        let mut values: Vec<Option<Value>> = Vec::with_capacity(names.len());
        for (j, (_, field)) in row.into_columns().into_iter().enumerate() {
            let plan = plans.get(j).copied().unwrap_or(Plan::Str);
            let v = value(field, plan).map_err(|reason| bad(at, j, reason))?;
            if let Value::Str(s) = &v {
                if s.len() > MAX_CELL_BYTES {
                    return Err(bad(
                        at,
                        j,
                        format!(
                            "cell is {} bytes long, more than the limit of {MAX_CELL_BYTES}",
                            s.len()
                        ),
                    ));
                }
            }
            values.push(Some(v));
        }
        if values.len() != names.len() {
            return Err(parquet_error(
                path,
                "a row does not have the schema's columns",
            ));
        }
        for ((j, forced), b) in layout.features.iter().zip(&mut builders) {
            let v = values[*j].take().unwrap_or(Value::Missing);
            let shown = v.clone().into_text().unwrap_or_default();
            if push_value(b, v).is_err() {
                let kind = forced.unwrap_or(b.kind());
                return Err(bad(
                    at,
                    *j,
                    format!("{shown:?} is not a valid {kind} value (the column's type was forced)"),
                ));
            }
        }
        if let Some(j) = layout.label {
            let v = values[j].take().unwrap_or(Value::Missing);
            let Some(text) = v.into_text() else {
                return Err(bad(at, j, "the label is missing".to_owned()));
            };
            labels
                .push(&text, at)
                .map_err(|e| label_error(path, &names[j], e))?;
        }
        n_rows += 1;
    }
    if n_rows == 0 {
        return Err(Error::NoRows {
            path: path.to_path_buf(),
        });
    }
    let labels = match layout.label {
        Some(j) => {
            let (codes, classes) = labels
                .finish()
                .map_err(|e| label_error(path, &names[j], e))?;
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
    let reason = match e {
        LabelError::TooMany => {
            return Error::TooManyClasses {
                path: path.to_path_buf(),
                column: column.to_owned(),
                limit: MAX_CLASSES,
            }
        }
        LabelError::TooLarge { value, .. } => {
            format!("integer label {value} is larger than the largest class index 65535")
        }
    };
    let row = match e {
        LabelError::TooLarge { at, .. } => at,
        LabelError::TooMany => 0,
    };
    Error::BadValue {
        path: path.to_path_buf(),
        row,
        column: column.to_owned(),
        reason,
    }
}

/// Streams the rows of a Parquet file (see [`crate::stream_records`]).
pub(crate) fn stream_parquet(
    path: &Path,
    opts: &ReadOptions,
) -> Result<(Vec<String>, RecordStream), Error> {
    let opened = open(path, opts)?;
    let layout = Layout::new(path, &opened.names, opts, false)?;
    let header = layout
        .kept
        .iter()
        .map(|&j| opened.names[j].clone())
        .collect();
    let plans = opened.plans.clone();
    let iter = ParquetRecords {
        path: path.to_path_buf(),
        iter: rows(opened),
        plans,
        kept: layout.kept,
        row: 0,
        max_rows: opts.max_rows,
        done: false,
    };
    Ok((header, Box::new(iter)))
}

/// The owned iterator behind [`stream_parquet`].
struct ParquetRecords {
    path: PathBuf,
    iter: RowIter<'static>,
    plans: Vec<Plan>,
    kept: Vec<usize>,
    row: u64,
    max_rows: Option<usize>,
    done: bool,
}

impl ParquetRecords {
    fn next_record(&mut self) -> Result<Option<Record>, Error> {
        if self
            .max_rows
            .is_some_and(|m| self.row >= u64::try_from(m).unwrap_or(u64::MAX))
        {
            return Ok(None);
        }
        let path = self.path.clone();
        let iter = &mut self.iter;
        let Some(row) = guarded(&path, || Ok(iter.next()))? else {
            return Ok(None);
        };
        let row = row.map_err(|e| parquet_error(&path, e))?;
        let mut fields: Vec<(String, Field)> = row.into_columns();
        if fields.len() != self.plans.len() {
            return Err(parquet_error(
                &path,
                "a row does not have the schema's columns",
            ));
        }
        let mut cells = Vec::with_capacity(self.kept.len());
        for &j in &self.kept {
            let (name, field) = std::mem::replace(&mut fields[j], (String::new(), Field::Null));
            let v = value(field, self.plans[j]).map_err(|reason| Error::BadValue {
                path: path.clone(),
                row: self.row,
                column: name.clone(),
                reason,
            })?;
            let text = v.into_text();
            if text.as_ref().is_some_and(|s| s.len() > MAX_CELL_BYTES) {
                return Err(Error::BadValue {
                    path: path.clone(),
                    row: self.row,
                    column: name,
                    reason: format!("cell is longer than the limit of {MAX_CELL_BYTES} bytes"),
                });
            }
            cells.push(text);
        }
        let record = Record {
            row: self.row,
            line: None,
            cells,
        };
        self.row += 1;
        Ok(Some(record))
    }
}

impl Iterator for ParquetRecords {
    type Item = Result<Record, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.next_record() {
            Ok(Some(r)) => Some(Ok(r)),
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
    use crate::read::{read_frame, stream_records};
    use ::parquet::data_type::{
        BoolType, ByteArray, ByteArrayType, DoubleType, Int32Type, Int64Type,
    };
    use ::parquet::file::properties::WriterProperties;
    use ::parquet::file::writer::SerializedFileWriter;
    use ::parquet::schema::parser::parse_message_type;
    use aegis_core::{ColumnData, MISSING_CODE};
    use std::sync::Arc;

    /// One column's cells for the test writer (`None` is null).
    enum Col {
        F64(Vec<Option<f64>>),
        I32(Vec<Option<i32>>),
        I64(Vec<Option<i64>>),
        Bool(Vec<Option<bool>>),
        Str(Vec<Option<&'static str>>),
    }

    fn split<T: Clone>(v: &[Option<T>]) -> (Vec<T>, Vec<i16>) {
        let values = v.iter().flatten().cloned().collect();
        let defs = v.iter().map(|x| i16::from(x.is_some())).collect();
        (values, defs)
    }

    /// Writes `groups` (row groups of columns) to a new `.parquet` file under `dir`.
    fn write(dir: &Path, name: &str, schema: &str, groups: &[Vec<Col>]) -> PathBuf {
        let path = dir.join(name);
        let schema = Arc::new(parse_message_type(schema).unwrap());
        let props = Arc::new(WriterProperties::builder().build());
        let mut w = SerializedFileWriter::new(File::create(&path).unwrap(), schema, props).unwrap();
        for group in groups {
            let mut rg = w.next_row_group().unwrap();
            for col in group {
                let mut cw = rg.next_column().unwrap().unwrap();
                match col {
                    Col::F64(v) => {
                        let (vals, defs) = split(v);
                        cw.typed::<DoubleType>()
                            .write_batch(&vals, Some(&defs), None)
                            .unwrap();
                    }
                    Col::I32(v) => {
                        let (vals, defs) = split(v);
                        cw.typed::<Int32Type>()
                            .write_batch(&vals, Some(&defs), None)
                            .unwrap();
                    }
                    Col::I64(v) => {
                        let (vals, defs) = split(v);
                        cw.typed::<Int64Type>()
                            .write_batch(&vals, Some(&defs), None)
                            .unwrap();
                    }
                    Col::Bool(v) => {
                        let (vals, defs) = split(v);
                        cw.typed::<BoolType>()
                            .write_batch(&vals, Some(&defs), None)
                            .unwrap();
                    }
                    Col::Str(v) => {
                        let (vals, defs) = split(v);
                        let vals: Vec<ByteArray> = vals.into_iter().map(ByteArray::from).collect();
                        cw.typed::<ByteArrayType>()
                            .write_batch(&vals, Some(&defs), None)
                            .unwrap();
                    }
                }
                cw.close().unwrap();
            }
            rg.close().unwrap();
        }
        w.close().unwrap();
        path
    }

    const SCHEMA: &str = "message m {
        OPTIONAL DOUBLE x;
        OPTIONAL INT32 n;
        OPTIONAL BOOLEAN b;
        OPTIONAL BYTE_ARRAY s (UTF8);
        OPTIONAL INT32 d (DATE);
        OPTIONAL INT64 ts (TIMESTAMP(MILLIS,true));
        OPTIONAL INT64 y;
    }";

    /// Two row groups, every type, a null in every feature column.
    fn sample(dir: &Path, name: &str) -> PathBuf {
        let g1 = vec![
            Col::F64(vec![Some(1.5), None]),
            Col::I32(vec![Some(7), Some(-3)]),
            Col::Bool(vec![Some(true), None]),
            Col::Str(vec![Some("red"), None]),
            Col::I32(vec![Some(19_783), None]),
            Col::I64(vec![Some(1_709_289_015_250), None]),
            Col::I64(vec![Some(1), Some(0)]),
        ];
        let g2 = vec![
            Col::F64(vec![Some(f64::NAN)]),
            Col::I32(vec![None]),
            Col::Bool(vec![Some(false)]),
            Col::Str(vec![Some("blue")]),
            Col::I32(vec![Some(0)]),
            Col::I64(vec![Some(-1)]),
            Col::I64(vec![Some(1)]),
        ];
        write(dir, name, SCHEMA, &[g1, g2])
    }

    fn data<'a>(f: &'a Frame, name: &str) -> &'a ColumnData {
        &f.column(name).unwrap().data
    }

    #[test]
    fn every_type_and_null_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = sample(dir.path(), "s.parquet");
        let opts = ReadOptions {
            label: Some("y".into()),
            ..ReadOptions::default()
        };
        let f = read_frame(&path, &opts).unwrap();
        assert_eq!(f.n_rows, 3);
        assert_eq!(f.source, path.display().to_string());
        assert!(
            matches!(data(&f, "x"), ColumnData::Numeric(v) if v[0] == 1.5 && v[1].is_nan() && v[2].is_nan())
        );
        assert!(
            matches!(data(&f, "n"), ColumnData::Numeric(v) if v[..2] == [7.0, -3.0] && v[2].is_nan())
        );
        assert_eq!(
            data(&f, "b"),
            &ColumnData::Boolean(vec![Some(true), None, Some(false)])
        );
        assert_eq!(
            data(&f, "s"),
            &ColumnData::Categorical {
                codes: vec![0, MISSING_CODE, 1],
                levels: vec!["red".into(), "blue".into()],
            }
        );
        // 19783 days is 2024-03-01; milliseconds are floored to seconds.
        assert_eq!(
            data(&f, "d"),
            &ColumnData::Timestamp(vec![Some(1_709_251_200), None, Some(0)])
        );
        assert_eq!(
            data(&f, "ts"),
            &ColumnData::Timestamp(vec![Some(1_709_289_015), None, Some(-1)])
        );
        let labels = f.labels.as_ref().unwrap();
        assert_eq!(labels.codes, vec![1, 0, 1]);
        assert_eq!(labels.classes, vec!["0", "1"]);
        assert!(f.column("y").is_none());
    }

    #[test]
    fn strings_with_many_values_are_text_and_forced_types_apply() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            "t.pq",
            "message m { OPTIONAL BYTE_ARRAY s (UTF8); OPTIONAL BYTE_ARRAY when (UTF8); }",
            &[vec![
                Col::Str(vec![Some("a"), Some("b"), Some("c")]),
                Col::Str(vec![Some("2024-01-01"), None, Some("1970-01-01T00:00:05Z")]),
            ]],
        );
        let mut opts = ReadOptions {
            max_categories: 2,
            ..ReadOptions::default()
        };
        opts.types.insert("when".into(), ColumnKind::Timestamp);
        let f = read_frame(&path, &opts).unwrap();
        assert_eq!(data(&f, "s").kind(), ColumnKind::Text);
        assert_eq!(
            data(&f, "when"),
            &ColumnData::Timestamp(vec![Some(1_704_067_200), None, Some(5)])
        );
        opts.types.insert("s".into(), ColumnKind::Numeric);
        let e = read_frame(&path, &opts).unwrap_err();
        assert!(
            matches!(&e, Error::BadValue { row: 0, column, .. } if column == "s"),
            "{e}"
        );
    }

    #[test]
    fn string_labels_are_sorted_and_a_null_label_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let schema = "message m { OPTIONAL DOUBLE x; OPTIONAL BYTE_ARRAY y (UTF8); }";
        let path = write(
            dir.path(),
            "l.parquet",
            schema,
            &[vec![
                Col::F64(vec![Some(1.0), Some(2.0)]),
                Col::Str(vec![Some("spam"), Some("ham")]),
            ]],
        );
        let opts = ReadOptions {
            label: Some("y".into()),
            ..ReadOptions::default()
        };
        let labels = read_frame(&path, &opts).unwrap().labels.unwrap();
        assert_eq!(labels.classes, vec!["ham", "spam"]);
        assert_eq!(labels.codes, vec![1, 0]);

        let path = write(
            dir.path(),
            "n.parquet",
            schema,
            &[vec![
                Col::F64(vec![Some(1.0), Some(2.0)]),
                Col::Str(vec![Some("spam"), None]),
            ]],
        );
        let e = read_frame(&path, &opts).unwrap_err();
        assert!(matches!(e, Error::BadValue { row: 1, .. }), "{e}");
        assert!(e.to_string().contains("label is missing"), "{e}");
    }

    #[test]
    fn streamed_records_match_the_frame() {
        let dir = tempfile::tempdir().unwrap();
        let path = sample(dir.path(), "s.parquet");
        let opts = ReadOptions {
            label: Some("y".into()),
            drop: vec!["n".into()],
            ..ReadOptions::default()
        };
        let frame = read_frame(&path, &opts).unwrap();
        let (header, records) = stream_records(&path, &opts).unwrap();
        assert_eq!(header, vec!["x", "b", "s", "d", "ts", "y"]);
        let records: Vec<Record> = records.collect::<Result<_, _>>().unwrap();
        assert_eq!(records.len(), 3);
        for (i, r) in records.iter().enumerate() {
            assert_eq!((r.row, r.line), (i as u64, None));
            for (k, col) in frame.columns.iter().enumerate() {
                let expected = match &col.data {
                    ColumnData::Timestamp(v) => v[i].map(format_timestamp),
                    other => other.display(i),
                };
                assert_eq!(r.cells[k], expected, "row {i} column {}", col.name);
            }
        }
        assert_eq!(records[0].cells[3].as_deref(), Some("2024-03-01T00:00:00Z"));
        let limited = ReadOptions {
            max_rows: Some(2),
            ..ReadOptions::default()
        };
        assert_eq!(stream_records(&path, &limited).unwrap().1.count(), 2);
        assert_eq!(read_frame(&path, &limited).unwrap().n_rows, 2);
    }

    #[test]
    fn parquet_is_recognised_by_its_magic_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = sample(dir.path(), "s.parquet");
        let renamed = dir.path().join("data.bin");
        std::fs::copy(&path, &renamed).unwrap();
        assert_eq!(
            read_frame(&renamed, &ReadOptions::default())
                .unwrap()
                .n_rows,
            3
        );
        // A CSV under any name is still CSV.
        let csv = dir.path().join("data.txt");
        std::fs::write(&csv, "a\n1\n").unwrap();
        assert_eq!(read_frame(&csv, &ReadOptions::default()).unwrap().n_rows, 1);
    }

    #[test]
    fn nested_columns_are_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            "r.parquet",
            "message m { REPEATED INT32 tags; }",
            &[],
        );
        let e = read_frame(&path, &ReadOptions::default()).unwrap_err();
        assert!(
            matches!(&e, Error::UnsupportedColumn { column, .. } if column == "tags"),
            "{e}"
        );
        let path = write(
            dir.path(),
            "g.parquet",
            "message m { OPTIONAL group point { OPTIONAL DOUBLE x; } }",
            &[],
        );
        let e = read_frame(&path, &ReadOptions::default()).unwrap_err();
        assert!(
            matches!(&e, Error::UnsupportedColumn { column, .. } if column == "point"),
            "{e}"
        );
    }

    #[test]
    fn corrupt_and_truncated_files_are_errors_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = sample(dir.path(), "s.parquet");
        let bytes = std::fs::read(&path).unwrap();
        let opts = ReadOptions::default();
        let mut cases: Vec<Vec<u8>> = vec![
            b"PAR1".to_vec(),
            b"PAR1 not really parquet PAR1".to_vec(),
            bytes[..bytes.len() / 2].to_vec(),
            bytes[..bytes.len() - 9].to_vec(),
        ];
        // Flip bytes through the data pages and the footer (deterministic positions).
        for i in (4..bytes.len()).step_by(7) {
            let mut b = bytes.clone();
            b[i] ^= 0x5a;
            cases.push(b);
        }
        let bad = dir.path().join("bad.parquet");
        let mut errors = 0;
        for case in cases {
            std::fs::write(&bad, &case).unwrap();
            if let Err(e) = read_frame(&bad, &opts) {
                errors += 1;
                assert!(e.to_string().contains("bad.parquet"), "{e}");
            }
            if let Ok((_, it)) = stream_records(&bad, &opts) {
                for r in it {
                    if let Err(e) = r {
                        assert!(e.to_string().contains("bad.parquet"), "{e}");
                    }
                }
            }
        }
        assert!(errors >= 4);
        let small = ReadOptions {
            max_bytes: 100,
            ..ReadOptions::default()
        };
        assert!(matches!(
            read_frame(&path, &small),
            Err(Error::TooLarge { .. })
        ));
    }

    #[test]
    fn decimals_convert_with_their_scale() {
        assert_eq!(decimal_to_f64(&[0x30, 0x39], 2), 123.45);
        assert_eq!(decimal_to_f64(&[0xff, 0xff, 0xff, 0x85], 1), -12.3);
        assert_eq!(decimal_to_f64(&[], 0), 0.0);
    }
}
