//! Compressed streams that model loaders read through: gzip and zlib (joblib `compress=`, `.tar.gz`), bzip2
//! and xz (joblib `compress='bz2'|'xz'`, pandas `to_pickle('x.pkl.bz2')`), raw LZMA "alone" (joblib
//! `compress='lzma'`), zstd (`.pkl.zst`, pandas) and lz4 frames (joblib `compress='lz4'`). Each is
//! decompressed into memory up to a bound. The caller decides what a truncated or broken stream means; this
//! module only says what happened.
//!
//! Memory: the decoders keep at most their window (gzip 32 KiB, bzip2 900 KiB, lz4 4 MiB blocks, zstd at most
//! 128 MiB by its default window limit, LZMA at most the bound we pass). The xz decoder allocates the
//! dictionary the header declares as zeroed pages, which the OS commits only as output is written, and output
//! stops at the bound.
//!
//! 7z archives are recognised but not decompressed: no loader reads them directly, and no decoder is among our
//! dependencies.

use std::io::Read;

use flate2::read::{MultiGzDecoder, ZlibDecoder};

use crate::Blob;

/// The LZMA dictionary always allowed, whatever the decompression bound.
const LZMA_DICT_MIN_LIMIT: u64 = 256 << 20;

/// A compression format, recognised by its magic number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// gzip (RFC 1952), possibly several members.
    Gzip,
    /// zlib (RFC 1950), joblib's `compress=True`.
    Zlib,
    /// bzip2 (`BZh`), possibly several streams.
    Bzip2,
    /// xz (`\xfd7zXZ\0`), possibly several streams.
    Xz,
    /// Raw LZMA "alone" (`.lzma`), joblib's `compress='lzma'`: properties, dictionary size, length.
    Lzma,
    /// zstd frames (`28 b5 2f fd`).
    Zstd,
    /// lz4 frames (`04 22 4d 18`).
    Lz4,
    /// A 7z archive: recognised, not decompressed.
    SevenZip,
}

impl Codec {
    /// A short name for messages and evidence.
    pub fn name(self) -> &'static str {
        match self {
            Codec::Gzip => "gzip",
            Codec::Zlib => "zlib",
            Codec::Bzip2 => "bzip2",
            Codec::Xz => "xz",
            Codec::Lzma => "lzma",
            Codec::Zstd => "zstd",
            Codec::Lz4 => "lz4",
            Codec::SevenZip => "7z",
        }
    }

    /// File-name extensions that name this codec (lower case, without the dot).
    pub fn extensions(self) -> &'static [&'static str] {
        match self {
            Codec::Gzip => &["gz", "gzip", "tgz"],
            Codec::Zlib => &["z", "zlib"],
            Codec::Bzip2 => &["bz2", "bzip2", "tbz2"],
            Codec::Xz => &["xz", "txz"],
            Codec::Lzma => &["lzma"],
            Codec::Zstd => &["zst", "zstd"],
            Codec::Lz4 => &["lz4"],
            Codec::SevenZip => &["7z"],
        }
    }

    /// Whether [`inflate`] can decompress it.
    pub fn decodable(self) -> bool {
        self != Codec::SevenZip
    }

    /// The codec whose magic number `head` starts with (zlib, which has none, is judged by the sniffer).
    pub fn from_magic(head: &[u8]) -> Option<Codec> {
        if head.starts_with(&[0x1f, 0x8b]) {
            return Some(Codec::Gzip);
        }
        if head.len() >= 4 && head.starts_with(b"BZh") && (b'1'..=b'9').contains(&head[3]) {
            return Some(Codec::Bzip2);
        }
        if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
            return Some(Codec::Xz);
        }
        if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            return Some(Codec::Zstd);
        }
        if head.starts_with(&[0x04, 0x22, 0x4d, 0x18]) {
            return Some(Codec::Lz4);
        }
        if head.starts_with(&[b'7', b'z', 0xbc, 0xaf, 0x27, 0x1c]) {
            return Some(Codec::SevenZip);
        }
        if is_lzma_alone(head) {
            return Some(Codec::Lzma);
        }
        None
    }
}

/// An LZMA "alone" header as joblib recognises it: `5d 00` (properties lc=3, lp=0, pb=2, the only ones
/// liblzma's presets produce, then the low byte of a dictionary size that is a multiple of 256), followed by
/// the rest of the dictionary size and an unpacked size that is unknown (all ones) or below 2^48. A pickle
/// cannot start with these bytes (`]` then a byte that is no opcode).
fn is_lzma_alone(head: &[u8]) -> bool {
    let Some(header) = head.get(..13) else {
        return false;
    };
    let mut size = [0u8; 8];
    size.copy_from_slice(&header[5..13]);
    let size = u64::from_le_bytes(size);
    header[..2] == [0x5d, 0x00] && (size == u64::MAX || size < 1 << 48)
}

