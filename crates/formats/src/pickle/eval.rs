//! Symbolic evaluation of a few pure, bounded Python functions, so payload chains such as
//! `pickle.loads(base64.b64decode("…"))` or `getattr(__import__("os"), "system")` resolve to the value the
//! real unpickler would compute. Only complete constants are evaluated; anything else (a prefix, a computed
//! value, an unsupported argument) returns `None` and the caller keeps an opaque object. Nothing here
//! imports or runs anything: the functions are reimplemented after CPython's `base64`, `binascii`, `codecs`
//! and `zlib` modules, and decompression output is bounded.

use std::io::Read;
use std::rc::Rc;

use super::Value;

/// The result of an evaluation.
#[derive(Debug)]
pub(super) struct Evaluated {
    /// The computed value.
    pub value: Value,
    /// Whether the output was cut at the bound (decompression).
    pub truncated: bool,
}

impl From<Value> for Evaluated {
    fn from(value: Value) -> Self {
        Evaluated {
            value,
            truncated: false,
        }
    }
}

/// Modules renamed between Python 2 and 3 that `find_class` maps with `fix_imports`.
fn canonical_module(module: &str) -> &str {
    match module {
        "__builtin__" => "builtins",
        "copy_reg" => "copyreg",
        "_codecs" => "codecs",
        other => other,
    }
}

/// Whether `callable` is one of the functions [`evaluate`] knows (a cheap test before collecting arguments).
pub(super) fn is_evaluable(callable: &Value) -> bool {
    let Some((module, name)) = callable.as_global() else {
        return false;
    };
    match canonical_module(module) {
        "base64" | "binascii" | "codecs" | "zlib" | "gzip" | "importlib" => true,
        "builtins" => matches!(
            name,
            "bytes"
                | "bytearray"
                | "bytes.fromhex"
                | "bytearray.fromhex"
                | "str.encode"
                | "bytes.decode"
                | "bytearray.decode"
                | "getattr"
                | "__import__"
        ),
        _ => false,
    }
}

