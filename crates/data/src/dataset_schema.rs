//! Dataset schemas (`aegis schema infer` / `aegis schema check`): infer a [`DataSchema`] from a trusted
//! [`Frame`], store it as TOML a person can review, and check later datasets against it.
//!
//! A schema check is the cheapest guard against poisoned or broken training data: a new column, a value far
//! outside the range ever seen, a category nobody has used, a class the model was never meant to learn or a
//! column that suddenly goes missing all show up before a model learns from them. Every violation becomes an
//! [`aegis_core::Finding`] with one finding per (column, rule), the first offending 0-based data rows (at most
//! [`MAX_LISTED_ROWS`], the total in the evidence) and a few example values.
//!
//! Two ways in, one set of checks: [`check_frame`] for a dataset already in memory and [`SchemaChecker`] for
//! a stream of `(row, cells)` records, so a dataset larger than memory is checked in bounded memory. Both
//! drive the same per-column state, so they report the same findings on the same data. Uniqueness is checked
//! through 64-bit hashes of the values, keyed at random per run so a file cannot be crafted to collide: a
//! collision (odds about n²/2⁶⁵) could report a false duplicate,
//! and at most [`MAX_UNIQUE_TRACKED`] distinct values are remembered per column (about 64 MiB), after which
//! the check stops and says so in its evidence.
//!
//! Inference keeps what the data showed: kinds, observed ranges, whole-number columns, sorted categories,
//! missing rates with a little slack, id columns, the label set. It is a starting point to review, not truth.

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, HashSet};
use std::hash::BuildHasher;
use std::path::Path;

use aegis_core::{
    format_timestamp, ColumnData, ColumnKind, Finding, Frame, Location, RuleDoc, Severity,
};

use crate::error::Error;
use crate::spec::{
    CellValue, ColumnSpec, DataSchema, LabelSpec, RowBounds, ValueViolation, DATA_SCHEMA_VERSION,
};

/// At most this many offending rows are listed per finding; the evidence carries the total.
pub const MAX_LISTED_ROWS: usize = 50;

/// At most this many distinct values are remembered per `unique` column (8-byte hashes).
pub const MAX_UNIQUE_TRACKED: usize = 1 << 22;

/// Example values per finding.
const MAX_EXAMPLES: usize = 5;

/// Example values are cut to this many characters.
const MAX_EXAMPLE_CHARS: usize = 80;

/// A categorical column with more distinct values than this gets no `categories` list when inferred.
const MAX_INFERRED_CATEGORIES: usize = 10_000;

/// A column is inferred `unique` only with at least this many present values.
const MIN_UNIQUE_ROWS: usize = 20;

const ATLAS_POISON: &[&str] = &["AML.T0020"];
const CWE_INPUT_VALIDATION: &[u32] = &[20];

/// A required column is absent.
pub const MISSING_COLUMN: RuleDoc = RuleDoc {
    id: "AEG-SCH-001",
    name: "schema-missing-column",
    severity: Severity::High,
    summary: "A column the schema requires is not in the data.",
    why: "A model trained or served without one of its inputs silently learns or predicts from a different \
          feature set; a dropped column can also hide which rows were changed.",
    fix: "Restore the column (check the export or join that produced the file), or, if it was removed on \
          purpose, set `required = false` or delete its [[column]] table in the schema.",
    atlas: ATLAS_POISON,
    cwe: CWE_INPUT_VALIDATION,
};

/// A column that the schema does not describe.
pub const UNEXPECTED_COLUMN: RuleDoc = RuleDoc {
    id: "AEG-SCH-002",
    name: "schema-unexpected-column",
    severity: Severity::Low,
    summary: "The data has a column the schema does not describe.",
    why: "A new column can leak the label or carry an injected trigger feature that a model will happily learn.",
    fix: "Find out where the column comes from; drop it before training, or add a reviewed [[column]] table \
          for it to the schema.",
    atlas: ATLAS_POISON,
    cwe: CWE_INPUT_VALIDATION,
};

/// Values that do not parse as the column's kind.
pub const TYPE_MISMATCH: RuleDoc = RuleDoc {
    id: "AEG-SCH-003",
    name: "schema-type-mismatch",
    severity: Severity::High,
    summary: "Values in a column are not of the schema's type.",
    why: "Unparsable values are turned into missing values, zeros or new categories by downstream code, \
          which changes what the model learns; an attacker can use that to inject rows the pipeline misreads.",
    fix: "Inspect the listed rows: fix the export (decimal separators, units, quoting) or drop the rows; change \
          `kind` in the schema only if the column really changed type.",
    atlas: ATLAS_POISON,
    cwe: CWE_INPUT_VALIDATION,
};

/// Numbers, times or text lengths outside the schema's bounds.
pub const OUT_OF_RANGE: RuleDoc = RuleDoc {
    id: "AEG-SCH-004",
    name: "schema-value-out-of-range",
    severity: Severity::Medium,
    summary: "Values lie outside the schema's bounds (min/max, earliest/latest or max_length).",
    why: "Values never seen in trusted data are a classic sign of injected or corrupted rows, and extreme \
          values pull a model's decision boundary.",
    fix: "Inspect the listed rows; drop or correct them, or widen the bound in the schema if the new range is \
          legitimate.",
    atlas: ATLAS_POISON,
    cwe: CWE_INPUT_VALIDATION,
};

/// Fractional values in a whole-number column.
pub const NOT_INTEGER: RuleDoc = RuleDoc {
    id: "AEG-SCH-005",
    name: "schema-value-not-integer",
    severity: Severity::Medium,
    summary: "A whole-number column holds fractional values.",
    why: "Counts, codes and ids that stop being whole numbers point to a broken join, a unit change or \
          crafted values (a rare exact fraction is a common backdoor trigger).",
    fix: "Inspect the listed rows and correct or drop them; set `integer = false` only if fractions are now \
          legitimate.",
    atlas: ATLAS_POISON,
    cwe: CWE_INPUT_VALIDATION,
};

/// Values outside the allowed categories.
pub const UNKNOWN_CATEGORY: RuleDoc = RuleDoc {
    id: "AEG-SCH-006",
    name: "schema-unknown-category",
    severity: Severity::Medium,
    summary: "A categorical column holds values outside the schema's categories.",
    why: "A category never seen in trusted data has no learned meaning; a rare new token that always comes with \
          one label is how many backdoor triggers look.",
    fix: "Inspect the listed rows; map typos to known categories, drop the rows, or add the category to the \
          schema after review.",
    atlas: ATLAS_POISON,
    cwe: CWE_INPUT_VALIDATION,
};

/// More missing cells than allowed.
pub const MISSING_RATE: RuleDoc = RuleDoc {
    id: "AEG-SCH-007",
    name: "schema-missing-rate-exceeded",
    severity: Severity::Medium,
    summary: "A column has more missing values than the schema allows (max_missing).",
    why: "A jump in missing values changes what imputation feeds the model and often means a broken upstream \
          source or rows that were tampered with.",
    fix: "Find out why values are missing in the listed rows; fix the source, drop the rows, or raise \
          `max_missing` after review.",
    atlas: ATLAS_POISON,
    cwe: CWE_INPUT_VALIDATION,
};

/// Repeated values in a unique column.
pub const DUPLICATE_VALUE: RuleDoc = RuleDoc {
    id: "AEG-SCH-008",
    name: "schema-duplicate-in-unique-column",
    severity: Severity::Medium,
    summary: "A column that must be unique (an id) repeats values.",
    why: "Repeated ids mean duplicated or replayed rows; duplicating rows with changed labels is a cheap way to \
          poison a training set.",
    fix: "Inspect the listed rows and the earlier rows with the same value; drop the copies, or set \
          `unique = false` if the column is not an id.",
    atlas: ATLAS_POISON,
    cwe: CWE_INPUT_VALIDATION,
};

/// A label class the schema does not list.
pub const UNKNOWN_LABEL: RuleDoc = RuleDoc {
    id: "AEG-SCH-009",
    name: "schema-unknown-label-class",
    severity: Severity::Medium,
    summary: "The label column holds classes (or missing labels) the schema does not list.",
    why: "A model learns whatever classes it is given: a stray class or an empty label is either a data error \
          or an attempt to teach the model something new.",
    fix: "Inspect the listed rows; correct or drop them, or add the class to `label.classes` after review.",
    atlas: ATLAS_POISON,
    cwe: CWE_INPUT_VALIDATION,
};

