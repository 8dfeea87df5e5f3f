//! Which output of an ONNX graph is the model's answer, and only the nodes that compute it.
//!
//! Exporters write more than class probabilities: scikit-learn's converters put a `label` output first (an
//! `ArgMax` and a class-label lookup) and, unless told `zipmap=False`, wrap the probabilities in a `ZipMap`
//! whose output is a sequence of maps, which no tensor engine returns. Both engines therefore run the same
//! reduced graph: its one output is the first float tensor the graph returns, or the tensor a `ZipMap` turns
//! into maps, and its nodes are those that output depends on. A label branch then neither needs an operator the
//! gradient evaluator lacks nor a second output an engine does not implement.

use std::collections::HashSet;
use std::path::Path;

use aegis_formats::onnx::proto::{
    tensor_proto::DataType, type_proto, GraphProto, ModelProto, NodeProto, TypeProto,
    ValueInfoProto,
};

use crate::onnx_file::load_err;
use crate::Error;

/// The model reduced to its probability (or score) output, and the `ai.onnx.ml` operators rewritten in it.
/// The whole file is checked first (`onnx::checked_graph`), so pruning never hides a malformed node.
pub(crate) fn answer_graph(
    proto: &ModelProto,
    path: &Path,
) -> Result<(ModelProto, Vec<String>), Error> {
    let graph = crate::onnx_file::checked_graph(proto, path)?;
    let output = answer_output(graph).ok_or_else(|| {
        load_err(
            path,
            "no float tensor output (a class-probability or score tensor) was found".into(),
        )
    })?;
    let mut reduced = proto.clone();
    let g = reduced.graph.get_or_insert_with(Default::default);
    g.node = needed_nodes(&g.node, &output.name);
    g.output = vec![output];
    let opset = crate::onnx_file::default_opset(proto);
    let rewritten = crate::ml_ops::rewrite(g, opset).map_err(|why| load_err(path, why))?;
    Ok((reduced, rewritten))
}

fn is_float_tensor(v: &ValueInfoProto) -> bool {
    matches!(
        v.r#type.as_ref().and_then(|t| t.value.as_ref()),
        Some(type_proto::Value::TensorType(t))
            if t.elem_type == DataType::Float as i32 || t.elem_type == DataType::Double as i32
    )
}

/// The first float tensor output, else the input of a `ZipMap` that produces a graph output.
fn answer_output(graph: &GraphProto) -> Option<ValueInfoProto> {
    if let Some(o) = graph.output.iter().find(|o| is_float_tensor(o)) {
        return Some(o.clone());
    }
    let outputs: HashSet<&str> = graph.output.iter().map(|o| o.name.as_str()).collect();
    let zipmap = graph
        .node
        .iter()
        .find(|n| n.op_type == "ZipMap" && n.output.iter().any(|o| outputs.contains(o.as_str())))?;
    let name = zipmap.input.first()?.clone();
    let typed = graph.value_info.iter().find(|v| v.name == name).cloned();
    Some(typed.unwrap_or(ValueInfoProto {
        name,
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: DataType::Float as i32,
                shape: None,
            })),
            ..Default::default()
        }),
        ..Default::default()
    }))
}

/// The nodes `output` depends on, in their original order. Values read inside subgraphs (`If`, `Loop`) count
/// as read by the node that holds them.
fn needed_nodes(nodes: &[NodeProto], output: &str) -> Vec<NodeProto> {
    let mut needed: HashSet<String> = HashSet::from([output.to_string()]);
    let mut keep = vec![false; nodes.len()];
    for (i, n) in nodes.iter().enumerate().rev() {
        if n.output.iter().any(|o| needed.contains(o)) {
            keep[i] = true;
            needed.extend(n.input.iter().filter(|s| !s.is_empty()).cloned());
            for a in &n.attribute {
                for g in a.g.iter().chain(&a.graphs) {
                    subgraph_reads(g, &mut needed, 0);
                }
            }
        }
    }
    nodes
        .iter()
        .zip(keep)
        .filter(|(_, k)| *k)
        .map(|(n, _)| {
            let mut n = n.clone();
            // A LinearClassifier's label output nothing reads is left unnamed (ONNX's way to omit an
            // output), so its rewrite need not compute it; tract's tree ensembles want both outputs named.
            if n.op_type == "LinearClassifier" && n.output.len() > 1 {
                for o in n.output.iter_mut() {
                    if !needed.contains(o.as_str()) && o != output {
                        o.clear();
                    }
                }
            }
            n
        })
        .collect()
}

fn subgraph_reads(g: &GraphProto, needed: &mut HashSet<String>, depth: usize) {
    if depth > 8 {
        return;
    }
    for n in &g.node {
        needed.extend(n.input.iter().filter(|s| !s.is_empty()).cloned());
        for a in &n.attribute {
            for sub in a.g.iter().chain(&a.graphs) {
                subgraph_reads(sub, needed, depth + 1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(op: &str, inputs: &[&str], outputs: &[&str]) -> NodeProto {
        NodeProto {
            op_type: op.into(),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: outputs.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn the_label_branch_is_pruned_and_unused_outputs_unnamed() {
        let nodes = vec![
            node("LinearClassifier", &["x"], &["label", "scores"]),
            node("Normalizer", &["scores"], &["probs"]),
            node("Cast", &["label"], &["label_out"]),
            node("ZipMap", &["probs"], &["maps"]),
        ];
        let kept = needed_nodes(&nodes, "probs");
        let ops: Vec<&str> = kept.iter().map(|n| n.op_type.as_str()).collect();
        assert_eq!(ops, ["LinearClassifier", "Normalizer"]);
        assert_eq!(kept[0].output, ["", "scores"]);
        // Tree ensembles keep both outputs named (tract wants them).
        let trees = vec![node("TreeEnsembleClassifier", &["x"], &["label", "probs"])];
        assert_eq!(needed_nodes(&trees, "probs")[0].output, ["label", "probs"]);
    }

    #[test]
    fn a_zipmap_output_is_answered_by_its_input() {
        let graph = GraphProto {
            node: vec![node("ZipMap", &["probs"], &["maps"])],
            output: vec![ValueInfoProto {
                name: "maps".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        assert_eq!(answer_output(&graph).unwrap().name, "probs");
        let none = GraphProto {
            output: graph.output.clone(),
            ..Default::default()
        };
        assert!(answer_output(&none).is_none());
    }
}
