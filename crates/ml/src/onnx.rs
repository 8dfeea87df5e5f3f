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
    tensor_proto::DataType, tensor_shape_proto::dimension::Value as Dim, type_proto, GraphProto,
    ModelProto, NodeProto, TensorProto, ValueInfoProto,
};
use candle_core::{DType, Device, Tensor, Var};

use crate::error::check_shape;
use crate::graph::{self, Context, Value};
use crate::train::Trainable;
use crate::{Differentiable, Error, Model};

/// Largest ONNX file we read (protobuf caps messages at 2 GiB anyway).
pub const MAX_MODEL_BYTES: u64 = 2 << 30;

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
    /// `ai.onnx.ml` operators rewritten for evaluation (their weights live in attributes).
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
        let (answer, rewritten) = crate::select::answer_graph(&original, path)?;
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
    /// [`Trainable::save_onnx`] does not write.
    pub fn not_fine_tunable(&self) -> Option<String> {
        self.rewritten.first().map(|op| {
            format!("its {op} operator keeps the weights where fine-tuning cannot write them")
        })
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

/// The version of the default (`ai.onnx`) operator set the model imports; 13 when it names none.
pub(crate) fn default_opset(proto: &ModelProto) -> i64 {
    proto
        .opset_import
        .iter()
        .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
        .map_or(13, |o| o.version)
}

/// Read an ONNX file, refusing one larger than [`MAX_MODEL_BYTES`] before reading it.
pub(crate) fn read_model_file(path: &Path) -> Result<Vec<u8>, Error> {
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let size = std::fs::metadata(path).map_err(io)?.len();
    if size > MAX_MODEL_BYTES {
        return Err(load_err(
            path,
            format!("{size} bytes is larger than the {MAX_MODEL_BYTES}-byte limit"),
        ));
    }
    std::fs::read(path).map_err(io)
}

/// Decode ONNX bytes as data.
/// Decode ONNX bytes as data, with the bounded decoder of `aegis-formats` (the one the scanner uses).
pub(crate) fn decode_model(bytes: &[u8], path: &Path) -> Result<ModelProto, Error> {
    let limits = aegis_formats::Limits {
        max_protobuf: MAX_MODEL_BYTES,
        ..aegis_formats::Limits::default()
    };
    aegis_formats::onnx::decode_model(prost::bytes::Bytes::copy_from_slice(bytes), &limits)
        .map_err(|e| load_err(path, format!("not an ONNX model: {e}")))
}

/// The model's graph, after the structural checks both backends rely on ([`validate_tensors`]).
pub(crate) fn checked_graph<'a>(
    proto: &'a ModelProto,
    path: &Path,
) -> Result<&'a GraphProto, Error> {
    let graph = proto
        .graph
        .as_ref()
        .ok_or_else(|| load_err(path, "the model has no graph".into()))?;
    validate_tensors(graph).map_err(|why| load_err(path, why))?;
    Ok(graph)
}

/// The one graph input that is not an initializer.
pub(crate) fn sole_input<'a>(
    graph: &'a GraphProto,
    path: &Path,
) -> Result<&'a ValueInfoProto, Error> {
    let init_names: Vec<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
    let inputs: Vec<&ValueInfoProto> = graph
        .input
        .iter()
        .filter(|i| !init_names.contains(&i.name.as_str()))
        .collect();
    match inputs.as_slice() {
        [input] => Ok(input),
        _ => {
            let names: Vec<&str> = inputs.iter().map(|i| i.name.as_str()).collect();
            Err(load_err(
                path,
                format!(
                    "expected one input, the graph has {}: {names:?}",
                    names.len()
                ),
            ))
        }
    }
}

pub(crate) fn load_err(path: &Path, reason: String) -> Error {
    Error::Load {
        path: path.to_path_buf(),
        reason,
    }
}

/// Every tensor stored in the graph (initializers, `Constant` values, subgraphs) must hold exactly as many
/// elements as its dimensions say, in a type we know, stored inline; every attribute must have a known type.
/// Both evaluators trust this (tract unwraps attribute types, copies tensor data by its dimensions), so it is
/// checked before either sees the graph. Subgraphs are followed to a bounded depth.
pub(crate) fn validate_tensors(graph: &GraphProto) -> Result<(), String> {
    validate_graph(graph, 0)
}

fn validate_graph(graph: &GraphProto, depth: usize) -> Result<(), String> {
    use aegis_formats::onnx::proto::attribute_proto::AttributeType;
    if depth > 8 {
        return Err("subgraphs nested more than 8 deep".into());
    }
    for t in &graph.initializer {
        validate_tensor(t)?;
    }
    for n in &graph.node {
        for a in &n.attribute {
            if AttributeType::try_from(a.r#type).map_or(true, |t| t == AttributeType::Undefined) {
                return Err(format!(
                    "node {:?} attribute {:?} has unknown type {}",
                    n.name, a.name, a.r#type
                ));
            }
            if a.f.is_nan() || a.floats.iter().any(|v| v.is_nan()) {
                return Err(format!(
                    "node {:?} attribute {:?} holds NaN",
                    n.name, a.name
                ));
            }
            for t in a.t.iter().chain(&a.tensors) {
                validate_tensor(t)?;
            }
            for g in a.g.iter().chain(&a.graphs) {
                validate_graph(g, depth + 1)?;
            }
        }
    }
    if depth == 0 {
        validate_names(graph)?;
    }
    Ok(())
}

