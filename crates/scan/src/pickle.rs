//! Rules over the pickle emulator's trace.
//!
//! Every global the unpickler would import is judged by the allow-list [`crate::policy`]; calls the emulator
//! resolved to other globals (through `getattr` or `__import__` walks) are judged the same way. Constants fed
//! to nested loaders (`pickle.loads`, `torch.load`, `marshal.loads` …) are scanned recursively as blobs of
//! their own, so a payload hidden inside a payload is still found. Structural oddities (garbage, underflows,
//! memo misses) are reported once per kind, since a crafted pickle may trip them thousands of times.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, SeekFrom};

use aegis_core::{RuleDoc, Severity};
use aegis_formats::pickle::{AnomalyKind, Call, CallKind, Emulator, GlobalRef, Trace, Value};
use aegis_formats::Blob;
use serde_json::json;

use crate::policy::Verdict;
use crate::Ctx;

const ATLAS_PICKLE: &[&str] = &["AML.T0010.003", "AML.T0011.000"];

/// A known code-execution gadget is imported or called.
pub(crate) const KNOWN_GADGET: RuleDoc = RuleDoc {
    id: "AEG-SCAN-101",
    name: "pickle-known-gadget",
    severity: Severity::Critical,
    summary: "Pickle imports a known code-execution gadget",
    why: "Unpickling imports and calls whatever the stream names. This global is a known gadget: loading the \
          file (torch.load without weights_only, pickle.load, joblib.load) runs attacker-chosen commands or \
          code on the machine that loads it.",
    fix: "Do not load this file. Obtain the model from a trusted source, or ask the publisher for a \
          safetensors/ONNX export. Load PyTorch checkpoints with `torch.load(..., weights_only=True)`.",
    atlas: ATLAS_PICKLE,
    cwe: &[502, 94],
};

/// A global outside every allow-list.
pub(crate) const NOT_ALLOWED: RuleDoc = RuleDoc {
    id: "AEG-SCAN-102",
    name: "pickle-global-not-allowed",
    severity: Severity::High,
    summary: "Pickle imports a global outside the allow-list",
    why: "Any importable callable can be a gadget, and new ones are found every year; deny-lists miss them. \
          This global is not among those honest model files need (PyTorch weights_only set, numpy, \
          scikit-learn estimators, collections, harmless builtins), so loading the file runs code nobody \
          vetted.",
    fix: "If you trust this class (for example your own model class), allow it explicitly with \
          `--allow module.qualname` or in `aegis.toml` under `[scan] allow`. Otherwise re-export the model as \
          safetensors or ONNX.",
    atlas: ATLAS_PICKLE,
    cwe: &[502],
};

/// STACK_GLOBAL or EXT with a name computed at run time.
pub(crate) const DYNAMIC_GLOBAL: RuleDoc = RuleDoc {
    id: "AEG-SCAN-103",
    name: "pickle-dynamic-global",
    severity: Severity::Critical,
    summary: "Pickle imports a global whose name is computed at load time",
    why: "Honest pickles name their globals with constant strings. A module or name produced by a call (or \
          an EXT extension code) hides what will be imported from static inspection: the only reason to do \
          it is evasion.",
    fix: "Do not load this file.",
    atlas: ATLAS_PICKLE,
    cwe: &[502, 94],
};

/// BUILD applied to a class or module.
pub(crate) const BUILD_ON_GLOBAL: RuleDoc = RuleDoc {
    id: "AEG-SCAN-104",
    name: "pickle-build-mutates-global",
    severity: Severity::High,
    summary: "Pickle BUILD sets attributes on a class or module",
    why: "BUILD with slot state calls setattr on its target. Applied to a class or module instead of a fresh \
          instance, it overwrites attributes process-wide (for example replacing a method that later code \
          calls), a code-execution and tampering primitive that no honest writer produces.",
    fix: "Do not load this file.",
    atlas: ATLAS_PICKLE,
    cwe: &[502, 915],
};

