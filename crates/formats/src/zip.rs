//! Lenient zip reader, behaving like the loaders that matter: PyTorch's `PyTorchStreamReader` (miniz) and
//! Python's `zipfile` (numpy `.npz`, Keras `.keras`).
//!
//! Like them it finds the archive from its end (the last plausible end-of-central-directory record in the last
//! 64 KiB + 22 bytes), follows ZIP64 locators and extra fields, and *trusts the central directory*: member
//! names, methods and sizes come from there, and each local header only says where the data starts. Data
//! prepended to the archive is handled the way `zipfile` does (its "concat" offset). Everything a stricter
//! reader would reject, or on which two loaders would disagree, is recorded as an [`Anomaly`] instead of
//! failing, so the scanner can both report it and still look inside. When no end record exists but the blob
//! starts with a local header, the local headers are walked instead.
//!
//! Assumptions: the blob is untrusted. Nothing is allocated from a declared size: member data is only ever
//! streamed ([`MemberReader`], [`Window`], [`InflatedBlob`]), the member list is bounded by
//! [`Limits::max_members`], and names and extra fields are at most 64 KiB each by construction.

use std::collections::HashMap;
use std::io::{self, Read, Seek, SeekFrom};

use flate2::read::DeflateDecoder;
use flate2::Crc;

use crate::{Blob, Error, Limits, Result};

const FORMAT: &str = "zip";

const EOCD_SIG: &[u8; 4] = b"PK\x05\x06";
const EOCD_LEN: usize = 22;
const LOCATOR_SIG: &[u8; 4] = b"PK\x06\x07";
const LOCATOR_LEN: u64 = 20;
const EOCD64_SIG: &[u8; 4] = b"PK\x06\x06";
const EOCD64_LEN: u64 = 56;
const CENTRAL_SIG: &[u8; 4] = b"PK\x01\x02";
const CENTRAL_LEN: usize = 46;
const LOCAL_SIG: &[u8; 4] = b"PK\x03\x04";
const LOCAL_LEN: usize = 30;
const DESCRIPTOR_SIG: &[u8; 4] = b"PK\x07\x08";

/// How far from the end the end-of-central-directory record may be (largest comment plus the record).
const SEARCH_WINDOW: u64 = 65_535 + EOCD_LEN as u64;
/// 32-bit sentinel meaning "see the ZIP64 extra field".
const MAX32: u64 = 0xFFFF_FFFF;
/// Ratio above which a member counts as a decompression bomb (deflate's own maximum is about 1032:1).
pub const BOMB_RATIO: u64 = 1000;
/// Expanded size below which a high ratio is not worth mentioning.
pub const BOMB_MIN_EXPANDED: u64 = 1 << 20;

/// Compression method 0: stored.
pub const METHOD_STORED: u16 = 0;
/// Compression method 8: deflate.
pub const METHOD_DEFLATED: u16 = 8;
/// General-purpose flag bit 0: traditional encryption.
pub const FLAG_ENCRYPTED: u16 = 1;
/// General-purpose flag bit 3: sizes and CRC follow the data in a data descriptor.
pub const FLAG_DATA_DESCRIPTOR: u16 = 1 << 3;
/// General-purpose flag bit 6: strong encryption.
pub const FLAG_STRONG_ENCRYPTION: u16 = 1 << 6;

/// Something a strict reader would reject, or on which loaders disagree. Archive-level ones are in
/// [`ZipArchive::anomalies`], member-level ones in [`ZipEntry::anomalies`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Anomaly {
    /// Bytes before the first member. `relative` when the archive's own offsets ignore them (Python's
    /// "concat": the archive was appended to other data), otherwise the offsets account for them.
    PrependedData {
        /// How many bytes precede the first member.
        bytes: u64,
        /// Whether member offsets had to be shifted (Python `zipfile` does, miniz may not).
        relative: bool,
    },
    /// The central directory is not where its declared offset says (it ends before the end record by more
    /// than its size); readers that trust the offset and readers that trust the position disagree.
    CentralDirectoryMoved {
        /// Declared offset.
        declared: u64,
        /// Position implied by the end record (`end - size`).
        actual: u64,
    },
    /// Two different central directories: one where Python's `zipfile` looks (just before the end record)
    /// and one at the declared offset, where miniz (PyTorch) looks. Members of both are listed.
    TwoCentralDirectories {
        /// Where `zipfile` reads the directory (`end - size`).
        python: u64,
        /// Where miniz reads it (the declared offset).
        miniz: u64,
        /// Members listed only by the directory at the declared offset.
        extra_members: u64,
    },
    /// No end-of-central-directory record: the members were found by walking local headers, which
    /// PyTorch and `zipfile` never do (they refuse the file).
    NoCentralDirectory,
    /// A ZIP64 locator points at no ZIP64 end record; the 32-bit values were used.
    Zip64RecordMissing,
    /// The central directory ends early or holds garbage.
    CentralDirectoryCorrupt {
        /// Where parsing stopped.
        offset: u64,
        /// What was wrong.
        detail: String,
    },
    /// The end record's entry count disagrees with the entries actually present (miniz uses the count,
    /// `zipfile` walks the directory).
    EntryCountMismatch {
        /// Count in the end record.
        declared: u64,
        /// Entries found.
        found: u64,
    },
    /// More members than [`Limits::max_members`]; the rest were not listed.
    TooManyMembers {
        /// The bound.
        limit: u64,
    },
    /// The declared expanded size of compressed members exceeds [`Limits::max_expanded_bytes`].
    ExpandedSizeOverLimit {
        /// Sum of declared uncompressed sizes of compressed members.
        declared: u64,
        /// The bound.
        limit: u64,
    },
    /// The local header is missing or malformed: loaders fail on this member.
    LocalHeaderInvalid {
        /// Offset where the header was expected.
        offset: u64,
        /// What was wrong.
        detail: String,
    },
    /// The local header names the member differently from the central directory.
    NameMismatch {
        /// The local header's name.
        local: String,
    },
    /// A field of the local header disagrees with the central directory.
    HeaderMismatch {
        /// Which field: `method`, `crc32`, `compressed_size`, `uncompressed_size`, `encryption_flag`.
        field: &'static str,
        /// Local header value.
        local: u64,
        /// Central directory value.
        central: u64,
    },
    /// A stored member whose compressed and uncompressed sizes differ.
    StoredSizeMismatch {
        /// Declared compressed size.
        compressed: u64,
        /// Declared uncompressed size.
        uncompressed: u64,
    },
    /// The encryption flag (bit 0 or 6) is set. PyTorch reads the data anyway; `zipfile` asks for a password.
    Encrypted,
    /// Sizes and CRC follow the data in a data descriptor (bit 3).
    DataDescriptor,
    /// A compression method other than stored (0) or deflate (8): the content was not read.
    UnsupportedMethod {
        /// The method number.
        method: u16,
    },
    /// Another member has the same name (as Python sees it: up to the first NUL).
    DuplicateName {
        /// Index of the first member with this name.
        first: usize,
    },
    /// A name that is absolute, climbs with `..`, or holds backslashes, NUL or control characters.
    UnsafeName {
        /// What is wrong: see [`name_issues`].
        issues: Vec<&'static str>,
    },
    /// This member's header or data overlaps another member's (overlapping-file zip bomb, or two names for
    /// one content).
    Overlap {
        /// Index of the member it overlaps.
        with: usize,
    },
    /// The data runs past the end of the blob.
    DataOutOfBounds {
        /// Declared end of the data.
        end: u64,
        /// Blob length.
        len: u64,
    },
    /// Expands more than [`BOMB_RATIO`]:1 to more than [`BOMB_MIN_EXPANDED`] bytes.
    ExtremeRatio {
        /// Compressed size.
        compressed: u64,
        /// Declared uncompressed size.
        uncompressed: u64,
    },
    /// A Unix symbolic link (mode `0o120000` in the external attributes); its content is the target.
    Symlink,
}

