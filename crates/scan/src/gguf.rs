//! GGUF rules. GGUF holds no code, but it is parsed by native loaders (llama.cpp and its many bindings), so
//! counts and offsets that lie are memory-safety attacks on them, and it carries Jinja chat templates that
//! Python frameworks render: every `tokenizer.chat_template` and `tokenizer.chat_template.<name>` string goes
//! to [`crate::template::check`]. Structure comes from [`aegis_formats::gguf`]; this module ranks it.

use std::io::{Read, SeekFrom};

use aegis_core::{RuleDoc, Severity};
use aegis_formats::gguf::{self as gg, Anomaly, Gguf, Value};
use aegis_formats::{Blob, Error};
use serde_json::json;

use crate::safetensors::Capped;
use crate::Ctx;

const ATLAS: &[&str] = &["AML.T0010.003"];

/// The header cannot be parsed past some point (bad type, truncation, unsupported version).
pub(crate) const MALFORMED: RuleDoc = RuleDoc {
    id: "AEG-SCAN-400",
    name: "gguf-malformed",
    severity: Severity::Medium,
    summary: "GGUF header is malformed",
    why: "llama.cpp refuses a malformed header, but bindings and converters with their own parsers may read \
          it differently; a broken header is also a way to make scanners stop early.",
    fix: "Download the file again and compare its hash with the publisher's; do not load a file that fails \
          to parse.",
    atlas: ATLAS,
    cwe: &[20],
};

/// A count or length declares more than the file holds.
pub(crate) const COUNT_LIE: RuleDoc = RuleDoc {
    id: "AEG-SCAN-401",
    name: "gguf-count-exceeds-file",
    severity: Severity::High,
    summary: "GGUF count or length is larger than the file",
    why: "Loaders that allocate or loop by a declared count before checking it exhaust memory or overflow \
          size computations (the llama.cpp GGUF parser had heap overflows of exactly this kind).",
    fix: "Do not load the file; obtain it again from a trusted source.",
    atlas: ATLAS,
    cwe: &[789, 190, 400],
};

/// Tensor data lies outside the file.
pub(crate) const OUT_OF_BOUNDS: RuleDoc = RuleDoc {
    id: "AEG-SCAN-402",
    name: "gguf-tensor-out-of-bounds",
    severity: Severity::High,
    summary: "GGUF tensor data lies outside the file",
    why: "A loader that maps the file and trusts offsets reads out of bounds: a crash, or memory disclosure \
          from a native process.",
    fix: "Do not load the file; obtain an intact copy from the publisher.",
    atlas: ATLAS,
    cwe: &[125, 20],
};

/// Two tensors share bytes.
pub(crate) const OVERLAP: RuleDoc = RuleDoc {
    id: "AEG-SCAN-403",
    name: "gguf-tensor-overlap",
    severity: Severity::High,
    summary: "GGUF tensors alias the same bytes",
    why: "Honest writers lay tensors out one after another; aliased tensors are built to confuse loaders or \
          to make one tensor's data double as another's.",
    fix: "Re-convert the model with llama.cpp's own tools from a trusted checkpoint.",
    atlas: &["AML.T0010.003", "AML.T0018"],
    cwe: &[20],
};

/// A tensor offset is not a multiple of the alignment.
pub(crate) const MISALIGNED: RuleDoc = RuleDoc {
    id: "AEG-SCAN-404",
    name: "gguf-tensor-misaligned",
    severity: Severity::Medium,
    summary: "GGUF tensor data is not aligned",
    why: "llama.cpp rejects misaligned tensors; other readers accept them, so the file is not what the \
          reference writer produces.",
    fix: "Re-convert the model with llama.cpp's own tools.",
    atlas: ATLAS,
    cwe: &[20],
};

/// Bytes no tensor owns.
pub(crate) const HIDDEN_BYTES: RuleDoc = RuleDoc {
    id: "AEG-SCAN-405",
    name: "gguf-hidden-bytes",
    severity: Severity::Medium,
    summary: "GGUF file has bytes no tensor owns",
    why: "Gaps between tensors or data after the last one are invisible to loaders, which makes them a \
          place to carry a payload next to trusted weights.",
    fix: "Re-convert the model with llama.cpp's own tools and compare hashes with the publisher's.",
    atlas: ATLAS,
    cwe: &[20],
};

