//! `aegis drift` end to end: the real binary on small generated CSV pairs (a shifted numeric and a shifted
//! categorical column must be detected, unshifted ones not; exit codes; JSON parsed back), on the committed
//! reference pair of `testdata/drift` (numbers equal to scipy's, from `expected.json`), and clear errors.

mod common;

use common::aegis;

use std::path::{Path, PathBuf};

use serde_json::Value;

/// A small deterministic generator (tests must not depend on a crate's RNG stream).
struct Lcg(u64);

impl Lcg {
    fn uniform(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 11) as f64 + 0.5) / ((1u64 << 53) as f64)
    }
    fn normal(&mut self) -> f64 {
        let (a, b) = (self.uniform(), self.uniform());
        (-2.0 * a.ln()).sqrt() * (2.0 * std::f64::consts::PI * b).cos()
    }
}

/// Columns: `same` (normal), `shifted` (normal, +0.5 sd when `shift`), `color` (categorical, frequencies change
/// when `shift`), `city` (categorical, quoted with commas), `note` (text-like: every value distinct).
fn write_pair(dir: &Path, rows: usize, shift: bool) -> (PathBuf, PathBuf) {
    let mut paths = Vec::new();
    for (name, seed, shifted) in [("ref.csv", 1u64, false), ("cur.csv", 2u64, shift)] {
        let mut rng = Lcg(seed);
        let mut text = String::from("same,shifted,color,city,note\n");
        for i in 0..rows {
            let same = rng.normal();
            let s = rng.normal() + if shifted { 0.5 } else { 0.0 };
            let u = rng.uniform();
            let color = if shifted {
                if u < 0.2 {
                    "red"
                } else if u < 0.5 {
                    "green"
                } else {
                    "blue"
                }
            } else if u < 0.5 {
                "red"
            } else if u < 0.8 {
                "green"
            } else {
                "blue"
            };
            let city = if rng.uniform() < 0.5 {
                "\"Paris, FR\""
            } else {
                "\"Oslo, NO\""
            };
            let same_cell = if i % 50 == 0 {
                String::new()
            } else {
                format!("{same:.6}")
            };
            text.push_str(&format!("{same_cell},{s:.6},{color},{city},n{seed}_{i}\n"));
        }
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        paths.push(path);
    }
    let cur = paths.pop().unwrap();
    (paths.pop().unwrap(), cur)
}

fn run_json(args: &[&str], cwd: &Path) -> (i32, Value) {
    let out = aegis(args, cwd);
    let code = out.status.code().unwrap();
    assert!(
        code == 0 || code == 1,
        "exit {code}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let envelope: Value = serde_json::from_slice(&out.stdout).expect("JSON report on stdout");
    assert_eq!(envelope["command"], "drift", "the standard report envelope");
    let json = envelope["metrics"]["drift"].clone();
    // The envelope's findings are the drift report's findings.
    assert_eq!(
        envelope["findings"].as_array().map(Vec::len),
        json["findings"].as_array().map(Vec::len)
    );
    (code, json)
}

fn drifted(report: &Value) -> Vec<String> {
    report["columns"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["drifted"].as_bool().unwrap())
        .map(|c| c["name"].as_str().unwrap().to_owned())
        .collect()
}

fn column<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["columns"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap()
}

#[test]
fn shifted_columns_are_detected_and_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let (r, c) = write_pair(dir.path(), 3000, true);
    let (code, report) = run_json(
        &[
            "drift",
            r.to_str().unwrap(),
            c.to_str().unwrap(),
            "--format",
            "json",
            "--max-categories",
            "100",
        ],
        dir.path(),
    );
    assert_eq!(code, 1, "dataset drift is a high finding");
    assert_eq!(drifted(&report), ["shifted", "color"]);
    assert_eq!(report["dataset_drift"], true);
    assert_eq!(report["reference_rows"], 3000);
    let same = column(&report, "same");
    assert_eq!(same["kind"], "numeric");
    assert!((same["reference_missing_share"].as_f64().unwrap() - 0.02).abs() < 1e-12);
    assert_eq!(column(&report, "city")["kind"], "categorical");
    assert_eq!(column(&report, "city")["method"], "dof=1");
    // 6000 distinct values > --max-categories: skipped as text with a note.
    assert!(column(&report, "note")["note"]
        .as_str()
        .unwrap()
        .contains("text"));
    let rules: Vec<&str> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["rule"].as_str().unwrap())
        .collect();
    assert_eq!(rules, ["AEG-DRIFT-001", "AEG-DRIFT-001", "AEG-DRIFT-002"]);
}

