//! A user's ONNX network as a differentiable [`Model`], evaluated by candle-onnx.
//!
//! candle-onnx evaluates the graph with candle ops, so autograd reaches both the input (exact gradients for
//! attacks) and the weights (fine-tuning in `aegis harden`). To make that true we prepare the graph once at
//! load time:
//! - float initializers become [`Var`]s passed in as inputs, so the same graph can be trained and saved back;
//! - a final `Softmax` is cut off so attacks see logits (as PyTorch would); a graph that ends in probabilities
//!   without a `Softmax` node is detected by probing and its logits taken as `log p`;
//! - `MaxPool` nodes are rewritten into `Reshape → Transpose → Reshape → ReduceMax`, whose backward is
//!   correct, because candle 0.11's own max-pool backward is 1/k² too small (see [`crate::ops`]). A max-pool
//!   that cannot be rewritten (overlapping windows, padding) makes the model black-box: never wrong gradients.
//!
//! Graphs with operators candle-onnx does not implement (scikit-learn's `ai.onnx.ml` domain, tree ensembles)
//! are refused here with the operator named.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor, Var};
use candle_onnx::onnx::{
    tensor_proto::DataType, tensor_shape_proto::dimension::Value as Dim, type_proto, ModelProto,
    NodeProto, ValueInfoProto,
};
use prost::Message;

use crate::error::check_shape;
use crate::export::{i64_tensor, int, ints, node};
use crate::train::Trainable;
use crate::{Differentiable, Error, Model};

/// Largest ONNX file we read (protobuf caps messages at 2 GiB anyway).
pub const MAX_MODEL_BYTES: u64 = 2 << 30;

/// Operators candle-onnx 0.11 evaluates.
const SUPPORTED: &[&str] = &[
    "Add",
    "Sub",
    "Mul",
    "Div",
    "Pow",
    "Exp",
    "Equal",
    "Not",
    "MatMul",
    "Reshape",
    "LogSoftmax",
    "Softmax",
    "Transpose",
    "Dropout",
    "MaxPool",
    "AveragePool",
    "BatchNormalization",
    "Squeeze",
    "ConstantOfShape",
    "Unsqueeze",
    "Clip",
    "Gather",
    "GatherElements",
    "Shape",
    "Size",
    "Sqrt",
    "Range",
    "Greater",
    "Less",
    "LessOrEqual",
    "GreaterOrEqual",
    "Log",
    "Min",
    "Where",
    "Conv",
    "Concat",
    "Abs",
    "Cos",
    "Sin",
    "Neg",
    "Erf",
    "Tanh",
    "Sigmoid",
    "Gelu",
    "Relu",
    "PRelu",
    "Ceil",
    "Floor",
    "Constant",
    "Cast",
    "CumSum",
    "Flatten",
    "Identity",
    "If",
    "Pad",
    "Slice",
    "ReduceMax",
    "ReduceMean",
    "ReduceMin",
    "Split",
    "Expand",
    "Tile",
    "ReduceSum",
    "ArgMin",
    "ArgMax",
    "LeakyRelu",
    "Gemm",
    "LSTM",
    "RNN",
    "Xor",
    "And",
    "Or",
    "Sign",
    "Selu",
    "OneHot",
    "HardSwish",
    "Resize",
    "Trilu",
    "ScatterND",
];

/// What the graph's output means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputKind {
    /// Unnormalised scores (a final Softmax was cut off, or there was none).
    Logits,
    /// Probabilities; logits are taken as their log.
    Probabilities,
}

/// An ONNX model evaluated by candle.
pub struct OnnxModel {
    path: PathBuf,
    /// The graph as loaded (for saving with updated weights).
    original: ModelProto,
    /// The prepared graph: no float initializers, softmax cut, max-pools rewritten.
    graph: ModelProto,
    weights: Vec<(String, Var)>,
    input_name: String,
    input_dims: Vec<usize>,
    input_dtype: DType,
    output_name: String,
    output: OutputKind,
    n_features: usize,
    n_classes: usize,
    not_differentiable: Option<String>,
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

