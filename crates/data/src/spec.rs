//! [`DataSchema`]: what a valid dataset (and a valid request) looks like, column by column.
//!
//! `aegis schema infer` writes one from a trusted dataset, a person reviews and tightens it, and
//! `aegis schema check` compares later datasets with it; the gateway reuses the same [`ColumnSpec`]s to
//! validate live requests one value at a time, so single-value checks ([`ColumnSpec::check_value`]) work on a
//! cell's text alone, without a [`Frame`](aegis_core::Frame).
//!
//! This module holds the types and the per-value checks; the TOML file, the inference from a frame and the
//! dataset-wide checks (missing rates, uniqueness, label set, row counts) are in `dataset_schema`. Cells are
//! parsed by the same functions the readers use ([`crate::cell`]), so a value the reader took as a number is a
//! number here too. A blank cell is a missing cell for every kind.

use std::fmt;

use serde::{Deserialize, Serialize};

use aegis_core::{format_number, format_timestamp, ColumnKind};

use crate::cell::{parse_bool, parse_number, parse_timestamp};

/// The schema format version this code reads and writes.
pub const DATA_SCHEMA_VERSION: u32 = 1;

/// What a valid dataset looks like: its columns, its label set and how many rows it may have.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSchema {
    /// Format version; always [`DATA_SCHEMA_VERSION`].
    pub version: u32,
    /// Bounds on the number of data rows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<RowBounds>,
    /// The label column and its classes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<LabelSpec>,
    /// Feature columns, in file order (the label column is not among them).
    #[serde(default, rename = "column")]
    pub columns: Vec<ColumnSpec>,
}

/// Bounds on the number of data rows (header excluded); either may be absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RowBounds {
    /// Fewest rows accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<u64>,
    /// Most rows accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<u64>,
}

/// The label column and the classes it may hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabelSpec {
    /// Header name of the label column.
    pub name: String,
    /// Every class a valid dataset may use (each expected to appear at least once).
    pub classes: Vec<String>,
}

fn default_true() -> bool {
    true
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// What a valid value of one column looks like.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnSpec {
    /// Header name.
    pub name: String,
    /// The column's type; every present cell must parse as this kind.
    pub kind: ColumnKind,
    /// The column must exist in the data.
    #[serde(default = "default_true")]
    pub required: bool,
    /// Highest accepted rate of missing cells, in `[0, 1]`; `0` means the column may never be missing.
    #[serde(default)]
    pub max_missing: f64,
    /// Smallest accepted number (numeric columns).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// Largest accepted number (numeric columns).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// Every number must be whole (numeric columns).
    #[serde(default, skip_serializing_if = "is_false")]
    pub integer: bool,
    /// The accepted values (categorical and boolean columns).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub categories: Option<Vec<String>>,
    /// No value may appear twice (an id column); checked over a whole dataset, not per value.
    #[serde(default, skip_serializing_if = "is_false")]
    pub unique: bool,
    /// Longest accepted text, in characters (text columns).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_length: Option<usize>,
    /// Earliest accepted time, seconds since the Unix epoch (timestamp columns).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub earliest: Option<i64>,
    /// Latest accepted time, seconds since the Unix epoch (timestamp columns).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest: Option<i64>,
    /// An attacker cannot change this column (`aegis assess` and `aegis harden` keep it fixed): a date of
    /// birth, an account's age, the applicant's country. Numeric and boolean columns.
    #[serde(default, skip_serializing_if = "is_false")]
    pub immutable: bool,
    /// This column's own perturbation budget in raw units for assessment and hardening (overrides the global
    /// eps). Numeric columns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eps: Option<f64>,
    /// The one-hot group of this 0/1 column: in every valid row exactly one column of a group is 1, and an
    /// attack may only move the 1 within the group. Numeric and boolean columns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub one_hot: Option<String>,
}

/// One cell parsed per its column's kind.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CellValue<'a> {
    /// Absent or blank.
    Missing,
    /// A finite number.
    Number(f64),
    /// A boolean.
    Boolean(bool),
    /// Categorical or text value, as given.
    Text(&'a str),
    /// Seconds since the Unix epoch (UTC).
    Timestamp(i64),
}

