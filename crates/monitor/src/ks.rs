//! Two-sample Kolmogorov–Smirnov test, computed as scipy 1.17 `scipy.stats.ks_2samp` computes it.
//! (Stub: signatures fixed, body being written.)

use serde::{Deserialize, Serialize};

use crate::Error;

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
    let mut a = a.to_vec();
    let mut b = b.to_vec();
    a.sort_by(f64::total_cmp);
    b.sort_by(f64::total_cmp);
    ks_2samp_sorted(&a, &b, method)
}

/// KS test on two samples already sorted ascending (saves the sort when a caller keeps sorted columns).
pub fn ks_2samp_sorted(a: &[f64], b: &[f64], method: Method) -> Result<Ks, Error> {
    let _ = (a, b, method);
    Err(Error::Invalid("ks_2samp: not yet implemented".into()))
}

/// The p-value of statistic `d` for sample sizes `n1`, `n2` (used when the statistic comes from a sketch).
pub fn ks_pvalue(d: f64, n1: usize, n2: usize, method: Method) -> Result<(f64, Method), Error> {
    let _ = (d, n1, n2, method);
    Err(Error::Invalid("ks_pvalue: not yet implemented".into()))
}
