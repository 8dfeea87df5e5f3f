//! A scikit-learn random forest exported to ONNX (`ai.onnx.ml` TreeEnsembleClassifier) runs through tract as
//! a black-box model and reproduces scikit-learn's probabilities; the gradient evaluator refuses it by name
//! and the loader names the model black-box. Fixture: `testdata/ml/make_sklearn_fixture.py`.

use std::path::{Path, PathBuf};

use aegis_ml::onnx::OnnxModel;
use aegis_ml::tract::TractModel;
use aegis_ml::Model;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/ml")
}

#[test]
fn forest_probabilities_match_scikit_learn() {
    let expected: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir().join("sk_forest_expected.json")).unwrap())
            .unwrap();
    let floats = |v: &serde_json::Value| -> Vec<f32> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap() as f32)
            .collect()
    };
    let (x, want) = (floats(&expected["x"]), floats(&expected["proba"]));
    let model = TractModel::load(&dir().join("sk_forest.onnx")).unwrap();
    assert_eq!((model.n_features(), model.n_classes()), (4, 3));
    assert!(model.as_differentiable().is_none());
    let got = model.predict_proba(&x, x.len() / 4).unwrap();
    let diff = got
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(
        diff < 1e-5,
        "probabilities differ from scikit-learn by {diff}"
    );
}

#[test]
fn the_loader_gives_gradients_when_it_can_and_names_a_black_box_when_it_cannot() {
    let err = OnnxModel::load(&dir().join("sk_forest.onnx"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("ai.onnx.ml"), "{err}");
    let forest = aegis_ml::load_onnx(&dir().join("sk_forest.onnx")).unwrap();
    assert!(
        forest.describe().contains("black-box")
            && forest.describe().contains("TreeEnsembleClassifier"),
        "{}",
        forest.describe()
    );
    assert!(forest.as_differentiable().is_none());
    let mlp = aegis_ml::load_onnx(&dir().join("torch_mlp.onnx")).unwrap();
    assert!(
        mlp.describe().contains("gradient-checked") && mlp.as_differentiable().is_some(),
        "{}",
        mlp.describe()
    );
    let Err(err) = aegis_ml::load_onnx(&dir().join("make_sklearn_fixture.py")) else {
        panic!("a Python file loaded as a model")
    };
    let err = err.to_string();
    assert!(err.contains("make_sklearn_fixture.py"), "{err}");
}

/// Found by `fuzz/run.sh onnx_model` (tract panicked on each): an initializer whose data is longer than its
/// dimensions, an attribute of unknown type, an output no node computes, a NaN constant. Both loaders now
/// refuse such graphs before evaluating them.
#[test]
fn malformed_graphs_found_by_fuzzing_are_refused() {
    for (file, why) in [
        ("tensor-length-mismatch.onnx", "stores"),
        ("unknown-attribute-type.onnx", "unknown type"),
        ("undefined-output.onnx", "no earlier node"),
        ("nan-constant.onnx", "NaN"),
        ("raw-unsupported-type.onnx", "raw bytes"),
    ] {
        let path = dir().join("fuzz").join(file);
        let bytes = std::fs::read(&path).unwrap();
        let err = TractModel::from_bytes(&bytes, &path)
            .unwrap_err()
            .to_string();
        assert!(err.contains(why) && err.contains(file), "{err}");
        assert!(OnnxModel::from_bytes(&bytes, &path).is_err());
    }
    // A scaled Gemm without its optional bias (which candle-onnx once indexed) is evaluated by both engines
    // alike, or refused by both with a reason.
    let path = dir().join("fuzz/gemm-no-bias-scaled.onnx");
    match aegis_ml::load_onnx(&path) {
        Ok(m) => assert!(m.predict_proba(&vec![0.5; m.n_features()], 1).is_ok()),
        Err(e) => assert!(e.to_string().contains("gemm-no-bias-scaled"), "{e}"),
    }
    // A Conv node without its weight input is refused before any engine indexes it.
    let path = dir().join("fuzz/conv-one-input.onnx");
    let err = OnnxModel::from_bytes(&std::fs::read(&path).unwrap(), &path)
        .unwrap_err()
        .to_string();
    assert!(err.contains("inputs"), "{err}");
    // The well-formed model they were mutated from still loads.
    assert!(TractModel::load(&dir().join("torch_mlp.onnx")).is_ok());
}

/// tract indexes tree ensembles without bounds checks (found by fuzzing: a class id past the output); crafted
/// trees with out-of-range classes, cycles or foreign children must be refused before tract runs them.
#[test]
fn malformed_tree_ensembles_are_refused_before_tract_runs_them() {
    use aegis_formats::onnx::proto::ModelProto;
    use prost::Message;
    let path = dir().join("fuzz/tree-class-out-of-range.onnx");
    let err = TractModel::from_bytes(&std::fs::read(&path).unwrap(), &path)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("TreeEnsemble") || err.contains("stores") || err.contains("unknown type"),
        "{err}"
    );
    let original = ModelProto::decode(
        std::fs::read(dir().join("sk_forest.onnx"))
            .unwrap()
            .as_slice(),
    )
    .unwrap();
    let mutate = |attr: &str, f: &dyn Fn(&mut Vec<i64>)| {
        let mut m = original.clone();
        let node = m
            .graph
            .as_mut()
            .unwrap()
            .node
            .iter_mut()
            .find(|n| n.op_type == "TreeEnsembleClassifier")
            .unwrap();
        f(&mut node
            .attribute
            .iter_mut()
            .find(|a| a.name == attr)
            .unwrap()
            .ints);
        m.encode_to_vec()
    };
    type Mutation<'a> = (&'a str, &'a dyn Fn(&mut Vec<i64>), &'a str);
    let cases: [Mutation; 3] = [
        ("class_ids", &|v| v[0] = 7, "writes class 7"),
        ("nodes_truenodeids", &|v| v[0] = 0, "child 0"),
        ("class_nodeids", &|v| v[0] = 10_000, "outside tree"),
    ];
    for (attr, f, why) in cases {
        let bytes = mutate(attr, f);
        let err = TractModel::from_bytes(&bytes, Path::new("crafted.onnx"))
            .unwrap_err()
            .to_string();
        assert!(err.contains(why), "{attr}: {err}");
    }
    // Untouched, the same forest loads.
    assert!(TractModel::from_bytes(&original.encode_to_vec(), Path::new("ok.onnx")).is_ok());
}