/// A metadata key or tensor name appears twice.
pub(crate) const DUPLICATE: RuleDoc = RuleDoc {
    id: "AEG-SCAN-406",
    name: "gguf-duplicate-key",
    severity: Severity::High,
    summary: "GGUF metadata key or tensor name is declared twice",
    why: "Readers disagree on which duplicate wins (llama.cpp refuses, dictionaries keep the last): a scanner \
          can be shown an honest chat template or tensor while the loader uses the other one.",
    fix: "Do not load the file; re-convert it with llama.cpp's own tools.",
    atlas: ATLAS,
    cwe: &[436, 20],
};

/// A tensor cannot be sized (unknown ggml type, bad block multiple, overflow) or a value is invalid.
pub(crate) const INVALID_TENSOR: RuleDoc = RuleDoc {
    id: "AEG-SCAN-407",
    name: "gguf-invalid-value",
    severity: Severity::Medium,
    summary: "GGUF tensor or metadata value is invalid",
    why: "Unknown tensor types, sizes that overflow, booleans other than 0/1 and invalid UTF-8 are refused \
          by llama.cpp and exist to trip other readers.",
    fix: "Re-convert the model with llama.cpp's own tools.",
    atlas: ATLAS,
    cwe: &[20, 190],
};

/// `general.alignment` is not a non-zero power of two.
pub(crate) const BAD_ALIGNMENT: RuleDoc = RuleDoc {
    id: "AEG-SCAN-408",
    name: "gguf-bad-alignment",
    severity: Severity::Medium,
    summary: "GGUF general.alignment is invalid",
    why: "An alignment of zero or not a power of two breaks offset arithmetic in loaders (division by zero, \
          misplaced tensors); llama.cpp refuses it.",
    fix: "Re-convert the model with llama.cpp's own tools.",
    atlas: ATLAS,
    cwe: &[20, 369],
};

/// Rules of this module.
pub(crate) const RULES: &[&RuleDoc] = &[
    &MALFORMED,
    &COUNT_LIE,
    &OUT_OF_BOUNDS,
    &OVERLAP,
    &MISALIGNED,
    &HIDDEN_BYTES,
    &DUPLICATE,
    &INVALID_TENSOR,
    &BAD_ALIGNMENT,
];

/// Hidden regions scanned as nested blobs, and bytes read from each.
const MAX_HIDDEN_SCANNED: usize = 4;
const MAX_HIDDEN_BYTES: u64 = 16 << 20;

/// Whether a metadata key holds a chat template.
pub(crate) fn is_template_key(key: &str) -> bool {
    gg::is_template_key(key)
}

pub(crate) fn scan(ctx: &mut Ctx<'_>, blob: &mut dyn Blob, len: u64) {
    let limits = ctx.limits().clone();
    let gguf = match gg::parse(blob, len, &limits) {
        Ok(g) => g,
        Err(err) => {
            report_error(ctx, &err, false);
            return;
        }
    };
    check_templates(ctx, &gguf);
    let mut capped = Capped::default();
    let mut oversized = 0usize;
    for anomaly in &gguf.anomalies {
        if let Anomaly::TooManyEntries {
            offset,
            what,
            count,
            limit,
        } = anomaly
        {
            oversized += 1;
            if oversized <= MAX_OVERSIZED_LISTED {
                report_oversized(ctx, *offset, what, *count, *limit);
            }
            continue;
        }
        report_anomaly(ctx, &mut capped, anomaly);
    }
    if oversized > MAX_OVERSIZED_LISTED {
        let more = oversized - MAX_OVERSIZED_LISTED;
        ctx.report_at(
            &crate::engine_rules::LIMIT_HIT,
            Severity::Medium,
            None,
            format!("{more} more GGUF counts over the entry limit were read over"),
            json!({ "limit": "max_entries", "omitted": more }),
        );
    }
    if gguf.anomalies_dropped > 0 {
        capped.report(
            ctx,
            &crate::engine_rules::LIMIT_HIT,
            None,
            format!(
                "{} further structural problems were not recorded",
                gguf.anomalies_dropped
            ),
            json!({ "limit": "anomalies", "value": gguf.anomalies_dropped }),
        );
    }
    capped.finish(ctx);
    if let Some(err) = &gguf.stopped {
        let explained = gguf
            .anomalies
            .iter()
            .any(|a| matches!(a, Anomaly::CountExceedsFile { .. }));
        report_error(ctx, err, explained);
    }
    scan_hidden(ctx, blob, &gguf);
}

