//! Rules over Keras models: the JSON config of `.keras` v3 archives (`config.json`, reached through the zip
//! module), the `model_config`/`training_config` attributes of Keras 2 `.h5` files, and the per-object
//! metadata of `keras_metadata.pb` (via the SavedModel module). Lambda bytecode, imports of non-Keras
//! modules, references to functions in gadget modules, `TFSMLayer` paths and registered custom objects are
//! reported from [`aegis_formats::keras::analyze_config`]'s items.
//!
//! JSON that is not a Keras config but carries a `chat_template` (`tokenizer_config.json`) is handed to the
//! chat-template rules; other JSON is ignored. For HDF5, a byte search for the config JSON backs up the
//! structured reader, and evidence says which one found it.

use std::collections::BTreeSet;
use std::io::{Read, SeekFrom};

use aegis_core::{RuleDoc, Severity};
use aegis_formats::hdf5;
use aegis_formats::keras::{self, Item};
use aegis_formats::{Blob, Limits};
use serde_json::{json, Value};

/// Modules whose functions or classes give code execution, file or network access when imported and
/// called by a deserializer.
const GADGET_MODULES: &[&str] = &[
    "os",
    "posix",
    "nt",
    "subprocess",
    "builtins",
    "__builtin__",
    "sys",
    "shutil",
    "socket",
    "importlib",
    "runpy",
    "pty",
    "commands",
    "webbrowser",
    "ctypes",
    "pickle",
    "_pickle",
    "marshal",
    "code",
    "codeop",
    "pdb",
    "multiprocessing",
    "asyncio",
    "urllib",
    "requests",
    "http",
    "ftplib",
    "telnetlib",
    "smtplib",
    "pathlib",
    "io",
    "tempfile",
    "shelve",
    "dill",
    "joblib",
];

/// Names in lambda bytecode that suggest code execution, file or network access.
const SUSPICIOUS_NAMES: &[&str] = &[
    "os",
    "system",
    "popen",
    "subprocess",
    "Popen",
    "check_output",
    "run",
    "call",
    "exec",
    "eval",
    "compile",
    "__import__",
    "open",
    "socket",
    "connect",
    "urlopen",
    "requests",
    "getattr",
    "builtins",
    "remove",
    "rmtree",
    "unlink",
    "chmod",
    "environ",
    "marshal",
    "loads",
    "pickle",
    "ctypes",
];

/// Bytes of an HDF5 file searched for a config when the structured read finds none (head and tail).
const RAW_HEAD: u64 = 32 << 20;
const RAW_TAIL: u64 = 8 << 20;
/// JSON candidates the byte search tries to parse (a file with more is a limit hit).
const RAW_CANDIDATES: usize = 1024;
/// Bytes one candidate may span.
const RAW_WINDOW: u64 = 8 << 20;

/// Lambda bytecode.
pub(crate) const LAMBDA: RuleDoc = RuleDoc {
    id: "AEG-SCAN-600",
    name: "keras-lambda-bytecode",
    severity: Severity::Critical,
    summary: "Keras model contains Python bytecode in a Lambda layer",
    why: "A `Lambda` layer stores its function as marshalled Python bytecode. Keras 2, `tf.keras`, and Keras 3 \
          with `safe_mode=False` rebuild and run that code when the model is loaded or called: arbitrary code \
          execution with the privileges of the loading process.",
    fix: "Do not load the model with `safe_mode=False` or with Keras 2. Ask the publisher to replace the Lambda \
          with a registered custom layer whose source you can review.",
    atlas: &["AML.T0010.003", "AML.T0011.000"],
    cwe: &[94, 502],
};

/// Import of a class from a non-Keras module.
pub(crate) const MODULE_IMPORT: RuleDoc = RuleDoc {
    id: "AEG-SCAN-601",
    name: "keras-non-keras-module",
    severity: Severity::High,
    summary: "Keras config makes the loader import a module outside Keras",
    why: "Deserialization imports `module` and instantiates `class_name` from it with attacker-chosen \
          arguments. A module outside Keras runs its import-time code and exposes classes (`subprocess.Popen`) \
          that act on construction.",
    fix: "Make sure the module is your own reviewed code installed from a trusted source; otherwise do not load \
          the model.",
    atlas: &["AML.T0010.003", "AML.T0011.000"],
    cwe: &[502, 829],
};