/// Evaluate `callable(*args)` if it is one of the known pure functions and every input is a complete
/// constant. `max_out` bounds the bytes a decompression produces.
pub(super) fn evaluate(callable: &Value, args: &Value, max_out: usize) -> Option<Evaluated> {
    let (module, name) = callable.as_global()?;
    let args = match args {
        Value::Tuple(items) => items.as_slice(),
        _ => return None,
    };
    let module = canonical_module(module);
    let bytes = |v: Vec<u8>| -> Option<Evaluated> { Some(Value::bytes(&v).into()) };
    match (module, name) {
        ("base64", "b64decode") => match args {
            [s] => bytes(b64decode(&ascii_data(s)?, None, false)?),
            [s, alt] => bytes(b64decode(
                &ascii_data(s)?,
                opt_bytes(alt)?.as_deref(),
                false,
            )?),
            [s, alt, validate] => bytes(b64decode(
                &ascii_data(s)?,
                opt_bytes(alt)?.as_deref(),
                truthy(validate)?,
            )?),
            _ => None,
        },
        ("base64", "standard_b64decode" | "decodebytes" | "decodestring")
        | ("binascii", "a2b_base64") => match args {
            [s] => bytes(a2b_base64(&ascii_data(s)?, false)?),
            _ => None,
        },
        ("base64", "urlsafe_b64decode") => match args {
            [s] => bytes(b64decode(&ascii_data(s)?, Some(b"-_"), false)?),
            _ => None,
        },
        ("base64", "b32decode") => match args {
            [s] => bytes(b32decode(&ascii_data(s)?, false)?),
            [s, casefold] => bytes(b32decode(&ascii_data(s)?, truthy(casefold)?)?),
            [s, casefold, Value::None] => bytes(b32decode(&ascii_data(s)?, truthy(casefold)?)?),
            _ => None,
        },
        ("base64", "b16decode") => match args {
            [s] => bytes(b16decode(&ascii_data(s)?, false)?),
            [s, casefold] => bytes(b16decode(&ascii_data(s)?, truthy(casefold)?)?),
            _ => None,
        },
        ("base64", "b85decode") => match args {
            [s] => bytes(b85decode(&ascii_data(s)?)?),
            _ => None,
        },
        ("base64", "a85decode") => match args {
            [s] => bytes(a85decode(&ascii_data(s)?)?),
            _ => None,
        },
        ("binascii", "a2b_hex" | "unhexlify") => match args {
            [s] => bytes(unhexlify(&ascii_data(s)?)?),
            _ => None,
        },
        ("builtins", "bytes.fromhex" | "bytearray.fromhex") => match args {
            [s] => bytes(fromhex(s.as_str()?)?),
            _ => None,
        },
        ("builtins", "bytes" | "bytearray") => bytes(construct_bytes(args, max_out)?),
        ("builtins", "str.encode") => match args {
            [s] => bytes(encode_text(s.as_str()?, "utf_8")?),
            [s, enc] | [s, enc, _] => bytes(encode_text(
                s.as_str()?,
                &normalize_encoding(enc.as_str()?),
            )?),
            _ => None,
        },
        ("builtins", "bytes.decode" | "bytearray.decode") => match args {
            [b] => Some(Value::str(&decode_text(complete_bytes(b)?, "utf_8")?).into()),
            [b, enc] | [b, enc, _] => Some(
                Value::str(&decode_text(
                    complete_bytes(b)?,
                    &normalize_encoding(enc.as_str()?),
                )?)
                .into(),
            ),
            _ => None,
        },
        ("codecs", "decode") => match args {
            [obj] => codec(obj, "utf_8", true, max_out),
            [obj, enc] | [obj, enc, _] => {
                codec(obj, &normalize_encoding(enc.as_str()?), true, max_out)
            }
            _ => None,
        },
        ("codecs", "encode") => match args {
            [obj] => codec(obj, "utf_8", false, max_out),
            [obj, enc] | [obj, enc, _] => {
                codec(obj, &normalize_encoding(enc.as_str()?), false, max_out)
            }
            _ => None,
        },
        ("zlib", "decompress") => {
            let wbits = match args {
                [_] => 15,
                [_, w] | [_, w, _] => int(w)?,
                _ => return None,
            };
            let data = complete_bytes(args.first()?)?;
            decompressed(decompress(data, wbits, max_out)?)
        }
        ("gzip", "decompress") => match args {
            [data] => decompressed(decompress(complete_bytes(data)?, 31, max_out)?),
            _ => None,
        },
        ("builtins", "getattr") => match args {
            [obj, attr] | [obj, attr, _] => getattr(obj, attr.as_str()?).map(Evaluated::from),
            _ => None,
        },
        ("builtins", "__import__") => import(args).map(Evaluated::from),
        ("importlib", "import_module") => match args {
            [name] | [name, Value::None] => module_ref(name.as_str()?).map(Evaluated::from),
            _ => None,
        },
        _ => None,
    }
}

/// `getattr(global, attr)`: a walk to `module.name.attr`.
fn getattr(obj: &Value, attr: &str) -> Option<Value> {
    let (module, name) = obj.as_global()?;
    if attr.is_empty() {
        return None;
    }
    let name: Rc<str> = if name.is_empty() {
        Rc::from(attr)
    } else {
        Rc::from(format!("{name}.{attr}"))
    };
    Some(Value::Global {
        module: Rc::from(module),
        name,
    })
}

/// `__import__(name, globals=None, locals=None, fromlist=(), level=0)`: the top-level package, or the
/// module itself with a non-empty `fromlist`.
fn import(args: &[Value]) -> Option<Value> {
    let name = args.first()?.as_str()?;
    let fromlist = match args.get(3) {
        None | Some(Value::None) => false,
        Some(v) => truthy(v)?,
    };
    match args.get(4) {
        None | Some(Value::Int(0)) => {}
        Some(_) => return None,
    }
    if args.len() > 5 {
        return None;
    }
    let target = if fromlist {
        name
    } else {
        name.split('.').next()?
    };
    module_ref(target)
}

