//! A training loop with hooks, for native networks and for fine-tuning differentiable ONNX models.
//!
//! Hardening methods differ only in what they do to a batch and to its gradients: adversarial training
//! replaces each batch by adversarial examples ([`TrainHooks::transform_batch`]), TRADES adds a KL term between
//! clean and adversarial outputs ([`Objective::Trades`]), DP-SGD clips and noises per-sample gradients
//! ([`TrainHooks::aggregate`]). The loop itself is one plain mini-batch Adam loop, seeded and reproducible.

use candle_core::{Device, Tensor, Var};

use crate::error::check_shape;
use crate::grad::{candle_nn_log_softmax, Loss};
use crate::rng::Rng;
use crate::{Differentiable, Error};

/// A differentiable model whose parameters can be trained and saved.
pub trait Trainable: Differentiable {
    /// Logits with the parameters in autograd ([`Differentiable::logits`] leaves them out, so attacks do not
    /// pay for weight gradients).
    fn train_logits(&self, x: &Tensor) -> Result<Tensor, Error>;
    /// The trainable parameters.
    fn vars(&self) -> Vec<Var>;
    /// Write the model, with its current weights, as ONNX.
    fn save_onnx(&self, path: &std::path::Path) -> Result<(), Error>;

    /// A copy of the current weights.
    fn snapshot(&self) -> Result<Vec<Tensor>, Error> {
        Ok(self
            .vars()
            .iter()
            .map(|v| v.as_tensor().copy())
            .collect::<Result<_, _>>()?)
    }

    /// Restore weights taken by [`snapshot`](Self::snapshot).
    fn restore(&self, weights: &[Tensor]) -> Result<(), Error> {
        for (var, w) in self.vars().iter().zip(weights) {
            var.set(w)?;
        }
        Ok(())
    }
}

/// Optimiser settings.
#[derive(Debug, Clone)]
pub struct TrainConfig {
    /// Passes over the training data.
    pub epochs: usize,
    /// Rows per mini-batch.
    pub batch_size: usize,
    /// Adam learning rate.
    pub lr: f64,
    /// Decoupled weight decay (AdamW).
    pub weight_decay: f64,
    /// Seed for shuffling.
    pub seed: u64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            epochs: 30,
            batch_size: 64,
            lr: 1e-3,
            weight_decay: 0.0,
            seed: 0,
        }
    }
}

/// The loss a batch is trained on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Objective {
    /// Cross-entropy on the batch (on its adversarial rows when the hook supplied them: Madry et al.).
    CrossEntropy,
    /// TRADES (Zhang et al. 2019): cross-entropy on the clean rows + β · KL(f(x) ‖ f(x_adv)).
    Trades {
        /// Weight of the robustness term.
        beta: f32,
    },
}

/// One mini-batch as the hooks see it.
#[derive(Debug, Clone)]
pub struct Batch {
    /// Clean rows.
    pub x: Vec<f32>,
    /// Labels.
    pub y: Vec<u32>,
    /// Adversarial versions of the rows, when a hook made them.
    pub x_adv: Option<Vec<f32>>,
}

/// What one epoch did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EpochStats {
    /// 1-based epoch number.
    pub epoch: usize,
    /// Mean training loss over the epoch.
    pub train_loss: f64,
}

/// Whether training goes on after an epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Next epoch.
    Continue,
    /// Stop now.
    Stop,
}

/// Extension points of the training loop; every method has a do-nothing default.
pub trait TrainHooks {
    /// The loss to train on.
    fn objective(&self) -> Objective {
        Objective::CrossEntropy
    }
    /// Change a batch before the step (e.g. add adversarial rows).
    fn transform_batch(&mut self, _model: &dyn Trainable, _batch: &mut Batch) -> Result<(), Error> {
        Ok(())
    }
    /// Whether the loop must compute one gradient per sample (costly) and hand them to [`aggregate`](Self::aggregate).
    fn per_sample_gradients(&self) -> bool {
        false
    }
    /// Turn per-sample gradients (`[sample][parameter]`) into the batch gradient; default: the mean.
    fn aggregate(&mut self, per_sample: Vec<Vec<Tensor>>) -> Result<Vec<Tensor>, Error> {
        mean_gradients(per_sample)
    }
    /// Called after each epoch (validation, early stopping, progress).
    fn end_epoch(&mut self, _model: &dyn Trainable, _stats: &EpochStats) -> Result<Control, Error> {
        Ok(Control::Continue)
    }
}

/// Hooks that do nothing: plain training.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoHooks;

impl TrainHooks for NoHooks {}

