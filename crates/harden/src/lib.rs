//! Hardening: train a model on the adversarial examples an attacker would use, until robust accuracy stops
//! improving.
//!
//! Madry-style adversarial training replaces every mini-batch by its PGD adversarial version; TRADES (Zhang et
//! al. 2019) trains on clean rows plus a KL term that pulls adversarial outputs towards clean ones, trading a
//! little clean accuracy for robustness in a controlled way. Both use the training loop's batch hook in
//! `aegis_ml::train`, both generate attacks under the same [`Constraints`] as `aegis assess`, and both keep the
//! weights of the epoch with the best robust validation accuracy (early stopping on robust, not clean,
//! accuracy).

#![forbid(unsafe_code)]

use aegis_assess::attacks::pgd::{ascent_step, pgd, random_start, PgdParams};
use aegis_assess::attacks::AttackInput;
use aegis_assess::Constraints;
use aegis_ml::rng::Rng;
use aegis_ml::train::{
    train, Batch, Control, EpochStats, Objective, TrainConfig, TrainHooks, Trainable,
};
use aegis_ml::{accuracy, input_gradient, predict_proba_batched, Differentiable, Loss};
use candle_core::Tensor;
use serde::Serialize;

/// Errors of a hardening run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The model failed.
    #[error(transparent)]
    Model(#[from] aegis_ml::Error),
    /// An attack failed.
    #[error(transparent)]
    Attack(#[from] aegis_assess::Error),
    /// The request cannot work.
    #[error("{0}")]
    Invalid(String),
}

/// Which adversarial training.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// Train on PGD adversarial examples only (Madry et al. 2018).
    Pgd,
    /// TRADES with robustness weight β.
    Trades {
        /// Weight of the KL term (6 in the paper).
        beta: f32,
    },
}

/// Settings of a hardening run.
#[derive(Debug, Clone)]
pub struct HardenConfig {
    /// Perturbation budget the model is trained against.
    pub eps: f32,
    /// Madry or TRADES.
    pub method: Method,
    /// PGD steps when generating training examples.
    pub train_steps: u32,
    /// PGD steps when measuring robust validation accuracy.
    pub eval_steps: u32,
    /// Optimiser settings (epochs, batch, learning rate, seed).
    pub train: TrainConfig,
    /// Stop after this many epochs without a better robust validation accuracy.
    pub patience: usize,
}

impl Default for HardenConfig {
    fn default() -> Self {
        HardenConfig {
            eps: 0.1,
            method: Method::Pgd,
            train_steps: 10,
            eval_steps: 20,
            train: TrainConfig {
                epochs: 30,
                batch_size: 64,
                lr: 1e-3,
                ..Default::default()
            },
            patience: 5,
        }
    }
}

/// Optimiser steps the default schedule allows at most, and the steps without a better robust validation
/// accuracy after which it stops (see [`default_schedule`]).
pub const DEFAULT_MAX_STEPS: usize = 3000;
/// See [`DEFAULT_MAX_STEPS`].
pub const DEFAULT_PATIENCE_STEPS: usize = 600;

/// The default `(epochs, patience)` for `n_train` training rows in batches of `batch_size`.
///
/// A schedule counted in epochs stops far too early on a small table: 100 training rows make two optimiser
/// steps an epoch, and adversarial training often sits at the majority-class accuracy for a few hundred
/// steps before robust accuracy rises (`bench/harden_schedule.sh`: 30 epochs with a patience of 5 left the
/// wine and breast-cancer tables at their majority class). So the schedule is counted in optimiser steps:
/// up to [`DEFAULT_MAX_STEPS`] (at least 30 epochs, at most 2,000), stopping after [`DEFAULT_PATIENCE_STEPS`]
/// without progress (at least 5 epochs) — the old 30/5 is the floor for large tables.
pub fn default_schedule(n_train: usize, batch_size: usize) -> (usize, usize) {
    let per_epoch = n_train.div_ceil(batch_size.max(1)).max(1);
    let epochs = DEFAULT_MAX_STEPS.div_ceil(per_epoch).clamp(30, 2000);
    let patience = DEFAULT_PATIENCE_STEPS.div_ceil(per_epoch).clamp(5, epochs);
    (epochs, patience)
}

