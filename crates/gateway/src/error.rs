//! The gateway's library error: every variant names the operation and, where there is one, the file.
//!
//! These errors are for operators (CLI output, server logs). What an HTTP client sees is an
//! [`crate::http_error::ApiError`], chosen by variant: the caller's own mistakes ([`Error::Invalid`],
//! [`Error::NotFound`], [`Error::Denied`]) are told to the caller with their text; every other variant is an
//! internal failure, a 500 whose text only the server log sees.

use std::path::PathBuf;

/// Why a gateway operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration file is unreadable or invalid.
    #[error("config {path}: {reason}")]
    Config {
        /// The configuration file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
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
    /// The database cannot be opened or written at start-up: which one, what is wrong and what to do.
    #[error("database {target}: {reason}")]
    Storage {
        /// The file (SQLite) or the redacted URL (PostgreSQL).
        target: String,
        /// What is wrong and what to do.
        reason: String,
    },
    /// The database holds something the gateway cannot use (a newer schema, a corrupt value).
    #[error("database: {0}")]
    Corrupt(String),
    /// TLS set-up failed (certificate, key, generation).
    #[error("tls: {0}")]
    Tls(String),
    /// A model could not be loaded or was refused.
    #[error("model {name}: {reason}")]
    Model {
        /// The model's configured name.
        name: String,
        /// Why.
        reason: String,
    },
    /// What the caller asked for is invalid (a weak password, a bad role, a malformed name): the caller can
    /// fix it, and is told this text (HTTP 400).
    #[error("{0}")]
    Invalid(String),
    /// Not found (user, key): HTTP 404.
    #[error("{0} not found")]
    NotFound(String),
    /// The caller may not do this, whatever they send (a wrong or expired bootstrap code, bootstrap already
    /// done): HTTP 403 with this text.
    #[error("{0}")]
    Denied(String),
    /// Something failed inside the gateway that the caller cannot fix (a hashing library, a clock reading,
    /// serialising state): HTTP 500, the text goes to the server log only.
    #[error("internal: {0}")]
    Internal(String),
    /// The operating system's random source failed.
    #[error("random source: {0}")]
    Random(String),
    /// The server could not bind or serve.
    #[error("server: {0}")]
    Server(String),
    /// The asset, findings or notification store refused or failed.
    #[error(transparent)]
    Store(#[from] aegis_store::Error),
}

impl Error {
    /// A database error with the operation it interrupted.
    pub(crate) fn db(op: &'static str) -> impl FnOnce(sqlx::Error) -> Error {
        move |source| Error::Db { op, source }
    }

    /// Whether this is the database being unable to store anything right now (a full disk, an I/O error, a
    /// lock that never came, an unreachable server): a condition that passes, answered 503 with Retry-After.
    pub fn is_storage_unavailable(&self) -> bool {
        match self {
            Error::Db { source, .. } => storage_unavailable(source),
            _ => false,
        }
    }

    /// An IO error with its operation and path.
    pub(crate) fn io(
        op: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { op, path, source }
    }
}

/// Result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// See [`Error::is_storage_unavailable`]; also what start-up explains instead of failing with a bare driver error.
/// SQLite's primary result codes (the low byte of extended ones): 5 BUSY, 6 LOCKED, 8 READONLY, 10 IOERR,
/// 11 CORRUPT, 13 FULL, 14 CANTOPEN, 26 NOTADB; PostgreSQL's classes 53 (insufficient resources), 57 (operator
/// intervention) and 08 (connection exception).
pub(crate) fn storage_unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => {
            let code = db.code().unwrap_or_default();
            if let Ok(n) = code.parse::<i64>() {
                matches!(n & 0xff, 5 | 6 | 8 | 10 | 11 | 13 | 14 | 26)
            } else {
                code.starts_with("53") || code.starts_with("57") || code.starts_with("08")
            }
        }
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_errors_are_told_from_bugs() {
        let db = |source| Error::Db { op: "x", source };
        assert!(db(sqlx::Error::PoolTimedOut).is_storage_unavailable());
        assert!(db(sqlx::Error::Io(std::io::Error::other("disk"))).is_storage_unavailable());
        assert!(!db(sqlx::Error::RowNotFound).is_storage_unavailable());
        assert!(!db(sqlx::Error::ColumnNotFound("c".into())).is_storage_unavailable());
        assert!(!Error::Internal("x".into()).is_storage_unavailable());
    }
}