    /// Prepare an ONNX model proto.
    pub fn from_proto(original: ModelProto, path: &Path) -> Result<Self, Error> {
        let graph = checked_graph(&original, path)?;
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

        let mut prepared = original.clone();
        let g = prepared.graph.get_or_insert_with(Default::default);
        let mut weights = Vec::new();
        g.initializer.retain(|t| {
            if t.data_type == DataType::Float as i32 {
                if let Ok(tensor) = candle_onnx::eval::get_tensor(t, &t.name) {
                    if let Ok(var) = Var::from_tensor(&tensor) {
                        weights.push((t.name.clone(), var));
                        return false;
                    }
                }
            }
            true
        });
        // Cut a final softmax: attacks want logits.
        let mut output_name = declared_output.clone();
        let mut output = OutputKind::Logits;
        let mut softmax_cut = false;
        if let Some(last) = g
            .node
            .iter()
            .find(|n| n.output.first() == Some(&declared_output))
        {
            if last.op_type == "Softmax" && !last.input.is_empty() {
                output_name = last.input[0].clone();
                softmax_cut = true;
            }
        }
        g.output = vec![ValueInfoProto {
            name: output_name.clone(),
            ..Default::default()
        }];

        let mut model = OnnxModel {
            path: path.to_path_buf(),
            original,
            graph: prepared,
            weights,
            input_name,
            input_dims,
            input_dtype,
            output_name,
            output,
            n_features,
            n_classes: 0,
            not_differentiable: None,
        };
        rewrite_gemms(model.graph.graph.get_or_insert_with(Default::default));
        model.rewrite_max_pools()?;
        let probe = probe_rows(n_features);
        let out = model.run_raw(&model.to_input(&probe, 4)?, false)?;
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

    /// Why gradients are not available, when they are not.
    pub fn not_differentiable(&self) -> Option<&str> {
        self.not_differentiable.as_deref()
    }

    /// Input dimensions after the batch dimension.
    pub fn input_dims(&self) -> &[usize] {
        &self.input_dims
    }

    fn to_input(&self, x: &[f32], n: usize) -> Result<Tensor, Error> {
        let mut shape = vec![n];
        shape.extend(&self.input_dims);
        Ok(Tensor::from_slice(x, shape, &Device::Cpu)?.to_dtype(self.input_dtype)?)
    }

    /// Evaluate the prepared graph on an input tensor of shape `(n, input_dims…)`.
    /// `track`: whether the weights take part in autograd (training) or not (prediction, attacks).
    fn run_raw(&self, x: &Tensor, track: bool) -> Result<Tensor, Error> {
        let mut inputs: HashMap<String, Tensor> = HashMap::with_capacity(self.weights.len() + 1);
        inputs.insert(self.input_name.clone(), x.clone());
        for (name, var) in &self.weights {
            let w = if track {
                var.as_tensor().clone()
            } else {
                var.as_tensor().detach()
            };
            inputs.insert(name.clone(), w);
        }
        let mut out = guarded_eval(&self.graph, inputs)
            .map_err(|e| Error::Eval(format!("{}: {e}", self.path.display())))?;
        out.remove(&self.output_name).ok_or_else(|| {
            Error::Eval(format!(
                "{}: output {} was not produced",
                self.path.display(),
                self.output_name
            ))
        })
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

    /// Rewrite each `MaxPool` into ops with a correct backward; mark the model black-box if one cannot be.
    fn rewrite_max_pools(&mut self) -> Result<(), Error> {
        let pools: Vec<NodeProto> = self
            .graph
            .graph
            .as_ref()
            .map(|g| {
                g.node
                    .iter()
                    .filter(|n| n.op_type == "MaxPool")
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        if pools.is_empty() {
            return Ok(());
        }
        // Learn each pool's input shape from one probe evaluation.
        let mut probe = self.graph.clone();
        let pg = probe.graph.get_or_insert_with(Default::default);
        for p in &pools {
            pg.output.push(ValueInfoProto {
                name: p.input[0].clone(),
                ..Default::default()
            });
        }
        let mut inputs: HashMap<String, Tensor> = HashMap::new();
        inputs.insert(
            self.input_name.clone(),
            self.to_input(&probe_rows(self.n_features)[..self.n_features], 1)?,
        );
        for (name, var) in &self.weights {
            inputs.insert(name.clone(), var.as_tensor().clone());
        }
        let values = guarded_eval(&probe, inputs)
            .map_err(|e| load_err(&self.path, format!("evaluation failed: {e}")))?;
        let g = self.graph.graph.get_or_insert_with(Default::default);
        let mut rewritten = Vec::with_capacity(g.node.len());
        for (i, n) in std::mem::take(&mut g.node).into_iter().enumerate() {
            if n.op_type != "MaxPool" {
                rewritten.push(n);
                continue;
            }
            let dims = values
                .get(&n.input[0])
                .map(|t| t.dims().to_vec())
                .unwrap_or_default();
            match pool_as_reshape(&n, &dims, i) {
                Ok((nodes, inits)) => {
                    rewritten.extend(nodes);
                    g.initializer.extend(inits);
                }
                Err(why) => {
                    self.not_differentiable = Some(format!("MaxPool {:?}: {why}", n.name));
                    rewritten.push(n);
                }
            }
        }
        g.node = rewritten;
        Ok(())
    }
}

/// Evaluate a graph; a panic inside the evaluator (an op given shapes it does not expect) becomes an error, so
/// a hostile model file cannot take the process down.
fn guarded_eval(
    graph: &ModelProto,
    inputs: HashMap<String, Tensor>,
) -> Result<HashMap<String, Tensor>, String> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        candle_onnx::simple_eval(graph, inputs)
    })) {
        Ok(result) => result.map_err(|e| e.to_string()),
        Err(_) => Err("the evaluator failed on this graph (invalid shapes or attributes)".into()),
    }
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
pub(crate) fn decode_model(bytes: &[u8], path: &Path) -> Result<ModelProto, Error> {
    ModelProto::decode(bytes).map_err(|e| load_err(path, format!("not an ONNX model: {e}")))
}

/// The model's graph, after the structural checks both backends rely on ([`validate_tensors`]).
pub(crate) fn checked_graph<'a>(
    proto: &'a ModelProto,
    path: &Path,
) -> Result<&'a candle_onnx::onnx::GraphProto, Error> {
    let graph = proto
        .graph
        .as_ref()
        .ok_or_else(|| load_err(path, "the model has no graph".into()))?;
    validate_tensors(graph).map_err(|why| load_err(path, why))?;
    Ok(graph)
}