/// One epoch's record.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct EpochRecord {
    /// 1-based epoch.
    pub epoch: usize,
    /// Mean training loss.
    pub train_loss: f64,
    /// Clean validation accuracy.
    pub clean_accuracy: f64,
    /// PGD robust validation accuracy at the training eps.
    pub robust_accuracy: f64,
}

/// Clean and robust accuracy of a model on the validation rows.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Scores {
    /// Clean accuracy.
    pub clean_accuracy: f64,
    /// PGD robust accuracy at the training eps.
    pub robust_accuracy: f64,
}

/// What a hardening run did.
#[derive(Debug, Clone, Serialize)]
pub struct HardenReport {
    /// The method.
    pub method: Method,
    /// The eps.
    pub eps: f32,
    /// Scores before training.
    pub before: Scores,
    /// Scores of the kept weights.
    pub after: Scores,
    /// Per-epoch records.
    pub epochs: Vec<EpochRecord>,
    /// The epoch whose weights were kept.
    pub best_epoch: usize,
}

/// Rows and labels.
#[derive(Debug, Clone, Copy)]
pub struct Split<'a> {
    /// Row-major features.
    pub x: &'a [f32],
    /// Labels.
    pub y: &'a [u32],
}

/// Clean and PGD robust accuracy of `model` on `split`.
pub fn scores(
    model: &dyn Differentiable,
    split: Split<'_>,
    c: &Constraints,
    eps: f32,
    steps: u32,
    seed: u64,
) -> Result<Scores, Error> {
    let clean_accuracy = accuracy(model, split.x, split.y)?;
    let params = PgdParams {
        steps,
        step_size: 2.5 / steps.max(1) as f32,
        ..Default::default()
    };
    let adv = pgd(
        model,
        &AttackInput {
            x: split.x,
            labels: split.y,
            eps,
            constraints: c,
            seed,
        },
        &params,
    )?;
    Ok(Scores {
        clean_accuracy,
        robust_accuracy: accuracy(model, &adv.x_adv, split.y)?,
    })
}

/// Adversarially train `model` on `train_split`, validating on `val`; the best weights are kept in the model.
pub fn harden(
    model: &dyn Trainable,
    train_split: Split<'_>,
    val: Split<'_>,
    c: &Constraints,
    cfg: &HardenConfig,
    on_epoch: &mut dyn FnMut(&EpochRecord),
) -> Result<HardenReport, Error> {
    if train_split.y.is_empty() || val.y.is_empty() {
        return Err(Error::Invalid(
            "hardening needs training and validation rows".into(),
        ));
    }
    let before = scores(model, val, c, cfg.eps, cfg.eval_steps, cfg.train.seed)?;
    let mut hooks = AdversarialHooks {
        constraints: c,
        cfg,
        val,
        rng: Rng::new(cfg.train.seed ^ 0xA11CE),
        best: None,
        since_best: 0,
        records: Vec::new(),
        on_epoch,
        error: None,
    };
    train(model, train_split.x, train_split.y, &cfg.train, &mut hooks)?;
    if let Some(e) = hooks.error.take() {
        return Err(e);
    }
    let best_epoch = match &hooks.best {
        Some((epoch, _, weights)) => {
            model.restore(weights)?;
            *epoch
        }
        None => 0,
    };
    let records = hooks.records;
    let after = scores(model, val, c, cfg.eps, cfg.eval_steps, cfg.train.seed)?;
    Ok(HardenReport {
        method: cfg.method,
        eps: cfg.eps,
        before,
        after,
        epochs: records,
        best_epoch,
    })
}

struct AdversarialHooks<'a> {
    constraints: &'a Constraints,
    cfg: &'a HardenConfig,
    val: Split<'a>,
    rng: Rng,
    /// (epoch, robust accuracy, weights) of the best epoch so far.
    best: Option<(usize, f64, Vec<Tensor>)>,
    since_best: usize,
    records: Vec<EpochRecord>,
    on_epoch: &'a mut dyn FnMut(&EpochRecord),
    error: Option<Error>,
}

