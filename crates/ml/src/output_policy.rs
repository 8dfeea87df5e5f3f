//! Output hardening: what a model's answer reveals to the client who asked.
//!
//! Model extraction and membership inference both feed on the full probability vector: a surrogate learns
//! faster from soft labels, and a member's confidence is tell-tale. An [`OutputPolicy`] reduces each row of
//! probabilities before it leaves the gateway — the label only, the top k, rounded values, or the
//! reverse-sigmoid perturbation of Lee et al. (2019) — and every policy here **keeps the top label** under
//! the lowest-index argmax rule of [`crate::argmax_rows`], so accuracy for honest clients is unchanged.
//!
//! A [`Watermark`] (DAWN, Szyller et al. 2021) answers a small keyed fraction of queries with a wrong but
//! deterministic label, so a surrogate trained on our answers inherits those labels and can later be
//! recognised with [`Watermark::verify`] and a binomial p-value. Apply the watermark first, then the policy:
//! every policy keeps the (watermarked) top label.

use std::fmt;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// Defaults of `reverse-sigmoid` without parameters: β = 1.0, γ = 0.1, the defaults of the Adversarial
/// Robustness Toolbox's `ReverseSigmoid` postprocessor (the paper sweeps β and γ per dataset).
pub const REVERSE_SIGMOID_DEFAULTS: (f32, f32) = (1.0, 0.1);

/// Largest `round:D` the parser accepts: f32 probabilities carry about 7 significant digits.
pub const MAX_ROUND_DECIMALS: u32 = 6;

/// Probabilities are clamped into `[CLAMP, 1 − CLAMP]` before the logit of the reverse sigmoid.
const CLAMP: f32 = 1e-6;

/// How a probability vector is reduced before a client sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(tag = "policy", rename_all = "kebab-case", deny_unknown_fields)]
pub enum OutputPolicy {
    /// The full probability vector.
    #[default]
    Full,
    /// Only the top label (one-hot).
    LabelOnly,
    /// The k most likely classes keep their probabilities, the rest 0. The kept values are **not**
    /// renormalised (renormalising would reveal nothing new but would change the values the client sees for
    /// k = n). Ties in value keep the lower class index. `k = 0` behaves as `k = 1`.
    TopK {
        /// How many classes.
        k: usize,
    },
    /// Probabilities rounded half away from zero to `decimals` places. Rounding is monotone, so it can only
    /// create ties: when a tie would hand the top label to a lower class index, the true top is raised by one
    /// unit of the last place (10^−decimals).
    Round {
        /// Decimal places.
        decimals: u32,
    },
    /// Reverse-sigmoid perturbation (Lee et al., 2019), top label kept: per class
    /// `y' = y − β·(s(γ·s⁻¹(y)) − ½)` (s the sigmoid, y clamped into [1e-6, 1 − 1e-6] inside the logit only),
    /// clipped to [0, 1] and renormalised to sum 1 (α = 1/Σ). For large β the published formula can change the
    /// argmax; the perturbed values of the old and the new top class are then swapped, so the client sees the
    /// true label with the perturbed distribution.
    ReverseSigmoid {
        /// Perturbation strength β.
        beta: f32,
        /// Sigmoid steepness γ.
        gamma: f32,
    },
}

