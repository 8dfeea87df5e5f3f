//! Lenient tar reader (v7, ustar, GNU, PAX), for legacy PyTorch tar checkpoints and model bundles.
//!
//! It follows Python's `tarfile` (what `torch.load` uses for legacy tar checkpoints): header checksums are
//! accepted signed or unsigned, numbers are octal or GNU base-256, GNU `L`/`K` records and PAX `x`/`g`
//! records override names, link targets and sizes, the ustar prefix is joined to the name, and the data of
//! non-regular members is not skipped (as `tarfile` does). Where `tarfile` would stop or fail the reader goes
//! on when it safely can and records a [`TarAnomaly`]: a bad checksum, a truncated archive, an unsafe name.
//!
//! Assumptions: the blob is untrusted. Member data is never read here, only located (`data_offset`);
//! extension records are read into memory only up to [`Limits::max_string`] and the member list is bounded
//! by [`Limits::max_members`].

use std::collections::HashMap;
use std::io::{Read, SeekFrom};

use crate::{Blob, Error, Limits, Result};

const FORMAT: &str = "tar";
const BLOCK: u64 = 512;

/// What kind of member a header describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TarKind {
    /// A regular file (`0`, NUL, `7`).
    Regular,
    /// A hard link (`1`): `link_target` names another member.
    Hardlink,
    /// A symbolic link (`2`).
    Symlink,
    /// A directory (`5`, or a regular name ending with `/`).
    Directory,
    /// Anything else (devices, FIFOs, GNU sparse files...), with its type byte.
    Other(u8),
}

/// Something `tarfile` would reject, or that is unsafe to extract.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TarAnomaly {
    /// The header checksum matches neither the unsigned nor the signed sum. `tarfile` stops reading here
    /// (or fails, for the first header), so later members are invisible to it.
    ChecksumMismatch {
        /// Stored value.
        stored: u64,
        /// Unsigned sum of the header.
        computed: u64,
    },
    /// The archive ends inside a header or member data.
    Truncated {
        /// Where.
        offset: u64,
    },
    /// A header could not be parsed (bad number field, oversized extension record); reading stopped.
    BadHeader {
        /// Where.
        offset: u64,
        /// What was wrong.
        detail: String,
    },
    /// More members than [`Limits::max_members`]; the rest were not listed.
    TooManyMembers {
        /// The bound.
        limit: u64,
    },
    /// Another member has the same name (`tarfile.getmember` returns the last one).
    DuplicateName {
        /// Index of the first member with this name.
        first: usize,
    },
    /// A name that is absolute, climbs with `..`, or holds backslashes, NUL or control characters
    /// (see [`crate::zip::name_issues`]).
    UnsafeName {
        /// What is wrong.
        issues: Vec<&'static str>,
    },
    /// A non-regular member declares data; `tarfile` reads the following blocks as headers while other
    /// tools skip them.
    NonRegularWithData {
        /// Declared size.
        size: u64,
    },
}

impl TarAnomaly {
    /// A short stable name of the anomaly's kind.
    pub fn kind(&self) -> &'static str {
        match self {
            TarAnomaly::ChecksumMismatch { .. } => "checksum-mismatch",
            TarAnomaly::Truncated { .. } => "truncated",
            TarAnomaly::BadHeader { .. } => "bad-header",
            TarAnomaly::TooManyMembers { .. } => "too-many-members",
            TarAnomaly::DuplicateName { .. } => "duplicate-name",
            TarAnomaly::UnsafeName { .. } => "unsafe-name",
            TarAnomaly::NonRegularWithData { .. } => "non-regular-with-data",
        }
    }
}

/// One member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TarEntry {
    /// Position in the archive.
    pub index: usize,
    /// The name after GNU/PAX/prefix processing.
    pub name: String,
    /// What it is.
    pub kind: TarKind,
    /// Declared data size (0 for non-regular members as far as reading goes).
    pub size: u64,
    /// Offset of its (last) header.
    pub header_offset: u64,
    /// Offset of its data.
    pub data_offset: u64,
    /// Link target of hard and symbolic links.
    pub link_target: Option<String>,
    /// Permission bits.
    pub mode: u64,
    /// What is odd about it.
    pub anomalies: Vec<TarAnomaly>,
}

