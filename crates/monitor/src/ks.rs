//! Two-sample Kolmogorov–Smirnov test, computed as scipy 1.17 `scipy.stats.ks_2samp(a, b,
//! alternative="two-sided", method=...)` computes it, so the numbers agree to 1e-9.
//!
//! - Statistic: one merge of the two sorted samples, evaluating both empirical CDFs at every distinct value
//!   (scipy's `searchsorted(side="right")` on the concatenated data), O(n1 + n2).
//! - Exact p-value (`Method::Exact`, or `Auto` with `max(n1, n2) <= 10_000`): the statistic is rounded to
//!   h / lcm(n1, n2); equal sizes use the closed-form alternating sum (`_compute_prob_outside_square`), unequal
//!   sizes Viehmann's stable lattice-path recursion (`_compute_outer_prob_inside_method`). A result outside
//!   [0, 1] falls back to the asymptotic p-value, as scipy does; so does `Exact` when lcm is too large.
//! - Asymptotic p-value: `kstwo.sf(d, round(n1 n2 / (n1 + n2)))`, see [`crate::special::kolmogn_sf`].
//!
//! One deviation, for bounded work on untrusted sizes: an explicitly requested exact computation whose lattice
//! recursion would exceed ~2·10⁹ steps uses the asymptotic p-value (scipy would compute for minutes).

use serde::{Deserialize, Serialize};

use crate::special::kolmogn_sf;
use crate::Error;

/// scipy's `MAX_AUTO_N`: `Auto` is exact up to this sample size.
pub const MAX_AUTO_N: usize = 10_000;

/// Upper bound on the steps of the exact lattice recursion before falling back to the asymptotic p-value.
const MAX_EXACT_WORK: f64 = 2e9;

/// How the p-value is computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// Exact when `max(n1, n2) <= 10_000` (scipy's rule), asymptotic otherwise.
    Auto,
    /// Exact distribution of the statistic (falls back to asymptotic where scipy does).
    Exact,
    /// Asymptotic distribution.
    Asymptotic,
}

/// The result of a two-sided two-sample KS test.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Ks {
    /// sup |F1 - F2|.
    pub statistic: f64,
    /// Two-sided p-value.
    pub pvalue: f64,
    /// The method actually used (never `Auto`).
    pub method: Method,
}

/// KS test on two samples (any order; NaN refused).
pub fn ks_2samp(a: &[f64], b: &[f64], method: Method) -> Result<Ks, Error> {
    check_values(a)?;
    check_values(b)?;
    let mut a = a.to_vec();
    let mut b = b.to_vec();
    a.sort_by(f64::total_cmp);
    b.sort_by(f64::total_cmp);
    ks_2samp_sorted(&a, &b, method)
}

fn check_values(x: &[f64]) -> Result<(), Error> {
    if x.is_empty() {
        return Err(Error::TooFewValues {
            what: "ks_2samp",
            needed: 1,
            got: 0,
        });
    }
    if x.iter().any(|v| v.is_nan()) {
        return Err(Error::Invalid("ks_2samp: NaN in the data".into()));
    }
    Ok(())
}

/// KS test on two samples already sorted ascending (saves the sort when a caller keeps sorted columns).
/// Refuses empty, NaN or unsorted input. O(n1 + n2) plus the p-value.
pub fn ks_2samp_sorted(a: &[f64], b: &[f64], method: Method) -> Result<Ks, Error> {
    check_values(a)?;
    check_values(b)?;
    if a.windows(2).any(|w| w[0] > w[1]) || b.windows(2).any(|w| w[0] > w[1]) {
        return Err(Error::Invalid(
            "ks_2samp_sorted: input is not sorted ascending".into(),
        ));
    }
    let d = statistic_sorted(a, b);
    let (statistic, pvalue, method) = pvalue_inner(d, a.len(), b.len(), method);
    Ok(Ks {
        statistic,
        pvalue,
        method,
    })
}

/// sup |F_a − F_b| of two sorted samples, with scipy's floating-point steps (cdf1 − cdf2 of the quotients,
/// the larger of max and −min).
fn statistic_sorted(a: &[f64], b: &[f64]) -> f64 {
    let (n1, n2) = (a.len() as f64, b.len() as f64);
    let (mut i, mut j) = (0usize, 0usize);
    let mut max_s = f64::NEG_INFINITY;
    let mut min_s = f64::INFINITY;
    while i < a.len() || j < b.len() {
        // The next distinct value of the merged data, then both counts of values <= it.
        let v = match (a.get(i), b.get(j)) {
            (Some(&x), Some(&y)) => x.min(y),
            (Some(&x), None) => x,
            (None, Some(&y)) => y,
            (None, None) => break,
        };
        while i < a.len() && a[i] <= v {
            i += 1;
        }
        while j < b.len() && b[j] <= v {
            j += 1;
        }
        let diff = i as f64 / n1 - j as f64 / n2;
        max_s = max_s.max(diff);
        min_s = min_s.min(diff);
    }
    let min_s = (-min_s).clamp(0.0, 1.0);
    if min_s > max_s {
        min_s
    } else {
        max_s
    }
}

