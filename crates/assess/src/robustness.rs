//! Robust accuracy: one definition, measured by every attack asked for, re-checked on the model.
//!
//! A row is *robust at eps* when the model classifies it correctly and no attack found a valid input within
//! eps that it misclassifies. Every candidate an attack returns is checked here, not trusted: it must lie in
//! the ball and satisfy the schema (else it is discarded and counted as a violation), and it is re-predicted.
//! Attacks run cheapest first, each on the rows the previous ones left standing, so the report can say which
//! attack broke a row first, and a black-box attack breaking rows that survived the gradient attacks flags
//! gradient masking. A row broken at a smaller eps is broken at every larger one (the balls are nested).

use std::fmt;
use std::str::FromStr;

use aegis_core::{Finding, Location, Schema, Severity};
use aegis_ml::{argmax_rows, input_gradient, predict_proba_batched, Differentiable, Loss, Model};
use serde::Serialize;

use crate::attacks::hsj::{hop_skip_jump, HsjParams};
use crate::attacks::pgd::{apgd, pgd, target_classes, ApgdLoss, ApgdParams, PgdParams};
use crate::attacks::square::{square_attack, SquareParams};
use crate::attacks::{fgsm::fgsm, AttackInput, AttackOutput};
use crate::{rules, Constraints, Error};

/// The attacks `aegis assess robustness` can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AttackKind {
    /// Fast gradient sign method (white-box).
    Fgsm,
    /// Projected gradient descent with restarts (white-box).
    Pgd,
    /// APGD-CE then APGD-T (targeted DLR) on the survivors: the white-box part of AutoAttack.
    AutoAttack,
    /// Square Attack (black-box, scores).
    Square,
    /// HopSkipJump (black-box, labels only).
    Hsj,
}

impl AttackKind {
    /// Whether the attack needs gradients.
    pub fn white_box(self) -> bool {
        matches!(
            self,
            AttackKind::Fgsm | AttackKind::Pgd | AttackKind::AutoAttack
        )
    }

    /// Every attack, cheapest first.
    pub const ALL: [AttackKind; 5] = [
        AttackKind::Fgsm,
        AttackKind::Pgd,
        AttackKind::AutoAttack,
        AttackKind::Square,
        AttackKind::Hsj,
    ];
}

/// The attacks to run when the user names none: the strongest set that fits the model. With gradients, PGD,
/// the AutoAttack ensemble (APGD-CE, APGD-T) and Square (which catches gradient masking); without, Square
/// (scores) and HopSkipJump (labels only).
pub fn strongest_attacks(differentiable: bool) -> Vec<AttackKind> {
    if differentiable {
        vec![AttackKind::Pgd, AttackKind::AutoAttack, AttackKind::Square]
    } else {
        vec![AttackKind::Square, AttackKind::Hsj]
    }
}

impl fmt::Display for AttackKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AttackKind::Fgsm => "fgsm",
            AttackKind::Pgd => "pgd",
            AttackKind::AutoAttack => "autoattack",
            AttackKind::Square => "square",
            AttackKind::Hsj => "hsj",
        })
    }
}

impl FromStr for AttackKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "fgsm" => Ok(AttackKind::Fgsm),
            "pgd" => Ok(AttackKind::Pgd),
            "autoattack" | "apgd" => Ok(AttackKind::AutoAttack),
            "square" => Ok(AttackKind::Square),
            "hsj" | "hopskipjump" => Ok(AttackKind::Hsj),
            other => Err(format!(
                "unknown attack {other:?} (fgsm, pgd, autoattack, square, hsj)"
            )),
        }
    }
}

