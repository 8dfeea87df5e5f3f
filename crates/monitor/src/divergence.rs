//! Chi-square on contingency tables, PSI, normalised Wasserstein and Jensen–Shannon, matching scipy/numpy.
//!
//! Each function states the scipy or numpy expression it equals; `testdata/drift/make_reference.py` computes
//! the same expressions, and `tests/scipy_reference.rs` checks the agreement to 1e-9. Counts are `u64` so a
//! caller can bin a million rows without materialising them; proportions are formed here.

use serde::{Deserialize, Serialize};

use crate::special::chi2_sf;
use crate::Error;

/// Floor applied to each bin proportion in [`psi`] so an empty bin does not make the index infinite.
pub const PSI_FLOOR: f64 = 1e-4;

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
///
/// Errors when the two vectors differ in length, no category is left, or one side has no counts at all
/// (scipy's "expected frequency has a zero element"). One category left gives dof 0, statistic 0, p 1 (scipy).
pub fn chi_square(reference: &[u64], current: &[u64]) -> Result<ChiSquare, Error> {
    if reference.len() != current.len() {
        return Err(Error::Invalid(format!(
            "chi_square: {} reference categories but {} current ones",
            reference.len(),
            current.len()
        )));
    }
    let cols: Vec<(f64, f64)> = reference
        .iter()
        .zip(current)
        .filter(|(r, c)| **r + **c > 0)
        .map(|(r, c)| (*r as f64, *c as f64))
        .collect();
    if cols.is_empty() {
        return Err(Error::TooFewValues {
            what: "chi_square",
            needed: 1,
            got: 0,
        });
    }
    let row_r: u64 = reference.iter().sum();
    let row_c: u64 = current.iter().sum();
    if row_r == 0 || row_c == 0 {
        return Err(Error::Invalid(
            "chi_square: one of the two samples is empty (expected frequencies would be zero)"
                .into(),
        ));
    }
    let total = (row_r + row_c) as f64;
    let (row_r, row_c) = (row_r as f64, row_c as f64);
    let dof = cols.len() - 1;
    if dof == 0 {
        return Ok(ChiSquare {
            statistic: 0.0,
            dof,
            pvalue: 1.0,
        });
    }
    let mut statistic = 0.0;
    // Row-major order of the 2 × k table, as numpy sums it.
    for (row, pick) in [(row_r, 0usize), (row_c, 1usize)] {
        for &(r, c) in &cols {
            let observed = if pick == 0 { r } else { c };
            let expected = row * (r + c) / total;
            let mut obs = observed;
            if dof == 1 {
                // Yates: move each observation 0.5 (or less) towards its expectation.
                let diff = expected - observed;
                let magnitude = diff.abs().min(0.5);
                obs = observed + magnitude * diff.signum() * f64::from(u8::from(diff != 0.0));
            }
            statistic += (obs - expected) * (obs - expected) / expected;
        }
    }
    Ok(ChiSquare {
        statistic,
        dof,
        pvalue: chi2_sf(statistic, dof as f64),
    })
}

/// Bin edges for PSI and Jensen–Shannon on a numeric column: the `bins`-quantiles of the (sorted) reference,
/// numpy's default linear interpolation, duplicates removed; the outer bins extend to ±∞.
///
/// Equals `np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1)[1:-1]))`: the interior edges only, so
/// at most `bins - 1` of them. Empty input or `bins < 2` gives no edges (a single bin).
pub fn quantile_edges(reference_sorted: &[f64], bins: usize) -> Vec<f64> {
    let n = reference_sorted.len();
    if n == 0 || bins < 2 {
        return Vec::new();
    }
    let step = 1.0 / bins as f64;
    let mut edges = Vec::with_capacity(bins - 1);
    for i in 1..bins {
        let q = i as f64 * step;
        let virtual_index = (n - 1) as f64 * q;
        let (prev, next, gamma) = if virtual_index >= (n - 1) as f64 {
            (n - 1, n - 1, 0.0)
        } else {
            let prev = virtual_index.floor();
            (prev as usize, prev as usize + 1, virtual_index - prev)
        };
        let (a, b) = (reference_sorted[prev], reference_sorted[next]);
        let diff = b - a;
        let value = if gamma >= 0.5 {
            b - diff * (1.0 - gamma)
        } else {
            a + diff * gamma
        };
        edges.push(value);
    }
    edges.sort_by(f64::total_cmp);
    edges.dedup();
    edges
}

/// Counts of `values` in the bins given by interior `edges` (`edges.len() + 1` bins; a value equal to an edge
/// goes to the bin on its right, like `numpy.searchsorted(edges, v, side="right")`). NaN goes to the last bin,
/// as numpy sorts it.
pub fn bin_counts(values: &[f64], edges: &[f64]) -> Vec<u64> {
    let mut counts = vec![0u64; edges.len() + 1];
    for &v in values {
        let idx = if v.is_nan() {
            edges.len()
        } else {
            edges.partition_point(|e| *e <= v)
        };
        counts[idx] += 1;
    }
    counts
}

