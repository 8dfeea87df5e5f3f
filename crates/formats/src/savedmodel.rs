//! TensorFlow `SavedModel` protobufs (`saved_model.pb`) and their Keras companion (`keras_metadata.pb`), read
//! as data.
//!
//! [`proto`] declares the subset of `saved_model.proto`, `meta_graph.proto`, `graph.proto`, `node_def.proto`,
//! `function.proto` and `attr_value.proto` the scanner needs (op names, inputs, string attributes, constant
//! strings, asset file names), with the field numbers of the TensorFlow sources; every other field is
//! skipped by prost (including `tensor_content`, so embedded constants cost no second copy). Decoding is in
//! memory, bounded by [`Limits::max_protobuf`] and by an allocation pre-pass like ONNX's.
//!
//! [`nodes`] flattens every node of every meta graph and of every function in the function library, so a
//! rule cannot miss an op hidden in a function body.

use std::collections::BTreeMap;

use prost::bytes::Bytes;
use prost::Message;

use crate::onnx::{count_items, max_items, read_all, Schema, Wire};
use crate::{Blob, Error, Limits, Result};

const FORMAT: &str = "savedmodel";

/// The subset of the TensorFlow protos the scanner decodes. Field numbers follow the TensorFlow sources.
pub mod proto {
    use std::collections::BTreeMap;

    /// `saved_model.pb`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct SavedModel {
        /// Schema version (1).
        #[prost(int64, tag = "1")]
        pub saved_model_schema_version: i64,
        /// One meta graph per tag set.
        #[prost(message, repeated, tag = "2")]
        pub meta_graphs: Vec<MetaGraphDef>,
    }

    /// A graph with its metadata.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct MetaGraphDef {
        /// Tags, versions.
        #[prost(message, optional, tag = "1")]
        pub meta_info_def: Option<MetaInfoDef>,
        /// The graph.
        #[prost(message, optional, tag = "2")]
        pub graph_def: Option<GraphDef>,
        /// Asset files (vocabularies) the graph reads, relative to `assets/`.
        #[prost(message, repeated, tag = "6")]
        pub asset_file_def: Vec<AssetFileDef>,
    }

    /// Meta graph metadata.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct MetaInfoDef {
        /// User version string.
        #[prost(string, tag = "1")]
        pub meta_graph_version: String,
        /// Tags (`serve`, `train`).
        #[prost(string, repeated, tag = "4")]
        pub tags: Vec<String>,
        /// TensorFlow version that wrote it.
        #[prost(string, tag = "5")]
        pub tensorflow_version: String,
        /// TensorFlow git version.
        #[prost(string, tag = "6")]
        pub tensorflow_git_version: String,
    }

    /// An asset file.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct AssetFileDef {
        /// File name, relative to the `assets/` directory.
        #[prost(string, tag = "2")]
        pub filename: String,
    }

    /// A graph: nodes and a function library.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct GraphDef {
        /// Nodes.
        #[prost(message, repeated, tag = "1")]
        pub node: Vec<NodeDef>,
        /// Functions.
        #[prost(message, optional, tag = "2")]
        pub library: Option<FunctionDefLibrary>,
    }

    /// One op in a graph or function body.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct NodeDef {
        /// Node name.
        #[prost(string, tag = "1")]
        pub name: String,
        /// Op name.
        #[prost(string, tag = "2")]
        pub op: String,
        /// Inputs (`node:index`, `^control`, `node:output:index` in functions).
        #[prost(string, repeated, tag = "3")]
        pub input: Vec<String>,
        /// Device placement.
        #[prost(string, tag = "4")]
        pub device: String,
        /// Attributes.
        #[prost(btree_map = "string, message", tag = "5")]
        pub attr: BTreeMap<String, AttrValue>,
    }

    /// An attribute value (only the variants the scanner reads are declared).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct AttrValue {
        /// The value.
        #[prost(oneof = "attr_value::Value", tags = "1, 2, 3, 5, 8, 9, 10")]
        pub value: Option<attr_value::Value>,
    }

    /// Variants of [`AttrValue`].
    pub mod attr_value {
        /// The declared variants.
        #[derive(Clone, PartialEq, prost::Oneof)]
        pub enum Value {
            /// A list.
            #[prost(message, tag = "1")]
            List(super::ListValue),
            /// Bytes.
            #[prost(bytes = "vec", tag = "2")]
            S(Vec<u8>),
            /// Integer.
            #[prost(int64, tag = "3")]
            I(i64),
            /// Boolean.
            #[prost(bool, tag = "5")]
            B(bool),
            /// A tensor (constants).
            #[prost(message, tag = "8")]
            Tensor(super::TensorProto),
            /// A placeholder name in functions.
            #[prost(string, tag = "9")]
            Placeholder(String),
            /// A function reference.
            #[prost(message, tag = "10")]
            Func(super::NameAttrList),
        }
    }

    /// A list attribute (only string elements are declared).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ListValue {
        /// Strings.
        #[prost(bytes = "vec", repeated, tag = "2")]
        pub s: Vec<Vec<u8>>,
    }

    /// A function reference (name only).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct NameAttrList {
        /// Function name.
        #[prost(string, tag = "1")]
        pub name: String,
    }

    /// A tensor constant (only the string values are declared).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TensorProto {
        /// Element type.
        #[prost(int32, tag = "1")]
        pub dtype: i32,
        /// String elements.
        #[prost(bytes = "vec", repeated, tag = "8")]
        pub string_val: Vec<Vec<u8>>,
    }

    /// The function library of a graph.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct FunctionDefLibrary {
        /// Functions.
        #[prost(message, repeated, tag = "1")]
        pub function: Vec<FunctionDef>,
    }

    /// A function (`tf.function` traces land here).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct FunctionDef {
        /// Signature (its name).
        #[prost(message, optional, tag = "1")]
        pub signature: Option<OpDef>,
        /// Body.
        #[prost(message, repeated, tag = "3")]
        pub node_def: Vec<NodeDef>,
    }

    /// An op signature (name only).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct OpDef {
        /// Name.
        #[prost(string, tag = "1")]
        pub name: String,
    }

    /// `keras_metadata.pb`: one JSON description per Keras object of a SavedModel.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct SavedMetadata {
        /// Objects.
        #[prost(message, repeated, tag = "1")]
        pub nodes: Vec<SavedObject>,
    }

    /// One Keras object of `keras_metadata.pb`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct SavedObject {
        /// Node id in the object graph.
        #[prost(int32, tag = "2")]
        pub node_id: i32,
        /// Path such as `root.layer-1`.
        #[prost(string, tag = "3")]
        pub node_path: String,
        /// Kind such as `_tf_keras_layer`.
        #[prost(string, tag = "4")]
        pub identifier: String,
        /// JSON metadata (class name and config).
        #[prost(string, tag = "5")]
        pub metadata: String,
    }
}

