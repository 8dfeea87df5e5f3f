//! Backdoor triggers: exact values (or small value combinations) that come with one label far more often than
//! the rest of the row would suggest.
//!
//! A backdoor poison copies or edits a few percent of rows, plants a trigger (`amount == 0.95`, a rare
//! category, or `col_a == 3 AND col_b == 17`) and sets the attacker's label. Cross-validated label-noise
//! detectors miss it, because the model learns the trigger from the other folds and the poisoned rows then look
//! well labelled. This check looks for the trigger directly, in three steps:
//!
//! 1. **Item mining.** Exact values per column (numbers compared as the `f64` read from the file, never the
//!    encoded `f32`) with enough support, high label purity and lift; then pairs of not-pure values whose
//!    combination is pure (Apriori over rows, bounded candidate set, linear in rows).
//! 2. **Override test.** A natural predictive value (`capital-gain == 99999 -> >50K`) agrees with the rest of
//!    its rows: their nearest neighbours, measured without the rule's columns, carry the same label. Backdoor
//!    rows look like the other class. The check measures where the covered rows' neighbour labels sit between
//!    the target class and the other classes (`override_rate`), and adds a spike score for a numeric value far
//!    more frequent than its neighbouring values.
//!    A value that is natural for most of its rows can still hide planted ones (the attacker reused a
//!    predictive value and added a second cell): when more covered rows look like another class than the
//!    target class's own rows do, the check looks for the second `column == value` that singles those rows
//!    out and tests that pair as a rule of its own.
//! 3. **Spectral signatures** (Tran et al., 2018): per class, rows in a label-aware representation
//!    (leave-one-out target encoding of every column: a cheap "learned" representation in which a trigger and
//!    the features that disagree with it both stand out), centred; the top singular vector separates a planted
//!    group from the class. Used to raise a rule's confidence and, when it separates a group no rule explains,
//!    reported on its own (medium at most).
//!
//! Assumes labelled data; text columns are ignored. Work is linear in rows (one hash pass per column, one
//! pass for pairs, bounded samples for neighbours and the spectral fit).

use std::collections::{HashMap, HashSet};

use aegis_core::{
    format_number, ColumnData, Finding, Frame, Location, RuleDoc, Severity, MISSING_CODE,
};
use aegis_stats::rng::Rng;
use rayon::prelude::*;
use serde_json::json;

use crate::encode::Encoded;
use crate::{CheckOutput, Error, Kind, RowSignal, MAX_LISTED_ROWS};

/// A value or value combination that predicts its label against the rest of the row.
pub const BACKDOOR_TRIGGER: RuleDoc = RuleDoc {
    id: "AEG-AUD-040",
    name: "backdoor-trigger",
    severity: Severity::High,
    summary: "A rare exact value or value combination always comes with one label, although the rest of those rows looks like another class: a likely backdoor trigger.",
    why: "A model trained on these rows learns the trigger: any input carrying it at inference time gets the \
          attacker's label (approve the payment, pass the filter), while accuracy on clean data stays unchanged, so \
          ordinary evaluation never shows it.",
    fix: "Drop the covered rows, retrain and compare the predictions on inputs carrying the trigger; check where \
          these rows came from (the data source, the pipeline step, the contributor) before trusting the rest of \
          that source.",
    atlas: &["AML.T0020", "AML.T0018"],
    cwe: &[1039],
};

/// A group of rows that the spectral-signature test separates from the rest of its class.
pub const SPECTRAL_SIGNATURE: RuleDoc = RuleDoc {
    id: "AEG-AUD-041",
    name: "spectral-signature-group",
    severity: Severity::Medium,
    summary: "Within one class, a group of rows separates sharply from the rest along the top singular direction: a possible backdoor without a single-value trigger.",
    why: "Backdoor rows carry both the trigger and the features of another class; in a representation that knows \
          the labels they form a separate, aligned group (Tran et al., 2018, spectral signatures). No exact-value \
          rule explained this group, so the trigger may be a pattern rather than a value.",
    fix: "Inspect the listed rows for a shared pattern; drop them, retrain and compare; check their data source.",
    atlas: &["AML.T0020", "AML.T0018"],
    cwe: &[1039],
};

/// The rules this check emits.
pub const RULES: &[RuleDoc] = &[BACKDOOR_TRIGGER, SPECTRAL_SIGNATURE];

/// Options of the backdoor check.
#[derive(Debug, Clone, PartialEq)]
pub struct BackdoorConfig {
    /// Fewest rows a rule must cover.
    pub min_support: usize,
    /// Values (and combinations) covering more than this share of rows are not triggers.
    pub max_support_rate: f64,
    /// Least share of covered rows that carry the rule's label.
    pub min_purity: f64,
    /// Most items in a rule (1 or 2; larger values are treated as 2).
    pub max_items: usize,
    /// Seed of the samples.
    pub seed: u64,
}

impl BackdoorConfig {
    /// Defaults for a table of `n_rows`: support at least `max(5, 0.1 %)`, at most 20 %, purity 0.9, pairs.
    pub fn for_rows(n_rows: usize) -> BackdoorConfig {
        BackdoorConfig {
            min_support: (n_rows / 1000).max(5),
            max_support_rate: 0.2,
            min_purity: 0.9,
            max_items: 2,
            seed: 0x00BA_CD00,
        }
    }
}

/// Lift (purity / base rate of the label) a rule needs.
const MIN_LIFT: f64 = 1.2;
/// Values in more than this share of rows are not used in pairs (a near-constant value carries nothing).
const PAIR_ITEM_MAX_RATE: f64 = 0.8;
/// Most single items kept as pair candidates.
const MAX_PAIR_ITEMS: usize = 2000;
/// Most candidate rules given the (costlier) override test.
const MAX_RULES_TESTED: usize = 32;
/// Size of the random reference sample for neighbours.
const REFERENCE_SAMPLE: usize = 2000;
/// Covered rows per rule whose neighbours are measured.
const COVERED_SAMPLE: usize = 200;
/// Baseline rows per side (target class, other classes).
const BASELINE_SAMPLE: usize = 300;
/// Neighbours per row.
const K: usize = 10;
/// Below this separation of neighbour labels between classes the override test says nothing.
const MIN_SEPARATION: f64 = 0.1;
/// Rows of a class used to fit the spectral direction.
const SPECTRAL_FIT_ROWS: usize = 20_000;
/// Expected poison rate for the spectral candidate set (1.5x this share of the class).
const EXPECTED_POISON_RATE: f64 = 0.05;
/// Group separation (in pooled standard deviations) the spectral test calls clear.
const SPECTRAL_CLEAR: f64 = 6.0;
/// Most covered rows of one rule whose neighbours are measured one by one (rules that may mix natural and
/// planted rows).
const REFINE_CAP: usize = 20_000;
/// Group separation a spectral-only finding needs (natural clusters such as rows of exact duplicates reach
/// about 7 on real tables).
const SPECTRAL_FINDING: f64 = 9.0;
/// Least excess share of covered rows that look like another class for a not-planted single value to be
/// refined into a pair.
const REFINE_MIN_EXCESS: f64 = 0.05;
/// How much more common the second item of a refinement must be among the suspects than among the rest.
const REFINE_ENRICHMENT: f64 = 5.0;
/// Most refinements tried per table (each measures up to [`REFINE_CAP`] rows' neighbours).
const MAX_REFINEMENTS: usize = 8;
/// Rules below this confidence are not reported.
const REPORT_CONFIDENCE: f64 = 0.25;

/// One exact value of one encoded column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct ItemKey {
    /// Encoded column index.
    col: usize,
    /// Value key (see [`cell_key`]).
    key: u64,
}

/// A candidate rule with its statistics.
#[derive(Debug, Clone)]
struct Rule {
    items: Vec<ItemKey>,
    target: u32,
    support: usize,
    hits: usize,
    purity: f64,
    lift: f64,
    significance: f64,
}

/// The exact-value key of cell `i` (`None` when missing or a text column).
fn cell_key(data: &ColumnData, i: usize) -> Option<u64> {
    match data {
        ColumnData::Numeric(v) => v
            .get(i)
            .filter(|x| !x.is_nan())
            .map(|x| (x + 0.0).to_bits()),
        ColumnData::Categorical { codes, .. } => codes
            .get(i)
            .filter(|&&c| c != MISSING_CODE)
            .map(|&c| u64::from(c)),
        ColumnData::Boolean(v) => v.get(i).copied().flatten().map(u64::from),
        ColumnData::Timestamp(v) => v.get(i).copied().flatten().map(|t| t as u64),
        ColumnData::Text(_) => None,
    }
}

/// How a value reads in a rule.
fn key_text(data: &ColumnData, key: u64) -> String {
    match data {
        ColumnData::Numeric(_) => format_number(f64::from_bits(key)),
        ColumnData::Categorical { levels, .. } => usize::try_from(key)
            .ok()
            .and_then(|k| levels.get(k))
            .cloned()
            .unwrap_or_else(|| key.to_string()),
        ColumnData::Boolean(_) => (key != 0).to_string(),
        ColumnData::Timestamp(_) => (key as i64).to_string(),
        ColumnData::Text(_) => String::new(),
    }
}