impl OutputPolicy {
    /// Parse the CLI form: `full`, `label` (alias `label-only`), `top-k:K`, `round:D`,
    /// `reverse-sigmoid:BETA:GAMMA`, `reverse-sigmoid:BETA` or `reverse-sigmoid` (defaults
    /// [`REVERSE_SIGMOID_DEFAULTS`]). The error names the part that is wrong.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let mut parts = text.split(':');
        let kind = parts.next().unwrap_or_default();
        let args: Vec<&str> = parts.collect();
        let no_args = |policy: OutputPolicy| {
            if args.is_empty() {
                Ok(policy)
            } else {
                Err(format!(
                    "output policy `{kind}` takes no parameters, got `{}`",
                    args.join(":")
                ))
            }
        };
        match kind {
            "full" => no_args(OutputPolicy::Full),
            "label" | "label-only" => no_args(OutputPolicy::LabelOnly),
            "top-k" => match args.as_slice() {
                [k] => match k.trim().parse::<usize>() {
                    Ok(k) if k >= 1 => Ok(OutputPolicy::TopK { k }),
                    _ => Err(format!(
                        "top-k: K must be a whole number >= 1, got `{k}` (e.g. top-k:3)"
                    )),
                },
                _ => Err(format!(
                    "top-k needs exactly one parameter K (e.g. top-k:3), got `{text}`"
                )),
            },
            "round" => match args.as_slice() {
                [d] => match d.trim().parse::<u32>() {
                    Ok(decimals) if decimals <= MAX_ROUND_DECIMALS => {
                        Ok(OutputPolicy::Round { decimals })
                    }
                    _ => Err(format!(
                        "round: D must be a whole number of decimals in 0..={MAX_ROUND_DECIMALS}, got `{d}` \
                         (e.g. round:2)"
                    )),
                },
                _ => Err(format!(
                    "round needs exactly one parameter D (e.g. round:2), got `{text}`"
                )),
            },
            "reverse-sigmoid" => {
                let (def_beta, def_gamma) = REVERSE_SIGMOID_DEFAULTS;
                let num = |name: &str, v: &str| -> Result<f32, String> {
                    match v.trim().parse::<f32>() {
                        Ok(x) if x.is_finite() && x > 0.0 => Ok(x),
                        _ => Err(format!(
                            "reverse-sigmoid: {name} must be a finite number > 0, got `{v}` \
                             (e.g. reverse-sigmoid:1.0:0.1)"
                        )),
                    }
                };
                let (beta, gamma) = match args.as_slice() {
                    [] => (def_beta, def_gamma),
                    [b] => (num("BETA", b)?, def_gamma),
                    [b, g] => (num("BETA", b)?, num("GAMMA", g)?),
                    _ => {
                        return Err(format!(
                            "reverse-sigmoid takes at most BETA:GAMMA, got `{}`",
                            args.join(":")
                        ))
                    }
                };
                Ok(OutputPolicy::ReverseSigmoid { beta, gamma })
            }
            _ => Err(format!(
                "unknown output policy `{kind}` (expected full, label, top-k:K, round:D or \
                 reverse-sigmoid:BETA:GAMMA)"
            )),
        }
    }

    /// The CLI form, such that `parse(&p.name()) == Ok(p)`.
    pub fn name(&self) -> String {
        match self {
            OutputPolicy::Full => "full".into(),
            OutputPolicy::LabelOnly => "label".into(),
            OutputPolicy::TopK { k } => format!("top-k:{k}"),
            OutputPolicy::Round { decimals } => format!("round:{decimals}"),
            OutputPolicy::ReverseSigmoid { beta, gamma } => {
                format!("reverse-sigmoid:{beta}:{gamma}")
            }
        }
    }

    /// Whether the policy promises to keep each row's top label (lowest-index argmax). True for every
    /// policy: [`Full`](Self::Full) trivially, the others by construction (see each variant).
    pub fn keeps_top_label(&self) -> bool {
        true
    }

    /// Apply to `n_classes`-wide rows of probabilities (row-major); returns the rows the client sees. A
    /// trailing partial row (when the length is not a multiple of `n_classes`) is treated as a row of its own.
    pub fn apply(&self, probabilities: &[f32], n_classes: usize) -> Vec<f32> {
        let mut out = probabilities.to_vec();
        if n_classes == 0 || matches!(self, OutputPolicy::Full) {
            return out;
        }
        for row in out.chunks_mut(n_classes) {
            self.apply_row(row);
        }
        out
    }

    fn apply_row(&self, row: &mut [f32]) {
        let top = argmax(row);
        match *self {
            OutputPolicy::Full => {}
            OutputPolicy::LabelOnly => {
                for (j, v) in row.iter_mut().enumerate() {
                    *v = if j == top { 1.0 } else { 0.0 };
                }
            }
            OutputPolicy::TopK { k } => {
                let k = k.max(1);
                if k >= row.len() {
                    return;
                }
                let mut order: Vec<usize> = (0..row.len()).collect();
                // Descending value, ascending index on ties; NaN sorts last.
                order.sort_by(|&a, &b| {
                    row[b]
                        .partial_cmp(&row[a])
                        .unwrap_or_else(|| row[a].is_nan().cmp(&row[b].is_nan()))
                        .then(a.cmp(&b))
                });
                for &j in &order[k..] {
                    row[j] = 0.0;
                }
                // The top stays: it sorts first unless NaN, and argmax never picks NaN over a number.
            }
            OutputPolicy::Round { decimals } => {
                let d = decimals.min(9);
                let scale = 10f64.powi(d as i32);
                let units = |v: f32| round_half_away(v as f64 * scale);
                for v in row.iter_mut() {
                    if v.is_finite() {
                        *v = (units(*v) / scale) as f32;
                    }
                }
                let now = argmax(row);
                if now != top {
                    let raised = ((units(row[top]) + 1.0) / scale) as f32;
                    row[top] = if raised > row[now] {
                        raised
                    } else {
                        row[now].next_up()
                    };
                }
            }
            OutputPolicy::ReverseSigmoid { beta, gamma } => {
                for v in row.iter_mut() {
                    let y = v.clamp(CLAMP, 1.0 - CLAMP);
                    let logit = (y / (1.0 - y)).ln();
                    let r = beta * (sigmoid(gamma * logit) - 0.5);
                    *v = (*v - r).clamp(0.0, 1.0);
                }
                let sum: f32 = row.iter().sum();
                if sum > 0.0 && sum.is_finite() {
                    for v in row.iter_mut() {
                        *v /= sum;
                    }
                } else {
                    // Nothing left to renormalise: the label is all that can be said.
                    for (j, v) in row.iter_mut().enumerate() {
                        *v = if j == top { 1.0 } else { 0.0 };
                    }
                }
                keep_top(row, top);
            }
        }
    }
}

