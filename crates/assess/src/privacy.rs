//! Membership inference: can a client who queries the model tell whether a record was in its training set?
//!
//! `aegis assess privacy MODEL --members TRAIN.csv --non-members HOLDOUT.csv` plays three attackers on the
//! probabilities a client would see, first in full and then under each [`OutputPolicy`]:
//!
//! * **loss threshold** (Yeom et al., 2018): score = −cross-entropy of the true label (probabilities clamped
//!   to ≥ 1e-12), members have lower loss;
//! * **confidence threshold**: score = the largest probability (ranked as −ln(1 − max), with 1 − max taken
//!   as the sum of the other classes so f32 saturation at 1.0 does not erase the ranking);
//! * **population attack** (Ye et al., 2022, "Enhanced Membership Inference Attacks", attack P): a share of
//!   the non-members ([`PrivacyConfig::population_fraction`]) is held out as the attacker's population data;
//!   per class, the score of a row is `−F_c(loss)`, with `F_c` the empirical CDF (share ≤) of the population
//!   losses of its class (pooled over classes when a class has no population rows). A row is called a member
//!   at target FPR α when `F_c(loss) ≤ α`, i.e. per-class loss thresholds calibrated on the population;
//!   evaluation is on members vs the remaining non-members.
//!
//! Metrics per attack: ROC AUC (Mann–Whitney, ties count ½), TPR at 1% and 0.1% FPR read off the empirical ROC
//! **without interpolation** (the largest TPR among thresholds whose FPR ≤ the target: a threshold the
//! attacker could actually pick on this data, so with fewer than 1,000 non-members "0.1% FPR" means no false
//! positive at all), the membership advantage max(TPR − FPR), and AUC per class. Members and non-members
//! are balanced: a seeded sample of min(|members|, |non-members|) rows of each (for the population attack,
//! of the non-members left after the population split). LiRA with reference models comes later.

use aegis_core::{Finding, Location, RuleDoc, Severity, Table};
use aegis_ml::output_policy::OutputPolicy;
use aegis_ml::rng::Rng;
use aegis_ml::{argmax_rows, predict_proba_batched, Model};
use serde::Serialize;

use crate::Error;

/// Probabilities are clamped to at least this before the log of the loss attack.
const PROB_FLOOR: f32 = 1e-12;

/// AUC from which [`MEMBERSHIP_INFERENCE`] is reported as high.
pub const AUC_HIGH: f64 = 0.60;
/// AUC from which [`MEMBERSHIP_INFERENCE`] is reported as medium.
pub const AUC_MEDIUM: f64 = 0.55;
/// TPR at 0.1% FPR from which [`MEMBERSHIP_INFERENCE`] is high (10× a random guess, Carlini et al. 2022) …
pub const TPR_LOW_FPR_HIGH: f64 = 0.01;
/// … counted only when at least this many non-members were evaluated (so 0.1% FPR allows one false positive).
pub const MIN_NON_MEMBERS_FOR_LOW_FPR: usize = 1000;
/// An AUC counts only when it is this many standard errors above 0.5 (Hanley–McNeil standard error under the
/// null, `sqrt((n₁ + n₀ + 1) / (12 n₁ n₀))`), so small samples do not raise findings by chance.
pub const MIN_Z: f64 = 3.0;
/// An output policy "reduces" the risk when its worst-attack AUC is at least this much lower than in full.
pub const MIN_AUC_REDUCTION: f64 = 0.05;

const MEMBERSHIP_DOC: RuleDoc = RuleDoc {
    id: "AEG-PRIV-001",
    name: "membership-inference-risk",
    severity: Severity::High,
    summary: "Clients can tell training records from other records by the model's answers (membership inference).",
    why: "A model that is more confident or less wrong on its training records leaks who was in the training \
          set: for a model trained on patients, customers or employees that is itself personal data (GDPR \
          Art. 4), and it is the first step of attribute inference and data reconstruction. Reported high when \
          the best attack's ROC AUC is >= 0.60 (medium from 0.55), or when it finds >= 1% of members at 0.1% \
          false-positive rate with >= 1,000 non-members, in both cases significantly above chance (z >= 3).",
    fix: "Reduce overfitting (regularisation, early stopping, more data), train with differential privacy \
          (DP-SGD, for example Opacus for PyTorch), and serve less than the full probability vector (`label`, `top-k`, `round`, \
          `reverse-sigmoid` output policies; see AEG-PRIV-002 for the one that helped most here).",
    atlas: &["AML.T0024.000"],
    cwe: &[359, 200],
};

const POLICY_DOC: RuleDoc = RuleDoc {
    id: "AEG-PRIV-002",
    name: "output-policy-reduces-membership-risk",
    severity: Severity::Info,
    summary: "An output policy lowers the membership-inference risk of this model.",
    why: "Loss and confidence attacks read the probabilities; a gateway that returns only the label, the top \
          classes or rounded values gives them less to read, usually at no cost in accuracy. What remains under \
          `label` is the gap attack (correct vs wrong answers), which only a better-generalising model removes.",
    fix: "Serve the model through `aegis serve` with the output policy named in the finding on every route \
          that untrusted clients reach.",
    atlas: &["AML.T0024.000"],
    cwe: &[359],
};

/// Membership inference is practical against this model.
pub static MEMBERSHIP_INFERENCE: RuleDoc = MEMBERSHIP_DOC;
/// An output policy reduces the membership-inference risk.
pub static OUTPUT_POLICY_REDUCES: RuleDoc = POLICY_DOC;

static RULES: [RuleDoc; 2] = [MEMBERSHIP_DOC, POLICY_DOC];

