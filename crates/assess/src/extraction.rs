//! Model extraction, played as the attacker: how many queries does it take to copy the model, does an output
//! policy slow the copy down, and would PRADA have noticed?
//!
//! The attacker (Tramèr et al. 2016; Papernot et al. 2017; Orekondy et al. 2019) sends queries to the victim,
//! sees only what the output policy returns, and trains a surrogate on what it saw. Three query strategies:
//! uniform random rows within the schema's bounds, natural rows from the attacker's share of the pool, and
//! Papernot's Jacobian-based dataset augmentation from `10 · n_classes` natural seed rows. Fidelity is the
//! agreement of the surrogate's predictions with the victim's on rows held out of the pool (the attacker never
//! queries them). Each strategy sends one stream of queries; the surrogate at budget `B` is a fresh network
//! trained on the first `B` queries, so the curve costs one stream per strategy (per policy for Jacobian, whose
//! queries depend on what the attacker saw).
//!
//! Soft labels: [`aegis_ml::train::train`] takes hard labels. When the policy returns a distribution, each
//! query is replicated [`SOFT_LABEL_REPLICAS`] times with labels drawn from that distribution by seeded
//! systematic sampling (one uniform offset, `m` evenly spaced points through the cumulative distribution):
//! the expected training loss is the cross-entropy against the returned distribution, with less variance
//! than independent draws. The epochs are divided by the replication factor, so every policy gets the same
//! number of optimiser steps (and every surrogate at least 1000, so a small budget is not also an undertrained
//! network). When every answer is one-hot (label only) the query is used once, with its label. A policy that
//! keeps the top label can never protect better than label-only against an attacker who keeps just the label;
//! the findings credit a policy accordingly.
//!
//! The surrogate works in the attacker's own normalised space (each feature mapped from the schema's
//! `[min, max]` to `[0, 1]`): the attacker knows the valid ranges, and a network trains badly on raw units.
//!
//! PRADA (Juuti et al. 2019, [`aegis_monitor::prada`]) watches each strategy's stream (with the victim's full
//! probabilities, as the gateway sees them) and benign streams made of the held-out natural rows in random
//! orders, for a false-alarm rate. PRADA's δ is per model in the paper; besides the configured δ the report
//! gives a δ calibrated on one set of benign streams and measures its false-alarm rate on another.
//!
//! Layering: this module uses `aegis-monitor` (a layer-2 crate) for the PRADA detector, a departure from
//! DESIGN.md's rule that layer-2 crates do not depend on each other, accepted so the assessment runs the very
//! detector the gateway runs.

use std::fmt;
use std::str::FromStr;

use aegis_core::{FeatureKind, Finding, Location, RuleDoc, Schema, Severity, Table};
use aegis_ml::native::{Arch, NativeModel};
use aegis_ml::output_policy::OutputPolicy;
use aegis_ml::rng::Rng;
use aegis_ml::train::{train, NoHooks, TrainConfig};
use aegis_ml::{argmax_rows, input_gradient, predict_proba_batched, Loss, Model};
use aegis_monitor::prada::{DistanceSpace, PradaConfig, PradaState};
use serde::Serialize;

use crate::Error;

/// Copies of each query when the surrogate learns from a returned distribution (soft labels).
pub const SOFT_LABEL_REPLICAS: usize = 8;

/// Fidelity at which a surrogate counts as a working copy (AEG-EXT-001, AEG-EXT-002).
pub const COPY_FIDELITY: f64 = 0.9;

/// Fidelity an output policy must take away to be reported as slowing extraction down (AEG-EXT-003).
pub const POLICY_EFFECT: f64 = 0.05;

/// The largest query budget accepted (bounded memory: the stream and its replicated training set).
pub const MAX_BUDGET: usize = 100_000;

/// Fewest held-out rows fidelity is measured on: below this one row moves it by more than 2%.
pub const MIN_HOLDOUT: usize = 50;

/// Fewest optimiser steps any surrogate gets, so a small budget is not also an undertrained network.
const MIN_UPDATES: usize = 1000;

/// Jacobian augmentation step, as a fraction of each feature's range.
const JACOBIAN_LAMBDA: f32 = 0.1;

/// Rows per mini-batch of surrogate training.
const BATCH: usize = 64;

/// Rows per victim call.
const VICTIM_BATCH: usize = 512;

/// How the attacker chooses its queries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// Uniform random rows within the schema's bounds (integer features rounded, one hot column per group).
    Random,
    /// Natural rows from the attacker's share of the pool, in random order.
    Pool,
    /// Papernot et al.'s Jacobian-based dataset augmentation from natural seed rows (see [`JacobianDirection`]).
    Jacobian,
}

impl Strategy {
    /// Every strategy.
    pub const ALL: [Strategy; 3] = [Strategy::Random, Strategy::Pool, Strategy::Jacobian];
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Strategy::Random => "random",
            Strategy::Pool => "pool",
            Strategy::Jacobian => "jacobian",
        })
    }
}

impl FromStr for Strategy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "random" => Ok(Strategy::Random),
            "pool" | "natural" => Ok(Strategy::Pool),
            "jacobian" | "jbda" => Ok(Strategy::Jacobian),
            other => Err(format!(
                "unknown extraction strategy {other:?} (random, pool, jacobian)"
            )),
        }
    }
}

/// Which way Jacobian-based augmentation steps, relative to the victim label's probability under the surrogate.
///
/// Measured on the synthetic 3-class test problem (8 features, 1500 queries, full probabilities): `Periodic`
/// reached 0.94 fidelity and PRADA alarmed at query 103; `Towards` reached 0.96 and PRADA did not alarm (its
/// new points mostly change class, so their distances do not pile up at the step size); `Away`, the literal
/// `x + λ·sign(∂F_y/∂x)`, only 0.63: the points drift into the corners of the feature box, where every answer
/// is the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum JacobianDirection {
    /// Papernot et al.'s periodic step size: towards the boundary and back away from it in turn (τ = 1 round).
    #[default]
    Periodic,
    /// Always towards the surrogate's decision boundary (lowering the label's probability).
    Towards,
    /// Always away from it: Papernot et al.'s original `x + λ·sign(∂F_y/∂x)`.
    Away,
}

impl JacobianDirection {
    /// The signed step of augmentation round `round` (0-based) along `sign(∇ cross-entropy)`, as a fraction of
    /// each feature's range.
    fn step(self, round: u64) -> f32 {
        let towards = match self {
            JacobianDirection::Periodic => round.is_multiple_of(2),
            JacobianDirection::Towards => true,
            JacobianDirection::Away => false,
        };
        if towards {
            JACOBIAN_LAMBDA
        } else {
            -JACOBIAN_LAMBDA
        }
    }
}

impl FromStr for JacobianDirection {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "periodic" => Ok(JacobianDirection::Periodic),
            "towards" => Ok(JacobianDirection::Towards),
            "away" => Ok(JacobianDirection::Away),
            other => Err(format!(
                "unknown Jacobian direction {other:?} (periodic, towards, away)"
            )),
        }
    }
}