/// The logistic sigmoid.
fn sigmoid(z: f32) -> f32 {
    1.0 / (1.0 + (-z).exp())
}

/// Round half away from zero (f64::round does exactly that).
fn round_half_away(x: f64) -> f64 {
    x.round()
}

/// Index of the largest value, lowest index on ties (the rule of [`crate::argmax_rows`]).
fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (j, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = j;
        }
    }
    best
}

/// Make `top` the argmax of `row` again: swap its value with the current argmax's, and if exact ties still
/// hand the label to a lower index, raise it to the next representable value above the maximum.
fn keep_top(row: &mut [f32], top: usize) {
    if top >= row.len() {
        return;
    }
    let now = argmax(row);
    if now == top {
        return;
    }
    row.swap(now, top);
    let now = argmax(row);
    if now != top && row[now].is_finite() {
        row[top] = row[now].next_up();
    }
}

/// A keyed DAWN-style watermark: which answers to mark and with what label.
///
/// Selection and label are HMAC-SHA256 of the query row's f32 little-endian bytes under the key (with a
/// one-byte domain tag, `S` for selection and `L` for the label), so they are deterministic — the same query
/// always gets the same answer, and a thief cannot average the mark away — and unpredictable without the key.
#[derive(Clone)]
pub struct Watermark {
    key: Vec<u8>,
    fraction: f64,
}

/// Shortest key [`Watermark::new`] accepts, in bytes.
pub const MIN_WATERMARK_KEY_BYTES: usize = 16;

impl fmt::Debug for Watermark {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Watermark")
            .field("key", &format_args!("<redacted {} bytes>", self.key.len()))
            .field("fraction", &self.fraction)
            .finish()
    }
}

impl Drop for Watermark {
    fn drop(&mut self) {
        // Best effort without `unsafe`: overwrite the key before the allocation is freed.
        for b in self.key.iter_mut() {
            *b = 0;
        }
        std::hint::black_box(&self.key);
    }
}

/// What [`Watermark::verify`] found in a suspect model's predictions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WatermarkCheck {
    /// Rows the key selects (the watermarked queries).
    pub selected: usize,
    /// Selected rows on which the suspect predicts the watermark label.
    pub agree: usize,
    /// `agree / selected` (0 when nothing was selected).
    pub agreement_rate: f64,
    /// Probability that a model which never saw the watermark predicts the watermark label on a selected row:
    /// its disagreement rate with the owner on the *unselected* rows (Laplace-smoothed, `(d + 1)/(u + 2)`)
    /// divided by `n_classes − 1` (the watermark label is keyed-uniform among the other classes); capped at
    /// `1/(n_classes − 1)`, the value used when no row is unselected.
    pub chance_rate: f64,
    /// Share of unselected rows where the suspect's prediction differs from the owner's top label.
    pub baseline_disagreement: f64,
    /// P(X ≥ agree) for X ~ Binomial(selected, chance_rate): small means the suspect learned the watermark.
    pub p_value: f64,
}

