//! Special functions shared by the statistical tests of several pillars: log-gamma, the regularised incomplete
//! gamma functions, the chi-square survival function and the normal distribution.
//!
//! Each follows the algorithm scipy 1.17 uses (Cephes/xsf), because the drift numbers must equal scipy's to
//! 1e-9 (`aegis-monitor`), and the audit's balance test uses the same chi-square tail. Plain `f64`, no IO.

/// ln(2π)/2.
const LN_SQRT_2PI: f64 = 0.918_938_533_204_672_8;
/// exp() of anything below this underflows (Cephes MAXLOG).
const MAXLOG: f64 = 7.097_827_128_933_84e2;
/// Lanczos coefficients (g = 7, n = 9).
const LANCZOS: [f64; 9] = [
    0.999_999_999_999_809_9,
    676.520_368_121_885_1,
    -1_259.139_216_722_402_8,
    771.323_428_777_653_1,
    -176.615_029_162_140_6,
    12.507_343_278_686_905,
    -0.138_571_095_265_720_12,
    9.984_369_578_019_572e-6,
    1.505_632_735_149_311_6e-7,
];

/// Natural log of the gamma function for `x > 0` (NaN otherwise). Lanczos approximation below 10, Stirling's
/// series above; relative error about 1e-15.
pub fn ln_gamma(x: f64) -> f64 {
    if x.is_nan() || x <= 0.0 {
        return f64::NAN;
    }
    if x.is_infinite() {
        return f64::INFINITY;
    }
    if x == 1.0 || x == 2.0 {
        return 0.0;
    }
    if x < 0.5 {
        // Reflection keeps the Lanczos sum in its accurate range: Γ(x) = Γ(x + 1) / x.
        return ln_gamma(x + 1.0) - x.ln();
    }
    if x >= 10.0 {
        // Stirling: (x - 1/2) ln x - x + ln √(2π) + Σ B_2k / (2k (2k-1) x^(2k-1)).
        let r = 1.0 / x;
        let r2 = r * r;
        let series = r
            * (1.0 / 12.0
                + r2 * (-1.0 / 360.0
                    + r2 * (1.0 / 1260.0
                        + r2 * (-1.0 / 1680.0
                            + r2 * (1.0 / 1188.0
                                + r2 * (-691.0 / 360_360.0 + r2 * (1.0 / 156.0)))))));
        return (x - 0.5) * x.ln() - x + LN_SQRT_2PI + series;
    }
    let z = x - 1.0;
    let mut sum = LANCZOS[0];
    for (i, c) in LANCZOS.iter().enumerate().skip(1) {
        sum += c / (z + i as f64);
    }
    let t = z + 7.5;
    LN_SQRT_2PI + (z + 0.5) * t.ln() - t + sum.ln()
}

/// The prefactor x^a e^(-x) / Γ(a) of the incomplete gamma functions; 0 where Cephes underflows.
fn gamma_prefactor(a: f64, x: f64) -> f64 {
    let ax = a * x.ln() - x - ln_gamma(a);
    if ax < -MAXLOG {
        return 0.0;
    }
    ax.exp()
}

/// Power series for P(a, x) without the prefactor.
fn gamma_series(a: f64, x: f64) -> f64 {
    let mut ap = a;
    let mut del = 1.0 / a;
    let mut sum = del;
    for _ in 0..100_000 {
        ap += 1.0;
        del *= x / ap;
        sum += del;
        if del.abs() < sum.abs() * 1e-17 {
            break;
        }
    }
    sum
}

/// Continued fraction for Q(a, x) without the prefactor (modified Lentz).
fn gamma_cf(a: f64, x: f64) -> f64 {
    const FPMIN: f64 = 1e-300;
    let mut b = x + 1.0 - a;
    let mut c = 1.0 / FPMIN;
    let mut d = 1.0 / b;
    let mut h = d;
    for i in 1..100_000 {
        let an = -(i as f64) * (i as f64 - a);
        b += 2.0;
        d = an * d + b;
        if d.abs() < FPMIN {
            d = FPMIN;
        }
        c = b + an / c;
        if c.abs() < FPMIN {
            c = FPMIN;
        }
        d = 1.0 / d;
        let del = d * c;
        h *= del;
        if (del - 1.0).abs() < 1e-16 {
            break;
        }
    }
    h
}

/// Regularised lower incomplete gamma P(a, x) = γ(a, x) / Γ(a), for `a > 0`, `x >= 0` (NaN otherwise).
/// Series for `x < a + 1`, continued fraction otherwise (Numerical Recipes `gammp`).
pub fn gamma_p(a: f64, x: f64) -> f64 {
    if a.is_nan() || x.is_nan() || a <= 0.0 || x < 0.0 {
        return f64::NAN;
    }
    if x == 0.0 {
        return 0.0;
    }
    if x.is_infinite() {
        return 1.0;
    }
    if x < a + 1.0 {
        gamma_prefactor(a, x) * gamma_series(a, x)
    } else {
        1.0 - gamma_prefactor(a, x) * gamma_cf(a, x)
    }
}

