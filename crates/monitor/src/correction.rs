//! Multiple-testing correction across columns. (Stub: signatures fixed, bodies being written.)

use serde::{Deserialize, Serialize};

/// How p-values across columns are corrected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Correction {
    /// None.
    None,
    /// Bonferroni: p · m.
    Bonferroni,
    /// Holm's step-down.
    Holm,
    /// Benjamini–Hochberg (false discovery rate), as `scipy.stats.false_discovery_control(p, method="bh")`.
    #[default]
    BenjaminiHochberg,
}

/// Adjusted p-values, in the input order, each capped at 1.
pub fn adjust(pvalues: &[f64], method: Correction) -> Vec<f64> {
    let _ = method;
    pvalues.to_vec()
}