/// The mean of per-sample gradients.
pub fn mean_gradients(per_sample: Vec<Vec<Tensor>>) -> Result<Vec<Tensor>, Error> {
    let n = per_sample.len().max(1) as f64;
    let mut iter = per_sample.into_iter();
    let Some(mut acc) = iter.next() else {
        return Ok(Vec::new());
    };
    for sample in iter {
        for (a, g) in acc.iter_mut().zip(sample) {
            *a = (&*a + g)?;
        }
    }
    acc.into_iter().map(|a| Ok((a / n)?)).collect()
}

/// Train `model` on `n` rows of `x` with labels `y`; returns the per-epoch statistics.
pub fn train(
    model: &dyn Trainable,
    x: &[f32],
    y: &[u32],
    cfg: &TrainConfig,
    hooks: &mut dyn TrainHooks,
) -> Result<Vec<EpochStats>, Error> {
    let (n, d, k) = (y.len(), model.n_features(), model.n_classes());
    check_shape(x, n, d)?;
    if n == 0 || cfg.batch_size == 0 {
        return Err(Error::Train("no training rows or a zero batch size".into()));
    }
    if let Some(&bad) = y.iter().find(|&&c| c as usize >= k) {
        return Err(Error::Train(format!(
            "label {bad} out of range for a {k}-class model"
        )));
    }
    let vars = model.vars();
    let mut adam = Adam::new(&vars, cfg.lr, cfg.weight_decay)?;
    let mut rng = Rng::new(cfg.seed);
    let mut order: Vec<usize> = (0..n).collect();
    let mut history = Vec::new();
    for epoch in 1..=cfg.epochs {
        rng.shuffle(&mut order);
        let mut total = 0.0;
        for chunk in order.chunks(cfg.batch_size) {
            let mut batch = Batch {
                x: crate::model::gather_rows(x, d, chunk),
                y: chunk.iter().map(|&i| y[i]).collect(),
                x_adv: None,
            };
            hooks.transform_batch(model, &mut batch)?;
            let (loss, grads) = if hooks.per_sample_gradients() {
                per_sample_step(model, &vars, &batch, hooks)?
            } else {
                let loss = batch_loss(model, &batch, hooks.objective())?;
                let store = loss.backward()?;
                let grads = vars
                    .iter()
                    .map(|v| {
                        store
                            .get(v.as_tensor())
                            .cloned()
                            .map_or_else(|| v.as_tensor().zeros_like(), Ok)
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                (loss.to_scalar::<f32>()? as f64, grads)
            };
            total += loss * chunk.len() as f64;
            adam.step(&vars, &grads)?;
        }
        let stats = EpochStats {
            epoch,
            train_loss: total / n as f64,
        };
        history.push(stats);
        if hooks.end_epoch(model, &stats)? == Control::Stop {
            break;
        }
    }
    Ok(history)
}

fn per_sample_step(
    model: &dyn Trainable,
    vars: &[Var],
    batch: &Batch,
    hooks: &mut dyn TrainHooks,
) -> Result<(f64, Vec<Tensor>), Error> {
    let d = model.n_features();
    let mut per_sample = Vec::with_capacity(batch.y.len());
    let mut total = 0.0;
    for i in 0..batch.y.len() {
        let single = Batch {
            x: batch.x[i * d..(i + 1) * d].to_vec(),
            y: vec![batch.y[i]],
            x_adv: batch.x_adv.as_ref().map(|a| a[i * d..(i + 1) * d].to_vec()),
        };
        let loss = batch_loss(model, &single, hooks.objective())?;
        total += loss.to_scalar::<f32>()? as f64;
        let store = loss.backward()?;
        per_sample.push(
            vars.iter()
                .map(|v| {
                    store
                        .get(v.as_tensor())
                        .cloned()
                        .map_or_else(|| v.as_tensor().zeros_like(), Ok)
                })
                .collect::<Result<Vec<_>, _>>()?,
        );
    }
    let grads = hooks.aggregate(per_sample)?;
    Ok((total / batch.y.len().max(1) as f64, grads))
}

/// The mean loss of a batch under an objective, as a scalar tensor.
fn batch_loss(model: &dyn Trainable, batch: &Batch, objective: Objective) -> Result<Tensor, Error> {
    let (n, d) = (batch.y.len(), model.n_features());
    let tensor = |v: &[f32]| Tensor::from_slice(v, (n, d), &Device::Cpu);
    let ce = Loss::CrossEntropy(batch.y.clone());
    match (objective, &batch.x_adv) {
        (Objective::CrossEntropy, Some(adv)) => Ok(ce
            .per_row(&model.train_logits(&tensor(adv)?)?)?
            .mean_all()?),
        (Objective::CrossEntropy, None) => Ok(ce
            .per_row(&model.train_logits(&tensor(&batch.x)?)?)?
            .mean_all()?),
        (Objective::Trades { beta }, adv) => {
            let clean = model.train_logits(&tensor(&batch.x)?)?;
            let natural = ce.per_row(&clean)?.mean_all()?;
            let Some(adv) = adv else { return Ok(natural) };
            let log_p = candle_nn_log_softmax(&clean)?;
            let log_q = candle_nn_log_softmax(&model.train_logits(&tensor(adv)?)?)?;
            let kl = (log_p.exp()? * (log_p - log_q)?)?.sum(1)?.mean_all()?;
            Ok((natural + (kl * beta as f64)?)?)
        }
    }
}

/// Adam with decoupled weight decay, over explicit gradients (so per-sample hooks can supply their own).
struct Adam {
    lr: f64,
    weight_decay: f64,
    t: i32,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
}

impl Adam {
    const B1: f64 = 0.9;
    const B2: f64 = 0.999;
    const EPS: f64 = 1e-8;

    fn new(vars: &[Var], lr: f64, weight_decay: f64) -> Result<Self, Error> {
        let zeros = || {
            vars.iter()
                .map(|v| v.as_tensor().zeros_like())
                .collect::<Result<Vec<_>, _>>()
        };
        Ok(Adam {
            lr,
            weight_decay,
            t: 0,
            m: zeros()?,
            v: zeros()?,
        })
    }

    fn step(&mut self, vars: &[Var], grads: &[Tensor]) -> Result<(), Error> {
        self.t += 1;
        let (c1, c2) = (1.0 - Self::B1.powi(self.t), 1.0 - Self::B2.powi(self.t));
        for (i, (var, g)) in vars.iter().zip(grads).enumerate() {
            let g = g.detach();
            self.m[i] = ((&self.m[i] * Self::B1)? + (&g * (1.0 - Self::B1))?)?;
            self.v[i] = ((&self.v[i] * Self::B2)? + (g.sqr()? * (1.0 - Self::B2))?)?;
            let update = ((&self.m[i] / c1)? / ((&self.v[i] / c2)?.sqrt()? + Self::EPS)?)?;
            let mut w = var.as_tensor().detach();
            if self.weight_decay > 0.0 {
                w = (&w * (1.0 - self.lr * self.weight_decay))?;
            }
            var.set(&(w - (update * self.lr)?)?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::native::{Arch, NativeModel};
    use crate::synthetic::blobs;

    /// Per-sample gradients, averaged: the same step as the batch gradient.
    struct PerSampleMean;

    impl TrainHooks for PerSampleMean {
        fn per_sample_gradients(&self) -> bool {
            true
        }
    }

    /// Per-sample gradients clipped to norm 0: the extreme of a clipping hook.
    struct ClipToZero(usize);

    impl TrainHooks for ClipToZero {
        fn per_sample_gradients(&self) -> bool {
            true
        }
        fn aggregate(&mut self, per_sample: Vec<Vec<Tensor>>) -> Result<Vec<Tensor>, Error> {
            self.0 += per_sample.len();
            mean_gradients(per_sample)?
                .into_iter()
                .map(|g| Ok(g.zeros_like()?))
                .collect()
        }
    }

    fn weights(m: &NativeModel) -> Vec<f32> {
        m.vars()
            .iter()
            .flat_map(|v| {
                v.as_tensor()
                    .flatten_all()
                    .unwrap()
                    .to_vec1::<f32>()
                    .unwrap()
            })
            .collect()
    }

    #[test]
    fn per_sample_gradients_reach_the_hook_and_drive_the_step() {
        let (x, y) = blobs(64, 4, 0.15, 0.1, 1);
        let cfg = TrainConfig {
            epochs: 2,
            batch_size: 16,
            lr: 1e-2,
            ..Default::default()
        };
        let batched = NativeModel::new(Arch::Mlp(vec![5]), 4, 2, 3).unwrap();
        let per_sample = NativeModel::new(Arch::Mlp(vec![5]), 4, 2, 3).unwrap();
        train(&batched, &x, &y, &cfg, &mut NoHooks).unwrap();
        train(&per_sample, &x, &y, &cfg, &mut PerSampleMean).unwrap();
        let diff = weights(&batched)
            .iter()
            .zip(weights(&per_sample))
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(
            diff < 1e-4,
            "mean of per-sample gradients differs from the batch step by {diff}"
        );

        // What the hook returns is what the optimiser applies: zero gradients leave the weights untouched.
        let clipped = NativeModel::new(Arch::Mlp(vec![5]), 4, 2, 3).unwrap();
        let start = weights(&clipped);
        let mut hook = ClipToZero(0);
        train(
            &clipped,
            &x,
            &y,
            &TrainConfig {
                lr: 1e-2,
                ..cfg.clone()
            },
            &mut hook,
        )
        .unwrap();
        assert_eq!(
            hook.0,
            2 * 64,
            "every sample's gradient reaches the hook once per epoch"
        );
        assert_eq!(weights(&clipped), start);
        assert_ne!(weights(&batched), start);
    }
}