/// What decompressing a stream produced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inflated {
    /// The decompressed bytes (at most the bound).
    pub bytes: Vec<u8>,
    /// The file name stored in a gzip header, if any.
    pub name: Option<String>,
    /// More data followed the bound.
    pub truncated: bool,
    /// The stream broke after `bytes` (corrupt data, bad checksum, early end), or could not be decoded.
    pub error: Option<String>,
}

/// Decompress the first `len` bytes of `blob` as `codec`, keeping at most `bound` bytes.
pub fn inflate(blob: &mut dyn Blob, len: u64, codec: Codec, bound: u64) -> Inflated {
    let input = blob.take(len);
    match codec {
        Codec::Gzip => {
            let mut decoder = MultiGzDecoder::new(input);
            let mut out = read_bounded(&mut decoder, bound);
            out.name = decoder
                .header()
                .and_then(|h| h.filename())
                .map(|n| String::from_utf8_lossy(n).into_owned())
                .filter(|n| !n.is_empty());
            out
        }
        Codec::Zlib => read_bounded(&mut ZlibDecoder::new(input), bound),
        Codec::Bzip2 => read_bounded(&mut bzip2::read::MultiBzDecoder::new(input), bound),
        Codec::Xz => read_bounded(
            &mut lzma_rust2::XzReader::new(std::io::BufReader::new(input), true),
            bound,
        ),
        Codec::Lzma => read_streams(input, bound, "LZMA", |input| {
            // Memory limit in KiB: liblzma's presets use dictionaries of 64 MiB at most; a header that asks
            // for more than the bound and 256 MiB is refused rather than allocated.
            let limit_kb = u32::try_from(bound.max(LZMA_DICT_MIN_LIMIT) / 1024).unwrap_or(u32::MAX);
            lzma_rust2::LzmaReader::new_mem_limit(input, limit_kb, None)
                .map(|r| Box::new(r) as Box<dyn Read + '_>)
                .map_err(|e| e.to_string())
        }),
        Codec::Zstd => match zstd::stream::read::Decoder::new(input) {
            Ok(mut decoder) => read_bounded(&mut decoder, bound),
            Err(err) => failed(err.to_string()),
        },
        Codec::Lz4 => read_streams(input, bound, "lz4", |input| {
            Ok(Box::new(lz4_flex::frame::FrameDecoder::new(input)) as Box<dyn Read + '_>)
        }),
        Codec::SevenZip => failed("7z archives are not decompressed".to_owned()),
    }
}

/// Decode concatenated streams (Python's `LZMAFile` and `lz4.frame` read one after another; an empty lz4
/// frame ends a decoder's output but not the file) until the input is used up, the bound is reached or a
/// stream breaks. Leftover input that does not decode is an error, never silently ignored.
fn read_streams<'a>(
    mut input: std::io::Take<&'a mut dyn Blob>,
    bound: u64,
    what: &str,
    open: impl for<'r> Fn(&'r mut std::io::Take<&'a mut dyn Blob>) -> Result<Box<dyn Read + 'r>, String>,
) -> Inflated {
    let mut out = Inflated::default();
    for _ in 0..MAX_STREAMS {
        if input.limit() == 0 {
            return out;
        }
        let before = input.limit();
        let room = bound.saturating_sub(out.bytes.len() as u64);
        let part = match open(&mut input) {
            Ok(mut reader) => read_bounded(&mut reader, room),
            Err(err) => failed(err),
        };
        out.bytes.extend_from_slice(&part.bytes);
        if part.error.is_some() || part.truncated {
            out.error = part.error;
            out.truncated = part.truncated;
            return out;
        }
        if input.limit() == before {
            out.error = Some(format!(
                "{} bytes after the {what} stream do not decode",
                before
            ));
            return out;
        }
    }
    out.error = Some(format!(
        "more than {MAX_STREAMS} concatenated {what} streams"
    ));
    out
}

/// Concatenated streams decoded from one file.
const MAX_STREAMS: usize = 4096;

fn failed(error: String) -> Inflated {
    Inflated {
        error: Some(error),
        ..Inflated::default()
    }
}

/// Read at most `bound` bytes; say whether more followed and whether the stream broke.
fn read_bounded(reader: &mut dyn Read, bound: u64) -> Inflated {
    let mut out = Inflated::default();
    if let Err(err) = reader.take(bound).read_to_end(&mut out.bytes) {
        out.error = Some(err.to_string());
        return out;
    }
    let mut probe = [0u8; 1];
    match reader.read(&mut probe) {
        Ok(0) => {}
        Ok(_) => out.truncated = true,
        Err(err) => out.error = Some(err.to_string()),
    }
    out
}

#[cfg(test)]
mod tests {
    use std::io::{Cursor, Write};

    use super::*;

    fn zlib(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn run(bytes: &[u8], bound: u64) -> Inflated {
        let codec = Codec::from_magic(bytes).unwrap_or(Codec::Zlib);
        inflate(&mut Cursor::new(bytes), bytes.len() as u64, codec, bound)
    }

    #[test]
    fn inflates_within_the_bound_and_reports_truncation_and_breakage() {
        let z = zlib(&[7u8; 1000]);
        let full = run(&z, 4096);
        assert_eq!(
            (full.bytes.len(), full.truncated, full.error),
            (1000, false, None)
        );
        let cut = run(&z, 10);
        assert!(cut.truncated && cut.bytes.len() == 10);
        let broken = run(&z[..z.len() / 2], 4096);
        assert!(broken.error.is_some());
    }

    #[test]
    fn gzip_header_names_the_member() {
        let mut e = flate2::GzBuilder::new()
            .filename("model.pkl")
            .write(Vec::new(), flate2::Compression::fast());
        e.write_all(b"abc").unwrap();
        let gz = e.finish().unwrap();
        let out = run(&gz, 100);
        assert_eq!(out.name.as_deref(), Some("model.pkl"));
        assert_eq!(out.bytes, b"abc");
    }

    #[test]
    fn magic_numbers_name_the_codec() {
        assert_eq!(Codec::from_magic(b"BZh91AY&SY"), Some(Codec::Bzip2));
        assert_eq!(Codec::from_magic(b"BZhx"), None, "BZh needs a block size");
        assert_eq!(Codec::from_magic(b"\xfd7zXZ\0\0\x04"), Some(Codec::Xz));
        assert_eq!(
            Codec::from_magic(b"\x5d\x00\x00\x80\x00\xff\xff\xff\xff\xff\xff\xff\xff\x00"),
            Some(Codec::Lzma)
        );
        assert_eq!(Codec::from_magic(b"]q\x00(K\x01"), None, "a pickle list");
        assert_eq!(
            Codec::from_magic(b"7z\xbc\xaf\x27\x1c\0\x04"),
            Some(Codec::SevenZip)
        );
        assert_eq!(
            Codec::from_magic(&[0x28, 0xb5, 0x2f, 0xfd, 0]),
            Some(Codec::Zstd)
        );
        assert_eq!(
            Codec::from_magic(&[4, 0x22, 0x4d, 0x18, 0]),
            Some(Codec::Lz4)
        );
    }

    fn lz4(data: &[u8]) -> Vec<u8> {
        let mut e = lz4_flex::frame::FrameEncoder::new(Vec::new());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn lzma(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let options = lzma_rust2::LzmaOptions::with_preset(1);
        let mut e = lzma_rust2::LzmaWriter::new_use_header(&mut out, &options, None).unwrap();
        e.write_all(data).unwrap();
        e.finish().unwrap();
        out
    }

    /// Python reads concatenated LZMA streams and lz4 frames one after another, an empty frame included;
    /// so does the scanner, and leftover bytes that do not decode are an error.
    #[test]
    fn concatenated_streams_are_all_read() {
        let frames = [lz4(b"first "), lz4(b""), lz4(b"second")].concat();
        let out = run(&frames, 4096);
        assert_eq!(
            (out.bytes.as_slice(), out.error),
            (&b"first second"[..], None)
        );
        let streams = [lzma(b"first "), lzma(b"second")].concat();
        let out = run(&streams, 4096);
        assert_eq!(
            (out.bytes.as_slice(), out.error),
            (&b"first second"[..], None)
        );
        let trailing = [lzma(b"first "), b"not lzma at all, just bytes".to_vec()].concat();
        assert!(run(&trailing, 4096).error.is_some());
        // A 2 KiB dictionary (`5d 00 08 00 00`), which joblib's `5d 00` test accepts, is LZMA too.
        let mut small_dict = lzma(b"abc");
        small_dict[1..5].copy_from_slice(&2048u32.to_le_bytes());
        assert_eq!(Codec::from_magic(&small_dict), Some(Codec::Lzma));
    }

    #[test]
    fn a_broken_stream_of_every_codec_is_an_error_not_a_panic() {
        let prefixes: &[&[u8]] = &[
            b"BZh91AY&SY\x00\x01",
            b"\xfd7zXZ\0\0\x04garbage",
            b"\x5d\x00\x00\x80\x00\xff\xff\xff\xff\xff\xff\xff\xff\x00garbage",
            &[0x28, 0xb5, 0x2f, 0xfd, 1, 2, 3],
            // lz4_flex reads a frame cut at a block boundary as ended; a bad frame header is an error.
            &[4, 0x22, 0x4d, 0x18, 0x00, 0x70, 0xdf, 1, 2],
            b"7z\xbc\xaf\x27\x1c\0\x04",
        ];
        for bytes in prefixes {
            let out = run(bytes, 4096);
            assert!(out.error.is_some(), "{bytes:?}: {out:?}");
        }
    }
}
