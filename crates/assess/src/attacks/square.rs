//! Square Attack (Andriushchenko et al., 2020): a score-based black-box evasion attack that needs only
//! `predict_proba`, adapted from images to plain feature vectors of any length.
//!
//! The L∞ attack searches the corners of the eps box by random search. It starts from a random corner
//! (every mutable feature at `x0 ± radius`: the paper's vertical stripes have no meaning for a vector, random
//! signs per feature do), then repeatedly re-draws the signs of a window of the mutable features and keeps the
//! new corner when the margin loss (true-class probability minus the best other class) goes down. The window
//! is a fraction `p` of the mutable features, `p` halving at the paper's milestones rescaled to the query
//! budget; it is either a run of consecutive mutable features (a strip, for flattened images) or a random
//! subset (for tabular rows, whose column order means nothing).
//!
//! Under an L2 [`Constraints`](crate::Constraints) the same sign search runs on the corners of the largest
//! box inside the L2 ball (every mutable feature at `± eps / sqrt(m)` in scaled units), so every candidate
//! lies exactly on the sphere; this is a simplification of the paper's L2 variant, not a copy of it.
//!
//! Immutable features are never touched. Every candidate is made valid with
//! [`Constraints::finalize`](crate::Constraints::finalize) (which projects onto the ball and the bounds, then
//! rounds integers and fixes one-hot groups) before it is queried, so the search only ever scores inputs the
//! attack could return. Each row has its own seeded generator, so the result does not depend on the batch
//! size. A row stops being queried as soon as it is misclassified; every model query is counted and no row
//! ever gets more than `queries_per_sample`.

use std::ops::Range;

use aegis_ml::Model;

use super::{margins, misclassified, proba, AttackInput, AttackOutput};
use crate::rng::Rng;
use crate::{Constraints, Error, Norm};

/// How many times a step re-draws a window that would not change the (finalized) candidate.
const MAX_REDRAWS: usize = 8;
/// Mixed into the seed so Square and other attacks draw different streams from the same `--seed`.
const SALT: u64 = 0x5351_5541_5245_0001;

/// Settings of [`square_attack`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SquareParams {
    /// Model queries allowed per row; the initial corner counts as one.
    pub queries_per_sample: u32,
    /// Fraction of the mutable features re-drawn per step at the start (halved at the paper's milestones).
    pub p_init: f32,
    /// Rows attacked together: one model call per step for all of them that are still unbroken.
    pub batch: usize,
}

impl Default for SquareParams {
    fn default() -> Self {
        SquareParams {
            queries_per_sample: 1000,
            p_init: 0.05,
            batch: 256,
        }
    }
}

/// Square Attack on any model, untargeted, within the ball of `input.eps` (L∞; see the module doc for L2).
///
/// Returns, per row, the first misclassified corner found or else the corner with the lowest margin seen
/// (always inside the ball and finalized). Rows are returned unchanged when no feature may move or the
/// budget is zero. `queries` counts every row sent to the model.
pub fn square_attack(
    model: &dyn Model,
    input: &AttackInput,
    params: &SquareParams,
) -> Result<AttackOutput, Error> {
    let (d, _) = check_input(model, input)?;
    let n = input.n();
    let mut out = AttackOutput {
        x_adv: input.x.to_vec(),
        queries: 0,
    };
    let corner = corners(input.constraints, d, input.eps);
    if corner.is_empty() || params.queries_per_sample == 0 || n == 0 {
        return Ok(out);
    }
    let batch = params.batch.max(1);
    for start in (0..n).step_by(batch) {
        let end = (start + batch).min(n);
        out.queries += attack_rows(
            model,
            input,
            params,
            &corner,
            start..end,
            &mut out.x_adv[start * d..end * d],
        )?;
    }
    input
        .constraints
        .finalize(input.x, &mut out.x_adv, input.eps);
    Ok(out)
}