fn proportions(counts: &[u64], what: &'static str) -> Result<Vec<f64>, Error> {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return Err(Error::TooFewValues {
            what,
            needed: 1,
            got: 0,
        });
    }
    let total = total as f64;
    Ok(counts.iter().map(|c| *c as f64 / total).collect())
}

fn same_len(reference: &[u64], current: &[u64], what: &str) -> Result<(), Error> {
    if reference.len() != current.len() {
        return Err(Error::Invalid(format!(
            "{what}: {} reference bins but {} current ones",
            reference.len(),
            current.len()
        )));
    }
    Ok(())
}

/// Population stability index of two count vectors over the same bins: Σ (c − r) · ln(c / r) over the
/// proportions, each proportion floored at `1e-4` so an empty bin does not make it infinite.
///
/// numpy: `r = np.maximum(ref / ref.sum(), 1e-4); c = np.maximum(cur / cur.sum(), 1e-4);
/// np.sum((c - r) * np.log(c / r))`. Errors on different lengths or an all-zero vector.
pub fn psi(reference: &[u64], current: &[u64]) -> Result<f64, Error> {
    same_len(reference, current, "psi")?;
    let r = proportions(reference, "psi")?;
    let c = proportions(current, "psi")?;
    Ok(r.iter()
        .zip(&c)
        .map(|(r, c)| {
            let (r, c) = (r.max(PSI_FLOOR), c.max(PSI_FLOOR));
            (c - r) * (c / r).ln()
        })
        .sum())
}

/// `scipy.stats.wasserstein_distance(reference, current)` divided by the reference's standard deviation
/// (ddof 0); the raw distance when that deviation is 0.
///
/// Both inputs sorted ascending, NaN refused; O(n1 + n2) by one merge.
pub fn normalized_wasserstein(
    reference_sorted: &[f64],
    current_sorted: &[f64],
) -> Result<f64, Error> {
    for (x, name) in [(reference_sorted, "reference"), (current_sorted, "current")] {
        if x.is_empty() {
            return Err(Error::TooFewValues {
                what: "wasserstein",
                needed: 1,
                got: 0,
            });
        }
        if x.iter().any(|v| v.is_nan()) {
            return Err(Error::Invalid(format!(
                "wasserstein: NaN in the {name} data"
            )));
        }
        if x.windows(2).any(|w| w[0] > w[1]) {
            return Err(Error::Invalid(format!(
                "wasserstein: {name} data is not sorted ascending"
            )));
        }
    }
    let w = wasserstein_sorted(reference_sorted, current_sorted);
    let sd = std_ddof0(reference_sorted);
    Ok(if sd > 0.0 { w / sd } else { w })
}

/// ∫ |U − V| over the merged sorted values (scipy `_cdf_distance(1, ...)`).
fn wasserstein_sorted(u: &[f64], v: &[f64]) -> f64 {
    let (nu, nv) = (u.len() as f64, v.len() as f64);
    let (mut i, mut j) = (0usize, 0usize);
    let mut total = 0.0;
    let mut prev: Option<f64> = None;
    while i < u.len() || j < v.len() {
        let x = match (u.get(i), v.get(j)) {
            (Some(&a), Some(&b)) => a.min(b),
            (Some(&a), None) => a,
            (None, Some(&b)) => b,
            (None, None) => break,
        };
        if let Some(p) = prev {
            // CDFs at `p` (right-continuous) times the gap to the next merged value.
            total += (i as f64 / nu - j as f64 / nv).abs() * (x - p);
        }
        while i < u.len() && u[i] <= x {
            i += 1;
        }
        while j < v.len() && v[j] <= x {
            j += 1;
        }
        prev = Some(x);
    }
    total
}

/// numpy `np.std(x)` (two passes, ddof 0).
fn std_ddof0(x: &[f64]) -> f64 {
    let n = x.len() as f64;
    let mean = x.iter().sum::<f64>() / n;
    (x.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n).sqrt()
}

