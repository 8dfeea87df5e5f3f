//! ONNX `ModelProto` files, read as data, and the protobuf sniffing shared with TensorFlow `SavedModel`.
//!
//! The message types in [`proto`] declare the subset of `onnx.proto` that the scanner and the model backends
//! (`aegis-ml`) need, with the field numbers of the specification; prost skips every field not declared. This
//! is the project's one ONNX decoder: `scan` inventories what it returns, `ml` evaluates it, and the gateway
//! loads models through `ml`. Typed tensor payloads (`float_data`, `int64_data`, ...) are decoded too; real
//! exporters keep large weights in `raw_data`, a zero-copy slice of the input, so they cost no second copy.
//! Decoding happens in
//! memory, bounded by [`Limits::max_protobuf`] for the input and by a schema-aware pre-pass
//! ([`count_items`]) for the number of messages and strings prost would allocate; prost's own recursion limit
//! bounds nesting. [`inventory`] then walks every graph, including subgraphs in `If`/`Loop`/`Scan`
//! attributes, training graphs and model-local function bodies, and reports what the model references: the
//! operator domains its nodes use, the opsets it imports and every tensor stored outside the file.
//!
//! Assumes canonical protobuf encoding (fields in any order are accepted by the decoder; only the sniffing
//! in [`sniff_protobuf`] expects the field order every real serializer writes).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, SeekFrom};

use prost::bytes::Bytes;
use prost::Message;

use crate::{Blob, Error, Limits, Result};

const FORMAT: &str = "onnx";

/// How deep graphs may nest (subgraph in an attribute of a node of a subgraph ...) before the walk stops.
/// prost's recursion limit (100 messages) already keeps real nesting below this.
pub const MAX_GRAPH_DEPTH: usize = 48;

/// Operator domains kept per [`DomainUse`] as examples.
const MAX_OPS_KEPT: usize = 16;

/// The subset of `onnx.proto` the scanner decodes. Field numbers follow the ONNX specification.
pub mod proto {
    use prost::bytes::Bytes;

