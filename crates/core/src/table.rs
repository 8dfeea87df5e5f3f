//! Tabular data as every numeric pillar sees it: dense `f32` features in row-major order, optional class
//! labels, and the [`Schema`] that says what a valid row is.
//!
//! Attacks, audits and the gateway's drift monitor all work on this one shape, so a dataset read once by the
//! `data` crate can be handed to any of them. The schema is what keeps adversarial rows honest: an attack that
//! changes an immutable field or writes 2.5 into an integer count has not found a real vulnerability.

use serde::{Deserialize, Serialize};

/// A dense table of features with optional class labels.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// Feature column names, in model-input order.
    pub columns: Vec<String>,
    /// Row-major features: `n_rows * columns.len()` values.
    pub features: Vec<f32>,
    /// Class index per row, when the table has a label column.
    pub labels: Option<Vec<u32>>,
    /// Name of the label column, when there is one.
    pub label_column: Option<String>,
    /// Class names, indexed by label (`"0"`, `"1"` … for integer labels).
    pub class_names: Vec<String>,
}

impl Table {
    /// Number of feature columns.
    pub fn n_features(&self) -> usize {
        self.columns.len()
    }

    /// Number of rows.
    pub fn n_rows(&self) -> usize {
        self.features
            .len()
            .checked_div(self.columns.len())
            .unwrap_or(0)
    }

    /// The features of one row.
    pub fn row(&self, i: usize) -> &[f32] {
        let d = self.n_features();
        &self.features[i * d..(i + 1) * d]
    }

    /// A table made of the given rows, in that order.
    pub fn select(&self, rows: &[usize]) -> Table {
        let mut features = Vec::with_capacity(rows.len() * self.n_features());
        for &r in rows {
            features.extend_from_slice(self.row(r));
        }
        Table {
            columns: self.columns.clone(),
            features,
            labels: self
                .labels
                .as_ref()
                .map(|l| rows.iter().map(|&r| l[r]).collect()),
            label_column: self.label_column.clone(),
            class_names: self.class_names.clone(),
        }
    }

    /// Column index by name.
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c == name)
    }
}

/// What kind of values a feature takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum FeatureKind {
    /// Any real value within the bounds.
    #[default]
    Continuous,
    /// Whole numbers within the bounds (counts, ages, days).
    Integer,
    /// Exactly 0 or 1.
    Binary,
}

/// The schema of one feature column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureSpec {
    /// Column name.
    pub name: String,
    /// Value kind.
    #[serde(default)]
    pub kind: FeatureKind,
    /// Smallest valid value.
    pub min: f32,
    /// Largest valid value.
    pub max: f32,
    /// An attacker cannot change this feature (date of birth, account age, the applicant's country).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub immutable: bool,
    /// Per-feature perturbation budget in raw units; overrides the global eps when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eps: Option<f32>,
}

impl FeatureSpec {
    /// The width of the valid range (0 for a constant feature).
    pub fn range(&self) -> f32 {
        (self.max - self.min).max(0.0)
    }
}

/// Columns that one-hot encode a single categorical value: exactly one of them is 1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OneHotGroup {
    /// Name of the categorical value (e.g. `country`).
    pub name: String,
    /// The encoding columns.
    pub columns: Vec<String>,
    /// An attacker cannot change the category.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub immutable: bool,
}

/// What a valid input row is: one [`FeatureSpec`] per model input column, plus one-hot groups.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Schema {
    /// One entry per feature, in model-input order.
    #[serde(default, rename = "feature")]
    pub features: Vec<FeatureSpec>,
    /// One-hot groups.
    #[serde(default, rename = "one_hot", skip_serializing_if = "Vec::is_empty")]
    pub one_hot: Vec<OneHotGroup>,
}

impl Schema {
    /// Features whose valid range is a single value (`min == max`): under bounds inferred from data, a
    /// feature seen with one value, which no attack can move.
    pub fn fixed_features(&self) -> Vec<&str> {
        self.features
            .iter()
            .filter(|f| f.range() == 0.0)
            .map(|f| f.name.as_str())
            .collect()
    }

    /// Index of a feature by name.
    pub fn index(&self, name: &str) -> Option<usize> {
        self.features.iter().position(|f| f.name == name)
    }

