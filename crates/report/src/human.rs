//! Human text: one block per finding (severity, rule, location with archive members and byte offset, the
//! message, the key evidence), then a summary line. Colour only when asked (the CLI asks when stderr/stdout is
//! a terminal and `NO_COLOR` is unset).

use std::io::{self, Write};

use aegis_core::{Finding, Report, Severity};

/// Options of the human renderer.
#[derive(Debug, Clone, Default)]
pub struct HumanOptions {
    /// ANSI colours.
    pub color: bool,
    /// Show evidence and remediation for every finding (`--verbose`).
    pub verbose: bool,
    /// Hide findings below this severity in the listing (they still count in the summary).
    pub min_severity: Option<Severity>,
}

struct Paint {
    on: bool,
}

impl Paint {
    fn wrap(&self, code: &str, text: &str) -> String {
        if self.on {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }

    fn severity(&self, severity: Severity) -> String {
        let label = format!("{:<8}", severity.as_str().to_uppercase());
        let code = match severity {
            Severity::Critical => "1;41;97",
            Severity::High => "1;31",
            Severity::Medium => "33",
            Severity::Low => "36",
            Severity::Info => "2",
        };
        self.wrap(code, &label)
    }
}

pub(crate) fn render(
    report: &Report,
    options: &HumanOptions,
    out: &mut dyn Write,
) -> io::Result<()> {
    let paint = Paint { on: options.color };
    let shown: Vec<&Finding> = report
        .findings
        .iter()
        .filter(|f| options.min_severity.is_none_or(|min| f.severity >= min))
        .collect();
    if let (Some(robustness), None) = (report.metrics.get("robustness"), options.min_severity) {
        crate::robustness_text::render(robustness, out)?;
    }
    if let (Some(privacy), None) = (report.metrics.get("privacy"), options.min_severity) {
        crate::privacy_text::render(privacy, out)?;
    }
    for finding in &shown {
        render_finding(finding, options, &paint, out)?;
    }
    render_summary(report, shown.len(), &paint, out)
}

fn render_finding(
    finding: &Finding,
    options: &HumanOptions,
    paint: &Paint,
    out: &mut dyn Write,
) -> io::Result<()> {
    writeln!(
        out,
        "{} {} {}",
        paint.severity(finding.severity),
        paint.wrap("1", finding.rule.as_str()),
        finding.title
    )?;
    writeln!(
        out,
        "  at   {}",
        paint.wrap("4", &finding.location.to_string())
    )?;
    writeln!(out, "  what {}", finding.message)?;
    if let Some(callable) = finding.evidence.get("callable").and_then(|v| v.as_str()) {
        writeln!(out, "  call {}", paint.wrap("1", callable))?;
    }
    if options.verbose {
        if !finding.evidence.is_null() {
            let mut evidence = finding.evidence.clone();
            aegis_core::tidy_numbers(&mut evidence);
            writeln!(out, "  evidence {evidence}")?;
        }
        if let Some(fix) = &finding.remediation {
            writeln!(out, "  fix  {fix}")?;
        }
        let refs: Vec<&str> = finding.refs.iter().map(|r| r.id.as_str()).collect();
        if !refs.is_empty() {
            writeln!(out, "  refs {}", refs.join(", "))?;
        }
    }
    writeln!(out)
}

fn render_summary(
    report: &Report,
    shown: usize,
    paint: &Paint,
    out: &mut dyn Write,
) -> io::Result<()> {
    let files = report
        .metrics
        .get("files")
        .and_then(|v| v.as_u64())
        .map(|n| format!(" in {n} file(s)"))
        .unwrap_or_default();
    // Paths a scan left out by request are said, so a pass is never read as covering them.
    let files = match report.metrics.get("excluded").and_then(|v| v.as_u64()) {
        Some(n) if n > 0 => format!("{files} ({n} path(s) excluded)"),
        _ => files,
    };
    let summary = if report.findings.is_empty() {
        paint.wrap("1;32", &format!("no findings{files}"))
    } else {
        format!(
            "{} finding(s){files}: {}",
            report.findings.len(),
            report.severity_summary()
        )
    };
    let hidden = report.findings.len() - shown;
    let hidden = if hidden > 0 {
        format!(" ({hidden} below the display threshold not shown)")
    } else {
        String::new()
    };
    writeln!(out, "{summary}{hidden} [{} ms]", report.duration_ms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::sample;

    #[test]
    fn plain_text_names_rule_location_and_callable() {
        let mut out = Vec::new();
        render(&sample(), &HumanOptions::default(), &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("CRITICAL AEG-SCAN-101"), "{text}");
        assert!(text.contains("models/evil.pt!archive/data.pkl@0x2a"));
        assert!(text.contains("call os.system"));
        assert!(text.contains("2 finding(s) in 2 file(s): 1 critical, 1 high"));
        let mut excluded = sample();
        excluded.metrics.insert("excluded".into(), 3.into());
        let mut buf = Vec::new();
        render(&excluded, &HumanOptions::default(), &mut buf).unwrap();
        assert!(String::from_utf8(buf)
            .unwrap()
            .contains("in 2 file(s) (3 path(s) excluded):"));
        assert!(!text.contains('\x1b'));
    }

    #[test]
    fn colour_only_when_asked_and_threshold_hides_lower() {
        let mut out = Vec::new();
        let options = HumanOptions {
            color: true,
            verbose: true,
            min_severity: Some(Severity::Critical),
        };
        render(&sample(), &options, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains('\x1b'));
        assert!(text.contains("1 below the display threshold"));
        assert!(text.contains("refs AML.T0010.003, CWE-502"));
    }
}
