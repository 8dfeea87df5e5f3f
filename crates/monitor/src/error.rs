//! Errors of the monitoring statistics.

use std::path::PathBuf;

/// What can go wrong computing a statistic or comparing two datasets.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A statistic needs more data than it was given (e.g. Shapiro–Wilk needs at least 3 values).
    #[error("{what}: needs at least {needed} values, got {got}")]
    TooFewValues {
        /// Which statistic.
        what: &'static str,
        /// The minimum.
        needed: usize,
        /// What was given.
        got: usize,
    },
    /// Input that no statistic can take (NaN where none is allowed, mismatched lengths, bad parameters).
    #[error("{0}")]
    Invalid(String),
    /// The reference and current data do not describe the same columns.
    #[error("{reference} and {current} do not match: {reason}")]
    Mismatch {
        /// The reference data.
        reference: PathBuf,
        /// The current data.
        current: PathBuf,
        /// What differs.
        reason: String,
    },
    /// Saved detector state that cannot be read back.
    #[error("detector state: {0}")]
    State(String),
}