/// A label class of the schema that never appears.
pub const MISSING_LABEL_CLASS: RuleDoc = RuleDoc {
    id: "AEG-SCH-010",
    name: "schema-missing-label-class",
    severity: Severity::Medium,
    summary: "A class listed in the schema does not appear in the data.",
    why: "A model trained without a class cannot predict it; removing every row of a class (say, every fraud \
          case) is a blunt but effective poisoning.",
    fix: "Check how the dataset was sampled or filtered and restore the missing class, or remove it from \
          `label.classes` if it was retired.",
    atlas: ATLAS_POISON,
    cwe: CWE_INPUT_VALIDATION,
};

/// Too few or too many rows.
pub const ROW_COUNT: RuleDoc = RuleDoc {
    id: "AEG-SCH-011",
    name: "schema-row-count-out-of-bounds",
    severity: Severity::Medium,
    summary: "The dataset has fewer or more rows than the schema allows.",
    why: "A truncated or inflated file changes what a model learns; bulk injection of rows shows up first as \
          a row count.",
    fix: "Compare with the previous snapshot and find out where rows were lost or added; adjust \
          `rows.min`/`rows.max` only after review.",
    atlas: ATLAS_POISON,
    cwe: CWE_INPUT_VALIDATION,
};

/// Every rule of the schema check.
pub const RULES: &[RuleDoc] = &[
    MISSING_COLUMN,
    UNEXPECTED_COLUMN,
    TYPE_MISMATCH,
    OUT_OF_RANGE,
    NOT_INTEGER,
    UNKNOWN_CATEGORY,
    MISSING_RATE,
    DUPLICATE_VALUE,
    UNKNOWN_LABEL,
    MISSING_LABEL_CLASS,
    ROW_COUNT,
];

/// Every rule of the schema check (for `aegis rules`).
pub fn rules() -> &'static [RuleDoc] {
    RULES
}

/// The rule a single-value violation belongs to (for the gateway, which checks values one at a time).
pub fn violation_rule(violation: &ValueViolation) -> &'static RuleDoc {
    match violation {
        ValueViolation::Missing => &MISSING_RATE,
        ValueViolation::Type { .. } => &TYPE_MISMATCH,
        ValueViolation::NotInteger { .. } => &NOT_INTEGER,
        ValueViolation::UnknownCategory => &UNKNOWN_CATEGORY,
        _ => &OUT_OF_RANGE,
    }
}

// ---------------------------------------------------------------------------------------------------------
// Inference

/// Infers a schema from a trusted frame.
///
/// Per column: its kind; `required = true`; `max_missing` the observed missing rate plus 0.01, rounded up to
/// a thousandth and capped at 1 (a column never missing stays at 0); numeric `min`/`max` and `integer` when
/// every value is whole; sorted `categories` for categorical (up to 10,000 values) and boolean columns;
/// `max_length` (characters) for text; `earliest`/`latest` for timestamps; `unique` when at least 20 values
/// are present and all differ, for whole-number, categorical and text columns only (a column of random
/// decimals is all distinct without being an id). The label set comes from `frame.labels`, and `rows.min = 1`.
pub fn infer_data_schema(frame: &Frame) -> DataSchema {
    let columns = frame
        .columns
        .iter()
        .map(|c| infer_column(&c.name, &c.data, frame.n_rows))
        .collect();
    let label = frame.labels.as_ref().map(|l| {
        let counts = l.counts();
        LabelSpec {
            name: l.column.clone(),
            classes: l
                .classes
                .iter()
                .zip(counts)
                .filter(|(_, n)| *n > 0)
                .map(|(c, _)| c.clone())
                .collect(),
        }
    });
    DataSchema {
        version: DATA_SCHEMA_VERSION,
        rows: Some(RowBounds {
            min: Some(1),
            max: None,
        }),
        label,
        columns,
    }
}

fn infer_column(name: &str, data: &ColumnData, n_rows: usize) -> ColumnSpec {
    let mut spec = ColumnSpec::new(name, data.kind());
    // Blank text counts as missing, as it does when checking.
    let blank = |s: &str| s.trim().is_empty();
    let missing = (0..n_rows)
        .filter(|&r| match data {
            ColumnData::Text(v) => v.get(r).and_then(Option::as_deref).is_none_or(blank),
            ColumnData::Categorical { codes, levels } => codes
                .get(r)
                .and_then(|&c| levels.get(c as usize))
                .is_none_or(|l| blank(l)),
            _ => data.is_missing(r),
        })
        .count();
    let present = n_rows - missing;
    if missing > 0 && n_rows > 0 {
        let rate = missing as f64 / n_rows as f64;
        spec.max_missing = (((rate + 0.01) * 1000.0).ceil() / 1000.0).min(1.0);
    }
    let enough = present >= MIN_UNIQUE_ROWS;
    match data {
        ColumnData::Numeric(v) => {
            let mut finite = v.iter().take(n_rows).copied().filter(|x| x.is_finite());
            let (mut lo, mut hi, mut whole, mut any) =
                (f64::INFINITY, f64::NEG_INFINITY, true, false);
            for x in finite.clone() {
                lo = lo.min(x);
                hi = hi.max(x);
                whole &= x.fract() == 0.0;
                any = true;
            }
            if any {
                spec.min = Some(lo);
                spec.max = Some(hi);
                spec.integer = whole;
            }
            if whole && any && enough {
                let mut seen = HashSet::new();
                spec.unique = finite.clone().count() == present
                    && finite.all(|x| seen.insert((x + 0.0).to_bits()));
            }
        }
        ColumnData::Categorical { codes, levels } => {
            let mut used = vec![false; levels.len()];
            let mut all_distinct = true;
            for &c in codes.iter().take(n_rows) {
                if let Some(u) = used.get_mut(c as usize) {
                    all_distinct &= !*u;
                    *u = true;
                }
            }
            let mut cats: Vec<String> = levels
                .iter()
                .zip(&used)
                .filter(|(l, u)| **u && !l.trim().is_empty())
                .map(|(l, _)| l.clone())
                .collect();
            cats.sort();
            cats.dedup();
            if !cats.is_empty() && cats.len() <= MAX_INFERRED_CATEGORIES {
                spec.categories = Some(cats);
            }
            spec.unique = enough && all_distinct;
        }
        ColumnData::Boolean(v) => {
            let mut cats: Vec<String> = v
                .iter()
                .take(n_rows)
                .flatten()
                .map(|b| b.to_string())
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect();
            cats.sort();
            if !cats.is_empty() {
                spec.categories = Some(cats);
            }
        }
        ColumnData::Text(v) => {
            let mut present_text = v
                .iter()
                .take(n_rows)
                .flatten()
                .filter(|s| !s.trim().is_empty());
            spec.max_length = present_text.clone().map(|s| s.chars().count()).max();
            if enough {
                let mut seen = HashSet::new();
                spec.unique = present_text.clone().count() == present
                    && present_text.all(|s| seen.insert(s.as_str()));
            }
        }
        ColumnData::Timestamp(v) => {
            let times = v.iter().take(n_rows).flatten();
            spec.earliest = times.clone().min().copied();
            spec.latest = times.max().copied();
        }
    }
    spec
}

// ---------------------------------------------------------------------------------------------------------
// TOML

/// The comment at the top of a saved dataset schema.
const HEADER: &str = "\
# Aegis dataset schema (aegis schema infer / aegis schema check). Review it and tighten or widen bounds.
# version                 schema format version (1).
# [rows] min, max         bounds on the number of data rows (header excluded); either may be omitted.
# [label] name, classes   the label column and every class it may hold (each is expected to appear).
# [[column]]              one table per feature column, in file order:
#   name                  header name
#   kind                  numeric | categorical | boolean | text | timestamp; every present cell must parse as it
#   required              true: the column must exist in the data
#   max_missing           highest accepted rate of missing cells, 0 to 1 (0: never missing)
#   min, max              bounds for numeric columns; integer = true: whole numbers only
#   categories            the accepted values of a categorical or boolean column
#   unique                true: no value may appear twice (an id column)
#   max_length            longest text, in characters (text columns)
#   earliest, latest      bounds for timestamp columns, seconds since 1970-01-01T00:00:00Z (UTC)
# For model assessment, hardening and the gateway (the same file; numeric and boolean columns are the inputs):
#   immutable             true: an attacker cannot change this column (date of birth, account age)
#   eps                   this column's own perturbation budget, in its units
#   one_hot               group name: 0/1 columns of one group hold exactly one 1 per row

";

