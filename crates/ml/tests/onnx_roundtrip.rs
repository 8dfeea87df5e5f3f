//! Native training, export to ONNX, and the gradient-checked ONNX evaluator: predictions and exact input
//! gradients survive the round trip, and graphs with unlisted operators are refused with a reason.

use aegis_formats::onnx::proto::ModelProto;
use aegis_ml::native::{Arch, NativeModel};
use aegis_ml::onnx::{OnnxModel, OutputKind};
use aegis_ml::synthetic::blobs;
use aegis_ml::train::{train, NoHooks, TrainConfig, Trainable};
use aegis_ml::{accuracy, input_gradient, Loss, Model};
use prost::Message;

fn trained(arch: Arch, d: usize) -> (NativeModel, Vec<f32>, Vec<u32>) {
    let (x, y) = blobs(400, d, 0.15, 0.12, 1);
    let model = NativeModel::new(arch, d, 2, 7).unwrap();
    let cfg = TrainConfig {
        epochs: 15,
        batch_size: 32,
        lr: 5e-3,
        ..Default::default()
    };
    train(&model, &x, &y, &cfg, &mut NoHooks).unwrap();
    (model, x, y)
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(p, q)| (p - q).abs())
        .fold(0.0, f32::max)
}

#[test]
fn training_learns_and_an_untrained_model_does_not() {
    let (x, y) = blobs(400, 6, 0.15, 0.12, 2);
    let untrained = NativeModel::new(Arch::Mlp(vec![16]), 6, 2, 3).unwrap();
    let before = accuracy(&untrained, &x, &y).unwrap();
    let (model, _, _) = trained(Arch::Mlp(vec![16]), 6);
    let after = accuracy(&model, &x, &y).unwrap();
    assert!(after > 0.95, "trained accuracy {after}");
    assert!(before < 0.8, "untrained accuracy {before}");
}

#[test]
fn exported_models_predict_and_differentiate_like_the_native_ones() {
    let dir = tempfile::tempdir().unwrap();
    for (arch, d) in [
        (Arch::LogReg, 6),
        (Arch::Mlp(vec![16, 8]), 6),
        ("cnn:1x6x6:4:8".parse().unwrap(), 36),
    ] {
        let (native, x, y) = trained(arch.clone(), d);
        let path = dir.path().join("m.onnx");
        native.save_onnx(&path).unwrap();
        let onnx = OnnxModel::load(&path).unwrap();
        assert_eq!((onnx.n_features(), onnx.n_classes()), (d, 2));
        assert_eq!(onnx.output_kind(), OutputKind::Logits);
        assert!(onnx.as_differentiable().is_some(), "{arch}");
        let n = 20;
        let xs = &x[..n * d];
        let diff = max_abs_diff(
            &native.predict_proba(xs, n).unwrap(),
            &onnx.predict_proba(xs, n).unwrap(),
        );
        assert!(diff < 1e-5, "{arch}: predictions differ by {diff}");
        let loss = Loss::CrossEntropy(y[..n].to_vec());
        let g_native = input_gradient(&native, xs, n, &loss).unwrap().grad;
        let g_onnx = input_gradient(&onnx, xs, n, &loss).unwrap().grad;
        let diff = max_abs_diff(&g_native, &g_onnx);
        assert!(diff < 1e-5, "{arch}: gradients differ by {diff}");
        assert!(g_onnx.iter().any(|&g| g != 0.0), "{arch}: zero gradient");
    }
}

#[test]
fn onnx_graph_gradients_match_finite_differences_in_f64() {
    // The graph of an exported CNN, evaluated in f64, against central differences.
    let native = NativeModel::new("cnn:1x4x4:2:5".parse().unwrap(), 16, 3, 5).unwrap();
    let proto = aegis_ml::export::native_to_onnx(&native).unwrap();
    let onnx = OnnxModel::from_proto(to_f64(proto), std::path::Path::new("cnn64.onnx")).unwrap();
    let x: Vec<f64> = (0..2 * 16).map(|i| ((i * 37 % 29) as f64) / 29.0).collect();
    let err =
        aegis_ml::ops::gradient_check(|t| aegis_ml::Differentiable::logits(&onnx, t), &x, &[2, 16])
            .unwrap();
    assert!(err < 1e-6, "relative error {err}");
}

/// The same model with every float tensor and the input in double precision.
fn to_f64(mut proto: ModelProto) -> ModelProto {
    use aegis_formats::onnx::proto::{tensor_proto::DataType, type_proto};
    let g = proto.graph.as_mut().unwrap();
    for t in g.initializer.iter_mut() {
        if t.data_type == DataType::Float as i32 {
            let values: Vec<f64> = t
                .raw_data
                .chunks(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64)
                .collect();
            t.raw_data = values
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect::<Vec<u8>>()
                .into();
            t.data_type = DataType::Double as i32;
        }
    }
    for v in g.input.iter_mut().chain(g.output.iter_mut()) {
        if let Some(type_proto::Value::TensorType(tt)) =
            v.r#type.as_mut().and_then(|t| t.value.as_mut())
        {
            tt.elem_type = DataType::Double as i32;
        }
    }
    proto
}