impl Anomaly {
    /// A short stable name of the anomaly's kind, for grouping and evidence.
    pub fn kind(&self) -> &'static str {
        match self {
            Anomaly::PrependedData { .. } => "prepended-data",
            Anomaly::CentralDirectoryMoved { .. } => "central-directory-moved",
            Anomaly::TwoCentralDirectories { .. } => "two-central-directories",
            Anomaly::NoCentralDirectory => "no-central-directory",
            Anomaly::Zip64RecordMissing => "zip64-record-missing",
            Anomaly::CentralDirectoryCorrupt { .. } => "central-directory-corrupt",
            Anomaly::EntryCountMismatch { .. } => "entry-count-mismatch",
            Anomaly::TooManyMembers { .. } => "too-many-members",
            Anomaly::ExpandedSizeOverLimit { .. } => "expanded-size-over-limit",
            Anomaly::LocalHeaderInvalid { .. } => "local-header-invalid",
            Anomaly::NameMismatch { .. } => "name-mismatch",
            Anomaly::HeaderMismatch { .. } => "header-mismatch",
            Anomaly::StoredSizeMismatch { .. } => "stored-size-mismatch",
            Anomaly::Encrypted => "encrypted",
            Anomaly::DataDescriptor => "data-descriptor",
            Anomaly::UnsupportedMethod { .. } => "unsupported-method",
            Anomaly::DuplicateName { .. } => "duplicate-name",
            Anomaly::UnsafeName { .. } => "unsafe-name",
            Anomaly::Overlap { .. } => "overlap",
            Anomaly::DataOutOfBounds { .. } => "data-out-of-bounds",
            Anomaly::ExtremeRatio { .. } => "extreme-ratio",
            Anomaly::Symlink => "symlink",
        }
    }
}

/// One member, as the central directory describes it (or the local header, when walking local headers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZipEntry {
    /// Position in the central directory.
    pub index: usize,
    /// The name (UTF-8, lossy), as miniz sees it (NUL bytes included).
    pub name: String,
    /// The raw name bytes.
    pub raw_name: Vec<u8>,
    /// General-purpose flags.
    pub flags: u16,
    /// Compression method.
    pub method: u16,
    /// Declared CRC-32 of the uncompressed data.
    pub crc32: u32,
    /// Declared compressed size.
    pub compressed_size: u64,
    /// Declared uncompressed size.
    pub uncompressed_size: u64,
    /// Absolute offset of the local header (prepended data accounted for).
    pub header_offset: u64,
    /// Absolute offset of the data, when the local header could be read.
    pub data_offset: Option<u64>,
    /// `version made by` (high byte: host system; 3 is Unix).
    pub version_made_by: u16,
    /// External attributes (Unix mode in the high 16 bits when made on Unix).
    pub external_attrs: u32,
    /// What is odd about this member.
    pub anomalies: Vec<Anomaly>,
}

impl ZipEntry {
    /// Whether the name ends with `/` (a directory entry).
    pub fn is_dir(&self) -> bool {
        self.raw_name.ends_with(b"/")
    }

    /// Whether an anomaly of `kind` (see [`Anomaly::kind`]) was recorded.
    pub fn has(&self, kind: &str) -> bool {
        self.anomalies.iter().any(|a| a.kind() == kind)
    }

    /// Bytes of stored data a reader yields: Python reads the smaller of both declared sizes.
    pub fn stored_len(&self) -> u64 {
        self.compressed_size.min(self.uncompressed_size)
    }

    /// A streaming reader of the uncompressed content, producing at most `cap` bytes (and never more than
    /// the declared uncompressed size). The encryption flag is ignored, like PyTorch does.
    pub fn reader<'a>(&self, blob: &'a mut dyn Blob, cap: u64) -> Result<MemberReader<'a>> {
        let offset = self.data_offset.ok_or_else(|| {
            Error::malformed(FORMAT, self.header_offset, "local header unreadable")
        })?;
        let window = Window::new(blob, offset, self.compressed_size)
            .map_err(|e| Error::io(FORMAT, offset, e))?;
        let source = match self.method {
            METHOD_STORED => Source::Stored(window),
            METHOD_DEFLATED => Source::Deflated(Box::new(DeflateDecoder::new(window))),
            other => {
                return Err(Error::malformed(
                    FORMAT,
                    self.header_offset,
                    format!("compression method {other} is not supported"),
                ))
            }
        };
        Ok(MemberReader {
            source,
            bound: self.uncompressed_size.min(cap),
            declared: self.uncompressed_size,
            expected_crc: self.crc32,
            produced: 0,
            crc: Crc::new(),
        })
    }

    /// A seekable view of a deflated member's content of its declared uncompressed size, decompressing as
    /// it is read and restarting from the beginning on a backward seek (at most `max_restarts` times), so a
    /// member larger than memory can still be scanned.
    pub fn inflated_blob<'a>(
        &self,
        blob: &'a mut dyn Blob,
        max_restarts: u32,
    ) -> Result<InflatedBlob<'a>> {
        let offset = self.data_offset.ok_or_else(|| {
            Error::malformed(FORMAT, self.header_offset, "local header unreadable")
        })?;
        if self.method != METHOD_DEFLATED {
            return Err(Error::malformed(FORMAT, offset, "member is not deflated"));
        }
        let window = Window::new(blob, offset, self.compressed_size)
            .map_err(|e| Error::io(FORMAT, offset, e))?;
        Ok(InflatedBlob {
            decoder: Some(DeflateDecoder::new(window)),
            pos: 0,
            len: self.uncompressed_size,
            ended: false,
            restarts: 0,
            max_restarts,
        })
    }
}

/// A zip archive's member list and what is odd about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZipArchive {
    /// Members in central-directory order.
    pub entries: Vec<ZipEntry>,
    /// Archive-level anomalies.
    pub anomalies: Vec<Anomaly>,
    /// Absolute offset of the end-of-central-directory record (`None` when walking local headers).
    pub eocd_offset: Option<u64>,
    /// Whether a ZIP64 end record was used.
    pub zip64: bool,
    /// Bytes before the first member (0 for an ordinary archive).
    pub prepended: u64,
}

/// The central directory's extent as the end records describe it.
struct Directory {
    entries: u64,
    size: u64,
    offset: u64,
    /// Where the directory is expected to end (the end record, or the ZIP64 end record).
    end: u64,
    zip64: bool,
}

impl ZipArchive {
    /// List the members of the zip archive in `blob` (`len` bytes). Fails only when no archive can be
    /// found at all; everything else is an anomaly.
    pub fn open(blob: &mut dyn Blob, len: u64, limits: &Limits) -> Result<ZipArchive> {
        let tail_len = len.min(SEARCH_WINDOW);
        let tail_start = len - tail_len;
        let tail = read_vec(blob, tail_start, tail_len)?;
        if let Some(rel) = find_eocd(&tail) {
            let record = tail.get(rel..).unwrap_or_default();
            return Self::from_eocd(blob, len, limits, tail_start + rel as u64, record);
        }
        let head = read_vec(blob, 0, len.min(4))?;
        if head == LOCAL_SIG {
            return Self::from_local_headers(blob, len, limits);
        }
        Err(Error::malformed(
            FORMAT,
            tail_start,
            "no end-of-central-directory record in the last 64 KiB and no local header at offset 0",
        ))
    }

    /// Whether an archive-level anomaly of `kind` was recorded.
    pub fn has(&self, kind: &str) -> bool {
        self.anomalies.iter().any(|a| a.kind() == kind)
    }

