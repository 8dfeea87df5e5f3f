//! The forward engine: every ONNX model the project accepts is run by tract, including scikit-learn exports
//! with `ai.onnx.ml` operators. Gradients, where a graph allows them, come from [`crate::onnx`].
//!
//! tract optimises the graph once for a symbolic batch size; each `predict_proba` is one plan run. The model
//! has no gradients, so assessments fall back to the black-box attacks. Of a graph's outputs the first float
//! tensor of rank 2 is taken as class probabilities (skl2onnx writes `label` then `probabilities`; export with
//! `zipmap=False`, as a map-typed output cannot be read as a tensor).

use std::fmt;
use std::path::{Path, PathBuf};

use aegis_formats::onnx::proto::{GraphProto, ModelProto};
use prost::Message;
use tract_onnx::prelude::*;

use crate::error::check_shape;
use crate::{onnx, onnx_file, Error, Model};

type Plan = SimplePlan<TypedFact, Box<dyn TypedOp>, Graph<TypedFact, Box<dyn TypedOp>>>;

/// An ONNX model run by tract.
pub struct TractModel {
    path: PathBuf,
    plan: Plan,
    n_features: usize,
    n_classes: usize,
    output: String,
    probabilities: bool,
    /// How a single output column is read as two classes, when it was widened.
    reading: Option<&'static str>,
}

impl fmt::Debug for TractModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TractModel")
            .field("path", &self.path)
            .field("n_features", &self.n_features)
            .field("n_classes", &self.n_classes)
            .finish()
    }
}

fn load_err(path: &Path, reason: impl fmt::Display) -> Error {
    onnx_file::load_err(path, reason.to_string())
}

impl TractModel {
    /// Load and optimise an ONNX file.
    pub fn load(path: &Path) -> Result<Self, Error> {
        Self::from_bytes(&onnx_file::read_model_file(path)?, path)
    }

    /// Load and optimise an ONNX model from its bytes; `path` names it in errors.
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Self, Error> {
        Self::from_proto(&onnx_file::decode_model(bytes, path)?, path)
    }

