//! Shapiro–Wilk normality test, computed with Royston's algorithm (Royston 1992; Remark AS R94, Royston 1995) —
//! the algorithm behind R's `shapiro.test` and `scipy.stats.shapiro`.
//!
//! Why it is here: the PRADA extraction detector ([`crate::prada`]) asks whether the distances between a client's
//! queries look normally distributed; synthetic attack queries do not. The test is also a general-purpose
//! statistic for monitoring.
//!
//! How: the expected normal order statistics `m_i` are approximated by `Φ⁻¹((i − 3/8)/(n + 1/4))`; the two
//! outermost weights come from Royston's polynomials in `1/√n` and the rest are `m_i` rescaled so that the weights
//! have unit norm (for n = 3 the weight is exactly `1/√2`). `W` is the squared correlation between the sorted data
//! and the weights, computed as `1 − W` first to keep precision when `W` is near 1. The p-value is exact for n = 3
//! (`1 − (6/π)·acos(√W)`); for 4 ≤ n ≤ 11 Royston's transform `−ln(γ − ln(1 − W))` and for 12 ≤ n ≤ 5000
//! `ln(1 − W)` are treated as normal with mean and standard deviation given by his polynomials in `n` and `ln n`.
//!
//! The normal quantile is AS 111 (`PPND`) and the upper tail is AS 66 (`ALNORM`), the functions that AS R94
//! itself uses; using them makes our numbers equal those of
//! scipy 1.17's double-precision Cython port of swilk (identical to the last bit on all 48 test samples; older
//! scipy ran the Fortran swilk.f, partly in single precision). R instead computes `m_i` with a full-precision
//! quantile (AS 241); AS 111 is off by up to ≈5e-6, which moved W by < 1e-9 on our test samples, far below the
//! test's own approximation error. AS 66's relative error in the tail is below 1e-10.
//!
//! Assumes 3 ≤ n ≤ 5000 finite values with a non-zero range; anything else is an [`Error`].

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

/// Largest sample Royston's approximation covers.
pub const MAX_N: usize = 5000;

/// Smallest sample the test is defined for.
pub const MIN_N: usize = 3;

/// Shapiro–Wilk on 3 ≤ n ≤ 5000 values (any order; NaN refused).
pub fn shapiro_wilk(x: &[f64]) -> Result<ShapiroWilk, Error> {
    let n = x.len();
    if n < MIN_N {
        return Err(Error::TooFewValues {
            what: "Shapiro-Wilk",
            needed: MIN_N,
            got: n,
        });
    }
    if n > MAX_N {
        return Err(Error::Invalid(format!(
            "Shapiro-Wilk: at most {MAX_N} values are supported, got {n}"
        )));
    }
    if x.iter().any(|v| !v.is_finite()) {
        return Err(Error::Invalid(
            "Shapiro-Wilk: values must be finite (NaN or infinity found)".into(),
        ));
    }
    // Shift by a value from the middle of the sample, as scipy does (gh-15777): W is shift-invariant, and the
    // shift keeps `x / range` well scaled when the data sit far from zero.
    let shift = x[n / 2];
    let mut y: Vec<f64> = x.iter().map(|v| v - shift).collect();
    y.sort_by(f64::total_cmp);
    let a = coefficients(n);
    let (w, w1) = statistic(&y, &a)?;
    Ok(ShapiroWilk {
        w,
        pvalue: pvalue(n, w, w1),
    })
}

