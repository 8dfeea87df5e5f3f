//! TODO: allow-list policy (being written).

use std::collections::BTreeSet;

/// Allow-list policy.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    extra: BTreeSet<String>,
}

/// A policy file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// Bad TOML.
    #[error("{path}: {detail}")]
    Invalid {
        /// File.
        path: String,
        /// What.
        detail: String,
    },
}

impl Policy {
    /// Allow one more global.
    pub fn allow(&mut self, pattern: &str) {
        self.extra.insert(pattern.to_owned());
    }
}
