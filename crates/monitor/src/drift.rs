//! Dataset drift (`aegis drift REFERENCE CURRENT`): compare a reference and a current dataset column by
//! column, correct the p-values across columns, and give a per-column and a dataset verdict with findings.
//!
//! This module is pure: the caller streams each file once into per-column accumulators
//! ([`ColumnAccumulator`], kept in a [`ColumnSet`]) and hands both sets to [`compare`]. Accumulators hold
//! bounded state: a numeric column keeps its values exactly up to an exact limit (default 5,000,000) and then
//! switches to a [`KllSketch`]; a categorical column keeps counts of at most `max_categories` distinct values
//! (default 10,000), beyond which it is treated as text; text columns only count cells.
//!
//! Statistics per column, on present values only (the missing share is reported separately):
//! - numeric (and timestamps, as seconds): two-sample KS (exact for small samples, asymptotic otherwise, as
//!   scipy), PSI and Jensen–Shannon distance on 10 reference-quantile bins, Wasserstein distance divided by the
//!   reference standard deviation. When either side was sketched, the statistics come from the sketch's
//!   weighted quantiles (`sketched: true`) and the KS p-value from [`ks_pvalue`] on that statistic.
//! - categorical and boolean: chi-square test of homogeneity on the category counts (union of categories),
//!   PSI and Jensen–Shannon on the category proportions.
//! - text: skipped, with a note.
//!
//! **Verdict.** A column drifted when its corrected p-value is below `alpha` (default 0.05, Benjamini–Hochberg
//! by default) *and* its effect size reaches `min_effect` (default 0.1): PSI ≥ min_effect, or normalised
//! Wasserstein ≥ min_effect (numeric) / Jensen–Shannon ≥ min_effect (categorical). The effect floor is what
//! keeps million-row samples, where every test rejects, from flagging trivial shifts; `min_effect = 0` turns it
//! off. The dataset drifted when the share of tested columns that drifted reaches `share` (default: any one
//! column). Prediction drift compares predicted-class counts the same way (chi-square, PSI, JS; uncorrected).

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use aegis_core::{ColumnSummary, Finding, Location, RuleDoc, Severity, StreamCell};
use rayon::prelude::*;
use serde::Serialize;

use crate::correction::{adjust, Correction};
use crate::divergence::{
    bin_counts, chi_square, jensen_shannon, normalized_wasserstein, psi, quantile_edges,
};
use crate::ks::{ks_2samp_sorted, ks_pvalue, Method};
use crate::sketch::KllSketch;
use crate::Error;

/// Numeric values kept exactly per column before switching to a sketch.
pub const DEFAULT_EXACT_LIMIT: usize = 5_000_000;
/// Distinct values counted per categorical column before it is treated as text.
pub const DEFAULT_MAX_CATEGORIES: usize = 10_000;
/// Accuracy parameter of the KLL sketch a numeric column switches to (rank error about 0.2%, about 3,000
/// retained values).
pub const SPILL_K: usize = 1024;
/// A categorical value longer than this many bytes turns its column into text.
pub const MAX_CATEGORY_BYTES: usize = 1024;
/// Reference-quantile bins for PSI and Jensen–Shannon.
pub const DEFAULT_BINS: usize = 10;
/// The default effect-size floor (PSI, normalised Wasserstein, Jensen–Shannon).
pub const DEFAULT_MIN_EFFECT: f64 = 0.1;
/// The default significance level after correction.
pub const DEFAULT_ALPHA: f64 = 0.05;

const ATLAS_DRIFT: &[&str] = &["AML.T0031"];

/// A column's distribution changed.
pub const COLUMN_DRIFT: RuleDoc = RuleDoc {
    id: "AEG-DRIFT-001",
    name: "column-drift",
    severity: Severity::Medium,
    summary: "A column's distribution in the current data differs from the reference data.",
    why: "A model is only as good as the match between the data it learned from and the data it sees: a drifted \
          input silently degrades accuracy, and a sudden shift in one field can be an attacker probing or \
          steering the model, or a poisoned or broken upstream source.",
    fix: "Check where the column comes from (pipeline changes, units, a new client population); if the shift is \
          real and legitimate, retrain or recalibrate on recent data and rebuild the reference; if not, fix the \
          source.",
    atlas: ATLAS_DRIFT,
    cwe: &[],
};

/// Enough columns drifted for the dataset to count as drifted.
pub const DATASET_DRIFT: RuleDoc = RuleDoc {
    id: "AEG-DRIFT-002",
    name: "dataset-drift",
    severity: Severity::High,
    summary: "The current data has drifted from the reference data (the share of drifted columns reached the threshold).",
    why: "When the inputs as a whole move away from the training data, the model's accuracy figures no longer \
          hold; decisions made on them can be wrong at scale, and the monitoring baseline is stale.",
    fix: "Review the drifted columns listed in the evidence, evaluate the model on labelled recent data, and \
          retrain or roll back the upstream change; rebuild the reference once the new data is trusted.",
    atlas: ATLAS_DRIFT,
    cwe: &[],
};

/// The model's predicted-class distribution changed.
pub const PREDICTION_DRIFT: RuleDoc = RuleDoc {
    id: "AEG-DRIFT-003",
    name: "prediction-drift",
    severity: Severity::High,
    summary: "The model's predicted-class distribution on the current data differs from the reference data.",
    why: "A shift in what the model answers is the drift that matters to the business: more approvals, fewer \
          fraud flags. It can mean input drift the per-column tests miss (interactions), or crafted inputs \
          steering the model.",
    fix: "Compare the predicted-class counts in the evidence with expectations; evaluate the model on labelled \
          recent data; investigate the drifted input columns and retrain if the shift is legitimate.",
    atlas: ATLAS_DRIFT,
    cwe: &[],
};

/// The rules this module reports.
pub fn rules() -> Vec<&'static RuleDoc> {
    vec![&COLUMN_DRIFT, &DATASET_DRIFT, &PREDICTION_DRIFT]
}

/// How a column is compared: the kind the table reader summarised it as.
pub use aegis_core::SummaryKind as DriftKind;

/// Streaming state of one numeric column: exact values up to a limit, then a KLL sketch.
#[derive(Debug, Clone)]
pub struct NumericAccumulator {
    values: Vec<f64>,
    sketch: Option<KllSketch>,
    exact_limit: usize,
    missing: u64,
    invalid: u64,
    count: u64,
    mean: f64,
    m2: f64,
}

impl NumericAccumulator {
    /// Empty; values are kept exactly up to `exact_limit` (at least 1).
    pub fn new(exact_limit: usize) -> Self {
        NumericAccumulator {
            values: Vec::new(),
            sketch: None,
            exact_limit: exact_limit.max(1),
            missing: 0,
            invalid: 0,
            count: 0,
            mean: 0.0,
            m2: 0.0,
        }
    }

    /// Add a value; a non-finite one counts as invalid.
    pub fn push(&mut self, v: f64) {
        if !v.is_finite() {
            self.invalid += 1;
            return;
        }
        self.count += 1;
        let delta = v - self.mean;
        self.mean += delta / self.count as f64;
        self.m2 += delta * (v - self.mean);
        match &mut self.sketch {
            Some(s) => s.update(v),
            None => {
                self.values.push(v);
                if self.values.len() > self.exact_limit {
                    self.spill();
                }
            }
        }
    }

