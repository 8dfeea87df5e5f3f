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

/// The model reduced to its probability (or score) output, and why its weights cannot be fine-tuned and
/// saved back when the graph was changed for evaluation (`ai.onnx.ml` operators rewritten, a single output
/// column widened). The whole file is checked first (`onnx::checked_graph`), so pruning never hides a
/// malformed node.
pub(crate) fn answer_graph(proto: &ModelProto, path: &Path) -> Result<Answer, Error> {
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
    let mut changed: Vec<String> = rewritten
        .iter()
        .map(|op| {
            format!("its {op} operator keeps the weights where fine-tuning cannot write them")
        })
        .collect();
    let reading = widen_single_column(g);
    if let Some(how) = reading {
        changed.push(format!(
            "its single output column was widened to two classes ({how}) for evaluation, which a saved \
             model would keep"
        ));
    }
    Ok(Answer {
        proto: reduced,
        unsaveable: changed,
        reading,
    })
}

/// A graph reduced to its answer ([`answer_graph`]).
pub(crate) struct Answer {
    /// The reduced (and possibly rewritten or widened) model.
    pub(crate) proto: ModelProto,
    /// Why its weights cannot be saved back after fine-tuning, when they cannot.
    pub(crate) unsaveable: Vec<String>,
    /// How a single output column is read as two classes, when it was widened.
    pub(crate) reading: Option<&'static str>,
}

/// A binary classifier that answers with one column (a PyTorch or Keras sigmoid output, a logit, a
/// scikit-learn `LinearSVC` decision score) becomes a two-class one, so every command sees class
/// probabilities: a column produced by `Sigmoid` is `p(class 1)` and becomes `[1 - p, p]`; any other column is
/// a score `s` (a logit, a margin) and becomes `softmax([-s/2, s/2]) = [σ(-s), σ(s)]`, whose larger entry is
/// the class the score's sign picks (for a logit, exactly the model's probabilities). Only an output declared
/// as `[batch, 1]` is widened. Returns how it was read, or `None` when the output was left alone.
fn widen_single_column(g: &mut GraphProto) -> Option<&'static str> {
    let output = g.output.first()?.clone();
    let Some(type_proto::Value::TensorType(t)) =
        output.r#type.as_ref().and_then(|t| t.value.as_ref())
    else {
        return None;
    };
    let dims = &t.shape.as_ref()?.dim;
    let width = match dims.as_slice() {
        [_, d] => d.value.as_ref(),
        _ => return None,
    };
    if !matches!(
        width,
        Some(aegis_formats::onnx::proto::tensor_shape_proto::dimension::Value::DimValue(1))
    ) {
        return None;
    }
    let elem = t.elem_type;
    let single = output.name.clone();
    let wide = format!("{single}__aegis_two_classes");
    // The column's producer, looking through operators that keep values as they are (a Sigmoid followed by a
    // Reshape or Identity is still a probability).
    let mut value = single.clone();
    let mut from_sigmoid = false;
    for _ in 0..g.node.len() {
        let Some(n) = g.node.iter().rev().find(|n| n.output.contains(&value)) else {
            break;
        };
        match n.op_type.as_str() {
            "Sigmoid" => {
                from_sigmoid = true;
                break;
            }
            "Identity" | "Reshape" | "Flatten" | "Squeeze" | "Unsqueeze" | "Cast" | "Dropout" => {
                match n.input.first() {
                    Some(input) if !input.is_empty() => value = input.clone(),
                    _ => break,
                }
            }
            _ => break,
        }
    }
    let constant = |name: &str, dims: &[i64], values: &[f32]| {
        let mut t = crate::export::f32_values(name, &[], values);
        t.dims = dims.to_vec();
        t.data_type = elem;
        if elem == DataType::Double as i32 {
            t.double_data = values.iter().map(|&v| f64::from(v)).collect();
            t.float_data.clear();
        }
        t
    };
    let how = if from_sigmoid {
        let (one, rest) = (format!("{wide}_one"), format!("{wide}_rest"));
        g.initializer.push(constant(&one, &[1, 1], &[1.0]));
        g.node.push(crate::export::node(
            "Sub",
            &rest,
            &[&one, &single],
            &[&rest],
            vec![],
        ));
        g.node.push(crate::export::node(
            "Concat",
            &wide,
            &[&rest, &single],
            &[&wide],
            vec![crate::export::int("axis", 1)],
        ));
        "the column is the probability of class 1"
    } else {
        let (sign, both) = (format!("{wide}_sign"), format!("{wide}_logits"));
        g.initializer.push(constant(&sign, &[1, 2], &[-0.5, 0.5]));
        g.node.push(crate::export::node(
            "Mul",
            &both,
            &[&single, &sign],
            &[&both],
            vec![],
        ));
        g.node.push(crate::export::node(
            "Softmax",
            &wide,
            &[&both],
            &[&wide],
            vec![crate::export::int("axis", 1)],
        ));
        "the column is a score for class 1; its sign picks the class"
    };
    let mut widened = output;
    widened.name = wide;
    if let Some(type_proto::Value::TensorType(t)) =
        widened.r#type.as_mut().and_then(|t| t.value.as_mut())
    {
        if let Some(shape) = t.shape.as_mut() {
            if let Some(d) = shape.dim.get_mut(1) {
                d.value = Some(
                    aegis_formats::onnx::proto::tensor_shape_proto::dimension::Value::DimValue(2),
                );
            }
        }
    }
    g.output = vec![widened];
    Some(how)
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