    fn from_eocd(
        blob: &mut dyn Blob,
        len: u64,
        limits: &Limits,
        eocd: u64,
        record: &[u8],
    ) -> Result<ZipArchive> {
        let mut anomalies = Vec::new();
        let mut dir = Directory {
            entries: u64::from(le16(record, 10)),
            size: u64::from(le32(record, 12)),
            offset: u64::from(le32(record, 16)),
            end: eocd,
            zip64: false,
        };
        read_zip64_end(blob, len, eocd, &mut dir, &mut anomalies)?;
        let cd_start = dir.end.checked_sub(dir.size).ok_or_else(|| {
            Error::malformed(
                FORMAT,
                eocd,
                format!(
                    "central directory size {} is larger than the {} bytes before it",
                    dir.size, dir.end
                ),
            )
        })?;
        // Python's zipfile: concat = where the directory is - where it says it is.
        let concat = i128::from(cd_start) - i128::from(dir.offset);
        if concat < 0 {
            anomalies.push(Anomaly::CentralDirectoryMoved {
                declared: dir.offset,
                actual: cd_start,
            });
        }
        let mut entries = read_central(blob, cd_start, &dir, concat, limits, &mut anomalies)?;
        if let Some(other) = read_declared_directory(blob, len, cd_start, &dir, limits) {
            let extra_members = merge_directories(&mut entries, other, limits, &mut anomalies);
            if extra_members > 0 {
                anomalies.push(Anomaly::TwoCentralDirectories {
                    python: cd_start,
                    miniz: dir.offset,
                    extra_members,
                });
            }
        }
        for entry in &mut entries {
            read_local(blob, len, entry);
        }
        let mut archive = ZipArchive {
            entries,
            anomalies,
            eocd_offset: Some(eocd),
            zip64: dir.zip64,
            prepended: 0,
        };
        archive.finish(len, limits, cd_start, concat > 0);
        Ok(archive)
    }

    /// Walk local headers from offset 0 (no central directory).
    fn from_local_headers(blob: &mut dyn Blob, len: u64, limits: &Limits) -> Result<ZipArchive> {
        let mut anomalies = vec![Anomaly::NoCentralDirectory];
        let mut entries = Vec::new();
        let mut pos = 0u64;
        let mut inflate_budget = limits.max_expanded_bytes;
        while pos.saturating_add(LOCAL_LEN as u64) <= len {
            if entries.len() as u64 >= limits.max_members {
                anomalies.push(Anomaly::TooManyMembers {
                    limit: limits.max_members,
                });
                break;
            }
            let Some((entry, next)) = walk_one(blob, len, pos, entries.len(), &mut inflate_budget)?
            else {
                break;
            };
            entries.push(entry);
            match next {
                Some(next) if next > pos => pos = next,
                _ => break,
            }
        }
        let mut archive = ZipArchive {
            entries,
            anomalies,
            eocd_offset: None,
            zip64: false,
            prepended: 0,
        };
        archive.finish(len, limits, pos, false);
        Ok(archive)
    }

    /// Checks across members: prepended data, names, duplicates, overlaps, ratios, totals.
    fn finish(&mut self, len: u64, limits: &Limits, cd_start: u64, relative: bool) {
        let first = self
            .entries
            .iter()
            .filter(|e| e.data_offset.is_some())
            .map(|e| e.header_offset)
            .min()
            .unwrap_or(cd_start);
        if first > 0 {
            self.prepended = first;
            self.anomalies.push(Anomaly::PrependedData {
                bytes: first,
                relative,
            });
        }
        let mut declared_total = 0u64;
        for entry in &mut self.entries {
            check_entry(entry, len);
            if entry.method != METHOD_STORED {
                declared_total = declared_total.saturating_add(entry.uncompressed_size);
            }
        }
        if declared_total > limits.max_expanded_bytes {
            self.anomalies.push(Anomaly::ExpandedSizeOverLimit {
                declared: declared_total,
                limit: limits.max_expanded_bytes,
            });
        }
        mark_duplicates(&mut self.entries);
        mark_overlaps(&mut self.entries, len);
    }
}

/// Follow a ZIP64 locator just before the end record, if any, and take the ZIP64 values.
fn read_zip64_end(
    blob: &mut dyn Blob,
    len: u64,
    eocd: u64,
    dir: &mut Directory,
    anomalies: &mut Vec<Anomaly>,
) -> Result<()> {
    let Some(locator_at) = eocd.checked_sub(LOCATOR_LEN) else {
        return Ok(());
    };
    let locator = read_vec(blob, locator_at, LOCATOR_LEN)?;
    if !locator.starts_with(LOCATOR_SIG) {
        return Ok(());
    }
    // Python reads the ZIP64 record right before the locator; miniz trusts the recorded offset.
    let candidates = [locator_at.checked_sub(EOCD64_LEN), Some(le64(&locator, 8))];
    for at in candidates.into_iter().flatten() {
        if at.saturating_add(EOCD64_LEN) > len {
            continue;
        }
        let rec = read_vec(blob, at, EOCD64_LEN)?;
        if rec.starts_with(EOCD64_SIG) {
            dir.entries = le64(&rec, 32);
            dir.size = le64(&rec, 40);
            dir.offset = le64(&rec, 48);
            dir.end = at;
            dir.zip64 = true;
            return Ok(());
        }
    }
    anomalies.push(Anomaly::Zip64RecordMissing);
    Ok(())
}

/// Read the central directory entries (bounded by its size and by `max_members`).
fn read_central(
    blob: &mut dyn Blob,
    cd_start: u64,
    dir: &Directory,
    concat: i128,
    limits: &Limits,
    anomalies: &mut Vec<Anomaly>,
) -> Result<Vec<ZipEntry>> {
    let window =
        Window::new(blob, cd_start, dir.size).map_err(|e| Error::io(FORMAT, cd_start, e))?;
    let mut reader = io::BufReader::with_capacity(64 * 1024, window);
    let mut entries = Vec::new();
    let mut consumed = 0u64;
    let mut limited = false;
    while consumed.saturating_add(CENTRAL_LEN as u64) <= dir.size {
        let at = cd_start.saturating_add(consumed);
        if entries.len() as u64 >= limits.max_members {
            anomalies.push(Anomaly::TooManyMembers {
                limit: limits.max_members,
            });
            limited = true;
            break;
        }
        let mut fixed = [0u8; CENTRAL_LEN];
        if let Err(e) = reader.read_exact(&mut fixed) {
            anomalies.push(corrupt(at, format!("entry header unreadable: {e}")));
            break;
        }
        if &fixed[..4] != CENTRAL_SIG {
            anomalies.push(corrupt(at, "bad central directory entry signature"));
            break;
        }
        let (n, m, k) = (le16(&fixed, 28), le16(&fixed, 30), le16(&fixed, 32));
        let mut name = vec![0u8; usize::from(n)];
        let mut extra = vec![0u8; usize::from(m)];
        let read = reader
            .read_exact(&mut name)
            .and_then(|()| reader.read_exact(&mut extra))
            .and_then(|()| skip(&mut reader, u64::from(k)));
        if let Err(e) = read {
            anomalies.push(corrupt(
                at,
                format!("entry name or extra field unreadable: {e}"),
            ));
            break;
        }
        entries.push(central_entry(entries.len(), &fixed, name, &extra, concat));
        consumed += (CENTRAL_LEN + usize::from(n) + usize::from(m) + usize::from(k)) as u64;
    }
    let found = entries.len() as u64;
    if !limited && found != dir.entries {
        anomalies.push(Anomaly::EntryCountMismatch {
            declared: dir.entries,
            found,
        });
    }
    Ok(entries)
}

/// The directory at the declared offset, as miniz reads it (no "concat" shift), when that is not where
/// `zipfile` reads it and it starts with a central directory entry.
fn read_declared_directory(
    blob: &mut dyn Blob,
    len: u64,
    cd_start: u64,
    dir: &Directory,
    limits: &Limits,
) -> Option<Vec<ZipEntry>> {
    let at = dir.offset;
    if at == cd_start || at.checked_add(dir.size)? > len || dir.size < CENTRAL_LEN as u64 {
        return None;
    }
    if read_vec(blob, at, 4).ok()? != CENTRAL_SIG {
        return None;
    }
    let mut ignored = Vec::new();
    let entries = read_central(blob, at, dir, 0, limits, &mut ignored).ok()?;
    (!entries.is_empty()).then_some(entries)
}