    /// Count a missing cell.
    pub fn push_missing(&mut self) {
        self.missing += 1;
    }

    /// Reserve room for `additional` more exact values (capped at the exact limit), so a caller that can
    /// estimate the row count avoids the slack of a growing vector.
    pub fn reserve(&mut self, additional: usize) {
        if self.sketch.is_none() {
            let room = self.exact_limit.saturating_sub(self.values.len());
            self.values.reserve_exact(additional.min(room));
        }
    }

    /// Count a cell that is not a number.
    pub fn push_invalid(&mut self) {
        self.invalid += 1;
    }

    /// Present (finite) values.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Whether the column switched to a sketch.
    pub fn is_sketched(&self) -> bool {
        self.sketch.is_some()
    }

    /// Fold a partial accumulator (e.g. one block of a file read in parallel) into this one.
    pub fn absorb(&mut self, other: NumericAccumulator) {
        self.missing += other.missing;
        self.invalid += other.invalid;
        if other.count > 0 {
            let n = (self.count + other.count) as f64;
            let delta = other.mean - self.mean;
            self.m2 += other.m2 + delta * delta * self.count as f64 * other.count as f64 / n;
            self.mean += delta * other.count as f64 / n;
            self.count += other.count;
        }
        if let Some(os) = &other.sketch {
            self.spill();
            if let Some(s) = &mut self.sketch {
                s.merge(os);
            }
        }
        match &mut self.sketch {
            Some(s) => other.values.iter().for_each(|&v| s.update(v)),
            None => {
                self.values.extend_from_slice(&other.values);
                if self.values.len() > self.exact_limit {
                    self.spill();
                }
            }
        }
    }

    fn spill(&mut self) {
        if self.sketch.is_none() {
            let mut s = KllSketch::new(SPILL_K);
            for &v in &self.values {
                s.update(v);
            }
            self.values = Vec::new();
            self.sketch = Some(s);
        }
    }

    fn std(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            (self.m2 / self.count as f64).max(0.0).sqrt()
        }
    }
}

/// Streaming state of one categorical column: counts of at most `max_categories` distinct values.
#[derive(Debug, Clone)]
pub struct CategoricalAccumulator {
    counts: HashMap<String, u64>,
    max_categories: usize,
    overflow: bool,
    present: u64,
    missing: u64,
}

impl CategoricalAccumulator {
    /// Empty; more than `max_categories` distinct values turn the column into text.
    pub fn new(max_categories: usize) -> Self {
        CategoricalAccumulator {
            counts: HashMap::new(),
            max_categories,
            overflow: false,
            present: 0,
            missing: 0,
        }
    }

    /// Count one value. A value longer than [`MAX_CATEGORY_BYTES`] makes the column text (no category is
    /// that long, and it bounds the memory of the counts).
    pub fn push(&mut self, value: &str) {
        self.present += 1;
        if self.overflow {
            return;
        }
        if value.len() > MAX_CATEGORY_BYTES {
            self.overflow = true;
            self.counts = HashMap::new();
            return;
        }
        if let Some(c) = self.counts.get_mut(value) {
            *c += 1;
        } else if self.counts.len() >= self.max_categories {
            self.overflow = true;
            self.counts = HashMap::new();
        } else {
            self.counts.insert(value.to_owned(), 1);
        }
    }

    /// Count a missing cell.
    pub fn push_missing(&mut self) {
        self.missing += 1;
    }

    /// Whether the column exceeded the distinct-value cap.
    pub fn overflowed(&self) -> bool {
        self.overflow
    }

    /// Fold a partial accumulator into this one.
    pub fn absorb(&mut self, other: CategoricalAccumulator) {
        self.present += other.present;
        self.missing += other.missing;
        if self.overflow {
            return;
        }
        if other.overflow {
            self.overflow = true;
            self.counts = HashMap::new();
            return;
        }
        for (k, v) in other.counts {
            if let Some(c) = self.counts.get_mut(&k) {
                *c += v;
            } else if self.counts.len() >= self.max_categories {
                self.overflow = true;
                self.counts = HashMap::new();
                return;
            } else {
                self.counts.insert(k, v);
            }
        }
    }
}

/// Streaming state of one column.
#[derive(Debug, Clone)]
pub enum ColumnAccumulator {
    /// A numeric column.
    Numeric(NumericAccumulator),
    /// A categorical column.
    Categorical(CategoricalAccumulator),
    /// A text column: only cells are counted.
    Text {
        /// Present cells.
        present: u64,
        /// Missing cells.
        missing: u64,
    },
}

impl ColumnAccumulator {
    /// An empty accumulator of `kind` with the given bounds.
    pub fn new(kind: DriftKind, exact_limit: usize, max_categories: usize) -> Self {
        match kind {
            DriftKind::Numeric => ColumnAccumulator::Numeric(NumericAccumulator::new(exact_limit)),
            DriftKind::Categorical => {
                ColumnAccumulator::Categorical(CategoricalAccumulator::new(max_categories))
            }
            DriftKind::Text => ColumnAccumulator::Text {
                present: 0,
                missing: 0,
            },
        }
    }

    /// An empty accumulator of the same kind and bounds (for parallel partials).
    pub fn empty_like(&self) -> Self {
        match self {
            ColumnAccumulator::Numeric(a) => {
                ColumnAccumulator::Numeric(NumericAccumulator::new(a.exact_limit))
            }
            ColumnAccumulator::Categorical(a) => {
                ColumnAccumulator::Categorical(CategoricalAccumulator::new(a.max_categories))
            }
            ColumnAccumulator::Text { .. } => ColumnAccumulator::Text {
                present: 0,
                missing: 0,
            },
        }
    }

    /// The kind this accumulator compares as.
    pub fn kind(&self) -> DriftKind {
        match self {
            ColumnAccumulator::Numeric(_) => DriftKind::Numeric,
            ColumnAccumulator::Categorical(_) => DriftKind::Categorical,
            ColumnAccumulator::Text { .. } => DriftKind::Text,
        }
    }

    /// Count a missing cell.
    pub fn push_missing(&mut self) {
        match self {
            ColumnAccumulator::Numeric(a) => a.push_missing(),
            ColumnAccumulator::Categorical(a) => a.push_missing(),
            ColumnAccumulator::Text { missing, .. } => *missing += 1,
        }
    }

    /// Count a present text cell (numeric columns parse it; unparsable cells count as invalid).
    pub fn push_text(&mut self, cell: &str) {
        match self {
            ColumnAccumulator::Numeric(a) => match cell.parse::<f64>() {
                Ok(v) => a.push(v),
                Err(_) => a.push_invalid(),
            },
            ColumnAccumulator::Categorical(a) => a.push(cell),
            ColumnAccumulator::Text { present, .. } => *present += 1,
        }
    }

    /// Fold a partial of the same kind into this one (a partial of another kind is ignored).
    pub fn absorb(&mut self, other: ColumnAccumulator) {
        match (self, other) {
            (ColumnAccumulator::Numeric(a), ColumnAccumulator::Numeric(b)) => a.absorb(b),
            (ColumnAccumulator::Categorical(a), ColumnAccumulator::Categorical(b)) => a.absorb(b),
            (
                ColumnAccumulator::Text { present, missing },
                ColumnAccumulator::Text {
                    present: p,
                    missing: m,
                },
            ) => {
                *present += p;
                *missing += m;
            }
            _ => {}
        }
    }