    /// A whole model file.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ModelProto {
        /// IR version of the file format.
        #[prost(int64, tag = "1")]
        pub ir_version: i64,
        /// Operator sets the graph binds against.
        #[prost(message, repeated, tag = "8")]
        pub opset_import: Vec<OperatorSetIdProto>,
        /// Tool that wrote the model.
        #[prost(string, tag = "2")]
        pub producer_name: String,
        /// Version of that tool.
        #[prost(string, tag = "3")]
        pub producer_version: String,
        /// Reverse-DNS domain of the model.
        #[prost(string, tag = "4")]
        pub domain: String,
        /// Version of the model.
        #[prost(int64, tag = "5")]
        pub model_version: i64,
        /// Free text.
        #[prost(string, tag = "6")]
        pub doc_string: String,
        /// The main graph.
        #[prost(message, optional, tag = "7")]
        pub graph: Option<GraphProto>,
        /// Free key/value metadata.
        #[prost(message, repeated, tag = "14")]
        pub metadata_props: Vec<StringStringEntryProto>,
        /// Training graphs.
        #[prost(message, repeated, tag = "20")]
        pub training_info: Vec<TrainingInfoProto>,
        /// Model-local functions.
        #[prost(message, repeated, tag = "25")]
        pub functions: Vec<FunctionProto>,
    }

    /// A key/value pair (external data descriptors, metadata).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct StringStringEntryProto {
        /// Key.
        #[prost(string, tag = "1")]
        pub key: String,
        /// Value.
        #[prost(string, tag = "2")]
        pub value: String,
    }

    /// An operator set import: a domain and its version.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct OperatorSetIdProto {
        /// Domain (empty means `ai.onnx`).
        #[prost(string, tag = "1")]
        pub domain: String,
        /// Version.
        #[prost(int64, tag = "2")]
        pub version: i64,
    }

    /// A computation graph.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct GraphProto {
        /// Nodes in topological order.
        #[prost(message, repeated, tag = "1")]
        pub node: Vec<NodeProto>,
        /// Graph name.
        #[prost(string, tag = "2")]
        pub name: String,
        /// Constant tensors.
        #[prost(message, repeated, tag = "5")]
        pub initializer: Vec<TensorProto>,
        /// Sparse constant tensors.
        #[prost(message, repeated, tag = "15")]
        pub sparse_initializer: Vec<SparseTensorProto>,
        /// Free text.
        #[prost(string, tag = "10")]
        pub doc_string: String,
        /// Inputs of the graph (in older files, initializers are listed here too).
        #[prost(message, repeated, tag = "11")]
        pub input: Vec<ValueInfoProto>,
        /// Outputs of the graph.
        #[prost(message, repeated, tag = "12")]
        pub output: Vec<ValueInfoProto>,
        /// Types of intermediate values.
        #[prost(message, repeated, tag = "13")]
        pub value_info: Vec<ValueInfoProto>,
    }

    /// A named, typed value (graph input, output or intermediate).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ValueInfoProto {
        /// Name.
        #[prost(string, tag = "1")]
        pub name: String,
        /// Type.
        #[prost(message, optional, tag = "2")]
        pub r#type: Option<TypeProto>,
        /// Free text.
        #[prost(string, tag = "3")]
        pub doc_string: String,
    }

    /// The type of a value. Only tensor types are decoded; sequences and maps (scikit-learn's `ZipMap`
    /// output) leave [`TypeProto::value`] empty.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TypeProto {
        /// Tensor type.
        #[prost(oneof = "type_proto::Value", tags = "1")]
        pub value: Option<type_proto::Value>,
        /// Denotation.
        #[prost(string, tag = "6")]
        pub denotation: String,
    }

    /// Nested types of [`TypeProto`].
    pub mod type_proto {
        /// A tensor type: element type and shape.
        #[derive(Clone, PartialEq, prost::Message)]
        pub struct Tensor {
            /// Element type ([`super::tensor_proto::DataType`]).
            #[prost(int32, tag = "1")]
            pub elem_type: i32,
            /// Shape, when known.
            #[prost(message, optional, tag = "2")]
            pub shape: Option<super::TensorShapeProto>,
        }

        /// The kinds of type decoded.
        #[derive(Clone, PartialEq, prost::Oneof)]
        pub enum Value {
            /// A tensor.
            #[prost(message, tag = "1")]
            TensorType(Tensor),
        }
    }

    /// A tensor shape: one entry per dimension.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TensorShapeProto {
        /// Dimensions.
        #[prost(message, repeated, tag = "1")]
        pub dim: Vec<tensor_shape_proto::Dimension>,
    }

    /// Nested types of [`TensorShapeProto`].
    pub mod tensor_shape_proto {
        /// One dimension: a fixed size, a symbolic name, or unknown.
        #[derive(Clone, PartialEq, prost::Message)]
        pub struct Dimension {
            /// Size or name.
            #[prost(oneof = "dimension::Value", tags = "1, 2")]
            pub value: Option<dimension::Value>,
            /// Denotation.
            #[prost(string, tag = "3")]
            pub denotation: String,
        }

        /// The value of a [`Dimension`].
        pub mod dimension {
            /// A fixed size or a symbolic name.
            #[derive(Clone, PartialEq, prost::Oneof)]
            pub enum Value {
                /// Fixed size.
                #[prost(int64, tag = "1")]
                DimValue(i64),
                /// Symbolic name (`batch`, `N`).
                #[prost(string, tag = "2")]
                DimParam(String),
            }
        }
    }

    /// One operator invocation.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct NodeProto {
        /// Input value names.
        #[prost(string, repeated, tag = "1")]
        pub input: Vec<String>,
        /// Output value names.
        #[prost(string, repeated, tag = "2")]
        pub output: Vec<String>,
        /// Node name.
        #[prost(string, tag = "3")]
        pub name: String,
        /// Operator name.
        #[prost(string, tag = "4")]
        pub op_type: String,
        /// Operator domain (empty means `ai.onnx`).
        #[prost(string, tag = "7")]
        pub domain: String,
        /// Attributes.
        #[prost(message, repeated, tag = "5")]
        pub attribute: Vec<AttributeProto>,
        /// Free text.
        #[prost(string, tag = "6")]
        pub doc_string: String,
    }

    impl NodeProto {
        /// The attribute named `name`, if the node has one.
        pub fn attr(&self, name: &str) -> Option<&AttributeProto> {
            self.attribute.iter().find(|a| a.name == name)
        }
    }

    /// A named attribute of a node.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct AttributeProto {
        /// Name.
        #[prost(string, tag = "1")]
        pub name: String,
        /// Attribute type discriminator.
        #[prost(int32, tag = "20")]
        pub r#type: i32,
        /// Float value.
        #[prost(float, tag = "2")]
        pub f: f32,
        /// Integer value.
        #[prost(int64, tag = "3")]
        pub i: i64,
        /// Bytes value.
        #[prost(bytes = "vec", tag = "4")]
        pub s: Vec<u8>,
        /// Tensor value.
        #[prost(message, optional, tag = "5")]
        pub t: Option<TensorProto>,
        /// Subgraph value (`If` branches, `Loop`/`Scan` bodies).
        #[prost(message, optional, tag = "6")]
        pub g: Option<GraphProto>,
        /// Sparse tensor value.
        #[prost(message, optional, tag = "22")]
        pub sparse_tensor: Option<SparseTensorProto>,
        /// Float list.
        #[prost(float, repeated, packed = "false", tag = "7")]
        pub floats: Vec<f32>,
        /// Integer list.
        #[prost(int64, repeated, packed = "false", tag = "8")]
        pub ints: Vec<i64>,
        /// Bytes list.
        #[prost(bytes = "vec", repeated, tag = "9")]
        pub strings: Vec<Vec<u8>>,
        /// Tensor list.
        #[prost(message, repeated, tag = "10")]
        pub tensors: Vec<TensorProto>,
        /// Subgraph list.
        #[prost(message, repeated, tag = "11")]
        pub graphs: Vec<GraphProto>,
        /// Sparse tensor list.
        #[prost(message, repeated, tag = "23")]
        pub sparse_tensors: Vec<SparseTensorProto>,
    }

    /// A tensor: its payload is either `raw_data` (little-endian) or one of the typed lists.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TensorProto {
        /// Float payload (`FLOAT`, `COMPLEX64`).
        #[prost(float, repeated, tag = "4")]
        pub float_data: Vec<f32>,
        /// 32-bit-or-smaller integer payload (`INT32`, `INT16`, `INT8`, `UINT16`, `UINT8`, `BOOL`, `FLOAT16`).
        #[prost(int32, repeated, tag = "5")]
        pub int32_data: Vec<i32>,
        /// String payload.
        #[prost(bytes = "vec", repeated, tag = "6")]
        pub string_data: Vec<Vec<u8>>,
        /// `INT64` payload.
        #[prost(int64, repeated, tag = "7")]
        pub int64_data: Vec<i64>,
        /// `DOUBLE` payload.
        #[prost(double, repeated, tag = "10")]
        pub double_data: Vec<f64>,
        /// `UINT32` and `UINT64` payload.
        #[prost(uint64, repeated, tag = "11")]
        pub uint64_data: Vec<u64>,
        /// Shape.
        #[prost(int64, repeated, tag = "1")]
        pub dims: Vec<i64>,
        /// Element type.
        #[prost(int32, tag = "2")]
        pub data_type: i32,
        /// Name.
        #[prost(string, tag = "8")]
        pub name: String,
        /// Free text.
        #[prost(string, tag = "12")]
        pub doc_string: String,
        /// Raw little-endian payload (a zero-copy slice of the decoded buffer).
        #[prost(bytes = "bytes", tag = "9")]
        pub raw_data: Bytes,
        /// Where the payload lives when `data_location` is external: `location`, `offset`, `length`, ...
        #[prost(message, repeated, tag = "13")]
        pub external_data: Vec<StringStringEntryProto>,
        /// 0 = in this file, 1 = external.
        #[prost(int32, tag = "14")]
        pub data_location: i32,
    }

    /// Nested types of [`TensorProto`].
    pub mod tensor_proto {
        /// Element types (`TensorProto.DataType`).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
        #[repr(i32)]
        #[allow(missing_docs)]
        pub enum DataType {
            Undefined = 0,
            Float = 1,
            Uint8 = 2,
            Int8 = 3,
            Uint16 = 4,
            Int16 = 5,
            Int32 = 6,
            Int64 = 7,
            String = 8,
            Bool = 9,
            Float16 = 10,
            Double = 11,
            Uint32 = 12,
            Uint64 = 13,
            Complex64 = 14,
            Complex128 = 15,
            Bfloat16 = 16,
        }
    }

    /// Nested types of [`AttributeProto`].
    pub mod attribute_proto {
        /// Attribute types (`AttributeProto.AttributeType`).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
        #[repr(i32)]
        #[allow(missing_docs)]
        pub enum AttributeType {
            Undefined = 0,
            Float = 1,
            Int = 2,
            String = 3,
            Tensor = 4,
            Graph = 5,
            Floats = 6,
            Ints = 7,
            Strings = 8,
            Tensors = 9,
            Graphs = 10,
            SparseTensor = 11,
            SparseTensors = 12,
            TypeProto = 13,
            TypeProtos = 14,
        }
    }

    /// A sparse tensor: values and indices are tensors of their own.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct SparseTensorProto {
        /// Non-zero values.
        #[prost(message, optional, tag = "1")]
        pub values: Option<TensorProto>,
        /// Their indices.
        #[prost(message, optional, tag = "2")]
        pub indices: Option<TensorProto>,
        /// Dense shape.
        #[prost(int64, repeated, tag = "3")]
        pub dims: Vec<i64>,
    }

    /// Training graphs attached to a model.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TrainingInfoProto {
        /// Initialisation graph.
        #[prost(message, optional, tag = "1")]
        pub initialization: Option<GraphProto>,
        /// One training step.
        #[prost(message, optional, tag = "2")]
        pub algorithm: Option<GraphProto>,
    }

    /// A model-local function: nodes in `domain` with `op_type == name` call it.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct FunctionProto {
        /// Function name (the op_type callers use).
        #[prost(string, tag = "1")]
        pub name: String,
        /// Body.
        #[prost(message, repeated, tag = "7")]
        pub node: Vec<NodeProto>,
        /// Opsets the body binds against.
        #[prost(message, repeated, tag = "9")]
        pub opset_import: Vec<OperatorSetIdProto>,
        /// Domain callers use.
        #[prost(string, tag = "10")]
        pub domain: String,
        /// Overload name.
        #[prost(string, tag = "13")]
        pub overload: String,
    }
}

