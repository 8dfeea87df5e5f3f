//! Format detection from content, never from the file name. Extensions lie (`.bin` that is a zip, `.dat`
//! that is a pickle, no extension at all); the scanner routes on what the bytes are and reports a name that
//! disagrees as a finding of its own.

pub use crate::compressed::Codec;

/// What a blob is, judged from its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// A zip archive (PyTorch ≥ 1.6, `.keras`, `.npz`), found by its end-of-central-directory record.
    Zip,
    /// A POSIX/GNU tar archive (legacy PyTorch tar checkpoints).
    Tar,
    /// A compressed stream (joblib `compress=`, `.tar.gz`, pandas `.pkl.bz2`, 7z).
    Compressed(Codec),
    /// A pickle stream (protocol 2+ with `PROTO`, or a plausible protocol 0/1 opcode start).
    Pickle,
    /// A numpy `.npy` array.
    Npy,
    /// GGUF (llama.cpp).
    Gguf,
    /// safetensors: 8-byte little-endian header length, then a JSON object.
    Safetensors,
    /// An ONNX `ModelProto`.
    Onnx,
    /// A TensorFlow `SavedModel` protobuf (`saved_model.pb`).
    SavedModel,
    /// HDF5 (Keras 2 `.h5`).
    Hdf5,
    /// A JSON document (Keras `config.json`, tokenizer files).
    Json,
    /// Nothing we know.
    Unknown,
}

impl Format {
    /// A short name for messages and evidence.
    pub fn name(self) -> &'static str {
        match self {
            Format::Zip => "zip",
            Format::Tar => "tar",
            Format::Compressed(codec) => codec.name(),
            Format::Pickle => "pickle",
            Format::Npy => "npy",
            Format::Gguf => "gguf",
            Format::Safetensors => "safetensors",
            Format::Onnx => "onnx",
            Format::SavedModel => "savedmodel",
            Format::Hdf5 => "hdf5",
            Format::Json => "json",
            Format::Unknown => "unknown",
        }
    }

    /// Formats a file extension usually names; `None` when the extension says nothing about content.
    pub fn expected_for_extension(ext: &str) -> Option<&'static [Format]> {
        let ext = ext.to_ascii_lowercase();
        Some(match ext.as_str() {
            "pt" | "pth" | "bin" | "ckpt" | "pytorch" => {
                &[Format::Zip, Format::Pickle, Format::Tar]
            }
            // joblib and pandas write every codec under the plain name too.
            "pkl" | "pickle" | "p" | "joblib" => &[
                Format::Pickle,
                Format::Compressed(Codec::Gzip),
                Format::Compressed(Codec::Zlib),
                Format::Compressed(Codec::Bzip2),
                Format::Compressed(Codec::Xz),
                Format::Compressed(Codec::Lzma),
                Format::Compressed(Codec::Zstd),
                Format::Compressed(Codec::Lz4),
            ],
            "npy" => &[Format::Npy],
            "npz" => &[Format::Zip],
            "gguf" => &[Format::Gguf],
            "safetensors" => &[Format::Safetensors],
            "onnx" => &[Format::Onnx],
            "pb" => &[Format::SavedModel, Format::Onnx],
            "h5" | "hdf5" | "keras" => &[Format::Hdf5, Format::Zip],
            "zip" | "mar" | "nemo" => &[Format::Zip, Format::Tar],
            "tar" => &[Format::Tar],
            "gz" | "gzip" | "tgz" => &[Format::Compressed(Codec::Gzip)],
            "bz2" | "tbz2" => &[Format::Compressed(Codec::Bzip2)],
            "xz" | "txz" => &[Format::Compressed(Codec::Xz)],
            "lzma" => &[Format::Compressed(Codec::Lzma)],
            "zst" | "zstd" => &[Format::Compressed(Codec::Zstd)],
            "lz4" => &[Format::Compressed(Codec::Lz4)],
            "7z" => &[Format::Compressed(Codec::SevenZip)],
            "json" => &[Format::Json],
            _ => return None,
        })
    }
}

