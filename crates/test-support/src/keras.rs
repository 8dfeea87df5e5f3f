//! TODO(helper): keras writer and corpus cases.

use crate::Case;

/// Malicious and benign cases of this format.
pub fn corpus() -> Vec<Case> {
    Vec::new()
}
