//! A user's ONNX network as a differentiable [`Model`], evaluated by our own graph evaluator ([`crate::graph`]).
//!
//! The evaluator runs the graph with candle ops, so autograd reaches both the input (exact gradients for
//! attacks) and the weights (fine-tuning in `aegis harden`). To make that true the graph is prepared once at
//! load time:
//! - float initializers become [`Var`]s passed in as inputs, so the same graph can be trained and saved back;
//! - a final `Softmax` is cut off so attacks see logits (as PyTorch would); a graph that ends in probabilities
//!   without a `Softmax` node is detected by probing and its logits taken as `log p`.
//!
//! Only the operators of [`crate::graph::DIFFERENTIABLE_OPS`] are accepted, each gradient-checked against
//! finite differences; any other operator (scikit-learn's `ai.onnx.ml` domain, tree ensembles, control flow)
//! is refused here with the operator named, and [`crate::load_onnx`] serves such a graph as a black box.
//!
//! The file is decoded once, by the bounded decoder of `aegis-formats`.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use aegis_formats::onnx::proto::{
    tensor_proto::DataType, tensor_shape_proto::dimension::Value as Dim, type_proto, ModelProto,
    NodeProto, ValueInfoProto,
};
use candle_core::{DType, Device, Tensor, Var};

use crate::error::check_shape;
use crate::graph::{self, Context, Value};
use crate::onnx_file::{
    checked_graph, decode_model, default_opset, load_err, read_model_file, sole_input,
};
use crate::train::Trainable;
use crate::{Differentiable, Error, Model};

/// What the graph's output means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputKind {
    /// Unnormalised scores (a final Softmax was cut off, or there was none).
    Logits,
    /// Probabilities; logits are taken as their log.
    Probabilities,
}

/// An ONNX model evaluated by [`crate::graph`].
pub struct OnnxModel {
    path: PathBuf,
    /// The model as loaded (for saving with updated weights).
    original: ModelProto,
    /// The nodes to evaluate (a final softmax cut).
    nodes: Vec<NodeProto>,
    /// Stored tensors that are not trainable weights (shapes, axes, integer constants).
    constants: HashMap<String, Value>,
    weights: Vec<(String, Var)>,
    opset: i64,
    input_name: String,
    input_dims: Vec<usize>,
    input_dtype: DType,
    output_name: String,
    output: OutputKind,
    n_features: usize,
    n_classes: usize,
    /// Why the graph's weights cannot be saved back: the changes made for evaluation (`ai.onnx.ml` operators
    /// rewritten, a single output column widened).
    rewritten: Vec<String>,
}

impl fmt::Debug for OnnxModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OnnxModel")
            .field("path", &self.path)
            .field("input", &self.input_name)
            .field("input_dims", &self.input_dims)
            .field("output", &self.output)
            .field("n_classes", &self.n_classes)
            .finish()
    }
}

impl OnnxModel {
    /// Load and prepare an ONNX file.
    pub fn load(path: &Path) -> Result<Self, Error> {
        Self::from_bytes(&read_model_file(path)?, path)
    }

    /// Prepare an ONNX model from its bytes; `path` names it in errors and reports.
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Self, Error> {
        Self::from_proto(decode_model(bytes, path)?, path)
    }