/// What to measure.
#[derive(Debug, Clone)]
pub struct RobustnessConfig {
    /// The eps values, ascending.
    pub eps: Vec<f32>,
    /// Attacks, run in the order given (white-box ones are skipped on a black-box model, with a note).
    pub attacks: Vec<AttackKind>,
    /// PGD settings.
    pub pgd: PgdParams,
    /// APGD iterations.
    pub apgd_steps: u32,
    /// Targeted APGD runs (against the 1st, 2nd… most likely wrong class).
    pub apgd_targets: u32,
    /// Query budget per sample of each black-box attack.
    pub queries_per_sample: u32,
    /// Seed.
    pub seed: u64,
    /// Number of adversarial examples to report.
    pub examples: usize,
}

impl Default for RobustnessConfig {
    fn default() -> Self {
        RobustnessConfig {
            eps: vec![0.05, 0.1, 0.2],
            attacks: vec![AttackKind::Fgsm, AttackKind::Pgd, AttackKind::Square],
            pgd: PgdParams::default(),
            apgd_steps: 100,
            apgd_targets: 3,
            queries_per_sample: 1000,
            seed: 0,
            examples: 5,
        }
    }
}

/// Robust accuracy at one eps.
#[derive(Debug, Clone, Serialize)]
pub struct EpsPoint {
    /// The eps, in the units asked for.
    pub eps: f32,
    /// Fraction of all rows still correctly classified under every attack.
    pub robust_accuracy: f64,
    /// Rows each attack broke first at this eps (attack name, rows).
    pub broken_by: Vec<(String, usize)>,
    /// Model queries spent at this eps.
    pub queries: u64,
    /// The radius in feature units over the mutable features: `[smallest, largest]`.
    pub eps_raw: [f32; 2],
    /// The radius as a fraction of each feature's valid range: `[smallest, largest]`.
    pub eps_range_fraction: [f32; 2],
    /// Wall time of each attack at this eps, in seconds (attack name, seconds).
    pub seconds: Vec<(String, f64)>,
}

/// A feature the successful attacks changed most.
#[derive(Debug, Clone, Serialize)]
pub struct FeatureImpact {
    /// Feature name.
    pub feature: String,
    /// Share of successful adversarial rows that changed it.
    pub changed_in: f64,
    /// Mean change as a fraction of the feature's allowed radius, over those rows.
    pub mean_relative_change: f64,
}

/// Clean and robust accuracy of one class.
#[derive(Debug, Clone, Serialize)]
pub struct ClassRobustness {
    /// Class name.
    pub class: String,
    /// Rows of this class.
    pub rows: usize,
    /// Clean accuracy on them.
    pub clean_accuracy: f64,
    /// Robust accuracy at each eps.
    pub robust_accuracy: Vec<f64>,
}

/// One adversarial row with the fields that changed.
#[derive(Debug, Clone, Serialize)]
pub struct AdversarialExample {
    /// Zero-based test row.
    pub row: usize,
    /// Smallest eps at which it was broken.
    pub eps: f32,
    /// The attack that broke it.
    pub attack: String,
    /// True class.
    pub label: String,
    /// Class predicted for the adversarial row.
    pub predicted: String,
    /// `(feature, original, adversarial)` for every changed feature.
    pub changes: Vec<(String, f32, f32)>,
}

/// A sign that the measured robustness may be overstated.
#[derive(Debug, Clone, Serialize)]
pub struct Flag {
    /// Rule id.
    pub rule: &'static str,
    /// What was seen.
    pub message: String,
}

/// Everything measured.
#[derive(Debug, Clone, Serialize)]
pub struct RobustnessResult {
    /// Model description.
    pub model: String,
    /// Test rows.
    pub rows: usize,
    /// Clean accuracy.
    pub clean_accuracy: f64,
    /// Robust accuracy per eps.
    pub curve: Vec<EpsPoint>,
    /// Attacks that ran.
    pub attacks: Vec<String>,
    /// Attacks skipped, with the reason.
    pub skipped: Vec<(String, String)>,
    /// Features most changed by successful attacks.
    pub vulnerable_features: Vec<FeatureImpact>,
    /// Per-class accuracy.
    pub classes: Vec<ClassRobustness>,
    /// Example adversarial rows.
    pub examples: Vec<AdversarialExample>,
    /// Signs of a false sense of security.
    pub flags: Vec<Flag>,
    /// Attack outputs discarded because they left the ball or the schema (a bug if not 0).
    pub discarded: usize,
    /// Total model queries.
    pub queries: u64,
}