/// Counts over the entry limit listed one by one; further ones are summarised.
const MAX_OVERSIZED_LISTED: usize = 4;

/// A count over [`aegis_formats::Limits::max_entries`] that the parser read over. Only metadata values
/// other than chat templates (which are always read) went unexamined, and those carry no code: medium,
/// not the limit rule's default high.
fn report_oversized(ctx: &mut Ctx<'_>, offset: u64, what: &str, count: u64, limit: u64) {
    ctx.report_at(
        &crate::engine_rules::LIMIT_HIT,
        Severity::Medium,
        Some(offset),
        format!(
            "GGUF {what} {count} is over the limit of {limit}; the entries past it were read over, not \
             examined (chat templates are always examined)"
        ),
        json!({ "limit": what, "value": count, "bound": limit }),
    );
}

/// An error that ended the parse: a limit, or a malformed header (unless a count lie already explains it).
fn report_error(ctx: &mut Ctx<'_>, err: &Error, explained: bool) {
    let text = err.to_string();
    match err {
        Error::Limit {
            what, value, limit, ..
        } => ctx.report(
            &crate::engine_rules::LIMIT_HIT,
            None,
            format!("GGUF header not fully examined: {text}"),
            json!({ "limit": what, "value": value, "bound": limit }),
        ),
        Error::Malformed { offset, detail, .. } if !explained => ctx.report(
            &MALFORMED,
            Some(*offset),
            format!("GGUF header malformed: {detail}"),
            json!({ "detail": detail }),
        ),
        Error::Io { .. } => ctx.report(
            &crate::engine_rules::UNREADABLE,
            None,
            text.clone(),
            json!({ "error": text }),
        ),
        _ => {}
    }
}

fn check_templates(ctx: &mut Ctx<'_>, gguf: &Gguf) {
    for kv in gguf.metadata.iter().filter(|kv| is_template_key(&kv.key)) {
        let source = format!("GGUF key {}", kv.key);
        match &kv.value {
            Value::String(template) => {
                crate::template::check(ctx, template, Some(kv.value_offset), &source)
            }
            Value::TruncatedString { prefix, len } => {
                crate::template::check(ctx, prefix, Some(kv.value_offset), &source);
                ctx.report(
                    &crate::engine_rules::LIMIT_HIT,
                    Some(kv.value_offset),
                    format!(
                        "{source}: {len}-byte chat template; only its first {} bytes were checked",
                        prefix.len()
                    ),
                    json!({ "limit": "max_template", "value": len, "bound": gg::MAX_TEMPLATE }),
                );
            }
            Value::SkippedString(n) => ctx.report(
                &crate::engine_rules::LIMIT_HIT,
                Some(kv.value_offset),
                format!("{source}: {n}-byte chat template was too large to examine"),
                json!({ "limit": "max_string", "value": n }),
            ),
            _ => {}
        }
    }
}