/// A module object reference, refusing relative and empty names.
fn module_ref(name: &str) -> Option<Value> {
    if name.is_empty() || name.starts_with('.') {
        return None;
    }
    Some(Value::Global {
        module: Rc::from(name),
        name: Rc::from(""),
    })
}

fn decompressed((data, truncated): (Vec<u8>, bool)) -> Option<Evaluated> {
    let len = if truncated {
        data.len() as u64 + 1
    } else {
        data.len() as u64
    };
    Some(Evaluated {
        value: Value::Bytes {
            data: Rc::from(data),
            len,
        },
        truncated,
    })
}

/// A complete `bytes` constant.
fn complete_bytes(v: &Value) -> Option<&[u8]> {
    match v {
        Value::Bytes { .. } => v.as_bytes(),
        _ => None,
    }
}

/// `_bytes_from_decode_data`: a complete bytes constant, or a complete ASCII `str`.
fn ascii_data(v: &Value) -> Option<Vec<u8>> {
    match v {
        Value::Str { .. } => v
            .as_str()
            .filter(|s| s.is_ascii())
            .map(|s| s.as_bytes().to_vec()),
        Value::Bytes { .. } => v.as_bytes().map(<[u8]>::to_vec),
        _ => None,
    }
}

/// `None` or ASCII data (the `altchars` argument).
fn opt_bytes(v: &Value) -> Option<Option<Vec<u8>>> {
    match v {
        Value::None => Some(None),
        other => ascii_data(other).map(Some),
    }
}

/// Python truthiness of a constant.
fn truthy(v: &Value) -> Option<bool> {
    match v {
        Value::None => Some(false),
        Value::Bool(b) => Some(*b),
        Value::Int(i) => Some(*i != 0),
        Value::Str { len, .. } | Value::Bytes { len, .. } => Some(*len > 0),
        Value::Tuple(items) => Some(!items.is_empty()),
        Value::List(items) => Some(!items.borrow().is_empty()),
        _ => None,
    }
}

fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        Value::Bool(b) => Some(i64::from(*b)),
        _ => None,
    }
}

/// `encodings.normalize_encoding` plus the aliases we evaluate.
fn normalize_encoding(name: &str) -> String {
    let norm: String = name
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    let canonical = match norm.as_str() {
        "utf8" | "utf_8" | "u8" | "utf" | "cp65001" => "utf_8",
        "ascii" | "us_ascii" | "646" | "us" => "ascii",
        "latin_1" | "latin1" | "latin" | "l1" | "iso8859_1" | "iso_8859_1" | "8859" | "cp819"
        | "iso_ir_100" => "latin_1",
        "base64" | "base_64" | "base64_codec" => "base64",
        "hex" | "hex_codec" => "hex",
        "zip" | "zlib" | "zlib_codec" => "zlib",
        "rot13" | "rot_13" => "rot13",
        _ => return norm,
    };
    canonical.to_owned()
}

/// `codecs.decode` / `codecs.encode` with a text or bytes-to-bytes codec.
fn codec(obj: &Value, encoding: &str, decode: bool, max_out: usize) -> Option<Evaluated> {
    let bytes = |v: Vec<u8>| Some(Evaluated::from(Value::bytes(&v)));
    match (encoding, decode) {
        ("base64", true) => bytes(a2b_base64(&ascii_data(obj)?, false)?),
        ("hex", true) => bytes(unhexlify(&ascii_data(obj)?)?),
        ("zlib", true) => decompressed(decompress(complete_bytes(obj)?, 15, max_out)?),
        ("base64", false) => bytes(encodebytes(complete_bytes(obj)?)),
        ("hex", false) => bytes(hexlify(complete_bytes(obj)?)),
        ("rot13", _) => Some(Value::str(&rot13(obj.as_str()?)).into()),
        (text, true) => Some(Value::str(&decode_text(complete_bytes(obj)?, text)?).into()),
        (text, false) => bytes(encode_text(obj.as_str()?, text)?),
    }
}