/// Names for reports: feature and class names, and the schema rows are checked against.
#[derive(Debug, Clone, Copy)]
pub struct Names<'a> {
    /// Feature names in input order.
    pub features: &'a [String],
    /// Class names by index.
    pub classes: &'a [String],
    /// The schema adversarial rows must satisfy, when there is one.
    pub schema: Option<&'a Schema>,
}

/// Progress callbacks: a stage name and a fraction done.
pub trait Progress {
    /// Called before each attack at each eps.
    fn stage(&self, what: &str, done: usize, total: usize);
}

/// No progress display.
#[derive(Debug, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn stage(&self, _: &str, _: usize, _: usize) {}
}

/// Measure robust accuracy of `model` on `x` (`labels.len()` rows) under `constraints`.
pub fn evaluate(
    model: &dyn Model,
    x: &[f32],
    labels: &[u32],
    constraints: &Constraints,
    names: Names<'_>,
    cfg: &RobustnessConfig,
    progress: &dyn Progress,
) -> Result<RobustnessResult, Error> {
    let (n, d, k) = (labels.len(), model.n_features(), model.n_classes());
    if x.len() != n * d || constraints.n_features() != d {
        return Err(Error::Invalid(format!(
            "{n} rows of {} values do not fit a model with {d} features",
            x.len() / n.max(1)
        )));
    }
    if let Some(&bad) = labels.iter().find(|&&y| y as usize >= k) {
        return Err(Error::Invalid(format!(
            "label {bad} is not a class of this {k}-class model"
        )));
    }
    if n == 0 {
        return Err(Error::Invalid("no rows to attack".into()));
    }
    // A radius that covers every feature's whole range reaches any label: the curve would mean nothing.
    for &e in &cfg.eps {
        let (_, _, least_share, _) = constraints.radius_summary(e);
        if (1.0..f32::MAX).contains(&least_share) {
            return Err(Error::Invalid(format!(
                "eps {e} lets the attack move every feature across its whole valid range (the smallest radius \
                 is {:.0}% of its feature's range), so any label can be reached and the result would mean \
                 nothing; use a smaller eps",
                least_share * 100.0
            )));
        }
    }
    let mut eps = cfg.eps.clone();
    eps.sort_by(f32::total_cmp);
    let clean = predict_proba_batched(model, x, n, 512)?;
    let clean_pred = argmax_rows(&clean, k);
    let mut robust: Vec<bool> = clean_pred.iter().zip(labels).map(|(p, y)| p == y).collect();
    let clean_correct = robust.iter().filter(|&&v| v).count();
    let mut result = RobustnessResult {
        model: model.describe(),
        rows: n,
        clean_accuracy: clean_correct as f64 / n.max(1) as f64,
        curve: Vec::new(),
        attacks: Vec::new(),
        skipped: Vec::new(),
        vulnerable_features: Vec::new(),
        classes: Vec::new(),
        examples: Vec::new(),
        flags: Vec::new(),
        discarded: 0,
        queries: n as u64,
    };
    check_determinism(model, x, n, &clean, &mut result)?;
    let diff = model.as_differentiable();
    let mut attacks = Vec::new();
    for &a in &cfg.attacks {
        if a.white_box() && diff.is_none() {
            result.skipped.push((
                a.to_string(),
                "the model gives no gradients (black-box)".into(),
            ));
        } else if !attacks.contains(&a) {
            attacks.push(a);
        }
    }
    result.attacks = attacks.iter().map(|a| a.to_string()).collect();
    if let Some(m) = diff {
        check_gradients(m, x, labels, &robust, constraints, &mut result)?;
    }
    let mut broken_at: Vec<Option<(f32, String, Vec<f32>)>> = vec![None; n];
    let mut per_class: Vec<Vec<f64>> = Vec::new();
    let total_stages = eps.len() * attacks.len();
    for (ei, &e) in eps.iter().enumerate() {
        let (raw_lo, raw_hi, frac_lo, frac_hi) = constraints.radius_summary(e);
        let mut point = EpsPoint {
            eps: e,
            robust_accuracy: 0.0,
            broken_by: Vec::new(),
            queries: 0,
            eps_raw: [raw_lo, raw_hi],
            eps_range_fraction: [frac_lo, frac_hi],
            seconds: Vec::new(),
        };
        let mut white_broken = 0;
        for (ai, &attack) in attacks.iter().enumerate() {
            progress.stage(
                &format!("{attack} eps={e}"),
                ei * attacks.len() + ai,
                total_stages,
            );
            let rows: Vec<usize> = (0..n).filter(|&i| robust[i]).collect();
            if rows.is_empty() {
                break;
            }
            let sub_x: Vec<f32> = aegis_ml::gather_rows(x, d, &rows);
            let sub_y: Vec<u32> = rows.iter().map(|&i| labels[i]).collect();
            let input = AttackInput {
                x: &sub_x,
                labels: &sub_y,
                eps: e,
                constraints,
                seed: cfg.seed ^ ((ei as u64) << 32 | ai as u64),
            };
            let timer = std::time::Instant::now();
            let out = run_attack(attack, model, diff, &input, cfg)?;
            point
                .seconds
                .push((attack.to_string(), timer.elapsed().as_secs_f64()));
            point.queries += out.queries;
            let broken = recheck(model, &input, &out, names.schema, &mut result.discarded)?;
            result.queries += rows.len() as u64;
            let mut count = 0;
            for (r, adv) in broken {
                let i = rows[r];
                robust[i] = false;
                count += 1;
                broken_at[i] = Some((e, attack.to_string(), adv));
            }
            if attack.white_box() {
                white_broken += count;
            } else if count > 0 && attacks.iter().any(|a| a.white_box()) {
                result.flags.push(Flag {
                    rule: rules::GRADIENT_MASKING.id,
                    message: format!("at eps {e}, {attack} broke {count} rows that every gradient attack left standing ({white_broken} broken by gradients)"),
                });
            }
            point.broken_by.push((attack.to_string(), count));
        }
        point.robust_accuracy = robust.iter().filter(|&&v| v).count() as f64 / n.max(1) as f64;
        result.queries += point.queries;
        per_class.push(class_accuracy(labels, &robust, k));
        result.curve.push(point);
    }
    result.classes = (0..k)
        .map(|c| {
            let rows = labels.iter().filter(|&&y| y as usize == c).count();
            let correct = labels
                .iter()
                .zip(&clean_pred)
                .filter(|(&y, &p)| y as usize == c && p == y)
                .count();
            ClassRobustness {
                class: names
                    .classes
                    .get(c)
                    .cloned()
                    .unwrap_or_else(|| c.to_string()),
                rows,
                clean_accuracy: correct as f64 / rows.max(1) as f64,
                robust_accuracy: per_class.iter().map(|pc| pc[c]).collect(),
            }
        })
        .filter(|c| c.rows > 0)
        .collect();
    result.vulnerable_features = feature_impact(x, &broken_at, constraints, names.features, d);
    result.examples = examples(model, x, labels, &broken_at, names, d, cfg.examples)?;
    Ok(result)
}

