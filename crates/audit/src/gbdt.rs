//! A lean histogram gradient-boosted tree classifier (in the manner of LightGBM and scikit-learn's
//! `HistGradientBoostingClassifier`) over the mixed-type [`Encoded`] view.
//!
//! The label check needs out-of-fold class probabilities that are good on tabular data with categorical
//! columns and missing cells, and it needs them fast: five folds over hundreds of thousands of rows in a
//! second or two. Gradient-boosted trees on binned features fit that: each numeric column is cut into at most
//! 255 quantile bins (a missing cell gets a bin of its own, so missingness can be learned), categorical codes
//! are bins themselves and a split sends a set of categories left (categories sorted by their gradient ratio,
//! as LightGBM does), and a split search only scans per-bin gradient sums. Trees grow leaf-wise (best gain
//! first) up to `max_leaves`, the larger child's histogram is the parent's minus the smaller child's, and
//! histograms are built in parallel over features. Two classes use the logistic loss (one tree per round),
//! more use softmax (one tree per class per round). A held-out tenth of the training rows stops boosting once
//! its log-loss no longer improves. Training rows are capped (a uniform sample) so big tables stay bounded.

use aegis_stats::rng::Rng;
use rayon::prelude::*;

use crate::encode::{EncKind, Encoded};

/// The bin of a missing cell (every other bin is below it).
const NAN_BIN: u8 = 255;
/// Bins per feature, including the missing bin.
const N_BINS: usize = 256;
/// The last bin a category code may have; larger codes share it.
const MAX_CAT_BIN: usize = 254;
/// Categorical smoothing added to the hessian when ordering categories (LightGBM's `cat_smooth`).
const CAT_SMOOTH: f64 = 10.0;
/// Rows sampled to place the quantile cut points of a numeric column.
const BIN_SAMPLE: usize = 50_000;

/// Training options.
#[derive(Debug, Clone)]
pub struct GbdtConfig {
    /// Most boosting rounds.
    pub max_rounds: usize,
    /// Shrinkage of each tree's leaf values.
    pub learning_rate: f64,
    /// Most leaves per tree.
    pub max_leaves: usize,
    /// Deepest a leaf may be.
    pub max_depth: usize,
    /// Fewest training rows in a leaf.
    pub min_samples_leaf: usize,
    /// L2 regularisation of leaf values.
    pub l2: f64,
    /// Most bins per numeric column (at most 255; the missing bin comes on top).
    pub max_bins: usize,
    /// Share of the training rows held out for early stopping (0 turns it off).
    pub validation_fraction: f64,
    /// Rounds without a validation improvement before boosting stops.
    pub patience: usize,
    /// Most training rows used (a uniform sample is drawn above it).
    pub max_train_rows: usize,
}

impl Default for GbdtConfig {
    fn default() -> Self {
        GbdtConfig {
            max_rounds: 150,
            learning_rate: 0.1,
            max_leaves: 31,
            max_depth: 12,
            min_samples_leaf: 20,
            l2: 1.0,
            max_bins: 255,
            validation_fraction: 0.1,
            patience: 10,
            max_train_rows: 200_000,
        }
    }
}

/// How one feature maps values to bins.
#[derive(Debug, Clone)]
enum Binner {
    /// Bin = number of cut points strictly below the value.
    Numeric(Vec<f32>),
    /// Bin = category code (codes above [`MAX_CAT_BIN`] share the last bin).
    Categorical,
}

impl Binner {
    fn bin(&self, x: f32) -> u8 {
        if x.is_nan() {
            return NAN_BIN;
        }
        match self {
            Binner::Numeric(cuts) => cuts.partition_point(|&c| c < x).min(MAX_CAT_BIN) as u8,
            Binner::Categorical => {
                if x < 0.0 {
                    0
                } else {
                    (x as usize).min(MAX_CAT_BIN) as u8
                }
            }
        }
    }
}

/// Column-major bins of a set of rows.
struct Binned {
    n: usize,
    cols: Vec<u8>,
}