use proto::{GraphProto, ModelProto, NodeProto, TensorProto};

// ---------------------------------------------------------------------------------------------------------
// Sniffing
// ---------------------------------------------------------------------------------------------------------

/// Which protobuf model format a blob looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtobufKind {
    /// ONNX `ModelProto`.
    Onnx,
    /// TensorFlow `SavedModel` (`saved_model.pb`) or its Keras companion `keras_metadata.pb`.
    SavedModel,
}

/// Guess whether `head` (the first bytes of a blob that matched no magic number) starts an ONNX or a
/// TensorFlow protobuf. Conservative: the first fields must decode as protobuf wire format with the field
/// numbers, wire types and plausible values of the message; text and random bytes give `None`.
pub fn sniff_protobuf(head: &[u8]) -> Option<ProtobufKind> {
    let mut w = Wire::new(head);
    let (field, wire_type) = w.tag()?;
    match (field, wire_type) {
        (1, 0) => {
            let version = w.varint()?;
            if (1..=3).contains(&version) && looks_like_saved_model_rest(w.clone()) {
                return Some(ProtobufKind::SavedModel);
            }
            if (1..=20).contains(&version) && looks_like_onnx_rest(w) {
                return Some(ProtobufKind::Onnx);
            }
            None
        }
        (1, 2) => looks_like_keras_metadata(w).then_some(ProtobufKind::SavedModel),
        _ => None,
    }
}

/// After `saved_model_schema_version`: `meta_graphs` (field 2) whose first field is `meta_info_def` or
/// `graph_def`, itself starting with a field of `MetaInfoDef`/`GraphDef`.
fn looks_like_saved_model_rest(mut w: Wire<'_>) -> bool {
    let Some((2, 2)) = w.tag() else { return false };
    let Some(len) = w.varint() else { return false };
    let mut inner = w.sub(len);
    match inner.tag() {
        Some((1 | 2, 2)) => {}
        _ => return false,
    }
    let Some(inner_len) = inner.varint() else {
        return inner.at_end();
    };
    if inner_len >= len {
        return false;
    }
    match inner.tag() {
        None => inner.at_end(),
        Some((f, wt)) => (1..=8).contains(&f) && (wt == 2 || (f == 7 && wt == 0)),
    }
}

