//! Exact and near duplicates, label-conflicting duplicate groups, and rows new relative to a trusted reference.
//!
//! Real tables are full of natural duplicates (a third or more of the rows in some public sets), so a duplicate
//! on its own is information, not suspicion. What an attacker leaves behind is a duplicate *with a different
//! label*: a copy of a real row with the label turned teaches the model the wrong answer exactly where the real
//! row sits. This module therefore
//! - groups rows whose encoded features are bit-identical (hash, then verified equality: no false merges);
//! - finds near duplicates (squared mixed distance at most `near_radius`) with locality-sensitive blocking:
//!   several randomly shifted grids over the robust z-scores, categorical codes hashed exactly, and a sorted
//!   sweep inside each block, so 1M rows take seconds; only one row per exact group enters the search;
//! - in every exact or near group whose rows carry different labels, flags the minority-label rows (on a tie,
//!   the row whose out-of-fold probability of its own label is lower, else the later row), except in big,
//!   thoroughly mixed groups, which are natural ambiguity (the features do not decide the label) and are
//!   reported apart;
//! - with a trusted reference, marks rows whose exact encoding the reference lacks (`new`) and rows whose exact
//!   or near twin in the reference carries a different label (conflicts with trusted data).
//!
//! The reference must be encoded in the same space (`Encoded::like(reference, current)` or vice versa).

use std::collections::HashMap;

use aegis_core::{Finding, Frame, Location, RuleDoc, Severity};
use rayon::prelude::*;
use serde_json::{json, Value};

use crate::encode::{EncKind, Encoded, MISMATCH};
use crate::{CheckOutput, Error, Kind, RowSignal, MAX_LISTED_ROWS};

/// Copies of rows with a different label.
pub const LABEL_CONFLICT: RuleDoc = RuleDoc {
    id: "AEG-AUD-020",
    name: "label-conflicting-duplicates",
    severity: Severity::High,
    summary: "Rows that are exact or near copies of other rows carry a different label.",
    why: "Copying real rows and flipping their label is the cheapest targeted poisoning: the model sees the same \
          input with two answers and the attacker's copy pulls the decision where the real row sits. Natural data \
          rarely contains a small group of identical inputs with disagreeing labels.",
    fix: "Inspect the flagged rows (the minority label of each group); drop them or restore the label from the \
          source of truth, then retrain and compare.",
    atlas: &["AML.T0020"],
    cwe: &[20],
};

/// Big groups of identical inputs with mixed labels.
pub const NATURAL_CONFLICT: RuleDoc = RuleDoc {
    id: "AEG-AUD-021",
    name: "ambiguous-duplicate-groups",
    severity: Severity::Info,
    summary: "Large groups of identical inputs carry mixed labels: the features do not determine the label there.",
    why: "Natural ambiguity (coarse features, label noise in the source) rather than targeted poisoning; it caps \
          the accuracy any model can reach on these inputs and makes label audits there unreliable.",
    fix: "Add features that separate these rows, or accept the ambiguity; do not treat these rows as poisoned \
          without other evidence.",
    atlas: &["AML.T0020"],
    cwe: &[1039],
};

/// Near duplicates.
pub const NEAR_DUPLICATES: RuleDoc = RuleDoc {
    id: "AEG-AUD-022",
    name: "near-duplicates",
    severity: Severity::Low,
    summary: "Rows that are almost identical to other rows (tiny numeric differences, same categories).",
    why: "Near copies with the same label over-weight a few points and leak between train and test splits; \
          an attacker adds small noise to copies to evade exact de-duplication.",
    fix: "Check where the near copies come from; de-duplicate before splitting into train and test sets.",
    atlas: &["AML.T0020"],
    cwe: &[20],
};

/// Exact duplicates.
pub const EXACT_DUPLICATES: RuleDoc = RuleDoc {
    id: "AEG-AUD-023",
    name: "exact-duplicates",
    severity: Severity::Info,
    summary: "Rows with identical features (labels ignored).",
    why: "Natural in many tables (coarse or categorical features); they over-weight some inputs and leak across \
          train/test splits, but are not a sign of poisoning on their own.",
    fix: "De-duplicate before splitting into train and test sets, or weight rows by multiplicity.",
    atlas: &["AML.T0020"],
    cwe: &[1039],
};

/// Rows not in the trusted reference.
pub const NEW_ROWS: RuleDoc = RuleDoc {
    id: "AEG-AUD-024",
    name: "rows-not-in-reference",
    severity: Severity::Low,
    summary: "Rows whose features do not occur in the trusted reference snapshot.",
    why: "Poisoned rows are added rows: when a trusted snapshot exists, every row added since is where an \
          injection would be, and the rate says how much changed.",
    fix: "Review the new rows (flagged `new` in the flags CSV), starting with those other checks also flag.",
    atlas: &["AML.T0020"],
    cwe: &[20],
};

/// Rows that contradict the trusted reference.
pub const REFERENCE_CONFLICT: RuleDoc = RuleDoc {
    id: "AEG-AUD-025",
    name: "conflicts-with-reference",
    severity: Severity::High,
    summary: "Rows are exact or near copies of trusted reference rows but carry a different label.",
    why: "The reference is trusted, so a copy of a reference row with another label was relabelled or injected \
          after the snapshot: the signature of a label-flipping attack.",
    fix: "Restore the reference label for these rows or drop them, then retrain and compare.",
    atlas: &["AML.T0020"],
    cwe: &[20],
};

/// All rules of this module.
pub const RULES: &[RuleDoc] = &[
    LABEL_CONFLICT,
    NATURAL_CONFLICT,
    NEAR_DUPLICATES,
    EXACT_DUPLICATES,
    NEW_ROWS,
    REFERENCE_CONFLICT,
];

/// A mixed group at least this big ...
pub const NATURAL_MIN_GROUP: usize = 10;
/// ... whose minority labels hold at least this share is natural ambiguity, not flagged.
pub const NATURAL_MIN_MINORITY_SHARE: f64 = 0.25;

/// Options of the duplicate check.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DuplicateConfig {
    /// Two rows are near duplicates when their squared mixed distance ([`Encoded::distance`]) is at most this
    /// (and they are not exact duplicates). `0` turns the near search off.
    pub near_radius: f32,
    /// The most near-duplicate pairs the search keeps (bounds memory on data that is one dense blob); the
    /// metrics say when it was reached.
    pub max_near_rows: usize,
}

impl Default for DuplicateConfig {
    fn default() -> Self {
        DuplicateConfig {
            near_radius: 0.05,
            max_near_rows: 200_000,
        }
    }
}

/// Exact-duplicate groups of a dataset's feature columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DuplicateGroups {
    /// Group id per row, numbered in order of each group's first row; singletons get their own id.
    pub group_of: Vec<u32>,
    /// Number of groups (distinct rows).
    pub n_groups: usize,
}

/// The bits of an encoded cell with all `NaN`s made one value and `-0.0` made `0.0`.
fn cell_bits(x: f32) -> u32 {
    if x.is_nan() {
        0x7fc0_0000
    } else if x == 0.0 {
        0
    } else {
        x.to_bits()
    }
}

