//! Native trainable networks: logistic regression, a multi-layer perceptron and a small CNN, built from
//! candle tensors whose parameters we own.
//!
//! Parameters are plain [`Var`]s with PyTorch's default initialisation (uniform ±1/√fan_in) drawn from our
//! seeded generator, so a training run is reproducible from its seed and the weights can be written to ONNX
//! by [`crate::export`] without a framework in between. The CNN pools with our own [`ops::max_pool2d`]
//! because candle's backward for it is wrong.

use std::fmt;
use std::str::FromStr;

use candle_core::{DType, Device, Tensor, Var};

use crate::error::check_shape;
use crate::rng::Rng;
use crate::{ops, Differentiable, Error, Model};

/// The architecture of a native network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arch {
    /// Softmax regression: one linear layer.
    LogReg,
    /// Fully connected layers with ReLU between them; the hidden widths in order.
    Mlp(Vec<usize>),
    /// conv 3×3 (padding 1) → ReLU → 2×2 max-pool → dense (ReLU) → dense, over `channels×height×width` inputs.
    Cnn {
        /// Input channels.
        channels: usize,
        /// Input height.
        height: usize,
        /// Input width.
        width: usize,
        /// Convolution filters.
        filters: usize,
        /// Width of the hidden dense layer.
        hidden: usize,
    },
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Arch::LogReg => f.write_str("logreg"),
            Arch::Mlp(h) => {
                let widths: Vec<String> = h.iter().map(|w| w.to_string()).collect();
                write!(f, "mlp:{}", widths.join(","))
            }
            Arch::Cnn {
                channels,
                height,
                width,
                filters,
                hidden,
            } => {
                write!(f, "cnn:{channels}x{height}x{width}:{filters}:{hidden}")
            }
        }
    }
}

impl FromStr for Arch {
    type Err = String;

    /// `logreg`, `mlp:64,32`, `cnn:1x8x8:16:64` (channels×height×width : filters : hidden).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |why: &str| {
            format!(
                "invalid architecture {s:?}: {why} (expected logreg, mlp:64,32 or cnn:1x8x8:16:64)"
            )
        };
        let num = |t: &str| {
            t.trim()
                .parse::<usize>()
                .ok()
                .filter(|&v| v > 0 && v <= 1 << 16)
        };
        if s == "logreg" {
            return Ok(Arch::LogReg);
        }
        if let Some(rest) = s.strip_prefix("mlp:") {
            let widths: Option<Vec<usize>> = rest.split(',').map(num).collect();
            return widths
                .filter(|w| !w.is_empty() && w.len() <= 16)
                .map(Arch::Mlp)
                .ok_or_else(|| bad("widths must be positive integers"));
        }
        if let Some(rest) = s.strip_prefix("cnn:") {
            let parts: Vec<&str> = rest.split(':').collect();
            let dims: Option<Vec<usize>> = parts
                .first()
                .map(|d| d.split('x').map(num).collect())
                .unwrap_or(None);
            return match (
                dims.as_deref(),
                parts.get(1).and_then(|v| num(v)),
                parts.get(2).and_then(|v| num(v)),
            ) {
                (Some(&[channels, height, width]), Some(filters), Some(hidden))
                    if height >= 2 && width >= 2 =>
                {
                    Ok(Arch::Cnn {
                        channels,
                        height,
                        width,
                        filters,
                        hidden,
                    })
                }
                _ => Err(bad("cnn needs CxHxW:filters:hidden with H, W >= 2")),
            };
        }
        Err(bad("unknown kind"))
    }
}

/// A native network: its architecture and parameters.
pub struct NativeModel {
    arch: Arch,
    n_features: usize,
    n_classes: usize,
    /// Named parameters in a fixed order: `fcN.weight` `(out, in)`, `fcN.bias`, `conv.weight`, `conv.bias`.
    params: Vec<(String, Var)>,
}

impl fmt::Debug for NativeModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NativeModel")
            .field("arch", &self.arch.to_string())
            .field("n_features", &self.n_features)
            .field("n_classes", &self.n_classes)
            .finish()
    }
}

