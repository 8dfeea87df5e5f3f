//! Snapshot tests of the HTML reports: one fixed report per view, rendered and compared byte for byte with the
//! page committed under `tests/snapshots/`. A change to a view shows up as a diff to review; after reviewing,
//! regenerate with `UPDATE_SNAPSHOTS=1 cargo test -p aegis-report --test snapshots`.

use std::path::Path;

use aegis_core::{Finding, Location, Report, RuleDoc, Severity};
use serde_json::json;

const RULE: RuleDoc = RuleDoc {
    id: "AEG-SNAP-001",
    name: "snapshot",
    severity: Severity::High,
    summary: "A finding for the snapshot.",
    why: "It stands for any finding.",
    fix: "Nothing to fix.",
    atlas: &["AML.T0010"],
    cwe: &[502],
};

/// A report with fixed times, so the page is the same on every run.
fn report(command: &str, target: &str) -> Report {
    let mut r = Report::new(command, vec![target.into()]);
    r.started = "2026-12-07T12:00:00Z".into();
    r.duration_ms = 1234;
    r.version = "0.0.0-snapshot".into();
    r
}

fn reports() -> Vec<(&'static str, Report)> {
    let mut scan = report("scan", "models");
    scan.metrics.insert("files".into(), 2.into());
    scan.metrics.insert(
        "checked".into(),
        json!([{"path": "models/clean.onnx", "bytes": 2048, "findings": 0},
               {"path": "models/evil.pkl", "bytes": 40, "findings": 1, "worst": "critical"}]),
    );
    scan.metrics
        .insert("formats".into(), json!({"onnx": 1, "pickle": 1}));
    scan.findings.push(
        Finding::new(
            &RULE,
            Location::file("models/evil.pkl").at_offset(2),
            "imports os.system",
        )
        .with_severity(Severity::Critical)
        .with_evidence(json!({"callable": "os.system", "call": {"args": "(\"id\")"}})),
    );

    let mut audit = report("audit", "train.csv");
    audit.metrics.insert("rows".into(), 1000.into());
    audit.metrics.insert("flagged_rows".into(), 12.into());
    audit
        .metrics
        .insert("flagged_by_kind".into(), json!({"label": 8, "outlier": 4}));
    audit.metrics.insert(
        "balance".into(),
        json!({"balance.class_counts": {"fraud": 100, "ok": 900}}),
    );
    audit.metrics.insert(
        "backdoor".into(),
        json!({"backdoor_candidates": [{"rule": "merchant == 7 -> label fraud", "support": 20, "purity": 1.0, "confidence": 0.95}]}),
    );
    audit.findings.push(
        Finding::new(
            &RULE,
            Location::file("train.csv"),
            "8 rows look mislabelled",
        )
        .with_evidence(
            json!({"rows": [{"row": 5, "given": "ok", "suggested": "fraud", "confidence": 0.97}]}),
        ),
    );

    let mut drift = report("drift", "current.csv");
    drift.metrics.insert(
        "drift".into(),
        json!({"reference": "reference.csv", "current": "current.csv", "reference_rows": 2000, "current_rows": 1500,
               "tested": 2, "drifted": 1, "columns": [
            {"name": "amount", "kind": "numeric", "test": "ks", "statistic": 0.1537, "pvalue": 1e-17,
             "pvalue_corrected": 1e-17, "psi": 0.1126, "drifted": true,
             "reference_missing_share": 0.0, "current_missing_share": 0.0,
             "histogram": {"labels": ["< 1", "1 – 2", "≥ 2"], "reference": [700, 700, 600], "current": [300, 500, 700]}},
            {"name": "hour", "kind": "numeric", "test": "ks", "statistic": 0.02, "pvalue": 0.83,
             "pvalue_corrected": 0.83, "psi": 0.007, "drifted": false,
             "reference_missing_share": 0.0, "current_missing_share": 0.0}
        ]}),
    );

    let mut privacy = report("assess privacy", "model.onnx");
    let attack = |auc: f64| {
        json!({"auc": auc, "tpr_at_1pct_fpr": 0.05, "tpr_at_01pct_fpr": 0.01,
                                   "roc": [[0.0, 0.0], [0.001, 0.01], [0.01, 0.05], [0.1, 0.3], [1.0, 1.0]]})
    };
    privacy.metrics.insert(
        "privacy".into(),
        json!({"members_given": 500, "non_members_given": 500, "policies": [
            {"policy": "full", "loss": attack(0.71), "confidence": attack(0.69), "population": {"metrics": {"auc": 0.7}}},
            {"policy": "label", "loss": attack(0.52), "confidence": attack(0.5), "population": {"metrics": {"auc": 0.5}}}
        ]}),
    );

    let mut extraction = report("assess extraction", "model.onnx");
    extraction.metrics.insert(
        "extraction".into(),
        json!({"model": "model.onnx", "curves": [
            {"strategy": "random", "policy": "full", "points": [{"queries": 100, "fidelity": 0.7}, {"queries": 1000, "fidelity": 0.93}]},
            {"strategy": "random", "policy": "label", "points": [{"queries": 100, "fidelity": 0.6}, {"queries": 1000, "fidelity": 0.85}]}
        ], "prada": [{"strategy": "random", "queries": 1000, "queries_to_alarm": 420}],
        "benign": {"alarms": 1, "streams": 50, "false_alarm_rate": 0.02}}),
    );

    let mut llm = report("assess llm", "http://127.0.0.1:8000/v1/chat/completions");
    llm.metrics.insert(
        "llm".into(),
        json!({"target": "http://127.0.0.1:8000/v1/chat/completions", "model": "support-bot", "requests": 29,
        "untested": [],
        "families": [
            {"family": "system-prompt-extraction", "sent": 7, "successes": 2, "resisted": 5, "undetermined": 0, "errors": 0, "success_rate": 0.2857, "atlas": "AML.T0056", "owasp": "LLM07"},
            {"family": "goal-hijacking", "sent": 4, "successes": 0, "resisted": 4, "undetermined": 0, "errors": 0, "success_rate": 0.0, "atlas": "AML.T0051", "owasp": "LLM01"}
        ],
        "probes": [{"family": "system-prompt-extraction", "probe": "repeat-above", "streamed": false, "outcome": "success", "oracle": "canary", "refused": false, "answer": "Sure. You are the support bot of Example Ltd. Confidential marker CANARY-…"}]}),
    );

    vec![
        ("scan", scan),
        ("audit", audit),
        ("drift", drift),
        ("privacy", privacy),
        ("extraction", extraction),
        ("llm", llm),
    ]
}

