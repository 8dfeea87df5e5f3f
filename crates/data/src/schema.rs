//! Schemas: inferred from a table, stored as reviewable TOML, validated on load, and aligned with a table.
//!
//! An inferred schema is a starting point, not a truth: it only knows the range and kind each column showed in
//! the data at hand. It is saved as TOML so that a person can widen bounds, mark features `immutable` or set a
//! per-feature `eps` before attacks and audits rely on it. Because the file is edited by hand, loading checks
//! what serde cannot: finite bounds with `min <= max`, unique feature names, and one-hot groups made of binary
//! features that exist.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::File;
use std::io::Read;
use std::path::Path;

use aegis_core::{FeatureKind, FeatureSpec, OneHotGroup, Schema, Table};

use crate::error::Error;

/// Schema files larger than this are refused: a schema is a few lines per feature.
pub(crate) const MAX_SCHEMA_BYTES: u64 = 16 << 20;

/// Reads a schema file (feature or dataset schema) as text, refusing files over [`MAX_SCHEMA_BYTES`] without
/// reading past the bound.
pub(crate) fn read_schema_text(path: &Path) -> Result<String, Error> {
    let io_err = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let too_large = || Error::TooLarge {
        path: path.to_path_buf(),
        limit: MAX_SCHEMA_BYTES,
    };
    let file = File::open(path).map_err(io_err)?;
    if file.metadata().map_err(io_err)?.len() > MAX_SCHEMA_BYTES {
        return Err(too_large());
    }
    let mut text = String::new();
    file.take(MAX_SCHEMA_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(io_err)?;
    if text.len() as u64 > MAX_SCHEMA_BYTES {
        return Err(too_large());
    }
    Ok(text)
}

/// The comment at the top of a saved schema.
const HEADER: &str = "\
# Aegis feature schema: one [[feature]] per model input, in model-input order.
# kind = continuous | integer | binary; min/max bound valid values. Optional per feature:
# immutable = true (attacks never change it), eps = <budget in raw units>.
# [[one_hot]] groups list binary features of which exactly one is 1 in every valid row.

";

/// Infers a schema from the data: per column, its observed `[min, max]` and its kind.
///
/// A column is [`FeatureKind::Binary`] when every value is 0 or 1, [`FeatureKind::Integer`] when every value
/// is a whole number, and [`FeatureKind::Continuous`] otherwise. No feature is immutable and none has its own
/// eps. Binary columns named `<prefix>_<value>` that share a prefix form a [`OneHotGroup`] named `<prefix>`
/// when there are at least two of them and every row has exactly one of them set to 1.
///
/// Non-finite values (which [`read_csv`](crate::read_csv) never produces) are ignored for the bounds and make
/// a column continuous; a column without finite values, or a table without rows, gets bounds `[0, 0]`.
pub fn infer_schema(table: &Table) -> Schema {
    let d = table.n_features();
    let rows = || table.features.chunks_exact(d.max(1)).take(table.n_rows());
    let features: Vec<FeatureSpec> = table
        .columns
        .iter()
        .enumerate()
        .map(|(j, name)| infer_feature(name, rows().filter_map(|r| r.get(j).copied())))
        .collect();

    // Candidate groups by prefix, in the order their first column appears.
    let mut order: Vec<(&str, Vec<usize>)> = Vec::new();
    let mut by_prefix: BTreeMap<&str, usize> = BTreeMap::new();
    for (j, spec) in features.iter().enumerate() {
        if spec.kind != FeatureKind::Binary {
            continue;
        }
        let Some((prefix, value)) = spec.name.rsplit_once('_') else {
            continue;
        };
        if prefix.is_empty() || value.is_empty() {
            continue;
        }
        let k = *by_prefix.entry(prefix).or_insert_with(|| {
            order.push((prefix, Vec::new()));
            order.len() - 1
        });
        if let Some((_, columns)) = order.get_mut(k) {
            columns.push(j);
        }
    }
    let one_hot = order
        .into_iter()
        .filter(|(_, columns)| {
            columns.len() >= 2
                && table.n_rows() > 0
                && rows().all(|r| columns.iter().filter(|&&j| r.get(j) == Some(&1.0)).count() == 1)
        })
        .map(|(prefix, columns)| OneHotGroup {
            name: prefix.to_owned(),
            columns: columns.iter().map(|&j| features[j].name.clone()).collect(),
            immutable: false,
        })
        .collect();
    Schema { features, one_hot }
}

/// The spec of one column from its values.
fn infer_feature(name: &str, values: impl Iterator<Item = f32>) -> FeatureSpec {
    let (mut min, mut max) = (f32::INFINITY, f32::NEG_INFINITY);
    let (mut any, mut binary, mut whole) = (false, true, true);
    for v in values {
        any = true;
        if !v.is_finite() {
            binary = false;
            whole = false;
            continue;
        }
        min = min.min(v);
        max = max.max(v);
        binary &= v == 0.0 || v == 1.0;
        whole &= v.fract() == 0.0;
    }
    let kind = match (any, binary, whole) {
        (false, _, _) => FeatureKind::Continuous,
        (true, true, _) => FeatureKind::Binary,
        (true, false, true) => FeatureKind::Integer,
        (true, false, false) => FeatureKind::Continuous,
    };
    if min > max {
        (min, max) = (0.0, 0.0);
    }
    FeatureSpec {
        name: name.to_owned(),
        kind,
        min,
        max,
        immutable: false,
        eps: None,
    }
}

/// Reads a TOML schema file (`[[feature]]` and `[[one_hot]]` tables) and checks it.
///
/// # Errors
///
/// [`Error::Io`] or [`Error::TooLarge`] (over 16 MiB) when the file cannot be read; [`Error::SchemaParse`]
/// when it is not TOML of the schema's shape (unknown keys included); [`Error::SchemaEmpty`] without features;
/// [`Error::InvalidFeature`] for a non-finite bound, `min > max`, an empty or repeated name or a negative or
/// non-finite eps; [`Error::InvalidOneHot`] for a group with fewer than two columns, a repeated column, or a
/// column that is not a binary feature of the schema.
pub fn load_schema(path: &Path) -> Result<Schema, Error> {
    load_model_schema(path, &[])
}

/// [`load_schema`] for a model that does not take the `drop`ped columns (`--drop`): they are left out before
/// anything else is checked, so a column that cannot be a model input does not stop a model without it.
///
/// # Errors
///
/// As [`load_schema`].
pub fn load_model_schema(path: &Path, drop: &[String]) -> Result<Schema, Error> {
    let text = read_schema_text(path)?;
    let schema = if is_dataset_schema(&text) {
        let mut data = crate::parse_data_schema(&text, path)?;
        data.columns.retain(|c| !drop.contains(&c.name));
        feature_schema(&data, path)?
    } else {
        toml::from_str(&text).map_err(|source| Error::SchemaParse {
            path: path.to_path_buf(),
            source,
        })?
    };
    let schema = without_columns(&schema, drop);
    validate(path, &schema)?;
    Ok(schema)
}

/// Whether schema text is the dataset schema `aegis schema infer` writes (`version`, `[[column]]`) rather
/// than the older feature-only form (`[[feature]]`).
fn is_dataset_schema(text: &str) -> bool {
    toml::from_str::<toml::Table>(text)
        .is_ok_and(|t| t.contains_key("version") || t.contains_key("column"))
}

/// The model-input view of a dataset schema: one feature per numeric or boolean column (categorical, text
/// and timestamp columns are not model inputs and are left out), with the attacker-facing keys
/// (`immutable`, `eps`, `one_hot`) carried over. A 0/1 integer column is binary, as [`infer_schema`] decides.
///
/// # Errors
///
/// [`Error::InvalidFeature`] for a numeric column without both `min` and `max` (attacks need bounds).
pub fn feature_schema(schema: &crate::DataSchema, path: &Path) -> Result<Schema, Error> {
    use aegis_core::ColumnKind;
    let mut features = Vec::new();
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    for c in &schema.columns {
        let (kind, min, max) = match c.kind {
            ColumnKind::Boolean => (FeatureKind::Binary, 0.0, 1.0),
            ColumnKind::Numeric => {
                let (Some(min), Some(max)) = (c.min, c.max) else {
                    return Err(Error::InvalidFeature {
                        path: path.to_path_buf(),
                        feature: c.name.clone(),
                        reason:
                            "a model input needs both min and max (add them, or run `aegis schema \
                                 infer` on trusted data)"
                                .into(),
                    });
                };
                let kind = if c.integer && min >= 0.0 && max <= 1.0 {
                    FeatureKind::Binary
                } else if c.integer {
                    FeatureKind::Integer
                } else {
                    FeatureKind::Continuous
                };
                (kind, min, max)
            }
            _ => continue,
        };
        features.push(FeatureSpec {
            name: c.name.clone(),
            kind,
            min: min as f32,
            max: max as f32,
            immutable: c.immutable,
            eps: c.eps.map(|e| e as f32),
        });
        if let Some(group) = &c.one_hot {
            match groups.iter_mut().find(|(g, _)| g == group) {
                Some((_, cols)) => cols.push(c.name.clone()),
                None => groups.push((group.clone(), vec![c.name.clone()])),
            }
        }
    }
    let immutable = |cols: &[String]| {
        cols.iter().all(|c| {
            features
                .iter()
                .any(|f: &FeatureSpec| &f.name == c && f.immutable)
        })
    };
    let one_hot = groups
        .into_iter()
        .map(|(name, columns)| OneHotGroup {
            immutable: immutable(&columns),
            name,
            columns,
        })
        .collect();
    Ok(Schema { features, one_hot })
}

/// The per-value check of each model input, in order: one numeric [`crate::ColumnSpec`] per feature with
/// its bounds, whole numbers required for integer and binary features. The gateway checks every request
/// value with these, through the same [`crate::ColumnSpec::check_value`] logic that `aegis schema check`
/// applies to every cell, whichever form the schema file was written in.
pub fn input_columns(schema: &Schema) -> Vec<crate::ColumnSpec> {
    schema
        .features
        .iter()
        .map(|f| crate::ColumnSpec {
            min: Some(f64::from(f.min)),
            max: Some(f64::from(f.max)),
            integer: f.kind != FeatureKind::Continuous,
            ..crate::ColumnSpec::new(f.name.clone(), aegis_core::ColumnKind::Numeric)
        })
        .collect()
}

/// The schema without the named columns (`--drop`): a dataset schema describes every column of a file,
/// the model sees fewer.
fn without_columns(schema: &Schema, drop: &[String]) -> Schema {
    let keep = |name: &String| !drop.contains(name);
    Schema {
        features: schema
            .features
            .iter()
            .filter(|f| keep(&f.name))
            .cloned()
            .collect(),
        one_hot: schema
            .one_hot
            .iter()
            .filter(|g| g.columns.iter().all(keep))
            .cloned()
            .collect(),
    }
}

/// Writes a schema as TOML, with a comment explaining the keys a reviewer may edit.
///
/// # Errors
///
/// [`Error::SchemaWrite`] when the schema cannot be expressed in TOML, [`Error::Io`] when the file cannot
/// be written.
pub fn save_schema(schema: &Schema, path: &Path) -> Result<(), Error> {
    let body = toml::to_string(schema).map_err(|source| Error::SchemaWrite {
        path: path.to_path_buf(),
        source,
    })?;
    std::fs::write(path, format!("{HEADER}{body}")).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// The checks of [`load_schema`] beyond the TOML shape.
fn validate(path: &Path, schema: &Schema) -> Result<(), Error> {
    if schema.features.is_empty() {
        return Err(Error::SchemaEmpty {
            path: path.to_path_buf(),
        });
    }
    let feature_err = |spec: &FeatureSpec, reason: String| Error::InvalidFeature {
        path: path.to_path_buf(),
        feature: spec.name.clone(),
        reason,
    };
    let mut names = BTreeSet::new();
    for spec in &schema.features {
        if spec.name.is_empty() {
            return Err(feature_err(spec, "the name is empty".into()));
        }
        if !names.insert(spec.name.as_str()) {
            return Err(feature_err(spec, "defined more than once".into()));
        }
        for (key, v) in [("min", spec.min), ("max", spec.max)] {
            if !v.is_finite() {
                return Err(feature_err(
                    spec,
                    format!("{key} = {v} is not a finite number"),
                ));
            }
        }
        if spec.min > spec.max {
            return Err(feature_err(
                spec,
                format!("min = {} is greater than max = {}", spec.min, spec.max),
            ));
        }
        if let Some(eps) = spec.eps {
            if !eps.is_finite() || eps < 0.0 {
                return Err(feature_err(
                    spec,
                    format!("eps = {eps} is not a finite, non-negative number"),
                ));
            }
        }
    }
    for group in &schema.one_hot {
        let group_err = |reason: String| Error::InvalidOneHot {
            path: path.to_path_buf(),
            group: group.name.clone(),
            reason,
        };
        if group.columns.len() < 2 {
            return Err(group_err(format!(
                "has {} columns, at least two are needed",
                group.columns.len()
            )));
        }
        let mut seen = BTreeSet::new();
        for column in &group.columns {
            if !seen.insert(column.as_str()) {
                return Err(group_err(format!("lists column {column:?} more than once")));
            }
            match schema.features.iter().find(|f| &f.name == column) {
                None => {
                    return Err(group_err(format!(
                        "column {column:?} is not a feature of the schema"
                    )))
                }
                Some(f) if f.kind != FeatureKind::Binary => {
                    let kind = format!("{:?}", f.kind).to_lowercase();
                    return Err(group_err(format!(
                        "column {column:?} has kind {kind}, not binary"
                    )));
                }
                Some(_) => {}
            }
        }
    }
    Ok(())
}

/// The schema with its features in the table's column order, so that feature `j` describes column `j`.
///
/// One-hot groups refer to features by name and are kept as they are.
///
/// # Errors
///
/// [`Error::SchemaMismatch`] naming every table column the schema lacks and every schema feature the
/// table lacks.
pub fn align_schema(schema: &Schema, table: &Table) -> Result<Schema, Error> {
    let mut specs: HashMap<&str, &FeatureSpec> = HashMap::with_capacity(schema.features.len());
    for spec in &schema.features {
        specs.entry(spec.name.as_str()).or_insert(spec);
    }
    let columns: BTreeSet<&str> = table.columns.iter().map(String::as_str).collect();
    let missing_from_schema: Vec<String> = table
        .columns
        .iter()
        .filter(|c| !specs.contains_key(c.as_str()))
        .cloned()
        .collect();
    let missing_from_table: Vec<String> = schema
        .features
        .iter()
        .filter(|f| !columns.contains(f.name.as_str()))
        .map(|f| f.name.clone())
        .collect();
    if !missing_from_schema.is_empty() || !missing_from_table.is_empty() {
        return Err(Error::SchemaMismatch {
            missing_from_schema,
            missing_from_table,
        });
    }
    let features = table
        .columns
        .iter()
        .filter_map(|c| specs.get(c.as_str()).map(|&s| s.clone()))
        .collect();
    Ok(Schema {
        features,
        one_hot: schema.one_hot.clone(),
    })
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_dataset_schema_reads_as_model_inputs_with_its_attacker_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.toml");
        std::fs::write(
            &path,
            r#"version = 1
[label]
name = "y"
classes = ["0", "1"]
[[column]]
name = "amount"
kind = "numeric"
min = 0.5
max = 900.25
immutable = false
eps = 5.0
[[column]]
name = "age"
kind = "numeric"
min = 18.0
max = 99.0
integer = true
immutable = true
[[column]]
name = "country_fr"
kind = "numeric"
min = 0.0
max = 1.0
integer = true
one_hot = "country"
[[column]]
name = "country_de"
kind = "boolean"
one_hot = "country"
[[column]]
name = "note"
kind = "text"
"#,
        )
        .unwrap();
        let s = load_schema(&path).unwrap();
        let names: Vec<&str> = s.features.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(
            names,
            ["amount", "age", "country_fr", "country_de"],
            "text is not an input"
        );
        let kinds: Vec<FeatureKind> = s.features.iter().map(|f| f.kind).collect();
        assert_eq!(
            kinds,
            [
                FeatureKind::Continuous,
                FeatureKind::Integer,
                FeatureKind::Binary,
                FeatureKind::Binary
            ]
        );
        assert_eq!(
            (s.features[0].min, s.features[0].max, s.features[0].eps),
            (0.5, 900.25, Some(5.0))
        );
        assert!(s.features[1].immutable && !s.features[0].immutable);
        assert_eq!(s.one_hot.len(), 1);
        assert_eq!(s.one_hot[0].columns, ["country_fr", "country_de"]);
        // A numeric input without bounds is refused, naming the column and what to do.
        std::fs::write(
            &path,
            "version = 1\n[[column]]\nname = \"x\"\nkind = \"numeric\"\n",
        )
        .unwrap();
        let err = load_schema(&path).unwrap_err().to_string();
        assert!(
            err.contains("\"x\"") && err.contains("min and max"),
            "{err}"
        );
        // Unless the model does not take that column (--drop).
        let kept = load_model_schema(&path, &["x".to_string()]);
        assert!(matches!(kept, Err(Error::SchemaEmpty { .. })), "{kept:?}");
        // An attacker key on a column that is not a model input is refused too.
        std::fs::write(
            &path,
            "version = 1\n[[column]]\nname = \"t\"\nkind = \"text\"\nimmutable = true\n",
        )
        .unwrap();
        let err = load_schema(&path).unwrap_err().to_string();
        assert!(err.contains("immutable"), "{err}");
        // The older [[feature]] form still loads.
        std::fs::write(
            &path,
            "[[feature]]\nname = \"x\"\nkind = \"continuous\"\nmin = 0.0\nmax = 1.0\n",
        )
        .unwrap();
        assert_eq!(load_schema(&path).unwrap().features.len(), 1);
    }

    use super::*;

    fn table(columns: &[&str], rows: &[&[f32]]) -> Table {
        Table {
            columns: columns.iter().map(|c| (*c).to_owned()).collect(),
            features: rows.iter().flat_map(|r| r.iter().copied()).collect(),
            labels: None,
            label_column: None,
            class_names: Vec::new(),
        }
    }

    fn spec(name: &str, kind: FeatureKind, min: f32, max: f32) -> FeatureSpec {
        FeatureSpec {
            name: name.into(),
            kind,
            min,
            max,
            immutable: false,
            eps: None,
        }
    }

    #[test]
    fn infers_kinds_and_bounds() {
        let t = table(
            &["bin", "count", "zero_one_two", "real", "const"],
            &[
                &[0.0, 3.0, 0.0, -1.5, 7.0],
                &[1.0, 10.0, 1.0, 2.25, 7.0],
                &[1.0, -2.0, 2.0, 0.0, 7.0],
            ],
        );
        let s = infer_schema(&t);
        assert_eq!(
            s.features,
            vec![
                spec("bin", FeatureKind::Binary, 0.0, 1.0),
                spec("count", FeatureKind::Integer, -2.0, 10.0),
                // 0 and 1, but also 2: integer, not binary.
                spec("zero_one_two", FeatureKind::Integer, 0.0, 2.0),
                spec("real", FeatureKind::Continuous, -1.5, 2.25),
                spec("const", FeatureKind::Integer, 7.0, 7.0),
            ]
        );
        assert!(s.one_hot.is_empty());
        for i in 0..t.n_rows() {
            assert!(s.check_row(t.row(i)).is_ok());
        }
    }

    #[test]
    fn non_finite_values_make_a_column_continuous_without_widening_bounds() {
        let t = table(
            &["a", "b"],
            &[
                &[1.0, f32::NAN],
                &[f32::INFINITY, f32::NAN],
                &[0.0, f32::NAN],
            ],
        );
        let s = infer_schema(&t);
        assert_eq!(s.features[0], spec("a", FeatureKind::Continuous, 0.0, 1.0));
        assert_eq!(s.features[1], spec("b", FeatureKind::Continuous, 0.0, 0.0));
    }

    #[test]
    fn empty_table_gets_zero_bounds_and_no_groups() {
        let t = table(&["c_a", "c_b"], &[]);
        let s = infer_schema(&t);
        assert_eq!(
            s.features[0],
            spec("c_a", FeatureKind::Continuous, 0.0, 0.0)
        );
        assert!(s.one_hot.is_empty());
        assert!(infer_schema(&table(&[], &[])).features.is_empty());
    }

    #[test]
    fn detects_one_hot_groups_by_prefix() {
        let t = table(
            &[
                "country_de",
                "age",
                "country_fr",
                "country_it",
                "plan_basic",
                "plan_pro",
            ],
            &[
                &[1.0, 30.0, 0.0, 0.0, 0.0, 1.0],
                &[0.0, 41.0, 1.0, 0.0, 1.0, 0.0],
                &[0.0, 25.0, 0.0, 1.0, 1.0, 0.0],
            ],
        );
        let s = infer_schema(&t);
        assert_eq!(
            s.one_hot,
            vec![
                OneHotGroup {
                    name: "country".into(),
                    columns: vec![
                        "country_de".into(),
                        "country_fr".into(),
                        "country_it".into()
                    ],
                    immutable: false,
                },
                OneHotGroup {
                    name: "plan".into(),
                    columns: vec!["plan_basic".into(), "plan_pro".into()],
                    immutable: false
                },
            ]
        );
        for i in 0..t.n_rows() {
            assert!(s.check_row(t.row(i)).is_ok());
        }
    }

    #[test]
    fn two_hot_columns_in_one_row_is_not_a_group() {
        let t = table(
            &["country_de", "country_fr"],
            &[&[1.0, 0.0], &[1.0, 1.0], &[0.0, 1.0]],
        );
        assert!(infer_schema(&t).one_hot.is_empty());
    }

    #[test]
    fn a_row_with_no_hot_column_is_not_a_group() {
        let t = table(&["country_de", "country_fr"], &[&[1.0, 0.0], &[0.0, 0.0]]);
        assert!(infer_schema(&t).one_hot.is_empty());
    }

    #[test]
    fn non_binary_and_unprefixed_columns_are_not_grouped() {
        // `country_code` shares the prefix but is an integer column: it stays out, and one binary column
        // alone is not a group.
        let t = table(
            &["country_de", "country_code", "de", "fr"],
            &[&[1.0, 49.0, 1.0, 0.0], &[0.0, 33.0, 0.0, 1.0]],
        );
        assert!(infer_schema(&t).one_hot.is_empty());
        // A leading or trailing underscore is not a prefix.
        let t = table(
            &["_a", "_b", "x_", "y_"],
            &[&[1.0, 0.0, 1.0, 0.0], &[0.0, 1.0, 0.0, 1.0]],
        );
        assert!(infer_schema(&t).one_hot.is_empty());
    }

    #[test]
    fn groups_use_the_prefix_before_the_last_underscore() {
        let t = table(
            &["home_country_de", "home_country_fr"],
            &[&[1.0, 0.0], &[0.0, 1.0]],
        );
        assert_eq!(infer_schema(&t).one_hot[0].name, "home_country");
    }

    fn load(text: &str) -> (Result<Schema, Error>, String) {
        let mut f = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
        std::io::Write::write_all(&mut f, text.as_bytes()).unwrap();
        let r = load_schema(f.path());
        (r, f.path().display().to_string())
    }

    const GOOD: &str = r#"
[[feature]]
name = "age"
kind = "integer"
min = 18
max = 99
immutable = true

[[feature]]
name = "de"
kind = "binary"
min = 0
max = 1

[[feature]]
name = "fr"
kind = "binary"
min = 0.0
max = 1.0
eps = 0.5

[[one_hot]]
name = "country"
columns = ["de", "fr"]
"#;

    #[test]
    fn loads_a_hand_written_schema() {
        let s = load(GOOD).0.unwrap();
        assert_eq!(s.features.len(), 3);
        assert!(s.features[0].immutable);
        assert_eq!(s.features[0].min, 18.0);
        assert_eq!(s.features[2].eps, Some(0.5));
        assert_eq!(s.one_hot[0].columns, vec!["de", "fr"]);
    }

    #[test]
    fn min_above_max_names_file_and_feature() {
        let (r, path) = load("[[feature]]\nname = \"amount\"\nmin = 5\nmax = 1\n");
        let msg = r.unwrap_err().to_string();
        assert_eq!(
            msg,
            format!("schema {path}: feature \"amount\": min = 5 is greater than max = 1")
        );
    }

    #[test]
    fn non_finite_bounds_and_bad_eps_are_refused() {
        let (r, _) = load("[[feature]]\nname = \"a\"\nmin = nan\nmax = 1\n");
        let msg = r.unwrap_err().to_string();
        assert!(
            msg.contains("feature \"a\": min = NaN is not a finite number"),
            "{msg}"
        );
        let (r, _) = load("[[feature]]\nname = \"a\"\nmin = 0\nmax = inf\n");
        assert!(r
            .unwrap_err()
            .to_string()
            .contains("max = inf is not a finite number"));
        // Finite in TOML, infinite as f32.
        let (r, _) = load("[[feature]]\nname = \"a\"\nmin = 0\nmax = 1e300\n");
        assert!(matches!(r, Err(Error::InvalidFeature { .. })));
        let (r, _) = load("[[feature]]\nname = \"a\"\nmin = 0\nmax = 1\neps = -1\n");
        assert!(r
            .unwrap_err()
            .to_string()
            .contains("eps = -1 is not a finite, non-negative number"));
    }

    #[test]
    fn duplicate_and_empty_names_are_refused() {
        let (r, _) = load("[[feature]]\nname = \"a\"\nmin = 0\nmax = 1\n[[feature]]\nname = \"a\"\nmin = 0\nmax = 2\n");
        assert!(r
            .unwrap_err()
            .to_string()
            .ends_with("feature \"a\": defined more than once"));
        let (r, _) = load("[[feature]]\nname = \"\"\nmin = 0\nmax = 1\n");
        assert!(r.unwrap_err().to_string().ends_with("the name is empty"));
    }

    #[test]
    fn one_hot_columns_must_exist_and_be_binary() {
        let missing = GOOD.replace("[\"de\", \"fr\"]", "[\"de\", \"it\"]");
        let (r, path) = load(&missing);
        assert_eq!(
            r.unwrap_err().to_string(),
            format!("schema {path}: one-hot group \"country\": column \"it\" is not a feature of the schema")
        );
        let not_binary = GOOD.replace("[\"de\", \"fr\"]", "[\"de\", \"age\"]");
        let msg = load(&not_binary).0.unwrap_err().to_string();
        assert!(
            msg.ends_with("column \"age\" has kind integer, not binary"),
            "{msg}"
        );
        let single = GOOD.replace("[\"de\", \"fr\"]", "[\"de\"]");
        assert!(load(&single)
            .0
            .unwrap_err()
            .to_string()
            .contains("at least two"));
        let repeated = GOOD.replace("[\"de\", \"fr\"]", "[\"de\", \"de\"]");
        assert!(load(&repeated)
            .0
            .unwrap_err()
            .to_string()
            .contains("more than once"));
    }

    #[test]
    fn malformed_and_empty_files_are_refused() {
        let (r, path) = load("[[feature]]\nname = \"a\"\nmin = 0\nmax = 1\ncolour = \"red\"\n");
        let e = r.unwrap_err();
        assert!(matches!(e, Error::SchemaParse { .. }));
        assert!(e
            .to_string()
            .starts_with(&format!("cannot parse schema {path}")));
        let (r, _) = load("[[feature]]\nname = \"a\"\nkind = \"categorical\"\nmin = 0\nmax = 1\n");
        assert!(matches!(r, Err(Error::SchemaParse { .. })));
        let (r, _) = load("not toml at all [");
        assert!(matches!(r, Err(Error::SchemaParse { .. })));
        let (r, _) = load("# nothing\n");
        assert!(matches!(r, Err(Error::SchemaEmpty { .. })));
    }

    #[test]
    fn missing_schema_file_is_an_io_error() {
        let dir = tempfile::tempdir().unwrap();
        let e = load_schema(&dir.path().join("schema.toml")).unwrap_err();
        assert!(matches!(e, Error::Io { .. }));
        assert!(e.to_string().contains("schema.toml"));
    }

    #[test]
    fn save_writes_a_commented_schema_that_loads_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.toml");
        let s = load(GOOD).0.unwrap();
        save_schema(&s, &path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("# Aegis feature schema"));
        assert!(text.contains("[[feature]]") && text.contains("[[one_hot]]"));
        assert_eq!(load_schema(&path).unwrap(), s);
    }

    #[test]
    fn align_reorders_to_the_table() {
        let s = load(GOOD).0.unwrap();
        let t = table(&["fr", "age", "de"], &[&[0.0, 20.0, 1.0]]);
        let a = align_schema(&s, &t).unwrap();
        let names: Vec<&str> = a.features.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, vec!["fr", "age", "de"]);
        assert_eq!(a.one_hot, s.one_hot);
        assert!(a.check_row(t.row(0)).is_ok());
    }

    #[test]
    fn align_names_columns_missing_on_either_side() {
        let s = load(GOOD).0.unwrap();
        let t = table(&["age", "de", "fr", "income"], &[&[20.0, 1.0, 0.0, 5.0]]);
        let e = align_schema(&s, &t).unwrap_err();
        assert_eq!(
            e.to_string(),
            "schema does not match the table: table columns missing from the schema: \"income\""
        );
        let t = table(&["age", "de"], &[&[20.0, 1.0]]);
        let e = align_schema(&s, &t).unwrap_err();
        assert_eq!(
            e.to_string(),
            "schema does not match the table: schema features missing from the table: \"fr\""
        );
        let t = table(&["age", "de", "it"], &[&[20.0, 1.0, 0.0]]);
        let msg = align_schema(&s, &t).unwrap_err().to_string();
        assert!(msg.contains(
            "missing from the schema: \"it\"; schema features missing from the table: \"fr\""
        ));
    }
}