fn run_attack(
    attack: AttackKind,
    model: &dyn Model,
    diff: Option<&dyn Differentiable>,
    input: &AttackInput,
    cfg: &RobustnessConfig,
) -> Result<AttackOutput, Error> {
    let need = || diff.ok_or_else(|| Error::Invalid(format!("{attack} needs gradients")));
    match attack {
        AttackKind::Fgsm => fgsm(need()?, input),
        AttackKind::Pgd => pgd(need()?, input, &cfg.pgd),
        AttackKind::AutoAttack => autoattack(need()?, input, cfg),
        AttackKind::Square => square_attack(
            model,
            input,
            &SquareParams {
                queries_per_sample: cfg.queries_per_sample,
                ..Default::default()
            },
        ),
        AttackKind::Hsj => hop_skip_jump(
            model,
            input,
            &HsjParams {
                queries_per_sample: cfg.queries_per_sample,
                ..Default::default()
            },
        ),
    }
}

/// APGD-CE, then APGD-T with the DLR loss against the most likely wrong classes, each on the rows still
/// standing; the first success per row is kept.
fn autoattack(
    model: &dyn Differentiable,
    input: &AttackInput,
    cfg: &RobustnessConfig,
) -> Result<AttackOutput, Error> {
    let (d, k) = (model.n_features(), model.n_classes());
    let params = ApgdParams {
        steps: cfg.apgd_steps,
        ..Default::default()
    };
    let mut out = apgd(model, input, &params, &ApgdLoss::CrossEntropy)?;
    let clean = predict_proba_batched(model, input.x, input.n(), 512)?;
    out.queries += input.n() as u64;
    for t in 0..cfg.apgd_targets.min(k.saturating_sub(1) as u32) as usize {
        let pred = aegis_ml::predict(model, &out.x_adv, input.n())?;
        out.queries += input.n() as u64;
        let standing: Vec<usize> = (0..input.n())
            .filter(|&i| pred[i] == input.labels[i])
            .collect();
        if standing.is_empty() {
            break;
        }
        let sx: Vec<f32> = aegis_ml::gather_rows(input.x, d, &standing);
        let sy: Vec<u32> = standing.iter().map(|&i| input.labels[i]).collect();
        let sp: Vec<f32> = aegis_ml::gather_rows(&clean, k, &standing);
        let targets = target_classes(&sp, &sy, k, t);
        let sub = AttackInput {
            x: &sx,
            labels: &sy,
            seed: input.seed.wrapping_add(t as u64 + 1),
            ..*input
        };
        let res = apgd(model, &sub, &params, &ApgdLoss::TargetedDlr(targets))?;
        out.queries += res.queries;
        for (r, &i) in standing.iter().enumerate() {
            out.x_adv[i * d..(i + 1) * d].copy_from_slice(&res.x_adv[r * d..(r + 1) * d]);
        }
    }
    Ok(out)
}

