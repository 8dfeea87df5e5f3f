//! Errors of an assessment: a model that fails, data that does not fit it, a request that cannot work.

/// What can go wrong in an assessment.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The model failed.
    #[error(transparent)]
    Model(#[from] aegis_ml::Error),
    /// The data does not fit the model or the request.
    #[error("{0}")]
    Invalid(String),
}
