//! GGUF (llama.cpp): magic `GGUF`, a little-endian `u32` version (1–3), tensor and metadata counts, metadata
//! key/values, tensor infos, then tensor data aligned to `general.alignment` (default 32).
//!
//! Version 1 used `u32` for counts, string lengths, array lengths and dimensions; versions 2 and 3 use `u64`.
//! Files are many GiB but the metadata sits at the start, so [`parse`] streams the header from a [`Blob`] and
//! never reads tensor data (numeric arrays past what is kept are skipped with a seek). Every count and length
//! is checked against the bytes left in the file *and* against [`Limits`] before anything is allocated: a
//! count of 2^60 fails on the spot. What cannot be read stops the parse, and everything read before is kept,
//! so chat templates of a file broken on purpose are still examined. A count over [`Limits::max_entries`]
//! that does fit in the file is read over (recorded as [`Anomaly::TooManyEntries`]) rather than fatal, and
//! chat templates are always read (up to [`MAX_TEMPLATE`]) whatever the string budget.

use std::collections::HashSet;
use std::io::{Read, SeekFrom};

use crate::{Blob, Error, Limits, Result};

const FORMAT: &str = "gguf";

/// Alignment when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: u64 = 32;
/// Most dimensions a tensor may have (`GGML_MAX_DIMS`).
pub const MAX_DIMS: u32 = 4;
/// Skips up to this many bytes are read and discarded rather than seeked over.
const SMALL_SKIP: u64 = 64 * 1024;
/// Anomalies kept per file; further ones are counted in [`Gguf::anomalies_dropped`].
pub const MAX_ANOMALIES: usize = 1024;
/// Bytes of a chat template always read, whatever the kept-strings budget and [`Limits::max_string`];
/// a longer template keeps this prefix ([`Value::TruncatedString`]).
pub const MAX_TEMPLATE: u64 = 64 << 20;

/// Whether a metadata key holds a chat template (`tokenizer.chat_template` or `tokenizer.chat_template.<name>`).
pub fn is_template_key(key: &str) -> bool {
    key == "tokenizer.chat_template" || key.starts_with("tokenizer.chat_template.")
}

/// Metadata value types, as numbered by the specification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueType {
    /// 0
    U8,
    /// 1
    I8,
    /// 2
    U16,
    /// 3
    I16,
    /// 4
    U32,
    /// 5
    I32,
    /// 6
    F32,
    /// 7 (one byte, 0 or 1)
    Bool,
    /// 8
    String,
    /// 9
    Array,
    /// 10
    U64,
    /// 11
    I64,
    /// 12
    F64,
}

impl ValueType {
    /// The type numbered `n`, if any.
    pub fn from_u32(n: u32) -> Option<ValueType> {
        use ValueType::*;
        Some(match n {
            0 => U8,
            1 => I8,
            2 => U16,
            3 => I16,
            4 => U32,
            5 => I32,
            6 => F32,
            7 => Bool,
            8 => String,
            9 => Array,
            10 => U64,
            11 => I64,
            12 => F64,
            _ => return None,
        })
    }

    /// Encoded size of a fixed-size type; `None` for strings and arrays.
    pub fn fixed_size(self) -> Option<u64> {
        use ValueType::*;
        match self {
            U8 | I8 | Bool => Some(1),
            U16 | I16 => Some(2),
            U32 | I32 | F32 => Some(4),
            U64 | I64 | F64 => Some(8),
            String | Array => None,
        }
    }
}

/// A metadata value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Any unsigned integer type (`U8`..`U64`), with its type.
    UInt(ValueType, u64),
    /// Any signed integer type, with its type.
    Int(ValueType, i64),
    /// `F32` or `F64`.
    Float(ValueType, f64),
    /// A boolean (a byte other than 0/1 is an anomaly and reads as `true`).
    Bool(bool),
    /// A string (invalid UTF-8 is replaced and recorded as an anomaly).
    String(String),
    /// A string not kept because the in-memory budget was spent; its length.
    SkippedString(u64),
    /// A chat template longer than [`MAX_TEMPLATE`]: its first [`MAX_TEMPLATE`] bytes and its full length.
    TruncatedString {
        /// The prefix read.
        prefix: String,
        /// Declared length in bytes.
        len: u64,
    },
    /// An array: item type, declared length, and the first items (up to the kept budget).
    Array {
        /// Type of every item.
        item_type: ValueType,
        /// Declared number of items.
        len: u64,
        /// Items kept (a prefix).
        items: Vec<Value>,
    },
}

impl Value {
    /// The string, if this is a kept string value.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }
}

/// One metadata key/value.
#[derive(Debug, Clone, PartialEq)]
pub struct Kv {
    /// The key.
    pub key: String,
    /// File offset of the key's length prefix.
    pub offset: u64,
    /// File offset of the value (for a string: of its first byte, after the length).
    pub value_offset: u64,
    /// The value.
    pub value: Value,
}