    /// (present, missing, invalid) cells.
    fn cells(&self) -> (u64, u64, u64) {
        match self {
            ColumnAccumulator::Numeric(a) => (a.count, a.missing, a.invalid),
            ColumnAccumulator::Categorical(a) => (a.present, a.missing, 0),
            ColumnAccumulator::Text { present, missing } => (*present, *missing, 0),
        }
    }
}

/// The table reader streams cells into accumulators through this trait (`aegis_data::fold_pair`), so the
/// statistics never read files.
impl ColumnSummary for ColumnAccumulator {
    fn push(&mut self, cell: StreamCell<'_>) {
        match (self, cell) {
            (acc, StreamCell::Missing) => acc.push_missing(),
            (ColumnAccumulator::Numeric(a), StreamCell::Number(v)) => a.push(v),
            (ColumnAccumulator::Numeric(a), _) => a.push_invalid(),
            (ColumnAccumulator::Categorical(a), StreamCell::Category(c) | StreamCell::Text(c)) => {
                a.push(c)
            }
            // The reader hands a categorical column only categories and text.
            (ColumnAccumulator::Categorical(a), _) => a.push_missing(),
            (ColumnAccumulator::Text { present, .. }, _) => *present += 1,
        }
    }

    fn empty_like(&self) -> Self {
        ColumnAccumulator::empty_like(self)
    }

    fn absorb(&mut self, other: Self) {
        ColumnAccumulator::absorb(self, other);
    }

    fn reserve(&mut self, rows: usize) {
        if let ColumnAccumulator::Numeric(a) = self {
            a.reserve(rows);
        }
    }
}

/// The accumulated columns of one dataset file.
#[derive(Debug, Clone)]
pub struct ColumnSet {
    /// The file the columns came from (named in reports and errors).
    pub source: PathBuf,
    /// Data rows read.
    pub rows: u64,
    /// Columns in file order.
    pub columns: Vec<(String, ColumnAccumulator)>,
}

impl ColumnSet {
    /// Reserve room for about `rows` more values in every numeric column (see
    /// [`NumericAccumulator::reserve`]).
    pub fn reserve(&mut self, rows: usize) {
        for (_, acc) in &mut self.columns {
            if let ColumnAccumulator::Numeric(a) = acc {
                a.reserve(rows);
            }
        }
    }

    /// An empty set of named columns of the given kinds.
    pub fn new(
        source: impl Into<PathBuf>,
        columns: &[(String, DriftKind)],
        exact_limit: usize,
        max_categories: usize,
    ) -> Self {
        ColumnSet {
            source: source.into(),
            rows: 0,
            columns: columns
                .iter()
                .map(|(n, k)| {
                    (
                        n.clone(),
                        ColumnAccumulator::new(*k, exact_limit, max_categories),
                    )
                })
                .collect(),
        }
    }
}

/// Settings of a comparison.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DriftOptions {
    /// Significance level after correction.
    pub alpha: f64,
    /// Multiple-testing correction across columns.
    pub correction: Correction,
    /// Effect-size floor (PSI, normalised Wasserstein, Jensen–Shannon); 0 turns it off.
    pub min_effect: f64,
    /// Dataset drift when at least this share of tested columns drifted; `None`: any one column.
    pub share: Option<f64>,
    /// Reference-quantile bins for numeric PSI and Jensen–Shannon.
    pub bins: usize,
}

impl Default for DriftOptions {
    fn default() -> Self {
        DriftOptions {
            alpha: DEFAULT_ALPHA,
            correction: Correction::BenjaminiHochberg,
            min_effect: DEFAULT_MIN_EFFECT,
            share: None,
            bins: DEFAULT_BINS,
        }
    }
}

/// The comparison of one column.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ColumnDrift {
    /// Column name.
    pub name: String,
    /// How it was compared.
    pub kind: DriftKind,
    /// `ks` or `chi_square`; `None` when skipped.
    pub test: Option<String>,
    /// KS D or the chi-square statistic.
    pub statistic: Option<f64>,
    /// The raw p-value.
    pub pvalue: Option<f64>,
    /// The p-value after the correction across columns.
    pub pvalue_corrected: Option<f64>,
    /// KS: `exact` or `asymptotic`; chi-square: `dof=N`.
    pub method: Option<String>,
    /// Population stability index.
    pub psi: Option<f64>,
    /// Jensen–Shannon distance (base 2).
    pub jensen_shannon: Option<f64>,
    /// Wasserstein distance over the reference standard deviation (numeric only).
    pub wasserstein: Option<f64>,
    /// Present values in the reference.
    pub reference_count: u64,
    /// Present values in the current data.
    pub current_count: u64,
    /// Share of missing (or invalid) cells in the reference.
    pub reference_missing_share: f64,
    /// Share of missing (or invalid) cells in the current data.
    pub current_missing_share: f64,
    /// Current minus reference missing share.
    pub missing_share_change: f64,
    /// Cells that did not parse as numbers (reference, current).
    pub invalid: (u64, u64),
    /// Statistics computed from a KLL sketch rather than exact values.
    pub sketched: bool,
    /// The verdict.
    pub drifted: bool,
    /// Why the column was not tested, or anything else worth knowing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// The two distributions as the test binned them, for charts (not in findings' evidence).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub histogram: Option<Histogram>,
}

/// A column's reference and current distributions over the same bins: numeric columns over the reference's
/// quantile bins, categorical ones over their most frequent categories (the rest summed as `other`).
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Histogram {
    /// Each bin as people read it: `≤ 3.2`, `3.2 – 7.5`, `> 9.1`, or a category.
    pub labels: Vec<String>,
    /// Reference counts per bin.
    pub reference: Vec<u64>,
    /// Current counts per bin.
    pub current: Vec<u64>,
}

/// Most categories drawn before the rest are summed as `other`.
const HISTOGRAM_CATEGORIES: usize = 20;

fn edge_text(v: f64) -> String {
    let a = v.abs();
    if a != 0.0 && !(1e-3..1e6).contains(&a) {
        format!("{v:.3e}")
    } else {
        let t = format!("{v:.4}");
        let t = t.trim_end_matches('0').trim_end_matches('.');
        t.to_string()
    }
}

/// The histogram of numeric bins split at `edges` (counts have one more entry than edges).
pub(crate) fn numeric_histogram(
    edges: &[f64],
    reference: Vec<u64>,
    current: Vec<u64>,
) -> Histogram {
    let n = reference.len();
    let labels = (0..n)
        .map(
            |i| match (i.checked_sub(1).and_then(|j| edges.get(j)), edges.get(i)) {
                (None, Some(hi)) => format!("< {}", edge_text(*hi)),
                (Some(lo), None) => format!("≥ {}", edge_text(*lo)),
                (Some(lo), Some(hi)) => format!("{} – {}", edge_text(*lo), edge_text(*hi)),
                (None, None) => "all".to_string(),
            },
        )
        .collect();
    Histogram {
        labels,
        reference,
        current,
    }
}

