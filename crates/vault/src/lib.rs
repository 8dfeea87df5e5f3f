//! Encryption at rest, signatures and manifests for models and datasets, with key files a small team can manage
//! without a key-management service.
//!
//! - [`crypt`]: the age format (X25519 recipients, scrypt passphrases, several recipients, ASCII armor) on
//!   streams, files and directory trees, in constant memory; output is written to a temporary file beside the
//!   target and renamed only once complete, so a wrong key or a truncated input never leaves partial plaintext.
//! - [`keys`]: age identities and recipients; [`signing_key`]: Ed25519 key pairs as PEM files. Secret key files
//!   are written owner-only and refused when others can read them ([`secret_file`]).
//! - [`manifest`]: SHA-256 of every file of a model directory, a dataset or a single file, hashed in parallel.
//! - [`signature`]: the manifest as an in-toto statement in a DSSE envelope inside a Sigstore bundle (the OpenSSF
//!   model-signing layout, `model.sig`), signed with Ed25519; verification names every difference.
//! - [`trust`]: which keys may sign, and the findings when a model is unsigned, untrusted or modified.
//!
//! Only this crate (and TLS in the gateway) uses cryptographic crates; all of them are audited RustCrypto /
//! age implementations, no primitive is written here. The one piece of framing of our own is age's payload
//! chunking, sealed in parallel (`stream`, private), which the tests check byte for byte against the `age`
//! crate's own writer.

#![forbid(unsafe_code)]

pub mod crypt;
mod error;
pub mod keys;
pub mod manifest;
mod pipe;
pub mod secret_file;
pub mod signature;
pub mod signing_key;
mod stream;
pub mod trust;

pub use error::Error;
