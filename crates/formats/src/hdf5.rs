//! Just enough HDF5 to read the attributes of the root group, which is where Keras 2 `.h5` files keep
//! `model_config`, `training_config`, `keras_version` and `backend`.
//!
//! Follows the HDF5 File Format Specification (version 3.0): the superblock (versions 0–3, searched at 0,
//! 512, 1024, 2048, ...), object headers version 1 and 2 (`OHDR`, with `OCHK` continuation chunks) and their
//! message lists, continuation messages, attribute messages (versions 1–3), datatype and dataspace
//! messages, and global heap collections (`GCOL`) for variable-length strings. Anything else (dense
//! attribute storage in fractal heaps, shared datatypes, groups below the root) is noted and skipped:
//! `aegis-scan` falls back to a byte search for the JSON when the structured read finds nothing.
//!
//! Checksums are not verified (the HDF5 library does, so a bad checksum only makes a file unloadable). Every
//! address and size is checked against the file length and [`Limits`] before anything is read; a cycle of
//! continuation messages is cut by remembering the chunks already read.

use std::io::SeekFrom;

use crate::{Blob, Error, Limits, Result};

const FORMAT: &str = "hdf5";

/// The HDF5 signature.
pub const SIGNATURE: &[u8; 8] = b"\x89HDF\r\n\x1a\n";

/// Chunks (first chunk plus continuations) read from one object header.
const MAX_CHUNKS: usize = 256;
/// Messages read from one object header.
const MAX_MESSAGES: usize = 65_536;
/// String elements kept from one attribute.
const MAX_ELEMENTS: u64 = 256;
/// The parse may read at most this many times the file's size (plus [`READ_BUDGET_MIN`]).
const READ_BUDGET_FACTOR: u64 = 4;
/// Read budget for small files.
const READ_BUDGET_MIN: u64 = 16 << 20;

/// An attribute value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttrValue {
    /// Fixed- or variable-length strings (lossily decoded, padding removed).
    Strings(Vec<String>),
    /// A datatype this reader does not decode (class number of the HDF5 datatype message).
    Other {
        /// Datatype class (0 integer, 1 float, 3 string, 9 variable-length, ...).
        class: u8,
    },
}

impl AttrValue {
    /// The first string, if this is a string attribute.
    pub fn first_string(&self) -> Option<&str> {
        match self {
            AttrValue::Strings(s) => s.first().map(String::as_str),
            AttrValue::Other { .. } => None,
        }
    }
}

/// One attribute of the root group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    /// Name.
    pub name: String,
    /// File offset of the attribute message's data.
    pub offset: u64,
    /// Value.
    pub value: AttrValue,
}

/// What was read of an HDF5 file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hdf5Root {
    /// Where the superblock is.
    pub superblock_offset: u64,
    /// Superblock version (0–3).
    pub superblock_version: u8,
    /// Absolute file offset of the root group's object header.
    pub root_header: u64,
    /// Attributes of the root group.
    pub attributes: Vec<Attribute>,
    /// Structures skipped or anomalies met, in words.
    pub notes: Vec<String>,
}

impl Hdf5Root {
    /// The attribute called `name`.
    pub fn attribute(&self, name: &str) -> Option<&Attribute> {
        self.attributes.iter().find(|a| a.name == name)
    }
}

/// Find the superblock: at offset 0, 512, 1024, 2048, ... (powers of two).
pub fn find_superblock(blob: &mut dyn Blob, len: u64) -> Result<Option<u64>> {
    let mut offset = 0u64;
    while offset.saturating_add(8) <= len {
        let mut sig = [0u8; 8];
        blob.seek(SeekFrom::Start(offset))
            .map_err(|e| Error::io(FORMAT, offset, e))?;
        blob.read_exact(&mut sig)
            .map_err(|e| Error::io(FORMAT, offset, e))?;
        if &sig == SIGNATURE {
            return Ok(Some(offset));
        }
        offset = if offset == 0 {
            512
        } else {
            offset.saturating_mul(2)
        };
    }
    Ok(None)
}

