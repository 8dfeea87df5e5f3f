//! Windowed drift collectors for live traffic: the gateway feeds every local-model request (its feature row
//! and predicted class) into a [`DriftWindow`]; when the window fills, it is compared with the model's
//! [`ReferenceProfile`] and a [`WindowReport`] comes out.
//!
//! The profile is built once at start-up from the reference table and is small whatever the reference size:
//! per feature the 10 reference-quantile bin edges with the reference counts (for PSI), a sorted
//! deterministic subsample of at most [`MAX_REFERENCE_SAMPLE`] values (for KS: evenly spaced order
//! statistics, which represent the reference at least as well as a random sample and make the test slightly
//! conservative), the range (for the out-of-distribution check) and the reference predicted-class counts.
//! A window holds at most [`MAX_WINDOW`] rows.
//!
//! Per feature: two-sample KS (asymptotic p-value, to keep window close cheap) of the window against the
//! reference sample, and PSI on the reference bins; for the predictions: chi-square on the class counts and
//! PSI. The p-values of all features and the predictions are corrected together (Benjamini–Hochberg). The
//! verdict follows `aegis drift` ([`crate::drift::is_drift`]): corrected p < `alpha` and PSI ≥ `min_effect`;
//! in addition PSI ≥ `psi_threshold` alone counts as drift (a large shift in a window too small for the
//! test). `alert` is true when any feature or the predictions drifted.

use serde::{Deserialize, Serialize};

use crate::correction::{adjust, Correction};
use crate::divergence::{bin_counts, chi_square, psi, quantile_edges};
use crate::drift::is_drift;
use crate::ks::{ks_2samp_sorted, Method};
use crate::Error;

/// Reference values kept per feature for the KS test.
pub const MAX_REFERENCE_SAMPLE: usize = 10_000;

/// The largest window, in rows (larger configured sizes are capped).
pub const MAX_WINDOW: usize = 100_000;

/// PSI bins per feature.
pub const BINS: usize = 10;

/// What a model's reference data looks like, built once at start-up from the reference table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReferenceProfile {
    /// Feature names, in model input order.
    pub features: Vec<String>,
    /// Reference rows the profile was built from.
    #[serde(default)]
    pub rows: usize,
    /// Per feature: interior PSI bin edges (reference deciles, duplicates removed).
    #[serde(default)]
    pub edges: Vec<Vec<f64>>,
    /// Per feature: reference counts in the bins given by `edges`.
    #[serde(default)]
    pub bin_counts: Vec<Vec<u64>>,
    /// Per feature: a sorted subsample of the reference (at most [`MAX_REFERENCE_SAMPLE`] values).
    #[serde(default)]
    pub sample: Vec<Vec<f64>>,
    /// Per feature: smallest reference value.
    #[serde(default)]
    pub min: Vec<f64>,
    /// Per feature: largest reference value.
    #[serde(default)]
    pub max: Vec<f64>,
    /// Number of classes of the model.
    #[serde(default)]
    pub n_classes: usize,
    /// Reference predicted-class counts (empty when no predictions were given).
    #[serde(default)]
    pub prediction_counts: Vec<u64>,
}

