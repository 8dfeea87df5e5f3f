//! Writing models as ONNX, so a model trained or hardened by Aegis can be served and attacked like any other.
//!
//! Native networks map onto standard opset-13 operators (`Gemm`, `Relu`, `Conv`, `MaxPool`, `Reshape`), the
//! same graph PyTorch's exporter writes for these layers; the output is logits, as from PyTorch. The small
//! builder here is also what [`crate::onnx`] uses to rewrite graphs.

use std::path::Path;

use aegis_formats::onnx::proto::{
    attribute_proto::AttributeType, tensor_proto::DataType,
    tensor_shape_proto::dimension::Value as Dim, tensor_shape_proto::Dimension, type_proto,
    AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto,
    TensorShapeProto, TypeProto, ValueInfoProto,
};
use candle_core::Tensor;
use prost::Message;

use crate::native::{Arch, NativeModel};
use crate::train::Trainable;
use crate::{Error, Model};

/// The opset our exports declare.
pub const OPSET: i64 = 13;

/// A node with the given inputs, outputs and attributes.
pub(crate) fn node(
    op: &str,
    name: &str,
    inputs: &[&str],
    outputs: &[&str],
    attributes: Vec<AttributeProto>,
) -> NodeProto {
    NodeProto {
        op_type: op.to_string(),
        name: name.to_string(),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        attribute: attributes,
        ..Default::default()
    }
}

/// An integer-list attribute.
pub(crate) fn ints(name: &str, values: &[i64]) -> AttributeProto {
    AttributeProto {
        name: name.to_string(),
        r#type: AttributeType::Ints as i32,
        ints: values.to_vec(),
        ..Default::default()
    }
}

/// An integer attribute.
pub(crate) fn int(name: &str, value: i64) -> AttributeProto {
    AttributeProto {
        name: name.to_string(),
        r#type: AttributeType::Int as i32,
        i: value,
        ..Default::default()
    }
}

/// An int64 constant tensor (shapes, axes).
pub(crate) fn i64_tensor(name: &str, values: &[i64]) -> TensorProto {
    TensorProto {
        name: name.to_string(),
        dims: vec![values.len() as i64],
        data_type: DataType::Int64 as i32,
        int64_data: values.to_vec(),
        ..Default::default()
    }
}

/// A float constant of the given dimensions (rewritten graphs' weights, shapes' companions).
pub(crate) fn f32_values(name: &str, dims: &[usize], values: &[f32]) -> TensorProto {
    TensorProto {
        name: name.to_string(),
        dims: dims.iter().map(|&d| d as i64).collect(),
        data_type: DataType::Float as i32,
        float_data: values.to_vec(),
        ..Default::default()
    }
}

/// A float tensor holding a candle tensor's values.
pub(crate) fn f32_tensor(name: &str, t: &Tensor) -> Result<TensorProto, Error> {
    let values = t
        .flatten_all()?
        .to_dtype(candle_core::DType::F32)?
        .to_vec1::<f32>()?;
    Ok(TensorProto {
        name: name.to_string(),
        dims: t.dims().iter().map(|&d| d as i64).collect(),
        data_type: DataType::Float as i32,
        raw_data: values
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect::<Vec<u8>>()
            .into(),
        ..Default::default()
    })
}

/// A float tensor value with a symbolic batch dimension followed by fixed dimensions.
pub(crate) fn float_input(name: &str, dims: &[usize]) -> ValueInfoProto {
    let mut dim = vec![Dimension {
        value: Some(Dim::DimParam("batch".into())),
        ..Default::default()
    }];
    dim.extend(dims.iter().map(|&d| Dimension {
        value: Some(Dim::DimValue(d as i64)),
        ..Default::default()
    }));
    ValueInfoProto {
        name: name.to_string(),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: DataType::Float as i32,
                shape: Some(TensorShapeProto { dim }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The ONNX graph of a native network: input `input` `(batch, n_features)`, output `logits`.
pub fn native_to_onnx(model: &NativeModel) -> Result<ModelProto, Error> {
    let mut nodes = Vec::new();
    let mut inits = Vec::new();
    for (name, var) in model.named_params() {
        inits.push(f32_tensor(name, var.as_tensor())?);
    }
    let mut current = "input".to_string();
    if let Arch::Cnn {
        channels,
        height,
        width,
        ..
    } = model.arch()
    {
        inits.push(i64_tensor(
            "image_shape",
            &[-1, *channels as i64, *height as i64, *width as i64],
        ));
        nodes.push(node(
            "Reshape",
            "to_image",
            &["input", "image_shape"],
            &["image"],
            vec![],
        ));
        nodes.push(node(
            "Conv",
            "conv",
            &["image", "conv.weight", "conv.bias"],
            &["conv_out"],
            vec![ints("kernel_shape", &[3, 3]), ints("pads", &[1, 1, 1, 1])],
        ));
        nodes.push(node(
            "Relu",
            "conv_relu",
            &["conv_out"],
            &["conv_act"],
            vec![],
        ));
        nodes.push(node(
            "MaxPool",
            "pool",
            &["conv_act"],
            &["pooled"],
            vec![ints("kernel_shape", &[2, 2]), ints("strides", &[2, 2])],
        ));
        nodes.push(node(
            "Flatten",
            "flatten",
            &["pooled"],
            &["flat"],
            vec![int("axis", 1)],
        ));
        current = "flat".into();
    }
    let layers = model
        .named_params()
        .iter()
        .filter(|(n, _)| n.starts_with("fc"))
        .count()
        / 2;
    for i in 0..layers {
        let out = if i + 1 == layers {
            "logits".to_string()
        } else {
            format!("fc{i}_out")
        };
        let (w, b) = (format!("fc{i}.weight"), format!("fc{i}.bias"));
        nodes.push(node(
            "Gemm",
            &format!("fc{i}"),
            &[&current, &w, &b],
            &[&out],
            vec![int("transB", 1)],
        ));
        current = out;
        if i + 1 < layers {
            let act = format!("fc{i}_act");
            nodes.push(node(
                "Relu",
                &format!("relu{i}"),
                &[&current],
                &[&act],
                vec![],
            ));
            current = act;
        }
    }
    Ok(ModelProto {
        ir_version: 8,
        producer_name: "aegis".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: OPSET,
        }],
        graph: Some(GraphProto {
            name: model.arch().to_string(),
            node: nodes,
            initializer: inits,
            input: vec![float_input("input", &[model.n_features()])],
            output: vec![float_input("logits", &[model.n_classes()])],
            ..Default::default()
        }),
        ..Default::default()
    })
}

/// Write a model proto to `path` (atomically: a temporary file renamed into place).
pub fn write_model(proto: &ModelProto, path: &Path) -> Result<(), Error> {
    let err = |reason: String| Error::Export {
        path: path.to_path_buf(),
        reason,
    };
    let bytes = proto.encode_to_vec();
    let tmp = path.with_extension("onnx.partial");
    std::fs::write(&tmp, &bytes).map_err(|e| err(e.to_string()))?;
    std::fs::rename(&tmp, path).map_err(|e| err(e.to_string()))
}

impl Trainable for NativeModel {
    fn train_logits(&self, x: &Tensor) -> Result<Tensor, Error> {
        self.forward_tracked(x)
    }

    fn vars(&self) -> Vec<candle_core::Var> {
        NativeModel::vars(self)
    }

    fn save_onnx(&self, path: &Path) -> Result<(), Error> {
        write_model(&native_to_onnx(self)?, path)
    }
}
