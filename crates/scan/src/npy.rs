//! numpy `.npy` rules. Plain arrays are data; an object dtype (or a structured dtype with an object field)
//! stores its data as a pickle, which `numpy.load` only unpickles when the caller passes `allow_pickle=True`.
//! Such a file is reported, and its data section is handed to the pickle rules. Headers numpy would not
//! accept, and data sections of the wrong length, are reported too; bytes past the array are scanned as a
//! nested blob. `.npz` archives reach this module member by member through the zip module.

use std::io::{Read, SeekFrom};

use aegis_core::{RuleDoc, Severity};
use aegis_formats::npy::{self, Npy, Problem};
use aegis_formats::{sniff, Blob};
use serde_json::json;

use crate::Ctx;

const ATLAS: &[&str] = &["AML.T0010.003", "AML.T0011.000"];

/// The array holds Python objects: its data is a pickle.
pub(crate) const OBJECT_ARRAY: RuleDoc = RuleDoc {
    id: "AEG-SCAN-450",
    name: "npy-object-array",
    severity: Severity::High,
    summary: "Object array: loading requires allow_pickle=True",
    why: "The data section of an object array is a pickle. numpy refuses it by default, so the file only works \
          when a user opts into `allow_pickle=True`, at which point any callable in the pickle runs.",
    fix: "Store numeric data with a numeric dtype (or use safetensors); never pass `allow_pickle=True` for \
          files you did not create.",
    atlas: ATLAS,
    cwe: &[502],
};

/// The header is not what numpy writes or accepts.
pub(crate) const HEADER_INVALID: RuleDoc = RuleDoc {
    id: "AEG-SCAN-451",
    name: "npy-header-invalid",
    severity: Severity::High,
    summary: "npy header is not a valid numpy header literal",
    why: "numpy reads the header with `ast.literal_eval`; a header that is code, has extra keys or an unknown \
          dtype targets readers that `eval` it or parse it differently, and could hide an object dtype from \
          a scanner.",
    fix: "Do not load the file; re-create it with `numpy.save` from trusted data.",
    atlas: ATLAS,
    cwe: &[20, 94],
};

/// The data section is not `product(shape) × itemsize` bytes.
pub(crate) const DATA_LENGTH: RuleDoc = RuleDoc {
    id: "AEG-SCAN-452",
    name: "npy-data-size-mismatch",
    severity: Severity::Medium,
    summary: "npy data section length does not match the header",
    why: "A short data section fails to load; a long one carries bytes numpy ignores, a place to hide a \
          payload next to an innocent array.",
    fix: "Re-create the file with `numpy.save` and compare hashes with the publisher's.",
    atlas: ATLAS,
    cwe: &[20],
};

/// The header is longer than numpy accepts by default.
pub(crate) const HEADER_TOO_LARGE: RuleDoc = RuleDoc {
    id: "AEG-SCAN-453",
    name: "npy-header-too-large",
    severity: Severity::Medium,
    summary: "npy header is longer than numpy's max_header_size",
    why: "numpy refuses headers over 10,000 bytes unless the caller raises `max_header_size` or passes \
          `allow_pickle=True`; huge headers target the literal parser (resource exhaustion).",
    fix: "Re-create the file with `numpy.save`.",
    atlas: ATLAS,
    cwe: &[400],
};

/// Rules of this module.
pub(crate) const RULES: &[&RuleDoc] = &[
    &OBJECT_ARRAY,
    &HEADER_INVALID,
    &DATA_LENGTH,
    &HEADER_TOO_LARGE,
];

/// Bytes past the array that are scanned as a nested blob.
const MAX_TRAILING_SCANNED: u64 = 16 << 20;

pub(crate) fn scan(ctx: &mut Ctx<'_>, blob: &mut dyn Blob, len: u64) {
    let limits = ctx.limits().clone();
    let parsed = match npy::parse(blob, len, &limits) {
        Ok(parsed) => parsed,
        Err(err) => {
            ctx.report_parse_error(
                &err,
                &HEADER_INVALID,
                Some(0),
                "npy header could not be parsed",
            );
            return;
        }
    };
    for problem in &parsed.problems {
        report_problem(ctx, &parsed, problem);
    }
    if parsed.has_object {
        ctx.report(
            &OBJECT_ARRAY,
            Some(parsed.data_offset),
            format!(
                "object array (descr {}): its data is a pickle and loading requires allow_pickle=True",
                descr_text(&parsed)
            ),
            json!({ "descr": descr_text(&parsed), "shape": parsed.shape, "data_offset": parsed.data_offset }),
        );
        crate::pickle::scan_at(ctx, blob, parsed.data_offset, len);
    } else if !parsed.header_ok() && data_looks_like_pickle(blob, &parsed) {
        crate::pickle::scan_at(ctx, blob, parsed.data_offset, len);
    }
    scan_trailing(ctx, blob, &parsed);
}

fn descr_text(parsed: &Npy) -> String {
    match &parsed.descr {
        Some(npy::PyLit::Str(s)) => format!("'{s}'"),
        Some(other) => format!("{other:?}"),
        None => "?".to_owned(),
    }
}

