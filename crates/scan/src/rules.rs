//! The rule catalogue: every rule the scanner can emit, with its documentation. Rules live beside the code
//! that emits them; this module only gathers them for `aegis rules`, SARIF and `docs/rules.md`, and holds the
//! rules of the engine itself (unreadable files, names that disagree with content, limits).
//!
//! Id ranges: 0xx engine, 1xx pickle, 2xx archives and compression, 3xx safetensors, 4xx GGUF and chat
//! templates, 45x numpy, 5xx ONNX, 6xx Keras/HDF5, 7xx SavedModel.

use aegis_core::{RuleDoc, Severity};

/// A file or member could not be read or parsed at all.
pub const UNREADABLE: RuleDoc = RuleDoc {
    id: "AEG-SCAN-001",
    name: "unreadable-file",
    severity: Severity::Medium,
    summary: "File could not be read or parsed",
    why: "A model file the scanner cannot read cannot be vouched for. Crafted files are often malformed on \
          purpose, so that scanners give up while the real loader, which is more lenient, still runs them.",
    fix: "Check the file's origin and integrity (download it again, compare its hash with the publisher's). \
          Do not load a model file that fails to parse.",
    atlas: &["AML.T0010.003"],
    cwe: &[20],
};

/// The extension says one format, the bytes another.
pub const EXTENSION_MISMATCH: RuleDoc = RuleDoc {
    id: "AEG-SCAN-002",
    name: "extension-mismatch",
    severity: Severity::Medium,
    summary: "File extension disagrees with its content",
    why: "Loaders and scanners that route files by name can be steered: a pickle named `.safetensors` or \
          `.dat` slips past tools that only unpickle `.pkl`, while `torch.load` reads it regardless of name.",
    fix: "Rename the file after its real format, or convert it to the format its name promises (for weights, \
          prefer safetensors).",
    atlas: &["AML.T0010.003"],
    cwe: &[646],
};

/// A bound was hit; part of the input was not scanned.
pub const LIMIT_HIT: RuleDoc = RuleDoc {
    id: "AEG-SCAN-003",
    name: "scan-limit-reached",
    severity: Severity::High,
    summary: "A scan limit was reached; part of the input was not examined",
    why: "Size, count and depth bounds keep the scanner safe from resource-exhaustion files, but content past \
          a bound was not examined, and a loader would still read it. Attackers pad files or nest archives \
          deeply to push payloads past scanners, so an unexamined remainder fails the scan (high) unless the \
          emitter knows the skipped part cannot hide code (then it lowers the severity and says why).",
    fix: "Inspect why the file is so large or deeply nested. If it is legitimate, raise the limit in \
          `aegis.toml` (`[limits]`) and scan again.",
    atlas: &["AML.T0010.003"],
    cwe: &[400],
};

/// The rules of the engine itself.
pub(crate) const ENGINE_RULES: &[&RuleDoc] = &[&UNREADABLE, &EXTENSION_MISMATCH, &LIMIT_HIT];

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
