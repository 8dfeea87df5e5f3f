//! A tar writer (ustar, with GNU long names, PAX records, base-256 sizes, links and a bad-checksum knob),
//! gzip/zlib helpers, and the tar and compressed-stream corpus cases (legacy PyTorch tar checkpoints,
//! joblib-style compressed pickles). Written from the POSIX specification, independent of `aegis-formats`.
//!
//! Payloads are harmless (`echo pwned`); nothing here is ever loaded by Python or PyTorch.

use std::io::Write;

use flate2::write::{GzEncoder, ZlibEncoder};
use flate2::{Compression, GzBuilder};

use crate::zip::{state_dict_pickle, tensor_bytes, BENIGN_PICKLE, PAYLOAD_PICKLE};
use crate::Case;

/// How an over-long name is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LongName {
    /// Split into the ustar prefix and name fields (or truncated when it does not fit).
    Ustar,
    /// A GNU `././@LongLink` record (type `L`).
    Gnu,
    /// A PAX extended header (type `x`) with `path=`.
    Pax,
}

/// One member and how to (mis)write it.
#[derive(Debug, Clone)]
pub struct TarMember {
    /// Path inside the archive.
    pub name: String,
    /// Content (regular files).
    pub data: Vec<u8>,
    /// Type flag byte (`0` file, `2` symlink, `1` hard link, `5` directory).
    pub typeflag: u8,
    /// Link target.
    pub link: String,
    /// How a long name is written.
    pub long_name: LongName,
    /// Write a wrong header checksum.
    pub bad_checksum: bool,
    /// Write the size in GNU base-256.
    pub base256: bool,
    /// Write an old v7 header: no `ustar` magic, user or group names.
    pub v7: bool,
    /// Compute the checksum over signed bytes (old Sun and other tars did).
    pub signed_checksum: bool,
    /// Write this text in the size field instead of the usual octal digits.
    pub size_text: Option<String>,
}

impl TarMember {
    /// A regular file.
    pub fn file(name: &str, data: &[u8]) -> TarMember {
        TarMember {
            name: name.to_owned(),
            data: data.to_vec(),
            typeflag: b'0',
            link: String::new(),
            long_name: LongName::Ustar,
            bad_checksum: false,
            base256: false,
            v7: false,
            signed_checksum: false,
            size_text: None,
        }
    }

    /// A directory (name should end with `/`).
    pub fn dir(name: &str) -> TarMember {
        TarMember {
            typeflag: b'5',
            ..TarMember::file(name, b"")
        }
    }

    /// A symbolic link.
    pub fn symlink(name: &str, target: &str) -> TarMember {
        TarMember {
            typeflag: b'2',
            link: target.to_owned(),
            ..TarMember::file(name, b"")
        }
    }

    /// A hard link.
    pub fn hardlink(name: &str, target: &str) -> TarMember {
        TarMember {
            typeflag: b'1',
            ..TarMember::symlink(name, target)
        }
    }

    /// Write the name in a GNU long-name record.
    pub fn gnu_long_name(mut self) -> TarMember {
        self.long_name = LongName::Gnu;
        self
    }

    /// Write the name in a PAX header.
    pub fn pax_name(mut self) -> TarMember {
        self.long_name = LongName::Pax;
        self
    }

    /// Write a wrong checksum.
    pub fn bad_checksum(mut self) -> TarMember {
        self.bad_checksum = true;
        self
    }

    /// Write the size in base-256.
    pub fn base256_size(mut self) -> TarMember {
        self.base256 = true;
        self
    }

    /// Write an old v7 header (no magic).
    pub fn v7(mut self) -> TarMember {
        self.v7 = true;
        self
    }

    /// Compute the header checksum over signed bytes.
    pub fn signed_checksum(mut self) -> TarMember {
        self.signed_checksum = true;
        self
    }

    /// Write `text` in the size field (e.g. `0_00000000052`, which Python's `int(s, 8)` accepts).
    pub fn size_text(mut self, text: &str) -> TarMember {
        self.size_text = Some(text.to_owned());
        self
    }
}

/// Builds a tar archive.
#[derive(Debug, Clone, Default)]
pub struct TarWriter {
    members: Vec<TarMember>,
}

impl TarWriter {
    /// An empty archive.
    pub fn new() -> TarWriter {
        TarWriter::default()
    }

    /// Add a member.
    pub fn member(mut self, member: TarMember) -> TarWriter {
        self.members.push(member);
        self
    }

