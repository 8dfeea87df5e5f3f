//! Outliers: rows that lie far from the rest of the data, found by two scores that fail differently.
//!
//! Injected poison often sits where no real row is: a far-away point that drags a decision boundary, or a row
//! whose categories never occur together in real data. Two scores look for it:
//! - an **isolation forest** (Liu, Ting and Zhou 2008: 256-row subsamples, height limit `ceil(log2 256)`,
//!   score `2^(-E[h]/c(n))`) over the mixed encoding: a numeric split draws a uniform threshold between the
//!   node's minimum and maximum, a categorical split sends a random subset of the categories present in the
//!   node to the left (so categoricals never need one-hot encoding, which breaks isolation forests), and missing
//!   cells go to a random but fixed side per split;
//! - a **kNN distance**: the mean distance to the `k` nearest rows of a sampled reference set, in the mixed
//!   distance of [`Encoded::distance`] (self excluded). The reference shrinks for very large tables so the cost
//!   stays near 80 million distance evaluations.
//!
//! Both scores are turned into robust z-scores against the bulk of their own distribution (median and the
//! upper-quartile spread, because both are right-skewed; the kNN distance on a log scale), combined with
//! weight [`KNN_WEIGHT`] on the kNN score (it separates injected points from the clean tail far better in our
//! surveys of Gaussian tables with 3 to 20 columns), and flagged when the combined z exceeds
//! [`Z_THRESHOLD`]. This does *not* flag a fixed share of rows the way a contamination parameter does: a clean
//! table flags (almost) nothing, and `--expected-rate` or `--top` are there for users who know better.

use aegis_core::{Finding, Frame, Location, RuleDoc, Severity};
use aegis_stats::rng::Rng;
use rayon::prelude::*;
use serde_json::{json, Value};

use crate::encode::{EncKind, Encoded, MISMATCH};
use crate::{CheckOutput, Error, Kind, RowSignal, MAX_LISTED_ROWS};

/// Rows far from the rest of the data.
pub const OUTLIERS: RuleDoc = RuleDoc {
    id: "AEG-AUD-010",
    name: "outliers",
    severity: Severity::Medium,
    summary: "Rows lie far from the rest of the data (isolation forest and nearest-neighbour distance agree).",
    why: "Injected poison often sits where no real row is: a few far-away points move a decision boundary, and \
          rows with impossible value combinations teach the model behaviour no real input needs. Outliers are \
          also where data-entry and pipeline errors show up.",
    fix: "Inspect the flagged rows, starting with the highest scores and the columns listed as most extreme; \
          drop rows that are errors or injected, retrain without them and compare. If the extremes are real, \
          keep them and consider robust losses or clipping.",
    atlas: &["AML.T0020"],
    cwe: &[20],
};

/// All rules of this module.
pub const RULES: &[RuleDoc] = &[OUTLIERS];

/// The combined robust z above which a row is flagged when neither an expected rate nor a top-K is given.
pub const Z_THRESHOLD: f64 = 4.4;

/// Weight of the kNN score in the combined z (the isolation forest gets the rest): on mixed tables the kNN
/// distance separates injected points from the clean tail far better, the forest adds axis-parallel and
/// categorical evidence.
pub const KNN_WEIGHT: f64 = 0.75;

/// Options of the outlier check.
#[derive(Debug, Clone, PartialEq)]
pub struct OutlierConfig {
    /// Flag this fraction of rows (the highest scores) instead of using the calibrated cut-off.
    pub expected_rate: Option<f64>,
    /// Flag the `top` highest-scoring rows instead of using the calibrated cut-off.
    pub top: Option<usize>,
    /// Seed of the forest and the samples.
    pub seed: u64,
    /// Number of isolation trees.
    pub trees: usize,
    /// Rows per tree.
    pub sample: usize,
    /// Neighbours in the kNN score.
    pub knn_k: usize,
    /// Rows sampled as the neighbour set (fewer for very large tables, see the module docs).
    pub knn_reference: usize,
}

impl Default for OutlierConfig {
    fn default() -> Self {
        OutlierConfig {
            expected_rate: None,
            top: None,
            seed: 0,
            trees: 100,
            sample: 256,
            knn_k: 10,
            knn_reference: 4096,
        }
    }
}

/// Upper bound on distance evaluations of the kNN score (rows times reference rows).
const KNN_BUDGET: usize = 80_000_000;
/// The reference never shrinks below this.
const KNN_MIN_REFERENCE: usize = 256;

/// Average path length of an unsuccessful search in a binary search tree of `n` nodes.
fn c_factor(n: usize) -> f64 {
    match n {
        0 | 1 => 0.0,
        2 => 1.0,
        _ => {
            let n = n as f64;
            2.0 * ((n - 1.0).ln() + 0.577_215_664_901_532_9) - 2.0 * (n - 1.0) / n
        }
    }
}