/// What to simulate.
#[derive(Debug, Clone)]
pub struct ExtractionConfig {
    /// Query budgets (cumulative queries of one stream), ascending.
    pub budgets: Vec<usize>,
    /// Query strategies.
    pub strategies: Vec<Strategy>,
    /// Output policies; the first is the baseline the others are compared with (normally `Full`).
    pub policies: Vec<OutputPolicy>,
    /// Direction of the Jacobian augmentation steps.
    pub jacobian: JacobianDirection,
    /// Surrogate architecture.
    pub surrogate: Arch,
    /// Passes over the queries when training a surrogate on hard labels.
    pub epochs: usize,
    /// Adam learning rate of the surrogate.
    pub lr: f64,
    /// Learn from returned distributions when the policy returns them (else always from the top label).
    pub soft_labels: bool,
    /// Pool rows held out for measuring fidelity; `None`: min(1000, 30 % of the pool).
    pub holdout: Option<usize>,
    /// PRADA settings; with an empty `scale`, distances are measured in `prada_distance` fitted on the pool.
    pub prada: PradaConfig,
    /// The space PRADA measures distances in, fitted on the pool (the gateway fits it on its reference data).
    pub prada_distance: DistanceSpace,
    /// Benign streams (independent random orders of the held-out rows) for the false-alarm rate; as many
    /// again calibrate δ. Benign streams are as long as the held-out set: a longer natural stream is tested more
    /// often and alarms more (the pool strategy's stream is one).
    pub benign_streams: usize,
    /// False-alarm rate the calibrated δ aims at on benign streams.
    pub target_false_alarm_rate: f64,
    /// Seed of every random choice.
    pub seed: u64,
}

impl Default for ExtractionConfig {
    fn default() -> Self {
        ExtractionConfig {
            budgets: vec![100, 250, 500, 1000, 2000],
            strategies: Strategy::ALL.to_vec(),
            policies: vec![
                OutputPolicy::Full,
                OutputPolicy::LabelOnly,
                OutputPolicy::Round { decimals: 1 },
                OutputPolicy::ReverseSigmoid {
                    beta: 0.5,
                    gamma: 0.3,
                },
            ],
            jacobian: JacobianDirection::Periodic,
            surrogate: Arch::Mlp(vec![64]),
            epochs: 30,
            lr: 5e-3,
            soft_labels: true,
            holdout: None,
            prada: PradaConfig::default(),
            prada_distance: DistanceSpace::default(),
            benign_streams: 50,
            target_false_alarm_rate: 0.05,
            seed: 0,
        }
    }
}

/// Surrogate quality after one budget.
#[derive(Debug, Clone, Serialize)]
pub struct CurvePoint {
    /// The budget asked for.
    pub budget: usize,
    /// Queries the surrogate was trained on (less than the budget when the pool ran out).
    pub queries: usize,
    /// Share of held-out rows where the surrogate predicts what the victim predicts.
    pub fidelity: f64,
    /// Surrogate accuracy on the held-out labels, when the pool has labels.
    pub accuracy: Option<f64>,
}

/// One strategy under one output policy, over the budgets.
#[derive(Debug, Clone, Serialize)]
pub struct Curve {
    /// Query strategy.
    pub strategy: Strategy,
    /// Output policy, in its CLI form.
    pub policy: String,
    /// Whether the surrogate learned from returned distributions (else from labels).
    pub soft_labels: bool,
    /// One point per budget.
    pub points: Vec<CurvePoint>,
}

impl Curve {
    /// Fidelity at the largest budget.
    pub fn final_fidelity(&self) -> f64 {
        self.points.last().map_or(0.0, |p| p.fidelity)
    }

    /// The first point whose fidelity reaches `threshold`.
    pub fn reaches(&self, threshold: f64) -> Option<&CurvePoint> {
        self.points.iter().find(|p| p.fidelity >= threshold)
    }
}

/// What PRADA saw on one attack stream.
#[derive(Debug, Clone, Serialize)]
pub struct PradaOutcome {
    /// Query strategy.
    pub strategy: Strategy,
    /// Queries fed to the detector.
    pub queries: usize,
    /// The query count at which the alarm was raised (configured δ); `None`: no alarm within the stream.
    pub queries_to_alarm: Option<u64>,
    /// The same with δ calibrated on benign streams ([`BenignOutcome::calibrated_delta`]).
    pub queries_to_alarm_calibrated: Option<u64>,
    /// Share of queries near the decision boundary.
    pub low_margin_share: f64,
    /// Share of queries outside the schema's bounds.
    pub out_of_distribution_share: f64,
    /// The lowest Shapiro–Wilk W the detector computed on the stream.
    pub min_w: Option<f64>,
}

/// PRADA on benign streams.
#[derive(Debug, Clone, Serialize)]
pub struct BenignOutcome {
    /// Streams run.
    pub streams: usize,
    /// Queries per stream.
    pub stream_length: usize,
    /// Streams that raised an alarm.
    pub alarms: usize,
    /// `alarms / streams`.
    pub false_alarm_rate: f64,
    /// Query count of each alarm raised.
    pub alarm_at: Vec<u64>,
    /// The lowest Shapiro–Wilk W of each stream (the alarm threshold δ is compared with it).
    pub min_w: Vec<f64>,
    /// Where distances between queries were measured (fitted on the pool); `None` when the caller gave
    /// per-feature scales of its own.
    pub distance: Option<DistanceSpace>,
    /// The configured δ.
    pub delta: f64,
    /// δ calibrated on a separate set of benign streams for a false-alarm rate of at most
    /// `target_false_alarm_rate` (PRADA's per-model δ; see `calibrate_delta`); `None` when no stream was tested.
    pub calibrated_delta: Option<f64>,
    /// Streams (of `streams`, not those used to calibrate) that alarm at the calibrated δ.
    pub calibrated_alarms: usize,
    /// `calibrated_alarms / streams`.
    pub calibrated_false_alarm_rate: f64,
}

/// Everything measured.
#[derive(Debug, Clone, Serialize)]
pub struct ExtractionReport {
    /// The model, as findings name it (set by the caller to a path if wanted; default its description).
    pub model: String,
    /// Features and classes of the model.
    pub n_features: usize,
    /// Classes.
    pub n_classes: usize,
    /// Pool rows.
    pub pool_rows: usize,
    /// Rows held out for fidelity.
    pub holdout_rows: usize,
    /// Rows the attacker may draw natural queries from.
    pub attacker_rows: usize,
    /// Victim accuracy on the held-out rows, when the pool has labels.
    pub victim_accuracy: Option<f64>,
    /// Budgets, ascending.
    pub budgets: Vec<usize>,
    /// Surrogate architecture.
    pub surrogate: String,
    /// Direction of the Jacobian augmentation steps.
    pub jacobian: JacobianDirection,
    /// One curve per strategy × policy (policies in the order given, strategies within).
    pub curves: Vec<Curve>,
    /// PRADA per attack stream (the first policy's streams).
    pub prada: Vec<PradaOutcome>,
    /// PRADA on benign streams.
    pub benign: BenignOutcome,
    /// False-alarm rate δ was calibrated for.
    pub target_false_alarm_rate: f64,
    /// Victim queries spent by the simulation.
    pub victim_queries: u64,
    /// Things the reader should know (a pool too small for a budget, labels that were ignored).
    pub notes: Vec<String>,
}

/// The model can be copied from its answers.
pub static MODEL_COPYABLE: RuleDoc = RuleDoc {
    id: "AEG-EXT-001",
    name: "model-can-be-copied",
    severity: Severity::Medium,
    summary: "A simulated attacker trained a surrogate that agrees with the model on at least 90% of held-out rows within the query budget.",
    why: "A competitor or a fraudster who can query the model can rebuild it: the copy serves them for free, \
          leaks what the model learned from private data, and is a white-box stand-in on which to craft \
          evasion attacks that transfer to the real model.",
    fix: "Expose less per answer (label only or rounded probabilities through `aegis serve` output policies), \
          limit queries per key, turn on extraction detection, and require authentication for the model's route.",
    atlas: &["AML.T0024.002", "AML.T0040"],
    cwe: &[200],
};

