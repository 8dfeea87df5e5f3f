//! Rules over TensorFlow SavedModels (`saved_model.pb`): ops that run Python (`PyFunc` family), ops that read
//! or write files (`ReadFile`, `WriteFile`, `MatchingFiles`, `ImmutableConst`, summary writers, `PrintV2` to a
//! file, debug ops with file URLs), constant paths that leave the model directory, and asset files named
//! outside `assets/`. Nodes of function libraries are checked like graph nodes. `keras_metadata.pb` (the same
//! sniffed kind) hands each object's JSON metadata to the Keras config rules.
//!
//! The save/restore machinery every SavedModel carries (`SaveV2`, `RestoreV2`, `MergeV2Checkpoints`,
//! `ShardedFilename`, `StringJoin` over the checkpoint prefix) is not flagged: its paths come from the
//! `saver_filename` placeholder at load time. It is flagged only when a constant path that escapes the
//! model's directory feeds it.

use std::collections::BTreeSet;

use aegis_core::{RuleDoc, Severity};
use aegis_formats::onnx::path_escape;
use aegis_formats::savedmodel::{self, proto::SavedMetadata, NodeRef, TfProto};
use aegis_formats::Blob;
use serde_json::json;

/// Ops that call back into the Python interpreter.
const PYTHON_OPS: &[&str] = &["PyFunc", "PyFuncStateless", "EagerPyFunc"];

/// Ops that read, list or write files (or reconfigure file systems) given a path at run time: file ops,
/// dataset sources and sinks, readers.
const FILE_OPS: &[&str] = &[
    "ReadFile",
    "WriteFile",
    "MatchingFiles",
    "ImmutableConst",
    "FileSystemSetConfiguration",
    "CreateSummaryFileWriter",
    "CreateSummaryDbWriter",
    "DatasetToTFRecord",
    "ExperimentalDatasetToTFRecord",
    "CSVDataset",
    "CSVDatasetV2",
    "ExperimentalCSVDataset",
    "TextLineDataset",
    "TFRecordDataset",
    "TFRecordDatasetV2",
    "FixedLengthRecordDataset",
    "FixedLengthRecordDatasetV2",
    "SqlDataset",
    "ExperimentalSqlDataset",
    "LMDBDataset",
    "ExperimentalLMDBDataset",
    "LoadDataset",
    "SaveDataset",
    "SaveDatasetV2",
    "SnapshotDataset",
    "SnapshotDatasetV2",
    "ExperimentalSnapshotDataset",
    "DistributedSave",
];

/// Ops that open network connections or serve: tf.data service, RPC.
const NETWORK_OPS: &[&str] = &[
    "DataServiceDataset",
    "DataServiceDatasetV2",
    "DataServiceDatasetV3",
    "DataServiceDatasetV4",
    "RegisterDataset",
    "RegisterDatasetV2",
    "RpcServer",
    "RpcServerStart",
    "RpcServerRegister",
    "RpcClient",
    "RpcCall",
    "Rpc",
    "TryRpc",
];

/// Whether an op reads files by its kind: the `*Reader`/`*ReaderV2` queue readers (`WholeFileReader`,
/// `TFRecordReader`, `LMDBReader`, …), not the `ReaderRead*` ops that pull from them.
fn reads_files_by_name(op: &str) -> bool {
    op.trim_end_matches("V2").ends_with("Reader") && !op.starts_with("ReaderRead")
}

/// Summary ops that write events through a writer resource.
const SUMMARY_OPS: &[&str] = &[
    "WriteSummary",
    "WriteScalarSummary",
    "WriteHistogramSummary",
    "WriteImageSummary",
    "WriteAudioSummary",
    "WriteGraphSummary",
    "WriteRawProtoSummary",
    "ImportEvent",
];

/// Ops whose inputs are file paths in normal use; checked for constant paths that escape the model.
const PATH_INPUT_OPS: &[&str] = &[
    "ReadFile",
    "WriteFile",
    "MatchingFiles",
    "Save",
    "SaveV2",
    "SaveSlices",
    "Restore",
    "RestoreV2",
    "RestoreSlice",
    "MergeV2Checkpoints",
    "ShardedFilename",
    "InitializeTableFromTextFile",
    "InitializeTableFromTextFileV2",
    "TextLineDataset",
    "TFRecordDataset",
    "FixedLengthRecordDataset",
    "CreateSummaryFileWriter",
];

