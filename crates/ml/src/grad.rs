//! Input gradients of a loss over a differentiable model's logits.
//!
//! Attacks need ∂loss/∂x for a whole batch at once. Each loss here is a sum of per-row losses, so the
//! gradient of the sum with respect to the input batch is exactly the per-row gradient stacked: one backward
//! pass serves the whole batch.

use candle_core::{DType, Device, Tensor, Var};

use crate::error::check_shape;
use crate::{Differentiable, Error};

/// The loss whose input gradient an attack follows (all are maximised by an untargeted attack).
#[derive(Debug, Clone, PartialEq)]
pub enum Loss {
    /// Cross-entropy with the true class.
    CrossEntropy(Vec<u32>),
    /// Carlini–Wagner margin: best other logit minus the true logit.
    Margin(Vec<u32>),
    /// Targeted difference-of-logits-ratio (Croce & Hein 2020):
    /// `-(z_y - z_t) / (z_π1 - (z_π3 + z_π4)/2)`, with `(labels, targets)`.
    TargetedDlr(Vec<u32>, Vec<u32>),
    /// KL divergence from fixed reference probabilities (TRADES' robustness term).
    Kl(Vec<f32>),
}

impl Loss {
    fn rows(&self, k: usize) -> usize {
        match self {
            Loss::CrossEntropy(y) | Loss::Margin(y) | Loss::TargetedDlr(y, _) => y.len(),
            Loss::Kl(p) => p.len() / k.max(1),
        }
    }

    /// The per-row loss of `logits` (shape `(n, k)`), as a tensor of shape `(n,)`.
    pub fn per_row(&self, logits: &Tensor) -> Result<Tensor, Error> {
        let (n, k) = logits.dims2()?;
        let dev = logits.device();
        Ok(match self {
            Loss::CrossEntropy(y) => {
                let log_p = candle_nn_log_softmax(logits)?;
                let idx = Tensor::from_vec(y.clone(), (n, 1), dev)?;
                log_p.gather(&idx, 1)?.squeeze(1)?.neg()?
            }
            Loss::Margin(y) => {
                let idx = Tensor::from_vec(y.clone(), (n, 1), dev)?;
                let true_logit = logits.gather(&idx, 1)?;
                let mask = one_hot(y, k, dev)?;
                let others = (logits - (&mask * 1e9)?)?;
                (others.max_keepdim(1)? - true_logit)?.squeeze(1)?
            }
            Loss::TargetedDlr(y, t) => {
                let zy = logits.gather(&Tensor::from_vec(y.clone(), (n, 1), dev)?, 1)?;
                let zt = logits.gather(&Tensor::from_vec(t.clone(), (n, 1), dev)?, 1)?;
                let sorted = logits.detach().to_vec2::<f32>()?;
                let denom: Vec<f32> = sorted
                    .iter()
                    .map(|row| {
                        let mut r = row.clone();
                        r.sort_by(|a, b| b.total_cmp(a));
                        let third = r.get(2).copied().unwrap_or(r[r.len() - 1]);
                        let fourth = r.get(3).copied().unwrap_or(third);
                        (r[0] - (third + fourth) / 2.0).max(1e-12)
                    })
                    .collect();
                let denom = Tensor::from_vec(denom, (n, 1), dev)?;
                ((zt - zy)?.broadcast_div(&denom))?.squeeze(1)?
            }
            Loss::Kl(reference) => {
                let p = Tensor::from_vec(reference.clone(), (n, k), dev)?;
                let log_q = candle_nn_log_softmax(logits)?;
                let log_p = p.clamp(1e-12, 1.0)?.log()?;
                (&p * (log_p - log_q)?)?.sum(1)?
            }
        })
    }
}

/// log-softmax along the class axis, from primitive differentiable ops.
pub(crate) fn candle_nn_log_softmax(logits: &Tensor) -> Result<Tensor, Error> {
    let max = logits.max_keepdim(1)?.detach();
    let shifted = logits.broadcast_sub(&max)?;
    let lse = shifted.exp()?.sum_keepdim(1)?.log()?;
    Ok(shifted.broadcast_sub(&lse)?)
}

fn one_hot(y: &[u32], k: usize, dev: &Device) -> Result<Tensor, Error> {
    let mut v = vec![0f32; y.len() * k];
    for (i, &c) in y.iter().enumerate() {
        if (c as usize) < k {
            v[i * k + c as usize] = 1.0;
        }
    }
    Ok(Tensor::from_vec(v, (y.len(), k), dev)?)
}

/// What one backward pass gives: per-row loss, the input gradient, and the logits at the input.
#[derive(Debug, Clone, PartialEq)]
pub struct Gradient {
    /// Loss per row.
    pub loss: Vec<f32>,
    /// ∂loss/∂x, row-major like the input.
    pub grad: Vec<f32>,
    /// Logits per row (`n * n_classes`), so a caller knows the prediction at this point for free.
    pub logits: Vec<f32>,
}

/// The per-row loss, its gradient with respect to each input row, and the logits, for `n` rows of `x`.
pub fn input_gradient(
    model: &dyn Differentiable,
    x: &[f32],
    n: usize,
    loss: &Loss,
) -> Result<Gradient, Error> {
    let d = model.n_features();
    check_shape(x, n, d)?;
    if loss.rows(model.n_classes()) != n {
        return Err(Error::Eval(format!(
            "loss is for {} rows, input has {n}",
            loss.rows(model.n_classes())
        )));
    }
    let var = Var::from_tensor(&Tensor::from_slice(x, (n, d), &Device::Cpu)?)?;
    let logits = model.logits(var.as_tensor())?.to_dtype(DType::F32)?;
    let per_row = loss.per_row(&logits)?;
    let grads = per_row.sum_all()?.backward()?;
    let grad = match grads.get(var.as_tensor()) {
        Some(g) => g.flatten_all()?.to_vec1::<f32>()?,
        // The output does not depend on the input at all: the gradient is zero.
        None => vec![0.0; n * d],
    };
    Ok(Gradient {
        loss: per_row.to_vec1::<f32>()?,
        grad,
        logits: logits.flatten_all()?.to_vec1::<f32>()?,
    })
}

/// Softmax of a `(n, k)` logits tensor, as a flat vector.
pub fn softmax_rows(logits: &Tensor) -> Result<Vec<f32>, Error> {
    Ok(candle_nn_log_softmax(logits)?
        .exp()?
        .flatten_all()?
        .to_vec1::<f32>()?)
}
