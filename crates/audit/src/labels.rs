//! Label issues: rows whose label disagrees with what the rest of the data says (flipped or mislabelled).
//!
//! Aegis computes out-of-fold class probabilities itself (stratified, duplicate-group-aware k-fold over the
//! [`crate::gbdt`] classifier, or a cheap k-nearest-neighbour vote), so a row's label is always judged
//! by a model that never saw it, nor any exact copy of it.
//!
//! The noise estimate follows confident learning (Northcutt et al., 2021): per-class thresholds `t_j` (the mean
//! probability of class `j` over rows labelled `j`), the confident joint and its calibration to the label
//! counts give a first count of label issues. That count, and cleanlab's rule of flagging that many rows, is
//! known to flag two to three times the true number: a classifier's own boundary rows (the data's inherent
//! overlap) look like flips. So the flag rule here is a posterior one, calibrated for precision:
//! 1. The noise transition `T[i][j] = P(labelled j | truly i)` is estimated at anchor rows (the quarter of rows
//!    predicted `i` with the highest `p_i`, where the true class is almost surely `i`): the share of them
//!    labelled `j`. Inherent overlap barely reaches anchor rows, so it does not inflate `T`.
//! 2. The out-of-fold probabilities estimate the *noisy* posterior `p = Tᵀ q`; inverting `Tᵀ` gives the clean
//!    posterior `q`, and the probability that row `x` labelled `y` was flipped is `1 − q_y T[y][y] / p_y`.
//!    A boundary row (`p_y ≈ 0.4`) keeps a small flip probability, a confident disagreement (`p_y ≈ T`'s
//!    off-diagonal) a large one.
//! 3. The expected number of flips is what the transition implies (label counts pushed back through `T` give
//!    the true class sizes, times each class's flip rate). Rows are ranked by their flip probability, only
//!    rows whose predicted class differs from their label being eligible, and the cut-off is the one that
//!    maximises the expected F1 (`2·Σ_top P / (m + N̂)`). `expected_rate` overrides the count. When the flip
//!    probabilities of a table with three or more classes add up to less than `N̂` (a soft model spreads its
//!    probability over the classes), each is first multiplied by the shortfall (at most 3) and capped at 1:
//!    they rank well but count too low, and the cut-off would stop at half.
//!
//! On synthetic data with 5–10% inherent (Bayes) error this flags close to the true number of flips, where
//! cleanlab's default rule flags 1.3–9 times as many; the gain in F1 is largest at low flip rates and for
//! targeted flips (`compare_with_cleanlab` in the tests prints the figures).
//!
//! The per-row label quality is `1 − P(flipped)`; the row signal's score is that probability rescaled so that
//! the cut-off lands on 0.5.

use aegis_core::{Finding, Frame, Location, RuleDoc, Severity};
use aegis_stats::rng::Rng;
use rayon::prelude::*;
use serde_json::{json, Value};

use crate::encode::Encoded;
use crate::gbdt::{self, GbdtConfig};
use crate::{CheckOutput, Error, Kind, RowSignal, MAX_LISTED_ROWS};

/// Rows whose labels look wrong.
pub const LABEL_ISSUES: RuleDoc = RuleDoc {
    id: "AEG-AUD-001",
    name: "label-issues",
    severity: Severity::Medium,
    summary: "Rows whose label disagrees confidently with what a model trained on the other rows predicts: \
              likely flipped or mislabelled.",
    why: "Flipping a few percent of labels is the cheapest poisoning attack: it needs no access to the model, \
          degrades accuracy, and targeted flips (one class relabelled as another) teach the model to let that \
          class through. Honest labelling errors do the same damage less deliberately.",
    fix: "Inspect the listed rows (the flags CSV has all of them) and re-label or drop those that are wrong; \
          retrain without the flagged rows and compare accuracy on a trusted hold-out; if the flips concentrate \
          in one class pair or one data source, find out who could write those labels.",
    atlas: &["AML.T0020"],
    cwe: &[20],
};

/// All rules of this module.
pub const RULES: &[RuleDoc] = &[LABEL_ISSUES];

/// The model that produces the out-of-fold probabilities.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabelModel {
    /// Histogram gradient-boosted trees (the default).
    Gbdt,
    /// Vote of the `k` nearest neighbours (mixed distance) in a sample of the training folds: cheap and rough.
    Knn {
        /// Neighbours.
        k: usize,
    },
}

/// Options of the label check.
#[derive(Debug, Clone)]
pub struct LabelConfig {
    /// Number of cross-validation folds (at least 2).
    pub folds: usize,
    /// Seed for fold assignment and models.
    pub seed: u64,
    /// Model for the out-of-fold probabilities.
    pub model: LabelModel,
    /// Flag this share of rows (ranked by flip probability) instead of the estimated count; only rows whose
    /// predicted class differs from their label can be flagged, so fewer may be.
    pub expected_rate: Option<f64>,
}

impl Default for LabelConfig {
    fn default() -> Self {
        LabelConfig {
            folds: 5,
            seed: 0,
            model: LabelModel::Gbdt,
            expected_rate: None,
        }
    }
}

/// What the label check returns.
#[derive(Debug, Clone, Default)]
pub struct LabelOutput {
    /// Findings, signals (one per row) and metrics.
    pub check: CheckOutput,
    /// Out-of-fold class probabilities, row-major `n_rows x n_classes`.
    pub oof: Vec<f32>,
    /// The out-of-fold probability of each row's own label.
    pub given_prob: Vec<f32>,
}

/// Fewest rows the check runs on.
const MIN_ROWS: usize = 20;
/// Reference rows per fold for the kNN model at most.
const KNN_REFERENCE: usize = 2000;
/// Smallest anchor set per class.
const MIN_ANCHORS: usize = 20;
/// Share of a class's predicted rows used as anchors.
const ANCHOR_SHARE: f64 = 0.25;
/// Probability floor of the out-of-fold probabilities.
const P_FLOOR: f32 = 1e-5;

/// Largest factor by which underconfident flip probabilities are scaled (see `estimate`): digits with 10%
/// flips needs 1.4; an unbounded factor would flag every row whose predicted class differs from its label.
const MAX_LIFT: f64 = 3.0;

/// Training rows per fold at most: enough for good probabilities, and it keeps a million-row audit bounded.
const MAX_TRAIN_ROWS: usize = 30_000;

/// The boosting options of the label check: the defaults with a capped training sample and fewer rounds.
fn label_gbdt() -> GbdtConfig {
    GbdtConfig {
        max_train_rows: MAX_TRAIN_ROWS,
        max_rounds: 60,
        learning_rate: 0.2,
        ..GbdtConfig::default()
    }
}

