//! PRADA (Juuti, Szyller, Marchal, Asokan: "PRADA: Protecting against DNN Model Stealing Attacks", EuroS&P 2019):
//! detect model extraction from the distribution of distances between a client's successive queries, plus cheap
//! coverage signals (queries, share of near-boundary answers, share of out-of-distribution queries).
//!
//! # Why it works
//! A benign client sends natural inputs: independent draws from the data distribution. For each predicted class
//! the detector keeps a *growing set* of representative queries; the minimum distance of a new query to its
//! class's set is then a sum of many small per-feature contributions and, over a window, looks roughly normal.
//! An extraction attacker cannot afford natural data, so it synthesises queries: Jacobian-based augmentation
//! (Papernot et al.) steps `x + λ·sign(∇)` away from a few seeds, and other attacks perturb a seed slightly or
//! walk along decision boundaries. Their minimum distances cluster at the step size (many near-identical small
//! values) with a tail of long jumps between seeds: a skewed, multi-modal distribution. The Shapiro–Wilk W of the
//! distance set measures exactly that departure from normality; PRADA raises the alarm when W < δ.
//!
//! # Algorithm (per client and model, Algorithm 1 of the paper)
//! For a query `x` with predicted class `c = argmax(probabilities)`:
//! 1. map `x` per feature: `config.feature_map` fitted on reference data (robust or normal scores; see
//!    [`crate::feature_map`] for why tabular data needs one) or divide by `config.scale`;
//! 2. if class `c` has no representatives yet, `x` becomes its first one (no distance);
//! 3. otherwise `d_min` = min L2 distance from `x` to the representatives `G_c`; `d_min` joins the distance set
//!    `D` (the `window` most recent are kept); if `d_min > T_c`, `x` joins `G_c`, `d_min` joins the class's own
//!    distance record `D_{G_c}` and `T_c ← max(T_c, mean(D_{G_c}) − std(D_{G_c}))` (kept as running sums);
//! 4. once `|D| ≥ min_distances` (and every `test_every` new distances), values of `D` outside mean ± 3·std are
//!    dropped (the paper's outlier filter) and Shapiro–Wilk runs on the rest: alarm when `W < δ`. The alarm is
//!    sticky; W keeps being tracked for the dashboard.
//!
//! # Deviations, all for bounded memory or robustness against untrusted queries
//! - `G_c` holds at most `max_representatives` queries: once full, a query that would join replaces a uniformly
//!   chosen slot with reservoir probability (Algorithm R), with a deterministic xorshift RNG kept in the state so
//!   replicas replaying the same stream agree. At most `max_classes` classes are tracked.
//! - An exact repeat of a representative (`d_min = 0`) is counted as a duplicate and not added to `D`: retries
//!   and cached clients would otherwise look like a degenerate, non-normal distance set, and repeats teach an
//!   attacker nothing.
//! - Queries that cannot be measured (NaN or infinite features, a feature count different from the first query
//!   or from `scale`, no finite probability) are counted in `skipped` and change nothing else.
//!
//! # Default δ = 0.9 (measured in this module's tests, 10-feature 3-class Gaussian-mixture victim)
//! - Benign streams (natural draws): lowest W 0.931 over 100 streams of 2,000 queries and 0.907 over 30 streams
//!   of 10,000; false alarms at δ = 0.90 / 0.92 / 0.94 / 0.96: 0 / 0 / 1 / 5 of 100 (2k) and 0 / 1 / 1 / 3 of 30
//!   (10k).
//! - Jacobian augmentation (λ = 0.1) and random perturbations of 10 seeds: W 0.36–0.79, alarm at the first test
//!   (query 103 = 3 first-of-class queries + `min_distances`) for every δ ≥ 0.85. The same attack interleaved 1:1
//!   with natural queries: caught by 4 of 5 streams at δ = 0.9, all 5 at δ = 0.92.
//! - Uniform noise over a wide box is *not* caught by W (0.97–0.99: random points give normal-looking distances);
//!   it shows in the coverage signals instead (99.8 % out of distribution vs 0.25 % for natural queries).
//!
//! The paper sets δ per model (values around 0.9–0.96); calibrate on a benign stream of your own traffic when
//! you can (`experiment_delta` in the tests shows how).
//!
//! State size: about `classes × max_representatives × features` numbers plus `window` distances; with the
//! defaults and 10 classes of 20 features that is ≤ 200k numbers (a few MB of JSON). Pick `max_representatives`
//! for the database row size you accept.

use std::collections::VecDeque;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::feature_map::{population_std, sorted_columns, FeatureMap, NormalScores, RobustScores};
use crate::shapiro::{shapiro_wilk, MAX_N, MIN_N};
use crate::Error;

/// Values of the distance set farther than this many standard deviations from its mean are left out of the test.
const OUTLIER_SIGMAS: f64 = 3.0;

/// Distances at or above this are treated as unmeasurable (their squares would overflow the running sums).
const MAX_DISTANCE: f64 = 1e100;

/// Seed of the reservoir RNG when a state has none (xorshift cannot start from 0).
const DEFAULT_SEED: u64 = 0x9E37_79B9_7F4A_7C15;

/// The space in which the extraction detector measures distances between queries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DistanceSpace {
    /// Each feature mapped to normal scores of the reference data
    /// ([`NormalScores`](crate::feature_map::NormalScores): the fewest false alarms on heavy-tailed data).
    NormalScores,
    /// Median and IQR scaling with softly clipped tails ([`RobustScores`](crate::feature_map::RobustScores)).
    #[default]
    Robust,
    /// Each feature divided by the reference data's standard deviation (keeps an attacker's fixed steps fixed,
    /// but heavy-tailed features raise false alarms).
    Std,
}

impl std::str::FromStr for DistanceSpace {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DistanceSpace::ALL
            .into_iter()
            .find(|d| d.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = DistanceSpace::ALL.iter().map(|d| d.name()).collect();
                format!(
                    "unknown distance space {s:?} (expected one of: {})",
                    names.join(", ")
                )
            })
    }
}