/// Every rule of the privacy assessment.
pub fn rules() -> &'static [RuleDoc] {
    &RULES
}

/// What to run.
#[derive(Debug, Clone, PartialEq)]
pub struct PrivacyConfig {
    /// Output policies to evaluate; [`OutputPolicy::Full`] is always evaluated first (added when missing).
    pub policies: Vec<OutputPolicy>,
    /// Share of non-members held out to calibrate the population attack, in (0, 1).
    pub population_fraction: f64,
    /// Seed of the balancing sample and the population split.
    pub seed: u64,
}

impl Default for PrivacyConfig {
    fn default() -> Self {
        PrivacyConfig {
            policies: vec![
                OutputPolicy::Full,
                OutputPolicy::LabelOnly,
                OutputPolicy::TopK { k: 1 },
                OutputPolicy::Round { decimals: 1 },
                OutputPolicy::ReverseSigmoid {
                    beta: 1.0,
                    gamma: 0.1,
                },
            ],
            population_fraction: 0.5,
            seed: 0,
        }
    }
}

/// The AUC of one class's members against that class's non-members.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassAuc {
    /// Class code.
    pub class: u32,
    /// Members of the class evaluated.
    pub members: usize,
    /// Non-members of the class evaluated.
    pub non_members: usize,
    /// ROC AUC; `None` when either side is empty.
    pub auc: Option<f64>,
}

/// How well one attack separates members from non-members.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AttackMetrics {
    /// ROC AUC (0.5 = chance).
    pub auc: f64,
    /// Standard errors above 0.5 (Hanley–McNeil null standard error).
    pub z: f64,
    /// Largest TPR at FPR ≤ 1% on the empirical ROC.
    pub tpr_at_1pct_fpr: f64,
    /// Largest TPR at FPR ≤ 0.1% on the empirical ROC.
    pub tpr_at_01pct_fpr: f64,
    /// Membership advantage max(TPR − FPR).
    pub advantage: f64,
    /// Members evaluated.
    pub members: usize,
    /// Non-members evaluated.
    pub non_members: usize,
    /// AUC per class, for the classes present among the evaluated rows.
    pub per_class: Vec<ClassAuc>,
    /// The ROC curve as `(fpr, tpr)` points, thinned to at most about 200 for charts: every point below 1% FPR
    /// is kept (the region that matters for membership inference), the rest evenly in FPR.
    pub roc: Vec<(f64, f64)>,
}

/// Thin a ROC curve for drawing: below 1% FPR, the last point of each of 20 buckets per decade of FPR (on a
/// log scale), above it the last point of each 1% step, and the first point. Buckets end at their upper edge
/// (0.1%, 1%, 2% …), so the highest TPR at or below each of those rates is kept exactly.
fn thin_roc(curve: &[(f64, f64)]) -> Vec<(f64, f64)> {
    let bucket = |fpr: f64| -> i64 {
        if fpr <= 0.0 {
            i64::MIN
        } else if fpr < 0.01 {
            // The small tolerance keeps rates such as 0.07 (7.000000000000001 × 100 in floating point) in
            // the bucket they end.
            (fpr.log10() * 20.0 - 1e-9).ceil() as i64
        } else {
            1_000_000 + (fpr * 100.0 - 1e-9).ceil() as i64
        }
    };
    let mut out: Vec<(f64, f64)> = Vec::with_capacity(256);
    let mut last_bucket = None;
    for &(fpr, tpr) in curve {
        let b = bucket(fpr);
        if last_bucket == Some(b) {
            if let Some(last) = out.last_mut() {
                *last = (fpr, tpr);
            }
        } else {
            out.push((fpr, tpr));
            last_bucket = Some(b);
        }
    }
    if let (Some(&first), Some(&kept)) = (curve.first(), out.first()) {
        if kept != first {
            out.insert(0, first);
        }
    }
    out
}

#[cfg(test)]
mod thin_tests {
    use super::thin_roc;

    #[test]
    fn thinning_keeps_the_best_rate_at_low_false_positives() {
        // 100 000 negatives: FPR steps of 1e-5; TPR rises with FPR.
        let curve: Vec<(f64, f64)> = (0..=100_000)
            .map(|i| (i as f64 / 1e5, (i as f64 / 1e5).sqrt()))
            .collect();
        let thin = thin_roc(&curve);
        assert!(thin.len() < 400, "{}", thin.len());
        assert_eq!(thin.first(), Some(&(0.0, 0.0)));
        assert_eq!(thin.last(), curve.last());
        // The best TPR at FPR ≤ 0.1% and ≤ 1% is still on the thinned curve.
        for t in [0.001, 0.01] {
            let best = |c: &[(f64, f64)]| {
                c.iter()
                    .filter(|p| p.0 <= t + 1e-12)
                    .map(|p| p.1)
                    .fold(0.0, f64::max)
            };
            assert!((best(&thin) - best(&curve)).abs() < 1e-9, "at {t}");
        }
    }
}

/// TPR and FPR of the population attack at thresholds calibrated for a target FPR.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CalibratedPoint {
    /// The FPR the per-class thresholds were calibrated for on the population split.
    pub target_fpr: f64,
    /// Share of members flagged.
    pub tpr: f64,
    /// Share of the evaluated (non-population) non-members flagged.
    pub fpr: f64,
}

/// The population attack: ROC metrics of its normalised score and its calibrated operating points.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PopulationMetrics {
    /// ROC metrics of `−F_c(loss)`.
    pub metrics: AttackMetrics,
    /// At target FPR 1% and 0.1%.
    pub calibrated: Vec<CalibratedPoint>,
}

