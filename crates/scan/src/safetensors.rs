//! safetensors rules. The format cannot run code by itself; what an attacker can do is build a file that
//! different readers see differently (duplicate keys, ranges the reference loader would refuse but a
//! hand-written loader follows), or hide bytes no tensor owns (a pickle riding along for a second-stage
//! loader). Structural anomalies come from [`aegis_formats::safetensors`]; this module ranks them. Hidden
//! byte regions are themselves scanned as nested blobs.

use std::collections::HashMap;
use std::io::{Read, SeekFrom};

use aegis_core::{RuleDoc, Severity};
use aegis_formats::safetensors::{self as st, Anomaly, Header};
use aegis_formats::Blob;
use serde_json::json;

use crate::Ctx;

const ATLAS: &[&str] = &["AML.T0010.003"];

/// The header is rejected by the reference loader (too large, not UTF-8, not JSON, not an object).
pub(crate) const HEADER_REJECTED: RuleDoc = RuleDoc {
    id: "AEG-SCAN-300",
    name: "safetensors-header-rejected",
    severity: Severity::High,
    summary: "safetensors header is not a valid JSON object the reference loader accepts",
    why: "The reference loader refuses the file while lenient readers (hand-written parsers, `json.loads`) may \
          accept it: a parser differential lets a file look harmless to one tool and different to another.",
    fix: "Re-export the weights with the official `safetensors` library from a trusted checkpoint.",
    atlas: ATLAS,
    cwe: &[20, 436],
};

/// A tensor entry is malformed (missing fields, unknown dtype, shape overflow, begin after end).
pub(crate) const TENSOR_INVALID: RuleDoc = RuleDoc {
    id: "AEG-SCAN-301",
    name: "safetensors-tensor-invalid",
    severity: Severity::High,
    summary: "safetensors tensor entry is malformed",
    why: "Entries with unknown dtypes, overflowing shapes or inverted ranges are refused by the reference \
          loader; they exist to crash or confuse other readers (integer overflow in size computations).",
    fix: "Re-export the weights with the official `safetensors` library.",
    atlas: ATLAS,
    cwe: &[20, 190],
};

/// A tensor's byte range does not match `dtype size × elements`.
pub(crate) const SIZE_MISMATCH: RuleDoc = RuleDoc {
    id: "AEG-SCAN-302",
    name: "safetensors-size-mismatch",
    severity: Severity::High,
    summary: "safetensors tensor range does not match its dtype and shape",
    why: "A reader that trusts the shape reads past the range (into other tensors or hidden bytes); one that \
          trusts the range gets a different tensor. Either way the file is built to be read two ways.",
    fix: "Re-export the weights with the official `safetensors` library.",
    atlas: ATLAS,
    cwe: &[20, 130],
};

/// A tensor's range ends past the end of the file.
pub(crate) const OUT_OF_BOUNDS: RuleDoc = RuleDoc {
    id: "AEG-SCAN-303",
    name: "safetensors-out-of-bounds",
    severity: Severity::High,
    summary: "safetensors tensor range lies outside the file",
    why: "Readers that map the file and trust offsets read out of bounds (crash, or memory disclosure in \
          native loaders).",
    fix: "Do not load the file; obtain an intact copy from the publisher.",
    atlas: ATLAS,
    cwe: &[125, 20],
};

/// Two tensors share bytes.
pub(crate) const OVERLAP: RuleDoc = RuleDoc {
    id: "AEG-SCAN-304",
    name: "safetensors-overlap",
    severity: Severity::High,
    summary: "safetensors tensors alias the same bytes",
    why: "Aliased tensors are refused by the reference loader; other readers give two tensors the same \
          storage, so writing one silently changes the other (a way to smuggle a backdoor into weights).",
    fix: "Re-export the weights with the official `safetensors` library.",
    atlas: &["AML.T0010.003", "AML.T0018"],
    cwe: &[20],
};