/// Append the members of `other` that `entries` does not already list identically (same name, header
/// offset, sizes, method and CRC), up to `max_members`. Returns how many were added.
fn merge_directories(
    entries: &mut Vec<ZipEntry>,
    other: Vec<ZipEntry>,
    limits: &Limits,
    anomalies: &mut Vec<Anomaly>,
) -> u64 {
    let key = |e: &ZipEntry| {
        (
            e.raw_name.clone(),
            e.header_offset,
            e.compressed_size,
            e.uncompressed_size,
            e.method,
            e.crc32,
        )
    };
    let mut seen: std::collections::HashSet<_> = entries.iter().map(key).collect();
    let mut added = 0u64;
    for mut entry in other {
        if !seen.insert(key(&entry)) {
            continue;
        }
        if entries.len() as u64 >= limits.max_members {
            if !anomalies.iter().any(|a| a.kind() == "too-many-members") {
                anomalies.push(Anomaly::TooManyMembers {
                    limit: limits.max_members,
                });
            }
            break;
        }
        entry.index = entries.len();
        entries.push(entry);
        added += 1;
    }
    added
}

fn corrupt(offset: u64, detail: impl Into<String>) -> Anomaly {
    Anomaly::CentralDirectoryCorrupt {
        offset,
        detail: detail.into(),
    }
}

/// Build an entry from a central directory header, its name and extra field.
fn central_entry(index: usize, h: &[u8], name: Vec<u8>, extra: &[u8], concat: i128) -> ZipEntry {
    let mut uncompressed = u64::from(le32(h, 24));
    let mut compressed = u64::from(le32(h, 20));
    let mut offset = u64::from(le32(h, 42));
    apply_zip64_extra(extra, &mut uncompressed, &mut compressed, &mut offset);
    let mut anomalies = Vec::new();
    let absolute = i128::from(offset) + concat;
    let header_offset = u64::try_from(absolute).unwrap_or_else(|_| {
        anomalies.push(Anomaly::LocalHeaderInvalid {
            offset,
            detail: "local header offset points before the start of the file".into(),
        });
        0
    });
    ZipEntry {
        index,
        name: String::from_utf8_lossy(&name).into_owned(),
        raw_name: name,
        flags: le16(h, 8),
        method: le16(h, 10),
        crc32: le32(h, 16),
        compressed_size: compressed,
        uncompressed_size: uncompressed,
        header_offset,
        data_offset: None,
        version_made_by: le16(h, 4),
        external_attrs: le32(h, 38),
        anomalies,
    }
}

/// Replace 32-bit sentinels by the ZIP64 extra field's values, in the order the specification (and
/// Python) reads them: uncompressed size, compressed size, header offset.
fn apply_zip64_extra(extra: &[u8], uncompressed: &mut u64, compressed: &mut u64, offset: &mut u64) {
    let Some(data) = extra_field(extra, 0x0001) else {
        return;
    };
    let mut at = 0usize;
    for field in [uncompressed, compressed, offset] {
        if *field == MAX32 {
            if let Some(value) = le64_opt(data, at) {
                *field = value;
                at += 8;
            }
        }
    }
}

/// The data of the first extra field with id `id`.
fn extra_field(extra: &[u8], id: u16) -> Option<&[u8]> {
    let mut at = 0usize;
    while at + 4 <= extra.len() {
        let field_id = le16(extra, at);
        let size = usize::from(le16(extra, at + 2));
        let data = extra.get(at + 4..at + 4 + size)?;
        if field_id == id {
            return Some(data);
        }
        at += 4 + size;
    }
    None
}

/// Read the local header of `entry`: where its data starts, and how it disagrees with the directory.
fn read_local(blob: &mut dyn Blob, len: u64, entry: &mut ZipEntry) {
    if entry.has("local-header-invalid") {
        return;
    }
    match parse_local(blob, len, entry.header_offset) {
        Ok(local) => {
            compare_local(entry, &local);
            entry.data_offset = Some(local.data_offset);
        }
        Err(detail) => entry.anomalies.push(Anomaly::LocalHeaderInvalid {
            offset: entry.header_offset,
            detail,
        }),
    }
}

/// A parsed local header.
struct Local {
    flags: u16,
    method: u16,
    crc32: u32,
    compressed: u64,
    uncompressed: u64,
    name: Vec<u8>,
    data_offset: u64,
}

fn parse_local(blob: &mut dyn Blob, len: u64, at: u64) -> Result<Local, String> {
    if at.saturating_add(LOCAL_LEN as u64) > len {
        return Err(format!("local header at {at} is past the end of the file"));
    }
    // One seek, then sequential reads: the blob is often buffered and a seek drops its buffer.
    let mut h = [0u8; LOCAL_LEN];
    blob.seek(SeekFrom::Start(at))
        .and_then(|_| blob.read_exact(&mut h))
        .map_err(|e| e.to_string())?;
    if !h.starts_with(LOCAL_SIG) {
        return Err("bad local header signature".into());
    }
    let (n, m) = (le16(&h, 26), le16(&h, 28));
    let data_offset = at + LOCAL_LEN as u64 + u64::from(n) + u64::from(m);
    if data_offset > len {
        return Err("local name and extra field run past the end of the file".into());
    }
    let mut name = vec![0u8; usize::from(n)];
    let mut extra = vec![0u8; usize::from(m)];
    blob.read_exact(&mut name)
        .and_then(|()| blob.read_exact(&mut extra))
        .map_err(|e| e.to_string())?;
    let mut uncompressed = u64::from(le32(&h, 22));
    let mut compressed = u64::from(le32(&h, 18));
    let mut unused = 0;
    apply_zip64_extra(&extra, &mut uncompressed, &mut compressed, &mut unused);
    Ok(Local {
        flags: le16(&h, 6),
        method: le16(&h, 8),
        crc32: le32(&h, 14),
        compressed,
        uncompressed,
        name,
        data_offset,
    })
}

fn compare_local(entry: &mut ZipEntry, local: &Local) {
    if local.name != entry.raw_name {
        entry.anomalies.push(Anomaly::NameMismatch {
            local: String::from_utf8_lossy(&local.name).into_owned(),
        });
    }
    let mut fields = vec![("method", u64::from(local.method), u64::from(entry.method))];
    let encrypted = |flags: u16| u64::from(flags & (FLAG_ENCRYPTED | FLAG_STRONG_ENCRYPTION) != 0);
    fields.push((
        "encryption_flag",
        encrypted(local.flags),
        encrypted(entry.flags),
    ));
    if local.flags & FLAG_DATA_DESCRIPTOR == 0 {
        fields.push(("crc32", u64::from(local.crc32), u64::from(entry.crc32)));
        fields.push(("compressed_size", local.compressed, entry.compressed_size));
        fields.push((
            "uncompressed_size",
            local.uncompressed,
            entry.uncompressed_size,
        ));
    }
    for (field, l, c) in fields {
        if l != c {
            entry.anomalies.push(Anomaly::HeaderMismatch {
                field,
                local: l,
                central: c,
            });
        }
    }
    if (entry.flags | local.flags) & FLAG_DATA_DESCRIPTOR != 0 {
        entry.anomalies.push(Anomaly::DataDescriptor);
    }
    if local.flags & (FLAG_ENCRYPTED | FLAG_STRONG_ENCRYPTION) != 0 && !entry.has("encrypted") {
        entry.anomalies.push(Anomaly::Encrypted);
    }
}