/// How many bytes of the start of a blob [`sniff`] wants.
pub const HEAD_LEN: usize = 4096;
/// How many bytes of the end of a blob [`sniff`] wants (the largest zip comment plus the EOCD record).
pub const TAIL_LEN: usize = 65_535 + 22 + 20 + 56;

/// Detect the format of a blob of `len` bytes from its first bytes (`head`, up to [`HEAD_LEN`]) and last
/// bytes (`tail`, up to [`TAIL_LEN`]).
pub fn sniff(head: &[u8], tail: &[u8], len: u64) -> Format {
    if head.starts_with(b"GGUF") {
        return Format::Gguf;
    }
    if head.starts_with(b"\x93NUMPY") {
        return Format::Npy;
    }
    if head.starts_with(b"\x89HDF\r\n\x1a\n") {
        return Format::Hdf5;
    }
    // Zip: PyTorch and Python's zipfile find the archive by the end-of-central-directory record, so data
    // prepended to an archive still loads. Look at the tail first.
    if crate::zip::find_eocd(tail).is_some() || head.starts_with(b"PK\x03\x04") {
        return Format::Zip;
    }
    if is_tar_header(head) {
        return Format::Tar;
    }
    if let Some(codec) = Codec::from_magic(head) {
        return Format::Compressed(codec);
    }
    if is_safetensors(head, len) {
        return Format::Safetensors;
    }
    if is_pickle_start(head) {
        return Format::Pickle;
    }
    // `(S` and a few other protocol-0 starts are also valid zlib headers: a zlib stream must inflate.
    if is_zlib(head) && (!is_pickle_text_start(head, len) || inflates(head)) {
        return Format::Compressed(Codec::Zlib);
    }
    match crate::onnx::sniff_protobuf(head) {
        Some(crate::onnx::ProtobufKind::Onnx) => return Format::Onnx,
        Some(crate::onnx::ProtobufKind::SavedModel) => return Format::SavedModel,
        None => {}
    }
    let text = head.trim_ascii_start();
    if text.starts_with(b"{") || text.starts_with(b"[") {
        return Format::Json;
    }
    if is_pickle_text_start(head, len) {
        return Format::Pickle;
    }
    Format::Unknown
}

/// A pickle with a `PROTO` opcode: `0x80` then a protocol number 0–5 (loaders accept 0 and 1 too) (a higher number is still a pickle
/// that a future loader might read; the emulator reports it).
pub fn is_pickle_start(head: &[u8]) -> bool {
    matches!(head, [0x80, 0..=5, next, ..] if is_opcode(*next))
}

/// Protocol 0/1 pickles have no header. A stream counts as one only when it looks like one and `pickle.load`
/// would act on it before failing: its first opcode is one real writers start with, a leading `GLOBAL` names
/// a module and an attribute that are identifiers and is followed by an opcode, and the first bytes emulate
/// without a structural error before the first call or the end of a pickle. Text that merely starts with `c`
/// (`customer_id,amount`, `class Model:`, `channels:`) or `(` is text: the loader would raise before doing
/// anything. Only used after every format with a magic number was ruled out.
fn is_pickle_text_start(head: &[u8], len: u64) -> bool {
    let shaped = match head.first() {
        // GLOBAL 'module\nname\n', MARK, EMPTY_DICT/LIST/TUPLE, INT, STRING, UNICODE, (
        Some(b'c') => global_operand(&head[1..])
            .is_some_and(|rest| rest.first().is_some_and(|b| is_opcode(*b))),
        Some(b'(' | b'}' | b']' | b')') => head.len() > 1 && is_opcode(head[1]),
        Some(b'I' | b'S' | b'V' | b'L' | b'F') => {
            head.contains(&b'\n') && head.ends_with(b".")
                || head.len() < 64 && head.last() == Some(&b'.')
        }
        _ => false,
    };
    shaped && acts_before_failing(head, head.len() as u64 >= len)
}

/// The `module\nname\n` operand of a text `GLOBAL` when both are dotted identifiers; the bytes after it.
fn global_operand(bytes: &[u8]) -> Option<&[u8]> {
    let mut rest = bytes;
    for _ in 0..2 {
        let end = rest.iter().take(256).position(|b| *b == b'\n')?;
        if !is_dotted_identifier(&rest[..end]) {
            return None;
        }
        rest = &rest[end + 1..];
    }
    Some(rest)
}