impl CellValue<'_> {
    /// The value as reports quote it and as category lists hold it (`None` when missing).
    pub fn canonical(&self) -> Option<String> {
        match self {
            CellValue::Missing => None,
            CellValue::Number(x) => Some(format_number(*x)),
            CellValue::Boolean(b) => Some(b.to_string()),
            CellValue::Text(s) => Some((*s).to_owned()),
            CellValue::Timestamp(t) => Some(format_timestamp(*t)),
        }
    }
}

/// Why one value does not fit its [`ColumnSpec`].
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "violation", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ValueViolation {
    /// The value is missing but the column may never be missing (`max_missing = 0`).
    Missing,
    /// The text does not parse as the column's kind.
    Type {
        /// The expected kind.
        expected: ColumnKind,
    },
    /// A number below `min`.
    BelowMin {
        /// The value.
        value: f64,
        /// The bound.
        min: f64,
    },
    /// A number above `max`.
    AboveMax {
        /// The value.
        value: f64,
        /// The bound.
        max: f64,
    },
    /// A fractional number in an integer column.
    NotInteger {
        /// The value.
        value: f64,
    },
    /// A value outside `categories`.
    UnknownCategory,
    /// Text longer than `max_length` characters.
    TooLong {
        /// The text's length in characters.
        length: usize,
        /// The bound.
        max_length: usize,
    },
    /// A time before `earliest`.
    TooEarly {
        /// The value (epoch seconds).
        value: i64,
        /// The bound.
        earliest: i64,
    },
    /// A time after `latest`.
    TooLate {
        /// The value (epoch seconds).
        value: i64,
        /// The bound.
        latest: i64,
    },
}

impl fmt::Display for ValueViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ValueViolation::Missing => f.write_str("the value is required"),
            ValueViolation::Type { expected } => write!(f, "the value is not a valid {expected}"),
            ValueViolation::BelowMin { value, min } => write!(
                f,
                "{} is below the minimum {}",
                format_number(*value),
                format_number(*min)
            ),
            ValueViolation::AboveMax { value, max } => write!(
                f,
                "{} is above the maximum {}",
                format_number(*value),
                format_number(*max)
            ),
            ValueViolation::NotInteger { value } => {
                write!(f, "{} is not a whole number", format_number(*value))
            }
            ValueViolation::UnknownCategory => f.write_str("the value is not an allowed category"),
            ValueViolation::TooLong { length, max_length } => write!(
                f,
                "the text has {length} characters, more than the maximum {max_length}"
            ),
            ValueViolation::TooEarly { value, earliest } => write!(
                f,
                "{} is earlier than {}",
                format_timestamp(*value),
                format_timestamp(*earliest)
            ),
            ValueViolation::TooLate { value, latest } => write!(
                f,
                "{} is later than {}",
                format_timestamp(*value),
                format_timestamp(*latest)
            ),
        }
    }
}

impl std::error::Error for ValueViolation {}

impl ColumnSpec {
    /// A spec of `kind` that accepts any value of that kind, never missing, with no bounds.
    pub fn new(name: impl Into<String>, kind: ColumnKind) -> Self {
        ColumnSpec {
            name: name.into(),
            kind,
            required: true,
            max_missing: 0.0,
            min: None,
            max: None,
            integer: false,
            categories: None,
            unique: false,
            max_length: None,
            earliest: None,
            latest: None,
            immutable: false,
            eps: None,
            one_hot: None,
        }
    }