    /// Whether `row` satisfies the schema; the first violation as text otherwise.
    pub fn check_row(&self, row: &[f32]) -> Result<(), String> {
        if row.len() != self.features.len() {
            return Err(format!(
                "row has {} values, schema has {} features",
                row.len(),
                self.features.len()
            ));
        }
        for (spec, &v) in self.features.iter().zip(row) {
            let tol = 1e-5 * (1.0 + spec.range());
            if !v.is_finite() || v < spec.min - tol || v > spec.max + tol {
                return Err(format!(
                    "{} = {v} outside [{}, {}]",
                    spec.name, spec.min, spec.max
                ));
            }
            let whole = (v - v.round()).abs() <= 1e-4;
            match spec.kind {
                FeatureKind::Integer if !whole => {
                    return Err(format!("{} = {v} is not a whole number", spec.name))
                }
                FeatureKind::Binary if !(whole && (v.round() == 0.0 || v.round() == 1.0)) => {
                    return Err(format!("{} = {v} is not 0 or 1", spec.name))
                }
                _ => {}
            }
        }
        for group in &self.one_hot {
            let hot = group
                .columns
                .iter()
                .filter_map(|c| self.index(c))
                .filter(|&i| (row[i] - 1.0).abs() < 1e-4)
                .count();
            if hot != 1 {
                return Err(format!(
                    "one-hot group {} has {hot} hot columns",
                    group.name
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> Schema {
        toml_like()
    }

    #[test]
    fn only_single_value_features_are_fixed() {
        let mut s = schema();
        assert!(s.fixed_features().is_empty());
        s.features[1].max = s.features[1].min;
        assert_eq!(s.fixed_features(), ["amount"]);
    }

    fn toml_like() -> Schema {
        Schema {
            features: vec![
                FeatureSpec {
                    name: "age".into(),
                    kind: FeatureKind::Integer,
                    min: 18.0,
                    max: 99.0,
                    immutable: true,
                    eps: None,
                },
                FeatureSpec {
                    name: "amount".into(),
                    kind: FeatureKind::Continuous,
                    min: 0.0,
                    max: 1e4,
                    immutable: false,
                    eps: Some(50.0),
                },
                FeatureSpec {
                    name: "de".into(),
                    kind: FeatureKind::Binary,
                    min: 0.0,
                    max: 1.0,
                    immutable: false,
                    eps: None,
                },
                FeatureSpec {
                    name: "fr".into(),
                    kind: FeatureKind::Binary,
                    min: 0.0,
                    max: 1.0,
                    immutable: false,
                    eps: None,
                },
            ],
            one_hot: vec![OneHotGroup {
                name: "country".into(),
                columns: vec!["de".into(), "fr".into()],
                immutable: false,
            }],
        }
    }

    #[test]
    fn valid_rows_pass_and_each_violation_is_named() {
        let s = schema();
        assert!(s.check_row(&[30.0, 12.5, 1.0, 0.0]).is_ok());
        assert!(s
            .check_row(&[30.5, 12.5, 1.0, 0.0])
            .unwrap_err()
            .contains("age"));
        assert!(s
            .check_row(&[30.0, -1.0, 1.0, 0.0])
            .unwrap_err()
            .contains("amount"));
        assert!(s
            .check_row(&[30.0, 1.0, 0.5, 0.5])
            .unwrap_err()
            .contains("de"));
        assert!(s
            .check_row(&[30.0, 1.0, 1.0, 1.0])
            .unwrap_err()
            .contains("country"));
        assert!(s.check_row(&[30.0, 1.0]).is_err());
    }

    #[test]
    fn table_selects_rows_with_their_labels() {
        let t = Table {
            columns: vec!["a".into(), "b".into()],
            features: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
            labels: Some(vec![0, 1, 0]),
            label_column: Some("y".into()),
            class_names: vec!["0".into(), "1".into()],
        };
        assert_eq!(t.n_rows(), 3);
        let s = t.select(&[2, 0]);
        assert_eq!(s.features, vec![5.0, 6.0, 1.0, 2.0]);
        assert_eq!(s.labels, Some(vec![0, 0]));
    }
}