/// The rows an attack really broke: inside the ball, valid under the schema, misclassified on re-query.
fn recheck(
    model: &dyn Model,
    input: &AttackInput,
    out: &AttackOutput,
    schema: Option<&Schema>,
    discarded: &mut usize,
) -> Result<Vec<(usize, Vec<f32>)>, Error> {
    let (n, d) = (input.n(), model.n_features());
    if out.x_adv.len() != n * d {
        return Err(Error::Invalid(format!(
            "attack returned {} values for {n} rows",
            out.x_adv.len()
        )));
    }
    let pred = aegis_ml::predict(model, &out.x_adv, n)?;
    let mut broken = Vec::new();
    for i in 0..n {
        if pred[i] == input.labels[i] {
            continue;
        }
        let (x0, adv) = (&input.x[i * d..(i + 1) * d], &out.x_adv[i * d..(i + 1) * d]);
        let valid = input.constraints.contains(x0, adv, input.eps)
            && schema.is_none_or(|s| s.check_row(adv).is_ok());
        if valid {
            broken.push((i, adv.to_vec()));
        } else {
            *discarded += 1;
        }
    }
    Ok(broken)
}

/// Predict the first rows twice: a model that answers differently is flagged.
fn check_determinism(
    model: &dyn Model,
    x: &[f32],
    n: usize,
    clean: &[f32],
    result: &mut RobustnessResult,
) -> Result<(), Error> {
    let m = n.min(64);
    let d = model.n_features();
    let again = model.predict_proba(&x[..m * d], m)?;
    result.queries += m as u64;
    let k = model.n_classes();
    let worst = again
        .iter()
        .zip(&clean[..m * k])
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    if worst > 1e-4 {
        result.flags.push(Flag {
            rule: rules::NON_DETERMINISTIC.id,
            message: format!(
                "the same {m} rows predicted twice differ by up to {worst:.4} in probability"
            ),
        });
    }
    Ok(())
}