impl ReferenceProfile {
    /// Build from `n` rows of `features.len()` numeric features (row-major) and the model's predicted class
    /// per reference row (`predictions` may be empty: no prediction drift then). Non-finite values are
    /// ignored.
    pub fn build(
        features: Vec<String>,
        rows: &[f64],
        n: usize,
        predictions: &[u32],
        n_classes: usize,
    ) -> Result<Self, Error> {
        let d = features.len();
        if d == 0 {
            return Err(Error::Invalid("reference profile: no features".into()));
        }
        if rows.len() != n.saturating_mul(d) {
            return Err(Error::Invalid(format!(
                "reference profile: {} values for {n} rows of {d} features",
                rows.len()
            )));
        }
        if n == 0 {
            return Err(Error::TooFewValues {
                what: "reference profile",
                needed: 1,
                got: 0,
            });
        }
        if !predictions.is_empty() && predictions.len() != n {
            return Err(Error::Invalid(format!(
                "reference profile: {} predictions for {n} rows",
                predictions.len()
            )));
        }
        let mut prediction_counts = Vec::new();
        if !predictions.is_empty() {
            prediction_counts = vec![0u64; n_classes];
            for &p in predictions {
                let slot = prediction_counts.get_mut(p as usize).ok_or_else(|| {
                    Error::Invalid(format!(
                        "reference profile: predicted class {p} with {n_classes} classes"
                    ))
                })?;
                *slot += 1;
            }
        }
        let mut profile = ReferenceProfile {
            features,
            rows: n,
            edges: Vec::with_capacity(d),
            bin_counts: Vec::with_capacity(d),
            sample: Vec::with_capacity(d),
            min: Vec::with_capacity(d),
            max: Vec::with_capacity(d),
            n_classes,
            prediction_counts,
        };
        let mut column = Vec::with_capacity(n);
        for j in 0..d {
            column.clear();
            column.extend(
                rows.iter()
                    .skip(j)
                    .step_by(d)
                    .copied()
                    .filter(|v| v.is_finite()),
            );
            column.sort_unstable_by(f64::total_cmp);
            let edges = quantile_edges(&column, BINS);
            profile.bin_counts.push(bin_counts(&column, &edges));
            profile.edges.push(edges);
            profile
                .sample
                .push(subsample(&column, MAX_REFERENCE_SAMPLE));
            profile
                .min
                .push(column.first().copied().unwrap_or(f64::NAN));
            profile.max.push(column.last().copied().unwrap_or(f64::NAN));
        }
        Ok(profile)
    }

    /// Whether a row lies outside the reference data (any feature beyond the reference range widened by
    /// half of it on each side). A row of the wrong length or with a non-finite value is out of distribution.
    pub fn is_out_of_distribution(&self, row: &[f64]) -> bool {
        if row.len() != self.features.len() || self.min.len() != row.len() {
            return true;
        }
        row.iter()
            .zip(self.min.iter().zip(&self.max))
            .any(|(&v, (&lo, &hi))| {
                if !v.is_finite() {
                    return true;
                }
                if !(lo.is_finite() && hi.is_finite()) {
                    return false;
                }
                let half = (hi - lo) / 2.0;
                v < lo - half || v > hi + half
            })
    }
}

/// `m` evenly spaced order statistics of a sorted column (the column itself when it is short).
fn subsample(sorted: &[f64], m: usize) -> Vec<f64> {
    let n = sorted.len();
    if n <= m {
        return sorted.to_vec();
    }
    (0..m)
        .map(|i| sorted[(((2 * i + 1) * n) / (2 * m)).min(n - 1)])
        .collect()
}

/// Window settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WindowConfig {
    /// Rows per window; a report is produced each time a window fills (capped at [`MAX_WINDOW`]).
    pub size: usize,
    /// Significance level after correction.
    pub alpha: f64,
    /// PSI above which a feature counts as drifted even when the test does not reject.
    pub psi_threshold: f64,
    /// Effect floor: a feature whose test rejects counts as drifted only when its PSI reaches this.
    pub min_effect: f64,
}

impl Default for WindowConfig {
    fn default() -> Self {
        WindowConfig {
            size: 1000,
            alpha: 0.01,
            psi_threshold: 0.25,
            min_effect: crate::drift::DEFAULT_MIN_EFFECT,
        }
    }
}

/// The statistics of one feature (or of the predictions) in one closed window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureDrift {
    /// Feature name, or `prediction`.
    pub name: String,
    /// Test statistic (KS D for features, chi-square for the predictions).
    pub statistic: f64,
    /// Corrected p-value.
    pub pvalue: f64,
    /// PSI against the reference bins.
    pub psi: f64,
    /// Whether this feature drifted.
    pub drifted: bool,
    /// The reference and window distributions over the reference bins (classes for `prediction`), for charts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub histogram: Option<crate::drift::Histogram>,
}

/// One closed window's comparison with the reference.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowReport {
    /// Rows in the window.
    pub rows: usize,
    /// Per feature, then `prediction` last.
    pub features: Vec<FeatureDrift>,
    /// True when any feature or the predictions drifted.
    pub alert: bool,
}

impl WindowReport {
    /// Names of the drifted features (and `prediction`).
    pub fn drifted(&self) -> Vec<&str> {
        self.features
            .iter()
            .filter(|f| f.drifted)
            .map(|f| f.name.as_str())
            .collect()
    }
}

