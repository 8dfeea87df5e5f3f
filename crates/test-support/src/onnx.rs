//! ONNX model writers (honest exports and crafted ones) and their corpus cases, plus [`Proto`], a
//! hand-written protobuf wire-format encoder shared with the SavedModel writers.
//!
//! Field numbers follow `onnx.proto`; fields are written in field-number order as the C++ and Python
//! serializers do. Malicious models only *name* files (`/etc/passwd`) or domains; nothing is ever loaded.

use crate::Case;

/// A protobuf message under construction, encoded by hand (no schema, no derive).
#[derive(Debug, Default, Clone)]
pub struct Proto {
    buf: Vec<u8>,
}

impl Proto {
    /// An empty message.
    pub fn new() -> Self {
        Proto::default()
    }

    fn key(&mut self, field: u32, wire_type: u8) {
        push_varint(
            &mut self.buf,
            (u64::from(field) << 3) | u64::from(wire_type),
        );
    }

    /// A varint field (int32/int64/uint64/bool/enum; negative values as ten-byte two's complement).
    pub fn varint(mut self, field: u32, value: i64) -> Self {
        self.key(field, 0);
        push_varint(&mut self.buf, value as u64);
        self
    }

    /// A length-delimited field.
    pub fn bytes(mut self, field: u32, data: &[u8]) -> Self {
        self.key(field, 2);
        push_varint(&mut self.buf, data.len() as u64);
        self.buf.extend_from_slice(data);
        self
    }

    /// A string field.
    pub fn string(self, field: u32, s: &str) -> Self {
        self.bytes(field, s.as_bytes())
    }

    /// Repeated string field.
    pub fn strings(mut self, field: u32, items: &[&str]) -> Self {
        for s in items {
            self = self.string(field, s);
        }
        self
    }

    /// An embedded message field.
    pub fn message(self, field: u32, m: &Proto) -> Self {
        self.bytes(field, &m.buf)
    }

    /// A 32-bit float field.
    pub fn float(mut self, field: u32, value: f32) -> Self {
        self.key(field, 5);
        self.buf.extend_from_slice(&value.to_le_bytes());
        self
    }

    /// A packed repeated int64 field.
    pub fn packed_ints(self, field: u32, values: &[i64]) -> Self {
        let mut payload = Vec::new();
        for v in values {
            push_varint(&mut payload, *v as u64);
        }
        self.bytes(field, &payload)
    }

    /// The encoded bytes.
    pub fn finish(self) -> Vec<u8> {
        self.buf
    }

    /// The encoded bytes so far.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }
}

/// Append a base-128 varint.
pub fn push_varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

const FLOAT: i64 = 1;

/// A float tensor with inline `raw_data`.
pub fn tensor(name: &str, dims: &[i64]) -> Proto {
    let n: i64 = dims.iter().product();
    let raw: Vec<u8> = (0..n)
        .flat_map(|i| ((i % 7) as f32 * 0.01).to_le_bytes())
        .collect();
    Proto::new()
        .packed_ints(1, dims)
        .varint(2, FLOAT)
        .string(8, name)
        .bytes(9, &raw)
}

/// A float tensor whose data lives in an external file described by `entries`.
pub fn external_tensor(name: &str, dims: &[i64], entries: &[(&str, &str)]) -> Proto {
    let mut t = Proto::new()
        .packed_ints(1, dims)
        .varint(2, FLOAT)
        .string(8, name);
    for (k, v) in entries {
        t = t.message(13, &Proto::new().string(1, k).string(2, v));
    }
    t.varint(14, 1)
}

/// A graph input/output description (`ValueInfoProto` with a float tensor type).
fn value_info(name: &str, dims: &[i64]) -> Proto {
    let mut shape = Proto::new();
    for d in dims {
        shape = shape.message(1, &Proto::new().varint(1, *d));
    }
    let tensor_type = Proto::new().varint(1, FLOAT).message(2, &shape);
    Proto::new()
        .string(1, name)
        .message(2, &Proto::new().message(1, &tensor_type))
}