/// The mutable features and each one's corner offset (`|x_adv_j - x0_j|` at a corner before clipping).
fn corners(c: &Constraints, d: usize, eps: f32) -> Vec<(usize, f32)> {
    if !(eps.is_finite() && eps > 0.0) {
        return Vec::new();
    }
    match c.norm() {
        Norm::Linf => (0..d)
            .map(|j| (j, c.radius(j, eps)))
            .filter(|&(_, r)| r.is_finite() && r > 0.0)
            .collect(),
        Norm::L2 => {
            let scales: Vec<(usize, f32)> = (0..d)
                .map(|j| (j, c.radius(j, 1.0)))
                .filter(|&(_, s)| s.is_finite() && s > 0.0)
                .collect();
            let per = eps / (scales.len().max(1) as f32).sqrt();
            scales.into_iter().map(|(j, s)| (j, s * per)).collect()
        }
    }
}

/// Attack rows `rows` (their adversarial rows are written to `x_adv`); returns the queries spent.
fn attack_rows(
    model: &dyn Model,
    input: &AttackInput,
    params: &SquareParams,
    corner: &[(usize, f32)],
    rows: Range<usize>,
    x_adv: &mut [f32],
) -> Result<u64, Error> {
    let d = model.n_features();
    let k = model.n_classes();
    let m = corner.len();
    let count = rows.len();
    let x0 = &input.x[rows.start * d..rows.end * d];
    let labels = &input.labels[rows.clone()];
    let (c, eps) = (input.constraints, input.eps);
    let budget = params.queries_per_sample;
    let mut rngs: Vec<Rng> = rows.clone().map(|i| row_rng(input.seed, i)).collect();

    // Initial corner: a random sign per mutable feature.
    let mut signs = vec![0.0f32; count * m];
    for (r, rng) in rngs.iter_mut().enumerate() {
        for s in &mut signs[r * m..(r + 1) * m] {
            *s = rng.sign();
        }
        build(
            c,
            eps,
            corner,
            &x0[r * d..(r + 1) * d],
            &signs[r * m..(r + 1) * m],
            &mut x_adv[r * d..(r + 1) * d],
        );
    }
    let p = query(model, x_adv, count, k)?;
    let mut queries = count as u64;
    let mut margin = margins(&p, labels, k);
    let mut done = misclassified(&p, labels, k);

    let mut active: Vec<usize> = (0..count).collect();
    let mut scratch: Vec<usize> = Vec::with_capacity(m);
    let mut new_signs = vec![0.0f32; m];
    let mut row = vec![0.0f32; d];
    for it in 1..budget {
        active.retain(|&r| !done[r]);
        if active.is_empty() {
            break;
        }
        let w = window_size(params.p_init, it, budget, m);
        let mut cand_x: Vec<f32> = Vec::with_capacity(active.len() * d);
        let mut cand_signs: Vec<f32> = Vec::with_capacity(active.len() * m);
        let mut owners: Vec<usize> = Vec::with_capacity(active.len());
        for &r in &active {
            let rng = &mut rngs[r];
            let (row0, best) = (&x0[r * d..(r + 1) * d], &x_adv[r * d..(r + 1) * d]);
            for _ in 0..MAX_REDRAWS {
                new_signs.copy_from_slice(&signs[r * m..(r + 1) * m]);
                pick_window(rng, m, w, &mut scratch);
                let mut changed = false;
                for &t in &scratch {
                    let s = rng.sign();
                    changed |= s != new_signs[t];
                    new_signs[t] = s;
                }
                if !changed {
                    let t = scratch[0];
                    new_signs[t] = -new_signs[t];
                }
                build(c, eps, corner, row0, &new_signs, &mut row);
                if row != best {
                    cand_x.extend_from_slice(&row);
                    cand_signs.extend_from_slice(&new_signs);
                    owners.push(r);
                    break;
                }
            }
        }
        if owners.is_empty() {
            continue;
        }
        let lbl: Vec<u32> = owners.iter().map(|&r| labels[r]).collect();
        let p = query(model, &cand_x, owners.len(), k)?;
        queries += owners.len() as u64;
        let new_margin = margins(&p, &lbl, k);
        let wrong = misclassified(&p, &lbl, k);
        for (q, &r) in owners.iter().enumerate() {
            if wrong[q] || new_margin[q] < margin[r] {
                margin[r] = new_margin[q];
                done[r] = wrong[q];
                signs[r * m..(r + 1) * m].copy_from_slice(&cand_signs[q * m..(q + 1) * m]);
                x_adv[r * d..(r + 1) * d].copy_from_slice(&cand_x[q * d..(q + 1) * d]);
            }
        }
    }
    Ok(queries)
}

