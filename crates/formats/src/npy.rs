//! numpy `.npy`: magic `\x93NUMPY`, version bytes (1.0, 2.0 or 3.0), a little-endian header length (`u16` in
//! version 1, `u32` after), then a header that is a Python dict literal
//! `{'descr': ..., 'fortran_order': bool, 'shape': (..)}` and the array data.
//!
//! numpy reads the header with `ast.literal_eval`; [`parse`] reads it with a small literal parser of its own
//! (strings with prefixes, escapes and implicit concatenation, ints with `L` suffixes, tuples, lists, dicts,
//! `True`/`False`/`None`, comments) and never evaluates anything. A `descr` with an object field (`'O'`)
//! means the data section is a pickle, which `numpy.load` only reads with `allow_pickle=True`. Header
//! problems are recorded as [`Problem`]s; only unreadable input is an error.

use std::io::{Read, SeekFrom};

use crate::{Blob, Error, Limits, Result};

const FORMAT: &str = "npy";

/// The npy magic string.
pub const MAGIC: &[u8; 6] = b"\x93NUMPY";
/// numpy's default `max_header_size`: longer headers are refused unless the caller opts out.
pub const NUMPY_MAX_HEADER: u64 = 10_000;
/// Nesting depth of the header literal (structured dtypes nest a few levels at most).
const MAX_LITERAL_DEPTH: usize = 32;

/// A Python literal from the header.
#[derive(Debug, Clone, PartialEq)]
pub enum PyLit {
    /// `'...'` (or a bytes literal, kept as text).
    Str(String),
    /// An integer (sign included; huge ones saturate and are flagged by callers as overflow).
    Int(i128),
    /// A float.
    Float(f64),
    /// `True` / `False`.
    Bool(bool),
    /// `None`.
    None,
    /// `( ... , )`.
    Tuple(Vec<PyLit>),
    /// `[ ... ]`.
    List(Vec<PyLit>),
    /// `{ k: v, ... }` in source order, duplicates kept.
    Dict(Vec<(PyLit, PyLit)>),
}

/// A problem with the header or the data length.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Problem {
    /// A version numpy does not read.
    UnsupportedVersion {
        /// Major byte.
        major: u8,
        /// Minor byte.
        minor: u8,
    },
    /// The header runs past the end of the file.
    HeaderBeyondFile {
        /// Declared header length.
        header_len: u64,
    },
    /// Longer than numpy's default `max_header_size` (refused unless the caller opts out).
    HeaderTooLarge {
        /// Declared header length.
        header_len: u64,
    },
    /// A version 3 header that is not UTF-8.
    HeaderNotUtf8,
    /// The header is not a Python literal.
    Syntax {
        /// What is wrong.
        detail: String,
        /// Offset in the header text.
        at: usize,
    },
    /// The literal is not a dict with exactly `descr`, `fortran_order` and `shape`.
    BadKeys {
        /// What was found.
        detail: String,
    },
    /// A value has the wrong type (`fortran_order` not a bool, `shape` not a tuple of ints...).
    BadValue {
        /// The key.
        key: &'static str,
        /// What is wrong.
        detail: String,
    },
    /// A `descr` numpy writers never produce (not a type string or a list of fields).
    UnknownDescr {
        /// The descr, as text.
        descr: String,
    },
    /// `product(shape) × itemsize` overflows 64 bits.
    SizeOverflow,
    /// The data section is not `product(shape) × itemsize` bytes.
    DataLength {
        /// Bytes the header promises.
        expected: u64,
        /// Bytes present.
        actual: u64,
    },
}

/// What [`parse`] learnt.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Npy {
    /// Major version byte.
    pub major: u8,
    /// Minor version byte.
    pub minor: u8,
    /// Declared header length.
    pub header_len: u64,
    /// The header text (lossy for invalid UTF-8).
    pub header_text: String,
    /// File offset of the data section.
    pub data_offset: u64,
    /// File length.
    pub file_len: u64,
    /// The `descr` literal, when the header parsed.
    pub descr: Option<PyLit>,
    /// `fortran_order`, when valid.
    pub fortran_order: Option<bool>,
    /// `shape`, when valid.
    pub shape: Option<Vec<u64>>,
    /// Bytes per element, when the descr is understood.
    pub item_size: Option<u64>,
    /// Whether any field of the dtype is an object (the data section is then a pickle).
    pub has_object: bool,
    /// Everything wrong.
    pub problems: Vec<Problem>,
}