/// Ops that run Python code.
pub(crate) const PYTHON_OP: RuleDoc = RuleDoc {
    id: "AEG-SCAN-700",
    name: "savedmodel-python-function-op",
    severity: Severity::Critical,
    summary: "SavedModel graph calls Python (PyFunc / EagerPyFunc)",
    why: "`tf.py_function` and `tf.numpy_function` record ops that call a Python function registered in the \
          process by token. Whoever controls that registration (or a loader that re-creates it from the model's \
          Python objects) runs arbitrary Python when the graph executes.",
    fix: "Do not serve this model. Rebuild it without `tf.py_function`/`tf.numpy_function`, using TensorFlow \
          ops only.",
    atlas: &["AML.T0010.003", "AML.T0011.000"],
    cwe: &[94, 502],
};

/// Ops that touch the file system.
pub(crate) const FILE_OP: RuleDoc = RuleDoc {
    id: "AEG-SCAN-701",
    name: "savedmodel-file-access-op",
    severity: Severity::High,
    summary: "SavedModel graph reads or writes files or reaches the network",
    why: "Ops such as `ReadFile`, `WriteFile`, `MatchingFiles` and `ImmutableConst` give the graph access to the \
          serving host's file system: it can read credentials into outputs, list directories or drop files \
          whenever the model runs.",
    fix: "Check why the model needs file access. Serve models that only compute on their inputs; move file IO \
          into reviewed preprocessing code.",
    atlas: &["AML.T0010.003", "AML.T0011.000"],
    cwe: &[73, 552],
};

/// Constant paths or asset names that leave the model directory.
pub(crate) const PATH_ESCAPE: RuleDoc = RuleDoc {
    id: "AEG-SCAN-702",
    name: "savedmodel-path-outside-model",
    severity: Severity::High,
    summary: "SavedModel refers to a file outside its directory",
    why: "A constant path that is absolute, has `..` components or is a URL, feeding a checkpoint, table or \
          file op, or an asset file named outside `assets/`, makes loading or serving read or overwrite files \
          of the host rather than of the model.",
    fix: "Do not load the model; a legitimate SavedModel refers to its own `variables/` and `assets/` through \
          the loader-provided prefix.",
    atlas: &["AML.T0010.003"],
    cwe: &[22],
};

/// Summary writes.
pub(crate) const SUMMARY_OP: RuleDoc = RuleDoc {
    id: "AEG-SCAN-703",
    name: "savedmodel-summary-write-op",
    severity: Severity::Medium,
    summary: "SavedModel graph writes summaries",
    why: "Summary ops write event files through a writer resource; in a serving graph they are unusual and can \
          fill disks or leak inputs to a log directory.",
    fix: "Export the serving signature without summary ops.",
    atlas: &["AML.T0010.003"],
    cwe: &[532],
};

/// Ops outside TensorFlow's registry.
pub(crate) const UNKNOWN_OP: RuleDoc = RuleDoc {
    id: "AEG-SCAN-704",
    name: "savedmodel-op-not-in-tensorflow",
    severity: Severity::High,
    summary: "SavedModel graph uses an op TensorFlow does not define",
    why: "Every op TensorFlow ships is known; an op outside its registry (and not a function of the model's \
          own library) is a custom kernel from a native library that the serving process must load with \
          `tf.load_op_library`. Whatever that code does is not in the model file, so the model cannot be \
          vetted from it.",
    fix: "Find out which library provides the op and whether you trust it; serve models built from \
          TensorFlow's own ops.",
    atlas: &["AML.T0010.003", "AML.T0011.000"],
    cwe: &[829],
};

/// Rules of this module.
pub(crate) const RULES: &[&RuleDoc] = &[
    &PYTHON_OP,
    &FILE_OP,
    &PATH_ESCAPE,
    &SUMMARY_OP,
    &UNKNOWN_OP,
    &NOT_COMPUTE_ONLY,
];

