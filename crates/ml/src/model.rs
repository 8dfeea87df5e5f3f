//! The one `Model` trait every pillar runs models through, and `Differentiable` for models whose input
//! gradients we can compute exactly.
//!
//! Inputs and outputs are flat row-major `f32` slices (`n * n_features` in, `n * n_classes` out) so attacks,
//! audits and the gateway stay plain numeric code over slices and never need to know which backend runs the
//! model. A differentiable model also exposes its logits as a candle tensor function; gradients of any loss
//! are then taken by candle's autograd in [`crate::grad`].

use candle_core::Tensor;

use crate::Error;

/// Anything Aegis can run: an ONNX file, a native network, an HTTP endpoint.
pub trait Model: Send + Sync {
    /// Number of input features per row.
    fn n_features(&self) -> usize;
    /// Number of classes in the output.
    fn n_classes(&self) -> usize;
    /// Class probabilities for `n` rows: `x.len() == n * n_features`, returns `n * n_classes` values.
    fn predict_proba(&self, x: &[f32], n: usize) -> Result<Vec<f32>, Error>;
    /// A short description for reports (`onnx-candle model.onnx`, `mlp 64-64`).
    fn describe(&self) -> String;
    /// As a differentiable model, when it is one.
    fn as_differentiable(&self) -> Option<&dyn Differentiable> {
        None
    }
}

/// A model whose logits are a differentiable function of its input.
pub trait Differentiable: Model {
    /// Logits for a `(n, n_features)` tensor, built from differentiable candle ops.
    fn logits(&self, x: &Tensor) -> Result<Tensor, Error>;
}

/// Predicted class per row (argmax of the probabilities; ties go to the lowest class).
pub fn predict(model: &dyn Model, x: &[f32], n: usize) -> Result<Vec<u32>, Error> {
    let p = model.predict_proba(x, n)?;
    Ok(argmax_rows(&p, model.n_classes()))
}

/// Argmax of each row of a row-major `(_, k)` matrix.
pub fn argmax_rows(values: &[f32], k: usize) -> Vec<u32> {
    values
        .chunks(k.max(1))
        .map(|row| {
            let mut best = 0;
            for (j, &v) in row.iter().enumerate() {
                if v > row[best] {
                    best = j;
                }
            }
            best as u32
        })
        .collect()
}

/// The rows `rows` of a row-major matrix `x` of width `width`, in that order.
pub fn gather_rows(x: &[f32], width: usize, rows: &[usize]) -> Vec<f32> {
    let mut out = Vec::with_capacity(rows.len() * width);
    for &r in rows {
        out.extend_from_slice(&x[r * width..(r + 1) * width]);
    }
    out
}

/// Predict in batches of `batch` rows, so a large table never becomes one huge tensor.
pub fn predict_proba_batched(
    model: &dyn Model,
    x: &[f32],
    n: usize,
    batch: usize,
) -> Result<Vec<f32>, Error> {
    let d = model.n_features();
    let mut out = Vec::with_capacity(n * model.n_classes());
    for start in (0..n).step_by(batch.max(1)) {
        let m = batch.max(1).min(n - start);
        out.extend(model.predict_proba(&x[start * d..(start + m) * d], m)?);
    }
    Ok(out)
}

/// Fraction of rows whose predicted class equals the label.
pub fn accuracy(model: &dyn Model, x: &[f32], labels: &[u32]) -> Result<f64, Error> {
    let n = labels.len();
    if n == 0 {
        return Ok(0.0);
    }
    let p = predict_proba_batched(model, x, n, 1024)?;
    let pred = argmax_rows(&p, model.n_classes());
    Ok(pred.iter().zip(labels).filter(|(a, b)| a == b).count() as f64 / n as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gather_rows_keeps_the_order_asked_for() {
        let x = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        assert_eq!(
            gather_rows(&x, 2, &[2, 0, 2]),
            vec![5.0, 6.0, 1.0, 2.0, 5.0, 6.0]
        );
        assert!(gather_rows(&x, 2, &[]).is_empty());
    }

    #[test]
    fn argmax_takes_lowest_on_ties() {
        assert_eq!(
            argmax_rows(&[0.2, 0.8, 0.5, 0.5, 0.9, 0.1], 2),
            vec![1, 0, 0]
        );
    }
}