fn rot13(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            'a'..='z' => char::from(b'a' + (c as u8 - b'a' + 13) % 26),
            'A'..='Z' => char::from(b'A' + (c as u8 - b'A' + 13) % 26),
            other => other,
        })
        .collect()
}

/// `str.encode(encoding)` for UTF-8, ASCII and Latin-1.
fn encode_text(s: &str, encoding: &str) -> Option<Vec<u8>> {
    match encoding {
        "utf_8" => Some(s.as_bytes().to_vec()),
        "ascii" => s.is_ascii().then(|| s.as_bytes().to_vec()),
        "latin_1" => s.chars().map(|c| u8::try_from(u32::from(c)).ok()).collect(),
        _ => None,
    }
}

/// `bytes.decode(encoding)` for UTF-8, ASCII and Latin-1.
fn decode_text(b: &[u8], encoding: &str) -> Option<String> {
    match encoding {
        "utf_8" => std::str::from_utf8(b).ok().map(str::to_owned),
        "ascii" => b
            .is_ascii()
            .then(|| String::from_utf8_lossy(b).into_owned()),
        "latin_1" => Some(b.iter().map(|&c| char::from(c)).collect()),
        _ => None,
    }
}

/// `bytes(x)` / `bytearray(x)`.
fn construct_bytes(args: &[Value], max_out: usize) -> Option<Vec<u8>> {
    match args {
        [] => Some(Vec::new()),
        [Value::Bytes { .. }] => args.first()?.as_bytes().map(<[u8]>::to_vec),
        [s, enc] | [s, enc, _] => encode_text(s.as_str()?, &normalize_encoding(enc.as_str()?)),
        [Value::Int(n)] => {
            let n = usize::try_from(*n).ok()?;
            (n <= max_out).then(|| vec![0; n])
        }
        [Value::Tuple(_) | Value::List(_)] => {
            let items = args.first()?.items()?;
            items
                .iter()
                .map(|v| match v {
                    Value::Int(i) => u8::try_from(*i).ok(),
                    Value::Bool(b) => Some(u8::from(*b)),
                    _ => None,
                })
                .collect()
        }
        _ => None,
    }
}

const B64_ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn b64_value(c: u8) -> Option<u8> {
    B64_ALPHABET.iter().position(|a| *a == c).map(|p| p as u8)
}

/// `binascii.a2b_base64` (CPython's algorithm: invalid characters skipped unless `strict`, decoding stops at
/// complete padding).
fn a2b_base64(data: &[u8], strict: bool) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(data.len() / 4 * 3 + 3);
    let (mut quad, mut left, mut pads) = (0u8, 0u8, 0u8);
    let mut padding_started = false;
    for (i, &c) in data.iter().enumerate() {
        if c == b'=' {
            padding_started = true;
            if strict && quad == 0 {
                return None;
            }
            if quad >= 2 {
                pads += 1;
                if quad + pads >= 4 {
                    if strict && i + 1 < data.len() {
                        return None;
                    }
                    return Some(out);
                }
            }
            continue;
        }
        let Some(v) = b64_value(c) else {
            if strict {
                return None;
            }
            continue;
        };
        if strict && padding_started {
            return None;
        }
        pads = 0;
        match quad {
            0 => {
                quad = 1;
                left = v;
            }
            1 => {
                quad = 2;
                out.push((left << 2) | (v >> 4));
                left = v & 0x0f;
            }
            2 => {
                quad = 3;
                out.push((left << 4) | (v >> 2));
                left = v & 0x03;
            }
            _ => {
                quad = 0;
                out.push((left << 6) | v);
                left = 0;
            }
        }
    }
    (quad == 0).then_some(out)
}