/// Runs the label check (see the module docs). `groups` gives each row's exact-duplicate group: rows of one
/// group always fall in the same fold.
pub fn check(
    frame: &Frame,
    enc: &Encoded,
    groups: Option<&[u32]>,
    cfg: &LabelConfig,
) -> Result<LabelOutput, Error> {
    let labels = frame.labels.as_ref().ok_or_else(|| Error::NoLabels {
        dataset: frame.source.clone(),
    })?;
    let n = frame.n_rows.min(labels.codes.len()).min(enc.n_rows);
    let k = labels.classes.len();
    if cfg.folds < 2 {
        return Err(Error::InvalidOption(format!(
            "label check: folds must be at least 2, got {}",
            cfg.folds
        )));
    }
    if let Some(r) = cfg.expected_rate {
        if !(0.0..=1.0).contains(&r) {
            return Err(Error::InvalidOption(format!(
                "label check: expected rate must be in [0, 1], got {r}"
            )));
        }
    }
    if n < MIN_ROWS.max(2 * cfg.folds) {
        return Err(Error::TooFewRows {
            dataset: frame.source.clone(),
            what: format!("the label check needs at least {MIN_ROWS} rows, got {n}"),
        });
    }
    if enc.n_cols() == 0 {
        return Err(Error::TooFewRows {
            dataset: frame.source.clone(),
            what: "the label check needs at least one numeric, categorical or boolean column"
                .into(),
        });
    }
    let y: Vec<u32> = labels.codes[..n]
        .iter()
        .map(|&c| c.min(k.saturating_sub(1) as u32))
        .collect();
    if k < 2 {
        let mut out = LabelOutput {
            oof: vec![1.0; n * k],
            given_prob: vec![1.0; n],
            ..Default::default()
        };
        out.check.signals = (0..n)
            .map(|row| RowSignal {
                row,
                kind: Kind::Label,
                score: 0.0,
                flagged: false,
            })
            .collect();
        out.check
            .metrics
            .insert("labels.skipped".into(), json!("fewer than two classes"));
        return Ok(out);
    }
    let folds = assign_folds(&y, groups, cfg.folds, cfg.seed);
    let oof = out_of_fold(enc, &y, &folds, k, cfg);
    let est = estimate(&oof, &y, k, cfg.expected_rate);
    let given_prob: Vec<f32> = (0..n).map(|i| oof[i * k + y[i] as usize]).collect();
    let check = report(frame, &y, &oof, &est, k, cfg);
    Ok(LabelOutput {
        check,
        oof,
        given_prob,
    })
}

/// Stratified, group-aware fold assignment: units (duplicate groups, or single rows) are shuffled within
/// their label stratum and each goes to the fold with the fewest rows of that stratum so far.
pub fn assign_folds(y: &[u32], groups: Option<&[u32]>, folds: usize, seed: u64) -> Vec<usize> {
    let n = y.len();
    let folds = folds.max(1);
    // Units: (stratum label, rows).
    let mut units: Vec<(u32, Vec<usize>)> = match groups {
        Some(g) => {
            let mut index: std::collections::HashMap<u32, usize> = Default::default();
            let mut units: Vec<(u32, Vec<usize>)> = Vec::new();
            for (i, &label) in y.iter().enumerate() {
                match g.get(i) {
                    Some(&gid) => {
                        let u = *index.entry(gid).or_insert_with(|| {
                            units.push((label, Vec::new()));
                            units.len() - 1
                        });
                        units[u].1.push(i);
                    }
                    None => units.push((label, vec![i])),
                }
            }
            units
        }
        None => (0..n).map(|i| (y[i], vec![i])).collect(),
    };
    let mut rng = Rng::new(seed ^ 0x666f_6c64);
    rng.shuffle(&mut units);
    // Larger groups first so they spread evenly; stable within a size.
    units.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.len().cmp(&a.1.len())));
    let strata = y.iter().copied().max().map_or(0, |m| m as usize + 1);
    let mut counts = vec![vec![0usize; folds]; strata];
    let mut totals = vec![0usize; folds];
    let mut out = vec![0usize; n];
    for (label, rows) in &units {
        let c = &mut counts[*label as usize];
        let f = (0..folds)
            .min_by_key(|&f| (c[f], totals[f], f))
            .unwrap_or(0);
        c[f] += rows.len();
        totals[f] += rows.len();
        for &r in rows {
            out[r] = f;
        }
    }
    out
}

/// Out-of-fold probabilities (`n x k`), floored and renormalised.
fn out_of_fold(enc: &Encoded, y: &[u32], folds: &[usize], k: usize, cfg: &LabelConfig) -> Vec<f32> {
    let n = y.len();
    let n_folds = folds.iter().copied().max().map_or(0, |m| m + 1);
    let per_fold: Vec<(Vec<usize>, Vec<f32>)> = (0..n_folds)
        .into_par_iter()
        .map(|f| {
            let test: Vec<usize> = (0..n).filter(|&i| folds[i] == f).collect();
            let train: Vec<usize> = (0..n).filter(|&i| folds[i] != f).collect();
            let train_y: Vec<u32> = train.iter().map(|&i| y[i]).collect();
            let seed = cfg.seed.wrapping_add(f as u64 * 0x9E37_79B9);
            let p = match cfg.model {
                LabelModel::Gbdt => {
                    let model = gbdt::fit(enc, &train, &train_y, k, &label_gbdt(), seed);
                    model.predict_proba(enc, &test)
                }
                LabelModel::Knn { k: neighbours } => {
                    knn_proba(enc, &train, &train_y, &test, k, neighbours, seed)
                }
            };
            (test, p)
        })
        .collect();
    let mut oof = vec![1.0 / k as f32; n * k];
    for (test, p) in per_fold {
        for (&i, row) in test.iter().zip(p.chunks(k)) {
            let dst = &mut oof[i * k..(i + 1) * k];
            let mut sum = 0.0;
            for (d, &v) in dst.iter_mut().zip(row) {
                *d = if v.is_finite() {
                    v.max(P_FLOOR)
                } else {
                    P_FLOOR
                };
                sum += *d;
            }
            dst.iter_mut().for_each(|d| *d /= sum);
        }
    }
    oof
}