use proto::{attr_value::Value, NodeDef, SavedMetadata, SavedModel};

/// A decoded TensorFlow protobuf.
#[derive(Debug, Clone, PartialEq)]
pub enum TfProto {
    /// `saved_model.pb`.
    SavedModel(SavedModel),
    /// `keras_metadata.pb`.
    KerasMetadata(SavedMetadata),
}

const S_MODEL: usize = 0;
const S_META: usize = 1;
const S_GRAPH: usize = 2;
const S_NODE: usize = 3;
const S_ATTR_ENTRY: usize = 4;
const S_ATTR: usize = 5;
const S_LIST: usize = 6;
const S_TENSOR: usize = 7;
const S_LIBRARY: usize = 8;
const S_FUNCTION: usize = 9;
const S_LEAF: usize = 10;
const S_METADATA: usize = 11;

/// The allocation schema of [`proto`].
static TF_SCHEMA: [Schema; 12] = [
    Schema {
        messages: &[(2, S_META)],
        strings: &[],
    },
    Schema {
        messages: &[(1, S_LEAF), (2, S_GRAPH), (6, S_LEAF)],
        strings: &[],
    },
    Schema {
        messages: &[(1, S_NODE), (2, S_LIBRARY)],
        strings: &[],
    },
    Schema {
        messages: &[(5, S_ATTR_ENTRY)],
        strings: &[3],
    },
    Schema {
        messages: &[(2, S_ATTR)],
        strings: &[],
    },
    Schema {
        messages: &[(1, S_LIST), (8, S_TENSOR), (10, S_LEAF)],
        strings: &[],
    },
    Schema {
        messages: &[],
        strings: &[2],
    },
    Schema {
        messages: &[],
        strings: &[8],
    },
    Schema {
        messages: &[(1, S_FUNCTION)],
        strings: &[],
    },
    Schema {
        messages: &[(1, S_LEAF), (3, S_NODE)],
        strings: &[],
    },
    Schema {
        messages: &[],
        strings: &[],
    },
    Schema {
        messages: &[(1, S_LEAF)],
        strings: &[],
    },
];