/// `base64.b64decode(s, altchars, validate)`.
fn b64decode(s: &[u8], altchars: Option<&[u8]>, validate: bool) -> Option<Vec<u8>> {
    let mut s = s.to_vec();
    if let Some(alt) = altchars {
        let [a, b] = alt else { return None };
        for c in &mut s {
            if c == a {
                *c = b'+';
            } else if c == b {
                *c = b'/';
            }
        }
    }
    if validate {
        let body = s.iter().rposition(|c| *c != b'=').map_or(0, |p| p + 1);
        let ok = s.len() - body <= 2
            && s.get(..body)
                .is_some_and(|b| b.iter().all(|c| b64_value(*c).is_some()));
        if !ok {
            return None;
        }
    }
    a2b_base64(&s, validate)
}

/// `base64.b32decode(s, casefold)`.
fn b32decode(s: &[u8], casefold: bool) -> Option<Vec<u8>> {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    if !s.len().is_multiple_of(8) {
        return None;
    }
    let upper: Vec<u8> = if casefold {
        s.to_ascii_uppercase()
    } else {
        s.to_vec()
    };
    let body_len = upper.iter().rposition(|c| *c != b'=').map_or(0, |p| p + 1);
    let padchars = upper.len() - body_len;
    let body = upper.get(..body_len)?;
    let mut out = Vec::with_capacity(body_len / 8 * 5 + 5);
    for quantum in body.chunks(8) {
        let mut acc: u64 = 0;
        for &c in quantum {
            let v = ALPHABET.iter().position(|a| *a == c)? as u64;
            acc = (acc << 5) | v;
        }
        // A short last quantum is completed by its padding below.
        acc <<= 5 * (8 - quantum.len()) as u64;
        out.extend_from_slice(acc.to_be_bytes().get(3..)?);
    }
    if !matches!(padchars, 0 | 1 | 3 | 4 | 6) {
        return None;
    }
    if padchars > 0 && !out.is_empty() {
        let leftover = (43 - 5 * padchars) / 8;
        let keep = out.len() - 5 + leftover;
        out.truncate(keep);
    }
    Some(out)
}

/// `base64.b16decode(s, casefold)`: upper-case hex only unless `casefold`.
fn b16decode(s: &[u8], casefold: bool) -> Option<Vec<u8>> {
    let s: Vec<u8> = if casefold {
        s.to_ascii_uppercase()
    } else {
        s.to_vec()
    };
    if s.iter().any(|c| !matches!(c, b'0'..=b'9' | b'A'..=b'F')) {
        return None;
    }
    unhexlify(&s)
}

/// `base64.b85decode`.
fn b85decode(s: &[u8]) -> Option<Vec<u8>> {
    const ALPHABET: &[u8; 85] =
        b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz!#$%&()*+-;<=>?@^_`{|}~";
    let padding = (5 - s.len() % 5) % 5;
    let mut padded = s.to_vec();
    padded.extend(std::iter::repeat_n(b'~', padding));
    let mut out = Vec::with_capacity(padded.len() / 5 * 4);
    for chunk in padded.chunks(5) {
        let mut acc: u64 = 0;
        for &c in chunk {
            acc = acc * 85 + ALPHABET.iter().position(|a| *a == c)? as u64;
        }
        out.extend_from_slice(&u32::try_from(acc).ok()?.to_be_bytes());
    }
    out.truncate(out.len() - padding);
    Some(out)
}

/// `base64.a85decode` with default options.
fn a85decode(s: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() / 5 * 4 + 4);
    let mut curr: Vec<u8> = Vec::with_capacity(5);
    for &x in s.iter().chain(b"uuuu".iter()) {
        match x {
            b'!'..=b'u' => {
                curr.push(x);
                if curr.len() == 5 {
                    let acc = curr
                        .iter()
                        .fold(0u64, |acc, c| acc * 85 + u64::from(c - b'!'));
                    out.extend_from_slice(&u32::try_from(acc).ok()?.to_be_bytes());
                    curr.clear();
                }
            }
            b'z' if curr.is_empty() => out.extend_from_slice(&[0; 4]),
            b' ' | b'\t' | b'\n' | b'\r' | 0x0b => {}
            _ => return None,
        }
    }
    let padding = 4 - curr.len();
    out.truncate(out.len().saturating_sub(padding));
    Some(out)
}