impl Npy {
    /// Whether the header itself is sound (data-length problems aside).
    pub fn header_ok(&self) -> bool {
        self.problems.iter().all(|p| {
            matches!(
                p,
                Problem::DataLength { .. } | Problem::HeaderTooLarge { .. }
            )
        })
    }
}

/// Parse an npy blob of `len` bytes; the data section is never read.
pub fn parse(blob: &mut dyn Blob, len: u64, limits: &Limits) -> Result<Npy> {
    let mut fixed = [0u8; 10];
    if len < 10 {
        return Err(Error::malformed(
            FORMAT,
            0,
            "shorter than the 10-byte preamble",
        ));
    }
    blob.seek(SeekFrom::Start(0))
        .map_err(|e| Error::io(FORMAT, 0, e))?;
    blob.read_exact(&mut fixed)
        .map_err(|e| Error::io(FORMAT, 0, e))?;
    if &fixed[..6] != MAGIC {
        return Err(Error::malformed(FORMAT, 0, "missing \\x93NUMPY magic"));
    }
    let mut npy = Npy {
        major: fixed[6],
        minor: fixed[7],
        file_len: len,
        ..Npy::default()
    };
    let (header_len, header_start) = match npy.major {
        1 => (u64::from(u16::from_le_bytes([fixed[8], fixed[9]])), 10u64),
        _ => {
            let mut more = [0u8; 2];
            blob.read_exact(&mut more)
                .map_err(|e| Error::io(FORMAT, 10, e))?;
            (
                u64::from(u32::from_le_bytes([fixed[8], fixed[9], more[0], more[1]])),
                12u64,
            )
        }
    };
    if !matches!((npy.major, npy.minor), (1..=3, 0)) {
        npy.problems.push(Problem::UnsupportedVersion {
            major: npy.major,
            minor: npy.minor,
        });
    }
    npy.header_len = header_len;
    npy.data_offset = header_start + header_len;
    if npy.data_offset > len {
        npy.problems.push(Problem::HeaderBeyondFile { header_len });
        return Ok(npy);
    }
    if header_len > limits.max_header {
        return Err(Error::limit(
            FORMAT,
            "header length",
            header_len,
            limits.max_header,
        ));
    }
    if header_len > NUMPY_MAX_HEADER {
        npy.problems.push(Problem::HeaderTooLarge { header_len });
    }
    let mut raw = Vec::new();
    blob.take(header_len)
        .read_to_end(&mut raw)
        .map_err(|e| Error::io(FORMAT, header_start, e))?;
    npy.header_text = if npy.major >= 3 {
        match String::from_utf8(raw) {
            Ok(s) => s,
            Err(err) => {
                npy.problems.push(Problem::HeaderNotUtf8);
                String::from_utf8_lossy(err.as_bytes()).into_owned()
            }
        }
    } else {
        raw.iter().map(|b| char::from(*b)).collect()
    };
    read_header(&mut npy);
    Ok(npy)
}

fn read_header(npy: &mut Npy) {
    let lit = match Parser::new(&npy.header_text).literal_only() {
        Ok(lit) => lit,
        Err((detail, at)) => {
            npy.problems.push(Problem::Syntax { detail, at });
            return;
        }
    };
    let PyLit::Dict(items) = lit else {
        npy.problems.push(Problem::BadKeys {
            detail: "header is not a dict".to_owned(),
        });
        return;
    };
    let mut keys: Vec<String> = items
        .iter()
        .map(|(k, _)| match k {
            PyLit::Str(s) => s.clone(),
            other => format!("{other:?}"),
        })
        .collect();
    keys.sort();
    keys.dedup();
    if keys != ["descr", "fortran_order", "shape"] || items.len() != 3 {
        npy.problems.push(Problem::BadKeys {
            detail: format!("keys are {keys:?}"),
        });
    }
    let get = |key: &str| {
        items
            .iter()
            .rev()
            .find(|(k, _)| matches!(k, PyLit::Str(s) if s == key))
            .map(|(_, v)| v.clone())
    };
    match get("fortran_order") {
        Some(PyLit::Bool(b)) => npy.fortran_order = Some(b),
        other => npy.problems.push(Problem::BadValue {
            key: "fortran_order",
            detail: format!("{other:?} is not a bool"),
        }),
    }
    match get("shape").as_ref().map(shape_of) {
        Some(Some(shape)) => npy.shape = Some(shape),
        _ => npy.problems.push(Problem::BadValue {
            key: "shape",
            detail: "not a tuple of non-negative ints".to_owned(),
        }),
    }
    if let Some(descr) = get("descr") {
        npy.has_object = has_object(&descr, 0);
        npy.item_size = item_size(&descr, 0);
        if npy.item_size.is_none() {
            npy.problems.push(Problem::UnknownDescr {
                descr: format!("{descr:?}"),
            });
        }
        npy.descr = Some(descr);
    } else {
        npy.problems.push(Problem::BadValue {
            key: "descr",
            detail: "missing".to_owned(),
        });
    }
    check_length(npy);
}