#[test]
fn unshifted_pair_is_clean_and_exit_0() {
    let dir = tempfile::tempdir().unwrap();
    let (r, c) = write_pair(dir.path(), 3000, false);
    let (code, report) = run_json(
        &[
            "drift",
            r.to_str().unwrap(),
            c.to_str().unwrap(),
            "--format",
            "json",
            "--drop",
            "note",
        ],
        dir.path(),
    );
    assert_eq!(code, 0);
    assert!(drifted(&report).is_empty());
    assert_eq!(report["dataset_drift"], false);
    assert_eq!(report["tested"], 4);
    // Human output names the verdict.
    let out = aegis(
        &[
            "drift",
            r.to_str().unwrap(),
            c.to_str().unwrap(),
            "--drop",
            "note",
        ],
        dir.path(),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("0 of 4 tested columns drifted"), "{text}");
}

#[test]
fn sketched_columns_give_the_same_verdicts() {
    let dir = tempfile::tempdir().unwrap();
    let (r, c) = write_pair(dir.path(), 3000, true);
    let (_, report) = run_json(
        &[
            "drift",
            r.to_str().unwrap(),
            c.to_str().unwrap(),
            "--format",
            "json",
            "--exact-limit",
            "500",
            "--drop",
            "note",
        ],
        dir.path(),
    );
    assert_eq!(column(&report, "shifted")["sketched"], true);
    assert_eq!(drifted(&report), ["shifted", "color"]);
}

#[test]
fn reference_pair_matches_scipy() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/drift");
    let expected_path = root.join("expected.json");
    if !expected_path.exists() {
        return;
    }
    let expected: Value =
        serde_json::from_str(&std::fs::read_to_string(&expected_path).unwrap()).unwrap();
    let (_, report) = run_json(
        &[
            "drift",
            root.join("reference.csv").to_str().unwrap(),
            root.join("current.csv").to_str().unwrap(),
            "--format",
            "json",
            "--correction",
            "none",
        ],
        &root,
    );
    let close = |a: &Value, b: &Value, what: &str| {
        let (a, b) = (a.as_f64().unwrap(), b.as_f64().unwrap());
        assert!(
            (a - b).abs() <= 1e-9 * b.abs().max(1e-300) || (a - b).abs() <= 1e-12,
            "{what}: aegis {a} vs scipy {b}"
        );
    };
    for (name, exp) in expected["columns"].as_object().unwrap() {
        let col = column(&report, name);
        if exp["kind"] == "numeric" {
            close(
                &col["statistic"],
                &exp["ks"]["statistic"],
                &format!("{name} ks D"),
            );
            close(
                &col["pvalue"],
                &exp["ks"]["pvalue"],
                &format!("{name} ks p"),
            );
            close(
                &col["wasserstein"],
                &exp["wasserstein_normalized"],
                &format!("{name} W"),
            );
        } else {
            close(
                &col["statistic"],
                &exp["chi_square"]["statistic"],
                &format!("{name} chi2"),
            );
            close(
                &col["pvalue"],
                &exp["chi_square"]["pvalue"],
                &format!("{name} chi2 p"),
            );
        }
        close(&col["psi"], &exp["psi"], &format!("{name} psi"));
        close(
            &col["jensen_shannon"],
            &exp["jensen_shannon"],
            &format!("{name} js"),
        );
    }
}