fn mix(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

fn row_hash(row: &[f32]) -> u64 {
    let mut h = 0x243f_6a88_85a3_08d3u64;
    for &x in row {
        h = (h ^ u64::from(cell_bits(x))).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        h = h.rotate_left(29);
    }
    mix(h)
}

fn same_row(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(&x, &y)| cell_bits(x) == cell_bits(y))
}

/// Groups rows whose encoded features are identical (hash of the canonical bits, then verified equality).
pub fn exact_groups(enc: &Encoded) -> DuplicateGroups {
    let n = enc.n_rows;
    let hashes: Vec<u64> = (0..n)
        .into_par_iter()
        .map(|i| row_hash(enc.row(i)))
        .collect();
    let mut order: Vec<u32> = (0..n as u32).collect();
    order.par_sort_unstable_by_key(|&i| (hashes[i as usize], i));
    let mut rep: Vec<u32> = (0..n as u32).collect();
    let mut start = 0;
    while start < n {
        let h = hashes[order[start] as usize];
        let mut end = start + 1;
        while end < n && hashes[order[end] as usize] == h {
            end += 1;
        }
        if end - start > 1 {
            let mut reps: Vec<u32> = Vec::new();
            for &i in &order[start..end] {
                match reps
                    .iter()
                    .find(|&&r| same_row(enc.row(r as usize), enc.row(i as usize)))
                {
                    Some(&r) => rep[i as usize] = r,
                    None => reps.push(i),
                }
            }
        }
        start = end;
    }
    let mut id = vec![u32::MAX; n];
    let mut group_of = vec![0u32; n];
    let mut next = 0u32;
    for i in 0..n {
        let r = rep[i] as usize;
        if id[r] == u32::MAX {
            id[r] = next;
            next += 1;
        }
        group_of[i] = id[r];
    }
    DuplicateGroups {
        group_of,
        n_groups: next as usize,
    }
}

/// Near copies count as one group for label conflicts only within this share of the near radius: natural
/// near pairs across a decision boundary are common in low-dimensional data, copies an attacker perturbed to
/// dodge exact de-duplication are much closer than that.
pub const NEAR_CONFLICT_SHARE: f32 = 0.2;

/// A conflict group counts as natural ambiguity when the out-of-fold probability of every label it carries is
/// below this: the model trained on the other rows cannot tell which label these inputs should have.
pub const AMBIGUOUS_BELOW: f32 = 0.6;

/// The score of the majority side of a tied conflict group (the side the tie-break ranks second).
const TIE_SCORE: f32 = 0.55;

/// Fewer suspicious conflict groups than this (3, or one per thousand rows) is reported as medium: a clean
/// table can hold a stray pair of near-identical rows with different labels, an attack needs many.
fn few_conflicts(n_rows: usize) -> usize {
    (n_rows / 1000).max(3)
}

/// "Near" is relative: in a dense low-dimensional table natural neighbours are closer than the configured
/// radius, so the radius used is at most this share of the typical squared distance between a row and its
/// nearest (non-identical) neighbour.
pub const NEAR_SHARE_OF_TYPICAL: f32 = 0.1;

/// Query rows and neighbour rows sampled to estimate the typical nearest-neighbour distance.
const TYPICAL_QUERIES: usize = 256;
const TYPICAL_POOL: usize = 20_000;

/// The near radius for this table: `cap`, or [`NEAR_SHARE_OF_TYPICAL`] of the typical squared
/// nearest-neighbour distance when that is smaller. The typical distance is the median, over a sample of
/// rows, of the squared distance to the nearest different row in a sample pool, scaled from the pool's size to
/// the table's (nearest distances shrink like `n^(-2/d)` in `d` numeric dimensions). Returns the radius and
/// the typical distance (`None` when the table is too small or has no numeric column to tell).
fn adaptive_radius(enc: &Encoded, reps: &[u32], cap: f32, seed: u64) -> (f32, Option<f32>) {
    let dims = enc.kinds.iter().filter(|k| **k == EncKind::Numeric).count();
    if reps.len() < 50 || dims == 0 {
        return (cap, None);
    }
    let mut rng = aegis_stats::rng::Rng::new(seed ^ 0x7e11);
    let pick = |rng: &mut aegis_stats::rng::Rng, k: usize| -> Vec<u32> {
        if reps.len() <= k {
            return reps.to_vec();
        }
        (0..k).map(|_| reps[rng.below(reps.len())]).collect()
    };
    let queries = pick(&mut rng, TYPICAL_QUERIES);
    let pool = pick(&mut rng, TYPICAL_POOL);
    let mut nearest: Vec<f32> = queries
        .par_iter()
        .filter_map(|&q| {
            let a = enc.row(q as usize);
            pool.iter()
                .filter(|&&p| p != q)
                .map(|&p| enc.distance(a, enc.row(p as usize)))
                .filter(|d| *d > 0.0)
                .min_by(f32::total_cmp)
        })
        .collect();
    if nearest.is_empty() {
        return (cap, None);
    }
    nearest.sort_by(f32::total_cmp);
    let median = nearest[nearest.len() / 2];
    let scale = (pool.len() as f32 / reps.len() as f32).powf(2.0 / dims as f32);
    let typical = median * scale;
    (cap.min(NEAR_SHARE_OF_TYPICAL * typical), Some(typical))
}

/// Number of randomly shifted grids the near search hashes every row into.
const NEAR_TABLES: usize = 6;
/// In a block sorted along one coordinate, each row is compared with at most this many following rows.
const NEAR_WINDOW: usize = 64;

/// Near pairs `(row, row, squared distance)` found in one blocking table, and whether it hit its cap.
type NearBatch = (Vec<(u32, u32, f32)>, bool);