/// After an ONNX `ir_version`: at least one more `ModelProto` field, each with its wire type and a plausible
/// payload, until the head ends.
fn looks_like_onnx_rest(mut w: Wire<'_>) -> bool {
    let mut fields = 0u32;
    while !w.at_end() {
        let Some((field, wire_type)) = w.tag() else {
            break;
        };
        let ok = match (field, wire_type) {
            (5, 0) => w.varint().is_some() || w.at_end(),
            (2 | 3 | 4 | 6, 2) => w.text_field(),
            (7, 2) => w.nested_starts_with(&[1, 2, 5, 10, 11, 12, 13, 14, 15], &[]),
            (8, 2) => w.nested_starts_with(&[1], &[2]),
            (14 | 20 | 25, 2) => {
                w.nested_starts_with(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14], &[2])
            }
            _ => false,
        };
        if !ok {
            return false;
        }
        fields += 1;
    }
    fields >= 1
}

/// `keras_metadata.pb`: `nodes` (field 1) holding a `SavedObject` whose `identifier` (field 4) names a Keras
/// object (`_tf_keras_...`).
fn looks_like_keras_metadata(mut w: Wire<'_>) -> bool {
    let Some(len) = w.varint() else { return false };
    let mut inner = w.sub(len);
    for _ in 0..8 {
        let Some((field, wire_type)) = inner.tag() else {
            return false;
        };
        match (field, wire_type) {
            (2, 0) => {
                if inner.varint().is_none() {
                    return false;
                }
            }
            (4, 2) => {
                let Some(n) = inner.varint() else {
                    return false;
                };
                return inner.peek(n).starts_with(b"_tf_keras");
            }
            (3 | 5 | 6, 2) => {
                let Some(n) = inner.varint() else {
                    return false;
                };
                if !inner.skip(n) {
                    return false;
                }
            }
            _ => return false,
        }
    }
    false
}