/// Every value a node reads, and every graph output, must be a graph input, an initializer or the output of
/// an earlier node (ONNX requires topological order; tract indexes a map by these names without checking).
fn validate_names(graph: &GraphProto) -> Result<(), String> {
    let mut known: std::collections::HashSet<&str> =
        graph.input.iter().map(|i| i.name.as_str()).collect();
    known.extend(graph.initializer.iter().map(|t| t.name.as_str()));
    for n in &graph.node {
        if let Some(missing) = n
            .input
            .iter()
            .find(|i| !i.is_empty() && !known.contains(i.as_str()))
        {
            return Err(format!(
                "node {:?} reads {missing:?}, which no earlier node, input or initializer defines",
                n.name
            ));
        }
        for o in n.output.iter().filter(|o| !o.is_empty()) {
            if !known.insert(o.as_str()) {
                return Err(format!(
                    "node {:?} writes {o:?}, which is already defined (ONNX values are assigned once)",
                    n.name
                ));
            }
        }
    }
    if let Some(missing) = graph
        .output
        .iter()
        .find(|o| !known.contains(o.name.as_str()))
    {
        return Err(format!("graph output {:?} is never computed", missing.name));
    }
    Ok(())
}

/// Largest element count of one stored tensor (2^31: protobuf limits a message to 2 GiB anyway).
const MAX_TENSOR_ELEMENTS: u64 = 1 << 31;

fn validate_tensor(t: &TensorProto) -> Result<(), String> {
    let name = &t.name;
    if t.data_location != 0 || !t.external_data.is_empty() {
        return Err(format!(
            "tensor {name:?} keeps its data in an external file, which is not supported"
        ));
    }
    let mut count: u64 = 1;
    for &d in &t.dims {
        let d = u64::try_from(d)
            .map_err(|_| format!("tensor {name:?} has a negative dimension {d}"))?;
        count = count
            .checked_mul(d)
            .filter(|&c| c <= MAX_TENSOR_ELEMENTS)
            .ok_or_else(|| format!("tensor {name:?} has too many elements"))?;
    }
    let dt = DataType::try_from(t.data_type)
        .map_err(|_| format!("tensor {name:?} has unknown element type {}", t.data_type))?;
    let (size, typed) = match dt {
        // Strings are never stored raw; tract cannot read raw bfloat16.
        DataType::String | DataType::Bfloat16 if !t.raw_data.is_empty() => {
            return Err(format!(
                "tensor {name:?} stores {dt:?} values as raw bytes, which is not supported"
            ))
        }
        DataType::Float => (4, t.float_data.len()),
        DataType::Double => (8, t.double_data.len()),
        DataType::Int64 => (8, t.int64_data.len()),
        DataType::Int32 => (4, t.int32_data.len()),
        DataType::Int16 | DataType::Uint16 | DataType::Float16 | DataType::Bfloat16 => {
            (2, t.int32_data.len())
        }
        DataType::Int8 | DataType::Uint8 | DataType::Bool => (1, t.int32_data.len()),
        DataType::Uint32 | DataType::Uint64 => (
            if dt == DataType::Uint32 { 4 } else { 8 },
            t.uint64_data.len(),
        ),
        DataType::String => return Ok(()),
        other => {
            return Err(format!(
                "tensor {name:?} has unsupported element type {other:?}"
            ))
        }
    };
    let stored = if t.raw_data.is_empty() {
        typed as u64
    } else {
        t.raw_data.len() as u64 / size
    };
    let exact = t.raw_data.is_empty() || (t.raw_data.len() as u64).is_multiple_of(size);
    if stored != count || !exact {
        return Err(format!(
            "tensor {name:?} has dimensions {:?} ({count} elements) but stores {stored}",
            t.dims
        ));
    }
    // NaN weights make every prediction NaN, and tract's constant folding asserts on them.
    let nan = match dt {
        DataType::Float if t.raw_data.is_empty() => t.float_data.iter().any(|v| v.is_nan()),
        DataType::Float => t
            .raw_data
            .chunks_exact(4)
            .any(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]).is_nan()),
        DataType::Double if t.raw_data.is_empty() => t.double_data.iter().any(|v| v.is_nan()),
        DataType::Double => t
            .raw_data
            .chunks_exact(8)
            .any(|b| f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]).is_nan()),
        _ => false,
    };
    if nan {
        return Err(format!("tensor {name:?} holds NaN values"));
    }
    Ok(())
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
