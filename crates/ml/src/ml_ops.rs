//! scikit-learn's `ai.onnx.ml` operators that tract does not implement, rewritten into standard ONNX operators
//! before either engine sees the graph.
//!
//! tract 0.21 runs tree ensembles but has no `LinearClassifier`, `Scaler`, `Normalizer`, `OneHotEncoder` or
//! `ArrayFeatureExtractor`, so a `LogisticRegression`, a `LinearSVC` or a pipeline with a `StandardScaler` could
//! not be loaded at all. Each rewrite follows the ONNX-ML specification (and onnxruntime's reading of it for
//! the binary case); the tests compare the result with scikit-learn's own `predict_proba`
//! (`tests/sklearn_models.rs`). A rewritten linear model is made of gradient-checked operators, so it gets
//! exact gradients too. An attribute combination not listed here is refused with the reason, never guessed.

use aegis_formats::onnx::proto::{tensor_proto::DataType, AttributeProto, GraphProto, NodeProto};

use crate::export::{f32_values, i64_tensor, int, ints, node};

fn floats(n: &NodeProto, name: &str) -> Vec<f32> {
    n.attr(name).map(|a| a.floats.clone()).unwrap_or_default()
}

fn text(n: &NodeProto, name: &str, default: &str) -> String {
    n.attr(name).map_or(default.to_string(), |a| {
        String::from_utf8_lossy(&a.s).into_owned()
    })
}

/// Rewrite every supported `ai.onnx.ml` node of `g` into standard operators of the default-domain `opset`
/// the model imports (axes are inputs from opset 13 on, attributes before).
/// Returns the operators it rewrote.
pub(crate) fn rewrite(g: &mut GraphProto, opset: i64) -> Result<Vec<String>, String> {
    let mut rewritten = Vec::new();
    let mut nodes = Vec::with_capacity(g.node.len());
    for (i, n) in std::mem::take(&mut g.node).into_iter().enumerate() {
        if n.domain != "ai.onnx.ml" {
            nodes.push(n);
            continue;
        }
        let p = format!("aegis_ml{i}");
        if n.op_type != "TreeEnsembleClassifier" {
            rewritten.push(n.op_type.clone());
        }
        let out = |k: usize| n.output.get(k).cloned().unwrap_or_default();
        let x = n.input.first().cloned().unwrap_or_default();
        match n.op_type.as_str() {
            "Scaler" => {
                let (offset, scale) = (floats(&n, "offset"), floats(&n, "scale"));
                let (off, sc) = (format!("{p}_offset"), format!("{p}_scale"));
                g.initializer
                    .push(f32_values(&off, &[offset.len()], &offset));
                g.initializer.push(f32_values(&sc, &[scale.len()], &scale));
                let centred = format!("{p}_centred");
                nodes.push(node("Sub", &centred, &[&x, &off], &[&centred], vec![]));
                nodes.push(node(
                    "Mul",
                    &format!("{p}_mul"),
                    &[&centred, &sc],
                    &[&out(0)],
                    vec![],
                ));
            }
            "ArrayFeatureExtractor" => {
                // Selects along the last axis with the indices flattened (a scalar index still keeps the
                // column dimension, as onnxruntime does); scikit-learn's inputs are (rows, features).
                let idx = n.input.get(1).cloned().unwrap_or_default();
                let (flat, shape) = (format!("{p}_idx"), format!("{p}_flat"));
                g.initializer.push(i64_tensor(&shape, &[-1]));
                nodes.push(node("Reshape", &flat, &[&idx, &shape], &[&flat], vec![]));
                nodes.push(node(
                    "Gather",
                    &p,
                    &[&x, &flat],
                    &[&out(0)],
                    vec![int("axis", -1)],
                ));
            }
            "Normalizer" => normalizer(&n, &p, &x, &out(0), opset, &mut nodes, g)?,
            "LinearClassifier" => linear_classifier(&n, &p, &x, &mut nodes, g)?,
            "OneHotEncoder" => {
                let cats = n
                    .attr("cats_int64s")
                    .map(|a| a.ints.clone())
                    .unwrap_or_default();
                if cats.is_empty() {
                    return Err("OneHotEncoder with string categories is not supported".into());
                }
                // `zeros = 0` (scikit-learn's handle_unknown="error") makes onnxruntime fail on a category it
                // does not know; here such a value encodes as all zeros. Only values outside the categories
                // differ, and the gateway's schema check refuses those before the model runs.
                let (c, ax, eq) = (format!("{p}_cats"), format!("{p}_axis"), format!("{p}_eq"));
                g.initializer.push(i64_tensor(&c, &cats));
                let as_int = format!("{p}_int");
                let expanded = format!("{p}_x");
                nodes.push(node(
                    "Cast",
                    &as_int,
                    &[&x],
                    &[&as_int],
                    vec![int("to", DataType::Int64 as i64)],
                ));
                nodes.push(with_axes(
                    "Unsqueeze",
                    &expanded,
                    &as_int,
                    &ax,
                    &[-1],
                    opset,
                    &expanded,
                    g,
                    vec![],
                ));
                nodes.push(node("Equal", &eq, &[&expanded, &c], &[&eq], vec![]));
                nodes.push(node(
                    "Cast",
                    &format!("{p}_cast"),
                    &[&eq],
                    &[&out(0)],
                    vec![int("to", DataType::Float as i64)],
                ));
            }
            "TreeEnsembleClassifier" => nodes.push(binary_base_values(n)),
            _ => nodes.push(n),
        }
    }
    g.node = nodes;
    Ok(rewritten)
}