    /// Prepare a decoded ONNX model.
    pub fn from_proto(original: ModelProto, path: &Path) -> Result<Self, Error> {
        let crate::select::Answer {
            proto: answer,
            unsaveable: rewritten,
            ..
        } = crate::select::answer_graph(&original, path)?;
        let graph = checked_graph(&answer, path)?;
        check_operators(&graph.node, path)?;
        let input = sole_input(graph, path)?;
        let (input_dims, input_dtype) = input_shape(input, path)?;
        let input_name = input.name.clone();
        let n_features: usize = input_dims.iter().product();
        let declared_output = graph
            .output
            .first()
            .ok_or_else(|| load_err(path, "the graph has no output".into()))?
            .name
            .clone();

        // Exponents and clip bounds are read as plain numbers by the evaluator: keep them constant.
        let fixed: std::collections::HashSet<&str> = graph
            .node
            .iter()
            .filter(|n| matches!(n.op_type.as_str(), "Pow" | "Clip"))
            .flat_map(|n| n.input.iter().skip(1).map(String::as_str))
            .collect();
        let mut weights = Vec::new();
        let mut constants = HashMap::new();
        for t in &graph.initializer {
            if t.name == input_name {
                continue;
            }
            let value = graph::tensor_value(t, input_dtype).map_err(|why| load_err(path, why))?;
            match value {
                Value::Float(tensor)
                    if t.data_type == DataType::Float as i32
                        && !fixed.contains(t.name.as_str()) =>
                {
                    let var = Var::from_tensor(&tensor.to_dtype(DType::F32)?)?;
                    weights.push((t.name.clone(), var));
                }
                other => {
                    constants.insert(t.name.clone(), other);
                }
            }
        }
        // Cut a final softmax: attacks want logits.
        let mut nodes = graph.node.clone();
        let mut output_name = declared_output.clone();
        let mut output = OutputKind::Logits;
        let mut softmax_cut = false;
        if let Some(pos) = nodes
            .iter()
            .position(|n| n.output.first() == Some(&declared_output))
        {
            let last = &nodes[pos];
            let feeds_others = nodes
                .iter()
                .any(|n| n.input.iter().any(|i| i == &declared_output));
            if last.op_type == "Softmax" && !last.input.is_empty() && !feeds_others {
                output_name = last.input[0].clone();
                nodes.remove(pos);
                softmax_cut = true;
            }
        }
        let opset = default_opset(&original);
        let mut model = OnnxModel {
            path: path.to_path_buf(),
            original,
            nodes,
            constants,
            weights,
            opset,
            input_name,
            input_dims,
            input_dtype,
            output_name,
            output,
            n_features,
            n_classes: 0,
            rewritten,
        };
        let probe = probe_rows(n_features);
        let out = model
            .run_raw(&model.to_input(&probe, 4)?, false)
            .map_err(|e| load_err(path, e.to_string()))?;
        let dims = out.dims().to_vec();
        if dims.first() != Some(&4) || dims.iter().skip(1).product::<usize>() < 2 {
            return Err(load_err(
                path,
                format!(
                    "output {} has shape {dims:?} for 4 rows; expected (rows, classes >= 2)",
                    model.output_name
                ),
            ));
        }
        model.n_classes = dims.iter().skip(1).product();
        if !softmax_cut
            && looks_like_probabilities(
                &out.flatten_all()?.to_dtype(DType::F32)?.to_vec1::<f32>()?,
                model.n_classes,
            )
        {
            output = OutputKind::Probabilities;
        }
        model.output = output;
        Ok(model)
    }

    /// The file the model came from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What the graph's output means.
    pub fn output_kind(&self) -> OutputKind {
        self.output
    }

    /// Input dimensions after the batch dimension.
    pub fn input_dims(&self) -> &[usize] {
        &self.input_dims
    }

    /// Why the model's weights cannot be fine-tuned and saved back, when they cannot: a graph whose
    /// `ai.onnx.ml` operators were rewritten for evaluation keeps its weights in their attributes, which
    /// [`Trainable::save_onnx`] does not write, and a single output column widened to two classes would change
    /// the saved model's answer.
    pub fn not_fine_tunable(&self) -> Option<String> {
        self.rewritten.first().cloned()
    }

    fn to_input(&self, x: &[f32], n: usize) -> Result<Tensor, Error> {
        let mut shape = vec![n];
        shape.extend(&self.input_dims);
        Ok(Tensor::from_slice(x, shape, &Device::Cpu)?.to_dtype(self.input_dtype)?)
    }

