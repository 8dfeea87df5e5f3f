//! Our own evaluation of an ONNX graph on candle tensors, for a listed set of operators whose gradients are
//! checked.
//!
//! Attacks need the gradient of a model's loss with respect to its input, and `aegis harden` needs it with
//! respect to the weights. Both come from candle's autograd, so every operator here is written with candle
//! ops whose backward is correct, and every one of [`DIFFERENTIABLE_OPS`] is checked against central finite
//! differences in f64 (`tests/graph_ops.rs`). A graph with any other operator is not evaluated here at all:
//! the caller treats it as a black box, so a gradient is either checked or absent, never silently wrong.
//!
//! Values are either floating-point tensors in one compute type (the input's, f32 or f64; gradients flow
//! through them) or small integer tensors held on the host (shapes, axes, indices: `Shape → Gather → Concat →
//! Reshape` chains of dynamic flattening), which carry no gradient.
//!
//! Pooling is built from `index_select` and `maximum`/`add` rather than candle's pooling ops, whose max-pool
//! backward is 1/k² too small in candle 0.11 (see [`crate::ops`]).

use std::collections::HashMap;

use aegis_formats::onnx::proto::{tensor_proto::DataType, NodeProto, TensorProto};
use candle_core::{DType, Device, Tensor};

/// Operators the evaluator implements, each gradient-checked against central finite differences in f64.
pub const DIFFERENTIABLE_OPS: &[&str] = &[
    "Abs",
    "Add",
    "AveragePool",
    "BatchNormalization",
    "Cast",
    "Clip",
    "Concat",
    "Constant",
    "Conv",
    "Div",
    "Dropout",
    "Erf",
    "Flatten",
    "Gather",
    "Gemm",
    "GlobalAveragePool",
    "Identity",
    "LeakyRelu",
    "LogSoftmax",
    "MatMul",
    "MaxPool",
    "Mul",
    "Pow",
    "ReduceMean",
    "ReduceSum",
    "Relu",
    "Reshape",
    "Shape",
    "Sigmoid",
    "Slice",
    "Softmax",
    "Sqrt",
    "Squeeze",
    "Sub",
    "Tanh",
    "Transpose",
    "Unsqueeze",
];

/// Whether the evaluator implements `op` (of the default domain).
pub fn is_differentiable_op(op: &str) -> bool {
    DIFFERENTIABLE_OPS.contains(&op)
}

/// Largest integer tensor computed on the host (shape arithmetic never needs more).
const MAX_HOST_INTS: usize = 1 << 20;

/// Largest float value any operator may produce (2^27 elements, 512 MiB in f32): checked before the
/// allocation, so a crafted graph (huge pads, a quadratic broadcast, doubling concatenations) fails cleanly.
const MAX_ELEMENTS: usize = 1 << 27;

/// Largest pooling window (positions per window): each position costs a few tensor ops.
const MAX_WINDOW: usize = 1024;

/// Refuse a value of `dims` before it is allocated.
fn budget(dims: &[usize]) -> R<()> {
    let n = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .filter(|&n| n <= MAX_ELEMENTS);
    match n {
        Some(_) => Ok(()),
        None => Err(format!(
            "a value of shape {dims:?} is larger than {MAX_ELEMENTS} elements"
        )),
    }
}

/// The numpy broadcast of two shapes.
fn broadcast_dims(a: &[usize], b: &[usize]) -> R<Vec<usize>> {
    let rank = a.len().max(b.len());
    (0..rank)
        .map(|i| {
            let x = if i + a.len() >= rank {
                a[i + a.len() - rank]
            } else {
                1
            };
            let y = if i + b.len() >= rank {
                b[i + b.len() - rank]
            } else {
                1
            };
            match (x, y) {
                (x, y) if x == y => Ok(x),
                (1, y) => Ok(y),
                (x, 1) => Ok(x),
                _ => Err(format!("shapes {a:?} and {b:?} do not broadcast")),
            }
        })
        .collect()
}

/// A value flowing through the graph.
#[derive(Debug, Clone)]
pub(crate) enum Value {
    /// Floating-point data in the compute type; gradients flow through it.
    Float(Tensor),
    /// Integer data (shapes, axes, indices) on the host.
    Int(Ints),
}

/// A small integer tensor on the host, row-major.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Ints {
    dims: Vec<usize>,
    data: Vec<i64>,
}

impl Ints {
    fn new(dims: Vec<usize>, data: Vec<i64>) -> Result<Self, String> {
        let count = dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
        if count != Some(data.len()) {
            return Err(format!(
                "integer tensor of shape {dims:?} holds {} values",
                data.len()
            ));
        }
        if data.len() > MAX_HOST_INTS {
            return Err(format!(
                "integer tensor of {} values is too large",
                data.len()
            ));
        }
        Ok(Ints { dims, data })
    }

    fn vector(data: Vec<i64>) -> Self {
        Ints {
            dims: vec![data.len()],
            data,
        }
    }
}

/// What the evaluator needs to know about the model besides its nodes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Context {
    /// The compute type of every float value.
    pub dtype: DType,
    /// The default-domain opset the graph imports (attribute defaults and input-vs-attribute forms differ).
    pub opset: i64,
}

type R<T> = Result<T, String>;

/// A candle error as one line (candle appends a backtrace when `RUST_BACKTRACE` is set).
fn ce(e: candle_core::Error) -> String {
    e.to_string().lines().next().unwrap_or_default().to_owned()
}

