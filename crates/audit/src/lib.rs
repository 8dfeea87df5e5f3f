//! Training-data audits: find the rows an attacker poisoned before a model learns from them.
//!
//! Poisoning hides in plain sight: a few percent of flipped labels, rows injected far from the rest, copies of
//! real rows with the label turned, a backdoor trigger (a rare exact value that always comes with the
//! attacker's label). Each check in this crate looks for one of these and returns the same two things:
//! [`Finding`](aegis_core::Finding)s that say what was seen, which rows, how sure and what to do, and per-row
//! [`RowSignal`]s that the report merges into one suspicion score per row (the `--flags` CSV).
//!
//! Checks work on a [`Frame`](aegis_core::Frame) (typed columns, missing cells kept as missing) through the
//! mixed-type [`encode::Encoded`] view, so categorical columns are compared as categories, never as the
//! arbitrary numbers a one-hot or ordinal encoding would make of them.

#![forbid(unsafe_code)]

pub mod backdoor;
pub mod encode;
mod error;

pub use error::Error;
pub use run::{audit, write_flags, Audit, AuditConfig, RowVerdict};

use serde::{Deserialize, Serialize};

/// The kind of suspicion a row signal carries; its `as_str` name is what the flags CSV lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// The label disagrees with what the rest of the data says (flipped or mislabelled).
    Label,
    /// The row lies far from the rest of the data.
    Outlier,
    /// An exact copy of another row with the same label (natural duplicates are common; low suspicion).
    Duplicate,
    /// Almost a copy of another row.
    NearDuplicate,
    /// A copy (exact or near) of other rows that carries a different label: the suspicious member of a
    /// label-conflicting duplicate group.
    Conflict,
    /// A row not present in the trusted reference snapshot.
    New,
    /// The row carries a backdoor trigger (a value or value combination that predicts its label).
    Backdoor,
}

impl Kind {
    /// The name used in the flags CSV and in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Label => "label",
            Kind::Outlier => "outlier",
            Kind::Duplicate => "duplicate",
            Kind::NearDuplicate => "near-duplicate",
            Kind::Conflict => "conflict",
            Kind::New => "new",
            Kind::Backdoor => "backdoor",
        }
    }
}

/// One check's verdict on one row.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RowSignal {
    /// 0-based data row.
    pub row: usize,
    /// What kind of suspicion.
    pub kind: Kind,
    /// Suspicion in `[0, 1]`: comparable across rows of one kind; 0.5 and above is what the check flags by
    /// default.
    pub score: f32,
    /// Whether the check flags the row (passed its calibrated cut-off).
    pub flagged: bool,
}

/// What one check returns.
#[derive(Debug, Clone, Default)]
pub struct CheckOutput {
    /// Findings, each naming its rows (bounded lists; counts in the evidence).
    pub findings: Vec<aegis_core::Finding>,
    /// Per-row signals; a check may report only the rows it has an opinion on.
    pub signals: Vec<RowSignal>,
    /// Figures for the report's `metrics` (thresholds used, counts, estimated rates).
    pub metrics: serde_json::Map<String, serde_json::Value>,
}

/// The most row numbers a finding lists in its message and evidence; the flags CSV has them all.
pub const MAX_LISTED_ROWS: usize = 50;

pub mod balance;
pub mod duplicates;
pub mod gbdt;
pub mod labels;
pub mod outliers;
pub mod run;
