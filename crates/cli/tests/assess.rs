//! `aegis assess robustness` and `aegis harden` end to end: a generated dataset, a model trained and
//! exported by the tests, the report parsed back.

mod common;

use common::aegis;

use std::path::Path;

use aegis_core::Report;
use aegis_ml::native::{Arch, NativeModel};
use aegis_ml::synthetic::blobs;
use aegis_ml::train::{train, NoHooks, TrainConfig, Trainable};

const D: usize = 6;

/// A CSV with an id column, six features in [0, 1] and a 0/1 label; returns the rows too.
fn write_csv(path: &Path, n: usize, seed: u64) -> (Vec<f32>, Vec<u32>) {
    let (x, y) = blobs(n, D, 0.15, 0.1, seed);
    let header: Vec<String> = (0..D).map(|j| format!("f{j}")).collect();
    let mut text = format!("id,{},label\n", header.join(","));
    for (i, (row, c)) in x.chunks(D).zip(&y).enumerate() {
        let values: Vec<String> = row.iter().map(|v| v.to_string()).collect();
        text += &format!("{i},{},{c}\n", values.join(","));
    }
    std::fs::write(path, text).unwrap();
    (x, y)
}

/// `aegis assess robustness model.onnx --data test.csv --label label` plus `extra`, in `dir`.
fn assess(extra: &[&str], dir: &Path) -> std::process::Output {
    let mut args = vec![
        "assess",
        "robustness",
        "model.onnx",
        "--data",
        "test.csv",
        "--label",
        "label",
    ];
    args.extend_from_slice(extra);
    aegis(&args, dir)
}

fn trained_onnx(dir: &Path) -> std::path::PathBuf {
    let (x, y) = write_csv(&dir.join("train.csv"), 400, 1);
    let m = NativeModel::new(Arch::Mlp(vec![16]), D, 2, 1).unwrap();
    train(
        &m,
        &x,
        &y,
        &TrainConfig {
            epochs: 15,
            batch_size: 32,
            lr: 5e-3,
            ..Default::default()
        },
        &mut NoHooks,
    )
    .unwrap();
    let path = dir.join("model.onnx");
    m.save_onnx(&path).unwrap();
    path
}

#[test]
fn robustness_report_is_json_with_a_falling_curve_and_findings() {
    let dir = tempfile::tempdir().unwrap();
    trained_onnx(dir.path());
    write_csv(&dir.path().join("test.csv"), 80, 2);
    let out = assess(
        &[
            "--drop",
            "id",
            "--eps",
            "0.02,0.25",
            "--attacks",
            "fgsm,pgd,square",
            "--queries",
            "200",
            "--format",
            "json",
        ],
        dir.path(),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let report: Report = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report.command, "assess robustness");
    let curve = &report.metrics["robustness"]["curve"];
    let low = curve[0]["robust_accuracy"].as_f64().unwrap();
    let high = curve[1]["robust_accuracy"].as_f64().unwrap();
    assert!(high < 0.3 && low > 0.8, "{curve}");
    assert!(report
        .findings
        .iter()
        .any(|f| f.rule.as_str() == "AEG-ROB-001"));
    assert_eq!(report.metrics["robustness"]["discarded"], 0);
}