#[test]
fn every_report_view_matches_its_snapshot() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots");
    let update = std::env::var_os("UPDATE_SNAPSHOTS").is_some();
    let mut changed = Vec::new();
    for (name, report) in reports() {
        let mut out = Vec::new();
        aegis_report::render(
            &report,
            aegis_report::Format::Html,
            &[&RULE],
            &aegis_report::HumanOptions::default(),
            &mut out,
        )
        .unwrap();
        let page = String::from_utf8(out).unwrap();
        let path = dir.join(format!("{name}.html"));
        if update {
            std::fs::write(&path, &page).unwrap();
            continue;
        }
        let want = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!("{}: {e}; run with UPDATE_SNAPSHOTS=1 once", path.display())
        });
        if want != page {
            let line = want
                .lines()
                .zip(page.lines())
                .position(|(a, b)| a != b)
                .map_or(want.lines().count().min(page.lines().count()), |i| i + 1);
            changed.push(format!("{name}.html differs from line {line}"));
        }
    }
    assert!(
        changed.is_empty(),
        "{}\nreview the change, then: UPDATE_SNAPSHOTS=1 cargo test -p aegis-report --test snapshots",
        changed.join("\n")
    );
}

#[test]
fn the_docs_glossary_is_the_reports_glossary() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/glossary.md");
    let md = aegis_report::glossary_markdown();
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&path, &md).unwrap();
    }
    let docs = std::fs::read_to_string(&path).unwrap();
    assert_eq!(
        docs, md,
        "docs/glossary.md is stale: UPDATE_SNAPSHOTS=1 cargo test -p aegis-report --test snapshots"
    );
}
