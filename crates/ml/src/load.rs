//! How an ONNX file is run: one forward engine for every model, gradients only where they are checked.
//!
//! The file is decoded once (by `aegis-formats`). tract runs the forward pass of every model the project
//! accepts, scikit-learn's `ai.onnx.ml` operators included. When every operator of the graph is on the
//! gradient-checked list ([`crate::graph::DIFFERENTIABLE_OPS`]), our own evaluator is built too and must agree
//! with tract on probe rows before its gradients are used; otherwise the model is a black box and the reason
//! is part of its description, so every report names it. A graph tract cannot run but the evaluator can (a
//! double-precision input, say) is run by the evaluator alone.

use std::fmt;
use std::path::{Path, PathBuf};

use aegis_formats::onnx::proto::ModelProto;

use crate::onnx::{self, OnnxModel};
use crate::onnx_file;
use crate::tract::TractModel;
use crate::{Differentiable, Error, Model};

/// Largest difference in any class probability between the two engines on the probe rows.
const AGREEMENT: f32 = 1e-4;

/// An ONNX model: tract's forward pass, with checked gradients when the graph allows them.
pub struct OnnxFile {
    path: PathBuf,
    forward: TractModel,
    gradients: Option<OnnxModel>,
    black_box: Option<String>,
}

impl fmt::Debug for OnnxFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OnnxFile")
            .field("path", &self.path)
            .field("differentiable", &self.gradients.is_some())
            .field("black_box", &self.black_box)
            .finish()
    }
}

impl OnnxFile {
    /// Why the model gives no gradients, when it does not.
    pub fn black_box_reason(&self) -> Option<&str> {
        self.black_box.as_deref()
    }
}

impl Model for OnnxFile {
    fn n_features(&self) -> usize {
        self.forward.n_features()
    }

    fn n_classes(&self) -> usize {
        self.forward.n_classes()
    }

    fn predict_proba(&self, x: &[f32], n: usize) -> Result<Vec<f32>, Error> {
        self.forward.predict_proba(x, n)
    }

    fn describe(&self) -> String {
        let reading = self
            .forward
            .reading()
            .map(|how| format!("; one output column read as two classes: {how}"))
            .unwrap_or_default();
        match &self.black_box {
            None => format!("onnx (gradient-checked{reading}) {}", self.path.display()),
            Some(why) => format!("onnx (black-box: {why}{reading}) {}", self.path.display()),
        }
    }

    fn as_differentiable(&self) -> Option<&dyn Differentiable> {
        self.gradients.as_ref().map(|g| g as &dyn Differentiable)
    }
}

/// Load an ONNX file (see the module documentation for which engine does what).
pub fn load_onnx(path: &Path) -> Result<Box<dyn Model>, Error> {
    load_onnx_bytes(&onnx_file::read_model_file(path)?, path)
}

/// Load ONNX bytes; `path` names the model in errors and reports. A panic in either engine becomes an error.
pub fn load_onnx_bytes(bytes: &[u8], path: &Path) -> Result<Box<dyn Model>, Error> {
    let proto = onnx_file::decode_model(bytes, path)?;
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| from_proto(proto, path)))
        .unwrap_or_else(|_| {
            Err(onnx_file::load_err(
                path,
                "the ONNX engine failed on this graph (invalid shapes or attributes)".into(),
            ))
        })
}

fn from_proto(proto: ModelProto, path: &Path) -> Result<Box<dyn Model>, Error> {
    let forward = TractModel::from_proto(&proto, path);
    let gradients = OnnxModel::from_proto(proto, path);
    match (forward, gradients) {
        (Ok(forward), Ok(gradients)) => {
            let (gradients, black_box) = match disagreement(&forward, &gradients)? {
                None => (Some(gradients), None),
                Some(why) => (None, Some(why)),
            };
            Ok(Box::new(OnnxFile {
                path: path.to_path_buf(),
                forward,
                gradients,
                black_box,
            }))
        }
        (Ok(forward), Err(e)) => Ok(Box::new(OnnxFile {
            path: path.to_path_buf(),
            forward,
            gradients: None,
            black_box: Some(reason(e)),
        })),
        (Err(_), Ok(gradients)) => Ok(Box::new(gradients)),
        (Err(forward), Err(gradients)) => Err(onnx_file::load_err(
            path,
            format!("{}; gradients: {}", reason(forward), reason(gradients)),
        )),
    }
}

fn reason(e: Error) -> String {
    match e {
        Error::Load { reason, .. } => reason,
        other => other.to_string(),
    }
}

/// `None` when the two engines agree on the probe rows, else why they do not.
fn disagreement(forward: &TractModel, gradients: &OnnxModel) -> Result<Option<String>, Error> {
    if forward.n_features() != gradients.n_features()
        || forward.n_classes() != gradients.n_classes()
    {
        return Ok(Some(format!(
            "the gradient evaluator sees {}→{} where the forward engine sees {}→{}",
            gradients.n_features(),
            gradients.n_classes(),
            forward.n_features(),
            forward.n_classes()
        )));
    }
    let d = forward.n_features();
    let rows = probe_rows(d);
    let n = rows.len() / d;
    let a = match forward.predict_proba(&rows, n) {
        Ok(a) => a,
        Err(e) => {
            return Ok(Some(format!(
                "the forward engine failed on the probe rows: {e}"
            )))
        }
    };
    let b = match gradients.predict_proba(&rows, n) {
        Ok(b) => b,
        Err(e) => return Ok(Some(format!("the gradient evaluator failed: {e}"))),
    };
    let worst = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(
            0.0f32,
            |m, v| if v.is_nan() { f32::INFINITY } else { m.max(v) },
        );
    Ok((worst > AGREEMENT).then(|| {
        format!(
            "the gradient evaluator differs from the forward engine by {worst:.2e} on probe rows"
        )
    }))
}

/// Sixteen probe rows: the evaluator's own four (zeros, ones, halves, a fixed row in [0, 1)), a row of -1
/// and a fixed pseudo-random spread over [-3, 3].
fn probe_rows(d: usize) -> Vec<f32> {
    let mut rows = onnx::probe_rows(d);
    rows.extend(std::iter::repeat_n(-1.0, d));
    let mut rng = crate::rng::Rng::new(0x5eed);
    rows.extend((0..11 * d).map(|_| rng.range(-3.0, 3.0)));
    rows
}
