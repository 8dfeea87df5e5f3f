//! TorchScript archives (`torch.jit.save`): a zip whose `code/` directory holds the program as TorchScript
//! source, compiled and run by `torch.jit.load` with no Python involved. Its pickles (`data.pkl`,
//! `constants.pkl`, the `*.debug_pkl` source maps) name TorchScript classes (`__torch__.*`) and TorchScript's
//! own list builders, which the allow-list admits; the program itself is what can reach the host. This module
//! reads the code as text and reports what leaves the tensor world:
//! - operators outside the built-in namespaces (`ops.my_ns.op`): native code from a library the loading
//!   process must have loaded, which the file cannot show;
//! - custom C++ classes (`torch.classes.ns.Class`), the same;
//! - `from_file`, which maps any host file into a tensor.
//!
//! Built-in namespaces (`aten`, `prim`, `quantized`, …) only compute.

use aegis_core::{Finding, RuleDoc, Severity};
use aegis_formats::zip::ZipArchive;
use aegis_formats::Blob;
use serde_json::json;

use crate::Ctx;

/// A TorchScript program that reaches outside computation.
pub(crate) const HOST_ACCESS: RuleDoc = RuleDoc {
    id: "AEG-SCAN-112",
    name: "torchscript-host-access",
    severity: Severity::High,
    summary: "TorchScript program calls custom native code or reads host files",
    why: "`torch.jit.load` compiles and runs the archive's `code/` without Python. Built-in operators only \
          compute, but operators of other namespaces and custom classes are native code from a library the \
          loading process registered (whatever it does is not in the file), and `from_file` maps any host file \
          into a tensor, whose values the model's outputs can then leak.",
    fix: "Check which library provides the custom operators and that it is one you trust; do not serve a \
          TorchScript model that reads host files. Prefer exporting the weights as safetensors.",
    atlas: &["AML.T0010.003", "AML.T0011.000"],
    cwe: &[829, 73],
};

/// Rules of this module.
pub(crate) const RULES: &[&RuleDoc] = &[&HOST_ACCESS];

/// Operator namespaces built into PyTorch.
const BUILTIN_NAMESPACES: &[&str] = &[
    "aten",
    "prim",
    "quantized",
    "_quantized",
    "quantized_decomposed",
    "profiler",
    "_caffe2",
    "prepacked",
    "mkldnn",
    "mkldnn_prepacked",
    "xnnpack",
    "sparse",
    "_test",
    "cuda",
    "fbgemm",
    // PyTorch's own domain libraries, whose scripted models (detection, audio) call their kernels.
    "torchvision",
    "torchaudio",
    "torchtext",
];

/// Whether a custom-class or operator namespace is PyTorch's own.
pub(crate) fn builtin_namespace(namespace: &str) -> bool {
    BUILTIN_NAMESPACES.contains(&namespace)
}

/// Code members read per archive, and bytes per member.
const MAX_CODE_MEMBERS: usize = 4096;
const MAX_CODE_BYTES: u64 = 4 << 20;

/// Scan the `code/` members of a TorchScript archive (one with a `constants.pkl` beside `code/`).
pub(crate) fn check_archive(ctx: &mut Ctx<'_>, blob: &mut dyn Blob, archive: &ZipArchive) {
    let is_torchscript = archive
        .entries
        .iter()
        .any(|e| e.name == "constants.pkl" || e.name.ends_with("/constants.pkl"));
    if !is_torchscript {
        return;
    }
    let code = archive
        .entries
        .iter()
        .filter(|e| e.name.contains("code/") && e.name.ends_with(".py"))
        .take(MAX_CODE_MEMBERS);
    let members = archive
        .entries
        .iter()
        .filter(|e| e.name.contains("code/") && e.name.ends_with(".py"))
        .count();
    if members > MAX_CODE_MEMBERS {
        ctx.report(
            &crate::engine_rules::LIMIT_HIT,
            None,
            format!(
                "{members} TorchScript code members; only the first {MAX_CODE_MEMBERS} were read"
            ),
            json!({ "limit": "torchscript_code_members", "value": MAX_CODE_MEMBERS }),
        );
    }
    for entry in code {
        let Ok(mut reader) = entry.reader(blob, MAX_CODE_BYTES) else {
            continue;
        };
        let mut bytes = Vec::new();
        if std::io::Read::read_to_end(&mut reader, &mut bytes).is_err() {
            continue;
        }
        if entry.uncompressed_size > MAX_CODE_BYTES {
            let location = ctx.location().clone().member(&entry.name);
            ctx.emit(
                Finding::new(
                    &crate::engine_rules::LIMIT_HIT,
                    location,
                    format!(
                        "TorchScript code of {} bytes; only the first {MAX_CODE_BYTES} were read",
                        entry.uncompressed_size
                    ),
                )
                .with_evidence(
                    json!({ "limit": "torchscript_code_bytes", "value": MAX_CODE_BYTES }),
                ),
            );
        }
        let text = String::from_utf8_lossy(&bytes);
        for (what, line) in host_access(&text) {
            let location = ctx.location().clone().member(&entry.name);
            ctx.emit(
                Finding::new(
                    &HOST_ACCESS,
                    location,
                    format!("TorchScript {what} (line {line})"),
                )
                .with_evidence(json!({ "member": entry.name, "line": line, "what": what })),
            );
        }
    }
}