/// The finalized corner `x0 + sign * offset` for one row.
fn build(
    c: &Constraints,
    eps: f32,
    corner: &[(usize, f32)],
    row0: &[f32],
    signs: &[f32],
    out: &mut [f32],
) {
    out.copy_from_slice(row0);
    for (&(j, off), &s) in corner.iter().zip(signs) {
        out[j] = row0[j] + s * off;
    }
    c.finalize(row0, out, eps);
}

/// The paper's schedule for the fraction of features re-drawn at step `it` of `n_iters`, as a window size.
fn window_size(p_init: f32, it: u32, n_iters: u32, m: usize) -> usize {
    let i = u64::from(it) * 10_000 / u64::from(n_iters.max(1));
    let div = match i {
        0..=10 => 1.0,
        11..=50 => 2.0,
        51..=200 => 4.0,
        201..=500 => 8.0,
        501..=1000 => 16.0,
        1001..=2000 => 32.0,
        2001..=4000 => 64.0,
        4001..=6000 => 128.0,
        6001..=8000 => 256.0,
        8001..=10_000 => 512.0,
        _ => 1.0,
    };
    let p = if p_init.is_finite() {
        (p_init / div).clamp(0.0, 1.0)
    } else {
        1.0
    };
    ((p * m as f32).round() as usize).clamp(1, m.max(1))
}

/// `w` distinct positions in `0..m`: a run of consecutive ones (wrapping) or a random subset, half the time each.
fn pick_window(rng: &mut Rng, m: usize, w: usize, out: &mut Vec<usize>) {
    out.clear();
    if rng.next_u64() & 1 == 0 {
        let start = rng.below(m);
        out.extend((0..w).map(|t| (start + t) % m));
    } else {
        out.extend(0..m);
        for t in 0..w {
            let j = t + rng.below(m - t);
            out.swap(t, j);
        }
        out.truncate(w);
    }
}

/// The generator of row `i`: independent of which rows share its batch.
fn row_rng(seed: u64, i: usize) -> Rng {
    Rng::new(
        seed ^ SALT
            ^ (i as u64)
                .wrapping_add(1)
                .wrapping_mul(0x9E37_79B9_7F4A_7C15),
    )
}

/// Check that the input fits the model; returns `(n_features, n_classes)`.
fn check_input(model: &dyn Model, input: &AttackInput) -> Result<(usize, usize), Error> {
    let (d, k) = (model.n_features(), model.n_classes());
    if input.constraints.n_features() != d {
        return Err(Error::Invalid(format!(
            "square attack: the constraints describe {} features, the model takes {d}",
            input.constraints.n_features()
        )));
    }
    if input.x.len() != input.n() * d {
        return Err(Error::Invalid(format!(
            "square attack: {} values are not {} rows of {d} features",
            input.x.len(),
            input.n()
        )));
    }
    if k < 2 {
        return Err(Error::Invalid(format!(
            "square attack: the model has {k} classes, at least 2 are needed"
        )));
    }
    if let Some(y) = input.labels.iter().find(|&&y| y as usize >= k) {
        return Err(Error::Invalid(format!(
            "square attack: label {y} is not a class of a {k}-class model"
        )));
    }
    Ok((d, k))
}