/// Per-member checks that need no other member.
fn check_entry(entry: &mut ZipEntry, len: u64) {
    let mut found = Vec::new();
    if entry.flags & (FLAG_ENCRYPTED | FLAG_STRONG_ENCRYPTION) != 0 && !entry.has("encrypted") {
        found.push(Anomaly::Encrypted);
    }
    if entry.flags & FLAG_DATA_DESCRIPTOR != 0 && !entry.has("data-descriptor") {
        found.push(Anomaly::DataDescriptor);
    }
    if entry.method != METHOD_STORED && entry.method != METHOD_DEFLATED {
        found.push(Anomaly::UnsupportedMethod {
            method: entry.method,
        });
    }
    if entry.method == METHOD_STORED && entry.compressed_size != entry.uncompressed_size {
        found.push(Anomaly::StoredSizeMismatch {
            compressed: entry.compressed_size,
            uncompressed: entry.uncompressed_size,
        });
    }
    let issues = name_issues(&entry.raw_name);
    if !issues.is_empty() {
        found.push(Anomaly::UnsafeName { issues });
    }
    if let Some(data) = entry.data_offset {
        let end = data.saturating_add(entry.compressed_size);
        if end > len {
            found.push(Anomaly::DataOutOfBounds { end, len });
        }
    }
    if entry.uncompressed_size > BOMB_MIN_EXPANDED
        && entry.uncompressed_size / entry.compressed_size.max(1) > BOMB_RATIO
    {
        found.push(Anomaly::ExtremeRatio {
            compressed: entry.compressed_size,
            uncompressed: entry.uncompressed_size,
        });
    }
    let unix = entry.version_made_by >> 8 == 3;
    if unix && (entry.external_attrs >> 16) & 0o170_000 == 0o120_000 {
        found.push(Anomaly::Symlink);
    }
    entry.anomalies.extend(found);
}

/// Mark members whose name (as Python sees it: up to the first NUL) was already used.
fn mark_duplicates(entries: &mut [ZipEntry]) {
    let mut seen: HashMap<Vec<u8>, usize> = HashMap::new();
    for entry in entries {
        let key = python_name(&entry.raw_name).to_vec();
        match seen.get(&key) {
            Some(&first) => entry.anomalies.push(Anomaly::DuplicateName { first }),
            None => {
                seen.insert(key, entry.index);
            }
        }
    }
}

/// Mark members whose [header, data end) range starts inside an earlier member's range.
fn mark_overlaps(entries: &mut [ZipEntry], len: u64) {
    let mut ranges: Vec<(u64, u64, usize)> = entries
        .iter()
        .enumerate()
        .filter_map(|(i, e)| {
            let data = e.data_offset?;
            Some((
                e.header_offset,
                data.saturating_add(e.compressed_size).min(len),
                i,
            ))
        })
        .collect();
    ranges.sort_unstable();
    let mut reach: Option<(u64, usize)> = None;
    let mut marks = Vec::new();
    for (start, end, i) in ranges {
        match reach {
            Some((far, owner)) if start < far => {
                marks.push((i, owner));
                if end > far {
                    reach = Some((end, i));
                }
            }
            _ => reach = Some((end, i)),
        }
    }
    for (i, owner) in marks {
        let with = entries.get(owner).map_or(owner, |e| e.index);
        if let Some(entry) = entries.get_mut(i) {
            entry.anomalies.push(Anomaly::Overlap { with });
        }
    }
}

/// One local header while walking without a central directory: the entry and where the next header is
/// (`None` when the walk cannot go on). `Ok(None)` when there is no local header at `pos`.
fn walk_one(
    blob: &mut dyn Blob,
    len: u64,
    pos: u64,
    index: usize,
    inflate_budget: &mut u64,
) -> Result<Option<(ZipEntry, Option<u64>)>> {
    let Ok(local) = parse_local(blob, len, pos) else {
        return Ok(None);
    };
    let mut entry = ZipEntry {
        index,
        name: String::from_utf8_lossy(&local.name).into_owned(),
        raw_name: local.name,
        flags: local.flags,
        method: local.method,
        crc32: local.crc32,
        compressed_size: local.compressed,
        uncompressed_size: local.uncompressed,
        header_offset: pos,
        data_offset: Some(local.data_offset),
        version_made_by: 0,
        external_attrs: 0,
        anomalies: Vec::new(),
    };
    if entry.flags & FLAG_DATA_DESCRIPTOR == 0 {
        let next = local.data_offset.checked_add(entry.compressed_size);
        return Ok(Some((entry, next)));
    }
    entry.anomalies.push(Anomaly::DataDescriptor);
    if entry.compressed_size == 0 && entry.method == METHOD_DEFLATED {
        match measure_deflate(blob, local.data_offset, len, inflate_budget) {
            Some((compressed, uncompressed)) => {
                entry.compressed_size = compressed;
                entry.uncompressed_size = uncompressed;
            }
            None => return Ok(Some((entry, None))),
        }
    } else if entry.compressed_size == 0 {
        // A stored member of unknown size: its end cannot be found without a directory.
        return Ok(Some((entry, None)));
    }
    let after = local.data_offset.saturating_add(entry.compressed_size);
    let next = read_descriptor(blob, len, after, &mut entry)?;
    Ok(Some((entry, Some(next))))
}

/// Inflate a deflate stream at `at` to find its compressed and uncompressed lengths.
fn measure_deflate(blob: &mut dyn Blob, at: u64, len: u64, budget: &mut u64) -> Option<(u64, u64)> {
    let window = Window::new(blob, at, len.saturating_sub(at)).ok()?;
    let mut decoder = DeflateDecoder::new(window);
    let produced = io::copy(&mut (&mut decoder).take(*budget), &mut io::sink()).ok()?;
    *budget = budget.saturating_sub(produced);
    let mut probe = [0u8; 1];
    if *budget == 0 && decoder.read(&mut probe).ok()? > 0 {
        return None;
    }
    Some((decoder.total_in(), produced))
}

/// Read the data descriptor after a member's data (optional signature, CRC, sizes); return where the next
/// header starts.
fn read_descriptor(blob: &mut dyn Blob, len: u64, at: u64, entry: &mut ZipEntry) -> Result<u64> {
    let d = read_vec(blob, at, len.saturating_sub(at).min(28))?;
    let body = if d.starts_with(DESCRIPTOR_SIG) { 4 } else { 0 };
    entry.crc32 = le32(&d, body);
    // 32-bit sizes unless the 64-bit reading is the one followed by a header.
    let next64 = at.saturating_add(body as u64 + 20);
    let wide = d.get(body + 20..body + 24) == Some(LOCAL_SIG.as_slice())
        || d.get(body + 20..body + 24) == Some(CENTRAL_SIG.as_slice());
    if wide {
        return Ok(next64);
    }
    Ok(at.saturating_add(body as u64 + 12))
}

/// The name Python's `zipfile` uses: everything before the first NUL.
pub fn python_name(raw: &[u8]) -> &[u8] {
    match raw.iter().position(|b| *b == 0) {
        Some(nul) => raw.get(..nul).unwrap_or(raw),
        None => raw,
    }
}

/// What is unsafe about an archive member name, as short tags: `absolute` (starts with `/` or `\`),
/// `drive` (`C:`), `parent` (a `..` component, with either separator), `backslash`, `nul`, `control`.
/// Empty for an ordinary relative name.
pub fn name_issues(raw: &[u8]) -> Vec<&'static str> {
    let mut issues = Vec::new();
    if raw.first().is_some_and(|b| *b == b'/' || *b == b'\\') {
        issues.push("absolute");
    }
    if raw.len() >= 2
        && raw.first().is_some_and(u8::is_ascii_alphabetic)
        && raw.get(1) == Some(&b':')
    {
        issues.push("drive");
    }
    if raw.split(|b| *b == b'/' || *b == b'\\').any(|c| c == b"..") {
        issues.push("parent");
    }
    if raw.contains(&b'\\') {
        issues.push("backslash");
    }
    if raw.contains(&0) {
        issues.push("nul");
    }
    if raw.iter().any(|b| *b != 0 && (*b < 0x20 || *b == 0x7f)) {
        issues.push("control");
    }
    issues
}