/// A constant is passed to a nested loader.
pub(crate) const NESTED_PAYLOAD: RuleDoc = RuleDoc {
    id: "AEG-SCAN-105",
    name: "pickle-nested-payload",
    severity: Severity::High,
    summary: "Pickle passes an embedded payload to a nested loader",
    why: "A pickle that calls pickle.loads, torch.load, marshal.loads or a similar loader on an embedded \
          constant runs a second payload that scanners looking only at the outer stream never see. The \
          payload was scanned as well; its own findings are listed under the same location.",
    fix: "Do not load this file.",
    atlas: ATLAS_PICKLE,
    cwe: &[502],
};

/// Structure a writer never produces.
pub(crate) const MALFORMED: RuleDoc = RuleDoc {
    id: "AEG-SCAN-106",
    name: "pickle-malformed",
    severity: Severity::Medium,
    summary: "Pickle stream is malformed or desynchronises emulation",
    why: "Garbage between pickles, stack underflows, memo misses and type confusion are not produced by \
          pickle writers. Crafted files use them to desynchronise scanners that track the stack \
          approximately, while the real unpickler still reaches the payload. Aegis resynchronised and kept \
          reading, but the file is not what it claims to be.",
    fix: "Obtain the file again from its source and compare hashes; do not load it if it stays malformed.",
    atlas: ATLAS_PICKLE,
    cwe: &[20],
};

/// Opcodes newer than the announced protocol.
pub(crate) const PROTOCOL_MISMATCH: RuleDoc = RuleDoc {
    id: "AEG-SCAN-107",
    name: "pickle-protocol-mismatch",
    severity: Severity::Low,
    summary: "Pickle uses opcodes newer than its announced protocol",
    why: "Unpicklers accept any opcode regardless of the PROTO header, but writers never mix them. A \
          mismatch suggests a hand-crafted stream.",
    fix: "Regenerate the file with a standard writer.",
    atlas: ATLAS_PICKLE,
    cwe: &[20],
};

/// A joblib inline array whose byte length cannot be computed.
pub(crate) const JOBLIB_UNSIZED: RuleDoc = RuleDoc {
    id: "AEG-SCAN-108",
    name: "pickle-joblib-array-unsized",
    severity: Severity::High,
    summary: "joblib inline array whose length cannot be computed",
    why: "joblib writes array bytes straight into the pickle stream after a NumpyArrayWrapper and its \
          unpickler skips exactly shape × itemsize bytes. When the emulated shape or dtype does not give that \
          length, the bytes that joblib would execute as opcodes after the array cannot be located: a crafted \
          wrapper is a way to hide a payload from scanners.",
    fix: "Re-export the arrays with numpy.save or safetensors; do not load the file with joblib.",
    atlas: ATLAS_PICKLE,
    cwe: &[502, 20],
};

/// A call whose callable is not an importable global.
pub(crate) const COMPUTED_CALLABLE: RuleDoc = RuleDoc {
    id: "AEG-SCAN-109",
    name: "pickle-computed-callable",
    severity: Severity::High,
    summary: "Pickle calls the result of another call",
    why: "Honest pickles call classes and functions they import by name. Calling an object produced by \
          another call (a bound method, an attribute fetched at load time, a persistent object) runs code the \
          allow-list never judged.",
    fix: "Do not load this file.",
    atlas: ATLAS_PICKLE,
    cwe: &[502],
};

/// Bytes that another format claims are also a pickle that a real load would run.
pub(crate) const POLYGLOT: RuleDoc = RuleDoc {
    id: "AEG-SCAN-110",
    name: "pickle-polyglot",
    severity: Severity::High,
    summary: "File is another format and also a pickle a loader would run",
    why: "pickle.load, joblib and legacy torch.load read any bytes as opcodes, whatever magic number they \
          start with: `GGUF` is a float opcode, `BZh` a bytes length, a tar header's name field a run of \
          opcodes. A file built to be both looks like weights or an archive to tools that route by magic \
          number, and runs its pickle when someone loads it with a pickle-based loader. No writer produces \
          such a file by accident.",
    fix: "Do not load this file with pickle, joblib or torch.load. Obtain it again from its source; if it \
          should be GGUF, safetensors or an archive, open it only with that format's own loader.",
    atlas: ATLAS_PICKLE,
    cwe: &[502, 434],
};

/// Rules of this module.
pub(crate) const RULES: &[&RuleDoc] = &[
    &POLYGLOT,
    &KNOWN_GADGET,
    &NOT_ALLOWED,
    &DYNAMIC_GLOBAL,
    &BUILD_ON_GLOBAL,
    &NESTED_PAYLOAD,
    &MALFORMED,
    &PROTOCOL_MISMATCH,
    &JOBLIB_UNSIZED,
    &COMPUTED_CALLABLE,
];