/// The histogram of categories: the most frequent (both sides together) first, the rest as `other`.
fn categorical_histogram(cats: &[&str], reference: &[u64], current: &[u64]) -> Histogram {
    let mut order: Vec<usize> = (0..cats.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(reference[i] + current[i]));
    let mut h = Histogram {
        labels: Vec::new(),
        reference: Vec::new(),
        current: Vec::new(),
    };
    for (rank, &i) in order.iter().enumerate() {
        if rank < HISTOGRAM_CATEGORIES {
            h.labels.push(cats[i].to_string());
            h.reference.push(reference[i]);
            h.current.push(current[i]);
        } else if rank == HISTOGRAM_CATEGORIES {
            h.labels.push("other".to_string());
            h.reference.push(reference[i]);
            h.current.push(current[i]);
        } else {
            let last = h.labels.len() - 1;
            h.reference[last] += reference[i];
            h.current[last] += current[i];
        }
    }
    h
}

/// Predicted-class drift.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PredictionDrift {
    /// The model compared.
    pub model: String,
    /// Predicted-class counts on the reference rows.
    pub reference_counts: Vec<u64>,
    /// Predicted-class counts on the current rows.
    pub current_counts: Vec<u64>,
    /// Chi-square statistic.
    pub statistic: f64,
    /// Degrees of freedom.
    pub dof: usize,
    /// p-value (not corrected).
    pub pvalue: f64,
    /// PSI of the class proportions.
    pub psi: f64,
    /// Jensen–Shannon distance of the class proportions.
    pub jensen_shannon: f64,
    /// The verdict (p < alpha and PSI or JS at or above the effect floor).
    pub drifted: bool,
}

/// The result of `aegis drift`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DriftReport {
    /// The reference file.
    pub reference: String,
    /// The current file.
    pub current: String,
    /// Data rows in the reference.
    pub reference_rows: u64,
    /// Data rows in the current file.
    pub current_rows: u64,
    /// The settings used.
    pub options: DriftOptions,
    /// Per column, in reference order.
    pub columns: Vec<ColumnDrift>,
    /// Columns with a test.
    pub tested: usize,
    /// Columns that drifted.
    pub drifted: usize,
    /// drifted / tested (0 when nothing was tested).
    pub drift_share: f64,
    /// The dataset verdict.
    pub dataset_drift: bool,
    /// Prediction drift, when a model was given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prediction: Option<PredictionDrift>,
    /// The findings of this comparison (filled by [`DriftReport::findings`] callers).
    pub findings: Vec<Finding>,
}

/// Whether a test result counts as drift: corrected p below alpha and an effect at or above the floor.
pub fn is_drift(pvalue_corrected: f64, alpha: f64, effects: &[f64], min_effect: f64) -> bool {
    pvalue_corrected < alpha
        && (min_effect <= 0.0 || effects.iter().any(|&e| e.is_finite() && e >= min_effect))
}

fn validate(opts: &DriftOptions) -> Result<(), Error> {
    if !(opts.alpha > 0.0 && opts.alpha < 1.0) {
        return Err(Error::Invalid(format!(
            "alpha must be in (0, 1), got {}",
            opts.alpha
        )));
    }
    if opts.min_effect.is_nan() || opts.min_effect < 0.0 {
        return Err(Error::Invalid(format!(
            "min_effect must be >= 0, got {}",
            opts.min_effect
        )));
    }
    if let Some(s) = opts.share {
        if !(s > 0.0 && s <= 1.0) {
            return Err(Error::Invalid(format!("share must be in (0, 1], got {s}")));
        }
    }
    if opts.bins < 2 {
        return Err(Error::Invalid("bins must be at least 2".into()));
    }
    Ok(())
}

/// Compare two accumulated datasets column by column (columns matched by name; a column present on only one
/// side is an [`Error::Mismatch`] naming both files). Columns are processed in parallel.
pub fn compare(
    reference: ColumnSet,
    current: ColumnSet,
    opts: &DriftOptions,
) -> Result<DriftReport, Error> {
    validate(opts)?;
    let mismatch = |reason: String| Error::Mismatch {
        reference: reference.source.clone(),
        current: current.source.clone(),
        reason,
    };
    if reference.rows == 0 {
        return Err(mismatch("the reference has no data rows".into()));
    }
    if current.rows == 0 {
        return Err(mismatch("the current data has no data rows".into()));
    }
    let ref_names: BTreeSet<&str> = reference.columns.iter().map(|(n, _)| n.as_str()).collect();
    let cur_names: BTreeSet<&str> = current.columns.iter().map(|(n, _)| n.as_str()).collect();
    let only_ref: Vec<&str> = ref_names.difference(&cur_names).copied().collect();
    let only_cur: Vec<&str> = cur_names.difference(&ref_names).copied().collect();
    if !only_ref.is_empty() || !only_cur.is_empty() {
        let mut parts = Vec::new();
        if !only_ref.is_empty() {
            parts.push(format!(
                "column(s) {} only in the reference",
                quoted(&only_ref)
            ));
        }
        if !only_cur.is_empty() {
            parts.push(format!(
                "column(s) {} only in the current data",
                quoted(&only_cur)
            ));
        }
        return Err(mismatch(parts.join("; ")));
    }
    let ColumnSet {
        source: ref_source,
        rows: ref_rows,
        columns: ref_cols,
    } = reference;
    let ColumnSet {
        source: cur_source,
        rows: cur_rows,
        columns: mut cur_cols,
    } = current;
    let mut pairs = Vec::with_capacity(ref_cols.len());
    for (name, acc) in ref_cols {
        let pos = cur_cols
            .iter()
            .position(|(n, _)| *n == name)
            .ok_or_else(|| Error::Invalid(format!("column `{name}` vanished")))?;
        let (_, cur_acc) = cur_cols.swap_remove(pos);
        if acc.kind() != cur_acc.kind() {
            return Err(Error::Mismatch {
                reference: ref_source.clone(),
                current: cur_source.clone(),
                reason: format!(
                    "column `{name}` is {:?} in the reference and {:?} in the current data",
                    acc.kind(),
                    cur_acc.kind()
                ),
            });
        }
        pairs.push((name, acc, cur_acc));
    }
    let mut columns: Vec<ColumnDrift> = pairs
        .into_par_iter()
        .map(|(name, r, c)| compare_column(name, r, c, opts))
        .collect();

    let tested: Vec<usize> = (0..columns.len())
        .filter(|&i| columns[i].pvalue.is_some())
        .collect();
    let raw: Vec<f64> = tested
        .iter()
        .map(|&i| columns[i].pvalue.unwrap_or(1.0))
        .collect();
    let corrected = adjust(&raw, opts.correction);
    let mut drifted = 0;
    for (&i, &p) in tested.iter().zip(&corrected) {
        let col = &mut columns[i];
        col.pvalue_corrected = Some(p);
        let second = match col.kind {
            DriftKind::Numeric => col.wasserstein,
            _ => col.jensen_shannon,
        };
        let effects = [col.psi.unwrap_or(0.0), second.unwrap_or(0.0)];
        col.drifted = is_drift(p, opts.alpha, &effects, opts.min_effect);
        drifted += usize::from(col.drifted);
    }
    let share = if tested.is_empty() {
        0.0
    } else {
        drifted as f64 / tested.len() as f64
    };
    let dataset_drift = match opts.share {
        None => drifted > 0,
        Some(s) => drifted > 0 && share >= s,
    };
    Ok(DriftReport {
        reference: ref_source.display().to_string(),
        current: cur_source.display().to_string(),
        reference_rows: ref_rows,
        current_rows: cur_rows,
        options: opts.clone(),
        columns,
        tested: tested.len(),
        drifted,
        drift_share: share,
        dataset_drift,
        prediction: None,
        findings: Vec::new(),
    })
}