/// The one graph input that is not an initializer.
pub(crate) fn sole_input<'a>(
    graph: &'a candle_onnx::onnx::GraphProto,
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
pub(crate) fn validate_tensors(graph: &candle_onnx::onnx::GraphProto) -> Result<(), String> {
    validate_graph(graph, 0)
}

fn validate_graph(graph: &candle_onnx::onnx::GraphProto, depth: usize) -> Result<(), String> {
    use candle_onnx::onnx::attribute_proto::AttributeType;
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
fn validate_names(graph: &candle_onnx::onnx::GraphProto) -> Result<(), String> {
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
        known.extend(n.output.iter().map(|o| o.as_str()));
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

fn validate_tensor(t: &candle_onnx::onnx::TensorProto) -> Result<(), String> {
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
        "Slice" | "Where" | "ScatterND" | "Range" | "OneHot" | "LSTM" | "RNN" => 3,
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
                format!("operator {} from domain {} (e.g. a scikit-learn export) cannot be evaluated by the differentiable backend", n.op_type, n.domain),
            ));
        }
        let given = n.input.iter().filter(|i| !i.is_empty()).count();
        // candle-onnx's own Gemm reads a third input; only the plain Gemm we rewrite may omit it.
        if n.op_type == "Gemm" && given < 3 && !gemm_is_plain(n) {
            return Err(load_err(
                path,
                format!(
                    "Gemm node {:?} without a bias needs alpha = beta = 1 and transA = 0",
                    n.name
                ),
            ));
        }
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
        if !SUPPORTED.contains(&n.op_type.as_str()) {
            return Err(load_err(
                path,
                format!(
                    "operator {} (node {:?}) is not supported by the differentiable backend",
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
fn probe_rows(d: usize) -> Vec<f32> {
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

/// Plain `Gemm` nodes (alpha = beta = 1, no transposed A) as `[Transpose →] MatMul → Add`. candle-onnx's
/// `Gemm` multiplies A and C by full tensors of alpha and beta even when they are 1 (two extra element-wise
/// passes forward and backward, and f32 constants that break double-precision graphs); the rewrite computes
/// the same values with less work.
/// A `Gemm` that is just `A · B(ᵀ) + C`: alpha = beta = 1 and A not transposed.
fn gemm_is_plain(n: &NodeProto) -> bool {
    let attr = |name: &str| n.attribute.iter().find(|a| a.name == name);
    let scale_is_one = |name: &str| attr(name).is_none_or(|a| a.f == 1.0);
    n.op_type == "Gemm"
        && scale_is_one("alpha")
        && scale_is_one("beta")
        && attr("transA").is_none_or(|a| a.i == 0)
}

fn rewrite_gemms(g: &mut candle_onnx::onnx::GraphProto) {
    let mut out = Vec::with_capacity(g.node.len());
    for (i, n) in std::mem::take(&mut g.node).into_iter().enumerate() {
        let attr = |name: &str| n.attribute.iter().find(|a| a.name == name);
        let trans_b = attr("transB").is_some_and(|a| a.i != 0);
        let plain = gemm_is_plain(&n) && n.input.len() >= 2 && n.output.len() == 1;
        if !plain {
            out.push(n);
            continue;
        }
        let p = format!("aegis_gemm{i}");
        let mut b = n.input[1].clone();
        if trans_b {
            let bt = format!("{p}_bt");
            out.push(node(
                "Transpose",
                &bt,
                &[&b],
                &[&bt],
                vec![ints("perm", &[1, 0])],
            ));
            b = bt;
        }
        let has_c = n.input.get(2).is_some_and(|c| !c.is_empty());
        let mm = if has_c {
            format!("{p}_mm")
        } else {
            n.output[0].clone()
        };
        out.push(node(
            "MatMul",
            &format!("{p}_matmul"),
            &[&n.input[0], &b],
            &[&mm],
            vec![],
        ));
        if has_c {
            out.push(node(
                "Add",
                &format!("{p}_add"),
                &[&mm, &n.input[2]],
                &[&n.output[0]],
                vec![],
            ));
        }
    }
    g.node = out;
}

/// `MaxPool` with window = stride, no padding, as `[Slice →] Reshape → Transpose → Reshape → ReduceMax`.
fn pool_as_reshape(
    n: &NodeProto,
    dims: &[usize],
    idx: usize,
) -> Result<(Vec<NodeProto>, Vec<candle_onnx::onnx::TensorProto>), String> {
    let attr = |name: &str| n.attribute.iter().find(|a| a.name == name);
    let kernel = attr("kernel_shape")
        .map(|a| a.ints.clone())
        .unwrap_or_default();
    let strides = attr("strides")
        .map(|a| a.ints.clone())
        .unwrap_or_else(|| vec![1; kernel.len()]);
    let pads = attr("pads").map(|a| a.ints.clone()).unwrap_or_default();
    let ceil = attr("ceil_mode").map(|a| a.i).unwrap_or(0);
    let dilated = attr("dilations").is_some_and(|a| a.ints.iter().any(|&v| v != 1));
    let [kh, kw] = kernel[..] else {
        return Err(format!("kernel {kernel:?} is not 2-D"));
    };
    if strides != kernel
        || pads.iter().any(|&p| p != 0)
        || ceil != 0
        || dilated
        || attr("auto_pad").is_some_and(|a| !a.s.is_empty() && a.s != b"NOTSET")
    {
        return Err("overlapping windows, padding or dilation cannot be rewritten".into());
    }
    let [_, _, h, w] = dims[..] else {
        return Err(format!("input shape {dims:?} is not 4-D"));
    };
    let (kh, kw) = (kh as usize, kw as usize);
    let (oh, ow) = (h / kh, w / kw);
    if kh == 0 || kw == 0 || oh == 0 || ow == 0 {
        return Err("window larger than the input".into());
    }
    let p = format!("aegis_pool{idx}");
    let mut nodes = Vec::new();
    let mut inits = Vec::new();
    let mut src = n.input[0].clone();
    if oh * kh != h || ow * kw != w {
        inits.push(i64_tensor(&format!("{p}_starts"), &[0, 0]));
        inits.push(i64_tensor(
            &format!("{p}_ends"),
            &[(oh * kh) as i64, (ow * kw) as i64],
        ));
        inits.push(i64_tensor(&format!("{p}_axes"), &[2, 3]));
        let out = format!("{p}_sliced");
        nodes.push(node(
            "Slice",
            &out,
            &[
                &src,
                &format!("{p}_starts"),
                &format!("{p}_ends"),
                &format!("{p}_axes"),
            ],
            &[&out],
            vec![],
        ));
        src = out;
    }
    inits.push(i64_tensor(
        &format!("{p}_split"),
        &[0, 0, oh as i64, kh as i64, ow as i64, kw as i64],
    ));
    inits.push(i64_tensor(
        &format!("{p}_windows"),
        &[0, 0, oh as i64, ow as i64, (kh * kw) as i64],
    ));
    nodes.push(node(
        "Reshape",
        &format!("{p}_a"),
        &[&src, &format!("{p}_split")],
        &[&format!("{p}_a")],
        vec![],
    ));
    nodes.push(node(
        "Transpose",
        &format!("{p}_b"),
        &[&format!("{p}_a")],
        &[&format!("{p}_b")],
        vec![ints("perm", &[0, 1, 2, 4, 3, 5])],
    ));
    nodes.push(node(
        "Reshape",
        &format!("{p}_c"),
        &[&format!("{p}_b"), &format!("{p}_windows")],
        &[&format!("{p}_c")],
        vec![],
    ));
    nodes.push(node(
        "ReduceMax",
        &format!("{p}_max"),
        &[&format!("{p}_c")],
        &[&n.output[0]],
        vec![ints("axes", &[4]), int("keepdims", 0)],
    ));
    Ok((nodes, inits))
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
        let mut shape = vec![n];
        shape.extend(&self.input_dims);
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
        format!("onnx (candle) {}", self.path.display())
    }

    fn as_differentiable(&self) -> Option<&dyn Differentiable> {
        if self.not_differentiable.is_some() {
            None
        } else {
            Some(self)
        }
    }
}

impl Differentiable for OnnxModel {
    fn logits(&self, x: &Tensor) -> Result<Tensor, Error> {
        if let Some(why) = &self.not_differentiable {
            return Err(Error::Eval(format!(
                "{}: no gradients: {why}",
                self.path.display()
            )));
        }
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

    /// The original graph (with its Softmax and MaxPool nodes) with the current weights.
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