/// Loaders whose first argument, when a constant, is a payload of its own.
const NESTED_LOADERS: &[(&str, &str)] = &[
    ("pickle", "loads"),
    ("_pickle", "loads"),
    ("cPickle", "loads"),
    ("pickle", "_loads"),
    ("dill", "loads"),
    ("cloudpickle", "loads"),
    ("torch", "load"),
    ("torch.serialization", "load"),
    ("torch.storage", "_load_from_bytes"),
    ("numpy", "load"),
    ("numpy", "loads"),
    ("joblib", "load"),
    ("joblib.numpy_pickle", "load"),
    ("marshal", "loads"),
    ("pickle", "load"),
    ("_pickle", "load"),
];

/// Scan a whole blob as a pickle stream.
pub(crate) fn scan(ctx: &mut Ctx<'_>, blob: &mut dyn Blob, len: u64) {
    scan_at(ctx, blob, 0, len);
}

/// Scan a pickle stream that starts at `offset` inside the current blob and runs to `end` (npy object
/// arrays, joblib members). Findings are located at offsets relative to the start of the blob.
pub(crate) fn scan_at(ctx: &mut Ctx<'_>, blob: &mut dyn Blob, offset: u64, end: u64) {
    if let Err(err) = blob.seek(SeekFrom::Start(offset)) {
        let finding = crate::engine_rules::unreadable(ctx.at(offset), &err.to_string());
        ctx.emit(finding);
        return;
    }
    let reader = (&mut *blob).take(end.saturating_sub(offset));
    let trace = match Emulator::new(ctx.limits()).run(reader) {
        Ok(trace) => trace,
        Err(err) => {
            let finding = crate::engine_rules::unreadable(ctx.at(offset), &err.to_string());
            ctx.emit(finding);
            return;
        }
    };
    let mut judged = BTreeSet::new();
    judge(ctx, &trace, offset, &mut judged);
    crate::tensors::judge(ctx, &trace, offset);
    report_anomalies(ctx, &trace, offset);
    // joblib reads inline array bytes after a NumpyArrayWrapper; pickle.load and torch.load execute them
    // as opcodes. The loader is unknown, so read the stream the second way too and judge what it imports.
    let wrapper_seen = trace.joblib_arrays > 0
        || trace
            .anomalies
            .iter()
            .any(|a| a.kind == AnomalyKind::JoblibArray);
    if wrapper_seen && blob.seek(SeekFrom::Start(offset)).is_ok() {
        let reader = (&mut *blob).take(end.saturating_sub(offset));
        if let Ok(plain) = Emulator::new(ctx.limits()).joblib(false).run(reader) {
            judge(ctx, &plain, offset, &mut judged);
        }
    }
}

/// Blobs no format claimed, whose first byte is a pickle opcode (`N0c…`, `K\x010c…`, a headerless
/// `\x8c…\x93`): `pickle.load` reads them regardless. They are emulated, and only what a real load could
/// reach is judged: globals whose module and name are Python identifiers (an import of anything else fails
/// and ends the load) and calls of such globals. Garbage anomalies are not reported: the bytes may well be
/// something else entirely. `strict` stops at the first structural error, as `pickle.load` does (members of
/// containers, which only a loader handed exactly these bytes would read); otherwise the emulator
/// resynchronises on the next `PROTO`, as for a file given on its own.
pub(crate) fn scan_fallback(ctx: &mut Ctx<'_>, blob: &mut dyn Blob, len: u64, strict: bool) {
    if let Some(trace) = reachable(ctx, blob, len, strict) {
        judge(ctx, &trace, 0, &mut BTreeSet::new());
    }
}