/// A node that takes `axes`: as an input (an initializer named `axes_name`) from opset 13 on, as an
/// attribute before.
#[allow(clippy::too_many_arguments)]
fn with_axes(
    op: &str,
    name: &str,
    x: &str,
    axes_name: &str,
    axes: &[i64],
    opset: i64,
    out: &str,
    g: &mut GraphProto,
    mut attributes: Vec<AttributeProto>,
) -> NodeProto {
    if opset >= 13 {
        g.initializer.push(i64_tensor(axes_name, axes));
        node(op, name, &[x, axes_name], &[out], attributes)
    } else {
        attributes.push(ints("axes", axes));
        node(op, name, &[x], &[out], attributes)
    }
}

/// `Normalizer`: rows divided by their L1 or L2 norm (a row whose norm is 0 stays as it is, as in
/// onnxruntime). `MAX` is refused.
fn normalizer(
    n: &NodeProto,
    p: &str,
    x: &str,
    out: &str,
    opset: i64,
    nodes: &mut Vec<NodeProto>,
    g: &mut GraphProto,
) -> Result<(), String> {
    let axes = format!("{p}_axes");
    let norm = format!("{p}_norm");
    let keep = || vec![int("keepdims", 1)];
    match text(n, "norm", "MAX").as_str() {
        "L1" => {
            let abs = format!("{p}_abs");
            nodes.push(node("Abs", &abs, &[x], &[&abs], vec![]));
            nodes.push(with_axes(
                "ReduceSum",
                &norm,
                &abs,
                &axes,
                &[1],
                opset,
                &norm,
                g,
                keep(),
            ));
        }
        "L2" => {
            let (sq, sum) = (format!("{p}_sq"), format!("{p}_sum"));
            nodes.push(node("Mul", &sq, &[x, x], &[&sq], vec![]));
            nodes.push(with_axes(
                "ReduceSum",
                &sum,
                &sq,
                &axes,
                &[1],
                opset,
                &sum,
                g,
                keep(),
            ));
            nodes.push(node("Sqrt", &norm, &[&sum], &[&norm], vec![]));
        }
        other => return Err(format!("Normalizer with norm {other:?} is not supported")),
    }
    // A zero norm divides by a tiny number instead: the row (all zeros) stays all zeros.
    let (safe, floor) = (format!("{p}_safe"), format!("{p}_floor"));
    if opset >= 11 {
        g.initializer.push(f32_values(&floor, &[], &[1e-30]));
        nodes.push(node("Clip", &safe, &[&norm, &floor], &[&safe], vec![]));
    } else {
        let min = AttributeProto {
            name: "min".into(),
            r#type: aegis_formats::onnx::proto::attribute_proto::AttributeType::Float as i32,
            f: 1e-30,
            ..Default::default()
        };
        nodes.push(node("Clip", &safe, &[&norm], &[&safe], vec![min]));
    }
    nodes.push(node(
        "Div",
        &format!("{p}_div"),
        &[x, &safe],
        &[out],
        vec![],
    ));
    Ok(())
}

