//! Rules over ONNX models: external-data references that leave the model's directory, nonsense external-data
//! ranges, operators from domains that need a custom-op library (native code), and opset imports of unknown
//! domains. Every graph is covered: subgraphs of `If`/`Loop`/`Scan`, training graphs and model-local
//! function bodies (walked by [`aegis_formats::onnx::inventory`]).
//!
//! Assumes loaders resolve `location` relative to the model's directory, as onnx and ONNX Runtime do.

use aegis_core::{RuleDoc, Severity};
use aegis_formats::onnx::{self, ExternalTensor, Inventory};
use aegis_formats::Blob;
use serde_json::json;

/// Operator domains of ONNX itself and of ONNX Runtime's built-in kernels.
const KNOWN_DOMAINS: &[&str] = &[
    "ai.onnx",
    "ai.onnx.ml",
    "ai.onnx.training",
    "ai.onnx.preview.training",
    "com.microsoft",
    "com.microsoft.nchwc",
    "com.microsoft.experimental",
    "org.pytorch.aten",
    "com.ms.internal.nhwc",
];

/// External-data keys onnx and ONNX Runtime understand.
const KNOWN_EXTERNAL_KEYS: &[&str] = &["location", "offset", "length", "checksum"];

/// An external-data location that resolves outside the model's directory.
pub(crate) const EXTERNAL_PATH_ESCAPE: RuleDoc = RuleDoc {
    id: "AEG-SCAN-500",
    name: "onnx-external-data-path-traversal",
    severity: Severity::High,
    summary: "ONNX tensor loads external data from outside the model's directory",
    why: "Tensors may keep their bytes in a side file named by `external_data.location`. An absolute path, a \
          `..` component or a URL makes the loader read any file the victim can read (`/etc/passwd`, SSH keys, \
          cloud credentials) into a weight tensor, from where model outputs or a re-saved model can leak it.",
    fix: "Do not load the model. A legitimate model names side files relative to its own directory (for \
          example `model.onnx.data`); re-export it with `onnx.save_model(..., save_as_external_data=True)`.",
    atlas: &["AML.T0010.003", "AML.T0011.000"],
    cwe: &[22],
};

/// External-data offset/length/keys that make no sense.
pub(crate) const EXTERNAL_BAD_RANGE: RuleDoc = RuleDoc {
    id: "AEG-SCAN-501",
    name: "onnx-external-data-malformed",
    severity: Severity::Medium,
    summary: "ONNX external-data descriptor is malformed",
    why: "Offsets or lengths that are not numbers, negative, overflowing, or descriptors without a location \
          or with keys loaders do not know are never produced by exporters; they probe loader bugs (out-of-range \
          reads, integer overflow) or confuse tools that copy side files.",
    fix: "Re-export the model with a current exporter; do not load it until its external data is explained.",
    atlas: &["AML.T0010.003"],
    cwe: &[20],
};

/// Nodes in a domain that needs a custom-op library.
pub(crate) const CUSTOM_DOMAIN: RuleDoc = RuleDoc {
    id: "AEG-SCAN-502",
    name: "onnx-custom-operator-domain",
    severity: Severity::High,
    summary: "ONNX graph uses operators from a custom domain",
    why: "Operators outside the ONNX and ONNX Runtime domains only run after the user registers a custom-op \
          shared library (`SessionOptions.register_custom_ops_library`): native code shipped with or fetched \
          for the model runs in the loading process.",
    fix: "Find out which library implements the domain and where it comes from; prefer a model exported with \
          standard operators. Never load a custom-op library from an untrusted source.",
    atlas: &["AML.T0010.003", "AML.T0011.000"],
    cwe: &[829],
};

/// Opset import of an unknown domain.
pub(crate) const UNKNOWN_OPSET: RuleDoc = RuleDoc {
    id: "AEG-SCAN-503",
    name: "onnx-unknown-opset-domain",
    severity: Severity::Medium,
    summary: "ONNX model imports an operator set of an unknown domain",
    why: "An opset import of a domain neither ONNX nor ONNX Runtime defines and no model-local function \
          declares announces that the model expects custom operators, and with them a custom-op library.",
    fix: "Check which runtime extension the domain belongs to and whether the model needs it.",
    atlas: &["AML.T0010.003"],
    cwe: &[829],
};

/// Rules of this module.
pub(crate) const RULES: &[&RuleDoc] = &[
    &EXTERNAL_PATH_ESCAPE,
    &EXTERNAL_BAD_RANGE,
    &CUSTOM_DOMAIN,
    &UNKNOWN_OPSET,
];

/// Scan an ONNX model.
pub(crate) fn scan(ctx: &mut crate::Ctx<'_>, blob: &mut dyn Blob, len: u64) {
    let model = match onnx::read_model(blob, len, ctx.limits()) {
        Ok(model) => model,
        Err(err) => {
            ctx.report_parse_error(
                &err,
                &crate::engine_rules::UNREADABLE,
                None,
                "ONNX model could not be decoded",
            );
            return;
        }
    };
    let inv = onnx::inventory(&model, ctx.limits());
    check_inventory(ctx, &inv);
}