fn shape_of(lit: &PyLit) -> Option<Vec<u64>> {
    let PyLit::Tuple(items) = lit else {
        return None;
    };
    items
        .iter()
        .map(|d| match d {
            PyLit::Int(n) => u64::try_from(*n).ok(),
            PyLit::Bool(b) => Some(u64::from(*b)),
            _ => None,
        })
        .collect()
}

fn check_length(npy: &mut Npy) {
    if npy.has_object {
        return;
    }
    let (Some(shape), Some(size)) = (&npy.shape, npy.item_size) else {
        return;
    };
    let expected = shape
        .iter()
        .try_fold(1u64, |acc, d| acc.checked_mul(*d))
        .and_then(|n| n.checked_mul(size));
    let actual = npy.file_len.saturating_sub(npy.data_offset);
    match expected {
        None => npy.problems.push(Problem::SizeOverflow),
        Some(expected) if expected != actual => {
            npy.problems.push(Problem::DataLength { expected, actual })
        }
        Some(_) => {}
    }
}

/// Whether a descr has an object field anywhere (type strings, structured fields, subarrays).
pub fn has_object(descr: &PyLit, depth: usize) -> bool {
    if depth > MAX_LITERAL_DEPTH {
        return true;
    }
    match descr {
        PyLit::Str(s) => typestr_is_object(s),
        // Structured: [(name, descr), (name, descr, shape), ...]; the name is never a type.
        PyLit::List(fields) => fields.iter().any(|f| match f {
            PyLit::Tuple(parts) => parts.get(1).is_some_and(|d| has_object(d, depth + 1)),
            other => has_object(other, depth + 1),
        }),
        // Subarray: (base, shape).
        PyLit::Tuple(parts) => parts.first().is_some_and(|d| has_object(d, depth + 1)),
        PyLit::Dict(items) => items.iter().any(|(_, v)| has_object(v, depth + 1)),
        _ => false,
    }
}

/// A type string that numpy reads as (or containing) an object: `O`, `|O`, `O8`, `object`, `i4,O`.
fn typestr_is_object(s: &str) -> bool {
    s.split(',').any(|part| {
        let t = part
            .trim()
            .trim_start_matches(|c: char| c == '(' || c == ')' || c.is_ascii_digit() || c == ',');
        let t = t.trim_start_matches(['<', '>', '|', '=']);
        t.starts_with('O') || t.starts_with("object")
    })
}

/// Bytes per element of a descr; `None` when it is not one numpy writers produce.
pub fn item_size(descr: &PyLit, depth: usize) -> Option<u64> {
    if depth > MAX_LITERAL_DEPTH {
        return None;
    }
    match descr {
        PyLit::Str(s) => typestr_size(s),
        PyLit::List(fields) => {
            let mut total = 0u64;
            for f in fields {
                let PyLit::Tuple(parts) = f else { return None };
                let (name, d) = (parts.first()?, parts.get(1)?);
                if !matches!(name, PyLit::Str(_) | PyLit::Tuple(_)) || parts.len() > 3 {
                    return None;
                }
                let mut size = item_size(d, depth + 1)?;
                if let Some(shape) = parts.get(2) {
                    size = subarray(size, shape)?;
                }
                total = total.checked_add(size)?;
            }
            Some(total)
        }
        PyLit::Tuple(parts) if parts.len() == 2 => {
            subarray(item_size(parts.first()?, depth + 1)?, parts.get(1)?)
        }
        _ => None,
    }
}