/// Stateful ops outside the reviewed list.
pub(crate) const NOT_COMPUTE_ONLY: RuleDoc = RuleDoc {
    id: "AEG-SCAN-705",
    name: "savedmodel-op-not-compute-only",
    severity: Severity::Medium,
    summary: "SavedModel graph uses a stateful op outside the reviewed list",
    why: "Ops TensorFlow marks stateless only compute on their inputs. Stateful ones keep state or act outside \
          the graph; the ones honest models use (variables, lookup tables, random numbers, control flow, the \
          checkpoint machinery) are reviewed, and those that reach files, the network or Python are findings \
          of their own. This one is neither: it may touch the host in ways the review did not cover.",
    fix: "Check what the op does (TensorFlow's op documentation) and why a served model needs it.",
    atlas: &["AML.T0010.003"],
    cwe: &[829],
};

/// Stateful ops reviewed as harmless in a served model: variables and resource updates, lookup tables,
/// random numbers, control flow, tensor arrays and stacks, assertions, and the checkpoint machinery (whose
/// constant paths are checked on their own).
fn reviewed_stateful(op: &str) -> bool {
    const EXACT: &[&str] = &[
        "StatefulPartitionedCall",
        "If",
        "While",
        "Case",
        "_If",
        "_While",
        "_Arg",
        "_Retval",
        "_DeviceArg",
        "_DeviceRetval",
        "Assert",
        "CheckNumerics",
        "CheckNumericsV2",
        "Empty",
        "GuaranteeConst",
        "DeepCopy",
        "Timestamp",
        "Multinomial",
        "TruncatedNormal",
        "ParameterizedTruncatedNormal",
        "RngReadAndSkip",
        "RngSkip",
        "NonDeterministicInts",
        "DisableCopyOnRead",
        "DestroyResourceOp",
        "SaveV2",
        "RestoreV2",
        "Save",
        "Restore",
        "SaveSlices",
        "RestoreSlice",
        "MergeV2Checkpoints",
        "SampleDistortedBoundingBox",
        "SampleDistortedBoundingBoxV2",
    ];
    const PREFIXES: &[&str] = &[
        "Var",
        "Resource",
        "Stateful",
        "TensorArray",
        "Stack",
        "Random",
    ];
    const PARTS: &[&str] = &[
        "Variable",
        "Table",
        "Mutex",
        "SeedGenerator",
        "CandidateSampler",
    ];
    EXACT.contains(&op)
        || PREFIXES.iter().any(|p| op.starts_with(p))
        || PARTS.iter().any(|p| op.contains(p))
}

/// TensorFlow's op registry, one name per line, sorted, `stateful` after the ops TensorFlow marks so
/// (generated by `bench/scan/tf_ops.py`).
const TF_OPS: &str = include_str!("../data/tf_ops.txt");

/// What TensorFlow's registry says of an op: `None` when it does not know it, else whether it is stateful.
fn tensorflow_op(op: &str) -> Option<bool> {
    static REGISTRY: std::sync::OnceLock<std::collections::HashMap<&'static str, bool>> =
        std::sync::OnceLock::new();
    REGISTRY
        .get_or_init(|| {
            TF_OPS
                .lines()
                .filter(|l| !l.starts_with('#'))
                .filter_map(|l| {
                    let mut parts = l.split_whitespace();
                    Some((parts.next()?, parts.next() == Some("stateful")))
                })
                .collect()
        })
        .get(op)
        .copied()
}

/// Scan a `saved_model.pb` or `keras_metadata.pb`.
pub(crate) fn scan(ctx: &mut crate::Ctx<'_>, blob: &mut dyn Blob, len: u64) {
    let proto = match savedmodel::read(blob, len, ctx.limits()) {
        Ok(proto) => proto,
        Err(err) => {
            ctx.report_parse_error(
                &err,
                &crate::engine_rules::UNREADABLE,
                None,
                "SavedModel protobuf could not be decoded",
            );
            return;
        }
    };
    match proto {
        TfProto::SavedModel(model) => {
            let nodes = savedmodel::nodes(&model);
            let functions = savedmodel::function_names(&model);
            check_nodes(ctx, &nodes, &functions);
            for (i, meta) in model.meta_graphs.iter().enumerate() {
                for asset in &meta.asset_file_def {
                    check_asset(ctx, i, &asset.filename);
                }
            }
        }
        TfProto::KerasMetadata(meta) => check_keras_metadata(ctx, &meta),
    }
}