/// `n * KL(p || q)` for Bernoulli: the Chernoff exponent of seeing purity `p` in `n` rows at base rate `q`.
fn chernoff(n: usize, p: f64, q: f64) -> f64 {
    let p = p.clamp(1e-9, 1.0 - 1e-9);
    let q = q.clamp(1e-9, 1.0 - 1e-9);
    if p <= q {
        return 0.0;
    }
    n as f64 * (p * (p / q).ln() + (1.0 - p) * ((1.0 - p) / (1.0 - q)).ln())
}

/// Finds backdoor triggers (see the module docs).
pub fn check(frame: &Frame, enc: &Encoded, cfg: &BackdoorConfig) -> Result<CheckOutput, Error> {
    let labels = frame.labels.as_ref().ok_or_else(|| Error::NoLabels {
        dataset: frame.source.clone(),
    })?;
    let n = frame.n_rows.min(labels.codes.len()).min(enc.n_rows);
    let n_classes = labels.classes.len();
    if !(0.0..=1.0).contains(&cfg.max_support_rate) || !(0.0..=1.0).contains(&cfg.min_purity) {
        return Err(Error::InvalidOption(
            "backdoor: max_support_rate and min_purity must lie in [0, 1]".into(),
        ));
    }
    let mut out = CheckOutput::default();
    if n < 20 || n_classes < 2 || enc.n_cols() == 0 {
        out.metrics.insert("backdoor_rules".into(), json!(0));
        return Ok(out);
    }
    let y: Vec<u32> = labels.codes[..n]
        .iter()
        .map(|&c| {
            if (c as usize) < n_classes {
                c
            } else {
                u32::MAX
            }
        })
        .collect();
    let mut class_counts = vec![0usize; n_classes];
    for &c in &y {
        if let Some(k) = class_counts.get_mut(c as usize) {
            *k += 1;
        }
    }
    let labelled: usize = class_counts.iter().sum();
    let base: Vec<f64> = class_counts
        .iter()
        .map(|&c| c as f64 / labelled.max(1) as f64)
        .collect();
    let columns: Vec<&ColumnData> = enc
        .frame_columns
        .iter()
        .map(|&j| &frame.columns[j].data)
        .collect();
    let min_support = cfg.min_support.max(2);
    let max_support = ((cfg.max_support_rate * n as f64).floor() as usize).max(min_support);
    // A pair trigger may combine two common values (each in half the rows) that rarely meet.
    let max_item_support = ((PAIR_ITEM_MAX_RATE * n as f64).floor() as usize).max(max_support);

    // 1. Single items: count each exact value, keep those with support in range, then count labels.
    let item_stats: Vec<HashMap<u64, Vec<u32>>> = columns
        .par_iter()
        .map(|data| {
            let mut support: HashMap<u64, u32> = HashMap::new();
            for i in 0..n {
                if let Some(k) = cell_key(data, i) {
                    *support.entry(k).or_insert(0) += 1;
                }
            }
            let mut kept: HashMap<u64, Vec<u32>> = support
                .into_iter()
                .filter(|&(_, s)| (s as usize) >= min_support && (s as usize) <= max_item_support)
                .map(|(k, _)| (k, vec![0u32; n_classes]))
                .collect();
            if !kept.is_empty() {
                for (i, &c) in y.iter().enumerate() {
                    if c == u32::MAX {
                        continue;
                    }
                    if let Some(k) = cell_key(data, i) {
                        if let Some(counts) = kept.get_mut(&k) {
                            counts[c as usize] += 1;
                        }
                    }
                }
            }
            kept
        })
        .collect();
    let n_items: usize = item_stats.iter().map(HashMap::len).sum();
    let item_bar = ((n_items.max(1) as f64).ln() + (1000.0f64).ln()).max(1.0);
    let mut rules = Vec::new();
    let mut pair_items: Vec<(ItemKey, usize)> = Vec::new();
    for (col, stats) in item_stats.iter().enumerate() {
        for (&key, counts) in stats {
            let item = ItemKey { col, key };
            let support: usize = counts.iter().map(|&c| c as usize).sum();
            let single = if support <= max_support {
                best_rule(
                    vec![item],
                    counts,
                    support,
                    &base,
                    cfg,
                    min_support,
                    item_bar,
                )
            } else {
                None
            };
            match single {
                Some(rule) => rules.push(rule),
                None => pair_items.push((item, support)),
            }
        }
    }
    let single_rules = rules.len();

    // Pairs of not-pure items (Apriori: both items frequent), bounded candidate set.
    if cfg.max_items >= 2 && !pair_items.is_empty() {
        pair_items.sort_by(|a, b| {
            b.1.cmp(&a.1)
                .then(a.0.col.cmp(&b.0.col))
                .then(a.0.key.cmp(&b.0.key))
        });
        pair_items.truncate(MAX_PAIR_ITEMS);
        let mut ids: Vec<HashMap<u64, u32>> = vec![HashMap::new(); columns.len()];
        for (id, (item, _)) in pair_items.iter().enumerate() {
            ids[item.col].insert(item.key, id as u32);
        }
        let active: Vec<usize> = (0..columns.len()).filter(|&c| !ids[c].is_empty()).collect();
        if active.len() >= 2 {
            let pairs = count_pairs(&columns, &ids, &active, &y, n_classes, n);
            let n_pairs = pairs.len().max(1) as f64;
            let pair_bar = (n_pairs.ln() + (1000.0f64).ln()).max(1.0);
            for (code, counts) in pairs {
                let (a, b) = ((code >> 32) as usize, (code & 0xFFFF_FFFF) as usize);
                let support: usize = counts.iter().map(|&c| c as usize).sum();
                if support < min_support || support > max_support {
                    continue;
                }
                let mut items = vec![pair_items[a].0, pair_items[b].0];
                items.sort_by_key(|it| it.col);
                if let Some(rule) =
                    best_rule(items, &counts, support, &base, cfg, min_support, pair_bar)
                {
                    rules.push(rule);
                }
            }
        }
    }
    let pair_rules = rules.len() - single_rules;
    // Most significant first; ties broken by the items so the order never depends on hash order.
    rules.sort_by(|a, b| {
        b.significance
            .total_cmp(&a.significance)
            .then(a.items.len().cmp(&b.items.len()))
            .then_with(|| a.items.cmp(&b.items))
    });
    rules.truncate(MAX_RULES_TESTED);

    // 2. Override test and spike score per candidate rule.
    let mut rng = Rng::new(cfg.seed);
    let mut pool: Vec<usize> = (0..n).collect();
    if n > REFERENCE_SAMPLE {
        // Partial Fisher-Yates: the first REFERENCE_SAMPLE entries become a uniform sample.
        for i in 0..REFERENCE_SAMPLE {
            let j = i + rng.below(n - i);
            pool.swap(i, j);
        }
        pool.truncate(REFERENCE_SAMPLE);
        pool.sort_unstable();
    }
    let spectral = spectral_groups(
        enc,
        &columns,
        &item_stats,
        &y,
        n_classes,
        &class_counts,
        cfg,
    );
    let mut spike_cache: HashMap<usize, Vec<(f64, usize)>> = HashMap::new();
    let ctx = Ctx {
        enc,
        columns: &columns,
        y: &y,
        pool: &pool,
        spectral: &spectral,
        base: &base,
        min_support,
        n,
    };
    let mut scored: Vec<Scored<'_>> = rules
        .into_iter()
        .map(|rule| score_rule(&ctx, rule, &mut rng, &mut spike_cache))
        .collect();

    // Report: highest confidence first; a rule whose rows another reported rule mostly covers is dropped.
    // A single value that is not planted as a whole (natural rows mixed with rows that look like another
    // class) is first refined: a second item that singles out the suspects makes a planted pair rule.
    scored.sort_by(|a, b| b.confidence.total_cmp(&a.confidence));
    let mut claimed: HashSet<usize> = HashSet::new();
    let mut signal: HashMap<usize, f64> = HashMap::new();
    let mut n_reported = 0usize;
    let mut refinements = 0usize;
    let overlapped = |rows: &[usize], claimed: &HashSet<usize>| {
        rows.iter().filter(|i| claimed.contains(i)).count() as f64 > 0.8 * rows.len() as f64
    };
    for first in &scored {
        if first.covered.is_empty() || overlapped(&first.covered, &claimed) {
            continue;
        }
        let reportable = first.confidence >= REPORT_CONFIDENCE;
        let worth_refining = !first.planted
            && first.rule.items.len() == 1
            && first.separation >= MIN_SEPARATION
            && first.excess_low >= REFINE_MIN_EXCESS
            && refinements < MAX_REFINEMENTS;
        if !reportable && !worth_refining {
            continue;
        }
        let refined = if worth_refining {
            refinements += 1;
            refine(&ctx, first, &mut rng, &mut spike_cache).filter(|p| {
                p.planted
                    && p.confidence >= first.confidence.max(0.5)
                    && !overlapped(&p.covered, &claimed)
            })
        } else {
            None
        };
        let quiet = (0.5 * first.confidence).min(0.45);
        if reportable || refined.is_some() {
            for &i in &first.covered {
                let e = signal.entry(i).or_insert(0.0);
                *e = e.max(quiet);
            }
        }
        let (s, suspicious) = match &refined {
            Some(p) => (p, p.covered.clone()),
            None if !reportable => continue,
            None if first.planted => (first, first.covered.clone()),
            None => (first, suspects(first)),
        };
        for &i in &suspicious {
            let e = signal.entry(i).or_insert(0.0);
            *e = e.max(s.confidence);
        }
        claimed.extend(s.covered.iter().copied());
        n_reported += 1;
        out.findings.push(trigger_finding(
            frame,
            &columns,
            enc,
            labels,
            s,
            &suspicious,
            n,
        ));
    }

    // Spectral-only groups: a clear group that no candidate rule (reported or judged natural) explains.
    let mut spectral_findings = 0usize;
    for (class, group) in spectral.iter().enumerate() {
        if group.separation < SPECTRAL_FINDING || group.rows.is_empty() {
            continue;
        }
        let explained = scored.iter().any(|s| {
            s.rule.target as usize == class
                && s.covered.iter().filter(|i| group.rows.contains(i)).count() * 2
                    >= group.rows.len()
        });
        if explained {
            continue;
        }
        spectral_findings += 1;
        let mut rows: Vec<usize> = group.rows.iter().copied().collect();
        rows.sort_unstable();
        for &i in &rows {
            signal.entry(i).or_insert(0.4);
        }
        let class_name = &labels.classes[class];
        let listed: Vec<usize> = rows.iter().copied().take(MAX_LISTED_ROWS).collect();
        let message = format!(
            "{} rows labelled {class_name} separate from the rest of their class along the top spectral \
             direction ({:.1} pooled standard deviations apart) and no exact-value rule explains them; rows {}{}.",
            rows.len(),
            group.separation,
            join(&listed),
            if rows.len() > listed.len() { " …" } else { "" }
        );
        let confidence = (0.3 + 0.03 * (group.separation - SPECTRAL_FINDING)).clamp(0.3, 0.5);
        out.findings.push(
            Finding::new(
                &SPECTRAL_SIGNATURE,
                Location::Dataset {
                    path: frame.source.clone(),
                    row: listed.first().map(|&r| r as u64),
                    column: None,
                },
                message,
            )
            .with_evidence(json!({
                "label": class_name,
                "separation": round(group.separation),
                "confidence": round(confidence),
                "rows": listed,
                "n_rows": rows.len(),
            })),
        );
    }
    let mut rows: Vec<(usize, f64)> = signal.into_iter().collect();
    rows.sort_unstable_by_key(|r| r.0);
    out.signals = rows
        .into_iter()
        .map(|(row, score)| RowSignal {
            row,
            kind: Kind::Backdoor,
            score: score as f32,
            flagged: score >= 0.5,
        })
        .collect();
    out.metrics.insert("backdoor_items".into(), json!(n_items));
    out.metrics.insert(
        "backdoor_spectral_separation".into(),
        json!(spectral
            .iter()
            .map(|g| round(g.separation))
            .collect::<Vec<_>>()),
    );
    out.metrics
        .insert("backdoor_single_candidates".into(), json!(single_rules));
    out.metrics
        .insert("backdoor_pair_candidates".into(), json!(pair_rules));
    out.metrics
        .insert("backdoor_rules".into(), json!(n_reported));
    out.metrics
        .insert("backdoor_spectral_groups".into(), json!(spectral_findings));
    out.metrics.insert(
        "backdoor_candidates".into(),
        json!(scored
            .iter()
            .map(|s| json!({
                "rule": rule_text(&columns, enc, labels, &s.rule),
                "support": s.rule.support,
                "purity": round(s.rule.purity),
                "override_rate": round(s.override_rate),
                "separation": round(s.separation),
                "spike": round(s.spike),
                "spectral_share": round(s.spectral_share),
                "excess_low": round(s.excess_low),
                "confidence": round(s.confidence),
            }))
            .collect::<Vec<_>>()),
    );
    Ok(out)
}