fn quoted(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn share(part: u64, total: u64) -> f64 {
    if total == 0 {
        0.0
    } else {
        part as f64 / total as f64
    }
}

fn compare_column(
    name: String,
    reference: ColumnAccumulator,
    current: ColumnAccumulator,
    opts: &DriftOptions,
) -> ColumnDrift {
    let (rp, rm, ri) = reference.cells();
    let (cp, cm, ci) = current.cells();
    let rms = share(rm + ri, rp + rm + ri);
    let cms = share(cm + ci, cp + cm + ci);
    let mut out = ColumnDrift {
        name,
        kind: reference.kind(),
        test: None,
        statistic: None,
        pvalue: None,
        pvalue_corrected: None,
        method: None,
        psi: None,
        jensen_shannon: None,
        wasserstein: None,
        reference_count: rp,
        current_count: cp,
        reference_missing_share: rms,
        current_missing_share: cms,
        missing_share_change: cms - rms,
        invalid: (ri, ci),
        sketched: false,
        drifted: false,
        note: None,
        histogram: None,
    };
    if rp == 0 || cp == 0 {
        out.note = Some(format!(
            "skipped: no present values in the {}",
            if rp == 0 { "reference" } else { "current data" }
        ));
        return out;
    }
    let result = match (reference, current) {
        (ColumnAccumulator::Numeric(r), ColumnAccumulator::Numeric(c)) => {
            numeric(&mut out, r, c, opts)
        }
        (ColumnAccumulator::Categorical(r), ColumnAccumulator::Categorical(c)) => {
            if r.overflow || c.overflow {
                out.kind = DriftKind::Text;
                out.note = Some(format!(
                    "skipped: more than {} distinct values (or a value over {MAX_CATEGORY_BYTES} bytes), \
                     treated as text",
                    r.max_categories
                ));
                return out;
            }
            categorical(&mut out, &r, &c)
        }
        _ => {
            out.note = Some("skipped: text column".into());
            return out;
        }
    };
    if let Err(e) = result {
        out.test = None;
        out.statistic = None;
        out.pvalue = None;
        out.note = Some(format!("skipped: {e}"));
    }
    if ri + ci > 0 && out.note.is_none() {
        out.note = Some(format!(
            "{ri} reference and {ci} current cells are not numbers (counted as missing)"
        ));
    }
    out
}

fn numeric(
    out: &mut ColumnDrift,
    mut r: NumericAccumulator,
    mut c: NumericAccumulator,
    opts: &DriftOptions,
) -> Result<(), Error> {
    out.test = Some("ks".into());
    let sketched = r.sketch.is_some() || c.sketch.is_some();
    if !sketched {
        let (rv, cv) = (&mut r.values, &mut c.values);
        rayon::join(|| sort_values(rv), || sort_values(cv));
        let ks = ks_2samp_sorted(&r.values, &c.values, Method::Auto)?;
        out.statistic = Some(ks.statistic);
        out.method = Some(method_name(ks.method).into());
        let edges = quantile_edges(&r.values, opts.bins);
        let rc = bin_counts(&r.values, &edges);
        let cc = bin_counts(&c.values, &edges);
        out.psi = Some(psi(&rc, &cc)?);
        out.jensen_shannon = Some(jensen_shannon(&rc, &cc)?);
        out.wasserstein = Some(normalized_wasserstein(&r.values, &c.values)?);
        out.pvalue = Some(ks.pvalue);
        out.histogram = Some(numeric_histogram(&edges, rc, cc));
        return Ok(());
    }
    out.sketched = true;
    let rview = weighted_view(&mut r);
    let cview = weighted_view(&mut c);
    let (d, w) = weighted_ks_wasserstein(&rview, &cview);
    // The sketched D is off by up to the sketches' rank errors, far more than the critical value at a million
    // rows: test D minus that bound, so the p-value stays conservative.
    let eps = r.sketch.as_ref().map_or(0.0, KllSketch::rank_error_bound)
        + c.sketch.as_ref().map_or(0.0, KllSketch::rank_error_bound);
    let (p, method) = ks_pvalue(
        (d - eps).clamp(0.0, 1.0),
        r.count as usize,
        c.count as usize,
        Method::Auto,
    )?;
    out.note = Some(format!(
        "sketched: KS p-value for D minus the sketches' rank-error bound {eps:.4}"
    ));
    out.statistic = Some(d);
    out.method = Some(method_name(method).into());
    let edges = weighted_edges(&rview, opts.bins);
    let rc = weighted_bins(&rview, &edges);
    let cc = weighted_bins(&cview, &edges);
    out.psi = Some(psi(&rc, &cc)?);
    out.jensen_shannon = Some(jensen_shannon(&rc, &cc)?);
    let sd = r.std();
    out.wasserstein = Some(if sd > 0.0 { w / sd } else { w });
    out.pvalue = Some(p);
    out.histogram = Some(numeric_histogram(&edges, rc, cc));
    Ok(())
}

/// Sort finite values ascending: an LSD radix sort on the order-preserving bit pattern for long columns (about
/// 4x faster than a comparison sort at a million values, at the cost of two `u64` buffers while sorting), a
/// comparison sort otherwise. The order equals `f64::total_cmp`.
pub fn sort_values(v: &mut [f64]) {
    const BITS: usize = 11;
    const BUCKETS: usize = 1 << BITS;
    const PASSES: usize = 64usize.div_ceil(BITS);
    let n = v.len();
    if n < 50_000 {
        v.sort_unstable_by(f64::total_cmp);
        return;
    }
    let key = |x: f64| {
        let b = x.to_bits();
        if b >> 63 == 1 {
            !b
        } else {
            b | (1 << 63)
        }
    };
    let mut keys: Vec<u64> = v.iter().map(|&x| key(x)).collect();
    let mut hist = vec![[0usize; BUCKETS]; PASSES];
    for &k in &keys {
        for (p, h) in hist.iter_mut().enumerate() {
            h[((k >> (p * BITS)) as usize) & (BUCKETS - 1)] += 1;
        }
    }
    let mut tmp = vec![0u64; n];
    for (p, h) in hist.iter_mut().enumerate() {
        if h.contains(&n) {
            continue; // every key has the same digit here
        }
        let mut sum = 0;
        for c in h.iter_mut() {
            let count = *c;
            *c = sum;
            sum += count;
        }
        for &k in &keys {
            let d = ((k >> (p * BITS)) as usize) & (BUCKETS - 1);
            tmp[h[d]] = k;
            h[d] += 1;
        }
        std::mem::swap(&mut keys, &mut tmp);
    }
    for (x, &k) in v.iter_mut().zip(&keys) {
        let b = if k >> 63 == 1 { k & !(1 << 63) } else { !k };
        *x = f64::from_bits(b);
    }
}

fn method_name(m: Method) -> &'static str {
    match m {
        Method::Exact => "exact",
        Method::Asymptotic => "asymptotic",
        Method::Auto => "auto",
    }
}