/// Decode a TensorFlow protobuf held in memory: `saved_model.pb` (first field `saved_model_schema_version`
/// or `meta_graphs`) or `keras_metadata.pb` (first field `nodes`).
pub fn decode(bytes: Bytes, limits: &Limits) -> Result<TfProto> {
    if bytes.len() as u64 > limits.max_protobuf {
        return Err(Error::limit(
            FORMAT,
            "protobuf size",
            bytes.len() as u64,
            limits.max_protobuf,
        ));
    }
    let first = Wire::new(&bytes).tag();
    let max = max_items(limits);
    match first {
        Some((1, 2)) => {
            count_items(FORMAT, &bytes, &TF_SCHEMA, S_METADATA, max)?;
            SavedMetadata::decode(bytes)
                .map(TfProto::KerasMetadata)
                .map_err(|e| Error::malformed(FORMAT, 0, format!("SavedMetadata: {e}")))
        }
        Some((1, 0)) | Some((2, 2)) => {
            count_items(FORMAT, &bytes, &TF_SCHEMA, S_MODEL, max)?;
            SavedModel::decode(bytes)
                .map(TfProto::SavedModel)
                .map_err(|e| Error::malformed(FORMAT, 0, format!("SavedModel: {e}")))
        }
        _ => Err(Error::malformed(
            FORMAT,
            0,
            "not a SavedModel or Keras metadata protobuf",
        )),
    }
}

/// Read and decode a TensorFlow protobuf from a blob of `len` bytes.
pub fn read(blob: &mut dyn Blob, len: u64, limits: &Limits) -> Result<TfProto> {
    let bytes = read_all(FORMAT, blob, len, limits.max_protobuf)?;
    decode(bytes, limits)
}

/// A node and where it lives.
#[derive(Debug, Clone, Copy)]
pub struct NodeRef<'a> {
    /// Index of the meta graph.
    pub meta_graph: usize,
    /// `None` for the graph itself, else the function's name.
    pub function: Option<&'a str>,
    /// The node.
    pub node: &'a NodeDef,
}

impl NodeRef<'_> {
    /// A readable scope: `meta_graph[0]` or `meta_graph[0] function __inference_call_42`.
    pub fn scope(&self) -> String {
        match self.function {
            None => format!("meta_graph[{}]", self.meta_graph),
            Some(f) => format!("meta_graph[{}] function {f}", self.meta_graph),
        }
    }
}

/// Every node of every meta graph and of every function in their libraries.
pub fn nodes(model: &SavedModel) -> Vec<NodeRef<'_>> {
    let mut out = Vec::new();
    for (i, meta) in model.meta_graphs.iter().enumerate() {
        let Some(graph) = &meta.graph_def else {
            continue;
        };
        out.extend(graph.node.iter().map(|node| NodeRef {
            meta_graph: i,
            function: None,
            node,
        }));
        for function in graph.library.iter().flat_map(|l| &l.function) {
            let name = function.signature.as_ref().map_or("", |s| s.name.as_str());
            out.extend(function.node_def.iter().map(|node| NodeRef {
                meta_graph: i,
                function: Some(name),
                node,
            }));
        }
    }
    out
}

/// Names of the functions in every meta graph's library (a node whose op is one of them calls it).
pub fn function_names(model: &SavedModel) -> std::collections::BTreeSet<&str> {
    model
        .meta_graphs
        .iter()
        .filter_map(|meta| meta.graph_def.as_ref())
        .flat_map(|graph| graph.library.iter().flat_map(|l| &l.function))
        .filter_map(|f| f.signature.as_ref().map(|s| s.name.as_str()))
        .collect()
}

/// The string values of an attribute (`s`, or the strings of a list), lossily decoded.
pub fn attr_strings(node: &NodeDef, key: &str) -> Vec<String> {
    match node.attr.get(key).and_then(|a| a.value.as_ref()) {
        Some(Value::S(s)) => vec![String::from_utf8_lossy(s).into_owned()],
        Some(Value::List(list)) => list
            .s
            .iter()
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect(),
        Some(Value::Placeholder(p)) => vec![p.clone()],
        _ => Vec::new(),
    }
}