    /// Add a regular file.
    pub fn file(self, name: &str, data: &[u8]) -> TarWriter {
        self.member(TarMember::file(name, data))
    }

    /// The archive's bytes (members, then two zero blocks).
    pub fn finish(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for m in &self.members {
            write_member(&mut out, m);
        }
        out.extend_from_slice(&[0u8; 1024]);
        out
    }
}

fn write_member(out: &mut Vec<u8>, m: &TarMember) {
    let long = m.name.len() > 100;
    let mut name = m.name.clone();
    let mut prefix = String::new();
    match (long, m.long_name) {
        (false, _) => {}
        (true, LongName::Gnu) => {
            let mut data = m.name.clone().into_bytes();
            data.push(0);
            let ext = TarMember::file("././@LongLink", &data);
            write_header(out, &ext, b'L', "././@LongLink", "", data.len() as u64);
            write_data(out, &data);
            name.truncate(100);
        }
        (true, LongName::Pax) => {
            let data = pax_record("path", &m.name);
            let ext = TarMember::file("PaxHeader", &data);
            write_header(out, &ext, b'x', "PaxHeader/long", "", data.len() as u64);
            write_data(out, &data);
            name.truncate(100);
        }
        (true, LongName::Ustar) => match m.name.rfind('/') {
            Some(cut) if cut <= 155 && m.name.len() - cut - 1 <= 100 => {
                prefix = m.name[..cut].to_owned();
                name = m.name[cut + 1..].to_owned();
            }
            _ => name.truncate(100),
        },
    }
    write_header(out, m, m.typeflag, &name, &prefix, m.data.len() as u64);
    write_data(out, &m.data);
}

/// One PAX record `"<len> key=value\n"`, where `<len>` counts the whole record.
fn pax_record(key: &str, value: &str) -> Vec<u8> {
    let body = format!(" {key}={value}\n");
    let mut n = body.len() + 1;
    while format!("{n}{body}").len() != n {
        n += 1;
    }
    format!("{n}{body}").into_bytes()
}

fn write_header(
    out: &mut Vec<u8>,
    m: &TarMember,
    typeflag: u8,
    name: &str,
    prefix: &str,
    size: u64,
) {
    let mut h = [0u8; 512];
    put(&mut h, 0, name.as_bytes());
    let mode: &[u8] = if typeflag == b'5' {
        b"0000755\0"
    } else {
        b"0000644\0"
    };
    put(&mut h, 100, mode);
    put(&mut h, 108, b"0001750\0");
    put(&mut h, 116, b"0001750\0");
    if let Some(text) = &m.size_text {
        put(&mut h, 124, text.as_bytes());
    } else if m.base256 {
        h[124] = 0x80;
        h[124 + 4..136].copy_from_slice(&size.to_be_bytes());
    } else {
        put(&mut h, 124, format!("{size:011o}\0").as_bytes());
    }
    put(&mut h, 136, b"14640524000\0");
    h[156] = typeflag;
    put(&mut h, 157, m.link.as_bytes());
    if !m.v7 {
        put(&mut h, 257, b"ustar\x0000");
        put(&mut h, 265, b"user");
        put(&mut h, 297, b"user");
        put(&mut h, 345, prefix.as_bytes());
    }
    h[148..156].copy_from_slice(b"        ");
    let mut sum: u32 = if m.signed_checksum {
        h.iter().map(|b| i32::from(*b as i8)).sum::<i32>() as u32
    } else {
        h.iter().map(|b| u32::from(*b)).sum()
    };
    if m.bad_checksum {
        sum += 1;
    }
    put(&mut h, 148, format!("{sum:06o}\0 ").as_bytes());
    out.extend_from_slice(&h);
}

fn put(h: &mut [u8; 512], at: usize, bytes: &[u8]) {
    let end = (at + bytes.len()).min(h.len());
    h[at..end].copy_from_slice(&bytes[..end - at]);
}

fn write_data(out: &mut Vec<u8>, data: &[u8]) {
    out.extend_from_slice(data);
    let pad = (512 - data.len() % 512) % 512;
    out.extend(std::iter::repeat_n(0u8, pad));
}