/// Bytes no tensor owns: gaps between tensors or data after the last one.
pub(crate) const HIDDEN_BYTES: RuleDoc = RuleDoc {
    id: "AEG-SCAN-305",
    name: "safetensors-hidden-bytes",
    severity: Severity::Medium,
    summary: "safetensors file has bytes no tensor owns",
    why: "Gaps and trailing data are invisible to the loader, which makes them a place to carry a payload \
          (a pickle, a script) for a second-stage loader while the file still looks like plain weights.",
    fix: "Re-export the weights with the official `safetensors` library and compare hashes with the \
          publisher's.",
    atlas: ATLAS,
    cwe: &[20],
};

/// The same JSON key appears twice.
pub(crate) const DUPLICATE_KEY: RuleDoc = RuleDoc {
    id: "AEG-SCAN-306",
    name: "safetensors-duplicate-key",
    severity: Severity::High,
    summary: "safetensors header repeats a JSON key",
    why: "JSON parsers disagree on duplicate keys (first wins, last wins, error): a scanner and a loader can \
          each see a different tensor under the same name.",
    fix: "Re-export the weights with the official `safetensors` library.",
    atlas: ATLAS,
    cwe: &[436, 20],
};

/// A `__metadata__` value is not a string.
pub(crate) const METADATA_NOT_STRING: RuleDoc = RuleDoc {
    id: "AEG-SCAN-307",
    name: "safetensors-metadata-not-string",
    severity: Severity::Medium,
    summary: "safetensors metadata is not a map of strings",
    why: "The reference loader only accepts string metadata; other types mean the file was not written by it \
          and may be aimed at readers that interpret metadata.",
    fix: "Keep `__metadata__` a flat map of strings.",
    atlas: ATLAS,
    cwe: &[20],
};

/// Metadata values that look like code or serialized objects.
pub(crate) const SUSPICIOUS_METADATA: RuleDoc = RuleDoc {
    id: "AEG-SCAN-308",
    name: "safetensors-suspicious-metadata",
    severity: Severity::Low,
    summary: "safetensors metadata contains code-like or pickle-like text",
    why: "Metadata is inert for the loader, but tools that evaluate it (training scripts, UIs) could run it; \
          it is also a channel to carry a payload next to trusted weights.",
    fix: "Review the metadata; strip entries you do not need.",
    atlas: ATLAS,
    cwe: &[94],
};

/// Rules of this module.
pub(crate) const RULES: &[&RuleDoc] = &[
    &HEADER_REJECTED,
    &TENSOR_INVALID,
    &SIZE_MISMATCH,
    &OUT_OF_BOUNDS,
    &OVERLAP,
    &HIDDEN_BYTES,
    &DUPLICATE_KEY,
    &METADATA_NOT_STRING,
    &SUSPICIOUS_METADATA,
];

/// Findings kept per rule per blob; further ones are summarised in one finding.
pub(crate) const MAX_PER_RULE: usize = 16;

/// Hidden regions scanned as nested blobs per file, and bytes read from each.
const MAX_HIDDEN_SCANNED: usize = 4;
const MAX_HIDDEN_BYTES: u64 = 16 << 20;

/// Caps findings per rule: a file with a million bad tensors yields a few findings and a count.
#[derive(Debug, Default)]
pub(crate) struct Capped {
    seen: HashMap<&'static str, (usize, &'static RuleDoc)>,
}

impl Capped {
    /// Report through `ctx` unless `rule` already has [`MAX_PER_RULE`] findings on this blob.
    pub(crate) fn report(
        &mut self,
        ctx: &mut Ctx<'_>,
        rule: &'static RuleDoc,
        offset: Option<u64>,
        message: String,
        evidence: serde_json::Value,
    ) {
        let entry = self.seen.entry(rule.id).or_insert((0, rule));
        entry.0 += 1;
        if entry.0 <= MAX_PER_RULE {
            ctx.report(rule, offset, message, evidence);
        }
    }