impl DistanceSpace {
    /// Every space, in the order documented.
    pub const ALL: [DistanceSpace; 3] = [
        DistanceSpace::Robust,
        DistanceSpace::NormalScores,
        DistanceSpace::Std,
    ];

    /// The name used in configuration files and on the command line (serde's spelling).
    pub fn name(self) -> &'static str {
        match self {
            DistanceSpace::NormalScores => "normal-scores",
            DistanceSpace::Robust => "robust",
            DistanceSpace::Std => "std",
        }
    }

    /// Fit this space on reference `rows` (row-major, `n_features` each) into `config`: a feature map, or for
    /// [`DistanceSpace::Std`] the population standard deviations as `scale` (1 where a feature is constant).
    pub fn fit_into(
        self,
        config: &mut PradaConfig,
        rows: &[f64],
        n_features: usize,
    ) -> Result<(), Error> {
        let map = match self {
            DistanceSpace::NormalScores => FeatureMap::Normal(NormalScores::fit(rows, n_features)?),
            DistanceSpace::Robust => FeatureMap::Robust(RobustScores::fit(rows, n_features)?),
            DistanceSpace::Std => {
                config.scale = column_stds(rows, n_features)?;
                config.feature_map = None;
                return Ok(());
            }
        };
        config.feature_map = Some(Arc::new(map));
        config.scale.clear();
        Ok(())
    }
}

/// Population standard deviation of each feature's finite values (1 where it is 0).
fn column_stds(rows: &[f64], n_features: usize) -> Result<Vec<f64>, Error> {
    Ok(sorted_columns(rows, n_features)?
        .iter()
        .map(|col| {
            let std = population_std(col);
            if std.is_finite() && std > 0.0 {
                std
            } else {
                1.0
            }
        })
        .collect())
}

/// Detector settings (per model).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PradaConfig {
    /// Alarm when the Shapiro–Wilk W of the distance set falls below this (the paper's δ).
    pub delta: f64,
    /// No test until the distance set holds this many distances.
    pub min_distances: usize,
    /// At most this many (most recent) distances are kept and tested (≤ 5000, Shapiro–Wilk's range).
    pub window: usize,
    /// At most this many representative queries are kept per class (bounded memory).
    pub max_representatives: usize,
    /// Per-feature divisor applied before distances (e.g. the reference standard deviations); empty = 1.
    pub scale: Vec<f64>,
    /// A query whose top-two probability margin is below this counts as near the decision boundary.
    pub low_margin: f64,
    /// Run the test once every this many new distances (1 = after each; larger saves CPU on busy keys).
    pub test_every: usize,
    /// At most this many distinct predicted classes are tracked; queries of further classes only count.
    pub max_classes: usize,
    /// Map features before distances (instead of `scale`); fitted by the caller on reference data, never read
    /// from a configuration file.
    #[serde(skip)]
    pub feature_map: Option<Arc<FeatureMap>>,
}

impl Default for PradaConfig {
    fn default() -> Self {
        PradaConfig {
            delta: 0.9,
            min_distances: 100,
            window: 1000,
            max_representatives: 1000,
            scale: Vec::new(),
            low_margin: 0.1,
            test_every: 1,
            max_classes: 1000,
            feature_map: None,
        }
    }
}

impl PradaConfig {
    /// Refuse settings the detector cannot honour: δ outside (0, 1), a window outside 3..=5000, fewer than 3 or
    /// more than `window` distances before the first test, zero caps, a non-positive or non-finite scale, a
    /// margin outside [0, 1].
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |m: String| Err(Error::Invalid(format!("PRADA config: {m}")));
        if !(self.delta > 0.0 && self.delta < 1.0) {
            return bad(format!("delta must be in (0, 1), got {}", self.delta));
        }
        if !(MIN_N..=MAX_N).contains(&self.window) {
            return bad(format!(
                "window must be in {MIN_N}..={MAX_N}, got {}",
                self.window
            ));
        }
        if !(MIN_N..=self.window).contains(&self.min_distances) {
            return bad(format!(
                "min_distances must be in {MIN_N}..=window ({}), got {}",
                self.window, self.min_distances
            ));
        }
        if self.max_representatives == 0 {
            return bad("max_representatives must be at least 1".into());
        }
        if self.max_classes == 0 {
            return bad("max_classes must be at least 1".into());
        }
        if self.test_every == 0 {
            return bad("test_every must be at least 1".into());
        }
        if !(0.0..=1.0).contains(&self.low_margin) {
            return bad(format!(
                "low_margin must be in [0, 1], got {}",
                self.low_margin
            ));
        }
        if self.feature_map.is_some() && !self.scale.is_empty() {
            return bad("give either a scale or a feature map, not both".into());
        }
        if let Some((i, s)) = self
            .scale
            .iter()
            .enumerate()
            .find(|(_, s)| !(s.is_finite() && **s > 0.0))
        {
            return bad(format!("scale[{i}] must be finite and positive, got {s}"));
        }
        Ok(())
    }

    /// The window actually used (clamped to Shapiro–Wilk's range even if `validate` was skipped).
    fn effective_window(&self) -> usize {
        self.window.clamp(MIN_N, MAX_N)
    }
}

/// One predicted class's growing set and threshold.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClassState {
    /// The class index (position in the probability vector).
    pub class: usize,
    /// Representative queries `G_c` (scaled features), at most `max_representatives`.
    pub representatives: Vec<Vec<f64>>,
    /// Queries that have joined `G_c` so far (the reservoir's count, including the first).
    pub joined: u64,
    /// Number of distances in `D_{G_c}` (queries that joined with a distance).
    pub grown: u64,
    /// Sum of `D_{G_c}`.
    pub sum: f64,
    /// Sum of squares of `D_{G_c}`.
    pub sum_sq: f64,
    /// The threshold `T_c`: a query farther than this from `G_c` joins it.
    pub threshold: f64,
}