    /// Parses a cell per this column's kind. A blank or absent cell is [`CellValue::Missing`].
    ///
    /// # Errors
    ///
    /// [`ValueViolation::Type`] when the text is not a value of the kind.
    pub fn parse_cell<'a>(&self, cell: Option<&'a str>) -> Result<CellValue<'a>, ValueViolation> {
        let Some(text) = cell else {
            return Ok(CellValue::Missing);
        };
        if text.trim().is_empty() {
            return Ok(CellValue::Missing);
        }
        let parsed = match self.kind {
            ColumnKind::Numeric => parse_number(text).map(CellValue::Number),
            ColumnKind::Boolean => parse_bool(text).map(CellValue::Boolean),
            ColumnKind::Timestamp => parse_timestamp(text).map(CellValue::Timestamp),
            ColumnKind::Categorical | ColumnKind::Text => Some(CellValue::Text(text)),
        };
        parsed.ok_or(ValueViolation::Type {
            expected: self.kind,
        })
    }

    /// The bound a parsed value breaks: `min`/`max` for numbers, `max_length` for text, `earliest`/`latest`
    /// for timestamps.
    pub fn bound_violation(&self, value: &CellValue<'_>) -> Option<ValueViolation> {
        match *value {
            CellValue::Number(x) => {
                if let Some(min) = self.min.filter(|&m| x < m) {
                    return Some(ValueViolation::BelowMin { value: x, min });
                }
                self.max
                    .filter(|&m| x > m)
                    .map(|max| ValueViolation::AboveMax { value: x, max })
            }
            CellValue::Text(s) if self.kind == ColumnKind::Text => {
                let max_length = self.max_length?;
                let length = s.chars().count();
                (length > max_length).then_some(ValueViolation::TooLong { length, max_length })
            }
            CellValue::Timestamp(t) => {
                if let Some(earliest) = self.earliest.filter(|&e| t < e) {
                    return Some(ValueViolation::TooEarly { value: t, earliest });
                }
                self.latest
                    .filter(|&l| t > l)
                    .map(|latest| ValueViolation::TooLate { value: t, latest })
            }
            _ => None,
        }
    }

    /// [`ValueViolation::NotInteger`] when the column is `integer` and the value is a fractional number.
    pub fn integer_violation(&self, value: &CellValue<'_>) -> Option<ValueViolation> {
        match *value {
            CellValue::Number(x) if self.integer && x.fract() != 0.0 => {
                Some(ValueViolation::NotInteger { value: x })
            }
            _ => None,
        }
    }

    /// [`ValueViolation::UnknownCategory`] when the column lists `categories` and the value is not among
    /// them (booleans compare as `true`/`false`, so `yes` matches a listed `true`).
    pub fn category_violation(&self, value: &CellValue<'_>) -> Option<ValueViolation> {
        let categories = self.categories.as_ref()?;
        let known = match *value {
            CellValue::Missing => true,
            CellValue::Text(s) => categories.iter().any(|c| c == s),
            CellValue::Boolean(b) => categories.iter().any(|c| parse_bool(c) == Some(b)),
            CellValue::Number(x) => categories.iter().any(|c| parse_number(c) == Some(x)),
            CellValue::Timestamp(t) => categories.iter().any(|c| parse_timestamp(c) == Some(t)),
        };
        (!known).then_some(ValueViolation::UnknownCategory)
    }

    /// Checks one value (a request field, a cell) against this spec: missing when never allowed, kind,
    /// bounds, integer, categories. Uniqueness and missing *rates* need a whole dataset and are not checked.
    ///
    /// # Errors
    ///
    /// The first [`ValueViolation`] found.
    pub fn check_value(&self, cell: Option<&str>) -> Result<(), ValueViolation> {
        self.check_parsed(&self.parse_cell(cell)?)
    }

    /// [`ColumnSpec::check_value`] for a number that is already parsed (a JSON request value): the same
    /// checks without a round trip through text.
    ///
    /// # Errors
    ///
    /// The first [`ValueViolation`] found; [`ValueViolation::Type`] when the column is not numeric.
    pub fn check_number(&self, x: f64) -> Result<(), ValueViolation> {
        if self.kind != ColumnKind::Numeric || !x.is_finite() {
            return Err(ValueViolation::Type {
                expected: self.kind,
            });
        }
        self.check_parsed(&CellValue::Number(x))
    }

    /// The checks after parsing, shared by [`ColumnSpec::check_value`] and [`ColumnSpec::check_number`].
    fn check_parsed(&self, value: &CellValue<'_>) -> Result<(), ValueViolation> {
        let value = *value;
        if value == CellValue::Missing {
            return if self.max_missing <= 0.0 {
                Err(ValueViolation::Missing)
            } else {
                Ok(())
            };
        }
        if let Some(v) = self
            .bound_violation(&value)
            .or_else(|| self.integer_violation(&value))
            .or_else(|| self.category_violation(&value))
        {
            return Err(v);
        }
        Ok(())
    }
}