impl Binned {
    fn new(enc: &Encoded, binners: &[Binner], rows: &[usize]) -> Binned {
        let n = rows.len();
        let d = enc.n_cols();
        let mut cols = vec![NAN_BIN; n * d];
        cols.par_chunks_mut(n.max(1))
            .enumerate()
            .for_each(|(f, col)| {
                if let Some(b) = binners.get(f) {
                    for (slot, &r) in col.iter_mut().zip(rows) {
                        let x = enc.values.get(r * d + f).copied().unwrap_or(f32::NAN);
                        *slot = b.bin(x);
                    }
                }
            });
        Binned { n, cols }
    }

    fn col(&self, f: usize) -> &[u8] {
        &self.cols[f * self.n..(f + 1) * self.n]
    }
}

/// A node of a tree: a leaf value or a split that sends the bins in `left` to the left child.
#[derive(Debug, Clone)]
enum Node {
    Leaf(f32),
    Split {
        feature: usize,
        left: [u64; 4],
        children: [usize; 2],
    },
}

fn goes_left(set: &[u64; 4], bin: u8) -> bool {
    let b = bin as usize;
    set[b >> 6] >> (b & 63) & 1 == 1
}

/// One regression tree over bins.
#[derive(Debug, Clone)]
struct Tree {
    nodes: Vec<Node>,
}

impl Tree {
    fn predict(&self, bins: &Binned, i: usize) -> f32 {
        let mut at = 0;
        loop {
            match self.nodes.get(at) {
                Some(Node::Leaf(v)) => return *v,
                Some(Node::Split {
                    feature,
                    left,
                    children,
                }) => {
                    let b = bins
                        .cols
                        .get(feature * bins.n + i)
                        .copied()
                        .unwrap_or(NAN_BIN);
                    at = if goes_left(left, b) {
                        children[0]
                    } else {
                        children[1]
                    };
                }
                None => return 0.0,
            }
        }
    }
}

/// A trained classifier.
#[derive(Debug, Clone)]
pub struct Gbdt {
    binners: Vec<Binner>,
    /// `rounds x trees_per_round` trees.
    trees: Vec<Vec<Tree>>,
    init: Vec<f32>,
    n_classes: usize,
}

impl Gbdt {
    /// Number of classes.
    pub fn n_classes(&self) -> usize {
        self.n_classes
    }

    /// Boosting rounds kept (after early stopping).
    pub fn rounds(&self) -> usize {
        self.trees.len()
    }

    /// Class probabilities of `rows`, row-major (`rows.len() x n_classes`).
    pub fn predict_proba(&self, enc: &Encoded, rows: &[usize]) -> Vec<f32> {
        let k = self.n_classes.max(1);
        let mut out = vec![0.0f32; rows.len() * k];
        if self.n_classes <= 1 {
            out.iter_mut().for_each(|p| *p = 1.0);
            return out;
        }
        const CHUNK: usize = 4096;
        out.par_chunks_mut(CHUNK * k)
            .zip(rows.par_chunks(CHUNK))
            .for_each(|(out, rows)| {
                let bins = Binned::new_seq(enc, &self.binners, rows);
                let mut raw = vec![0.0f32; self.init.len()];
                for (i, o) in out.chunks_mut(k).enumerate() {
                    raw.copy_from_slice(&self.init);
                    for round in &self.trees {
                        for (s, t) in raw.iter_mut().zip(round) {
                            *s += t.predict(&bins, i);
                        }
                    }
                    to_proba(&raw, o);
                }
            });
        out
    }
}

impl Binned {
    /// Like [`Binned::new`] without spawning (for callers already running in parallel).
    fn new_seq(enc: &Encoded, binners: &[Binner], rows: &[usize]) -> Binned {
        let n = rows.len();
        let d = enc.n_cols();
        let mut cols = vec![NAN_BIN; n * d];
        for (f, b) in binners.iter().enumerate().take(d) {
            for (slot, &r) in cols[f * n..(f + 1) * n].iter_mut().zip(rows) {
                let x = enc.values.get(r * d + f).copied().unwrap_or(f32::NAN);
                *slot = b.bin(x);
            }
        }
        Binned { n, cols }
    }
}