/// Sorted (value, weight) pairs: exact values with weight 1, or the sketch's weighted items.
fn weighted_view(acc: &mut NumericAccumulator) -> Vec<(f64, u64)> {
    match &acc.sketch {
        Some(s) => s.sorted_view(),
        None => {
            sort_values(&mut acc.values);
            acc.values.iter().map(|&v| (v, 1)).collect()
        }
    }
}

/// KS statistic and Wasserstein distance (unnormalised) of two weighted step CDFs, in one merge walk.
fn weighted_ks_wasserstein(a: &[(f64, u64)], b: &[(f64, u64)]) -> (f64, f64) {
    let ta = a.iter().map(|p| p.1).sum::<u64>().max(1) as f64;
    let tb = b.iter().map(|p| p.1).sum::<u64>().max(1) as f64;
    let (mut i, mut j) = (0usize, 0usize);
    let (mut ca, mut cb) = (0u64, 0u64);
    let (mut d, mut w) = (0.0f64, 0.0f64);
    let mut prev: Option<f64> = None;
    loop {
        let x = match (a.get(i), b.get(j)) {
            (Some(&(xa, _)), Some(&(xb, _))) => xa.min(xb),
            (Some(&(xa, _)), None) => xa,
            (None, Some(&(xb, _))) => xb,
            (None, None) => break,
        };
        if let Some(px) = prev {
            w += (ca as f64 / ta - cb as f64 / tb).abs() * (x - px);
        }
        while let Some(&(v, wt)) = a.get(i) {
            if v > x {
                break;
            }
            ca += wt;
            i += 1;
        }
        while let Some(&(v, wt)) = b.get(j) {
            if v > x {
                break;
            }
            cb += wt;
            j += 1;
        }
        d = d.max((ca as f64 / ta - cb as f64 / tb).abs());
        prev = Some(x);
    }
    (d, w)
}

/// Interior bin edges at the weighted `bins`-quantiles, duplicates removed.
fn weighted_edges(view: &[(f64, u64)], bins: usize) -> Vec<f64> {
    let total = view.iter().map(|p| p.1).sum::<u64>() as f64;
    let mut edges = Vec::with_capacity(bins);
    let mut cum = 0u64;
    let mut k = 1usize;
    for &(v, w) in view {
        cum += w;
        while k < bins && cum as f64 >= total * k as f64 / bins as f64 {
            if edges.last() != Some(&v) {
                edges.push(v);
            }
            k += 1;
        }
    }
    edges
}

/// Weighted counts per bin (`edges.len() + 1` bins; a value equal to an edge goes right).
fn weighted_bins(view: &[(f64, u64)], edges: &[f64]) -> Vec<u64> {
    let mut counts = vec![0u64; edges.len() + 1];
    for &(v, w) in view {
        counts[edges.partition_point(|&e| e <= v)] += w;
    }
    counts
}

fn categorical(
    out: &mut ColumnDrift,
    r: &CategoricalAccumulator,
    c: &CategoricalAccumulator,
) -> Result<(), Error> {
    out.test = Some("chi_square".into());
    let cats: BTreeSet<&str> = r
        .counts
        .keys()
        .chain(c.counts.keys())
        .map(String::as_str)
        .collect();
    let rc: Vec<u64> = cats
        .iter()
        .map(|k| r.counts.get(*k).copied().unwrap_or(0))
        .collect();
    let cc: Vec<u64> = cats
        .iter()
        .map(|k| c.counts.get(*k).copied().unwrap_or(0))
        .collect();
    out.psi = Some(psi(&rc, &cc)?);
    out.jensen_shannon = Some(jensen_shannon(&rc, &cc)?);
    let names: Vec<&str> = cats.iter().copied().collect();
    out.histogram = Some(categorical_histogram(&names, &rc, &cc));
    if cats.len() < 2 {
        out.statistic = Some(0.0);
        out.method = Some("dof=0".into());
        out.pvalue = Some(1.0);
        return Ok(());
    }
    let chi = chi_square(&rc, &cc)?;
    out.statistic = Some(chi.statistic);
    out.method = Some(format!("dof={}", chi.dof));
    out.pvalue = Some(chi.pvalue);
    Ok(())
}

/// Compare predicted-class counts of the reference and current rows (same classes, same order).
pub fn compare_predictions(
    model: &str,
    reference: &[u64],
    current: &[u64],
    opts: &DriftOptions,
) -> Result<PredictionDrift, Error> {
    validate(opts)?;
    if reference.len() != current.len() {
        return Err(Error::Invalid(format!(
            "prediction counts have {} and {} classes",
            reference.len(),
            current.len()
        )));
    }
    let psi_v = psi(reference, current)?;
    let js = jensen_shannon(reference, current)?;
    let nonzero = reference
        .iter()
        .zip(current)
        .filter(|(a, b)| **a + **b > 0)
        .count();
    let (statistic, dof, pvalue) = if nonzero < 2 {
        (0.0, 0, 1.0)
    } else {
        let chi = chi_square(reference, current)?;
        (chi.statistic, chi.dof, chi.pvalue)
    };
    Ok(PredictionDrift {
        model: model.to_owned(),
        reference_counts: reference.to_vec(),
        current_counts: current.to_vec(),
        statistic,
        dof,
        pvalue,
        psi: psi_v,
        jensen_shannon: js,
        drifted: is_drift(pvalue, opts.alpha, &[psi_v, js], opts.min_effect),
    })
}

fn fmt_opt(v: Option<f64>) -> String {
    match v {
        Some(x) if x != 0.0 && x.abs() < 1e-3 => format!("{x:.2e}"),
        Some(x) => format!("{x:.4}"),
        None => "-".into(),
    }
}

impl DriftReport {
    /// The findings of this report: one per drifted column, one for the dataset, one for the predictions.
    pub fn findings(&self) -> Vec<Finding> {
        let mut out = Vec::new();
        let correction = serde_json::to_value(self.options.correction).unwrap_or_default();
        for col in self.columns.iter().filter(|c| c.drifted) {
            let effect = match col.kind {
                DriftKind::Numeric => format!("Wasserstein/σ {}", fmt_opt(col.wasserstein)),
                _ => format!("JS {}", fmt_opt(col.jensen_shannon)),
            };
            let message = format!(
                "column `{}` drifted: {} {} (corrected p {}), PSI {}, {}",
                col.name,
                col.test.as_deref().unwrap_or("test"),
                fmt_opt(col.statistic),
                fmt_opt(col.pvalue_corrected),
                fmt_opt(col.psi),
                effect
            );
            let mut evidence = serde_json::to_value(col).unwrap_or_default();
            if let Some(map) = evidence.as_object_mut() {
                map.remove("histogram");
                map.insert("reference".into(), self.reference.clone().into());
                map.insert("correction".into(), correction.clone());
            }
            out.push(
                Finding::new(
                    &COLUMN_DRIFT,
                    Location::Dataset {
                        path: self.current.clone(),
                        row: None,
                        column: Some(col.name.clone()),
                    },
                    message,
                )
                .with_evidence(evidence),
            );
        }
        if self.dataset_drift {
            let names: Vec<&str> = self
                .columns
                .iter()
                .filter(|c| c.drifted)
                .map(|c| c.name.as_str())
                .collect();
            out.push(
                Finding::new(
                    &DATASET_DRIFT,
                    Location::Dataset {
                        path: self.current.clone(),
                        row: None,
                        column: None,
                    },
                    format!(
                        "{} of {} tested columns drifted ({:.0}%) against {}: {}",
                        self.drifted,
                        self.tested,
                        self.drift_share * 100.0,
                        self.reference,
                        names.join(", ")
                    ),
                )
                .with_evidence(serde_json::json!({
                    "reference": self.reference,
                    "drifted_columns": names,
                    "tested": self.tested,
                    "drift_share": self.drift_share,
                    "share_threshold": self.options.share,
                })),
            );
        }
        if let Some(p) = self.prediction.as_ref().filter(|p| p.drifted) {
            out.push(
                Finding::new(
                    &PREDICTION_DRIFT,
                    Location::Dataset {
                        path: self.current.clone(),
                        row: None,
                        column: Some("prediction".into()),
                    },
                    format!(
                        "predicted classes of {} drifted: chi-square {} (p {}), PSI {}, JS {}",
                        p.model,
                        fmt_opt(Some(p.statistic)),
                        fmt_opt(Some(p.pvalue)),
                        fmt_opt(Some(p.psi)),
                        fmt_opt(Some(p.jensen_shannon))
                    ),
                )
                .with_evidence(serde_json::to_value(p).unwrap_or_default()),
            );
        }
        out
    }