/// `scipy.spatial.distance.jensenshannon(reference, current, base=2)` of two count vectors (the distance, in
/// [0, 1]).
///
/// Errors on different lengths or an all-zero vector.
pub fn jensen_shannon(reference: &[u64], current: &[u64]) -> Result<f64, Error> {
    same_len(reference, current, "jensen_shannon")?;
    let p = proportions(reference, "jensen_shannon")?;
    let q = proportions(current, "jensen_shannon")?;
    let rel_entr = |x: f64, y: f64| {
        if x > 0.0 && y > 0.0 {
            x * (x / y).ln()
        } else {
            0.0
        }
    };
    let (mut left, mut right) = (0.0, 0.0);
    for (p, q) in p.iter().zip(&q) {
        let m = (p + q) / 2.0;
        left += rel_entr(*p, m);
        right += rel_entr(*q, m);
    }
    let js = (left + right) / std::f64::consts::LN_2;
    Ok((js / 2.0).max(0.0).sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chi_square_matches_scipy() {
        // scipy.stats.chi2_contingency([[30, 50, 20], [25, 40, 45]])
        let r = chi_square(&[30, 50, 20], &[25, 40, 45]).unwrap();
        assert_eq!(r.dof, 2);
        assert!((r.statistic - 10.729179910998093).abs() < 1e-12, "{r:?}");
        assert!((r.pvalue - 0.00467937860068816).abs() < 1e-15, "{r:?}");
        // dof 1 with Yates: chi2_contingency([[12, 5], [7, 15]])
        let r = chi_square(&[12, 5], &[7, 15]).unwrap();
        assert_eq!(r.dof, 1);
        assert!((r.statistic - 4.322120391218687).abs() < 1e-12, "{r:?}");
        assert!((r.pvalue - 0.03762001663483994).abs() < 1e-15, "{r:?}");
    }

    #[test]
    fn chi_square_edge_cases() {
        // Zero-count categories are dropped: same as without them.
        let a = chi_square(&[30, 0, 50, 20], &[25, 0, 40, 45]).unwrap();
        let b = chi_square(&[30, 50, 20], &[25, 40, 45]).unwrap();
        assert_eq!(a, b);
        // A single category: nothing to compare.
        assert_eq!(
            chi_square(&[5, 0], &[7, 0]).unwrap(),
            ChiSquare {
                statistic: 0.0,
                dof: 0,
                pvalue: 1.0
            }
        );
        assert!(chi_square(&[], &[]).is_err());
        assert!(chi_square(&[0, 0], &[3, 4]).is_err());
        assert!(chi_square(&[1, 2], &[3]).is_err());
        // Same proportions: no evidence of a shift.
        let r = chi_square(&[10, 20, 30], &[20, 40, 60]).unwrap();
        assert!(r.statistic.abs() < 1e-12 && (r.pvalue - 1.0).abs() < 1e-12);
    }

    #[test]
    fn quantile_edges_match_numpy() {
        // np.quantile(np.arange(10.0) ** 2, np.linspace(0, 1, 5)[1:-1])
        let x: Vec<f64> = (0..10).map(|i| (i * i) as f64).collect();
        assert_eq!(quantile_edges(&x, 4), vec![5.25, 20.5, 45.75]);
        // Duplicates removed; a constant column has a single edge.
        assert_eq!(quantile_edges(&[1.0, 1.0, 1.0, 2.0], 4), vec![1.0, 1.25]);
        assert_eq!(quantile_edges(&[3.0; 5], 10), vec![3.0]);
        assert!(quantile_edges(&[], 10).is_empty());
        assert!(quantile_edges(&[1.0, 2.0], 1).is_empty());
    }

    #[test]
    fn bin_counts_right_side() {
        let edges = [1.0, 2.0];
        assert_eq!(
            bin_counts(&[0.5, 1.0, 1.5, 2.0, 3.0], &edges),
            vec![1, 2, 2]
        );
        // Single bin.
        assert_eq!(bin_counts(&[0.5, 7.0], &[]), vec![2]);
    }

    #[test]
    fn psi_and_js_known_values() {
        // numpy / scipy: r=[10,20,30,40], c=[40,30,20,10]
        let r = [10, 20, 30, 40];
        let c = [40, 30, 20, 10];
        assert!((psi(&r, &c).unwrap() - 0.9128696382935673).abs() < 1e-14);
        assert!((jensen_shannon(&r, &c).unwrap() - 0.3918681606471551).abs() < 1e-14);
        // Identical distributions.
        assert_eq!(psi(&r, &r).unwrap(), 0.0);
        assert_eq!(jensen_shannon(&r, &[1, 2, 3, 4]).unwrap(), 0.0);
        // Empty bin in one vector: PSI stays finite.
        assert!(psi(&[0, 10], &[10, 0]).unwrap().is_finite());
        assert!((jensen_shannon(&[0, 10], &[10, 0]).unwrap() - 1.0).abs() < 1e-15);
        assert!(psi(&[0, 0], &[1, 1]).is_err());
        assert!(jensen_shannon(&[1], &[1, 2]).is_err());
    }

    #[test]
    fn wasserstein_known_values() {
        // scipy.stats.wasserstein_distance([0, 1, 3], [5, 6, 8]) = 5; np.std([0, 1, 3]) = 1.247219128924647
        let w = normalized_wasserstein(&[0.0, 1.0, 3.0], &[5.0, 6.0, 8.0]).unwrap();
        assert!((w - 5.0 / 1.247219128924647).abs() < 1e-14);
        // Constant reference: the raw distance.
        assert_eq!(normalized_wasserstein(&[2.0, 2.0], &[3.0]).unwrap(), 1.0);
        assert_eq!(
            normalized_wasserstein(&[1.0, 2.0], &[1.0, 2.0]).unwrap(),
            0.0
        );
        assert!(normalized_wasserstein(&[], &[1.0]).is_err());
        assert!(normalized_wasserstein(&[f64::NAN], &[1.0]).is_err());
    }
}