/// A collector for one model: rows go in one at a time, a report comes out when a window fills.
#[derive(Debug, Clone)]
pub struct DriftWindow {
    config: WindowConfig,
    rows: usize,
    /// Per feature, the window's finite values.
    values: Vec<Vec<f64>>,
    /// Predicted-class counts in the window.
    predictions: Vec<u64>,
}

impl DriftWindow {
    /// An empty window over `profile`.
    pub fn new(profile: &ReferenceProfile, config: WindowConfig) -> Self {
        let mut config = config;
        config.size = config.size.clamp(2, MAX_WINDOW);
        DriftWindow {
            values: vec![Vec::with_capacity(config.size); profile.features.len()],
            predictions: vec![0; profile.n_classes],
            config,
            rows: 0,
        }
    }

    /// Rows in the current, unfinished window.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// The settings in force (size capped).
    pub fn config(&self) -> &WindowConfig {
        &self.config
    }

    /// Add one row and its predicted class; returns the report when this row closed a window. Values beyond
    /// the profile's features and non-finite values are ignored; an unknown class is not counted.
    pub fn push(
        &mut self,
        profile: &ReferenceProfile,
        row: &[f64],
        predicted: u32,
    ) -> Option<WindowReport> {
        for (col, &v) in self.values.iter_mut().zip(row) {
            if v.is_finite() {
                col.push(v);
            }
        }
        if let Some(c) = self.predictions.get_mut(predicted as usize) {
            *c += 1;
        }
        self.rows += 1;
        if self.rows < self.config.size {
            return None;
        }
        let report = self.close(profile);
        self.rows = 0;
        self.values.iter_mut().for_each(Vec::clear);
        self.predictions.iter_mut().for_each(|c| *c = 0);
        Some(report)
    }

    fn close(&mut self, profile: &ReferenceProfile) -> WindowReport {
        let mut features = Vec::with_capacity(self.values.len() + 1);
        let mut raw = Vec::with_capacity(self.values.len() + 1);
        for (j, values) in self.values.iter_mut().enumerate() {
            values.sort_unstable_by(f64::total_cmp);
            let name = profile.features.get(j).cloned().unwrap_or_default();
            let mut histogram = None;
            let (statistic, p, psi_v) = match (profile.sample.get(j), profile.edges.get(j)) {
                (Some(sample), Some(edges)) if !sample.is_empty() && !values.is_empty() => {
                    let ks = ks_2samp_sorted(sample, values, Method::Asymptotic);
                    let counts = bin_counts(values, edges);
                    let reference = profile.bin_counts.get(j);
                    let psi_v = reference.and_then(|r| psi(r, &counts).ok()).unwrap_or(0.0);
                    if let Some(r) = reference.filter(|r| r.len() == counts.len()) {
                        histogram = Some(crate::drift::numeric_histogram(edges, r.clone(), counts));
                    }
                    match ks {
                        Ok(ks) => (ks.statistic, ks.pvalue, psi_v),
                        Err(_) => (f64::NAN, 1.0, psi_v),
                    }
                }
                _ => (f64::NAN, 1.0, 0.0),
            };
            raw.push(p);
            features.push(FeatureDrift {
                name,
                statistic,
                pvalue: p,
                psi: psi_v,
                drifted: false,
                histogram,
            });
        }
        if !profile.prediction_counts.is_empty() {
            let r = &profile.prediction_counts;
            let c = &self.predictions;
            let nonzero = r.iter().zip(c).filter(|(a, b)| **a + **b > 0).count();
            let (statistic, p) = if nonzero >= 2 && c.iter().sum::<u64>() > 0 {
                chi_square(r, c)
                    .map(|x| (x.statistic, x.pvalue))
                    .unwrap_or((f64::NAN, 1.0))
            } else {
                (0.0, 1.0)
            };
            let psi_v = psi(r, c).unwrap_or(0.0);
            raw.push(p);
            features.push(FeatureDrift {
                name: "prediction".into(),
                statistic,
                pvalue: p,
                psi: psi_v,
                drifted: false,
                histogram: Some(crate::drift::Histogram {
                    labels: (0..r.len()).map(|i| format!("class {i}")).collect(),
                    reference: r.clone(),
                    current: c.clone(),
                }),
            });
        }
        let corrected = adjust(&raw, Correction::BenjaminiHochberg);
        let mut alert = false;
        for (f, &p) in features.iter_mut().zip(&corrected) {
            f.pvalue = p;
            f.drifted = is_drift(p, self.config.alpha, &[f.psi], self.config.min_effect)
                || f.psi >= self.config.psi_threshold;
            alert |= f.drifted;
        }
        WindowReport {
            rows: self.rows,
            features,
            alert,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rng(seed: u64) -> impl FnMut() -> f64 {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        move || {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 11) as f64 + 0.5) / ((1u64 << 53) as f64)
        }
    }

