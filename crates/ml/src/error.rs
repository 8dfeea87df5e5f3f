//! Errors of the ml crate: each names the model or operation it concerns.

use std::path::PathBuf;

/// What can go wrong loading, running or training a model.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The model file could not be read.
    #[error("cannot read model {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The model file is not a model we can run.
    #[error("cannot load model {path}: {reason}")]
    Load {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Input of the wrong shape.
    #[error("input has {got} values, expected {rows} rows of {features} features")]
    Shape {
        /// Values given.
        got: usize,
        /// Rows asked for.
        rows: usize,
        /// Features per row.
        features: usize,
    },
    /// The model failed while running.
    #[error("model evaluation failed: {0}")]
    Eval(String),
    /// Training was asked for something that cannot work.
    #[error("training: {0}")]
    Train(String),
    /// Export to ONNX failed.
    #[error("cannot write ONNX to {path}: {reason}")]
    Export {
        /// The output file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

impl From<candle_core::Error> for Error {
    fn from(e: candle_core::Error) -> Self {
        Error::Eval(e.to_string())
    }
}

/// Check that `x` holds `n` rows of `d` features.
pub(crate) fn check_shape(x: &[f32], n: usize, d: usize) -> Result<(), Error> {
    if x.len() != n * d {
        return Err(Error::Shape {
            got: x.len(),
            rows: n,
            features: d,
        });
    }
    Ok(())
}
