//! Datasets as the numeric pillars see them: CSV files read into [`aegis_core::Table`], and the
//! [`Schema`](aegis_core::Schema) that says what a valid row is.
//!
//! Audits, attacks and the drift monitor all need the same two things from a dataset: dense `f32` features
//! with class labels, and the bounds and kinds of each feature so that adversarial rows stay realistic. This
//! crate reads the first ([`read_csv`]), infers the second from data ([`infer_schema`]), stores it as a TOML
//! file a person can review and tighten ([`save_schema`], [`load_schema`]), and lines a stored schema up with a
//! table's columns ([`align_schema`]).
//!
//! Datasets are untrusted input: every reader has a byte bound, never panics, and reports bad cells with the
//! file, line and column so the user can fix them.

#![forbid(unsafe_code)]

mod cell;
mod error;
mod schema;
mod spec;

pub use self::cell::{parse_bool, parse_number, parse_timestamp};
pub use self::error::Error;
pub use self::schema::{
    align_schema, feature_schema, infer_schema, input_columns, load_model_schema, load_schema,
    save_schema,
};
pub use self::spec::{
    CellValue, ColumnSpec, DataSchema, LabelSpec, RowBounds, SchemaProblem, ValueViolation,
    DATA_SCHEMA_VERSION,
};

mod dataset_schema;
pub use self::dataset_schema::{
    check_frame, check_records, data_schema_to_toml, infer_data_schema, load_data_schema,
    parse_data_schema, rules as schema_rules, save_data_schema, violation_rule, SchemaChecker,
    MAX_LISTED_ROWS as SCHEMA_MAX_LISTED_ROWS, MAX_UNIQUE_TRACKED, RULES as SCHEMA_RULES,
};

mod columns;
pub use self::columns::{
    split_row, Chunk, ChunkOptions, CsvChunks, Field, DEFAULT_CHUNK_BYTES, MAX_ROW_BYTES,
};

mod fold;
pub use self::fold::{fold_pair, FoldOptions, Folded};
mod frame_csv;
mod options;
mod parquet;
mod read;
mod table;
pub use self::options::{ReadOptions, Record, RecordStream, MAX_CELL_BYTES, MAX_COLUMNS};
pub use self::read::{read_frame, read_frame_bytes, stream_records};
pub use self::table::{read_table, table_from_frame};
