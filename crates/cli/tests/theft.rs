//! `aegis assess privacy` and `aegis assess extraction` end to end: the real binary on the gateway's demo model
//! and its reference rows (JSON parsed back, exit codes, bad flags named).

mod common;

use std::path::{Path, PathBuf};

use common::aegis;
use serde_json::Value;

fn assets() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../gateway/assets")
}

/// Split the demo reference rows into two CSVs (first half, second half).
fn halves(dir: &Path) -> (PathBuf, PathBuf) {
    let text = std::fs::read_to_string(assets().join("demo-fraud.reference.csv")).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    let rows: Vec<&str> = lines.collect();
    let (a, b) = rows.split_at(rows.len() / 2);
    let write = |name: &str, rows: &[&str]| {
        let path = dir.join(name);
        std::fs::write(&path, format!("{header}\n{}\n", rows.join("\n"))).unwrap();
        path
    };
    (write("a.csv", a), write("b.csv", b))
}

fn json(out: &std::process::Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// `aegis [PREFIX] assess privacy` on the demo model with the two halves and the given policies.
fn privacy(dir: &Path, prefix: &[&str], policies: &str) -> std::process::Output {
    let (a, b) = halves(dir);
    let model = assets().join("demo-fraud.onnx");
    let mut args: Vec<&str> = prefix.to_vec();
    args.extend([
        "assess",
        "privacy",
        model.to_str().unwrap(),
        "--members",
        a.to_str().unwrap(),
        "--non-members",
        b.to_str().unwrap(),
        "--label",
        "label",
        "--policies",
        policies,
    ]);
    aegis(&args, dir)
}

#[test]
fn privacy_reports_every_policy_and_attack() {
    let dir = tempfile::tempdir().unwrap();
    let out = privacy(dir.path(), &["--format", "json"], "label,top-k:1");
    let code = out.status.code().unwrap();
    assert!(
        code == 0 || code == 1,
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = json(&out);
    let policies: Vec<&str> = report["metrics"]["privacy"]["policies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["policy"].as_str().unwrap())
        .collect();
    assert_eq!(policies.len(), 3, "{policies:?}");
    assert_eq!(policies[0], "full");
    // The demo model never saw either half: membership is a coin flip.
    let auc = report["metrics"]["privacy"]["policies"][0]["loss"]["auc"]
        .as_f64()
        .unwrap();
    assert!((auc - 0.5).abs() < 0.1, "loss AUC {auc}");
}

#[test]
fn privacy_names_a_bad_policy() {
    let dir = tempfile::tempdir().unwrap();
    let out = privacy(dir.path(), &[], "bogus");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("bogus"));
}

/// `aegis --format json assess extraction` of the demo model on `data` (the label column `label`), with `extra`
/// flags.
fn extraction(dir: &Path, data: &Path, extra: &[&str]) -> std::process::Output {
    let model = assets().join("demo-fraud.onnx");
    let mut args = vec![
        "--format",
        "json",
        "assess",
        "extraction",
        model.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--label",
        "label",
    ];
    args.extend_from_slice(extra);
    aegis(&args, dir)
}

/// The exit code of a finished assessment (0 clean, 1 findings) and its JSON report.
fn assessed(out: &std::process::Output) -> Value {
    let code = out.status.code().unwrap();
    assert!(
        code == 0 || code == 1,
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    json(out)
}

#[test]
fn extraction_reports_fidelity_curves_and_prada() {
    let dir = tempfile::tempdir().unwrap();
    let (a, _) = halves(dir.path());
    let flags = [
        "--budgets",
        "50,200",
        "--strategies",
        "pool,jacobian",
        "--policies",
        "label",
    ];
    let report = assessed(&extraction(dir.path(), &a, &flags));
    let text = report["metrics"]["extraction"].to_string();
    assert!(text.contains("jacobian") && text.contains("pool"), "{text}");
    let bad = extraction(dir.path(), &a, &["--budgets", "0"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--budgets"));
}

/// `aegis assess extraction --prada-distance SPACE`: the space is used (it changes the detector's statistics)
/// and reported; an unknown space is refused naming the flag.
#[test]
fn extraction_prada_distance_space_is_used_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let (a, _) = halves(dir.path());
    let run = |space: &str| {
        let flags = [
            "--budgets",
            "100",
            "--strategies",
            "jacobian",
            "--policies",
            "label",
        ];
        let mut all = flags.to_vec();
        all.extend(["--prada-distance", space]);
        extraction(dir.path(), &a, &all)
    };
    let mut min_w = Vec::new();
    for space in ["std", "normal-scores"] {
        let benign = assessed(&run(space))["metrics"]["extraction"]["benign"].clone();
        assert_eq!(benign["distance"], space, "{benign}");
        min_w.push(benign["min_w"].clone());
    }
    assert_ne!(min_w[0], min_w[1], "the distance space changed nothing");
    let bad = run("cosine");
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--prada-distance"));
}

/// Degenerate runs are errors (exit 2) that say why, never a pass: members that are the non-members, a pool too
/// small to measure fidelity on.
#[test]
fn degenerate_privacy_and_extraction_runs_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (a, _) = halves(d);
    let model = assets().join("demo-fraud.onnx");
    let model = model.to_str().unwrap();
    // The same rows as members and non-members.
    let same = aegis(
        &[
            "assess",
            "privacy",
            model,
            "--members",
            a.to_str().unwrap(),
            "--non-members",
            a.to_str().unwrap(),
            "--label",
            "label",
        ],
        d,
    );
    assert_eq!(same.status.code(), Some(2));
    let err = String::from_utf8_lossy(&same.stderr);
    assert!(
        err.contains("also member rows") && err.contains("held-out"),
        "{err}"
    );
    // A 40-row pool leaves 12 held-out rows.
    let text = std::fs::read_to_string(&a).unwrap();
    let small: Vec<&str> = text.lines().take(41).collect();
    let small_path = d.join("small.csv");
    std::fs::write(&small_path, small.join("\n") + "\n").unwrap();
    let out = extraction(d, &small_path, &["--budgets", "20"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("held-out rows") && err.contains("not a measurement"),
        "{err}"
    );
}