/// The three attacks under one output policy.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PolicyResult {
    /// The policy in its CLI form (`full`, `label`, `round:2` …).
    pub policy: String,
    /// Loss threshold attack.
    pub loss: AttackMetrics,
    /// Confidence threshold attack.
    pub confidence: AttackMetrics,
    /// Population attack.
    pub population: PopulationMetrics,
}

impl PolicyResult {
    /// The highest AUC of the three attacks.
    pub fn max_auc(&self) -> f64 {
        self.loss
            .auc
            .max(self.confidence.auc)
            .max(self.population.metrics.auc)
    }

    /// The attack with the highest AUC, by name, and its metrics.
    pub fn strongest(&self) -> (&'static str, &AttackMetrics) {
        let mut best = ("loss", &self.loss);
        for (name, m) in [
            ("confidence", &self.confidence),
            ("population", &self.population.metrics),
        ] {
            if m.auc > best.1.auc {
                best = (name, m);
            }
        }
        best
    }
}

/// The result of `aegis assess privacy`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PrivacyReport {
    /// What the findings point at (the model's description; the CLI replaces it with the model path).
    pub target: String,
    /// Member rows given.
    pub members_given: usize,
    /// Non-member rows given.
    pub non_members_given: usize,
    /// Rows of each side used by the loss and confidence attacks (balanced).
    pub balanced_rows: usize,
    /// Non-members held out as the population attack's calibration data.
    pub population_rows: usize,
    /// Rows of each side the population attack was evaluated on (balanced).
    pub population_eval_rows: usize,
    /// Accuracy on the evaluated members.
    pub member_accuracy: f64,
    /// Accuracy on the evaluated non-members.
    pub non_member_accuracy: f64,
    /// One entry per policy, `full` first.
    pub policies: Vec<PolicyResult>,
}

impl PrivacyReport {
    /// The result without an output policy.
    pub fn full(&self) -> Option<&PolicyResult> {
        self.policies.iter().find(|p| p.policy == "full")
    }

    /// The severity the full-output result earns under [`MEMBERSHIP_INFERENCE`], `None` below the thresholds.
    pub fn risk(&self) -> Option<Severity> {
        risk_of(self.full()?)
    }

    /// Findings: [`MEMBERSHIP_INFERENCE`] when the full output leaks membership, then
    /// [`OUTPUT_POLICY_REDUCES`] for the policy that lowers the strongest attack's AUC most (by at least
    /// [`MIN_AUC_REDUCTION`]).
    pub fn findings(&self) -> Vec<Finding> {
        let mut out = Vec::new();
        let Some(full) = self.full() else {
            return out;
        };
        let Some(severity) = risk_of(full) else {
            return out;
        };
        let (attack, m) = full.strongest();
        let message = format!(
            "the {attack} attack tells members from non-members with ROC AUC {:.3} (TPR {:.1}% at 1% FPR, \
             {:.1}% at 0.1% FPR, advantage {:.3}) on {} + {} rows; accuracy {:.1}% on members vs {:.1}% on \
             non-members",
            m.auc,
            m.tpr_at_1pct_fpr * 100.0,
            m.tpr_at_01pct_fpr * 100.0,
            m.advantage,
            m.members,
            m.non_members,
            self.member_accuracy * 100.0,
            self.non_member_accuracy * 100.0,
        );
        out.push(
            Finding::new(
                &MEMBERSHIP_INFERENCE,
                Location::file(self.target.clone()),
                message,
            )
            .with_severity(severity)
            .with_evidence(serde_json::json!({
                "attack": attack,
                "auc": m.auc,
                "z": m.z,
                "tpr_at_1pct_fpr": m.tpr_at_1pct_fpr,
                "tpr_at_01pct_fpr": m.tpr_at_01pct_fpr,
                "advantage": m.advantage,
                "members": m.members,
                "non_members": m.non_members,
                "member_accuracy": self.member_accuracy,
                "non_member_accuracy": self.non_member_accuracy,
                "per_policy_max_auc": self
                    .policies
                    .iter()
                    .map(|p| (p.policy.clone(), p.max_auc()))
                    .collect::<std::collections::BTreeMap<_, _>>(),
            })),
        );
        let best = self
            .policies
            .iter()
            .filter(|p| p.policy != "full")
            .min_by(|a, b| a.max_auc().total_cmp(&b.max_auc()));
        if let Some(best) = best {
            if full.max_auc() - best.max_auc() >= MIN_AUC_REDUCTION {
                let message = format!(
                    "output policy `{}` lowers the strongest attack's ROC AUC from {:.3} to {:.3}",
                    best.policy,
                    full.max_auc(),
                    best.max_auc()
                );
                out.push(
                    Finding::new(
                        &OUTPUT_POLICY_REDUCES,
                        Location::file(self.target.clone()),
                        message,
                    )
                    .with_evidence(serde_json::json!({
                        "policy": best.policy,
                        "auc_full": full.max_auc(),
                        "auc_with_policy": best.max_auc(),
                        "still_at_risk": risk_of(best).is_some(),
                    })),
                );
            }
        }
        out
    }
}

/// The severity of a policy's result under the documented thresholds.
fn risk_of(r: &PolicyResult) -> Option<Severity> {
    let attacks = [&r.loss, &r.confidence, &r.population.metrics];
    let significant = |m: &AttackMetrics| m.z >= MIN_Z;
    let high = attacks.iter().any(|m| {
        (m.auc >= AUC_HIGH && significant(m))
            || (m.non_members >= MIN_NON_MEMBERS_FOR_LOW_FPR
                && m.tpr_at_01pct_fpr >= TPR_LOW_FPR_HIGH)
    });
    if high {
        return Some(Severity::High);
    }
    if attacks
        .iter()
        .any(|m| m.auc >= AUC_MEDIUM && significant(m))
    {
        return Some(Severity::Medium);
    }
    None
}