/// Pairs of rows within `radius` (squared mixed distance): among `rows_a` of `a` when `b` is `None`
/// (pairs `(i, j)` with `i < j`), else between `rows_a` of `a` and `rows_b` of `b` (pairs `(a_row, b_row)`).
/// Returns the sorted, de-duplicated pairs and whether `max_pairs` was reached.
fn near_pairs(
    a: &Encoded,
    rows_a: &[u32],
    b: Option<(&Encoded, &[u32])>,
    radius: f32,
    max_pairs: usize,
    seed: u64,
) -> (Vec<(u32, u32, f32)>, bool) {
    let numeric: Vec<usize> = a
        .kinds
        .iter()
        .enumerate()
        .filter(|(_, k)| **k == EncKind::Numeric)
        .map(|(j, _)| j)
        .collect();
    if numeric.is_empty() || radius.is_nan() || radius <= 0.0 || rows_a.is_empty() || max_pairs == 0
    {
        return (Vec::new(), false);
    }
    let exact_cats = radius < MISMATCH;
    let d = a.n_cols();
    let reach = radius.sqrt();
    let width = (2.0 * (numeric.len() as f32 * radius).sqrt()).max(reach);
    let cross = b.is_some();
    let per_table = max_pairs.div_ceil(NEAR_TABLES).max(1);
    let results: Vec<NearBatch> = (0..NEAR_TABLES)
        .into_par_iter()
        .map(|t| {
            let mut rng = aegis_stats::rng::Rng::new(seed ^ (t as u64).wrapping_mul(0x9e37_79b9));
            let offsets: Vec<f32> = (0..d).map(|_| rng.uniform() * width).collect();
            let sweep = numeric[t % numeric.len()];
            let key = |row: &[f32]| -> u64 {
                let mut h = 0x1357_9bdf_u64 ^ t as u64;
                for (j, (&x, kind)) in row.iter().zip(&a.kinds).enumerate() {
                    let part = match kind {
                        EncKind::Numeric if x.is_nan() => u64::MAX,
                        EncKind::Numeric => {
                            ((x + offsets[j]) / width).floor().clamp(-1e15, 1e15) as i64 as u64
                        }
                        EncKind::Categorical { .. } if exact_cats => u64::from(cell_bits(x)),
                        EncKind::Categorical { .. } => 0,
                    };
                    h = (h ^ part)
                        .wrapping_mul(0x9e37_79b9_7f4a_7c15)
                        .rotate_left(31);
                }
                mix(h)
            };
            // Entry: (block key, set << 32 | row).
            let mut entries: Vec<(u64, u64)> = rows_a
                .par_iter()
                .map(|&i| (key(a.row(i as usize)), u64::from(i)))
                .collect();
            if let Some((benc, rows_b)) = b {
                entries.par_extend(
                    rows_b
                        .par_iter()
                        .map(|&i| (key(benc.row(i as usize)), (1u64 << 32) | u64::from(i))),
                );
            }
            entries.par_sort_unstable();
            let mut pairs = Vec::new();
            let mut full = false;
            let mut start = 0;
            let mut block: Vec<(f32, u64)> = Vec::new();
            while start < entries.len() && !full {
                let k = entries[start].0;
                let mut end = start + 1;
                while end < entries.len() && entries[end].0 == k {
                    end += 1;
                }
                let members = &entries[start..end];
                let mixed =
                    !cross || (members[0].1 >> 32 == 0 && members[end - start - 1].1 >> 32 == 1);
                if end - start > 1 && mixed {
                    block.clear();
                    block.extend(members.iter().map(|&(_, tag)| {
                        let row = if tag >> 32 == 0 {
                            a.row((tag & 0xffff_ffff) as usize)
                        } else {
                            b.map_or(a.row(0), |(benc, _)| benc.row((tag & 0xffff_ffff) as usize))
                        };
                        let x = row[sweep];
                        (if x.is_nan() { f32::MAX } else { x }, tag)
                    }));
                    block.sort_unstable_by(|p, q| p.0.total_cmp(&q.0).then(p.1.cmp(&q.1)));
                    'outer: for i in 0..block.len() {
                        let (xi, ti) = block[i];
                        for &(xj, tj) in block.iter().skip(i + 1).take(NEAR_WINDOW) {
                            if xj - xi > reach {
                                break;
                            }
                            let (si, sj) = (ti >> 32, tj >> 32);
                            if cross && si == sj {
                                continue;
                            }
                            let ri = (ti & 0xffff_ffff) as u32;
                            let rj = (tj & 0xffff_ffff) as u32;
                            let dist = match (b, cross) {
                                (Some((benc, _)), true) => {
                                    let (ra, rb) = if si == 0 { (ri, rj) } else { (rj, ri) };
                                    a.distance(a.row(ra as usize), benc.row(rb as usize))
                                }
                                _ => a.distance(a.row(ri as usize), a.row(rj as usize)),
                            };
                            if dist <= radius {
                                let pair = if cross {
                                    if si == 0 {
                                        (ri, rj)
                                    } else {
                                        (rj, ri)
                                    }
                                } else {
                                    (ri.min(rj), ri.max(rj))
                                };
                                pairs.push((pair.0, pair.1, dist));
                                if pairs.len() >= per_table {
                                    full = true;
                                    break 'outer;
                                }
                            }
                        }
                    }
                }
                start = end;
            }
            (pairs, full)
        })
        .collect();
    let truncated = results.iter().any(|r| r.1);
    let mut pairs: Vec<(u32, u32, f32)> = results.into_iter().flat_map(|r| r.0).collect();
    pairs.par_sort_unstable_by_key(|p| (p.0, p.1));
    pairs.dedup_by_key(|p| (p.0, p.1));
    (pairs, truncated)
}

fn find(parent: &mut [u32], mut x: u32) -> u32 {
    while parent[x as usize] != x {
        let p = parent[x as usize];
        parent[x as usize] = parent[p as usize];
        x = p;
    }
    x
}

fn listed(rows: &[usize]) -> Vec<usize> {
    rows.iter().copied().take(MAX_LISTED_ROWS).collect()
}

fn rows_text(rows: &[usize]) -> String {
    let shown: Vec<String> = rows.iter().take(10).map(|r| r.to_string()).collect();
    let more = if rows.len() > 10 {
        format!(" and {} more", rows.len() - 10)
    } else {
        String::new()
    };
    format!("{}{}", shown.join(", "), more)
}

fn location(frame: &Frame, row: Option<usize>) -> Location {
    Location::Dataset {
        path: frame.source.clone(),
        row: row.map(|r| r as u64),
        column: None,
    }
}

fn class_name(frame: &Frame, code: u32) -> String {
    frame
        .labels
        .as_ref()
        .and_then(|l| l.classes.get(code as usize).cloned())
        .unwrap_or_else(|| code.to_string())
}

/// One group of copies whose rows carry different labels.
struct ConflictGroup {
    rows: Vec<usize>,
    flagged: Vec<usize>,
    near: bool,
    natural: bool,
    majority: u32,
}