    /// Evaluate the graph on an input tensor of shape `(n, input_dims…)`.
    /// `track`: whether the weights take part in autograd (training) or not (prediction, attacks).
    /// A panic inside candle (an op given shapes it does not expect) becomes an error, so a hostile model
    /// file cannot take the process down.
    fn run_raw(&self, x: &Tensor, track: bool) -> Result<Tensor, Error> {
        let mut values: HashMap<String, Value> = self.constants.clone();
        values.insert(self.input_name.clone(), Value::Float(x.clone()));
        for (name, var) in &self.weights {
            let w = if track {
                var.as_tensor().clone()
            } else {
                var.as_tensor().detach()
            };
            values.insert(name.clone(), Value::Float(w));
        }
        let cx = Context {
            dtype: self.input_dtype,
            opset: self.opset,
        };
        let evaluated = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            graph::run(&self.nodes, &mut values, cx)
        }))
        .unwrap_or_else(|_| {
            Err("the evaluator failed on this graph (invalid shapes or attributes)".into())
        });
        evaluated.map_err(|e| Error::Eval(format!("{}: {e}", self.path.display())))?;
        match values.remove(&self.output_name) {
            Some(Value::Float(t)) => Ok(t),
            Some(Value::Int(_)) => Err(Error::Eval(format!(
                "{}: output {} is an integer tensor",
                self.path.display(),
                self.output_name
            ))),
            None => Err(Error::Eval(format!(
                "{}: output {} was not produced",
                self.path.display(),
                self.output_name
            ))),
        }
    }

    /// Logits of shape `(n, k)` for an input of shape `(n, n_features)`.
    fn forward(&self, x: &Tensor, track: bool) -> Result<Tensor, Error> {
        let n = x.dim(0)?;
        let mut shape = vec![n];
        shape.extend(&self.input_dims);
        let out = self
            .run_raw(&x.reshape(shape)?.to_dtype(self.input_dtype)?, track)?
            .reshape((n, self.n_classes))?;
        match self.output {
            OutputKind::Logits => Ok(out),
            OutputKind::Probabilities => Ok(out.clamp(1e-12, 1.0)?.log()?),
        }
    }
}

/// The fewest inputs an operator takes (ONNX operator specification); the evaluators index a node's inputs
/// by position without checking, so a node with fewer is refused. Unlisted operators take at least one.
fn min_inputs(op: &str) -> usize {
    match op {
        "Constant" => 0,
        "BatchNormalization" => 5,
        "Where" | "ScatterND" | "Range" | "OneHot" | "LSTM" | "RNN" => 3,
        "Add" | "Sub" | "Mul" | "Div" | "Pow" | "Equal" | "MatMul" | "Reshape" | "Gather"
        | "GatherElements" | "Greater" | "Less" | "LessOrEqual" | "GreaterOrEqual" | "Conv"
        | "PRelu" | "CumSum" | "Expand" | "Tile" | "Gemm" | "Xor" | "And" | "Or" => 2,
        _ => 1,
    }
}

fn check_operators(nodes: &[NodeProto], path: &Path) -> Result<(), Error> {
    for n in nodes {
        if !n.domain.is_empty() && n.domain != "ai.onnx" {
            return Err(load_err(
                path,
                format!(
                    "operator {} of domain {} (e.g. a scikit-learn export) is not on the gradient-checked list",
                    n.op_type, n.domain
                ),
            ));
        }
        let given = n.input.iter().filter(|i| !i.is_empty()).count();
        if given < min_inputs(&n.op_type) || n.output.is_empty() {
            return Err(load_err(
                path,
                format!(
                    "operator {} (node {:?}) has {given} inputs and {} outputs",
                    n.op_type,
                    n.name,
                    n.output.len()
                ),
            ));
        }
        if !graph::is_differentiable_op(&n.op_type) {
            return Err(load_err(
                path,
                format!(
                    "operator {} (node {:?}) is not on the gradient-checked list",
                    n.op_type, n.name
                ),
            ));
        }
    }
    Ok(())
}