/// Raw scores to probabilities: logistic for one score, softmax otherwise.
fn to_proba(raw: &[f32], out: &mut [f32]) {
    if raw.len() == 1 {
        let p1 = 1.0 / (1.0 + (-raw[0]).exp());
        out[0] = 1.0 - p1;
        out[1] = p1;
        return;
    }
    let m = raw.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for (o, &r) in out.iter_mut().zip(raw) {
        *o = (r - m).exp();
        sum += *o;
    }
    for o in out.iter_mut() {
        *o /= sum;
    }
}

/// Trains a classifier on `rows` of `enc` whose labels are `labels` (parallel to `rows`, codes below
/// `n_classes`; rows with an out-of-range label are skipped).
pub fn fit(
    enc: &Encoded,
    rows: &[usize],
    labels: &[u32],
    n_classes: usize,
    cfg: &GbdtConfig,
    seed: u64,
) -> Gbdt {
    let d = enc.n_cols();
    let mut rng = Rng::new(seed ^ 0x6264_7431);
    let mut pairs: Vec<(usize, u32)> = rows
        .iter()
        .zip(labels)
        .filter(|&(&r, &y)| r < enc.n_rows && (y as usize) < n_classes)
        .map(|(&r, &y)| (r, y))
        .collect();
    rng.shuffle(&mut pairs);
    pairs.truncate(cfg.max_train_rows.max(1));
    let n_val = if cfg.validation_fraction > 0.0 && pairs.len() >= 200 {
        ((pairs.len() as f64 * cfg.validation_fraction) as usize).max(20)
    } else {
        0
    };
    let (val, train) = pairs.split_at(n_val);
    let mut train = train.to_vec();
    train.sort_unstable();
    let train_rows: Vec<usize> = train.iter().map(|p| p.0).collect();
    let train_y: Vec<u32> = train.iter().map(|p| p.1).collect();
    let val_rows: Vec<usize> = val.iter().map(|p| p.0).collect();
    let val_y: Vec<u32> = val.iter().map(|p| p.1).collect();

    // Priors.
    let mut counts = vec![0usize; n_classes];
    for &y in &train_y {
        counts[y as usize] += 1;
    }
    let n_tr = train_y.len().max(1) as f64;
    let prior: Vec<f64> = counts
        .iter()
        .map(|&c| ((c as f64 + 0.5) / (n_tr + 0.5 * n_classes as f64)).clamp(1e-6, 1.0))
        .collect();
    let init: Vec<f32> = if n_classes == 2 {
        vec![(prior[1] / prior[0]).ln() as f32]
    } else {
        prior.iter().map(|p| p.ln() as f32).collect()
    };
    if n_classes < 2 || train_rows.is_empty() || d == 0 {
        return Gbdt {
            binners: Vec::new(),
            trees: Vec::new(),
            init,
            n_classes,
        };
    }

    let binners = fit_binners(enc, &train_rows, cfg.max_bins, &mut rng);
    let categorical: Vec<bool> = enc
        .kinds
        .iter()
        .map(|k| matches!(k, EncKind::Categorical { .. }))
        .collect();
    let train_bins = Binned::new(enc, &binners, &train_rows);
    let val_bins = Binned::new(enc, &binners, &val_rows);
    let t = init.len();
    let n = train_rows.len();
    let mut raw = vec![0.0f32; n * t];
    for s in raw.chunks_mut(t) {
        s.copy_from_slice(&init);
    }
    let mut val_raw = vec![0.0f32; val_rows.len() * t];
    for s in val_raw.chunks_mut(t) {
        s.copy_from_slice(&init);
    }
    let mut trees: Vec<Vec<Tree>> = Vec::new();
    let mut best = (f64::INFINITY, 0usize);
    let mut gh: Vec<Vec<[f32; 2]>> = vec![vec![[0.0; 2]; n]; t];
    let mut p = vec![0.0f32; n_classes];
    for round in 0..cfg.max_rounds {
        // Gradients and hessians of the log-loss.
        if t == 1 {
            gh[0]
                .par_chunks_mut(4096)
                .zip(raw.par_chunks(4096))
                .zip(train_y.par_chunks(4096))
                .for_each(|((g, raw), y)| {
                    for ((g, &s), &y) in g.iter_mut().zip(raw).zip(y) {
                        let p1 = 1.0 / (1.0 + (-s).exp());
                        let target = if y == 1 { 1.0 } else { 0.0 };
                        *g = [p1 - target, (p1 * (1.0 - p1)).max(1e-6)];
                    }
                });
        } else {
            for i in 0..n {
                to_proba(&raw[i * t..(i + 1) * t], &mut p);
                let y = train_y[i] as usize;
                for (c, g) in gh.iter_mut().enumerate() {
                    let target = if y == c { 1.0 } else { 0.0 };
                    g[i] = [p[c] - target, (p[c] * (1.0 - p[c])).max(1e-6)];
                }
            }
        }
        let grown: Vec<(Tree, Vec<f32>)> = gh
            .par_iter()
            .map(|g| grow_tree(&train_bins, &categorical, g, cfg))
            .collect();
        let mut round_trees = Vec::with_capacity(t);
        for (c, (tree, delta)) in grown.into_iter().enumerate() {
            for (i, dv) in delta.iter().enumerate() {
                raw[i * t + c] += dv;
            }
            for i in 0..val_rows.len() {
                val_raw[i * t + c] += tree.predict(&val_bins, i);
            }
            round_trees.push(tree);
        }
        trees.push(round_trees);
        if val_rows.is_empty() {
            continue;
        }
        let mut loss = 0.0f64;
        for (i, &y) in val_y.iter().enumerate() {
            to_proba(&val_raw[i * t..(i + 1) * t], &mut p);
            loss -= (p[y as usize].max(1e-7) as f64).ln();
        }
        if loss < best.0 - 1e-9 {
            best = (loss, round + 1);
        } else if round + 1 >= best.1 + cfg.patience.max(1) {
            break;
        }
    }
    if !val_rows.is_empty() {
        trees.truncate(best.1.max(1));
    }
    Gbdt {
        binners,
        trees,
        init,
        n_classes,
    }
}