/// Non-member rows that also appear among the members, with the same label.
fn shared_rows(
    members: &Table,
    member_labels: &[u32],
    others: &Table,
    other_labels: &[u32],
) -> usize {
    let d = members.n_features();
    let key = |t: &Table, labels: &[u32], i: usize| {
        let mut k: Vec<u32> = t.features[i * d..(i + 1) * d]
            .iter()
            .map(|v| v.to_bits())
            .collect();
        k.push(labels[i]);
        k
    };
    let seen: std::collections::HashSet<Vec<u32>> = (0..members.n_rows())
        .map(|i| key(members, member_labels, i))
        .collect();
    (0..others.n_rows())
        .filter(|&i| seen.contains(&key(others, other_labels, i)))
        .count()
}

/// Why the held-out table cannot be compared with the training table.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AlignError {
    /// The feature columns differ.
    #[error("different feature columns ({members} vs {others})")]
    Columns {
        /// The training table's columns, comma-separated.
        members: String,
        /// The held-out table's columns, comma-separated.
        others: String,
    },
    /// A held-out label names a class the training data does not have.
    #[error("class `{0}` does not occur in the training data")]
    Class(String),
}

/// The held-out rows' labels (`codes`, numbered by `others.class_names`) in the training table's class
/// numbering: each table numbers the classes it read itself.
pub fn align_labels(
    members: &Table,
    others: &Table,
    codes: &[u32],
) -> Result<Vec<u32>, AlignError> {
    if members.columns != others.columns {
        return Err(AlignError::Columns {
            members: members.columns.join(","),
            others: others.columns.join(","),
        });
    }
    codes
        .iter()
        .map(|&code| {
            let name = others
                .class_names
                .get(code as usize)
                .map_or("?", String::as_str);
            members
                .class_names
                .iter()
                .position(|c| c == name)
                .map(|i| i as u32)
                .ok_or_else(|| AlignError::Class(name.to_string()))
        })
        .collect()
}

/// Run the membership-inference attacks. `members` are rows the model was trained on, `non_members` rows it
/// never saw from the same distribution; labels are class codes. Non-members that are mostly member rows (10%
/// or more) are refused: the measurement would be meaningless.
pub fn assess_privacy(
    model: &dyn Model,
    members: &Table,
    member_labels: &[u32],
    non_members: &Table,
    non_member_labels: &[u32],
    config: &PrivacyConfig,
) -> Result<PrivacyReport, Error> {
    let (d, k) = (model.n_features(), model.n_classes());
    for (name, t, labels) in [
        ("members", members, member_labels),
        ("non-members", non_members, non_member_labels),
    ] {
        if t.n_features() != d {
            return Err(Error::Invalid(format!(
                "{name} have {} feature columns, the model takes {d}",
                t.n_features()
            )));
        }
        if t.n_rows() != labels.len() {
            return Err(Error::Invalid(format!(
                "{name}: {} rows but {} labels",
                t.n_rows(),
                labels.len()
            )));
        }
        if let Some(bad) = labels.iter().find(|&&c| c as usize >= k) {
            return Err(Error::Invalid(format!(
                "{name}: label {bad} out of range for a {k}-class model"
            )));
        }
    }
    if !(config.population_fraction > 0.0 && config.population_fraction < 1.0) {
        return Err(Error::Invalid(format!(
            "population fraction must lie in (0, 1), got {}",
            config.population_fraction
        )));
    }
    let (n_m, n_n) = (members.n_rows(), non_members.n_rows());
    let population_rows = ((n_n as f64 * config.population_fraction).round() as usize).min(n_n);
    if n_m < 2 || n_n < 2 || population_rows == 0 || population_rows == n_n {
        return Err(Error::Invalid(format!(
            "need at least 2 members and enough non-members to split off a population share of {} \
             (got {n_m} members, {n_n} non-members)",
            config.population_fraction
        )));
    }

    let shared = shared_rows(members, member_labels, non_members, non_member_labels);
    if shared * 10 >= n_n {
        return Err(Error::Invalid(format!(
            "{shared} of the {n_n} non-member rows are also member rows (same features and label): the attack \
             would compare the training data with itself, and its score would mean nothing. Pass rows the model \
             was not trained on as non-members (a held-out split)"
        )));
    }

    // Seeded shuffles: balanced prefixes for the threshold attacks, a population split for attack P.
    let mut rng = Rng::new(config.seed);
    let mut m_order: Vec<usize> = (0..n_m).collect();
    let mut n_order: Vec<usize> = (0..n_n).collect();
    rng.shuffle(&mut m_order);
    rng.shuffle(&mut n_order);
    let balanced = n_m.min(n_n);
    let (population, rest) = n_order.split_at(population_rows);
    let pop_eval = n_m.min(rest.len());

    let m_labels: Vec<u32> = m_order.iter().map(|&i| member_labels[i]).collect();
    let n_labels: Vec<u32> = n_order.iter().map(|&i| non_member_labels[i]).collect();
    // pop_eval <= balanced: the first `balanced` shuffled members serve every attack.
    let m_probs = predict_proba_batched(
        model,
        &aegis_ml::gather_rows(&members.features, d, &m_order[..balanced]),
        balanced,
        1024,
    )?;
    let n_probs = predict_proba_batched(
        model,
        &aegis_ml::gather_rows(&non_members.features, d, &n_order),
        n_n,
        1024,
    )?;
    if m_probs.len() != balanced * k || n_probs.len() != n_n * k {
        return Err(Error::Invalid(format!(
            "the model returned {} and {} probabilities for {balanced} and {n_n} rows of {k} classes",
            m_probs.len(),
            n_probs.len()
        )));
    }
    let accuracy = |probs: &[f32], labels: &[u32], rows: usize| {
        let pred = argmax_rows(&probs[..rows * k], k);
        pred.iter().zip(labels).filter(|(a, b)| a == b).count() as f64 / rows.max(1) as f64
    };
    let member_accuracy = accuracy(&m_probs, &m_labels, balanced);
    let non_member_accuracy = accuracy(&n_probs, &n_labels, balanced);

    let mut policies = vec![OutputPolicy::Full];
    for p in &config.policies {
        if !policies.contains(p) {
            policies.push(p.clone());
        }
    }
    let mut results = Vec::with_capacity(policies.len());
    for policy in &policies {
        let mq = policy.apply(&m_probs, k);
        let nq = policy.apply(&n_probs, k);
        let m_loss = losses(&mq, &m_labels, k);
        let n_loss = losses(&nq, &n_labels, k);
        let m_conf = confidences(&mq, k);
        let n_conf = confidences(&nq, k);
        let neg = |v: &[f64]| v.iter().map(|x| -x).collect::<Vec<f64>>();

        // (a) and (b): the first `balanced` rows of each shuffled side.
        let loss = attack_metrics(
            &neg(&m_loss[..balanced]),
            &m_labels[..balanced],
            &neg(&n_loss[..balanced]),
            &n_labels[..balanced],
        );
        let confidence = attack_metrics(
            &m_conf[..balanced],
            &m_labels[..balanced],
            &n_conf[..balanced],
            &n_labels[..balanced],
        );

        // (c): calibrate on the population split, evaluate members vs the remaining non-members.
        let pop = Population::new(
            &n_loss[..population.len()],
            &n_labels[..population.len()],
            k,
        );
        let off = population.len();
        let m_cdf: Vec<f64> = (0..pop_eval)
            .map(|i| pop.cdf(m_loss[i], m_labels[i]))
            .collect();
        let n_cdf: Vec<f64> = (0..pop_eval)
            .map(|i| pop.cdf(n_loss[off + i], n_labels[off + i]))
            .collect();
        let metrics = attack_metrics(
            &neg(&m_cdf),
            &m_labels[..pop_eval],
            &neg(&n_cdf),
            &n_labels[off..off + pop_eval],
        );
        let calibrated = [0.01, 0.001]
            .iter()
            .map(|&target| {
                let rate = |v: &[f64]| {
                    v.iter().filter(|&&c| c <= target).count() as f64 / v.len().max(1) as f64
                };
                CalibratedPoint {
                    target_fpr: target,
                    tpr: rate(&m_cdf),
                    fpr: rate(&n_cdf),
                }
            })
            .collect();
        results.push(PolicyResult {
            policy: policy.name(),
            loss,
            confidence,
            population: PopulationMetrics {
                metrics,
                calibrated,
            },
        });
    }
    Ok(PrivacyReport {
        target: model.describe(),
        members_given: n_m,
        non_members_given: n_n,
        balanced_rows: balanced,
        population_rows,
        population_eval_rows: pop_eval,
        member_accuracy,
        non_member_accuracy,
        policies: results,
    })
}

