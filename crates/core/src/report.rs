//! [`Report`]: the result of one Aegis run. Its serde form *is* the JSON output format; SARIF, JSON Lines
//! and human text are views of it rendered by `aegis-report`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{Finding, Severity};

/// A file a run produced (a hardened model, a plot, a manifest).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Artefact {
    /// What it is, e.g. `hardened-model`.
    pub kind: String,
    /// Where it was written.
    pub path: String,
}

/// The result of one run of one command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Always `aegis`.
    pub tool: String,
    /// The tool version.
    pub version: String,
    /// The subcommand, e.g. `scan`.
    pub command: String,
    /// What was examined (paths, a model, a dataset).
    pub target: Vec<String>,
    /// Start time, RFC 3339 UTC.
    pub started: String,
    /// Wall-clock duration in milliseconds.
    pub duration_ms: u64,
    /// Everything found, sorted by severity (highest first), then location.
    pub findings: Vec<Finding>,
    /// Numbers the command measured (files scanned, bytes read, scores).
    #[serde(default)]
    pub metrics: BTreeMap<String, Value>,
    /// Files the command wrote.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub artefacts: Vec<Artefact>,
}

impl Report {
    /// An empty report for `command` on `target`, started now.
    pub fn new(command: &str, target: Vec<String>) -> Self {
        let started = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        Report {
            tool: "aegis".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            command: command.to_owned(),
            target,
            started,
            duration_ms: 0,
            findings: Vec::new(),
            metrics: BTreeMap::new(),
            artefacts: Vec::new(),
        }
    }

    /// Sort findings: highest severity first, then by location text and rule, so output is deterministic.
    pub fn sort_findings(&mut self) {
        self.findings.sort_by(|a, b| {
            b.severity
                .cmp(&a.severity)
                .then_with(|| a.location.to_string().cmp(&b.location.to_string()))
                .then_with(|| a.rule.cmp(&b.rule))
                .then_with(|| a.message.cmp(&b.message))
        });
    }

    /// The highest severity present, if any finding exists.
    pub fn max_severity(&self) -> Option<Severity> {
        self.findings.iter().map(|f| f.severity).max()
    }

    /// Number of findings per severity, lowest first.
    pub fn counts(&self) -> BTreeMap<Severity, usize> {
        let mut counts = BTreeMap::new();
        for f in &self.findings {
            *counts.entry(f.severity).or_insert(0) += 1;
        }
        counts
    }

    /// Counts per severity in words, highest first: `"1 critical, 2 high"` (empty without findings).
    pub fn severity_summary(&self) -> String {
        let counts = self.counts();
        Severity::ALL
            .iter()
            .rev()
            .filter_map(|s| counts.get(s).map(|n| format!("{n} {s}")))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Whether any finding is at or above `threshold` (the `--fail-on` test behind exit code 1).
    pub fn fails_at(&self, threshold: Severity) -> bool {
        self.findings.iter().any(|f| f.severity >= threshold)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Location, RuleDoc};

    const RULE: RuleDoc = RuleDoc {
        id: "AEG-TEST-002",
        name: "t",
        severity: Severity::Medium,
        summary: "s",
        why: "w",
        fix: "f",
        atlas: &[],
        cwe: &[],
    };

    #[test]
    fn fail_threshold_compares_severities() {
        let mut r = Report::new("scan", vec!["x".into()]);
        r.findings
            .push(Finding::new(&RULE, Location::file("b"), "m"));
        r.findings
            .push(Finding::new(&RULE, Location::file("a"), "m").with_severity(Severity::Critical));
        r.sort_findings();
        assert_eq!(r.findings[0].severity, Severity::Critical);
        assert!(r.fails_at(Severity::High));
        assert!(!Report::new("scan", vec![]).fails_at(Severity::Info));
        assert_eq!(r.max_severity(), Some(Severity::Critical));
        assert_eq!(r.severity_summary(), "1 critical, 1 medium");
        assert_eq!(Report::new("scan", vec![]).severity_summary(), "");
    }
}
