//! Rules are documented in code: a stable id, what it detects, why it matters, how to fix it, references.
//! The same [`RuleDoc`] feeds `aegis rules`, SARIF's rule table and `docs/rules.md`.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::Severity;

/// A stable rule identifier such as `AEG-SCAN-001`. Never renumbered once released.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RuleId(pub String);

impl RuleId {
    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RuleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

impl From<&str> for RuleId {
    fn from(s: &str) -> Self {
        RuleId(s.to_owned())
    }
}

/// The documentation of one rule, written once in the crate that emits it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuleDoc {
    /// Stable id, e.g. `AEG-SCAN-001`.
    pub id: &'static str,
    /// Short kebab-case name, e.g. `pickle-global-not-allowed`.
    pub name: &'static str,
    /// The default severity (a finding may raise or lower it, with a reason in its evidence).
    pub severity: Severity,
    /// One line: what the rule detects.
    pub summary: &'static str,
    /// Why it matters: what an attacker gains.
    pub why: &'static str,
    /// How to fix it.
    pub fix: &'static str,
    /// MITRE ATLAS technique ids, e.g. `AML.T0010.003`.
    pub atlas: &'static [&'static str],
    /// CWE numbers, e.g. `502`.
    pub cwe: &'static [u32],
}

impl RuleDoc {
    /// The id as a [`RuleId`].
    pub fn rule_id(&self) -> RuleId {
        RuleId(self.id.to_owned())
    }

    /// References (ATLAS techniques then CWEs) as [`crate::Reference`]s.
    pub fn references(&self) -> Vec<crate::Reference> {
        let atlas = self.atlas.iter().map(|t| crate::Reference::atlas(t));
        let cwe = self.cwe.iter().map(|c| crate::Reference::cwe(*c));
        atlas.chain(cwe).collect()
    }

    /// The full help text: summary, why and fix, as Markdown.
    pub fn help_markdown(&self) -> String {
        let mut text = format!(
            "**{}** ({}, default severity {})\n\n{}\n\n**Why it matters.** {}\n\n**How to fix.** {}\n",
            self.id, self.name, self.severity, self.summary, self.why, self.fix
        );
        let refs = self.references();
        if !refs.is_empty() {
            text.push_str("\n**References.**\n");
            for r in refs {
                text.push_str(&format!("- [{}]({}) {}\n", r.id, r.url, r.kind.label()));
            }
        }
        text
    }
}