fn report_problem(ctx: &mut Ctx<'_>, parsed: &Npy, problem: &Problem) {
    let header_at = Some(if parsed.major == 1 { 10 } else { 12 });
    let (rule, offset, message, evidence) = match problem {
        Problem::DataLength { expected, actual } => (
            &DATA_LENGTH,
            Some(parsed.data_offset),
            format!("header promises {expected} data bytes, the file has {actual}"),
            json!({ "expected": expected, "actual": actual }),
        ),
        Problem::HeaderTooLarge { header_len } => (
            &HEADER_TOO_LARGE,
            Some(8),
            format!(
                "header is {header_len} bytes, over numpy's default limit of {}",
                npy::NUMPY_MAX_HEADER
            ),
            json!({ "header_len": header_len, "limit": npy::NUMPY_MAX_HEADER }),
        ),
        other => {
            let excerpt: String = parsed.header_text.chars().take(200).collect();
            (
                &HEADER_INVALID,
                header_at,
                format!("numpy would not accept this header: {}", describe(other)),
                json!({ "problem": describe(other), "header": excerpt }),
            )
        }
    };
    ctx.report(rule, offset, message, evidence);
}

fn describe(problem: &Problem) -> String {
    match problem {
        Problem::UnsupportedVersion { major, minor } => {
            format!("unsupported version {major}.{minor}")
        }
        Problem::HeaderBeyondFile { header_len } => {
            format!("{header_len}-byte header runs past the end of the file")
        }
        Problem::HeaderNotUtf8 => "version 3 header is not UTF-8".to_owned(),
        Problem::Syntax { detail, at } => {
            format!("not a Python literal ({detail} at header byte {at})")
        }
        Problem::BadKeys { detail } => {
            format!("not a dict of descr, fortran_order and shape ({detail})")
        }
        Problem::BadValue { key, detail } => format!("`{key}`: {detail}"),
        Problem::UnknownDescr { descr } => format!("unknown descr {descr}"),
        Problem::SizeOverflow => "shape × itemsize overflows 64 bits".to_owned(),
        other => format!("{other:?}"),
    }
}

/// Whether the data section starts like a pickle (a header numpy rejects may still front one).
fn data_looks_like_pickle(blob: &mut dyn Blob, parsed: &Npy) -> bool {
    let mut head = [0u8; 3];
    blob.seek(SeekFrom::Start(parsed.data_offset)).is_ok()
        && blob.read_exact(&mut head).is_ok()
        && sniff::is_pickle_start(&head)
}

/// Scan the bytes past the array (when the header says how long the array is) as a nested blob.
fn scan_trailing(ctx: &mut Ctx<'_>, blob: &mut dyn Blob, parsed: &Npy) {
    let Some(Problem::DataLength { expected, actual }) = parsed
        .problems
        .iter()
        .find(|p| matches!(p, Problem::DataLength { .. }))
    else {
        return;
    };
    if actual <= expected {
        return;
    }
    let Some(start) = parsed.data_offset.checked_add(*expected) else {
        return;
    };
    let want = (actual - expected)
        .min(MAX_TRAILING_SCANNED)
        .min(ctx.limits().max_in_memory);
    let mut bytes = Vec::new();
    let read = blob
        .seek(SeekFrom::Start(start))
        .and_then(|_| blob.take(want).read_to_end(&mut bytes));
    if read.is_ok() && !bytes.is_empty() {
        ctx.scan_member_bytes(&format!("trailing@{start:#x}"), &bytes);
    }
}

#[cfg(test)]
mod tests {
    use aegis_core::Severity;
    use aegis_test_support::npy as tn;

    use crate::Scanner;

    fn rules(bytes: &[u8], min: Severity) -> Vec<String> {
        Scanner::default()
            .scan_bytes("array.npy", bytes)
            .findings
            .into_iter()
            .filter(|f| f.severity >= min)
            .map(|f| f.rule.as_str().to_owned())
            .collect()
    }

    #[test]
    fn honest_arrays_raise_nothing() {
        assert_eq!(
            rules(&tn::float32(&[3, 4]), Severity::Low),
            Vec::<String>::new()
        );
        assert_eq!(
            rules(&tn::structured(), Severity::Low),
            Vec::<String>::new()
        );
    }

    #[test]
    fn object_arrays_are_high() {
        assert!(rules(&tn::object_pickle(), Severity::High).contains(&"AEG-SCAN-450".to_owned()));
        assert!(
            rules(&tn::structured_object(), Severity::High).contains(&"AEG-SCAN-450".to_owned())
        );
    }

    #[test]
    fn bad_headers_are_high() {
        assert!(rules(&tn::eval_header(), Severity::High).contains(&"AEG-SCAN-451".to_owned()));
        assert!(
            rules(&tn::raw(1, "{'descr': '<f4'}", &[0; 4]), Severity::High)
                .contains(&"AEG-SCAN-451".to_owned())
        );
        assert!(rules(b"\x93NUMPY\x01", Severity::High).contains(&"AEG-SCAN-451".to_owned()));
    }

    #[test]
    fn length_mismatch_is_medium_and_trailing_bytes_are_scanned() {
        let mut bytes = tn::float32(&[2]);
        bytes.extend_from_slice(b"\x93NUMPY\x09\x00\x00\x00");
        let out = Scanner::default().scan_bytes("a.npy", &bytes);
        let f = out
            .findings
            .iter()
            .find(|f| f.rule.as_str() == "AEG-SCAN-452")
            .unwrap();
        assert_eq!(f.severity, Severity::Medium);
        assert!(
            out.findings
                .iter()
                .any(|f| f.location.to_string().contains("trailing@")),
            "{:?}",
            out.findings
        );
        let full = tn::float32(&[4]);
        let short = &full[..full.len() - 6];
        assert!(rules(short, Severity::Medium).contains(&"AEG-SCAN-452".to_owned()));
    }

    #[test]
    fn huge_header_is_medium() {
        let text = format!(
            "{{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }}{}",
            " ".repeat(20_000)
        );
        let found = rules(&tn::raw(2, &text, &[0; 4]), Severity::Medium);
        assert_eq!(found, vec!["AEG-SCAN-453".to_owned()]);
    }
}