    /// How a single output column is read as two classes, when the graph answered with one column.
    pub fn reading(&self) -> Option<&'static str> {
        self.reading
    }

    /// Load and optimise a model decoded by `aegis-formats`. tract is handed that model re-encoded, so it
    /// sees exactly the fields our decoder read and checked, never the file's own bytes.
    pub fn from_proto(proto: &ModelProto, path: &Path) -> Result<Self, Error> {
        let answer = crate::select::answer_graph(proto, path)?;
        let reading = answer.reading;
        let proto = &answer.proto;
        let graph = onnx_file::checked_graph(proto, path)?;
        validate_tree_ensembles(graph).map_err(|why| load_err(path, why))?;
        let input = onnx_file::sole_input(graph, path)?;
        let n_features = match onnx::input_shape(input, path)? {
            (dims, candle_core::DType::F32) if dims.len() == 1 => dims[0],
            (dims, dtype) => {
                return Err(load_err(
                    path,
                    format!(
                        "input {} is {dtype:?} {dims:?} per row; expected a float vector",
                        input.name
                    ),
                ))
            }
        };
        let output = graph
            .output
            .first()
            .map(|o| o.name.clone())
            .ok_or_else(|| load_err(path, "the graph has no output"))?;

        // tract's graph analysis runs on untrusted input: a panic in it becomes a load error.
        let bytes = proto.encode_to_vec();
        let built = std::panic::catch_unwind(|| Self::build(&bytes, path, n_features, output))
            .unwrap_or_else(|_| {
                Err(load_err(
                    path,
                    "tract failed on this graph (invalid shapes or attributes)",
                ))
            })?;
        Ok(TractModel { reading, ..built })
    }

    fn build(bytes: &[u8], path: &Path, n_features: usize, output: String) -> Result<Self, Error> {
        let mut model = tract_onnx::onnx()
            .model_for_read(&mut &*bytes)
            .map_err(|e| load_err(path, format!("{e:#}")))?;
        let batch = model.symbols.sym("N");
        model
            .set_input_fact(
                0,
                InferenceFact::dt_shape(
                    f32::datum_type(),
                    tvec!(batch.to_dim(), n_features.to_dim()),
                ),
            )
            .map_err(|e| load_err(path, format!("{e:#}")))?;
        model
            .set_output_names([output.as_str()])
            .map_err(|e| load_err(path, format!("{e:#}")))?;
        let plan = model
            .into_optimized()
            .and_then(|m| m.into_runnable())
            .map_err(|e| load_err(path, format!("tract cannot run this graph: {e:#}")))?;
        let mut m = TractModel {
            path: path.to_path_buf(),
            plan,
            n_features,
            n_classes: 0,
            output,
            probabilities: true,
            reading: None,
        };
        let probe: Vec<f32> = (0..2 * n_features).map(|i| (i % 7) as f32 / 7.0).collect();
        let out = m.run(&probe, 2)?;
        if out.len() < 4 || out.len() % 2 != 0 {
            return Err(load_err(
                path,
                format!(
                    "output {} gives {} values for 2 rows; expected (rows, classes >= 2)",
                    m.output,
                    out.len()
                ),
            ));
        }
        m.n_classes = out.len() / 2;
        m.probabilities = onnx::looks_like_probabilities(&out, m.n_classes);
        Ok(m)
    }

    fn run(&self, x: &[f32], n: usize) -> Result<Vec<f32>, Error> {
        let input = tract_ndarray::Array2::from_shape_vec((n, self.n_features), x.to_vec())
            .map_err(|e| Error::Eval(e.to_string()))?;
        let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.plan.run(tvec!(Tensor::from(input).into()))
        }));
        let out = match run {
            Ok(result) => {
                result.map_err(|e| Error::Eval(format!("{}: {e:#}", self.path.display())))?
            }
            Err(_) => {
                return Err(Error::Eval(format!(
                    "{}: tract failed while running the graph",
                    self.path.display()
                )))
            }
        };
        let first = out
            .first()
            .ok_or_else(|| Error::Eval(format!("{}: no output", self.path.display())))?;
        let view = first
            .to_array_view::<f32>()
            .map_err(|e| Error::Eval(format!("{}: {e:#}", self.path.display())))?;
        Ok(view.iter().copied().collect())
    }
}