/// Royston's weights `a_1 … a_{n/2}` for a sample of size `n ≥ 3` (positive-first sign convention of AS R94:
/// `a_1 > 0` multiplies the largest minus the smallest value).
///
/// Exposed so callers testing many samples of one size can see what the test uses; not needed otherwise.
pub fn coefficients(n: usize) -> Vec<f64> {
    let nn2 = n / 2;
    if n < MIN_N {
        return vec![std::f64::consts::FRAC_1_SQRT_2; nn2];
    }
    if n == 3 {
        return vec![std::f64::consts::FRAC_1_SQRT_2];
    }
    let an = n as f64;
    let an25 = an + 0.25;
    let mut m: Vec<f64> = (0..nn2)
        .map(|i| ppnd((i as f64 + 1.0 - 0.375) / an25))
        .collect();
    let summ2 = 2.0 * m.iter().map(|v| v * v).sum::<f64>();
    let ssumm2 = summ2.sqrt();
    let rsn = 1.0 / an.sqrt();
    let a1 = poly(&C1, rsn) - m[0] / ssumm2;
    let (first_scaled, fac) = if n > 5 {
        let a2 = -m[1] / ssumm2 + poly(&C2, rsn);
        let fac = ((summ2 - 2.0 * m[0] * m[0] - 2.0 * m[1] * m[1])
            / (1.0 - 2.0 * a1 * a1 - 2.0 * a2 * a2))
            .sqrt();
        m[1] = a2;
        (2, fac)
    } else {
        let fac = ((summ2 - 2.0 * m[0] * m[0]) / (1.0 - 2.0 * a1 * a1)).sqrt();
        (1, fac)
    };
    m[0] = a1;
    for v in m.iter_mut().skip(first_scaled) {
        *v *= -1.0 / fac;
    }
    m
}

/// W and 1 − W for sorted (and shifted) data `x` with weights `a` (AS R94, complete samples).
fn statistic(x: &[f64], a: &[f64]) -> Result<(f64, f64), Error> {
    let n = x.len();
    let range = x[n - 1] - x[0];
    if range.is_nan() || range < 1e-19 {
        return Err(Error::Invalid(
            "Shapiro-Wilk: the values have zero range (all equal)".into(),
        ));
    }
    // Signed weight of the i-th order statistic: −a_i in the lower half, +a_{n+1−i} in the upper, 0 in the middle.
    let weight = |i: usize| -> f64 {
        let j = n - 1 - i;
        match i.cmp(&j) {
            std::cmp::Ordering::Less => -a[i],
            std::cmp::Ordering::Greater => a[j],
            std::cmp::Ordering::Equal => 0.0,
        }
    };
    let mut sa = 0.0;
    let mut sx = 0.0;
    for (i, xi) in x.iter().enumerate() {
        sa += weight(i);
        sx += xi / range;
    }
    let nf = n as f64;
    sa /= nf;
    sx /= nf;
    let (mut ssa, mut ssx, mut sax) = (0.0, 0.0, 0.0);
    for (i, xi) in x.iter().enumerate() {
        let asa = weight(i) - sa;
        let xsx = xi / range - sx;
        ssa += asa * asa;
        ssx += xsx * xsx;
        sax += asa * xsx;
    }
    let ssassx = (ssa * ssx).sqrt();
    let w1 = (ssassx - sax) * (ssassx + sax) / (ssa * ssx);
    if !w1.is_finite() {
        return Err(Error::Invalid(
            "Shapiro-Wilk: the statistic is not finite (values too extreme)".into(),
        ));
    }
    Ok((1.0 - w1, w1))
}

/// p-value for W (with w1 = 1 − W computed directly) at sample size n.
fn pvalue(n: usize, w: f64, w1: f64) -> f64 {
    if n == 3 {
        // Exact: W ≥ 3/4 in theory; rounding can take it a hair below.
        if w < 0.75 {
            return 0.0;
        }
        let pw = 1.0 - (6.0 / std::f64::consts::PI) * w.sqrt().acos();
        return pw.clamp(0.0, 1.0);
    }
    let an = n as f64;
    let mut y = w1.ln();
    let (m, s) = if n <= 11 {
        let gamma = poly(&G, an);
        if y >= gamma {
            // Beyond the transform's support: W is so small the p-value is effectively zero.
            return SMALL;
        }
        y = -(gamma - y).ln();
        (poly(&C3, an), poly(&C4, an).exp())
    } else {
        let ln_n = an.ln();
        (poly(&C5, ln_n), poly(&C6, ln_n).exp())
    };
    alnorm_upper((y - m) / s)
}

// Royston's polynomial coefficients (AS R94), constant term first.
const C1: [f64; 6] = [0.0, 0.221157, -0.147981, -2.07119, 4.434685, -2.706056];
const C2: [f64; 6] = [0.0, 0.042981, -0.293762, -1.752461, 5.682633, -3.582633];
const C3: [f64; 4] = [0.5440, -0.39978, 0.025054, -0.6714e-3];
const C4: [f64; 4] = [1.3822, -0.77857, 0.062767, -0.20322e-2];
const C5: [f64; 4] = [-1.5861, -0.31082, -0.083751, 0.38915e-2];
const C6: [f64; 3] = [-0.4803, -0.082676, 0.30302e-2];
const G: [f64; 2] = [-2.273, 0.459];
const SMALL: f64 = 1e-19;