/// Probabilities for `n` rows, checked to have the promised shape.
fn query(model: &dyn Model, x: &[f32], n: usize, k: usize) -> Result<Vec<f32>, Error> {
    let p = proba(model, x, n)?;
    if p.len() != n * k {
        return Err(Error::Invalid(format!(
            "square attack: the model returned {} probabilities for {n} rows of {k} classes",
            p.len()
        )));
    }
    Ok(p)
}

/// A linear softmax model and test sets with known margins, shared by the black-box attack tests.
#[cfg(test)]
pub(crate) mod test_model {
    use std::sync::atomic::{AtomicU64, Ordering};

    use aegis_core::{FeatureKind, FeatureSpec, Schema};

    use crate::rng::Rng;

    /// Weights of the logit difference (class 1 minus class 0) over 10 features.
    pub(crate) const V: [f32; 10] = [3.0, -2.0, 1.5, -1.0, 0.5, 2.5, -0.7, 1.2, -1.8, 0.9];

    /// `softmax(W x + b)`, counting every row it sees and every row whose pinned features moved.
    #[derive(Debug)]
    pub(crate) struct Linear {
        pub w: Vec<f32>,
        pub b: Vec<f32>,
        pub d: usize,
        pub k: usize,
        /// `(feature, value)` every queried row must carry.
        pub pinned: Vec<(usize, f32)>,
        pub rows_seen: AtomicU64,
        pub violations: AtomicU64,
    }

    impl Linear {
        /// Two classes whose logit difference is `V · x`.
        pub(crate) fn two_class() -> Self {
            let mut w = Vec::new();
            w.extend(V.iter().map(|v| -0.5 * v));
            w.extend(V.iter().map(|v| 0.5 * v));
            Linear::new(w, vec![0.0, 0.0], V.len(), 2)
        }

        pub(crate) fn new(w: Vec<f32>, b: Vec<f32>, d: usize, k: usize) -> Self {
            Linear {
                w,
                b,
                d,
                k,
                pinned: Vec::new(),
                rows_seen: AtomicU64::new(0),
                violations: AtomicU64::new(0),
            }
        }

        pub(crate) fn seen(&self) -> u64 {
            self.rows_seen.load(Ordering::Relaxed)
        }

        pub(crate) fn predict(&self, x: &[f32]) -> Vec<u32> {
            let n = x.len() / self.d;
            let p = aegis_ml::Model::predict_proba(self, x, n).unwrap();
            self.rows_seen.fetch_sub(n as u64, Ordering::Relaxed);
            aegis_ml::argmax_rows(&p, self.k)
        }
    }

    impl aegis_ml::Model for Linear {
        fn n_features(&self) -> usize {
            self.d
        }
        fn n_classes(&self) -> usize {
            self.k
        }
        fn predict_proba(&self, x: &[f32], n: usize) -> Result<Vec<f32>, aegis_ml::Error> {
            assert_eq!(x.len(), n * self.d);
            self.rows_seen.fetch_add(n as u64, Ordering::Relaxed);
            let mut out = Vec::with_capacity(n * self.k);
            for row in x.chunks(self.d) {
                if self.pinned.iter().any(|&(j, v)| row[j] != v) {
                    self.violations.fetch_add(1, Ordering::Relaxed);
                }
                let logits: Vec<f32> = (0..self.k)
                    .map(|c| {
                        self.b[c]
                            + row
                                .iter()
                                .zip(&self.w[c * self.d..])
                                .map(|(a, b)| a * b)
                                .sum::<f32>()
                    })
                    .collect();
                let mx = logits.iter().fold(f32::MIN, |a, &b| a.max(b));
                let e: Vec<f32> = logits.iter().map(|l| (l - mx).exp()).collect();
                let s: f32 = e.iter().sum();
                out.extend(e.iter().map(|v| v / s));
            }
            Ok(out)
        }
        fn describe(&self) -> String {
            "linear test model".into()
        }
    }