#[test]
fn errors_name_files_and_lines() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("a.csv"), "x,y\n1,2\n3,4\n").unwrap();
    std::fs::write(d.join("ragged.csv"), "x,y\n1,2\n3\n").unwrap();
    std::fs::write(d.join("other.csv"), "x,z\n1,2\n").unwrap();
    std::fs::write(d.join("empty.csv"), "").unwrap();
    std::fs::write(d.join("header.csv"), "x,y\n").unwrap();
    let err = |a: &str, b: &str| {
        let out = aegis(&["drift", a, b], d);
        assert_eq!(out.status.code(), Some(2), "{a} {b}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let e = err("a.csv", "ragged.csv");
    assert!(e.contains("ragged.csv line 3"), "{e}");
    let e = err("a.csv", "other.csv");
    assert!(
        e.contains("a.csv") && e.contains("other.csv") && e.contains("\"y\""),
        "{e}"
    );
    let e = err("a.csv", "empty.csv");
    assert!(e.contains("empty.csv is empty"), "{e}");
    let e = err("header.csv", "a.csv");
    assert!(
        e.contains("header.csv has a header row but no data rows"),
        "{e}"
    );
    let e = err("a.csv", "header.csv");
    assert!(
        e.contains("header.csv has a header row but no data rows"),
        "{e}"
    );
}

/// 8 normal features and a label, as `testdata/ml/torch_mlp.onnx` (8 inputs, 3 classes) takes them; `shift`
/// moves every feature by ±3 so the model's answers change.
fn write_model_table(path: &Path, seed: u64, shift: bool) {
    let mut rng = Lcg(seed);
    let mut text = String::from("f0,f1,f2,f3,f4,f5,f6,f7,label\n");
    for i in 0..2000 {
        let row: Vec<String> = (0..8)
            .map(|j| {
                let d = if !shift {
                    0.0
                } else if j % 2 == 0 {
                    3.0
                } else {
                    -3.0
                };
                format!("{:.5}", rng.normal() + d)
            })
            .collect();
        text.push_str(&format!("{},{}\n", row.join(","), i % 3));
    }
    std::fs::write(path, text).unwrap();
}

#[test]
fn prediction_drift_with_a_model() {
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/ml/torch_mlp.onnx");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_model_table(&d.join("r.csv"), 1, false);
    write_model_table(&d.join("c.csv"), 2, false);
    write_model_table(&d.join("s.csv"), 3, true);
    let run = |cur: &str| {
        run_json(
            &[
                "drift",
                "r.csv",
                cur,
                "--model",
                model.to_str().unwrap(),
                "--label",
                "label",
                "--format",
                "json",
            ],
            d,
        )
        .1
    };
    let clean = run("c.csv");
    assert_eq!(clean["prediction"]["drifted"], false);
    assert_eq!(
        clean["prediction"]["reference_counts"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    // The label is neither compared nor a model input.
    assert_eq!(clean["columns"].as_array().unwrap().len(), 8);
    let shifted = run("s.csv");
    assert_eq!(shifted["prediction"]["drifted"], true);
    assert!(shifted["findings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["rule"] == "AEG-DRIFT-003"));
}

#[test]
fn schema_kinds_compare_timestamps_as_numbers_and_booleans_as_categories() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for (name, seed, shift) in [("r.csv", 5u64, false), ("c.csv", 6u64, true)] {
        let mut rng = Lcg(seed);
        let mut text = String::from("when,flag,amount\n");
        for i in 0..3000 {
            let mut day = 1 + i % 28;
            if shift && rng.uniform() < 0.5 {
                day = (day + 3).min(28);
            }
            let p = if shift { 0.6 } else { 0.3 };
            let flag = rng.uniform() < p;
            text.push_str(&format!(
                "2026-02-{day:02}T10:00:00Z,{flag},{:.4}\n",
                rng.normal()
            ));
        }
        std::fs::write(d.join(name), text).unwrap();
    }
    let infer = aegis(&["schema", "infer", "r.csv", "-o", "schema.toml"], d);
    assert_eq!(
        infer.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&infer.stderr)
    );
    let (code, report) = run_json(
        &[
            "drift",
            "r.csv",
            "c.csv",
            "--schema",
            "schema.toml",
            "--format",
            "json",
        ],
        d,
    );
    assert_eq!(code, 1);
    assert_eq!(column(&report, "when")["kind"], "numeric");
    assert_eq!(column(&report, "flag")["kind"], "categorical");
    assert_eq!(drifted(&report), ["when", "flag"]);
    // Without the schema the timestamp is a category (28 distinct days): still compared, by chi-square.
    let (_, plain) = run_json(&["drift", "r.csv", "c.csv", "--format", "json"], d);
    assert_eq!(column(&plain, "when")["kind"], "categorical");
}
