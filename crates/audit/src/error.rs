//! Errors of the audit: each names what was wrong with the data or the options, so the CLI can print it as is.

/// Why an audit could not run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The data has no label column but the check needs labels.
    #[error("{dataset}: the audit needs a label column (name it with --label)")]
    NoLabels {
        /// The dataset.
        dataset: String,
    },
    /// Too few rows (or too few rows per class) for the check.
    #[error("{dataset}: {what}")]
    TooFewRows {
        /// The dataset.
        dataset: String,
        /// What was too small.
        what: String,
    },
    /// The reference dataset does not match the audited one.
    #[error("reference {reference}: {what}")]
    ReferenceMismatch {
        /// The reference dataset.
        reference: String,
        /// What differs.
        what: String,
    },
    /// An option is out of range.
    #[error("invalid option: {0}")]
    InvalidOption(String),
}
