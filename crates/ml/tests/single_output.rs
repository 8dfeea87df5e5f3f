//! Binary classifiers that answer with one column (a PyTorch or Keras sigmoid, a bare logit, a scikit-learn
//! LinearSVC score) load as two-class models: `[1 - p, p]` after a Sigmoid, `[σ(-s), σ(s)]` for a score, with
//! checked gradients, and are refused for fine-tuning with the reason. A two-column model is left alone.

use std::path::Path;

use aegis_formats::onnx::proto::{
    tensor_proto::DataType, tensor_shape_proto::dimension::Value as Dim,
    tensor_shape_proto::Dimension, type_proto, GraphProto, ModelProto, NodeProto,
    OperatorSetIdProto, TensorProto, TensorShapeProto, TypeProto, ValueInfoProto,
};
use aegis_ml::onnx::OnnxModel;
use prost::Message;

fn value_info(name: &str, width: i64) -> ValueInfoProto {
    let dim = |value| Dimension {
        value: Some(value),
        ..Default::default()
    };
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: DataType::Float as i32,
                shape: Some(TensorShapeProto {
                    dim: vec![
                        dim(Dim::DimParam("batch".into())),
                        dim(Dim::DimValue(width)),
                    ],
                }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn node(op: &str, inputs: &[&str], output: &str) -> NodeProto {
    NodeProto {
        op_type: op.into(),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec![output.into()],
        ..Default::default()
    }
}

fn floats(name: &str, dims: &[i64], values: &[f32]) -> TensorProto {
    TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: DataType::Float as i32,
        float_data: values.to_vec(),
        ..Default::default()
    }
}

/// `x (3 features) -> MatMul W + b -> [Sigmoid]`, `k` output columns, as a PyTorch export writes it.
fn model(k: usize, sigmoid: bool) -> Vec<u8> {
    model_with_tail(k, sigmoid, false)
}

/// As [`model`], optionally with an `Identity` after the last node (as some exporters leave one).
fn model_with_tail(k: usize, sigmoid: bool, identity: bool) -> Vec<u8> {
    let w: Vec<f32> = (0..3 * k)
        .map(|i| [0.8, -1.2, 0.5, 0.3, 0.9, -0.4][i % 6])
        .collect();
    let b: Vec<f32> = (0..k).map(|i| 0.1 - 0.2 * i as f32).collect();
    let mut nodes = vec![
        node("MatMul", &["x", "w"], "xw"),
        node("Add", &["xw", "b"], "s"),
    ];
    let mut out = if sigmoid {
        nodes.push(node("Sigmoid", &["s"], "p"));
        "p"
    } else {
        "s"
    };
    if identity {
        nodes.push(node("Identity", &[out], "y"));
        out = "y";
    }
    ModelProto {
        ir_version: 8,
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: 13,
        }],
        graph: Some(GraphProto {
            name: "binary".into(),
            node: nodes,
            initializer: vec![
                floats("w", &[3, k as i64], &w),
                floats("b", &[k as i64], &b),
            ],
            input: vec![value_info("x", 3)],
            output: vec![value_info(out, k as i64)],
            ..Default::default()
        }),
        ..Default::default()
    }
    .encode_to_vec()
}

const ROWS: [f32; 9] = [0.5, 1.0, -2.0, 1.5, -0.5, 0.25, -1.0, 2.0, 0.0];

/// The single column's value on each row: the score `s`.
fn scores() -> Vec<f32> {
    ROWS.chunks(3)
        .map(|r| 0.8 * r[0] - 1.2 * r[1] + 0.5 * r[2] + 0.1)
        .collect()
}

fn sigma(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

fn assert_close(got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(want) {
        assert!((g - w).abs() < 1e-5, "{got:?} vs {want:?}");
    }
}

#[test]
fn a_sigmoid_column_becomes_one_minus_p_and_p() {
    let bytes = model(1, true);
    let m = aegis_ml::load_onnx_bytes(&bytes, Path::new("sigmoid.onnx")).unwrap();
    assert_eq!(m.n_classes(), 2);
    assert!(m.as_differentiable().is_some(), "{}", m.describe());
    assert!(
        m.describe()
            .contains("read as two classes: the column is the probability of class 1"),
        "{}",
        m.describe()
    );
    let want: Vec<f32> = scores()
        .iter()
        .flat_map(|&s| [1.0 - sigma(s), sigma(s)])
        .collect();
    assert_close(&m.predict_proba(&ROWS, 3).unwrap(), &want);
    let onnx = OnnxModel::from_bytes(&bytes, Path::new("sigmoid.onnx")).unwrap();
    let why = onnx.not_fine_tunable().unwrap();
    assert!(why.contains("widened to two classes"), "{why}");
    // An Identity after the Sigmoid does not make the probability a score.
    let tail = model_with_tail(1, true, true);
    let m = aegis_ml::load_onnx_bytes(&tail, Path::new("sigmoid_identity.onnx")).unwrap();
    assert_close(&m.predict_proba(&ROWS, 3).unwrap(), &want);
}

#[test]
fn a_score_column_becomes_sigmoid_probabilities_of_its_sign() {
    let bytes = model(1, false);
    let m = aegis_ml::load_onnx_bytes(&bytes, Path::new("logit.onnx")).unwrap();
    assert_eq!(m.n_classes(), 2);
    assert!(m.as_differentiable().is_some(), "{}", m.describe());
    let want: Vec<f32> = scores()
        .iter()
        .flat_map(|&s| [sigma(-s), sigma(s)])
        .collect();
    let got = m.predict_proba(&ROWS, 3).unwrap();
    assert_close(&got, &want);
    // The larger probability is the class the score's sign picks.
    for (s, p) in scores().iter().zip(got.chunks(2)) {
        assert_eq!(*s > 0.0, p[1] > p[0]);
    }
}

#[test]
fn a_two_column_model_is_left_alone() {
    let bytes = model(2, false);
    let m = aegis_ml::load_onnx_bytes(&bytes, Path::new("two.onnx")).unwrap();
    assert_eq!(m.n_classes(), 2);
    assert!(!m.describe().contains("two classes"), "{}", m.describe());
    let onnx = OnnxModel::from_bytes(&bytes, Path::new("two.onnx")).unwrap();
    assert!(onnx.not_fine_tunable().is_none());
}