/// Class probabilities of `test` rows from the `neighbours` nearest reference rows (a sample of `train`),
/// smoothed towards the training prior.
fn knn_proba(
    enc: &Encoded,
    train: &[usize],
    train_y: &[u32],
    test: &[usize],
    k: usize,
    neighbours: usize,
    seed: u64,
) -> Vec<f32> {
    let mut idx: Vec<usize> = (0..train.len()).collect();
    let mut rng = Rng::new(seed ^ 0x006b_6e6e);
    rng.shuffle(&mut idx);
    idx.truncate(KNN_REFERENCE);
    let reference: Vec<(usize, u32)> = idx.iter().map(|&i| (train[i], train_y[i])).collect();
    let mut prior = vec![0.0f32; k];
    for &c in train_y {
        prior[c as usize] += 1.0;
    }
    let total: f32 = prior.iter().sum::<f32>().max(1.0);
    prior.iter_mut().for_each(|p| *p /= total);
    let nb = neighbours.clamp(1, reference.len().max(1));
    let mut out = vec![0.0f32; test.len() * k];
    out.par_chunks_mut(k)
        .zip(test.par_iter())
        .for_each(|(o, &t)| {
            let row = enc.row(t);
            let mut d: Vec<(f32, u32)> = reference
                .iter()
                .map(|&(r, c)| (enc.distance(row, enc.row(r)), c))
                .collect();
            if d.is_empty() {
                o.copy_from_slice(&prior);
                return;
            }
            let nb = nb.min(d.len());
            d.select_nth_unstable_by(nb - 1, |a, b| a.0.total_cmp(&b.0));
            for &(_, c) in &d[..nb] {
                o[c as usize] += 1.0;
            }
            for (v, p) in o.iter_mut().zip(&prior) {
                *v = (*v + p) / (nb as f32 + 1.0);
            }
        });
    out
}

/// The noise estimate and the flag decision.
#[derive(Debug, Clone)]
struct Estimate {
    /// Per-class thresholds `t_j`.
    thresholds: Vec<f64>,
    /// Label issues by the confident joint (cleanlab's count).
    joint_issues: f64,
    /// Noise transition `T[true][given]`.
    transition: Vec<Vec<f64>>,
    /// Per-row probability that the label was flipped.
    p_flip: Vec<f32>,
    /// Per-row most likely true class.
    suggested: Vec<u32>,
    /// Expected number of flipped rows (from the transition).
    expected: f64,
    /// Sum of the per-row flip probabilities (a second estimate of the count).
    posterior_sum: f64,
    /// Flagged rows, most suspicious first.
    flagged: Vec<usize>,
    /// Flip probability at the cut-off.
    cutoff: f32,
}

fn argmax(p: &[f32]) -> usize {
    p.iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1).then(b.0.cmp(&a.0)))
        .map_or(0, |x| x.0)
}

/// Confident joint, calibrated to the label counts (`[given][true]`), and the per-class thresholds.
fn confident_joint(oof: &[f32], y: &[u32], k: usize) -> (Vec<f64>, Vec<Vec<f64>>) {
    let n = y.len();
    let mut sums = vec![0.0f64; k];
    let mut counts = vec![0usize; k];
    for i in 0..n {
        let c = y[i] as usize;
        sums[c] += oof[i * k + c] as f64;
        counts[c] += 1;
    }
    let thresholds: Vec<f64> = (0..k)
        .map(|j| {
            if counts[j] > 0 {
                sums[j] / counts[j] as f64
            } else {
                1.0
            }
        })
        .collect();
    let mut joint = vec![vec![0.0f64; k]; k];
    for i in 0..n {
        let p = &oof[i * k..(i + 1) * k];
        let best = (0..k)
            .filter(|&j| p[j] as f64 >= thresholds[j] - 1e-6)
            .max_by(|&a, &b| p[a].total_cmp(&p[b]));
        if let Some(j) = best {
            joint[y[i] as usize][j] += 1.0;
        }
    }
    for (row, &c) in joint.iter_mut().zip(&counts) {
        let s: f64 = row.iter().sum();
        if s > 0.0 {
            row.iter_mut().for_each(|v| *v *= c as f64 / s);
        }
    }
    (thresholds, joint)
}

/// Inverse of a small square matrix by Gauss–Jordan elimination with partial pivoting.
fn invert(m: &[Vec<f64>]) -> Option<Vec<Vec<f64>>> {
    let k = m.len();
    let mut a: Vec<Vec<f64>> = m
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let mut row = r.clone();
            row.extend((0..k).map(|j| if i == j { 1.0 } else { 0.0 }));
            row
        })
        .collect();
    for c in 0..k {
        let p = (c..k).max_by(|&x, &y| a[x][c].abs().total_cmp(&a[y][c].abs()))?;
        if a[p][c].abs() < 1e-9 {
            return None;
        }
        a.swap(c, p);
        let pivot = a[c][c];
        a[c].iter_mut().for_each(|v| *v /= pivot);
        for r in 0..k {
            if r != c {
                let f = a[r][c];
                if f != 0.0 {
                    let pivot_row = a[c].clone();
                    for (v, p) in a[r].iter_mut().zip(&pivot_row) {
                        *v -= f * p;
                    }
                }
            }
        }
    }
    Some(a.into_iter().map(|r| r[k..].to_vec()).collect())
}