fn subarray(size: u64, shape: &PyLit) -> Option<u64> {
    let dims = match shape {
        PyLit::Int(n) => vec![u64::try_from(*n).ok()?],
        other => shape_of(other)?,
    };
    dims.iter().try_fold(size, |acc, d| acc.checked_mul(*d))
}

/// Size of a numpy type string such as `<f4`, `|b1`, `|O`, `<U10`, `|S3`, `|V8`, `<M8[ns]`.
fn typestr_size(s: &str) -> Option<u64> {
    let body = s.strip_prefix(['<', '>', '|', '=']).unwrap_or(s);
    let mut chars = body.chars();
    let kind = chars.next()?;
    let rest = chars.as_str();
    let (digits, unit) = match rest.find('[') {
        Some(i) => (rest.get(..i)?, rest.get(i..)),
        None => (rest, None),
    };
    let n = if digits.is_empty() {
        None
    } else {
        Some(digits.parse::<u64>().ok()?)
    };
    if unit.is_some() && !matches!(kind, 'M' | 'm') {
        return None;
    }
    match (kind, n) {
        ('?', None) => Some(1),
        ('b', Some(1)) => Some(1),
        ('i' | 'u', Some(n @ (1 | 2 | 4 | 8))) => Some(n),
        ('f', Some(n @ (2 | 4 | 8 | 12 | 16))) => Some(n),
        ('c', Some(n @ (8 | 16 | 24 | 32))) => Some(n),
        ('O', None) => Some(8),
        ('O', Some(n @ (4 | 8))) => Some(n),
        ('S' | 'a' | 'V', Some(n)) => Some(n),
        ('U', Some(n)) => n.checked_mul(4),
        ('M' | 'm', Some(8)) => Some(8),
        _ => None,
    }
}

/// A parser of the Python literal subset `ast.literal_eval` accepts in npy headers.
struct Parser<'a> {
    src: &'a str,
    pos: usize,
}

type PResult<T> = std::result::Result<T, (String, usize)>;

impl<'a> Parser<'a> {
    fn new(src: &'a str) -> Self {
        Parser { src, pos: 0 }
    }

    fn err<T>(&self, detail: impl Into<String>) -> PResult<T> {
        Err((detail.into(), self.pos))
    }

    fn rest(&self) -> &'a str {
        self.src.get(self.pos..).unwrap_or_default()
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    /// Skip whitespace, comments and backslash-newline continuations.
    fn skip_ws(&mut self) {
        loop {
            let rest = self.rest();
            if let Some(c) = rest
                .chars()
                .next()
                .filter(|c| c.is_whitespace() || *c == '\0')
            {
                self.pos += c.len_utf8();
            } else if rest.starts_with('#') {
                self.pos += rest.find('\n').unwrap_or(rest.len());
            } else if rest.starts_with("\\\n") {
                self.pos += 2;
            } else {
                return;
            }
        }
    }

    /// The whole text must be one literal (numpy pads with spaces and a final newline).
    fn literal_only(mut self) -> PResult<PyLit> {
        let lit = self.value(0)?;
        self.skip_ws();
        if self.pos < self.src.len() {
            return self.err("unexpected text after the literal");
        }
        Ok(lit)
    }

    fn eat(&mut self, c: char) -> bool {
        self.skip_ws();
        if self.peek() == Some(c) {
            self.pos += c.len_utf8();
            true
        } else {
            false
        }
    }

    fn value(&mut self, depth: usize) -> PResult<PyLit> {
        if depth > MAX_LITERAL_DEPTH {
            return self.err("literal nested too deeply");
        }
        self.skip_ws();
        match self.peek() {
            None => self.err("unexpected end of header"),
            Some('{') => self.dict(depth),
            Some('[') => {
                self.pos += 1;
                self.sequence(']', depth)
                    .map(|(items, _)| PyLit::List(items))
            }
            Some('(') => {
                self.pos += 1;
                let (mut items, trailing_comma) = self.sequence(')', depth)?;
                match (items.len(), trailing_comma) {
                    (1, false) => Ok(items.remove(0)),
                    _ => Ok(PyLit::Tuple(items)),
                }
            }
            Some(c) if c == '\'' || c == '"' || self.string_prefix().is_some() => self.strings(),
            Some(c) if c.is_ascii_digit() || c == '-' || c == '+' || c == '.' => self.number(),
            Some(_) => self.word(),
        }
    }

