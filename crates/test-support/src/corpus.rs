//! The labelled corpus: every format module's malicious samples and benign twins.

use crate::Case;

/// Every case of every format, in a stable order.
pub fn all() -> Vec<Case> {
    let mut cases = Vec::new();
    cases.extend(crate::pickle::corpus());
    cases.extend(crate::zip::corpus());
    cases.extend(crate::tar::corpus());
    cases.extend(crate::safetensors::corpus());
    cases.extend(crate::gguf::corpus());
    cases.extend(crate::npy::corpus());
    cases.extend(crate::onnx::corpus());
    cases.extend(crate::keras::corpus());
    cases.extend(crate::hdf5::corpus());
    cases.extend(crate::savedmodel::corpus());
    cases.extend(crate::evasion::corpus());
    cases.extend(crate::loaders::corpus());
    cases
}