impl NativeModel {
    /// A freshly initialised network for `n_features` inputs and `n_classes` outputs.
    pub fn new(arch: Arch, n_features: usize, n_classes: usize, seed: u64) -> Result<Self, Error> {
        if n_features == 0 || n_classes < 2 {
            return Err(Error::Train(format!(
                "need at least one feature and two classes, got {n_features} and {n_classes}"
            )));
        }
        let mut rng = Rng::new(seed);
        let mut params = Vec::new();
        let dense_in = match &arch {
            Arch::Cnn {
                channels,
                height,
                width,
                filters,
                ..
            } => {
                if channels * height * width != n_features {
                    return Err(Error::Train(format!(
                        "{arch} expects {} features, the data has {n_features}",
                        channels * height * width
                    )));
                }
                let fan_in = channels * 9;
                params.push((
                    "conv.weight".to_string(),
                    uniform(&mut rng, &[*filters, *channels, 3, 3], fan_in)?,
                ));
                params.push((
                    "conv.bias".to_string(),
                    uniform(&mut rng, &[*filters], fan_in)?,
                ));
                filters * (height / 2) * (width / 2)
            }
            _ => n_features,
        };
        let widths: Vec<usize> = match &arch {
            Arch::LogReg => vec![],
            Arch::Mlp(h) => h.clone(),
            Arch::Cnn { hidden, .. } => vec![*hidden],
        };
        let mut fan_in = dense_in;
        for (i, &out) in widths.iter().chain(std::iter::once(&n_classes)).enumerate() {
            params.push((
                format!("fc{i}.weight"),
                uniform(&mut rng, &[out, fan_in], fan_in)?,
            ));
            params.push((format!("fc{i}.bias"), uniform(&mut rng, &[out], fan_in)?));
            fan_in = out;
        }
        Ok(NativeModel {
            arch,
            n_features,
            n_classes,
            params,
        })
    }

    /// The architecture.
    pub fn arch(&self) -> &Arch {
        &self.arch
    }

    /// The trainable parameters, in a fixed order.
    pub fn vars(&self) -> Vec<Var> {
        self.params.iter().map(|(_, v)| v.clone()).collect()
    }

    /// Named parameters (for export).
    pub fn named_params(&self) -> &[(String, Var)] {
        &self.params
    }

    fn dense_layers(&self) -> impl Iterator<Item = (&Var, &Var)> {
        let dense: Vec<&(String, Var)> = self
            .params
            .iter()
            .filter(|(n, _)| n.starts_with("fc"))
            .collect();
        dense
            .chunks(2)
            .map(|c| (&c[0].1, &c[1].1))
            .collect::<Vec<_>>()
            .into_iter()
    }

    /// Logits with the weights in autograd, for training.
    pub(crate) fn forward_tracked(&self, x: &Tensor) -> Result<Tensor, Error> {
        let x = if x.dtype() == DType::F32 {
            x.clone()
        } else {
            x.to_dtype(DType::F32)?
        };
        self.forward(&x, true)
    }

    /// Logits; with `track` the weights take part in autograd (training), without it only the input does
    /// (attacks: no weight gradients are computed).
    fn forward(&self, x: &Tensor, track: bool) -> Result<Tensor, Error> {
        let w = |v: &Var| {
            if track {
                v.as_tensor().clone()
            } else {
                v.as_tensor().detach()
            }
        };
        let mut h = match &self.arch {
            Arch::Cnn {
                channels,
                height,
                width,
                ..
            } => {
                let n = x.dim(0)?;
                let img = x.reshape((n, *channels, *height, *width))?;
                let (cw, cb) = (&self.params[0].1, &self.params[1].1);
                let conv = img
                    .conv2d(&w(cw), 1, 1, 1, 1)?
                    .broadcast_add(&w(cb).reshape((1, (), 1, 1))?)?;
                ops::max_pool2d(&conv.relu()?, 2)?.flatten_from(1)?
            }
            _ => x.clone(),
        };
        let layers: Vec<_> = self.dense_layers().collect();
        for (i, (lw, lb)) in layers.iter().enumerate() {
            h = h.matmul(&w(lw).t()?)?.broadcast_add(&w(lb))?;
            if i + 1 < layers.len() {
                h = h.relu()?;
            }
        }
        Ok(h)
    }
}

/// Uniform(−1/√fan_in, 1/√fan_in), PyTorch's default for linear and conv layers.
fn uniform(rng: &mut Rng, shape: &[usize], fan_in: usize) -> Result<Var, Error> {
    let bound = 1.0 / (fan_in.max(1) as f32).sqrt();
    let n: usize = shape.iter().product();
    let values: Vec<f32> = (0..n).map(|_| rng.range(-bound, bound)).collect();
    Ok(Var::from_tensor(&Tensor::from_vec(
        values,
        shape,
        &Device::Cpu,
    )?)?)
}