/// Offset of the last plausible end-of-central-directory record inside `tail` (the last bytes of a blob),
/// if any. Plausible: the signature, a whole 22-byte record, and counts and sizes that can describe a
/// directory (ZIP64 sentinels are accepted as they are resolved later).
pub fn find_eocd(tail: &[u8]) -> Option<usize> {
    let last = tail.len().checked_sub(EOCD_LEN)?;
    (0..=last).rev().find(|&i| {
        tail.get(i..i + EOCD_LEN)
            .is_some_and(|rec| rec.starts_with(EOCD_SIG) && plausible_eocd(rec))
    })
}

fn plausible_eocd(rec: &[u8]) -> bool {
    let (on_disk, total) = (le16(rec, 8), le16(rec, 10));
    let (size, offset) = (le32(rec, 12), le32(rec, 16));
    if total == 0xFFFF || on_disk == 0xFFFF || size == u32::MAX || offset == u32::MAX {
        return true;
    }
    on_disk <= total && u64::from(size) >= CENTRAL_LEN as u64 * u64::from(total)
}

// ---------------------------------------------------------------------------------------------------------
// Streaming views.

/// A bounded `Read + Seek` window `[start, start + len)` over another blob. Positions are relative to
/// `start`; reads stop at `len`.
pub struct Window<'a> {
    inner: &'a mut dyn Blob,
    start: u64,
    len: u64,
    pos: u64,
}

impl std::fmt::Debug for Window<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Window")
            .field("start", &self.start)
            .field("len", &self.len)
            .field("pos", &self.pos)
            .finish()
    }
}

impl<'a> Window<'a> {
    /// A window of `len` bytes at `start`, positioned at its beginning.
    pub fn new(inner: &'a mut dyn Blob, start: u64, len: u64) -> io::Result<Self> {
        inner.seek(SeekFrom::Start(start))?;
        Ok(Window {
            inner,
            start,
            len,
            pos: 0,
        })
    }

    /// The window's length.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the window is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Read for Window<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.len.saturating_sub(self.pos);
        let n = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
        if n == 0 {
            return Ok(0);
        }
        let got = self.inner.read(buf.get_mut(..n).unwrap_or_default())?;
        self.pos += got as u64;
        Ok(got)
    }
}

impl Seek for Window<'_> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = resolve_seek(to, self.pos, self.len)?;
        let absolute = self
            .start
            .checked_add(target)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek overflows"))?;
        self.inner.seek(SeekFrom::Start(absolute))?;
        self.pos = target;
        Ok(target)
    }
}

fn resolve_seek(to: SeekFrom, pos: u64, len: u64) -> io::Result<u64> {
    let target = match to {
        SeekFrom::Start(n) => Some(n),
        SeekFrom::Current(d) => pos.checked_add_signed(d),
        SeekFrom::End(d) => len.checked_add_signed(d),
    };
    target
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek before start or overflow"))
}

enum Source<'a> {
    Stored(Window<'a>),
    Deflated(Box<DeflateDecoder<Window<'a>>>),
}

impl Read for Source<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Source::Stored(w) => w.read(buf),
            Source::Deflated(d) => d.read(buf),
        }
    }
}

/// Streams a member's uncompressed content (stored or deflate), computing its CRC-32, never producing more
/// than the declared uncompressed size nor the caller's cap. [`MemberReader::finish`] says whether the
/// content matched its declared size and CRC.
pub struct MemberReader<'a> {
    source: Source<'a>,
    bound: u64,
    declared: u64,
    expected_crc: u32,
    produced: u64,
    crc: Crc,
}

impl std::fmt::Debug for MemberReader<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemberReader")
            .field("bound", &self.bound)
            .field("produced", &self.produced)
            .finish()
    }
}

/// What reading a member to its end showed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Check {
    /// Bytes produced.
    pub bytes: u64,
    /// Declared uncompressed size.
    pub declared: u64,
    /// CRC-32 of the bytes produced.
    pub crc32: u32,
    /// Declared CRC-32.
    pub expected_crc32: u32,
    /// Reading stopped at the caller's cap before the declared size.
    pub capped: bool,
    /// The content continues past its declared size.
    pub longer: bool,
}

impl Check {
    /// Whether the whole declared content was read (so that the CRC is meaningful).
    pub fn complete(&self) -> bool {
        !self.capped && self.bytes == self.declared
    }

    /// Whether the actual size disagrees with the declared one (when not capped).
    pub fn size_mismatch(&self) -> bool {
        !self.capped && (self.bytes != self.declared || self.longer)
    }

    /// Whether the whole content was read and its CRC differs from the declared one.
    pub fn crc_mismatch(&self) -> bool {
        self.complete() && self.crc32 != self.expected_crc32
    }
}

impl MemberReader<'_> {
    /// Read what is left (up to the bound), then report sizes and CRC.
    pub fn finish(mut self) -> io::Result<Check> {
        io::copy(&mut self, &mut io::sink())?;
        let capped = self.bound < self.declared && self.produced == self.bound;
        let mut longer = false;
        if !capped && self.produced == self.declared {
            let mut probe = [0u8; 1];
            longer = matches!(self.source.read(&mut probe), Ok(1));
        }
        Ok(Check {
            bytes: self.produced,
            declared: self.declared,
            crc32: self.crc.sum(),
            expected_crc32: self.expected_crc,
            capped,
            longer,
        })
    }
}

impl Read for MemberReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.bound.saturating_sub(self.produced);
        let n = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
        if n == 0 {
            return Ok(0);
        }
        let out = buf.get_mut(..n).unwrap_or_default();
        let got = self.source.read(out)?;
        self.crc.update(out.get(..got).unwrap_or_default());
        self.produced += got as u64;
        Ok(got)
    }
}

/// A `Read + Seek` view of a deflated member's uncompressed content that decompresses as it goes. Seeking
/// forward decompresses and discards; seeking backward restarts from the beginning, at most `max_restarts`
/// times (then it fails, so a parser that seeks back and forth cannot make the scan quadratic).
pub struct InflatedBlob<'a> {
    decoder: Option<DeflateDecoder<Window<'a>>>,
    pos: u64,
    len: u64,
    ended: bool,
    restarts: u32,
    max_restarts: u32,
}

impl std::fmt::Debug for InflatedBlob<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InflatedBlob")
            .field("pos", &self.pos)
            .field("len", &self.len)
            .field("restarts", &self.restarts)
            .finish()
    }
}

impl InflatedBlob<'_> {
    /// The declared uncompressed length.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the declared length is zero.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn restart(&mut self) -> io::Result<()> {
        self.restarts += 1;
        if self.restarts > self.max_restarts {
            return Err(io::Error::other(format!(
                "more than {} backward seeks over a compressed member",
                self.max_restarts
            )));
        }
        let decoder = self
            .decoder
            .take()
            .ok_or_else(|| io::Error::other("decoder lost after an earlier error"))?;
        let mut window = decoder.into_inner();
        window.seek(SeekFrom::Start(0))?;
        self.decoder = Some(DeflateDecoder::new(window));
        self.pos = 0;
        self.ended = false;
        Ok(())
    }

    fn skip_to(&mut self, target: u64) -> io::Result<()> {
        let mut scratch = [0u8; 8192];
        while self.pos < target.min(self.len) && !self.ended {
            let n = usize::try_from(target.min(self.len) - self.pos)
                .unwrap_or(usize::MAX)
                .min(scratch.len());
            let got = self.read(scratch.get_mut(..n).unwrap_or_default())?;
            if got == 0 {
                self.ended = true;
            }
        }
        self.pos = target;
        Ok(())
    }
}