/// A node.
pub fn node(
    op: &str,
    domain: &str,
    name: &str,
    inputs: &[&str],
    outputs: &[&str],
    attrs: &[Proto],
) -> Proto {
    let mut n = Proto::new()
        .strings(1, inputs)
        .strings(2, outputs)
        .string(3, name)
        .string(4, op);
    for a in attrs {
        n = n.message(5, a);
    }
    if !domain.is_empty() {
        n = n.string(7, domain);
    }
    n
}

/// An integer attribute.
pub fn attr_int(name: &str, value: i64) -> Proto {
    Proto::new().string(1, name).varint(3, value).varint(20, 2)
}

/// A float attribute.
pub fn attr_float(name: &str, value: f32) -> Proto {
    Proto::new().string(1, name).float(2, value).varint(20, 1)
}

/// A tensor attribute.
pub fn attr_tensor(name: &str, t: &Proto) -> Proto {
    Proto::new().string(1, name).message(5, t).varint(20, 4)
}

/// A graph attribute (`If` branches, `Loop` bodies).
pub fn attr_graph(name: &str, g: &Proto) -> Proto {
    Proto::new().string(1, name).message(6, g).varint(20, 5)
}

/// A graph from nodes, initializers, inputs and outputs.
pub fn graph(
    name: &str,
    nodes: &[Proto],
    initializers: &[Proto],
    inputs: &[(&str, &[i64])],
    outputs: &[(&str, &[i64])],
) -> Proto {
    let mut g = Proto::new();
    for n in nodes {
        g = g.message(1, n);
    }
    g = g.string(2, name);
    for t in initializers {
        g = g.message(5, t);
    }
    for (n, d) in inputs {
        g = g.message(11, &value_info(n, d));
    }
    for (n, d) in outputs {
        g = g.message(12, &value_info(n, d));
    }
    g
}

/// A model around `graph`, as `torch.onnx.export` writes it.
pub fn model(graph: &Proto, opsets: &[(&str, i64)], functions: &[Proto]) -> Vec<u8> {
    let mut m = Proto::new()
        .varint(1, 8)
        .string(2, "pytorch")
        .string(3, "2.3.1")
        .message(7, graph);
    for (domain, version) in opsets {
        let mut o = Proto::new();
        if !domain.is_empty() {
            o = o.string(1, domain);
        }
        m = m.message(8, &o.varint(2, *version));
    }
    for f in functions {
        m = m.message(25, f);
    }
    m.finish()
}

/// The MLP's weights with `fc1.weight` replaced by `w1`.
fn mlp_graph(w1: Proto, extra_nodes: &[Proto]) -> Proto {
    let mut nodes = vec![
        node(
            "Gemm",
            "",
            "/fc1/Gemm",
            &["input", "fc1.weight", "fc1.bias"],
            &["/fc1/Gemm_output_0"],
            &[
                attr_float("alpha", 1.0),
                attr_float("beta", 1.0),
                attr_int("transB", 1),
            ],
        ),
        node(
            "Relu",
            "",
            "/relu/Relu",
            &["/fc1/Gemm_output_0"],
            &["/relu/Relu_output_0"],
            &[],
        ),
        node(
            "Gemm",
            "",
            "/fc2/Gemm",
            &["/relu/Relu_output_0", "fc2.weight", "fc2.bias"],
            &["output"],
            &[
                attr_float("alpha", 1.0),
                attr_float("beta", 1.0),
                attr_int("transB", 1),
            ],
        ),
    ];
    nodes.extend_from_slice(extra_nodes);
    let inits = [
        w1,
        tensor("fc1.bias", &[8]),
        tensor("fc2.weight", &[3, 8]),
        tensor("fc2.bias", &[3]),
    ];
    graph(
        "main_graph",
        &nodes,
        &inits,
        &[("input", &[1, 4])],
        &[("output", &[1, 3])],
    )
}

/// An honest two-layer MLP (Gemm, Relu, Gemm) with initializers, as PyTorch exports it.
pub fn honest_mlp() -> Vec<u8> {
    model(
        &mlp_graph(tensor("fc1.weight", &[8, 4]), &[]),
        &[("", 17)],
        &[],
    )
}

/// The MLP with `fc1.weight` stored externally at `location`.
pub fn external_data(location: &str) -> Vec<u8> {
    external_data_entries(&[("location", location), ("offset", "0"), ("length", "128")])
}

