//! `aegis rules [ID]`: the documentation of every rule (what, why, how to fix, references).

use std::io::Write;
use std::process::ExitCode;

use aegis_core::RuleDoc;
use anyhow::bail;

use crate::args::{GlobalArgs, OutputFormat, RulesArgs};
use crate::output;

pub fn run(global: &GlobalArgs, args: RulesArgs) -> anyhow::Result<ExitCode> {
    let all = catalogue();
    let selected: Vec<&RuleDoc> = match &args.rule {
        Some(id) => match all
            .iter()
            .copied()
            .find(|r| r.id.eq_ignore_ascii_case(id) || r.name == id)
        {
            Some(rule) => vec![rule],
            None => bail!("no rule `{id}`; run `aegis rules` for the list"),
        },
        None => all,
    };
    let text = if args.markdown {
        aegis_report::rules_markdown(&selected)
    } else if global.format == OutputFormat::Human {
        if args.rule.is_some() {
            selected.iter().map(|r| detail(r)).collect()
        } else {
            table(&selected)
        }
    } else {
        let docs: Vec<serde_json::Value> = selected.iter().map(|r| as_json(r)).collect();
        format!("{}\n", serde_json::to_string_pretty(&docs)?)
    };
    output::write_text(global, &text)?;
    Ok(ExitCode::SUCCESS)
}

/// Every rule of every pillar, in id order.
pub fn catalogue() -> Vec<&'static RuleDoc> {
    aegis_gateway::signals::catalogue()
}

fn table(rules: &[&RuleDoc]) -> String {
    let mut out = String::new();
    for r in rules {
        out.push_str(&format!(
            "{:<13} {:<9} {:<34} {}\n",
            r.id,
            r.severity.as_str(),
            r.name,
            r.summary
        ));
    }
    out.push_str("\nRun `aegis rules ID` for what, why and how to fix.\n");
    out
}

fn detail(rule: &RuleDoc) -> String {
    let mut out = Vec::new();
    let _ = writeln!(
        out,
        "{} {} (default severity: {})",
        rule.id, rule.name, rule.severity
    );
    let _ = writeln!(out, "\n{}\n", rule.summary);
    let _ = writeln!(out, "Why it matters:\n  {}\n", rule.why);
    let _ = writeln!(out, "How to fix:\n  {}\n", rule.fix);
    let refs = rule.references();
    if !refs.is_empty() {
        let _ = writeln!(out, "References:");
        for r in refs {
            let _ = writeln!(out, "  {} {} <{}>", r.kind.label(), r.id, r.url);
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn as_json(rule: &RuleDoc) -> serde_json::Value {
    serde_json::json!({
        "id": rule.id,
        "name": rule.name,
        "severity": rule.severity,
        "summary": rule.summary,
        "why": rule.why,
        "fix": rule.fix,
        "references": rule.references(),
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn docs_rules_md_is_up_to_date() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/rules.md");
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        let generated = aegis_report::rules_markdown(&super::catalogue());
        assert!(
            committed == generated,
            "docs/rules.md is stale: run `cargo run -q -p aegis-cli -- rules --markdown > docs/rules.md`"
        );
    }
}