/// Quantile cut points per numeric column from (a sample of) the training rows.
fn fit_binners(enc: &Encoded, rows: &[usize], max_bins: usize, rng: &mut Rng) -> Vec<Binner> {
    let d = enc.n_cols();
    let max_bins = max_bins.clamp(2, MAX_CAT_BIN + 1);
    let sample: Vec<usize> = if rows.len() > BIN_SAMPLE {
        (0..BIN_SAMPLE)
            .map(|_| rows[rng.below(rows.len())])
            .collect()
    } else {
        rows.to_vec()
    };
    (0..d)
        .into_par_iter()
        .map(|f| match enc.kinds[f] {
            EncKind::Categorical { .. } => Binner::Categorical,
            EncKind::Numeric => {
                let mut all: Vec<f32> = sample
                    .iter()
                    .filter_map(|&r| enc.values.get(r * d + f).copied())
                    .filter(|x| !x.is_nan())
                    .collect();
                all.sort_unstable_by(f32::total_cmp);
                let mut distinct = all.clone();
                distinct.dedup();
                let cuts = if distinct.len() <= max_bins {
                    distinct
                        .windows(2)
                        .map(|w| w[0] + (w[1] - w[0]) / 2.0)
                        .collect()
                } else {
                    let mut cuts: Vec<f32> = (1..max_bins)
                        .map(|q| all[q * (all.len() - 1) / max_bins])
                        .collect();
                    cuts.dedup();
                    cuts
                };
                Binner::Numeric(cuts)
            }
        })
        .collect()
}

/// Per-bin sums of one node and feature.
#[derive(Debug, Clone, Copy, Default)]
struct Bin {
    g: f64,
    h: f64,
    n: u32,
}

/// The best split found for a leaf.
#[derive(Debug, Clone)]
struct Cand {
    gain: f64,
    feature: usize,
    left: [u64; 4],
}

/// A leaf being grown.
struct Leaf {
    node: usize,
    start: usize,
    end: usize,
    depth: usize,
    hist: Vec<Bin>,
    g: f64,
    h: f64,
    best: Option<Cand>,
}