fn check_asset(ctx: &mut crate::Ctx<'_>, meta_graph: usize, filename: &str) {
    let Some(escape) = path_escape(filename) else {
        return;
    };
    ctx.report(
        &PATH_ESCAPE,
        None,
        format!(
            "asset file `{filename}` of meta_graph[{meta_graph}] is outside `assets/`: {}",
            escape.describe()
        ),
        json!({ "asset": filename, "meta_graph": meta_graph, "reason": escape.describe() }),
    );
}

/// Apply the op rules to every node.
fn check_nodes(ctx: &mut crate::Ctx<'_>, nodes: &[NodeRef<'_>], functions: &BTreeSet<&str>) {
    let consts = savedmodel::const_table(nodes);
    let mut unknown = BTreeSet::new();
    for n in nodes {
        let op = n.node.op.as_str();
        let host = PYTHON_OPS.contains(&op)
            || FILE_OPS.contains(&op)
            || NETWORK_OPS.contains(&op)
            || SUMMARY_OPS.contains(&op)
            || reads_files_by_name(op)
            || file_url_attr(n).is_some();
        if !op.is_empty() && !functions.contains(op) && unknown.insert(op.to_owned()) {
            match tensorflow_op(op) {
                None => report_node(
                    ctx,
                    &UNKNOWN_OP,
                    n,
                    format!("op `{op}` is not a TensorFlow op: a custom native kernel"),
                    json!({}),
                ),
                Some(true) if !host && !reviewed_stateful(op) => report_node(
                    ctx,
                    &NOT_COMPUTE_ONLY,
                    n,
                    format!("op `{op}` is stateful and outside the reviewed list"),
                    json!({}),
                ),
                _ => {}
            }
        }
        let paths = constant_inputs(n, &consts);
        if PYTHON_OPS.contains(&op) {
            let token = savedmodel::attr_strings(n.node, "token");
            report_node(
                ctx,
                &PYTHON_OP,
                n,
                format!("op `{op}` calls a Python function"),
                json!({ "token": token }),
            );
        } else if NETWORK_OPS.contains(&op) {
            report_node(
                ctx,
                &FILE_OP,
                n,
                format!("op `{op}` opens network connections"),
                json!({ "constant_inputs": paths, "access": "network" }),
            );
        } else if FILE_OPS.contains(&op) || reads_files_by_name(op) && !SUMMARY_OPS.contains(&op) {
            let mut extra = json!({ "constant_paths": paths });
            if op == "ImmutableConst" {
                extra["memory_region_name"] =
                    json!(savedmodel::attr_strings(n.node, "memory_region_name"));
            }
            report_node(
                ctx,
                &FILE_OP,
                n,
                format!("op `{op}` accesses the file system"),
                extra,
            );
        } else if SUMMARY_OPS.contains(&op) {
            report_node(
                ctx,
                &SUMMARY_OP,
                n,
                format!("op `{op}` writes summary events"),
                json!({}),
            );
        } else if let Some((attr, urls)) = file_url_attr(n) {
            report_node(
                ctx,
                &FILE_OP,
                n,
                format!(
                    "op `{op}` writes to `{}` (attribute `{attr}`)",
                    urls.join("`, `")
                ),
                json!({ "attribute": attr, "targets": urls }),
            );
        }
        if PATH_INPUT_OPS.contains(&op) {
            for path in paths.iter().filter(|p| {
                path_escape(p).is_some_and(|e| e != aegis_formats::onnx::PathEscape::Empty)
            }) {
                let reason = path_escape(path).map(|e| e.describe()).unwrap_or_default();
                report_node(
                    ctx,
                    &PATH_ESCAPE,
                    n,
                    format!("op `{op}` is fed the constant path `{path}` ({reason})"),
                    json!({ "path": path, "reason": reason }),
                );
            }
        }
    }
}

/// Attributes that send output to files: `PrintV2.output_stream` = `file://...`, `Debug*` `debug_urls` /
/// `dump_root`, `DecodeProtoV2`/`EncodeProto` `descriptor_source` naming a file.
fn file_url_attr(n: &NodeRef<'_>) -> Option<(&'static str, Vec<String>)> {
    let op = n.node.op.as_str();
    let (attr, targets): (&'static str, Vec<String>) = match op {
        "PrintV2" => (
            "output_stream",
            pick(n, "output_stream", |s| s.starts_with("file://")),
        ),
        "DecodeProtoV2" | "EncodeProto" => (
            "descriptor_source",
            pick(n, "descriptor_source", |s| {
                s != "local://" && !s.starts_with("bytes://")
            }),
        ),
        _ if op.starts_with("Debug") => {
            // `file://` dumps to disk, `grpc://` streams every tensor to a remote debugger.
            let urls = pick(n, "debug_urls", |s| !s.is_empty());
            if urls.is_empty() {
                ("dump_root", pick(n, "dump_root", |s| !s.is_empty()))
            } else {
                ("debug_urls", urls)
            }
        }
        _ => return None,
    };
    (!targets.is_empty()).then_some((attr, targets))
}