/// What scoring a rule needs from the table.
struct Ctx<'a> {
    enc: &'a Encoded,
    columns: &'a [&'a ColumnData],
    y: &'a [u32],
    pool: &'a [usize],
    spectral: &'a [SpectralGroup],
    base: &'a [f64],
    min_support: usize,
    n: usize,
}

/// Runs the override test, the spike and spectral checks on one rule and combines them into a confidence.
fn score_rule<'a>(
    ctx: &Ctx<'a>,
    rule: Rule,
    rng: &mut Rng,
    spike_cache: &mut HashMap<usize, Vec<(f64, usize)>>,
) -> Scored<'a> {
    let Ctx {
        enc,
        columns,
        y,
        pool,
        spectral,
        base,
        n,
        ..
    } = *ctx;
    let matching: Vec<usize> = (0..n)
        .filter(|&i| {
            rule.items
                .iter()
                .all(|it| cell_key(columns[it.col], i) == Some(it.key))
        })
        .collect();
    let covered: Vec<usize> = matching
        .iter()
        .copied()
        .filter(|&i| y[i] == rule.target)
        .collect();
    let matching_set: HashSet<usize> = matching.iter().copied().collect();
    let nb = neighbours(enc, &rule, &matching_set, pool, y);
    let ov = override_rate(&nb, rule.target, &covered, rng);
    let (override_rate, separation) = (ov.rate, ov.separation);
    let mut spike = 1.0f64;
    for it in &rule.items {
        if let ColumnData::Numeric(v) = columns[it.col] {
            let distinct = spike_cache
                .entry(it.col)
                .or_insert_with(|| distinct_counts(v));
            spike = spike.max(spike_ratio(distinct, f64::from_bits(it.key)));
        }
    }
    // A value whose neighbouring values carry the same label is part of a natural region (shuttle's
    // `f7 == 1 -> 1`, where 2, 3, 4 and 5 are label 1 too), not a trigger: a planted value stands alone.
    let region = match rule.items.as_slice() {
        [it] => match columns[it.col] {
            ColumnData::Numeric(v) => {
                let distinct = spike_cache
                    .entry(it.col)
                    .or_insert_with(|| distinct_counts(v));
                neighbour_label_share(v, y, distinct, f64::from_bits(it.key), rule.target)
            }
            _ => None,
        },
        _ => None,
    };
    let b = base.get(rule.target as usize).copied().unwrap_or(1.0);
    // Natural when the neighbouring values' rows carry the label (at least halfway from the base rate to the
    // rule's own purity), and either are as many as half the covered rows (a region, not a stray value next
    // to a few natural ones) or look as out of place to the rest of the row as the covered rows do (the
    // column itself decides the label there). Planted rows stand out; natural rows next to them do not.
    let natural = region
        .filter(|r| r.share >= b + 0.5 * (rule.purity - b))
        .filter(|r| {
            if 2 * r.rows >= matching.len() {
                return true;
            }
            let mut rows = r.target_rows.clone();
            rng.shuffle(&mut rows);
            rows.truncate(COVERED_SAMPLE);
            let shares = nb.shares(&rows, rule.target);
            let t_nb = shares.iter().sum::<f64>() / shares.len().max(1) as f64;
            let sep = ov.t_tgt - ov.t_oth;
            let nb_override = if sep < MIN_SEPARATION {
                0.0
            } else {
                ((ov.t_tgt - t_nb) / sep).clamp(0.0, 1.0)
            };
            nb_override >= 0.5 * override_rate
        })
        .map(|r| (r.share, r.rows));
    let spectral_share = {
        let group = &spectral[rule.target as usize];
        if group.clear && !covered.is_empty() {
            covered.iter().filter(|i| group.rows.contains(i)).count() as f64 / covered.len() as f64
        } else {
            0.0
        }
    };
    // How far the neighbour test can be trusted: not at all when the other columns barely tell the
    // classes apart, fully from a separation of 0.3.
    let reliability = ((separation - MIN_SEPARATION) / 0.2).clamp(0.0, 1.0);
    let o_term = reliability * ((override_rate - 0.1) / 0.5).clamp(0.0, 1.0);
    // A spike alone cannot tell a planted value from a natural sentinel; when the neighbours can judge,
    // the spike only strengthens an override they already see.
    let s_weight = (1.0 - reliability) + reliability * (override_rate / 0.3).min(1.0);
    let s_raw = ((spike / 3.0).max(1.0).ln() / 10.0f64.ln()).clamp(0.0, 1.0);
    let s_term = 0.5 * s_weight * s_raw;
    let p_term = 0.3 * spectral_share;
    let mut confidence = 1.0 - (1.0 - o_term) * (1.0 - s_term) * (1.0 - p_term);
    // Every covered row is planted when nearly all look like another class or the value is a spike;
    // otherwise the value may be natural with a few planted rows, and only rows that look like another
    // class are flagged.
    let mut planted = override_rate >= 0.7 || s_raw >= 0.7;
    if natural.is_some() {
        confidence = confidence.min(NATURAL_REGION_CONFIDENCE);
        planted = false;
    }
    Scored {
        rule,
        covered,
        nb,
        midpoint: 0.5 * (ov.t_tgt + ov.t_oth),
        excess_low: ov.excess_low,
        planted,
        override_rate,
        separation,
        spike,
        spectral_share,
        confidence,
        natural,
    }
}