/// Element block size and bytes per block of a ggml tensor type, with its name.
pub fn ggml_type(t: u32) -> Option<(&'static str, u64, u64)> {
    Some(match t {
        0 => ("F32", 1, 4),
        1 => ("F16", 1, 2),
        2 => ("Q4_0", 32, 18),
        3 => ("Q4_1", 32, 20),
        6 => ("Q5_0", 32, 22),
        7 => ("Q5_1", 32, 24),
        8 => ("Q8_0", 32, 34),
        9 => ("Q8_1", 32, 36),
        10 => ("Q2_K", 256, 84),
        11 => ("Q3_K", 256, 110),
        12 => ("Q4_K", 256, 144),
        13 => ("Q5_K", 256, 176),
        14 => ("Q6_K", 256, 210),
        15 => ("Q8_K", 256, 292),
        16 => ("IQ2_XXS", 256, 66),
        17 => ("IQ2_XS", 256, 74),
        18 => ("IQ3_XXS", 256, 98),
        19 => ("IQ1_S", 256, 50),
        20 => ("IQ4_NL", 32, 18),
        21 => ("IQ3_S", 256, 110),
        22 => ("IQ2_S", 256, 82),
        23 => ("IQ4_XS", 256, 136),
        24 => ("I8", 1, 1),
        25 => ("I16", 1, 2),
        26 => ("I32", 1, 4),
        27 => ("I64", 1, 8),
        28 => ("F64", 1, 8),
        29 => ("IQ1_M", 256, 56),
        30 => ("BF16", 1, 2),
        34 => ("TQ1_0", 256, 54),
        35 => ("TQ2_0", 256, 66),
        39 => ("MXFP4", 32, 17),
        _ => return None,
    })
}

/// One tensor info.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    /// Tensor name.
    pub name: String,
    /// File offset of the info record.
    pub info_offset: u64,
    /// Dimensions (innermost first, as ggml stores them).
    pub dims: Vec<u64>,
    /// ggml type number.
    pub ggml_type: u32,
    /// Offset of the data relative to the start of the data section.
    pub offset: u64,
    /// Data size in bytes, when the type is known and the size computable.
    pub n_bytes: Option<u64>,
}

/// A structural departure from the specification.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Anomaly {
    /// A count or length declares more than the rest of the file could hold.
    CountExceedsFile {
        /// File offset of the count.
        offset: u64,
        /// What was counted.
        what: &'static str,
        /// The declared value.
        count: u64,
        /// Bytes left in the file at that point.
        remaining: u64,
    },
    /// A metadata key appears twice.
    DuplicateKey {
        /// The key.
        key: String,
        /// Offset of the second occurrence.
        offset: u64,
    },
    /// A tensor name appears twice.
    DuplicateTensor {
        /// The name.
        name: String,
        /// Offset of the second info record.
        offset: u64,
    },
    /// A string (key, value or name) is not valid UTF-8.
    InvalidUtf8 {
        /// Offset of the string.
        offset: u64,
    },
    /// A boolean byte other than 0 or 1.
    InvalidBool {
        /// Offset of the byte.
        offset: u64,
        /// The byte.
        byte: u8,
    },
    /// `general.alignment` is not a non-zero power-of-two `u32`; the default is used.
    BadAlignment {
        /// What was found.
        detail: String,
    },
    /// A tensor cannot be sized: unknown ggml type, `ne[0]` not a multiple of the block, overflow.
    InvalidTensor {
        /// Tensor name.
        name: String,
        /// Offset of the info record.
        offset: u64,
        /// What is wrong.
        detail: String,
    },
    /// A tensor's data offset is not a multiple of the alignment.
    Misaligned {
        /// Tensor name.
        name: String,
        /// Its relative offset.
        offset: u64,
        /// The alignment.
        alignment: u64,
    },
    /// A tensor's data ends past the end of the file.
    OutOfBounds {
        /// Tensor name.
        name: String,
        /// Absolute start.
        start: u64,
        /// Absolute end (exclusive).
        end: u64,
        /// File length.
        file_len: u64,
    },
    /// Two tensors share bytes.
    Overlap {
        /// The tensor that starts first.
        first: String,
        /// The tensor starting inside it.
        second: String,
        /// Absolute start of the shared bytes.
        start: u64,
        /// Absolute end (exclusive).
        end: u64,
    },
    /// A count over [`Limits::max_entries`] whose items fit in the file: the items past the limit were
    /// read over (not kept) so that later keys, chat templates above all, are still read.
    TooManyEntries {
        /// File offset of the count.
        offset: u64,
        /// What was counted (`array length`, `metadata count`).
        what: &'static str,
        /// The declared value.
        count: u64,
        /// The limit.
        limit: u64,
    },
    /// Bytes no tensor owns, beyond alignment padding: between tensors or after the last one.
    HiddenBytes {
        /// Absolute start.
        start: u64,
        /// Absolute end (exclusive).
        end: u64,
        /// The tensor that follows, or `None` for trailing bytes.
        before: Option<String>,
    },
}

/// What [`parse`] read from a GGUF header.
#[derive(Debug, Default)]
pub struct Gguf {
    /// Format version.
    pub version: u32,
    /// Declared tensor count.
    pub tensor_count: u64,
    /// Declared metadata count.
    pub kv_count: u64,
    /// Metadata read (all of it unless [`Gguf::stopped`]).
    pub metadata: Vec<Kv>,
    /// Tensor infos read.
    pub tensors: Vec<TensorInfo>,
    /// Alignment in force.
    pub alignment: u64,
    /// Absolute offset of the data section, when the tensor infos were all read.
    pub data_start: Option<u64>,
    /// File length.
    pub file_len: u64,
    /// Structural departures from the specification.
    pub anomalies: Vec<Anomaly>,
    /// Anomalies not kept past [`MAX_ANOMALIES`].
    pub anomalies_dropped: u64,
    /// Why the parse stopped early, if it did; everything before is kept.
    pub stopped: Option<Error>,
}