fn build_hist(bins: &Binned, idx: &[u32], gh: &[[f32; 2]], d: usize) -> Vec<Bin> {
    let mut hist = vec![Bin::default(); d * N_BINS];
    let fill = |(f, hist): (usize, &mut [Bin])| {
        let col = bins.col(f);
        for &r in idx {
            let r = r as usize;
            let b = &mut hist[col[r] as usize];
            let [g, h] = gh[r];
            b.g += g as f64;
            b.h += h as f64;
            b.n += 1;
        }
    };
    if idx.len() * d >= 64 * 1024 {
        hist.par_chunks_mut(N_BINS).enumerate().for_each(fill);
    } else {
        hist.chunks_mut(N_BINS).enumerate().for_each(fill);
    }
    hist
}

fn leaf_score(g: f64, h: f64, l2: f64) -> f64 {
    g * g / (h + l2)
}

fn best_split(
    hist: &[Bin],
    categorical: &[bool],
    g: f64,
    h: f64,
    n: usize,
    cfg: &GbdtConfig,
) -> Option<Cand> {
    let min_n = cfg.min_samples_leaf.max(1) as u32;
    if n < 2 * min_n as usize {
        return None;
    }
    let parent = leaf_score(g, h, cfg.l2);
    let per_feature = |f: usize| -> Option<Cand> {
        let hb = &hist[f * N_BINS..(f + 1) * N_BINS];
        let mut order = [0u8; N_BINS];
        let mut used = 0;
        for (b, bin) in hb.iter().enumerate() {
            if bin.n > 0 {
                order[used] = b as u8;
                used += 1;
            }
        }
        if used < 2 {
            return None;
        }
        let order = &mut order[..used];
        if categorical[f] {
            order.sort_by(|&a, &b| {
                let (a, b) = (&hb[a as usize], &hb[b as usize]);
                let ra = a.g / (a.h + CAT_SMOOTH);
                let rb = b.g / (b.h + CAT_SMOOTH);
                ra.total_cmp(&rb)
            });
        }
        let mut best: Option<(f64, usize)> = None;
        let (mut gl, mut hl, mut nl) = (0.0f64, 0.0f64, 0u32);
        for (pos, &b) in order.iter().enumerate().take(used - 1) {
            let bin = &hb[b as usize];
            gl += bin.g;
            hl += bin.h;
            nl += bin.n;
            let nr = n as u32 - nl;
            if nl < min_n {
                continue;
            }
            if nr < min_n {
                break;
            }
            let (gr, hr) = (g - gl, h - hl);
            if hl < 1e-3 || hr < 1e-3 {
                continue;
            }
            let gain = leaf_score(gl, hl, cfg.l2) + leaf_score(gr, hr, cfg.l2) - parent;
            if best.is_none_or(|(bg, _)| gain > bg) {
                best = Some((gain, pos));
            }
        }
        let (gain, pos) = best?;
        if gain <= 1e-9 {
            return None;
        }
        let mut left = [0u64; 4];
        for &b in &order[..=pos] {
            let b = b as usize;
            left[b >> 6] |= 1 << (b & 63);
        }
        Some(Cand {
            gain,
            feature: f,
            left,
        })
    };
    (0..categorical.len())
        .filter_map(per_feature)
        .max_by(|a, b| a.gain.total_cmp(&b.gain).then(b.feature.cmp(&a.feature)))
}