/// Read the superblock and the attributes of the root group of an HDF5 file of `len` bytes.
pub fn read_root(blob: &mut dyn Blob, len: u64, limits: &Limits) -> Result<Hdf5Root> {
    let Some(sb) = find_superblock(blob, len)? else {
        return Err(Error::malformed(FORMAT, 0, "no HDF5 signature"));
    };
    let mut file = File {
        blob,
        len,
        offset_size: 8,
        length_size: 8,
        base: 0,
        max_read: limits.max_header,
        budget: len.saturating_mul(READ_BUDGET_FACTOR).max(READ_BUDGET_MIN),
        heap_cache: None,
    };
    let (version, root_addr) = file.superblock(sb)?;
    let root_header = file.absolute(root_addr, sb)?;
    let mut root = Hdf5Root {
        superblock_offset: sb,
        superblock_version: version,
        root_header,
        attributes: Vec::new(),
        notes: Vec::new(),
    };
    file.object_header(root_header, &mut root)?;
    Ok(root)
}

struct File<'a> {
    blob: &'a mut dyn Blob,
    len: u64,
    offset_size: u8,
    length_size: u8,
    base: u64,
    max_read: u64,
    /// Bytes still allowed to be read (overlapping structures cannot make the parse read a file many times).
    budget: u64,
    /// The last global heap collection read: (address, bytes).
    heap_cache: Option<(u64, Vec<u8>)>,
}