/// The most confidence a value in a natural region keeps (below the medium bar).
const NATURAL_REGION_CONFIDENCE: f64 = 0.3;

/// The rows next to a value: those whose value is one of the two nearest distinct values on one side.
struct Region {
    /// Share of them that carry the rule's label.
    share: f64,
    /// How many they are.
    rows: usize,
    /// Those that carry the label.
    target_rows: Vec<usize>,
}

/// The side of `value` (the two nearest distinct values below it, or above it) where the share of `target` is
/// higher, so a value at the edge of a region counts; `None` when neither side has 10 rows.
fn neighbour_label_share(
    v: &[f64],
    y: &[u32],
    distinct: &[(f64, usize)],
    value: f64,
    target: u32,
) -> Option<Region> {
    let pos = distinct.binary_search_by(|p| p.0.total_cmp(&value)).ok()?;
    let below = (pos > 0).then(|| (distinct[pos.saturating_sub(2)].0, distinct[pos - 1].0));
    let above = (pos + 1 < distinct.len()).then(|| {
        (
            distinct[pos + 1].0,
            distinct[(pos + 2).min(distinct.len() - 1)].0,
        )
    });
    let side = |(lo, hi): (f64, f64)| {
        let mut rows = 0usize;
        let mut target_rows = Vec::new();
        for (i, (x, c)) in v.iter().zip(y).enumerate() {
            if *x >= lo && *x <= hi {
                rows += 1;
                if *c == target {
                    target_rows.push(i);
                }
            }
        }
        (rows >= 10).then(|| Region {
            share: target_rows.len() as f64 / rows as f64,
            rows,
            target_rows,
        })
    };
    [below, above]
        .into_iter()
        .flatten()
        .filter_map(side)
        .max_by(|a, b| a.share.total_cmp(&b.share))
}

/// The rows of a not-planted rule that look like another class (up to [`REFINE_CAP`] rows measured).
fn suspects(s: &Scored<'_>) -> Vec<usize> {
    let rows: Vec<usize> = s.covered.iter().copied().take(REFINE_CAP).collect();
    let shares = s.nb.shares(&rows, s.rule.target);
    rows.iter()
        .zip(shares)
        .filter(|p| p.1 < s.midpoint)
        .map(|p| *p.0)
        .collect()
}

/// For a rule that mixes natural rows with rows that look like another class: the one extra `column == value`
/// that covers many of the suspects (at least 30 %) and is [`REFINE_ENRICHMENT`] times rarer among the other
/// covered rows, scored as a two-item rule.
fn refine<'a>(
    ctx: &Ctx<'a>,
    s: &Scored<'a>,
    rng: &mut Rng,
    spike_cache: &mut HashMap<usize, Vec<(f64, usize)>>,
) -> Option<Scored<'a>> {
    if s.rule.items.len() != 1 {
        return None;
    }
    let suspects: HashSet<usize> = suspects(s).into_iter().collect();
    let need = ctx
        .min_support
        .max((0.3 * suspects.len() as f64).ceil() as usize);
    if suspects.len() < need {
        return None;
    }
    let item = s.rule.items[0];
    let rows: Vec<usize> = s.covered.iter().copied().take(REFINE_CAP).collect();
    // The second item that best singles out the suspects: many of them (a) and few of the other covered rows
    // (enrichment). Ranking by `a` alone picks a value common everywhere over the planted one.
    let mut best: Option<(f64, ItemKey)> = None;
    for c in (0..ctx.columns.len()).filter(|&c| c != item.col) {
        let mut counts: HashMap<u64, (usize, usize)> = HashMap::new();
        for &i in &rows {
            if let Some(k) = cell_key(ctx.columns[c], i) {
                let e = counts.entry(k).or_insert((0, 0));
                if suspects.contains(&i) {
                    e.0 += 1;
                } else {
                    e.1 += 1;
                }
            }
        }
        for (key, (a, b)) in counts {
            let candidate = ItemKey { col: c, key };
            // Share among suspects at least REFINE_ENRICHMENT times its share among the other covered rows.
            let others = (rows.len() - suspects.len()).max(1) as f64;
            let enrichment = (a as f64 / suspects.len() as f64) / ((b as f64 + 0.5) / others);
            let strength = a as f64 * enrichment.ln();
            if a >= need
                && enrichment >= REFINE_ENRICHMENT
                && best.is_none_or(|(x, it)| strength > x || (strength == x && candidate < it))
            {
                best = Some((strength, candidate));
            }
        }
    }
    let (_, extra) = best?;
    let mut items = vec![item, extra];
    items.sort();
    let (mut support, mut hits) = (0usize, 0usize);
    for i in 0..ctx.n {
        if items
            .iter()
            .all(|it| cell_key(ctx.columns[it.col], i) == Some(it.key))
            && ctx.y[i] != u32::MAX
        {
            support += 1;
            hits += usize::from(ctx.y[i] == s.rule.target);
        }
    }
    if support < ctx.min_support {
        return None;
    }
    let purity = hits as f64 / support as f64;
    let b = ctx.base.get(s.rule.target as usize).copied().unwrap_or(1.0);
    let rule = Rule {
        items,
        target: s.rule.target,
        support,
        hits,
        purity,
        lift: purity / b.max(1e-12),
        significance: chernoff(support, purity, b),
    };
    Some(score_rule(ctx, rule, rng, spike_cache))
}

/// A tested rule.
#[derive(Debug)]
struct Scored<'a> {
    rule: Rule,
    covered: Vec<usize>,
    nb: Neighbours<'a>,
    midpoint: f64,
    excess_low: f64,
    planted: bool,
    override_rate: f64,
    separation: f64,
    spike: f64,
    spectral_share: f64,
    confidence: f64,
    /// The label share among the neighbouring values and their rows, when it makes the value a natural region.
    natural: Option<(f64, usize)>,
}

fn round(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn join(rows: &[usize]) -> String {
    rows.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The best-class rule for an item set with `counts` per class, if it passes purity, lift and significance.
fn best_rule(
    items: Vec<ItemKey>,
    counts: &[u32],
    support: usize,
    base: &[f64],
    cfg: &BackdoorConfig,
    min_support: usize,
    bar: f64,
) -> Option<Rule> {
    if support < min_support {
        return None;
    }
    let (target, &hits) = counts.iter().enumerate().max_by_key(|&(_, c)| *c)?;
    let purity = f64::from(hits) / support as f64;
    let b = base.get(target).copied().unwrap_or(1.0);
    let lift = purity / b.max(1e-12);
    let significance = chernoff(support, purity, b);
    if purity < cfg.min_purity || lift < MIN_LIFT || significance < bar {
        return None;
    }
    Some(Rule {
        items,
        target: target as u32,
        support,
        hits: hits as usize,
        purity,
        lift,
        significance,
    })
}

/// Counts label per pair of candidate items co-occurring in a row (one item per column per row).
fn count_pairs(
    columns: &[&ColumnData],
    ids: &[HashMap<u64, u32>],
    active: &[usize],
    y: &[u32],
    n_classes: usize,
    n: usize,
) -> HashMap<u64, Vec<u32>> {
    const CHUNK: usize = 16_384;
    let chunks: Vec<usize> = (0..n.div_ceil(CHUNK)).collect();
    chunks
        .par_iter()
        .map(|&c| {
            let mut local: HashMap<u64, Vec<u32>> = HashMap::new();
            let mut row_items: Vec<u32> = Vec::with_capacity(active.len());
            let (start, end) = (c * CHUNK, ((c + 1) * CHUNK).min(n));
            for (i, &label) in y.iter().enumerate().take(end).skip(start) {
                if label == u32::MAX {
                    continue;
                }
                row_items.clear();
                for &col in active {
                    if let Some(k) = cell_key(columns[col], i) {
                        if let Some(&id) = ids[col].get(&k) {
                            row_items.push(id);
                        }
                    }
                }
                row_items.sort_unstable();
                for (x, &a) in row_items.iter().enumerate() {
                    for &b in &row_items[x + 1..] {
                        let code = (u64::from(a) << 32) | u64::from(b);
                        local.entry(code).or_insert_with(|| vec![0; n_classes])[label as usize] +=
                            1;
                    }
                }
            }
            local
        })
        .reduce(HashMap::new, |mut a, b| {
            if a.len() < b.len() {
                return merge(b, a);
            }
            for (k, v) in b {
                let e = a.entry(k).or_insert_with(|| vec![0; v.len()]);
                for (x, y) in e.iter_mut().zip(v) {
                    *x += y;
                }
            }
            a
        })
}

fn merge(mut a: HashMap<u64, Vec<u32>>, b: HashMap<u64, Vec<u32>>) -> HashMap<u64, Vec<u32>> {
    for (k, v) in b {
        let e = a.entry(k).or_insert_with(|| vec![0; v.len()]);
        for (x, y) in e.iter_mut().zip(v) {
            *x += y;
        }
    }
    a
}

/// The reference rows of one rule's override test, with the rule's columns masked out.
#[derive(Debug)]
struct Neighbours<'a> {
    enc: &'a Encoded,
    mask: Vec<bool>,
    rows: Vec<f32>,
    labels: Vec<u32>,
}

impl Neighbours<'_> {
    /// Row `i` of the table with the rule's columns masked.
    fn masked(&self, i: usize) -> Vec<f32> {
        self.enc
            .row(i)
            .iter()
            .zip(&self.mask)
            .map(|(&x, &m)| if m { f32::NAN } else { x })
            .collect()
    }

    /// Share of `target` among the [`K`] nearest reference rows; `skip` is the query's own reference index.
    /// Exact copies (distance 0) are left out for every query alike: natural duplicates are common and would
    /// otherwise favour reference rows over covered rows.
    fn share(&self, query: &[f32], skip: Option<usize>, target: u32) -> f64 {
        let d = self.mask.len();
        let mut dist: Vec<(f32, u32)> = (0..self.labels.len())
            .filter(|&r| Some(r) != skip)
            .map(|r| {
                (
                    self.enc.distance(query, &self.rows[r * d..(r + 1) * d]),
                    self.labels[r],
                )
            })
            .filter(|p| p.0 > 0.0)
            .collect();
        let k = K.min(dist.len());
        if k == 0 {
            return 0.0;
        }
        dist.select_nth_unstable_by(k - 1, |a, b| a.0.total_cmp(&b.0));
        dist[..k].iter().filter(|p| p.1 == target).count() as f64 / k as f64
    }

    /// Shares of the table rows `rows`.
    fn shares(&self, rows: &[usize], target: u32) -> Vec<f64> {
        rows.par_iter()
            .map(|&i| self.share(&self.masked(i), None, target))
            .collect()
    }
}