    /// `n` rows in roughly `[-1, 1]` with `V · x = ±t` (label 1 for +t), alternating labels; features in
    /// `pin` are set to the given values and only the others are moved to fix the margin.
    pub(crate) fn points(
        n: usize,
        t: f32,
        pin: &[(usize, f32)],
        seed: u64,
    ) -> (Vec<f32>, Vec<u32>) {
        let mut rng = Rng::new(seed);
        let free: Vec<f32> = V
            .iter()
            .enumerate()
            .map(|(j, &v)| {
                if pin.iter().any(|&(p, _)| p == j) {
                    0.0
                } else {
                    v
                }
            })
            .collect();
        let free2: f32 = free.iter().map(|v| v * v).sum();
        let (mut x, mut y) = (Vec::new(), Vec::new());
        for i in 0..n {
            let mut row: Vec<f32> = (0..V.len()).map(|_| rng.range(-1.0, 1.0)).collect();
            for &(j, v) in pin {
                row[j] = v;
            }
            let target = if i % 2 == 0 { t } else { -t };
            let cur: f32 = row.iter().zip(&V).map(|(a, b)| a * b).sum();
            for (r, f) in row.iter_mut().zip(&free) {
                *r += (target - cur) / free2 * f;
            }
            x.extend(row);
            y.push(u32::from(i % 2 == 0));
        }
        (x, y)
    }

    /// A continuous schema over the 10 features in `[-10, 10]`, with `immutable` features frozen.
    pub(crate) fn schema(immutable: &[usize]) -> Schema {
        Schema {
            features: (0..V.len())
                .map(|j| FeatureSpec {
                    name: format!("f{j}"),
                    kind: FeatureKind::Continuous,
                    min: -10.0,
                    max: 10.0,
                    immutable: immutable.contains(&j),
                    eps: None,
                })
                .collect(),
            one_hot: Vec::new(),
        }
    }

    /// The L∞ and L2 distance (in raw units) from a row with `V · x = ±t` to the decision boundary.
    pub(crate) fn boundary_distance(t: f32) -> (f32, f32) {
        let l1: f32 = V.iter().map(|v| v.abs()).sum();
        let l2: f32 = V.iter().map(|v| v * v).sum::<f32>().sqrt();
        (t / l1, t / l2)
    }

    /// Four integer counts in `[0, 20]` then two continuous features, a 2-class linear model over them, and
    /// 12 rows near its boundary (integer features whole): the fixture of the integer-feature tests.
    pub(crate) fn integer_fixture(seed: u64) -> (Schema, Linear, Vec<f32>, Vec<u32>) {
        let kinds = [FeatureKind::Integer; 4]
            .into_iter()
            .chain([FeatureKind::Continuous; 2]);
        let schema = Schema {
            features: kinds
                .enumerate()
                .map(|(j, kind)| FeatureSpec {
                    name: format!("f{j}"),
                    kind,
                    min: 0.0,
                    max: 20.0,
                    immutable: false,
                    eps: None,
                })
                .collect(),
            one_hot: Vec::new(),
        };
        let v = [0.6f32, -0.5, 0.4, -0.3, 0.2, -0.2];
        let mut w: Vec<f32> = v.iter().map(|a| -0.5 * a).collect();
        w.extend(v.iter().map(|a| 0.5 * a));
        let model = Linear::new(w, vec![0.0, 0.0], 6, 2);
        let mut rng = Rng::new(seed);
        let (mut x, mut y) = (Vec::new(), Vec::new());
        while y.len() < 12 {
            let mut row: Vec<f32> = (0..4).map(|_| (5 + rng.below(11)) as f32).collect();
            row.extend([rng.range(5.0, 15.0), rng.range(5.0, 15.0)]);
            let s: f32 = row.iter().zip(&v).map(|(a, b)| a * b).sum();
            if s.abs() > 0.3 && s.abs() < 3.0 {
                y.push(u32::from(s > 0.0));
                x.extend(row);
            }
        }
        (schema, model, x, y)
    }