impl Watermark {
    /// A watermark with `key` (at least [`MIN_WATERMARK_KEY_BYTES`] bytes) marking about `fraction` of the
    /// distinct queries; `fraction` must lie in (0, 0.5].
    pub fn new(key: &[u8], fraction: f64) -> Result<Self, String> {
        if key.len() < MIN_WATERMARK_KEY_BYTES {
            return Err(format!(
                "watermark key must be at least {MIN_WATERMARK_KEY_BYTES} bytes, got {}",
                key.len()
            ));
        }
        if !(fraction > 0.0 && fraction <= 0.5) {
            return Err(format!(
                "watermark fraction must lie in (0, 0.5], got {fraction}"
            ));
        }
        Ok(Watermark {
            key: key.to_vec(),
            fraction,
        })
    }

    /// The share of queries marked.
    pub fn fraction(&self) -> f64 {
        self.fraction
    }

    fn hash(&self, tag: u8, row: &[f32]) -> u64 {
        // HMAC accepts keys of any length, so this cannot fail; fall back to 0 rather than panic.
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.key) else {
            return 0;
        };
        mac.update(&[tag]);
        for v in row {
            mac.update(&v.to_le_bytes());
        }
        let out = mac.finalize().into_bytes();
        let mut first = [0u8; 8];
        first.copy_from_slice(&out[..8]);
        u64::from_le_bytes(first)
    }

    /// Whether this query row gets a watermarked answer: the keyed hash as a uniform number in [0, 1) is
    /// below the fraction.
    pub fn selects(&self, row: &[f32]) -> bool {
        let u = (self.hash(b'S', row) >> 11) as f64 / (1u64 << 53) as f64;
        u < self.fraction
    }

    /// The watermark label of a row: keyed, deterministic and different from `true_top` (uniform over the other
    /// `n_classes − 1` classes). With fewer than two classes there is no other label: `true_top` is returned.
    pub fn label(&self, row: &[f32], n_classes: usize, true_top: u32) -> u32 {
        if n_classes < 2 {
            return true_top;
        }
        let offset = self.hash(b'L', row) % (n_classes as u64 - 1);
        ((true_top as u64 % n_classes as u64 + 1 + offset) % n_classes as u64) as u32
    }

    /// Mark the selected rows in place: the watermark label becomes the top by swapping its probability with
    /// the current top's. `rows` holds the queries (`n_features` wide), `probabilities` the answers
    /// (`n_classes` wide); only as many rows as both hold are looked at. Returns how many rows were marked.
    pub fn apply(
        &self,
        rows: &[f32],
        n_features: usize,
        probabilities: &mut [f32],
        n_classes: usize,
    ) -> usize {
        if n_features == 0 || n_classes < 2 {
            return 0;
        }
        let mut marked = 0;
        for (row, probs) in rows
            .chunks_exact(n_features)
            .zip(probabilities.chunks_exact_mut(n_classes))
        {
            if !self.selects(row) {
                continue;
            }
            let top = argmax(probs);
            let wm = self.label(row, n_classes, top as u32) as usize;
            keep_top(probs, wm);
            marked += 1;
        }
        marked
    }

    /// Test a suspect model: on the rows the key selects, how often does it predict the watermark label
    /// (computed from the owner's top label `owner_top`), and how unlikely is that by chance. Only as many rows
    /// as all inputs hold are looked at.
    pub fn verify(
        &self,
        rows: &[f32],
        n_features: usize,
        suspect_predictions: &[u32],
        owner_top: &[u32],
        n_classes: usize,
    ) -> WatermarkCheck {
        let (mut selected, mut agree, mut unselected, mut disagree) =
            (0usize, 0usize, 0usize, 0usize);
        if n_features > 0 {
            for ((row, &pred), &owner) in rows
                .chunks_exact(n_features)
                .zip(suspect_predictions)
                .zip(owner_top)
            {
                if self.selects(row) {
                    selected += 1;
                    if n_classes >= 2 && pred == self.label(row, n_classes, owner) {
                        agree += 1;
                    }
                } else {
                    unselected += 1;
                    if pred != owner {
                        disagree += 1;
                    }
                }
            }
        }
        let others = n_classes.saturating_sub(1).max(1) as f64;
        let baseline_disagreement = if unselected > 0 {
            disagree as f64 / unselected as f64
        } else {
            1.0
        };
        let smoothed = (disagree as f64 + 1.0) / (unselected as f64 + 2.0);
        let chance_rate = if unselected > 0 {
            (smoothed / others).min(1.0 / others)
        } else {
            1.0 / others
        };
        let agreement_rate = if selected > 0 {
            agree as f64 / selected as f64
        } else {
            0.0
        };
        WatermarkCheck {
            selected,
            agree,
            agreement_rate,
            chance_rate,
            baseline_disagreement,
            p_value: binomial_upper_tail(agree as u64, selected as u64, chance_rate),
        }
    }
}