/// Runs the duplicate check (see the module docs). `label_prob` is, per row, the out-of-fold probability of
/// the row's own label (used to break ties in conflicting groups); `reference` must share the encoding space.
pub fn check(
    frame: &Frame,
    enc: &Encoded,
    reference: Option<(&Frame, &Encoded)>,
    label_prob: Option<&[f32]>,
    cfg: &DuplicateConfig,
) -> Result<CheckOutput, Error> {
    let n = enc.n_rows;
    if frame.n_rows != n {
        return Err(Error::InvalidOption(format!(
            "{}: the encoding has {} rows, the data {}",
            frame.source, n, frame.n_rows
        )));
    }
    if !cfg.near_radius.is_finite() || cfg.near_radius < 0.0 {
        return Err(Error::InvalidOption(format!(
            "near-duplicate radius must be a non-negative number, got {}",
            cfg.near_radius
        )));
    }
    if n > u32::MAX as usize - 1 {
        return Err(Error::InvalidOption(format!(
            "{}: too many rows for the duplicate check ({n})",
            frame.source
        )));
    }
    let label_prob = match label_prob {
        Some(p) if p.len() != n => {
            return Err(Error::InvalidOption(format!(
                "label probabilities have {} rows, the data {}",
                p.len(),
                n
            )))
        }
        other => other,
    };
    if let Some((rf, renc)) = reference {
        if renc.names != enc.names {
            return Err(Error::ReferenceMismatch {
                reference: rf.source.clone(),
                what: format!(
                    "feature columns differ: {:?} vs {:?}",
                    renc.names, enc.names
                ),
            });
        }
    }
    let labels = frame.label_codes().filter(|l| l.len() == n);
    let mut out = CheckOutput::default();

    // Exact groups.
    let groups = exact_groups(enc);
    let g = groups.n_groups;
    let mut size = vec![0u32; g];
    let mut rep = vec![u32::MAX; g];
    for (i, &k) in groups.group_of.iter().enumerate() {
        size[k as usize] += 1;
        if rep[k as usize] == u32::MAX {
            rep[k as usize] = i as u32;
        }
    }
    let dup_groups = size.iter().filter(|&&s| s > 1).count();
    let dup_rows: Vec<usize> = (0..n)
        .filter(|&i| size[groups.group_of[i] as usize] > 1)
        .collect();
    let extra_copies = n - g;

    // Near duplicates among one row per exact group.
    let seed = 0x5eed_d00d;
    let (radius, typical_nn) = adaptive_radius(enc, &rep, cfg.near_radius, seed);
    let (pairs, truncated) = near_pairs(enc, &rep, None, radius, cfg.max_near_rows, seed);
    let mut parent: Vec<u32> = (0..g as u32).collect();
    let tight = radius * NEAR_CONFLICT_SHARE;
    let mut near_group = vec![false; g];
    for &(a, b, dist) in &pairs {
        let (ga, gb) = (groups.group_of[a as usize], groups.group_of[b as usize]);
        near_group[ga as usize] = true;
        near_group[gb as usize] = true;
        if dist > tight {
            continue;
        }
        let (ra, rb) = (find(&mut parent, ga), find(&mut parent, gb));
        if ra != rb {
            parent[ra.max(rb) as usize] = ra.min(rb);
        }
    }
    let cluster_of_group: Vec<u32> = (0..g as u32).map(|k| find(&mut parent, k)).collect();
    let mut groups_in_cluster = vec![0u32; g];
    for &c in &cluster_of_group {
        groups_in_cluster[c as usize] += 1;
    }
    let near_rows: Vec<usize> = (0..n)
        .filter(|&i| near_group[groups.group_of[i] as usize])
        .collect();

    for &i in &dup_rows {
        out.signals.push(RowSignal {
            row: i,
            kind: Kind::Duplicate,
            score: 0.1,
            flagged: false,
        });
    }
    for &i in &near_rows {
        out.signals.push(RowSignal {
            row: i,
            kind: Kind::NearDuplicate,
            score: 0.3,
            flagged: false,
        });
    }

    // Label conflicts inside clusters (exact groups joined by near pairs).
    let mut conflicts: Vec<ConflictGroup> = Vec::new();
    // Disagreement rate inside duplicate groups of 3+ rows (natural label noise among copies).
    let (mut q_rows, mut q_minority) = (0usize, 0usize);
    if let Some(labels) = labels {
        let mut cluster_size = vec![0u32; g];
        for i in 0..n {
            cluster_size[cluster_of_group[groups.group_of[i] as usize] as usize] += 1;
        }
        let mut members: HashMap<u32, Vec<usize>> = HashMap::new();
        for i in 0..n {
            let c = cluster_of_group[groups.group_of[i] as usize];
            if cluster_size[c as usize] > 1 {
                members.entry(c).or_default().push(i);
            }
        }
        let mut keys: Vec<u32> = members.keys().copied().collect();
        keys.sort_unstable();
        for c in keys {
            let rows = members.remove(&c).unwrap_or_default();
            // (label, count, summed probability, first row)
            let mut tally: Vec<(u32, usize, f64, usize)> = Vec::new();
            for &i in &rows {
                let l = labels[i];
                let p = label_prob.map_or(0.0, |p| f64::from(p[i]));
                match tally.iter_mut().find(|t| t.0 == l) {
                    Some(t) => {
                        t.1 += 1;
                        t.2 += p;
                    }
                    None => tally.push((l, 1, p, i)),
                }
            }
            if tally.len() < 2 {
                if rows.len() >= 3 {
                    q_rows += rows.len();
                }
                continue;
            }
            let best = tally
                .iter()
                .copied()
                .max_by(|x, y| x.1.cmp(&y.1).then(x.2.total_cmp(&y.2)).then(y.3.cmp(&x.3)))
                .map_or(labels[rows[0]], |t| t.0);
            let majority_count = tally.iter().find(|t| t.0 == best).map_or(0, |t| t.1);
            let minority_share = 1.0 - majority_count as f64 / rows.len() as f64;
            // Where the out-of-fold model is unsure about these inputs, disagreeing labels are the data's own
            // ambiguity; where it is sure of one of the labels, a copy carries a label the rest of the data
            // contradicts.
            let ambiguous = label_prob.is_some_and(|p| {
                tally.iter().map(|t| p[t.3]).fold(0.0f32, f32::max) < AMBIGUOUS_BELOW
            });
            let natural = ambiguous
                || (rows.len() >= NATURAL_MIN_GROUP
                    && minority_share >= NATURAL_MIN_MINORITY_SHARE);
            if rows.len() >= 3 && !natural {
                q_rows += rows.len();
                q_minority += rows.len() - majority_count;
            }
            let flagged: Vec<usize> = rows
                .iter()
                .copied()
                .filter(|&i| labels[i] != best)
                .collect();
            let score = (0.6 + 0.4 * (1.0 - minority_share)) as f32;
            for &i in &flagged {
                out.signals.push(RowSignal {
                    row: i,
                    kind: Kind::Conflict,
                    score: if natural { 0.25 } else { score },
                    flagged: !natural,
                });
            }
            // A tie (typically a real row and a copy with the other label) cannot say which row is the copy:
            // the tie-break only ranks them, so the other side of the group is flagged too, at a lower score.
            let tie = 2 * majority_count == rows.len();
            if tie && !natural {
                for &i in rows.iter().filter(|&&i| labels[i] == best) {
                    out.signals.push(RowSignal {
                        row: i,
                        kind: Kind::Conflict,
                        score: TIE_SCORE,
                        flagged: true,
                    });
                }
            }
            conflicts.push(ConflictGroup {
                near: groups_in_cluster[c as usize] > 1,
                rows,
                flagged,
                natural,
                majority: best,
            });
        }
    } else {
        out.metrics
            .insert("duplicates.conflicts_skipped".into(), json!("no labels"));
    }

    // Reference: novelty and conflicts with trusted rows.
    let mut new_rows: Vec<usize> = Vec::new();
    let mut ref_conflicts: Vec<(usize, Vec<usize>)> = Vec::new();
    if let Some((rframe, renc)) = reference {
        let mut rhash: Vec<(u64, u32)> = (0..renc.n_rows)
            .into_par_iter()
            .map(|j| (row_hash(renc.row(j)), j as u32))
            .collect();
        rhash.par_sort_unstable();
        // Reference rows equal to each current group's representative.
        let exact: Vec<Vec<u32>> = rep
            .par_iter()
            .map(|&r| {
                let row = enc.row(r as usize);
                let h = row_hash(row);
                let from = rhash.partition_point(|e| e.0 < h);
                rhash[from..]
                    .iter()
                    .take_while(|e| e.0 == h)
                    .filter(|e| same_row(renc.row(e.1 as usize), row))
                    .map(|e| e.1)
                    .collect()
            })
            .collect();
        for i in 0..n {
            if exact[groups.group_of[i] as usize].is_empty() {
                new_rows.push(i);
            }
        }
        for &i in &new_rows {
            out.signals.push(RowSignal {
                row: i,
                kind: Kind::New,
                score: 0.5,
                flagged: true,
            });
        }
        let ref_labels = rframe.label_codes().filter(|l| l.len() == renc.n_rows);
        if let (Some(labels), Some(ref_labels), Some(cur), Some(refl)) = (
            labels,
            ref_labels,
            frame.labels.as_ref(),
            rframe.labels.as_ref(),
        ) {
            // Reference class code -> current class code (u32::MAX when the class is unknown here).
            let map: Vec<u32> = refl
                .classes
                .iter()
                .map(|c| {
                    cur.classes
                        .iter()
                        .position(|x| x == c)
                        .map_or(u32::MAX, |k| k as u32)
                })
                .collect();
            let to_cur = |j: u32| {
                ref_labels
                    .get(j as usize)
                    .and_then(|&c| map.get(c as usize).copied())
                    .unwrap_or(u32::MAX)
            };
            let mut twins: HashMap<u32, Vec<u32>> = HashMap::new();
            for (k, e) in exact.iter().enumerate() {
                if !e.is_empty() {
                    twins.insert(k as u32, e.iter().map(|&j| to_cur(j)).collect());
                }
            }
            // A row the trusted snapshot holds with the same label is vouched for: it is not flagged as the
            // other side of a tied conflict (its flipped copy still is).
            out.signals.retain(|s| {
                let vouched = s.kind == Kind::Conflict
                    && s.score == TIE_SCORE
                    && twins
                        .get(&groups.group_of[s.row])
                        .is_some_and(|ls| ls.contains(&labels[s.row]));
                !vouched
            });
            let ref_groups = exact_groups(renc);
            let mut ref_reps = vec![u32::MAX; ref_groups.n_groups];
            for (j, &k) in ref_groups.group_of.iter().enumerate() {
                if ref_reps[k as usize] == u32::MAX {
                    ref_reps[k as usize] = j as u32;
                }
            }
            let new_reps: Vec<u32> = rep
                .iter()
                .enumerate()
                .filter(|(k, _)| exact[*k].is_empty())
                .map(|(_, &r)| r)
                .collect();
            let (cross, cross_truncated) = near_pairs(
                enc,
                &new_reps,
                Some((renc, &ref_reps)),
                radius,
                cfg.max_near_rows,
                seed ^ 0xabcd,
            );
            if cross_truncated {
                out.metrics
                    .insert("duplicates.reference_near_truncated".into(), json!(true));
            }
            // All reference rows of a reference group share its features; take every label in the group.
            let mut ref_members: HashMap<u32, Vec<u32>> = HashMap::new();
            let wanted: std::collections::HashSet<u32> = cross
                .iter()
                .filter(|p| p.2 <= tight)
                .map(|&(_, j, _)| ref_groups.group_of[j as usize])
                .collect();
            for (j, &k) in ref_groups.group_of.iter().enumerate() {
                if wanted.contains(&k) {
                    ref_members.entry(k).or_default().push(j as u32);
                }
            }
            for &(i, j, dist) in &cross {
                if dist > tight {
                    continue;
                }
                let k = groups.group_of[i as usize];
                let rg = ref_groups.group_of[j as usize];
                let entry = twins.entry(k).or_default();
                for &m in ref_members.get(&rg).map_or(&[][..], |v| v.as_slice()) {
                    entry.push(to_cur(m));
                }
            }
            for (i, (k, label)) in groups.group_of.iter().zip(labels).enumerate() {
                if let Some(t) = twins.get(k) {
                    if !t.is_empty() && !t.contains(label) {
                        let mut others: Vec<u32> = t.clone();
                        others.sort_unstable();
                        others.dedup();
                        ref_conflicts.push((i, others.iter().map(|&c| c as usize).collect()));
                        out.signals.push(RowSignal {
                            row: i,
                            kind: Kind::Conflict,
                            score: 0.85,
                            flagged: true,
                        });
                    }
                }
            }
        }
    }

    // Findings.
    let suspicious: Vec<&ConflictGroup> = conflicts.iter().filter(|c| !c.natural).collect();
    let natural: Vec<&ConflictGroup> = conflicts.iter().filter(|c| c.natural).collect();
    let mut flagged_rows: Vec<usize> = suspicious
        .iter()
        .flat_map(|c| c.flagged.iter().copied())
        .collect();
    flagged_rows.sort_unstable();
    let group_json = |c: &ConflictGroup| -> Value {
        let labels = labels.unwrap_or(&[]);
        json!({
            "rows": c.rows.iter().take(MAX_LISTED_ROWS).collect::<Vec<_>>(),
            "size": c.rows.len(),
            "labels": c.rows.iter().take(MAX_LISTED_ROWS)
                .map(|&i| class_name(frame, labels.get(i).copied().unwrap_or(u32::MAX)))
                .collect::<Vec<_>>(),
            "majority_label": class_name(frame, c.majority),
            "flagged": c.flagged.iter().take(MAX_LISTED_ROWS).collect::<Vec<_>>(),
            "match": if c.near { "near" } else { "exact" },
        })
    };
    let noise = if q_rows > 0 {
        q_minority as f64 / q_rows as f64
    } else {
        0.0
    };
    if !suspicious.is_empty() {
        // Small groups with disagreeing labels are strong evidence only where copies normally agree.
        let base: f64 = if label_prob.is_some() { 0.9 } else { 0.8 };
        let confidence = (base * (1.0 - 4.0 * noise)).clamp(0.1, base);
        let noisy = noise > 0.02;
        let exact_groups_n = suspicious.iter().filter(|c| !c.near).count();
        let message = format!(
            "{} rows are copies of other rows with a different label ({} groups: {} exact, {} near); \
             suspicious rows (the minority label of each group): {}",
            flagged_rows.len(),
            suspicious.len(),
            exact_groups_n,
            suspicious.len() - exact_groups_n,
            rows_text(&flagged_rows)
        );
        out.findings.push(
            Finding::new(&LABEL_CONFLICT, location(frame, flagged_rows.first().copied()), message)
                .with_evidence(json!({
                    "flagged_rows": flagged_rows.len(),
                    "rows": listed(&flagged_rows),
                    "groups": suspicious.len(),
                    "exact_groups": exact_groups_n,
                    "near_groups": suspicious.len() - exact_groups_n,
                    "examples": suspicious.iter().take(20).map(|c| group_json(c)).collect::<Vec<_>>(),
                    "natural_disagreement_rate": noise,
                    "severity_reason": if noisy {
                        "copies disagree often in this data (natural disagreement rate above 2%): some flagged rows may be natural noise"
                    } else {
                        "copies normally agree in this data"
                    },
                    "tie_break": if label_prob.is_some() { "lower out-of-fold probability of own label" } else { "later row" },
                    "confidence": confidence,
                    "confidence_words": if noisy {
                        "moderate: copies often disagree in this data"
                    } else {
                        "high: identical inputs with disagreeing labels in small groups"
                    },
                }))
                .with_severity(if noisy || suspicious.len() < few_conflicts(n) {
                    Severity::Medium
                } else {
                    Severity::High
                }),
        );
    }
    if !natural.is_empty() {
        let rows: usize = natural.iter().map(|c| c.rows.len()).sum();
        let message = format!(
            "{} groups of identical inputs ({} rows) carry mixed labels where the data itself is ambiguous \
             (large groups with a minority share >= {:.0}%, or inputs for which a model trained on the other \
             rows gives no label a probability of {:.0}% or more): natural ambiguity, not flagged",
            natural.len(),
            rows,
            100.0 * NATURAL_MIN_MINORITY_SHARE,
            100.0 * AMBIGUOUS_BELOW
        );
        out.findings.push(
            Finding::new(&NATURAL_CONFLICT, location(frame, None), message).with_evidence(json!({
                "groups": natural.len(),
                "rows": rows,
                "examples": natural.iter().take(10).map(|c| group_json(c)).collect::<Vec<_>>(),
                "thresholds": {"min_group": NATURAL_MIN_GROUP, "min_minority_share": NATURAL_MIN_MINORITY_SHARE, "ambiguous_below": AMBIGUOUS_BELOW},
                "confidence": 0.7,
                "confidence_words": "likely natural: thoroughly mixed groups, or inputs the model cannot label",
            })),
        );
    }
    if !near_rows.is_empty() {
        let message = format!(
            "{} rows are near duplicates of other rows ({} pairs within squared distance {}): {}",
            near_rows.len(),
            pairs.len(),
            radius,
            rows_text(&near_rows)
        );
        out.findings.push(
            Finding::new(&NEAR_DUPLICATES, location(frame, near_rows.first().copied()), message)
                .with_evidence(json!({
                    "near_rows": near_rows.len(),
                    "pairs": pairs.len(),
                    "rows": listed(&near_rows),
                    "example_pairs": pairs.iter().take(20).collect::<Vec<_>>(),
                    "radius": radius,
                    "search_truncated": truncated,
                    "confidence": 0.9,
                    "confidence_words": "measured distances; the blocked search may miss a few pairs near the radius",
                })),
        );
    }
    if dup_groups > 0 {
        let message = format!(
            "{} rows ({:.1}%) belong to {} groups of identical feature values ({} extra copies); \
             natural duplicates are not flagged",
            dup_rows.len(),
            100.0 * dup_rows.len() as f64 / n.max(1) as f64,
            dup_groups,
            extra_copies
        );
        let mut biggest: Vec<(u32, u32)> = size
            .iter()
            .enumerate()
            .filter(|(_, &s)| s > 1)
            .map(|(k, &s)| (s, k as u32))
            .collect();
        biggest.sort_unstable_by(|x, y| y.0.cmp(&x.0).then(x.1.cmp(&y.1)));
        out.findings.push(
            Finding::new(&EXACT_DUPLICATES, location(frame, None), message).with_evidence(json!({
                "duplicate_rows": dup_rows.len(),
                "groups": dup_groups,
                "extra_copies": extra_copies,
                "rate": dup_rows.len() as f64 / n.max(1) as f64,
                "rows": listed(&dup_rows),
                "largest_groups": biggest.iter().take(10)
                    .map(|&(s, k)| json!({"size": s, "first_row": rep[k as usize]}))
                    .collect::<Vec<_>>(),
                "confidence": 1.0,
                "confidence_words": "exact equality of the encoded features",
            })),
        );
    }
    if let Some((rframe, _)) = reference {
        if !new_rows.is_empty() {
            let rate = new_rows.len() as f64 / n.max(1) as f64;
            let message = format!(
                "{} rows ({:.1}%) do not occur in the reference {}: {}",
                new_rows.len(),
                100.0 * rate,
                rframe.source,
                rows_text(&new_rows)
            );
            out.findings.push(
                Finding::new(
                    &NEW_ROWS,
                    location(frame, new_rows.first().copied()),
                    message,
                )
                .with_evidence(json!({
                    "new_rows": new_rows.len(),
                    "rate": rate,
                    "rows": listed(&new_rows),
                    "reference": rframe.source,
                    "confidence": 1.0,
                    "confidence_words": "exact comparison with the reference",
                })),
            );
        }
        if !ref_conflicts.is_empty() {
            let rows: Vec<usize> = ref_conflicts.iter().map(|c| c.0).collect();
            let message = format!(
                "{} rows copy reference rows (exactly or nearly) but carry a different label: {}",
                rows.len(),
                rows_text(&rows)
            );
            let labels = labels.unwrap_or(&[]);
            out.findings.push(
                Finding::new(&REFERENCE_CONFLICT, location(frame, rows.first().copied()), message)
                    .with_evidence(json!({
                        "rows_flagged": rows.len(),
                        "rows": listed(&rows),
                        "examples": ref_conflicts.iter().take(20).map(|(i, ref_labels)| json!({
                            "row": i,
                            "label": class_name(frame, labels.get(*i).copied().unwrap_or(u32::MAX)),
                            "reference_labels": ref_labels.iter()
                                .map(|&c| if c == u32::MAX as usize { "(class not in this data)".to_string() } else { class_name(frame, c as u32) })
                                .collect::<Vec<_>>(),
                        })).collect::<Vec<_>>(),
                        "reference": rframe.source,
                        "confidence": 0.9,
                        "confidence_words": "high: the reference is trusted",
                    })),
            );
        }
    }

    let m = &mut out.metrics;
    m.insert("duplicates.exact_groups".into(), json!(dup_groups));
    m.insert("duplicates.exact_rows".into(), json!(dup_rows.len()));
    m.insert(
        "duplicates.exact_rate".into(),
        json!(dup_rows.len() as f64 / n.max(1) as f64),
    );
    m.insert("duplicates.near_radius".into(), json!(radius));
    m.insert("duplicates.near_radius_cap".into(), json!(cfg.near_radius));
    m.insert(
        "duplicates.typical_nearest_distance".into(),
        json!(typical_nn),
    );
    m.insert("duplicates.near_pairs".into(), json!(pairs.len()));
    m.insert("duplicates.near_rows".into(), json!(near_rows.len()));
    m.insert("duplicates.near_truncated".into(), json!(truncated));
    m.insert("duplicates.conflict_groups".into(), json!(suspicious.len()));
    m.insert(
        "duplicates.conflict_rows_flagged".into(),
        json!(flagged_rows.len()),
    );
    m.insert(
        "duplicates.natural_conflict_groups".into(),
        json!(natural.len()),
    );
    m.insert("duplicates.natural_disagreement_rate".into(), json!(noise));
    if reference.is_some() {
        m.insert("duplicates.new_rows".into(), json!(new_rows.len()));
        m.insert(
            "duplicates.new_rate".into(),
            json!(new_rows.len() as f64 / n.max(1) as f64),
        );
        m.insert(
            "duplicates.reference_conflicts".into(),
            json!(ref_conflicts.len()),
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aegis_core::{Column, ColumnData, Labels};
    use aegis_stats::rng::Rng;

    /// A labelled table: 4 Gaussian columns, one 3-level category (values rounded to 2 decimals, as CSVs are).
    fn table(n: usize, seed: u64) -> (Vec<Vec<f64>>, Vec<u32>, Vec<u32>) {
        let mut rng = Rng::new(seed);
        let mut cols: Vec<Vec<f64>> = (0..4).map(|_| Vec::with_capacity(n)).collect();
        let mut cat = Vec::with_capacity(n);
        let mut y = Vec::with_capacity(n);
        for _ in 0..n {
            let xs: Vec<f64> = (0..4)
                .map(|_| (f64::from(rng.normal()) * 100.0).round() / 100.0)
                .collect();
            y.push(u32::from(xs[0] + xs[1] > 0.0));
            for (c, x) in cols.iter_mut().zip(xs) {
                c.push(x);
            }
            cat.push(rng.below(3) as u32);
        }
        (cols, cat, y)
    }

    fn frame(cols: &[Vec<f64>], cat: &[u32], y: Option<&[u32]>, source: &str) -> Frame {
        let mut columns: Vec<Column> = cols
            .iter()
            .enumerate()
            .map(|(j, c)| Column {
                name: format!("x{j}"),
                data: ColumnData::Numeric(c.clone()),
            })
            .collect();
        columns.push(Column {
            name: "c".into(),
            data: ColumnData::Categorical {
                codes: cat.to_vec(),
                levels: vec!["a".into(), "b".into(), "c".into()],
            },
        });
        Frame {
            source: source.into(),
            columns,
            labels: y.map(|y| Labels {
                column: "y".into(),
                codes: y.to_vec(),
                classes: vec!["0".into(), "1".into()],
            }),
            n_rows: cat.len(),
        }
    }

    /// Appends a copy of row `i` (with `noise` added to the numbers) and the given label.
    fn push_copy(
        cols: &mut [Vec<f64>],
        cat: &mut Vec<u32>,
        y: &mut Vec<u32>,
        i: usize,
        label: u32,
        noise: f64,
        rng: &mut Rng,
    ) {
        for c in cols.iter_mut() {
            let v = c[i] + noise * f64::from(rng.normal());
            c.push(v);
        }
        cat.push(cat[i]);
        y.push(label);
    }

    fn flagged(out: &CheckOutput, kind: Kind) -> Vec<usize> {
        let mut v: Vec<usize> = out
            .signals
            .iter()
            .filter(|s| s.kind == kind && s.flagged)
            .map(|s| s.row)
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    fn f1(found: &[usize], truth: &[usize]) -> f64 {
        let tp = found.iter().filter(|r| truth.contains(r)).count() as f64;
        if tp == 0.0 {
            return 0.0;
        }
        let p = tp / found.len() as f64;
        let r = tp / truth.len() as f64;
        2.0 * p * r / (p + r)
    }

    #[test]
    fn exact_groups_merge_only_identical_rows() {
        let (mut cols, mut cat, mut y) = table(200, 1);
        let mut rng = Rng::new(2);
        push_copy(&mut cols, &mut cat, &mut y, 5, 0, 0.0, &mut rng);
        push_copy(&mut cols, &mut cat, &mut y, 5, 0, 0.0, &mut rng);
        cols[0][7] = f64::NAN;
        push_copy(&mut cols, &mut cat, &mut y, 7, 0, 0.0, &mut rng);
        let f = frame(&cols, &cat, Some(&y), "t.csv");
        let g = exact_groups(&Encoded::new(&f));
        assert_eq!(g.n_groups, 200);
        assert_eq!(g.group_of[200], g.group_of[5]);
        assert_eq!(g.group_of[201], g.group_of[5]);
        assert_eq!(
            g.group_of[202], g.group_of[7],
            "missing cells compare equal"
        );
        assert_ne!(g.group_of[5], g.group_of[6]);
        assert_eq!(g.group_of[0], 0);
    }

    #[test]
    fn flipped_copies_are_flagged_and_natural_duplicates_are_not() {
        let (mut cols, mut cat, mut y) = table(3000, 3);
        let mut rng = Rng::new(4);
        // Natural duplicates: same features, same label.
        for _ in 0..300 {
            let i = rng.below(3000);
            let l = y[i];
            push_copy(&mut cols, &mut cat, &mut y, i, l, 0.0, &mut rng);
        }
        // A big natural mixed group: 12 identical rows, 4 with the other label.
        for k in 0..12 {
            push_copy(
                &mut cols,
                &mut cat,
                &mut y,
                10,
                u32::from(k % 3 == 0),
                0.0,
                &mut rng,
            );
        }
        // Poison: exact copies of rows without a twin, with the label flipped. The pair is the conflicting
        // group: both rows are flagged (the audit cannot know which one is the copy).
        let enc0 = Encoded::new(&frame(&cols, &cat, Some(&y), "t.csv"));
        let twins = exact_groups(&enc0);
        let mut size = vec![0usize; twins.n_groups];
        for &g in &twins.group_of {
            size[g as usize] += 1;
        }
        let mut truth = Vec::new();
        while truth.len() < 120 {
            let i = rng.below(3000);
            if size[twins.group_of[i] as usize] > 1 || truth.contains(&i) {
                continue;
            }
            let l = 1 - y[i];
            truth.push(i);
            truth.push(y.len());
            push_copy(&mut cols, &mut cat, &mut y, i, l, 0.0, &mut rng);
        }
        let f = frame(&cols, &cat, Some(&y), "t.csv");
        let enc = Encoded::new(&f);
        let out = check(&f, &enc, None, None, &DuplicateConfig::default()).unwrap();
        let found = flagged(&out, Kind::Conflict);
        let score = f1(&found, &truth);
        assert!(score >= 0.9, "F1 {score}: found {found:?}");
        assert!(out
            .signals
            .iter()
            .filter(|s| s.kind == Kind::Duplicate)
            .all(|s| !s.flagged));
        let rules: Vec<&str> = out.findings.iter().map(|f| f.rule.as_str()).collect();
        assert!(
            rules.contains(&"AEG-AUD-020")
                && rules.contains(&"AEG-AUD-021")
                && rules.contains(&"AEG-AUD-023")
        );
        assert!(out.metrics["duplicates.exact_rows"].as_u64().unwrap() > 300);

        // Without poison nothing is flagged.
        let n_clean = 3000 + 300;
        let f = frame(
            &cols
                .iter()
                .map(|c| c[..n_clean].to_vec())
                .collect::<Vec<_>>(),
            &cat[..n_clean],
            Some(&y[..n_clean]),
            "clean.csv",
        );
        let out = check(
            &f,
            &Encoded::new(&f),
            None,
            None,
            &DuplicateConfig::default(),
        )
        .unwrap();
        assert!(out.signals.iter().all(|s| !s.flagged));
        assert!(out.findings.iter().all(|f| f.severity <= Severity::Low));
    }

    #[test]
    fn ties_are_broken_by_the_label_probability() {
        let (mut cols, mut cat, mut y) = table(500, 5);
        let mut rng = Rng::new(6);
        let l = 1 - y[3];
        push_copy(&mut cols, &mut cat, &mut y, 3, l, 0.0, &mut rng);
        let f = frame(&cols, &cat, Some(&y), "t.csv");
        let enc = Encoded::new(&f);
        let mut prob = vec![0.9f32; 501];
        let score = |out: &CheckOutput, row: usize| {
            out.signals
                .iter()
                .filter(|s| s.kind == Kind::Conflict && s.row == row)
                .map(|s| s.score)
                .fold(0.0f32, f32::max)
        };
        let out = check(&f, &enc, None, Some(&prob), &DuplicateConfig::default()).unwrap();
        assert_eq!(
            flagged(&out, Kind::Conflict),
            vec![3, 500],
            "both rows of the pair"
        );
        assert!(
            score(&out, 500) > score(&out, 3),
            "the later row ranks first"
        );
        prob[3] = 0.1;
        let out = check(&f, &enc, None, Some(&prob), &DuplicateConfig::default()).unwrap();
        assert_eq!(flagged(&out, Kind::Conflict), vec![3, 500]);
        assert!(
            score(&out, 3) > score(&out, 500),
            "the original has the lower probability"
        );
    }

    #[test]
    fn near_copies_are_found() {
        let (mut cols, mut cat, mut y) = table(4000, 7);
        let mut rng = Rng::new(8);
        let mut near = Vec::new();
        let mut flips = Vec::new();
        for k in 0..80 {
            let i = rng.below(4000);
            let l = if k % 2 == 0 { y[i] } else { 1 - y[i] };
            if k % 2 == 0 {
                near.push(y.len());
            } else {
                // The conflicting pair: the source row and its flipped near copy.
                flips.push(i);
                flips.push(y.len());
            }
            push_copy(&mut cols, &mut cat, &mut y, i, l, 0.01, &mut rng);
        }
        let f = frame(&cols, &cat, Some(&y), "t.csv");
        let out = check(
            &f,
            &Encoded::new(&f),
            None,
            None,
            &DuplicateConfig::default(),
        )
        .unwrap();
        let near_found: Vec<usize> = out
            .signals
            .iter()
            .filter(|s| s.kind == Kind::NearDuplicate)
            .map(|s| s.row)
            .collect();
        let hit = near
            .iter()
            .chain(flips.iter().skip(1).step_by(2))
            .filter(|r| near_found.contains(r))
            .count();
        assert!(hit >= 76, "near copies found: {hit} of 80");

        let score = f1(&flagged(&out, Kind::Conflict), &flips);
        assert!(score >= 0.9, "F1 {score}");
        // Radius 0 switches the near search off.
        let cfg = DuplicateConfig {
            near_radius: 0.0,
            ..DuplicateConfig::default()
        };
        let out = check(&f, &Encoded::new(&f), None, None, &cfg).unwrap();
        assert!(out.signals.iter().all(|s| s.kind != Kind::NearDuplicate));
    }

    #[test]
    fn rows_new_to_the_reference_and_reference_conflicts() {
        let (cols, cat, y) = table(2000, 9);
        let rf = frame(
            &cols.iter().map(|c| c[..1500].to_vec()).collect::<Vec<_>>(),
            &cat[..1500],
            Some(&y[..1500]),
            "ref.csv",
        );
        let renc = Encoded::new(&rf);
        let (mut cols2, mut cat2, mut y2) = (cols.clone(), cat.clone(), y.clone());
        let mut rng = Rng::new(10);
        // Near copy of a reference row with a flipped label, and an exact one.
        let l = 1 - y2[20];
        push_copy(&mut cols2, &mut cat2, &mut y2, 20, l, 0.01, &mut rng);
        y2[30] = 1 - y2[30];
        let f = frame(&cols2, &cat2, Some(&y2), "cur.csv");
        let enc = Encoded::like(&f, &renc);
        let out = check(
            &f,
            &enc,
            Some((&rf, &renc)),
            None,
            &DuplicateConfig::default(),
        )
        .unwrap();
        let new = flagged(&out, Kind::New);
        assert_eq!(new.len(), 501);
        assert!(new.iter().all(|&r| r >= 1500));
        assert_eq!(flagged(&out, Kind::Conflict), vec![30, 2000]);
        assert!(out
            .findings
            .iter()
            .any(|f| f.rule.as_str() == "AEG-AUD-024"));
        assert!(out
            .findings
            .iter()
            .any(|f| f.rule.as_str() == "AEG-AUD-025"));
        // The reference against itself: nothing new, no conflicts.
        let out = check(
            &rf,
            &renc,
            Some((&rf, &renc)),
            None,
            &DuplicateConfig::default(),
        )
        .unwrap();
        assert!(out.signals.iter().all(|s| !s.flagged));
    }

    #[test]
    fn without_labels_conflicts_are_skipped() {
        let (mut cols, mut cat, mut y) = table(300, 11);
        let mut rng = Rng::new(12);
        let l = 1 - y[1];
        push_copy(&mut cols, &mut cat, &mut y, 1, l, 0.0, &mut rng);
        let f = frame(&cols, &cat, None, "t.csv");
        let out = check(
            &f,
            &Encoded::new(&f),
            None,
            None,
            &DuplicateConfig::default(),
        )
        .unwrap();
        assert!(out.signals.iter().all(|s| !s.flagged));
        assert!(out.metrics.contains_key("duplicates.conflicts_skipped"));
        assert_eq!(out.metrics["duplicates.exact_groups"], 1);
    }

    /// Scale check (not run by default): 1,000,000 dense low-dimensional rows with natural duplicates and
    /// label noise, plus 500 flipped copies.
    #[test]
    #[ignore]
    fn scale_dense_million() {
        let n = 1_000_000;
        let mut rng = Rng::new(13);
        let mut cols: Vec<Vec<f64>> = (0..3).map(|_| Vec::with_capacity(n + 500)).collect();
        let mut cat = Vec::with_capacity(n + 500);
        let mut y = Vec::with_capacity(n + 500);
        for _ in 0..n {
            let xs: Vec<f64> = (0..3)
                .map(|_| (f64::from(rng.normal()) * 10.0).round() / 10.0)
                .collect();
            let noisy = rng.uniform() < 0.05;
            y.push(u32::from((xs[0] > 0.0) != noisy));
            for (c, x) in cols.iter_mut().zip(xs) {
                c.push(x);
            }
            cat.push(rng.below(3) as u32);
        }
        let mut truth = Vec::new();
        for _ in 0..500 {
            let i = rng.below(n);
            let l = 1 - y[i];
            truth.push(y.len());
            push_copy(&mut cols, &mut cat, &mut y, i, l, 0.0, &mut rng);
        }
        let f = frame(&cols, &cat, Some(&y), "dense.csv");
        let enc = Encoded::new(&f);
        let t = std::time::Instant::now();
        let out = check(&f, &enc, None, None, &DuplicateConfig::default()).unwrap();
        let found = flagged(&out, Kind::Conflict);
        println!(
            "dense 1M: {:?}, flagged {} F1 {:.3}; {:?}",
            t.elapsed(),
            found.len(),
            f1(&found, &truth),
            out.metrics
        );
    }
}
