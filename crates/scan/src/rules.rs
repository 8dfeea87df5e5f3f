//! The rule catalogue: every rule the scanner can emit, with its documentation. Rules live beside the code
//! that emits them; this module only gathers them for `aegis rules`, SARIF and `docs/rules.md` (the engine's
//! own rules are in `engine_rules`, which every format module may use without importing the catalogue).
//!
//! Id ranges: 0xx engine, 1xx pickle, 2xx archives and compression, 3xx safetensors, 4xx GGUF and chat
//! templates, 45x numpy, 5xx ONNX, 6xx Keras/HDF5, 7xx SavedModel.

use aegis_core::RuleDoc;

use crate::engine_rules::ENGINE_RULES;
pub use crate::engine_rules::{EXTENSION_MISMATCH, LIMIT_HIT, UNREADABLE};

/// Every rule the scanner can emit, sorted by id.
pub fn all() -> Vec<&'static RuleDoc> {
    let mut rules: Vec<&'static RuleDoc> = [
        ENGINE_RULES,
        crate::pickle::RULES,
        crate::archive::RULES,
        crate::compressed::RULES,
        crate::safetensors::RULES,
        crate::gguf::RULES,
        crate::template::RULES,
        crate::npy::RULES,
        crate::onnx::RULES,
        crate::keras::RULES,
        crate::savedmodel::RULES,
        crate::tensors::RULES,
        crate::torchscript::RULES,
    ]
    .concat();
    rules.sort_by_key(|r| r.id);
    rules
}

/// Look a rule up by id (case-insensitive) or name.
pub fn find(id_or_name: &str) -> Option<&'static RuleDoc> {
    all()
        .into_iter()
        .find(|r| r.id.eq_ignore_ascii_case(id_or_name) || r.name == id_or_name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_names_are_unique_and_well_formed() {
        let rules = all();
        let mut ids: Vec<_> = rules.iter().map(|r| r.id).collect();
        ids.dedup();
        assert_eq!(ids.len(), rules.len(), "duplicate rule id");
        let mut names: Vec<_> = rules.iter().map(|r| r.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), rules.len(), "duplicate rule name");
        for r in rules {
            assert!(
                r.id.starts_with("AEG-SCAN-") && r.id.len() == 12,
                "{}",
                r.id
            );
            assert!(!r.summary.is_empty() && !r.why.is_empty() && !r.fix.is_empty());
        }
    }

    #[test]
    fn finds_by_id_or_name() {
        assert_eq!(
            find("aeg-scan-002").map(|r| r.name),
            Some("extension-mismatch")
        );
        assert_eq!(
            find("scan-limit-reached").map(|r| r.id),
            Some("AEG-SCAN-003")
        );
        assert!(find("AEG-SCAN-999").is_none());
    }
}