/// `c[0] + c[1]·x + c[2]·x² + …` (Horner).
fn poly(c: &[f64], x: f64) -> f64 {
    c.iter().rev().fold(0.0, |acc, &ci| acc * x + ci)
}

/// Normal quantile, AS 111 (Beasley & Springer 1977), as used by AS R94. Absolute error ≲ 5e-6 over (1e-5, 1−1e-5);
/// plenty for Royston's weights, whose fits were made with it. Returns 0 outside (0, 1).
pub(crate) fn ppnd(p: f64) -> f64 {
    const A: [f64; 4] = [
        2.50662823884,
        -18.61500062529,
        41.39119773534,
        -25.44106049637,
    ];
    const B: [f64; 4] = [
        -8.47351093090,
        23.08336743743,
        -21.06224101826,
        3.13082909833,
    ];
    const C: [f64; 4] = [-2.78718931138, -2.29796479134, 4.85014127135, 2.32121276858];
    const D: [f64; 2] = [3.54388924762, 1.63706781897];
    let q = p - 0.5;
    if q.abs() <= 0.42 {
        let r = q * q;
        let num = q * (((A[3] * r + A[2]) * r + A[1]) * r + A[0]);
        let den = (((B[3] * r + B[2]) * r + B[1]) * r + B[0]) * r + 1.0;
        return num / den;
    }
    let mut r = if q > 0.0 { 1.0 - p } else { p };
    if r > 0.0 {
        r = (-r.ln()).sqrt();
    } else {
        return 0.0;
    }
    let t = (((C[3] * r + C[2]) * r + C[1]) * r + C[0]) / ((D[1] * r + D[0]) * r + 1.0);
    if q < 0.0 {
        -t
    } else {
        t
    }
}

