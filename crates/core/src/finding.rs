//! [`Finding`]: one thing a pillar found, with enough structure for machines and enough words for people.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{Location, RuleDoc, RuleId, Severity};

/// The taxonomy a [`Reference`] belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReferenceKind {
    /// MITRE ATLAS technique.
    Atlas,
    /// MITRE CWE weakness.
    Cwe,
    /// OWASP Machine Learning Security Top 10.
    OwaspMl,
    /// Any other document.
    Url,
}

impl ReferenceKind {
    /// A human label for the taxonomy.
    pub fn label(self) -> &'static str {
        match self {
            ReferenceKind::Atlas => "MITRE ATLAS",
            ReferenceKind::Cwe => "CWE",
            ReferenceKind::OwaspMl => "OWASP ML Top 10",
            ReferenceKind::Url => "reference",
        }
    }
}

/// A pointer into a public taxonomy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reference {
    /// Which taxonomy.
    pub kind: ReferenceKind,
    /// Its id there, e.g. `AML.T0010.003` or `CWE-502`.
    pub id: String,
    /// Where to read it.
    pub url: String,
}

impl Reference {
    /// A MITRE ATLAS technique (`AML.T0010.003`).
    pub fn atlas(technique: &str) -> Self {
        Reference {
            kind: ReferenceKind::Atlas,
            id: technique.to_owned(),
            url: format!("https://atlas.mitre.org/techniques/{technique}"),
        }
    }

    /// A CWE weakness by number.
    pub fn cwe(number: u32) -> Self {
        Reference {
            kind: ReferenceKind::Cwe,
            id: format!("CWE-{number}"),
            url: format!("https://cwe.mitre.org/data/definitions/{number}.html"),
        }
    }
}

/// One finding of any pillar.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// Stable rule id.
    pub rule: RuleId,
    /// How bad it is.
    pub severity: Severity,
    /// Short title (the rule's summary unless the emitter refined it).
    pub title: String,
    /// What was found, in words, naming the concrete thing (the callable, the member, the key).
    pub message: String,
    /// Where.
    pub location: Location,
    /// Structured evidence; never prose only.
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub evidence: Value,
    /// What to do about it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remediation: Option<String>,
    /// Taxonomy references.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refs: Vec<Reference>,
}

impl Finding {
    /// A finding of `rule` at its default severity, with the rule's title, remediation and references.
    pub fn new(rule: &RuleDoc, location: Location, message: impl Into<String>) -> Self {
        Finding {
            rule: rule.rule_id(),
            severity: rule.severity,
            title: rule.summary.to_owned(),
            message: message.into(),
            location,
            evidence: Value::Null,
            remediation: Some(rule.fix.to_owned()),
            refs: rule.references(),
        }
    }

    /// Replace the severity (emitters that raise or lower a rule's default say why in the evidence).
    pub fn with_severity(mut self, severity: Severity) -> Self {
        self.severity = severity;
        self
    }

    /// Attach structured evidence.
    pub fn with_evidence(mut self, mut evidence: Value) -> Self {
        crate::tidy_numbers(&mut evidence);
        self.evidence = evidence;
        self
    }

    /// Add one field to the evidence object (turning null evidence into an object).
    pub fn with_evidence_field(mut self, key: &str, value: impl Into<Value>) -> Self {
        if !self.evidence.is_object() {
            self.evidence = Value::Object(Default::default());
        }
        if let Value::Object(map) = &mut self.evidence {
            let mut value = value.into();
            crate::tidy_numbers(&mut value);
            map.insert(key.to_owned(), value);
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULE: RuleDoc = RuleDoc {
        id: "AEG-TEST-001",
        name: "test-rule",
        severity: Severity::High,
        summary: "A test rule",
        why: "Because",
        fix: "Do not",
        atlas: &["AML.T0010.003"],
        cwe: &[502],
    };

    #[test]
    fn new_finding_takes_rule_defaults() {
        let f = Finding::new(&RULE, Location::file("a.pkl"), "found it")
            .with_evidence_field("callable", "os.system");
        assert_eq!(f.rule.as_str(), "AEG-TEST-001");
        assert_eq!(f.severity, Severity::High);
        assert_eq!(f.refs.len(), 2);
        assert_eq!(f.refs[1].id, "CWE-502");
        assert_eq!(f.evidence["callable"], "os.system");
    }

    #[test]
    fn finding_round_trips_through_json() {
        let f = Finding::new(&RULE, Location::file("a.pkl").at_offset(3), "m");
        let back: Finding = serde_json::from_str(&serde_json::to_string(&f).unwrap()).unwrap();
        assert_eq!(back, f);
    }
}
