//! safetensors: an 8-byte little-endian header length `N`, `N` bytes of UTF-8 JSON, then the byte buffer.
//!
//! The JSON is an object mapping tensor names to `{"dtype", "shape", "data_offsets": [begin, end]}` (offsets
//! relative to the buffer start) plus an optional `"__metadata__"` object of string to string. The reference
//! implementation (the `safetensors` Rust crate, also behind the Python package) rejects headers over
//! 100 MB, headers not starting with `{`, invalid UTF-8 or JSON, unknown dtypes, shape products that
//! overflow, ranges whose size is not `dtype size × elements`, ranges that overlap or leave gaps, and a
//! buffer not exactly covered by the tensors.
//!
//! [`parse`] reads only the header, never the tensor data, and records every departure from that contract
//! as an [`Anomaly`]: other readers (hand-written loaders, older versions, `json.loads` in Python) accept
//! some of them, and a file built to be read differently by different readers is the point of interest.
//! The JSON is parsed into a tree that keeps duplicate keys ([`Json`]): `serde_json::Value` would silently
//! keep only the last one, as the reference loader does.

use std::fmt;
use std::io::{Read, SeekFrom};

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

use crate::{Blob, Error, Limits, Result};

const FORMAT: &str = "safetensors";

/// The largest header the reference implementation accepts (`MAX_HEADER_SIZE`).
pub const OFFICIAL_MAX_HEADER: u64 = 100_000_000;

/// Anomalies kept per file; further ones are only counted in [`Header::anomalies_dropped`].
pub const MAX_ANOMALIES: usize = 1024;

/// Size in bits of one element of a dtype the reference implementation knows; `None` for unknown dtypes.
pub fn dtype_bits(dtype: &str) -> Option<u64> {
    Some(match dtype {
        "F4" => 4,
        "F6_E2M3" | "F6_E3M2" => 6,
        "BOOL" | "U8" | "I8" | "F8_E5M2" | "F8_E4M3" | "F8_E8M0" | "F8_E4M3FNUZ"
        | "F8_E5M2FNUZ" => 8,
        "I16" | "U16" | "F16" | "BF16" => 16,
        "I32" | "U32" | "F32" => 32,
        "I64" | "U64" | "F64" | "C64" => 64,
        _ => return None,
    })
}

/// A JSON value that keeps every member of an object, duplicates included, in file order.
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    /// `null`.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// A non-negative integer.
    UInt(u64),
    /// A negative integer.
    Int(i64),
    /// A number with a fraction or exponent (or out of integer range).
    Float(f64),
    /// A string.
    Str(String),
    /// An array.
    Array(Vec<Json>),
    /// An object: members in file order, duplicates kept.
    Object(Vec<(String, Json)>),
}