/// Flag when most correctly classified rows have an all-zero gradient over the mutable features.
fn check_gradients(
    model: &dyn Differentiable,
    x: &[f32],
    labels: &[u32],
    correct: &[bool],
    c: &Constraints,
    result: &mut RobustnessResult,
) -> Result<(), Error> {
    let d = model.n_features();
    let rows: Vec<usize> = (0..labels.len())
        .filter(|&i| correct[i])
        .take(256)
        .collect();
    if rows.is_empty() {
        return Ok(());
    }
    let sx: Vec<f32> = aegis_ml::gather_rows(x, d, &rows);
    let sy: Vec<u32> = rows.iter().map(|&i| labels[i]).collect();
    let g = input_gradient(model, &sx, rows.len(), &Loss::CrossEntropy(sy))?;
    result.queries += rows.len() as u64;
    let zero = g
        .grad
        .chunks(d)
        .filter(|row| {
            row.iter()
                .enumerate()
                .all(|(j, v)| !c.is_mutable(j) || v.abs() < 1e-12)
        })
        .count();
    let share = zero as f64 / rows.len() as f64;
    if share > 0.1 {
        result.flags.push(Flag {
            rule: rules::VANISHING_GRADIENTS.id,
            message: format!(
                "{zero} of {} correctly classified rows have a zero input gradient ({:.0}%)",
                rows.len(),
                share * 100.0
            ),
        });
    }
    Ok(())
}

fn class_accuracy(labels: &[u32], robust: &[bool], k: usize) -> Vec<f64> {
    let mut hit = vec![0usize; k];
    let mut all = vec![0usize; k];
    for (&y, &r) in labels.iter().zip(robust) {
        all[y as usize] += 1;
        hit[y as usize] += r as usize;
    }
    hit.iter()
        .zip(&all)
        .map(|(&h, &a)| h as f64 / a.max(1) as f64)
        .collect()
}

fn feature_impact(
    x: &[f32],
    broken: &[Option<(f32, String, Vec<f32>)>],
    c: &Constraints,
    names: &[String],
    d: usize,
) -> Vec<FeatureImpact> {
    let mut changed = vec![0usize; d];
    let mut rel = vec![0f64; d];
    let mut total = 0;
    for (i, b) in broken.iter().enumerate() {
        let Some((eps, _, adv)) = b else { continue };
        total += 1;
        for j in 0..d {
            let delta = (adv[j] - x[i * d + j]).abs();
            if delta > 1e-6 {
                changed[j] += 1;
                rel[j] += (delta / c.radius(j, *eps).max(1e-12)).min(1.0) as f64;
            }
        }
    }
    let mut out: Vec<FeatureImpact> = (0..d)
        .filter(|&j| changed[j] > 0)
        .map(|j| FeatureImpact {
            feature: names.get(j).cloned().unwrap_or_else(|| format!("f{j}")),
            changed_in: changed[j] as f64 / total.max(1) as f64,
            mean_relative_change: rel[j] / changed[j] as f64,
        })
        .collect();
    out.sort_by(|a, b| {
        (b.changed_in * b.mean_relative_change).total_cmp(&(a.changed_in * a.mean_relative_change))
    });
    out.truncate(10);
    out
}

