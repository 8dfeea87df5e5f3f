//! Shapiro–Wilk normality test (Royston 1992/1995, algorithm AS R94). (Stub: being written.)

use serde::{Deserialize, Serialize};

use crate::Error;

/// The W statistic and its p-value.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ShapiroWilk {
    /// W in (0, 1]; small values mean "not normal".
    pub w: f64,
    /// p-value of the null hypothesis that the sample is normal.
    pub pvalue: f64,
}

/// Shapiro–Wilk on 3 ≤ n ≤ 5000 values (any order; NaN refused).
pub fn shapiro_wilk(x: &[f64]) -> Result<ShapiroWilk, Error> {
    let _ = x;
    Err(Error::Invalid("shapiro_wilk: not yet implemented".into()))
}