/// One client's detector state for one model; serialisable so it can live in a database row.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PradaState {
    /// Queries seen.
    pub queries: u64,
    /// Queries whose top-two margin was below `low_margin`.
    pub low_margin: u64,
    /// Queries outside the reference data's range.
    pub out_of_distribution: u64,
    /// Whether an alarm has been raised (stays raised).
    pub alarmed: bool,
    /// Query count at which the alarm was first raised.
    pub alarm_at: Option<u64>,
    /// Per-class growing sets, sorted by class.
    pub classes: Vec<ClassState>,
    /// The distance set `D`: the `window` most recent minimum distances, oldest first.
    pub distances: VecDeque<f64>,
    /// Feature count, fixed by the first measurable query.
    pub features: Option<usize>,
    /// The most recent Shapiro–Wilk W.
    pub last_w: Option<f64>,
    /// Lowest W seen so far.
    pub min_w: Option<f64>,
    /// Distances added since the last test.
    pub pending: u64,
    /// Exact repeats of a representative (distance 0), not added to `D`.
    pub duplicates: u64,
    /// Queries that could not be measured (bad features or probabilities, class cap reached).
    pub skipped: u64,
    /// xorshift64 state of the reservoir sampler (0 = not yet seeded).
    pub rng: u64,
}

/// What one observation concluded.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// Minimum distance of the query to its class's representatives (None for a class's first query).
    pub min_distance: Option<f64>,
    /// Shapiro–Wilk W of the distance set, when tested.
    pub w: Option<f64>,
    /// True when this observation raised the alarm or it was already raised.
    pub alarm: bool,
    /// True only on the observation that first raised it.
    pub new_alarm: bool,
}

/// A summary of one client's state for dashboards, metrics and reports.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Coverage {
    /// Queries seen.
    pub queries: u64,
    /// Share of queries whose top-two margin was below `low_margin` (0 with no queries).
    pub low_margin_share: f64,
    /// Share of queries outside the reference data (0 with no queries).
    pub out_of_distribution_share: f64,
    /// The most recent Shapiro–Wilk W, if a test has run.
    pub w: Option<f64>,
    /// The lowest W seen.
    pub min_w: Option<f64>,
    /// Distinct predicted classes tracked.
    pub classes_seen: usize,
    /// Representative queries kept over all classes.
    pub representatives: usize,
    /// Distances currently in the window.
    pub distances: usize,
    /// Whether the alarm is raised.
    pub alarmed: bool,
    /// Query count at which it was first raised.
    pub alarm_at: Option<u64>,
}

impl PradaState {
    /// Feed one query `x` (raw features), the model's probabilities for it, and whether it lies outside the
    /// reference data.
    pub fn observe(
        &mut self,
        config: &PradaConfig,
        x: &[f64],
        probabilities: &[f32],
        out_of_distribution: bool,
    ) -> Verdict {
        self.queries += 1;
        if out_of_distribution {
            self.out_of_distribution += 1;
        }
        self.enforce_caps(config);
        let mut verdict = Verdict {
            min_distance: None,
            w: None,
            alarm: self.alarmed,
            new_alarm: false,
        };
        let Some((class, margin)) = top_two(probabilities) else {
            self.skipped += 1;
            return verdict;
        };
        if margin < config.low_margin {
            self.low_margin += 1;
        }
        let Some(z) = self.scaled(config, x) else {
            self.skipped += 1;
            return verdict;
        };
        let pos = match self.classes.binary_search_by_key(&class, |c| c.class) {
            Ok(pos) => pos,
            Err(pos) => {
                if self.classes.len() >= config.max_classes.max(1) {
                    self.skipped += 1;
                } else {
                    self.features = Some(z.len());
                    self.classes.insert(
                        pos,
                        ClassState {
                            class,
                            representatives: vec![z],
                            joined: 1,
                            ..ClassState::default()
                        },
                    );
                }
                return verdict;
            }
        };
        let d_min = self.classes[pos]
            .representatives
            .iter()
            .map(|r| l2(r, &z))
            .fold(f64::INFINITY, f64::min);
        if d_min.is_nan() || d_min >= MAX_DISTANCE {
            self.skipped += 1;
            return verdict;
        }
        verdict.min_distance = Some(d_min);
        if d_min == 0.0 {
            self.duplicates += 1;
            return verdict;
        }
        self.distances.push_back(d_min);
        while self.distances.len() > config.effective_window() {
            self.distances.pop_front();
        }
        self.pending += 1;
        if d_min > self.classes[pos].threshold {
            let cap = config.max_representatives.max(1);
            let slot = self.reservoir_slot(self.classes[pos].joined, cap);
            let cs = &mut self.classes[pos];
            cs.joined += 1;
            match slot {
                Some(i) if i < cs.representatives.len() => cs.representatives[i] = z,
                Some(_) => cs.representatives.push(z),
                None => {}
            }
            cs.grown += 1;
            cs.sum += d_min;
            cs.sum_sq += d_min * d_min;
            let n = cs.grown as f64;
            let mean = cs.sum / n;
            let var = (cs.sum_sq / n - mean * mean).max(0.0);
            let t = mean - var.sqrt();
            if t > cs.threshold {
                cs.threshold = t;
            }
        }
        if self.distances.len() >= config.min_distances.max(MIN_N)
            && self.pending >= config.test_every.max(1) as u64
        {
            self.pending = 0;
            if let Some(w) = self.test() {
                verdict.w = Some(w);
                self.last_w = Some(w);
                self.min_w = Some(self.min_w.map_or(w, |m| m.min(w)));
                if w < config.delta && !self.alarmed {
                    self.alarmed = true;
                    self.alarm_at = Some(self.queries);
                    verdict.new_alarm = true;
                }
            }
        }
        verdict.alarm = self.alarmed;
        verdict
    }