fn examples(
    model: &dyn Model,
    x: &[f32],
    labels: &[u32],
    broken: &[Option<(f32, String, Vec<f32>)>],
    names: Names<'_>,
    d: usize,
    max: usize,
) -> Result<Vec<AdversarialExample>, Error> {
    let mut rows: Vec<usize> = (0..labels.len()).filter(|&i| broken[i].is_some()).collect();
    rows.sort_by(|&a, &b| {
        broken[a]
            .as_ref()
            .map(|v| v.0)
            .unwrap_or(0.0)
            .total_cmp(&broken[b].as_ref().map(|v| v.0).unwrap_or(0.0))
    });
    rows.truncate(max);
    let class = |c: u32| {
        names
            .classes
            .get(c as usize)
            .cloned()
            .unwrap_or_else(|| c.to_string())
    };
    let mut out = Vec::new();
    for i in rows {
        let Some((eps, attack, adv)) = &broken[i] else {
            continue;
        };
        let pred = aegis_ml::predict(model, adv, 1)?;
        let changes = (0..d)
            .filter(|&j| (adv[j] - x[i * d + j]).abs() > 1e-6)
            .map(|j| {
                (
                    names
                        .features
                        .get(j)
                        .cloned()
                        .unwrap_or_else(|| format!("f{j}")),
                    x[i * d + j],
                    adv[j],
                )
            })
            .collect();
        out.push(AdversarialExample {
            row: i,
            eps: *eps,
            attack: attack.clone(),
            label: class(labels[i]),
            predicted: class(pred[0]),
            changes,
        });
    }
    Ok(out)
}

/// Severity from the accuracy lost at an eps (in points of accuracy).
pub fn severity_for_drop(points: f64) -> Severity {
    match points {
        p if p >= 50.0 => Severity::Critical,
        p if p >= 25.0 => Severity::High,
        p if p >= 10.0 => Severity::Medium,
        p if p >= 2.0 => Severity::Low,
        _ => Severity::Info,
    }
}

/// Findings for a result: one per eps with a real drop, one per flag.
pub fn findings(result: &RobustnessResult, model_name: &str) -> Vec<Finding> {
    let loc = |feature: &str| Location::ModelInput {
        model: model_name.to_string(),
        feature: feature.to_string(),
    };
    let mut out = Vec::new();
    let top = result
        .vulnerable_features
        .first()
        .map(|f| f.feature.clone())
        .unwrap_or_else(|| "*".into());
    for p in &result.curve {
        let drop = (result.clean_accuracy - p.robust_accuracy) * 100.0;
        if drop < 1.0 {
            continue;
        }
        let msg = format!(
            "at eps {} robust accuracy is {:.1}% (clean {:.1}%, {:.1} points lost) under {}",
            p.eps,
            p.robust_accuracy * 100.0,
            result.clean_accuracy * 100.0,
            drop,
            result.attacks.join(", ")
        );
        out.push(
            Finding::new(&rules::ROBUSTNESS_DROP, loc(&top), msg)
                .with_severity(severity_for_drop(drop))
                .with_evidence_field("eps", p.eps as f64)
                .with_evidence_field("clean_accuracy", result.clean_accuracy)
                .with_evidence_field("robust_accuracy", p.robust_accuracy)
                .with_evidence_field(
                    "broken_by",
                    serde_json::to_value(&p.broken_by).unwrap_or_default(),
                ),
        );
    }
    for f in &result.flags {
        let doc = rules::all()
            .into_iter()
            .find(|r| r.id == f.rule)
            .unwrap_or(&rules::GRADIENT_MASKING);
        out.push(Finding::new(doc, loc("*"), f.message.clone()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attack_names_round_trip_and_unknown_ones_are_refused() {
        for a in AttackKind::ALL {
            assert_eq!(a.to_string().parse::<AttackKind>().unwrap(), a);
        }
        assert!("deepfool"
            .parse::<AttackKind>()
            .unwrap_err()
            .contains("deepfool"));
    }

    #[test]
    fn severity_grows_with_the_drop() {
        assert_eq!(severity_for_drop(0.5), Severity::Info);
        assert_eq!(severity_for_drop(12.0), Severity::Medium);
        assert_eq!(severity_for_drop(60.0), Severity::Critical);
    }
}
