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
pub mod rng;
pub mod train;

pub use error::Error;
pub use grad::{input_gradient, Gradient, Loss};
pub use model::{accuracy, argmax_rows, predict, predict_proba_batched, Differentiable, Model};
