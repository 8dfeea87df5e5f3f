//! Feature maps applied before PRADA measures distances between queries: [`NormalScores`] and [`RobustScores`].
//!
//! # Why
//! PRADA's test assumes that the minimum distances of natural queries look normal. That holds for image-like
//! inputs but not for the tabular data this project's users serve: a log-normal amount or a card age divided by
//! its standard deviation still has a long tail, so the nearest-neighbour distances of *natural* queries are
//! skewed and Shapiro–Wilk rejects them (measured on the demo fraud model: 14 of 40 benign streams alarmed at
//! δ = 0.9 with per-feature standard deviations). A map that tames the tails removes those false alarms, but
//! any non-linear map also bends an attacker's fixed steps into varied ones, which is the very signal PRADA
//! looks for. The two maps here sit at two points of that trade-off (figures in `docs/BENCHMARKS.md`):
//! - [`RobustScores`] are linear in the bulk of each feature and only compress the far tails, so an attacker's
//!   steps stay fixed where the data is, and outliers no longer dominate natural distances;
//! - [`NormalScores`] make every marginal exactly bell-shaped (the fewest false alarms) at the price of bending
//!   every step.
//!
//! # Normal scores
//! `z = Φ⁻¹(F̂(x))` through the reference data's empirical distribution function. For one feature with reference
//! values `v₁ ≤ … ≤ vₙ`, each distinct value `u` gets the mid-rank probability
//! `F̂(u) = (#{v < u} + #{v = u}/2) / n` and the score `Φ⁻¹(F̂(u))`; between two knots the score is linear.
//! Beyond the smallest or largest reference value the score continues on the straight line through the edge
//! knot and the knot one normal unit inward (the tail's own slope): clamping would map every query beyond the
//! range to one point, and an attacker walking out of the data would then look like a stream of repeats.
//! Ties (integer and binary features) get one score each. At most [`MAX_KNOTS`] knots are kept per feature, so
//! the map's size does not grow with the reference data.
//!
//! # Robust scores
//! `z = (x − median) / s` with `s` the interquartile range / 1.349 (the standard deviation for normal data; the
//! standard deviation when the IQR is 0, as for a rare binary flag; 1 when that is 0 too), then a soft clip:
//! `z` unchanged while `|z| ≤ ROBUST_KNEE`, `±(knee + ln(1 + |z| − knee))` beyond, continuous with slope 1 at
//! the knee.

use crate::shapiro::ppnd;
use crate::Error;

/// Robust scores stay linear up to this many robust standard deviations from the median.
pub const ROBUST_KNEE: f64 = 1.0;

/// A fitted per-feature map.
#[derive(Debug, Clone, PartialEq)]
pub enum FeatureMap {
    /// See [`NormalScores`].
    Normal(NormalScores),
    /// See [`RobustScores`].
    Robust(RobustScores),
}

impl FeatureMap {
    /// The mapped row; None when its length differs from the fit or a value is not finite.
    pub fn apply(&self, x: &[f64]) -> Option<Vec<f64>> {
        match self {
            FeatureMap::Normal(m) => m.apply(x),
            FeatureMap::Robust(m) => m.apply(x),
        }
    }
}

/// Median and robust scale per feature, then a logarithmic soft clip of the tails.
#[derive(Debug, Clone, PartialEq)]
pub struct RobustScores {
    /// Per feature: (median, scale > 0).
    centre_scale: Vec<(f64, f64)>,
}

impl RobustScores {
    /// Fit on `rows` (row-major, `n_features` per row); the same input rules as [`NormalScores::fit`].
    pub fn fit(rows: &[f64], n_features: usize) -> Result<Self, Error> {
        let centre_scale = sorted_columns(rows, n_features)?
            .iter()
            .map(|col| {
                let q = |p: f64| quantile(col, p);
                let iqr = (q(0.75) - q(0.25)) / 1.349;
                let scale = [iqr, population_std(col)]
                    .into_iter()
                    .find(|s| s.is_finite() && *s > 0.0)
                    .unwrap_or(1.0);
                (q(0.5), scale)
            })
            .collect();
        Ok(RobustScores { centre_scale })
    }