/// P(X ≥ k) for X ~ Binomial(n, p), summed in log space (log-sum-exp over ln C(n, i) + i ln p +
/// (n − i) ln(1 − p)), so thousands of trials with tiny tails neither overflow nor underflow to nonsense.
pub fn binomial_upper_tail(k: u64, n: u64, p: f64) -> f64 {
    if k == 0 {
        return 1.0;
    }
    if k > n || p <= 0.0 || p.is_nan() {
        return 0.0;
    }
    if p >= 1.0 {
        return 1.0;
    }
    // ln i! for i = 0..=n.
    let mut ln_fact = Vec::with_capacity(n as usize + 1);
    ln_fact.push(0.0f64);
    for i in 1..=n {
        let prev = ln_fact[(i - 1) as usize];
        ln_fact.push(prev + (i as f64).ln());
    }
    let (lp, lq) = (p.ln(), (-p).ln_1p());
    let terms: Vec<f64> = (k..=n)
        .map(|i| {
            ln_fact[n as usize] - ln_fact[i as usize] - ln_fact[(n - i) as usize]
                + i as f64 * lp
                + (n - i) as f64 * lq
        })
        .collect();
    let max = terms.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    if !max.is_finite() {
        return 0.0;
    }
    let sum: f64 = terms.iter().map(|t| (t - max).exp()).sum();
    (max + sum.ln()).exp().clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::argmax_rows;
    use crate::rng::Rng;

    /// `n` random probability rows of width `k`: softmax of normals with a random temperature, some
    /// near-ties and some near-one-hot rows.
    fn random_rows(n: usize, k: usize, seed: u64) -> Vec<f32> {
        let mut rng = Rng::new(seed);
        let mut out = Vec::with_capacity(n * k);
        for i in 0..n {
            let t = rng.range(0.05, 8.0);
            let mut z: Vec<f32> = (0..k).map(|_| rng.normal() * t).collect();
            if i % 7 == 0 {
                // A near-tie between two classes.
                z[1 % k] = z[0] + 1e-4;
            }
            let m = z.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
            let e: Vec<f32> = z.iter().map(|v| (v - m).exp()).collect();
            let s: f32 = e.iter().sum();
            out.extend(e.iter().map(|v| v / s));
        }
        out
    }

    fn all_policies() -> Vec<OutputPolicy> {
        vec![
            OutputPolicy::Full,
            OutputPolicy::LabelOnly,
            OutputPolicy::TopK { k: 1 },
            OutputPolicy::TopK { k: 2 },
            OutputPolicy::Round { decimals: 0 },
            OutputPolicy::Round { decimals: 1 },
            OutputPolicy::Round { decimals: 2 },
            OutputPolicy::Round { decimals: 4 },
            OutputPolicy::ReverseSigmoid {
                beta: 1.0,
                gamma: 0.1,
            },
            OutputPolicy::ReverseSigmoid {
                beta: 0.7,
                gamma: 0.4,
            },
            OutputPolicy::ReverseSigmoid {
                beta: 5.0,
                gamma: 2.0,
            },
        ]
    }

    #[test]
    fn every_policy_keeps_the_top_label_on_10k_random_rows() {
        for k in [2usize, 3, 10] {
            let p = random_rows(10_000, k, 11 + k as u64);
            let top = argmax_rows(&p, k);
            for policy in all_policies() {
                assert!(policy.keeps_top_label());
                let out = policy.apply(&p, k);
                assert_eq!(out.len(), p.len());
                assert_eq!(argmax_rows(&out, k), top, "{} k={k}", policy.name());
            }
        }
    }

    #[test]
    fn round_without_the_nudge_would_change_labels() {
        // Negative control for the test above: plain rounding makes ties that flip the label.
        let p = [0.4449f32, 0.4451, 0.11];
        let plain: Vec<f32> = p.iter().map(|v| (v * 1000.0).round() / 1000.0).collect();
        assert_eq!(argmax_rows(&plain, 3), vec![0]);
        let out = OutputPolicy::Round { decimals: 3 }.apply(&p, 3);
        assert_eq!(argmax_rows(&out, 3), vec![1]);
        assert!((out[1] - 0.446).abs() < 1e-6 && (out[0] - 0.445).abs() < 1e-6);
    }

    #[test]
    fn reverse_sigmoid_formula_flips_labels_before_the_swap() {
        // Negative control: the published formula alone changes some argmaxes for a large β.
        let k = 3;
        let p = random_rows(2_000, k, 5);
        let (beta, gamma) = (5.0f32, 2.0f32);
        let mut flipped = 0;
        for row in p.chunks(k) {
            let mut r: Vec<f32> = row
                .iter()
                .map(|&y| {
                    let c = y.clamp(CLAMP, 1.0 - CLAMP);
                    (y - beta * (sigmoid(gamma * (c / (1.0 - c)).ln()) - 0.5)).clamp(0.0, 1.0)
                })
                .collect();
            let s: f32 = r.iter().sum();
            if s > 0.0 {
                r.iter_mut().for_each(|v| *v /= s);
            }
            if argmax(&r) != argmax(row) {
                flipped += 1;
            }
        }
        assert!(flipped > 0, "the formula never flipped a label");
    }

    #[test]
    fn full_returns_the_input_unchanged() {
        let p = random_rows(100, 4, 1);
        assert_eq!(OutputPolicy::Full.apply(&p, 4), p);
    }

    #[test]
    fn label_only_reveals_nothing_but_the_label() {
        let p = random_rows(1000, 5, 2);
        let out = OutputPolicy::LabelOnly.apply(&p, 5);
        for (row, orig) in out.chunks(5).zip(p.chunks(5)) {
            assert_eq!(row.iter().filter(|&&v| v == 1.0).count(), 1);
            assert_eq!(row.iter().filter(|&&v| v == 0.0).count(), 4);
            assert_eq!(argmax(row), argmax(orig));
        }
        // Two inputs with the same label give identical outputs.
        let a = OutputPolicy::LabelOnly.apply(&[0.9, 0.05, 0.05], 3);
        let b = OutputPolicy::LabelOnly.apply(&[0.4, 0.35, 0.25], 3);
        assert_eq!(a, b);
    }

    #[test]
    fn top_k_zeroes_exactly_n_minus_k_classes_and_keeps_the_rest() {
        let n = 6;
        let p = random_rows(1000, n, 3);
        for k in 1..=n {
            let out = OutputPolicy::TopK { k }.apply(&p, n);
            for (row, orig) in out.chunks(n).zip(p.chunks(n)) {
                // Softmax of normals is never exactly 0, so zeros are the removed classes.
                assert_eq!(row.iter().filter(|&&v| v == 0.0).count(), n - k);
                let kept_min = row
                    .iter()
                    .zip(orig)
                    .filter(|(v, _)| **v != 0.0)
                    .map(|(v, o)| {
                        assert_eq!(v, o);
                        *v
                    })
                    .fold(f32::INFINITY, f32::min);
                let dropped_max = row
                    .iter()
                    .zip(orig)
                    .filter(|(v, _)| **v == 0.0)
                    .map(|(_, o)| *o)
                    .fold(0.0f32, f32::max);
                assert!(kept_min >= dropped_max);
            }
        }
        // Ties keep the lower index.
        assert_eq!(
            OutputPolicy::TopK { k: 1 }.apply(&[0.4, 0.4, 0.2], 3),
            vec![0.4, 0.0, 0.0]
        );
    }

    #[test]
    fn rounding_leaves_at_most_d_decimals() {
        let p = random_rows(2000, 4, 4);
        for d in 0..=4u32 {
            let scale = 10f64.powi(d as i32);
            let out = OutputPolicy::Round { decimals: d }.apply(&p, 4);
            for (v, o) in out.iter().zip(&p) {
                let units = *v as f64 * scale;
                assert!((units - units.round()).abs() < 1e-3, "d={d} v={v}");
                // Within half a unit, or one unit above where the top was nudged.
                assert!((*v as f64 - *o as f64) < 1.5 / scale + 1e-6);
                assert!((*o as f64 - *v as f64) <= 0.5 / scale + 1e-6);
            }
        }
        // Half away from zero.
        assert_eq!(
            OutputPolicy::Round { decimals: 0 }.apply(&[0.5, 0.5], 2),
            vec![1.0, 1.0]
        );
    }

    #[test]
    fn reverse_sigmoid_perturbs_but_keeps_argmax_and_sums_to_one() {
        let k = 4;
        let p = random_rows(5000, k, 6);
        for policy in [
            OutputPolicy::ReverseSigmoid {
                beta: 1.0,
                gamma: 0.1,
            },
            OutputPolicy::ReverseSigmoid {
                beta: 0.7,
                gamma: 0.4,
            },
        ] {
            let out = policy.apply(&p, k);
            let mut changed = 0;
            for (row, orig) in out.chunks(k).zip(p.chunks(k)) {
                let s: f32 = row.iter().sum();
                assert!((s - 1.0).abs() < 1e-5, "sum {s}");
                assert!(row.iter().all(|v| (0.0..=1.0).contains(v)));
                let dist: f32 = row.iter().zip(orig).map(|(a, b)| (a - b).abs()).sum();
                if dist > 1e-3 {
                    changed += 1;
                }
                assert_eq!(argmax(row), argmax(orig));
            }
            assert!(changed > 4000, "{} changed only {changed}", policy.name());
        }
    }

    #[test]
    fn parse_accepts_every_form_and_round_trips_names() {
        let cases = [
            ("full", OutputPolicy::Full),
            ("label", OutputPolicy::LabelOnly),
            ("label-only", OutputPolicy::LabelOnly),
            ("top-k:3", OutputPolicy::TopK { k: 3 }),
            ("round:2", OutputPolicy::Round { decimals: 2 }),
            (
                "reverse-sigmoid",
                OutputPolicy::ReverseSigmoid {
                    beta: 1.0,
                    gamma: 0.1,
                },
            ),
            (
                "reverse-sigmoid:0.7:0.4",
                OutputPolicy::ReverseSigmoid {
                    beta: 0.7,
                    gamma: 0.4,
                },
            ),
        ];
        for (text, want) in cases {
            assert_eq!(OutputPolicy::parse(text), Ok(want.clone()), "{text}");
            assert_eq!(OutputPolicy::parse(&want.name()), Ok(want));
        }
    }

    #[test]
    fn parse_errors_name_the_bad_part() {
        let err = |t: &str| OutputPolicy::parse(t).unwrap_err();
        assert!(err("fuzzy").contains("`fuzzy`"));
        assert!(err("top-k:0").contains("`0`"));
        assert!(err("top-k:x").contains("`x`"));
        assert!(err("top-k").contains("top-k needs"));
        assert!(err("round:9").contains("`9`"));
        assert!(err("round:-1").contains("`-1`"));
        let e = err("reverse-sigmoid:1.0:abc");
        assert!(e.contains("GAMMA") && e.contains("`abc`"), "{e}");
        let e = err("reverse-sigmoid:nan");
        assert!(e.contains("BETA") && e.contains("`nan`"), "{e}");
        assert!(err("full:1").contains("takes no parameters"));
    }

    #[test]
    fn serde_form_is_tagged() {
        let p = OutputPolicy::TopK { k: 2 };
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(json, r#"{"policy":"top-k","k":2}"#);
        assert_eq!(serde_json::from_str::<OutputPolicy>(&json).unwrap(), p);
    }

    const KEY: &[u8] = b"0123456789abcdef-watermark-key";

    fn queries(n: usize, d: usize, seed: u64) -> Vec<f32> {
        let mut rng = Rng::new(seed);
        (0..n * d).map(|_| rng.uniform()).collect()
    }

    #[test]
    fn watermark_rejects_bad_settings_and_hides_the_key() {
        assert!(Watermark::new(b"short", 0.1)
            .unwrap_err()
            .contains("16 bytes"));
        assert!(Watermark::new(KEY, 0.0).is_err());
        assert!(Watermark::new(KEY, 0.6).is_err());
        assert!(Watermark::new(KEY, f64::NAN).is_err());
        let w = Watermark::new(KEY, 0.5).unwrap();
        let shown = format!("{w:?}");
        assert!(
            !shown.contains("0123456789") && shown.contains("redacted"),
            "{shown}"
        );
    }

    #[test]
    fn watermark_selects_about_the_fraction_and_depends_on_the_key() {
        let (n, d, f) = (20_000usize, 4usize, 0.05f64);
        let x = queries(n, d, 9);
        let a = Watermark::new(KEY, f).unwrap();
        let b = Watermark::new(b"another-key-of-16-bytes!", f).unwrap();
        let sel_a: Vec<bool> = x.chunks(d).map(|r| a.selects(r)).collect();
        let sel_b: Vec<bool> = x.chunks(d).map(|r| b.selects(r)).collect();
        let count = sel_a.iter().filter(|&&s| s).count() as f64;
        let sigma = (n as f64 * f * (1.0 - f)).sqrt();
        assert!((count - n as f64 * f).abs() < 3.0 * sigma, "{count}");
        // Two keys pick nearly disjoint sets (overlap ≈ f² n = 50 of ≈ 1000).
        let both = sel_a.iter().zip(&sel_b).filter(|(p, q)| **p && **q).count();
        assert!(both < 100, "overlap {both}");
        // Deterministic, and labels differ from the true top.
        for r in x.chunks(d).take(500) {
            assert_eq!(a.selects(r), a.selects(r));
            for top in 0..5 {
                let l = a.label(r, 5, top);
                assert!(l != top && l < 5);
                assert_eq!(l, a.label(r, 5, top));
            }
        }
    }

    #[test]
    fn watermark_apply_marks_selected_rows_and_verify_recognises_a_copy() {
        let (n, d, k) = (4000usize, 3usize, 4usize);
        let x = queries(n, d, 10);
        let p = random_rows(n, k, 12);
        let owner_top = argmax_rows(&p, k);
        let w = Watermark::new(KEY, 0.1).unwrap();
        let mut marked = p.clone();
        let count = w.apply(&x, d, &mut marked, k);
        assert!(count > 300 && count < 500, "{count}");
        let served = argmax_rows(&marked, k);
        for (i, r) in x.chunks(d).enumerate() {
            if w.selects(r) {
                assert_eq!(served[i], w.label(r, k, owner_top[i]));
            } else {
                assert_eq!(served[i], owner_top[i]);
            }
        }
        // A copy that learned our answers, watermark included, with 10% of its answers wrong elsewhere.
        let mut stolen = served.clone();
        let mut rng = Rng::new(3);
        for s in stolen.iter_mut() {
            if rng.uniform() < 0.1 {
                *s = rng.below(k) as u32;
            }
        }
        let check = w.verify(&x, d, &stolen, &owner_top, k);
        assert_eq!(check.selected, count);
        assert!(check.agreement_rate > 0.8, "{check:?}");
        assert!(check.p_value < 1e-30, "{check:?}");
        // An independent model that agrees with the owner's labels never predicts the watermark label.
        let honest = w.verify(&x, d, &owner_top, &owner_top, k);
        assert_eq!((honest.agree, honest.agreement_rate), (0, 0.0));
        assert!(honest.p_value > 0.99, "{honest:?}");
        // An independent model that errs as often as the copy, but at random: no evidence.
        let mut noisy = owner_top.clone();
        let mut rng = Rng::new(4);
        for s in noisy.iter_mut() {
            if rng.uniform() < 0.1 {
                *s = rng.below(k) as u32;
            }
        }
        let indep = w.verify(&x, d, &noisy, &owner_top, k);
        assert!(indep.p_value > 0.01, "{indep:?}");
    }

    #[test]
    fn binomial_tail_matches_scipy() {
        // scipy.stats.binom.sf(k - 1, n, p)
        let cases = [
            (3u64, 10u64, 0.2f64, 0.3222004736),
            (0, 10, 0.2, 1.0),
            (10, 10, 0.5, 0.0009765625),
            (50, 100, 0.25, 6.638502483476674e-08),
            (400, 400, 1.0 / 3.0, 1.4174185499538266e-191),
        ];
        for (k, n, p, want) in cases {
            let got = binomial_upper_tail(k, n, p);
            assert!(
                (got - want).abs() <= 1e-9 * want.max(1e-300),
                "k={k} n={n}: {got} vs {want}"
            );
        }
        // Deep tails stay finite and positive in log space.
        let tiny = binomial_upper_tail(200, 400, 1.0 / 3.0);
        assert!((tiny / 4.623704100049427e-12 - 1.0).abs() < 1e-9, "{tiny}");
    }
}