#[test]
fn final_softmax_is_cut_and_probability_outputs_are_recognised() {
    let native = NativeModel::new(Arch::Mlp(vec![4]), 3, 3, 1).unwrap();
    let mut proto = aegis_ml::export::native_to_onnx(&native).unwrap();
    let g = proto.graph.as_mut().unwrap();
    g.node.push(aegis_formats::onnx::proto::NodeProto {
        op_type: "Softmax".into(),
        input: vec!["logits".into()],
        output: vec!["probs".into()],
        ..Default::default()
    });
    g.output[0].name = "probs".into();
    let with_softmax =
        OnnxModel::from_proto(proto.clone(), std::path::Path::new("s.onnx")).unwrap();
    assert_eq!(with_softmax.output_kind(), OutputKind::Logits);
    let x = [0.1f32, 0.5, 0.9];
    assert!(
        max_abs_diff(
            &with_softmax.predict_proba(&x, 1).unwrap(),
            &native.predict_proba(&x, 1).unwrap()
        ) < 1e-6
    );
    // Rename the softmax's op so it is not recognised: the probing sees probabilities.
    let g = proto.graph.as_mut().unwrap();
    let last = g.node.len() - 1;
    g.node[last].op_type = "Identity".into();
    let ident = OnnxModel::from_proto(proto, std::path::Path::new("i.onnx")).unwrap();
    assert_eq!(
        ident.output_kind(),
        OutputKind::Logits,
        "raw logits are not probabilities"
    );
}

#[test]
fn overlapping_max_pool_gives_correct_gradients() {
    // candle 0.11's own max-pool backward is 1/k² too small; ours is built from ops whose backward is right,
    // so a max-pool with overlapping windows stays differentiable and matches finite differences.
    let native = NativeModel::new("cnn:1x4x4:2:3".parse().unwrap(), 16, 2, 1).unwrap();
    let mut proto = aegis_ml::export::native_to_onnx(&native).unwrap();
    let g = proto.graph.as_mut().unwrap();
    for n in g.node.iter_mut().filter(|n| n.op_type == "MaxPool") {
        // 3×3 windows at stride 2 overlap; padding keeps the 2×2 output the classifier expects.
        for a in n.attribute.iter_mut().filter(|a| a.name == "kernel_shape") {
            a.ints = vec![3, 3];
        }
        n.attribute
            .push(aegis_formats::onnx::proto::AttributeProto {
                name: "pads".into(),
                r#type: 7,
                ints: vec![0, 0, 1, 1],
                ..Default::default()
            });
    }
    let onnx = OnnxModel::from_proto(to_f64(proto), std::path::Path::new("p.onnx")).unwrap();
    let x: Vec<f64> = (0..2 * 16).map(|i| ((i * 37 % 29) as f64) / 29.0).collect();
    let err =
        aegis_ml::ops::gradient_check(|t| aegis_ml::Differentiable::logits(&onnx, t), &x, &[2, 16])
            .unwrap();
    assert!(err < 1e-6, "relative error {err}");
}

#[test]
fn unsupported_graphs_are_refused_with_the_operator_named() {
    let native = NativeModel::new(Arch::LogReg, 3, 2, 1).unwrap();
    let mut proto = aegis_ml::export::native_to_onnx(&native).unwrap();
    proto.graph.as_mut().unwrap().node[0].domain = "ai.onnx.ml".into();
    let err = OnnxModel::from_proto(proto.clone(), std::path::Path::new("sk.onnx"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("sk.onnx") && err.contains("ai.onnx.ml"),
        "{err}"
    );
    proto.graph.as_mut().unwrap().node[0].domain = String::new();
    proto.graph.as_mut().unwrap().node[0].op_type = "TreeEnsembleClassifier".into();
    let err = OnnxModel::from_proto(proto, std::path::Path::new("t.onnx"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("TreeEnsembleClassifier"), "{err}");
    let err = OnnxModel::from_bytes(b"\xff\xff not protobuf", std::path::Path::new("junk.onnx"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("junk.onnx"), "{err}");
    let _ = ModelProto::default().encode_to_vec();
}

#[test]
fn fine_tuning_an_onnx_model_trains_its_weights_and_saves_them() {
    let dir = tempfile::tempdir().unwrap();
    let (x, y) = blobs(400, 6, 0.15, 0.12, 4);
    let fresh = NativeModel::new(Arch::Mlp(vec![12]), 6, 2, 11).unwrap();
    let path = dir.path().join("fresh.onnx");
    fresh.save_onnx(&path).unwrap();
    let onnx = OnnxModel::load(&path).unwrap();
    let before = accuracy(&onnx, &x, &y).unwrap();
    let cfg = TrainConfig {
        epochs: 10,
        batch_size: 32,
        lr: 5e-3,
        ..Default::default()
    };
    train(&onnx, &x, &y, &cfg, &mut NoHooks).unwrap();
    let after = accuracy(&onnx, &x, &y).unwrap();
    assert!(
        after > 0.95 && before < 0.8,
        "before {before}, after {after}"
    );
    let saved = dir.path().join("tuned.onnx");
    onnx.save_onnx(&saved).unwrap();
    let reloaded = OnnxModel::load(&saved).unwrap();
    let diff = max_abs_diff(
        &onnx.predict_proba(&x[..60], 10).unwrap(),
        &reloaded.predict_proba(&x[..60], 10).unwrap(),
    );
    assert!(diff < 1e-6, "saved model differs by {diff}");
}