    /// Items up to `close`; returns them and whether the last item had a trailing comma.
    fn sequence(&mut self, close: char, depth: usize) -> PResult<(Vec<PyLit>, bool)> {
        let mut items = Vec::new();
        let mut trailing = false;
        loop {
            if self.eat(close) {
                return Ok((items, trailing));
            }
            if !items.is_empty() && !trailing {
                return self.err(format!("expected `,` or `{close}`"));
            }
            items.push(self.value(depth + 1)?);
            trailing = self.eat(',');
        }
    }

    fn dict(&mut self, depth: usize) -> PResult<PyLit> {
        self.pos += 1;
        let mut items = Vec::new();
        loop {
            if self.eat('}') {
                return Ok(PyLit::Dict(items));
            }
            let key = self.value(depth + 1)?;
            if !self.eat(':') {
                return self.err("expected `:` in dict");
            }
            let value = self.value(depth + 1)?;
            items.push((key, value));
            if !self.eat(',') {
                if self.eat('}') {
                    return Ok(PyLit::Dict(items));
                }
                return self.err("expected `,` or `}` in dict");
            }
        }
    }

    /// A string prefix (`b`, `r`, `u`, `rb`, `br`, any case) directly followed by a quote.
    fn string_prefix(&self) -> Option<(usize, bool)> {
        let rest = self.rest();
        let n = rest
            .chars()
            .take_while(|c| matches!(c, 'b' | 'B' | 'r' | 'R' | 'u' | 'U'))
            .count();
        let after = rest.get(n..)?;
        if (1..=2).contains(&n) && (after.starts_with('\'') || after.starts_with('"')) {
            let raw = rest.get(..n)?.contains(['r', 'R']);
            Some((n, raw))
        } else {
            None
        }
    }

    /// One or more adjacent string literals (Python concatenates them).
    fn strings(&mut self) -> PResult<PyLit> {
        let mut out = String::new();
        loop {
            self.skip_ws();
            let (prefix, raw) = self.string_prefix().unwrap_or((0, false));
            let quote_at = self.pos + prefix;
            let quote = match self.src.get(quote_at..).and_then(|s| s.chars().next()) {
                Some(q @ ('\'' | '"')) => q,
                _ if out.is_empty() => return self.err("expected a string"),
                _ => return Ok(PyLit::Str(out)),
            };
            self.pos = quote_at;
            self.one_string(quote, raw, &mut out)?;
        }
    }

    fn one_string(&mut self, quote: char, raw: bool, out: &mut String) -> PResult<()> {
        let rest = self.rest();
        let triple: String = std::iter::repeat_n(quote, 3).collect();
        let single = quote.to_string();
        let (delim, start) = if rest.starts_with(&triple) {
            (triple.as_str(), 3)
        } else {
            (single.as_str(), 1)
        };
        let body = rest.get(start..).unwrap_or_default();
        let mut chars = body.char_indices();
        while let Some((i, c)) = chars.next() {
            if body.get(i..).is_some_and(|s| s.starts_with(delim)) {
                self.pos += start + i + delim.len();
                return Ok(());
            }
            if c == '\n' && delim.len() == 1 {
                return self.err("newline in string");
            }
            if c != '\\' || raw {
                out.push(c);
                if raw && c == '\\' {
                    if let Some((_, n)) = chars.next() {
                        out.push(n);
                    }
                }
                continue;
            }
            let Some((_, e)) = chars.next() else { break };
            match e {
                'n' => out.push('\n'),
                't' => out.push('\t'),
                'r' => out.push('\r'),
                '0'..='7' => {
                    let mut n = e.to_digit(8).unwrap_or(0);
                    for _ in 0..2 {
                        match chars.clone().next().and_then(|(_, d)| d.to_digit(8)) {
                            Some(d) => {
                                n = n * 8 + d;
                                chars.next();
                            }
                            None => break,
                        }
                    }
                    out.extend(char::from_u32(n));
                }
                'x' | 'u' | 'U' => {
                    let len = match e {
                        'x' => 2,
                        'u' => 4,
                        _ => 8,
                    };
                    let mut v = 0u32;
                    for _ in 0..len {
                        let Some(d) = chars.next().and_then(|(_, d)| d.to_digit(16)) else {
                            return self.err("bad escape in string");
                        };
                        v = v.saturating_mul(16).saturating_add(d);
                    }
                    match char::from_u32(v) {
                        Some(ch) => out.push(ch),
                        None => return self.err("bad escape in string"),
                    }
                }
                '\n' => {}
                '\\' | '\'' | '"' => out.push(e),
                'a' => out.push('\x07'),
                'b' => out.push('\x08'),
                'f' => out.push('\x0c'),
                'v' => out.push('\x0b'),
                other => {
                    out.push('\\');
                    out.push(other);
                }
            }
        }
        self.pos = self.src.len();
        self.err("unterminated string")
    }