#[derive(Debug, Clone)]
enum Test {
    /// Left when the value is below the threshold.
    Below(f32),
    /// Left when the category code is in the (sorted) set.
    In(Vec<u32>),
}

#[derive(Debug, Clone)]
enum Node {
    Leaf {
        size: usize,
    },
    Split {
        col: usize,
        test: Test,
        missing_left: bool,
        left: usize,
        right: usize,
    },
}

#[derive(Debug)]
struct Tree {
    nodes: Vec<Node>,
}

fn goes_left(test: &Test, missing_left: bool, x: f32) -> bool {
    if x.is_nan() {
        return missing_left;
    }
    match test {
        Test::Below(t) => x < *t,
        Test::In(set) => set.binary_search(&(x as u32)).is_ok(),
    }
}

impl Tree {
    fn path_length(&self, row: &[f32]) -> f64 {
        let mut node = 0;
        let mut depth = 0.0;
        loop {
            match self.nodes.get(node) {
                Some(Node::Split {
                    col,
                    test,
                    missing_left,
                    left,
                    right,
                }) => {
                    let x = row.get(*col).copied().unwrap_or(f32::NAN);
                    node = if goes_left(test, *missing_left, x) {
                        *left
                    } else {
                        *right
                    };
                    depth += 1.0;
                }
                Some(Node::Leaf { size }) => return depth + c_factor(*size),
                None => return depth,
            }
        }
    }
}

/// A split that separates the rows of a node, drawn at random, or `None` when every column is constant there.
fn draw_split(enc: &Encoded, rows: &[u32], rng: &mut Rng) -> Option<(usize, Test, bool)> {
    let d = enc.n_cols();
    let mut cols: Vec<usize> = (0..d).collect();
    rng.shuffle(&mut cols);
    for col in cols {
        let mut missing = 0usize;
        match enc.kinds[col] {
            EncKind::Numeric => {
                let (mut lo, mut hi) = (f32::INFINITY, f32::NEG_INFINITY);
                for &r in rows {
                    let x = enc.values[r as usize * d + col];
                    if x.is_nan() {
                        missing += 1;
                    } else {
                        lo = lo.min(x);
                        hi = hi.max(x);
                    }
                }
                let present = rows.len() - missing;
                if present > 0 && lo < hi {
                    let mut t = rng.range(lo, hi);
                    if t <= lo {
                        t = lo + (hi - lo) * 0.5;
                    }
                    return Some((col, Test::Below(t), rng.next_u64() & 1 == 0));
                }
                if present > 0 && missing > 0 {
                    return Some((col, Test::Below(f32::INFINITY), false));
                }
            }
            EncKind::Categorical { .. } => {
                let mut cats: Vec<u32> = Vec::new();
                for &r in rows {
                    let x = enc.values[r as usize * d + col];
                    if x.is_nan() {
                        missing += 1;
                    } else {
                        let c = x as u32;
                        if let Err(at) = cats.binary_search(&c) {
                            if cats.len() < 4096 {
                                cats.insert(at, c);
                            }
                        }
                    }
                }
                if cats.len() >= 2 {
                    rng.shuffle(&mut cats);
                    let k = 1 + rng.below(cats.len() - 1);
                    let mut left: Vec<u32> = cats[..k].to_vec();
                    left.sort_unstable();
                    return Some((col, Test::In(left), rng.next_u64() & 1 == 0));
                }
                if cats.len() == 1 && missing > 0 {
                    return Some((col, Test::In(cats), false));
                }
            }
        }
    }
    None
}

fn build(
    enc: &Encoded,
    rows: &mut [u32],
    depth: usize,
    limit: usize,
    rng: &mut Rng,
    nodes: &mut Vec<Node>,
) -> usize {
    let me = nodes.len();
    nodes.push(Node::Leaf { size: rows.len() });
    if rows.len() <= 1 || depth >= limit {
        return me;
    }
    let Some((col, test, missing_left)) = draw_split(enc, rows, rng) else {
        return me;
    };
    let d = enc.n_cols();
    let mut split = 0;
    for i in 0..rows.len() {
        if goes_left(&test, missing_left, enc.values[rows[i] as usize * d + col]) {
            rows.swap(i, split);
            split += 1;
        }
    }
    if split == 0 || split == rows.len() {
        return me;
    }
    let (l, r) = rows.split_at_mut(split);
    let left = build(enc, l, depth + 1, limit, rng, nodes);
    let right = build(enc, r, depth + 1, limit, rng, nodes);
    nodes[me] = Node::Split {
        col,
        test,
        missing_left,
        left,
        right,
    };
    me
}

/// `m` distinct row indices out of `n` (all of them when `m >= n`), sorted.
fn sample_rows(n: usize, m: usize, rng: &mut Rng) -> Vec<u32> {
    if m >= n {
        return (0..n as u32).collect();
    }
    let mut picked: Vec<u32> = Vec::with_capacity(m);
    while picked.len() < m {
        let want = m - picked.len();
        picked.extend((0..want + want / 8 + 4).map(|_| rng.below(n) as u32));
        picked.sort_unstable();
        picked.dedup();
        if picked.len() > m {
            rng.shuffle(&mut picked);
            picked.truncate(m);
            picked.sort_unstable();
        }
    }
    picked
}

