//! Differentiable ops we implement ourselves, and the finite-difference gradient check every op we
//! differentiate through is tested with.
//!
//! candle 0.11's `max_pool2d` backward scales the gradient by 1/k² (it divides the upsampled gradient by
//! the average of the arg-max mask), so a CNN attacked or trained through it gets gradients k² too small, and
//! PGD's sign step hides it while everything else silently degrades. [`max_pool2d`] is built from reshape,
//! permute and `max`, whose backward is correct; the tests check both against finite differences and keep a
//! test that fails once upstream fixes its op.

use candle_core::{DType, Device, Tensor, Var};

use crate::Error;

/// 2-D max pooling with a square `k`×`k` window and stride `k` (no padding; trailing rows and columns that do
/// not fill a window are dropped, as ONNX and PyTorch do with `ceil_mode = 0`). Input `(n, c, h, w)`.
pub fn max_pool2d(x: &Tensor, k: usize) -> Result<Tensor, Error> {
    let (n, c, h, w) = x.dims4()?;
    let (oh, ow) = (h / k, w / k);
    if k == 0 || oh == 0 || ow == 0 {
        return Err(Error::Eval(format!(
            "max-pool window {k} larger than input {h}x{w}"
        )));
    }
    let x = if h != oh * k || w != ow * k {
        x.narrow(2, 0, oh * k)?.narrow(3, 0, ow * k)?
    } else {
        x.clone()
    };
    let windows = x
        .reshape((n, c, oh, k, ow, k))?
        .permute((0, 1, 2, 4, 3, 5))?
        .reshape((n, c, oh, ow, k * k))?;
    Ok(windows.max(4)?)
}

/// The largest relative error between the autograd gradient of `sum(f(x))` and central finite differences,
/// computed in f64 at `x` (shape `shape`). Relative to `max(1, |g|)` so tiny gradients compare absolutely.
pub fn gradient_check<F>(f: F, x: &[f64], shape: &[usize]) -> Result<f64, Error>
where
    F: Fn(&Tensor) -> Result<Tensor, Error>,
{
    let dev = Device::Cpu;
    let var = Var::from_tensor(&Tensor::from_slice(x, shape, &dev)?)?;
    let out = f(var.as_tensor())?.to_dtype(DType::F64)?.sum_all()?;
    let grads = out.backward()?;
    let analytic = match grads.get(var.as_tensor()) {
        Some(g) => g.flatten_all()?.to_vec1::<f64>()?,
        None => vec![0.0; x.len()],
    };
    let h = 1e-6;
    let mut worst = 0.0f64;
    let mut probe = x.to_vec();
    for i in 0..x.len() {
        probe[i] = x[i] + h;
        let up = eval_sum(&f, &probe, shape)?;
        probe[i] = x[i] - h;
        let down = eval_sum(&f, &probe, shape)?;
        probe[i] = x[i];
        let numeric = (up - down) / (2.0 * h);
        let err = (numeric - analytic[i]).abs() / numeric.abs().max(analytic[i].abs()).max(1.0);
        worst = worst.max(err);
    }
    Ok(worst)
}

fn eval_sum<F>(f: &F, x: &[f64], shape: &[usize]) -> Result<f64, Error>
where
    F: Fn(&Tensor) -> Result<Tensor, Error>,
{
    let t = Tensor::from_slice(x, shape, &Device::Cpu)?;
    Ok(f(&t)?.to_dtype(DType::F64)?.sum_all()?.to_scalar::<f64>()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Distinct values (no ties, so max is differentiable) in a fixed pseudo-random order.
    fn sample(n: usize) -> Vec<f64> {
        (0..n)
            .map(|i| ((i * 7919 % 101) as f64) / 37.0 - 1.3)
            .collect()
    }

    fn weighted(t: &Tensor) -> Result<Tensor, Error> {
        // Weight the output so every element's gradient differs (a plain sum hides scaling bugs less well).
        let n = t.elem_count();
        let w: Vec<f64> = (0..n).map(|i| 0.5 + (i % 5) as f64 * 0.25).collect();
        Ok((t.flatten_all()? * Tensor::from_vec(w, n, t.device())?)?)
    }

    #[test]
    fn own_max_pool_matches_finite_differences() {
        for (h, w, k) in [(4, 4, 2), (5, 7, 2), (6, 6, 3)] {
            let x = sample(2 * 3 * h * w);
            let err = gradient_check(|t| weighted(&max_pool2d(t, k)?), &x, &[2, 3, h, w]).unwrap();
            assert!(err < 1e-6, "max_pool2d {h}x{w} k={k}: relative error {err}");
        }
    }

    #[test]
    fn own_max_pool_forward_matches_candle() {
        let x = Tensor::from_vec(sample(2 * 2 * 6 * 6), (2, 2, 6, 6), &Device::Cpu).unwrap();
        let ours = max_pool2d(&x, 2)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f64>()
            .unwrap();
        let theirs = x
            .max_pool2d(2)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f64>()
            .unwrap();
        assert_eq!(ours, theirs);
    }

    /// The check catches the class of bug the design notes: candle 0.11's max-pool backward is off by 1/k².
    /// When this test fails, upstream is fixed and `max_pool2d` may go back to candle's op.
    #[test]
    fn gradient_check_catches_candles_max_pool_backward() {
        let x = sample(4 * 4);
        let err = gradient_check(|t| weighted(&t.max_pool2d(2)?), &x, &[1, 1, 4, 4]).unwrap();
        assert!(
            err > 0.1,
            "candle's max_pool2d backward now passes the check (error {err}): upstream fixed?"
        );
    }

    #[test]
    fn primitive_ops_match_finite_differences() {
        let x = sample(3 * 4);
        type Op = fn(&Tensor) -> Result<Tensor, Error>;
        let cases: [(&str, Op); 6] = [
            ("relu", |t| Ok(t.relu()?)),
            ("sigmoid", |t| Ok(candle_nn::ops::sigmoid(t)?)),
            ("tanh", |t| Ok(t.tanh()?)),
            ("log_softmax", |t| crate::grad::candle_nn_log_softmax(t)),
            ("matmul+bias", |t| {
                let w = Tensor::from_vec(sample(4 * 2), (4, 2), t.device())?;
                let b = Tensor::from_vec(vec![0.1f64, -0.2], 2, t.device())?;
                Ok(t.matmul(&w)?.broadcast_add(&b)?)
            }),
            ("exp-sum-log", |t| Ok(t.exp()?.sum_keepdim(1)?.log()?)),
        ];
        for (name, op) in cases {
            let err = gradient_check(|t| weighted(&op(t)?), &x, &[3, 4]).unwrap();
            assert!(err < 1e-6, "{name}: relative error {err}");
        }
    }

    #[test]
    fn conv2d_matches_finite_differences() {
        let x = sample(2 * 5 * 5);
        let err = gradient_check(
            |t| {
                let k = Tensor::from_vec(sample(3 * 2 * 3 * 3), (3, 2, 3, 3), t.device())?;
                weighted(&t.conv2d(&k, 1, 1, 1, 1)?)
            },
            &x,
            &[1, 2, 5, 5],
        )
        .unwrap();
        assert!(err < 1e-6, "conv2d: relative error {err}");
    }
}