/// PRADA misses an extraction that works.
pub static EXTRACTION_UNDETECTED: RuleDoc = RuleDoc {
    id: "AEG-EXT-002",
    name: "extraction-not-detected",
    severity: Severity::Medium,
    summary: "PRADA raised no alarm before an attack stream reached copy fidelity.",
    why: "Extraction detection only helps if it fires before the copy is good enough; an attack that stays \
          under the detector (natural-looking queries, few of them) copies the model unnoticed.",
    fix: "Combine detection with per-key query limits and output hardening; lower PRADA's δ threshold only with \
          the benign false-alarm rate in view; watch the coverage signals (low-margin share, out-of-distribution rate).",
    atlas: &["AML.T0024.002"],
    cwe: &[200],
};

/// An output policy slows extraction down.
pub static POLICY_SLOWS_EXTRACTION: RuleDoc = RuleDoc {
    id: "AEG-EXT-003",
    name: "output-policy-lowers-fidelity",
    severity: Severity::Info,
    summary: "An output policy lowered the fidelity a simulated attacker reaches by at least 0.05.",
    why: "Answers that reveal less (a label instead of probabilities, rounded or perturbed scores) leave the \
          attacker less to learn from per query; this is the policy to consider when serving the model.",
    fix: "Serve the model with this output policy if clients can do with what it returns.",
    atlas: &["AML.T0024.002"],
    cwe: &[200],
};

/// The rules of this module.
pub fn rules() -> Vec<&'static RuleDoc> {
    vec![
        &MODEL_COPYABLE,
        &EXTRACTION_UNDETECTED,
        &POLICY_SLOWS_EXTRACTION,
    ]
}

/// The CLI form of an output policy (`full`, `label`, `top-k:K`, `round:D`, `reverse-sigmoid:B:G`).
pub fn policy_name(policy: &OutputPolicy) -> String {
    match policy {
        OutputPolicy::Full => "full".into(),
        OutputPolicy::LabelOnly => "label".into(),
        OutputPolicy::TopK { k } => format!("top-k:{k}"),
        OutputPolicy::Round { decimals } => format!("round:{decimals}"),
        OutputPolicy::ReverseSigmoid { beta, gamma } => format!("reverse-sigmoid:{beta}:{gamma}"),
    }
}

/// The attacker's view of the feature space: bounds, kinds, and the map to `[0, 1]`.
struct Space {
    lo: Vec<f32>,
    hi: Vec<f32>,
    kind: Vec<FeatureKind>,
    /// One-hot groups as column indices.
    groups: Vec<Vec<usize>>,
}

impl Space {
    fn new(schema: &Schema, d: usize) -> Result<Self, Error> {
        if schema.features.len() != d {
            return Err(Error::Invalid(format!(
                "the schema has {} features, the model {d}",
                schema.features.len()
            )));
        }
        let mut lo = Vec::with_capacity(d);
        let mut hi = Vec::with_capacity(d);
        for f in &schema.features {
            if !(f.min.is_finite() && f.max.is_finite()) || f.max < f.min {
                return Err(Error::Invalid(format!(
                    "feature {} has no finite range [{}, {}]",
                    f.name, f.min, f.max
                )));
            }
            lo.push(f.min);
            hi.push(f.max);
        }
        let groups = schema
            .one_hot
            .iter()
            .map(|g| g.columns.iter().filter_map(|c| schema.index(c)).collect())
            .filter(|g: &Vec<usize>| !g.is_empty())
            .collect();
        Ok(Space {
            lo,
            hi,
            kind: schema.features.iter().map(|f| f.kind).collect(),
            groups,
        })
    }

    fn d(&self) -> usize {
        self.lo.len()
    }

    fn range(&self, j: usize) -> f32 {
        self.hi[j] - self.lo[j]
    }

    fn normalise(&self, x: &[f32]) -> Vec<f32> {
        let d = self.d();
        x.iter()
            .enumerate()
            .map(|(i, &v)| {
                let j = i % d;
                let r = self.range(j);
                if r > 0.0 {
                    (v - self.lo[j]) / r
                } else {
                    0.0
                }
            })
            .collect()
    }

    /// Back to raw units, clipped to the bounds, integer features rounded.
    fn raw(&self, z: &[f32]) -> Vec<f32> {
        let d = self.d();
        z.iter()
            .enumerate()
            .map(|(i, &v)| {
                let j = i % d;
                let x =
                    (self.lo[j] + v.clamp(0.0, 1.0) * self.range(j)).clamp(self.lo[j], self.hi[j]);
                match self.kind[j] {
                    FeatureKind::Integer | FeatureKind::Binary => x
                        .round()
                        .clamp(self.lo[j].ceil(), self.hi[j].floor().max(self.lo[j].ceil())),
                    FeatureKind::Continuous => x,
                }
            })
            .collect()
    }

    fn random_row(&self, rng: &mut Rng) -> Vec<f32> {
        let d = self.d();
        let mut z: Vec<f32> = (0..d)
            .map(|j| match self.kind[j] {
                FeatureKind::Binary => (rng.uniform() < 0.5) as u8 as f32,
                _ => rng.uniform(),
            })
            .collect();
        for g in &self.groups {
            let hot = g[rng.below(g.len())];
            for &j in g {
                z[j] = (j == hot) as u8 as f32;
            }
        }
        self.raw(&z)
    }

    fn outside(&self, row: &[f32]) -> bool {
        row.iter().enumerate().any(|(j, &v)| {
            let tol = 1e-5 * (1.0 + self.range(j));
            !v.is_finite() || v < self.lo[j] - tol || v > self.hi[j] + tol
        })
    }

    /// Whether the Jacobian step may move feature `j` (binary and one-hot columns stay as seeded).
    fn steppable(&self, j: usize) -> bool {
        self.kind[j] != FeatureKind::Binary && !self.groups.iter().any(|g| g.contains(&j))
    }
}

/// One query stream: the attacker's normalised queries, the raw queries sent, the victim's full answers.
struct Stream {
    z: Vec<f32>,
    raw: Vec<f32>,
    full: Vec<f32>,
}

/// Everything the simulation shares between strategies.
struct Setup<'a> {
    model: &'a dyn Model,
    config: &'a ExtractionConfig,
    space: Space,
    d: usize,
    k: usize,
    /// Held-out rows, normalised, with the victim's predictions and the pool's labels.
    holdout_z: Vec<f32>,
    holdout_pred: Vec<u32>,
    holdout_labels: Option<Vec<u32>>,
    queries: u64,
}