/// A serialized reference to a function in a non-Keras module.
pub(crate) const FUNCTION_REF: RuleDoc = RuleDoc {
    id: "AEG-SCAN-602",
    name: "keras-function-reference",
    severity: Severity::High,
    summary: "Keras config references a function outside Keras",
    why: "A serialized function (`{\"class_name\": \"function\", \"module\": ...}` or a Lambda with \
          `function_type: function`) is imported by name and called on the layer's input. Pointing it at \
          `os.system`, `builtins.exec` or `subprocess.run` executes commands when the model runs.",
    fix: "Do not load the model unless the referenced module is your own reviewed code.",
    atlas: &["AML.T0010.003", "AML.T0011.000"],
    cwe: &[94, 502],
};

/// `TFSMLayer` loading another SavedModel.
pub(crate) const TFSM_LAYER: RuleDoc = RuleDoc {
    id: "AEG-SCAN-603",
    name: "keras-tfsmlayer-external-savedmodel",
    severity: Severity::High,
    summary: "Keras model loads another SavedModel from a path (TFSMLayer)",
    why: "A `TFSMLayer` loads the TensorFlow SavedModel at `filepath` when the Keras model is loaded, outside \
          the archive and outside `safe_mode`'s checks: whatever graph (file ops, Python ops) sits at that path \
          runs as part of the model.",
    fix: "Check that `filepath` points at a SavedModel you trust and scanned; prefer a self-contained model.",
    atlas: &["AML.T0010.003"],
    cwe: &[22, 829],
};

/// Registered custom objects.
pub(crate) const CUSTOM_OBJECT: RuleDoc = RuleDoc {
    id: "AEG-SCAN-604",
    name: "keras-registered-custom-object",
    severity: Severity::Medium,
    summary: "Keras model needs a registered custom object",
    why: "Custom objects (`register_keras_serializable`) are code outside Keras that must be importable when \
          the model loads; whoever provides that code controls what loading does.",
    fix: "Make sure the custom object's code comes from a trusted, reviewed package.",
    atlas: &["AML.T0010.003"],
    cwe: &[829],
};

/// A layer that reads a file named in its config.
pub(crate) const FILE_READ: RuleDoc = RuleDoc {
    id: "AEG-SCAN-606",
    name: "keras-layer-reads-file",
    severity: Severity::High,
    summary: "Keras layer reads a file or URL named in the model",
    why: "Lookup layers (`StringLookup`, `IntegerLookup`, `TextVectorization`) accept a vocabulary file path \
          and read it when the model is built, through `tf.io.gfile`, which also opens `gs://`, `s3://` and \
          HTTP paths. Honest saved models carry their vocabulary inline. A path in a downloaded model reads \
          files of the loading machine into the model (CVE-2025-12058), where the model's outputs can leak \
          them, or reaches the network.",
    fix: "Do not load the model as is. Replace the vocabulary path by the vocabulary itself, or check that the \
          path is a file shipped with the model and nothing else.",
    atlas: &["AML.T0010.003"],
    cwe: &[22, 73],
};

/// Keras functions that download, read or write files, load other models or turn safety checks off.
const KERAS_DANGEROUS: &[&str] = &[
    "get_file",
    "load_model",
    "load_weights",
    "save_model",
    "enable_unsafe_deserialization",
    "load_img",
    "save_img",
    "image_dataset_from_directory",
    "text_dataset_from_directory",
    "audio_dataset_from_directory",
    "deserialize_keras_object",
    "register_keras_serializable",
];

/// The HDF5 structure could not be read.
pub(crate) const HDF5_UNPARSED: RuleDoc = RuleDoc {
    id: "AEG-SCAN-605",
    name: "hdf5-structure-unreadable",
    severity: Severity::Low,
    summary: "HDF5 structure could not be fully read; a byte search was used instead",
    why: "The superblock or the root group's object header did not parse, so attributes such as \
          `model_config` were looked for by searching raw bytes. A malformed file can hide content from \
          structured readers while the HDF5 library still reads it.",
    fix: "Open the file with a trusted HDF5 tool (`h5dump -A`) in a sandbox and check its root attributes.",
    atlas: &["AML.T0010.003"],
    cwe: &[20],
};

/// Rules of this module.
pub(crate) const RULES: &[&RuleDoc] = &[
    &LAMBDA,
    &MODULE_IMPORT,
    &FUNCTION_REF,
    &TFSM_LAYER,
    &CUSTOM_OBJECT,
    &HDF5_UNPARSED,
    &FILE_READ,
];

