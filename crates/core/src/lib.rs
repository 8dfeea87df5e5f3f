//! The vocabulary every Aegis pillar speaks.
//!
//! A scanner, an auditor or the gateway each turn what they examine into [`Finding`]s; a [`Report`] carries
//! them with the run's metadata and *is* the JSON output format. Rules are documented in code as
//! [`RuleDoc`]s so the same text feeds `aegis rules`, the SARIF rule table and `docs/rules.md`.
//!
//! This crate does no IO and has no async: it is pure data.

#![forbid(unsafe_code)]

mod civil;
mod finding;
mod frame;
mod location;
mod report;
mod rule;
mod severity;
mod stream;
mod table;

pub use civil::{civil_from_days, days_from_civil, format_timestamp};
pub use finding::{Finding, Reference, ReferenceKind};
pub use frame::{
    format_number, format_short, tidy_numbers, Column, ColumnData, ColumnKind, Frame, Labels,
    MISSING_CODE,
};
pub use location::Location;
pub use report::{Artefact, Report};
pub use rule::{RuleDoc, RuleId};
pub use severity::{ParseSeverityError, Severity};
pub use stream::{ColumnSummary, StreamCell, SummaryKind};
pub use table::{FeatureKind, FeatureSpec, OneHotGroup, Schema, Table};