impl TarEntry {
    /// Whether an anomaly of `kind` was recorded.
    pub fn has(&self, kind: &str) -> bool {
        self.anomalies.iter().any(|a| a.kind() == kind)
    }
}

/// A tar archive's member list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TarArchive {
    /// Members in order (extension records folded into the member they describe).
    pub entries: Vec<TarEntry>,
    /// Archive-level anomalies (truncation, limits, unparsable headers).
    pub anomalies: Vec<TarAnomaly>,
}

/// Overrides collected from GNU and PAX extension records for the next member.
#[derive(Debug, Default, Clone)]
struct Overrides {
    name: Option<String>,
    link: Option<String>,
    size: Option<u64>,
}

impl Overrides {
    fn merge(&self, global: &Overrides) -> Overrides {
        Overrides {
            name: self.name.clone().or_else(|| global.name.clone()),
            link: self.link.clone().or_else(|| global.link.clone()),
            size: self.size.or(global.size),
        }
    }
}

impl TarArchive {
    /// List the members of the tar archive in `blob` (`len` bytes). Fails only when the first header is
    /// not a tar header at all.
    pub fn open(blob: &mut dyn Blob, len: u64, limits: &Limits) -> Result<TarArchive> {
        let mut archive = TarArchive {
            entries: Vec::new(),
            anomalies: Vec::new(),
        };
        let mut pos = 0u64;
        let mut pending = Overrides::default();
        let mut global = Overrides::default();
        loop {
            if pos.saturating_add(BLOCK) > len {
                if pos < len {
                    archive
                        .anomalies
                        .push(TarAnomaly::Truncated { offset: pos });
                }
                break;
            }
            let header = read_block(blob, pos)?;
            if header.iter().all(|b| *b == 0) {
                break;
            }
            let stored = parse_number(field(&header, 148, 8));
            let (unsigned, signed) = checksums(&header);
            let checksum_ok = stored.is_some_and(|s| s == unsigned || Some(s) == signed);
            if !checksum_ok && !has_magic(&header) {
                if pos == 0 {
                    return Err(Error::malformed(
                        FORMAT,
                        0,
                        "first block is not a tar header",
                    ));
                }
                archive.anomalies.push(TarAnomaly::BadHeader {
                    offset: pos,
                    detail: "bad checksum and no ustar magic: not a header".into(),
                });
                break;
            }
            let Some(size) = parse_number(field(&header, 124, 12)) else {
                archive.anomalies.push(TarAnomaly::BadHeader {
                    offset: pos,
                    detail: "size field is not a number".into(),
                });
                break;
            };
            let data_at = pos + BLOCK;
            let typeflag = header.get(156).copied().unwrap_or(0);
            if matches!(typeflag, b'L' | b'K' | b'x' | b'g') {
                let target = if typeflag == b'g' {
                    &mut global
                } else {
                    &mut pending
                };
                match read_extension(blob, len, limits, data_at, size, typeflag, target) {
                    Ok(()) => {}
                    Err(anomaly) => {
                        archive.anomalies.push(anomaly);
                        break;
                    }
                }
                pos = data_at.saturating_add(padded(size));
                continue;
            }
            if archive.entries.len() as u64 >= limits.max_members {
                archive.anomalies.push(TarAnomaly::TooManyMembers {
                    limit: limits.max_members,
                });
                break;
            }
            let overrides = std::mem::take(&mut pending).merge(&global);
            let mut entry = build_entry(&header, archive.entries.len(), pos, size, &overrides);
            if !checksum_ok {
                entry.anomalies.push(TarAnomaly::ChecksumMismatch {
                    stored: stored.unwrap_or(0),
                    computed: unsigned,
                });
            }
            // tarfile skips the data of regular members and unknown types only.
            let skips_data = matches!(entry.kind, TarKind::Regular | TarKind::Other(_));
            if !skips_data && entry.size > 0 {
                entry
                    .anomalies
                    .push(TarAnomaly::NonRegularWithData { size: entry.size });
                entry.size = 0;
            }
            let advance = if skips_data { entry.size } else { 0 };
            let truncated = data_at.saturating_add(entry.size) > len;
            archive.entries.push(entry);
            if truncated {
                archive
                    .anomalies
                    .push(TarAnomaly::Truncated { offset: data_at });
                break;
            }
            pos = data_at.saturating_add(padded(advance));
        }
        mark_duplicates(&mut archive.entries);
        Ok(archive)
    }