impl Read for InflatedBlob<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.len.saturating_sub(self.pos);
        let n = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
        if n == 0 || self.ended {
            return Ok(0);
        }
        let decoder = self
            .decoder
            .as_mut()
            .ok_or_else(|| io::Error::other("decoder lost after an earlier error"))?;
        let got = decoder.read(buf.get_mut(..n).unwrap_or_default())?;
        if got == 0 {
            self.ended = true;
        }
        self.pos += got as u64;
        Ok(got)
    }
}

impl Seek for InflatedBlob<'_> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = resolve_seek(to, self.pos, self.len)?;
        if target < self.pos {
            self.restart()?;
        }
        self.skip_to(target)?;
        Ok(target)
    }
}

// ---------------------------------------------------------------------------------------------------------
// Little helpers.

/// Read exactly `n` bytes at `at` (the caller has bounded `n`).
fn read_vec(blob: &mut dyn Blob, at: u64, n: u64) -> Result<Vec<u8>> {
    let n =
        usize::try_from(n).map_err(|_| Error::limit(FORMAT, "read size", n, usize::MAX as u64))?;
    let mut buf = vec![0u8; n];
    blob.seek(SeekFrom::Start(at))
        .and_then(|_| blob.read_exact(&mut buf))
        .map_err(|e| Error::io(FORMAT, at, e))?;
    Ok(buf)
}

fn skip(reader: &mut dyn Read, n: u64) -> io::Result<()> {
    let copied = io::copy(&mut reader.take(n), &mut io::sink())?;
    if copied < n {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    Ok(())
}

fn le16(b: &[u8], at: usize) -> u16 {
    match b.get(at..at + 2) {
        Some(&[x, y]) => u16::from_le_bytes([x, y]),
        _ => 0,
    }
}

fn le32(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4)
        .and_then(|s| <[u8; 4]>::try_from(s).ok())
        .map_or(0, u32::from_le_bytes)
}

fn le64(b: &[u8], at: usize) -> u64 {
    le64_opt(b, at).unwrap_or(0)
}