impl Setup<'_> {
    fn victim(&mut self, x: &[f32]) -> Result<Vec<f32>, Error> {
        let n = x.len() / self.d.max(1);
        self.queries += n as u64;
        let p = predict_proba_batched(self.model, x, n, VICTIM_BATCH)?;
        if p.len() != n * self.k {
            return Err(Error::Invalid(format!(
                "the model returned {} values for {n} rows of {} classes",
                p.len(),
                self.k
            )));
        }
        Ok(p)
    }

    /// Train a fresh surrogate on normalised queries `z` and the answers the attacker saw.
    fn surrogate(&self, z: &[f32], seen: &[f32], seed: u64) -> Result<(NativeModel, bool), Error> {
        let (d, k) = (self.d, self.k);
        let n = seen.len() / k;
        let net = NativeModel::new(self.config.surrogate.clone(), d, k, seed)?;
        let soft = self.config.soft_labels && seen.chunks(k).any(|row| !one_hot(row));
        let (x, y, m) = if soft {
            let mut rng = Rng::new(seed ^ 0x50F7);
            let mut x = Vec::with_capacity(n * SOFT_LABEL_REPLICAS * d);
            let mut y = Vec::with_capacity(n * SOFT_LABEL_REPLICAS);
            for (i, row) in seen.chunks(k).enumerate() {
                for label in systematic_labels(row, SOFT_LABEL_REPLICAS, rng.uniform()) {
                    x.extend_from_slice(&z[i * d..(i + 1) * d]);
                    y.push(label);
                }
            }
            (x, y, SOFT_LABEL_REPLICAS)
        } else {
            (z.to_vec(), argmax_rows(seen, k), 1)
        };
        let batches = y.len().div_ceil(BATCH).max(1);
        let epochs = self
            .config
            .epochs
            .div_ceil(m)
            .max(MIN_UPDATES.div_ceil(batches))
            .max(1);
        let cfg = TrainConfig {
            epochs,
            batch_size: BATCH,
            lr: self.config.lr,
            weight_decay: 0.0,
            seed,
        };
        train(&net, &x, &y, &cfg, &mut NoHooks)?;
        Ok((net, soft))
    }

    fn point(&self, net: &NativeModel, budget: usize, queries: usize) -> Result<CurvePoint, Error> {
        let n = self.holdout_pred.len();
        let p = predict_proba_batched(net, &self.holdout_z, n, VICTIM_BATCH)?;
        let pred = argmax_rows(&p, self.k);
        let agree = |other: &[u32]| {
            pred.iter().zip(other).filter(|(a, b)| a == b).count() as f64 / n.max(1) as f64
        };
        Ok(CurvePoint {
            budget,
            queries,
            fidelity: agree(&self.holdout_pred),
            accuracy: self.holdout_labels.as_deref().map(agree),
        })
    }

    /// The curve of one query stream (raw queries, the victim's full answers) under one policy.
    fn curve(
        &self,
        strategy: Strategy,
        policy: &OutputPolicy,
        z: &[f32],
        full: &[f32],
        budgets: &[usize],
        seed: u64,
    ) -> Result<Curve, Error> {
        let seen = policy.apply(full, self.k);
        let n = full.len() / self.k;
        let mut points = Vec::with_capacity(budgets.len());
        let mut soft_any = false;
        for (bi, &b) in budgets.iter().enumerate() {
            let q = b.min(n);
            if q == 0 {
                points.push(CurvePoint {
                    budget: b,
                    queries: 0,
                    fidelity: 0.0,
                    accuracy: None,
                });
                continue;
            }
            let (net, soft) = self.surrogate(
                &z[..q * self.d],
                &seen[..q * self.k],
                seed ^ ((bi as u64 + 1) << 20),
            )?;
            soft_any |= soft;
            points.push(self.point(&net, b, q)?);
        }
        Ok(Curve {
            strategy,
            policy: policy_name(policy),
            soft_labels: soft_any,
            points,
        })
    }

    /// Papernot's Jacobian-based augmentation up to `budget` queries: returns normalised and raw queries and
    /// the victim's full answers, in query order.
    fn jacobian_stream(
        &mut self,
        seeds: &[f32],
        policy: &OutputPolicy,
        budget: usize,
        seed: u64,
    ) -> Result<Stream, Error> {
        let (d, k) = (self.d, self.k);
        let mut raw: Vec<f32> = seeds[..seeds.len().min(budget * d)].to_vec();
        let mut z = self.space.normalise(&raw);
        let mut full = self.victim(&raw)?;
        let mut rng = Rng::new(seed);
        let mut round = 0u64;
        while full.len() / k < budget {
            let n = full.len() / k;
            if n == 0 {
                break;
            }
            let seen = policy.apply(&full, k);
            let (net, _) = self.surrogate(&z, &seen, seed ^ (round << 24))?;
            let labels = argmax_rows(&seen, k);
            // Papernot's step is x + λ·sign(∂F_y/∂x) with F the softmax; the sign of ∂p_y is that of ∂log p_y,
            // minus the cross-entropy gradient, so `+λ·sign(∇CE)` steps towards the boundary.
            let g = input_gradient(&net, &z, n, &Loss::CrossEntropy(labels))?;
            let mut rows: Vec<usize> = (0..n).collect();
            let room = budget - n;
            if room < n {
                rng.shuffle(&mut rows);
                rows.truncate(room);
            }
            let step = self.config.jacobian.step(round);
            let mut new_z = Vec::with_capacity(rows.len() * d);
            for &i in &rows {
                for j in 0..d {
                    let v = z[i * d + j];
                    let gj = g.grad[i * d + j];
                    new_z.push(if self.space.steppable(j) && gj != 0.0 && gj.is_finite() {
                        (v + step * gj.signum()).clamp(0.0, 1.0)
                    } else {
                        v
                    });
                }
            }
            let new_raw = self.space.raw(&new_z);
            // The attacker's normalised view of what it actually sent (after rounding).
            let new_z = self.space.normalise(&new_raw);
            let answers = self.victim(&new_raw)?;
            raw.extend_from_slice(&new_raw);
            z.extend_from_slice(&new_z);
            full.extend_from_slice(&answers);
            round += 1;
        }
        Ok(Stream { z, raw, full })
    }
}

/// Whether a returned row is a one-hot vector (a bare label).
fn one_hot(row: &[f32]) -> bool {
    let ones = row.iter().filter(|&&v| v == 1.0).count();
    ones == 1 && row.iter().all(|&v| v == 0.0 || v == 1.0)
}

/// `m` labels drawn from `row` (normalised to sum 1) by systematic sampling with offset `u ∈ [0, 1)`; the
/// argmax `m` times when the row carries no distribution.
fn systematic_labels(row: &[f32], m: usize, u: f32) -> Vec<u32> {
    let total: f64 = row
        .iter()
        .map(|&v| {
            if v.is_finite() {
                v.max(0.0) as f64
            } else {
                0.0
            }
        })
        .sum();
    if total.is_nan() || total <= 0.0 || !total.is_finite() {
        let top = argmax_rows(row, row.len().max(1))
            .first()
            .copied()
            .unwrap_or(0);
        return vec![top; m];
    }
    let mut out = Vec::with_capacity(m);
    let mut c = 0usize;
    let mut cum = if row[0].is_finite() {
        row[0].max(0.0) as f64 / total
    } else {
        0.0
    };
    for i in 0..m {
        let t = (i as f64 + u as f64) / m as f64;
        while t >= cum && c + 1 < row.len() {
            c += 1;
            let v = row[c];
            cum += if v.is_finite() {
                v.max(0.0) as f64 / total
            } else {
                0.0
            };
        }
        out.push(c as u32);
    }
    out
}

/// Feed a stream of raw queries with the victim's full answers to a fresh PRADA state; returns the state and
/// every test the detector ran as `(query count, W)`. The state evolves the same whatever δ is (δ only sets
/// the alarm flag), so the trace answers "when would it have alarmed" for any δ.
fn run_prada(
    config: &PradaConfig,
    space: &Space,
    x: &[f32],
    full: &[f32],
    k: usize,
) -> (PradaState, Vec<(u64, f64)>) {
    let d = space.d();
    let mut state = PradaState::default();
    let mut trace = Vec::new();
    for (row, p) in x.chunks(d).zip(full.chunks(k)) {
        let q: Vec<f64> = row.iter().map(|&v| v as f64).collect();
        let v = state.observe(config, &q, p, space.outside(row));
        if let Some(w) = v.w {
            trace.push((state.queries, w));
        }
    }
    (state, trace)
}

/// The query count of the first test with `W < delta`.
fn alarm_at(trace: &[(u64, f64)], delta: f64) -> Option<u64> {
    trace.iter().find(|(_, w)| *w < delta).map(|(q, _)| *q)
}