/// tract evaluates tree ensembles with unchecked indexing (class ids into the output, child ids into the
/// node table) and follows child links without a step bound, so a crafted model could read or write out of
/// bounds or loop forever. Before tract sees one, every tree must be well formed: per tree, node ids are
/// exactly 0..n, every branch's children are nodes of the same tree with larger ids (so every walk ends at a
/// leaf), leaves name nodes of their tree, and class (or target) ids are below the number of classes.
fn validate_tree_ensembles(graph: &GraphProto) -> Result<(), String> {
    use std::collections::HashMap;
    for n in graph
        .node
        .iter()
        .filter(|n| n.op_type.starts_with("TreeEnsemble"))
    {
        let ints = |name: &str| {
            n.attribute
                .iter()
                .find(|a| a.name == name)
                .map(|a| a.ints.clone())
                .unwrap_or_default()
        };
        let strings = |name: &str| {
            n.attribute
                .iter()
                .find(|a| a.name == name)
                .map(|a| a.strings.clone())
                .unwrap_or_default()
        };
        let bad = |why: String| format!("{} node {:?}: {why}", n.op_type, n.name);
        let classifier = n.op_type == "TreeEnsembleClassifier";
        let (prefix, n_outputs) = if classifier {
            (
                "class",
                ints("classlabels_int64s")
                    .len()
                    .max(strings("classlabels_strings").len()),
            )
        } else {
            let targets = n
                .attribute
                .iter()
                .find(|a| a.name == "n_targets")
                .map_or(1, |a| a.i);
            (
                "target",
                usize::try_from(targets).map_err(|_| bad(format!("n_targets {targets}")))?,
            )
        };
        let (tree_ids, node_ids, modes) = (
            ints("nodes_treeids"),
            ints("nodes_nodeids"),
            strings("nodes_modes"),
        );
        let (true_ids, false_ids) = (ints("nodes_truenodeids"), ints("nodes_falsenodeids"));
        let count = tree_ids.len();
        if [node_ids.len(), modes.len(), true_ids.len(), false_ids.len()]
            .iter()
            .any(|&l| l != count)
        {
            return Err(bad("node attribute lists differ in length".into()));
        }
        // Per tree: the set of node ids, which must be exactly 0..n.
        let mut trees: HashMap<i64, Vec<i64>> = HashMap::new();
        for i in 0..count {
            trees.entry(tree_ids[i]).or_default().push(node_ids[i]);
        }
        for (tree, ids) in trees.iter_mut() {
            ids.sort_unstable();
            if ids.iter().enumerate().any(|(i, &id)| id != i as i64) {
                return Err(bad(format!(
                    "tree {tree}: node ids are not exactly 0..{}",
                    ids.len()
                )));
            }
        }
        for i in (0..count).filter(|&i| modes[i] != b"LEAF") {
            let size = trees.get(&tree_ids[i]).map_or(0, |v| v.len()) as i64;
            for child in [true_ids[i], false_ids[i]] {
                if child <= node_ids[i] || child >= size {
                    return Err(bad(format!(
                        "tree {} node {}: child {child} is not a later node of the tree",
                        tree_ids[i], node_ids[i]
                    )));
                }
            }
        }
        let (leaf_trees, leaf_nodes, outputs) = (
            ints(&format!("{prefix}_treeids")),
            ints(&format!("{prefix}_nodeids")),
            ints(&format!("{prefix}_ids")),
        );
        if leaf_trees.len() != leaf_nodes.len() || leaf_nodes.len() != outputs.len() {
            return Err(bad("leaf attribute lists differ in length".into()));
        }
        for i in 0..outputs.len() {
            let size = trees.get(&leaf_trees[i]).map_or(0, |v| v.len()) as i64;
            if leaf_nodes[i] < 0 || leaf_nodes[i] >= size {
                return Err(bad(format!(
                    "leaf {i} names node {} outside tree {}",
                    leaf_nodes[i], leaf_trees[i]
                )));
            }
            if outputs[i] < 0 || outputs[i] as usize >= n_outputs {
                return Err(bad(format!(
                    "leaf {i} writes {prefix} {} of {n_outputs}",
                    outputs[i]
                )));
            }
        }
    }
    Ok(())
}

impl Model for TractModel {
    fn n_features(&self) -> usize {
        self.n_features
    }

    fn n_classes(&self) -> usize {
        self.n_classes
    }

    fn predict_proba(&self, x: &[f32], n: usize) -> Result<Vec<f32>, Error> {
        check_shape(x, n, self.n_features)?;
        if n == 0 {
            return Ok(Vec::new());
        }
        let out = self.run(x, n)?;
        if out.len() != n * self.n_classes {
            return Err(Error::Eval(format!(
                "{}: {} outputs for {n} rows",
                self.path.display(),
                out.len()
            )));
        }
        if self.probabilities {
            return Ok(out);
        }
        // Scores: softmax per row.
        let scores =
            candle_core::Tensor::from_vec(out, (n, self.n_classes), &candle_core::Device::Cpu)?;
        crate::grad::softmax_rows(&scores)
    }

    fn describe(&self) -> String {
        match self.reading {
            Some(how) => format!(
                "onnx (tract, black-box; one output column read as two classes: {how}) {}",
                self.path.display()
            ),
            None => format!("onnx (tract, black-box) {}", self.path.display()),
        }
    }
}
