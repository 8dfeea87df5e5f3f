//! Untrusted model files, read as data.
//!
//! Every parser here takes bytes an attacker chose. None of them executes, imports or deserialises anything
//! into live objects: pickles are *emulated* symbolically, protobufs decode into plain structs, JSON headers
//! into `serde_json::Value`. Every length, count and depth read from a file is checked against the file's
//! size and against [`Limits`] before anything is allocated, so a crafted file yields an [`Error`] or an
//! anomaly record, never a panic or an unbounded allocation.
//!
//! Parsers report *what the file is*; whether that is dangerous is decided by `aegis-scan`.

#![forbid(unsafe_code)]

mod error;
mod limits;

pub mod compressed;
pub mod gguf;
pub mod hdf5;
pub mod keras;
pub mod marshal;
pub mod npy;
pub mod onnx;
pub mod pickle;
pub mod safetensors;
pub mod savedmodel;
pub mod sniff;
pub mod tar;
pub mod zip;

pub use error::{Error, Result};
pub use limits::Limits;

/// Anything we can read and seek: files, in-memory members, decompressed nested archives.
pub trait Blob: std::io::Read + std::io::Seek {}
impl<T: std::io::Read + std::io::Seek> Blob for T {}