/// Cross-entropy of the true label per row, probabilities clamped to ≥ 1e-12. A saturated network returns
/// p_y == 1.0 in f32 for most rows while the other classes still hold 1e-20 and the like; on rows that sum
/// to 1 (within 1e-4) with p_y > ½ the loss is therefore computed as −ln(1 − Σ_{j≠y} p_j) with `ln_1p`,
/// which keeps the ranking the f32 rounding of p_y would erase.
fn losses(probs: &[f32], labels: &[u32], k: usize) -> Vec<f64> {
    probs
        .chunks(k.max(1))
        .zip(labels)
        .map(|(row, &y)| {
            let y = y as usize;
            let p = row.get(y).copied().unwrap_or(0.0);
            let (sum, rest) = sums(row, y);
            if (sum - 1.0).abs() <= 1e-4 && p > 0.5 {
                -(-rest).ln_1p()
            } else {
                -(p.max(PROB_FLOOR) as f64).ln()
            }
        })
        .collect()
}

/// Confidence score per row, increasing in the largest probability: −ln(1 − max), with 1 − max taken as the
/// sum of the other classes on rows that sum to 1 (within 1e-4), for the same precision reason as [`losses`].
fn confidences(probs: &[f32], k: usize) -> Vec<f64> {
    probs
        .chunks(k.max(1))
        .map(|row| {
            let top = aegis_ml::argmax_rows(row, row.len())
                .first()
                .copied()
                .unwrap_or(0) as usize;
            let max = row.get(top).copied().unwrap_or(0.0) as f64;
            let (sum, rest) = sums(row, top);
            let gap = if (sum - 1.0).abs() <= 1e-4 {
                rest
            } else {
                1.0 - max
            };
            -gap.max(1e-300).ln()
        })
        .collect()
}

/// The row's sum and the sum of every class but `skip`, in f64.
fn sums(row: &[f32], skip: usize) -> (f64, f64) {
    let mut sum = 0.0f64;
    let mut rest = 0.0f64;
    for (j, &v) in row.iter().enumerate() {
        let v = if v.is_finite() {
            v.max(0.0) as f64
        } else {
            0.0
        };
        sum += v;
        if j != skip {
            rest += v;
        }
    }
    (sum, rest)
}

/// Population losses per class, sorted, for the empirical CDF of attack P.
struct Population {
    per_class: Vec<Vec<f64>>,
    pooled: Vec<f64>,
}