/// The string elements of a `Const` node's `value` tensor.
pub fn const_strings(node: &NodeDef) -> Vec<String> {
    match node.attr.get("value").and_then(|a| a.value.as_ref()) {
        Some(Value::Tensor(t)) => t
            .string_val
            .iter()
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect(),
        _ => Vec::new(),
    }
}

/// The producing node name of an input reference (`^ctrl`, `name:0`, `name:output:0` → `name`).
pub fn input_node(input: &str) -> &str {
    let input = input.strip_prefix('^').unwrap_or(input);
    input.split(':').next().unwrap_or(input)
}

/// String constants per scope: `(meta graph, function)` → const node name → its strings.
pub type ConstTable<'a> = BTreeMap<(usize, Option<&'a str>), BTreeMap<&'a str, Vec<String>>>;

/// Rounds of constant folding through `StringJoin`/`Identity` (a chain longer than this stays unresolved).
const FOLD_ROUNDS: usize = 8;
/// Longest folded string kept (a chain of self-joins doubles each time): paths are short.
const FOLD_MAX_LEN: usize = 4096;

/// Gather the string constants of every scope, so op inputs can be resolved to literal paths. Paths computed
/// from constants (`StringJoin` of constant parts, `Identity` of a constant) are folded too, so a
/// `SaveV2` whose prefix is `StringJoin("/etc/", "cron.d/x")` is seen as writing `/etc/cron.d/x`.
pub fn const_table<'a>(nodes: &[NodeRef<'a>]) -> ConstTable<'a> {
    let mut table: ConstTable<'a> = BTreeMap::new();
    for n in nodes {
        if n.node.op != "Const" {
            continue;
        }
        let strings = const_strings(n.node);
        if !strings.is_empty() {
            table
                .entry((n.meta_graph, n.function))
                .or_default()
                .insert(n.node.name.as_str(), strings);
        }
    }
    for _ in 0..FOLD_ROUNDS {
        let mut changed = false;
        for n in nodes {
            let scope = table.entry((n.meta_graph, n.function)).or_default();
            if scope.contains_key(n.node.name.as_str()) {
                continue;
            }
            if let Some(folded) = fold(n.node, scope) {
                scope.insert(n.node.name.as_str(), folded);
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    table
}

/// Keep at most [`FOLD_MAX_LEN`] bytes of a folded string (cut on a character boundary).
fn truncate(mut text: String) -> String {
    if text.len() > FOLD_MAX_LEN {
        let mut cut = FOLD_MAX_LEN;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
    text
}

/// The strings a `StringJoin` or `Identity` node yields when every data input is a known constant.
fn fold(node: &NodeDef, scope: &BTreeMap<&str, Vec<String>>) -> Option<Vec<String>> {
    let inputs: Vec<&Vec<String>> = node
        .input
        .iter()
        .filter(|i| !i.starts_with('^'))
        .map(|i| scope.get(input_node(i)))
        .collect::<Option<_>>()?;
    match node.op.as_str() {
        "Identity" | "PlaceholderWithDefault" => inputs.first().map(|v| (*v).clone()),
        "ReduceJoin" => {
            let separator = attr_strings(node, "separator").concat();
            let joined = inputs.first()?.join(&separator);
            Some(vec![truncate(joined)])
        }
        "StringJoin" if !inputs.is_empty() => {
            let separator = attr_strings(node, "separator").concat();
            let width = inputs.iter().map(|v| v.len()).max().unwrap_or(0).min(16);
            let joined = (0..width)
                .map(|i| {
                    inputs
                        .iter()
                        .map(|v| v.get(i).or_else(|| v.first()).map_or("", String::as_str))
                        .collect::<Vec<_>>()
                        .join(&separator)
                })
                .map(truncate)
                .collect();
            Some(joined)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aegis_test_support::savedmodel as gen;

    /// A chain of self-joins doubles a string each step; folding keeps it bounded (40 steps would be 1 TiB).
    #[test]
    fn folding_self_joins_stays_bounded() {
        let node = |name: &str, op: &str, inputs: Vec<String>| NodeDef {
            name: name.to_owned(),
            op: op.to_owned(),
            input: inputs,
            ..NodeDef::default()
        };
        let mut defs = vec![NodeDef {
            attr: [(
                "value".to_owned(),
                proto::AttrValue {
                    value: Some(Value::Tensor(proto::TensorProto {
                        string_val: vec![b"ab".to_vec()],
                        ..Default::default()
                    })),
                },
            )]
            .into_iter()
            .collect(),
            ..node("n0", "Const", vec![])
        }];
        for i in 1..=40 {
            let prev = format!("n{}", i - 1);
            defs.push(node(
                &format!("n{i}"),
                "StringJoin",
                vec![prev.clone(), prev],
            ));
        }
        let nodes: Vec<NodeRef<'_>> = defs
            .iter()
            .map(|node| NodeRef {
                meta_graph: 0,
                function: None,
                node,
            })
            .collect();
        let extra = [
            node("default", "PlaceholderWithDefault", vec!["n1".into()]),
            node("reduced", "ReduceJoin", vec!["n1".into()]),
        ];
        let nodes: Vec<NodeRef<'_>> = nodes
            .into_iter()
            .chain(extra.iter().map(|node| NodeRef {
                meta_graph: 0,
                function: None,
                node,
            }))
            .collect();
        let table = const_table(&nodes);
        let scope = &table[&(0, None)];
        assert_eq!(scope["n3"], vec!["abababababababab".to_owned()]);
        assert_eq!(scope["default"], vec!["abab".to_owned()]);
        assert_eq!(scope["reduced"], vec!["abab".to_owned()]);
        assert!(scope
            .values()
            .all(|v| v.iter().all(|s| s.len() <= FOLD_MAX_LEN)));
    }

    fn decode_bytes(bytes: Vec<u8>) -> TfProto {
        decode(Bytes::from(bytes), &Limits::default()).unwrap()
    }

    #[test]
    fn decodes_an_honest_savedmodel_with_library() {
        let TfProto::SavedModel(model) = decode_bytes(gen::honest()) else {
            panic!("kind")
        };
        let all = nodes(&model);
        let ops: Vec<&str> = all.iter().map(|n| n.node.op.as_str()).collect();
        assert!(
            ops.contains(&"VarHandleOp") && ops.contains(&"RestoreV2"),
            "{ops:?}"
        );
        assert!(all.iter().any(|n| n.function.is_some()));
        assert_eq!(
            model.meta_graphs[0].meta_info_def.as_ref().unwrap().tags,
            vec!["serve"]
        );
    }

    #[test]
    fn finds_ops_hidden_in_function_library() {
        let TfProto::SavedModel(model) = decode_bytes(gen::with_ops(&[], &["PyFunc"])) else {
            panic!()
        };
        let hit = nodes(&model)
            .into_iter()
            .find(|n| n.node.op == "PyFunc")
            .unwrap();
        assert!(hit.function.is_some());
        assert_eq!(attr_strings(hit.node, "token"), vec!["pyfunc_0"]);
    }

    #[test]
    fn resolves_constant_inputs() {
        let TfProto::SavedModel(model) = decode_bytes(gen::with_ops(&["ReadFile"], &[])) else {
            panic!()
        };
        let all = nodes(&model);
        let table = const_table(&all);
        let read = all.iter().find(|n| n.node.op == "ReadFile").unwrap();
        let src = input_node(&read.node.input[0]);
        let strings = &table[&(read.meta_graph, read.function)][src];
        assert_eq!(strings, &vec!["/etc/passwd".to_owned()]);
        assert_eq!(input_node("^foo"), "foo");
        assert_eq!(input_node("bar:output:0"), "bar");
    }

    #[test]
    fn decodes_keras_metadata() {
        let TfProto::KerasMetadata(meta) = decode_bytes(gen::keras_metadata(true)) else {
            panic!()
        };
        assert!(meta.nodes.iter().any(|n| n.metadata.contains("Lambda")));
    }

    #[test]
    fn garbage_is_an_error() {
        let limits = Limits::default();
        assert!(decode(Bytes::from_static(b"hello"), &limits).is_err());
        let bytes = gen::honest();
        for cut in (0..bytes.len()).step_by(7) {
            let _ = decode(Bytes::copy_from_slice(&bytes[..cut]), &limits);
        }
    }
}