/// Scan a JSON document: a Keras config, a tokenizer config with a chat template, or nothing we check.
pub(crate) fn scan_json(ctx: &mut crate::Ctx<'_>, blob: &mut dyn Blob, len: u64) {
    let max = ctx.limits().max_header;
    if len > max {
        ctx.report(
            &crate::engine_rules::LIMIT_HIT,
            None,
            format!(
                "JSON document of {len} bytes is over the {max}-byte limit and was not examined"
            ),
            json!({ "limit": "max_header", "value": len }),
        );
        return;
    }
    let mut bytes = Vec::new();
    let read = blob
        .seek(SeekFrom::Start(0))
        .and_then(|_| blob.take(len).read_to_end(&mut bytes));
    if let Err(err) = read {
        ctx.report(
            &crate::engine_rules::UNREADABLE,
            None,
            format!("JSON could not be read: {err}"),
            json!({ "error": err.to_string() }),
        );
        return;
    }
    // Python's json accepts what serde rejects (NaN, lone surrogates): when strict parsing fails, a chat
    // template is still extracted leniently, since transformers would render it.
    let Ok(value) = keras::parse_json(&bytes, ctx.limits()) else {
        if let Some(text) = lenient_string_value(&bytes, "chat_template") {
            crate::template::check(ctx, &text, None, "chat_template (lenient JSON read)");
        }
        return;
    };
    if keras::looks_like_keras_config(&value) {
        let mut seen = BTreeSet::new();
        let source = format!("{} (Keras config)", ctx.name());
        check_config(ctx, &value, &source, None, "json", &mut seen);
    }
    if let Some(template) = value.get("chat_template") {
        check_chat_template(ctx, template);
    }
}

/// The string value of the first `"key": "…"` in JSON text that a strict parser rejected, unescaped with
/// lone surrogates replaced (as Python's json keeps them, the template text around them still matters).
fn lenient_string_value(bytes: &[u8], key: &str) -> Option<String> {
    let text = String::from_utf8_lossy(bytes);
    let needle = format!("\"{key}\"");
    let after = &text[text.find(&needle)? + needle.len()..];
    let after = after
        .trim_start()
        .strip_prefix(':')?
        .trim_start()
        .strip_prefix('"')?;
    let mut out = String::new();
    let mut chars = after.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => return Some(out),
            '\\' => match chars.next()? {
                'n' => out.push('\n'),
                't' => out.push('\t'),
                'r' => out.push('\r'),
                'b' => out.push('\u{8}'),
                'f' => out.push('\u{c}'),
                'u' => {
                    let hex: String = chars.by_ref().take(4).collect();
                    let code = u32::from_str_radix(&hex, 16).ok()?;
                    out.push(char::from_u32(code).unwrap_or('\u{fffd}'));
                }
                other => out.push(other),
            },
            other => out.push(other),
        }
    }
    None
}

fn check_chat_template(ctx: &mut crate::Ctx<'_>, template: &Value) {
    match template {
        Value::String(text) => {
            crate::template::check(ctx, text, None, "tokenizer_config.json chat_template")
        }
        Value::Array(items) => {
            for item in items {
                let Some(text) = item.get("template").and_then(Value::as_str) else {
                    continue;
                };
                let name = item.get("name").and_then(Value::as_str).unwrap_or("?");
                let source = format!("tokenizer_config.json chat_template `{name}`");
                crate::template::check(ctx, text, None, &source);
            }
        }
        _ => {}
    }
}

