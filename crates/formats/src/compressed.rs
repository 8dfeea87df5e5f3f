//! gzip and zlib streams (joblib `compress=`, `.tar.gz`), decompressed into memory up to a bound. The caller
//! decides what a truncated or broken stream means; this module only says what happened.

use std::io::Read;

use flate2::read::{MultiGzDecoder, ZlibDecoder};

use crate::sniff::Format;
use crate::Blob;

/// What decompressing a stream produced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inflated {
    /// The decompressed bytes (at most the bound).
    pub bytes: Vec<u8>,
    /// The file name stored in a gzip header, if any.
    pub name: Option<String>,
    /// More data followed the bound.
    pub truncated: bool,
    /// The stream broke after `bytes` (corrupt data, bad checksum, early end).
    pub error: Option<String>,
}

/// Decompress the first `len` bytes of `blob` as `format` (gzip, or zlib for anything else), keeping at
/// most `bound` bytes.
pub fn inflate(blob: &mut dyn Blob, len: u64, format: Format, bound: u64) -> Inflated {
    if format == Format::Gzip {
        let mut decoder = MultiGzDecoder::new(blob.take(len));
        let mut out = read_bounded(&mut decoder, bound);
        out.name = decoder
            .header()
            .and_then(|h| h.filename())
            .map(|n| String::from_utf8_lossy(n).into_owned())
            .filter(|n| !n.is_empty());
        out
    } else {
        read_bounded(&mut ZlibDecoder::new(blob.take(len)), bound)
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

    #[test]
    fn inflates_within_the_bound_and_reports_truncation_and_breakage() {
        let z = zlib(&[7u8; 1000]);
        let full = inflate(&mut Cursor::new(&z), z.len() as u64, Format::Zlib, 4096);
        assert_eq!(
            (full.bytes.len(), full.truncated, full.error),
            (1000, false, None)
        );
        let cut = inflate(&mut Cursor::new(&z), z.len() as u64, Format::Zlib, 10);
        assert!(cut.truncated && cut.bytes.len() == 10);
        let broken = inflate(
            &mut Cursor::new(&z[..z.len() / 2]),
            (z.len() / 2) as u64,
            Format::Zlib,
            4096,
        );
        assert!(broken.error.is_some());
    }

    #[test]
    fn gzip_header_names_the_member() {
        let mut e = flate2::GzBuilder::new()
            .filename("model.pkl")
            .write(Vec::new(), flate2::Compression::fast());
        e.write_all(b"abc").unwrap();
        let gz = e.finish().unwrap();
        let out = inflate(&mut Cursor::new(&gz), gz.len() as u64, Format::Gzip, 100);
        assert_eq!(out.name.as_deref(), Some("model.pkl"));
        assert_eq!(out.bytes, b"abc");
    }
}