/// Grows one tree leaf-wise on gradients `gh` (indexed like the rows of `bins`); returns it with each
/// training row's leaf value.
fn grow_tree(
    bins: &Binned,
    categorical: &[bool],
    gh: &[[f32; 2]],
    cfg: &GbdtConfig,
) -> (Tree, Vec<f32>) {
    let n = bins.n;
    let d = categorical.len();
    let mut idx: Vec<u32> = (0..n as u32).collect();
    let mut scratch: Vec<u32> = Vec::with_capacity(n);
    let (g, h) = gh.iter().fold((0.0f64, 0.0f64), |(a, b), x| {
        (a + x[0] as f64, b + x[1] as f64)
    });
    let hist = build_hist(bins, &idx, gh, d);
    let best = best_split(&hist, categorical, g, h, n, cfg);
    let mut nodes = vec![Node::Leaf(0.0)];
    let mut leaves = vec![Leaf {
        node: 0,
        start: 0,
        end: n,
        depth: 0,
        hist,
        g,
        h,
        best,
    }];
    while leaves.len() < cfg.max_leaves.max(1) {
        let Some((li, _)) = leaves
            .iter()
            .enumerate()
            .filter_map(|(i, l)| l.best.as_ref().map(|c| (i, c.gain)))
            .max_by(|a, b| a.1.total_cmp(&b.1))
        else {
            break;
        };
        let leaf = leaves.swap_remove(li);
        let Some(cand) = leaf.best else { break };
        // Stable partition of the leaf's rows.
        let col = bins.col(cand.feature);
        scratch.clear();
        let range = &mut idx[leaf.start..leaf.end];
        let mut nl = 0;
        for k in 0..range.len() {
            let r = range[k];
            if goes_left(&cand.left, col[r as usize]) {
                range[nl] = r;
                nl += 1;
            } else {
                scratch.push(r);
            }
        }
        range[nl..].copy_from_slice(&scratch);
        let mid = leaf.start + nl;
        let (small, large) = if nl <= leaf.end - mid {
            ((leaf.start, mid), (mid, leaf.end))
        } else {
            ((mid, leaf.end), (leaf.start, mid))
        };
        let small_hist = build_hist(bins, &idx[small.0..small.1], gh, d);
        let mut large_hist = leaf.hist;
        for (l, s) in large_hist.iter_mut().zip(&small_hist) {
            l.g -= s.g;
            l.h -= s.h;
            l.n -= s.n;
        }
        let left_id = nodes.len();
        nodes.push(Node::Leaf(0.0));
        nodes.push(Node::Leaf(0.0));
        nodes[leaf.node] = Node::Split {
            feature: cand.feature,
            left: cand.left,
            children: [left_id, left_id + 1],
        };
        let depth = leaf.depth + 1;
        for ((start, end), hist) in [(small, small_hist), (large, large_hist)] {
            let (g, h) = hist[..N_BINS]
                .iter()
                .fold((0.0, 0.0), |(a, b), x| (a + x.g, b + x.h));
            let best = if depth < cfg.max_depth {
                best_split(&hist, categorical, g, h, end - start, cfg)
            } else {
                None
            };
            let node = if start == leaf.start {
                left_id
            } else {
                left_id + 1
            };
            leaves.push(Leaf {
                node,
                start,
                end,
                depth,
                hist,
                g,
                h,
                best,
            });
        }
    }
    let mut delta = vec![0.0f32; n];
    for leaf in &leaves {
        let v = (-leaf.g / (leaf.h + cfg.l2) * cfg.learning_rate) as f32;
        nodes[leaf.node] = Node::Leaf(v);
        for &r in &idx[leaf.start..leaf.end] {
            delta[r as usize] = v;
        }
    }
    (Tree { nodes }, delta)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aegis_core::{Column, ColumnData, Frame};

    /// Two numeric columns (class depends on x0 + x1 > 0) and a categorical column that decides class 2.
    fn data(n: usize, seed: u64) -> (Frame, Vec<u32>) {
        let mut rng = Rng::new(seed);
        let (mut a, mut b, mut c, mut y) = (vec![], vec![], vec![], vec![]);
        for _ in 0..n {
            let x0 = rng.normal() as f64;
            let x1 = if rng.uniform() < 0.05 {
                f64::NAN
            } else {
                rng.normal() as f64
            };
            let cat = rng.below(6) as u32;
            let label = if cat == 5 {
                2
            } else if x0 + if x1.is_nan() { 0.0 } else { x1 } > 0.0 {
                1
            } else {
                0
            };
            a.push(x0);
            b.push(x1);
            c.push(cat);
            y.push(label);
        }
        let frame = Frame {
            source: "t".into(),
            columns: vec![
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
                        levels: (0..6).map(|i| format!("l{i}")).collect(),
                    },
                },
            ],
            labels: None,
            n_rows: n,
        };
        (frame, y)
    }

    fn accuracy(p: &[f32], y: &[u32], k: usize) -> f64 {
        let hits = p
            .chunks(k)
            .zip(y)
            .filter(|(p, &y)| {
                let arg = p
                    .iter()
                    .enumerate()
                    .max_by(|a, b| a.1.total_cmp(b.1))
                    .map_or(0, |x| x.0);
                arg == y as usize
            })
            .count();
        hits as f64 / y.len() as f64
    }

    #[test]
    fn learns_numeric_categorical_and_missing_structure() {
        let (frame, y) = data(3000, 1);
        let enc = Encoded::new(&frame);
        let rows: Vec<usize> = (0..2000).collect();
        let model = fit(&enc, &rows, &y[..2000], 3, &GbdtConfig::default(), 7);
        let test: Vec<usize> = (2000..3000).collect();
        let p = model.predict_proba(&enc, &test);
        assert_eq!(p.len(), 3000);
        for row in p.chunks(3) {
            assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-4);
        }
        let acc = accuracy(&p, &y[2000..], 3);
        assert!(acc > 0.9, "accuracy {acc}");
        assert!(model.rounds() >= 5);
    }

    #[test]
    fn binary_and_degenerate_inputs() {
        let (frame, y) = data(1500, 2);
        let y2: Vec<u32> = y.iter().map(|&v| u32::from(v == 1)).collect();
        let enc = Encoded::new(&frame);
        let rows: Vec<usize> = (0..1000).collect();
        let model = fit(&enc, &rows, &y2[..1000], 2, &GbdtConfig::default(), 3);
        let test: Vec<usize> = (1000..1500).collect();
        let acc = accuracy(&model.predict_proba(&enc, &test), &y2[1000..], 2);
        assert!(acc > 0.85, "accuracy {acc}");
        // Random labels: predictions stay near the prior (no confident nonsense).
        let mut rng = Rng::new(5);
        let noise: Vec<u32> = (0..1000).map(|_| rng.below(2) as u32).collect();
        let model = fit(&enc, &rows, &noise, 2, &GbdtConfig::default(), 3);
        let p = model.predict_proba(&enc, &test);
        let max = p.iter().copied().fold(0.0f32, f32::max);
        assert!(max < 0.9, "max prob {max}");
        // No rows, one class: defined output.
        let empty = fit(&enc, &[], &[], 2, &GbdtConfig::default(), 3);
        assert_eq!(empty.predict_proba(&enc, &[0, 1]).len(), 4);
        let one = fit(&enc, &rows, &vec![0; 1000], 1, &GbdtConfig::default(), 3);
        assert_eq!(one.predict_proba(&enc, &[0]), vec![1.0]);
    }
}