impl Json {
    /// The JSON type name, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Json::Null => "null",
            Json::Bool(_) => "boolean",
            Json::UInt(_) | Json::Int(_) | Json::Float(_) => "number",
            Json::Str(_) => "string",
            Json::Array(_) => "array",
            Json::Object(_) => "object",
        }
    }

    /// The last member named `key` of an object (the one `serde_json` and the reference loader keep).
    pub fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Object(members) => members.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        deserializer.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E: de::Error>(self) -> std::result::Result<Json, E> {
        Ok(Json::Null)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> std::result::Result<Json, E> {
        Ok(Json::Bool(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> std::result::Result<Json, E> {
        Ok(Json::UInt(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> std::result::Result<Json, E> {
        Ok(u64::try_from(v).map_or(Json::Int(v), Json::UInt))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> std::result::Result<Json, E> {
        Ok(Json::Float(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<Json, E> {
        Ok(Json::Str(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> std::result::Result<Json, E> {
        Ok(Json::Str(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<Json, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Json>()? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Json, A::Error> {
        let mut members = Vec::new();
        while let Some((key, value)) = map.next_entry::<String, Json>()? {
            members.push((key, value));
        }
        Ok(Json::Object(members))
    }
}

/// One tensor entry that has a valid shape, a known dtype and a `begin <= end` range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    /// Tensor name (the JSON key).
    pub name: String,
    /// dtype as written, e.g. `F32`.
    pub dtype: String,
    /// Dimensions.
    pub shape: Vec<u64>,
    /// Start of the data, relative to the buffer start.
    pub begin: u64,
    /// End (exclusive) of the data, relative to the buffer start.
    pub end: u64,
}

/// A departure from the reference implementation's contract.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Anomaly {
    /// The header length exceeds [`OFFICIAL_MAX_HEADER`]; the header was not parsed.
    HeaderTooLarge {
        /// Declared header length.
        header_len: u64,
    },
    /// The declared header runs past the end of the file; the header was not parsed.
    HeaderBeyondFile {
        /// Declared header length.
        header_len: u64,
        /// File length.
        file_len: u64,
    },
    /// The header is not valid UTF-8.
    InvalidUtf8 {
        /// Offset of the first invalid byte in the file.
        offset: u64,
    },
    /// The header does not start with `{` (the reference loader refuses; `json.loads` would not).
    BadStart {
        /// The first byte.
        byte: u8,
    },
    /// The header is not valid JSON.
    InvalidJson {
        /// `serde_json`'s message.
        detail: String,
    },
    /// The header is JSON but not an object.
    NotAnObject {
        /// The JSON type found.
        kind: &'static str,
    },
    /// An object has the same key more than once (readers disagree on which wins).
    DuplicateKey {
        /// Path of the object (`$` for the top level, `$.name` for a tensor entry).
        path: String,
        /// The repeated key.
        key: String,
        /// How many times it appears.
        count: usize,
    },
    /// A tensor entry is not an object, or a field is missing or has the wrong type.
    InvalidTensor {
        /// Tensor name.
        name: String,
        /// What is wrong.
        detail: String,
    },
    /// A dtype the reference implementation does not know.
    UnknownDtype {
        /// Tensor name.
        name: String,
        /// The dtype.
        dtype: String,
    },
    /// The product of the shape (or its size in bits) overflows 64 bits.
    ShapeOverflow {
        /// Tensor name.
        name: String,
        /// The shape.
        shape: Vec<u64>,
    },
    /// `data_offsets` has `begin > end`.
    BeginAfterEnd {
        /// Tensor name.
        name: String,
        /// Start.
        begin: u64,
        /// End.
        end: u64,
    },
    /// The range size differs from `dtype size × elements`.
    SizeMismatch {
        /// Tensor name.
        name: String,
        /// dtype.
        dtype: String,
        /// Shape.
        shape: Vec<u64>,
        /// Bytes the dtype and shape need.
        expected: u64,
        /// Bytes the range covers.
        actual: u64,
    },
    /// A range ends past the end of the buffer.
    OutOfBounds {
        /// Tensor name.
        name: String,
        /// Range end (relative to the buffer).
        end: u64,
        /// Buffer length.
        buffer_len: u64,
    },
    /// Two non-empty ranges share bytes.
    Overlap {
        /// The tensor whose range starts first.
        first: String,
        /// The tensor starting inside it.
        second: String,
        /// First shared byte (relative to the buffer).
        start: u64,
        /// End of the shared bytes (exclusive).
        end: u64,
    },
    /// Bytes of the buffer covered by no tensor, between two tensors or before the first one.
    Gap {
        /// Start (relative to the buffer).
        start: u64,
        /// End (exclusive).
        end: u64,
        /// The tensor that follows the gap.
        before: String,
    },
    /// Bytes after the last tensor.
    TrailingBytes {
        /// Start (relative to the buffer).
        start: u64,
        /// End (exclusive), the buffer length.
        end: u64,
    },
    /// `__metadata__` is not an object.
    MetadataNotObject {
        /// The JSON type found.
        kind: &'static str,
    },
    /// A `__metadata__` value is not a string (the reference loader refuses the file).
    MetadataNotString {
        /// The key.
        key: String,
        /// The JSON type found.
        kind: &'static str,
    },
}

/// What [`parse`] learnt from a header.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Header {
    /// Declared header length `N`.
    pub header_len: u64,
    /// File offset of the byte buffer (`8 + N`).
    pub buffer_start: u64,
    /// Length of the byte buffer (file length minus `8 + N`; 0 when the header runs past the end).
    pub buffer_len: u64,
    /// The parsed header, when it is valid JSON.
    pub json: Option<Json>,
    /// Tensor entries that are well-formed enough to locate (sorted as in the file).
    pub tensors: Vec<TensorInfo>,
    /// Number of tensor entries in the header (well-formed or not).
    pub tensor_entries: u64,
    /// `__metadata__` string values, in file order (last wins for duplicates).
    pub metadata: Vec<(String, String)>,
    /// Everything that departs from the reference implementation.
    pub anomalies: Vec<Anomaly>,
    /// Anomalies not kept because [`MAX_ANOMALIES`] was reached.
    pub anomalies_dropped: u64,
}

impl Header {
    fn note(&mut self, anomaly: Anomaly) {
        if self.anomalies.len() < MAX_ANOMALIES {
            self.anomalies.push(anomaly);
        } else {
            self.anomalies_dropped = self.anomalies_dropped.saturating_add(1);
        }
    }
}

/// Read and validate the header of a safetensors blob of `len` bytes. Tensor data is never read.
///
/// Returns an error only when the blob cannot be read, is shorter than 8 bytes, or the header is within the
/// reference limit but over `limits.max_header` (a [`Error::Limit`]); everything else is an [`Anomaly`].
pub fn parse(blob: &mut dyn Blob, len: u64, limits: &Limits) -> Result<Header> {
    let mut prefix = [0u8; 8];
    if len < 8 {
        return Err(Error::malformed(
            FORMAT,
            0,
            "shorter than the 8-byte header length",
        ));
    }
    blob.seek(SeekFrom::Start(0))
        .map_err(|e| Error::io(FORMAT, 0, e))?;
    blob.read_exact(&mut prefix)
        .map_err(|e| Error::io(FORMAT, 0, e))?;
    let header_len = u64::from_le_bytes(prefix);
    let mut header = Header {
        header_len,
        ..Header::default()
    };
    if header_len > OFFICIAL_MAX_HEADER {
        header.note(Anomaly::HeaderTooLarge { header_len });
        return Ok(header);
    }
    if header_len > len - 8 {
        header.note(Anomaly::HeaderBeyondFile {
            header_len,
            file_len: len,
        });
        return Ok(header);
    }
    if header_len > limits.max_header {
        return Err(Error::limit(
            FORMAT,
            "header length",
            header_len,
            limits.max_header,
        ));
    }
    header.buffer_start = 8 + header_len;
    header.buffer_len = len - header.buffer_start;
    let mut text = Vec::new();
    blob.take(header_len)
        .read_to_end(&mut text)
        .map_err(|e| Error::io(FORMAT, 8, e))?;
    if text.len() as u64 != header_len {
        return Err(Error::malformed(FORMAT, 8, "header shorter than declared"));
    }
    parse_text(&mut header, &text, limits)?;
    Ok(header)
}

/// Validate header bytes (`text`, the `N` bytes after the length) into `header`.
fn parse_text(header: &mut Header, text: &[u8], limits: &Limits) -> Result<()> {
    let text = match std::str::from_utf8(text) {
        Ok(text) => text,
        Err(err) => {
            header.note(Anomaly::InvalidUtf8 {
                offset: 8 + err.valid_up_to() as u64,
            });
            return Ok(());
        }
    };
    match text.as_bytes().first() {
        Some(b'{') => {}
        Some(byte) => header.note(Anomaly::BadStart { byte: *byte }),
        None => header.note(Anomaly::BadStart { byte: 0 }),
    }
    let json: Json = match serde_json::from_str(text) {
        Ok(json) => json,
        Err(err) => {
            header.note(Anomaly::InvalidJson {
                detail: err.to_string(),
            });
            return Ok(());
        }
    };
    let mut dups = Vec::new();
    find_duplicates(&json, "$", &mut dups);
    for dup in dups {
        header.note(dup);
    }
    let Json::Object(members) = &json else {
        header.note(Anomaly::NotAnObject { kind: json.kind() });
        header.json = Some(json);
        return Ok(());
    };
    let entries = members.iter().filter(|(k, _)| k != "__metadata__").count() as u64;
    if entries > limits.max_entries {
        return Err(Error::limit(
            FORMAT,
            "tensor count",
            entries,
            limits.max_entries,
        ));
    }
    header.tensor_entries = entries;
    let effective = last_wins(members);
    for (name, value) in &effective {
        if name == "__metadata__" {
            read_metadata(header, value);
        } else if let Some(info) = read_tensor(header, name, value) {
            header.tensors.push(info);
        }
    }
    check_layout(header);
    header.json = Some(json);
    Ok(())
}

/// Members with duplicate keys collapsed to the last value, at the position of the first (serde_json with
/// `preserve_order` and the reference loader's `HashMap` both keep the last value).
fn last_wins(members: &[(String, Json)]) -> Vec<(String, Json)> {
    let mut out: Vec<(String, Json)> = Vec::with_capacity(members.len());
    let mut index: std::collections::HashMap<&str, usize> =
        std::collections::HashMap::with_capacity(members.len());
    for (key, value) in members {
        match index.get(key.as_str()) {
            Some(&i) => {
                if let Some(slot) = out.get_mut(i) {
                    slot.1 = value.clone();
                }
            }
            None => {
                index.insert(key.as_str(), out.len());
                out.push((key.clone(), value.clone()));
            }
        }
    }
    out
}

/// Report every object key that appears more than once, at any depth (iterative, so deep input cannot
/// overflow the stack; `serde_json` already bounds nesting at 128).
fn find_duplicates(json: &Json, path: &str, out: &mut Vec<Anomaly>) {
    let mut stack: Vec<(&Json, String)> = vec![(json, path.to_owned())];
    while let Some((node, path)) = stack.pop() {
        match node {
            Json::Object(members) => {
                let mut counts: std::collections::HashMap<&str, usize> = Default::default();
                for (key, _) in members {
                    *counts.entry(key.as_str()).or_insert(0) += 1;
                }
                let mut reported = std::collections::HashSet::new();
                for (key, value) in members {
                    let count = counts.get(key.as_str()).copied().unwrap_or(1);
                    if count > 1 && reported.insert(key.as_str()) {
                        out.push(Anomaly::DuplicateKey {
                            path: path.clone(),
                            key: key.clone(),
                            count,
                        });
                    }
                    if matches!(value, Json::Object(_) | Json::Array(_)) {
                        stack.push((value, format!("{path}.{key}")));
                    }
                }
            }
            Json::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    if matches!(item, Json::Object(_) | Json::Array(_)) {
                        stack.push((item, format!("{path}[{i}]")));
                    }
                }
            }
            _ => {}
        }
    }
}

fn read_metadata(header: &mut Header, value: &Json) {
    let Json::Object(members) = value else {
        header.note(Anomaly::MetadataNotObject { kind: value.kind() });
        return;
    };
    for (key, value) in last_wins(members) {
        match value {
            Json::Str(text) => header.metadata.push((key, text)),
            other => header.note(Anomaly::MetadataNotString {
                key,
                kind: other.kind(),
            }),
        }
    }
}

fn invalid(header: &mut Header, name: &str, detail: impl Into<String>) -> Option<TensorInfo> {
    header.note(Anomaly::InvalidTensor {
        name: name.to_owned(),
        detail: detail.into(),
    });
    None
}

/// Check one tensor entry; returns it when it can be located in the buffer.
fn read_tensor(header: &mut Header, name: &str, value: &Json) -> Option<TensorInfo> {
    if !matches!(value, Json::Object(_)) {
        return invalid(
            header,
            name,
            format!("entry is a {}, not an object", value.kind()),
        );
    }
    let dtype = match value.get("dtype") {
        Some(Json::Str(d)) => d.clone(),
        Some(other) => return invalid(header, name, format!("dtype is a {}", other.kind())),
        None => return invalid(header, name, "missing dtype"),
    };
    let shape = match value.get("shape") {
        Some(Json::Array(dims)) => {
            let mut shape = Vec::with_capacity(dims.len());
            for dim in dims {
                match dim {
                    Json::UInt(d) => shape.push(*d),
                    other => {
                        return invalid(
                            header,
                            name,
                            format!("shape holds a non-integer {other:?}"),
                        )
                    }
                }
            }
            shape
        }
        Some(other) => return invalid(header, name, format!("shape is a {}", other.kind())),
        None => return invalid(header, name, "missing shape"),
    };
    let (begin, end) = match value.get("data_offsets") {
        Some(Json::Array(pair)) => match pair.as_slice() {
            [Json::UInt(b), Json::UInt(e)] => (*b, *e),
            _ => {
                return invalid(
                    header,
                    name,
                    "data_offsets is not two non-negative integers",
                )
            }
        },
        Some(other) => return invalid(header, name, format!("data_offsets is a {}", other.kind())),
        None => return invalid(header, name, "missing data_offsets"),
    };
    check_size(header, name, &dtype, &shape, begin, end);
    if begin > end {
        header.note(Anomaly::BeginAfterEnd {
            name: name.to_owned(),
            begin,
            end,
        });
        return None;
    }
    Some(TensorInfo {
        name: name.to_owned(),
        dtype,
        shape,
        begin,
        end,
    })
}

/// dtype known, shape product in range, and the range exactly as large as the tensor.
fn check_size(header: &mut Header, name: &str, dtype: &str, shape: &[u64], begin: u64, end: u64) {
    let Some(bits) = dtype_bits(dtype) else {
        header.note(Anomaly::UnknownDtype {
            name: name.to_owned(),
            dtype: dtype.to_owned(),
        });
        return;
    };
    let total_bits = shape
        .iter()
        .try_fold(1u64, |acc, d| acc.checked_mul(*d))
        .and_then(|n| n.checked_mul(bits));
    let Some(total_bits) = total_bits else {
        header.note(Anomaly::ShapeOverflow {
            name: name.to_owned(),
            shape: shape.to_vec(),
        });
        return;
    };
    let expected = total_bits.div_ceil(8);
    let actual = end.saturating_sub(begin);
    if begin <= end && (expected != actual || total_bits % 8 != 0) {
        header.note(Anomaly::SizeMismatch {
            name: name.to_owned(),
            dtype: dtype.to_owned(),
            shape: shape.to_vec(),
            expected,
            actual,
        });
    }
}

/// Bounds, overlaps, gaps and trailing bytes of the located tensors.
fn check_layout(header: &mut Header) {
    let buffer_len = header.buffer_len;
    let mut ranges: Vec<(u64, u64, String)> = Vec::with_capacity(header.tensors.len());
    let mut oob = Vec::new();
    for t in &header.tensors {
        if t.end > buffer_len {
            oob.push(Anomaly::OutOfBounds {
                name: t.name.clone(),
                end: t.end,
                buffer_len,
            });
        }
        ranges.push((t.begin, t.end, t.name.clone()));
    }
    for a in oob {
        header.note(a);
    }
    ranges.sort();
    let mut covered_to = 0u64;
    let mut owner = String::new();
    for (begin, end, name) in ranges {
        if begin == end {
            continue;
        }
        if begin < covered_to {
            header.note(Anomaly::Overlap {
                first: owner.clone(),
                second: name.clone(),
                start: begin,
                end: end.min(covered_to),
            });
        } else if begin > covered_to && covered_to < buffer_len {
            header.note(Anomaly::Gap {
                start: covered_to,
                end: begin.min(buffer_len),
                before: name.clone(),
            });
        }
        if end > covered_to {
            covered_to = end;
            owner = name;
        }
    }
    if covered_to < buffer_len {
        header.note(Anomaly::TrailingBytes {
            start: covered_to,
            end: buffer_len,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aegis_test_support::safetensors as ts;
    use std::io::Cursor;

    fn parse_bytes(bytes: &[u8]) -> Header {
        parse(
            &mut Cursor::new(bytes),
            bytes.len() as u64,
            &Limits::default(),
        )
        .unwrap()
    }

    #[test]
    fn honest_file_has_no_anomalies() {
        let h = parse_bytes(&ts::honest());
        assert_eq!(h.anomalies, vec![]);
        assert_eq!(h.tensors.len(), 3);
        assert_eq!(h.metadata, vec![("format".to_owned(), "pt".to_owned())]);
    }

    /// Every dtype of the format's specification (safetensors 0.6: float8 variants, fp4/fp6 microscaling)
    /// has a size; a made-up one has none.
    #[test]
    fn every_specified_dtype_has_a_size() {
        for (dtype, bits) in [
            ("F8_E4M3FNUZ", 8),
            ("F8_E5M2FNUZ", 8),
            ("F8_E8M0", 8),
            ("F8_E4M3", 8),
            ("F4", 4),
            ("F6_E2M3", 6),
            ("BF16", 16),
            ("C64", 64),
        ] {
            assert_eq!(dtype_bits(dtype), Some(bits), "{dtype}");
        }
        assert_eq!(dtype_bits("F8_E4M3FNUZZ"), None);
        assert_eq!(dtype_bits("f32"), None, "dtypes are case-sensitive");
    }

    #[test]
    fn rejects_short_input() {
        assert!(parse(&mut Cursor::new(b"abc"), 3, &Limits::default()).is_err());
    }

    #[test]
    fn header_length_past_the_file_or_limit() {
        let mut bytes = 1000u64.to_le_bytes().to_vec();
        bytes.extend_from_slice(b"{}");
        let h = parse_bytes(&bytes);
        assert!(matches!(
            h.anomalies[0],
            Anomaly::HeaderBeyondFile {
                header_len: 1000,
                ..
            }
        ));
        let mut huge = (OFFICIAL_MAX_HEADER + 1).to_le_bytes().to_vec();
        huge.extend_from_slice(b"{}");
        assert!(matches!(
            parse_bytes(&huge).anomalies[0],
            Anomaly::HeaderTooLarge { .. }
        ));
        let small = Limits {
            max_header: 4,
            ..Limits::default()
        };
        let honest = ts::honest();
        let err = parse(&mut Cursor::new(&honest), honest.len() as u64, &small).unwrap_err();
        assert!(err.is_limit());
    }

    #[test]
    fn invalid_json_and_not_object() {
        let h = parse_bytes(&ts::raw("{\"a\": ", b""));
        assert!(matches!(h.anomalies[0], Anomaly::InvalidJson { .. }));
        let h = parse_bytes(&ts::raw("[1, 2]", b""));
        assert!(h.anomalies.contains(&Anomaly::BadStart { byte: b'[' }));
        assert!(h
            .anomalies
            .contains(&Anomaly::NotAnObject { kind: "array" }));
        let h = parse_bytes(&ts::raw_bytes(b"{\"\xff\": 1}", b""));
        assert!(matches!(
            h.anomalies[0],
            Anomaly::InvalidUtf8 { offset: 10 }
        ));
    }

    #[test]
    fn duplicate_keys_are_found_at_any_depth() {
        let h = parse_bytes(&ts::duplicate_key());
        assert!(h.anomalies.iter().any(
            |a| matches!(a, Anomaly::DuplicateKey { path, key, count: 2 } if path == "$" && key == "w")
        ));
        let h = parse_bytes(&ts::raw(
            r#"{"t":{"dtype":"U8","dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#,
            &[0; 4],
        ));
        assert!(h.anomalies.iter().any(
            |a| matches!(a, Anomaly::DuplicateKey { path, key, .. } if path == "$.t" && key == "dtype")
        ));
    }

    #[test]
    fn size_dtype_shape_and_offsets() {
        let h = parse_bytes(&ts::size_mismatch());
        assert!(h.anomalies.iter().any(|a| matches!(
            a,
            Anomaly::SizeMismatch {
                expected: 16,
                actual: 8,
                ..
            }
        )));
        let h = parse_bytes(&ts::unknown_dtype());
        assert!(h
            .anomalies
            .iter()
            .any(|a| matches!(a, Anomaly::UnknownDtype { .. })));
        let h = parse_bytes(&ts::raw(
            r#"{"t":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,0]}}"#,
            b"",
        ));
        assert!(matches!(h.anomalies[0], Anomaly::ShapeOverflow { .. }));
        let h = parse_bytes(&ts::raw(
            r#"{"t":{"dtype":"U8","shape":[0],"data_offsets":[4,0]}}"#,
            &[0; 4],
        ));
        assert!(h.anomalies.iter().any(|a| matches!(
            a,
            Anomaly::BeginAfterEnd {
                begin: 4,
                end: 0,
                ..
            }
        )));
        let h = parse_bytes(&ts::raw(r#"{"t":{"dtype":"U8","shape":[-1]}}"#, b""));
        assert!(matches!(h.anomalies[0], Anomaly::InvalidTensor { .. }));
    }

    #[test]
    fn layout_problems() {
        let h = parse_bytes(&ts::out_of_bounds());
        assert!(h
            .anomalies
            .iter()
            .any(|a| matches!(a, Anomaly::OutOfBounds { .. })));
        let h = parse_bytes(&ts::overlap());
        assert!(h.anomalies.iter().any(|a| matches!(
            a,
            Anomaly::Overlap {
                start: 0,
                end: 8,
                ..
            }
        )));
        let h = parse_bytes(&ts::gap());
        assert!(h.anomalies.iter().any(|a| matches!(
            a,
            Anomaly::Gap {
                start: 8,
                end: 24,
                ..
            }
        )));
        let h = parse_bytes(&ts::trailing_bytes(b"hidden"));
        assert!(h
            .anomalies
            .iter()
            .any(|a| matches!(a, Anomaly::TrailingBytes { .. })));
    }

    #[test]
    fn empty_tensors_do_not_overlap() {
        let h = parse_bytes(&ts::raw(
            r#"{"a":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},"b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#,
            &[0; 4],
        ));
        assert_eq!(h.anomalies, vec![]);
    }

    #[test]
    fn metadata_values_must_be_strings() {
        let h = parse_bytes(&ts::metadata_not_string());
        assert!(h
            .anomalies
            .iter()
            .any(|a| matches!(a, Anomaly::MetadataNotString { kind: "number", .. })));
        let h = parse_bytes(&ts::raw(r#"{"__metadata__": [1]}"#, b""));
        assert!(h
            .anomalies
            .contains(&Anomaly::MetadataNotObject { kind: "array" }));
    }

    #[test]
    fn mutations_never_panic() {
        for seed in [ts::honest(), ts::honest_with_metadata()] {
            for m in aegis_test_support::mutate::mutants(&seed, 3000) {
                let _ = parse(&mut Cursor::new(&m), m.len() as u64, &Limits::default());
            }
        }
    }
}
