//! Errors of the vault: each names the file and what is wrong with it.

use std::path::PathBuf;

/// What can go wrong encrypting, decrypting, signing or verifying.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A key file is malformed, of the wrong kind, or readable by others.
    #[error("{path}: {reason}")]
    Key {
        /// The key file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A recipient string is not an age recipient.
    #[error("invalid recipient {recipient:?}: {reason}")]
    Recipient {
        /// The text given.
        recipient: String,
        /// What is wrong.
        reason: String,
    },
    /// Decryption failed: wrong key or passphrase, tampered or truncated ciphertext, not an age file.
    #[error("{path}: {reason}")]
    Decrypt {
        /// The encrypted file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Encryption failed.
    #[error("{path}: {reason}")]
    Encrypt {
        /// The output file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A signature bundle or manifest is malformed or does not verify.
    #[error("{path}: {reason}")]
    Signature {
        /// The signature file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Input the vault refuses (no recipients, an output that exists, a symlink, a bad path).
    #[error("{0}")]
    Invalid(String),
}

impl Error {
    /// An IO error on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