    /// Whether an archive-level anomaly of `kind` was recorded.
    pub fn has(&self, kind: &str) -> bool {
        self.anomalies.iter().any(|a| a.kind() == kind)
    }
}

fn build_entry(
    header: &[u8],
    index: usize,
    pos: u64,
    size: u64,
    overrides: &Overrides,
) -> TarEntry {
    let typeflag = header.get(156).copied().unwrap_or(0);
    let mut name = overrides.name.clone().unwrap_or_else(|| {
        let base = text(field(header, 0, 100));
        let prefix = text(field(header, 345, 155));
        if field(header, 257, 6) == b"ustar\0" && !prefix.is_empty() {
            format!("{prefix}/{base}")
        } else {
            base
        }
    });
    let kind = match typeflag {
        b'0' | 0 | b'7' if name.ends_with('/') => TarKind::Directory,
        b'0' | 0 | b'7' => TarKind::Regular,
        b'1' => TarKind::Hardlink,
        b'2' => TarKind::Symlink,
        b'5' => TarKind::Directory,
        other => TarKind::Other(other),
    };
    let link_target = match kind {
        TarKind::Hardlink | TarKind::Symlink => Some(
            overrides
                .link
                .clone()
                .unwrap_or_else(|| text(field(header, 157, 100))),
        ),
        _ => None,
    };
    if kind == TarKind::Directory {
        name = name.trim_end_matches('/').to_owned();
    }
    let issues = crate::zip::name_issues(name.as_bytes());
    let mut anomalies = Vec::new();
    if !issues.is_empty() {
        anomalies.push(TarAnomaly::UnsafeName { issues });
    }
    TarEntry {
        index,
        name,
        kind,
        size: overrides.size.unwrap_or(size),
        header_offset: pos,
        data_offset: pos + BLOCK,
        link_target,
        mode: parse_number(field(header, 100, 8)).unwrap_or(0),
        anomalies,
    }
}

/// Read a GNU long name/link or PAX record set into `target`.
fn read_extension(
    blob: &mut dyn Blob,
    len: u64,
    limits: &Limits,
    at: u64,
    size: u64,
    typeflag: u8,
    target: &mut Overrides,
) -> Result<(), TarAnomaly> {
    if size > limits.max_string {
        return Err(TarAnomaly::BadHeader {
            offset: at,
            detail: format!("extension record of {size} bytes is over the limit"),
        });
    }
    if at.saturating_add(size) > len {
        return Err(TarAnomaly::Truncated { offset: at });
    }
    let mut data = Vec::new();
    blob.seek(SeekFrom::Start(at))
        .and_then(|_| blob.take(size).read_to_end(&mut data))
        .map_err(|e| TarAnomaly::BadHeader {
            offset: at,
            detail: e.to_string(),
        })?;
    match typeflag {
        b'L' => target.name = Some(text(&data)),
        b'K' => target.link = Some(text(&data)),
        _ => parse_pax(&data, target),
    }
    Ok(())
}

/// PAX records: `"<len> <key>=<value>\n"`, repeated.
fn parse_pax(data: &[u8], target: &mut Overrides) {
    let mut rest = data;
    while !rest.is_empty() {
        let Some(space) = rest.iter().position(|b| *b == b' ') else {
            return;
        };
        let Some(n) = std::str::from_utf8(rest.get(..space).unwrap_or_default())
            .ok()
            .and_then(|s| s.trim().parse::<usize>().ok())
        else {
            return;
        };
        let Some(record) = rest.get(space + 1..n.max(space + 1)) else {
            return;
        };
        let record = record.strip_suffix(b"\n").unwrap_or(record);
        if let Some(eq) = record.iter().position(|b| *b == b'=') {
            let key = record.get(..eq).unwrap_or_default();
            let value = String::from_utf8_lossy(record.get(eq + 1..).unwrap_or_default());
            match key {
                b"path" => target.name = Some(value.into_owned()),
                b"linkpath" => target.link = Some(value.into_owned()),
                b"size" => target.size = value.trim().parse().ok(),
                _ => {}
            }
        }
        rest = rest.get(n.max(space + 1)..).unwrap_or_default();
    }
}