impl Gguf {
    fn note(&mut self, anomaly: Anomaly) {
        if self.anomalies.len() < MAX_ANOMALIES {
            self.anomalies.push(anomaly);
        } else {
            self.anomalies_dropped = self.anomalies_dropped.saturating_add(1);
        }
    }

    /// The metadata value of `key` (the first one, as llama.cpp would refuse a duplicate).
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.metadata
            .iter()
            .find(|kv| kv.key == key)
            .map(|kv| &kv.value)
    }
}

/// Parse the header of a GGUF blob of `len` bytes. Errors only when the fixed header (magic, version,
/// counts) cannot be read or names an unsupported version; later problems stop the parse and are recorded
/// in [`Gguf::stopped`] and [`Gguf::anomalies`].
pub fn parse(blob: &mut dyn Blob, len: u64, limits: &Limits) -> Result<Gguf> {
    let mut r = Reader {
        blob,
        pos: 0,
        len,
        wide: true,
        kept_items: 0,
        kept_bytes: 0,
        limits,
    };
    r.blob
        .seek(SeekFrom::Start(0))
        .map_err(|e| Error::io(FORMAT, 0, e))?;
    let mut gguf = Gguf {
        file_len: len,
        alignment: DEFAULT_ALIGNMENT,
        ..Gguf::default()
    };
    read_fixed_header(&mut r, &mut gguf)?;
    if let Err(err) = read_body(&mut r, &mut gguf) {
        gguf.stopped.get_or_insert(err);
    }
    Ok(gguf)
}

fn read_fixed_header(r: &mut Reader<'_>, g: &mut Gguf) -> Result<()> {
    let magic = r.bytes4()?;
    if &magic != b"GGUF" {
        return Err(Error::malformed(FORMAT, 0, "missing GGUF magic"));
    }
    g.version = r.u32()?;
    match g.version {
        1 => r.wide = false,
        2 | 3 => {}
        v if v & 0xffff == 0 => {
            return Err(Error::malformed(
                FORMAT,
                4,
                format!("big-endian or byte-swapped version {v:#x}"),
            ))
        }
        v => {
            return Err(Error::malformed(
                FORMAT,
                4,
                format!("unsupported version {v}"),
            ))
        }
    }
    let counts_at = r.pos;
    g.tensor_count = r.count()?;
    g.kv_count = r.count()?;
    let (min_kv, min_ti) = if r.wide { (13, 24) } else { (9, 20) };
    let need = g.kv_count.checked_mul(min_kv).and_then(|a| {
        g.tensor_count
            .checked_mul(min_ti)
            .and_then(|b| a.checked_add(b))
    });
    let remaining = r.remaining();
    if need.is_none_or(|n| n > remaining) {
        let (what, count) = if g.kv_count.checked_mul(min_kv).is_none_or(|n| n > remaining) {
            ("metadata count", g.kv_count)
        } else {
            ("tensor count", g.tensor_count)
        };
        g.note(Anomaly::CountExceedsFile {
            offset: counts_at,
            what,
            count,
            remaining,
        });
        g.stopped = Some(Error::malformed(
            FORMAT,
            counts_at,
            format!("{what} {count} cannot fit in the file"),
        ));
        // Keep reading what is there: the metadata may still hold a template worth checking.
    }
    Ok(())
}

fn read_body(r: &mut Reader<'_>, g: &mut Gguf) -> Result<()> {
    read_metadata(r, g)?;
    if g.stopped.is_some() {
        return Ok(());
    }
    apply_alignment(g);
    read_tensor_infos(r, g)?;
    let data_start = align_up(r.pos, g.alignment)
        .ok_or_else(|| Error::malformed(FORMAT, r.pos, "data section offset overflows"))?;
    g.data_start = Some(data_start);
    check_layout(g, data_start);
    Ok(())
}

/// Read the key/values. Past [`Limits::max_entries`] (when the count fits in the file, so each key/value
/// takes file bytes and the loop is bounded by the file) the entries are still read but only chat
/// templates are kept, so a template placed after junk entries is still examined.
fn read_metadata(r: &mut Reader<'_>, g: &mut Gguf) -> Result<()> {
    let limit = r.limits.max_entries;
    if g.kv_count > limit && g.stopped.is_none() {
        g.note(Anomaly::TooManyEntries {
            offset: if r.wide { 16 } else { 12 },
            what: "metadata count",
            count: g.kv_count,
            limit,
        });
    }
    let mut seen = HashSet::new();
    for _ in 0..g.kv_count {
        if r.remaining() == 0 {
            break;
        }
        let offset = r.pos;
        let key = r.string(g)?;
        let type_at = r.pos;
        let vtype = r.value_type(type_at)?;
        let value_offset = r.pos
            + if vtype == ValueType::String {
                r.len_size()
            } else {
                0
            };
        let template = is_template_key(&key);
        let value = if template && vtype == ValueType::String {
            r.template_value(g)?
        } else {
            r.value(vtype, 0, g)?
        };
        let keep = template || (g.metadata.len() as u64) < limit;
        if !keep {
            continue;
        }
        if !seen.insert(key.clone()) {
            g.note(Anomaly::DuplicateKey {
                key: key.clone(),
                offset,
            });
        }
        g.metadata.push(Kv {
            key,
            offset,
            value_offset,
            value,
        });
    }
    Ok(())
}