fn hex_value(c: u8) -> Option<u8> {
    char::from(c).to_digit(16).map(|d| d as u8)
}

/// `binascii.unhexlify`.
fn unhexlify(s: &[u8]) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    s.chunks(2)
        .map(|p| match p {
            [h, l] => Some(hex_value(*h)? << 4 | hex_value(*l)?),
            _ => None,
        })
        .collect()
}

/// `bytes.fromhex`: hex pairs, ASCII whitespace allowed between pairs.
fn fromhex(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() / 2);
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes.get(i).is_some_and(u8::is_ascii_whitespace) {
            i += 1;
            continue;
        }
        let hi = hex_value(*bytes.get(i)?)?;
        let lo = hex_value(*bytes.get(i + 1)?)?;
        out.push(hi << 4 | lo);
        i += 2;
    }
    Some(out)
}

fn hexlify(b: &[u8]) -> Vec<u8> {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    b.iter()
        .flat_map(|c| [DIGITS[usize::from(c >> 4)], DIGITS[usize::from(c & 15)]])
        .collect()
}

/// `base64.encodebytes`: lines of at most 76 characters, each ending in a newline.
fn encodebytes(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(b.len() / 3 * 4 + b.len() / 57 + 4);
    for line in b.chunks(57) {
        for group in line.chunks(3) {
            let n = group.iter().fold(0u32, |acc, c| acc << 8 | u32::from(*c))
                << (8 * (3 - group.len()));
            for k in 0..4 {
                if k <= group.len() {
                    out.push(B64_ALPHABET[((n >> (18 - 6 * k)) & 63) as usize]);
                } else {
                    out.push(b'=');
                }
            }
        }
        out.push(b'\n');
    }
    out
}