    /// Shapiro–Wilk W of the distance window after the 3σ outlier filter; None when the test cannot run
    /// (too few values left, all equal).
    fn test(&self) -> Option<f64> {
        let n = self.distances.len() as f64;
        let mean = self.distances.iter().sum::<f64>() / n;
        let var = self
            .distances
            .iter()
            .map(|d| (d - mean) * (d - mean))
            .sum::<f64>()
            / n;
        let band = OUTLIER_SIGMAS * var.sqrt();
        let kept: Vec<f64> = self
            .distances
            .iter()
            .copied()
            .filter(|d| (d - mean).abs() <= band)
            .collect();
        shapiro_wilk(&kept).ok().map(|r| r.w)
    }

    /// Where a query joining a class with `joined` members goes: `Some(len)` = append, `Some(i)` = replace slot
    /// `i`, None = dropped (reservoir sampling, Algorithm R).
    fn reservoir_slot(&mut self, joined: u64, cap: usize) -> Option<usize> {
        if (joined as usize) < cap {
            return Some(usize::MAX);
        }
        let j = self.next_random() % (joined + 1);
        (j < cap as u64).then_some(j as usize)
    }

    fn next_random(&mut self) -> u64 {
        if self.rng == 0 {
            self.rng = DEFAULT_SEED;
        }
        let mut s = self.rng;
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        self.rng = s;
        s
    }

    /// `x` through the feature map or divided by the scale, or None when it cannot be measured against this
    /// state.
    fn scaled(&self, config: &PradaConfig, x: &[f64]) -> Option<Vec<f64>> {
        if let Some(map) = &config.feature_map {
            if self.features.is_some_and(|f| f != x.len()) {
                return None;
            }
            return map.apply(x);
        }
        if x.is_empty()
            || (!config.scale.is_empty() && config.scale.len() != x.len())
            || self.features.is_some_and(|f| f != x.len())
        {
            return None;
        }
        let z: Vec<f64> = x
            .iter()
            .enumerate()
            .map(|(i, v)| match config.scale.get(i) {
                Some(&s) if s.is_finite() && s > 0.0 => v / s,
                _ => *v,
            })
            .collect();
        z.iter().all(|v| v.is_finite()).then_some(z)
    }

    /// Trim the state to the configured caps (a config may shrink between requests).
    fn enforce_caps(&mut self, config: &PradaConfig) {
        let window = config.effective_window();
        while self.distances.len() > window {
            self.distances.pop_front();
        }
        let cap = config.max_representatives.max(1);
        for c in &mut self.classes {
            c.representatives.truncate(cap);
        }
        self.classes.truncate(config.max_classes.max(1));
    }

    /// Queries, shares, current W and sizes, for dashboards and reports.
    pub fn coverage(&self) -> Coverage {
        let q = self.queries.max(1) as f64;
        Coverage {
            queries: self.queries,
            low_margin_share: self.low_margin as f64 / q,
            out_of_distribution_share: self.out_of_distribution as f64 / q,
            w: self.last_w,
            min_w: self.min_w,
            classes_seen: self.classes.len(),
            representatives: self.classes.iter().map(|c| c.representatives.len()).sum(),
            distances: self.distances.len(),
            alarmed: self.alarmed,
            alarm_at: self.alarm_at,
        }
    }

    /// The state as JSON (for a database row).
    pub fn to_json(&self) -> Result<String, Error> {
        serde_json::to_string(self).map_err(|e| Error::State(format!("cannot serialise: {e}")))
    }

    /// Read a state back from JSON, checking it is consistent (sorted unique classes, one feature count,
    /// finite numbers); anything else is [`Error::State`].
    pub fn from_json(json: &str) -> Result<Self, Error> {
        // serde would also accept a positional array for a struct; a saved state is always an object.
        if !json.trim_start().starts_with('{') {
            return Err(Error::State("expected a JSON object".into()));
        }
        let s: PradaState = serde_json::from_str(json).map_err(|e| Error::State(e.to_string()))?;
        s.check()?;
        Ok(s)
    }

    fn check(&self) -> Result<(), Error> {
        let bad = |m: &str| Err(Error::State(m.into()));
        if self.low_margin > self.queries || self.out_of_distribution > self.queries {
            return bad("counters exceed the number of queries");
        }
        if self.alarmed != self.alarm_at.is_some() {
            return bad("alarm flag and alarm position disagree");
        }
        if self.classes.windows(2).any(|w| w[0].class >= w[1].class) {
            return bad("classes are not sorted and unique");
        }
        if !self.distances.iter().all(|d| d.is_finite() && *d > 0.0) {
            return bad("distances must be finite and positive");
        }
        if self.last_w.is_some_and(|w| !w.is_finite()) || self.min_w.is_some_and(|w| !w.is_finite())
        {
            return bad("W must be finite");
        }
        for c in &self.classes {
            if c.representatives.is_empty() {
                return bad("a class has no representatives");
            }
            if ![c.sum, c.sum_sq, c.threshold].iter().all(|v| v.is_finite()) {
                return bad("class sums must be finite");
            }
            for r in &c.representatives {
                if Some(r.len()) != self.features || !r.iter().all(|v| v.is_finite()) {
                    return bad("a representative has the wrong length or a non-finite value");
                }
            }
        }
        Ok(())
    }
}

/// (argmax, top1 − top2) over the finite probabilities; None when there is none.
fn top_two(p: &[f32]) -> Option<(usize, f64)> {
    let mut best: Option<(usize, f64)> = None;
    let mut second = f64::NEG_INFINITY;
    for (i, &v) in p.iter().enumerate() {
        let v = f64::from(v);
        if !v.is_finite() {
            continue;
        }
        match best {
            Some((_, b)) if v <= b => second = second.max(v),
            Some((_, b)) => {
                second = b;
                best = Some((i, v));
            }
            None => best = Some((i, v)),
        }
    }
    best.map(|(i, b)| (i, if second.is_finite() { b - second } else { b }))
}