impl File<'_> {
    /// Read `n` bytes at `offset`, refusing reads past the end of the file or over the bound.
    fn read_at(&mut self, offset: u64, n: u64) -> Result<Vec<u8>> {
        let end = offset
            .checked_add(n)
            .filter(|end| *end <= self.len)
            .ok_or_else(|| {
                Error::malformed(
                    FORMAT,
                    offset,
                    format!("{n} bytes past the end of the file"),
                )
            })?;
        debug_assert!(end <= self.len);
        if n > self.max_read {
            return Err(Error::limit(FORMAT, "structure size", n, self.max_read));
        }
        self.budget = self.budget.checked_sub(n).ok_or_else(|| {
            Error::limit(
                FORMAT,
                "bytes read while parsing",
                n,
                self.len.saturating_mul(READ_BUDGET_FACTOR),
            )
        })?;
        let mut buf = vec![
            0u8;
            usize::try_from(n).map_err(|_| Error::limit(
                FORMAT,
                "structure size",
                n,
                self.max_read
            ))?
        ];
        self.blob
            .seek(SeekFrom::Start(offset))
            .map_err(|e| Error::io(FORMAT, offset, e))?;
        self.blob
            .read_exact(&mut buf)
            .map_err(|e| Error::io(FORMAT, offset, e))?;
        Ok(buf)
    }

    /// Read up to `n` bytes at `offset` (fewer at the end of the file).
    fn read_upto(&mut self, offset: u64, n: u64) -> Result<Vec<u8>> {
        let n = n.min(self.len.saturating_sub(offset));
        self.read_at(offset, n)
    }

    /// A file address relative to the base address, made absolute and checked against the file.
    fn absolute(&self, addr: u64, at: u64) -> Result<u64> {
        if addr == undefined(self.offset_size) {
            return Err(Error::malformed(FORMAT, at, "undefined address"));
        }
        self.base
            .checked_add(addr)
            .filter(|a| *a < self.len)
            .ok_or_else(|| {
                Error::malformed(FORMAT, at, format!("address {addr:#x} outside the file"))
            })
    }

    /// Parse the superblock at `sb`; returns its version and the root group's object header address.
    fn superblock(&mut self, sb: u64) -> Result<(u8, u64)> {
        let buf = self.read_upto(sb, 128)?;
        let version = *buf.get(8).ok_or_else(|| short(sb))?;
        match version {
            0 | 1 => {
                let o = sizes(&buf, 13, sb)?;
                self.offset_size = o.0;
                self.length_size = o.1;
                let mut c = Cursor::new(&buf, if version == 0 { 24 } else { 28 }, sb);
                let base = c.uint(self.offset_size)?;
                let _free_space = c.uint(self.offset_size)?;
                let _eof = c.uint(self.offset_size)?;
                let _driver = c.uint(self.offset_size)?;
                let _link_name = c.uint(self.offset_size)?;
                let root = c.uint(self.offset_size)?;
                self.base = base;
                Ok((version, root))
            }
            2 | 3 => {
                let o = sizes(&buf, 9, sb)?;
                self.offset_size = o.0;
                self.length_size = o.1;
                let mut c = Cursor::new(&buf, 12, sb);
                let base = c.uint(self.offset_size)?;
                let _ext = c.uint(self.offset_size)?;
                let _eof = c.uint(self.offset_size)?;
                let root = c.uint(self.offset_size)?;
                self.base = base;
                Ok((version, root))
            }
            v => Err(Error::malformed(
                FORMAT,
                sb + 8,
                format!("unknown superblock version {v}"),
            )),
        }
    }

    /// Read the messages of the object header at `addr` (absolute) and collect its attributes.
    fn object_header(&mut self, addr: u64, root: &mut Hdf5Root) -> Result<()> {
        let prefix = self.read_upto(addr, 64)?;
        let mut chunks: Vec<Chunk> = Vec::new();
        let v2 = prefix.starts_with(b"OHDR");
        let mut creation_order = false;
        if v2 {
            let flags = *prefix.get(5).ok_or_else(|| short(addr))?;
            creation_order = flags & 0x04 != 0;
            let mut pos = 6usize;
            if flags & 0x20 != 0 {
                pos += 16;
            }
            if flags & 0x10 != 0 {
                pos += 4;
            }
            let width = 1u8 << (flags & 0x03);
            let size = Cursor::new(&prefix, pos, addr).uint(width)?;
            let start = addr + pos as u64 + u64::from(width);
            chunks.push(Chunk {
                start,
                size,
                v2: true,
            });
        } else {
            if prefix.first() != Some(&1) {
                return Err(Error::malformed(
                    FORMAT,
                    addr,
                    "object header is neither version 1 nor OHDR",
                ));
            }
            let size = Cursor::new(&prefix, 8, addr).uint(4)?;
            chunks.push(Chunk {
                start: addr + 16,
                size,
                v2: false,
            });
        }
        let mut seen: Vec<u64> = Vec::new();
        let mut messages = 0usize;
        let mut i = 0usize;
        while let Some(chunk) = chunks.get(i).copied() {
            i += 1;
            if seen.contains(&chunk.start) {
                root.notes
                    .push(format!("continuation loop to {:#x}", chunk.start));
                continue;
            }
            seen.push(chunk.start);
            let data = self.read_at(chunk.start, chunk.size)?;
            let header_len = match (chunk.v2, creation_order) {
                (false, _) => 8,
                (true, false) => 4,
                (true, true) => 6,
            };
            let mut pos = 0usize;
            while pos + header_len <= data.len() {
                messages += 1;
                if messages > MAX_MESSAGES {
                    return Err(Error::limit(
                        FORMAT,
                        "object header messages",
                        messages as u64,
                        MAX_MESSAGES as u64,
                    ));
                }
                let (kind, size) = if chunk.v2 {
                    (
                        u16::from(data[pos]),
                        u16::from_le_bytes([data[pos + 1], data[pos + 2]]),
                    )
                } else {
                    (
                        u16::from_le_bytes([data[pos], data[pos + 1]]),
                        u16::from_le_bytes([data[pos + 2], data[pos + 3]]),
                    )
                };
                let body_start = pos + header_len;
                let body_end = body_start + usize::from(size);
                let Some(body) = data.get(body_start..body_end) else {
                    root.notes.push(format!(
                        "message at {:#x} overruns its chunk",
                        chunk.start + pos as u64
                    ));
                    break;
                };
                let body_offset = chunk.start + body_start as u64;
                match kind {
                    0x0C => self.attribute(body, body_offset, root),
                    0x10 => {
                        let mut c = Cursor::new(body, 0, body_offset);
                        let next = c.uint(self.offset_size)?;
                        let length = c.uint(self.length_size)?;
                        let next = self.absolute(next, body_offset)?;
                        if chunks.len() >= MAX_CHUNKS {
                            return Err(Error::limit(
                                FORMAT,
                                "object header chunks",
                                chunks.len() as u64,
                                MAX_CHUNKS as u64,
                            ));
                        }
                        if chunk.v2 {
                            // "OCHK" signature first, checksum last.
                            if length < 8 {
                                return Err(Error::malformed(
                                    FORMAT,
                                    body_offset,
                                    "continuation chunk too short",
                                ));
                            }
                            chunks.push(Chunk {
                                start: next + 4,
                                size: length - 8,
                                v2: true,
                            });
                        } else {
                            chunks.push(Chunk {
                                start: next,
                                size: length,
                                v2: false,
                            });
                        }
                    }
                    0x15 if self.dense_attributes(body, body_offset)? => {
                        root.notes
                            .push("dense attribute storage (fractal heap) not read".to_owned());
                    }
                    _ => {}
                }
                pos = body_end;
            }
        }
        Ok(())
    }

    /// Whether an Attribute Info message points at a fractal heap (attributes stored densely, not as
    /// messages).
    fn dense_attributes(&self, body: &[u8], offset: u64) -> Result<bool> {
        let mut c = Cursor::new(body, 0, offset);
        let _version = c.u8()?;
        let flags = c.u8()?;
        if flags & 0x01 != 0 {
            c.u16()?;
        }
        Ok(c.uint(self.offset_size)? != undefined(self.offset_size))
    }

    /// Decode an attribute message; anything undecodable becomes a note.
    fn attribute(&mut self, body: &[u8], offset: u64, root: &mut Hdf5Root) {
        match self.parse_attribute(body, offset) {
            Ok(attr) => root.attributes.push(attr),
            Err(err) => root.notes.push(format!("attribute at {offset:#x}: {err}")),
        }
    }

    fn parse_attribute(&mut self, body: &[u8], offset: u64) -> Result<Attribute> {
        let mut c = Cursor::new(body, 0, offset);
        let version = c.u8()?;
        let flags = c.u8()?;
        let name_size = usize::from(c.u16()?);
        let dt_size = usize::from(c.u16()?);
        let ds_size = usize::from(c.u16()?);
        let pad = |n: usize| if version == 1 { n.div_ceil(8) * 8 } else { n };
        match version {
            1 | 2 => {}
            3 => {
                c.u8()?; // name character set
            }
            v => {
                return Err(Error::malformed(
                    FORMAT,
                    offset,
                    format!("attribute message version {v}"),
                ))
            }
        }
        let name_bytes = c.take(pad(name_size))?;
        let name_bytes = name_bytes.get(..name_size).unwrap_or(name_bytes);
        let name = String::from_utf8_lossy(name_bytes)
            .trim_end_matches('\0')
            .to_owned();
        let datatype = c.take(pad(dt_size))?;
        let dataspace = c.take(pad(ds_size))?;
        let data = c.rest();
        if flags & 0x03 != 0 {
            return Ok(Attribute {
                name,
                offset,
                value: AttrValue::Other { class: 0xff },
            });
        }
        let count = self.element_count(dataspace, offset)?;
        let value = self.decode_value(datatype, data, count, offset)?;
        Ok(Attribute {
            name,
            offset,
            value,
        })
    }

    /// Number of elements a dataspace message describes.
    fn element_count(&self, ds: &[u8], offset: u64) -> Result<u64> {
        let mut c = Cursor::new(ds, 0, offset);
        let version = c.u8()?;
        let rank = c.u8()?;
        let _flags = c.u8()?;
        match version {
            1 => {
                c.take(5)?;
            }
            2 => match c.u8()? {
                0 => return Ok(1),
                2 => return Ok(0),
                _ => {}
            },
            v => {
                return Err(Error::malformed(
                    FORMAT,
                    offset,
                    format!("dataspace version {v}"),
                ))
            }
        }
        let mut n = 1u64;
        for _ in 0..rank {
            let dim = c.uint(self.length_size)?;
            n = n.saturating_mul(dim);
        }
        Ok(n)
    }

    fn decode_value(
        &mut self,
        dt: &[u8],
        data: &[u8],
        count: u64,
        offset: u64,
    ) -> Result<AttrValue> {
        let mut c = Cursor::new(dt, 0, offset);
        let class_version = c.u8()?;
        let bits = c.take(3)?;
        let size = c.uint(4)?;
        let class = class_version & 0x0f;
        let kept = count.min(MAX_ELEMENTS);
        match class {
            3 => {
                let size = usize::try_from(size).unwrap_or(usize::MAX);
                if size == 0 {
                    return Ok(AttrValue::Strings(Vec::new()));
                }
                let strings = data
                    .chunks(size)
                    .take(usize::try_from(kept).unwrap_or(usize::MAX))
                    .map(clean_string)
                    .collect();
                Ok(AttrValue::Strings(strings))
            }
            9 if bits.first().is_some_and(|b| b & 0x0f == 1) => {
                let mut strings = Vec::new();
                let mut d = Cursor::new(data, 0, offset);
                for _ in 0..kept {
                    let Ok(n) = d.uint(4) else { break };
                    let addr = d.uint(self.offset_size)?;
                    let index = d.uint(4)?;
                    if n == 0 {
                        strings.push(String::new());
                        continue;
                    }
                    let bytes = self.global_heap_object(addr, index, n, offset)?;
                    strings.push(clean_string(&bytes));
                }
                Ok(AttrValue::Strings(strings))
            }
            other => Ok(AttrValue::Other { class: other }),
        }
    }

    /// Object `index` of the global heap collection at `addr`, at most `n` bytes of it.
    fn global_heap_object(&mut self, addr: u64, index: u64, n: u64, at: u64) -> Result<Vec<u8>> {
        let start = self.absolute(addr, at)?;
        let header = self.read_upto(start, 16)?;
        if !header.starts_with(b"GCOL") {
            return Err(Error::malformed(
                FORMAT,
                start,
                "global heap collection without GCOL signature",
            ));
        }
        let size = Cursor::new(&header, 8, start).uint(self.length_size)?;
        let collection = match self.heap_cache.take() {
            Some((addr, bytes)) if addr == start => bytes,
            _ => self.read_at(start, size)?,
        };
        let found = find_heap_object(&collection, index, n, self.length_size, start);
        self.heap_cache = Some((start, collection));
        found
    }
}