/// A blob another format claimed (GGUF, tar, bzip2, …) whose first bytes are also pickle opcodes:
/// `pickle.load`, joblib and legacy `torch.load` read it as a pickle whatever its magic number says (`GGUF`
/// is a `BINFLOAT`, `BZh` a `BINBYTES` length, a tar's name field a run of opcodes). When a real load
/// would import or call something before its first error, the file is a polyglot: that is a finding of its
/// own, and what the pickle reaches is judged like any pickle.
pub(crate) fn scan_polyglot(ctx: &mut Ctx<'_>, blob: &mut dyn Blob, len: u64, claimed: &str) {
    let Some(trace) = reachable(ctx, blob, len, true) else {
        return;
    };
    if trace.globals.is_empty() && trace.calls.is_empty() {
        return;
    }
    let first = trace
        .globals
        .iter()
        .map(|g| qualified(&g.module, &g.name))
        .chain(trace.calls.iter().map(|c| c.callee.render(80)))
        .next()
        .unwrap_or_default();
    ctx.report(
        &POLYGLOT,
        Some(0),
        format!(
            "the file reads as {claimed} and also as a pickle: `pickle.load`, joblib and legacy `torch.load` would read \
             it and reach `{first}`"
        ),
        json!({ "format": claimed, "first_global": first, "globals": trace.globals.len(), "calls": trace.calls.len() }),
    );
    judge(ctx, &trace, 0, &mut BTreeSet::new());
}

/// Modules whose import alone acts (opens a browser, prints, starts a GUI).
const IMPORT_ACTS: &[&str] = &["antigravity", "this", "idlelib.idle", "turtledemo.__main__"];

/// What a real load of the blob as a pickle reaches: imports of plausible globals that are called or are
/// known gadgets, and calls of plausible globals. `None` when the blob cannot be read.
fn reachable(ctx: &Ctx<'_>, blob: &mut dyn Blob, len: u64, strict: bool) -> Option<Trace> {
    blob.seek(SeekFrom::Start(0)).ok()?;
    let mut trace = Emulator::new(ctx.limits())
        .strict(strict)
        .run((&mut *blob).take(len))
        .ok()?;
    // As for any pickle: bytes joblib skips as array data are opcodes to `pickle.load`; read both ways.
    let wrapper_seen = trace.joblib_arrays > 0
        || trace
            .anomalies
            .iter()
            .any(|a| a.kind == AnomalyKind::JoblibArray);
    if wrapper_seen && blob.seek(SeekFrom::Start(0)).is_ok() {
        if let Ok(plain) = Emulator::new(ctx.limits())
            .strict(strict)
            .joblib(false)
            .run((&mut *blob).take(len))
        {
            trace.globals.extend(plain.globals);
            trace.calls.extend(plain.calls);
        }
    }
    let plausible =
        |module: &str, name: &str| is_dotted_identifier(module) && is_dotted_identifier(name);
    // Bytes no format claimed: an import alone is reported only when it is a known gadget (text such as
    // `cat\ndog\n` imports `at.dog` and then fails); a call on a plausible global always is.
    let called = |g: &GlobalRef| {
        trace
            .calls
            .iter()
            .any(|c| c.callee.as_global() == Some((g.module.as_str(), g.name.as_str())))
    };
    let gadget = |g: &GlobalRef| {
        matches!(
            ctx.policy().verdict(&g.module, &g.name),
            Verdict::Gadget { .. }
        )
    };
    // Read strictly (a member or another format's bytes), an imported gadget counts only when the stream
    // makes any call at all (a call may reach it through nested arguments, a memo or a wrapper) or its import
    // acts by itself: `cos\nsine\n(radians)` in a notes file imports `os.sine` and fails without a call.
    let used = |g: &GlobalRef| {
        called(g) || !trace.calls.is_empty() || IMPORT_ACTS.contains(&g.module.as_str())
    };
    Some(Trace {
        globals: trace
            .globals
            .iter()
            .filter(|g| {
                !g.dynamic
                    && plausible(&g.module, &g.name)
                    && (called(g) || gadget(g) && (!strict || used(g)))
            })
            .cloned()
            .collect(),
        calls: trace
            .calls
            .iter()
            .filter(|c| c.callee.as_global().is_some_and(|(m, n)| plausible(m, n)))
            .cloned()
            .collect(),
        anomalies: Vec::new(),
        ..trace
    })
}

/// `a.b_c.D`: non-empty components of identifier characters, not starting with a digit.
fn is_dotted_identifier(text: &str) -> bool {
    !text.is_empty()
        && text.split('.').all(|part| {
            part.chars()
                .next()
                .is_some_and(|c| c.is_alphabetic() || c == '_')
                && part.chars().all(|c| c.is_alphanumeric() || c == '_')
        })
}