fn l2(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y) * (x - y))
        .sum::<f64>()
        .sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance_space_names_parse_back_and_match_serde() {
        for d in DistanceSpace::ALL {
            assert_eq!(d.name().parse::<DistanceSpace>(), Ok(d));
            assert_eq!(
                serde_json::to_string(&d).unwrap(),
                format!("{:?}", d.name())
            );
        }
        let e = "cosine".parse::<DistanceSpace>().unwrap_err();
        assert!(e.contains("cosine") && e.contains("normal-scores"), "{e}");
    }

    /// xorshift64* test RNG with Box–Muller normals.
    struct Rng(u64);
    impl Rng {
        fn new(seed: u64) -> Self {
            Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
        }
        fn next_u64(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        fn unif(&mut self) -> f64 {
            (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
        }
        fn normal(&mut self) -> f64 {
            let (u1, u2) = (self.unif(), self.unif());
            (-2.0 * (1.0 - u1).ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next_u64() % n as u64) as usize
        }
    }

    const DIM: usize = 10;
    const CLASSES: usize = 3;

    /// The victim: a nearest-centre classifier over a 3-component Gaussian mixture in 10 dimensions, answering
    /// a softmax of negative distances.
    struct Victim {
        centres: Vec<Vec<f64>>,
    }

    impl Victim {
        fn new(seed: u64) -> Self {
            let mut r = Rng::new(seed);
            let centres = (0..CLASSES)
                .map(|_| (0..DIM).map(|_| 3.0 * r.normal()).collect())
                .collect();
            Victim { centres }
        }
        fn natural(&self, r: &mut Rng) -> Vec<f64> {
            let c = &self.centres[r.below(CLASSES)];
            c.iter().map(|m| m + r.normal()).collect()
        }
        fn proba(&self, x: &[f64]) -> Vec<f32> {
            let logits: Vec<f64> = self.centres.iter().map(|c| -l2(c, x)).collect();
            let m = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let e: Vec<f64> = logits.iter().map(|l| (l - m).exp()).collect();
            let s: f64 = e.iter().sum();
            e.iter().map(|v| (v / s) as f32).collect()
        }
        fn class(&self, x: &[f64]) -> usize {
            top_two(&self.proba(x)).map_or(0, |(c, _)| c)
        }
    }

    fn benign_stream(victim: &Victim, seed: u64, n: usize) -> Vec<Vec<f64>> {
        let mut r = Rng::new(seed);
        (0..n).map(|_| victim.natural(&mut r)).collect()
    }

    /// Jacobian-based augmentation (Papernot et al.) against a fixed linear surrogate `s_c(x) = w_c·x`: start
    /// from 10 natural seeds; each round every current point `x` adds `x + λ·sign(∇ s_c(x)) = x + λ·sign(w_c)`
    /// with `c` the victim's label for `x`, doubling the set. λ = 0.1 (the feature scale is 1).
    fn jacobian_stream(victim: &Victim, seed: u64, n: usize) -> Vec<Vec<f64>> {
        let mut r = Rng::new(seed);
        let surrogate: Vec<Vec<f64>> = (0..CLASSES)
            .map(|_| (0..DIM).map(|_| r.normal()).collect())
            .collect();
        let mut set: Vec<Vec<f64>> = (0..10).map(|_| victim.natural(&mut r)).collect();
        let mut stream = set.clone();
        while stream.len() < n {
            let mut next = Vec::with_capacity(set.len());
            for x in &set {
                let c = victim.class(x);
                let y: Vec<f64> = x
                    .iter()
                    .zip(&surrogate[c])
                    .map(|(v, w)| v + 0.1 * w.signum())
                    .collect();
                next.push(y);
            }
            stream.extend(next.iter().cloned());
            set.extend(next);
        }
        stream.truncate(n);
        stream
    }

    /// Uniform noise over a wide box [−10, 10]^10.
    fn uniform_stream(seed: u64, n: usize) -> Vec<Vec<f64>> {
        let mut r = Rng::new(seed);
        (0..n)
            .map(|_| (0..DIM).map(|_| 20.0 * r.unif() - 10.0).collect())
            .collect()
    }

    /// Random perturbations of 10 natural seeds (T-RND-like): seed + 0.1·N(0, 1) per feature.
    fn perturbation_stream(victim: &Victim, seed: u64, n: usize) -> Vec<Vec<f64>> {
        let mut r = Rng::new(seed);
        let seeds: Vec<Vec<f64>> = (0..10).map(|_| victim.natural(&mut r)).collect();
        (0..n)
            .map(|_| {
                let s = &seeds[r.below(seeds.len())];
                s.iter().map(|v| v + 0.1 * r.normal()).collect()
            })
            .collect()
    }

    /// Feed a stream; returns the final state.
    fn run(config: &PradaConfig, victim: &Victim, stream: &[Vec<f64>]) -> PradaState {
        let mut s = PradaState::default();
        for x in stream {
            s.observe(config, x, &victim.proba(x), false);
        }
        s
    }

    /// W after each query (None before the first test), with alarms disabled.
    fn w_trace(victim: &Victim, stream: &[Vec<f64>]) -> Vec<Option<f64>> {
        let config = PradaConfig {
            delta: 1e-9,
            ..PradaConfig::default()
        };
        let mut s = PradaState::default();
        stream
            .iter()
            .map(|x| s.observe(&config, x, &victim.proba(x), false).w)
            .collect()
    }

    fn first_below(trace: &[Option<f64>], delta: f64) -> Option<usize> {
        trace
            .iter()
            .position(|w| w.is_some_and(|w| w < delta))
            .map(|i| i + 1)
    }

    #[test]
    #[ignore = "experiment: prints W statistics for choosing δ"]
    fn experiment_delta() {
        let deltas = [0.85, 0.88, 0.9, 0.92, 0.94, 0.95, 0.96];
        let mut benign_min = Vec::new();
        let mut false_alarms = vec![0; deltas.len()];
        let env = |k: &str, d: usize| {
            std::env::var(k)
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(d)
        };
        let (streams, len) = (env("PRADA_STREAMS", 100) as u64, env("PRADA_LEN", 2000));
        for k in 0..streams {
            let v = Victim::new(1000 + k);
            let t = w_trace(&v, &benign_stream(&v, 2000 + k, len));
            let m = t.iter().flatten().copied().fold(1.0, f64::min);
            benign_min.push(m);
            for (i, d) in deltas.iter().enumerate() {
                if first_below(&t, *d).is_some() {
                    false_alarms[i] += 1;
                }
            }
        }
        eprintln!("benign min W per stream: {benign_min:.3?}");
        eprintln!("false alarms of {streams} streams of {len} per δ {deltas:?}: {false_alarms:?}");
        for k in 0..5u64 {
            let v = Victim::new(1000 + k);
            let tj = w_trace(&v, &jacobian_stream(&v, 3000 + k, 2000));
            let tu = w_trace(&v, &uniform_stream(4000 + k, 2000));
            let qj: Vec<_> = deltas.iter().map(|d| first_below(&tj, *d)).collect();
            let qu: Vec<_> = deltas.iter().map(|d| first_below(&tu, *d)).collect();
            let mj = tj.iter().flatten().copied().fold(1.0, f64::min);
            let mu = tu.iter().flatten().copied().fold(1.0, f64::min);
            eprintln!("stream {k}: jacobian min W {mj:.3} q-to-alarm {qj:?}");
            eprintln!("stream {k}: uniform  min W {mu:.3} q-to-alarm {qu:?}");
            let tp = w_trace(&v, &perturbation_stream(&v, 5000 + k, 2000));
            let qp: Vec<_> = deltas.iter().map(|d| first_below(&tp, *d)).collect();
            let mp = tp.iter().flatten().copied().fold(1.0, f64::min);
            eprintln!("stream {k}: perturb  min W {mp:.3} q-to-alarm {qp:?}");
            // An attacker hiding synthetic queries between natural ones (1:1).
            let nat = benign_stream(&v, 6000 + k, 1000);
            let jac = jacobian_stream(&v, 3000 + k, 1000);
            let mixed: Vec<Vec<f64>> = nat.into_iter().zip(jac).flat_map(|(a, b)| [a, b]).collect();
            let tm = w_trace(&v, &mixed);
            let qm: Vec<_> = deltas.iter().map(|d| first_below(&tm, *d)).collect();
            let mm = tm.iter().flatten().copied().fold(1.0, f64::min);
            eprintln!("stream {k}: mixed    min W {mm:.3} q-to-alarm {qm:?}");
        }
    }

    /// Per-feature range of a natural sample: the "reference data" for the out-of-distribution flag.
    fn reference_range(victim: &Victim) -> Vec<(f64, f64)> {
        let sample = benign_stream(victim, 77, 5000);
        (0..DIM)
            .map(|j| {
                sample
                    .iter()
                    .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), x| {
                        (lo.min(x[j]), hi.max(x[j]))
                    })
            })
            .collect()
    }

    fn outside(range: &[(f64, f64)], x: &[f64]) -> bool {
        x.iter().zip(range).any(|(v, (lo, hi))| v < lo || v > hi)
    }

    #[test]
    fn benign_stream_stays_quiet() {
        let config = PradaConfig::default();
        let v = Victim::new(1000);
        let s = run(&config, &v, &benign_stream(&v, 2000, 2000));
        assert!(!s.alarmed, "W = {:?}", s.last_w);
        let c = s.coverage();
        assert_eq!(c.queries, 2000);
        assert_eq!(c.classes_seen, 3);
        assert!(c.w.is_some_and(|w| w > 0.95), "{c:?}");
    }

    /// Measured over 100 streams with `experiment_delta`: no false alarm at δ = 0.9 (lowest benign W 0.931),
    /// 1 at δ = 0.94, 5 at δ = 0.96. Here 20 streams must give at most 2 (10 %).
    #[test]
    fn false_alarm_rate_on_benign_streams() {
        let config = PradaConfig::default();
        let mut alarms = 0;
        let mut lowest = 1.0f64;
        for k in 0..20u64 {
            let v = Victim::new(1000 + k);
            let s = run(&config, &v, &benign_stream(&v, 2000 + k, 2000));
            alarms += usize::from(s.alarmed);
            lowest = lowest.min(s.min_w.unwrap_or(1.0));
        }
        eprintln!("benign false alarms: {alarms}/20, lowest W {lowest:.3}");
        assert!(alarms <= 2, "{alarms}/20 benign streams alarmed");
    }

    #[test]
    fn jacobian_augmentation_raises_the_alarm() {
        let config = PradaConfig::default();
        for k in 0..5u64 {
            let v = Victim::new(1000 + k);
            let stream = jacobian_stream(&v, 3000 + k, 2000);
            let mut s = PradaState::default();
            let mut first = None;
            for x in &stream {
                let verdict = s.observe(&config, x, &v.proba(x), false);
                if verdict.new_alarm {
                    assert!(first.is_none(), "new_alarm fires once");
                    first = Some(s.queries);
                }
                assert_eq!(verdict.alarm, first.is_some());
            }
            eprintln!(
                "jacobian stream {k}: alarm after {first:?} queries, min W {:?}",
                s.min_w
            );
            assert!(s.alarmed);
            assert_eq!(s.alarm_at, first);
            // The first test runs after 3 first-of-class queries and 100 distances.
            assert!(first.is_some_and(|q| q <= 150), "{first:?}");
            // The same victim's natural stream, same length, stays quiet (negative case).
            assert!(!run(&config, &v, &benign_stream(&v, 2000 + k, 2000)).alarmed);
        }
    }

    #[test]
    fn seed_perturbation_raises_the_alarm() {
        let config = PradaConfig::default();
        let v = Victim::new(1001);
        let s = run(&config, &v, &perturbation_stream(&v, 5001, 500));
        assert!(
            s.alarmed && s.alarm_at.is_some_and(|q| q <= 150),
            "{:?}",
            s.coverage()
        );
    }

    #[test]
    fn sparse_testing_delays_the_alarm_by_at_most_test_every() {
        let config = PradaConfig {
            test_every: 50,
            ..PradaConfig::default()
        };
        let v = Victim::new(1002);
        let s = run(&config, &v, &jacobian_stream(&v, 3002, 1000));
        assert!(
            s.alarm_at.is_some_and(|q| q <= 103 + 50),
            "{:?}",
            s.alarm_at
        );
        assert!(!run(&config, &v, &benign_stream(&v, 2002, 1000)).alarmed);
    }

    /// Uniform noise over a wide box gives distances that look normal (W ≈ 0.97–0.99), so the W test alone does
    /// not flag it — the limitation of PRADA for non-adaptive random queries. The coverage signals do: nearly
    /// every such query lies outside the reference data, against none of a natural stream.
    #[test]
    fn uniform_noise_is_caught_by_coverage() {
        let config = PradaConfig::default();
        let v = Victim::new(1003);
        let range = reference_range(&v);
        let feed = |stream: &[Vec<f64>]| {
            let mut s = PradaState::default();
            for x in stream {
                s.observe(&config, x, &v.proba(x), outside(&range, x));
            }
            s
        };
        let noise = feed(&uniform_stream(4003, 2000)).coverage();
        let natural = feed(&benign_stream(&v, 2003, 2000)).coverage();
        eprintln!("uniform noise {noise:?}\nnatural {natural:?}");
        assert!(noise.out_of_distribution_share > 0.5, "{noise:?}");
        assert!(natural.out_of_distribution_share < 0.01, "{natural:?}");
        assert!(noise.low_margin_share > natural.low_margin_share);
    }

    #[test]
    fn coverage_counts_margins_and_ood() {
        let config = PradaConfig::default();
        let mut s = PradaState::default();
        s.observe(&config, &[0.0, 0.0], &[0.5, 0.45, 0.05], true);
        s.observe(&config, &[1.0, 0.0], &[0.9, 0.05, 0.05], false);
        s.observe(&config, &[1.0, 0.0], &[0.9, 0.05, 0.05], false); // exact repeat
        s.observe(&config, &[1.0, f64::NAN], &[0.9, 0.05, 0.05], false); // unmeasurable
        s.observe(&config, &[1.0, 0.0, 3.0], &[0.9, 0.05, 0.05], false); // wrong length
        s.observe(&config, &[1.0, 0.0], &[f32::NAN, f32::NAN], false); // no class
        s.observe(&config, &[1.0, 0.0], &[], false);
        let c = s.coverage();
        assert_eq!(c.queries, 7);
        assert!((c.low_margin_share - 1.0 / 7.0).abs() < 1e-12);
        assert!((c.out_of_distribution_share - 1.0 / 7.0).abs() < 1e-12);
        assert_eq!(c.classes_seen, 1);
        assert_eq!(c.representatives, 2);
        assert_eq!(c.distances, 1);
        assert_eq!(s.duplicates, 1);
        assert_eq!(s.skipped, 4);
        assert_eq!(PradaState::default().coverage().low_margin_share, 0.0);
    }

    #[test]
    fn scale_divides_features() {
        let config = PradaConfig {
            scale: vec![2.0, 4.0],
            ..PradaConfig::default()
        };
        let mut s = PradaState::default();
        s.observe(&config, &[0.0, 0.0], &[1.0], false);
        let v = s.observe(&config, &[6.0, 16.0], &[1.0], false);
        assert_eq!(v.min_distance, Some(5.0));
        // A query whose length differs from the scale cannot be measured.
        assert_eq!(s.observe(&config, &[1.0], &[1.0], false).min_distance, None);
    }

    fn assert_close(a: &PradaState, b: &PradaState) {
        let close = |x: f64, y: f64| (x - y).abs() <= 1e-14 * x.abs().max(y.abs()).max(1.0);
        assert_eq!(
            (
                a.queries,
                a.low_margin,
                a.out_of_distribution,
                a.alarmed,
                a.alarm_at,
                a.features
            ),
            (
                b.queries,
                b.low_margin,
                b.out_of_distribution,
                b.alarmed,
                b.alarm_at,
                b.features
            )
        );
        assert_eq!(
            (a.pending, a.duplicates, a.skipped, a.rng),
            (b.pending, b.duplicates, b.skipped, b.rng)
        );
        assert_eq!(a.distances.len(), b.distances.len());
        assert!(a
            .distances
            .iter()
            .zip(&b.distances)
            .all(|(x, y)| close(*x, *y)));
        assert!(close(a.last_w.unwrap_or(0.0), b.last_w.unwrap_or(0.0)));
        assert_eq!(a.classes.len(), b.classes.len());
        for (x, y) in a.classes.iter().zip(&b.classes) {
            assert_eq!((x.class, x.joined, x.grown), (y.class, y.joined, y.grown));
            assert!(
                close(x.sum, y.sum) && close(x.sum_sq, y.sum_sq) && close(x.threshold, y.threshold)
            );
            assert_eq!(x.representatives.len(), y.representatives.len());
            for (r, q) in x.representatives.iter().zip(&y.representatives) {
                assert!(r.iter().zip(q).all(|(u, v)| close(*u, *v)));
            }
        }
    }

    #[test]
    fn state_json_round_trip() {
        let config = PradaConfig::default();
        let v = Victim::new(1004);
        let s = run(&config, &v, &jacobian_stream(&v, 3004, 300));
        let json = s.to_json().unwrap();
        let back = PradaState::from_json(&json).unwrap();
        // serde_json's default float parser may be 1 ulp off (its `float_roundtrip` feature is not enabled), so
        // numbers are compared to 1e-15 and everything else exactly.
        assert_close(&back, &s);
        // Continuing from the restored state is the same as continuing from the original.
        let (mut a, mut b) = (s, back);
        for x in benign_stream(&v, 9, 50) {
            let p = v.proba(&x);
            let (va, vb) = (
                a.observe(&config, &x, &p, false),
                b.observe(&config, &x, &p, false),
            );
            assert_eq!(
                (va.alarm, va.new_alarm, va.w.is_some()),
                (vb.alarm, vb.new_alarm, vb.w.is_some())
            );
        }
        assert_close(&a, &b);
        // An empty object is a fresh state (fields default), unknown fields and nonsense are refused.
        assert_eq!(PradaState::from_json("{}").unwrap(), PradaState::default());
        for bad in [
            "",
            "[]",
            r#"{"queries": -1}"#,
            r#"{"surprise": 1}"#,
            r#"{"queries": 1, "low_margin": 2}"#,
            r#"{"alarmed": true}"#,
            r#"{"distances": [1.0, -2.0]}"#,
            r#"{"features": 2, "classes": [{"class": 0, "representatives": [[1.0]], "joined": 1}]}"#,
            r#"{"features": 1, "classes": [{"class": 1, "representatives": [[1.0]]}, {"class": 0, "representatives": [[1.0]]}]}"#,
        ] {
            assert!(
                matches!(PradaState::from_json(bad), Err(Error::State(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn memory_stays_bounded() {
        let config = PradaConfig {
            window: 200,
            min_distances: 100,
            max_representatives: 50,
            max_classes: 2,
            test_every: 100,
            ..PradaConfig::default()
        };
        let mut r = Rng::new(5);
        let mut s = PradaState::default();
        for i in 0..100_000u64 {
            // A spreading cloud, so that far queries keep joining the growing sets and the reservoir works.
            let spread = 1.0 + i as f64;
            let x: Vec<f64> = (0..4).map(|_| spread * r.normal()).collect();
            let mut p = vec![0.0f32; 5];
            p[(i % 5) as usize] = 1.0;
            s.observe(&config, &x, &p, false);
        }
        assert_eq!(s.queries, 100_000);
        assert!(s.distances.len() <= 200);
        assert_eq!(s.classes.len(), 2);
        assert!(s.classes.iter().all(|c| c.representatives.len() <= 50));
        assert!(s
            .classes
            .iter()
            .all(|c| c.representatives.iter().all(|r| r.len() == 4)));
        // The reservoir really replaced: far more queries joined than slots exist.
        assert!(
            s.classes.iter().all(|c| c.joined > 50),
            "{:?}",
            s.classes.iter().map(|c| c.joined).collect::<Vec<_>>()
        );
        // Shrinking the config shrinks the state on the next observation.
        let small = PradaConfig {
            window: 10,
            min_distances: 5,
            max_representatives: 3,
            max_classes: 1,
            ..config
        };
        s.observe(&small, &[0.0; 4], &[1.0], false);
        assert!(s.distances.len() <= 10 && s.classes.len() == 1);
        assert!(s.classes[0].representatives.len() <= 3);
    }

    #[test]
    fn bad_config_is_refused() {
        assert!(PradaConfig::default().validate().is_ok());
        let bad = [
            PradaConfig {
                delta: 0.0,
                ..PradaConfig::default()
            },
            PradaConfig {
                delta: 1.0,
                ..PradaConfig::default()
            },
            PradaConfig {
                delta: f64::NAN,
                ..PradaConfig::default()
            },
            PradaConfig {
                window: 2,
                min_distances: 2,
                ..PradaConfig::default()
            },
            PradaConfig {
                window: 5001,
                ..PradaConfig::default()
            },
            PradaConfig {
                min_distances: 2,
                ..PradaConfig::default()
            },
            PradaConfig {
                min_distances: 1001,
                ..PradaConfig::default()
            },
            PradaConfig {
                max_representatives: 0,
                ..PradaConfig::default()
            },
            PradaConfig {
                max_classes: 0,
                ..PradaConfig::default()
            },
            PradaConfig {
                test_every: 0,
                ..PradaConfig::default()
            },
            PradaConfig {
                low_margin: -0.1,
                ..PradaConfig::default()
            },
            PradaConfig {
                scale: vec![1.0, 0.0],
                ..PradaConfig::default()
            },
            PradaConfig {
                scale: vec![f64::INFINITY],
                ..PradaConfig::default()
            },
        ];
        for c in bad {
            assert!(matches!(c.validate(), Err(Error::Invalid(_))), "{c:?}");
        }
        // Unknown keys are refused when the config is read, defaults fill missing ones.
        assert!(serde_json::from_str::<PradaConfig>(r#"{"dleta": 0.9}"#).is_err());
        let c: PradaConfig = serde_json::from_str(r#"{"delta": 0.95}"#).unwrap();
        assert_eq!(
            c,
            PradaConfig {
                delta: 0.95,
                ..PradaConfig::default()
            }
        );
    }

    #[test]
    fn top_two_margin() {
        assert_eq!(top_two(&[0.1, 0.7, 0.2]).map(|(c, _)| c), Some(1));
        let (_, m) = top_two(&[0.1, 0.7, 0.2]).unwrap();
        assert!((m - 0.5).abs() < 1e-6);
        assert_eq!(top_two(&[0.3]), Some((0, 0.30000001192092896)));
        assert_eq!(top_two(&[f32::NAN, 0.4, 0.6]).map(|(c, _)| c), Some(2));
        assert_eq!(top_two(&[]), None);
    }
}
