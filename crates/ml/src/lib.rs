//! The models Aegis runs, behind one [`Model`] trait.
//!
//! ONNX files are decoded once by `aegis-formats`; every one runs forward in tract ([`tract`]), scikit-learn's
//! `ai.onnx.ml` operators included (those tract lacks are rewritten into standard operators first). Where every
//! operator is on the gradient-checked list, our own evaluator on candle ([`graph`], [`onnx`]) gives exact
//! gradients too; [`load_onnx`] decides. Native trainable networks ([`native`]: logistic regression, MLP, small
//! CNN) train with a loop that takes hooks ([`train`]) and export back to ONNX ([`export`]). Gradients of any
//! loss with respect to the input come from [`grad`]. Every op we differentiate through is checked against
//! finite differences in the tests, because candle 0.11's own max-pool backward is wrong (see
//! [`ops::max_pool2d`]).

#![forbid(unsafe_code)]

mod error;
pub mod export;
pub mod grad;
pub mod graph;
pub mod http;
mod load;
mod ml_ops;
mod model;
pub mod native;
pub mod onnx;
mod onnx_file;
pub mod ops;
pub mod output_policy;
mod select;
pub mod sentence;
pub mod synthetic;
pub mod tract;
pub mod train;

pub use aegis_stats::rng;
pub use error::Error;
pub use grad::{input_gradient, Gradient, Loss};
pub use model::{
    accuracy, argmax_rows, gather_rows, predict, predict_proba_batched, Differentiable, Model,
};

pub use load::{load_onnx, load_onnx_bytes, OnnxFile};
pub use onnx_file::MAX_MODEL_BYTES;