    /// Emit one summary finding per rule that went over the cap.
    pub(crate) fn finish(self, ctx: &mut Ctx<'_>) {
        let mut over: Vec<_> = self
            .seen
            .into_values()
            .filter(|(n, _)| *n > MAX_PER_RULE)
            .collect();
        over.sort_by_key(|(_, rule)| rule.id);
        for (n, rule) in over {
            let more = n - MAX_PER_RULE;
            ctx.report(
                rule,
                None,
                format!("{more} more occurrences of this problem were not listed"),
                json!({ "omitted": more, "total": n }),
            );
        }
    }
}

pub(crate) fn scan(ctx: &mut Ctx<'_>, blob: &mut dyn Blob, len: u64) {
    let limits = ctx.limits().clone();
    let header = match st::parse(blob, len, &limits) {
        Ok(header) => header,
        Err(err) => {
            ctx.report_parse_error(
                &err,
                &crate::engine_rules::UNREADABLE,
                None,
                "safetensors header could not be parsed",
            );
            return;
        }
    };
    let mut capped = Capped::default();
    for anomaly in &header.anomalies {
        report_anomaly(ctx, &mut capped, &header, anomaly);
    }
    if header.anomalies_dropped > 0 {
        capped.report(
            ctx,
            &crate::engine_rules::LIMIT_HIT,
            None,
            format!(
                "{} further header problems were not recorded",
                header.anomalies_dropped
            ),
            json!({ "limit": "anomalies", "value": header.anomalies_dropped }),
        );
    }
    for (key, value) in &header.metadata {
        check_metadata(ctx, &mut capped, key, value);
    }
    capped.finish(ctx);
    scan_hidden(ctx, blob, &header);
}