/// A graph with an operator off the gradient-checked list (`Exp` on the logits) is assessed as a black box:
/// the report's model line names the operator and the white-box attack is skipped; the same model without it
/// is white-box.
#[test]
fn a_graph_with_an_unlisted_operator_is_reported_as_black_box() {
    let dir = tempfile::tempdir().unwrap();
    let (x, y) = write_csv(&dir.path().join("train.csv"), 200, 1);
    let m = NativeModel::new(Arch::Mlp(vec![8]), D, 2, 1).unwrap();
    train(
        &m,
        &x,
        &y,
        &TrainConfig {
            epochs: 5,
            ..Default::default()
        },
        &mut NoHooks,
    )
    .unwrap();
    write_csv(&dir.path().join("test.csv"), 30, 3);
    let mut proto = aegis_ml::export::native_to_onnx(&m).unwrap();
    let white = dir.path().join("model.onnx");
    aegis_ml::export::write_model(&proto, &white).unwrap();
    let args = [
        "--drop",
        "id",
        "--eps",
        "0.05",
        "--attacks",
        "fgsm,square",
        "--format",
        "json",
    ];
    let report = |out: std::process::Output| -> serde_json::Value {
        assert!(
            out.status.code().is_some_and(|c| c < 2),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let report: Report = serde_json::from_slice(&out.stdout).unwrap();
        report.metrics["robustness"].clone()
    };
    let r = report(assess(&args, dir.path()));
    assert!(
        !r["model"].as_str().unwrap().contains("black-box"),
        "{}",
        r["model"]
    );
    assert!(
        r["skipped"].as_array().unwrap().is_empty(),
        "{}",
        r["skipped"]
    );

    let g = proto.graph.as_mut().unwrap();
    g.node.push(aegis_formats::onnx::proto::NodeProto {
        op_type: "Exp".into(),
        name: "exp".into(),
        input: vec!["logits".into()],
        output: vec!["exp_logits".into()],
        ..Default::default()
    });
    g.output[0].name = "exp_logits".into();
    aegis_ml::export::write_model(&proto, &white).unwrap();
    let r = report(assess(&args, dir.path()));
    let model = r["model"].as_str().unwrap();
    assert!(
        model.contains("black-box") && model.contains("Exp"),
        "{model}"
    );
    let skipped = r["skipped"].to_string();
    assert!(
        skipped.contains("fgsm") && skipped.contains("no gradients"),
        "{skipped}"
    );
    assert_eq!(r["attacks"], serde_json::json!(["square"]));

    // Without --attacks: the strongest set that fits each model.
    let auto = [
        "--drop",
        "id",
        "--eps",
        "0.05",
        "--queries",
        "40",
        "--format",
        "json",
    ];
    let r = report(assess(&auto, dir.path()));
    assert_eq!(
        r["attacks"],
        serde_json::json!(["square", "hsj"]),
        "black box"
    );
    assert_eq!(r["default_attacks"], true);
    assert_eq!(r["bounds_inferred"], true);
    let original = aegis_ml::export::native_to_onnx(&m).unwrap();
    aegis_ml::export::write_model(&original, &white).unwrap();
    let r = report(assess(&auto, dir.path()));
    assert_eq!(
        r["attacks"],
        serde_json::json!(["pgd", "autoattack", "square"]),
        "white box"
    );
}

/// One schema file: `aegis schema infer` writes it, `aegis assess --schema` reads it (with its attacker-facing
/// keys), and the gateway loads the model against it (`aegis model list` loads exactly as `aegis serve` does).
#[test]
fn the_inferred_schema_serves_assess_and_the_gateway() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    trained_onnx(d);
    // The model's inputs are f0..f5: a training file without the id column.
    let text = std::fs::read_to_string(d.join("train.csv")).unwrap();
    let no_id: Vec<String> = text
        .lines()
        .map(|l| l.split_once(',').map_or(l, |(_, rest)| rest).to_string())
        .collect();
    std::fs::write(d.join("features.csv"), no_id.join("\n") + "\n").unwrap();
    std::fs::write(d.join("test.csv"), no_id[..41].join("\n") + "\n").unwrap();
    let out = aegis(&["schema", "infer", "features.csv", "--label", "label"], d);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let inferred = String::from_utf8(out.stdout).unwrap();
    assert!(
        inferred.contains("[[column]]") && inferred.contains("version"),
        "{inferred}"
    );
    // A reviewer marks f0 immutable in the same file.
    let reviewed = inferred.replacen("name = \"f0\"\n", "name = \"f0\"\nimmutable = true\n", 1);
    assert_ne!(reviewed, inferred, "{inferred}");
    std::fs::write(d.join("schema.toml"), &reviewed).unwrap();

    let out = assess(
        &[
            "--schema",
            "schema.toml",
            "--eps",
            "0.1",
            "--attacks",
            "pgd",
            "--format",
            "json",
        ],
        d,
    );
    assert!(
        out.status.code().is_some_and(|c| c < 2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Report = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report.metrics["schema"], "given");
    let r = &report.metrics["robustness"];
    // The immutable feature is never among those the attack changed.
    let changed = r["vulnerable_features"].to_string();
    assert!(!changed.contains("\"f0\""), "{changed}");

    std::fs::write(
        d.join("models.toml"),
        "[[model]]\nname = \"scorer\"\npath = \"model.onnx\"\nschema = \"schema.toml\"\n",
    )
    .unwrap();
    let out = aegis(&["model", "list", "--config", "models.toml"], d);
    let listed = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{listed}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        listed.contains("scorer") && !listed.contains("REFUSED"),
        "{listed}"
    );

    // A column the model does not take (the id) makes the gateway refuse with the counts named.
    let out = aegis(&["schema", "infer", "train.csv", "--label", "label"], d);
    std::fs::write(d.join("schema.toml"), &out.stdout).unwrap();
    let out = aegis(&["model", "list", "--config", "models.toml"], d);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("REFUSED"));
}

