//! Compressed streams: gzip (`.gz`, `.tar.gz`, joblib `compress=("gzip", n)`), zlib (joblib `compress=True`),
//! bzip2, xz and LZMA (joblib `compress='bz2'|'xz'|'lzma'`, pandas `to_pickle('x.pkl.bz2')`), zstd and lz4
//! are decompressed into memory, up to [`aegis_formats::Limits::max_in_memory`] (and the archive expansion
//! bound), and the result is scanned as a member named after the gzip header's file name, the outer name
//! without its compression extension, or `<codec>`. A longer stream is scanned up to the bound and reported
//! as a limit hit. A stream that cannot be decompressed (7z, a corrupt or truncated stream) is a high finding
//! of its own: what the scanner could not read, it cannot vouch for.

use aegis_core::{RuleDoc, Severity};
use aegis_formats::compressed::{self, Codec};
use aegis_formats::Blob;
use serde_json::json;

use crate::{engine_rules, Ctx};

/// A compressed stream that could not be (fully) decompressed.
pub(crate) const NOT_INSPECTED: RuleDoc = RuleDoc {
    id: "AEG-SCAN-250",
    name: "compressed-stream-not-inspected",
    severity: Severity::High,
    summary: "Compressed stream could not be fully decompressed and examined",
    why: "joblib, pandas and other serialisers compress pickles with gzip, zlib, bzip2, xz, LZMA, zstd or lz4; \
          the loader decompresses and unpickles them. This stream could not be decompressed (a 7z archive, a \
          corrupt or truncated stream, or one the scanner's decoder rejects), so what it holds, often a \
          pickle, went unexamined, and a more lenient decoder may still read it.",
    fix: "Decompress the file with the tool of its format (`7z x`, `bunzip2`, `unxz`, `zstd -d`, `lz4 -d`) \
          and scan the result; if it does not decompress, obtain the file again from its source.",
    atlas: &["AML.T0010.003", "AML.T0011.000"],
    cwe: &[502, 20],
};

/// Rules of this module.
pub(crate) const RULES: &[&RuleDoc] = &[&NOT_INSPECTED];

/// Decompress a stream (bounded) and scan what it holds.
pub(crate) fn scan(ctx: &mut Ctx<'_>, blob: &mut dyn Blob, len: u64, codec: Codec) {
    let limits = ctx.limits();
    let bound = limits.max_in_memory.min(limits.max_expanded_bytes);
    let inflated = compressed::inflate(blob, len, codec, bound);
    let name = inflated
        .name
        .unwrap_or_else(|| inner_name(ctx.name(), codec));
    if let Some(err) = inflated.error {
        let got = inflated.bytes.len();
        let message = if !codec.decodable() {
            format!(
                "{} archive not inspected: its members were not scanned",
                codec.name()
            )
        } else if got == 0 {
            format!("{} stream could not be decompressed: {err}", codec.name())
        } else {
            format!(
                "{} stream broken after {got} decompressed bytes ({err}); the first {got} were scanned, the rest \
                 was not",
                codec.name()
            )
        };
        ctx.report(
            &NOT_INSPECTED,
            None,
            message,
            json!({ "codec": codec.name(), "error": err, "decompressed": got }),
        );
    }
    if inflated.truncated {
        ctx.report(
            &engine_rules::LIMIT_HIT,
            None,
            format!(
                "{} stream expands past {bound} bytes; only the first {bound} were scanned",
                codec.name()
            ),
            json!({ "limit": "max_in_memory", "value": bound, "format": codec.name() }),
        );
    }
    if !inflated.bytes.is_empty() {
        ctx.scan_member_bytes(&name, &inflated.bytes);
    }
}

/// The member name of a decompressed stream: the outer name without its compression extension, or a
/// placeholder such as `<bzip2>`.
fn inner_name(outer: &str, codec: Codec) -> String {
    if let Some((stem, ext)) = outer.rsplit_once('.') {
        let ext = ext.to_ascii_lowercase();
        if !stem.is_empty() && codec.extensions().contains(&ext.as_str()) {
            return match ext.as_str() {
                "tgz" | "tbz2" | "txz" => format!("{stem}.tar"),
                _ => stem.to_owned(),
            };
        }
    }
    format!("<{}>", codec.name())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Policy, Scanner};
    use aegis_formats::Limits;
    use aegis_test_support::tar::{bzip2, gzip, legacy_torch_tar, lz4, lzma_alone, xz, zlib, zstd};
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
        assert_eq!(inner_name("model.tar.gz", Codec::Gzip), "model.tar");
        assert_eq!(inner_name("model.tgz", Codec::Gzip), "model.tar");
        assert_eq!(inner_name("model.joblib", Codec::Zlib), "<zlib>");
        assert_eq!(inner_name("frame.pkl.bz2", Codec::Bzip2), "frame.pkl");
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
            .any(|f| f.rule.as_str() == NOT_INSPECTED.id));
    }

    /// Every codec joblib and pandas write is decompressed and its pickle judged: a payload is found under
    /// the plain `.joblib` name and under the codec's own extension, a benign pickle passes.
    #[test]
    fn every_codec_is_decompressed_and_its_pickle_scanned() {
        for (ext, encode) in aegis_test_support::loaders::CODECS {
            for name in ["m.joblib".to_owned(), format!("m.pkl.{ext}")] {
                let out = Scanner::default().scan_bytes(&name, &encode(PAYLOAD_PICKLE));
                assert_eq!(pickles_seen(&out), 1, "{name}");
                assert!(
                    out.findings
                        .iter()
                        .any(|f| f.rule.as_str() == "AEG-SCAN-101"),
                    "{name}: {:?}",
                    out.findings
                );
                let out = Scanner::default().scan_bytes(&name, &encode(BENIGN_PICKLE));
                assert!(out.findings.is_empty(), "{name}: {:?}", out.findings);
            }
        }
    }

    #[test]
    fn what_cannot_be_decompressed_fails_the_gate() {
        for bytes in [
            &b"7z\xbc\xaf\x27\x1c\x00\x04rest of an archive"[..],
            b"BZh91AY&SY\x00\x00garbage",
            b"\xfd7zXZ\x00\x00\x04garbage",
        ] {
            let out = Scanner::default().scan_bytes("m.bin", bytes);
            assert!(
                out.findings
                    .iter()
                    .any(|f| f.rule.as_str() == NOT_INSPECTED.id && f.severity == Severity::High),
                "{:?}",
                out.findings
            );
        }
        let out = Scanner::default().scan_bytes("m.joblib", &zlib(BENIGN_PICKLE));
        assert!(!out
            .findings
            .iter()
            .any(|f| f.rule.as_str() == NOT_INSPECTED.id));
    }

    /// A bomb of every codec stops at the bound.
    #[test]
    fn every_codec_is_bounded() {
        let limits = Limits {
            max_in_memory: 1000,
            ..Limits::default()
        };
        let big = [PAYLOAD_PICKLE, &[0u8; 50_000]].concat();
        for bytes in [
            bzip2(&big),
            xz(&big),
            lzma_alone(&big),
            zstd(&big),
            lz4(&big),
        ] {
            let out =
                Scanner::new(Policy::default(), limits.clone()).scan_bytes("x.joblib", &bytes);
            assert!(out
                .findings
                .iter()
                .any(|f| f.rule.as_str() == engine_rules::LIMIT_HIT.id));
            assert_eq!(pickles_seen(&out), 1, "the prefix is still scanned");
        }
    }
}
