//! `aegis scan`: rules over untrusted model files.
//!
//! [`Scanner`] walks paths, detects each blob's format from its bytes ([`aegis_formats::sniff`]), hands it to
//! the parser of that format and turns what the parser saw into [`aegis_core::Finding`]s. Archives and nested
//! payloads (a pickle passed to `pickle.loads` inside a pickle) recurse through the same entry point with a
//! depth bound. One bad file never stops a directory scan: its error becomes a finding.
//!
//! Policy is an allow-list per ecosystem ([`policy`]): anything a pickle imports that is not on it fails the
//! scan; a deny-list of known gadgets only raises severity and explains.

#![forbid(unsafe_code)]

mod context;
mod engine;
mod engine_rules;
mod walk;

mod archive;
mod compressed;
mod gguf;
mod keras;
mod legacy;
mod npy;
mod onnx;
mod pickle;
mod safetensors;
mod savedmodel;
mod template;
mod tensors;
mod torchscript;

pub mod policy;
pub mod rules;

pub use context::Ctx;
pub use engine::{FileOutcome, Scanner};
pub use policy::{Policy, PolicyError};
pub use walk::{FileResult, Progress, ScanOutcome, IGNORE_FILE};
