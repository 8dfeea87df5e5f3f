//! Output hardening: what a model's answer reveals. (Stub: signatures fixed, bodies being written.)

use serde::{Deserialize, Serialize};

/// How a probability vector is reduced before a client sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(tag = "policy", rename_all = "kebab-case", deny_unknown_fields)]
pub enum OutputPolicy {
    /// The full probability vector.
    #[default]
    Full,
    /// Only the top label (one-hot).
    LabelOnly,
    /// The k most likely classes keep their probabilities, the rest 0.
    TopK {
        /// How many classes.
        k: usize,
    },
    /// Probabilities rounded to `decimals` places.
    Round {
        /// Decimal places.
        decimals: u32,
    },
    /// Reverse-sigmoid perturbation (Lee et al., 2019), top label kept.
    ReverseSigmoid {
        /// Perturbation strength β.
        beta: f32,
        /// Sigmoid steepness γ.
        gamma: f32,
    },
}

impl OutputPolicy {
    /// Parse the CLI form: `full`, `label`, `top-k:K`, `round:D`, `reverse-sigmoid:BETA:GAMMA`.
    pub fn parse(text: &str) -> Result<Self, String> {
        match text {
            "full" => Ok(OutputPolicy::Full),
            _ => Err(format!("unknown output policy `{text}`")),
        }
    }

    /// Apply to `n_classes`-wide rows of probabilities (row-major); returns the rows the client sees.
    pub fn apply(&self, probabilities: &[f32], n_classes: usize) -> Vec<f32> {
        let _ = n_classes;
        probabilities.to_vec()
    }
}