#[cfg(test)]
mod timing {
    use super::*;
    use aegis_core::{Column, ColumnData, Frame};

    /// `cargo test -p aegis-audit --lib gbdt::timing -- --ignored --nocapture` (prints, asserts nothing).
    #[test]
    #[ignore]
    fn fit_200k_by_20() {
        let n: usize = std::env::var("GBDT_N")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(200_000);
        let mut rng = Rng::new(1);
        let cols: Vec<Vec<f64>> = (0..20)
            .map(|_| (0..n).map(|_| rng.normal() as f64).collect())
            .collect();
        let y: Vec<u32> = (0..n)
            .map(|i| {
                u32::from(cols[0][i] + cols[1][i] * cols[2][i] + 0.5 * rng.normal() as f64 > 0.0)
            })
            .collect();
        let frame = Frame {
            source: "t".into(),
            columns: cols
                .into_iter()
                .enumerate()
                .map(|(j, v)| Column {
                    name: format!("x{j}"),
                    data: ColumnData::Numeric(v),
                })
                .collect(),
            labels: None,
            n_rows: n,
        };
        let enc = Encoded::new(&frame);
        let rows: Vec<usize> = (0..n).collect();
        let t = std::time::Instant::now();
        let model = fit(&enc, &rows, &y, 2, &GbdtConfig::default(), 1);
        let fit_s = t.elapsed().as_secs_f64();
        let t = std::time::Instant::now();
        let p = model.predict_proba(&enc, &rows);
        println!(
            "fit {fit_s:.2}s ({} rounds), predict {:.2}s, {} probs",
            model.rounds(),
            t.elapsed().as_secs_f64(),
            p.len()
        );
    }
}