    /// A plain-text table for people.
    pub fn to_table(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "reference {} ({} rows)  vs  current {} ({} rows)",
            self.reference, self.reference_rows, self.current, self.current_rows
        );
        let _ = writeln!(
            s,
            "{:<24} {:<11} {:<10} {:>10} {:>10} {:>8} {:>8} {:>8} {:>8}  verdict",
            "column", "kind", "test", "statistic", "p (corr)", "PSI", "JS", "W/σ", "Δmiss"
        );
        for c in &self.columns {
            let verdict = if c.drifted {
                "DRIFT".to_owned()
            } else if c.test.is_none() {
                "skipped".to_owned()
            } else {
                "ok".to_owned()
            };
            let name: String = c.name.chars().take(24).collect();
            let _ = writeln!(
                s,
                "{:<24} {:<11} {:<10} {:>10} {:>10} {:>8} {:>8} {:>8} {:>+8.3}  {}{}{}",
                name,
                format!("{:?}", c.kind).to_lowercase(),
                c.test.as_deref().unwrap_or("-"),
                fmt_opt(c.statistic),
                fmt_opt(c.pvalue_corrected),
                fmt_opt(c.psi),
                fmt_opt(c.jensen_shannon),
                fmt_opt(c.wasserstein),
                c.missing_share_change,
                verdict,
                if c.sketched { " (sketched)" } else { "" },
                c.note
                    .as_deref()
                    .map(|n| format!("  [{n}]"))
                    .unwrap_or_default()
            );
        }
        if let Some(p) = &self.prediction {
            let _ = writeln!(
                s,
                "{:<24} {:<11} {:<10} {:>10} {:>10} {:>8} {:>8} {:>8} {:>8}  {}",
                "prediction",
                "classes",
                "chi_square",
                fmt_opt(Some(p.statistic)),
                fmt_opt(Some(p.pvalue)),
                fmt_opt(Some(p.psi)),
                fmt_opt(Some(p.jensen_shannon)),
                "-",
                "-",
                if p.drifted { "DRIFT" } else { "ok" }
            );
        }
        let _ = writeln!(
            s,
            "\n{} of {} tested columns drifted ({:.1}%): dataset {}",
            self.drifted,
            self.tested,
            self.drift_share * 100.0,
            if self.dataset_drift {
                "DRIFTED"
            } else {
                "not drifted"
            }
        );
        s
    }
}