/// Object `index` of a global heap collection read at `start`, at most `n` bytes of it.
fn find_heap_object(
    collection: &[u8],
    index: u64,
    n: u64,
    length_size: u8,
    start: u64,
) -> Result<Vec<u8>> {
    let ls = usize::from(length_size);
    let mut pos = 8 + ls;
    while pos + 8 + ls <= collection.len() {
        let mut c = Cursor::new(collection, pos, start);
        let id = c.u16()?;
        let _refs = c.u16()?;
        c.take(4)?;
        let obj_size = c.uint(length_size)?;
        if id == 0 {
            break;
        }
        let data_start = pos + 8 + ls;
        let obj_len = usize::try_from(obj_size).unwrap_or(usize::MAX);
        if u64::from(id) == index {
            let want = obj_len.min(usize::try_from(n).unwrap_or(usize::MAX));
            return collection
                .get(data_start..data_start.saturating_add(want))
                .map(<[u8]>::to_vec)
                .ok_or_else(|| {
                    Error::malformed(
                        FORMAT,
                        start + pos as u64,
                        "heap object overruns its collection",
                    )
                });
        }
        pos = data_start.saturating_add(obj_len.div_ceil(8).saturating_mul(8));
    }
    Err(Error::malformed(
        FORMAT,
        start,
        format!("global heap object {index} not found"),
    ))
}