/// A stored tensor as a value: floating-point types in the compute type, integer and boolean types on the
/// host. The tensor was checked by `onnx::validate_tensors` (element count matches its dimensions).
pub(crate) fn tensor_value(t: &TensorProto, dtype: DType) -> R<Value> {
    let dims: Vec<usize> = t
        .dims
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| format!("tensor {:?} has dimension {d}", t.name)))
        .collect::<R<_>>()?;
    let raw = &t.raw_data;
    let dt = DataType::try_from(t.data_type)
        .map_err(|_| format!("tensor {:?} has unknown type {}", t.name, t.data_type))?;
    let float = |v: Vec<f64>| -> R<Value> {
        let x = Tensor::from_vec(v, dims.clone(), &Device::Cpu).map_err(ce)?;
        Ok(Value::Float(x.to_dtype(dtype).map_err(ce)?))
    };
    let ints = |v: Vec<i64>| Ints::new(dims.clone(), v).map(Value::Int);
    match dt {
        DataType::Float if raw.is_empty() => float(t.float_data.iter().map(|&v| v as f64).collect()),
        DataType::Float => float(
            raw.chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64)
                .collect(),
        ),
        DataType::Double if raw.is_empty() => float(t.double_data.clone()),
        DataType::Double => float(
            raw.chunks_exact(8)
                .map(|b| f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
                .collect(),
        ),
        DataType::Int64 if raw.is_empty() => ints(t.int64_data.clone()),
        DataType::Int64 => ints(
            raw.chunks_exact(8)
                .map(|b| i64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
                .collect(),
        ),
        DataType::Int32 if raw.is_empty() => ints(t.int32_data.iter().map(|&v| v as i64).collect()),
        DataType::Int32 => ints(
            raw.chunks_exact(4)
                .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as i64)
                .collect(),
        ),
        DataType::Bool | DataType::Uint8 | DataType::Int8 if raw.is_empty() => {
            ints(t.int32_data.iter().map(|&v| v as i64).collect())
        }
        DataType::Bool | DataType::Uint8 => ints(raw.iter().map(|&b| b as i64).collect()),
        DataType::Int8 => ints(raw.iter().map(|&b| b as i8 as i64).collect()),
        other => Err(format!(
            "tensor {:?} has element type {other:?}, which the differentiable backend does not read",
            t.name
        )),
    }
}