/// δ calibrated on benign streams whose lowest W values are `min_w`, so that a new benign stream of the same
/// kind alarms with probability at most `rate` (when `rate ≥ 1/(n+1)`): a stream alarms when its lowest W is
/// below δ, and by exchangeability a new stream's lowest W falls below the k-th lowest of `n` with probability
/// `k/(n+1)`; δ is the k-th lowest with `k = max(1, ⌊rate·(n+1)⌋)`.
fn calibrate_delta(min_w: &[f64], rate: f64) -> Option<f64> {
    let mut w: Vec<f64> = min_w.iter().copied().filter(|w| w.is_finite()).collect();
    if w.is_empty() {
        return None;
    }
    w.sort_by(f64::total_cmp);
    let k = ((rate.clamp(0.0, 1.0) * (w.len() + 1) as f64).floor() as usize).clamp(1, w.len());
    Some(w[k - 1])
}

/// Play the extraction attacker against `model` with natural rows from `pool` (labels optional), and report
/// the fidelity curves, PRADA's alarms and the benign false-alarm rate.
pub fn assess_extraction(
    model: &dyn Model,
    pool: &Table,
    schema: &Schema,
    config: &ExtractionConfig,
    progress: &mut dyn FnMut(&str),
) -> Result<ExtractionReport, Error> {
    let (d, k) = (model.n_features(), model.n_classes());
    if pool.n_features() != d || pool.features.len() != pool.n_rows() * d {
        return Err(Error::Invalid(format!(
            "the pool has {} features, the model {d}",
            pool.n_features()
        )));
    }
    if k < 2 {
        return Err(Error::Invalid(format!(
            "the model has {k} classes; extraction needs at least 2"
        )));
    }
    let space = Space::new(schema, d)?;
    let mut budgets: Vec<usize> = config.budgets.iter().copied().filter(|&b| b > 0).collect();
    budgets.sort_unstable();
    budgets.dedup();
    let Some(&max_budget) = budgets.last() else {
        return Err(Error::Invalid("no positive query budget".into()));
    };
    if max_budget > MAX_BUDGET {
        return Err(Error::Invalid(format!(
            "a budget of {max_budget} queries is above the limit of {MAX_BUDGET}"
        )));
    }
    if config.policies.is_empty() || config.strategies.is_empty() {
        return Err(Error::Invalid(
            "no output policy or no strategy to assess".into(),
        ));
    }
    let n = pool.n_rows();
    let holdout = config.holdout.unwrap_or((n * 3 / 10).min(1000));
    if holdout == 0 || holdout >= n {
        return Err(Error::Invalid(format!(
            "{holdout} held-out rows of a {n}-row pool: need at least one held-out row and one for the attacker"
        )));
    }
    if holdout < MIN_HOLDOUT {
        return Err(Error::Invalid(format!(
            "a {n}-row pool leaves {holdout} held-out rows to measure fidelity on; fewer than {MIN_HOLDOUT} is \
             not a measurement. Pass more rows (about {} with the default 30% held out), or --holdout {MIN_HOLDOUT} \
             or more",
            MIN_HOLDOUT * 10 / 3 + 1
        )));
    }
    let mut notes = Vec::new();
    let mut rng = Rng::new(config.seed);
    let mut order: Vec<usize> = (0..n).collect();
    rng.shuffle(&mut order);
    let (held, attacker) = order.split_at(holdout);
    let held_x = aegis_ml::gather_rows(&pool.features, d, held);
    let attacker_x = aegis_ml::gather_rows(&pool.features, d, attacker);
    let labels = match &pool.labels {
        Some(l) if l.len() == n && l.iter().all(|&c| (c as usize) < k) => {
            Some(held.iter().map(|&i| l[i]).collect::<Vec<u32>>())
        }
        Some(_) => {
            notes.push(format!(
                "the pool's labels do not fit a {k}-class model: accuracy is not reported"
            ));
            None
        }
        None => None,
    };
    let mut setup = Setup {
        model,
        config,
        d,
        k,
        holdout_z: space.normalise(&held_x),
        holdout_pred: Vec::new(),
        holdout_labels: labels,
        queries: 0,
        space,
    };
    progress("querying the victim on the held-out rows");
    let held_full = setup.victim(&held_x)?;
    setup.holdout_pred = argmax_rows(&held_full, k);
    let victim_accuracy = setup.holdout_labels.as_ref().map(|l| {
        l.iter()
            .zip(&setup.holdout_pred)
            .filter(|(a, b)| a == b)
            .count() as f64
            / holdout as f64
    });
    let mut prada_cfg = config.prada.clone();
    let fitted = prada_cfg.scale.is_empty() && prada_cfg.feature_map.is_none();
    if fitted {
        let pool64: Vec<f64> = pool.features.iter().map(|v| f64::from(*v)).collect();
        config
            .prada_distance
            .fit_into(&mut prada_cfg, &pool64, d)
            .map_err(|e| Error::Invalid(e.to_string()))?;
    }
    prada_cfg
        .validate()
        .map_err(|e| Error::Invalid(e.to_string()))?;
    if attacker.len() < max_budget && config.strategies.contains(&Strategy::Pool) {
        notes.push(format!(
            "the attacker's share of the pool has {} rows: the pool strategy stops there",
            attacker.len()
        ));
    }

    let mut curves = Vec::new();
    let mut prada = Vec::new();
    let mut traces = Vec::new();
    for (si, &strategy) in config.strategies.iter().enumerate() {
        let sseed = config.seed ^ ((si as u64 + 1) << 40);
        let mut srng = Rng::new(sseed);
        // Policy-independent streams: the queries and the victim's full answers.
        let fixed = match strategy {
            Strategy::Random => {
                let mut x = Vec::with_capacity(max_budget * d);
                for _ in 0..max_budget {
                    x.extend(setup.space.random_row(&mut srng));
                }
                Some(x)
            }
            Strategy::Pool => {
                let mut rows: Vec<usize> = (0..attacker.len()).collect();
                srng.shuffle(&mut rows);
                rows.truncate(max_budget);
                Some(aegis_ml::gather_rows(&attacker_x, d, &rows))
            }
            Strategy::Jacobian => None,
        };
        let fixed = match fixed {
            Some(x) => {
                progress(&format!("{strategy}: {} victim queries", x.len() / d));
                let full = setup.victim(&x)?;
                Some(Stream {
                    z: setup.space.normalise(&x),
                    raw: x,
                    full,
                })
            }
            None => None,
        };
        let mut seeds = Vec::new();
        if strategy == Strategy::Jacobian {
            let mut rows: Vec<usize> = (0..attacker.len()).collect();
            srng.shuffle(&mut rows);
            rows.truncate((10 * k).min(max_budget));
            seeds = aegis_ml::gather_rows(&attacker_x, d, &rows);
        }
        for (pi, policy) in config.policies.iter().enumerate() {
            progress(&format!("{strategy} under {}", policy_name(policy)));
            // The same seed under every policy (common random numbers): differences come from the policy.
            let pseed = sseed;
            let owned;
            let stream = match &fixed {
                Some(stream) => stream,
                None => {
                    owned = setup.jacobian_stream(&seeds, policy, max_budget, pseed)?;
                    &owned
                }
            };
            let (z, x, full) = (&stream.z, &stream.raw, &stream.full);
            curves.push(setup.curve(strategy, policy, z, full, &budgets, pseed)?);
            if pi == 0 {
                let (state, trace) = run_prada(&prada_cfg, &setup.space, x, full, k);
                let q = state.queries.max(1) as f64;
                prada.push(PradaOutcome {
                    strategy,
                    queries: x.len() / d,
                    queries_to_alarm: state.alarm_at,
                    queries_to_alarm_calibrated: None,
                    low_margin_share: state.low_margin as f64 / q,
                    out_of_distribution_share: state.out_of_distribution as f64 / q,
                    min_w: state.min_w,
                });
                traces.push(trace);
            }
        }
    }

    progress("PRADA on benign streams");
    // Two independent sets of random orders of the held-out rows: one calibrates δ, the other measures the
    // false-alarm rate (of the configured δ and of the calibrated one) out of sample.
    let streams = config.benign_streams.max(1);
    let mut brng = Rng::new(config.seed ^ 0xBE17_6700);
    let benign_run = |brng: &mut Rng| {
        let mut rows: Vec<usize> = (0..holdout).collect();
        brng.shuffle(&mut rows);
        let x = aegis_ml::gather_rows(&held_x, d, &rows);
        let full = aegis_ml::gather_rows(&held_full, k, &rows);
        run_prada(&prada_cfg, &setup.space, &x, &full, k)
    };
    let calibration_runs: Vec<Option<f64>> = (0..streams)
        .map(|_| benign_run(&mut brng).0.min_w)
        .collect();
    let tested = calibration_runs.iter().any(Option::is_some);
    let calibration: Vec<f64> = calibration_runs.iter().map(|w| w.unwrap_or(1.0)).collect();
    // A benign stream too short for PRADA to test even once says nothing about false alarms: no calibration.
    let calibrated_delta = if tested {
        calibrate_delta(&calibration, config.target_false_alarm_rate)
    } else {
        notes.push(format!(
            "PRADA never tested a benign stream of {holdout} queries (it needs {} distances first): its false-alarm \
             rate and the calibrated threshold are not measured; use a larger pool or --holdout",
            prada_cfg.min_distances
        ));
        None
    };
    let mut alarm_at_list = Vec::new();
    let mut min_w = Vec::new();
    let mut calibrated_alarms = 0;
    for _ in 0..streams {
        let (state, trace) = benign_run(&mut brng);
        alarm_at_list.extend(state.alarm_at);
        min_w.extend(state.min_w);
        if calibrated_delta.is_some_and(|delta| alarm_at(&trace, delta).is_some()) {
            calibrated_alarms += 1;
        }
    }
    if let Some(delta) = calibrated_delta {
        for (p, trace) in prada.iter_mut().zip(&traces) {
            p.queries_to_alarm_calibrated = alarm_at(trace, delta);
        }
    }
    let benign = BenignOutcome {
        streams,
        stream_length: holdout,
        alarms: alarm_at_list.len(),
        false_alarm_rate: alarm_at_list.len() as f64 / streams as f64,
        alarm_at: alarm_at_list,
        min_w,
        distance: fitted.then_some(config.prada_distance),
        delta: prada_cfg.delta,
        calibrated_delta,
        calibrated_alarms,
        calibrated_false_alarm_rate: calibrated_alarms as f64 / streams as f64,
    };
    Ok(ExtractionReport {
        model: model.describe(),
        n_features: d,
        n_classes: k,
        pool_rows: n,
        holdout_rows: holdout,
        attacker_rows: attacker.len(),
        victim_accuracy,
        budgets,
        surrogate: config.surrogate.to_string(),
        jacobian: config.jacobian,
        curves,
        prada,
        benign,
        target_false_alarm_rate: config.target_false_alarm_rate,
        victim_queries: setup.queries,
        notes,
    })
}