/// Apply every ONNX rule to an inventory.
pub(crate) fn check_inventory(ctx: &mut crate::Ctx<'_>, inv: &Inventory) {
    for ext in &inv.external {
        check_external(ctx, ext);
    }
    if inv.external_truncated {
        ctx.report(
            &crate::engine_rules::LIMIT_HIT,
            None,
            "more external-data tensors than max_entries; the rest were not checked",
            json!({ "limit": "max_entries", "checked": inv.external.len() }),
        );
    }
    check_domains(ctx, inv);
    for path in &inv.depth_limited {
        ctx.report(
            &crate::engine_rules::LIMIT_HIT,
            None,
            format!(
                "subgraph `{path}` nested deeper than {} levels was not walked",
                onnx::MAX_GRAPH_DEPTH
            ),
            json!({ "limit": "max_graph_depth", "graph": path }),
        );
    }
}

fn is_known_domain(domain: &str, inv: &Inventory) -> bool {
    KNOWN_DOMAINS.contains(&domain) || inv.function_domains.contains(domain)
}

fn check_domains(ctx: &mut crate::Ctx<'_>, inv: &Inventory) {
    for (domain, usage) in &inv.node_domains {
        if is_known_domain(domain, inv) {
            continue;
        }
        let ops: Vec<&String> = usage.ops.iter().collect();
        ctx.report(
            &CUSTOM_DOMAIN,
            None,
            format!(
                "{} node(s) use operator domain `{domain}` (e.g. `{}` in graph `{}`); loading needs a custom-op library",
                usage.nodes, usage.first.op_type, usage.first.graph
            ),
            json!({
                "domain": domain,
                "nodes": usage.nodes,
                "ops": ops,
                "first_node": usage.first.node,
                "graph": usage.first.graph,
            }),
        );
    }
    let mut reported = std::collections::BTreeSet::new();
    for import in &inv.opset_imports {
        if is_known_domain(&import.domain, inv) || inv.node_domains.contains_key(&import.domain) {
            // Nodes of the domain were already reported (or the domain is known).
            continue;
        }
        if !reported.insert(import.domain.clone()) {
            continue;
        }
        ctx.report(
            &UNKNOWN_OPSET,
            None,
            format!(
                "{} imports opset `{}` version {}, a domain no known runtime defines",
                import.scope, import.domain, import.version
            ),
            json!({ "domain": import.domain, "version": import.version, "scope": import.scope }),
        );
    }
}

fn check_external(ctx: &mut crate::Ctx<'_>, ext: &ExternalTensor) {
    let mut locations = 0;
    let mut problems: Vec<String> = Vec::new();
    for (key, value) in &ext.entries {
        match key.as_str() {
            "location" => {
                locations += 1;
                if let Some(escape) = onnx::path_escape(value) {
                    if escape == onnx::PathEscape::Empty {
                        problems.push("empty location".to_owned());
                        continue;
                    }
                    ctx.report(
                        &EXTERNAL_PATH_ESCAPE,
                        None,
                        format!(
                            "tensor `{}` (graph `{}`) loads its data from `{value}`: {}",
                            ext.tensor,
                            ext.graph,
                            escape.describe()
                        ),
                        json!({
                            "tensor": ext.tensor,
                            "graph": ext.graph,
                            "location": value,
                            "reason": escape.describe(),
                            "data_location": ext.data_location,
                        }),
                    );
                }
            }
            "offset" | "length" => {
                if let Err(why) = parse_size(value) {
                    problems.push(format!("{key} `{value}` {why}"));
                }
            }
            _ if KNOWN_EXTERNAL_KEYS.contains(&key.as_str()) => {}
            _ => problems.push(format!("unknown key `{key}`")),
        }
    }
    if let (Some(offset), Some(length)) = (entry_size(ext, "offset"), entry_size(ext, "length")) {
        if offset
            .checked_add(length)
            .is_none_or(|end| end > i64::MAX as u64)
        {
            problems.push(format!("offset {offset} + length {length} overflows"));
        }
    }
    if ext.data_location == 1 && locations == 0 {
        problems.push("data_location is EXTERNAL but no location is given".to_owned());
    }
    if locations > 1 {
        problems.push(format!(
            "{locations} location entries (loaders disagree on which wins)"
        ));
    }
    if ext.data_location == 1 && ext.raw_data_len > 0 {
        problems.push(format!(
            "also carries {} bytes of inline raw_data",
            ext.raw_data_len
        ));
    }
    if !problems.is_empty() {
        ctx.report(
            &EXTERNAL_BAD_RANGE,
            None,
            format!("tensor `{}` (graph `{}`) has a malformed external-data descriptor: {}", ext.tensor, ext.graph, problems.join("; ")),
            json!({ "tensor": ext.tensor, "graph": ext.graph, "problems": problems, "entries": ext.entries }),
        );
    }
}