/// Scan a Keras 2 `.h5` file: the root group's `model_config` and `training_config`, or failing that, a
/// byte search for the config JSON.
pub(crate) fn scan_hdf5(ctx: &mut crate::Ctx<'_>, blob: &mut dyn Blob, len: u64) {
    let mut seen = BTreeSet::new();
    let structured = hdf5::read_root(blob, len, ctx.limits());
    let mut found_config = false;
    let parse_error = match &structured {
        Ok(root) => {
            for name in ["model_config", "training_config"] {
                let Some(attr) = root.attribute(name) else {
                    continue;
                };
                let Some(text) = attr.value.first_string() else {
                    continue;
                };
                let Ok(value) = keras::parse_json(text.as_bytes(), ctx.limits()) else {
                    continue;
                };
                found_config |= name == "model_config";
                let mut source = format!("HDF5 root attribute `{name}`");
                for extra in ["keras_version", "backend"] {
                    if let Some(v) = root.attribute(extra).and_then(|a| a.value.first_string()) {
                        source.push_str(&format!(", {extra} {v}"));
                    }
                }
                check_config(
                    ctx,
                    &value,
                    &source,
                    Some(attr.offset),
                    "hdf5-attribute",
                    &mut seen,
                );
            }
            None
        }
        Err(err) => Some(err.to_string()),
    };
    if found_config {
        return;
    }
    let unread_attributes = structured
        .as_ref()
        .is_ok_and(|root| root.notes.iter().any(|n| n.starts_with("dense attribute")));
    let raw_hits = match raw_search(blob, len, ctx.limits()) {
        Ok(search) => {
            let n = search.configs.len();
            if search.exhausted {
                ctx.report(
                    &crate::engine_rules::LIMIT_HIT,
                    None,
                    format!("more than {RAW_CANDIDATES} JSON candidates in the HDF5 bytes; the rest were not parsed"),
                    json!({ "limit": "raw_candidates", "value": RAW_CANDIDATES }),
                );
            }
            if n == 0 && search.mentions_class_name && (unread_attributes || structured.is_err()) {
                ctx.report_at(
                    &HDF5_UNPARSED,
                    Severity::High,
                    None,
                    "the HDF5 file keeps attributes this reader does not decode and mentions `class_name`, but \
                     no Keras config could be read from it: its model config was not examined"
                        .to_owned(),
                    json!({ "method": "raw-byte-search", "dense_attributes": unread_attributes }),
                );
            }
            for (offset, value) in search.configs {
                check_config(
                    ctx,
                    &value,
                    "HDF5 bytes (config JSON found by search)",
                    Some(offset),
                    "raw-byte-search",
                    &mut seen,
                );
            }
            n
        }
        Err(err) => {
            ctx.report(
                &crate::engine_rules::UNREADABLE,
                None,
                format!("HDF5 file could not be read: {err}"),
                json!({ "error": err.to_string() }),
            );
            return;
        }
    };
    if let Some(error) = parse_error {
        ctx.report(
            &HDF5_UNPARSED,
            None,
            format!("HDF5 structure could not be read ({error}); {raw_hits} config candidate(s) found by byte search"),
            json!({ "error": error, "method": "raw-byte-search", "candidates": raw_hits }),
        );
    }
}

/// What the byte search found.
#[derive(Debug, Default)]
struct RawSearch {
    /// Configs parsed, with their offsets.
    configs: Vec<(u64, Value)>,
    /// The candidate bound was reached before the end of the searched bytes.
    exhausted: bool,
    /// The searched bytes contain `"class_name"`.
    mentions_class_name: bool,
}

/// Search the head and tail of a blob for JSON objects that start like a Keras config and parse them.
fn raw_search(blob: &mut dyn Blob, len: u64, limits: &Limits) -> std::io::Result<RawSearch> {
    let mut out = RawSearch::default();
    let mut attempts = 0usize;
    let head_len = len.min(RAW_HEAD);
    let mut regions = vec![(0u64, head_len)];
    if len > head_len {
        let tail_start = len.saturating_sub(RAW_TAIL).max(head_len);
        regions.push((tail_start, len - tail_start));
    }
    for (start, n) in regions {
        let mut buf = Vec::new();
        blob.seek(SeekFrom::Start(start))?;
        blob.take(n).read_to_end(&mut buf)?;
        out.mentions_class_name |= mentions_class_name(&buf);
        let mut pos = 0usize;
        let window_len = usize::try_from(limits.max_header.min(RAW_WINDOW)).unwrap_or(usize::MAX);
        while let Some(found) = find_candidate(&buf, pos) {
            if attempts == RAW_CANDIDATES {
                out.exhausted = true;
                break;
            }
            attempts += 1;
            let window_end = buf.len().min(found.saturating_add(window_len));
            let window = buf.get(found..window_end).unwrap_or_default();
            let mut stream = serde_json::Deserializer::from_slice(window).into_iter::<Value>();
            match stream.next() {
                Some(Ok(value)) if keras::looks_like_keras_config(&value) => {
                    out.configs.push((start + found as u64, value));
                    pos = found + stream.byte_offset().max(1);
                }
                _ => pos = found + 1,
            }
        }
    }
    Ok(out)
}