/// Confident-learning statistics, the anchor-based noise transition, per-row flip probabilities and the
/// calibrated flag set (see the module docs).
fn estimate(oof: &[f32], y: &[u32], k: usize, expected_rate: Option<f64>) -> Estimate {
    let n = y.len();
    let (thresholds, joint) = confident_joint(oof, y, k);
    let joint_issues: f64 = (0..k)
        .flat_map(|i| (0..k).filter(move |&j| j != i).map(move |j| (i, j)))
        .map(|(i, j)| joint[i][j])
        .sum();
    // Anchors: per predicted class, the most confident quarter.
    let pred: Vec<usize> = (0..n).map(|i| argmax(&oof[i * k..(i + 1) * k])).collect();
    let mut by_pred: Vec<Vec<usize>> = vec![Vec::new(); k];
    for (i, &c) in pred.iter().enumerate() {
        by_pred[c].push(i);
    }
    let mut transition = vec![vec![0.0f64; k]; k];
    for (i, rows) in by_pred.iter_mut().enumerate() {
        rows.sort_unstable_by(|&a, &b| oof[b * k + i].total_cmp(&oof[a * k + i]));
        let m = ((rows.len() as f64 * ANCHOR_SHARE) as usize)
            .max(MIN_ANCHORS)
            .min(rows.len());
        let off_prior = if k > 1 { 0.5 / (k - 1) as f64 } else { 0.0 };
        let mut c = vec![0.0f64; k];
        for &r in &rows[..m] {
            c[y[r] as usize] += 1.0;
        }
        let total = m as f64 + 0.5;
        for j in 0..k {
            transition[i][j] = if j == i {
                c[j] / total
            } else {
                (c[j] + off_prior) / total
            };
        }
        if m == 0 {
            transition[i] = (0..k).map(|j| if j == i { 1.0 } else { 0.0 }).collect();
            continue;
        }
        // Keep the diagonal dominant: an anchor set mostly labelled otherwise says the class is not learnable.
        let off: f64 = (0..k).filter(|&j| j != i).map(|j| transition[i][j]).sum();
        if off > 0.5 {
            let scale = 0.5 / off;
            for (j, t) in transition[i].iter_mut().enumerate() {
                *t = if j == i { 0.5 } else { *t * scale };
            }
        }
    }
    // q = (Tᵀ)⁻¹ p.
    let tt: Vec<Vec<f64>> = (0..k)
        .map(|j| (0..k).map(|i| transition[i][j]).collect())
        .collect();
    let inverse = if k <= 64 { invert(&tt) } else { None };
    let per_row: Vec<(f32, u32)> = (0..n)
        .into_par_iter()
        .map(|r| {
            let p = &oof[r * k..(r + 1) * k];
            let g = y[r] as usize;
            let mut q: Vec<f64> = match &inverse {
                Some(m) => m
                    .iter()
                    .map(|row| row.iter().zip(p).map(|(a, &b)| a * b as f64).sum::<f64>())
                    .map(|v: f64| v.max(0.0))
                    .collect(),
                None => p.iter().map(|&v| v as f64).collect(),
            };
            let s: f64 = q.iter().sum();
            if s > 0.0 {
                q.iter_mut().for_each(|v| *v /= s);
            } else {
                q = p.iter().map(|&v| v as f64).collect();
            }
            // P(true = i, labelled g | x) ∝ q_i T[i][g].
            let joint: Vec<f64> = (0..k).map(|i| q[i] * transition[i][g]).collect();
            let z: f64 = joint.iter().sum();
            let flip = if z > 0.0 { 1.0 - joint[g] / z } else { 0.0 };
            let suggested = (0..k)
                .filter(|&i| i != g)
                .max_by(|&a, &b| joint[a].total_cmp(&joint[b]))
                .unwrap_or(g);
            (flip.clamp(0.0, 1.0) as f32, suggested as u32)
        })
        .collect();
    let p_flip: Vec<f32> = per_row.iter().map(|x| x.0).collect();
    let suggested: Vec<u32> = per_row.iter().map(|x| x.1).collect();
    let posterior_sum: f64 = p_flip.iter().map(|&v| v as f64).sum();
    // The count implied by the transition: true class sizes (label counts pushed back through T) times
    // each class's flip rate.
    let mut label_counts = vec![0.0f64; k];
    for &c in y {
        label_counts[c as usize] += 1.0;
    }
    let true_counts: Vec<f64> = match &inverse {
        Some(m) => m
            .iter()
            .map(|row| {
                row.iter()
                    .zip(&label_counts)
                    .map(|(a, b)| a * b)
                    .sum::<f64>()
                    .max(0.0)
            })
            .collect(),
        None => label_counts.clone(),
    };
    let by_transition: f64 = (0..k)
        .map(|i| true_counts[i] * (1.0 - transition[i][i]))
        .sum();
    let expected = by_transition;
    let mut order: Vec<usize> = (0..n).filter(|&i| pred[i] != y[i] as usize).collect();
    order.sort_by(|&a, &b| p_flip[b].total_cmp(&p_flip[a]).then(a.cmp(&b)));
    // A soft model (many classes, few rows per class) spreads probability over every class, and the per-row
    // flip probabilities then add up to less than the count the transition implies: they are underconfident,
    // and the expected-F1 cut-off below would stop early. Each is multiplied by that shortfall (at most
    // MAX_LIFT) and capped at 1: the confident rows then count as one flip each, and the cut-off goes on to the
    // rows that follow. (A uniform factor without the cap would not move the cut-off at all.) With two classes
    // there is nothing to spread over: a shortfall there is the classes' natural overlap, which the anchors do
    // not see, and scaling would flag it.
    let lift = if k >= 3 && posterior_sum > 0.0 && expected > posterior_sum {
        (expected / posterior_sum).min(MAX_LIFT)
    } else {
        1.0
    };
    let m = match expected_rate {
        Some(rate) => ((rate * n as f64).round() as usize).min(order.len()),
        None => {
            let mut best = (0.0f64, 0usize);
            let mut tp = 0.0f64;
            for (idx, &r) in order.iter().enumerate() {
                tp += (p_flip[r] as f64 * lift).min(1.0);
                let f1 = 2.0 * tp / ((idx + 1) as f64 + expected);
                if f1 > best.0 {
                    best = (f1, idx + 1);
                }
            }
            best.1
        }
    };
    let flagged: Vec<usize> = order[..m].to_vec();
    let cutoff = flagged.last().map_or(1.0, |&r| p_flip[r]);
    Estimate {
        thresholds,
        joint_issues,
        transition,
        p_flip,
        suggested,
        expected,
        posterior_sum,
        flagged,
        cutoff,
    }
}

/// Maps a flip probability to a score whose value at the cut-off is 0.5 (monotone, piecewise linear).
fn score(p: f32, cutoff: f32) -> f32 {
    let c = cutoff.clamp(1e-6, 1.0 - 1e-6);
    let s = if p <= c {
        0.5 * p / c
    } else {
        0.5 + 0.5 * (p - c) / (1.0 - c)
    };
    s.clamp(0.0, 1.0)
}

