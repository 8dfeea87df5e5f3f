//! SARIF 2.1.0 as GitHub code scanning accepts it: a rule table with help text and `security-severity`,
//! results with a level, a physical location (artifact URI, a region with `startLine` as GitHub requires, and
//! the byte offset for binary files), a logical location naming archive members, and a stable
//! `partialFingerprints` entry so alerts survive re-runs.

use std::collections::BTreeMap;

use aegis_core::{Finding, Location, Report, RuleDoc};
use serde_json::{json, Value};

const SCHEMA: &str = "https://json.schemastore.org/sarif-2.1.0.json";

pub(crate) fn to_sarif(report: &Report, rules: &[&RuleDoc]) -> Value {
    // Only rules that appear, in id order; findings of undocumented rules get a minimal descriptor.
    let mut used: BTreeMap<&str, Value> = BTreeMap::new();
    for finding in &report.findings {
        let id = finding.rule.as_str();
        if used.contains_key(id) {
            continue;
        }
        let descriptor = match rules.iter().find(|r| r.id == id) {
            Some(rule) => rule_descriptor(rule),
            None => json!({ "id": id, "shortDescription": { "text": finding.title } }),
        };
        used.insert(id, descriptor);
    }
    let index: BTreeMap<&str, usize> = used.keys().enumerate().map(|(i, k)| (*k, i)).collect();
    let results: Vec<Value> = report
        .findings
        .iter()
        .map(|f| result(f, index[f.rule.as_str()]))
        .collect();
    json!({
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": { "driver": {
                "name": "aegis",
                "fullName": "Aegis security platform for AI applications",
                "version": report.version,
                "semanticVersion": report.version,
                "informationUri": "https://example.invalid/aegis",
                "rules": used.into_values().collect::<Vec<_>>(),
            }},
            "automationDetails": { "id": format!("aegis/{}/", report.command) },
            "invocations": [{
                "executionSuccessful": true,
                "startTimeUtc": report.started,
                "properties": { "command": report.command, "target": report.target },
            }],
            "columnKind": "unicodeCodePoints",
            "results": results,
            "properties": { "metrics": report.metrics },
        }],
    })
}

fn rule_descriptor(rule: &RuleDoc) -> Value {
    let mut tags = vec!["security".to_owned()];
    tags.extend(rule.atlas.iter().map(|t| format!("external/atlas/{t}")));
    tags.extend(rule.cwe.iter().map(|c| format!("external/cwe/cwe-{c}")));
    json!({
        "id": rule.id,
        "name": rule.name,
        "shortDescription": { "text": rule.summary },
        "fullDescription": { "text": format!("{} {}", rule.summary, rule.why) },
        "help": {
            "text": format!("{}\n\nWhy: {}\n\nFix: {}", rule.summary, rule.why, rule.fix),
            "markdown": rule.help_markdown(),
        },
        "defaultConfiguration": { "level": rule.severity.sarif_level() },
        "properties": {
            "tags": tags,
            "precision": "high",
            "problem.severity": rule.severity.sarif_level(),
            "security-severity": rule.severity.security_score(),
        },
    })
}

fn result(finding: &Finding, rule_index: usize) -> Value {
    let mut location = json!({});
    let (uri, members, offset) = match &finding.location {
        Location::File {
            path,
            members,
            offset,
        } => (path.clone(), members.clone(), *offset),
        Location::Dataset { path, .. } => (path.clone(), Vec::new(), None),
        other => (other.root().to_owned(), Vec::new(), None),
    };
    let mut region = json!({ "startLine": 1 });
    if let (Some(offset), true) = (offset, members.is_empty()) {
        region["byteOffset"] = json!(offset);
    }
    location["physicalLocation"] = json!({
        "artifactLocation": { "uri": to_uri(&uri) },
        "region": region,
    });
    location["logicalLocations"] = json!([{
        "fullyQualifiedName": finding.location.to_string(),
        "kind": if members.is_empty() { "resource" } else { "member" },
    }]);
    json!({
        "ruleId": finding.rule.as_str(),
        "ruleIndex": rule_index,
        "level": finding.severity.sarif_level(),
        "message": { "text": format!("{} ({})", finding.message, finding.location) },
        "locations": [location],
        "partialFingerprints": { "aegisFindingHash/v1": fingerprint(finding) },
        "properties": {
            "severity": finding.severity.as_str(),
            "security-severity": finding.severity.security_score(),
            "evidence": finding.evidence,
        },
    })
}

/// Relative paths stay relative (GitHub resolves them against the repository root); backslashes and spaces
/// are made URI-safe.
fn to_uri(path: &str) -> String {
    let path = path.replace('\\', "/");
    let path = path.strip_prefix("./").unwrap_or(&path);
    let mut out = String::with_capacity(path.len());
    for byte in path.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' | b':' => {
                out.push(char::from(byte))
            }
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    out
}

/// FNV-1a over rule, location and message: stable across runs and machines for the same finding.
fn fingerprint(finding: &Finding) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in [
        finding.rule.as_str(),
        &finding.location.to_string(),
        &finding.message,
    ] {
        for byte in part.bytes().chain(std::iter::once(0)) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{hash:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::{sample, RULE};

    #[test]
    fn carries_what_code_scanning_needs() {
        let sarif = to_sarif(&sample(), &[&RULE]);
        assert_eq!(sarif["version"], "2.1.0");
        let run = &sarif["runs"][0];
        let rules = run["tool"]["driver"]["rules"].as_array().unwrap();
        assert_eq!(rules.len(), 1);
        assert_eq!(rules[0]["id"], "AEG-SCAN-101");
        assert!(rules[0]["help"]["text"].as_str().unwrap().contains("Fix:"));
        assert_eq!(rules[0]["properties"]["security-severity"], "9.5");
        let results = run["results"].as_array().unwrap();
        assert_eq!(results.len(), 2);
        let first = &results[0];
        assert_eq!(first["ruleIndex"], 0);
        assert_eq!(first["level"], "error");
        let physical = &first["locations"][0]["physicalLocation"];
        assert_eq!(physical["artifactLocation"]["uri"], "models/evil.pt");
        assert_eq!(physical["region"]["startLine"], 1);
        assert_eq!(
            first["locations"][0]["logicalLocations"][0]["fullyQualifiedName"],
            "models/evil.pt!archive/data.pkl@0x2a"
        );
        assert!(first["partialFingerprints"]["aegisFindingHash/v1"].is_string());
    }

    #[test]
    fn uris_are_escaped_and_fingerprints_stable() {
        assert_eq!(to_uri("./my models\\a b.pt"), "my%20models/a%20b.pt");
        let report = sample();
        assert_eq!(
            fingerprint(&report.findings[0]),
            fingerprint(&report.findings[0])
        );
        assert_ne!(
            fingerprint(&report.findings[0]),
            fingerprint(&report.findings[1])
        );
    }
}