/// A minimal protobuf wire-format reader over a possibly truncated prefix.
#[derive(Debug, Clone)]
pub(crate) struct Wire<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Wire<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Wire { buf, pos: 0 }
    }

    pub(crate) fn at_end(&self) -> bool {
        self.pos >= self.buf.len()
    }

    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    /// A varint; `None` when truncated or longer than 10 bytes.
    pub(crate) fn varint(&mut self) -> Option<u64> {
        let mut value = 0u64;
        for i in 0..10 {
            let byte = *self.buf.get(self.pos)?;
            self.pos += 1;
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Some(value);
            }
        }
        None
    }

    /// A field key: (field number, wire type). Field 0 and wire types 3/4 (groups), 6, 7 are rejected.
    pub(crate) fn tag(&mut self) -> Option<(u64, u8)> {
        let key = self.varint()?;
        let field = key >> 3;
        let wire_type = (key & 7) as u8;
        if field == 0 || field > 0x1fff_ffff || !matches!(wire_type, 0 | 1 | 2 | 5) {
            return None;
        }
        Some((field, wire_type))
    }

    /// Skip `n` bytes; false if fewer remain.
    pub(crate) fn skip(&mut self, n: u64) -> bool {
        match usize::try_from(n)
            .ok()
            .and_then(|n| self.pos.checked_add(n))
        {
            Some(end) if end <= self.buf.len() => {
                self.pos = end;
                true
            }
            _ => false,
        }
    }

    /// Skip the value of a field of `wire_type`; false when truncated.
    pub(crate) fn skip_value(&mut self, wire_type: u8) -> bool {
        match wire_type {
            0 => self.varint().is_some(),
            1 => self.skip(8),
            5 => self.skip(4),
            2 => match self.varint() {
                Some(n) => self.skip(n),
                None => false,
            },
            _ => false,
        }
    }

    /// Up to `n` bytes from the current position, without moving.
    fn peek(&self, n: u64) -> &'a [u8] {
        let rest = self.buf.get(self.pos..).unwrap_or_default();
        let n = usize::try_from(n).unwrap_or(usize::MAX).min(rest.len());
        rest.get(..n).unwrap_or_default()
    }

    /// A reader over the next `n` bytes (truncated to what is available); moves past them.
    fn sub(&mut self, n: u64) -> Wire<'a> {
        let inner = Wire::new(self.peek(n));
        self.pos = self.pos.saturating_add(inner.buf.len());
        inner
    }

    /// A length-delimited text field: valid UTF-8 (possibly cut by the end of the head) without control
    /// characters other than whitespace.
    fn text_field(&mut self) -> bool {
        let Some(n) = self.varint() else {
            return self.at_end();
        };
        let bytes = self.sub(n).buf;
        let text = match std::str::from_utf8(bytes) {
            Ok(text) => text,
            Err(err) if err.error_len().is_none() => {
                std::str::from_utf8(bytes.get(..err.valid_up_to()).unwrap_or_default())
                    .unwrap_or_default()
            }
            Err(_) => return false,
        };
        text.chars()
            .all(|c| !c.is_control() || matches!(c, '\n' | '\r' | '\t'))
    }

    /// A length-delimited message whose first field is one of `len_fields` (wire type 2) or
    /// `varint_fields` (wire type 0); an empty or cut-off payload is accepted.
    fn nested_starts_with(&mut self, len_fields: &[u64], varint_fields: &[u64]) -> bool {
        let Some(n) = self.varint() else {
            return self.at_end();
        };
        let mut inner = self.sub(n);
        if inner.at_end() {
            return true;
        }
        match inner.tag() {
            Some((f, 2)) => len_fields.contains(&f),
            Some((f, 0)) => varint_fields.contains(&f),
            Some(_) => false,
            None => inner.buf.len() < 10,
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// Allocation pre-pass
// ---------------------------------------------------------------------------------------------------------

/// A message schema for [`count_items`]: `(field, child schema index)` for message-typed fields, and the
/// repeated string/bytes fields (each element allocates).
#[derive(Debug)]
pub(crate) struct Schema {
    pub(crate) messages: &'static [(u64, usize)],
    pub(crate) strings: &'static [u64],
}

/// Count the messages and repeated strings prost would allocate when decoding `buf` as `table[root]`, and
/// fail with a limit error once the count passes `max_items`. Malformed wire data stops the count (the
/// decoder reports it). Nesting deeper than prost's recursion limit is not followed.
pub(crate) fn count_items(
    format: &'static str,
    buf: &[u8],
    table: &[Schema],
    root: usize,
    max_items: u64,
) -> Result<u64> {
    let mut count = 0u64;
    // (reader end, schema) of each open message; the reader position is shared.
    let mut stack: Vec<(usize, usize)> = vec![(buf.len(), root)];
    let mut w = Wire::new(buf);
    while let Some(&(end, schema)) = stack.last() {
        if w.position() >= end {
            stack.pop();
            continue;
        }
        let Some((field, wire_type)) = w.tag() else {
            break;
        };
        let Some(spec) = table.get(schema) else { break };
        if wire_type == 2 {
            let Some(len) = w.varint() else { break };
            let child = spec
                .messages
                .iter()
                .find(|(f, _)| *f == field)
                .map(|(_, c)| *c);
            if child.is_some() || spec.strings.contains(&field) {
                count += 1;
                if count > max_items {
                    return Err(Error::limit(
                        format,
                        "protobuf messages and strings",
                        count,
                        max_items,
                    ));
                }
            }
            match child {
                Some(child) if stack.len() < 100 => {
                    let Some(child_end) = usize::try_from(len)
                        .ok()
                        .and_then(|n| w.position().checked_add(n))
                    else {
                        break;
                    };
                    if child_end > end {
                        break;
                    }
                    stack.push((child_end, child));
                }
                _ => {
                    if !w.skip(len) {
                        break;
                    }
                }
            }
        } else if !w.skip_value(wire_type) {
            break;
        }
    }
    Ok(count)
}

const M_MODEL: usize = 0;
const M_GRAPH: usize = 1;
const M_NODE: usize = 2;
const M_ATTR: usize = 3;
const M_TENSOR: usize = 4;
const M_SPARSE: usize = 5;
const M_TRAINING: usize = 6;
const M_FUNCTION: usize = 7;
const M_LEAF: usize = 8;
const M_VALUE: usize = 9;
const M_TYPE: usize = 10;
const M_TYPE_TENSOR: usize = 11;
const M_SHAPE: usize = 12;

/// The allocation schema of [`proto`].
static ONNX_SCHEMA: [Schema; 13] = [
    // ModelProto
    Schema {
        messages: &[
            (8, M_LEAF),
            (7, M_GRAPH),
            (14, M_LEAF),
            (20, M_TRAINING),
            (25, M_FUNCTION),
        ],
        strings: &[],
    },
    // GraphProto
    Schema {
        messages: &[
            (1, M_NODE),
            (5, M_TENSOR),
            (15, M_SPARSE),
            (11, M_VALUE),
            (12, M_VALUE),
            (13, M_VALUE),
        ],
        strings: &[],
    },
    // NodeProto
    Schema {
        messages: &[(5, M_ATTR)],
        strings: &[1, 2],
    },
    // AttributeProto
    Schema {
        messages: &[
            (5, M_TENSOR),
            (6, M_GRAPH),
            (22, M_SPARSE),
            (10, M_TENSOR),
            (11, M_GRAPH),
            (23, M_SPARSE),
        ],
        strings: &[9],
    },
    // TensorProto
    Schema {
        messages: &[(13, M_LEAF)],
        strings: &[6],
    },
    // SparseTensorProto
    Schema {
        messages: &[(1, M_TENSOR), (2, M_TENSOR)],
        strings: &[],
    },
    // TrainingInfoProto
    Schema {
        messages: &[(1, M_GRAPH), (2, M_GRAPH)],
        strings: &[],
    },
    // FunctionProto
    Schema {
        messages: &[(7, M_NODE), (9, M_LEAF)],
        strings: &[],
    },
    // leaf messages (no allocating children)
    Schema {
        messages: &[],
        strings: &[],
    },
    // ValueInfoProto
    Schema {
        messages: &[(2, M_TYPE)],
        strings: &[],
    },
    // TypeProto (only the tensor type is decoded)
    Schema {
        messages: &[(1, M_TYPE_TENSOR)],
        strings: &[],
    },
    // TypeProto.Tensor
    Schema {
        messages: &[(2, M_SHAPE)],
        strings: &[],
    },
    // TensorShapeProto: each dimension is a message
    Schema {
        messages: &[(1, M_LEAF)],
        strings: &[],
    },
];

/// Most messages and repeated strings decoded from one protobuf: each costs up to a few hundred bytes of
/// memory however small its encoding, so their number is bounded, not only the input size.
pub fn max_items(limits: &Limits) -> u64 {
    limits.max_entries.saturating_mul(4)
}

// ---------------------------------------------------------------------------------------------------------
// Reading
// ---------------------------------------------------------------------------------------------------------

/// Read a whole blob of `len` bytes into memory, refusing more than `limit` bytes.
pub fn read_all(format: &'static str, blob: &mut dyn Blob, len: u64, limit: u64) -> Result<Bytes> {
    if len > limit {
        return Err(Error::limit(format, "protobuf size", len, limit));
    }
    blob.seek(SeekFrom::Start(0))
        .map_err(|e| Error::io(format, 0, e))?;
    let cap =
        usize::try_from(len).map_err(|_| Error::limit(format, "protobuf size", len, limit))?;
    let mut buf = Vec::with_capacity(cap);
    blob.take(len)
        .read_to_end(&mut buf)
        .map_err(|e| Error::io(format, 0, e))?;
    Ok(Bytes::from(buf))
}

/// Decode an ONNX model held in memory.
pub fn decode_model(bytes: Bytes, limits: &Limits) -> Result<ModelProto> {
    if bytes.len() as u64 > limits.max_protobuf {
        return Err(Error::limit(
            FORMAT,
            "protobuf size",
            bytes.len() as u64,
            limits.max_protobuf,
        ));
    }
    count_items(FORMAT, &bytes, &ONNX_SCHEMA, M_MODEL, max_items(limits))?;
    ModelProto::decode(bytes).map_err(|e| Error::malformed(FORMAT, 0, format!("ModelProto: {e}")))
}

/// Read and decode an ONNX model from a blob of `len` bytes.
pub fn read_model(blob: &mut dyn Blob, len: u64, limits: &Limits) -> Result<ModelProto> {
    let bytes = read_all(FORMAT, blob, len, limits.max_protobuf)?;
    decode_model(bytes, limits)
}

// ---------------------------------------------------------------------------------------------------------
// Inventory
// ---------------------------------------------------------------------------------------------------------

/// The node of a graph something was found in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeAt {
    /// Path of the graph (`main`, `main/If_0.then_branch`, `function pkg.Foo`).
    pub graph: String,
    /// Node name.
    pub node: String,
    /// Operator.
    pub op_type: String,
}

/// How nodes use one operator domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainUse {
    /// Number of nodes.
    pub nodes: u64,
    /// Operator names seen (at most a few).
    pub ops: BTreeSet<String>,
    /// The first node using it.
    pub first: NodeAt,
}