/// A schema problem found by [`DataSchema::validate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaProblem {
    /// What is wrong: `column "amount"`, `label`, `rows`, `version`, `columns`.
    pub subject: String,
    /// Why.
    pub reason: String,
}

impl fmt::Display for SchemaProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.subject, self.reason)
    }
}

impl std::error::Error for SchemaProblem {}

/// A name quoted with escapes and cut to 64 characters, for messages.
fn quote(name: &str) -> String {
    match name.char_indices().nth(64) {
        Some((cut, _)) => format!("{:?}…", &name[..cut]),
        None => format!("{name:?}"),
    }
}

impl DataSchema {
    /// The spec of the column named `name`.
    pub fn column(&self, name: &str) -> Option<&ColumnSpec> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// Checks what serde cannot: the version, finite bounds with `min <= max`, rates in `[0, 1]`, unique
    /// non-empty names, non-empty category and class lists without repeats, and keys that fit the kind.
    ///
    /// # Errors
    ///
    /// The first problem found, naming the column (or `label`, `rows`, `version`).
    pub fn validate(&self) -> Result<(), SchemaProblem> {
        let problem = |subject: String, reason: String| SchemaProblem { subject, reason };
        if self.version != DATA_SCHEMA_VERSION {
            return Err(problem(
                "version".into(),
                format!(
                    "version {} is not supported (expected {DATA_SCHEMA_VERSION})",
                    self.version
                ),
            ));
        }
        if let Some(RowBounds {
            min: Some(lo),
            max: Some(hi),
        }) = self.rows
        {
            if lo > hi {
                return Err(problem(
                    "rows".into(),
                    format!("min = {lo} is greater than max = {hi}"),
                ));
            }
        }
        if self.columns.is_empty() && self.label.is_none() {
            return Err(problem(
                "columns".into(),
                "the schema defines no columns (expected [[column]] tables)".into(),
            ));
        }
        if let Some(label) = &self.label {
            let subject = || "label".to_owned();
            if label.name.is_empty() {
                return Err(problem(subject(), "the name is empty".into()));
            }
            if self.column(&label.name).is_some() {
                return Err(problem(
                    subject(),
                    format!("{} is also defined as a [[column]]", quote(&label.name)),
                ));
            }
            if label.classes.is_empty() {
                return Err(problem(subject(), "classes is empty".into()));
            }
            if let Some(dup) = first_repeat(&label.classes) {
                return Err(problem(
                    subject(),
                    format!("class {} is listed more than once", quote(dup)),
                ));
            }
        }
        let mut seen = std::collections::HashSet::new();
        for spec in &self.columns {
            let subject = format!("column {}", quote(&spec.name));
            let err = |reason: String| Err(problem(subject.clone(), reason));
            if spec.name.is_empty() {
                return err("the name is empty".into());
            }
            if !seen.insert(spec.name.as_str()) {
                return err("defined more than once".into());
            }
            if !(0.0..=1.0).contains(&spec.max_missing) {
                return err(format!(
                    "max_missing = {} is not a rate in [0, 1]",
                    spec.max_missing
                ));
            }
            let kind = spec.kind;
            let only_for = |key: &str, kinds: &str| {
                Err(problem(
                    subject.clone(),
                    format!("{key} applies to {kinds} columns, not to a {kind} column"),
                ))
            };
            let model_input = matches!(kind, ColumnKind::Numeric | ColumnKind::Boolean);
            if !model_input && (spec.immutable || spec.eps.is_some() || spec.one_hot.is_some()) {
                return only_for("immutable, eps and one_hot", "numeric and boolean");
            }
            if let Some(eps) = spec.eps {
                if !eps.is_finite() || eps < 0.0 {
                    return err(format!("eps = {eps} is not a finite number >= 0"));
                }
            }
            if spec.one_hot.as_deref().is_some_and(str::is_empty) {
                return err("one_hot names no group".into());
            }
            if kind != ColumnKind::Numeric {
                if spec.min.is_some() || spec.max.is_some() {
                    return only_for("min/max", "numeric");
                }
                if spec.integer {
                    return only_for("integer", "numeric");
                }
            }
            for (key, bound) in [("min", spec.min), ("max", spec.max)] {
                if let Some(v) = bound.filter(|v| !v.is_finite()) {
                    return err(format!("{key} = {v} is not a finite number"));
                }
            }
            if let (Some(lo), Some(hi)) = (spec.min, spec.max) {
                if lo > hi {
                    return err(format!("min = {lo} is greater than max = {hi}"));
                }
            }
            if spec.max_length.is_some() && kind != ColumnKind::Text {
                return only_for("max_length", "text");
            }
            if (spec.earliest.is_some() || spec.latest.is_some()) && kind != ColumnKind::Timestamp {
                return only_for("earliest/latest", "timestamp");
            }
            if let (Some(lo), Some(hi)) = (spec.earliest, spec.latest) {
                if lo > hi {
                    return err(format!("earliest = {lo} is later than latest = {hi}"));
                }
            }
            if let Some(categories) = &spec.categories {
                if !matches!(kind, ColumnKind::Categorical | ColumnKind::Boolean) {
                    return only_for("categories", "categorical and boolean");
                }
                if categories.is_empty() {
                    return err("categories is empty (remove the key to accept any value)".into());
                }
                if let Some(dup) = first_repeat(categories) {
                    return err(format!("category {} is listed more than once", quote(dup)));
                }
                if kind == ColumnKind::Boolean {
                    if let Some(bad) = categories.iter().find(|c| parse_bool(c).is_none()) {
                        return err(format!("category {} is not a boolean", quote(bad)));
                    }
                }
            }
        }
        Ok(())
    }
}