/// Isolation-forest anomaly score per row, in `(0, 1)`.
fn isolation_scores(enc: &Encoded, cfg: &OutlierConfig) -> Vec<f32> {
    let n = enc.n_rows;
    let psi = cfg.sample.clamp(2, n.max(2)).min(n);
    let limit = (psi as f64).log2().ceil().max(1.0) as usize;
    let trees: Vec<Tree> = (0..cfg.trees.max(1))
        .into_par_iter()
        .map(|t| {
            let mut rng = Rng::new(cfg.seed ^ (t as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
            let mut rows = sample_rows(n, psi, &mut rng);
            let mut nodes = Vec::new();
            build(enc, &mut rows, 0, limit, &mut rng, &mut nodes);
            Tree { nodes }
        })
        .collect();
    let norm = c_factor(psi).max(1e-9);
    let n_trees = trees.len() as f64;
    (0..n)
        .into_par_iter()
        .map(|i| {
            let row = enc.row(i);
            let mean = trees.iter().map(|t| t.path_length(row)).sum::<f64>() / n_trees;
            2f64.powf(-mean / norm) as f32
        })
        .collect()
}

/// Mean distance to the `k` nearest reference rows per row (self excluded); the reference size used.
fn knn_scores(enc: &Encoded, cfg: &OutlierConfig) -> (Vec<f32>, usize) {
    let n = enc.n_rows;
    let d = enc.n_cols();
    let budget_ref = (KNN_BUDGET / n.max(1)).max(KNN_MIN_REFERENCE);
    let m = cfg.knn_reference.max(2).min(budget_ref).min(n);
    let mut rng = Rng::new(cfg.seed ^ 0x006b_6e6e_5f72_6566);
    let refs = sample_rows(n, m, &mut rng);
    let ref_values: Vec<f32> = refs
        .iter()
        .flat_map(|&r| enc.row(r as usize).iter().copied())
        .collect();
    let k = cfg.knn_k.max(1).min(m.saturating_sub(1).max(1));
    let categorical: Vec<bool> = enc
        .kinds
        .iter()
        .map(|k| matches!(k, EncKind::Categorical { .. }))
        .collect();
    let scores = (0..n)
        .into_par_iter()
        .map_init(
            || Vec::with_capacity(k + 1),
            |best: &mut Vec<f32>, i| {
                best.clear();
                let row = enc.row(i);
                let self_at = refs.binary_search(&(i as u32)).ok();
                for (j, other) in ref_values.chunks_exact(d.max(1)).enumerate() {
                    if Some(j) == self_at {
                        continue;
                    }
                    let worst = if best.len() == k {
                        best[k - 1]
                    } else {
                        f32::INFINITY
                    };
                    let mut sum = 0.0f32;
                    for c in 0..d {
                        let (x, y) = (row[c], other[c]);
                        sum += match (x.is_nan(), y.is_nan()) {
                            (true, true) => 0.0,
                            (true, false) | (false, true) => MISMATCH,
                            (false, false) if categorical[c] => {
                                if x == y {
                                    0.0
                                } else {
                                    MISMATCH
                                }
                            }
                            (false, false) => (x - y) * (x - y),
                        };
                        if sum >= worst {
                            break;
                        }
                    }
                    if sum < worst {
                        let at = best.partition_point(|&b| b <= sum);
                        best.insert(at, sum);
                        best.truncate(k);
                    }
                }
                if best.is_empty() {
                    0.0
                } else {
                    best.iter().map(|s| s.sqrt()).sum::<f32>() / best.len() as f32
                }
            },
        )
        .collect();
    (scores, m)
}

/// Robust location and upper-tail spread of a right-skewed score: the median and
/// `(q75 - q50) / 0.6745`, falling back to higher quantiles, then the mean absolute deviation, for scores
/// that are constant over most rows (e.g. zero kNN distance among natural duplicates).
fn tail_scale(scores: &[f32]) -> (f64, f64) {
    let mut v: Vec<f32> = scores.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return (0.0, 1.0);
    }
    v.par_sort_unstable_by(f32::total_cmp);
    let q = |p: f64| f64::from(v[((v.len() - 1) as f64 * p).round() as usize]);
    let median = q(0.5);
    for (p, z) in [(0.75, 0.6745), (0.9, 1.2816), (0.99, 2.3263)] {
        let s = (q(p) - median) / z;
        if s > 1e-9 * median.abs().max(1e-6) {
            return (median, s);
        }
    }
    let mad = v
        .iter()
        .map(|&x| (f64::from(x) - median).abs())
        .sum::<f64>()
        / v.len() as f64;
    (median, if mad > 1e-12 { mad * 1.253 } else { 1e-6 })
}

/// Runs the outlier check: a dense [`RowSignal`] of kind [`Kind::Outlier`] per row, and a finding when rows are
/// flagged.
pub fn check(frame: &Frame, enc: &Encoded, cfg: &OutlierConfig) -> Result<CheckOutput, Error> {
    let n = enc.n_rows;
    if frame.n_rows != n {
        return Err(Error::InvalidOption(format!(
            "{}: the encoding has {} rows, the data {}",
            frame.source, n, frame.n_rows
        )));
    }
    if let Some(rate) = cfg.expected_rate {
        if !(0.0..=1.0).contains(&rate) {
            return Err(Error::InvalidOption(format!(
                "expected outlier rate must be between 0 and 1, got {rate}"
            )));
        }
    }
    if cfg.trees == 0 || cfg.sample < 2 {
        return Err(Error::InvalidOption(
            "the outlier check needs at least one tree and a sample of at least 2 rows".into(),
        ));
    }
    let mut out = CheckOutput::default();
    if n < 3 || enc.n_cols() == 0 {
        out.metrics.insert(
            "outliers.skipped".into(),
            json!("fewer than 3 rows or no usable columns"),
        );
        return Ok(out);
    }
    let iso = isolation_scores(enc, cfg);
    let (knn, m) = knn_scores(enc, cfg);
    let (iso_med, iso_scale) = tail_scale(&iso);
    // kNN distances are heavy-tailed in low dimensions: compare them on a log scale, floored at a tenth of a
    // large typical distance so that zero distances among natural duplicates do not make everyone else extreme.
    let floor = {
        let mut v = knn.clone();
        let at = (v.len().saturating_sub(1) as f64 * 0.9) as usize;
        v.select_nth_unstable_by(at, f32::total_cmp);
        0.1 * v[at].max(0.0) + 1e-6
    };
    let log_knn: Vec<f32> = knn.par_iter().map(|&x| (x.max(0.0) + floor).ln()).collect();
    let (knn_med, knn_scale) = tail_scale(&log_knn);
    let z: Vec<f64> = iso
        .par_iter()
        .zip(&log_knn)
        .map(|(&a, &b)| {
            let za = (f64::from(a) - iso_med) / iso_scale;
            let zb = (f64::from(b) - knn_med) / knn_scale;
            KNN_WEIGHT * zb + (1.0 - KNN_WEIGHT) * za
        })
        .collect();
    let mut order: Vec<u32> = (0..n as u32).collect();
    order.par_sort_unstable_by(|&a, &b| z[b as usize].total_cmp(&z[a as usize]).then(a.cmp(&b)));
    let (mode, n_flag) = if let Some(k) = cfg.top {
        ("top", k.min(n))
    } else if let Some(rate) = cfg.expected_rate {
        ("expected-rate", ((rate * n as f64).round() as usize).min(n))
    } else {
        (
            "calibrated",
            order
                .iter()
                .take_while(|&&i| z[i as usize] > Z_THRESHOLD)
                .count(),
        )
    };
    let mut flagged = vec![false; n];
    for &i in order.iter().take(n_flag) {
        flagged[i as usize] = true;
    }
    out.signals = (0..n)
        .map(|i| {
            let zi = z[i].max(0.0);
            RowSignal {
                row: i,
                kind: Kind::Outlier,
                score: (zi / (zi + Z_THRESHOLD)) as f32,
                flagged: flagged[i],
            }
        })
        .collect();
    let m_out = &mut out.metrics;
    m_out.insert("outliers.mode".into(), json!(mode));
    m_out.insert("outliers.z_threshold".into(), json!(Z_THRESHOLD));
    m_out.insert("outliers.flagged".into(), json!(n_flag));
    m_out.insert("outliers.rate".into(), json!(n_flag as f64 / n as f64));
    m_out.insert("outliers.trees".into(), json!(cfg.trees));
    m_out.insert("outliers.sample".into(), json!(cfg.sample.min(n)));
    m_out.insert("outliers.knn_k".into(), json!(cfg.knn_k));
    m_out.insert("outliers.knn_reference_rows".into(), json!(m));
    m_out.insert("outliers.iforest_median".into(), json!(iso_med));
    m_out.insert("outliers.iforest_scale".into(), json!(iso_scale));
    m_out.insert("outliers.knn_log_median".into(), json!(knn_med));
    m_out.insert("outliers.knn_weight".into(), json!(KNN_WEIGHT));
    m_out.insert("outliers.knn_log_scale".into(), json!(knn_scale));
    m_out.insert(
        "outliers.max_z".into(),
        json!(order.first().map_or(0.0, |&i| z[i as usize])),
    );
    if n_flag > 0 {
        let rows: Vec<usize> = order.iter().take(n_flag).map(|&i| i as usize).collect();
        let explain = Explainer::new(frame, enc, cfg.seed);
        let top: Vec<Value> = rows
            .iter()
            .take(MAX_LISTED_ROWS)
            .enumerate()
            .map(|(rank, &i)| {
                let mut entry = json!({
                    "row": i,
                    "score": out.signals[i].score,
                    "z": z[i],
                    "iforest": iso[i],
                    "knn_distance": knn[i],
                });
                if rank < 20 {
                    entry["extreme_columns"] = explain.row(i);
                }
                entry
            })
            .collect();
        let mut listed = rows.clone();
        listed.truncate(MAX_LISTED_ROWS);
        let shown: Vec<String> = rows.iter().take(10).map(|r| r.to_string()).collect();
        let first_cols: Vec<String> = top
            .first()
            .and_then(|t| t["extreme_columns"].as_array())
            .map(|cols| {
                cols.iter()
                    .take(3)
                    .filter_map(|c| c["column"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        let how = match mode {
            "top" => format!("the {n_flag} highest scores (--top)"),
            "expected-rate" => format!(
                "the highest {:.2}% (--expected-rate)",
                100.0 * n_flag as f64 / n as f64
            ),
            _ => format!("combined robust z above {Z_THRESHOLD}"),
        };
        let message = format!(
            "{} rows ({:.2}%) lie far from the rest of the data ({}): rows {}{}; the most extreme row {} stands \
             out in {}",
            n_flag,
            100.0 * n_flag as f64 / n as f64,
            how,
            shown.join(", "),
            if rows.len() > 10 {
                format!(" and {} more", rows.len() - 10)
            } else {
                String::new()
            },
            rows[0],
            if first_cols.is_empty() {
                "its combination of values".to_string()
            } else {
                first_cols.join(", ")
            }
        );
        let max_z = z[rows[0]];
        let min_z = z[*rows.last().unwrap_or(&rows[0])];
        let confidence = (min_z / (min_z.abs() + Z_THRESHOLD)).clamp(0.0, 1.0);
        let severity = if mode == "calibrated" && n_flag as f64 / n as f64 > 0.01 {
            Severity::High
        } else {
            Severity::Medium
        };
        out.findings.push(
            Finding::new(
                &OUTLIERS,
                Location::Dataset {
                    path: frame.source.clone(),
                    row: Some(rows[0] as u64),
                    column: None,
                },
                message,
            )
            .with_severity(severity)
            .with_evidence(json!({
                "flagged_rows": n_flag,
                "rate": n_flag as f64 / n as f64,
                "rows": listed,
                "mode": mode,
                "z_threshold": Z_THRESHOLD,
                "max_z": max_z,
                "min_flagged_z": min_z,
                "top": top,
                "method": "isolation forest (mixed-type splits) + kNN distance (log), robust z, weighted 1:3",
                "confidence": confidence,
                "confidence_words": if min_z > 2.0 * Z_THRESHOLD { "high: far beyond the bulk" }
                    else if min_z > Z_THRESHOLD { "moderate: beyond the calibrated cut-off" }
                    else { "low: flagged by rank (--top / --expected-rate), not by distance" },
                "severity_reason": if severity == Severity::High { "over 1% of rows far out" } else { "outliers present" },
            })),
        );
    }
    Ok(out)
}

/// Says which columns make a row extreme: large robust |z|, rare categories, rare category pairs.
struct Explainer<'a> {
    frame: &'a Frame,
    enc: &'a Encoded,
    /// Per encoded column, counts per category code (empty for numeric columns).
    counts: Vec<Vec<u32>>,
    /// Sampled rows used to estimate pair frequencies.
    sample: Vec<u32>,
}

impl<'a> Explainer<'a> {
    fn new(frame: &'a Frame, enc: &'a Encoded, seed: u64) -> Self {
        let d = enc.n_cols();
        let counts = (0..d)
            .map(|c| match enc.kinds[c] {
                EncKind::Numeric => Vec::new(),
                EncKind::Categorical { levels } => {
                    let mut v = vec![0u32; (levels as usize).clamp(2, 1 << 20)];
                    for i in 0..enc.n_rows {
                        let x = enc.values[i * d + c];
                        if !x.is_nan() {
                            if let Some(slot) = v.get_mut(x as usize) {
                                *slot += 1;
                            }
                        }
                    }
                    v
                }
            })
            .collect();
        let mut rng = Rng::new(seed ^ 0x6578_706c);
        let sample = sample_rows(enc.n_rows, 50_000, &mut rng);
        Explainer {
            frame,
            enc,
            counts,
            sample,
        }
    }

    fn value(&self, c: usize, row: usize) -> Value {
        self.enc
            .frame_columns
            .get(c)
            .and_then(|&j| self.frame.columns.get(j))
            .and_then(|col| col.data.display(row))
            .map_or(Value::Null, Value::String)
    }

    fn row(&self, i: usize) -> Value {
        let enc = self.enc;
        let n = enc.n_rows as f64;
        let row = enc.row(i);
        // (extremeness, json)
        let mut items: Vec<(f64, Value)> = Vec::new();
        let mut cats: Vec<usize> = Vec::new();
        for (c, &x) in row.iter().enumerate() {
            if x.is_nan() {
                continue;
            }
            match enc.kinds[c] {
                EncKind::Numeric => {
                    let az = f64::from(x.abs());
                    if az >= 3.0 {
                        items.push((
                            az,
                            json!({"column": enc.names[c], "value": self.value(c, i), "robust_z": x}),
                        ));
                    }
                }
                EncKind::Categorical { .. } => {
                    cats.push(c);
                    let count = self.counts[c].get(x as usize).copied().unwrap_or(0);
                    let share = f64::from(count) / n;
                    if share < 0.01 {
                        // A share p is as rare as a normal tail beyond about sqrt(-2 ln p).
                        items.push((
                            (-2.0 * share.max(1e-300).ln()).sqrt(),
                            json!({"column": enc.names[c], "value": self.value(c, i), "category_share": share}),
                        ));
                    }
                }
            }
        }
        let d = enc.n_cols();
        let cats: Vec<usize> = cats.into_iter().take(12).collect();
        for (a_at, &a) in cats.iter().enumerate() {
            for &b in &cats[a_at + 1..] {
                let (xa, xb) = (row[a], row[b]);
                let share_a = f64::from(self.counts[a].get(xa as usize).copied().unwrap_or(0)) / n;
                let share_b = f64::from(self.counts[b].get(xb as usize).copied().unwrap_or(0)) / n;
                if share_a < 0.01 || share_b < 0.01 {
                    continue;
                }
                let both = self
                    .sample
                    .iter()
                    .filter(|&&r| {
                        let r = r as usize;
                        r != i && enc.values[r * d + a] == xa && enc.values[r * d + b] == xb
                    })
                    .count() as f64;
                let share = both / self.sample.len().max(1) as f64;
                if share < 0.002 && share < 0.1 * share_a * share_b {
                    items.push((
                        (-2.0 * share.max(0.5 / self.sample.len().max(1) as f64).ln()).sqrt(),
                        json!({"columns": [enc.names[a], enc.names[b]],
                               "column": format!("{}+{}", enc.names[a], enc.names[b]),
                               "values": [self.value(a, i), self.value(b, i)],
                               "combination_share": share,
                               "expected_share": share_a * share_b}),
                    ));
                }
            }
        }
        items.sort_by(|x, y| y.0.total_cmp(&x.0));
        Value::Array(items.into_iter().take(5).map(|x| x.1).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aegis_core::{Column, ColumnData, MISSING_CODE};

    /// A Gaussian table with `d` numeric columns and two categorical columns where `c2` follows `c1`
    /// (so a row with another `c2` is a rare combination). Injects `far` numeric outliers (6 to 10 robust sd in
    /// one to three columns) and `combo` rows with a rare category combination; returns the frame and the
    /// injected rows.
    fn table(
        n: usize,
        d: usize,
        far: usize,
        combo: usize,
        seed: u64,
    ) -> (Frame, Vec<usize>, Vec<usize>) {
        let mut rng = Rng::new(seed);
        let mut cols: Vec<Vec<f64>> = (0..d)
            .map(|_| (0..n).map(|_| f64::from(rng.normal())).collect())
            .collect();
        let c1: Vec<u32> = (0..n).map(|_| rng.below(4) as u32).collect();
        let mut c2: Vec<u32> = c1.iter().map(|&c| (c + 1) % 4).collect();
        let mut rows: Vec<usize> = (0..n).collect();
        rng.shuffle(&mut rows);
        let injected: Vec<usize> = rows[..far + combo].to_vec();
        for (k, &i) in injected.iter().enumerate() {
            if k < far {
                let how_many = 1 + rng.below(3.min(d));
                for _ in 0..how_many {
                    let j = rng.below(d);
                    cols[j][i] = f64::from(rng.sign() * rng.range(6.0, 10.0));
                }
            } else {
                c2[i] = (c1[i] + 2 + rng.below(3) as u32) % 4;
                if c2[i] == (c1[i] + 1) % 4 {
                    c2[i] = (c1[i] + 3) % 4;
                }
            }
        }
        let mut columns: Vec<Column> = cols
            .into_iter()
            .enumerate()
            .map(|(j, c)| Column {
                name: format!("x{j}"),
                data: ColumnData::Numeric(c),
            })
            .collect();
        let levels: Vec<String> = ["a", "b", "c", "d"].iter().map(|s| s.to_string()).collect();
        columns.push(Column {
            name: "c1".into(),
            data: ColumnData::Categorical {
                codes: c1,
                levels: levels.clone(),
            },
        });
        columns.push(Column {
            name: "c2".into(),
            data: ColumnData::Categorical { codes: c2, levels },
        });
        let mut far_rows = injected[..far].to_vec();
        far_rows.sort_unstable();
        let mut combo_rows = injected[far..].to_vec();
        combo_rows.sort_unstable();
        (
            Frame {
                source: "t.csv".into(),
                columns,
                labels: None,
                n_rows: n,
            },
            far_rows,
            combo_rows,
        )
    }

    fn flagged(out: &CheckOutput) -> Vec<usize> {
        out.signals
            .iter()
            .filter(|s| s.flagged)
            .map(|s| s.row)
            .collect()
    }

    fn f1(found: &[usize], truth: &[usize]) -> f64 {
        let tp = found
            .iter()
            .filter(|r| truth.binary_search(r).is_ok())
            .count() as f64;
        if tp == 0.0 {
            return 0.0;
        }
        let p = tp / found.len() as f64;
        let r = tp / truth.len() as f64;
        2.0 * p * r / (p + r)
    }

    #[test]
    fn injected_far_points_are_flagged_with_high_f1() {
        for seed in 0..2 {
            let (f, far, _) = table(3000, 6, 30, 0, seed);
            let out = check(&f, &Encoded::new(&f), &OutlierConfig::default()).unwrap();
            assert_eq!(out.signals.len(), 3000, "one signal per row");
            let found = flagged(&out);
            let score = f1(&found, &far);
            assert!(
                score >= 0.8,
                "seed {seed}: F1 {score}, found {} rows",
                found.len()
            );
            let finding = &out.findings[0];
            assert_eq!(finding.rule.as_str(), "AEG-AUD-010");
            let top = &finding.evidence["top"][0];
            assert!(
                top["extreme_columns"][0]["robust_z"]
                    .as_f64()
                    .unwrap()
                    .abs()
                    >= 6.0,
                "the most extreme column is named: {top}"
            );
        }
    }

    #[test]
    fn far_points_with_a_rare_category_combination_are_flagged() {
        let (mut f, _, combo) = table(3000, 4, 0, 30, 3);
        // Move the combination rows away in one column too, as injected rows usually are.
        let mut rng = Rng::new(4);
        for &i in &combo {
            if let ColumnData::Numeric(v) = &mut f.columns[rng.below(4)].data {
                v[i] = f64::from(rng.sign() * rng.range(6.0, 10.0));
            }
        }
        let out = check(&f, &Encoded::new(&f), &OutlierConfig::default()).unwrap();
        let score = f1(&flagged(&out), &combo);
        let found = flagged(&out);
        assert!(
            score >= 0.8,
            "F1 {score}: found {} rows, {} injected among them",
            found.len(),
            found.iter().filter(|r| combo.contains(r)).count()
        );
        let listed = out.findings[0].evidence["top"].to_string();
        assert!(
            listed.contains("c1+c2"),
            "the rare combination is named: {listed}"
        );
    }

    #[test]
    fn a_clean_table_flags_almost_nothing() {
        for (seed, d) in [(5, 3), (6, 8), (7, 20)] {
            let (f, _, _) = table(5000, d, 0, 0, seed);
            let out = check(&f, &Encoded::new(&f), &OutlierConfig::default()).unwrap();
            let n = flagged(&out).len();
            assert!(n <= 2, "d {d}: {n} rows flagged on clean data");
        }
    }

    /// A table like an image's border pixels or a set of rare flags: columns that are 0 in almost every row
    /// and small counts in a few. Rows with a rare flag set are not outliers; a value far beyond any that
    /// occurs still is (scikit-learn's clean digits table had 48 rows flagged, at high, before).
    #[test]
    fn rare_values_of_mostly_constant_columns_are_not_outliers() {
        let n = 3000;
        let mut rng = Rng::new(11);
        let mut columns: Vec<Column> = (0..8)
            .map(|j| {
                let v: Vec<f64> = (0..n)
                    .map(|_| {
                        if rng.uniform() < 0.01 + 0.005 * j as f32 {
                            f64::from(1 + rng.below(6) as u32)
                        } else {
                            0.0
                        }
                    })
                    .collect();
                Column {
                    name: format!("pixel{j}"),
                    data: ColumnData::Numeric(v),
                }
            })
            .collect();
        for j in 0..6 {
            columns.push(Column {
                name: format!("x{j}"),
                data: ColumnData::Numeric((0..n).map(|_| f64::from(rng.normal())).collect()),
            });
        }
        let mut f = Frame {
            source: "t.csv".into(),
            columns,
            labels: None,
            n_rows: n,
        };
        let out = check(&f, &Encoded::new(&f), &OutlierConfig::default()).unwrap();
        let clean = flagged(&out);
        // 50 of the 3000 rows were flagged when the scale was the mean absolute deviation.
        assert!(clean.len() <= 6, "{} clean rows flagged", clean.len());
        // Positive: values far beyond the ones that occur, in the sparse columns, still stand out.
        let planted: Vec<usize> = (0..15).map(|k| 100 + k * 173).collect();
        for (k, &i) in planted.iter().enumerate() {
            if let ColumnData::Numeric(v) = &mut f.columns[k % 8].data {
                v[i] = 120.0;
            }
        }
        let out = check(&f, &Encoded::new(&f), &OutlierConfig::default()).unwrap();
        let found = flagged(&out);
        let score = f1(&found, &planted);
        assert!(score >= 0.8, "F1 {score}: found {found:?}");
    }

    #[test]
    fn expected_rate_and_top_flag_that_many() {
        let (f, far, _) = table(2000, 5, 20, 0, 8);
        let enc = Encoded::new(&f);
        let cfg = OutlierConfig {
            top: Some(7),
            ..OutlierConfig::default()
        };
        let found = flagged(&check(&f, &enc, &cfg).unwrap());
        assert_eq!(found.len(), 7);
        assert!(
            found.iter().all(|r| far.contains(r)),
            "the top rows are injected ones"
        );
        let cfg = OutlierConfig {
            expected_rate: Some(0.05),
            ..OutlierConfig::default()
        };
        assert_eq!(flagged(&check(&f, &enc, &cfg).unwrap()).len(), 100);
        let bad = OutlierConfig {
            expected_rate: Some(1.5),
            ..OutlierConfig::default()
        };
        assert!(check(&f, &enc, &bad).is_err());
    }

    #[test]
    fn categorical_only_data_works() {
        let mut rng = Rng::new(9);
        let n = 3000;
        let levels: Vec<String> = (0..5).map(|k| format!("v{k}")).collect();
        let mut cols: Vec<Vec<u32>> = vec![Vec::new(); 4];
        for _ in 0..n {
            let a = rng.below(5) as u32;
            cols[0].push(a);
            cols[1].push((a + 1) % 5);
            cols[2].push((a + 2) % 5);
            cols[3].push(rng.below(2) as u32);
        }
        let injected: Vec<usize> = (0..10).map(|k| k * 300 + 7).collect();
        for &i in &injected {
            cols[1][i] = (cols[0][i] + 3) % 5;
            cols[2][i] = (cols[0][i] + 4) % 5;
        }
        let frame = Frame {
            source: "cats.csv".into(),
            columns: cols
                .into_iter()
                .enumerate()
                .map(|(j, codes)| Column {
                    name: format!("c{j}"),
                    data: ColumnData::Categorical {
                        codes,
                        levels: levels.clone(),
                    },
                })
                .collect(),
            labels: None,
            n_rows: n,
        };
        let out = check(&frame, &Encoded::new(&frame), &OutlierConfig::default()).unwrap();
        let found = flagged(&out);
        assert!(f1(&found, &injected) >= 0.8, "found {found:?}");
    }

    #[test]
    fn missing_values_do_not_crash() {
        let (mut f, far, _) = table(1500, 4, 15, 0, 10);
        if let ColumnData::Numeric(v) = &mut f.columns[1].data {
            for i in (0..1500).step_by(7) {
                v[i] = f64::NAN;
            }
        }
        if let ColumnData::Categorical { codes, .. } = &mut f.columns[4].data {
            for i in (0..1500).step_by(11) {
                codes[i] = MISSING_CODE;
            }
        }
        let out = check(&f, &Encoded::new(&f), &OutlierConfig::default()).unwrap();
        assert_eq!(out.signals.len(), 1500);
        assert!(out.signals.iter().all(|s| (0.0..=1.0).contains(&s.score)));
        let found = flagged(&out);
        assert!(f1(&found, &far) >= 0.6, "found {} rows", found.len());
        // Tiny and empty inputs.
        let tiny = Frame {
            n_rows: 2,
            columns: vec![Column {
                name: "x".into(),
                data: ColumnData::Numeric(vec![1.0, f64::NAN]),
            }],
            ..Frame::default()
        };
        let out = check(&tiny, &Encoded::new(&tiny), &OutlierConfig::default()).unwrap();
        assert!(out.signals.is_empty());
    }

    /// Scale check (not run by default): 1,000,000 rows x 20 columns through the outlier and duplicate checks.
    #[test]
    #[ignore]
    fn scale_one_million_rows() {
        let n = 1_000_000;
        let (f, far, _) = table(n, 18, 200, 0, 11);
        let t = std::time::Instant::now();
        let enc = Encoded::new(&f);
        let t_enc = t.elapsed();
        let t = std::time::Instant::now();
        let out = check(&f, &enc, &OutlierConfig::default()).unwrap();
        let t_out = t.elapsed();
        let found = flagged(&out);
        let t = std::time::Instant::now();
        let dup = crate::duplicates::check(&f, &enc, None, None, &Default::default()).unwrap();
        let t_dup = t.elapsed();
        println!(
            "encode {t_enc:?}; outliers {t_out:?}: flagged {} F1 {:.3}; duplicates {t_dup:?}: {:?}",
            found.len(),
            f1(&found, &far),
            dup.metrics
        );
    }
}
