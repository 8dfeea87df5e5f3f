//! An ONNX file read and vetted before any engine sees it: the size bound, the one bounded decoder (of
//! `aegis-formats`, the one the scanner uses), and the structural checks both evaluators rely on (tensor
//! sizes match their dimensions, attribute types are known, names refer to earlier values).
//!
//! A leaf of the crate: the evaluator (`onnx`), the forward engine (`tract`), the answer selection
//! (`select`) and loading (`load`) all start here, so none of them needs another to read a file.

use std::path::Path;

use aegis_formats::onnx::proto::{
    tensor_proto::DataType, GraphProto, ModelProto, TensorProto, ValueInfoProto,
};

use crate::Error;

/// Largest ONNX file we read (protobuf caps messages at 2 GiB anyway).
pub const MAX_MODEL_BYTES: u64 = 2 << 30;

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