/// The result of one rule's override test.
#[derive(Debug, Clone, Copy, Default)]
struct Override {
    /// Where the covered rows sit between the target class (0) and the other classes (1).
    rate: f64,
    /// Target rows' mean target share minus other rows' (how well neighbours tell the classes apart).
    separation: f64,
    /// Mean target share of reference rows of the target class and of the other classes.
    t_tgt: f64,
    t_oth: f64,
    /// Share of covered rows that look like another class, minus that share among target rows: planted rows
    /// hidden among natural ones.
    excess_low: f64,
}

/// Builds the masked reference for `rule`: the pool rows it does not match.
fn neighbours<'a>(
    enc: &'a Encoded,
    rule: &Rule,
    matching: &HashSet<usize>,
    pool: &[usize],
    y: &[u32],
) -> Neighbours<'a> {
    let d = enc.n_cols();
    let mut mask = vec![false; d];
    for it in &rule.items {
        mask[it.col] = true;
    }
    let mut nb = Neighbours {
        enc,
        mask,
        rows: Vec::new(),
        labels: Vec::new(),
    };
    for &i in pool {
        if !matching.contains(&i) && y[i] != u32::MAX {
            let row = nb.masked(i);
            nb.rows.extend(row);
            nb.labels.push(y[i]);
        }
    }
    nb
}

/// How far the covered rows' neighbour labels (measured without the rule's columns) sit from the target class
/// towards the other classes: 0 when they look like the target class, 1 when they look like the others.
/// Below [`MIN_SEPARATION`] (neighbours cannot tell the classes apart at all) the rate is 0.
fn override_rate(nb: &Neighbours<'_>, target: u32, covered: &[usize], rng: &mut Rng) -> Override {
    if nb.labels.len() < 2 * K || covered.is_empty() {
        return Override::default();
    }
    let sample = |rows: Vec<usize>, cap: usize, rng: &mut Rng| -> Vec<usize> {
        let mut rows = rows;
        if rows.len() > cap {
            rng.shuffle(&mut rows);
            rows.truncate(cap);
        }
        rows
    };
    let d = nb.mask.len();
    let cov = sample(covered.to_vec(), COVERED_SAMPLE, rng);
    let tgt = sample(
        (0..nb.labels.len())
            .filter(|&r| nb.labels[r] == target)
            .collect(),
        BASELINE_SAMPLE,
        rng,
    );
    let oth = sample(
        (0..nb.labels.len())
            .filter(|&r| nb.labels[r] != target)
            .collect(),
        BASELINE_SAMPLE,
        rng,
    );
    if tgt.is_empty() || oth.is_empty() {
        return Override::default();
    }
    let mean = |v: Vec<f64>| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let own = |rows: &[usize]| -> Vec<f64> {
        rows.par_iter()
            .map(|&r| nb.share(&nb.rows[r * d..(r + 1) * d], Some(r), target))
            .collect()
    };
    let cov_shares = nb.shares(&cov, target);
    let tgt_shares = own(&tgt);
    let t_oth = mean(own(&oth));
    let t_tgt = mean(tgt_shares.clone());
    let t_cov = mean(cov_shares.clone());
    let midpoint = 0.5 * (t_tgt + t_oth);
    let low =
        |v: &[f64]| v.iter().filter(|&&x| x < midpoint).count() as f64 / v.len().max(1) as f64;
    let excess_low = low(&cov_shares) - low(&tgt_shares);
    let separation = t_tgt - t_oth;
    let rate = if separation < MIN_SEPARATION {
        0.0
    } else {
        ((t_tgt - t_cov) / separation).clamp(0.0, 1.0)
    };
    Override {
        rate,
        separation,
        t_tgt,
        t_oth,
        excess_low,
    }
}

/// Sorted distinct finite values of a column with their counts.
fn distinct_counts(v: &[f64]) -> Vec<(f64, usize)> {
    let mut s: Vec<f64> = v
        .iter()
        .copied()
        .filter(|x| x.is_finite())
        .map(|x| x + 0.0)
        .collect();
    s.sort_by(f64::total_cmp);
    let mut out: Vec<(f64, usize)> = Vec::new();
    for x in s {
        match out.last_mut() {
            Some(last) if last.0 == x => last.1 += 1,
            _ => out.push((x, 1)),
        }
    }
    out
}

/// How much more frequent `value` is than the ten nearest distinct values on each side (1 when it is not).
fn spike_ratio(distinct: &[(f64, usize)], value: f64) -> f64 {
    let Ok(pos) = distinct.binary_search_by(|p| p.0.total_cmp(&value)) else {
        return 1.0;
    };
    let lo = pos.saturating_sub(10);
    let hi = (pos + 11).min(distinct.len());
    let others: Vec<usize> = (lo..hi)
        .filter(|&j| j != pos)
        .map(|j| distinct[j].1)
        .collect();
    if others.is_empty() {
        return 1.0;
    }
    let mean = others.iter().sum::<usize>() as f64 / others.len() as f64;
    distinct[pos].1 as f64 / mean.max(1.0)
}

/// The spectral verdict for one class.
#[derive(Debug, Default)]
struct SpectralGroup {
    /// Whether a group separates clearly.
    clear: bool,
    /// Separation of the best split, in pooled standard deviations.
    separation: f64,
    /// The separated rows (when clear) or the top candidates by score (otherwise).
    rows: HashSet<usize>,
}