/// A legacy (PyTorch < 1.6) tar checkpoint: `sys_info`, `pickle`, `storages`, `tensors`.
pub fn legacy_torch_tar(pickle: &[u8]) -> Vec<u8> {
    let sys_info = b"\x80\x02}q\x00(X\x10\x00\x00\x00protocol_versionq\x01M\xe9\x03X\r\x00\x00\x00little_endianq\x02\x88u.";
    let storages = b"\x80\x02K\x00.".to_vec();
    TarWriter::new()
        .file("sys_info", sys_info)
        .file("pickle", pickle)
        .file("storages", &storages)
        .file("tensors", b"\x80\x02K\x00.")
        .finish()
}

/// A gzip stream of `data`, with `name` in the header when given.
pub fn gzip(data: &[u8], name: Option<&str>) -> Vec<u8> {
    let builder = match name {
        Some(n) => GzBuilder::new().filename(n),
        None => GzBuilder::new(),
    };
    let mut enc: GzEncoder<Vec<u8>> = builder.write(Vec::new(), Compression::default());
    enc.write_all(data).expect("writing to a Vec cannot fail");
    enc.finish().expect("writing to a Vec cannot fail")
}

/// A zlib stream of `data` (joblib `compress=True`).
pub fn zlib(data: &[u8]) -> Vec<u8> {
    let mut enc = ZlibEncoder::new(Vec::new(), Compression::default());
    enc.write_all(data).expect("writing to a Vec cannot fail");
    enc.finish().expect("writing to a Vec cannot fail")
}

/// A bzip2 stream of `data` (joblib `compress='bz2'`, pandas `.pkl.bz2`).
pub fn bzip2(data: &[u8]) -> Vec<u8> {
    let mut enc = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
    enc.write_all(data).expect("writing to a Vec cannot fail");
    enc.finish().expect("writing to a Vec cannot fail")
}

/// An xz stream of `data` (joblib `compress='xz'`).
pub fn xz(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut enc = lzma_rust2::XzWriter::new(&mut out, lzma_rust2::XzOptions::with_preset(1))
        .expect("xz options are valid");
    enc.write_all(data).expect("writing to a Vec cannot fail");
    enc.finish().expect("writing to a Vec cannot fail");
    out
}

/// A raw LZMA "alone" stream of `data` as joblib `compress='lzma'` writes it (properties 0x5d, unknown
/// length, end marker).
pub fn lzma_alone(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let options = lzma_rust2::LzmaOptions::with_preset(1);
    let mut enc = lzma_rust2::LzmaWriter::new_use_header(&mut out, &options, None)
        .expect("lzma options are valid");
    enc.write_all(data).expect("writing to a Vec cannot fail");
    enc.finish().expect("writing to a Vec cannot fail");
    out
}

/// A zstd frame of `data` (`.pkl.zst`).
pub fn zstd(data: &[u8]) -> Vec<u8> {
    zstd::stream::encode_all(data, 3).expect("encoding into memory cannot fail")
}

/// An lz4 frame of `data` (joblib `compress='lz4'`).
pub fn lz4(data: &[u8]) -> Vec<u8> {
    let mut enc = lz4_flex::frame::FrameEncoder::new(Vec::new());
    enc.write_all(data).expect("writing to a Vec cannot fail");
    enc.finish().expect("writing to a Vec cannot fail")
}