/// Evaluate `nodes` in order; `values` holds the graph inputs and constants and receives every output.
pub(crate) fn run(nodes: &[NodeProto], values: &mut HashMap<String, Value>, cx: Context) -> R<()> {
    for n in nodes {
        let inputs: Vec<Option<Value>> = n
            .input
            .iter()
            .map(|name| {
                if name.is_empty() {
                    Ok(None)
                } else {
                    values.get(name).cloned().map(Some).ok_or_else(|| {
                        format!("node {:?} reads {name:?}, which is not computed", n.name)
                    })
                }
            })
            .collect::<R<_>>()?;
        let out = eval_node(n, &inputs, cx)
            .map_err(|why| format!("{} node {:?}: {why}", n.op_type, n.name))?;
        if let Some(name) = n.output.first() {
            values.insert(name.clone(), out);
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------------------
// Attributes and inputs
// ---------------------------------------------------------------------------------------------------------

fn attr_i(n: &NodeProto, name: &str, default: i64) -> i64 {
    n.attr(name).map_or(default, |a| a.i)
}

fn attr_f(n: &NodeProto, name: &str, default: f32) -> f32 {
    n.attr(name).map_or(default, |a| a.f)
}

fn attr_ints(n: &NodeProto, name: &str) -> Option<Vec<i64>> {
    n.attr(name).map(|a| a.ints.clone())
}

fn input(inputs: &[Option<Value>], i: usize) -> R<&Value> {
    inputs
        .get(i)
        .and_then(|v| v.as_ref())
        .ok_or_else(|| format!("input {i} is missing"))
}

fn opt_input(inputs: &[Option<Value>], i: usize) -> Option<&Value> {
    inputs.get(i).and_then(|v| v.as_ref())
}

/// A value as a float tensor in the compute type (integers are converted: they carry no gradient).
fn float(v: &Value, cx: Context) -> R<Tensor> {
    match v {
        Value::Float(t) if t.dtype() == cx.dtype => Ok(t.clone()),
        Value::Float(t) => t.to_dtype(cx.dtype).map_err(ce),
        Value::Int(i) => {
            let data: Vec<f64> = i.data.iter().map(|&v| v as f64).collect();
            Tensor::from_vec(data, i.dims.clone(), &Device::Cpu)
                .and_then(|t| t.to_dtype(cx.dtype))
                .map_err(ce)
        }
    }
}

/// A value as host integers (a float input is truncated, as `Cast` to an integer type does).
fn ints(v: &Value) -> R<Ints> {
    match v {
        Value::Int(i) => Ok(i.clone()),
        Value::Float(t) => {
            if t.elem_count() > MAX_HOST_INTS {
                return Err("float tensor used as integers is too large".into());
            }
            let data = t
                .flatten_all()
                .and_then(|f| f.to_dtype(DType::F64))
                .and_then(|f| f.to_vec1::<f64>())
                .map_err(ce)?;
            if data.iter().any(|v| !v.is_finite()) {
                return Err("non-finite value cast to an integer".into());
            }
            Ints::new(t.dims().to_vec(), data.iter().map(|&v| v as i64).collect())
        }
    }
}

/// The float scalar held by an optional input (`Clip`'s bounds), if given.
fn scalar(v: Option<&Value>) -> R<Option<f64>> {
    let Some(v) = v else { return Ok(None) };
    let values: Vec<f64> = match v {
        Value::Int(i) => i.data.iter().map(|&x| x as f64).collect(),
        Value::Float(t) => t
            .flatten_all()
            .and_then(|f| f.to_dtype(DType::F64))
            .and_then(|f| f.to_vec1::<f64>())
            .map_err(ce)?,
    };
    match values[..] {
        [x] => Ok(Some(x)),
        _ => Err(format!("expected a scalar, got {} values", values.len())),
    }
}

fn dims_of(v: &Value) -> Vec<usize> {
    match v {
        Value::Float(t) => t.dims().to_vec(),
        Value::Int(i) => i.dims.clone(),
    }
}

/// A possibly negative axis of a tensor of rank `rank`.
fn axis(a: i64, rank: usize) -> R<usize> {
    let r = rank as i64;
    let a = if a < 0 { a + r } else { a };
    if (0..r).contains(&a) {
        Ok(a as usize)
    } else {
        Err(format!("axis {a} out of range for rank {rank}"))
    }
}

/// Axes given as the input `i` (newer opsets) or the attribute `axes` (older ones).
fn axes_of(n: &NodeProto, inputs: &[Option<Value>], i: usize) -> R<Option<Vec<i64>>> {
    match opt_input(inputs, i) {
        Some(v) => Ok(Some(ints(v)?.data)),
        None => Ok(attr_ints(n, "axes")),
    }
}

// ---------------------------------------------------------------------------------------------------------
// Operators
// ---------------------------------------------------------------------------------------------------------

fn eval_node(n: &NodeProto, inputs: &[Option<Value>], cx: Context) -> R<Value> {
    if !n.domain.is_empty() && n.domain != "ai.onnx" {
        return Err(format!("domain {} is not evaluated", n.domain));
    }
    let x = || input(inputs, 0);
    let fx = || x().and_then(|v| float(v, cx));
    let f = |t: candle_core::Result<Tensor>| t.map(Value::Float).map_err(ce);
    match n.op_type.as_str() {
        "Identity" | "Dropout" => Ok(x()?.clone()),
        "Constant" => constant(n, cx),
        "Add" | "Sub" | "Mul" | "Div" => binary(n.op_type.as_str(), x()?, input(inputs, 1)?, cx),
        "Pow" => pow(&fx()?, input(inputs, 1)?),
        "Sqrt" => f(fx()?.sqrt()),
        "Abs" => f(fx()?.abs()),
        "Erf" => f(fx()?.erf()),
        "Relu" => f(fx()?.relu()),
        "Tanh" => f(fx()?.tanh()),
        "Sigmoid" => f(candle_nn::ops::sigmoid(&fx()?)),
        "LeakyRelu" => {
            // where(x >= 0, x, αx): the gradient is 1 or α, also at exactly 0.
            let t = fx()?;
            let alpha = attr_f(n, "alpha", 0.01) as f64;
            f(t.ge(0.0).and_then(|m| m.where_cond(&t, &(&t * alpha)?)))
        }
        "Softmax" | "LogSoftmax" => softmax(n, &fx()?, cx),
        "Clip" => clip(n, &fx()?, inputs, cx),
        "Gemm" => gemm(
            n,
            &fx()?,
            &float(input(inputs, 1)?, cx)?,
            opt_input(inputs, 2),
            cx,
        ),
        "MatMul" => matmul(&fx()?, &float(input(inputs, 1)?, cx)?).map(Value::Float),
        "Conv" => conv(n, &fx()?, inputs, cx).map(Value::Float),
        "MaxPool" | "AveragePool" => pool(n, &fx()?).map(Value::Float),
        "GlobalAveragePool" => {
            let t = fx()?;
            let spatial: Vec<usize> = (2..t.rank()).collect();
            if spatial.is_empty() {
                return Err("input has no spatial dimensions".into());
            }
            f(t.mean_keepdim(spatial))
        }
        "BatchNormalization" => batch_norm(n, &fx()?, inputs, cx).map(Value::Float),
        "Flatten" => {
            let v = x()?;
            let d = dims_of(v);
            let a = attr_i(n, "axis", 1);
            let a = if a == d.len() as i64 {
                d.len()
            } else {
                axis(a, d.len())?
            };
            let outer: usize = d[..a].iter().product();
            let inner: usize = d[a..].iter().product();
            reshape_value(v, vec![outer, inner])
        }
        "Reshape" => {
            let v = x()?;
            let shape = ints(input(inputs, 1)?)?.data;
            let target = reshape_target(&dims_of(v), &shape, attr_i(n, "allowzero", 0) != 0)?;
            reshape_value(v, target)
        }
        "Transpose" => {
            let t = match x()? {
                Value::Float(t) => float(&Value::Float(t.clone()), cx)?,
                Value::Int(_) => return Err("transposing integer tensors is not supported".into()),
            };
            let perm: Vec<usize> = match attr_ints(n, "perm") {
                Some(p) => p.iter().map(|&a| axis(a, t.rank())).collect::<R<_>>()?,
                None => (0..t.rank()).rev().collect(),
            };
            let mut seen = perm.clone();
            seen.sort_unstable();
            if seen != (0..t.rank()).collect::<Vec<_>>() {
                return Err(format!("perm {perm:?} is not a permutation"));
            }
            f(t.permute(perm).and_then(|p| p.contiguous()))
        }
        "Concat" => concat(n, inputs, cx),
        "Slice" => slice(n, inputs, cx),
        "Squeeze" => {
            let v = x()?;
            let d = dims_of(v);
            let drop: Vec<usize> = match axes_of(n, inputs, 1)? {
                Some(a) => a.iter().map(|&a| axis(a, d.len())).collect::<R<_>>()?,
                None => (0..d.len()).filter(|&i| d[i] == 1).collect(),
            };
            if drop.iter().any(|&i| d[i] != 1) {
                return Err(format!("cannot squeeze axes {drop:?} of shape {d:?}"));
            }
            let kept = (0..d.len())
                .filter(|i| !drop.contains(i))
                .map(|i| d[i])
                .collect();
            reshape_value(v, kept)
        }
        "Unsqueeze" => {
            let v = x()?;
            let d = dims_of(v);
            let a = axes_of(n, inputs, 1)?.ok_or("no axes given")?;
            let rank = d.len() + a.len();
            let mut at: Vec<usize> = a.iter().map(|&a| axis(a, rank)).collect::<R<_>>()?;
            at.sort_unstable();
            at.dedup();
            if at.len() != a.len() {
                return Err("repeated axes".into());
            }
            let mut rest = d.into_iter();
            let out = (0..rank)
                .map(|i| {
                    if at.contains(&i) {
                        1
                    } else {
                        rest.next().unwrap_or(1)
                    }
                })
                .collect();
            reshape_value(v, out)
        }
        "Shape" => {
            let d = dims_of(x()?);
            let r = d.len() as i64;
            let clampi = |v: i64| (if v < 0 { v + r } else { v }).clamp(0, r) as usize;
            let start = clampi(attr_i(n, "start", 0));
            let end = clampi(attr_i(n, "end", r));
            let sel = d.get(start..end.max(start)).unwrap_or_default();
            Ok(Value::Int(Ints::vector(
                sel.iter().map(|&v| v as i64).collect(),
            )))
        }
        "Gather" => gather(n, x()?, &ints(input(inputs, 1)?)?),
        "Cast" => cast(n, x()?, cx),
        "ReduceMean" | "ReduceSum" => {
            let t = fx()?;
            let keep = attr_i(n, "keepdims", 1) != 0;
            let axes: Vec<usize> = match axes_of(n, inputs, 1)? {
                Some(a) if !a.is_empty() => {
                    a.iter().map(|&a| axis(a, t.rank())).collect::<R<_>>()?
                }
                _ if attr_i(n, "noop_with_empty_axes", 0) != 0 => return Ok(Value::Float(t)),
                _ => (0..t.rank()).collect(),
            };
            let m = if n.op_type == "ReduceSum" {
                t.sum_keepdim(axes.clone())
            } else {
                t.mean_keepdim(axes.clone())
            }
            .map_err(ce)?;
            if keep {
                return Ok(Value::Float(m));
            }
            let d: Vec<usize> = (0..t.rank())
                .filter(|i| !axes.contains(i))
                .map(|i| t.dims()[i])
                .collect();
            f(m.reshape(d))
        }
        other => Err(format!(
            "operator {other} is not implemented by the differentiable backend"
        )),
    }
}

fn constant(n: &NodeProto, cx: Context) -> R<Value> {
    if let Some(t) = n.attr("value").and_then(|a| a.t.as_ref()) {
        return tensor_value(t, cx.dtype);
    }
    let float = |v: Vec<f64>, dims: Vec<usize>| {
        Tensor::from_vec(v, dims, &Device::Cpu)
            .and_then(|t| t.to_dtype(cx.dtype))
            .map(Value::Float)
            .map_err(ce)
    };
    if let Some(a) = n.attr("value_float") {
        return float(vec![a.f as f64], vec![]);
    }
    if let Some(a) = n.attr("value_floats") {
        return float(
            a.floats.iter().map(|&v| v as f64).collect(),
            vec![a.floats.len()],
        );
    }
    if let Some(a) = n.attr("value_int") {
        return Ints::new(vec![], vec![a.i]).map(Value::Int);
    }
    if let Some(a) = n.attr("value_ints") {
        return Ints::new(vec![a.ints.len()], a.ints.clone()).map(Value::Int);
    }
    Err("no supported value attribute (sparse and string constants are not)".into())
}

fn binary(op: &str, a: &Value, b: &Value, cx: Context) -> R<Value> {
    if let (Value::Int(a), Value::Int(b)) = (a, b) {
        return int_binary(op, a, b).map(Value::Int);
    }
    let (a, b) = (float(a, cx)?, float(b, cx)?);
    budget(&broadcast_dims(a.dims(), b.dims())?)?;
    let out = match op {
        "Add" => a.broadcast_add(&b),
        "Sub" => a.broadcast_sub(&b),
        "Mul" => a.broadcast_mul(&b),
        _ => a.broadcast_div(&b),
    };
    out.map(Value::Float).map_err(ce)
}

/// Integer arithmetic of shape computations: equal shapes, or one side a single value.
fn int_binary(op: &str, a: &Ints, b: &Ints) -> R<Ints> {
    let apply = |x: i64, y: i64| -> R<i64> {
        match op {
            "Add" => x.checked_add(y),
            "Sub" => x.checked_sub(y),
            "Mul" => x.checked_mul(y),
            _ => x.checked_div(y),
        }
        .ok_or_else(|| format!("integer {op} of {x} and {y} overflows or divides by zero"))
    };
    let (dims, data) = if a.data.len() == b.data.len() && (a.dims == b.dims || b.data.len() == 1) {
        let dims = if a.dims.len() >= b.dims.len() {
            a.dims.clone()
        } else {
            b.dims.clone()
        };
        (
            dims,
            a.data
                .iter()
                .zip(&b.data)
                .map(|(&x, &y)| apply(x, y))
                .collect::<R<_>>()?,
        )
    } else if b.data.len() == 1 {
        (
            a.dims.clone(),
            a.data
                .iter()
                .map(|&x| apply(x, b.data[0]))
                .collect::<R<_>>()?,
        )
    } else if a.data.len() == 1 {
        (
            b.dims.clone(),
            b.data
                .iter()
                .map(|&y| apply(a.data[0], y))
                .collect::<R<_>>()?,
        )
    } else {
        return Err(format!(
            "integer shapes {:?} and {:?} do not broadcast",
            a.dims, b.dims
        ));
    };
    Ints::new(dims, data)
}

/// `Pow` with a single-valued exponent (`x²`, `x^0.5`: what exporters write), computed as `powf` so negative
/// bases with integer exponents are right. The loader keeps such exponents constant (never trainable), so no
/// gradient with respect to them is lost. A tensor of exponents is refused: candle's `pow` is `exp(y·ln x)`,
/// wrong for negative bases.
fn pow(base: &Tensor, e: &Value) -> R<Value> {
    let e_dims = dims_of(e);
    if e_dims.iter().product::<usize>() != 1 {
        return Err(format!(
            "an exponent of shape {e_dims:?} is not supported (only a single value)"
        ));
    }
    let exponent = scalar(Some(e))?.ok_or("exponent missing")?;
    let mut out = base.powf(exponent).map_err(ce)?;
    if e_dims.len() > out.rank() {
        let mut dims = vec![1; e_dims.len() - out.rank()];
        dims.extend(out.dims());
        out = out.reshape(dims).map_err(ce)?;
    }
    Ok(Value::Float(out))
}

fn softmax(n: &NodeProto, t: &Tensor, cx: Context) -> R<Value> {
    let log = n.op_type == "LogSoftmax";
    let rank = t.rank();
    let apply = |t: &Tensor, d: usize| {
        if log {
            candle_nn::ops::log_softmax(t, d)
        } else {
            candle_nn::ops::softmax(t, d)
        }
    };
    if cx.opset >= 13 {
        let a = axis(attr_i(n, "axis", -1), rank)?;
        return apply(t, a).map(Value::Float).map_err(ce);
    }
    // Before opset 13 the input is coerced to 2-D at `axis` (default 1) and normalised over the second part.
    let a = attr_i(n, "axis", 1);
    let a = if a == rank as i64 {
        rank
    } else {
        axis(a, rank)?
    };
    let outer: usize = t.dims()[..a].iter().product();
    let inner: usize = t.dims()[a..].iter().product();
    let flat = t.reshape((outer, inner)).map_err(ce)?;
    apply(&flat, 1)
        .and_then(|s| s.reshape(t.dims()))
        .map(Value::Float)
        .map_err(ce)
}

fn clip(n: &NodeProto, t: &Tensor, inputs: &[Option<Value>], cx: Context) -> R<Value> {
    let (lo, hi) = if cx.opset >= 11 {
        (scalar(opt_input(inputs, 1))?, scalar(opt_input(inputs, 2))?)
    } else {
        (
            n.attr("min").map(|a| a.f as f64),
            n.attr("max").map(|a| a.f as f64),
        )
    };
    let mut out = t.clone();
    if let Some(lo) = lo {
        out = out.maximum(lo).map_err(ce)?;
    }
    if let Some(hi) = hi {
        out = out.minimum(hi).map_err(ce)?;
    }
    Ok(Value::Float(out))
}

fn gemm(n: &NodeProto, a: &Tensor, b: &Tensor, c: Option<&Value>, cx: Context) -> R<Value> {
    if a.rank() != 2 || b.rank() != 2 {
        return Err(format!(
            "expects 2-D inputs, got {:?} and {:?}",
            a.dims(),
            b.dims()
        ));
    }
    let t = |m: &Tensor, flag: &str| -> R<Tensor> {
        if attr_i(n, flag, 0) != 0 {
            m.t().and_then(|m| m.contiguous()).map_err(ce)
        } else {
            Ok(m.clone())
        }
    };
    let mut y = t(a, "transA")?.matmul(&t(b, "transB")?).map_err(ce)?;
    let alpha = attr_f(n, "alpha", 1.0) as f64;
    if alpha != 1.0 {
        y = (y * alpha).map_err(ce)?;
    }
    if let Some(c) = c {
        let mut c = float(c, cx)?;
        let beta = attr_f(n, "beta", 1.0) as f64;
        if beta != 1.0 {
            c = (c * beta).map_err(ce)?;
        }
        y = y.broadcast_add(&c).map_err(ce)?;
    }
    Ok(Value::Float(y))
}

/// `numpy.matmul` semantics: 1-D operands are promoted, batch dimensions broadcast.
fn matmul(a: &Tensor, b: &Tensor) -> R<Tensor> {
    let (a1, b1) = (a.rank() == 1, b.rank() == 1);
    let a = if a1 {
        a.unsqueeze(0).map_err(ce)?
    } else {
        a.clone()
    };
    let b = if b1 {
        b.unsqueeze(1).map_err(ce)?
    } else {
        b.clone()
    };
    let mut y = if a.rank() == 2 && b.rank() == 2 {
        a.matmul(&b)
    } else {
        a.broadcast_matmul(&b)
    }
    .map_err(ce)?;
    if b1 {
        y = y.squeeze(y.rank() - 1).map_err(ce)?;
    }
    if a1 {
        y = y.squeeze(y.rank() - if b1 { 1 } else { 2 }).map_err(ce)?;
    }
    Ok(y)
}

/// Explicit `(begin, end)` padding per spatial dimension, from `pads` or `auto_pad`.
fn spatial_pads(
    n: &NodeProto,
    input: &[usize],
    kernel: &[usize],
    strides: &[usize],
    dilations: &[usize],
) -> R<Vec<(usize, usize)>> {
    let k = input.len();
    if input.contains(&0) || kernel.contains(&0) {
        return Err(format!("empty input {input:?} or kernel {kernel:?}"));
    }
    let auto = n.attr("auto_pad").map(|a| a.s.clone()).unwrap_or_default();
    match auto.as_slice() {
        b"" | b"NOTSET" => {
            let pads = attr_ints(n, "pads").unwrap_or_else(|| vec![0; 2 * k]);
            if pads.len() != 2 * k || pads.iter().any(|&p| !(0..=1 << 16).contains(&p)) {
                return Err(format!("pads {pads:?} do not fit {k} spatial dimensions"));
            }
            Ok((0..k)
                .map(|i| (pads[i] as usize, pads[i + k] as usize))
                .collect())
        }
        b"VALID" => Ok(vec![(0, 0); k]),
        b"SAME_UPPER" | b"SAME_LOWER" => Ok((0..k)
            .map(|i| {
                let out = input[i].div_ceil(strides[i]);
                let span = (kernel[i] - 1)
                    .saturating_mul(dilations[i])
                    .saturating_add(1);
                let total = ((out - 1).saturating_mul(strides[i]).saturating_add(span))
                    .saturating_sub(input[i]);
                let small = total / 2;
                if auto == b"SAME_UPPER" {
                    (small, total - small)
                } else {
                    (total - small, small)
                }
            })
            .collect()),
        other => Err(format!(
            "auto_pad {:?} is not supported",
            String::from_utf8_lossy(other)
        )),
    }
}

/// A per-spatial-dimension attribute (`strides`, `dilations`), default 1.
fn per_dim(n: &NodeProto, name: &str, k: usize) -> R<Vec<usize>> {
    match attr_ints(n, name) {
        None => Ok(vec![1; k]),
        Some(v) if v.len() == k && v.iter().all(|&s| (1..=1 << 16).contains(&s)) => {
            Ok(v.iter().map(|&s| s as usize).collect())
        }
        Some(v) => Err(format!("{name} {v:?} do not fit {k} spatial dimensions")),
    }
}

fn pad_spatial(t: &Tensor, pads: &[(usize, usize)]) -> R<Tensor> {
    let mut dims = t.dims().to_vec();
    for (i, &(b, e)) in pads.iter().enumerate() {
        dims[2 + i] = dims[2 + i].saturating_add(b).saturating_add(e);
    }
    budget(&dims)?;
    let mut t = t.clone();
    for (i, &(b, e)) in pads.iter().enumerate() {
        if b > 0 || e > 0 {
            t = t.pad_with_zeros(2 + i, b, e).map_err(ce)?;
        }
    }
    Ok(t)
}

fn conv(n: &NodeProto, x: &Tensor, inputs: &[Option<Value>], cx: Context) -> R<Tensor> {
    let w = float(input(inputs, 1)?, cx)?;
    let k = x.rank().saturating_sub(2);
    if !(1..=2).contains(&k) || w.rank() != x.rank() {
        return Err(format!(
            "only 1-D and 2-D convolutions: input {:?}, weight {:?}",
            x.dims(),
            w.dims()
        ));
    }
    let kernel: Vec<usize> = w.dims()[2..].to_vec();
    let strides = per_dim(n, "strides", k)?;
    let dilations = per_dim(n, "dilations", k)?;
    if strides.iter().any(|&s| s != strides[0]) || dilations.iter().any(|&d| d != dilations[0]) {
        return Err("strides and dilations must be the same in every dimension".into());
    }
    let group = attr_i(n, "group", 1);
    let channels = x.dims()[1];
    let fits = usize::try_from(group)
        .ok()
        .filter(|&g| g >= 1)
        .is_some_and(|g| {
            channels.is_multiple_of(g)
                && w.dims()[0].is_multiple_of(g)
                && w.dims()[1].checked_mul(g) == Some(channels)
        });
    if !fits {
        return Err(format!(
            "group {group} does not fit {channels} channels and weight {:?}",
            w.dims()
        ));
    }
    let pads = spatial_pads(n, &x.dims()[2..], &kernel, &strides, &dilations)?;
    for i in 0..k {
        let span = (kernel[i] - 1)
            .saturating_mul(dilations[i])
            .saturating_add(1);
        if x.dims()[2 + i] + pads[i].0 + pads[i].1 < span {
            return Err(format!(
                "kernel span {span} is larger than the padded input"
            ));
        }
        if pads[i].0 >= span || pads[i].1 >= span {
            return Err(format!(
                "padding {:?} is not smaller than the kernel span {span}",
                pads[i]
            ));
        }
    }
    let xp = pad_spatial(x, &pads)?;
    let (s, d, g) = (strides[0], dilations[0], group as usize);
    // A 1-D convolution runs as a 2-D one over a height of 1: candle 0.11's conv1d backward disagrees with
    // finite differences (tests/graph_ops.rs), its conv2d backward does not.
    let mut y = if k == 1 {
        let (xd, wd) = (xp.dims().to_vec(), w.dims().to_vec());
        let out = xp
            .reshape((xd[0], xd[1], 1, xd[2]))
            .and_then(|x2| x2.conv2d(&w.reshape((wd[0], wd[1], 1, wd[2]))?, 0, s, d, g))
            .map_err(ce)?;
        out.squeeze(2)
    } else {
        xp.conv2d(&w, 0, s, d, g)
    }
    .map_err(ce)?;
    if let Some(b) = opt_input(inputs, 2) {
        let b = float(b, cx)?;
        let mut shape = vec![1, b.elem_count()];
        shape.extend(std::iter::repeat_n(1, k));
        y = y
            .broadcast_add(&b.reshape(shape).map_err(ce)?)
            .map_err(ce)?;
    }
    Ok(y)
}

/// Max and average pooling over 1-D or 2-D windows: for every offset in the window, the input at
/// `offset + stride·i` is picked with `index_select` and folded with `maximum` (or summed), so the backward
/// is that of ops whose gradients are right.
fn pool(n: &NodeProto, x: &Tensor) -> R<Tensor> {
    let k = x.rank().saturating_sub(2);
    if !(1..=2).contains(&k) {
        return Err(format!("only 1-D and 2-D pooling, input {:?}", x.dims()));
    }
    let kernel: Vec<usize> = attr_ints(n, "kernel_shape")
        .filter(|v| v.len() == k && v.iter().all(|&s| (1..=1 << 12).contains(&s)))
        .ok_or("kernel_shape missing or invalid")?
        .iter()
        .map(|&v| v as usize)
        .collect();
    if kernel.iter().product::<usize>() > MAX_WINDOW {
        return Err(format!(
            "window {kernel:?} has more than {MAX_WINDOW} positions"
        ));
    }
    let strides = per_dim(n, "strides", k)?;
    let dilations = per_dim(n, "dilations", k)?;
    let is_max = n.op_type == "MaxPool";
    if n.output.len() > 1 && n.output.iter().skip(1).any(|o| !o.is_empty()) {
        return Err("the Indices output is not supported".into());
    }
    let input = &x.dims()[2..];
    let pads = spatial_pads(n, input, &kernel, &strides, &dilations)?;
    let ceil = attr_i(n, "ceil_mode", 0) != 0;
    let mut out = Vec::with_capacity(k);
    for i in 0..k {
        let span = (kernel[i] - 1)
            .saturating_mul(dilations[i])
            .saturating_add(1);
        let padded = input[i] + pads[i].0 + pads[i].1;
        if padded < span {
            return Err(format!(
                "window {span} larger than the padded input {padded}"
            ));
        }
        if pads[i].0 >= span || pads[i].1 >= span {
            return Err(format!(
                "padding {:?} is not smaller than the window {span}",
                pads[i]
            ));
        }
        let mut o = (padded - span) / strides[i] + 1;
        if ceil && !(padded - span).is_multiple_of(strides[i]) {
            // The extra window must start inside the input or its left padding.
            if o * strides[i] < input[i] + pads[i].0 {
                o += 1;
            }
        }
        out.push(o);
    }
    // Pad the input (zeros; for max, positions outside the input are pushed far below any real value) and
    // build the divisor mask as a product of one mask per axis: explicit pads count towards an average only
    // with `count_include_pad`, the ceil-mode tail never does.
    let count_pads = !is_max && attr_i(n, "count_include_pad", 0) != 0;
    let mut xp = x.clone();
    let mut mask: Option<Tensor> = None;
    for i in 0..k {
        let span = (kernel[i] - 1) * dilations[i] + 1;
        let needed = (out[i] - 1) * strides[i] + span;
        let (b, e) = pads[i];
        let tail = needed.saturating_sub(input[i] + b + e);
        let mut dims = xp.dims().to_vec();
        dims[2 + i] += b + e + tail;
        budget(&dims)?;
        xp = xp.pad_with_zeros(2 + i, b, e + tail).map_err(ce)?;
        let axis_mask: Vec<f64> = (0..b + input[i] + e + tail)
            .map(|j| {
                let inside = j >= b && j < b + input[i];
                let counted = if count_pads {
                    j < b + input[i] + e
                } else {
                    inside
                };
                if counted {
                    1.0
                } else {
                    0.0
                }
            })
            .collect();
        let mut shape = vec![1; 2 + k];
        shape[2 + i] = axis_mask.len();
        let m = Tensor::from_vec(axis_mask, shape, &Device::Cpu)
            .and_then(|m| m.to_dtype(x.dtype()))
            .map_err(ce)?;
        mask = Some(match mask {
            None => m,
            Some(prev) => prev.broadcast_mul(&m).map_err(ce)?,
        });
    }
    let mask = mask.ok_or("no spatial dimensions")?;
    if is_max {
        let low = ((mask.ones_like().map_err(ce)? - &mask).map_err(ce)? * -1e30).map_err(ce)?;
        xp = xp.broadcast_add(&low).map_err(ce)?;
    }
    let picks = |t: &Tensor, offsets: &[usize]| -> R<Tensor> {
        let mut t = t.clone();
        for i in 0..k {
            let idx: Vec<u32> = (0..out[i])
                .map(|j| (offsets[i] * dilations[i] + j * strides[i]) as u32)
                .collect();
            let idx = Tensor::new(idx, &Device::Cpu).map_err(ce)?;
            t = t.index_select(&idx, 2 + i).map_err(ce)?;
        }
        Ok(t)
    };
    let offsets: Vec<Vec<usize>> = if k == 1 {
        (0..kernel[0]).map(|a| vec![a]).collect()
    } else {
        (0..kernel[0])
            .flat_map(|a| (0..kernel[1]).map(move |b| vec![a, b]))
            .collect()
    };
    let mut acc: Option<Tensor> = None;
    let mut count: Option<Tensor> = None;
    for o in &offsets {
        let v = picks(&xp, o)?;
        acc = Some(match acc {
            None => v,
            Some(a) if is_max => a.maximum(&v).map_err(ce)?,
            Some(a) => (a + v).map_err(ce)?,
        });
        if !is_max {
            let c = picks(&mask, o)?;
            count = Some(match count {
                None => c,
                Some(a) => (a + c).map_err(ce)?,
            });
        }
    }
    let acc = acc.ok_or("empty window")?;
    match count {
        Some(c) => acc.broadcast_div(&c.maximum(1.0).map_err(ce)?).map_err(ce),
        None => Ok(acc),
    }
}

fn batch_norm(n: &NodeProto, x: &Tensor, inputs: &[Option<Value>], cx: Context) -> R<Tensor> {
    if attr_i(n, "training_mode", 0) != 0 || n.output.iter().skip(1).any(|o| !o.is_empty()) {
        return Err("training mode is not supported".into());
    }
    if x.rank() < 2 {
        return Err(format!("input {:?} has no channel dimension", x.dims()));
    }
    let c = x.dims()[1];
    let mut shape = vec![1, c];
    shape.extend(std::iter::repeat_n(1, x.rank() - 2));
    let p = |i: usize| -> R<Tensor> {
        let t = float(input(inputs, i)?, cx)?;
        if t.elem_count() != c {
            return Err(format!(
                "parameter {i} has {} values for {c} channels",
                t.elem_count()
            ));
        }
        t.reshape(shape.clone()).map_err(ce)
    };
    let (scale, bias, mean, var) = (p(1)?, p(2)?, p(3)?, p(4)?);
    let eps = attr_f(n, "epsilon", 1e-5) as f64;
    let denom = (var + eps).and_then(|v| v.sqrt()).map_err(ce)?;
    x.broadcast_sub(&mean)
        .and_then(|y| y.broadcast_div(&denom))
        .and_then(|y| y.broadcast_mul(&scale))
        .and_then(|y| y.broadcast_add(&bias))
        .map_err(ce)
}

/// The dimensions `Reshape` produces: `0` copies the input's dimension (unless `allowzero`), `-1` is inferred.
fn reshape_target(input: &[usize], shape: &[i64], allow_zero: bool) -> R<Vec<usize>> {
    let total: usize = input.iter().product();
    let mut out = Vec::with_capacity(shape.len());
    let mut infer = None;
    for (i, &s) in shape.iter().enumerate() {
        match s {
            -1 if infer.is_none() => {
                infer = Some(i);
                out.push(1);
            }
            0 if !allow_zero => {
                out.push(*input.get(i).ok_or("0 copies a dimension the input lacks")?)
            }
            s if s >= 0 => out.push(s as usize),
            s => return Err(format!("invalid dimension {s} in shape {shape:?}")),
        }
    }
    let product = |dims: &[usize]| dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
    let known = product(&out).ok_or_else(|| format!("shape {shape:?} overflows"))?;
    if let Some(i) = infer {
        if known == 0 || !total.is_multiple_of(known) {
            return Err(format!("cannot reshape {input:?} into {shape:?}"));
        }
        out[i] = total / known;
    }
    if product(&out) != Some(total) {
        return Err(format!("cannot reshape {input:?} into {shape:?}"));
    }
    Ok(out)
}

fn reshape_value(v: &Value, dims: Vec<usize>) -> R<Value> {
    match v {
        Value::Float(t) => t.reshape(dims).map(Value::Float).map_err(ce),
        Value::Int(i) => Ints::new(dims, i.data.clone()).map(Value::Int),
    }
}

fn concat(n: &NodeProto, inputs: &[Option<Value>], cx: Context) -> R<Value> {
    let parts: Vec<&Value> = inputs.iter().flatten().collect();
    let first = parts.first().ok_or("no inputs")?;
    let rank = dims_of(first).len();
    let a = axis(attr_i(n, "axis", 0), rank)?;
    if parts.iter().all(|p| matches!(p, Value::Int(_))) {
        if rank != 1 {
            return Err("integer concatenation is supported for vectors only".into());
        }
        let data: Vec<i64> = parts
            .iter()
            .flat_map(|p| match p {
                Value::Int(i) => i.data.clone(),
                Value::Float(_) => Vec::new(),
            })
            .collect();
        return Ints::new(vec![data.len()], data).map(Value::Int);
    }
    let tensors: Vec<Tensor> = parts.iter().map(|p| float(p, cx)).collect::<R<_>>()?;
    let mut dims = tensors[0].dims().to_vec();
    dims[a] = tensors
        .iter()
        .map(|t| t.dims().get(a).copied().unwrap_or(0))
        .sum();
    budget(&dims)?;
    Tensor::cat(&tensors, a).map(Value::Float).map_err(ce)
}

/// The indices one axis keeps, following the ONNX clamping rules for `starts`, `ends` and `steps`.
fn slice_indices(len: usize, start: i64, end: i64, step: i64) -> R<Vec<usize>> {
    if step == 0 {
        return Err("step 0".into());
    }
    let mut out = Vec::new();
    if len == 0 {
        return Ok(out);
    }
    let l = len as i64;
    let norm = |v: i64| if v < 0 { v.saturating_add(l) } else { v };
    let (s, e) = (norm(start), norm(end));
    let (mut i, e) = if step > 0 {
        (s.clamp(0, l), e.clamp(0, l))
    } else {
        (s.clamp(0, l - 1), e.clamp(-1, l - 1))
    };
    while (step > 0 && i < e) || (step < 0 && i > e) {
        out.push(i as usize);
        match i.checked_add(step) {
            Some(next) => i = next,
            None => break,
        }
    }
    Ok(out)
}

fn slice(n: &NodeProto, inputs: &[Option<Value>], cx: Context) -> R<Value> {
    let data = input(inputs, 0)?;
    let dims = dims_of(data);
    let (starts, ends, axes, steps) = if cx.opset >= 10 {
        let get = |i| {
            opt_input(inputs, i)
                .map(ints)
                .transpose()
                .map(|o| o.map(|v| v.data))
        };
        (
            get(1)?.ok_or("starts missing")?,
            get(2)?.ok_or("ends missing")?,
            get(3)?,
            get(4)?,
        )
    } else {
        (
            attr_ints(n, "starts").ok_or("starts missing")?,
            attr_ints(n, "ends").ok_or("ends missing")?,
            attr_ints(n, "axes"),
            None,
        )
    };
    let axes = axes.unwrap_or_else(|| (0..starts.len() as i64).collect());
    let steps = steps.unwrap_or_else(|| vec![1; starts.len()]);
    if ends.len() != starts.len() || axes.len() != starts.len() || steps.len() != starts.len() {
        return Err("starts, ends, axes and steps differ in length".into());
    }
    let axes: Vec<usize> = axes
        .iter()
        .map(|&a| axis(a, dims.len()))
        .collect::<R<_>>()?;
    let mut unique = axes.clone();
    unique.sort_unstable();
    unique.dedup();
    if unique.len() != axes.len() {
        return Err(format!("repeated axes {axes:?}"));
    }
    let mut v = data.clone();
    for i in 0..starts.len() {
        let a = axes[i];
        let keep = slice_indices(dims[a], starts[i], ends[i], steps[i])?;
        v = match v {
            Value::Int(t) => {
                if dims.len() != 1 {
                    return Err("integer slicing is supported for vectors only".into());
                }
                let data: Vec<i64> = keep.iter().map(|&k| t.data[k]).collect();
                Value::Int(Ints::vector(data))
            }
            Value::Float(t) => {
                let contiguous = keep.windows(2).all(|w| w[1] == w[0] + 1);
                let out = if contiguous && !keep.is_empty() {
                    t.narrow(a, keep[0], keep.len())
                } else {
                    let idx: Vec<u32> = keep.iter().map(|&k| k as u32).collect();
                    Tensor::new(idx, &Device::Cpu).and_then(|idx| t.index_select(&idx, a))
                };
                Value::Float(out.map_err(ce)?)
            }
        };
    }
    Ok(v)
}

fn gather(n: &NodeProto, data: &Value, idx: &Ints) -> R<Value> {
    let dims = dims_of(data);
    let a = axis(attr_i(n, "axis", 0), dims.len())?;
    let len = dims[a] as i64;
    let positions: Vec<usize> = idx
        .data
        .iter()
        .map(|&i| {
            let j = if i < 0 { i + len } else { i };
            if (0..len).contains(&j) {
                Ok(j as usize)
            } else {
                Err(format!("index {i} out of range for axis of length {len}"))
            }
        })
        .collect::<R<_>>()?;
    let mut out_dims = dims[..a].to_vec();
    out_dims.extend(&idx.dims);
    out_dims.extend(&dims[a + 1..]);
    budget(&out_dims)?;
    match data {
        Value::Int(t) => {
            if dims.len() != 1 {
                return Err("integer gathering is supported for vectors only".into());
            }
            Ints::new(out_dims, positions.iter().map(|&p| t.data[p]).collect()).map(Value::Int)
        }
        Value::Float(t) => {
            let ids: Vec<u32> = positions.iter().map(|&p| p as u32).collect();
            Tensor::new(ids, &Device::Cpu)
                .and_then(|ids| t.index_select(&ids, a))
                .and_then(|g| g.reshape(out_dims))
                .map(Value::Float)
                .map_err(ce)
        }
    }
}

fn cast(n: &NodeProto, v: &Value, cx: Context) -> R<Value> {
    let to = DataType::try_from(attr_i(n, "to", 0) as i32).map_err(|_| "unknown target type")?;
    match to {
        DataType::Float | DataType::Double | DataType::Float16 | DataType::Bfloat16 => {
            float(v, cx).map(Value::Float)
        }
        DataType::Int64
        | DataType::Int32
        | DataType::Int16
        | DataType::Int8
        | DataType::Uint8
        | DataType::Uint16
        | DataType::Uint32
        | DataType::Uint64 => ints(v).map(Value::Int),
        DataType::Bool => {
            let mut i = ints(v)?;
            i.data.iter_mut().for_each(|x| *x = (*x != 0) as i64);
            Ok(Value::Int(i))
        }
        other => Err(format!("cast to {other:?} is not supported")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slice_indices_follow_the_clamping_rules() {
        assert_eq!(slice_indices(5, 1, 3, 1).unwrap(), vec![1, 2]);
        assert_eq!(slice_indices(5, -2, i64::MAX, 1).unwrap(), vec![3, 4]);
        assert_eq!(slice_indices(5, 0, 5, 2).unwrap(), vec![0, 2, 4]);
        assert_eq!(
            slice_indices(5, -1, i64::MIN, -1).unwrap(),
            vec![4, 3, 2, 1, 0]
        );
        assert_eq!(slice_indices(5, 4, 1, -2).unwrap(), vec![4, 2]);
        assert!(slice_indices(5, 0, 5, 0).is_err());
    }

    #[test]
    fn reshape_target_copies_and_infers() {
        assert_eq!(
            reshape_target(&[2, 3, 4], &[0, -1], false).unwrap(),
            vec![2, 12]
        );
        assert_eq!(reshape_target(&[2, 3, 4], &[-1], false).unwrap(), vec![24]);
        assert!(reshape_target(&[2, 3, 4], &[5, -1], false).is_err());
        assert!(reshape_target(&[2, 3], &[-1, -1], false).is_err());
    }

    #[test]
    fn integer_arithmetic_refuses_overflow_and_division_by_zero() {
        let a = Ints::vector(vec![i64::MAX]);
        assert!(int_binary("Add", &a, &Ints::vector(vec![1])).is_err());
        assert!(int_binary("Div", &Ints::vector(vec![4]), &Ints::vector(vec![0])).is_err());
        assert_eq!(
            int_binary("Mul", &Ints::vector(vec![2, 3]), &Ints::vector(vec![4]))
                .unwrap()
                .data,
            vec![8, 12]
        );
    }
}