impl Model for NativeModel {
    fn n_features(&self) -> usize {
        self.n_features
    }

    fn n_classes(&self) -> usize {
        self.n_classes
    }

    fn predict_proba(&self, x: &[f32], n: usize) -> Result<Vec<f32>, Error> {
        check_shape(x, n, self.n_features)?;
        if n == 0 {
            return Ok(Vec::new());
        }
        let t = Tensor::from_slice(x, (n, self.n_features), &Device::Cpu)?;
        crate::grad::softmax_rows(&self.forward(&t, false)?)
    }

    fn describe(&self) -> String {
        format!("native {}", self.arch)
    }

    fn as_differentiable(&self) -> Option<&dyn Differentiable> {
        Some(self)
    }
}

impl Differentiable for NativeModel {
    fn logits(&self, x: &Tensor) -> Result<Tensor, Error> {
        let x = if x.dtype() == DType::F32 {
            x.clone()
        } else {
            x.to_dtype(DType::F32)?
        };
        self.forward(&x, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn architectures_parse_and_print_back() {
        for s in ["logreg", "mlp:64,32", "cnn:1x8x8:16:64"] {
            assert_eq!(s.parse::<Arch>().unwrap().to_string(), s);
        }
        for bad in ["mlp:", "mlp:0", "cnn:1x8:4:4", "rnn", "mlp:a"] {
            assert!(bad.parse::<Arch>().is_err(), "{bad} parsed");
        }
    }

    #[test]
    fn shapes_and_probabilities() {
        for (arch, d) in [
            (Arch::LogReg, 5),
            (Arch::Mlp(vec![7, 4]), 5),
            ("cnn:1x6x6:3:8".parse().unwrap(), 36),
        ] {
            let m = NativeModel::new(arch, d, 3, 1).unwrap();
            let x: Vec<f32> = (0..4 * d).map(|i| (i % 7) as f32 / 7.0).collect();
            let p = m.predict_proba(&x, 4).unwrap();
            assert_eq!(p.len(), 12);
            for row in p.chunks(3) {
                assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5);
            }
            assert!(m.predict_proba(&x[1..], 4).is_err());
        }
        assert!(NativeModel::new("cnn:1x6x6:3:8".parse().unwrap(), 35, 3, 1).is_err());
    }

    #[test]
    fn same_seed_same_weights() {
        let a = NativeModel::new(Arch::Mlp(vec![4]), 3, 2, 9).unwrap();
        let b = NativeModel::new(Arch::Mlp(vec![4]), 3, 2, 9).unwrap();
        let c = NativeModel::new(Arch::Mlp(vec![4]), 3, 2, 10).unwrap();
        let x = [0.1f32, 0.2, 0.3];
        assert_eq!(
            a.predict_proba(&x, 1).unwrap(),
            b.predict_proba(&x, 1).unwrap()
        );
        assert_ne!(
            a.predict_proba(&x, 1).unwrap(),
            c.predict_proba(&x, 1).unwrap()
        );
    }

    #[test]
    fn input_gradients_of_each_architecture_match_finite_differences() {
        for (arch, d) in [
            (Arch::LogReg, 4),
            (Arch::Mlp(vec![6, 5]), 4),
            ("cnn:2x4x4:3:5".parse().unwrap(), 32),
        ] {
            let m = NativeModel::new(arch.clone(), d, 3, 3).unwrap();
            let x: Vec<f64> = (0..2 * d)
                .map(|i| ((i * 37 % 23) as f64) / 23.0 - 0.4)
                .collect();
            // Check in f64: cast the parameters, run the same forward.
            let m64 = NativeModel {
                arch: m.arch.clone(),
                n_features: d,
                n_classes: 3,
                params: m
                    .params
                    .iter()
                    .map(|(n, v)| {
                        (
                            n.clone(),
                            Var::from_tensor(&v.as_tensor().to_dtype(DType::F64).unwrap()).unwrap(),
                        )
                    })
                    .collect(),
            };
            let err = ops::gradient_check(|t| m64.forward(t, true), &x, &[2, d]).unwrap();
            assert!(err < 1e-6, "{arch}: relative error {err}");
        }
    }
}