/// An opset import (`""` is normalised to `ai.onnx`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpsetImport {
    /// Domain.
    pub domain: String,
    /// Version.
    pub version: i64,
    /// `model` or `function NAME`.
    pub scope: String,
}

/// A tensor whose payload lives outside the file (or that carries external-data descriptors).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalTensor {
    /// Graph path it was found in.
    pub graph: String,
    /// Tensor name.
    pub tensor: String,
    /// `data_location` (1 = external).
    pub data_location: i32,
    /// The `external_data` key/value entries, in file order.
    pub entries: Vec<(String, String)>,
    /// Bytes of inline `raw_data` it also carries.
    pub raw_data_len: u64,
}

/// What an ONNX model references, gathered over all of its graphs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inventory {
    /// IR version.
    pub ir_version: i64,
    /// Producer name.
    pub producer_name: String,
    /// Producer version.
    pub producer_version: String,
    /// Opset imports of the model and of its functions.
    pub opset_imports: Vec<OpsetImport>,
    /// Domains declared by model-local functions.
    pub function_domains: BTreeSet<String>,
    /// Node counts per operator domain (`""` normalised to `ai.onnx`).
    pub node_domains: BTreeMap<String, DomainUse>,
    /// Tensors with external data.
    pub external: Vec<ExternalTensor>,
    /// Graphs walked (main, subgraphs, training graphs, function bodies).
    pub graphs: u64,
    /// Nodes walked.
    pub nodes: u64,
    /// Tensors walked (initialisers and attribute tensors).
    pub tensors: u64,
    /// Graph paths whose subgraphs were not walked because of [`MAX_GRAPH_DEPTH`].
    pub depth_limited: Vec<String>,
    /// Whether `external` was cut at `max_entries`.
    pub external_truncated: bool,
}

/// Walk every graph of `model` and gather its [`Inventory`].
pub fn inventory(model: &ModelProto, limits: &Limits) -> Inventory {
    let mut inv = Inventory {
        ir_version: model.ir_version,
        producer_name: model.producer_name.clone(),
        producer_version: model.producer_version.clone(),
        ..Inventory::default()
    };
    let mut walker = Walker {
        inv: &mut inv,
        max_external: usize::try_from(limits.max_entries).unwrap_or(usize::MAX),
    };
    for opset in &model.opset_import {
        walker.opset(&opset.domain, opset.version, "model");
    }
    if let Some(graph) = &model.graph {
        walker.graph(graph, "main", 0);
    }
    for (i, info) in model.training_info.iter().enumerate() {
        if let Some(g) = &info.initialization {
            walker.graph(g, &format!("training_info[{i}].initialization"), 0);
        }
        if let Some(g) = &info.algorithm {
            walker.graph(g, &format!("training_info[{i}].algorithm"), 0);
        }
    }
    for function in &model.functions {
        let scope = format!(
            "function {}.{}",
            normalise_domain(&function.domain),
            function.name
        );
        walker
            .inv
            .function_domains
            .insert(normalise_domain(&function.domain).to_owned());
        for opset in &function.opset_import {
            walker.opset(&opset.domain, opset.version, &scope);
        }
        walker.inv.graphs += 1;
        for node in &function.node {
            walker.node(node, &scope, 0);
        }
    }
    inv
}

/// `""` is the default ONNX domain.
pub fn normalise_domain(domain: &str) -> &str {
    if domain.is_empty() {
        "ai.onnx"
    } else {
        domain
    }
}

struct Walker<'a> {
    inv: &'a mut Inventory,
    max_external: usize,
}