fn report_anomaly(ctx: &mut Ctx<'_>, capped: &mut Capped, anomaly: &Anomaly) {
    let (rule, offset, message, evidence) = match anomaly {
        Anomaly::CountExceedsFile {
            offset,
            what,
            count,
            remaining,
        } => (
            &COUNT_LIE,
            Some(*offset),
            format!("{what} {count} cannot fit in the {remaining} bytes left in the file"),
            json!({ "what": what, "count": count, "remaining": remaining }),
        ),
        Anomaly::DuplicateKey { key, offset } => (
            &DUPLICATE,
            Some(*offset),
            format!("metadata key `{key}` is declared more than once"),
            json!({ "key": key }),
        ),
        Anomaly::DuplicateTensor { name, offset } => (
            &DUPLICATE,
            Some(*offset),
            format!("tensor `{name}` is declared more than once"),
            json!({ "tensor": name }),
        ),
        Anomaly::InvalidUtf8 { offset } => (
            &INVALID_TENSOR,
            Some(*offset),
            "string is not valid UTF-8".to_owned(),
            json!({ "problem": "invalid-utf8" }),
        ),
        Anomaly::InvalidBool { offset, byte } => (
            &INVALID_TENSOR,
            Some(*offset),
            format!("boolean byte is {byte}, not 0 or 1"),
            json!({ "problem": "invalid-bool", "byte": byte }),
        ),
        Anomaly::BadAlignment { detail } => (
            &BAD_ALIGNMENT,
            None,
            format!(
                "{detail}; the default of {} was assumed",
                gg::DEFAULT_ALIGNMENT
            ),
            json!({ "detail": detail }),
        ),
        Anomaly::InvalidTensor {
            name,
            offset,
            detail,
        } => (
            &INVALID_TENSOR,
            Some(*offset),
            format!("tensor `{name}`: {detail}"),
            json!({ "tensor": name, "problem": detail }),
        ),
        Anomaly::Misaligned {
            name,
            offset,
            alignment,
        } => (
            &MISALIGNED,
            None,
            format!("tensor `{name}` data offset {offset} is not a multiple of {alignment}"),
            json!({ "tensor": name, "offset": offset, "alignment": alignment }),
        ),
        Anomaly::OutOfBounds {
            name,
            start,
            end,
            file_len,
        } => (
            &OUT_OF_BOUNDS,
            None,
            format!(
                "tensor `{name}` data {start}..{end} lies past the end of the {file_len}-byte file"
            ),
            json!({ "tensor": name, "start": start, "end": end, "file_len": file_len }),
        ),
        Anomaly::Overlap {
            first,
            second,
            start,
            end,
        } => (
            &OVERLAP,
            Some(*start),
            format!("tensors `{first}` and `{second}` share bytes {start}..{end}"),
            json!({ "first": first, "second": second, "start": start, "end": end }),
        ),
        Anomaly::HiddenBytes { start, end, before } => (
            &HIDDEN_BYTES,
            Some(*start),
            match before {
                Some(t) => format!(
                    "{} bytes before tensor `{t}` belong to no tensor",
                    end - start
                ),
                None => format!(
                    "{} bytes after the last tensor belong to no tensor",
                    end - start
                ),
            },
            json!({ "start": start, "end": end, "before": before }),
        ),
        other => (
            &MALFORMED,
            None,
            format!("structural problem: {other:?}"),
            json!({ "problem": format!("{other:?}") }),
        ),
    };
    capped.report(ctx, rule, offset, message, evidence);
}