fn apply_alignment(g: &mut Gguf) {
    let detail = match g.get("general.alignment") {
        None => return,
        Some(Value::UInt(ValueType::U32, a)) if *a != 0 && a.is_power_of_two() => {
            g.alignment = *a;
            return;
        }
        Some(other) => format!("general.alignment is {other:?}"),
    };
    g.note(Anomaly::BadAlignment { detail });
}

fn read_tensor_infos(r: &mut Reader<'_>, g: &mut Gguf) -> Result<()> {
    if g.tensor_count > r.limits.max_entries {
        return Err(Error::limit(
            FORMAT,
            "tensor count",
            g.tensor_count,
            r.limits.max_entries,
        ));
    }
    let min_info = if r.wide { 24 } else { 20 };
    r.check_count(g, 8, "tensor count", g.tensor_count, min_info)?;
    let mut names = HashSet::new();
    for _ in 0..g.tensor_count {
        let info_offset = r.pos;
        let name = r.string(g)?;
        let n_dims = r.u32()?;
        if n_dims > MAX_DIMS {
            return Err(Error::malformed(
                FORMAT,
                info_offset,
                format!("tensor `{name}` has {n_dims} dimensions (at most {MAX_DIMS})"),
            ));
        }
        let mut dims = Vec::with_capacity(n_dims as usize);
        for _ in 0..n_dims {
            dims.push(r.count()?);
        }
        let ggml_type = r.u32()?;
        let offset = r.u64()?;
        if !names.insert(name.clone()) {
            g.note(Anomaly::DuplicateTensor {
                name: name.clone(),
                offset: info_offset,
            });
        }
        let n_bytes = match tensor_size(&dims, ggml_type) {
            Ok(n) => Some(n),
            Err(detail) => {
                g.note(Anomaly::InvalidTensor {
                    name: name.clone(),
                    offset: info_offset,
                    detail,
                });
                None
            }
        };
        g.tensors.push(TensorInfo {
            name,
            info_offset,
            dims,
            ggml_type,
            offset,
            n_bytes,
        });
    }
    Ok(())
}

/// Bytes of a tensor of `dims` and ggml type `t`, as ggml computes them.
pub fn tensor_size(dims: &[u64], t: u32) -> std::result::Result<u64, String> {
    let (name, block, block_bytes) =
        ggml_type(t).ok_or_else(|| format!("unknown ggml type {t}"))?;
    let ne0 = dims.first().copied().unwrap_or(1);
    if ne0 % block != 0 {
        return Err(format!(
            "ne[0] = {ne0} is not a multiple of the {name} block size {block}"
        ));
    }
    let rows = dims
        .iter()
        .skip(1)
        .try_fold(1u64, |acc, d| acc.checked_mul(*d))
        .filter(|n| *n <= i64::MAX as u64);
    (ne0 / block)
        .checked_mul(block_bytes)
        .and_then(|row| rows.and_then(|n| row.checked_mul(n)))
        .filter(|n| *n <= i64::MAX as u64)
        .ok_or_else(|| format!("size of {name} tensor {dims:?} overflows"))
}

fn align_up(x: u64, alignment: u64) -> Option<u64> {
    let rem = x % alignment;
    if rem == 0 {
        Some(x)
    } else {
        x.checked_add(alignment - rem)
    }
}

/// Alignment, bounds, overlaps and hidden bytes of the tensor data.
fn check_layout(g: &mut Gguf, data_start: u64) {
    let alignment = g.alignment;
    let file_len = g.file_len;
    let mut notes = Vec::new();
    let mut ranges = Vec::with_capacity(g.tensors.len());
    for t in &g.tensors {
        if t.offset % alignment != 0 {
            notes.push(Anomaly::Misaligned {
                name: t.name.clone(),
                offset: t.offset,
                alignment,
            });
        }
        let Some(size) = t.n_bytes else { continue };
        let start = data_start.checked_add(t.offset);
        let end = start.and_then(|s| s.checked_add(size));
        match (start, end) {
            (Some(start), Some(end)) if end <= file_len => {
                ranges.push((start, end, t.name.clone()))
            }
            _ => notes.push(Anomaly::OutOfBounds {
                name: t.name.clone(),
                start: start.unwrap_or(u64::MAX),
                end: end.unwrap_or(u64::MAX),
                file_len,
            }),
        }
    }
    ranges.sort();
    let mut covered = data_start;
    let mut owner = String::new();
    for (start, end, name) in ranges {
        if start == end {
            continue;
        }
        if start < covered {
            notes.push(Anomaly::Overlap {
                first: owner.clone(),
                second: name.clone(),
                start,
                end: end.min(covered),
            });
        } else if align_up(covered, alignment).is_some_and(|padded| start > padded) {
            notes.push(Anomaly::HiddenBytes {
                start: covered,
                end: start,
                before: Some(name.clone()),
            });
        }
        if end > covered {
            covered = end;
            owner = name;
        }
    }
    if align_up(covered, alignment).is_some_and(|padded| file_len > padded) {
        notes.push(Anomaly::HiddenBytes {
            start: covered,
            end: file_len,
            before: None,
        });
    }
    for n in notes {
        g.note(n);
    }
}

/// `buf` as a string; invalid UTF-8 (at `at`) is replaced and noted.
fn utf8(g: &mut Gguf, at: u64, buf: Vec<u8>) -> String {
    match String::from_utf8(buf) {
        Ok(s) => s,
        Err(err) => {
            g.note(Anomaly::InvalidUtf8 { offset: at });
            String::from_utf8_lossy(err.as_bytes()).into_owned()
        }
    }
}