/// The MLP with `fc1.weight` stored externally, described by `entries`.
pub fn external_data_entries(entries: &[(&str, &str)]) -> Vec<u8> {
    model(
        &mlp_graph(external_tensor("fc1.weight", &[8, 4], entries), &[]),
        &[("", 17)],
        &[],
    )
}

/// The MLP plus a node of operator domain `domain` (and an opset import of it).
pub fn custom_domain_op(domain: &str) -> Vec<u8> {
    let extra = node(
        "RunCommand",
        domain,
        "/payload/RunCommand",
        &["output"],
        &["unused"],
        &[],
    );
    model(
        &mlp_graph(tensor("fc1.weight", &[8, 4]), &[extra]),
        &[("", 17), (domain, 1)],
        &[],
    )
}

/// The MLP with an opset import of `domain` that no node uses.
pub fn unused_opset(domain: &str) -> Vec<u8> {
    model(
        &mlp_graph(tensor("fc1.weight", &[8, 4]), &[]),
        &[("", 17), (domain, 1)],
        &[],
    )
}

/// A scikit-learn style model: `ai.onnx.ml` and `com.microsoft` operators.
pub fn sklearn_like() -> Vec<u8> {
    let scaler = node(
        "Scaler",
        "ai.onnx.ml",
        "Scaler",
        &["input"],
        &["scaled"],
        &[],
    );
    let linear = node(
        "LinearClassifier",
        "ai.onnx.ml",
        "LinearClassifier",
        &["scaled"],
        &["label", "probs"],
        &[],
    );
    let gelu = node(
        "FastGelu",
        "com.microsoft",
        "FastGelu",
        &["probs"],
        &["output"],
        &[],
    );
    let g = graph(
        "ONNX(LogisticRegression)",
        &[scaler, linear, gelu],
        &[],
        &[("input", &[1, 4])],
        &[("output", &[1, 3])],
    );
    let mut bytes = Proto::new()
        .varint(1, 8)
        .string(2, "skl2onnx")
        .string(3, "1.16.0")
        .string(4, "ai.onnx");
    bytes = bytes.varint(5, 0).message(7, &g);
    for (d, v) in [("ai.onnx.ml", 1), ("", 17), ("com.microsoft", 1)] {
        let mut o = Proto::new();
        if !d.is_empty() {
            o = o.string(1, d);
        }
        bytes = bytes.message(8, &o.varint(2, v));
    }
    bytes.finish()
}

/// A branch graph for `If`: one initializer (optionally external at `location`) added to the input.
fn branch(name: &str, location: Option<&str>) -> Proto {
    let t = match location {
        Some(loc) => external_tensor(
            &format!("{name}_bias"),
            &[3],
            &[("location", loc), ("offset", "0"), ("length", "12")],
        ),
        None => tensor(&format!("{name}_bias"), &[3]),
    };
    let add = node(
        "Add",
        "",
        &format!("{name}/Add"),
        &["output", &format!("{name}_bias")],
        &[&format!("{name}_out")],
        &[],
    );
    graph(
        name,
        &[add],
        &[t],
        &[],
        &[(&format!("{name}_out"), &[1, 3])],
    )
}

fn if_model(then_location: Option<&str>) -> Vec<u8> {
    let cond = node(
        "Constant",
        "",
        "/cond",
        &[],
        &["cond"],
        &[attr_tensor(
            "value",
            &Proto::new().varint(2, 9).string(8, "c").bytes(9, &[1]),
        )],
    );
    let iff = node(
        "If",
        "",
        "/If",
        &["cond"],
        &["final"],
        &[
            attr_graph("then_branch", &branch("then_branch", then_location)),
            attr_graph("else_branch", &branch("else_branch", None)),
        ],
    );
    model(
        &mlp_graph(tensor("fc1.weight", &[8, 4]), &[cond, iff]),
        &[("", 17)],
        &[],
    )
}

/// An `If` whose `then_branch` initializer loads external data from `location`.
pub fn if_subgraph_external(location: &str) -> Vec<u8> {
    if_model(Some(location))
}

/// An `If` with clean branches.
pub fn if_subgraph_clean() -> Vec<u8> {
    if_model(None)
}