/// `a.b_c.D`: non-empty ASCII identifier parts, none starting with a digit.
fn is_dotted_identifier(text: &[u8]) -> bool {
    !text.is_empty()
        && text.split(|b| *b == b'.').all(|part| {
            part.first()
                .is_some_and(|c| c.is_ascii_alphabetic() || *c == b'_')
                && part.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
        })
}

/// Whether emulating `head` reaches a call or a complete pickle before a structural error (an unknown opcode,
/// a stack underflow, a memo miss): what `pickle.load` would do before raising. Running out of bytes is an error
/// only when `head` is the `whole` file; otherwise the file goes on, and a padded pickle whose first call lies
/// past the head is still a pickle.
fn acts_before_failing(head: &[u8], whole: bool) -> bool {
    use crate::pickle::AnomalyKind;
    let limits = crate::limits::Limits::default();
    let Ok(trace) = crate::pickle::Emulator::new(&limits).run(head) else {
        return false;
    };
    let first_error = trace
        .anomalies
        .iter()
        .filter(|a| match a.kind {
            AnomalyKind::TrailingData => false,
            AnomalyKind::Truncated => whole,
            _ => true,
        })
        .map(|a| a.offset)
        .min();
    let first_call = trace.calls.iter().map(|c| c.offset).min();
    match (first_error, first_call) {
        (None, _) => true,
        (Some(error), Some(call)) => call < error,
        (Some(_), None) => trace.pickles > 0,
    }
}

/// Whether `byte` is an opcode of some pickle protocol.
pub fn is_opcode(byte: u8) -> bool {
    const OPCODES: &[u8] = b"(.0123BCFGIJKLMNPQRSTUVXabcdeghijlopqrstu}])\x80\x81\x82\x83\x84\x85\x86\x87\x88\x89\x8a\x8b\x8c\x8d\x8e\x8f\x90\x91\x92\x93\x94\x95\x96\x97\x98";
    OPCODES.contains(&byte)
}

fn is_tar_header(head: &[u8]) -> bool {
    let Some(header) = head.get(..512) else {
        return false;
    };
    let magic = header.get(257..263).unwrap_or_default();
    if magic == b"ustar\0" || magic == b"ustar " {
        return true;
    }
    // Old v7 tar: verify the header checksum the way Python's `tarfile` does (the field read like
    // `int(s, 8)`, the sum over unsigned or over signed bytes).
    let Some(stored) = crate::tar::parse_number(header.get(148..156).unwrap_or_default()) else {
        return false;
    };
    let (mut unsigned, mut signed) = (0u64, 0i64);
    for (i, b) in header.iter().enumerate() {
        let b = if (148..156).contains(&i) { b' ' } else { *b };
        unsigned += u64::from(b);
        signed += i64::from(b as i8);
    }
    let matches = stored == unsigned || u64::try_from(signed).is_ok_and(|s| s == stored);
    matches && header.first().is_some_and(|b| *b != 0)
}

fn is_safetensors(head: &[u8], len: u64) -> bool {
    if head.len() < 10 {
        return false;
    }
    let mut n = [0u8; 8];
    n.copy_from_slice(&head[..8]);
    let header_len = u64::from_le_bytes(n);
    header_len >= 2 && header_len <= len.saturating_sub(8) && head[8] == b'{'
}

/// Whether the start of a zlib stream inflates without error.
fn inflates(head: &[u8]) -> bool {
    let mut out = [0u8; 512];
    let mut inflater = flate2::Decompress::new(true);
    inflater
        .decompress(head, &mut out, flate2::FlushDecompress::None)
        .is_ok_and(|_| inflater.total_out() > 0)
}