/// Turn a trace's imports and calls into findings; `base` is the stream's offset inside the blob. `judged`
/// holds the globals already reported (shared between the joblib and the plain reading of one stream).
fn judge(ctx: &mut Ctx<'_>, trace: &Trace, base: u64, judged: &mut BTreeSet<(String, String)>) {
    for global in &trace.globals {
        if !judged.insert((global.module.clone(), global.name.clone())) {
            continue;
        }
        judge_global(ctx, trace, global, base);
    }
    for call in &trace.calls {
        if let Some((module, name)) = call.callee.as_global() {
            // Globals reached through getattr/__import__ walks never appear as GLOBAL opcodes.
            if call.kind != CallKind::Build {
                judge_reached(ctx, trace, call, (module, name), base, judged);
            }
        }
        if call.kind == CallKind::Build {
            judge_build(ctx, call, base);
        } else if let Some((module, name)) = legacy_module_class(&call.callee) {
            // Legacy `torch.save` of a whole module: `persistent_load(("module", cls, file, source))`
            // returns `cls`, which is what is called; judge it as the global it is.
            judge_reached(ctx, trace, call, (module, name), base, judged);
        } else if !matches!(call.callee, Value::Global { .. }) {
            judge_computed(ctx, call, base, judged);
        }
        judge_nested(ctx, call, base);
    }
}

/// Judge a global a call reached without a GLOBAL opcode (through a `getattr`/`__import__` walk or a legacy
/// module id), once.
fn judge_reached(
    ctx: &mut Ctx<'_>,
    trace: &Trace,
    call: &Call,
    (module, name): (&str, &str),
    base: u64,
    judged: &mut BTreeSet<(String, String)>,
) {
    if !judged.insert((module.to_owned(), name.to_owned())) {
        return;
    }
    let reached = GlobalRef {
        module: module.to_owned(),
        name: name.to_owned(),
        offset: call.offset,
        opcode: call.kind.opcode(),
        count: call.count,
        dynamic: false,
    };
    judge_global(ctx, trace, &reached, base);
}

/// The class a legacy PyTorch `("module", cls, source_file, source)` persistent id stands for.
fn legacy_module_class(callee: &Value) -> Option<(&str, &str)> {
    let Value::Persistent(pid) = callee else {
        return None;
    };
    let Value::Tuple(items) = &**pid else {
        return None;
    };
    match items.as_slice() {
        [Value::Str { text, .. }, class, ..] if &**text == "module" => class.as_global(),
        _ => None,
    }
}

/// Whether every `getattr` call of the trace reads a constant attribute of a global and lands on an allowed
/// one (pickle writes `getattr(ZoneInfo, "_unpickle")` for any class method it reduces): then `getattr` did
/// nothing the allow-list did not judge. Calls beyond the kept ones cannot be checked, so they count against.
fn getattr_lands_on_allowed(ctx: &Ctx<'_>, trace: &Trace, global: &GlobalRef) -> bool {
    let calls: Vec<&Call> = trace
        .calls
        .iter()
        .filter(|c| c.callee.as_global() == Some((global.module.as_str(), global.name.as_str())))
        .collect();
    !calls.is_empty()
        && calls.iter().all(|call| {
            let Value::Tuple(args) = &call.args else {
                return false;
            };
            match args.as_slice() {
                [target, Value::Str { text, .. }] if call.count == 1 => {
                    target.as_global().is_some_and(|(m, n)| {
                        let attr = if n.is_empty() {
                            text.to_string()
                        } else {
                            format!("{n}.{text}")
                        };
                        matches!(ctx.policy().verdict(m, &attr), Verdict::Allowed(_))
                    })
                }
                _ => false,
            }
        })
}

/// A REDUCE/NEWOBJ/… whose callable is an object, a persistent id or unknown.
fn judge_computed(
    ctx: &mut Ctx<'_>,
    call: &Call,
    base: u64,
    judged: &mut BTreeSet<(String, String)>,
) {
    let callee = call.callee.render(160);
    if !judged.insert(("<computed>".to_owned(), callee.clone())) {
        return;
    }
    ctx.report(
        &COMPUTED_CALLABLE,
        Some(base + call.offset),
        format!(
            "{} calls `{callee}`, a {} produced at load time, with {}",
            call.kind.opcode(),
            call.callee.type_name(),
            call.args.render(120)
        ),
        json!({ "callee": callee, "opcode": call.kind.opcode(), "args": call.args.render(300), "count": call.count }),
    );
}