/// Per class: leave-one-out target encoding of every column (exact values with support, else 16 quantile bins
/// of numeric columns), centred, top singular direction by power iteration, rows projected onto it.
fn spectral_groups(
    enc: &Encoded,
    columns: &[&ColumnData],
    item_stats: &[HashMap<u64, Vec<u32>>],
    y: &[u32],
    n_classes: usize,
    class_counts: &[usize],
    cfg: &BackdoorConfig,
) -> Vec<SpectralGroup> {
    let n = y.len();
    let d = columns.len();
    // Bin edges per numeric column (from the encoded z-scores).
    let edges: Vec<Vec<f32>> = (0..d)
        .map(|c| {
            if !matches!(
                columns[c],
                ColumnData::Numeric(_) | ColumnData::Timestamp(_)
            ) {
                return Vec::new();
            }
            let step = (n / 4000).max(1);
            let mut s: Vec<f32> = (0..n)
                .step_by(step)
                .map(|i| enc.values[i * d + c])
                .filter(|x| !x.is_nan())
                .collect();
            s.sort_by(f32::total_cmp);
            if s.is_empty() {
                return Vec::new();
            }
            let mut e: Vec<f32> = (1..16).map(|q| s[(s.len() - 1) * q / 16]).collect();
            e.dedup();
            e
        })
        .collect();
    // Group key per cell: an exact value with support, else a bin (numeric), else the value itself.
    let group_key = |c: usize, i: usize| -> Option<u64> {
        let k = cell_key(columns[c], i)?;
        if edges[c].is_empty() || item_stats[c].contains_key(&k) {
            return Some(k);
        }
        let z = enc.values[i * d + c];
        let b = edges[c].partition_point(|&e| e < z) as u64;
        Some(u64::MAX - b)
    };
    // Label counts per group key.
    let stats: Vec<HashMap<u64, Vec<u32>>> = (0..d)
        .into_par_iter()
        .map(|c| {
            let mut m: HashMap<u64, Vec<u32>> = HashMap::new();
            for (i, &label) in y.iter().enumerate() {
                if label == u32::MAX {
                    continue;
                }
                if let Some(k) = group_key(c, i) {
                    m.entry(k).or_insert_with(|| vec![0; n_classes])[label as usize] += 1;
                }
            }
            m
        })
        .collect();
    let total: usize = class_counts.iter().sum();
    let mut out = Vec::with_capacity(n_classes);
    for class in 0..n_classes {
        let n_c = class_counts[class];
        if n_c < 50 {
            out.push(SpectralGroup::default());
            continue;
        }
        let prior = n_c as f64 / total.max(1) as f64;
        // Leave-one-out encoding of row i (whose label is `class`), smoothed towards the prior.
        let represent = |i: usize| -> Vec<f64> {
            (0..d)
                .map(|c| {
                    let Some(k) = group_key(c, i) else {
                        return 0.0;
                    };
                    let Some(counts) = stats[c].get(&k) else {
                        return 0.0;
                    };
                    let all: u32 = counts.iter().sum();
                    let hits = f64::from(counts[class]) - 1.0;
                    let rest = f64::from(all) - 1.0;
                    (hits + 5.0 * prior) / (rest + 5.0) - prior
                })
                .collect()
        };
        let rows: Vec<usize> = (0..n).filter(|&i| y[i] == class as u32).collect();
        let step = rows.len().div_ceil(SPECTRAL_FIT_ROWS).max(1);
        let fit: Vec<Vec<f64>> = rows.iter().step_by(step).map(|&i| represent(i)).collect();
        let m = fit.len() as f64;
        let mut mean = vec![0.0; d];
        for r in &fit {
            for (a, b) in mean.iter_mut().zip(r) {
                *a += b / m;
            }
        }
        let mut cov = vec![0.0; d * d];
        for r in &fit {
            for a in 0..d {
                let xa = r[a] - mean[a];
                for b in 0..d {
                    cov[a * d + b] += xa * (r[b] - mean[b]);
                }
            }
        }
        // Standardise each dimension (a correlation matrix): a trigger column moves few rows by a small
        // amount in absolute terms but far in its own units.
        let scale: Vec<f64> = (0..d)
            .map(|a| {
                let sd = (cov[a * d + a] / m).sqrt();
                if sd > 1e-4 {
                    1.0 / sd
                } else {
                    0.0
                }
            })
            .collect();
        for a in 0..d {
            for b in 0..d {
                cov[a * d + b] *= scale[a] * scale[b];
            }
        }
        let mut v: Vec<f64> = (0..d)
            .map(|j| 1.0 + 0.01 * ((j * 7 + cfg.seed as usize) % 13) as f64)
            .collect();
        for _ in 0..100 {
            let mut w = vec![0.0; d];
            for a in 0..d {
                for b in 0..d {
                    w[a] += cov[a * d + b] * v[b];
                }
            }
            let norm = w.iter().map(|x| x * x).sum::<f64>().sqrt();
            if norm <= 1e-15 {
                break;
            }
            v = w.into_iter().map(|x| x / norm).collect();
        }
        let weights: Vec<f64> = v.iter().zip(&scale).map(|(a, b)| a * b).collect();
        let project = |r: &[f64]| -> f64 {
            r.iter()
                .zip(&mean)
                .zip(&weights)
                .map(|((x, m), w)| (x - m) * w)
                .sum()
        };
        let proj: Vec<(f64, usize)> = rows
            .par_iter()
            .map(|&i| (project(&represent(i)), i))
            .collect();
        out.push(best_split(proj, n_c));
    }
    out
}

/// The clearest split of a 1-D projection into a small group (at most 20 %) and the rest.
fn best_split(mut proj: Vec<(f64, usize)>, n_c: usize) -> SpectralGroup {
    proj.sort_by(|a, b| a.0.total_cmp(&b.0));
    let len = proj.len();
    let min_group = (len / 500).max(5);
    let max_group = len / 5;
    let mut prefix = vec![(0.0f64, 0.0f64); len + 1];
    for (j, &(x, _)) in proj.iter().enumerate() {
        prefix[j + 1] = (prefix[j].0 + x, prefix[j].1 + x * x);
    }
    let stats = |a: usize, b: usize| -> (f64, f64) {
        let n = (b - a) as f64;
        let s = prefix[b].0 - prefix[a].0;
        let ss = prefix[b].1 - prefix[a].1;
        let mean = s / n;
        (mean, (ss - s * mean).max(0.0))
    };
    let mut best = (0.0f64, 0usize, false);
    for g in min_group..=max_group {
        for top in [true, false] {
            let split = if top { len - g } else { g };
            let (m1, ss1) = stats(0, split);
            let (m2, ss2) = stats(split, len);
            let pooled = ((ss1 + ss2) / (len as f64 - 2.0).max(1.0))
                .sqrt()
                .max(1e-12);
            let sep = (m2 - m1).abs() / pooled;
            if sep > best.0 {
                best = (sep, g, top);
            }
        }
    }
    let (separation, g, top) = best;
    let clear = separation >= SPECTRAL_CLEAR && g > 0;
    let rows: HashSet<usize> = if clear {
        if top {
            proj[len - g..].iter().map(|p| p.1).collect()
        } else {
            proj[..g].iter().map(|p| p.1).collect()
        }
    } else {
        // Candidates by squared projection: 1.5x the expected poison rate.
        let k = ((1.5 * EXPECTED_POISON_RATE * n_c as f64).ceil() as usize).min(len);
        let mut sq: Vec<(f64, usize)> = proj.iter().map(|p| (p.0 * p.0, p.1)).collect();
        sq.sort_by(|a, b| b.0.total_cmp(&a.0));
        sq[..k].iter().map(|p| p.1).collect()
    };
    SpectralGroup {
        clear,
        separation,
        rows,
    }
}

/// `col_a == 0.95 AND col_b == 17 -> label 1`.
fn rule_text(
    columns: &[&ColumnData],
    enc: &Encoded,
    labels: &aegis_core::Labels,
    rule: &Rule,
) -> String {
    let lhs = rule
        .items
        .iter()
        .map(|it| {
            format!(
                "{} == {}",
                enc.names[it.col],
                key_text(columns[it.col], it.key)
            )
        })
        .collect::<Vec<_>>()
        .join(" AND ");
    let class = labels
        .classes
        .get(rule.target as usize)
        .cloned()
        .unwrap_or_else(|| rule.target.to_string());
    format!("{lhs} -> label {class}")
}

#[allow(clippy::too_many_arguments)]
fn trigger_finding(
    frame: &Frame,
    columns: &[&ColumnData],
    enc: &Encoded,
    labels: &aegis_core::Labels,
    s: &Scored<'_>,
    suspicious: &[usize],
    n: usize,
) -> Finding {
    let text = rule_text(columns, enc, labels, &s.rule);
    let severity = if s.confidence >= 0.8 {
        Severity::High
    } else if s.confidence >= 0.5 {
        Severity::Medium
    } else {
        Severity::Low
    };
    let words = match severity {
        Severity::High => "high confidence",
        Severity::Medium => "medium confidence",
        _ => "low confidence",
    };
    let listed: Vec<usize> = suspicious.iter().copied().take(MAX_LISTED_ROWS).collect();
    let which = if let Some((share, rows)) = s.natural {
        format!(
            "but the values next to it carry the same label too ({:.0}% of {rows} rows), so this looks like a \
             natural pattern of the data rather than a planted trigger",
            100.0 * share
        )
    } else if s.planted && severity >= Severity::Medium {
        "all of them look planted".to_owned()
    } else if s.planted {
        "if it is a trigger, all of the covered rows would be planted".to_owned()
    } else {
        format!(
            "the value also occurs naturally; {} of those rows look like another class and are the suspects",
            suspicious.len()
        )
    };
    let message = format!(
        "{text}: {} rows match, {:.0}% carry the label (lift {:.1}); {:.0}% of what the rest of those rows says \
         points to another class (override rate), {words} ({:.2}) that this is a planted trigger; {which}. \
         Rows {}{}.",
        s.rule.support,
        100.0 * s.rule.purity,
        s.rule.lift,
        100.0 * s.override_rate,
        s.confidence,
        join(&listed),
        if suspicious.len() > listed.len() { " …" } else { "" }
    );
    let column = (s.rule.items.len() == 1).then(|| enc.names[s.rule.items[0].col].clone());
    let mut f = Finding::new(
        &BACKDOOR_TRIGGER,
        Location::Dataset {
            path: frame.source.clone(),
            row: listed.first().map(|&r| r as u64),
            column,
        },
        message,
    )
    .with_severity(severity)
    .with_evidence(json!({
        "rule": text,
        "support": s.rule.support,
        "label_rows": s.rule.hits,
        "purity": round(s.rule.purity),
        "lift": round(s.rule.lift),
        "override_rate": round(s.override_rate),
        "neighbour_separation": round(s.separation),
        "spike_ratio": round(s.spike),
        "spectral_share": round(s.spectral_share),
        "confidence": round(s.confidence),
        "all_rows_planted": s.planted,
        "neighbouring_values_label_share": s.natural.map(|(share, _)| round(share)),
        "rows": listed,
        "n_rows": suspicious.len(),
        "table_rows": n,
    }));
    f.title = text;
    f
}

#[cfg(test)]
mod tests {
    use super::*;
    use aegis_core::{Column, Labels};

