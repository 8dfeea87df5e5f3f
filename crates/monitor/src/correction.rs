//! Multiple-testing correction across columns: a drift report tests every column at once, so without a
//! correction a 20-column table would flag an unshifted column one run in three at α = 0.05.
//!
//! Bonferroni and Holm as statsmodels' `multipletests` compute them; Benjamini–Hochberg as
//! `scipy.stats.false_discovery_control(p, method="bh")`. Ties and input order do not change the result.

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
///
/// - Bonferroni: min(1, p · m).
/// - Holm: sorted ascending, p₍ᵢ₎ · (m − i + 1), running maximum, capped at 1.
/// - Benjamini–Hochberg: sorted ascending, p₍ᵢ₎ · (m / i), running minimum from the largest, clipped to [0, 1].
///
/// NaN stays NaN for Bonferroni and sorts last (as numpy's argsort puts it) for the step-wise methods.
pub fn adjust(pvalues: &[f64], method: Correction) -> Vec<f64> {
    let m = pvalues.len();
    let mf = m as f64;
    match method {
        Correction::None => pvalues.to_vec(),
        Correction::Bonferroni => pvalues.iter().map(|p| (p * mf).min(1.0)).collect(),
        Correction::Holm | Correction::BenjaminiHochberg => {
            let mut order: Vec<usize> = (0..m).collect();
            order.sort_by(|&a, &b| pvalues[a].total_cmp(&pvalues[b]));
            let mut sorted: Vec<f64> = order.iter().map(|&i| pvalues[i]).collect();
            if method == Correction::Holm {
                let mut running = f64::NEG_INFINITY;
                for (i, p) in sorted.iter_mut().enumerate() {
                    let raw = *p * (m - i) as f64;
                    running = if raw.is_nan() { raw } else { running.max(raw) };
                    *p = if running > 1.0 { 1.0 } else { running };
                }
            } else {
                for (i, p) in sorted.iter_mut().enumerate() {
                    *p *= mf / (i + 1) as f64;
                }
                for i in (0..m.saturating_sub(1)).rev() {
                    if sorted[i + 1] < sorted[i] || sorted[i + 1].is_nan() {
                        sorted[i] = if sorted[i + 1].is_nan() {
                            sorted[i]
                        } else {
                            sorted[i + 1]
                        };
                    }
                }
                for p in sorted.iter_mut() {
                    *p = p.clamp(0.0, 1.0);
                }
            }
            let mut out = vec![0.0; m];
            for (k, &i) in order.iter().enumerate() {
                out[i] = sorted[k];
            }
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: [f64; 6] = [0.01, 0.04, 0.03, 0.005, 0.2, 0.04];

    fn close(a: &[f64], b: &[f64]) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() <= 1e-15)
    }

    #[test]
    fn matches_statsmodels_and_scipy() {
        // statsmodels multipletests(P, method="bonferroni" / "holm"); scipy false_discovery_control(P)
        assert!(close(
            &adjust(&P, Correction::Bonferroni),
            &[0.06, 0.24, 0.18, 0.03, 1.0, 0.24]
        ));
        assert!(close(
            &adjust(&P, Correction::Holm),
            &[0.05, 0.12, 0.12, 0.03, 0.2, 0.12]
        ));
        assert!(close(
            &adjust(&P, Correction::BenjaminiHochberg),
            &[0.03, 0.048, 0.048, 0.03, 0.2, 0.048]
        ));
        assert_eq!(adjust(&P, Correction::None), P.to_vec());
    }

    #[test]
    fn edge_cases() {
        for m in [
            Correction::Bonferroni,
            Correction::Holm,
            Correction::BenjaminiHochberg,
        ] {
            assert!(adjust(&[], m).is_empty());
            assert_eq!(adjust(&[0.3], m), vec![0.3]);
            assert_eq!(adjust(&[1.0, 1.0], m), vec![1.0, 1.0]);
        }
    }
}