    fn number(&mut self) -> PResult<PyLit> {
        let rest = self.rest();
        let len = rest
            .char_indices()
            .find(|(i, c)| {
                !(c.is_ascii_alphanumeric()
                    || *c == '_'
                    || *c == '.'
                    || (*i == 0 && (*c == '-' || *c == '+')))
            })
            .map_or(rest.len(), |(i, _)| i);
        let text = rest.get(..len).unwrap_or_default();
        self.pos += len;
        let (neg, body) = match text.strip_prefix('-') {
            Some(b) => (true, b),
            None => (false, text.strip_prefix('+').unwrap_or(text)),
        };
        let body = body
            .strip_suffix(['L', 'l'])
            .unwrap_or(body)
            .replace('_', "");
        let (radix, digits) = match body.get(..2) {
            Some("0x" | "0X") => (16, body.get(2..).unwrap_or_default()),
            Some("0o" | "0O") => (8, body.get(2..).unwrap_or_default()),
            Some("0b" | "0B") => (2, body.get(2..).unwrap_or_default()),
            _ => (10, body.as_str()),
        };
        if let Ok(n) = i128::from_str_radix(digits, radix) {
            return Ok(PyLit::Int(if neg { -n } else { n }));
        }
        if radix == 10 && !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
            return Ok(PyLit::Int(if neg { i128::MIN } else { i128::MAX }));
        }
        match body.parse::<f64>() {
            Ok(f) => Ok(PyLit::Float(if neg { -f } else { f })),
            Err(_) => self.err(format!("bad number `{text}`")),
        }
    }

    fn word(&mut self) -> PResult<PyLit> {
        let rest = self.rest();
        let len = rest
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        let word = rest.get(..len).unwrap_or_default();
        let lit = match word {
            "True" => PyLit::Bool(true),
            "False" => PyLit::Bool(false),
            "None" => PyLit::None,
            "" => return self.err("unexpected character"),
            other => return self.err(format!("`{other}` is not a literal")),
        };
        self.pos += len;
        Ok(lit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aegis_test_support::npy as tn;
    use std::io::Cursor;

    fn parse_bytes(bytes: &[u8]) -> Npy {
        parse(
            &mut Cursor::new(bytes),
            bytes.len() as u64,
            &Limits::default(),
        )
        .unwrap()
    }

    #[test]
    fn honest_float32() {
        let npy = parse_bytes(&tn::float32(&[2, 3]));
        assert_eq!(npy.problems, vec![]);
        assert_eq!(npy.shape, Some(vec![2, 3]));
        assert_eq!(npy.item_size, Some(4));
        assert_eq!(npy.data_offset % 64, 0);
        assert!(!npy.has_object);
    }

    #[test]
    fn object_arrays_and_fields() {
        let npy = parse_bytes(&tn::object_pickle());
        assert!(npy.has_object);
        assert!(npy.header_ok());
        let npy = parse_bytes(&tn::structured_object());
        assert!(npy.has_object, "{:?}", npy.descr);
        let npy = parse_bytes(&tn::structured());
        assert!(!npy.has_object);
        assert_eq!(npy.problems, vec![]);
        assert_eq!(npy.item_size, Some(4 + 8 + 2 * 3 * 2));
    }

    #[test]
    fn python_literal_corners() {
        let lit = Parser::new("{'descr': '<' 'f4', # comment\n 'shape': (3L, 0x4,), 'x': (1), 'y': b\"a\\x41\", 'z': r'\\d', 'w': []}").literal_only();
        let PyLit::Dict(items) = lit.unwrap() else {
            panic!()
        };
        assert_eq!(items[0].1, PyLit::Str("<f4".into()));
        assert_eq!(items[1].1, PyLit::Tuple(vec![PyLit::Int(3), PyLit::Int(4)]));
        assert_eq!(items[2].1, PyLit::Int(1));
        assert_eq!(items[3].1, PyLit::Str("aA".into()));
        assert_eq!(items[4].1, PyLit::Str("\\d".into()));
        assert_eq!(items[5].1, PyLit::List(vec![]));
        assert!(Parser::new("{'a': __import__('os')}")
            .literal_only()
            .is_err());
        assert!(Parser::new("{'a': 1} {}").literal_only().is_err());
        assert!(Parser::new(&"[".repeat(10_000)).literal_only().is_err());
    }

    #[test]
    fn comment_cannot_hide_an_object_descr() {
        let npy = parse_bytes(&tn::raw(
            1,
            "{'descr': '|O', # '<f4'\n 'fortran_order': False, 'shape': (1,), }",
            &tn::pickle_payload(),
        ));
        assert!(npy.has_object);
    }

    #[test]
    fn header_problems() {
        let npy = parse_bytes(&tn::eval_header());
        assert!(matches!(npy.problems[0], Problem::Syntax { .. }));
        let npy = parse_bytes(&tn::raw(1, "{'descr': '<f4', 'shape': (1,)}", &[0; 4]));
        assert!(npy
            .problems
            .iter()
            .any(|p| matches!(p, Problem::BadKeys { .. })));
        let npy = parse_bytes(&tn::raw(
            1,
            "{'descr': '<f4', 'fortran_order': 0, 'shape': (-1,)}",
            &[0; 4],
        ));
        assert_eq!(
            npy.problems
                .iter()
                .filter(|p| matches!(p, Problem::BadValue { .. }))
                .count(),
            2
        );
        let npy = parse_bytes(&tn::raw(
            1,
            "{'descr': 'float32', 'fortran_order': False, 'shape': ()}",
            &[0; 4],
        ));
        assert!(npy
            .problems
            .iter()
            .any(|p| matches!(p, Problem::UnknownDescr { .. })));
        let npy = parse_bytes(&tn::raw(4, "{}", &[]));
        assert!(npy
            .problems
            .iter()
            .any(|p| matches!(p, Problem::UnsupportedVersion { major: 4, .. })));
        let mut beyond = tn::float32(&[1]);
        beyond[8] = 0xff;
        beyond[9] = 0xff;
        assert!(matches!(
            parse_bytes(&beyond).problems[0],
            Problem::HeaderBeyondFile { .. }
        ));
    }

    #[test]
    fn data_length_and_overflow() {
        let mut bytes = tn::float32(&[4]);
        bytes.extend_from_slice(b"extra");
        assert!(parse_bytes(&bytes).problems.contains(&Problem::DataLength {
            expected: 16,
            actual: 21
        }));
        let npy = parse_bytes(&tn::raw(
            1,
            "{'descr': '<f8', 'fortran_order': False, 'shape': (4294967296, 4294967296)}",
            &[],
        ));
        assert!(npy.problems.contains(&Problem::SizeOverflow));
    }

    #[test]
    fn versions_two_and_three() {
        let npy = parse_bytes(&tn::raw(
            2,
            "{'descr': '<i8', 'fortran_order': True, 'shape': (1,)}",
            &[0; 8],
        ));
        assert_eq!(npy.problems, vec![]);
        assert_eq!(npy.fortran_order, Some(true));
        let npy = parse_bytes(&tn::raw(
            3,
            "{'descr': [('é', '<U2')], 'fortran_order': False, 'shape': (1,)}",
            &[0; 8],
        ));
        assert_eq!(npy.problems, vec![]);
    }

    #[test]
    fn typestrs() {
        for (t, n) in [
            ("<f4", 4),
            ("|b1", 1),
            ("|O", 8),
            ("<U10", 40),
            ("|S3", 3),
            ("|V8", 8),
            ("<M8[ns]", 8),
            ("<c16", 16),
        ] {
            assert_eq!(typestr_size(t), Some(n), "{t}");
        }
        assert_eq!(typestr_size("<f3"), None);
        assert!(typestr_is_object("i4,O"));
        assert!(typestr_is_object("object"));
        assert!(!typestr_is_object("<f4"));
    }

    #[test]
    fn mutations_never_panic() {
        for seed in [tn::float32(&[2, 3]), tn::structured(), tn::object_pickle()] {
            for m in aegis_test_support::mutate::mutants(&seed, 3000) {
                let _ = parse(&mut Cursor::new(&m), m.len() as u64, &Limits::default());
            }
        }
    }
}