/// `zlib.decompress(data, wbits)`: zlib (9..=15), raw deflate (-15..=-8), gzip (25..=31) or automatic
/// (40..=47). Output beyond `max_out` is cut (`true` in the result).
fn decompress(data: &[u8], wbits: i64, max_out: usize) -> Option<(Vec<u8>, bool)> {
    let reader: Box<dyn Read + '_> = match wbits {
        0 | 9..=15 => Box::new(flate2::read::ZlibDecoder::new(data)),
        -15..=-8 => Box::new(flate2::read::DeflateDecoder::new(data)),
        25..=31 => Box::new(flate2::read::MultiGzDecoder::new(data)),
        40..=47 if data.first() == Some(&0x1f) => Box::new(flate2::read::MultiGzDecoder::new(data)),
        40..=47 => Box::new(flate2::read::ZlibDecoder::new(data)),
        _ => return None,
    };
    let mut out = Vec::new();
    let limit = u64::try_from(max_out).unwrap_or(u64::MAX).saturating_add(1);
    reader.take(limit).read_to_end(&mut out).ok()?;
    let truncated = out.len() > max_out;
    out.truncate(max_out);
    Some((out, truncated))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(module: &str, name: &str, args: Vec<Value>) -> Option<Value> {
        let callable = Value::Global {
            module: Rc::from(module),
            name: Rc::from(name),
        };
        evaluate(&callable, &Value::Tuple(Rc::new(args)), 1 << 20).map(|e| e.value)
    }

    fn bytes_of(v: Option<Value>) -> Option<Vec<u8>> {
        v.and_then(|v| v.as_bytes().map(<[u8]>::to_vec))
    }

    #[test]
    fn base64_family_matches_cpython() {
        let b = |m: &str, n: &str, s: &str| bytes_of(call(m, n, vec![Value::str(s)]));
        assert_eq!(
            b("base64", "b64decode", "ZWNobyBwd25lZA=="),
            Some(b"echo pwned".to_vec())
        );
        assert_eq!(
            b("base64", "b64decode", "ZWNo\nbyBw!d25lZA=="),
            Some(b"echo pwned".to_vec())
        );
        assert_eq!(b("base64", "b64decode", "ZWNobyBwd25lZA"), None); // incorrect padding
        assert_eq!(b("base64", "b64decode", "YQ==garbage"), Some(b"a".to_vec()));
        assert_eq!(
            b("base64", "standard_b64decode", "aWQ="),
            Some(b"id".to_vec())
        );
        assert_eq!(b("binascii", "a2b_base64", "aWQ="), Some(b"id".to_vec()));
        assert_eq!(
            b("base64", "urlsafe_b64decode", "-_8="),
            Some(vec![0xfb, 0xff])
        );
        assert_eq!(b("base64", "b32decode", "NFSA===="), Some(b"id".to_vec()));
        assert_eq!(
            b("base64", "b32decode", "MZXW6YTBOI======"),
            Some(b"foobar".to_vec())
        );
        assert_eq!(b("base64", "b32decode", "NFSA==="), None);
        assert_eq!(b("base64", "b16decode", "6964"), Some(b"id".to_vec()));
        assert_eq!(b("base64", "b16decode", "6a"), None);
        assert_eq!(
            b("base64", "b85decode", "Xk~0{Zy<MXa%^M"),
            Some(b"hello world".to_vec())
        );
        assert_eq!(
            b("base64", "a85decode", "BOu!rD]j7BEbo7"),
            Some(b"hello world".to_vec())
        );
        assert_eq!(b("base64", "a85decode", "z"), Some(vec![0; 4]));
        let validate = call(
            "base64",
            "b64decode",
            vec![Value::str("aW!Q="), Value::None, Value::Bool(true)],
        );
        assert!(validate.is_none());
    }

    #[test]
    fn hex_and_text_codecs() {
        let b = |m: &str, n: &str, args: Vec<Value>| bytes_of(call(m, n, args));
        assert_eq!(
            b("binascii", "unhexlify", vec![Value::str("6964")]),
            Some(b"id".to_vec())
        );
        assert_eq!(
            b("binascii", "a2b_hex", vec![Value::bytes(b"6A")]),
            Some(b"j".to_vec())
        );
        assert_eq!(
            b("builtins", "bytes.fromhex", vec![Value::str("69 64")]),
            Some(b"id".to_vec())
        );
        assert_eq!(
            b("builtins", "bytes.fromhex", vec![Value::str("6 964")]),
            None
        );
        assert_eq!(
            b(
                "builtins",
                "str.encode",
                vec![Value::str("id"), Value::str("ASCII")]
            ),
            Some(b"id".to_vec())
        );
        assert_eq!(
            b(
                "builtins",
                "str.encode",
                vec![Value::str("é"), Value::str("latin-1")]
            ),
            Some(vec![0xe9])
        );
        assert_eq!(
            b(
                "builtins",
                "str.encode",
                vec![Value::str("é"), Value::str("ascii")]
            ),
            None
        );
        assert_eq!(
            b(
                "__builtin__",
                "bytes",
                vec![Value::str("é"), Value::str("latin1")]
            ),
            Some(vec![0xe9])
        );
        assert_eq!(b("builtins", "bytes", vec![Value::str("id")]), None);
        let list = Value::List(Rc::new(std::cell::RefCell::new(vec![
            Value::Int(105),
            Value::Int(100),
        ])));
        assert_eq!(b("builtins", "bytearray", vec![list]), Some(b"id".to_vec()));
        assert_eq!(
            b("builtins", "bytes", vec![Value::Int(3)]),
            Some(vec![0; 3])
        );
        assert_eq!(
            b(
                "codecs",
                "decode",
                vec![Value::bytes(b"aWQ=\n"), Value::str("base64")]
            ),
            Some(b"id".to_vec())
        );
        assert_eq!(
            b(
                "_codecs",
                "decode",
                vec![Value::bytes(b"6964"), Value::str("hex_codec")]
            ),
            Some(b"id".to_vec())
        );
        assert_eq!(
            b(
                "codecs",
                "encode",
                vec![Value::bytes(b"id"), Value::str("base64")]
            ),
            Some(b"aWQ=\n".to_vec())
        );
        let s = call(
            "codecs",
            "decode",
            vec![Value::str("bf"), Value::str("rot_13")],
        );
        assert_eq!(s.as_ref().and_then(Value::as_str), Some("os"));
        let s = call(
            "codecs",
            "decode",
            vec![Value::bytes(b"os"), Value::str("utf-8")],
        );
        assert_eq!(s.as_ref().and_then(Value::as_str), Some("os"));
        let s = call(
            "builtins",
            "bytes.decode",
            vec![Value::bytes(b"\xe9"), Value::str("latin1")],
        );
        assert_eq!(s.as_ref().and_then(Value::as_str), Some("é"));
    }

    #[test]
    fn decompression_is_bounded() {
        use std::io::Write;
        let mut enc = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(&[b'a'; 5000]).unwrap();
        let z = enc.finish().unwrap();
        let callable = Value::Global {
            module: Rc::from("zlib"),
            name: Rc::from("decompress"),
        };
        let args = Value::Tuple(Rc::new(vec![Value::bytes(&z)]));
        let full = evaluate(&callable, &args, 10_000).unwrap();
        assert!(!full.truncated);
        assert_eq!(full.value.as_bytes().map(<[u8]>::len), Some(5000));
        let cut = evaluate(&callable, &args, 100).unwrap();
        assert!(cut.truncated);
        assert!(
            cut.value.as_bytes().is_none(),
            "a cut output is not a complete constant"
        );
        let codec = call(
            "codecs",
            "decode",
            vec![Value::bytes(&z), Value::str("zlib")],
        );
        assert_eq!(
            codec.and_then(|v| v.as_bytes().map(<[u8]>::len)),
            Some(5000)
        );
        assert!(call("zlib", "decompress", vec![Value::bytes(b"not zlib")]).is_none());
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(b"id").unwrap();
        let gz = gz.finish().unwrap();
        assert_eq!(
            bytes_of(call("gzip", "decompress", vec![Value::bytes(&gz)])),
            Some(b"id".to_vec())
        );
        assert_eq!(
            bytes_of(call(
                "zlib",
                "decompress",
                vec![Value::bytes(&gz), Value::Int(47)]
            )),
            Some(b"id".to_vec())
        );
    }

    #[test]
    fn imports_and_attribute_walks() {
        let os = call("builtins", "__import__", vec![Value::str("os")]).unwrap();
        assert_eq!(os.as_global(), Some(("os", "")));
        let system = call("builtins", "getattr", vec![os, Value::str("system")]).unwrap();
        assert_eq!(system.as_global(), Some(("os", "system")));
        let top = call("builtins", "__import__", vec![Value::str("os.path")]).unwrap();
        assert_eq!(top.as_global(), Some(("os", "")));
        let from = Value::Tuple(Rc::new(vec![Value::str("join")]));
        let full = call(
            "builtins",
            "__import__",
            vec![Value::str("os.path"), Value::None, Value::None, from],
        )
        .unwrap();
        assert_eq!(full.as_global(), Some(("os.path", "")));
        let m = call("importlib", "import_module", vec![Value::str("subprocess")]).unwrap();
        assert_eq!(m.as_global(), Some(("subprocess", "")));
        assert!(call("importlib", "import_module", vec![Value::str(".rel")]).is_none());
        let g = Value::Global {
            module: Rc::from("builtins"),
            name: Rc::from("bytes"),
        };
        let walk = call("__builtin__", "getattr", vec![g, Value::str("fromhex")]).unwrap();
        assert_eq!(walk.as_global(), Some(("builtins", "bytes.fromhex")));
        assert!(call("builtins", "getattr", vec![Value::Int(1), Value::str("x")]).is_none());
        assert!(call("os", "system", vec![Value::str("id")]).is_none());
    }
}
