//! Chi-square on contingency tables, PSI, normalised Wasserstein and Jensen–Shannon, matching scipy/numpy.
//! (Stub: signatures fixed, bodies being written.)

use serde::{Deserialize, Serialize};

use crate::Error;

/// A chi-square test of homogeneity on a 2 × k table (reference counts vs current counts).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ChiSquare {
    /// The statistic (with Yates' correction when dof == 1, as scipy's `chi2_contingency` default).
    pub statistic: f64,
    /// Degrees of freedom.
    pub dof: usize,
    /// p-value.
    pub pvalue: f64,
}

/// `scipy.stats.chi2_contingency([reference, current], correction=True)` after dropping categories whose total
/// count is zero.
pub fn chi_square(reference: &[u64], current: &[u64]) -> Result<ChiSquare, Error> {
    let _ = (reference, current);
    Err(Error::Invalid("chi_square: not yet implemented".into()))
}

/// Bin edges for PSI and Jensen–Shannon on a numeric column: the `bins`-quantiles of the (sorted) reference,
/// numpy's default linear interpolation, duplicates removed; the outer bins extend to ±∞.
pub fn quantile_edges(reference_sorted: &[f64], bins: usize) -> Vec<f64> {
    let _ = (reference_sorted, bins);
    Vec::new()
}

/// Counts of `values` in the bins given by interior `edges` (`edges.len() + 1` bins; a value equal to an edge
/// goes to the bin on its right, like `numpy.searchsorted(edges, v, side="right")`).
pub fn bin_counts(values: &[f64], edges: &[f64]) -> Vec<u64> {
    let _ = (values, edges);
    Vec::new()
}

/// Population stability index of two count vectors over the same bins: Σ (c − r) · ln(c / r) over the
/// proportions, each proportion floored at `1e-4` so an empty bin does not make it infinite.
pub fn psi(reference: &[u64], current: &[u64]) -> Result<f64, Error> {
    let _ = (reference, current);
    Err(Error::Invalid("psi: not yet implemented".into()))
}

/// `scipy.stats.wasserstein_distance(reference, current)` divided by the reference's standard deviation
/// (ddof 0); the raw distance when that deviation is 0.
pub fn normalized_wasserstein(reference_sorted: &[f64], current_sorted: &[f64]) -> Result<f64, Error> {
    let _ = (reference_sorted, current_sorted);
    Err(Error::Invalid("normalized_wasserstein: not yet implemented".into()))
}

/// `scipy.spatial.distance.jensenshannon(reference, current, base=2)` of two count vectors (the distance, in
/// [0, 1]).
pub fn jensen_shannon(reference: &[u64], current: &[u64]) -> Result<f64, Error> {
    let _ = (reference, current);
    Err(Error::Invalid("jensen_shannon: not yet implemented".into()))
}