fn judge_global(ctx: &mut Ctx<'_>, trace: &Trace, global: &GlobalRef, base: u64) {
    let callable = qualified(&global.module, &global.name);
    let first_call = trace.calls.iter().find(|c| {
        c.kind != CallKind::Build
            && c.callee.as_global() == Some((global.module.as_str(), global.name.as_str()))
    });
    let mut evidence = json!({
        "callable": callable,
        "module": global.module,
        "name": global.name,
        "opcode": global.opcode,
        "imports": global.count,
    });
    if let Some(call) = first_call {
        evidence["call"] = json!({
            "opcode": call.kind.opcode(),
            "offset": base + call.offset,
            "args": call.args.render(300),
            "count": call.count,
        });
    }
    let call_text = first_call
        .map(|c| format!("; called with {}", c.args.render(120)))
        .unwrap_or_default();
    let offset = Some(base + global.offset);
    if global.dynamic {
        ctx.report(
            &DYNAMIC_GLOBAL,
            offset,
            format!(
                "{} builds the name of the global it imports at load time ({callable}){call_text}",
                global.opcode
            ),
            evidence,
        );
        return;
    }
    let getattr =
        matches!(global.module.as_str(), "builtins" | "__builtin__") && global.name == "getattr";
    if getattr && !global.dynamic && getattr_lands_on_allowed(ctx, trace, global) {
        return;
    }
    match ctx.policy().verdict(&global.module, &global.name) {
        Verdict::Allowed(_) => {}
        Verdict::Gadget { matched, why } => {
            evidence["gadget"] = json!(matched);
            ctx.report(
                &KNOWN_GADGET,
                offset,
                format!("imports `{callable}` ({matched}: {why}){call_text}"),
                evidence,
            );
        }
        Verdict::NotAllowed => ctx.report(
            &NOT_ALLOWED,
            offset,
            format!("imports `{callable}`, which is outside the allow-list{call_text}"),
            evidence,
        ),
    }
}

/// BUILD on a class or module (not an instance) mutates it process-wide.
fn judge_build(ctx: &mut Ctx<'_>, call: &Call, base: u64) {
    let Some((module, name)) = call.callee.as_global() else {
        return;
    };
    let target = qualified(module, name);
    let severity = if call.slot_state {
        Severity::Critical
    } else {
        Severity::High
    };
    ctx.report_at(
        &BUILD_ON_GLOBAL,
        severity,
        Some(base + call.offset),
        format!(
            "BUILD applies state {} to `{target}` itself{}",
            call.args.render(120),
            if call.slot_state {
                " with slot state (setattr)"
            } else {
                ""
            }
        ),
        json!({ "target": target, "slot_state": call.slot_state, "state": call.args.render(300) }),
    );
}

/// A constant handed to a nested loader is scanned as a blob of its own.
fn judge_nested(ctx: &mut Ctx<'_>, call: &Call, base: u64) {
    let Some((module, name)) = call.callee.as_global() else {
        return;
    };
    if !NESTED_LOADERS.contains(&(module, name)) {
        return;
    }
    let Some(payload) = first_arg_bytes(&call.args) else {
        return;
    };
    let loader = qualified(module, name);
    let offset = base + call.offset;
    let mut evidence = json!({
        "loader": loader,
        "payload_len": payload.len(),
        "payload_sha256_prefix": hex_prefix(&payload),
    });
    if module == "marshal" {
        evidence["strings"] = json!(aegis_formats::marshal::strings(&payload));
    }
    let member = format!("{loader}@{offset:#x}");
    let nested = ctx.scan_member_bytes(&member, &payload);
    evidence["nested_findings"] = json!(nested);
    ctx.report(
        &NESTED_PAYLOAD,
        Some(offset),
        format!(
            "passes a {}-byte embedded payload to `{loader}`; it was scanned as `{member}` ({nested} finding(s))",
            payload.len()
        ),
        evidence,
    );
}