fn report_anomaly(ctx: &mut Ctx<'_>, capped: &mut Capped, h: &Header, anomaly: &Anomaly) {
    let at = |rel: u64| Some(h.buffer_start.saturating_add(rel));
    let (rule, offset, message, evidence) = match anomaly {
        Anomaly::HeaderTooLarge { header_len } => (
            &HEADER_REJECTED,
            Some(0),
            format!("header length {header_len} exceeds the reference limit of {} bytes", st::OFFICIAL_MAX_HEADER),
            json!({ "header_len": header_len, "limit": st::OFFICIAL_MAX_HEADER }),
        ),
        Anomaly::HeaderBeyondFile { header_len, file_len } => (
            &HEADER_REJECTED,
            Some(0),
            format!("header length {header_len} runs past the end of the {file_len}-byte file"),
            json!({ "header_len": header_len, "file_len": file_len }),
        ),
        Anomaly::InvalidUtf8 { offset } => (
            &HEADER_REJECTED,
            Some(*offset),
            "header is not valid UTF-8".to_owned(),
            json!({ "problem": "invalid-utf8" }),
        ),
        Anomaly::BadStart { byte } => (
            &HEADER_REJECTED,
            Some(8),
            format!("header starts with byte {byte:#04x}, not `{{`; the reference loader refuses it"),
            json!({ "problem": "bad-start", "byte": byte }),
        ),
        Anomaly::InvalidJson { detail } => (
            &HEADER_REJECTED,
            Some(8),
            format!("header is not valid JSON: {detail}"),
            json!({ "problem": "invalid-json", "detail": detail }),
        ),
        Anomaly::NotAnObject { kind } => (
            &HEADER_REJECTED,
            Some(8),
            format!("header is a JSON {kind}, not an object"),
            json!({ "problem": "not-an-object", "kind": kind }),
        ),
        Anomaly::DuplicateKey { path, key, count } => (
            &DUPLICATE_KEY,
            Some(8),
            format!("key `{key}` appears {count} times in {path}; readers disagree on which one counts"),
            json!({ "path": path, "key": key, "count": count }),
        ),
        Anomaly::InvalidTensor { name, detail } => (
            &TENSOR_INVALID,
            Some(8),
            format!("tensor `{name}`: {detail}"),
            json!({ "tensor": name, "problem": detail }),
        ),
        Anomaly::UnknownDtype { name, dtype } => (
            &TENSOR_INVALID,
            Some(8),
            format!("tensor `{name}` has unknown dtype `{dtype}`"),
            json!({ "tensor": name, "dtype": dtype }),
        ),
        Anomaly::ShapeOverflow { name, shape } => (
            &TENSOR_INVALID,
            Some(8),
            format!("tensor `{name}`: shape {shape:?} overflows 64 bits"),
            json!({ "tensor": name, "shape": shape }),
        ),
        Anomaly::BeginAfterEnd { name, begin, end } => (
            &TENSOR_INVALID,
            at(*end),
            format!("tensor `{name}`: data_offsets begin {begin} is after end {end}"),
            json!({ "tensor": name, "begin": begin, "end": end }),
        ),
        Anomaly::SizeMismatch { name, dtype, shape, expected, actual } => (
            &SIZE_MISMATCH,
            Some(8),
            format!("tensor `{name}` ({dtype} {shape:?}) needs {expected} bytes but its range covers {actual}"),
            json!({ "tensor": name, "dtype": dtype, "shape": shape, "expected": expected, "actual": actual }),
        ),
        Anomaly::OutOfBounds { name, end, buffer_len } => (
            &OUT_OF_BOUNDS,
            Some(8),
            format!("tensor `{name}` ends at buffer byte {end}, past the {buffer_len}-byte buffer"),
            json!({ "tensor": name, "end": end, "buffer_len": buffer_len }),
        ),
        Anomaly::Overlap { first, second, start, end } => (
            &OVERLAP,
            at(*start),
            format!("tensors `{first}` and `{second}` share buffer bytes {start}..{end}"),
            json!({ "first": first, "second": second, "start": start, "end": end }),
        ),
        Anomaly::Gap { start, end, before } => (
            &HIDDEN_BYTES,
            at(*start),
            format!("{} bytes before tensor `{before}` belong to no tensor", end.saturating_sub(*start)),
            json!({ "region": "gap", "start": start, "end": end, "before": before }),
        ),
        Anomaly::TrailingBytes { start, end } => (
            &HIDDEN_BYTES,
            at(*start),
            format!("{} bytes after the last tensor belong to no tensor", end.saturating_sub(*start)),
            json!({ "region": "trailing", "start": start, "end": end }),
        ),
        Anomaly::MetadataNotObject { kind } => (
            &METADATA_NOT_STRING,
            Some(8),
            format!("__metadata__ is a JSON {kind}, not an object of strings"),
            json!({ "kind": kind }),
        ),
        Anomaly::MetadataNotString { key, kind } => (
            &METADATA_NOT_STRING,
            Some(8),
            format!("__metadata__ value `{key}` is a JSON {kind}, not a string"),
            json!({ "key": key, "kind": kind }),
        ),
        other => (
            &TENSOR_INVALID,
            Some(8),
            format!("header problem: {other:?}"),
            json!({ "problem": format!("{other:?}") }),
        ),
    };
    capped.report(ctx, rule, offset, message, evidence);
}

/// Substrings that mark code or serialized objects in a metadata value.
const CODE_MARKERS: &[&str] = &[
    "__import__",
    "__builtins__",
    "eval(",
    "exec(",
    "os.system",
    "os.popen",
    "subprocess",
    "import os",
    "cos\nsystem",
    "cposix\nsystem",
    "cbuiltins\n",
    "c__builtin__\n",
];

fn check_metadata(ctx: &mut Ctx<'_>, capped: &mut Capped, key: &str, value: &str) {
    let pickle_start =
        matches!(value.as_bytes(), [0xc2, 0x80, 2..=5, ..]) || value.starts_with("\u{80}");
    let markers: Vec<&str> = CODE_MARKERS
        .iter()
        .copied()
        .filter(|m| value.contains(m))
        .collect();
    if markers.is_empty() && !pickle_start {
        return;
    }
    let excerpt: String = value.chars().take(120).collect();
    capped.report(
        ctx,
        &SUSPICIOUS_METADATA,
        Some(8),
        format!("metadata `{key}` looks like code or a serialized object"),
        json!({ "key": key, "markers": markers, "pickle_like": pickle_start, "excerpt": excerpt }),
    );
}

