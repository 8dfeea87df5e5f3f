//! Compressed streams: gzip (`.gz`, `.tar.gz`, joblib `compress=("gzip", n)`) and zlib (joblib
//! `compress=True`) are decompressed into memory, up to [`aegis_formats::Limits::max_in_memory`] (and the
//! archive expansion bound), and the result is scanned as a member named after the gzip header's file
//! name, or `<gzip>` / `<zlib>`. A longer stream is scanned up to the bound and reported as a limit hit.
//! bzip2, xz and lz4 are recognised but not decompressed (no such codec in our dependencies): that is a
//! finding of its own, so an unscanned payload never passes silently.

use aegis_core::{RuleDoc, Severity};
use aegis_formats::compressed;
use aegis_formats::sniff::Format;
use aegis_formats::Blob;
use serde_json::json;

use crate::{engine_rules, Ctx};

/// A compressed stream in a format we do not decompress.
pub(crate) const NOT_INSPECTED: RuleDoc = RuleDoc {
    id: "AEG-SCAN-250",
    name: "compressed-stream-not-inspected",
    severity: Severity::Medium,
    summary: "bzip2/xz/lz4 stream not inspected",
    why: "joblib and other serialisers compress pickles with bzip2, xz or lz4; the loader decompresses and \
          unpickles them, but the scanner cannot look inside, so any payload there goes unexamined.",
    fix: "Decompress the file (`bunzip2`, `unxz`, `lz4 -d`) and scan the result, or re-save the model with \
          gzip/zlib compression or none.",
    atlas: &["AML.T0010.003", "AML.T0011.000"],
    cwe: &[502],
};

/// Rules of this module.
pub(crate) const RULES: &[&RuleDoc] = &[&NOT_INSPECTED];

/// Decompress a gzip or zlib stream (bounded) and scan what it holds.
pub(crate) fn scan(ctx: &mut Ctx<'_>, blob: &mut dyn Blob, len: u64, format: Format) {
    let limits = ctx.limits();
    let bound = limits.max_in_memory.min(limits.max_expanded_bytes);
    let inflated = compressed::inflate(blob, len, format, bound);
    let placeholder = if format == Format::Gzip {
        "<gzip>"
    } else {
        "<zlib>"
    };
    let name = inflated
        .name
        .unwrap_or_else(|| inner_name(ctx.name(), placeholder));
    if let Some(err) = inflated.error {
        let message = format!(
            "{} stream broken after {} decompressed bytes: {err}",
            format.name(),
            inflated.bytes.len()
        );
        let finding = crate::engine_rules::unreadable(ctx.location().clone(), &message);
        ctx.emit(finding);
    }
    if inflated.truncated {
        ctx.report(
            &engine_rules::LIMIT_HIT,
            None,
            format!(
                "{} stream expands past {bound} bytes; only the first {bound} were scanned",
                format.name()
            ),
            json!({ "limit": "max_in_memory", "value": bound, "format": format.name() }),
        );
    }
    if !inflated.bytes.is_empty() {
        ctx.scan_member_bytes(&name, &inflated.bytes);
    }
}

/// The member name of a decompressed stream: the outer name without its compression extension, or a
/// placeholder.
fn inner_name(outer: &str, placeholder: &str) -> String {
    let lower = outer.to_ascii_lowercase();
    for ext in [".gz", ".gzip", ".z", ".zlib"] {
        if lower.ends_with(ext) && outer.len() > ext.len() {
            return outer
                .get(..outer.len() - ext.len())
                .unwrap_or(outer)
                .to_owned();
        }
    }
    placeholder.to_owned()
}

/// Report a compressed stream we recognise but do not decompress.
pub(crate) fn not_inspected(ctx: &mut Ctx<'_>, codec: &str) {
    ctx.report(
        &NOT_INSPECTED,
        None,
        format!("{codec} stream not inspected: its content (often a pickle) was not scanned"),
        json!({ "codec": codec }),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Policy, Scanner};
    use aegis_formats::Limits;
    use aegis_test_support::tar::{gzip, legacy_torch_tar, zlib};
    use aegis_test_support::zip::{BENIGN_PICKLE, PAYLOAD_PICKLE};

    fn pickles_seen(outcome: &crate::FileOutcome) -> u64 {
        outcome.stats.formats.get("pickle").copied().unwrap_or(0)
    }

    #[test]
    fn gzip_and_zlib_content_is_scanned_under_its_inner_name() {
        let out =
            Scanner::default().scan_bytes("m.pkl.gz", &gzip(PAYLOAD_PICKLE, Some("model.pkl")));
        assert_eq!(pickles_seen(&out), 1);
        let payload = out
            .findings
            .iter()
            .find(|f| f.rule.as_str() == "AEG-SCAN-101");
        assert!(payload.is_some_and(|f| f.location.to_string().starts_with("m.pkl.gz!model.pkl")));
        let out =
            Scanner::default().scan_bytes("m.pkl.gz", &gzip(BENIGN_PICKLE, Some("model.pkl")));
        assert!(out.findings.is_empty(), "{:?}", out.findings);
        let out = Scanner::default().scan_bytes("m.joblib", &zlib(BENIGN_PICKLE));
        assert_eq!(pickles_seen(&out), 1);
        let out = Scanner::default()
            .scan_bytes("m.tar.gz", &gzip(&legacy_torch_tar(BENIGN_PICKLE), None));
        assert_eq!(out.stats.formats.get("tar"), Some(&1));
        assert_eq!(inner_name("model.tar.gz", "<gzip>"), "model.tar");
        assert_eq!(inner_name("model.joblib", "<zlib>"), "<zlib>");
    }

    #[test]
    fn oversized_and_broken_streams_are_reported() {
        let limits = Limits {
            max_in_memory: 1000,
            ..Limits::default()
        };
        let big = gzip(&[PAYLOAD_PICKLE, &[0u8; 5000]].concat(), None);
        let out = Scanner::new(Policy::default(), limits).scan_bytes("x.gz", &big);
        assert!(out
            .findings
            .iter()
            .any(|f| f.rule.as_str() == engine_rules::LIMIT_HIT.id));
        assert_eq!(pickles_seen(&out), 1, "the prefix is still scanned");
        let mut broken = gzip(PAYLOAD_PICKLE, None);
        broken.truncate(broken.len() - 12);
        let out = Scanner::default().scan_bytes("x.gz", &broken);
        assert!(out
            .findings
            .iter()
            .any(|f| f.rule.as_str() == engine_rules::UNREADABLE.id));
    }

    #[test]
    fn other_codecs_are_reported_not_inspected() {
        let out = Scanner::default().scan_bytes("m.joblib", b"BZh91AY&SY\x00\x00");
        assert!(out
            .findings
            .iter()
            .any(|f| f.rule.as_str() == NOT_INSPECTED.id && f.severity == Severity::Medium));
        let out = Scanner::default().scan_bytes("m.joblib", &zlib(BENIGN_PICKLE));
        assert!(!out
            .findings
            .iter()
            .any(|f| f.rule.as_str() == NOT_INSPECTED.id));
    }
}