fn entry_size(ext: &ExternalTensor, key: &str) -> Option<u64> {
    ext.entries
        .iter()
        .rev()
        .find(|(k, _)| k == key)
        .and_then(|(_, v)| parse_size(v).ok())
}

/// A non-negative decimal size as Python's `int()` reads it (surrounding whitespace allowed).
fn parse_size(value: &str) -> Result<u64, &'static str> {
    let v = value.trim();
    if v.starts_with('-') {
        return Err("is negative");
    }
    let v = v.strip_prefix('+').unwrap_or(v);
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err("is not a decimal number");
    }
    match v.parse::<u64>() {
        Ok(n) if n <= i64::MAX as u64 => Ok(n),
        _ => Err("is too large"),
    }
}

#[cfg(test)]
mod tests {
    use aegis_core::Severity;
    use aegis_test_support::onnx as gen;

    use crate::Scanner;

    fn rules_at_or_above(bytes: &[u8], severity: Severity) -> Vec<String> {
        Scanner::default()
            .scan_bytes("model.onnx", bytes)
            .findings
            .into_iter()
            .filter(|f| f.severity >= severity)
            .map(|f| f.rule.as_str().to_owned())
            .collect()
    }

    #[test]
    fn honest_models_are_clean() {
        for bytes in [
            gen::honest_mlp(),
            gen::sklearn_like(),
            gen::local_function(false),
            gen::if_subgraph_clean(),
        ] {
            assert!(
                rules_at_or_above(&bytes, Severity::Medium).is_empty(),
                "{:?}",
                rules_at_or_above(&bytes, Severity::Info)
            );
        }
        assert!(
            rules_at_or_above(&gen::external_data("model.onnx.data"), Severity::Medium).is_empty()
        );
        assert!(
            rules_at_or_above(&gen::external_data("weights/w1.bin"), Severity::Medium).is_empty()
        );
    }

    #[test]
    fn external_data_traversal_is_high() {
        for loc in [
            "../../etc/passwd",
            "/etc/passwd",
            "C:\\Windows\\win.ini",
            "file:///etc/shadow",
        ] {
            let findings = Scanner::default()
                .scan_bytes("model.onnx", &gen::external_data(loc))
                .findings;
            let f = findings
                .iter()
                .find(|f| f.rule.as_str() == "AEG-SCAN-500")
                .expect(loc);
            assert_eq!(f.severity, Severity::High);
            assert_eq!(f.evidence["location"], loc);
            assert_eq!(f.evidence["tensor"], "fc1.weight");
        }
    }

    #[test]
    fn traversal_inside_an_if_branch_is_found() {
        let rules = rules_at_or_above(
            &gen::if_subgraph_external("../../../root/.ssh/id_rsa"),
            Severity::High,
        );
        assert!(rules.contains(&"AEG-SCAN-500".to_owned()), "{rules:?}");
    }

    #[test]
    fn custom_domains_are_high_unless_declared_by_functions() {
        let rules = rules_at_or_above(&gen::custom_domain_op("com.evil.ops"), Severity::High);
        assert_eq!(rules, vec!["AEG-SCAN-502"]);
        let rules = rules_at_or_above(&gen::local_function(true), Severity::High);
        assert_eq!(rules, vec!["AEG-SCAN-502"]);
    }

    #[test]
    fn unknown_opset_without_nodes_is_medium() {
        let findings = Scanner::default()
            .scan_bytes("model.onnx", &gen::unused_opset("com.example.custom"))
            .findings;
        let f = findings
            .iter()
            .find(|f| f.rule.as_str() == "AEG-SCAN-503")
            .unwrap();
        assert_eq!(f.severity, Severity::Medium);
    }

    #[test]
    fn nonsense_offsets_are_medium() {
        let bytes = gen::external_data_entries(&[
            ("location", "w.bin"),
            ("offset", "-5"),
            ("length", "abc"),
            ("basepath", "/"),
        ]);
        let findings = Scanner::default().scan_bytes("model.onnx", &bytes).findings;
        let f = findings
            .iter()
            .find(|f| f.rule.as_str() == "AEG-SCAN-501")
            .unwrap();
        assert_eq!(f.severity, Severity::Medium);
        assert_eq!(f.evidence["problems"].as_array().unwrap().len(), 3);
        let ok = gen::external_data_entries(&[
            ("location", "w.bin"),
            ("offset", "4096"),
            ("length", "256"),
        ]);
        assert!(rules_at_or_above(&ok, Severity::Low).is_empty());
    }

    #[test]
    fn truncated_model_is_unreadable() {
        let bytes = gen::honest_mlp();
        let cut = &bytes[..bytes.len() - 3];
        let rules = rules_at_or_above(cut, Severity::Medium);
        assert!(rules.contains(&"AEG-SCAN-001".to_owned()), "{rules:?}");
    }

    #[test]
    fn sizes_parse_like_python_int() {
        assert_eq!(super::parse_size(" 42 "), Ok(42));
        assert!(super::parse_size("-1").is_err());
        assert!(super::parse_size("0x10").is_err());
        assert!(super::parse_size("99999999999999999999").is_err());
    }
}