fn pick(n: &NodeRef<'_>, attr: &str, keep: impl Fn(&str) -> bool) -> Vec<String> {
    savedmodel::attr_strings(n.node, attr)
        .into_iter()
        .filter(|s| keep(s))
        .collect()
}

/// String constants feeding a node's inputs, resolved within its scope.
fn constant_inputs(n: &NodeRef<'_>, consts: &savedmodel::ConstTable<'_>) -> Vec<String> {
    let Some(scope) = consts.get(&(n.meta_graph, n.function)) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for input in &n.node.input {
        if let Some(strings) = scope.get(savedmodel::input_node(input)) {
            out.extend(strings.iter().take(16).cloned());
        }
    }
    out
}

fn report_node(
    ctx: &mut crate::Ctx<'_>,
    rule: &RuleDoc,
    n: &NodeRef<'_>,
    what: String,
    extra: serde_json::Value,
) {
    let mut evidence = json!({
        "op": n.node.op,
        "node": n.node.name,
        "scope": n.scope(),
    });
    if let (Some(map), Some(extra)) = (evidence.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            map.insert(k.clone(), v.clone());
        }
    }
    ctx.report(
        rule,
        None,
        format!("{what} (node `{}` in {})", n.node.name, n.scope()),
        evidence,
    );
}

/// Each Keras object's metadata JSON goes through the Keras config rules; duplicates (a layer described in
/// its own node and again in the model's config) are reported once.
fn check_keras_metadata(ctx: &mut crate::Ctx<'_>, meta: &SavedMetadata) {
    let mut seen = BTreeSet::new();
    for node in &meta.nodes {
        if node.metadata.is_empty() {
            continue;
        }
        let Ok(value) = aegis_formats::keras::parse_json(node.metadata.as_bytes(), ctx.limits())
        else {
            continue;
        };
        let source = format!(
            "keras_metadata.pb node `{}` ({})",
            node.node_path, node.identifier
        );
        crate::keras::check_config(ctx, &value, &source, None, "keras-metadata", &mut seen);
    }
}

#[cfg(test)]
mod tests {
    use aegis_core::Severity;
    use aegis_test_support::savedmodel as gen;

    use crate::Scanner;

    fn findings(name: &str, bytes: &[u8]) -> Vec<aegis_core::Finding> {
        Scanner::default().scan_bytes(name, bytes).findings
    }

    fn high_rules(name: &str, bytes: &[u8]) -> Vec<String> {
        findings(name, bytes)
            .into_iter()
            .filter(|f| f.severity >= Severity::High)
            .map(|f| f.rule.as_str().to_owned())
            .collect()
    }

    #[test]
    fn honest_savedmodel_is_clean() {
        let all = findings("saved_model.pb", &gen::honest());
        assert!(all.iter().all(|f| f.severity < Severity::Medium), "{all:?}");
        let with_asset = findings("saved_model.pb", &gen::with_asset("vocab.txt"));
        assert!(
            with_asset.iter().all(|f| f.severity < Severity::Medium),
            "{with_asset:?}"
        );
    }