fn mark_duplicates(entries: &mut [TarEntry]) {
    let mut seen: HashMap<String, usize> = HashMap::new();
    for entry in entries {
        if entry.kind == TarKind::Directory {
            continue;
        }
        match seen.get(&entry.name) {
            Some(&first) => entry.anomalies.push(TarAnomaly::DuplicateName { first }),
            None => {
                seen.insert(entry.name.clone(), entry.index);
            }
        }
    }
}

fn read_block(blob: &mut dyn Blob, at: u64) -> Result<[u8; 512]> {
    let mut block = [0u8; 512];
    blob.seek(SeekFrom::Start(at))
        .and_then(|_| blob.read_exact(&mut block))
        .map_err(|e| Error::io(FORMAT, at, e))?;
    Ok(block)
}

fn field(header: &[u8], at: usize, len: usize) -> &[u8] {
    header.get(at..at + len).unwrap_or_default()
}

/// Bytes up to the first NUL, as UTF-8 (lossy).
fn text(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(bytes.get(..end).unwrap_or_default()).into_owned()
}

fn has_magic(header: &[u8]) -> bool {
    let magic = field(header, 257, 6);
    magic == b"ustar\0" || magic == b"ustar "
}

/// A number field: GNU base-256 (first byte 0x80 positive, 0xff negative: rejected) or octal text read the
/// way `tarfile` does (see [`parse_octal_text`]).
pub fn parse_number(bytes: &[u8]) -> Option<u64> {
    match bytes.first() {
        Some(0x80) => bytes
            .get(1..)?
            .iter()
            .try_fold(0u64, |n, b| n.checked_mul(256)?.checked_add(u64::from(*b))),
        Some(0xff) => None,
        _ => parse_octal_text(bytes),
    }
}

/// Octal text as Python's `int(s.strip() or "0", 8)` reads it after `tarfile` cut the field at its first
/// NUL: ASCII only, surrounding whitespace ignored, an optional sign (negative values are rejected), an
/// optional `0o` prefix, and single underscores between digits (`0_00000000052`).
pub fn parse_octal_text(bytes: &[u8]) -> Option<u64> {
    let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
    let text = bytes.get(..end)?;
    if !text.is_ascii() {
        return None;
    }
    let text = trim_python_space(text);
    if text.is_empty() {
        return Some(0);
    }
    let (negative, rest) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        Some((b'+', rest)) => (false, rest),
        _ => (false, text),
    };
    let digits = match rest {
        [b'0', b'o' | b'O', after @ ..] => after.strip_prefix(b"_").unwrap_or(after),
        _ => rest,
    };
    if digits.is_empty()
        || digits.first() == Some(&b'_')
        || digits.last() == Some(&b'_')
        || digits.windows(2).any(|w| w == b"__")
    {
        return None;
    }
    let value = digits
        .iter()
        .filter(|b| **b != b'_')
        .try_fold(0u64, |n, b| match b {
            b'0'..=b'7' => n.checked_mul(8)?.checked_add(u64::from(b - b'0')),
            _ => None,
        })?;
    (!negative || value == 0).then_some(value)
}

/// Strip the ASCII characters Python's `str.strip()` treats as whitespace (which includes 0x1c..=0x1f).
fn trim_python_space(text: &[u8]) -> &[u8] {
    let space = |b: &u8| matches!(b, b' ' | b'\t'..=b'\r' | 0x1c..=0x1f);
    let start = text.iter().position(|b| !space(b)).unwrap_or(text.len());
    let end = text
        .iter()
        .rposition(|b| !space(b))
        .map_or(start, |i| i + 1);
    text.get(start..end).unwrap_or_default()
}