    /// The robust scores of one row; None when its length differs from the fit or a value is not finite.
    pub fn apply(&self, x: &[f64]) -> Option<Vec<f64>> {
        if x.len() != self.centre_scale.len() {
            return None;
        }
        x.iter()
            .zip(&self.centre_scale)
            .map(|(&v, &(c, s))| v.is_finite().then(|| soft_clip((v - c) / s)))
            .collect()
    }
}

fn soft_clip(z: f64) -> f64 {
    if z.abs() <= ROBUST_KNEE {
        z
    } else {
        z.signum() * (ROBUST_KNEE + (1.0 + z.abs() - ROBUST_KNEE).ln())
    }
}

/// Linear-interpolation quantile (numpy's default) of a sorted, non-empty column.
fn quantile(sorted: &[f64], p: f64) -> f64 {
    let h = p * (sorted.len() - 1) as f64;
    let (lo, frac) = (h.floor() as usize, h - h.floor());
    match sorted.get(lo + 1) {
        Some(hi) => sorted[lo] + frac * (hi - sorted[lo]),
        None => sorted[lo],
    }
}

/// Population standard deviation of a non-empty column.
pub(crate) fn population_std(col: &[f64]) -> f64 {
    let n = col.len() as f64;
    let mean = col.iter().sum::<f64>() / n;
    (col.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt()
}

/// The finite values of each feature, sorted; refuses empty, ragged or all-non-finite input.
pub(crate) fn sorted_columns(rows: &[f64], n_features: usize) -> Result<Vec<Vec<f64>>, Error> {
    if n_features == 0 || rows.is_empty() || !rows.len().is_multiple_of(n_features) {
        return Err(Error::Invalid(format!(
            "feature map: {} values are not rows of {n_features} features",
            rows.len()
        )));
    }
    (0..n_features)
        .map(|j| {
            let mut col: Vec<f64> = rows
                .iter()
                .skip(j)
                .step_by(n_features)
                .copied()
                .filter(|v| v.is_finite())
                .collect();
            if col.is_empty() {
                return Err(Error::Invalid(format!(
                    "feature map: feature {j} has no finite reference value"
                )));
            }
            col.sort_by(f64::total_cmp);
            Ok(col)
        })
        .collect()
}

/// Most knots kept per feature (evenly spaced in rank when a feature has more distinct values).
pub const MAX_KNOTS: usize = 1024;

/// The per-feature normal-score map fitted on reference data.
#[derive(Debug, Clone, PartialEq)]
pub struct NormalScores {
    /// Per feature: (value, normal score) knots, values strictly increasing.
    knots: Vec<Vec<(f64, f64)>>,
}

impl NormalScores {
    /// Fit the map on `rows` (row-major, `n_features` values per row). Non-finite values are left out of their
    /// feature; a feature with no finite value is refused, as is an empty or ragged input.
    pub fn fit(rows: &[f64], n_features: usize) -> Result<Self, Error> {
        let knots = sorted_columns(rows, n_features)?
            .iter()
            .map(|col| feature_knots(col))
            .collect();
        Ok(NormalScores { knots })
    }

    /// Number of features the map was fitted on.
    pub fn n_features(&self) -> usize {
        self.knots.len()
    }

    /// The normal scores of one row; None when its length differs from the fit or a value is not finite.
    pub fn apply(&self, x: &[f64]) -> Option<Vec<f64>> {
        if x.len() != self.knots.len() {
            return None;
        }
        x.iter()
            .zip(&self.knots)
            .map(|(&v, k)| v.is_finite().then(|| score(k, v)))
            .collect()
    }
}

/// Knots of one sorted, non-empty, finite column.
fn feature_knots(sorted: &[f64]) -> Vec<(f64, f64)> {
    let n = sorted.len() as f64;
    let mut knots = Vec::new();
    let mut i = 0;
    while i < sorted.len() {
        let u = sorted[i];
        let end = i + sorted[i..].partition_point(|v| *v <= u);
        let p = (i as f64 + (end - i) as f64 / 2.0) / n;
        knots.push((u, ppnd(p)));
        i = end;
    }
    thin(knots)
}

/// At most [`MAX_KNOTS`] knots, evenly spaced by index, always keeping the first and the last.
fn thin(knots: Vec<(f64, f64)>) -> Vec<(f64, f64)> {
    if knots.len() <= MAX_KNOTS {
        return knots;
    }
    let last = knots.len() - 1;
    (0..MAX_KNOTS)
        .map(|i| knots[i * last / (MAX_KNOTS - 1)])
        .collect()
}

/// The score of `v` on one feature's knots: linear between knots, the tails' slopes outside.
fn score(knots: &[(f64, f64)], v: f64) -> f64 {
    let pos = knots.partition_point(|(u, _)| *u < v);
    if pos == 0 || pos == knots.len() {
        let (edge, inner) = if pos == 0 {
            let e = knots[0];
            (e, knots.iter().find(|k| k.1 >= e.1 + 1.0))
        } else {
            let e = knots[pos - 1];
            (e, knots.iter().rev().find(|k| k.1 <= e.1 - 1.0))
        };
        let inner = inner.or(if pos == 0 {
            knots.last()
        } else {
            knots.first()
        });
        return match inner {
            Some(&(u, z)) if u != edge.0 => edge.1 + (v - edge.0) * (z - edge.1) / (u - edge.0),
            _ => edge.1,
        };
    }
    let (u1, z1) = knots[pos];
    if u1 == v {
        return z1;
    }
    let (u0, z0) = knots[pos - 1];
    z0 + (z1 - z0) * (v - u0) / (u1 - u0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn midranks_and_edges() {
        // Feature 0: 1, 2, 2, 3 -> F = 1/8, 4/8, 7/8; feature 1 constant.
        let rows = [1.0, 5.0, 2.0, 5.0, 2.0, 5.0, 3.0, 5.0];
        let m = NormalScores::fit(&rows, 2).unwrap();
        let z = |x: f64| m.apply(&[x, 5.0]).unwrap()[0];
        assert!((z(2.0) - 0.0).abs() < 1e-6);
        assert!((z(1.0) - ppnd(0.125)).abs() < 1e-12);
        assert!((z(3.0) - ppnd(0.875)).abs() < 1e-12);
        // Between knots: linear; outside the range: the line through the edge knot and the knot one unit in
        // (here the far edge, as the middle knot is less than one unit in).
        assert!((z(1.5) - ppnd(0.125) / 2.0).abs() < 1e-12);
        let slope = (ppnd(0.875) - ppnd(0.125)) / 2.0;
        assert!((z(0.0) - (ppnd(0.125) - slope)).abs() < 1e-12);
        assert!((z(5.0) - (ppnd(0.875) + 2.0 * slope)).abs() < 1e-12);
        assert!(z(-100.0) < z(0.0) && z(1e9) > z(5.0));
        // A constant feature maps to 0 (F = 1/2), inside and outside.
        assert!(m.apply(&[2.0, 5.0]).unwrap()[1].abs() < 1e-6);
        assert!(m.apply(&[2.0, 7.0]).unwrap()[1].abs() < 1e-6);
    }

    #[test]
    fn heavy_tails_become_bell_shaped() {
        // Log-normal reference: the scores of a fresh log-normal sample pass Shapiro-Wilk, the raw values fail.
        let mut s = 0x2545_F491_4F6C_DD1Du64;
        let mut unif = || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 11) as f64 + 0.5) / (1u64 << 53) as f64
        };
        let mut lognormal = || (1.5 * ppnd(unif())).exp();
        let reference: Vec<f64> = (0..2000).map(|_| lognormal()).collect();
        let m = NormalScores::fit(&reference, 1).unwrap();
        let fresh: Vec<f64> = (0..500).map(|_| lognormal()).collect();
        let scores: Vec<f64> = fresh.iter().map(|v| m.apply(&[*v]).unwrap()[0]).collect();
        let w_raw = crate::shapiro::shapiro_wilk(&fresh).unwrap().w;
        let w_scores = crate::shapiro::shapiro_wilk(&scores).unwrap().w;
        assert!(w_raw < 0.7, "raw W {w_raw}");
        assert!(w_scores > 0.99, "scores W {w_scores}");
    }

    #[test]
    fn knots_are_bounded() {
        let rows: Vec<f64> = (0..10_000).map(f64::from).collect();
        let m = NormalScores::fit(&rows, 1).unwrap();
        assert_eq!(m.knots[0].len(), MAX_KNOTS);
        assert_eq!(m.knots[0][0].0, 0.0);
        assert_eq!(m.knots[0][MAX_KNOTS - 1].0, 9_999.0);
        let z = m.apply(&[5_000.0]).unwrap()[0];
        assert!(z.abs() < 0.01, "{z}");
    }

    #[test]
    fn robust_scores_are_linear_in_the_bulk_and_soft_in_the_tails() {
        // Feature 0: 0..=100 (median 50, IQR 50); feature 1: a rare flag (IQR 0, so the std); feature 2 constant.
        let rows: Vec<f64> = (0..=100)
            .flat_map(|i| [f64::from(i), f64::from(u8::from(i % 20 == 0)), 7.0])
            .collect();
        let m = RobustScores::fit(&rows, 3).unwrap();
        let s = 50.0 / 1.349;
        let z = m.apply(&[60.0, 1.0, 7.0]).unwrap();
        assert!((z[0] - 10.0 / s).abs() < 1e-12 && z[0] < ROBUST_KNEE);
        let flag_std = (6.0f64 / 101.0 * (95.0 / 101.0)).sqrt();
        assert!((z[1] - soft_clip(1.0 / flag_std)).abs() < 1e-12, "{}", z[1]);
        assert!(z[1] > ROBUST_KNEE && z[1] < 1.0 / flag_std);
        assert_eq!(z[2], 0.0);
        // Equal steps stay equal in the bulk; far out they shrink but stay ordered and continuous at the knee.
        let f = |v: f64| m.apply(&[v, 0.0, 7.0]).unwrap()[0];
        assert!(((f(60.0) - f(55.0)) - (f(45.0) - f(40.0))).abs() < 1e-12);
        assert!(f(100.0) - f(95.0) < f(60.0) - f(55.0));
        let knee = 50.0 + ROBUST_KNEE * s;
        assert!((f(knee + 1e-9) - f(knee)).abs() < 1e-9);
        assert!(f(1e6) > f(1e4) && f(1e6) < 20.0 && f(-1e6) > -20.0);
        assert!(m.apply(&[1.0]).is_none() && m.apply(&[f64::NAN, 0.0, 0.0]).is_none());
        assert!(RobustScores::fit(&[1.0, 2.0, 3.0], 2).is_err());
    }

    #[test]
    fn bad_input_is_refused() {
        assert!(NormalScores::fit(&[], 1).is_err());
        assert!(NormalScores::fit(&[1.0, 2.0, 3.0], 2).is_err());
        assert!(NormalScores::fit(&[1.0], 0).is_err());
        let err = NormalScores::fit(&[1.0, f64::NAN, 2.0, f64::NAN], 2).unwrap_err();
        assert!(err.to_string().contains("feature 1"), "{err}");
        let m = NormalScores::fit(&[1.0, 2.0], 2).unwrap();
        assert!(m.apply(&[1.0]).is_none());
        assert!(m.apply(&[1.0, f64::INFINITY]).is_none());
    }
}
