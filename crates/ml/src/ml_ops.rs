//! scikit-learn's `ai.onnx.ml` operators that tract does not implement, rewritten into standard ONNX operators
//! before either engine sees the graph.
//!
//! tract 0.21 runs tree ensembles but has no `LinearClassifier`, `Scaler`, `Normalizer`, `OneHotEncoder` or
//! `ArrayFeatureExtractor`, so a `LogisticRegression`, a `LinearSVC` or a pipeline with a `StandardScaler` could
//! not be loaded at all. Each rewrite follows the ONNX-ML specification (and onnxruntime's reading of it for
//! the binary case); the tests compare the result with scikit-learn's own `predict_proba`
//! (`tests/sklearn_models.rs`). A rewritten linear model is made of gradient-checked operators, so it gets
//! exact gradients too. An attribute combination not listed here is refused with the reason, never guessed.

use aegis_formats::onnx::proto::{
    tensor_proto::DataType, AttributeProto, GraphProto, NodeProto, TensorProto,
};

use crate::export::{i64_tensor, int, node};

fn attr<'a>(n: &'a NodeProto, name: &str) -> Option<&'a AttributeProto> {
    n.attribute.iter().find(|a| a.name == name)
}

fn floats(n: &NodeProto, name: &str) -> Vec<f32> {
    attr(n, name).map(|a| a.floats.clone()).unwrap_or_default()
}

fn text(n: &NodeProto, name: &str, default: &str) -> String {
    attr(n, name).map_or(default.to_string(), |a| {
        String::from_utf8_lossy(&a.s).into_owned()
    })
}

fn f32_init(name: &str, dims: &[usize], values: &[f32]) -> TensorProto {
    TensorProto {
        name: name.to_string(),
        dims: dims.iter().map(|&d| d as i64).collect(),
        data_type: DataType::Float as i32,
        float_data: values.to_vec(),
        ..Default::default()
    }
}

/// Rewrite every supported `ai.onnx.ml` node of `g` into standard operators.
pub(crate) fn rewrite(g: &mut GraphProto) -> Result<(), String> {
    let mut nodes = Vec::with_capacity(g.node.len());
    for (i, n) in std::mem::take(&mut g.node).into_iter().enumerate() {
        if n.domain != "ai.onnx.ml" {
            nodes.push(n);
            continue;
        }
        let p = format!("aegis_ml{i}");
        let out = |k: usize| n.output.get(k).cloned().unwrap_or_default();
        let x = n.input.first().cloned().unwrap_or_default();
        match n.op_type.as_str() {
            "Scaler" => {
                let (offset, scale) = (floats(&n, "offset"), floats(&n, "scale"));
                let (off, sc) = (format!("{p}_offset"), format!("{p}_scale"));
                g.initializer.push(f32_init(&off, &[offset.len()], &offset));
                g.initializer.push(f32_init(&sc, &[scale.len()], &scale));
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
                // Selects along the last axis; scikit-learn's inputs are (rows, features).
                let idx = n.input.get(1).cloned().unwrap_or_default();
                nodes.push(node(
                    "Gather",
                    &p,
                    &[&x, &idx],
                    &[&out(0)],
                    vec![int("axis", -1)],
                ));
            }
            "Normalizer" => normalizer(&n, &p, &x, &out(0), &mut nodes, g)?,
            "LinearClassifier" => linear_classifier(&n, &p, &x, &mut nodes, g)?,
            "OneHotEncoder" => {
                let cats = attr(&n, "cats_int64s")
                    .map(|a| a.ints.clone())
                    .unwrap_or_default();
                if cats.is_empty() {
                    return Err("OneHotEncoder with string categories is not supported".into());
                }
                let (c, ax, eq) = (format!("{p}_cats"), format!("{p}_axis"), format!("{p}_eq"));
                g.initializer.push(i64_tensor(&c, &cats));
                g.initializer.push(i64_tensor(&ax, &[-1]));
                let as_int = format!("{p}_int");
                let expanded = format!("{p}_x");
                nodes.push(node(
                    "Cast",
                    &as_int,
                    &[&x],
                    &[&as_int],
                    vec![int("to", DataType::Int64 as i64)],
                ));
                nodes.push(node(
                    "Unsqueeze",
                    &expanded,
                    &[&as_int, &ax],
                    &[&expanded],
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
    Ok(())
}

/// `Normalizer`: rows divided by their L1 norm, L2 norm or largest value.
fn normalizer(
    n: &NodeProto,
    p: &str,
    x: &str,
    out: &str,
    nodes: &mut Vec<NodeProto>,
    g: &mut GraphProto,
) -> Result<(), String> {
    let axes = format!("{p}_axes");
    g.initializer.push(i64_tensor(&axes, &[1]));
    let norm = format!("{p}_norm");
    match text(n, "norm", "MAX").as_str() {
        "L1" => {
            let abs = format!("{p}_abs");
            nodes.push(node("Abs", &abs, &[x], &[&abs], vec![]));
            nodes.push(node(
                "ReduceSum",
                &norm,
                &[&abs, &axes],
                &[&norm],
                vec![int("keepdims", 1)],
            ));
        }
        "L2" => {
            let sq = format!("{p}_sq");
            let sum = format!("{p}_sum");
            nodes.push(node("Mul", &sq, &[x, x], &[&sq], vec![]));
            nodes.push(node(
                "ReduceSum",
                &sum,
                &[&sq, &axes],
                &[&sum],
                vec![int("keepdims", 1)],
            ));
            nodes.push(node("Sqrt", &norm, &[&sum], &[&norm], vec![]));
        }
        other => return Err(format!("Normalizer with norm {other:?} is not supported")),
    }
    nodes.push(node(
        "Div",
        &format!("{p}_div"),
        &[x, &norm],
        &[out],
        vec![],
    ));
    Ok(())
}

/// `LinearClassifier`: scores `X·Wᵀ + b`, then the post-transform. With one row of coefficients and two
/// classes the scores are `[-s, s]` (onnxruntime's reading of the binary case), before the transform.
fn linear_classifier(
    n: &NodeProto,
    p: &str,
    x: &str,
    nodes: &mut Vec<NodeProto>,
    g: &mut GraphProto,
) -> Result<(), String> {
    let coefficients = floats(n, "coefficients");
    let intercepts = floats(n, "intercepts");
    let labels = attr(n, "classlabels_ints")
        .map(|a| a.ints.len())
        .or_else(|| attr(n, "classlabels_strings").map(|a| a.strings.len()))
        .unwrap_or(0);
    let rows = intercepts.len().max(1);
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
        .push(f32_init(&w, &[rows, features], &coefficients));
    let mut bias = intercepts.clone();
    bias.resize(rows, 0.0);
    g.initializer.push(f32_init(&b, &[rows], &bias));
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
        g.initializer.push(f32_init(&sign, &[1, 2], &[-1.0, 1.0]));
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
    let labels = attr(&n, "classlabels_int64s")
        .map(|a| a.ints.len())
        .or_else(|| attr(&n, "classlabels_strings").map(|a| a.strings.len()))
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