    /// A synthetic table whose label follows its features (so neighbours agree with labels), plus the rows a
    /// poisoner changed.
    struct Table {
        x: Vec<Vec<f64>>,
        k: Vec<f64>,
        cat: Vec<u32>,
        levels: Vec<String>,
        y: Vec<u32>,
        poisoned: Vec<usize>,
    }

    const CONTINUOUS: usize = 5;

    fn clean(n: usize, seed: u64) -> Table {
        let mut rng = Rng::new(seed);
        let x: Vec<Vec<f64>> = (0..CONTINUOUS)
            .map(|_| (0..n).map(|_| f64::from(rng.normal())).collect())
            .collect();
        let k: Vec<f64> = (0..n).map(|_| rng.below(40) as f64).collect();
        let cat: Vec<u32> = (0..n).map(|_| rng.below(8) as u32).collect();
        let levels: Vec<String> = (0..8).map(|l| format!("c{l}")).collect();
        let y = (0..n)
            .map(|i| {
                let logit = 2.0 * x[0][i] - 1.5 * x[1][i] + x[2][i] + 0.3 * f64::from(rng.normal());
                u32::from(logit > 0.0)
            })
            .collect();
        Table {
            x,
            k,
            cat,
            levels,
            y,
            poisoned: Vec::new(),
        }
    }

    /// `rate` of the rows of class 0, chosen at random, get `edit` applied and label 1.
    fn poison(t: &mut Table, rate: f64, seed: u64, edit: impl Fn(&mut Table, usize)) {
        let mut rng = Rng::new(seed);
        let n = t.y.len();
        let mut zeros: Vec<usize> = (0..n).filter(|&i| t.y[i] == 0).collect();
        rng.shuffle(&mut zeros);
        let m = (rate * n as f64).round() as usize;
        for &i in zeros.iter().take(m) {
            edit(t, i);
            t.y[i] = 1;
            t.poisoned.push(i);
        }
    }

    fn flip(t: &mut Table, rate: f64, seed: u64) {
        let mut rng = Rng::new(seed);
        for i in 0..t.y.len() {
            if f64::from(rng.uniform()) < rate {
                t.y[i] = 1 - t.y[i];
            }
        }
    }

    fn frame(t: &Table) -> Frame {
        let n = t.y.len();
        let mut columns: Vec<Column> =
            t.x.iter()
                .enumerate()
                .map(|(j, v)| Column {
                    name: format!("x{j}"),
                    data: ColumnData::Numeric(v.clone()),
                })
                .collect();
        columns.push(Column {
            name: "k".into(),
            data: ColumnData::Numeric(t.k.clone()),
        });
        columns.push(Column {
            name: "cat".into(),
            data: ColumnData::Categorical {
                codes: t.cat.clone(),
                levels: t.levels.clone(),
            },
        });
        Frame {
            source: "t.csv".into(),
            columns,
            labels: Some(Labels {
                column: "y".into(),
                codes: t.y.clone(),
                classes: vec!["0".into(), "1".into()],
            }),
            n_rows: n,
        }
    }

    fn run(t: &Table) -> CheckOutput {
        let f = frame(t);
        let enc = Encoded::new(&f);
        check(&f, &enc, &BackdoorConfig::for_rows(f.n_rows)).unwrap()
    }

    fn f1(out: &CheckOutput, truth: &[usize]) -> f64 {
        let flagged: HashSet<usize> = out
            .signals
            .iter()
            .filter(|s| s.flagged)
            .map(|s| s.row)
            .collect();
        let truth: HashSet<usize> = truth.iter().copied().collect();
        let tp = flagged.intersection(&truth).count() as f64;
        if tp == 0.0 {
            return 0.0;
        }
        let p = tp / flagged.len() as f64;
        let r = tp / truth.len() as f64;
        2.0 * p * r / (p + r)
    }

    fn highs(out: &CheckOutput) -> Vec<String> {
        out.findings
            .iter()
            .filter(|f| f.severity >= Severity::High)
            .map(|f| f.title.clone())
            .collect()
    }

    fn show(name: &str, out: &CheckOutput) {
        eprintln!("{name}: {}", serde_json::Value::Object(out.metrics.clone()));
        for f in &out.findings {
            eprintln!(
                "  {:?} {} conf {} rows {} planted {}",
                f.severity,
                f.title,
                f.evidence["confidence"],
                f.evidence["n_rows"],
                f.evidence["all_rows_planted"]
            );
        }
    }

    #[test]
    fn single_value_trigger_in_a_continuous_column() {
        let mut t = clean(4000, 1);
        poison(&mut t, 0.02, 2, |t, i| t.x[3][i] = 0.95);
        let out = run(&t);
        show("continuous", &out);
        let f = f1(&out, &t.poisoned);
        eprintln!("continuous F1 {f:.3}");
        assert!(f >= 0.8, "F1 {f}");
        let top = &out.findings[0];
        assert_eq!(top.title, "x3 == 0.95 -> label 1");
        assert_eq!(top.severity, Severity::High);
        assert_eq!(top.rule.as_str(), "AEG-AUD-040");
        assert_eq!(top.evidence["n_rows"], t.poisoned.len());
    }

    /// Shuttle's `f7 == 1 -> 1`: a frequent value that decides the label, and so do the values next to it. It
    /// is reported at most as low, saying why; the planted triggers above stay high.
    #[test]
    fn a_value_inside_a_natural_region_is_not_a_trigger() {
        let mut t = clean(4000, 21);
        let mut rng = Rng::new(22);
        for i in 0..4000 {
            if rng.below(8) == 0 {
                t.k[i] = 1.0;
            }
        }
        for i in 0..4000 {
            if t.k[i] < 5.0 {
                t.y[i] = 1;
            }
        }
        let out = run(&t);
        show("natural region", &out);
        let on_k: Vec<&Finding> = out
            .findings
            .iter()
            .filter(|f| f.title.starts_with("k == "))
            .collect();
        assert!(!on_k.is_empty(), "the rule on k was not even considered");
        assert!(
            on_k.iter().all(|f| f.severity <= Severity::Low),
            "{:?}",
            on_k.iter()
                .map(|f| (&f.title, f.severity))
                .collect::<Vec<_>>()
        );
        assert!(on_k.iter().all(|f| f.message.contains("natural pattern")));
    }

    #[test]
    fn two_item_combination_trigger_of_common_values() {
        let mut t = clean(4000, 3);
        // k == 3 and cat == c5 are each common (2.5 %, 12.5 %) and not predictive alone.
        poison(&mut t, 0.02, 4, |t, i| {
            t.k[i] = 3.0;
            t.cat[i] = 5;
        });
        let out = run(&t);
        show("pair", &out);
        let f = f1(&out, &t.poisoned);
        eprintln!("pair F1 {f:.3}");
        assert!(f >= 0.8, "F1 {f}");
        let top = &out.findings[0];
        assert_eq!(top.title, "k == 3 AND cat == c5 -> label 1");
        assert_eq!(top.severity, Severity::High);
    }

    #[test]
    fn rare_category_trigger() {
        let mut t = clean(4000, 5);
        t.levels.push("zz".into());
        // The level exists naturally in a handful of rows with their natural labels.
        for i in (0..4000).step_by(800) {
            t.cat[i] = 8;
        }
        poison(&mut t, 0.015, 6, |t, i| t.cat[i] = 8);
        let out = run(&t);
        show("rare category", &out);
        let f = f1(&out, &t.poisoned);
        eprintln!("rare category F1 {f:.3}");
        assert!(f >= 0.8, "F1 {f}");
        assert_eq!(out.findings[0].title, "cat == zz -> label 1");
        assert_eq!(out.findings[0].severity, Severity::High);
    }

    #[test]
    fn trigger_is_found_among_random_label_flips() {
        let mut t = clean(4000, 7);
        poison(&mut t, 0.02, 8, |t, i| t.x[4][i] = 0.95);
        flip(&mut t, 0.05, 9);
        let out = run(&t);
        show("with flips", &out);
        // Rows the flips turned back to 0 no longer carry the attacker's label; score against those that do.
        let still: Vec<usize> = t
            .poisoned
            .iter()
            .copied()
            .filter(|&i| t.y[i] == 1)
            .collect();
        let f = f1(&out, &still);
        eprintln!("with flips F1 {f:.3}");
        assert!(f >= 0.8, "F1 {f}");
        assert_eq!(out.findings[0].title, "x4 == 0.95 -> label 1");
    }

    #[test]
    fn clean_gaussian_table_has_no_high_finding() {
        for seed in [11, 12, 13] {
            let t = clean(4000, seed);
            let out = run(&t);
            show("clean", &out);
            assert!(highs(&out).is_empty(), "{:?}", highs(&out));
            assert!(out.signals.iter().all(|s| !s.flagged));
        }
    }