/// The next position at or after `from` where a JSON object starts: `{`, optional white space, `"`. Any key
/// may come first (`{"config": …, "class_name": …}` loads as well as the usual order), so the candidate is
/// judged by parsing it, not by its first key.
fn find_candidate(buf: &[u8], from: usize) -> Option<usize> {
    let hay = buf.get(from..)?;
    hay.iter()
        .enumerate()
        .filter(|(_, b)| **b == b'{')
        .map(|(i, _)| i)
        .find(|i| {
            hay.get(i + 1..).is_some_and(|rest| {
                rest.iter()
                    .find(|b| !b.is_ascii_whitespace())
                    .is_some_and(|b| *b == b'"')
            })
        })
        .map(|p| from + p)
}

/// Whether the bytes mention a Keras object key at all (a config may be there even if none parsed).
fn mentions_class_name(buf: &[u8]) -> bool {
    buf.windows(12).any(|w| w == b"\"class_name\"")
}

/// Report the items of one Keras config. `source` says where the config came from, `method` how it was found;
/// `seen` dedupes items across several configs of one blob.
pub(crate) fn check_config(
    ctx: &mut crate::Ctx<'_>,
    value: &Value,
    source: &str,
    offset: Option<u64>,
    method: &str,
    seen: &mut BTreeSet<String>,
) {
    let report = keras::analyze_config(value, ctx.limits());
    for item in &report.items {
        if !seen.insert(dedupe_key(item)) {
            continue;
        }
        report_item(ctx, item, source, offset, method);
    }
    if report.depth_limited || report.truncated {
        ctx.report(
            &crate::engine_rules::LIMIT_HIT,
            offset,
            format!("Keras config in {source} was not walked completely (depth or size bound)"),
            json!({ "limit": if report.truncated { "max_entries" } else { "max_json_depth" }, "source": source }),
        );
    }
}

fn dedupe_key(item: &Item) -> String {
    match item {
        Item::Lambda {
            layer,
            code_len,
            strings,
            ..
        } => format!("lambda:{layer:?}:{code_len}:{strings:?}"),
        Item::ClassImport {
            module, class_name, ..
        } => format!("class:{module}:{class_name}"),
        Item::FunctionRef {
            module, function, ..
        } => format!("fn:{module}:{function}"),
        Item::TfsmLayer { filepath, .. } => format!("tfsm:{filepath}"),
        Item::FileRead { path, file, .. } => format!("file:{path}:{file}"),
        Item::RegisteredObject {
            registered_name, ..
        } => format!("reg:{registered_name}"),
    }
}

fn is_gadget_module(module: &str) -> bool {
    let root = module.split('.').next().unwrap_or(module);
    GADGET_MODULES.contains(&root)
}

