//! The classifiers small businesses deploy, as their users export them (skl2onnx with and without `ZipMap`,
//! onnxmltools for XGBoost and LightGBM), load and give the library's own probabilities to 1e-5.
//!
//! The models and the expected probabilities are made by the real libraries at test time
//! (`testdata/ml/make_sklearn_models.py`); `.ci/run` installs them. Outside CI, without them, the test says so
//! in one line and passes; under `CI` it fails.

use std::path::Path;
use std::process::Command;

fn oracle_available() -> bool {
    Command::new("python3")
        .args([
            "-c",
            "import sklearn, skl2onnx, onnxmltools, xgboost, lightgbm",
        ])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn scikit_learn_xgboost_and_lightgbm_exports_match_their_libraries() {
    if !oracle_available() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must install scikit-learn, skl2onnx, onnxmltools, xgboost and lightgbm (see .ci/run)"
        );
        eprintln!("skipped: python3 with scikit-learn, skl2onnx, onnxmltools, xgboost and lightgbm is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/ml/make_sklearn_models.py");
    let out = Command::new("python3")
        .arg(&script)
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let expected: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("expected.json")).unwrap()).unwrap();
    let x: Vec<f32> = expected["x"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap() as f32)
        .collect();
    let n = expected["n"].as_u64().unwrap() as usize;
    let models = expected["models"].as_object().unwrap();
    let mut failures = Vec::new();
    let mut differentiable = Vec::new();
    for (name, want) in models {
        let path = dir.path().join(format!("{name}.onnx"));
        let model = match aegis_ml::load_onnx(&path) {
            Ok(m) => m,
            Err(e) => {
                failures.push(format!("{name}: {e}"));
                continue;
            }
        };
        if model.as_differentiable().is_some() {
            differentiable.push(name.clone());
        }
        let got = model.predict_proba(&x, n).unwrap();
        let k = model.n_classes();
        match want["proba"].as_array() {
            Some(proba) => {
                let worst = proba
                    .iter()
                    .zip(&got)
                    .map(|(p, q)| (p.as_f64().unwrap() as f32 - q).abs())
                    .fold(0.0f32, f32::max);
                if proba.len() != got.len() || worst > 1e-5 {
                    failures.push(format!(
                        "{name}: probabilities differ by {worst} ({} vs {} values)",
                        proba.len(),
                        got.len()
                    ));
                }
            }
            None => {
                // No predict_proba (LinearSVC): the predicted class must agree.
                let labels: Vec<u32> = want["label"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_u64().unwrap() as u32)
                    .collect();
                if aegis_ml::argmax_rows(&got, k) != labels {
                    failures.push(format!("{name}: predicted classes differ"));
                }
            }
        }
    }
    eprintln!(
        "{} models checked; converter failures (not Aegis's): {}; with gradients: {differentiable:?}",
        models.len(),
        expected["failed"]
    );
    assert!(failures.is_empty(), "{failures:#?}");
    for must in [
        "logreg",
        "logreg_zipmap",
        "logreg_binary",
        "logreg_opset12",
        "linear_svc",
        "linear_svc_binary",
        "random_forest",
        "extra_trees",
        "gradient_boosting",
        "gradient_boosting_binary",
        "mlp",
        "mlp_zipmap",
        "pipeline_scaler_onehot",
        "pipeline_onehot_strict",
        "pipeline_normalizer",
        "pipeline_normalizer_opset10",
        "xgboost",
        "lightgbm",
    ] {
        assert!(
            models.contains_key(must),
            "{must} was not exported: {}",
            expected["failed"]
        );
    }
    // A rewritten scikit-learn graph keeps its weights in attributes: fine-tuning is refused, not lost.
    let logreg = aegis_ml::onnx::OnnxModel::load(&dir.path().join("logreg.onnx")).unwrap();
    assert!(logreg.not_fine_tunable().is_some());
    let mlp = aegis_ml::onnx::OnnxModel::load(&dir.path().join("mlp.onnx")).unwrap();
    assert!(mlp.not_fine_tunable().is_none());
    // Linear models and MLPs are made of gradient-checked operators once rewritten: white-box.
    for white in [
        "logreg",
        "logreg_binary",
        "logreg_opset12",
        "pipeline_normalizer",
        "mlp",
        "mlp_zipmap",
    ] {
        assert!(
            differentiable.iter().any(|d| d == white),
            "{white} gives no gradients"
        );
    }
}