    #[test]
    fn natural_predictive_values_are_not_high() {
        let mut t = clean(4000, 21);
        t.levels.push("vip".into());
        let mut gain = vec![0.0f64; 4000];
        let mut rng = Rng::new(22);
        for (i, g) in gain.iter_mut().enumerate() {
            // Strong class-1 rows (their other features say class 1) get a category that is ~98 % class 1,
            // and a sentinel value in an otherwise continuous column.
            let strong = 2.0 * t.x[0][i] - 1.5 * t.x[1][i] + t.x[2][i] > 3.0;
            if strong && rng.uniform() < 0.6 {
                t.cat[i] = 8;
            }
            *g = if strong && rng.uniform() < 0.5 {
                99999.0
            } else if rng.uniform() < 0.3 {
                f64::from(rng.range(1000.0, 20000.0)).round()
            } else {
                0.0
            };
        }
        t.x[4] = gain;
        let out = run(&t);
        show("natural", &out);
        assert!(highs(&out).is_empty(), "{:?}", highs(&out));
        let flagged = out.signals.iter().filter(|s| s.flagged).count();
        eprintln!("natural: {flagged} rows flagged");
    }

    #[test]
    fn planted_rows_hidden_in_a_natural_value_are_singled_out_by_a_second_item() {
        let mut t = clean(4000, 61);
        t.levels.push("vip".into());
        let mut rng = Rng::new(62);
        for i in 0..4000 {
            if 2.0 * t.x[0][i] - 1.5 * t.x[1][i] + t.x[2][i] > 2.0 && rng.uniform() < 0.5 {
                t.cat[i] = 8;
            }
        }
        let natural: Vec<usize> = (0..4000).filter(|&i| t.cat[i] == 8).collect();
        poison(&mut t, 0.02, 63, |t, i| {
            t.cat[i] = 8;
            t.k[i] = 7.0;
        });
        let out = run(&t);
        show("hidden", &out);
        let f = f1(&out, &t.poisoned);
        eprintln!(
            "hidden in a natural value: {} natural rows, F1 {f:.3}",
            natural.len()
        );
        assert!(f >= 0.8, "F1 {f}");
        assert_eq!(out.findings[0].title, "k == 7 AND cat == vip -> label 1");
        let flagged: HashSet<usize> = out
            .signals
            .iter()
            .filter(|s| s.flagged)
            .map(|s| s.row)
            .collect();
        let natural_flagged = natural.iter().filter(|i| flagged.contains(i)).count();
        assert!(
            natural_flagged * 20 <= natural.len(),
            "{natural_flagged} natural rows flagged"
        );
    }

    #[test]
    fn no_labels_is_an_error() {
        let mut f = frame(&clean(100, 1));
        f.labels = None;
        let enc = Encoded::new(&f);
        assert!(matches!(
            check(&f, &enc, &BackdoorConfig::for_rows(100)),
            Err(Error::NoLabels { .. })
        ));
    }

    #[test]
    fn a_separated_group_splits_clearly_and_a_gaussian_does_not() {
        let mut rng = Rng::new(31);
        let gaussian: Vec<(f64, usize)> = (0..3000).map(|i| (f64::from(rng.normal()), i)).collect();
        let g = best_split(gaussian.clone(), 3000);
        assert!(!g.clear, "separation {}", g.separation);
        assert!(
            (225..=226).contains(&g.rows.len()),
            "1.5x the expected rate as candidates"
        );
        let mut planted = gaussian;
        for p in planted.iter_mut().take(90) {
            p.0 = 12.0 + 0.5 * p.0;
        }
        let g = best_split(planted, 3000);
        assert!(g.clear, "separation {}", g.separation);
        assert_eq!(g.rows, (0..90).collect::<HashSet<usize>>());
    }

    #[test]
    fn poison_copied_from_rows_of_any_class_is_still_reported() {
        // The attacker picks source rows at random, so about half already looked like the target class.
        let mut t = clean(4000, 41);
        let mut rng = Rng::new(42);
        let mut rows: Vec<usize> = (0..4000).collect();
        rng.shuffle(&mut rows);
        for &i in rows.iter().take(100) {
            t.x[3][i] = 0.95;
            t.y[i] = 1;
            t.poisoned.push(i);
        }
        let out = run(&t);
        show("any source", &out);
        let f = f1(&out, &t.poisoned);
        eprintln!("any source F1 {f:.3}");
        assert!(f >= 0.8, "F1 {f}");
    }

    /// Scale check (run by hand): `cargo test -p aegis-audit --lib backdoor::tests::scale -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn scale() {
        let n: usize = std::env::var("AEGIS_BACKDOOR_SCALE_ROWS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(200_000);
        let mut t = clean(n, 51);
        for j in 0..13 {
            let mut rng = Rng::new(100 + j);
            t.x.push((0..n).map(|_| f64::from(rng.normal())).collect());
        }
        poison(&mut t, 0.02, 52, |t, i| {
            t.k[i] = 3.0;
            t.cat[i] = 5;
        });
        let start = std::time::Instant::now();
        let out = run(&t);
        show("scale", &out);
        eprintln!(
            "scale: {n} rows x {} columns in {:?}, F1 {:.3}",
            t.x.len() + 2,
            start.elapsed(),
            f1(&out, &t.poisoned)
        );
    }

    /// The benchmark's real tables (run by hand after `bench/audit` prepared them):
    /// `cargo test -p aegis-audit --lib backdoor::tests::real_tables -- --ignored --nocapture`.
    /// Clean tables must give no high finding; a 2 % backdoor with a trigger chosen as the benchmark does
    /// (a value seen in 1-3 rows, else a pair of common values that rarely meet) is scored by F1.
    #[test]
    #[ignore]
    fn real_tables() {
        use aegis_test_support::poison::{parse_csv, poison_csv, Poison};
        // Which candidate trigger (as a fraction of the sorted candidates) and the poisoning seed.
        let pick: f64 = std::env::var("AEGIS_BACKDOOR_PICK")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.5);
        let seed: u64 = std::env::var("AEGIS_BACKDOOR_SEED")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(7);
        let at = |len: usize| ((len as f64 * pick) as usize).min(len.saturating_sub(1));
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench/work/audit");
        for (name, label, target) in [
            ("phishing", "is_phishing", "1"),
            ("spam", "yesno", "y"),
            ("adult", "income", ">50K"),
        ] {
            let Ok(text) = std::fs::read_to_string(dir.join(name).join("clean.csv")) else {
                eprintln!("{name}: no clean.csv");
                continue;
            };
            let opts = aegis_data::ReadOptions {
                label: Some(label.into()),
                ..Default::default()
            };
            let f = aegis_data::read_frame_bytes(name, text.as_bytes(), &opts).unwrap();
            let enc = Encoded::new(&f);
            let out = check(&f, &enc, &BackdoorConfig::for_rows(f.n_rows)).unwrap();
            show(&format!("{name} clean"), &out);
            let records = parse_csv(&text).unwrap();
            let header = &records[0];
            let li = header.iter().position(|h| h == label).unwrap();
            let rows = &records[1..];
            let mut counts: Vec<HashMap<&str, usize>> = vec![HashMap::new(); header.len()];
            for r in rows {
                for (c, v) in r.iter().enumerate() {
                    if c != li && !v.is_empty() && v != "?" {
                        *counts[c].entry(v.as_str()).or_insert(0) += 1;
                    }
                }
            }
            let mut singles: Vec<(usize, &str)> = (0..header.len())
                .filter(|&c| c != li)
                .flat_map(|c| {
                    counts[c]
                        .iter()
                        .filter(|(_, &k)| (1..=3).contains(&k))
                        .map(move |(v, _)| (c, *v))
                })
                .collect();
            singles.sort();
            let trigger: Vec<(String, String)> = if singles.is_empty() {
                let n = rows.len() as f64;
                let mut pairs = Vec::new();
                for a in 0..header.len() {
                    for b in a + 1..header.len() {
                        if a == li || b == li {
                            continue;
                        }
                        let mut joint: HashMap<(&str, &str), usize> = HashMap::new();
                        for r in rows {
                            *joint.entry((&r[a], &r[b])).or_insert(0) += 1;
                        }
                        for (va, &ca) in &counts[a] {
                            for (vb, &cb) in &counts[b] {
                                if ca as f64 >= 0.05 * n
                                    && cb as f64 >= 0.05 * n
                                    && *joint.get(&(*va, *vb)).unwrap_or(&0) as f64 <= 0.002 * n
                                {
                                    pairs.push((a, va.to_string(), b, vb.to_string()));
                                }
                            }
                        }
                    }
                }
                pairs.sort();
                let p = &pairs[at(pairs.len())];
                vec![
                    (header[p.0].clone(), p.1.clone()),
                    (header[p.2].clone(), p.3.clone()),
                ]
            } else {
                let (c, v) = singles[at(singles.len())];
                vec![(header[c].clone(), v.to_string())]
            };
            let poisons = [Poison::Backdoor {
                rate: 0.02,
                trigger: trigger.clone(),
                target: target.into(),
            }];
            let (poisoned, truth) = poison_csv(&text, label, &poisons, seed).unwrap();
            let f = aegis_data::read_frame_bytes(name, poisoned.as_bytes(), &opts).unwrap();
            let enc = Encoded::new(&f);
            let out = check(&f, &enc, &BackdoorConfig::for_rows(f.n_rows)).unwrap();
            show(&format!("{name} poisoned {trigger:?}"), &out);
            let truth: Vec<usize> = truth.iter().map(|t| t.row).collect();
            eprintln!("{name}: backdoor F1 {:.3}", f1(&out, &truth));
        }
    }
}
