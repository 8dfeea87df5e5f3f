//! `aegis audit` and `aegis schema` end to end on the committed poisoned tables of `testdata/audit` (generated
//! by `aegis_test_support::poison`; each has a `.truth.csv` of the poisoned rows): detection per kind with its
//! precision and recall, the clean table as the negative case, the flags CSV contract, and clear errors.

mod common;

use common::aegis;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use aegis_core::{Report, Severity};

fn testdata(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/audit")
        .join(name)
}

/// Truth rows of one kind.
fn truth(stem: &str, kind: &str) -> BTreeSet<usize> {
    let text = std::fs::read_to_string(testdata(&format!("{stem}.truth.csv"))).unwrap();
    text.lines()
        .skip(1)
        .filter_map(|l| l.split_once(','))
        .filter(|(_, k)| *k == kind)
        .map(|(r, _)| r.parse().unwrap())
        .collect()
}

struct Run {
    report: Report,
    /// (row, score, flagged, kinds) per data row.
    flags: Vec<(usize, f32, bool, Vec<String>)>,
}

/// `aegis audit testdata/audit/STEM.csv --label label --flags … --format json` plus `extra`.
fn audit(stem: &str, extra: &[&str]) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let data = testdata(&format!("{stem}.csv"));
    let flags = dir.path().join("flags.csv");
    let mut args = vec![
        "audit",
        data.to_str().unwrap(),
        "--label",
        "label",
        "--flags",
        flags.to_str().unwrap(),
        "--format",
        "json",
        "--fail-on",
        "critical",
    ];
    args.extend_from_slice(extra);
    let out = aegis(&args, dir.path());
    assert!(
        out.status.success(),
        "aegis audit failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Report = serde_json::from_slice(&out.stdout).expect("stdout is the JSON report");
    // Every report lists the most severe findings first.
    assert!(
        report
            .findings
            .windows(2)
            .all(|w| w[0].severity >= w[1].severity),
        "{:?}",
        report
            .findings
            .iter()
            .map(|f| f.severity)
            .collect::<Vec<_>>()
    );
    let text = std::fs::read_to_string(&flags).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("row,score,flagged,kinds"));
    let flags = lines
        .map(|l| {
            let f: Vec<&str> = l.splitn(4, ',').collect();
            let kinds = f[3]
                .split(';')
                .filter(|k| !k.is_empty())
                .map(str::to_owned)
                .collect();
            (
                f[0].parse().unwrap(),
                f[1].parse().unwrap(),
                f[2] == "1",
                kinds,
            )
        })
        .collect();
    Run { report, flags }
}

/// Precision and recall of the rows flagged with `kind` against `truth`.
fn precision_recall(run: &Run, kind: &str, truth: &BTreeSet<usize>) -> (f64, f64) {
    let found: BTreeSet<usize> = run
        .flags
        .iter()
        .filter(|f| f.2 && f.3.iter().any(|k| k == kind))
        .map(|f| f.0)
        .collect();
    let hit = found.intersection(truth).count() as f64;
    (
        hit / found.len().max(1) as f64,
        hit / truth.len().max(1) as f64,
    )
}

fn rules(run: &Run) -> Vec<&str> {
    run.report
        .findings
        .iter()
        .map(|f| f.rule.as_str())
        .collect()
}

#[test]
fn clean_table_gives_no_high_finding_and_flags_few_rows() {
    let run = audit("clean", &[]);
    let rows = std::fs::read_to_string(testdata("clean.csv"))
        .unwrap()
        .lines()
        .count()
        - 1;
    assert_eq!(run.flags.len(), rows, "one flags line per data row");
    assert!(
        run.flags.iter().enumerate().all(|(i, f)| f.0 == i),
        "rows are 0-based and in order"
    );
    assert!(run.flags.iter().all(|f| (0.0..=1.0).contains(&f.1)));
    let high: Vec<_> = run
        .report
        .findings
        .iter()
        .filter(|f| f.severity >= Severity::High)
        .map(|f| (f.rule.as_str(), f.message.as_str()))
        .collect();
    assert!(high.is_empty(), "clean data, high findings: {high:?}");
    for kind in ["backdoor", "outlier", "conflict"] {
        let n = run
            .flags
            .iter()
            .filter(|f| f.3.iter().any(|k| k == kind))
            .count();
        assert!(n <= rows / 200, "{n} rows flagged as {kind} in clean data");
    }
}

