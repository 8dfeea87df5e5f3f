//! The rules of the scan engine itself (a file that cannot be read, a name that disagrees with the content, a
//! bound that was hit) and the finding every format module emits when it cannot read its input.
//!
//! A leaf module: the format modules use these without importing the rule catalogue (`rules`), which imports
//! them all, so the module graph has no cycles.

use aegis_core::{Finding, Location, RuleDoc, Severity};
use serde_json::json;

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
/// An ignore file inside the scanned tree, which the scan does not obey.
pub const IGNORE_FILE_IN_TREE: RuleDoc = RuleDoc {
    id: "AEG-SCAN-004",
    name: "ignore-file-in-tree",
    severity: Severity::Low,
    summary: "An .aegisignore file inside the scanned tree was not obeyed",
    why: "Exclude patterns are read only from --exclude, `[scan] exclude` in the policy file and the \
          `.aegisignore` of the working directory. A downloaded model repository could otherwise ship an \
          `.aegisignore` that hides its own payload from the scan; every file under it was scanned.",
    fix: "If the patterns are yours, move them to `./.aegisignore` in the directory you run aegis from, or pass \
          them with --exclude; otherwise check who added the file and why.",
    atlas: &["AML.T0010.003"],
    cwe: &[693],
};

/// A symbolic link inside the scanned tree points outside it.
pub const LINK_LEAVES_TREE: RuleDoc = RuleDoc {
    id: "AEG-SCAN-005",
    name: "link-leaves-scanned-tree",
    severity: Severity::Medium,
    summary: "A symbolic link in the model directory points outside it",
    why: "Loaders follow links: an ONNX external-data file, a tokenizer or a weights file that is a link to \
          `/etc/shadow` or `~/.ssh/id_rsa` makes loading read a host file into the model, where its outputs or \
          a re-save can leak it. A file link's target was scanned under the link's name; a directory outside \
          the tree is not walked. A link into a system or credential location is high, into a \
          content-addressed cache (Hugging Face `blobs/`, DVC, git-annex) low, anywhere else medium.",
    fix: "Replace the link by the file it should be, or check that its target is part of the model; do not \
          load a model whose files point into the host's system or home directories.",
    atlas: &["AML.T0010.003"],
    cwe: &[59, 22],
};

pub(crate) const ENGINE_RULES: &[&RuleDoc] = &[
    &UNREADABLE,
    &EXTENSION_MISMATCH,
    &LIMIT_HIT,
    &IGNORE_FILE_IN_TREE,
    &LINK_LEAVES_TREE,
];

/// The finding for a file or member that could not be read at all.
pub(crate) fn unreadable(location: Location, error: &str) -> Finding {
    Finding::new(&UNREADABLE, location, format!("could not be read: {error}"))
        .with_evidence(json!({ "error": error }))
}