/// The first string that appears twice.
fn first_repeat(items: &[String]) -> Option<&str> {
    let mut seen = std::collections::HashSet::new();
    items
        .iter()
        .find(|s| !seen.insert(s.as_str()))
        .map(String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aegis_core::ColumnKind;

    fn numeric() -> ColumnSpec {
        ColumnSpec {
            min: Some(0.0),
            max: Some(100.0),
            integer: true,
            ..ColumnSpec::new("age", ColumnKind::Numeric)
        }
    }

    #[test]
    fn check_number_is_check_value_without_the_text() {
        let spec = numeric();
        for x in [0.0, 42.0, -1.0, 100.0, 100.5, 4.5, 1e300] {
            assert_eq!(
                spec.check_number(x),
                spec.check_value(Some(&x.to_string())),
                "{x}"
            );
        }
        assert!(spec.check_number(f64::NAN).is_err());
        let text = ColumnSpec::new("t", ColumnKind::Text);
        assert!(matches!(
            text.check_number(1.0),
            Err(ValueViolation::Type { .. })
        ));
    }

    #[test]
    fn check_value_numeric() {
        let spec = numeric();
        assert_eq!(spec.check_value(Some("42")), Ok(()));
        assert_eq!(
            spec.check_value(Some("abc")),
            Err(ValueViolation::Type {
                expected: ColumnKind::Numeric
            })
        );
        assert!(matches!(
            spec.check_value(Some("-1")),
            Err(ValueViolation::BelowMin { .. })
        ));
        assert!(matches!(
            spec.check_value(Some("101")),
            Err(ValueViolation::AboveMax { .. })
        ));
        assert!(matches!(
            spec.check_value(Some("4.5")),
            Err(ValueViolation::NotInteger { .. })
        ));
        assert_eq!(spec.check_value(None), Err(ValueViolation::Missing));
        assert_eq!(spec.check_value(Some("  ")), Err(ValueViolation::Missing));
        let lenient = ColumnSpec {
            max_missing: 0.1,
            ..numeric()
        };
        assert_eq!(lenient.check_value(None), Ok(()));
    }

    #[test]
    fn check_value_categorical_and_boolean() {
        let cat = ColumnSpec {
            categories: Some(vec!["red".into(), "blue".into()]),
            ..ColumnSpec::new("colour", ColumnKind::Categorical)
        };
        assert_eq!(cat.check_value(Some("red")), Ok(()));
        assert_eq!(
            cat.check_value(Some("green")),
            Err(ValueViolation::UnknownCategory)
        );
        let flag = ColumnSpec {
            categories: Some(vec!["true".into()]),
            ..ColumnSpec::new("flag", ColumnKind::Boolean)
        };
        assert_eq!(flag.check_value(Some("YES")), Ok(()));
        assert_eq!(
            flag.check_value(Some("no")),
            Err(ValueViolation::UnknownCategory)
        );
        assert!(matches!(
            flag.check_value(Some("perhaps")),
            Err(ValueViolation::Type { .. })
        ));
    }

    #[test]
    fn check_value_text_and_timestamp() {
        let text = ColumnSpec {
            max_length: Some(3),
            ..ColumnSpec::new("code", ColumnKind::Text)
        };
        assert_eq!(text.check_value(Some("abc")), Ok(()));
        assert_eq!(
            text.check_value(Some("éé")),
            Ok(()),
            "characters, not bytes"
        );
        assert!(matches!(
            text.check_value(Some("abcd")),
            Err(ValueViolation::TooLong { length: 4, .. })
        ));
        let ts = ColumnSpec {
            earliest: Some(0),
            latest: Some(86_400),
            ..ColumnSpec::new("when", ColumnKind::Timestamp)
        };
        assert_eq!(ts.check_value(Some("1970-01-01T12:00:00Z")), Ok(()));
        assert!(matches!(
            ts.check_value(Some("1969-12-31")),
            Err(ValueViolation::TooEarly { .. })
        ));
        assert!(matches!(
            ts.check_value(Some("1970-01-03")),
            Err(ValueViolation::TooLate { .. })
        ));
        assert!(matches!(
            ts.check_value(Some("soon")),
            Err(ValueViolation::Type { .. })
        ));
        assert!(ValueViolation::TooLate {
            value: 172_800,
            latest: 86_400
        }
        .to_string()
        .contains("1970-01-03"));
    }

    fn schema() -> DataSchema {
        DataSchema {
            version: DATA_SCHEMA_VERSION,
            rows: None,
            label: Some(LabelSpec {
                name: "y".into(),
                classes: vec!["0".into(), "1".into()],
            }),
            columns: vec![numeric()],
        }
    }

    #[test]
    fn validate_accepts_a_good_schema_and_names_the_bad_column() {
        assert_eq!(schema().validate(), Ok(()));
        let mut bad = schema();
        bad.columns[0].min = Some(200.0);
        let err = bad.validate().unwrap_err();
        assert_eq!(err.subject, "column \"age\"");
        assert!(err.reason.contains("greater than"), "{err}");
        let mut bad = schema();
        bad.columns[0].max_missing = 1.5;
        assert!(bad.validate().is_err());
        let mut bad = schema();
        bad.columns[0].max = Some(f64::INFINITY);
        assert!(bad.validate().is_err());
        let mut bad = schema();
        bad.columns.push(numeric());
        assert!(bad
            .validate()
            .unwrap_err()
            .reason
            .contains("more than once"));
        let mut bad = schema();
        bad.columns[0].max_length = Some(3);
        assert!(bad.validate().is_err());
        let mut bad = schema();
        bad.columns.push(ColumnSpec {
            categories: Some(vec![]),
            ..ColumnSpec::new("c", ColumnKind::Categorical)
        });
        assert!(bad.validate().unwrap_err().reason.contains("empty"));
        let mut bad = schema();
        bad.version = 2;
        assert_eq!(bad.validate().unwrap_err().subject, "version");
        let mut bad = schema();
        bad.rows = Some(RowBounds {
            min: Some(10),
            max: Some(5),
        });
        assert_eq!(bad.validate().unwrap_err().subject, "rows");
        let mut bad = schema();
        if let Some(l) = bad.label.as_mut() {
            l.classes.push("1".into());
        }
        assert_eq!(bad.validate().unwrap_err().subject, "label");
    }
}
