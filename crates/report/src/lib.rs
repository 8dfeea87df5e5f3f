//! Renderers of an [`aegis_core::Report`]: human text (coloured on a terminal), JSON, JSON Lines, SARIF
//! 2.1.0 and a self-contained HTML page with SVG charts. A new output format is a new module here and never touches a scanner.

#![forbid(unsafe_code)]

pub mod charts;
mod html;
mod human;
mod privacy_text;
mod robustness_text;
mod sarif;

use std::io::{self, Write};

use aegis_core::{Report, RuleDoc};

pub use html::REPORT_CSS;
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
    /// One self-contained HTML page (no script, no external resources) with SVG charts of the metrics.
    Html,
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
        Format::Html => html::render(report, rules, out),
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

/// The glossary of the terms the HTML reports explain, as Markdown (`docs/glossary.md`).
pub fn glossary_markdown() -> String {
    html::glossary_markdown()
}

/// Structured evidence (or any JSON value) as name/value rows people can read, never a JSON dump: nested keys
/// joined with `›`, lists of plain values joined with commas (the first 20), lists of objects numbered (the first
/// 10), at most 60 rows.
pub fn evidence_rows(value: &serde_json::Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    flatten("", value, &mut out);
    out
}

fn flatten(prefix: &str, value: &serde_json::Value, out: &mut Vec<(String, String)>) {
    use serde_json::Value;
    if out.len() >= 60 {
        return;
    }
    let key = |k: &str| {
        let k = k.replace('_', " ");
        if prefix.is_empty() {
            k
        } else {
            format!("{prefix} › {k}")
        }
    };
    match value {
        Value::Null => {}
        Value::Object(map) => {
            for (k, v) in map {
                flatten(&key(k), v, out);
            }
        }
        Value::Array(items) if items.iter().all(|i| !i.is_object() && !i.is_array()) => {
            let text: Vec<String> = items.iter().take(20).map(scalar).collect();
            let more = if items.len() > 20 {
                format!(" … and {} more", items.len() - 20)
            } else {
                String::new()
            };
            out.push((prefix.to_string(), format!("{}{more}", text.join(", "))));
        }
        Value::Array(items) => {
            for (i, item) in items.iter().take(10).enumerate() {
                flatten(&format!("{prefix} {}", i + 1), item, out);
            }
            if items.len() > 10 {
                out.push((
                    prefix.to_string(),
                    format!("… and {} more", items.len() - 10),
                ));
            }
        }
        other => out.push((prefix.to_string(), scalar(other))),
    }
}

fn scalar(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Number(n) => match n.as_f64() {
            Some(f) if f.fract() != 0.0 => aegis_core::format_short(f),
            _ => n.to_string(),
        },
        serde_json::Value::Null => "–".into(),
        other => other.to_string(),
    }
}

/// A report as the HTML page `--format html` writes, with its stylesheet linked from `stylesheet` instead of
/// inline (the console serves [`REPORT_CSS`] as a file under its strict Content-Security-Policy).
pub fn html_linked(report: &Report, rules: &[&RuleDoc], stylesheet: &str) -> String {
    html::page_linked(report, rules, stylesheet)
}

/// The Markdown catalogue (docs/rules.md is generated from this; a test keeps them equal).
pub fn rules_markdown(rules: &[&RuleDoc]) -> String {
    let mut out = String::from(
        "# Rules\n\nGenerated by `aegis rules --markdown`; do not edit by hand. Severity is the default; a \
         finding may raise it (for example BUILD with slot state) and says why in its evidence.\n\n\
         | id | name | severity | summary |\n|---|---|---|---|\n",
    );
    for r in rules {
        out.push_str(&format!(
            "| [{}](#{}) | `{}` | {} | {} |\n",
            r.id,
            r.id.to_lowercase(),
            r.name,
            r.severity,
            r.summary
        ));
    }
    for r in rules {
        out.push('\n');
        out.push_str(&format!("## {}\n\n", r.id));
        out.push_str(&r.help_markdown().replacen(&format!("**{}** ", r.id), "", 1));
    }
    out
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
    fn rules_markdown_has_a_table_row_and_a_section_per_rule() {
        let md = rules_markdown(&[&RULE]);
        assert!(md.contains("| [AEG-SCAN-101](#aeg-scan-101) | `pickle-known-gadget` | critical |"));
        assert!(md.contains("## AEG-SCAN-101\n"));
        assert!(md.contains("**How to fix.** Do not load."));
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