/// Regularised upper incomplete gamma Q(a, x) = 1 − P(a, x) (Cephes `igamc`), for `a > 0`, `x >= 0` (NaN
/// otherwise). Relative error about 1e-14 in the tail, which is where the chi-square p-values live.
pub fn gamma_q(a: f64, x: f64) -> f64 {
    if a.is_nan() || x.is_nan() || a <= 0.0 || x < 0.0 {
        return f64::NAN;
    }
    if x == 0.0 {
        return 1.0;
    }
    if x.is_infinite() {
        return 0.0;
    }
    if x < a + 1.0 {
        1.0 - gamma_prefactor(a, x) * gamma_series(a, x)
    } else {
        gamma_prefactor(a, x) * gamma_cf(a, x)
    }
}

/// Survival function of the chi-square distribution with `dof` degrees of freedom (`scipy.stats.chi2.sf`,
/// i.e. Cephes `chdtrc`): Q(dof/2, x/2). 1 for `x <= 0`; NaN for `dof == 0` or NaN `x`.
pub fn chi2_sf(x: f64, dof: f64) -> f64 {
    if x.is_nan() || dof.is_nan() || dof <= 0.0 {
        return f64::NAN;
    }
    if x <= 0.0 {
        return 1.0;
    }
    gamma_q(dof / 2.0, x / 2.0)
}

/// Complementary error function erfc(x) = Q(1/2, x²) for x ≥ 0 and 2 − erfc(−x) below.
pub fn erfc(x: f64) -> f64 {
    if x.is_nan() {
        return f64::NAN;
    }
    if x >= 0.0 {
        gamma_q(0.5, x * x)
    } else {
        2.0 - gamma_q(0.5, x * x)
    }
}

/// Standard normal cumulative distribution function Φ(z).
pub fn normal_cdf(z: f64) -> f64 {
    0.5 * erfc(-z / std::f64::consts::SQRT_2)
}

/// Standard normal survival function 1 − Φ(z), accurate in the upper tail.
pub fn normal_sf(z: f64) -> f64 {
    0.5 * erfc(z / std::f64::consts::SQRT_2)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol * b.abs().max(1e-300)
    }

    #[test]
    fn ln_gamma_known_values() {
        // scipy.special.gammaln
        let cases = [
            (0.5, 0.5723649429247),
            (1.5, -0.12078223763524526),
            (3.7, 1.428072326665388),
            (10.0, 12.801827480081469),
            (25.3, 55.746181183584596),
            (1000.5, 5908.674175848678),
            (1e-3, 6.907178885383853),
        ];
        for (x, want) in cases {
            assert!(
                close(ln_gamma(x), want, 1e-14),
                "ln_gamma({x}) = {} want {want}",
                ln_gamma(x)
            );
        }
        assert!(ln_gamma(0.0).is_nan());
        assert!(ln_gamma(-1.0).is_nan());
    }

    #[test]
    fn incomplete_gamma_known_values() {
        // scipy.special.gammaincc / gammainc
        let q = [
            (0.5, 0.1, 0.6547208460185768),
            (2.0, 3.0, 0.1991482734714558),
            (2.5, 30.0, 1.2154569777183007e-11),
            (10.0, 2.0, 0.9999535019249828),
            (50.0, 45.0, 0.7531979655998298),
            (1.5, 400.0, 4.327470814385081e-173),
        ];
        for (a, x, want) in q {
            assert!(
                close(gamma_q(a, x), want, 1e-12),
                "Q({a},{x}) = {:e} want {want:e}",
                gamma_q(a, x)
            );
            assert!((gamma_p(a, x) + gamma_q(a, x) - 1.0).abs() < 1e-15);
        }
        assert_eq!(gamma_q(2.0, 0.0), 1.0);
        assert!(gamma_q(-1.0, 1.0).is_nan());
    }

    #[test]
    fn chi2_sf_known_values() {
        // scipy.stats.chi2.sf
        let cases = [
            (3.841458820694124, 1.0, 0.04999999999999989),
            (10.0, 3.0, 0.01856613546304325),
            (250.0, 4.0, 6.509689997375721e-53),
            (0.5, 7.0, 0.9994464813904249),
        ];
        for (x, k, want) in cases {
            assert!(
                close(chi2_sf(x, k), want, 1e-12),
                "chi2_sf({x},{k}) = {:e} want {want:e}",
                chi2_sf(x, k)
            );
        }
        assert_eq!(chi2_sf(0.0, 2.0), 1.0);
        assert!(chi2_sf(1.0, 0.0).is_nan());
    }

    #[test]
    fn normal_known_values() {
        // scipy.stats.norm.cdf / sf
        assert!(close(normal_cdf(1.0), 0.8413447460685429, 1e-14));
        assert!(close(normal_cdf(-2.5), 0.006209665325776132, 1e-13));
        assert!(close(normal_sf(8.0), 6.22096057427174e-16, 1e-12));
        assert_eq!(normal_cdf(0.0), 0.5);
    }
}