/// The bytes of a loader's first argument: a constant, or a constant wrapped in `io.BytesIO(...)`.
fn first_arg_bytes(args: &Value) -> Option<Vec<u8>> {
    let first = args.items()?.into_iter().next()?;
    bytes_of(&first, 4)
}

fn bytes_of(value: &Value, depth: usize) -> Option<Vec<u8>> {
    if depth == 0 {
        return None;
    }
    if let Some(bytes) = value.as_bytes() {
        return Some(bytes.to_vec());
    }
    if let Value::Object(obj) = value {
        let obj = obj.borrow();
        let wrapper = obj.callable.as_global();
        if matches!(wrapper, Some(("io" | "_io", "BytesIO"))) {
            return first_arg_bytes(&obj.args).or_else(|| bytes_of(&obj.args, depth - 1));
        }
    }
    None
}

fn report_anomalies(ctx: &mut Ctx<'_>, trace: &Trace, base: u64) {
    let mut by_kind: BTreeMap<String, (AnomalyKind, u64, u64, String)> = BTreeMap::new();
    for anomaly in &trace.anomalies {
        let entry = by_kind.entry(format!("{:?}", anomaly.kind)).or_insert((
            anomaly.kind,
            anomaly.offset,
            0,
            anomaly.detail.clone(),
        ));
        entry.2 += 1;
    }
    for (kind_name, (kind, offset, count, detail)) in by_kind {
        let (rule, severity) = match kind {
            // Dropping items of huge containers loses values, not imports or calls (those are recorded
            // as their opcodes run), so honest multi-thousand-tensor state dicts stay quiet.
            AnomalyKind::LimitHit if detail.contains("container items") => {
                (&crate::engine_rules::LIMIT_HIT, Severity::Info)
            }
            // The bottom of a huge stack is dropped, but every opcode is still executed and judged.
            AnomalyKind::LimitHit if detail.starts_with("max_stack") => {
                (&crate::engine_rules::LIMIT_HIT, Severity::Medium)
            }
            AnomalyKind::LimitHit => (&crate::engine_rules::LIMIT_HIT, Severity::High),
            AnomalyKind::JoblibArray => (&JOBLIB_UNSIZED, Severity::High),
            AnomalyKind::ProtocolMismatch => (&PROTOCOL_MISMATCH, Severity::Low),
            AnomalyKind::Truncated => (&MALFORMED, Severity::Low),
            AnomalyKind::TrailingData if trace.pickles > 0 => (&MALFORMED, Severity::Low),
            _ => (&MALFORMED, Severity::Medium),
        };
        ctx.report_at(
            rule,
            severity,
            Some(base + offset),
            format!("{}: {detail}{}", describe(kind), plural(count)),
            json!({ "anomaly": kind_name, "first_offset": base + offset, "count": count, "detail": detail }),
        );
    }
}

fn describe(kind: AnomalyKind) -> &'static str {
    match kind {
        AnomalyKind::UnknownOpcode => "byte that is not a pickle opcode",
        AnomalyKind::StackUnderflow => "opcode pops an empty stack",
        AnomalyKind::MemoMiss => "memo read of an index never stored",
        AnomalyKind::Truncated => "stream ends inside a pickle",
        AnomalyKind::TrailingData => "data after the last pickle",
        AnomalyKind::Resynchronised => "emulation resumed after garbage",
        AnomalyKind::ProtocolMismatch => "opcode newer than the announced protocol",
        AnomalyKind::LimitHit => "scan limit reached inside the pickle",
        AnomalyKind::TypeConfusion => "opcode applied to a value of the wrong type",
        AnomalyKind::JoblibArray => "joblib inline array of unknown size",
    }
}

fn plural(count: u64) -> String {
    if count > 1 {
        format!(" ({count} times)")
    } else {
        String::new()
    }
}

fn qualified(module: &str, name: &str) -> String {
    if name.is_empty() {
        module.to_owned()
    } else {
        format!("{module}.{name}")
    }
}