fn report_item(
    ctx: &mut crate::Ctx<'_>,
    item: &Item,
    source: &str,
    offset: Option<u64>,
    method: &str,
) {
    match item {
        Item::Lambda {
            path,
            layer,
            style,
            code_len,
            marshal_code,
            strings,
        } => {
            let suspicious: Vec<&String> = strings
                .iter()
                .filter(|s| SUSPICIOUS_NAMES.contains(&s.as_str()))
                .collect();
            let name = layer.as_deref().unwrap_or("?");
            let mut message = format!(
                "Lambda layer `{name}` in {source} carries {code_len} bytes of Python bytecode"
            );
            if !suspicious.is_empty() {
                let names: Vec<&str> = suspicious.iter().map(|s| s.as_str()).collect();
                message.push_str(&format!(" mentioning {}", names.join(", ")));
            }
            ctx.report(
                &LAMBDA,
                offset,
                message,
                json!({
                    "layer": layer, "path": path, "serialization": style, "bytecode_len": code_len,
                    "marshal_code_object": marshal_code, "strings": strings, "suspicious_names": suspicious,
                    "source": source, "method": method,
                }),
            );
        }
        Item::ClassImport {
            path,
            module,
            class_name,
        } => {
            let gadget = is_gadget_module(module);
            let severity = if gadget {
                Severity::Critical
            } else {
                MODULE_IMPORT.severity
            };
            ctx.report_at(
                &MODULE_IMPORT,
                severity,
                offset,
                format!("{source} makes the loader import `{module}` and build `{class_name}` from it"),
                json!({ "module": module, "class_name": class_name, "path": path, "gadget_module": gadget, "source": source, "method": method }),
            );
        }
        Item::FunctionRef {
            path,
            module,
            function,
        } => {
            // A Keras package's own function outside its compute modules (keras_hub's `gelu_approximate`
            // activation) is reported at medium, the ones that reach files, models or safety settings at
            // critical.
            let keras = aegis_formats::keras::is_keras_module(module);
            let keras_danger = keras && KERAS_DANGEROUS.contains(&function.as_str());
            let gadget = is_gadget_module(module) || keras_danger;
            let severity = if gadget {
                Severity::Critical
            } else if keras {
                Severity::Medium
            } else {
                FUNCTION_REF.severity
            };
            let shown = if module.is_empty() {
                function.clone()
            } else {
                format!("{module}.{function}")
            };
            ctx.report_at(
                &FUNCTION_REF,
                severity,
                offset,
                format!("{source} references function `{shown}`, resolved by import when the model loads"),
                json!({ "module": module, "function": function, "path": path, "gadget_module": gadget, "source": source, "method": method }),
            );
        }
        Item::TfsmLayer {
            path,
            layer,
            filepath,
        } => {
            let escape = aegis_formats::onnx::path_escape(filepath).map(|e| e.describe());
            ctx.report(
                &TFSM_LAYER,
                offset,
                format!("TFSMLayer `{}` in {source} loads the SavedModel at `{filepath}`", layer.as_deref().unwrap_or("?")),
                json!({ "layer": layer, "filepath": filepath, "path": path, "path_escape": escape, "source": source, "method": method }),
            );
        }
        Item::FileRead {
            path,
            layer,
            class_name,
            key,
            file,
        } => {
            let escape = aegis_formats::onnx::path_escape(file).map(|e| e.describe());
            let remote = file.contains("://");
            let severity = if remote || escape.is_some() {
                Severity::Critical
            } else {
                FILE_READ.severity
            };
            ctx.report_at(
                &FILE_READ,
                severity,
                offset,
                format!(
                    "{class_name} `{}` in {source} reads its {key} from `{file}` when the model loads",
                    layer.as_deref().unwrap_or("?")
                ),
                json!({ "layer": layer, "class_name": class_name, "key": key, "file": file, "remote": remote,
                        "path_escape": escape, "path": path, "source": source, "method": method }),
            );
        }
        Item::RegisteredObject {
            path,
            class_name,
            registered_name,
            module,
        } => {
            ctx.report(
                &CUSTOM_OBJECT,
                offset,
                format!("{source} needs the registered custom object `{registered_name}` (class `{class_name}`)"),
                json!({ "registered_name": registered_name, "class_name": class_name, "module": module, "path": path, "source": source, "method": method }),
            );
        }
    }
}

#[cfg(test)]
mod lenient_tests {
    use super::lenient_string_value;