/// Scan the first few hidden regions as nested blobs (a pickle appended to a model, for instance).
fn scan_hidden(ctx: &mut Ctx<'_>, blob: &mut dyn Blob, gguf: &Gguf) {
    let cap = MAX_HIDDEN_BYTES.min(ctx.limits().max_in_memory);
    let regions = gguf.anomalies.iter().filter_map(|a| match a {
        Anomaly::HiddenBytes { start, end, .. } => Some((*start, *end)),
        _ => None,
    });
    for (start, end) in regions.take(MAX_HIDDEN_SCANNED) {
        let mut bytes = Vec::new();
        let want = end.saturating_sub(start).min(cap);
        let read = blob
            .seek(SeekFrom::Start(start))
            .and_then(|_| blob.take(want).read_to_end(&mut bytes));
        if read.is_ok() && !bytes.is_empty() {
            ctx.scan_member_bytes(&format!("hidden@{start:#x}"), &bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use aegis_core::Severity;
    use aegis_test_support::gguf as tg;

    use crate::Scanner;

    fn findings(bytes: &[u8]) -> Vec<(String, Severity)> {
        Scanner::default()
            .scan_bytes("model.gguf", bytes)
            .findings
            .into_iter()
            .map(|f| (f.rule.as_str().to_owned(), f.severity))
            .collect()
    }

    fn has(bytes: &[u8], rule: &str, min: Severity) -> bool {
        findings(bytes).iter().any(|(r, s)| r == rule && *s >= min)
    }

    #[test]
    fn honest_models_raise_nothing_at_medium_or_above() {
        for (name, template) in tg::HONEST_TEMPLATES {
            let found: Vec<_> = findings(&tg::honest_model(template))
                .into_iter()
                .filter(|(_, s)| *s >= Severity::Medium)
                .collect();
            assert_eq!(found, vec![], "{name}");
        }
    }

    #[test]
    fn templates_in_metadata_are_checked() {
        for (name, template, rule) in tg::MALICIOUS_TEMPLATES {
            assert!(
                has(&tg::honest_model(template), rule, Severity::High),
                "{name}"
            );
        }
        let named = tg::honest_writer(tg::PHI3_TEMPLATE)
            .kv(
                "tokenizer.chat_template.rag",
                tg::Val::Str("{{ lipsum.__globals__ }}".into()),
            )
            .build();
        assert!(has(&named, "AEG-SCAN-411", Severity::Critical));
        let other_key = tg::honest_writer(tg::PHI3_TEMPLATE)
            .kv(
                "general.description",
                tg::Val::Str("{{ lipsum.__globals__ }}".into()),
            )
            .build();
        assert!(!has(&other_key, "AEG-SCAN-411", Severity::Info));
    }

    #[test]
    fn template_finding_points_at_the_string() {
        let bytes = tg::honest_model("{{ ''.__class__ }}");
        let out = crate::Scanner::default().scan_bytes("m.gguf", &bytes);
        let f = out
            .findings
            .iter()
            .find(|f| f.rule.as_str() == "AEG-SCAN-410")
            .unwrap();
        let aegis_core::Location::File {
            offset: Some(at), ..
        } = f.location
        else {
            panic!()
        };
        assert_eq!(&bytes[at as usize..at as usize + 5], b"{{ ''");
    }

    #[test]
    fn structural_rules() {
        assert!(has(&tg::count_lie(), "AEG-SCAN-401", Severity::High));
        assert!(has(
            &tg::string_length_lie(),
            "AEG-SCAN-401",
            Severity::High
        ));
        assert!(has(&tg::array_length_lie(), "AEG-SCAN-401", Severity::High));
        assert!(has(
            &tg::tensor_out_of_bounds(),
            "AEG-SCAN-402",
            Severity::High
        ));
        assert!(has(&tg::tensor_overlap(), "AEG-SCAN-403", Severity::High));
        assert!(has(
            &tg::tensor_misaligned(),
            "AEG-SCAN-404",
            Severity::Medium
        ));
        assert!(has(&tg::trailing_bytes(), "AEG-SCAN-405", Severity::Medium));
        assert!(has(&tg::duplicate_key(), "AEG-SCAN-406", Severity::High));
        let bad_align = tg::honest_writer(tg::PHI3_TEMPLATE)
            .kv("general.alignment", tg::Val::U32(3))
            .build();
        assert!(has(&bad_align, "AEG-SCAN-408", Severity::Medium));
        let unknown_type = tg::Writer::new(3).tensor("t", &[4], 99, 16).build();
        assert!(has(&unknown_type, "AEG-SCAN-407", Severity::Medium));
        assert!(has(
            b"GGUF\x09\0\0\0\0\0\0\0",
            "AEG-SCAN-400",
            Severity::Medium
        ));
    }

    #[test]
    fn template_after_a_huge_array_is_checked() {
        let bad = tg::template_after_huge_array(tg::MALICIOUS_TEMPLATES[1].1, 2_000_000);
        assert!(has(&bad, "AEG-SCAN-411", Severity::Critical));
        let ok = tg::template_after_huge_array(tg::LLAMA3_TEMPLATE, 2_000_000);
        let high: Vec<_> = findings(&ok)
            .into_iter()
            .filter(|(_, s)| *s >= Severity::High)
            .collect();
        assert_eq!(high, vec![]);
        assert!(has(&ok, "AEG-SCAN-003", Severity::Medium));
    }

    #[test]
    fn count_lie_is_not_also_reported_as_malformed() {
        let found = findings(&tg::count_lie());
        assert!(!found.iter().any(|(r, _)| r == "AEG-SCAN-400"), "{found:?}");
    }

    #[test]
    fn hidden_trailing_data_is_scanned_as_a_member() {
        let out = crate::Scanner::default().scan_bytes("m.gguf", &tg::trailing_bytes());
        let hidden = out
            .findings
            .iter()
            .find(|f| f.rule.as_str() == "AEG-SCAN-405")
            .unwrap();
        assert_eq!(hidden.severity, Severity::Medium);
    }

    #[test]
    fn truncated_files_never_panic() {
        let bytes = tg::honest_model(tg::LLAMA31_TEMPLATE);
        for cut in (0..bytes.len()).step_by(7) {
            let _ = findings(&bytes[..cut]);
        }
    }
}