impl AdversarialHooks<'_> {
    /// TRADES' inner maximisation: ascend KL(f(x) ‖ f(x')) from a small random start.
    fn trades_examples(
        &mut self,
        model: &dyn Differentiable,
        x: &[f32],
        n: usize,
    ) -> Result<Vec<f32>, Error> {
        let (c, eps, d) = (self.constraints, self.cfg.eps, model.n_features());
        let reference = predict_proba_batched(model, x, n, 1024)?;
        let mut adv = random_start(c, x, eps * 0.01, &mut self.rng);
        let step = 2.5 / self.cfg.train_steps.max(1) as f32;
        for _ in 0..self.cfg.train_steps {
            let g = input_gradient(model, &adv, n, &Loss::Kl(reference.clone()))?;
            ascent_step(c, &mut adv, &g.grad, step * eps, d);
            c.project(x, &mut adv, eps);
        }
        c.finalize(x, &mut adv, eps);
        Ok(adv)
    }
}

impl TrainHooks for AdversarialHooks<'_> {
    fn objective(&self) -> Objective {
        match self.cfg.method {
            Method::Pgd => Objective::CrossEntropy,
            Method::Trades { beta } => Objective::Trades { beta },
        }
    }

    fn transform_batch(
        &mut self,
        model: &dyn Trainable,
        batch: &mut Batch,
    ) -> Result<(), aegis_ml::Error> {
        let n = batch.y.len();
        let adv = match self.cfg.method {
            Method::Pgd => {
                let steps = self.cfg.train_steps;
                // Madry: train on the highest-loss point of every row, not the first misclassified one.
                let params = PgdParams {
                    steps,
                    step_size: 2.5 / steps.max(1) as f32,
                    early_stop: false,
                    ..Default::default()
                };
                let input = AttackInput {
                    x: &batch.x,
                    labels: &batch.y,
                    eps: self.cfg.eps,
                    constraints: self.constraints,
                    seed: self.rng.next_u64(),
                };
                pgd_full(model, &input, &params)
            }
            Method::Trades { .. } => self.trades_examples(model, &batch.x, n),
        };
        match adv {
            Ok(x) => batch.x_adv = Some(x),
            Err(e) => return Err(aegis_ml::Error::Train(e.to_string())),
        }
        Ok(())
    }

    fn end_epoch(
        &mut self,
        model: &dyn Trainable,
        stats: &EpochStats,
    ) -> Result<Control, aegis_ml::Error> {
        let s = match scores(
            model,
            self.val,
            self.constraints,
            self.cfg.eps,
            self.cfg.eval_steps,
            self.cfg.train.seed,
        ) {
            Ok(s) => s,
            Err(e) => {
                self.error = Some(e);
                return Ok(Control::Stop);
            }
        };
        let record = EpochRecord {
            epoch: stats.epoch,
            train_loss: stats.train_loss,
            clean_accuracy: s.clean_accuracy,
            robust_accuracy: s.robust_accuracy,
        };
        (self.on_epoch)(&record);
        self.records.push(record);
        if self
            .best
            .as_ref()
            .is_none_or(|(_, best, _)| s.robust_accuracy > *best)
        {
            self.best = Some((stats.epoch, s.robust_accuracy, model.snapshot()?));
            self.since_best = 0;
        } else {
            self.since_best += 1;
        }
        Ok(if self.since_best >= self.cfg.patience {
            Control::Stop
        } else {
            Control::Continue
        })
    }
}

/// PGD for training: no early freezing per row matters less here, but the same attack as assessment keeps
/// training and evaluation consistent.
fn pgd_full(
    model: &dyn Differentiable,
    input: &AttackInput,
    params: &PgdParams,
) -> Result<Vec<f32>, Error> {
    Ok(pgd(model, input, params)?.x_adv)
}