    fn normal(u: &mut impl FnMut() -> f64) -> f64 {
        let (a, b) = (u(), u());
        (-2.0 * a.ln()).sqrt() * (2.0 * std::f64::consts::PI * b).cos()
    }

    /// Three features, class = (x0 > 0) as a stand-in model.
    fn profile() -> ReferenceProfile {
        let mut u = rng(1);
        let n = 20_000;
        let mut rows = Vec::with_capacity(3 * n);
        let mut preds = Vec::with_capacity(n);
        for _ in 0..n {
            let x0 = normal(&mut u);
            rows.extend([x0, normal(&mut u) * 2.0 + 5.0, u()]);
            preds.push(u32::from(x0 > 0.0));
        }
        ReferenceProfile::build(
            vec!["a".into(), "b".into(), "c".into()],
            &rows,
            n,
            &preds,
            2,
        )
        .unwrap()
    }

    fn run_window(
        profile: &ReferenceProfile,
        seed: u64,
        shift_b: f64,
        pred: impl Fn(f64, &mut dyn FnMut() -> f64) -> u32,
    ) -> WindowReport {
        let mut w = DriftWindow::new(profile, WindowConfig::default());
        let mut u = rng(seed);
        for _ in 0..999 {
            let x0 = normal(&mut u);
            let row = [x0, normal(&mut u) * 2.0 + 5.0 + shift_b, u()];
            let p = pred(x0, &mut u);
            assert!(w.push(profile, &row, p).is_none());
        }
        let x0 = normal(&mut u);
        let row = [x0, 5.0 + shift_b, 0.5];
        let p = pred(x0, &mut u);
        w.push(profile, &row, p)
            .expect("window closes at 1000 rows")
    }

    #[test]
    fn profile_is_bounded_and_checks_range() {
        let p = profile();
        assert_eq!(p.sample[0].len(), MAX_REFERENCE_SAMPLE);
        assert!(p.sample[0].windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(p.bin_counts[1].iter().sum::<u64>(), 20_000);
        assert_eq!(p.prediction_counts.iter().sum::<u64>(), 20_000);
        assert!(!p.is_out_of_distribution(&[0.0, 5.0, 0.5]));
        assert!(p.is_out_of_distribution(&[0.0, 5.0, 2.0]));
        assert!(p.is_out_of_distribution(&[0.0, 5.0]));
        assert!(p.is_out_of_distribution(&[f64::NAN, 5.0, 0.5]));
        assert!(ReferenceProfile::build(vec!["a".into()], &[1.0, 2.0], 2, &[0, 3], 2).is_err());
        let w = DriftWindow::new(
            &p,
            WindowConfig {
                size: 10_000_000,
                ..WindowConfig::default()
            },
        );
        assert_eq!(w.config().size, MAX_WINDOW);
    }

    #[test]
    fn unshifted_windows_rarely_alert() {
        let p = profile();
        let alerts = (0..20)
            .filter(|&s| run_window(&p, 100 + s, 0.0, |x0, _| u32::from(x0 > 0.0)).alert)
            .count();
        assert!(alerts <= 1, "{alerts} false alerts in 20 windows");
    }

    #[test]
    fn shifted_feature_alerts_naming_it() {
        let p = profile();
        // Feature b has std 2: shift by one std.
        let r = run_window(&p, 7, 2.0, |x0, _| u32::from(x0 > 0.0));
        assert!(r.alert);
        assert_eq!(r.drifted(), vec!["b"]);
        assert_eq!(r.rows, 1000);
        assert_eq!(r.features.last().unwrap().name, "prediction");
    }

    #[test]
    fn prediction_shift_alone_alerts_on_prediction() {
        let p = profile();
        // Same inputs, but the model now answers class 1 for 80% of rows.
        let r = run_window(&p, 9, 0.0, |_, u| u32::from(u() < 0.8));
        assert!(r.alert);
        assert_eq!(r.drifted(), vec!["prediction"]);
    }
}