fn le64_opt(b: &[u8], at: usize) -> Option<u64> {
    b.get(at..at + 8)
        .and_then(|s| <[u8; 8]>::try_from(s).ok())
        .map(u64::from_le_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aegis_test_support::zip::{self as w, Member, Method, ZipWriter};
    use std::io::Cursor;

    fn open(bytes: &[u8]) -> ZipArchive {
        open_with(bytes, &Limits::default())
    }

    fn open_with(bytes: &[u8], limits: &Limits) -> ZipArchive {
        let mut c = Cursor::new(bytes);
        ZipArchive::open(&mut c, bytes.len() as u64, limits).unwrap()
    }

    fn content(bytes: &[u8], entry: &ZipEntry) -> (Vec<u8>, Check) {
        let mut c = Cursor::new(bytes);
        let mut r = entry.reader(&mut c, u64::MAX).unwrap();
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        (out, r.finish().unwrap())
    }

    fn kinds(entry: &ZipEntry) -> Vec<&'static str> {
        entry.anomalies.iter().map(Anomaly::kind).collect()
    }

    #[test]
    fn honest_pytorch_zip_has_no_anomalies() {
        let bytes = w::pytorch_zip(&w::state_dict_pickle());
        let zip = open(&bytes);
        assert!(zip.anomalies.is_empty(), "{:?}", zip.anomalies);
        assert_eq!(zip.entries.len(), 7);
        for e in &zip.entries {
            assert!(e.anomalies.is_empty(), "{}: {:?}", e.name, e.anomalies);
            assert_eq!(e.data_offset.unwrap() % 64, 0);
        }
        let (data, check) = content(&bytes, &zip.entries[4]);
        assert_eq!(zip.entries[4].name, "archive/data/0");
        assert_eq!(data, w::tensor_bytes());
        assert!(check.complete() && !check.crc_mismatch() && !check.size_mismatch());
    }

    #[test]
    fn find_eocd_wants_a_plausible_record() {
        assert_eq!(find_eocd(b"short"), None);
        let mut tail = vec![7u8; 100];
        tail.extend_from_slice(b"PK\x05\x06\0\0\0\0\x05\0\x01\0\x10\0\0\0\0\0\0\0\0\0");
        assert_eq!(find_eocd(&tail), None, "5 entries on disk of 1 total");
        let comment = b"PK\x05\x06 in the comment, too short to be a record";
        let zip = ZipWriter::new().stored("a", b"x").comment(comment).finish();
        assert_eq!(find_eocd(&zip), Some(zip.len() - 22 - comment.len()));
    }

    #[test]
    fn prepended_bytes_are_found_like_python_does() {
        let bytes = ZipWriter::new()
            .stored("a.pkl", b"abc")
            .prepend(&[9; 300])
            .finish();
        let zip = open(&bytes);
        assert_eq!(zip.prepended, 300);
        assert!(zip.anomalies.contains(&Anomaly::PrependedData {
            bytes: 300,
            relative: true
        }));
        assert_eq!(content(&bytes, &zip.entries[0]).0, b"abc");
        let absolute = ZipWriter::new()
            .stored("a.pkl", b"abc")
            .prepend_absolute(&[9; 10])
            .finish();
        let zip = open(&absolute);
        assert!(zip.anomalies.contains(&Anomaly::PrependedData {
            bytes: 10,
            relative: false
        }));
        assert_eq!(content(&absolute, &zip.entries[0]).0, b"abc");
    }

    #[test]
    fn bad_crc_is_found_while_streaming() {
        let bytes = ZipWriter::new()
            .member(Member::stored("a", b"hello").bad_crc())
            .finish();
        let zip = open(&bytes);
        let (data, check) = content(&bytes, &zip.entries[0]);
        assert_eq!(data, b"hello");
        assert!(check.crc_mismatch());
        let good = ZipWriter::new().stored("a", b"hello").finish();
        assert!(!content(&good, &open(&good).entries[0]).1.crc_mismatch());
    }

    #[test]
    fn encrypted_flag_is_recorded_and_data_still_read() {
        let bytes = ZipWriter::new()
            .member(Member::deflated("a", b"plain").encrypted())
            .finish();
        let zip = open(&bytes);
        assert_eq!(kinds(&zip.entries[0]), ["encrypted"]);
        assert_eq!(content(&bytes, &zip.entries[0]).0, b"plain");
    }

    #[test]
    fn local_and_central_disagreements_are_recorded() {
        let bytes = ZipWriter::new()
            .member(Member::stored("local.txt", b"x").central_name("data.pkl"))
            .member(Member::stored("b", b"yy").local_sizes(1, 1))
            .finish();
        let zip = open(&bytes);
        assert_eq!(zip.entries[0].name, "data.pkl");
        assert_eq!(
            zip.entries[0].anomalies,
            [Anomaly::NameMismatch {
                local: "local.txt".into()
            }]
        );
        assert_eq!(
            kinds(&zip.entries[1]),
            ["header-mismatch", "header-mismatch"]
        );
    }

    #[test]
    fn data_descriptors_do_not_count_as_mismatches() {
        let bytes = ZipWriter::new()
            .member(Member::deflated("a", b"some data").data_descriptor())
            .stored("b", b"next")
            .finish();
        let zip = open(&bytes);
        assert_eq!(kinds(&zip.entries[0]), ["data-descriptor"]);
        assert_eq!(content(&bytes, &zip.entries[0]).0, b"some data");
        assert!(zip.entries[1].anomalies.is_empty());
    }

    #[test]
    fn zip64_records_and_extra_fields_are_followed() {
        let bytes = ZipWriter::new()
            .stored("a", b"one")
            .deflated("b", b"two")
            .zip64()
            .finish();
        let zip = open(&bytes);
        assert!(zip.zip64);
        assert!(zip.anomalies.is_empty(), "{:?}", zip.anomalies);
        assert_eq!(zip.entries[1].uncompressed_size, 3);
        assert_eq!(content(&bytes, &zip.entries[1]).0, b"two");
    }

    #[test]
    fn names_duplicates_and_methods_are_checked() {
        let bytes = ZipWriter::new()
            .stored("../../etc/x", b"1")
            .stored("a\\b", b"2")
            .stored("dup", b"3")
            .stored("dup", b"4")
            .member(Member::stored("bz", b"5").method(Method::Other(12)))
            .stored("ok/fine.txt", b"6")
            .finish();
        let zip = open(&bytes);
        let e = &zip.entries;
        assert_eq!(
            e[0].anomalies,
            [Anomaly::UnsafeName {
                issues: vec!["parent"]
            }]
        );
        assert_eq!(
            e[1].anomalies,
            [Anomaly::UnsafeName {
                issues: vec!["backslash"]
            }]
        );
        assert!(e[2].anomalies.is_empty());
        assert_eq!(e[3].anomalies, [Anomaly::DuplicateName { first: 2 }]);
        assert_eq!(e[4].anomalies, [Anomaly::UnsupportedMethod { method: 12 }]);
        assert!(e[5].anomalies.is_empty());
        assert_eq!(name_issues(b"/abs"), ["absolute"]);
        assert_eq!(name_issues(b"C:\\x"), ["drive", "backslash"]);
        assert_eq!(name_issues(b"a\0b"), ["nul"]);
        assert_eq!(python_name(b"a.pkl\0junk"), b"a.pkl");
    }

    #[test]
    fn overlapping_members_and_ratios_are_found() {
        let bytes = w::overlapping_bomb(50, 4 << 20);
        let zip = open(&bytes);
        assert_eq!(zip.entries.len(), 50);
        assert!(zip.entries[0].has("extreme-ratio") && !zip.entries[0].has("overlap"));
        assert!(zip.entries[1..].iter().all(|e| e.has("overlap")));
        let plain = ZipWriter::new()
            .stored("a", b"1")
            .stored("b", b"2")
            .finish();
        assert!(open(&plain).entries.iter().all(|e| !e.has("overlap")));
    }

    #[test]
    fn symlinks_are_recognised() {
        let bytes = ZipWriter::new()
            .member(Member::stored("l", b"/etc/passwd").symlink())
            .finish();
        assert_eq!(kinds(&open(&bytes).entries[0]), ["symlink"]);
    }

    #[test]
    fn member_count_is_bounded() {
        let mut writer = ZipWriter::new();
        for i in 0..20 {
            writer = writer.stored(&format!("m{i}"), b"x");
        }
        let limits = Limits {
            max_members: 5,
            ..Limits::default()
        };
        let zip = open_with(&writer.finish(), &limits);
        assert_eq!(zip.entries.len(), 5);
        assert!(zip.has("too-many-members"));
    }

    #[test]
    fn without_a_central_directory_local_headers_are_walked() {
        let full = ZipWriter::new()
            .stored("a.pkl", b"first")
            .member(Member::deflated("b.pkl", b"second member").data_descriptor())
            .stored("c", b"third")
            .finish();
        let cut = full.windows(4).position(|w| w == b"PK\x01\x02").unwrap();
        let zip = open(&full[..cut]);
        assert!(zip.has("no-central-directory"));
        let names: Vec<_> = zip.entries.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["a.pkl", "b.pkl", "c"]);
        let (data, check) = content(&full[..cut], &zip.entries[1]);
        assert_eq!(data, b"second member");
        assert!(!check.crc_mismatch());
        assert!(ZipArchive::open(&mut Cursor::new(b"not a zip"), 9, &Limits::default()).is_err());
    }

    #[test]
    fn inflated_blob_seeks_back_and_forth() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let bytes = ZipWriter::new().deflated("big", &data).finish();
        let zip = open(&bytes);
        let mut c = Cursor::new(&bytes[..]);
        let mut blob = zip.entries[0].inflated_blob(&mut c, 2).unwrap();
        let mut buf = [0u8; 4];
        blob.seek(SeekFrom::End(-4)).unwrap();
        blob.read_exact(&mut buf).unwrap();
        assert_eq!(buf, data[data.len() - 4..]);
        blob.seek(SeekFrom::Start(10)).unwrap();
        blob.read_exact(&mut buf).unwrap();
        assert_eq!(buf, data[10..14]);
        blob.seek(SeekFrom::Start(0)).unwrap();
        assert!(
            blob.seek(SeekFrom::Start(0)).is_ok(),
            "no movement, no restart"
        );
        blob.seek(SeekFrom::Start(5)).unwrap();
        assert!(
            blob.seek(SeekFrom::Start(1)).is_err(),
            "third restart refused"
        );
    }

    #[test]
    fn reader_is_capped_and_detects_longer_streams() {
        let bytes = ZipWriter::new().deflated("a", &[1u8; 1000]).finish();
        let zip = open(&bytes);
        let mut c = Cursor::new(&bytes[..]);
        let check = zip.entries[0].reader(&mut c, 10).unwrap().finish().unwrap();
        assert!(check.capped && check.bytes == 10 && !check.crc_mismatch());
        let mut lying = zip.entries[0].clone();
        lying.uncompressed_size = 100;
        let check = lying.reader(&mut c, u64::MAX).unwrap().finish().unwrap();
        assert!(check.longer && check.size_mismatch());
    }

    #[test]
    fn both_central_directories_are_listed() {
        let bytes = w::two_directories(w::PAYLOAD_PICKLE);
        let zip = open(&bytes);
        assert!(zip.has("two-central-directories"), "{:?}", zip.anomalies);
        let pickles: Vec<_> = zip
            .entries
            .iter()
            .filter(|e| e.name == "archive/data.pkl")
            .collect();
        assert_eq!(pickles.len(), 2);
        let contents: Vec<_> = pickles.iter().map(|e| content(&bytes, e).0).collect();
        assert!(contents.iter().any(|c| c == w::PAYLOAD_PICKLE));
        assert!(contents.iter().any(|c| c == &w::state_dict_pickle()));
        // Members identical in both directories are listed once.
        let same = w::two_directories(&w::state_dict_pickle());
        let zip = open(&same);
        assert!(zip.has("two-central-directories"));
        let honest = ZipWriter::from_members(w::pytorch_members("archive", w::BENIGN_PICKLE))
            .comment(b"exported by trainer v1.2")
            .finish();
        let zip = open(&honest);
        assert!(!zip.has("two-central-directories"), "{:?}", zip.anomalies);
        assert_eq!(zip.entries.len(), 7);
        let prepended = ZipWriter::from_members(w::pytorch_members("archive", w::BENIGN_PICKLE))
            .prepend(&[0x55; 300])
            .finish();
        assert!(!open(&prepended).has("two-central-directories"));
    }

    #[test]
    fn mutated_archives_never_panic() {
        let base = ZipWriter::new()
            .stored("archive/data.pkl", w::PAYLOAD_PICKLE)
            .member(Member::deflated("archive/x", &[3u8; 300]).data_descriptor())
            .zip64()
            .finish();
        for i in 0..base.len() {
            for v in [0u8, 0xff, 0x7f] {
                let mut bytes = base.clone();
                bytes[i] = v;
                let mut c = Cursor::new(&bytes[..]);
                let Ok(zip) = ZipArchive::open(&mut c, bytes.len() as u64, &Limits::default())
                else {
                    continue;
                };
                for e in &zip.entries {
                    if let Ok(r) = e.reader(&mut c, 1 << 20) {
                        let _ = r.finish();
                    }
                }
            }
            let mut c = Cursor::new(&base[..i]);
            let _ = ZipArchive::open(&mut c, i as u64, &Limits::default());
        }
    }
}
