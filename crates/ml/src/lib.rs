//! The models Aegis runs, behind one [`Model`] trait.
//!
//! Backends: a user's ONNX network evaluated by candle with differentiable ops ([`onnx`]), so attacks get exact
//! input gradients; native trainable networks ([`native`]: logistic regression, MLP, small CNN) with a training
//! loop that takes hooks ([`train`]) and export back to ONNX ([`export`]). Gradients of any loss with respect to
//! the input come from [`grad`]. Every op we differentiate through is checked against finite differences in
//! the tests, because candle 0.11's own max-pool backward is wrong (see [`ops::max_pool2d`]).

#![forbid(unsafe_code)]

mod error;
pub mod export;
pub mod grad;
pub mod http;
mod model;
pub mod native;
pub mod onnx;
pub mod ops;
pub mod output_policy;
pub mod rng;
pub mod synthetic;
pub mod tract;
pub mod train;

pub use error::Error;
pub use grad::{input_gradient, Gradient, Loss};
pub use model::{
    accuracy, argmax_rows, gather_rows, predict, predict_proba_batched, Differentiable, Model,
};

/// Load an ONNX file with the best backend that can run it: candle (exact gradients) when every operator is
/// supported, else tract as a black box. The error names both backends' reasons when neither can.
pub fn load_onnx(path: &std::path::Path) -> Result<Box<dyn Model>, Error> {
    match onnx::OnnxModel::load(path) {
        Ok(m) => Ok(Box::new(m)),
        Err(Error::Load {
            reason: candle_reason,
            ..
        }) => match tract::TractModel::load(path) {
            Ok(m) => Ok(Box::new(m)),
            Err(Error::Load { reason, .. }) => Err(Error::Load {
                path: path.to_path_buf(),
                reason: format!("{candle_reason}; tract: {reason}"),
            }),
            Err(e) => Err(e),
        },
        Err(e) => Err(e),
    }
}