#[test]
fn human_output_shows_the_table_and_errors_name_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    trained_onnx(dir.path());
    write_csv(&dir.path().join("test.csv"), 40, 3);
    let out = assess(
        &["--drop", "id", "--eps", "0.01", "--attacks", "fgsm"],
        dir.path(),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("robust accuracy") && stdout.contains("clean accuracy"),
        "{stdout}"
    );
    // Without --drop the id column is an extra feature: a clear error, exit code 2.
    let out = assess(&[], dir.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr.contains("6 input features") && stderr.contains("--drop"),
        "{stderr}"
    );
    let out = assess(&["--drop", "id", "--attacks", "deepfool"], dir.path());
    assert!(String::from_utf8_lossy(&out.stderr).contains("deepfool"));
    // Degenerate runs are errors, not passes: an eps past every feature's range, no row to attack, a report
    // path that cannot be written (checked before the attack runs).
    for (extra, says) in [
        (vec!["--eps", "1000"], "whole valid range"),
        (vec!["--max-rows", "0"], "--max-rows 0"),
        (vec!["-o", "no-such-dir/report.json"], "does not exist"),
    ] {
        let mut args = vec!["--drop", "id", "--attacks", "fgsm"];
        args.extend(extra.iter().copied());
        let out = assess(&args, dir.path());
        assert_eq!(out.status.code(), Some(2), "{extra:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(says), "{extra:?}: {stderr}");
    }
    let out = aegis(
        &[
            "assess",
            "robustness",
            "missing.onnx",
            "--data",
            "test.csv",
            "--label",
            "label",
            "--drop",
            "id",
        ],
        dir.path(),
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.onnx"));
}

#[test]
fn harden_writes_a_model_that_assess_can_load() {
    let dir = tempfile::tempdir().unwrap();
    write_csv(&dir.path().join("train.csv"), 300, 4);
    let out = aegis(
        &[
            "harden",
            "--arch",
            "mlp:16",
            "--data",
            "train.csv",
            "--label",
            "label",
            "--drop",
            "id",
            "--eps",
            "0.05",
            "--epochs",
            "3",
            "--steps",
            "3",
            "--eval-steps",
            "5",
            "--lr",
            "0.005",
            "--out",
            "hardened.onnx",
            "--format",
            "json",
        ],
        dir.path(),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.code() == Some(0) || out.status.code() == Some(1),
        "{stderr}"
    );
    assert!(stderr.contains("epoch   1"), "{stderr}");
    let report: Report = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report.artefacts[0].path, "hardened.onnx");
    assert!(report.metrics["harden"]["epochs"].as_array().unwrap().len() <= 3);
    // Fine-tune the hardened model once more: an ONNX model can be hardened too.
    let out = aegis(
        &[
            "harden",
            "hardened.onnx",
            "--data",
            "train.csv",
            "--label",
            "label",
            "--drop",
            "id",
            "--eps",
            "0.05",
            "--epochs",
            "1",
            "--steps",
            "2",
            "--eval-steps",
            "2",
            "--out",
            "again.onnx",
            "-q",
        ],
        dir.path(),
    );
    assert!(
        out.status.code() != Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dir.path().join("again.onnx").is_file());
}

/// A scikit-learn logistic regression (`testdata/ml/sk_logreg.onnx`, written by
/// `testdata/ml/make_sklearn_fixture.py`): assessed with gradients through the rewritten LinearClassifier, but
/// `aegis harden` refuses to fine-tune it and says why and what to do instead. The data is semicolon-separated:
/// the model commands read tables in the same dialect as every other command.
#[test]
fn a_scikit_learn_model_is_assessed_but_not_fine_tuned() {
    let dir = tempfile::tempdir().unwrap();
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/ml/sk_logreg.onnx");
    std::fs::copy(&model, dir.path().join("model.onnx")).unwrap();
    // Iris-like rows: four measurements in centimetres and three classes.
    let mut text = String::from("sepal_length;sepal_width;petal_length;petal_width;label\n");
    for i in 0..60 {
        let c = i % 3;
        let f = c as f32;
        let jitter = (i as f32 * 0.37).sin() * 0.2;
        text += &format!(
            "{:.2};{:.2};{:.2};{:.2};{c}\n",
            5.0 + 0.8 * f + jitter,
            3.4 - 0.5 * f + jitter,
            1.5 + 2.5 * f + jitter,
            0.2 + 0.9 * f + jitter
        );
    }
    std::fs::write(dir.path().join("test.csv"), &text).unwrap();
    let out = assess(&["--eps", "0.1", "--format", "json"], dir.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(matches!(out.status.code(), Some(0 | 1)), "{stderr}");
    let report: Report = serde_json::from_slice(&out.stdout).unwrap();
    let robustness = &report.metrics["robustness"];
    assert_eq!(robustness["default_attacks"], true, "{robustness}");
    let out = aegis(
        &[
            "harden",
            "model.onnx",
            "--data",
            "test.csv",
            "--label",
            "label",
            "--eps",
            "0.1",
            "--out",
            "hardened.onnx",
        ],
        dir.path(),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("cannot be fine-tuned") && stderr.contains("LinearClassifier"),
        "{stderr}"
    );
    assert!(stderr.contains("--arch"), "{stderr}");
    assert!(!dir.path().join("hardened.onnx").exists());
}