/// The path of a [`ColumnSet`] as reports show it.
pub fn display_path(path: &Path) -> String {
    path.display().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rng(seed: u64) -> impl FnMut() -> f64 {
        let mut s = seed;
        move || {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 11) as f64 + 0.5) / ((1u64 << 53) as f64)
        }
    }

    fn normals(seed: u64, n: usize, mean: f64, sd: f64) -> Vec<f64> {
        let mut u = rng(seed);
        (0..n)
            .map(|_| {
                let (a, b) = (u(), u());
                mean + sd * (-2.0 * a.ln()).sqrt() * (2.0 * std::f64::consts::PI * b).cos()
            })
            .collect()
    }

    fn cats(seed: u64, n: usize, weights: &[f64]) -> Vec<String> {
        let mut u = rng(seed);
        let total: f64 = weights.iter().sum();
        (0..n)
            .map(|_| {
                let mut x = u() * total;
                for (i, w) in weights.iter().enumerate() {
                    if x < *w {
                        return format!("c{i}");
                    }
                    x -= w;
                }
                format!("c{}", weights.len() - 1)
            })
            .collect()
    }

    fn set(
        name: &str,
        num: &[(&str, Vec<f64>)],
        cat: &[(&str, Vec<String>)],
        limit: usize,
    ) -> ColumnSet {
        let mut kinds: Vec<(String, DriftKind)> = num
            .iter()
            .map(|(n, _)| (n.to_string(), DriftKind::Numeric))
            .collect();
        kinds.extend(
            cat.iter()
                .map(|(n, _)| (n.to_string(), DriftKind::Categorical)),
        );
        let mut s = ColumnSet::new(name, &kinds, limit, DEFAULT_MAX_CATEGORIES);
        for (i, (_, vals)) in num.iter().enumerate() {
            s.rows = vals.len() as u64;
            for v in vals {
                s.columns[i].1.push_text(&v.to_string());
            }
        }
        for (j, (_, vals)) in cat.iter().enumerate() {
            s.rows = vals.len() as u64;
            for v in vals {
                s.columns[num.len() + j].1.push_text(v);
            }
        }
        s
    }

    fn pair(limit: usize) -> (ColumnSet, ColumnSet) {
        let n = 4000;
        let r = set(
            "ref.csv",
            &[
                ("same", normals(1, n, 0.0, 1.0)),
                ("shifted", normals(2, n, 0.0, 1.0)),
            ],
            &[
                ("cat_same", cats(3, n, &[5.0, 3.0, 2.0])),
                ("cat_shifted", cats(4, n, &[5.0, 3.0, 2.0])),
            ],
            limit,
        );
        let c = set(
            "cur.csv",
            &[
                ("same", normals(11, n, 0.0, 1.0)),
                ("shifted", normals(12, n, 0.5, 1.0)),
            ],
            &[
                ("cat_same", cats(13, n, &[5.0, 3.0, 2.0])),
                ("cat_shifted", cats(14, n, &[2.0, 3.0, 5.0])),
            ],
            limit,
        );
        (r, c)
    }

    fn col<'a>(r: &'a DriftReport, name: &str) -> &'a ColumnDrift {
        r.columns.iter().find(|c| c.name == name).unwrap()
    }

    #[test]
    fn shifted_columns_detected_unshifted_not() {
        let (r, c) = pair(DEFAULT_EXACT_LIMIT);
        let report = compare(r, c, &DriftOptions::default()).unwrap();
        assert!(col(&report, "shifted").drifted);
        assert!(col(&report, "cat_shifted").drifted);
        assert!(!col(&report, "same").drifted);
        assert!(!col(&report, "cat_same").drifted);
        assert_eq!(report.tested, 4);
        assert_eq!(report.drifted, 2);
        assert!(report.dataset_drift);
        assert!(!col(&report, "shifted").sketched);
        let f = report.findings();
        assert_eq!(f.iter().filter(|f| f.rule.0 == "AEG-DRIFT-001").count(), 2);
        assert_eq!(f.iter().filter(|f| f.rule.0 == "AEG-DRIFT-002").count(), 1);
        // Share threshold: 2 of 4 drifted.
        let (r, c) = pair(DEFAULT_EXACT_LIMIT);
        let opts = DriftOptions {
            share: Some(0.75),
            ..DriftOptions::default()
        };
        let report = compare(r, c, &opts).unwrap();
        assert!(!report.dataset_drift);
        assert!((report.drift_share - 0.5).abs() < 1e-12);
        assert!(report.to_table().contains("DRIFT"));
    }

    #[test]
    fn sketched_columns_agree_with_exact() {
        let (r, c) = pair(500);
        let report = compare(r, c, &DriftOptions::default()).unwrap();
        let s = col(&report, "shifted");
        assert!(s.sketched);
        assert!(s.drifted);
        assert!(!col(&report, "same").drifted);
        let (r, c) = pair(DEFAULT_EXACT_LIMIT);
        let exact = compare(r, c, &DriftOptions::default()).unwrap();
        let e = col(&exact, "shifted");
        assert!((s.statistic.unwrap() - e.statistic.unwrap()).abs() < 0.03);
        assert!((s.wasserstein.unwrap() - e.wasserstein.unwrap()).abs() < 0.05);
    }

    #[test]
    fn sketched_ks_is_conservative_on_large_unshifted_columns() {
        // 200k values per side in sketches: the sketch error alone (about 0.2% of rank) would make an
        // uncorrected KS reject; the p-value on D minus the error bound must not.
        let n = 200_000;
        let r = set("r", &[("x", normals(21, n, 0.0, 1.0))], &[], 10_000);
        let c = set("c", &[("x", normals(22, n, 0.0, 1.0))], &[], 10_000);
        let report = compare(r, c, &DriftOptions::default()).unwrap();
        let x = col(&report, "x");
        assert!(x.sketched);
        assert!(x.pvalue.unwrap() > 0.05, "{x:?}");
        let r = set("r", &[("x", normals(21, n, 0.0, 1.0))], &[], 10_000);
        let c = set("c", &[("x", normals(22, n, 0.05, 1.0))], &[], 10_000);
        let report = compare(r, c, &DriftOptions::default()).unwrap();
        assert!(col(&report, "x").pvalue.unwrap() < 1e-6);
    }

    #[test]
    fn effect_floor_hides_trivial_shifts() {
        // A tiny shift in a large sample: the test rejects but the effect is small.
        let n = 200_000;
        let r = set(
            "r",
            &[("x", normals(5, n, 0.0, 1.0))],
            &[],
            DEFAULT_EXACT_LIMIT,
        );
        let c = set(
            "c",
            &[("x", normals(6, n, 0.03, 1.0))],
            &[],
            DEFAULT_EXACT_LIMIT,
        );
        let report = compare(r.clone(), c.clone(), &DriftOptions::default()).unwrap();
        let x = col(&report, "x");
        assert!(x.pvalue_corrected.unwrap() < 0.05, "{x:?}");
        assert!(!x.drifted);
        let off = DriftOptions {
            min_effect: 0.0,
            ..DriftOptions::default()
        };
        let report = compare(r, c, &off).unwrap();
        assert!(col(&report, "x").drifted);
    }

    #[test]
    fn missing_column_is_a_mismatch_naming_both_files() {
        let r = set(
            "ref.csv",
            &[("a", vec![1.0, 2.0]), ("b", vec![1.0, 2.0])],
            &[],
            10,
        );
        let c = set("cur.csv", &[("a", vec![1.0, 2.0])], &[], 10);
        let err = compare(r, c, &DriftOptions::default()).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("ref.csv") && text.contains("cur.csv") && text.contains("`b`"),
            "{text}"
        );
    }

    #[test]
    fn missing_share_and_text_and_invalid() {
        let mut r = set("r", &[("x", normals(1, 1000, 0.0, 1.0))], &[], 10_000);
        let mut c = set("c", &[("x", normals(2, 1000, 0.0, 1.0))], &[], 10_000);
        for _ in 0..1000 {
            c.columns[0].1.push_missing();
        }
        r.columns[0].1.push_text("abc");
        r.columns
            .push(("t".into(), ColumnAccumulator::new(DriftKind::Text, 1, 1)));
        c.columns
            .push(("t".into(), ColumnAccumulator::new(DriftKind::Text, 1, 1)));
        let report = compare(r, c, &DriftOptions::default()).unwrap();
        let x = col(&report, "x");
        assert!((x.current_missing_share - 0.5).abs() < 1e-12);
        assert!((x.missing_share_change - (0.5 - 1.0 / 1001.0)).abs() < 1e-12);
        assert_eq!(x.invalid, (1, 0));
        assert!(!x.drifted);
        let t = col(&report, "t");
        assert!(t.test.is_none() && t.note.is_some());
        assert_eq!(report.tested, 1);
    }

    #[test]
    fn prediction_drift() {
        let opts = DriftOptions::default();
        let p = compare_predictions("m.onnx", &[500, 500], &[800, 200], &opts).unwrap();
        assert!(p.drifted);
        let q = compare_predictions("m.onnx", &[500, 500], &[505, 495], &opts).unwrap();
        assert!(!q.drifted);
    }

    #[test]
    fn category_cap_turns_column_into_text() {
        let mut a = CategoricalAccumulator::new(3);
        for v in ["a", "b", "c", "a"] {
            a.push(v);
        }
        assert!(!a.overflowed());
        a.push("d");
        assert!(a.overflowed());
        let mut long = CategoricalAccumulator::new(3);
        long.push(&"x".repeat(MAX_CATEGORY_BYTES + 1));
        assert!(long.overflowed());
        let mut b = CategoricalAccumulator::new(3);
        b.push("a");
        b.absorb(a);
        assert!(b.overflowed());
    }

    #[test]
    fn radix_sort_matches_total_cmp() {
        let mut u = rng(42);
        let mut v: Vec<f64> = (0..120_000)
            .map(|i| match i % 7 {
                0 => -u() * 1e300,
                1 => 0.0,
                2 => -0.0,
                3 => (u() - 0.5) * 1e-300,
                4 => f64::INFINITY,
                5 => (i % 13) as f64,
                _ => (u() - 0.5) * 10.0,
            })
            .collect();
        let mut w = v.clone();
        sort_values(&mut v);
        w.sort_unstable_by(f64::total_cmp);
        assert!(v.iter().zip(&w).all(|(a, b)| a.to_bits() == b.to_bits()));
    }

    #[test]
    fn numeric_absorb_spills_to_sketch() {
        let mut a = NumericAccumulator::new(10);
        for i in 0..8 {
            a.push(i as f64);
        }
        let mut b = NumericAccumulator::new(10);
        for i in 8..20 {
            b.push(i as f64);
        }
        a.absorb(b);
        assert!(a.is_sketched());
        assert_eq!(a.count(), 20);
        let sd = a.std();
        let truth = ((0..20).map(|i| (i as f64 - 9.5).powi(2)).sum::<f64>() / 20.0).sqrt();
        assert!((sd - truth).abs() < 1e-9);
    }
}