/// Scan the first few hidden regions as nested blobs, so a pickle hidden in a gap is examined too.
fn scan_hidden(ctx: &mut Ctx<'_>, blob: &mut dyn Blob, h: &Header) {
    let regions = h.anomalies.iter().filter_map(|a| match a {
        Anomaly::Gap { start, end, .. } | Anomaly::TrailingBytes { start, end } => {
            Some((*start, *end))
        }
        _ => None,
    });
    let cap = MAX_HIDDEN_BYTES.min(ctx.limits().max_in_memory);
    for (start, end) in regions.take(MAX_HIDDEN_SCANNED) {
        let Some(abs) = h.buffer_start.checked_add(start) else {
            continue;
        };
        let want = end.saturating_sub(start).min(cap);
        let mut bytes = Vec::new();
        let read = blob
            .seek(SeekFrom::Start(abs))
            .and_then(|_| blob.take(want).read_to_end(&mut bytes));
        if read.is_ok() && !bytes.is_empty() {
            ctx.scan_member_bytes(&format!("hidden@{abs:#x}"), &bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use aegis_core::Severity;
    use aegis_test_support::safetensors as ts;

    use crate::Scanner;

    fn rules_at_or_above(bytes: &[u8], level: Severity) -> Vec<String> {
        let out = Scanner::default().scan_bytes("model.safetensors", bytes);
        out.findings
            .iter()
            .filter(|f| f.severity >= level)
            .map(|f| f.rule.as_str().to_owned())
            .collect()
    }

    #[test]
    fn honest_files_raise_nothing_at_medium_or_above() {
        assert_eq!(
            rules_at_or_above(&ts::honest(), Severity::Low),
            Vec::<String>::new()
        );
        assert_eq!(
            rules_at_or_above(&ts::honest_with_metadata(), Severity::Medium),
            Vec::<String>::new()
        );
    }

    #[test]
    fn each_defect_has_its_rule() {
        let cases: &[(Vec<u8>, &str)] = &[
            (ts::invalid_json(), "AEG-SCAN-300"),
            (ts::unknown_dtype(), "AEG-SCAN-301"),
            (ts::size_mismatch(), "AEG-SCAN-302"),
            (ts::out_of_bounds(), "AEG-SCAN-303"),
            (ts::overlap(), "AEG-SCAN-304"),
            (ts::gap(), "AEG-SCAN-305"),
            (ts::trailing_bytes(b"junk"), "AEG-SCAN-305"),
            (ts::duplicate_key(), "AEG-SCAN-306"),
            (ts::metadata_not_string(), "AEG-SCAN-307"),
            (ts::suspicious_metadata(), "AEG-SCAN-308"),
        ];
        for (bytes, rule) in cases {
            let found = rules_at_or_above(bytes, Severity::Info);
            assert!(found.iter().any(|r| r == rule), "{rule} not in {found:?}");
        }
    }

    #[test]
    fn hidden_bytes_are_medium_and_scanned_as_a_member() {
        let out =
            Scanner::default().scan_bytes("m.safetensors", &ts::trailing_bytes(b"GGUF\x07\0\0\0"));
        let hidden = out
            .findings
            .iter()
            .find(|f| f.rule.as_str() == "AEG-SCAN-305")
            .unwrap();
        assert_eq!(hidden.severity, Severity::Medium);
        assert!(out
            .findings
            .iter()
            .any(|f| f.location.to_string().contains("hidden@")));
    }

    #[test]
    fn findings_are_capped_per_rule() {
        let entries: Vec<String> = (0..40)
            .map(|i| ts::entry(&format!("t{i}"), "F32", &[4], 0, 4))
            .collect();
        let bytes = ts::raw(&format!("{{{}}}", entries.join(",")), &[0; 4]);
        let out = Scanner::default().scan_bytes("m.safetensors", &bytes);
        let n = out
            .findings
            .iter()
            .filter(|f| f.rule.as_str() == "AEG-SCAN-302")
            .count();
        assert_eq!(n, super::MAX_PER_RULE + 1);
    }
}