/// Findings, signals and metrics from the estimate.
fn report(
    frame: &Frame,
    y: &[u32],
    oof: &[f32],
    est: &Estimate,
    k: usize,
    cfg: &LabelConfig,
) -> CheckOutput {
    let n = y.len();
    let classes: Vec<String> = frame
        .labels
        .as_ref()
        .map(|l| l.classes.clone())
        .unwrap_or_default();
    let name = |c: usize| classes.get(c).cloned().unwrap_or_else(|| c.to_string());
    let mut is_flagged = vec![false; n];
    for &r in &est.flagged {
        is_flagged[r] = true;
    }
    let mut out = CheckOutput {
        signals: (0..n)
            .map(|row| RowSignal {
                row,
                kind: Kind::Label,
                score: score(est.p_flip[row], est.cutoff),
                flagged: is_flagged[row],
            })
            .collect(),
        ..Default::default()
    };
    let rate = est.expected / n as f64;
    let flagged_rate = est.flagged.len() as f64 / n as f64;
    // Noise matrix: share of truly-i rows labelled j, from the flagged rows and the transition.
    let mut cells = Vec::new();
    for i in 0..k {
        for j in 0..k {
            if i == j {
                continue;
            }
            let rows = est
                .flagged
                .iter()
                .filter(|&&r| y[r] as usize == j && est.suggested[r] as usize == i)
                .count();
            if rows > 0 || est.transition[i][j] >= 0.005 {
                cells.push(json!({
                    "true": name(i),
                    "labelled": name(j),
                    "rate": round4(est.transition[i][j]),
                    "flagged_rows": rows,
                }));
            }
        }
    }
    let m = &mut out.metrics;
    m.insert(
        "labels.model".into(),
        json!(match cfg.model {
            LabelModel::Gbdt => "gbdt".to_string(),
            LabelModel::Knn { k } => format!("knn(k={k})"),
        }),
    );
    m.insert("labels.folds".into(), json!(cfg.folds));
    m.insert(
        "labels.thresholds".into(),
        Value::Object(
            est.thresholds
                .iter()
                .enumerate()
                .map(|(j, t)| (name(j), json!(round4(*t))))
                .collect(),
        ),
    );
    m.insert(
        "labels.confident_joint_issues".into(),
        json!(est.joint_issues.round()),
    );
    m.insert(
        "labels.estimated_issues".into(),
        json!(est.expected.round()),
    );
    m.insert("labels.estimated_rate".into(), json!(round4(rate)));
    m.insert(
        "labels.posterior_issues".into(),
        json!(est.posterior_sum.round()),
    );
    m.insert("labels.flagged".into(), json!(est.flagged.len()));
    m.insert("labels.cutoff".into(), json!(round4(est.cutoff as f64)));
    let accuracy = (0..n)
        .filter(|&i| argmax(&oof[i * k..(i + 1) * k]) == y[i] as usize)
        .count() as f64
        / n as f64;
    m.insert("labels.oof_accuracy".into(), json!(round4(accuracy)));
    if est.flagged.is_empty() {
        return out;
    }
    let severity = if rate >= 0.05 {
        Severity::High
    } else if rate >= 0.01 {
        Severity::Medium
    } else {
        Severity::Low
    };
    let mean_conf = est
        .flagged
        .iter()
        .map(|&r| est.p_flip[r] as f64)
        .sum::<f64>()
        / est.flagged.len() as f64;
    let words = if mean_conf >= 0.8 {
        "high"
    } else if mean_conf >= 0.5 {
        "moderate"
    } else {
        "low"
    };
    let listed: Vec<Value> = est
        .flagged
        .iter()
        .take(MAX_LISTED_ROWS)
        .map(|&r| {
            json!({
                "row": r,
                "given": name(y[r] as usize),
                "suggested": name(est.suggested[r] as usize),
                "confidence": round4(est.p_flip[r] as f64),
                "given_prob": round4(oof[r * k + y[r] as usize] as f64),
            })
        })
        .collect();
    let examples: Vec<String> = est
        .flagged
        .iter()
        .take(3)
        .map(|&r| {
            format!(
                "row {r} labelled '{}' looks like '{}' (flip probability {:.2})",
                name(y[r] as usize),
                name(est.suggested[r] as usize),
                est.p_flip[r]
            )
        })
        .collect();
    let top_cell = cells
        .iter()
        .max_by_key(|c| c["flagged_rows"].as_u64().unwrap_or(0))
        .map(|c| {
            format!(
                "; most are class '{}' labelled '{}'",
                c["true"].as_str().unwrap_or(""),
                c["labelled"].as_str().unwrap_or("")
            )
        })
        .unwrap_or_default();
    let message = format!(
        "{} of {} rows ({:.1}%) carry a label that out-of-fold models contradict with {words} confidence \
         (mean flip probability {:.2}); estimated label-noise rate {:.1}%{top_cell}. E.g. {}.",
        est.flagged.len(),
        n,
        100.0 * flagged_rate,
        mean_conf,
        100.0 * rate,
        examples.join("; ")
    );
    let finding = Finding::new(
        &LABEL_ISSUES,
        Location::Dataset {
            path: frame.source.clone(),
            row: None,
            column: frame.labels.as_ref().map(|l| l.column.clone()),
        },
        message,
    )
    .with_severity(severity)
    .with_evidence(json!({
        "flagged_count": est.flagged.len(),
        "rows_total": n,
        "estimated_noise_rate": round4(rate),
        "estimated_issues": est.expected.round(),
        "confident_joint_issues": est.joint_issues.round(),
        "mean_flip_probability": round4(mean_conf),
        "confidence": words,
        "cutoff_flip_probability": round4(est.cutoff as f64),
        "noise_matrix": cells,
        "rows": listed,
        "rows_listed": est.flagged.len().min(MAX_LISTED_ROWS),
        "severity_reason": "estimated noise rate: >= 5% high, >= 1% medium, else low",
    }));
    out.findings.push(finding);
    out
}

fn round4(x: f64) -> f64 {
    (x * 1e4).round() / 1e4
}

#[cfg(test)]
mod tests {
    use super::*;
    use aegis_core::{Column, ColumnData, Labels};

    /// Gaussian blobs on a circle of radius `r` in the first two of `dims` dimensions (the rest is noise):
    /// overlapping classes, so the clean data has an inherent (Bayes) error.
    fn blobs(n: usize, k: usize, dims: usize, r: f32, seed: u64) -> (Frame, Vec<u32>) {
        let mut rng = Rng::new(seed);
        let mut cols = vec![Vec::with_capacity(n); dims];
        let mut y = Vec::with_capacity(n);
        for _ in 0..n {
            let c = rng.below(k);
            let a = 2.0 * std::f32::consts::PI * c as f32 / k as f32;
            for (d, col) in cols.iter_mut().enumerate() {
                let mean = match d {
                    0 => r * a.cos(),
                    1 => r * a.sin(),
                    _ => 0.0,
                };
                col.push((mean + rng.normal()) as f64);
            }
            y.push(c as u32);
        }
        let columns = cols
            .into_iter()
            .enumerate()
            .map(|(d, v)| Column {
                name: format!("x{d}"),
                data: ColumnData::Numeric(v),
            })
            .collect();
        (frame(columns, &y, k, n), y)
    }