impl Population {
    fn new(losses: &[f64], labels: &[u32], k: usize) -> Self {
        let mut per_class = vec![Vec::new(); k];
        for (&l, &y) in losses.iter().zip(labels) {
            if let Some(c) = per_class.get_mut(y as usize) {
                c.push(l);
            }
        }
        for c in per_class.iter_mut() {
            c.sort_by(f64::total_cmp);
        }
        let mut pooled = losses.to_vec();
        pooled.sort_by(f64::total_cmp);
        Population { per_class, pooled }
    }

    /// Share of the class's population losses ≤ `loss` (pooled when the class has none).
    fn cdf(&self, loss: f64, class: u32) -> f64 {
        let sorted = match self.per_class.get(class as usize) {
            Some(c) if !c.is_empty() => c,
            _ => &self.pooled,
        };
        if sorted.is_empty() {
            return 1.0;
        }
        let le = sorted.partition_point(|&v| v.total_cmp(&loss).is_le());
        le as f64 / sorted.len() as f64
    }
}

/// Metrics of scores where higher means "member".
fn attack_metrics(
    member_scores: &[f64],
    member_labels: &[u32],
    non_member_scores: &[f64],
    non_member_labels: &[u32],
) -> AttackMetrics {
    let auc = roc_auc(member_scores, non_member_scores).unwrap_or(0.5);
    let (n1, n0) = (member_scores.len() as f64, non_member_scores.len() as f64);
    let se = ((n1 + n0 + 1.0) / (12.0 * n1.max(1.0) * n0.max(1.0))).sqrt();
    let curve = roc_curve(member_scores, non_member_scores);
    // One pass per side: classes that occur on either side, in class order (bounded by the rows, not by k).
    let mut buckets: std::collections::BTreeMap<u32, (Vec<f64>, Vec<f64>)> = Default::default();
    for (&v, &c) in member_scores.iter().zip(member_labels) {
        buckets.entry(c).or_default().0.push(v);
    }
    for (&v, &c) in non_member_scores.iter().zip(non_member_labels) {
        buckets.entry(c).or_default().1.push(v);
    }
    let per_class = buckets
        .into_iter()
        .map(|(class, (m, n))| ClassAuc {
            class,
            members: m.len(),
            non_members: n.len(),
            auc: roc_auc(&m, &n),
        })
        .collect();
    AttackMetrics {
        auc,
        z: (auc - 0.5) / se,
        tpr_at_1pct_fpr: tpr_at_fpr(&curve, 0.01),
        tpr_at_01pct_fpr: tpr_at_fpr(&curve, 0.001),
        advantage: advantage(&curve),
        members: member_scores.len(),
        non_members: non_member_scores.len(),
        per_class,
        roc: thin_roc(&curve),
    }
}

/// ROC AUC of member scores against non-member scores (higher = member) by the Mann–Whitney statistic:
/// P(member score > non-member score) + ½ P(equal). `None` when either side is empty.
pub fn roc_auc(member_scores: &[f64], non_member_scores: &[f64]) -> Option<f64> {
    let (n1, n0) = (member_scores.len(), non_member_scores.len());
    if n1 == 0 || n0 == 0 {
        return None;
    }
    let mut all: Vec<(f64, bool)> = member_scores
        .iter()
        .map(|&s| (s, true))
        .chain(non_member_scores.iter().map(|&s| (s, false)))
        .collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0));
    // Sum of the members' mid-ranks (1-based).
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < all.len() {
        let mut j = i;
        while j < all.len() && all[j].0.total_cmp(&all[i].0).is_eq() {
            j += 1;
        }
        let mid = (i + 1 + j) as f64 / 2.0;
        rank_sum += mid * all[i..j].iter().filter(|e| e.1).count() as f64;
        i = j;
    }
    let (n1, n0) = (n1 as f64, n0 as f64);
    Some((rank_sum - n1 * (n1 + 1.0) / 2.0) / (n1 * n0))
}

/// The empirical ROC curve as `(fpr, tpr)` points, from (0, 0) to (1, 1), one point per distinct score
/// (a threshold "score ≥ t" for each).
pub fn roc_curve(member_scores: &[f64], non_member_scores: &[f64]) -> Vec<(f64, f64)> {
    let (n1, n0) = (
        member_scores.len().max(1) as f64,
        non_member_scores.len().max(1) as f64,
    );
    let mut all: Vec<(f64, bool)> = member_scores
        .iter()
        .map(|&s| (s, true))
        .chain(non_member_scores.iter().map(|&s| (s, false)))
        .collect();
    all.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut curve = vec![(0.0, 0.0)];
    let (mut tp, mut fp) = (0usize, 0usize);
    let mut i = 0;
    while i < all.len() {
        let mut j = i;
        while j < all.len() && all[j].0.total_cmp(&all[i].0).is_eq() {
            if all[j].1 {
                tp += 1;
            } else {
                fp += 1;
            }
            j += 1;
        }
        curve.push((fp as f64 / n0, tp as f64 / n1));
        i = j;
    }
    curve
}

/// The largest TPR among ROC points with FPR ≤ `target` (no interpolation between points).
pub fn tpr_at_fpr(curve: &[(f64, f64)], target: f64) -> f64 {
    curve
        .iter()
        .filter(|(fpr, _)| *fpr <= target + 1e-12)
        .map(|(_, tpr)| *tpr)
        .fold(0.0, f64::max)
}

