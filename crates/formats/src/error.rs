//! The one error type of the format parsers. Messages name the format, what was wrong and where.

use std::io;

/// A file could not be parsed. Callers add the path; the parser says what and where.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading failed (including an unexpected end of data).
    #[error("{format}: read failed at byte {offset}: {source}")]
    Io {
        /// Format being parsed, e.g. `zip`.
        format: &'static str,
        /// Offset of the read.
        offset: u64,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The bytes do not follow the format's specification.
    #[error("{format}: malformed at byte {offset}: {detail}")]
    Malformed {
        /// Format being parsed.
        format: &'static str,
        /// Offset of the offending structure.
        offset: u64,
        /// What is wrong.
        detail: String,
    },
    /// A size, count or depth exceeds a configured bound or the file itself.
    #[error("{format}: {what} is {value}, over the limit of {limit}")]
    Limit {
        /// Format being parsed.
        format: &'static str,
        /// What was counted, e.g. `tensor count`.
        what: &'static str,
        /// The value found.
        value: u64,
        /// The bound.
        limit: u64,
    },
}

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A [`Error::Malformed`] error.
    pub fn malformed(format: &'static str, offset: u64, detail: impl Into<String>) -> Self {
        Error::Malformed {
            format,
            offset,
            detail: detail.into(),
        }
    }

    /// An [`Error::Io`] error.
    pub fn io(format: &'static str, offset: u64, source: io::Error) -> Self {
        Error::Io {
            format,
            offset,
            source,
        }
    }

    /// A [`Error::Limit`] error.
    pub fn limit(format: &'static str, what: &'static str, value: u64, limit: u64) -> Self {
        Error::Limit {
            format,
            what,
            value,
            limit,
        }
    }

    /// Whether this error is a bound being hit (as opposed to malformed input or IO).
    pub fn is_limit(&self) -> bool {
        matches!(self, Error::Limit { .. })
    }
}