fn is_zlib(head: &[u8]) -> bool {
    match head {
        [cmf, flg, ..] => {
            cmf & 0x0f == 8 && (cmf >> 4) <= 7 && (u16::from(*cmf) << 8 | u16::from(*flg)) % 31 == 0
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_magic_numbers() {
        assert_eq!(sniff(b"GGUF\x03\0\0\0", b"", 8), Format::Gguf);
        assert_eq!(sniff(b"\x93NUMPY\x01\x00", b"", 8), Format::Npy);
        assert_eq!(sniff(b"\x80\x04\x95\x00", b"", 4), Format::Pickle);
        assert_eq!(
            sniff(b"\x1f\x8b\x08\x00", b"", 4),
            Format::Compressed(Codec::Gzip)
        );
        assert_eq!(
            sniff(&[0x78, 0x9c, 1, 2], b"", 4),
            Format::Compressed(Codec::Zlib)
        );
    }

    #[test]
    fn safetensors_needs_a_plausible_header_length() {
        let mut file = 14u64.to_le_bytes().to_vec();
        file.extend_from_slice(b"{\"a\":1}       ");
        assert_eq!(sniff(&file, &file, file.len() as u64), Format::Safetensors);
        let mut huge = u64::MAX.to_le_bytes().to_vec();
        huge.extend_from_slice(b"{}");
        assert_ne!(sniff(&huge, &huge, huge.len() as u64), Format::Safetensors);
    }

    #[test]
    fn protocol_zero_pickle_is_recognised_without_header() {
        assert_eq!(sniff(b"cos\nsystem\n(S'id'\ntR.", b"", 20), Format::Pickle);
        // `(S` is also a valid zlib header; it does not inflate, so it is a pickle.
        assert_eq!(
            sniff(b"(S'os'\nS'system'\ni__main__\nX\n.", b"", 30),
            Format::Pickle
        );
        assert_eq!(sniff(b"\x80\x03C\x01a.", b"", 6), Format::Pickle);
        assert_eq!(sniff(b"hello world", b"", 11), Format::Unknown);
    }

    /// Ordinary text next to a model starts with `c`, `(`, `I` or `S` as often as pickles do.
    #[test]
    fn text_that_starts_like_a_protocol_zero_opcode_is_text() {
        let text: &[&[u8]] = &[
            b"customer_id,amount,hour\n1,20.5,3\n2,11.0,4\n",
            b"channels:\n- conda-forge\ndependencies:\n- python=3.11\n",
            b"class Model:\n    def __init__(self):\n        self.x = 1\n",
            b"charset_normalizer/__init__.py,sha256=abc,1590\ncharset_normalizer/api.py,sha256=def,2\n",
            b"cat\ndog\nelephant\nfox\n",
            b"(This is a note in parentheses.)\nAnd more text.\n",
            b"Introduction\nSome text.\n",
            b"Speed test results\nline two.",
        ];
        for t in text {
            assert_eq!(
                sniff(t, b"", t.len() as u64),
                Format::Unknown,
                "{}",
                String::from_utf8_lossy(t)
            );
        }
        // The pickles they might be confused with.
        let pickles: &[&[u8]] = &[
            b"cos\nsystem\n(S'echo hi'\ntR.",
            b"cbuiltins\nexec\n(Vprint(1)\ntR.",
            b"(lp0\nI1\naI2\na.",
            b"(dp0\nS'a'\np1\nI1\ns.",
            b"S'just a string'\np0\n.",
        ];
        for p in pickles {
            assert_eq!(
                sniff(p, b"", p.len() as u64),
                Format::Pickle,
                "{}",
                String::from_utf8_lossy(p)
            );
        }
        // A protocol-0 pickle padded so that its first call lies past the head is still a pickle (the `(S`
        // start is also a zlib header: it must not be routed there).
        for start in [&b"(S'"[..], b"(lp0\nS'"] {
            let mut padded = start.to_vec();
            padded.extend(std::iter::repeat_n(b'A', 2 * HEAD_LEN));
            padded.extend_from_slice(b"'\n0cos\nsystem\n(S'id'\ntR.");
            let head = &padded[..HEAD_LEN];
            assert_eq!(sniff(head, b"", padded.len() as u64), Format::Pickle);
        }
    }

    #[test]
    fn extensions_map_to_expected_formats() {
        assert!(Format::expected_for_extension("PT")
            .unwrap()
            .contains(&Format::Zip));
        assert!(Format::expected_for_extension("xyz").is_none());
    }
}