    /// Number of rows the model gets wrong.
    pub(crate) fn flipped(model: &Linear, x: &[f32], y: &[u32]) -> usize {
        model
            .predict(x)
            .iter()
            .zip(y)
            .filter(|(p, y)| p != y)
            .count()
    }
}

#[cfg(test)]
mod tests {

    use super::test_model::*;
    use super::*;
    use crate::{Constraints, EpsUnits};

    const T: f32 = 1.5;

    fn run(
        model: &Linear,
        x: &[f32],
        y: &[u32],
        c: &Constraints,
        eps: f32,
        p: &SquareParams,
    ) -> AttackOutput {
        let input = AttackInput {
            x,
            labels: y,
            eps,
            constraints: c,
            seed: 7,
        };
        square_attack(model, &input, p).unwrap()
    }

    #[test]
    fn flips_above_the_margin_and_never_below_it() {
        let model = Linear::two_class();
        let (x, y) = points(24, T, &[], 1);
        assert_eq!(flipped(&model, &x, &y), 0);
        let (dist, _) = boundary_distance(T);
        let c = Constraints::box_bounds(10, -10.0, 10.0, Norm::Linf);
        let p = SquareParams::default();

        let strong = run(&model, &x, &y, &c, 1.5 * dist, &p);
        assert!(c.contains(&x, &strong.x_adv, 1.5 * dist));
        assert!(
            flipped(&model, &strong.x_adv, &y) >= 22,
            "{} of 24 flipped",
            flipped(&model, &strong.x_adv, &y)
        );
        assert!(strong.queries <= 1000 * 24);

        let weak = run(&model, &x, &y, &c, 0.5 * dist, &p);
        assert!(c.contains(&x, &weak.x_adv, 0.5 * dist));
        assert_eq!(flipped(&model, &weak.x_adv, &y), 0);
        assert_eq!(
            weak.queries,
            1000 * 24,
            "unbroken rows spend exactly their budget"
        );
    }

    #[test]
    fn l2_ball_is_respected() {
        let model = Linear::two_class();
        let (x, y) = points(12, T, &[], 2);
        let (_, dist) = boundary_distance(T);
        let c = Constraints::box_bounds(10, -10.0, 10.0, Norm::L2);
        let p = SquareParams {
            queries_per_sample: 300,
            ..SquareParams::default()
        };
        // Corners of the inscribed box reach sqrt(m) times less far along V than the best L2 step: 3.5× is enough.
        let strong = run(&model, &x, &y, &c, 3.5 * dist, &p);
        assert!(c.contains(&x, &strong.x_adv, 3.5 * dist));
        assert!(flipped(&model, &strong.x_adv, &y) >= 10);
        let weak = run(&model, &x, &y, &c, 0.9 * dist, &p);
        assert!(c.contains(&x, &weak.x_adv, 0.9 * dist));
        assert_eq!(flipped(&model, &weak.x_adv, &y), 0);
    }

    #[test]
    fn immutable_features_never_move_even_when_they_weigh_most() {
        // Features 0 and 5 carry the two largest weights; pin them and check every query keeps them.
        let pin = [(0, 0.25), (5, -0.4)];
        let mut model = Linear::two_class();
        model.pinned = pin.to_vec();
        let (x, y) = points(16, T, &pin, 3);
        let c = Constraints::from_schema(&schema(&[0, 5]), EpsUnits::Raw, Norm::Linf);
        let out = run(&model, &x, &y, &c, 0.3, &SquareParams::default());
        assert_eq!(
            model.violations.load(std::sync::atomic::Ordering::Relaxed),
            0,
            "a query moved a frozen feature"
        );
        for (a, b) in x.chunks(10).zip(out.x_adv.chunks(10)) {
            assert_eq!((a[0], a[5]), (b[0], b[5]));
        }
        assert!(c.contains(&x, &out.x_adv, 0.3));
        assert!(flipped(&model, &out.x_adv, &y) >= 14);
    }