/// The source with white space around `.` removed (`ops . evil\n  .run` is `ops.evil.run` to the TorchScript
/// lexer); newlines removed that way are put back at the next line break, so line numbers stay close.
fn join_attribute_chains(code: &str) -> String {
    let mut out = String::with_capacity(code.len());
    let mut pending_newlines = 0usize;
    let mut chars = code.chars().peekable();
    while let Some(c) = chars.next() {
        if !c.is_whitespace() {
            out.push(c);
            continue;
        }
        let mut run = String::from(c);
        while let Some(&n) = chars.peek() {
            if !n.is_whitespace() {
                break;
            }
            run.push(n);
            chars.next();
        }
        if out.ends_with('.') || chars.peek() == Some(&'.') {
            pending_newlines += run.matches('\n').count();
            continue;
        }
        if run.contains('\n') {
            out.extend(std::iter::repeat_n('\n', pending_newlines));
            pending_newlines = 0;
        }
        out.push_str(&run);
    }
    out
}

/// What in a TorchScript source leaves computation, with 1-based line numbers (one finding per distinct
/// thing).
fn host_access(code: &str) -> Vec<(String, usize)> {
    let code = join_attribute_chains(code);
    let mut found: Vec<(String, usize)> = Vec::new();
    let mut push = |what: String, line: usize| {
        if !found.iter().any(|(w, _)| *w == what) {
            found.push((what, line));
        }
    };
    for (i, line) in code.lines().enumerate() {
        let line_no = i + 1;
        for (at, _) in line.match_indices("ops.") {
            let preceded = line[..at]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_alphanumeric() || c == '_');
            if preceded {
                continue;
            }
            let rest = &line[at + 4..];
            let namespace: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            let op: String = rest[namespace.len()..]
                .strip_prefix('.')
                .unwrap_or_default()
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if op == "from_file" {
                push(
                    format!("maps a host file into a tensor (`ops.{namespace}.{op}`)"),
                    line_no,
                );
            } else if !namespace.is_empty() && !BUILTIN_NAMESPACES.contains(&namespace.as_str()) {
                push(
                    format!("calls custom operator `ops.{namespace}.{op}` (native code outside PyTorch)"),
                    line_no,
                );
            }
        }
        for (at, _) in line.match_indices("torch.classes.") {
            let class: String = line[at + "torch.classes.".len()..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == '.')
                .collect();
            let namespace = class.split('.').next().unwrap_or_default();
            if !builtin_namespace(namespace) {
                push(
                    format!("uses custom C++ class `torch.classes.{class}`"),
                    line_no,
                );
            }
        }
        if line.contains("torch.from_file(") {
            push(
                "maps a host file into a tensor (`torch.from_file`)".to_owned(),
                line_no,
            );
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_operators_pass_and_host_access_is_found() {
        let honest = "class Linear(Module):\n  def forward(self, input: Tensor) -> Tensor:\n    \
                      _0 = ops.aten.linear(input, self.weight, self.bias)\n    return ops.prim.NumToTensor(1)\n";
        assert!(host_access(honest).is_empty());
        let evil = "class M(Module):\n  def forward(self, x: Tensor) -> Tensor:\n    \
                    y = ops.my_ns.run(x)\n    z = torch.from_file(\"/etc/passwd\", False, 64)\n    \
                    w = torch.classes.acme.Shell()\n    return ops.my_ns.run(y)\n";
        let found = host_access(evil);
        assert_eq!(found.len(), 3, "{found:?}");
        assert!(found[0].0.contains("ops.my_ns.run") && found[0].1 == 3);
        assert!(found[1].0.contains("from_file"));
        assert!(found[2].0.contains("torch.classes.acme.Shell"));
        assert!(
            host_access("x = myops.other.thing(1)\n").is_empty(),
            "not the ops namespace"
        );
        let spaced = "    y = (ops .evil\n      . run)(x)\n    return y\n";
        let found = host_access(spaced);
        assert!(found[0].0.contains("ops.evil.run"), "{found:?}");
        let quantized = "    _0 = __torch__.torch.classes.quantized.LinearPackedParamsBase\n    \
                         return ops.quantized.linear(x, _0, 1.0, 0)\n    z = ops.torchvision.nms(b, s, 0.5)\n";
        assert!(
            host_access(quantized).is_empty(),
            "{:?}",
            host_access(quantized)
        );
    }
}