/// Dimensions after the batch dimension, and the element type, of the graph input.
pub(crate) fn input_shape(
    input: &ValueInfoProto,
    path: &Path,
) -> Result<(Vec<usize>, DType), Error> {
    let Some(type_proto::Value::TensorType(t)) =
        input.r#type.as_ref().and_then(|t| t.value.as_ref())
    else {
        return Err(load_err(
            path,
            format!("input {} is not a tensor", input.name),
        ));
    };
    let dtype = match DataType::try_from(t.elem_type) {
        Ok(DataType::Float) => DType::F32,
        Ok(DataType::Double) => DType::F64,
        other => {
            return Err(load_err(
                path,
                format!(
                    "input {} has element type {other:?}; only float inputs are supported",
                    input.name
                ),
            ))
        }
    };
    let dims = t
        .shape
        .as_ref()
        .map(|s| s.dim.as_slice())
        .unwrap_or_default();
    if dims.len() < 2 {
        return Err(load_err(
            path,
            format!(
                "input {} has rank {}; expected (batch, features…)",
                input.name,
                dims.len()
            ),
        ));
    }
    let rest = dims[1..]
        .iter()
        .map(|d| match d.value {
            Some(Dim::DimValue(v)) if v > 0 && v <= 1 << 24 => Ok(v as usize),
            _ => Err(load_err(
                path,
                format!(
                    "input {} has a non-fixed feature dimension {:?}",
                    input.name, d.value
                ),
            )),
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((rest, dtype))
}

/// Four probe rows: zeros, ones, halves and a fixed pseudo-random row in [0, 1).
pub(crate) fn probe_rows(d: usize) -> Vec<f32> {
    let mut v = vec![0.0; d];
    v.extend(std::iter::repeat_n(1.0, d));
    v.extend(std::iter::repeat_n(0.5, d));
    v.extend((0..d).map(|i| ((i * 7919 + 13) % 101) as f32 / 101.0));
    v
}

/// Whether every row is a probability vector (in [0, 1], summing to 1).
pub(crate) fn looks_like_probabilities(values: &[f32], k: usize) -> bool {
    values.chunks(k).all(|row| {
        row.iter().all(|&p| (0.0..=1.0).contains(&p))
            && (row.iter().sum::<f32>() - 1.0).abs() < 1e-3
    })
}

impl Model for OnnxModel {
    fn n_features(&self) -> usize {
        self.n_features
    }

    fn n_classes(&self) -> usize {
        self.n_classes
    }

    fn predict_proba(&self, x: &[f32], n: usize) -> Result<Vec<f32>, Error> {
        check_shape(x, n, self.n_features)?;
        if n == 0 {
            return Ok(Vec::new());
        }
        let out = self
            .run_raw(&self.to_input(x, n)?, false)?
            .reshape((n, self.n_classes))?
            .to_dtype(DType::F32)?;
        match self.output {
            OutputKind::Logits => crate::grad::softmax_rows(&out),
            OutputKind::Probabilities => Ok(out.flatten_all()?.to_vec1::<f32>()?),
        }
    }

    fn describe(&self) -> String {
        format!("onnx (gradient-checked evaluator) {}", self.path.display())
    }

    fn as_differentiable(&self) -> Option<&dyn Differentiable> {
        Some(self)
    }
}

impl Differentiable for OnnxModel {
    fn logits(&self, x: &Tensor) -> Result<Tensor, Error> {
        self.forward(x, false)
    }
}

impl Trainable for OnnxModel {
    fn train_logits(&self, x: &Tensor) -> Result<Tensor, Error> {
        self.forward(x, true)
    }

    fn vars(&self) -> Vec<Var> {
        self.weights.iter().map(|(_, v)| v.clone()).collect()
    }

    /// The original graph (with its Softmax) with the current weights.
    fn save_onnx(&self, path: &Path) -> Result<(), Error> {
        let mut proto = self.original.clone();
        let current: HashMap<&str, &Var> =
            self.weights.iter().map(|(n, v)| (n.as_str(), v)).collect();
        if let Some(g) = proto.graph.as_mut() {
            for t in g.initializer.iter_mut() {
                if let Some(var) = current.get(t.name.as_str()) {
                    *t = crate::export::f32_tensor(&t.name, var.as_tensor())?;
                }
            }
        }
        proto.producer_name = "aegis".into();
        crate::export::write_model(&proto, path)
    }
}