/// The membership advantage max(TPR − FPR) over the ROC points (Yeom et al., 2018).
pub fn advantage(curve: &[(f64, f64)]) -> f64 {
    curve.iter().map(|(fpr, tpr)| tpr - fpr).fold(0.0, f64::max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn held_out_labels_are_renumbered_by_class_name() {
        let table = |classes: &[&str]| Table {
            columns: vec!["a".into()],
            features: vec![0.0; 3],
            labels: None,
            label_column: None,
            class_names: classes.iter().map(|c| c.to_string()).collect(),
        };
        let members = table(&["legit", "fraud"]);
        let others = table(&["fraud", "legit"]);
        assert_eq!(
            align_labels(&members, &others, &[0, 1, 0]).unwrap(),
            vec![1, 0, 1]
        );
        let unknown = table(&["legit", "chargeback"]);
        assert_eq!(
            align_labels(&members, &unknown, &[1]).unwrap_err(),
            AlignError::Class("chargeback".into())
        );
        let mut wide = table(&["legit"]);
        wide.columns.push("b".into());
        assert!(matches!(
            align_labels(&members, &wide, &[0]),
            Err(AlignError::Columns { .. })
        ));
    }

    #[test]
    fn auc_matches_hand_computed_cases() {
        // Perfect, inverted, and all tied.
        assert_eq!(roc_auc(&[3.0, 4.0], &[1.0, 2.0]), Some(1.0));
        assert_eq!(roc_auc(&[1.0, 2.0], &[3.0, 4.0]), Some(0.0));
        assert_eq!(roc_auc(&[1.0, 1.0], &[1.0, 1.0, 1.0]), Some(0.5));
        // Members {1, 3}, non-members {2}: pairs (1>2? no), (3>2 yes) → 1/2.
        assert_eq!(roc_auc(&[1.0, 3.0], &[2.0]), Some(0.5));
        // Members {2, 3, 5}, non-members {1, 2, 4}: wins 3>1,3>2,5>1,5>2,5>4,2>1 = 6, tie 2=2 → 6.5/9.
        let auc = roc_auc(&[2.0, 3.0, 5.0], &[1.0, 2.0, 4.0]).unwrap();
        assert!((auc - 6.5 / 9.0).abs() < 1e-12, "{auc}");
        assert_eq!(roc_auc(&[], &[1.0]), None);
    }

    #[test]
    fn tpr_at_fpr_and_advantage_on_a_hand_example() {
        // Members 0.9 0.8 0.7 0.3, non-members 0.85 0.4 0.2 0.1.
        let m = [0.9, 0.8, 0.7, 0.3];
        let n = [0.85, 0.4, 0.2, 0.1];
        let curve = roc_curve(&m, &n);
        // Thresholds: 0.9 → (0, .25); 0.85 → (.25, .25); 0.8 → (.25, .5); 0.7 → (.25, .75);
        // 0.4 → (.5, .75); 0.3 → (.5, 1); 0.2 → (.75, 1); 0.1 → (1, 1).
        assert_eq!(curve.len(), 9);
        assert_eq!(curve[4], (0.25, 0.75));
        assert_eq!(tpr_at_fpr(&curve, 0.0), 0.25);
        assert_eq!(tpr_at_fpr(&curve, 0.01), 0.25);
        assert_eq!(tpr_at_fpr(&curve, 0.25), 0.75);
        assert_eq!(tpr_at_fpr(&curve, 0.5), 1.0);
        assert_eq!(advantage(&curve), 0.5);
        // Ties make one point: nothing is achievable between them.
        let tied = roc_curve(&[1.0, 1.0], &[1.0, 0.0]);
        assert_eq!(tied, vec![(0.0, 0.0), (0.5, 1.0), (1.0, 1.0)]);
        assert_eq!(tpr_at_fpr(&tied, 0.1), 0.0);
    }

    #[test]
    fn population_cdf_is_per_class_with_pooled_fallback() {
        let pop = Population::new(&[0.1, 0.2, 0.3, 5.0], &[0, 0, 0, 1], 3);
        assert_eq!(pop.cdf(0.2, 0), 2.0 / 3.0);
        assert_eq!(pop.cdf(0.05, 0), 0.0);
        assert_eq!(pop.cdf(1.0, 1), 0.0);
        // Class 2 has no population rows: pooled.
        assert_eq!(pop.cdf(0.25, 2), 0.5);
    }

    use aegis_ml::native::{Arch, NativeModel};
    use aegis_ml::synthetic::blobs;
    use aegis_ml::train::{train, NoHooks, TrainConfig};

    const D: usize = 10;

    fn table(x: Vec<f32>, y: &[u32]) -> Table {
        let d = x.len() / y.len().max(1);
        Table {
            columns: (0..d).map(|j| format!("f{j}")).collect(),
            features: x,
            labels: Some(y.to_vec()),
            label_column: Some("y".into()),
            class_names: vec!["0".into(), "1".into()],
        }
    }

    fn fit(arch: Arch, x: &[f32], y: &[u32], epochs: usize, lr: f64) -> NativeModel {
        let m = NativeModel::new(arch, x.len() / y.len(), 2, 7).unwrap();
        let cfg = TrainConfig {
            epochs,
            batch_size: 32,
            lr,
            ..Default::default()
        };
        train(&m, x, y, &cfg, &mut NoHooks).unwrap();
        m
    }

    fn run(
        model: &dyn Model,
        members: (Vec<f32>, Vec<u32>),
        non: (Vec<f32>, Vec<u32>),
    ) -> PrivacyReport {
        let (mx, my) = members;
        let (nx, ny) = non;
        assess_privacy(
            model,
            &table(mx, &my),
            &my,
            &table(nx, &ny),
            &ny,
            &PrivacyConfig::default(),
        )
        .unwrap()
    }

    fn summary(r: &PrivacyReport) -> String {
        r.policies
            .iter()
            .map(|p| {
                format!(
                    "{}: loss {:.3} conf {:.3} pop {:.3} (tpr@1% {:.3})",
                    p.policy,
                    p.loss.auc,
                    p.confidence.auc,
                    p.population.metrics.auc,
                    p.loss.tpr_at_1pct_fpr
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// 40 weak features (means 0.06 apart, noise 0.2): 200 rows are far too few, so a wide MLP memorises
    /// them (train accuracy 1.0, held-out ≈ 0.63).
    fn noisy(n: usize, seed: u64) -> (Vec<f32>, Vec<u32>) {
        blobs(n, 40, 0.03, 0.2, seed)
    }

    #[test]
    fn an_overfitted_model_leaks_membership_and_label_only_reduces_it() {
        let train_set = noisy(200, 1);
        let model = fit(Arch::Mlp(vec![256]), &train_set.0, &train_set.1, 200, 2e-3);
        let r = run(&model, train_set, noisy(400, 2));
        eprintln!(
            "overfitted: acc members {:.3} non-members {:.3}; {}",
            r.member_accuracy,
            r.non_member_accuracy,
            summary(&r)
        );
        let full = r.full().unwrap();
        assert!(r.member_accuracy > 0.95 && r.non_member_accuracy < 0.8);
        assert!(full.loss.auc > 0.75, "{}", summary(&r));
        assert!(full.confidence.auc > 0.7, "{}", summary(&r));
        assert!(full.population.metrics.auc > 0.75, "{}", summary(&r));
        assert_eq!(r.risk(), Some(Severity::High));
        let f = r.findings();
        assert_eq!(f[0].rule.as_str(), "AEG-PRIV-001");
        assert_eq!(f[0].severity, Severity::High);
        assert!(f.iter().any(|f| f.rule.as_str() == "AEG-PRIV-002"));
        // Label only: the confidence attack sees 1.0 everywhere, the loss attack only right vs wrong.
        let label = r.policies.iter().find(|p| p.policy == "label").unwrap();
        assert!((label.confidence.auc - 0.5).abs() < 1e-12);
        assert!(label.loss.auc < full.loss.auc - 0.08, "{}", summary(&r));
        assert!(label.max_auc() < full.max_auc() - 0.08, "{}", summary(&r));
        // The gap attack: AUC = ½ + (acc_members − acc_non_members)/2 on balanced sets.
        let gap = 0.5 + (r.member_accuracy - r.non_member_accuracy) / 2.0;
        assert!(
            (label.loss.auc - gap).abs() < 1e-9,
            "{} vs {gap}",
            label.loss.auc
        );
        // The report is its JSON form.
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["policies"][0]["policy"], "full");
    }

    #[test]
    fn a_model_that_generalises_leaks_nothing_measurable() {
        let train_set = blobs(4000, D, 0.1, 0.15, 3);
        let model = fit(Arch::LogReg, &train_set.0, &train_set.1, 5, 1e-2);
        let r = run(&model, train_set, blobs(1000, D, 0.1, 0.15, 4));
        eprintln!("generalising: {}", summary(&r));
        for p in &r.policies {
            for m in [&p.loss, &p.confidence, &p.population.metrics] {
                assert!((m.auc - 0.5).abs() < 0.07, "{}", summary(&r));
            }
        }
        assert!(r.risk().is_none_or(|s| s < Severity::High));
        assert!(!r.findings().iter().any(|f| f.severity >= Severity::High));
    }

    #[test]
    fn members_the_model_never_saw_are_indistinguishable() {
        let other = noisy(200, 5);
        let model = fit(Arch::Mlp(vec![256]), &other.0, &other.1, 200, 2e-3);
        let r = run(&model, noisy(300, 6), noisy(300, 7));
        eprintln!("never trained on either: {}", summary(&r));
        let full = r.full().unwrap();
        assert!((full.loss.auc - 0.5).abs() < 0.07, "{}", summary(&r));
        assert!((full.confidence.auc - 0.5).abs() < 0.07, "{}", summary(&r));
        assert!(r.findings().is_empty(), "{:?}", r.findings());
    }

    #[test]
    fn bad_inputs_are_refused_with_a_reason() {
        let (x, y) = blobs(20, D, 0.1, 0.1, 1);
        let model = NativeModel::new(Arch::LogReg, D, 2, 1).unwrap();
        let t = table(x, &y);
        let err = |r: Result<PrivacyReport, Error>| r.unwrap_err().to_string();
        let cfg = PrivacyConfig::default();
        let wide = table(vec![0.0; 20 * (D + 1)], &y);
        assert!(err(assess_privacy(&model, &wide, &y, &t, &y, &cfg)).contains("feature columns"));
        assert!(err(assess_privacy(&model, &t, &y[..3], &t, &y, &cfg)).contains("labels"));
        let bad = vec![5u32; 20];
        assert!(err(assess_privacy(&model, &t, &bad, &t, &y, &cfg)).contains("label 5"));
        let cfg = PrivacyConfig {
            population_fraction: 1.0,
            ..Default::default()
        };
        assert!(err(assess_privacy(&model, &t, &y, &t, &y, &cfg)).contains("population"));
    }

    #[test]
    fn rules_are_documented() {
        let ids: Vec<&str> = rules().iter().map(|r| r.id).collect();
        assert_eq!(ids, ["AEG-PRIV-001", "AEG-PRIV-002"]);
        assert_eq!(MEMBERSHIP_INFERENCE.id, "AEG-PRIV-001");
        assert!(rules()
            .iter()
            .all(|r| !r.why.is_empty() && !r.fix.is_empty()));
    }
}