    /// A table with two numeric columns, a categorical and a boolean; the label is a noisy function of them.
    fn table(n: usize, seed: u64) -> (Frame, Vec<u32>) {
        let mut rng = Rng::new(seed);
        let (mut a, mut b, mut c, mut d, mut y) = (vec![], vec![], vec![], vec![], vec![]);
        for _ in 0..n {
            let x0 = rng.normal();
            let x1 = if rng.uniform() < 0.05 {
                f32::NAN
            } else {
                rng.normal()
            };
            let cat = rng.below(5) as u32;
            let flag = rng.uniform() < 0.3;
            let shift = match cat {
                0 => 2.5,
                1 => -2.5,
                _ => 0.0,
            };
            let logit = 3.0 * (x0 + 0.7 * if x1.is_nan() { 0.0 } else { x1 })
                + shift
                + if flag { 1.0 } else { 0.0 };
            let p = 1.0 / (1.0 + (-logit).exp());
            a.push(x0 as f64);
            b.push(x1 as f64);
            c.push(cat);
            d.push(Some(flag));
            y.push(u32::from(rng.uniform() < p));
        }
        let columns = vec![
            Column {
                name: "a".into(),
                data: ColumnData::Numeric(a),
            },
            Column {
                name: "b".into(),
                data: ColumnData::Numeric(b),
            },
            Column {
                name: "c".into(),
                data: ColumnData::Categorical {
                    codes: c,
                    levels: (0..5).map(|i| format!("c{i}")).collect(),
                },
            },
            Column {
                name: "d".into(),
                data: ColumnData::Boolean(d),
            },
        ];
        (frame(columns, &y, 2, n), y)
    }

    fn frame(columns: Vec<Column>, y: &[u32], k: usize, n: usize) -> Frame {
        Frame {
            source: "t.csv".into(),
            columns,
            labels: Some(Labels {
                column: "y".into(),
                codes: y.to_vec(),
                classes: (0..k).map(|c| c.to_string()).collect(),
            }),
            n_rows: n,
        }
    }

    fn set_labels(frame: &mut Frame, y: &[u32]) {
        if let Some(l) = frame.labels.as_mut() {
            l.codes = y.to_vec();
        }
    }

    /// Flips `rate` of the rows to another class, uniformly; returns the flipped rows.
    fn flip_random(y: &mut [u32], k: usize, rate: f64, seed: u64) -> Vec<usize> {
        let mut rng = Rng::new(seed);
        let mut rows: Vec<usize> = (0..y.len()).collect();
        rng.shuffle(&mut rows);
        rows.truncate((rate * y.len() as f64).round() as usize);
        for &r in &rows {
            let shift = 1 + rng.below(k - 1) as u32;
            y[r] = (y[r] + shift) % k as u32;
        }
        rows
    }

    /// Relabels `count` rows of class `from` as `to`.
    fn flip_targeted(y: &mut [u32], from: u32, to: u32, count: usize, seed: u64) -> Vec<usize> {
        let mut rng = Rng::new(seed);
        let mut rows: Vec<usize> = (0..y.len()).filter(|&i| y[i] == from).collect();
        rng.shuffle(&mut rows);
        rows.truncate(count);
        for &r in &rows {
            y[r] = to;
        }
        rows
    }

    /// cleanlab's default `find_label_issues` rule (`prune_by_noise_rate`): for each off-diagonal cell of the
    /// calibrated confident joint, the `C[i][j]` rows labelled `i` with the largest `p_j - p_i`; rows whose
    /// prediction equals their label are then dropped.
    fn cleanlab_rule(oof: &[f32], y: &[u32], k: usize) -> Vec<usize> {
        let n = y.len();
        let (_, joint) = confident_joint(oof, y, k);
        let mut mask = vec![false; n];
        for i in 0..k {
            let labelled: Vec<usize> = (0..n).filter(|&r| y[r] as usize == i).collect();
            for j in 0..k {
                if i == j {
                    continue;
                }
                let count = joint[i][j].round() as usize;
                let mut by_margin = labelled.clone();
                by_margin.sort_by(|&a, &b| {
                    let ma = oof[a * k + j] - oof[a * k + i];
                    let mb = oof[b * k + j] - oof[b * k + i];
                    mb.total_cmp(&ma)
                });
                for &r in by_margin.iter().take(count) {
                    mask[r] = true;
                }
            }
        }
        (0..n)
            .filter(|&r| mask[r] && argmax(&oof[r * k..(r + 1) * k]) != y[r] as usize)
            .collect()
    }

    fn f1(found: &[usize], truth: &[usize]) -> f64 {
        let truth: std::collections::HashSet<usize> = truth.iter().copied().collect();
        let tp = found.iter().filter(|r| truth.contains(r)).count() as f64;
        if tp == 0.0 {
            return 0.0;
        }
        2.0 * tp / (found.len() as f64 + truth.len() as f64)
    }

    fn flagged(out: &LabelOutput) -> Vec<usize> {
        out.check
            .signals
            .iter()
            .filter(|s| s.flagged)
            .map(|s| s.row)
            .collect()
    }

    /// Runs one scenario: (ours F1, cleanlab F1, ours flagged, cleanlab flagged, truth).
    fn scenario(
        mut frame: Frame,
        mut y: Vec<u32>,
        k: usize,
        poison: impl Fn(&mut [u32]) -> Vec<usize>,
        model: LabelModel,
    ) -> (f64, f64, usize, usize, usize) {
        let truth = poison(&mut y);
        set_labels(&mut frame, &y);
        let enc = Encoded::new(&frame);
        let cfg = LabelConfig {
            model,
            seed: 3,
            ..Default::default()
        };
        let out = check(&frame, &enc, None, &cfg).unwrap();
        let ours = flagged(&out);
        let theirs = cleanlab_rule(&out.oof, &y, k);
        if std::env::var("LABEL_ORACLE").is_ok() {
            let mut order: Vec<usize> = (0..y.len()).collect();
            order.sort_by(|&a, &b| {
                out.check.signals[b]
                    .score
                    .total_cmp(&out.check.signals[a].score)
            });
            let set: std::collections::HashSet<usize> = truth.iter().copied().collect();
            let (mut tp, mut best) = (0.0f64, (0.0f64, 0usize));
            for (i, r) in order.iter().enumerate() {
                if set.contains(r) {
                    tp += 1.0;
                }
                let f = 2.0 * tp / ((i + 1) as f64 + truth.len() as f64);
                if f > best.0 {
                    best = (f, i + 1);
                }
            }
            println!(
                "  oracle best F1 {:.3} at {} rows; metrics {:?}",
                best.0,
                best.1,
                out.check.metrics.get("labels.estimated_issues")
            );
        }
        (
            f1(&ours, &truth),
            f1(&theirs, &truth),
            ours.len(),
            theirs.len(),
            truth.len(),
        )
    }