fn hex_prefix(bytes: &[u8]) -> String {
    bytes.iter().take(16).map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Scanner;

    fn rules_and_severities(name: &str, bytes: &[u8]) -> Vec<(String, Severity)> {
        Scanner::default()
            .scan_bytes(name, bytes)
            .findings
            .into_iter()
            .map(|f| (f.rule.0, f.severity))
            .collect()
    }

    #[test]
    fn malformed_streams_are_medium_and_clean_ones_quiet() {
        // `{}` then STOP, then a byte that is no opcode and more garbage.
        let found = rules_and_severities("a.pkl", b"\x80\x02}.\xff\xfe\xfd\x80\x02}.");
        assert!(
            found.contains(&(MALFORMED.id.to_owned(), Severity::Medium)),
            "{found:?}"
        );
        assert!(rules_and_severities("a.pkl", b"\x80\x02}q\x00.").is_empty());
    }

    /// `getattr(cls, "name")` is what pickle writes for a class method; it passes only when every such call
    /// lands on an allowed global, and a legacy torch module id is judged as the class it names.
    #[test]
    fn getattr_and_legacy_module_ids_are_judged_by_what_they_reach() {
        let high = |bytes: &[u8]| {
            rules_and_severities("a.pkl", bytes)
                .into_iter()
                .filter(|(_, s)| *s >= Severity::High)
                .collect::<Vec<_>>()
        };
        let zone = b"\x80\x04cbuiltins\ngetattr\nczoneinfo\nZoneInfo\nX\x09\x00\x00\x00_unpickle\x86RX\x0d\x00\x00\x00Europe/BerlinK\x01\x86R.";
        assert!(high(zone).is_empty(), "{:?}", high(zone));
        let walk = b"\x80\x04cbuiltins\ngetattr\ncposix\nsystem\nX\x08\x00\x00\x00__call__\x86R.";
        assert!(high(walk).iter().any(|(r, _)| r == KNOWN_GADGET.id));
        let other = b"\x80\x04cbuiltins\ngetattr\nccollections\nOrderedDict\nX\x08\x00\x00\x00fromkeys\x86R.";
        assert!(high(other).iter().any(|(r, _)| r == KNOWN_GADGET.id));
        let module = |class: &[u8]| {
            let mut p = b"\x80\x02(X\x06\x00\x00\x00module".to_vec();
            p.extend_from_slice(class);
            p.extend_from_slice(b"X\x04\x00\x00\x00a.pyX\x03\x00\x00\x00srctQ)\x81.");
            p
        };
        assert!(high(&module(b"ctorch.nn.modules.linear\nLinear\n")).is_empty());
        assert!(high(&module(b"cposix\nsystem\n"))
            .iter()
            .any(|(r, _)| r == KNOWN_GADGET.id));
    }

    #[test]
    fn protocol_mismatch_is_low() {
        // PROTO 2, then SHORT_BINUNICODE (a protocol 4 opcode).
        let found = rules_and_severities("a.pkl", b"\x80\x02\x8c\x01a.");
        assert!(
            found.contains(&(PROTOCOL_MISMATCH.id.to_owned(), Severity::Low)),
            "{found:?}"
        );
        let clean = rules_and_severities("a.pkl", b"\x80\x04\x8c\x01a.");
        assert!(
            clean.iter().all(|(rule, _)| rule != PROTOCOL_MISMATCH.id),
            "{clean:?}"
        );
    }

    #[test]
    fn dotted_identifiers() {
        assert!(is_dotted_identifier("torch._utils"));
        assert!(!is_dotted_identifier("as\u{fffd}x"));
        assert!(!is_dotted_identifier("1abc"));
        assert!(!is_dotted_identifier("a..b"));
    }

    #[test]
    fn bytes_are_found_inside_bytesio_wrappers() {
        use std::cell::RefCell;
        use std::rc::Rc;
        let wrapped = Value::Object(Rc::new(RefCell::new(aegis_formats::pickle::PyObject {
            callable: Value::Global {
                module: "io".into(),
                name: "BytesIO".into(),
            },
            kind: aegis_formats::pickle::ObjectKind::Call,
            args: Value::Tuple(Rc::new(vec![Value::bytes(b"\x80\x02N.")])),
            state: None,
            offset: 0,
        })));
        let args = Value::Tuple(Rc::new(vec![wrapped]));
        assert_eq!(first_arg_bytes(&args), Some(b"\x80\x02N.".to_vec()));
        assert_eq!(
            first_arg_bytes(&Value::Tuple(Rc::new(vec![Value::Int(1)]))),
            None
        );
    }
}
