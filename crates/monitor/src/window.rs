//! Windowed drift collectors for live traffic. (Stub: signatures fixed, bodies being written.)

use serde::{Deserialize, Serialize};

use crate::Error;

/// What a model's reference data looks like, built once at start-up from the reference table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReferenceProfile {
    /// Feature names, in model input order.
    pub features: Vec<String>,
}

impl ReferenceProfile {
    /// Build from `n` rows of `features.len()` numeric features (row-major) and the model's predicted class
    /// per reference row.
    pub fn build(
        features: Vec<String>,
        rows: &[f64],
        n: usize,
        predictions: &[u32],
        n_classes: usize,
    ) -> Result<Self, Error> {
        let _ = (rows, n, predictions, n_classes);
        Ok(ReferenceProfile { features })
    }

    /// Whether a row lies outside the reference data (any feature beyond the reference range widened by
    /// half of it on each side).
    pub fn is_out_of_distribution(&self, row: &[f64]) -> bool {
        let _ = row;
        false
    }
}

/// Window settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WindowConfig {
    /// Rows per window; a report is produced each time a window fills.
    pub size: usize,
    /// Significance level after correction.
    pub alpha: f64,
    /// PSI above which a feature counts as drifted even when the test does not reject.
    pub psi_threshold: f64,
}

impl Default for WindowConfig {
    fn default() -> Self {
        WindowConfig {
            size: 1000,
            alpha: 0.01,
            psi_threshold: 0.25,
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

/// A collector for one model: rows go in one at a time, a report comes out when a window fills.
#[derive(Debug, Clone)]
pub struct DriftWindow {
    config: WindowConfig,
    rows: usize,
}

impl DriftWindow {
    /// An empty window over `profile`.
    pub fn new(profile: &ReferenceProfile, config: WindowConfig) -> Self {
        let _ = profile;
        DriftWindow { config, rows: 0 }
    }

    /// Add one row and its predicted class; returns the report when this row closed a window.
    pub fn push(&mut self, profile: &ReferenceProfile, row: &[f64], predicted: u32) -> Option<WindowReport> {
        let _ = (profile, row, predicted);
        self.rows += 1;
        if self.rows >= self.config.size {
            self.rows = 0;
        }
        None
    }
}