/// `LinearClassifier`: scores `X·Wᵀ + b`, then the post-transform. With one row of coefficients and two
/// classes the scores are `[-s, s]` before the transform (the ONNX reference implementation's reading of the
/// binary case).
fn linear_classifier(
    n: &NodeProto,
    p: &str,
    x: &str,
    nodes: &mut Vec<NodeProto>,
    g: &mut GraphProto,
) -> Result<(), String> {
    let coefficients = floats(n, "coefficients");
    let intercepts = floats(n, "intercepts");
    let labels = n
        .attr("classlabels_ints")
        .map(|a| a.ints.len())
        .or_else(|| n.attr("classlabels_strings").map(|a| a.strings.len()))
        .unwrap_or(0);
    // `intercepts` is optional: without it, one row of coefficients per class (one for two classes when
    // the coefficients fit only one row).
    let rows = if !intercepts.is_empty() {
        intercepts.len()
    } else if labels > 2 && coefficients.len().is_multiple_of(labels) {
        labels
    } else {
        return Err(format!(
            "LinearClassifier without intercepts for {labels} classes: the number of coefficient rows is \
             ambiguous"
        ));
    };
    if coefficients.is_empty() || !coefficients.len().is_multiple_of(rows) {
        return Err(format!(
            "LinearClassifier has {} coefficients for {rows} intercepts",
            coefficients.len()
        ));
    }
    if n.output.first().is_some_and(|o| !o.is_empty()) {
        return Err(
            "the LinearClassifier's label output is used by the graph, which is not supported"
                .into(),
        );
    }
    let scores_out = n.output.get(1).cloned().unwrap_or_default();
    let features = coefficients.len() / rows;
    let (w, b) = (format!("{p}_w"), format!("{p}_b"));
    g.initializer
        .push(f32_values(&w, &[rows, features], &coefficients));
    let mut bias = intercepts.clone();
    bias.resize(rows, 0.0);
    g.initializer.push(f32_values(&b, &[rows], &bias));
    let raw = format!("{p}_raw");
    nodes.push(node(
        "Gemm",
        &raw,
        &[x, &w, &b],
        &[&raw],
        vec![int("transB", 1)],
    ));
    let mut scores = raw;
    if rows == 1 && labels == 2 {
        let sign = format!("{p}_sign");
        g.initializer.push(f32_values(&sign, &[1, 2], &[-1.0, 1.0]));
        let both = format!("{p}_both");
        nodes.push(node("Mul", &both, &[&scores, &sign], &[&both], vec![]));
        scores = both;
    }
    let transform = text(n, "post_transform", "NONE");
    let (op, attrs) = match transform.as_str() {
        "NONE" => ("Identity", vec![]),
        "SOFTMAX" => ("Softmax", vec![int("axis", -1)]),
        "LOGISTIC" => ("Sigmoid", vec![]),
        other => {
            return Err(format!(
                "LinearClassifier post_transform {other} is not supported"
            ))
        }
    };
    nodes.push(node(
        op,
        &format!("{p}_post"),
        &[&scores],
        &[&scores_out],
        attrs,
    ));
    Ok(())
}

/// A binary tree ensemble that scores one class (scikit-learn's `GradientBoostingClassifier`) stores one base
/// value; tract wants one per class label. The score lands in the first column (tract then lays the two
/// classes out as `[1 - p, p]`), so the base value does too.
fn binary_base_values(mut n: NodeProto) -> NodeProto {
    let labels = n
        .attr("classlabels_int64s")
        .map(|a| a.ints.len())
        .or_else(|| n.attr("classlabels_strings").map(|a| a.strings.len()))
        .unwrap_or(0);
    if labels == 2 {
        if let Some(a) = n.attribute.iter_mut().find(|a| a.name == "base_values") {
            if a.floats.len() == 1 {
                a.floats.push(0.0);
            }
        }
    }
    n
}