    /// Out-of-fold probabilities of a soft model over ten classes (the predicted class gets 0.45 to 0.65, the
    /// rest is spread), with 10% of labels flipped at random: the flip probabilities are underconfident, and
    /// without scaling them up to the count the transition implies the cut-off stopped at about half the flips
    /// (scikit-learn's digits table with 10% flips: recall 0.53, F1 0.70; with the scaling F1 0.78).
    #[test]
    fn underconfident_flip_probabilities_still_flag_about_the_flipped_count() {
        let (n, k) = (2000usize, 10usize);
        let mut rng = Rng::new(21);
        let mut oof = vec![0.0f32; n * k];
        let mut y = vec![0u32; n];
        let mut flipped = Vec::new();
        for r in 0..n {
            let truth = r % k;
            let top = rng.range(0.45, 0.65);
            for c in 0..k {
                oof[r * k + c] = if c == truth {
                    top
                } else {
                    (1.0 - top) / (k - 1) as f32
                };
            }
            y[r] = truth as u32;
            if rng.uniform() < 0.1 {
                y[r] = ((truth + 1 + rng.below(k - 1)) % k) as u32;
                flipped.push(r);
            }
        }
        let est = estimate(&oof, &y, k, None);
        let tp = est.flagged.iter().filter(|r| flipped.contains(r)).count();
        let recall = tp as f64 / flipped.len() as f64;
        let precision = tp as f64 / est.flagged.len().max(1) as f64;
        assert!(
            est.posterior_sum < est.expected,
            "the case is underconfident"
        );
        // Without the scaling: recall 0.52; with it 0.65, precision unchanged.
        assert!(
            recall >= 0.6 && precision >= 0.9,
            "recall {recall}, precision {precision}"
        );
        // Negative: confident probabilities with no flips flag nothing.
        let clean: Vec<u32> = (0..n).map(|r| (r % k) as u32).collect();
        let sharp: Vec<f32> = (0..n * k)
            .map(|i| {
                if i % k == (i / k) % k {
                    0.9
                } else {
                    0.1 / (k - 1) as f32
                }
            })
            .collect();
        assert!(estimate(&sharp, &clean, k, None).flagged.is_empty());
    }