/// Malicious and benign cases of this format (tar archives and compressed streams).
pub fn corpus() -> Vec<Case> {
    let benign = state_dict_pickle();
    let evil = PAYLOAD_PICKLE;
    let bad_sum = |pkl: &[u8]| {
        TarWriter::new()
            .member(TarMember::file("pickle", pkl).bad_checksum())
            .file("storages", &tensor_bytes())
            .finish()
    };
    let old_style = |pkl: &[u8]| {
        TarWriter::new()
            .member(
                TarMember::file("mod\u{e8}le/pickle", pkl)
                    .v7()
                    .signed_checksum(),
            )
            .member(
                TarMember::file("mod\u{e8}le/storages", &[7; 42])
                    .v7()
                    .size_text("0_0000000052"),
            )
            .finish()
    };
    let long_named = |pkl: &[u8]| {
        let name = format!("{}/model/data.pkl", "checkpoints".repeat(12));
        TarWriter::new()
            .member(TarMember::file(&name, pkl).gnu_long_name())
            .member(TarMember::file(&format!("{name}.bak"), pkl).pax_name())
            .finish()
    };
    vec![
        Case::benign(
            "tar/legacy-torch",
            "model.tar",
            legacy_torch_tar(&benign),
            "legacy PyTorch tar",
        ),
        Case::malicious(
            "tar/legacy-torch-os-system",
            "model.tar",
            legacy_torch_tar(evil),
            "AEG-SCAN-101",
            "payload pickle inside a tar checkpoint",
        ),
        Case::benign(
            "tar/bad-checksum-benign",
            "model.tar",
            bad_sum(&benign),
            "bad header checksum",
        ),
        Case::malicious(
            "tar/bad-checksum-payload",
            "model.tar",
            bad_sum(evil),
            "AEG-SCAN-101",
            "payload behind a bad header checksum (tarfile refuses, scanners skip)",
        ),
        Case::benign(
            "tar/v7-signed-checksum-benign",
            "model.tar",
            old_style(&benign),
            "v7 headers with signed checksums and an underscored octal size",
        ),
        Case::malicious(
            "tar/v7-signed-checksum-payload",
            "model.tar",
            old_style(evil),
            "AEG-SCAN-101",
            "payload in a v7 tar with signed checksums (tarfile reads it, strict sniffers do not)",
        ),
        Case::benign(
            "tar/long-names-benign",
            "model.tar",
            long_named(&benign),
            "GNU and PAX long names",
        ),
        Case::malicious(
            "tar/long-names-payload",
            "model.tar",
            long_named(evil),
            "AEG-SCAN-101",
            "payload in members named by GNU and PAX long-name records",
        ),
        Case::malicious(
            "tar/path-traversal",
            "bundle.tar",
            TarWriter::new()
                .file("model/config.json", b"{}")
                .file("../../.bashrc", b"echo pwned\n")
                .finish(),
            "AEG-SCAN-206",
            "member name climbing out of the extraction directory",
        ),
        Case::benign(
            "tar/ordinary-names",
            "bundle.tar",
            TarWriter::new()
                .file("model/config.json", b"{}")
                .file("model/README", b"hi\n")
                .finish(),
            "ordinary relative member names",
        ),
        Case::malicious(
            "tar/symlink-escape",
            "bundle.tar",
            TarWriter::new()
                .member(TarMember::symlink(
                    "model/weights.bin",
                    "../../../../etc/shadow",
                ))
                .finish(),
            "AEG-SCAN-208",
            "symlink member pointing outside the extraction directory",
        ),
        Case::benign(
            "tar/symlink-inside",
            "bundle.tar",
            TarWriter::new()
                .file("model/weights-v1.bin", &tensor_bytes())
                .member(TarMember::symlink("model/weights.bin", "weights-v1.bin"))
                .finish(),
            "symlink member pointing at a sibling",
        ),
        Case::benign(
            "gzip/pickle-benign",
            "model.pkl.gz",
            gzip(BENIGN_PICKLE, Some("model.pkl")),
            "gzip",
        ),
        Case::malicious(
            "gzip/pickle-os-system",
            "model.pkl.gz",
            gzip(evil, Some("model.pkl")),
            "AEG-SCAN-101",
            "gzip-compressed payload pickle",
        ),
        Case::benign(
            "zlib/joblib-benign",
            "model.joblib",
            zlib(&benign),
            "joblib compress=True",
        ),
        Case::malicious(
            "zlib/joblib-os-system",
            "model.joblib",
            zlib(evil),
            "AEG-SCAN-101",
            "zlib-compressed payload pickle (joblib compress)",
        ),
        Case::malicious(
            "gzip/tar-gz-payload",
            "model.tar.gz",
            gzip(&legacy_torch_tar(evil), None),
            "AEG-SCAN-101",
            "payload pickle in a gzip-compressed tar",
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_have_valid_checksums_and_magic() {
        let tar = TarWriter::new().file("a", b"x").finish();
        assert_eq!(&tar[257..263], b"ustar\0");
        let stored = u32::from_str_radix(std::str::from_utf8(&tar[148..154]).unwrap(), 8).unwrap();
        let sum: u32 = tar[..512]
            .iter()
            .enumerate()
            .map(|(i, b)| {
                if (148..156).contains(&i) {
                    32
                } else {
                    u32::from(*b)
                }
            })
            .sum();
        assert_eq!(stored, sum);
        assert_eq!(tar.len(), 512 * 4);
    }

    #[test]
    fn pax_records_count_their_own_length() {
        let r = pax_record("path", "abc");
        assert_eq!(r, b"12 path=abc\n");
        for len in [90, 95, 96, 1000] {
            let r = pax_record("path", &"x".repeat(len));
            let text = String::from_utf8(r.clone()).unwrap();
            let n: usize = text.split(' ').next().unwrap().parse().unwrap();
            assert_eq!(n, r.len());
        }
    }
}