    #[test]
    fn queries_are_counted_exactly_and_stay_within_budget() {
        let model = Linear::two_class();
        let (x, y) = points(10, T, &[], 4);
        let (dist, _) = boundary_distance(T);
        let c = Constraints::box_bounds(10, -10.0, 10.0, Norm::Linf);
        for (eps, budget) in [
            (0.5 * dist, 37),
            (1.5 * dist, 37),
            (1.5 * dist, 1),
            (0.5 * dist, 0),
        ] {
            let before = model.seen();
            let p = SquareParams {
                queries_per_sample: budget,
                batch: 3,
                ..SquareParams::default()
            };
            let out = run(&model, &x, &y, &c, eps, &p);
            assert_eq!(out.queries, model.seen() - before);
            assert!(out.queries <= u64::from(budget) * 10);
        }
    }

    #[test]
    fn deterministic_for_a_seed_and_independent_of_the_batch() {
        let model = Linear::two_class();
        let (x, y) = points(10, T, &[], 5);
        let (dist, _) = boundary_distance(T);
        let c = Constraints::box_bounds(10, -10.0, 10.0, Norm::Linf);
        let p = SquareParams {
            queries_per_sample: 200,
            ..SquareParams::default()
        };
        let a = run(&model, &x, &y, &c, 0.9 * dist, &p);
        let b = run(&model, &x, &y, &c, 0.9 * dist, &p);
        let one = run(
            &model,
            &x,
            &y,
            &c,
            0.9 * dist,
            &SquareParams { batch: 1, ..p },
        );
        assert_eq!((&a.x_adv, a.queries), (&b.x_adv, b.queries));
        assert_eq!((&a.x_adv, a.queries), (&one.x_adv, one.queries));
        // Both seeds reach the same best corner of a linear model after 200 queries; after 2 they differ.
        let short = SquareParams {
            queries_per_sample: 2,
            ..p
        };
        let s7 = run(&model, &x, &y, &c, 0.9 * dist, &short);
        let input = AttackInput {
            x: &x,
            labels: &y,
            eps: 0.9 * dist,
            constraints: &c,
            seed: 8,
        };
        let s8 = square_attack(&model, &input, &short).unwrap();
        assert_ne!(s7.x_adv, s8.x_adv);
    }

    #[test]
    fn integer_features_stay_whole() {
        let (schema, model, x, y) = integer_fixture(9);
        let c = Constraints::from_schema(&schema, EpsUnits::Raw, Norm::Linf);
        let out = run(&model, &x, &y, &c, 2.5, &SquareParams::default());
        assert!(c.contains(&x, &out.x_adv, 2.5));
        for row in out.x_adv.chunks(6) {
            assert!(
                row[..4].iter().all(|v| v.fract() == 0.0),
                "non-integer count in {row:?}"
            );
            assert!(schema.check_row(row).is_ok());
        }
        assert!(flipped(&model, &out.x_adv, &y) >= 10);
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        let model = Linear::two_class();
        let c = Constraints::box_bounds(10, -10.0, 10.0, Norm::Linf);
        let x = vec![0.0; 10];
        let bad_label = AttackInput {
            x: &x,
            labels: &[5],
            eps: 0.1,
            constraints: &c,
            seed: 0,
        };
        assert!(square_attack(&model, &bad_label, &SquareParams::default()).is_err());
        let short = AttackInput {
            x: &x[..9],
            labels: &[0],
            eps: 0.1,
            constraints: &c,
            seed: 0,
        };
        assert!(square_attack(&model, &short, &SquareParams::default()).is_err());
    }
}