/// The p-value of statistic `d` for sample sizes `n1`, `n2` (used when the statistic comes from a sketch).
/// Returns the p-value and the method actually used.
pub fn ks_pvalue(d: f64, n1: usize, n2: usize, method: Method) -> Result<(f64, Method), Error> {
    if n1 == 0 || n2 == 0 {
        return Err(Error::TooFewValues {
            what: "ks_pvalue",
            needed: 1,
            got: 0,
        });
    }
    if !(0.0..=1.0).contains(&d) {
        return Err(Error::Invalid(format!(
            "ks_pvalue: statistic {d} is not in [0, 1]"
        )));
    }
    let (_, p, m) = pvalue_inner(d, n1, n2, method);
    Ok((p, m))
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// (statistic as reported, p-value, method used), following `ks_2samp` after the statistic.
fn pvalue_inner(mut d: f64, n1: usize, n2: usize, method: Method) -> (f64, f64, Method) {
    let (n1u, n2u) = (n1 as u64, n2 as u64);
    let g = gcd(n1u, n2u);
    let (n1g, n2g) = (n1u / g, n2u / g);
    let mut mode = match method {
        Method::Auto => {
            if n1.max(n2) <= MAX_AUTO_N {
                Method::Exact
            } else {
                Method::Asymptotic
            }
        }
        Method::Exact => {
            if n1g as f64 >= i32::MAX as f64 / n2g as f64 {
                Method::Asymptotic
            } else {
                Method::Exact
            }
        }
        Method::Asymptotic => Method::Asymptotic,
    };
    let mut prob = f64::NAN;
    if mode == Method::Exact {
        let (ok, d2, p) = attempt_exact(n1u, n2u, g, d);
        d = d2;
        prob = p;
        if !ok {
            mode = Method::Asymptotic;
        }
    }
    if mode == Method::Asymptotic {
        let (m, n) = if n1 >= n2 {
            (n1 as f64, n2 as f64)
        } else {
            (n2 as f64, n1 as f64)
        };
        let en = m * n / (m + n);
        prob = kolmogn_sf(en.round_ties_even() as u64, d);
    }
    (d, prob.clamp(0.0, 1.0), mode)
}

/// scipy `_attempt_exact_2kssamp` for the two-sided alternative: (success, rounded d, p).
fn attempt_exact(n1: u64, n2: u64, g: u64, d: f64) -> (bool, f64, f64) {
    let lcm = (n1 / g) * n2;
    let h = (d * lcm as f64).round_ties_even() as u64;
    let d = h as f64 / lcm as f64;
    if h == 0 {
        return (true, d, 1.0);
    }
    let prob = if n1 == n2 {
        prob_outside_square(n1, h)
    } else {
        match outer_prob_inside(n1, n2, g, h) {
            Some(p) => p,
            None => return (false, d, f64::NAN),
        }
    };
    if !(0.0..=1.0).contains(&prob) {
        return (false, d, prob);
    }
    (true, d, prob)
}

/// P(D_{n,n} >= h/n) by the alternating sum in Horner form (scipy `_compute_prob_outside_square`).
fn prob_outside_square(n: u64, h: u64) -> f64 {
    let (n, h) = (n as i64, h as i64);
    let mut p = 0.0;
    let mut k = n / h;
    while k >= 0 {
        let mut p1 = 1.0;
        for j in 0..h {
            p1 = (n - k * h - j) as f64 * p1 / (n + k * h + j + 1) as f64;
        }
        p = p1 * (1.0 - p);
        k -= 1;
    }
    2.0 * p
}

/// The proportion of lattice paths from (0, 0) to (m, n) that leave the band |x/m − y/n| < h/lcm, by
/// Viehmann's recursion for 1 − p (scipy `_compute_outer_prob_inside_method`). `None` when the work bound
/// is exceeded.
fn outer_prob_inside(m: u64, n: u64, g: u64, h: u64) -> Option<f64> {
    let (m, n) = if m < n { (n, m) } else { (m, n) };
    let (m, n, g, h) = (m as i64, n as i64, g as i64, h as i64);
    let mg = m / g;
    let ng = n / g;
    let ceil_div = |a: i64, b: i64| -(-a).div_euclid(b);
    let mut minj: i64 = 0;
    let mut maxj: i64 = ceil_div(h, mg).min(n + 1);
    let mut curlen = maxj - minj;
    let len_a = (2 * maxj + 2).min(n + 1);
    if m as f64 * len_a as f64 > MAX_EXACT_WORK {
        return None;
    }
    let len_a = len_a as usize;
    let mut a = vec![1.0f64; len_a];
    for x in a.iter_mut().take(maxj as usize) {
        *x = 0.0;
    }
    for i in 1..=m {
        let lastminj = minj;
        let lastlen = curlen;
        minj = ((ng * i - h).div_euclid(mg) + 1).max(0);
        minj = minj.min(n);
        maxj = ceil_div(ng * i + h, mg).min(n + 1);
        if maxj <= minj {
            return Some(1.0);
        }
        let mut val = if minj == 0 { 0.0 } else { 1.0 };
        for jj in 0..(maxj - minj) {
            let j = jj + minj;
            val = (a[(jj + minj - lastminj) as usize] * i as f64 + val * j as f64) / (i + j) as f64;
            a[jj as usize] = val;
        }
        curlen = maxj - minj;
        if lastlen > curlen {
            let lo = (maxj - minj) as usize;
            let hi = ((maxj - minj + (lastlen - curlen)) as usize).min(len_a);
            for x in a[lo..hi].iter_mut() {
                *x = 1.0;
            }
        }
    }
    Some(a[(maxj - minj - 1) as usize])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol * b.abs().max(1.0)
    }

    #[test]
    fn refuses_empty_and_nan() {
        assert!(ks_2samp(&[], &[1.0], Method::Auto).is_err());
        assert!(ks_2samp(&[1.0], &[], Method::Auto).is_err());
        assert!(ks_2samp(&[1.0, f64::NAN], &[1.0], Method::Auto).is_err());
        assert!(ks_2samp_sorted(&[2.0, 1.0], &[1.0], Method::Auto).is_err());
        assert!(ks_pvalue(1.5, 3, 4, Method::Auto).is_err());
        assert!(ks_pvalue(0.5, 0, 4, Method::Auto).is_err());
    }

    #[test]
    fn identical_samples_give_zero_and_one() {
        let a: Vec<f64> = (0..50).map(|i| (i * 7 % 13) as f64).collect();
        for m in [Method::Auto, Method::Exact, Method::Asymptotic] {
            let r = ks_2samp(&a, &a, m).unwrap();
            assert_eq!(r.statistic, 0.0);
            assert_eq!(r.pvalue, 1.0);
        }
        // All ties: one value in both samples.
        let r = ks_2samp(&[3.0; 10], &[3.0; 7], Method::Auto).unwrap();
        assert_eq!((r.statistic, r.pvalue), (0.0, 1.0));
    }

    #[test]
    fn matches_scipy_small_cases() {
        // scipy.stats.ks_2samp(a, b, method=...) values.
        let a = [0.1, 0.4, 0.7, 1.5, 2.2, 3.1, 3.3, 4.0];
        let b = [0.5, 1.1, 2.8, 3.5, 4.2, 5.0, 5.5, 6.1, 7.0, 7.7];
        let r = ks_2samp(&a, &b, Method::Auto).unwrap();
        assert!(close(r.statistic, 0.6, 1e-12), "{r:?}");
        assert!(close(r.pvalue, 0.04986516751222633, 1e-9), "{r:?}");
        assert_eq!(r.method, Method::Exact);
        let r = ks_2samp(&a, &b, Method::Asymptotic).unwrap();
        assert!(close(r.pvalue, 0.06740000000000002, 1e-9), "{r:?}");
        assert_eq!(r.method, Method::Asymptotic);
        // Equal sizes (square method).
        let c = [0.3, 0.9, 1.2, 1.8, 2.5, 2.9, 3.6, 4.1];
        let r = ks_2samp(&a, &c, Method::Exact).unwrap();
        assert_eq!(r.statistic, 0.25);
        assert!(close(r.pvalue, 0.98010878010878, 1e-9), "{r:?}");
    }

    #[test]
    fn million_rows_sorted_is_linear_and_asymptotic() {
        let n = 1_000_000;
        let a: Vec<f64> = (0..n).map(|i| i as f64 / n as f64).collect();
        let b: Vec<f64> = (0..n)
            .map(|i| (i as f64 + 0.5) / n as f64 + 0.004)
            .collect();
        let r = ks_2samp_sorted(&a, &b, Method::Auto).unwrap();
        assert_eq!(r.method, Method::Asymptotic);
        assert!((r.statistic - 0.004).abs() < 1e-5, "{r:?}");
        assert!(r.pvalue < 1e-6, "{r:?}");
    }
}