impl ExtractionReport {
    /// The curves of the first (baseline) policy.
    fn baseline(&self) -> impl Iterator<Item = &Curve> {
        let first = self.curves.first().map(|c| c.policy.clone());
        self.curves
            .iter()
            .filter(move |c| Some(&c.policy) == first.as_ref())
    }

    /// Findings: the model can be copied (AEG-EXT-001), PRADA misses a working attack (AEG-EXT-002), an
    /// output policy slows extraction down (AEG-EXT-003).
    pub fn findings(&self) -> Vec<Finding> {
        let loc = Location::ModelInput {
            model: self.model.clone(),
            feature: "*".into(),
        };
        let mut out = Vec::new();
        let Some(baseline) = self.curves.first().map(|c| c.policy.clone()) else {
            return out;
        };
        // Cheapest copy under the baseline policy.
        let cheapest = self
            .baseline()
            .filter_map(|c| c.reaches(COPY_FIDELITY).map(|p| (c, p)))
            .min_by_key(|(_, p)| p.queries);
        if let Some((curve, point)) = cheapest {
            let per_policy: Vec<serde_json::Value> = self
                .curves
                .iter()
                .filter_map(|c| {
                    c.reaches(COPY_FIDELITY).map(|p| {
                        serde_json::json!({"policy": c.policy, "strategy": c.strategy, "queries": p.queries, "fidelity": p.fidelity})
                    })
                })
                .collect();
            out.push(
                Finding::new(
                    &MODEL_COPYABLE,
                    loc.clone(),
                    format!(
                        "a {} surrogate trained on {} {} queries agrees with the model on {:.1}% of held-out rows (output policy {})",
                        self.surrogate,
                        point.queries,
                        curve.strategy,
                        point.fidelity * 100.0,
                        baseline
                    ),
                )
                .with_evidence_field("strategy", curve.strategy.to_string())
                .with_evidence_field("queries", point.queries as u64)
                .with_evidence_field("fidelity", point.fidelity)
                .with_evidence_field("policy", baseline.clone())
                .with_evidence_field("copies", serde_json::Value::Array(per_policy)),
            );
        }
        for curve in self.baseline() {
            let Some(point) = curve.reaches(COPY_FIDELITY) else {
                continue;
            };
            let Some(p) = self.prada.iter().find(|p| p.strategy == curve.strategy) else {
                continue;
            };
            let late = match p.queries_to_alarm {
                None => true,
                Some(at) => at > point.queries as u64,
            };
            if !late {
                continue;
            }
            let calibrated = match (self.benign.calibrated_delta, p.queries_to_alarm_calibrated) {
                (Some(delta), Some(at)) => format!(
                    "; with δ calibrated on benign traffic ({delta:.3}) it would alarm at query {at}"
                ),
                (Some(delta), None) => {
                    format!("; nor would it with δ calibrated on benign traffic ({delta:.3})")
                }
                (None, _) => String::new(),
            };
            let msg = match p.queries_to_alarm {
                None => format!(
                    "the {} attack reached {:.1}% fidelity after {} queries and PRADA (δ = {}) raised no alarm in {} queries{calibrated}",
                    curve.strategy,
                    point.fidelity * 100.0,
                    point.queries,
                    self.benign.delta,
                    p.queries
                ),
                Some(at) => format!(
                    "the {} attack reached {:.1}% fidelity after {} queries; PRADA's alarm (δ = {}) came only at query {at}{calibrated}",
                    curve.strategy,
                    point.fidelity * 100.0,
                    point.queries,
                    self.benign.delta
                ),
            };
            out.push(
                Finding::new(&EXTRACTION_UNDETECTED, loc.clone(), msg)
                    .with_evidence_field("strategy", curve.strategy.to_string())
                    .with_evidence_field("queries_to_copy", point.queries as u64)
                    .with_evidence_field(
                        "queries_to_alarm",
                        p.queries_to_alarm
                            .map_or(serde_json::Value::Null, |v| v.into()),
                    )
                    .with_evidence_field("benign_false_alarm_rate", self.benign.false_alarm_rate),
            );
        }
        let mut policies: Vec<&str> = Vec::new();
        for c in &self.curves {
            if !policies.contains(&c.policy.as_str()) {
                policies.push(&c.policy);
            }
        }
        for policy in policies.into_iter().skip(1) {
            // The largest fidelity loss over strategies, at the largest budget. A policy that keeps the top
            // label (top-k, reverse sigmoid) cannot protect better than label-only against an attacker who keeps
            // just the label: when a label-only curve was measured, the attacker gets the better of the two.
            let keeps_top = policy.starts_with("top-k") || policy.starts_with("reverse-sigmoid");
            let worst = self
                .curves
                .iter()
                .filter(|c| c.policy == policy)
                .filter_map(|c| {
                    let label = self
                        .curves
                        .iter()
                        .find(|l| l.strategy == c.strategy && l.policy == "label")
                        .filter(|_| keeps_top)
                        .map(Curve::final_fidelity);
                    let with = c.final_fidelity().max(label.unwrap_or(0.0));
                    self.baseline()
                        .find(|b| b.strategy == c.strategy)
                        .map(|b| (c.strategy, b.final_fidelity(), with, c.final_fidelity()))
                })
                .max_by(|a, b| (a.1 - a.2).total_cmp(&(b.1 - b.2)));
            let Some((strategy, base, with, soft)) = worst else {
                continue;
            };
            if base - with < POLICY_EFFECT {
                continue;
            }
            out.push(
                Finding::new(
                    &POLICY_SLOWS_EXTRACTION,
                    loc.clone(),
                    format!(
                        "output policy {policy} lowers the {strategy} attacker's fidelity from {:.1}% to {:.1}% at {} queries",
                        base * 100.0,
                        with * 100.0,
                        self.budgets.last().copied().unwrap_or(0)
                    ),
                )
                .with_evidence_field("policy", policy.to_string())
                .with_evidence_field("strategy", strategy.to_string())
                .with_evidence_field("baseline_fidelity", base)
                .with_evidence_field("fidelity", with)
                .with_evidence_field("fidelity_from_scores", soft),
            );
        }
        out
    }
}