/// A bounded little-endian reader that knows its position and the bytes left.
struct Reader<'a> {
    blob: &'a mut dyn Blob,
    pos: u64,
    len: u64,
    /// `u64` counts and lengths (v2+) or `u32` (v1).
    wide: bool,
    kept_items: u64,
    kept_bytes: u64,
    limits: &'a Limits,
}

impl Reader<'_> {
    fn remaining(&self) -> u64 {
        self.len.saturating_sub(self.pos)
    }

    fn fill(&mut self, buf: &mut [u8]) -> Result<()> {
        let n = buf.len() as u64;
        if n > self.remaining() {
            return Err(Error::malformed(FORMAT, self.pos, "truncated"));
        }
        self.blob
            .read_exact(buf)
            .map_err(|e| Error::io(FORMAT, self.pos, e))?;
        self.pos += n;
        Ok(())
    }

    fn skip(&mut self, n: u64) -> Result<()> {
        let to = self
            .pos
            .checked_add(n)
            .filter(|to| *to <= self.len)
            .ok_or_else(|| Error::malformed(FORMAT, self.pos, "truncated"))?;
        // Small skips (vocabulary strings) read through the buffer: a seek would discard it every time.
        if n <= SMALL_SKIP {
            let copied = std::io::copy(&mut (&mut *self.blob).take(n), &mut std::io::sink())
                .map_err(|e| Error::io(FORMAT, self.pos, e))?;
            if copied != n {
                return Err(Error::malformed(FORMAT, self.pos, "truncated"));
            }
        } else {
            self.blob
                .seek(SeekFrom::Start(to))
                .map_err(|e| Error::io(FORMAT, self.pos, e))?;
        }
        self.pos = to;
        Ok(())
    }

    fn bytes4(&mut self) -> Result<[u8; 4]> {
        let mut b = [0u8; 4];
        self.fill(&mut b)?;
        Ok(b)
    }

    fn u8(&mut self) -> Result<u8> {
        let mut b = [0u8; 1];
        self.fill(&mut b)?;
        Ok(b[0])
    }

    fn u16(&mut self) -> Result<u16> {
        let mut b = [0u8; 2];
        self.fill(&mut b)?;
        Ok(u16::from_le_bytes(b))
    }

    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.bytes4()?))
    }

    fn u64(&mut self) -> Result<u64> {
        let mut b = [0u8; 8];
        self.fill(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    /// A count or length: `u64` from version 2, `u32` in version 1.
    fn count(&mut self) -> Result<u64> {
        if self.wide {
            self.u64()
        } else {
            self.u32().map(u64::from)
        }
    }

    fn len_size(&self) -> u64 {
        if self.wide {
            8
        } else {
            4
        }
    }

    fn value_type(&mut self, at: u64) -> Result<ValueType> {
        let t = self.u32()?;
        ValueType::from_u32(t)
            .ok_or_else(|| Error::malformed(FORMAT, at, format!("unknown metadata value type {t}")))
    }

    /// Check a declared count of items of at least `min_size` bytes each against the file and the limit.
    fn check_count(
        &self,
        g: &mut Gguf,
        at: u64,
        what: &'static str,
        count: u64,
        min_size: u64,
    ) -> Result<()> {
        let remaining = self.remaining();
        if count.checked_mul(min_size).is_none_or(|n| n > remaining) {
            g.note(Anomaly::CountExceedsFile {
                offset: at,
                what,
                count,
                remaining,
            });
            return Err(Error::malformed(
                FORMAT,
                at,
                format!("{what} {count} cannot fit in the file"),
            ));
        }
        Ok(())
    }

    /// A length-prefixed string, always kept (keys, names).
    fn string(&mut self, g: &mut Gguf) -> Result<String> {
        let at = self.pos;
        let n = self.count()?;
        self.check_count(g, at, "string length", n, 1)?;
        if n > self.limits.max_string {
            return Err(Error::limit(
                FORMAT,
                "string length",
                n,
                self.limits.max_string,
            ));
        }
        self.string_body(g, at, n)
    }

    fn string_body(&mut self, g: &mut Gguf, at: u64, n: u64) -> Result<String> {
        let mut buf = vec![0u8; n as usize];
        self.fill(&mut buf)?;
        Ok(utf8(g, at, buf))
    }

    /// A chat template: read whatever the kept-strings budget, up to [`MAX_TEMPLATE`] bytes (a longer one
    /// keeps that prefix and the rest is skipped).
    fn template_value(&mut self, g: &mut Gguf) -> Result<Value> {
        let at = self.pos;
        let n = self.count()?;
        self.check_count(g, at, "string length", n, 1)?;
        let read = n.min(MAX_TEMPLATE);
        self.kept_bytes = self.kept_bytes.saturating_add(read);
        let mut buf = vec![0u8; read as usize];
        self.fill(&mut buf)?;
        if read == n {
            return Ok(Value::String(utf8(g, at, buf)));
        }
        self.skip(n - read)?;
        // Cut a character split by the cap rather than calling the template invalid UTF-8.
        if let Err(err) = std::str::from_utf8(&buf) {
            if err.error_len().is_none() {
                buf.truncate(err.valid_up_to());
            }
        }
        Ok(Value::TruncatedString {
            prefix: utf8(g, at, buf),
            len: n,
        })
    }

    /// A string value, kept while the in-memory budget lasts.
    fn string_value(&mut self, g: &mut Gguf) -> Result<Value> {
        let at = self.pos;
        let n = self.count()?;
        self.check_count(g, at, "string length", n, 1)?;
        let budget = self.limits.max_in_memory.saturating_sub(self.kept_bytes);
        if n > self.limits.max_string || n > budget {
            self.skip(n)?;
            return Ok(Value::SkippedString(n));
        }
        self.kept_bytes += n;
        self.string_body(g, at, n).map(Value::String)
    }

    fn value(&mut self, t: ValueType, depth: usize, g: &mut Gguf) -> Result<Value> {
        use ValueType as T;
        Ok(match t {
            T::U8 => Value::UInt(t, u64::from(self.u8()?)),
            T::I8 => Value::Int(t, i64::from(self.u8()? as i8)),
            T::U16 => Value::UInt(t, u64::from(self.u16()?)),
            T::I16 => Value::Int(t, i64::from(self.u16()? as i16)),
            T::U32 => Value::UInt(t, u64::from(self.u32()?)),
            T::I32 => Value::Int(t, i64::from(self.u32()? as i32)),
            T::F32 => Value::Float(t, f64::from(f32::from_bits(self.u32()?))),
            T::U64 => Value::UInt(t, self.u64()?),
            T::I64 => Value::Int(t, self.u64()? as i64),
            T::F64 => Value::Float(t, f64::from_bits(self.u64()?)),
            T::Bool => {
                let at = self.pos;
                let byte = self.u8()?;
                if byte > 1 {
                    g.note(Anomaly::InvalidBool { offset: at, byte });
                }
                Value::Bool(byte != 0)
            }
            T::String => self.string_value(g)?,
            T::Array => self.array(depth + 1, g)?,
        })
    }

    fn array(&mut self, depth: usize, g: &mut Gguf) -> Result<Value> {
        if depth > self.limits.max_depth {
            return Err(Error::limit(
                FORMAT,
                "array nesting depth",
                depth as u64,
                self.limits.max_depth as u64,
            ));
        }
        let type_at = self.pos;
        let item_type = self.value_type(type_at)?;
        let count_at = self.pos;
        let len = self.count()?;
        let min_size = item_type.fixed_size().unwrap_or(match item_type {
            ValueType::Array => 4 + self.len_size(),
            _ => self.len_size(),
        });
        self.check_count(g, count_at, "array length", len, min_size)?;
        // Over the limit but within the file: read over it (bounded by the file) so later keys are read.
        let oversized = len > self.limits.max_entries;
        if oversized {
            g.note(Anomaly::TooManyEntries {
                offset: count_at,
                what: "array length",
                count: len,
                limit: self.limits.max_entries,
            });
        }
        let keep = if oversized {
            0
        } else {
            (self.limits.max_container_items as u64)
                .min(self.limits.max_entries.saturating_sub(self.kept_items))
                .min(len)
        };
        let mut items = Vec::with_capacity(keep as usize);
        for _ in 0..keep {
            items.push(self.value(item_type, depth, g)?);
        }
        self.kept_items = self.kept_items.saturating_add(keep);
        let rest = len.saturating_sub(keep);
        match item_type.fixed_size() {
            Some(size) if item_type != ValueType::Bool || oversized => {
                let n = rest
                    .checked_mul(size)
                    .ok_or_else(|| Error::malformed(FORMAT, count_at, "array size overflows"))?;
                self.skip(n)?
            }
            _ => {
                for _ in 0..rest {
                    self.skip_value(item_type, depth, g)?;
                }
            }
        }
        Ok(Value::Array {
            item_type,
            len,
            items,
        })
    }

    /// Read past a value without keeping it (strings are seeked over, not read).
    fn skip_value(&mut self, t: ValueType, depth: usize, g: &mut Gguf) -> Result<()> {
        match t {
            ValueType::String => {
                let at = self.pos;
                let n = self.count()?;
                self.check_count(g, at, "string length", n, 1)?;
                self.skip(n)
            }
            ValueType::Array => self.array(depth + 1, g).map(|_| ()),
            _ => self.value(t, depth, g).map(|_| ()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aegis_test_support::gguf as tg;
    use std::io::Cursor;

    fn parse_bytes(bytes: &[u8]) -> Gguf {
        parse(
            &mut Cursor::new(bytes),
            bytes.len() as u64,
            &Limits::default(),
        )
        .unwrap()
    }

    #[test]
    fn honest_model_parses_cleanly() {
        let g = parse_bytes(&tg::honest_model(tg::LLAMA3_TEMPLATE));
        assert!(g.stopped.is_none(), "{:?}", g.stopped);
        assert_eq!(g.anomalies, vec![]);
        assert_eq!(g.version, 3);
        assert_eq!(g.tensors.len(), 3);
        assert_eq!(
            g.get("tokenizer.chat_template").and_then(Value::as_str),
            Some(tg::LLAMA3_TEMPLATE)
        );
        match g.get("tokenizer.ggml.tokens") {
            Some(Value::Array {
                item_type: ValueType::String,
                len,
                items,
            }) => {
                assert_eq!(*len, items.len() as u64);
                assert!(*len > 10);
            }
            other => panic!("{other:?}"),
        }
        let kv = g
            .metadata
            .iter()
            .find(|kv| kv.key == "tokenizer.chat_template")
            .unwrap();
        let bytes = tg::honest_model(tg::LLAMA3_TEMPLATE);
        let at = kv.value_offset as usize;
        assert_eq!(&bytes[at..at + 10], &tg::LLAMA3_TEMPLATE.as_bytes()[..10]);
        assert_eq!(g.data_start.map(|d| d % 32), Some(0));
    }

    #[test]
    fn version_one_uses_narrow_counts() {
        let g = parse_bytes(
            &tg::Writer::new(1)
                .kv("general.name", tg::Val::Str("tiny".into()))
                .build(),
        );
        assert!(g.stopped.is_none(), "{:?}", g.stopped);
        assert_eq!(g.get("general.name").and_then(Value::as_str), Some("tiny"));
    }

    #[test]
    fn rejects_bad_magic_and_versions() {
        for bytes in [
            &b"GGUX\x03\0\0\0"[..],
            b"GGUF\x09\0\0\0",
            b"GGUF\0\0\0\x03",
            b"GG",
        ] {
            assert!(parse(
                &mut Cursor::new(bytes),
                bytes.len() as u64,
                &Limits::default()
            )
            .is_err());
        }
    }

    #[test]
    fn huge_counts_fail_fast() {
        let g = parse_bytes(&tg::count_lie());
        assert!(matches!(
            g.anomalies[0],
            Anomaly::CountExceedsFile {
                what: "metadata count",
                ..
            }
        ));
        assert!(g.stopped.is_some());
        let g = parse_bytes(&tg::string_length_lie());
        assert!(g.anomalies.iter().any(|a| matches!(
            a,
            Anomaly::CountExceedsFile {
                what: "string length",
                ..
            }
        )));
        let g = parse_bytes(&tg::array_length_lie());
        assert!(g.anomalies.iter().any(|a| matches!(
            a,
            Anomaly::CountExceedsFile {
                what: "array length",
                ..
            }
        )));
    }

    #[test]
    fn templates_before_a_lie_are_kept() {
        let g = parse_bytes(&tg::count_lie());
        assert!(g.get("tokenizer.chat_template").is_some());
    }

    #[test]
    fn limits_bound_counts_and_depth() {
        let bytes = tg::honest_model(tg::CHATML_TEMPLATE);
        let small = Limits {
            max_entries: 2,
            ..Limits::default()
        };
        let g = parse(&mut Cursor::new(&bytes), bytes.len() as u64, &small).unwrap();
        assert!(g.stopped.as_ref().is_some_and(Error::is_limit));
        let mut nested = tg::Val::U8(1);
        for _ in 0..12 {
            nested = tg::Val::Array(vec![nested]);
        }
        let g = parse_bytes(&tg::Writer::new(3).kv("deep", nested).build());
        assert!(g.stopped.as_ref().is_some_and(Error::is_limit));
    }

    #[test]
    fn oversized_array_is_read_over_and_later_keys_kept() {
        let bytes = tg::template_after_huge_array("{{ x }}", 2_000_000);
        let g = parse_bytes(&bytes);
        assert!(g.stopped.is_none(), "{:?}", g.stopped);
        assert!(g.anomalies.iter().any(|a| matches!(
            a,
            Anomaly::TooManyEntries {
                what: "array length",
                count: 2_000_000,
                ..
            }
        )));
        assert_eq!(
            g.get("tokenizer.chat_template").and_then(Value::as_str),
            Some("{{ x }}")
        );
        assert_eq!(g.tensors.len(), 1);
        // Oversized string and nested arrays are walked too; a lying one is still a count error.
        let small = Limits {
            max_entries: 2,
            ..Limits::default()
        };
        let strs = tg::Val::Array((0..5).map(|i| tg::Val::Str(format!("s{i}"))).collect());
        let nested = tg::Val::Array(vec![strs.clone(), strs]);
        let bytes = tg::Writer::new(3)
            .kv("a", nested)
            .kv("tokenizer.chat_template", tg::Val::Str("{{ y }}".into()))
            .build();
        let g = parse(&mut Cursor::new(&bytes), bytes.len() as u64, &small).unwrap();
        assert!(g.stopped.is_none(), "{:?}", g.stopped);
        assert_eq!(
            g.get("tokenizer.chat_template").and_then(Value::as_str),
            Some("{{ y }}")
        );
        let g = parse(
            &mut Cursor::new(tg::array_length_lie()),
            tg::array_length_lie().len() as u64,
            &small,
        )
        .unwrap();
        assert!(g.stopped.is_some());
    }

    #[test]
    fn templates_ignore_the_string_budget_and_limit() {
        let tiny = Limits {
            max_string: 32,
            max_in_memory: 4,
            ..Limits::default()
        };
        let long = format!("{{{{ z }}}}{}", " ".repeat(40));
        let bytes = tg::Writer::new(3)
            .kv("general.description", tg::Val::Str("long value".into()))
            .kv("tokenizer.chat_template.x", tg::Val::Str(long.clone()))
            .build();
        let g = parse(&mut Cursor::new(&bytes), bytes.len() as u64, &tiny).unwrap();
        assert_eq!(
            g.get("general.description"),
            Some(&Value::SkippedString(10))
        );
        assert_eq!(
            g.get("tokenizer.chat_template.x").and_then(Value::as_str),
            Some(long.as_str())
        );
    }

    #[test]
    fn template_over_the_cap_keeps_a_prefix() {
        let key = b"tokenizer.chat_template";
        let n = MAX_TEMPLATE + 3;
        let mut bytes = b"GGUF\x03\0\0\0".to_vec();
        bytes.extend_from_slice(&0u64.to_le_bytes());
        bytes.extend_from_slice(&1u64.to_le_bytes());
        bytes.extend_from_slice(&(key.len() as u64).to_le_bytes());
        bytes.extend_from_slice(key);
        bytes.extend_from_slice(&8u32.to_le_bytes());
        bytes.extend_from_slice(&n.to_le_bytes());
        bytes.resize(bytes.len() + n as usize, b'a');
        let g = parse_bytes(&bytes);
        assert!(g.stopped.is_none(), "{:?}", g.stopped);
        match g.get("tokenizer.chat_template") {
            Some(Value::TruncatedString { prefix, len }) => {
                assert_eq!(*len, n);
                assert_eq!(prefix.len() as u64, MAX_TEMPLATE);
            }
            other => panic!("{:?}", other.map(|_| "not truncated")),
        }
    }

    #[test]
    fn metadata_count_over_the_limit_keeps_templates() {
        let small = Limits {
            max_entries: 2,
            ..Limits::default()
        };
        let bytes = tg::honest_model(tg::CHATML_TEMPLATE);
        let g = parse(&mut Cursor::new(&bytes), bytes.len() as u64, &small).unwrap();
        assert!(g.metadata.len() <= 3);
        assert_eq!(
            g.get("tokenizer.chat_template").and_then(Value::as_str),
            Some(tg::CHATML_TEMPLATE)
        );
        assert!(g.anomalies.iter().any(|a| matches!(
            a,
            Anomaly::TooManyEntries {
                what: "metadata count",
                ..
            }
        )));
    }

    #[test]
    fn layout_problems_are_reported() {
        let g = parse_bytes(&tg::tensor_out_of_bounds());
        assert!(g
            .anomalies
            .iter()
            .any(|a| matches!(a, Anomaly::OutOfBounds { .. })));
        let g = parse_bytes(&tg::tensor_overlap());
        assert!(g
            .anomalies
            .iter()
            .any(|a| matches!(a, Anomaly::Overlap { .. })));
        let g = parse_bytes(&tg::tensor_misaligned());
        assert!(g
            .anomalies
            .iter()
            .any(|a| matches!(a, Anomaly::Misaligned { .. })));
        let g = parse_bytes(&tg::trailing_bytes());
        assert!(g
            .anomalies
            .iter()
            .any(|a| matches!(a, Anomaly::HiddenBytes { before: None, .. })));
        let g = parse_bytes(&tg::duplicate_key());
        assert!(g
            .anomalies
            .iter()
            .any(|a| matches!(a, Anomaly::DuplicateKey { .. })));
    }

    #[test]
    fn large_vocabulary_keeps_a_prefix_and_reads_on() {
        let toks: Vec<tg::Val> = (0..150_000)
            .map(|i| tg::Val::Str(format!("tok{i}")))
            .collect();
        let bytes = tg::Writer::new(3)
            .kv("tokenizer.ggml.tokens", tg::Val::Array(toks))
            .kv("tokenizer.chat_template", tg::Val::Str("{{ x }}".into()))
            .build();
        let mut reader = std::io::BufReader::new(Cursor::new(&bytes));
        let g = parse(&mut reader, bytes.len() as u64, &Limits::default()).unwrap();
        assert!(g.stopped.is_none(), "{:?}", g.stopped);
        match g.get("tokenizer.ggml.tokens") {
            Some(Value::Array { len, items, .. }) => {
                assert_eq!(*len, 150_000);
                assert_eq!(items.len(), Limits::default().max_container_items);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            g.get("tokenizer.chat_template").and_then(Value::as_str),
            Some("{{ x }}")
        );
    }

    #[test]
    fn tensor_sizes_follow_ggml() {
        assert_eq!(tensor_size(&[64, 2], 2), Ok(2 * 2 * 18));
        assert_eq!(tensor_size(&[256], 14), Ok(210));
        assert_eq!(tensor_size(&[3, 3], 0), Ok(36));
        assert!(tensor_size(&[33], 8).is_err());
        assert!(tensor_size(&[1], 4).is_err());
        assert!(tensor_size(&[1, u64::MAX, 2], 0).is_err());
    }

    #[test]
    fn invalid_type_and_bool_and_utf8() {
        let mut w = tg::Writer::new(3).kv("flag", tg::Val::Raw(7, vec![2]));
        w = w.kv(
            "name",
            tg::Val::Raw(8, [&3u64.to_le_bytes()[..], b"a\xffb"].concat()),
        );
        let g = parse_bytes(&w.build());
        assert!(g
            .anomalies
            .iter()
            .any(|a| matches!(a, Anomaly::InvalidBool { byte: 2, .. })));
        assert!(g
            .anomalies
            .iter()
            .any(|a| matches!(a, Anomaly::InvalidUtf8 { .. })));
        let g = parse_bytes(&tg::Writer::new(3).kv("x", tg::Val::Raw(99, vec![])).build());
        assert!(g.stopped.is_some());
    }

    #[test]
    fn mutations_never_panic() {
        for m in aegis_test_support::mutate::mutants(&tg::honest_model(tg::CHATML_TEMPLATE), 3000) {
            let _ = parse(&mut Cursor::new(&m), m.len() as u64, &Limits::default());
        }
    }
}