    /// The comparison reported in the module docs and the reply: `cargo test -p aegis-audit --lib
    /// labels::tests::compare_with_cleanlab -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn compare_with_cleanlab() {
        let n = 4000;
        for (name, make, k) in [
            ("blobs2", 0, 2usize),
            ("blobs4", 1, 4),
            ("table", 2, 2),
            ("blobs2-easy", 3, 2),
        ] {
            let data = || match make {
                0 => blobs(n, 2, 6, 1.5, 11),
                1 => blobs(n, 4, 4, 2.5, 12),
                3 => blobs(n, 2, 6, 2.2, 14),
                _ => table(n, 13),
            };
            for rate in [0.01, 0.05, 0.10] {
                let (f, y) = data();
                let model = match std::env::var("LABEL_KNN") {
                    Ok(v) => LabelModel::Knn {
                        k: v.parse().unwrap_or(25),
                    },
                    Err(_) => LabelModel::Gbdt,
                };
                let r = scenario(f, y, k, |y| flip_random(y, k, rate, 5), model);
                println!(
                    "{name} random {rate}: ours F1 {:.3} ({} flagged) cleanlab F1 {:.3} ({} flagged) truth {}",
                    r.0, r.2, r.1, r.3, r.4
                );
            }
            let (f, y) = data();
            let count = n / 20;
            let r = scenario(
                f,
                y,
                k,
                |y| flip_targeted(y, 0, 1, count, 6),
                LabelModel::Gbdt,
            );
            println!(
                "{name} targeted 0->1 5%: ours F1 {:.3} ({} flagged) cleanlab F1 {:.3} ({} flagged) truth {}",
                r.0, r.2, r.1, r.3, r.4
            );
        }
    }

    fn run(frame: &Frame, cfg: &LabelConfig) -> LabelOutput {
        let enc = Encoded::new(frame);
        check(frame, &enc, None, cfg).unwrap()
    }

    #[test]
    fn random_flips_are_found_with_precision() {
        let (mut frame, mut y) = blobs(2000, 2, 5, 1.5, 21);
        let truth = flip_random(&mut y, 2, 0.05, 22);
        set_labels(&mut frame, &y);
        let out = run(&frame, &LabelConfig::default());
        let ours = flagged(&out);
        let theirs = cleanlab_rule(&out.oof, &y, 2);
        let (f_ours, f_theirs) = (f1(&ours, &truth), f1(&theirs, &truth));
        assert!(f_ours > 0.6, "F1 {f_ours}");
        assert!(
            f_ours > f_theirs - 0.05,
            "ours {f_ours} vs cleanlab rule {f_theirs}"
        );
        assert!(ours.len() < 2 * truth.len(), "flagged {}", ours.len());
        let f = &out.check.findings[0];
        if std::env::var("LABEL_SHOW").is_ok() {
            println!(
                "{}\n{}",
                f.message,
                serde_json::to_string_pretty(&f.evidence).unwrap()
            );
        }
        assert_eq!(f.rule.as_str(), "AEG-AUD-001");
        assert!(f.severity >= Severity::Medium);
        assert_eq!(f.evidence["flagged_count"], ours.len());
        let rate = f.evidence["estimated_noise_rate"].as_f64().unwrap();
        assert!((0.02..0.1).contains(&rate), "rate {rate}");
        let listed = f.evidence["rows"].as_array().unwrap();
        assert!(listed.len() <= MAX_LISTED_ROWS);
        // The suggested label of a flipped row is its original class.
        let row = listed[0]["row"].as_u64().unwrap() as usize;
        assert_ne!(listed[0]["given"], listed[0]["suggested"]);
        assert_eq!(out.given_prob[row], out.oof[row * 2 + y[row] as usize]);
        for key in [
            "labels.thresholds",
            "labels.estimated_rate",
            "labels.flagged",
            "labels.cutoff",
        ] {
            assert!(out.check.metrics.contains_key(key), "{key}");
        }
        // Dense signals, flagged ones at or above 0.5.
        assert_eq!(out.check.signals.len(), 2000);
        for s in &out.check.signals {
            assert!((0.0..=1.0).contains(&s.score));
            assert_eq!(s.kind, Kind::Label);
            if s.flagged {
                assert!(s.score >= 0.5 - 1e-6);
            }
        }
    }

    #[test]
    fn at_low_noise_precision_beats_the_cleanlab_rule() {
        let (mut frame, mut y) = blobs(3000, 2, 5, 1.5, 81);
        let truth = flip_random(&mut y, 2, 0.01, 82);
        set_labels(&mut frame, &y);
        let out = run(&frame, &LabelConfig::default());
        let ours = flagged(&out);
        let theirs = cleanlab_rule(&out.oof, &y, 2);
        let (f_ours, f_theirs) = (f1(&ours, &truth), f1(&theirs, &truth));
        assert!(
            f_ours > f_theirs + 0.1,
            "ours {f_ours} vs cleanlab rule {f_theirs}"
        );
        assert!(
            theirs.len() > ours.len(),
            "{} vs {}",
            theirs.len(),
            ours.len()
        );
    }

    #[test]
    fn clean_separable_data_gives_no_high_finding() {
        let (frame, _) = blobs(2000, 2, 5, 4.0, 31);
        let out = run(&frame, &LabelConfig::default());
        let n_flagged = flagged(&out).len();
        assert!(n_flagged <= 10, "flagged {n_flagged}");
        assert!(out
            .check
            .findings
            .iter()
            .all(|f| f.severity < Severity::High));
        let (frame, _) = table(2000, 32);
        let out = run(&frame, &LabelConfig::default());
        assert!(out
            .check
            .findings
            .iter()
            .all(|f| f.severity < Severity::High));
    }

    #[test]
    fn targeted_multiclass_flips_point_to_the_source_class() {
        let (mut frame, mut y) = blobs(2400, 4, 4, 2.5, 41);
        let truth = flip_targeted(&mut y, 0, 1, 120, 42);
        set_labels(&mut frame, &y);
        let out = run(&frame, &LabelConfig::default());
        let ours = flagged(&out);
        let score = f1(&ours, &truth);
        assert!(score > 0.6, "F1 {score}");
        let f = &out.check.findings[0];
        let cells = f.evidence["noise_matrix"].as_array().unwrap();
        let top = cells
            .iter()
            .max_by_key(|c| c["flagged_rows"].as_u64().unwrap())
            .unwrap();
        assert_eq!(top["true"], "0");
        assert_eq!(top["labelled"], "1");
    }

    #[test]
    fn knn_model_and_expected_rate() {
        let (mut frame, mut y) = blobs(1500, 2, 4, 1.5, 51);
        let truth = flip_random(&mut y, 2, 0.05, 52);
        set_labels(&mut frame, &y);
        let cfg = LabelConfig {
            model: LabelModel::Knn { k: 15 },
            ..Default::default()
        };
        let out = run(&frame, &cfg);
        let score = f1(&flagged(&out), &truth);
        assert!(score > 0.5, "kNN F1 {score}");
        assert_eq!(out.check.metrics["labels.model"], "knn(k=15)");
        let cfg = LabelConfig {
            expected_rate: Some(0.02),
            ..cfg
        };
        assert_eq!(flagged(&run(&frame, &cfg)).len(), 30);
    }

    #[test]
    fn folds_keep_duplicate_groups_together_and_stay_stratified() {
        let n = 1000;
        let y: Vec<u32> = (0..n).map(|i| u32::from(i % 4 == 0)).collect();
        let groups: Vec<u32> = (0..n as u32).map(|i| i / 7).collect();
        let folds = assign_folds(&y, Some(&groups), 5, 9);
        for i in 1..n {
            if groups[i] == groups[i - 1] {
                assert_eq!(folds[i], folds[i - 1], "row {i}");
            }
        }
        let plain = assign_folds(&y, None, 5, 9);
        for f in 0..5 {
            let pos = (0..n).filter(|&i| plain[i] == f && y[i] == 1).count();
            assert!((49..=51).contains(&pos), "fold {f}: {pos} positives");
            let size = (0..n).filter(|&i| folds[i] == f).count();
            assert!((150..=250).contains(&size), "fold {f}: {size} rows");
        }
        // The check accepts the groups (copies never vouch for each other across folds).
        let (frame, _) = blobs(n, 2, 3, 2.0, 61);
        let enc = Encoded::new(&frame);
        let out = check(&frame, &enc, Some(&groups), &LabelConfig::default()).unwrap();
        assert_eq!(out.oof.len(), 2 * n);
    }

    #[test]
    fn bad_inputs_are_errors() {
        let (mut frame, _) = blobs(100, 2, 2, 2.0, 71);
        let enc = Encoded::new(&frame);
        let bad = LabelConfig {
            folds: 1,
            ..Default::default()
        };
        assert!(matches!(
            check(&frame, &enc, None, &bad),
            Err(Error::InvalidOption(_))
        ));
        let bad = LabelConfig {
            expected_rate: Some(2.0),
            ..Default::default()
        };
        assert!(matches!(
            check(&frame, &enc, None, &bad),
            Err(Error::InvalidOption(_))
        ));
        frame.labels = None;
        assert!(matches!(
            check(&frame, &enc, None, &LabelConfig::default()),
            Err(Error::NoLabels { .. })
        ));
        let (mut text_only, _) = blobs(100, 2, 1, 2.0, 73);
        text_only.columns[0].data = ColumnData::Text(vec![None; 100]);
        let enc = Encoded::new(&text_only);
        assert!(matches!(
            check(&text_only, &enc, None, &LabelConfig::default()),
            Err(Error::TooFewRows { .. })
        ));
        let (small, _) = blobs(10, 2, 2, 2.0, 72);
        let enc = Encoded::new(&small);
        assert!(matches!(
            check(&small, &enc, None, &LabelConfig::default()),
            Err(Error::TooFewRows { .. })
        ));
    }

    /// Prints the check's wall time on larger tables (asserts nothing):
    /// `cargo test -p aegis-audit --lib labels::tests::timing -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn timing() {
        let sizes: Vec<usize> = match std::env::var("LABEL_TIMING_N") {
            Ok(v) => v.split(',').filter_map(|x| x.parse().ok()).collect(),
            Err(_) => vec![50_000, 200_000],
        };
        for n in sizes {
            let (mut frame, mut y) = blobs(n, 2, 14, 1.5, 91);
            flip_random(&mut y, 2, 0.05, 92);
            set_labels(&mut frame, &y);
            let enc = Encoded::new(&frame);
            let t = std::time::Instant::now();
            let out = check(&frame, &enc, None, &LabelConfig::default()).unwrap();
            println!(
                "{n} rows x 14: {:.2}s, flagged {}",
                t.elapsed().as_secs_f64(),
                out.check.metrics["labels.flagged"]
            );
        }
    }
}
