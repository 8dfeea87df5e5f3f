//! Format detection from content, never from the file name. Extensions lie (`.bin` that is a zip, `.dat`
//! that is a pickle, no extension at all); the scanner routes on what the bytes are and reports a name that
//! disagrees as a finding of its own.

/// What a blob is, judged from its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// A zip archive (PyTorch ≥ 1.6, `.keras`, `.npz`), found by its end-of-central-directory record.
    Zip,
    /// A POSIX/GNU tar archive (legacy PyTorch tar checkpoints).
    Tar,
    /// A gzip stream (joblib `compress=`, `.tar.gz`).
    Gzip,
    /// A zlib stream (joblib `compress=True`).
    Zlib,
    /// A bzip2, xz or lz4 stream: recognised, not decompressed.
    OtherCompression(&'static str),
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
            Format::Gzip => "gzip",
            Format::Zlib => "zlib",
            Format::OtherCompression(name) => name,
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
            "pkl" | "pickle" | "p" => &[Format::Pickle, Format::Gzip, Format::Zlib],
            "joblib" => &[
                Format::Pickle,
                Format::Gzip,
                Format::Zlib,
                Format::OtherCompression("bzip2"),
                Format::OtherCompression("xz"),
                Format::OtherCompression("lz4"),
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
            "gz" | "tgz" => &[Format::Gzip],
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
    if head.starts_with(&[0x1f, 0x8b]) {
        return Format::Gzip;
    }
    if head.starts_with(b"BZh") {
        return Format::OtherCompression("bzip2");
    }
    if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        return Format::OtherCompression("xz");
    }
    if head.starts_with(&[0x04, 0x22, 0x4d, 0x18]) {
        return Format::OtherCompression("lz4");
    }
    if is_safetensors(head, len) {
        return Format::Safetensors;
    }
    if is_pickle_start(head) {
        return Format::Pickle;
    }
    // `(S` and a few other protocol-0 starts are also valid zlib headers: a zlib stream must inflate.
    if is_zlib(head) && (!is_pickle_text_start(head) || inflates(head)) {
        return Format::Zlib;
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
    if is_pickle_text_start(head) {
        return Format::Pickle;
    }
    Format::Unknown
}

/// A pickle with a `PROTO` opcode: `0x80` then a protocol number 0–5 (loaders accept 0 and 1 too) (a higher number is still a pickle
/// that a future loader might read; the emulator reports it).
pub fn is_pickle_start(head: &[u8]) -> bool {
    matches!(head, [0x80, 0..=5, next, ..] if is_opcode(*next))
}

/// Protocol 0/1 pickles have no header; accept a stream whose first opcode is one real writers start with
/// and whose first bytes parse as opcodes. Only used after every format with a magic number was ruled out.
fn is_pickle_text_start(head: &[u8]) -> bool {
    match head.first() {
        // GLOBAL 'module\nname\n', MARK, EMPTY_DICT/LIST/TUPLE, INT, STRING, UNICODE, (
        Some(b'c') => head.iter().take(256).filter(|b| **b == b'\n').count() >= 2,
        Some(b'(' | b'}' | b']' | b')') => head.len() > 1 && is_opcode(head[1]),
        Some(b'I' | b'S' | b'V' | b'L' | b'F') => {
            head.contains(&b'\n') && head.ends_with(b".")
                || head.len() < 64 && head.last() == Some(&b'.')
        }
        _ => false,
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
        assert_eq!(sniff(b"\x1f\x8b\x08\x00", b"", 4), Format::Gzip);
        assert_eq!(sniff(&[0x78, 0x9c, 1, 2], b"", 4), Format::Zlib);
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

    #[test]
    fn extensions_map_to_expected_formats() {
        assert!(Format::expected_for_extension("PT")
            .unwrap()
            .contains(&Format::Zip));
        assert!(Format::expected_for_extension("xyz").is_none());
    }
}