#[test]
fn backdoor_trigger_is_found_with_its_rule() {
    let run = audit("backdoor-2pct", &[]);
    let (p, r) = precision_recall(&run, "backdoor", &truth("backdoor-2pct", "backdoor"));
    assert!(p >= 0.8 && r >= 0.8, "backdoor precision {p} recall {r}");
    let f = run
        .report
        .findings
        .iter()
        .find(|f| f.rule.as_str() == "AEG-AUD-040")
        .expect("a backdoor finding");
    assert!(f.severity >= Severity::High);
    let rule = f.evidence["rule"].as_str().unwrap();
    // The planted trigger is `count == 17 AND channel == partner`; 17 never occurs naturally, so the
    // smallest rule that covers the poisoned rows is the single item.
    assert!(
        rule.contains("count == 17") && rule.ends_with("-> label 1"),
        "{rule}"
    );
}

#[test]
fn flipped_labels_are_found() {
    for stem in ["flips-5pct", "targeted-5pct"] {
        let run = audit(stem, &[]);
        let (p, r) = precision_recall(&run, "label", &truth(stem, "label"));
        let f1 = 2.0 * p * r / (p + r).max(1e-9);
        assert!(f1 >= 0.5, "{stem}: label precision {p} recall {r}");
        assert!(rules(&run).contains(&"AEG-AUD-001"));
    }
}

#[test]
fn outliers_are_found() {
    let run = audit("outliers-2pct", &[]);
    let t = truth("outliers-2pct", "outlier");
    let (p, r) = precision_recall(&run, "outlier", &t);
    assert!(p >= 0.8 && r >= 0.8, "outlier precision {p} recall {r}");
    // --top K flags exactly K rows as outliers.
    let run = audit("outliers-2pct", &["--checks", "outliers", "--top", "7"]);
    let n = run
        .flags
        .iter()
        .filter(|f| f.3.iter().any(|k| k == "outlier"))
        .count();
    assert_eq!(n, 7);
    assert!(run.flags.iter().all(|f| !f.3.iter().any(|k| k == "label")));
}

#[test]
fn label_conflicting_duplicates_are_found() {
    let run = audit("conflicts-2pct", &[]);
    let (p, r) = precision_recall(&run, "conflict", &truth("conflicts-2pct", "conflict"));
    let f1 = 2.0 * p * r / (p + r).max(1e-9);
    assert!(f1 >= 0.9, "conflict precision {p} recall {r}");
    assert!(rules(&run).contains(&"AEG-AUD-020"));
}