/// The schema as TOML with an explanatory header comment; timestamp bounds get their date as a comment.
pub fn data_schema_to_toml(schema: &DataSchema) -> String {
    // A DataSchema is plain tables, strings and numbers: serialising it cannot fail, but never panic.
    let body = toml::to_string(schema)
        .unwrap_or_else(|e| format!("# the schema could not be written as TOML: {e}\n"));
    let mut out = String::with_capacity(HEADER.len() + body.len() + 64);
    out.push_str(HEADER);
    // Inside a multi-line string (a column name with a newline) no line is a key.
    let mut in_string = false;
    for line in body.lines() {
        out.push_str(line);
        let was_in_string = in_string;
        if (line.matches("\"\"\"").count() + line.matches("'''").count()) % 2 == 1 {
            in_string = !in_string;
        }
        if was_in_string || in_string {
            out.push('\n');
            continue;
        }
        if let Some((key, value)) = line.split_once(" = ") {
            if key == "earliest" || key == "latest" {
                if let Ok(t) = value.trim().parse::<i64>() {
                    out.push_str("  # ");
                    out.push_str(&format_timestamp(t));
                }
            }
        }
        out.push('\n');
    }
    out
}

/// Writes the schema to `path` as TOML ([`data_schema_to_toml`]).
///
/// # Errors
///
/// [`Error::Io`] when the file cannot be written.
pub fn save_data_schema(schema: &DataSchema, path: &Path) -> Result<(), Error> {
    std::fs::write(path, data_schema_to_toml(schema)).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Parses schema TOML text and validates it; `path` names the file in errors.
///
/// # Errors
///
/// [`Error::SchemaParse`] when the text is not TOML of the schema's shape (unknown keys included),
/// [`Error::InvalidDataSchema`] when a value is inconsistent (see [`DataSchema::validate`]).
pub fn parse_data_schema(text: &str, path: &Path) -> Result<DataSchema, Error> {
    let schema: DataSchema = toml::from_str(text).map_err(|source| Error::SchemaParse {
        path: path.to_path_buf(),
        source,
    })?;
    schema.validate().map_err(|p| Error::InvalidDataSchema {
        path: path.to_path_buf(),
        subject: p.subject,
        reason: p.reason,
    })?;
    Ok(schema)
}

/// Reads and validates a dataset schema file (at most 16 MiB).
///
/// # Errors
///
/// [`Error::Io`] or [`Error::TooLarge`] when the file cannot be read, otherwise as [`parse_data_schema`].
pub fn load_data_schema(path: &Path) -> Result<DataSchema, Error> {
    let text = crate::schema::read_schema_text(path)?;
    parse_data_schema(&text, path)
}

// ---------------------------------------------------------------------------------------------------------
// Checking

/// A value cut to [`MAX_EXAMPLE_CHARS`] characters.
fn excerpt(value: &str) -> String {
    match value.char_indices().nth(MAX_EXAMPLE_CHARS) {
        Some((cut, _)) => format!("{}…", &value[..cut]),
        None => value.to_owned(),
    }
}

/// A name quoted with escapes for a message.
fn quoted(name: &str) -> String {
    format!("{:?}", excerpt(name))
}

/// Offending rows of one (column, rule): the count, the first rows and a few distinct example values.
#[derive(Debug, Default)]
struct Tally {
    count: u64,
    rows: Vec<u64>,
    examples: Vec<String>,
}

impl Tally {
    fn add(&mut self, row: u64, example: impl FnOnce() -> Option<String>) {
        self.count += 1;
        if self.rows.len() < MAX_LISTED_ROWS {
            self.rows.push(row);
        }
        if self.examples.len() < MAX_EXAMPLES {
            if let Some(e) = example() {
                let e = excerpt(&e);
                if !self.examples.contains(&e) {
                    self.examples.push(e);
                }
            }
        }
    }

    /// `rows 3, 7 and 12 more`.
    fn rows_text(&self) -> String {
        let listed: Vec<String> = self.rows.iter().take(10).map(u64::to_string).collect();
        let more = self.count.saturating_sub(listed.len() as u64);
        let mut s = format!(
            "{} {}",
            if self.count == 1 { "row" } else { "rows" },
            listed.join(", ")
        );
        if more > 0 {
            s.push_str(&format!(" and {more} more"));
        }
        s
    }

    fn examples_text(&self) -> String {
        if self.examples.is_empty() {
            return String::new();
        }
        let list: Vec<String> = self.examples.iter().map(|e| format!("{e:?}")).collect();
        format!(" (e.g. {})", list.join(", "))
    }

    fn finding(
        &self,
        rule: &RuleDoc,
        source: &str,
        column: &str,
        n_rows: u64,
        message: String,
    ) -> Finding {
        let rate = if n_rows == 0 {
            0.0
        } else {
            self.count as f64 / n_rows as f64
        };
        Finding::new(
            rule,
            Location::Dataset {
                path: source.to_owned(),
                row: self.rows.first().copied(),
                column: Some(column.to_owned()),
            },
            message,
        )
        .with_evidence_field("column", column)
        .with_evidence_field("count", self.count)
        .with_evidence_field("rows_checked", n_rows)
        .with_evidence_field("rate", rate)
        .with_evidence_field("rows", self.rows.clone())
        .with_evidence_field("examples", self.examples.clone())
        .with_evidence_field("confidence", 1.0)
        .with_evidence_field(
            "confidence_text",
            "certain: every listed value was compared exactly with the schema",
        )
    }
}

/// A 64-bit hash of a present value for the uniqueness check. The keys are random per run, so a data file
/// cannot be crafted to collide and fake duplicates.
fn value_hash(keys: &RandomState, value: &CellValue<'_>) -> u64 {
    match *value {
        CellValue::Missing => keys.hash_one(0u8),
        CellValue::Number(x) => keys.hash_one((1u8, (x + 0.0).to_bits())),
        CellValue::Boolean(b) => keys.hash_one((2u8, b)),
        CellValue::Text(s) => keys.hash_one((3u8, s)),
        CellValue::Timestamp(t) => keys.hash_one((4u8, t)),
    }
}

/// What is known so far about one schema column.
#[derive(Debug)]
struct ColumnState {
    spec: ColumnSpec,
    /// Categories as a set, for categorical columns with many categories.
    category_set: Option<HashSet<String>>,
    missing: Tally,
    type_err: Tally,
    bound: Tally,
    not_integer: Tally,
    unknown_category: Tally,
    duplicate: Tally,
    seen: HashSet<u64>,
    hash_keys: RandomState,
    unique_truncated: bool,
}

impl ColumnState {
    fn new(spec: &ColumnSpec) -> Self {
        let category_set = match (&spec.categories, spec.kind) {
            (Some(c), ColumnKind::Categorical) if c.len() > 8 => Some(c.iter().cloned().collect()),
            _ => None,
        };
        ColumnState {
            spec: spec.clone(),
            category_set,
            missing: Tally::default(),
            type_err: Tally::default(),
            bound: Tally::default(),
            not_integer: Tally::default(),
            unknown_category: Tally::default(),
            duplicate: Tally::default(),
            seen: HashSet::new(),
            hash_keys: RandomState::new(),
            unique_truncated: false,
        }
    }

    /// Records one cell: `parsed` is the cell parsed per the schema's kind, `raw` its text for examples.
    fn observe(
        &mut self,
        row: u64,
        parsed: Result<CellValue<'_>, ValueViolation>,
        raw: impl FnOnce() -> Option<String>,
    ) {
        let value = match parsed {
            Ok(CellValue::Missing) => {
                self.missing.add(row, || None);
                return;
            }
            Ok(v) => v,
            Err(_) => {
                self.type_err.add(row, raw);
                return;
            }
        };
        if self.spec.bound_violation(&value).is_some() {
            self.bound.add(row, || value.canonical());
        }
        if self.spec.integer_violation(&value).is_some() {
            self.not_integer.add(row, || value.canonical());
        }
        let unknown = match (&self.category_set, value) {
            (Some(set), CellValue::Text(s)) => !set.contains(s),
            _ => self.spec.category_violation(&value).is_some(),
        };
        if unknown {
            self.unknown_category.add(row, || value.canonical());
        }
        if self.spec.unique && !self.unique_truncated {
            let h = value_hash(&self.hash_keys, &value);
            if self.seen.contains(&h) {
                self.duplicate.add(row, || value.canonical());
            } else if self.seen.len() >= MAX_UNIQUE_TRACKED {
                self.unique_truncated = true;
                self.seen = HashSet::new();
            } else {
                self.seen.insert(h);
            }
        }
    }

    fn bounds_text(&self) -> String {
        let s = &self.spec;
        let show = |v: Option<String>| v.unwrap_or_else(|| "…".into());
        match s.kind {
            ColumnKind::Numeric => format!(
                "[{}, {}]",
                show(s.min.map(aegis_core::format_number)),
                show(s.max.map(aegis_core::format_number))
            ),
            ColumnKind::Timestamp => format!(
                "[{}, {}]",
                show(s.earliest.map(format_timestamp)),
                show(s.latest.map(format_timestamp))
            ),
            _ => format!("max_length {}", show(s.max_length.map(|n| n.to_string()))),
        }
    }

    fn finish(self, source: &str, n_rows: u64, out: &mut Vec<Finding>) {
        let name = self.spec.name.as_str();
        let col = quoted(name);
        if self.type_err.count > 0 {
            let t = &self.type_err;
            let msg = format!(
                "column {col}: {} of {n_rows} values are not valid {} values{}; {}",
                t.count,
                self.spec.kind,
                t.examples_text(),
                t.rows_text()
            );
            out.push(
                t.finding(&TYPE_MISMATCH, source, name, n_rows, msg)
                    .with_evidence_field("expected_kind", self.spec.kind.as_str()),
            );
        }
        if self.bound.count > 0 {
            let t = &self.bound;
            let bounds = self.bounds_text();
            let msg = format!(
                "column {col}: {} of {n_rows} values are outside the schema's bounds {bounds}{}; {}",
                t.count,
                t.examples_text(),
                t.rows_text()
            );
            out.push(
                t.finding(&OUT_OF_RANGE, source, name, n_rows, msg)
                    .with_evidence_field("bounds", bounds),
            );
        }
        if self.not_integer.count > 0 {
            let t = &self.not_integer;
            let msg = format!(
                "column {col}: {} of {n_rows} values are not whole numbers{}; {}",
                t.count,
                t.examples_text(),
                t.rows_text()
            );
            out.push(t.finding(&NOT_INTEGER, source, name, n_rows, msg));
        }
        if self.unknown_category.count > 0 {
            let t = &self.unknown_category;
            let n_known = self.spec.categories.as_ref().map_or(0, Vec::len);
            let msg = format!(
                "column {col}: {} of {n_rows} values are not among the {n_known} allowed categories{}; {}",
                t.count,
                t.examples_text(),
                t.rows_text()
            );
            out.push(
                t.finding(&UNKNOWN_CATEGORY, source, name, n_rows, msg)
                    .with_evidence_field("allowed_categories", n_known),
            );
        }
        let rate = if n_rows == 0 {
            0.0
        } else {
            self.missing.count as f64 / n_rows as f64
        };
        if rate > self.spec.max_missing + 1e-12 {
            let t = &self.missing;
            let msg = format!(
                "column {col}: {:.1}% of values are missing ({} of {n_rows}), above the schema's max_missing \
                 {:.1}%; {}",
                rate * 100.0,
                t.count,
                self.spec.max_missing * 100.0,
                t.rows_text()
            );
            out.push(
                t.finding(&MISSING_RATE, source, name, n_rows, msg)
                    .with_evidence_field("max_missing", self.spec.max_missing),
            );
        }
        if self.duplicate.count > 0 || self.unique_truncated {
            let t = &self.duplicate;
            let mut msg = format!(
                "column {col} must be unique but {} values repeat an earlier value{}",
                t.count,
                t.examples_text()
            );
            if t.count > 0 {
                msg.push_str(&format!("; {}", t.rows_text()));
            }
            if self.unique_truncated {
                msg.push_str(&format!(
                    "; the check stopped after {MAX_UNIQUE_TRACKED} distinct values"
                ));
            }
            let f = t
                .finding(&DUPLICATE_VALUE, source, name, n_rows, msg)
                .with_evidence_field("check_truncated", self.unique_truncated)
                .with_evidence_field("max_tracked", MAX_UNIQUE_TRACKED as u64);
            out.push(if t.count == 0 {
                f.with_severity(Severity::Info)
            } else {
                f
            });
        }
    }
}

/// What is known so far about the label column.
#[derive(Debug)]
struct LabelState {
    spec: LabelSpec,
    index: HashMap<String, usize>,
    counts: Vec<u64>,
    unknown: Tally,
}

impl LabelState {
    fn new(spec: &LabelSpec) -> Self {
        LabelState {
            index: spec
                .classes
                .iter()
                .enumerate()
                .map(|(i, c)| (c.clone(), i))
                .collect(),
            counts: vec![0; spec.classes.len()],
            spec: spec.clone(),
            unknown: Tally::default(),
        }
    }

    fn observe(&mut self, row: u64, class: Option<&str>) {
        match class.filter(|c| !c.trim().is_empty()) {
            None => self.unknown.add(row, || Some("<missing>".into())),
            Some(c) => match self.index.get(c).and_then(|&i| self.counts.get_mut(i)) {
                Some(n) => *n += 1,
                None => self.unknown.add(row, || Some(c.to_owned())),
            },
        }
    }

    fn finish(self, source: &str, n_rows: u64, out: &mut Vec<Finding>) {
        let name = self.spec.name.as_str();
        let col = quoted(name);
        if self.unknown.count > 0 {
            let t = &self.unknown;
            let msg = format!(
                "label column {col}: {} of {n_rows} rows have a class the schema does not list{}; {}",
                t.count,
                t.examples_text(),
                t.rows_text()
            );
            out.push(
                t.finding(&UNKNOWN_LABEL, source, name, n_rows, msg)
                    .with_evidence_field("classes", self.spec.classes.clone()),
            );
        }
        let absent: Vec<String> = self
            .spec
            .classes
            .iter()
            .zip(&self.counts)
            .filter(|(_, n)| **n == 0)
            .map(|(c, _)| excerpt(c))
            .collect();
        if !absent.is_empty() && n_rows > 0 {
            let list: Vec<String> = absent.iter().map(|c| format!("{c:?}")).collect();
            let msg = format!(
                "label column {col}: {} of the schema's {} classes never appear in {n_rows} rows: {}",
                absent.len(),
                self.spec.classes.len(),
                list.join(", ")
            );
            out.push(
                Finding::new(
                    &MISSING_LABEL_CLASS,
                    Location::Dataset {
                        path: source.to_owned(),
                        row: None,
                        column: Some(name.to_owned()),
                    },
                    msg,
                )
                .with_evidence_field("column", name)
                .with_evidence_field("absent_classes", absent)
                .with_evidence_field("class_counts", self.counts.clone())
                .with_evidence_field("classes", self.spec.classes.clone())
                .with_evidence_field("rows_checked", n_rows)
                .with_evidence_field("confidence", 1.0)
                .with_evidence_field("confidence_text", "certain: every label was counted"),
            );
        }
    }
}

/// Checks a stream of records against a [`DataSchema`] in bounded memory.
///
/// Create it with the file's header, [`feed`](Self::feed) every data row, then [`finish`](Self::finish).
/// Memory per column is a few tallies of at most [`MAX_LISTED_ROWS`] rows, plus, for `unique` columns, up
/// to [`MAX_UNIQUE_TRACKED`] 8-byte hashes.
#[derive(Debug)]
pub struct SchemaChecker {
    source: String,
    /// Per schema column: its index in the header (`None` when absent) and its state.
    columns: Vec<(Option<usize>, ColumnState)>,
    /// The label column's index in the header and its state.
    label: Option<(Option<usize>, LabelState)>,
    rows: Option<RowBounds>,
    n_rows: u64,
    /// Missing and unexpected columns, known from the header.
    structural: Vec<Finding>,
}

impl SchemaChecker {
    /// A checker for data with this header (the label column included); `source` names the dataset in
    /// findings. Missing and unexpected columns are decided here, from the header alone.
    pub fn new<S: AsRef<str>>(schema: &DataSchema, header: &[S], source: &str) -> Self {
        let position = |name: &str| header.iter().position(|h| h.as_ref() == name);
        let names: Vec<&str> = header.iter().map(AsRef::as_ref).collect();
        let mut structural = Vec::new();
        let missing_column = |name: &str, what: &str, kind: Option<ColumnKind>| {
            let mut f = Finding::new(
                &MISSING_COLUMN,
                Location::Dataset {
                    path: source.to_owned(),
                    row: None,
                    column: Some(name.to_owned()),
                },
                format!(
                    "{what} {} required by the schema is not in the data ({} columns present)",
                    quoted(name),
                    names.len()
                ),
            )
            .with_evidence_field("column", name)
            .with_evidence_field(
                "present_columns",
                names
                    .iter()
                    .take(MAX_LISTED_ROWS)
                    .map(|n| excerpt(n))
                    .collect::<Vec<_>>(),
            )
            .with_evidence_field("confidence", 1.0);
            if let Some(k) = kind {
                f = f.with_evidence_field("kind", k.as_str());
            }
            f
        };
        let columns = schema
            .columns
            .iter()
            .map(|spec| {
                let at = position(&spec.name);
                if at.is_none() && spec.required {
                    structural.push(missing_column(&spec.name, "column", Some(spec.kind)));
                }
                (at, ColumnState::new(spec))
            })
            .collect();
        let label = schema.label.as_ref().map(|spec| {
            let at = position(&spec.name);
            if at.is_none() {
                structural.push(missing_column(&spec.name, "label column", None));
            }
            (at, LabelState::new(spec))
        });
        let label_name = schema.label.as_ref().map(|l| l.name.as_str());
        let mut reported = HashSet::new();
        for name in &names {
            if schema.column(name).is_some() || Some(*name) == label_name || !reported.insert(*name)
            {
                continue;
            }
            structural.push(
                Finding::new(
                    &UNEXPECTED_COLUMN,
                    Location::Dataset {
                        path: source.to_owned(),
                        row: None,
                        column: Some((*name).to_owned()),
                    },
                    format!("column {} is not described by the schema", quoted(name)),
                )
                .with_evidence_field("column", excerpt(name))
                .with_evidence_field("confidence", 1.0),
            );
        }
        SchemaChecker {
            source: source.to_owned(),
            columns,
            label,
            rows: schema.rows,
            n_rows: 0,
            structural,
        }
    }

    /// Checks one data row: `row` is its 0-based index, `cells` its fields in header order (`None` is a
    /// missing cell; a short row counts its absent fields as missing).
    pub fn feed<S: AsRef<str>>(&mut self, row: u64, cells: &[Option<S>]) {
        self.n_rows += 1;
        let cell = |i: usize| cells.get(i).and_then(|c| c.as_ref()).map(AsRef::as_ref);
        for (at, state) in &mut self.columns {
            let Some(i) = *at else { continue };
            let text = cell(i);
            let parsed = state.spec.parse_cell(text);
            state.observe(row, parsed, || text.map(str::to_owned));
        }
        if let Some((Some(i), state)) = &mut self.label {
            state.observe(row, cell(*i));
        }
    }

    /// The findings: missing and unexpected columns, then per schema column its violations, then the label
    /// and the row count.
    pub fn finish(self) -> Vec<Finding> {
        let n_rows = self.n_rows;
        let source = self.source;
        let mut out = self.structural;
        for (at, state) in self.columns {
            if at.is_some() {
                state.finish(&source, n_rows, &mut out);
            }
        }
        if let Some((Some(_), state)) = self.label {
            state.finish(&source, n_rows, &mut out);
        }
        if let Some(bounds) = self.rows {
            let low = bounds.min.filter(|&m| n_rows < m);
            let high = bounds.max.filter(|&m| n_rows > m);
            let text = match (low, high) {
                (Some(m), _) => Some(format!("at least {m}")),
                (_, Some(m)) => Some(format!("at most {m}")),
                _ => None,
            };
            if let Some(expect) = text {
                out.push(
                    Finding::new(
                        &ROW_COUNT,
                        Location::Dataset {
                            path: source.clone(),
                            row: None,
                            column: None,
                        },
                        format!("the dataset has {n_rows} data rows; the schema expects {expect}"),
                    )
                    .with_evidence_field("rows", n_rows)
                    .with_evidence_field("min", bounds.min)
                    .with_evidence_field("max", bounds.max)
                    .with_evidence_field("confidence", 1.0),
                );
            }
        }
        out
    }
}

/// Checks records from any source: `header` names the fields (label column included), `records` yields
/// `(row, cells)` in header order.
pub fn check_records<'a, S, I>(
    schema: &DataSchema,
    header: &[String],
    source: &str,
    records: I,
) -> Vec<Finding>
where
    S: AsRef<str> + 'a,
    I: IntoIterator<Item = (u64, &'a [Option<S>])>,
{
    let mut checker = SchemaChecker::new(schema, header, source);
    for (row, cells) in records {
        checker.feed(row, cells);
    }
    checker.finish()
}

/// Checks a frame against a schema; the findings are those a [`SchemaChecker`] reports on the same rows.
///
/// Columns whose type in the frame is the schema's are checked on their typed values; others are compared
/// through their text, so a numeric schema column read as categorical reports only the values that are not
/// numbers.
pub fn check_frame(schema: &DataSchema, frame: &Frame) -> Vec<Finding> {
    let mut header: Vec<&str> = frame.columns.iter().map(|c| c.name.as_str()).collect();
    if let Some(l) = &frame.labels {
        header.push(&l.column);
    }
    let mut checker = SchemaChecker::new(schema, &header, &frame.source);
    let n = frame.n_rows;
    checker.n_rows = n as u64;
    let text_of = |at: usize, row: usize| -> Option<String> {
        match frame.columns.get(at) {
            Some(c) => c.data.display(row),
            None => frame.labels.as_ref().and_then(|l| {
                l.codes
                    .get(row)
                    .and_then(|&c| l.classes.get(c as usize))
                    .cloned()
            }),
        }
    };
    for (at, state) in &mut checker.columns {
        let Some(at) = *at else { continue };
        let data = frame.columns.get(at).map(|c| &c.data);
        let kind = state.spec.kind;
        match data {
            Some(ColumnData::Numeric(v)) if kind == ColumnKind::Numeric => {
                for row in 0..n {
                    let x = v.get(row).copied().unwrap_or(f64::NAN);
                    let parsed = if x.is_nan() {
                        Ok(CellValue::Missing)
                    } else if x.is_finite() {
                        Ok(CellValue::Number(x))
                    } else {
                        Err(ValueViolation::Type { expected: kind })
                    };
                    state.observe(row as u64, parsed, || Some(x.to_string()));
                }
            }
            Some(ColumnData::Categorical { codes, levels }) if kind == ColumnKind::Categorical => {
                for row in 0..n {
                    let level = codes.get(row).and_then(|&c| levels.get(c as usize));
                    let parsed = state.spec.parse_cell(level.map(String::as_str));
                    state.observe(row as u64, parsed, || level.cloned());
                }
            }
            Some(ColumnData::Boolean(v)) if kind == ColumnKind::Boolean => {
                for row in 0..n {
                    let parsed = Ok(v
                        .get(row)
                        .copied()
                        .flatten()
                        .map_or(CellValue::Missing, CellValue::Boolean));
                    state.observe(row as u64, parsed, || None);
                }
            }
            Some(ColumnData::Text(v)) if kind == ColumnKind::Text => {
                for row in 0..n {
                    let text = v.get(row).and_then(Option::as_deref);
                    let parsed = state.spec.parse_cell(text);
                    state.observe(row as u64, parsed, || text.map(str::to_owned));
                }
            }
            Some(ColumnData::Timestamp(v)) if kind == ColumnKind::Timestamp => {
                for row in 0..n {
                    let parsed = Ok(v
                        .get(row)
                        .copied()
                        .flatten()
                        .map_or(CellValue::Missing, CellValue::Timestamp));
                    state.observe(row as u64, parsed, || None);
                }
            }
            _ => {
                for row in 0..n {
                    let text = text_of(at, row);
                    let parsed = state.spec.parse_cell(text.as_deref());
                    state.observe(row as u64, parsed, || text.clone());
                }
            }
        }
    }
    if let Some((Some(at), state)) = &mut checker.label {
        let at = *at;
        for row in 0..n {
            match (frame.columns.get(at), &frame.labels) {
                (None, Some(l)) => {
                    let class = l.codes.get(row).and_then(|&c| l.classes.get(c as usize));
                    state.observe(row as u64, class.map(String::as_str));
                }
                _ => state.observe(row as u64, text_of(at, row).as_deref()),
            }
        }
    }
    checker.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use aegis_core::{Column, Labels, MISSING_CODE};

    const N: usize = 40;

    /// A clean frame: an id, a decimal amount with a few gaps, a colour, a flag, a note, a time, a label.
    fn frame() -> Frame {
        let col = |name: &str, data| Column {
            name: name.into(),
            data,
        };
        let levels = vec!["red".to_string(), "blue".into(), "green".into()];
        Frame {
            source: "train.csv".into(),
            columns: vec![
                col(
                    "id",
                    ColumnData::Numeric((0..N).map(|i| i as f64).collect()),
                ),
                col(
                    "amount",
                    ColumnData::Numeric(
                        (0..N)
                            .map(|i| {
                                if i % 10 == 3 {
                                    f64::NAN
                                } else {
                                    i as f64 * 1.5 + 0.25
                                }
                            })
                            .collect(),
                    ),
                ),
                col(
                    "colour",
                    ColumnData::Categorical {
                        codes: (0..N).map(|i| (i % 3) as u32).collect(),
                        levels,
                    },
                ),
                col(
                    "flag",
                    ColumnData::Boolean((0..N).map(|i| Some(i % 2 == 0)).collect()),
                ),
                col(
                    "note",
                    ColumnData::Text((0..N).map(|i| Some(format!("note {}", i % 7))).collect()),
                ),
                col(
                    "when",
                    ColumnData::Timestamp(
                        (0..N)
                            .map(|i| Some(1_700_000_000 + i as i64 * 60))
                            .collect(),
                    ),
                ),
            ],
            labels: Some(Labels {
                column: "y".into(),
                codes: (0..N).map(|i| (i % 2) as u32).collect(),
                classes: vec!["0".into(), "1".into()],
            }),
            n_rows: N,
        }
    }

    fn column_mut<'a>(f: &'a mut Frame, name: &str) -> &'a mut ColumnData {
        let i = f.column_index(name).unwrap();
        &mut f.columns[i].data
    }

    fn rules_of(findings: &[Finding]) -> Vec<(String, Option<String>)> {
        findings
            .iter()
            .map(|f| {
                let column = match &f.location {
                    Location::Dataset { column, .. } => column.clone(),
                    _ => None,
                };
                (f.rule.as_str().to_owned(), column)
            })
            .collect()
    }

    fn only<'a>(findings: &'a [Finding], rule: &RuleDoc) -> &'a Finding {
        let matching: Vec<&Finding> = findings
            .iter()
            .filter(|f| f.rule.as_str() == rule.id)
            .collect();
        assert_eq!(matching.len(), 1, "{:?}", rules_of(findings));
        matching[0]
    }

    fn rows(f: &Finding) -> Vec<u64> {
        f.evidence["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .collect()
    }

    #[test]
    fn infers_kinds_ranges_categories_and_ids() {
        let s = infer_data_schema(&frame());
        assert_eq!(s.version, 1);
        let id = s.column("id").unwrap();
        assert_eq!(
            (id.min, id.max, id.integer, id.unique),
            (Some(0.0), Some(39.0), true, true)
        );
        assert_eq!(id.max_missing, 0.0);
        let amount = s.column("amount").unwrap();
        assert!(!amount.integer && !amount.unique, "decimals are not an id");
        // 4 of 40 missing: 0.10 + 0.01 slack.
        assert!(
            (amount.max_missing - 0.11).abs() < 1e-9,
            "{}",
            amount.max_missing
        );
        let colour = s.column("colour").unwrap();
        assert_eq!(
            colour.categories.as_deref(),
            Some(&["blue".to_string(), "green".into(), "red".into()][..])
        );
        assert!(!colour.unique);
        let flag = s.column("flag").unwrap();
        assert_eq!(
            flag.categories.as_deref(),
            Some(&["false".to_string(), "true".into()][..])
        );
        assert_eq!(s.column("note").unwrap().max_length, Some(6));
        let when = s.column("when").unwrap();
        assert_eq!(
            (when.earliest, when.latest),
            (Some(1_700_000_000), Some(1_700_002_340))
        );
        assert_eq!(s.label.as_ref().unwrap().classes, vec!["0", "1"]);
        assert!(s.validate().is_ok());

        // Too few rows to call a distinct column an id.
        let mut small = frame();
        small.n_rows = 10;
        assert!(!infer_data_schema(&small).column("id").unwrap().unique);
    }

    #[test]
    fn a_clean_frame_passes_its_own_schema() {
        let f = frame();
        let findings = check_frame(&infer_data_schema(&f), &f);
        assert!(findings.is_empty(), "{:?}", rules_of(&findings));
        // Blank text is missing both when inferring and when checking.
        let mut f = frame();
        if let ColumnData::Text(v) = column_mut(&mut f, "note") {
            v[3] = Some(" ".into());
        }
        let schema = infer_data_schema(&f);
        assert!(schema.column("note").unwrap().max_missing > 0.0);
        assert!(check_frame(&schema, &f).is_empty());
    }

    /// `cargo test -p aegis-data --lib dataset_schema::tests::throughput -- --ignored --nocapture`
    #[test]
    #[ignore = "measurement, not a check"]
    fn throughput() {
        let n = 1_000_000;
        let columns = (0..20)
            .map(|j| Column {
                name: format!("c{j}"),
                data: match j % 4 {
                    0 => ColumnData::Numeric((0..n).map(|i| i as f64).collect()),
                    1 => ColumnData::Numeric((0..n).map(|i| (i % 997) as f64 * 0.5).collect()),
                    2 => ColumnData::Categorical {
                        codes: (0..n).map(|i| (i % 12) as u32).collect(),
                        levels: (0..12).map(|k| format!("level{k}")).collect(),
                    },
                    _ => ColumnData::Text((0..n).map(|i| Some(format!("t{}", i % 50))).collect()),
                },
            })
            .collect();
        let f = Frame {
            source: "big".into(),
            columns,
            labels: None,
            n_rows: n,
        };
        let t = std::time::Instant::now();
        let schema = infer_data_schema(&f);
        eprintln!("infer: {:?}", t.elapsed());
        let t = std::time::Instant::now();
        let findings = check_frame(&schema, &f);
        eprintln!(
            "check_frame: {:?}, {} findings",
            t.elapsed(),
            findings.len()
        );
        let header: Vec<String> = f.columns.iter().map(|c| c.name.clone()).collect();
        let t = std::time::Instant::now();
        let mut checker = SchemaChecker::new(&schema, &header, "big");
        let mut cells: Vec<Option<String>> = vec![None; 20];
        for r in 0..n {
            for (cell, c) in cells.iter_mut().zip(&f.columns) {
                *cell = c.data.display(r);
            }
            checker.feed(r as u64, &cells);
        }
        let streamed = checker.finish();
        eprintln!(
            "stream (incl. formatting cells): {:?}, {} findings",
            t.elapsed(),
            streamed.len()
        );
        assert!(findings.is_empty() && streamed.is_empty());
    }

    #[test]
    fn missing_and_unexpected_columns() {
        let mut schema = infer_data_schema(&frame());
        let mut f = frame();
        f.columns.retain(|c| c.name != "note");
        f.columns.push(Column {
            name: "leak".into(),
            data: ColumnData::Numeric(vec![0.0; N]),
        });
        let findings = check_frame(&schema, &f);
        let missing = only(&findings, &MISSING_COLUMN);
        assert_eq!(missing.severity, Severity::High);
        assert!(missing.message.contains("\"note\""), "{}", missing.message);
        let extra = only(&findings, &UNEXPECTED_COLUMN);
        assert!(extra.message.contains("\"leak\""));
        // An optional column may be absent.
        schema
            .columns
            .iter_mut()
            .for_each(|c| c.required = c.name != "note");
        let findings = check_frame(&schema, &f);
        assert!(!rules_of(&findings)
            .iter()
            .any(|(r, _)| r == MISSING_COLUMN.id));
        // A missing label column is a missing column too.
        let mut unlabeled = frame();
        unlabeled.labels = None;
        let findings = check_frame(&infer_data_schema(&frame()), &unlabeled);
        assert_eq!(
            rules_of(&findings),
            vec![(MISSING_COLUMN.id.to_owned(), Some("y".to_owned()))]
        );
    }

    #[test]
    fn type_mismatch_lists_unparsable_rows_only() {
        let schema = infer_data_schema(&frame());
        let mut f = frame();
        *column_mut(&mut f, "id") = ColumnData::Text(
            (0..N)
                .map(|i| {
                    Some(if i == 5 || i == 9 {
                        format!("{i}abc")
                    } else {
                        i.to_string()
                    })
                })
                .collect(),
        );
        let findings = check_frame(&schema, &f);
        let t = only(&findings, &TYPE_MISMATCH);
        assert_eq!(t.severity, Severity::High);
        assert_eq!(rows(t), vec![5, 9]);
        assert_eq!(t.evidence["count"], 2);
        assert!(t.message.contains("5abc"), "{}", t.message);
        // Numbers read as categories are fine as long as they parse.
        let mut f = frame();
        *column_mut(&mut f, "id") = ColumnData::Categorical {
            codes: (0..N as u32).collect(),
            levels: (0..N).map(|i| i.to_string()).collect(),
        };
        assert!(check_frame(&schema, &f).is_empty());
    }

    #[test]
    fn out_of_range_values_per_kind() {
        let schema = infer_data_schema(&frame());
        assert!(check_frame(&schema, &frame()).is_empty());
        let mut f = frame();
        if let ColumnData::Numeric(v) = column_mut(&mut f, "amount") {
            v[7] = 1e6;
            v[8] = -1.0;
        }
        if let ColumnData::Timestamp(v) = column_mut(&mut f, "when") {
            v[2] = Some(2_000_000_000);
        }
        if let ColumnData::Text(v) = column_mut(&mut f, "note") {
            v[4] = Some("x".repeat(300));
        }
        let findings = check_frame(&schema, &f);
        let by_column = |c: &str| {
            findings
                .iter()
                .find(|x| x.rule.as_str() == OUT_OF_RANGE.id && x.evidence["column"] == c)
                .unwrap()
        };
        let amount = by_column("amount");
        assert_eq!(rows(amount), vec![7, 8]);
        assert_eq!(amount.severity, Severity::Medium);
        assert_eq!(
            amount.location,
            Location::Dataset {
                path: "train.csv".into(),
                row: Some(7),
                column: Some("amount".into())
            }
        );
        assert_eq!(rows(by_column("when")), vec![2]);
        let note = by_column("note");
        assert_eq!(rows(note), vec![4]);
        // Example values are cut to 80 characters.
        let example = note.evidence["examples"][0].as_str().unwrap();
        assert_eq!(example.chars().count(), 81, "80 characters and an ellipsis");
        assert_eq!(findings.len(), 3, "{:?}", rules_of(&findings));
    }

    #[test]
    fn fractions_in_whole_number_columns() {
        let schema = infer_data_schema(&frame());
        let mut f = frame();
        if let ColumnData::Numeric(v) = column_mut(&mut f, "id") {
            v[11] = 11.5;
        }
        let findings = check_frame(&schema, &f);
        assert_eq!(rows(only(&findings, &NOT_INTEGER)), vec![11]);
        // A decimal column is not checked for whole numbers.
        let mut f = frame();
        if let ColumnData::Numeric(v) = column_mut(&mut f, "amount") {
            v[11] = 11.75;
        }
        assert!(check_frame(&schema, &f).is_empty());
    }

    #[test]
    fn unknown_categories_and_boolean_values() {
        let schema = infer_data_schema(&frame());
        let mut f = frame();
        if let ColumnData::Categorical { codes, levels } = column_mut(&mut f, "colour") {
            levels.push("purple".into());
            codes[6] = 3;
            codes[30] = 3;
            codes[31] = MISSING_CODE;
        }
        let findings = check_frame(&schema, &f);
        let u = only(&findings, &UNKNOWN_CATEGORY);
        assert_eq!(rows(u), vec![6, 30]);
        assert!(u.message.contains("purple"));
        // The missing cell broke the column's max_missing of 0.
        assert_eq!(rows(only(&findings, &MISSING_RATE)), vec![31]);
        // A boolean column that only ever was true.
        let mut schema = infer_data_schema(&frame());
        for c in &mut schema.columns {
            if c.name == "flag" {
                c.categories = Some(vec!["true".into()]);
            }
        }
        let findings = check_frame(&schema, &frame());
        assert_eq!(only(&findings, &UNKNOWN_CATEGORY).evidence["count"], 20);
    }

    #[test]
    fn missing_rate_above_the_bound() {
        let schema = infer_data_schema(&frame());
        let mut f = frame();
        // 4 of 40 are missing already (allowed 11%); two more make 15%.
        if let ColumnData::Numeric(v) = column_mut(&mut f, "amount") {
            v[0] = f64::NAN;
            v[1] = f64::NAN;
        }
        let findings = check_frame(&schema, &f);
        let m = only(&findings, &MISSING_RATE);
        assert_eq!(rows(m), vec![0, 1, 3, 13, 23, 33]);
        assert_eq!(m.evidence["count"], 6);
        // As many missing values elsewhere stay within the bound.
        let mut f = frame();
        if let ColumnData::Numeric(v) = column_mut(&mut f, "amount") {
            v[0] = f64::NAN;
            v[3] = 1.0;
        }
        assert!(check_frame(&schema, &f).is_empty());
    }

    #[test]
    fn duplicates_in_unique_columns_only() {
        let schema = infer_data_schema(&frame());
        let mut f = frame();
        if let ColumnData::Numeric(v) = column_mut(&mut f, "id") {
            v[20] = 3.0;
            v[21] = 3.0;
        }
        let findings = check_frame(&schema, &f);
        let d = only(&findings, &DUPLICATE_VALUE);
        assert_eq!(rows(d), vec![20, 21]);
        assert!(d.message.contains("\"3\""), "{}", d.message);
        // Notes repeat all the time: not an id column, no finding.
        assert!(!schema.column("note").unwrap().unique);
    }

    #[test]
    fn label_classes_unknown_and_absent() {
        let schema = infer_data_schema(&frame());
        let mut f = frame();
        if let Some(l) = f.labels.as_mut() {
            l.classes.push("2".into());
            l.codes[12] = 2;
        }
        let findings = check_frame(&schema, &f);
        assert_eq!(rows(only(&findings, &UNKNOWN_LABEL)), vec![12]);
        assert!(!rules_of(&findings)
            .iter()
            .any(|(r, _)| r == MISSING_LABEL_CLASS.id));
        let mut f = frame();
        if let Some(l) = f.labels.as_mut() {
            l.codes.iter_mut().for_each(|c| *c = 0);
        }
        let findings = check_frame(&schema, &f);
        let m = only(&findings, &MISSING_LABEL_CLASS);
        assert_eq!(m.evidence["absent_classes"][0], "1");
        assert!(!rules_of(&findings)
            .iter()
            .any(|(r, _)| r == UNKNOWN_LABEL.id));
    }

    #[test]
    fn row_count_bounds() {
        let mut schema = infer_data_schema(&frame());
        schema.rows = Some(RowBounds {
            min: Some(10),
            max: Some(40),
        });
        assert!(check_frame(&schema, &frame()).is_empty());
        schema.rows = Some(RowBounds {
            min: Some(50),
            max: None,
        });
        let findings = check_frame(&schema, &frame());
        assert!(only(&findings, &ROW_COUNT).message.contains("at least 50"));
        schema.rows = Some(RowBounds {
            min: None,
            max: Some(39),
        });
        let findings = check_frame(&schema, &frame());
        assert!(only(&findings, &ROW_COUNT).message.contains("at most 39"));
    }

    #[test]
    fn listed_rows_are_bounded_and_the_total_is_kept() {
        let n = 500;
        let f = Frame {
            source: "big.csv".into(),
            columns: vec![Column {
                name: "x".into(),
                data: ColumnData::Numeric((0..n).map(|i| i as f64).collect()),
            }],
            labels: None,
            n_rows: n,
        };
        let mut schema = infer_data_schema(&f);
        schema.columns[0].max = Some(99.0);
        let findings = check_frame(&schema, &f);
        let r = only(&findings, &OUT_OF_RANGE);
        assert_eq!(rows(r).len(), MAX_LISTED_ROWS);
        assert_eq!(rows(r)[0], 100);
        assert_eq!(r.evidence["count"], 400);
        assert!(r.message.contains("and 390 more"), "{}", r.message);
    }

    /// Every cell of the frame as text, the label last, the way a CSV reader would hand them over.
    fn records(f: &Frame) -> (Vec<String>, Vec<Vec<Option<String>>>) {
        let mut header: Vec<String> = f.columns.iter().map(|c| c.name.clone()).collect();
        header.push("y".into());
        let rows = (0..f.n_rows)
            .map(|r| {
                let mut cells: Vec<Option<String>> =
                    f.columns.iter().map(|c| c.data.display(r)).collect();
                let l = f.labels.as_ref().unwrap();
                cells.push(Some(l.classes[l.codes[r] as usize].clone()));
                cells
            })
            .collect();
        (header, rows)
    }

    #[test]
    fn the_streaming_checker_agrees_with_check_frame() {
        let schema = infer_data_schema(&frame());
        let mut f = frame();
        if let ColumnData::Numeric(v) = column_mut(&mut f, "id") {
            v[20] = 3.0;
            v[22] = 7.5;
            v[25] = 1e9;
        }
        if let ColumnData::Numeric(v) = column_mut(&mut f, "amount") {
            v[0] = f64::NAN;
            v[1] = f64::NAN;
        }
        if let ColumnData::Categorical { codes, levels } = column_mut(&mut f, "colour") {
            levels.push("purple".into());
            codes[6] = 3;
        }
        if let ColumnData::Timestamp(v) = column_mut(&mut f, "when") {
            v[2] = Some(0);
        }
        if let Some(l) = f.labels.as_mut() {
            l.classes.push("2".into());
            l.codes[12] = 2;
        }
        f.columns.remove(f.column_index("note").unwrap());
        let from_frame = check_frame(&schema, &f);
        let (header, rows_text) = records(&f);
        let from_stream = check_records(
            &schema,
            &header,
            "train.csv",
            rows_text
                .iter()
                .enumerate()
                .map(|(i, r)| (i as u64, r.as_slice())),
        );
        assert!(from_frame.len() >= 8, "{:?}", rules_of(&from_frame));
        let key = |f: &Finding| {
            (
                f.rule.as_str().to_owned(),
                f.location.clone(),
                f.severity,
                f.evidence["count"].clone(),
                f.evidence["rows"].clone(),
            )
        };
        let a: Vec<_> = from_frame.iter().map(key).collect();
        let b: Vec<_> = from_stream.iter().map(key).collect();
        assert_eq!(a, b);
    }

    fn csv(rows: usize, bad: bool) -> String {
        let mut text = String::from("id,amount,colour,flag,when,y\n");
        for i in 0..rows {
            let mut cells = [
                i.to_string(),
                format!("{}", i as f64 * 0.5 + 1.0),
                ["red", "blue"][i % 2].to_string(),
                ["yes", "no"][i % 3 % 2].to_string(),
                format!("2024-01-{:02}", i % 28 + 1),
                (i % 2).to_string(),
            ];
            if bad {
                match i {
                    3 => cells[0] = "x3".into(),
                    4 => cells[1] = "1000".into(),
                    5 => cells[2] = "purple".into(),
                    6 => cells[1] = "?".into(),
                    7 => cells[4] = "2030-01-01".into(),
                    8 => cells[5] = "2".into(),
                    9 => cells[0] = "2".into(),
                    _ => {}
                }
            }
            text.push_str(&cells.join(","));
            text.push('\n');
        }
        text
    }

    #[test]
    fn read_frame_and_stream_records_agree_on_a_csv() {
        let opts = crate::ReadOptions {
            label: Some("y".into()),
            ..Default::default()
        };
        let clean = crate::read_frame_bytes("clean.csv", csv(30, false).as_bytes(), &opts).unwrap();
        let schema = infer_data_schema(&clean);
        assert!(schema.column("id").unwrap().unique);
        assert!(check_frame(&schema, &clean).is_empty());

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new.csv");
        std::fs::write(&path, csv(30, true)).unwrap();
        let frame = crate::read_frame(&path, &opts).unwrap();
        let from_frame = check_frame(&schema, &frame);
        let (header, records) = crate::stream_records(&path, &opts).unwrap();
        let mut checker = SchemaChecker::new(&schema, &header, &frame.source);
        for record in records {
            let record = record.unwrap();
            checker.feed(record.row, &record.cells);
        }
        let from_stream = checker.finish();
        let key = |f: &Finding| {
            (
                f.rule.as_str().to_owned(),
                f.location.clone(),
                f.evidence["count"].clone(),
                f.evidence["rows"].clone(),
            )
        };
        let a: Vec<_> = from_frame.iter().map(key).collect();
        let b: Vec<_> = from_stream.iter().map(key).collect();
        assert_eq!(a, b);
        let seen: Vec<(String, Option<String>)> = rules_of(&from_frame);
        let expect = |rule: &RuleDoc, column: &str| {
            assert!(
                seen.contains(&(rule.id.to_owned(), Some(column.to_owned()))),
                "{} {column}: {seen:?}",
                rule.id
            );
        };
        expect(&TYPE_MISMATCH, "id");
        expect(&DUPLICATE_VALUE, "id");
        expect(&OUT_OF_RANGE, "amount");
        expect(&MISSING_RATE, "amount");
        expect(&UNKNOWN_CATEGORY, "colour");
        expect(&OUT_OF_RANGE, "when");
        expect(&UNKNOWN_LABEL, "y");
        assert_eq!(seen.len(), 7, "{seen:?}");
    }

    #[test]
    fn streaming_parses_text_cells_per_kind() {
        let schema = infer_data_schema(&frame());
        let header: Vec<String> = ["id", "amount", "colour", "flag", "note", "when", "y"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let mut checker = SchemaChecker::new(&schema, &header, "live.csv");
        let good = [
            Some("1"),
            Some("2.5"),
            Some("red"),
            Some("yes"),
            Some("note 1"),
            Some("2023-11-14T22:13:20Z"),
            Some("1"),
        ];
        let bad = [
            Some("x1"),
            None,
            Some("red"),
            Some("maybe"),
            Some("note 2"),
            Some("2023-11-14"),
            Some("1"),
        ];
        for row in 0..30 {
            checker.feed(row, &good);
        }
        checker.feed(30, &bad);
        checker.feed(31, &bad[..3]);
        let findings = checker.finish();
        let type_cols: Vec<String> = findings
            .iter()
            .filter(|f| f.rule.as_str() == TYPE_MISMATCH.id)
            .map(|f| f.evidence["column"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(type_cols, vec!["id", "flag"]);
        // The short row's absent cells are missing; the early date is out of range.
        assert!(findings
            .iter()
            .any(|f| f.rule.as_str() == OUT_OF_RANGE.id && f.evidence["column"] == "when"));
        assert!(findings.iter().any(
            |f| f.rule.as_str() == UNKNOWN_LABEL.id && f.evidence["examples"][0] == "<missing>"
        ));
    }

    #[test]
    fn toml_round_trip_with_comments() {
        let schema = infer_data_schema(&frame());
        let text = data_schema_to_toml(&schema);
        assert!(text.starts_with("# Aegis dataset schema"));
        assert!(text.contains("[[column]]"));
        assert!(
            text.contains("earliest = 1700000000  # 2023-11-14T22:13:20Z"),
            "{text}"
        );
        if std::env::var_os("AEGIS_SHOW_SCHEMA").is_some() {
            eprintln!("{text}");
        }
        let back = parse_data_schema(&text, Path::new("s.toml")).unwrap();
        assert_eq!(back, schema);

        // Names from untrusted headers survive, even when they look like keys.
        for name in [
            "x\nearliest = 5\ny",
            "a\"\"\"b\nlatest = 7\n'''",
            "\u{1b}[31mred",
        ] {
            let mut odd = schema.clone();
            odd.columns[5].name = name.into();
            let text = data_schema_to_toml(&odd);
            let back = parse_data_schema(&text, Path::new("s.toml")).unwrap();
            assert_eq!(back, odd, "{text}");
        }

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("schema.toml");
        save_data_schema(&schema, &path).unwrap();
        assert_eq!(load_data_schema(&path).unwrap(), schema);
    }

    #[test]
    fn hand_edit_errors_name_the_file_and_the_column() {
        let schema = infer_data_schema(&frame());
        let text = data_schema_to_toml(&schema);
        let path = Path::new("reviewed.toml");

        let typo = text.replacen("\nmax_missing", "\nmax_mising", 1);
        let err = parse_data_schema(&typo, path).unwrap_err();
        assert!(matches!(err, Error::SchemaParse { .. }));
        let msg = err.to_string();
        assert!(
            msg.contains("reviewed.toml") && msg.contains("max_mising"),
            "{msg}"
        );

        let swapped = text.replacen("min = 0.0", "min = 100.0", 1);
        assert_ne!(swapped, text);
        let msg = parse_data_schema(&swapped, path).unwrap_err().to_string();
        assert!(
            msg.contains("reviewed.toml") && msg.contains("column \"id\""),
            "{msg}"
        );
        assert!(msg.contains("greater than"), "{msg}");

        let rate = text.replacen("max_missing = 0.11", "max_missing = 11.0", 1);
        assert_ne!(rate, text);
        let msg = parse_data_schema(&rate, path).unwrap_err().to_string();
        assert!(
            msg.contains("column \"amount\"") && msg.contains("[0, 1]"),
            "{msg}"
        );

        let empty = text.replacen(
            "categories = [\"blue\", \"green\", \"red\"]",
            "categories = []",
            1,
        );
        assert_ne!(empty, text);
        let msg = parse_data_schema(&empty, path).unwrap_err().to_string();
        assert!(
            msg.contains("column \"colour\"") && msg.contains("empty"),
            "{msg}"
        );

        let kind = text.replacen("kind = \"numeric\"", "kind = \"number\"", 1);
        assert!(parse_data_schema(&kind, path).is_err());

        let missing = load_data_schema(Path::new("/nonexistent/schema.toml")).unwrap_err();
        assert!(missing.to_string().contains("/nonexistent/schema.toml"));
    }

    #[test]
    fn rules_are_numbered_and_mapped() {
        for (i, rule) in rules().iter().enumerate() {
            assert_eq!(rule.id, format!("AEG-SCH-{:03}", i + 1));
        }
        assert_eq!(
            violation_rule(&ValueViolation::UnknownCategory).id,
            UNKNOWN_CATEGORY.id
        );
        assert_eq!(
            violation_rule(&ValueViolation::Type {
                expected: ColumnKind::Numeric
            })
            .id,
            TYPE_MISMATCH.id
        );
        assert_eq!(
            violation_rule(&ValueViolation::BelowMin {
                value: 0.0,
                min: 1.0
            })
            .id,
            OUT_OF_RANGE.id
        );
    }
}
