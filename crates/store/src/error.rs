//! The store's error: every variant names what was being done and, where there is one, the file or record.
//!
//! The gateway maps these onto HTTP statuses: [`Error::Invalid`] and [`Error::NotFound`] are the caller's
//! mistakes and are told to the caller; every other variant is an internal failure.

use std::path::PathBuf;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file or directory could not be read or written.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done (`read`, `create`, …).
        op: &'static str,
        /// The path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A database statement failed.
    #[error("database: {op}: {source}")]
    Db {
        /// What was being done.
        op: &'static str,
        /// The driver's error.
        source: sqlx::Error,
    },
    /// The request is wrong: what is wrong and what to do.
    #[error("{0}")]
    Invalid(String),
    /// The named asset, version, run, finding or channel does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The database holds a value this build cannot read.
    #[error("database: {0}")]
    Corrupt(String),
    /// A check could not run (its inputs are unreadable or do not fit the model).
    #[error("{0}")]
    Check(String),
    /// A notification could not be delivered.
    #[error("{0}")]
    Delivery(String),
}

/// The store's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A closure that wraps an IO error with the operation and path.
    pub(crate) fn io(
        op: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { op, path, source }
    }

    /// A closure that wraps a database error with the operation.
    pub(crate) fn db(op: &'static str) -> impl FnOnce(sqlx::Error) -> Error {
        move |source| Error::Db { op, source }
    }
}
