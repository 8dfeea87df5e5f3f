//! Renderers of an [`aegis_core::Report`]: human text (coloured on a terminal), JSON, JSON Lines and SARIF
//! 2.1.0. A new output format is a new module here and never touches a scanner.

#![forbid(unsafe_code)]

mod human;
mod sarif;

use std::io::{self, Write};

use aegis_core::{Report, RuleDoc};

pub use human::HumanOptions;

/// Output formats every command supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Text for people.
    Human,
    /// The [`Report`] as one JSON document.
    Json,
    /// One JSON object per finding, then a summary object.
    Jsonl,
    /// SARIF 2.1.0 for code-scanning platforms.
    Sarif,
}

/// Render `report` in `format` to `out`. `rules` documents the rules findings refer to (SARIF's rule table).
pub fn render(
    report: &Report,
    format: Format,
    rules: &[&RuleDoc],
    human: &HumanOptions,
    out: &mut dyn Write,
) -> io::Result<()> {
    match format {
        Format::Human => human::render(report, human, out),
        Format::Json => {
            serde_json::to_writer_pretty(&mut *out, report)?;
            writeln!(out)
        }
        Format::Jsonl => render_jsonl(report, out),
        Format::Sarif => {
            serde_json::to_writer_pretty(&mut *out, &sarif::to_sarif(report, rules))?;
            writeln!(out)
        }
    }
}

/// JSON Lines: one `{"type":"finding",…}` line per finding, then one `{"type":"summary",…}` line.
fn render_jsonl(report: &Report, out: &mut dyn Write) -> io::Result<()> {
    for finding in &report.findings {
        let mut value = serde_json::to_value(finding)?;
        if let Some(map) = value.as_object_mut() {
            map.insert("type".into(), "finding".into());
        }
        serde_json::to_writer(&mut *out, &value)?;
        writeln!(out)?;
    }
    let summary = serde_json::json!({
        "type": "summary",
        "tool": report.tool,
        "version": report.version,
        "command": report.command,
        "target": report.target,
        "started": report.started,
        "duration_ms": report.duration_ms,
        "findings": report.findings.len(),
        "metrics": report.metrics,
    });
    serde_json::to_writer(&mut *out, &summary)?;
    writeln!(out)
}

/// A SARIF 2.1.0 document for `report` (exposed for tests and other crates).
pub fn sarif_value(report: &Report, rules: &[&RuleDoc]) -> serde_json::Value {
    sarif::to_sarif(report, rules)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aegis_core::{Finding, Location, Severity};

    pub(crate) const RULE: RuleDoc = RuleDoc {
        id: "AEG-SCAN-101",
        name: "pickle-known-gadget",
        severity: Severity::Critical,
        summary: "Pickle imports a known code-execution gadget",
        why: "Runs code.",
        fix: "Do not load.",
        atlas: &["AML.T0010.003"],
        cwe: &[502],
    };

    pub(crate) fn sample() -> Report {
        let mut report = Report::new("scan", vec!["models".into()]);
        report.findings.push(
            Finding::new(
                &RULE,
                Location::file("models/evil.pt")
                    .member("archive/data.pkl")
                    .at_offset(42),
                "imports `os.system`",
            )
            .with_evidence_field("callable", "os.system"),
        );
        report.findings.push(
            Finding::new(
                &RULE,
                Location::file("models/b.pkl"),
                "imports `posix.system`",
            )
            .with_severity(Severity::High),
        );
        report.metrics.insert("files".into(), 2.into());
        report
    }

    fn rendered_report(report: &Report, format: Format) -> String {
        let mut out = Vec::new();
        render(report, format, &[&RULE], &HumanOptions::default(), &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn json_is_the_report_itself() {
        let report = sample();
        let back: Report = serde_json::from_str(&rendered_report(&report, Format::Json)).unwrap();
        assert_eq!(back, report);
    }

    #[test]
    fn jsonl_has_one_line_per_finding_and_a_summary() {
        let text = rendered_report(&sample(), Format::Jsonl);
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0]["type"], "finding");
        assert_eq!(lines[0]["rule"], "AEG-SCAN-101");
        assert_eq!(lines[2]["type"], "summary");
        assert_eq!(lines[2]["findings"], 2);
    }
}