impl Walker<'_> {
    fn opset(&mut self, domain: &str, version: i64, scope: &str) {
        self.inv.opset_imports.push(OpsetImport {
            domain: normalise_domain(domain).to_owned(),
            version,
            scope: scope.to_owned(),
        });
    }

    fn graph(&mut self, graph: &GraphProto, path: &str, depth: usize) {
        self.inv.graphs += 1;
        for tensor in &graph.initializer {
            self.tensor(tensor, path);
        }
        for sparse in &graph.sparse_initializer {
            self.sparse(sparse, path);
        }
        for node in &graph.node {
            self.node(node, path, depth);
        }
    }

    fn sparse(&mut self, sparse: &proto::SparseTensorProto, path: &str) {
        for tensor in [&sparse.values, &sparse.indices].into_iter().flatten() {
            self.tensor(tensor, path);
        }
    }

    fn node(&mut self, node: &NodeProto, path: &str, depth: usize) {
        self.inv.nodes += 1;
        let domain = normalise_domain(&node.domain).to_owned();
        let entry = self
            .inv
            .node_domains
            .entry(domain)
            .or_insert_with(|| DomainUse {
                nodes: 0,
                ops: BTreeSet::new(),
                first: NodeAt {
                    graph: path.to_owned(),
                    node: node.name.clone(),
                    op_type: node.op_type.clone(),
                },
            });
        entry.nodes += 1;
        if entry.ops.len() < MAX_OPS_KEPT {
            entry.ops.insert(node.op_type.clone());
        }
        for attr in &node.attribute {
            for tensor in attr.t.iter().chain(&attr.tensors) {
                self.tensor(tensor, path);
            }
            for sparse in attr.sparse_tensor.iter().chain(&attr.sparse_tensors) {
                self.sparse(sparse, path);
            }
            let subgraphs: Vec<&GraphProto> = attr.g.iter().chain(&attr.graphs).collect();
            if subgraphs.is_empty() {
                continue;
            }
            let label = if node.name.is_empty() {
                &node.op_type
            } else {
                &node.name
            };
            let label = label.trim_start_matches('/');
            let sub_path = format!("{path}/{label}.{}", attr.name);
            if depth + 1 >= MAX_GRAPH_DEPTH {
                self.inv.depth_limited.push(sub_path);
                continue;
            }
            for (i, g) in subgraphs.into_iter().enumerate() {
                let p = if i == 0 {
                    sub_path.clone()
                } else {
                    format!("{sub_path}[{i}]")
                };
                self.graph(g, &p, depth + 1);
            }
        }
    }

    fn tensor(&mut self, tensor: &TensorProto, path: &str) {
        self.inv.tensors += 1;
        if tensor.external_data.is_empty() && tensor.data_location != 1 {
            return;
        }
        if self.inv.external.len() >= self.max_external {
            self.inv.external_truncated = true;
            return;
        }
        self.inv.external.push(ExternalTensor {
            graph: path.to_owned(),
            tensor: tensor.name.clone(),
            data_location: tensor.data_location,
            entries: tensor
                .external_data
                .iter()
                .map(|e| (e.key.clone(), e.value.clone()))
                .collect(),
            raw_data_len: tensor.raw_data.len() as u64,
        });
    }
}

// ---------------------------------------------------------------------------------------------------------
// Paths
// ---------------------------------------------------------------------------------------------------------

/// Why a file reference would resolve outside the directory of the model that holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathEscape {
    /// Empty.
    Empty,
    /// Starts at the file-system root (`/etc/passwd`, `\\server\share`).
    Absolute,
    /// A Windows drive (`C:\...`, `C:foo`).
    WindowsDrive,
    /// A URL or other scheme (`file://`, `http://`, `hdfs://`).
    Url,
    /// A `..` component.
    ParentDir,
    /// A home-directory reference (`~/...`).
    Home,
    /// A NUL byte (truncates the path in C loaders).
    Nul,
}

impl PathEscape {
    /// A short description.
    pub fn describe(self) -> &'static str {
        match self {
            PathEscape::Empty => "empty path",
            PathEscape::Absolute => "absolute path",
            PathEscape::WindowsDrive => "Windows drive path",
            PathEscape::Url => "URL or scheme",
            PathEscape::ParentDir => "parent-directory (`..`) component",
            PathEscape::Home => "home-directory path",
            PathEscape::Nul => "NUL byte in path",
        }
    }
}