/// A model calling a model-local function in `pkg.onnxscript.torch_lib` (as the dynamo exporter writes);
/// with `custom_inside`, the function body hides a node of a custom domain.
pub fn local_function(custom_inside: bool) -> Vec<u8> {
    let mut body = vec![node("Relu", "", "n0", &["self"], &["return_val"], &[])];
    let mut f_opsets = vec![("", 17)];
    if custom_inside {
        body.push(node(
            "Exec",
            "com.evil.native",
            "n1",
            &["return_val"],
            &["ignored"],
            &[],
        ));
        f_opsets.push(("com.evil.native", 1));
    }
    let mut f = Proto::new()
        .string(1, "aten_relu")
        .strings(4, &["self"])
        .strings(5, &["return_val"]);
    for n in &body {
        f = f.message(7, n);
    }
    for (d, v) in f_opsets {
        let mut o = Proto::new();
        if !d.is_empty() {
            o = o.string(1, d);
        }
        f = f.message(9, &o.varint(2, v));
    }
    f = f.string(10, "pkg.onnxscript.torch_lib");
    let call = node(
        "aten_relu",
        "pkg.onnxscript.torch_lib",
        "/relu2",
        &["output"],
        &["relu2_out"],
        &[],
    );
    let g = mlp_graph(tensor("fc1.weight", &[8, 4]), &[call]);
    model(&g, &[("", 17), ("pkg.onnxscript.torch_lib", 1)], &[f])
}

/// Malicious and benign cases of this format.
pub fn corpus() -> Vec<Case> {
    const TRAVERSAL: &str = "external data location outside the model directory";
    const CUSTOM: &str = "operator from a custom domain (needs a native custom-op library)";
    vec![
        Case::malicious(
            "onnx/external-data-parent-traversal",
            "model.onnx",
            external_data("../../etc/passwd"),
            "AEG-SCAN-500",
            TRAVERSAL,
        ),
        Case::benign(
            "onnx/external-data-sidecar",
            "model.onnx",
            external_data("model.onnx.data"),
            TRAVERSAL,
        ),
        Case::malicious(
            "onnx/external-data-absolute",
            "model.onnx",
            external_data("/etc/passwd"),
            "AEG-SCAN-500",
            TRAVERSAL,
        ),
        Case::benign("onnx/honest-mlp", "model.onnx", honest_mlp(), TRAVERSAL),
        Case::malicious(
            "onnx/external-data-windows-drive",
            "model.onnx",
            external_data("C:\\Windows\\win.ini"),
            "AEG-SCAN-500",
            TRAVERSAL,
        ),
        Case::benign(
            "onnx/external-data-subdirectory",
            "model.onnx",
            external_data("weights/fc1.bin"),
            TRAVERSAL,
        ),
        Case::malicious(
            "onnx/if-subgraph-traversal",
            "model.onnx",
            if_subgraph_external("../../../root/.ssh/id_rsa"),
            "AEG-SCAN-500",
            TRAVERSAL,
        ),
        Case::benign(
            "onnx/if-subgraph-clean",
            "model.onnx",
            if_subgraph_clean(),
            TRAVERSAL,
        ),
        Case::malicious(
            "onnx/custom-domain-op",
            "model.onnx",
            custom_domain_op("com.evil.ops"),
            "AEG-SCAN-502",
            CUSTOM,
        ),
        Case::benign(
            "onnx/sklearn-ml-domains",
            "model.onnx",
            sklearn_like(),
            CUSTOM,
        ),
        Case::malicious(
            "onnx/function-body-custom-op",
            "model.onnx",
            local_function(true),
            "AEG-SCAN-502",
            CUSTOM,
        ),
        Case::benign(
            "onnx/local-function-torchlib",
            "model.onnx",
            local_function(false),
            CUSTOM,
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_and_fields_encode_like_protobuf() {
        assert_eq!(Proto::new().varint(1, 150).finish(), vec![0x08, 0x96, 0x01]);
        assert_eq!(
            Proto::new().string(2, "testing").finish()[..2],
            [0x12, 0x07]
        );
        assert_eq!(Proto::new().varint(1, -1).finish().len(), 11);
    }

    #[test]
    fn models_start_with_ir_version() {
        for case in corpus() {
            assert_eq!(case.bytes[0], 0x08, "{}", case.name);
        }
    }
}