/// The report as text for a terminal: one fidelity table per policy, PRADA per stream, the benign rate.
pub fn render_human(report: &ExtractionReport) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "extraction of {} ({} features, {} classes): surrogate {}, pool {} rows ({} attacker, {} held out)",
        report.model,
        report.n_features,
        report.n_classes,
        report.surrogate,
        report.pool_rows,
        report.attacker_rows,
        report.holdout_rows
    );
    if let Some(a) = report.victim_accuracy {
        let _ = writeln!(s, "victim accuracy on held-out rows: {:.1}%", a * 100.0);
    }
    let mut policies: Vec<&str> = Vec::new();
    for c in &report.curves {
        if !policies.contains(&c.policy.as_str()) {
            policies.push(&c.policy);
        }
    }
    for policy in policies {
        let _ = writeln!(s, "\nfidelity under output policy {policy} (queries →)");
        let _ = write!(s, "  {:<10}", "strategy");
        for b in &report.budgets {
            let _ = write!(s, "{b:>8}");
        }
        let _ = writeln!(s);
        for c in report.curves.iter().filter(|c| c.policy == policy) {
            let label = format!("{}{}", c.strategy, if c.soft_labels { "" } else { "*" });
            let _ = write!(s, "  {label:<10}");
            for p in &c.points {
                let cell = if p.queries < p.budget {
                    format!("{:.3}~", p.fidelity)
                } else {
                    format!("{:.3}", p.fidelity)
                };
                let _ = write!(s, "{cell:>8}");
            }
            let _ = writeln!(s);
        }
    }
    let _ = writeln!(
        s,
        "  (* learned from labels only; ~ the pool ran out before the budget)"
    );
    let b = &report.benign;
    let cal = b
        .calibrated_delta
        .map_or_else(|| "-".into(), |d| format!("{d:.3}"));
    let space = b.distance.map_or_else(
        || "given scales".to_string(),
        |d| format!("{} space", d.name()),
    );
    let _ = writeln!(
        s,
        "\nPRADA, distances in the {space} (queries to alarm at δ = {} and at δ = {cal}, calibrated for ≤ {:.0}% benign false alarms)",
        b.delta,
        report.target_false_alarm_rate * 100.0
    );
    let show = |a: Option<u64>| a.map_or_else(|| "none".to_string(), |v| v.to_string());
    for p in &report.prada {
        let w = p.min_w.map_or_else(|| "-".into(), |w| format!("{w:.3}"));
        let _ = writeln!(
            s,
            "  {:<10}{:>6} {:>6}  of {:<6} min W {w:<7}  low-margin {:.1}%  out-of-range {:.1}%",
            p.strategy.to_string(),
            show(p.queries_to_alarm),
            show(p.queries_to_alarm_calibrated),
            p.queries,
            p.low_margin_share * 100.0,
            p.out_of_distribution_share * 100.0
        );
    }
    let _ = writeln!(
        s,
        "  benign: {} streams of {} natural queries; false alarms {} ({:.1}%) at δ = {}, {} ({:.1}%) at δ = {cal}",
        b.streams,
        b.stream_length,
        b.alarms,
        b.false_alarm_rate * 100.0,
        b.delta,
        b.calibrated_alarms,
        b.calibrated_false_alarm_rate * 100.0
    );
    if !b.min_w.is_empty() {
        let mut w = b.min_w.clone();
        w.sort_by(f64::total_cmp);
        let _ = writeln!(
            s,
            "  benign min W: lowest {:.3}, median {:.3}, highest {:.3}",
            w[0],
            w[w.len() / 2],
            w[w.len() - 1]
        );
    }
    for n in &report.notes {
        let _ = writeln!(s, "note: {n}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn systematic_sampling_follows_the_distribution() {
        assert_eq!(systematic_labels(&[0.0, 1.0, 0.0], 8, 0.3), vec![1; 8]);
        let l = systematic_labels(&[0.5, 0.25, 0.25], 8, 0.0);
        assert_eq!(l, vec![0, 0, 0, 0, 1, 1, 2, 2]);
        // Unnormalised (top-k, rounding) rows are normalised first.
        let l = systematic_labels(&[0.2, 0.0, 0.2], 4, 0.5);
        assert_eq!(l, vec![0, 0, 2, 2]);
        // No mass at all: the argmax.
        assert_eq!(systematic_labels(&[0.0, 0.0], 3, 0.1), vec![0, 0, 0]);
        assert_eq!(systematic_labels(&[f32::NAN, 0.4], 2, 0.9), vec![1, 1]);
    }

    #[test]
    fn delta_calibration_is_conformal() {
        let w: Vec<f64> = (0..19).map(|i| 0.9 + i as f64 * 0.005).collect();
        // 19 streams, 5 %: k = ⌊0.05 · 20⌋ = 1, the lowest.
        assert_eq!(calibrate_delta(&w, 0.05), Some(0.9));
        // 10 %: k = 2.
        assert_eq!(calibrate_delta(&w, 0.1), Some(0.905));
        // Fewer streams than the rate can resolve: still the lowest.
        assert_eq!(calibrate_delta(&w[..3], 0.01), Some(0.9));
        assert_eq!(calibrate_delta(&[f64::NAN], 0.05), None);
        let trace = [(100, 0.97), (101, 0.95), (102, 0.99)];
        assert_eq!(alarm_at(&trace, 0.96), Some(101));
        assert_eq!(alarm_at(&trace, 0.9), None);
    }

    #[test]
    fn one_hot_rows_are_recognised() {
        assert!(one_hot(&[0.0, 1.0, 0.0]));
        assert!(!one_hot(&[0.1, 0.9]));
        assert!(!one_hot(&[0.0, 0.0]));
    }

    #[test]
    fn strategy_names_round_trip() {
        for s in Strategy::ALL {
            assert_eq!(s.to_string().parse::<Strategy>().unwrap(), s);
        }
        assert!("copycat".parse::<Strategy>().is_err());
    }

    #[test]
    fn random_rows_respect_bounds_and_kinds() {
        let schema = Schema {
            features: vec![
                aegis_core::FeatureSpec {
                    name: "age".into(),
                    kind: FeatureKind::Integer,
                    min: 18.0,
                    max: 99.0,
                    immutable: false,
                    eps: None,
                },
                aegis_core::FeatureSpec {
                    name: "amount".into(),
                    kind: FeatureKind::Continuous,
                    min: 0.0,
                    max: 1e4,
                    immutable: false,
                    eps: None,
                },
                aegis_core::FeatureSpec {
                    name: "de".into(),
                    kind: FeatureKind::Binary,
                    min: 0.0,
                    max: 1.0,
                    immutable: false,
                    eps: None,
                },
                aegis_core::FeatureSpec {
                    name: "fr".into(),
                    kind: FeatureKind::Binary,
                    min: 0.0,
                    max: 1.0,
                    immutable: false,
                    eps: None,
                },
            ],
            one_hot: vec![aegis_core::OneHotGroup {
                name: "country".into(),
                columns: vec!["de".into(), "fr".into()],
                immutable: false,
            }],
        };
        let space = Space::new(&schema, 4).unwrap();
        let mut rng = Rng::new(1);
        for _ in 0..200 {
            let row = space.random_row(&mut rng);
            assert!(schema.check_row(&row).is_ok(), "{row:?}");
            assert!(!space.outside(&row));
        }
        assert!(space.outside(&[17.0, 1.0, 1.0, 0.0]));
        assert!(!space.steppable(2) && space.steppable(0));
        assert!(Space::new(&schema, 3).is_err());
    }

    fn curve(strategy: Strategy, policy: &str, fidelity: &[f64]) -> Curve {
        Curve {
            strategy,
            policy: policy.into(),
            soft_labels: policy != "label",
            points: fidelity
                .iter()
                .zip([100, 1000])
                .map(|(&f, b)| CurvePoint {
                    budget: b,
                    queries: b,
                    fidelity: f,
                    accuracy: None,
                })
                .collect(),
        }
    }

    fn report(curves: Vec<Curve>, alarms: [Option<u64>; 2]) -> ExtractionReport {
        let prada = [Strategy::Pool, Strategy::Jacobian]
            .into_iter()
            .zip(alarms)
            .map(|(strategy, a)| PradaOutcome {
                strategy,
                queries: 1000,
                queries_to_alarm: a,
                queries_to_alarm_calibrated: a,
                low_margin_share: 0.0,
                out_of_distribution_share: 0.0,
                min_w: Some(0.95),
            })
            .collect();
        ExtractionReport {
            model: "m.onnx".into(),
            n_features: 4,
            n_classes: 2,
            pool_rows: 2000,
            holdout_rows: 600,
            attacker_rows: 1400,
            victim_accuracy: Some(0.9),
            budgets: vec![100, 1000],
            surrogate: "mlp:64".into(),
            jacobian: JacobianDirection::Periodic,
            curves,
            prada,
            benign: BenignOutcome {
                streams: 20,
                stream_length: 600,
                alarms: 1,
                false_alarm_rate: 0.05,
                alarm_at: vec![300],
                min_w: vec![0.97; 20],
                distance: Some(DistanceSpace::Robust),
                delta: 0.9,
                calibrated_delta: Some(0.96),
                calibrated_alarms: 1,
                calibrated_false_alarm_rate: 0.05,
            },
            target_false_alarm_rate: 0.05,
            victim_queries: 0,
            notes: vec![],
        }
    }

    fn rules_of(r: &ExtractionReport) -> Vec<String> {
        r.findings().iter().map(|f| f.rule.to_string()).collect()
    }

    #[test]
    fn findings_name_copies_missed_alarms_and_useful_policies() {
        // Pool copies at 100 queries; PRADA alarms on Jacobian at 50 (before its copy at 1000), never on pool.
        let r = report(
            vec![
                curve(Strategy::Pool, "full", &[0.92, 0.97]),
                curve(Strategy::Jacobian, "full", &[0.7, 0.93]),
                curve(Strategy::Pool, "label", &[0.8, 0.9]),
                curve(Strategy::Jacobian, "label", &[0.6, 0.86]),
                curve(Strategy::Pool, "reverse-sigmoid:0.5:0.3", &[0.6, 0.8]),
                curve(Strategy::Jacobian, "reverse-sigmoid:0.5:0.3", &[0.6, 0.8]),
            ],
            [None, Some(50)],
        );
        let found = r.findings();
        let ids = rules_of(&r);
        assert_eq!(ids.iter().filter(|i| *i == "AEG-EXT-001").count(), 1);
        assert!(
            found[0].message.contains("100 pool queries"),
            "{}",
            found[0].message
        );
        // Only the pool stream evades PRADA.
        let missed: Vec<_> = found
            .iter()
            .filter(|f| f.rule.as_str() == "AEG-EXT-002")
            .collect();
        assert_eq!(missed.len(), 1);
        assert!(missed[0].message.contains("pool"));
        // Label-only lowers fidelity by 0.07 (pool) and 0.07 (jacobian): reported. Reverse sigmoid keeps the
        // top label, so an attacker falls back on labels: it is credited with the label-only loss, still ≥ 0.05.
        let policies: Vec<_> = found
            .iter()
            .filter(|f| f.rule.as_str() == "AEG-EXT-003")
            .map(|f| f.evidence["policy"].as_str().unwrap_or("").to_string())
            .collect();
        assert_eq!(policies, vec!["label", "reverse-sigmoid:0.5:0.3"]);
        let rs = found
            .iter()
            .find(|f| f.evidence["policy"] == "reverse-sigmoid:0.5:0.3")
            .unwrap();
        assert_eq!(rs.evidence["fidelity_from_scores"], 0.8);
        assert!(rs.evidence["fidelity"].as_f64().unwrap() > 0.85, "{rs:?}");
        let text = render_human(&r);
        assert!(
            text.contains("fidelity under output policy label"),
            "{text}"
        );
        assert!(text.contains("pool*"));
    }

    #[test]
    fn no_findings_when_nothing_is_copied_or_every_copy_is_caught() {
        // Low fidelity: no copy, so nothing for PRADA to miss; policies change nothing.
        let r = report(
            vec![
                curve(Strategy::Pool, "full", &[0.5, 0.6]),
                curve(Strategy::Jacobian, "full", &[0.5, 0.7]),
                curve(Strategy::Pool, "label", &[0.5, 0.58]),
                curve(Strategy::Jacobian, "label", &[0.5, 0.69]),
            ],
            [None, None],
        );
        assert!(rules_of(&r).is_empty(), "{:?}", rules_of(&r));
        // A copy that PRADA catches before it is good enough: AEG-EXT-001 only.
        let r = report(
            vec![
                curve(Strategy::Pool, "full", &[0.5, 0.95]),
                curve(Strategy::Jacobian, "full", &[0.5, 0.7]),
            ],
            [Some(400), None],
        );
        assert_eq!(rules_of(&r), vec!["AEG-EXT-001"]);
        // A reverse-sigmoid curve well below the baseline but no better than labels would allow: not credited
        // when labels copy as well as full probabilities.
        let r = report(
            vec![
                curve(Strategy::Pool, "full", &[0.5, 0.7]),
                curve(Strategy::Pool, "label", &[0.5, 0.69]),
                curve(Strategy::Pool, "reverse-sigmoid:0.5:0.3", &[0.5, 0.5]),
            ],
            [None, None],
        );
        assert!(rules_of(&r).is_empty(), "{:?}", rules_of(&r));
        assert_eq!(rules().len(), 3);
    }
}