/// Hold out `fraction` of `n` rows for validation, seeded: `(validation, training)` row indices. At least one
/// row goes to each side when `n >= 2`.
pub fn validation_split(n: usize, fraction: f64, seed: u64) -> (Vec<usize>, Vec<usize>) {
    let mut rows: Vec<usize> = (0..n).collect();
    Rng::new(seed ^ 0x5EED).shuffle(&mut rows);
    let n_val = ((n as f64 * fraction).round() as usize)
        .clamp(1, n.saturating_sub(1).max(1))
        .min(n);
    let train = rows.split_off(n_val);
    (rows, train)
}

/// Scores of `baseline` after plain training (no adversarial examples) with `cfg.train` on `train_split`:
/// the "before" of a from-scratch hardening run, i.e. what the user would have shipped otherwise.
pub fn baseline_scores(
    baseline: &dyn Trainable,
    train_split: Split<'_>,
    val: Split<'_>,
    c: &Constraints,
    cfg: &HardenConfig,
) -> Result<Scores, Error> {
    train(
        baseline,
        train_split.x,
        train_split.y,
        &cfg.train,
        &mut aegis_ml::train::NoHooks,
    )?;
    scores(baseline, val, c, cfg.eps, cfg.eval_steps, cfg.train.seed)
}

/// The finding for a hardened model that still loses accuracy under attack (none when it loses less than a
/// point), located at `model` (the written file).
pub fn findings(report: &HardenReport, model: &str) -> Vec<aegis_core::Finding> {
    let (after, before) = (report.after, report.before);
    let drop = (after.clean_accuracy - after.robust_accuracy) * 100.0;
    if drop < 1.0 {
        return Vec::new();
    }
    let msg = format!(
        "after hardening, robust validation accuracy at eps {} is {:.1}% (clean {:.1}%; before: robust {:.1}%, clean {:.1}%)",
        report.eps,
        after.robust_accuracy * 100.0,
        after.clean_accuracy * 100.0,
        before.robust_accuracy * 100.0,
        before.clean_accuracy * 100.0
    );
    let location = aegis_core::Location::ModelInput {
        model: model.to_string(),
        feature: "*".into(),
    };
    vec![
        aegis_core::Finding::new(&aegis_assess::rules::ROBUSTNESS_DROP, location, msg)
            .with_severity(aegis_assess::robustness::severity_for_drop(drop))
            .with_evidence_field("eps", report.eps as f64)
            .with_evidence_field("clean_accuracy", after.clean_accuracy)
            .with_evidence_field("robust_accuracy", after.robust_accuracy),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_schedule_counts_optimiser_steps() {
        // 100 rows in batches of 64: two steps an epoch, so 1,500 epochs and a patience of 300.
        assert_eq!(default_schedule(100, 64), (1500, 300));
        // A table of 1,000 rows: 16 steps an epoch, so 188 epochs and a patience of 38.
        assert_eq!(default_schedule(1000, 64), (188, 38));
        // A large table keeps the old floor of 30 epochs and a patience of 5.
        assert_eq!(default_schedule(100_000, 64), (30, 5));
        assert_eq!(default_schedule(0, 0), (2000, 600));
    }

    #[test]
    fn validation_split_is_seeded_disjoint_and_complete() {
        let (val, train) = validation_split(10, 0.2, 3);
        assert_eq!((val.len(), train.len()), (2, 8));
        let mut all: Vec<usize> = val.iter().chain(&train).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..10).collect::<Vec<_>>());
        assert_eq!(validation_split(10, 0.2, 3), (val, train));
        assert_eq!(validation_split(2, 0.01, 0).0.len(), 1);
    }

    fn report(clean: f64, robust: f64) -> HardenReport {
        let s = Scores {
            clean_accuracy: clean,
            robust_accuracy: robust,
        };
        HardenReport {
            method: Method::Pgd,
            eps: 0.1,
            before: s,
            after: s,
            epochs: vec![],
            best_epoch: 1,
        }
    }

    #[test]
    fn a_remaining_drop_is_a_finding_and_a_robust_model_is_not() {
        let f = findings(&report(0.95, 0.40), "h.onnx");
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].severity, aegis_core::Severity::Critical);
        assert!(findings(&report(0.95, 0.945), "h.onnx").is_empty());
    }
}