    /// Ops are judged against TensorFlow's registry: unknown is a custom kernel (high), stateful and not
    /// reviewed is medium, stateless or reviewed passes.
    #[test]
    fn ops_are_judged_against_the_registry() {
        let rules = |bytes: &[u8]| -> Vec<(String, Severity)> {
            findings("saved_model.pb", bytes)
                .into_iter()
                .map(|f| (f.rule.as_str().to_owned(), f.severity))
                .collect()
        };
        let custom = rules(&gen::with_ops(&["AcmeRunCommand"], &[]));
        assert!(
            custom.contains(&(super::UNKNOWN_OP.id.to_owned(), Severity::High)),
            "{custom:?}"
        );
        let sleepy = rules(&gen::with_ops(&[], &["SleepOp"]));
        assert!(
            sleepy.contains(&(super::NOT_COMPUTE_ONLY.id.to_owned(), Severity::Medium)),
            "{sleepy:?}"
        );
        let reviewed = rules(&gen::with_ops(
            &["HashTableV2", "RandomUniform", "MatMul"],
            &["While"],
        ));
        assert!(reviewed.is_empty(), "{reviewed:?}");
        assert_eq!(super::tensorflow_op("MatMul"), Some(false));
        assert_eq!(super::tensorflow_op("VarHandleOp"), Some(true));
        assert_eq!(super::tensorflow_op("matmul"), None);
    }

    #[test]
    fn pyfunc_is_critical_in_graph_and_library() {
        for bytes in [
            gen::with_ops(&["PyFunc"], &[]),
            gen::with_ops(&[], &["EagerPyFunc"]),
        ] {
            let all = findings("saved_model.pb", &bytes);
            let f = all
                .iter()
                .find(|f| f.rule.as_str() == "AEG-SCAN-700")
                .expect("pyfunc");
            assert_eq!(f.severity, Severity::Critical);
            assert_eq!(f.evidence["token"][0], "pyfunc_0");
        }
    }

    #[test]
    fn file_ops_are_high_with_their_paths() {
        let all = findings(
            "saved_model.pb",
            &gen::with_ops(&["ReadFile"], &["WriteFile"]),
        );
        let read = all.iter().find(|f| f.evidence["op"] == "ReadFile").unwrap();
        assert_eq!(read.rule.as_str(), "AEG-SCAN-701");
        assert_eq!(read.evidence["constant_paths"][0], "/etc/passwd");
        assert!(all
            .iter()
            .any(|f| f.evidence["op"] == "WriteFile" && f.rule.as_str() == "AEG-SCAN-701"));
        assert!(all.iter().any(|f| f.rule.as_str() == "AEG-SCAN-702"));
        let rules = high_rules(
            "saved_model.pb",
            &gen::with_ops(&["ImmutableConst", "MatchingFiles"], &[]),
        );
        assert_eq!(
            rules.iter().filter(|r| *r == "AEG-SCAN-701").count(),
            2,
            "{rules:?}"
        );
    }

    #[test]
    fn print_to_file_and_debug_urls_are_high_print_to_stderr_is_not() {
        let rules = high_rules(
            "saved_model.pb",
            &gen::with_ops(&["PrintV2:file:///tmp/leak.txt"], &[]),
        );
        assert_eq!(rules, vec!["AEG-SCAN-701"]);
        assert!(high_rules("saved_model.pb", &gen::with_ops(&["PrintV2:stderr"], &[])).is_empty());
    }

    #[test]
    fn asset_traversal_is_high() {
        let rules = high_rules("saved_model.pb", &gen::with_asset("../../../etc/passwd"));
        assert_eq!(rules, vec!["AEG-SCAN-702"]);
    }

    #[test]
    fn restore_from_constant_absolute_path_is_high() {
        let rules = high_rules(
            "saved_model.pb",
            &gen::with_ops(&["RestoreV2:/etc/shadow"], &[]),
        );
        assert_eq!(rules, vec!["AEG-SCAN-702"]);
    }

    #[test]
    fn keras_metadata_lambda_is_reported_once() {
        let all = findings("keras_metadata.pb", &gen::keras_metadata(true));
        let lambdas: Vec<_> = all
            .iter()
            .filter(|f| f.rule.as_str() == "AEG-SCAN-600")
            .collect();
        assert_eq!(lambdas.len(), 1, "{all:?}");
        assert_eq!(lambdas[0].severity, Severity::Critical);
        let clean = findings("keras_metadata.pb", &gen::keras_metadata(false));
        assert!(
            clean.iter().all(|f| f.severity < Severity::Medium),
            "{clean:?}"
        );
    }

    #[test]
    fn truncated_protobuf_is_unreadable() {
        let bytes = gen::honest();
        let all = findings("saved_model.pb", &bytes[..bytes.len() - 5]);
        assert!(
            all.iter().any(|f| f.rule.as_str() == "AEG-SCAN-001"),
            "{all:?}"
        );
    }
}