    #[test]
    fn extracts_templates_from_json_python_accepts_and_serde_rejects() {
        let text = br#"{"x": NaN, "chat_template": "{{ a.__class__ }}\ud800\n"}"#;
        let value = lenient_string_value(text, "chat_template").unwrap();
        assert!(value.starts_with("{{ a.__class__ }}"));
        assert!(lenient_string_value(br#"{"other": "x"}"#, "chat_template").is_none());
    }
}

#[cfg(test)]
mod tests {
    use aegis_core::{Finding, Severity};
    use aegis_test_support::{hdf5 as h5gen, keras as gen};

    use crate::Scanner;

    fn scan(name: &str, bytes: &[u8]) -> Vec<Finding> {
        Scanner::default().scan_bytes(name, bytes).findings
    }

    fn high(findings: &[Finding]) -> Vec<&str> {
        findings
            .iter()
            .filter(|f| f.severity >= Severity::High)
            .map(|f| f.rule.as_str())
            .collect()
    }

    #[test]
    fn honest_configs_are_clean() {
        for variant in [gen::Variant::Honest, gen::Variant::KerasHub] {
            let json = gen::sequential_config(variant);
            let all = scan("config.json", json.as_bytes());
            assert!(all.iter().all(|f| f.severity < Severity::Medium), "{all:?}");
        }
        let all = scan(
            "metadata.json",
            br#"{"keras_version": "3.3.3", "date_saved": "2024-05-01@10:00:00"}"#,
        );
        assert!(all.is_empty(), "{all:?}");
    }

    #[test]
    fn lambda_bytecode_is_critical_with_strings() {
        for variant in [gen::Variant::LambdaList, gen::Variant::Lambda3] {
            let json = gen::sequential_config(variant);
            let all = scan("config.json", json.as_bytes());
            let f = all
                .iter()
                .find(|f| f.rule.as_str() == "AEG-SCAN-600")
                .expect("lambda");
            assert_eq!(f.severity, Severity::Critical);
            assert!(f.evidence["bytecode_len"].as_u64().unwrap() > 0);
            assert!(f.evidence["suspicious_names"]
                .as_array()
                .unwrap()
                .iter()
                .any(|s| s == "system"));
            assert_eq!(f.evidence["method"], "json");
        }
    }

    #[test]
    fn gadget_function_and_module_are_critical_others_high() {
        let all = scan(
            "config.json",
            gen::sequential_config(gen::Variant::FunctionOs).as_bytes(),
        );
        let f = all
            .iter()
            .find(|f| f.rule.as_str() == "AEG-SCAN-602")
            .unwrap();
        assert_eq!(f.severity, Severity::Critical);
        let all = scan(
            "config.json",
            gen::sequential_config(gen::Variant::ModuleImport).as_bytes(),
        );
        let f = all
            .iter()
            .find(|f| f.rule.as_str() == "AEG-SCAN-601")
            .unwrap();
        assert_eq!(f.severity, Severity::Critical);
        let all = scan(
            "config.json",
            gen::sequential_config(gen::Variant::CustomModule).as_bytes(),
        );
        let f = all
            .iter()
            .find(|f| f.rule.as_str() == "AEG-SCAN-601")
            .unwrap();
        assert_eq!(f.severity, Severity::High);
    }

    #[test]
    fn tfsm_layer_is_high_registered_object_medium() {
        let all = scan(
            "config.json",
            gen::sequential_config(gen::Variant::Tfsm).as_bytes(),
        );
        assert_eq!(high(&all), vec!["AEG-SCAN-603"]);
        let all = scan(
            "config.json",
            gen::sequential_config(gen::Variant::Registered).as_bytes(),
        );
        assert!(high(&all).is_empty());
        assert!(all
            .iter()
            .any(|f| f.rule.as_str() == "AEG-SCAN-604" && f.severity == Severity::Medium));
    }

    #[test]
    fn tokenizer_chat_templates_go_to_the_template_rules() {
        let evil = r#"{"bos_token": "<s>", "chat_template": "{{ ''.__class__.__mro__[1].__subclasses__() }}"}"#;
        let all = scan("tokenizer_config.json", evil.as_bytes());
        assert!(
            all.iter()
                .any(|f| f.rule.as_str().starts_with("AEG-SCAN-4") && f.severity >= Severity::High),
            "{all:?}"
        );
        let listed = r#"{"chat_template": [{"name": "default", "template": "{{ cycler.__init__.__globals__.os.popen('id').read() }}"}]}"#;
        let all = scan("tokenizer_config.json", listed.as_bytes());
        assert!(
            all.iter()
                .any(|f| f.rule.as_str().starts_with("AEG-SCAN-4")),
            "{all:?}"
        );
        let honest = r#"{"chat_template": "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"}"#;
        assert!(high(&scan("tokenizer_config.json", honest.as_bytes())).is_empty());
    }

    #[test]
    fn other_json_is_ignored() {
        assert!(scan(
            "config.json",
            br#"{"architectures": ["BertModel"], "hidden_size": 768}"#
        )
        .is_empty());
        assert!(scan("x.json", b"[1, 2, 3]").is_empty());
        assert!(scan("x.json", b"{not json").is_empty());
    }

    #[test]
    fn h5_model_config_is_checked_structurally() {
        let evil = gen::sequential_config(gen::Variant::LambdaList);
        let all = scan(
            "model.h5",
            &h5gen::keras_h5(&evil, h5gen::StringKind::Fixed),
        );
        let f = all
            .iter()
            .find(|f| f.rule.as_str() == "AEG-SCAN-600")
            .expect("lambda");
        assert_eq!(f.evidence["method"], "hdf5-attribute");
        assert_eq!(
            all.iter()
                .filter(|f| f.rule.as_str() == "AEG-SCAN-600")
                .count(),
            1
        );
        let all = scan(
            "model.h5",
            &h5gen::keras_h5(&evil, h5gen::StringKind::VarLen),
        );
        assert!(all.iter().any(|f| f.rule.as_str() == "AEG-SCAN-600"));
        let honest = gen::sequential_config(gen::Variant::Honest);
        let all = scan(
            "model.h5",
            &h5gen::keras_h5(&honest, h5gen::StringKind::Fixed),
        );
        assert!(all.iter().all(|f| f.severity < Severity::Medium), "{all:?}");
    }

    /// Keras functions: one that downloads is critical, a Keras package's own activation outside the compute
    /// modules is medium, an activation in a compute module passes.
    #[test]
    fn keras_functions_are_judged_by_what_they_do() {
        let config = |module: &str, function: &str| {
            serde_json::json!({"class_name": "Sequential", "config": {"layers": [{
                "module": "keras.layers", "class_name": "Dense", "config": {"name": "d", "units": 2,
                "activation": {"module": module, "class_name": "function", "config": function,
                               "registered_name": function}}}]}})
            .to_string()
        };
        let severity = |module: &str, function: &str| {
            scan("config.json", config(module, function).as_bytes())
                .iter()
                .find(|f| f.rule.as_str() == "AEG-SCAN-602")
                .map(|f| f.severity)
        };
        assert_eq!(
            severity("keras.utils", "get_file"),
            Some(Severity::Critical)
        );
        assert_eq!(
            severity("keras_hub.src.utils.keras_utils", "gelu_approximate"),
            Some(Severity::Medium)
        );
        assert_eq!(severity("keras.src.activations.activations", "relu"), None);
    }

    /// An HDF5 file whose attributes sit in dense storage (not read structurally), that mentions
    /// `class_name` but whose config does not parse, is high: its config went unexamined. Without the mention
    /// (a weights-only file) it is quiet.
    #[test]
    fn unread_dense_attributes_with_an_unparsed_config_are_high() {
        let broken =
            h5gen::keras_h5_dense(r#"{"config": {"layers": [}, "class_name": "Sequential""#);
        let all = scan("model.h5", &broken);
        assert!(
            all.iter()
                .any(|f| f.rule.as_str() == super::HDF5_UNPARSED.id && f.severity == Severity::High),
            "{all:?}"
        );
        let weights = h5gen::keras_h5_dense(r#"{"layer_names": ["dense"]}"#);
        assert!(scan("model.weights.h5", &weights).is_empty());
    }

    #[test]
    fn h5_falls_back_to_byte_search() {
        let evil = gen::sequential_config(gen::Variant::LambdaList);
        let all = scan(
            "model.h5",
            &h5gen::corrupt_header(&h5gen::keras_h5(&evil, h5gen::StringKind::Fixed)),
        );
        let f = all
            .iter()
            .find(|f| f.rule.as_str() == "AEG-SCAN-600")
            .expect("lambda");
        assert_eq!(f.evidence["method"], "raw-byte-search");
        assert!(all.iter().any(|f| f.rule.as_str() == "AEG-SCAN-605"));
        let honest = gen::sequential_config(gen::Variant::Honest);
        let all = scan(
            "model.h5",
            &h5gen::corrupt_header(&h5gen::keras_h5(&honest, h5gen::StringKind::Fixed)),
        );
        assert!(high(&all).is_empty(), "{all:?}");
    }

    #[test]
    fn weights_only_h5_is_clean() {
        assert!(scan("model.weights.h5", &h5gen::empty_h5()).is_empty());
    }
}

#[cfg(test)]
mod corpus_tests {
    use aegis_core::Severity;

    /// Every corpus case of the ONNX, SavedModel, Keras JSON and HDF5 generators behaves as labelled (the
    /// `.keras` archives also need the zip module and are left to the workspace corpus test).
    #[test]
    fn own_corpus_cases_behave() {
        let mut cases = aegis_test_support::onnx::corpus();
        cases.extend(aegis_test_support::savedmodel::corpus());
        cases.extend(aegis_test_support::keras::corpus());
        cases.extend(aegis_test_support::hdf5::corpus());
        for case in cases.iter().filter(|c| !c.file_name.ends_with(".keras")) {
            let findings = crate::Scanner::default()
                .scan_bytes(&case.file_name, &case.bytes)
                .findings;
            let high: Vec<&str> = findings
                .iter()
                .filter(|f| f.severity >= Severity::High)
                .map(|f| f.rule.as_str())
                .collect();
            if case.malicious {
                assert!(
                    high.iter().any(|r| Some(*r) == case.expect_rule),
                    "{}: {findings:?}",
                    case.name
                );
            } else {
                assert!(high.is_empty(), "{}: {findings:?}", case.name);
            }
        }
    }
}