#[derive(Debug, Clone, Copy)]
struct Chunk {
    start: u64,
    size: u64,
    v2: bool,
}

fn short(at: u64) -> Error {
    Error::malformed(FORMAT, at, "structure cut short by the end of the file")
}

fn undefined(width: u8) -> u64 {
    if width >= 8 {
        u64::MAX
    } else {
        (1u64 << (8 * u32::from(width))) - 1
    }
}

/// Size of offsets and size of lengths at `pos`: each must be 2, 4 or 8.
fn sizes(buf: &[u8], pos: usize, at: u64) -> Result<(u8, u8)> {
    let o = *buf.get(pos).ok_or_else(|| short(at))?;
    let l = *buf.get(pos + 1).ok_or_else(|| short(at))?;
    if !matches!(o, 2 | 4 | 8) || !matches!(l, 2 | 4 | 8) {
        return Err(Error::malformed(
            FORMAT,
            at,
            format!("size of offsets {o} / lengths {l}"),
        ));
    }
    Ok((o, l))
}

/// Strip NUL and space padding; decode lossily.
fn clean_string(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).trim_end().to_owned()
}

/// A little-endian reader over a slice whose errors carry file offsets.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
    base: u64,
}

impl<'a> Cursor<'a> {
    fn new(buf: &'a [u8], pos: usize, base: u64) -> Self {
        Cursor { buf, pos, base }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|e| *e <= self.buf.len());
        let Some(end) = end else {
            return Err(short(self.base + self.pos as u64));
        };
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn rest(&mut self) -> &'a [u8] {
        let out = self.buf.get(self.pos..).unwrap_or_default();
        self.pos = self.buf.len();
        out
    }

    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16> {
        Ok(self.uint(2)? as u16)
    }

    /// An unsigned little-endian integer of `width` bytes (1–8).
    fn uint(&mut self, width: u8) -> Result<u64> {
        let bytes = self.take(usize::from(width.min(8)))?;
        Ok(bytes
            .iter()
            .rev()
            .fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aegis_test_support::hdf5 as gen;

    fn read(bytes: &[u8]) -> Result<Hdf5Root> {
        read_root(
            &mut std::io::Cursor::new(bytes),
            bytes.len() as u64,
            &Limits::default(),
        )
    }

    #[test]
    fn reads_fixed_length_string_attributes() {
        let config = r#"{"class_name": "Sequential", "config": {"layers": []}}"#;
        let file = gen::keras_h5(config, gen::StringKind::Fixed);
        let root = read(&file).unwrap();
        assert_eq!(root.superblock_version, 0);
        assert_eq!(
            root.attribute("model_config")
                .and_then(|a| a.value.first_string()),
            Some(config)
        );
        assert_eq!(
            root.attribute("keras_version")
                .and_then(|a| a.value.first_string()),
            Some("2.13.1")
        );
        assert_eq!(
            root.attribute("backend")
                .and_then(|a| a.value.first_string()),
            Some("tensorflow")
        );
    }

    #[test]
    fn reads_variable_length_strings_from_the_global_heap() {
        let config = r#"{"class_name": "Sequential", "config": {}}"#;
        let file = gen::keras_h5(config, gen::StringKind::VarLen);
        let root = read(&file).unwrap();
        assert_eq!(
            root.attribute("model_config")
                .and_then(|a| a.value.first_string()),
            Some(config)
        );
    }

    #[test]
    fn follows_continuation_messages() {
        let config = r#"{"class_name": "Functional", "config": {}}"#;
        let file = gen::keras_h5(config, gen::StringKind::FixedInContinuation);
        let root = read(&file).unwrap();
        assert_eq!(
            root.attribute("model_config")
                .and_then(|a| a.value.first_string()),
            Some(config)
        );
    }

    #[test]
    fn finds_a_superblock_after_a_user_block() {
        let config = r#"{"class_name": "Sequential", "config": {}}"#;
        let file = gen::keras_h5_with_userblock(config, gen::StringKind::Fixed, 512);
        let root = read(&file).unwrap();
        assert_eq!(root.superblock_offset, 512);
        assert_eq!(
            root.attribute("model_config")
                .and_then(|a| a.value.first_string()),
            Some(config)
        );
    }

    #[test]
    fn reads_version_2_object_headers() {
        let config = r#"{"class_name": "Sequential", "config": {}}"#;
        let file = gen::keras_h5_v2(config);
        let root = read(&file).unwrap();
        assert_eq!(root.superblock_version, 2);
        assert_eq!(
            root.attribute("model_config")
                .and_then(|a| a.value.first_string()),
            Some(config)
        );
    }

    #[test]
    fn truncations_and_corruptions_never_panic() {
        let file = gen::keras_h5(
            r#"{"class_name": "X", "config": {}}"#,
            gen::StringKind::VarLen,
        );
        for cut in 0..file.len() {
            let _ = read(&file[..cut]);
        }
        for i in 0..file.len() {
            let mut bad = file.clone();
            bad[i] ^= 0xff;
            let _ = read(&bad);
        }
        assert!(read(b"not hdf5").is_err());
    }
}