/// Whether a path meant to be relative to a model's directory could point elsewhere.
pub fn path_escape(path: &str) -> Option<PathEscape> {
    if path.is_empty() {
        return Some(PathEscape::Empty);
    }
    if path.contains('\0') {
        return Some(PathEscape::Nul);
    }
    if path.starts_with('/') || path.starts_with('\\') {
        return Some(PathEscape::Absolute);
    }
    let bytes = path.as_bytes();
    if bytes.len() >= 2 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':' {
        return Some(PathEscape::WindowsDrive);
    }
    if let Some((scheme, rest)) = path.split_once(':') {
        let scheme_like = !scheme.is_empty()
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
        if scheme_like && (rest.starts_with("//") || scheme.eq_ignore_ascii_case("file")) {
            return Some(PathEscape::Url);
        }
    }
    if path.starts_with('~') {
        return Some(PathEscape::Home);
    }
    if path
        .split(['/', '\\'])
        .any(|c| c.trim_end_matches([' ', '.']).is_empty() && c.starts_with(".."))
    {
        return Some(PathEscape::ParentDir);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use aegis_test_support::onnx as gen;

    fn decode(bytes: Vec<u8>) -> ModelProto {
        decode_model(Bytes::from(bytes), &Limits::default()).unwrap()
    }

    #[test]
    fn sniffs_onnx_and_tensorflow_protobufs() {
        assert_eq!(sniff_protobuf(&gen::honest_mlp()), Some(ProtobufKind::Onnx));
        let sm = aegis_test_support::savedmodel::honest();
        assert_eq!(sniff_protobuf(&sm), Some(ProtobufKind::SavedModel));
        let meta = aegis_test_support::savedmodel::keras_metadata(false);
        assert_eq!(sniff_protobuf(&meta), Some(ProtobufKind::SavedModel));
    }

    #[test]
    fn sniffing_rejects_text_and_noise() {
        assert_eq!(sniff_protobuf(b"hello world, this is text"), None);
        assert_eq!(sniff_protobuf(b"{\"class_name\": 1}"), None);
        assert_eq!(sniff_protobuf(b""), None);
        assert_eq!(sniff_protobuf(&[0x08]), None);
        assert_eq!(sniff_protobuf(&[0x08, 0x07]), None);
        assert_eq!(sniff_protobuf(&[0x08, 0x07, 0xff, 0xff]), None);
        assert_eq!(sniff_protobuf(&[0x08, 0x50, 0x12, 0x01, b'a']), None);
        // A simple deterministic generator: no 4 KiB of noise should look like a model.
        let mut state = 0x1234_5678_u64;
        let mut hits = 0;
        for _ in 0..2000 {
            let mut buf = vec![0u8; 64];
            for b in &mut buf {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                *b = (state >> 33) as u8;
            }
            buf[0] = 0x08;
            if sniff_protobuf(&buf).is_some() {
                hits += 1;
            }
        }
        assert!(hits < 10, "{hits} random buffers sniffed as protobuf");
    }

    #[test]
    fn sniffing_accepts_a_truncated_head() {
        let model = gen::honest_mlp();
        for cut in [4, 10, 20, model.len() / 2] {
            assert_eq!(
                sniff_protobuf(&model[..cut.min(model.len())]),
                Some(ProtobufKind::Onnx),
                "{cut}"
            );
        }
    }

    #[test]
    fn honest_model_inventory() {
        let inv = inventory(&decode(gen::honest_mlp()), &Limits::default());
        assert_eq!(inv.producer_name, "pytorch");
        assert!(inv.node_domains.contains_key("ai.onnx"));
        assert_eq!(inv.node_domains.len(), 1);
        assert!(inv.external.is_empty());
        assert!(inv.tensors >= 2);
    }

    #[test]
    fn finds_external_data_in_nested_subgraphs() {
        let inv = inventory(
            &decode(gen::if_subgraph_external("../../etc/passwd")),
            &Limits::default(),
        );
        assert_eq!(inv.external.len(), 1);
        let ext = &inv.external[0];
        assert!(ext.graph.contains("then_branch"), "{}", ext.graph);
        assert!(ext
            .entries
            .iter()
            .any(|(k, v)| k == "location" && v == "../../etc/passwd"));
    }

    #[test]
    fn records_custom_domains_and_function_domains() {
        let inv = inventory(
            &decode(gen::custom_domain_op("com.evil.ops")),
            &Limits::default(),
        );
        assert!(inv.node_domains.contains_key("com.evil.ops"));
        let inv = inventory(&decode(gen::local_function(false)), &Limits::default());
        assert!(inv.function_domains.contains("pkg.onnxscript.torch_lib"));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let limits = Limits::default();
        assert!(
            decode_model(Bytes::from_static(&[0x3a, 0xff, 0xff, 0xff, 0x0f]), &limits).is_err()
        );
        let model = gen::honest_mlp();
        for cut in 0..model.len() {
            let _ = decode_model(Bytes::copy_from_slice(&model[..cut]), &limits);
        }
    }

    #[test]
    fn allocation_count_is_bounded() {
        // 10 000 empty nodes in a graph: 2 bytes each, far more structs.
        let mut graph = Vec::new();
        for _ in 0..10_000 {
            graph.extend_from_slice(&[0x0a, 0x00]);
        }
        let mut model = vec![0x08, 0x08, 0x3a];
        let mut n = graph.len();
        while n >= 0x80 {
            model.push((n as u8) | 0x80);
            n >>= 7;
        }
        model.push(n as u8);
        model.extend_from_slice(&graph);
        let limits = Limits {
            max_entries: 1000,
            ..Limits::default()
        };
        let err = decode_model(Bytes::from(model.clone()), &limits).unwrap_err();
        assert!(err.is_limit(), "{err}");
        assert!(decode_model(Bytes::from(model), &Limits::default()).is_ok());
    }

    #[test]
    fn size_limit_is_checked_before_reading() {
        let limits = Limits {
            max_protobuf: 4,
            ..Limits::default()
        };
        let bytes = gen::honest_mlp();
        let len = bytes.len() as u64;
        let err = read_model(&mut std::io::Cursor::new(bytes), len, &limits).unwrap_err();
        assert!(err.is_limit());
    }

    #[test]
    fn classifies_escaping_paths() {
        assert_eq!(path_escape("/etc/passwd"), Some(PathEscape::Absolute));
        assert_eq!(path_escape("\\\\server\\share"), Some(PathEscape::Absolute));
        assert_eq!(
            path_escape("C:\\Windows\\win.ini"),
            Some(PathEscape::WindowsDrive)
        );
        assert_eq!(path_escape("../../etc/passwd"), Some(PathEscape::ParentDir));
        assert_eq!(path_escape("weights/../../x"), Some(PathEscape::ParentDir));
        assert_eq!(path_escape("a\\..\\b"), Some(PathEscape::ParentDir));
        assert_eq!(path_escape("file:///etc/passwd"), Some(PathEscape::Url));
        assert_eq!(path_escape("https://evil.example/x"), Some(PathEscape::Url));
        assert_eq!(path_escape("~/.ssh/id_rsa"), Some(PathEscape::Home));
        assert_eq!(path_escape(""), Some(PathEscape::Empty));
        assert_eq!(path_escape("model.onnx.data"), None);
        assert_eq!(path_escape("weights/layer..0.bin"), None);
        assert_eq!(path_escape("file:/etc/passwd"), Some(PathEscape::Url));
        assert_eq!(path_escape("model:weights.bin"), None);
        assert_eq!(path_escape("..weights"), None);
    }
}