/// Upper tail of the standard normal, `P(Z > x)`, AS 66 (Hill 1973) with the 2001 extended range, as used by
/// AS R94. Relative error below 1e-10 wherever the result is representable.
fn alnorm_upper(x: f64) -> f64 {
    const LTONE: f64 = 7.0;
    const UTZERO: f64 = 38.0;
    const CON: f64 = 1.28;
    let mut upper = true;
    let mut z = x;
    if z.is_nan() {
        return f64::NAN;
    }
    if z <= 0.0 {
        upper = false;
        z = -z;
    }
    if !(z <= LTONE || (upper && z <= UTZERO)) {
        return if upper { 0.0 } else { 1.0 };
    }
    let y = 0.5 * z * z;
    let tail = if z <= CON {
        0.5 - z
            * (0.398942280444
                - 0.399903438504 * y
                    / (y + 5.75885480458
                        - 29.8213557808
                            / (y + 2.62433121679 + 48.6959930692 / (y + 5.92885724438))))
    } else {
        0.398942280385 * (-y).exp()
            / (z - 3.8052e-8
                + 1.00000615302
                    / (z + 3.98064794e-4
                        + 1.98615381364
                            / (z - 0.151679116635
                                + 5.29330324926
                                    / (z + 4.8385912808
                                        - 15.1508972451
                                            / (z + 0.742380924027
                                                + 30.789933034 / (z + 3.99019417011))))))
    };
    if upper {
        tail
    } else {
        1.0 - tail
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 64-bit LCG (Knuth's MMIX constants) mirrored in the Python script below, so the samples are the same.
    struct Lcg(u64);
    impl Lcg {
        fn next_u64(&mut self) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            self.0
        }
        fn unif(&mut self) -> f64 {
            (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
        }
        fn normal(&mut self) -> f64 {
            let u1 = self.unif();
            let u2 = self.unif();
            (-2.0 * (1.0 - u1).ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
        }
    }

    fn sample(kind: &str, n: usize, seed: u64) -> Vec<f64> {
        let mut r = Lcg(seed);
        (0..n)
            .map(|_| match kind {
                "normal" => r.normal(),
                "uniform" => r.unif(),
                "exp" => -(1.0 - r.unif()).ln(),
                // Python's round() is half-to-even; exact halves have probability ~0 for these draws.
                "ties" => (r.normal() * 2.0).round() / 2.0,
                _ => unreachable!(),
            })
            .collect()
    }

    /// (kind, n, seed, W, p) from scipy 1.17 `scipy.stats.shapiro`, generated by this script:
    ///
    /// ```python
    /// import math, scipy.stats as st
    /// M = (1 << 64) - 1
    /// class Lcg:
    ///     def __init__(s, seed): s.s = seed & M
    ///     def next_u64(s):
    ///         s.s = (s.s * 6364136223846793005 + 1442695040888963407) & M; return s.s
    ///     def unif(s): return (s.next_u64() >> 11) * (1.0 / (1 << 53))
    ///     def normal(s):
    ///         u1 = s.unif(); u2 = s.unif()
    ///         return math.sqrt(-2.0 * math.log(1.0 - u1)) * math.cos(2.0 * math.pi * u2)
    /// def sample(kind, n, seed):
    ///     r = Lcg(seed)
    ///     if kind == "normal": return [r.normal() for _ in range(n)]
    ///     if kind == "uniform": return [r.unif() for _ in range(n)]
    ///     if kind == "exp": return [-math.log(1.0 - r.unif()) for _ in range(n)]
    ///     if kind == "ties": return [round(r.normal() * 2.0) / 2.0 for _ in range(n)]
    /// kinds = ["normal", "uniform", "exp", "ties"]
    /// for n in [3, 4, 5, 6, 7, 11, 12, 20, 50, 200, 1000, 5000]:
    ///     for kind in kinds:
    ///         seed = n * 10 + kinds.index(kind)
    ///         w, p = st.shapiro(sample(kind, n, seed))
    ///         print(kind, n, seed, float(w), float(p))
    /// ```
    const SCIPY: &[(&str, usize, u64, f64, f64)] = &[
        ("normal", 3, 30, 0.9480764075986823, 0.5609481889959689),
        ("uniform", 3, 31, 0.8690226277649659, 0.2927527746244224),
        ("exp", 3, 32, 0.7566587865787658, 0.014751089972530718),
        ("ties", 3, 33, 0.9868421052631581, 0.7804408148790196),
        ("normal", 4, 40, 0.9897252882524907, 0.956056034915902),
        ("uniform", 4, 41, 0.9594859148583177, 0.7756739755532538),
        ("exp", 4, 42, 0.9646626521296217, 0.8082051480407898),
        ("ties", 4, 43, 0.9109898478225553, 0.48766231384768854),
        ("normal", 5, 50, 0.8968607545003698, 0.39277897068674317),
        ("uniform", 5, 51, 0.9403528074513676, 0.668433694997824),
        ("exp", 5, 52, 0.9003772698658694, 0.4119742164259233),
        ("ties", 5, 53, 0.9075758351634728, 0.4531605896317893),
        ("normal", 6, 60, 0.9712774199298686, 0.9009031184295717),
        ("uniform", 6, 61, 0.8884268639990694, 0.3100270799114921),
        ("exp", 6, 62, 0.802148742895528, 0.06144398219255924),
        ("ties", 6, 63, 0.8181583763775266, 0.08506694572546732),
        ("normal", 7, 70, 0.8549223617183133, 0.13625761986590917),
        ("uniform", 7, 71, 0.8945972079395188, 0.29951191151323325),
        ("exp", 7, 72, 0.7935508062769989, 0.03534668888348295),
        ("ties", 7, 73, 0.8877086631182824, 0.2629231696569212),
        ("normal", 11, 110, 0.8706377849169293, 0.07899837196910915),
        ("uniform", 11, 111, 0.8315011224374904, 0.024430063807359154),
        ("exp", 11, 112, 0.9042225237823156, 0.208017158452513),
        ("ties", 11, 113, 0.9492909510080496, 0.6349054328233061),
        ("normal", 12, 120, 0.8937507750864974, 0.131728467623017),
        ("uniform", 12, 121, 0.9259645290789358, 0.33929228117444754),
        ("exp", 12, 122, 0.7631178113780679, 0.0036759136327447536),
        ("ties", 12, 123, 0.9282341159451951, 0.3617704805798081),
        ("normal", 20, 200, 0.9613001780069317, 0.5701401715665184),
        ("uniform", 20, 201, 0.9589627504816629, 0.5233415044812404),
        ("exp", 20, 202, 0.6572410183352552, 1.2264917219038083e-05),
        ("ties", 20, 203, 0.9433285667677148, 0.27693021544779933),
        ("normal", 50, 500, 0.9723743972218896, 0.28834093174644426),
        (
            "uniform",
            50,
            501,
            0.9239180087909711,
            0.0032765585934315285,
        ),
        ("exp", 50, 502, 0.7677578784039328, 1.710065199815385e-07),
        ("ties", 50, 503, 0.9562163296004904, 0.06173717778849595),
        ("normal", 200, 2000, 0.9892320491978709, 0.13771819010100816),
        (
            "uniform",
            200,
            2001,
            0.9380958117779625,
            1.5699544100527497e-07,
        ),
        ("exp", 200, 2002, 0.8403346222377985, 1.4945237774786925e-13),
        ("ties", 200, 2003, 0.9724852096783794, 0.0005787084746383418),
        (
            "normal",
            1000,
            10000,
            0.9974446936676679,
            0.11863807132640031,
        ),
        (
            "uniform",
            1000,
            10001,
            0.9526338621496038,
            2.010089890659343e-17,
        ),
        (
            "exp",
            1000,
            10002,
            0.8294401970065577,
            2.4536197923645734e-31,
        ),
        (
            "ties",
            1000,
            10003,
            0.9788870777017157,
            7.21383927693615e-11,
        ),
        (
            "normal",
            5000,
            50000,
            0.9996226093786341,
            0.47667149732767716,
        ),
        (
            "uniform",
            5000,
            50001,
            0.9529311448542916,
            2.2453680600259277e-37,
        ),
        (
            "exp",
            5000,
            50002,
            0.8135284854606498,
            2.841343982653495e-60,
        ),
        (
            "ties",
            5000,
            50003,
            0.9786152214755093,
            8.582437161614193e-27,
        ),
    ];

    #[test]
    fn agrees_with_scipy() {
        let mut worst_w = 0.0f64;
        let mut worst_p = 0.0f64;
        for &(kind, n, seed, w, p) in SCIPY {
            let x = sample(kind, n, seed);
            let r = shapiro_wilk(&x).unwrap();
            let dw = (r.w - w).abs();
            let dp = (r.pvalue - p).abs() / p.max(1e-300);
            worst_w = worst_w.max(dw);
            worst_p = worst_p.max(dp);
            assert!(dw < 1e-7, "{kind} n={n}: W {} vs scipy {w}", r.w);
            assert!(dp < 1e-6, "{kind} n={n}: p {} vs scipy {p}", r.pvalue);
        }
        eprintln!("worst |ΔW| = {worst_w:e}, worst relative Δp = {worst_p:e}");
    }

    /// Shapiro & Wilk (1965), weights in pounds of 11 men: W = 0.79, significant at the 1% level. Royston's
    /// approximate weights give 0.7888 (scipy: 0.7888146948631716, p = 0.006703814061898823).
    #[test]
    fn shapiro_wilk_1965_weights_example() {
        let x = [
            148.0, 154.0, 158.0, 160.0, 161.0, 162.0, 166.0, 170.0, 182.0, 195.0, 236.0,
        ];
        let r = shapiro_wilk(&x).unwrap();
        assert!((r.w - 0.79).abs() < 0.005, "W = {}", r.w);
        assert!(r.pvalue < 0.01);
        assert!((r.w - 0.7888146948631716).abs() < 1e-12);
        assert!((r.pvalue - 0.006703814061898823).abs() < 1e-12);
    }

    /// n = 3 has a closed form: a = 1/√2, W = (x₃ − x₁)²/(2·SS), p = 1 − (6/π)·acos(√W).
    #[test]
    fn exact_for_three_values() {
        let r = shapiro_wilk(&[4.0, 1.0, 2.0]).unwrap();
        let w = 4.5 / (42.0 / 9.0);
        assert!((r.w - w).abs() < 1e-14);
        let p = 1.0 - 6.0 / std::f64::consts::PI * w.sqrt().acos();
        assert!((r.pvalue - p).abs() < 1e-14);
        // Equally spaced points are as normal as three points can be.
        let r = shapiro_wilk(&[1.0, 2.0, 3.0]).unwrap();
        assert!((r.w - 1.0).abs() < 1e-14 && (r.pvalue - 1.0).abs() < 1e-12);
    }

    #[test]
    fn coefficients_have_unit_norm_and_known_values() {
        for n in [4usize, 5, 6, 10, 11, 12, 50, 999, 5000] {
            let a = coefficients(n);
            assert_eq!(a.len(), n / 2);
            let norm: f64 = 2.0 * a.iter().map(|v| v * v).sum::<f64>();
            assert!((norm - 1.0).abs() < 1e-9, "n={n}: {norm}");
            assert!(a.windows(2).all(|w| w[0] > w[1]), "n={n}: decreasing");
        }
        // Shapiro & Wilk's exact table for n = 10: a₁ = 0.5739, a₂ = 0.3291; Royston's approximation is within 1e-3.
        let a = coefficients(10);
        assert!(
            (a[0] - 0.5739).abs() < 1e-3 && (a[1] - 0.3291).abs() < 1e-3,
            "{a:?}"
        );
    }

    #[test]
    fn invariant_to_order_shift_and_scale() {
        let x = sample("exp", 40, 7);
        let base = shapiro_wilk(&x).unwrap();
        let mut y: Vec<f64> = x.iter().map(|v| 1e6 + 3.0 * v).collect();
        y.reverse();
        let r = shapiro_wilk(&y).unwrap();
        assert!((r.w - base.w).abs() < 1e-9 && (r.pvalue - base.pvalue).abs() < 1e-8);
    }

    #[test]
    fn normal_data_pass_and_skewed_data_fail() {
        let normal = shapiro_wilk(&sample("normal", 500, 99)).unwrap();
        assert!(normal.pvalue > 0.05 && normal.w > 0.99, "{normal:?}");
        let skewed = shapiro_wilk(&sample("exp", 500, 99)).unwrap();
        assert!(skewed.pvalue < 1e-10 && skewed.w < 0.9, "{skewed:?}");
    }

    #[test]
    fn refuses_bad_input() {
        assert!(matches!(
            shapiro_wilk(&[1.0, 2.0]),
            Err(Error::TooFewValues {
                needed: 3,
                got: 2,
                ..
            })
        ));
        assert!(shapiro_wilk(&[]).is_err());
        assert!(shapiro_wilk(&vec![0.5; 5001]).is_err());
        assert!(shapiro_wilk(&sample("normal", 5001, 1)).is_err());
        assert!(shapiro_wilk(&[1.0, f64::NAN, 2.0]).is_err());
        assert!(shapiro_wilk(&[1.0, f64::INFINITY, 2.0]).is_err());
        assert!(shapiro_wilk(&[2.5; 10]).is_err());
        assert!(shapiro_wilk(&sample("normal", 5000, 1)).is_ok());
        // Extreme magnitudes: an error or a finite answer, never a panic or NaN.
        for x in [
            [f64::MAX, -f64::MAX, 0.0, 1.0],
            [1e-300, 2e-300, 0.0, 5e-324],
        ] {
            if let Ok(r) = shapiro_wilk(&x) {
                assert!(r.w.is_finite() && r.pvalue.is_finite(), "{r:?}");
            }
        }
    }

    #[test]
    fn normal_helpers_are_accurate() {
        // Φ(−1.96) = 0.024997895148220435, Φ(−5) = 2.866515718791939e-7, Φ(−10) = 7.61985302416047e-24.
        for (x, q) in [
            (1.96, 0.024997895148220435),
            (5.0, 2.866515718791939e-7),
            (10.0, 7.61985302416047e-24),
            (-1.0, 0.8413447460685429),
            (0.0, 0.5),
        ] {
            let got = alnorm_upper(x);
            assert!((got - q).abs() / q < 1e-9, "Q({x}) = {got} vs {q}");
        }
        for (p, z) in [
            (0.975, 1.959963984540054),
            (0.5, 0.0),
            (0.001, -3.090232306167813),
        ] {
            assert!((ppnd(p) - z).abs() < 1e-5, "ppnd({p})");
        }
    }
}