#[test]
fn near_duplicates_are_reported_apart_from_natural_ones() {
    let run = audit("duplicates-2pct", &["--checks", "duplicates"]);
    let near = truth("duplicates-2pct", "near-duplicate");
    let f = run
        .report
        .findings
        .iter()
        .find(|f| f.rule.as_str() == "AEG-AUD-022")
        .expect("a near-duplicate finding");
    let listed: BTreeSet<usize> = f.evidence["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    assert!(!listed.is_disjoint(&near));
    assert!(
        f.evidence["near_rows"].as_u64().unwrap() as usize >= near.len(),
        "every near copy (and its source) is counted"
    );
    assert!(
        rules(&run).contains(&"AEG-AUD-023"),
        "exact duplicates reported"
    );
    assert!(
        run.flags.iter().all(|f| !f.2),
        "same-label copies are reported, never flagged"
    );
}

#[test]
fn reference_snapshot_reports_new_rows() {
    let reference = testdata("clean.csv");
    let run = audit(
        "outliers-2pct",
        &[
            "--checks",
            "duplicates",
            "--reference",
            reference.to_str().unwrap(),
        ],
    );
    let outliers = truth("outliers-2pct", "outlier");
    let (p, r) = precision_recall(&run, "new", &outliers);
    assert!(
        p >= 0.99 && r >= 0.99,
        "appended rows are the new ones: {p} {r}"
    );
    assert!(rules(&run).contains(&"AEG-AUD-024"));
}

#[test]
fn schema_infer_then_check() {
    let dir = tempfile::tempdir().unwrap();
    let clean = testdata("clean.csv");
    let out = aegis(
        &[
            "schema",
            "infer",
            clean.to_str().unwrap(),
            "--label",
            "label",
        ],
        dir.path(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let toml = String::from_utf8(out.stdout).unwrap();
    assert!(toml.contains("[[column]]") && toml.contains("name = \"channel\""));
    let schema = dir.path().join("schema.toml");
    std::fs::write(&schema, &toml).unwrap();

    let check = |data: &Path| {
        let out = aegis(
            &[
                "schema",
                "check",
                data.to_str().unwrap(),
                "--schema",
                schema.to_str().unwrap(),
                "--format",
                "json",
            ],
            dir.path(),
        );
        let report: Report = serde_json::from_slice(&out.stdout).unwrap();
        (out.status.code(), report)
    };
    let (code, report) = check(&clean);
    assert_eq!(code, Some(0));
    assert!(report.findings.is_empty(), "{:?}", report.findings);

    // The outlier rows break the inferred ranges and bring an unseen category.
    let (code, report) = check(&testdata("outliers-2pct.csv"));
    assert_eq!(
        code,
        Some(0),
        "medium violations stay under the default --fail-on"
    );
    let range = report
        .findings
        .iter()
        .find(|f| f.rule.as_str() == "AEG-SCH-004")
        .expect("out-of-range finding");
    let rows: BTreeSet<usize> = range.evidence["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    assert!(rows.is_subset(&truth("outliers-2pct", "outlier")));

    // A missing column is high: exit code 1.
    let text = std::fs::read_to_string(&clean).unwrap();
    let cut: String = text
        .lines()
        .map(|l| l.rsplit_once(',').map_or(l, |x| x.0).to_owned() + "\n")
        .collect();
    let cut_path = dir.path().join("cut.csv");
    std::fs::write(&cut_path, cut).unwrap();
    let (code, report) = check(&cut_path);
    assert_eq!(code, Some(1));
    assert!(report
        .findings
        .iter()
        .any(|f| f.rule.as_str() == "AEG-SCH-001"));
}

#[test]
fn bad_input_gets_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let clean = testdata("clean.csv");
    let out = aegis(
        &["audit", clean.to_str().unwrap(), "--label", "nope"],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("nope") && err.contains("clean.csv"), "{err}");

    // A flags file that cannot be written is refused before the audit runs (no report on stdout).
    let out = aegis(
        &[
            "audit",
            clean.to_str().unwrap(),
            "--label",
            "label",
            "--flags",
            "no-dir/flags.csv",
        ],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--flags") && err.contains("does not exist"),
        "{err}"
    );
    assert!(out.stdout.is_empty());

    let ragged = dir.path().join("ragged.csv");
    std::fs::write(&ragged, "a,b,label\n1,2,0\n3,0\n").unwrap();
    let out = aegis(
        &["audit", ragged.to_str().unwrap(), "--label", "label"],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("ragged.csv") && err.contains('3'), "{err}");

    let out = aegis(
        &["audit", clean.to_str().unwrap(), "--checks", "magic"],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown check"));
}

#[test]
fn without_labels_only_label_free_checks_run() {
    let dir = tempfile::tempdir().unwrap();
    let data = testdata("outliers-2pct.csv");
    let out = aegis(
        &["audit", data.to_str().unwrap(), "--format", "json"],
        dir.path(),
    );
    assert!(out.status.code() == Some(0) || out.status.code() == Some(1));
    let report: Report = serde_json::from_slice(&out.stdout).unwrap();
    assert!(report.metrics["skipped"]
        .as_str()
        .unwrap()
        .contains("--label"));
    assert!(report
        .findings
        .iter()
        .any(|f| f.rule.as_str() == "AEG-AUD-010"));
}