/// Unsigned and signed header sums with the checksum field as spaces.
fn checksums(header: &[u8]) -> (u64, Option<u64>) {
    let mut unsigned = 0u64;
    let mut signed = 0i64;
    for (i, b) in header.iter().enumerate() {
        let b = if (148..156).contains(&i) { b' ' } else { *b };
        unsigned += u64::from(b);
        signed += i64::from(b as i8);
    }
    (unsigned, u64::try_from(signed).ok())
}

fn padded(size: u64) -> u64 {
    size.saturating_add(BLOCK - 1) / BLOCK * BLOCK
}

#[cfg(test)]
mod tests {
    use super::*;
    use aegis_test_support::tar::{TarMember, TarWriter};
    use std::io::Cursor;

    fn open(bytes: &[u8]) -> TarArchive {
        open_with(bytes, &Limits::default())
    }

    fn open_with(bytes: &[u8], limits: &Limits) -> TarArchive {
        TarArchive::open(&mut Cursor::new(bytes), bytes.len() as u64, limits).unwrap()
    }

    fn data<'a>(bytes: &'a [u8], e: &TarEntry) -> &'a [u8] {
        &bytes[e.data_offset as usize..(e.data_offset + e.size) as usize]
    }

    #[test]
    fn lists_regular_members_with_data_offsets() {
        let bytes = TarWriter::new()
            .member(TarMember::file("pickle", b"\x80\x02}q\x00."))
            .member(TarMember::dir("storages/"))
            .member(TarMember::file("storages/0", &[1; 700]))
            .finish();
        let tar = open(&bytes);
        assert!(tar.anomalies.is_empty());
        let e = &tar.entries;
        assert_eq!(
            (e[0].name.as_str(), e[0].kind),
            ("pickle", TarKind::Regular)
        );
        assert_eq!(data(&bytes, &e[0]), b"\x80\x02}q\x00.");
        assert_eq!(e[1].kind, TarKind::Directory);
        assert_eq!(data(&bytes, &e[2]), &[1; 700][..]);
        assert!(e.iter().all(|e| e.anomalies.is_empty()));
    }

    #[test]
    fn long_names_pax_base256_and_prefix_are_understood() {
        let long = format!("{}/evil.pkl", "d".repeat(120));
        let bytes = TarWriter::new()
            .member(TarMember::file(&long, b"gnu").gnu_long_name())
            .member(TarMember::file(&long, b"pax").pax_name())
            .member(TarMember::file("b256", b"base256").base256_size())
            .member(TarMember::file(&long, b"prefix"))
            .finish();
        let tar = open(&bytes);
        let names: Vec<_> = tar.entries.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, [long.as_str(), long.as_str(), "b256", long.as_str()]);
        assert_eq!(data(&bytes, &tar.entries[2]), b"base256");
        assert_eq!(data(&bytes, &tar.entries[3]), b"prefix");
        assert!(tar.entries[1].has("duplicate-name"));
    }

    #[test]
    fn checksums_links_and_names_are_checked() {
        let bytes = TarWriter::new()
            .member(TarMember::file("a", b"1").bad_checksum())
            .member(TarMember::symlink("link", "/etc/passwd"))
            .member(TarMember::file("../../x", b"2"))
            .member(TarMember::file("ok", b"3"))
            .finish();
        let tar = open(&bytes);
        let e = &tar.entries;
        assert!(e[0].has("checksum-mismatch"));
        assert_eq!(e[1].kind, TarKind::Symlink);
        assert_eq!(e[1].link_target.as_deref(), Some("/etc/passwd"));
        assert_eq!(
            e[2].anomalies,
            [TarAnomaly::UnsafeName {
                issues: vec!["parent"]
            }]
        );
        assert!(e[3].anomalies.is_empty());
    }

    #[test]
    fn truncation_and_member_count_are_bounded() {
        let bytes = TarWriter::new()
            .member(TarMember::file("a", &[7; 2000]))
            .finish();
        let tar = open(&bytes[..1100]);
        assert!(tar.has("truncated"));
        let mut w = TarWriter::new();
        for i in 0..10 {
            w = w.member(TarMember::file(&format!("m{i}"), b"x"));
        }
        let limits = Limits {
            max_members: 3,
            ..Limits::default()
        };
        let tar = open_with(&w.finish(), &limits);
        assert_eq!(tar.entries.len(), 3);
        assert!(tar.has("too-many-members"));
    }

    #[test]
    fn numbers_parse_as_octal_or_base256() {
        assert_eq!(parse_number(b"0000644\0"), Some(0o644));
        assert_eq!(parse_number(b"  12 \0"), Some(10));
        assert_eq!(parse_number(&[0x80, 0, 0, 1, 0]), Some(256));
        assert_eq!(parse_number(&[0xff, 0xff]), None);
        assert_eq!(parse_number(b"9x"), None);
        assert_eq!(
            parse_number(&[0x80, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1]),
            None
        );
    }

    #[test]
    fn numbers_parse_like_python_int_base_8() {
        assert_eq!(parse_number(b"0_00000000052"), Some(0o52));
        assert_eq!(parse_number(b"0o644\0"), Some(0o644));
        assert_eq!(parse_number(b"0O_6_4_4"), Some(0o644));
        assert_eq!(parse_number(b"+17\x1f"), Some(0o17));
        assert_eq!(parse_number(b"\t-0 \0garbage"), Some(0));
        for bad in [
            &b"_17"[..],
            b"17_",
            b"1__7",
            b"0o",
            b"0o__7",
            b"-17",
            b"1 7",
            b"0x17",
            b"8",
            b"\xd9\xa1",
        ] {
            assert_eq!(
                parse_number(bad),
                None,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn v7_headers_with_signed_sums_and_underscored_sizes_are_listed() {
        let v7 = |m: TarMember| m.v7();
        let bytes = TarWriter::new()
            .member(v7(TarMember::file("mod\u{e8}le/pickle", b"\x80\x02}q\x00.")).signed_checksum())
            .member(v7(TarMember::file("storages", &[7; 42])).size_text("0_0000000052"))
            .member(v7(TarMember::file("tensors", b"x")))
            .finish();
        let tar = open(&bytes);
        assert!(tar.anomalies.is_empty(), "{:?}", tar.anomalies);
        assert_eq!(tar.entries.len(), 3);
        assert!(tar.entries.iter().all(|e| e.anomalies.is_empty()));
        assert_eq!(data(&bytes, &tar.entries[1]), &[7; 42][..]);
        let sniffed = |b: &[u8]| crate::sniff::sniff(b, &[], b.len() as u64);
        assert_eq!(sniffed(&bytes), crate::sniff::Format::Tar);
        // A wrong sum (neither signed nor unsigned) is not a v7 header; a bad size stops the listing.
        let bad = TarWriter::new()
            .member(v7(TarMember::file("mod\u{e8}le/pickle", b"x")).bad_checksum())
            .finish();
        assert_ne!(sniffed(&bad), crate::sniff::Format::Tar);
        let bytes = TarWriter::new()
            .file("a", b"1")
            .member(TarMember::file("b", b"2").size_text("0__1"))
            .file("c", b"3")
            .finish();
        let tar = open(&bytes);
        assert_eq!(tar.entries.len(), 1);
        assert!(tar.has("bad-header"), "{:?}", tar.anomalies);
    }

    #[test]
    fn garbage_is_an_error_and_mutations_never_panic() {
        assert!(
            TarArchive::open(&mut Cursor::new(vec![1u8; 1024]), 1024, &Limits::default()).is_err()
        );
        let base = TarWriter::new()
            .member(TarMember::file(&"n".repeat(150), b"data").pax_name())
            .member(TarMember::file("b", b"x").gnu_long_name())
            .finish();
        for i in (0..base.len()).step_by(3) {
            let mut bytes = base.clone();
            bytes[i] ^= 0xa5;
            let _ = TarArchive::open(
                &mut Cursor::new(&bytes),
                bytes.len() as u64,
                &Limits::default(),
            );
        }
    }
}
